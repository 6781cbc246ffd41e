/* Token sampling from one row of log-softmax values, deterministic by construction:
 * the only randomness is ls_uniform(seed, request, rollout, position, 0), and
 * every reduction runs in a fixed order, so a token depends on the row and its
 * key, never on the batch row, step or call order. */
#ifndef LS_SAMPLER_H
#define LS_SAMPLER_H

#include <stdint.h>

#include "engine/err.h"

typedef struct ls_sampling {
    double temperature; /* 0 = greedy */
    int64_t top_k;      /* 0 = all */
    double top_p;       /* in (0, 1]; 1 = all */
} ls_sampling;

/* One draw: the row it samples from (numbered as the caller defines) and its key. */
typedef struct ls_sample_draw {
    int64_t row;
    ls_sampling sampling;
    uint64_t seed, request, rollout, position;
} ls_sample_draw;

/* temperature finite and >= 0, top_k >= 0, 0 < top_p <= 1. */
int ls_sampling_check(const ls_sampling *s, ls_err *err);

/* Greedy: argmax, lowest token id on ties (NaN counts as -inf).
 *
 * Otherwise candidates are ranked by logprob descending, then token id ascending
 * (ranking by the logprob rather than the scaled value keeps the order exact:
 * dividing by T can merge neighbours, and top_k = 1 must be greedy exactly).
 * Weights are exp((lp - lp_max) / T). Keep the first top_k (0 = all); renormalise;
 * keep the shortest prefix of the ranking whose mass reaches top_p; renormalise;
 * then walk the kept prefix in rank order and return the first token whose
 * cumulative weight exceeds u * total, u = ls_uniform(seed, request, rollout,
 * position, 0).
 *
 * scratch: 2 * vocab doubles, or NULL to allocate internally. Returns the token,
 * or -1 for vocab < 1 or > INT32_MAX, invalid parameters (see ls_sampling_check)
 * or a failed allocation. A row with no finite logprob yields its greedy token. */
int32_t ls_sample(const double *logprobs, int64_t vocab, const ls_sampling *s, uint64_t seed,
                  uint64_t request, uint64_t rollout, uint64_t position, double *scratch);

#endif
