/* lockstep inspect TRACE.h5: the run's summary from the trace file alone (schema:
 * docs/trace.md). Exit 0 on success, 2 on a missing, foreign or damaged file. */
#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/h5util.h"
#include "harness/trace.h"

#define MAX_SHOWN 10

typedef struct reader {
    const char *path;
    hid_t file;
    char msg[512];
} reader;

static int bad(reader *r, const char *what) {
    if (!r->msg[0]) snprintf(r->msg, sizeof r->msg, "%s", what);
    return -1;
}

/* Reads a scalar string attribute (variable-length or fixed) into a malloc'd string. */
static char *read_str(reader *r, hid_t loc, const char *name) {
    char *out = NULL;
    if (H5Aexists(loc, name) > 0 && ls_h5_attr_str(loc, name, &out) == 0) return out;
    char what[128];
    snprintf(what, sizeof what, "attribute '%s' missing or unreadable", name);
    bad(r, what);
    return NULL;
}

static int read_num(reader *r, hid_t loc, const char *name, hid_t mem_type, void *v) {
    hid_t a = H5Aexists(loc, name) > 0 ? H5Aopen(loc, name, H5P_DEFAULT) : -1;
    int rc = a >= 0 && H5Aread(a, mem_type, v) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    if (rc) {
        char what[128];
        snprintf(what, sizeof what, "attribute '%s' missing or unreadable", name);
        bad(r, what);
    }
    return rc;
}

static int64_t get_i64(reader *r, hid_t loc, const char *name, int *rc) {
    int64_t v = 0;
    if (read_num(r, loc, name, H5T_NATIVE_INT64, &v)) *rc = -1;
    return v;
}

static double get_f64(reader *r, hid_t loc, const char *name, int *rc) {
    double v = 0;
    if (read_num(r, loc, name, H5T_NATIVE_DOUBLE, &v)) *rc = -1;
    return v;
}

/* Rows of a 1-D dataset, -1 if absent or not 1-D. */
static int64_t rows_of(reader *r, const char *name) {
    int64_t n = ls_h5_rows(r->file, name);
    if (n < 0) {
        char what[128];
        snprintf(what, sizeof what, "dataset /%s missing or unreadable", name);
        bad(r, what);
    }
    return n;
}

typedef struct div_row {
    int64_t request, rollout, position, slot, prev_tenant, layer;
    char component[17];
    char summary[257];
} div_row;

/* The first n rows of /divergences (HDF5 converts compound types by member name). */
static int read_divergences(reader *r, div_row *rows, int64_t n) {
    hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(div_row)), s16 = -1, s256 = -1;
    hid_t ds = -1, fsp = -1, msp = -1;
    int rc = -1;
    if (mt < 0) goto done;
    if ((s16 = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(s16, 16) < 0 ||
        H5Tset_strpad(s16, H5T_STR_NULLPAD) < 0)
        goto done;
    if ((s256 = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(s256, 256) < 0 ||
        H5Tset_strpad(s256, H5T_STR_NULLPAD) < 0)
        goto done;
    if (H5Tinsert(mt, "request", HOFFSET(div_row, request), H5T_NATIVE_INT64) < 0 ||
        H5Tinsert(mt, "rollout", HOFFSET(div_row, rollout), H5T_NATIVE_INT64) < 0 ||
        H5Tinsert(mt, "position", HOFFSET(div_row, position), H5T_NATIVE_INT64) < 0 ||
        H5Tinsert(mt, "slot", HOFFSET(div_row, slot), H5T_NATIVE_INT64) < 0 ||
        H5Tinsert(mt, "prev_tenant", HOFFSET(div_row, prev_tenant), H5T_NATIVE_INT64) < 0 ||
        H5Tinsert(mt, "layer", HOFFSET(div_row, layer), H5T_NATIVE_INT64) < 0 ||
        H5Tinsert(mt, "component", HOFFSET(div_row, component), s16) < 0 ||
        H5Tinsert(mt, "summary", HOFFSET(div_row, summary), s256) < 0)
        goto done;
    if ((ds = H5Dopen2(r->file, "divergences", H5P_DEFAULT)) < 0) goto done;
    if ((fsp = H5Dget_space(ds)) < 0) goto done;
    hsize_t start[1] = {0}, count[1] = {(hsize_t)n};
    if (H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0) goto done;
    if ((msp = H5Screate_simple(1, count, NULL)) < 0) goto done;
    if (H5Dread(ds, mt, msp, fsp, H5P_DEFAULT, rows) < 0) goto done;
    rc = 0;
done:
    if (msp >= 0) H5Sclose(msp);
    if (fsp >= 0) H5Sclose(fsp);
    if (ds >= 0) H5Dclose(ds);
    if (s256 >= 0) H5Tclose(s256);
    if (s16 >= 0) H5Tclose(s16);
    if (mt >= 0) H5Tclose(mt);
    if (rc) bad(r, "dataset /divergences unreadable");
    return rc;
}

static int print_trace(reader *r) {
    hid_t root = r->file;
    char *format = read_str(r, root, "format");
    if (!format) {
        snprintf(r->msg, sizeof r->msg, "not a lockstep trace (no 'format' attribute)");
        return -1;
    }
    int is_trace = !strcmp(format, "lockstep-trace");
    if (!is_trace)
        snprintf(r->msg, sizeof r->msg, "not a lockstep trace (format '%.64s')", format);
    free(format);
    if (!is_trace) return -1;
    int rc = 0;
    int64_t version = get_i64(r, root, "format_version", &rc);
    if (rc) return -1;
    if (version != 1) {
        snprintf(r->msg, sizeof r->msg, "unsupported trace format_version %" PRId64
                 " (this lockstep reads 1)", version);
        return -1;
    }
    static const char *const keys[] = {"tool_version", "created", "config_path", "model_dir",
                                       "model_hash", "precision", "mode", "backend",
                                       "verdict"};
    enum { NKEYS = sizeof keys / sizeof keys[0] };
    char *v[NKEYS] = {0};
    for (size_t i = 0; i < NKEYS && !rc; i++)
        if (!(v[i] = read_str(r, root, keys[i]))) rc = -1;
    int64_t exit_code = rc ? 0 : get_i64(r, root, "exit_code", &rc);

    hid_t g = rc ? -1 : H5Gopen2(root, "summary", H5P_DEFAULT);
    if (!rc && g < 0) rc = bad(r, "group /summary missing");
    ls_compare_summary S = {0};
    ls_engine_stats st = {0};
    if (!rc) {
#define I(s, f) (s).f = get_i64(r, g, #f, &rc)
#define D(s, f) (s).f = get_f64(r, g, #f, &rc)
        I(S, tokens); I(S, divergent_tokens); I(S, bitwise_equal_tokens); I(S, seqs);
        I(S, divergent_seqs); D(S, max_abs); D(S, mean_abs); D(S, std_abs);
        D(S, prob_pearson); D(S, kl_k3); I(S, first_seq); I(S, first_position);
        I(st, steps); I(st, tokens_computed); I(st, preemptions); I(st, forks);
        I(st, cow_copies); I(st, prefix_hit_tokens); I(st, snapshot_restores);
        I(st, snapshots_taken); I(st, max_slot_used); I(st, distinct_slots_used);
        I(st, padded_rows); I(st, chunked_prefills); I(st, num_blocks); I(st, num_slots);
#undef I
#undef D
    }
    if (g >= 0) H5Gclose(g);
    int64_t n_steps = rc ? -1 : rows_of(r, "steps");
    int64_t n_req = n_steps < 0 ? -1 : rows_of(r, "requests");
    int64_t n_div = n_req < 0 ? -1 : rows_of(r, "divergences");
    if (n_steps < 0 || n_req < 0 || n_div < 0) rc = -1;
    int64_t shown = n_div > MAX_SHOWN ? MAX_SHOWN : n_div;
    div_row *divs = NULL;
    if (!rc && shown > 0) {
        divs = calloc((size_t)shown, sizeof *divs);
        if (!divs) rc = bad(r, "out of memory");
        else rc = read_divergences(r, divs, shown);
    }
    if (!rc) {
        printf("trace       %s\n", r->path);
        printf("tool        lockstep %s\n", v[0]);
        printf("created     %s\n", v[1]);
        printf("config      %s\n", v[2][0] ? v[2] : "(none)");
        printf("model       %s (hash %s)\n", v[3], v[4]);
        printf("run         precision %s, mode %s, backend %s\n", v[5], v[6], v[7]);
        printf("verdict     %s (exit %" PRId64 ")\n", v[8], exit_code);
        printf("requests    %" PRId64 "\n", n_req);
        printf("tokens      %" PRId64 " compared, %" PRId64 " divergent, %" PRId64
               " bitwise equal\n", S.tokens, S.divergent_tokens, S.bitwise_equal_tokens);
        printf("sequences   %" PRId64 ", %" PRId64 " divergent\n", S.seqs, S.divergent_seqs);
        printf("|delta|     max %.6g, mean %.6g, std %.6g\n", S.max_abs, S.mean_abs, S.std_abs);
        printf("prob corr   pearson %.9g, k3 %.6g\n", S.prob_pearson, S.kl_k3);
        if (S.first_seq >= 0)
            printf("first       seq %" PRId64 " position %" PRId64 "\n", S.first_seq,
                   S.first_position);
        printf("engine      %" PRId64 " steps (%" PRId64 " step rows), %" PRId64
               " tokens computed, %" PRId64 " preemptions, %" PRId64 " forks, %" PRId64
               " cow copies\n", st.steps, n_steps, st.tokens_computed, st.preemptions,
               st.forks, st.cow_copies);
        printf("cache       %" PRId64 " blocks, %" PRId64 " slots (max used %" PRId64
               ", distinct %" PRId64 "), %" PRId64 " prefix-hit tokens, %" PRId64
               " snapshot restores, %" PRId64 " snapshots taken\n", st.num_blocks,
               st.num_slots, st.max_slot_used, st.distinct_slots_used, st.prefix_hit_tokens,
               st.snapshot_restores, st.snapshots_taken);
        printf("batching    %" PRId64 " padded rows, %" PRId64 " chunked prefills\n",
               st.padded_rows, st.chunked_prefills);
        if (n_div == 0) {
            printf("divergences none localised\n");
        } else {
            printf("divergences %" PRId64 " localised%s\n", n_div,
                   n_div > shown ? " (first 10 shown)" : "");
            for (int64_t i = 0; i < shown; i++) {
                const div_row *d = &divs[i];
                printf("  request %" PRId64 " rollout %" PRId64 " position %" PRId64
                       " slot %" PRId64 " prev tenant %" PRId64 ": ", d->request, d->rollout,
                       d->position, d->slot, d->prev_tenant);
                if (d->layer >= 0)
                    printf("layer %" PRId64 " %s: %s\n", d->layer, d->component, d->summary);
                else
                    printf("not localised%s%s\n", d->summary[0] ? ": " : "", d->summary);
            }
        }
    }
    free(divs);
    for (size_t i = 0; i < NKEYS; i++) free(v[i]);
    return rc;
}

static int usage(FILE *f) {
    fprintf(f, "usage: lockstep inspect TRACE.h5\n"
               "  Prints a run's summary, engine statistics and first divergences from its\n"
               "  HDF5 trace (schema: docs/trace.md).\n");
    return f == stdout ? 0 : 2;
}

int ls_cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return usage(stdout);
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "lockstep inspect: unknown option '%s'\n", argv[i]);
            return usage(stderr);
        }
        if (path) {
            fprintf(stderr, "lockstep inspect: one trace at a time\n");
            return usage(stderr);
        }
        path = argv[i];
    }
    if (!path) return usage(stderr);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        fprintf(stderr, "lockstep inspect: cannot open '%s': %s\n", path, strerror(errno));
        return 2;
    }
    fclose(probe);

    H5E_auto2_t old_func = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    reader r = {path, -1, {0}};
    int rc = 2;
    htri_t is_h5 = H5Fis_hdf5(path);
    if (is_h5 <= 0) {
        fprintf(stderr, "lockstep inspect: '%s' is not an HDF5 file (not a lockstep trace)\n",
                path);
        goto done;
    }
    r.file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (r.file < 0) {
        fprintf(stderr, "lockstep inspect: cannot open '%s': damaged or incomplete HDF5 file\n",
                path);
        goto done;
    }
    if (print_trace(&r)) {
        fprintf(stderr, "lockstep inspect: '%s': %s\n", path,
                r.msg[0] ? r.msg : "damaged or incomplete trace");
        goto done;
    }
    rc = fflush(stdout) ? 2 : 0;
done:
    if (r.file >= 0 && H5Fclose(r.file) < 0 && rc == 0) rc = 2;
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    return rc;
}
