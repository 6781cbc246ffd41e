/* The CPU backend: host memory and ls_forward, i.e. exactly the operations the engine and
 * the reference always performed (calloc, memcpy, memset, ls_poison_*). */
#include "engine/backend.h"

#include <stdlib.h>
#include <string.h>

#include "engine/state_pool.h"

static void *cpu_alloc(const ls_backend *b, int64_t bytes, ls_err *err) {
    (void)b;
    void *p = bytes >= 0 ? calloc(1, (size_t)(bytes > 0 ? bytes : 1)) : NULL;
    if (!p) ls_errf(err, "out of memory (%lld bytes)", (long long)bytes);
    return p;
}

static void cpu_release(const ls_backend *b, void *p) {
    (void)b;
    free(p);
}

static int cpu_copy(const ls_backend *b, void *dst, const void *src, int64_t bytes, ls_err *err) {
    (void)b;
    (void)err;
    if (bytes > 0 && dst != src) memmove(dst, src, (size_t)bytes);   /* as the CUDA backend */
    return 0;
}

static int cpu_zero(const ls_backend *b, void *p, int64_t bytes, ls_err *err) {
    (void)b;
    (void)err;
    if (bytes > 0) memset(p, 0, (size_t)bytes);
    return 0;
}

static int cpu_poison(const ls_backend *b, void *p, int64_t elem_bytes, int64_t n, int64_t count,
                      int64_t stride, ls_err *err) {
    (void)b;
    if (elem_bytes != 4 && elem_bytes != 8) return ls_errf(err, "poison: element size %lld", (long long)elem_bytes);
    for (int64_t c = 0; c < count; c++) {
        char *q = (char *)p + c * stride * elem_bytes;
        if (elem_bytes == 8) ls_poison_f64((double *)q, n);
        else ls_poison_f32((float *)q, n);
    }
    return 0;
}

static int cpu_forward(const ls_backend *b, const ls_model *m, const ls_kv_cache *kv,
                       const ls_seq_step *seqs, int64_t n_seqs, const ls_forward_opts *opts,
                       ls_err *err) {
    (void)b;
    return ls_forward(m, kv, seqs, n_seqs, opts, err);
}

static const ls_backend_ops cpu_ops = {
    .alloc = cpu_alloc, .release = cpu_release, .copy = cpu_copy, .zero = cpu_zero,
    .poison = cpu_poison, .forward = cpu_forward, .destroy = NULL,
};

static const ls_backend cpu_backend = {.ops = &cpu_ops, .name = "cpu", .reference = &cpu_backend};

const ls_backend *ls_backend_cpu(void) { return &cpu_backend; }

void ls_backend_free(ls_backend *b) {
    if (!b || b == &cpu_backend || !b->ops->destroy) return;
    b->ops->destroy(b);
}
