#include "engine/reference.h"

#include <stdlib.h>

#include "engine/backend.h"

int ls_reference_logprobs(const ls_model *m, const int32_t *tokens, int64_t L,
                          const ls_forward_opts *opts, double *out, ls_err *err) {
    return ls_reference_logprobs_on(NULL, m, tokens, L, opts, out, NULL, err);
}

int ls_reference_logprobs_argmax(const ls_model *m, const int32_t *tokens, int64_t L,
                                 const ls_forward_opts *opts, double *out, int32_t *argmax,
                                 ls_err *err) {
    return ls_reference_logprobs_on(NULL, m, tokens, L, opts, out, argmax, err);
}

static double lp_at(const ls_model *m, const void *lp, int64_t i) {
    return m->prec == LS_F64 ? ((const double *)lp)[i] : (double)((const float *)lp)[i];
}

int ls_reference_logprobs_on(const ls_backend *b, const ls_model *m, const int32_t *tokens,
                             int64_t L, const ls_forward_opts *opts, double *out, int32_t *argmax,
                             ls_err *err) {
    if (L < 1) return ls_errf(err, "reference: empty sequence");
    b = ls_backend_or_cpu(b);
    const ls_model_config *c = &m->cfg;
    const int64_t sz = ls_prec_size(m->prec), V = c->vocab_size;
    const int64_t nm = ls_cfg_count(c, LS_LAYER_MAMBA), na = ls_cfg_count(c, LS_LAYER_ATTN);
    const int64_t kvd = c->num_kv_heads * c->head_dim, di = c->mamba_d_inner;
    int rc = -1;
    void **conv = calloc((size_t)(nm + 1), sizeof *conv);
    void **ssm = calloc((size_t)(nm + 1), sizeof *ssm);
    void **kk = calloc((size_t)(na + 1), sizeof *kk);
    void **vv = calloc((size_t)(na + 1), sizeof *vv);
    void *lp = malloc((size_t)(L * V * sz));   /* host: the forward fills it */
    if (!conv || !ssm || !kk || !vv || !lp) { ls_errf(err, "reference: out of memory"); goto done; }
    for (int64_t i = 0; i < nm; i++) {
        conv[i] = b->ops->alloc(b, (di * (c->mamba_d_conv - 1) + 1) * sz, err);
        ssm[i] = conv[i] ? b->ops->alloc(b, di * c->mamba_d_state * sz, err) : NULL;
        if (!conv[i] || !ssm[i]) { ls_err_prefix(err, "reference: "); goto done; }
    }
    for (int64_t i = 0; i < na; i++) {
        kk[i] = b->ops->alloc(b, L * kvd * sz, err);
        vv[i] = kk[i] ? b->ops->alloc(b, L * kvd * sz, err) : NULL;
        if (!kk[i] || !vv[i]) { ls_err_prefix(err, "reference: "); goto done; }
    }
    const int64_t block_table[1] = {0};
    ls_kv_cache kv = {.block_size = L, .k = kk, .v = vv};
    ls_seq_step step = {.tokens = tokens, .n = L, .start_pos = 0, .has_initial_state = 0,
                        .conv = conv, .ssm = ssm, .block_table = block_table,
                        .logits_from = 0, .logprobs = lp};
    if (b->ops->forward(b, m, &kv, &step, 1, opts, err)) goto done;
    for (int64_t t = 1; t < L; t++) {
        out[t - 1] = lp_at(m, lp, (t - 1) * V + tokens[t]);
        if (!argmax) continue;
        int64_t best = 0;
        for (int64_t v = 1; v < V; v++)
            if (lp_at(m, lp, (t - 1) * V + v) > lp_at(m, lp, (t - 1) * V + best)) best = v;
        argmax[t - 1] = (int32_t)best;
    }
    rc = 0;
done:
    for (int64_t i = 0; conv && i < nm; i++) {
        if (conv[i]) b->ops->release(b, conv[i]);
        if (ssm[i]) b->ops->release(b, ssm[i]);
    }
    for (int64_t i = 0; kk && i < na; i++) {
        if (kk[i]) b->ops->release(b, kk[i]);
        if (vv[i]) b->ops->release(b, vv[i]);
    }
    free(conv); free(ssm); free(kk); free(vv); free(lp);
    return rc;
}
