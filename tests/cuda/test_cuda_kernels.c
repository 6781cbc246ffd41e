/* Every CUDA kernel of kernels/cuda/kernels_cuda.h against its CPU twin in kernels/ (the .c files),
 * in float32 and float64, on random inputs drawn fresh for each run (the seed is printed;
 * LS_SEED=n repeats a run). Every device output buffer is poisoned with NaN (all bits set)
 * before the kernel runs, so an element the kernel fails to write shows up as a NaN.
 *
 * Two kinds of comparison with the CPU twin:
 *   BIT  the GPU result must equal the CPU's bit for bit (the operation order is the
 *        same and uses only IEEE +,-,*,/,sqrt, which CUDA rounds exactly as the CPU);
 *   TOL  the op calls exp/log/log1p, whose CUDA versions may round differently from
 *        glibc's on some inputs: |gpu - cpu| <= tol * (|cpu| + rms(cpu)), tol 2e-6 (f32)
 *        and 1e-13 (f64); how many elements still agree bitwise is reported.
 * And GPU-only invariance checks, always bitwise: a row alone vs inside a batch of 37, a
 * sequence alone vs in a ragged batch, chunked vs whole (state carried), paged vs
 * contiguous KV blocks, and the same launch twice.
 *
 * Batched copies (ls_cuda_copy_batch over the planner's waves, and the CUDA backend's queue
 * flush) against the same ops run one by one on the host, bytewise.
 *
 * Without a usable GPU the test exits 77 (meson: skipped). LS_CUDA_BIG=0 skips the
 * 4 GiB state-copy offset check and runs 40 random copy batches instead of 400 (use it under
 * compute-sanitizer); LS_CUDA_BENCH=1 adds a
 * rough timing of the invariant linear against cuBLAS. The file includes itself once per precision. */
#ifndef LS_T

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/backend_cuda.h"
#include "engine/copy_plan.h"
#include "kernels/cuda/kernels_cuda.h"
#include "tests/cuda/cu_check.h"
#include "kernels/kernels.h"
#include "tests/check.h"

/* ---- random numbers: splitmix64 ---- */
static uint64_t rng_state;
static uint64_t rnd64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}
static double urand(double lo, double hi) {
    return lo + (hi - lo) * ((double)(rnd64() >> 11) * 0x1.0p-53);
}
static int64_t irand(int64_t n) { return (int64_t)(rnd64() % (uint64_t)n); }

/* ---- CUDA plumbing ---- */
#define CU(call) LS_CU_OR_EXIT(call, 1)
/* launch, then wait and surface asynchronous errors */
#define RUN(call) do { CU(call); CU(cudaDeviceSynchronize()); } while (0)

static void *allocs[4096];
static int n_allocs;
static void *dmalloc(size_t bytes) {
    void *p = NULL;
    CU(cudaMalloc(&p, bytes ? bytes : 1));
    CU(cudaMemset(p, 0xFF, bytes ? bytes : 1));   /* poison: all-ones is a NaN in f32 and f64 */
    if (n_allocs == (int)(sizeof allocs / sizeof allocs[0])) {
        fprintf(stderr, "too many device allocations\n");
        exit(1);
    }
    allocs[n_allocs++] = p;
    return p;
}
static void *dput(const void *h, size_t bytes) {
    void *p = dmalloc(bytes);
    CU(cudaMemcpy(p, h, bytes, cudaMemcpyHostToDevice));
    return p;
}
static void dget(void *h, const void *d, size_t bytes) {
    CU(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}
static void dpoison(void *d, size_t bytes) { CU(cudaMemset(d, 0xFF, bytes)); }
static void dfree_all(void) {
    for (int i = 0; i < n_allocs; i++) CU(cudaFree(allocs[i]));
    n_allocs = 0;
}
static void *hmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of host memory\n");
        exit(1);
    }
    return p;
}

/* A ragged batch (see ls_cuda_batch), built on the host and uploaded. */
static ls_cuda_batch make_batch(int64_t n_seqs, const int64_t *n, const int64_t *start,
                                const int32_t *init, const int64_t *bt, int64_t bt_len,
                                const int64_t *bt_off) {
    ls_cuda_batch b;
    memset(&b, 0, sizeof b);
    int64_t *row0 = hmalloc((size_t)n_seqs * 8), *st = hmalloc((size_t)n_seqs * 8);
    int64_t *off = hmalloc((size_t)n_seqs * 8);
    int32_t *hi = hmalloc((size_t)n_seqs * 4);
    int64_t rows = 0, mk = 1;
    for (int64_t s = 0; s < n_seqs; s++) {
        row0[s] = rows;
        rows += n[s];
        st[s] = start ? start[s] : 0;
        hi[s] = init ? init[s] : 0;
        off[s] = bt_off ? bt_off[s] : -1;
        if (st[s] + n[s] > mk) mk = st[s] + n[s];
    }
    b.n_seqs = n_seqs;
    b.rows = rows;
    b.max_keys = mk;
    b.row0 = dput(row0, (size_t)n_seqs * 8);
    b.n = dput(n, (size_t)n_seqs * 8);
    b.start_pos = dput(st, (size_t)n_seqs * 8);
    b.has_init = dput(hi, (size_t)n_seqs * 4);
    b.bt_off = dput(off, (size_t)n_seqs * 8);
    b.block_tables = bt ? dput(bt, (size_t)(bt_len > 0 ? bt_len : 1) * 8) : NULL;
    free(row0), free(st), free(off), free(hi);
    return b;
}

/* ---- results table ---- */
typedef struct {
    char name[40];
    int is64, bitwise;
    int64_t n, same;     /* elements compared, elements bitwise equal */
    int64_t max_ulp;
    double max_err;      /* max |gpu - cpu| / (|cpu| + rms(cpu)) */
} stat_row;
static stat_row stats[128];
static int n_stats;

/* distance in units in the last place: floats mapped onto a monotone integer line
 * (-0 and +0 both at 0), the difference taken in unsigned arithmetic, saturated */
static int64_t ulp_key(int64_t bits, int64_t magnitude_mask) {
    return bits < 0 ? -(bits & magnitude_mask) : bits;
}
static int64_t ulp_dist(int64_t ka, int64_t kb) {
    const uint64_t d = ka > kb ? (uint64_t)ka - (uint64_t)kb : (uint64_t)kb - (uint64_t)ka;
    return d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
}
static int64_t ulp_f32(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
    return ulp_dist(ulp_key(ia, INT32_MAX), ulp_key(ib, INT32_MAX));
}
static int64_t ulp_f64(double a, double b) {
    int64_t ia, ib;
    memcpy(&ia, &a, 8), memcpy(&ib, &b, 8);
    return ulp_dist(ulp_key(ia, INT64_MAX), ulp_key(ib, INT64_MAX));
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_on(void) {
    const char *b = getenv("LS_CUDA_BENCH");
    return b && !strcmp(b, "1");
}

/* Host twin of ls_cuda_moe_group (kernels_cuda.h): the stable counting sort of the pairs
 * by expert (out-of-range experts in a last group E), then the tile table. Returns how many
 * leading int32 elements of grp are defined: 1 + P + 3 * n_tiles. */
static int64_t moe_group_host(const int64_t *ex, int64_t P, int64_t E, int64_t tile,
                              int32_t *grp) {
    int64_t n = 1, nt = 0;
    for (int64_t g = 0; g <= E; g++) {
        const int64_t first = n - 1;
        for (int64_t p = 0; p < P; p++) {
            const int64_t pg = ex[p] >= 0 && ex[p] < E ? ex[p] : E;
            if (pg == g) grp[n++] = (int32_t)p;
        }
        for (int64_t i = first; i < n - 1; i += tile, nt++) {
            int32_t *t = grp + 1 + P + 3 * nt;
            t[0] = (int32_t)g;
            t[1] = (int32_t)i;
            t[2] = (int32_t)(n - 1 - i < tile ? n - 1 - i : tile);
        }
    }
    grp[0] = (int32_t)nt;
    return 1 + P + 3 * nt;
}

#define LS_T float
#define LS_S(n) n##_f32
#define LS_TOL 2e-6
#define LS_IS64 0
#include "tests/cuda/test_cuda_kernels.c"
#undef LS_T
#undef LS_S
#undef LS_TOL
#undef LS_IS64
#define LS_T double
#define LS_S(n) n##_f64
#define LS_TOL 1e-13
#define LS_IS64 1
#include "tests/cuda/test_cuda_kernels.c"
#undef LS_T
#undef LS_S
#undef LS_TOL
#undef LS_IS64

/* ---- state copy (precision-free) ---- */
static void test_state_copy(void) {
    /* fork + snapshot in one pool, 8-byte units */
    const int64_t slots = 12;
    const int64_t cases[2][2] = {{1000, 968}, {1001, 999}};   /* (stride, bytes): 8-byte, 1-byte */
    for (int c = 0; c < 2; c++) {
        const int64_t stride = cases[c][0], bytes = cases[c][1];
        const size_t total = (size_t)(slots * stride);
        unsigned char *h = hmalloc(total), *ref = hmalloc(total), *got = hmalloc(total);
        for (size_t i = 0; i < total; i++) h[i] = (unsigned char)rnd64();
        unsigned char *d = dput(h, total);
        const int64_t src[] = {3, 3, 3, 0}, dst[] = {7, 8, 11, 5};
        RUN(ls_cuda_state_copy(d, d, stride, src, dst, 4, bytes, 0));
        memcpy(ref, h, total);
        for (int i = 0; i < 4; i++) memcpy(ref + dst[i] * stride, h + src[i] * stride, (size_t)bytes);
        dget(got, d, total);
        CHECKF(memcmp(got, ref, total) == 0, "state_copy stride %lld bytes %lld", (long long)stride,
               (long long)bytes);
        /* snapshot into a second buffer, then restore into another slot of the first */
        unsigned char *snap = dmalloc((size_t)(4 * stride));
        const int64_t s1[] = {8}, d1[] = {2};
        RUN(ls_cuda_state_copy(snap, d, stride, s1, d1, 1, bytes, 0));
        const int64_t s2[] = {2}, d2[] = {10};
        RUN(ls_cuda_state_copy(d, snap, stride, s2, d2, 1, bytes, 0));
        memcpy(ref + 10 * stride, ref + 8 * stride, (size_t)bytes);
        dget(got, d, total);
        CHECKF(memcmp(got, ref, total) == 0, "state snapshot/restore stride %lld", (long long)stride);
        /* misuse is refused, not run: overlapping pairs, offsets past int64 */
        const int64_t so[] = {3, 4}, dd[] = {4, 9};
        CHECK(ls_cuda_state_copy(d, d, stride, so, dd, 2, bytes, 0) == cudaErrorInvalidValue);
        const int64_t big[] = {INT64_MAX / 2}, zero[] = {0};
        CHECK(ls_cuda_state_copy(d, d, stride, big, zero, 1, bytes, 0) == cudaErrorInvalidValue);
        free(h), free(ref), free(got);
        dfree_all();
    }
    /* a destination offset past 4 GiB: slot 2 of a 2 GiB + 256 stride. A copy whose offset
     * wrapped at 32 bits would land at byte 512, inside slot 0. */
    const char *big_env = getenv("LS_CUDA_BIG");
    size_t free_b = 0, total_b = 0;
    CU(cudaMemGetInfo(&free_b, &total_b));
    const int64_t stride = (INT64_C(1) << 31) + 256, bytes = 4096;
    const size_t need = (size_t)(2 * stride + bytes);
    if ((big_env && !strcmp(big_env, "0")) || free_b < need + (INT64_C(2) << 30)) {
        printf("state_copy: 4 GiB offset check skipped (LS_CUDA_BIG=0 or too little memory)\n");
        return;
    }
    unsigned char *d = NULL;
    CU(cudaMalloc((void **)&d, need));
    unsigned char *pat = hmalloc((size_t)bytes), *got = hmalloc((size_t)bytes);
    for (int64_t i = 0; i < bytes; i++) pat[i] = (unsigned char)rnd64();
    CU(cudaMemcpy(d, pat, (size_t)bytes, cudaMemcpyHostToDevice));
    const int64_t s0[] = {0}, d0[] = {2};
    RUN(ls_cuda_state_copy(d, d, stride, s0, d0, 1, bytes, 0));
    dget(got, d + 2 * stride, (size_t)bytes);
    CHECKF(memcmp(got, pat, (size_t)bytes) == 0, "state_copy to offset %lld", (long long)(2 * stride));
    dget(got, d, (size_t)bytes);
    CHECKF(memcmp(got, pat, (size_t)bytes) == 0, "state_copy: slot 0 clobbered (32-bit wrap?)");
    CU(cudaFree(d));
    free(pat), free(got);
    printf("state_copy: copy to byte offset %lld (> 4 GiB) ok\n", (long long)(2 * stride));
}

/* ---- batched copies (precision-free): ls_cuda_copy_batch over the planner's waves, and
 * the CUDA backend's queue flush, against the same ops run one by one on the host
 * (memmove / memset). Random batches with conflicts, zero fills, copies onto themselves and
 * overlapping their own source; addresses and lengths aligned to 16, 8, 4 or nothing, so
 * every unit path runs; a batch over 65535 ops (grid.y chunks) and ops past the grid's
 * x extent (the stride loop). */
static unsigned char *cb_host(unsigned char *h, unsigned char *d, const void *p) {
    return h + ((const unsigned char *)p - d);
}

static void cb_seq(unsigned char *h, unsigned char *d, const ls_copy_op *ops, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (ops[i].bytes <= 0) continue;
        if (ops[i].src) memmove(cb_host(h, d, ops[i].dst), cb_host(h, d, ops[i].src), (size_t)ops[i].bytes);
        else memset(cb_host(h, d, ops[i].dst), 0, (size_t)ops[i].bytes);
    }
}

/* n ops inside d[0, B): offsets and lengths multiples of align; dense: anywhere (many
 * conflicts), else sources in the low half and destinations in the high half. */
static void cb_random(ls_copy_op *ops, int64_t n, unsigned char *d, int64_t B, int64_t align,
                      int dense, int64_t max_len) {
    for (int64_t i = 0; i < n; i++) {
        int64_t len = align * irand(max_len / align + 1);
        if (align == 1 && irand(2)) len += irand(3);
        const int64_t half = B / 2 - len;
        const int64_t so = dense ? irand(B - len + 1) : irand(half + 1);
        const int64_t doff = dense ? irand(B - len + 1) : B / 2 + irand(half + 1);
        ls_copy_op o = {d + doff / align * align, d + so / align * align, len};
        const int64_t k = irand(24);
        if (k == 0) o.src = NULL;
        else if (k == 1) o.src = o.dst;
        else if (k == 2 && i > 0 && ops[i - 1].bytes >= len) o.src = ops[i - 1].dst;   /* reads a write */
        else if (k == 3 && len > align && (unsigned char *)o.dst + len + align <= d + B)
            o.src = (unsigned char *)o.dst + align;                                 /* self-overlap */
        ops[i] = o;
    }
}

/* The waves through ls_cuda_copy_batch, one launch per wave at the widest unit every op of
 * the wave allows (at most max_unit); a lone self-overlapping op through a temporary. */
static void cb_run_waves(ls_copy_op *ops, int64_t n, ls_copy_op *desc_d, unsigned char *stage,
                         int max_unit) {
    n = ls_copy_compact(ops, n);
    ls_copy_plan p = {0};
    CHECK(ls_copy_plan_waves(&p, ops, n) == 0);
    int64_t a = 0;
    for (int64_t w = 0; w < p.n_waves; a = p.end[w++]) {
        const int64_t b = p.end[w];
        if (b - a == 1 && ls_copy_self_overlaps(&ops[a])) {
            CU(cudaMemcpy(stage, ops[a].src, (size_t)ops[a].bytes, cudaMemcpyDeviceToDevice));
            CU(cudaMemcpy(ops[a].dst, stage, (size_t)ops[a].bytes, cudaMemcpyDeviceToDevice));
            continue;
        }
        int unit = max_unit;
        int64_t maxb = 0;
        for (int64_t i = a; i < b; i++) {
            const int u = ls_cuda_copy_unit(&ops[i]);
            unit = u < unit ? u : unit;
            maxb = ops[i].bytes > maxb ? ops[i].bytes : maxb;
        }
        CU(cudaMemcpy(desc_d, ops + a, (size_t)(b - a) * sizeof *ops, cudaMemcpyHostToDevice));
        RUN(ls_cuda_copy_batch(desc_d, b - a, maxb, unit, 0));
    }
    ls_copy_plan_free(&p);
}

/* The same ops through the backend's queue (ls_cuda_flush) on a bare context (legacy
 * stream), kept across calls so its descriptor buffers are reused and grown. */
static void cb_run_flush(ls_cuda_ctx *x, const ls_copy_op *ops, int64_t n) {
    ls_err err = {{0}};
    if (n > x->q_cap) {
        free(x->q);
        x->q = hmalloc((size_t)n * sizeof *ops);
        x->q_cap = n;
    }
    memcpy(x->q, ops, (size_t)n * sizeof *ops);
    x->q_n = n;
    CHECKF(ls_cuda_flush(x, &err) == 0, "flush: %s", err.msg);
    CHECK(x->q_n == 0);
}

static void cb_free_ctx(ls_cuda_ctx *x) {
    CU(cudaDeviceSynchronize());
    free(x->q);
    ls_copy_plan_free(&x->plan);
    if (x->desc_d) CU(cudaFree(x->desc_d));
    if (x->desc_h) CU(cudaFreeHost(x->desc_h));
    if (x->stage_d) CU(cudaFree(x->stage_d));
    if (x->desc_ev) CU(cudaEventDestroy(x->desc_ev));
    free(x);
}

static void test_copy_batch(void) {
    const int64_t B = 8192;
    unsigned char *h0 = hmalloc((size_t)B), *want = hmalloc((size_t)B), *got = hmalloc((size_t)B);
    unsigned char *d = dmalloc((size_t)B), *stage = dmalloc((size_t)B);
    enum { NMAX = 300 };
    ls_copy_op *ops = hmalloc(NMAX * sizeof *ops), *ops2 = hmalloc(NMAX * sizeof *ops);
    ls_copy_op *desc_d = dmalloc(NMAX * sizeof *ops);
    static const int64_t aligns[4] = {16, 8, 4, 1};
    int64_t mismatches = 0, cases = 0;
    ls_cuda_ctx *x = calloc(1, sizeof *x);
    /* under the sanitizers (LS_CUDA_BIG=0) 40 batches: each launch costs them tens of ms */
    const char *big_env = getenv("LS_CUDA_BIG");
    const int iters = big_env && !strcmp(big_env, "0") ? 40 : 400;
    for (int it = 0; it < iters; it++) {
        const int64_t align = aligns[it % 4], n = 1 + irand(NMAX);
        const int dense = (it / 4) % 2, max_unit = (int)aligns[irand(4)];
        cb_random(ops, n, d, B, align, dense, dense ? 96 : 512);
        for (int64_t i = 0; i < B; i++) h0[i] = (unsigned char)rnd64();
        memcpy(want, h0, (size_t)B);
        cb_seq(want, d, ops, n);
        /* kernel over the waves: the widest unit, and a narrower one */
        for (int k = 0; k < 2; k++) {
            CU(cudaMemcpy(d, h0, (size_t)B, cudaMemcpyHostToDevice));
            memcpy(ops2, ops, (size_t)n * sizeof *ops);
            cb_run_waves(ops2, n, desc_d, stage, k ? max_unit : 16);
            dget(got, d, (size_t)B);
            mismatches += memcmp(got, want, (size_t)B) != 0;
            cases++;
        }
        /* the backend's flush */
        CU(cudaMemcpy(d, h0, (size_t)B, cudaMemcpyHostToDevice));
        cb_run_flush(x, ops, n);
        dget(got, d, (size_t)B);
        mismatches += memcmp(got, want, (size_t)B) != 0;
        cases++;
    }
    cb_free_ctx(x);
    CHECKF(mismatches == 0, "copy_batch: %lld of %lld random batches differ from the sequence",
           (long long)mismatches, (long long)cases);
    /* bad arguments are refused */
    CHECK(ls_cuda_copy_batch(desc_d, 1, 16, 2, 0) == cudaErrorInvalidValue);
    CHECK(ls_cuda_copy_batch(NULL, 1, 16, 4, 0) == cudaErrorInvalidValue);
    free(h0), free(want), free(got), free(ops), free(ops2);
    dfree_all();

    /* 70000 4-byte ops in one batch (two grid.y chunks), half zero fills */
    const int64_t N = 70000, total = 2 * N * 8;
    unsigned char *hb = hmalloc((size_t)total), *gb = hmalloc((size_t)total);
    unsigned char *db = dmalloc((size_t)total);
    ls_copy_op *big = hmalloc((size_t)N * sizeof *big);
    for (int64_t i = 0; i < total; i++) hb[i] = (unsigned char)rnd64();
    CU(cudaMemcpy(db, hb, (size_t)total, cudaMemcpyHostToDevice));
    for (int64_t i = 0; i < N; i++)
        big[i] = (ls_copy_op){db + N * 8 + i * 8 + 4 * (i & 1), i % 2 ? db + i * 8 : NULL, 4};
    ls_copy_op *bd = dput(big, (size_t)N * sizeof *big);
    RUN(ls_cuda_copy_batch(bd, N, 4, 4, 0));
    cb_seq(hb, db, big, N);
    dget(gb, db, (size_t)total);
    CHECKF(memcmp(gb, hb, (size_t)total) == 0, "copy_batch: %lld ops (grid.y chunks)", (long long)N);
    /* ops longer than the grid's x extent: 3 x 24 MiB, the grid-stride loop */
    const int64_t L = INT64_C(24) << 20;
    unsigned char *dl = dmalloc((size_t)(6 * L));
    ls_copy_op lops[3] = {{dl + 3 * L, dl, L}, {dl + 4 * L, dl + L, L - 16}, {dl + 5 * L, NULL, L}};
    ls_copy_op *ld = dput(lops, sizeof lops);
    unsigned char *hl = hmalloc((size_t)(6 * L)), *gl = hmalloc((size_t)(6 * L));
    for (int64_t i = 0; i < 6 * L; i++) hl[i] = (unsigned char)(i * 131 + (i >> 20));
    CU(cudaMemcpy(dl, hl, (size_t)(6 * L), cudaMemcpyHostToDevice));
    RUN(ls_cuda_copy_batch(ld, 3, L, 16, 0));
    cb_seq(hl, dl, lops, 3);
    dget(gl, dl, (size_t)(6 * L));
    CHECK(memcmp(gl, hl, (size_t)(6 * L)) == 0);
    free(hb), free(gb), free(big), free(hl), free(gl);
    dfree_all();
    printf("copy_batch: %lld random batches, %lld ops in one batch, 24 MiB ops ok\n",
           (long long)cases, (long long)N);
}

int main(void) {
    if (!ls_cuda_device_available()) {
        printf("no CUDA device: skipped\n");
        fflush(stdout);
        _exit(77);   /* skip; _exit: no leak report about the CUDA runtime under ASan */
    }
    const char *seed_env = getenv("LS_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0)
                             : ((uint64_t)time(NULL) * 0x9E3779B97F4A7C15u) ^ (uint64_t)getpid();
    rng_state = seed;
    struct cudaDeviceProp prop;
    CU(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (sm_%d%d), seed: LS_SEED=%llu\n", prop.name, prop.major, prop.minor,
           (unsigned long long)seed);
    fflush(stdout);
    run_all_f32();
    run_all_f64();
    test_state_copy();
    test_copy_batch();
    printf("\n%-26s %-4s %-4s %8s %8s %9s %10s\n", "op (vs CPU twin)", "prec", "mode", "elems",
           "bit-eq%", "max-ulp", "max-err");
    for (int i = 0; i < n_stats; i++) {
        const stat_row *s = &stats[i];
        printf("%-26s %-4s %-4s %8lld %8.3f %9lld %10.3e\n", s->name, s->is64 ? "f64" : "f32",
               s->bitwise ? "BIT" : "TOL", (long long)s->n,
               s->n ? 100.0 * (double)s->same / (double)s->n : 100.0, (long long)s->max_ulp,
               s->max_err);
    }
    fflush(stdout);
    return check_status();
}

#else /* ---------------- body, once per precision ---------------- */

static LS_T *LS_S(hrand)(int64_t n, double lo, double hi) {
    LS_T *p = hmalloc((size_t)(n > 0 ? n : 1) * sizeof(LS_T));
    for (int64_t i = 0; i < n; i++) p[i] = (LS_T)urand(lo, hi);
    return p;
}
static LS_T *LS_S(dalloc)(int64_t n) { return dmalloc((size_t)(n > 0 ? n : 1) * sizeof(LS_T)); }
static LS_T *LS_S(dputT)(const LS_T *h, int64_t n) { return dput(h, (size_t)n * sizeof(LS_T)); }
static LS_T *LS_S(dgetT)(const LS_T *d, int64_t n) {
    LS_T *h = hmalloc((size_t)(n > 0 ? n : 1) * sizeof(LS_T));
    dget(h, d, (size_t)n * sizeof(LS_T));
    return h;
}
/* rows x n block with row stride ld -> contiguous rows x n */
static LS_T *LS_S(pack)(const LS_T *src, int64_t rows, int64_t n, int64_t ld) {
    LS_T *p = hmalloc((size_t)(rows * n > 0 ? rows * n : 1) * sizeof(LS_T));
    for (int64_t r = 0; r < rows; r++) memcpy(p + r * n, src + r * ld, (size_t)n * sizeof(LS_T));
    return p;
}

static int64_t LS_S(ulpd)(LS_T a, LS_T b) {
#if LS_IS64
    return ulp_f64(a, b);
#else
    return ulp_f32(a, b);
#endif
}

/* GPU vs CPU twin; records a row in the table and CHECKs the mode's criterion. */
static void LS_S(cmp)(const char *name, const LS_T *got, const LS_T *ref, int64_t n, int bitwise,
                      double tol) {
    double ss = 0;
    int64_t finite = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(ref[i])) ss += (double)ref[i] * (double)ref[i], finite++;
    const double rms = finite ? sqrt(ss / (double)finite) : 0;
    int64_t same = 0, max_ulp = 0, bad = 0, first_bad = -1;
    double max_err = 0;
    for (int64_t i = 0; i < n; i++) {
        const LS_T a = got[i], b = ref[i];
        if (memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b))) {
            same++;
            continue;
        }
        if (!isnan(a) != !isnan(b) || isinf(a) || isinf(b)) {
            bad++;
            if (first_bad < 0) first_bad = i;
            max_err = INFINITY;
            continue;
        }
        const int64_t u = LS_S(ulpd)(a, b);
        if (u > max_ulp) max_ulp = u;
        const double err = fabs((double)a - (double)b) / (fabs((double)b) + rms + 1e-300);
        if (err > max_err) max_err = err;
        if (bitwise || err > tol) {
            bad++;
            if (first_bad < 0) first_bad = i;
        }
    }
    CHECKF(bad == 0, "%s (%s, %s): %lld of %lld elements off; first at %lld: gpu %.17g cpu %.17g",
           name, LS_IS64 ? "f64" : "f32", bitwise ? "bitwise" : "tolerance", (long long)bad,
           (long long)n, (long long)first_bad, first_bad >= 0 ? (double)got[first_bad] : 0.0,
           first_bad >= 0 ? (double)ref[first_bad] : 0.0);
    if (n_stats < (int)(sizeof stats / sizeof stats[0])) {
        stat_row *s = &stats[n_stats++];
        snprintf(s->name, sizeof s->name, "%s", name);
        s->is64 = LS_IS64;
        s->bitwise = bitwise;
        s->n = n;
        s->same = same;
        s->max_ulp = max_ulp;
        s->max_err = max_err;
    }
}
/* GPU vs GPU: must be identical bits */
static void LS_S(same_bits)(const char *what, const LS_T *a, const LS_T *b, int64_t n) {
    CHECKF(memcmp(a, b, (size_t)n * sizeof(LS_T)) == 0, "invariance: %s (%s)", what,
           LS_IS64 ? "f64" : "f32");
}

static void LS_S(test_embed)(void) {
    const int64_t V = 50, H = 70, R = 37;
    LS_T *table = LS_S(hrand)(V * H, -2, 2);
    int32_t tok[37];
    for (int64_t r = 0; r < R; r++) tok[r] = (int32_t)irand(V);
    tok[5] = -1;   /* out of range: a NaN row */
    LS_T *dt = LS_S(dputT)(table, V * H), *dx = LS_S(dalloc)(R * H);
    int32_t *dtok = dput(tok, sizeof tok);
    RUN(LS_S(ls_cuda_embed)(dtok, R, dt, V, H, dx, 0));
    LS_T *got = LS_S(dgetT)(dx, R * H), *ref = hmalloc((size_t)(R * H) * sizeof(LS_T));
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < H; j++)
            ref[r * H + j] = tok[r] < 0 ? (LS_T)NAN : table[(int64_t)tok[r] * H + j];
    LS_S(cmp)("embed", got, ref, R * H, 1, 0);
    free(table), free(got), free(ref);
    dfree_all();
}

static void LS_S(test_rmsnorm)(void) {
    const int64_t R = 37, n = 300, ldx = 310, ldy = 305;
    const double eps = 1e-6;
    LS_T *x = LS_S(hrand)(R * ldx, -2, 2), *w = LS_S(hrand)(n, -1.5, 1.5);
    LS_T *dxx = LS_S(dputT)(x, R * ldx), *dw = LS_S(dputT)(w, n), *dy = LS_S(dalloc)(R * ldy);
    RUN(LS_S(ls_cuda_rmsnorm)(dxx, ldx, R, n, dw, eps, dy, ldy, 0));
    LS_T *y = LS_S(dgetT)(dy, R * ldy), *got = LS_S(pack)(y, R, n, ldy);
    LS_T *ref = hmalloc((size_t)(R * n) * sizeof(LS_T));
    for (int64_t r = 0; r < R; r++) LS_S(ls_rmsnorm)(x + r * ldx, 1, n, w, eps, ref + r * n);
    LS_S(cmp)("rmsnorm", got, ref, R * n, 1, 0);
    /* a row alone vs in the batch */
    LS_T *dy1 = LS_S(dalloc)(n);
    RUN(LS_S(ls_cuda_rmsnorm)(dxx + 17 * ldx, ldx, 1, n, dw, eps, dy1, n, 0));
    LS_T *y1 = LS_S(dgetT)(dy1, n);
    LS_S(same_bits)("rmsnorm row alone vs batch of 37", y1, got + 17 * n, n);
    /* in place */
    RUN(LS_S(ls_cuda_rmsnorm)(dxx, ldx, R, n, dw, eps, dxx, ldx, 0));
    LS_T *xi = LS_S(dgetT)(dxx, R * ldx), *gi = LS_S(pack)(xi, R, n, ldx);
    LS_S(same_bits)("rmsnorm in place", gi, got, R * n);
    /* the residual add fused in: x += a (stored, bitwise the CPU's add), then the norm of
     * the sum (bitwise the CPU twin's) */
    {
        const int64_t lda = 303;
        LS_T *a = LS_S(hrand)(R * lda, -2, 2), *xs = hmalloc((size_t)(R * n) * sizeof(LS_T));
        LS_T *da = LS_S(dputT)(a, R * lda);
        LS_T *dx2 = LS_S(dputT)(x, R * ldx);
        RUN(LS_S(ls_cuda_add_rmsnorm)(dx2, ldx, da, lda, R, n, dw, eps, dy, ldy, 0));
        for (int64_t r = 0; r < R; r++) {
            for (int64_t i = 0; i < n; i++) xs[r * n + i] = x[r * ldx + i] + a[r * lda + i];
            LS_S(ls_rmsnorm)(xs + r * n, 1, n, w, eps, ref + r * n);
        }
        LS_T *x2 = LS_S(dgetT)(dx2, R * ldx), *gx = LS_S(pack)(x2, R, n, ldx);
        LS_T *y2 = LS_S(dgetT)(dy, R * ldy), *gy = LS_S(pack)(y2, R, n, ldy);
        LS_S(cmp)("add_rmsnorm sum", gx, xs, R * n, 1, 0);
        LS_S(cmp)("add_rmsnorm norm", gy, ref, R * n, 1, 0);
        CHECK(LS_S(ls_cuda_add_rmsnorm)(dx2, ldx, NULL, lda, R, n, dw, eps, dy, ldy, 0) ==
              cudaErrorInvalidValue);
        CHECK(LS_S(ls_cuda_add_rmsnorm)(dx2, ldx, da, n - 1, R, n, dw, eps, dy, ldy, 0) ==
              cudaErrorInvalidValue);
        free(a), free(xs), free(x2), free(gx), free(y2), free(gy);
    }
    /* three segments of each row in place, each with its own weights (Mamba's dt, B, C):
     * bitwise the CPU twin per segment; the bytes between and after them untouched */
    {
        LS_T *w2 = LS_S(hrand)(n, -1.5, 1.5), *w3 = LS_S(hrand)(n, -1.5, 1.5);
        LS_T *dw2 = LS_S(dputT)(w2, n), *dw3 = LS_S(dputT)(w3, n);
        LS_T *dx3 = LS_S(dputT)(x, R * ldx), *xr = hmalloc((size_t)(R * ldx) * sizeof(LS_T));
        const ls_cuda_norm_segs sg = {.n_seg = 3, .off = {0, 128, 150}, .n = {128, 16, 150},
                                      .w = {dw, dw2, dw3}};
        RUN(LS_S(ls_cuda_rmsnorm_segs)(dx3, ldx, R, &sg, eps, 0));
        memcpy(xr, x, (size_t)(R * ldx) * sizeof(LS_T));
        const LS_T *ws[3] = {w, w2, w3};
        for (int64_t r = 0; r < R; r++)
            for (int q = 0; q < 3; q++)
                LS_S(ls_rmsnorm)(x + r * ldx + sg.off[q], 1, sg.n[q], ws[q], eps,
                                 xr + r * ldx + sg.off[q]);
        LS_T *x3 = LS_S(dgetT)(dx3, R * ldx);
        LS_S(cmp)("rmsnorm_segs", x3, xr, R * ldx, 1, 0);
        ls_cuda_norm_segs bad = sg;
        bad.off[2] = ldx - 149;   /* past the row */
        CHECK(LS_S(ls_cuda_rmsnorm_segs)(dx3, ldx, R, &bad, eps, 0) == cudaErrorInvalidValue);
        bad = sg;
        bad.n_seg = 0;
        CHECK(LS_S(ls_cuda_rmsnorm_segs)(dx3, ldx, R, &bad, eps, 0) == cudaErrorInvalidValue);
        free(w2), free(w3), free(xr), free(x3);
        /* one segment wider than the 256 lanes (each warp lane folds lanes t + 32 m, the
         * lanes folding elements l and l + 256) */
        LS_T *dx4 = LS_S(dputT)(x, R * ldx), *x4r = hmalloc((size_t)(R * ldx) * sizeof(LS_T));
        const ls_cuda_norm_segs wide = {.n_seg = 1, .off = {0}, .n = {n}, .w = {dw}};
        RUN(LS_S(ls_cuda_rmsnorm_segs)(dx4, ldx, R, &wide, eps, 0));
        memcpy(x4r, x, (size_t)(R * ldx) * sizeof(LS_T));
        for (int64_t r = 0; r < R; r++) LS_S(ls_rmsnorm)(x + r * ldx, 1, n, w, eps, x4r + r * ldx);
        LS_T *x4 = LS_S(dgetT)(dx4, R * ldx);
        LS_S(cmp)("rmsnorm_segs, one segment of 300", x4, x4r, R * ldx, 1, 0);
        free(x4r), free(x4);
    }
    /* rows wider than the kernel's registers (LS_RMS_REG x 256 = 4,096): the loop path, the
     * same bits; with the residual add too */
    {
        const int64_t RW = 3, nw = 5000;
        LS_T *xw = LS_S(hrand)(RW * nw, -2, 2), *ww = LS_S(hrand)(nw, -1.5, 1.5);
        LS_T *aw = LS_S(hrand)(RW * nw, -2, 2), *refw = hmalloc((size_t)(RW * nw) * sizeof(LS_T));
        LS_T *dxw = LS_S(dputT)(xw, RW * nw), *dww = LS_S(dputT)(ww, nw), *dyw = LS_S(dalloc)(RW * nw);
        LS_T *daw = LS_S(dputT)(aw, RW * nw);
        RUN(LS_S(ls_cuda_rmsnorm)(dxw, nw, RW, nw, dww, eps, dyw, nw, 0));
        for (int64_t r = 0; r < RW; r++) LS_S(ls_rmsnorm)(xw + r * nw, 1, nw, ww, eps, refw + r * nw);
        LS_T *gw = LS_S(dgetT)(dyw, RW * nw);
        LS_S(cmp)("rmsnorm, rows of 5000", gw, refw, RW * nw, 1, 0);
        RUN(LS_S(ls_cuda_add_rmsnorm)(dxw, nw, daw, nw, RW, nw, dww, eps, dyw, nw, 0));
        for (int64_t i = 0; i < RW * nw; i++) xw[i] = xw[i] + aw[i];
        for (int64_t r = 0; r < RW; r++) LS_S(ls_rmsnorm)(xw + r * nw, 1, nw, ww, eps, refw + r * nw);
        LS_T *gxw = LS_S(dgetT)(dxw, RW * nw), *gyw = LS_S(dgetT)(dyw, RW * nw);
        LS_S(cmp)("add_rmsnorm sum, rows of 5000", gxw, xw, RW * nw, 1, 0);
        LS_S(cmp)("add_rmsnorm norm, rows of 5000", gyw, refw, RW * nw, 1, 0);
        free(xw), free(ww), free(aw), free(refw), free(gw), free(gxw), free(gyw);
    }
    free(x), free(w), free(y), free(got), free(ref), free(y1), free(xi), free(gi);
    dfree_all();
}

static void LS_S(test_linear)(void) {
    const int64_t R = 37, in = 203, out = 131, ldx = 210, ldy = 140;
    LS_T *x = LS_S(hrand)(R * ldx, -1, 1), *w = LS_S(hrand)(out * in, -1, 1);
    LS_T *b = LS_S(hrand)(out, -1, 1);
    LS_T *dxx = LS_S(dputT)(x, R * ldx), *dw = LS_S(dputT)(w, out * in), *db = LS_S(dputT)(b, out);
    LS_T *dy = LS_S(dalloc)(R * ldy);
    LS_T *ref = hmalloc((size_t)(R * out) * sizeof(LS_T));
    for (int pass = 0; pass < 2; pass++) {   /* with and without bias */
        const LS_T *bb = pass == 0 ? db : NULL;
        dpoison(dy, (size_t)(R * ldy) * sizeof(LS_T));
        RUN(LS_S(ls_cuda_linear)(dxx, ldx, R, in, dw, bb, out, dy, ldy, LS_CUDA_PATH_AUTO, 0));
        LS_T *y = LS_S(dgetT)(dy, R * ldy), *got = LS_S(pack)(y, R, out, ldy);
        for (int64_t r = 0; r < R; r++)
            LS_S(ls_linear)(x + r * ldx, 1, in, w, pass == 0 ? b : NULL, out, ref + r * out);
        LS_S(cmp)(pass == 0 ? "linear (bias)" : "linear", got, ref, R * out, 1, 0);
        if (pass == 0) {
            /* rows alone and in a batch of another size / tile alignment: same bits */
            const int64_t picks[][2] = {{0, 1}, {17, 1}, {36, 1}, {30, 5}, {3, 20}};
            for (size_t p = 0; p < sizeof picks / sizeof picks[0]; p++) {
                const int64_t r0 = picks[p][0], nr = picks[p][1];
                LS_T *dy1 = LS_S(dalloc)(nr * out);
                RUN(LS_S(ls_cuda_linear)(dxx + r0 * ldx, ldx, nr, in, dw, db, out, dy1, out,
                                         LS_CUDA_PATH_AUTO, 0));
                LS_T *y1 = LS_S(dgetT)(dy1, nr * out);
                LS_S(same_bits)("linear rows alone/sub-batch vs batch of 37", y1, got + r0 * out,
                                nr * out);
                free(y1);
            }
            /* run to run */
            RUN(LS_S(ls_cuda_linear)(dxx, ldx, R, in, dw, bb, out, dy, ldy, LS_CUDA_PATH_AUTO, 0));
            LS_T *y2 = LS_S(dgetT)(dy, R * ldy), *g2 = LS_S(pack)(y2, R, out, ldy);
            LS_S(same_bits)("linear run twice", g2, got, R * out);
            free(y2), free(g2);
        }
        free(y), free(got);
    }
    /* 1..9, 31..33 and 70 rows on both kernels (the few-rows one in 8-row chunks, the tiled
     * one in 32-row tiles, partial last ones), K spanning several K tiles of both and not a
     * multiple of 8, outputs not a multiple of 32 or 64: bitwise the CPU twin */
    {
        const int64_t K = 613, O = 77, ld = 620, NR = 70;
        const int64_t nrs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 31, 32, 33, 70};
        LS_T *x2 = LS_S(hrand)(NR * ld, -1, 1), *w2 = LS_S(hrand)(O * K, -1, 1);
        LS_T *dx2 = LS_S(dputT)(x2, NR * ld), *dw2 = LS_S(dputT)(w2, O * K);
        LS_T *dy2 = LS_S(dalloc)(NR * O), *ref2 = hmalloc((size_t)(NR * O) * sizeof(LS_T));
        for (int64_t r = 0; r < NR; r++) LS_S(ls_linear)(x2 + r * ld, 1, K, w2, b, O, ref2 + r * O);
        for (size_t i = 0; i < sizeof nrs / sizeof nrs[0]; i++)
            for (int path = LS_CUDA_PATH_FEW; path <= LS_CUDA_PATH_TILED; path++) {
                const int64_t nr = nrs[i];
                dpoison(dy2, (size_t)(NR * O) * sizeof(LS_T));
                RUN(LS_S(ls_cuda_linear)(dx2, ld, nr, K, dw2, db, O, dy2, O, path, 0));
                LS_T *y2 = LS_S(dgetT)(dy2, nr * O);
                char what[80];
                snprintf(what, sizeof what, "linear %s, %lld rows, in 613 (bias)",
                         path == LS_CUDA_PATH_FEW ? "few-rows" : "tiled", (long long)nr);
                LS_S(cmp)(what, y2, ref2, nr * O, 1, 0);
                free(y2);
            }
        CHECK(LS_S(ls_cuda_linear)(dx2, ld, 1, K, dw2, db, O, dy2, O, 3, 0) ==
              cudaErrorInvalidValue);
        free(x2), free(w2), free(ref2);
    }

    /* fast mode (cuBLAS): tolerance only */
    cublasHandle_t hdl;
    CHECK(cublasCreate(&hdl) == CUBLAS_STATUS_SUCCESS);
    for (int64_t r = 0; r < R; r++) LS_S(ls_linear)(x + r * ldx, 1, in, w, b, out, ref + r * out);
    for (int tf32 = 0; tf32 <= (LS_IS64 ? 0 : 1); tf32++) {
        dpoison(dy, (size_t)(R * ldy) * sizeof(LS_T));
        RUN(LS_S(ls_cuda_linear_fast)(hdl, dxx, ldx, R, in, dw, db, out, dy, ldy, tf32, 0));
        LS_T *y = LS_S(dgetT)(dy, R * ldy), *got = LS_S(pack)(y, R, out, ldy);
        LS_S(cmp)(tf32 ? "linear_fast cuBLAS tf32" : "linear_fast cuBLAS", got, ref, R * out, 0,
                  tf32 ? 5e-3 : (LS_IS64 ? 1e-13 : 1e-5));
        free(y), free(got);
    }
    cublasDestroy(hdl);

    /* a rough timing of the invariant kernel vs cuBLAS (information only; LS_CUDA_BENCH=1) */
    if (bench_on()) {
        const int64_t M = 64, K = 4096, O = 4096;
        LS_T *bx = LS_S(dalloc)(M * K), *bw = LS_S(dalloc)(O * K), *by = LS_S(dalloc)(M * O);
        RUN(LS_S(ls_cuda_fill)(bx, M * K, (LS_T)0.5, 0));
        RUN(LS_S(ls_cuda_fill)(bw, O * K, (LS_T)0.25, 0));
        RUN(LS_S(ls_cuda_linear)(bx, K, M, K, bw, NULL, O, by, O, LS_CUDA_PATH_AUTO, 0));
        const double t0 = seconds();
        for (int it = 0; it < 5; it++)
            CU(LS_S(ls_cuda_linear)(bx, K, M, K, bw, NULL, O, by, O, LS_CUDA_PATH_AUTO, 0));
        CU(cudaDeviceSynchronize());
        const double dt = (seconds() - t0) / 5;
        cublasHandle_t hb;
        CHECK(cublasCreate(&hb) == CUBLAS_STATUS_SUCCESS);
        RUN(LS_S(ls_cuda_linear_fast)(hb, bx, K, M, K, bw, NULL, O, by, O, 0, 0));
        const double t1 = seconds();
        for (int it = 0; it < 5; it++)
            CU(LS_S(ls_cuda_linear_fast)(hb, bx, K, M, K, bw, NULL, O, by, O, 0, 0));
        CU(cudaDeviceSynchronize());
        const double dtf = (seconds() - t1) / 5;
        cublasDestroy(hb);
        printf("timing: linear %s 64x4096x4096: invariant %.3f ms (%.0f GFLOP/s), cuBLAS %.3f ms "
               "(%.0f GFLOP/s)\n", LS_IS64 ? "f64" : "f32", dt * 1e3,
               2.0 * (double)(M * K * O) / dt * 1e-9, dtf * 1e3,
               2.0 * (double)(M * K * O) / dtf * 1e-9);
    }
    free(x), free(w), free(b), free(ref);
    dfree_all();
}

/* One MoE expert linear case: P pairs, pair p reading x row p / x_div and expert ex[p]
 * (values outside [0, E) allowed), E random experts. The grouping must be the host's stable
 * counting sort; every output must equal the CPU twin's ls_linear of (x row, expert) bit for
 * bit, NaN exactly on the invalid pairs' rows; a second grouping and launch give the same bits. */
static void LS_S(moe_case)(const char *name, int64_t E, int64_t P, int64_t x_div,
                           const int64_t *ex) {
    const int64_t in = 203, out = 131, ldx = 210, ldy = 140, xr = (P + x_div - 1) / x_div;
    LS_T *x = LS_S(hrand)(xr * ldx, -1, 1), *dx = LS_S(dputT)(x, xr * ldx);
    LS_T **we = hmalloc((size_t)E * sizeof *we), **dwe = hmalloc((size_t)E * sizeof *dwe);
    for (int64_t e = 0; e < E; e++) {
        we[e] = LS_S(hrand)(out * in, -1, 1);
        dwe[e] = LS_S(dputT)(we[e], out * in);
    }
    const LS_T *const *dlist = dput(dwe, (size_t)E * sizeof *dwe);
    const int64_t *dex = dput(ex, (size_t)P * 8);
    const int64_t glen = ls_cuda_moe_group_len(P, E);
    int32_t *dgrp = dmalloc((size_t)glen * 4);
    int32_t *g = hmalloc((size_t)glen * 4), *hg = hmalloc((size_t)glen * 4);
    RUN(ls_cuda_moe_group(dex, P, E, dgrp, 0));
    dget(g, dgrp, (size_t)glen * 4);
    const int64_t used = moe_group_host(ex, P, E, LS_CUDA_MOE_TILE, hg);
    CHECKF(g[0] == hg[0] && g[0] <= ls_cuda_moe_max_tiles(P, E) &&
               memcmp(g, hg, (size_t)used * 4) == 0,
           "moe_group (%s, %s): not the stable counting sort (%d tiles, host %d)", name,
           LS_IS64 ? "f64" : "f32", g[0], hg[0]);
    LS_T *dy = LS_S(dalloc)(P * ldy);
    RUN(LS_S(ls_cuda_linear_moe)(dx, ldx, x_div, P, in, dlist, E, dgrp, out, dy, ldy,
                                 LS_CUDA_PATH_AUTO, 0));
    LS_T *y = LS_S(dgetT)(dy, P * ldy), *got = LS_S(pack)(y, P, out, ldy);
    LS_T *ref = hmalloc((size_t)(P * out > 0 ? P * out : 1) * sizeof(LS_T));
    for (int64_t p = 0; p < P; p++) {
        if (ex[p] < 0 || ex[p] >= E) {
            for (int64_t o = 0; o < out; o++) ref[p * out + o] = (LS_T)NAN;
            continue;
        }
        LS_S(ls_linear)(x + (p / x_div) * ldx, 1, in, we[ex[p]], NULL, out, ref + p * out);
    }
    LS_S(cmp)(name, got, ref, P * out, 1, 0);
    /* each kernel on its own (the automatic choice took one of them), regrouped: the same bits */
    for (int path = LS_CUDA_PATH_FEW; path <= LS_CUDA_PATH_TILED; path++) {
        dpoison(dgrp, (size_t)glen * 4);
        dpoison(dy, (size_t)(P * ldy) * sizeof(LS_T));
        RUN(ls_cuda_moe_group(dex, P, E, dgrp, 0));
        RUN(LS_S(ls_cuda_linear_moe)(dx, ldx, x_div, P, in, dlist, E, dgrp, out, dy, ldy, path,
                                     0));
        LS_T *y2 = LS_S(dgetT)(dy, P * ldy), *got2 = LS_S(pack)(y2, P, out, ldy);
        dget(g, dgrp, (size_t)glen * 4);
        CHECKF(memcmp(g, hg, (size_t)used * 4) == 0, "moe_group (%s): run twice differs", name);
        LS_S(same_bits)(path == LS_CUDA_PATH_FEW ? "linear_moe few-pairs kernel vs automatic"
                                                : "linear_moe tiled kernel vs automatic",
                        got2, got, P * out);
        free(y2), free(got2);
    }
    /* fast mode: cuBLAS over tiles of 32, 5 and 128 pairs (the grouping checked against the
     * host's for each), within tolerance, NaN exactly on the invalid pairs' rows; workspace
     * and output poisoned first (padding rows must not leak) */
    cublasHandle_t hdl;
    CHECK(cublasCreate(&hdl) == CUBLAS_STATUS_SUCCESS);
    const int64_t tiles[3] = {LS_CUDA_MOE_TILE, 5, 128};
    for (int ti = 0; ti < 3; ti++) {
        const int64_t tile = tiles[ti], glen2 = ls_cuda_moe_group_len_of(P, E, tile);
        int32_t *dgrp2 = dmalloc((size_t)glen2 * 4), *g2 = hmalloc((size_t)glen2 * 4);
        int32_t *hg2 = hmalloc((size_t)glen2 * 4);
        RUN(ls_cuda_moe_group_tiles(dex, P, E, tile, dgrp2, 0));
        dget(g2, dgrp2, (size_t)glen2 * 4);
        const int64_t used2 = moe_group_host(ex, P, E, tile, hg2);
        CHECKF(g2[0] <= ls_cuda_moe_max_tiles_of(P, E, tile) && memcmp(g2, hg2, (size_t)used2 * 4) == 0,
               "moe_group_tiles (%s, tile %lld): not the stable counting sort", name, (long long)tile);
        const int64_t wsb = ls_cuda_linear_moe_fast_ws(P, E, tile, in, out, (int64_t)sizeof(LS_T));
        void *ws = dmalloc((size_t)wsb);
        for (int tf32 = 0; tf32 <= (LS_IS64 ? 0 : 1); tf32++) {
            dpoison(ws, (size_t)wsb);
            dpoison(dy, (size_t)(P * ldy) * sizeof(LS_T));
            RUN(LS_S(ls_cuda_linear_moe_fast)(hdl, dx, ldx, x_div, P, in, dlist, E, dgrp2, tile, out,
                                              dy, ldy, ws, wsb, tf32, 0));
            LS_T *y3 = LS_S(dgetT)(dy, P * ldy), *got3 = LS_S(pack)(y3, P, out, ldy);
            char what[96];
            snprintf(what, sizeof what, "%s cuBLAS t%lld%s", name, (long long)tile,
                     tf32 ? " tf32" : "");
            LS_S(cmp)(what, got3, ref, P * out, 0, tf32 ? 5e-3 : (LS_IS64 ? 1e-13 : 1e-5));
            free(y3), free(got3);
        }
        CHECK(LS_S(ls_cuda_linear_moe_fast)(hdl, dx, ldx, x_div, P, in, dlist, E, dgrp2, tile, out,
                                            dy, ldy, ws, wsb - 1, 0, 0) == cudaErrorInvalidValue);
        free(g2), free(hg2);
    }
    CHECK(ls_cuda_moe_group_tiles(dex, P, E, 0, dgrp, 0) == cudaErrorInvalidValue);
    CHECK(ls_cuda_moe_group_tiles(dex, P, E, LS_CUDA_MOE_MAX_TILE + 1, dgrp, 0) ==
          cudaErrorInvalidValue);
    cublasDestroy(hdl);
    for (int64_t e = 0; e < E; e++) free(we[e]);
    free(x), free(we), free(dwe), free(g), free(hg), free(y), free(got), free(ref);
    dfree_all();
}

/* Fast mode's MLP over every expert (ls_cuda_mlp_fast) against the CPU twin's linears and
 * silu, expert by expert: E = 1 (a dense MLP: gate and up fused) and E = 3, on one row and
 * on 37 (ldx > H). cuBLAS: tolerance only, TF32 with linear_fast's. */
static void LS_S(test_mlp_fast)(void) {
    const int64_t H = 70, I = 45, ldx = 73, Es[] = {1, 3}, Rs[] = {1, 37};
    cublasHandle_t hdl;
    CHECK(cublasCreate(&hdl) == CUBLAS_STATUS_SUCCESS);
    LS_T *g = hmalloc((size_t)I * sizeof(LS_T)), *u = hmalloc((size_t)I * sizeof(LS_T));
    for (int ei = 0; ei < 2; ei++)
        for (int ri = 0; ri < 2; ri++) {
            const int64_t E = Es[ei], R = Rs[ri];
            LS_T *x = LS_S(hrand)(R * ldx, -1, 1), *wgu = LS_S(hrand)(2 * E * I * H, -0.3, 0.3);
            LS_T *wdn = LS_S(hrand)(E * H * I, -0.3, 0.3);
            LS_T *ref = hmalloc((size_t)(R * E * H) * sizeof(LS_T));
            for (int64_t r = 0; r < R; r++)
                for (int64_t e = 0; e < E; e++) {
                    LS_S(ls_linear)(x + r * ldx, 1, H, wgu + e * I * H, NULL, I, g);
                    LS_S(ls_linear)(x + r * ldx, 1, H, wgu + (E + e) * I * H, NULL, I, u);
                    for (int64_t i = 0; i < I; i++) g[i] = LS_S(ls_silu)(g[i]) * u[i];
                    LS_S(ls_linear)(g, 1, I, wdn + e * H * I, NULL, H, ref + (r * E + e) * H);
                }
            LS_T *dx = LS_S(dputT)(x, R * ldx), *dgu = LS_S(dputT)(wgu, 2 * E * I * H);
            LS_T *ddn = LS_S(dputT)(wdn, E * H * I), *dgub = LS_S(dalloc)(R * 2 * E * I);
            LS_T *dact = LS_S(dalloc)(R * E * I), *dy = LS_S(dalloc)(R * E * H);
            for (int tf32 = 0; tf32 <= (LS_IS64 ? 0 : 1); tf32++) {
                dpoison(dy, (size_t)(R * E * H) * sizeof(LS_T));
                RUN(LS_S(ls_cuda_mlp_fast)(hdl, dx, ldx, R, H, I, E, dgu, ddn, dgub, dact, dy, tf32,
                                           0));
                LS_T *got = LS_S(dgetT)(dy, R * E * H);
                char name[64];
                snprintf(name, sizeof name, "mlp_fast E=%lld %lld rows%s", (long long)E,
                         (long long)R, tf32 ? " tf32" : "");
                LS_S(cmp)(name, got, ref, R * E * H, 0, tf32 ? 5e-3 : (LS_IS64 ? 1e-13 : 1e-5));
                free(got);
            }
            CHECK(LS_S(ls_cuda_mlp_fast)(hdl, dx, H - 1, R, H, I, E, dgu, ddn, dgub, dact, dy, 0,
                                         0) == cudaErrorInvalidValue);
            CHECK(LS_S(ls_cuda_mlp_fast)(hdl, dx, ldx, R, H, I, 0, dgu, ddn, dgub, dact, dy, 0,
                                         0) == cudaErrorInvalidValue);
            free(x), free(wgu), free(wdn), free(ref);
            dfree_all();
        }
    free(g), free(u);
    cublasDestroy(hdl);
}

/* The MoE expert linear over pairs grouped by expert (ls_cuda_moe_group), cases that stress
 * the grouping: tiles of 32 pairs of one expert, partial tiles, empty experts, invalid experts
 * (their own group and tiles), x_div = k and 1, more pairs than one 1024-pair chunk. */
static void LS_S(test_linear_moe)(void) {
    const int64_t R = 37, NP = 2500;
    int64_t *ex = hmalloc((size_t)NP * 8);
    /* k = 2 over 37 rows, 4 experts, one out of range (a NaN row) */
    for (int64_t p = 0; p < 2 * R; p++) ex[p] = irand(4);
    ex[7] = 9;
    LS_S(moe_case)("linear_moe (pairs, k=2)", 4, 2 * R, 2, ex);
    /* x_div = 1 (the down projection's layout) on the first R pairs */
    LS_S(moe_case)("linear_moe (x_div=1)", 4, R, 1, ex);
    /* every pair on one expert: 3 tiles, the last one of 10 pairs */
    for (int64_t p = 0; p < 2 * R; p++) ex[p] = 2;
    LS_S(moe_case)("linear_moe (one expert)", 4, 2 * R, 2, ex);
    /* experts 1 and 4 of 5 get no pair; 50 pairs (not a multiple of 32) */
    for (int64_t p = 0; p < 50; p++) {
        ex[p] = irand(3);
        if (ex[p] == 1) ex[p] = 3;
    }
    LS_S(moe_case)("linear_moe (empty experts)", 5, 50, 1, ex);
    /* out-of-range experts (negative, = E, extreme) on half of 77 pairs, k = 3: the
     * invalid group spans two tiles */
    const int64_t bad[4] = {-1, 4, INT64_MAX, INT64_MIN};
    for (int64_t p = 0; p < 77; p++) ex[p] = p % 2 ? irand(4) : bad[irand(4)];
    LS_S(moe_case)("linear_moe (invalid experts)", 4, 77, 3, ex);
    /* 2500 pairs over 64 experts, half of them on expert 5: three grouping chunks */
    for (int64_t p = 0; p < NP; p++) ex[p] = irand(2) ? 5 : irand(64);
    ex[1234] = -7;
    LS_S(moe_case)("linear_moe (2500 pairs, E=64)", 64, NP, 2, ex);
    /* a single pair */
    ex[0] = 1;
    LS_S(moe_case)("linear_moe (1 pair)", 3, 1, 1, ex);

    /* no pairs: zero tiles, and the linear writes nothing; misuse is refused */
    int32_t *dgrp = dmalloc((size_t)ls_cuda_moe_group_len(0, 4) * 4), n_tiles = -1;
    int64_t *dex = dput(ex, 8);
    RUN(ls_cuda_moe_group(dex, 0, 4, dgrp, 0));
    dget(&n_tiles, dgrp, 4);
    CHECKF(n_tiles == 0, "moe_group: %d tiles for no pairs", n_tiles);
    LS_T *dy = LS_S(dalloc)(1);
    RUN(LS_S(ls_cuda_linear_moe)(dy, 1, 1, 0, 1, NULL, 4, dgrp, 1, dy, 1, LS_CUDA_PATH_AUTO, 0));
    CHECK(ls_cuda_moe_group(dex, 1, LS_CUDA_MOE_MAX_EXPERTS + 1, dgrp, 0) ==
          cudaErrorInvalidValue);
    CHECK(ls_cuda_moe_group(dex, 1, 0, dgrp, 0) == cudaErrorInvalidValue);
    CHECK(LS_S(ls_cuda_linear_moe)(dy, 1, 1, 1, 1, NULL, 0, dgrp, 1, dy, 1, LS_CUDA_PATH_AUTO, 0) ==
          cudaErrorInvalidValue);
    CHECK(LS_S(ls_cuda_linear_moe)(dy, 1, 1, 1, 1, NULL, 4, dgrp, 1, dy, 1, 3, 0) ==
          cudaErrorInvalidValue);
    free(ex);
    dfree_all();
}

/* The ragged batch used by conv and scan: 8 sequences, 37 rows. */
static const int64_t LS_S(rg_n)[8] = {5, 1, 0, 9, 1, 13, 3, 5};
static const int32_t LS_S(rg_init)[8] = {0, 1, 1, 0, 1, 1, 0, 1};

static void LS_S(test_conv1d)(int64_t K) {
    const int64_t S = 8, C = 70, ldu = 2 * C, ldo = C + 3, SW = C * (K - 1);
    const int64_t *n = LS_S(rg_n);
    int64_t R = 0, row0[8];
    for (int64_t s = 0; s < S; s++) row0[s] = R, R += n[s];
    LS_T *u = LS_S(hrand)(R * ldu, -2, 2), *w = LS_S(hrand)(C * K, -1, 1);
    LS_T *bias = LS_S(hrand)(C, -0.5, 0.5), *st0 = LS_S(hrand)(S * SW, -2, 2);
    ls_cuda_batch b = make_batch(S, n, NULL, LS_S(rg_init), NULL, 0, NULL);
    LS_T *du = LS_S(dputT)(u, R * ldu), *dw = LS_S(dputT)(w, C * K), *dbias = LS_S(dputT)(bias, C);
    LS_T *dst = LS_S(dputT)(st0, S * SW), *dout = LS_S(dalloc)(R * ldo);
    LS_T *ptr[8];
    for (int64_t s = 0; s < S; s++) ptr[s] = dst + s * SW;
    LS_T **dptr = dput(ptr, sizeof ptr);
    RUN(LS_S(ls_cuda_conv1d)(&b, (LS_T *const *)dptr, du, ldu, dw, dbias, C, K, dout, ldo, 0));
    LS_T *o = LS_S(dgetT)(dout, R * ldo), *got = LS_S(pack)(o, R, C, ldo);
    LS_T *gst = LS_S(dgetT)(dst, S * SW);
    /* CPU twin, sequence by sequence, token by token */
    LS_T *ref = hmalloc((size_t)(R * C) * sizeof(LS_T)), *rst = hmalloc((size_t)(S * SW) * sizeof(LS_T));
    memcpy(rst, st0, (size_t)(S * SW) * sizeof(LS_T));
    for (int64_t s = 0; s < S; s++) {
        if (!LS_S(rg_init)[s]) memset(rst + s * SW, 0, (size_t)SW * sizeof(LS_T));
        for (int64_t i = 0; i < n[s]; i++)
            LS_S(ls_conv1d_step)(rst + s * SW, u + (row0[s] + i) * ldu, w, bias, C, K,
                                 ref + (row0[s] + i) * C);
    }
    char name[40];
    snprintf(name, sizeof name, "conv1d out (K=%lld%s)", (long long)K, K <= 4 ? ", regs" : "");
    LS_S(cmp)(name, got, ref, R * C, 0, LS_TOL);
    snprintf(name, sizeof name, "conv1d state (K=%lld)", (long long)K);
    LS_S(cmp)(name, gst, rst, S * SW, 1, 0);

    /* sequence 5 (13 tokens) alone, and in two chunks of 6 + 7 with the state carried */
    const int64_t s5 = 5, n5 = n[s5];
    for (int mode = 0; mode < 2; mode++) {
        LS_T *dst1 = LS_S(dputT)(st0 + s5 * SW, SW), *dout1 = LS_S(dalloc)(n5 * C);
        LS_T **dp1 = dput(&dst1, sizeof dst1);
        if (mode == 0) {
            const int64_t n1[] = {n5};
            const int32_t i1[] = {1};
            ls_cuda_batch b1 = make_batch(1, n1, NULL, i1, NULL, 0, NULL);
            RUN(LS_S(ls_cuda_conv1d)(&b1, (LS_T *const *)dp1, du + row0[s5] * ldu, ldu, dw, dbias,
                                     C, K, dout1, C, 0));
        } else {
            const int64_t na[] = {6}, nb[] = {7};
            const int32_t i1[] = {1};
            ls_cuda_batch ba = make_batch(1, na, NULL, i1, NULL, 0, NULL);
            ls_cuda_batch bb = make_batch(1, nb, NULL, i1, NULL, 0, NULL);
            RUN(LS_S(ls_cuda_conv1d)(&ba, (LS_T *const *)dp1, du + row0[s5] * ldu, ldu, dw, dbias,
                                     C, K, dout1, C, 0));
            RUN(LS_S(ls_cuda_conv1d)(&bb, (LS_T *const *)dp1, du + (row0[s5] + 6) * ldu, ldu, dw,
                                     dbias, C, K, dout1 + 6 * C, C, 0));
        }
        LS_T *g1 = LS_S(dgetT)(dout1, n5 * C), *gs1 = LS_S(dgetT)(dst1, SW);
        LS_S(same_bits)(mode == 0 ? "conv1d sequence alone vs batch" : "conv1d chunked 6+7 vs batch",
                        g1, got + row0[s5] * C, n5 * C);
        LS_S(same_bits)("conv1d final state", gs1, gst + s5 * SW, SW);
        free(g1), free(gs1);
    }
    free(u), free(w), free(bias), free(st0), free(o), free(got), free(gst), free(ref), free(rst);
    dfree_all();
}

/* One scan over the batch from a fresh copy of the states st0 (device, shifted by `shift`
 * elements); dt read as given (dt_bias NULL, no softplus) or raw with its bias and softplus.
 * Returns the outputs and leaves the final states in *gst (host). */
static LS_T *LS_S(scan_once)(const ls_cuda_batch *b, const LS_T *st0, int64_t S, int64_t SW,
                             int64_t shift, const LS_T *dx, const LS_T *ddt, const LS_T *dbias,
                             const LS_T *dA, const LS_T *dssmp, int64_t Rk, int64_t P,
                             const LS_T *dD, const LS_T *dproj, int64_t C, int64_t N, int64_t R,
                             LS_T **gst) {
    LS_T *dst = LS_S(dalloc)(S * SW + shift) + shift, *dy = LS_S(dalloc)(R * C);
    CU(cudaMemcpy(dst, st0, (size_t)(S * SW) * sizeof(LS_T), cudaMemcpyHostToDevice));
    LS_T *ptr[8];
    for (int64_t s = 0; s < S; s++) ptr[s] = dst + s * SW;
    LS_T **dptr = dput(ptr, sizeof ptr);
    RUN(LS_S(ls_cuda_scan)(b, (LS_T *const *)dptr, dx, C, ddt, C, dbias, dbias != NULL, dA,
                           dssmp + Rk, P, dssmp + Rk + N, P, dD, dproj + C, 2 * C, C, N, dy, C,
                           0));
    *gst = LS_S(dgetT)(dst, S * SW);
    return LS_S(dgetT)(dy, R * C);
}

/* shift: the states start `shift` elements past an aligned address (the kernels' 16-byte
 * state moves at N = 16 need alignment; shift 1 takes the element-by-element fallback).
 * C: channels; a multiple of 128 at N = 16 takes the block kernel (a block's 128 channels in
 * one sequence, B and C through shared memory), 70 the one-thread kernel. */
static void LS_S(test_scan)(int64_t N, int64_t shift, int64_t C) {
    const int64_t S = 8, Rk = 5, P = Rk + 2 * N, SW = C * N;
    const int64_t *n = LS_S(rg_n);
    int64_t R = 0, row0[8];
    for (int64_t s = 0; s < S; s++) row0[s] = R, R += n[s];
    /* dt = softplus(raw + bias), formed on the host for the CPU twin and the plain scan */
    LS_T *x = LS_S(hrand)(R * C, -2, 2), *raw = LS_S(hrand)(R * C, -3, 1);
    LS_T *bias = LS_S(hrand)(C, -1, 1), *dtv = hmalloc((size_t)(R * C) * sizeof(LS_T));
    for (int64_t i = 0; i < R * C; i++) dtv[i] = raw[i] + bias[i % C];
    LS_T *A = LS_S(hrand)(C * N, -1, 1.5);
    for (int64_t i = 0; i < C * N; i++) A[i] = -(LS_T)exp((double)A[i]);
    LS_T *ssmp = LS_S(hrand)(R * P, -1.5, 1.5), *proj = LS_S(hrand)(R * 2 * C, -2, 2);
    LS_T *D = LS_S(hrand)(C, -1, 1), *st0 = LS_S(hrand)(S * SW, -1, 1);
    ls_cuda_batch b = make_batch(S, n, NULL, LS_S(rg_init), NULL, 0, NULL);
    LS_T *dx = LS_S(dputT)(x, R * C), *draw = LS_S(dputT)(raw, R * C), *dA = LS_S(dputT)(A, C * N);
    LS_T *dbias = LS_S(dputT)(bias, C), *ddt = LS_S(dputT)(dtv, R * C);
    RUN(LS_S(ls_cuda_softplus)(ddt, R * C, 0));   /* the device's softplus of raw + bias */
    LS_T *dssmp = LS_S(dputT)(ssmp, R * P), *dproj = LS_S(dputT)(proj, R * 2 * C);
    LS_T *dD = LS_S(dputT)(D, C);
    LS_T *gst, *got = LS_S(scan_once)(&b, st0, S, SW, shift, dx, ddt, NULL, dA, dssmp, Rk, P, dD,
                                      dproj, C, N, R, &gst);
    for (int64_t i = 0; i < R * C; i++) dtv[i] = LS_S(ls_softplus)(dtv[i]);
    LS_T *ref = hmalloc((size_t)(R * C) * sizeof(LS_T)), *rst = hmalloc((size_t)(S * SW) * sizeof(LS_T));
    memcpy(rst, st0, (size_t)(S * SW) * sizeof(LS_T));
    for (int64_t s = 0; s < S; s++) {
        if (!LS_S(rg_init)[s]) memset(rst + s * SW, 0, (size_t)SW * sizeof(LS_T));
        for (int64_t i = 0; i < n[s]; i++) {
            const int64_t r = row0[s] + i;
            LS_S(ls_scan_step)(rst + s * SW, x + r * C, dtv + r * C, A, ssmp + r * P + Rk,
                               ssmp + r * P + Rk + N, D, proj + r * 2 * C + C, C, N, ref + r * C);
        }
    }
    char name[64];
    snprintf(name, sizeof name, "scan out (N=%lld C=%lld%s%s)", (long long)N, (long long)C,
             N <= 16 ? ", regs" : "", shift ? ", unaligned" : "");
    LS_S(cmp)(name, got, ref, R * C, 0, LS_TOL);
    snprintf(name, sizeof name, "scan state (N=%lld C=%lld%s)", (long long)N, (long long)C,
             shift ? ", unaligned" : "");
    LS_S(cmp)(name, gst, rst, S * SW, 0, LS_TOL);

    /* the raw dt with its bias and softplus inside the scan: the same bits */
    LS_T *fst, *fused = LS_S(scan_once)(&b, st0, S, SW, shift, dx, draw, dbias, dA, dssmp, Rk, P,
                                        dD, dproj, C, N, R, &fst);
    LS_S(same_bits)("scan with dt's bias + softplus inside vs before", fused, got, R * C);
    LS_S(same_bits)("scan state, dt's bias + softplus inside vs before", fst, gst, S * SW);
    free(fused), free(fst);

    const int64_t s5 = 5, n5 = n[s5];
    for (int mode = 0; mode < 2; mode++) {
        LS_T *dst1 = LS_S(dputT)(st0 + s5 * SW, SW), *dy1 = LS_S(dalloc)(n5 * C);
        LS_T **dp1 = dput(&dst1, sizeof dst1);
        const int64_t r5 = row0[s5];
        const int64_t cuts[2][3] = {{0, 13, 13}, {0, 4, 13}};   /* whole, or 4 + 9 */
        for (int part = 0; part < 2; part++) {
            const int64_t a = cuts[mode][part], e = cuts[mode][part + 1];
            if (a == e) continue;
            const int64_t nn[] = {e - a};
            const int32_t i1[] = {1};
            ls_cuda_batch b1 = make_batch(1, nn, NULL, i1, NULL, 0, NULL);
            RUN(LS_S(ls_cuda_scan)(&b1, (LS_T *const *)dp1, dx + (r5 + a) * C, C,
                                   ddt + (r5 + a) * C, C, NULL, 0, dA, dssmp + (r5 + a) * P + Rk,
                                   P, dssmp + (r5 + a) * P + Rk + N, P, dD,
                                   dproj + (r5 + a) * 2 * C + C, 2 * C, C, N, dy1 + a * C, C, 0));
        }
        LS_T *g1 = LS_S(dgetT)(dy1, n5 * C), *gs1 = LS_S(dgetT)(dst1, SW);
        LS_S(same_bits)(mode == 0 ? "scan sequence alone vs batch" : "scan chunked 4+9 vs batch", g1,
                        got + r5 * C, n5 * C);
        LS_S(same_bits)("scan final state", gs1, gst + s5 * SW, SW);
        free(g1), free(gs1);
    }
    free(x), free(raw), free(bias), free(dtv), free(A), free(ssmp), free(proj), free(D), free(st0);
    free(got), free(gst), free(ref), free(rst);
    dfree_all();
}

/* head_dim hd; far: sequences 1, 2 and 6 start past 128 keys (the kernel's key chunks:
 * 308, 181 and 131..141 keys). hd above 128 takes two passes over d; above 256 the query
 * is read from global memory instead of shared. */
static void LS_S(test_attention)(int64_t hd, int far) {
    enum { S = 7 };
    const int64_t H = 4, KVH = 2, bs = 4, kvd = KVH * hd, qd = H * hd;
    const int64_t ldq = qd + 5, ldk = kvd + 3, ldo = qd + 1;
    const int64_t n[S] = {3, 1, 1, 20, 1, 0, 11};
    const int64_t start[S] = {0, far ? 307 : 7, far ? 180 : 30, 5, 0, 4, far ? 130 : 2};
    const int pad = 4;   /* sequence 4 is a padding row */
    int64_t R = 0, row0[S], nblk[S], total_blocks = 0;
    for (int s = 0; s < S; s++) {
        row0[s] = R, R += n[s];
        nblk[s] = (start[s] + n[s] + bs - 1) / bs;
        if (nblk[s] == 0) nblk[s] = 1;
        total_blocks += nblk[s];
    }
    const int64_t NB = total_blocks + 5;
    /* paged: a shuffled pool; contiguous: each sequence's blocks consecutive */
    int64_t *perm = hmalloc((size_t)NB * 8), *bt = hmalloc((size_t)total_blocks * 8);
    int64_t *btc = hmalloc((size_t)total_blocks * 8), off[S], offc[S];
    for (int64_t i = 0; i < NB; i++) perm[i] = i;
    for (int64_t i = NB - 1; i > 0; i--) {
        int64_t j = irand(i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int64_t at = 0;
    for (int s = 0; s < S; s++) {
        off[s] = offc[s] = s == pad ? -1 : at;
        for (int64_t j = 0; j < nblk[s]; j++) bt[at + j] = perm[at + j], btc[at + j] = at + j;
        at += nblk[s];
    }
    const int64_t crow = NB * bs;
    LS_T *kc = LS_S(hrand)(crow * kvd, -1, 1), *vc = LS_S(hrand)(crow * kvd, -1, 1);
    /* the contiguous cache holds the same rows at the remapped blocks */
    LS_T *kcc = LS_S(hrand)(crow * kvd, -1, 1), *vcc = LS_S(hrand)(crow * kvd, -1, 1);
    for (int64_t j = 0; j < total_blocks; j++) {
        memcpy(kcc + btc[j] * bs * kvd, kc + bt[j] * bs * kvd, (size_t)(bs * kvd) * sizeof(LS_T));
        memcpy(vcc + btc[j] * bs * kvd, vc + bt[j] * bs * kvd, (size_t)(bs * kvd) * sizeof(LS_T));
    }
    LS_T *q = LS_S(hrand)(R * ldq, -1.5, 1.5), *k = LS_S(hrand)(R * ldk, -1.5, 1.5);
    LS_T *v = LS_S(hrand)(R * ldk, -1, 1);
    ls_cuda_batch b = make_batch(S, n, start, NULL, bt, total_blocks, off);
    ls_cuda_batch bc = make_batch(S, n, start, NULL, btc, total_blocks, offc);
    LS_T *dq = LS_S(dputT)(q, R * ldq), *dk = LS_S(dputT)(k, R * ldk), *dv = LS_S(dputT)(v, R * ldk);
    LS_T *dkc = LS_S(dputT)(kc, crow * kvd), *dvc = LS_S(dputT)(vc, crow * kvd);
    LS_T *dkcc = LS_S(dputT)(kcc, crow * kvd), *dvcc = LS_S(dputT)(vcc, crow * kvd);
    LS_T *dscr = LS_S(dalloc)(R * H * b.max_keys), *dout = LS_S(dalloc)(R * ldo);
    LS_T *doutc = LS_S(dalloc)(R * ldo);
    RUN(LS_S(ls_cuda_kv_write)(&b, dk, ldk, dv, ldk, bs, kvd, dkc, dvc, 0));
    RUN(LS_S(ls_cuda_attention)(&b, dq, ldq, dkc, dvc, bs, H, KVH, hd, dscr, dout, ldo, 0));
    RUN(LS_S(ls_cuda_kv_write)(&bc, dk, ldk, dv, ldk, bs, kvd, dkcc, dvcc, 0));
    RUN(LS_S(ls_cuda_attention)(&bc, dq, ldq, dkcc, dvcc, bs, H, KVH, hd, dscr, doutc, ldo, 0));
    LS_T *o = LS_S(dgetT)(dout, R * ldo), *got = LS_S(pack)(o, R, qd, ldo);
    LS_T *oc = LS_S(dgetT)(doutc, R * ldo), *gotc = LS_S(pack)(oc, R, qd, ldo);
    LS_T *gk = LS_S(dgetT)(dkc, crow * kvd), *gv = LS_S(dgetT)(dvc, crow * kvd);
    /* CPU twin: KV writes in sequence order, then each row */
    LS_T *ref = hmalloc((size_t)(R * qd) * sizeof(LS_T));
    LS_T *scores = hmalloc((size_t)b.max_keys * sizeof(LS_T));
    for (int s = 0; s < S; s++) {
        if (s == pad) continue;
        for (int64_t i = 0; i < n[s]; i++) {
            const int64_t pos = start[s] + i, cr = bt[off[s] + pos / bs] * bs + pos % bs;
            memcpy(kc + cr * kvd, k + (row0[s] + i) * ldk, (size_t)kvd * sizeof(LS_T));
            memcpy(vc + cr * kvd, v + (row0[s] + i) * ldk, (size_t)kvd * sizeof(LS_T));
        }
    }
    for (int s = 0; s < S; s++)
        for (int64_t i = 0; i < n[s]; i++) {
            LS_T *rr = ref + (row0[s] + i) * qd;
            if (s == pad) {
                for (int64_t d = 0; d < qd; d++) rr[d] = 0;
                continue;
            }
            LS_S(ls_attention_row)(q + (row0[s] + i) * ldq, kc, vc, bt + off[s], bs,
                                   start[s] + i + 1, H, KVH, hd, scores, rr);
        }
    LS_S(cmp)("kv_write k cache", gk, kc, crow * kvd, 1, 0);
    LS_S(cmp)("kv_write v cache", gv, vc, crow * kvd, 1, 0);
    char what[64];
    snprintf(what, sizeof what, "attention (paged, GQA, head_dim %lld%s)", (long long)hd,
             far ? ", > 128 keys" : "");
    LS_S(cmp)(what, got, ref, R * qd, 0, LS_TOL);
    LS_S(same_bits)("attention paged vs contiguous blocks", got, gotc, R * qd);
    /* sequence 3 (20 rows, start 5) alone, reading the cache the batch wrote */
    {
        const int64_t n1[] = {n[3]}, st1[] = {start[3]}, of1[] = {0};
        ls_cuda_batch b1 = make_batch(1, n1, st1, NULL, bt + off[3], nblk[3], of1);
        LS_T *dout1 = LS_S(dalloc)(n[3] * qd);
        RUN(LS_S(ls_cuda_attention)(&b1, dq + row0[3] * ldq, ldq, dkc, dvc, bs, H, KVH, hd, dscr,
                                    dout1, qd, 0));
        LS_T *g1 = LS_S(dgetT)(dout1, n[3] * qd);
        LS_S(same_bits)("attention sequence alone vs batch", g1, got + row0[3] * qd, n[3] * qd);
        free(g1);
    }
    /* run to run */
    dpoison(dout, (size_t)(R * ldo) * sizeof(LS_T));
    RUN(LS_S(ls_cuda_attention)(&b, dq, ldq, dkc, dvc, bs, H, KVH, hd, dscr, dout, ldo, 0));
    LS_T *o2 = LS_S(dgetT)(dout, R * ldo), *got2 = LS_S(pack)(o2, R, qd, ldo);
    LS_S(same_bits)("attention run twice", got2, got, R * qd);
    free(perm), free(bt), free(btc), free(kc), free(vc), free(kcc), free(vcc), free(q), free(k);
    free(v), free(o), free(got), free(oc), free(gotc), free(gk), free(gv), free(ref), free(scores);
    free(o2), free(got2);
    dfree_all();
}

static void LS_S(test_moe)(int64_t E, int64_t k) {
    const int64_t R = 37, ld = E + 2, H = 50;
    LS_T *lg = LS_S(hrand)(R * ld, -3, 3);
    for (int64_t e = 0; e < E; e++) lg[0 * ld + e] = (LS_T)0.25;   /* row 0: all tied */
    lg[1 * ld + 3] = lg[1 * ld + 6] = (LS_T)5;                      /* row 1: tied top two */
    LS_T *dl = LS_S(dputT)(lg, R * ld), *dp = LS_S(dalloc)(R * E), *dw = LS_S(dalloc)(R * k);
    int64_t *di = dmalloc((size_t)(R * k) * 8);
    RUN(LS_S(ls_cuda_moe_route)(dl, ld, R, E, k, dp, di, dw, 0));
    LS_T *gp = LS_S(dgetT)(dp, R * E), *gw = LS_S(dgetT)(dw, R * k);
    int64_t *gi = hmalloc((size_t)(R * k) * 8), *ri = hmalloc((size_t)(R * k) * 8);
    dget(gi, di, (size_t)(R * k) * 8);
    LS_T *rp = hmalloc((size_t)(R * E) * sizeof(LS_T)), *rw = hmalloc((size_t)(R * k) * sizeof(LS_T));
    for (int64_t r = 0; r < R; r++)
        LS_S(ls_moe_route)(lg + r * ld, E, k, rp + r * E, ri + r * k, rw + r * k);
    CHECKF(memcmp(gi, ri, (size_t)(R * k) * 8) == 0, "moe_route: expert choice differs (%s)",
           LS_IS64 ? "f64" : "f32");
    int ties_ok = 1;
    for (int64_t t = 0; t < k; t++) ties_ok &= gi[t] == t;   /* row 0: the k lowest indices */
    int has3 = 0, has6 = 0;                                   /* row 1: 3 and 6 chosen */
    for (int64_t t = 0; t < k; t++) has3 |= gi[k + t] == 3, has6 |= gi[k + t] == 6;
    ties_ok &= has3 && has6;
    CHECKF(ties_ok, "moe_route: ties not broken toward the lower index");
    char name[40];
    snprintf(name, sizeof name, "moe_route probs (E=%lld)", (long long)E);
    LS_S(cmp)(name, gp, rp, R * E, 0, LS_TOL);
    snprintf(name, sizeof name, "moe_route weights (k=%lld)", (long long)k);
    LS_S(cmp)(name, gw, rw, R * k, 0, LS_TOL);
    /* combine with the GPU's weights: bitwise */
    LS_T *y = LS_S(hrand)(R * k * H, -2, 2), *ref = hmalloc((size_t)(R * H) * sizeof(LS_T));
    LS_T *dy = LS_S(dputT)(y, R * k * H), *dout = LS_S(dalloc)(R * H);
    RUN(LS_S(ls_cuda_moe_combine)(dy, dw, R, k, H, dout, 0));
    LS_T *got = LS_S(dgetT)(dout, R * H);
    for (int64_t r = 0; r < R; r++) {
        LS_T *o = ref + r * H;
        for (int64_t j = 0; j < H; j++) o[j] = 0;
        for (int64_t t = 0; t < k; t++)
            for (int64_t j = 0; j < H; j++) o[j] += y[(r * k + t) * H + j] * gw[r * k + t];
    }
    snprintf(name, sizeof name, "moe_combine (k=%lld)", (long long)k);
    LS_S(cmp)(name, got, ref, R * H, 1, 0);
    /* the dense layout: y [R][E][H] holds every expert's row; slot t reads expert gi[r*k + t]'s.
     * The same sums bit for bit (the grouped layout's rows copied into their experts' places);
     * row 3's first slot names expert E (invalid): a NaN row, as the grouped path gives. */
    LS_T *yd = LS_S(hrand)(R * E * H, -2, 2);
    for (int64_t r = 0; r < R; r++)
        for (int64_t t = 0; t < k; t++)
            memcpy(yd + (r * E + gi[r * k + t]) * H, y + (r * k + t) * H, (size_t)H * sizeof(LS_T));
    gi[3 * k] = E;
    for (int64_t j = 0; j < H; j++) ref[3 * H + j] = (LS_T)NAN;
    LS_T *dyd = LS_S(dputT)(yd, R * E * H);
    int64_t *dgi = dput(gi, (size_t)(R * k) * 8);
    RUN(LS_S(ls_cuda_moe_combine_dense)(dyd, dw, dgi, R, k, E, H, dout, 0));
    LS_T *gotd = LS_S(dgetT)(dout, R * H);
    snprintf(name, sizeof name, "moe_combine_dense (k=%lld)", (long long)k);
    LS_S(cmp)(name, gotd, ref, R * H, 1, 0);
    CHECK(LS_S(ls_cuda_moe_combine_dense)(dyd, dw, NULL, R, k, E, H, dout, 0) ==
          cudaErrorInvalidValue);
    free(yd), free(gotd);
    free(lg), free(gp), free(gw), free(gi), free(ri), free(rp), free(rw), free(y), free(ref);
    free(got);
    dfree_all();
}

/* n = 1000: the kernel's one-at-a-time loop only; 5003: its 8-ahead loads (2,048 elements
 * a round), then the rest one at a time */
static void LS_S(test_logsoftmax)(int64_t n) {
    const int64_t R = 37, ldx = n + 3, ldo = n + 1;
    LS_T *x = LS_S(hrand)(R * ldx, -8, 8);
    for (int64_t i = 0; i < n; i++) x[2 * ldx + i] = (LS_T)-INFINITY;   /* row 2: all -inf */
    x[2 * ldx + 500] = (LS_T)1;
    x[5 * ldx + n - 1] = (LS_T)40;   /* row 5: its largest element last */
    LS_T *dxx = LS_S(dputT)(x, R * ldx), *dout = LS_S(dalloc)(R * ldo);
    RUN(LS_S(ls_cuda_logsoftmax)(dxx, ldx, R, n, dout, ldo, 0));
    LS_T *o = LS_S(dgetT)(dout, R * ldo), *got = LS_S(pack)(o, R, n, ldo);
    LS_T *ref = hmalloc((size_t)(R * n) * sizeof(LS_T));
    for (int64_t r = 0; r < R; r++) LS_S(ls_logsoftmax)(x + r * ldx, n, ref + r * n);
    char name[64];
    snprintf(name, sizeof name, "logsoftmax (rows of %lld)", (long long)n);
    LS_S(cmp)(name, got, ref, R * n, 0, LS_TOL);
    LS_T *dout1 = LS_S(dalloc)(n);
    RUN(LS_S(ls_cuda_logsoftmax)(dxx + 30 * ldx, ldx, 1, n, dout1, n, 0));
    LS_T *g1 = LS_S(dgetT)(dout1, n);
    LS_S(same_bits)("logsoftmax row alone vs batch of 37", g1, got + 30 * n, n);
    /* gather each row's token, from the GPU's own output */
    int32_t tok[37];
    for (int64_t r = 0; r < R; r++) tok[r] = (int32_t)irand(n);
    tok[4] = (int32_t)n;   /* out of range: NaN */
    int32_t *dtok = dput(tok, sizeof tok);
    LS_T *dlp = LS_S(dalloc)(R);
    RUN(LS_S(ls_cuda_gather_logprob)(dout, ldo, R, n, dtok, dlp, 0));
    LS_T *glp = LS_S(dgetT)(dlp, R), rlp[37];
    for (int64_t r = 0; r < R; r++) rlp[r] = tok[r] < n ? got[r * n + tok[r]] : (LS_T)NAN;
    LS_S(cmp)("gather_logprob", glp, rlp, R, 1, 0);
    /* in place */
    RUN(LS_S(ls_cuda_logsoftmax)(dxx, ldx, R, n, dxx, ldx, 0));
    LS_T *xi = LS_S(dgetT)(dxx, R * ldx), *gi = LS_S(pack)(xi, R, n, ldx);
    LS_S(same_bits)("logsoftmax in place", gi, got, R * n);
    free(x), free(o), free(got), free(ref), free(g1), free(glp), free(xi), free(gi);
    dfree_all();
}

static void LS_S(test_elementwise)(void) {
    const int64_t n = 4099;
    LS_T *a = LS_S(hrand)(n, -30, 30), *g = LS_S(hrand)(n, -6, 6), *up = LS_S(hrand)(n, -2, 2);
    LS_T *ref = hmalloc((size_t)n * sizeof(LS_T));
    LS_T *da = LS_S(dputT)(a, n), *dg = LS_S(dputT)(g, n), *du = LS_S(dputT)(up, n);
    LS_T *dact = LS_S(dalloc)(n);
    RUN(LS_S(ls_cuda_softplus)(da, n, 0));
    LS_T *got = LS_S(dgetT)(da, n);
    for (int64_t i = 0; i < n; i++) ref[i] = LS_S(ls_softplus)(a[i]);
    LS_S(cmp)("softplus", got, ref, n, 0, LS_TOL);
    free(got);
    RUN(LS_S(ls_cuda_silu_mul)(dg, du, dact, n, 0));
    got = LS_S(dgetT)(dact, n);
    for (int64_t i = 0; i < n; i++) ref[i] = LS_S(ls_silu)(g[i]) * up[i];
    LS_S(cmp)("silu_mul", got, ref, n, 0, LS_TOL);
    /* over rows with strides: the same bits as the flat kernel on the same elements; the
     * second shape's widths and strides are multiples of 4 (the 16-byte kernel) */
    for (int v4 = 0; v4 < 2; v4++) {
        const int64_t rows = 3, w = v4 ? 1360 : (n - 20) / 3;
        const int64_t ldg = w + (v4 ? 4 : 5), ldu = w + (v4 ? 8 : 11), lda = w + (v4 ? 4 : 2);
        LS_T *da2 = LS_S(dalloc)(rows * lda);
        dpoison(da2, (size_t)(rows * lda) * sizeof(LS_T));
        RUN(LS_S(ls_cuda_silu_mul_rows)(dg, ldg, du, ldu, rows, w, da2, lda, 0));
        LS_T *rows_got = LS_S(dgetT)(da2, rows * lda), *a2 = LS_S(pack)(rows_got, rows, w, lda);
        LS_T *flat = hmalloc((size_t)(rows * w) * sizeof(LS_T));
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < w; c++)
                flat[r * w + c] = LS_S(ls_silu)(g[r * ldg + c]) * up[r * ldu + c];
        LS_S(cmp)(v4 ? "silu_mul_rows (16-byte)" : "silu_mul_rows", a2, flat, rows * w, 0, LS_TOL);
        /* row 0 reads the flat kernel's first w elements: its bits */
        LS_S(same_bits)("silu_mul_rows row 0 vs silu_mul", a2, got, w);
        /* the stride gap between rows is left as it was */
        for (int64_t r = 0; r + 1 < rows; r++) {
            const unsigned char *gap = (const unsigned char *)(rows_got + r * lda + w);
            for (size_t b = 0; b < (size_t)(lda - w) * sizeof(LS_T); b++) CHECK(gap[b] == 0xFF);
        }
        CHECK(LS_S(ls_cuda_silu_mul_rows)(dg, w - 1, du, ldu, rows, w, da2, lda, 0) ==
              cudaErrorInvalidValue);
        free(rows_got), free(a2), free(flat);
    }
    free(got);
    RUN(LS_S(ls_cuda_add)(dg, du, n, 0));
    got = LS_S(dgetT)(dg, n);
    for (int64_t i = 0; i < n; i++) ref[i] = g[i] + up[i];
    LS_S(cmp)("add", got, ref, n, 1, 0);
    free(got);
    RUN(LS_S(ls_cuda_fill)(dact, n, (LS_T)0.375, 0));
    got = LS_S(dgetT)(dact, n);
    for (int64_t i = 0; i < n; i++) ref[i] = (LS_T)0.375;
    LS_S(cmp)("fill", got, ref, n, 1, 0);
    free(got), free(a), free(g), free(up), free(ref);
    dfree_all();
}

/* Rough timings of the serial-order kernels at model sizes (information only). */
static void LS_S(bench_more)(void) {
    const char *P = LS_IS64 ? "f64" : "f32";
    double t0, dt;
    {   /* rmsnorm 64 x 4096, logsoftmax 64 x 65536 */
        const int64_t R = 64, H = 4096, V = 65536;
        LS_T *x = LS_S(dalloc)(R * V), *w = LS_S(dalloc)(V), *y = LS_S(dalloc)(R * V);
        RUN(LS_S(ls_cuda_fill)(x, R * V, (LS_T)0.5, 0));
        RUN(LS_S(ls_cuda_fill)(w, V, (LS_T)1.5, 0));
        RUN(LS_S(ls_cuda_rmsnorm)(x, H, R, H, w, 1e-6, y, H, 0));
        t0 = seconds();
        for (int it = 0; it < 5; it++) CU(LS_S(ls_cuda_rmsnorm)(x, H, R, H, w, 1e-6, y, H, 0));
        CU(cudaDeviceSynchronize());
        dt = (seconds() - t0) / 5;
        printf("timing: rmsnorm %s 64 x 4096: %.3f ms\n", P, dt * 1e3);
        RUN(LS_S(ls_cuda_logsoftmax)(x, V, R, V, y, V, 0));
        t0 = seconds();
        for (int it = 0; it < 5; it++) CU(LS_S(ls_cuda_logsoftmax)(x, V, R, V, y, V, 0));
        CU(cudaDeviceSynchronize());
        dt = (seconds() - t0) / 5;
        printf("timing: logsoftmax %s 64 x 65536: %.3f ms\n", P, dt * 1e3);
    }
    {   /* decode attention: 64 sequences x 1 row at position 2047, 32 heads / 8 kv, d 128 */
        enum { S = 64 };
        const int64_t H = 32, KVH = 8, hd = 128, bs = 16, L = 2048, nb = L / bs;
        int64_t n[S], st[S], off[S];
        int64_t *bt = hmalloc((size_t)(S * nb) * 8);
        for (int s = 0; s < S; s++) {
            n[s] = 1, st[s] = L - 1, off[s] = s * nb;
            for (int64_t j = 0; j < nb; j++) bt[s * nb + j] = s * nb + j;
        }
        ls_cuda_batch b = make_batch(S, n, st, NULL, bt, S * nb, off);
        const int64_t crow = S * L, kvd = KVH * hd;
        LS_T *kc = LS_S(dalloc)(crow * kvd), *vc = LS_S(dalloc)(crow * kvd);
        LS_T *q = LS_S(dalloc)(S * H * hd), *o = LS_S(dalloc)(S * H * hd);
        LS_T *scr = LS_S(dalloc)(S * H * L);
        RUN(LS_S(ls_cuda_fill)(kc, crow * kvd, (LS_T)0.01, 0));
        RUN(LS_S(ls_cuda_fill)(vc, crow * kvd, (LS_T)0.02, 0));
        RUN(LS_S(ls_cuda_fill)(q, S * H * hd, (LS_T)0.03, 0));
        RUN(LS_S(ls_cuda_attention)(&b, q, H * hd, kc, vc, bs, H, KVH, hd, scr, o, H * hd, 0));
        t0 = seconds();
        for (int it = 0; it < 5; it++)
            CU(LS_S(ls_cuda_attention)(&b, q, H * hd, kc, vc, bs, H, KVH, hd, scr, o, H * hd, 0));
        CU(cudaDeviceSynchronize());
        dt = (seconds() - t0) / 5;
        printf("timing: attention %s decode 64 seqs x 2048 keys, 32/8 heads x 128: %.3f ms\n", P,
               dt * 1e3);
        free(bt);
    }
    dfree_all();
}

static void LS_S(run_all)(void) {
    LS_S(test_embed)();
    LS_S(test_rmsnorm)();
    LS_S(test_linear)();
    LS_S(test_linear_moe)();
    LS_S(test_mlp_fast)();
    LS_S(test_conv1d)(4);
    LS_S(test_conv1d)(6);
    LS_S(test_scan)(16, 0, 70);    /* registers, 16-byte state loads */
    LS_S(test_scan)(16, 1, 70);    /* registers, element by element */
    LS_S(test_scan)(16, 0, 256);   /* block kernel: B and C through shared memory */
    LS_S(test_scan)(16, 1, 256);   /* block kernel, unaligned states: element by element */
    LS_S(test_scan)(8, 0, 128);    /* registers, N < 16 */
    LS_S(test_scan)(20, 0, 70);    /* the state in the slot */
    LS_S(test_attention)(40, 0);    /* key rows in 16-byte moves */
    LS_S(test_attention)(42, 1);    /* f32: rows of 168 bytes, element by element */
    LS_S(test_attention)(136, 1);
    LS_S(test_attention)(264, 1);
    LS_S(test_moe)(16, 2);
    LS_S(test_moe)(8, 4);
    LS_S(test_logsoftmax)(1000);
    LS_S(test_logsoftmax)(5003);
    LS_S(test_elementwise)();
    if (bench_on()) LS_S(bench_more)();
    fflush(stdout);
}

#endif
