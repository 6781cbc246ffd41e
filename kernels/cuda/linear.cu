/* Invariant linear layer. Every output y[m][o] is dot8(w[o][:], x[m][:]) exactly as
 * kernels/matmul.c computes it: 8 partial sums, partial j taking the terms of k = j (mod 8)
 * in ascending k, each as one fused multiply-add (ls_fma: one FFMA, where -fmad=false would
 * otherwise issue a multiply and an add), then ((a0+a1)+(a2+a3))+((a4+a5)+(a6+a7)). The kernels below only
 * decide which thread does the work and where operands are staged, never the order: the
 * thread that owns partial j of an output walks k = j, j + 8, ... upwards through the K
 * tiles, and the 8 partials of an output sit in 8 neighbouring lanes of one warp, where
 * three xor-shuffles (1, 2, 4) add them in the tree's order (IEEE addition is commutative,
 * so both lanes of a pair hold the same sum). The last K tile is padded with +0 operands:
 * acc + (+0 * +0) == acc bit for bit, because acc starts at +0 and a round-to-nearest sum
 * is -0 only when both addends are -0, so acc is never -0 (fma(+0, +0, acc) is acc + 0).
 *
 * Two shapes of the same computation:
 *   tiled  (by default above 16 rows once its grid has >= 96 blocks): 256 threads compute
 *          32 rows x 64 outputs; thread (g, j) = (tid / 8, tid % 8) holds partial j of 8
 *          rows x 8 outputs in registers, so each pair of 16-byte shared loads feeds 64
 *          multiply-adds (the old one-row, four-output thread did 5 shared loads per 4).
 *          Operands are staged k-major.
 *   skinny (8-row chunks; by default below that: decode, few-output products): 32 outputs per
 *          block, thread (o, j) holds partial j of one output for every row of its chunk,
 *          weights streamed through shared memory in wide coalesced tiles, so the weights
 *          are read at bandwidth by many blocks.
 * linear_moe runs either shape over (row, slot) pairs of ONE expert, taken from
 * ls_cuda_moe_group's tile table (kernels/cuda/moe.cu) and gathered through its order
 * (x row = pair / x_div, y row = pair), so an expert's weights are read once per tile, not
 * once per pair. Which kernel, block and lane compute an output never changes its
 * operations: every shape gives the same bits for the same (x, W) row. */
#include "kernels/cuda/common.cuh"

/* ---------------- tiled: 32 rows x 64 outputs, 8 x 8 per thread ---------------- */

#define LS_RB_TM 32
#define LS_RB_TO 64
#define LS_RB_THREADS 256

/* K tile per precision (a multiple of 8). One block per SM: the 64 accumulators, the 16
 * operands and the prefetched next tile take ~190 registers (asking for two blocks spills). */
template <typename T> struct ls_rb_cfg { static constexpr int TK = 64; };
template <> struct ls_rb_cfg<double> { static constexpr int TK = 32; };

/* dot8's tree over lanes j = lane % 8: every lane of the 8 ends with the whole sum */
template <typename T> __device__ __forceinline__ T ls_tree8_lanes(T v) {
    v = v + __shfl_xor_sync(0xffffffffu, v, 1);   /* (a0 + a1), (a2 + a3), ... */
    v = v + __shfl_xor_sync(0xffffffffu, v, 2);   /* ((a0 + a1) + (a2 + a3)), ... */
    return v + __shfl_xor_sync(0xffffffffu, v, 4);
}

/* The K loop of the tiled kernels. x row rr (< 32) of the tile starts at element
 * x_off(rr) (-1: a row of +0); outputs o0 .. o0 + 63 of w ([out][in]). Thread (g, j):
 * rows 8 (g / 8) + a, outputs 8 (g % 8) + c, partial j: acc[a][c] gets w[o][k] * x[m][k]
 * for k = j, j + 8, ... ascending. Operands are staged k-major, a row of the x tile padded
 * to 16 bytes past 32 and of the w tile past 64, so the 8 lanes j of a quarter warp read
 * 8 different k rows from 8 disjoint groups of 4 banks. The next K tile is loaded into
 * registers while the current one is multiplied, so its latency hides behind the math. */
template <typename T, typename XOff>
__device__ __forceinline__ void ls_rb_dot8(const T *__restrict__ x, XOff x_off, int64_t in,
                                           const T *__restrict__ w, int64_t o0, int64_t out,
                                           T (&acc)[8][8]) {
    constexpr int TK = ls_rb_cfg<T>::TK, PAD = 16 / (int)sizeof(T);
    constexpr int NX = (LS_RB_TM * TK) / LS_RB_THREADS, NW = (LS_RB_TO * TK) / LS_RB_THREADS;
    __shared__ __align__(16) T xs[TK][LS_RB_TM + PAD];
    __shared__ __align__(16) T ws[TK][LS_RB_TO + PAD];
    const int tid = threadIdx.x, j = tid & 7, g = tid >> 3, gm = g >> 3, go = g & 7;
    T px[NX], pw[NW];   /* the next K tile, element q at (tid + 256 q) / TK, % TK */
    auto fetch = [&](int64_t k0) {
#pragma unroll
        for (int q = 0; q < NX; q++) {
            const int idx = tid + LS_RB_THREADS * q, rr = idx / TK, kk = idx % TK;
            const int64_t xo = x_off(rr), k = k0 + kk;
            px[q] = (xo >= 0 && k < in) ? x[xo + k] : (T)0;
        }
#pragma unroll
        for (int q = 0; q < NW; q++) {
            const int idx = tid + LS_RB_THREADS * q, oo = idx / TK, kk = idx % TK;
            const int64_t o = o0 + oo, k = k0 + kk;
            pw[q] = (o < out && k < in) ? w[o * in + k] : (T)0;
        }
    };
#pragma unroll
    for (int a = 0; a < 8; a++)
#pragma unroll
        for (int c = 0; c < 8; c++) acc[a][c] = (T)0;
    fetch(0);
    for (int64_t k0 = 0; k0 < in; k0 += TK) {
#pragma unroll
        for (int q = 0; q < NX; q++) {
            const int idx = tid + LS_RB_THREADS * q;
            xs[idx % TK][idx / TK] = px[q];
        }
#pragma unroll
        for (int q = 0; q < NW; q++) {
            const int idx = tid + LS_RB_THREADS * q;
            ws[idx % TK][idx / TK] = pw[q];
        }
        __syncthreads();
        if (k0 + TK < in) fetch(k0 + TK);   /* uniform over the block */
#pragma unroll
        for (int t = 0; t < TK / 8; t++) {
            T xv[8], wv[8];
            ls_ld16(&xs[j + 8 * t][8 * gm], xv);
            ls_ld16(&ws[j + 8 * t][8 * go], wv);
#pragma unroll
            for (int a = 0; a < 8; a++)
#pragma unroll
                for (int c = 0; c < 8; c++) acc[a][c] = ls_fma(wv[c], xv[a], acc[a][c]);
        }
        __syncthreads();
    }
}

/* The 8 partials of each output meet (every lane of the 8 takes part), then lane j writes
 * output column 8 (g % 8) + j of the thread's 8 rows: y_off(rr) is where tile row rr's
 * outputs start (-1: not written). Outputs past `out` are not written. */
template <typename T, typename YOff>
__device__ __forceinline__ void ls_rb_store(T (&acc)[8][8], YOff y_off, const T *__restrict__ b,
                                            int64_t o0, int64_t out, T *__restrict__ y) {
    const int tid = threadIdx.x, j = tid & 7, g = tid >> 3, gm = g >> 3, go = g & 7;
    const int64_t o = o0 + 8 * go + j;
#pragma unroll
    for (int a = 0; a < 8; a++) {
        T mine = (T)0;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            const T s = ls_tree8_lanes(acc[a][c]);
            if (c == j) mine = s;   /* a select: acc is never indexed by a runtime value */
        }
        const int64_t yo = y_off(8 * gm + a);
        if (yo >= 0 && o < out) y[yo + o] = b ? mine + b[o] : mine;
    }
}

/* grid.x: 32-row tiles, grid.y: 64-output tiles. A weight tile's readers are neighbours in
 * x, so they tend to run together and share it in L2. */
template <typename T>
__global__ void __launch_bounds__(LS_RB_THREADS, 1)
ls_linear_tiled(const T *__restrict__ x, int64_t ldx, int64_t rows, int64_t in,
                const T *__restrict__ w, const T *__restrict__ b, int64_t out,
                T *__restrict__ y, int64_t ldy) {
    const int64_t m0 = (int64_t)blockIdx.x * LS_RB_TM, o0 = (int64_t)blockIdx.y * LS_RB_TO;
    T acc[8][8];
    ls_rb_dot8(x, [&](int rr) { return m0 + rr < rows ? (m0 + rr) * ldx : (int64_t)-1; }, in, w,
               o0, out, acc);
    ls_rb_store(acc, [&](int rr) { return m0 + rr < rows ? (m0 + rr) * ldy : (int64_t)-1; }, b,
                o0, out, y);
}

/* ---------------- skinny: 8-row chunks, 32 outputs per block ---------------- */

/* A block of 256 threads owns 32 outputs; thread (o, j) = (tid / 8, tid % 8) keeps partial
 * j of output o for every row, adding k = j, j + 8, ... in ascending order through K tiles
 * of weights staged in shared memory with coalesced loads. K tiles: 256 (f32) / 128 (f64)
 * elements, padded with +0. */
#define LS_SK_ROWS 8
#define LS_SK_OUT 32

template <typename T> struct ls_sk_tile { static constexpr int TK = 256; };
template <> struct ls_sk_tile<double> { static constexpr int TK = 128; };

/* x row m < rows starts at element x_off(m); its outputs go to y + y_off(m). */
template <typename T, typename XOff, typename YOff>
__device__ __forceinline__ void ls_skinny_body(const T *__restrict__ x, XOff x_off, int rows,
                                               int64_t in, const T *__restrict__ w,
                                               const T *__restrict__ b, int64_t o0, int64_t out,
                                               T *__restrict__ y, YOff y_off) {
    constexpr int TK = ls_sk_tile<T>::TK, RS = 256 / TK;
    constexpr int NW = LS_SK_OUT / RS, NX = (LS_SK_ROWS * TK) / 256;
    __shared__ T ws[LS_SK_OUT][TK + 8];   /* +8: the 32 lanes of a warp hit 32 banks */
    __shared__ T xs[LS_SK_ROWS][TK];
    const int tid = threadIdx.x, oo = tid >> 3, j = tid & 7;
    T acc[LS_SK_ROWS];
#pragma unroll
    for (int m = 0; m < LS_SK_ROWS; m++) acc[m] = (T)0;
    /* The next K tile goes into registers while the current one is multiplied, so a long K
     * (x_proj, out_proj: 4096) does not pay one memory latency per tile. Fully unrolled: all
     * of a tile's loads in flight at once. Thread tid loads column tid % TK of weight rows
     * tid / TK + RS q, one pointer stepping. */
    T pw[NW], px[NX];
    auto fetch = [&](int64_t k0) {
        const int c = tid % TK, r0 = tid / TK;
        const bool kin = k0 + c < in;
        const T *wp = w + (o0 + r0) * in + k0 + c;
#pragma unroll
        for (int q = 0; q < NW; q++, wp += RS * in)
            pw[q] = (kin && o0 + r0 + RS * q < out) ? *wp : (T)0;
#pragma unroll
        for (int q = 0; q < NX; q++) {
            const int idx = tid + 256 * q, r = idx / TK, cc = idx % TK;
            const int64_t k = k0 + cc;
            px[q] = (r < rows && k < in) ? x[x_off(r) + k] : (T)0;
        }
    };
    fetch(0);
    for (int64_t k0 = 0; k0 < in; k0 += TK) {
        {
            const int c = tid % TK, r0 = tid / TK;
#pragma unroll
            for (int q = 0; q < NW; q++) ws[r0 + RS * q][c] = pw[q];
#pragma unroll
            for (int q = 0; q < NX; q++) {
                const int idx = tid + 256 * q;
                xs[idx / TK][idx % TK] = px[q];
            }
        }
        __syncthreads();
        if (k0 + TK < in) fetch(k0 + TK);   /* uniform over the block */
#pragma unroll 4
        for (int t = 0; t < TK / 8; t++) {
            const T wv = ws[oo][j + 8 * t];
#pragma unroll
            for (int m = 0; m < LS_SK_ROWS; m++) acc[m] = ls_fma(wv, xs[m][j + 8 * t], acc[m]);
        }
        __syncthreads();
    }
    const int64_t o = o0 + oo;
#pragma unroll
    for (int m = 0; m < LS_SK_ROWS; m++) {
        if (m >= rows) break;   /* uniform over the block: every lane shuffles below */
        const T v = ls_tree8_lanes(acc[m]);
        if (j == 0 && o < out) y[y_off(m) + o] = b ? v + b[o] : v;
    }
}

/* grid.x: 32-output tiles, grid.y: 8-row chunks of the rows */
template <typename T>
__global__ void __launch_bounds__(256)
ls_linear_skinny(const T *__restrict__ x, int64_t ldx, int64_t rows, int64_t in,
                 const T *__restrict__ w, const T *__restrict__ b, int64_t out,
                 T *__restrict__ y, int64_t ldy) {
    const int64_t m0 = (int64_t)blockIdx.y * LS_SK_ROWS, left = rows - m0;
    const int n = left < LS_SK_ROWS ? (int)left : LS_SK_ROWS;
    ls_skinny_body(x, [&](int m) { return (m0 + m) * ldx; }, n, in, w, b,
                   (int64_t)blockIdx.x * LS_SK_OUT, out, y, [&](int m) { return (m0 + m) * ldy; });
}

/* ---------------- MoE: either shape over one expert's pairs ---------------- */

static_assert(LS_CUDA_MOE_TILE == LS_RB_TM, "a MoE tile is one row tile of the tiled kernel");
static_assert(LS_CUDA_LINEAR_TILE_ROWS == LS_RB_TM && LS_CUDA_LINEAR_TILE_OUT == LS_RB_TO,
              "ls_cuda_linear_auto_path counts this kernel's blocks");
static_assert(LS_CUDA_MOE_TILE == 4 * LS_SK_ROWS, "the skinny MoE kernel takes a tile in quarters");

/* The pairs of tile t, rows r0 .. r0 + n - 1 of it: their x and y offsets in shared memory
 * (-1 past the last pair), or NaN rows and false for the invalid-expert group. Called by the
 * whole block, after the block-uniform checks. */
template <typename T, int N>
__device__ __forceinline__ bool ls_moe_tile_rows(const int32_t *__restrict__ grp, int64_t pairs,
                                                 int64_t t, int r0, int64_t n_experts,
                                                 int64_t ldx, int64_t x_div, int64_t ldy,
                                                 int64_t o0, int64_t o_step, int64_t out,
                                                 T *__restrict__ y, int64_t (&xoff)[N],
                                                 int64_t (&yoff)[N], int64_t *e_out) {
    const ls_moe_tile tile = ls_moe_tile_at(grp, pairs, t);
    const int64_t e = tile.group;
    const int n = tile.n - r0;   /* pairs of this tile from r0 on (>= 1) */
    const int32_t *order = tile.pair + r0;
    if (e < 0 || e >= n_experts) {   /* the invalid-expert group: uniform, no barrier skipped */
        for (int i = threadIdx.x; i < (n < N ? n : N) * o_step; i += blockDim.x) {
            const int64_t o = o0 + i % o_step;
            if (o < out) y[(int64_t)order[i / o_step] * ldy + o] = ls_nan<T>();
        }
        return false;
    }
    if (threadIdx.x < N) {
        const int64_t p = (int)threadIdx.x < n ? (int64_t)order[threadIdx.x] : -1;
        xoff[threadIdx.x] = p >= 0 ? (p / x_div) * ldx : -1;
        yoff[threadIdx.x] = p >= 0 ? p * ldy : -1;
    }
    __syncthreads();
    *e_out = e;
    return true;
}

/* tiled: grid.x = tiles (an upper bound; blocks past grp[0] leave at once), grid.y =
 * 64-output tiles. A tile's neighbours in x are the other tiles of the same expert, which
 * read the same weight tile. */
template <typename T>
__global__ void __launch_bounds__(LS_RB_THREADS, 1)
ls_linear_moe_tiled(const T *__restrict__ x, int64_t ldx, int64_t x_div, int64_t pairs,
                    int64_t in, const T *const *__restrict__ w_list, int64_t n_experts,
                    const int32_t *__restrict__ grp, int64_t out, T *__restrict__ y,
                    int64_t ldy) {
    __shared__ int64_t xoff[LS_RB_TM], yoff[LS_RB_TM];
    const int64_t t = blockIdx.x, o0 = (int64_t)blockIdx.y * LS_RB_TO;
    if (t >= ls_moe_n_tiles(grp)) return;   /* uniform over the block, before any barrier */
    int64_t e;
    if (!ls_moe_tile_rows<T>(grp, pairs, t, 0, n_experts, ldx, x_div, ldy, o0, LS_RB_TO, out,
                             y, xoff, yoff, &e))
        return;
    T acc[8][8];
    ls_rb_dot8(x, [&](int rr) { return xoff[rr]; }, in, w_list[e], o0, out, acc);
    ls_rb_store(acc, [&](int rr) { return yoff[rr]; }, (const T *)NULL, o0, out, y);
}

/* skinny: grid.x = tiles x 4 (the 8-pair quarters of a 32-pair tile; empty quarters leave
 * at once), grid.y = 32-output tiles. For few pairs per expert (decode at small batch),
 * where a 32-row tile would mostly compute padding and its 64-output blocks are too few to
 * stream the experts' weights at bandwidth. */
template <typename T>
__global__ void __launch_bounds__(256)
ls_linear_moe_skinny(const T *__restrict__ x, int64_t ldx, int64_t x_div, int64_t pairs,
                     int64_t in, const T *const *__restrict__ w_list, int64_t n_experts,
                     const int32_t *__restrict__ grp, int64_t out, T *__restrict__ y,
                     int64_t ldy) {
    __shared__ int64_t xoff[LS_SK_ROWS], yoff[LS_SK_ROWS];
    const int64_t t = blockIdx.x / 4, o0 = (int64_t)blockIdx.y * LS_SK_OUT;
    const int r0 = (int)(blockIdx.x % 4) * LS_SK_ROWS;
    if (t >= ls_moe_n_tiles(grp)) return;               /* uniform, before any barrier */
    const int n = ls_moe_tile_at(grp, pairs, t).n - r0;
    if (n <= 0) return;                                 /* an empty quarter: uniform */
    int64_t e;
    if (!ls_moe_tile_rows<T>(grp, pairs, t, r0, n_experts, ldx, x_div, ldy, o0, LS_SK_OUT, out,
                             y, xoff, yoff, &e))
        return;
    ls_skinny_body(x, [&](int m) { return xoff[m]; }, n < LS_SK_ROWS ? n : LS_SK_ROWS, in,
                   w_list[e], (const T *)NULL, o0, out, y, [&](int m) { return yoff[m]; });
}

template <typename T>
static cudaError_t ls_linear(const T *x, int64_t ldx, int64_t rows, int64_t in, const T *w,
                             const T *b, int64_t out, T *y, int64_t ldy, int path,
                             cudaStream_t stream) {
    LS_CUDA_REQUIRE(rows >= 0 && in > 0 && out > 0 && ldx >= in && ldy >= out,
                    "linear: bad sizes rows=%lld in=%lld out=%lld ldx=%lld ldy=%lld",
                    (long long)rows, (long long)in, (long long)out, (long long)ldx,
                    (long long)ldy);
    LS_CUDA_REQUIRE(path >= LS_CUDA_PATH_AUTO && path <= LS_CUDA_PATH_TILED,
                    "linear: path %d is not one of LS_CUDA_PATH_AUTO/FEW/TILED", path);
    if (rows == 0) return cudaSuccess;
    if (path == LS_CUDA_PATH_AUTO) path = ls_cuda_linear_auto_path(rows, out);
    const int few = path == LS_CUDA_PATH_FEW;
    const int64_t gx = few ? ls_cuda_cdiv(out, LS_SK_OUT) : ls_cuda_cdiv(rows, LS_RB_TM);
    const int64_t gy = few ? ls_cuda_cdiv(rows, LS_SK_ROWS) : ls_cuda_cdiv(out, LS_RB_TO);
    LS_CUDA_REQUIRE(gx <= LS_CUDA_MAX_GRID_X && gy <= LS_CUDA_MAX_GRID_YZ,
                    "linear: %lld rows x %lld outputs is too large for one launch",
                    (long long)rows, (long long)out);
    dim3 grid((unsigned)gx, (unsigned)gy);
    if (few)
        ls_linear_skinny<T><<<grid, 256, 0, stream>>>(x, ldx, rows, in, w, b, out, y, ldy);
    else
        ls_linear_tiled<T><<<grid, LS_RB_THREADS, 0, stream>>>(x, ldx, rows, in, w, b, out, y, ldy);
    return ls_cuda_launched(few ? "linear (few rows)" : "linear");
}

template <typename T>
static cudaError_t ls_linear_moe(const T *x, int64_t ldx, int64_t x_div, int64_t pairs,
                                 int64_t in, const T *const *w_list, int64_t n_experts,
                                 const int32_t *grp, int64_t out, T *y, int64_t ldy, int path,
                                 cudaStream_t stream) {
    LS_CUDA_REQUIRE(pairs >= 0 && pairs <= LS_CUDA_MOE_MAX_PAIRS && in > 0 && out > 0 &&
                        ldx >= in && ldy >= out && x_div >= 1 && n_experts >= 1 &&
                        n_experts <= LS_CUDA_MOE_MAX_EXPERTS && grp != NULL,
                    "linear_moe: bad sizes pairs=%lld in=%lld out=%lld x_div=%lld n_experts=%lld",
                    (long long)pairs, (long long)in, (long long)out, (long long)x_div,
                    (long long)n_experts);
    if (pairs == 0) return cudaSuccess;
    LS_CUDA_REQUIRE(path >= LS_CUDA_PATH_AUTO && path <= LS_CUDA_PATH_TILED,
                    "linear_moe: path %d is not one of LS_CUDA_PATH_AUTO/FEW/TILED", path);
    if (path == LS_CUDA_PATH_AUTO)
        path = pairs <= LS_CUDA_MOE_FEW_PER_EXPERT * n_experts ? LS_CUDA_PATH_FEW
                                                               : LS_CUDA_PATH_TILED;
    const int64_t tiles = ls_cuda_moe_max_tiles(pairs, n_experts);
    const int few = path == LS_CUDA_PATH_FEW;
    const int64_t gx = few ? 4 * tiles : tiles, gy = ls_cuda_cdiv(out, few ? LS_SK_OUT : LS_RB_TO);
    LS_CUDA_REQUIRE(gx <= LS_CUDA_MAX_GRID_X && gy <= LS_CUDA_MAX_GRID_YZ,
                    "linear_moe: %lld pairs x %lld outputs is too large for one launch",
                    (long long)pairs, (long long)out);
    dim3 grid((unsigned)gx, (unsigned)gy);
    if (few)
        ls_linear_moe_skinny<T><<<grid, 256, 0, stream>>>(x, ldx, x_div, pairs, in, w_list,
                                                          n_experts, grp, out, y, ldy);
    else
        ls_linear_moe_tiled<T><<<grid, LS_RB_THREADS, 0, stream>>>(x, ldx, x_div, pairs, in, w_list,
                                                                   n_experts, grp, out, y, ldy);
    return ls_cuda_launched(few ? "linear_moe (few pairs)" : "linear_moe");
}

#define LS_INST(T, S)                                                                         \
    extern "C" cudaError_t ls_cuda_linear_##S(const T *x, int64_t ldx, int64_t rows,           \
                                              int64_t in, const T *w, const T *b, int64_t out, \
                                              T *y, int64_t ldy, int path,                     \
                                              cudaStream_t stream) {                           \
        return ls_linear<T>(x, ldx, rows, in, w, b, out, y, ldy, path, stream);                \
    }                                                                                          \
    extern "C" cudaError_t ls_cuda_linear_moe_##S(                                             \
        const T *x, int64_t ldx, int64_t x_div, int64_t pairs, int64_t in,                     \
        const T *const *w_list, int64_t n_experts, const int32_t *grp, int64_t out, T *y,      \
        int64_t ldy, int path, cudaStream_t stream) {                                          \
        return ls_linear_moe<T>(x, ldx, x_div, pairs, in, w_list, n_experts, grp, out, y, ldy, \
                                path, stream);                                                 \
    }
LS_INST(float, f32)
LS_INST(double, f64)
