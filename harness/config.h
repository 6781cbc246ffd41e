/* The run configuration: a YAML file (configs/default.yaml documents every key) turned
 * into the structs the engine, the workload generator and the comparator take.
 *
 * Strict by design, because a config that silently means something else than it says
 * wastes a debugging session:
 *   - unknown keys, duplicate keys, a mapping where a scalar belongs (and vice versa),
 *     explicit tags, anchors and aliases, and a second document are errors;
 *   - integers are decimal only ([-+]?digits, no leading zeros, no '_', no 0x/0o,
 *     no exponent), checked for overflow;
 *   - floats are decimal ([-+]?digits[.digits][e[-+]digits], or .5), finite;
 *   - booleans are exactly `true` or `false` (not yes/no/on/off/True);
 *   - numbers and booleans must be plain scalars ("16" in quotes is a string);
 *   - null is `null`, `~` or nothing, and only the optional paths and whole sections
 *     accept it (an empty section means "all defaults").
 * Every error says where: "PATH:LINE:COL: ..." (1-based) for the YAML file, or just the
 * key for --set. Input is capped at LS_CONFIG_MAX_BYTES, nesting at LS_CONFIG_MAX_DEPTH
 * and the node count at LS_CONFIG_MAX_NODES. */
#ifndef LS_CONFIG_H
#define LS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/err.h"
#include "engine/model.h"
#include "engine/sampler.h"

#define LS_CONFIG_MAX_BYTES ((size_t)1 << 20)
#define LS_CONFIG_MAX_DEPTH 16
#define LS_CONFIG_MAX_NODES 10000

typedef struct ls_workload_spec {
    uint64_t seed;             /* sampling seed; also seeds prompt generation */
    int64_t prompts;           /* number of requests */
    int64_t prompt_len_min, prompt_len_max;
    int64_t shared_prefix;     /* tokens shared within a prefix group (< prompt_len_min) */
    int64_t prefix_groups;     /* prompt i belongs to group i % prefix_groups */
    int64_t rollouts;          /* samples per prompt */
    int64_t max_new_tokens;
    int64_t arrival_every;     /* stagger: request i arrives at step i * arrival_every */
    int arrival_stagger;       /* 0: all arrive at step 0 */
    ls_sampling sampling;
    char *prompts_file;        /* NULL, or token ids one prompt per line (overrides the generator) */
} ls_workload_spec;

typedef struct ls_compare_config {
    double max_abs;            /* fast mode: |engine - reference| above this is divergent */
    double max_divergent_frac; /* fast mode: fraction of divergent tokens tolerated */
    int probe_layers;          /* localise divergences with per-layer probes */
} ls_compare_config;

typedef struct ls_run_config {
    char *path;                /* the YAML file ("<default>" etc.) */
    char *text;                /* the YAML text as read, NUL-terminated (traces store it) */
    size_t text_len;
    char *model_dir;           /* resolved against the YAML file's directory */
    ls_prec precision;
    int backend_cuda;
    int mode_fast;
    int tf32;                  /* fast mode in fp32 on cuda: cuBLAS may use TF32 tensor cores */
    ls_engine_config engine;   /* ls_engine_config_default() + the YAML; not yet resolved */
    ls_workload_spec workload;
    ls_compare_config compare;
    char *trace_path, *report_path;  /* NULL if not given; relative to the current directory */
    char **overrides;          /* every --set assignment applied, verbatim, in order */
    int64_t n_overrides;
} ls_run_config;

/* Every default, model_dir NULL, nothing allocated (ls_config_free is still fine). */
void ls_config_default(ls_run_config *c);

/* Reads the file (at most LS_CONFIG_MAX_BYTES) and parses it. */
int ls_config_load(const char *path, ls_run_config *out, ls_err *err);

/* Parses `len` bytes of YAML (NULs included: libyaml rejects them). `path` names the
 * source in messages and anchors relative `model` / `workload.prompts_file` paths (its
 * directory part; none: relative to the current directory). Runs ls_config_check.
 * On error *out is left zeroed with nothing allocated. */
int ls_config_parse(const char *text, size_t len, const char *path, ls_run_config *out,
                    ls_err *err);

/* One override, "KEY=VALUE": KEY is a dotted key (cache.num_blocks, model,
 * faults.narrow_state_offset, faults.narrow_state_offset.bits, or a whole section), VALUE
 * a YAML value with the same type and range checks as in the file (so
 * workload.prompt_len=[4,9] and faults.x={enabled: true} work). Setting
 * faults.NAME.bits enables the fault. Relative paths given here are relative to the
 * current directory. An unknown key is an error listing the valid keys of its section.
 * Errors carry no location (the caller knows which --set it was). Does not run the
 * cross-key checks: call ls_config_check after the last override (ls_workload_generate
 * repeats the workload ones anyway). On error *c is unchanged. */
int ls_config_set(ls_run_config *c, const char *assignment, ls_err *err);

/* Checks that span keys (e.g. workload.shared_prefix < the shortest prompt). */
int ls_config_check(const ls_run_config *c, ls_err *err);

/* The effective configuration as YAML (every key, overrides applied, paths as stored),
 * malloc'd, or NULL when out of memory. Parsing it back with a `path` without a
 * directory part yields the same values. */
char *ls_config_to_yaml(const ls_run_config *c);

void ls_config_free(ls_run_config *c);

#endif
