/* libFuzzer target for the run-config parser (harness/config.h).
 *
 * The input is YAML text, parsed whole by ls_config_parse; the same bytes (up to the
 * first NUL) are also tried as one `--set` assignment on a default config. Beyond "no
 * crash, no leak, no undefined behaviour":
 *   - a rejected config leaves the struct zeroed and a message that names the source;
 *   - an accepted config holds every range the schema promises, passes
 *     ls_config_check, and survives ls_config_to_yaml -> ls_config_parse ->
 *     ls_config_to_yaml unchanged (so traces can store the effective config);
 *   - a rejected --set leaves the config exactly as it was.
 * A violation traps so the fuzzer reports it. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c) do { if (!(c)) __builtin_trap(); } while (0)

static int zeroed(const ls_run_config *c) {
    static const ls_run_config zero;
    return memcmp(c, &zero, sizeof zero) == 0;
}

static void check_ranges(const ls_run_config *c) {
    const ls_engine_config *e = &c->engine;
    const ls_workload_spec *w = &c->workload;
    REQUIRE(c->model_dir && c->model_dir[0] && c->path && c->text);
    REQUIRE(c->precision == LS_F32 || c->precision == LS_F64);
    REQUIRE(e->block_size >= 1 && e->num_blocks >= 0 && e->num_state_slots >= 0);
    REQUIRE(e->slot_stride >= 0 && e->num_snapshots >= 0 && e->memory_budget_mb >= 0);
    REQUIRE(e->memory_fraction > 0 && e->memory_fraction <= 1);
    REQUIRE(e->max_num_seqs >= 1 && e->max_batched_tokens >= 1 && e->max_chunk >= 0);
    REQUIRE(e->pad_decode_to >= 0 && e->max_steps >= 0);
    REQUIRE(e->faults.narrow_bits >= 1 && e->faults.narrow_bits <= 64);
    for (int f = 0; f < LS_FAULT_COUNT; f++) REQUIRE(e->faults.on[f] == 0 || e->faults.on[f] == 1);
    REQUIRE(w->prompts >= 1 && w->prompt_len_min >= 1 && w->prompt_len_min <= w->prompt_len_max);
    REQUIRE(w->shared_prefix >= 0 && w->prefix_groups >= 1 && w->rollouts >= 1);
    REQUIRE(w->max_new_tokens >= 1 && w->arrival_every >= 0);
    REQUIRE(w->sampling.temperature >= 0 && w->sampling.top_k >= 0);
    REQUIRE(w->sampling.top_p > 0 && w->sampling.top_p <= 1);
    REQUIRE(c->compare.max_abs >= 0 && c->compare.max_divergent_frac >= 0 && c->compare.max_divergent_frac <= 1);
    REQUIRE(ls_config_check(c, NULL) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ls_run_config c;
    ls_err err;
    err.msg[0] = '\0';
    if (ls_config_parse((const char *)data, size, "fuzz.yaml", &c, &err) != 0) {
        REQUIRE(zeroed(&c));
        REQUIRE(strncmp(err.msg, "fuzz.yaml", 9) == 0 || strstr(err.msg, "out of memory"));
    } else {
        check_ranges(&c);
        char *y = ls_config_to_yaml(&c);
        REQUIRE(y);
        ls_run_config d;
        REQUIRE(ls_config_parse(y, strlen(y), "dump", &d, &err) == 0);
        check_ranges(&d);
        REQUIRE(!strcmp(c.model_dir, d.model_dir));
        char *y2 = ls_config_to_yaml(&d);
        REQUIRE(y2 && !strcmp(y, y2));
        free(y);
        free(y2);
        ls_config_free(&d);
        ls_config_free(&c);
    }

    /* the bytes as one --set assignment */
    char *a = malloc(size + 1);
    if (!a) return 0;
    memcpy(a, data, size);
    a[size] = '\0';
    ls_config_default(&c);
    c.model_dir = strdup("m");
    char *before = ls_config_to_yaml(&c);
    if (ls_config_set(&c, a, &err) != 0) {
        char *after = ls_config_to_yaml(&c);
        REQUIRE(before && after && !strcmp(before, after) && c.n_overrides == 0);
        free(after);
    } else {
        REQUIRE(c.n_overrides == 1 && !strcmp(c.overrides[0], a));
        REQUIRE(c.model_dir && c.model_dir[0]);
    }
    free(before);
    free(a);
    ls_config_free(&c);
    return 0;
}
