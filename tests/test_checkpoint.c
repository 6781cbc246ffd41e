/* Checkpoint directories: single file, sharded with an index, and every way an index
 * and its shards can disagree; then take/has/ignore/check_all_used. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup, mkdtemp, O_CLOEXEC under plain -std=c17 */
#endif
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/checkpoint.h"
#include "tests/check.h"

static char root[] = "/tmp/ls_test_ckpt_XXXXXX";
static int n_dirs;

/* A fresh model directory under root; returns its path (static, one per call slot). */
static const char *new_dir(void) {
    static char dirs[64][512];
    char *d = dirs[n_dirs % 64];
    snprintf(d, 512, "%s/m%d", root, n_dirs++);
    if (mkdir(d, 0755) != 0) {
        perror(d);
        exit(1);
    }
    return d;
}

static void write_file(const char *dir, const char *name, const void *a, size_t na,
                       const void *b, size_t nb) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(a, 1, na, f);
    if (nb) fwrite(b, 1, nb, f);
    fclose(f);
}

/* A safetensors file from its JSON header and `n` data bytes (all `fill`). */
static void write_st(const char *dir, const char *name, const char *json, size_t n,
                     uint8_t fill) {
    size_t hl = strlen(json);
    uint8_t *buf = malloc(8 + hl);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, json, hl);
    uint8_t *data = malloc(n ? n : 1);
    memset(data, fill, n);
    write_file(dir, name, buf, 8 + hl, data, n);
    free(buf);
    free(data);
}

static void write_text(const char *dir, const char *name, const char *text) {
    write_file(dir, name, text, strlen(text), NULL, 0);
}

/* Removes what we made: the root and the model directories under it. */
static void rm_tree(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_tree(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void open_fails_at(int line, const char *dir, const char *w1, const char *w2,
                          const char *w3) {
    ls_checkpoint c;
    ls_err err = {{0}};
    int rc = ls_ckpt_open(dir, &c, &err);
    CHECKF(rc == -1, "line %d: expected failure", line);
    CHECKF(c.files == NULL && c.all == NULL && c.dir == NULL && c.n_all == 0,
           "line %d: struct not cleared on failure", line);
    const char *w[] = {w1, w2, w3};
    for (int i = 0; i < 3; i++)
        if (w[i]) CHECKF(strstr(err.msg, w[i]), "line %d: '%s' not in: %s", line, w[i], err.msg);
    if (rc == 0) ls_ckpt_close(&c);
}
#define OPEN_FAILS(dir, w1, w2, w3) open_fails_at(__LINE__, dir, w1, w2, w3)

#define HDR_A "\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 24]}"
#define HDR_B "\"b\": {\"dtype\": \"BF16\", \"shape\": [4], \"data_offsets\": [24, 32]}"
#define HDR_C "\"c\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [32, 40]}"

static void test_single(void) {
    const char *d = new_dir();
    write_st(d, "model.safetensors", "{" HDR_A ", " HDR_B ", " HDR_C "}", 40, 0);
    ls_checkpoint c;
    ls_err err = {{0}};
    int rc = ls_ckpt_open(d, &c, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(c.n_files == 1 && c.n_all == 3);
    CHECK(ls_ckpt_has(&c, "a") && ls_ckpt_has(&c, "c") && !ls_ckpt_has(&c, "zz"));

    const ls_st_tensor *t = NULL;
    CHECKF(ls_ckpt_take(&c, "a", 2, (int64_t[]){2, 3}, &t, &err) == 0, "%s", err.msg);
    CHECK(t && t->numel == 6 && ls_st_get_f64(t, 5) == 0.0);

    /* wrong shape: both shapes, the file and the tensor in the message */
    CHECK(ls_ckpt_take(&c, "a", 2, (int64_t[]){3, 2}, &t, &err) == -1 && t == NULL);
    CHECKF(strstr(err.msg, "model.safetensors") && strstr(err.msg, "'a'") &&
           strstr(err.msg, "expected shape [3, 2] but found [2, 3]"), "%s", err.msg);
    CHECK(ls_ckpt_take(&c, "b", 2, (int64_t[]){4, 1}, &t, &err) == -1);
    CHECKF(strstr(err.msg, "'b'") && strstr(err.msg, "[4, 1]") && strstr(err.msg, "[4]"), "%s",
           err.msg);
    CHECK(ls_ckpt_take(&c, "b", 0, NULL, &t, &err) == -1);
    CHECKF(strstr(err.msg, "expected shape [] but found [4]"), "%s", err.msg);

    /* missing tensor names the directory */
    CHECK(ls_ckpt_take(&c, "zz", 1, (int64_t[]){1}, &t, &err) == -1);
    CHECKF(strstr(err.msg, d) && strstr(err.msg, "missing tensor 'zz'"), "%s", err.msg);

    /* integer dtype is refused even with the right shape */
    CHECK(ls_ckpt_take(&c, "c", 1, (int64_t[]){2}, &t, &err) == -1);
    CHECKF(strstr(err.msg, "'c'") && strstr(err.msg, "I32"), "%s", err.msg);

    /* b and c never taken (failed takes do not count) */
    CHECK(ls_ckpt_check_all_used(&c, &err) == -1);
    CHECKF(strstr(err.msg, "2 unexpected tensors") && strstr(err.msg, "'b'") &&
           strstr(err.msg, "'c'") && !strstr(err.msg, "'a'") && !strstr(err.msg, "more"), "%s",
           err.msg);
    CHECKF(ls_ckpt_take(&c, "b", 1, (int64_t[]){4}, &t, &err) == 0, "%s", err.msg);
    CHECK(t && ls_st_get_f64(t, 0) == 0.0);
    CHECK(ls_ckpt_check_all_used(&c, &err) == -1);
    CHECKF(strstr(err.msg, "1 unexpected tensor:") && strstr(err.msg, "'c' (") &&
           strstr(err.msg, "model.safetensors"), "%s", err.msg);
    ls_ckpt_ignore(&c, "c");
    ls_ckpt_ignore(&c, "not-there"); /* harmless */
    CHECKF(ls_ckpt_check_all_used(&c, &err) == 0, "%s", err.msg);
    /* taking twice is fine (tied weights read the same tensor) */
    CHECK(ls_ckpt_take(&c, "a", 2, (int64_t[]){2, 3}, NULL, &err) == 0);
    ls_ckpt_close(&c);
    CHECK(c.dir == NULL && c.files == NULL && c.all == NULL);
    ls_ckpt_close(&c);
}

static void test_many_unused(void) {
    const char *d = new_dir();
    char json[2048] = "{";
    size_t pos = 1;
    for (int i = 0; i < 8; i++)
        pos += (size_t)snprintf(json + pos, sizeof json - pos,
                                "%s\"t%d\": {\"dtype\": \"F32\", \"shape\": [1], "
                                "\"data_offsets\": [%d, %d]}", i ? ", " : "", i, 4 * i,
                                4 * i + 4);
    snprintf(json + pos, sizeof json - pos, "}");
    write_st(d, "model.safetensors", json, 32, 0);
    ls_checkpoint c;
    ls_err err = {{0}};
    CHECKF(ls_ckpt_open(d, &c, &err) == 0, "%s", err.msg);
    CHECK(ls_ckpt_take(&c, "t3", 1, (int64_t[]){1}, NULL, &err) == 0);
    CHECK(ls_ckpt_check_all_used(&c, &err) == -1);
    CHECKF(strstr(err.msg, "7 unexpected tensors") && strstr(err.msg, "'t0'") &&
           strstr(err.msg, "'t5'") && !strstr(err.msg, "'t3'") && !strstr(err.msg, "'t6'") &&
           strstr(err.msg, "... and 2 more"), "%s", err.msg);
    ls_ckpt_close(&c);
}

#define SH1 "{" HDR_A ", \"__metadata__\": {\"format\": \"pt\"}}"
#define SH2 "{\"b\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [0, 8]}}"
#define SHARD1 "model-00001-of-00002.safetensors"
#define SHARD2 "model-00002-of-00002.safetensors"
#define IDX(map) "{\"metadata\": {\"total_size\": 32}, \"weight_map\": {" map "}}"
#define INDEX "model.safetensors.index.json"

static void test_sharded(void) {
    const char *d = new_dir();
    write_st(d, SHARD1, SH1, 24, 0);
    write_st(d, SHARD2, SH2, 8, 0x3c); /* 0x3c3c as F16 = 1.05859375 */
    write_text(d, INDEX, IDX("\"b\": \"" SHARD2 "\", \"a\": \"" SHARD1 "\""));
    /* an index takes precedence over a stale single file */
    write_st(d, "model.safetensors", "{" HDR_C "}", 40, 0);
    ls_checkpoint c;
    ls_err err = {{0}};
    int rc = ls_ckpt_open(d, &c, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(c.n_files == 2 && c.n_all == 2 && !ls_ckpt_has(&c, "c"));
    CHECK(strcmp(c.all[0]->name, "a") == 0 && strcmp(c.all[1]->name, "b") == 0);
    const ls_st_tensor *a = NULL, *b = NULL;
    CHECKF(ls_ckpt_take(&c, "a", 2, (int64_t[]){2, 3}, &a, &err) == 0, "%s", err.msg);
    CHECKF(ls_ckpt_take(&c, "b", 1, (int64_t[]){4}, &b, &err) == 0, "%s", err.msg);
    CHECK(a && strstr(a->file, SHARD1));
    CHECK(b && strstr(b->file, SHARD2) && ls_st_get_f64(b, 3) == 1.05859375);
    CHECK(ls_ckpt_take(&c, "b", 1, (int64_t[]){5}, NULL, &err) == -1);
    CHECKF(strstr(err.msg, SHARD2) && strstr(err.msg, "'b'"), "%s", err.msg);
    CHECKF(ls_ckpt_check_all_used(&c, &err) == 0, "%s", err.msg);
    ls_ckpt_close(&c);
}

static void test_bad_dirs(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/does-not-exist", root);
    OPEN_FAILS(path, "does-not-exist", "cannot open model directory", NULL);

    const char *d = new_dir();
    OPEN_FAILS(d, d, "no model.safetensors or model.safetensors.index.json", NULL);

    write_text(d, "plain", "x");
    snprintf(path, sizeof path, "%s/plain", d);
    OPEN_FAILS(path, "plain", "not a directory", NULL);

    /* model.safetensors that is a directory, and one that is garbage */
    d = new_dir();
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    mkdir(path, 0755);
    OPEN_FAILS(d, "model.safetensors", "not a regular file", NULL);
    d = new_dir();
    write_text(d, "model.safetensors", "garbage!garbage!");
    OPEN_FAILS(d, "model.safetensors", "header length", NULL);

    /* an unreadable file (permissions do not bind root, so only when not root) */
    if (geteuid() != 0) {
        d = new_dir();
        write_st(d, "model.safetensors", "{" HDR_A "}", 24, 0);
        snprintf(path, sizeof path, "%s/model.safetensors", d);
        chmod(path, 0);
        OPEN_FAILS(d, "model.safetensors", "cannot open", NULL);
        chmod(path, 0644);
    }
}

/* Each way an index and its shards can disagree. */
static void test_bad_index(void) {
    const char *d;

    /* missing shard file */
    d = new_dir();
    write_st(d, SHARD1, SH1, 24, 0);
    write_text(d, INDEX, IDX("\"a\": \"" SHARD1 "\", \"b\": \"" SHARD2 "\""));
    OPEN_FAILS(d, INDEX, SHARD2, "cannot open");

    /* index names a tensor its shard does not have */
    d = new_dir();
    write_st(d, SHARD1, SH1, 24, 0);
    write_st(d, SHARD2, SH2, 8, 0);
    write_text(d, INDEX, IDX("\"a\": \"" SHARD1 "\", \"b\": \"" SHARD2 "\", \"x\": \"" SHARD2
                             "\""));
    OPEN_FAILS(d, INDEX, "'x'", SHARD2);

    /* index puts a tensor in a shard it does not name at all (so never opened) */
    d = new_dir();
    write_st(d, SHARD1, SH1, 24, 0);
    write_st(d, SHARD2, SH2, 8, 0);
    write_text(d, INDEX, IDX("\"a\": \"" SHARD2 "\", \"b\": \"" SHARD2 "\""));
    OPEN_FAILS(d, "puts tensor 'a' in " SHARD2, SHARD2 " has no such tensor", NULL);

    /* index puts a tensor in the wrong one of two shards it does name */
    d = new_dir();
    write_st(d, SHARD1, "{" HDR_A ", \"z\": {\"dtype\": \"U8\", \"shape\": [], "
             "\"data_offsets\": [24, 25]}}", 25, 0);
    write_st(d, SHARD2, SH2, 8, 0);
    write_text(d, INDEX, IDX("\"a\": \"" SHARD2 "\", \"z\": \"" SHARD1 "\", \"b\": \""
                             SHARD2 "\""));
    OPEN_FAILS(d, "puts tensor 'a' in " SHARD2, "but it is in", SHARD1);

    /* a shard holds a tensor the index does not list */
    d = new_dir();
    write_st(d, SHARD1, SH1, 24, 0);
    write_st(d, SHARD2, "{" HDR_C ", \"b\": {\"dtype\": \"F16\", \"shape\": [4], "
             "\"data_offsets\": [40, 48]}}", 48, 0);
    write_text(d, INDEX, IDX("\"a\": \"" SHARD1 "\", \"b\": \"" SHARD2 "\""));
    OPEN_FAILS(d, "'c'", SHARD2, "not listed in weight_map");

    /* the same tensor in two shards */
    d = new_dir();
    write_st(d, SHARD1, SH1, 24, 0);
    write_st(d, SHARD2, "{" HDR_A ", " HDR_B "}", 32, 0);
    write_text(d, INDEX, IDX("\"a\": \"" SHARD1 "\", \"b\": \"" SHARD2 "\""));
    OPEN_FAILS(d, "tensor 'a' is in both", SHARD1, SHARD2);

    /* shard names that escape the directory */
    d = new_dir();
    write_st(d, SHARD1, SH1, 24, 0);
    write_text(d, INDEX, IDX("\"a\": \"../x\""));
    OPEN_FAILS(d, INDEX, "'../x'", "not a plain file name");
    write_text(d, INDEX, IDX("\"a\": \"sub/" SHARD1 "\""));
    OPEN_FAILS(d, INDEX, "not a plain file name", NULL);
    write_text(d, INDEX, IDX("\"a\": \"\""));
    OPEN_FAILS(d, INDEX, "not a plain file name", NULL);

    /* malformed index JSON */
    write_text(d, INDEX, "{\"weight_map\": {\"a\": \"" SHARD1 "\"");
    OPEN_FAILS(d, INDEX, "line", NULL);
    write_text(d, INDEX, IDX("\"a\": \"" SHARD1 "\", \"a\": \"" SHARD1 "\""));
    OPEN_FAILS(d, INDEX, "duplicate", NULL);
    write_text(d, INDEX, "{\"metadata\": {}}");
    OPEN_FAILS(d, INDEX, "weight_map", NULL);
    write_text(d, INDEX, "{\"weight_map\": [\"a\"]}");
    OPEN_FAILS(d, INDEX, "weight_map", NULL);
    write_text(d, INDEX, IDX(""));
    OPEN_FAILS(d, INDEX, "weight_map is empty", NULL);
    write_text(d, INDEX, IDX("\"a\": 1"));
    OPEN_FAILS(d, INDEX, "'a'", "not a file name string");
    write_text(d, INDEX, "[]");
    OPEN_FAILS(d, INDEX, "weight_map", NULL);

    /* a broken shard is reported with its own name */
    d = new_dir();
    write_st(d, SHARD1, "{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], "
             "\"data_offsets\": [0, 20]}}", 24, 0);
    write_text(d, INDEX, IDX("\"a\": \"" SHARD1 "\""));
    OPEN_FAILS(d, SHARD1, "'a'", "data_offsets span 20");
}

int main(void) {
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_single();
    test_many_unused();
    test_sharded();
    test_bad_dirs();
    test_bad_index();
    ls_checkpoint z;
    memset(&z, 0, sizeof z);
    ls_ckpt_close(&z); /* a zeroed struct is safe to close */
    rm_tree(root);
    return check_status();
}
