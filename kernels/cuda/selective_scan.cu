/* Mamba's selective scan over a whole step's ragged batch: one thread per (sequence,
 * channel), tokens in order, n in order, the state carried exactly as
 * kernels/selective_scan.c: dA = exp(A*dt); dBx = (dt*B)*x; h = dA*h + dBx; acc += h*C;
 * y = (acc + x*D) * silu(z). For N <= 16 the state lives in registers (fully unrolled,
 * guarded loops), otherwise in the slot itself; the arithmetic is the same either way. */
#include "kernels/cuda/common.cuh"

#define LS_SCAN_REG_N 16

/* The register state's load and store. A thread's state is N consecutive elements and the
 * warp's 32 threads hold 32 consecutive states, so element-by-element accesses make each
 * warp instruction touch 32 sectors for 4 bytes apiece: 16 such stores put 8x the state's
 * bytes through L2 (decode at batch 256 spent ~3 ms a step there). With N == 16 and an
 * aligned state, 16-byte accesses move it in 4 (f64: 8) instructions, each sector filled by
 * two of them (ls_ld16 / ls_st16; A's row, read once per thread, the same way). Only how the
 * bits travel changes, never what they are. */
__device__ __forceinline__ bool ls_scan_wide(const void *h, int64_t N) {
    return N == LS_SCAN_REG_N && ((uintptr_t)h & 15) == 0;
}
template <typename T, bool REG>
__global__ void __launch_bounds__(128)
ls_scan_kernel(int64_t n_seqs, const int64_t *__restrict__ row0,
               const int64_t *__restrict__ nrows, const int32_t *__restrict__ has_init,
               T *const *__restrict__ states, const T *__restrict__ x, int64_t ldx,
               const T *__restrict__ dt, int64_t lddt, const T *__restrict__ A,
               const T *__restrict__ B, int64_t ldB, const T *__restrict__ Cm, int64_t ldC,
               const T *__restrict__ D, const T *__restrict__ z, int64_t ldz, int64_t C,
               int64_t N, T *__restrict__ y, int64_t ldy) {
    const int64_t gid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (gid >= n_seqs * C) return;
    const int64_t s = gid / C, c = gid % C;
    const int64_t r0 = row0[s], n = nrows[s];
    T *h = states[s];
    if (!h) {
        for (int64_t i = 0; i < n; i++) y[(r0 + i) * ldy + c] = ls_nan<T>();
        return;
    }
    h += c * N;
    const T *Ac = A + c * N;
    const T Dc = D[c];
    const int init = has_init[s];
    T hr[REG ? LS_SCAN_REG_N : 1], ar[REG ? LS_SCAN_REG_N : 1];
    if constexpr (REG) {
        if (init && ls_scan_wide(h, N)) {
            ls_ld16(h, hr);
        } else {
#pragma unroll
            for (int k = 0; k < LS_SCAN_REG_N; k++) hr[k] = (k < N && init) ? h[k] : (T)0;
        }
        if (ls_scan_wide(Ac, N)) {
            ls_ld16(Ac, ar);
        } else {
#pragma unroll
            for (int k = 0; k < LS_SCAN_REG_N; k++) ar[k] = k < N ? Ac[k] : (T)0;
        }
    } else if (!init) {
        for (int64_t k = 0; k < N; k++) h[k] = (T)0;
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t r = r0 + i;
        const T xv = x[r * ldx + c], dtv = dt[r * lddt + c];
        const T *Br = B + r * ldB, *Cr = Cm + r * ldC;
        T acc = 0;
        if (REG) {
#pragma unroll
            for (int k = 0; k < (REG ? LS_SCAN_REG_N : 1); k++) {
                if (k < N) {
                    const T dA = ls_exp(ar[k] * dtv);
                    const T dBx = (dtv * Br[k]) * xv;
                    hr[k] = dA * hr[k] + dBx;
                    acc += hr[k] * Cr[k];
                }
            }
        } else {
            for (int64_t k = 0; k < N; k++) {
                const T dA = ls_exp(Ac[k] * dtv);
                const T dBx = (dtv * Br[k]) * xv;
                h[k] = dA * h[k] + dBx;
                acc += h[k] * Cr[k];
            }
        }
        y[r * ldy + c] = (acc + xv * Dc) * ls_silu(z[r * ldz + c]);
    }
    if constexpr (REG) {
        if (ls_scan_wide(h, N)) {
            ls_st16(h, hr);
        } else {
#pragma unroll
            for (int k = 0; k < LS_SCAN_REG_N; k++)
                if (k < N) h[k] = hr[k];
        }
    }
}

template <typename T>
static cudaError_t ls_scan(const ls_cuda_batch *b, T *const *states, const T *x, int64_t ldx,
                           const T *dt, int64_t lddt, const T *A, const T *B, int64_t ldB,
                           const T *Cm, int64_t ldC, const T *D, const T *z, int64_t ldz,
                           int64_t C, int64_t N, T *y, int64_t ldy, cudaStream_t stream) {
    LS_CUDA_REQUIRE(b && b->n_seqs >= 0 && C > 0 && N > 0 && ldx >= C && lddt >= C &&
                        ldz >= C && ldy >= C && ldB >= N && ldC >= N,
                    "scan: bad arguments C=%lld N=%lld", (long long)C, (long long)N);
    const int64_t total = b->n_seqs * C;
    if (total == 0) return cudaSuccess;
    const int64_t blocks = ls_cuda_cdiv(total, 128);
    LS_CUDA_REQUIRE(blocks <= LS_CUDA_MAX_GRID_X, "scan: batch too large");
    if (N <= LS_SCAN_REG_N)
        ls_scan_kernel<T, true><<<(unsigned)blocks, 128, 0, stream>>>(
            b->n_seqs, b->row0, b->n, b->has_init, states, x, ldx, dt, lddt, A, B, ldB, Cm, ldC,
            D, z, ldz, C, N, y, ldy);
    else
        ls_scan_kernel<T, false><<<(unsigned)blocks, 128, 0, stream>>>(
            b->n_seqs, b->row0, b->n, b->has_init, states, x, ldx, dt, lddt, A, B, ldB, Cm, ldC,
            D, z, ldz, C, N, y, ldy);
    return ls_cuda_launched("scan");
}

#define LS_INST(T, S)                                                                         \
    extern "C" cudaError_t ls_cuda_scan_##S(                                                   \
        const ls_cuda_batch *b, T *const *states, const T *x, int64_t ldx, const T *dt,        \
        int64_t lddt, const T *A, const T *B, int64_t ldB, const T *C, int64_t ldC,            \
        const T *D, const T *z, int64_t ldz, int64_t channels, int64_t N, T *y, int64_t ldy,   \
        cudaStream_t stream) {                                                                 \
        return ls_scan<T>(b, states, x, ldx, dt, lddt, A, B, ldB, C, ldC, D, z, ldz, channels, \
                          N, y, ldy, stream);                                                  \
    }
LS_INST(float, f32)
LS_INST(double, f64)
