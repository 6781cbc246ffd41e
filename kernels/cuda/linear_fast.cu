/* Fast-mode linear through cuBLAS: y = x W^T (+ b). Row-major y[rows][out] is the
 * column-major matrix Y' (out x rows, ld = ldy); row-major W[out][in] is column-major
 * W' (in x out, ld = in); so Y' = W'^T X'. cuBLAS picks its algorithm (and any split-K)
 * from the shape, so results are deterministic for one shape on one GPU but NOT batch
 * invariant: a row's bits may change with the number of rows. Tolerance-compared only. */
#include <limits.h>

#include "kernels/cuda/common.cuh"

template <typename T>
__global__ void ls_bias_kernel(T *y, int64_t ldy, int64_t rows, int64_t out, const T *b) {
    const int64_t total = rows * out;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t m = i / out, o = i % out;
        y[m * ldy + o] = y[m * ldy + o] + b[o];
    }
}

static cublasStatus_t ls_gemm(cublasHandle_t h, int rows, int in, int out, const float *x,
                              int ldx, const float *w, float *y, int ldy, int tf32) {
    const float one = 1.0f, zero = 0.0f;
    if (tf32)
        return cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, w, CUDA_R_32F, in,
                            x, CUDA_R_32F, ldx, &zero, y, CUDA_R_32F, ldy,
                            CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT);
    return cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, w, CUDA_R_32F, in, x,
                        CUDA_R_32F, ldx, &zero, y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F_PEDANTIC,
                        CUBLAS_GEMM_DEFAULT);
}
static cublasStatus_t ls_gemm(cublasHandle_t h, int rows, int in, int out, const double *x,
                              int ldx, const double *w, double *y, int ldy, int tf32) {
    (void)tf32;
    const double one = 1.0, zero = 0.0;
    return cublasDgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, w, in, x, ldx, &zero, y,
                       ldy);
}

template <typename T>
static cudaError_t ls_linear_fast(cublasHandle_t h, const T *x, int64_t ldx, int64_t rows,
                                  int64_t in, const T *w, const T *b, int64_t out, T *y,
                                  int64_t ldy, int tf32, cudaStream_t stream) {
    LS_CUDA_REQUIRE(h && rows >= 0 && in > 0 && out > 0 && ldx >= in && ldy >= out,
                    "linear_fast: bad arguments rows=%lld in=%lld out=%lld", (long long)rows,
                    (long long)in, (long long)out);
    LS_CUDA_REQUIRE(rows <= INT_MAX && in <= INT_MAX && out <= INT_MAX && ldx <= INT_MAX &&
                        ldy <= INT_MAX,
                    "linear_fast: sizes beyond cuBLAS's 32-bit API");
    if (rows == 0) return cudaSuccess;
    cublasStatus_t st = cublasSetStream(h, stream);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = ls_gemm(h, (int)rows, (int)in, (int)out, x, (int)ldx, w, y, (int)ldy, tf32);
    if (st != CUBLAS_STATUS_SUCCESS)
        return ls_cuda_fail(cudaErrorUnknown, "linear_fast: cuBLAS failed: %s",
                            cublasGetStatusString(st));
    if (b) {
        const int64_t total = rows * out;
        const unsigned blocks = ls_cuda_stride_blocks(total);
        ls_bias_kernel<T><<<blocks, 256, 0, stream>>>(y, ldy, rows, out, b);
        return ls_cuda_launched("linear_fast bias");
    }
    return ls_cuda_launched("linear_fast");
}

/* Split-K (ls_cuda_linear_fast_split_*): the K range cut into `S` equal slices, one product
 * per slice in one strided batched GEMM into partials [S][rows][out], then one kernel sums
 * the slices in slice order (and adds the bias). For the shapes with few outputs and a long
 * K (x_proj: 4096 -> 160, the router: 2048 -> 8) cuBLAS otherwise runs a grid of a few
 * blocks, each walking all of K (bench_gpu: x_proj at 256 rows 15.5 us in TF32 for 0.34
 * GFLOP). Deterministic (fixed slices, fixed order), tolerance-compared. */
template <typename T>
__global__ void ls_split_sum_kernel(const T *part, int64_t S, int64_t rows, int64_t out,
                                    const T *b, T *y, int64_t ldy) {
    const int64_t total = rows * out;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        T acc = part[i];
        for (int64_t q = 1; q < S; q++) acc += part[q * total + i];
        const int64_t m = i / out, o = i % out;
        y[m * ldy + o] = b ? acc + b[o] : acc;
    }
}

extern "C" int64_t ls_cuda_linear_split_k(int64_t rows, int64_t in, int64_t out) {
    if (rows < LS_CUDA_SPLIT_MIN_ROWS || out > LS_CUDA_SPLIT_MAX_OUT || in < 2 * LS_CUDA_SPLIT_MIN_K)
        return 1;
    for (int64_t S = LS_CUDA_SPLIT_MAX; S >= 2; S /= 2)
        if (in % S == 0 && in / S >= LS_CUDA_SPLIT_MIN_K) return S;
    return 1;
}

extern "C" int64_t ls_cuda_linear_fast_split_ws(int64_t rows, int64_t in, int64_t out,
                                                int64_t elem_size) {
    const int64_t S = ls_cuda_linear_split_k(rows, in, out);
    return S > 1 ? S * rows * out * elem_size : 0;
}

template <typename T>
static cudaError_t ls_linear_fast_split(cublasHandle_t h, const T *x, int64_t ldx, int64_t rows,
                                        int64_t in, const T *w, const T *b, int64_t out, T *y,
                                        int64_t ldy, int tf32, void *ws, int64_t ws_bytes,
                                        cudaStream_t stream) {
    const int64_t S = ls_cuda_linear_split_k(rows, in, out);
    if (S <= 1 || !ws || ws_bytes < S * rows * out * (int64_t)sizeof(T) || rows > INT_MAX ||
        in > INT_MAX || out > INT_MAX || ldx > INT_MAX)
        return ls_linear_fast<T>(h, x, ldx, rows, in, w, b, out, y, ldy, tf32, stream);
    LS_CUDA_REQUIRE(h && rows >= 0 && in > 0 && out > 0 && ldx >= in && ldy >= out,
                    "linear_fast_split: bad arguments rows=%lld in=%lld out=%lld",
                    (long long)rows, (long long)in, (long long)out);
    const int64_t ks = in / S;
    T *part = (T *)ws;
    /* column-major as above, per slice q: P_q' (out x rows, ld out) = W_q'^T X_q', where W_q'
     * and X_q' are the slice's K rows of W' (ld in) and X' (ld ldx) */
    const float onef = 1.0f, zerof = 0.0f;
    const double oned = 1.0, zerod = 0.0;
    const int f64 = sizeof(T) == 8;
    cublasStatus_t st = cublasSetStream(h, stream);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasGemmStridedBatchedEx(
            h, CUBLAS_OP_T, CUBLAS_OP_N, (int)out, (int)rows, (int)ks,
            f64 ? (const void *)&oned : (const void *)&onef, w, ls_cublas_type<T>(), (int)in,
            (long long)ks, x, ls_cublas_type<T>(), (int)ldx, (long long)ks,
            f64 ? (const void *)&zerod : (const void *)&zerof, part, ls_cublas_type<T>(), (int)out,
            (long long)(rows * out), (int)S, ls_cublas_compute<T>(tf32), CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        return ls_cuda_fail(cudaErrorUnknown, "linear_fast_split: cuBLAS failed: %s",
                            cublasGetStatusString(st));
    ls_split_sum_kernel<T><<<ls_cuda_stride_blocks(rows * out), 256, 0, stream>>>(
        part, S, rows, out, b, y, ldy);
    return ls_cuda_launched("linear_fast_split sum");
}

#define LS_INST(T, S)                                                                        \
    extern "C" cudaError_t ls_cuda_linear_fast_##S(cublasHandle_t handle, const T *x,         \
                                                   int64_t ldx, int64_t rows, int64_t in,     \
                                                   const T *w, const T *b, int64_t out, T *y, \
                                                   int64_t ldy, int allow_tf32,               \
                                                   cudaStream_t stream) {                     \
        return ls_linear_fast<T>(handle, x, ldx, rows, in, w, b, out, y, ldy, allow_tf32,     \
                                 stream);                                                     \
    }                                                                                         \
    extern "C" cudaError_t ls_cuda_linear_fast_split_##S(                                       \
        cublasHandle_t handle, const T *x, int64_t ldx, int64_t rows, int64_t in, const T *w,   \
        const T *b, int64_t out, T *y, int64_t ldy, int allow_tf32, void *ws, int64_t ws_bytes, \
        cudaStream_t stream) {                                                                  \
        return ls_linear_fast_split<T>(handle, x, ldx, rows, in, w, b, out, y, ldy, allow_tf32, \
                                       ws, ws_bytes, stream);                                  \
    }
LS_INST(float, f32)
LS_INST(double, f64)
