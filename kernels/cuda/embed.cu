/* Embedding gather: one block per row. */
#include "kernels/cuda/common.cuh"

template <typename T>
__global__ void ls_embed_kernel(const int32_t *__restrict__ tokens, const T *__restrict__ table,
                                int64_t vocab, int64_t H, T *__restrict__ x) {
    const int64_t r = blockIdx.x;
    const int32_t t = tokens[r];
    T *xr = x + r * H;
    if (t < 0 || (int64_t)t >= vocab) {
        for (int64_t j = threadIdx.x; j < H; j += blockDim.x) xr[j] = ls_nan<T>();
        return;
    }
    const T *src = table + (int64_t)t * H;
    for (int64_t j = threadIdx.x; j < H; j += blockDim.x) xr[j] = src[j];
}

template <typename T>
static cudaError_t ls_embed(const int32_t *tokens, int64_t rows, const T *table, int64_t vocab,
                            int64_t H, T *x, cudaStream_t stream) {
    LS_CUDA_REQUIRE(rows >= 0 && rows <= LS_CUDA_MAX_GRID_X && vocab > 0 && H > 0,
                    "embed: bad sizes rows=%lld vocab=%lld H=%lld", (long long)rows,
                    (long long)vocab, (long long)H);
    if (rows == 0) return cudaSuccess;
    ls_embed_kernel<T><<<(unsigned)rows, 256, 0, stream>>>(tokens, table, vocab, H, x);
    return ls_cuda_launched("embed");
}

#define LS_INST(T, S)                                                                      \
    extern "C" cudaError_t ls_cuda_embed_##S(const int32_t *tokens, int64_t rows,           \
                                             const T *table, int64_t vocab, int64_t H, T *x, \
                                             cudaStream_t stream) {                          \
        return ls_embed<T>(tokens, rows, table, vocab, H, x, stream);                       \
    }
LS_INST(float, f32)
LS_INST(double, f64)
