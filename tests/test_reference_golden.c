/* The reference pass against the logprobs Hugging Face transformers computed for the
 * golden checkpoints (golden/README.md): fp64 within 1e-9 of true-float64 transformers
 * per token, fp32 within 2e-4, and fp64 within 1e-4 of transformers as it ships (whose
 * float32 upcasts leave ~1e-5 of noise). Every sequence, every token. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/reference.h"
#include "harness/logprob_file.h"
#include "harness/tokens_file.h"
#include "tests/check.h"


/* Compares one model in one precision with one golden file; returns max |delta|. */
static double compare(const char *model_name, const char *prec_name, const char *golden_name,
                      const ls_token_seqs *seqs, double *const *got, const ls_logprob_file *gold,
                      double tol) {
    double maxd = 0;
    int64_t worst_seq = -1, worst_tok = -1, bad = 0, total = 0;
    CHECKF(gold->n == seqs->n, "%s %s vs %s: %lld golden lines for %lld sequences", model_name,
           prec_name, golden_name, (long long)gold->n, (long long)seqs->n);
    for (int64_t s = 0; s < seqs->n && s < gold->n; s++) {
        int64_t want = seqs->lens[s] - 1;
        CHECKF(gold->counts[s] == want, "%s %s vs %s: sequence %lld has %lld golden values, want %lld",
               model_name, prec_name, golden_name, (long long)s, (long long)gold->counts[s],
               (long long)want);
        for (int64_t t = 0; t < want && t < gold->counts[s]; t++) {
            double d = fabs(got[s][t] - gold->vals[s][t]);
            total++;
            /* NaN compares false everywhere: count it as a failure explicitly */
            if (!(d <= tol)) {
                if (bad < 5)
                    fprintf(stderr, "  %s %s vs %s: seq %lld token %lld: got %.17g, golden %.17g, |delta| %.3g > %.3g\n",
                            model_name, prec_name, golden_name, (long long)s, (long long)t + 1,
                            got[s][t], gold->vals[s][t], d, tol);
                bad++;
            }
            if (!(d <= maxd)) {
                maxd = isnan(d) ? (double)INFINITY : d;
                worst_seq = s;
                worst_tok = t + 1;
            }
        }
    }
    CHECKF(bad == 0, "%s %s vs %s: %lld of %lld tokens beyond %.3g (max |delta| %.3g)", model_name,
           prec_name, golden_name, (long long)bad, (long long)total, tol, maxd);
    CHECKF(total > 0, "%s %s vs %s: no tokens compared", model_name, prec_name, golden_name);
    printf("%-14s %-5s vs %-24s %5lld tokens  max |delta| %.3e (seq %lld token %lld)  tol %.0e  %s\n",
           model_name, prec_name, golden_name, (long long)total, maxd, (long long)worst_seq,
           (long long)worst_tok, tol, bad ? "FAIL" : "ok");
    return maxd;
}

static void run_model(const char *src, const char *name) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/golden/%s", src, name);

    snprintf(path, sizeof path, "%s/tokens.txt", dir);
    FILE *tf = fopen(path, "r");
    CHECKF(tf != NULL, "%s: cannot open", path);
    if (!tf) return;
    ls_token_seqs seqs;
    ls_err err = {{0}};
    int rc = ls_tokens_read(tf, path, 0, &seqs, &err);
    fclose(tf);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECKF(seqs.n > 0, "%s: no sequences", path);

    ls_logprob_file gold64, native;
    snprintf(path, sizeof path, "%s/logprobs_fp64.txt", dir);
    int rc64 = ls_logprob_file_read(path, &gold64, &err);
    CHECKF(rc64 == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/logprobs_hf_native.txt", dir);
    int rcn = ls_logprob_file_read(path, &native, &err);
    CHECKF(rcn == 0, "%s", err.msg);

    for (int p = 0; p < 2; p++) {
        ls_prec prec = p == 0 ? LS_F64 : LS_F32;
        ls_model m;
        rc = ls_model_load(dir, prec, &m, &err);
        CHECKF(rc == 0, "%s %s: %s", name, ls_prec_name(prec), err.msg);
        if (rc) continue;
        double **got = calloc((size_t)seqs.n, sizeof *got);
        int ok = got != NULL;
        for (int64_t s = 0; ok && s < seqs.n; s++) {
            for (int64_t t = 0; t < seqs.lens[s]; t++)
                if (seqs.seqs[s][t] >= m.cfg.vocab_size) {
                    CHECKF(0, "%s: token %d of sequence %lld outside vocab %lld", name,
                           seqs.seqs[s][t], (long long)s, (long long)m.cfg.vocab_size);
                    ok = 0;
                }
            got[s] = malloc((size_t)seqs.lens[s] * sizeof(double));
            if (!ok || !got[s]) { ok = 0; break; }
            rc = ls_reference_logprobs(&m, seqs.seqs[s], seqs.lens[s], NULL, got[s], &err);
            CHECKF(rc == 0, "%s %s seq %lld: %s", name, ls_prec_name(prec), (long long)s, err.msg);
            if (rc) ok = 0;
            /* a logprob is never positive: a cheap sanity check independent of the golden */
            for (int64_t t = 0; ok && t + 1 < seqs.lens[s]; t++)
                CHECKF(got[s][t] <= 0 && isfinite(got[s][t]), "%s %s seq %lld token %lld: %g",
                       name, ls_prec_name(prec), (long long)s, (long long)t + 1, got[s][t]);
        }
        CHECKF(ok, "%s %s: reference pass did not complete", name, ls_prec_name(prec));
        if (ok) {
            if (rc64 == 0)
                compare(name, ls_prec_name(prec), "logprobs_fp64.txt", &seqs, got, &gold64,
                        prec == LS_F64 ? 1e-9 : 2e-4);
            if (rcn == 0 && prec == LS_F64)
                compare(name, ls_prec_name(prec), "logprobs_hf_native.txt", &seqs, got, &native,
                        1e-4);
        }
        for (int64_t s = 0; got && s < seqs.n; s++) free(got[s]);
        free(got);
        ls_model_free(&m);
    }
    if (rc64 == 0) ls_logprob_file_free(&gold64);
    if (rcn == 0) ls_logprob_file_free(&native);
    ls_tokens_free(&seqs);
}

int main(void) {
    const char *src = getenv("LS_SOURCE_ROOT");
    if (!src) src = ".";
    static const char *const models[] = {"jamba-tiny-a", "jamba-tiny-b", "jamba-small-c"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) run_model(src, models[i]);
    fflush(stdout);
    return check_status();
}
