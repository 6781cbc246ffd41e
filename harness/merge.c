/* lockstep merge OUT.h5 IN.h5...: joins sweep results files of one spec (typically the
 * shards of a --shard K/N job array) into one. Every input must carry the same spec_text;
 * the output holds the union of their point groups (a point found in two inputs must be
 * identical in both: attributes, datasets and groups, bit for bit), shard "", and is
 * written atomically. When it holds every point of the spec, the analysis runs on it.
 * Exit 0 (no divergent point), 1 (a point diverged), 2 (bad input or I/O error). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/commands.h"
#include "harness/sweep.h"

/* ---- deep comparison of two HDF5 objects ---------------------------------------------- */

typedef struct names {
    char **v;
    int64_t n;
    int oom;
} names;

static void names_free(names *l) {
    for (int64_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static void names_push(names *l, const char *s) {
    char **nv = realloc(l->v, (size_t)(l->n + 1) * sizeof *nv);
    char *c = strdup(s);
    if (!nv || !c) {
        if (nv) l->v = nv;
        free(c);
        l->oom = 1;
        return;
    }
    l->v = nv;
    l->v[l->n++] = c;
}

static herr_t link_name_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g;
    (void)info;
    names_push(data, name);
    return 0;
}

static herr_t attr_name_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)loc;
    (void)info;
    names_push(data, name);
    return 0;
}

static int list_links(hid_t g, names *out) {
    memset(out, 0, sizeof *out);
    hsize_t idx = 0;
    if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, link_name_cb, out) < 0 || out->oom) {
        names_free(out);
        return -1;
    }
    return 0;
}

static int list_attrs(hid_t o, names *out) {
    memset(out, 0, sizeof *out);
    hsize_t idx = 0;
    if (H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_name_cb, out) < 0 || out->oom) {
        names_free(out);
        return -1;
    }
    return 0;
}

static int names_equal(const names *a, const names *b) {
    if (a->n != b->n) return 0;
    for (int64_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i])) return 0;
    return 1;
}

/* 1 equal, 0 different (why says how), -1 error */
static int attr_equal(hid_t oa, hid_t ob, const char *name, char *why, size_t cap) {
    hid_t a = H5Aopen(oa, name, H5P_DEFAULT), b = H5Aopen(ob, name, H5P_DEFAULT);
    hid_t ta = -1, tb = -1, sa = -1, sb = -1;
    unsigned char *ba = NULL, *bb = NULL;
    int rc = -1;
    if (a < 0 || b < 0) goto out;
    if ((ta = H5Aget_type(a)) < 0 || (tb = H5Aget_type(b)) < 0) goto out;
    if ((sa = H5Aget_space(a)) < 0 || (sb = H5Aget_space(b)) < 0) goto out;
    htri_t teq = H5Tequal(ta, tb);
    hssize_t na = H5Sget_simple_extent_npoints(sa), nb = H5Sget_simple_extent_npoints(sb);
    if (teq < 0 || na < 0 || nb < 0) goto out;
    if (!teq || na != nb) {
        snprintf(why, cap, "attribute '%s' has a different type or shape", name);
        rc = 0;
        goto out;
    }
    if (H5Tis_variable_str(ta) > 0) {
        char *va = NULL, *vb = NULL;
        if (na != 1 || ls_h5_attr_str(oa, name, &va) || ls_h5_attr_str(ob, name, &vb)) {
            free(va);
            free(vb);
            goto out;
        }
        rc = !strcmp(va, vb);
        free(va);
        free(vb);
    } else {
        size_t bytes = (size_t)na * H5Tget_size(ta);
        ba = malloc(bytes + 1);
        bb = malloc(bytes + 1);
        if (!ba || !bb || H5Aread(a, ta, ba) < 0 || H5Aread(b, tb, bb) < 0) goto out;
        rc = !memcmp(ba, bb, bytes);
    }
    if (!rc) snprintf(why, cap, "attribute '%s' differs", name);
out:
    free(ba);
    free(bb);
    if (sa >= 0) H5Sclose(sa);
    if (sb >= 0) H5Sclose(sb);
    if (ta >= 0) H5Tclose(ta);
    if (tb >= 0) H5Tclose(tb);
    if (a >= 0) H5Aclose(a);
    if (b >= 0) H5Aclose(b);
    return rc;
}

static int attrs_equal(hid_t a, hid_t b, const char *path, char *why, size_t cap) {
    names na, nb;
    if (list_attrs(a, &na)) return -1;
    if (list_attrs(b, &nb)) {
        names_free(&na);
        return -1;
    }
    int rc = names_equal(&na, &nb);
    if (!rc) snprintf(why, cap, "%s: different attributes", path);
    for (int64_t i = 0; rc == 1 && i < na.n; i++) {
        char w[512] = "";
        rc = attr_equal(a, b, na.v[i], w, sizeof w);
        if (rc == 0) snprintf(why, cap, "%s: %s", path, w);
    }
    names_free(&na);
    names_free(&nb);
    return rc;
}

static int datasets_equal(hid_t a, hid_t b, const char *path, char *why, size_t cap) {
    hid_t ta = H5Dget_type(a), tb = H5Dget_type(b), sa = H5Dget_space(a), sb = H5Dget_space(b);
    unsigned char *ba = NULL, *bb = NULL;
    int rc = -1;
    if (ta < 0 || tb < 0 || sa < 0 || sb < 0) goto out;
    int ra = H5Sget_simple_extent_ndims(sa), rb = H5Sget_simple_extent_ndims(sb);
    hsize_t da[H5S_MAX_RANK], db[H5S_MAX_RANK];
    htri_t teq = H5Tequal(ta, tb);
    if (ra < 0 || rb < 0 || teq < 0 || H5Sget_simple_extent_dims(sa, da, NULL) < 0 ||
        H5Sget_simple_extent_dims(sb, db, NULL) < 0)
        goto out;
    if (!teq || ra != rb || memcmp(da, db, (size_t)ra * sizeof *da)) {
        snprintf(why, cap, "%s: different type or shape", path);
        rc = 0;
        goto out;
    }
    if (H5Tis_variable_str(ta) > 0 || H5Tdetect_class(ta, H5T_VLEN) > 0) {
        /* results files hold no variable-length datasets under /points */
        snprintf(why, cap, "%s: variable-length data is not compared", path);
        rc = 0;
        goto out;
    }
    hssize_t n = H5Sget_simple_extent_npoints(sa);
    if (n < 0) goto out;
    size_t bytes = (size_t)n * H5Tget_size(ta);
    ba = malloc(bytes + 1);
    bb = malloc(bytes + 1);
    if (!ba || !bb) goto out;
    if (n > 0 && (H5Dread(a, ta, H5S_ALL, H5S_ALL, H5P_DEFAULT, ba) < 0 ||
                  H5Dread(b, tb, H5S_ALL, H5S_ALL, H5P_DEFAULT, bb) < 0))
        goto out;
    rc = n == 0 || !memcmp(ba, bb, bytes);
    if (!rc) snprintf(why, cap, "%s: different data", path);
out:
    free(ba);
    free(bb);
    if (ta >= 0) H5Tclose(ta);
    if (tb >= 0) H5Tclose(tb);
    if (sa >= 0) H5Sclose(sa);
    if (sb >= 0) H5Sclose(sb);
    return rc;
}

/* Compares the objects at `name` under la and lb: attributes, then datasets' data or
 * groups' members, recursively. 1 equal, 0 different (why), -1 error. */
static int objects_equal(hid_t la, hid_t lb, const char *name, const char *path, char *why,
                         size_t cap, int depth) {
    if (depth > 32) return -1;
    hid_t a = H5Oopen(la, name, H5P_DEFAULT), b = H5Oopen(lb, name, H5P_DEFAULT);
    int rc = -1;
    if (a < 0 || b < 0) goto out;
    H5I_type_t ia = H5Iget_type(a), ib = H5Iget_type(b);
    if (ia != ib || (ia != H5I_GROUP && ia != H5I_DATASET)) {
        snprintf(why, cap, "%s: different kinds of object", path);
        rc = 0;
        goto out;
    }
    if ((rc = attrs_equal(a, b, path, why, cap)) != 1) goto out;
    if (ia == H5I_DATASET) {
        rc = datasets_equal(a, b, path, why, cap);
        goto out;
    }
    names na, nb;
    if (list_links(a, &na)) goto out;
    if (list_links(b, &nb)) {
        names_free(&na);
        goto out;
    }
    rc = names_equal(&na, &nb);
    if (!rc) snprintf(why, cap, "%s: different members", path);
    for (int64_t i = 0; rc == 1 && i < na.n; i++) {
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", path, na.v[i]);
        rc = objects_equal(a, b, na.v[i], sub, why, cap, depth + 1);
    }
    names_free(&na);
    names_free(&nb);
out:
    if (a >= 0) H5Oclose(a);
    if (b >= 0) H5Oclose(b);
    return rc;
}

/* ---- the command ---------------------------------------------------------------------- */

typedef struct merge_ctx {
    const ls_sweep_header *h;
    hid_t *inputs;
    const int *owner;              /* per point: input index, -1 absent */
} merge_ctx;

static int write_merged(hid_t file, void *data, ls_err *err) {
    merge_ctx *m = data;
    if (ls_sweep_write_header(file, m->h, err)) return -1;
    hid_t points = H5Gopen2(file, "points", H5P_DEFAULT);
    if (points < 0) return ls_errf(err, "opening /points in the output");
    int rc = 0;
    for (int64_t i = 0; i < m->h->n_points && !rc; i++) {
        if (m->owner[i] < 0) continue;
        char src[32], name[16];
        snprintf(name, sizeof name, "p%05" PRId64, i);
        snprintf(src, sizeof src, "points/%s", name);
        if (H5Ocopy(m->inputs[m->owner[i]], src, points, name, H5P_DEFAULT, H5P_DEFAULT) < 0) {
            char buf[256];
            rc = ls_errf(err, "copying /points/%s: %s", name, ls_h5_reason(buf));
        }
    }
    H5Gclose(points);
    return rc;
}

int ls_cmd_merge(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fprintf(stderr, "usage: lockstep merge OUT.h5 IN.h5...\n"
                            "  joins sweep results files of one spec (e.g. --shard K/N parts); see docs/sweeps.md\n");
            return 0;
        }
    if (argc < 2 || argv[0][0] == '-') {
        fprintf(stderr, "usage: lockstep merge OUT.h5 IN.h5...\n");
        return 2;
    }
    const char *out = argv[0];
    int n_in = argc - 1;
    char **in = argv + 1;
    ls_h5_state h5 = ls_h5_quiet();
    ls_err err = {{0}};
    int code = 2;
    hid_t *files = malloc((size_t)n_in * sizeof *files);
    ls_sweep_header *hs = calloc((size_t)n_in, sizeof *hs);
    int *owner = NULL;
    int opened = 0;
    if (!files || !hs) {
        ls_errf(&err, "out of memory");
        goto fail;
    }
    for (; opened < n_in; opened++) {
        int i = opened;
        files[i] = H5Fopen(in[i], H5F_ACC_RDONLY, H5P_DEFAULT);
        if (files[i] < 0) {
            char buf[256];
            const char *why = ls_h5_reason(buf);
            ls_errf(&err, "%s: cannot open%s%s", in[i], why[0] ? ": " : "", why);
            goto fail;
        }
        if (ls_sweep_read_header(files[i], in[i], &hs[i], &err)) {
            H5Fclose(files[i]);
            goto fail;
        }
        if (i > 0 && (strcmp(hs[i].spec_text, hs[0].spec_text) || hs[i].n_points != hs[0].n_points)) {
            ls_errf(&err, "%s: comes from a different sweep spec than %s (spec_text differs); "
                          "refusing to merge", in[i], in[0]);
            H5Fclose(files[i]);
            ls_sweep_header_free(&hs[i]);
            goto fail;
        }
    }
    int64_t np = hs[0].n_points;
    owner = malloc((size_t)np * sizeof *owner);
    unsigned char *present = malloc((size_t)np);
    if (!owner || !present) {
        free(present);
        ls_errf(&err, "out of memory");
        goto fail;
    }
    for (int64_t p = 0; p < np; p++) owner[p] = -1;
    for (int i = 0; i < n_in; i++) {
        int64_t counts[3];
        if (ls_sweep_tally(files[i], in[i], np, counts, present, &err)) {
            free(present);
            goto fail;
        }
        for (int64_t p = 0; p < np; p++) {
            if (!present[p]) continue;
            if (owner[p] < 0) {
                owner[p] = i;
                continue;
            }
            char name[32], why[1200] = "";
            snprintf(name, sizeof name, "points/p%05" PRId64, p);
            int eq = objects_equal(files[owner[p]], files[i], name, name, why, sizeof why, 0);
            if (eq != 1) {
                free(present);
                if (eq < 0) {
                    char buf[256];
                    ls_errf(&err, "comparing /%s in %s and %s: %s", name, in[owner[p]], in[i],
                            ls_h5_reason(buf));
                } else {
                    ls_errf(&err, "point p%05" PRId64 " differs between %s and %s (/%s); refusing to merge",
                            p, in[owner[p]], in[i], why);
                }
                goto fail;
            }
        }
    }
    free(present);
    ls_sweep_header h = hs[0];
    h.shard = (char *)"";
    merge_ctx m = {&h, files, owner};
    if (ls_sweep_replace(out, NULL, write_merged, &m, &err)) goto fail;
    for (int i = 0; i < n_in; i++) H5Fclose(files[i]);
    opened = 0;

    int64_t counts[3] = {0, 0, 0}, have = 0;
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0 || ls_sweep_tally(f, out, np, counts, NULL, &err)) {
        if (f >= 0) H5Fclose(f);
        else ls_errf(&err, "%s: cannot reopen", out);
        goto fail;
    }
    H5Fclose(f);
    have = counts[0] + counts[1] + counts[2];
    printf("merge: %d files, %" PRId64 " of %" PRId64 " points: %" PRId64 " ok, %" PRId64
           " divergent, %" PRId64 " error -> %s\n",
           n_in, have, np, counts[0], counts[1], counts[2], out);
    fflush(stdout);
    if (have == np && ls_sweep_analyse(out, &err)) goto fail;
    code = counts[1] ? 1 : 0;
    goto done;
fail:
    fprintf(stderr, "lockstep merge: %s\n", err.msg);
    code = 2;
done:
    for (int i = 0; i < opened; i++) H5Fclose(files[i]);
    if (hs)
        for (int i = 0; i < n_in; i++) ls_sweep_header_free(&hs[i]);
    free(hs);
    free(files);
    free(owner);
    ls_h5_restore(h5);
    return code;
}
