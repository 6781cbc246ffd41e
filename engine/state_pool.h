/* Mamba state slot allocator: bookkeeping only (which slot belongs to whom);
 * the engine owns the state buffers and indexes them with ls_slot_offset().
 *
 * The allocation policy is a knob because slot-indexing bugs hide behind it:
 * LOWEST packs requests into low slots (a bug that only bites high slots never
 * fires), HIGHEST and RANDOM reach the top of the pool early, FIFO maximises the
 * time before a freed slot is reused (stale reads get a different tenant each
 * time). Every policy is deterministic given (num_slots, seed, call sequence). */
#ifndef LS_STATE_POOL_H
#define LS_STATE_POOL_H

#include <stdint.h>

#include "engine/err.h"

typedef enum ls_slot_policy {
    LS_SLOT_LOWEST = 0, /* lowest free index */
    LS_SLOT_HIGHEST,    /* highest free index */
    LS_SLOT_FIFO,       /* least recently freed first; initially index order */
    LS_SLOT_RANDOM,     /* uniform over free slots, seeded */
} ls_slot_policy;

const char *ls_slot_policy_name(ls_slot_policy p);
/* "lowest" | "highest" | "fifo" | "random"; returns -1 for anything else. */
int ls_slot_policy_parse(const char *s, ls_slot_policy *out);

typedef struct ls_slot_allocator {
    int64_t num_slots;
    ls_slot_policy policy;
    int64_t num_free;
    int64_t *owner;      /* current owner, -1 while free */
    int64_t *prev_owner; /* owner of the last tenancy that ended, -1 if none:
                          * the "previous tenant" whose state a stale read sees */
    int64_t *tenancy;    /* how many times the slot has been allocated */
    uint64_t *free_bits; /* bit s set = slot s free (LOWEST/HIGHEST scan these) */
    int64_t nwords;
    /* FIFO: ring of free slots in the order they were freed. */
    int64_t *ring;
    int64_t ring_head;
    /* RANDOM: dense array of free slots and each slot's index in it. */
    int64_t *dense;
    int64_t *dense_pos;
    uint64_t rng;
} ls_slot_allocator;

int ls_slot_alloc_init(ls_slot_allocator *a, int64_t num_slots, ls_slot_policy policy,
                       uint64_t seed, ls_err *err);
void ls_slot_alloc_free(ls_slot_allocator *a);

/* Returns a free slot now owned by `owner`, or -1 when the pool is exhausted. */
int64_t ls_slot_alloc(ls_slot_allocator *a, int64_t owner);
/* Returns -1 (with a message) for an out-of-range or already free slot. */
int ls_slot_free(ls_slot_allocator *a, int64_t slot, ls_err *err);
int64_t ls_slot_num_free(const ls_slot_allocator *a);
int ls_slot_is_free(const ls_slot_allocator *a, int64_t slot);
int64_t ls_slot_owner(const ls_slot_allocator *a, int64_t slot);      /* -1 if free */
int64_t ls_slot_prev_owner(const ls_slot_allocator *a, int64_t slot); /* -1 if none */
int64_t ls_slot_tenancy(const ls_slot_allocator *a, int64_t slot);

/* ---- offsets ------------------------------------------------------------
 *
 * The bug this project was born from, vLLM #35275: the Mamba state offset was
 * computed as `uint32 slot * stride`. With a per-slot stride of 89,600 elements
 * the product passes 2^32 at slot 47,935 (47,935 * 89,600 = 4,294,976,000) and
 * wraps to the start of the buffer, so on a 69,776-slot cache the top ~31% of
 * slots (21,841 of them) read and write other requests' state, silently.
 * In general the first slot whose offset wraps in `bits`-bit arithmetic is
 * ceil(2^bits / stride) (see ls_slot_first_wrap()). */

/* The one correct offset: slot * stride in 64-bit arithmetic. Returns -1 if either
 * is negative or the product overflows int64 (a valid offset is never negative). */
int64_t ls_slot_offset(int64_t slot, int64_t stride);
/* Same, with a message on failure. */
int ls_slot_offset_checked(int64_t slot, int64_t stride, int64_t *out, ls_err *err);

/* The fault point: the product in `bits`-bit unsigned arithmetic, i.e. slot and
 * stride truncated to `bits` bits and the product taken modulo 2^bits. bits = 32
 * is exactly C's `(uint32_t)slot * (uint32_t)stride`; smaller widths reproduce
 * the same failure on small pools; 64 is the exact offset for in-range values.
 * bits outside 1..64 returns UINT64_MAX so a misconfigured fault is loud. */
uint64_t ls_slot_offset_narrow(int64_t slot, int64_t stride, int bits);

/* ceil(2^bits / stride): the lowest slot whose `bits`-bit offset differs from the
 * exact one. -1 if stride < 1, bits outside 1..64, or the slot exceeds INT64_MAX. */
int64_t ls_slot_first_wrap(int64_t stride, int bits);

/* Debug mode fills freed slots with a quiet NaN (recognisable payload), so a read
 * through a stale slot turns the logprobs into NaN instead of plausible numbers. */
void ls_poison_f32(float *p, int64_t n);
void ls_poison_f64(double *p, int64_t n);

#endif
