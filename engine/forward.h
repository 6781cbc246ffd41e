/* One forward step over a batch of sequences, each contributing a run of tokens: a
 * whole prompt (reference), a prefill chunk, or one decode token (engine). The same
 * function serves both passes: what differs is where states and KV rows live, which is
 * exactly what the engine's caches, pools and schedules are there to get right. */
#ifndef LS_FORWARD_H
#define LS_FORWARD_H

#include <stdint.h>

#include "engine/err.h"
#include "engine/model.h"

typedef struct ls_seq_step {
    const int32_t *tokens;       /* the n tokens run this step */
    int64_t n;
    int64_t start_pos;           /* tokens of this sequence already in the KV cache */
    /* Mamba states, one pointer per Mamba layer (model precision): conv [d_inner][d_conv-1],
     * ssm [d_inner][d_state]. has_initial_state = 0 starts from zeros (and overwrites the
     * slot); 1 reads what the slot holds. conv == NULL runs on scratch state. */
    int has_initial_state;
    void **conv;
    void **ssm;
    /* KV blocks covering positions [0, start_pos + n). NULL marks a padding row (batches
     * padded to a captured size): it reads and writes no KV and its outputs are unused. */
    const int64_t *block_table;
    int64_t logits_from;         /* rows [logits_from, n) get log-probabilities */
    void *logprobs;              /* [(n - logits_from)][vocab], model precision */
} ls_seq_step;

typedef struct ls_kv_cache {
    int64_t block_size;
    void **k, **v;               /* per attention layer: [num_blocks * block_size][kv_dim] */
} ls_kv_cache;

/* Probe: called with each sequence row's output of each layer component, for localising
 * a divergence. component is one of "mamba", "attention", "moe", "mlp", "hidden"
 * (the residual stream after the layer); data has n values of the model's precision.
 * Mamba layers also report the state each sequence's step starts from, with row -1:
 * "conv_state" and "ssm_state". */
typedef void (*ls_probe_fn)(void *ctx, int64_t seq, int64_t row, int64_t layer,
                            const char *component, const void *data, int64_t n);

typedef struct ls_forward_opts {
    ls_probe_fn probe;
    void *probe_ctx;
    /* Only for a backend with a `sample` op (engine/backend.h), which honours it: the rows
     * asked for (logprobs != NULL) stay on the backend for `sample` instead of being written
     * to the logprobs buffers, which are then left untouched. The CPU forward ignores it. */
    int keep_rows;
} ls_forward_opts;

int ls_forward(const ls_model *m, const ls_kv_cache *kv, const ls_seq_step *seqs,
               int64_t n_seqs, const ls_forward_opts *opts, ls_err *err);

#endif
