/* Batched copies: one launch copies (or zero-fills) many independent byte ranges, the
 * descriptors read from device memory. The CUDA backend queues its copy / zero ops and
 * runs each conflict-free wave of the queue (engine/copy_plan.h) through here, instead of
 * one cudaMemcpyAsync per op. grid.y indexes the ops (a launch per 65535), grid.x strides
 * over the units of the largest op; sizes and offsets are 64-bit. */
#include <stdint.h>

#include "kernels/cuda/common.cuh"

template <typename U>
__global__ void ls_copy_batch_kernel(const ls_copy_op *ops) {
    const ls_copy_op op = ops[blockIdx.y];
    const int64_t units = op.bytes / (int64_t)sizeof(U);
    U *dst = (U *)op.dst;
    const U *src = (const U *)op.src;
    const int64_t step = (int64_t)gridDim.x * blockDim.x;
    if (src) {
        for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < units; i += step)
            dst[i] = src[i];
    } else {
        const U z{};
        for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < units; i += step)
            dst[i] = z;
    }
}

extern "C" int ls_cuda_copy_unit(const ls_copy_op *op) {
    const uintptr_t a = (uintptr_t)op->dst | (uintptr_t)op->src | (uintptr_t)op->bytes;
    return (a & 15) == 0 ? 16 : (a & 7) == 0 ? 8 : (a & 3) == 0 ? 4 : 1;
}

extern "C" cudaError_t ls_cuda_copy_batch(const ls_copy_op *ops, int64_t n, int64_t max_bytes,
                                          int unit, cudaStream_t stream) {
    LS_CUDA_REQUIRE(n >= 0 && max_bytes >= 0 && (n == 0 || ops) &&
                        (unit == 1 || unit == 4 || unit == 8 || unit == 16),
                    "copy_batch: bad arguments (n %lld, max_bytes %lld, unit %d)", (long long)n,
                    (long long)max_bytes, unit);
    if (n == 0 || max_bytes < unit) return cudaSuccess;
    int64_t blocks = ls_cuda_cdiv(max_bytes / unit, 256);
    if (blocks > 4096) blocks = 4096;   /* the grid-stride loop covers the rest */
    for (int64_t c0 = 0; c0 < n; c0 += LS_CUDA_MAX_GRID_YZ) {
        const int64_t nc = n - c0 < LS_CUDA_MAX_GRID_YZ ? n - c0 : LS_CUDA_MAX_GRID_YZ;
        const dim3 grid((unsigned)blocks, (unsigned)nc);
        switch (unit) {
        case 16: ls_copy_batch_kernel<uint4><<<grid, 256, 0, stream>>>(ops + c0); break;
        case 8: ls_copy_batch_kernel<uint64_t><<<grid, 256, 0, stream>>>(ops + c0); break;
        case 4: ls_copy_batch_kernel<uint32_t><<<grid, 256, 0, stream>>>(ops + c0); break;
        default: ls_copy_batch_kernel<unsigned char><<<grid, 256, 0, stream>>>(ops + c0);
        }
        cudaError_t e = ls_cuda_launched("copy_batch");
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}
