/* Causal attention over a block table, and the KV write that precedes it.
 *
 * One block of 128 threads per (row, query head). The operation order is
 * kernels/attention.c's: s_j = (sum_d q[d]*k_j[d], d ascending) * scale for each key j
 * (one thread per key); mx = max_j s_j (a max is exact in any order: the only freedom,
 * the sign of a zero maximum, cannot change exp(s - mx) or any later value); e_j =
 * exp(s_j - mx); sum = e_0 + e_1 + ... in j order (thread 0, serially, over chunks staged
 * in shared memory); p_j = e_j / sum; out[d] = (((0 + p_0 v_0[d]) + p_1 v_1[d]) + ...) in j
 * order (one thread per d, the keys taken in chunks whose rows and probabilities are staged
 * in shared memory). Keys are
 * found through the block table, so contiguous and paged caches give the same bits.
 * scores/probabilities live in a caller-provided scratch of rows * heads * max_keys. */
#include <math.h>

#include "kernels/cuda/common.cuh"

#define LS_ATT_THREADS 128
#define LS_ATT_QMAX 256   /* head_dim up to this: the query sits in shared memory */

/* The sequence owning batch row r: the largest s with row0[s] <= r (row0 ascending). */
__device__ __forceinline__ int64_t ls_find_seq(const int64_t *row0, int64_t n_seqs, int64_t r) {
    int64_t lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo + 1) / 2;
        if (row0[mid] <= r) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

template <typename T>
__global__ void ls_kv_write_kernel(int64_t n_seqs, const int64_t *__restrict__ row0,
                                   const int64_t *__restrict__ start_pos,
                                   const int64_t *__restrict__ bts,
                                   const int64_t *__restrict__ bt_off, const T *__restrict__ k,
                                   int64_t ldk, const T *__restrict__ v, int64_t ldv,
                                   int64_t bs, int64_t kv_dim, T *__restrict__ kc,
                                   T *__restrict__ vc) {
    const int64_t r = blockIdx.x;
    const int64_t s = ls_find_seq(row0, n_seqs, r);
    if (bt_off[s] < 0) return;
    const int64_t pos = start_pos[s] + (r - row0[s]);
    const int64_t crow = bts[bt_off[s] + pos / bs] * bs + pos % bs;
    for (int64_t d = threadIdx.x; d < kv_dim; d += blockDim.x) {
        kc[crow * kv_dim + d] = k[r * ldk + d];
        vc[crow * kv_dim + d] = v[r * ldv + d];
    }
}

template <typename T>
__global__ void __launch_bounds__(LS_ATT_THREADS)
ls_attention_kernel(int64_t n_seqs, const int64_t *__restrict__ row0,
                    const int64_t *__restrict__ start_pos, const int64_t *__restrict__ bts,
                    const int64_t *__restrict__ bt_off, int64_t max_keys,
                    const T *__restrict__ q, int64_t ldq, const T *__restrict__ kc,
                    const T *__restrict__ vc, int64_t bs, int64_t heads, int64_t kv_heads,
                    int64_t hd, T *__restrict__ scratch, T *__restrict__ out, int64_t ldo) {
    __shared__ T red[LS_ATT_THREADS];
    __shared__ T sum_s;
    const int tid = threadIdx.x;
    const int64_t r = blockIdx.x, h = blockIdx.y;
    const int64_t s = ls_find_seq(row0, n_seqs, r);
    T *oh = out + r * ldo + h * hd;
    if (bt_off[s] < 0) {   /* padding sequence: zeros, as the CPU forward */
        for (int64_t d = tid; d < hd; d += LS_ATT_THREADS) oh[d] = (T)0;
        return;
    }
    const int64_t nk = start_pos[s] + (r - row0[s]) + 1;
    if (nk > max_keys) {   /* scratch too small: loud, never out of bounds */
        for (int64_t d = tid; d < hd; d += LS_ATT_THREADS) oh[d] = ls_nan<T>();
        return;
    }
    const int64_t *bt = bts + bt_off[s];
    const int64_t kv_dim = kv_heads * hd, g = h / (heads / kv_heads);
    const T scale = (T)1 / ls_sqrt((T)hd);
    const T *qh = q + r * ldq + h * hd;
    T *sc = scratch + (r * heads + h) * max_keys;

    __shared__ T qs[LS_ATT_QMAX];   /* the query head, read by every key's thread */
    const bool q_shared = hd <= LS_ATT_QMAX;
    if (q_shared)
        for (int64_t d = tid; d < hd; d += LS_ATT_THREADS) qs[d] = qh[d];
    __syncthreads();
    const T *qv = q_shared ? qs : qh;
    /* key rows in 16-byte moves where every row of this head starts 16-byte aligned (the same
     * products and sums in the same order, fewer L1 requests) */
    const bool vec = (hd * (int64_t)sizeof(T)) % 16 == 0 && (kv_dim * (int64_t)sizeof(T)) % 16 == 0 &&
                     ((uintptr_t)kc & 15) == 0;
    T mx = -INFINITY;
    for (int64_t j = tid; j < nk; j += LS_ATT_THREADS) {
        const int64_t row = bt[j / bs] * bs + j % bs;
        const T *kj = kc + row * kv_dim + g * hd;
        T dot = 0;
        if (vec) {
            constexpr int W = 16 / sizeof(T);
            for (int64_t d = 0; d < hd; d += W) {
                T kr[W];
                ls_ld16<W>(kj + d, kr);
#pragma unroll
                for (int i = 0; i < W; i++) dot += qv[d + i] * kr[i];
            }
        } else {
            for (int64_t d = 0; d < hd; d++) dot += qv[d] * kj[d];
        }
        dot = dot * scale;
        sc[j] = dot;
        if (dot > mx) mx = dot;
    }
    red[tid] = mx;
    __syncthreads();
    for (int st = LS_ATT_THREADS / 2; st > 0; st >>= 1) {
        if (tid < st && red[tid + st] > red[tid]) red[tid] = red[tid + st];
        __syncthreads();
    }
    mx = red[0];
    /* e_j = exp(s_j - mx) and sum = e_0 + e_1 + ... in j order: per chunk of LS_ATT_THREADS
     * keys, each thread its own key (the one it scored: its own write), the chunk staged in
     * shared memory for thread 0's serial sum, so the chain's loads are shared-memory loads */
    __shared__ T ech[LS_ATT_THREADS];
    T sum = 0;   /* thread 0's */
    for (int64_t j0 = 0; j0 < nk; j0 += LS_ATT_THREADS) {
        const int64_t j = j0 + tid;
        if (j < nk) {
            const T e = ls_exp(sc[j] - mx);
            sc[j] = e;
            ech[tid] = e;
        }
        __syncthreads();
        if (tid == 0) {
            const int n = nk - j0 < LS_ATT_THREADS ? (int)(nk - j0) : LS_ATT_THREADS;
            for (int i = 0; i < n; i++) sum += ech[i];
        }
        __syncthreads();   /* ech is rewritten by the next chunk */
    }
    if (tid == 0) sum_s = sum;
    __syncthreads();
    sum = sum_s;
    /* out[d] over keys in chunks of LS_ATT_THREADS: a chunk's value-row offsets and
     * probabilities p_j = e_j / sum (each thread its own key's) are staged in shared memory
     * first, so the serial j loop's loads do not wait on a block-table lookup each and can be
     * issued ahead of the adds. */
    __shared__ int64_t vrow[LS_ATT_THREADS];
    __shared__ T pj[LS_ATT_THREADS];
    for (int64_t d0 = 0; d0 < hd; d0 += LS_ATT_THREADS) {
        const int64_t d = d0 + tid;
        T o = 0;
        for (int64_t j0 = 0; j0 < nk; j0 += LS_ATT_THREADS) {
            __syncthreads();   /* the previous chunk's readers done */
            const int64_t j = j0 + tid;
            if (j < nk) {
                vrow[tid] = (bt[j / bs] * bs + j % bs) * kv_dim + g * hd;
                pj[tid] = sc[j] / sum;
            }
            __syncthreads();
            const int n = nk - j0 < LS_ATT_THREADS ? (int)(nk - j0) : LS_ATT_THREADS;
            if (d < hd) {
#pragma unroll 8
                for (int i = 0; i < n; i++) o += pj[i] * vc[vrow[i] + d];
            }
        }
        if (d < hd) oh[d] = o;
    }
}

template <typename T>
static cudaError_t ls_kv_write(const ls_cuda_batch *b, const T *k, int64_t ldk, const T *v,
                               int64_t ldv, int64_t bs, int64_t kv_dim, T *kc, T *vc,
                               cudaStream_t stream) {
    LS_CUDA_REQUIRE(b && b->n_seqs >= 0 && b->rows >= 0 && bs > 0 && kv_dim > 0 &&
                        ldk >= kv_dim && ldv >= kv_dim && b->rows <= LS_CUDA_MAX_GRID_X,
                    "kv_write: bad arguments");
    if (b->rows == 0 || b->n_seqs == 0) return cudaSuccess;
    ls_kv_write_kernel<T><<<(unsigned)b->rows, 128, 0, stream>>>(b->n_seqs, b->row0,
                                                                 b->start_pos, b->block_tables,
                                                                 b->bt_off, k, ldk, v, ldv, bs,
                                                                 kv_dim, kc, vc);
    return ls_cuda_launched("kv_write");
}

template <typename T>
static cudaError_t ls_attention(const ls_cuda_batch *b, const T *q, int64_t ldq, const T *kc,
                                const T *vc, int64_t bs, int64_t heads, int64_t kv_heads,
                                int64_t hd, T *scratch, T *out, int64_t ldo,
                                cudaStream_t stream) {
    LS_CUDA_REQUIRE(b && b->n_seqs >= 0 && b->rows >= 0 && b->max_keys >= 1 && bs > 0 &&
                        heads > 0 && kv_heads > 0 && heads % kv_heads == 0 && hd > 0 &&
                        ldq >= heads * hd && ldo >= heads * hd,
                    "attention: bad arguments heads=%lld kv_heads=%lld head_dim=%lld",
                    (long long)heads, (long long)kv_heads, (long long)hd);
    LS_CUDA_REQUIRE(b->rows <= LS_CUDA_MAX_GRID_X && heads <= LS_CUDA_MAX_GRID_YZ,
                    "attention: grid too large");
    if (b->rows == 0 || b->n_seqs == 0) return cudaSuccess;
    dim3 grid((unsigned)b->rows, (unsigned)heads);
    ls_attention_kernel<T><<<grid, LS_ATT_THREADS, 0, stream>>>(
        b->n_seqs, b->row0, b->start_pos, b->block_tables, b->bt_off, b->max_keys, q, ldq, kc,
        vc, bs, heads, kv_heads, hd, scratch, out, ldo);
    return ls_cuda_launched("attention");
}

#define LS_INST(T, S)                                                                          \
    extern "C" cudaError_t ls_cuda_kv_write_##S(const ls_cuda_batch *b, const T *k, int64_t ldk, \
                                                const T *v, int64_t ldv, int64_t block_size,     \
                                                int64_t kv_dim, T *kcache, T *vcache,            \
                                                cudaStream_t stream) {                           \
        return ls_kv_write<T>(b, k, ldk, v, ldv, block_size, kv_dim, kcache, vcache, stream);    \
    }                                                                                            \
    extern "C" cudaError_t ls_cuda_attention_##S(                                                \
        const ls_cuda_batch *b, const T *q, int64_t ldq, const T *kcache, const T *vcache,       \
        int64_t block_size, int64_t heads, int64_t kv_heads, int64_t head_dim, T *scratch,       \
        T *out, int64_t ldo, cudaStream_t stream) {                                              \
        return ls_attention<T>(b, q, ldq, kcache, vcache, block_size, heads, kv_heads, head_dim, \
                               scratch, out, ldo, stream);                                       \
    }
LS_INST(float, f32)
LS_INST(double, f64)
