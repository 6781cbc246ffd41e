/* Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random
 * numbers: as easy as 1, 2, 3", SC'11; the generator behind cuRAND, JAX and
 * PyTorch's CUDA RNG).
 *
 * A counter-based generator is a pure function of (counter, key): there is no
 * stream state to advance, so a draw can be keyed by *what* it is for (seed,
 * request, rollout, position) instead of *when* it happens. That is what makes
 * sampled tokens independent of batch composition, batch row and step order. */
#ifndef LS_PHILOX_H
#define LS_PHILOX_H

#include <stdint.h>

/* One Philox4x32-10 block: 10 rounds, key bumped between rounds. Matches the
 * Random123 reference implementation bit for bit. */
void ls_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* A double in [0, 1) with 53 random bits, a pure function of its arguments.
 * Never pass a batch row or a step number here: the whole point is that the
 * value for (request, rollout, position) is the same however it was scheduled.
 * `draw` numbers independent draws for the same token (0 for the sampler). */
double ls_uniform(uint64_t seed, uint64_t request, uint64_t rollout, uint64_t position,
                  uint32_t draw);

/* The exponential race's uniform for token `token` of the draw at (seed, request, rollout,
 * position): strictly inside (0, 1), independent of ls_uniform's draws. */
double ls_token_uniform(uint64_t seed, uint64_t request, uint64_t rollout, uint64_t position,
                        uint32_t token);

#endif
