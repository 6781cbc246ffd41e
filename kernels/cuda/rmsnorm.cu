/* RMSNorm, one block of 256 threads per row (optionally after a residual add). The sum of squares in kernels/rmsnorm.c's
 * order: a thread per lane of kernels/lanesum.c (each square one rounding, the same whoever
 * computes it), then the lanes' fixed tree. So the result is the CPU twin's, bit for bit,
 * and independent of the batch. */
#include "kernels/cuda/common.cuh"

#define LS_RMS_THREADS LS_SUM_LANES

/* One row: yr = w * (xr * inv). ADD: xr += ar first (stored back), the sum of squares over
 * the new values: the forward's residual add and the next norm in one pass, the same bits
 * as the add kernel then the norm. Called by all LS_RMS_THREADS threads of the block.
 * Rows of up to LS_RMS_THREADS * LS_RMS_REG elements are read once into registers, every
 * load issued before the first store (a store to xr between loads would keep the compiler
 * from batching them: each load a full memory latency, 8.4 us a row block at 2048); the
 * values, their order and the sums are the loop's below. */
#define LS_RMS_REG 16
template <typename T, bool ADD>
__device__ __forceinline__ void ls_rmsnorm_row(T *xr, const T *ar, int64_t n,
                                               const T *__restrict__ w, T eps, T *yr, T *buf) {
    const int tid = threadIdx.x;
    T lane = 0;
    if (n <= (int64_t)LS_RMS_THREADS * LS_RMS_REG) {
        T v[LS_RMS_REG];
#pragma unroll
        for (int k = 0; k < LS_RMS_REG; k++) {
            const int64_t i = tid + (int64_t)k * LS_RMS_THREADS;
            v[k] = i < n ? xr[i] : (T)0;
            if (ADD && i < n) v[k] = v[k] + ar[i];
        }
#pragma unroll
        for (int k = 0; k < LS_RMS_REG; k++) {
            const int64_t i = tid + (int64_t)k * LS_RMS_THREADS;
            if (i < n) {
                if (ADD) xr[i] = v[k];
                lane += v[k] * v[k];
            }
        }
        const T ss = ls_block_lanes_reduce(lane, buf);
        const T inv = (T)1 / ls_sqrt(ss / (T)n + eps);
#pragma unroll
        for (int k = 0; k < LS_RMS_REG; k++) {
            const int64_t i = tid + (int64_t)k * LS_RMS_THREADS;
            if (i < n) yr[i] = w[i] * (v[k] * inv);
        }
        return;
    }
    for (int64_t i = tid; i < n; i += LS_RMS_THREADS) {
        T v = xr[i];
        if (ADD) {
            v = v + ar[i];
            xr[i] = v;
        }
        lane += v * v;
    }
    const T ss = ls_block_lanes_reduce(lane, buf);
    const T inv = (T)1 / ls_sqrt(ss / (T)n + eps);
    for (int64_t i = tid; i < n; i += LS_RMS_THREADS) yr[i] = w[i] * (xr[i] * inv);
}

template <typename T, bool ADD>
__global__ void __launch_bounds__(LS_RMS_THREADS)
ls_rmsnorm_kernel(T *x, int64_t ldx, const T *a, int64_t lda, int64_t n, const T *__restrict__ w,
                  T eps, T *y, int64_t ldy) {
    __shared__ T buf[LS_RMS_THREADS];
    ls_pdl_wait();
    const int64_t r = blockIdx.x;
    ls_rmsnorm_row<T, ADD>(x + r * ldx, ADD ? a + r * lda : a, n, w, eps, y + r * ldy, buf);
}

/* Segments of each row normed in place, each with its own weights: a warp per segment, a
 * block per row (Mamba's dt, B and C norms: 128, 16 and 16 elements, where a block of 256
 * threads per segment mostly idled through four barriers). Lane t of the warp keeps the
 * block's lanes t + 32 m (ls_warp_lanes_reduce): the same sums, the same bits. */
template <typename T>
__global__ void ls_rmsnorm_segs_kernel(T *x, int64_t ldx, ls_cuda_norm_segs sg, T eps) {
    ls_pdl_wait();
    const int q = threadIdx.x / 32, t = threadIdx.x % 32;
    const int64_t n = sg.n[q];
    T *xr = x + blockIdx.x * ldx + sg.off[q];
    const T *w = (const T *)sg.w[q];
    T s[LS_SUM_LANES / 32];
#pragma unroll
    for (int m = 0; m < LS_SUM_LANES / 32; m++) {
        s[m] = 0;
        for (int64_t i = t + 32 * m; i < n; i += LS_SUM_LANES) s[m] += xr[i] * xr[i];
    }
    const T ss = ls_warp_lanes_reduce(s);
    const T inv = (T)1 / ls_sqrt(ss / (T)n + eps);
    for (int64_t i = t; i < n; i += 32) xr[i] = w[i] * (xr[i] * inv);
}

template <typename T>
static cudaError_t ls_rmsnorm(T *x, int64_t ldx, const T *a, int64_t lda, int64_t rows,
                              int64_t n, const T *w, double eps, T *y, int64_t ldy,
                              cudaStream_t stream) {
    LS_CUDA_REQUIRE(rows >= 0 && rows <= LS_CUDA_MAX_GRID_X && n > 0 && ldx >= n && ldy >= n &&
                        (!a || lda >= n),
                    "rmsnorm: bad sizes rows=%lld n=%lld ldx=%lld ldy=%lld", (long long)rows,
                    (long long)n, (long long)ldx, (long long)ldy);
    if (rows == 0) return cudaSuccess;
    if (a)
        return ls_launch_pdl("add_rmsnorm", ls_rmsnorm_kernel<T, true>, dim3((unsigned)rows),
                             dim3(LS_RMS_THREADS), stream, x, ldx, a, lda, n, w, (T)eps, y, ldy);
    return ls_launch_pdl("rmsnorm", ls_rmsnorm_kernel<T, false>, dim3((unsigned)rows),
                         dim3(LS_RMS_THREADS), stream, x, ldx, a, lda, n, w, (T)eps, y, ldy);
}

template <typename T>
static cudaError_t ls_rmsnorm_segs(T *x, int64_t ldx, int64_t rows, const ls_cuda_norm_segs *sg,
                                   double eps, cudaStream_t stream) {
    LS_CUDA_REQUIRE(sg && sg->n_seg >= 1 && sg->n_seg <= LS_CUDA_NORM_MAX_SEGS && rows >= 0 &&
                        rows <= LS_CUDA_MAX_GRID_X,
                    "rmsnorm_segs: bad arguments");
    for (int q = 0; q < sg->n_seg; q++)
        LS_CUDA_REQUIRE(sg->n[q] > 0 && sg->off[q] >= 0 && sg->off[q] + sg->n[q] <= ldx && sg->w[q],
                        "rmsnorm_segs: segment %d (offset %lld, %lld wide) outside the row of %lld",
                        q, (long long)sg->off[q], (long long)sg->n[q], (long long)ldx);
    if (rows == 0) return cudaSuccess;
    return ls_launch_pdl("rmsnorm_segs", ls_rmsnorm_segs_kernel<T>, dim3((unsigned)rows),
                         dim3(32 * (unsigned)sg->n_seg), stream, x, ldx, *sg, (T)eps);
}

#define LS_INST(T, S)                                                                        \
    extern "C" cudaError_t ls_cuda_rmsnorm_##S(const T *x, int64_t ldx, int64_t rows,         \
                                               int64_t n, const T *w, double eps, T *y,       \
                                               int64_t ldy, cudaStream_t stream) {            \
        /* x is only read without an addend */                                               \
        return ls_rmsnorm<T>((T *)x, ldx, NULL, 0, rows, n, w, eps, y, ldy, stream);          \
    }                                                                                         \
    extern "C" cudaError_t ls_cuda_add_rmsnorm_##S(T *x, int64_t ldx, const T *a, int64_t lda, \
                                                   int64_t rows, int64_t n, const T *w,       \
                                                   double eps, T *y, int64_t ldy,             \
                                                   cudaStream_t stream) {                     \
        LS_CUDA_REQUIRE(a != NULL, "add_rmsnorm: no addend");                                 \
        return ls_rmsnorm<T>(x, ldx, a, lda, rows, n, w, eps, y, ldy, stream);                \
    }                                                                                         \
    extern "C" cudaError_t ls_cuda_rmsnorm_segs_##S(T *x, int64_t ldx, int64_t rows,          \
                                                    const ls_cuda_norm_segs *segs, double eps, \
                                                    cudaStream_t stream) {                    \
        return ls_rmsnorm_segs<T>(x, ldx, rows, segs, eps, stream);                           \
    }
LS_INST(float, f32)
LS_INST(double, f64)
