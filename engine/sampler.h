/* Token sampling from one row of log-softmax values, deterministic by construction:
 * the only randomness is one uniform per token keyed by (seed, request, rollout,
 * position, token) (ls_token_uniform), the draw is a max (exact in any order) and the
 * one sum (top_p's) runs in a fixed order, so a token depends on the row and its key,
 * never on the batch row, step or call order. */
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
 * Weights are exp((lp - lp_max) / T). Keep the first top_k (0 = all); then, when
 * top_p < 1, the shortest prefix of the ranking whose mass reaches top_p times the kept
 * mass (summed in rank order, or in id order when every token is kept). Among the
 * kept tokens, draw by the exponential race: the token with the largest
 * w / -log(u_token), u_token = ls_token_uniform(seed, request, rollout, position,
 * token), lowest id on ties; token i wins with probability w_i / sum of kept w.
 * With top_k = 0 and top_p = 1 no ranking is built: O(vocab), a uniform per token.
 *
 * scratch: 2 * vocab doubles, or NULL to allocate internally. Returns the token,
 * or -1 for vocab < 1 or > INT32_MAX, invalid parameters (see ls_sampling_check)
 * or a failed allocation. A row with no finite logprob yields its greedy token. */
int32_t ls_sample(const double *logprobs, int64_t vocab, const ls_sampling *s, uint64_t seed,
                  uint64_t request, uint64_t rollout, uint64_t position, double *scratch);

#endif
