/* A Hugging Face model directory's weights: model.safetensors, or shards listed in
 * model.safetensors.index.json. Tensors are looked up by name across shards; each
 * lookup checks shape and marks the tensor used, so that after binding, tensors
 * nobody asked for are reported as "extra". */
#ifndef LS_CHECKPOINT_H
#define LS_CHECKPOINT_H

#include <stdint.h>

#include "engine/err.h"
#include "engine/safetensors.h"

typedef struct ls_checkpoint {
    char *dir;
    ls_st_file *files;
    int64_t n_files;
    /* all tensors of all files, sorted by name; `used` parallel to it */
    const ls_st_tensor **all;
    uint8_t *used;
    int64_t n_all;
} ls_checkpoint;

/* Opens dir/model.safetensors, or dir/model.safetensors.index.json and every shard it
 * names. Checks: index JSON well formed, every weight_map entry present in the shard it
 * names, no tensor in two shards, no shard file left unlisted by the index. */
int ls_ckpt_open(const char *dir, ls_checkpoint *out, ls_err *err);
void ls_ckpt_close(ls_checkpoint *c);

/* Finds `name`, checks it has exactly ndim dims equal to shape[] and a float dtype
 * (F32/F16/BF16, F64 allowed too), marks it used. Missing, mis-shaped or wrong dtype
 * is an error naming the file and tensor. */
int ls_ckpt_take(ls_checkpoint *c, const char *name, int ndim, const int64_t *shape,
                 const ls_st_tensor **out, ls_err *err);
/* 1 if present (does not mark used). */
int ls_ckpt_has(const ls_checkpoint *c, const char *name);
/* Marks `name` used without binding it (e.g. lm_head.weight of a tied model). */
void ls_ckpt_ignore(ls_checkpoint *c, const char *name);
/* Error naming the first few tensors never taken. */
int ls_ckpt_check_all_used(const ls_checkpoint *c, ls_err *err);

#endif
