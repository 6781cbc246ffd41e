/* Fast-mode MoE expert linear through cuBLAS: the same product as ls_cuda_linear_moe (pair p
 * of expert e = y[p] = x[p / x_div] W_e^T), tolerance-compared, never bitwise.
 *
 * ls_cuda_moe_group_tiles splits the pairs into tiles of <= `tile` pairs of one expert.
 * Three launches, no host round trip (the tile count lives on the device):
 *   1. gather, a block per packed row: tile t's pairs are copied into rows tile*t .. of a
 *      packed matrix X (padding rows and the rows of tiles past grp[0] are +0; the
 *      invalid-expert group's rows are NaN, so its outputs are NaN as on the invariant
 *      path); the first row's block also writes the tile's three GEMM pointers (W_e, its X
 *      rows, its Y rows);
 *   2. one batched GEMM over all max_tiles tiles: Y_t (tile x out) = X_t W_e^T, each tile
 *      its own product, so that padding rows never overlap another tile's rows;
 *   3. scatter, a block per packed row: tile t's real rows of Y go back to y[order[...]].
 * The batch count is the host's upper bound ls_cuda_moe_max_tiles_of, so up to n_experts + 1
 * tiles of zeros are multiplied for nothing. A larger tile reads each expert's weights fewer
 * times and gives cuBLAS bigger products, at the price of more padding (the caller picks;
 * bench_gpu measures the choices). Unused tiles point at expert 0's weights. */
#include <limits.h>

#include "kernels/cuda/common.cuh"

/* grid.x = max_tiles * tile (a packed row each), 128 threads */
template <typename T>
__global__ void __launch_bounds__(128)
ls_moe_fast_gather(const T *__restrict__ x, int64_t ldx, int64_t x_div, int64_t pairs,
                   int64_t in, const T *const *__restrict__ w_list, int64_t n_experts,
                   const int32_t *__restrict__ grp, int64_t tile, int64_t out,
                   T *__restrict__ xp, T *__restrict__ yp, const void **ptr) {
    const int64_t q = blockIdx.x, t = q / tile, r = q % tile, nt = gridDim.x / tile;
    const bool live = t < ls_moe_n_tiles(grp);
    const ls_moe_tile td = live ? ls_moe_tile_at(grp, pairs, t) : ls_moe_tile{0, grp, 0};
    const int64_t e = td.group;
    const bool valid = e >= 0 && e < n_experts;
    const bool real = live && r < td.n;
    T *dst = xp + q * in;
    if (real && valid) {
        const T *src = x + ((int64_t)td.pair[r] / x_div) * ldx;
        for (int64_t k = threadIdx.x; k < in; k += blockDim.x) dst[k] = src[k];
    } else {
        const T fill = real ? ls_nan<T>() : (T)0;
        for (int64_t k = threadIdx.x; k < in; k += blockDim.x) dst[k] = fill;
    }
    if (r == 0 && threadIdx.x == 0) {
        ptr[t] = w_list[valid ? e : 0];
        ptr[nt + t] = xp + t * tile * in;
        ptr[2 * nt + t] = yp + t * tile * out;
    }
}

/* grid.x = max_tiles * tile: packed row q of Y back to its pair's row of y, if it has one */
template <typename T>
__global__ void __launch_bounds__(128)
ls_moe_fast_scatter(const T *__restrict__ yp, int64_t pairs, const int32_t *__restrict__ grp,
                    int64_t tile, int64_t out, T *__restrict__ y, int64_t ldy) {
    const int64_t q = blockIdx.x, t = q / tile, r = q % tile;
    if (t >= ls_moe_n_tiles(grp)) return;
    const ls_moe_tile td = ls_moe_tile_at(grp, pairs, t);
    if (r >= td.n) return;
    T *dst = y + (int64_t)td.pair[r] * ldy;
    const T *src = yp + q * out;
    for (int64_t o = threadIdx.x; o < out; o += blockDim.x) dst[o] = src[o];
}

/* Column-major view as in linear_fast.cu: Y_t' (out x tile, ld out) = W'^T (W' is in x out,
 * ld in) X_t' (in x tile, ld in). */
template <typename T>
static cublasStatus_t ls_gemm_batched(cublasHandle_t h, int in, int out, int tile,
                                      const void *const *w, const void *const *x,
                                      void *const *y, int count, int tf32) {
    return cublasGemmBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, tile, in, ls_cublas_one<T>(), w,
                               ls_cublas_type<T>(), in, x, ls_cublas_type<T>(), in,
                               ls_cublas_zero<T>(), y, ls_cublas_type<T>(), out, count,
                               ls_cublas_compute<T>(tf32), CUBLAS_GEMM_DEFAULT);
}

static int64_t ls_mf_mats(int64_t nt, int64_t tile, int64_t in, int64_t out, int64_t esz) {
    return ((nt * tile * (in + out) * esz + 255) / 256) * 256;
}

extern "C" int64_t ls_cuda_linear_moe_fast_ws(int64_t pairs, int64_t n_experts, int64_t tile,
                                              int64_t in, int64_t out, int64_t elem_size) {
    const int64_t nt = ls_cuda_moe_max_tiles_of(pairs, n_experts, tile);
    return ls_mf_mats(nt, tile, in, out, elem_size) + 3 * nt * (int64_t)sizeof(void *);
}

template <typename T>
static cudaError_t ls_linear_moe_fast(cublasHandle_t h, const T *x, int64_t ldx, int64_t x_div,
                                      int64_t pairs, int64_t in, const T *const *w_list,
                                      int64_t n_experts, const int32_t *grp, int64_t tile,
                                      int64_t out, T *y, int64_t ldy, void *ws, int64_t ws_bytes,
                                      int tf32, cudaStream_t stream) {
    LS_CUDA_REQUIRE(h != NULL, "linear_moe_fast: no cuBLAS handle");
    LS_CUDA_REQUIRE(pairs >= 0 && pairs <= LS_CUDA_MOE_MAX_PAIRS && in > 0 && out > 0 &&
                        ldx >= in && ldy >= out && x_div >= 1 && n_experts >= 1 &&
                        n_experts <= LS_CUDA_MOE_MAX_EXPERTS && grp != NULL && tile >= 1 &&
                        tile <= LS_CUDA_MOE_MAX_TILE,
                    "linear_moe_fast: bad sizes pairs=%lld in=%lld out=%lld x_div=%lld "
                    "n_experts=%lld tile=%lld",
                    (long long)pairs, (long long)in, (long long)out, (long long)x_div,
                    (long long)n_experts, (long long)tile);
    if (pairs == 0) return cudaSuccess;
    const int64_t need = ls_cuda_linear_moe_fast_ws(pairs, n_experts, tile, in, out, sizeof(T));
    LS_CUDA_REQUIRE(ws != NULL && ws_bytes >= need && ((uintptr_t)ws & 255) == 0,
                    "linear_moe_fast: the workspace needs %lld bytes, 256-byte aligned (got %lld)",
                    (long long)need, (long long)ws_bytes);
    const int64_t nt = ls_cuda_moe_max_tiles_of(pairs, n_experts, tile), rows = nt * tile;
    LS_CUDA_REQUIRE(nt <= INT_MAX && in <= INT_MAX && out <= INT_MAX && rows <= LS_CUDA_MAX_GRID_X,
                    "linear_moe_fast: sizes beyond cuBLAS's 32-bit API");
    T *xp = (T *)ws, *yp = xp + rows * in;
    const void **ptr = (const void **)((char *)ws + ls_mf_mats(nt, tile, in, out, sizeof(T)));
    ls_moe_fast_gather<T><<<(unsigned)rows, 128, 0, stream>>>(
        x, ldx, x_div, pairs, in, w_list, n_experts, grp, tile, out, xp, yp, ptr);
    cudaError_t ce = ls_cuda_launched("linear_moe_fast gather");
    if (ce != cudaSuccess) return ce;
    cublasStatus_t st = cublasSetStream(h, stream);
    if (st == CUBLAS_STATUS_SUCCESS) {
        st = ls_gemm_batched<T>(h, (int)in, (int)out, (int)tile, ptr, ptr + nt,
                                (void *const *)(ptr + 2 * nt), (int)nt, tf32);
    }
    if (st != CUBLAS_STATUS_SUCCESS)
        return ls_cuda_fail(cudaErrorUnknown, "linear_moe_fast: cuBLAS failed: %s",
                            cublasGetStatusString(st));
    ls_moe_fast_scatter<T><<<(unsigned)rows, 128, 0, stream>>>(yp, pairs, grp, tile, out, y, ldy);
    return ls_cuda_launched("linear_moe_fast scatter");
}

#define LS_INST(T, S)                                                                          \
    extern "C" cudaError_t ls_cuda_linear_moe_fast_##S(                                         \
        cublasHandle_t handle, const T *x, int64_t ldx, int64_t x_div, int64_t pairs,           \
        int64_t in, const T *const *w_list, int64_t n_experts, const int32_t *grp, int64_t tile, \
        int64_t out, T *y, int64_t ldy, void *ws, int64_t ws_bytes, int allow_tf32,             \
        cudaStream_t stream) {                                                                  \
        return ls_linear_moe_fast<T>(handle, x, ldx, x_div, pairs, in, w_list, n_experts, grp,   \
                                     tile, out, y, ldy, ws, ws_bytes, allow_tf32, stream);      \
    }
LS_INST(float, f32)
LS_INST(double, f64)
