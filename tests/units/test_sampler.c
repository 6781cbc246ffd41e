/* Sampler: parameter checks, greedy ties, top_k / top_p limits, exact agreement
 * with a naive full-sort reference, key-only determinism, and empirical
 * frequencies against softmax(logprobs / T). */
#include "engine/philox.h"
#include "engine/sampler.h"
#include "tests/check.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void log_softmax(const double *logits, double *out, int n) {
    double m = logits[0], sum = 0;
    for (int i = 1; i < n; i++) m = logits[i] > m ? logits[i] : m;
    for (int i = 0; i < n; i++) sum += exp(logits[i] - m);
    for (int i = 0; i < n; i++) out[i] = logits[i] - m - log(sum);
}

/* ---- the spec, written the obvious way ------------------------------------ */

typedef struct { double lp; int64_t id; } cand;

static int cand_cmp(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->lp > b->lp) return -1;
    if (a->lp < b->lp) return 1;
    return a->id < b->id ? -1 : 1;
}

static int32_t naive_sample(const double *lp, int64_t V, const ls_sampling *s, uint64_t seed,
                            uint64_t req, uint64_t roll, uint64_t pos) {
    cand *c = malloc((size_t)V * sizeof *c);
    for (int64_t i = 0; i < V; i++) c[i] = (cand){isnan(lp[i]) ? -HUGE_VAL : lp[i], i};
    qsort(c, (size_t)V, sizeof *c, cand_cmp);
    int32_t out = (int32_t)c[0].id;
    if (s->temperature == 0 || !isfinite(c[0].lp)) { free(c); return out; }
    double mx = c[0].lp;
    int64_t keep = s->top_k == 0 || s->top_k > V ? V : s->top_k;
    if (s->top_p < 1) {
        double total = 0;
        if (keep < V) {
            for (int64_t j = 0; j < keep; j++) total += exp((c[j].lp - mx) / s->temperature);
        } else {
            for (int64_t i = 0; i < V; i++)
                total += exp(((isnan(lp[i]) ? -HUGE_VAL : lp[i]) - mx) / s->temperature);
        }
        double cum = 0;
        int64_t j = 0;
        while (j < keep) {
            cum += exp((c[j].lp - mx) / s->temperature);
            j++;
            if (cum >= s->top_p * total) break;
        }
        keep = j;
    }
    /* the exponential race over the kept tokens, in sorted order (any order gives the same
     * winner): largest w / -log(u_token), lowest id on ties */
    double best = -HUGE_VAL;
    int64_t pick = -1;
    for (int64_t j = 0; j < keep; j++) {
        double w = exp((c[j].lp - mx) / s->temperature);
        double key = w / -log(ls_token_uniform(seed, req, roll, pos, (uint32_t)c[j].id));
        if (key > best || (key == best && c[j].id < pick)) {
            best = key;
            pick = c[j].id;
        }
    }
    free(c);
    return (int32_t)pick;
}

/* --------------------------------------------------------------------------- */

static void test_check(void) {
    ls_err err;
    ls_sampling ok[] = {{0, 0, 1}, {1, 5, 0.9}, {0.01, 1, 1e-9}, {100, 0, 1}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) CHECK(ls_sampling_check(&ok[i], &err) == 0);
    ls_sampling bad[] = {{-0.1, 0, 1}, {NAN, 0, 1}, {INFINITY, 0, 1}, {1, -1, 1},
                         {1, 0, 0},    {1, 0, -1},  {1, 0, 1.0001},   {1, 0, NAN}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECKF(ls_sampling_check(&bad[i], &err) == -1, "case %zu", i);
        double lp[2] = {-0.5, -1};
        CHECKF(ls_sample(lp, 2, &bad[i], 1, 0, 0, 0, NULL) == -1, "case %zu", i);
    }
    double lp[1] = {0};
    CHECK(ls_sample(lp, 0, &ok[1], 1, 0, 0, 0, NULL) == -1);
    CHECK(ls_sample(lp, 1, &ok[1], 1, 0, 0, 0, NULL) == 0);
}

static void test_greedy(void) {
    ls_sampling g = {0, 0, 1};
    double a[5] = {-3, -1, -2, -1, -7};
    CHECK(ls_sample(a, 5, &g, 1, 2, 3, 4, NULL) == 1); /* tie: lowest id */
    double b[4] = {NAN, -5, NAN, -6};
    CHECK(ls_sample(b, 4, &g, 1, 2, 3, 4, NULL) == 1);
    double c[3] = {-INFINITY, -INFINITY, -INFINITY};
    CHECK(ls_sample(c, 3, &g, 1, 2, 3, 4, NULL) == 0);
    ls_sampling t = {1, 0, 1};
    CHECK(ls_sample(c, 3, &t, 1, 2, 3, 4, NULL) == 0); /* nothing to sample: greedy */
    /* Vanishing temperature: greedy, even where lp / T would overflow. */
    ls_sampling tiny = {1e-300, 0, 1};
    double d[4] = {-50, -2, -2.5, -2.0000001};
    int all = 1;
    for (uint64_t k = 0; k < 200; k++) all &= ls_sample(d, 4, &tiny, 9, k, 0, k, NULL) == 1;
    CHECK(all);
}

/* Rows with many exact ties, a NaN and a -inf, over several parameter sets: the
 * sampler must equal the naive reference token for token; top_k = 1 and a tiny
 * top_p must equal greedy. */
static void test_against_reference(void) {
    enum { V = 3000 };
    static double lp[V], scratch[2 * V];
    uint64_t x = 12345;
    for (int i = 0; i < V; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        lp[i] = -(double)(x % 40) * 0.25 - 1.0; /* 40 distinct values: ties everywhere */
    }
    lp[17] = NAN;
    lp[18] = -INFINITY;
    const ls_sampling params[] = {{1, 0, 1},   {0.7, 0, 1},  {1.3, 50, 1}, {1, 0, 0.5},
                                  {0.9, 200, 0.8}, {2, 1, 1}, {1, 0, 1e-12}, {1, V + 5, 1},
                                  {1, V, 0.999}};
    const ls_sampling greedy = {0, 0, 1};
    int32_t g = ls_sample(lp, V, &greedy, 0, 0, 0, 0, NULL);
    for (size_t pi = 0; pi < sizeof params / sizeof *params; pi++) {
        int mismatch = 0, not_greedy = 0, bad_token = 0;
        for (uint64_t k = 0; k < 300; k++) {
            int32_t got = ls_sample(lp, V, &params[pi], 77, k, k % 3, 1000 + k, scratch);
            int32_t want = naive_sample(lp, V, &params[pi], 77, k, k % 3, 1000 + k);
            if (got != want) mismatch++;
            if (got != g) not_greedy++;
            if (got == 17 || got == 18 || got < 0) bad_token++;
        }
        CHECKF(mismatch == 0, "params %zu: %d mismatches", pi, mismatch);
        CHECKF(bad_token == 0, "params %zu: sampled NaN/-inf/invalid", pi);
        if (params[pi].top_k == 1 || params[pi].top_p < 1e-6)
            CHECKF(not_greedy == 0, "params %zu: %d non-greedy", pi, not_greedy);
    }
}

/* Small rows, every top_k, many tie patterns: catches ranking errors that a large
 * row hides (e.g. a heap that mishandles its last leaf). */
static void test_small_rows(void) {
    uint64_t x = 99;
    int mismatch = 0, runs = 0;
    for (int64_t V = 1; V <= 9; V++) {
        for (int row = 0; row < 200; row++) {
            double lp[9];
            for (int64_t i = 0; i < V; i++) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                lp[i] = -1.0 - (double)(x % 4);
            }
            for (int64_t k = 0; k <= V; k++) {
                const double tops[2] = {1.0, 0.5};
                for (int t = 0; t < 2; t++) {
                    ls_sampling s = {1.0, k, tops[t]};
                    for (uint64_t key = 0; key < 10; key++) {
                        runs++;
                        if (ls_sample(lp, V, &s, 1, key, 0, (uint64_t)row, NULL) !=
                            naive_sample(lp, V, &s, 1, key, 0, (uint64_t)row))
                            mismatch++;
                    }
                }
            }
        }
    }
    CHECKF(mismatch == 0, "%d of %d small-row samples differ from the reference", mismatch, runs);
}

/* top_p keeps the smallest prefix whose mass is >= top_p: with four equal weights
 * (exact in binary) and top_p = 0.5 that is exactly two tokens, the lowest ids. */
static void test_top_p_boundary(void) {
    const double lp[4] = {-1.3862943611198906, -1.3862943611198906, -1.3862943611198906,
                          -1.3862943611198906};
    const ls_sampling s = {1.0, 0, 0.5};
    int count[4] = {0};
    for (uint64_t k = 0; k < 1000; k++) count[ls_sample(lp, 4, &s, 8, k, 0, 0, NULL)]++;
    CHECKF(count[0] > 400 && count[1] > 400 && count[2] == 0 && count[3] == 0,
           "counts %d %d %d %d", count[0], count[1], count[2], count[3]);
}

/* A token depends only on (row, params, seed, request, rollout, position). */
static void test_key_determinism(void) {
    enum { V = 64, N = 1000 };
    double logits[V], lp[V];
    for (int i = 0; i < V; i++) logits[i] = sin(i * 0.7) * 2;
    log_softmax(logits, lp, V);
    const ls_sampling s = {1, 0, 0.95};
    static int32_t fwd[N], rev[N];
    double scratch[2 * V];
    for (int k = 0; k < N; k++) fwd[k] = ls_sample(lp, V, &s, 5, (uint64_t)k / 10, 1, (uint64_t)k % 10, scratch);
    for (int k = N - 1; k >= 0; k--) rev[k] = ls_sample(lp, V, &s, 5, (uint64_t)k / 10, 1, (uint64_t)k % 10, NULL);
    CHECK(memcmp(fwd, rev, sizeof fwd) == 0);
    /* Rollout, seed and position are part of the key. */
    int diff_roll = 0, diff_seed = 0, diff_pos = 0;
    for (int k = 0; k < N; k++) {
        diff_roll += ls_sample(lp, V, &s, 5, (uint64_t)k / 10, 2, (uint64_t)k % 10, NULL) != fwd[k];
        diff_seed += ls_sample(lp, V, &s, 6, (uint64_t)k / 10, 1, (uint64_t)k % 10, NULL) != fwd[k];
        diff_pos += ls_sample(lp, V, &s, 5, (uint64_t)k / 10, 1, (uint64_t)k % 10 + 10, NULL) != fwd[k];
    }
    CHECK(diff_roll > N / 2 && diff_seed > N / 2 && diff_pos > N / 2);
}

/* Pearson chi-square of counts against expected probabilities (all cells >= 5). */
static double chi2(const int *count, const double *p, int n, int total) {
    double c = 0;
    for (int i = 0; i < n; i++) {
        double e = p[i] * total;
        c += (count[i] - e) * (count[i] - e) / e;
    }
    return c;
}

static void test_frequencies(void) {
    enum { V = 8, N = 40000 };
    const double logits[V] = {1.0, 0.5, 0.0, -0.5, -1.0, -2.0, -3.0, 0.2};
    double lp[V];
    log_softmax(logits, lp, V);
    const double T = 0.8;
    double p[V], z = 0;
    for (int i = 0; i < V; i++) z += exp(logits[i] / T);
    for (int i = 0; i < V; i++) p[i] = exp(logits[i] / T) / z;

    /* Full distribution. 7 dof: P(chi2 > 40) ~ 1e-6. */
    int count[V] = {0};
    ls_sampling s = {T, 0, 1};
    for (int k = 0; k < N; k++) count[ls_sample(lp, V, &s, 3, (uint64_t)k / 100, 0, (uint64_t)k % 100, NULL)]++;
    double c = chi2(count, p, V, N);
    CHECKF(c < 40, "full: chi2 %g", c);

    /* top_k = 3 keeps tokens 0, 1, 7 (logits 1.0, 0.5, 0.2). 2 dof: P(> 28) ~ 1e-6. */
    int ck[V] = {0};
    s.top_k = 3;
    for (int k = 0; k < N; k++) ck[ls_sample(lp, V, &s, 3, (uint64_t)k / 100, 0, (uint64_t)k % 100, NULL)]++;
    double pk[3] = {p[0], p[1], p[7]}, zk = p[0] + p[1] + p[7];
    for (int i = 0; i < 3; i++) pk[i] /= zk;
    int kc[3] = {ck[0], ck[1], ck[7]};
    c = chi2(kc, pk, 3, N);
    CHECKF(c < 28, "top_k: chi2 %g", c);
    CHECK(kc[0] + kc[1] + kc[2] == N);

    /* top_p = 0.7: the ranked masses are p0 ~ .41, p1 ~ .22, p7 ~ .15 (cumulative
     * .63, .78), so exactly {0, 1, 7} is kept, with no mass near the threshold. */
    double cum = p[0] + p[1];
    CHECK(cum < 0.67 && cum + p[7] > 0.73);
    int cp[V] = {0};
    s.top_k = 0;
    s.top_p = 0.7;
    for (int k = 0; k < N; k++) cp[ls_sample(lp, V, &s, 4, (uint64_t)k / 100, 0, (uint64_t)k % 100, NULL)]++;
    int pc[3] = {cp[0], cp[1], cp[7]};
    c = chi2(pc, pk, 3, N);
    CHECKF(c < 28, "top_p: chi2 %g", c);
    CHECK(pc[0] + pc[1] + pc[2] == N);
}

int main(void) {
    test_check();
    test_greedy();
    test_against_reference();
    test_small_rows();
    test_top_p_boundary();
    test_key_determinism();
    test_frequencies();
    return check_status();
}
