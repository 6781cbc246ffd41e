/* The workload of a run: requests generated from a ls_workload_spec (or read from its
 * prompts_file), deterministically.
 *
 * Generated prompts: prompt i belongs to prefix group g = i % prefix_groups; it is
 * group g's prefix of `shared_prefix` tokens followed by random tokens up to its length,
 * drawn uniformly from [prompt_len_min, prompt_len_max]; tokens are uniform in
 * [0, vocab). Every draw comes from a splitmix64 stream keyed by (seed, what, index):
 * group g's prefix from (seed, prefix, g), prompt i's length and suffix from
 * (seed, prompt, i). So a prompt depends only on the seed, its index and the length
 * and prefix settings: adding prompts or groups never changes the earlier ones (a
 * shrinker can drop requests and keep the rest). The sampling itself is keyed by the
 * same seed through ls_uniform (engine/philox.h), which is a different generator.
 *
 * Request i arrives at step i * arrival_every when arrival_stagger is set, else at 0;
 * n_rollouts, max_new_tokens and sampling are copied from the spec; out->seed = seed. */
#ifndef LS_WORKLOAD_GEN_H
#define LS_WORKLOAD_GEN_H

#include <stdint.h>

#include "engine/engine.h"
#include "engine/err.h"
#include "harness/config.h"

/* Larger workloads are refused: prompts x longest prompt must stay below this. */
#define LS_WORKLOAD_MAX_TOKENS ((int64_t)1 << 31)

/* vocab in [1, 2^31]. Validates the spec (errors name the workload.* key) and, with a
 * prompts_file, reads it (errors name file:line). Free with ls_workload_free; on error
 * *out is left empty. */
int ls_workload_generate(const ls_workload_spec *s, int64_t vocab, ls_workload *out, ls_err *err);

#endif
