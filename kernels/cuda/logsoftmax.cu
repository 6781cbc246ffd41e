/* log_softmax per row (one block of 256 threads per row) in kernels/logsoftmax.c's order:
 * mx = max (exact in any order), s = sum exp(x_i - mx) with a thread per lane of
 * kernels/lanesum.c and then its fixed tree, lse = mx + log(s), out = x - lse.
 * And the gather of each row's token logprob. */
#include <math.h>

#include "kernels/cuda/common.cuh"

#define LS_LSM_THREADS LS_SUM_LANES
/* Each thread's elements come LS_LSM_AHEAD at a time: their loads all go out before the
 * first is used, then they are taken in index order, so every lane adds the same terms in
 * the same order as one element at a time (a 32,000-entry row is 125 elements per thread:
 * one load in flight each had kept the kernel waiting on memory, 44.5 us at 256 rows on an
 * H100, ninth session). */
#define LS_LSM_AHEAD 8

/* f(v) for the thread's elements x[tid], x[tid + 256], ... of a row of n, in that order.
 * xr is not __restrict__: the kernel also runs in place, with f storing into the row. */
template <typename T, typename F>
__device__ __forceinline__ void ls_lsm_walk(const T *xr, int64_t n, F f) {
    int64_t i = threadIdx.x;
    for (; i + (LS_LSM_AHEAD - 1) * LS_LSM_THREADS < n; i += LS_LSM_AHEAD * LS_LSM_THREADS) {
        T v[LS_LSM_AHEAD];
#pragma unroll
        for (int k = 0; k < LS_LSM_AHEAD; k++) v[k] = xr[i + k * LS_LSM_THREADS];
#pragma unroll
        for (int k = 0; k < LS_LSM_AHEAD; k++) f(i + k * LS_LSM_THREADS, v[k]);
    }
    for (; i < n; i += LS_LSM_THREADS) f(i, xr[i]);
}

template <typename T>
__global__ void __launch_bounds__(LS_LSM_THREADS)
ls_logsoftmax_kernel(const T *x, int64_t ldx, int64_t n, T *out, int64_t ldo) {
    __shared__ T buf[LS_LSM_THREADS];
    const int tid = threadIdx.x;
    const int64_t r = blockIdx.x;
    const T *xr = x + r * ldx;
    T *orow = out + r * ldo;
    T mx = -INFINITY;
    ls_lsm_walk(xr, n, [&](int64_t, T v) { if (v > mx) mx = v; });
    buf[tid] = mx;
    __syncthreads();
    for (int st = LS_LSM_THREADS / 2; st > 0; st >>= 1) {
        if (tid < st && buf[tid + st] > buf[tid]) buf[tid] = buf[tid + st];
        __syncthreads();
    }
    mx = buf[0];
    __syncthreads();   /* everyone has read buf[0] before it is reused */
    T lane = 0;
    ls_lsm_walk(xr, n, [&](int64_t, T v) { lane += ls_exp(v - mx); });
    const T lse = mx + ls_log(ls_block_lanes_reduce(lane, buf));
    /* in place (out == x) each element is read before its own store, by the same thread */
    ls_lsm_walk(xr, n, [&](int64_t i, T v) { orow[i] = v - lse; });
}

template <typename T>
__global__ void ls_gather_kernel(const T *__restrict__ logp, int64_t ld, int64_t rows, int64_t n,
                                 const int32_t *__restrict__ tokens, T *__restrict__ out) {
    const int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const int32_t t = tokens[r];
    out[r] = (t >= 0 && (int64_t)t < n) ? logp[r * ld + t] : ls_nan<T>();
}

template <typename T>
static cudaError_t ls_logsoftmax(const T *x, int64_t ldx, int64_t rows, int64_t n, T *out,
                                 int64_t ldo, cudaStream_t stream) {
    LS_CUDA_REQUIRE(rows >= 0 && rows <= LS_CUDA_MAX_GRID_X && n > 0 && ldx >= n && ldo >= n,
                    "logsoftmax: bad sizes rows=%lld n=%lld", (long long)rows, (long long)n);
    if (rows == 0) return cudaSuccess;
    ls_logsoftmax_kernel<T><<<(unsigned)rows, LS_LSM_THREADS, 0, stream>>>(x, ldx, n, out, ldo);
    return ls_cuda_launched("logsoftmax");
}

template <typename T>
static cudaError_t ls_gather(const T *logp, int64_t ld, int64_t rows, int64_t n,
                             const int32_t *tokens, T *out, cudaStream_t stream) {
    LS_CUDA_REQUIRE(rows >= 0 && n > 0 && ld >= n, "gather_logprob: bad sizes");
    if (rows == 0) return cudaSuccess;
    ls_gather_kernel<T><<<(unsigned)ls_cuda_cdiv(rows, 128), 128, 0, stream>>>(logp, ld, rows, n,
                                                                               tokens, out);
    return ls_cuda_launched("gather_logprob");
}

#define LS_INST(T, S)                                                                           \
    extern "C" cudaError_t ls_cuda_logsoftmax_##S(const T *x, int64_t ldx, int64_t rows,         \
                                                  int64_t n, T *out, int64_t ldo,                \
                                                  cudaStream_t stream) {                         \
        return ls_logsoftmax<T>(x, ldx, rows, n, out, ldo, stream);                              \
    }                                                                                            \
    extern "C" cudaError_t ls_cuda_gather_logprob_##S(const T *logp, int64_t ld, int64_t rows,   \
                                                      int64_t n, const int32_t *tokens, T *out,  \
                                                      cudaStream_t stream) {                     \
        return ls_gather<T>(logp, ld, rows, n, tokens, out, stream);                             \
    }
LS_INST(float, f32)
LS_INST(double, f64)
