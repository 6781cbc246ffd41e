/* Where the math runs and where its memory lives. The engine, the reference and the
 * localiser are written once against this small table of operations; the scheduler, the
 * pools' bookkeeping, the sampler and the comparator never see it.
 *
 *   cpu   host memory (calloc / memcpy) and ls_forward: exactly the code the project has
 *         always run, bit for bit.
 *   cuda  device memory (cudaMalloc, never managed memory) and a forward pass made of the
 *         kernels/cuda launches (engine/forward_cuda.c), weights uploaded once per backend.
 *         mode invariant: our own fixed-order kernels, batch invariant, so the engine
 *         equals the GPU reference bit for bit; mode fast: the dense linears through
 *         cuBLAS (TF32 tensor cores when asked for, in fp32), not batch invariant,
 *         compared with tolerances.
 *
 * "Backend memory" below is memory obtained from ops->alloc: host memory for cpu, device
 * memory for cuda. Pointer arithmetic on it is fine anywhere (the engine computes slot
 * offsets on the host, in 64-bit); only the ops read or write it. Every op is ordered
 * after the ops issued before it (one stream), so a sequence of copies behaves like the
 * same sequence of memcpy calls, overlaps included (a copy whose own source and
 * destination overlap behaves as memmove on cuda). cuda batches copies: copy and zero only
 * queue the op, and every other op first runs the queue as a few launches of conflict-free
 * waves (engine/copy_plan.h), which keeps this guarantee exactly; an error in a queued op
 * is reported by the op that runs the queue. ls_seq_step's conv / ssm pointers and
 * ls_kv_cache's k / v are backend memory; tokens, block tables and logprobs stay host
 * memory (the cuda forward uploads the first two per step and downloads only the
 * logprob rows asked for, or none when they stay for `sample`, which downloads a token and
 * a logprob per draw). */
#ifndef LS_BACKEND_H
#define LS_BACKEND_H

#include <stdint.h>

#include "engine/err.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/sampler.h"

typedef struct ls_backend ls_backend;

typedef struct ls_backend_ops {
    /* `bytes` zero bytes of backend memory, or NULL with a message. */
    void *(*alloc)(const ls_backend *b, int64_t bytes, ls_err *err);
    void (*release)(const ls_backend *b, void *p);          /* NULL is fine */
    /* dst <- src, `bytes` bytes, both backend memory. */
    int (*copy)(const ls_backend *b, void *dst, const void *src, int64_t bytes, ls_err *err);
    int (*zero)(const ls_backend *b, void *p, int64_t bytes, ls_err *err);
    /* `count` runs of `n` elements of `elem_bytes` (4 or 8) bytes, run c starting at
     * element c * stride of p, set to the debug poison NaN of ls_poison_f32 / f64: one
     * launch (cuda) however many runs. */
    int (*poison)(const ls_backend *b, void *p, int64_t elem_bytes, int64_t n, int64_t count,
                  int64_t stride, ls_err *err);
    /* ls_forward's contract over backend memory. */
    int (*forward)(const ls_backend *b, const ls_model *m, const ls_kv_cache *kv,
                   const ls_seq_step *seqs, int64_t n_seqs, const ls_forward_opts *opts,
                   ls_err *err);
    /* Optional (NULL: the caller downloads rows and runs ls_sample on the host). After a
     * forward with opts->keep_rows, draws[j] samples kept row draws[j].row (the rows asked
     * for, numbered in sequence order from 0) by ls_sample's definition; tokens[j] and
     * lps[j] (host arrays) get the token and its log-probability widened to double. The kept
     * rows are valid until the next forward. Synchronous: the results are there on return. */
    int (*sample)(const ls_backend *b, const ls_sample_draw *draws, int64_t n, int32_t *tokens,
                  double *lps, ls_err *err);
    void (*destroy)(ls_backend *b);
} ls_backend_ops;

struct ls_backend {
    const ls_backend_ops *ops;
    const char *name;              /* "cpu" | "cuda" */
    int fast;                      /* mode fast (cuBLAS linears) */
    int tf32;                      /* fast mode in fp32 may use TF32 tensor cores */
    /* The backend the reference pass runs on: the same device and precision in invariant
     * mode (this backend itself when it is invariant). */
    const ls_backend *reference;
    void *impl;
};

/* The CPU backend (a static object: ls_backend_free ignores it). */
const ls_backend *ls_backend_cpu(void);
/* b, or the CPU backend when b is NULL. */
static inline const ls_backend *ls_backend_or_cpu(const ls_backend *b) {
    return b ? b : ls_backend_cpu();
}

/* 1 if this binary was built with the CUDA backend. */
int ls_backend_cuda_built(void);
/* 1 if it was and a CUDA device is usable now. */
int ls_backend_cuda_available(void);
/* A CUDA backend for model m (weights uploaded now, in m's precision), mode fast or
 * invariant; tf32: fast mode in fp32 may use TF32 tensor cores (the config's `tf32`;
 * ignored otherwise). Fails with a clear message in a binary built without CUDA or on a
 * machine without a device. */
int ls_backend_cuda_create(const ls_model *m, int fast, int tf32, ls_backend **out, ls_err *err);
/* A CUDA backend replays a decode step's launches as a CUDA graph when the step has the
 * last one's shape and buffers (docs/gpu.md, "The decode step as a CUDA graph"): on by
 * default; off runs every launch directly (the benchmark and the tests compare the two).
 * The stats count the graphs captured and the forwards that replayed one. Both ignore a
 * backend that is not CUDA (stats: zeros). */
void ls_backend_cuda_set_graphs(const ls_backend *b, int on);
void ls_backend_cuda_graph_stats(const ls_backend *b, int64_t *captures, int64_t *replays);
void ls_backend_free(ls_backend *b);   /* NULL and the CPU backend are fine */

#endif
