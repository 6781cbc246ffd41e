/* lockstep sweep SPEC.yaml [-j N] [--resume] [--shard K/N] [-o OUT.h5]
 *
 * The spec (docs/sweeps.md) names a base run config, overrides for every point (`set`),
 * a grid (cross product, first key slowest) and explicit points. Every point's
 * configuration is built and checked before anything runs: a key or value that the run
 * config rejects is a spec error (exit 2, SPEC:LINE:COL); a combination that fails the
 * cross-key checks is an "error" point. Points run in forked worker processes (-j N at
 * once); each writes its trace to OUT.parts/pNNNNN.h5 (or its error message to
 * pNNNNN.err), and the parent folds finished points into the results file, which it only
 * ever replaces whole (temporary copy, fsync, rename, fsync of the directory): SIGKILL at
 * any moment leaves a valid file, and --resume carries on from it.
 *
 * Nothing time-dependent is stored in the file, so an interrupted and resumed sweep, a
 * run with a different -j, and a merge of shards all give the same content. */
#include "harness/sweep.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "engine/read_file.h"
#include "harness/analyse.h"
#include "harness/h5util.h"
#include "harness/commands.h"
#include "harness/pipeline.h"
#include "ls_build.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- growable strings --------------------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *p, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* The string (caller frees), or NULL when out of memory; "" for an empty buffer. */
static char *sb_take(sbuf *b) {
    if (b->oom) {
        free(b->s);
        return NULL;
    }
    char *s = b->s ? b->s : strdup("");
    b->s = NULL;
    b->n = b->cap = 0;
    return s;
}

static char *path_join(const char *dir, const char *rel) {
    if (rel[0] == '/' || !dir || !dir[0]) return strdup(rel);
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

/* ---- HDF5 helpers ------------------------------------------------------------------- */

/* "PATH: WHAT: <HDF5's reason>" */
static int h5_fail(ls_err *err, const char *path, const char *what) {
    char buf[256];
    const char *why = ls_h5_reason(buf);
    return ls_errf(err, "%s: %s%s%s", path, what, why[0] ? ": " : "", why);
}

int64_t ls_sweep_point_index(const char *name, int64_t n_points) {
    if (name[0] != 'p' || strlen(name) != 6) return -1;
    int64_t v = 0;
    for (int i = 1; i < 6; i++) {
        if (!isdigit((unsigned char)name[i])) return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v < n_points ? v : -1;
}

/* ---- results file: header, tally, atomic replacement --------------------------------- */

void ls_sweep_header_free(ls_sweep_header *h) {
    free(h->tool_version);
    free(h->spec_path);
    free(h->spec_text);
    free(h->axes);
    free(h->shard);
    memset(h, 0, sizeof *h);
}

int ls_sweep_read_header(hid_t file, const char *path, ls_sweep_header *h, ls_err *err) {
    memset(h, 0, sizeof *h);
    char *format = NULL;
    int64_t version = 0;
    if (ls_h5_attr_str(file, "format", &format) || strcmp(format, LS_SWEEP_FORMAT)) {
        free(format);
        H5Eclear2(H5E_DEFAULT);
        return ls_errf(err, "%s: not a lockstep sweep results file (no format \"%s\")", path,
                       LS_SWEEP_FORMAT);
    }
    free(format);
    if (ls_h5_attr_i64(file, "format_version", &version) || version != LS_SWEEP_FORMAT_VERSION)
        return ls_errf(err, "%s: unsupported sweep format_version (this build reads %d)", path,
                       LS_SWEEP_FORMAT_VERSION);
    static const char *const names[] = {"tool_version", "spec_path", "spec_text", "axes", "shard"};
    char **slots[] = {&h->tool_version, &h->spec_path, &h->spec_text, &h->axes, &h->shard};
    for (int i = 0; i < 5; i++)
        if (ls_h5_attr_str(file, names[i], slots[i])) {
            ls_sweep_header_free(h);
            return h5_fail(err, path, "reading the root attributes");
        }
    if (ls_h5_attr_i64(file, "n_points", &h->n_points) || h->n_points < 1 ||
        h->n_points > LS_SWEEP_MAX_POINTS) {
        ls_sweep_header_free(h);
        return ls_errf(err, "%s: bad or missing n_points attribute", path);
    }
    if (H5Lexists(file, "points", H5P_DEFAULT) <= 0) {
        ls_sweep_header_free(h);
        H5Eclear2(H5E_DEFAULT);
        return ls_errf(err, "%s: no /points group", path);
    }
    return 0;
}

int ls_sweep_write_header(hid_t file, const ls_sweep_header *h, ls_err *err) {
    if (ls_h5_write_str(file, "format", LS_SWEEP_FORMAT) ||
        ls_h5_write_i64(file, "format_version", LS_SWEEP_FORMAT_VERSION) ||
        ls_h5_write_str(file, "tool_version", LS_VERSION) ||
        ls_h5_write_str(file, "spec_path", h->spec_path) ||
        ls_h5_write_str(file, "spec_text", h->spec_text) ||
        ls_h5_write_str(file, "axes", h->axes) ||
        ls_h5_write_i64(file, "n_points", h->n_points) ||
        ls_h5_write_str(file, "shard", h->shard))
        return h5_fail(err, "results file", "writing the root attributes");
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = -1;
    if (gcpl >= 0 && H5Pset_obj_track_times(gcpl, 0) >= 0)
        g = H5Gcreate2(file, "points", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    if (gcpl >= 0) H5Pclose(gcpl);
    if (g < 0 || H5Gclose(g) < 0) return h5_fail(err, "results file", "creating /points");
    return 0;
}

typedef struct tally_ctx {
    int64_t n_points, *counts;
    unsigned char *present;
    int bad;
    char name[64];
} tally_ctx;

static herr_t tally_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    tally_ctx *t = data;
    int64_t idx = ls_sweep_point_index(name, t->n_points);
    char *verdict = NULL;
    if (idx < 0) {
        snprintf(t->name, sizeof t->name, "%s", name);
        t->bad = 1;
        return 1;
    }
    hid_t p = H5Gopen2(g, name, H5P_DEFAULT);
    if (p < 0 || ls_h5_attr_str(p, "verdict", &verdict)) {
        if (p >= 0) H5Gclose(p);
        snprintf(t->name, sizeof t->name, "%s", name);
        t->bad = 2;
        return 1;
    }
    H5Gclose(p);
    int k = !strcmp(verdict, "ok") ? 0 : !strcmp(verdict, "divergence") ? 1 : 2;
    free(verdict);
    t->counts[k]++;
    if (t->present) t->present[idx] = 1;
    return 0;
}

int ls_sweep_tally(hid_t file, const char *path, int64_t n_points, int64_t counts[3],
                   unsigned char *present, ls_err *err) {
    counts[0] = counts[1] = counts[2] = 0;
    if (present) memset(present, 0, (size_t)n_points);
    tally_ctx t = {.n_points = n_points, .counts = counts, .present = present};
    hid_t g = H5Gopen2(file, "points", H5P_DEFAULT);
    if (g < 0) return h5_fail(err, path, "opening /points");
    hsize_t idx = 0;
    herr_t rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, tally_cb, &t);
    H5Gclose(g);
    if (t.bad == 1) return ls_errf(err, "%s: unexpected object /points/%s", path, t.name);
    if (t.bad == 2) return ls_errf(err, "%s: /points/%s has no verdict", path, t.name);
    if (rc < 0) return h5_fail(err, path, "listing /points");
    return 0;
}

/* dir ("." if none) and base name of a path; malloc'd. */
static int split_path(const char *path, char **dir, char **base) {
    const char *slash = strrchr(path, '/');
    *base = strdup(slash ? slash + 1 : path);
    if (!slash) *dir = strdup(".");
    else if (slash == path) *dir = strdup("/");
    else *dir = strndup(path, (size_t)(slash - path));
    if (!*dir || !*base) {
        free(*dir);
        free(*base);
        *dir = *base = NULL;
        return -1;
    }
    return 0;
}

static int copy_bytes(const char *src, const char *dst, ls_err *err) {
    int in = open(src, O_RDONLY), out = -1;
    if (in < 0) return ls_errf(err, "%s: cannot open: %s", src, strerror(errno));
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (out < 0) {
        int e = errno;
        close(in);
        return ls_errf(err, "%s: cannot create: %s", dst, strerror(e));
    }
    char buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t got = read(in, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            rc = ls_errf(err, "%s: read error: %s", src, strerror(errno));
            break;
        }
        if (got == 0) break;
        for (ssize_t off = 0; off < got;) {
            ssize_t w = write(out, buf + off, (size_t)(got - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                rc = ls_errf(err, "%s: write error: %s", dst, strerror(errno));
                break;
            }
            off += w;
        }
        if (rc) break;
    }
    close(in);
    if (close(out) < 0 && !rc) rc = ls_errf(err, "%s: write error: %s", dst, strerror(errno));
    return rc;
}

static int fsync_path(const char *path, int dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int ls_sweep_replace(const char *path, const char *copy_from, ls_sweep_edit_fn fn, void *ctx,
                     ls_err *err) {
    char *dir = NULL, *base = NULL;
    if (split_path(path, &dir, &base)) return ls_errf(err, "out of memory");
    size_t cap = strlen(dir) + strlen(base) + 48;
    char *tmp = malloc(cap);
    if (!tmp) {
        free(dir);
        free(base);
        return ls_errf(err, "out of memory");
    }
    snprintf(tmp, cap, "%s/.%s.tmp.%ld", dir, base, (long)getpid());
    int rc = -1;
    hid_t f = -1;
    if (copy_from) {
        if (copy_bytes(copy_from, tmp, err)) goto out;
        if ((f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT)) < 0) {
            h5_fail(err, path, "reopening the results file");
            goto out;
        }
    } else {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (fd < 0) {
            ls_errf(err, "%s: cannot create '%s': %s", path, tmp, strerror(errno));
            goto out;
        }
        close(fd);
        hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
        if (fcpl >= 0 && H5Pset_obj_track_times(fcpl, 0) >= 0)
            f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
        if (fcpl >= 0) H5Pclose(fcpl);
        if (f < 0) {
            h5_fail(err, path, "creating the results file");
            goto out;
        }
    }
    int frc = fn(f, ctx, err);
    herr_t crc = H5Fclose(f);
    f = -1;
    if (frc) goto out;
    if (crc < 0) {
        h5_fail(err, path, "closing the results file");
        goto out;
    }
    if (fsync_path(tmp, 0) < 0) {
        ls_errf(err, "%s: syncing '%s': %s", path, tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) < 0) {
        ls_errf(err, "%s: cannot rename '%s' into place: %s", path, tmp, strerror(errno));
        goto out;
    }
    (void)fsync_path(dir, 1); /* a directory that cannot be synced is not an error */
    rc = 0;
out:
    if (f >= 0) H5Fclose(f);
    if (rc) unlink(tmp);
    free(tmp);
    free(dir);
    free(base);
    return rc;
}

/* ---- analysis ----------------------------------------------------------------------- */

int ls_sweep_analyse(const char *path, ls_err *err) {
    fflush(stdout);
    int rc = ls_analyse_sweep_file(path, stdout, err);
    fflush(stdout);
    return rc;
}

/* ---- the spec ----------------------------------------------------------------------- */

typedef struct assign {
    char *key;                     /* dotted run-config key */
    char *value;                   /* the YAML value rendered as a flow string */
    char *apply;                   /* "key=value" as applied (relative paths resolved) */
    size_t kline, kcol, vline, vcol;  /* 1-based */
} assign;

typedef struct alist {
    assign *a;
    int64_t n;
} alist;

typedef struct spec {
    const char *path;              /* as given */
    char *text;                    /* the spec as read */
    size_t len;
    char *dir;                     /* the spec's directory, absolute */
    char *base;                    /* the base run config, absolute */
    char *base_text;
    size_t base_len;
    char *output;                  /* `output:` or NULL */
    alist set;
    int64_t n_axes;
    alist *axes;                   /* axes[i].a[j]: value j of grid key i */
    alist *listed;                 /* explicit points */
    int64_t n_listed;
    int64_t n_grid, n_points;
    int64_t max_assigns;           /* most assignments of one point (set excluded) */
    yaml_document_t doc;
    int have_doc;
} spec;

static void alist_free(alist *l) {
    for (int64_t i = 0; i < l->n; i++) {
        free(l->a[i].key);
        free(l->a[i].value);
        free(l->a[i].apply);
    }
    free(l->a);
    l->a = NULL;
    l->n = 0;
}

static void spec_free(spec *s) {
    free(s->text);
    free(s->dir);
    free(s->base);
    free(s->base_text);
    free(s->output);
    alist_free(&s->set);
    for (int64_t i = 0; i < s->n_axes; i++) alist_free(&s->axes[i]);
    free(s->axes);
    for (int64_t i = 0; i < s->n_listed; i++) alist_free(&s->listed[i]);
    free(s->listed);
    if (s->have_doc) yaml_document_delete(&s->doc);
    memset(s, 0, sizeof *s);
}

static int spec_bad(const spec *s, const yaml_node_t *n, ls_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int spec_bad(const spec *s, const yaml_node_t *n, ls_err *err, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ls_errf(err, "%s:%zu:%zu: %s", s->path, n ? n->start_mark.line + 1 : 1,
                   n ? n->start_mark.column + 1 : 1, msg);
}

static yaml_node_t *node(spec *s, int id) { return yaml_document_get_node(&s->doc, id); }

static int is_null(const yaml_node_t *n) {
    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return n == NULL;
    const char *v = (const char *)n->data.scalar.value;
    return !v[0] || !strcmp(v, "~") || !strcmp(v, "null");
}

static const char *node_kind(const yaml_node_t *n) {
    if (!n) return "nothing";
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    return is_null(n) ? "null" : "a scalar";
}

/* A plain, non-empty scalar used as a key or a path. */
static const char *plain_scalar(const yaml_node_t *n) {
    if (!n || n->type != YAML_SCALAR_NODE || is_null(n)) return NULL;
    return (const char *)n->data.scalar.value;
}

static void sb_quoted(sbuf *b, const char *v, size_t len) {
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_add(b, esc, 2);
        } else if (c == '\n') {
            sb_add(b, "\\n", 2);
        } else if (c == '\t') {
            sb_add(b, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            sb_str(b, esc);
        } else {
            sb_add(b, (const char *)&v[i], 1);
        }
    }
    sb_add(b, "\"", 1);
}

/* Would this plain scalar read differently inside a flow collection? */
static int flow_unsafe(const char *v, size_t len) {
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if (strchr(",[]{}", c)) return 1;
        if (c == ':' && (i + 1 == len || v[i + 1] == ' ')) return 1;
        if (c == '#' && i > 0 && v[i - 1] == ' ') return 1;
    }
    return 0;
}

/* The node back as a one-line YAML flow string: plain scalars as written, quoted ones
 * double-quoted, sequences as [a, b], mappings as {k: v}. */
static int render(spec *s, yaml_node_t *n, sbuf *b, int in_flow, int depth, ls_err *err) {
    if (depth > LS_CONFIG_MAX_DEPTH) return spec_bad(s, n, err, "value nested too deeply");
    if (b->n > LS_CONFIG_MAX_BYTES) return spec_bad(s, n, err, "value too large");
    switch (n->type) {
    case YAML_SCALAR_NODE: {
        const char *v = (const char *)n->data.scalar.value;
        size_t len = n->data.scalar.length;
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !len) sb_str(b, "null");
        else if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || memchr(v, 0, len) ||
                 (in_flow && flow_unsafe(v, len)))
            sb_quoted(b, v, len);
        else sb_add(b, v, len);
        break;
    }
    case YAML_SEQUENCE_NODE:
        sb_add(b, "[", 1);
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
            if (it > n->data.sequence.items.start) sb_add(b, ", ", 2);
            if (render(s, node(s, *it), b, 1, depth + 1, err)) return -1;
        }
        sb_add(b, "]", 1);
        break;
    case YAML_MAPPING_NODE:
        sb_add(b, "{", 1);
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            if (p > n->data.mapping.pairs.start) sb_add(b, ", ", 2);
            if (render(s, node(s, p->key), b, 1, depth + 1, err)) return -1;
            sb_add(b, ": ", 2);
            if (render(s, node(s, p->value), b, 1, depth + 1, err)) return -1;
        }
        sb_add(b, "}", 1);
        break;
    default:
        return spec_bad(s, n, err, "empty value");
    }
    return 0;
}

static int alist_push(alist *l, assign a) {
    assign *na = realloc(l->a, (size_t)(l->n + 1) * sizeof *na);
    if (!na) return -1;
    l->a = na;
    l->a[l->n++] = a;
    return 0;
}

/* key node + value node -> an assignment. Relative paths given for `model` and
 * `workload.prompts_file` are resolved against the spec's directory. */
static int make_assign(spec *s, yaml_node_t *k, yaml_node_t *v, const char *where, assign *out,
                       ls_err *err) {
    memset(out, 0, sizeof *out);
    const char *key = plain_scalar(k);
    if (!key || k->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return spec_bad(s, k, err, "%s: keys must be plain run-config keys (e.g. cache.num_blocks)", where);
    sbuf b = {0};
    if (render(s, v, &b, 0, 0, err)) {
        free(b.s);
        return -1;
    }
    out->value = sb_take(&b);
    out->key = strdup(key);
    sbuf ap = {0};
    sb_str(&ap, key);
    sb_add(&ap, "=", 1);
    const char *pv = v->type == YAML_SCALAR_NODE && !is_null(v) ? (const char *)v->data.scalar.value : NULL;
    if (pv && pv[0] != '/' && (!strcmp(key, "model") || !strcmp(key, "workload.prompts_file"))) {
        char *abs = path_join(s->dir, pv);
        if (abs) sb_quoted(&ap, abs, strlen(abs));
        else ap.oom = 1;
        free(abs);
    } else {
        sb_str(&ap, out->value ? out->value : "");
    }
    out->apply = sb_take(&ap);
    out->kline = k->start_mark.line + 1;
    out->kcol = k->start_mark.column + 1;
    out->vline = v->start_mark.line + 1;
    out->vcol = v->start_mark.column + 1;
    if (!out->value || !out->key || !out->apply) {
        free(out->value);
        free(out->key);
        free(out->apply);
        memset(out, 0, sizeof *out);
        return ls_errf(err, "out of memory");
    }
    return 0;
}

/* A mapping of key: value overrides (null: none). */
static int parse_assigns(spec *s, yaml_node_t *map, const char *where, alist *out, ls_err *err) {
    if (is_null(map)) return 0;
    if (map->type != YAML_MAPPING_NODE)
        return spec_bad(s, map, err, "%s must be a mapping of run-config keys to values, not %s",
                        where, node_kind(map));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(s, p->key), *v = node(s, p->value);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const char *a = plain_scalar(node(s, q->key)), *b = plain_scalar(k);
            if (a && b && !strcmp(a, b)) return spec_bad(s, k, err, "%s: duplicate key '%s'", where, b);
        }
        assign a;
        if (make_assign(s, k, v, where, &a, err)) return -1;
        if (alist_push(out, a)) {
            free(a.key);
            free(a.value);
            free(a.apply);
            return ls_errf(err, "out of memory");
        }
    }
    return 0;
}

static int parse_grid(spec *s, yaml_node_t *g, ls_err *err) {
    if (is_null(g)) return 0;
    if (g->type != YAML_MAPPING_NODE)
        return spec_bad(s, g, err, "grid must be a mapping of run-config keys to lists of values, not %s",
                        node_kind(g));
    int64_t n = g->data.mapping.pairs.top - g->data.mapping.pairs.start;
    s->axes = calloc((size_t)n + 1, sizeof *s->axes);
    if (!s->axes) return ls_errf(err, "out of memory");
    for (yaml_node_pair_t *p = g->data.mapping.pairs.start; p < g->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(s, p->key), *v = node(s, p->value);
        for (yaml_node_pair_t *q = g->data.mapping.pairs.start; q < p; q++) {
            const char *a = plain_scalar(node(s, q->key)), *b = plain_scalar(k);
            if (a && b && !strcmp(a, b)) return spec_bad(s, k, err, "grid: duplicate key '%s'", b);
        }
        if (!v || v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
            return spec_bad(s, v, err, "grid: the values of '%s' must be a non-empty list, not %s",
                            plain_scalar(k) ? plain_scalar(k) : "?",
                            v && v->type == YAML_SEQUENCE_NODE ? "an empty list" : node_kind(v));
        alist *ax = &s->axes[s->n_axes++];
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            assign a;
            if (make_assign(s, k, node(s, *it), "grid", &a, err)) return -1;
            if (alist_push(ax, a)) {
                free(a.key);
                free(a.value);
                free(a.apply);
                return ls_errf(err, "out of memory");
            }
        }
    }
    return 0;
}

static int parse_points(spec *s, yaml_node_t *pts, ls_err *err) {
    if (is_null(pts)) return 0;
    if (pts->type != YAML_SEQUENCE_NODE)
        return spec_bad(s, pts, err, "points must be a list of mappings (key: value), not %s",
                        node_kind(pts));
    int64_t n = pts->data.sequence.items.top - pts->data.sequence.items.start;
    s->listed = calloc((size_t)n + 1, sizeof *s->listed);
    if (!s->listed) return ls_errf(err, "out of memory");
    for (yaml_node_item_t *it = pts->data.sequence.items.start; it < pts->data.sequence.items.top; it++) {
        yaml_node_t *m = node(s, *it);
        if (!m || m->type != YAML_MAPPING_NODE)
            return spec_bad(s, m, err, "each point must be a mapping (key: value, or {} for none), not %s",
                            node_kind(m));
        if (parse_assigns(s, m, "points", &s->listed[s->n_listed++], err)) return -1;
    }
    return 0;
}

static int spec_load(const char *path, spec *s, ls_err *err) {
    memset(s, 0, sizeof *s);
    s->path = path;
    if (ls_read_file(path, LS_CONFIG_MAX_BYTES, &s->text, &s->len, err)) return -1;
    char *d = NULL, *b = NULL;
    if (split_path(path, &d, &b)) return ls_errf(err, "out of memory");
    free(b);
    s->dir = realpath(d, NULL);
    if (!s->dir) {
        int e = errno;
        free(d);
        return ls_errf(err, "%s: cannot resolve its directory: %s", path, strerror(e));
    }
    free(d);

    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)s->text, s->len);
    if (!yaml_parser_load(&p, &s->doc)) {
        ls_errf(err, "%s:%zu:%zu: %s%s%s", path, p.problem_mark.line + 1, p.problem_mark.column + 1,
                p.problem ? p.problem : "invalid YAML", p.context ? " " : "", p.context ? p.context : "");
        yaml_parser_delete(&p);
        return -1;
    }
    s->have_doc = 1;
    yaml_document_t second;
    int more = 0;
    if (yaml_parser_load(&p, &second)) {
        more = yaml_document_get_root_node(&second) != NULL;
        yaml_document_delete(&second);
    } else {
        more = 1; /* a broken second document is still a second document */
    }
    yaml_parser_delete(&p);
    yaml_node_t *root = yaml_document_get_root_node(&s->doc);
    if (more) return ls_errf(err, "%s: more than one YAML document", path);
    if (!root || is_null(root)) return ls_errf(err, "%s: empty sweep spec", path);
    if (root->type != YAML_MAPPING_NODE)
        return spec_bad(s, root, err, "a sweep spec is a mapping (base, set, grid, points, output), not %s",
                        node_kind(root));

    static const char *const keys[] = {"base", "set", "grid", "points", "output"};
    yaml_node_t *vals[5] = {0};
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(s, pr->key);
        const char *ks = plain_scalar(k);
        int which = -1;
        for (int i = 0; ks && i < 5; i++)
            if (!strcmp(ks, keys[i])) which = i;
        if (which < 0)
            return spec_bad(s, k, err, "unknown key '%s' (expected one of: base, set, grid, points, output)",
                            ks ? ks : "?");
        if (vals[which]) return spec_bad(s, k, err, "duplicate key '%s'", ks);
        vals[which] = node(s, pr->value);
    }
    const char *base = plain_scalar(vals[0]);
    if (!vals[0]) return ls_errf(err, "%s: missing 'base' (the run config every point starts from)", path);
    if (!base || vals[0]->type != YAML_SCALAR_NODE)
        return spec_bad(s, vals[0], err, "base must be a path to a run config, not %s", node_kind(vals[0]));
    char *joined = path_join(s->dir, base);
    if (!joined) return ls_errf(err, "out of memory");
    s->base = realpath(joined, NULL);
    if (!s->base) {
        int e = errno;
        spec_bad(s, vals[0], err, "base '%s': %s", joined, strerror(e));
        free(joined);
        return -1;
    }
    free(joined);
    if (ls_read_file(s->base, LS_CONFIG_MAX_BYTES, &s->base_text, &s->base_len, err))
        return ls_err_prefix(err, "%s: base: ", path);
    if (vals[4] && !is_null(vals[4])) {
        const char *o = plain_scalar(vals[4]);
        if (!o || vals[4]->type != YAML_SCALAR_NODE)
            return spec_bad(s, vals[4], err, "output must be a path, not %s", node_kind(vals[4]));
        if (!(s->output = strdup(o))) return ls_errf(err, "out of memory");
    }
    if (parse_assigns(s, vals[1], "set", &s->set, err) || parse_grid(s, vals[2], err) ||
        parse_points(s, vals[3], err))
        return -1;

    /* the points: grid (if any) then the list; neither = one point, the base + set */
    if (s->n_axes) {
        s->n_grid = 1;
        for (int64_t i = 0; i < s->n_axes; i++) {
            if (s->axes[i].n > LS_SWEEP_MAX_POINTS / s->n_grid)
                return ls_errf(err, "%s: the grid has more than %d points", path, LS_SWEEP_MAX_POINTS);
            s->n_grid *= s->axes[i].n;
        }
    } else {
        s->n_grid = s->n_listed ? 0 : 1;
    }
    s->n_points = s->n_grid + s->n_listed;
    if (s->n_points > LS_SWEEP_MAX_POINTS)
        return ls_errf(err, "%s: %" PRId64 " points; at most %d", path, s->n_points, LS_SWEEP_MAX_POINTS);
    s->max_assigns = s->n_axes;
    for (int64_t i = 0; i < s->n_listed; i++)
        if (s->listed[i].n > s->max_assigns) s->max_assigns = s->listed[i].n;
    yaml_document_delete(&s->doc);
    s->have_doc = 0;
    return 0;
}

/* The point's own assignments (grid values or its listed ones; `set` excluded) into buf
 * (room for s->max_assigns); returns how many. */
static int64_t point_assigns(const spec *s, int64_t idx, const assign **buf) {
    if (idx < s->n_grid) {
        int64_t rest = idx;
        for (int64_t a = s->n_axes - 1; a >= 0; a--) {
            buf[a] = &s->axes[a].a[rest % s->axes[a].n];
            rest /= s->axes[a].n;
        }
        return s->n_axes;
    }
    const alist *l = &s->listed[idx - s->n_grid];
    for (int64_t i = 0; i < l->n; i++) buf[i] = &l->a[i];
    return l->n;
}

/* "k=v" joined by sep; malloc'd (NULL: out of memory). */
static char *point_label(const spec *s, int64_t idx, const char *sep) {
    const assign **buf = calloc((size_t)s->max_assigns + 1, sizeof *buf);
    if (!buf) return NULL;
    int64_t n = point_assigns(s, idx, buf);
    sbuf b = {0};
    for (int64_t i = 0; i < n; i++) {
        if (i) sb_str(&b, sep);
        sb_str(&b, buf[i]->key);
        sb_add(&b, "=", 1);
        sb_str(&b, buf[i]->value);
    }
    free(buf);
    return sb_take(&b);
}

/* The point's run configuration: base + set + the point's assignments.
 * 0: ok. -1: an assignment the run config rejects (a spec error; rc freed).
 * -2: the cross-key check failed (the point is an error point; rc still allocated). */
static int point_config(const spec *s, int64_t idx, ls_run_config *rc, ls_err *err) {
    if (ls_config_parse(s->base_text, s->base_len, s->base, rc, err)) return -1;
    const assign **buf = calloc((size_t)s->max_assigns + 1, sizeof *buf);
    if (!buf) {
        ls_config_free(rc);
        return ls_errf(err, "out of memory");
    }
    int64_t n = point_assigns(s, idx, buf);
    for (int64_t i = 0; i < s->set.n + n; i++) {
        const assign *a = i < s->set.n ? &s->set.a[i] : buf[i - s->set.n];
        ls_err e = {{0}};
        if (ls_config_set(rc, a->apply, &e)) {
            int key_problem = strstr(e.msg, "unknown key") != NULL;
            ls_errf(err, "%s:%zu:%zu: %s", s->path, key_problem ? a->kline : a->vline,
                    key_problem ? a->kcol : a->vcol, e.msg);
            free(buf);
            ls_config_free(rc);
            return -1;
        }
    }
    free(buf);
    return ls_config_check(rc, err) ? -2 : 0;
}

/* ---- results -------------------------------------------------------------------------- */

typedef struct result {
    int64_t idx;
    int trace;                     /* 1: the point's trace is at part */
    char *part;                    /* part trace file, removed once merged */
    char *errfile;                 /* part error file, removed once merged */
    char *message;                 /* error points: why */
    double seconds;
    int verdict;                   /* after merging: 0 ok, 1 divergence, 2 error */
} result;

static void result_free(result *r) {
    free(r->part);
    free(r->errfile);
    free(r->message);
    memset(r, 0, sizeof *r);
}

typedef struct copy_ctx {
    hid_t dst;
    int failed;
    char name[64];
} copy_ctx;

static herr_t copy_cb(hid_t src, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    copy_ctx *c = data;
    if (H5Ocopy(src, name, c->dst, name, H5P_DEFAULT, H5P_DEFAULT) < 0) {
        snprintf(c->name, sizeof c->name, "%s", name);
        c->failed = 1;
        return -1;
    }
    return 0;
}

typedef struct trace_attrs {
    char *config_text, *model_hash, *precision, *mode, *backend, *verdict;
    int64_t exit_code;
} trace_attrs;

static void trace_attrs_free(trace_attrs *t) {
    free(t->config_text);
    free(t->model_hash);
    free(t->precision);
    free(t->mode);
    free(t->backend);
    free(t->verdict);
    memset(t, 0, sizeof *t);
}

/* Opens a part trace and reads the attributes a point keeps; the file stays open. */
static hid_t open_part(const char *part, trace_attrs *t, ls_err *err) {
    memset(t, 0, sizeof *t);
    hid_t f = H5Fopen(part, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        h5_fail(err, part, "cannot open the point's trace");
        return -1;
    }
    char *format = NULL;
    int bad = ls_h5_attr_str(f, "format", &format) || strcmp(format, "lockstep-trace") ||
              ls_h5_attr_str(f, "config_text", &t->config_text) ||
              ls_h5_attr_str(f, "model_hash", &t->model_hash) ||
              ls_h5_attr_str(f, "precision", &t->precision) ||
              ls_h5_attr_str(f, "mode", &t->mode) || ls_h5_attr_str(f, "backend", &t->backend) ||
              ls_h5_attr_str(f, "verdict", &t->verdict) ||
              ls_h5_attr_i64(f, "exit_code", &t->exit_code);
    free(format);
    if (bad) {
        H5Eclear2(H5E_DEFAULT);
        trace_attrs_free(t);
        H5Fclose(f);
        ls_errf(err, "%s: not a complete lockstep trace", part);
        return -1;
    }
    return f;
}

/* The trace's config_text names the part file it was written to (output.trace); a point
 * keeps `trace: null` there instead, so that its content does not depend on where or in
 * which run it was computed. Edits in place. */
static void drop_trace_path(char *text) {
    char *sec = strstr(text, "\noutput:\n");
    char *line = sec ? strstr(sec, "\n  trace: ") : NULL;
    if (!line) return;
    char *val = line + strlen("\n  trace: ");
    char *eol = strchr(val, '\n');
    size_t rest = eol ? strlen(eol) : 0;
    memcpy(val, "null", 4);
    if (eol) memmove(val + 4, eol, rest + 1);
    else val[4] = 0;
}

/* Adds /points/pNNNNN for one finished point. */
static int add_point(hid_t file, const spec *s, result *r, ls_err *err) {
    char name[16];
    snprintf(name, sizeof name, "p%05" PRId64, r->idx);
    ls_run_config rc;
    ls_err ce = {{0}};
    int cr = point_config(s, r->idx, &rc, &ce);
    char *config_text = NULL;
    const char *precision = "", *mode = "", *backend = "";
    if (cr != -1) {
        /* error points: the effective configuration as the worker would have run it (ok
         * points keep their trace's, which also shows the values the engine resolved) */
        free(rc.trace_path);
        rc.trace_path = NULL;
        rc.compare.probe_layers = 1;
        config_text = ls_config_to_yaml(&rc);
        precision = ls_prec_name(rc.precision);
        mode = rc.mode_fast ? "fast" : "invariant";
        backend = rc.backend_cuda ? "cuda" : "cpu";
    }
    char *assignments = point_label(s, r->idx, "\n");
    int rc_out = -1;
    hid_t part = -1, points = -1, g = -1, gcpl = -1;
    trace_attrs t = {0};
    if (!assignments || (cr != -1 && !config_text)) {
        ls_errf(err, "out of memory");
        goto out;
    }
    if (r->trace) {
        ls_err pe = {{0}};
        part = open_part(r->part, &t, &pe);
        if (part < 0) {
            r->trace = 0;
            free(r->message);
            r->message = strdup(pe.msg);
        }
    }
    if ((points = H5Gopen2(file, "points", H5P_DEFAULT)) < 0 ||
        (gcpl = H5Pcreate(H5P_GROUP_CREATE)) < 0 || H5Pset_obj_track_times(gcpl, 0) < 0 ||
        (g = H5Gcreate2(points, name, H5P_DEFAULT, gcpl, H5P_DEFAULT)) < 0) {
        h5_fail(err, "results file", "creating the point's group");
        goto out;
    }
    int ok = r->trace;
    if (ok) drop_trace_path(t.config_text);
    const char *verdict = ok ? t.verdict : "error";
    r->verdict = !ok ? 2 : !strcmp(t.verdict, "ok") ? 0 : !strcmp(t.verdict, "divergence") ? 1 : 2;
    if (ls_h5_write_i64(g, "index", r->idx) || ls_h5_write_str(g, "assignments", assignments) ||
        ls_h5_write_str(g, "status", ok ? "ok" : "error") ||
        ls_h5_write_str(g, "error", ok ? "" : r->message ? r->message : "unknown error") ||
        ls_h5_write_str(g, "verdict", verdict) ||
        ls_h5_write_i64(g, "exit_code", ok ? t.exit_code : 2) ||
        ls_h5_write_str(g, "config_text", ok ? t.config_text : config_text) ||
        ls_h5_write_str(g, "model_hash", ok ? t.model_hash : "") ||
        ls_h5_write_str(g, "precision", ok ? t.precision : precision) ||
        ls_h5_write_str(g, "mode", ok ? t.mode : mode) ||
        ls_h5_write_str(g, "backend", ok ? t.backend : backend)) {
        h5_fail(err, "results file", "writing the point's attributes");
        goto out;
    }
    if (ok) {
        copy_ctx c = {.dst = g};
        hsize_t it = 0;
        if (H5Literate(part, H5_INDEX_NAME, H5_ITER_INC, &it, copy_cb, &c) < 0 || c.failed) {
            char what[128];
            snprintf(what, sizeof what, "copying /%s into /points/%s", c.name, name);
            h5_fail(err, r->part, what);
            goto out;
        }
    }
    rc_out = 0;
out:
    if (g >= 0 && H5Gclose(g) < 0 && !rc_out) rc_out = h5_fail(err, "results file", "closing a group");
    if (gcpl >= 0) H5Pclose(gcpl);
    if (points >= 0) H5Gclose(points);
    if (part >= 0) H5Fclose(part);
    trace_attrs_free(&t);
    free(assignments);
    free(config_text);
    if (cr != -1) ls_config_free(&rc);
    return rc_out;
}

typedef struct batch_ctx {
    const spec *s;
    result *r;
    int64_t n;
} batch_ctx;

static int add_batch(hid_t file, void *ctx, ls_err *err) {
    batch_ctx *b = ctx;
    for (int64_t i = 0; i < b->n; i++)
        if (add_point(file, b->s, &b->r[i], err)) return -1;
    return 0;
}

typedef struct header_ctx {
    const ls_sweep_header *h;
} header_ctx;

static int write_header_cb(hid_t file, void *ctx, ls_err *err) {
    return ls_sweep_write_header(file, ((header_ctx *)ctx)->h, err);
}

/* ---- progress ------------------------------------------------------------------------- */

typedef struct progress {
    int tty;
    int64_t total;                 /* points of this run (the shard's) */
    int64_t done, counts[3];       /* present in the file, previous runs included */
    int64_t done_now;              /* finished in this process */
    double t0;
    int drawn;
} progress;

static void fmt_duration(double sec, char *buf, size_t cap) {
    long s = (long)(sec + 0.5);
    if (s < 60) snprintf(buf, cap, "%lds", s);
    else if (s < 3600) snprintf(buf, cap, "%ldm%02lds", s / 60, s % 60);
    else snprintf(buf, cap, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
}

static void progress_draw(progress *p) {
    if (!p->tty) return;
    enum { W = 20 };
    char bar[W + 1];
    int64_t fill = p->total ? p->done * W / p->total : W;
    for (int i = 0; i < W; i++) bar[i] = i < fill ? '#' : '.';
    bar[W] = 0;
    char eta[32] = "?";
    int64_t left = p->total - p->done;
    if (left <= 0) snprintf(eta, sizeof eta, "0s");
    else if (p->done_now > 0) fmt_duration((now() - p->t0) / (double)p->done_now * (double)left, eta, sizeof eta);
    fprintf(stderr, "\r[%s] %" PRId64 "/%" PRId64 " points  %" PRId64 " divergent  %" PRId64
                    " error  ETA %s\033[K",
            bar, p->done, p->total, p->counts[1], p->counts[2], eta);
    fflush(stderr);
    p->drawn = 1;
}

static void progress_point(progress *p, const spec *s, const result *r) {
    static const char *const names[] = {"ok", "divergence", "error"};
    p->done++;
    p->done_now++;
    p->counts[r->verdict]++;
    if (p->tty && r->verdict != 2) return;
    char *label = point_label(s, r->idx, " ");
    if (p->tty) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "point %" PRId64 "/%" PRId64 " p%05" PRId64 " %s (%s) %.1f s%s%s\n", p->done,
            p->total, r->idx, names[r->verdict], label && label[0] ? label : "base", r->seconds,
            r->verdict == 2 ? ": " : "", r->verdict == 2 && r->message ? r->message : "");
    free(label);
    fflush(stderr);
}

/* ---- workers -------------------------------------------------------------------------- */

static char *part_path(const char *parts, int64_t idx, const char *ext) {
    size_t n = strlen(parts) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/p%05" PRId64 "%s", parts, idx, ext);
    return p;
}

/* Writes the worker's error message atomically (temporary name, fsync, rename). */
static void write_err_file(const char *parts, int64_t idx, const char *msg) {
    char tmp[4200], final[4200];
    snprintf(final, sizeof final, "%s/p%05" PRId64 ".err", parts, idx);
    snprintf(tmp, sizeof tmp, "%s/.p%05" PRId64 ".err.tmp.%ld", parts, idx, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) return;
    size_t len = strlen(msg), off = 0;
    while (off < len) {
        ssize_t w = write(fd, msg + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    int ok = off == len && fsync(fd) == 0;
    if (close(fd) < 0) ok = 0;
    if (!ok || rename(tmp, final) < 0) unlink(tmp);
}

/* The worker: runs one point, writes its trace (or error file), returns the exit code. The
 * caller _exit()s: nothing is freed, no atexit handler (or leak check) runs. */
static int worker_main(const spec *s, int64_t idx, const char *parts) {
    ls_run_config rc;
    ls_err err = {{0}};
    int cr = point_config(s, idx, &rc, &err);
    if (cr == 0) {
        free(rc.trace_path);
        rc.trace_path = part_path(parts, idx, ".h5");
        rc.compare.probe_layers = 1;
        ls_run_outcome o;
        if (!rc.trace_path) ls_errf(&err, "out of memory");
        else if (ls_run_execute(&rc, &o, &err) == 0) return o.diverged ? 1 : 0;
    }
    write_err_file(parts, idx, err.msg[0] ? err.msg : "unknown error");
    return 2;
}

typedef struct worker {
    pid_t pid;
    int64_t idx;
    double t0;
} worker;

/* What a finished worker left behind. */
static void classify(const char *parts, const worker *w, int status, result *r) {
    memset(r, 0, sizeof *r);
    r->idx = w->idx;
    r->seconds = now() - w->t0;
    r->part = part_path(parts, w->idx, ".h5");
    r->errfile = part_path(parts, w->idx, ".err");
    char msg[256];
    if (WIFEXITED(status) && WEXITSTATUS(status) <= 1 && r->part && access(r->part, F_OK) == 0) {
        r->trace = 1;
        return;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2 && r->errfile) {
        char *text = NULL;
        size_t len = 0;
        ls_err e = {{0}};
        if (ls_read_file(r->errfile, 1 << 16, &text, &len, &e) == 0) {
            while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = 0;
            r->message = text;
            return;
        }
    }
    if (WIFSIGNALED(status))
        snprintf(msg, sizeof msg, "worker killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(msg, sizeof msg, "worker exited with status %d and left no result",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    r->message = strdup(msg);
}

/* ---- the parts directory -------------------------------------------------------------- */

/* Removes leftover temporary files: `.<name>.tmp.*` next to OUT and `.*.tmp.*` in parts. */
static void remove_temps(const char *out, const char *parts) {
    char *dir = NULL, *base = NULL;
    if (split_path(out, &dir, &base)) return;
    char prefix[4200];
    snprintf(prefix, sizeof prefix, ".%s.tmp.", base);
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix))) continue;
        char *p = path_join(dir, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    if (d) closedir(d);
    d = opendir(parts);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] != '.' || !strstr(e->d_name, ".tmp.")) continue;
        char *p = path_join(parts, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    if (d) closedir(d);
    free(dir);
    free(base);
}

/* pNNNNN.h5 -> idx, ext 0; pNNNNN.err -> idx, ext 1; else -1. */
static int64_t part_index(const char *name, int64_t n_points, int *ext) {
    char stem[8];
    if (strlen(name) < 7) return -1;
    memcpy(stem, name, 6);
    stem[6] = 0;
    int64_t idx = ls_sweep_point_index(stem, n_points);
    if (idx < 0) return -1;
    if (!strcmp(name + 6, ".h5")) *ext = 0;
    else if (!strcmp(name + 6, ".err")) *ext = 1;
    else return -1;
    return idx;
}

typedef struct shard {
    int64_t k, n;                  /* 1 <= k <= n; n = 1: everything */
} shard;

static int in_shard(shard sh, int64_t idx) { return idx % sh.n == sh.k - 1; }

/* Resume: finished part files (complete: they are written atomically) of points the file
 * lacks become results to merge; the rest of the part files are removed. Fresh start
 * (keep == 0): every part file is removed. */
static int scan_parts(const char *parts, const spec *s, shard sh, const unsigned char *present,
                      int keep, result **out, int64_t *n_out, ls_err *err) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(parts);
    if (!d) return ls_errf(err, "%s: cannot list: %s", parts, strerror(errno));
    char *have = calloc((size_t)s->n_points, 1); /* bit 0: .h5, bit 1: .err */
    if (!have) {
        closedir(d);
        return ls_errf(err, "out of memory");
    }
    for (struct dirent *e; (e = readdir(d));) {
        int ext = 0;
        int64_t idx = part_index(e->d_name, s->n_points, &ext);
        if (idx < 0) continue;
        if (keep && !present[idx] && in_shard(sh, idx)) {
            have[idx] = (char)(have[idx] | (1 << ext));
            continue;
        }
        char *p = path_join(parts, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
    int64_t n = 0;
    for (int64_t i = 0; i < s->n_points; i++) n += have[i] != 0;
    result *r = calloc((size_t)n + 1, sizeof *r);
    if (!r) {
        free(have);
        return ls_errf(err, "out of memory");
    }
    int64_t k = 0;
    for (int64_t i = 0; i < s->n_points; i++) {
        if (!have[i]) continue;
        result *x = &r[k];
        x->idx = i;
        x->part = part_path(parts, i, ".h5");
        x->errfile = part_path(parts, i, ".err");
        if (!x->part || !x->errfile) {
            result_free(x);
            continue;
        }
        if (have[i] & 1) {
            trace_attrs t;
            ls_err pe = {{0}};
            hid_t f = open_part(x->part, &t, &pe);
            if (f >= 0) {
                H5Fclose(f);
                trace_attrs_free(&t);
                x->trace = 1;
                k++;
                continue;
            }
            unlink(x->part); /* unreadable: run the point again */
        }
        size_t len = 0;
        ls_err fe = {{0}};
        if ((have[i] & 2) && ls_read_file(x->errfile, 1 << 16, &x->message, &len, &fe) == 0) {
            while (len && (x->message[len - 1] == '\n' || x->message[len - 1] == '\r'))
                x->message[--len] = 0;
            k++;
            continue;
        }
        unlink(x->errfile);
        result_free(x);
    }
    free(have);
    *out = r;
    *n_out = k;
    return 0;
}

/* Merges a batch of finished points into OUT (one replacement), removes their part files,
 * reports them. */
static int merge_batch(const char *out, const spec *s, result *r, int64_t n, progress *p,
                       ls_err *err) {
    if (n == 0) return 0;
    batch_ctx b = {s, r, n};
    if (ls_sweep_replace(out, out, add_batch, &b, err)) return -1;
    for (int64_t i = 0; i < n; i++) {
        if (r[i].part) unlink(r[i].part);
        if (r[i].errfile) unlink(r[i].errfile);
        progress_point(p, s, &r[i]);
    }
    progress_draw(p);
    return 0;
}

/* ---- the command ---------------------------------------------------------------------- */

static int usage(void) {
    fprintf(stderr,
            "usage: lockstep sweep SPEC.yaml [-j N] [--resume] [--shard K/N] [-o OUT.h5]\n"
            "  -j N         run N points at once, each in its own worker process (default 1)\n"
            "  --resume     keep the points already in OUT (same spec) and run the rest\n"
            "  --shard K/N  run only the points whose index %% N == K-1 (join with lockstep merge)\n"
            "  -o OUT.h5    results file (default: the spec's `output`, else SPEC's base name + .h5)\n"
            "see docs/sweeps.md\n");
    return 2;
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi || !isdigit((unsigned char)s[0])) return -1;
    *out = v;
    return 0;
}

static char *default_output(const char *spec_path) {
    const char *slash = strrchr(spec_path, '/');
    const char *b = slash ? slash + 1 : spec_path;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".yaml")) n -= 5;
    else if (n > 4 && !strcmp(b + n - 4, ".yml")) n -= 4;
    char *o = malloc(n + 4);
    if (o) {
        memcpy(o, b, n);
        memcpy(o + n, ".h5", 4);
    }
    return o;
}

typedef struct sweep_run {
    spec s;
    char *out, *parts, *axes, *shard_text;
    char **cfg_err;                /* per point: the cross-key check's message, or NULL */
    unsigned char *present;
    int64_t *todo, n_todo;
    result *batch;
    worker *workers;
    int64_t n_workers;
} sweep_run;

static void sweep_run_free(sweep_run *w) {
    if (w->cfg_err)
        for (int64_t i = 0; i < w->s.n_points; i++) free(w->cfg_err[i]);
    free(w->cfg_err);
    free(w->present);
    free(w->todo);
    free(w->batch);
    free(w->workers);
    free(w->out);
    free(w->parts);
    free(w->axes);
    free(w->shard_text);
    spec_free(&w->s);
}

/* Kills and reaps the workers still running (after a fatal error). */
static void stop_workers(sweep_run *w) {
    for (int64_t i = 0; i < w->n_workers; i++) kill(w->workers[i].pid, SIGKILL);
    for (int64_t i = 0; i < w->n_workers; i++) {
        int st;
        while (waitpid(w->workers[i].pid, &st, 0) < 0 && errno == EINTR) {
        }
    }
    w->n_workers = 0;
}

/* Forks a worker for point idx. */
static int spawn(sweep_run *w, int64_t idx, pid_t parent, ls_err *err) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return ls_errf(err, "cannot start a worker: %s", strerror(errno));
    if (pid == 0) {
        /* die with the sweep: a killed sweep leaves no orphan writing part files */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(2);
        _exit(worker_main(&w->s, idx, w->parts));
    }
    w->workers[w->n_workers++] = (worker){pid, idx, now()};
    return 0;
}

/* Runs the to-do list; returns 0 or -1 (fatal: I/O on the results file, fork). */
static int run_points(sweep_run *w, int64_t jobs, progress *p, ls_err *err) {
    int64_t next = 0, nb = 0;
    pid_t parent = getpid();
    while (next < w->n_todo || w->n_workers > 0) {
        /* start workers; points whose configuration failed its checks finish at once */
        while (next < w->n_todo && w->n_workers < jobs) {
            int64_t idx = w->todo[next++];
            if (w->cfg_err[idx]) {
                result *r = &w->batch[nb++];
                memset(r, 0, sizeof *r);
                r->idx = idx;
                r->message = strdup(w->cfg_err[idx]);
                continue;
            }
            if (spawn(w, idx, parent, err)) goto fatal;
        }
        /* wait for one worker (unless results are already waiting), then reap the rest */
        for (int block = nb == 0 && w->n_workers > 0; w->n_workers > 0; block = 0) {
            int st;
            pid_t pid = waitpid(-1, &st, block ? 0 : WNOHANG);
            if (pid < 0 && errno == EINTR) continue;
            if (pid <= 0) break;
            for (int64_t i = 0; i < w->n_workers; i++) {
                if (w->workers[i].pid != pid) continue;
                classify(w->parts, &w->workers[i], st, &w->batch[nb++]);
                w->workers[i] = w->workers[--w->n_workers];
                break;
            }
        }
        /* keep the workers busy while the parent merges */
        while (next < w->n_todo && w->n_workers < jobs && !w->cfg_err[w->todo[next]]) {
            if (spawn(w, w->todo[next++], parent, err)) goto fatal;
        }
        int mrc = merge_batch(w->out, &w->s, w->batch, nb, p, err);
        for (int64_t i = 0; i < nb; i++) result_free(&w->batch[i]);
        nb = 0;
        if (mrc) goto fatal;
    }
    return 0;
fatal:
    for (int64_t i = 0; i < nb; i++) result_free(&w->batch[i]);
    stop_workers(w);
    return -1;
}

int ls_cmd_sweep(int argc, char **argv) {
    const char *spec_path = NULL, *out_arg = NULL;
    int64_t jobs = 1;
    int resume = 0;
    shard sh = {1, 1};
    int sharded = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--resume")) {
            resume = 1;
        } else if (!strcmp(a, "-j") || !strncmp(a, "-j", 2) || !strcmp(a, "--jobs")) {
            const char *v = a[1] == 'j' && a[2] ? a + 2 : i + 1 < argc ? argv[++i] : NULL;
            if (parse_i64(v, 1, 1024, &jobs)) {
                fprintf(stderr, "lockstep sweep: -j needs a number of workers from 1 to 1024\n");
                return usage();
            }
        } else if (!strcmp(a, "--shard")) {
            const char *v = i + 1 < argc ? argv[++i] : NULL;
            const char *slash = v ? strchr(v, '/') : NULL;
            char kbuf[32];
            if (slash && (size_t)(slash - v) < sizeof kbuf) {
                memcpy(kbuf, v, (size_t)(slash - v));
                kbuf[slash - v] = 0;
            }
            if (!slash || (size_t)(slash - v) >= sizeof kbuf ||
                parse_i64(kbuf, 1, LS_SWEEP_MAX_POINTS, &sh.k) ||
                parse_i64(slash + 1, 1, LS_SWEEP_MAX_POINTS, &sh.n) || sh.k > sh.n) {
                fprintf(stderr, "lockstep sweep: --shard wants K/N with 1 <= K <= N (e.g. 3/16)\n");
                return usage();
            }
            sharded = 1;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc) return usage();
            out_arg = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "lockstep sweep: unknown option '%s'\n", a);
            return usage();
        } else if (!spec_path) {
            spec_path = a;
        } else {
            fprintf(stderr, "lockstep sweep: more than one spec given ('%s', '%s')\n", spec_path, a);
            return usage();
        }
    }
    if (!spec_path) return usage();

    ls_h5_state h5 = ls_h5_quiet();
    sweep_run w;
    memset(&w, 0, sizeof w);
    ls_err err = {{0}};
    int code = 2;
    double t0 = now();
    spec *s = &w.s;
    if (spec_load(spec_path, s, &err)) goto fail;

    /* every point's configuration, before anything runs */
    w.cfg_err = calloc((size_t)s->n_points, sizeof *w.cfg_err);
    w.present = calloc((size_t)s->n_points, 1);
    if (!w.cfg_err || !w.present) {
        ls_errf(&err, "out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < s->n_points; i++) {
        ls_run_config rc;
        ls_err ce = {{0}};
        int r = point_config(s, i, &rc, &ce);
        if (r == -1) {
            err = ce;
            goto fail;
        }
        if (r == -2 && !(w.cfg_err[i] = strdup(ce.msg))) {
            ls_config_free(&rc);
            ls_errf(&err, "out of memory");
            goto fail;
        }
        ls_config_free(&rc);
    }

    w.out = out_arg ? strdup(out_arg) : s->output ? strdup(s->output) : default_output(spec_path);
    sbuf ax = {0};
    for (int64_t i = 0; i < s->n_axes; i++) {
        if (i) sb_add(&ax, "\n", 1);
        sb_str(&ax, s->axes[i].a[0].key);
    }
    w.axes = sb_take(&ax);
    char shard_buf[64] = "";
    if (sharded) snprintf(shard_buf, sizeof shard_buf, "%" PRId64 "/%" PRId64, sh.k, sh.n);
    w.shard_text = strdup(shard_buf);
    size_t plen = w.out ? strlen(w.out) + 8 : 0;
    w.parts = w.out ? malloc(plen) : NULL;
    if (!w.out || !w.axes || !w.shard_text || !w.parts) {
        ls_errf(&err, "out of memory");
        goto fail;
    }
    snprintf(w.parts, plen, "%s.parts", w.out);

    progress p = {.tty = isatty(2), .t0 = t0};
    for (int64_t i = 0; i < s->n_points; i++) p.total += in_shard(sh, i);

    /* the results file: resume from it, or start it */
    struct stat st;
    int exists = stat(w.out, &st) == 0;
    if (exists && !resume) {
        ls_errf(&err, "%s: exists; use --resume to continue that sweep or -o for a new file", w.out);
        goto fail;
    }
    if (exists) {
        hid_t f = H5Fopen(w.out, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0) {
            h5_fail(&err, w.out, "cannot open");
            goto fail;
        }
        ls_sweep_header h;
        int hrc = ls_sweep_read_header(f, w.out, &h, &err);
        if (!hrc && strcmp(h.spec_text, s->text))
            hrc = ls_errf(&err, "%s: was written by a different spec (its spec_text differs from %s); "
                          "cannot resume it: use -o for a new file", w.out, spec_path);
        else if (!hrc && strcmp(h.shard, w.shard_text))
            hrc = ls_errf(&err, "%s: holds shard '%s', not '%s'; cannot resume it with another --shard",
                          w.out, h.shard, w.shard_text);
        else if (!hrc && h.n_points != s->n_points)
            hrc = ls_errf(&err, "%s: n_points %" PRId64 " does not match the spec's %" PRId64, w.out,
                          h.n_points, s->n_points);
        if (!hrc) hrc = ls_sweep_tally(f, w.out, s->n_points, p.counts, w.present, &err);
        if (!hrc) {
            /* only points of this shard may be present */
            for (int64_t i = 0; i < s->n_points; i++)
                if (w.present[i] && !in_shard(sh, i))
                    hrc = ls_errf(&err, "%s: holds point p%05" PRId64 ", which is not in shard %s",
                                  w.out, i, w.shard_text);
        }
        ls_sweep_header_free(&h);
        H5Fclose(f);
        if (hrc) goto fail;
        p.done = p.counts[0] + p.counts[1] + p.counts[2];
        fprintf(stderr, "resuming %s: %" PRId64 " of %" PRId64 " points present\n", w.out, p.done,
                p.total);
    } else {
        ls_sweep_header h = {.spec_path = (char *)spec_path, .spec_text = s->text, .axes = w.axes,
                             .shard = w.shard_text, .n_points = s->n_points};
        header_ctx hc = {&h};
        if (ls_sweep_replace(w.out, NULL, write_header_cb, &hc, &err)) goto fail;
    }
    if (mkdir(w.parts, 0777) < 0 && errno != EEXIST) {
        ls_errf(&err, "%s: cannot create: %s", w.parts, strerror(errno));
        goto fail;
    }
    remove_temps(w.out, w.parts);
    {
        result *left = NULL;
        int64_t n_left = 0;
        if (scan_parts(w.parts, s, sh, w.present, exists, &left, &n_left, &err)) goto fail;
        int mrc = merge_batch(w.out, s, left, n_left, &p, &err);
        for (int64_t i = 0; i < n_left; i++) {
            if (!mrc) w.present[left[i].idx] = 1;
            result_free(&left[i]);
        }
        free(left);
        if (mrc) goto fail;
    }

    /* the rest */
    w.todo = calloc((size_t)s->n_points + 1, sizeof *w.todo);
    w.batch = calloc((size_t)s->n_points + 1, sizeof *w.batch);
    w.workers = calloc((size_t)jobs, sizeof *w.workers);
    if (!w.todo || !w.batch || !w.workers) {
        ls_errf(&err, "out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < s->n_points; i++)
        if (in_shard(sh, i) && !w.present[i]) w.todo[w.n_todo++] = i;
    progress_draw(&p);
    if (run_points(&w, jobs, &p, &err)) {
        if (p.tty && p.drawn) fputc('\n', stderr);
        goto fail;
    }
    if (p.tty && p.drawn) fputc('\n', stderr);
    rmdir(w.parts);

    printf("sweep: %" PRId64 " point%s%s%s%s: %" PRId64 " ok, %" PRId64 " divergent, %" PRId64
           " error (%.1f s) -> %s\n",
           p.total, p.total == 1 ? "" : "s", sharded ? " (shard " : "", sharded ? w.shard_text : "", sharded ? ")" : "",
           p.counts[0], p.counts[1], p.counts[2], now() - t0, w.out);
    fflush(stdout);
    if (!sharded && p.done == s->n_points && ls_sweep_analyse(w.out, &err)) goto fail;
    code = p.counts[1] ? 1 : 0;
    goto done;
fail:
    fprintf(stderr, "lockstep sweep: %s\n", err.msg);
    code = 2;
done:
    sweep_run_free(&w);
    ls_h5_restore(h5);
    fflush(stdout);
    return code;
}
