#include "engine/state_pool.h"

#include <stdlib.h>
#include <string.h>

static const char *const policy_names[] = {"lowest", "highest", "fifo", "random"};

const char *ls_slot_policy_name(ls_slot_policy p) {
    if ((int)p < 0 || (int)p > (int)LS_SLOT_RANDOM) return "?";
    return policy_names[p];
}

int ls_slot_policy_parse(const char *s, ls_slot_policy *out) {
    for (int i = 0; i <= (int)LS_SLOT_RANDOM; i++) {
        if (s && strcmp(s, policy_names[i]) == 0) {
            *out = (ls_slot_policy)i;
            return 0;
        }
    }
    return -1;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Unbiased integer in [0, n): rejection keeps the distribution exact, and the
 * rejected draws are part of the deterministic sequence. */
static int64_t rng_below(uint64_t *state, int64_t n) {
    uint64_t un = (uint64_t)n, limit = -un % un; /* 2^64 mod n */
    for (;;) {
        uint64_t x = splitmix64(state);
        if (x >= limit) return (int64_t)(x % un);
    }
}

void ls_slot_alloc_free(ls_slot_allocator *a) {
    free(a->owner);
    free(a->prev_owner);
    free(a->tenancy);
    free(a->free_bits);
    free(a->ring);
    free(a->dense);
    free(a->dense_pos);
    memset(a, 0, sizeof *a);
}

static void *xcalloc(int64_t n, size_t size) { return calloc((size_t)n, size); }

int ls_slot_alloc_init(ls_slot_allocator *a, int64_t num_slots, ls_slot_policy policy,
                       uint64_t seed, ls_err *err) {
    memset(a, 0, sizeof *a);
    if (num_slots < 1) return ls_errf(err, "slot pool: num_slots must be >= 1, got %lld",
                                      (long long)num_slots);
    if ((int)policy < 0 || (int)policy > (int)LS_SLOT_RANDOM)
        return ls_errf(err, "slot pool: unknown policy %d", (int)policy);
    /* Keeps every per-slot array's byte size far from size_t overflow. */
    if (num_slots > ((int64_t)1 << 40))
        return ls_errf(err, "slot pool: num_slots %lld too large", (long long)num_slots);
    a->num_slots = num_slots;
    a->policy = policy;
    a->num_free = num_slots;
    a->nwords = (num_slots + 63) / 64;
    a->rng = seed;
    a->owner = xcalloc(num_slots, sizeof *a->owner);
    a->prev_owner = xcalloc(num_slots, sizeof *a->prev_owner);
    a->tenancy = xcalloc(num_slots, sizeof *a->tenancy);
    a->free_bits = xcalloc(a->nwords, sizeof *a->free_bits);
    if (policy == LS_SLOT_FIFO) a->ring = xcalloc(num_slots, sizeof *a->ring);
    if (policy == LS_SLOT_RANDOM) {
        a->dense = xcalloc(num_slots, sizeof *a->dense);
        a->dense_pos = xcalloc(num_slots, sizeof *a->dense_pos);
    }
    if (!a->owner || !a->prev_owner || !a->tenancy || !a->free_bits ||
        (policy == LS_SLOT_FIFO && !a->ring) ||
        (policy == LS_SLOT_RANDOM && (!a->dense || !a->dense_pos))) {
        ls_slot_alloc_free(a);
        return ls_errf(err, "slot pool: out of memory for %lld slots", (long long)num_slots);
    }
    for (int64_t s = 0; s < num_slots; s++) {
        a->owner[s] = -1;
        a->prev_owner[s] = -1;
        a->free_bits[s / 64] |= 1ull << (s % 64);
        if (a->ring) a->ring[s] = s;
        if (a->dense) {
            a->dense[s] = s;
            a->dense_pos[s] = s;
        }
    }
    return 0;
}

static int64_t scan_lowest(const ls_slot_allocator *a) {
    for (int64_t w = 0; w < a->nwords; w++)
        if (a->free_bits[w]) return w * 64 + __builtin_ctzll(a->free_bits[w]);
    return -1;
}

static int64_t scan_highest(const ls_slot_allocator *a) {
    for (int64_t w = a->nwords - 1; w >= 0; w--)
        if (a->free_bits[w]) return w * 64 + (63 - __builtin_clzll(a->free_bits[w]));
    return -1;
}

int64_t ls_slot_alloc(ls_slot_allocator *a, int64_t owner) {
    if (a->num_free == 0) return -1;
    int64_t s = -1;
    switch (a->policy) {
    case LS_SLOT_LOWEST: s = scan_lowest(a); break;
    case LS_SLOT_HIGHEST: s = scan_highest(a); break;
    case LS_SLOT_FIFO:
        s = a->ring[a->ring_head];
        a->ring_head = (a->ring_head + 1) % a->num_slots;
        break;
    case LS_SLOT_RANDOM: {
        int64_t i = rng_below(&a->rng, a->num_free);
        s = a->dense[i];
        /* Swap-remove: the last free slot takes s's place. */
        int64_t last = a->dense[a->num_free - 1];
        a->dense[i] = last;
        a->dense_pos[last] = i;
        a->dense_pos[s] = -1;
        break;
    }
    }
    if (s < 0) return -1;
    a->free_bits[s / 64] &= ~(1ull << (s % 64));
    a->num_free--;
    a->owner[s] = owner;
    a->tenancy[s]++;
    return s;
}

int ls_slot_free(ls_slot_allocator *a, int64_t slot, ls_err *err) {
    if (slot < 0 || slot >= a->num_slots)
        return ls_errf(err, "slot pool: free of slot %lld outside [0, %lld)", (long long)slot,
                       (long long)a->num_slots);
    if (ls_slot_is_free(a, slot))
        return ls_errf(err, "slot pool: double free of slot %lld (previous owner %lld)",
                       (long long)slot, (long long)a->prev_owner[slot]);
    a->free_bits[slot / 64] |= 1ull << (slot % 64);
    a->prev_owner[slot] = a->owner[slot];
    a->owner[slot] = -1;
    if (a->ring) a->ring[(a->ring_head + a->num_free) % a->num_slots] = slot;
    if (a->dense) {
        a->dense[a->num_free] = slot;
        a->dense_pos[slot] = a->num_free;
    }
    a->num_free++;
    return 0;
}

int64_t ls_slot_num_free(const ls_slot_allocator *a) { return a->num_free; }

int ls_slot_is_free(const ls_slot_allocator *a, int64_t slot) {
    if (slot < 0 || slot >= a->num_slots) return 0;
    return (a->free_bits[slot / 64] >> (slot % 64)) & 1;
}

int64_t ls_slot_owner(const ls_slot_allocator *a, int64_t slot) {
    return slot >= 0 && slot < a->num_slots ? a->owner[slot] : -1;
}

int64_t ls_slot_prev_owner(const ls_slot_allocator *a, int64_t slot) {
    return slot >= 0 && slot < a->num_slots ? a->prev_owner[slot] : -1;
}

int64_t ls_slot_tenancy(const ls_slot_allocator *a, int64_t slot) {
    return slot >= 0 && slot < a->num_slots ? a->tenancy[slot] : 0;
}

/* ---- offsets ---------------------------------------------------------- */

int64_t ls_slot_offset(int64_t slot, int64_t stride) {
    int64_t off;
    if (slot < 0 || stride < 0 || __builtin_mul_overflow(slot, stride, &off)) return -1;
    return off;
}

int ls_slot_offset_checked(int64_t slot, int64_t stride, int64_t *out, ls_err *err) {
    if (slot < 0 || stride < 0)
        return ls_errf(err, "slot offset: negative slot %lld or stride %lld", (long long)slot,
                       (long long)stride);
    if (__builtin_mul_overflow(slot, stride, out))
        return ls_errf(err, "slot offset: %lld * %lld overflows int64", (long long)slot,
                       (long long)stride);
    return 0;
}

uint64_t ls_slot_offset_narrow(int64_t slot, int64_t stride, int bits) {
    if (bits < 1 || bits > 64) return UINT64_MAX;
    uint64_t mask = bits == 64 ? UINT64_MAX : (1ull << bits) - 1;
    /* (a mod 2^b)(c mod 2^b) mod 2^b == (a c mod 2^64) mod 2^b since 2^b | 2^64,
     * so one 64-bit multiply and a mask reproduce any narrower unsigned width. */
    return (((uint64_t)slot & mask) * ((uint64_t)stride & mask)) & mask;
}

int64_t ls_slot_first_wrap(int64_t stride, int bits) {
    if (stride < 1 || bits < 1 || bits > 64) return -1;
    uint64_t pow_minus_1 = bits == 64 ? UINT64_MAX : (1ull << bits) - 1;
    /* ceil(x / s) == floor((x - 1) / s) + 1 for x >= 1, and 2^bits - 1 fits. */
    uint64_t q = pow_minus_1 / (uint64_t)stride;
    return q >= (uint64_t)INT64_MAX ? -1 : (int64_t)q + 1;
}

void ls_poison_f32(float *p, int64_t n) {
    const uint32_t bits = 0x7FCDEAD5u; /* exponent all ones, quiet bit set, payload */
    float v;
    memcpy(&v, &bits, sizeof v);
    for (int64_t i = 0; i < n; i++) p[i] = v;
}

void ls_poison_f64(double *p, int64_t n) {
    const uint64_t bits = 0x7FF8DEADBEEF0000ull;
    double v;
    memcpy(&v, &bits, sizeof v);
    for (int64_t i = 0; i < n; i++) p[i] = v;
}
