/* Slot allocator policies, tenancy bookkeeping, and the offset fault point. */
#include "engine/state_pool.h"
#include "tests/check.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static int64_t alloc_n(ls_slot_allocator *a, int64_t n, int64_t *out, int64_t owner0) {
    for (int64_t i = 0; i < n; i++) out[i] = ls_slot_alloc(a, owner0 + i);
    return n;
}

static int same(const int64_t *got, const int64_t *want, int n) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) return 0;
    return 1;
}

static void test_policy_orders(void) {
    ls_err err;
    ls_slot_allocator a;
    int64_t got[8];

    /* LOWEST: 0,1,2,3; free 2 and 0; next are 0 then 2, then 4. */
    CHECK(ls_slot_alloc_init(&a, 6, LS_SLOT_LOWEST, 0, &err) == 0);
    alloc_n(&a, 4, got, 100);
    CHECK(same(got, (int64_t[]){0, 1, 2, 3}, 4));
    CHECK(ls_slot_free(&a, 2, &err) == 0 && ls_slot_free(&a, 0, &err) == 0);
    alloc_n(&a, 3, got, 200);
    CHECK(same(got, (int64_t[]){0, 2, 4}, 3));
    ls_slot_alloc_free(&a);

    /* HIGHEST: 69,776 slots (the real bug's pool): the first slot is the top one,
     * already past the uint32 wrap at 47,935. */
    CHECK(ls_slot_alloc_init(&a, 69776, LS_SLOT_HIGHEST, 0, &err) == 0);
    alloc_n(&a, 3, got, 0);
    CHECK(same(got, (int64_t[]){69775, 69774, 69773}, 3));
    CHECK(ls_slot_free(&a, 69774, &err) == 0);
    CHECK(ls_slot_alloc(&a, 9) == 69774);
    CHECK(ls_slot_alloc(&a, 9) == 69772);
    ls_slot_alloc_free(&a);

    /* FIFO: index order first, then least recently freed. */
    CHECK(ls_slot_alloc_init(&a, 4, LS_SLOT_FIFO, 0, &err) == 0);
    alloc_n(&a, 3, got, 0);
    CHECK(same(got, (int64_t[]){0, 1, 2}, 3));
    CHECK(ls_slot_free(&a, 1, &err) == 0);
    CHECK(ls_slot_free(&a, 0, &err) == 0);
    alloc_n(&a, 4, got, 10); /* 3 (never used), then 1, 0 in free order, then exhausted */
    CHECK(same(got, (int64_t[]){3, 1, 0, -1}, 4));
    CHECK(ls_slot_free(&a, 2, &err) == 0 && ls_slot_free(&a, 3, &err) == 0);
    CHECK(ls_slot_free(&a, 0, &err) == 0);
    alloc_n(&a, 3, got, 20);
    CHECK(same(got, (int64_t[]){2, 3, 0}, 3));
    ls_slot_alloc_free(&a);
}

static void test_random_policy(void) {
    ls_err err;
    enum { N = 69776, K = 200 };
    static int64_t first[K], second[K], other[K];
    ls_slot_allocator a;

    CHECK(ls_slot_alloc_init(&a, N, LS_SLOT_RANDOM, 1234, &err) == 0);
    alloc_n(&a, K, first, 0);
    int high = 0, distinct = 1;
    for (int i = 0; i < K; i++) {
        if (first[i] >= 47935) high++;
        for (int j = 0; j < i; j++)
            if (first[i] == first[j]) distinct = 0;
    }
    CHECK(distinct);
    /* ~31% of slots lie past the uint32 wrap; expect ~62 of 200, demand 20. */
    CHECKF(high >= 20, "only %d of %d random slots >= 47935", high, K);
    /* Interleave frees so the reproducibility check covers the swap-remove path. */
    for (int i = 0; i < K; i += 3) CHECK(ls_slot_free(&a, first[i], &err) == 0);
    int64_t tail1[50];
    alloc_n(&a, 50, tail1, 1000);
    ls_slot_alloc_free(&a);

    /* Same seed, same call sequence -> same slots. */
    CHECK(ls_slot_alloc_init(&a, N, LS_SLOT_RANDOM, 1234, &err) == 0);
    alloc_n(&a, K, second, 0);
    CHECK(same(first, second, K));
    for (int i = 0; i < K; i += 3) CHECK(ls_slot_free(&a, second[i], &err) == 0);
    int64_t tail2[50];
    alloc_n(&a, 50, tail2, 1000);
    CHECK(same(tail1, tail2, 50));
    ls_slot_alloc_free(&a);

    /* Another seed, another sequence. */
    CHECK(ls_slot_alloc_init(&a, N, LS_SLOT_RANDOM, 1235, &err) == 0);
    alloc_n(&a, K, other, 0);
    CHECK(!same(first, other, K));
    ls_slot_alloc_free(&a);

    /* Exhausting a small random pool hands out each slot exactly once. */
    CHECK(ls_slot_alloc_init(&a, 100, LS_SLOT_RANDOM, 7, &err) == 0);
    int seen[100] = {0}, ok = 1;
    for (int i = 0; i < 100; i++) {
        int64_t s = ls_slot_alloc(&a, i);
        if (s < 0 || s >= 100 || seen[s]++) ok = 0;
    }
    CHECK(ok);
    CHECK(ls_slot_alloc(&a, 0) == -1);
    CHECK(ls_slot_num_free(&a) == 0);
    ls_slot_alloc_free(&a);
}

static void test_tenancy_and_errors(void) {
    ls_err err;
    ls_slot_allocator a;
    CHECK(ls_slot_alloc_init(&a, 0, LS_SLOT_LOWEST, 0, &err) == -1);
    CHECK(ls_slot_alloc_init(&a, 2, (ls_slot_policy)9, 0, &err) == -1);

    CHECK(ls_slot_alloc_init(&a, 2, LS_SLOT_LOWEST, 0, &err) == 0);
    CHECK(ls_slot_num_free(&a) == 2);
    CHECK(ls_slot_alloc(&a, 11) == 0);
    CHECK(ls_slot_owner(&a, 0) == 11 && ls_slot_prev_owner(&a, 0) == -1);
    CHECK(ls_slot_tenancy(&a, 0) == 1);
    CHECK(ls_slot_free(&a, 0, &err) == 0);
    CHECK(ls_slot_owner(&a, 0) == -1 && ls_slot_prev_owner(&a, 0) == 11);
    CHECK(ls_slot_alloc(&a, 22) == 0);
    /* The new tenant can see who lived here before: the stale-read suspect. */
    CHECK(ls_slot_owner(&a, 0) == 22 && ls_slot_prev_owner(&a, 0) == 11);
    CHECK(ls_slot_tenancy(&a, 0) == 2);

    CHECK(ls_slot_free(&a, 1, &err) == -1); /* never allocated */
    CHECK(strstr(err.msg, "double free") != NULL);
    CHECK(ls_slot_free(&a, 0, &err) == 0);
    CHECK(ls_slot_free(&a, 0, &err) == -1); /* double free */
    CHECK(ls_slot_free(&a, 2, &err) == -1);
    CHECK(ls_slot_free(&a, -1, &err) == -1);
    CHECK(ls_slot_num_free(&a) == 2);
    ls_slot_alloc_free(&a);

    ls_slot_policy p;
    const char *names[] = {"lowest", "highest", "fifo", "random"};
    for (int i = 0; i < 4; i++) {
        CHECK(ls_slot_policy_parse(names[i], &p) == 0 && (int)p == i);
        CHECK(strcmp(ls_slot_policy_name(p), names[i]) == 0);
    }
    CHECK(ls_slot_policy_parse("Lowest", &p) == -1);
    CHECK(ls_slot_policy_parse("", &p) == -1);
    CHECK(ls_slot_policy_parse(NULL, &p) == -1);
}

static void test_offsets(void) {
    ls_err err;
    int64_t off;
    /* The real bug: 47,934 is the last good slot at stride 89,600. */
    CHECK(ls_slot_offset(47934, 89600) == 4294886400LL);
    CHECK(ls_slot_offset_narrow(47934, 89600, 32) == 4294886400ull);
    CHECK(ls_slot_offset(47935, 89600) == 4294976000LL);
    CHECK(ls_slot_offset_narrow(47935, 89600, 32) == 4294976000ull - 4294967296ull);
    CHECK(ls_slot_first_wrap(89600, 32) == 47935);
    CHECK(ls_slot_offset_narrow(69775, 89600, 64) == 69775ull * 89600ull);

    /* bits = 32 is exactly C's uint32 arithmetic, over a spread of inputs. */
    uint64_t x = 88172645463325252ull;
    int ok32 = 1, ok64 = 1;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int64_t slot = (int64_t)(x >> 40), stride = (int64_t)(x & 0xFFFFFF);
        uint32_t c = (uint32_t)slot * (uint32_t)stride;
        if (ls_slot_offset_narrow(slot, stride, 32) != c) ok32 = 0;
        if (ls_slot_offset_narrow(slot, stride, 64) != (uint64_t)ls_slot_offset(slot, stride)) ok64 = 0;
    }
    CHECK(ok32);
    CHECK(ok64);

    /* First wrapping slot == ceil(2^bits / stride), checked against the narrow
     * function itself: slot w-1 still exact, slot w not. */
    const int bits_list[] = {4, 8, 12, 16, 20, 24, 31, 32, 33, 40};
    const int64_t strides[] = {1, 3, 7, 16, 100, 4096, 89600, 1000003};
    for (size_t b = 0; b < sizeof bits_list / sizeof *bits_list; b++) {
        for (size_t s = 0; s < sizeof strides / sizeof *strides; s++) {
            int bits = bits_list[b];
            int64_t stride = strides[s];
            uint64_t pow2 = 1ull << bits;
            int64_t want = (int64_t)((pow2 + (uint64_t)stride - 1) / (uint64_t)stride);
            int64_t w = ls_slot_first_wrap(stride, bits);
            CHECKF(w == want, "bits %d stride %lld: %lld vs %lld", bits, (long long)stride,
                   (long long)w, (long long)want);
            CHECKF(ls_slot_offset_narrow(w, stride, bits) != (uint64_t)ls_slot_offset(w, stride),
                   "bits %d stride %lld: slot %lld should wrap", bits, (long long)stride,
                   (long long)w);
            if (w >= 1)
                CHECKF(ls_slot_offset_narrow(w - 1, stride, bits) ==
                           (uint64_t)ls_slot_offset(w - 1, stride),
                       "bits %d stride %lld: slot %lld should not wrap", bits, (long long)stride,
                       (long long)(w - 1));
        }
    }
    CHECK(ls_slot_first_wrap(1, 64) == -1);
    CHECK(ls_slot_first_wrap(1, 63) == -1);
    CHECK(ls_slot_first_wrap(2, 63) == ((int64_t)1 << 62));
    CHECK(ls_slot_first_wrap(3, 64) == (int64_t)(UINT64_MAX / 3 + 1));
    CHECK(ls_slot_first_wrap(0, 32) == -1);
    CHECK(ls_slot_first_wrap(5, 0) == -1);
    CHECK(ls_slot_first_wrap(5, 65) == -1);
    CHECK(ls_slot_offset_narrow(5, 5, 0) == UINT64_MAX);
    CHECK(ls_slot_offset_narrow(5, 5, 65) == UINT64_MAX);
    CHECK(ls_slot_offset_narrow(3, 5, 1) == 1); /* 15 mod 2 */

    /* The checked offset refuses what it cannot represent. */
    CHECK(ls_slot_offset(-1, 10) == -1);
    CHECK(ls_slot_offset(10, -1) == -1);
    CHECK(ls_slot_offset(INT64_MAX / 2 + 1, 2) == -1);
    CHECK(ls_slot_offset(INT64_MAX / 2, 2) == INT64_MAX - 1);
    CHECK(ls_slot_offset_checked(3, 4, &off, &err) == 0 && off == 12);
    CHECK(ls_slot_offset_checked((int64_t)1 << 31, (int64_t)1 << 31, &off, &err) == 0 &&
          off == (int64_t)1 << 62);
    CHECK(ls_slot_offset_checked((int64_t)1 << 32, (int64_t)1 << 31, &off, &err) == -1);
    CHECK(ls_slot_offset_checked((int64_t)1 << 32, (int64_t)1 << 32, &off, &err) == -1);
    CHECK(strstr(err.msg, "overflow") != NULL);
    CHECK(ls_slot_offset_checked(-3, 4, &off, &err) == -1);
}

static void test_poison(void) {
    float f[5];
    double d[5];
    for (int i = 0; i < 5; i++) { f[i] = 1.0f; d[i] = 1.0; }
    ls_poison_f32(f, 4);
    ls_poison_f64(d, 4);
    for (int i = 0; i < 4; i++) CHECK(isnan(f[i]) && isnan(d[i]));
    CHECK(f[4] == 1.0f && d[4] == 1.0);
    /* A poisoned value taints arithmetic: the stale read cannot go unnoticed. */
    CHECK(isnan(f[0] * 0.0f + 1.0f));
    CHECK(isnan(d[1] * 0.0 + 1.0));
    uint32_t fb;
    memcpy(&fb, &f[0], sizeof fb);
    CHECK((fb & 0x7FC00000u) == 0x7FC00000u); /* quiet */
}

int main(void) {
    test_policy_orders();
    test_random_policy();
    test_tenancy_and_errors();
    test_offsets();
    test_poison();
    return check_status();
}
