#include "harness/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/backend.h"
#include "harness/trace.h"
#include "harness/workload_gen.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Localises the earliest divergence, then the first divergence of further sequences.
 * A fast run is localised by replaying its engine on the backend's invariant twin (the same
 * device and precision), whose probes can be compared with the invariant reference bit for
 * bit: a cache, scheduler or state bug reproduces there and is named as in invariant mode,
 * while fast mode's own rounding does not, so a divergence that is only arithmetic shows as
 * "no layer output differs". (Compared in fast mode itself, every layer after the first
 * cuBLAS product would differ, and the localiser would name that one.) */
static int localise_some(ls_run_config *rc, const ls_engine_config *ec, ls_run_outcome *o,
                         ls_err *err) {
    const ls_comparison *c = &o->cmp;
    if (!rc->compare.probe_layers || c->sum.first_seq < 0) return 0;
    ls_engine_config replay = *ec;
    const int twin = ec->backend && ec->backend->fast;
    if (twin) replay.backend = ec->backend->reference;
    int64_t seqs[LS_MAX_LOCALISED], n = 0;
    seqs[n++] = c->sum.first_seq;
    for (int64_t s = 0; s < o->engine.n_seqs && n < LS_MAX_LOCALISED; s++)
        if (c->first_divergent[s] >= 0 && s != c->sum.first_seq) seqs[n++] = s;
    for (int64_t i = 0; i < n; i++) {
        ls_localisation *L = &o->locs[o->n_locs];
        if (ls_localise(&o->model, &replay, &o->workload, &o->engine, seqs[i],
                        c->first_divergent[seqs[i]], L, err))
            return -1;
        o->n_locs++;
        if (twin) {
            const size_t len = strlen(L->summary);
            const int none = !L->found && L->replay_differs_at < 0;   /* compared, all equal */
            snprintf(L->summary + len, sizeof L->summary - len, "%s",
                     none ? " in the invariant replay of this fast run: fast mode's arithmetic, "
                            "not a cache or scheduling bug"
                          : " [fast run, replayed in invariant mode]");
        }
    }
    return 0;
}

int ls_run_execute(ls_run_config *rc, ls_run_outcome *o, ls_err *err) {
    memset(o, 0, sizeof *o);
    if (rc->backend_cuda && !ls_backend_cuda_built()) {   /* say so before loading anything */
        ls_backend_cuda_create(NULL, 0, 0, &o->backend, err);
        return ls_err_prefix(err, "%s: ", rc->path);
    }
    if (ls_model_load(rc->model_dir, rc->precision, &o->model, err))
        return ls_err_prefix(err, "%s: model: ", rc->path);
    o->have_model = 1;
    if (ls_engine_config_resolve(&rc->engine, &o->model, err)) return ls_err_prefix(err, "%s: ", rc->path);
    /* The engine runs on the configured backend; the reference (and the localiser's
     * reference) on that backend's invariant twin: the same device and precision. In fast
     * mode on the GPU that makes |delta| = the fast engine against the invariant GPU
     * reference, which is what compare.max_abs is calibrated for (bench/calibrate_fast). */
    if (rc->backend_cuda &&
        ls_backend_cuda_create(&o->model, rc->mode_fast, rc->tf32, &o->backend, err))
        return ls_err_prefix(err, "%s: ", rc->path);
    ls_engine_config ec = rc->engine;
    ec.backend = o->backend;
    const ls_backend *ref = ls_backend_or_cpu(o->backend)->reference;
    if (ls_workload_generate(&rc->workload, o->model.cfg.vocab_size, &o->workload, err))
        return ls_err_prefix(err, "%s: workload: ", rc->path);
    double t0 = now();
    if (ls_engine_run(&o->model, &ec, &o->workload, &o->engine, err))
        return ls_err_prefix(err, "engine: ");
    o->have_engine = 1;
    o->t_engine = now() - t0;
    ls_compare_rule rule = {.tolerance = rc->mode_fast ? rc->compare.max_abs : -1};
    t0 = now();
    if (ls_compare_with_reference_on(ref, &o->model, &o->engine, &rule, &o->cmp, err))
        return ls_err_prefix(err, "reference: ");
    o->have_cmp = 1;
    o->t_reference = now() - t0;
    const ls_compare_summary *S = &o->cmp.sum;
    o->diverged = rc->mode_fast
                      ? S->divergent_tokens > 0 &&
                            (double)S->divergent_tokens > rc->compare.max_divergent_frac * (double)S->tokens
                      : S->divergent_tokens > 0;
    t0 = now();
    if (o->diverged && localise_some(rc, &ec, o, err)) return -1;
    o->t_localise = now() - t0;
    if (rc->trace_path) {
        /* the effective configuration (overrides applied), so the trace alone reruns it */
        char *effective = ls_config_to_yaml(rc);
        if (!effective) return ls_errf(err, "out of memory");
        ls_trace_input ti = {.config_path = rc->path, .config_text = effective,
                             .model_dir = rc->model_dir, .model_hash = o->model.hash,
                             .precision = ls_prec_name(rc->precision),
                             .mode = rc->mode_fast ? "fast" : "invariant",
                             .backend = rc->backend_cuda ? "cuda" : "cpu",
                             .verdict = o->diverged ? "divergence" : "ok", .exit_code = o->diverged,
                             .workload = &o->workload, .engine = &o->engine, .cmp = &o->cmp,
                             .locs = o->locs, .n_locs = o->n_locs};
        int wrc = ls_trace_write(rc->trace_path, &ti, err);
        free(effective);
        if (wrc) return -1;
    }
    return 0;
}

void ls_run_outcome_free(ls_run_outcome *o) {
    for (int64_t i = 0; i < o->n_locs; i++) ls_localisation_free(&o->locs[i]);
    if (o->have_cmp) ls_comparison_free(&o->cmp);
    if (o->have_engine) ls_engine_result_free(&o->engine);
    ls_workload_free(&o->workload);
    ls_backend_free(o->backend);   /* before the model it copies */
    if (o->have_model) ls_model_free(&o->model);
    memset(o, 0, sizeof *o);
}
