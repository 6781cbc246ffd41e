/* Token sampling on the device: engine/sampler.c's definition (ls_sample), so the engine
 * downloads a token id and its log-probability per draw instead of a vocabulary-wide row.
 *
 * The definition is sequential: candidates in rank order (log-probability descending, then
 * token id ascending), cumulative weights summed one by one in that order, the first token
 * whose cumulative weight exceeds u * total. The device keeps every one of those sums in
 * the host's order, so only exp() can differ (CUDA's double exp and glibc's may round
 * differently in the last place); a token differs from the host's only when u * total
 * falls within rounding of a cumulative-weight boundary.
 *
 *   1. rank keys in the row's precision: NaN -> -inf (the host's rank_key), -0 -> +0 (so
 *      equal values tie exactly, as the host's == does). The host ranks the row widened to
 *      double; widening is exact and keeps the order, so float keys sort the same way at half
 *      the bytes;
 *   2. a stable sort, descending (f64: cub::DeviceSegmentedSort; f32: one cub radix sort of
 *      64-bit keys, row then descending key, over all rows at once, which keeps the GPU busy
 *      where the segmented sort gives a whole row to one block): stability keeps ascending
 *      token ids among equal keys, which is the host's tie-break;
 *   3. one block per draw: the block computes weights of a chunk of candidates in parallel
 *      into shared memory, then thread 0 adds them in order (eight loads ahead of the
 *      adds; a chunk of eight is checked for the stopping bound once, at its last sum,
 *      because the weights are >= 0 and so the running sum never decreases). The row's
 *      total is summed in token-id order when every token is kept, in rank order otherwise,
 *      as on the host.
 * Draws with temperature 0 (greedy) and rows with no finite log-probability take rank 0,
 * which is the host's greedy token; when every draw is greedy the sort is still the simplest
 * correct argmax and costs a fraction of a millisecond. */
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_sort.cuh>

#include "engine/philox_core.h"
#include "kernels/cuda/common.cuh"

#define LS_SAMPLE_THREADS 256
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

/* What a walk stops on. */
enum { LS_WALK_ALL = 0, LS_WALK_REACH = 1, LS_WALK_EXCEED = 2 };

struct ls_walk {
    int64_t count;   /* elements consumed (up to and including the stopping one) */
    double cum;      /* their sum, in order */
    int64_t last;    /* position of the last element with weight > 0, -1 if none */
    int stopped;
};

/* Thread 0's part of a walk: the m weights of one chunk (starting at position base) added
 * to r in order. Eight loads go ahead of their eight dependent adds; the bound is checked on
 * the eighth sum only, since weights >= 0 make the running sum non-decreasing (IEEE
 * round-to-nearest addition of a non-negative number never lowers it), and on a hit the
 * first of the eight sums that crosses is the stopping element. */
__device__ __forceinline__ void ls_walk_chunk(const double *__restrict__ wbuf, int64_t base,
                                              int64_t m, int mode, double bound, ls_walk &r) {
    auto crossed = [&](double c) {
        return (mode == LS_WALK_REACH && c >= bound) || (mode == LS_WALK_EXCEED && c > bound);
    };
    int64_t t = 0;
    for (; t + 8 <= m; t += 8) {
        double v[8], c[8];
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = wbuf[t + i];
        c[0] = r.cum + v[0];
#pragma unroll
        for (int i = 1; i < 8; i++) c[i] = c[i - 1] + v[i];
        if (mode != LS_WALK_ALL && crossed(c[7])) {
            int hit = 7;   /* the first crossing; constant indices keep c and v in registers */
            double ch = c[7];
#pragma unroll
            for (int i = 6; i >= 0; i--)
                if (crossed(c[i])) hit = i, ch = c[i];
#pragma unroll
            for (int q = 0; q < 8; q++)
                if (q <= hit && v[q] > 0.0) r.last = base + t + q;
            r.cum = ch;
            r.count = base + t + hit + 1;
            r.stopped = 1;
            return;
        }
#pragma unroll
        for (int i = 0; i < 8; i++)
            if (v[i] > 0.0) r.last = base + t + i;
        r.cum = c[7];
    }
    for (; t < m; t++) {
        const double w = wbuf[t];
        r.cum += w;
        if (w > 0.0) r.last = base + t;
        if (mode != LS_WALK_ALL && crossed(r.cum)) {
            r.count = base + t + 1;
            r.stopped = 1;
            return;
        }
    }
    r.count = base + m;
}

/* Sums weight(j) for j = 0, 1, ... n - 1 in that order, stopping after the first j where the
 * running sum reaches (>=, LS_WALK_REACH) or exceeds (>, LS_WALK_EXCEED) `bound`. Called by
 * every thread of the block; every thread gets the result. */
template <typename W>
__device__ ls_walk ls_walk_in_order(int64_t n, W weight, int mode, double bound) {
    __shared__ double wbuf[LS_SAMPLE_CHUNK];
    __shared__ ls_walk res;
    if (threadIdx.x == 0) res = ls_walk{0, 0.0, -1, 0};
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

template <typename T>
__global__ void __launch_bounds__(LS_SAMPLE_THREADS)
ls_sample_draw_kernel(const T *__restrict__ rows, int64_t vocab, const T *__restrict__ skeys,
                      const int32_t *__restrict__ sids, const ls_cuda_sample_job *__restrict__ jobs,
                      int32_t *__restrict__ tokens, double *__restrict__ lps) {
    const ls_cuda_sample_job jb = jobs[blockIdx.x];
    const T *row = rows + jb.row * vocab;
    const T *K = skeys + jb.row * vocab;
    const int32_t *I = sids + jb.row * vocab;
    const double lp_max = (double)K[0], temp = jb.temperature;
    int32_t out = I[0];
    if (temp != 0.0 && isfinite(lp_max)) {
        auto ranked = [&](int64_t j) { return exp(((double)K[j] - lp_max) / temp); };
        auto by_id = [&](int64_t i) { return exp(((double)ls_rank_key(row[i]) - lp_max) / temp); };
        int64_t keep = jb.top_k == 0 || jb.top_k > vocab ? vocab : jb.top_k;
        double total = keep < vocab ? ls_walk_in_order(keep, ranked, LS_WALK_ALL, 0.0).cum
                                    : ls_walk_in_order(vocab, by_id, LS_WALK_ALL, 0.0).cum;
        if (jb.top_p < 1.0) {
            const ls_walk p = ls_walk_in_order(keep, ranked, LS_WALK_REACH, jb.top_p * total);
            keep = p.count;
            total = p.cum;
        }
        const double target =
            ls_uniform_core(jb.seed, jb.request, jb.rollout, jb.position, 0) * total;
        const ls_walk s = ls_walk_in_order(keep, ranked, LS_WALK_EXCEED, target);
        /* rounding can leave the sum <= target at the end: the last token with weight */
        if (s.stopped) out = I[s.count - 1];
        else if (s.last >= 0) out = I[s.last];
    }
    if (threadIdx.x == 0) {
        tokens[blockIdx.x] = out;
        lps[blockIdx.x] = (double)row[out];
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
                             const ls_cuda_sample_job *jobs, int64_t n_jobs, void *work,
                             int64_t work_bytes, int32_t *tokens, double *lps,
                             cudaStream_t stream) {
    LS_CUDA_REQUIRE(n_rows >= 0 && n_jobs >= 0 && vocab >= 1 && vocab <= INT32_MAX,
                    "sample: bad sizes rows=%lld vocab=%lld jobs=%lld", (long long)n_rows,
                    (long long)vocab, (long long)n_jobs);
    LS_CUDA_REQUIRE(n_jobs <= LS_CUDA_MAX_GRID_X, "sample: %lld draws in one call",
                    (long long)n_jobs);
    if (n_jobs == 0) return cudaSuccess;
    LS_CUDA_REQUIRE(n_rows >= 1 && rows && jobs && tokens && lps && work,
                    "sample: %lld draws but no rows or buffers", (long long)n_jobs);
    const int64_t need = ls_cuda_sample_workspace(n_rows, vocab);
    LS_CUDA_REQUIRE(need > 0 && work_bytes >= need,
                    "sample: workspace of %lld bytes, %lld needed", (long long)work_bytes,
                    (long long)need);
    const int64_t n = n_rows * vocab;
    char *p = (char *)work;
    char *keys = p;
    char *skeys = (p += ls_al256(n * 8));
    int32_t *ids = (int32_t *)(p += ls_al256(n * 8));
    int32_t *sids = (int32_t *)(p += ls_al256(n * 4));
    int64_t *offs = (int64_t *)(p += ls_al256(n * 4));
    void *cub_tmp = p += ls_al256((n_rows + 1) * 8);
    const T *sorted = NULL;
    cudaError_t e = ls_sample_sort(rows, n_rows, vocab, keys, skeys, ids, sids, offs, cub_tmp,
                                   &sorted, stream);
    if (e != cudaSuccess) return e;
    ls_sample_draw_kernel<T><<<(unsigned)n_jobs, LS_SAMPLE_THREADS, 0, stream>>>(
        rows, vocab, sorted, sids, jobs, tokens, lps);
    return ls_cuda_launched("sample_draw");
}

#define LS_INST(T, S)                                                                         \
    extern "C" cudaError_t ls_cuda_sample_##S(const T *rows, int64_t n_rows, int64_t vocab,    \
                                              const ls_cuda_sample_job *jobs, int64_t n_jobs,  \
                                              void *work, int64_t work_bytes, int32_t *tokens, \
                                              double *lps, cudaStream_t stream) {              \
        return ls_sample<T>(rows, n_rows, vocab, jobs, n_jobs, work, work_bytes, tokens, lps,  \
                            stream);                                                           \
    }
LS_INST(float, f32)
LS_INST(double, f64)
