/* The CUDA backend: backend memory is device memory from cudaMalloc (never managed
 * memory), every op runs on one stream in issue order, and the forward pass is
 * engine/forward_cuda.c over a device copy of the model's weights, uploaded once when the
 * backend is created. Offsets are the engine's, computed on the host in 64-bit; here they
 * are only added to device base pointers. */
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

/* ---------------- ops ---------------- */

static ls_cuda_ctx *ctx_of(const ls_backend *b) { return (ls_cuda_ctx *)b->impl; }

static void *cu_alloc(const ls_backend *b, int64_t bytes, ls_err *err) {
    void *p = NULL;
    if (bytes < 0) { ls_errf(err, "cuda: negative allocation"); return NULL; }
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

static void cu_release(const ls_backend *b, void *p) {
    (void)b;
    if (p) cudaFree(p);
}

static int cu_copy(const ls_backend *b, void *dst, const void *src, int64_t bytes, ls_err *err) {
    if (bytes <= 0 || dst == src) return 0;
    cudaError_t e = cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyDeviceToDevice, ctx_of(b)->stream);
    return e == cudaSuccess ? 0 : ls_cuda_errf(err, e, 0, "device-to-device copy");
}

static int cu_zero(const ls_backend *b, void *p, int64_t bytes, ls_err *err) {
    if (bytes <= 0) return 0;
    cudaError_t e = cudaMemsetAsync(p, 0, (size_t)bytes, ctx_of(b)->stream);
    return e == cudaSuccess ? 0 : ls_cuda_errf(err, e, 0, "memset");
}

static int cu_poison(const ls_backend *b, void *p, int64_t elem_bytes, int64_t n, int64_t count,
                     int64_t stride, ls_err *err) {
    /* the payloads of ls_poison_f32 / ls_poison_f64 */
    const uint64_t bits = elem_bytes == 8 ? 0x7FF8DEADBEEF0000ull : 0x7FCDEAD5u;
    cudaError_t e = ls_cuda_fill_strided(p, elem_bytes, n, count, stride, bits, ctx_of(b)->stream);
    return e == cudaSuccess ? 0 : ls_cuda_errf(err, e, 1, "poison fill");
}

static int cu_forward(const ls_backend *b, const ls_model *m, const ls_kv_cache *kv,
                      const ls_seq_step *seqs, int64_t n_seqs, const ls_forward_opts *opts,
                      ls_err *err) {
    return ls_cuda_forward(ctx_of(b), b->fast, m, kv, seqs, n_seqs, opts, err);
}

static void cu_destroy(ls_backend *b);

static const ls_backend_ops cuda_ops = {
    .alloc = cu_alloc, .release = cu_release, .copy = cu_copy, .zero = cu_zero,
    .poison = cu_poison, .forward = cu_forward, .destroy = cu_destroy,
};

/* ---------------- the device copy of the weights ---------------- */

/* A device copy of `bytes` host bytes (NULL for NULL), recorded for ctx_free. */
static void *put(ls_cuda_ctx *x, const void *h, int64_t bytes, ls_err *err, int *failed) {
    if (!h || *failed) return NULL;
    if (x->n_dallocs == x->cap_dallocs) {
        int64_t nc = x->cap_dallocs ? 2 * x->cap_dallocs : 64;
        void **na = realloc(x->dallocs, (size_t)nc * sizeof *na);
        if (!na) { *failed = 1; ls_errf(err, "out of memory"); return NULL; }
        x->dallocs = na;
        x->cap_dallocs = nc;
    }
    void *d = NULL;
    cudaError_t e = cudaMalloc(&d, (size_t)(bytes > 0 ? bytes : 1));
    if (e == cudaSuccess) {
        x->dallocs[x->n_dallocs++] = d;
        if (bytes > 0) e = cudaMemcpy(d, h, (size_t)bytes, cudaMemcpyHostToDevice);
    }
    if (e != cudaSuccess) {
        *failed = 1;
        ls_cuda_errf(err, e, 0, "uploading the weights");
        return NULL;
    }
    return d;
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
    if (!x->dm.layers || !x->moe_w) return ls_errf(err, "out of memory");
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
    if (x->stream) cudaStreamSynchronize(x->stream);
    for (int64_t i = 0; i < x->n_dallocs; i++) cudaFree(x->dallocs[i]);
    free(x->dallocs);
    for (int64_t l = 0; x->dm.layers && l < x->m->cfg.num_layers; l++) free(x->dm.layers[l].experts);
    free(x->dm.layers);
    free(x->moe_w);
    if (x->scratch) cudaFree(x->scratch);
    if (x->pack_d) cudaFree(x->pack_d);
    if (x->pack_h) cudaFreeHost(x->pack_h);
    if (x->lp_h) cudaFreeHost(x->lp_h);
    free(x->probe_h);
    if (x->cublas) cublasDestroy(x->cublas);
    if (x->stream) cudaStreamDestroy(x->stream);
    free(x);
}

static void cu_destroy(ls_backend *b) {
    ctx_free(ctx_of(b));
    free(b);
}

/* ---------------- entry points ---------------- */

int ls_backend_cuda_built(void) { return 1; }

int ls_backend_cuda_available(void) { return ls_cuda_device_available(); }

int ls_backend_cuda_create(const ls_model *m, int fast, int tf32, ls_backend **out, ls_err *err) {
    *out = NULL;
    if (!m) return ls_errf(err, "backend cuda: no model");
    if (!ls_cuda_device_available())
        return ls_errf(err, "backend cuda: no CUDA device is usable on this machine (this binary "
                            "was built with CUDA; cudaGetDeviceCount found no device)");
    if (tf32 < 0) {
        const char *v = getenv("LS_CUDA_TF32");
        tf32 = v && *v && strcmp(v, "0") != 0;
    }
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
    if (fast) {
        cublasStatus_t st = cublasCreate(&x->cublas);
        if (st != CUBLAS_STATUS_SUCCESS) {
            x->cublas = NULL;
            ctx_free(x);
            free(b);
            return ls_errf(err, "cuda: cublasCreate failed: %s", cublasGetStatusString(st));
        }
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
