/* HDF5 traces: a synthetic run (no model) written, reopened with the HDF5 C API and
 * checked; the temporary file is gone after success and nothing is left after a failure.
 *   test_trace              the checks
 *   test_trace --write PATH writes the synthetic trace to PATH (tests/trace_schema.py) */
#include <dirent.h>
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/trace.h"
#include "tests/check.h"

/* ---- the synthetic run -------------------------------------------------------------- */

enum { N_REQ = 2, N_SEQ = 3, SEQ_LEN = 5, N_STEPS = 4, N_PROBES = 2 };

typedef struct synth {
    int32_t prompts[N_REQ][SEQ_LEN];
    ls_request req[N_REQ];
    ls_workload wl;
    int32_t toks[N_SEQ][SEQ_LEN];
    double lps[N_SEQ][SEQ_LEN];
    ls_provenance prov[N_SEQ][SEQ_LEN];
    ls_engine_seq seqs[N_SEQ];
    ls_engine_step steps[N_STEPS];
    ls_engine_result eng;
    ls_token_cmp tcmp[16];
    int64_t first_div[N_SEQ];
    ls_comparison cmp;
    ls_probe_cmp probes[N_PROBES];
    ls_localisation loc;
    ls_trace_input in;
} synth;

/* Request 0: prompt 3, 2 rollouts, 2 new tokens; request 1: prompt 2, 1 rollout, 3 new.
 * Seq 1 (request 0, rollout 1) diverges at position 4, localised to layer 0 conv_state. */
static void synth_build(synth *s) {
    memset(s, 0, sizeof *s);
    static const int64_t plen[N_REQ] = {3, 2}, nro[N_REQ] = {2, 1};
    for (int r = 0; r < N_REQ; r++) {
        for (int i = 0; i < SEQ_LEN; i++) s->prompts[r][i] = 10 * (r + 1) + i;
        s->req[r] = (ls_request){s->prompts[r], plen[r], nro[r], SEQ_LEN - plen[r], r,
                                 {r ? 0.7 : 0.0, r ? 40 : 0, r ? 0.9 : 1.0}};
    }
    s->wl = (ls_workload){s->req, N_REQ, 1234};
    static const int64_t sreq[N_SEQ] = {0, 0, 1}, sro[N_SEQ] = {0, 1, 0};
    for (int q = 0; q < N_SEQ; q++) {
        int64_t pl = plen[sreq[q]];
        for (int p = 0; p < SEQ_LEN; p++) {
            s->toks[q][p] = p < pl ? s->prompts[sreq[q]][p] : 100 * (q + 1) + p;
            s->lps[q][p] = p < pl ? 0.0 : -0.25 * (p + 1) - q;
            if (p >= pl)
                s->prov[q][p] = (ls_provenance){.step = p, .batch_row = q, .slot = 7 + q,
                                                .prev_tenant = q == 1 ? 42 : -1,
                                                .block = 100 + 10 * q + p, .n_blocks = 2,
                                                .chunk = 1, .from_snapshot = q == 2,
                                                .preemptions = q == 1};
        }
        s->seqs[q] = (ls_engine_seq){sreq[q], sro[q], s->toks[q], SEQ_LEN, pl, s->lps[q],
                                     s->prov[q]};
    }
    for (int i = 0; i < N_STEPS; i++)
        s->steps[i] = (ls_engine_step){i, 3, 8 - i, i == 0 ? 2 : 0, 3, 0, 20 - i, 5, 0};
    s->eng = (ls_engine_result){.seqs = s->seqs, .n_seqs = N_SEQ, .steps = s->steps,
                                .n_steps = N_STEPS,
                                .stats = {.steps = N_STEPS, .tokens_computed = 15, .preemptions = 1,
                                          .forks = 1, .cow_copies = 2, .prefix_hit_tokens = 3,
                                          .snapshot_restores = 1, .snapshots_taken = 2,
                                          .max_slot_used = 9, .distinct_slots_used = 3,
                                          .padded_rows = 0, .chunked_prefills = 1, .num_blocks = 64,
                                          .num_slots = 16}};
    int64_t n = 0;
    for (int q = 0; q < N_SEQ; q++) {
        s->first_div[q] = q == 1 ? 4 : -1;
        for (int64_t p = s->seqs[q].prompt_len; p < SEQ_LEN; p++) {
            int div = q == 1 && p == 4;
            double ref = s->lps[q][p] + (div ? 0.5 : 0.0);
            s->tcmp[n++] = (ls_token_cmp){q, p, s->lps[q][p], ref, s->lps[q][p] - ref, !div,
                                          div, s->toks[q][p], div ? 3 : s->toks[q][p]};
        }
    }
    s->cmp = (ls_comparison){s->tcmp, n, s->first_div,
                             {.tokens = n, .divergent_tokens = 1, .bitwise_equal_tokens = n - 1,
                              .seqs = N_SEQ, .divergent_seqs = 1, .max_abs = 0.5,
                              .mean_abs = 0.5 / (double)n, .std_abs = 0.17,
                              .prob_pearson = 0.99, .kl_k3 = 0.01, .first_seq = 1,
                              .first_position = 4}};
    s->probes[0] = (ls_probe_cmp){0, "conv_state", 0.25, 3};
    s->probes[1] = (ls_probe_cmp){0, "ssm_state", 0.0, -1};
    s->loc = (ls_localisation){.seq = 1, .request = 0, .rollout = 1, .position = 4, .step = 4,
                               .found = 1, .layer = 0, .component = "conv_state",
                               .summary = "layer 0 conv state (Mamba)", .probes = s->probes,
                               .n_probes = N_PROBES};
    s->in = (ls_trace_input){.config_path = "configs/test.yaml",
                             .config_text = "seed: 1\n# --set engine.block_size=4\n",
                             .model_dir = "models/none", .model_hash = 0x0123456789abcdefULL,
                             .precision = "fp64", .mode = "invariant", .backend = "cpu",
                             .verdict = "divergence", .exit_code = 1, .workload = &s->wl,
                             .engine = &s->eng, .cmp = &s->cmp, .locs = &s->loc, .n_locs = 1};
}

/* ---- helpers ------------------------------------------------------------------------ */

/* Entries of dir other than . and ..; names the first one in first (if non-NULL). */
static int dir_entries(const char *dir, char *first, size_t n) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int count = 0;
    struct dirent *e;
    if (first && n) first[0] = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (first && n && !count) snprintf(first, n, "%s", e->d_name);
        count++;
    }
    closedir(d);
    return count;
}

static int64_t ds_rows(hid_t f, const char *name) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[1] = {0};
    int nd = sp >= 0 ? H5Sget_simple_extent_dims(sp, dims, NULL) : -1;
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    return nd == 1 ? (int64_t)dims[0] : -1;
}

static int attr_string(hid_t loc, const char *name, char *out, size_t n) {
    out[0] = 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a);
    char *v = NULL;
    int rc = t < 0 || H5Tis_variable_str(t) <= 0 || H5Aread(a, t, &v) < 0 ? -1 : 0;
    if (!rc) snprintf(out, n, "%s", v);
    H5free_memory(v);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

static int64_t attr_i64(hid_t loc, const char *name) {
    int64_t v = INT64_MIN;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return v;
    if (H5Aread(a, H5T_NATIVE_INT64, &v) < 0) v = INT64_MIN;
    H5Aclose(a);
    return v;
}

typedef struct tok_sub {
    int64_t seq, request, rollout, position, step, slot, prev_tenant, block, preemptions;
    int32_t token;
    uint8_t divergent, from_snapshot;
} tok_sub;

static hid_t tok_sub_type(void) {
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(tok_sub));
#define M(f, ty) H5Tinsert(t, #f, HOFFSET(tok_sub, f), ty)
    M(seq, H5T_NATIVE_INT64); M(request, H5T_NATIVE_INT64); M(rollout, H5T_NATIVE_INT64);
    M(position, H5T_NATIVE_INT64); M(step, H5T_NATIVE_INT64); M(slot, H5T_NATIVE_INT64);
    M(prev_tenant, H5T_NATIVE_INT64); M(block, H5T_NATIVE_INT64);
    M(preemptions, H5T_NATIVE_INT64); M(token, H5T_NATIVE_INT32);
    M(divergent, H5T_NATIVE_UINT8); M(from_snapshot, H5T_NATIVE_UINT8);
#undef M
    return t;
}

typedef struct div_sub {
    int64_t seq, layer, slot, prev_tenant, block;
    char component[16];
} div_sub;

static hid_t div_sub_type(void) {
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(div_sub));
    hid_t s = H5Tcopy(H5T_C_S1);
    H5Tset_size(s, 16);
    H5Tset_strpad(s, H5T_STR_NULLPAD);
    H5Tinsert(t, "seq", HOFFSET(div_sub, seq), H5T_NATIVE_INT64);
    H5Tinsert(t, "layer", HOFFSET(div_sub, layer), H5T_NATIVE_INT64);
    H5Tinsert(t, "slot", HOFFSET(div_sub, slot), H5T_NATIVE_INT64);
    H5Tinsert(t, "prev_tenant", HOFFSET(div_sub, prev_tenant), H5T_NATIVE_INT64);
    H5Tinsert(t, "block", HOFFSET(div_sub, block), H5T_NATIVE_INT64);
    H5Tinsert(t, "component", HOFFSET(div_sub, component), s);
    H5Tclose(s);
    return t;
}

static int read_all(hid_t f, const char *name, hid_t type, void *buf) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    int rc = H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0 ? -1 : 0;
    H5Dclose(ds);
    return rc;
}

/* ---- checks ------------------------------------------------------------------------- */

static void check_full(const char *path, const synth *s) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0);
    if (f < 0) return;
    char buf[256];
    CHECK(attr_string(f, "format", buf, sizeof buf) == 0 && !strcmp(buf, "lockstep-trace"));
    CHECK(attr_i64(f, "format_version") == 1);
    CHECK(attr_string(f, "model_hash", buf, sizeof buf) == 0 &&
          !strcmp(buf, "0123456789abcdef"));
    CHECK(attr_string(f, "verdict", buf, sizeof buf) == 0 && !strcmp(buf, "divergence"));
    CHECK(attr_string(f, "created", buf, sizeof buf) == 0 && strlen(buf) == 20 &&
          buf[10] == 'T' && buf[19] == 'Z');
    CHECK(attr_string(f, "config_text", buf, sizeof buf) == 0 &&
          !strcmp(buf, s->in.config_text));
    CHECK(attr_i64(f, "exit_code") == 1);
    hid_t g = H5Gopen2(f, "summary", H5P_DEFAULT);
    CHECK(g >= 0);
    if (g >= 0) {
        CHECK(attr_i64(g, "tokens") == s->cmp.n_tokens);
        CHECK(attr_i64(g, "divergent_seqs") == 1);
        CHECK(attr_i64(g, "num_slots") == 16);
        CHECK(attr_i64(g, "first_position") == 4);
        H5Gclose(g);
    }

    CHECK(ds_rows(f, "requests") == N_REQ);
    CHECK(ds_rows(f, "sequences") == N_SEQ);
    CHECK(ds_rows(f, "sequence_tokens") == N_SEQ * SEQ_LEN);
    CHECK(ds_rows(f, "tokens") == s->cmp.n_tokens);
    CHECK(ds_rows(f, "steps") == N_STEPS);
    CHECK(ds_rows(f, "divergences") == 1);
    CHECK(ds_rows(f, "probes") == N_PROBES);

    int32_t toks[N_SEQ * SEQ_LEN];
    CHECK(read_all(f, "sequence_tokens", H5T_NATIVE_INT32, toks) == 0);
    CHECK(!memcmp(toks, s->toks, sizeof toks));

    tok_sub rows[16];
    hid_t tt = tok_sub_type();
    CHECK(read_all(f, "tokens", tt, rows) == 0);
    H5Tclose(tt);
    int found = 0;
    for (int64_t i = 0; i < s->cmp.n_tokens; i++) {
        const tok_sub *r = &rows[i];
        CHECK(r->seq == s->tcmp[i].seq && r->position == s->tcmp[i].position);
        if (r->seq == 1 && r->position == 4) {
            found = 1;
            const ls_provenance *p = &s->prov[1][4];
            CHECK(r->divergent == 1);
            CHECK(r->request == 0 && r->rollout == 1);
            CHECK(r->step == p->step && r->slot == p->slot && r->prev_tenant == 42);
            CHECK(r->block == p->block && r->preemptions == 1 && r->from_snapshot == 0);
            CHECK(r->token == s->toks[1][4]);
        }
        if (r->seq == 2) CHECK(r->from_snapshot == 1 && r->request == 1);
    }
    CHECK(found);

    div_sub d;
    hid_t dt = div_sub_type();
    CHECK(read_all(f, "divergences", dt, &d) == 0);
    H5Tclose(dt);
    CHECK(d.seq == 1 && d.layer == 0 && d.slot == 8 && d.prev_tenant == 42 &&
          d.block == s->prov[1][4].block);
    CHECK(!memcmp(d.component, "conv_state\0\0\0\0\0\0", 16));
    CHECK(H5Fclose(f) >= 0);
}

static void check_empty_tables(const char *dir) {
    synth *s = malloc(sizeof *s);
    synth_build(s);
    s->in.locs = NULL;
    s->in.n_locs = 0;
    s->eng.steps = NULL;
    s->eng.n_steps = 0;
    s->in.verdict = "ok";
    char path[512];
    snprintf(path, sizeof path, "%s/empty.h5", dir);
    ls_err err = {{0}};
    CHECKF(ls_trace_write(path, &s->in, &err) == 0, "%s", err.msg);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0);
    if (f >= 0) {
        CHECK(ds_rows(f, "divergences") == 0);
        CHECK(ds_rows(f, "probes") == 0);
        CHECK(ds_rows(f, "steps") == 0);
        hid_t ds = H5Dopen2(f, "probes", H5P_DEFAULT);
        hid_t t = ds >= 0 ? H5Dget_type(ds) : -1;
        CHECK(t >= 0 && H5Tget_class(t) == H5T_COMPOUND && H5Tget_nmembers(t) == 5);
        if (t >= 0) H5Tclose(t);
        if (ds >= 0) H5Dclose(ds);
        H5Fclose(f);
    }
    unlink(path);
    /* No engine, no comparison at all: still a valid file with empty tables. */
    ls_trace_input bare = {.verdict = "ok"};
    CHECKF(ls_trace_write(path, &bare, &err) == 0, "%s", err.msg);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0 && ds_rows(f, "tokens") == 0 && ds_rows(f, "sequence_tokens") == 0);
    if (f >= 0) H5Fclose(f);
    unlink(path);
    free(s);
}

static void check_failures(const char *dir, synth *s) {
    char path[512], name[256];
    ls_err err = {{0}};

    /* Missing parent directory. */
    snprintf(path, sizeof path, "%s/nope/x.h5", dir);
    CHECK(ls_trace_write(path, &s->in, &err) == -1);
    CHECKF(strstr(err.msg, path) && strstr(err.msg, "cannot create trace"), "%s", err.msg);
    CHECK(dir_entries(dir, name, sizeof name) == 0);

    /* Parent is a regular file. */
    snprintf(path, sizeof path, "%s/plain", dir);
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL);
    if (fp) fclose(fp);
    snprintf(path, sizeof path, "%s/plain/x.h5", dir);
    err.msg[0] = 0;
    CHECK(ls_trace_write(path, &s->in, &err) == -1);
    CHECKF(strstr(err.msg, path) != NULL, "%s", err.msg);
    snprintf(path, sizeof path, "%s/plain", dir);
    unlink(path);

    /* The final name is a directory: everything is written, then rename fails; the
     * temporary file must be gone. */
    snprintf(path, sizeof path, "%s/isdir.h5", dir);
    CHECK(mkdir(path, 0755) == 0);
    err.msg[0] = 0;
    CHECK(ls_trace_write(path, &s->in, &err) == -1);
    CHECKF(strstr(err.msg, path) != NULL, "%s", err.msg);
    CHECKF(dir_entries(dir, name, sizeof name) == 1 && !strcmp(name, "isdir.h5"), "left %s",
           name);
    CHECK(dir_entries(path, NULL, 0) == 0);
    rmdir(path);

    /* Inconsistent input after the file exists: cleaned up too. */
    snprintf(path, sizeof path, "%s/bad.h5", dir);
    s->tcmp[0].seq = 99;
    err.msg[0] = 0;
    CHECK(ls_trace_write(path, &s->in, &err) == -1);
    CHECKF(strstr(err.msg, path) && strstr(err.msg, "seq 99"), "%s", err.msg);
    CHECKF(dir_entries(dir, name, sizeof name) == 0, "left %s", name);
    s->tcmp[0].seq = 0;

    /* Read-only directory (root ignores permissions). */
    if (geteuid() != 0) {
        char ro[512];
        snprintf(ro, sizeof ro, "%s/ro", dir);
        CHECK(mkdir(ro, 0555) == 0);
        snprintf(path, sizeof path, "%s/x.h5", ro);
        err.msg[0] = 0;
        CHECK(ls_trace_write(path, &s->in, &err) == -1);
        CHECKF(strstr(err.msg, path) && strstr(err.msg, "ermission"), "%s", err.msg);
        CHECK(dir_entries(ro, NULL, 0) == 0);
        rmdir(ro);
    } else {
        fprintf(stderr, "test_trace: running as root, read-only directory check skipped\n");
    }

    err.msg[0] = 0;
    CHECK(ls_trace_write("", &s->in, &err) == -1 && err.msg[0]);
    snprintf(path, sizeof path, "%s/", dir);
    CHECK(ls_trace_write(path, &s->in, &err) == -1);
}

int main(int argc, char **argv) {
    synth *s = malloc(sizeof *s);
    if (!s) return 2;
    synth_build(s);
    ls_err err = {{0}};
    if (argc == 3 && !strcmp(argv[1], "--write")) {
        int rc = ls_trace_write(argv[2], &s->in, &err);
        if (rc) fprintf(stderr, "test_trace: %s\n", err.msg);
        free(s);
        return rc ? 1 : 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: test_trace [--write PATH]\n");
        free(s);
        return 2;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    const char *tmpdir_env = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/ls_trace_XXXXXX", tmpdir_env && *tmpdir_env ? tmpdir_env : "/tmp");
    CHECK(mkdtemp(dir) != NULL);

    char path[512], name[256];
    snprintf(path, sizeof path, "%s/run.h5", dir);
    CHECKF(ls_trace_write(path, &s->in, &err) == 0, "%s", err.msg);
    CHECKF(dir_entries(dir, name, sizeof name) == 1 && !strcmp(name, "run.h5"), "found %s", name);
    check_full(path, s);

    /* Overwriting an existing trace replaces it. */
    s->in.verdict = "ok";
    CHECKF(ls_trace_write(path, &s->in, &err) == 0, "%s", err.msg);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0 && attr_string(f, "verdict", name, sizeof name) == 0 && !strcmp(name, "ok"));
    if (f >= 0) H5Fclose(f);
    s->in.verdict = "divergence";
    CHECK(dir_entries(dir, NULL, 0) == 1);
    unlink(path);

    /* A relative path with no directory part writes into the working directory. */
    char cwd[512];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(dir) == 0);
    CHECKF(ls_trace_write("rel.h5", &s->in, &err) == 0, "%s", err.msg);
    CHECK(dir_entries(".", name, sizeof name) == 1 && !strcmp(name, "rel.h5"));
    unlink("rel.h5");
    CHECK(chdir(cwd) == 0);

    check_empty_tables(dir);
    check_failures(dir, s);

    CHECK(dir_entries(dir, name, sizeof name) == 0);
    CHECK(rmdir(dir) == 0);
    free(s);
    return check_status();
}
