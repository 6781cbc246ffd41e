/* The engine: what a serving engine does to a hybrid model — continuous batching with a
 * token budget, chunked prefill, a paged KV cache with prefix caching, a pool of Mamba
 * state slots with snapshots at block boundaries, n rollouts forked from one prefill,
 * preemption by recompute — built so that every logprob it produces equals the
 * reference's bit for bit. Any difference is a bug (or a planted fault). */
#ifndef LS_ENGINE_H
#define LS_ENGINE_H

#include <stdint.h>

#include "engine/err.h"
#include "engine/faults.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/state_pool.h"

typedef struct ls_engine_config {
    /* cache */
    int64_t block_size;            /* tokens per KV block */
    int64_t num_blocks;            /* 0: derive from the memory budget */
    int64_t num_state_slots;       /* 0: derive (max_num_seqs, capped by the budget) */
    int64_t slot_stride;           /* elements per SSM slot (>= d_inner*d_state); 0: exact */
    int64_t num_snapshots;         /* Mamba state snapshots for prefix caching; 0: = slots */
    double memory_budget_mb;       /* total cache memory, like a GPU's free memory */
    double memory_fraction;        /* share of the budget the cache may use */
    ls_slot_policy slot_policy;
    uint64_t slot_seed;
    int prefix_caching;
    int debug_poison;              /* NaN-fill freed slots so a stale read is loud */
    /* scheduler */
    int64_t max_num_seqs;
    int64_t max_batched_tokens;
    int64_t max_chunk;             /* longest prefill chunk; 0: budget only */
    int64_t pad_decode_to;         /* pad all-decode batches to a multiple (captured graph sizes); 0: off */
    int64_t max_steps;             /* safety stop; 0: unlimited */
    /* 1: every step copies Mamba states through staging rows, even where updating them in
     * their slots gives the same result (tests compare the two paths) */
    int stage_states;
    ls_faults faults;
    /* Where the math runs and the caches live (engine/backend.h); NULL: the CPU. Not owned. */
    const struct ls_backend *backend;
    /* Optional per-layer probe (localisation replays): called for every forward row with the
     * sequence it belongs to and the position of that row (for "conv_state" / "ssm_state":
     * the position the step starts at, whose state it reads). */
    void (*probe)(void *ctx, int64_t step, int64_t request, int64_t rollout, int64_t position,
                  int64_t layer, const char *component, const void *data, int64_t n);
    void *probe_ctx;
} ls_engine_config;

void ls_engine_config_default(ls_engine_config *c);
/* Validates and resolves the derived sizes against the model; errors name the key. */
int ls_engine_config_resolve(ls_engine_config *c, const ls_model *m, ls_err *err);

typedef struct ls_request {
    int32_t *prompt;
    int64_t prompt_len;
    int64_t n_rollouts;            /* >= 1 */
    int64_t max_new_tokens;        /* >= 1 */
    int64_t arrival_step;
    ls_sampling sampling;
} ls_request;

typedef struct ls_workload {
    ls_request *requests;
    int64_t n_requests;
    uint64_t seed;                 /* sampling seed */
} ls_workload;

void ls_workload_free(ls_workload *w);

/* Where a generated token came from. */
typedef struct ls_provenance {
    int64_t step;                  /* engine step whose forward produced its logits */
    int64_t batch_row;             /* row of the sequence in that step's batch */
    int64_t slot;                  /* Mamba state slot */
    int64_t prev_tenant;           /* the slot's previous owner (engine sequence id), -1 none */
    int64_t block;                 /* KV block holding the last input position */
    int64_t n_blocks;
    int64_t chunk;                 /* chunks run by this sequence since (re)admission */
    int64_t first_chunk;           /* tokens it was granted in its first step since (re)admission */
    int from_snapshot;             /* state restored from a prefix snapshot this residency */
    int64_t preemptions;           /* preemptions of this sequence so far */
} ls_provenance;

typedef struct ls_engine_seq {
    int64_t request, rollout;
    int32_t *tokens;               /* prompt + generated */
    int64_t len, prompt_len;
    double *logprobs;              /* [len]: logprob of tokens[p] for p >= prompt_len, else 0 */
    ls_provenance *prov;           /* [len], valid for p >= prompt_len */
} ls_engine_seq;

typedef struct ls_engine_step {
    int64_t step, n_seqs, n_tokens, n_prefill, n_decode, n_padding;
    int64_t free_blocks, free_slots, preemptions;
} ls_engine_step;

typedef struct ls_engine_stats {
    int64_t steps, tokens_computed, preemptions, forks, cow_copies;
    int64_t prefix_hit_tokens, snapshot_restores, snapshots_taken;
    int64_t max_slot_used, distinct_slots_used, padded_rows, chunked_prefills;
    int64_t num_blocks, num_slots;
    int64_t slot_stride, state_elems;   /* SSM slot stride and state size (d_inner x d_state), elements */
} ls_engine_stats;

/* Every sequence the engine created, by engine id (the id provenance's prev_tenant names):
 * a prompt's prefill that forks has rollout -1. */
typedef struct ls_engine_tenant {
    int64_t id, request, rollout;
} ls_engine_tenant;

typedef struct ls_engine_result {
    ls_engine_seq *seqs;           /* one per (request, rollout), ordered by request then rollout */
    int64_t n_seqs;
    ls_engine_step *steps;
    int64_t n_steps;
    ls_engine_stats stats;
    ls_engine_tenant *tenants;     /* [n_tenants], index = engine id */
    int64_t n_tenants;
} ls_engine_result;

int ls_engine_run(const ls_model *m, const ls_engine_config *cfg, const ls_workload *wl,
                  ls_engine_result *out, ls_err *err);
void ls_engine_result_free(ls_engine_result *r);

#endif
