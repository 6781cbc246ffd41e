/* Causal depthwise conv1d over a whole step's ragged batch: one thread per (sequence,
 * channel) walks the sequence's tokens in order, carrying the conv state in registers
 * exactly as kernels/conv1d.c carries it in memory (acc = sum_k w[k]*state[k] for the
 * K-1 oldest-first state entries, + w[K-1]*u, + bias, then silu; shift u in). A prefill
 * chunk, a decode step, or a sequence alone or in any batch: the same operations. */
#include "kernels/cuda/common.cuh"

/* KT > 0: the kernel width known at compile time, the window in registers (fully
 * unrolled). KT == 0: any width up to LS_CUDA_MAX_CONV, the window shifted in the slot
 * itself as the CPU does. The arithmetic is the same either way. */
template <typename T, int KT>
__global__ void __launch_bounds__(128)
ls_conv1d_kernel(int64_t n_seqs, const int64_t *__restrict__ row0,
                 const int64_t *__restrict__ nrows, const int32_t *__restrict__ has_init,
                 T *const *__restrict__ states, const T *__restrict__ u, int64_t ldu,
                 const T *__restrict__ w, const T *__restrict__ bias, int64_t C, int Kr,
                 T *__restrict__ out, int64_t ldo) {
    ls_pdl_wait();
    const int K = KT > 0 ? KT : Kr;
    const int64_t gid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (gid >= n_seqs * C) return;
    const int64_t s = gid / C, c = gid % C;
    const int64_t r0 = row0[s], n = nrows[s];
    T *st = states[s];
    if (!st) {   /* no state given: outputs are NaN, loudly */
        for (int64_t i = 0; i < n; i++) out[(r0 + i) * ldo + c] = ls_nan<T>();
        return;
    }
    st += c * (int64_t)(K - 1);
    const T *wc = w + c * K;
    const T bc = bias ? bias[c] : (T)0;
    const int init = has_init[s];
    if (KT > 0) {
        T wr[KT > 0 ? KT : 1], reg[KT > 1 ? KT - 1 : 1];
#pragma unroll
        for (int k = 0; k < KT; k++) wr[k] = wc[k];
#pragma unroll
        for (int k = 0; k < KT - 1; k++) reg[k] = init ? st[k] : (T)0;
        for (int64_t i = 0; i < n; i++) {
            const int64_t r = r0 + i;
            const T uv = u[r * ldu + c];
            T acc = 0;
#pragma unroll
            for (int k = 0; k < KT - 1; k++) acc += wr[k] * reg[k];
            acc += wr[KT - 1] * uv;
            if (bias) acc += bc;
            out[r * ldo + c] = ls_silu(acc);
#pragma unroll
            for (int k = 0; k + 1 < KT - 1; k++) reg[k] = reg[k + 1];
            if (KT > 1) reg[KT > 1 ? KT - 2 : 0] = uv;
        }
#pragma unroll
        for (int k = 0; k < KT - 1; k++) st[k] = reg[k];
    } else {
        if (!init)
            for (int k = 0; k < K - 1; k++) st[k] = (T)0;
        for (int64_t i = 0; i < n; i++) {
            const int64_t r = r0 + i;
            const T uv = u[r * ldu + c];
            T acc = 0;
            for (int k = 0; k < K - 1; k++) acc += wc[k] * st[k];
            acc += wc[K - 1] * uv;
            if (bias) acc += bc;
            out[r * ldo + c] = ls_silu(acc);
            if (K > 1) {
                for (int k = 0; k < K - 2; k++) st[k] = st[k + 1];
                st[K - 2] = uv;
            }
        }
    }
}

template <typename T>
static cudaError_t ls_conv1d(const ls_cuda_batch *b, T *const *states, const T *u, int64_t ldu,
                             const T *w, const T *bias, int64_t C, int64_t K, T *out,
                             int64_t ldo, cudaStream_t stream) {
    LS_CUDA_REQUIRE(b && b->n_seqs >= 0 && C > 0 && K >= 1 && K <= LS_CUDA_MAX_CONV &&
                        ldu >= C && ldo >= C,
                    "conv1d: bad arguments C=%lld K=%lld (K at most %d)", (long long)C,
                    (long long)K, LS_CUDA_MAX_CONV);
    const int64_t total = b->n_seqs * C;
    if (total == 0) return cudaSuccess;
    const int64_t blocks = ls_cuda_cdiv(total, 128);
    LS_CUDA_REQUIRE(blocks <= LS_CUDA_MAX_GRID_X, "conv1d: batch too large");
#define LS_CONV_LAUNCH(KT)                                                                  \
    ls_launch_pdl("conv1d", ls_conv1d_kernel<T, KT>, dim3((unsigned)blocks), dim3(128), stream, \
                  b->n_seqs, b->row0, b->n, b->has_init, states, u, ldu, w, bias, C, (int)K,  \
                  out, ldo)
    switch (K) {   /* Jamba's d_conv is 4 */
    case 2: return LS_CONV_LAUNCH(2);
    case 3: return LS_CONV_LAUNCH(3);
    case 4: return LS_CONV_LAUNCH(4);
    default: return LS_CONV_LAUNCH(0);
    }
#undef LS_CONV_LAUNCH
}

#define LS_INST(T, S)                                                                         \
    extern "C" cudaError_t ls_cuda_conv1d_##S(const ls_cuda_batch *b, T *const *states,        \
                                              const T *u, int64_t ldu, const T *w,             \
                                              const T *bias, int64_t channels, int64_t K,      \
                                              T *out, int64_t ldo, cudaStream_t stream) {      \
        return ls_conv1d<T>(b, states, u, ldu, w, bias, channels, K, out, ldo, stream);        \
    }
LS_INST(float, f32)
LS_INST(double, f64)
