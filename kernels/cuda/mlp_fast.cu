/* Fast mode's MLP over every expert of a layer: for each row r and expert e < E,
 *   y[r*E + e] (H wide) = W_down_e (silu(W_gate_e x_r) * (W_up_e x_r)).
 * The gate and up weights of all experts are one [2*E*I][H] matrix (gate_0 .. gate_{E-1},
 * then up_0 .. up_{E-1}) and the down weights one [E][H][I] block (engine/backend_cuda.c
 * uploads them so), which makes the whole MLP three launches:
 *   1. one GEMM: gu [rows][2*E*I] = x W_gu^T (the gates in columns [0, E*I), the ups after);
 *   2. silu_mul over the rows: act [rows][E*I] = silu(gate) * up;
 *   3. one strided batched GEMM over the experts: y[r*E + e] = act[r][e*I .. e*I + I) W_down_e^T.
 * With E = 1 this is a dense MLP with its gate and up products fused into one GEMM. For a
 * MoE layer it computes E / k times the products the routed pairs need, but it gathers,
 * scatters and groups nothing and reads each expert's weights once, in cuBLAS's largest
 * shapes: faster where the layer is bound by its weights' bytes (enough rows that every
 * expert is touched, few enough that the extra products stay cheap; ls_cuda_moe_dense_fast
 * in kernels_cuda.h says where, from bench_gpu's measurements). ls_cuda_moe_combine_dense
 * then sums each row's k chosen experts. Tolerance-compared, never bitwise. */
#include <limits.h>

#include "kernels/cuda/common.cuh"

static cudaError_t ls_gu(cublasHandle_t h, const float *x, int64_t ldx, int64_t rows, int64_t H,
                         const float *w, int64_t n, float *gu, int tf32, cudaStream_t s) {
    return ls_cuda_linear_fast_f32(h, x, ldx, rows, H, w, NULL, n, gu, n, tf32, s);
}
static cudaError_t ls_gu(cublasHandle_t h, const double *x, int64_t ldx, int64_t rows, int64_t H,
                         const double *w, int64_t n, double *gu, int tf32, cudaStream_t s) {
    return ls_cuda_linear_fast_f64(h, x, ldx, rows, H, w, NULL, n, gu, n, tf32, s);
}
static cudaError_t ls_act(const float *gu, int64_t rows, int64_t n, float *act, cudaStream_t s) {
    return ls_cuda_silu_mul_rows_f32(gu, 2 * n, gu + n, 2 * n, rows, n, act, n, s);
}
static cudaError_t ls_act(const double *gu, int64_t rows, int64_t n, double *act, cudaStream_t s) {
    return ls_cuda_silu_mul_rows_f64(gu, 2 * n, gu + n, 2 * n, rows, n, act, n, s);
}

template <typename T>
static cudaError_t ls_mlp_fast(cublasHandle_t h, const T *x, int64_t ldx, int64_t rows,
                               int64_t H, int64_t I, int64_t E, const T *w_gu, const T *w_down,
                               T *gu, T *act, T *y, int tf32, cudaStream_t stream) {
    LS_CUDA_REQUIRE(h && rows >= 0 && H > 0 && I > 0 && E >= 1 && ldx >= H && w_gu && w_down &&
                        gu && act && y,
                    "mlp_fast: bad arguments rows=%lld H=%lld I=%lld E=%lld", (long long)rows,
                    (long long)H, (long long)I, (long long)E);
    LS_CUDA_REQUIRE(rows <= INT_MAX && E <= INT_MAX / 2 / I && E <= INT_MAX / H &&
                        H <= INT64_MAX / I,
                    "mlp_fast: sizes beyond cuBLAS's 32-bit API");
    if (rows == 0) return cudaSuccess;
    const int64_t EI = E * I;
    cudaError_t ce = ls_gu(h, x, ldx, rows, H, w_gu, 2 * EI, gu, tf32, stream);
    if (ce == cudaSuccess) ce = ls_act(gu, rows, EI, act, stream);
    if (ce != cudaSuccess) return ce;
    /* column-major, as linear_fast.cu: expert e's Y' (H x rows, ld E*H, at y + e*H) =
     * W'^T (W' = down_e as I x H, ld I) A' (I x rows, ld E*I, at act + e*I) */
    cublasStatus_t st = cublasSetStream(h, stream);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasGemmStridedBatchedEx(
            h, CUBLAS_OP_T, CUBLAS_OP_N, (int)H, (int)rows, (int)I, ls_cublas_one<T>(), w_down,
            ls_cublas_type<T>(), (int)I, (long long)(H * I), act, ls_cublas_type<T>(), (int)EI,
            (long long)I, ls_cublas_zero<T>(), y, ls_cublas_type<T>(), (int)(E * H),
            (long long)H, (int)E, ls_cublas_compute<T>(tf32), CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        return ls_cuda_fail(cudaErrorUnknown, "mlp_fast: cuBLAS failed: %s",
                            cublasGetStatusString(st));
    return ls_cuda_launched("mlp_fast");
}

#define LS_INST(T, S)                                                                          \
    extern "C" cudaError_t ls_cuda_mlp_fast_##S(cublasHandle_t handle, const T *x, int64_t ldx, \
                                                int64_t rows, int64_t H, int64_t I, int64_t E,  \
                                                const T *w_gu, const T *w_down, T *gu, T *act,  \
                                                T *y, int allow_tf32, cudaStream_t stream) {    \
        return ls_mlp_fast<T>(handle, x, ldx, rows, H, I, E, w_gu, w_down, gu, act, y,        \
                              allow_tf32, stream);                                              \
    }
LS_INST(float, f32)
LS_INST(double, f64)
