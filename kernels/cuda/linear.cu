/* Invariant linear layer. Every output y[m][o] is dot8(w[o][:], x[m][:]) exactly as
 * kernels/matmul.c computes it: 8 partial sums, partial j taking the products of k = j
 * (mod 8) in ascending k, then ((a0+a1)+(a2+a3))+((a4+a5)+(a6+a7)). The tiling only
 * decides which thread does the work and where operands are staged, never the order:
 * each thread walks k from 0 upwards through the K tiles (TK is a multiple of 8, so the
 * partial-sum index is kk & 7 inside a tile). The last K tile is padded with +0 operands:
 * acc + (+0 * +0) == acc bit for bit, because acc starts at +0 and a round-to-nearest sum
 * is -0 only when both addends are -0, so acc is never -0.
 *
 * linear_tiled: 16 rows x 64 outputs per block of 256 threads, each thread 1 row x 4
 * outputs (o, o+16, o+32, o+48); ls_cuda_linear uses it above 8 rows and linear_skinny
 * (below) up to 8. linear_moe: the same tile and inner loop, but the 16 rows
 * are up to 16 (row, slot) pairs of ONE expert, taken from ls_cuda_moe_group's tile table
 * (kernels/cuda/moe.cu) and gathered through its order (x row = pair / x_div, y row = pair),
 * so each expert's weights are read once per 16 pairs instead of once per pair. Which block
 * and which tile row compute a pair never changes its operations. Both give the same bits
 * for the same (x, W) row, whatever the number of rows or pairs and their grouping. */
#include "kernels/cuda/common.cuh"

#define LS_LIN_TM 16
#define LS_LIN_TO 64
#define LS_LIN_TK 32

template <typename T> __device__ __forceinline__ T ls_tree8(const T *a) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* The K loop of both tiled kernels: a tile of 16 x rows and 64 outputs, x row rr at element
 * offset row_off(rr) (-1: a row of +0), thread (r, oc) = (tid / 16, tid % 16) adding dot8's
 * partials for outputs o0 + oc + 16 i into acc (which starts at +0), k ascending through
 * 32-wide K tiles in shared memory, the last padded with +0. */
template <typename T, typename RowOff>
__device__ __forceinline__ void ls_tile_dot8(const T *__restrict__ x, RowOff row_off, int64_t in,
                                             const T *__restrict__ w, int64_t o0, int64_t out,
                                             T (&xs)[LS_LIN_TM][LS_LIN_TK],
                                             T (&ws)[LS_LIN_TO][LS_LIN_TK + 1], T (&acc)[4][8]) {
    const int tid = threadIdx.x, r = tid / 16, oc = tid % 16;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[i][j] = (T)0;
    for (int64_t k0 = 0; k0 < in; k0 += LS_LIN_TK) {
#pragma unroll
        for (int q = 0; q < (LS_LIN_TM * LS_LIN_TK) / 256; q++) {
            const int idx = tid + 256 * q, rr = idx / LS_LIN_TK, kk = idx % LS_LIN_TK;
            const int64_t xo = row_off(rr), k = k0 + kk;
            xs[rr][kk] = (xo >= 0 && k < in) ? x[xo + k] : (T)0;
        }
#pragma unroll
        for (int q = 0; q < (LS_LIN_TO * LS_LIN_TK) / 256; q++) {
            const int idx = tid + 256 * q, oo = idx / LS_LIN_TK, kk = idx % LS_LIN_TK;
            const int64_t o = o0 + oo, k = k0 + kk;
            ws[oo][kk] = (o < out && k < in) ? w[o * in + k] : (T)0;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < LS_LIN_TK; kk++) {
            const T xv = xs[r][kk];
#pragma unroll
            for (int i = 0; i < 4; i++) acc[i][kk & 7] += ws[oc + 16 * i][kk] * xv;
        }
        __syncthreads();
    }
}

template <typename T>
__global__ void __launch_bounds__(256)
ls_linear_tiled(const T *__restrict__ x, int64_t ldx, int64_t rows, int64_t in,
                const T *__restrict__ w, const T *__restrict__ b, int64_t out,
                T *__restrict__ y, int64_t ldy) {
    __shared__ T xs[LS_LIN_TM][LS_LIN_TK];
    __shared__ T ws[LS_LIN_TO][LS_LIN_TK + 1];
    const int tid = threadIdx.x;
    const int64_t m0 = (int64_t)blockIdx.y * LS_LIN_TM, o0 = (int64_t)blockIdx.x * LS_LIN_TO;
    const int r = tid / 16, oc = tid % 16;
    T acc[4][8];
    ls_tile_dot8(x, [&](int rr) { return m0 + rr < rows ? (m0 + rr) * ldx : (int64_t)-1; }, in, w,
                 o0, out, xs, ws, acc);
    const int64_t m = m0 + r;
    if (m >= rows) return;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int64_t o = o0 + oc + 16 * i;
        if (o < out) {
            const T s = ls_tree8(acc[i]);
            y[m * ldy + o] = b ? s + b[o] : s;
        }
    }
}

/* linear_skinny: few rows (decode at small batch), where the 16-row tile of linear_tiled
 * wastes most of its work and its 64-output blocks are too few to stream the weights at
 * bandwidth. A block of 256 threads owns 32 outputs; thread (o, j) = (tid / 8, tid % 8)
 * keeps partial sum j of output o for every row, adding k = j, j + 8, ... in ascending
 * order through K tiles of weights staged in shared memory with coalesced loads; the 8
 * partials of an output sit in 8 neighbouring lanes and meet in ls_tree8's order through
 * three xor-shuffles (IEEE addition is commutative, so both lanes of a pair hold the same
 * sum). So each output is dot8 exactly, the same bits as linear_tiled. K tiles: 256 (f32) /
 * 128 (f64) elements, padded with +0 like linear_tiled. */
#define LS_SK_ROWS 8
#define LS_SK_OUT 32

template <typename T> struct ls_sk_tile { static constexpr int TK = 256; };
template <> struct ls_sk_tile<double> { static constexpr int TK = 128; };

template <typename T>
__global__ void __launch_bounds__(256)
ls_linear_skinny(const T *__restrict__ x, int64_t ldx, int rows, int64_t in,
                 const T *__restrict__ w, const T *__restrict__ b, int64_t out,
                 T *__restrict__ y, int64_t ldy) {
    constexpr int TK = ls_sk_tile<T>::TK;
    __shared__ T ws[LS_SK_OUT][TK + 8];   /* +8: the 32 lanes of a warp hit 32 banks */
    __shared__ T xs[LS_SK_ROWS][TK];
    const int tid = threadIdx.x, oo = tid >> 3, j = tid & 7;
    const int64_t o0 = (int64_t)blockIdx.x * LS_SK_OUT;
    T acc[LS_SK_ROWS];
#pragma unroll
    for (int m = 0; m < LS_SK_ROWS; m++) acc[m] = (T)0;
    for (int64_t k0 = 0; k0 < in; k0 += TK) {
#pragma unroll 4
        for (int q = 0; q < (LS_SK_OUT * TK) / 256; q++) {
            const int idx = tid + 256 * q, r = idx / TK, c = idx % TK;
            const int64_t o = o0 + r, k = k0 + c;
            ws[r][c] = (o < out && k < in) ? w[o * in + k] : (T)0;
        }
#pragma unroll
        for (int q = 0; q < (LS_SK_ROWS * TK) / 256; q++) {
            const int idx = tid + 256 * q, r = idx / TK, c = idx % TK;
            const int64_t k = k0 + c;
            xs[r][c] = (r < rows && k < in) ? x[r * ldx + k] : (T)0;
        }
        __syncthreads();
#pragma unroll 4
        for (int t = 0; t < TK / 8; t++) {
            const T wv = ws[oo][j + 8 * t];
#pragma unroll
            for (int m = 0; m < LS_SK_ROWS; m++) acc[m] += wv * xs[m][j + 8 * t];
        }
        __syncthreads();
    }
    const int64_t o = o0 + oo;
#pragma unroll
    for (int m = 0; m < LS_SK_ROWS; m++) {
        if (m >= rows) break;   /* uniform over the block: every lane shuffles below */
        T v = acc[m];
        v = v + __shfl_xor_sync(0xffffffffu, v, 1);   /* (a0 + a1), (a2 + a3), ... */
        v = v + __shfl_xor_sync(0xffffffffu, v, 2);   /* ((a0 + a1) + (a2 + a3)), ... */
        v = v + __shfl_xor_sync(0xffffffffu, v, 4);   /* the whole tree */
        if (j == 0 && o < out) y[m * ldy + o] = b ? v + b[o] : v;
    }
}

/* grid.x: tiles (an upper bound; blocks past grp[0] leave at once), grid.y: 64-output tiles.
 * Tiles on x (no 65535 limit), and a tile's neighbours in x are the other tiles of the same
 * expert, which read the same weight tile: they tend to run together and share it in L2. */
template <typename T>
__global__ void __launch_bounds__(256)
ls_linear_moe_tiled(const T *__restrict__ x, int64_t ldx, int64_t x_div, int64_t pairs,
                    int64_t in, const T *const *__restrict__ w_list, int64_t n_experts,
                    const int32_t *__restrict__ grp, int64_t out, T *__restrict__ y,
                    int64_t ldy) {
    __shared__ T xs[LS_LIN_TM][LS_LIN_TK];
    __shared__ T ws[LS_LIN_TO][LS_LIN_TK + 1];
    __shared__ int64_t xoff[LS_LIN_TM], yoff[LS_LIN_TM];   /* -1: no pair in this tile row */
    const int tid = threadIdx.x;
    const int64_t t = blockIdx.x, o0 = (int64_t)blockIdx.y * LS_LIN_TO;
    if (t >= (int64_t)grp[0]) return;   /* uniform over the block, before any barrier */
    const int32_t *tile = grp + 1 + pairs + 3 * t;
    const int64_t e = tile[0];
    const int n = tile[2];                          /* 1..16 pairs */
    const int32_t *order = grp + 1 + (int64_t)tile[1];
    const int r = tid / 16, oc = tid % 16;
    if (e < 0 || e >= n_experts) {   /* the invalid-expert group: uniform, no barrier skipped */
        if (r < n) {
            const int64_t p = order[r];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int64_t o = o0 + oc + 16 * i;
                if (o < out) y[p * ldy + o] = ls_nan<T>();
            }
        }
        return;
    }
    if (tid < LS_LIN_TM) {
        const int64_t p = tid < n ? (int64_t)order[tid] : -1;
        xoff[tid] = p >= 0 ? (p / x_div) * ldx : -1;
        yoff[tid] = p >= 0 ? p * ldy : -1;
    }
    __syncthreads();
    const T *w = w_list[e];
    T acc[4][8];
    ls_tile_dot8(x, [&](int rr) { return xoff[rr]; }, in, w, o0, out, xs, ws, acc);
    const int64_t yo = yoff[r];
    if (yo < 0) return;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int64_t o = o0 + oc + 16 * i;
        if (o < out) y[yo + o] = ls_tree8(acc[i]);
    }
}

template <typename T>
static cudaError_t ls_linear(const T *x, int64_t ldx, int64_t rows, int64_t in, const T *w,
                             const T *b, int64_t out, T *y, int64_t ldy, cudaStream_t stream) {
    LS_CUDA_REQUIRE(rows >= 0 && in > 0 && out > 0 && ldx >= in && ldy >= out,
                    "linear: bad sizes rows=%lld in=%lld out=%lld ldx=%lld ldy=%lld",
                    (long long)rows, (long long)in, (long long)out, (long long)ldx,
                    (long long)ldy);
    if (rows == 0) return cudaSuccess;
    if (rows <= LS_SK_ROWS) {   /* same bits, a kernel shaped for streaming the weights */
        const int64_t g = ls_cuda_cdiv(out, LS_SK_OUT);
        LS_CUDA_REQUIRE(g <= LS_CUDA_MAX_GRID_X, "linear: %lld outputs is too large for one launch",
                        (long long)out);
        ls_linear_skinny<T><<<(unsigned)g, 256, 0, stream>>>(x, ldx, (int)rows, in, w, b, out, y,
                                                             ldy);
        return ls_cuda_launched("linear (few rows)");
    }
    const int64_t gx = ls_cuda_cdiv(out, LS_LIN_TO), gy = ls_cuda_cdiv(rows, LS_LIN_TM);
    LS_CUDA_REQUIRE(gx <= LS_CUDA_MAX_GRID_X && gy <= LS_CUDA_MAX_GRID_YZ,
                    "linear: %lld rows x %lld outputs is too large for one launch",
                    (long long)rows, (long long)out);
    dim3 grid((unsigned)gx, (unsigned)gy);
    ls_linear_tiled<T><<<grid, 256, 0, stream>>>(x, ldx, rows, in, w, b, out, y, ldy);
    return ls_cuda_launched("linear");
}

template <typename T>
static cudaError_t ls_linear_moe(const T *x, int64_t ldx, int64_t x_div, int64_t pairs,
                                 int64_t in, const T *const *w_list, int64_t n_experts,
                                 const int32_t *grp, int64_t out, T *y, int64_t ldy,
                                 cudaStream_t stream) {
    LS_CUDA_REQUIRE(pairs >= 0 && pairs <= LS_CUDA_MOE_MAX_PAIRS && in > 0 && out > 0 &&
                        ldx >= in && ldy >= out && x_div >= 1 && n_experts >= 1 &&
                        n_experts <= LS_CUDA_MOE_MAX_EXPERTS && grp != NULL,
                    "linear_moe: bad sizes pairs=%lld in=%lld out=%lld x_div=%lld n_experts=%lld",
                    (long long)pairs, (long long)in, (long long)out, (long long)x_div,
                    (long long)n_experts);
    if (pairs == 0) return cudaSuccess;
    const int64_t gx = ls_cuda_moe_max_tiles(pairs, n_experts), gy = ls_cuda_cdiv(out, LS_LIN_TO);
    LS_CUDA_REQUIRE(gx <= LS_CUDA_MAX_GRID_X && gy <= LS_CUDA_MAX_GRID_YZ,
                    "linear_moe: %lld pairs x %lld outputs is too large for one launch",
                    (long long)pairs, (long long)out);
    dim3 grid((unsigned)gx, (unsigned)gy);
    ls_linear_moe_tiled<T><<<grid, 256, 0, stream>>>(x, ldx, x_div, pairs, in, w_list, n_experts,
                                                     grp, out, y, ldy);
    return ls_cuda_launched("linear_moe");
}

#define LS_INST(T, S)                                                                         \
    extern "C" cudaError_t ls_cuda_linear_##S(const T *x, int64_t ldx, int64_t rows,           \
                                              int64_t in, const T *w, const T *b, int64_t out, \
                                              T *y, int64_t ldy, cudaStream_t stream) {        \
        return ls_linear<T>(x, ldx, rows, in, w, b, out, y, ldy, stream);                      \
    }                                                                                          \
    extern "C" cudaError_t ls_cuda_linear_moe_##S(                                             \
        const T *x, int64_t ldx, int64_t x_div, int64_t pairs, int64_t in,                     \
        const T *const *w_list, int64_t n_experts, const int32_t *grp, int64_t out, T *y,      \
        int64_t ldy, cudaStream_t stream) {                                                    \
        return ls_linear_moe<T>(x, ldx, x_div, pairs, in, w_list, n_experts, grp, out, y, ldy, \
                                stream);                                                       \
    }
LS_INST(float, f32)
LS_INST(double, f64)
