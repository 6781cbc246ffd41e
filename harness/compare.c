#include "harness/compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/reference.h"

static int bits_equal(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

int ls_compare(const ls_engine_result *eng, double *const *ref_logprobs,
               int32_t *const *ref_argmax, const ls_compare_rule *rule, ls_comparison *out,
               ls_err *err) {
    memset(out, 0, sizeof *out);
    int64_t n = 0;
    for (int64_t s = 0; s < eng->n_seqs; s++) n += eng->seqs[s].len - eng->seqs[s].prompt_len;
    out->tokens = calloc((size_t)n + 1, sizeof *out->tokens);
    out->first_divergent = malloc(((size_t)eng->n_seqs + 1) * sizeof *out->first_divergent);
    if (!out->tokens || !out->first_divergent) {
        ls_comparison_free(out);
        return ls_errf(err, "comparator: out of memory");
    }
    ls_compare_summary *S = &out->sum;
    S->first_seq = S->first_position = -1;
    int64_t first_step = INT64_MAX;
    double sum_abs = 0, sum_abs2 = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0, k3 = 0;
    for (int64_t s = 0; s < eng->n_seqs; s++) {
        const ls_engine_seq *q = &eng->seqs[s];
        out->first_divergent[s] = -1;
        for (int64_t p = q->prompt_len; p < q->len; p++) {
            ls_token_cmp *t = &out->tokens[out->n_tokens++];
            t->seq = s;
            t->position = p;
            t->engine = q->logprobs[p];
            t->reference = ref_logprobs[s][p - 1];
            t->delta = t->engine - t->reference;
            t->bitwise_equal = bits_equal(t->engine, t->reference);
            t->token = q->tokens[p];
            t->ref_argmax = ref_argmax ? ref_argmax[s][p - 1] : -1;
            int finite = isfinite(t->engine) && isfinite(t->reference);
            t->divergent = rule->tolerance < 0 ? !t->bitwise_equal
                                               : (!finite || fabs(t->delta) > rule->tolerance);
            double a = finite ? fabs(t->delta) : (double)INFINITY;
            S->tokens++;
            S->bitwise_equal_tokens += t->bitwise_equal;
            if (a > S->max_abs || !finite) S->max_abs = a;
            if (finite) {
                sum_abs += a;
                sum_abs2 += a * a;
                double x = exp(t->engine), y = exp(t->reference);
                sx += x; sy += y; sxx += x * x; syy += y * y; sxy += x * y;
                double r = exp(t->reference - t->engine);
                k3 += r - 1 - (t->reference - t->engine);
            }
            if (t->divergent) {
                S->divergent_tokens++;
                if (out->first_divergent[s] < 0) {
                    out->first_divergent[s] = p;
                    S->divergent_seqs++;
                    if (q->prov[p].step < first_step) {
                        first_step = q->prov[p].step;
                        S->first_seq = s;
                        S->first_position = p;
                    }
                }
            }
        }
    }
    S->seqs = eng->n_seqs;
    if (S->tokens > 0) {
        double N = (double)S->tokens;
        S->mean_abs = sum_abs / N;
        S->std_abs = sqrt(fmax(0, sum_abs2 / N - S->mean_abs * S->mean_abs));
        double cov = sxy / N - (sx / N) * (sy / N);
        double vx = sxx / N - (sx / N) * (sx / N), vy = syy / N - (sy / N) * (sy / N);
        S->prob_pearson = vx > 0 && vy > 0 ? cov / sqrt(vx * vy) : (cov == 0 && vx == vy ? 1.0 : (double)NAN);
        S->kl_k3 = k3 / N;
    }
    return 0;
}

void ls_comparison_free(ls_comparison *c) {
    free(c->tokens);
    free(c->first_divergent);
    memset(c, 0, sizeof *c);
}

int ls_compare_with_reference(const ls_model *m, const ls_engine_result *eng,
                              const ls_compare_rule *rule, ls_comparison *out, ls_err *err) {
    return ls_compare_with_reference_on(NULL, m, eng, rule, out, err);
}

int ls_compare_with_reference_on(const struct ls_backend *b, const ls_model *m,
                                 const ls_engine_result *eng, const ls_compare_rule *rule,
                                 ls_comparison *out, ls_err *err) {
    double **ref = calloc((size_t)eng->n_seqs + 1, sizeof *ref);
    int32_t **amax = calloc((size_t)eng->n_seqs + 1, sizeof *amax);
    int rc = ref && amax ? 0 : ls_errf(err, "out of memory");
    for (int64_t s = 0; rc == 0 && s < eng->n_seqs; s++) {
        const ls_engine_seq *q = &eng->seqs[s];
        ref[s] = malloc((size_t)q->len * sizeof(double));
        amax[s] = malloc((size_t)q->len * sizeof(int32_t));
        if (!ref[s] || !amax[s]) rc = ls_errf(err, "out of memory");
        else rc = ls_reference_logprobs_on(b, m, q->tokens, q->len, NULL, ref[s], amax[s], err);
    }
    if (rc == 0) rc = ls_compare(eng, ref, amax, rule, out, err);
    for (int64_t s = 0; ref && amax && s < eng->n_seqs; s++) { free(ref[s]); free(amax[s]); }
    free(ref);
    free(amax);
    return rc;
}
