/* Engine mechanisms, one at a time, on deterministic configurations: each must run (its
 * counter moves) and keep the engine bitwise equal to the reference; bad configurations
 * are clear errors; sampled tokens do not depend on the schedule. */
#include <math.h>

#include "tests/check.h"
#include "tests/engine/engine_util.h"

static ls_model M;

static void base_config(ls_engine_config *c) {
    ls_engine_config_default(c);
    c->block_size = 4;
    c->num_blocks = 256;
    c->num_state_slots = 16;
    c->max_num_seqs = 16;
    c->max_batched_tokens = 64;
}

static ls_sampling T1 = {.temperature = 1.0, .top_k = 0, .top_p = 1.0};

/* Runs and compares; returns divergent tokens (or -1 on error, message in err). */
static int64_t run_cmp(ls_engine_config *c, ls_workload *wl, ls_engine_result *res, ls_err *err) {
    if (ls_engine_config_resolve(c, &M, err) || ls_engine_run(&M, c, wl, res, err)) return -1;
    ls_comparison cmp;
    ls_compare_rule rule = {.tolerance = -1};
    if (ls_compare_with_reference(&M, res, &rule, &cmp, err)) return -1;
    int64_t d = cmp.sum.divergent_tokens;
    ls_comparison_free(&cmp);
    return d;
}

static void test_bad_configs(void) {
    ls_engine_config c;
    ls_err err = {{0}};
    base_config(&c); c.num_blocks = 0;
    CHECK(ls_engine_config_resolve(&c, &M, &err) < 0 && strstr(err.msg, "num_blocks"));
    base_config(&c); c.num_state_slots = 0;
    CHECK(ls_engine_config_resolve(&c, &M, &err) < 0 && strstr(err.msg, "num_state_slots"));
    base_config(&c); c.slot_stride = M.cfg.mamba_d_inner * M.cfg.mamba_d_state - 1;
    CHECK(ls_engine_config_resolve(&c, &M, &err) < 0 && strstr(err.msg, "slot_stride"));
    base_config(&c); c.max_batched_tokens = 0;
    CHECK(ls_engine_config_resolve(&c, &M, &err) < 0 && strstr(err.msg, "max_batched_tokens"));
    base_config(&c); c.block_size = 0;
    CHECK(ls_engine_config_resolve(&c, &M, &err) < 0 && strstr(err.msg, "block_size"));
    base_config(&c); c.max_num_seqs = 0;
    CHECK(ls_engine_config_resolve(&c, &M, &err) < 0 && strstr(err.msg, "max_num_seqs"));
    base_config(&c); c.num_blocks = 0; c.num_state_slots = 0; c.memory_budget_mb = 1e-6;
    CHECK(ls_engine_config_resolve(&c, &M, &err) < 0 && strstr(err.msg, "memory_budget_mb"));
    base_config(&c); c.memory_fraction = 1.5;
    CHECK(ls_engine_config_resolve(&c, &M, &err) < 0 && strstr(err.msg, "memory_fraction"));
    /* sized from memory: both counts derived and usable */
    base_config(&c); c.num_blocks = 0; c.num_state_slots = 0; c.memory_budget_mb = 4; c.memory_fraction = 0.5;
    CHECK(ls_engine_config_resolve(&c, &M, &err) == 0 && c.num_blocks > 10 && c.num_state_slots == 16);
    base_config(&c); c.num_blocks = 0; c.num_state_slots = 0; c.memory_budget_mb = 0.5; c.memory_fraction = 0.5;
    CHECK(ls_engine_config_resolve(&c, &M, &err) == 0 && c.num_state_slots >= 1 && c.num_state_slots < 16);

    /* workload errors: n = 0, a request longer than the whole cache */
    uint64_t rng = 1;
    ls_workload wl;
    ls_engine_result res;
    tu_workload(&rng, M.cfg.vocab_size, 2, 4, 4, 0, 1, 1, 2, 0, T1, &wl);
    wl.requests[1].n_rollouts = 0;
    base_config(&c);
    CHECK(run_cmp(&c, &wl, &res, &err) < 0 && strstr(err.msg, "rollouts"));
    wl.requests[1].n_rollouts = 1;
    wl.requests[1].max_new_tokens = 4096;
    base_config(&c); c.num_blocks = 8;
    CHECK(run_cmp(&c, &wl, &res, &err) < 0 && strstr(err.msg, "cache holds"));
    ls_workload_free(&wl);
}

static void test_prefix_hits(void) {
    /* requests share a 12-token prefix and arrive one after another: later ones must hit */
    uint64_t rng = 7;
    ls_workload wl;
    tu_workload(&rng, M.cfg.vocab_size, 4, 16, 20, 12, 1, 1, 4, 6, T1, &wl);
    ls_engine_config c;
    base_config(&c);
    c.max_chunk = 4;       /* snapshots exist where chunks end: here, every block boundary */
    ls_engine_result res;
    ls_err err = {{0}};
    CHECK(run_cmp(&c, &wl, &res, &err) == 0);
    CHECK(res.stats.snapshot_restores >= 3);
    CHECK(res.stats.prefix_hit_tokens >= 3 * 12);
    int from_snap = 0;
    for (int64_t s = 0; s < res.n_seqs; s++) from_snap += res.seqs[s].prov[res.seqs[s].prompt_len].from_snapshot;
    CHECK(from_snap >= 3);
    ls_engine_result_free(&res);
    ls_workload_free(&wl);
}

static void test_rollouts_and_slots(void) {
    uint64_t rng = 11;
    ls_workload wl;
    tu_workload(&rng, M.cfg.vocab_size, 2, 9, 9, 0, 1, 16, 5, 0, T1, &wl);
    ls_engine_config c;
    base_config(&c);
    c.num_state_slots = 40;
    c.max_num_seqs = 40;
    c.slot_policy = LS_SLOT_HIGHEST;
    ls_engine_result res;
    ls_err err = {{0}};
    CHECK(run_cmp(&c, &wl, &res, &err) == 0);
    CHECK(res.n_seqs == 32);
    CHECK(res.stats.forks == 2);
    CHECK(res.stats.cow_copies >= 2 * 15);       /* each rollout copies the shared partial block */
    CHECK(res.stats.max_slot_used == 39);
    CHECK(res.stats.distinct_slots_used >= 32);
    /* rollouts of one prompt diverge in tokens (sampling is keyed by rollout) */
    CHECK(memcmp(res.seqs[0].tokens, res.seqs[1].tokens, (size_t)res.seqs[0].len * 4) != 0);
    ls_engine_result_free(&res);
    ls_workload_free(&wl);
}

static void test_preemption_and_schedule_independence(void) {
    uint64_t rng = 5;
    ls_workload wl;
    tu_workload(&rng, M.cfg.vocab_size, 6, 10, 18, 0, 1, 2, 6, 0, T1, &wl);
    ls_engine_config c;
    ls_engine_result roomy, tight;
    ls_err err = {{0}};
    base_config(&c);
    CHECK(run_cmp(&c, &wl, &roomy, &err) == 0);
    CHECK(roomy.stats.preemptions == 0);
    base_config(&c);
    c.num_blocks = 8;                              /* one sequence's worth: constant preemption */
    c.max_batched_tokens = 5;
    c.prefix_caching = 0;
    c.slot_policy = LS_SLOT_RANDOM;
    c.debug_poison = 1;
    CHECK(run_cmp(&c, &wl, &tight, &err) == 0);
    CHECK(tight.stats.preemptions >= 5);
    CHECK(tight.stats.chunked_prefills > 0);
    /* the same tokens, whatever the schedule: sampling is keyed, never by row or step */
    CHECK(roomy.n_seqs == tight.n_seqs);
    for (int64_t s = 0; s < roomy.n_seqs && s < tight.n_seqs; s++) {
        CHECK(roomy.seqs[s].len == tight.seqs[s].len);
        CHECK(memcmp(roomy.seqs[s].tokens, tight.seqs[s].tokens, (size_t)roomy.seqs[s].len * 4) == 0);
        CHECK(memcmp(roomy.seqs[s].logprobs, tight.seqs[s].logprobs, (size_t)roomy.seqs[s].len * 8) == 0);
    }
    ls_engine_result_free(&roomy);
    ls_engine_result_free(&tight);
    ls_workload_free(&wl);
}

/* The bug this project was born from: a new request granted one token by an almost spent
 * budget. Correct classification (num_computed == 0 means prefill) stays equal; the
 * planted misclassification reads the previous tenant's state and diverges. */
static void test_one_token_grant(void) {
    uint64_t rng = 3;
    ls_workload wl;
    tu_workload(&rng, M.cfg.vocab_size, 4, 6, 6, 0, 1, 1, 6, 3, T1, &wl);
    ls_engine_config c;
    ls_engine_result res;
    ls_err err = {{0}};
    for (int fault = 0; fault < 2; fault++) {
        base_config(&c);
        c.prefix_caching = 0;
        c.num_state_slots = 1;                   /* every request reuses the one slot */
        c.max_num_seqs = 2;
        c.max_batched_tokens = 2;                /* a decode + one token for the newcomer */
        c.faults.on[LS_FAULT_DECODE_MISCLASSIFIED] = fault;
        c.num_state_slots = 2;
        int64_t d = run_cmp(&c, &wl, &res, &err);
        CHECKF(fault ? d > 0 : d == 0, "fault %d: %lld divergent tokens (%s)", fault, (long long)d, err.msg);
        if (d >= 0) ls_engine_result_free(&res);
    }
    ls_workload_free(&wl);
}

int main(void) {
    const char *root = getenv("LS_SOURCE_ROOT");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/golden/jamba-tiny-a", root ? root : ".");
    ls_err err = {{0}};
    if (ls_model_load(dir, LS_F64, &M, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    test_bad_configs();
    test_prefix_hits();
    test_rollouts_and_slots();
    test_preemption_and_schedule_independence();
    test_one_token_grant();
    ls_model_free(&M);
    return check_status();
}
