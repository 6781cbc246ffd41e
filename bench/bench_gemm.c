/* Fast mode's linears, y = x W^T, on cuBLAS's algorithms: what cublasGemmEx picks (the
 * forward's ls_cuda_linear_fast) against each algorithm cublasLt's heuristic offers, for the
 * bench model's shapes at each batch. Prints a table (docs/gpu.md, "Linear algorithms").
 *
 *   build-gpu/bench/bench_gemm [--rows 1,16,64,256] [--tf32 0|1] [--shape in,out ...] [--search]
 *
 * --search goes past the heuristic: every algorithm id cublasLt has for these types, each of
 * its tiles and stage counts (split-K off); then, on the 8 fastest of those and the
 * heuristic's, split-K (-1, the heuristic's Hopper setting, and 1..16) with each reduction
 * scheme, CTA swizzling and custom options, and every cluster shape. A configuration runs
 * once outside the graph first and is skipped when cublasLt refuses it. Its table follows
 * the first one.
 *
 * GPU time only: each measurement is a CUDA graph of 24 calls (captured once, launched 5
 * times, the best launch), so cuBLAS's host work per call does not show; the calls cycle
 * over copies of W that together exceed the L2 cache, so W comes from HBM as in a decode
 * step. floor = W's bytes over the bandwidth of a 1 GiB device-to-device copy measured here.
 * W and x hold a small non-zero constant: zeros let the GPU clock higher than real data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"   /* cublasLt.h's own declarations */
#include <cublasLt.h>
#pragma GCC diagnostic pop
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "bench/gpu_timing.h"

#define CALLS 24
#define MAX_ALGOS 24
#define CU(x) BENCH_CU(x)
#define CB(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) { fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cublasGetStatusString(s_)); exit(2); } } while (0)

typedef struct { int64_t in, out; const char *name; } shape;
/* tools/gpu/make_bench_model.py's Jamba: hidden 2048, d_inner 4096, dt_rank 128, d_state 16,
 * intermediate 1024, 8 experts, 16 / 8 heads of 128, vocab 32000 */
static shape g_shapes[32] = {
    {2048, 8192, "in_proj"},  {4096, 160, "x_proj"},     {128, 4096, "dt_proj"},
    {4096, 2048, "out_proj"}, {2048, 2048, "mlp gate+up"}, {1024, 2048, "mlp down"},
    {2048, 16384, "moe gate+up (8 experts)"}, {2048, 8, "router"}, {2048, 32000, "lm_head"},
};
static int g_nshapes = 9;

typedef struct {
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t ad, bd, cd;
    const cublasLtMatmulAlgo_t *algo;
    float **w;
    int ncopy;
    float *x, *y;
    void *ws;
    size_t ws_bytes;
    int rows, in, out, tf32;
} gemm_ctx;

static void call_gemmex(void *p, int i, cudaStream_t S) {
    gemm_ctx *c = p;
    const float one = 1, zero = 0;
    CB(cublasSetStream(c->blas, S));
    CB(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, c->out, c->rows, c->in, &one,
                    c->w[i % c->ncopy], CUDA_R_32F, c->in, c->x, CUDA_R_32F, c->in, &zero, c->y,
                    CUDA_R_32F, c->out,
                    c->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_PEDANTIC,
                    CUBLAS_GEMM_DEFAULT));
}
static void call_lt(void *p, int i, cudaStream_t S) {
    gemm_ctx *c = p;
    const float one = 1, zero = 0;
    CB(cublasLtMatmul(c->lt, c->op, &one, c->w[i % c->ncopy], c->ad, c->x, c->bd, &zero, c->y,
                      c->cd, c->y, c->cd, c->algo, c->ws, c->ws_bytes, S));
}

static int parse_list(const char *s, int64_t *v, int max) {
    int k = 0;
    while (*s && k < max) {
        char *end;
        v[k++] = strtoll(s, &end, 10);
        if (*end != ',') break;
        s = end + 1;
    }
    return k;
}

static cublasComputeType_t compute_type(const gemm_ctx *c) {
    return c->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_PEDANTIC;
}

/* y' (out x rows) = W'^T (W' in x out) x' (in x rows), column-major, as linear_fast.cu */
static void lt_layouts(gemm_ctx *c) {
    CB(cublasLtMatmulDescCreate(&c->op, compute_type(c), CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CB(cublasLtMatmulDescSetAttribute(c->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CB(cublasLtMatmulDescSetAttribute(c->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CB(cublasLtMatrixLayoutCreate(&c->ad, CUDA_R_32F, (uint64_t)c->in, (uint64_t)c->out, c->in));
    CB(cublasLtMatrixLayoutCreate(&c->bd, CUDA_R_32F, (uint64_t)c->in, (uint64_t)c->rows, c->in));
    CB(cublasLtMatrixLayoutCreate(&c->cd, CUDA_R_32F, (uint64_t)c->out, (uint64_t)c->rows, c->out));
}
static void lt_layouts_free(gemm_ctx *c) {
    cublasLtMatrixLayoutDestroy(c->ad), cublasLtMatrixLayoutDestroy(c->bd);
    cublasLtMatrixLayoutDestroy(c->cd), cublasLtMatmulDescDestroy(c->op);
}

/* an algo configuration attribute as an int: its size asked first, since cublasLt refuses a
 * buffer of the wrong size (the cluster shape is 16-bit, the split-K count signed 32-bit) */
static int cfg_get(const cublasLtMatmulAlgo_t *a, cublasLtMatmulAlgoConfigAttributes_t at) {
    size_t w = 0;
    cublasLtMatmulAlgoConfigGetAttribute(a, at, NULL, 0, &w);
    if (w == sizeof(uint16_t)) {
        uint16_t h = 0;
        cublasLtMatmulAlgoConfigGetAttribute(a, at, &h, sizeof h, &w);
        return (int)h;
    }
    int32_t v = 0;
    cublasLtMatmulAlgoConfigGetAttribute(a, at, &v, sizeof v, &w);
    return (int)v;
}
static void algo_desc(const cublasLtMatmulAlgo_t *a, char *buf, size_t n) {
    snprintf(buf, n, "id %d, tile %d, stages %d, split-K %d, reduction %d, swizzle %d, custom %d, cluster %d",
             cfg_get(a, CUBLASLT_ALGO_CONFIG_ID), cfg_get(a, CUBLASLT_ALGO_CONFIG_TILE_ID),
             cfg_get(a, CUBLASLT_ALGO_CONFIG_STAGES_ID), cfg_get(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
             cfg_get(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME),
             cfg_get(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING),
             cfg_get(a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION),
             cfg_get(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID));
}

/* us per call of one algo configuration, or -1 when cublasLt refuses it (checked, then run
 * once outside the graph so a refusal cannot abort the capture) */
static double time_algo(gemm_ctx *c, const cublasLtMatmulAlgo_t *a, cudaStream_t S) {
    cublasLtMatmulHeuristicResult_t r;
    if (cublasLtMatmulAlgoCheck(c->lt, c->op, c->ad, c->bd, c->cd, c->cd, a, &r) !=
            CUBLAS_STATUS_SUCCESS ||
        r.workspaceSize > c->ws_bytes)
        return -1;
    const float one = 1, zero = 0;
    if (cublasLtMatmul(c->lt, c->op, &one, c->w[0], c->ad, c->x, c->bd, &zero, c->y, c->cd, c->y,
                       c->cd, a, c->ws, c->ws_bytes, S) != CUBLAS_STATUS_SUCCESS ||
        cudaStreamSynchronize(S) != cudaSuccess || cudaGetLastError() != cudaSuccess)
        return -1;
    c->algo = a;
    return bench_graph_us(call_lt, c, CALLS, S);
}

/* the best of what cublasLt's heuristic offers; t0 = its first choice */
typedef struct { cublasLtMatmulAlgo_t algo; double us; } timed_algo;

static double heuristic_best(gemm_ctx *c, cudaStream_t S, double *t0, char *desc, size_t n,
                             int *tried, timed_algo *out) {
    cublasLtMatmulPreference_t pref;
    CB(cublasLtMatmulPreferenceCreate(&pref));
    CB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                            &c->ws_bytes, sizeof c->ws_bytes));
    cublasLtMatmulHeuristicResult_t res[MAX_ALGOS];
    int m = 0;
    CB(cublasLtMatmulAlgoGetHeuristic(c->lt, c->op, c->ad, c->bd, c->cd, c->cd, pref, MAX_ALGOS,
                                      res, &m));
    cublasLtMatmulPreferenceDestroy(pref);
    double best = 1e30;
    *t0 = 0, *tried = m;
    snprintf(desc, n, "-");
    for (int a = 0; a < m; a++) {
        out[a] = (timed_algo){res[a].algo, 1e30};
        if (res[a].state != CUBLAS_STATUS_SUCCESS) continue;
        c->algo = &res[a].algo;
        const double t = bench_graph_us(call_lt, c, CALLS, S);
        out[a] = (timed_algo){res[a].algo, t};
        if (a == 0) *t0 = t;
        if (t < best) best = t, algo_desc(&res[a].algo, desc, n);
    }
    return best;
}

/* a capability's list of 32-bit ids; {0} (undefined: cublasLt's choice) when it has none */
static int cap_ids(const cublasLtMatmulAlgo_t *a, cublasLtMatmulAlgoCapAttributes_t at,
                   uint32_t *ids, int max) {
    size_t w = 0;
    if (cublasLtMatmulAlgoCapGetAttribute(a, at, NULL, 0, &w) != CUBLAS_STATUS_SUCCESS ||
        w == 0) {
        ids[0] = 0;
        return 1;
    }
    size_t n = w / sizeof(uint32_t);
    if (n > (size_t)max) n = (size_t)max;
    cublasLtMatmulAlgoCapGetAttribute(a, at, ids, n * sizeof(uint32_t), &w);
    return (int)n;
}
static int cap_int(const cublasLtMatmulAlgo_t *a, cublasLtMatmulAlgoCapAttributes_t at) {
    int32_t v = 0;
    size_t w = 0;
    cublasLtMatmulAlgoCapGetAttribute(a, at, &v, sizeof v, &w);
    return (int)v;
}
#define CFG(a, at, v) cublasLtMatmulAlgoConfigSetAttribute(a, at, &(v), sizeof(v))

#define KEEP 8

/* keeps the KEEP fastest, sorted */
static void keep_best(timed_algo *top, int *n, const cublasLtMatmulAlgo_t *a, double us) {
    if (*n == KEEP && us >= top[KEEP - 1].us) return;
    int i = *n < KEEP ? (*n)++ : KEEP - 1;
    for (; i > 0 && top[i - 1].us > us; i--) top[i] = top[i - 1];
    top[i] = (timed_algo){*a, us};
}

/* times configuration a; one cublasLt takes is counted and kept if among the KEEP fastest */
static void try_config(gemm_ctx *c, cudaStream_t S, const cublasLtMatmulAlgo_t *a,
                       timed_algo *top, int *ntop, int *tried) {
    const double us = time_algo(c, a, S);
    if (us < 0) return;
    (*tried)++;
    keep_best(top, ntop, a, us);
}

/* the base's split-K (-1 is what the heuristic's Hopper kernels come with), reduction
 * schemes, CTA swizzling and custom options, its cluster shape kept */
static void sweep_split(gemm_ctx *c, cudaStream_t S, cublasLtMatmulAlgo_t a, timed_algo *top,
                        int *ntop, int *tried) {
    static const int32_t splits[] = {-1, 1, 2, 3, 4, 6, 8, 12, 16};
    const int sk_ok = cap_int(&a, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT);
    const int red_mask = cap_int(&a, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK);
    const int swz_max = cap_int(&a, CUBLASLT_ALGO_CAP_CTA_SWIZZLING_SUPPORT);
    int cust_max = cap_int(&a, CUBLASLT_ALGO_CAP_CUSTOM_OPTION_MAX);
    if (cust_max > 7) cust_max = 7;
    for (int k = 0; k < (sk_ok ? 9 : 2); k++)
        for (uint32_t red = 0; red <= 4; red = red ? red << 1 : 1) {
            if ((splits[k] == 1) != (red == 0) || (red && !(red_mask & (int)red))) continue;
            for (uint32_t swz = 0; swz <= (uint32_t)swz_max; swz++)
                for (uint32_t cust = 0; cust <= (uint32_t)cust_max; cust++) {
                    CFG(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, splits[k]);
                    CFG(&a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, red);
                    CFG(&a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, swz);
                    CFG(&a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, cust);
                    try_config(c, S, &a, top, ntop, tried);
                }
        }
}

/* the base with each thread-block cluster shape, everything else kept */
static void sweep_cluster(gemm_ctx *c, cudaStream_t S, cublasLtMatmulAlgo_t a, timed_algo *top,
                          int *ntop, int *tried) {
    for (uint16_t cl = 0; cl < CUBLASLT_CLUSTER_SHAPE_END; cl++) {
        if (cl == 1) continue;   /* not a shape: the enum starts its shapes at 2 */
        CFG(&a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, cl);
        try_config(c, S, &a, top, ntop, tried);
    }
}

/* every algorithm id, tile and stage count without split-K; then, from the KEEP fastest of
 * those and of the heuristic's (heur, nheur), split-K with its reduction schemes, swizzling
 * and custom options, and cluster shapes */
static double search_best(gemm_ctx *c, cudaStream_t S, const timed_algo *heur, int nheur,
                          char *desc, size_t n, int *tried) {
    const cudaDataType_t f = CUDA_R_32F;
    int ids[256], nid = 0;
    CB(cublasLtMatmulAlgoGetIds(c->lt, compute_type(c), f, f, f, f, f, 256, ids, &nid));
    timed_algo top[KEEP];
    int ntop = 0;
    *tried = 0;
    for (int i = 0; i < nid; i++) {
        cublasLtMatmulAlgo_t a;
        if (cublasLtMatmulAlgoInit(c->lt, compute_type(c), f, f, f, f, f, ids[i], &a) !=
            CUBLAS_STATUS_SUCCESS)
            continue;
        uint32_t tiles[128], stages[128];
        const int nt = cap_ids(&a, CUBLASLT_ALGO_CAP_TILE_IDS, tiles, 128);
        const int ns = cap_ids(&a, CUBLASLT_ALGO_CAP_STAGES_IDS, stages, 128);
        for (int t = 0; t < nt; t++)
            for (int s = 0; s < ns; s++) {
                CFG(&a, CUBLASLT_ALGO_CONFIG_TILE_ID, tiles[t]);
                CFG(&a, CUBLASLT_ALGO_CONFIG_STAGES_ID, stages[s]);
                try_config(c, S, &a, top, &ntop, tried);
            }
    }
    for (int h = 0; h < nheur; h++)
        if (heur[h].us < 1e29) keep_best(top, &ntop, &heur[h].algo, heur[h].us);
    timed_algo base[KEEP];
    const int nbase = ntop;
    memcpy(base, top, sizeof base);
    for (int b = 0; b < nbase; b++) {
        sweep_split(c, S, base[b].algo, top, &ntop, tried);
        sweep_cluster(c, S, base[b].algo, top, &ntop, tried);
    }
    if (ntop == 0) {
        snprintf(desc, n, "-");
        return 0;
    }
    algo_desc(&top[0].algo, desc, n);
    return top[0].us;
}

/* one row of --search's table */
typedef struct {
    int rows;
    const char *name;
    int64_t in, out;
    double floor, ex, heur, best;
    char desc[160];
    int tried;
} search_row;

int main(int argc, char **argv) {
    int64_t rows_list[16] = {1, 16, 64, 256};
    int n_rows = 4, tf32 = 1, user_shapes = 0, search = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) {
            n_rows = parse_list(argv[++i], rows_list, 16);
        } else if (!strcmp(argv[i], "--tf32") && i + 1 < argc) {
            tf32 = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--search")) {
            search = 1;
        } else if (!strcmp(argv[i], "--shape") && i + 1 < argc && g_nshapes < 32) {
            int64_t v[2];
            if (parse_list(argv[++i], v, 2) != 2 || v[0] < 1 || v[1] < 1) {
                fprintf(stderr, "bench_gemm: --shape wants IN,OUT (got '%s')\n", argv[i]);
                return 2;
            }
            if (!user_shapes) g_nshapes = 0, user_shapes = 1;
            g_shapes[g_nshapes++] = (shape){v[0], v[1], "user"};
        } else {
            fprintf(stderr,
                    "usage: %s [--rows 1,16,64,256] [--tf32 0|1] [--shape IN,OUT ...] [--search]\n",
                    argv[0]);
            return 2;
        }
    }
    struct cudaDeviceProp prop;
    CU(cudaGetDeviceProperties(&prop, 0));
    const double bw = bench_copy_bandwidth((size_t)1 << 30, 5);
    printf("device: %s, %d SMs, L2 %d MB; copy bandwidth %.0f GB/s; %s; us per call, GPU time "
           "(graphs of %d calls over W copies exceeding L2)\n\n",
           prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, bw / 1e9,
           tf32 ? "TF32" : "fp32 pedantic", CALLS);
    printf("| rows | linear | in -> out | floor (W bytes) | cublasGemmEx | cublasLt #0 | best cublasLt "
           "| best / GemmEx | best's algo | algos tried |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    gemm_ctx c = {0};
    CB(cublasCreate(&c.blas));
    CB(cublasLtCreate(&c.lt));
    c.ws_bytes = (size_t)64 << 20;
    CU(cudaMalloc(&c.ws, c.ws_bytes));
    cudaStream_t S;
    CU(cudaStreamCreate(&S));
    c.tf32 = tf32;
    search_row *found = calloc((size_t)(g_nshapes * n_rows), sizeof *found);
    int n_found = 0;
    for (int si = 0; si < g_nshapes; si++) {
        const shape *sh = &g_shapes[si];
        const size_t wbytes = (size_t)(sh->in * sh->out) * 4;
        c.ncopy = (int)((size_t)(3 * prop.l2CacheSize) / wbytes + 2);
        if (c.ncopy > CALLS) c.ncopy = CALLS;
        c.w = calloc((size_t)c.ncopy, sizeof *c.w);
        for (int k = 0; k < c.ncopy; k++) {
            CU(cudaMalloc((void **)&c.w[k], wbytes));
            CU(cudaMemset(c.w[k], 0x3c, wbytes));   /* 0x3c3c3c3c: 0.0115f */
        }
        const int64_t maxr = 4096;
        CU(cudaMalloc((void **)&c.x, (size_t)(maxr * sh->in) * 4));
        CU(cudaMalloc((void **)&c.y, (size_t)(maxr * sh->out) * 4));
        CU(cudaMemset(c.x, 0x3c, (size_t)(maxr * sh->in) * 4));
        for (int ri = 0; ri < n_rows; ri++) {
            c.rows = (int)rows_list[ri], c.in = (int)sh->in, c.out = (int)sh->out;
            if (c.rows < 1 || c.rows > maxr) continue;
            const double t_ex = bench_graph_us(call_gemmex, &c, CALLS, S);
            lt_layouts(&c);
            double t0;
            char desc[160];
            int tried;
            timed_algo heur[MAX_ALGOS];
            const double tb = heuristic_best(&c, S, &t0, desc, sizeof desc, &tried, heur);
            const double floor_us = (double)wbytes / bw * 1e6;
            printf("| %d | %s | %lld -> %lld | %.1f | %.1f | %.1f | %.1f | %.2f | %s | %d |\n",
                   c.rows, sh->name, (long long)sh->in, (long long)sh->out, floor_us, t_ex, t0, tb,
                   tb / t_ex, desc, tried);
            fflush(stdout);
            if (search) {
                search_row *r = &found[n_found++];
                *r = (search_row){c.rows, sh->name, sh->in, sh->out, floor_us, t_ex, tb, 0, "", 0};
                r->best = search_best(&c, S, heur, tried, r->desc, sizeof r->desc, &r->tried);
                fprintf(stderr, "bench_gemm: searched %s at %d rows: %d configurations\n",
                        sh->name, c.rows, r->tried);
            }
            lt_layouts_free(&c);
        }
        for (int k = 0; k < c.ncopy; k++) cudaFree(c.w[k]);
        free(c.w);
        cudaFree(c.x), cudaFree(c.y);
    }
    if (search) {
        printf("\n| rows | linear | in -> out | floor (W bytes) | cublasGemmEx | best of heuristic | "
               "best of search | search / GemmEx | search's best | configurations timed |\n");
        printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        for (int i = 0; i < n_found; i++) {
            const search_row *r = &found[i];
            printf("| %d | %s | %lld -> %lld | %.1f | %.1f | %.1f | %.1f | %.2f | %s | %d |\n",
                   r->rows, r->name, (long long)r->in, (long long)r->out, r->floor, r->ex, r->heur,
                   r->best, r->best / r->ex, r->desc, r->tried);
        }
    }
    free(found);
    cublasDestroy(c.blas);
    cublasLtDestroy(c.lt);
    cudaFree(c.ws);
    return 0;
}
