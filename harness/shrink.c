/* lockstep shrink FAILING.yaml [-o OUT.yaml] [--max-seconds S] [--set KEY=VALUE ...]
 *                [--pattern exact|keep] [-v]
 *
 * Delta debugging for run configs: from a config that fails (diverges), find a smaller one
 * that still fails *the same way* and write it as a self-contained YAML reproducer.
 * docs/shrink.md is the reference; in short:
 *
 * "The same way" is the failure's signature, taken from the original run:
 *   - the first divergent component of the first localised divergence (locs[0].component:
 *     conv_state, ssm_state, attention, ...), and
 *   - the provenance pattern of the divergent tokens: for each property P (enum below),
 *     whether EVERY divergent token has P. A candidate reproduces when it diverges, names
 *     the same component, and its set of universally held properties equals the
 *     original's (--pattern exact, the default) or contains it (--pattern keep).
 * The planted fault switches are never touched: they are what is being reproduced.
 *
 * Search: greedy first-improvement over a fixed list of moves (each a key and the smaller
 * values to try, most aggressive first), in passes until a whole pass accepts nothing or
 * the time bound is hit. Every candidate is the current config plus one assignment made
 * through ls_config_set (two for a "lateral" move, which must come with fewer requests),
 * so the config's own range and cross-key checks apply; a candidate whose run errors (e.g.
 * a request no longer fits the cache) simply does not reproduce. Requests can also be
 * dropped anywhere in the list through an explicit prompts file (temporary while
 * searching, written next to OUT at the end). Candidates are keyed by their effective
 * YAML, so no config is run twice. Deterministic: the same input gives the same
 * reproducer (the time bound aside). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness/commands.h"
#include "harness/config.h"
#include "harness/pipeline.h"
#include "harness/workload_gen.h"

/* ---------------------------------------------------------------- the signature */

enum {
    P_FIRST_CHUNK_ONE,   /* prov.first_chunk == 1: granted one token on (re)admission */
    P_FROM_SNAPSHOT,     /* prov.from_snapshot: state restored from a prefix snapshot */
    P_PREEMPTED,         /* prov.preemptions > 0 */
    P_ROLLOUT,           /* rollout > 0: a forked rollout, not the parent */
    P_SHARED_SLOT,       /* another sequence used the same slot in the same step */
    P_HIGH_SLOT,         /* slot >= ceil(2^bits / slot_stride) (narrow_state_offset on only) */
    P_PREV_TENANT,       /* prov.prev_tenant >= 0: the slot had an earlier owner */
    P_COUNT
};

static const char *const PROP_NAMES[P_COUNT] = {
    "first_chunk == 1", "from_snapshot", "preemptions > 0", "rollout > 0",
    "shared slot", "slot >= wrap", "prev_tenant >= 0",
};

typedef struct sig {
    int diverged;
    char component[16];            /* "none" when not localised */
    unsigned all;                  /* bit P: every divergent token has P */
    unsigned applicable;           /* bit P: P was evaluated (P_HIGH_SLOT needs the fault) */
    int64_t wrap_slot;             /* the P_HIGH_SLOT threshold */
    int64_t divergent_tokens;
} sig;

typedef struct sizes {
    int64_t requests, rollouts, tokens;
} sizes;

typedef struct tok_key {
    int64_t step, slot, seq, flat;
} tok_key;

static int cmp_tok_key(const void *a, const void *b) {
    const tok_key *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    if (x->slot != y->slot) return x->slot < y->slot ? -1 : 1;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return 0;
}

/* Per generated token (flat index: offsets[seq] + position), whether another sequence
 * produced a token in the same step from the same slot. NULL when out of memory. */
static unsigned char *shared_slot_flags(const ls_engine_result *r, int64_t **offsets_out) {
    int64_t total = 0;
    int64_t *off = malloc((size_t)(r->n_seqs + 1) * sizeof *off);
    if (!off) return NULL;
    int64_t gen = 0;
    for (int64_t s = 0; s < r->n_seqs; s++) {
        off[s] = total;
        total += r->seqs[s].len;
        gen += r->seqs[s].len - r->seqs[s].prompt_len;
    }
    off[r->n_seqs] = total;
    unsigned char *flags = calloc((size_t)total + 1, 1);
    tok_key *k = malloc((size_t)gen * sizeof *k + 1);
    if (!flags || !k) {
        free(flags);
        free(k);
        free(off);
        return NULL;
    }
    int64_t n = 0;
    for (int64_t s = 0; s < r->n_seqs; s++)
        for (int64_t p = r->seqs[s].prompt_len; p < r->seqs[s].len; p++)
            k[n++] = (tok_key){r->seqs[s].prov[p].step, r->seqs[s].prov[p].slot, s, off[s] + p};
    qsort(k, (size_t)n, sizeof *k, cmp_tok_key);
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        int several = 0;
        while (j < n && k[j].step == k[i].step && k[j].slot == k[i].slot) {
            several |= k[j].seq != k[i].seq;
            j++;
        }
        for (int64_t q = i; q < j; q++) flags[k[q].flat] = (unsigned char)several;
        i = j;
    }
    free(k);
    *offsets_out = off;
    return flags;
}

static int signature_of(const ls_run_config *rc, const ls_run_outcome *o, sig *g) {
    memset(g, 0, sizeof *g);
    g->diverged = o->diverged;
    snprintf(g->component, sizeof g->component, "%s",
             o->n_locs > 0 && o->locs[0].found ? o->locs[0].component : "none");
    g->divergent_tokens = o->cmp.sum.divergent_tokens;
    g->applicable = (1u << P_COUNT) - 1;
    g->wrap_slot = INT64_MAX;
    if (rc->engine.faults.on[LS_FAULT_NARROW_STATE_OFFSET]) {
        int bits = rc->engine.faults.narrow_bits;
        int64_t stride = o->engine.stats.slot_stride;
        if (bits >= 0 && bits < 62 && stride > 0)
            g->wrap_slot = (((int64_t)1 << bits) + stride - 1) / stride;
    } else {
        g->applicable &= ~(1u << P_HIGH_SLOT);
    }
    if (!o->have_cmp || !o->have_engine) return 0;
    int64_t *off = NULL;
    unsigned char *shared = shared_slot_flags(&o->engine, &off);
    if (!shared) return -1;
    unsigned all = g->applicable;
    int64_t n = 0;
    for (int64_t i = 0; i < o->cmp.n_tokens; i++) {
        const ls_token_cmp *t = &o->cmp.tokens[i];
        if (!t->divergent) continue;
        const ls_engine_seq *q = &o->engine.seqs[t->seq];
        const ls_provenance *p = &q->prov[t->position];
        unsigned has = 0;
        if (p->first_chunk == 1) has |= 1u << P_FIRST_CHUNK_ONE;
        if (p->from_snapshot) has |= 1u << P_FROM_SNAPSHOT;
        if (p->preemptions > 0) has |= 1u << P_PREEMPTED;
        if (q->rollout > 0) has |= 1u << P_ROLLOUT;
        if (shared[off[t->seq] + t->position]) has |= 1u << P_SHARED_SLOT;
        if (p->slot >= g->wrap_slot) has |= 1u << P_HIGH_SLOT;
        if (p->prev_tenant >= 0) has |= 1u << P_PREV_TENANT;
        all &= has;
        n++;
    }
    g->all = n ? all : 0;
    free(shared);
    free(off);
    return 0;
}

/* exact: the set of universally held properties is the original's; keep: it contains the
 * original's (a smaller run may make more properties hold for all its divergent tokens). */
static int same_failure(const sig *want, const sig *got, int keep) {
    if (!got->diverged || strcmp(want->component, got->component)) return 0;
    return keep ? (got->all & want->all) == want->all : got->all == want->all;
}

/* "first divergent component ssm_state<sep>every divergent token has: a, b<sep>not every
 * one has: c, d" */
static void describe_sig(const sig *g, int keep, const char *sep, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "first divergent component %s%severy divergent token has:",
                                g->component, sep);
    int any = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (!any && n < cap) n += (size_t)snprintf(buf + n, cap - n, " (none)");
            if (n < cap)
                n += (size_t)snprintf(buf + n, cap - n, "%snot every one has%s:", sep,
                                      keep ? " (in the original; not required)" : "");
            any = 0;
        }
        for (int p = 0; p < P_COUNT; p++) {
            if (!(g->applicable >> p & 1) || (int)(g->all >> p & 1) != (pass == 0)) continue;
            if (n >= cap) return;
            if (p == P_HIGH_SLOT)
                n += (size_t)snprintf(buf + n, cap - n, "%s slot >= %lld (narrow_state_offset wrap)",
                                      any ? "," : "", (long long)g->wrap_slot);
            else
                n += (size_t)snprintf(buf + n, cap - n, "%s %s", any ? "," : "", PROP_NAMES[p]);
            any = 1;
        }
    }
    if (!any && n < cap) snprintf(buf + n, cap - n, " (none)");
}

/* ---------------------------------------------------------------- running a candidate */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct attempt {
    int ran;                       /* 0: the run itself failed (err says why) */
    sig g;
    sizes sz;
    ls_engine_config resolved;     /* the engine config after ls_engine_config_resolve */
    int64_t vocab;
} attempt;

/* Runs rc (quietly: no trace, no report; localisation on). Returns -1 only when out of
 * memory; a run that errors comes back with a->ran = 0 and the message in *err. */
static int run_candidate(ls_run_config *rc, attempt *a, ls_err *err) {
    memset(a, 0, sizeof *a);
    rc->compare.probe_layers = 1;
    free(rc->trace_path);
    free(rc->report_path);
    rc->trace_path = rc->report_path = NULL;
    ls_run_outcome o;
    if (ls_run_execute(rc, &o, err)) {
        ls_run_outcome_free(&o);
        return 0;
    }
    a->ran = 1;
    a->resolved = rc->engine;
    a->vocab = o.model.cfg.vocab_size;
    a->sz.requests = o.workload.n_requests;
    a->sz.rollouts = rc->workload.rollouts;
    for (int64_t r = 0; r < o.workload.n_requests; r++) a->sz.tokens += o.workload.requests[r].prompt_len;
    for (int64_t s = 0; s < o.engine.n_seqs; s++)
        a->sz.tokens += o.engine.seqs[s].len - o.engine.seqs[s].prompt_len;
    int rcode = signature_of(rc, &o, &a->g);
    ls_run_outcome_free(&o);
    return rcode;
}

/* ---------------------------------------------------------------- the moves */

typedef enum mv_kind {
    MV_INT,          /* an integer key: try lo, v / 2, v - 1 (those in [lo, v)) */
    MV_ZERO,         /* an integer key whose 0 means "off": try 0 only */
    MV_PLEN_MAX,     /* workload.prompt_len max toward min */
    MV_PLEN_MIN,     /* workload.prompt_len min down (above shared_prefix) */
    MV_SET,          /* one fixed assignment (a simplification: a switch off, a plainer policy) */
    MV_LATERAL,      /* an assignment that is no smaller by itself, accepted only together
                      * with fewer requests (so the search cannot cycle) */
    MV_DROP,         /* drop requests anywhere in the list, through an explicit prompts file */
} mv_kind;

typedef struct move {
    const char *key;
    mv_kind kind;
    size_t off;                    /* MV_INT / MV_ZERO: the int64_t field in ls_run_config */
    int64_t lo;
    int derived;                   /* 0 means "derive": start from the resolved value */
    const char *value;             /* MV_SET / MV_LATERAL: the value to assign */
} move;

/* The workload generator's keys mean nothing when workload.prompts_file is given. */
static int generator_key(const char *key) {
    static const char *const keys[] = {"workload.prompts", "workload.prompt_len", "workload.shared_prefix",
                                       "workload.prefix_groups"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(key, keys[i])) return 1;
    return 0;
}

#define F(m) offsetof(ls_run_config, m)
#define PROMPTS_MOVE {"workload.prompts", MV_INT, F(workload.prompts), 1, 0, NULL}
static const move PROMPTS = PROMPTS_MOVE;
static const move MOVES[] = {
    PROMPTS_MOVE,
    /* e.g. narrow_state_offset under `lowest` needs slots 0..wrap-1 busy to reach a wrapping
     * slot; under `highest` the first request already sits on the top slot */
    {"cache.slot_policy", MV_LATERAL, 0, 0, 0, "highest"},
    {"cache.slot_policy", MV_LATERAL, 0, 0, 0, "lowest"},
    {"cache.slot_policy", MV_LATERAL, 0, 0, 0, "fifo"},
    {"workload.prompts_file", MV_DROP, 0, 0, 0, NULL},
    {"workload.rollouts", MV_INT, F(workload.rollouts), 1, 0, NULL},
    {"workload.max_new_tokens", MV_INT, F(workload.max_new_tokens), 1, 0, NULL},
    {"workload.prompt_len", MV_PLEN_MAX, 0, 1, 0, NULL},
    {"workload.prompt_len", MV_PLEN_MIN, 0, 1, 0, NULL},
    {"workload.shared_prefix", MV_INT, F(workload.shared_prefix), 0, 0, NULL},
    {"workload.prefix_groups", MV_INT, F(workload.prefix_groups), 1, 0, NULL},
    {"workload.arrival", MV_SET, 0, 0, 0, "all"},
    {"workload.arrival_every", MV_INT, F(workload.arrival_every), 0, 0, NULL},
    {"cache.num_blocks", MV_INT, F(engine.num_blocks), 1, 1, NULL},
    {"cache.num_state_slots", MV_INT, F(engine.num_state_slots), 1, 1, NULL},
    {"cache.num_snapshots", MV_INT, F(engine.num_snapshots), 1, 1, NULL},
    {"cache.prefix_caching", MV_SET, 0, 0, 0, "false"},
    {"cache.debug_poison", MV_SET, 0, 0, 0, "false"},
    {"cache.slot_policy", MV_SET, 0, 0, 0, "lowest"},
    {"sched.max_num_seqs", MV_INT, F(engine.max_num_seqs), 1, 0, NULL},
    {"sched.max_batched_tokens", MV_INT, F(engine.max_batched_tokens), 1, 0, NULL},
    {"sched.max_chunk", MV_ZERO, F(engine.max_chunk), 0, 0, NULL},
    {"sched.pad_decode_to", MV_INT, F(engine.pad_decode_to), 0, 0, NULL},
};
#undef PROMPTS_MOVE
#undef F
#define N_MOVES ((int)(sizeof MOVES / sizeof MOVES[0]))
#define MAX_CANDS 3

static int64_t get_i64(const ls_run_config *c, size_t off) {
    int64_t v;
    memcpy(&v, (const char *)c + off, sizeof v);
    return v;
}

static int add_value(int64_t *vals, int n, int64_t x, int64_t lo, int64_t v) {
    if (x < lo || x >= v) return n;
    for (int i = 0; i < n; i++)
        if (vals[i] == x) return n;
    vals[n] = x;
    return n + 1;
}

/* The value of "  key: value" in section `sec` of an effective YAML, for printing. */
static void yaml_value(const char *yaml, const char *dotted, char *out, size_t cap) {
    snprintf(out, cap, "?");
    const char *dot = strchr(dotted, '.');
    if (!dot) return;
    char head[64], line[128];
    snprintf(head, sizeof head, "\n%.*s:\n", (int)(dot - dotted), dotted);
    const char *s = strstr(yaml, head);
    if (!s) return;
    snprintf(line, sizeof line, "\n  %s: ", dot + 1);
    const char *k = strstr(s + 1, line);
    if (!k) return;
    k += strlen(line);
    size_t n = strcspn(k, "\n");
    snprintf(out, cap, "%.*s", (int)n, k);
}

/* One candidate: one or two assignments ("KEY=VALUE", for ls_config_set) and what it
 * changes, for the progress line ("workload.prompts 8 -> 4"). */
typedef struct cand {
    char assign[2][96];
    int n_assign;
    char desc[256];
    /* MV_DROP: the prompts file to write (text) and name as workload.prompts_file, and the
     * request count to record as workload.prompts */
    const char *file, *file_text;
    int64_t file_prompts;
} cand;

/* The candidates of move m against the current config, most aggressive first. */
static int candidates(const move *m, const ls_run_config *cur, const char *cur_yaml,
                      const ls_engine_config *resolved, cand out[MAX_CANDS]) {
    int64_t vals[MAX_CANDS];
    int n = 0;
    const ls_workload_spec *w = &cur->workload;
    memset(out, 0, MAX_CANDS * sizeof *out);
    if (m->kind == MV_DROP || (w->prompts_file && (generator_key(m->key) || m->kind == MV_LATERAL))) return 0;
    switch (m->kind) {
    case MV_INT:
    case MV_ZERO: {
        int64_t stored = get_i64(cur, m->off), v = stored;
        if (v == 0 && m->derived) {
            size_t eo = m->off - offsetof(ls_run_config, engine);
            memcpy(&v, (const char *)resolved + eo, sizeof v);
        }
        n = add_value(vals, n, m->lo, m->lo, v);
        if (m->kind == MV_INT) {
            n = add_value(vals, n, v / 2, m->lo, v);
            n = add_value(vals, n, v - 1, m->lo, v);
        }
        char from[48];
        if (stored == 0 && m->derived) snprintf(from, sizeof from, "0 (derived: %lld)", (long long)v);
        else snprintf(from, sizeof from, "%lld", (long long)v);
        for (int i = 0; i < n; i++) {
            out[i].n_assign = 1;
            snprintf(out[i].assign[0], sizeof out[i].assign[0], "%s=%lld", m->key, (long long)vals[i]);
            snprintf(out[i].desc, sizeof out[i].desc, "%s %s -> %lld", m->key, from, (long long)vals[i]);
        }
        return n;
    }
    case MV_PLEN_MAX:
    case MV_PLEN_MIN: {
        int64_t lo, v;
        if (m->kind == MV_PLEN_MAX) {
            lo = w->prompt_len_min;
            v = w->prompt_len_max;
            n = add_value(vals, n, lo, lo, v);
            n = add_value(vals, n, lo + (v - lo) / 2, lo, v);
            n = add_value(vals, n, v - 1, lo, v);
        } else {
            lo = w->shared_prefix > 0 ? w->shared_prefix + 1 : 1;
            v = w->prompt_len_min;
            n = add_value(vals, n, lo, lo, v);
            n = add_value(vals, n, v / 2, lo, v);
            n = add_value(vals, n, v - 1, lo, v);
        }
        for (int i = 0; i < n; i++) {
            int64_t a = m->kind == MV_PLEN_MAX ? w->prompt_len_min : vals[i];
            int64_t b = m->kind == MV_PLEN_MAX ? vals[i] : w->prompt_len_max;
            out[i].n_assign = 1;
            snprintf(out[i].assign[0], sizeof out[i].assign[0], "%s=[%lld, %lld]", m->key, (long long)a,
                     (long long)b);
            snprintf(out[i].desc, sizeof out[i].desc, "%s [%lld, %lld] -> [%lld, %lld]", m->key,
                     (long long)w->prompt_len_min, (long long)w->prompt_len_max, (long long)a, (long long)b);
        }
        return n;
    }
    case MV_SET:
    case MV_LATERAL: {
        char from[48];
        yaml_value(cur_yaml, m->key, from, sizeof from);
        if (!strcmp(from, m->value)) return 0;
        if (m->kind == MV_SET) {
            out[0].n_assign = 1;
            snprintf(out[0].assign[0], sizeof out[0].assign[0], "%s=%s", m->key, m->value);
            snprintf(out[0].desc, sizeof out[0].desc, "%s %s -> %s", m->key, from, m->value);
            return 1;
        }
        cand fewer[MAX_CANDS];
        int nf = candidates(&PROMPTS, cur, cur_yaml, resolved, fewer);
        for (int i = 0; i < nf; i++) {
            out[i].n_assign = 2;
            snprintf(out[i].assign[0], sizeof out[i].assign[0], "%s=%s", m->key, m->value);
            snprintf(out[i].assign[1], sizeof out[i].assign[1], "%s", fewer[i].assign[0]);
            snprintf(out[i].desc, sizeof out[i].desc, "%s %s -> %s, %s", m->key, from, m->value, fewer[i].desc);
        }
        return nf;
    }
    case MV_DROP:
        return 0;                  /* drop_requests() */
    }
    return 0;
}

/* ---------------------------------------------------------------- the search */

typedef struct seen_set {
    uint64_t *hash;
    char **text;
    int64_t n, cap;
} seen_set;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* 1 if already there, 0 if added, -1 out of memory. */
static int seen_add(seen_set *ss, const char *text) {
    uint64_t h = fnv1a(text);
    for (int64_t i = 0; i < ss->n; i++)
        if (ss->hash[i] == h && !strcmp(ss->text[i], text)) return 1;
    if (ss->n == ss->cap) {
        int64_t nc = ss->cap ? ss->cap * 2 : 64;
        uint64_t *nh = realloc(ss->hash, (size_t)nc * sizeof *nh);
        if (!nh) return -1;
        ss->hash = nh;
        char **nt = realloc(ss->text, (size_t)nc * sizeof *nt);
        if (!nt) return -1;
        ss->text = nt;
        ss->cap = nc;
    }
    char *dup = strdup(text);
    if (!dup) return -1;
    ss->hash[ss->n] = h;
    ss->text[ss->n++] = dup;
    return 0;
}

static void seen_free(seen_set *ss) {
    for (int64_t i = 0; i < ss->n; i++) free(ss->text[i]);
    free(ss->hash);
    free(ss->text);
    memset(ss, 0, sizeof *ss);
}

typedef struct shrinker {
    sig want;
    char *cur_yaml;                /* the current (smallest reproducing) config, effective YAML */
    ls_run_config cur;             /* ... parsed */
    ls_engine_config resolved;     /* ... its engine config as resolved by its run */
    sizes cur_sz;
    int64_t cur_divergent;
    int64_t tried, accepted;
    double t0, deadline;
    int timed_out;
    seen_set seen;
    int64_t vocab;                 /* the model's, for reading and generating prompts */
    char *tmpdir;                  /* NULL until a prompts file is written */
    int verbose;                   /* -v: a line per rejected candidate too */
    int keep;                      /* --pattern keep (else exact) */
} shrinker;

/* -v: why a candidate was not accepted. */
static void explain_reject(const shrinker *s, const cand *cd, const attempt *a, const ls_err *err) {
    char why[512];
    if (!a->ran) {
        snprintf(why, sizeof why, "run error: %s", err->msg);
    } else if (!a->g.diverged) {
        snprintf(why, sizeof why, "no divergence");
    } else if (strcmp(a->g.component, s->want.component)) {
        snprintf(why, sizeof why, "first divergent component %s", a->g.component);
    } else {
        size_t n = (size_t)snprintf(why, sizeof why, "provenance pattern differs:");
        for (int p = 0; p < P_COUNT && n < sizeof why; p++) {
            unsigned bit = 1u << p;
            if ((a->g.all & bit) != (s->want.all & bit) && !(s->keep && (a->g.all & bit)))
                n += (size_t)snprintf(why + n, sizeof why - n, " %s%s", a->g.all & bit ? "+" : "-",
                                      PROP_NAMES[p]);
        }
    }
    fprintf(stderr, "shrink:   (rejected) %s: %s [%.1f s]\n", cd->desc, why, now() - s->t0);
}

static const char CAND_PATH[] = "shrink-candidate.yaml";

static int write_atomic(const char *path, const char *text, ls_err *err) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) return ls_errf(err, "out of memory");
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        ls_errf(err, "%s: cannot create a temporary file next to it: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        remove(tmp);
        free(tmp);
        return ls_errf(err, "%s: cannot write: %s", path, strerror(errno));
    }
    mode_t mask = umask(0);                        /* mkstemp's 0600 -> what open() would give */
    umask(mask);
    size_t len = strlen(text);
    int bad = fchmod(fd, 0666 & ~mask) != 0;
    bad |= fwrite(text, 1, len, f) != len;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (!bad) bad = rename(tmp, path) != 0;
    if (bad) {
        int e = errno;
        remove(tmp);
        free(tmp);
        return ls_errf(err, "%s: cannot write: %s", path, strerror(e));
    }
    free(tmp);
    return 0;
}

/* Parses `yaml` into *c (paths in it are absolute). -1 with a message on error. */
static int parse_yaml(const char *yaml, ls_run_config *c, ls_err *err) {
    return ls_config_parse(yaml, strlen(yaml), CAND_PATH, c, err);
}

/* Whether path is one of our temporary prompts files. */
static int is_temp_prompts(const shrinker *s, const char *path) {
    size_t n = s->tmpdir ? strlen(s->tmpdir) : 0;
    return path && n && !strncmp(path, s->tmpdir, n) && path[n] == '/';
}

/* The current config's prompts file is about to be replaced by `keep`: remove it if it is
 * one of ours. */
static void drop_temp_prompts(shrinker *s, const char *keep) {
    const char *cur = s->cur.workload.prompts_file;
    if (is_temp_prompts(s, cur) && (!keep || strcmp(cur, keep))) remove(cur);
}

/* Tries one assignment. Returns 1 accepted, 0 not (or skipped), -1 fatal (OOM). */
static int try_assign(shrinker *s, const cand *cd) {
    ls_err err = {{0}};
    ls_run_config c;
    if (parse_yaml(s->cur_yaml, &c, &err)) {
        fprintf(stderr, "lockstep shrink: internal error: the current config does not parse back: %s\n",
                err.msg);
        return -1;
    }
    int result = 0;
    char *yaml = NULL;
    int wrote = 0;
    for (int i = 0; i < cd->n_assign; i++)
        if (ls_config_set(&c, cd->assign[i], &err)) goto out;                   /* not valid */
    if (cd->file) {
        char *f = strdup(cd->file);
        if (!f) { result = -1; goto out; }
        free(c.workload.prompts_file);
        c.workload.prompts_file = f;
        c.workload.prompts = cd->file_prompts;
    }
    if (ls_config_check(&c, &err)) goto out;
    yaml = ls_config_to_yaml(&c);
    if (!yaml) { result = -1; goto out; }
    if (!strcmp(yaml, s->cur_yaml)) goto out;                 /* no change */
    int was = seen_add(&s->seen, yaml);
    if (was) { result = was < 0 ? -1 : 0; goto out; }
    if (cd->file) {
        if (write_atomic(cd->file, cd->file_text, &err)) {
            fprintf(stderr, "lockstep shrink: %s\n", err.msg);
            result = -1;
            goto out;
        }
        wrote = 1;
    }
    s->tried++;
    attempt a;
    if (run_candidate(&c, &a, &err)) { result = -1; goto out; }
    if (!a.ran || !same_failure(&s->want, &a.g, s->keep)) {
        if (s->verbose) explain_reject(s, cd, &a, &err);
        goto out;
    }
    wrote = 0;                                                 /* the file is the current one now */
    drop_temp_prompts(s, c.workload.prompts_file);
    /* accepted */
    s->accepted++;
    fprintf(stderr, "shrink: %s (still fails: %s, %lld divergent tokens) [%.1f s]\n", cd->desc,
            a.g.component, (long long)a.g.divergent_tokens, now() - s->t0);
    free(s->cur_yaml);
    s->cur_yaml = yaml;
    yaml = NULL;
    ls_config_free(&s->cur);
    if (parse_yaml(s->cur_yaml, &s->cur, &err)) { result = -1; goto out; }
    s->resolved = a.resolved;
    s->cur_sz = a.sz;
    s->cur_divergent = a.g.divergent_tokens;
    result = 1;
out:
    if (wrote) remove(cd->file);
    free(yaml);
    ls_config_free(&c);
    return result;
}

static int make_tmpdir(shrinker *s) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t n = strlen(base) + 32;
    s->tmpdir = malloc(n);
    if (!s->tmpdir) return -1;
    snprintf(s->tmpdir, n, "%s/lockstep-shrink.XXXXXX", base);
    if (!mkdtemp(s->tmpdir)) {
        fprintf(stderr, "lockstep shrink: cannot create a temporary directory in %s: %s\n", base,
                strerror(errno));
        free(s->tmpdir);
        s->tmpdir = NULL;
        return -1;
    }
    return 0;
}

/* The prompts of w except [skip_from, skip_to), one per line; malloc'd, NULL if OOM. */
static char *prompts_text(const ls_workload *w, int64_t skip_from, int64_t skip_to) {
    size_t cap = 1;
    for (int64_t i = 0; i < w->n_requests; i++) cap += (size_t)w->requests[i].prompt_len * 12 + 1;
    char *t = malloc(cap), *p = t;
    if (!t) return NULL;
    for (int64_t i = 0; i < w->n_requests; i++) {
        if (i >= skip_from && i < skip_to) continue;
        for (int64_t j = 0; j < w->requests[i].prompt_len; j++)
            p += snprintf(p, cap - (size_t)(p - t), "%s%d", j ? " " : "", (int)w->requests[i].prompt[j]);
        *p++ = '\n';
    }
    *p = '\0';
    return t;
}

/* MV_DROP: remove requests anywhere in the list (delta debugging's chunks: halves, then
 * quarters, ... single requests) by naming an explicit prompts file holding the rest. A
 * generated workload is converted on the way; since every candidate has fewer requests,
 * the conversion is only kept when it pays. Returns 1 accepted, 0 not, -1 fatal. */
static int drop_requests(shrinker *s) {
    ls_workload w;
    ls_err err = {{0}};
    if (ls_workload_generate(&s->cur.workload, s->vocab, &w, &err)) return 0;
    int64_t n = w.n_requests;
    int result = 0;
    if (n < 2) goto out;
    if (!s->tmpdir && make_tmpdir(s)) { result = -1; goto out; }
    for (int64_t c = n / 2; c >= 1 && !result; c /= 2) {
        for (int64_t from = 0; from < n && !result; from += c) {
            if (now() >= s->deadline) {
                s->timed_out = 1;
                goto out;
            }
            int64_t to = from + c < n ? from + c : n;
            char *text = prompts_text(&w, from, to);
            if (!text) { result = -1; goto out; }
            char path[4200];
            snprintf(path, sizeof path, "%s/prompts-%016llx.txt", s->tmpdir, (unsigned long long)fnv1a(text));
            cand cd;
            memset(&cd, 0, sizeof cd);
            cd.file = path;
            cd.file_text = text;
            cd.file_prompts = n - (to - from);
            if (to - from == 1)
                snprintf(cd.desc, sizeof cd.desc, "workload.prompts_file %lld -> %lld requests (dropped request %lld)",
                         (long long)n, (long long)cd.file_prompts, (long long)from);
            else
                snprintf(cd.desc, sizeof cd.desc, "workload.prompts_file %lld -> %lld requests (dropped requests %lld..%lld)",
                         (long long)n, (long long)cd.file_prompts, (long long)from, (long long)to - 1);
            result = try_assign(s, &cd);
            free(text);
        }
    }
out:
    ls_workload_free(&w);
    return result;
}

static int search(shrinker *s) {
    int progress = 1;
    while (progress && !s->timed_out) {
        progress = 0;
        for (int i = 0; i < N_MOVES && !s->timed_out; i++) {
            const move *m = &MOVES[i];
            int again = 1;
            while (again && !s->timed_out) {
                again = 0;
                if (m->kind == MV_DROP) {
                    int r = drop_requests(s);
                    if (r < 0) return -1;
                    again = r;
                    progress |= r;
                    continue;
                }
                cand cs[MAX_CANDS];
                int n = candidates(m, &s->cur, s->cur_yaml, &s->resolved, cs);
                for (int k = 0; k < n; k++) {
                    if (now() >= s->deadline) {
                        s->timed_out = 1;
                        break;
                    }
                    int r = try_assign(s, &cs[k]);
                    if (r < 0) return -1;
                    if (r == 1) {
                        again = progress = 1;
                        break;
                    }
                }
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- output */

/* A path made absolute (symlinks resolved) when it exists; unchanged otherwise. */
static int absolutise(char **p) {
    if (!*p) return 0;
    char *r = realpath(*p, NULL);
    if (!r) return 0;                                  /* the run will say what is wrong */
    free(*p);
    *p = r;
    return 0;
}

static void default_out(const char *failing, char *out, size_t cap) {
    const char *base = strrchr(failing, '/');
    base = base ? base + 1 : failing;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".yaml")) n -= 5;
    else if (n > 4 && !strcmp(base + n - 4, ".yml")) n -= 4;
    snprintf(out, cap, "%.*s.min.yaml", (int)n, base);
}

/* OUT without .yaml / .yml, + ".prompts.txt" */
static char *companion_path(const char *out_path) {
    size_t n = strlen(out_path);
    if (n > 5 && !strcmp(out_path + n - 5, ".yaml")) n -= 5;
    else if (n > 4 && !strcmp(out_path + n - 4, ".yml")) n -= 4;
    char *p = malloc(n + 16);
    if (p) snprintf(p, n + 16, "%.*s.prompts.txt", (int)n, out_path);
    return p;
}

/* When the reproducer names one of our temporary prompts files, writes it next to OUT and
 * points the config at that copy (absolute path). *companion: the path as written, or NULL.
 * Returns -1 with a message on error. */
static int keep_prompts(shrinker *s, const char *out_path, char **companion, ls_err *err) {
    *companion = NULL;
    const char *tmp = s->cur.workload.prompts_file;
    if (!is_temp_prompts(s, tmp)) return 0;
    FILE *f = fopen(tmp, "rb");
    if (!f) return ls_errf(err, "%s: cannot read back: %s", tmp, strerror(errno));
    char *text = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *nt = realloc(text, cap = 2 * cap + 4096 + 1);
            if (!nt) break;
            text = nt;
        }
        size_t got = fread(text + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f) || !text || len + 1 > cap;
    fclose(f);
    if (bad) {
        free(text);
        return ls_errf(err, "%s: cannot read back", tmp);
    }
    text[len] = '\0';
    char *path = companion_path(out_path);
    ls_run_config c;
    memset(&c, 0, sizeof c);
    char *abs = NULL, *yaml = NULL;
    int rc = -1;
    if (!path) { ls_errf(err, "out of memory"); goto out; }
    if (write_atomic(path, text, err)) goto out;
    abs = realpath(path, NULL);
    if (!abs) { ls_errf(err, "%s: %s", path, strerror(errno)); goto out; }
    if (parse_yaml(s->cur_yaml, &c, err)) goto out;
    free(c.workload.prompts_file);
    c.workload.prompts_file = abs;
    abs = NULL;
    yaml = ls_config_to_yaml(&c);
    if (!yaml) { ls_errf(err, "out of memory"); goto out; }
    free(s->cur_yaml);
    s->cur_yaml = yaml;
    yaml = NULL;
    remove(tmp);
    ls_config_free(&s->cur);
    if (parse_yaml(s->cur_yaml, &s->cur, err)) goto out;
    *companion = path;
    path = NULL;
    rc = 0;
out:
    free(text);
    free(path);
    free(abs);
    free(yaml);
    ls_config_free(&c);
    return rc;
}

#define HEADER_FMT                                                                         \
    "# Shrunk by `lockstep shrink` from %s\n"                                              \
    "# (%lld candidates tried, %lld moves accepted, %.1f s%s).\n"                           \
    "# Signature (--pattern %s): %s\n"                                                     \
    "# Before: %lld requests x %lld rollouts, %lld tokens; "                               \
    "after: %lld requests x %lld rollouts, %lld tokens (%lld divergent).\n"                \
    "# Reproduce: lockstep run %s\n"                                                       \
    "%s%s%s"                                                                               \
    "# Paths are absolute, so this file works from any directory.\n"
#define HEADER_ARGS                                                                        \
    failing, (long long)s->tried, (long long)s->accepted, elapsed,                         \
        s->timed_out ? ", time limit reached" : "", s->keep ? "keep" : "exact", sigtext,   \
        (long long)before->requests, (long long)before->rollouts, (long long)before->tokens, \
        (long long)s->cur_sz.requests, (long long)s->cur_sz.rollouts,                      \
        (long long)s->cur_sz.tokens, (long long)s->cur_divergent, out_path,                \
        companion ? "# Prompts: " : "", companion ? companion : "",                        \
        companion ? " (written with this file: one prompt per line, token ids)\n" : ""

static char *render(const shrinker *s, const char *failing, const char *out_path, const char *companion,
                    const sizes *before) {
    char sigtext[1024];
    describe_sig(&s->want, s->keep, "\n#   ", sigtext, sizeof sigtext);
    double elapsed = now() - s->t0;
    int n = snprintf(NULL, 0, HEADER_FMT, HEADER_ARGS);
    if (n < 0) return NULL;
    size_t hl = (size_t)n, yl = strlen(s->cur_yaml);
    char *text = malloc(hl + yl + 1);
    if (!text) return NULL;
    snprintf(text, hl + 1, HEADER_FMT, HEADER_ARGS);
    memcpy(text + hl, s->cur_yaml, yl + 1);
    return text;
}

/* ---------------------------------------------------------------- the command */

/* Fails early (before the search) when OUT cannot be written. */
static int probe_writable(const char *out_path, ls_err *err) {
    size_t n = strlen(out_path) + 16;
    char *tmp = malloc(n);
    if (!tmp) return ls_errf(err, "out of memory");
    snprintf(tmp, n, "%s.tmp.XXXXXX", out_path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        ls_errf(err, "%s: cannot write there: %s", out_path, strerror(errno));
        free(tmp);
        return -1;
    }
    close(fd);
    remove(tmp);
    free(tmp);
    return 0;
}

static int usage(FILE *f) {
    fprintf(f, "usage: lockstep shrink FAILING.yaml [-o OUT.yaml] [--max-seconds S] [--set KEY=VALUE ...]\n"
               "                       [--pattern exact|keep] [-v]\n"
               "  delta-debugs a failing run config to the smallest one that still fails the same way\n"
               "  (same first divergent component, same provenance pattern; docs/shrink.md) and writes it\n"
               "  to OUT (default: FAILING's basename + .min.yaml in the current directory).\n"
               "  --max-seconds S   time bound for the search (default 120)\n"
               "  --set KEY=VALUE   override a key of FAILING first (as for lockstep run)\n"
               "  --pattern exact   (default) the properties every divergent token has: exactly the original's\n"
               "  --pattern keep    ... at least the original's (more may hold in a smaller run)\n"
               "  -v, --verbose     also a line per rejected candidate, with the reason\n");
    return f == stderr ? 2 : 0;
}

int ls_cmd_shrink(int argc, char **argv) {
    const char *failing = NULL, *out_arg = NULL;
    double max_seconds = 120;
    int verbose = 0, keep = 0;
    int n_sets = 0;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    if (!sets) return 2;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            free(sets);
            return usage(stdout);
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = 1;
            continue;
        }
        if (!strcmp(a, "-o") || !strcmp(a, "--set") || !strcmp(a, "--max-seconds") || !strcmp(a, "--pattern")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lockstep shrink: %s needs a value\n", a);
                free(sets);
                return usage(stderr);
            }
            const char *v = argv[++i];
            if (!strcmp(a, "-o")) {
                out_arg = v;
            } else if (!strcmp(a, "--set")) {
                sets[n_sets++] = v;
            } else if (!strcmp(a, "--pattern")) {
                if (strcmp(v, "exact") && strcmp(v, "keep")) {
                    fprintf(stderr, "lockstep shrink: --pattern '%s': want exact or keep\n", v);
                    free(sets);
                    return 2;
                }
                keep = !strcmp(v, "keep");
            } else {
                char *end;
                errno = 0;
                max_seconds = strtod(v, &end);
                if (end == v || *end || errno || !(max_seconds > 0) || max_seconds > 1e9) {
                    fprintf(stderr, "lockstep shrink: --max-seconds '%s': want a number of seconds > 0\n", v);
                    free(sets);
                    return 2;
                }
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "lockstep shrink: unknown option '%s'\n", a);
            free(sets);
            return usage(stderr);
        } else if (!failing) {
            failing = a;
        } else {
            fprintf(stderr, "lockstep shrink: more than one config given ('%s', '%s')\n", failing, a);
            free(sets);
            return usage(stderr);
        }
    }
    if (!failing) {
        free(sets);
        return usage(stderr);
    }
    char out_def[4096];
    if (!out_arg) {
        default_out(failing, out_def, sizeof out_def);
        out_arg = out_def;
    }

    shrinker s;
    memset(&s, 0, sizeof s);
    s.t0 = now();
    s.deadline = s.t0 + max_seconds;
    s.verbose = verbose;
    s.keep = keep;
    ls_err err = {{0}};
    ls_run_config orig;
    int code = 2;
    char *text = NULL, *companion = NULL;
    if (probe_writable(out_arg, &err)) {
        fprintf(stderr, "lockstep shrink: %s\n", err.msg);
        free(sets);
        return 2;
    }
    if (ls_config_load(failing, &orig, &err)) {
        fprintf(stderr, "lockstep shrink: %s\n", err.msg);
        free(sets);
        return 2;
    }
    for (int i = 0; i < n_sets; i++)
        if (ls_config_set(&orig, sets[i], &err)) {
            fprintf(stderr, "lockstep shrink: --set %s: %s\n", sets[i], err.msg);
            goto done;
        }
    if (ls_config_check(&orig, &err)) {
        fprintf(stderr, "lockstep shrink: %s\n", err.msg);
        goto done;
    }
    /* the reproducer must work from wherever it is written */
    absolutise(&orig.model_dir);
    absolutise(&orig.workload.prompts_file);
    free(orig.trace_path);
    free(orig.report_path);
    orig.trace_path = orig.report_path = NULL;
    orig.compare.probe_layers = 1;
    s.cur_yaml = ls_config_to_yaml(&orig);
    if (!s.cur_yaml) {
        fprintf(stderr, "lockstep shrink: out of memory\n");
        goto done;
    }
    if (parse_yaml(s.cur_yaml, &s.cur, &err)) {
        fprintf(stderr, "lockstep shrink: internal error: the effective config does not parse back: %s\n",
                err.msg);
        goto done;
    }

    attempt a;
    if (run_candidate(&orig, &a, &err)) {
        fprintf(stderr, "lockstep shrink: out of memory\n");
        goto done;
    }
    if (!a.ran) {
        fprintf(stderr, "lockstep shrink: %s\n", err.msg);
        goto done;
    }
    if (!a.g.diverged) {
        fprintf(stderr, "lockstep shrink: %s does not fail: nothing to shrink\n", failing);
        goto done;
    }
    s.want = a.g;
    s.vocab = a.vocab;
    s.resolved = a.resolved;
    s.cur_sz = a.sz;
    s.cur_divergent = a.g.divergent_tokens;
    sizes before = a.sz;
    char sigtext[1024];
    describe_sig(&s.want, s.keep, "; ", sigtext, sizeof sigtext);
    fprintf(stderr, "shrink: %s fails: %lld divergent tokens; %lld requests x %lld rollouts, %lld tokens [%.1f s]\n",
            failing, (long long)a.g.divergent_tokens, (long long)before.requests, (long long)before.rollouts,
            (long long)before.tokens, now() - s.t0);
    fprintf(stderr, "shrink: signature: %s\n", sigtext);
    if (seen_add(&s.seen, s.cur_yaml) < 0 || search(&s)) {
        fprintf(stderr, "lockstep shrink: out of memory\n");
        goto done;
    }
    if (s.timed_out)
        fprintf(stderr, "shrink: time limit (%.0f s) reached; keeping the smallest reproducer so far\n",
                max_seconds);
    fprintf(stderr, "shrink: %lld candidates tried, %lld accepted [%.1f s]\n", (long long)s.tried,
            (long long)s.accepted, now() - s.t0);

    if (keep_prompts(&s, out_arg, &companion, &err)) {
        fprintf(stderr, "lockstep shrink: %s\n", err.msg);
        goto done;
    }
    text = render(&s, failing, out_arg, companion, &before);
    if (!text) {
        fprintf(stderr, "lockstep shrink: out of memory\n");
        goto done;
    }
    if (write_atomic(out_arg, text, &err)) {
        fprintf(stderr, "lockstep shrink: %s\n", err.msg);
        goto done;
    }
    printf("lockstep run %s  # requests %lld -> %lld, rollouts %lld -> %lld, tokens %lld -> %lld\n", out_arg,
           (long long)before.requests, (long long)s.cur_sz.requests, (long long)before.rollouts,
           (long long)s.cur_sz.rollouts, (long long)before.tokens, (long long)s.cur_sz.tokens);
    fflush(stdout);
    code = 0;
done:
    if (s.tmpdir) {
        if (is_temp_prompts(&s, s.cur.workload.prompts_file)) remove(s.cur.workload.prompts_file);
        rmdir(s.tmpdir);
        free(s.tmpdir);
    }
    free(companion);
    free(text);
    free(sets);
    seen_free(&s.seen);
    free(s.cur_yaml);
    ls_config_free(&s.cur);
    ls_config_free(&orig);
    return code;
}
