/* A loaded Jamba model: its config and its weights converted to one working precision. */
#ifndef LS_MODEL_H
#define LS_MODEL_H

#include <stdint.h>

#include "engine/err.h"
#include "engine/model_config.h"

typedef enum ls_prec { LS_F32 = 0, LS_F64 = 1 } ls_prec;

const char *ls_prec_name(ls_prec p);
int ls_prec_parse(const char *s, ls_prec *out);   /* "fp32" | "fp64" */
static inline int64_t ls_prec_size(ls_prec p) { return p == LS_F64 ? 8 : 4; }

/* Weight pointers are float* or double* by the model's precision. */
typedef struct ls_linear {
    void *w;          /* [out][in] */
    void *b;          /* [out] or NULL */
    int64_t out, in;
} ls_linear;

typedef struct ls_mlp_w {
    ls_linear gate, up, down;
} ls_mlp_w;

typedef struct ls_layer_w {
    void *input_norm, *ff_norm;                  /* [hidden] */
    /* Mamba mixer */
    ls_linear in_proj, x_proj, dt_proj, out_proj;
    void *conv_w;                                /* [d_inner][d_conv] */
    void *conv_b;                                /* [d_inner] or NULL */
    void *A;                                     /* -exp(A_log): [d_inner][d_state] */
    void *D;                                     /* [d_inner] */
    void *dt_norm, *b_norm, *c_norm;
    /* attention */
    ls_linear q, k, v, o;
    /* feed forward: dense (n_experts == 1) or MoE */
    int64_t n_experts;
    ls_linear router;
    ls_mlp_w *experts;                           /* [n_experts]; the dense MLP is experts[0] */
} ls_layer_w;

typedef struct ls_model {
    ls_model_config cfg;
    ls_prec prec;
    void *embed;                                 /* [vocab][hidden] */
    void *final_norm;
    ls_linear lm_head;                           /* w aliases embed when tied */
    ls_layer_w *layers;
    /* every allocation, freed together */
    void **allocs;
    int64_t n_allocs, cap_allocs;
    uint64_t hash;                               /* FNV-1a over the converted weights */
    char *dir;
} ls_model;

/* Loads config.json and the safetensors weights from a Hugging Face model directory,
 * converting F32/F16/BF16 to `prec`. Missing, extra or mis-shaped tensors are errors
 * naming the file and tensor. */
int ls_model_load(const char *dir, ls_prec prec, ls_model *m, ls_err *err);
void ls_model_free(ls_model *m);

#endif
