/* The engine's contract, tested on random configurations: every logprob the engine
 * produces equals, bit for bit, the reference's for the same finished sequence.
 * Configurations vary batch limits, block and chunk sizes, cache pressure down to constant
 * preemption, rollouts 1..16, shared prefixes, slot policies, precisions. A failure prints
 * the seed: `test_engine_property SEED` reruns exactly that configuration. The totals at the
 * end show the mechanisms really ran (equality on a schedule that never used the cache
 * proves nothing). LS_QUICK=1 runs fewer configurations (sanitizer builds). */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "engine/reference.h"
#include "tests/check.h"
#include "tests/engine/engine_util.h"

static ls_model models[2][3];  /* [prec][model] */
static const char *model_names[3] = {"jamba-tiny-a", "jamba-tiny-b", "jamba-small-c"};

typedef struct totals {
    tu_mechanisms m;
    int64_t tokens;
    int64_t staged_runs;     /* configurations also run with every state staged */
} totals;

/* 1 if two results hold the same sequences, tokens and logprobs, bit for bit. */
static int same_result(const ls_engine_result *a, const ls_engine_result *b) {
    if (a->n_seqs != b->n_seqs) return 0;
    for (int64_t s = 0; s < a->n_seqs; s++) {
        const ls_engine_seq *x = &a->seqs[s], *y = &b->seqs[s];
        if (x->request != y->request || x->rollout != y->rollout || x->len != y->len ||
            memcmp(x->tokens, y->tokens, (size_t)x->len * sizeof *x->tokens) ||
            memcmp(x->logprobs, y->logprobs, (size_t)x->len * sizeof *x->logprobs))
            return 0;
    }
    return 1;
}

static int run_one(uint64_t seed, totals *T, int verbose) {
    int64_t vocab[3];
    for (int i = 0; i < 3; i++) vocab[i] = models[0][i].cfg.vocab_size;
    tu_case k;
    if (tu_random_case(seed, vocab, &k)) {
        fprintf(stderr, "seed %" PRIu64 ": out of memory\n", seed);
        return -1;
    }
    int prec = k.prec, mi = k.model;
    const ls_model *m = &models[prec][mi];
    ls_engine_config c = k.cfg;
    ls_workload wl = k.wl;
    ls_err err = {{0}};
    /* LS_PLANT=fault_name plants one fault everywhere: then this test must FAIL (a check
     * of the checker; see README.md, "What is checked"). */
    const char *plant = getenv("LS_PLANT");
    ls_fault pf;
    if (plant && ls_fault_parse(plant, &pf) == 0) {
        c.faults.on[pf] = 1;
        c.faults.narrow_bits = 8;
    }
    ls_engine_result res;
    int rc = ls_engine_config_resolve(&c, m, &err);
    if (rc == 0) rc = ls_engine_run(m, &c, &wl, &res, &err);
    if (rc) {
        CHECKF(0, "seed %" PRIu64 ": engine failed: %s", seed, err.msg);
        ls_workload_free(&wl);
        return -1;
    }
    ls_comparison cmp;
    ls_compare_rule rule = {.tolerance = -1};
    rc = ls_compare_with_reference(m, &res, &rule, &cmp, &err);
    CHECKF(rc == 0, "seed %" PRIu64 ": reference failed: %s", seed, err.msg);
    int64_t expect_seqs = 0, expect_tokens = 0;
    for (int64_t r = 0; r < wl.n_requests; r++) {
        expect_seqs += wl.requests[r].n_rollouts;
        expect_tokens += wl.requests[r].n_rollouts * wl.requests[r].max_new_tokens;
    }
    CHECKF(res.n_seqs == expect_seqs, "seed %" PRIu64 ": %lld sequences, expected %lld", seed,
           (long long)res.n_seqs, (long long)expect_seqs);
    if (rc == 0) {
        CHECKF(cmp.sum.tokens == expect_tokens, "seed %" PRIu64 ": %lld tokens compared, expected %lld",
               seed, (long long)cmp.sum.tokens, (long long)expect_tokens);
        CHECKF(cmp.sum.divergent_tokens == 0,
               "seed %" PRIu64 " (%s %s): %lld of %lld tokens differ from the reference; first: seq %lld "
               "position %lld; rerun: test_engine_property %" PRIu64,
               seed, model_names[mi], prec ? "fp64" : "fp32", (long long)cmp.sum.divergent_tokens,
               (long long)cmp.sum.tokens, (long long)cmp.sum.first_seq, (long long)cmp.sum.first_position, seed);
        T->tokens += cmp.sum.tokens;
        ls_comparison_free(&cmp);
    }
    /* Every third configuration again with every state staged (copied to a staging row and
     * back, the path the state faults need): updating states in their slots must change
     * nothing. */
    if (seed % 3 == 0 && !plant) {
        ls_engine_config cs = c;
        cs.stage_states = 1;
        ls_engine_result staged;
        rc = ls_engine_run(m, &cs, &wl, &staged, &err);
        CHECKF(rc == 0, "seed %" PRIu64 ": staged run failed: %s", seed, err.msg);
        if (rc == 0) {
            CHECKF(same_result(&res, &staged),
                   "seed %" PRIu64 ": staging every state changes the result (rerun: "
                   "test_engine_property %" PRIu64 ")", seed, seed);
            T->staged_runs++;
            ls_engine_result_free(&staged);
        }
    }
    if (verbose) tu_print_case(seed, model_names[mi], prec, &res.stats);
    tu_tally(&T->m, &res.stats);
    ls_engine_result_free(&res);
    ls_workload_free(&wl);
    return 0;
}

int main(int argc, char **argv) {
    const char *root = getenv("LS_SOURCE_ROOT");
    if (!root) root = ".";
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 3; i++) {
            char dir[4096];
            ls_err err = {{0}};
            snprintf(dir, sizeof dir, "%s/golden/%s", root, model_names[i]);
            if (ls_model_load(dir, p ? LS_F64 : LS_F32, &models[p][i], &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
        }
    totals T = {0};
    clock_t t0 = clock();
    if (argc > 1) {
        run_one(strtoull(argv[1], NULL, 10), &T, 1);
    } else {
        int64_t n = getenv("LS_QUICK") ? 100 : 1000;
        for (int64_t i = 0; i < n; i++) run_one(0x5eed0000ULL + (uint64_t)i, &T, 0);
        fprintf(stderr, "%lld configurations, %lld tokens compared bitwise in %.1f s; %lld also run "
                "with every state staged, bitwise equal to in place\n",
                (long long)T.m.configs, (long long)T.tokens, (double)(clock() - t0) / CLOCKS_PER_SEC,
                (long long)T.staged_runs);
        fprintf(stderr, "mechanisms: preemptions %lld (in %lld configs), prefix-hit tokens %lld, snapshot "
                "restores %lld (in %lld configs), forks %lld, copy-on-write %lld, chunked prefills %lld, "
                "padded rows %lld, configs using slot >= 8: %lld\n",
                (long long)T.m.preemptions, (long long)T.m.configs_preempting, (long long)T.m.prefix_hit_tokens,
                (long long)T.m.restores, (long long)T.m.configs_hitting, (long long)T.m.forks, (long long)T.m.cow,
                (long long)T.m.chunked, (long long)T.m.padded, (long long)T.m.high_slot_runs);
        /* Each mechanism must have run in a good share of the configurations. */
        CHECK(T.m.configs == n);
        CHECK(T.staged_runs >= n / 4);
        CHECK(T.m.configs_preempting >= n / 10);
        CHECK(T.m.configs_hitting >= n / 20);
        CHECK(T.m.forks >= n / 4);
        CHECK(T.m.cow >= n / 4);
        CHECK(T.m.chunked >= n / 4);
        CHECK(T.m.padded > 0);
        CHECK(T.m.high_slot_runs >= n / 20);
    }
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 3; i++) ls_model_free(&models[p][i]);
    return check_status();
}
