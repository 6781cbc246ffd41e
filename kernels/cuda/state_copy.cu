/* Mamba state copies between slots (fork a prefill's state into n rollouts, snapshot into
 * the prefix cache, restore from it): all pairs in one launch per chunk of
 * LS_COPY_CHUNK pairs, byte offsets slot * stride computed on the host in 64-bit
 * arithmetic with overflow checks (the bug this project was born from was
 * `uint32 slot * stride`) and passed by value. Copies in 16-, 8-, 4- or 1-byte units,
 * the widest that every offset, base and the length allow. */
#include <stdint.h>

#include "kernels/cuda/common.cuh"

#define LS_COPY_CHUNK 128

struct ls_copy_pairs {
    int64_t src[LS_COPY_CHUNK];
    int64_t dst[LS_COPY_CHUNK];
};

template <typename U>
__global__ void ls_state_copy_kernel(char *dst_base, const char *src_base, ls_copy_pairs pairs,
                                     int64_t units) {
    const int p = blockIdx.y;
    const U *src = (const U *)(src_base + pairs.src[p]);
    U *dst = (U *)(dst_base + pairs.dst[p]);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < units;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

static int ls_offset(int64_t slot, int64_t stride, int64_t bytes, int64_t *off) {
    if (slot < 0 || stride < 0) return -1;
    if (stride != 0 && slot > INT64_MAX / stride) return -1;
    const int64_t o = slot * stride;
    if (o > INT64_MAX - bytes) return -1;
    *off = o;
    return 0;
}

extern "C" cudaError_t ls_cuda_state_copy(void *dst_base, const void *src_base,
                                          int64_t stride_bytes, const int64_t *src_slots,
                                          const int64_t *dst_slots, int64_t n_pairs,
                                          int64_t bytes, cudaStream_t stream) {
    LS_CUDA_REQUIRE(n_pairs >= 0 && bytes >= 0 && stride_bytes >= 0 &&
                        (n_pairs == 0 || (dst_base && src_base && src_slots && dst_slots)),
                    "state_copy: bad arguments");
    if (n_pairs == 0 || bytes == 0) return cudaSuccess;
    uintptr_t align = (uintptr_t)dst_base | (uintptr_t)src_base | (uintptr_t)stride_bytes |
                      (uintptr_t)bytes;
    const int unit = (align & 15) == 0 ? 16 : (align & 7) == 0 ? 8 : (align & 3) == 0 ? 4 : 1;
    const int64_t units = bytes / unit;
    int64_t blocks = ls_cuda_cdiv(units, 256);
    if (blocks > 1024) blocks = 1024;
    for (int64_t c0 = 0; c0 < n_pairs; c0 += LS_COPY_CHUNK) {
        const int64_t nc = n_pairs - c0 < LS_COPY_CHUNK ? n_pairs - c0 : LS_COPY_CHUNK;
        ls_copy_pairs pr;
        for (int64_t i = 0; i < nc; i++) {
            if (ls_offset(src_slots[c0 + i], stride_bytes, bytes, &pr.src[i]) ||
                ls_offset(dst_slots[c0 + i], stride_bytes, bytes, &pr.dst[i]))
                return ls_cuda_fail(cudaErrorInvalidValue,
                                    "state_copy: slot pair %lld (%lld -> %lld) x stride %lld "
                                    "overflows 64-bit offsets",
                                    (long long)(c0 + i), (long long)src_slots[c0 + i],
                                    (long long)dst_slots[c0 + i], (long long)stride_bytes);
        }
        /* pairs run concurrently: a destination may not overlap another pair's source or
         * destination when both live in the same buffer */
        if (dst_base == src_base)
            for (int64_t i = 0; i < nc; i++)
                for (int64_t j = 0; j < nc; j++) {
                    const int64_t d = pr.dst[i];
                    const int64_t a = pr.src[j], b = i == j ? -1 : pr.dst[j];
                    if (i == j && d == a) continue;   /* a copy onto itself is a no-op */
                    if ((d < a + bytes && a < d + bytes) ||
                        (b >= 0 && d < b + bytes && b < d + bytes))
                        return ls_cuda_fail(cudaErrorInvalidValue,
                                            "state_copy: pair %lld's destination overlaps pair "
                                            "%lld's %s",
                                            (long long)(c0 + i), (long long)(c0 + j),
                                            (d < a + bytes && a < d + bytes) ? "source"
                                                                             : "destination");
                }
        dim3 grid((unsigned)blocks, (unsigned)nc);
        char *db = (char *)dst_base;
        const char *sb = (const char *)src_base;
        switch (unit) {
        case 16: ls_state_copy_kernel<uint4><<<grid, 256, 0, stream>>>(db, sb, pr, units); break;
        case 8: ls_state_copy_kernel<uint64_t><<<grid, 256, 0, stream>>>(db, sb, pr, units); break;
        case 4: ls_state_copy_kernel<uint32_t><<<grid, 256, 0, stream>>>(db, sb, pr, units); break;
        default: ls_state_copy_kernel<unsigned char><<<grid, 256, 0, stream>>>(db, sb, pr, units);
        }
        cudaError_t e = ls_cuda_launched("state_copy");
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}
