/* Shared by the kernels/cuda .cu files: error reporting, device math written exactly as
 * kernels/activations.c, and the instantiation helper. Not part of the public API. */
#ifndef LS_CUDA_COMMON_CUH
#define LS_CUDA_COMMON_CUH

#include <math.h>
#include <stdint.h>

#include "kernels/cuda/kernels_cuda.h"
#include "kernels/kernels.h"

/* Records a message for ls_cuda_error_message() and returns `e`. */
cudaError_t ls_cuda_fail(cudaError_t e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* After a launch: the launch error, with the kernel's name in the message. */
cudaError_t ls_cuda_launched(const char *what);

/* Programmatic dependent launch (Hopper): ls_launch_pdl lets the GPU start a kernel's blocks
 * as the kernel before it in the stream drains, instead of after it has completed and the
 * launch has gone through. The kernel calls ls_pdl_wait() before its first memory access,
 * which returns once that previous kernel has completed and its writes are visible: nothing
 * is read or written early, only the gap between the two kernels shrinks. After a plain
 * launch the wait returns at once. */
__device__ __forceinline__ void ls_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900   /* the build targets sm_90 only */
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

template <typename... P, typename... A>
static cudaError_t ls_launch_pdl(const char *what, void (*kernel)(P...), dim3 grid, dim3 block,
                                 cudaStream_t stream, A... args) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.stream = stream;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, args...);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return ls_cuda_fail(e, "%s: launch failed: %s", what, cudaGetErrorString(e));
    }
    return ls_cuda_launched(what);
}

#define LS_CUDA_REQUIRE(cond, ...) \
    do { if (!(cond)) return ls_cuda_fail(cudaErrorInvalidValue, __VA_ARGS__); } while (0)

/* Grid sizes: x up to 2^31-1, y and z up to 65535. */
#define LS_CUDA_MAX_GRID_X 2147483647LL
#define LS_CUDA_MAX_GRID_YZ 65535LL

static inline int64_t ls_cuda_cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Blocks of 256 threads for a grid-stride loop over n elements: one element per thread, at
 * most 65536 blocks (the loop covers the rest). */
static inline unsigned ls_cuda_stride_blocks(int64_t n) {
    const int64_t b = ls_cuda_cdiv(n, 256);
    return (unsigned)(b > 65536 ? 65536 : b);
}

/* The grid of a rows x n double loop (rows over grid y, columns over grid x, each a
 * grid-stride loop) with 256-thread blocks: no division per element. */
static inline dim3 ls_rows_grid(int64_t rows, int64_t n) {
    const int64_t bx = ls_cuda_cdiv(n, 256);
    const int64_t by = rows < LS_CUDA_MAX_GRID_YZ ? rows : LS_CUDA_MAX_GRID_YZ;
    return dim3((unsigned)(bx < 65536 ? bx : 65536), (unsigned)(by > 0 ? by : 1));
}

/* a * b + c rounded once: the invariant linear's one fused operation (kernels/matmul.c's
 * LS_FMA; -fmad=false leaves every other product and sum separate) */
__device__ __forceinline__ float ls_fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double ls_fma(double a, double b, double c) { return __fma_rn(a, b, c); }

/* Device math: the same formulas as kernels/activations.c (CUDA's exp/log/log1p, which may
 * round differently from glibc's on some inputs; +,-,*,/,sqrt are IEEE and identical). */
__device__ __forceinline__ float ls_exp(float x) { return expf(x); }
__device__ __forceinline__ double ls_exp(double x) { return exp(x); }
__device__ __forceinline__ float ls_log(float x) { return logf(x); }
__device__ __forceinline__ double ls_log(double x) { return log(x); }
__device__ __forceinline__ float ls_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double ls_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float ls_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double ls_sqrt(double x) { return sqrt(x); }

template <typename T> __device__ __forceinline__ T ls_silu(T x) {
    return x / ((T)1 + ls_exp(-x));
}
template <typename T> __device__ __forceinline__ T ls_softplus(T x) {
    return x > (T)20 ? x : ls_log1p(ls_exp(x));
}
/* kernels/lanesum.c's fold in a block of LS_SUM_LANES threads: thread l brings lane l's
 * partial sum; the halving tree lane[l] += lane[l + h], h = 128 .. 32 through `buf` (shared,
 * LS_SUM_LANES entries), h = 16 .. 1 by shuffles inside warp 0 (lane l receives lane l + h,
 * the same addition). Every thread gets the sum. Ends with a barrier, so `buf` may be reused. */
template <typename T> __device__ T ls_block_lanes_reduce(T v, T *buf) {
    const int l = threadIdx.x;
    buf[l] = v;
    __syncthreads();
    for (int h = LS_SUM_LANES / 2; h >= 32; h /= 2) {
        if (l < h) buf[l] += buf[l + h];
        __syncthreads();
    }
    if (l < 32) {
        T x = buf[l];
        for (int h = 16; h > 0; h /= 2) x += __shfl_down_sync(0xffffffffu, x, h);
        if (l == 0) buf[0] = x;
    }
    __syncthreads();
    const T sum = buf[0];
    __syncthreads();
    return sum;
}

/* The same fold inside one warp, for rows of few elements: lane t of the warp brings the
 * partial sums of the block's lanes t + 32 m (m = 0..7) in s[m]; the tree's steps h = 128,
 * 64, 32 become s[m] += s[m + h / 32] in registers, then the shuffles of warp 0 above. The
 * same additions in the same order, so the same bits; no shared memory, no barrier. Every
 * lane gets the sum. */
template <typename T> __device__ T ls_warp_lanes_reduce(T (&s)[LS_SUM_LANES / 32]) {
    static_assert(LS_SUM_LANES == 256, "the fold below is written for 256 lanes");
#pragma unroll
    for (int m = 0; m < 4; m++) s[m] += s[m + 4];
#pragma unroll
    for (int m = 0; m < 2; m++) s[m] += s[m + 2];
    T x = s[0] + s[1];
    for (int h = 16; h > 0; h /= 2) x += __shfl_down_sync(0xffffffffu, x, h);
    return __shfl_sync(0xffffffffu, x, 0);
}

/* N consecutive elements (N a multiple of 4 for float, of 2 for double) between memory and
 * registers in 16-byte moves; p must be 16-byte aligned (shared or global memory). */
template <int N> __device__ __forceinline__ void ls_ld16(const float *p, float (&r)[N]) {
#pragma unroll
    for (int q = 0; q < N / 4; q++) {
        const float4 v = reinterpret_cast<const float4 *>(p)[q];
        r[4 * q] = v.x, r[4 * q + 1] = v.y, r[4 * q + 2] = v.z, r[4 * q + 3] = v.w;
    }
}
template <int N> __device__ __forceinline__ void ls_ld16(const double *p, double (&r)[N]) {
#pragma unroll
    for (int q = 0; q < N / 2; q++) {
        const double2 v = reinterpret_cast<const double2 *>(p)[q];
        r[2 * q] = v.x, r[2 * q + 1] = v.y;
    }
}
template <int N> __device__ __forceinline__ void ls_st16(float *p, const float (&r)[N]) {
#pragma unroll
    for (int q = 0; q < N / 4; q++)
        reinterpret_cast<float4 *>(p)[q] =
            make_float4(r[4 * q], r[4 * q + 1], r[4 * q + 2], r[4 * q + 3]);
}
template <int N> __device__ __forceinline__ void ls_st16(double *p, const double (&r)[N]) {
#pragma unroll
    for (int q = 0; q < N / 2; q++)
        reinterpret_cast<double2 *>(p)[q] = make_double2(r[2 * q], r[2 * q + 1]);
}

/* Tile t of an ls_cuda_moe_group table (layout in kernels_cuda.h), the one reader of that
 * layout on the device: the tile's group (an expert; n_experts is the invalid group), its
 * pairs in sorted order (pair[0 .. n - 1]) and their count n. n_tiles: how many tiles the
 * table holds. */
struct ls_moe_tile {
    int64_t group;
    const int32_t *pair;
    int n;
};
__device__ __forceinline__ int64_t ls_moe_n_tiles(const int32_t *grp) { return grp[0]; }
__device__ __forceinline__ ls_moe_tile ls_moe_tile_at(const int32_t *grp, int64_t pairs,
                                                      int64_t t) {
    const int32_t *d = grp + 1 + pairs + 3 * t;
    return {d[0], grp + 1 + d[1], d[2]};
}

template <typename T> __device__ __forceinline__ T ls_nan();
template <> __device__ __forceinline__ float ls_nan<float>() { return __int_as_float(0x7fc00000); }
template <> __device__ __forceinline__ double ls_nan<double>() {
    return __longlong_as_double(0x7ff8000000000000LL);
}

/* Fast mode's cuBLAS types for T: fp64 in fp64; fp32 pedantic, or with TF32 tensor cores
 * when tf32 (the one place that choice is written for the batched GEMMs). */
template <typename T> static inline cudaDataType_t ls_cublas_type() {
    return sizeof(T) == 8 ? CUDA_R_64F : CUDA_R_32F;
}
template <typename T> static inline cublasComputeType_t ls_cublas_compute(int tf32) {
    return sizeof(T) == 8 ? CUBLAS_COMPUTE_64F
           : tf32         ? CUBLAS_COMPUTE_32F_FAST_TF32
                          : CUBLAS_COMPUTE_32F_PEDANTIC;
}
/* alpha = 1 and beta = 0 in T (the scalar type of each compute type above), host memory */
template <typename T> static inline const void *ls_cublas_one() {
    static const T v = 1;
    return &v;
}
template <typename T> static inline const void *ls_cublas_zero() {
    static const T v = 0;
    return &v;
}

#endif
