/* Fast-mode linear through cuBLAS: y = x W^T (+ b). Row-major y[rows][out] is the
 * column-major matrix Y' (out x rows, ld = ldy); row-major W[out][in] is column-major
 * W' (in x out, ld = in); so Y' = W'^T X'. cuBLAS picks its algorithm (and any split-K)
 * from the shape, so results are deterministic for one shape on one GPU but NOT batch
 * invariant: a row's bits may change with the number of rows. Tolerance-compared only. */
#include <limits.h>

#include "kernels/cuda/common.cuh"

/* Rows over grid y, outputs over grid x: no 64-bit division per element. */
template <typename T>
__global__ void ls_bias_kernel(T *y, int64_t ldy, int64_t rows, int64_t out, const T *b) {
    for (int64_t m = blockIdx.y; m < rows; m += gridDim.y)
        for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < out;
             o += (int64_t)gridDim.x * blockDim.x)
            y[m * ldy + o] = y[m * ldy + o] + b[o];
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
        ls_bias_kernel<T><<<ls_rows_grid(rows, out), 256, 0, stream>>>(y, ldy, rows, out, b);
        return ls_cuda_launched("linear_fast bias");
    }
    return ls_cuda_launched("linear_fast");
}

#define LS_INST(T, S)                                                                        \
    extern "C" cudaError_t ls_cuda_linear_fast_##S(cublasHandle_t handle, const T *x,         \
                                                   int64_t ldx, int64_t rows, int64_t in,     \
                                                   const T *w, const T *b, int64_t out, T *y, \
                                                   int64_t ldy, int allow_tf32,               \
                                                   cudaStream_t stream) {                     \
        return ls_linear_fast<T>(handle, x, ldx, rows, in, w, b, out, y, ldy, allow_tf32,     \
                                 stream);                                                     \
    }
LS_INST(float, f32)
LS_INST(double, f64)
