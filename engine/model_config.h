/* The fields of a Jamba config.json that change the math. */
#ifndef LS_MODEL_CONFIG_H
#define LS_MODEL_CONFIG_H

#include <stdint.h>

#include "engine/err.h"

typedef enum ls_layer_kind { LS_LAYER_MAMBA = 0, LS_LAYER_ATTN = 1 } ls_layer_kind;

#define LS_MAX_LAYERS 512

typedef struct ls_model_config {
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t intermediate_size;       /* MLP / expert hidden size */
    int64_t num_layers;
    int64_t num_heads;
    int64_t num_kv_heads;
    int64_t head_dim;                /* hidden_size / num_heads */
    double rms_norm_eps;
    int64_t num_experts;
    int64_t num_experts_per_tok;
    int64_t expert_layer_period, expert_layer_offset;
    int64_t attn_layer_period, attn_layer_offset;
    int64_t mamba_d_state;
    int64_t mamba_d_conv;
    int64_t mamba_expand;
    int64_t mamba_d_inner;           /* expand * hidden_size */
    int64_t mamba_dt_rank;           /* "auto" = ceil(hidden_size / 16) */
    int mamba_conv_bias;
    int mamba_proj_bias;
    int tie_word_embeddings;
    /* derived per layer */
    ls_layer_kind layer_kind[LS_MAX_LAYERS];
    int64_t layer_experts[LS_MAX_LAYERS];   /* 1 = dense MLP */
} ls_model_config;

/* Reads and validates DIR/config.json. Unsupported values (model_type other than
 * jamba, hidden_act other than silu, heads not dividing hidden, ...) are errors
 * naming the file and field. */
int ls_model_config_load(const char *dir, ls_model_config *cfg, ls_err *err);

/* Parses config JSON text (for tests and the fuzzer); `what` names it in messages. */
int ls_model_config_parse(const char *text, size_t len, const char *what,
                          ls_model_config *cfg, ls_err *err);

/* Number of Mamba / attention layers, and the index of layer i among its kind. */
int64_t ls_cfg_count(const ls_model_config *cfg, ls_layer_kind kind);
int64_t ls_cfg_kind_index(const ls_model_config *cfg, int64_t layer);

#endif
