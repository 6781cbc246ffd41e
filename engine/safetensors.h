/* A validated, mmap-based reader for one .safetensors file.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON, then the data area.
 * Everything is checked before any tensor is handed out: N against the file size,
 * the JSON itself (no duplicate keys), each entry's dtype, shape and data_offsets,
 * shape x dtype size == end - begin, offsets inside the data area, no two tensors
 * overlapping. All sizes and offsets are 64-bit and overflow-checked. */
#ifndef LS_SAFETENSORS_H
#define LS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

#define LS_MAX_DIMS 8

typedef enum ls_dtype {
    LS_DT_F32 = 0,
    LS_DT_F16,
    LS_DT_BF16,
    LS_DT_F64,
    LS_DT_I64,
    LS_DT_I32,
    LS_DT_I16,
    LS_DT_I8,
    LS_DT_U8,
    LS_DT_BOOL,
} ls_dtype;

const char *ls_dtype_name(ls_dtype dt);
size_t ls_dtype_size(ls_dtype dt);

/* Formats a shape as "[64, 128]" ("[]" for a scalar) into buf, truncating to cap. */
void ls_st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

typedef struct ls_st_tensor {
    char *name;                  /* owned */
    ls_dtype dtype;
    int ndim;
    int64_t shape[LS_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end;         /* offsets into the data area */
    const uint8_t *data;         /* into the mapping (NULL until bound to a file) */
    const char *file;            /* path of the file it lives in (owned by the file) */
} ls_st_tensor;

typedef struct ls_st_header {
    ls_st_tensor *tensors;       /* sorted by name */
    int64_t n_tensors;
} ls_st_header;

/* Parses and validates a header's JSON (buf, len bytes; not NUL-terminated) against
 * a data area of data_len bytes. `what` names the source in messages. This is the
 * fuzz target's entry point: it must never crash, leak, or read out of bounds. */
int ls_st_parse_header(const uint8_t *buf, size_t len, uint64_t data_len,
                       const char *what, ls_st_header *out, ls_err *err);
void ls_st_header_free(ls_st_header *h);

typedef struct ls_st_file {
    char *path;
    int fd;                      /* -1: closed once mapped (the mapping outlives it) */
    uint8_t *map;
    size_t map_len;
    ls_st_header hdr;            /* tensors' data pointers point into map */
} ls_st_file;

int ls_st_open(const char *path, ls_st_file *out, ls_err *err);
void ls_st_close(ls_st_file *f);
const ls_st_tensor *ls_st_find(const ls_st_file *f, const char *name);

/* Element i of a float tensor (F32/F16/BF16/F64) as double; exact for all of them. */
double ls_st_get_f64(const ls_st_tensor *t, int64_t i);

#endif
