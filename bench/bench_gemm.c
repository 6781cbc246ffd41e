/* Fast mode's linears, y = x W^T, on cuBLAS's algorithms: what cublasGemmEx picks (the
 * forward's ls_cuda_linear_fast) against each algorithm cublasLt's heuristic offers, for the
 * bench model's shapes at each batch. Prints a table (docs/gpu.md, "Linear algorithms").
 *
 *   build-gpu/bench/bench_gemm [--rows 1,16,64,256] [--tf32 0|1] [--shape in,out ...]
 *
 * GPU time only: each measurement is a CUDA graph of 24 calls (captured once, launched 5
 * times, the best launch), so cuBLAS's host work per call does not show; the calls cycle
 * over copies of W that together exceed the L2 cache, so W comes from HBM as in a decode
 * step. floor = W's bytes over the bandwidth of a 1 GiB device-to-device copy measured here. */
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

int main(int argc, char **argv) {
    int64_t rows_list[16] = {1, 16, 64, 256};
    int n_rows = 4, tf32 = 1, user_shapes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) {
            n_rows = parse_list(argv[++i], rows_list, 16);
        } else if (!strcmp(argv[i], "--tf32") && i + 1 < argc) {
            tf32 = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--shape") && i + 1 < argc && g_nshapes < 32) {
            int64_t v[2];
            if (parse_list(argv[++i], v, 2) != 2 || v[0] < 1 || v[1] < 1) {
                fprintf(stderr, "bench_gemm: --shape wants IN,OUT (got '%s')\n", argv[i]);
                return 2;
            }
            if (!user_shapes) g_nshapes = 0, user_shapes = 1;
            g_shapes[g_nshapes++] = (shape){v[0], v[1], "user"};
        } else {
            fprintf(stderr, "usage: %s [--rows 1,16,64,256] [--tf32 0|1] [--shape IN,OUT ...]\n",
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
           "| best / GemmEx | best's algo (id, tile, split-K, stages) | algos tried |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    gemm_ctx c = {0};
    CB(cublasCreate(&c.blas));
    CB(cublasLtCreate(&c.lt));
    c.ws_bytes = (size_t)64 << 20;
    CU(cudaMalloc(&c.ws, c.ws_bytes));
    cudaStream_t S;
    CU(cudaStreamCreate(&S));
    c.tf32 = tf32;
    for (int si = 0; si < g_nshapes; si++) {
        const shape *sh = &g_shapes[si];
        const size_t wbytes = (size_t)(sh->in * sh->out) * 4;
        c.ncopy = (int)((size_t)(3 * prop.l2CacheSize) / wbytes + 2);
        if (c.ncopy > CALLS) c.ncopy = CALLS;
        c.w = calloc((size_t)c.ncopy, sizeof *c.w);
        for (int k = 0; k < c.ncopy; k++) {
            CU(cudaMalloc((void **)&c.w[k], wbytes));
            CU(cudaMemset(c.w[k], 0, wbytes));
        }
        const int64_t maxr = 4096;
        CU(cudaMalloc((void **)&c.x, (size_t)(maxr * sh->in) * 4));
        CU(cudaMalloc((void **)&c.y, (size_t)(maxr * sh->out) * 4));
        CU(cudaMemset(c.x, 0, (size_t)(maxr * sh->in) * 4));
        for (int ri = 0; ri < n_rows; ri++) {
            c.rows = (int)rows_list[ri], c.in = (int)sh->in, c.out = (int)sh->out;
            if (c.rows < 1 || c.rows > maxr) continue;
            const double t_ex = bench_graph_us(call_gemmex, &c, CALLS, S);
            CB(cublasLtMatmulDescCreate(&c.op, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                    : CUBLAS_COMPUTE_32F_PEDANTIC,
                                        CUDA_R_32F));
            const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
            CB(cublasLtMatmulDescSetAttribute(c.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
            CB(cublasLtMatmulDescSetAttribute(c.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
            CB(cublasLtMatrixLayoutCreate(&c.ad, CUDA_R_32F, (uint64_t)c.in, (uint64_t)c.out, c.in));
            CB(cublasLtMatrixLayoutCreate(&c.bd, CUDA_R_32F, (uint64_t)c.in, (uint64_t)c.rows, c.in));
            CB(cublasLtMatrixLayoutCreate(&c.cd, CUDA_R_32F, (uint64_t)c.out, (uint64_t)c.rows, c.out));
            cublasLtMatmulPreference_t pref;
            CB(cublasLtMatmulPreferenceCreate(&pref));
            CB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &c.ws_bytes, sizeof c.ws_bytes));
            cublasLtMatmulHeuristicResult_t res[MAX_ALGOS];
            int n = 0;
            CB(cublasLtMatmulAlgoGetHeuristic(c.lt, c.op, c.ad, c.bd, c.cd, c.cd, pref, MAX_ALGOS,
                                              res, &n));
            double t0 = 0, tb_best = 1e30;
            int best = -1;
            for (int a = 0; a < n; a++) {
                if (res[a].state != CUBLAS_STATUS_SUCCESS) continue;
                c.algo = &res[a].algo;
                const double t = bench_graph_us(call_lt, &c, CALLS, S);
                if (a == 0) t0 = t;
                if (t < tb_best) tb_best = t, best = a;
            }
            char desc[96] = "-";
            if (best >= 0) {
                int id = 0, tile = 0, splitk = 0, stages = 0;
                size_t w;
                cublasLtMatmulAlgoConfigGetAttribute(&res[best].algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &w);
                cublasLtMatmulAlgoConfigGetAttribute(&res[best].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &w);
                cublasLtMatmulAlgoConfigGetAttribute(&res[best].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, &w);
                cublasLtMatmulAlgoConfigGetAttribute(&res[best].algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &w);
                snprintf(desc, sizeof desc, "#%d: %d, %d, %d, %d", best, id, tile, splitk, stages);
            }
            printf("| %d | %s | %lld -> %lld | %.1f | %.1f | %.1f | %.1f | %.2f | %s | %d |\n", c.rows,
                   sh->name, (long long)sh->in, (long long)sh->out, (double)wbytes / bw * 1e6, t_ex,
                   t0, tb_best, tb_best / t_ex, desc, n);
            fflush(stdout);
            cublasLtMatmulPreferenceDestroy(pref);
            cublasLtMatrixLayoutDestroy(c.ad), cublasLtMatrixLayoutDestroy(c.bd);
            cublasLtMatrixLayoutDestroy(c.cd), cublasLtMatmulDescDestroy(c.op);
        }
        for (int k = 0; k < c.ncopy; k++) cudaFree(c.w[k]);
        free(c.w);
        cudaFree(c.x), cudaFree(c.y);
    }
    cublasDestroy(c.blas);
    cublasLtDestroy(c.lt);
    cudaFree(c.ws);
    return 0;
}
