/* safetensors reader: validate the whole header before handing out any tensor.
 *
 * The header is untrusted input (a downloaded checkpoint, or the fuzzer), so every
 * number is range-checked in 64-bit arithmetic with explicit overflow tests, and a
 * tensor's data pointer is only formed once its [begin, end) is known to lie inside
 * the data area. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup, mkdtemp, O_CLOEXEC under plain -std=c17 */
#endif
#include "engine/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

/* Tensor data is read in place from the mapping; safetensors is little-endian. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; "
               "a big-endian host needs byte swapping in ls_st_get_f64");

/* Real headers are a few hundred KB even with thousands of tensors; the upstream
 * Rust reader refuses anything above 100 MB too, so a corrupt length is caught
 * before we hand jansson a gigabyte of garbage. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [LS_DT_F32] = {"F32", 4}, [LS_DT_F16] = {"F16", 2}, [LS_DT_BF16] = {"BF16", 2},
    [LS_DT_F64] = {"F64", 8}, [LS_DT_I64] = {"I64", 8}, [LS_DT_I32] = {"I32", 4},
    [LS_DT_I16] = {"I16", 2}, [LS_DT_I8] = {"I8", 1},   [LS_DT_U8] = {"U8", 1},
    [LS_DT_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *ls_dtype_name(ls_dtype dt) {
    return (int)dt >= 0 && (int)dt < N_DTYPES ? dtypes[dt].name : "?";
}

size_t ls_dtype_size(ls_dtype dt) {
    return (int)dt >= 0 && (int)dt < N_DTYPES ? dtypes[dt].size : 0;
}

void ls_st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    if (!cap) return;
    size_t pos = 0;
    buf[0] = '\0';
    for (int i = -1; i <= ndim && pos < cap; i++) {
        int r;
        if (i < 0) r = snprintf(buf + pos, cap - pos, "[");
        else if (i == ndim) r = snprintf(buf + pos, cap - pos, "]");
        else r = snprintf(buf + pos, cap - pos, "%s%" PRId64, i ? ", " : "", shape[i]);
        if (r < 0) return;
        pos += (size_t)r;
    }
}

/* ---- header parsing ---------------------------------------------------------- */

/* A JSON integer in [0, INT64_MAX]. jansson keeps integers and reals apart, so
 * 4.0 or 1e3 is refused here rather than silently truncated. */
static int get_nonneg(const json_t *v, int64_t *out) {
    if (!json_is_integer(v)) return 0;
    json_int_t x = json_integer_value(v);
    if (x < 0) return 0;
    *out = (int64_t)x;
    return 1;
}

static int parse_dtype(const char *what, const char *name, const json_t *v, ls_dtype *out,
                       ls_err *err) {
    if (!json_is_string(v))
        return ls_errf(err, "%s: tensor '%s': dtype is not a string", what, name);
    const char *s = json_string_value(v);
    for (int i = 0; i < N_DTYPES; i++) {
        if (strcmp(s, dtypes[i].name) == 0) {
            *out = (ls_dtype)i;
            return 0;
        }
    }
    return ls_errf(err, "%s: tensor '%s': unsupported dtype '%s' (supported: F32 F16 BF16 F64 "
                   "I64 I32 I16 I8 U8 BOOL)", what, name, s);
}

static int parse_entry(const char *what, const char *name, const json_t *entry,
                       uint64_t data_len, ls_st_tensor *t, ls_err *err) {
    if (!json_is_object(entry))
        return ls_errf(err, "%s: tensor '%s': entry is not an object", what, name);

    /* Exactly these three keys: an unknown one means a format we do not understand. */
    const json_t *jdt = NULL, *jshape = NULL, *joff = NULL;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)entry, k, v) {
        if (strcmp(k, "dtype") == 0) jdt = v;
        else if (strcmp(k, "shape") == 0) jshape = v;
        else if (strcmp(k, "data_offsets") == 0) joff = v;
        else
            return ls_errf(err, "%s: tensor '%s': unknown key '%s' (expected dtype, shape, "
                           "data_offsets)", what, name, k);
    }
    if (!jdt) return ls_errf(err, "%s: tensor '%s': missing 'dtype'", what, name);
    if (!jshape) return ls_errf(err, "%s: tensor '%s': missing 'shape'", what, name);
    if (!joff) return ls_errf(err, "%s: tensor '%s': missing 'data_offsets'", what, name);

    if (parse_dtype(what, name, jdt, &t->dtype, err)) return -1;

    if (!json_is_array(jshape))
        return ls_errf(err, "%s: tensor '%s': shape is not a list", what, name);
    size_t nd = json_array_size(jshape);
    if (nd > LS_MAX_DIMS)
        return ls_errf(err, "%s: tensor '%s': shape has %zu dims, at most %d supported", what,
                       name, nd, LS_MAX_DIMS);
    t->ndim = (int)nd;
    t->numel = 1; /* a scalar (shape []) has one element */
    for (size_t i = 0; i < nd; i++) {
        if (!get_nonneg(json_array_get(jshape, i), &t->shape[i]))
            return ls_errf(err, "%s: tensor '%s': shape[%zu] is not a non-negative integer",
                           what, name, i);
        if (__builtin_mul_overflow(t->numel, t->shape[i], &t->numel))
            return ls_errf(err, "%s: tensor '%s': shape's element count overflows 64 bits",
                           what, name);
    }

    int64_t b, e;
    if (!json_is_array(joff) || json_array_size(joff) != 2 ||
        !get_nonneg(json_array_get(joff, 0), &b) || !get_nonneg(json_array_get(joff, 1), &e))
        return ls_errf(err, "%s: tensor '%s': data_offsets is not a list of two non-negative "
                       "integers", what, name);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    if (t->end < t->begin)
        return ls_errf(err, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end "
                       "before begin", what, name, t->begin, t->end);

    char sh[256];
    ls_st_shape_str(sh, sizeof sh, t->ndim, t->shape);
    uint64_t bytes;
    if (__builtin_mul_overflow((uint64_t)t->numel, (uint64_t)dtypes[t->dtype].size, &bytes))
        return ls_errf(err, "%s: tensor '%s': shape %s x %s overflows 64 bits", what, name, sh,
                       dtypes[t->dtype].name);
    if (bytes != t->end - t->begin)
        return ls_errf(err, "%s: tensor '%s': shape %s x %s = %" PRIu64 " bytes but "
                       "data_offsets span %" PRIu64, what, name, sh, dtypes[t->dtype].name,
                       bytes, t->end - t->begin);
    if (t->end > data_len)
        return ls_errf(err, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] extend "
                       "past the data area of %" PRIu64 " bytes", what, name, t->begin, t->end,
                       data_len);
    return 0;
}

static int check_metadata(const char *what, const json_t *md, ls_err *err) {
    if (!json_is_object(md))
        return ls_errf(err, "%s: __metadata__ is not an object", what);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)md, k, v) {
        if (!json_is_string(v))
            return ls_errf(err, "%s: __metadata__ value of '%s' is not a string", what, k);
    }
    return 0;
}

static int cmp_begin(const void *pa, const void *pb) {
    const ls_st_tensor *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return strcmp(a->name, b->name); /* total order: qsort is not stable */
}

static int cmp_name(const void *pa, const void *pb) {
    const ls_st_tensor *a = pa, *b = pb;
    return strcmp(a->name, b->name);
}

/* Sorted by begin, a non-empty tensor must start at or after the furthest end seen so
 * far. Zero-byte tensors own no bytes, so they may sit anywhere (even inside another). */
static int check_overlap(const char *what, ls_st_header *h, ls_err *err) {
    qsort(h->tensors, (size_t)h->n_tensors, sizeof *h->tensors, cmp_begin);
    const ls_st_tensor *prev = NULL;
    for (int64_t i = 0; i < h->n_tensors; i++) {
        const ls_st_tensor *t = &h->tensors[i];
        if (t->begin == t->end) continue;
        if (prev && t->begin < prev->end)
            return ls_errf(err, "%s: tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64
                           ", %" PRIu64 "] overlap", what, prev->name, prev->begin, prev->end,
                           t->name, t->begin, t->end);
        if (!prev || t->end > prev->end) prev = t;
    }
    return 0;
}

int ls_st_parse_header(const uint8_t *buf, size_t len, uint64_t data_len, const char *what,
                       ls_st_header *out, ls_err *err) {
    memset(out, 0, sizeof *out);
    if (!what) what = "safetensors";

    json_error_t je;
    json_t *root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return ls_errf(err, "%s: header is not valid JSON: %s (line %d, column %d)", what,
                       je.text, je.line, je.column);
    int rc = -1;
    if (!json_is_object(root)) {
        ls_errf(err, "%s: header JSON is not an object", what);
        goto done;
    }

    size_t n = json_object_size(root);
    out->tensors = calloc(n ? n : 1, sizeof *out->tensors);
    if (!out->tensors) {
        ls_errf(err, "%s: out of memory for %zu tensors", what, n);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (check_metadata(what, val, err)) goto done;
            continue;
        }
        if (!key[0]) {
            ls_errf(err, "%s: tensor with an empty name", what);
            goto done;
        }
        ls_st_tensor *t = &out->tensors[out->n_tensors];
        if (parse_entry(what, key, val, data_len, t, err)) goto done;
        /* Duplicate names cannot happen: JSON_REJECT_DUPLICATES refused them above. */
        t->name = strdup(key);
        if (!t->name) {
            ls_errf(err, "%s: out of memory", what);
            goto done;
        }
        out->n_tensors++;
    }
    if (check_overlap(what, out, err)) goto done;
    qsort(out->tensors, (size_t)out->n_tensors, sizeof *out->tensors, cmp_name);
    rc = 0;
done:
    json_decref(root);
    if (rc) ls_st_header_free(out);
    return rc;
}

void ls_st_header_free(ls_st_header *h) {
    if (!h) return;
    if (h->tensors) {
        for (int64_t i = 0; i < h->n_tensors; i++) free(h->tensors[i].name);
        free(h->tensors);
    }
    memset(h, 0, sizeof *h);
}

/* ---- files ------------------------------------------------------------------- */

int ls_st_open(const char *path, ls_st_file *out, ls_err *err) {
    memset(out, 0, sizeof *out);
    out->fd = -1;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ls_errf(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ls_errf(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ls_errf(err, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < 8) {
        close(fd);
        return ls_errf(err, "%s: file is %" PRIu64 " bytes, too short for a safetensors "
                       "header", path, size);
    }
    if (size > SIZE_MAX) {
        close(fd);
        return ls_errf(err, "%s: file of %" PRIu64 " bytes cannot be mapped", path, size);
    }
    void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    /* The mapping keeps the file alive; holding the descriptor would only cost an fd
     * per shard, so it is closed here and `fd` stays -1. */
    close(fd);
    if (m == MAP_FAILED) return ls_errf(err, "%s: cannot mmap: %s", path, strerror(map_errno));
    out->map = m;
    out->map_len = (size_t)size;
    out->path = strdup(path);
    if (!out->path) {
        ls_errf(err, "%s: out of memory", path);
        goto fail;
    }

    /* Assemble the length byte by byte: no alignment or endianness assumption. */
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)out->map[i] << (8 * i);
    if (n == 0) {
        ls_errf(err, "%s: header length is 0", path);
        goto fail;
    }
    if (n > size - 8) {
        ls_errf(err, "%s: header length %" PRIu64 " exceeds the %" PRIu64 " bytes after the "
                "length prefix (truncated or not a safetensors file?)", path, n, size - 8);
        goto fail;
    }
    if (n > ST_MAX_HEADER) {
        ls_errf(err, "%s: header length %" PRIu64 " exceeds the limit of %" PRIu64 " bytes",
                path, n, ST_MAX_HEADER);
        goto fail;
    }
    uint64_t data_len = size - 8 - n;
    if (ls_st_parse_header(out->map + 8, (size_t)n, data_len, path, &out->hdr, err)) goto fail;

    /* Safe now: parse_header proved begin <= end <= data_len for every tensor. */
    const uint8_t *data = out->map + 8 + n;
    for (int64_t i = 0; i < out->hdr.n_tensors; i++) {
        out->hdr.tensors[i].data = data + out->hdr.tensors[i].begin;
        out->hdr.tensors[i].file = out->path;
    }
    return 0;
fail:
    ls_st_close(out);
    return -1;
}

void ls_st_close(ls_st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    ls_st_header_free(&f->hdr);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

static int cmp_find(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const ls_st_tensor *)elem)->name);
}

const ls_st_tensor *ls_st_find(const ls_st_file *f, const char *name) {
    if (!f || !name || !f->hdr.tensors) return NULL;
    return bsearch(name, f->hdr.tensors, (size_t)f->hdr.n_tensors, sizeof *f->hdr.tensors,
                   cmp_find);
}

/* ---- element access ---------------------------------------------------------- */

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE binary16 -> binary32. Every half is exactly representable as a float; only
 * the exponent is re-biased (15 -> 127) and the mantissa widened (10 -> 23 bits). */
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, or NaN keeping its payload */
    } else if (exp != 0) {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign; /* +-0 */
    } else {
        /* Subnormal: man * 2^-24. Shift the leading 1 up to the implicit-bit position
         * (bit 10); each shift lowers the exponent by one. Normal in binary32. */
        uint32_t e = 127 - 15 + 1;
        while (!(man & 0x400u)) {
            man <<= 1;
            e--;
        }
        bits = sign | (e << 23) | ((man & 0x3ffu) << 13);
    }
    return f32_from_bits(bits);
}

/* bfloat16 is the top half of a binary32, subnormals, inf and NaN included. */
static float bf16_to_f32(uint16_t h) {
    return f32_from_bits((uint32_t)h << 16);
}

double ls_st_get_f64(const ls_st_tensor *t, int64_t i) {
    if (!t || !t->data || i < 0 || i >= t->numel) return NAN;
    const uint8_t *p = t->data + (size_t)i * dtypes[t->dtype].size;
    switch (t->dtype) {
    case LS_DT_F32: {
        uint32_t u;
        memcpy(&u, p, 4);
        return (double)f32_from_bits(u);
    }
    case LS_DT_F16: {
        uint16_t u;
        memcpy(&u, p, 2);
        return (double)f16_to_f32(u);
    }
    case LS_DT_BF16: {
        uint16_t u;
        memcpy(&u, p, 2);
        return (double)bf16_to_f32(u);
    }
    case LS_DT_F64: {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    default:
        return NAN; /* not a float tensor: callers check dtype (ls_ckpt_take does) */
    }
}
