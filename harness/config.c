/* The run configuration: YAML -> ls_run_config, strictly (see config.h).
 *
 * Two stages. First libyaml's event parser builds a small tree of our own (scalars,
 * sequences, mappings, each with its 1-based position), refusing aliases, anchors,
 * tags, a second document, more than LS_CONFIG_MAX_DEPTH levels or LS_CONFIG_MAX_NODES
 * nodes. Then a table-driven walk applies the tree to the struct: every key is looked
 * up in its section's table (so unknown keys are caught on first sight, and a mapping
 * with many keys costs linear time), duplicates are caught with a bitmask, and every
 * value is type- and range-checked where it stands. `--set` goes through the same walk
 * with a one-value tree. */
#include "harness/config.h"

#include "engine/read_file.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "engine/faults.h"
#include "engine/state_pool.h"

/* ---------------------------------------------------------------- the YAML tree */

enum { N_SCALAR, N_SEQ, N_MAP };

typedef struct ynode {
    int kind;
    char *s; /* scalar text, NUL-terminated (may contain NULs: then strlen(s) != len) */
    size_t len;
    int plain; /* plain (unquoted, not block) scalar */
    size_t line, col; /* 1-based */
    struct ynode **kids; /* sequence items; mapping: key, value, key, value, ... */
    size_t n, cap;
} ynode;

static void node_free(ynode *n) {
    if (!n) return;
    for (size_t i = 0; i < n->n; i++) node_free(n->kids[i]);
    free(n->kids);
    free(n->s);
    free(n);
}

static int node_push(ynode *parent, ynode *kid) {
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        ynode **k = realloc(parent->kids, cap * sizeof *k);
        if (!k) return -1;
        parent->kids = k;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return 0;
}

/* A null: a plain `null`, `Null`, `NULL`, `~`, or nothing at all. */
static int is_null(const ynode *v) {
    if (!v) return 1;
    if (v->kind != N_SCALAR || !v->plain) return 0;
    return v->len == 0 || !strcmp(v->s, "~") || !strcmp(v->s, "null") || !strcmp(v->s, "Null") ||
           !strcmp(v->s, "NULL");
}

/* ---------------------------------------------------------------- context, errors */

typedef struct ctx {
    const char *path;     /* messages "PATH:LINE:COL: ..."; NULL for --set (no location) */
    char *anchor_dir;     /* relative paths resolve against it; NULL: the current directory */
    ls_err *err;
    ls_run_config *c;
    const char *set_key;  /* --set: the key, for YAML errors in the value */
    size_t n_nodes;
    const ynode *shared_prefix_at; /* where workload.shared_prefix was given */
    const ynode *tf32_at;          /* where tf32 was given */
} ctx;

static int fail(ctx *x, const ynode *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ctx *x, const ynode *at, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->path && at) return ls_errf(x->err, "%s:%zu:%zu: %s", x->path, at->line, at->col, msg);
    if (x->path) return ls_errf(x->err, "%s: %s", x->path, msg);
    return ls_errf(x->err, "%s", msg);
}

/* Quotes up to 40 bytes of s for a message, escaping anything unprintable. */
static const char *quote(const char *s, size_t len, char buf[200]) {
    size_t o = 0;
    buf[o++] = '\'';
    size_t i;
    for (i = 0; i < len && i < 40; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'') buf[o++] = (char)ch;
        else o += (size_t)snprintf(buf + o, 8, "\\x%02x", ch);
    }
    if (i < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

/* What a value is, for "expected X, got Y". */
static const char *show(const ynode *v, char buf[200]) {
    if (!v) return "nothing";
    if (v->kind == N_MAP) return "a mapping";
    if (v->kind == N_SEQ) return "a sequence";
    if (v->plain && v->len == 0) return "nothing";
    return quote(v->s, v->len, buf);
}

/* ---------------------------------------------------------------- events -> tree */

static void line_col_of_offset(const char *text, size_t len, size_t off, size_t *line, size_t *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        unsigned char b = (unsigned char)text[i];
        if (b == '\n') {
            (*line)++;
            *col = 1;
        } else if ((b & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

static int yaml_fail(ctx *x, const yaml_parser_t *p, const char *text, size_t len) {
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_MEMORY_ERROR) problem = "out of memory";
    char where[160] = "";
    size_t line, col;
    if (p->error == YAML_READER_ERROR) {
        line_col_of_offset(text, len, p->problem_offset, &line, &col);
        if (p->problem_value >= 0)
            snprintf(where, sizeof where, " (0x%02X)", (unsigned)p->problem_value);
    } else {
        line = p->problem_mark.line + 1;
        col = p->problem_mark.column + 1;
        if (p->context)
            snprintf(where, sizeof where, " (%s started at line %zu, column %zu)", p->context,
                     p->context_mark.line + 1, p->context_mark.column + 1);
    }
    if (p->error == YAML_MEMORY_ERROR) {
        if (x->path) return ls_errf(x->err, "%s: out of memory while parsing YAML", x->path);
        return ls_errf(x->err, "%s: out of memory while parsing the value", x->set_key);
    }
    if (x->path) return ls_errf(x->err, "%s:%zu:%zu: %s%s", x->path, line, col, problem, where);
    char q[200];
    return ls_errf(x->err, "%s: the value %s is not valid YAML: %s", x->set_key, quote(text, len, q), problem);
}

static int event_fail(ctx *x, const yaml_event_t *ev, const char *what) {
    ynode at = {.line = ev->start_mark.line + 1, .col = ev->start_mark.column + 1};
    if (x->path) return fail(x, &at, "%s are not supported in run configs", what);
    return ls_errf(x->err, "%s: %s are not supported", x->set_key, what);
}

/* Parses text into *root (NULL for an empty stream). */
static int build_tree(ctx *x, const char *text, size_t len, ynode **root) {
    *root = NULL;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return ls_errf(x->err, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
    ynode *stack[LS_CONFIG_MAX_DEPTH];
    int depth = 0, docs = 0, rc = -1;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            yaml_fail(x, &p, text, len);
            goto out;
        }
        int stop = 0, bad = 0;
        ynode *nn = NULL;
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (docs++ > 0) {
                ynode at = {.line = ev.start_mark.line + 1, .col = ev.start_mark.column + 1};
                if (x->path) fail(x, &at, "a second YAML document: a run config is one document");
                else ls_errf(x->err, "%s: the value is more than one YAML document", x->set_key);
                bad = 1;
            }
            break;
        case YAML_ALIAS_EVENT:
            bad = 1;
            event_fail(x, &ev, "aliases (*name)");
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            const yaml_char_t *anchor = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.anchor
                                        : ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.anchor
                                                                               : ev.data.mapping_start.anchor;
            const yaml_char_t *tag = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.tag
                                     : ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.tag
                                                                            : ev.data.mapping_start.tag;
            if (anchor) {
                bad = 1;
                event_fail(x, &ev, "anchors (&name)");
                break;
            }
            if (tag) {
                bad = 1;
                event_fail(x, &ev, "explicit tags (!tag)");
                break;
            }
            if (++x->n_nodes > LS_CONFIG_MAX_NODES) {
                bad = 1;
                ynode at = {.line = ev.start_mark.line + 1, .col = ev.start_mark.column + 1};
                if (x->path) fail(x, &at, "more than %d YAML nodes: too big for a run config", LS_CONFIG_MAX_NODES);
                else ls_errf(x->err, "%s: the value has more than %d YAML nodes", x->set_key, LS_CONFIG_MAX_NODES);
                break;
            }
            int is_scalar = ev.type == YAML_SCALAR_EVENT;
            if (!is_scalar && depth == LS_CONFIG_MAX_DEPTH) {
                bad = 1;
                ynode at = {.line = ev.start_mark.line + 1, .col = ev.start_mark.column + 1};
                if (x->path) fail(x, &at, "nested more than %d levels deep", LS_CONFIG_MAX_DEPTH);
                else ls_errf(x->err, "%s: the value is nested more than %d levels deep", x->set_key, LS_CONFIG_MAX_DEPTH);
                break;
            }
            nn = calloc(1, sizeof *nn);
            if (!nn) {
                bad = 1;
                ls_errf(x->err, "out of memory");
                break;
            }
            nn->line = ev.start_mark.line + 1;
            nn->col = ev.start_mark.column + 1;
            if (is_scalar) {
                nn->kind = N_SCALAR;
                nn->len = ev.data.scalar.length;
                nn->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                nn->s = malloc(nn->len + 1);
                if (!nn->s) {
                    free(nn);
                    bad = 1;
                    ls_errf(x->err, "out of memory");
                    break;
                }
                if (nn->len) memcpy(nn->s, ev.data.scalar.value, nn->len);
                nn->s[nn->len] = '\0';
            } else {
                nn->kind = ev.type == YAML_MAPPING_START_EVENT ? N_MAP : N_SEQ;
            }
            if (depth == 0) {
                *root = nn; /* one document, so one root */
            } else if (node_push(stack[depth - 1], nn)) {
                node_free(nn);
                bad = 1;
                ls_errf(x->err, "out of memory");
                break;
            }
            if (!is_scalar) stack[depth++] = nn;
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (depth > 0) depth--;
            break;
        case YAML_STREAM_END_EVENT:
            stop = 1;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (bad) goto out;
        if (stop) break;
    }
    rc = 0;
out:
    yaml_parser_delete(&p);
    if (rc) {
        node_free(*root);
        *root = NULL;
    }
    return rc;
}

/* ---------------------------------------------------------------- scalars */

/* [-+]?(0|[1-9][0-9]*) -> sign and magnitude. 0 ok, -1 not an integer, -2 overflow. */
static int parse_mag(const ynode *v, int *neg, uint64_t *mag) {
    if (v->kind != N_SCALAR || !v->plain || v->len != strlen(v->s)) return -1;
    const char *p = v->s;
    *neg = 0;
    if (*p == '-' || *p == '+') *neg = *p++ == '-';
    if (*p < '0' || *p > '9') return -1;
    if (p[0] == '0' && p[1] != '\0') return -1; /* leading zeros: octal in YAML 1.1 */
    uint64_t m = 0;
    int over = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        unsigned d = (unsigned)(*p - '0');
        if (m > (UINT64_MAX - d) / 10) over = 1;
        else m = m * 10 + d;
    }
    *mag = m;
    return over ? -2 : 0;
}

/* Decimal float: [-+]?(digits[.digits*]|.digits)([eE][-+]?digits)?, finite. */
static int parse_dbl(const ynode *v, double *out) {
    if (v->kind != N_SCALAR || !v->plain || v->len != strlen(v->s)) return -1;
    const char *p = v->s;
    if (*p == '-' || *p == '+') p++;
    int digits = 0;
    while (*p >= '0' && *p <= '9') p++, digits++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') p++, digits++;
    }
    if (!digits) return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+') p++;
        if (*p < '0' || *p > '9') return -1;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p) return -1;
    errno = 0;
    double d = strtod(v->s, NULL);
    if (!isfinite(d)) return -2;
    *out = d;
    return 0;
}

/* ---------------------------------------------------------------- the schema */

enum { K_INT, K_U64, K_DBL, K_BOOL, K_STR, K_ENUM, K_PROMPT_LEN, K_SECTION, K_FAULTS };

typedef struct enum_def {
    int n;
    const char *(*name)(int v);                 /* values are 0..n-1 */
    int (*parse)(const char *s, int *v);
    void (*store)(ls_run_config *c, int v);
    int (*load)(const ls_run_config *c);
} enum_def;

struct section_def;

typedef struct key_def {
    const char *name;
    int kind;
    size_t off;         /* K_INT (int64_t), K_U64, K_DBL, K_BOOL (int), K_STR (char *) */
    int64_t imin;       /* K_INT */
    double lo, hi;      /* K_DBL: lo <= v (or lo < v if lo_open); v <= hi if has_hi */
    int lo_open, has_hi;
    int nullable;       /* K_STR: null allowed (stays NULL) */
    int anchored;       /* K_STR: relative paths resolve against the YAML file's directory */
    const enum_def *en;
    const struct section_def *sub;
} key_def;

typedef struct section_def {
    const char *name; /* "" for the top level */
    const key_def *keys;
    int n;
} section_def;

#define OFF(m) offsetof(ls_run_config, m)

static const char *prec_name(int v) { return ls_prec_name((ls_prec)v); }
static int prec_parse(const char *s, int *v) {
    ls_prec p;
    if (ls_prec_parse(s, &p)) return -1;
    *v = (int)p;
    return 0;
}
static void prec_store(ls_run_config *c, int v) { c->precision = (ls_prec)v; }
static int prec_load(const ls_run_config *c) { return (int)c->precision; }
static const enum_def EN_PREC = {2, prec_name, prec_parse, prec_store, prec_load};

static const char *policy_name(int v) { return ls_slot_policy_name((ls_slot_policy)v); }
static int policy_parse(const char *s, int *v) {
    ls_slot_policy p;
    if (ls_slot_policy_parse(s, &p)) return -1;
    *v = (int)p;
    return 0;
}
static void policy_store(ls_run_config *c, int v) { c->engine.slot_policy = (ls_slot_policy)v; }
static int policy_load(const ls_run_config *c) { return (int)c->engine.slot_policy; }
static const enum_def EN_POLICY = {4, policy_name, policy_parse, policy_store, policy_load};

static int names_parse(const char *const *names, int n, const char *s, int *v) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) {
            *v = i;
            return 0;
        }
    return -1;
}
static const char *const BACKENDS[] = {"cpu", "cuda"};
static const char *backend_name(int v) { return BACKENDS[v]; }
static int backend_parse(const char *s, int *v) { return names_parse(BACKENDS, 2, s, v); }
static void backend_store(ls_run_config *c, int v) { c->backend_cuda = v; }
static int backend_load(const ls_run_config *c) { return c->backend_cuda ? 1 : 0; }
static const enum_def EN_BACKEND = {2, backend_name, backend_parse, backend_store, backend_load};

static const char *const MODES[] = {"invariant", "fast"};
static const char *mode_name(int v) { return MODES[v]; }
static int mode_parse(const char *s, int *v) { return names_parse(MODES, 2, s, v); }
static void mode_store(ls_run_config *c, int v) { c->mode_fast = v; }
static int mode_load(const ls_run_config *c) { return c->mode_fast ? 1 : 0; }
static const enum_def EN_MODE = {2, mode_name, mode_parse, mode_store, mode_load};

static const char *const ARRIVALS[] = {"all", "stagger"};
static const char *arrival_name(int v) { return ARRIVALS[v]; }
static int arrival_parse(const char *s, int *v) { return names_parse(ARRIVALS, 2, s, v); }
static void arrival_store(ls_run_config *c, int v) { c->workload.arrival_stagger = v; }
static int arrival_load(const ls_run_config *c) { return c->workload.arrival_stagger ? 1 : 0; }
static const enum_def EN_ARRIVAL = {2, arrival_name, arrival_parse, arrival_store, arrival_load};

#define KINT(n, m, mn) {.name = n, .kind = K_INT, .off = OFF(m), .imin = mn}
#define KU64(n, m) {.name = n, .kind = K_U64, .off = OFF(m)}
#define KDBL(n, m, l, lopen, h, hash) {.name = n, .kind = K_DBL, .off = OFF(m), .lo = l, .lo_open = lopen, .hi = h, .has_hi = hash}
#define KBOOL(n, m) {.name = n, .kind = K_BOOL, .off = OFF(m)}
#define KSTR(n, m, nul, anch) {.name = n, .kind = K_STR, .off = OFF(m), .nullable = nul, .anchored = anch}
#define KENUM(n, e) {.name = n, .kind = K_ENUM, .en = &e}

static const key_def CACHE_KEYS[] = {
    KINT("block_size", engine.block_size, 1),
    KINT("num_blocks", engine.num_blocks, 0),
    KINT("num_state_slots", engine.num_state_slots, 0),
    KINT("slot_stride", engine.slot_stride, 0),
    KINT("num_snapshots", engine.num_snapshots, 0),
    KDBL("memory_budget_mb", engine.memory_budget_mb, 0, 0, 0, 0),
    KDBL("memory_fraction", engine.memory_fraction, 0, 1, 1, 1),
    KENUM("slot_policy", EN_POLICY),
    KU64("slot_seed", engine.slot_seed),
    KBOOL("prefix_caching", engine.prefix_caching),
    KBOOL("debug_poison", engine.debug_poison),
};
static const key_def SCHED_KEYS[] = {
    KINT("max_num_seqs", engine.max_num_seqs, 1),
    KINT("max_batched_tokens", engine.max_batched_tokens, 1),
    KINT("max_chunk", engine.max_chunk, 0),
    KINT("pad_decode_to", engine.pad_decode_to, 0),
    KINT("max_steps", engine.max_steps, 0),
};
static const key_def WORKLOAD_KEYS[] = {
    KU64("seed", workload.seed),
    KINT("prompts", workload.prompts, 1),
    {.name = "prompt_len", .kind = K_PROMPT_LEN},
    KINT("shared_prefix", workload.shared_prefix, 0),
    KINT("prefix_groups", workload.prefix_groups, 1),
    KINT("rollouts", workload.rollouts, 1),
    KINT("max_new_tokens", workload.max_new_tokens, 1),
    KENUM("arrival", EN_ARRIVAL),
    KINT("arrival_every", workload.arrival_every, 0),
    KDBL("temperature", workload.sampling.temperature, 0, 0, 0, 0),
    KINT("top_k", workload.sampling.top_k, 0),
    KDBL("top_p", workload.sampling.top_p, 0, 1, 1, 1),
    KSTR("prompts_file", workload.prompts_file, 1, 1),
};
static const key_def COMPARE_KEYS[] = {
    KDBL("max_abs", compare.max_abs, 0, 0, 0, 0),
    KDBL("max_divergent_frac", compare.max_divergent_frac, 0, 0, 1, 1),
    KBOOL("probe_layers", compare.probe_layers),
};
static const key_def OUTPUT_KEYS[] = {
    KSTR("trace", trace_path, 1, 0),
    KSTR("report", report_path, 1, 0),
};

#define NKEYS(a) ((int)(sizeof a / sizeof a[0]))
static const section_def SEC_CACHE = {"cache", CACHE_KEYS, NKEYS(CACHE_KEYS)};
static const section_def SEC_SCHED = {"sched", SCHED_KEYS, NKEYS(SCHED_KEYS)};
static const section_def SEC_WORKLOAD = {"workload", WORKLOAD_KEYS, NKEYS(WORKLOAD_KEYS)};
static const section_def SEC_COMPARE = {"compare", COMPARE_KEYS, NKEYS(COMPARE_KEYS)};
static const section_def SEC_OUTPUT = {"output", OUTPUT_KEYS, NKEYS(OUTPUT_KEYS)};

static const key_def TOP_KEYS[] = {
    KSTR("model", model_dir, 0, 1),
    KENUM("precision", EN_PREC),
    KENUM("backend", EN_BACKEND),
    KENUM("mode", EN_MODE),
    KBOOL("tf32", tf32),
    {.name = "cache", .kind = K_SECTION, .sub = &SEC_CACHE},
    {.name = "sched", .kind = K_SECTION, .sub = &SEC_SCHED},
    {.name = "workload", .kind = K_SECTION, .sub = &SEC_WORKLOAD},
    {.name = "faults", .kind = K_FAULTS},
    {.name = "compare", .kind = K_SECTION, .sub = &SEC_COMPARE},
    {.name = "output", .kind = K_SECTION, .sub = &SEC_OUTPUT},
};
static const section_def SEC_TOP = {"", TOP_KEYS, NKEYS(TOP_KEYS)};
#define TOP_MODEL 0

_Static_assert(LS_FAULT_COUNT <= 64, "the duplicate-key bitmask holds 64 keys");

/* ---------------------------------------------------------------- applying values */

static void *field(ctx *x, const key_def *k) { return (char *)x->c + k->off; }

/* "a, b, c" from a section's key names (or the fault names). */
static void key_list(const section_def *sec, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = '\0';
    int n = sec ? sec->n : LS_FAULT_COUNT;
    for (int i = 0; i < n && o < cap; i++) {
        const char *nm = sec ? sec->keys[i].name : ls_fault_name((ls_fault)i);
        int w = snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", nm);
        if (w < 0) break;
        o += (size_t)w;
    }
}

static int unknown_key(ctx *x, const ynode *at, const char *prefix, const char *key, size_t klen,
                       const char *list) {
    char q[200];
    quote(key, klen, q);
    /* 'cache.num_blokcs': the prefix and the key inside one pair of quotes */
    return fail(x, at, "unknown key '%s%s%.*s' (expected one of: %s)", prefix, *prefix ? "." : "",
                (int)(strlen(q) - 2), q + 1, list);
}

static int type_error(ctx *x, const ynode *v, const char *key, const char *what) {
    char b[200];
    if (v && v->kind == N_SCALAR && !v->plain)
        return fail(x, v, "%s: expected %s, got the quoted string %s (write it without quotes)", key,
                    what, show(v, b));
    return fail(x, v, "%s: expected %s, got %s", key, what, show(v, b));
}

static const char *int_what(int64_t imin) {
    return imin == 0 ? "a non-negative integer" : imin == 1 ? "a positive integer" : "an integer";
}

static int get_int(ctx *x, const ynode *v, const char *key, int64_t imin, int64_t *out) {
    const char *what = int_what(imin);
    int neg;
    uint64_t mag;
    int r = v ? parse_mag(v, &neg, &mag) : -1;
    if (r == -1) return type_error(x, v, key, what);
    if (r == -2 || (neg && mag > (uint64_t)INT64_MAX + 1) || (!neg && mag > (uint64_t)INT64_MAX)) {
        char b[200];
        return fail(x, v, "%s: %s is out of range for a 64-bit integer", key, show(v, b));
    }
    int64_t val = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    if (val < imin) return fail(x, v, "%s must be >= %lld (got %lld)", key, (long long)imin, (long long)val);
    *out = val;
    return 0;
}

static int get_u64(ctx *x, const ynode *v, const char *key, uint64_t *out) {
    int neg;
    uint64_t mag;
    int r = v ? parse_mag(v, &neg, &mag) : -1;
    if (r == -1) return type_error(x, v, key, "a non-negative integer");
    char b[200];
    if (neg && mag) return fail(x, v, "%s must be >= 0 (got %.40s)", key, v->s);
    if (r == -2) return fail(x, v, "%s: %s is out of range (at most %llu)", key, show(v, b),
                             (unsigned long long)UINT64_MAX);
    *out = mag;
    return 0;
}

static int get_bool(ctx *x, const ynode *v, const char *key, int *out) {
    if (v && v->kind == N_SCALAR && v->plain && !strcmp(v->s, "true")) *out = 1;
    else if (v && v->kind == N_SCALAR && v->plain && !strcmp(v->s, "false")) *out = 0;
    else return type_error(x, v, key, "true or false");
    return 0;
}

static int get_dbl(ctx *x, const ynode *v, const key_def *k, const char *key, double *out) {
    double d = 0;
    int r = v ? parse_dbl(v, &d) : -1;
    char b[200];
    if (r == -1) return type_error(x, v, key, "a decimal number");
    if (r == -2) return fail(x, v, "%s: %s is not a finite number", key, show(v, b));
    int ok = (k->lo_open ? d > k->lo : d >= k->lo) && (!k->has_hi || d <= k->hi);
    if (!ok) {
        if (k->has_hi)
            return fail(x, v, "%s must be in %c%g, %g] (got %.40s)", key, k->lo_open ? '(' : '[', k->lo,
                        k->hi, v->s);
        return fail(x, v, "%s must be %s %g (got %.40s)", key, k->lo_open ? ">" : ">=", k->lo, v->s);
    }
    *out = d;
    return 0;
}

static char *join_path(const char *dir, const char *rel) {
    size_t a = strlen(dir), b = strlen(rel);
    int slash = a > 0 && dir[a - 1] != '/';
    char *s = malloc(a + (size_t)slash + b + 1);
    if (!s) return NULL;
    memcpy(s, dir, a);
    if (slash) s[a] = '/';
    memcpy(s + a + (size_t)slash, rel, b + 1);
    return s;
}

static int get_str(ctx *x, const ynode *v, const key_def *k, const char *key) {
    char **dst = field(x, k);
    if (is_null(v)) {
        if (!k->nullable) return type_error(x, v, key, "a path");
        free(*dst);
        *dst = NULL;
        return 0;
    }
    if (v->kind != N_SCALAR) return type_error(x, v, key, k->nullable ? "a path or null" : "a path");
    if (v->len == 0) return fail(x, v, "%s: the path is empty", key);
    if (strlen(v->s) != v->len) return fail(x, v, "%s: the path contains a NUL character", key);
    char *s = k->anchored && x->anchor_dir && v->s[0] != '/' ? join_path(x->anchor_dir, v->s)
                                                             : strdup(v->s);
    if (!s) return ls_errf(x->err, "out of memory");
    free(*dst);
    *dst = s;
    return 0;
}

static int get_enum(ctx *x, const ynode *v, const enum_def *en, const char *key) {
    int val;
    if (v && v->kind == N_SCALAR && v->len == strlen(v->s) && en->parse(v->s, &val) == 0) {
        en->store(x->c, val);
        return 0;
    }
    char list[300];
    size_t o = 0;
    list[0] = '\0';
    for (int i = 0; i < en->n; i++) {
        int w = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", en->name(i));
        if (w < 0 || (size_t)w >= sizeof list - o) break;
        o += (size_t)w;
    }
    char b[200];
    return fail(x, v, "%s: expected one of %s, got %s", key, list, show(v, b));
}

static int get_prompt_len(ctx *x, const ynode *v, const char *key) {
    int64_t lo, hi;
    if (v && v->kind == N_SEQ) {
        if (v->n != 2)
            return fail(x, v, "%s: expected [min, max] (2 integers), got %zu item%s", key, v->n,
                        v->n == 1 ? "" : "s");
        char k2[96];
        snprintf(k2, sizeof k2, "%s[0]", key);
        if (get_int(x, v->kids[0], k2, 1, &lo)) return -1;
        snprintf(k2, sizeof k2, "%s[1]", key);
        if (get_int(x, v->kids[1], k2, 1, &hi)) return -1;
        if (lo > hi) return fail(x, v, "%s: min %lld is greater than max %lld", key, (long long)lo, (long long)hi);
    } else if (v && v->kind == N_MAP) {
        return type_error(x, v, key, "an integer or [min, max]");
    } else {
        if (v && v->kind == N_SCALAR && parse_mag(v, &(int){0}, &(uint64_t){0}) == -1)
            return type_error(x, v, key, "a positive integer or [min, max]");
        if (get_int(x, v, key, 1, &lo)) return -1;
        hi = lo;
    }
    x->c->workload.prompt_len_min = lo;
    x->c->workload.prompt_len_max = hi;
    return 0;
}

static int apply_section(ctx *x, const section_def *sec, const ynode *map);
static int apply_faults(ctx *x, const ynode *map);

static int apply_key(ctx *x, const section_def *sec, const key_def *k, const ynode *v) {
    char key[96];
    snprintf(key, sizeof key, "%s%s%s", sec->name, *sec->name ? "." : "", k->name);
    switch (k->kind) {
    case K_INT: {
        int64_t val;
        if (get_int(x, v, key, k->imin, &val)) return -1;
        *(int64_t *)field(x, k) = val;
        if (!strcmp(key, "workload.shared_prefix")) x->shared_prefix_at = v;
        return 0;
    }
    case K_U64: return get_u64(x, v, key, (uint64_t *)field(x, k));
    case K_DBL: return get_dbl(x, v, k, key, (double *)field(x, k));
    case K_BOOL:
        if (!strcmp(key, "tf32")) x->tf32_at = v;
        return get_bool(x, v, key, (int *)field(x, k));
    case K_STR: return get_str(x, v, k, key);
    case K_ENUM: return get_enum(x, v, k->en, key);
    case K_PROMPT_LEN: return get_prompt_len(x, v, key);
    case K_SECTION: return apply_section(x, k->sub, v);
    case K_FAULTS: return apply_faults(x, v);
    default: return ls_errf(x->err, "internal error: key kind %d", k->kind);
    }
}

/* A section's value: a mapping, or null (all defaults). */
static int want_map(ctx *x, const ynode *v, const char *name) {
    if (is_null(v)) return 0;
    if (v->kind == N_MAP) return 1;
    char b[200];
    if (!*name) return fail(x, v, "expected a mapping (key: value lines) at the top level, got %s",
                            v->kind == N_SEQ ? "a sequence" : show(v, b));
    return fail(x, v, "%s: expected a mapping, got %s", name, show(v, b));
}

static int key_of(ctx *x, const ynode *k, const char *prefix) {
    if (k->kind == N_SCALAR) return 0;
    return fail(x, k, "expected a key name%s%s, got %s", *prefix ? " in " : "", prefix,
                k->kind == N_MAP ? "a mapping" : "a sequence");
}

static int key_is(const ynode *k, const char *name) {
    return k->len == strlen(name) && !memcmp(k->s, name, k->len);
}

static int apply_section_seen(ctx *x, const section_def *sec, const ynode *map, uint64_t *seen_out) {
    uint64_t seen = 0;
    const ynode *first[64] = {0};
    int m = want_map(x, map, sec->name);
    if (m <= 0) {
        if (seen_out) *seen_out = 0;
        return m;
    }
    char list[600];
    for (size_t i = 0; i < map->n; i += 2) {
        const ynode *k = map->kids[i], *v = i + 1 < map->n ? map->kids[i + 1] : NULL;
        if (key_of(x, k, sec->name)) return -1;
        int idx = -1;
        for (int j = 0; j < sec->n; j++)
            if (key_is(k, sec->keys[j].name)) idx = j;
        if (idx < 0) {
            key_list(sec, list, sizeof list);
            return unknown_key(x, k, sec->name, k->s, k->len, list);
        }
        if (seen >> idx & 1)
            return fail(x, k, "duplicate key '%s%s%s' (first given at line %zu, column %zu)", sec->name,
                        *sec->name ? "." : "", sec->keys[idx].name, first[idx]->line, first[idx]->col);
        seen |= (uint64_t)1 << idx;
        first[idx] = k;
        if (apply_key(x, sec, &sec->keys[idx], v)) return -1;
    }
    if (seen_out) *seen_out = seen;
    return 0;
}

static int apply_section(ctx *x, const section_def *sec, const ynode *map) {
    return apply_section_seen(x, sec, map, NULL);
}

/* faults.NAME.SUB = v, SUB in {enabled, bits}. */
static int apply_fault_sub(ctx *x, ls_fault f, const char *sub, const ynode *v) {
    char key[128];
    snprintf(key, sizeof key, "faults.%s.%s", ls_fault_name(f), sub);
    ls_faults *fs = &x->c->engine.faults;
    if (!strcmp(sub, "enabled")) return get_bool(x, v, key, &fs->on[f]);
    /* bits */
    int64_t b;
    if (get_int(x, v, key, INT64_MIN, &b)) return -1;
    if (b < 1 || b > 64) return fail(x, v, "%s must be in 1..64 (got %lld)", key, (long long)b);
    fs->narrow_bits = (int)b;
    fs->on[f] = 1;
    return 0;
}

static const char *fault_sub_list(ls_fault f) {
    return f == LS_FAULT_NARROW_STATE_OFFSET ? "enabled, bits" : "enabled";
}

static int fault_sub_valid(ls_fault f, const char *s, size_t len) {
    if (len == 7 && !memcmp(s, "enabled", 7)) return 1;
    return f == LS_FAULT_NARROW_STATE_OFFSET && len == 4 && !memcmp(s, "bits", 4);
}

/* faults.NAME = true | false | {enabled: bool, bits: int}; a mapping without `enabled`
 * enables the fault. */
static int apply_fault(ctx *x, ls_fault f, const ynode *v) {
    char key[96];
    snprintf(key, sizeof key, "faults.%s", ls_fault_name(f));
    if (!v || v->kind != N_MAP) {
        if (v && v->kind == N_SEQ) return type_error(x, v, key, "true, false or a mapping {enabled: ...}");
        int on;
        if (v && v->kind == N_SCALAR && v->plain && (!strcmp(v->s, "true") || !strcmp(v->s, "false"))) {
            get_bool(x, v, key, &on);
            x->c->engine.faults.on[f] = on;
            return 0;
        }
        return type_error(x, v, key, "true, false or a mapping {enabled: ...}");
    }
    const ynode *first[2] = {0};
    int enabled_given = 0;
    for (size_t i = 0; i < v->n; i += 2) {
        const ynode *k = v->kids[i];
        if (key_of(x, k, key)) return -1;
        if (!fault_sub_valid(f, k->s, k->len)) {
            char q[200];
            quote(k->s, k->len, q);
            return fail(x, k, "unknown key '%s.%.*s' (expected one of: %s)", key, (int)(strlen(q) - 2),
                        q + 1, fault_sub_list(f));
        }
        int idx = key_is(k, "enabled") ? 0 : 1;
        if (first[idx])
            return fail(x, k, "duplicate key '%s.%s' (first given at line %zu, column %zu)", key,
                        idx ? "bits" : "enabled", first[idx]->line, first[idx]->col);
        first[idx] = k;
        if (!idx) enabled_given = 1;
    }
    /* bits first (it enables), then an explicit `enabled` has the last word */
    for (size_t i = 0; i < v->n; i += 2)
        if (key_is(v->kids[i], "bits") && apply_fault_sub(x, f, "bits", i + 1 < v->n ? v->kids[i + 1] : NULL))
            return -1;
    for (size_t i = 0; i < v->n; i += 2)
        if (key_is(v->kids[i], "enabled") && apply_fault_sub(x, f, "enabled", i + 1 < v->n ? v->kids[i + 1] : NULL))
            return -1;
    if (!enabled_given) x->c->engine.faults.on[f] = 1;
    return 0;
}

static int apply_faults(ctx *x, const ynode *map) {
    int m = want_map(x, map, "faults");
    if (m <= 0) return m;
    uint64_t seen = 0;
    const ynode *first[64] = {0};
    char list[600];
    for (size_t i = 0; i < map->n; i += 2) {
        const ynode *k = map->kids[i], *v = i + 1 < map->n ? map->kids[i + 1] : NULL;
        if (key_of(x, k, "faults")) return -1;
        ls_fault f;
        if (strlen(k->s) != k->len || ls_fault_parse(k->s, &f)) {
            key_list(NULL, list, sizeof list);
            return unknown_key(x, k, "faults", k->s, k->len, list);
        }
        if (seen >> f & 1)
            return fail(x, k, "duplicate key 'faults.%s' (first given at line %zu, column %zu)",
                        ls_fault_name(f), first[f]->line, first[f]->col);
        seen |= (uint64_t)1 << f;
        first[f] = k;
        if (apply_fault(x, f, v)) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- checks across keys */

static int check_impl(ctx *x, const ls_run_config *c) {
    const ls_workload_spec *w = &c->workload;
    if (!w->prompts_file && w->shared_prefix > 0 && w->shared_prefix >= w->prompt_len_min)
        return fail(x, x->shared_prefix_at,
                    "workload.shared_prefix (%lld) must be less than the shortest prompt "
                    "(workload.prompt_len min %lld): every prompt needs a token of its own",
                    (long long)w->shared_prefix, (long long)w->prompt_len_min);
    if (w->prompt_len_min < 1 || w->prompt_len_min > w->prompt_len_max)
        return fail(x, NULL, "workload.prompt_len [%lld, %lld] needs 1 <= min <= max",
                    (long long)w->prompt_len_min, (long long)w->prompt_len_max);
    if (ls_sampling_check(&w->sampling, x->err)) return ls_err_prefix(x->err, "workload: ");
    if (c->tf32 && !(c->backend_cuda && c->mode_fast && c->precision == LS_F32))
        return fail(x, x->tf32_at,
                    "tf32: true needs backend cuda, mode fast and precision fp32 (got backend %s, "
                    "mode %s, precision %s): TF32 is a tensor-core mode of cuBLAS's fp32 products",
                    c->backend_cuda ? "cuda" : "cpu", c->mode_fast ? "fast" : "invariant",
                    ls_prec_name(c->precision));
    return 0;
}

int ls_config_check(const ls_run_config *c, ls_err *err) {
    ctx x = {.err = err};
    return check_impl(&x, c);
}

/* ---------------------------------------------------------------- public API */

void ls_config_default(ls_run_config *c) {
    memset(c, 0, sizeof *c);
    c->precision = LS_F64;
    ls_engine_config_default(&c->engine);
    ls_workload_spec *w = &c->workload;
    w->prompts = 4;
    w->prompt_len_min = 8;
    w->prompt_len_max = 32;
    w->prefix_groups = 1;
    w->rollouts = 1;
    w->max_new_tokens = 8;
    w->arrival_every = 1;
    w->sampling.temperature = 1.0;
    w->sampling.top_p = 1.0;
    c->compare.probe_layers = 1;
}

void ls_config_free(ls_run_config *c) {
    if (!c) return;
    free(c->path);
    free(c->text);
    free(c->model_dir);
    free(c->workload.prompts_file);
    free(c->trace_path);
    free(c->report_path);
    for (int64_t i = 0; i < c->n_overrides; i++) free(c->overrides[i]);
    free(c->overrides);
    memset(c, 0, sizeof *c);
}

int ls_config_parse(const char *text, size_t len, const char *path, ls_run_config *out,
                    ls_err *err) {
    if (!path) path = "<config>";
    memset(out, 0, sizeof *out);
    if (len > LS_CONFIG_MAX_BYTES)
        return ls_errf(err, "%s: %zu bytes is more than the %zu-byte limit for a run config", path, len,
                       LS_CONFIG_MAX_BYTES);
    ls_config_default(out);
    ctx x = {.path = path, .err = err, .c = out};
    ynode *root = NULL;
    int rc = -1;
    out->path = strdup(path);
    out->text = malloc(len + 1);
    if (!out->path || !out->text) {
        ls_errf(err, "%s: out of memory", path);
        goto out;
    }
    if (len) memcpy(out->text, text, len);
    out->text[len] = '\0';
    out->text_len = len;
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t dl = slash == path ? 1 : (size_t)(slash - path);
        x.anchor_dir = malloc(dl + 1);
        if (!x.anchor_dir) {
            ls_errf(err, "%s: out of memory", path);
            goto out;
        }
        memcpy(x.anchor_dir, path, dl);
        x.anchor_dir[dl] = '\0';
    }
    if (build_tree(&x, text, len, &root)) goto out;
    uint64_t seen = 0;
    if (apply_section_seen(&x, &SEC_TOP, root, &seen)) goto out;
    if (!(seen >> TOP_MODEL & 1)) {
        ls_errf(err, "%s: missing required key 'model' (the model directory)", path);
        goto out;
    }
    if (check_impl(&x, out)) goto out;
    rc = 0;
out:
    node_free(root);
    free(x.anchor_dir);
    if (rc) ls_config_free(out);
    return rc;
}

int ls_config_load(const char *path, ls_run_config *out, ls_err *err) {
    memset(out, 0, sizeof *out);
    char *buf;
    size_t n;
    /* one byte over the limit is enough for ls_config_parse to say why it refuses */
    if (ls_read_file(path, LS_CONFIG_MAX_BYTES + 1, &buf, &n, err)) return -1;
    int rc = ls_config_parse(buf, n, path, out, err);
    free(buf);
    return rc;
}

static int dup_str(char **dst, const char *src) {
    *dst = NULL;
    if (!src) return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

static int config_clone(const ls_run_config *src, ls_run_config *dst) {
    *dst = *src;
    dst->path = dst->text = dst->model_dir = dst->workload.prompts_file = NULL;
    dst->trace_path = dst->report_path = NULL;
    dst->overrides = NULL;
    dst->n_overrides = 0;
    if (dup_str(&dst->path, src->path) || dup_str(&dst->model_dir, src->model_dir) ||
        dup_str(&dst->workload.prompts_file, src->workload.prompts_file) ||
        dup_str(&dst->trace_path, src->trace_path) || dup_str(&dst->report_path, src->report_path))
        goto oom;
    if (src->text) {
        dst->text = malloc(src->text_len + 1);
        if (!dst->text) goto oom;
        memcpy(dst->text, src->text, src->text_len + 1);
    }
    if (src->n_overrides) {
        dst->overrides = calloc((size_t)src->n_overrides, sizeof *dst->overrides);
        if (!dst->overrides) goto oom;
        for (int64_t i = 0; i < src->n_overrides; i++) {
            dst->n_overrides = i + 1;
            if (dup_str(&dst->overrides[i], src->overrides[i])) goto oom;
        }
    }
    return 0;
oom:
    ls_config_free(dst);
    return -1;
}

static const key_def *find_key(const section_def *sec, const char *name, size_t len) {
    for (int j = 0; j < sec->n; j++)
        if (strlen(sec->keys[j].name) == len && !memcmp(sec->keys[j].name, name, len)) return &sec->keys[j];
    return NULL;
}

/* Resolves the dotted key and applies the value tree v (NULL: null). */
static int set_apply(ctx *x, const char *key, const ynode *v) {
    char list[600];
    const char *dot = strchr(key, '.');
    size_t l0 = dot ? (size_t)(dot - key) : strlen(key);
    const key_def *k = find_key(&SEC_TOP, key, l0);
    if (!k) {
        key_list(&SEC_TOP, list, sizeof list);
        return unknown_key(x, NULL, "", key, l0, list);
    }
    if (!dot) return apply_key(x, &SEC_TOP, k, v);
    const char *rest = dot + 1;
    if (k->kind == K_SECTION) {
        const char *dot2 = strchr(rest, '.');
        size_t l1 = dot2 ? (size_t)(dot2 - rest) : strlen(rest);
        const key_def *k1 = find_key(k->sub, rest, l1);
        if (!k1) {
            key_list(k->sub, list, sizeof list);
            return unknown_key(x, NULL, k->name, rest, l1, list);
        }
        if (dot2) return fail(x, NULL, "%s.%s has no sub-keys (in '%s')", k->name, k1->name, key);
        return apply_key(x, k->sub, k1, v);
    }
    if (k->kind == K_FAULTS) {
        const char *dot2 = strchr(rest, '.');
        size_t l1 = dot2 ? (size_t)(dot2 - rest) : strlen(rest);
        char name[64] = "";
        ls_fault f;
        if (l1 < sizeof name) {
            memcpy(name, rest, l1);
            name[l1] = '\0';
        }
        if (l1 >= sizeof name || ls_fault_parse(name, &f)) {
            key_list(NULL, list, sizeof list);
            return unknown_key(x, NULL, "faults", rest, l1, list);
        }
        if (!dot2) return apply_fault(x, f, v);
        const char *sub = dot2 + 1;
        if (!fault_sub_valid(f, sub, strlen(sub))) {
            char pre[96];
            snprintf(pre, sizeof pre, "faults.%s", ls_fault_name(f));
            return unknown_key(x, NULL, pre, sub, strlen(sub), fault_sub_list(f));
        }
        return apply_fault_sub(x, f, sub, v);
    }
    return fail(x, NULL, "%s has no sub-keys (in '%s')", k->name, key);
}

int ls_config_set(ls_run_config *c, const char *assignment, ls_err *err) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        char q[200];
        return ls_errf(err, "expected KEY=VALUE (e.g. cache.num_blocks=32), got %s",
                       quote(assignment, strlen(assignment), q));
    }
    size_t kl = (size_t)(eq - assignment);
    if (kl >= 256) return ls_errf(err, "key too long (%zu characters)", kl);
    char key[256];
    memcpy(key, assignment, kl);
    key[kl] = '\0';
    const char *val = eq + 1;

    ls_run_config tmp;
    if (config_clone(c, &tmp)) return ls_errf(err, "out of memory");
    ctx x = {.path = NULL, .err = err, .c = &tmp, .set_key = key};
    ynode *root = NULL;
    int rc = -1;
    if (build_tree(&x, val, strlen(val), &root)) goto out;
    if (set_apply(&x, key, root)) goto out;
    char **ov = realloc(tmp.overrides, (size_t)(tmp.n_overrides + 1) * sizeof *ov);
    if (!ov) {
        ls_errf(err, "out of memory");
        goto out;
    }
    tmp.overrides = ov;
    if (!(ov[tmp.n_overrides] = strdup(assignment))) {
        ls_errf(err, "out of memory");
        goto out;
    }
    tmp.n_overrides++;
    rc = 0;
out:
    node_free(root);
    if (rc) {
        ls_config_free(&tmp);
    } else {
        ls_config_free(c);
        *c = tmp;
    }
    return rc;
}

/* ---------------------------------------------------------------- back to YAML */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    if (!b->s) {
        if (!(b->s = malloc(4096))) {
            b->oom = 1;
            return;
        }
        b->cap = 4096;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)w < b->cap - b->n) {
            b->n += (size_t)w;
            return;
        }
        size_t cap = (b->cap + (size_t)w + 1) * 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
}

/* A double-quoted YAML string, all ASCII: printable ASCII as is, other ASCII as \xNN,
 * UTF-8 sequences as \uNNNN / \UNNNNNNNN (so no character YAML forbids or folds, such
 * as C1 controls or U+0085, ever appears raw). A byte that is not valid UTF-8 (a path
 * from outside YAML) cannot be written as a YAML string: it comes out as \xNN, the
 * character U+00NN. */
static void sb_str(sbuf *b, const char *s) {
    if (!s) {
        sb_printf(b, "null");
        return;
    }
    sb_printf(b, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c0 = *p;
        if (c0 < 0x80) {
            if (c0 == '"' || c0 == '\\') sb_printf(b, "\\%c", c0);
            else if (c0 < 0x20 || c0 == 0x7f) sb_printf(b, "\\x%02x", c0);
            else sb_printf(b, "%c", c0);
            p++;
            continue;
        }
        int n = c0 >= 0xF0 && c0 < 0xF5 ? 4 : c0 >= 0xE0 ? 3 : c0 >= 0xC2 && c0 < 0xE0 ? 2 : 0;
        if (c0 >= 0xF5) n = 0;
        uint32_t cp = n == 2 ? c0 & 0x1F : n == 3 ? c0 & 0x0F : c0 & 0x07;
        int ok = n > 0;
        for (int i = 1; ok && i < n; i++) {
            if ((p[i] & 0xC0) != 0x80) ok = 0;
            else cp = cp << 6 | (p[i] & 0x3F);
        }
        if (ok && ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
            ok = 0;
        if (!ok) {
            sb_printf(b, "\\x%02x", c0);
            p++;
            continue;
        }
        if (cp <= 0xFFFF) sb_printf(b, "\\u%04x", (unsigned)cp);
        else sb_printf(b, "\\U%08x", (unsigned)cp);
        p += n;
    }
    sb_printf(b, "\"");
}

static void sb_key(sbuf *b, const ls_run_config *c, const key_def *k, const char *indent) {
    const void *p = (const char *)c + k->off;
    sb_printf(b, "%s%s: ", indent, k->name);
    switch (k->kind) {
    case K_INT: sb_printf(b, "%lld", (long long)*(const int64_t *)p); break;
    case K_U64: sb_printf(b, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case K_DBL: {
        /* the shortest of %.15g..%.17g that reads back exactly (0.9, not 0.90000000000000002) */
        double d = *(const double *)p;
        char t[40];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(t, sizeof t, "%.*g", prec, d);
            if (strtod(t, NULL) == d) break;
        }
        sb_printf(b, "%s", t);
        break;
    }
    case K_BOOL: sb_printf(b, "%s", *(const int *)p ? "true" : "false"); break;
    case K_STR: sb_str(b, *(char *const *)p); break;
    case K_ENUM: sb_printf(b, "%s", k->en->name(k->en->load(c))); break;
    case K_PROMPT_LEN:
        sb_printf(b, "[%lld, %lld]", (long long)c->workload.prompt_len_min, (long long)c->workload.prompt_len_max);
        break;
    default: break;
    }
    sb_printf(b, "\n");
}

char *ls_config_to_yaml(const ls_run_config *c) {
    sbuf b = {0};
    for (int i = 0; i < SEC_TOP.n; i++) {
        const key_def *k = &SEC_TOP.keys[i];
        if (k->kind == K_SECTION) {
            sb_printf(&b, "%s:\n", k->name);
            for (int j = 0; j < k->sub->n; j++) sb_key(&b, c, &k->sub->keys[j], "  ");
        } else if (k->kind == K_FAULTS) {
            sb_printf(&b, "faults:\n");
            for (int f = 0; f < LS_FAULT_COUNT; f++) {
                int on = c->engine.faults.on[f] != 0;
                if (f == LS_FAULT_NARROW_STATE_OFFSET)
                    sb_printf(&b, "  %s: {enabled: %s, bits: %d}\n", ls_fault_name((ls_fault)f),
                              on ? "true" : "false", c->engine.faults.narrow_bits);
                else
                    sb_printf(&b, "  %s: %s\n", ls_fault_name((ls_fault)f), on ? "true" : "false");
            }
        } else {
            sb_key(&b, c, k, "");
        }
    }
    if (b.oom || !b.s) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
