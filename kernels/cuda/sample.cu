/* Token sampling on the device: engine/sampler.c's definition (ls_sample), so the engine
 * downloads a token id and its log-probability per draw instead of a vocabulary-wide row.
 *
 * The draw is the exponential race: among the kept tokens, the largest w / -log(u_token),
 * ties to the lower id. Each key depends only on its own token and a max is exact in any
 * order, so a block finds the host's token in parallel; only exp() and log() can differ
 * (CUDA's double exp and log may round differently from glibc's in the last place), so a
 * token differs from the host's only when two keys fall within rounding of each other.
 *
 * One block per draw (ls_sample_draw_kernel): the greedy token by a block argmax of the rank
 * keys; at temperature > 0 with every token kept (top_k = 0, top_p = 1: the RL rollout
 * case) the race over token ids, with no sort at all. Draws that keep a prefix of the
 * ranking (top_k, top_p) need the rows sorted first (ls_cuda_sample_needs_sort says when):
 *   1. rank keys in the row's precision: NaN -> -inf (the host's rank_key), -0 -> +0 (so
 *      equal values tie exactly, as the host's == does). The host ranks the row widened to
 *      double; widening is exact and keeps the order, so float keys sort the same way at half
 *      the bytes;
 *   2. a stable sort, descending (f64: cub::DeviceSegmentedSort; f32: one cub radix sort of
 *      64-bit keys, row then descending key, over all rows at once, which keeps the GPU busy
 *      where the segmented sort gives a whole row to one block): stability keeps ascending
 *      token ids among equal keys, which is the host's tie-break;
 *   3. top_p's prefix by in-order walks (top_p < 1 only): the block computes weights of a
 *      chunk into shared memory, then thread 0 adds them in the host's order (eight loads
 *      ahead of the adds; a chunk of eight is checked for the bound once, at its last sum,
 *      because the weights are >= 0 and so the running sum never decreases); the total in
 *      token-id order when every token is kept, in rank order otherwise, as on the host;
 *   4. the race over the kept ranks. */
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_sort.cuh>

#include "engine/philox_core.h"
#include "kernels/cuda/common.cuh"

/* 512 threads per draw: at small batch a draw's block is alone on its SM, walking 32,000
 * tokens (a Philox block per pair, an exp and a log per token, in fp64) */
#define LS_SAMPLE_THREADS 512
#define LS_SAMPLE_CHUNK 2048

template <typename T> __device__ __forceinline__ T ls_rank_key(T x) {
    return isnan(x) ? (T)-INFINITY : x + (T)0;
}

template <typename T>
__global__ void ls_sample_keys_kernel(const T *__restrict__ rows, int64_t n, int64_t vocab,
                                      T *__restrict__ keys, int32_t *__restrict__ ids) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        keys[i] = ls_rank_key(rows[i]);
        ids[i] = (int32_t)(i % vocab);
    }
}

/* f32 rows sort as one device-wide radix sort of 64-bit keys (row << 32 | descending-order
 * bits of the rank key), stable like the segmented sort, so equal keys keep ascending ids.
 * The segmented sort gives each vocabulary-long row to one thread block; one radix sort over
 * all rows keeps the whole GPU busy at any row count. u maps a float's bits to an unsigned
 * that orders as the float does (sign bit set for positives, all bits flipped for
 * negatives); ~u orders descending. The rank keys are never NaN and never -0. */
__device__ __forceinline__ uint32_t ls_desc_bits(float f) {
    const uint32_t u = __float_as_uint(f);
    return ~((u & 0x80000000u) ? ~u : (u | 0x80000000u));
}
__device__ __forceinline__ float ls_desc_float(uint32_t d) {
    const uint32_t u = ~d;
    return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

__global__ void ls_sample_keys64_kernel(const float *__restrict__ rows, int64_t n, int64_t vocab,
                                        uint64_t *__restrict__ keys, int32_t *__restrict__ ids) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        keys[i] = ((uint64_t)(i / vocab) << 32) | ls_desc_bits(ls_rank_key(rows[i]));
        ids[i] = (int32_t)(i % vocab);
    }
}

__global__ void ls_sample_unkey64_kernel(const uint64_t *__restrict__ keys, int64_t n,
                                         float *__restrict__ out) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        out[i] = ls_desc_float((uint32_t)keys[i]);
}

/* the key bits the radix sort must look at: 32 of the rank key, and enough for the row */
static int ls_sample_key_bits(int64_t n_rows) {
    int b = 32;
    while (b < 64 && ((n_rows - 1) >> (b - 32)) > 0) b++;
    return b;
}

static cudaError_t ls_sample_radix_bytes(int64_t n_rows, int64_t vocab, size_t *bytes) {
    *bytes = 0;
    return cub::DeviceRadixSort::SortPairs((void *)NULL, *bytes, (const uint64_t *)NULL,
                                           (uint64_t *)NULL, (const int32_t *)NULL,
                                           (int32_t *)NULL, n_rows * vocab, 0,
                                           ls_sample_key_bits(n_rows), 0);
}

__global__ void ls_sample_offsets_kernel(int64_t n_rows, int64_t vocab, int64_t *__restrict__ offs) {
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r <= n_rows;
         r += (int64_t)gridDim.x * blockDim.x)
        offs[r] = r * vocab;
}

/* What a walk stops on: nothing (the total), or the running sum reaching a bound (top_p). */
enum { LS_WALK_ALL = 0, LS_WALK_REACH = 1 };

struct ls_walk {
    int64_t count;   /* elements consumed (up to and including the stopping one) */
    double cum;      /* their sum, in order */
    int stopped;
};

/* Thread 0's part of a walk: the m weights of one chunk (starting at position base) added
 * to r in order. Eight loads go ahead of their eight dependent adds; the bound is checked on
 * the eighth sum only, since weights >= 0 make the running sum non-decreasing (IEEE
 * round-to-nearest addition of a non-negative number never lowers it), and on a hit the
 * first of the eight sums that reaches it is the stopping element. */
__device__ __forceinline__ void ls_walk_chunk(const double *__restrict__ wbuf, int64_t base,
                                              int64_t m, int mode, double bound, ls_walk &r) {
    const bool reach = mode == LS_WALK_REACH;
    int64_t t = 0;
    for (; t + 8 <= m; t += 8) {
        double v[8], c[8];
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = wbuf[t + i];
        c[0] = r.cum + v[0];
#pragma unroll
        for (int i = 1; i < 8; i++) c[i] = c[i - 1] + v[i];
        if (reach && c[7] >= bound) {
            int hit = 7;   /* the first crossing; constant indices keep c in registers */
            double ch = c[7];
#pragma unroll
            for (int i = 6; i >= 0; i--)
                if (c[i] >= bound) hit = i, ch = c[i];
            r.cum = ch;
            r.count = base + t + hit + 1;
            r.stopped = 1;
            return;
        }
        r.cum = c[7];
    }
    for (; t < m; t++) {
        r.cum += wbuf[t];
        if (reach && r.cum >= bound) {
            r.count = base + t + 1;
            r.stopped = 1;
            return;
        }
    }
    r.count = base + m;
}

/* Sums weight(j) for j = 0, 1, ... n - 1 in that order, stopping after the first j where the
 * running sum reaches `bound` (>=) in LS_WALK_REACH mode. Called by every thread of the
 * block; every thread gets the result. */
template <typename W>
__device__ ls_walk ls_walk_in_order(int64_t n, W weight, int mode, double bound) {
    __shared__ double wbuf[LS_SAMPLE_CHUNK];
    __shared__ ls_walk res;
    if (threadIdx.x == 0) res = ls_walk{0, 0.0, 0};
    __syncthreads();
    for (int64_t base = 0; base < n; base += LS_SAMPLE_CHUNK) {
        const int64_t m = n - base < LS_SAMPLE_CHUNK ? n - base : LS_SAMPLE_CHUNK;
        for (int64_t t = threadIdx.x; t < m; t += blockDim.x) wbuf[t] = weight(base + t);
        __syncthreads();
        if (threadIdx.x == 0) {
            ls_walk r = res;
            ls_walk_chunk(wbuf, base, m, mode, bound, r);
            res = r;
        }
        __syncthreads();
        if (res.stopped) break;
    }
    const ls_walk out = res;
    __syncthreads();   /* res and wbuf are reused by the next walk */
    return out;
}

/* The block's best (key, id) pair: the largest key, the lowest id among equal keys, so the
 * result is the same in any order of comparison. Every thread gets it. */
struct ls_best {
    double key;
    int64_t id;
};
__device__ __forceinline__ bool ls_beats(double k, int64_t id, const ls_best &b) {
    return k > b.key || (k == b.key && id < b.id);
}
__device__ ls_best ls_block_best(ls_best v) {
    __shared__ double bk[LS_SAMPLE_THREADS];
    __shared__ int64_t bi[LS_SAMPLE_THREADS];
    const int t = threadIdx.x;
    bk[t] = v.key;
    bi[t] = v.id;
    __syncthreads();
    for (int h = LS_SAMPLE_THREADS / 2; h > 0; h /= 2) {
        if (t < h && ls_beats(bk[t + h], bi[t + h], ls_best{bk[t], bi[t]})) {
            bk[t] = bk[t + h];
            bi[t] = bi[t + h];
        }
        __syncthreads();
    }
    const ls_best out{bk[0], bi[0]};
    __syncthreads();   /* bk and bi are reused by the next call */
    return out;
}

/* engine/sampler.c's race_enter: key = w / -log(u), in the same operations */
__device__ __forceinline__ void ls_race_enter(ls_best &b, int64_t id, double w, double u) {
    const double e = -log(u);
    const double key = w / e;
    if (ls_beats(key, id, b)) b = ls_best{key, id};
}

/* One block per draw: the greedy token (a block argmax of the rank keys), then for a draw
 * at temperature > 0 the exponential race among the kept tokens, each thread taking every
 * LS_SAMPLE_THREADS-th candidate (pair of tokens, when all are kept) and the block keeping
 * the best. All tokens kept (top_k = 0, top_p = 1): the race runs over token ids and needs
 * no ranking. Otherwise it needs the
 * sorted rows (skeys, sids; NULL when the caller did not sort: token -1, the contract
 * broken); top_p's prefix is found by in-order walks as on the host. */
template <typename T>
__global__ void __launch_bounds__(LS_SAMPLE_THREADS)
ls_sample_draw_kernel(const T *__restrict__ rows, int64_t vocab, const T *__restrict__ skeys,
                      const int32_t *__restrict__ sids, const ls_cuda_sample_job *__restrict__ jobs,
                      int32_t *__restrict__ tokens, double *__restrict__ lps) {
    const ls_cuda_sample_job jb = jobs[blockIdx.x];
    const T *row = rows + jb.row * vocab;
    const int64_t t0 = threadIdx.x;
    ls_best g{-INFINITY, INT64_MAX};
    for (int64_t i = t0; i < vocab; i += LS_SAMPLE_THREADS) {
        const double k = (double)ls_rank_key(row[i]);
        if (ls_beats(k, i, g)) g = ls_best{k, i};
    }
    g = ls_block_best(g);
    const double lp_max = g.key, temp = jb.temperature;
    int64_t out = g.id;
    if (temp != 0.0 && isfinite(lp_max)) {
        uint32_t sk[2];
        ls_stream_key_core(jb.seed, jb.request, jb.rollout, sk);
        int64_t keep = jb.top_k == 0 || jb.top_k > vocab ? vocab : jb.top_k;
        /* the host's weight_of: exp((rank key - lp_max) / T) */
        auto weight = [&](double key) { return exp((key - lp_max) / temp); };
        auto by_id = [&](int64_t i) { return weight((double)ls_rank_key(row[i])); };
        ls_best b{-INFINITY, INT64_MAX};
        if (keep == vocab && jb.top_p >= 1.0) {
            /* a thread per pair of tokens: one Philox block gives both their uniforms */
            for (int64_t p = t0; 2 * p < vocab; p += LS_SAMPLE_THREADS) {
                double u[2];
                ls_token_pair_core(sk, jb.position, (uint32_t)p, u);
                for (int h = 0; h < 2 && 2 * p + h < vocab; h++) {
                    const int64_t i = 2 * p + h;
                    ls_race_enter(b, i, by_id(i), u[h]);
                }
            }
            out = ls_block_best(b).id;
        } else if (!skeys || !sids) {
            out = -1;
        } else {
            const T *K = skeys + jb.row * vocab;
            const int32_t *I = sids + jb.row * vocab;
            auto ranked = [&](int64_t j) { return weight((double)K[j]); };
            if (jb.top_p < 1.0) {
                const double total = keep < vocab
                                         ? ls_walk_in_order(keep, ranked, LS_WALK_ALL, 0.0).cum
                                         : ls_walk_in_order(vocab, by_id, LS_WALK_ALL, 0.0).cum;
                keep = ls_walk_in_order(keep, ranked, LS_WALK_REACH, jb.top_p * total).count;
            }
            for (int64_t j = t0; j < keep; j += LS_SAMPLE_THREADS)
                ls_race_enter(b, I[j], ranked(j),
                              ls_token_uniform_core(sk, jb.position, (uint32_t)I[j]));
            out = ls_block_best(b).id;
        }
    }
    if (threadIdx.x == 0) {
        tokens[blockIdx.x] = (int32_t)out;
        lps[blockIdx.x] = out >= 0 ? (double)row[out] : ls_nan<double>();
    }
}

/* Workspace layout: keys, sorted keys (8 bytes each: f64 keys, or the f32 path's 64-bit
 * keys), ids, sorted ids (int32), segment offsets (f64 only), CUB's temporary storage (the
 * larger of the two sorts' needs); each piece 256-byte aligned. */
static int64_t ls_al256(int64_t b) { return (b + 255) / 256 * 256; }

/* the f64 rows' segmented sort */
static cudaError_t ls_sample_cub_bytes(int64_t n_rows, int64_t vocab, size_t *bytes) {
    *bytes = 0;
    return cub::DeviceSegmentedSort::StableSortPairsDescending(
        (void *)NULL, *bytes, (const double *)NULL, (double *)NULL, (const int32_t *)NULL,
        (int32_t *)NULL, n_rows * vocab, n_rows, (const int64_t *)NULL, (const int64_t *)NULL, 0);
}

extern "C" int ls_cuda_sample_needs_sort(const ls_cuda_sample_job *jobs, int64_t n_jobs,
                                          int64_t vocab) {
    for (int64_t j = 0; j < n_jobs; j++)
        if (jobs[j].temperature != 0.0 &&
            ((jobs[j].top_k > 0 && jobs[j].top_k < vocab) || jobs[j].top_p < 1.0))
            return 1;
    return 0;
}

extern "C" int64_t ls_cuda_sample_workspace(int64_t n_rows, int64_t vocab) {
    if (n_rows < 1 || vocab < 1) return 0;
    size_t bd = 0, br = 0;   /* f64 rows: the segmented sort; f32 rows: the radix sort */
    if (ls_sample_cub_bytes(n_rows, vocab, &bd) != cudaSuccess ||
        ls_sample_radix_bytes(n_rows, vocab, &br) != cudaSuccess)
        return -1;
    const size_t b = bd > br ? bd : br;
    const int64_t n = n_rows * vocab;
    return 2 * ls_al256(n * 8) + 2 * ls_al256(n * 4) + ls_al256((n_rows + 1) * 8) +
           ls_al256((int64_t)b);
}

/* keys and ids sorted into skeys (in the row's precision) and sids, rows descending by rank
 * key, ties by ascending id: f64 by the segmented sort, f32 by one radix sort (above). */
static cudaError_t ls_sample_sort(const double *rows, int64_t n_rows, int64_t vocab, char *keys,
                                  char *skeys, int32_t *ids, int32_t *sids, int64_t *offs,
                                  void *cub_tmp, const double **sorted, cudaStream_t stream) {
    const int64_t n = n_rows * vocab;
    size_t cub_bytes = 0;
    cudaError_t e = ls_sample_cub_bytes(n_rows, vocab, &cub_bytes);
    if (e != cudaSuccess) return ls_cuda_fail(e, "sample: sizing the segmented sort");
    const unsigned blocks = ls_cuda_stride_blocks(n);
    ls_sample_keys_kernel<double><<<blocks, 256, 0, stream>>>(rows, n, vocab,
                                                                       (double *)keys, ids);
    if ((e = ls_cuda_launched("sample_keys")) != cudaSuccess) return e;
    ls_sample_offsets_kernel<<<(unsigned)ls_cuda_cdiv(n_rows + 1, 256), 256, 0, stream>>>(
        n_rows, vocab, offs);
    if ((e = ls_cuda_launched("sample_offsets")) != cudaSuccess) return e;
    e = cub::DeviceSegmentedSort::StableSortPairsDescending(cub_tmp, cub_bytes, (double *)keys,
                                                            (double *)skeys, ids, sids, n, n_rows,
                                                            offs, offs + 1, stream);
    if (e != cudaSuccess) return ls_cuda_fail(e, "sample: segmented sort");
    *sorted = (const double *)skeys;
    return ls_cuda_launched("sample_sort");
}
static cudaError_t ls_sample_sort(const float *rows, int64_t n_rows, int64_t vocab, char *keys,
                                  char *skeys, int32_t *ids, int32_t *sids, int64_t *offs,
                                  void *cub_tmp, const float **sorted, cudaStream_t stream) {
    (void)offs;
    const int64_t n = n_rows * vocab;
    size_t cub_bytes = 0;
    cudaError_t e = ls_sample_radix_bytes(n_rows, vocab, &cub_bytes);
    if (e != cudaSuccess) return ls_cuda_fail(e, "sample: sizing the radix sort");
    const unsigned blocks = ls_cuda_stride_blocks(n);
    ls_sample_keys64_kernel<<<blocks, 256, 0, stream>>>(rows, n, vocab,
                                                                 (uint64_t *)keys, ids);
    if ((e = ls_cuda_launched("sample_keys64")) != cudaSuccess) return e;
    e = cub::DeviceRadixSort::SortPairs(cub_tmp, cub_bytes, (const uint64_t *)keys,
                                        (uint64_t *)skeys, ids, sids, n, 0,
                                        ls_sample_key_bits(n_rows), stream);
    if (e != cudaSuccess) return ls_cuda_fail(e, "sample: radix sort");
    if ((e = ls_cuda_launched("sample_sort")) != cudaSuccess) return e;
    /* the sorted rank keys as floats, into the (now free) unsorted keys' space */
    ls_sample_unkey64_kernel<<<blocks, 256, 0, stream>>>((const uint64_t *)skeys, n,
                                                                  (float *)keys);
    *sorted = (const float *)keys;
    return ls_cuda_launched("sample_unkey64");
}

template <typename T>
static cudaError_t ls_sample(const T *rows, int64_t n_rows, int64_t vocab,
                             const ls_cuda_sample_job *jobs, int64_t n_jobs, int sort_rows,
                             void *work, int64_t work_bytes, int32_t *tokens, double *lps,
                             cudaStream_t stream) {
    LS_CUDA_REQUIRE(n_rows >= 0 && n_jobs >= 0 && vocab >= 1 && vocab <= INT32_MAX,
                    "sample: bad sizes rows=%lld vocab=%lld jobs=%lld", (long long)n_rows,
                    (long long)vocab, (long long)n_jobs);
    LS_CUDA_REQUIRE(n_jobs <= LS_CUDA_MAX_GRID_X, "sample: %lld draws in one call",
                    (long long)n_jobs);
    if (n_jobs == 0) return cudaSuccess;
    LS_CUDA_REQUIRE(n_rows >= 1 && rows && jobs && tokens && lps,
                    "sample: %lld draws but no rows or buffers", (long long)n_jobs);
    const T *sorted = NULL;
    int32_t *sids = NULL;
    if (sort_rows) {   /* the workspace is checked and laid out only when the rows are sorted */
        const int64_t need = ls_cuda_sample_workspace(n_rows, vocab);
        LS_CUDA_REQUIRE(need > 0 && work && work_bytes >= need,
                        "sample: workspace of %lld bytes, %lld needed to sort the rows",
                        (long long)work_bytes, (long long)need);
        const int64_t n = n_rows * vocab;
        char *p = (char *)work;
        char *keys = p;
        char *skeys = (p += ls_al256(n * 8));
        int32_t *ids = (int32_t *)(p += ls_al256(n * 8));
        sids = (int32_t *)(p += ls_al256(n * 4));
        int64_t *offs = (int64_t *)(p += ls_al256(n * 4));
        void *cub_tmp = p += ls_al256((n_rows + 1) * 8);
        cudaError_t e = ls_sample_sort(rows, n_rows, vocab, keys, skeys, ids, sids, offs,
                                       cub_tmp, &sorted, stream);
        if (e != cudaSuccess) return e;
    }
    ls_sample_draw_kernel<T><<<(unsigned)n_jobs, LS_SAMPLE_THREADS, 0, stream>>>(
        rows, vocab, sorted, sids, jobs, tokens, lps);
    return ls_cuda_launched("sample_draw");
}

#define LS_INST(T, S)                                                                         \
    extern "C" cudaError_t ls_cuda_sample_##S(const T *rows, int64_t n_rows, int64_t vocab,    \
                                              const ls_cuda_sample_job *jobs, int64_t n_jobs,  \
                                              int sort_rows, void *work, int64_t work_bytes,   \
                                              int32_t *tokens, double *lps,                    \
                                              cudaStream_t stream) {                           \
        return ls_sample<T>(rows, n_rows, vocab, jobs, n_jobs, sort_rows, work, work_bytes,    \
                            tokens, lps, stream);                                              \
    }
LS_INST(float, f32)
LS_INST(double, f64)
