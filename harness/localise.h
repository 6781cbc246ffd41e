/* Localisation: for a divergent token, replay the engine and the reference with per-layer
 * probes and name the first layer and component where they part. */
#ifndef LS_LOCALISE_H
#define LS_LOCALISE_H

#include <stdint.h>

#include "engine/engine.h"

/* One probe comparison: engine vs reference for one layer component at the row that
 * produced the divergent token's logits (or the state that row's step started from). */
typedef struct ls_probe_cmp {
    int64_t layer;
    char component[16];            /* conv_state, ssm_state, mamba, attention, moe, mlp, hidden */
    double max_abs_diff;           /* NaN/inf count as infinite */
    int64_t first_diff_index;      /* -1 if bitwise equal */
} ls_probe_cmp;

typedef struct ls_localisation {
    int64_t seq, request, rollout, position, step;
    int found;                     /* 1: a first differing component was named */
    int64_t layer;                 /* first layer that differs, -1 if none */
    char component[16];            /* its component */
    char summary[256];             /* e.g. "layer 0 conv state (Mamba)" */
    int64_t replay_differs_at;     /* -1, or where the replay sampled another token than the
                                    * run (then nothing was compared: not localised) */
    ls_probe_cmp *probes;          /* every compared (layer, component), in forward order */
    int64_t n_probes;
} ls_localisation;

int ls_localise(const ls_model *m, const ls_engine_config *cfg, const ls_workload *wl,
                const ls_engine_result *res, int64_t seq, int64_t position, ls_localisation *out,
                ls_err *err);
void ls_localisation_free(ls_localisation *l);

#endif
