/* Elementwise ops of the forward pass, written as kernels/activations.c and forward.c
 * write them: softplus (threshold 20), silu(g) * up (flat, or over rows with strides: fast
 * mode's fused gate/up product), x + y, and a fill (poison / zero). */
#include "kernels/cuda/common.cuh"

#define LS_EW_BLOCKS(n) ls_cuda_stride_blocks(n)
#define LS_EW_LOOP(i, n)                                                    \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); \
         i += (int64_t)gridDim.x * blockDim.x)

template <typename T> __global__ void ls_softplus_kernel(T *x, int64_t n) {
    LS_EW_LOOP(i, n) x[i] = ls_softplus(x[i]);
}
template <typename T>
__global__ void ls_silu_mul_kernel(const T *g, const T *up, T *act, int64_t n) {
    LS_EW_LOOP(i, n) act[i] = ls_silu(g[i]) * up[i];
}
/* Rows over grid y, columns over grid x (each a grid-stride loop): no 64-bit division per
 * element (i / n and i % n cost more than the element's own work). */
template <typename T>
__global__ void ls_silu_mul_rows_kernel(const T *g, int64_t ldg, const T *up, int64_t ldu,
                                        int64_t rows, int64_t n, T *act, int64_t lda) {
    ls_pdl_wait();
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
        for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < n;
             c += (int64_t)gridDim.x * blockDim.x)
            act[r * lda + c] = ls_silu(g[r * ldg + c]) * up[r * ldu + c];
}
/* The same with 4 consecutive columns per thread in 16-byte moves (n and the strides
 * multiples of 4, the arrays 16-byte aligned): a quarter of the threads and of the memory
 * instructions for the same bytes; each element's operations unchanged. */
template <typename T>
__global__ void ls_silu_mul_rows4_kernel(const T *g, int64_t ldg, const T *up, int64_t ldu,
                                         int64_t rows, int64_t n4, T *act, int64_t lda) {
    ls_pdl_wait();
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
        for (int64_t c = 4 * (blockIdx.x * (int64_t)blockDim.x + threadIdx.x); c < 4 * n4;
             c += 4 * (int64_t)gridDim.x * blockDim.x) {
            T gv[4], uv[4];
            ls_ld16(g + r * ldg + c, gv);
            ls_ld16(up + r * ldu + c, uv);
#pragma unroll
            for (int k = 0; k < 4; k++) gv[k] = ls_silu(gv[k]) * uv[k];
            ls_st16(act + r * lda + c, gv);
        }
}
static inline bool ls_aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }
template <typename T> __global__ void ls_add_kernel(T *x, const T *y, int64_t n) {
    LS_EW_LOOP(i, n) x[i] = x[i] + y[i];
}
template <typename T> __global__ void ls_fill_kernel(T *p, int64_t n, T v) {
    LS_EW_LOOP(i, n) p[i] = v;
}

#define LS_INST(T, S)                                                                        \
    extern "C" cudaError_t ls_cuda_softplus_##S(T *x, int64_t n, cudaStream_t stream) {       \
        LS_CUDA_REQUIRE(n >= 0, "softplus: n < 0");                                           \
        if (n == 0) return cudaSuccess;                                                       \
        ls_softplus_kernel<T><<<LS_EW_BLOCKS(n), 256, 0, stream>>>(x, n);                     \
        return ls_cuda_launched("softplus");                                                  \
    }                                                                                         \
    extern "C" cudaError_t ls_cuda_silu_mul_##S(const T *g, const T *up, T *act, int64_t n,   \
                                                cudaStream_t stream) {                        \
        LS_CUDA_REQUIRE(n >= 0, "silu_mul: n < 0");                                           \
        if (n == 0) return cudaSuccess;                                                       \
        ls_silu_mul_kernel<T><<<LS_EW_BLOCKS(n), 256, 0, stream>>>(g, up, act, n);            \
        return ls_cuda_launched("silu_mul");                                                  \
    }                                                                                         \
    extern "C" cudaError_t ls_cuda_silu_mul_rows_##S(const T *g, int64_t ldg, const T *up,    \
                                                     int64_t ldu, int64_t rows, int64_t n,    \
                                                     T *act, int64_t lda, cudaStream_t stream) { \
        LS_CUDA_REQUIRE(rows >= 0 && n >= 0 && ldg >= n && ldu >= n && lda >= n,              \
                        "silu_mul_rows: bad sizes rows=%lld n=%lld", (long long)rows,         \
                        (long long)n);                                                        \
        if (rows == 0 || n == 0) return cudaSuccess;                                          \
        if (n % 4 == 0 && ldg % 4 == 0 && ldu % 4 == 0 && lda % 4 == 0 && ls_aligned16(g) &&  \
            ls_aligned16(up) && ls_aligned16(act))                                            \
            return ls_launch_pdl("silu_mul_rows", ls_silu_mul_rows4_kernel<T>,              \
                                 ls_rows_grid(rows, n / 4), dim3(256), stream, g, ldg, up,    \
                                 ldu, rows, n / 4, act, lda);                                 \
        return ls_launch_pdl("silu_mul_rows", ls_silu_mul_rows_kernel<T>, ls_rows_grid(rows, n), \
                             dim3(256), stream, g, ldg, up, ldu, rows, n, act, lda);          \
    }                                                                                         \
    extern "C" cudaError_t ls_cuda_add_##S(T *x, const T *y, int64_t n, cudaStream_t stream) { \
        LS_CUDA_REQUIRE(n >= 0, "add: n < 0");                                                \
        if (n == 0) return cudaSuccess;                                                       \
        ls_add_kernel<T><<<LS_EW_BLOCKS(n), 256, 0, stream>>>(x, y, n);                       \
        return ls_cuda_launched("add");                                                       \
    }                                                                                         \
    extern "C" cudaError_t ls_cuda_fill_##S(T *p, int64_t n, T value, cudaStream_t stream) {  \
        LS_CUDA_REQUIRE(n >= 0, "fill: n < 0");                                               \
        if (n == 0) return cudaSuccess;                                                       \
        ls_fill_kernel<T><<<LS_EW_BLOCKS(n), 256, 0, stream>>>(p, n, value);                  \
        return ls_cuda_launched("fill");                                                      \
    }
LS_INST(float, f32)
LS_INST(double, f64)
