/* Internal to the CUDA backend (engine/backend_cuda.c, engine/forward_cuda.c): the device
 * copy of one model and the buffers a forward step reuses. */
#ifndef LS_BACKEND_CUDA_H
#define LS_BACKEND_CUDA_H

#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "engine/backend.h"
#include "engine/copy_plan.h"

typedef struct ls_cuda_ctx {
    const ls_model *m;            /* the host model this copy was made from */
    ls_model dm;                  /* m's structure with DEVICE weight pointers (dm.layers and
                                   * each layer's experts array are host arrays) */
    void **moe_w;                 /* per layer: a device array of 3 * E device pointers (every
                                   * expert's gate, then up, then down weights), or NULL */
    void **mlp_gu, **mlp_down;    /* per layer: its experts' (or dense MLP's) gate and up weights
                                   * as one [2*E*I][H] device block and the downs as [E][H][I]
                                   * (ls_cuda_mlp_fast), or NULL where they could not be */
    void **dallocs;               /* every device allocation of the weights */
    int64_t n_dallocs, cap_dallocs;
    cudaStream_t stream;          /* everything runs on it, in issue order */
    cublasHandle_t cublas;        /* fast mode only */
    /* fast mode's second stream: a dense MoE layer's router and top-k run on it beside the
     * experts' GEMMs (which do not need them), forked from and joined back to `stream` by
     * events; its own cuBLAS handle, so the two GEMMs never share a workspace */
    cudaStream_t side;
    cublasHandle_t cublas_side;
    cudaEvent_t fork_ev, join_ev;
    int tf32;
    /* grown on demand, reused by every step */
    void *scratch;                /* device activations */
    int64_t scratch_bytes;
    void *pack_h, *pack_d;        /* one step's tokens, block tables, state pointers: pinned host,
                                   * uploaded in one copy to its device twin */
    int64_t pack_h_bytes, pack_d_bytes;
    void *lp_h;                   /* pinned host: the log-probability rows downloaded */
    int64_t lp_bytes;
    void *probe_h;                /* host: probe downloads */
    int64_t probe_bytes;
    /* the log-probability rows a keep_rows forward left for `sample` (inside scratch, so
     * valid until the next forward), and the buffers of a sample call */
    const void *kept;
    int64_t kept_rows;
    int pack_live;                /* a forward returned before its pack upload was known to be
                                   * done (keep_rows): sync before pack_h is written again */
    void *sample_work;            /* device: ls_cuda_sample workspace */
    int64_t sample_work_bytes;
    void *draw_h, *draw_d;        /* pinned host / device: draws up, tokens and lps down */
    int64_t draw_h_bytes, draw_d_bytes;
    /* copy / zero ops wait here until another op runs (ls_cuda_flush) */
    ls_copy_op *q;
    int64_t q_n, q_cap;
    ls_copy_plan plan;            /* the queue's waves (scratch) */
    void *desc_h, *desc_d;        /* pinned host / device: the batched waves' descriptors */
    int64_t desc_h_bytes, desc_d_bytes;
    cudaEvent_t desc_ev;          /* recorded after each upload of desc_h: once it has
                                   * happened, desc_h may be written again */
    int desc_ev_live;
    void *stage_d;                /* device: a copy whose source and destination overlap */
    int64_t stage_bytes;
    int copy_failed;              /* a flush failed where nobody could be told (release, */
    ls_err copy_err;              /* destroy): the next flush reports copy_err */
    ls_backend twin;              /* a fast backend's invariant twin (its reference) */
    /* the decode step as a CUDA graph (engine/forward_cuda.c, cu_graph_*): a keep_rows
     * forward whose launches would be the same as the last one's (same shapes, buffers and
     * caches: gkey) is captured once and then replayed, its per-step inputs (tokens,
     * positions, block tables, state slots) arriving through the pack upload before it */
    cudaGraphExec_t graph;        /* the captured forward, or NULL */
    int64_t *gkey, gkey_n;        /* three keys of gkey_n entries: the graph's, the last
                                   * forward's, the current one's (cu_graph_plan) */
    int graphs_off;               /* 1: never capture (tests compare against it) */
    int64_t graph_captures, graph_replays;
} ls_cuda_ctx;

/* engine/forward_cuda.c: ls_forward's contract on the device (states, KV in device memory;
 * tokens, block tables, logprobs in host memory). fast: cuBLAS linears. */
int ls_cuda_forward(ls_cuda_ctx *x, int fast, const ls_model *m, const ls_kv_cache *kv,
                    const ls_seq_step *seqs, int64_t n_seqs, const ls_forward_opts *opts,
                    ls_err *err);

/* Runs the queued copy / zero ops (every op but copy and zero calls it first, so the stream
 * sees them in issue order): the queue is split into conflict-free waves
 * (engine/copy_plan.h), each wave of several ops one ls_cuda_copy_batch launch per address
 * alignment class over descriptors uploaded once per flush, each smaller wave one runtime
 * call per op; a copy whose source and destination overlap goes through a temporary
 * (memmove). The result equals issuing the ops one by one. Errors name the failing wave and
 * op (numbered in the queue without its no-ops); the queue is emptied either way. A failure
 * in a flush that release or destroy ran is reported by the next flush, which drops what
 * was queued meanwhile. */
int ls_cuda_flush(ls_cuda_ctx *x, ls_err *err);

/* "cuda: WHAT: <runtime's message>" into err; returns -1. kernel: the failing call was an
 * ls_cuda_* kernel wrapper (its own message is added). */
int ls_cuda_errf(ls_err *err, cudaError_t e, int kernel, const char *what);

/* Grows a device (pinned: 0) or pinned host (pinned: 1) buffer to at least `bytes`; the old
 * contents are lost. */
int ls_cuda_grow(void **p, int64_t *have, int64_t bytes, int pinned, ls_err *err);

#endif
