/* The decode step's selective scan against the memory floors of its state traffic
 * (docs/gpu.md, "Fast paths (eighth session)"). Prints a table.
 *
 *   build-gpu/bench/bench_scan [--channels 4096] [--batches 1,16,64,256]
 *
 * At each batch B (B sequences, one token each, N = 16, every state read and written):
 *   scan         ls_cuda_scan_f32 as the forward calls it (dt's bias and softplus inside);
 *   rows         a kernel that only reads and writes the same states the way the scan moves
 *                them: each thread its own 64-byte row in 16-byte loads and stores (a warp
 *                instruction touches 32 sectors, half of each);
 *   coalesced    the same bytes with each warp instruction moving 512 contiguous bytes;
 *   floor        the states' bytes (read + written) over the bandwidth of a 1 GiB
 *                device-to-device copy measured here (best of 5).
 * GPU time from CUDA graphs of 20 launches cycling over copies of the states that together
 * exceed the L2 cache three times (so the states come from HBM), best of 5 launches. */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/cuda/common.cuh"

#include "bench/gpu_timing.h"

#define CK(x) BENCH_CU(x)

enum { N = 16, CALLS = 20 };

/* block b: 128 channels of sequence b / (C / 128); each thread its own row */
__global__ void __launch_bounds__(128) rows_kernel(float *const *states, unsigned bps) {
    const unsigned b = blockIdx.x;
    float *h = states[b / bps] + ((int64_t)(b % bps) * 128 + threadIdx.x) * N;
    float r[N];
    ls_ld16(h, r);
#pragma unroll
    for (int k = 0; k < N; k++) r[k] = r[k] * 0.5f;
    ls_st16(h, r);
}
/* the same block's 8 KB as whole-warp 16-byte vectors */
__global__ void __launch_bounds__(128) coalesced_kernel(float *const *states, unsigned bps) {
    const unsigned b = blockIdx.x;
    float4 *h = reinterpret_cast<float4 *>(states[b / bps] + (int64_t)(b % bps) * 128 * N);
    float4 v[N / 4];
#pragma unroll
    for (int i = 0; i < N / 4; i++) v[i] = h[i * 128 + threadIdx.x];
#pragma unroll
    for (int i = 0; i < N / 4; i++) {
        v[i].x *= 0.5f, v[i].y *= 0.5f, v[i].z *= 0.5f, v[i].w *= 0.5f;
        h[i * 128 + threadIdx.x] = v[i];
    }
}

struct job {
    int kind;   /* 0 scan, 1 rows, 2 coalesced */
    int64_t S, C;
    ls_cuda_batch b;
    float *const *ptrs;   /* [npool][S] */
    int npool;
    const float *x, *dt, *bias, *A, *ssm, *D, *z;
    float *y;
};

static void launch(const job &j, int i, cudaStream_t st) {
    const unsigned blocks = (unsigned)(j.S * j.C / 128), bps = (unsigned)(j.C / 128);
    if (j.kind == 1) {
        rows_kernel<<<blocks, 128, 0, st>>>(j.ptrs + (i % j.npool) * j.S, bps);
    } else if (j.kind == 2) {
        coalesced_kernel<<<blocks, 128, 0, st>>>(j.ptrs + (i % j.npool) * j.S, bps);
    } else {
        const int64_t P = 128 + 2 * N;   /* x_proj's output: dt_rank 128, then B, then C */
        CK(ls_cuda_scan_f32(&j.b, j.ptrs + (i % j.npool) * j.S, j.x, j.C, j.dt, j.C, j.bias, 1, j.A, j.ssm + 128,
                            P, j.ssm + 128 + N, P, j.D, j.z, 2 * j.C, j.C, N, j.y, j.C, st));
    }
}

static void launch_cb(void *ctx, int i, cudaStream_t st) { launch(*(const job *)ctx, i, st); }

int main(int argc, char **argv) {
    int64_t C = 4096, batches[8] = {1, 16, 64, 256};
    int nb = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--channels") && i + 1 < argc) {
            C = atoll(argv[++i]);
        } else if (!strcmp(argv[i], "--batches") && i + 1 < argc) {
            nb = 0;
            for (char *p = argv[++i]; *p && nb < 8;) {
                char *end;
                batches[nb++] = strtoll(p, &end, 10);
                if (*end != ',') break;
                p = end + 1;
            }
        } else {
            fprintf(stderr, "usage: %s [--channels C (a multiple of 128)] [--batches 1,16,64,256]\n",
                    argv[0]);
            return 2;
        }
    }
    if (C < 128 || C % 128) {
        fprintf(stderr, "bench_scan: --channels must be a positive multiple of 128 (got %lld)\n",
                (long long)C);
        return 2;
    }
    for (int i = 0; i < nb; i++)
        if (batches[i] < 1 || batches[i] > 4096) {
            fprintf(stderr, "bench_scan: batch %lld outside 1..4096\n", (long long)batches[i]);
            return 2;
        }
    const double bw = bench_copy_bandwidth((size_t)1 << 30, 5);
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s; copy bandwidth %.0f GB/s; decode scan, %lld channels x N = %d, one token "
           "per sequence; us per launch (GPU time)\n\n",
           prop.name, bw / 1e9, (long long)C, N);
    printf("| batch | states r+w (MB) | floor | coalesced | rows | scan | scan / rows | scan / floor |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    cudaStream_t st;
    CK(cudaStreamCreate(&st));
    for (int bi = 0; bi < nb; bi++) {
        const int64_t S = batches[bi], SW = C * N;
        const int64_t want = ls_cuda_cdiv(3 * (int64_t)prop.l2CacheSize, S * SW * 4);
        const int npool = (int)(want < 2 ? 2 : want > (int64_t)CALLS ? (int64_t)CALLS : want);
        float *pool, *x, *dt, *bias, *A, *ssm, *D, *z, *y;
        CK(cudaMalloc(&pool, (size_t)(npool * S * SW) * 4));
        CK(cudaMemset(pool, 0, (size_t)(npool * S * SW) * 4));
        float **dev[] = {&x, &dt, &bias, &A, &ssm, &D, &z, &y};
        const int64_t len[] = {S * C, S * C, C, C * N, S * (128 + 2 * N), C, 2 * S * C, S * C};
        for (int k = 0; k < 8; k++) {
            CK(cudaMalloc(dev[k], (size_t)len[k] * 4));
            CK(cudaMemset(*dev[k], 0, (size_t)len[k] * 4));
        }
        std::vector<int64_t> h64(2 * S);
        std::vector<int32_t> init(S, 1);
        std::vector<float *> hp(npool * S);
        for (int64_t s = 0; s < S; s++) h64[s] = s, h64[S + s] = 1;
        for (int64_t s = 0; s < npool * S; s++) hp[s] = pool + s * SW;
        int64_t *d64;
        int32_t *dinit;
        float **dptr;
        CK(cudaMalloc(&d64, (size_t)(2 * S) * 8));
        CK(cudaMalloc(&dinit, (size_t)S * 4));
        CK(cudaMalloc(&dptr, (size_t)(npool * S) * sizeof(float *)));
        CK(cudaMemcpy(d64, h64.data(), (size_t)(2 * S) * 8, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dinit, init.data(), (size_t)S * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dptr, hp.data(), (size_t)(npool * S) * sizeof(float *), cudaMemcpyHostToDevice));
        job j = {0, S, C, {}, dptr, npool, x, dt, bias, A, ssm, D, z + C, y};
        j.b.n_seqs = S, j.b.rows = S, j.b.max_keys = 1, j.b.row0 = d64, j.b.n = d64 + S;
        j.b.has_init = dinit;
        double t[3];
        for (int k = 0; k < 3; k++) {
            j.kind = k;
            t[k] = bench_graph_us(launch_cb, &j, CALLS, st);
        }
        const double bytes = (double)(2 * S * SW) * 4, floor_us = bytes / bw * 1e6;
        printf("| %lld | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f |\n", (long long)S, bytes / 1e6,
               floor_us, t[2], t[1], t[0], t[0] / t[1], t[0] / floor_us);
        for (int k = 0; k < 8; k++) cudaFree(*dev[k]);
        cudaFree(pool), cudaFree(d64), cudaFree(dinit), cudaFree(dptr);
    }
    return 0;
}
