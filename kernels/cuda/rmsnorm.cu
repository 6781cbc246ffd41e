/* RMSNorm, one block of 256 threads per row. The sum of squares in kernels/rmsnorm.c's
 * order: a thread per lane of kernels/lanesum.c (each square one rounding, the same whoever
 * computes it), then the lanes' fixed tree. So the result is the CPU twin's, bit for bit,
 * and independent of the batch. */
#include "kernels/cuda/common.cuh"

#define LS_RMS_THREADS LS_SUM_LANES

template <typename T>
__global__ void __launch_bounds__(LS_RMS_THREADS)
ls_rmsnorm_kernel(const T *x, int64_t ldx, int64_t n, const T *__restrict__ w, T eps, T *y,
                  int64_t ldy) {
    __shared__ T buf[LS_RMS_THREADS];
    const int64_t r = blockIdx.x;
    const int tid = threadIdx.x;
    const T *xr = x + r * ldx;
    T *yr = y + r * ldy;
    T lane = 0;
    for (int64_t i = tid; i < n; i += LS_RMS_THREADS) lane += xr[i] * xr[i];
    const T ss = ls_block_lanes_reduce(lane, buf);
    const T inv = (T)1 / ls_sqrt(ss / (T)n + eps);
    for (int64_t i = tid; i < n; i += LS_RMS_THREADS) yr[i] = w[i] * (xr[i] * inv);
}

template <typename T>
static cudaError_t ls_rmsnorm(const T *x, int64_t ldx, int64_t rows, int64_t n, const T *w,
                              double eps, T *y, int64_t ldy, cudaStream_t stream) {
    LS_CUDA_REQUIRE(rows >= 0 && rows <= LS_CUDA_MAX_GRID_X && n > 0 && ldx >= n && ldy >= n,
                    "rmsnorm: bad sizes rows=%lld n=%lld ldx=%lld ldy=%lld", (long long)rows,
                    (long long)n, (long long)ldx, (long long)ldy);
    if (rows == 0) return cudaSuccess;
    ls_rmsnorm_kernel<T><<<(unsigned)rows, LS_RMS_THREADS, 0, stream>>>(x, ldx, n, w, (T)eps, y,
                                                                        ldy);
    return ls_cuda_launched("rmsnorm");
}

#define LS_INST(T, S)                                                                        \
    extern "C" cudaError_t ls_cuda_rmsnorm_##S(const T *x, int64_t ldx, int64_t rows,         \
                                               int64_t n, const T *w, double eps, T *y,       \
                                               int64_t ldy, cudaStream_t stream) {            \
        return ls_rmsnorm<T>(x, ldx, rows, n, w, eps, y, ldy, stream);                        \
    }
LS_INST(float, f32)
LS_INST(double, f64)
