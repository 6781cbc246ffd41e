/* Engine decode throughput on the GPU against the HBM roofline and transformers (docs/gpu.md,
 * "Benchmark"). Run on the GPU machine through tools/gpu/bench.sh.
 *
 *   bench_gpu MODEL_DIR [--batches 1,16,64,256] [--modes invariant,fast,tf32] [--prompt 16]
 *             [--new 64] [--warm 8] [--hf FILE] [--no-profile] [--graphs 1|0] [--repeat 1]
 *
 * The model is loaded in fp32 (the engine converts the BF16 checkpoint at load: every weight,
 * state, KV row and activation it touches is 4 bytes). For each mode (invariant: our
 * fixed-order kernels; fast: cuBLAS fp32 pedantic; tf32: cuBLAS TF32 tensor cores) and batch
 * B, the workload is B prompts of PROMPT random tokens, one rollout each, all admitted at
 * once (max_num_seqs = B, the whole prefill in one step), decoded in steps of batch B.
 * Decode time = time(ls_engine_run with WARM + NEW new tokens) - time(the same with WARM new
 * tokens): the prefill, the cache allocation and the first WARM decode steps cancel, what is
 * left is NEW full decode steps of the real engine (scheduler, state copies, forward, sampling
 * on the device, token download). tokens/s = B * NEW / that time. --repeat R measures R
 * such pairs and takes the median time (same-machine comparisons: tools/gpu/ab.sh).
 *
 * Roofline per decode step = bytes / measured bandwidth, bytes = weights read once (all
 * non-expert matrices, B embedding rows, the expected number of distinct experts touched per
 * MoE layer under uniform routing, E (1 - (1 - k/E)^B)) + Mamba states read and written +
 * KV read at the mean decode length (+ the new KV rows written). Counted at 4 bytes (what
 * this engine moves) and at 2 bytes (a bf16 engine, for comparison).
 *
 * --hf FILE: lines "BATCH TOKENS_PER_S" from tools/gpu/bench_transformers.py.
 * The profile (unless --no-profile): the same step's pieces timed alone with CUDA events on
 * the real device weights: every linear (fast mode: cuBLAS for the dense ones), the MoE
 * expert linears (with their grouping by expert), the lm_head, the logsoftmax, the
 * device sampler (B draws from B rows), and conv + scan and KV write + attention over a decode
 * batch of B one-token sequences at position 56; in invariant mode also the invariant linear's
 * two kernels (tiled, few rows) on each of the model's linear shapes at each batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "engine/backend.h"
#include "engine/backend_cuda.h"
#include "engine/engine.h"
#include "kernels/cuda/kernels_cuda.h"
#include "tests/cuda/cu_check.h"
#include "bench/decode_workload.h"
#include "bench/gpu_timing.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define CU(call) LS_CU_OR_EXIT(call, 2)

/* Milliseconds from e0 (recorded earlier on S) to now on S. */
static double ms_since(cudaEvent_t e0, cudaEvent_t e1, cudaStream_t S) {
    float ms;
    CU(cudaEventRecord(e1, S));
    CU(cudaEventSynchronize(e1));
    CU(cudaEventElapsedTime(&ms, e0, e1));
    return (double)ms;
}

static int64_t lin_params(const ls_linear *L) { return L->out * L->in + (L->b ? L->out : 0); }

typedef struct bytes_t {
    double weights, states, kv;   /* elements, not bytes */
} bytes_t;

/* Elements moved by one decode step at batch B with mean KV length len. */
static bytes_t step_elems(const ls_model *m, int64_t B, double len) {
    const ls_model_config *c = &m->cfg;
    bytes_t r = {0, 0, 0};
    r.weights += (double)(B * c->hidden_size) + (double)c->hidden_size;   /* embed rows, final norm */
    r.weights += (double)lin_params(&m->lm_head);
    int64_t kv_dim = c->num_kv_heads * c->head_dim;
    for (int64_t l = 0; l < c->num_layers; l++) {
        const ls_layer_w *L = &m->layers[l];
        r.weights += 2.0 * (double)c->hidden_size;
        if (c->layer_kind[l] == LS_LAYER_MAMBA) {
            int64_t di = c->mamba_d_inner, N = c->mamba_d_state;
            r.weights += (double)(lin_params(&L->in_proj) + lin_params(&L->x_proj) +
                                  lin_params(&L->dt_proj) + lin_params(&L->out_proj));
            r.weights += (double)(di * c->mamba_d_conv + (L->conv_b ? di : 0) + di * N + di +
                                  c->mamba_dt_rank + 2 * N);
            r.states += 2.0 * (double)B * (double)(di * (c->mamba_d_conv - 1) + di * N);
        } else {
            r.weights += (double)(lin_params(&L->q) + lin_params(&L->k) + lin_params(&L->v) +
                                  lin_params(&L->o));
            r.kv += (double)B * (2.0 * len * (double)kv_dim + 2.0 * (double)kv_dim);
        }
        const ls_mlp_w *e = &L->experts[0];
        double per = (double)(lin_params(&e->gate) + lin_params(&e->up) + lin_params(&e->down));
        if (L->n_experts == 1) {
            r.weights += per;
        } else {
            double E = (double)L->n_experts, k = (double)c->num_experts_per_tok;
            double touched = E * (1.0 - pow(1.0 - k / E, (double)B));
            r.weights += (double)lin_params(&L->router) + touched * per;
        }
    }
    return r;
}

/* A timing wrapper around a backend: the engine runs on it, each op goes to the real backend
 * and its wall time is added up. A step's forward returns once issued and its sample call
 * ends synchronised with the tokens on the host, so forward + sample is the step's GPU time
 * plus launch gaps. Copies are queued by the backend and launched in batches by the next
 * other op: their time here is the host time to queue them; their GPU time lands in the
 * forward or the sample. */
static const ls_backend *g_real;
static double g_fwd_s, g_copy_s;
static int64_t g_fwd_calls, g_copy_calls;
static void *w_alloc(const ls_backend *b, int64_t n, ls_err *e) { (void)b; return g_real->ops->alloc(g_real, n, e); }
static void w_release(const ls_backend *b, void *p) { (void)b; g_real->ops->release(g_real, p); }
static int w_copy(const ls_backend *b, void *d, const void *s, int64_t n, ls_err *e) {
    (void)b;
    double t = now();
    int rc = g_real->ops->copy(g_real, d, s, n, e);
    g_copy_s += now() - t;
    g_copy_calls++;
    return rc;
}
static int w_zero(const ls_backend *b, void *p, int64_t n, ls_err *e) { (void)b; return g_real->ops->zero(g_real, p, n, e); }
static int w_poison(const ls_backend *b, void *p, int64_t eb, int64_t n, int64_t c, int64_t st, ls_err *e) {
    (void)b;
    return g_real->ops->poison(g_real, p, eb, n, c, st, e);
}
static int w_forward(const ls_backend *b, const ls_model *m, const ls_kv_cache *kv, const ls_seq_step *seqs,
                     int64_t n, const ls_forward_opts *o, ls_err *e) {
    (void)b;
    double t = now();
    int rc = g_real->ops->forward(g_real, m, kv, seqs, n, o, e);
    g_fwd_s += now() - t;
    g_fwd_calls++;
    return rc;
}
static double g_sample_s;
static int w_sample(const ls_backend *b, const ls_sample_draw *d, int64_t n, int32_t *tok,
                    double *lp, ls_err *e) {
    (void)b;
    double t = now();
    int rc = g_real->ops->sample(g_real, d, n, tok, lp, e);
    g_sample_s += now() - t;
    return rc;
}
static ls_backend_ops w_ops = {.alloc = w_alloc, .release = w_release, .copy = w_copy,
                               .zero = w_zero, .poison = w_poison, .forward = w_forward};

/* One engine run: B prompts of plen tokens, nnew new tokens each; returns seconds. */
static double engine_run(const ls_model *m, const ls_backend *be, int64_t B, int64_t plen,
                         int64_t nnew, uint64_t seed) {
    ls_workload wl;
    ls_engine_config c;
    decode_workload(m, B, plen, nnew, seed, &wl, &c);
    static ls_backend wrap;
    g_real = be;
    wrap = *be;
    w_ops.sample = be->ops->sample ? w_sample : NULL;   /* on the device when the backend can */
    wrap.ops = &w_ops;
    c.backend = &wrap;
    ls_err err = {{0}};
    ls_engine_result res;
    CU(cudaDeviceSynchronize());
    double t0 = now();
    if (ls_engine_config_resolve(&c, m, &err) || ls_engine_run(m, &c, &wl, &res, &err)) {
        fprintf(stderr, "engine (B %lld): %s\n", (long long)B, err.msg);
        exit(2);
    }
    CU(cudaDeviceSynchronize());
    double t = now() - t0;
    int64_t out = 0;
    for (int64_t s = 0; s < res.n_seqs; s++) out += res.seqs[s].len - res.seqs[s].prompt_len;
    if (out != B * nnew)
        fprintf(stderr, "warning: B %lld produced %lld tokens, expected %lld\n", (long long)B,
                (long long)out, (long long)(B * nnew));
    ls_engine_result_free(&res);
    ls_workload_free(&wl);
    return t;
}

/* ---- the profile: one decode step's pieces, timed alone ---------------------------------- */

typedef struct prof {
    double mamba_lin, attn_lin, dense_mlp, moe, lm_head, logsoftmax, sample;   /* ms */
    double sample_top_p;   /* ms: the same draws with top_p 0.95 (the sort, walks and race) */
    double conv_scan, attention;                                                /* ms */
} prof;

/* The mixers' non-linear parts of one decode step, timed alone like the linears: conv1d +
 * selective scan of every Mamba layer, KV write + attention of every attention layer, over a
 * decode batch of B sequences with one token each at position POS (the benchmark's mean
 * decode length), states and KV blocks in scratch, activations zero. Adds to q. */
static void profile_mixers(ls_cuda_ctx *x, int64_t B, prof *q) {
    const ls_model *dm = &x->dm;
    const ls_model_config *c = &dm->cfg;
    const cudaStream_t S = x->stream;
    const int64_t di = c->mamba_d_inner, ds = c->mamba_d_state, Kc = c->mamba_d_conv;
    const int64_t hd = c->head_dim, heads = c->num_heads, kvd = c->num_kv_heads * hd;
    const int64_t POS = 56, bs = 16, nblk = (POS + 1 + bs - 1) / bs;
    int64_t *h64 = malloc((size_t)(5 * B + B * nblk) * 8);
    int32_t *hinit = malloc((size_t)B * 4);
    float **hptr = malloc((size_t)(2 * B) * sizeof *hptr);
    if (!h64 || !hinit || !hptr) { fprintf(stderr, "bench_gpu: out of memory\n"); exit(2); }
    int64_t *row0 = h64, *n = h64 + B, *start = h64 + 2 * B, *bt_off = h64 + 3 * B;
    int64_t *bt = h64 + 5 * B;
    for (int64_t s = 0; s < B; s++) {
        row0[s] = s, n[s] = 1, start[s] = POS, bt_off[s] = s * nblk, hinit[s] = 1;
        for (int64_t i = 0; i < nblk; i++) bt[s * nblk + i] = s * nblk + i;
    }
    int64_t *d64;
    int32_t *dinit;
    float *conv, *ssm, *io, *kc, *vc, *scores, **dptr;
    const int64_t width = 2 * di > heads * hd ? 2 * di : heads * hd;
    CU(cudaMalloc((void **)&d64, (size_t)(5 * B + B * nblk) * 8));
    CU(cudaMemcpy(d64, h64, (size_t)(5 * B + B * nblk) * 8, cudaMemcpyHostToDevice));
    CU(cudaMalloc((void **)&dinit, (size_t)B * 4));
    CU(cudaMemcpy(dinit, hinit, (size_t)B * 4, cudaMemcpyHostToDevice));
    CU(cudaMalloc((void **)&conv, (size_t)(B * di * (Kc - 1 > 0 ? Kc - 1 : 1)) * 4));
    CU(cudaMalloc((void **)&ssm, (size_t)(B * di * ds) * 4));
    CU(cudaMalloc((void **)&io, (size_t)(2 * B * width) * 4));
    CU(cudaMalloc((void **)&kc, (size_t)(B * nblk * bs * kvd) * 4));
    CU(cudaMalloc((void **)&vc, (size_t)(B * nblk * bs * kvd) * 4));
    CU(cudaMalloc((void **)&scores, (size_t)(B * heads * (POS + 1)) * 4));
    CU(cudaMemset(conv, 0, (size_t)(B * di * (Kc - 1 > 0 ? Kc - 1 : 1)) * 4));
    CU(cudaMemset(ssm, 0, (size_t)(B * di * ds) * 4));
    CU(cudaMemset(io, 0, (size_t)(2 * B * width) * 4));
    CU(cudaMemset(kc, 0, (size_t)(B * nblk * bs * kvd) * 4));
    CU(cudaMemset(vc, 0, (size_t)(B * nblk * bs * kvd) * 4));
    for (int64_t s = 0; s < B; s++) {
        hptr[s] = conv + s * di * (Kc - 1);
        hptr[B + s] = ssm + s * di * ds;
    }
    CU(cudaMalloc((void **)&dptr, (size_t)(2 * B) * sizeof *dptr));
    CU(cudaMemcpy(dptr, hptr, (size_t)(2 * B) * sizeof *dptr, cudaMemcpyHostToDevice));
    const ls_cuda_batch b = {.n_seqs = B, .rows = B, .max_keys = POS + 1, .row0 = d64,
                             .n = d64 + B, .start_pos = d64 + 2 * B, .has_init = dinit,
                             .block_tables = d64 + 5 * B, .bt_off = d64 + 3 * B};
    float *in = io, *out = io + B * width;
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    for (int64_t l = 0; l < c->num_layers; l++) {
        const ls_layer_w *L = &dm->layers[l];
        CU(cudaEventRecord(e0, S));
        if (c->layer_kind[l] == LS_LAYER_MAMBA) {
            CU(ls_cuda_conv1d_f32(&b, dptr, in, 2 * di, (const float *)L->conv_w,
                                  (const float *)L->conv_b, di, Kc, out, di, S));
            CU(ls_cuda_scan_f32(&b, dptr + B, in, di, in, di, (const float *)L->dt_proj.b, 1,
                                (const float *)L->A, in, ds, in, ds, (const float *)L->D, in, di,
                                di, ds, out, di, S));
            q->conv_scan += ms_since(e0, e1, S);
        } else {
            CU(ls_cuda_kv_write_f32(&b, in, kvd, in, kvd, bs, kvd, kc, vc, S));
            CU(ls_cuda_attention_f32(&b, in, heads * hd, kc, vc, bs, heads, c->num_kv_heads, hd,
                                     scores, out, heads * hd, S));
            q->attention += ms_since(e0, e1, S);
        }
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(d64), cudaFree(dinit), cudaFree(conv), cudaFree(ssm), cudaFree(io), cudaFree(kc);
    cudaFree(vc), cudaFree(scores), cudaFree(dptr);
    free(h64), free(hinit), free(hptr);
}

/* A cuBLAS handle on `stream`: the invariant backend has none of its own. */
static cublasHandle_t new_cublas(cudaStream_t stream) {
    cublasHandle_t hb;
    if (cublasCreate(&hb) != CUBLAS_STATUS_SUCCESS ||
        cublasSetStream(hb, stream) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "bench_gpu: cublasCreate failed\n");
        exit(2);
    }
    return hb;
}

/* The invariant linear's two kernels on the model's distinct linear shapes, at batch B: the
 * data for ls_cuda_linear's automatic choice (kernels_cuda.h, LS_CUDA_PATH_*). */
#define N_SHAPES 12
typedef struct lin_shape {
    const char *name;
    const ls_linear *L;
} lin_shape;

static int model_shapes(const ls_model *dm, lin_shape *sh) {
    const ls_model_config *c = &dm->cfg;
    int n = 0, mamba = 0, attn = 0, dense = 0, moe = 0;
    for (int64_t l = 0; l < c->num_layers; l++) {
        const ls_layer_w *L = &dm->layers[l];
        if (c->layer_kind[l] == LS_LAYER_MAMBA && !mamba++) {
            sh[n++] = (lin_shape){"in_proj", &L->in_proj};
            sh[n++] = (lin_shape){"x_proj", &L->x_proj};
            sh[n++] = (lin_shape){"dt_proj", &L->dt_proj};
            sh[n++] = (lin_shape){"out_proj", &L->out_proj};
        }
        if (c->layer_kind[l] != LS_LAYER_MAMBA && !attn++) {
            sh[n++] = (lin_shape){"q / o", &L->q};
            sh[n++] = (lin_shape){"k / v", &L->k};
        }
        if (L->n_experts == 1 && !dense++) {
            sh[n++] = (lin_shape){"mlp gate / up", &L->experts[0].gate};
            sh[n++] = (lin_shape){"mlp down", &L->experts[0].down};
        }
        if (L->n_experts > 1 && !moe++) sh[n++] = (lin_shape){"router", &L->router};
    }
    sh[n++] = (lin_shape){"lm_head", &dm->lm_head};
    return n;
}

/* Columns of the per-shape table: the invariant linear's two kernels, then cuBLAS (the fast
 * modes' linear) in pedantic fp32 and TF32. */
enum { COL_TILED, COL_FEW, COL_CUBLAS_F32, COL_CUBLAS_TF32, N_PATH_COLS };

/* ms per call of one linear on column `col`, B rows of zeros: mean of 5 after one */
static double time_linear(ls_cuda_ctx *x, cublasHandle_t hb, const ls_linear *L, int64_t B,
                          int col, float *in, float *out, cudaEvent_t e0, cudaEvent_t e1) {
    for (int it = 0; it < 6; it++) {
        if (it == 1) CU(cudaEventRecord(e0, x->stream));
        const float *w = (const float *)L->w, *b = (const float *)L->b;
        if (col == COL_CUBLAS_F32 || col == COL_CUBLAS_TF32)
            CU(ls_cuda_linear_fast_f32(hb, in, L->in, B, L->in, w, b, L->out, out, L->out,
                                       col == COL_CUBLAS_TF32, x->stream));
        else
            CU(ls_cuda_linear_f32(in, L->in, B, L->in, w, b, L->out, out, L->out,
                                  col == COL_TILED ? LS_CUDA_PATH_TILED : LS_CUDA_PATH_FEW,
                                  x->stream));
    }
    return ms_since(e0, e1, x->stream) / 5.0;
}

/* ms[shape][col] for the shapes of model_shapes */
static void profile_paths(ls_cuda_ctx *x, int64_t B, double (*ms)[N_PATH_COLS]) {
    lin_shape sh[N_SHAPES];
    const int n = model_shapes(&x->dm, sh);
    int64_t w = 1;
    for (int i = 0; i < n; i++) {
        if (sh[i].L->in > w) w = sh[i].L->in;
        if (sh[i].L->out > w) w = sh[i].L->out;
    }
    float *in, *out;
    CU(cudaMalloc((void **)&in, (size_t)(B * w) * 4));
    CU(cudaMalloc((void **)&out, (size_t)(B * w) * 4));
    CU(cudaMemset(in, 0, (size_t)(B * w) * 4));
    cublasHandle_t hb = new_cublas(x->stream);
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    for (int i = 0; i < n; i++)
        for (int col = 0; col < N_PATH_COLS; col++)
            ms[i][col] = time_linear(x, hb, sh[i].L, B, col, in, out, e0, e1);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cublasDestroy(hb);
    cudaFree(in);
    cudaFree(out);
}

/* The profiles' expert indices, P = rows x k of them, to the device: a pseudo-random expert
 * per pair from a fixed LCG (the same in every call and profile), so the pairs spread
 * evenly over the E experts as a trained router's roughly do. */
static void upload_routing(int64_t *d_idx, int64_t P, int64_t E, int64_t k) {
    int64_t *h = malloc((size_t)(P > 0 ? P : 1) * 8);
    if (!h) {
        fprintf(stderr, "bench_gpu: out of memory\n");
        exit(2);
    }
    uint64_t s = 12345;
    for (int64_t i = 0; i < P; i++) {
        const int64_t base =
            (int64_t)((s = s * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % E;
        h[i] = (base + i % k) % E;
    }
    CU(cudaMemcpy(d_idx, h, (size_t)P * 8, cudaMemcpyHostToDevice));
    free(h);
}

/* The MoE expert linears of one layer at B rows on each path: [0] the invariant kernels
 * (AUTO) over B * k pairs, grouping included; then cuBLAS over grouped tiles of MOE_TILES[j]
 * pairs, fp32 [1 + j] and TF32 [1 + NT + j]; then every expert over every row
 * (ls_cuda_mlp_fast), fp32 [MOE_DENSE] and TF32 [MOE_DENSE + 1]. ms per layer, mean of 5
 * after one; the router, route and combine are the same on every path and not included. */
static const int64_t MOE_TILES[] = {32, 64, 128, 256};
#define N_MOE_TILES 4
#define MOE_DENSE (1 + 2 * N_MOE_TILES)
#define N_MOE_COLS (MOE_DENSE + 2)
static const int64_t MOE_ROWS[] = {1, 4, 16, 32, 64, 128, 256, 512, 1024};
#define N_MOE_ROWS 9
static void profile_moe(ls_cuda_ctx *x, int64_t B, double *ms) {
    const ls_model *dm = &x->dm;
    const ls_model_config *c = &dm->cfg;
    int64_t l = 0;
    while (l < c->num_layers && dm->layers[l].n_experts <= 1) l++;
    for (int j = 0; j < N_MOE_COLS; j++) ms[j] = NAN;
    if (l == c->num_layers) return;
    const ls_layer_w *L = &dm->layers[l];
    const ls_mlp_w *e = &L->experts[0];
    const int64_t E = L->n_experts, k = c->num_experts_per_tok, P = B * k;
    const int64_t H = c->hidden_size, I = c->intermediate_size, W = H > I ? H : I;
    const float *const *wl = (const float *const *)x->moe_w[l];
    float *in, *out, *gu, *act, *yd;
    int64_t *idx;
    int32_t *grp;
    void *ws;
    int64_t ws_bytes = 0;   /* the largest of the tiles' needs */
    for (int j = 0; j < N_MOE_TILES; j++) {
        const int64_t b = ls_cuda_linear_moe_fast_ws(P, E, MOE_TILES[j], H, I, 4);
        if (b > ws_bytes) ws_bytes = b;
    }
    CU(cudaMalloc((void **)&in, (size_t)(P * W) * 4));
    CU(cudaMalloc((void **)&out, (size_t)(P * W) * 4));
    CU(cudaMalloc((void **)&gu, (size_t)(B * 2 * E * I) * 4));
    CU(cudaMalloc((void **)&act, (size_t)(B * E * I) * 4));
    CU(cudaMalloc((void **)&yd, (size_t)(B * E * H) * 4));
    CU(cudaMemset(in, 0, (size_t)(P * W) * 4));
    CU(cudaMalloc((void **)&idx, (size_t)P * 8));
    CU(cudaMalloc((void **)&grp, (size_t)ls_cuda_moe_group_len_of(P, E, MOE_TILES[0]) * 4));
    CU(cudaMalloc(&ws, (size_t)ws_bytes));
    upload_routing(idx, P, E, k);
    cublasHandle_t hb = new_cublas(x->stream);
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    const ls_linear *lin[3] = {&e->gate, &e->up, &e->down};
    const int64_t xdiv[3] = {k, k, 1};
    for (int col = 0; col < N_MOE_COLS; col++) {
        if (col >= MOE_DENSE && !x->mlp_gu[l]) continue;
        const int fast = col > 0, tf32 = col >= MOE_DENSE ? col == MOE_DENSE + 1 : col > N_MOE_TILES;
        const int64_t tile = fast && col < MOE_DENSE ? MOE_TILES[(col - 1) % N_MOE_TILES]
                                                     : LS_CUDA_MOE_TILE;
        for (int it = 0; it < 6; it++) {
            if (it == 1) CU(cudaEventRecord(e0, x->stream));
            if (col >= MOE_DENSE) {
                CU(ls_cuda_mlp_fast_f32(hb, in, H, B, H, I, E, (const float *)x->mlp_gu[l],
                                        (const float *)x->mlp_down[l], gu, act, yd, tf32,
                                        x->stream));
                continue;
            }
            CU(ls_cuda_moe_group_tiles(idx, P, E, tile, grp, x->stream));
            for (int q = 0; q < 3; q++) {
                const ls_linear *Lq = lin[q];
                const float *const *wq = wl + q * E;
                if (fast)
                    CU(ls_cuda_linear_moe_fast_f32(hb, in, Lq->in, xdiv[q], P, Lq->in, wq, E,
                                                   grp, tile, Lq->out, out, Lq->out, ws, ws_bytes,
                                                   tf32, x->stream));
                else
                    CU(ls_cuda_linear_moe_f32(in, Lq->in, xdiv[q], P, Lq->in, wq, E, grp, Lq->out,
                                              out, Lq->out, LS_CUDA_PATH_AUTO, x->stream));
            }
        }
        ms[col] = ms_since(e0, e1, x->stream) / 5.0;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cublasDestroy(hb);
    cudaFree(in), cudaFree(out), cudaFree(idx), cudaFree(grp), cudaFree(ws);
    cudaFree(gu), cudaFree(act), cudaFree(yd);
}

static void profile_step(const ls_backend *be, int fast, int64_t B, prof *p) {
    ls_cuda_ctx *x = (ls_cuda_ctx *)be->impl;
    const ls_model *dm = &x->dm;
    const ls_model_config *c = &dm->cfg;
    cudaStream_t S = x->stream;
    int64_t k = c->num_experts_per_tok, V = c->vocab_size;
    int64_t maxw = 2 * c->mamba_d_inner;
    if (c->intermediate_size > maxw) maxw = c->intermediate_size;
    if (V > maxw) maxw = V;
    if (c->hidden_size > maxw) maxw = c->hidden_size;
    float *in, *out;
    int64_t *idx;
    size_t rows = (size_t)(B * (k > 1 ? k : 1));
    CU(cudaMalloc((void **)&in, rows * (size_t)maxw * 4));
    CU(cudaMalloc((void **)&out, rows * (size_t)maxw * 4));
    CU(cudaMemset(in, 0, rows * (size_t)maxw * 4));
    CU(cudaMalloc((void **)&idx, rows * 8));
    int32_t *grp;   /* the expert grouping of the pairs (ls_cuda_moe_group) */
    const int64_t n_exp = c->num_experts > 1 ? c->num_experts : 1;
    CU(cudaMalloc((void **)&grp, (size_t)ls_cuda_moe_group_len((int64_t)rows, n_exp) * 4));
    upload_routing(idx, (int64_t)rows, n_exp, k > 1 ? k : 1);
    /* B draws at temperature 1 from the B rows, as the engine's decode step makes them */
    ls_cuda_sample_job *hjobs = calloc((size_t)B, sizeof *hjobs), *jobs;
    for (int64_t j = 0; j < B; j++)
        hjobs[j] = (ls_cuda_sample_job){.row = j, .temperature = 1.0, .top_p = 1.0, .seed = 3,
                                        .request = (uint64_t)j, .position = 16};
    ls_cuda_sample_job *jobs_p;   /* the same draws with top_p: the rows sorted first */
    CU(cudaMalloc((void **)&jobs, (size_t)B * sizeof *jobs));
    CU(cudaMalloc((void **)&jobs_p, (size_t)B * sizeof *jobs_p));
    CU(cudaMemcpy(jobs, hjobs, (size_t)B * sizeof *jobs, cudaMemcpyHostToDevice));
    for (int64_t j = 0; j < B; j++) hjobs[j].top_p = 0.95;
    CU(cudaMemcpy(jobs_p, hjobs, (size_t)B * sizeof *jobs_p, cudaMemcpyHostToDevice));
    const int64_t work_bytes = ls_cuda_sample_workspace(B, V);
    void *work;
    int32_t *tok;
    double *tlp;
    CU(cudaMalloc(&work, (size_t)work_bytes));
    CU(cudaMalloc((void **)&tok, (size_t)B * 4));
    CU(cudaMalloc((void **)&tlp, (size_t)B * 8));
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
#define LIN(L)                                                                                \
    ((fast) ? ls_cuda_linear_fast_f32(x->cublas, in, (L)->in, B, (L)->in, (const float *)(L)->w, \
                                      (const float *)(L)->b, (L)->out, out, (L)->out, x->tf32, S) \
            : ls_cuda_linear_f32(in, (L)->in, B, (L)->in, (const float *)(L)->w,               \
                                 (const float *)(L)->b, (L)->out, out, (L)->out,               \
                                 LS_CUDA_PATH_AUTO, S))
    /* the MLPs as the forward runs them: in fast mode the dense MLP through ls_cuda_mlp_fast,
     * and the MoE expert linears every expert over every row where ls_cuda_moe_dense_fast
     * says so, else cuBLAS over the grouped tiles where ls_cuda_moe_fast_tile says so (fast
     * modes, enough pairs per expert), else the invariant kernels */
    const int64_t I = c->intermediate_size, H = c->hidden_size;
    const int dense = fast && n_exp > 1 && ls_cuda_moe_dense_fast(B, n_exp, k, x->tf32, 0);
    float *gu, *act, *yd;
    CU(cudaMalloc((void **)&gu, (size_t)(B * 2 * n_exp * I) * 4));
    CU(cudaMalloc((void **)&act, (size_t)(B * n_exp * I) * 4));
    CU(cudaMalloc((void **)&yd, (size_t)(B * n_exp * H) * 4));
#define MLP_FAST(l, E, y)                                                                      \
    ls_cuda_mlp_fast_f32(x->cublas, in, H, B, H, I, E, (const float *)x->mlp_gu[l],            \
                         (const float *)x->mlp_down[l], gu, act, y, x->tf32, S)
    const int64_t ftile = fast && !dense ? ls_cuda_moe_fast_tile((int64_t)rows, n_exp, x->tf32) : 0;
    const int64_t mws = ftile ? ls_cuda_linear_moe_fast_ws((int64_t)rows, n_exp, ftile,
                                                           c->hidden_size, c->intermediate_size, 4)
                              : 256;
    void *mw;
    CU(cudaMalloc(&mw, (size_t)mws));
#define MOE_FAST(E) (ftile > 0 && (E) == n_exp)
#define MOE(L, x_div, wl)                                                                      \
    (MOE_FAST(E) ? ls_cuda_linear_moe_fast_f32(x->cublas, in, (L)->in, x_div, B * k, (L)->in,  \
                                               wl, E, grp, ftile, (L)->out, out, (L)->out, mw, \
                                               mws, x->tf32, S)                                \
                 : ls_cuda_linear_moe_f32(in, (L)->in, x_div, B * k, (L)->in, wl, E, grp,      \
                                          (L)->out, out, (L)->out, LS_CUDA_PATH_AUTO, S))
    memset(p, 0, sizeof *p);
    for (int rep = 0; rep < 2; rep++) {   /* rep 0 warms up */
        prof q = {0};
        for (int64_t l = 0; l < c->num_layers; l++) {
            const ls_layer_w *L = &dm->layers[l];
            CU(cudaEventRecord(e0, S));
            if (c->layer_kind[l] == LS_LAYER_MAMBA) {
                CU(LIN(&L->in_proj));
                CU(LIN(&L->x_proj));
                CU(LIN(&L->dt_proj));
                CU(LIN(&L->out_proj));
            } else {
                CU(LIN(&L->q));
                CU(LIN(&L->k));
                CU(LIN(&L->v));
                CU(LIN(&L->o));
            }
            const double t_mix = ms_since(e0, e1, S);
            if (c->layer_kind[l] == LS_LAYER_MAMBA) q.mamba_lin += t_mix; else q.attn_lin += t_mix;
            CU(cudaEventRecord(e0, S));
            if (L->n_experts == 1 && fast && x->mlp_gu[l]) {
                CU(MLP_FAST(l, 1, out));
            } else if (L->n_experts == 1) {
                CU(LIN(&L->experts[0].gate));
                CU(LIN(&L->experts[0].up));
                CU(LIN(&L->experts[0].down));
            } else if (dense && x->mlp_gu[l]) {
                CU(LIN(&L->router));
                CU(MLP_FAST(l, L->n_experts, yd));
            } else {
                const ls_mlp_w *e = &L->experts[0];
                const float *const *wl = (const float *const *)x->moe_w[l];
                int64_t E = L->n_experts;
                CU(LIN(&L->router));
                CU(ls_cuda_moe_group_tiles(idx, B * k, E, MOE_FAST(E) ? ftile : LS_CUDA_MOE_TILE,
                                           grp, S));
                CU(MOE(&e->gate, k, wl));
                CU(MOE(&e->up, k, wl + E));
                CU(MOE(&e->down, 1, wl + 2 * E));
            }
            const double t_ff = ms_since(e0, e1, S);
            if (L->n_experts == 1) q.dense_mlp += t_ff; else q.moe += t_ff;
        }
        CU(cudaEventRecord(e0, S));
        CU(LIN(&dm->lm_head));
        q.lm_head = ms_since(e0, e1, S);
        CU(cudaEventRecord(e0, S));
        CU(ls_cuda_logsoftmax_f32(out, V, B, V, out, V, S));
        q.logsoftmax = ms_since(e0, e1, S);
        CU(cudaEventRecord(e0, S));
        CU(ls_cuda_sample_f32(out, B, V, jobs, B, 0, work, work_bytes, tok, tlp, S));
        q.sample = ms_since(e0, e1, S);
        CU(cudaEventRecord(e0, S));
        CU(ls_cuda_sample_f32(out, B, V, jobs_p, B, 1, work, work_bytes, tok, tlp, S));
        q.sample_top_p = ms_since(e0, e1, S);
        *p = q;
    }
#undef LIN
#undef MOE
#undef MOE_FAST
#undef MLP_FAST
    cudaFree(mw);
    cudaFree(gu), cudaFree(act), cudaFree(yd);
    prof warm = {0};
    profile_mixers(x, B, &warm);   /* a warm-up, then the measured pass */
    profile_mixers(x, B, p);
    cudaFree(in);
    cudaFree(out);
    cudaFree(idx);
    cudaFree(grp);
    cudaFree(jobs);
    cudaFree(jobs_p);
    cudaFree(work);
    cudaFree(tok);
    cudaFree(tlp);
    free(hjobs);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
}

/* ------------------------------------------------------------------------------------------ */

static int parse_list(const char *s, int64_t *v, int max) {
    int n = 0;
    while (*s && n < max) {
        v[n++] = strtoll(s, (char **)&s, 10);
        if (*s == ',') s++;
    }
    return n;
}

#define MAX_REPEAT 32
static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_gpu MODEL_DIR [--batches 1,16,64,256] [--modes invariant,fast,tf32]"
                        " [--prompt 16] [--new 64] [--warm 8] [--hf FILE] [--no-profile] [--graphs 1|0]"
                        " [--repeat 1]\n");
        return 2;
    }
    const char *dir = argv[1], *hf = NULL, *modes = "invariant,fast,tf32";
    int64_t batches[16] = {1, 16, 64, 256};
    int nb = 4, profile = 1, graphs = 1, repeat = 1;
    int64_t plen = 16, nnew = 64, warm = 8;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--batches") && i + 1 < argc) nb = parse_list(argv[++i], batches, 16);
        else if (!strcmp(argv[i], "--modes") && i + 1 < argc) modes = argv[++i];
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) plen = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--new") && i + 1 < argc) nnew = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--warm") && i + 1 < argc) warm = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--hf") && i + 1 < argc) hf = argv[++i];
        else if (!strcmp(argv[i], "--no-profile")) profile = 0;
        else if (!strcmp(argv[i], "--graphs") && i + 1 < argc) graphs = atoi(argv[++i]) != 0;
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else { fprintf(stderr, "bench_gpu: unknown argument %s\n", argv[i]); return 2; }
    }
    if (repeat < 1 || repeat > MAX_REPEAT) {
        fprintf(stderr, "bench_gpu: --repeat %d outside 1..%d\n", repeat, MAX_REPEAT);
        return 2;
    }
    if (!ls_backend_cuda_available()) { fprintf(stderr, "no CUDA device: skipped\n"); return 77; }
    double hf_tps[16];
    for (int i = 0; i < 16; i++) hf_tps[i] = NAN;
    if (hf) {
        FILE *f = fopen(hf, "r");
        long long b;
        double t;
        while (f && fscanf(f, "%lld %lf", &b, &t) == 2)
            for (int i = 0; i < nb; i++) if (batches[i] == b) hf_tps[i] = t;
        if (f) fclose(f);
    }
    struct cudaDeviceProp prop;
    CU(cudaGetDeviceProperties(&prop, 0));
    /* HBM bandwidth: a device-to-device copy of 2 GiB (2 GiB read + 2 GiB written), best of 10 */
    double bw = bench_copy_bandwidth((size_t)2 << 30, 10);
    printf("device: %s; measured HBM bandwidth (2 GiB device-to-device copy, read + written, best of 10): %.0f GB/s\n",
           prop.name, bw / 1e9);

    ls_model m;
    ls_err err = {{0}};
    double t0 = now();
    if (ls_model_load(dir, LS_F32, &m, &err)) { fprintf(stderr, "%s\n", err.msg); return 2; }
    const ls_model_config *c = &m.cfg;
    int64_t n_params = 0;
    {
        n_params = c->vocab_size * c->hidden_size + lin_params(&m.lm_head) * (m.cfg.tie_word_embeddings ? 0 : 1) + c->hidden_size;
        for (int64_t l = 0; l < c->num_layers; l++) {
            const ls_layer_w *L = &m.layers[l];
            n_params += 2 * c->hidden_size;
            if (c->layer_kind[l] == LS_LAYER_MAMBA) {
                int64_t di = c->mamba_d_inner, N = c->mamba_d_state;
                n_params += lin_params(&L->in_proj) + lin_params(&L->x_proj) + lin_params(&L->dt_proj) +
                            lin_params(&L->out_proj) + di * c->mamba_d_conv + (L->conv_b ? di : 0) +
                            di * N + di + c->mamba_dt_rank + 2 * N;
            } else {
                n_params += lin_params(&L->q) + lin_params(&L->k) + lin_params(&L->v) + lin_params(&L->o);
            }
            const ls_mlp_w *e = &L->experts[0];
            n_params += L->n_experts * (lin_params(&e->gate) + lin_params(&e->up) + lin_params(&e->down));
            if (L->n_experts > 1) n_params += lin_params(&L->router);
        }
    }
    printf("model: %s, %.3f B parameters, loaded as fp32 in %.1f s; hidden %lld, %lld layers (%lld attention), "
           "%lld experts top-%lld, intermediate %lld, vocab %lld\n",
           dir, (double)n_params / 1e9, now() - t0, (long long)c->hidden_size, (long long)c->num_layers,
           (long long)ls_cfg_count(c, LS_LAYER_ATTN), (long long)c->num_experts,
           (long long)c->num_experts_per_tok, (long long)c->intermediate_size, (long long)c->vocab_size);
    printf("workload: B prompts of %lld tokens, 1 rollout, %lld + %lld new tokens; decode time = "
           "run(%lld new) - run(%lld new), i.e. %lld full engine decode steps of batch B\n\n",
           (long long)plen, (long long)warm, (long long)nnew, (long long)(warm + nnew), (long long)warm,
           (long long)nnew);

    /* results */
    double tps[3][16], roof32[16], roof16[16], fwd_ms[3][16], copy_ms[3][16];
    prof pr[3][16];
    double path_ms[16][N_SHAPES][N_PATH_COLS], moe_ms[N_MOE_ROWS][N_MOE_COLS];
    const char *mode_names[3] = {"invariant", "fast", "tf32"};
    int mode_on[3] = {strstr(modes, "invariant") != NULL, strstr(modes, "fast") != NULL,
                      strstr(modes, "tf32") != NULL};
    int first_md = 0;
    while (first_md < 2 && !mode_on[first_md]) first_md++;
    double mean_len = (double)plen + (double)warm + (double)nnew / 2.0;
    for (int i = 0; i < nb; i++) {
        bytes_t b = step_elems(&m, batches[i], mean_len);
        double el = b.weights + b.states + b.kv;
        roof32[i] = (double)batches[i] / (4.0 * el / bw);
        roof16[i] = (double)batches[i] / (2.0 * el / bw);
        printf("B %4lld: per decode step %.3f G elements: weights %.3f G, Mamba states (r+w) %.4f G, KV %.4f G; "
               "%.2f GB at fp32 (%.3f ms), %.2f GB at bf16 (%.3f ms)\n",
               (long long)batches[i], el / 1e9, b.weights / 1e9, b.states / 1e9, b.kv / 1e9, 4 * el / 1e9,
               4e3 * el / bw, 2 * el / 1e9, 2e3 * el / bw);
    }
    fflush(stdout);
    for (int md = 0; md < 3; md++) {
        if (!mode_on[md]) continue;
        ls_backend *be = NULL;
        t0 = now();
        if (ls_backend_cuda_create(&m, md > 0, md == 2, &be, &err)) { fprintf(stderr, "%s\n", err.msg); return 2; }
        ls_backend_cuda_set_graphs(be, graphs);
        fprintf(stderr, "%s: backend up in %.1f s (decode steps as CUDA graphs: %s)\n", mode_names[md],
                now() - t0, graphs ? "on" : "off");
        for (int i = 0; i < nb; i++) {
            int64_t B = batches[i];
            engine_run(&m, be, B, plen, 2, 7);   /* warm-up: allocations, cuBLAS plans */
            /* --repeat R: R (short, long) pairs, the median decode time counts; the pieces
             * below come from the last pair */
            double ta = 0, tb = 0, fa = 0, ca = 0, qa = 0, dts[MAX_REPEAT];
            for (int rp = 0; rp < repeat; rp++) {
                g_fwd_s = g_copy_s = g_sample_s = 0;
                ta = engine_run(&m, be, B, plen, warm, 11 + (uint64_t)i);
                fa = g_fwd_s + g_sample_s, ca = g_copy_s, qa = g_fwd_s;
                g_fwd_s = g_copy_s = g_sample_s = 0;
                tb = engine_run(&m, be, B, plen, warm + nnew, 11 + (uint64_t)i);
                dts[rp] = tb - ta;
                if (repeat > 1)
                    fprintf(stderr, "%s B %lld: pair %d: %.3f ms/step\n", mode_names[md],
                            (long long)B, rp + 1, 1e3 * dts[rp] / (double)nnew);
            }
            qsort(dts, (size_t)repeat, sizeof *dts, cmp_double);
            const double dt_med = repeat % 2 ? dts[repeat / 2]
                                             : (dts[repeat / 2 - 1] + dts[repeat / 2]) / 2;
            fwd_ms[md][i] = 1e3 * (g_fwd_s + g_sample_s - fa) / (double)nnew;
            /* the forward call returns once its launches are queued: its host time against the
             * step says whether the host keeps ahead of the GPU (the rest of the step is the
             * sample call waiting for the GPU) */
            fprintf(stderr, "%s B %lld: forward calls (host, queueing the launches) %.3f ms/step\n",
                    mode_names[md], (long long)B, 1e3 * (g_fwd_s - qa) / (double)nnew);
            copy_ms[md][i] = 1e3 * (g_copy_s - ca) / (double)nnew;
            tps[md][i] = (double)(B * nnew) / dt_med;
            int64_t gcap, grep_;
            ls_backend_cuda_graph_stats(be, &gcap, &grep_);
            fprintf(stderr, "%s B %lld: run(%lld) %.3f s, run(%lld) %.3f s -> %.3f ms/step, %.0f tok/s "
                    "(graphs so far: %lld captured, %lld replays)\n",
                    mode_names[md], (long long)B, (long long)warm, ta, (long long)(warm + nnew), tb,
                    1e3 * dt_med / (double)nnew, tps[md][i], (long long)gcap, (long long)grep_);
            if (profile) profile_step(be, md > 0, B, &pr[md][i]);
            if (profile && md == 0) profile_paths((ls_cuda_ctx *)be->impl, B, path_ms[i]);
            if (profile && md == first_md && i == 0)   /* any mode's weights will do */
                for (int j = 0; j < N_MOE_ROWS; j++)
                    profile_moe((ls_cuda_ctx *)be->impl, MOE_ROWS[j], moe_ms[j]);
        }
        ls_backend_free(be);
    }
    printf("\n| mode | batch | decode tok/s | ms/step | roofline tok/s (fp32 bytes) | %% of roofline | "
           "bf16 roofline tok/s | %% of bf16 roofline | transformers tok/s | ratio to transformers |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int md = 0; md < 3; md++) {
        if (!mode_on[md]) continue;
        for (int i = 0; i < nb; i++) {
            printf("| %s | %lld | %.0f | %.2f | %.0f | %.1f | %.0f | %.1f | ", mode_names[md],
                   (long long)batches[i], tps[md][i], 1e3 * (double)batches[i] / tps[md][i], roof32[i],
                   100.0 * tps[md][i] / roof32[i], roof16[i], 100.0 * tps[md][i] / roof16[i]);
            if (isnan(hf_tps[i])) printf("- | - |\n");
            else printf("%.0f | %.2f |\n", hf_tps[i], tps[md][i] / hf_tps[i]);
        }
    }
    if (mode_on[0] && mode_on[1]) {
        printf("\ninvariant / fast time per step:");
        for (int i = 0; i < nb; i++) printf(" B %lld: %.2fx;", (long long)batches[i], tps[1][i] / tps[0][i]);
        printf("\n");
    }
    if (profile) {
        printf("\nWhere one decode step's time goes (each piece timed alone with CUDA events on the real "
               "device weights, ms; forward = the backend's forward calls "
               "and sample calls of the decode steps, wall time, which ends synchronised with the tokens on the host; "
               "state copies = queueing the engine's state copies (host time; the batched launches run inside the next op); host = step - both; "
               "sample = the step's draws (temperature 1, every token kept: the exponential race, no sort); "
               "sample top_p 0.95 = the same draws keeping top_p 0.95 (the rows sorted, top_p's in-order walks, "
               "then the race; not part of the step's sum); "
               "conv + scan and attention (KV write + attention) on a decode batch at position 56; "
               "rest of forward = forward - the pieces: norms, MoE route/combine, embedding, state copies, uploads, "
               "launch gaps):\n\n");
        printf("| mode | batch | step | forward + sample (synchronised) | state copies | host (scheduler) | "
               "Mamba linears | attn linears | dense MLP | MoE (router + experts) | lm_head | logsoftmax | "
               "sample | sample top_p 0.95 | conv + scan | attention | rest of forward |\n");
        printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
               "| --- |\n");
        for (int md = 0; md < 3; md++) {
            if (!mode_on[md]) continue;
            for (int i = 0; i < nb; i++) {
                prof *p = &pr[md][i];
                double step = 1e3 * (double)batches[i] / tps[md][i];
                double sum = p->mamba_lin + p->attn_lin + p->dense_mlp + p->moe + p->lm_head +
                             p->logsoftmax + p->sample + p->conv_scan + p->attention;
                printf("| %s | %lld | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
                       mode_names[md], (long long)batches[i], step, fwd_ms[md][i], copy_ms[md][i],
                       step - fwd_ms[md][i] - copy_ms[md][i], p->mamba_lin, p->attn_lin,
                       p->dense_mlp, p->moe, p->lm_head, p->logsoftmax, p->sample,
                       p->sample_top_p, p->conv_scan, p->attention, fwd_ms[md][i] - sum);
            }
        }
    }
    if (profile && mode_on[0]) {
        lin_shape sh[N_SHAPES];
        const int n = model_shapes(&m, sh);
        printf("\nEach linear shape of the model on the invariant linear's two kernels and on "
               "cuBLAS (B rows, mean of 5 calls after one, ms; shapes whose weights fit the 50 MB "
               "L2 look faster than in the step; the invariant kernels give the same bits either "
               "way; AUTO = what ls_cuda_linear runs: few rows up to %d rows, above that tiled "
               "once its grid has >= %d blocks; floor = the weights' fp32 bytes over the measured "
               "bandwidth, TF32 %% = floor / TF32 time):\n\n"
               "| batch | linear | in -> out | tiled (32 x 64 tiles) | few rows (8-row chunks) | "
               "tiled / few rows | AUTO | cuBLAS fp32 | cuBLAS TF32 | floor | TF32 %% of floor |\n"
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
               LS_CUDA_LINEAR_FEW_MAX_ROWS, LS_CUDA_LINEAR_TILED_MIN_BLOCKS);
        for (int i = 0; i < nb; i++)
            for (int j = 0; j < n; j++) {
                const double *t = path_ms[i][j];
                const double floor_ms =
                    4e3 * (double)(sh[j].L->in * sh[j].L->out) / bw;
                printf("| %lld | %s | %lld -> %lld | %.4f | %.4f | %.2f | %s | %.4f | %.4f | "
                       "%.4f | %.0f |\n",
                       (long long)batches[i], sh[j].name, (long long)sh[j].L->in,
                       (long long)sh[j].L->out, t[COL_TILED], t[COL_FEW],
                       t[COL_TILED] / t[COL_FEW],
                       ls_cuda_linear_auto_path(batches[i], sh[j].L->out) == LS_CUDA_PATH_TILED
                           ? "tiled"
                           : "few rows",
                       t[COL_CUBLAS_F32], t[COL_CUBLAS_TF32], floor_ms,
                       100.0 * floor_ms / t[COL_CUBLAS_TF32]);
            }
    }
    if (profile) {
        printf("\nOne MoE layer's expert linears at B rows (ms, mean of 5 after one) on each path: "
               "the invariant kernels (as AUTO picks) over the B x top-k pairs, cuBLAS batched over "
               "tiles of t pairs (fp32 pedantic, TF32), both with the grouping, and every expert "
               "over every row (ls_cuda_mlp_fast, fp32 / TF32). The forward's fast modes take the "
               "dense path up to %d (TF32) / %d (fp32) rows (ls_cuda_moe_dense_fast), "
               "else cuBLAS above a mean of %d (TF32) / %d (fp32) pairs per expert with the "
               "tiles of ls_cuda_moe_fast_tile:\n\n"
               "| rows | pairs | invariant |",
               LS_CUDA_MOE_DENSE_MAX_ROWS_TF32, LS_CUDA_MOE_DENSE_MAX_ROWS,
               LS_CUDA_MOE_FAST_MIN_PER_EXPERT_TF32, LS_CUDA_MOE_FAST_MIN_PER_EXPERT);
        for (int t = 0; t < 2 * N_MOE_TILES; t++)
            printf(" %s t=%lld |", t < N_MOE_TILES ? "fp32" : "tf32",
                   (long long)MOE_TILES[t % N_MOE_TILES]);
        printf(" dense fp32 | dense tf32 | forward: fp32 | forward: TF32 |\n| --- | --- | --- |");
        for (int t = 0; t < N_MOE_COLS + 1; t++) printf(" --- |");
        printf("\n");
        const int64_t E = m.cfg.num_experts, kk = m.cfg.num_experts_per_tok;
        for (int i = 0; i < N_MOE_ROWS; i++) {
            const int64_t P = MOE_ROWS[i] * kk;
            printf("| %lld | %lld |", (long long)MOE_ROWS[i], (long long)P);
            for (int t = 0; t < N_MOE_COLS; t++) printf(" %.3f |", moe_ms[i][t]);
            for (int tf = 0; tf < 2; tf++) {
                const int64_t ft = ls_cuda_moe_fast_tile(P, E, tf);
                if (ls_cuda_moe_dense_fast(MOE_ROWS[i], E, kk, tf, 0)) printf(" dense |");
                else if (ft) printf(" cuBLAS t=%lld |", (long long)ft);
                else printf(" invariant |");
            }
            printf("\n");
        }
    }
    ls_model_free(&m);
    return 0;
}
