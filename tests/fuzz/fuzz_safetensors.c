/* libFuzzer target for the safetensors header parser.
 *
 * Input: 8 bytes little-endian data-area length, then the header JSON (the same
 * layout as a file, except that the length prefix is the data length rather than the
 * header length, so the fuzzer can steer the bounds checks directly). Inputs shorter
 * than 8 bytes are parsed whole against an empty data area.
 *
 * Beyond "no crash, no leak", an accepted header must satisfy the invariants the
 * rest of the engine relies on; a violation traps so the fuzzer reports it. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup, mkdtemp, O_CLOEXEC under plain -std=c17 */
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c) do { if (!(c)) __builtin_trap(); } while (0)

/* Small data areas get real memory, so ASan checks every element access. */
#define MAX_BOUND_DATA ((uint64_t)1 << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t data_len = 0;
    const uint8_t *hdr = data;
    size_t hdr_len = size;
    if (size >= 8) {
        for (int i = 0; i < 8; i++) data_len |= (uint64_t)data[i] << (8 * i);
        hdr += 8;
        hdr_len -= 8;
    }

    ls_st_header h;
    ls_err err;
    err.msg[0] = '\0';
    if (ls_st_parse_header(hdr, hdr_len, data_len, "fuzz", &h, &err) != 0) {
        REQUIRE(h.tensors == NULL && h.n_tensors == 0);
        REQUIRE(strncmp(err.msg, "fuzz", 4) == 0 || strstr(err.msg, "out of memory"));
        return 0;
    }

    uint8_t *area = NULL;
    if (data_len <= MAX_BOUND_DATA) area = malloc(data_len ? (size_t)data_len : 1);
    for (int64_t i = 0; i < h.n_tensors; i++) {
        ls_st_tensor *t = &h.tensors[i];
        REQUIRE(t->name && t->name[0]);
        REQUIRE(i == 0 || strcmp(h.tensors[i - 1].name, t->name) < 0);
        REQUIRE(t->ndim >= 0 && t->ndim <= LS_MAX_DIMS && t->numel >= 0);
        REQUIRE(t->begin <= t->end && t->end <= data_len);
        REQUIRE((uint64_t)t->numel * ls_dtype_size(t->dtype) == t->end - t->begin);
        int64_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
        REQUIRE(n == t->numel);
        /* no two non-empty tensors share a byte (quadratic, but inputs are small) */
        for (int64_t j = 0; j < i; j++) {
            const ls_st_tensor *u = &h.tensors[j];
            if (t->begin == t->end || u->begin == u->end) continue;
            REQUIRE(t->end <= u->begin || u->end <= t->begin);
        }
        if (area) {
            memset(area, 0x3c, (size_t)data_len);
            t->data = area + t->begin;
            for (int64_t k = 0; k < t->numel; k++) (void)ls_st_get_f64(t, k);
        }
    }
    free(area);
    ls_st_header_free(&h);
    return 0;
}
