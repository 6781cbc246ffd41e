/* A model directory's weights across one or more safetensors shards.
 *
 * The index file is as untrusted as the shards: every weight_map entry is checked
 * against what the shards really hold, in both directions, so a stale or hand-edited
 * index is an error at load time instead of a silently missing (zero) weight. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup, mkdtemp, O_CLOEXEC under plain -std=c17 */
#endif
#include "engine/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Shard names come from the index; a path component would let it point anywhere. */
static int plain_name(const char *s) {
    return s[0] && !strchr(s, '/') && !strstr(s, "..");
}

static int cmp_ptr_name(const void *pa, const void *pb) {
    const ls_st_tensor *a = *(const ls_st_tensor *const *)pa;
    const ls_st_tensor *b = *(const ls_st_tensor *const *)pb;
    return strcmp(a->name, b->name);
}

static int cmp_key_name(const void *key, const void *elem) {
    return strcmp((const char *)key, (*(const ls_st_tensor *const *)elem)->name);
}

static int64_t find_idx(const ls_checkpoint *c, const char *name) {
    if (!c->all || !name) return -1;
    const ls_st_tensor **p = bsearch(name, c->all, (size_t)c->n_all, sizeof *c->all,
                                     cmp_key_name);
    return p ? (int64_t)(p - c->all) : -1;
}

/* Gathers every file's tensors into one name-sorted table; a name in two files is
 * ambiguous, so it is an error whether or not an index exists. */
static int build_all(ls_checkpoint *c, ls_err *err) {
    int64_t n = 0;
    for (int64_t f = 0; f < c->n_files; f++) n += c->files[f].hdr.n_tensors;
    c->all = malloc((size_t)(n ? n : 1) * sizeof *c->all);
    c->used = calloc((size_t)(n ? n : 1), 1);
    if (!c->all || !c->used) return ls_errf(err, "%s: out of memory", c->dir);
    for (int64_t f = 0; f < c->n_files; f++)
        for (int64_t i = 0; i < c->files[f].hdr.n_tensors; i++)
            c->all[c->n_all++] = &c->files[f].hdr.tensors[i];
    qsort(c->all, (size_t)c->n_all, sizeof *c->all, cmp_ptr_name);
    for (int64_t i = 1; i < c->n_all; i++)
        if (strcmp(c->all[i - 1]->name, c->all[i]->name) == 0)
            return ls_errf(err, "%s: tensor '%s' is in both %s and %s", c->dir, c->all[i]->name,
                           c->all[i - 1]->file, c->all[i]->file);
    return 0;
}

static int64_t shard_of(const char **shards, int64_t n, const char *fn) {
    for (int64_t k = 0; k < n; k++)
        if (strcmp(shards[k], fn) == 0) return k;
    return -1;
}

static int open_index(ls_checkpoint *c, const char *idx, ls_err *err) {
    json_error_t je;
    json_t *root = json_load_file(idx, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return ls_errf(err, "%s: %s (line %d, column %d)", idx, je.text, je.line, je.column);
    int rc = -1;
    const char **shards = NULL;
    json_t *wm = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(wm)) {
        ls_errf(err, "%s: no \"weight_map\" object", idx);
        goto done;
    }
    size_t n = json_object_size(wm);
    if (n == 0) {
        ls_errf(err, "%s: weight_map is empty", idx);
        goto done;
    }

    /* Distinct shard names in first-seen order; they point into `root`. A model has
     * tens of shards, so a linear search is fine. */
    shards = calloc(n, sizeof *shards);
    if (!shards) {
        ls_errf(err, "%s: out of memory", idx);
        goto done;
    }
    int64_t ns = 0;
    const char *name;
    json_t *v;
    json_object_foreach(wm, name, v) {
        if (!json_is_string(v)) {
            ls_errf(err, "%s: weight_map entry '%s' is not a file name string", idx, name);
            goto done;
        }
        const char *fn = json_string_value(v);
        if (!plain_name(fn)) {
            ls_errf(err, "%s: weight_map entry '%s' names '%s', not a plain file name in the "
                    "model directory", idx, name, fn);
            goto done;
        }
        if (shard_of(shards, ns, fn) < 0) shards[ns++] = fn;
    }

    c->files = calloc((size_t)ns, sizeof *c->files);
    if (!c->files) {
        ls_errf(err, "%s: out of memory", idx);
        goto done;
    }
    c->n_files = ns; /* zeroed entries are safe to close if we fail part way */
    for (int64_t k = 0; k < ns; k++) {
        char *p = path_join(c->dir, shards[k]);
        if (!p) {
            ls_errf(err, "%s: out of memory", idx);
            goto done;
        }
        int r = ls_st_open(p, &c->files[k], err);
        free(p);
        if (r) {
            ls_err_prefix(err, "%s: shard: ", idx);
            goto done;
        }
    }
    if (build_all(c, err)) goto done;

    /* Index -> shards: each entry is in the shard it names (a name is in at most one
     * shard, build_all made sure). */
    json_object_foreach(wm, name, v) {
        const char *fn = json_string_value(v);
        const ls_st_file *f = &c->files[shard_of(shards, ns, fn)];
        int64_t i = find_idx(c, name);
        if (i < 0) {
            ls_errf(err, "%s: weight_map puts tensor '%s' in %s, but %s has no such tensor", idx,
                    name, fn, f->path);
            goto done;
        }
        if (c->all[i]->file != f->path) {
            ls_errf(err, "%s: weight_map puts tensor '%s' in %s, but it is in %s", idx, name, fn,
                    c->all[i]->file);
            goto done;
        }
    }
    /* Shards -> index: a tensor the index does not know about means the index is stale. */
    for (int64_t i = 0; i < c->n_all; i++) {
        if (!json_object_get(wm, c->all[i]->name)) {
            ls_errf(err, "%s: tensor '%s' in %s is not listed in weight_map", idx,
                    c->all[i]->name, c->all[i]->file);
            goto done;
        }
    }
    rc = 0;
done:
    free(shards);
    json_decref(root);
    return rc;
}

int ls_ckpt_open(const char *dir, ls_checkpoint *out, ls_err *err) {
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(dir, &st) != 0)
        return ls_errf(err, "%s: cannot open model directory: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return ls_errf(err, "%s: not a directory", dir);
    out->dir = strdup(dir);
    char *idx = path_join(dir, INDEX_NAME);
    char *single = path_join(dir, SINGLE_NAME);
    int rc = -1;
    if (!out->dir || !idx || !single) {
        ls_errf(err, "%s: out of memory", dir);
        goto done;
    }
    /* The index wins when both exist: that is how transformers resolves it too. */
    if (stat(idx, &st) == 0) {
        rc = open_index(out, idx, err);
    } else if (errno != ENOENT) {
        ls_errf(err, "%s: %s", idx, strerror(errno));
    } else if (stat(single, &st) == 0 || errno != ENOENT) {
        out->files = calloc(1, sizeof *out->files);
        if (!out->files) {
            ls_errf(err, "%s: out of memory", dir);
            goto done;
        }
        out->n_files = 1;
        rc = ls_st_open(single, &out->files[0], err);
        if (!rc) rc = build_all(out, err);
    } else {
        ls_errf(err, "%s: no " SINGLE_NAME " or " INDEX_NAME, dir);
    }
done:
    free(idx);
    free(single);
    if (rc) ls_ckpt_close(out);
    return rc;
}

void ls_ckpt_close(ls_checkpoint *c) {
    if (!c) return;
    for (int64_t f = 0; f < c->n_files && c->files; f++) ls_st_close(&c->files[f]);
    free(c->files);
    free(c->all);
    free(c->used);
    free(c->dir);
    memset(c, 0, sizeof *c);
}

int ls_ckpt_take(ls_checkpoint *c, const char *name, int ndim, const int64_t *shape,
                 const ls_st_tensor **out, ls_err *err) {
    if (out) *out = NULL;
    if (ndim < 0 || ndim > LS_MAX_DIMS || (ndim > 0 && !shape))
        return ls_errf(err, "%s: tensor '%s': bad expected shape (ndim %d)", c->dir, name, ndim);
    int64_t i = find_idx(c, name);
    if (i < 0) return ls_errf(err, "%s: missing tensor '%s'", c->dir, name);
    const ls_st_tensor *t = c->all[i];
    if (t->ndim != ndim || (ndim > 0 && memcmp(t->shape, shape, (size_t)ndim * sizeof *shape))) {
        char want[256], got[256];
        ls_st_shape_str(want, sizeof want, ndim, shape);
        ls_st_shape_str(got, sizeof got, t->ndim, t->shape);
        return ls_errf(err, "%s: tensor '%s': expected shape %s but found %s", t->file, name,
                       want, got);
    }
    if (t->dtype != LS_DT_F32 && t->dtype != LS_DT_F16 && t->dtype != LS_DT_BF16 &&
        t->dtype != LS_DT_F64)
        return ls_errf(err, "%s: tensor '%s': dtype %s, expected a float type (F32, F16, BF16 "
                       "or F64)", t->file, name, ls_dtype_name(t->dtype));
    c->used[i] = 1;
    if (out) *out = t;
    return 0;
}

int ls_ckpt_has(const ls_checkpoint *c, const char *name) {
    return find_idx(c, name) >= 0;
}

void ls_ckpt_ignore(ls_checkpoint *c, const char *name) {
    int64_t i = find_idx(c, name);
    if (i >= 0) c->used[i] = 1;
}

/* snprintf that appends at *pos and never runs past cap (it truncates instead). */
__attribute__((format(printf, 4, 5)))
static void append(char *buf, size_t cap, size_t *pos, const char *fmt, ...) {
    if (*pos + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf + *pos, cap - *pos, fmt, ap);
    va_end(ap);
    if (r < 0) return;
    *pos += (size_t)r < cap - *pos ? (size_t)r : cap - *pos - 1;
}

int ls_ckpt_check_all_used(const ls_checkpoint *c, ls_err *err) {
    enum { SHOW = 5 };
    char list[768];
    size_t pos = 0;
    int64_t n = 0;
    list[0] = '\0';
    for (int64_t i = 0; i < c->n_all; i++) {
        if (c->used[i]) continue;
        if (n < SHOW)
            append(list, sizeof list, &pos, "%s'%s' (%s)", n ? ", " : "", c->all[i]->name,
                   c->all[i]->file);
        n++;
    }
    if (n == 0) return 0;
    if (n > SHOW) append(list, sizeof list, &pos, " ... and %" PRId64 " more", n - SHOW);
    return ls_errf(err, "%s: %" PRId64 " unexpected tensor%s: %s", c->dir, n, n == 1 ? "" : "s",
                   list);
}
