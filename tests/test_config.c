/* The run configuration (harness/config.h) and the workload generator
 * (harness/workload_gen.h): the shipped default parses; every key lands in its field and
 * survives a trip through ls_config_to_yaml; every error class says PATH:LINE:COL and
 * the key; --set overrides; relative paths; generated workloads are deterministic, share
 * their prefixes within a group, keep their lengths in bounds and stagger arrivals.
 * Leak-clean under ASan (errors free everything). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/faults.h"
#include "harness/config.h"
#include "harness/workload_gen.h"
#include "ls_build.h"
#include "tests/check.h"

static const char *source_root(void) {
    const char *r = getenv("LS_SOURCE_ROOT");
    return r && *r ? r : LS_SOURCE_ROOT;
}

static int parse(const char *yaml, ls_run_config *c, ls_err *err) {
    err->msg[0] = '\0';
    return ls_config_parse(yaml, strlen(yaml), "t.yaml", c, err);
}

static int is_zeroed(const ls_run_config *c) {
    static const ls_run_config zero;
    return memcmp(c, &zero, sizeof zero) == 0;
}

/* Parsing must fail with a message containing every non-NULL needle, and leave *c zeroed. */
static void expect_error(int line, const char *yaml, const char *n1, const char *n2, const char *n3) {
    ls_run_config c;
    ls_err err;
    int rc = parse(yaml, &c, &err);
    CHECKF(rc == -1, "line %d: accepted:\n%s", line, yaml);
    if (rc == 0) {
        ls_config_free(&c);
        return;
    }
    const char *needles[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (needles[i]) CHECKF(strstr(err.msg, needles[i]), "line %d: '%s' not in: %s", line, needles[i], err.msg);
    CHECKF(is_zeroed(&c), "line %d: config not zeroed after an error", line);
}
#define EXPECT_ERROR(yaml, a, b, c) expect_error(__LINE__, yaml, a, b, c)

/* ------------------------------------------------------------------ default.yaml */

static void test_default_yaml(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/default.yaml", source_root());
    ls_run_config c;
    ls_err err = {{0}};
    int rc = ls_config_load(path, &c, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(!strcmp(c.path, path));
    CHECK(c.text && c.text_len > 100 && strstr(c.text, "model:"));
    char want[4200];
    snprintf(want, sizeof want, "%s/configs/../golden/jamba-tiny-a", source_root());
    CHECKF(!strcmp(c.model_dir, want), "%s", c.model_dir);
    char cj[4300];
    snprintf(cj, sizeof cj, "%s/config.json", c.model_dir);
    struct stat st;
    CHECKF(stat(cj, &st) == 0, "the default model is missing: %s", cj);
    CHECK(c.precision == LS_F64 && !c.backend_cuda && !c.mode_fast && !c.tf32);
    CHECK(c.engine.block_size == 4 && c.engine.num_blocks == 18 && c.engine.num_state_slots == 6);
    CHECK(c.engine.slot_policy == LS_SLOT_FIFO && c.engine.prefix_caching);
    CHECK(c.engine.max_num_seqs == 6 && c.engine.max_batched_tokens == 24 && c.engine.max_chunk == 8);
    CHECK(c.engine.pad_decode_to == 4 && c.engine.debug_poison == 1);
    CHECK(c.workload.prompts == 6 && c.workload.prompt_len_min == 6 && c.workload.prompt_len_max == 20);
    CHECK(c.workload.shared_prefix == 4 && c.workload.prefix_groups == 2 && c.workload.rollouts == 3);
    CHECK(c.workload.max_new_tokens == 6 && c.workload.sampling.temperature == 1.0);
    for (int f = 0; f < LS_FAULT_COUNT; f++) CHECK(!c.engine.faults.on[f]);
    CHECK(!c.trace_path && !c.report_path && !c.workload.prompts_file);
    CHECK(ls_config_check(&c, &err) == 0);
    ls_config_free(&c);
    CHECK(is_zeroed(&c));
}

/* ------------------------------------------------------------------ every key */

static const char *ALL_KEYS =
    "model: /models/m\n"
    "precision: fp32\n"
    "backend: cuda\n"
    "mode: fast\n"
    "tf32: true\n"
    "cache:\n"
    "  block_size: 8\n"
    "  num_blocks: 123\n"
    "  num_state_slots: 7\n"
    "  slot_stride: 4096\n"
    "  num_snapshots: 9\n"
    "  memory_budget_mb: 12.5\n"
    "  memory_fraction: 0.5\n"
    "  slot_policy: random\n"
    "  slot_seed: 18446744073709551615\n"
    "  prefix_caching: false\n"
    "  debug_poison: true\n"
    "sched:\n"
    "  max_num_seqs: 3\n"
    "  max_batched_tokens: 77\n"
    "  max_chunk: 16\n"
    "  pad_decode_to: 4\n"
    "  max_steps: 1000\n"
    "workload:\n"
    "  seed: 42\n"
    "  prompts: 5\n"
    "  prompt_len: [10, 12]\n"
    "  shared_prefix: 3\n"
    "  prefix_groups: 2\n"
    "  rollouts: 4\n"
    "  max_new_tokens: 9\n"
    "  arrival: stagger\n"
    "  arrival_every: 2\n"
    "  temperature: 0.75\n"
    "  top_k: 5\n"
    "  top_p: 0.9\n"
    "  prompts_file: p/toks.txt\n"
    "faults:\n"
    "  decode_misclassified: true\n"
    "  narrow_state_offset: {enabled: true, bits: 16}\n"
    "  prefix_hit_without_state: {enabled: false}\n"
    "  fork_shares_slot: {}\n"
    "  preempt_keeps_state: false\n"
    "  chunk_drops_conv_state: true\n"
    "  padding_writes_slot: false\n"
    "  stale_block_table: true\n"
    "compare:\n"
    "  max_abs: 1e-6\n"
    "  max_divergent_frac: 0.25\n"
    "  probe_layers: false\n"
    "output:\n"
    "  trace: out/t.h5\n"
    "  report: out/r.html\n";

static void check_all_keys(const ls_run_config *c, const char *prompts_file) {
    CHECK(!strcmp(c->model_dir, "/models/m"));
    CHECK(c->precision == LS_F32 && c->backend_cuda == 1 && c->mode_fast == 1 && c->tf32 == 1);
    const ls_engine_config *e = &c->engine;
    CHECK(e->block_size == 8 && e->num_blocks == 123 && e->num_state_slots == 7);
    CHECK(e->slot_stride == 4096 && e->num_snapshots == 9);
    CHECK(e->memory_budget_mb == 12.5 && e->memory_fraction == 0.5);
    CHECK(e->slot_policy == LS_SLOT_RANDOM && e->slot_seed == UINT64_MAX);
    CHECK(e->prefix_caching == 0 && e->debug_poison == 1);
    CHECK(e->max_num_seqs == 3 && e->max_batched_tokens == 77 && e->max_chunk == 16);
    CHECK(e->pad_decode_to == 4 && e->max_steps == 1000);
    const ls_workload_spec *w = &c->workload;
    CHECK(w->seed == 42 && w->prompts == 5 && w->prompt_len_min == 10 && w->prompt_len_max == 12);
    CHECK(w->shared_prefix == 3 && w->prefix_groups == 2 && w->rollouts == 4 && w->max_new_tokens == 9);
    CHECK(w->arrival_stagger == 1 && w->arrival_every == 2);
    CHECK(w->sampling.temperature == 0.75 && w->sampling.top_k == 5 && w->sampling.top_p == 0.9);
    CHECKF(w->prompts_file && !strcmp(w->prompts_file, prompts_file), "%s", w->prompts_file);
    const ls_faults *f = &e->faults;
    CHECK(f->on[LS_FAULT_DECODE_MISCLASSIFIED] == 1);
    CHECK(f->on[LS_FAULT_NARROW_STATE_OFFSET] == 1 && f->narrow_bits == 16);
    CHECK(f->on[LS_FAULT_PREFIX_HIT_WITHOUT_STATE] == 0);
    CHECK(f->on[LS_FAULT_FORK_SHARES_SLOT] == 1); /* a mapping without `enabled` enables */
    CHECK(f->on[LS_FAULT_PREEMPT_KEEPS_STATE] == 0);
    CHECK(f->on[LS_FAULT_CHUNK_DROPS_CONV_STATE] == 1);
    CHECK(f->on[LS_FAULT_PADDING_WRITES_SLOT] == 0);
    CHECK(f->on[LS_FAULT_STALE_BLOCK_TABLE] == 1);
    CHECK(c->compare.max_abs == 1e-6 && c->compare.max_divergent_frac == 0.25 && c->compare.probe_layers == 0);
    CHECK(c->trace_path && !strcmp(c->trace_path, "out/t.h5"));
    CHECK(c->report_path && !strcmp(c->report_path, "out/r.html"));
}

static void test_all_keys(void) {
    ls_run_config c, d;
    ls_err err;
    /* parsed as configs/x.yaml: prompts_file resolves against configs/, trace does not */
    int rc = ls_config_parse(ALL_KEYS, strlen(ALL_KEYS), "configs/x.yaml", &c, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    check_all_keys(&c, "configs/p/toks.txt");

    /* the effective config as YAML parses back to the same values (path without a
     * directory: nothing is re-anchored), and dumps to the same text */
    char *y = ls_config_to_yaml(&c);
    CHECK(y != NULL);
    rc = ls_config_parse(y, strlen(y), "<dump>", &d, &err);
    CHECKF(rc == 0, "%s\n%s", err.msg, y);
    if (rc == 0) {
        check_all_keys(&d, "configs/p/toks.txt");
        char *y2 = ls_config_to_yaml(&d);
        CHECK(y2 && !strcmp(y, y2));
        free(y2);
        ls_config_free(&d);
    }
    free(y);
    ls_config_free(&c);

    /* defaults: only model given */
    rc = parse("model: m\n", &c, &err);
    CHECKF(rc == 0, "%s", err.msg);
    ls_run_config def;
    ls_config_default(&def);
    CHECK(!strcmp(c.model_dir, "m") && !strcmp(c.path, "t.yaml"));
    CHECK(c.precision == LS_F64 && !c.backend_cuda && !c.mode_fast && !c.tf32);
    CHECK(c.engine.block_size == 16 && c.engine.num_blocks == 0 && c.engine.memory_fraction == 0.9);
    CHECK(c.engine.slot_policy == LS_SLOT_LOWEST && c.engine.prefix_caching == 1 && c.engine.debug_poison == 0);
    CHECK(c.engine.max_num_seqs == 16 && c.engine.max_batched_tokens == 256);
    CHECK(c.engine.faults.narrow_bits == 32);
    CHECK(!memcmp(&c.engine, &def.engine, sizeof def.engine));
    CHECK(c.workload.prompts == 4 && c.workload.prompt_len_min == 8 && c.workload.prompt_len_max == 32);
    CHECK(c.workload.prefix_groups == 1 && c.workload.rollouts == 1 && c.workload.max_new_tokens == 8);
    CHECK(!c.workload.arrival_stagger && c.workload.arrival_every == 1);
    CHECK(c.workload.sampling.temperature == 1.0 && c.workload.sampling.top_k == 0 && c.workload.sampling.top_p == 1.0);
    CHECK(c.compare.max_abs == 0 && c.compare.max_divergent_frac == 0 && c.compare.probe_layers == 1);
    ls_config_free(&c);

    /* odd but valid spellings */
    rc = parse("---\n# comment\n\"model\": 'm x'\ncache:\nsched: ~\nworkload:\n  prompt_len: 7\n  seed: -0\n"
               "  temperature: 0\n  top_p: .5\n  prompts_file: null\ncompare: {max_abs: 1E+2}\n"
               "faults: {narrow_state_offset: {bits: 8, enabled: false}}\noutput: {trace: ~}\n...\n",
               &c, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(!strcmp(c.model_dir, "m x"));
        CHECK(c.workload.prompt_len_min == 7 && c.workload.prompt_len_max == 7 && c.workload.seed == 0);
        CHECK(c.workload.sampling.temperature == 0 && c.workload.sampling.top_p == 0.5);
        CHECK(c.compare.max_abs == 100);
        /* bits alone would enable; an explicit enabled: false wins whatever the order */
        CHECK(c.engine.faults.narrow_bits == 8 && !c.engine.faults.on[LS_FAULT_NARROW_STATE_OFFSET]);
        CHECK(c.engine.block_size == 16);
        ls_config_free(&c);
    }
}

/* ------------------------------------------------------------------ errors */

static void test_errors(void) {
    /* tf32 only where cuBLAS runs fp32 products: backend cuda, mode fast, precision fp32 */
    EXPECT_ERROR("model: m\ntf32: true\n", "t.yaml:2:7:", "tf32: true needs backend cuda",
                 "got backend cpu, mode invariant, precision fp64");
    EXPECT_ERROR("model: m\nbackend: cuda\nmode: fast\ntf32: true\n", "t.yaml:4:7:",
                 "precision fp64", NULL);
    EXPECT_ERROR("model: m\nbackend: cuda\nprecision: fp32\ntf32: true\n", "mode invariant", NULL,
                 NULL);
    EXPECT_ERROR("model: m\ntf32: 1\n", "tf32", "true or false", NULL);
    /* malformed YAML: libyaml's problem at 1-based line:col */
    EXPECT_ERROR("model: m\ncache: [1, 2\n", "t.yaml:3:1:", "did not find expected ',' or ']'", NULL);
    EXPECT_ERROR("model: m\ncache:\n  block_size: 4\n bad: 1\n", "t.yaml:4:", NULL, NULL);
    EXPECT_ERROR("model: m\n\tcache: 1\n", "t.yaml:2:1:", "tab", NULL);
    /* unknown keys, with the valid ones */
    EXPECT_ERROR("model: m\ncache:\n  num_blokcs: 3\n",
                 "t.yaml:3:3: unknown key 'cache.num_blokcs' (expected one of: block_size, num_blocks,",
                 "debug_poison)", NULL);
    EXPECT_ERROR("model: m\ncachee: {}\n", "t.yaml:2:1: unknown key 'cachee'", "model, precision", "output");
    EXPECT_ERROR("model: m\nfaults:\n  fork_share_slot: true\n", "t.yaml:3:3: unknown key 'faults.fork_share_slot'",
                 "decode_misclassified, narrow_state_offset", "stale_block_table");
    EXPECT_ERROR("model: m\nfaults:\n  fork_shares_slot: {bits: 3}\n",
                 "t.yaml:3:22: unknown key 'faults.fork_shares_slot.bits' (expected one of: enabled)", NULL, NULL);
    EXPECT_ERROR("model: m\nfaults:\n  narrow_state_offset: {enable: true}\n",
                 "unknown key 'faults.narrow_state_offset.enable' (expected one of: enabled, bits)", NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  \"a\\x01b\": 3\n", "unknown key 'cache.a\\x01b'", NULL, NULL);
    /* wrong types */
    EXPECT_ERROR("model: m\ncache:\n  num_blocks: abc\n",
                 "t.yaml:3:15: cache.num_blocks: expected a non-negative integer, got 'abc'", NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  num_blocks: 16x\n", "t.yaml:3:15:", "got '16x'", NULL);
    EXPECT_ERROR("model: m\ncache:\n  num_blocks: 016\n", "cache.num_blocks: expected", "'016'", NULL);
    EXPECT_ERROR("model: m\ncache:\n  num_blocks: 1.5\n", "cache.num_blocks: expected", NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  num_blocks: 0x10\n", "cache.num_blocks: expected", NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  num_blocks: 1_000\n", "cache.num_blocks: expected", NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  num_blocks: \"16\"\n", "t.yaml:3:15:", "quoted string '16'", NULL);
    EXPECT_ERROR("model: m\ncache:\n  num_blocks:\n", "t.yaml:3:", "expected a non-negative integer, got nothing", NULL);
    EXPECT_ERROR("model: m\ncache:\n  num_blocks: 99999999999999999999\n", "t.yaml:3:15:", "out of range", NULL);
    EXPECT_ERROR("model: m\nsched:\n  max_num_seqs: 9223372036854775808\n", "out of range", NULL, NULL);
    EXPECT_ERROR("model: m\nworkload:\n  seed: 18446744073709551616\n", "workload.seed:", "out of range", NULL);
    EXPECT_ERROR("model: m\ncache:\n  prefix_caching: yes\n",
                 "t.yaml:3:19: cache.prefix_caching: expected true or false, got 'yes'", NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  prefix_caching: True\n", "expected true or false", NULL, NULL);
    EXPECT_ERROR("model: m\nprecision: fp16\n", "t.yaml:2:12: precision: expected one of fp32, fp64, got 'fp16'",
                 NULL, NULL);
    EXPECT_ERROR("model: m\ncache: {slot_policy: newest}\n", "cache.slot_policy: expected one of lowest, highest, fifo, random",
                 NULL, NULL);
    EXPECT_ERROR("model: m\nworkload: {arrival: late}\n", "workload.arrival: expected one of all, stagger", NULL, NULL);
    EXPECT_ERROR("model: m\nbackend: tpu\n", "backend: expected one of cpu, cuda", NULL, NULL);
    EXPECT_ERROR("model: m\nmode: quick\n", "mode: expected one of invariant, fast", NULL, NULL);
    EXPECT_ERROR("model: m\nworkload:\n  temperature: .nan\n", "t.yaml:3:16: workload.temperature: expected a decimal number",
                 NULL, NULL);
    EXPECT_ERROR("model: m\nworkload:\n  temperature: 1e999\n", "not a finite number", NULL, NULL);
    /* out of range */
    EXPECT_ERROR("model: m\nsched:\n  max_num_seqs: 0\n", "t.yaml:3:17: sched.max_num_seqs must be >= 1 (got 0)", NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  num_blocks: -1\n", "cache.num_blocks must be >= 0 (got -1)", NULL, NULL);
    EXPECT_ERROR("model: m\nworkload: {seed: -3}\n", "workload.seed must be >= 0 (got -3)", NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  memory_fraction: 0\n", "t.yaml:3:20: cache.memory_fraction must be in (0, 1] (got 0)",
                 NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  memory_fraction: 1.5\n", "cache.memory_fraction must be in (0, 1] (got 1.5)", NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  memory_budget_mb: -0.5\n", "cache.memory_budget_mb must be >= 0 (got -0.5)", NULL, NULL);
    EXPECT_ERROR("model: m\nworkload:\n  top_p: 0\n", "workload.top_p must be in (0, 1]", NULL, NULL);
    EXPECT_ERROR("model: m\ncompare:\n  max_divergent_frac: 1.01\n", "compare.max_divergent_frac must be in [0, 1]", NULL, NULL);
    EXPECT_ERROR("model: m\nworkload:\n  rollouts: 0\n", "workload.rollouts must be >= 1 (got 0)", NULL, NULL);
    EXPECT_ERROR("model: m\nfaults:\n  narrow_state_offset: {bits: 65}\n",
                 "t.yaml:3:31: faults.narrow_state_offset.bits must be in 1..64 (got 65)", NULL, NULL);
    EXPECT_ERROR("model: m\nfaults:\n  narrow_state_offset: {bits: 0}\n", "bits must be in 1..64 (got 0)", NULL, NULL);
    /* prompt_len */
    EXPECT_ERROR("model: m\nworkload:\n  prompt_len: [9, 4]\n", "t.yaml:3:15: workload.prompt_len: min 9 is greater than max 4",
                 NULL, NULL);
    EXPECT_ERROR("model: m\nworkload:\n  prompt_len: [1, 2, 3]\n", "workload.prompt_len: expected [min, max]", "3 items", NULL);
    EXPECT_ERROR("model: m\nworkload:\n  prompt_len: [0, 3]\n", "t.yaml:3:16: workload.prompt_len[0] must be >= 1 (got 0)",
                 NULL, NULL);
    EXPECT_ERROR("model: m\nworkload:\n  prompt_len: [1, x]\n", "t.yaml:3:19: workload.prompt_len[1]: expected", NULL, NULL);
    EXPECT_ERROR("model: m\nworkload:\n  prompt_len: {min: 1}\n", "workload.prompt_len: expected an integer or [min, max], got a mapping",
                 NULL, NULL);
    EXPECT_ERROR("model: m\nworkload:\n  prompt_len: abc\n", "workload.prompt_len: expected a positive integer or [min, max]",
                 NULL, NULL);
    /* across keys: shared prefix must leave every prompt a token of its own */
    EXPECT_ERROR("model: m\nworkload:\n  prompt_len: [6, 9]\n  shared_prefix: 6\n",
                 "t.yaml:4:18: workload.shared_prefix (6) must be less than the shortest prompt", NULL, NULL);
    /* duplicates */
    EXPECT_ERROR("model: m\ncache:\n  block_size: 4\n  block_size: 8\n",
                 "t.yaml:4:3: duplicate key 'cache.block_size' (first given at line 3, column 3)", NULL, NULL);
    EXPECT_ERROR("model: m\nmodel: n\n", "t.yaml:2:1: duplicate key 'model'", NULL, NULL);
    EXPECT_ERROR("model: m\nfaults: {stale_block_table: true, stale_block_table: false}\n",
                 "duplicate key 'faults.stale_block_table'", NULL, NULL);
    EXPECT_ERROR("model: m\nfaults: {narrow_state_offset: {bits: 3, bits: 4}}\n",
                 "duplicate key 'faults.narrow_state_offset.bits'", NULL, NULL);
    /* structure: mapping vs scalar vs sequence */
    EXPECT_ERROR("model: m\ncache: 5\n", "t.yaml:2:8: cache: expected a mapping, got '5'", NULL, NULL);
    EXPECT_ERROR("model: m\ncache: [1]\n", "cache: expected a mapping, got a sequence", NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  block_size: {a: 1}\n", "t.yaml:3:15: cache.block_size: expected a positive integer, got a mapping",
                 NULL, NULL);
    EXPECT_ERROR("model: m\ncache:\n  block_size: [1]\n", "got a sequence", NULL, NULL);
    EXPECT_ERROR("model: {a: b}\n", "t.yaml:1:8: model: expected a path, got a mapping", NULL, NULL);
    EXPECT_ERROR("model: m\nfaults:\n  fork_shares_slot: [1]\n", "faults.fork_shares_slot: expected true, false or a mapping",
                 NULL, NULL);
    EXPECT_ERROR("model: m\nfaults:\n  fork_shares_slot: 1\n", "faults.fork_shares_slot: expected true, false", "got '1'", NULL);
    EXPECT_ERROR("model: m\nfaults: true\n", "faults: expected a mapping", NULL, NULL);
    EXPECT_ERROR("model: m\n? [a, b]\n: 1\n", "t.yaml:2:3: expected a key name, got a sequence", NULL, NULL);
    EXPECT_ERROR("- model: m\n", "t.yaml:1:1: expected a mapping (key: value lines) at the top level, got a sequence", NULL, NULL);
    EXPECT_ERROR("just a string\n", "t.yaml:1:1: expected a mapping", "got 'just a string'", NULL);
    /* model */
    EXPECT_ERROR("cache: {}\n", "t.yaml: missing required key 'model'", NULL, NULL);
    EXPECT_ERROR("", "t.yaml: missing required key 'model'", NULL, NULL);
    EXPECT_ERROR("# nothing\n", "t.yaml: missing required key 'model'", NULL, NULL);
    EXPECT_ERROR("model:\n", "t.yaml:1:", "model: expected a path, got nothing", NULL);
    EXPECT_ERROR("model: null\n", "model: expected a path, got 'null'", NULL, NULL);
    EXPECT_ERROR("model: \"\"\n", "model: the path is empty", NULL, NULL);
    EXPECT_ERROR("model: \"a\\0b\"\n", "model: the path contains a NUL", NULL, NULL);
    /* what a run config never needs */
    EXPECT_ERROR("model: &m x\n", "t.yaml:1:8: anchors (&name) are not supported", NULL, NULL);
    EXPECT_ERROR("model: x\nsched: &s {}\ncache: *s\n", "t.yaml:2:8: anchors", NULL, NULL);
    EXPECT_ERROR("model: x\ncache: *s\n", "t.yaml:2:8:", NULL, NULL); /* undefined alias */
    EXPECT_ERROR("model: !!str x\n", "t.yaml:1:8: explicit tags (!tag) are not supported", NULL, NULL);
    EXPECT_ERROR("model: x\n---\nmodel: y\n", "t.yaml:2:1: a second YAML document", NULL, NULL);
    /* reader errors: position computed from the byte offset */
    EXPECT_ERROR("model: x\ncache: \x01\n", "t.yaml:2:8: control characters are not allowed", NULL, NULL);
    EXPECT_ERROR("model: \xc3\xa9\xff\n", "t.yaml:1:9:", "UTF-8", NULL);
    {
        const char nul[] = "model: x\n\0\n";
        ls_run_config c;
        ls_err err;
        CHECK(ls_config_parse(nul, sizeof nul - 1, "nul.yaml", &c, &err) == -1);
        CHECKF(strstr(err.msg, "nul.yaml:2:1:"), "%s", err.msg);
        CHECK(is_zeroed(&c));
    }
    /* limits */
    {
        char deep[200];
        size_t o = (size_t)snprintf(deep, sizeof deep, "model: x\ncache: ");
        for (int i = 0; i < 20; i++) deep[o++] = '[';
        deep[o] = '\0';
        EXPECT_ERROR(deep, "t.yaml:2:", "nested more than 16 levels deep", NULL);
        size_t n = LS_CONFIG_MAX_BYTES + 1;
        char *big = malloc(n + 1);
        memset(big, '#', n);
        big[n] = '\0';
        EXPECT_ERROR(big, "t.yaml: 1048577 bytes is more than the 1048576-byte limit", NULL, NULL);
        /* many nodes in a small file */
        size_t m = 3 * (LS_CONFIG_MAX_NODES + 10) + 32;
        char *wide = malloc(m);
        o = (size_t)snprintf(wide, m, "model: x\nw: [");
        for (int i = 0; i < LS_CONFIG_MAX_NODES + 5; i++) o += (size_t)snprintf(wide + o, m - o, "1,");
        snprintf(wide + o, m - o, "]\n");
        EXPECT_ERROR(wide, "more than 10000 YAML nodes", NULL, NULL);
        free(wide);
        free(big);
    }
    /* load */
    {
        ls_run_config c;
        ls_err err;
        CHECK(ls_config_load("/nonexistent/x.yaml", &c, &err) == -1);
        CHECKF(strstr(err.msg, "/nonexistent/x.yaml: cannot open"), "%s", err.msg);
        CHECK(is_zeroed(&c));
    }
}

/* ------------------------------------------------------------------ --set */

static int set(ls_run_config *c, const char *a, ls_err *err) {
    err->msg[0] = '\0';
    return ls_config_set(c, a, err);
}

static void test_set(void) {
    ls_run_config c;
    ls_err err;
    const char *y0 = "model: m\ncache: {block_size: 4}\n";
    CHECK(ls_config_parse(y0, strlen(y0), "dir/t.yaml", &c, &err) == 0);
    CHECK(!strcmp(c.model_dir, "dir/m"));

    CHECK(set(&c, "cache.num_blocks=32", &err) == 0 && c.engine.num_blocks == 32);
    CHECK(set(&c, "sched.max_num_seqs=3", &err) == 0 && c.engine.max_num_seqs == 3);
    CHECK(set(&c, "precision=fp32", &err) == 0 && c.precision == LS_F32);
    CHECK(set(&c, "cache.slot_policy=highest", &err) == 0 && c.engine.slot_policy == LS_SLOT_HIGHEST);
    CHECK(set(&c, "cache.memory_fraction=0.25", &err) == 0 && c.engine.memory_fraction == 0.25);
    CHECK(set(&c, "workload.seed=7", &err) == 0 && c.workload.seed == 7);
    CHECK(set(&c, "workload.prompt_len=12", &err) == 0);
    CHECK(c.workload.prompt_len_min == 12 && c.workload.prompt_len_max == 12);
    CHECK(set(&c, "workload.prompt_len=[4,9]", &err) == 0);
    CHECK(c.workload.prompt_len_min == 4 && c.workload.prompt_len_max == 9);
    CHECK(set(&c, "workload.prompt_len= [ 5 , 6 ]", &err) == 0 && c.workload.prompt_len_min == 5);
    /* --set paths are relative to the current directory, not the YAML's */
    CHECK(set(&c, "model=other/m2", &err) == 0 && !strcmp(c.model_dir, "other/m2"));
    CHECK(set(&c, "workload.prompts_file=toks.txt", &err) == 0 && !strcmp(c.workload.prompts_file, "toks.txt"));
    CHECK(set(&c, "workload.prompts_file=null", &err) == 0 && c.workload.prompts_file == NULL);
    CHECK(set(&c, "output.trace=t.h5", &err) == 0 && !strcmp(c.trace_path, "t.h5"));
    /* faults */
    CHECK(set(&c, "faults.fork_shares_slot=true", &err) == 0 && c.engine.faults.on[LS_FAULT_FORK_SHARES_SLOT]);
    CHECK(set(&c, "faults.fork_shares_slot.enabled=false", &err) == 0 && !c.engine.faults.on[LS_FAULT_FORK_SHARES_SLOT]);
    CHECK(set(&c, "faults.narrow_state_offset=true", &err) == 0);
    CHECK(c.engine.faults.on[LS_FAULT_NARROW_STATE_OFFSET] && c.engine.faults.narrow_bits == 32);
    CHECK(set(&c, "faults.narrow_state_offset=false", &err) == 0 && !c.engine.faults.on[LS_FAULT_NARROW_STATE_OFFSET]);
    CHECK(set(&c, "faults.narrow_state_offset.bits=16", &err) == 0); /* implies enabled */
    CHECK(c.engine.faults.on[LS_FAULT_NARROW_STATE_OFFSET] && c.engine.faults.narrow_bits == 16);
    CHECK(set(&c, "faults.narrow_state_offset={enabled: false, bits: 8}", &err) == 0);
    CHECK(!c.engine.faults.on[LS_FAULT_NARROW_STATE_OFFSET] && c.engine.faults.narrow_bits == 8);
    /* a whole section */
    CHECK(set(&c, "sched={max_chunk: 8, pad_decode_to: 2}", &err) == 0);
    CHECK(c.engine.max_chunk == 8 && c.engine.pad_decode_to == 2 && c.engine.max_num_seqs == 3);
    CHECK(c.n_overrides == 20);
    CHECK(!strcmp(c.overrides[0], "cache.num_blocks=32"));
    CHECK(!strcmp(c.overrides[c.n_overrides - 1], "sched={max_chunk: 8, pad_decode_to: 2}"));
    CHECK(!strcmp(c.path, "dir/t.yaml") && c.text && !strcmp(c.text, "model: m\ncache: {block_size: 4}\n"));

    /* errors leave the config as it was, and name the key (no location) */
    char *before = ls_config_to_yaml(&c);
    int64_t n_before = c.n_overrides;
    CHECK(set(&c, "cache.num_blokcs=3", &err) == -1);
    CHECKF(!strcmp(err.msg, "unknown key 'cache.num_blokcs' (expected one of: block_size, num_blocks, num_state_slots, "
                            "slot_stride, num_snapshots, memory_budget_mb, memory_fraction, slot_policy, slot_seed, "
                            "prefix_caching, debug_poison)"),
           "%s", err.msg);
    CHECK(set(&c, "cachee.block_size=3", &err) == -1);
    CHECKF(strstr(err.msg, "unknown key 'cachee' (expected one of: model, precision, backend, mode, tf32, cache, sched, "
                           "workload, faults, compare, output)"),
           "%s", err.msg);
    CHECK(set(&c, "cache.num_blocks=abc", &err) == -1);
    CHECKF(!strcmp(err.msg, "cache.num_blocks: expected a non-negative integer, got 'abc'"), "%s", err.msg);
    CHECK(set(&c, "sched.max_num_seqs=0", &err) == -1);
    CHECKF(!strcmp(err.msg, "sched.max_num_seqs must be >= 1 (got 0)"), "%s", err.msg);
    CHECK(set(&c, "cache.num_blocks=", &err) == -1 && strstr(err.msg, "got nothing"));
    CHECK(set(&c, "cache.num_blocks", &err) == -1 && strstr(err.msg, "expected KEY=VALUE"));
    CHECK(set(&c, "=3", &err) == -1 && strstr(err.msg, "expected KEY=VALUE"));
    CHECK(set(&c, "cache.block_size.x=3", &err) == -1 && strstr(err.msg, "cache.block_size has no sub-keys"));
    CHECK(set(&c, "model.x=3", &err) == -1 && strstr(err.msg, "model has no sub-keys"));
    CHECK(set(&c, "workload.prompt_len=[4,", &err) == -1);
    CHECKF(strstr(err.msg, "workload.prompt_len: the value '[4,' is not valid YAML: did not find expected node content"),
           "%s", err.msg);
    CHECK(set(&c, "workload.prompt_len=[9,4]", &err) == -1 && strstr(err.msg, "min 9 is greater than max 4"));
    CHECK(set(&c, "faults.narrow_state_offset.bits=65", &err) == -1);
    CHECKF(!strcmp(err.msg, "faults.narrow_state_offset.bits must be in 1..64 (got 65)"), "%s", err.msg);
    CHECK(set(&c, "faults.narrow_state_offset.bits=x", &err) == -1);
    CHECK(set(&c, "faults.fork_shares_slot.bits=3", &err) == -1);
    CHECKF(!strcmp(err.msg, "unknown key 'faults.fork_shares_slot.bits' (expected one of: enabled)"), "%s", err.msg);
    CHECK(set(&c, "faults.nope=true", &err) == -1 && strstr(err.msg, "unknown key 'faults.nope' (expected one of: decode_misclassified"));
    CHECK(set(&c, "faults.fork_shares_slot=yes", &err) == -1);
    CHECK(set(&c, "sched={max_chunk: 4, bogus: 1}", &err) == -1 && strstr(err.msg, "unknown key 'sched.bogus'"));
    CHECK(set(&c, "sched={max_chunk: 5, max_num_seqs: 0}", &err) == -1); /* partly valid: all or nothing */
    CHECK(set(&c, "model=&a x", &err) == -1 && strstr(err.msg, "model: anchors"));
    CHECK(set(&c, "model=x\n---\ny", &err) == -1 && strstr(err.msg, "more than one YAML document"));
    char *after = ls_config_to_yaml(&c);
    CHECK(before && after && !strcmp(before, after));
    CHECK(c.n_overrides == n_before && c.engine.max_chunk == 8);
    free(before);
    free(after);

    /* cross-key checks are separate (one --set at a time may pass through invalid states) */
    CHECK(set(&c, "workload.prompt_len=[4,9]", &err) == 0);
    CHECK(set(&c, "workload.shared_prefix=4", &err) == 0);
    CHECK(ls_config_check(&c, &err) == -1 && strstr(err.msg, "workload.shared_prefix (4) must be less"));
    CHECK(set(&c, "workload.prompt_len=[5,9]", &err) == 0);
    CHECK(ls_config_check(&c, &err) == 0);
    ls_config_free(&c);

    /* --set on a default config (no YAML) */
    ls_config_default(&c);
    CHECK(set(&c, "model=x", &err) == 0 && !strcmp(c.model_dir, "x"));
    ls_config_free(&c);
}

/* ------------------------------------------------------------------ paths */

static void test_paths(void) {
    static const struct {
        const char *path, *model, *want;
    } cases[] = {
        {"a/b/c.yaml", "m", "a/b/m"},
        {"a/b/c.yaml", "../m", "a/b/../m"},
        {"a/b/c.yaml", "/abs/m", "/abs/m"},
        {"c.yaml", "m", "m"},
        {"/c.yaml", "m", "/m"},
        {"./c.yaml", "m", "./m"},
        {"<default>", "golden/x", "golden/x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char y[256];
        snprintf(y, sizeof y, "model: %s\nworkload: {prompts_file: p.txt}\noutput: {trace: t.h5, report: r/x.html}\n",
                 cases[i].model);
        ls_run_config c;
        ls_err err;
        int rc = ls_config_parse(y, strlen(y), cases[i].path, &c, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc) continue;
        CHECKF(!strcmp(c.model_dir, cases[i].want), "%s + %s -> %s", cases[i].path, cases[i].model, c.model_dir);
        CHECK(!strcmp(c.trace_path, "t.h5") && !strcmp(c.report_path, "r/x.html"));
        const char *slash = strrchr(cases[i].path, '/');
        if (slash)
            CHECKF(!strncmp(c.workload.prompts_file, cases[i].path, (size_t)(slash - cases[i].path)) &&
                       !strcmp(c.workload.prompts_file + strlen(c.workload.prompts_file) - 5, "p.txt"),
                   "%s", c.workload.prompts_file);
        else
            CHECK(!strcmp(c.workload.prompts_file, "p.txt"));
        ls_config_free(&c);
    }
}

/* ------------------------------------------------------------------ workload */

static ls_workload_spec spec(void) {
    ls_run_config c;
    ls_config_default(&c);
    ls_workload_spec s = c.workload;
    s.prompts = 12;
    s.prompt_len_min = 6;
    s.prompt_len_max = 20;
    s.shared_prefix = 4;
    s.prefix_groups = 3;
    s.rollouts = 2;
    s.max_new_tokens = 5;
    s.seed = 1234;
    return s;
}

static int same_workload(const ls_workload *a, const ls_workload *b, int64_t n) {
    if (a->n_requests < n || b->n_requests < n) return 0;
    for (int64_t i = 0; i < n; i++) {
        const ls_request *p = &a->requests[i], *q = &b->requests[i];
        if (p->prompt_len != q->prompt_len || p->arrival_step != q->arrival_step) return 0;
        if (memcmp(p->prompt, q->prompt, (size_t)p->prompt_len * sizeof *p->prompt)) return 0;
    }
    return 1;
}

static void test_workload(void) {
    const int64_t vocab = 128;
    ls_workload_spec s = spec();
    ls_workload a, b;
    ls_err err;
    CHECKF(ls_workload_generate(&s, vocab, &a, &err) == 0, "%s", err.msg);
    CHECKF(ls_workload_generate(&s, vocab, &b, &err) == 0, "%s", err.msg);
    CHECK(a.n_requests == 12 && a.seed == 1234);
    CHECK(same_workload(&a, &b, 12));
    ls_workload_free(&b);

    int64_t minlen = INT64_MAX, maxlen = 0;
    for (int64_t i = 0; i < a.n_requests; i++) {
        const ls_request *q = &a.requests[i];
        CHECK(q->prompt_len >= 6 && q->prompt_len <= 20);
        minlen = q->prompt_len < minlen ? q->prompt_len : minlen;
        maxlen = q->prompt_len > maxlen ? q->prompt_len : maxlen;
        for (int64_t p = 0; p < q->prompt_len; p++) CHECK(q->prompt[p] >= 0 && q->prompt[p] < vocab);
        CHECK(q->n_rollouts == 2 && q->max_new_tokens == 5 && q->arrival_step == 0);
        CHECK(q->sampling.temperature == 1.0 && q->sampling.top_p == 1.0 && q->sampling.top_k == 0);
        for (int64_t j = 0; j < i; j++) {
            const ls_request *r = &a.requests[j];
            int same_prefix = !memcmp(q->prompt, r->prompt, 4 * sizeof *q->prompt);
            if (i % 3 == j % 3) CHECKF(same_prefix, "prompts %lld and %lld share group %lld", (long long)i, (long long)j, (long long)(i % 3));
            else CHECKF(!same_prefix, "prompts %lld and %lld are in different groups", (long long)i, (long long)j);
            /* the suffix is each prompt's own */
            CHECK(memcmp(q->prompt + 4, r->prompt + 4, 2 * sizeof *q->prompt) != 0);
        }
    }
    CHECK(minlen < maxlen); /* lengths do vary */

    /* another seed: other prompts */
    s.seed = 1235;
    CHECK(ls_workload_generate(&s, vocab, &b, &err) == 0);
    int differ = 0;
    for (int64_t i = 0; i < 12; i++)
        differ += b.requests[i].prompt_len != a.requests[i].prompt_len ||
                  memcmp(b.requests[i].prompt, a.requests[i].prompt, (size_t)a.requests[i].prompt_len * 4) != 0;
    CHECK(differ >= 11);
    ls_workload_free(&b);

    /* more prompts keep the earlier ones; staggered arrivals */
    s.seed = 1234;
    s.prompts = 20;
    s.arrival_stagger = 1;
    s.arrival_every = 3;
    CHECK(ls_workload_generate(&s, vocab, &b, &err) == 0);
    CHECK(b.n_requests == 20);
    for (int64_t i = 0; i < 12; i++) {
        CHECK(b.requests[i].prompt_len == a.requests[i].prompt_len);
        CHECK(!memcmp(b.requests[i].prompt, a.requests[i].prompt, (size_t)a.requests[i].prompt_len * 4));
    }
    for (int64_t i = 0; i < 20; i++) CHECK(b.requests[i].arrival_step == 3 * i);
    ls_workload_free(&b);
    CHECK(b.requests == NULL && b.n_requests == 0);

    /* fixed length, no prefix, greedy */
    s = spec();
    s.prompt_len_min = s.prompt_len_max = 7;
    s.shared_prefix = 0;
    s.sampling.temperature = 0;
    s.sampling.top_k = 3;
    CHECK(ls_workload_generate(&s, 2, &b, &err) == 0);
    for (int64_t i = 0; i < b.n_requests; i++) {
        CHECK(b.requests[i].prompt_len == 7 && b.requests[i].sampling.temperature == 0 && b.requests[i].sampling.top_k == 3);
        for (int64_t p = 0; p < 7; p++) CHECK(b.requests[i].prompt[p] == 0 || b.requests[i].prompt[p] == 1);
    }
    ls_workload_free(&b);
    ls_workload_free(&a);

    /* invalid specs */
    s = spec();
    s.shared_prefix = 6;
    CHECK(ls_workload_generate(&s, vocab, &b, &err) == -1 && strstr(err.msg, "workload.shared_prefix (6)"));
    CHECK(b.requests == NULL);
    s = spec();
    s.prompts = 0;
    CHECK(ls_workload_generate(&s, vocab, &b, &err) == -1 && strstr(err.msg, "workload.prompts"));
    s = spec();
    s.sampling.top_p = 0;
    CHECK(ls_workload_generate(&s, vocab, &b, &err) == -1 && strstr(err.msg, "top_p"));
    s = spec();
    CHECK(ls_workload_generate(&s, 0, &b, &err) == -1 && strstr(err.msg, "vocabulary"));
    s.prompts = 1 << 20;
    s.prompt_len_max = 1 << 12;
    CHECK(ls_workload_generate(&s, vocab, &b, &err) == -1 && strstr(err.msg, "limit"));
    s = spec();
    s.arrival_stagger = 1;
    s.arrival_every = INT64_MAX / 4;
    CHECK(ls_workload_generate(&s, vocab, &b, &err) == -1 && strstr(err.msg, "overflows"));

    /* prompts from a file: one request per line, overriding the generator */
    char dir[] = "/tmp/ls_test_config_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char fpath[256];
    snprintf(fpath, sizeof fpath, "%s/prompts.txt", dir);
    FILE *f = fopen(fpath, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("1 2 3\n\n  4 5\n127\n", f);
        fclose(f);
    }
    s = spec();
    s.shared_prefix = 100; /* ignored with a file */
    s.prompts_file = fpath;
    s.arrival_stagger = 1;
    s.arrival_every = 2;
    CHECKF(ls_workload_generate(&s, vocab, &b, &err) == 0, "%s", err.msg);
    CHECK(b.n_requests == 3 && b.seed == 1234);
    if (b.n_requests == 3) {
        CHECK(b.requests[0].prompt_len == 3 && b.requests[0].prompt[2] == 3);
        CHECK(b.requests[1].prompt_len == 2 && b.requests[1].prompt[0] == 4);
        CHECK(b.requests[2].prompt_len == 1 && b.requests[2].prompt[0] == 127);
        CHECK(b.requests[2].arrival_step == 4 && b.requests[1].n_rollouts == 2);
    }
    ls_workload_free(&b);
    CHECK(ls_workload_generate(&s, 100, &b, &err) == -1);
    CHECKF(strstr(err.msg, "prompts.txt:4:") && strstr(err.msg, "127"), "%s", err.msg);
    f = fopen(fpath, "w");
    if (f) {
        fputs("\n \n", f);
        fclose(f);
    }
    CHECK(ls_workload_generate(&s, vocab, &b, &err) == -1 && strstr(err.msg, "no prompts"));
    remove(fpath);
    CHECK(ls_workload_generate(&s, vocab, &b, &err) == -1 && strstr(err.msg, "workload.prompts_file: cannot open"));
    rmdir(dir);

    /* the shipped default workload */
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/default.yaml", source_root());
    ls_run_config c;
    if (ls_config_load(path, &c, &err) == 0) {
        CHECK(ls_workload_generate(&c.workload, vocab, &b, &err) == 0);
        CHECK(b.n_requests == 6);
        for (int64_t i = 2; i < 6; i++)
            CHECK(!memcmp(b.requests[i].prompt, b.requests[i - 2].prompt, 4 * sizeof(int32_t)));
        CHECK(memcmp(b.requests[0].prompt, b.requests[1].prompt, 4 * sizeof(int32_t)) != 0);
        ls_workload_free(&b);
        ls_config_free(&c);
    }
}

int main(void) {
    test_default_yaml();
    test_all_keys();
    test_errors();
    test_set();
    test_paths();
    test_workload();
    return check_status();
}
