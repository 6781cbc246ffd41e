/* One run, start to finish: model, workload, engine, reference, comparison, localisation,
 * trace. `lockstep run` prints it; the gate and sweeps call it quietly. */
#ifndef LS_PIPELINE_H
#define LS_PIPELINE_H

#include "engine/engine.h"
#include "harness/compare.h"
#include "harness/config.h"
#include "harness/localise.h"

#define LS_MAX_LOCALISED 4

typedef struct ls_run_outcome {
    ls_model model;
    int have_model;
    struct ls_backend *backend;    /* backend cuda: the device copy of the model; NULL: cpu */
    ls_workload workload;
    ls_engine_result engine;
    int have_engine;
    ls_comparison cmp;
    int have_cmp;
    ls_localisation locs[LS_MAX_LOCALISED];
    int64_t n_locs;
    int diverged;                  /* by the mode's rule */
    double t_engine, t_reference, t_localise;
} ls_run_outcome;

/* Runs the configuration. Returns 0 (run completed; see out->diverged) or -1 with a
 * message (bad input or internal error). Writes the trace if the config names one. */
int ls_run_execute(ls_run_config *rc, ls_run_outcome *out, ls_err *err);
void ls_run_outcome_free(ls_run_outcome *o);

#endif
