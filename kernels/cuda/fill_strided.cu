/* Strided bit-pattern fill: `count` runs of `n` elements, run c starting at element
 * c * stride, each element set to the same 4- or 8-byte pattern. The engine poisons its
 * whole Mamba state pool with one launch per layer (every slot's state, not the padding
 * between states), and one freed slot with count = 1. Indices in 64-bit. */
#include "kernels/cuda/common.cuh"

template <typename U>
__global__ void ls_fill_strided_kernel(U *p, int64_t n, int64_t count, int64_t stride, U v) {
    const int64_t total = n * count;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t c = i / n, j = i - c * n;
        p[c * stride + j] = v;
    }
}

extern "C" cudaError_t ls_cuda_fill_strided(void *p, int64_t elem_bytes, int64_t n, int64_t count,
                                            int64_t stride, uint64_t bits, cudaStream_t stream) {
    LS_CUDA_REQUIRE(n >= 0 && count >= 0 && (elem_bytes == 4 || elem_bytes == 8) &&
                        (count <= 1 || stride >= n) && (n == 0 || count == 0 || p),
                    "fill_strided: bad arguments (elem %lld, n %lld, count %lld, stride %lld)",
                    (long long)elem_bytes, (long long)n, (long long)count, (long long)stride);
    LS_CUDA_REQUIRE(count == 0 || n <= INT64_MAX / count, "fill_strided: n x count overflows");
    if (n == 0 || count == 0) return cudaSuccess;
    const int64_t total = n * count;
    const unsigned blocks = ls_cuda_stride_blocks(total);
    if (elem_bytes == 8)
        ls_fill_strided_kernel<uint64_t><<<blocks, 256, 0, stream>>>(
            (uint64_t *)p, n, count, stride, (uint64_t)bits);
    else
        ls_fill_strided_kernel<uint32_t><<<blocks, 256, 0, stream>>>(
            (uint32_t *)p, n, count, stride, (uint32_t)bits);
    return ls_cuda_launched("fill_strided");
}
