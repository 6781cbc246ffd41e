/* HDF5 trace writer. The schema lives in docs/trace.md; tests/trace_schema.py checks the
 * file against that page, so a change here must change the page too.
 *
 * Every HDF5 call is checked; HDF5's own error printing is switched off while we work and
 * the innermost message of its error stack goes into ours. The file is written under a
 * temporary name in the destination directory, closed, fsynced and renamed into place;
 * on any failure the temporary file is removed and nothing is left behind. */
#include "harness/trace.h"
#include "harness/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ls_build.h"

#define TRACE_FORMAT "lockstep-trace"
#define TRACE_FORMAT_VERSION 1

/* ---- HDF5 error capture ------------------------------------------------------------ */


/* ---- compound types from field tables ---------------------------------------------- */

typedef enum { F_I64, F_I32, F_F64, F_U8, F_STR } field_kind;

typedef struct field {
    const char *name;
    size_t offset;                 /* in the in-memory row struct */
    field_kind kind;
    size_t str_len;                /* F_STR: fixed length in the file (NUL-padded) */
} field;

static size_t field_size(const field *f) {
    switch (f->kind) {
    case F_I64: case F_F64: return 8;
    case F_I32: return 4;
    case F_U8: return 1;
    case F_STR: return f->str_len;
    }
    return 0;
}

static hid_t fixed_string_type(size_t len) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, len) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
        H5Tset_cset(t, H5T_CSET_ASCII) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* file != 0: packed little-endian file type; else the native in-memory type. */
static hid_t make_compound(const field *fs, size_t nf, size_t mem_size, int file) {
    size_t total = 0;
    for (size_t i = 0; i < nf; i++) total += field_size(&fs[i]);
    hid_t t = H5Tcreate(H5T_COMPOUND, file ? total : mem_size);
    if (t < 0) return -1;
    size_t off = 0;
    for (size_t i = 0; i < nf; i++) {
        const field *f = &fs[i];
        hid_t base = -1, owned = -1;
        switch (f->kind) {
        case F_I64: base = file ? H5T_STD_I64LE : H5T_NATIVE_INT64; break;
        case F_I32: base = file ? H5T_STD_I32LE : H5T_NATIVE_INT32; break;
        case F_F64: base = file ? H5T_IEEE_F64LE : H5T_NATIVE_DOUBLE; break;
        case F_U8: base = file ? H5T_STD_U8LE : H5T_NATIVE_UINT8; break;
        case F_STR: base = owned = fixed_string_type(f->str_len); break;
        }
        herr_t rc = base < 0 ? -1 : H5Tinsert(t, f->name, file ? off : f->offset, base);
        if (owned >= 0) H5Tclose(owned);
        if (rc < 0) {
            H5Tclose(t);
            return -1;
        }
        off += field_size(f);
    }
    return t;
}

/* ---- writing ------------------------------------------------------------------------ */

typedef struct writer {
    const char *path;              /* final path, for messages */
    hid_t file;
    ls_err *err;
} writer;

static int fail(writer *w, const char *what) {
    char buf[256];
    const char *why = ls_h5_reason(buf);
    return ls_errf(w->err, "cannot create trace '%s': %s%s%s", w->path, what, why[0] ? ": " : "",
                   why);
}

static int fail_oom(writer *w, const char *what) {
    return ls_errf(w->err, "cannot create trace '%s': %s: out of memory", w->path, what);
}

/* A 1-D dataset of n elements (n may be 0), chunked and unlimited so empty tables exist
 * with their type, deflate-compressed when the filter is available. */
static int write_dataset(writer *w, const char *name, hid_t mem_type, hid_t file_type,
                         size_t elem_size, const void *data, int64_t n) {
    char what[128];
    snprintf(what, sizeof what, "writing /%s", name);
    hsize_t dims[1] = {(hsize_t)n}, maxdims[1] = {H5S_UNLIMITED};
    size_t per_chunk = elem_size ? (size_t)(1 << 20) / elem_size : 1;
    if (per_chunk < 1) per_chunk = 1;
    if ((hsize_t)per_chunk > dims[0]) per_chunk = dims[0] ? (size_t)dims[0] : 1;
    hsize_t chunk[1] = {(hsize_t)per_chunk};
    hid_t space = -1, dcpl = -1, ds = -1;
    int rc = -1;
    if ((space = H5Screate_simple(1, dims, maxdims)) < 0) goto out;
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0) goto out;
    if (H5Pset_chunk(dcpl, 1, chunk) < 0) goto out;
    if (H5Pset_obj_track_times(dcpl, 0) < 0) goto out;
    htri_t have_deflate = H5Zfilter_avail(H5Z_FILTER_DEFLATE);
    if (have_deflate < 0) goto out;
    if (have_deflate > 0 && n > 0 && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, 4) < 0))
        goto out;
    if ((ds = H5Dcreate2(w->file, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        goto out;
    if (n > 0 && H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) goto out;
    rc = 0;
out:
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return rc ? fail(w, what) : 0;
}

static int write_table(writer *w, const char *name, const field *fs, size_t nf,
                       size_t row_size, const void *rows, int64_t n) {
    hid_t mt = make_compound(fs, nf, row_size, 0);
    hid_t ft = mt < 0 ? -1 : make_compound(fs, nf, row_size, 1);
    if (mt < 0 || ft < 0) {
        if (mt >= 0) H5Tclose(mt);
        char what[128];
        snprintf(what, sizeof what, "building the type of /%s", name);
        return fail(w, what);
    }
    int rc = write_dataset(w, name, mt, ft, row_size, rows, n);
    H5Tclose(ft);
    H5Tclose(mt);
    return rc;
}

static int attr_write(writer *w, hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                      const void *value) {
    hid_t space = H5Screate(H5S_SCALAR), a = -1;
    int rc = -1;
    if (space < 0) goto out;
    if ((a = H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto out;
    if (H5Awrite(a, mem_type, value) < 0) goto out;
    rc = 0;
out:
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    if (space >= 0) H5Sclose(space);
    if (rc) {
        char what[128];
        snprintf(what, sizeof what, "writing attribute '%s'", name);
        return fail(w, what);
    }
    return 0;
}

static int attr_i64(writer *w, hid_t loc, const char *name, int64_t v) {
    return attr_write(w, loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int attr_f64(writer *w, hid_t loc, const char *name, double v) {
    return attr_write(w, loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

/* Variable-length UTF-8 string attribute; NULL is written as "". */
static int attr_str(writer *w, hid_t loc, const char *name, const char *s) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        if (t >= 0) H5Tclose(t);
        return fail(w, "building a string type");
    }
    const char *v = s ? s : "";
    int rc = attr_write(w, loc, name, t, t, &v);
    H5Tclose(t);
    return rc;
}

/* ---- rows --------------------------------------------------------------------------- */

#define FLD(T, name, kind) {#name, offsetof(T, name), kind, 0}
#define FSTR(T, name) {#name, offsetof(T, name), F_STR, sizeof(((T *)0)->name)}
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

typedef struct request_row {
    int64_t request, prompt_len, n_rollouts, max_new_tokens, arrival_step;
    double temperature;
    int64_t top_k;
    double top_p;
} request_row;

static const field request_fields[] = {
    FLD(request_row, request, F_I64),        FLD(request_row, prompt_len, F_I64),
    FLD(request_row, n_rollouts, F_I64),     FLD(request_row, max_new_tokens, F_I64),
    FLD(request_row, arrival_step, F_I64),   FLD(request_row, temperature, F_F64),
    FLD(request_row, top_k, F_I64),          FLD(request_row, top_p, F_F64),
};

typedef struct sequence_row {
    int64_t seq, request, rollout, prompt_len, len, token_offset, first_divergent;
} sequence_row;

static const field sequence_fields[] = {
    FLD(sequence_row, seq, F_I64),          FLD(sequence_row, request, F_I64),
    FLD(sequence_row, rollout, F_I64),      FLD(sequence_row, prompt_len, F_I64),
    FLD(sequence_row, len, F_I64),          FLD(sequence_row, token_offset, F_I64),
    FLD(sequence_row, first_divergent, F_I64),
};

typedef struct token_row {
    int64_t seq, request, rollout, position;
    int32_t token;
    double engine_logprob, reference_logprob, delta;
    uint8_t bitwise_equal, divergent;
    int32_t ref_argmax;
    int64_t step, batch_row, slot, prev_tenant, block, n_blocks, chunk, first_chunk;
    uint8_t from_snapshot;
    int64_t preemptions;
} token_row;

static const field token_fields[] = {
    FLD(token_row, seq, F_I64),               FLD(token_row, request, F_I64),
    FLD(token_row, rollout, F_I64),           FLD(token_row, position, F_I64),
    FLD(token_row, token, F_I32),             FLD(token_row, engine_logprob, F_F64),
    FLD(token_row, reference_logprob, F_F64), FLD(token_row, delta, F_F64),
    FLD(token_row, bitwise_equal, F_U8),      FLD(token_row, divergent, F_U8),
    FLD(token_row, ref_argmax, F_I32),        FLD(token_row, step, F_I64),
    FLD(token_row, batch_row, F_I64),         FLD(token_row, slot, F_I64),
    FLD(token_row, prev_tenant, F_I64),       FLD(token_row, block, F_I64),
    FLD(token_row, n_blocks, F_I64),          FLD(token_row, chunk, F_I64),
    FLD(token_row, first_chunk, F_I64),
    FLD(token_row, from_snapshot, F_U8),      FLD(token_row, preemptions, F_I64),
};

static const field step_fields[] = {
    FLD(ls_engine_step, step, F_I64),        FLD(ls_engine_step, n_seqs, F_I64),
    FLD(ls_engine_step, n_tokens, F_I64),    FLD(ls_engine_step, n_prefill, F_I64),
    FLD(ls_engine_step, n_decode, F_I64),    FLD(ls_engine_step, n_padding, F_I64),
    FLD(ls_engine_step, free_blocks, F_I64), FLD(ls_engine_step, free_slots, F_I64),
    FLD(ls_engine_step, preemptions, F_I64),
};

static const field tenant_fields[] = {
    FLD(ls_engine_tenant, id, F_I64), FLD(ls_engine_tenant, request, F_I64),
    FLD(ls_engine_tenant, rollout, F_I64),
};

typedef struct divergence_row {
    int64_t seq, request, rollout, position, step, layer;
    char component[16];
    char summary[256];
    int64_t slot, prev_tenant, block;
} divergence_row;

static const field divergence_fields[] = {
    FLD(divergence_row, seq, F_I64),      FLD(divergence_row, request, F_I64),
    FLD(divergence_row, rollout, F_I64),  FLD(divergence_row, position, F_I64),
    FLD(divergence_row, step, F_I64),     FLD(divergence_row, layer, F_I64),
    FSTR(divergence_row, component),      FSTR(divergence_row, summary),
    FLD(divergence_row, slot, F_I64),     FLD(divergence_row, prev_tenant, F_I64),
    FLD(divergence_row, block, F_I64),
};

typedef struct probe_row {
    int64_t divergence, layer;
    char component[16];
    double max_abs_diff;
    int64_t first_diff_index;
} probe_row;

static const field probe_fields[] = {
    FLD(probe_row, divergence, F_I64),   FLD(probe_row, layer, F_I64),
    FSTR(probe_row, component),          FLD(probe_row, max_abs_diff, F_F64),
    FLD(probe_row, first_diff_index, F_I64),
};

/* Copies a C string into a fixed field: NUL-padded, truncated if too long. */
static void fixed_copy(char *dst, size_t n, const char *src) {
    memset(dst, 0, n);
    if (src) {
        size_t l = strnlen(src, n);
        memcpy(dst, src, l);
    }
}

/* The provenance of engine seq s at position p, or NULL where there is none. */
static const ls_provenance *prov_at(const ls_engine_result *e, int64_t s, int64_t p) {
    if (s < 0 || s >= e->n_seqs) return NULL;
    const ls_engine_seq *q = &e->seqs[s];
    if (!q->prov || p < q->prompt_len || p >= q->len) return NULL;
    return &q->prov[p];
}

static int write_requests(writer *w, const ls_workload *wl) {
    int64_t n = wl ? wl->n_requests : 0;
    request_row *rows = calloc((size_t)n + 1, sizeof *rows);
    if (!rows) return fail_oom(w, "/requests");
    for (int64_t i = 0; i < n; i++) {
        const ls_request *r = &wl->requests[i];
        rows[i] = (request_row){i, r->prompt_len, r->n_rollouts, r->max_new_tokens,
                                r->arrival_step, r->sampling.temperature, r->sampling.top_k,
                                r->sampling.top_p};
    }
    int rc = write_table(w, "requests", request_fields, NFIELDS(request_fields), sizeof *rows,
                         rows, n);
    free(rows);
    return rc;
}

static int write_sequences(writer *w, const ls_engine_result *e, const ls_comparison *cmp) {
    int64_t n = e->n_seqs, total = 0;
    for (int64_t s = 0; s < n; s++) {
        if (e->seqs[s].len < 0 || (e->seqs[s].len > 0 && !e->seqs[s].tokens))
            return ls_errf(w->err, "cannot create trace '%s': engine seq %" PRId64
                           " has no tokens", w->path, s);
        total += e->seqs[s].len;
    }
    sequence_row *rows = calloc((size_t)n + 1, sizeof *rows);
    int32_t *toks = calloc((size_t)total + 1, sizeof *toks);
    if (!rows || !toks) {
        free(rows);
        free(toks);
        return fail_oom(w, "/sequences");
    }
    int64_t off = 0;
    for (int64_t s = 0; s < n; s++) {
        const ls_engine_seq *q = &e->seqs[s];
        int64_t fd = cmp && cmp->first_divergent ? cmp->first_divergent[s] : -1;
        rows[s] = (sequence_row){s, q->request, q->rollout, q->prompt_len, q->len, off, fd};
        if (q->len > 0) memcpy(toks + off, q->tokens, (size_t)q->len * sizeof *toks);
        off += q->len;
    }
    int rc = write_table(w, "sequences", sequence_fields, NFIELDS(sequence_fields),
                         sizeof *rows, rows, n);
    if (!rc)
        rc = write_dataset(w, "sequence_tokens", H5T_NATIVE_INT32, H5T_STD_I32LE, sizeof *toks,
                           toks, total);
    free(rows);
    free(toks);
    return rc;
}

static int write_tokens(writer *w, const ls_engine_result *e, const ls_comparison *cmp) {
    int64_t n = cmp ? cmp->n_tokens : 0;
    token_row *rows = calloc((size_t)n + 1, sizeof *rows);
    if (!rows) return fail_oom(w, "/tokens");
    for (int64_t i = 0; i < n; i++) {
        const ls_token_cmp *t = &cmp->tokens[i];
        if (t->seq < 0 || t->seq >= e->n_seqs) {
            free(rows);
            return ls_errf(w->err, "cannot create trace '%s': compared token %" PRId64
                           " names engine seq %" PRId64 " of %" PRId64, w->path, i, t->seq,
                           e->n_seqs);
        }
        const ls_engine_seq *q = &e->seqs[t->seq];
        const ls_provenance *p = prov_at(e, t->seq, t->position);
        ls_provenance none = {.step = -1, .batch_row = -1, .slot = -1, .prev_tenant = -1, .block = -1,
                              .n_blocks = -1, .chunk = -1, .first_chunk = -1, .from_snapshot = 0,
                              .preemptions = -1};
        if (!p) p = &none;
        rows[i] = (token_row){
            .seq = t->seq, .request = q->request, .rollout = q->rollout,
            .position = t->position, .token = t->token, .engine_logprob = t->engine,
            .reference_logprob = t->reference, .delta = t->delta,
            .bitwise_equal = (uint8_t)(t->bitwise_equal != 0),
            .divergent = (uint8_t)(t->divergent != 0), .ref_argmax = t->ref_argmax,
            .step = p->step, .batch_row = p->batch_row, .slot = p->slot,
            .prev_tenant = p->prev_tenant, .block = p->block, .n_blocks = p->n_blocks,
            .chunk = p->chunk, .first_chunk = p->first_chunk, .from_snapshot = (uint8_t)(p->from_snapshot != 0),
            .preemptions = p->preemptions};
    }
    int rc = write_table(w, "tokens", token_fields, NFIELDS(token_fields), sizeof *rows, rows, n);
    free(rows);
    return rc;
}

static int write_localisation(writer *w, const ls_engine_result *e, const ls_localisation *locs,
                              int64_t n) {
    if (!locs) n = 0;
    int64_t np = 0;
    for (int64_t d = 0; d < n; d++) np += locs[d].probes ? locs[d].n_probes : 0;
    divergence_row *rows = calloc((size_t)n + 1, sizeof *rows);
    probe_row *probes = calloc((size_t)np + 1, sizeof *probes);
    if (!rows || !probes) {
        free(rows);
        free(probes);
        return fail_oom(w, "/divergences");
    }
    int64_t k = 0;
    for (int64_t d = 0; d < n; d++) {
        const ls_localisation *l = &locs[d];
        const ls_provenance *p = prov_at(e, l->seq, l->position);
        divergence_row *r = &rows[d];
        *r = (divergence_row){.seq = l->seq, .request = l->request, .rollout = l->rollout,
                              .position = l->position, .step = l->step, .layer = l->layer,
                              .slot = p ? p->slot : -1, .prev_tenant = p ? p->prev_tenant : -1,
                              .block = p ? p->block : -1};
        fixed_copy(r->component, sizeof r->component, l->component);
        fixed_copy(r->summary, sizeof r->summary, l->summary);
        for (int64_t j = 0; l->probes && j < l->n_probes; j++, k++) {
            const ls_probe_cmp *pc = &l->probes[j];
            probes[k] = (probe_row){.divergence = d, .layer = pc->layer,
                                    .max_abs_diff = pc->max_abs_diff,
                                    .first_diff_index = pc->first_diff_index};
            fixed_copy(probes[k].component, sizeof probes[k].component, pc->component);
        }
    }
    int rc = write_table(w, "divergences", divergence_fields, NFIELDS(divergence_fields),
                         sizeof *rows, rows, n);
    if (!rc)
        rc = write_table(w, "probes", probe_fields, NFIELDS(probe_fields), sizeof *probes,
                         probes, np);
    free(rows);
    free(probes);
    return rc;
}

static int write_summary(writer *w, const ls_compare_summary *S, const ls_engine_stats *st) {
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = -1;
    if (gcpl < 0 || H5Pset_obj_track_times(gcpl, 0) < 0 ||
        (g = H5Gcreate2(w->file, "summary", H5P_DEFAULT, gcpl, H5P_DEFAULT)) < 0) {
        if (gcpl >= 0) H5Pclose(gcpl);
        return fail(w, "creating /summary");
    }
    H5Pclose(gcpl);
    int rc = 0;
#define I(s, f) if (!rc) rc = attr_i64(w, g, #f, (s)->f)
#define D(s, f) if (!rc) rc = attr_f64(w, g, #f, (s)->f)
    I(S, tokens); I(S, divergent_tokens); I(S, bitwise_equal_tokens); I(S, seqs);
    I(S, divergent_seqs); D(S, max_abs); D(S, mean_abs); D(S, std_abs); D(S, prob_pearson);
    D(S, kl_k3); I(S, first_seq); I(S, first_position);
    I(st, steps); I(st, tokens_computed); I(st, preemptions); I(st, forks); I(st, cow_copies);
    I(st, prefix_hit_tokens); I(st, snapshot_restores); I(st, snapshots_taken);
    I(st, max_slot_used); I(st, distinct_slots_used); I(st, padded_rows);
    I(st, chunked_prefills); I(st, num_blocks); I(st, num_slots);
    I(st, slot_stride); I(st, state_elems);
#undef I
#undef D
    if (H5Gclose(g) < 0 && !rc) rc = fail(w, "closing /summary");
    return rc;
}

static int write_root_attrs(writer *w, const ls_trace_input *in) {
    char created[32], hash[17];
    time_t now = time(NULL);
    struct tm tm;
    if (now == (time_t)-1 || !gmtime_r(&now, &tm) ||
        !strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(created, sizeof created, "unknown");
    snprintf(hash, sizeof hash, "%016" PRIx64, in->model_hash);
    hid_t r = w->file;
    if (attr_str(w, r, "format", TRACE_FORMAT) ||
        attr_i64(w, r, "format_version", TRACE_FORMAT_VERSION) ||
        attr_str(w, r, "tool_version", LS_VERSION) || attr_str(w, r, "created", created) ||
        attr_str(w, r, "config_path", in->config_path) ||
        attr_str(w, r, "config_text", in->config_text) ||
        attr_str(w, r, "model_dir", in->model_dir) || attr_str(w, r, "model_hash", hash) ||
        attr_str(w, r, "precision", in->precision) || attr_str(w, r, "mode", in->mode) ||
        attr_str(w, r, "backend", in->backend) || attr_str(w, r, "verdict", in->verdict) ||
        attr_i64(w, r, "exit_code", in->exit_code))
        return -1;
    return 0;
}

static int write_all(writer *w, const ls_trace_input *in) {
    static const ls_compare_summary no_sum = {.first_seq = -1, .first_position = -1};
    const ls_compare_summary *S = in->cmp ? &in->cmp->sum : &no_sum;
    ls_engine_result none = {0};
    const ls_engine_result *e = in->engine ? in->engine : &none;
    if (write_root_attrs(w, in) || write_summary(w, S, &e->stats) ||
        write_requests(w, in->workload) || write_sequences(w, e, in->cmp) ||
        write_tokens(w, e, in->cmp))
        return -1;
    if (write_table(w, "steps", step_fields, NFIELDS(step_fields), sizeof(ls_engine_step),
                    e->steps, e->steps ? e->n_steps : 0))
        return -1;
    if (write_table(w, "tenants", tenant_fields, NFIELDS(tenant_fields), sizeof(ls_engine_tenant),
                    e->tenants, e->tenants ? e->n_tenants : 0))
        return -1;
    return write_localisation(w, e, in->locs, in->n_locs);
}

/* ---- the file ----------------------------------------------------------------------- */

int ls_trace_write(const char *path, const ls_trace_input *in, ls_err *err) {
    if (!path || !path[0]) return ls_errf(err, "cannot create trace: empty path");
    if (!in) return ls_errf(err, "cannot create trace '%s': no input", path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!base[0]) return ls_errf(err, "cannot create trace '%s': path names a directory", path);
    size_t dir_len = slash ? (size_t)(slash - path) : 0;
    size_t cap = strlen(path) + 64;
    char *tmp = malloc(cap), *dir = malloc(dir_len + 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        return ls_errf(err, "cannot create trace '%s': out of memory", path);
    }
    if (slash) {
        memcpy(dir, path, dir_len);
        dir[dir_len] = 0;
        if (!dir_len) snprintf(dir, 2, "/");
        snprintf(tmp, cap, "%s/.%s.tmp.%ld", dir_len ? dir : "", base, (long)getpid());
    } else {
        snprintf(dir, 2, ".");
        snprintf(tmp, cap, ".%s.tmp.%ld", base, (long)getpid());
    }

    /* Create the temporary file ourselves first: a missing or unwritable directory gets
     * the system's own words, and nothing HDF5-specific has happened yet. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        free(dir);
        return ls_errf(err, "cannot create trace '%s': %s", path, strerror(e));
    }
    close(fd);

    H5E_auto2_t old_func = NULL;
    void *old_data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    writer w = {path, -1, err};
    int rc = -1;
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl < 0 || H5Pset_obj_track_times(fcpl, 0) < 0) {
        fail(&w, "setting up the file");
        if (fcpl >= 0) H5Pclose(fcpl);
        goto done;
    }
    w.file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (w.file < 0) {
        fail(&w, "creating the file");
        goto done;
    }
    int wrc = write_all(&w, in);
    herr_t crc = H5Fclose(w.file);
    w.file = -1;
    if (wrc) goto done;
    if (crc < 0) {
        fail(&w, "closing the file");
        goto done;
    }
    fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) < 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        ls_errf(err, "cannot create trace '%s': syncing '%s': %s", path, tmp, strerror(e));
        goto done;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        ls_errf(err, "cannot create trace '%s': %s", path, strerror(errno));
        goto done;
    }
    /* Make the rename durable too; a directory that cannot be synced is not an error. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    rc = 0;
done:
    if (w.file >= 0) H5Fclose(w.file);
    if (rc) unlink(tmp);
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
    free(tmp);
    free(dir);
    return rc;
}
