/* Shared by the engine tests: random workloads and an engine-vs-reference check. */
#ifndef LS_TESTS_ENGINE_UTIL_H
#define LS_TESTS_ENGINE_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "harness/compare.h"

static inline uint64_t tu_next(uint64_t *s) {   /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline int64_t tu_range(uint64_t *s, int64_t lo, int64_t hi) {   /* inclusive */
    return lo + (int64_t)(tu_next(s) % (uint64_t)(hi - lo + 1));
}

/* prompts share the first `shared` tokens within `groups` groups */
static inline int tu_workload(uint64_t *rng, int64_t vocab, int64_t prompts, int64_t len_lo,
                              int64_t len_hi, int64_t shared, int64_t groups, int64_t rollouts,
                              int64_t max_new, int64_t stagger, ls_sampling smp, ls_workload *wl) {
    memset(wl, 0, sizeof *wl);
    wl->seed = tu_next(rng);
    wl->requests = calloc((size_t)prompts, sizeof *wl->requests);
    if (!wl->requests) return -1;
    wl->n_requests = prompts;
    int32_t prefix[4][64];
    for (int64_t g = 0; g < 4; g++)
        for (int64_t i = 0; i < 64; i++) prefix[g][i] = (int32_t)tu_range(rng, 0, vocab - 1);
    for (int64_t r = 0; r < prompts; r++) {
        ls_request *q = &wl->requests[r];
        q->prompt_len = tu_range(rng, len_lo, len_hi);
        q->prompt = malloc((size_t)q->prompt_len * sizeof(int32_t));
        if (!q->prompt) return -1;
        for (int64_t i = 0; i < q->prompt_len; i++)
            q->prompt[i] = i < shared ? prefix[r % (groups < 1 ? 1 : groups) % 4][i % 64]
                                      : (int32_t)tu_range(rng, 0, vocab - 1);
        q->n_rollouts = rollouts;
        q->max_new_tokens = max_new;
        q->arrival_step = stagger * r;
        q->sampling = smp;
    }
    return 0;
}

/* How much each engine mechanism ran, summed over many cases: the property tests' proof
 * that equality was checked on schedules that really used the caches. */
typedef struct tu_mechanisms {
    int64_t configs, preemptions, prefix_hit_tokens, restores, forks, cow, chunked, padded;
    int64_t high_slot_runs, configs_preempting, configs_hitting;
} tu_mechanisms;

static inline void tu_tally(tu_mechanisms *T, const ls_engine_stats *s) {
    T->configs++;
    T->preemptions += s->preemptions;
    T->prefix_hit_tokens += s->prefix_hit_tokens;
    T->restores += s->snapshot_restores;
    T->forks += s->forks;
    T->cow += s->cow_copies;
    T->chunked += s->chunked_prefills;
    T->padded += s->padded_rows;
    T->high_slot_runs += s->max_slot_used >= 8;
    T->configs_preempting += s->preemptions > 0;
    T->configs_hitting += s->snapshot_restores > 0;
}

static inline void tu_print_case(uint64_t seed, const char *model, int fp64, const ls_engine_stats *s) {
    fprintf(stderr, "seed %llu: %s %s steps %lld preempt %lld hits %lld restores %lld forks %lld "
            "cow %lld chunked %lld padded %lld max slot %lld\n", (unsigned long long)seed, model,
            fp64 ? "fp64" : "fp32", (long long)s->steps, (long long)s->preemptions,
            (long long)s->prefix_hit_tokens, (long long)s->snapshot_restores, (long long)s->forks,
            (long long)s->cow_copies, (long long)s->chunked_prefills, (long long)s->padded_rows,
            (long long)s->max_slot_used);
}

/* A random engine case, drawn from `seed` alone: which golden model (0 tiny-a, 1 tiny-b,
 * 2 small-c, rarely: it is slow) and precision (0 fp32, 1 fp64), an engine configuration
 * (batch limits, block and chunk sizes, cache pressure down to constant preemption, slot
 * policy, poisoning, padding) and a workload (1..6 prompts, rollouts 1..16, shared
 * prefixes, sampling, staggered arrivals). The CPU property test and its GPU subset draw
 * the same cases from the same seeds. vocab[model] is each model's vocabulary size. */
typedef struct tu_case {
    int prec, model;
    ls_engine_config cfg;
    ls_workload wl;
} tu_case;

static inline int tu_random_case(uint64_t seed, const int64_t vocab[3], tu_case *k) {
    uint64_t rng = seed;
    k->prec = (int)tu_range(&rng, 0, 1);
    k->model = tu_range(&rng, 0, 9) == 0 ? 2 : (int)tu_range(&rng, 0, 1);
    ls_engine_config *c = &k->cfg;
    ls_engine_config_default(c);
    c->block_size = (int64_t[]){1, 2, 3, 4, 8, 16}[tu_range(&rng, 0, 5)];
    c->prefix_caching = (int)tu_range(&rng, 0, 3) != 0;
    c->slot_policy = (ls_slot_policy)tu_range(&rng, 0, 3);
    c->slot_seed = tu_next(&rng);
    c->max_num_seqs = tu_range(&rng, 1, 12);
    c->num_state_slots = tu_range(&rng, 1, 16);
    c->debug_poison = (int)tu_range(&rng, 0, 1);
    c->pad_decode_to = tu_range(&rng, 0, 2) == 0 ? tu_range(&rng, 2, 4) : 0;
    int64_t prompts = tu_range(&rng, 1, 6);
    int64_t rollouts = tu_range(&rng, 0, 3) == 0 ? tu_range(&rng, 8, 16) : tu_range(&rng, 1, 4);
    if (prompts * rollouts > 32) prompts = 32 / rollouts > 0 ? 32 / rollouts : 1;
    int64_t len_lo = tu_range(&rng, 1, 12), len_hi = len_lo + tu_range(&rng, 0, 20);
    int64_t shared = tu_range(&rng, 0, 1) ? tu_range(&rng, 0, len_lo) : 0;
    int64_t max_new = tu_range(&rng, 1, 8);
    int64_t max_len = len_hi + max_new;
    c->max_batched_tokens = tu_range(&rng, 0, 3) == 0 ? tu_range(&rng, 1, 4) : tu_range(&rng, 4, 64);
    if (c->prefix_caching && c->max_batched_tokens < c->block_size) c->max_batched_tokens = c->block_size;
    c->max_chunk = tu_range(&rng, 0, 1) ? 0 : tu_range(&rng, 1, 16);
    if (c->prefix_caching && c->max_chunk && c->max_chunk < c->block_size) c->max_chunk = c->block_size;
    /* cache pressure: from one sequence's worth of blocks to plenty */
    int64_t per_seq = (max_len + c->block_size - 1) / c->block_size + 1;
    c->num_blocks = tu_range(&rng, 0, 2) == 0
                        ? per_seq + tu_range(&rng, 0, per_seq)        /* constant preemption */
                        : per_seq * tu_range(&rng, 1, 2) + tu_range(&rng, 0, per_seq * prompts * rollouts);
    c->num_snapshots = tu_range(&rng, 1, 32);
    ls_sampling smp = {.temperature = tu_range(&rng, 0, 3) == 0 ? 0.0 : 1.0,
                       .top_k = tu_range(&rng, 0, 1) ? 0 : tu_range(&rng, 1, 20),
                       .top_p = tu_range(&rng, 0, 1) ? 1.0 : 0.9};
    int64_t stagger = tu_range(&rng, 0, 1) ? 0 : tu_range(&rng, 1, 3);
    return tu_workload(&rng, vocab[k->model], prompts, len_lo, len_hi, shared, 2, rollouts, max_new,
                       stagger, smp, &k->wl);
}

#endif
