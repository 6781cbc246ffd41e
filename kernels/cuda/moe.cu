/* MoE routing and combine. Route: one thread per row runs kernels/moe.c's code (its log-softmax
 * in index order, exp, k selection passes with ties to the lower index, insertion sort to
 * ascending expert order, weights not renormalised). Combine: out = 0, then out +=
 * y_t * w_t for the row's k slots in ascending expert order, one thread per element; y_t is
 * the slot's pair row (grouped path) or its expert's row of every-expert output (fast
 * mode's dense path, ls_cuda_mlp_fast): the same operations either way.
 * The experts themselves run through ls_cuda_linear_moe over (row, slot) pairs, grouped by
 * expert first (ls_cuda_moe_group, below), so that each block of the linear computes (part of)
 * a tile of up to 32 pairs of one expert and reads that expert's weights once for all of them.
 *
 * Group: one block of 1024 threads. (1) counts per group with shared-memory integer atomics
 * (integer sums: the result does not depend on their order); (2) one thread scans the <= 257
 * counts into each group's first position in `order` and first tile, and the block writes
 * the tile table; (3) the pairs are scattered in chunks of 1024, in index order: inside a
 * warp, __match_any_sync finds the lanes with the same group and a lane's rank is the number
 * of such lanes below it; per-warp counts are scanned across the 32 warps (one thread per
 * group, warps in order), and each group's running position moves on by the chunk's count.
 * So a pair lands at (pairs of its group in earlier chunks) + (in earlier warps of this chunk)
 * + (in lower lanes of its warp): a stable counting sort, the same every run. */
#include <math.h>

#include "kernels/cuda/common.cuh"

template <typename T>
__global__ void ls_moe_route_kernel(const T *__restrict__ logits, int64_t ld, int64_t rows,
                                    int64_t E, int64_t k, T *__restrict__ probs,
                                    int64_t *__restrict__ idx, T *__restrict__ wts) {
    ls_pdl_wait();
    const int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const T *lr = logits + r * ld;
    T *pr = probs + r * E;
    int64_t *ix = idx + r * k;
    T *wr = wts + r * k;
    /* moe.c's route_logsoftmax */
    T mx = -INFINITY;
    for (int64_t e = 0; e < E; e++) if (lr[e] > mx) mx = lr[e];
    T s = 0;
    for (int64_t e = 0; e < E; e++) s += ls_exp(lr[e] - mx);
    const T lse = mx + ls_log(s);
    for (int64_t e = 0; e < E; e++) pr[e] = lr[e] - lse;
    for (int64_t e = 0; e < E; e++) pr[e] = ls_exp(pr[e]);
    int64_t n = 0;
    for (int64_t t = 0; t < k; t++) {
        int64_t best = -1;
        for (int64_t e = 0; e < E; e++) {
            int taken = 0;
            for (int64_t i = 0; i < n; i++) taken |= ix[i] == e;
            if (!taken && (best < 0 || pr[e] > pr[best])) best = e;
        }
        ix[n++] = best;
    }
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = i; j > 0 && ix[j] < ix[j - 1]; j--) {
            const int64_t t = ix[j];
            ix[j] = ix[j - 1];
            ix[j - 1] = t;
        }
    for (int64_t i = 0; i < n; i++) wr[i] = pr[ix[i]];
}

/* y's row for (row r, slot t): pair r*k + t of the grouped path, or, with idx (the dense
 * path: every expert over every row, y [rows][E][H]), row r*E + idx[r*k + t]; -1 for an
 * expert outside [0, E), whose output is NaN as the grouped path's invalid pairs. */
__device__ __forceinline__ int64_t ls_combine_src(const int64_t *idx, int64_t E, int64_t r,
                                                  int64_t k, int64_t t) {
    if (!idx) return r * k + t;
    const int64_t e = idx[r * k + t];
    return e >= 0 && e < E ? r * E + e : -1;
}

template <typename T>
__global__ void ls_moe_combine_kernel(const T *__restrict__ y, const T *__restrict__ wts,
                                      const int64_t *__restrict__ idx, int64_t E, int64_t rows,
                                      int64_t k, int64_t H, T *__restrict__ out) {
    ls_pdl_wait();
    const int64_t total = rows * H;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / H, j = i % H;
        T o = 0;
        for (int64_t t = 0; t < k; t++) {
            const int64_t src = ls_combine_src(idx, E, r, k, t);
            o += (src >= 0 ? y[src * H + j] : ls_nan<T>()) * wts[r * k + t];
        }
        out[i] = o;
    }
}

template <typename T>
static cudaError_t ls_moe_route(const T *logits, int64_t ld, int64_t rows, int64_t E, int64_t k,
                                T *probs, int64_t *idx, T *wts, cudaStream_t stream) {
    LS_CUDA_REQUIRE(rows >= 0 && E >= 1 && k >= 1 && k <= E && ld >= E,
                    "moe_route: bad sizes rows=%lld E=%lld k=%lld", (long long)rows,
                    (long long)E, (long long)k);
    if (rows == 0) return cudaSuccess;
    return ls_launch_pdl("moe_route", ls_moe_route_kernel<T>,
                         dim3((unsigned)ls_cuda_cdiv(rows, 64)), dim3(64), stream, logits, ld,
                         rows, E, k, probs, idx, wts);
}

template <typename T>
static cudaError_t ls_moe_combine(const T *y, const T *wts, const int64_t *idx, int64_t E,
                                  int64_t rows, int64_t k, int64_t H, T *out,
                                  cudaStream_t stream) {
    LS_CUDA_REQUIRE(rows >= 0 && k >= 1 && H >= 1 && (!idx || E >= 1), "moe_combine: bad sizes");
    if (rows == 0) return cudaSuccess;
    const unsigned blocks = ls_cuda_stride_blocks(rows * H);
    return ls_launch_pdl("moe_combine", ls_moe_combine_kernel<T>, dim3(blocks), dim3(256), stream,
                         y, wts, idx, E, rows, k, H, out);
}

#define LS_MOE_GROUP_THREADS 1024
#define LS_MOE_GROUP_WARPS (LS_MOE_GROUP_THREADS / 32)
#define LS_MOE_MAX_GROUPS (LS_CUDA_MOE_MAX_EXPERTS + 1)

__device__ __forceinline__ int ls_moe_group_of(int64_t e, int64_t n_experts) {
    return e >= 0 && e < n_experts ? (int)e : (int)n_experts;   /* invalid: the last group */
}

__global__ void __launch_bounds__(LS_MOE_GROUP_THREADS)
ls_moe_group_kernel(const int64_t *__restrict__ expert, int64_t pairs, int64_t n_experts,
                    int tile, int32_t *__restrict__ grp) {
    __shared__ int cnt[LS_MOE_MAX_GROUPS];     /* pairs per group */
    __shared__ int pos[LS_MOE_MAX_GROUPS];     /* next free position of the group in order */
    __shared__ int tile0[LS_MOE_MAX_GROUPS];   /* the group's first tile */
    __shared__ int wcnt[LS_MOE_GROUP_WARPS][LS_MOE_MAX_GROUPS];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int G = (int)n_experts + 1;          /* <= LS_MOE_MAX_GROUPS <= blockDim */
    int32_t *order = grp + 1, *tiles = grp + 1 + pairs;
    for (int g = tid; g < G; g += LS_MOE_GROUP_THREADS) cnt[g] = 0;
    __syncthreads();
    for (int64_t i = tid; i < pairs; i += LS_MOE_GROUP_THREADS)
        atomicAdd(&cnt[ls_moe_group_of(expert[i], n_experts)], 1);
    __syncthreads();
    if (tid == 0) {
        int p = 0, t = 0;
        for (int g = 0; g < G; g++) {
            pos[g] = p;
            tile0[g] = t;
            p += cnt[g];
            t += (cnt[g] + tile - 1) / tile;
        }
        grp[0] = t;
    }
    __syncthreads();
    for (int g = 0; g < G; g++) {
        const int c = cnt[g], nt = (c + tile - 1) / tile;
        for (int j = tid; j < nt; j += LS_MOE_GROUP_THREADS) {
            int32_t *d = tiles + 3 * (int64_t)(tile0[g] + j);
            d[0] = g;
            d[1] = pos[g] + tile * j;
            d[2] = min(tile, c - tile * j);
        }
    }
    __syncthreads();   /* pos is read above and moved on below */
    const unsigned below = (1u << lane) - 1u;
    for (int64_t c0 = 0; c0 < pairs; c0 += LS_MOE_GROUP_THREADS) {   /* uniform trip count */
        const int64_t i = c0 + tid;
        const int g = i < pairs ? ls_moe_group_of(expert[i], n_experts) : -1;
        for (int j = tid; j < LS_MOE_GROUP_WARPS * G; j += LS_MOE_GROUP_THREADS)
            wcnt[j / G][j % G] = 0;
        const unsigned same = __match_any_sync(0xffffffffu, g);   /* all 32 lanes take part */
        const int rank = __popc(same & below);
        __syncthreads();
        if (g >= 0 && rank == 0) wcnt[warp][g] = __popc(same);
        __syncthreads();
        int total = 0;
        if (tid < G)
            for (int w = 0; w < LS_MOE_GROUP_WARPS; w++) {   /* exclusive scan, warps in order */
                const int c = wcnt[w][tid];
                wcnt[w][tid] = total;
                total += c;
            }
        __syncthreads();
        if (g >= 0) order[pos[g] + wcnt[warp][g] + rank] = (int32_t)i;
        __syncthreads();   /* every read of pos and wcnt is done */
        if (tid < G) pos[tid] += total;
    }
}

extern "C" cudaError_t ls_cuda_moe_group_tiles(const int64_t *expert, int64_t pairs,
                                               int64_t n_experts, int64_t tile, int32_t *grp,
                                               cudaStream_t stream) {
    LS_CUDA_REQUIRE(pairs >= 0 && pairs <= LS_CUDA_MOE_MAX_PAIRS && n_experts >= 1 &&
                        n_experts <= LS_CUDA_MOE_MAX_EXPERTS && grp != NULL &&
                        (pairs == 0 || expert != NULL),
                    "moe_group: bad sizes pairs=%lld n_experts=%lld (at most %lld and %d)",
                    (long long)pairs, (long long)n_experts, (long long)LS_CUDA_MOE_MAX_PAIRS,
                    LS_CUDA_MOE_MAX_EXPERTS);
    LS_CUDA_REQUIRE(tile >= 1 && tile <= LS_CUDA_MOE_MAX_TILE,
                    "moe_group: tile %lld is not in 1..%d", (long long)tile, LS_CUDA_MOE_MAX_TILE);
    ls_moe_group_kernel<<<1, LS_MOE_GROUP_THREADS, 0, stream>>>(expert, pairs, n_experts,
                                                                (int)tile, grp);
    return ls_cuda_launched("moe_group");
}

extern "C" cudaError_t ls_cuda_moe_group(const int64_t *expert, int64_t pairs, int64_t n_experts,
                                         int32_t *grp, cudaStream_t stream) {
    return ls_cuda_moe_group_tiles(expert, pairs, n_experts, LS_CUDA_MOE_TILE, grp, stream);
}

#define LS_INST(T, S)                                                                        \
    extern "C" cudaError_t ls_cuda_moe_route_##S(const T *logits, int64_t ld, int64_t rows,   \
                                                 int64_t E, int64_t k, T *probs, int64_t *idx, \
                                                 T *wts, cudaStream_t stream) {               \
        return ls_moe_route<T>(logits, ld, rows, E, k, probs, idx, wts, stream);              \
    }                                                                                         \
    extern "C" cudaError_t ls_cuda_moe_combine_##S(const T *y, const T *wts, int64_t rows,    \
                                                   int64_t k, int64_t H, T *out,              \
                                                   cudaStream_t stream) {                     \
        return ls_moe_combine<T>(y, wts, NULL, 1, rows, k, H, out, stream);                   \
    }                                                                                         \
    extern "C" cudaError_t ls_cuda_moe_combine_dense_##S(const T *y, const T *wts,            \
                                                         const int64_t *idx, int64_t rows,    \
                                                         int64_t k, int64_t E, int64_t H,     \
                                                         T *out, cudaStream_t stream) {       \
        LS_CUDA_REQUIRE(idx != NULL, "moe_combine_dense: no expert indices");                 \
        return ls_moe_combine<T>(y, wts, idx, E, rows, k, H, out, stream);                    \
    }
LS_INST(float, f32)
LS_INST(double, f64)
