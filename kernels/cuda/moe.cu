/* MoE routing and combine. Route: one thread per row runs kernels/moe.c's code (log-softmax
 * in its order, exp, k selection passes with ties to the lower index, insertion sort to
 * ascending expert order, weights not renormalised). Combine: out = 0, then out +=
 * y_t * w_t for the row's k slots in ascending expert order, one thread per element.
 * The experts themselves run through ls_cuda_linear_moe over (row, slot) pairs. */
#include <math.h>

#include "kernels/cuda/common.cuh"

template <typename T>
__global__ void ls_moe_route_kernel(const T *__restrict__ logits, int64_t ld, int64_t rows,
                                    int64_t E, int64_t k, T *__restrict__ probs,
                                    int64_t *__restrict__ idx, T *__restrict__ wts) {
    const int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const T *lr = logits + r * ld;
    T *pr = probs + r * E;
    int64_t *ix = idx + r * k;
    T *wr = wts + r * k;
    /* ls_logsoftmax */
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

template <typename T>
__global__ void ls_moe_combine_kernel(const T *__restrict__ y, const T *__restrict__ wts,
                                      int64_t rows, int64_t k, int64_t H, T *__restrict__ out) {
    const int64_t total = rows * H;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / H, j = i % H;
        T o = 0;
        for (int64_t t = 0; t < k; t++) o += y[(r * k + t) * H + j] * wts[r * k + t];
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
    ls_moe_route_kernel<T><<<(unsigned)ls_cuda_cdiv(rows, 64), 64, 0, stream>>>(
        logits, ld, rows, E, k, probs, idx, wts);
    return ls_cuda_launched("moe_route");
}

template <typename T>
static cudaError_t ls_moe_combine(const T *y, const T *wts, int64_t rows, int64_t k, int64_t H,
                                  T *out, cudaStream_t stream) {
    LS_CUDA_REQUIRE(rows >= 0 && k >= 1 && H >= 1, "moe_combine: bad sizes");
    if (rows == 0) return cudaSuccess;
    int64_t blocks = ls_cuda_cdiv(rows * H, 256);
    if (blocks > 65536) blocks = 65536;
    ls_moe_combine_kernel<T><<<(unsigned)blocks, 256, 0, stream>>>(y, wts, rows, k, H, out);
    return ls_cuda_launched("moe_combine");
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
        return ls_moe_combine<T>(y, wts, rows, k, H, out, stream);                            \
    }
LS_INST(float, f32)
LS_INST(double, f64)
