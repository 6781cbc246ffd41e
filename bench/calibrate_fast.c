/* Fast mode's tolerance, calibrated (run on the GPU machine; prints markdown tables).
 *
 *   calibrate_fast [--seeds N] [--configs DIR] [--model DIR]
 *
 * |delta| is the fast GPU engine (dense linears through cuBLAS) against the invariant GPU
 * reference (our fixed-order kernels) in the same precision -- exactly what
 * `lockstep run CONFIG --set backend=cuda --set mode=fast` compares. For each precision
 * setting (fp64: cublasDgemm; fp32: cuBLAS pedantic fp32; fp32+TF32: tensor cores):
 *
 * 1. Clean runs: configs/default.yaml, configs/gpu/wide_prefill.yaml (wide enough for the
 *    grouped cuBLAS MoE in fp32 / fp64, the dense one with TF32) and every fault config with its fault OFF, each with
 *    workload.seed = 0..N-1 -- every token's |delta| pooled: p50, p99, p99.9,
 *    p99.99, max, and the largest clean values with where they came from.
 *    The rule: compare.max_abs = 10 x the clean p99.9, rounded up to one significant digit;
 *    compare.max_divergent_frac = the largest share of one clean run's tokens above it
 *    (0 when no clean token is above it), rounded up to one digit.
 * 2. Validation: the same configurations with seeds N..2N-1 (not used to calibrate): tokens
 *    flagged, and runs the rule calls divergent (want 0).
 * 3. Faults: every fault config (configs/faults) with its fault ON, in this precision, fast
 *    mode, with the rule: caught or not, the smallest flagged |delta|, the largest unflagged
 *    one, and the separation = smallest flagged |delta| / clean p99.99.
 * --model DIR runs every configuration on another checkpoint (e.g. one without MoE routing).
 * No GPU: exit 77. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "engine/backend.h"
#include "harness/config.h"
#include "harness/pipeline.h"

typedef struct dvec {
    double *v;
    int64_t n, cap;
} dvec;

static void push(dvec *d, double x) {
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 4096;
        d->v = realloc(d->v, (size_t)d->cap * sizeof *d->v);
        if (!d->v) { fprintf(stderr, "out of memory\n"); exit(2); }
    }
    d->v[d->n++] = x;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const dvec *d, double p) {   /* nearest rank on the sorted values */
    if (d->n == 0) return (double)NAN;
    int64_t i = (int64_t)ceil(p / 100.0 * (double)d->n) - 1;
    if (i < 0) i = 0;
    if (i >= d->n) i = d->n - 1;
    return d->v[i];
}

static double round_up_1sig(double x) {
    if (!(x > 0)) return x;
    double e = pow(10.0, floor(log10(x)));
    return ceil(x / e - 1e-9) * e;
}

static int cmps(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct prec_mode {
    const char *name, *prec;
    int tf32;
} prec_mode;

/* One run of `path`: fault `fault` (NULL: none touched) on/off, the precision mode, fast,
 * seed (-1: the config's), tolerance. Returns 0 with the outcome (caller frees). */
static const char *model_override;

static int run(const char *path, const char *fault, int on, const prec_mode *pm, int64_t seed,
               double tol, double frac, ls_run_outcome *o, ls_run_config *rc) {
    ls_err err = {{0}};
    char set[256];
    if (ls_config_load(path, rc, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
    int bad = ls_config_set(rc, "backend=cuda", &err) || ls_config_set(rc, "mode=fast", &err) ||
              ls_config_set(rc, "compare.probe_layers=false", &err);
    snprintf(set, sizeof set, "compare.max_divergent_frac=%.17g", frac);
    bad = bad || ls_config_set(rc, set, &err);
    if (model_override) {
        snprintf(set, sizeof set, "model=%s", model_override);
        bad = bad || ls_config_set(rc, set, &err);
    }
    snprintf(set, sizeof set, "precision=%s", pm->prec);
    bad = bad || ls_config_set(rc, set, &err);
    snprintf(set, sizeof set, "compare.max_abs=%.17g", tol);
    bad = bad || ls_config_set(rc, set, &err);
    if (fault) {
        snprintf(set, sizeof set, "faults.%s.enabled=%s", fault, on ? "true" : "false");
        bad = bad || ls_config_set(rc, set, &err);
    }
    if (seed >= 0) {
        snprintf(set, sizeof set, "workload.seed=%lld", (long long)seed);
        bad = bad || ls_config_set(rc, set, &err);
    }
    bad = bad || ls_config_set(rc, pm->tf32 ? "tf32=true" : "tf32=false", &err);
    if (bad || ls_config_check(rc, &err)) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        ls_config_free(rc);
        return -1;
    }
    free(rc->trace_path);
    rc->trace_path = NULL;
    if (ls_run_execute(rc, o, &err)) {
        fprintf(stderr, "%s (%s): %s\n", path, pm->name, err.msg);
        ls_run_outcome_free(o);
        ls_config_free(rc);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int64_t seeds = 16;
    const char *root = getenv("LS_SOURCE_ROOT");
    if (!root) root = ".";
    char cdir[4096];
    snprintf(cdir, sizeof cdir, "%s/configs", root);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seeds") && i + 1 < argc) seeds = strtoll(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--configs") && i + 1 < argc) snprintf(cdir, sizeof cdir, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model_override = argv[++i];
        else {
            fprintf(stderr, "usage: calibrate_fast [--seeds N] [--configs DIR] [--model DIR]\n");
            return 2;
        }
    }
    if (!ls_backend_cuda_available()) {
        fprintf(stderr, "no CUDA device (or built without CUDA): skipped\n");
        _exit(77);
    }
    /* the configurations: default.yaml and gpu/wide_prefill.yaml (no fault), the fault configs */
    char *paths[64], *faults[64];
    int n = 0;
    char fdir[4200];
    snprintf(fdir, sizeof fdir, "%s/faults", cdir);
    DIR *d = opendir(fdir);
    if (!d) { fprintf(stderr, "%s: cannot open\n", fdir); return 2; }
    struct dirent *de;
    char *names[64];
    int nn = 0;
    while ((de = readdir(d)) && nn < 63) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".yaml")) names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmps);
    char buf[4600];
    snprintf(buf, sizeof buf, "%s/default.yaml", cdir);
    paths[n] = strdup(buf);
    faults[n++] = NULL;
    snprintf(buf, sizeof buf, "%s/gpu/wide_prefill.yaml", cdir);
    if (access(buf, R_OK) != 0) { fprintf(stderr, "%s: cannot read\n", buf); return 2; }
    paths[n] = strdup(buf);
    faults[n++] = NULL;
    for (int i = 0; i < nn; i++) {
        snprintf(buf, sizeof buf, "%s/%s", fdir, names[i]);
        paths[n] = strdup(buf);
        faults[n] = strndup(names[i], strlen(names[i]) - 5);
        n++;
        free(names[i]);
    }
    struct cudaDeviceProp prop;
    int dev = 0;
    cudaGetDevice(&dev);
    cudaGetDeviceProperties(&prop, dev);
    printf("# Fast-mode calibration on %s\n\n", prop.name);
    printf("|delta| = fast GPU engine (cuBLAS linears) vs the invariant GPU reference, same precision; "
           "clean = %d configurations (configs/default.yaml, configs/gpu/wide_prefill.yaml, "
           "configs/faults/*.yaml with the fault off) "
           "x workload.seed 0..%lld%s%s; validation = seeds %lld..%lld. Rule: max_abs = 10 x clean p99.9 "
           "(1 digit, rounded up); max_divergent_frac = the largest share of one clean run's tokens "
           "above it (1 digit, rounded up; 0 if none).\n\n",
           n, (long long)seeds - 1, model_override ? ", model " : "", model_override ? model_override : "",
           (long long)seeds, (long long)(2 * seeds - 1));
    static const prec_mode PM[] = {{"fp64", "fp64", 0}, {"fp32", "fp32", 0}, {"fp32+TF32", "fp32", 1}};
    enum { NP = sizeof PM / sizeof *PM };
    char lines[NP][640], outl[NP * 6][400];
    char fault_rows[NP * 16][512];
    int n_fault_rows = 0, n_out = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int p = 0; p < NP; p++) {
        dvec all = {0}, runs_toks[64 * 64];
        memset(runs_toks, 0, sizeof runs_toks);
        int64_t zeros = 0, runs = 0, errors = 0;
        /* the largest clean |delta|s, with where they came from */
        struct { double a; int c; int64_t seed, req, roll, pos; double eng, ref; int32_t tok, amax; } top[5] = {{0}};
        for (int c = 0; c < n; c++)
            for (int64_t s = 0; s < seeds; s++) {
                ls_run_outcome o;
                ls_run_config rc;
                if (run(paths[c], faults[c], 0, &PM[p], s, 1e300, 0, &o, &rc)) { errors++; continue; }
                dvec *rt = &runs_toks[runs < 64 * 64 ? runs : 64 * 64 - 1];
                for (int64_t t = 0; t < o.cmp.n_tokens; t++) {
                    const ls_token_cmp *tk = &o.cmp.tokens[t];
                    double a = fabs(tk->delta);
                    if (!isfinite(a)) a = INFINITY;
                    push(&all, a);
                    push(rt, a);
                    zeros += a == 0;
                    if (a > top[4].a) {
                        int i = 4;
                        while (i > 0 && a > top[i - 1].a) { top[i] = top[i - 1]; i--; }
                        const ls_engine_seq *q = &o.engine.seqs[tk->seq];
                        top[i].a = a; top[i].c = c; top[i].seed = s; top[i].req = q->request;
                        top[i].roll = q->rollout; top[i].pos = tk->position; top[i].eng = tk->engine;
                        top[i].ref = tk->reference; top[i].tok = tk->token; top[i].amax = tk->ref_argmax;
                    }
                }
                runs++;
                ls_run_outcome_free(&o);
                ls_config_free(&rc);
            }
        qsort(all.v, (size_t)all.n, sizeof *all.v, cmpd);
        const double mx = all.n ? all.v[all.n - 1] : (double)NAN, p99 = pct(&all, 99);
        const double p9999 = pct(&all, 99.99);
        const double thr = round_up_1sig(10 * pct(&all, 99.9));
        double fmax = 0;
        int64_t above = 0;
        for (int64_t r = 0; r < runs && r < 64 * 64; r++) {
            int64_t k = 0;
            for (int64_t t = 0; t < runs_toks[r].n; t++) k += !(runs_toks[r].v[t] <= thr);
            above += k;
            if (runs_toks[r].n && (double)k / (double)runs_toks[r].n > fmax)
                fmax = (double)k / (double)runs_toks[r].n;
            free(runs_toks[r].v);
        }
        const double frac = round_up_1sig(fmax);
        for (int i = 0; i < 5 && top[i].a > 0; i++) {
            const char *base = strrchr(paths[top[i].c], '/');
            snprintf(outl[n_out++], sizeof outl[0],
                     "| %s | %.3g | %s seed %lld | request %lld rollout %lld position %lld | %.9g | %.9g | %d / %d |",
                     PM[p].name, top[i].a, base ? base + 1 : paths[top[i].c], (long long)top[i].seed,
                     (long long)top[i].req, (long long)top[i].roll, (long long)top[i].pos, top[i].eng,
                     top[i].ref, top[i].tok, top[i].amax);
        }
        /* validation on fresh seeds, with the rule */
        int64_t vtok = 0, vflag = 0, vruns = 0, valarm = 0;
        double vmax = 0;
        for (int c = 0; c < n; c++)
            for (int64_t s = seeds; s < 2 * seeds; s++) {
                ls_run_outcome o;
                ls_run_config rc;
                if (run(paths[c], faults[c], 0, &PM[p], s, thr, frac, &o, &rc)) { errors++; continue; }
                vtok += o.cmp.sum.tokens;
                vflag += o.cmp.sum.divergent_tokens;
                vruns++;
                valarm += o.diverged;
                if (!(o.cmp.sum.max_abs <= vmax)) vmax = o.cmp.sum.max_abs;
                ls_run_outcome_free(&o);
                ls_config_free(&rc);
            }
        snprintf(lines[p], sizeof lines[p],
                 "| %s | %lld | %lld | %.1f%% | %.2e | %.2e | %.2e | %.2e | %.2e | **%.0e** | %lld (%.3f%%) | **%.2g** | %lld runs, %lld tokens: max %.2e, %lld flagged, %lld runs divergent |%s",
                 PM[p].name, (long long)runs, (long long)all.n,
                 all.n ? 100.0 * (double)zeros / (double)all.n : 0.0, pct(&all, 50), p99,
                 pct(&all, 99.9), p9999, mx, thr, (long long)above,
                 all.n ? 100.0 * (double)above / (double)all.n : 0.0, frac, (long long)vruns,
                 (long long)vtok, vmax, (long long)vflag, (long long)valarm,
                 errors ? " (some runs failed: see stderr)" : "");
        fprintf(stderr, "%s: calibrated (%lld clean runs)\n", PM[p].name, (long long)runs);
        /* every planted fault, with the rule */
        for (int c = 0; c < n; c++) {
            if (!faults[c]) continue;   /* the clean-only configurations */
            ls_run_outcome o;
            ls_run_config rc;
            if (run(paths[c], faults[c], 1, &PM[p], -1, thr, frac, &o, &rc)) {
                snprintf(fault_rows[n_fault_rows++], 512, "| %s | %s | error | | | | | | | |", faults[c], PM[p].name);
                continue;
            }
            double small = INFINITY, big_unflagged = 0, mxf = 0;
            int64_t flagged = 0;
            for (int64_t t = 0; t < o.cmp.n_tokens; t++) {
                double a = fabs(o.cmp.tokens[t].delta);
                if (!isfinite(a)) a = INFINITY;
                if (a > mxf) mxf = a;
                if (o.cmp.tokens[t].divergent) {
                    flagged++;
                    if (a < small) small = a;
                } else if (a > big_unflagged) {
                    big_unflagged = a;
                }
            }
            const double share = o.cmp.sum.tokens ? (double)flagged / (double)o.cmp.sum.tokens : 0;
            snprintf(fault_rows[n_fault_rows++], 512,
                     "| %s | %s | %lld | %lld (%.0f%%) | %.3g | %.2e | %.3g | %.3g | %s |", faults[c], PM[p].name,
                     (long long)o.cmp.sum.tokens, (long long)flagged, 100 * share, small, big_unflagged, mxf,
                     flagged ? small / p9999 : 0.0, o.diverged ? "caught" : "**MISSED**");
            ls_run_outcome_free(&o);
            ls_config_free(&rc);
        }
        free(all.v);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("| precision | clean runs | tokens | exactly 0 | p50 | p99 | p99.9 | p99.99 | max | max_abs | clean tokens above | max_divergent_frac | validation (fresh seeds) |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int p = 0; p < NP; p++) printf("%s\n", lines[p]);
    printf("\nThe largest clean |delta| per precision (token sampled / reference argmax):\n\n");
    printf("| precision | abs delta | run | token | engine | reference | token / argmax |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < n_out; i++) printf("%s\n", outl[i]);
    printf("\nPlanted faults in fast mode (each config's own seed) under the rule above. "
           "separation = smallest flagged |delta| / clean p99.99.\n\n");
    printf("| fault | precision | tokens | flagged | smallest flagged | largest unflagged | max | separation | verdict |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < n_fault_rows; i++) printf("%s\n", fault_rows[i]);
    printf("\n(%.0f s)\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    for (int c = 0; c < n; c++) { free(paths[c]); free(faults[c]); }
    return 0;
}
