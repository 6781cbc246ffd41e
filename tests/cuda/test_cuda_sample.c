/* The device sampler (kernels/cuda/sample.cu) against its CPU twin, ls_sample
 * (engine/sampler.c), token for token: rows of f32 and f64 log-probabilities with exact
 * ties, NaN, -inf and -0.0, flat and peaked, vocabularies from 1 to 32000, every kind of
 * parameter set (greedy, temperature only, top_k, top_p, both, top_k past the vocabulary).
 * The host widens each row to double exactly as the engine does; the returned
 * log-probability must be that row's value of the token, bit for bit.
 *
 * The draw is the exponential race (a max of per-token keys) and top_p's sums run in the
 * host's order, so only exp() and log() can round differently; a token could then differ
 * only where two keys (or a top_p sum and its bound) fall within an ulp, which none of these
 * draws comes near (a mismatch is reported with its draw and fails the test). Every call runs
 * twice: with the rows sorted only when ls_cuda_sample_needs_sort says so, and always
 * sorted; the tokens must agree. Also: the same draws twice give the same tokens, a draw's
 * token does not depend on the other draws of the call, and a draw that needs the ranking
 * without sorted rows returns -1. Without a usable GPU the test exits 77 (skipped). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "kernels/cuda/kernels_cuda.h"
#include "tests/cuda/cu_check.h"
#include "tests/check.h"

#define CU(call) LS_CU_OR_EXIT(call, 1)

static uint64_t rng = 0x5eed;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static double urand(void) { return (double)(rnd() >> 11) * 0x1.0p-53; }

/* A log-softmax row: kind 0 flat random logits, 1 peaked, 2 few distinct values (ties),
 * 3 like 2 plus NaN, -inf and -0.0 entries. */
static void make_row(double *lp, int64_t V, int kind) {
    double mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < V; i++) {
        lp[i] = kind == 0 ? urand() * 4 - 2 : kind == 1 ? urand() * 30 - 20 : -(double)(rnd() % 5);
        if (lp[i] > mx) mx = lp[i];
    }
    for (int64_t i = 0; i < V; i++) sum += exp(lp[i] - mx);
    for (int64_t i = 0; i < V; i++) lp[i] = lp[i] - mx - log(sum);
    if (kind == 3 && V > 4) {
        lp[rnd() % (uint64_t)V] = NAN;
        lp[rnd() % (uint64_t)V] = -INFINITY;
        lp[rnd() % (uint64_t)V] = -0.0;
    }
}

typedef struct { int64_t V, rows; } shape;

/* Runs every draw of `jobs` on the device over rows (host, [n_rows][V] as double) stored in
 * precision f64 or f32, with the rows sorted as ls_cuda_sample_needs_sort says (sort < 0) or
 * as `sort` says; returns the number of mismatches with ls_sample. */
static int64_t check_call(const double *rows, int64_t n_rows, int64_t V, int f64,
                          const ls_cuda_sample_job *jobs, int64_t n, int sort, int32_t *tok_out) {
    const size_t esz = f64 ? 8 : 4;
    void *h = malloc((size_t)(n_rows * V) * esz);
    double *widened = malloc((size_t)(n_rows * V) * sizeof *widened);
    for (int64_t i = 0; i < n_rows * V; i++) {
        if (f64) ((double *)h)[i] = rows[i];
        else ((float *)h)[i] = (float)rows[i];
        widened[i] = f64 ? rows[i] : (double)((float *)h)[i];
    }
    void *d_rows, *work;
    ls_cuda_sample_job *d_jobs;
    int32_t *d_tok;
    double *d_lp;
    const int64_t wb = ls_cuda_sample_workspace(n_rows, V);
    CHECK(wb > 0);
    CU(cudaMalloc(&d_rows, (size_t)(n_rows * V) * esz));
    CU(cudaMalloc(&work, (size_t)wb));
    CU(cudaMalloc((void **)&d_jobs, (size_t)n * sizeof *d_jobs));
    CU(cudaMalloc((void **)&d_tok, (size_t)n * 4));
    CU(cudaMalloc((void **)&d_lp, (size_t)n * 8));
    CU(cudaMemcpy(d_rows, h, (size_t)(n_rows * V) * esz, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(d_jobs, jobs, (size_t)n * sizeof *d_jobs, cudaMemcpyHostToDevice));
    CU(cudaMemset(d_tok, 0xFF, (size_t)n * 4));
    const int sort_rows = sort < 0 ? ls_cuda_sample_needs_sort(jobs, n, V) : sort;
    if (f64)
        CU(ls_cuda_sample_f64(d_rows, n_rows, V, d_jobs, n, sort_rows, work, wb, d_tok, d_lp, 0));
    else
        CU(ls_cuda_sample_f32(d_rows, n_rows, V, d_jobs, n, sort_rows, work, wb, d_tok, d_lp, 0));
    int32_t *tok = malloc((size_t)n * 4);
    double *lp = malloc((size_t)n * 8);
    CU(cudaMemcpy(tok, d_tok, (size_t)n * 4, cudaMemcpyDeviceToHost));
    CU(cudaMemcpy(lp, d_lp, (size_t)n * 8, cudaMemcpyDeviceToHost));
    double *scratch = malloc((size_t)(2 * V + 2) * sizeof *scratch);
    int64_t bad = 0;
    for (int64_t j = 0; j < n; j++) {
        const ls_cuda_sample_job *jb = &jobs[j];
        const double *row = widened + jb->row * V;
        ls_sampling s = {jb->temperature, jb->top_k, jb->top_p};
        int32_t want = ls_sample(row, V, &s, jb->seed, jb->request, jb->rollout, jb->position,
                                 scratch);
        int lp_ok = tok[j] >= 0 && tok[j] < V &&
                    memcmp(&lp[j], &row[tok[j]], sizeof(double)) == 0;
        if (tok[j] != want || !lp_ok) {
            if (bad < 5)
                fprintf(stderr, "  mismatch: %s V %lld draw %lld (row %lld, T %g, top_k %lld, "
                                "top_p %g): device %d (lp %.17g), host %d (lp %.17g)\n",
                        f64 ? "f64" : "f32", (long long)V, (long long)j, (long long)jb->row,
                        jb->temperature, (long long)jb->top_k, jb->top_p, tok[j], lp[j], want,
                        want >= 0 ? row[want] : (double)NAN);
            bad++;
        }
        if (tok_out) tok_out[j] = tok[j];
    }
    cudaFree(d_rows);
    cudaFree(work);
    cudaFree(d_jobs);
    cudaFree(d_tok);
    cudaFree(d_lp);
    free(h);
    free(widened);
    free(tok);
    free(lp);
    free(scratch);
    return bad;
}

static void test_against_host(void) {
    static const ls_sampling params[] = {
        {0, 0, 1},      {1, 0, 1},      {0.7, 0, 1},    {2.5, 0, 1},   {1, 50, 1},
        {1, 1, 1},      {1, 0, 0.9},    {0.8, 40, 0.7}, {1, 0, 1e-12}, {1, 1000000, 1},
        {1e-300, 0, 1}, {1.3, 0, 0.999}};
    const int np = (int)(sizeof params / sizeof *params);
    static const shape shapes[] = {{1, 3}, {7, 5}, {3000, 6}, {32000, 4}};
    int64_t draws = 0, bad = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int64_t V = shapes[si].V, R = shapes[si].rows;
        double *rows = malloc((size_t)(R * V) * sizeof *rows);
        for (int64_t r = 0; r < R; r++) make_row(rows + r * V, V, (int)(r % 4));
        const int64_t n = 40 * np;
        ls_cuda_sample_job *jobs = calloc((size_t)n, sizeof *jobs);
        for (int64_t j = 0; j < n; j++) {
            const ls_sampling *p = &params[j % np];
            jobs[j] = (ls_cuda_sample_job){.row = (int64_t)(rnd() % (uint64_t)R),
                                           .temperature = p->temperature, .top_k = p->top_k,
                                           .top_p = p->top_p, .seed = 77, .request = rnd() % 9,
                                           .rollout = (uint64_t)j, .position = rnd() % 5000};
        }
        for (int f64 = 0; f64 < 2; f64++) {
            int32_t *t1 = malloc((size_t)n * 4), *t2 = malloc((size_t)n * 4);
            int64_t b = check_call(rows, R, V, f64, jobs, n, -1, t1);
            CHECKF(b == 0, "%s V %lld: %lld of %lld draws differ from ls_sample", f64 ? "f64" : "f32",
                   (long long)V, (long long)b, (long long)n);
            bad += b;
            draws += n;
            /* the same draws again with the rows always sorted, then the last draw alone: the
             * same tokens */
            b = check_call(rows, R, V, f64, jobs, n, 1, t2);
            CHECKF(b == 0 && memcmp(t1, t2, (size_t)n * 4) == 0,
                   "V %lld: the call with sorted rows differs", (long long)V);
            int32_t alone;
            (void)check_call(rows, R, V, f64, jobs + n - 1, 1, -1, &alone);
            CHECKF(alone == t1[n - 1], "V %lld: a draw alone (%d) differs from in a batch (%d)",
                   (long long)V, alone, t1[n - 1]);
            free(t1);
            free(t2);
            /* the draws that keep every token alone: no sort at all */
            ls_cuda_sample_job *all = calloc((size_t)n, sizeof *all);
            int64_t na = 0;
            for (int64_t j = 0; j < n; j++)
                if (jobs[j].top_k == 0 && jobs[j].top_p == 1.0) all[na++] = jobs[j];
            CHECK(na > 0 && ls_cuda_sample_needs_sort(all, na, V) == 0);
            b = check_call(rows, R, V, f64, all, na, -1, NULL);
            CHECKF(b == 0, "%s V %lld: %lld of %lld unsorted draws differ from ls_sample",
                   f64 ? "f64" : "f32", (long long)V, (long long)b, (long long)na);
            bad += b;
            draws += na;
            free(all);
        }
        free(rows);
        free(jobs);
    }
    printf("device sampler: %lld draws, %lld differ from ls_sample\n", (long long)draws,
           (long long)bad);
}

static void test_bad_arguments(void) {
    ls_cuda_sample_job j = {.row = 0, .temperature = 1.0, .top_k = 3, .top_p = 1.0};
    CHECK(ls_cuda_sample_needs_sort(&j, 1, 10) == 1);
    CHECK(ls_cuda_sample_f32(NULL, 1, 0, &j, 1, 1, NULL, 0, NULL, NULL, 0) ==
          cudaErrorInvalidValue);
    CHECK(ls_cuda_sample_f32(NULL, 0, 10, NULL, 0, 1, NULL, 0, NULL, NULL, 0) == cudaSuccess);
    float hrows[10];
    for (int i = 0; i < 10; i++) hrows[i] = -(float)i;
    void *rows;
    CU(cudaMalloc(&rows, sizeof hrows));
    CU(cudaMemcpy(rows, hrows, sizeof hrows, cudaMemcpyHostToDevice));
    int32_t *tok;
    CU(cudaMalloc((void **)&tok, 64));
    ls_cuda_sample_job *dj;
    CU(cudaMalloc((void **)&dj, sizeof j));
    CU(cudaMemcpy(dj, &j, sizeof j, cudaMemcpyHostToDevice));
    /* a workspace too small for the sort is refused with a message, not overrun */
    CHECK(ls_cuda_sample_f32(rows, 1, 10, dj, 1, 1, rows, 8, tok, (double *)(tok + 4), 0) ==
          cudaErrorInvalidValue);
    CHECK(strstr(ls_cuda_error_message(), "workspace") != NULL);
    /* a top_k draw without sorted rows: token -1, the broken contract visible */
    CU(ls_cuda_sample_f32(rows, 1, 10, dj, 1, 0, NULL, 0, tok, (double *)(tok + 4), 0));
    int32_t t = 0;
    CU(cudaMemcpy(&t, tok, 4, cudaMemcpyDeviceToHost));
    CHECKF(t == -1, "unsorted top_k draw: token %d, want -1", t);
    /* all tokens kept: no sort and no workspace needed */
    j.top_k = 0;
    CHECK(ls_cuda_sample_needs_sort(&j, 1, 10) == 0);
    CU(cudaMemcpy(dj, &j, sizeof j, cudaMemcpyHostToDevice));
    CU(ls_cuda_sample_f32(rows, 1, 10, dj, 1, 0, NULL, 0, tok, (double *)(tok + 4), 0));
    CU(cudaMemcpy(&t, tok, 4, cudaMemcpyDeviceToHost));
    ls_sampling s = {1.0, 0, 1.0};
    double wide[10];
    for (int i = 0; i < 10; i++) wide[i] = hrows[i];
    CHECKF(t == ls_sample(wide, 10, &s, 0, 0, 0, 0, NULL), "all-kept draw: token %d", t);
    cudaFree(rows);
    cudaFree(tok);
    cudaFree(dj);
}

int main(void) {
    if (!ls_cuda_device_available()) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    test_bad_arguments();
    test_against_host();
    return check_status();
}
