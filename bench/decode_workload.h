/* The decode benchmark's workload and engine configuration, shared by bench_gpu (on the
 * device) and bench_host (the host's share of a step, on a null backend), so both measure
 * the same steps: B random prompts of plen tokens, one rollout each, nnew new tokens at
 * temperature 1, all admitted at once (max_num_seqs = B, the whole prefill in one step),
 * then decoded in steps of batch B. Exits on out of memory (a benchmark, not a library). */
#ifndef LS_BENCH_DECODE_WORKLOAD_H
#define LS_BENCH_DECODE_WORKLOAD_H

#include <stdio.h>
#include <stdlib.h>

#include "tests/engine/engine_util.h"

static inline void decode_workload(const ls_model *m, int64_t B, int64_t plen, int64_t nnew,
                                   uint64_t seed, ls_workload *wl, ls_engine_config *c) {
    uint64_t rng = seed;
    ls_sampling smp = {.temperature = 1.0, .top_k = 0, .top_p = 1.0};
    if (tu_workload(&rng, m->cfg.vocab_size, B, plen, plen, 0, 1, 1, nnew, 0, smp, wl)) {
        fprintf(stderr, "workload: out of memory\n");
        exit(2);
    }
    ls_engine_config_default(c);
    c->block_size = 16;
    c->num_blocks = B * ((plen + nnew) / 16 + 2);
    c->num_state_slots = B + 1;
    c->max_num_seqs = B;
    c->max_batched_tokens = B * plen > 256 ? B * plen : 256;
}

#endif
