/* The reference pass: one sequence at a time, fresh state, no cache sharing, no paging:
 * the whole sequence in one step over contiguous KV, teacher-forced. */
#ifndef LS_REFERENCE_H
#define LS_REFERENCE_H

#include <stdint.h>

#include "engine/forward.h"

/* out[t-1] = log p(tokens[t] | tokens[0..t-1]) for t = 1..L-1, as double whatever the
 * model's precision (a float widens exactly). opts may be NULL. */
int ls_reference_logprobs(const ls_model *m, const int32_t *tokens, int64_t L,
                          const ls_forward_opts *opts, double *out, ls_err *err);
/* The same, also giving argmax[t-1], the most likely token at position t (lowest id on
 * ties); argmax may be NULL. */
int ls_reference_logprobs_argmax(const ls_model *m, const int32_t *tokens, int64_t L,
                                 const ls_forward_opts *opts, double *out, int32_t *argmax,
                                 ls_err *err);
/* The same on a backend (engine/backend.h; NULL: the CPU): states and KV in its memory,
 * its forward pass. */
struct ls_backend;
int ls_reference_logprobs_on(const struct ls_backend *b, const ls_model *m, const int32_t *tokens,
                             int64_t L, const ls_forward_opts *opts, double *out, int32_t *argmax,
                             ls_err *err);

#endif
