/* Localisation by replay. The engine is deterministic, so running it again with a probe
 * reproduces the divergent step exactly; the probe keeps, for the target sequence at that
 * step, the Mamba states the step started from and every layer's output at the row that
 * produced the divergent token's logits. The reference is run on the same tokens split at
 * the same place (invariance makes the split free), with the same probe. The first
 * component, in forward order, whose bits differ is where engine and reference part. */
#include "harness/localise.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/forward.h"

typedef struct capture {
    int64_t layer;
    char comp[16];
    double *v;
    int64_t n;
} capture;

typedef struct probe_ctx {
    const ls_model *m;
    int64_t step, request, rollout, row_pos, state_pos;
    capture *caps;
    int64_t n_caps, cap_caps;
    int oom;
} probe_ctx;

static int is_state(const char *comp) { return !strcmp(comp, "conv_state") || !strcmp(comp, "ssm_state"); }

static void keep(probe_ctx *c, int64_t layer, const char *comp, const void *data, int64_t n) {
    for (int64_t i = 0; i < c->n_caps; i++)   /* first report wins (one per layer and component) */
        if (c->caps[i].layer == layer && !strcmp(c->caps[i].comp, comp)) return;
    if (c->n_caps == c->cap_caps) {
        int64_t nc = c->cap_caps ? c->cap_caps * 2 : 32;
        capture *nw = realloc(c->caps, (size_t)nc * sizeof *nw);
        if (!nw) { c->oom = 1; return; }
        c->caps = nw;
        c->cap_caps = nc;
    }
    capture *k = &c->caps[c->n_caps];
    k->v = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    if (!k->v) { c->oom = 1; return; }
    for (int64_t i = 0; i < n; i++)
        k->v[i] = c->m->prec == LS_F64 ? ((const double *)data)[i] : (double)((const float *)data)[i];
    k->n = n;
    k->layer = layer;
    snprintf(k->comp, sizeof k->comp, "%s", comp);
    c->n_caps++;
}

static void engine_probe(void *ctx, int64_t step, int64_t request, int64_t rollout, int64_t position,
                         int64_t layer, const char *comp, const void *data, int64_t n) {
    probe_ctx *c = ctx;
    /* the row may have been computed by the prompt's prefill before the fork (rollout -1) */
    if (step != c->step || request != c->request || (rollout != c->rollout && rollout != -1)) return;
    if (is_state(comp)) {
        if (position <= c->row_pos) { c->state_pos = position; keep(c, layer, comp, data, n); }
    } else if (position == c->row_pos) {
        keep(c, layer, comp, data, n);
    }
}

static void ref_probe(void *ctx, int64_t seq, int64_t row, int64_t layer, const char *comp,
                      const void *data, int64_t n) {
    probe_ctx *c = ctx;
    if (seq != 0) return;
    if (is_state(comp) || c->state_pos + row == c->row_pos) keep(c, layer, comp, data, n);
}

static void free_caps(probe_ctx *c) {
    for (int64_t i = 0; i < c->n_caps; i++) free(c->caps[i].v);
    free(c->caps);
}

/* The reference over tokens[0..end), as two steps split at `split`, probing the second,
 * on backend b (states and KV in its memory). */
static int reference_split(const ls_backend *b, const ls_model *m, const int32_t *tokens,
                           int64_t split, int64_t end, probe_ctx *pc, ls_err *err) {
    const ls_model_config *c = &m->cfg;
    const int64_t sz = ls_prec_size(m->prec);
    const int64_t nm = ls_cfg_count(c, LS_LAYER_MAMBA), na = ls_cfg_count(c, LS_LAYER_ATTN);
    const int64_t kvd = c->num_kv_heads * c->head_dim, di = c->mamba_d_inner;
    int rc = -1;
    void **bufs = calloc((size_t)(2 * nm + 2 * na + 1), sizeof(void *));
    if (!bufs) return ls_errf(err, "out of memory");
    for (int64_t i = 0; i < nm; i++) {
        bufs[i] = b->ops->alloc(b, (di * (c->mamba_d_conv - 1) + 1) * sz, err);
        bufs[nm + i] = bufs[i] ? b->ops->alloc(b, di * c->mamba_d_state * sz, err) : NULL;
        if (!bufs[i] || !bufs[nm + i]) goto done;
    }
    for (int64_t i = 0; i < 2 * na; i++)
        if (!(bufs[2 * nm + i] = b->ops->alloc(b, (end * kvd + 1) * sz, err))) goto done;
    const int64_t table[1] = {0};
    ls_kv_cache kv = {.block_size = end, .k = bufs + 2 * nm, .v = bufs + 2 * nm + na};
    ls_seq_step st = {.tokens = tokens, .n = split, .conv = bufs, .ssm = bufs + nm,
                      .block_table = table, .logits_from = split};
    if (split > 0 && b->ops->forward(b, m, &kv, &st, 1, NULL, err)) goto done;
    st = (ls_seq_step){.tokens = tokens + split, .n = end - split, .start_pos = split,
                       .has_initial_state = split > 0, .conv = bufs, .ssm = bufs + nm,
                       .block_table = table, .logits_from = end - split};
    ls_forward_opts o = {.probe = ref_probe, .probe_ctx = pc};
    if (b->ops->forward(b, m, &kv, &st, 1, &o, err)) goto done;
    rc = 0;
done:
    for (int64_t i = 0; i < 2 * nm + 2 * na; i++)
        if (bufs[i]) b->ops->release(b, bufs[i]);
    free(bufs);
    return rc;
}

static const capture *find(const probe_ctx *c, int64_t layer, const char *comp) {
    for (int64_t i = 0; i < c->n_caps; i++)
        if (c->caps[i].layer == layer && !strcmp(c->caps[i].comp, comp)) return &c->caps[i];
    return NULL;
}

static const char *describe(const char *comp) {
    if (!strcmp(comp, "conv_state")) return "conv state (Mamba), as read at the start of the step";
    if (!strcmp(comp, "ssm_state")) return "SSM state (Mamba), as read at the start of the step";
    if (!strcmp(comp, "mamba")) return "Mamba mixer output";
    if (!strcmp(comp, "attention")) return "attention output (KV cache)";
    if (!strcmp(comp, "moe")) return "MoE output";
    if (!strcmp(comp, "mlp")) return "MLP output";
    return comp;
}

/* The first position < upto where the replay's sequence (same request and rollout) holds
 * another token than q, or -1 if none (a missing or shorter sequence differs at its end). */
static int64_t replay_differs(const ls_engine_result *r, const ls_engine_seq *q, int64_t upto) {
    for (int64_t s = 0; s < r->n_seqs; s++) {
        const ls_engine_seq *p = &r->seqs[s];
        if (p->request != q->request || p->rollout != q->rollout) continue;
        for (int64_t i = 0; i < upto; i++)
            if (i >= p->len || p->tokens[i] != q->tokens[i]) return i;
        return -1;
    }
    return 0;
}

int ls_localise(const ls_model *m, const ls_engine_config *cfg, const ls_workload *wl,
                const ls_engine_result *res, int64_t seq, int64_t position, ls_localisation *out,
                ls_err *err) {
    memset(out, 0, sizeof *out);
    out->layer = -1;
    out->replay_differs_at = -1;
    if (seq < 0 || seq >= res->n_seqs || position < 1 || position >= res->seqs[seq].len)
        return ls_errf(err, "localise: no token at sequence %lld position %lld", (long long)seq, (long long)position);
    const ls_engine_seq *q = &res->seqs[seq];
    *out = (ls_localisation){.seq = seq, .request = q->request, .rollout = q->rollout,
                             .position = position, .step = q->prov[position].step, .layer = -1,
                             .replay_differs_at = -1};
    probe_ctx ec = {.m = m, .step = out->step, .request = q->request, .rollout = q->rollout,
                    .row_pos = position - 1, .state_pos = -1};
    probe_ctx rc = ec;
    ls_engine_config c2 = *cfg;
    c2.probe = engine_probe;
    c2.probe_ctx = &ec;
    ls_engine_result replay;
    int status = -1;
    if (ls_engine_run(m, &c2, wl, &replay, err)) { ls_err_prefix(err, "localise: replay: "); goto done; }
    /* the probes mean something only if the replay fed the same tokens to that row: always
     * so on the run's own backend (runs are deterministic); a fast run replayed in invariant
     * mode may sample differently where its rounding moved a sampling boundary */
    out->replay_differs_at = replay_differs(&replay, q, position);
    ls_engine_result_free(&replay);
    if (ec.oom) { ls_errf(err, "localise: out of memory"); goto done; }
    if (out->replay_differs_at >= 0) {
        snprintf(out->summary, sizeof out->summary,
                 "not localised: the replay sampled another token at position %lld than the run did",
                 (long long)out->replay_differs_at);
        status = 0;
        goto done;
    }
    if (ec.n_caps == 0) { ls_errf(err, "localise: the replay never computed position %lld at step %lld",
                                  (long long)position - 1, (long long)out->step); goto done; }
    rc.state_pos = ec.state_pos < 0 ? 0 : ec.state_pos;
    /* the reference on the engine's device, in invariant mode (backend.h: reference) */
    const ls_backend *rb = ls_backend_or_cpu(cfg->backend)->reference;
    if (reference_split(rb, m, q->tokens, rc.state_pos, position, &rc, err)) goto done;
    if (rc.oom) { ls_errf(err, "localise: out of memory"); goto done; }

    static const char *order_mamba[] = {"conv_state", "ssm_state", "mamba"};
    static const char *order_attn[] = {"attention"};
    out->probes = calloc((size_t)(m->cfg.num_layers * 5 + 1), sizeof *out->probes);
    if (!out->probes) { ls_errf(err, "out of memory"); goto done; }
    for (int64_t l = 0; l < m->cfg.num_layers; l++) {
        int mamba = m->cfg.layer_kind[l] == LS_LAYER_MAMBA;
        const char *comps[5];
        int nc = 0;
        for (int i = 0; i < (mamba ? 3 : 1); i++) comps[nc++] = mamba ? order_mamba[i] : order_attn[i];
        comps[nc++] = m->layers[l].n_experts > 1 ? "moe" : "mlp";
        for (int i = 0; i < nc; i++) {
            const capture *a = find(&ec, l, comps[i]), *b = find(&rc, l, comps[i]);
            if (!a || !b || a->n != b->n) continue;
            ls_probe_cmp *p = &out->probes[out->n_probes++];
            p->layer = l;
            snprintf(p->component, sizeof p->component, "%s", comps[i]);
            p->first_diff_index = -1;
            for (int64_t j = 0; j < a->n; j++) {
                double d = fabs(a->v[j] - b->v[j]);
                if (!isfinite(d) && memcmp(&a->v[j], &b->v[j], sizeof(double))) d = INFINITY;
                if (memcmp(&a->v[j], &b->v[j], sizeof(double))) {
                    if (p->first_diff_index < 0) p->first_diff_index = j;
                    if (!(d <= p->max_abs_diff)) p->max_abs_diff = d;
                }
            }
            if (p->first_diff_index >= 0 && !out->found) {
                out->found = 1;
                out->layer = l;
                snprintf(out->component, sizeof out->component, "%s", comps[i]);
                snprintf(out->summary, sizeof out->summary, "layer %lld %s (max |diff| %.3g)",
                         (long long)l, describe(comps[i]), p->max_abs_diff);
            }
        }
    }
    if (!out->found) snprintf(out->summary, sizeof out->summary, "no layer output differs at row %lld",
                              (long long)position - 1);
    status = 0;
done:
    free_caps(&ec);
    free_caps(&rc);
    if (status) ls_localisation_free(out);
    return status;
}

void ls_localisation_free(ls_localisation *l) {
    free(l->probes);
    l->probes = NULL;
    l->n_probes = 0;
}
