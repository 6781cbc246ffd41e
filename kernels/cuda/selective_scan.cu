/* Mamba's selective scan over a whole step's ragged batch: one thread per (sequence,
 * channel), tokens in order, n in order, the state carried exactly as
 * kernels/selective_scan.c: dA = exp(A*dt); dBx = (dt*B)*x; h = dA*h + dBx; acc += h*C;
 * y = (acc + x*D) * silu(z). For N <= 16 the state lives in registers (fully unrolled,
 * guarded loops), otherwise in the slot itself; the arithmetic is the same either way.
 *
 * dt may arrive raw: with dt_bias and dt_softplus the kernel forms dt = softplus(dt + bias)
 * itself (mamba_ssm's delta_bias / delta_softplus), the same operations in the same order as
 * the linear's bias add and the softplus kernel, so the same bits, two launches and two
 * passes over [rows][channels] fewer. */
#include "kernels/cuda/common.cuh"

#define LS_SCAN_REG_N 16
#define LS_SCAN_THREADS 128

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

/* The scan's inputs, one struct so both kernels take the same argument list. */
template <typename T> struct ls_scan_args {
    int64_t n_seqs;
    const int64_t *__restrict__ row0, *__restrict__ nrows;
    const int32_t *__restrict__ has_init;
    T *const *__restrict__ states;
    const T *__restrict__ x;
    int64_t ldx;
    const T *__restrict__ dt;
    int64_t lddt;
    const T *__restrict__ dt_bias;   /* NULL: dt already has its bias */
    int dt_softplus;                 /* 0: dt is already through softplus */
    const T *__restrict__ A, *__restrict__ B;
    int64_t ldB;
    const T *__restrict__ Cm;
    int64_t ldC;
    const T *__restrict__ D, *__restrict__ z;
    int64_t ldz, C, N;
    T *__restrict__ y;
    int64_t ldy;
};

/* dt as the scan uses it, from the value dt holds at (row, c) */
template <typename T>
__device__ __forceinline__ T ls_scan_dt_of(const ls_scan_args<T> &a, T v, int64_t c) {
    if (a.dt_bias) v = v + a.dt_bias[c];
    return a.dt_softplus ? ls_softplus(v) : v;
}
template <typename T>
__device__ __forceinline__ T ls_scan_dt(const ls_scan_args<T> &a, int64_t r, int64_t c) {
    return ls_scan_dt_of(a, a.dt[r * a.lddt + c], c);
}

/* Channel c of sequence s over its n tokens from row r0, the state in registers. */
template <typename T>
__device__ __forceinline__ void ls_scan_tokens_reg(const ls_scan_args<T> &a, int64_t r0,
                                                   int64_t n, int64_t c, T (&hr)[LS_SCAN_REG_N],
                                                   const T (&ar)[LS_SCAN_REG_N]) {
    const T Dc = a.D[c];
    for (int64_t i = 0; i < n; i++) {
        const int64_t r = r0 + i;
        const T xv = a.x[r * a.ldx + c], dtv = ls_scan_dt(a, r, c);
        const T *Br = a.B + r * a.ldB, *Cr = a.Cm + r * a.ldC;
        T acc = 0;
#pragma unroll
        for (int k = 0; k < LS_SCAN_REG_N; k++) {
            if (k < a.N) {
                const T dA = ls_exp(ar[k] * dtv);
                const T dBx = (dtv * Br[k]) * xv;
                hr[k] = dA * hr[k] + dBx;
                acc += hr[k] * Cr[k];
            }
        }
        a.y[r * a.ldy + c] = (acc + xv * Dc) * ls_silu(a.z[r * a.ldz + c]);
    }
}

/* Row r's outputs of a sequence without a state slot: NaN, loudly wrong. */
template <typename T>
__device__ __forceinline__ void ls_scan_no_state(const ls_scan_args<T> &a, int64_t r0, int64_t n,
                                                 int64_t c) {
    for (int64_t i = 0; i < n; i++) a.y[(r0 + i) * a.ldy + c] = ls_nan<T>();
}

template <typename T, bool REG>
__global__ void __launch_bounds__(LS_SCAN_THREADS) ls_scan_kernel(const ls_scan_args<T> a) {
    ls_pdl_wait();
    const int64_t gid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (gid >= a.n_seqs * a.C) return;
    const int64_t s = gid / a.C, c = gid % a.C, N = a.N;
    const int64_t r0 = a.row0[s], n = a.nrows[s];
    T *h = a.states[s];
    if (!h) return ls_scan_no_state(a, r0, n, c);
    h += c * N;
    const T *Ac = a.A + c * N;
    const int init = a.has_init[s];
    if constexpr (REG) {
        T hr[LS_SCAN_REG_N], ar[LS_SCAN_REG_N];
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
        ls_scan_tokens_reg(a, r0, n, c, hr, ar);
        if (ls_scan_wide(h, N)) {
            ls_st16(h, hr);
        } else {
#pragma unroll
            for (int k = 0; k < LS_SCAN_REG_N; k++)
                if (k < N) h[k] = hr[k];
        }
    } else {
        if (!init)
            for (int64_t k = 0; k < N; k++) h[k] = (T)0;
        const T Dc = a.D[c];
        for (int64_t i = 0; i < n; i++) {
            const int64_t r = r0 + i;
            const T xv = a.x[r * a.ldx + c], dtv = ls_scan_dt(a, r, c);
            const T *Br = a.B + r * a.ldB, *Cr = a.Cm + r * a.ldC;
            T acc = 0;
            for (int64_t k = 0; k < N; k++) {
                const T dA = ls_exp(Ac[k] * dtv);
                const T dBx = (dtv * Br[k]) * xv;
                h[k] = dA * h[k] + dBx;
                acc += h[k] * Cr[k];
            }
            a.y[r * a.ldy + c] = (acc + xv * Dc) * ls_silu(a.z[r * a.ldz + c]);
        }
    }
}

/* The block kernel (N == 16, channels a multiple of LS_SCAN_THREADS, so a block's 128
 * channels lie in one sequence): the sequence found once per block in 32-bit arithmetic
 * (the one-thread kernel divides a 64-bit index per thread), and each token's B and C rows
 * read once into shared memory by the first 32 threads instead of as 32 broadcast loads per
 * thread. The arithmetic is ls_scan_tokens_reg's, in the same order.
 *
 * Latency, not the access pattern, bounded it: a block's loads came in a chain (the pack,
 * then the state, then, behind the barriers that stage B and C, x, dt and z), each a trip to
 * memory. So the first token's x, dt, z, B and C are loaded beside the state, and each next
 * token's while the current one is computed (ls_scan_in). Measured at decode on an H100
 * (bench_scan, 256 sequences x 4096 channels): 69.6 -> 58.4 us, below the 62.4 us that
 * moving the states alone by 64-byte rows takes. Also tried (ninth session): the block's 8 KB
 * of states moved by the copy engine (cp.async.bulk) through shared memory: 72.3 us without
 * the prefetch, 59.9 with it; dropped. */

/* One token's per-channel inputs for the block kernel: x, dt as it arrives, z, and (first
 * 32 threads) the token's B (t < 16) or C (16 <= t < 32) element. */
template <typename T> struct ls_scan_in {
    T x, dt, z, bc;
};
template <typename T>
__device__ __forceinline__ ls_scan_in<T> ls_scan_in_load(const ls_scan_args<T> &a, int64_t r,
                                                         int64_t c, int t) {
    ls_scan_in<T> v;
    v.x = a.x[r * a.ldx + c];
    v.dt = a.dt[r * a.lddt + c];
    v.z = a.z[r * a.ldz + c];
    v.bc = t < LS_SCAN_REG_N       ? a.B[r * a.ldB + t]
           : t < 2 * LS_SCAN_REG_N ? a.Cm[r * a.ldC + t - LS_SCAN_REG_N]
                                   : (T)0;
    return v;
}

template <typename T>
__global__ void __launch_bounds__(LS_SCAN_THREADS)
ls_scan_block_kernel(const ls_scan_args<T> a, unsigned blocks_per_seq) {
    __shared__ T bc[2 * LS_SCAN_REG_N];
    ls_pdl_wait();
    const unsigned b = blockIdx.x;
    const int64_t s = b / blocks_per_seq;
    const int t = threadIdx.x;
    const int64_t c = (int64_t)(b % blocks_per_seq) * LS_SCAN_THREADS + t;
    const int64_t r0 = a.row0[s], n = a.nrows[s];
    T *h = a.states[s];
    if (!h) return ls_scan_no_state(a, r0, n, c);   /* uniform over the block */
    h += c * LS_SCAN_REG_N;
    const int init = a.has_init[s];
    const bool wide = ((uintptr_t)h & 15) == 0;
    /* the first token's inputs go out beside the state's load (neither needs the other),
     * and each next token's while the current one is computed */
    ls_scan_in<T> next = {};
    if (n > 0) next = ls_scan_in_load(a, r0, c, t);
    T hr[LS_SCAN_REG_N], ar[LS_SCAN_REG_N];
    if (init && wide) {
        ls_ld16(h, hr);
    } else {
#pragma unroll
        for (int k = 0; k < LS_SCAN_REG_N; k++) hr[k] = init ? h[k] : (T)0;
    }
    ls_ld16(a.A + c * LS_SCAN_REG_N, ar);   /* A 16-byte aligned: checked by the caller */
    const T Dc = a.D[c];
    for (int64_t i = 0; i < n; i++) {
        const int64_t r = r0 + i;
        const ls_scan_in<T> in = next;
        if (i + 1 < n) next = ls_scan_in_load(a, r + 1, c, t);
        __syncthreads();   /* the last token's B and C read by everyone */
        if (t < 2 * LS_SCAN_REG_N) bc[t] = in.bc;
        __syncthreads();
        const T xv = in.x, dtv = ls_scan_dt_of(a, in.dt, c);
        T acc = 0;
#pragma unroll
        for (int k = 0; k < LS_SCAN_REG_N; k++) {
            const T dA = ls_exp(ar[k] * dtv);
            const T dBx = (dtv * bc[k]) * xv;
            hr[k] = dA * hr[k] + dBx;
            acc += hr[k] * bc[LS_SCAN_REG_N + k];
        }
        a.y[r * a.ldy + c] = (acc + xv * Dc) * ls_silu(in.z);
    }
    if (wide) {
        ls_st16(h, hr);
    } else {
#pragma unroll
        for (int k = 0; k < LS_SCAN_REG_N; k++) h[k] = hr[k];
    }
}

template <typename T>
static cudaError_t ls_scan(const ls_cuda_batch *b, T *const *states, const T *x, int64_t ldx,
                           const T *dt, int64_t lddt, const T *dt_bias, int dt_softplus,
                           const T *A, const T *B, int64_t ldB, const T *Cm, int64_t ldC,
                           const T *D, const T *z, int64_t ldz, int64_t C, int64_t N, T *y,
                           int64_t ldy, cudaStream_t stream) {
    LS_CUDA_REQUIRE(b && b->n_seqs >= 0 && C > 0 && N > 0 && ldx >= C && lddt >= C &&
                        ldz >= C && ldy >= C && ldB >= N && ldC >= N,
                    "scan: bad arguments C=%lld N=%lld", (long long)C, (long long)N);
    const int64_t total = b->n_seqs * C;
    if (total == 0) return cudaSuccess;
    const int64_t blocks = ls_cuda_cdiv(total, LS_SCAN_THREADS);
    LS_CUDA_REQUIRE(blocks <= LS_CUDA_MAX_GRID_X, "scan: batch too large");
    const ls_scan_args<T> a = {b->n_seqs, b->row0, b->n, b->has_init, states, x, ldx, dt, lddt,
                               dt_bias, dt_softplus, A, B, ldB, Cm, ldC, D, z, ldz, C, N, y,
                               ldy};
    const dim3 grid((unsigned)blocks), block(LS_SCAN_THREADS);
    if (N == LS_SCAN_REG_N && C % LS_SCAN_THREADS == 0 && ((uintptr_t)A & 15) == 0)
        return ls_launch_pdl("scan", ls_scan_block_kernel<T>, grid, block, stream, a,
                             (unsigned)(C / LS_SCAN_THREADS));
    if (N <= LS_SCAN_REG_N)
        return ls_launch_pdl("scan", ls_scan_kernel<T, true>, grid, block, stream, a);
    return ls_launch_pdl("scan", ls_scan_kernel<T, false>, grid, block, stream, a);
}

#define LS_INST(T, S)                                                                         \
    extern "C" cudaError_t ls_cuda_scan_##S(                                                   \
        const ls_cuda_batch *b, T *const *states, const T *x, int64_t ldx, const T *dt,        \
        int64_t lddt, const T *dt_bias, int dt_softplus, const T *A, const T *B, int64_t ldB,  \
        const T *C, int64_t ldC, const T *D, const T *z, int64_t ldz, int64_t channels,        \
        int64_t N, T *y, int64_t ldy, cudaStream_t stream) {                                   \
        return ls_scan<T>(b, states, x, ldx, dt, lddt, dt_bias, dt_softplus, A, B, ldB, C,     \
                          ldC, D, z, ldz, channels, N, y, ldy, stream);                        \
    }
LS_INST(float, f32)
LS_INST(double, f64)
