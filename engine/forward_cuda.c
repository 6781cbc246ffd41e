/* The forward pass on the GPU: engine/forward.c step for step, each step a batched
 * kernels/cuda launch over the whole batch (docs/gpu.md maps one onto the other).
 *
 * Per call: one upload of the step's description (tokens, per-sequence row ranges and
 * positions, block tables, the device addresses of every sequence's conv and SSM state per
 * Mamba layer) from a pinned host buffer; the layers; then the final norm, lm_head and
 * log-softmax only for the rows that want log-probabilities, gathered into a contiguous
 * block and downloaded in one copy, or, with opts->keep_rows, left on the device for the
 * backend's sample op (which downloads a token and a log-probability per draw). Nothing
 * else crosses the bus (probes aside, which download what they report). A keep_rows forward
 * with the previous one's shape and buffers replays its launches as a CUDA graph (cu_graph_*
 * below).
 *
 * Invariant mode uses only the fixed-order kernels: every row's numbers are the same
 * sequence of operations whatever the batch, so the engine equals the GPU reference bit for
 * bit. Fast mode sends the dense linears through cuBLAS (ls_cuda_linear_fast; TF32 tensor
 * cores when the backend allows it) and, where bench_gpu measured it faster (enough pairs
 * per expert: ls_cuda_moe_fast_tile), the MoE expert products through one batched cuBLAS
 * GEMM over grouped tiles (ls_cuda_linear_moe_fast), or, where that measured faster still
 * (ls_cuda_moe_dense_fast), every expert over every row in two cuBLAS calls
 * (ls_cuda_mlp_fast, which also runs the dense MLP with its gate and up fused; the router and
 * its top-k then run on a second stream beside the experts' GEMMs, joined back before the
 * combine): not batch invariant, compared with tolerances.
 *
 * Index arithmetic is int64_t throughout; device offsets are base + 64-bit element counts. */
#ifndef LS_T
#include <stdlib.h>
#include <string.h>

#include "engine/backend_cuda.h"
#include "kernels/cuda/kernels_cuda.h"

#define CK(call)                                                               \
    do {                                                                       \
        cudaError_t e_ = (call);                                               \
        if (e_ != cudaSuccess) return ls_cuda_errf(err, e_, 1, #call);         \
    } while (0)
#define CR(call)                                                               \
    do {                                                                       \
        cudaError_t e_ = (call);                                               \
        if (e_ != cudaSuccess) return ls_cuda_errf(err, e_, 0, #call);         \
    } while (0)

static int64_t al8(int64_t bytes) { return (bytes + 7) / 8 * 8; }
static int64_t al256(int64_t bytes) { return (bytes + 255) / 256 * 256; }

/* Fast mode runs a MoE layer's experts densely (every expert over every row: ls_cuda_mlp_fast,
 * then ls_cuda_moe_combine_dense) where ls_cuda_moe_dense_fast measured it faster and the
 * layer's weights sit in blocks (x->mlp_gu). */
static int cu_moe_dense(const ls_cuda_ctx *x, int fast, int64_t l, int64_t rows, int64_t n_experts,
                        int64_t k, int64_t esz) {
    return fast && x->mlp_gu[l] && ls_cuda_moe_dense_fast(rows, n_experts, k, x->tf32, esz == 8);
}

/* The fast MoE's tile (0: the invariant kernels): in fast mode, the cuBLAS batched GEMM over
 * grouped tiles where ls_cuda_moe_fast_tile measured it faster (enough pairs per expert);
 * the invariant kernels otherwise (few pairs: the weights are read at bandwidth either way). */
static int64_t cu_moe_fast_tile(const ls_cuda_ctx *x, int fast, int64_t pairs, int64_t n_experts) {
    return fast ? ls_cuda_moe_fast_tile(pairs, n_experts, x->tf32) : 0;
}

/* The step as the kernels see it: device arrays inside the uploaded pack. */
typedef struct cu_step {
    int64_t rows, max_keys, n_lrows;
    ls_cuda_batch b;
    const int32_t *tokens_d;       /* [rows] */
    const int32_t *sel_d;          /* [n_lrows]: batch rows that get log-probabilities */
    void *const *conv_d;           /* [nm][n_seqs] device pointers */
    void *const *ssm_d;
    int32_t *has_init_h;           /* host view of the pack: effective has_init per sequence */
} cu_step;

/* Builds the pack on the host (pinned) and uploads it in one copy. scr_conv / scr_ssm are
 * per-sequence scratch states (device) for sequences without a state (conv == NULL). */
static int cu_prepare(ls_cuda_ctx *x, const ls_model *m, const ls_kv_cache *kv,
                      const ls_seq_step *seqs, int64_t n_seqs, char *scr_conv, char *scr_ssm,
                      cu_step *st, ls_err *err) {
    const ls_model_config *c = &m->cfg;
    const int64_t esz = ls_prec_size(m->prec);
    const int64_t nm = ls_cfg_count(c, LS_LAYER_MAMBA);
    const int64_t conv_sz = c->mamba_d_inner * (c->mamba_d_conv - 1);
    const int64_t ssm_sz = c->mamba_d_inner * c->mamba_d_state;
    const int64_t bs = kv->block_size > 0 ? kv->block_size : 1;
    int64_t n_bt = 0;
    for (int64_t s = 0; s < n_seqs; s++) {
        const int64_t end = seqs[s].start_pos + seqs[s].n;
        if (seqs[s].block_table && end > 0) n_bt += (end + bs - 1) / bs;
    }
    /* the block tables last: every other array's place depends only on the step's shape, so
     * a captured forward (cu_graph_*) finds them where it left them */
    const int64_t o_row0 = 0, o_n = o_row0 + 8 * n_seqs, o_start = o_n + 8 * n_seqs;
    const int64_t o_btoff = o_start + 8 * n_seqs, o_init = o_btoff + 8 * n_seqs;
    const int64_t o_tok = o_init + al8(4 * n_seqs);
    const int64_t o_sel = o_tok + al8(4 * st->rows), o_conv = o_sel + al8(4 * st->n_lrows);
    const int64_t o_ssm = o_conv + 8 * nm * n_seqs, o_bt = o_ssm + 8 * nm * n_seqs;
    const int64_t total = o_bt + 8 * n_bt + 8;
    if (x->pack_live) {   /* the last forward's upload from pack_h may still be pending */
        CR(cudaStreamSynchronize(x->stream));
        x->pack_live = 0;
    }
    if (ls_cuda_grow(&x->pack_h, &x->pack_h_bytes, total, 1, err) ||
        ls_cuda_grow(&x->pack_d, &x->pack_d_bytes, total, 0, err))
        return -1;
    char *h = x->pack_h;
    int64_t *row0 = (int64_t *)(h + o_row0), *n = (int64_t *)(h + o_n);
    int64_t *start = (int64_t *)(h + o_start), *btoff = (int64_t *)(h + o_btoff);
    int64_t *bt = (int64_t *)(h + o_bt);
    int32_t *init = (int32_t *)(h + o_init), *tok = (int32_t *)(h + o_tok);
    int32_t *sel = (int32_t *)(h + o_sel);
    void **convp = (void **)(h + o_conv), **ssmp = (void **)(h + o_ssm);
    int64_t r = 0, k = 0, ls = 0;
    for (int64_t s = 0; s < n_seqs; s++) {
        const ls_seq_step *q = &seqs[s];
        row0[s] = r;
        n[s] = q->n;
        start[s] = q->start_pos;
        init[s] = q->conv && q->has_initial_state ? 1 : 0;
        const int64_t end = q->start_pos + q->n;
        if (q->block_table) {
            btoff[s] = k;
            const int64_t nb = end > 0 ? (end + bs - 1) / bs : 0;
            for (int64_t i = 0; i < nb; i++) bt[k++] = q->block_table[i];
        } else {
            btoff[s] = -1;   /* padding row: no KV read or written */
        }
        for (int64_t i = 0; i < q->n; i++) tok[r + i] = q->tokens[i];
        if (q->logprobs)
            for (int64_t i = q->logits_from; i < q->n; i++) sel[ls++] = (int32_t)(r + i);
        for (int64_t mi = 0; mi < nm; mi++) {
            convp[mi * n_seqs + s] = q->conv ? q->conv[mi] : scr_conv + s * conv_sz * esz;
            ssmp[mi * n_seqs + s] = q->conv ? q->ssm[mi] : scr_ssm + s * ssm_sz * esz;
        }
        r += q->n;
    }
    char *d = x->pack_d;
    CR(cudaMemcpyAsync(d, h, (size_t)total, cudaMemcpyHostToDevice, x->stream));
    st->b = (ls_cuda_batch){.n_seqs = n_seqs, .rows = st->rows, .max_keys = st->max_keys,
                            .row0 = (const int64_t *)(d + o_row0), .n = (const int64_t *)(d + o_n),
                            .start_pos = (const int64_t *)(d + o_start),
                            .has_init = (const int32_t *)(d + o_init),
                            .block_tables = (const int64_t *)(d + o_bt),
                            .bt_off = (const int64_t *)(d + o_btoff)};
    st->tokens_d = (const int32_t *)(d + o_tok);
    st->sel_d = (const int32_t *)(d + o_sel);
    st->conv_d = (void *const *)(d + o_conv);
    st->ssm_d = (void *const *)(d + o_ssm);
    st->has_init_h = init;
    return 0;
}

/* Downloads `bytes` from the device (after everything issued) into the probe buffer. */
static const void *cu_fetch(ls_cuda_ctx *x, const void *dev, int64_t bytes, ls_err *err) {
    if (bytes > x->probe_bytes) {
        void *p = realloc(x->probe_h, (size_t)bytes);
        if (!p) { ls_errf(err, "out of memory"); return NULL; }
        x->probe_h = p;
        x->probe_bytes = bytes;
    }
    cudaError_t e = cudaMemcpyAsync(x->probe_h, dev, (size_t)bytes, cudaMemcpyDeviceToHost, x->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(x->stream);
    if (e != cudaSuccess) { ls_cuda_errf(err, e, 0, "probe download"); return NULL; }
    return x->probe_h;
}

/* Reports each sequence row's `width` values of a [rows][width] device array, as
 * forward.c's probe_rows. */
static int cu_probe_rows(ls_cuda_ctx *x, const ls_forward_opts *o, const ls_seq_step *seqs,
                         int64_t n_seqs, int64_t rows, int64_t layer, const char *comp,
                         const void *dev, int64_t width, int64_t esz, ls_err *err) {
    if (!o->probe) return 0;
    const char *h = cu_fetch(x, dev, rows * width * esz, err);
    if (!h) return -1;
    int64_t r0 = 0;
    for (int64_t s = 0; s < n_seqs; s++) {
        for (int64_t i = 0; i < seqs[s].n; i++)
            o->probe(o->probe_ctx, s, i, layer, comp, h + (r0 + i) * width * esz, width);
        r0 += seqs[s].n;
    }
    return 0;
}

/* The state each sequence's step starts from (zeros where it starts fresh), as forward.c
 * reports it: conv_state / ssm_state with row -1. */
static int cu_probe_states(ls_cuda_ctx *x, const ls_forward_opts *o, const ls_seq_step *seqs,
                           int64_t n_seqs, const cu_step *st, int64_t layer, int64_t mi,
                           const char *comp, int64_t n, int64_t esz, ls_err *err) {
    if (!o->probe) return 0;
    const int is_conv = comp[0] == 'c';
    for (int64_t s = 0; s < n_seqs; s++) {
        const void *h;
        if (st->has_init_h[s]) {
            h = cu_fetch(x, is_conv ? seqs[s].conv[mi] : seqs[s].ssm[mi], n * esz, err);
            if (!h) return -1;
        } else {
            if (n * esz > x->probe_bytes) {
                void *p = realloc(x->probe_h, (size_t)(n * esz));
                if (!p) return ls_errf(err, "out of memory");
                x->probe_h = p;
                x->probe_bytes = n * esz;
            }
            memset(x->probe_h, 0, (size_t)(n * esz));
            h = x->probe_h;
        }
        o->probe(o->probe_ctx, s, -1, layer, comp, h, n);
    }
    return 0;
}

/* ---- the decode step as a CUDA graph ------------------------------------------------------
 * A keep_rows forward (the engine's decode and prefill steps, sampled on the device) issues
 * ~250 launches whose arguments depend only on the step's shape and on where the buffers
 * are: the key below. When a forward's key equals the last one's, its launches are captured
 * into a graph (not run), instantiated, and launched; later forwards with the same key only
 * upload their pack and launch the graph. Replaying issues the same kernels with the same
 * arguments in the same order, so the same bits; what it saves is the host's work per launch
 * and the GPU's gaps between launches. */

enum { CU_GRAPH_NO = 0, CU_GRAPH_REPLAY = 1, CU_GRAPH_CAPTURE = 2 };

/* What this forward does with the graph. The key: the mode, the step's shape and every
 * device address its launches name (scratch, pack, KV caches; weights are the context's
 * own). x->gkey holds three keys of gkey_n entries: the graph's, the last forward's, this
 * forward's. */
static int cu_graph_plan(ls_cuda_ctx *x, int fast, int64_t esz, const cu_step *st,
                         int64_t n_seqs, const ls_kv_cache *kv, int64_t na, int *plan,
                         ls_err *err) {
    *plan = CU_GRAPH_NO;
    if (x->graphs_off) return 0;
    const int64_t n = 9 + 2 * na;
    if (x->gkey_n != n) {   /* first use (na is the model's, fixed for the context) */
        free(x->gkey);
        x->gkey = calloc((size_t)(3 * n), 8);
        if (!x->gkey) return ls_errf(err, "out of memory");
        x->gkey_n = n;
        if (x->graph) cudaGraphExecDestroy(x->graph);
        x->graph = NULL;
    }
    int64_t *g = x->gkey, *last = g + n, *cur = g + 2 * n;
    const int64_t head[9] = {1 + fast, esz, st->rows, n_seqs, st->n_lrows, st->max_keys,
                             kv->block_size, (int64_t)(intptr_t)x->scratch,
                             (int64_t)(intptr_t)x->pack_d};
    memcpy(cur, head, sizeof head);
    for (int64_t i = 0; i < na; i++) {
        cur[9 + 2 * i] = (int64_t)(intptr_t)kv->k[i];
        cur[10 + 2 * i] = (int64_t)(intptr_t)kv->v[i];
    }
    const size_t bytes = (size_t)n * 8;
    if (x->graph && !memcmp(cur, g, bytes)) *plan = CU_GRAPH_REPLAY;
    else if (!memcmp(cur, last, bytes)) *plan = CU_GRAPH_CAPTURE;   /* the same shape twice */
    memcpy(last, cur, bytes);
    return 0;
}

/* Ends a capture begun by cu_forward: instantiates it as x->graph (key: this forward's) and
 * launches it. */
static int cu_graph_finish(ls_cuda_ctx *x, ls_err *err) {
    cudaGraph_t g = NULL;
    CR(cudaStreamEndCapture(x->stream, &g));
    cudaError_t e = cudaGraphInstantiate(&x->graph, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        x->graph = NULL;
        return ls_cuda_errf(err, e, 0, "cudaGraphInstantiate (the forward's launches)");
    }
    memcpy(x->gkey, x->gkey + 2 * x->gkey_n, (size_t)x->gkey_n * 8);
    x->graph_captures++;
    CR(cudaGraphLaunch(x->graph, x->stream));
    return 0;
}

/* After a failed forward: a capture in progress is abandoned, the graph dropped. */
static void cu_graph_abandon(ls_cuda_ctx *x) {
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(x->stream, &cs) == cudaSuccess && cs != cudaStreamCaptureStatusNone) {
        cudaGraph_t g = NULL;
        (void)cudaStreamEndCapture(x->stream, &g);
        if (g) cudaGraphDestroy(g);
    }
    if (x->graph) cudaGraphExecDestroy(x->graph);
    x->graph = NULL;
    if (x->gkey) memset(x->gkey, 0, (size_t)(3 * x->gkey_n) * 8);
}

#define LS_T float
#define LS_S(n) n##_f32
#define LS_K(n) ls_cuda_##n##_f32
#include "engine/forward_cuda.c"
#undef LS_T
#undef LS_S
#undef LS_K
#define LS_T double
#define LS_S(n) n##_f64
#define LS_K(n) ls_cuda_##n##_f64
#include "engine/forward_cuda.c"
#undef LS_T
#undef LS_S
#undef LS_K

int ls_cuda_forward(ls_cuda_ctx *x, int fast, const ls_model *m, const ls_kv_cache *kv,
                    const ls_seq_step *seqs, int64_t n_seqs, const ls_forward_opts *opts,
                    ls_err *err) {
    static const ls_forward_opts none = {0};
    if (ls_cuda_flush(x, err)) return -1;   /* the queued state copies, first */
    if (!opts) opts = &none;
    if (m != x->m)
        return ls_errf(err, "backend cuda: forward called with a model other than the one it uploaded");
    for (int64_t s = 0; s < n_seqs; s++) {
        if (seqs[s].n < 0 || seqs[s].start_pos < 0 || seqs[s].logits_from < 0 ||
            seqs[s].logits_from > seqs[s].n)
            return ls_errf(err, "forward: sequence %lld has an invalid step", (long long)s);
        for (int64_t i = 0; i < seqs[s].n; i++)
            if (seqs[s].tokens[i] < 0 || seqs[s].tokens[i] >= m->cfg.vocab_size)
                return ls_errf(err, "forward: token %d out of vocabulary [0, %lld)",
                               seqs[s].tokens[i], (long long)m->cfg.vocab_size);
    }
    x->kept = NULL;
    x->kept_rows = 0;
    int rc = m->prec == LS_F64 ? cu_forward_f64(x, fast, m, kv, seqs, n_seqs, opts, err)
                               : cu_forward_f32(x, fast, m, kv, seqs, n_seqs, opts, err);
    if (rc) {
        /* leave the stream usable for the caller's clean-up; the message is already set */
        cu_graph_abandon(x);
        (void)cudaStreamSynchronize(x->stream);
        (void)cudaGetLastError();
    }
    return rc;
}

#else /* body, compiled once per precision */

static cudaError_t LS_S(cu_lin)(ls_cuda_ctx *x, int fast, const LS_T *in, int64_t ldx,
                                int64_t rows, const ls_linear *L, LS_T *y, int64_t ldy) {
    if (fast)
        return LS_K(linear_fast)(x->cublas, in, ldx, rows, L->in, (const LS_T *)L->w,
                                 (const LS_T *)L->b, L->out, y, ldy, x->tf32, x->stream);
    return LS_K(linear)(in, ldx, rows, L->in, (const LS_T *)L->w, (const LS_T *)L->b, L->out, y,
                        ldy, LS_CUDA_PATH_AUTO, x->stream);
}

/* One MoE expert linear over the grouped pairs, on the path cu_moe_fast_tile chose. */
static cudaError_t LS_S(cu_lin_moe)(ls_cuda_ctx *x, int64_t ftile, const LS_T *in, int64_t ldx,
                                    int64_t x_div, int64_t pairs, int64_t n_in,
                                    const LS_T *const *wl, int64_t En, const int32_t *grp,
                                    int64_t out, LS_T *y, int64_t ldy, void *ws,
                                    int64_t ws_bytes) {
    if (ftile)
        return LS_K(linear_moe_fast)(x->cublas, in, ldx, x_div, pairs, n_in, wl, En, grp, ftile,
                                     out, y, ldy, ws, ws_bytes, x->tf32, x->stream);
    return LS_K(linear_moe)(in, ldx, x_div, pairs, n_in, wl, En, grp, out, y, ldy,
                            LS_CUDA_PATH_AUTO, x->stream);
}

static int LS_S(cu_forward)(ls_cuda_ctx *x, int fast, const ls_model *m, const ls_kv_cache *kv,
                            const ls_seq_step *seqs, int64_t n_seqs, const ls_forward_opts *o,
                            ls_err *err) {
    const ls_model_config *c = &m->cfg;
    const ls_model *dm = &x->dm;
    const cudaStream_t S = x->stream;
    const int64_t H = c->hidden_size, di = c->mamba_d_inner, ds = c->mamba_d_state;
    const int64_t Kc = c->mamba_d_conv, R = c->mamba_dt_rank, P = R + 2 * ds;
    const int64_t I = c->intermediate_size, V = c->vocab_size, E = c->num_experts;
    const int64_t hd = c->head_dim, heads = c->num_heads, kvh = c->num_kv_heads;
    const int64_t qd = heads * hd, kvd = kvh * hd;
    const int64_t nm = ls_cfg_count(c, LS_LAYER_MAMBA), na = ls_cfg_count(c, LS_LAYER_ATTN);
    const int64_t kx = E > 1 ? c->num_experts_per_tok : 1;
    const int64_t conv_sz = di * (Kc - 1), ssm_sz = di * ds;
    const int64_t esz = (int64_t)sizeof(LS_T);
    const double eps = c->rms_norm_eps;
    cu_step st = {0};
    st.max_keys = 1;
    for (int64_t s = 0; s < n_seqs; s++) {
        st.rows += seqs[s].n;
        if (seqs[s].start_pos + seqs[s].n > st.max_keys) st.max_keys = seqs[s].start_pos + seqs[s].n;
        if (seqs[s].logprobs) st.n_lrows += seqs[s].n - seqs[s].logits_from;
    }
    /* the attention scratch's keys per (row, head), rounded up: consecutive decode steps
     * share one layout (and one graph); the kernel only needs max_keys >= every key count */
    st.max_keys = (st.max_keys + 127) / 128 * 128;
    const int64_t rows = st.rows, nl = st.n_lrows;
    if (rows == 0) return 0;
    if (rows > INT32_MAX) return ls_errf(err, "forward: %lld rows in one step", (long long)rows);
    if (na > 0 && kv->block_size < 1) return ls_errf(err, "forward: KV block size %lld", (long long)kv->block_size);

    /* device scratch, one allocation carved into 256-byte aligned pieces. Expert rows per
     * token in G, ACT and EY: k routed pairs, or E on fast mode's dense MoE; in fast mode G
     * also holds the fused gate and up products (ls_cuda_mlp_fast: 2 * I per expert row). */
    const int64_t mam = nm > 0, att = na > 0;
    int64_t ew = kx;
    for (int64_t l = 0; l < c->num_layers; l++) {
        const int64_t En = dm->layers[l].n_experts;
        if (En > ew && cu_moe_dense(x, fast, l, rows, En, kx, esz)) ew = En;
    }
    const int64_t gw = fast ? 2 * ew : ew;
    int64_t need[] = {
        rows * H, rows * H, mam * rows * 2 * di, mam * rows * di, mam * rows * P,
        mam * rows * di, mam * rows * di, rows * H, att * rows * qd, att * rows * kvd,
        att * rows * kvd, att * rows * qd, att * rows * heads * st.max_keys, rows * gw * I,
        rows * kx * I, rows * ew * I, rows * ew * H, rows * H, rows * E, rows * E, rows * kx,
        nl * H, nl * H, nl * V, mam * n_seqs * conv_sz, mam * n_seqs * ssm_sz};
    enum { X, XN, PROJ, U, SSMP, DT, Y, MIX, Q, KK, VV, ATT, SCORES, G, UP, ACT, EY, FFO, RL,
           PROBS, WTS, SELX, SELN, LG, SCONV, SSSM, NBUF };
    int64_t off[NBUF + 1], total = 0;
    for (int i = 0; i < NBUF; i++) { off[i] = total; total += al256(need[i] * esz); }
    off[NBUF] = total;                                  /* expert indices: int64 */
    total += al256(rows * kx * 8);
    const int64_t grp_off = total;                      /* expert grouping: int32 */
    total += al256((E > 1 ? ls_cuda_moe_group_len(rows * kx, E) : 1) * 4);
    const int64_t mws_off = total;                      /* fast MoE workspace (gate and down
                                                         * need the same: in + out = H + I) */
    const int64_t ft_max = cu_moe_fast_tile(x, fast, rows * kx, E);
    const int64_t mws = ft_max ? ls_cuda_linear_moe_fast_ws(rows * kx, E, ft_max, H, I, esz) : 0;
    total += al256(mws);
    if (ls_cuda_grow(&x->scratch, &x->scratch_bytes, total, 0, err)) return -1;
    char *base = x->scratch;
    LS_T *w[NBUF];
    for (int i = 0; i < NBUF; i++) w[i] = (LS_T *)(base + off[i]);
    int64_t *idx = (int64_t *)(base + off[NBUF]);
    int32_t *grp = (int32_t *)(base + grp_off);
    void *mw = mws ? base + mws_off : NULL;

    if (cu_prepare(x, m, kv, seqs, n_seqs, (char *)w[SCONV], (char *)w[SSSM], &st, err)) return -1;
    const ls_cuda_batch *B = &st.b;
    int graph = CU_GRAPH_NO;
    if (o->keep_rows && !o->probe && nl > 0 &&
        cu_graph_plan(x, fast, esz, &st, n_seqs, kv, na, &graph, err))
        return -1;
    if (graph == CU_GRAPH_REPLAY) {   /* the same launches as the graph's: its inputs uploaded */
        CR(cudaGraphLaunch(x->graph, S));
        x->graph_replays++;
        goto kept;
    }
    if (graph == CU_GRAPH_CAPTURE) {
        if (x->graph) cudaGraphExecDestroy(x->graph);
        x->graph = NULL;
        CR(cudaStreamBeginCapture(S, cudaStreamCaptureModeThreadLocal));
    }

    CK(LS_K(embed)(st.tokens_d, rows, (const LS_T *)dm->embed, V, H, w[X], S));
    int64_t mi = 0, ai = 0;
    /* each residual add runs fused with the norm after it (add_rmsnorm: the same bits) */
    if (c->num_layers > 0)
        CK(LS_K(rmsnorm)(w[X], H, rows, H, (const LS_T *)dm->layers[0].input_norm, eps, w[XN], H,
                         S));
    for (int64_t l = 0; l < c->num_layers; l++) {
        const ls_layer_w *L = &dm->layers[l];
        if (c->layer_kind[l] == LS_LAYER_MAMBA) {
            LS_T *const *cst = (LS_T *const *)(st.conv_d + mi * n_seqs);
            LS_T *const *sst = (LS_T *const *)(st.ssm_d + mi * n_seqs);
            CK(LS_S(cu_lin)(x, fast, w[XN], H, rows, &L->in_proj, w[PROJ], 2 * di));
            if (cu_probe_states(x, o, seqs, n_seqs, &st, l, mi, "conv_state", conv_sz, esz, err)) return -1;
            CK(LS_K(conv1d)(B, cst, w[PROJ], 2 * di, (const LS_T *)L->conv_w, (const LS_T *)L->conv_b,
                            di, Kc, w[U], di, S));
            CK(LS_S(cu_lin)(x, fast, w[U], di, rows, &L->x_proj, w[SSMP], P));
            const ls_cuda_norm_segs dbc = {.n_seg = 3, .off = {0, R, R + ds}, .n = {R, ds, ds},
                                           .w = {L->dt_norm, L->b_norm, L->c_norm}};
            CK(LS_K(rmsnorm_segs)(w[SSMP], P, rows, &dbc, eps, S));
            /* dt_proj without its bias: the scan adds it and takes the softplus (the same
             * bits as the linear's bias add and the softplus kernel, two launches fewer) */
            ls_linear dtp = L->dt_proj;
            dtp.b = NULL;
            CK(LS_S(cu_lin)(x, fast, w[SSMP], P, rows, &dtp, w[DT], di));
            if (cu_probe_states(x, o, seqs, n_seqs, &st, l, mi, "ssm_state", ssm_sz, esz, err)) return -1;
            CK(LS_K(scan)(B, sst, w[U], di, w[DT], di, (const LS_T *)L->dt_proj.b, 1,
                          (const LS_T *)L->A, w[SSMP] + R, P, w[SSMP] + R + ds, P,
                          (const LS_T *)L->D, w[PROJ] + di, 2 * di, di, ds, w[Y], di, S));
            CK(LS_S(cu_lin)(x, fast, w[Y], di, rows, &L->out_proj, w[MIX], H));
            mi++;
            if (cu_probe_rows(x, o, seqs, n_seqs, rows, l, "mamba", w[MIX], H, esz, err)) return -1;
        } else {
            LS_T *kc = (LS_T *)kv->k[ai], *vc = (LS_T *)kv->v[ai];
            CK(LS_S(cu_lin)(x, fast, w[XN], H, rows, &L->q, w[Q], qd));
            CK(LS_S(cu_lin)(x, fast, w[XN], H, rows, &L->k, w[KK], kvd));
            CK(LS_S(cu_lin)(x, fast, w[XN], H, rows, &L->v, w[VV], kvd));
            CK(LS_K(kv_write)(B, w[KK], kvd, w[VV], kvd, kv->block_size, kvd, kc, vc, S));
            CK(LS_K(attention)(B, w[Q], qd, kc, vc, kv->block_size, heads, kvh, hd, w[SCORES],
                               w[ATT], qd, S));
            CK(LS_S(cu_lin)(x, fast, w[ATT], qd, rows, &L->o, w[MIX], H));
            ai++;
            if (cu_probe_rows(x, o, seqs, n_seqs, rows, l, "attention", w[MIX], H, esz, err)) return -1;
        }
        CK(LS_K(add_rmsnorm)(w[X], H, w[MIX], H, rows, H, (const LS_T *)L->ff_norm, eps, w[XN], H,
                             S));
        if (L->n_experts == 1 && fast && x->mlp_gu[l]) {   /* gate and up in one GEMM */
            CK(LS_K(mlp_fast)(x->cublas, w[XN], H, rows, H, I, 1, (const LS_T *)x->mlp_gu[l],
                              (const LS_T *)x->mlp_down[l], w[G], w[ACT], w[FFO], x->tf32, S));
        } else if (L->n_experts == 1) {
            const ls_mlp_w *e = &L->experts[0];
            CK(LS_S(cu_lin)(x, fast, w[XN], H, rows, &e->gate, w[G], I));
            CK(LS_S(cu_lin)(x, fast, w[XN], H, rows, &e->up, w[UP], I));
            CK(LS_K(silu_mul)(w[G], w[UP], w[ACT], rows * I, S));
            CK(LS_S(cu_lin)(x, fast, w[ACT], I, rows, &e->down, w[FFO], H));
        } else {
            /* route; then either every expert over every row (fast mode's dense path: three
             * launches) or the (row, expert slot) pairs grouped by expert (once, for the three
             * expert linears), every pair through its expert; then combine in ascending
             * expert order. No host round trip. */
            const int64_t k = c->num_experts_per_tok, En = L->n_experts;
            const LS_T *const *wl = (const LS_T *const *)x->moe_w[l];
            if (cu_moe_dense(x, fast, l, rows, En, k, esz)) {
                /* the routing on the side stream, beside the experts' products, which do
                 * not need it; joined back before the combine (also when they failed, so
                 * that a capture never ends with the side stream still forked) */
                CR(cudaEventRecord(x->fork_ev, S));
                CR(cudaStreamWaitEvent(x->side, x->fork_ev, 0));
                cudaError_t re = LS_K(linear_fast)(x->cublas_side, w[XN], H, rows, L->router.in,
                                                   (const LS_T *)L->router.w,
                                                   (const LS_T *)L->router.b, En, w[RL], En,
                                                   x->tf32, x->side);
                if (re == cudaSuccess)
                    re = LS_K(moe_route)(w[RL], En, rows, En, k, w[PROBS], idx, w[WTS], x->side);
                CR(cudaEventRecord(x->join_ev, x->side));
                const cudaError_t me = LS_K(mlp_fast)(
                    x->cublas, w[XN], H, rows, H, I, En, (const LS_T *)x->mlp_gu[l],
                    (const LS_T *)x->mlp_down[l], w[G], w[ACT], w[EY], x->tf32, S);
                CR(cudaStreamWaitEvent(S, x->join_ev, 0));
                if (re != cudaSuccess) return ls_cuda_errf(err, re, 1, "the MoE routing (side stream)");
                if (me != cudaSuccess) return ls_cuda_errf(err, me, 1, "the MoE experts (mlp_fast)");
                CK(LS_K(moe_combine_dense)(w[EY], w[WTS], idx, rows, k, En, H, w[FFO], S));
            } else {
                CK(LS_S(cu_lin)(x, fast, w[XN], H, rows, &L->router, w[RL], En));
                CK(LS_K(moe_route)(w[RL], En, rows, En, k, w[PROBS], idx, w[WTS], S));
                const int64_t np = rows * k, ft = cu_moe_fast_tile(x, fast, np, En);
                CK(ls_cuda_moe_group_tiles(idx, np, En, ft ? ft : LS_CUDA_MOE_TILE, grp, S));
                CK(LS_S(cu_lin_moe)(x, ft, w[XN], H, k, np, H, wl, En, grp, I, w[G], I, mw, mws));
                CK(LS_S(cu_lin_moe)(x, ft, w[XN], H, k, np, H, wl + En, En, grp, I, w[UP], I, mw,
                                    mws));
                CK(LS_K(silu_mul)(w[G], w[UP], w[ACT], np * I, S));
                CK(LS_S(cu_lin_moe)(x, ft, w[ACT], I, 1, np, I, wl + 2 * En, En, grp, H, w[EY],
                                    H, mw, mws));
                CK(LS_K(moe_combine)(w[EY], w[WTS], rows, k, H, w[FFO], S));
            }
        }
        if (cu_probe_rows(x, o, seqs, n_seqs, rows, l, L->n_experts > 1 ? "moe" : "mlp", w[FFO], H,
                          esz, err))
            return -1;
        if (l + 1 < c->num_layers)
            CK(LS_K(add_rmsnorm)(w[X], H, w[FFO], H, rows, H,
                                 (const LS_T *)dm->layers[l + 1].input_norm, eps, w[XN], H, S));
        else
            CK(LS_K(add)(w[X], w[FFO], rows * H, S));
        if (cu_probe_rows(x, o, seqs, n_seqs, rows, l, "hidden", w[X], H, esz, err)) return -1;
    }

    /* final norm, lm_head and log-softmax for the rows that want them, gathered into one
     * block (the embedding kernel gathers rows of x by index) and downloaded in one copy */
    if (nl > 0) {
        CK(LS_K(embed)(st.sel_d, nl, w[X], rows, H, w[SELX], S));
        CK(LS_K(rmsnorm)(w[SELX], H, nl, H, (const LS_T *)dm->final_norm, eps, w[SELN], H, S));
        CK(LS_S(cu_lin)(x, fast, w[SELN], H, nl, &dm->lm_head, w[LG], V));
        CK(LS_K(logsoftmax)(w[LG], V, nl, V, w[LG], V, S));
        if (graph == CU_GRAPH_CAPTURE && cu_graph_finish(x, err)) return -1;
        if (o->keep_rows) {
        kept:
            x->kept = w[LG];   /* the sample op reads them; it synchronises */
            x->kept_rows = nl;
            x->pack_live = 1;
            return 0;
        }
        if (ls_cuda_grow(&x->lp_h, &x->lp_bytes, nl * V * esz, 1, err)) return -1;
        CR(cudaMemcpyAsync(x->lp_h, w[LG], (size_t)(nl * V * esz), cudaMemcpyDeviceToHost, S));
    }
    CR(cudaStreamSynchronize(S));
    CR(cudaGetLastError());
    int64_t r = 0;
    for (int64_t s = 0; s < n_seqs; s++) {
        const ls_seq_step *q = &seqs[s];
        const int64_t n = q->logprobs ? q->n - q->logits_from : 0;
        if (n > 0) memcpy(q->logprobs, (const char *)x->lp_h + r * V * esz, (size_t)(n * V * esz));
        r += n;
    }
    return 0;
}
#endif
