/* The body of engine/philox.c as inline functions, so the CUDA sampler
 * (kernels/cuda/sample.cu) draws exactly the numbers the host draws: one definition,
 * compiled for both. Integer arithmetic and one exact int-to-double conversion: the
 * device and the host agree bit for bit. Callers use engine/philox.h. */
#ifndef LS_PHILOX_CORE_H
#define LS_PHILOX_CORE_H

#include <stdint.h>

#ifdef __CUDACC__
#define LS_PHILOX_FN static inline __host__ __device__
#else
#define LS_PHILOX_FN static inline
#endif

#define LS_PHILOX_M0 0xD2511F53u
#define LS_PHILOX_M1 0xCD9E8D57u
#define LS_PHILOX_W0 0x9E3779B9u /* golden ratio */
#define LS_PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

LS_PHILOX_FN void ls_philox_round(uint32_t c[4], const uint32_t k[2]) {
    uint64_t p0 = (uint64_t)LS_PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)LS_PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c[1] ^ k[0];
    uint32_t n2 = hi0 ^ c[3] ^ k[1];
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
}

LS_PHILOX_FN void ls_philox4x32_core(const uint32_t ctr[4], const uint32_t key[2],
                                     uint32_t out[4]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k[0] += LS_PHILOX_W0;
            k[1] += LS_PHILOX_W1;
        }
        ls_philox_round(c, k);
    }
    for (int i = 0; i < 4; i++) out[i] = c[i];
}

/* The key of the stream of (seed, request, rollout). 224 bits of identity do not fit one
 * 128-bit counter + 64-bit key, so a per-(request, rollout) stream key is derived first and
 * positions are counted within the stream. Two streams share a key only on a 64-bit
 * collision. */
LS_PHILOX_FN void ls_stream_key_core(uint64_t seed, uint64_t request, uint64_t rollout,
                                     uint32_t sk[2]) {
    uint32_t k0[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t c0[4] = {(uint32_t)request, (uint32_t)(request >> 32),
                      (uint32_t)rollout, (uint32_t)(rollout >> 32)};
    uint32_t r[4];
    ls_philox4x32_core(c0, k0, r);
    sk[0] = r[0];
    sk[1] = r[1];
}

LS_PHILOX_FN double ls_uniform_core(uint64_t seed, uint64_t request, uint64_t rollout,
                                    uint64_t position, uint32_t draw) {
    uint32_t k1[2];
    ls_stream_key_core(seed, request, rollout, k1);
    /* The last word tags the domain so this block never equals a stream-key block. */
    uint32_t c1[4] = {(uint32_t)position, (uint32_t)(position >> 32), draw, 0x6c735531u};
    uint32_t r[4];
    ls_philox4x32_core(c1, k1, r);

    uint64_t bits = ((uint64_t)r[0] << 32 | r[1]) >> 11; /* top 53 bits */
    return (double)bits * 0x1.0p-53;
}

/* The per-token uniforms of the sampler's exponential race (engine/sampler.c): tokens 2m and
 * 2m + 1 of the draw at `position` in stream `sk` take the first and the last two words of
 * one Philox block, whose counter carries its own domain tag (never one of ls_uniform_core's
 * blocks). 52 random bits b give (2b + 1) * 2^-53: exact in a double, strictly inside (0, 1),
 * so -log(u) is finite and > 0. */
LS_PHILOX_FN void ls_token_pair_core(const uint32_t sk[2], uint64_t position, uint32_t pair,
                                     double u[2]) {
    uint32_t c[4] = {(uint32_t)position, (uint32_t)(position >> 32), pair, 0x6c735232u};
    uint32_t r[4];
    ls_philox4x32_core(c, sk, r);
    for (int h = 0; h < 2; h++) {
        uint64_t bits = ((uint64_t)r[2 * h] << 32 | r[2 * h + 1]) >> 12; /* top 52 bits */
        u[h] = (double)(2 * bits + 1) * 0x1.0p-53;
    }
}

LS_PHILOX_FN double ls_token_uniform_core(const uint32_t sk[2], uint64_t position,
                                          uint32_t token) {
    double u[2];
    ls_token_pair_core(sk, position, token >> 1, u);
    return u[token & 1];
}

#endif
