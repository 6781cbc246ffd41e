#include "engine/model_config.h"

#include "engine/read_file.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads an integer field; `def` < 0 means the field is required. */
static int get_int(json_t *root, const char *what, const char *key, int64_t def,
                   int64_t lo, int64_t hi, int64_t *out, ls_err *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (def < 0) return ls_errf(err, "%s: missing required field '%s'", what, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return ls_errf(err, "%s: field '%s' must be an integer", what, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return ls_errf(err, "%s: field '%s' = %lld is out of range [%lld, %lld]", what, key,
                       (long long)x, (long long)lo, (long long)hi);
    *out = (int64_t)x;
    return 0;
}

static int get_bool(json_t *root, const char *what, const char *key, int def, int *out,
                    ls_err *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return ls_errf(err, "%s: field '%s' must be true or false", what, key);
    *out = json_is_true(v);
    return 0;
}

static int parse_root(json_t *root, const char *what, ls_model_config *c, ls_err *err) {
    if (!json_is_object(root)) return ls_errf(err, "%s: expected a JSON object", what);
    json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt) || strcmp(json_string_value(mt), "jamba") != 0)
        return ls_errf(err, "%s: model_type must be \"jamba\" (got %s)", what,
                       json_is_string(mt) ? json_string_value(mt) : "none");
    json_t *act = json_object_get(root, "hidden_act");
    if (act && !(json_is_string(act) && strcmp(json_string_value(act), "silu") == 0))
        return ls_errf(err, "%s: hidden_act %s is not supported (only \"silu\")", what,
                       json_is_string(act) ? json_string_value(act) : "(not a string)");

    const int64_t BIG = INT64_C(1) << 31;
    if (get_int(root, what, "vocab_size", -1, 1, BIG, &c->vocab_size, err) ||
        get_int(root, what, "hidden_size", -1, 1, BIG, &c->hidden_size, err) ||
        get_int(root, what, "intermediate_size", -1, 1, BIG, &c->intermediate_size, err) ||
        get_int(root, what, "num_hidden_layers", -1, 1, LS_MAX_LAYERS, &c->num_layers, err) ||
        get_int(root, what, "num_attention_heads", -1, 1, 1 << 16, &c->num_heads, err) ||
        get_int(root, what, "num_key_value_heads", c->num_heads, 1, 1 << 16, &c->num_kv_heads, err) ||
        get_int(root, what, "num_experts", 1, 1, 1 << 16, &c->num_experts, err) ||
        get_int(root, what, "num_experts_per_tok", 2, 1, 1 << 16, &c->num_experts_per_tok, err) ||
        get_int(root, what, "expert_layer_period", 2, 1, BIG, &c->expert_layer_period, err) ||
        get_int(root, what, "expert_layer_offset", 1, 0, BIG, &c->expert_layer_offset, err) ||
        get_int(root, what, "attn_layer_period", 8, 1, BIG, &c->attn_layer_period, err) ||
        get_int(root, what, "attn_layer_offset", 4, 0, BIG, &c->attn_layer_offset, err) ||
        get_int(root, what, "mamba_d_state", 16, 1, 1 << 16, &c->mamba_d_state, err) ||
        get_int(root, what, "mamba_d_conv", 4, 1, 1 << 10, &c->mamba_d_conv, err) ||
        get_int(root, what, "mamba_expand", 2, 1, 1 << 10, &c->mamba_expand, err) ||
        get_bool(root, what, "mamba_conv_bias", 1, &c->mamba_conv_bias, err) ||
        get_bool(root, what, "mamba_proj_bias", 0, &c->mamba_proj_bias, err) ||
        get_bool(root, what, "tie_word_embeddings", 0, &c->tie_word_embeddings, err))
        return -1;
    /* head_dim: transformers uses config.head_dim when present, else hidden / heads. */
    if (c->hidden_size % c->num_heads != 0 && !json_object_get(root, "head_dim"))
        return ls_errf(err, "%s: hidden_size %lld is not divisible by num_attention_heads %lld",
                       what, (long long)c->hidden_size, (long long)c->num_heads);
    if (get_int(root, what, "head_dim", c->hidden_size / c->num_heads, 1, 1 << 16, &c->head_dim, err))
        return -1;
    if (c->num_heads % c->num_kv_heads != 0)
        return ls_errf(err, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
                       what, (long long)c->num_heads, (long long)c->num_kv_heads);
    if (c->expert_layer_offset >= c->expert_layer_period)
        return ls_errf(err, "%s: expert_layer_offset must be smaller than expert_layer_period", what);
    if (c->attn_layer_offset >= c->attn_layer_period)
        return ls_errf(err, "%s: attn_layer_offset must be smaller than attn_layer_period", what);
    if (c->num_experts_per_tok > c->num_experts && c->num_experts > 1)
        return ls_errf(err, "%s: num_experts_per_tok %lld exceeds num_experts %lld", what,
                       (long long)c->num_experts_per_tok, (long long)c->num_experts);

    json_t *eps = json_object_get(root, "rms_norm_eps");
    if (!eps) c->rms_norm_eps = 1e-6;
    else if (json_is_number(eps) && json_number_value(eps) > 0) c->rms_norm_eps = json_number_value(eps);
    else return ls_errf(err, "%s: rms_norm_eps must be a positive number", what);

    c->mamba_d_inner = c->mamba_expand * c->hidden_size;
    json_t *dtr = json_object_get(root, "mamba_dt_rank");
    if (!dtr || (json_is_string(dtr) && strcmp(json_string_value(dtr), "auto") == 0)) {
        c->mamba_dt_rank = (c->hidden_size + 15) / 16;   /* ceil(hidden / 16), as transformers */
    } else if (json_is_integer(dtr) && json_integer_value(dtr) >= 1 && json_integer_value(dtr) < BIG) {
        c->mamba_dt_rank = (int64_t)json_integer_value(dtr);
    } else {
        return ls_errf(err, "%s: mamba_dt_rank must be a positive integer or \"auto\"", what);
    }

    /* A field that would change the math and that this reference does not implement. */
    json_t *sw = json_object_get(root, "sliding_window");
    if (sw && !json_is_null(sw))
        return ls_errf(err, "%s: sliding_window is not supported (must be null)", what);

    for (int64_t i = 0; i < c->num_layers; i++) {
        c->layer_kind[i] = (i % c->attn_layer_period == c->attn_layer_offset) ? LS_LAYER_ATTN
                                                                              : LS_LAYER_MAMBA;
        c->layer_experts[i] =
            (c->num_experts > 1 && i % c->expert_layer_period == c->expert_layer_offset)
                ? c->num_experts : 1;
    }
    return 0;
}

int ls_model_config_parse(const char *text, size_t len, const char *what, ls_model_config *cfg,
                          ls_err *err) {
    memset(cfg, 0, sizeof *cfg);
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return ls_errf(err, "%s:%d:%d: invalid JSON: %s", what, je.line, je.column, je.text);
    int rc = parse_root(root, what, cfg, err);
    json_decref(root);
    return rc;
}

int ls_model_config_load(const char *dir, ls_model_config *cfg, ls_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *buf;
    size_t len;
    if (ls_read_file(path, (size_t)16 << 20, &buf, &len, err)) {
        if (!err) return -1;
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return ls_errf(err, "%s (is '%s' a Hugging Face model directory?)", why, dir);
    }
    int rc = ls_model_config_parse(buf, len, path, cfg, err);
    free(buf);
    return rc;
}

int64_t ls_cfg_count(const ls_model_config *cfg, ls_layer_kind kind) {
    int64_t n = 0;
    for (int64_t i = 0; i < cfg->num_layers; i++) n += cfg->layer_kind[i] == kind;
    return n;
}

int64_t ls_cfg_kind_index(const ls_model_config *cfg, int64_t layer) {
    int64_t n = 0;
    for (int64_t i = 0; i < layer; i++) n += cfg->layer_kind[i] == cfg->layer_kind[layer];
    return n;
}
