/* The comparator: joins engine and reference logprobs on (request, rollout, position)
 * and measures how they differ. In invariant mode any bit is a divergence; in tolerance
 * mode |delta| above max_abs is. */
#ifndef LS_COMPARE_H
#define LS_COMPARE_H

#include <stdint.h>

#include "engine/engine.h"

typedef struct ls_token_cmp {
    int64_t seq;                   /* index into the engine result's seqs */
    int64_t position;
    double engine, reference, delta;
    int bitwise_equal;
    int divergent;                 /* by the verdict rule in force */
    int32_t token, ref_argmax;     /* sampled token, reference argmax at that position */
} ls_token_cmp;

typedef struct ls_compare_summary {
    int64_t tokens, divergent_tokens, bitwise_equal_tokens;
    int64_t seqs, divergent_seqs;
    double max_abs, mean_abs, std_abs;
    double prob_pearson;           /* Pearson correlation of exp(logprob), engine vs reference */
    double kl_k3;                  /* mean of r - 1 - log r, r = p_ref / p_engine (verl's k3) */
    int64_t first_seq, first_position;  /* earliest divergence (by step), -1 if none */
} ls_compare_summary;

typedef struct ls_comparison {
    ls_token_cmp *tokens;
    int64_t n_tokens;
    int64_t *first_divergent;      /* per engine seq: first divergent position, -1 if none */
    ls_compare_summary sum;
} ls_comparison;

/* Rule: tolerance < 0 means invariant mode (any bit differs -> divergent); otherwise a
 * token diverges when |delta| > tolerance or either value is not finite. */
typedef struct ls_compare_rule {
    double tolerance;
} ls_compare_rule;

/* ref_logprobs[s] holds the reference's teacher-forced logprobs for engine seq s
 * (len - 1 values: position p at index p - 1); ref_argmax[s] likewise (may be NULL). */
int ls_compare(const ls_engine_result *eng, double *const *ref_logprobs,
               int32_t *const *ref_argmax, const ls_compare_rule *rule, ls_comparison *out,
               ls_err *err);
void ls_comparison_free(ls_comparison *c);

/* Runs the reference pass on every finished engine sequence (its final tokens) and
 * compares. Convenience for run, gate and tests. */
int ls_compare_with_reference(const ls_model *m, const ls_engine_result *eng,
                              const ls_compare_rule *rule, ls_comparison *out, ls_err *err);
/* The same with the reference on backend b (engine/backend.h; NULL: the CPU). */
int ls_compare_with_reference_on(const struct ls_backend *b, const ls_model *m,
                                 const ls_engine_result *eng, const ls_compare_rule *rule,
                                 ls_comparison *out, ls_err *err);

#endif
