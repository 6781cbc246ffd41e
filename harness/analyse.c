/* Structure analysis of a trace or a sweep (method and output: docs/analysis.md).
 *
 * Per trace (or sweep point): divergence rate, onset step, the period of the divergent
 * steps, and for each provenance field of /tokens the rule that separates divergent from
 * clean tokens (a threshold T with every divergent token >= T and no clean one, or <= T,
 * or == v), per token and per sequence, a one-sided rule ("every divergent token has
 * first_chunk == 1, some clean ones too") refined by a second field when that makes it
 * perfect, and an association measure when nothing separates. A threshold on the Mamba
 * slot is checked against the arithmetic that explains such thresholds: ceil(2^k /
 * slot_stride) (an N-bit offset overflow), the pool size, powers of two; and the share of
 * divergent sequences is compared with (num_slots - T) / num_slots.
 *
 * Across a sweep: the field that explains most divergent points becomes the sweep's rule
 * (its threshold the intersection of the points' separating intervals); each grid axis is
 * classified by whether changing it alone changes the failure's structure (divergence at
 * all, which rule holds) or only its magnitude; the axis that changes the structure in
 * most of its groups is the lever. The results go into the sweep file's /analysis group
 * (the file is rewritten atomically) and to `out`. */
#include "harness/analyse.h"
#include "harness/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/commands.h"

/* Also used by `lockstep report` (harness/report.c): analyses one trace file and prints
 * the findings to `out`. Returns 0, or -1 with a message in err. */

/* ---- small utilities ---------------------------------------------------------------- */

/* A growable string. On allocation failure `oom` is set and further appends are dropped. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_vadd(sbuf *b, const char *fmt, va_list ap) {
    if (b->oom) return;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    size_t need = b->len + (size_t)n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

__attribute__((format(printf, 2, 3))) static void sb_add(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vadd(b, fmt, ap);
    va_end(ap);
}

static const char *sb_str(const sbuf *b) { return b->s ? b->s : ""; }

/* 47935 -> "47,935" (negative numbers keep their sign), in one of a ring of buffers so a
 * printf call can format several. */
static const char *G(int64_t v) {
    static _Thread_local char ring[24][32];
    static _Thread_local unsigned next;
    char *buf = ring[next++ % 24];
    char tmp[32];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    snprintf(tmp, sizeof tmp, "%" PRIu64, u);
    size_t n = strlen(tmp), o = 0;
    if (v < 0) buf[o++] = '-';
    for (size_t i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = 0;
    return buf;
}

static double ratio(int64_t a, int64_t b) { return b > 0 ? (double)a / (double)b : 0.0; }

/* ---- HDF5 reading ------------------------------------------------------------------- */

/* A scalar string attribute, malloc'd; NULL if absent or unreadable. */
static char *attr_str(hid_t loc, const char *name) {
    char *v = NULL;
    return H5Aexists(loc, name) > 0 && ls_h5_attr_str(loc, name, &v) == 0 ? v : NULL;
}

/* A scalar numeric attribute as int64; returns 0 and leaves *v if absent. */
static int attr_i64(hid_t loc, const char *name, int64_t *v) {
    return H5Aexists(loc, name) > 0 && ls_h5_attr_i64(loc, name, v) == 0;
}

static int64_t dataset_rows(hid_t loc, const char *name) { return ls_h5_rows(loc, name); }

/* ---- one trace's data --------------------------------------------------------------- */

typedef struct tok {
    int64_t seq, rollout, position, step, batch_row, slot, prev_tenant, chunk, first_chunk,
        preemptions;
    uint8_t from_snapshot, divergent;
    double delta;
} tok;

typedef struct trace_data {
    int64_t n;                     /* tokens */
    tok *t;
    int64_t n_seqs;                /* /sequences rows (sequence ids are 0..n_seqs-1) */
    int64_t num_slots, slot_stride, state_elems, max_slot_used, distinct_slots_used, steps;
} trace_data;

static void trace_data_free(trace_data *d) {
    free(d->t);
    memset(d, 0, sizeof *d);
}

/* Reads /tokens, the number of sequences and the /summary attributes from a trace group
 * (a trace file's root or a sweep point's group). */
static int read_trace(hid_t loc, const char *where, trace_data *d, ls_err *err) {
    memset(d, 0, sizeof *d);
    d->num_slots = d->slot_stride = d->state_elems = d->max_slot_used = -1;
    d->distinct_slots_used = d->steps = -1;
    int64_t n = dataset_rows(loc, "tokens");
    if (n < 0) return ls_errf(err, "%s: dataset tokens missing or not 1-D", where);
    int64_t ns = dataset_rows(loc, "sequences");
    d->n = n;
    d->t = calloc((size_t)n + 1, sizeof *d->t);
    if (!d->t) return ls_errf(err, "%s: out of memory (%" PRId64 " tokens)", where, n);
    hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(tok)), ds = -1;
    int rc = -1;
    if (mt < 0) goto done;
#define M(f, t) if (H5Tinsert(mt, #f, HOFFSET(tok, f), t) < 0) goto done
    M(seq, H5T_NATIVE_INT64); M(rollout, H5T_NATIVE_INT64); M(position, H5T_NATIVE_INT64);
    M(step, H5T_NATIVE_INT64); M(batch_row, H5T_NATIVE_INT64); M(slot, H5T_NATIVE_INT64);
    M(prev_tenant, H5T_NATIVE_INT64); M(chunk, H5T_NATIVE_INT64);
    M(first_chunk, H5T_NATIVE_INT64); M(preemptions, H5T_NATIVE_INT64);
    M(from_snapshot, H5T_NATIVE_UINT8); M(divergent, H5T_NATIVE_UINT8);
    M(delta, H5T_NATIVE_DOUBLE);
#undef M
    if (n > 0) {
        if ((ds = H5Dopen2(loc, "tokens", H5P_DEFAULT)) < 0) goto done;
        if (H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, d->t) < 0) goto done;
    }
    rc = 0;
done:
    if (ds >= 0) H5Dclose(ds);
    if (mt >= 0) H5Tclose(mt);
    if (rc) {
        char buf[256];
        const char *why = ls_h5_reason(buf);
        trace_data_free(d);
        return ls_errf(err, "%s: cannot read /tokens%s%s", where, why[0] ? ": " : "", why);
    }
    int64_t max_seq = -1;
    for (int64_t i = 0; i < n; i++) {
        if (d->t[i].seq < 0) {
            trace_data_free(d);
            return ls_errf(err, "%s: token %" PRId64 " has sequence %" PRId64, where, i,
                           d->t[i].seq);
        }
        if (d->t[i].seq > max_seq) max_seq = d->t[i].seq;
    }
    d->n_seqs = ns > max_seq ? ns : max_seq + 1;
    if (H5Lexists(loc, "summary", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(loc, "summary", H5P_DEFAULT);
        if (g >= 0) {
            attr_i64(g, "num_slots", &d->num_slots);
            attr_i64(g, "slot_stride", &d->slot_stride);
            attr_i64(g, "state_elems", &d->state_elems);
            attr_i64(g, "max_slot_used", &d->max_slot_used);
            attr_i64(g, "distinct_slots_used", &d->distinct_slots_used);
            attr_i64(g, "steps", &d->steps);
            H5Gclose(g);
        }
    }
    return 0;
}

/* ---- fields and rules --------------------------------------------------------------- */

/* The provenance fields, in order of preference when several explain the same data:
 * state placement first (where the bug classes live), then scheduling, then position. */
enum {
    FS_SLOT, FS_FIRST_CHUNK, FS_PREV_TENANT, FS_FROM_SNAPSHOT, FS_PREEMPTIONS, FS_CHUNK,
    FS_BATCH_ROW, FS_STEP, FS_ROLLOUT, FS_POSITION, NF
};
static const char *const FNAME[NF] = {"slot", "first_chunk", "prev_tenant", "from_snapshot",
                                      "preemptions", "chunk", "batch_row", "step", "rollout",
                                      "position"};

static int field_is_flag(int f) { return f == FS_PREV_TENANT || f == FS_FROM_SNAPSHOT; }

/* prev_tenant is analysed as the flag "the slot had a previous tenant" (prev_tenant >= 0). */
static int64_t fval(const tok *t, int f) {
    switch (f) {
    case FS_SLOT: return t->slot;
    case FS_FIRST_CHUNK: return t->first_chunk;
    case FS_PREV_TENANT: return t->prev_tenant >= 0;
    case FS_FROM_SNAPSHOT: return t->from_snapshot;
    case FS_PREEMPTIONS: return t->preemptions;
    case FS_CHUNK: return t->chunk;
    case FS_BATCH_ROW: return t->batch_row;
    case FS_STEP: return t->step;
    case FS_ROLLOUT: return t->rollout;
    case FS_POSITION: return t->position;
    }
    return 0;
}

typedef enum { OP_GE, OP_LE, OP_EQ } rop;

typedef struct rule {
    int f;                 /* -1: none */
    rop op;
    int64_t v;             /* the threshold or value */
    int64_t lo, hi;        /* GE / LE: every v in [lo, hi] separates the same way */
} rule;

static const rule NO_RULE = {-1, OP_EQ, 0, 0, 0};

static int rule_sat(const rule *r, int64_t x) {
    switch (r->op) {
    case OP_GE: return x >= r->v;
    case OP_LE: return x <= r->v;
    case OP_EQ: return x == r->v;
    }
    return 0;
}

static int tok_sat(const rule *r, const tok *t) { return r->f >= 0 && rule_sat(r, fval(t, r->f)); }

/* "slot >= 47", "first_chunk == 1", "prev_tenant >= 0", "from_snapshot == 1". */
static const char *rule_str(char buf[64], const rule *r) {
    if (r->f < 0) {
        snprintf(buf, 64, "-");
        return buf;
    }
    if (field_is_flag(r->f)) {
        int one = rule_sat(r, 1), zero = rule_sat(r, 0);
        if (r->f == FS_PREV_TENANT)
            snprintf(buf, 64, "%s", one && !zero ? "prev_tenant >= 0" : "prev_tenant == -1");
        else
            snprintf(buf, 64, "from_snapshot == %d", one && !zero ? 1 : 0);
        return buf;
    }
    snprintf(buf, 64, "%s %s %s", FNAME[r->f], r->op == OP_GE ? ">=" : r->op == OP_LE ? "<=" : "==",
             G(r->v));
    return buf;
}

/* The same rule in words, for verdicts. */
static const char *rule_words(char buf[192], const rule *r) {
    char rs[64];
    rule_str(rs, r);
    if (r->f == FS_FIRST_CHUNK && r->op == OP_EQ && r->v == 1)
        snprintf(buf, 192, "a new request is granted one token (%s)", rs);
    else if (r->f == FS_FIRST_CHUNK && r->op == OP_EQ)
        snprintf(buf, 192, "a new request is granted %s tokens in its first step (%s)",
                 G(r->v), rs);
    else if (r->f == FS_SLOT && r->op == OP_GE)
        snprintf(buf, 192, "a sequence sits in a Mamba state slot >= %s (%s)", G(r->v), rs);
    else if (r->f == FS_SLOT && r->op == OP_LE)
        snprintf(buf, 192, "a sequence sits in a Mamba state slot <= %s (%s)", G(r->v), rs);
    else if (r->f == FS_PREV_TENANT)
        snprintf(buf, 192, rule_sat(r, 1) ? "its state slot had a previous tenant (%s)"
                                          : "its state slot was fresh (%s)", rs);
    else if (r->f == FS_FROM_SNAPSHOT)
        snprintf(buf, 192, rule_sat(r, 1) ? "its state came from a prefix snapshot (%s)"
                                          : "its state did not come from a prefix snapshot (%s)",
                 rs);
    else if (r->f == FS_PREEMPTIONS && r->op == OP_GE && r->v >= 1)
        snprintf(buf, 192, "a sequence has been preempted (%s)", rs);
    else
        snprintf(buf, 192, "%s", rs);
    return buf;
}

/* ---- per-field statistics ------------------------------------------------------------ */

typedef struct field_res {
    int64_t min_all, max_all;
    int tok_perfect;       /* two-sided, tokens */
    rule tok;
    int seq_perfect;       /* two-sided, sequences (a sequence "has" a value if any of its
                              tokens up to its first divergence has it) */
    rule seq;
    int one_sided;         /* every divergent token satisfies `os`, some clean ones too */
    rule os;
    int64_t os_clean;      /* clean tokens satisfying it */
    double os_prec;        /* divergent / satisfying */
    int assoc;             /* best split by |rate above - rate below| */
    rule as;
    double rate_in, rate_out;
    int64_t n_in, n_out;
} field_res;

typedef struct vd {
    int64_t v;
    uint8_t d;
} vd;

static int vd_cmp(const void *a, const void *b) {
    int64_t x = ((const vd *)a)->v, y = ((const vd *)b)->v;
    return (x > y) - (x < y);
}

/* Two-sided separations and the one-sided rule of a (value, divergent) list, sorted. */
static void separate(const vd *a, int64_t n, int f, int *perfect, rule *out, int *one_sided,
                     rule *os, int64_t *os_clean, double *os_prec) {
    *perfect = 0;
    *out = NO_RULE;
    if (one_sided) *one_sided = 0;
    int64_t nd = 0, nc = 0;
    int64_t minD = INT64_MAX, maxD = INT64_MIN, minC = INT64_MAX, maxC = INT64_MIN;
    for (int64_t i = 0; i < n; i++) {
        if (a[i].d) {
            nd++;
            if (a[i].v < minD) minD = a[i].v;
            if (a[i].v > maxD) maxD = a[i].v;
        } else {
            nc++;
            if (a[i].v < minC) minC = a[i].v;
            if (a[i].v > maxC) maxC = a[i].v;
        }
    }
    if (nd == 0 || nc == 0) return;
    int64_t lo_all = minD < minC ? minD : minC;
    int single = minD == maxD;
    if (minD > maxC) {
        *perfect = 1;
        *out = (rule){f, OP_GE, minD, maxC + 1, minD};
    } else if (maxD < minC) {
        *perfect = 1;
        *out = (rule){f, OP_LE, maxD, maxD, minC - 1};
        if (single && maxD == lo_all) *out = (rule){f, OP_EQ, maxD, maxD, maxD};
    } else if (single) {
        int clean_has = 0;
        for (int64_t i = 0; i < n && !clean_has; i++) clean_has = !a[i].d && a[i].v == minD;
        if (!clean_has) {
            *perfect = 1;
            *out = (rule){f, OP_EQ, minD, minD, minD};
        }
    }
    if (*perfect && field_is_flag(f)) *out = (rule){f, OP_EQ, minD, minD, minD};
    if (*perfect || !one_sided) return;
    /* One-sided: the tightest of >= minD, <= maxD, == v (single value), by precision. */
    rule cand[3];
    int nc3 = 0;
    cand[nc3++] = (rule){f, OP_GE, minD, minD, minD};
    cand[nc3++] = (rule){f, OP_LE, maxD, maxD, maxD};
    if (single) cand[nc3++] = (rule){f, OP_EQ, minD, minD, minD};
    double best = -1;
    for (int c = 0; c < nc3; c++) {
        int64_t sat_c = 0;
        for (int64_t i = 0; i < n; i++)
            if (!a[i].d && rule_sat(&cand[c], a[i].v)) sat_c++;
        double prec = ratio(nd, nd + sat_c);
        if (prec > best + 1e-12) {
            best = prec;
            *os = cand[c];
            *os_clean = sat_c;
        }
    }
    if (field_is_flag(f) || (os->op == OP_LE && single && os->v == lo_all))
        *os = (rule){f, OP_EQ, os->v, os->v, os->v};
    if (best < 1.0) {  /* a one-sided rule every token satisfies says nothing */
        int64_t sat_all = nd + *os_clean;
        if (sat_all < n) {
            *one_sided = 1;
            *os_prec = best;
        }
    }
}

/* Per-sequence state used by the sequence-level rules. */
typedef struct seq_info {
    int64_t first_div;     /* first divergent position, -1 if clean */
} seq_info;

/* Whether token i counts for its sequence (up to and including its first divergence). */
static int tok_counts(const trace_data *d, const seq_info *si, int64_t i) {
    const seq_info *s = &si[d->t[i].seq];
    return s->first_div < 0 || d->t[i].position <= s->first_div;
}

static void field_stats(const trace_data *d, const seq_info *si, int f, vd *buf, vd *sbuf2,
                        int64_t *smax, int64_t *smin, field_res *r) {
    memset(r, 0, sizeof *r);
    r->tok = r->seq = r->os = r->as = NO_RULE;
    int64_t n = d->n;
    r->min_all = INT64_MAX;
    r->max_all = INT64_MIN;
    for (int64_t i = 0; i < n; i++) {
        buf[i] = (vd){fval(&d->t[i], f), d->t[i].divergent};
        if (buf[i].v < r->min_all) r->min_all = buf[i].v;
        if (buf[i].v > r->max_all) r->max_all = buf[i].v;
    }
    separate(buf, n, f, &r->tok_perfect, &r->tok, &r->one_sided, &r->os, &r->os_clean,
             &r->os_prec);
    /* association: the split >= T maximising |rate(>= T) - rate(< T)| */
    qsort(buf, (size_t)n, sizeof *buf, vd_cmp);
    int64_t tot_d = 0;
    for (int64_t i = 0; i < n; i++) tot_d += buf[i].d;
    int64_t below_n = 0, below_d = 0;
    double best = -1;
    for (int64_t i = 0; i < n; i++) {
        if (i > 0 && buf[i].v != buf[i - 1].v) {
            int64_t above_n = n - below_n, above_d = tot_d - below_d;
            double ra = ratio(above_d, above_n), rb = ratio(below_d, below_n);
            if (fabs(ra - rb) > best + 1e-12) {
                best = fabs(ra - rb);
                r->assoc = 1;
                r->as = (rule){f, OP_GE, buf[i].v, buf[i].v, buf[i].v};
                if (field_is_flag(f)) r->as = (rule){f, OP_EQ, 1, 1, 1};
                r->rate_in = ra;
                r->rate_out = rb;
                r->n_in = above_n;
                r->n_out = below_n;
            }
        }
        below_n++;
        below_d += buf[i].d;
    }
    /* sequence level: max (for >=) and min (for <=) over each sequence's counted tokens */
    int64_t ns = d->n_seqs;
    for (int64_t s = 0; s < ns; s++) {
        smax[s] = INT64_MIN;
        smin[s] = INT64_MAX;
    }
    for (int64_t i = 0; i < n; i++) {
        if (!tok_counts(d, si, i)) continue;
        int64_t s = d->t[i].seq, v = fval(&d->t[i], f);
        if (v > smax[s]) smax[s] = v;
        if (v < smin[s]) smin[s] = v;
    }
    int64_t m = 0;
    for (int64_t s = 0; s < ns; s++)
        if (smax[s] != INT64_MIN) sbuf2[m++] = (vd){smax[s], (uint8_t)(si[s].first_div >= 0)};
    int p1 = 0, p2 = 0;
    rule r1 = NO_RULE, r2 = NO_RULE;
    separate(sbuf2, m, f, &p1, &r1, NULL, NULL, NULL, NULL);
    if (p1 && r1.op == OP_GE) {
        r->seq_perfect = 1;
        r->seq = r1;
        r->seq.lo = r1.lo;
        return;
    }
    m = 0;
    for (int64_t s = 0; s < ns; s++)
        if (smin[s] != INT64_MAX) sbuf2[m++] = (vd){smin[s], (uint8_t)(si[s].first_div >= 0)};
    separate(sbuf2, m, f, &p2, &r2, NULL, NULL, NULL, NULL);
    if (p2 && r2.op != OP_GE) {
        r->seq_perfect = 1;
        r->seq = r2;
        return;
    }
    /* == v at the sequence level: a sequence diverges iff one of its counted tokens has v
     * (candidates: the values at the divergent sequences' first divergent tokens). */
    int64_t tried[8];
    int n_tried = 0;
    for (int64_t i = 0; i < n && !r->seq_perfect && n_tried < 8; i++) {
        const tok *t = &d->t[i];
        if (!t->divergent || t->position != si[t->seq].first_div) continue;
        int dup = 0;
        for (int k = 0; k < n_tried && !dup; k++) dup = tried[k] == fval(t, f);
        if (dup) continue;
        tried[n_tried++] = fval(t, f);
        rule c = {f, OP_EQ, fval(t, f), fval(t, f), fval(t, f)};
        memset(sbuf2, 0, (size_t)ns * sizeof *sbuf2);  /* .v = has, .d = divergent */
        for (int64_t j = 0; j < n; j++)
            if (tok_counts(d, si, j) && rule_sat(&c, fval(&d->t[j], f))) sbuf2[d->t[j].seq].v = 1;
        int ok = 1, any_clean = 0;
        for (int64_t s = 0; s < ns && ok; s++) {
            if (smax[s] == INT64_MIN) continue;
            int div = si[s].first_div >= 0;
            if (!div) any_clean = 1;
            if ((sbuf2[s].v != 0) != div) ok = 0;
        }
        if (ok && any_clean) {
            r->seq_perfect = 1;
            r->seq = c;
        }
    }
}

/* ---- one point's analysis ------------------------------------------------------------ */

enum { LV_NONE, LV_TOKENS, LV_SEQS, LV_CONJ, LV_ONESIDED, LV_ASSOC, LV_ALL };

typedef struct hint {
    int f;                 /* preferred field, -1 none */
    rop op;
    int64_t T, lo, hi;     /* consolidated threshold (GE/LE) or value (EQ) */
    int valid;             /* the points agree on T: the rule can be evaluated */
} hint;

typedef struct point_res {
    int ok;
    int64_t tokens, dtok, seqs, dseqs;
    int64_t onset_step, onset_pos, period, n_div_steps, first_div_step, last_div_step;
    int period_kind;       /* 0 none, 1 arithmetic progression, 2 dominant gap */
    int64_t period_hits, period_gaps;
    int64_t nonfinite;
    field_res fr[NF];
    int conj;              /* token level: c1 (one-sided) and c2 (perfect within c1) */
    rule c1, c2;
    int level;             /* LV_* of `best` */
    rule best;
    int64_t num_slots, slot_stride, state_elems, max_slot_seen, distinct_slots_used;
    int64_t seqs_at_or_above;  /* best is slot >= T: sequences with a counted token >= T */
    int64_t trigger_tokens;    /* tokens satisfying `best` (any level) */
    int64_t hint_seqs;         /* sequences with a counted token meeting the sweep's rule */
} point_res;

static void find_conjunction(const trace_data *d, point_res *p, vd *buf) {
    p->conj = 0;
    /* candidates for the first rule: the one-sided rules, by precision then priority */
    int order[NF], no = 0;
    for (int f = 0; f < NF; f++)
        if (p->fr[f].one_sided) order[no++] = f;
    for (int i = 1; i < no; i++)
        for (int j = i; j > 0 && p->fr[order[j]].os_prec > p->fr[order[j - 1]].os_prec + 1e-12; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int i = 0; i < no; i++) {
        const rule *r1 = &p->fr[order[i]].os;
        for (int f2 = 0; f2 < NF; f2++) {
            if (f2 == r1->f) continue;
            int64_t m = 0;
            for (int64_t k = 0; k < d->n; k++)
                if (tok_sat(r1, &d->t[k])) buf[m++] = (vd){fval(&d->t[k], f2), d->t[k].divergent};
            int perfect = 0;
            rule r2;
            separate(buf, m, f2, &perfect, &r2, NULL, NULL, NULL, NULL);
            if (perfect) {
                p->conj = 1;
                p->c1 = *r1;
                p->c2 = r2;
                return;
            }
        }
    }
}

static int i64_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void period_of(int64_t *steps, int64_t m, point_res *p) {
    qsort(steps, (size_t)m, sizeof *steps, i64_cmp);
    int64_t u = 0;
    for (int64_t i = 0; i < m; i++)
        if (u == 0 || steps[i] != steps[u - 1]) steps[u++] = steps[i];
    p->n_div_steps = u;
    p->period = -1;
    p->period_kind = 0;
    if (u == 0) return;
    p->first_div_step = steps[0];
    p->last_div_step = steps[u - 1];
    if (u < 2) return;
    /* gaps; the dominant one by count (ties: the smaller gap) */
    int64_t ng = u - 1;
    int64_t *g = malloc((size_t)ng * sizeof *g);
    if (!g) return;
    for (int64_t i = 0; i < ng; i++) g[i] = steps[i + 1] - steps[i];
    qsort(g, (size_t)ng, sizeof *g, i64_cmp);
    int64_t best = g[0], best_n = 0;
    for (int64_t i = 0; i < ng;) {
        int64_t j = i;
        while (j < ng && g[j] == g[i]) j++;
        if (j - i > best_n) {
            best_n = j - i;
            best = g[i];
        }
        i = j;
    }
    free(g);
    p->period = best;
    p->period_hits = best_n;
    p->period_gaps = ng;
    p->period_kind = best_n == ng ? 1 : 2;
}

/* Everything about one trace. `h` (may be NULL) names the sweep's rule: when this point's
 * data supports it, it becomes the point's rule. */
static int analyse_point(const trace_data *d, const hint *h, point_res *p, ls_err *err) {
    memset(p, 0, sizeof *p);
    p->ok = 1;
    p->best = p->c1 = p->c2 = NO_RULE;
    p->tokens = d->n;
    p->num_slots = d->num_slots;
    p->slot_stride = d->slot_stride;
    p->state_elems = d->state_elems;
    p->distinct_slots_used = d->distinct_slots_used;
    p->max_slot_seen = d->max_slot_used;
    int64_t n = d->n, ns = d->n_seqs;
    seq_info *si = malloc(((size_t)ns + 1) * sizeof *si);
    vd *buf = malloc(((size_t)n + 1) * sizeof *buf);
    vd *sb = malloc(((size_t)(n > ns ? n : ns) + 1) * sizeof *sb);
    int64_t *smax = malloc(((size_t)ns + 1) * sizeof *smax);
    int64_t *smin = malloc(((size_t)ns + 1) * sizeof *smin);
    int64_t *steps = malloc(((size_t)n + 1) * sizeof *steps);
    int rc = -1;
    if (!si || !buf || !sb || !smax || !smin || !steps) {
        ls_errf(err, "out of memory analysing %" PRId64 " tokens", n);
        goto done;
    }
    for (int64_t s = 0; s < ns; s++) si[s].first_div = -1;
    int64_t counted_seqs = 0;
    {
        uint8_t *seen = calloc((size_t)ns + 1, 1);
        if (!seen) {
            ls_errf(err, "out of memory");
            goto done;
        }
        for (int64_t i = 0; i < n; i++) {
            const tok *t = &d->t[i];
            if (!seen[t->seq]) {
                seen[t->seq] = 1;
                counted_seqs++;
            }
            if (t->slot > p->max_slot_seen) p->max_slot_seen = t->slot;
            if (t->divergent) {
                p->dtok++;
                seq_info *s = &si[t->seq];
                if (s->first_div < 0 || t->position < s->first_div) s->first_div = t->position;
            }
        }
        free(seen);
    }
    p->seqs = counted_seqs;
    for (int64_t s = 0; s < ns; s++) p->dseqs += si[s].first_div >= 0;
    int64_t m = 0;
    p->onset_step = p->onset_pos = -1;
    for (int64_t i = 0; i < n; i++) {
        const tok *t = &d->t[i];
        if (!isfinite(t->delta)) p->nonfinite++;
        if (!t->divergent) continue;
        if (t->step >= 0) {
            steps[m++] = t->step;
            if (p->onset_step < 0 || t->step < p->onset_step) p->onset_step = t->step;
        }
        if (p->onset_pos < 0 || t->position < p->onset_pos) p->onset_pos = t->position;
    }
    period_of(steps, m, p);
    if (h && h->f >= 0 && h->valid) {
        rule hr = {h->f, h->op, h->T, h->T, h->T};
        uint8_t *meets = calloc((size_t)ns + 1, 1);
        if (!meets) {
            ls_errf(err, "out of memory");
            goto done;
        }
        for (int64_t i = 0; i < n; i++)
            if (tok_counts(d, si, i) && tok_sat(&hr, &d->t[i])) meets[d->t[i].seq] = 1;
        for (int64_t s = 0; s < ns; s++) p->hint_seqs += meets[s];
        free(meets);
    }

    if (p->dtok == 0) {
        p->level = LV_NONE;
        rc = 0;
        goto done;
    }
    if (p->dtok == n) {
        p->level = LV_ALL;
        rc = 0;
        goto done;
    }
    for (int f = 0; f < NF; f++) field_stats(d, si, f, buf, sb, smax, smin, &p->fr[f]);
    find_conjunction(d, p, buf);

    /* the best explanation: tokens, then sequences, then a conjunction, then one-sided */
    int tier_f[4] = {-1, -1, -1, -1};
    for (int f = NF - 1; f >= 0; f--) {
        if (p->fr[f].tok_perfect) tier_f[0] = f;
        if (p->fr[f].seq_perfect) tier_f[1] = f;
    }
    if (h && h->f >= 0) {
        const field_res *r = &p->fr[h->f];
        if (r->tok_perfect && r->tok.op == h->op) tier_f[0] = h->f, tier_f[1] = -1;
        else if (r->seq_perfect && r->seq.op == h->op && tier_f[0] < 0) tier_f[1] = h->f;
        else if (r->tok_perfect) tier_f[0] = h->f;
        else if (r->seq_perfect && tier_f[0] < 0) tier_f[1] = h->f;
        else if (p->conj && p->c1.f != h->f && p->c2.f == h->f) {
            rule t = p->c1;  /* put the sweep's field first */
            p->c1 = p->c2;
            p->c2 = t;
        }
    }
    if (tier_f[0] >= 0) {
        p->level = LV_TOKENS;
        p->best = p->fr[tier_f[0]].tok;
    } else if (tier_f[1] >= 0) {
        p->level = LV_SEQS;
        p->best = p->fr[tier_f[1]].seq;
    } else if (p->conj) {
        p->level = LV_CONJ;
        p->best = p->c1;
    } else {
        int bf = -1;
        for (int f = 0; f < NF; f++)
            if (p->fr[f].one_sided && (bf < 0 || p->fr[f].os_prec > p->fr[bf].os_prec + 1e-12)) bf = f;
        if (bf >= 0) {
            p->level = LV_ONESIDED;
            p->best = p->fr[bf].os;
        } else {
            for (int f = 0; f < NF; f++)
                if (p->fr[f].assoc &&
                    (bf < 0 || fabs(p->fr[f].rate_in - p->fr[f].rate_out) >
                                   fabs(p->fr[bf].rate_in - p->fr[bf].rate_out) + 1e-12))
                    bf = f;
            p->level = LV_ASSOC;
            p->best = bf >= 0 ? p->fr[bf].as : NO_RULE;
        }
    }
    /* the sweep's threshold, where this point's interval allows it */
    if (h && h->f >= 0 && h->valid && p->best.f == h->f && p->best.op == h->op &&
        h->op != OP_EQ && h->T >= p->best.lo && h->T <= p->best.hi && p->level <= LV_CONJ)
        p->best.v = h->T;
    for (int64_t i = 0; i < n; i++)
        if (tok_sat(&p->best, &d->t[i])) p->trigger_tokens++;
    if (p->best.f == FS_SLOT && p->best.op == OP_GE) {
        for (int64_t s = 0; s < ns; s++) smax[s] = INT64_MIN;
        for (int64_t i = 0; i < n; i++)
            if (tok_counts(d, si, i) && d->t[i].slot > smax[d->t[i].seq]) smax[d->t[i].seq] = d->t[i].slot;
        for (int64_t s = 0; s < ns; s++) p->seqs_at_or_above += smax[s] >= p->best.v;
    }
    rc = 0;
done:
    free(si);
    free(buf);
    free(sb);
    free(smax);
    free(smin);
    free(steps);
    return rc;
}

/* ---- arithmetic behind a slot threshold ----------------------------------------------- */

/* ceil(2^k / s) for 1 <= k <= 64, s >= 1. */
static uint64_t ceil_pow2_div(int k, uint64_t s) {
    uint64_t a_minus_1 = k == 64 ? UINT64_MAX : (((uint64_t)1 << k) - 1);
    return a_minus_1 / s + 1;
}

/* The k with ceil(2^k / stride) == T (the largest such k), or 0. */
static int offset_overflow_bits(int64_t T, int64_t stride) {
    if (T < 1 || stride < 1) return 0;
    int found = 0;
    for (int k = 1; k <= 64; k++)
        if (ceil_pow2_div(k, (uint64_t)stride) == (uint64_t)T) found = k;
    return found;
}

static int pow2_exp(int64_t T) {
    if (T < 1 || (T & (T - 1))) return -1;
    int k = 0;
    while (((int64_t)1 << k) < T) k++;
    return k;
}

/* Picks a threshold in [lo, hi] that an arithmetic coincidence explains, else hi. */
static int64_t explained_threshold(int64_t lo, int64_t hi, int64_t stride, int64_t elems,
                                   int64_t num_slots) {
    for (int64_t T = lo; T <= hi && T - lo < 1000000; T++)
        if (offset_overflow_bits(T, stride)) return T;
    for (int64_t T = lo; T <= hi && T - lo < 1000000; T++)
        if (elems > 0 && elems != stride && offset_overflow_bits(T, elems)) return T;
    if (num_slots >= lo && num_slots <= hi) return num_slots;
    for (int64_t T = lo; T <= hi && T - lo < 1000000; T++)
        if (pow2_exp(T) >= 0) return T;
    return hi;
}

static void explain_threshold(sbuf *o, const char *indent, int64_t T, int64_t stride,
                              int64_t elems, int64_t num_slots) {
    int k = offset_overflow_bits(T, stride);
    int named = 0, n_k = 0;
    for (int j = 1; j <= 64 && stride >= 1 && T >= 1; j++)
        n_k += ceil_pow2_div(j, (uint64_t)stride) == (uint64_t)T;
    if (k && n_k > 1) {
        sb_add(o, "%sthat threshold is ceil(2^k / %s) = %s for every k <= %d: an offset "
               "overflow of %d bits or fewer\n", indent, G(stride), G(T), k, k);
        named = 1;
    } else if (k) {
        uint64_t p = k == 64 ? 0 : (uint64_t)1 << k;
        sb_add(o, "%sthat threshold is ceil(2^%d / %s) = %s: the first slot whose state offset "
               "slot x %s reaches 2^%d", indent, k, G(stride), G(T), G(stride), k);
        if (k < 63)
            sb_add(o, " (%s x %s = %s >= %s > %s x %s)", G(T), G(stride),
                   G(T * stride), G((int64_t)p), G(T - 1), G(stride));
        sb_add(o, ": %s %d-bit offset overflow\n", k == 8 || k == 11 || k == 18 ? "an" : "a", k);
        named = 1;
    } else if (elems > 0 && elems != stride && (k = offset_overflow_bits(T, elems))) {
        sb_add(o, "%sthat threshold is ceil(2^%d / %s) = %s with the state size %s as stride: "
               "%s %d-bit offset overflow\n", indent, k, G(elems), G(T), G(elems), k == 8 || k == 11 || k == 18 ? "an" : "a", k);
        named = 1;
    }
    if (T == num_slots) {
        sb_add(o, "%sthat threshold equals num_slots (%s): no slot reaches it\n", indent,
               G(num_slots));
        named = 1;
    }
    int pk = pow2_exp(T);
    if (pk >= 0 && !named) {
        sb_add(o, "%sthat threshold is a power of two, 2^%d = %s: a bit boundary in the slot "
               "index\n", indent, pk, G(T));
        named = 1;
    }
    if (!named)
        sb_add(o, "%sno arithmetic coincidence found for %s (checked ceil(2^k / %s) for k = "
               "1..64, num_slots, powers of two)\n", indent, G(T), G(stride));
}

/* ---- printing one point --------------------------------------------------------------- */

static const char *level_name(int lv) {
    switch (lv) {
    case LV_TOKENS: return "tokens";
    case LV_SEQS: return "sequences";
    case LV_CONJ: return "tokens (two fields)";
    case LV_ONESIDED: return "one-sided";
    case LV_ASSOC: return "association";
    case LV_ALL: return "all";
    default: return "none";
    }
}

/* The rule string stored in /analysis/points (and used as the structure signature). */
static void point_rule_text(char out[128], const point_res *p) {
    char a[64], b[64];
    switch (p->level) {
    case LV_NONE: snprintf(out, 128, "none"); break;
    case LV_ALL: snprintf(out, 128, "all"); break;
    case LV_TOKENS: case LV_SEQS: snprintf(out, 128, "%s", rule_str(a, &p->best)); break;
    case LV_CONJ:
        snprintf(out, 128, "%s and %s", rule_str(a, &p->c1), rule_str(b, &p->c2));
        break;
    case LV_ONESIDED: snprintf(out, 128, "only where %s", rule_str(a, &p->best)); break;
    default: snprintf(out, 128, "unexplained"); break;
    }
}

static int64_t point_threshold(const point_res *p) {
    if (p->level >= LV_TOKENS && p->level <= LV_ONESIDED && p->best.f >= 0 &&
        !field_is_flag(p->best.f) && (p->best.op == OP_GE || p->best.op == OP_LE))
        return p->best.v;
    return -1;
}

static void print_share_check(sbuf *o, const char *ind, const point_res *p) {
    if (p->best.f != FS_SLOT || p->best.op != OP_GE || p->num_slots <= 0) return;
    int64_t T = p->best.v, N = p->num_slots;
    double obs = ratio(p->dseqs, p->seqs);
    if (T >= N) return;
    double pred = ratio(N - T, N);
    int spread = 4 * (p->max_slot_seen + 1) >= 3 * N && p->seqs >= 2;
    sb_add(o, "%sshare check: %s of %s sequences diverged (%.3f; %s sat in a slot >= %s); ",
           ind, G(p->dseqs), G(p->seqs), obs, G(p->seqs_at_or_above), G(T));
    if (spread) {
        double sd = sqrt(pred * (1 - pred) / (double)p->seqs);
        int ok = fabs(obs - pred) <= 2 * sd + 0.5 / (double)p->seqs;
        sb_add(o, "slots spread over the whole %s-slot pool predict (%s - %s) / %s = %.3f "
               "(+-%.3f at 2 sigma): %s\n", G(N), G(N), G(T), G(N), pred,
               2 * sd, ok ? "consistent" : "NOT consistent (another mechanism is at work)");
    } else {
        sb_add(o, "slots used reach only %s of a %s-slot pool, so the share follows the "
               "allocation, not (%s - %s) / %s = %.3f\n", G(p->max_slot_seen), G(N),
               G(N), G(T), G(N), pred);
    }
}

static void print_field_table(sbuf *o, const char *ind, const point_res *p) {
    char a[64], b[64];
    sb_add(o, "%sby field (tokens | sequences):\n", ind);
    for (int f = 0; f < NF; f++) {
        const field_res *r = &p->fr[f];
        sb_add(o, "%s  %-13s ", ind, FNAME[f]);
        if (r->min_all == r->max_all) {
            sb_add(o, "constant (%s)\n", G(field_is_flag(f) && f == FS_PREV_TENANT
                                                     ? (r->min_all ? 0 : -1) : r->min_all));
            continue;
        }
        if (r->tok_perfect)
            sb_add(o, "separates: divergent iff %s", rule_str(a, &r->tok));
        else if (r->one_sided)
            sb_add(o, "every divergent token has %s (%s clean too, %.0f%% divergent)",
                   rule_str(a, &r->os), G(r->os_clean), 100 * r->os_prec);
        else if (r->assoc)
            sb_add(o, "no split; %.1f%% divergent at %s vs %.1f%% otherwise",
                   100 * r->rate_in, rule_str(a, &r->as), 100 * r->rate_out);
        else
            sb_add(o, "-");
        if (r->seq_perfect)
            sb_add(o, " | a sequence diverges iff %s", rule_str(b, &r->seq));
        else
            sb_add(o, " | no split");
        sb_add(o, "\n");
    }
}

/* The findings for one trace / point. */
static void print_point(sbuf *o, const char *ind, const point_res *p, int detail) {
    char r1[64], r2[64], w[192];
    sb_add(o, "%sdivergence: %s of %s tokens (%.2f%%), %s of %s sequences (%.2f%%)\n", ind,
           G(p->dtok), G(p->tokens), 100 * ratio(p->dtok, p->tokens),
           G(p->dseqs), G(p->seqs), 100 * ratio(p->dseqs, p->seqs));
    if (p->dtok == 0) return;
    if (p->nonfinite)
        sb_add(o, "%s(%s tokens have a non-finite logprob difference: NaN or inf)\n", ind,
               G(p->nonfinite));
    sb_add(o, "%sonset: step %s (first divergent position %s)\n", ind, G(p->onset_step),
           G(p->onset_pos));
    if (p->n_div_steps == 1)
        sb_add(o, "%speriod: divergent in one step only (%s)\n", ind, G(p->first_div_step));
    else if (p->period_kind == 1 && p->period == 1)
        sb_add(o, "%speriod: 1 (divergent in every step from %s to %s)\n", ind,
               G(p->first_div_step), G(p->last_div_step));
    else if (p->period_kind == 1)
        sb_add(o, "%speriod: %s (divergent steps form an arithmetic progression %s, %s, ... %s)\n",
               ind, G(p->period), G(p->first_div_step),
               G(p->first_div_step + p->period), G(p->last_div_step));
    else if (p->period_kind == 2)
        sb_add(o, "%speriod: dominant gap %s (%s of %s gaps between the %s divergent steps, "
               "%s..%s)\n", ind, G(p->period), G(p->period_hits),
               G(p->period_gaps), G(p->n_div_steps), G(p->first_div_step),
               G(p->last_div_step));
    switch (p->level) {
    case LV_ALL:
        sb_add(o, "%srule: every token diverges (nothing to separate)\n", ind);
        break;
    case LV_TOKENS:
        rule_str(r1, &p->best);
        sb_add(o, "%srule: divergence only where %s\n", ind, rule_words(w, &p->best));
        if (p->best.op == OP_EQ)
            sb_add(o, "%s  every divergent token has %s, no clean token does\n", ind, r1);
        else
            sb_add(o, "%s  every divergent token came from a %s %s %s, none %s%s\n", ind,
                   FNAME[p->best.f], p->best.op == OP_GE ? ">=" : "<=", G(p->best.v),
                   p->best.op == OP_GE ? "below" : "above",
                   p->best.lo != p->best.hi ? "" : "");
        if (p->best.op != OP_EQ && p->best.lo != p->best.hi)
            sb_add(o, "%s  (any threshold in %s..%s separates this data)\n", ind,
                   G(p->best.lo), G(p->best.hi));
        if (p->fr[p->best.f].seq_perfect)
            sb_add(o, "%s  per sequence: a sequence diverges iff %s\n", ind,
                   rule_str(r2, &p->fr[p->best.f].seq));
        break;
    case LV_SEQS:
        rule_str(r1, &p->best);
        sb_add(o, "%srule: divergence only where %s\n", ind, rule_words(w, &p->best));
        sb_add(o, "%s  per sequence: a sequence diverges iff %s (checked on its tokens up to its "
               "first divergence), none other\n", ind, r1);
        if (p->best.op != OP_EQ && p->best.lo != p->best.hi)
            sb_add(o, "%s  (any threshold in %s..%s separates this data)\n", ind,
                   G(p->best.lo), G(p->best.hi));
        if (p->fr[p->best.f].one_sided)
            sb_add(o, "%s  per token: every divergent token has %s; %s clean tokens do too\n",
                   ind, rule_str(r2, &p->fr[p->best.f].os), G(p->fr[p->best.f].os_clean));
        if (p->conj && (p->c1.f == p->best.f || p->c2.f == p->best.f))
            sb_add(o, "%s  per token: divergent iff %s and %s\n", ind, rule_str(r1, &p->c1),
                   rule_str(r2, &p->c2));
        break;
    case LV_CONJ:
        sb_add(o, "%srule: divergence only where %s and %s\n", ind, rule_str(r1, &p->c1),
               rule_str(r2, &p->c2));
        sb_add(o, "%s  every divergent token has %s; among those, exactly the ones with %s "
               "diverge\n", ind, r1, r2);
        break;
    case LV_ONESIDED:
        sb_add(o, "%srule: no perfect separation; every divergent token has %s (%.0f%% of "
               "the tokens with it diverge)\n", ind, rule_str(r1, &p->best),
               100 * p->fr[p->best.f].os_prec);
        break;
    case LV_ASSOC:
        if (p->best.f >= 0)
            sb_add(o, "%srule: none separates; strongest association: %.1f%% divergent at %s "
                   "vs %.1f%% otherwise\n", ind, 100 * p->fr[p->best.f].rate_in,
                   rule_str(r1, &p->best), 100 * p->fr[p->best.f].rate_out);
        else
            sb_add(o, "%srule: none found\n", ind);
        break;
    default: break;
    }
    if (p->level == LV_TOKENS || p->level == LV_SEQS) {
        /* mechanism fields that every divergent token also has: the data cannot tell them
         * from the rule, the mechanism may need both */
        static const int mech[] = {FS_SLOT, FS_FIRST_CHUNK, FS_PREV_TENANT, FS_FROM_SNAPSHOT,
                                   FS_PREEMPTIONS};
        for (size_t i = 0; i < sizeof mech / sizeof mech[0]; i++) {
            int f = mech[i];
            if (f == p->best.f || !p->fr[f].one_sided || p->fr[f].os.op != OP_EQ) continue;
            sb_add(o, "%s  also: every divergent token has %s (%s clean tokens too), so the data "
                   "fit %s and %s as well\n", ind, rule_str(r1, &p->fr[f].os),
                   G(p->fr[f].os_clean), rule_str(r2, &p->fr[f].os), rule_str(w, &p->best));
        }
    }
    if (p->best.f == FS_SLOT && p->best.op == OP_GE && p->level <= LV_ONESIDED &&
        p->level >= LV_TOKENS) {
        explain_threshold(o, ind, p->best.v, p->slot_stride, p->state_elems, p->num_slots);
        print_share_check(o, ind, p);
    }
    if (detail && p->level != LV_ALL) print_field_table(o, ind, p);
}

/* ---- single trace ------------------------------------------------------------------- */

static void quiet_h5(H5E_auto2_t *f, void **d) {
    H5Eget_auto2(H5E_DEFAULT, f, d);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void loud_h5(H5E_auto2_t f, void *d) {
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, f, d);
}

static int analyse_trace_loc(hid_t file, const char *path, FILE *out, ls_err *err) {
    trace_data d;
    if (read_trace(file, path, &d, err)) return -1;
    point_res p;
    int rc = analyse_point(&d, NULL, &p, err);
    if (!rc && out) {
        sbuf o = {0};
        sb_add(&o, "trace %s: %s tokens in %s sequences, %s steps, %s Mamba slots (stride %s, "
               "state %s elements)\n", path, G(d.n), G(d.n_seqs), G(d.steps),
               G(d.num_slots), G(d.slot_stride), G(d.state_elems));
        print_point(&o, "", &p, 1);
        if (o.oom) rc = ls_errf(err, "out of memory");
        else fputs(sb_str(&o), out);
        free(o.s);
    }
    trace_data_free(&d);
    return rc;
}

static int open_checked(const char *path, unsigned mode, hid_t *f, char **format, ls_err *err) {
    FILE *probe = fopen(path, "rb");
    if (!probe) return ls_errf(err, "cannot open '%s': %s", path, strerror(errno));
    fclose(probe);
    if (H5Fis_hdf5(path) <= 0) return ls_errf(err, "'%s' is not an HDF5 file", path);
    *f = H5Fopen(path, mode, H5P_DEFAULT);
    if (*f < 0) return ls_errf(err, "cannot open '%s': damaged or incomplete HDF5 file", path);
    *format = attr_str(*f, "format");
    if (!*format) {
        H5Fclose(*f);
        *f = -1;
        return ls_errf(err, "'%s' is not a lockstep trace or sweep (no 'format' attribute)", path);
    }
    return 0;
}

int ls_analyse_trace_file(const char *path, FILE *out, ls_err *err) {
    H5E_auto2_t of;
    void *od;
    quiet_h5(&of, &od);
    hid_t f = -1;
    char *format = NULL;
    int rc = open_checked(path, H5F_ACC_RDONLY, &f, &format, err);
    if (!rc && strcmp(format, "lockstep-trace"))
        rc = ls_errf(err, "'%s' is not a lockstep trace (format '%.64s')", path, format);
    if (!rc) rc = analyse_trace_loc(f, path, out, err);
    free(format);
    if (f >= 0) H5Fclose(f);
    loud_h5(of, od);
    return rc;
}

/* ---- sweeps ------------------------------------------------------------------------- */

typedef struct spoint {
    char name[16];
    int64_t index;
    char *assign;          /* "k=v\n..." */
    int ok;
    char *error;
    point_res r;
    char rule[128];
    int64_t threshold;
} spoint;

typedef struct sweep {
    char *spec_path;
    int64_t n_points;      /* in the whole spec */
    char **axes;
    int n_axes;
    spoint *pts;
    int64_t np;
} sweep;

static void sweep_free(sweep *s) {
    free(s->spec_path);
    for (int i = 0; i < s->n_axes; i++) free(s->axes[i]);
    free(s->axes);
    for (int64_t i = 0; i < s->np; i++) {
        free(s->pts[i].assign);
        free(s->pts[i].error);
    }
    free(s->pts);
    memset(s, 0, sizeof *s);
}

/* The value a point assigns to `key` (copied into buf), or "" if none. */
static const char *assign_value(const char *assign, const char *key, char *buf, size_t n) {
    size_t kl = strlen(key);
    const char *p = assign ? assign : "";
    buf[0] = 0;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t ll = e ? (size_t)(e - p) : strlen(p);
        if (ll > kl && !strncmp(p, key, kl) && p[kl] == '=') {
            size_t vl = ll - kl - 1;
            if (vl >= n) vl = n - 1;
            memcpy(buf, p + kl + 1, vl);
            buf[vl] = 0;
            return buf;
        }
        p += ll + (e ? 1 : 0);
    }
    return buf;
}

typedef struct iter_ctx {
    char **names;
    int64_t n, cap;
    int oom;
} iter_ctx;

static herr_t collect_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g;
    (void)info;
    iter_ctx *c = data;
    if (c->n == c->cap) {
        int64_t cap = c->cap ? c->cap * 2 : 64;
        char **nn = realloc(c->names, (size_t)cap * sizeof *nn);
        if (!nn) {
            c->oom = 1;
            return -1;
        }
        c->names = nn;
        c->cap = cap;
    }
    if (!(c->names[c->n] = strdup(name))) {
        c->oom = 1;
        return -1;
    }
    c->n++;
    return 0;
}

static int read_sweep_meta(hid_t f, const char *path, sweep *s, ls_err *err) {
    memset(s, 0, sizeof *s);
    s->spec_path = attr_str(f, "spec_path");
    s->n_points = -1;
    attr_i64(f, "n_points", &s->n_points);
    char *axes = attr_str(f, "axes");
    if (axes) {
        for (char *p = axes; *p;) {
            char *e = strchr(p, '\n');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l) {
                char **na = realloc(s->axes, (size_t)(s->n_axes + 1) * sizeof *na);
                if (!na) break;
                s->axes = na;
                s->axes[s->n_axes] = strndup(p, l);
                if (s->axes[s->n_axes]) s->n_axes++;
            }
            p += l + (e ? 1 : 0);
        }
        free(axes);
    }
    if (H5Lexists(f, "points", H5P_DEFAULT) <= 0)
        return ls_errf(err, "'%s': sweep file has no /points group", path);
    hid_t g = H5Gopen2(f, "points", H5P_DEFAULT);
    if (g < 0) return ls_errf(err, "'%s': cannot open /points", path);
    iter_ctx c = {0};
    herr_t it = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_cb, &c);
    H5Gclose(g);
    if (it < 0 || c.oom) {
        for (int64_t i = 0; i < c.n; i++) free(c.names[i]);
        free(c.names);
        return ls_errf(err, "'%s': cannot list /points%s", path, c.oom ? ": out of memory" : "");
    }
    s->pts = calloc((size_t)c.n + 1, sizeof *s->pts);
    if (!s->pts) {
        for (int64_t i = 0; i < c.n; i++) free(c.names[i]);
        free(c.names);
        return ls_errf(err, "out of memory");
    }
    for (int64_t i = 0; i < c.n; i++) {
        spoint *p = &s->pts[s->np++];
        snprintf(p->name, sizeof p->name, "%.15s", c.names[i]);
        p->index = i;
        free(c.names[i]);
    }
    free(c.names);
    return 0;
}

/* Pass over all points: analyse with the hint (NULL in the first pass). */
static int analyse_points(hid_t f, const char *path, sweep *s, const hint *h, ls_err *err) {
    hid_t pg = H5Gopen2(f, "points", H5P_DEFAULT);
    if (pg < 0) return ls_errf(err, "'%s': cannot open /points", path);
    int rc = 0;
    for (int64_t i = 0; i < s->np && !rc; i++) {
        spoint *p = &s->pts[i];
        hid_t g = H5Gopen2(pg, p->name, H5P_DEFAULT);
        if (g < 0) {
            rc = ls_errf(err, "'%s': cannot open /points/%s", path, p->name);
            break;
        }
        if (!h) {
            attr_i64(g, "index", &p->index);
            free(p->assign);
            p->assign = attr_str(g, "assignments");
            char *st = attr_str(g, "status");
            free(p->error);
            p->error = attr_str(g, "error");
            p->ok = (!st || !strcmp(st, "ok")) && H5Lexists(g, "tokens", H5P_DEFAULT) > 0;
            free(st);
        }
        if (p->ok) {
            char where[512];
            snprintf(where, sizeof where, "'%s' /points/%s", path, p->name);
            trace_data d;
            if (read_trace(g, where, &d, err)) rc = -1;
            else {
                rc = analyse_point(&d, h, &p->r, err);
                trace_data_free(&d);
            }
        }
        H5Gclose(g);
    }
    H5Gclose(pg);
    return rc;
}

/* The field (and operator) that explains most divergent points; its threshold is the
 * intersection of the points' separating intervals. */
static void consolidate(const sweep *s, hint *h, int *n_explained, int *n_div) {
    int count[NF][3];
    memset(count, 0, sizeof count);
    *n_div = 0;
    for (int64_t i = 0; i < s->np; i++) {
        const point_res *r = &s->pts[i].r;
        if (!s->pts[i].ok || r->dtok == 0 || r->level == LV_ALL) continue;
        (*n_div)++;
        for (int f = 0; f < NF; f++) {
            const field_res *fr = &r->fr[f];
            int seen[3] = {0, 0, 0};
            if (fr->tok_perfect) seen[fr->tok.op] = 1;
            if (fr->seq_perfect) seen[fr->seq.op] = 1;
            if (r->conj && r->c1.f == f) seen[r->c1.op] = 1;
            if (r->conj && r->c2.f == f) seen[r->c2.op] = 1;
            for (int o = 0; o < 3; o++) count[f][o] += seen[o];
        }
    }
    h->f = -1;
    int best = 0;
    for (int f = 0; f < NF; f++)
        for (int o = 0; o < 3; o++)
            if (count[f][o] > best) {
                best = count[f][o];
                h->f = f;
                h->op = (rop)o;
            }
    *n_explained = best;
    if (h->f < 0) return;
    /* intersect the intervals / collect the values */
    int64_t lo = INT64_MIN, hi = INT64_MAX, v = INT64_MIN;
    int consistent = 1;
    int64_t stride = -1, elems = -1, slots = -1;
    for (int64_t i = 0; i < s->np; i++) {
        const point_res *r = &s->pts[i].r;
        if (!s->pts[i].ok || r->dtok == 0 || r->level == LV_ALL) continue;
        const field_res *fr = &r->fr[h->f];
        const rule *ru = fr->tok_perfect && fr->tok.op == h->op ? &fr->tok
                         : fr->seq_perfect && fr->seq.op == h->op ? &fr->seq
                         : r->conj && r->c1.f == h->f && r->c1.op == h->op ? &r->c1
                         : r->conj && r->c2.f == h->f && r->c2.op == h->op ? &r->c2 : NULL;
        if (!ru) continue;
        if (stride < 0) stride = r->slot_stride, elems = r->state_elems, slots = r->num_slots;
        if (h->op == OP_EQ) {
            if (v == INT64_MIN) v = ru->v;
            else if (v != ru->v) consistent = 0;
        } else {
            int64_t l = ru->lo, u = ru->hi;
            if (l > lo) lo = l;
            if (u < hi) hi = u;
        }
    }
    if (h->op == OP_EQ) {
        h->T = h->lo = h->hi = consistent ? v : -1;
        h->valid = consistent;
    } else if (lo <= hi) {
        h->valid = 1;
        h->lo = lo;
        h->hi = hi;
        h->T = h->f == FS_SLOT ? explained_threshold(lo, hi, stride, elems, slots)
                               : (h->op == OP_GE ? hi : lo);
    } else {
        h->lo = lo;
        h->hi = hi;
        h->T = -1;  /* the points disagree on the threshold */
    }
}

typedef struct axis_res {
    int effect;            /* 0 none, 1 magnitude, 2 structure */
    int groups, struct_groups, mag_groups;
    char where[256];       /* the other axes' values of the first structure-changing groups */
} axis_res;

static const char *effect_name(int e) {
    return e == 2 ? "structure" : e == 1 ? "magnitude" : "none";
}

/* Points that differ only in axis `a` form a group. */
static void axis_effects(const sweep *s, int a, axis_res *ar, char (*sig)[128]) {
    memset(ar, 0, sizeof *ar);
    int64_t np = s->np;
    int8_t *done = calloc((size_t)np + 1, 1);
    char *ki = malloc(4096), *kj = malloc(4096), vb[256];
    if (!done || !ki || !kj) goto out;
    for (int64_t i = 0; i < np; i++) {
        if (done[i] || !s->pts[i].ok) continue;
        /* the key: every other axis' value */
        ki[0] = 0;
        for (int b = 0; b < s->n_axes; b++) {
            if (b == a) continue;
            size_t l = strlen(ki);
            snprintf(ki + l, 4096 - l, "%s\n", assign_value(s->pts[i].assign, s->axes[b], vb, sizeof vb));
        }
        int members = 0, sdiff = 0, mdiff = 0;
        int64_t first = i;
        for (int64_t j = i; j < np; j++) {
            if (done[j] || !s->pts[j].ok) continue;
            kj[0] = 0;
            for (int b = 0; b < s->n_axes; b++) {
                if (b == a) continue;
                size_t l = strlen(kj);
                snprintf(kj + l, 4096 - l, "%s\n", assign_value(s->pts[j].assign, s->axes[b], vb, sizeof vb));
            }
            if (strcmp(ki, kj)) continue;
            done[j] = 1;
            members++;
            if (j == first) continue;
            if (strcmp(sig[j], sig[first])) sdiff = 1;
            const point_res *x = &s->pts[j].r, *y = &s->pts[first].r;
            if (x->dtok * y->tokens != y->dtok * x->tokens || x->dseqs * y->seqs != y->dseqs * x->seqs)
                mdiff = 1;
        }
        if (members < 2) continue;
        ar->groups++;
        if (sdiff && ar->struct_groups < 3) {
            size_t l = strlen(ar->where);
            char sa[200] = "";
            for (int b = 0, k = 0; b < s->n_axes; b++) {
                if (b == a) continue;
                size_t sl = strlen(sa);
                snprintf(sa + sl, sizeof sa - sl, "%s%s=%s", k++ ? " " : "", s->axes[b],
                         assign_value(s->pts[first].assign, s->axes[b], vb, sizeof vb));
            }
            snprintf(ar->where + l, sizeof ar->where - l, "%s%s", l ? "; " : "", sa);
        }
        if (sdiff) ar->struct_groups++;
        else if (mdiff) ar->mag_groups++;
    }
    ar->effect = ar->struct_groups ? 2 : ar->mag_groups ? 1 : 0;
out:
    free(done);
    free(ki);
    free(kj);
}

/* Numeric value of a string, for ordering axis values; NAN if not a number. */
static double numval(const char *s) {
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    return (e != s && !*e && !errno) ? v : (double)NAN;
}

/* "2, 3, 4" from the distinct values of axis a at points where pick(point) holds. */
static void axis_values(const sweep *s, int a, int want_div, int exclusive, sbuf *o,
                        double *vmin, double *vmax, int *count) {
    char vb[256], vb2[256];
    *vmin = INFINITY;
    *vmax = -INFINITY;
    *count = 0;
    for (int64_t i = 0; i < s->np; i++) {
        if (!s->pts[i].ok) continue;
        assign_value(s->pts[i].assign, s->axes[a], vb, sizeof vb);
        int dup = 0;
        for (int64_t j = 0; j < i && !dup; j++)
            dup = s->pts[j].ok && !strcmp(assign_value(s->pts[j].assign, s->axes[a], vb2, sizeof vb2), vb);
        if (dup) continue;
        /* any point with this value diverges? all clean? */
        int any_div = 0, any_clean = 0;
        for (int64_t j = 0; j < s->np; j++) {
            if (!s->pts[j].ok) continue;
            if (strcmp(assign_value(s->pts[j].assign, s->axes[a], vb2, sizeof vb2), vb)) continue;
            if (s->pts[j].r.dtok > 0) any_div = 1;
            else any_clean = 1;
        }
        int pick = want_div ? (any_div && (!exclusive || !any_clean)) : (!any_div);
        if (!pick) continue;
        sb_add(o, "%s%s", *count ? ", " : "", vb[0] ? vb : "(base)");
        (*count)++;
        double v = numval(vb);
        if (v < *vmin) *vmin = v;
        if (v > *vmax) *vmax = v;
    }
}

/* ---- writing /analysis -------------------------------------------------------------- */

typedef struct apoint_row {
    int64_t index, divergent_tokens, tokens, divergent_seqs, seqs;
    double rate;
    int64_t onset_step, period;
    char rule[128];
    int64_t threshold;
} apoint_row;

typedef struct aaxis_row {
    char axis[64];
    char effect[16];
} aaxis_row;

static hid_t fstr_type(size_t n) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, n) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
        H5Tset_cset(t, H5T_CSET_ASCII) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static hid_t points_type(int file) {
    size_t sz = file ? 8 * 5 + 8 + 8 * 2 + 128 + 8 : sizeof(apoint_row);
    hid_t t = H5Tcreate(H5T_COMPOUND, sz), s = fstr_type(128);
    if (t < 0 || s < 0) goto bad;
    hid_t I = file ? H5T_STD_I64LE : H5T_NATIVE_INT64, D = file ? H5T_IEEE_F64LE : H5T_NATIVE_DOUBLE;
    size_t o = 0;
#define INS(name, ty, sz_) \
    if (H5Tinsert(t, #name, file ? o : HOFFSET(apoint_row, name), ty) < 0) goto bad; \
    o += sz_
    INS(index, I, 8); INS(divergent_tokens, I, 8); INS(tokens, I, 8);
    INS(divergent_seqs, I, 8); INS(seqs, I, 8); INS(rate, D, 8); INS(onset_step, I, 8);
    INS(period, I, 8); INS(rule, s, 128); INS(threshold, I, 8);
#undef INS
    H5Tclose(s);
    return t;
bad:
    if (s >= 0) H5Tclose(s);
    if (t >= 0) H5Tclose(t);
    return -1;
}

static hid_t axes_type(int file) {
    hid_t t = H5Tcreate(H5T_COMPOUND, file ? 80 : sizeof(aaxis_row));
    hid_t s64 = fstr_type(64), s16 = fstr_type(16);
    int ok = t >= 0 && s64 >= 0 && s16 >= 0 &&
             H5Tinsert(t, "axis", file ? 0 : HOFFSET(aaxis_row, axis), s64) >= 0 &&
             H5Tinsert(t, "effect", file ? 64 : HOFFSET(aaxis_row, effect), s16) >= 0;
    if (s64 >= 0) H5Tclose(s64);
    if (s16 >= 0) H5Tclose(s16);
    if (!ok && t >= 0) {
        H5Tclose(t);
        t = -1;
    }
    return t;
}

static int write_table(hid_t g, const char *name, hid_t mt, hid_t ft, const void *rows, int64_t n) {
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = H5Screate_simple(1, dims, NULL);
    if (sp < 0) return -1;
    hid_t ds = H5Dcreate2(g, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ds >= 0 && (n == 0 || H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) >= 0) ? 0 : -1;
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    H5Sclose(sp);
    return rc;
}

static int write_vstr_attr(hid_t loc, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = -1;
    int rc = -1;
    if (t < 0 || sp < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)
        goto out;
    if ((a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto out;
    if (H5Awrite(a, t, &v) < 0) goto out;
    rc = 0;
out:
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return rc;
}

static int write_i64_attr(hid_t loc, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR), a = -1;
    int rc = -1;
    if (sp < 0) return -1;
    if ((a = H5Acreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
        H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0)
        rc = 0;
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    H5Sclose(sp);
    return rc;
}

static int copy_file(const char *from, const char *to, ls_err *err) {
    int in = open(from, O_RDONLY);
    if (in < 0) return ls_errf(err, "cannot read '%s': %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return ls_errf(err, "cannot create '%s': %s", to, strerror(e));
    }
    char *buf = malloc(1 << 20);
    int rc = buf ? 0 : ls_errf(err, "out of memory");
    while (!rc) {
        ssize_t n = read(in, buf, 1 << 20);
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = ls_errf(err, "reading '%s': %s", from, strerror(errno));
            break;
        }
        if (n == 0) break;
        for (ssize_t o = 0; o < n && !rc;) {
            ssize_t w = write(out, buf + o, (size_t)(n - o));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) rc = ls_errf(err, "writing '%s': %s", to, strerror(errno));
            else o += w;
        }
    }
    free(buf);
    close(in);
    if (close(out) && !rc) rc = ls_errf(err, "writing '%s': %s", to, strerror(errno));
    return rc;
}

static int fsync_path(const char *p, int dir) {
    int fd = open(p, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Copies the sweep file, replaces /analysis in the copy, fsyncs it and renames it over
 * the original. */
static int write_analysis(const char *path, const sweep *s, const char *verdict,
                          const char *lever, const char *rule_text, int64_t threshold,
                          const axis_res *ar, ls_err *err) {
    char tmp[4096], dir[4096];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else snprintf(dir, sizeof dir, ".");
    if (slash == path) snprintf(dir, sizeof dir, "/");
    snprintf(tmp, sizeof tmp, "%s/.%s.analyse.tmp.%ld", dir, base, (long)getpid());
    if (copy_file(path, tmp, err)) {
        unlink(tmp);
        return -1;
    }
    hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT), g = -1;
    apoint_row *rows = calloc((size_t)s->np + 1, sizeof *rows);
    aaxis_row *arows = calloc((size_t)s->n_axes + 1, sizeof *arows);
    hid_t pm = points_type(0), pf = points_type(1), am = axes_type(0), af = axes_type(1);
    int rc = -1;
    const char *what = "opening the copy";
    if (f < 0 || !rows || !arows || pm < 0 || pf < 0 || am < 0 || af < 0) goto out;
    what = "replacing /analysis";
    if (H5Lexists(f, "analysis", H5P_DEFAULT) > 0 && H5Ldelete(f, "analysis", H5P_DEFAULT) < 0)
        goto out;
    if ((g = H5Gcreate2(f, "analysis", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto out;
    what = "writing /analysis attributes";
    if (write_vstr_attr(g, "verdict_text", verdict) || write_vstr_attr(g, "lever", lever) ||
        write_vstr_attr(g, "rule", rule_text) || write_i64_attr(g, "threshold", threshold))
        goto out;
    for (int64_t i = 0; i < s->np; i++) {
        const spoint *p = &s->pts[i];
        apoint_row *r = &rows[i];
        r->index = p->index;
        if (!p->ok) {
            r->divergent_tokens = r->tokens = r->divergent_seqs = r->seqs = -1;
            r->rate = (double)NAN;
            r->onset_step = r->period = r->threshold = -1;
            snprintf(r->rule, sizeof r->rule, "error");
            continue;
        }
        r->divergent_tokens = p->r.dtok;
        r->tokens = p->r.tokens;
        r->divergent_seqs = p->r.dseqs;
        r->seqs = p->r.seqs;
        r->rate = ratio(p->r.dtok, p->r.tokens);
        r->onset_step = p->r.onset_step;
        r->period = p->r.period;
        memcpy(r->rule, p->rule, sizeof r->rule);
        r->threshold = p->threshold;
    }
    for (int a = 0; a < s->n_axes; a++) {
        snprintf(arows[a].axis, sizeof arows[a].axis, "%.63s", s->axes[a]);
        snprintf(arows[a].effect, sizeof arows[a].effect, "%s", effect_name(ar[a].effect));
    }
    what = "writing /analysis/points";
    if (write_table(g, "points", pm, pf, rows, s->np)) goto out;
    what = "writing /analysis/axes";
    if (write_table(g, "axes", am, af, arows, s->n_axes)) goto out;
    rc = 0;
out:
    if (rc) {
        char buf[256];
        const char *why = ls_h5_reason(buf);
        ls_errf(err, "cannot write the analysis into '%s': %s%s%s", path, what,
                why[0] ? ": " : "", why);
    }
    if (g >= 0 && H5Gclose(g) < 0 && !rc) rc = ls_errf(err, "'%s': closing /analysis", path);
    if (f >= 0 && H5Fclose(f) < 0 && !rc) rc = ls_errf(err, "'%s': closing the copy", path);
    if (pm >= 0) H5Tclose(pm);
    if (pf >= 0) H5Tclose(pf);
    if (am >= 0) H5Tclose(am);
    if (af >= 0) H5Tclose(af);
    free(rows);
    free(arows);
    if (!rc && fsync_path(tmp, 0))
        rc = ls_errf(err, "cannot fsync '%s': %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path))
        rc = ls_errf(err, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (rc) unlink(tmp);
    else fsync_path(dir, 1);
    return rc;
}

/* ---- the sweep verdict ------------------------------------------------------------- */

static void short_assign(char *out, size_t n, const char *assign) {
    size_t o = 0;
    out[0] = 0;
    for (const char *p = assign ? assign : ""; *p && o + 2 < n; p++) out[o++] = *p == '\n' ? ' ' : *p;
    out[o] = 0;
    if (!o) snprintf(out, n, "(base)");
}

static int analyse_sweep(hid_t f, const char *path, sweep *s, sbuf *o, char *lever_out,
                         size_t lever_n, char *rule_out, int64_t *thr_out, axis_res **ar_out,
                         ls_err *err) {
    *ar_out = NULL;
    if (analyse_points(f, path, s, NULL, err)) return -1;
    hint h = {-1, OP_EQ, -1, 0, 0, 0};
    int n_expl = 0, n_div = 0;
    consolidate(s, &h, &n_expl, &n_div);
    if (h.f >= 0 && analyse_points(f, path, s, &h, err)) return -1;
    int64_t n_ok = 0, n_err = 0;
    for (int64_t i = 0; i < s->np; i++) {
        spoint *p = &s->pts[i];
        if (!p->ok) {
            n_err++;
            snprintf(p->rule, sizeof p->rule, "error");
            p->threshold = -1;
            continue;
        }
        n_ok++;
        point_rule_text(p->rule, &p->r);
        p->threshold = point_threshold(&p->r);
    }
    /* structure signatures: the rule text, with the threshold blanked where it agrees with
     * the sweep's (a threshold the data pins down differently is a different structure) */
    char (*sig)[128] = calloc((size_t)s->np + 1, sizeof *sig);
    axis_res *ar = calloc((size_t)s->n_axes + 1, sizeof *ar);
    if (!sig || !ar) {
        free(sig);
        free(ar);
        return ls_errf(err, "out of memory");
    }
    for (int64_t i = 0; i < s->np; i++) {
        const spoint *p = &s->pts[i];
        const point_res *r = &p->r;
        if (!p->ok) continue;
        if (r->level == LV_NONE || r->level == LV_ALL || r->level == LV_ASSOC)
            snprintf(sig[i], 128, "%s", r->level == LV_NONE ? "none" : r->level == LV_ALL ? "all" : "unexplained");
        else {
            int agree = h.f >= 0 && r->best.f == h.f && r->best.op == h.op &&
                        (h.op == OP_EQ ? r->best.v == h.T
                                       : (h.T >= r->best.lo && h.T <= r->best.hi));
            if (agree) snprintf(sig[i], 128, "%s %d", FNAME[h.f], (int)h.op);
            else snprintf(sig[i], 128, "%s", p->rule);
        }
    }
    int lever = -1;
    double lever_frac = 0;
    for (int a = 0; a < s->n_axes; a++) {
        axis_effects(s, a, &ar[a], sig);
        double fr = ar[a].groups ? (double)ar[a].struct_groups / ar[a].groups : 0;
        if (ar[a].effect == 2 && (lever < 0 || fr > lever_frac + 1e-12)) {
            lever = a;
            lever_frac = fr;
        }
    }
    free(sig);

    /* ---- the text ---- */
    char rs[64], w[192], sa[512];
    sb_add(o, "sweep %s: %s point%s", s->spec_path ? s->spec_path : path, G(s->np),
           s->np == 1 ? "" : "s");
    if (s->n_points >= 0 && s->n_points != s->np)
        sb_add(o, " of %s (partial)", G(s->n_points));
    if (s->n_axes) {
        sb_add(o, " over ");
        for (int a = 0; a < s->n_axes; a++) sb_add(o, "%s%s", a ? " x " : "", s->axes[a]);
    }
    sb_add(o, "; %s with divergence", G(n_div));
    if (n_err) sb_add(o, ", %s failed", G(n_err));
    sb_add(o, "\n");
    rule hr = {h.f, h.op, h.T, h.lo, h.hi};
    rule_out[0] = 0;
    *thr_out = -1;
    if (n_div == 0) {
        sb_add(o, "rule: no point diverges\n");
    } else if (h.f < 0) {
        sb_add(o, "rule: no provenance field separates divergent from clean tokens in any point\n");
    } else {
        int thr_ok = h.valid;
        if (thr_ok) {
            rule_str(rs, &hr);
            snprintf(rule_out, 128, "%s", rs);
            sb_add(o, "rule: divergence only where %s\n  (this rule explains %d of %d divergent "
                   "points)\n", rule_words(w, &hr), n_expl, n_div);
            if (h.op != OP_EQ && !field_is_flag(h.f)) {
                *thr_out = h.T;
                if (h.lo != h.hi)
                    sb_add(o, "  (any threshold in %s..%s separates every point; %s is the one "
                           "arithmetic explains)\n", G(h.lo), G(h.hi), G(h.T));
                if (h.f == FS_SLOT)
                    sb_add(o, "  every divergent token came from a slot %s %s, none %s\n",
                           h.op == OP_GE ? ">=" : "<=", G(h.T), h.op == OP_GE ? "below" : "above");
            }
        } else {
            sb_add(o, "rule: %s explains %d of %d divergent points, but the points disagree on "
                   "the %s\n", FNAME[h.f], n_expl, n_div,
                   h.op == OP_EQ ? "value" : "threshold (their intervals do not overlap)");
        }
        if (h.f == FS_SLOT && h.op == OP_GE && h.valid) {
            int64_t stride = -1, elems = -1, slots = -1;
            for (int64_t i = 0; i < s->np && stride < 0; i++)
                if (s->pts[i].ok && s->pts[i].r.dtok) {
                    stride = s->pts[i].r.slot_stride;
                    elems = s->pts[i].r.state_elems;
                    slots = s->pts[i].r.num_slots;
                }
            explain_threshold(o, "  ", h.T, stride, elems, slots);
        }
        /* the rule as a point-level predictor: points where some token meets it diverge */
        if (thr_ok) {
            int64_t md = 0, mc = 0, xd = 0, xc = 0;
            for (int64_t i = 0; i < s->np; i++) {
                const point_res *r = &s->pts[i].r;
                if (!s->pts[i].ok) continue;
                int meets = r->hint_seqs > 0, div = r->dtok > 0;
                md += meets && div;
                mc += meets && !div;
                xd += !meets && div;
                xc += !meets && !div;
            }
            if (mc == 0 && xd == 0)
                sb_add(o, "  across the grid it predicts every point: the %s point%s where some "
                       "sequence meets it diverge%s, the %s where none does stay%s clean\n",
                       G(md), md == 1 ? "" : "s", md == 1 ? "s" : "", G(xc),
                       xc == 1 ? "s" : "");
            else
                sb_add(o, "  as a point-level predictor: %s points meet it and diverge, %s meet it "
                       "and stay clean, %s diverge without meeting it, %s neither\n",
                       G(md), G(mc), G(xd), G(xc));
        }
    }
    if (lever >= 0) {
        snprintf(lever_out, lever_n, "%s", s->axes[lever]);
        sb_add(o, "lever: %s", s->axes[lever]);
        if (h.f >= 0 && rule_out[0]) sb_add(o, ": divergence appears only when %s", rule_words(w, &hr));
        sbuf dv = {0}, cv = {0};
        double dmin, dmax, cmin, cmax;
        int nd, nc;
        axis_values(s, lever, 1, 0, &dv, &dmin, &dmax, &nd);
        axis_values(s, lever, 0, 0, &cv, &cmin, &cmax, &nc);
        if (nd && nc && isfinite(dmax) && isfinite(cmin) && dmax < cmin)
            sb_add(o, ", which happens only at %s <= %g (none at %s)", s->axes[lever], dmax,
                   sb_str(&cv));
        else if (nd && nc && isfinite(dmin) && isfinite(cmax) && dmin > cmax)
            sb_add(o, ", which happens only at %s >= %g (none at %s)", s->axes[lever], dmin,
                   sb_str(&cv));
        else if (nd && nc)
            sb_add(o, ": divergent at %s = %s; never at %s", s->axes[lever], sb_str(&dv), sb_str(&cv));
        else if (nd)
            sb_add(o, " (divergent at %s = %s, with the rule changing)", s->axes[lever], sb_str(&dv));
        sb_add(o, "\n");
        free(dv.s);
        free(cv.s);
    } else {
        lever_out[0] = 0;
        sb_add(o, "lever: none: no axis changes the failure's structure%s\n",
               s->n_axes ? "" : " (no grid axes)");
    }
    if (s->n_axes) sb_add(o, "axes:\n");
    for (int a = 0; a < s->n_axes; a++) {
        sb_add(o, "  %s: %s", s->axes[a], effect_name(ar[a].effect));
        if (ar[a].effect == 2)
        {
            sb_add(o, " (changing it alone changes the rule or whether anything diverges, in %d "
                   "of %d groups", ar[a].struct_groups, ar[a].groups);
            if (ar[a].struct_groups < ar[a].groups && ar[a].where[0])
                sb_add(o, ": at %s%s", ar[a].where, ar[a].struct_groups > 3 ? "; ..." : "");
            if (ar[a].mag_groups)
                sb_add(o, "; only the rate in %d more", ar[a].mag_groups);
            sb_add(o, ")");
        }
        else if (ar[a].effect == 1)
            sb_add(o, " (same rule; the divergence rate changes in %d of %d groups)",
                   ar[a].mag_groups, ar[a].groups);
        else if (ar[a].groups)
            sb_add(o, " (no change in %d groups)", ar[a].groups);
        else
            sb_add(o, " (no two points differ in this axis alone)");
        sb_add(o, "\n");
    }
    sb_add(o, "points:\n");
    for (int64_t i = 0; i < s->np; i++) {
        const spoint *p = &s->pts[i];
        short_assign(sa, sizeof sa, p->assign);
        if (!p->ok) {
            sb_add(o, "  %s %s: error: %s\n", p->name, sa, p->error ? p->error : "?");
            continue;
        }
        const point_res *r = &p->r;
        sb_add(o, "  %s %s: ", p->name, sa);
        if (r->dtok == 0) {
            sb_add(o, "no divergence (%s tokens", G(r->tokens));
            if (h.f == FS_SLOT && h.op == OP_GE && h.valid)
                sb_add(o, "; highest slot used %s%s", G(r->max_slot_seen),
                       r->max_slot_seen < h.T ? " < threshold" : "");
            sb_add(o, ")\n");
            continue;
        }
        sb_add(o, "%s/%s tokens (%.1f%%), %s/%s seqs, onset step %s, period %s, %s [%s]\n",
               G(r->dtok), G(r->tokens), 100 * ratio(r->dtok, r->tokens),
               G(r->dseqs), G(r->seqs), G(r->onset_step),
               r->period >= 0 ? G(r->period) : "-", p->rule, level_name(r->level));
        if (r->best.f == FS_SLOT && r->best.op == OP_GE && r->level >= LV_TOKENS &&
            r->level <= LV_ONESIDED) {
            if (!h.valid)
                explain_threshold(o, "      ", r->best.v, r->slot_stride, r->state_elems,
                                  r->num_slots);
            print_share_check(o, "      ", r);
        }
    }
    *ar_out = ar;
    return 0;
}

/* Analyses a sweep; writes /analysis into the file when `allow_write` and every point of
 * the spec is present (not a shard, not a partial run). Returns 1 if written, 0 if only
 * printed, -1 on error. */
static int sweep_analysis(const char *path, FILE *out, int allow_write, ls_err *err) {
    H5E_auto2_t of;
    void *od;
    quiet_h5(&of, &od);
    hid_t f = -1;
    char *format = NULL, *shard = NULL;
    sweep s = {0};
    sbuf o = {0};
    axis_res *ar = NULL;
    char lever[256] = "", rule_text[128] = "";
    int64_t thr = -1;
    int rc = open_checked(path, H5F_ACC_RDONLY, &f, &format, err);
    if (!rc && strcmp(format, "lockstep-sweep"))
        rc = ls_errf(err, "'%s' is not a lockstep sweep (format '%.64s')", path, format);
    if (!rc) rc = read_sweep_meta(f, path, &s, err);
    if (!rc) shard = attr_str(f, "shard");
    int complete = !rc && (!shard || !shard[0]) && (s.n_points < 0 || s.n_points == s.np);
    if (!rc) rc = analyse_sweep(f, path, &s, &o, lever, sizeof lever, rule_text, &thr, &ar, err);
    if (!rc && o.oom) rc = ls_errf(err, "out of memory");
    if (f >= 0) {
        H5Fclose(f);
        f = -1;
    }
    int wrote = 0;
    if (!rc && allow_write && complete) {
        rc = write_analysis(path, &s, sb_str(&o), lever, rule_text, thr, ar, err);
        wrote = !rc;
    }
    if (!rc && out) fputs(sb_str(&o), out);
    free(ar);
    free(o.s);
    free(format);
    free(shard);
    sweep_free(&s);
    loud_h5(of, od);
    return rc ? -1 : wrote;
}

int ls_analyse_sweep_file(const char *path, FILE *out, ls_err *err) {
    return sweep_analysis(path, out, 1, err) < 0 ? -1 : 0;
}

/* For `lockstep report`: 1 if /analysis was written, 0 if the sweep is partial (printed
 * only), -1 on error. */
int ls_analyse_sweep_auto(const char *path, FILE *out, int allow_write, ls_err *err) {
    return sweep_analysis(path, out, allow_write, err);
}

/* ---- lockstep analyse -------------------------------------------------------------- */

static int usage(FILE *f) {
    fprintf(f, "usage: lockstep analyse FILE.h5 [--recompute] [--no-write]\n"
               "  A trace (docs/trace.md): divergence rate, onset, period, and the provenance\n"
               "  field that separates divergent from clean tokens (thresholds, the arithmetic\n"
               "  behind a slot threshold).\n"
               "  A sweep (docs/sweeps.md): prints its /analysis, computing it (and writing it\n"
               "  into the file) if absent or with --recompute; --no-write prints only.\n"
               "  Method and output: docs/analysis.md.\n");
    return f == stdout ? 0 : 2;
}

int ls_cmd_analyse(int argc, char **argv) {
    const char *path = NULL;
    int recompute = 0, no_write = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout);
        if (!strcmp(argv[i], "--recompute")) recompute = 1;
        else if (!strcmp(argv[i], "--no-write")) no_write = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "lockstep analyse: unknown option '%s'\n", argv[i]);
            return usage(stderr);
        } else if (path) {
            fprintf(stderr, "lockstep analyse: one file at a time\n");
            return usage(stderr);
        } else {
            path = argv[i];
        }
    }
    if (!path) return usage(stderr);
    ls_err err = {{0}};
    H5E_auto2_t of;
    void *od;
    quiet_h5(&of, &od);
    hid_t f = -1;
    char *format = NULL;
    int rc = open_checked(path, H5F_ACC_RDONLY, &f, &format, &err);
    char *text = NULL;
    int is_sweep = 0;
    if (!rc) {
        if (!strcmp(format, "lockstep-trace")) {
            rc = analyse_trace_loc(f, path, stdout, &err);
        } else if (!strcmp(format, "lockstep-sweep")) {
            is_sweep = 1;
            if (!recompute && H5Lexists(f, "analysis", H5P_DEFAULT) > 0) {
                hid_t g = H5Gopen2(f, "analysis", H5P_DEFAULT);
                if (g >= 0) {
                    text = attr_str(g, "verdict_text");
                    H5Gclose(g);
                }
            }
        } else {
            rc = ls_errf(&err, "'%s' is neither a lockstep trace nor a sweep (format '%.64s')",
                         path, format);
        }
    }
    if (f >= 0) H5Fclose(f);
    loud_h5(of, od);
    if (!rc && is_sweep) {
        if (text) {
            fputs(text, stdout);
        } else {
            int w = sweep_analysis(path, stdout, !no_write, &err);
            if (w < 0) rc = -1;
            else if (!w && !no_write)
                fprintf(stderr, "lockstep analyse: '%s' is a partial sweep (a shard or an "
                                "unfinished run): /analysis not written\n", path);
        }
    }
    free(text);
    free(format);
    if (rc) {
        fprintf(stderr, "lockstep analyse: %s\n", err.msg);
        return 2;
    }
    return fflush(stdout) ? 2 : 0;
}
