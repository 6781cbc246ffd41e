/* The CUDA backend: backend memory is device memory from cudaMalloc (never managed
 * memory), every op runs on one stream in issue order, and the forward pass is
 * engine/forward_cuda.c over a device copy of the model's weights, uploaded once when the
 * backend is created. Offsets are the engine's, computed on the host in 64-bit; here they
 * are only added to device base pointers.
 *
 * Copies are batched: copy and zero only queue the op; every other op first runs the queue
 * (ls_cuda_flush), split into conflict-free waves (engine/copy_plan.h), a wave of several
 * ops one ls_cuda_copy_batch launch per alignment class. A decode step's thousands of state
 * copies cost a few launches instead of one runtime call each, and the stream still sees
 * them in issue order with the result of issuing them one by one, overlaps included. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend_cuda.h"
#include "kernels/cuda/kernels_cuda.h"

int ls_cuda_errf(ls_err *err, cudaError_t e, int kernel, const char *what) {
    const char *km = kernel ? ls_cuda_error_message() : "";
    return ls_errf(err, "cuda: %s: %s%s%s", what, cudaGetErrorString(e), km[0] ? ": " : "", km);
}

int ls_cuda_grow(void **p, int64_t *have, int64_t bytes, int pinned, ls_err *err) {
    if (bytes <= *have && *p) return 0;
    if (*p) {
        if (pinned) cudaFreeHost(*p);
        else cudaFree(*p);
    }
    *p = NULL;
    *have = 0;
    int64_t want = bytes < 256 ? 256 : bytes + bytes / 4;   /* some room: fewer regrowths */
    cudaError_t e = pinned ? cudaHostAlloc(p, (size_t)want, cudaHostAllocDefault)
                           : cudaMalloc(p, (size_t)want);
    if (e != cudaSuccess) {
        *p = NULL;
        char what[96];
        snprintf(what, sizeof what, "allocating %lld bytes of %s memory", (long long)want,
                 pinned ? "pinned host" : "device");
        return ls_cuda_errf(err, e, 0, what);
    }
    *have = want;
    return 0;
}

/* ---------------- deferred copies ---------------- */

#define LS_CUDA_QUEUE_MAX (INT64_C(1) << 20)   /* a longer queue is run before it grows */
#define LS_CUDA_BATCH_MIN 3                    /* smaller waves: one runtime call per op */

static const int unit_of_class[4] = {16, 8, 4, 1};

static int class_of(const ls_copy_op *op) {
    const int u = ls_cuda_copy_unit(op);
    return u == 16 ? 0 : u == 8 ? 1 : u == 4 ? 2 : 3;
}

static int enqueue(ls_cuda_ctx *x, void *dst, const void *src, int64_t bytes, ls_err *err) {
    if (x->q_n >= LS_CUDA_QUEUE_MAX && ls_cuda_flush(x, err)) return -1;
    if (x->q_n == x->q_cap) {
        const int64_t nc = x->q_cap ? 2 * x->q_cap : 1024;
        ls_copy_op *nq = realloc(x->q, (size_t)nc * sizeof *nq);
        if (!nq) return ls_errf(err, "cuda: out of memory queueing a copy");
        x->q = nq;
        x->q_cap = nc;
    }
    x->q[x->q_n++] = (ls_copy_op){dst, src, bytes};
    return 0;
}

/* Grows a buffer that queued work may still be using: the stream drains first. */
static int grow_idle(ls_cuda_ctx *x, void **p, int64_t *have, int64_t bytes, int pinned,
                     ls_err *err) {
    if (bytes <= *have && *p) return 0;
    cudaError_t e = cudaStreamSynchronize(x->stream);
    if (e != cudaSuccess) return ls_cuda_errf(err, e, 0, "deferred copies: draining the stream to grow a buffer");
    x->desc_ev_live = 0;
    return ls_cuda_grow(p, have, bytes, pinned, err);
}

/* One op of a small wave, by itself. */
static cudaError_t issue_one(ls_cuda_ctx *x, const ls_copy_op *op, ls_err *err, int *grow_failed) {
    const size_t n = (size_t)op->bytes;
    if (!op->src) return cudaMemsetAsync(op->dst, 0, n, x->stream);
    if (!ls_copy_self_overlaps(op))
        return cudaMemcpyAsync(op->dst, op->src, n, cudaMemcpyDeviceToDevice, x->stream);
    /* source and destination overlap: memmove through a temporary */
    if (grow_idle(x, &x->stage_d, &x->stage_bytes, op->bytes, 0, err)) {
        *grow_failed = 1;
        return cudaErrorMemoryAllocation;
    }
    cudaError_t e = cudaMemcpyAsync(x->stage_d, op->src, n, cudaMemcpyDeviceToDevice, x->stream);
    if (e == cudaSuccess) e = cudaMemcpyAsync(op->dst, x->stage_d, n, cudaMemcpyDeviceToDevice, x->stream);
    return e;
}

/* The descriptors of every wave of LS_CUDA_BATCH_MIN ops or more, class by class within a
 * wave, into desc_h, then one upload to desc_d. */
static int upload_descriptors(ls_cuda_ctx *x, const ls_copy_op *q, int64_t n_desc, ls_err *err) {
    const int64_t bytes = n_desc * (int64_t)sizeof(ls_copy_op);
    cudaError_t e;
    if (x->desc_ev_live) {   /* the previous upload must have left desc_h */
        e = cudaEventSynchronize(x->desc_ev);
        if (e != cudaSuccess) return ls_cuda_errf(err, e, 0, "deferred copies: waiting for the last descriptor upload");
        x->desc_ev_live = 0;
    }
    if (grow_idle(x, &x->desc_h, &x->desc_h_bytes, bytes, 1, err) ||
        grow_idle(x, &x->desc_d, &x->desc_d_bytes, bytes, 0, err))
        return -1;
    if (!x->desc_ev) {
        e = cudaEventCreateWithFlags(&x->desc_ev, cudaEventDisableTiming);
        if (e != cudaSuccess) {
            x->desc_ev = NULL;
            return ls_cuda_errf(err, e, 0, "deferred copies: creating an event");
        }
    }
    ls_copy_op *h = x->desc_h;
    int64_t k = 0, a = 0;
    for (int64_t w = 0; w < x->plan.n_waves; a = x->plan.end[w++]) {
        const int64_t b = x->plan.end[w];
        if (b - a < LS_CUDA_BATCH_MIN) continue;
        for (int c = 0; c < 4; c++)
            for (int64_t i = a; i < b; i++)
                if (class_of(&q[i]) == c) h[k++] = q[i];
    }
    e = cudaMemcpyAsync(x->desc_d, x->desc_h, (size_t)bytes, cudaMemcpyHostToDevice, x->stream);
    if (e == cudaSuccess) e = cudaEventRecord(x->desc_ev, x->stream);
    if (e != cudaSuccess) return ls_cuda_errf(err, e, 0, "deferred copies: uploading the descriptors");
    x->desc_ev_live = 1;
    return 0;
}

int ls_cuda_flush(ls_cuda_ctx *x, ls_err *err) {
    if (x->copy_failed) {   /* what was queued since is dropped: the run has failed */
        x->copy_failed = 0;
        x->q_n = 0;
        return ls_errf(err, "%s (reported late: the flush ran in release or destroy)", x->copy_err.msg);
    }
    const int64_t n = ls_copy_compact(x->q, x->q_n);
    x->q_n = 0;   /* consumed, whatever happens below */
    if (n == 0) return 0;
    const ls_copy_op *q = x->q;
    if (ls_copy_plan_waves(&x->plan, q, n))
        return ls_errf(err, "cuda: out of memory planning %lld deferred copies", (long long)n);
    const int64_t nw = x->plan.n_waves;
    int64_t n_desc = 0, a = 0;
    for (int64_t w = 0; w < nw; a = x->plan.end[w++])
        if (x->plan.end[w] - a >= LS_CUDA_BATCH_MIN) n_desc += x->plan.end[w] - a;
    if (n_desc > 0 && upload_descriptors(x, q, n_desc, err)) return -1;
    const ls_copy_op *d = x->desc_d;
    int64_t k = 0;
    a = 0;
    for (int64_t w = 0; w < nw; a = x->plan.end[w++]) {
        const int64_t b = x->plan.end[w];
        char what[256];
        cudaError_t e = cudaSuccess;
        if (b - a >= LS_CUDA_BATCH_MIN) {
            int64_t cnt[4] = {0}, maxb[4] = {0};
            for (int64_t i = a; i < b; i++) {
                const int c = class_of(&q[i]);
                cnt[c]++;
                if (q[i].bytes > maxb[c]) maxb[c] = q[i].bytes;
            }
            for (int c = 0; c < 4 && e == cudaSuccess; c++) {
                if (!cnt[c]) continue;
                e = ls_cuda_copy_batch(d + k, cnt[c], maxb[c], unit_of_class[c], x->stream);
                k += cnt[c];
                if (e != cudaSuccess) {
                    snprintf(what, sizeof what, "deferred copies: wave %lld of %lld (ops %lld..%lld of "
                             "%lld): batch of %lld ops in %d-byte words", (long long)w, (long long)nw,
                             (long long)a, (long long)(b - 1), (long long)n, (long long)cnt[c],
                             unit_of_class[c]);
                    (void)cudaGetLastError();
                    return ls_cuda_errf(err, e, 1, what);
                }
            }
            continue;
        }
        for (int64_t i = a; i < b; i++) {
            int grow_failed = 0;
            e = issue_one(x, &q[i], err, &grow_failed);
            if (grow_failed) return ls_err_prefix(err, "deferred copies: queued op %lld of %lld: ", (long long)i, (long long)n);
            if (e != cudaSuccess) {
                const int len = snprintf(what, sizeof what, "deferred copies: wave %lld of %lld, queued "
                                         "op %lld of %lld: ", (long long)w, (long long)nw,
                                         (long long)i, (long long)n);
                if (q[i].src)
                    snprintf(what + len, sizeof what - (size_t)len, "copy of %lld bytes %p <- %p",
                             (long long)q[i].bytes, q[i].dst, q[i].src);
                else
                    snprintf(what + len, sizeof what - (size_t)len, "zero fill of %lld bytes at %p",
                             (long long)q[i].bytes, q[i].dst);
                (void)cudaGetLastError();
                return ls_cuda_errf(err, e, 0, what);
            }
        }
    }
    return 0;
}

/* ---------------- ops ---------------- */

static ls_cuda_ctx *ctx_of(const ls_backend *b) { return (ls_cuda_ctx *)b->impl; }

static void *cu_alloc(const ls_backend *b, int64_t bytes, ls_err *err) {
    void *p = NULL;
    if (bytes < 0) { ls_errf(err, "cuda: negative allocation"); return NULL; }
    if (ls_cuda_flush(ctx_of(b), err)) return NULL;
    cudaError_t e = cudaMalloc(&p, (size_t)(bytes > 0 ? bytes : 1));
    if (e != cudaSuccess) {
        char what[96];
        snprintf(what, sizeof what, "cudaMalloc of %lld bytes (%.3g GB)", (long long)bytes, (double)bytes * 1e-9);
        ls_cuda_errf(err, e, 0, what);
        return NULL;
    }
    e = cudaMemsetAsync(p, 0, (size_t)(bytes > 0 ? bytes : 1), ctx_of(b)->stream);
    if (e != cudaSuccess) {
        cudaFree(p);
        ls_cuda_errf(err, e, 0, "zeroing a new allocation");
        return NULL;
    }
    return p;
}

/* A flush from an op that cannot report (release, destroy): its failure waits for the next
 * flush, which reports it; until then nothing more is run (the queue is dropped). */
static void flush_quiet(ls_cuda_ctx *x) {
    if (x->copy_failed) x->q_n = 0;
    if (!x->q_n) return;
    if (ls_cuda_flush(x, &x->copy_err)) x->copy_failed = 1;
}

static void cu_release(const ls_backend *b, void *p) {
    flush_quiet(ctx_of(b));   /* queued copies may touch p */
    if (p) cudaFree(p);
}

static int cu_copy(const ls_backend *b, void *dst, const void *src, int64_t bytes, ls_err *err) {
    if (bytes <= 0 || dst == src) return 0;
    if (!dst || !src) return ls_errf(err, "cuda: device-to-device copy of %lld bytes with a NULL pointer", (long long)bytes);
    return enqueue(ctx_of(b), dst, src, bytes, err);
}

static int cu_zero(const ls_backend *b, void *p, int64_t bytes, ls_err *err) {
    if (bytes <= 0) return 0;
    if (!p) return ls_errf(err, "cuda: memset of %lld bytes at NULL", (long long)bytes);
    return enqueue(ctx_of(b), p, NULL, bytes, err);
}

static int cu_poison(const ls_backend *b, void *p, int64_t elem_bytes, int64_t n, int64_t count,
                     int64_t stride, ls_err *err) {
    /* the payloads of ls_poison_f32 / ls_poison_f64 */
    const uint64_t bits = elem_bytes == 8 ? 0x7FF8DEADBEEF0000ull : 0x7FCDEAD5u;
    if (ls_cuda_flush(ctx_of(b), err)) return -1;
    cudaError_t e = ls_cuda_fill_strided(p, elem_bytes, n, count, stride, bits, ctx_of(b)->stream);
    return e == cudaSuccess ? 0 : ls_cuda_errf(err, e, 1, "poison fill");
}

static int cu_forward(const ls_backend *b, const ls_model *m, const ls_kv_cache *kv,
                      const ls_seq_step *seqs, int64_t n_seqs, const ls_forward_opts *opts,
                      ls_err *err) {
    return ls_cuda_forward(ctx_of(b), b->fast, m, kv, seqs, n_seqs, opts, err);
}

/* ls_sample over the rows the last forward kept: the draws go up, one launch sequence
 * samples them all (kernels/cuda/sample.cu), a token and a log-probability per draw come
 * down. */
static int cu_sample(const ls_backend *b, const ls_sample_draw *draws, int64_t n, int32_t *tokens,
                     double *lps, ls_err *err) {
    ls_cuda_ctx *x = ctx_of(b);
    if (n <= 0) return 0;
    if (ls_cuda_flush(x, err)) return -1;   /* the state copies queued since the forward */
    if (!x->kept)
        return ls_errf(err, "backend cuda: sample called without a forward that kept its rows");
    const int64_t V = x->m->cfg.vocab_size;
    for (int64_t j = 0; j < n; j++) {
        if (draws[j].row < 0 || draws[j].row >= x->kept_rows)
            return ls_errf(err, "backend cuda: draw %lld samples row %lld of %lld kept rows",
                           (long long)j, (long long)draws[j].row, (long long)x->kept_rows);
        if (ls_sampling_check(&draws[j].sampling, err)) return ls_err_prefix(err, "backend cuda: ");
    }
    const int64_t jb = (n * (int64_t)sizeof(ls_cuda_sample_job) + 15) / 16 * 16;
    const int64_t tb = (n * 4 + 15) / 16 * 16, bytes = jb + tb + n * 8;
    if (ls_cuda_grow(&x->draw_h, &x->draw_h_bytes, bytes, 1, err) ||
        ls_cuda_grow(&x->draw_d, &x->draw_d_bytes, bytes, 0, err))
        return -1;
    ls_cuda_sample_job *jobs = x->draw_h;
    for (int64_t j = 0; j < n; j++)
        jobs[j] = (ls_cuda_sample_job){.row = draws[j].row,
                                       .temperature = draws[j].sampling.temperature,
                                       .top_k = draws[j].sampling.top_k,
                                       .top_p = draws[j].sampling.top_p,
                                       .seed = draws[j].seed, .request = draws[j].request,
                                       .rollout = draws[j].rollout, .position = draws[j].position};
    /* the sort's workspace only when some draw keeps a prefix of the ranking */
    const int sort_rows = ls_cuda_sample_needs_sort(jobs, n, V);
    if (sort_rows) {
        const int64_t work = ls_cuda_sample_workspace(x->kept_rows, V);
        if (work < 0) return ls_errf(err, "backend cuda: cannot size the sampler's sort");
        if (ls_cuda_grow(&x->sample_work, &x->sample_work_bytes, work, 0, err)) return -1;
    }
    char *h = x->draw_h, *d = x->draw_d;
    cudaError_t e = cudaMemcpyAsync(d, h, (size_t)jb, cudaMemcpyHostToDevice, x->stream);
    if (e != cudaSuccess) return ls_cuda_errf(err, e, 0, "uploading the draws");
    e = x->m->prec == LS_F64
            ? ls_cuda_sample_f64(x->kept, x->kept_rows, V, (const ls_cuda_sample_job *)d, n,
                                 sort_rows, x->sample_work, x->sample_work_bytes,
                                 (int32_t *)(d + jb), (double *)(d + jb + tb), x->stream)
            : ls_cuda_sample_f32(x->kept, x->kept_rows, V, (const ls_cuda_sample_job *)d, n,
                                 sort_rows, x->sample_work, x->sample_work_bytes,
                                 (int32_t *)(d + jb), (double *)(d + jb + tb), x->stream);
    if (e != cudaSuccess) return ls_cuda_errf(err, e, 1, "sampling");
    e = cudaMemcpyAsync(h + jb, d + jb, (size_t)(tb + n * 8), cudaMemcpyDeviceToHost, x->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(x->stream);
    if (e != cudaSuccess) return ls_cuda_errf(err, e, 0, "sampling (downloading the tokens)");
    x->pack_live = 0;
    memcpy(tokens, h + jb, (size_t)n * sizeof *tokens);
    memcpy(lps, h + jb + tb, (size_t)n * sizeof *lps);
    for (int64_t j = 0; j < n; j++)
        if (tokens[j] < 0 || tokens[j] >= V)
            return ls_errf(err, "backend cuda: the sampler returned token %d for draw %lld "
                                "(vocabulary %lld)", tokens[j], (long long)j, (long long)V);
    return 0;
}

static void cu_destroy(ls_backend *b);

static const ls_backend_ops cuda_ops = {
    .alloc = cu_alloc, .release = cu_release, .copy = cu_copy, .zero = cu_zero,
    .poison = cu_poison, .forward = cu_forward, .sample = cu_sample, .destroy = cu_destroy,
};

/* ---------------- the device copy of the weights ---------------- */

/* `bytes` of device memory, recorded for ctx_free (NULL once *failed). */
static void *dev_alloc(ls_cuda_ctx *x, int64_t bytes, ls_err *err, int *failed) {
    if (*failed) return NULL;
    if (x->n_dallocs == x->cap_dallocs) {
        int64_t nc = x->cap_dallocs ? 2 * x->cap_dallocs : 64;
        void **na = realloc(x->dallocs, (size_t)nc * sizeof *na);
        if (!na) { *failed = 1; ls_errf(err, "out of memory"); return NULL; }
        x->dallocs = na;
        x->cap_dallocs = nc;
    }
    void *d = NULL;
    cudaError_t e = cudaMalloc(&d, (size_t)(bytes > 0 ? bytes : 1));
    if (e != cudaSuccess) {
        *failed = 1;
        ls_cuda_errf(err, e, 0, "uploading the weights");
        return NULL;
    }
    x->dallocs[x->n_dallocs++] = d;
    return d;
}

/* `bytes` host bytes to device address d. */
static void copy_up(void *d, const void *h, int64_t bytes, ls_err *err, int *failed) {
    if (*failed || bytes <= 0) return;
    cudaError_t e = cudaMemcpy(d, h, (size_t)bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        *failed = 1;
        ls_cuda_errf(err, e, 0, "uploading the weights");
    }
}

/* A device copy of `bytes` host bytes (NULL for NULL), recorded for ctx_free. */
static void *put(ls_cuda_ctx *x, const void *h, int64_t bytes, ls_err *err, int *failed) {
    if (!h) return NULL;
    void *d = dev_alloc(x, bytes, err, failed);
    if (d) copy_up(d, h, bytes, err, failed);
    return *failed ? NULL : d;
}

static void *up(ls_cuda_ctx *x, const void *h, int64_t elems, ls_err *err, int *failed) {
    return put(x, h, elems * ls_prec_size(x->m->prec), err, failed);
}

static ls_linear up_linear(ls_cuda_ctx *x, const ls_linear *l, ls_err *err, int *failed) {
    ls_linear d = *l;
    d.w = up(x, l->w, l->out * l->in, err, failed);
    d.b = up(x, l->b, l->out, err, failed);
    return d;
}

/* Layer l's expert MLP weights (one expert for a dense MLP) in two device blocks: every
 * expert's gate then every expert's up as one [2*E*I][H] matrix, and the downs as [E][H][I],
 * for fast mode's ls_cuda_mlp_fast (two cuBLAS calls for all experts); the per-expert
 * linears point into them. Returns 0 (nothing uploaded) where an expert has a bias or a
 * shape other than H -> I -> H: the linears then get their own copies. */
static int up_expert_blocks(ls_cuda_ctx *x, int64_t l, ls_err *err, int *failed) {
    const ls_layer_w *L = &x->m->layers[l];
    ls_layer_w *D = &x->dm.layers[l];
    const int64_t E = L->n_experts, H = x->m->cfg.hidden_size, I = x->m->cfg.intermediate_size;
    const int64_t mat = I * H * ls_prec_size(x->m->prec);
    for (int64_t e = 0; e < E; e++) {
        const ls_mlp_w *q = &L->experts[e];
        if (q->gate.b || q->up.b || q->down.b || q->gate.in != H || q->gate.out != I ||
            q->up.in != H || q->up.out != I || q->down.in != I || q->down.out != H)
            return 0;
    }
    char *gu = dev_alloc(x, 2 * E * mat, err, failed), *dn = dev_alloc(x, E * mat, err, failed);
    if (*failed) return 1;
    for (int64_t e = 0; e < E; e++) {
        const ls_mlp_w *q = &L->experts[e];
        ls_mlp_w *d = &D->experts[e];
        *d = *q;
        d->gate.w = gu + e * mat;
        d->up.w = gu + (E + e) * mat;
        d->down.w = dn + e * mat;
        copy_up(d->gate.w, q->gate.w, mat, err, failed);
        copy_up(d->up.w, q->up.w, mat, err, failed);
        copy_up(d->down.w, q->down.w, mat, err, failed);
    }
    x->mlp_gu[l] = gu;
    x->mlp_down[l] = dn;
    return 1;
}

static int upload_model(ls_cuda_ctx *x, ls_err *err) {
    const ls_model *m = x->m;
    const ls_model_config *c = &m->cfg;
    const int64_t H = c->hidden_size, di = c->mamba_d_inner, ds = c->mamba_d_state;
    int failed = 0;
    x->dm = *m;
    x->dm.allocs = NULL;
    x->dm.n_allocs = x->dm.cap_allocs = 0;
    x->dm.dir = NULL;
    x->dm.layers = calloc((size_t)c->num_layers + 1, sizeof *x->dm.layers);
    x->moe_w = calloc((size_t)c->num_layers + 1, sizeof *x->moe_w);
    x->mlp_gu = calloc((size_t)c->num_layers + 1, sizeof *x->mlp_gu);
    x->mlp_down = calloc((size_t)c->num_layers + 1, sizeof *x->mlp_down);
    if (!x->dm.layers || !x->moe_w || !x->mlp_gu || !x->mlp_down)
        return ls_errf(err, "out of memory");
    x->dm.embed = up(x, m->embed, c->vocab_size * H, err, &failed);
    x->dm.final_norm = up(x, m->final_norm, H, err, &failed);
    if (m->lm_head.w == m->embed) {
        x->dm.lm_head = m->lm_head;
        x->dm.lm_head.w = x->dm.embed;
    } else {
        x->dm.lm_head = up_linear(x, &m->lm_head, err, &failed);
    }
    for (int64_t l = 0; l < c->num_layers && !failed; l++) {
        const ls_layer_w *L = &m->layers[l];
        ls_layer_w *D = &x->dm.layers[l];
        *D = *L;
        D->input_norm = up(x, L->input_norm, H, err, &failed);
        D->ff_norm = up(x, L->ff_norm, H, err, &failed);
        if (c->layer_kind[l] == LS_LAYER_MAMBA) {
            D->in_proj = up_linear(x, &L->in_proj, err, &failed);
            D->x_proj = up_linear(x, &L->x_proj, err, &failed);
            D->dt_proj = up_linear(x, &L->dt_proj, err, &failed);
            D->out_proj = up_linear(x, &L->out_proj, err, &failed);
            D->conv_w = up(x, L->conv_w, di * c->mamba_d_conv, err, &failed);
            D->conv_b = up(x, L->conv_b, di, err, &failed);
            D->A = up(x, L->A, di * ds, err, &failed);
            D->D = up(x, L->D, di, err, &failed);
            D->dt_norm = up(x, L->dt_norm, c->mamba_dt_rank, err, &failed);
            D->b_norm = up(x, L->b_norm, ds, err, &failed);
            D->c_norm = up(x, L->c_norm, ds, err, &failed);
        } else {
            D->q = up_linear(x, &L->q, err, &failed);
            D->k = up_linear(x, &L->k, err, &failed);
            D->v = up_linear(x, &L->v, err, &failed);
            D->o = up_linear(x, &L->o, err, &failed);
        }
        const int64_t E = L->n_experts;
        D->experts = calloc((size_t)E + 1, sizeof *D->experts);
        if (!D->experts) return ls_errf(err, "out of memory");
        if (!up_expert_blocks(x, l, err, &failed))
            for (int64_t e = 0; e < E; e++) {
                D->experts[e].gate = up_linear(x, &L->experts[e].gate, err, &failed);
                D->experts[e].up = up_linear(x, &L->experts[e].up, err, &failed);
                D->experts[e].down = up_linear(x, &L->experts[e].down, err, &failed);
            }
        if (E > 1) {
            D->router = up_linear(x, &L->router, err, &failed);
            void **list = calloc((size_t)(3 * E), sizeof *list);
            if (!list) return ls_errf(err, "out of memory");
            for (int64_t e = 0; e < E; e++) {
                list[e] = D->experts[e].gate.w;
                list[E + e] = D->experts[e].up.w;
                list[2 * E + e] = D->experts[e].down.w;
            }
            /* a device array of device pointers, for ls_cuda_linear_moe */
            x->moe_w[l] = put(x, list, 3 * E * (int64_t)sizeof *list, err, &failed);
            free(list);
        }
    }
    return failed ? -1 : 0;
}

static void ctx_free(ls_cuda_ctx *x) {
    if (!x) return;
    flush_quiet(x);
    if (x->stream) cudaStreamSynchronize(x->stream);
    for (int64_t i = 0; i < x->n_dallocs; i++) cudaFree(x->dallocs[i]);
    free(x->dallocs);
    for (int64_t l = 0; x->dm.layers && l < x->m->cfg.num_layers; l++) free(x->dm.layers[l].experts);
    free(x->dm.layers);
    free(x->moe_w);
    free(x->mlp_gu);
    free(x->mlp_down);
    if (x->scratch) cudaFree(x->scratch);
    if (x->pack_d) cudaFree(x->pack_d);
    if (x->pack_h) cudaFreeHost(x->pack_h);
    if (x->lp_h) cudaFreeHost(x->lp_h);
    if (x->sample_work) cudaFree(x->sample_work);
    if (x->draw_d) cudaFree(x->draw_d);
    if (x->draw_h) cudaFreeHost(x->draw_h);
    free(x->probe_h);
    free(x->q);
    ls_copy_plan_free(&x->plan);
    if (x->desc_d) cudaFree(x->desc_d);
    if (x->desc_h) cudaFreeHost(x->desc_h);
    if (x->stage_d) cudaFree(x->stage_d);
    if (x->desc_ev) cudaEventDestroy(x->desc_ev);
    if (x->graph) cudaGraphExecDestroy(x->graph);
    free(x->gkey);
    if (x->cublas) cublasDestroy(x->cublas);
    if (x->cublas_side) cublasDestroy(x->cublas_side);
    if (x->fork_ev) cudaEventDestroy(x->fork_ev);
    if (x->join_ev) cudaEventDestroy(x->join_ev);
    if (x->side) cudaStreamDestroy(x->side);
    if (x->stream) cudaStreamDestroy(x->stream);
    free(x);
}

static void cu_destroy(ls_backend *b) {
    ctx_free(ctx_of(b));
    free(b);
}

/* ---------------- entry points ---------------- */

int ls_backend_cuda_built(void) { return 1; }

static ls_cuda_ctx *cuda_ctx_of(const ls_backend *b) {
    return b && b->ops == &cuda_ops ? (ls_cuda_ctx *)b->impl : NULL;
}

void ls_backend_cuda_set_graphs(const ls_backend *b, int on) {
    ls_cuda_ctx *x = cuda_ctx_of(b);
    if (x) x->graphs_off = !on;
}

void ls_backend_cuda_graph_stats(const ls_backend *b, int64_t *captures, int64_t *replays) {
    const ls_cuda_ctx *x = cuda_ctx_of(b);
    *captures = x ? x->graph_captures : 0;
    *replays = x ? x->graph_replays : 0;
}

int ls_backend_cuda_available(void) { return ls_cuda_device_available(); }

/* Fast mode's cuBLAS handles, and the side stream with its fork and join events. */
static int fast_handles(ls_cuda_ctx *x, ls_err *err) {
    cublasStatus_t st = cublasCreate(&x->cublas);
    if (st != CUBLAS_STATUS_SUCCESS) {
        x->cublas = NULL;
        return ls_errf(err, "cuda: cublasCreate failed: %s", cublasGetStatusString(st));
    }
    cudaError_t e = cudaStreamCreate(&x->side);
    if (e != cudaSuccess) {
        x->side = NULL;
        return ls_cuda_errf(err, e, 0, "creating the side stream");
    }
    cudaEvent_t *ev[2] = {&x->fork_ev, &x->join_ev};
    for (int i = 0; i < 2; i++)
        if ((e = cudaEventCreateWithFlags(ev[i], cudaEventDisableTiming)) != cudaSuccess) {
            *ev[i] = NULL;
            return ls_cuda_errf(err, e, 0, "creating the side stream's events");
        }
    st = cublasCreate(&x->cublas_side);
    if (st != CUBLAS_STATUS_SUCCESS) {
        x->cublas_side = NULL;
        return ls_errf(err, "cuda: cublasCreate failed: %s", cublasGetStatusString(st));
    }
    return 0;
}

int ls_backend_cuda_create(const ls_model *m, int fast, int tf32, ls_backend **out, ls_err *err) {
    *out = NULL;
    if (!m) return ls_errf(err, "backend cuda: no model");
    if (!ls_cuda_device_available())
        return ls_errf(err, "backend cuda: no CUDA device is usable on this machine (this binary "
                            "was built with CUDA; cudaGetDeviceCount found no device)");
    ls_cuda_ctx *x = calloc(1, sizeof *x);
    ls_backend *b = calloc(1, sizeof *b);
    if (!x || !b) {
        free(x);
        free(b);
        return ls_errf(err, "out of memory");
    }
    x->m = m;
    x->tf32 = fast && tf32 && m->prec == LS_F32;
    cudaError_t e = cudaStreamCreate(&x->stream);
    if (e != cudaSuccess) {
        x->stream = NULL;
        ctx_free(x);
        free(b);
        return ls_cuda_errf(err, e, 0, "creating a stream");
    }
    if (fast && fast_handles(x, err)) {
        ctx_free(x);
        free(b);
        return -1;
    }
    if (upload_model(x, err)) {
        ctx_free(x);
        free(b);
        return ls_err_prefix(err, "backend cuda: ");
    }
    x->twin = (ls_backend){.ops = &cuda_ops, .name = "cuda", .fast = 0, .tf32 = 0,
                           .reference = &x->twin, .impl = x};
    *b = (ls_backend){.ops = &cuda_ops, .name = "cuda", .fast = fast != 0, .tf32 = x->tf32,
                      .reference = fast ? &x->twin : b, .impl = x};
    *out = b;
    return 0;
}
