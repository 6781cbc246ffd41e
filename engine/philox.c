#include "engine/philox.h"

#include "engine/philox_core.h"

void ls_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    ls_philox4x32_core(ctr, key, out);
}

double ls_uniform(uint64_t seed, uint64_t request, uint64_t rollout, uint64_t position,
                  uint32_t draw) {
    return ls_uniform_core(seed, request, rollout, position, draw);
}

double ls_token_uniform(uint64_t seed, uint64_t request, uint64_t rollout, uint64_t position,
                        uint32_t token) {
    uint32_t sk[2];
    ls_stream_key_core(seed, request, rollout, sk);
    return ls_token_uniform_core(sk, position, token);
}
