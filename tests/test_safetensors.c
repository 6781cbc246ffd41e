/* safetensors reader: exact values for every float dtype, and one bad file per
 * validation rule, each checked for failure AND for a message that names the file
 * and the tensor (a loader error nobody can act on is half a bug). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup, mkdtemp, O_CLOEXEC under plain -std=c17 */
#endif
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/safetensors.h"
#include "tests/check.h"

static char tmpdir[] = "/tmp/ls_test_st_XXXXXX";

static void put_u64le(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Writes tmpdir/name: an 8-byte length `hlen` (normally strlen(json)), the JSON,
 * then `n` data bytes. Returns the path (static buffer, valid until the next call). */
static const char *write_raw(const char *name, uint64_t hlen, const char *json,
                             const void *data, size_t n) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    uint8_t len[8];
    put_u64le(len, hlen);
    fwrite(len, 1, 8, f);
    fwrite(json, 1, strlen(json), f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

static const char *write_st(const char *name, const char *json, const void *data, size_t n) {
    return write_raw(name, strlen(json), json, data, n);
}

static void rm_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmpdir);
}

/* ls_st_open on `path` must fail, leave `f` empty, and mention every word given. */
static void expect_fail_at(int line, const char *path, const char *w1, const char *w2,
                           const char *w3) {
    ls_st_file f;
    ls_err err = {{0}};
    int rc = ls_st_open(path, &f, &err);
    CHECKF(rc == -1, "line %d: expected failure, got rc=%d", line, rc);
    CHECKF(f.map == NULL && f.path == NULL && f.hdr.tensors == NULL && f.hdr.n_tensors == 0,
           "line %d: struct not cleared on failure", line);
    const char *w[] = {w1, w2, w3};
    for (int i = 0; i < 3; i++)
        if (w[i]) CHECKF(strstr(err.msg, w[i]), "line %d: '%s' not in: %s", line, w[i], err.msg);
    if (rc == 0) ls_st_close(&f);
}
#define EXPECT_FAIL(path, w1, w2, w3) expect_fail_at(__LINE__, path, w1, w2, w3)

/* One bad header, written as bad.safetensors with `n` zero data bytes. */
static void bad_hdr_at(int line, const char *json, size_t n, const char *w2, const char *w3) {
    static uint8_t zeros[256];
    const char *p = write_st("bad.safetensors", json, zeros, n);
    expect_fail_at(line, p, "bad.safetensors", w2, w3);
}
#define BAD(json, n, w2, w3) bad_hdr_at(__LINE__, json, n, w2, w3)

static int same_bits(double a, double b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

static void test_valid(void) {
    /* data area: a F32[2,2] | b F16[6] | c BF16[5] | d F64[1] | e I32[2] | z F32[0] */
    uint8_t data[16 + 12 + 10 + 8 + 8];
    float a[4] = {1.0f, -2.5f, 0x1p-149f /* smallest subnormal */, 3.4028234663852886e38f};
    uint16_t b[6] = {0x3c00 /* 1 */, 0xc000 /* -2 */, 0x0001 /* 2^-24 */,
                     0x83ff /* -largest subnormal */, 0x7c00 /* inf */, 0x7bff /* 65504 */};
    uint16_t c[5] = {0x3f80 /* 1 */, 0x4049 /* 3.140625 */, 0x0001 /* 2^-133 */,
                     0xff80 /* -inf */, 0x7fc0 /* nan */};
    double d = 0.1;
    int32_t e[2] = {7, -7};
    memcpy(data, a, 16);
    memcpy(data + 16, b, 12);
    memcpy(data + 28, c, 10);
    memcpy(data + 38, &d, 8); /* deliberately unaligned */
    memcpy(data + 46, e, 8);
    const char *json =
        "{\"__metadata__\": {\"format\": \"pt\"},"
        " \"b\": {\"dtype\": \"F16\", \"shape\": [6], \"data_offsets\": [16, 28]},"
        " \"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]},"
        " \"d\": {\"dtype\": \"F64\", \"shape\": [], \"data_offsets\": [38, 46]},"
        " \"c\": {\"dtype\": \"BF16\", \"shape\": [5], \"data_offsets\": [28, 38]},"
        " \"z\": {\"dtype\": \"F32\", \"shape\": [3, 0], \"data_offsets\": [16, 16]},"
        " \"e\": {\"dtype\": \"I32\", \"shape\": [1, 2], \"data_offsets\": [46, 54]}}   ";
    const char *path = write_st("ok.safetensors", json, data, sizeof data);
    ls_st_file f;
    ls_err err = {{0}};
    int rc = ls_st_open(path, &f, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(f.hdr.n_tensors == 6);
    for (int64_t i = 1; i < f.hdr.n_tensors; i++)
        CHECK(strcmp(f.hdr.tensors[i - 1].name, f.hdr.tensors[i].name) < 0);
    CHECK(ls_st_find(&f, "nope") == NULL);
    CHECK(ls_st_find(&f, "__metadata__") == NULL);

    const ls_st_tensor *t = ls_st_find(&f, "a");
    CHECK(t && t->dtype == LS_DT_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 2 &&
          t->numel == 4 && t->begin == 0 && t->end == 16 && t->file == f.path);
    if (t) {
        CHECK(t->data == f.map + 8 + strlen(json));
        CHECK(ls_st_get_f64(t, 0) == 1.0 && ls_st_get_f64(t, 1) == -2.5);
        CHECK(ls_st_get_f64(t, 2) == 0x1p-149 && ls_st_get_f64(t, 3) == 0x1.fffffep127);
        CHECK(isnan(ls_st_get_f64(t, 4)) && isnan(ls_st_get_f64(t, -1)));
    }
    t = ls_st_find(&f, "b");
    CHECK(t && t->dtype == LS_DT_F16 && t->numel == 6);
    if (t) {
        CHECK(ls_st_get_f64(t, 0) == 1.0 && ls_st_get_f64(t, 1) == -2.0);
        CHECK(ls_st_get_f64(t, 2) == 0x1p-24);
        CHECK(ls_st_get_f64(t, 3) == -0x3ffp-24);
        CHECK(isinf(ls_st_get_f64(t, 4)) && ls_st_get_f64(t, 4) > 0);
        CHECK(ls_st_get_f64(t, 5) == 65504.0);
    }
    t = ls_st_find(&f, "c");
    CHECK(t && t->dtype == LS_DT_BF16 && t->numel == 5);
    if (t) {
        CHECK(ls_st_get_f64(t, 0) == 1.0 && ls_st_get_f64(t, 1) == 3.140625);
        CHECK(ls_st_get_f64(t, 2) == 0x1p-133);
        CHECK(isinf(ls_st_get_f64(t, 3)) && ls_st_get_f64(t, 3) < 0);
        CHECK(isnan(ls_st_get_f64(t, 4)));
    }
    t = ls_st_find(&f, "d");
    CHECK(t && t->dtype == LS_DT_F64 && t->ndim == 0 && t->numel == 1);
    if (t) CHECK(same_bits(ls_st_get_f64(t, 0), 0.1));
    t = ls_st_find(&f, "z");
    CHECK(t && t->numel == 0 && t->ndim == 2 && t->begin == 16 && t->end == 16);
    t = ls_st_find(&f, "e");
    CHECK(t && t->dtype == LS_DT_I32 && t->numel == 2);
    if (t) {
        int32_t v;
        memcpy(&v, t->data + 4, 4);
        CHECK(v == -7);
        CHECK(isnan(ls_st_get_f64(t, 0))); /* not a float tensor */
    }
    ls_st_close(&f);
    CHECK(f.map == NULL && f.path == NULL && f.hdr.tensors == NULL);
    ls_st_close(&f); /* idempotent */
}

/* Independent references: value = mantissa * 2^exponent via ldexp. */
static double ref_f16(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 31 ? (m ? (double)NAN : (double)INFINITY) : e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return s ? -v : v;
}

static double ref_bf16(uint16_t h) {
    int s = h >> 15, e = (h >> 7) & 255, m = h & 127;
    double v = e == 255 ? (m ? (double)NAN : (double)INFINITY) : e ? ldexp(128 + m, e - 134) : ldexp(m, -133);
    return s ? -v : v;
}

/* All 65536 bit patterns of F16 and BF16, through a real file. */
static void test_exhaustive_half(void) {
    static uint16_t all[65536];
    for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    uint8_t *data = malloc(2 * sizeof all);
    memcpy(data, all, sizeof all);
    memcpy(data + sizeof all, all, sizeof all);
    const char *json = "{\"h\": {\"dtype\": \"F16\", \"shape\": [256, 256], \"data_offsets\": "
                       "[0, 131072]}, \"bf\": {\"dtype\": \"BF16\", \"shape\": [65536], "
                       "\"data_offsets\": [131072, 262144]}}";
    const char *path = write_st("half.safetensors", json, data, 2 * sizeof all);
    free(data);
    ls_st_file f;
    ls_err err = {{0}};
    int rc = ls_st_open(path, &f, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    const ls_st_tensor *h = ls_st_find(&f, "h"), *bf = ls_st_find(&f, "bf");
    CHECK(h && bf);
    int bad_h = 0, bad_bf = 0;
    for (uint32_t i = 0; i < 65536 && h && bf; i++) {
        double got = ls_st_get_f64(h, i), want = ref_f16((uint16_t)i);
        if (isnan(want) ? !(isnan(got) && !!signbit(got) == !!signbit(want)) : !same_bits(got, want)) {
            if (bad_h++ < 5) fprintf(stderr, "f16 0x%04x: got %a want %a\n", i, got, want);
        }
        got = ls_st_get_f64(bf, i);
        want = ref_bf16((uint16_t)i);
        if (isnan(want) ? !(isnan(got) && !!signbit(got) == !!signbit(want)) : !same_bits(got, want)) {
            if (bad_bf++ < 5) fprintf(stderr, "bf16 0x%04x: got %a want %a\n", i, got, want);
        }
#ifdef __FLT16_MAX__
        /* The compiler's own conversion, where it has one, as a third opinion. */
        __extension__ _Float16 x;
        memcpy(&x, &all[i], 2);
        if (!isnan(want) && !same_bits(ls_st_get_f64(h, i), (double)x)) bad_h++;
#endif
    }
    CHECKF(bad_h == 0, "%d f16 mismatches", bad_h);
    CHECKF(bad_bf == 0, "%d bf16 mismatches", bad_bf);
    ls_st_close(&f);
}

static void test_dtypes(void) {
    const char *names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
    const size_t sizes[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
    for (int i = 0; i < 10; i++) {
        CHECK(strcmp(ls_dtype_name((ls_dtype)i), names[i]) == 0);
        CHECK(ls_dtype_size((ls_dtype)i) == sizes[i]);
        /* and each one parses, with its size driving the span check */
        char json[200];
        snprintf(json, sizeof json, "{\"t\": {\"dtype\": \"%s\", \"shape\": [3], "
                 "\"data_offsets\": [0, %zu]}}", names[i], 3 * sizes[i]);
        ls_st_header h;
        ls_err err = {{0}};
        int rc = ls_st_parse_header((const uint8_t *)json, strlen(json), 24, "mem", &h, &err);
        CHECKF(rc == 0 && h.n_tensors == 1 && h.tensors[0].dtype == (ls_dtype)i &&
               h.tensors[0].data == NULL, "%s: %s", names[i], err.msg);
        ls_st_header_free(&h);
    }
    CHECK(strcmp(ls_dtype_name((ls_dtype)99), "?") == 0 && ls_dtype_size((ls_dtype)99) == 0);
    char buf[64];
    int64_t shp[3] = {64, 128, 0};
    ls_st_shape_str(buf, sizeof buf, 3, shp);
    CHECK(strcmp(buf, "[64, 128, 0]") == 0);
    ls_st_shape_str(buf, sizeof buf, 0, shp);
    CHECK(strcmp(buf, "[]") == 0);
    ls_st_shape_str(buf, 5, 3, shp); /* truncates, stays terminated */
    CHECK(strlen(buf) == 4);
}

static void test_file_level(void) {
    const char *ok = "{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
    uint8_t four[4] = {0};
    char path[512];

    snprintf(path, sizeof path, "%s/absent.safetensors", tmpdir);
    EXPECT_FAIL(path, "absent.safetensors", "cannot open", NULL);
    EXPECT_FAIL(tmpdir, tmpdir, "not a regular file", NULL);

    snprintf(path, sizeof path, "%s/empty.safetensors", tmpdir);
    fclose(fopen(path, "wb"));
    EXPECT_FAIL(path, "empty.safetensors", "too short", NULL);
    snprintf(path, sizeof path, "%s/short.safetensors", tmpdir);
    FILE *fp = fopen(path, "wb");
    fwrite("\x05\0\0\0", 1, 4, fp);
    fclose(fp);
    EXPECT_FAIL(path, "short.safetensors", "too short", NULL);

    /* header length larger than the file, zero, and absurd */
    EXPECT_FAIL(write_raw("long.safetensors", strlen(ok) + 5, ok, four, 4), "long.safetensors",
                "header length", "exceeds");
    EXPECT_FAIL(write_raw("zero.safetensors", 0, ok, four, 4), "zero.safetensors",
                "header length is 0", NULL);
    EXPECT_FAIL(write_raw("huge.safetensors", UINT64_MAX, ok, four, 4), "huge.safetensors",
                "header length 18446744073709551615", "exceeds");
    /* header shorter than the JSON: the cut JSON is rejected, the rest is "data" */
    EXPECT_FAIL(write_raw("cut.safetensors", strlen(ok) - 3, ok, four, 4), "cut.safetensors",
                "not valid JSON", NULL);
    /* data area one byte short */
    EXPECT_FAIL(write_st("trunc.safetensors", ok, four, 3), "trunc.safetensors", "'t'",
                "past the data area of 3 bytes");
    /* and the same file intact opens */
    ls_st_file f;
    ls_err err = {{0}};
    CHECKF(ls_st_open(write_st("good.safetensors", ok, four, 4), &f, &err) == 0, "%s", err.msg);
    ls_st_close(&f);

    /* a zeroed struct is safe to close */
    ls_st_file z;
    memset(&z, 0, sizeof z);
    ls_st_close(&z);
}

static void test_bad_headers(void) {
    /* JSON level */
    BAD("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}", 4,
        "not valid JSON", NULL);
    BAD("[1, 2]", 0, "not an object", NULL);
    BAD("\"x\"", 0, "JSON", NULL); /* jansson refuses a bare scalar outright */
    BAD("{} trailing", 0, "not valid JSON", NULL);
    BAD("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
        " \"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", 8,
        "duplicate", NULL);
    BAD("{\"t\": {\"dtype\": \"F32\", \"dtype\": \"F16\", \"shape\": [1], \"data_offsets\": "
        "[0, 4]}}", 4, "duplicate", NULL);
    BAD("{\"\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
        "empty name", NULL);
    BAD("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, "
        "99999999999999999999]}}", 4, "not valid JSON", NULL);

    /* entry level */
    BAD("{\"w.0\": [1, 2]}", 0, "'w.0'", "not an object");
    BAD("{\"w.0\": {\"dtype\": \"F8_E4M3\", \"shape\": [4], \"data_offsets\": [0, 4]}}", 4,
        "'w.0'", "unsupported dtype 'F8_E4M3'");
    BAD("{\"w.0\": {\"dtype\": \"f32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'w.0'",
        "unsupported dtype");
    BAD("{\"w.0\": {\"dtype\": 4, \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'w.0'",
        "dtype is not a string");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], \"x\": 1}}",
        4, "'w.0'", "unknown key 'x'");
    BAD("{\"w.0\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "'w.0'", "missing 'dtype'");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, "'w.0'",
        "missing 'shape'");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, "'w.0'", "missing 'data_offsets'");

    /* shape */
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 4]}}", 4,
        "'w.0'", "shape[1] is not a non-negative integer");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [1.0], \"data_offsets\": [0, 4]}}", 4,
        "'w.0'", "shape[0] is not a non-negative integer");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": 1, \"data_offsets\": [0, 4]}}", 4, "'w.0'",
        "shape is not a list");
    BAD("{\"w.0\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": "
        "[0, 1]}}", 4, "'w.0'", "9 dims, at most 8");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], "
        "\"data_offsets\": [0, 4]}}", 4, "'w.0'", "element count overflows");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904], "
        "\"data_offsets\": [0, 4]}}", 4, "'w.0'", "overflows 64 bits");

    /* data_offsets */
    BAD("{\"model.layers.0.mamba.A_log\": {\"dtype\": \"F32\", \"shape\": [8, 4], "
        "\"data_offsets\": [0, 120]}}", 120, "'model.layers.0.mamba.A_log'",
        "shape [8, 4] x F32 = 128 bytes but data_offsets span 120");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", 8, "'w.0'",
        "end before begin");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, "'w.0'",
        "data_offsets is not a list of two");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", 4,
        "'w.0'", "data_offsets is not a list of two");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, \"4\"]}}", 4,
        "'w.0'", "data_offsets is not a list of two");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 8,
        "'w.0'", "past the data area of 8 bytes");
    BAD("{\"w.0\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [9, 9]}}", 8,
        "'w.0'", "past the data area");
    BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
        " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12, "'a'",
        "'b' [4, 12] overlap");
    /* containment is overlap too */
    BAD("{\"big\": {\"dtype\": \"U8\", \"shape\": [16], \"data_offsets\": [0, 16]},"
        " \"x\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [16, 20]},"
        " \"in\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [6, 8]}}", 20, "'big'",
        "'in'");
    BAD("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
        " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "overlap",
        NULL);

    /* __metadata__ */
    BAD("{\"__metadata__\": [\"pt\"]}", 0, "__metadata__", "not an object");
    BAD("{\"__metadata__\": {\"format\": 1}}", 0, "__metadata__", "'format' is not a string");
    BAD("{\"__metadata__\": {\"format\": \"pt\"}, \"w\": 1}", 0, "'w'", "not an object");
}

/* Edge cases that must be accepted. */
static void test_accepts(void) {
    const char *cases[] = {
        "{}",
        "{\"__metadata__\": {}}",
        /* zero-size tensors may share offsets with each other and with real data */
        "{\"a\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]},"
        " \"b\": {\"dtype\": \"BF16\", \"shape\": [5, 0, 3], \"data_offsets\": [0, 0]},"
        " \"c\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
        " \"d\": {\"dtype\": \"I8\", \"shape\": [0], \"data_offsets\": [2, 2]},"
        " \"e\": {\"dtype\": \"I8\", \"shape\": [0], \"data_offsets\": [8, 8]}}",
        /* a gap between tensors is tolerated */
        "{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [6, 8]},"
        " \"b\": {\"dtype\": \"U8\", \"shape\": [], \"data_offsets\": [0, 1]}}",
        /* key order inside an entry does not matter; unicode names are fine */
        "{\"\\u00e9t\\u00e9\": {\"data_offsets\": [0, 8], \"shape\": [1, 1, 1, 1, 1, 1, 1, 2],"
        " \"dtype\": \"F32\"}}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ls_st_header h;
        ls_err err = {{0}};
        int rc = ls_st_parse_header((const uint8_t *)cases[i], strlen(cases[i]), 8, "mem", &h,
                                    &err);
        CHECKF(rc == 0, "case %zu: %s", i, err.msg);
        ls_st_header_free(&h);
    }
    /* parse_header with no name given still says where */
    ls_st_header h;
    ls_err err = {{0}};
    CHECK(ls_st_parse_header((const uint8_t *)"[", 1, 0, NULL, &h, &err) == -1);
    CHECK(strstr(err.msg, "safetensors") != NULL && h.tensors == NULL);
    CHECK(ls_st_parse_header(NULL, 0, 0, "mem", &h, &err) == -1);
    CHECK(ls_st_parse_header((const uint8_t *)"{}", 2, 0, "mem", &h, NULL) == 0);
    ls_st_header_free(&h);
    ls_st_header_free(&h);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_dtypes();
    test_valid();
    test_exhaustive_half();
    test_file_level();
    test_bad_headers();
    test_accepts();
    rm_tmpdir();
    return check_status();
}
