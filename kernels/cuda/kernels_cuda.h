/* CUDA twins of the CPU kernels in kernels/kernels.h, plus the batch-level pieces a GPU
 * forward pass needs (ragged conv / scan / attention over a whole step, MoE dispatch,
 * KV writes, state copies, batched copies). C-callable; compiled as CUDA C++ (the .cu files of kernels/cuda/).
 *
 * Every pointer argument is a DEVICE pointer unless the comment says "host". Every
 * function is asynchronous on `stream` (0 = the legacy default stream) and returns
 * cudaSuccess, cudaErrorInvalidValue for bad arguments (ls_cuda_error_message() says
 * which), or the launch error. Kernels are batched over the whole step: one launch per
 * call, never one per sequence.
 *
 * Invariance by construction, as on the CPU: each output element is computed by one
 * fixed sequence of floating-point operations that depends only on that row's inputs
 * (never on the number of rows, the row's place in the batch, the tile it lands in, the
 * chunking of a sequence, or the KV blocks its keys live in). Device code is built with
 * -fmad=false (no multiply-add contraction; the linear's dot8 names its fma on both sides)
 * and IEEE division / square root, and every reduction runs in the CPU twin's order, so:
 *   - bitwise equal to the CPU twin: embedding, linear (invariant), rmsnorm, KV write,
 *     MoE combine, logprob gather, state copy, add -- pure +,*,fma,/,sqrt in the same order;
 *   - equal to the CPU twin up to exp/log/log1p: conv1d (silu), selective scan,
 *     attention, logsoftmax, MoE route, silu_mul, softplus. CUDA's exp/log are not
 *     glibc's (each is within 1-2 ulp of the true value but they round differently on
 *     some inputs), so those ops agree bitwise on most elements and within a few ulp
 *     (propagated) on the rest. See docs/gpu.md for measured numbers.
 * GPU results are deterministic run to run and batch-invariant in both precisions.
 *
 * Offsets into caches, pools and weights are computed in 64-bit arithmetic everywhere.
 * Layouts match kernels.h: weights [out][in] row-major, activations [rows][features]
 * with an explicit row stride (ld*, in elements) where a caller may view a sub-block. */
#ifndef LS_KERNELS_CUDA_H
#define LS_KERNELS_CUDA_H

#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "engine/copy_plan.h"   /* ls_copy_op */

#ifdef __cplusplus
extern "C" {
#endif

/* Message for the last error returned by an ls_cuda_* call on this host thread
 * ("" if none). */
const char *ls_cuda_error_message(void);

/* 1 if a usable CUDA device is present, 0 otherwise (never an error). */
int ls_cuda_device_available(void);

/* Which kernel shape computes an invariant linear (ls_cuda_linear_*, ls_cuda_linear_moe_*).
 * Every path gives the same bits; the choice is only speed.
 *   FEW:   a block streams 32 outputs of the weights for up to 8 rows (linear: 8-row chunks of
 *          the rows; MoE: a quarter of a 32-pair tile of one expert). For few rows (decode
 *          at small batch) and for products with few outputs, where the tiled kernel would
 *          get few blocks, each walking all of K.
 *   TILED: 32 rows (pairs) x 64 outputs per block, 8 x 8 per thread: arithmetic-bound work.
 *   AUTO:  linear: FEW up to 16 rows; above, TILED once its grid has >= 96 blocks of 32 rows
 *          x 64 outputs (enough to spread over the SMs), FEW below (ls_cuda_linear_auto_path).
 *          MoE: FEW at <= LS_CUDA_MOE_FEW_PER_EXPERT pairs per expert on average, TILED
 *          otherwise. */
enum { LS_CUDA_PATH_AUTO = 0, LS_CUDA_PATH_FEW = 1, LS_CUDA_PATH_TILED = 2 };

/* A step's batch as the GPU kernels see it: sequence s owns batch rows
 * [row0[s], row0[s] + n[s]) (row0 is the exclusive prefix sum of n, so rows are
 * contiguous and in sequence order), at positions start_pos[s] + i. */
typedef struct ls_cuda_batch {
    int64_t n_seqs;              /* host */
    int64_t rows;                /* host: sum of n */
    int64_t max_keys;            /* host: >= max over s of start_pos[s] + n[s] (attention) */
    const int64_t *row0;         /* [n_seqs] */
    const int64_t *n;            /* [n_seqs] */
    const int64_t *start_pos;    /* [n_seqs] (attention, KV write) */
    const int32_t *has_init;     /* [n_seqs]: 0 = the Mamba state starts from zeros (and the
                                  * slot is overwritten), 1 = read what the slot holds */
    const int64_t *block_tables; /* all sequences' block tables, concatenated */
    const int64_t *bt_off;       /* [n_seqs]: where s's table starts in block_tables; -1 marks
                                  * a padding sequence (no KV read or written, zero output) */
} ls_cuda_batch;

#define LS_CUDA_DECLS(T, S)                                                                    \
    /* x[r][:] = table[tokens[r]][:]; a token outside [0, vocab) gives a NaN row. */           \
    cudaError_t ls_cuda_embed_##S(const int32_t *tokens, int64_t rows, const T *table,          \
                                  int64_t vocab, int64_t H, T *x, cudaStream_t stream);         \
    /* y[r] = w * (x[r] / sqrt(mean(x[r]^2) + eps)); one block per row, the sum of squares in  \
     * the CPU's lanes (kernels/lanesum.c). In place (x == y, same ld) is allowed. */           \
    cudaError_t ls_cuda_rmsnorm_##S(const T *x, int64_t ldx, int64_t rows, int64_t n,          \
                                    const T *w, double eps, T *y, int64_t ldy,                  \
                                    cudaStream_t stream);                                       \
    /* x row += a row (stored), then y row = rmsnorm(x row) as above: the add kernel and     \
     * rmsnorm in one launch, the same bits. y may be x only if ldy == ldx. */                \
    cudaError_t ls_cuda_add_rmsnorm_##S(T *x, int64_t ldx, const T *a, int64_t lda,            \
                                        int64_t rows, int64_t n, const T *w, double eps, T *y,  \
                                        int64_t ldy, cudaStream_t stream);                      \
    /* In place, each of segs' segments of every row (x + r*ldx + off[q], n[q] wide) normed   \
     * with its own weights w[q] as ls_cuda_rmsnorm: the same bits as one call per segment,   \
     * in one launch (Mamba's dt, B and C norms). Segments must not overlap. */               \
    cudaError_t ls_cuda_rmsnorm_segs_##S(T *x, int64_t ldx, int64_t rows,                      \
                                         const ls_cuda_norm_segs *segs, double eps,             \
                                         cudaStream_t stream);                                  \
    /* Invariant linear: y[m][o] = dot8(w[o][:], x[m][:]) (+ b[o]), each dot product in       \
     * kernels/matmul.c's order (8 partial sums over k mod 8, fixed tree). b may be NULL.     \
     * x and y must not overlap. `path`: LS_CUDA_PATH_* (the same bits on every path). */     \
    cudaError_t ls_cuda_linear_##S(const T *x, int64_t ldx, int64_t rows, int64_t in,          \
                                   const T *w, const T *b, int64_t out, T *y, int64_t ldy,     \
                                   int path, cudaStream_t stream);                              \
    /* MoE expert linear over (row, slot) pairs p in [0, pairs): y[p] = dot8(W_e[o], x[p /    \
     * x_div]) with e = expert[p] and W_e = w_list[e] (a device array of device pointers,      \
     * one [out][in] matrix per expert). x_div = k reads each token's row k times (gate/up);  \
     * x_div = 1 reads one row per pair (down). Same bits as ls_cuda_linear for the same       \
     * (x, W). An expert index outside [0, n_experts) gives a NaN row. `grp` is what          \
     * ls_cuda_moe_group wrote for these expert indices, with the same pairs and n_experts:    \
     * each block computes (part of) one tile of <= LS_CUDA_MOE_TILE pairs of one expert, so   \
     * an expert's weights are read once per tile, not once per pair. `path`:                \
     * LS_CUDA_PATH_* (the same bits on every path). */                                        \
    cudaError_t ls_cuda_linear_moe_##S(const T *x, int64_t ldx, int64_t x_div, int64_t pairs, \
                                       int64_t in, const T *const *w_list, int64_t n_experts,  \
                                       const int32_t *grp, int64_t out, T *y, int64_t ldy,     \
                                       int path, cudaStream_t stream);                          \
    /* Fast mode: the same product through cuBLAS (not batch invariant, not bitwise; TF32    \
     * tensor cores when allow_tf32 and T is float). b may be NULL. */                         \
    cudaError_t ls_cuda_linear_fast_##S(cublasHandle_t handle, const T *x, int64_t ldx,        \
                                        int64_t rows, int64_t in, const T *w, const T *b,       \
                                        int64_t out, T *y, int64_t ldy, int allow_tf32,         \
                                        cudaStream_t stream);                                   \
    /* Fast mode's MoE expert linear: ls_cuda_linear_moe's product (same arguments and        \
     * layout, NaN rows for invalid experts) through one cuBLAS batched GEMM over the tiles of \
     * `grp`, which ls_cuda_moe_group_tiles made with this `tile`; tolerance-compared, not     \
     * bitwise (TF32 when allow_tf32 and T is float). ws: device workspace of                 \
     * ls_cuda_linear_moe_fast_ws(pairs, n_experts, tile, in, out, sizeof(T)) bytes, 256-byte \
     * aligned, not used by anything else until the stream gets past this call. */            \
    cudaError_t ls_cuda_linear_moe_fast_##S(cublasHandle_t handle, const T *x, int64_t ldx,    \
                                            int64_t x_div, int64_t pairs, int64_t in,          \
                                            const T *const *w_list, int64_t n_experts,         \
                                            const int32_t *grp, int64_t tile, int64_t out, T *y, \
                                            int64_t ldy, void *ws, int64_t ws_bytes,           \
                                            int allow_tf32, cudaStream_t stream);               \
    /* Fast mode's MLP over every expert (mlp_fast.cu): y[r*E + e] (H wide) =                 \
     * W_down_e (silu(W_gate_e x_r) * (W_up_e x_r)) for every row r < rows and expert e < E.   \
     * w_gu: one [2*E*I][H] matrix (every expert's gate, then every expert's up); w_down:       \
     * [E][H][I]; gu, act: scratch of rows*2*E*I and rows*E*I elements. E = 1 is a dense MLP   \
     * (its gate and up in one GEMM). cuBLAS (TF32 when allow_tf32 and T is float):            \
     * tolerance-compared, not bitwise. */                                                     \
    cudaError_t ls_cuda_mlp_fast_##S(cublasHandle_t handle, const T *x, int64_t ldx,           \
                                     int64_t rows, int64_t H, int64_t I, int64_t E,             \
                                     const T *w_gu, const T *w_down, T *gu, T *act, T *y,       \
                                     int allow_tf32, cudaStream_t stream);                      \
    /* Causal depthwise conv over the whole step, one thread per (sequence, channel), its     \
     * tokens in order: u row r at u + r*ldu (channels wide), output at out + r*ldo.           \
     * states[s] = sequence s's conv state [channels][K-1] (oldest first), carried across     \
     * the tokens and left holding the last K-1 inputs, as ls_conv1d_step. bias may be NULL.  \
     * K <= LS_CUDA_MAX_CONV. */                                                               \
    cudaError_t ls_cuda_conv1d_##S(const ls_cuda_batch *b, T *const *states, const T *u,      \
                                   int64_t ldu, const T *w, const T *bias, int64_t channels,   \
                                   int64_t K, T *out, int64_t ldo, cudaStream_t stream);        \
    /* Selective scan over the whole step, one thread per (sequence, channel), tokens in      \
     * order and n in order, as ls_scan_step. states[s] = sequence s's SSM state [channels][N]. \
     * Row r reads x + r*ldx, dt + r*lddt, B + r*ldB, C + r*ldC, z + r*ldz (channels wide, B    \
     * and C N wide) and writes y + r*ldy; A [channels][N], D [channels]. dt as read is        \
     * softplus(dt + dt_bias[c]) when dt_bias (may be NULL: no add) and dt_softplus (0: no     \
     * softplus) say so: the same bits as ls_linear's bias then ls_cuda_softplus. */           \
    cudaError_t ls_cuda_scan_##S(const ls_cuda_batch *b, T *const *states, const T *x,         \
                                 int64_t ldx, const T *dt, int64_t lddt, const T *dt_bias,      \
                                 int dt_softplus, const T *A, const T *B, int64_t ldB,          \
                                 const T *C, int64_t ldC, const T *D, const T *z, int64_t ldz,  \
                                 int64_t channels, int64_t N, T *y, int64_t ldy,                \
                                 cudaStream_t stream);                                          \
    /* KV write: row r of sequence s (position start_pos[s] + i) copies k[r], v[r] (kv_dim     \
     * wide, row stride ldk / ldv) to cache row block_table[pos / bs] * bs + pos % bs.         \
     * Padding sequences write nothing. */                                                     \
    cudaError_t ls_cuda_kv_write_##S(const ls_cuda_batch *b, const T *k, int64_t ldk,          \
                                     const T *v, int64_t ldv, int64_t block_size,               \
                                     int64_t kv_dim, T *kcache, T *vcache, cudaStream_t stream); \
    /* Causal attention, one block per (row, head): row r of sequence s attends to keys       \
     * 0..start_pos[s]+i in position order through s's block table, exactly as                 \
     * ls_attention_row. q row r at q + r*ldq (heads*head_dim), out row at out + r*ldo.        \
     * scratch: rows * heads * max_keys elements. Padding sequences get zero rows. Call       \
     * ls_cuda_kv_write first (same stream). */                                                \
    cudaError_t ls_cuda_attention_##S(const ls_cuda_batch *b, const T *q, int64_t ldq,         \
                                      const T *kcache, const T *vcache, int64_t block_size,     \
                                      int64_t heads, int64_t kv_heads, int64_t head_dim,        \
                                      T *scratch, T *out, int64_t ldo, cudaStream_t stream);     \
    /* Router, one thread per row, as ls_moe_route: probs [rows][E] (scratch), idx and wts    \
     * [rows][k] in ascending expert order (the order outputs are summed in). */               \
    cudaError_t ls_cuda_moe_route_##S(const T *logits, int64_t ld, int64_t rows, int64_t E,    \
                                      int64_t k, T *probs, int64_t *idx, T *wts,                \
                                      cudaStream_t stream);                                     \
    /* out[r][j] = 0; out[r][j] += y[r*k + t][j] * wts[r][t] for t = 0..k-1 (ascending expert  \
     * order, as the CPU forward). y rows are H wide. */                                       \
    cudaError_t ls_cuda_moe_combine_##S(const T *y, const T *wts, int64_t rows, int64_t k,     \
                                        int64_t H, T *out, cudaStream_t stream);                \
    /* The same sum over every expert's output y [rows][E][H] (ls_cuda_mlp_fast): slot t of  \
     * row r reads y row r*E + idx[r*k + t]; NaN for an index outside [0, E). */               \
    cudaError_t ls_cuda_moe_combine_dense_##S(const T *y, const T *wts, const int64_t *idx,    \
                                              int64_t rows, int64_t k, int64_t E, int64_t H,    \
                                              T *out, cudaStream_t stream);                     \
    /* out row = x row - logsumexp(x row), one block per row, in ls_logsoftmax's order. In   \
     * place allowed. */                                                                       \
    cudaError_t ls_cuda_logsoftmax_##S(const T *x, int64_t ldx, int64_t rows, int64_t n,       \
                                       T *out, int64_t ldo, cudaStream_t stream);               \
    /* out[r] = logp[r*ld + tokens[r]]; NaN for a token outside [0, n). */                    \
    cudaError_t ls_cuda_gather_logprob_##S(const T *logp, int64_t ld, int64_t rows, int64_t n, \
                                           const int32_t *tokens, T *out, cudaStream_t stream);  \
    /* Elementwise, n elements: x = softplus(x); act = silu(g) * up; x = x + y; p = value. */  \
    cudaError_t ls_cuda_softplus_##S(T *x, int64_t n, cudaStream_t stream);                    \
    cudaError_t ls_cuda_silu_mul_##S(const T *g, const T *up, T *act, int64_t n,               \
                                     cudaStream_t stream);                                      \
    /* act[r*lda + c] = silu(g[r*ldg + c]) * up[r*ldu + c] for r < rows, c < n. */           \
    cudaError_t ls_cuda_silu_mul_rows_##S(const T *g, int64_t ldg, const T *up, int64_t ldu,   \
                                          int64_t rows, int64_t n, T *act, int64_t lda,         \
                                          cudaStream_t stream);                                 \
    cudaError_t ls_cuda_add_##S(T *x, const T *y, int64_t n, cudaStream_t stream);             \
    cudaError_t ls_cuda_fill_##S(T *p, int64_t n, T value, cudaStream_t stream);

#define LS_CUDA_MAX_CONV 16 /* largest conv kernel width (d_conv) supported */

/* Up to LS_CUDA_NORM_MAX_SEGS segments of a row for ls_cuda_rmsnorm_segs_*: offsets and widths
 * in elements, w[q] the segment's device weights (of the call's T). Passed by value. */
#define LS_CUDA_NORM_MAX_SEGS 4
typedef struct ls_cuda_norm_segs {
    int n_seg;
    int64_t off[LS_CUDA_NORM_MAX_SEGS], n[LS_CUDA_NORM_MAX_SEGS];
    const void *w[LS_CUDA_NORM_MAX_SEGS];
} ls_cuda_norm_segs;

LS_CUDA_DECLS(float, f32)
LS_CUDA_DECLS(double, f64)

/* MoE grouping for ls_cuda_linear_moe_*: a stable counting sort of the pairs p in
 * [0, pairs) by expert[p] (ascending expert, ascending p within an expert; pairs whose
 * expert is outside [0, n_experts) form a last group n_experts), cut into tiles of at most
 * LS_CUDA_MOE_TILE pairs of one group. Computed on the device in one launch (one block; the
 * host never sees the counts), deterministic. Call it once per MoE layer after the router;
 * the gate, up and down linears share it. `grp` (device) holds
 * ls_cuda_moe_group_len(pairs, n_experts) int32 elements:
 *   grp[0]                          the number of tiles, n_tiles <= ls_cuda_moe_max_tiles()
 *   grp[1 + i], i < pairs           order: the i-th pair in sorted order
 *   grp[1 + pairs + 3t + {0,1,2}]   tile t < n_tiles: its group (expert, n_experts = invalid),
 *                                   its first position i in order, its number of pairs
 *                                   (1..32; 1..tile from ls_cuda_moe_group_tiles)
 * Tiles are in group order, then position order. Needs pairs <= LS_CUDA_MOE_MAX_PAIRS and
 * n_experts <= LS_CUDA_MOE_MAX_EXPERTS. */
#define LS_CUDA_MOE_TILE 32   /* the row tile of the tiled linear kernel */
#define LS_CUDA_MOE_MAX_EXPERTS 256
#define LS_CUDA_MOE_MAX_PAIRS (INT64_C(1) << 30)
#define LS_CUDA_MOE_MAX_TILE 1024
static inline int64_t ls_cuda_moe_max_tiles_of(int64_t pairs, int64_t n_experts, int64_t tile) {
    /* sum over the n_experts + 1 groups of ceil(count / tile) <= ceil(pairs / tile) + groups */
    return (pairs + tile - 1) / tile + n_experts + 1;
}
static inline int64_t ls_cuda_moe_max_tiles(int64_t pairs, int64_t n_experts) {
    return ls_cuda_moe_max_tiles_of(pairs, n_experts, LS_CUDA_MOE_TILE);
}
static inline int64_t ls_cuda_moe_group_len_of(int64_t pairs, int64_t n_experts, int64_t tile) {
    return 1 + pairs + 3 * ls_cuda_moe_max_tiles_of(pairs, n_experts, tile);
}
static inline int64_t ls_cuda_moe_group_len(int64_t pairs, int64_t n_experts) {
    return ls_cuda_moe_group_len_of(pairs, n_experts, LS_CUDA_MOE_TILE);
}
cudaError_t ls_cuda_moe_group(const int64_t *expert, int64_t pairs, int64_t n_experts,
                              int32_t *grp, cudaStream_t stream);
/* The same grouping with tiles of up to `tile` pairs (1 .. LS_CUDA_MOE_MAX_TILE), for
 * ls_cuda_linear_moe_fast_* (the invariant ls_cuda_linear_moe_* needs LS_CUDA_MOE_TILE);
 * grp holds ls_cuda_moe_group_len_of(pairs, n_experts, tile) int32. */
cudaError_t ls_cuda_moe_group_tiles(const int64_t *expert, int64_t pairs, int64_t n_experts,
                                    int64_t tile, int32_t *grp, cudaStream_t stream);

/* Where the forward's fast modes send the MoE expert linears through cuBLAS
 * (ls_cuda_moe_fast_tile returns 0 below): above a mean of 8 pairs per expert with TF32, 32
 * without (pedantic fp32 / fp64 on CUDA cores beat the invariant kernels only there), where
 * ls_cuda_moe_dense_fast does not take the layer first. TF32: tiles of the smallest of 32,
 * 64, 128, 256 pairs that holds twice the mean (most experts fit one tile and their weights
 * are read once; the padding stays under half); pedantic fp32 / fp64: tiles of 64. From
 * bench_gpu's MoE table (docs/gpu.md), ms per MoE layer of the bench model: fourth session
 * (H100): 128 pairs: invariant 0.250, fp32 t=32 0.325, TF32 t=32 0.165; 32 pairs: invariant
 * 0.153, TF32 t=32 0.164. Seventh session (H200): pedantic fp32 at 512 / 1024 / 2048 pairs:
 * t=64 0.544 / 0.676 / 0.975, t=128 0.604 / 0.891 / 1.111, t=256 1.055 / 1.105 / 1.614,
 * invariant 0.547 / 0.922 / 1.670. */
#define LS_CUDA_MOE_FAST_MIN_PER_EXPERT_TF32 8
#define LS_CUDA_MOE_FAST_MIN_PER_EXPERT 32
#define LS_CUDA_MOE_FAST_TILE_FP32 64
static inline int64_t ls_cuda_moe_fast_tile(int64_t pairs, int64_t n_experts, int tf32) {
    const int64_t min = tf32 ? LS_CUDA_MOE_FAST_MIN_PER_EXPERT_TF32 : LS_CUDA_MOE_FAST_MIN_PER_EXPERT;
    if (n_experts < 2 || pairs <= min * n_experts) return 0;
    if (!tf32) return LS_CUDA_MOE_FAST_TILE_FP32;
    int64_t t = 32;
    while (t < 256 && t * n_experts < 2 * pairs) t *= 2;
    return t;
}

/* Where the forward's fast modes run a MoE layer densely instead (ls_cuda_mlp_fast over every
 * expert, then ls_cuda_moe_combine_dense; ls_cuda_moe_fast_tile is not asked then): up to
 * LS_CUDA_MOE_DENSE_MAX_ROWS_TF32 rows with TF32, LS_CUDA_MOE_DENSE_MAX_ROWS in pedantic fp32,
 * never in fp64. Measured on the H200 (bench_gpu's MoE table, docs/gpu.md, seventh session),
 * ms per MoE layer of the bench model (8 experts, top 2), dense against the best other path:
 * TF32 at 1 / 16 / 64 / 256 / 512 / 1024 rows: 0.066 / 0.071 / 0.069 / 0.102 / 0.181 / 0.341
 * against 0.087 (invariant) / 0.122 (invariant) / 0.139 (t=64) / 0.167 (t=128) / 0.185 (t=64)
 * / 0.260 (t=128): the layer is bound by its weights' bytes, which the dense path reads once
 * in cuBLAS's largest shapes, until its E / k times more products catch up. Pedantic fp32 at
 * 1 / 4 / 16 / 32 / 64 / 128 / 256 rows: 0.066 / 0.093 / 0.164 / 0.132 / 0.179 / 0.290 / 0.552
 * against 0.088 / 0.113 / 0.122 / 0.169 / 0.208 / 0.362 / 0.546 (the session's last call):
 * wins everywhere up to 128 rows but at 16, where cuBLAS's kernel choice breaks the pattern;
 * only the one-row win is taken so far (a rule with a hole at 16 rows would need the rows
 * around it measured). */
#define LS_CUDA_MOE_DENSE_MAX_ROWS_TF32 512
#define LS_CUDA_MOE_DENSE_MAX_ROWS 1
static inline int ls_cuda_moe_dense_fast(int64_t rows, int64_t n_experts, int64_t k, int tf32,
                                         int f64) {
    const int64_t max = f64 ? 0 : tf32 ? LS_CUDA_MOE_DENSE_MAX_ROWS_TF32 : LS_CUDA_MOE_DENSE_MAX_ROWS;
    return n_experts >= 2 && k >= 1 && rows >= 1 && rows <= max;
}

/* The workspace bytes ls_cuda_linear_moe_fast_* needs. */
int64_t ls_cuda_linear_moe_fast_ws(int64_t pairs, int64_t n_experts, int64_t tile, int64_t in,
                                   int64_t out, int64_t elem_size);

/* For ls_cuda_linear_moe_*: AUTO takes the few-rows kernel when
 * pairs <= LS_CUDA_MOE_FEW_PER_EXPERT * n_experts (LS_CUDA_PATH_* is above). */
#define LS_CUDA_MOE_FEW_PER_EXPERT 8

/* For ls_cuda_linear_*: what AUTO runs. Up to LS_CUDA_LINEAR_FEW_MAX_ROWS rows (two 8-row
 * chunks) the few-rows kernel: it reads the weights once per chunk, where the tiled one
 * would compute 16+ rows of padding. Measured on the H100 (bench_gpu's per-shape table,
 * docs/gpu.md, fifth session, the few-rows kernel prefetching its next K tile): faster on
 * every shape of the bench model at 1 row (1.7-3.9x) and at 16 rows (in_proj 1.33x on 128
 * tiled blocks, lm_head 1.39x on 500, dt_proj 1.15x). Above, the tiled kernel once its grid
 * of 32-row x 64-output blocks has LS_CUDA_LINEAR_TILED_MIN_BLOCKS blocks, the few-rows
 * kernel below that. Each tiled block walks all of K for its tile, so with few blocks most
 * SMs idle; the few-rows kernel re-reads the weights once per 8 rows but spreads 32-output
 * blocks: at 64 tiled blocks the few-rows kernel is faster (out_proj at 64 rows 1.39x, q / o
 * 1.25x; x_proj at 256 rows, 24 blocks, 2.5x), at 128 the tiled one wins (in_proj at 64 rows
 * 0.70x, dt_proj at 64 rows 0.42x, mlp gate at 256 rows 0.64x); the cut sits between. Speed
 * only: the same bits either way. */
#define LS_CUDA_LINEAR_FEW_MAX_ROWS 16
#define LS_CUDA_LINEAR_TILED_MIN_BLOCKS 96
#define LS_CUDA_LINEAR_TILE_ROWS 32
#define LS_CUDA_LINEAR_TILE_OUT 64
static inline int ls_cuda_linear_auto_path(int64_t rows, int64_t out) {
    if (rows <= LS_CUDA_LINEAR_FEW_MAX_ROWS) return LS_CUDA_PATH_FEW;
    const int64_t blocks = ((rows + LS_CUDA_LINEAR_TILE_ROWS - 1) / LS_CUDA_LINEAR_TILE_ROWS) *
                           ((out + LS_CUDA_LINEAR_TILE_OUT - 1) / LS_CUDA_LINEAR_TILE_OUT);
    return blocks >= LS_CUDA_LINEAR_TILED_MIN_BLOCKS ? LS_CUDA_PATH_TILED : LS_CUDA_PATH_FEW;
}

/* State copy (fork / snapshot / restore): for each pair i, copies `bytes` bytes from
 * src_base + src_slots[i] * stride_bytes to dst_base + dst_slots[i] * stride_bytes,
 * offsets computed in 64-bit with overflow checks. src_slots, dst_slots: HOST arrays.
 * One launch for all pairs (chunks of 256). Ranges may not overlap between pairs. */
cudaError_t ls_cuda_state_copy(void *dst_base, const void *src_base, int64_t stride_bytes,
                               const int64_t *src_slots, const int64_t *dst_slots,
                               int64_t n_pairs, int64_t bytes, cudaStream_t stream);

/* One draw of engine/sampler.c's ls_sample from row `row` of a [n_rows][vocab] block of
 * log-probability rows, keyed by (seed, request, rollout, position) like the host's. */
typedef struct ls_cuda_sample_job {
    int64_t row;
    double temperature;          /* 0 = greedy */
    int64_t top_k;               /* 0 = all */
    double top_p;                /* (0, 1] */
    uint64_t seed, request, rollout, position;
} ls_cuda_sample_job;

/* Whether any of these draws (a host array) keeps only a prefix of its row's ranking (top_k
 * below vocab or top_p < 1 at temperature > 0), so that the rows must be sorted first. */
int ls_cuda_sample_needs_sort(const ls_cuda_sample_job *jobs, int64_t n_jobs, int64_t vocab);
/* Bytes of device workspace ls_cuda_sample_* needs for n_rows rows of `vocab` (-1 if the
 * sort cannot be sized). */
int64_t ls_cuda_sample_workspace(int64_t n_rows, int64_t vocab);
/* tokens[j], lps[j] = the token of draw jobs[j] (a device array) and its log-probability
 * (the row's value widened to double), exactly ls_sample's definition: the exponential race,
 * and top_p's sums in the host's order, so a token can differ from the host's only where
 * CUDA's exp or log rounds differently from glibc's at a tie. sort_rows: nonzero to sort the
 * rows first, required when ls_cuda_sample_needs_sort says so (a draw that needs the
 * ranking without it returns token -1 and a NaN log-probability). */
#define LS_CUDA_SAMPLE_DECL(T, S)                                                             \
    cudaError_t ls_cuda_sample_##S(const T *rows, int64_t n_rows, int64_t vocab,               \
                                   const ls_cuda_sample_job *jobs, int64_t n_jobs,             \
                                   int sort_rows, void *work, int64_t work_bytes,              \
                                   int32_t *tokens, double *lps, cudaStream_t stream);
LS_CUDA_SAMPLE_DECL(float, f32)
LS_CUDA_SAMPLE_DECL(double, f64)

/* Strided fill (debug poison of a state pool): `count` runs of `n` elements of elem_bytes
 * (4 or 8) bytes, run c starting at element c * stride of p, every element set to the low
 * elem_bytes bytes of `bits`. One launch; 64-bit indices. */
cudaError_t ls_cuda_fill_strided(void *p, int64_t elem_bytes, int64_t n, int64_t count,
                                 int64_t stride, uint64_t bits, cudaStream_t stream);

/* Batched copies: ops[0, n) (a DEVICE array of descriptors, addresses device memory) each
 * copy `bytes` bytes from src to dst, or zero-fill dst where src is NULL, all in one launch
 * (one per 65535 ops), concurrently: the ops must be conflict-free (engine/copy_plan.h: no
 * op writes bytes another op, or itself, reads or writes). max_bytes: the largest op's
 * bytes (the grid's x extent); unit: 1, 4, 8 or 16, and must divide every op's dst, src
 * and bytes (ls_cuda_copy_unit; the caller's promise: the descriptors are not read here). */
cudaError_t ls_cuda_copy_batch(const ls_copy_op *ops, int64_t n, int64_t max_bytes, int unit,
                               cudaStream_t stream);
/* The widest unit (16, 8, 4 or 1) that divides op's dst, src and bytes (host op). */
int ls_cuda_copy_unit(const ls_copy_op *op);

#ifdef __cplusplus
}
#endif

#endif
