/* Binds a checkpoint's tensors to the model's layer structure, converting to the working
 * precision. Names follow transformers' JambaForCausalLM. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint.h"
#include "engine/model.h"

const char *ls_prec_name(ls_prec p) { return p == LS_F64 ? "fp64" : "fp32"; }

int ls_prec_parse(const char *s, ls_prec *out) {
    if (strcmp(s, "fp64") == 0) *out = LS_F64;
    else if (strcmp(s, "fp32") == 0) *out = LS_F32;
    else return -1;
    return 0;
}

typedef struct binder {
    ls_model *m;
    ls_checkpoint *ck;
    ls_err *err;
    char name[512];
} binder;

/* "PREFIX.SUFFIX" in the binder's buffer: valid until the next call. */
static const char *nm(binder *bd, const char *prefix, const char *suffix) {
    snprintf(bd->name, sizeof bd->name, "%s.%s", prefix, suffix);
    return bd->name;
}

static void *model_alloc(ls_model *m, int64_t bytes) {
    if (m->n_allocs == m->cap_allocs) {
        int64_t cap = m->cap_allocs ? m->cap_allocs * 2 : 256;
        void **na = realloc(m->allocs, (size_t)cap * sizeof *na);
        if (!na) return NULL;
        m->allocs = na;
        m->cap_allocs = cap;
    }
    void *p = calloc(1, (size_t)(bytes > 0 ? bytes : 1));
    if (p) m->allocs[m->n_allocs++] = p;
    return p;
}

static void hash_bytes(uint64_t *h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) { *h ^= b[i]; *h *= 0x100000001b3ULL; }
}

/* Converts elements [first, first+count) of tensor t into a fresh buffer. */
static void *convert(binder *bd, const ls_st_tensor *t, int64_t first, int64_t count) {
    ls_model *m = bd->m;
    void *dst = model_alloc(m, count * ls_prec_size(m->prec));
    if (!dst) { ls_errf(bd->err, "out of memory loading '%s'", t->name); return NULL; }
    if (m->prec == LS_F64) {
        double *d = dst;
        for (int64_t i = 0; i < count; i++) d[i] = ls_st_get_f64(t, first + i);
    } else {
        float *d = dst;
        for (int64_t i = 0; i < count; i++) d[i] = (float)ls_st_get_f64(t, first + i);
    }
    hash_bytes(&m->hash, dst, (size_t)(count * ls_prec_size(m->prec)));
    return dst;
}

static void *take(binder *bd, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    int64_t shape[3] = {d0, d1, d2};
    const ls_st_tensor *t;
    if (ls_ckpt_take(bd->ck, name, ndim, shape, &t, bd->err)) return NULL;
    return convert(bd, t, 0, t->numel);
}

static int take_linear(binder *bd, const char *prefix, int64_t out, int64_t in, int bias,
                       ls_linear *l) {
    char name[512];
    l->out = out;
    l->in = in;
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (!(l->w = take(bd, name, 2, out, in, 0))) return -1;
    l->b = NULL;
    if (bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        if (!(l->b = take(bd, name, 1, out, 0, 0))) return -1;
    }
    return 0;
}

static int bind_mamba(binder *bd, const char *p, ls_layer_w *L) {
    const ls_model_config *c = &bd->m->cfg;
    const int64_t di = c->mamba_d_inner, ds = c->mamba_d_state, K = c->mamba_d_conv;
    const int64_t H = c->hidden_size, R = c->mamba_dt_rank;
    if (take_linear(bd, nm(bd, p, "in_proj"), 2 * di, H, c->mamba_proj_bias, &L->in_proj) ||
        take_linear(bd, nm(bd, p, "x_proj"), R + 2 * ds, di, 0, &L->x_proj) ||
        take_linear(bd, nm(bd, p, "dt_proj"), di, R, 1, &L->dt_proj) ||
        take_linear(bd, nm(bd, p, "out_proj"), H, di, c->mamba_proj_bias, &L->out_proj) ||
        !(L->conv_w = take(bd, nm(bd, p, "conv1d.weight"), 3, di, 1, K)) ||
        (c->mamba_conv_bias && !(L->conv_b = take(bd, nm(bd, p, "conv1d.bias"), 1, di, 0, 0))) ||
        !(L->A = take(bd, nm(bd, p, "A_log"), 2, di, ds, 0)) ||
        !(L->D = take(bd, nm(bd, p, "D"), 1, di, 0, 0)) ||
        !(L->dt_norm = take(bd, nm(bd, p, "dt_layernorm.weight"), 1, R, 0, 0)) ||
        !(L->b_norm = take(bd, nm(bd, p, "b_layernorm.weight"), 1, ds, 0, 0)) ||
        !(L->c_norm = take(bd, nm(bd, p, "c_layernorm.weight"), 1, ds, 0, 0)))
        return -1;
    /* A = -exp(A_log), computed once in the working precision */
    if (bd->m->prec == LS_F64) { double *a = L->A; for (int64_t i = 0; i < di * ds; i++) a[i] = -exp(a[i]); }
    else { float *a = L->A; for (int64_t i = 0; i < di * ds; i++) a[i] = -expf(a[i]); }
    return 0;
}

static int bind_attn(binder *bd, const char *p, ls_layer_w *L) {
    const ls_model_config *c = &bd->m->cfg;
    const int64_t qd = c->num_heads * c->head_dim, kvd = c->num_kv_heads * c->head_dim;
    const int64_t H = c->hidden_size;
    return take_linear(bd, nm(bd, p, "q_proj"), qd, H, 0, &L->q) ||
                   take_linear(bd, nm(bd, p, "k_proj"), kvd, H, 0, &L->k) ||
                   take_linear(bd, nm(bd, p, "v_proj"), kvd, H, 0, &L->v) ||
                   take_linear(bd, nm(bd, p, "o_proj"), H, qd, 0, &L->o)
               ? -1 : 0;
}

static int take_mlp(binder *bd, const char *p, ls_mlp_w *x) {
    const ls_model_config *c = &bd->m->cfg;
    const int64_t H = c->hidden_size, I = c->intermediate_size;
    return take_linear(bd, nm(bd, p, "gate_proj"), I, H, 0, &x->gate) ||
                   take_linear(bd, nm(bd, p, "up_proj"), I, H, 0, &x->up) ||
                   take_linear(bd, nm(bd, p, "down_proj"), H, I, 0, &x->down)
               ? -1 : 0;
}

/* Experts as the Hub stores them (experts.E.{gate,up,down}_proj.weight) or fused
 * (experts.gate_up_proj [E][2I][H] with gate rows first, experts.down_proj [E][H][I]). */
static int bind_experts(binder *bd, const char *p, ls_layer_w *L) {
    const ls_model_config *c = &bd->m->cfg;
    const int64_t E = L->n_experts, H = c->hidden_size, I = c->intermediate_size;
    char fused[512], down[512], one[512];
    snprintf(fused, sizeof fused, "%s.experts.gate_up_proj", p);
    snprintf(down, sizeof down, "%s.experts.down_proj", p);
    if (ls_ckpt_has(bd->ck, fused)) {
        const ls_st_tensor *gu, *dn;
        const int64_t s_gu[3] = {E, 2 * I, H}, s_dn[3] = {E, H, I};
        if (ls_ckpt_take(bd->ck, fused, 3, s_gu, &gu, bd->err) ||
            ls_ckpt_take(bd->ck, down, 3, s_dn, &dn, bd->err))
            return -1;
        for (int64_t e = 0; e < E; e++) {
            ls_mlp_w *x = &L->experts[e];
            x->gate = (ls_linear){convert(bd, gu, e * 2 * I * H, I * H), NULL, I, H};
            x->up = (ls_linear){convert(bd, gu, e * 2 * I * H + I * H, I * H), NULL, I, H};
            x->down = (ls_linear){convert(bd, dn, e * H * I, H * I), NULL, H, I};
            if (!x->gate.w || !x->up.w || !x->down.w) return -1;
        }
        return 0;
    }
    for (int64_t e = 0; e < E; e++) {
        snprintf(one, sizeof one, "%s.experts.%" PRId64, p, e);
        if (take_mlp(bd, one, &L->experts[e])) return -1;
    }
    return 0;
}

static int bind_ffn(binder *bd, const char *p, ls_layer_w *L) {
    L->experts = model_alloc(bd->m, L->n_experts * (int64_t)sizeof(ls_mlp_w));
    if (!L->experts) return ls_errf(bd->err, "out of memory");
    if (L->n_experts == 1) return take_mlp(bd, p, &L->experts[0]);
    char router[512];
    snprintf(router, sizeof router, "%s.router", p);
    if (take_linear(bd, router, L->n_experts, bd->m->cfg.hidden_size, 0, &L->router)) return -1;
    return bind_experts(bd, p, L);
}

static int bind_all(binder *bd) {
    ls_model *m = bd->m;
    const ls_model_config *c = &m->cfg;
    char p[256], sub[300];
    if (!(m->embed = take(bd, "model.embed_tokens.weight", 2, c->vocab_size, c->hidden_size, 0))) return -1;
    m->layers = model_alloc(m, c->num_layers * (int64_t)sizeof(ls_layer_w));
    if (!m->layers) return ls_errf(bd->err, "out of memory");
    for (int64_t i = 0; i < c->num_layers; i++) {
        ls_layer_w *L = &m->layers[i];
        L->n_experts = c->layer_experts[i];
        snprintf(p, sizeof p, "model.layers.%" PRId64, i);
        if (!(L->input_norm = take(bd, nm(bd, p, "input_layernorm.weight"), 1, c->hidden_size, 0, 0)) ||
            !(L->ff_norm = take(bd, nm(bd, p, "pre_ff_layernorm.weight"), 1, c->hidden_size, 0, 0)))
            return -1;
        int mamba = c->layer_kind[i] == LS_LAYER_MAMBA;
        snprintf(sub, sizeof sub, "%s.%s", p, mamba ? "mamba" : "self_attn");
        if (mamba ? bind_mamba(bd, sub, L) : bind_attn(bd, sub, L)) return -1;
        snprintf(sub, sizeof sub, "%s.feed_forward", p);
        if (bind_ffn(bd, sub, L)) return -1;
    }
    if (!(m->final_norm = take(bd, "model.final_layernorm.weight", 1, c->hidden_size, 0, 0))) return -1;
    if (c->tie_word_embeddings) {
        /* transformers omits a tied lm_head when saving; some exports keep a copy */
        ls_ckpt_ignore(bd->ck, "lm_head.weight");
        m->lm_head = (ls_linear){m->embed, NULL, c->vocab_size, c->hidden_size};
    } else if (take_linear(bd, "lm_head", c->vocab_size, c->hidden_size, 0, &m->lm_head)) {
        return -1;
    }
    return ls_ckpt_check_all_used(bd->ck, bd->err);
}

int ls_model_load(const char *dir, ls_prec prec, ls_model *m, ls_err *err) {
    memset(m, 0, sizeof *m);
    m->prec = prec;
    m->hash = 0xcbf29ce484222325ULL;
    if (ls_model_config_load(dir, &m->cfg, err)) return -1;
    ls_checkpoint ck;
    if (ls_ckpt_open(dir, &ck, err)) return -1;
    binder bd = {.m = m, .ck = &ck, .err = err};
    int rc = bind_all(&bd);
    ls_ckpt_close(&ck);
    if (rc == 0) {
        m->dir = strdup(dir);
        if (!m->dir) rc = ls_errf(err, "out of memory");
    }
    if (rc) ls_model_free(m);
    return rc;
}

void ls_model_free(ls_model *m) {
    for (int64_t i = 0; i < m->n_allocs; i++) free(m->allocs[i]);
    free(m->allocs);
    free(m->dir);
    memset(m, 0, sizeof *m);
}
