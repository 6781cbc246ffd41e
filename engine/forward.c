/* The model's forward pass over a batch, as a sequence of kernels/ calls. Batch-wide
 * work (projections, norms, MLPs) runs over all rows at once; the recurrences (conv,
 * scan) and attention run per sequence, in token order. Every kernel computes a row
 * from that row's inputs alone, so the result for a token does not depend on the batch
 * or the chunking around it. */
#ifndef LS_T
#include <stdlib.h>
#include <string.h>

#include "engine/forward.h"
#include "kernels/kernels.h"

#define LS_T float
#define LS_S(n) n##_f32
#include "engine/forward.c"
#undef LS_T
#undef LS_S
#define LS_T double
#define LS_S(n) n##_f64
#include "engine/forward.c"
#undef LS_T
#undef LS_S

int ls_forward(const ls_model *m, const ls_kv_cache *kv, const ls_seq_step *seqs,
               int64_t n_seqs, const ls_forward_opts *opts, ls_err *err) {
    static const ls_forward_opts none = {0};
    if (!opts) opts = &none;
    for (int64_t s = 0; s < n_seqs; s++) {
        if (seqs[s].n < 0 || seqs[s].start_pos < 0 || seqs[s].logits_from < 0 ||
            seqs[s].logits_from > seqs[s].n)
            return ls_errf(err, "forward: sequence %lld has an invalid step", (long long)s);
        for (int64_t i = 0; i < seqs[s].n; i++)
            if (seqs[s].tokens[i] < 0 || seqs[s].tokens[i] >= m->cfg.vocab_size)
                return ls_errf(err, "forward: token %d out of vocabulary [0, %lld)",
                               seqs[s].tokens[i], (long long)m->cfg.vocab_size);
    }
    return m->prec == LS_F64 ? forward_f64(m, kv, seqs, n_seqs, opts, err)
                             : forward_f32(m, kv, seqs, n_seqs, opts, err);
}

#else /* body, compiled once per precision */

typedef struct LS_S(scratch) {
    LS_T *x, *xn, *proj, *u, *ssmp, *dt, *y, *mix, *q, *k, *v, *att, *scores;
    LS_T *g, *up, *act, *ffo, *tmp, *probs, *wts, *logits, *conv0, *ssm0;
    int64_t *idx;
} LS_S(scratch);

static void *LS_S(grab)(void **base, int64_t *off, int64_t bytes) {
    void *p = (char *)*base + *off;
    *off += (bytes + 63) / 64 * 64;
    return p;
}

static void LS_S(probe_rows)(const ls_forward_opts *o, const ls_seq_step *seqs, int64_t n_seqs,
                             int64_t layer, const char *comp, const LS_T *data, int64_t width) {
    if (!o->probe) return;
    int64_t r0 = 0;
    for (int64_t s = 0; s < n_seqs; s++) {
        for (int64_t i = 0; i < seqs[s].n; i++)
            o->probe(o->probe_ctx, s, i, layer, comp, data + (r0 + i) * width, width);
        r0 += seqs[s].n;
    }
}

/* Mamba mixer over all rows: xn [rows][H] -> mix [rows][H]. */
static void LS_S(mamba_layer)(const ls_model *m, const ls_layer_w *L, int64_t layer, int64_t mi,
                              const ls_seq_step *seqs, int64_t n_seqs, int64_t rows,
                              const ls_forward_opts *o, LS_S(scratch) *w) {
    const ls_model_config *c = &m->cfg;
    const int64_t H = c->hidden_size, di = c->mamba_d_inner, ds = c->mamba_d_state;
    const int64_t K = c->mamba_d_conv, R = c->mamba_dt_rank, P = R + 2 * ds;
    LS_S(ls_linear)(w->xn, rows, H, L->in_proj.w, L->in_proj.b, 2 * di, w->proj);
    /* conv, token by token per sequence, carrying the conv state */
    int64_t r0 = 0;
    for (int64_t s = 0; s < n_seqs; s++) {
        const ls_seq_step *q = &seqs[s];
        LS_T *cs = q->conv ? (LS_T *)q->conv[mi] : w->conv0;
        if (!q->conv || !q->has_initial_state) memset(cs, 0, (size_t)(di * (K - 1)) * sizeof(LS_T));
        if (o->probe) o->probe(o->probe_ctx, s, -1, layer, "conv_state", cs, di * (K - 1));
        for (int64_t i = 0; i < q->n; i++) {
            const LS_T *xr = w->proj + (r0 + i) * 2 * di;
            LS_S(ls_conv1d_step)(cs, xr, L->conv_w, L->conv_b, di, K, w->u + (r0 + i) * di);
        }
        r0 += q->n;
    }
    /* selection: dt, B, C from the conv output, each RMS-normed; dt through dt_proj + softplus */
    LS_S(ls_linear)(w->u, rows, di, L->x_proj.w, NULL, P, w->ssmp);
    for (int64_t r = 0; r < rows; r++) {
        LS_T *sp = w->ssmp + r * P;
        LS_S(ls_rmsnorm)(sp, 1, R, L->dt_norm, c->rms_norm_eps, sp);
        LS_S(ls_rmsnorm)(sp + R, 1, ds, L->b_norm, c->rms_norm_eps, sp + R);
        LS_S(ls_rmsnorm)(sp + R + ds, 1, ds, L->c_norm, c->rms_norm_eps, sp + R + ds);
        LS_S(ls_linear)(sp, 1, R, L->dt_proj.w, L->dt_proj.b, di, w->dt + r * di);
        for (int64_t j = 0; j < di; j++) w->dt[r * di + j] = LS_S(ls_softplus)(w->dt[r * di + j]);
    }
    /* scan, token by token per sequence, carrying the SSM state */
    r0 = 0;
    for (int64_t s = 0; s < n_seqs; s++) {
        const ls_seq_step *q = &seqs[s];
        LS_T *h = q->conv ? (LS_T *)q->ssm[mi] : w->ssm0;
        if (!q->conv || !q->has_initial_state) memset(h, 0, (size_t)(di * ds) * sizeof(LS_T));
        if (o->probe) o->probe(o->probe_ctx, s, -1, layer, "ssm_state", h, di * ds);
        for (int64_t i = 0; i < q->n; i++) {
            int64_t r = r0 + i;
            const LS_T *sp = w->ssmp + r * P;
            LS_S(ls_scan_step)(h, w->u + r * di, w->dt + r * di, L->A, sp + R, sp + R + ds,
                               L->D, w->proj + r * 2 * di + di, di, ds, w->y + r * di);
        }
        r0 += q->n;
    }
    LS_S(ls_linear)(w->y, rows, di, L->out_proj.w, L->out_proj.b, H, w->mix);
}

static void LS_S(attn_layer)(const ls_model *m, const ls_layer_w *L, int64_t ai,
                             const ls_kv_cache *kv, const ls_seq_step *seqs, int64_t n_seqs,
                             int64_t rows, LS_S(scratch) *w) {
    const ls_model_config *c = &m->cfg;
    const int64_t H = c->hidden_size, hd = c->head_dim;
    const int64_t qd = c->num_heads * hd, kvd = c->num_kv_heads * hd;
    LS_S(ls_linear)(w->xn, rows, H, L->q.w, NULL, qd, w->q);
    LS_S(ls_linear)(w->xn, rows, H, L->k.w, NULL, kvd, w->k);
    LS_S(ls_linear)(w->xn, rows, H, L->v.w, NULL, kvd, w->v);
    LS_T *kc = kv->k[ai], *vc = kv->v[ai];
    const int64_t bs = kv->block_size;
    int64_t r0 = 0;
    for (int64_t s = 0; s < n_seqs; s++) {
        const ls_seq_step *q = &seqs[s];
        if (!q->block_table) {   /* padding row: no KV, no attention */
            memset(w->att + r0 * qd, 0, (size_t)(q->n * qd) * sizeof(LS_T));
            r0 += q->n;
            continue;
        }
        for (int64_t i = 0; i < q->n; i++) {
            int64_t pos = q->start_pos + i;
            int64_t row = q->block_table[pos / bs] * bs + pos % bs;
            memcpy(kc + row * kvd, w->k + (r0 + i) * kvd, (size_t)kvd * sizeof(LS_T));
            memcpy(vc + row * kvd, w->v + (r0 + i) * kvd, (size_t)kvd * sizeof(LS_T));
        }
        for (int64_t i = 0; i < q->n; i++)
            LS_S(ls_attention_row)(w->q + (r0 + i) * qd, kc, vc, q->block_table, bs,
                                   q->start_pos + i + 1, c->num_heads, c->num_kv_heads, hd,
                                   w->scores, w->att + (r0 + i) * qd);
        r0 += q->n;
    }
    LS_S(ls_linear)(w->att, rows, qd, L->o.w, NULL, H, w->mix);
}

/* One expert (or the dense MLP) on `rows` rows: down(silu(gate x) * up x). */
static void LS_S(mlp)(const ls_mlp_w *e, const LS_T *x, int64_t rows, int64_t H, int64_t I,
                      LS_S(scratch) *w, LS_T *out) {
    LS_S(ls_linear)(x, rows, H, e->gate.w, NULL, I, w->g);
    LS_S(ls_linear)(x, rows, H, e->up.w, NULL, I, w->up);
    for (int64_t j = 0; j < rows * I; j++) w->act[j] = LS_S(ls_silu)(w->g[j]) * w->up[j];
    LS_S(ls_linear)(w->act, rows, I, e->down.w, NULL, H, out);
}

static void LS_S(ffn_layer)(const ls_model *m, const ls_layer_w *L, int64_t rows,
                            LS_S(scratch) *w) {
    const int64_t H = m->cfg.hidden_size, I = m->cfg.intermediate_size, E = L->n_experts;
    if (E == 1) {
        LS_S(mlp)(&L->experts[0], w->xn, rows, H, I, w, w->ffo);
        return;
    }
    const int64_t k = m->cfg.num_experts_per_tok;
    LS_S(ls_linear)(w->xn, rows, H, L->router.w, NULL, E, w->logits);
    for (int64_t r = 0; r < rows; r++) {
        LS_S(ls_moe_route)(w->logits + r * E, E, k, w->probs, w->idx, w->wts);
        LS_T *o = w->ffo + r * H;
        for (int64_t j = 0; j < H; j++) o[j] = 0;
        for (int64_t t = 0; t < k; t++) {
            LS_S(mlp)(&L->experts[w->idx[t]], w->xn + r * H, 1, H, I, w, w->tmp);
            for (int64_t j = 0; j < H; j++) o[j] += w->tmp[j] * w->wts[t];
        }
    }
}

static int LS_S(forward)(const ls_model *m, const ls_kv_cache *kv, const ls_seq_step *seqs,
                         int64_t n_seqs, const ls_forward_opts *opts, ls_err *err) {
    const ls_model_config *c = &m->cfg;
    const int64_t H = c->hidden_size, di = c->mamba_d_inner, ds = c->mamba_d_state;
    const int64_t I = c->intermediate_size, V = c->vocab_size, E = c->num_experts;
    const int64_t qd = c->num_heads * c->head_dim, kvd = c->num_kv_heads * c->head_dim;
    const int64_t P = c->mamba_dt_rank + 2 * ds;
    int64_t rows = 0, max_keys = 1;
    for (int64_t s = 0; s < n_seqs; s++) {
        rows += seqs[s].n;
        if (seqs[s].start_pos + seqs[s].n > max_keys) max_keys = seqs[s].start_pos + seqs[s].n;
    }
    if (rows == 0) return 0;
    const int64_t sz = (int64_t)sizeof(LS_T);
    const int64_t need[] = {
        rows * H, rows * H, rows * 2 * di, rows * di, rows * P, rows * di, rows * di,
        rows * H, rows * qd, rows * kvd, rows * kvd, rows * qd, max_keys, rows * I,
        rows * I, rows * I, rows * H, H, E + 1, E + 1, rows * (E > V ? E : V),
        di * c->mamba_d_conv, di * ds};
    int64_t total = 0;
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) total += (need[i] * sz + 63) / 64 * 64;
    total += ((E + 1) * 8 + 63) / 64 * 64;
    void *base = malloc((size_t)total);
    if (!base) return ls_errf(err, "forward: out of memory for %lld rows", (long long)rows);
    int64_t off = 0, ni = 0;
    LS_S(scratch) w;
    LS_T **slots[] = {&w.x, &w.xn, &w.proj, &w.u, &w.ssmp, &w.dt, &w.y, &w.mix, &w.q, &w.k,
                      &w.v, &w.att, &w.scores, &w.g, &w.up, &w.act, &w.ffo, &w.tmp, &w.probs,
                      &w.wts, &w.logits, &w.conv0, &w.ssm0};
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
        *slots[i] = LS_S(grab)(&base, &off, need[ni++] * sz);
    w.idx = LS_S(grab)(&base, &off, (E + 1) * 8);

    /* embeddings */
    int64_t r = 0;
    for (int64_t s = 0; s < n_seqs; s++)
        for (int64_t i = 0; i < seqs[s].n; i++, r++)
            memcpy(w.x + r * H, (const LS_T *)m->embed + (int64_t)seqs[s].tokens[i] * H,
                   (size_t)H * sizeof(LS_T));

    int64_t mi = 0, ai = 0;
    for (int64_t l = 0; l < c->num_layers; l++) {
        const ls_layer_w *L = &m->layers[l];
        LS_S(ls_rmsnorm)(w.x, rows, H, L->input_norm, c->rms_norm_eps, w.xn);
        if (c->layer_kind[l] == LS_LAYER_MAMBA) {
            LS_S(mamba_layer)(m, L, l, mi++, seqs, n_seqs, rows, opts, &w);
            LS_S(probe_rows)(opts, seqs, n_seqs, l, "mamba", w.mix, H);
        } else {
            LS_S(attn_layer)(m, L, ai++, kv, seqs, n_seqs, rows, &w);
            LS_S(probe_rows)(opts, seqs, n_seqs, l, "attention", w.mix, H);
        }
        for (int64_t j = 0; j < rows * H; j++) w.x[j] = w.x[j] + w.mix[j];
        LS_S(ls_rmsnorm)(w.x, rows, H, L->ff_norm, c->rms_norm_eps, w.xn);
        LS_S(ffn_layer)(m, L, rows, &w);
        LS_S(probe_rows)(opts, seqs, n_seqs, l, L->n_experts > 1 ? "moe" : "mlp", w.ffo, H);
        for (int64_t j = 0; j < rows * H; j++) w.x[j] = w.x[j] + w.ffo[j];
        LS_S(probe_rows)(opts, seqs, n_seqs, l, "hidden", w.x, H);
    }

    /* final norm, lm_head and log-softmax, only for the rows that want them */
    int64_t r0 = 0;
    for (int64_t s = 0; s < n_seqs; s++) {
        const ls_seq_step *q = &seqs[s];
        int64_t nl = q->n - q->logits_from;
        if (nl > 0 && q->logprobs) {
            LS_T *xs = w.x + (r0 + q->logits_from) * H;
            LS_S(ls_rmsnorm)(xs, nl, H, m->final_norm, c->rms_norm_eps, w.xn);
            LS_S(ls_linear)(w.xn, nl, H, m->lm_head.w, NULL, V, w.logits);
            for (int64_t i = 0; i < nl; i++)
                LS_S(ls_logsoftmax)(w.logits + i * V, V, (LS_T *)q->logprobs + i * V);
        }
        r0 += q->n;
    }
    free(base);
    return 0;
}
#endif
