/* CPU kernels, one op per file, each in float32 (_f32) and float64 (_f64).
 *
 * Invariance by construction: every kernel computes each output row from that row's
 * inputs with a fixed operation order that does not depend on how many rows there
 * are, where they sit in a batch, or how a sequence was chunked. The engine and the
 * reference call the same kernels, so in the same precision they agree bit for bit.
 * Build flags keep the compiler from reordering: -ffp-contract=off, no fast-math; the one
 * fused operation is the linear layer's multiply-add, written out as LS_FMA.
 *
 * Layouts: a linear layer's weight is [out][in] row-major (as in Hugging Face);
 * activations are [rows][features]. */
#ifndef LS_KERNELS_H
#define LS_KERNELS_H

#include <math.h>
#include <stdint.h>

/* a * b + c rounded once (C99 fma / fmaf): the same bits on every IEEE machine */
#define LS_FMA(a, b, c) _Generic((a), float: fmaf, double: fma)((a), (b), (c))

/* An x86-64 build also compiles the marked function for the FMA instruction set and picks
 * that copy at load time where the CPU has it (gcc/clang function multiversioning); the
 * default copy calls libm's fma, same bits, slower. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LS_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define LS_FMA_CLONES
#endif

/* Partial sums of a long row reduction (kernels/lanesum.c): rmsnorm and logsoftmax. */
#define LS_SUM_LANES 256

#define LS_KERNEL_DECLS(T, S)                                                                   \
    /* y[m][o] = sum_k w[o][k] * x[m][k] (+ b[o]); fixed k order, 8 interleaved fma sums  */ \
    void ls_linear_##S(const T *x, int64_t rows, int64_t in, const T *w, const T *b,          \
                       int64_t out, T *y);                                                     \
    /* y = w * (x / sqrt(mean(x^2) + eps)), per row of n; sum of squares in lanes */           \
    void ls_rmsnorm_##S(const T *x, int64_t rows, int64_t n, const T *w, double eps, T *y);    \
    T ls_silu_##S(T x);                                                                        \
    T ls_softplus_##S(T x);                                                                    \
    /* One token through a depthwise causal conv: state[c][0..K-2] holds the previous K-1     \
     * inputs of channel c (oldest first); out[c] = bias[c] + sum_k w[c][k] * window[k],       \
     * then silu; the state shifts in u. */                                                   \
    void ls_conv1d_step_##S(T *state, const T *u, const T *w, const T *bias, int64_t channels, \
                            int64_t K, T *out);                                               \
    /* One token of the selective scan: h[c][n] = exp(A[c][n]*dt[c]) * h[c][n] +              \
     * (dt[c]*B[n]) * x[c]; y[c] = (sum_n h[c][n]*C[n] + D[c]*x[c]) * silu(z[c]). */          \
    void ls_scan_step_##S(T *h, const T *x, const T *dt, const T *A, const T *B, const T *C,  \
                          const T *D, const T *z, int64_t channels, int64_t N, T *y);         \
    /* One query row over keys 0..n_keys-1 (in position order), keys and values found through \
     * a block table: position j lives at row block_table[j / block_size] * block_size +      \
     * j % block_size of the caches, each row kv_heads * head_dim wide. scores needs n_keys.  \
     * Softmax in two passes (max, then exp and sum), output sum_j p_j v_j in order of j. */  \
    void ls_attention_row_##S(const T *q, const T *kcache, const T *vcache,                   \
                              const int64_t *block_table, int64_t block_size, int64_t n_keys,  \
                              int64_t heads, int64_t kv_heads, int64_t head_dim, T *scores,   \
                              T *out);                                                         \
    /* Router for one row: probs = softmax(logits); the top k by probability (ties: lower     \
     * expert index first); weights are the probabilities, not renormalised (as Jamba).       \
     * idx and wts are returned in ascending expert order, the order outputs are summed in. */ \
    void ls_moe_route_##S(const T *logits, int64_t n_experts, int64_t k, T *probs,            \
                          int64_t *idx, T *wts);                                               \
    /* out = x - logsumexp(x) for one row of n; the sum of exps in lanes (lanesum.c) */        \
    void ls_logsoftmax_##S(const T *x, int64_t n, T *out);                                     \
    /* lane[0..LS_SUM_LANES-1] folded by the fixed halving tree; returns the sum */            \
    T ls_lanes_reduce_##S(T *lane);

LS_KERNEL_DECLS(float, f32)
LS_KERNEL_DECLS(double, f64)

#endif
