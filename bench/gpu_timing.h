/* GPU-time helpers shared by the GPU benchmarks (bench_gpu.c, bench_gemm.c, bench_scan.cu): C
 * and C++. A failed CUDA call prints where and exits 2 (these are programs, not library
 * code). */
#ifndef LS_BENCH_GPU_TIMING_H
#define LS_BENCH_GPU_TIMING_H

#include <cuda_runtime_api.h>

#include "tests/cuda/cu_check.h"   /* LS_CU_OR_EXIT */

#define BENCH_CU(x) LS_CU_OR_EXIT(x, 2)

/* calls launches: f(ctx, i, stream) for i = 0 .. calls-1 */
typedef void (*bench_launch_fn)(void *ctx, int i, cudaStream_t stream);

/* ms of op(ctx, S) between two events: one warm-up run, then the best of `reps` */
static inline double bench_best_ms(void (*op)(void *ctx, cudaStream_t S), void *ctx,
                                   cudaStream_t S, int reps) {
    cudaEvent_t e0, e1;
    BENCH_CU(cudaEventCreate(&e0));
    BENCH_CU(cudaEventCreate(&e1));
    double best = 1e30;
    for (int rep = 0; rep <= reps; rep++) {
        float ms;
        BENCH_CU(cudaEventRecord(e0, S));
        op(ctx, S);
        BENCH_CU(cudaEventRecord(e1, S));
        BENCH_CU(cudaEventSynchronize(e1));
        BENCH_CU(cudaEventElapsedTime(&ms, e0, e1));
        if (rep > 0 && (double)ms < best) best = (double)ms;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return best;
}

static inline void bench_graph_op(void *ge, cudaStream_t S) {
    BENCH_CU(cudaGraphLaunch((cudaGraphExec_t)ge, S));
}

/* us per launch: the calls captured into one CUDA graph, so host work per call does not
 * show, the graph timed by bench_best_ms (best of 5) */
static inline double bench_graph_us(bench_launch_fn f, void *ctx, int calls, cudaStream_t S) {
    cudaGraph_t g;
    cudaGraphExec_t ge;
    BENCH_CU(cudaStreamBeginCapture(S, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < calls; i++) f(ctx, i, S);
    BENCH_CU(cudaStreamEndCapture(S, &g));
    BENCH_CU(cudaGraphInstantiate(&ge, g, 0));
    const double ms = bench_best_ms(bench_graph_op, (void *)ge, S, 5);
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    return ms * 1e3 / calls;
}

typedef struct { void *dst; const void *src; size_t n; } bench_copy;
static inline void bench_copy_op(void *ctx, cudaStream_t S) {
    const bench_copy *c = (const bench_copy *)ctx;
    BENCH_CU(cudaMemcpyAsync(c->dst, c->src, c->n, cudaMemcpyDeviceToDevice, S));
}

/* bytes/s of a device-to-device copy of `bytes` (read + written), timed by bench_best_ms */
static inline double bench_copy_bandwidth(size_t bytes, int reps) {
    bench_copy c = {NULL, NULL, bytes};
    void *src;
    BENCH_CU(cudaMalloc(&c.dst, c.n));
    BENCH_CU(cudaMalloc(&src, c.n));
    BENCH_CU(cudaMemset(src, 1, c.n));
    c.src = src;
    const double ms = bench_best_ms(bench_copy_op, &c, 0, reps);
    cudaFree(c.dst);
    cudaFree(src);
    return 2.0 * (double)c.n / (ms * 1e-3);
}

#endif
