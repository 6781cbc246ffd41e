/* Every CPU kernel of kernels/kernels.h, in float32 and float64, against a plain
 * long-double implementation written here from the math (not from the kernel), on
 * fixed-seed random inputs in [-2, 2]. Errors are measured relative to the problem's
 * own scale (the sum of absolute terms for a sum), so the tolerance is ~1e-12 (f64) and
 * ~1e-5 (f32) whatever cancellation the random inputs produce.
 *
 * Then the invariances the engine's bitwise equality rests on, checked BITWISE (memcmp):
 * a row alone or inside a batch; keys contiguous or scattered over shuffled paged blocks;
 * a conv / scan run in one piece or in chunks with the state carried (and moved).
 *
 * The file includes itself twice, once per precision, like the kernels do. */
#ifndef LS_T

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "tests/check.h"

typedef long double LD;

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t xorshift(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}
/* uniform in [lo, hi] */
static double urand(double lo, double hi) {
    return lo + (hi - lo) * ((double)(xorshift() >> 11) * 0x1.0p-53);
}
static int64_t irand(int64_t n) { return (int64_t)(xorshift() % (uint64_t)n); }

static LD silu_ld(LD x) { return x / (1.0L + expl(-x)); }

/* Largest error seen per kernel and precision, printed at the end. */
typedef struct { const char *name; double f32, f64; } err_row;
static err_row errs[16];
static int n_errs;
static void note_err(const char *name, int is64, double e) {
    int i = 0;
    while (i < n_errs && strcmp(errs[i].name, name)) i++;
    if (i == n_errs) {
        errs[n_errs].name = name;
        errs[n_errs].f32 = errs[n_errs].f64 = 0;
        n_errs++;
    }
    double *p = is64 ? &errs[i].f64 : &errs[i].f32;
    if (!(e <= *p)) *p = e;
}

#define LS_T float
#define LS_S(n) n##_f32
#define LS_TOL 1e-5
#define LS_IS64 0
#include "tests/test_kernels.c"
#undef LS_T
#undef LS_S
#undef LS_TOL
#undef LS_IS64
#define LS_T double
#define LS_S(n) n##_f64
#define LS_TOL 1e-12
#define LS_IS64 1
#include "tests/test_kernels.c"

int main(void) {
    run_all_f32();
    run_all_f64();
    printf("%-16s %-12s %-12s  (largest error / scale; tolerance 1e-5 / 1e-12)\n", "kernel", "f32", "f64");
    for (int i = 0; i < n_errs; i++)
        printf("%-16s %-12.3e %-12.3e\n", errs[i].name, errs[i].f32, errs[i].f64);
    fflush(stdout);
    return check_status();
}

#else /* one precision: LS_T, LS_S, LS_TOL */

#define T LS_T
#define PREC (LS_IS64 ? "f64" : "f32")

/* |got - ref| <= tol * scale; records the ratio. Returns 1 when close. */
static int LS_S(close)(const char *kernel, T got, LD ref, LD scale) {
    LD d = fabsl((LD)got - ref);
    LD s = scale > 0 ? scale : 1e-300L;
    double e = (double)(d / s);
    if (isnan((double)got) || isnan(e)) e = (double)INFINITY;
    note_err(kernel, LS_IS64, e);
    return e <= LS_TOL;
}

static T *LS_S(rand_vec)(int64_t n, double lo, double hi) {
    T *v = malloc((size_t)(n > 0 ? n : 1) * sizeof(T));
    if (!v) abort();
    for (int64_t i = 0; i < n; i++) v[i] = (T)urand(lo, hi);
    return v;
}

/* ---- linear --------------------------------------------------------------------------- */
static void LS_S(test_linear)(void) {
    static const int64_t ins[] = {1, 2, 7, 8, 9, 15, 16, 37, 64};
    static const int64_t outs[] = {1, 5, 12};
    static const int64_t rowss[] = {1, 3, 9};
    for (size_t a = 0; a < sizeof ins / sizeof *ins; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t r = 0; r < 3; r++)
                for (int bias = 0; bias < 2; bias++) {
                    int64_t in = ins[a], out = outs[b], rows = rowss[r];
                    T *x = LS_S(rand_vec)(rows * in, -2, 2);
                    T *w = LS_S(rand_vec)(out * in, -2, 2);
                    T *bv = bias ? LS_S(rand_vec)(out, -2, 2) : NULL;
                    T *y = LS_S(rand_vec)(rows * out, 100, 100);   /* overwritten */
                    LS_S(ls_linear)(x, rows, in, w, bv, out, y);
                    int bad = 0;
                    for (int64_t m = 0; m < rows; m++)
                        for (int64_t o = 0; o < out; o++) {
                            LD s = 0, sa = 0;
                            for (int64_t k = 0; k < in; k++) {
                                LD t = (LD)w[o * in + k] * (LD)x[m * in + k];
                                s += t;
                                sa += fabsl(t);
                            }
                            if (bv) { s += (LD)bv[o]; sa += fabsl((LD)bv[o]); }
                            if (!LS_S(close)("linear", y[m * out + o], s, sa) && bad++ < 3)
                                CHECKF(0, "%s linear in=%lld out=%lld rows=%lld bias=%d [%lld][%lld]: %.17g vs %.17Lg",
                                       PREC, (long long)in, (long long)out, (long long)rows, bias,
                                       (long long)m, (long long)o, (double)y[m * out + o], s);
                        }
                    CHECK(bad == 0);
                    /* BITWISE: each row alone gives the bits it had inside the batch */
                    T *y1 = malloc((size_t)out * sizeof(T));
                    for (int64_t m = 0; y1 && m < rows; m++) {
                        LS_S(ls_linear)(x + m * in, 1, in, w, bv, out, y1);
                        CHECKF(memcmp(y1, y + m * out, (size_t)out * sizeof(T)) == 0,
                               "%s linear in=%lld rows=%lld: row %lld alone differs in bits from the batch",
                               PREC, (long long)in, (long long)rows, (long long)m);
                    }
                    free(y1);
                    free(x); free(w); free(bv); free(y);
                }
}

/* Each term enters its partial sum as one fma, on the CPU as on the GPU twin: partial 0
 * holds -(1 + 2e) after k = 0, and k = 8 adds (1 + e)^2 = 1 + 2e + e^2, whose e^2 lies
 * below half an ulp of 1. A fused multiply-add keeps it (y = e^2 exactly); a rounded
 * product then a sum gives 0. in = 9 puts k = 8 in dot8's tail loop, in = 17 in its main
 * loop. */
static void LS_S(test_linear_fused)(void) {
    const T e = LS_IS64 ? (T)0x1p-28 : (T)0x1p-13;
    for (int64_t in = 9; in <= 17; in += 8) {
        T w[17] = {0}, x[17] = {0}, y = -1;
        w[0] = -(1 + 2 * e);
        x[0] = 1;
        w[8] = x[8] = 1 + e;
        LS_S(ls_linear)(x, 1, in, w, NULL, 1, &y);
        CHECKF(y == e * e, "%s linear in=%lld: %.17g, the fused sum keeps e^2 = %.17g (a separate "
               "multiply and add gives 0)", PREC, (long long)in, (double)y, (double)(e * e));
    }
}

/* ---- rmsnorm -------------------------------------------------------------------------- */
static void LS_S(test_rmsnorm)(void) {
    static const int64_t ns[] = {1, 3, 8, 37, 64, 128};
    static const double epss[] = {1e-6, 1e-5, 0.5};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t e = 0; e < 3; e++) {
            int64_t n = ns[a], rows = 5;
            T *x = LS_S(rand_vec)(rows * n, -2, 2);
            T *w = LS_S(rand_vec)(n, -2, 2);
            if (a == 0) x[0] = 0;   /* an all-zero row: eps keeps it finite */
            T *y = LS_S(rand_vec)(rows * n, 0, 0);
            LS_S(ls_rmsnorm)(x, rows, n, w, epss[e], y);
            int bad = 0;
            for (int64_t m = 0; m < rows; m++) {
                LD ss = 0;
                for (int64_t i = 0; i < n; i++) ss += (LD)x[m * n + i] * (LD)x[m * n + i];
                LD inv = 1.0L / sqrtl(ss / (LD)n + (LD)(T)epss[e]);
                for (int64_t i = 0; i < n; i++) {
                    LD r = (LD)w[i] * (LD)x[m * n + i] * inv;
                    if (!LS_S(close)("rmsnorm", y[m * n + i], r, fabsl(r)) && bad++ < 3)
                        CHECKF(0, "%s rmsnorm n=%lld eps=%g [%lld][%lld]: %.17g vs %.17Lg", PREC,
                               (long long)n, epss[e], (long long)m, (long long)i,
                               (double)y[m * n + i], r);
                }
            }
            CHECK(bad == 0);
            /* BITWISE: a row alone == the same row in the batch */
            T *y1 = malloc((size_t)n * sizeof(T));
            for (int64_t m = 0; y1 && m < rows; m++) {
                LS_S(ls_rmsnorm)(x + m * n, 1, n, w, epss[e], y1);
                CHECKF(memcmp(y1, y + m * n, (size_t)n * sizeof(T)) == 0,
                       "%s rmsnorm n=%lld: row %lld alone differs in bits", PREC, (long long)n,
                       (long long)m);
            }
            free(y1);
            free(x); free(w); free(y);
        }
}

/* The lane order (kernels/lanesum.c), which the GPU kernels reproduce bit for bit: on a row
 * where a running sum and the lanes' tree round differently, rmsnorm must take the tree.
 * x[0]^2 = big, whose ulp is u; lanes 1 .. 100 each collect u elements of 1 (indices l,
 * l + 256, ...). The tree adds the ones to each other first (exact multiples of u) and then
 * to big: big + 100 u, exactly. A running sum adds each 1 to big alone and rounds it away:
 * big. 100 ulps survive the mean and the square root in either precision. */
static void LS_S(test_lanes)(void) {
    const T x0 = LS_IS64 ? (T)0x1p27 : (T)0x1p12, big = x0 * x0;
    const int ones = LS_IS64 ? 4 : 2, lanes = 100;   /* the ulp of big: 2^54 has 4, 2^24 has 2 */
    enum { N = 1200 };
    T *x = calloc(N, sizeof(T)), *w = malloc(N * sizeof(T)), *y = malloc(N * sizeof(T));
    if (!x || !w || !y) { CHECK(0); free(x); free(w); free(y); return; }
    T lane[LS_SUM_LANES] = {0};
    x[0] = x0;
    lane[0] = big;
    for (int l = 1; l <= lanes; l++)
        for (int k = 0; k < ones; k++) {
            x[l + LS_SUM_LANES * k] = (T)1;
            lane[l] += (T)1;
        }
    const T tree = big + (T)(lanes * ones);
    CHECK(LS_S(ls_lanes_reduce)(lane) == tree);
    for (int i = 0; i < N; i++) w[i] = (T)1;
    T run = 0;
    for (int i = 0; i < N; i++) run += x[i] * x[i];
    CHECK(run == big);   /* so the test tells the two orders apart */
    LS_S(ls_rmsnorm)(x, 1, N, w, 1e-6, y);
    /* sqrt in double, rounded to T: correctly rounded for float too */
    const T v = tree / (T)N + (T)1e-6, inv = (T)1 / (T)sqrt((double)v);
    const T vr = run / (T)N + (T)1e-6, inv_run = (T)1 / (T)sqrt((double)vr);
    CHECK(x[0] * inv != x[0] * inv_run);
    CHECKF(y[0] == w[0] * (x[0] * inv) && y[1] == w[1] * (x[1] * inv),
           "%s rmsnorm takes the lanes' tree: y[0] %.17g, want %.17g (a running sum: %.17g)",
           PREC, (double)y[0], (double)(w[0] * (x[0] * inv)), (double)(w[0] * (x[0] * inv_run)));
    free(x); free(w); free(y);
}

/* ---- silu, softplus ------------------------------------------------------------------- */
static void LS_S(test_activations)(void) {
    int bad = 0;
    for (int i = 0; i < 2000; i++) {
        T x = i < 1000 ? (T)urand(-2, 2) : (T)urand(-15, 15);
        LD r = silu_ld((LD)x);
        T g = LS_S(ls_silu)(x);
        if (!LS_S(close)("silu", g, r, fabsl(r)) && bad++ < 3)
            CHECKF(0, "%s silu(%.17g) = %.17g, want %.17Lg", PREC, (double)x, (double)g, r);
    }
    CHECK(LS_S(ls_silu)((T)0) == 0);
    CHECK(bad == 0);
    /* softplus(beta=1, threshold=20), as torch: log1p(exp(x)) up to 20 inclusive, x above */
    bad = 0;
    for (int i = 0; i < 3000; i++) {
        T x = i < 1000 ? (T)urand(-2, 2) : i < 2000 ? (T)urand(-30, 30) : (T)urand(19, 21);
        LD r = x > (T)20 ? (LD)x : log1pl(expl((LD)x));
        T g = LS_S(ls_softplus)(x);
        if (!LS_S(close)("softplus", g, r, fabsl(r)) && bad++ < 3)
            CHECKF(0, "%s softplus(%.17g) = %.17g, want %.17Lg", PREC, (double)x, (double)g, r);
    }
    CHECK(bad == 0);
    /* both sides of the threshold, exactly */
    const T above[] = {(T)20.5, (T)21, (T)25, (T)100};
    for (int i = 0; i < 4; i++)
        CHECKF(LS_S(ls_softplus)(above[i]) == above[i], "%s softplus(%g) must be x above 20", PREC,
               (double)above[i]);
    {
        T x = 20;   /* not above: log1p(exp(20)) = 20 + 2.06e-9 */
        LD r = log1pl(expl(20.0L));
        CHECKF(LS_S(close)("softplus", LS_S(ls_softplus)(x), r, r), "%s softplus(20)", PREC);
        T x2 = (T)19.5;
        LD r2 = log1pl(expl((LD)x2));
        CHECKF(LS_S(close)("softplus", LS_S(ls_softplus)(x2), r2, r2), "%s softplus(19.5)", PREC);
        if (LS_IS64) CHECKF(LS_S(ls_softplus)(x) != x, "%s softplus(20) must not take the linear branch", PREC);
    }
    CHECK(LS_S(ls_softplus)((T)-40) > 0);
}

/* ---- conv1d ----------------------------------------------------------------------------- */
/* Runs steps [t0, t1) of a conv on `state`, writing out[t][c]. */
static void LS_S(conv_run)(T *state, const T *u, const T *w, const T *bias, int64_t C, int64_t K,
                           int64_t t0, int64_t t1, T *out) {
    for (int64_t t = t0; t < t1; t++) LS_S(ls_conv1d_step)(state, u + t * C, w, bias, C, K, out + t * C);
}

static void LS_S(test_conv1d)(void) {
    static const int64_t Ks[] = {1, 2, 3, 4, 5};
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
        for (int bias = 0; bias < 2; bias++) {
            const int64_t C = 7, K = Ks[ki], Tn = 13, S = C * (K - 1);
            T *u = LS_S(rand_vec)(Tn * C, -2, 2);
            T *w = LS_S(rand_vec)(C * K, -2, 2);
            T *bv = bias ? LS_S(rand_vec)(C, -2, 2) : NULL;
            T *state = calloc((size_t)(S + 1), sizeof(T));
            T *out = LS_S(rand_vec)(Tn * C, 0, 0);
            LS_S(conv_run)(state, u, w, bv, C, K, 0, Tn, out);
            /* the full causal conv with K-1 zeros of left padding, then silu */
            int bad = 0;
            for (int64_t t = 0; t < Tn; t++)
                for (int64_t c = 0; c < C; c++) {
                    LD acc = bv ? (LD)bv[c] : 0, sa = bv ? fabsl((LD)bv[c]) : 0;
                    for (int64_t k = 0; k < K; k++) {
                        int64_t src = t - (K - 1) + k;
                        LD in = src >= 0 ? (LD)u[src * C + c] : 0;
                        acc += (LD)w[c * K + k] * in;
                        sa += fabsl((LD)w[c * K + k] * in);
                    }
                    LD r = silu_ld(acc);
                    /* silu's slope is at most 1.1: the pre-activation's error carries over */
                    if (!LS_S(close)("conv1d_step", out[t * C + c], r, fabsl(r) + 1.1L * sa) && bad++ < 3)
                        CHECKF(0, "%s conv K=%lld bias=%d t=%lld c=%lld: %.17g vs %.17Lg", PREC,
                               (long long)K, bias, (long long)t, (long long)c,
                               (double)out[t * C + c], r);
                }
            CHECK(bad == 0);
            /* the state holds the last K-1 inputs of each channel, oldest first, exactly */
            for (int64_t c = 0; c < C; c++)
                for (int64_t k = 0; k < K - 1; k++)
                    CHECKF(state[c * (K - 1) + k] == u[(Tn - (K - 1) + k) * C + c],
                           "%s conv K=%lld: state[%lld][%lld]", PREC, (long long)K, (long long)c,
                           (long long)k);
            /* BITWISE: chunks with the state carried, and moved to a fresh buffer at every
             * boundary (a slot copy / snapshot restore), give the same bits */
            for (int trial = 0; trial < 6; trial++) {
                T *st = calloc((size_t)(S + 1), sizeof(T));
                T *o2 = LS_S(rand_vec)(Tn * C, 0, 0);
                int64_t t0 = 0;
                while (t0 < Tn) {
                    int64_t t1 = trial == 0 ? t0 + 1 : t0 + 1 + irand(5);
                    if (t1 > Tn) t1 = Tn;
                    LS_S(conv_run)(st, u, w, bv, C, K, t0, t1, o2);
                    T *moved = malloc((size_t)(S + 1) * sizeof(T));
                    memcpy(moved, st, (size_t)(S + 1) * sizeof(T));
                    free(st);
                    st = moved;
                    t0 = t1;
                }
                CHECKF(memcmp(o2, out, (size_t)(Tn * C) * sizeof(T)) == 0,
                       "%s conv K=%lld trial %d: chunked output differs in bits", PREC, (long long)K, trial);
                CHECKF(memcmp(st, state, (size_t)S * sizeof(T)) == 0,
                       "%s conv K=%lld trial %d: chunked state differs in bits", PREC, (long long)K, trial);
                free(st);
                free(o2);
            }
            free(u); free(w); free(bv); free(state); free(out);
        }
}

/* ---- selective scan ------------------------------------------------------------------------ */
typedef struct LS_S(scan_in) {
    int64_t C, N, Tn;
    T *x, *dt, *A, *B, *Cm, *D, *z;     /* x, dt, z: [Tn][C]; B, Cm: [Tn][N]; A: [C][N]; D: [C] */
} LS_S(scan_in);

static void LS_S(scan_run)(const LS_S(scan_in) *s, T *h, int64_t t0, int64_t t1, T *y) {
    for (int64_t t = t0; t < t1; t++)
        LS_S(ls_scan_step)(h, s->x + t * s->C, s->dt + t * s->C, s->A, s->B + t * s->N,
                           s->Cm + t * s->N, s->D, s->z + t * s->C, s->C, s->N, y + t * s->C);
}

static void LS_S(test_scan)(void) {
    static const int64_t Ns[] = {1, 4, 16};
    for (size_t ni = 0; ni < 3; ni++) {
        LS_S(scan_in) s = {.C = 6, .N = Ns[ni], .Tn = 12};
        const int64_t C = s.C, N = s.N, Tn = s.Tn;
        s.x = LS_S(rand_vec)(Tn * C, -2, 2);
        s.dt = LS_S(rand_vec)(Tn * C, -2, 2);
        for (int64_t i = 0; i < Tn * C; i++) s.dt[i] = (T)log1p(exp((double)s.dt[i])); /* dt > 0 */
        s.A = LS_S(rand_vec)(C * N, -2, 2);
        for (int64_t i = 0; i < C * N; i++) s.A[i] = (T)-exp((double)s.A[i]);          /* A < 0 */
        s.B = LS_S(rand_vec)(Tn * N, -2, 2);
        s.Cm = LS_S(rand_vec)(Tn * N, -2, 2);
        s.D = LS_S(rand_vec)(C, -2, 2);
        s.z = LS_S(rand_vec)(Tn * C, -2, 2);
        /* a nonzero initial state, as after a prefix */
        T *h0 = LS_S(rand_vec)(C * N, -2, 2);
        T *h = malloc((size_t)(C * N) * sizeof(T));
        memcpy(h, h0, (size_t)(C * N) * sizeof(T));
        T *y = LS_S(rand_vec)(Tn * C, 0, 0);
        LS_S(scan_run)(&s, h, 0, Tn, y);

        /* the direct recurrence, with hs = the same recurrence over absolute values (the
         * scale an error in h is measured against) */
        LD *hr = malloc((size_t)(C * N) * sizeof(LD)), *hs = malloc((size_t)(C * N) * sizeof(LD));
        for (int64_t i = 0; i < C * N; i++) { hr[i] = (LD)h0[i]; hs[i] = fabsl((LD)h0[i]); }
        int bad = 0;
        for (int64_t t = 0; t < Tn; t++)
            for (int64_t c = 0; c < C; c++) {
                LD xc = (LD)s.x[t * C + c], dtc = (LD)s.dt[t * C + c];
                LD acc = 0, sa = 0;
                for (int64_t n = 0; n < N; n++) {
                    LD dA = expl((LD)s.A[c * N + n] * dtc);
                    LD dBx = dtc * (LD)s.B[t * N + n] * xc;
                    hr[c * N + n] = dA * hr[c * N + n] + dBx;
                    hs[c * N + n] = dA * hs[c * N + n] + fabsl(dBx);
                    acc += hr[c * N + n] * (LD)s.Cm[t * N + n];
                    sa += hs[c * N + n] * fabsl((LD)s.Cm[t * N + n]);
                }
                LD g = silu_ld((LD)s.z[t * C + c]);
                LD r = (acc + xc * (LD)s.D[c]) * g;
                LD scale = (sa + fabsl(xc * (LD)s.D[c])) * fabsl(g);
                if (!LS_S(close)("scan_step", y[t * C + c], r, scale) && bad++ < 3)
                    CHECKF(0, "%s scan N=%lld t=%lld c=%lld: %.17g vs %.17Lg", PREC, (long long)N,
                           (long long)t, (long long)c, (double)y[t * C + c], r);
            }
        for (int64_t i = 0; i < C * N; i++)
            if (!LS_S(close)("scan_step", h[i], hr[i], hs[i]) && bad++ < 6)
                CHECKF(0, "%s scan N=%lld: final h[%lld] %.17g vs %.17Lg", PREC, (long long)N,
                       (long long)i, (double)h[i], hr[i]);
        CHECK(bad == 0);

        /* BITWISE: chunked with the state carried and moved between buffers */
        for (int trial = 0; trial < 6; trial++) {
            T *hc = malloc((size_t)(C * N) * sizeof(T));
            memcpy(hc, h0, (size_t)(C * N) * sizeof(T));
            T *y2 = LS_S(rand_vec)(Tn * C, 0, 0);
            int64_t t0 = 0;
            while (t0 < Tn) {
                int64_t t1 = trial == 0 ? t0 + 1 : t0 + 1 + irand(6);
                if (t1 > Tn) t1 = Tn;
                LS_S(scan_run)(&s, hc, t0, t1, y2);
                T *moved = malloc((size_t)(C * N) * sizeof(T));
                memcpy(moved, hc, (size_t)(C * N) * sizeof(T));
                free(hc);
                hc = moved;
                t0 = t1;
            }
            CHECKF(memcmp(y2, y, (size_t)(Tn * C) * sizeof(T)) == 0,
                   "%s scan N=%lld trial %d: chunked output differs in bits", PREC, (long long)N, trial);
            CHECKF(memcmp(hc, h, (size_t)(C * N) * sizeof(T)) == 0,
                   "%s scan N=%lld trial %d: chunked state differs in bits", PREC, (long long)N, trial);
            free(hc);
            free(y2);
        }
        free(hr); free(hs); free(h0); free(h); free(y);
        free(s.x); free(s.dt); free(s.A); free(s.B); free(s.Cm); free(s.D); free(s.z);
    }
}

/* ---- attention ------------------------------------------------------------------------------ */
static void LS_S(test_attention)(void) {
    static const int64_t shapes[][3] = {{4, 2, 8}, {4, 1, 5}, {2, 2, 16}, {6, 3, 4}, {8, 2, 16}, {1, 1, 3}};
    static const int64_t nks[] = {1, 2, 7, 16, 33, 50};
    static const int64_t bss[] = {1, 3, 16};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (size_t ni = 0; ni < sizeof nks / sizeof *nks; ni++) {
            const int64_t H = shapes[si][0], KVH = shapes[si][1], D = shapes[si][2], n = nks[ni];
            const int64_t kvd = KVH * D, group = H / KVH;
            T *q = LS_S(rand_vec)(H * D, -2, 2);
            T *k = LS_S(rand_vec)(n * kvd, -2, 2);
            T *v = LS_S(rand_vec)(n * kvd, -2, 2);
            T *scores = LS_S(rand_vec)(n, 0, 0);
            T *out = LS_S(rand_vec)(H * D, 0, 0);
            const int64_t table0[1] = {0};
            LS_S(ls_attention_row)(q, k, v, table0, n, n, H, KVH, D, scores, out);
            /* naive softmax attention; query head h reads kv head h / (H / KVH) */
            int bad = 0;
            LD *s = malloc((size_t)n * sizeof(LD)), *sabs = malloc((size_t)n * sizeof(LD));
            for (int64_t h = 0; h < H; h++) {
                int64_t g = h / group;
                LD mx = -(LD)INFINITY, smax = 0;
                for (int64_t j = 0; j < n; j++) {
                    LD acc = 0, sa = 0;
                    for (int64_t d = 0; d < D; d++) {
                        LD t = (LD)q[h * D + d] * (LD)k[j * kvd + g * D + d];
                        acc += t;
                        sa += fabsl(t);
                    }
                    s[j] = acc / sqrtl((LD)D);
                    sabs[j] = sa / sqrtl((LD)D);
                    if (s[j] > mx) mx = s[j];
                    if (sabs[j] > smax) smax = sabs[j];
                }
                LD z = 0;
                for (int64_t j = 0; j < n; j++) z += expl(s[j] - mx);
                for (int64_t d = 0; d < D; d++) {
                    LD o = 0, oa = 0;
                    for (int64_t j = 0; j < n; j++) {
                        LD p = expl(s[j] - mx) / z;
                        o += p * (LD)v[j * kvd + g * D + d];
                        oa += p * fabsl((LD)v[j * kvd + g * D + d]);
                    }
                    /* an error e in a score is a relative error ~e in its weight */
                    LD scale = oa * (1.0L + 2.0L * smax);
                    if (!LS_S(close)("attention_row", out[h * D + d], o, scale) && bad++ < 3)
                        CHECKF(0, "%s attention H=%lld KVH=%lld D=%lld n=%lld [h%lld][%lld]: %.17g vs %.17Lg",
                               PREC, (long long)H, (long long)KVH, (long long)D, (long long)n,
                               (long long)h, (long long)d, (double)out[h * D + d], o);
                }
            }
            CHECK(bad == 0);
            free(s);
            free(sabs);

            /* BITWISE: the same keys scattered over shuffled paged blocks, unused rows NaN */
            for (size_t bi = 0; bi < 3; bi++) {
                const int64_t bs = bss[bi], nb = (n + bs - 1) / bs, pool = nb * 2 + 3;
                int64_t *perm = malloc((size_t)pool * sizeof(int64_t));
                for (int64_t i = 0; i < pool; i++) perm[i] = i;
                for (int64_t i = pool - 1; i > 0; i--) {
                    int64_t j = irand(i + 1), t = perm[i];
                    perm[i] = perm[j];
                    perm[j] = t;
                }
                T *kc = malloc((size_t)(pool * bs * kvd) * sizeof(T));
                T *vc = malloc((size_t)(pool * bs * kvd) * sizeof(T));
                for (int64_t i = 0; i < pool * bs * kvd; i++) kc[i] = vc[i] = (T)NAN;
                for (int64_t j = 0; j < n; j++) {
                    int64_t row = perm[j / bs] * bs + j % bs;
                    memcpy(kc + row * kvd, k + j * kvd, (size_t)kvd * sizeof(T));
                    memcpy(vc + row * kvd, v + j * kvd, (size_t)kvd * sizeof(T));
                }
                T *out2 = LS_S(rand_vec)(H * D, 0, 0);
                T *sc2 = LS_S(rand_vec)(n, 0, 0);
                LS_S(ls_attention_row)(q, kc, vc, perm, bs, n, H, KVH, D, sc2, out2);
                CHECKF(memcmp(out2, out, (size_t)(H * D) * sizeof(T)) == 0,
                       "%s attention H=%lld KVH=%lld D=%lld n=%lld: paged (block_size %lld) differs in bits from contiguous",
                       PREC, (long long)H, (long long)KVH, (long long)D, (long long)n, (long long)bs);
                free(perm); free(kc); free(vc); free(out2); free(sc2);
            }
            free(q); free(k); free(v); free(scores); free(out);
        }
    /* causal prefix: a query sees exactly keys 0..n-1; a later key changes nothing */
    {
        const int64_t H = 2, KVH = 1, D = 4, n = 5;
        T *q = LS_S(rand_vec)(H * D, -2, 2), *k = LS_S(rand_vec)((n + 1) * D, -2, 2),
          *v = LS_S(rand_vec)((n + 1) * D, -2, 2), *sc = LS_S(rand_vec)(n + 1, 0, 0),
          *o1 = LS_S(rand_vec)(H * D, 0, 0), *o2 = LS_S(rand_vec)(H * D, 0, 0);
        const int64_t t0[1] = {0};
        LS_S(ls_attention_row)(q, k, v, t0, n + 1, n, H, KVH, D, sc, o1);
        k[n * D] = (T)1e3;
        v[n * D] = (T)1e3;
        LS_S(ls_attention_row)(q, k, v, t0, n + 1, n, H, KVH, D, sc, o2);
        CHECK(memcmp(o1, o2, (size_t)(H * D) * sizeof(T)) == 0);
        free(q); free(k); free(v); free(sc); free(o1); free(o2);
    }
}

/* ---- MoE routing ----------------------------------------------------------------------------- */
static void LS_S(check_route)(const T *logits, int64_t E, int64_t K, const char *label) {
    T *probs = LS_S(rand_vec)(E, 0, 0), *wts = LS_S(rand_vec)(K, 0, 0);
    int64_t *idx = malloc((size_t)K * sizeof(int64_t));
    LS_S(ls_moe_route)(logits, E, K, probs, idx, wts);
    /* reference softmax */
    LD mx = -(LD)INFINITY, z = 0;
    for (int64_t e = 0; e < E; e++) if ((LD)logits[e] > mx) mx = (LD)logits[e];
    for (int64_t e = 0; e < E; e++) z += expl((LD)logits[e] - mx);
    LD psum = 0;
    for (int64_t e = 0; e < E; e++) {
        LD p = expl((LD)logits[e] - mx) / z;
        psum += (LD)probs[e];
        /* log-domain computation: absolute error in the exponent ~ (|x| + |lse|) u */
        CHECKF(LS_S(close)("moe_route", probs[e], p, p * (1.0L + fabsl((LD)logits[e]) + fabsl(mx + logl(z)))),
               "%s moe %s: probs[%lld] %.17g vs %.17Lg", PREC, label, (long long)e, (double)probs[e], p);
    }
    CHECKF(fabsl(psum - 1.0L) <= (LD)LS_TOL * (LD)(E + 1) * 4.0L, "%s moe %s: probs sum to %.17Lg", PREC,
           label, psum);
    /* reference selection: the logits' order is the probabilities' order; ties (equal
     * logits) go to the lower index. Selected set, in ascending order: */
    int64_t *want = malloc((size_t)K * sizeof(int64_t));
    int8_t *taken = calloc((size_t)E, 1);
    for (int64_t t = 0; t < K; t++) {
        int64_t best = -1;
        for (int64_t e = 0; e < E; e++)
            if (!taken[e] && (best < 0 || logits[e] > logits[best])) best = e;
        if (best >= 0) taken[best] = 1;
    }
    int64_t nw = 0;
    for (int64_t e = 0; e < E; e++) if (taken[e]) want[nw++] = e;
    for (int64_t i = 0; i < K; i++) {
        CHECKF(idx[i] == want[i], "%s moe %s: idx[%lld] = %lld, want %lld", PREC, label, (long long)i,
               (long long)idx[i], (long long)want[i]);
        if (i) CHECKF(idx[i] > idx[i - 1], "%s moe %s: idx not ascending", PREC, label);
        if (idx[i] >= 0 && idx[i] < E)
            /* unnormalised: the weights are the probabilities themselves, bit for bit */
            CHECKF(memcmp(&wts[i], &probs[idx[i]], sizeof(T)) == 0, "%s moe %s: wts[%lld] != probs[idx]",
                   PREC, label, (long long)i);
    }
    if (K < E) {
        LD ws = 0;
        for (int64_t i = 0; i < K; i++) ws += (LD)wts[i];
        CHECKF(ws < 1.0L - 1e-6L, "%s moe %s: weights sum to %.17Lg: renormalised?", PREC, label, ws);
    }
    free(probs); free(wts); free(idx); free(want); free(taken);
}

static void LS_S(test_moe)(void) {
    static const int64_t Es[] = {1, 2, 3, 4, 8, 16};
    char label[64];
    for (size_t ei = 0; ei < sizeof Es / sizeof *Es; ei++)
        for (int64_t K = 1; K <= Es[ei]; K++)
            for (int trial = 0; trial < 4; trial++) {
                T *logits = LS_S(rand_vec)(Es[ei], -2, 2);
                snprintf(label, sizeof label, "E=%lld k=%lld trial %d", (long long)Es[ei], (long long)K, trial);
                LS_S(check_route)(logits, Es[ei], K, label);
                free(logits);
            }
    /* ties: equal logits give equal probabilities, and the lower index wins */
    {
        const T l1[] = {1, 3, 3, 0, 3};
        static const int64_t want1[][3] = {{1, -1, -1}, {1, 2, -1}, {1, 2, 4}};
        for (int64_t K = 1; K <= 3; K++) {
            T probs[5], wts[3];
            int64_t idx[3];
            LS_S(ls_moe_route)(l1, 5, K, probs, idx, wts);
            for (int64_t i = 0; i < K; i++)
                CHECKF(idx[i] == want1[K - 1][i], "%s moe ties k=%lld: idx[%lld] = %lld, want %lld", PREC,
                       (long long)K, (long long)i, (long long)idx[i], (long long)want1[K - 1][i]);
            CHECK(probs[1] == probs[2] && probs[2] == probs[4]);
            snprintf(label, sizeof label, "ties k=%lld", (long long)K);
            LS_S(check_route)(l1, 5, K, label);
        }
        const T l2[] = {0.5, 0.5, 0.5, 0.5};
        for (int64_t K = 1; K <= 4; K++) {
            T probs[4], wts[4];
            int64_t idx[4];
            LS_S(ls_moe_route)(l2, 4, K, probs, idx, wts);
            for (int64_t i = 0; i < K; i++) CHECKF(idx[i] == i, "%s moe all-equal k=%lld: idx[%lld] = %lld",
                                                   PREC, (long long)K, (long long)i, (long long)idx[i]);
            for (int64_t i = 0; i < K; i++)
                CHECKF(LS_S(close)("moe_route", wts[i], 0.25L, 0.25L), "%s moe all-equal: wts %.17g", PREC,
                       (double)wts[i]);
        }
        const T l3[] = {-1, 2, 0, 2, 5, -3};   /* top-2 = {4, 1}: returned ascending {1, 4} */
        T probs[6], wts[2];
        int64_t idx[2];
        LS_S(ls_moe_route)(l3, 6, 2, probs, idx, wts);
        CHECKF(idx[0] == 1 && idx[1] == 4, "%s moe: idx %lld %lld, want 1 4", PREC, (long long)idx[0],
               (long long)idx[1]);
        CHECK(wts[1] > wts[0]);
    }
}

/* ---- logsoftmax ------------------------------------------------------------------------------ */
static void LS_S(test_logsoftmax)(void) {
    static const int64_t ns[] = {1, 2, 7, 100, 256, 1000};
    static const double shifts[] = {0, 40, -1000};
    for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
        for (size_t si = 0; si < 3; si++) {
            const int64_t n = ns[ni];
            T *x = LS_S(rand_vec)(n, -2, 2);
            for (int64_t i = 0; i < n; i++) x[i] = (T)((double)x[i] + shifts[si]);
            T *out = LS_S(rand_vec)(n, 0, 0);
            LS_S(ls_logsoftmax)(x, n, out);
            LD mx = -(LD)INFINITY, z = 0;
            for (int64_t i = 0; i < n; i++) if ((LD)x[i] > mx) mx = (LD)x[i];
            for (int64_t i = 0; i < n; i++) z += expl((LD)x[i] - mx);
            LD lse = mx + logl(z);
            int bad = 0;
            LD es = 0;
            for (int64_t i = 0; i < n; i++) {
                LD r = (LD)x[i] - lse;
                es += expl((LD)out[i]);
                if (!LS_S(close)("logsoftmax", out[i], r, fabsl((LD)x[i]) + fabsl(lse) + 1.0L) && bad++ < 3)
                    CHECKF(0, "%s logsoftmax n=%lld shift %g [%lld]: %.17g vs %.17Lg", PREC, (long long)n,
                           shifts[si], (long long)i, (double)out[i], r);
            }
            CHECK(bad == 0);
            /* exp sums to 1; the error of each out[i] is relative to |x| + |lse| */
            LD tol = (LD)LS_TOL * (1.0L + fabsl(mx) + fabsl(lse));
            CHECKF(fabsl(es - 1.0L) <= tol, "%s logsoftmax n=%lld shift %g: exp sums to %.17Lg", PREC,
                   (long long)n, shifts[si], es);
            note_err("logsoftmax_sum", LS_IS64, (double)(fabsl(es - 1.0L) / (1.0L + fabsl(mx) + fabsl(lse))));
            if (n == 1) CHECK(out[0] == 0);
            free(x);
            free(out);
        }
}

static void LS_S(run_all)(void) {
    LS_S(test_linear)();
    LS_S(test_linear_fused)();
    LS_S(test_rmsnorm)();
    LS_S(test_lanes)();
    LS_S(test_activations)();
    LS_S(test_conv1d)();
    LS_S(test_scan)();
    LS_S(test_attention)();
    LS_S(test_moe)();
    LS_S(test_logsoftmax)();
}

#undef T
#undef PREC
#endif
