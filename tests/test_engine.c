/* Engine mechanisms, one at a time, on deterministic configurations: each must run (its
 * counter moves) and keep the engine bitwise equal to the reference; bad configurations
 * are clear errors; sampled tokens do not depend on the schedule, and each is ls_sample's
 * draw from the reference's row at its own key. */
#include <math.h>

#include "engine/forward.h"
#include "engine/sampler.h"
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

/* Every log-softmax row of one sequence, [L][V] as double, by the reference's recipe (one
 * fresh forward over the whole sequence, contiguous KV), but keeping the rows. */
static double *reference_rows(const int32_t *tokens, int64_t L) {
    const ls_model_config *c = &M.cfg;
    const int64_t nm = ls_cfg_count(c, LS_LAYER_MAMBA), na = ls_cfg_count(c, LS_LAYER_ATTN);
    const int64_t kvd = c->num_kv_heads * c->head_dim, di = c->mamba_d_inner, V = c->vocab_size;
    void *conv[64], *ssm[64], *kk[64], *vv[64];
    for (int64_t i = 0; i < nm; i++) {
        conv[i] = calloc((size_t)(di * (c->mamba_d_conv - 1)), sizeof(double));
        ssm[i] = calloc((size_t)(di * c->mamba_d_state), sizeof(double));
    }
    for (int64_t i = 0; i < na; i++) {
        kk[i] = calloc((size_t)(L * kvd), sizeof(double));
        vv[i] = calloc((size_t)(L * kvd), sizeof(double));
    }
    double *rows = malloc((size_t)(L * V) * sizeof *rows);
    const int64_t bt[1] = {0};
    ls_kv_cache kv = {.block_size = L, .k = kk, .v = vv};
    ls_seq_step st = {.tokens = tokens, .n = L, .conv = conv, .ssm = ssm, .block_table = bt,
                      .logits_from = 0, .logprobs = rows};
    ls_err err = {{0}};
    int rc = ls_forward(&M, &kv, &st, 1, NULL, &err);
    CHECKF(rc == 0, "%s", err.msg);
    for (int64_t i = 0; i < nm; i++) { free(conv[i]); free(ssm[i]); }
    for (int64_t i = 0; i < na; i++) { free(kk[i]); free(vv[i]); }
    if (rc) { free(rows); return NULL; }
    return rows;
}

/* The draws' contract: the token at position p of (request r, rollout i) is
 * ls_sample(row p - 1, seed, r, i, p) with r's sampling parameters, whatever the schedule
 * (chunked prefill, forks, preemption). A draw keyed by the wrong rollout, position, request
 * or row, or sampled with the wrong parameters, changes tokens without breaking the
 * engine's equality with the reference; this is where it shows. */
static void test_draws_are_keyed(void) {
    static const ls_sampling params[] = {{1.0, 0, 1.0}, {0.7, 5, 1.0}, {1.3, 0, 0.8}, {0, 0, 1.0}};
    int64_t checked = 0, bad = 0;
    for (size_t pi = 0; pi < sizeof params / sizeof *params; pi++) {
        uint64_t rng = 77 + pi;
        ls_workload wl;
        tu_workload(&rng, M.cfg.vocab_size, 3, 5, 13, 0, 1, 4, 6, 0, params[pi], &wl);
        ls_engine_config c;
        base_config(&c);
        c.num_blocks = 14;          /* pressure: preemptions and recompute */
        c.max_batched_tokens = 8;   /* chunked prefills */
        ls_engine_result res;
        ls_err err = {{0}};
        if (ls_engine_config_resolve(&c, &M, &err) || ls_engine_run(&M, &c, &wl, &res, &err)) {
            CHECKF(0, "params %zu: %s", pi, err.msg);
            ls_workload_free(&wl);
            continue;
        }
        double *scratch = malloc((size_t)(2 * M.cfg.vocab_size + 2) * sizeof *scratch);
        for (int64_t q = 0; q < res.n_seqs; q++) {
            const ls_engine_seq *sq = &res.seqs[q];
            double *rows = reference_rows(sq->tokens, sq->len);
            if (!rows) continue;
            const ls_sampling *sp = &wl.requests[sq->request].sampling;
            for (int64_t p = sq->prompt_len; p < sq->len; p++) {
                const double *row = rows + (p - 1) * M.cfg.vocab_size;
                int32_t want = ls_sample(row, M.cfg.vocab_size, sp, wl.seed, (uint64_t)sq->request,
                                         (uint64_t)sq->rollout, (uint64_t)p, scratch);
                checked++;
                if (want != sq->tokens[p] || memcmp(&row[want], &sq->logprobs[p], sizeof(double))) {
                    if (bad++ < 3)
                        fprintf(stderr, "params %zu: request %lld rollout %lld position %lld: token %d "
                                        "(lp %.17g), ls_sample gives %d\n", pi, (long long)sq->request,
                                (long long)sq->rollout, (long long)p, sq->tokens[p], sq->logprobs[p], want);
                }
            }
            free(rows);
        }
        CHECKF(pi == 3 || res.stats.preemptions > 0, "params %zu: no preemption, the schedule is too easy", pi);
        free(scratch);
        ls_engine_result_free(&res);
        ls_workload_free(&wl);
    }
    CHECKF(bad == 0 && checked >= 200, "%lld of %lld draws are not ls_sample at their key",
           (long long)bad, (long long)checked);
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
    test_draws_are_keyed();
    ls_model_free(&M);
    return check_status();
}
