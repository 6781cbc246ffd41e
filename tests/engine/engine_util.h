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

#endif
