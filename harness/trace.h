/* HDF5 traces: one file per run with everything needed to analyse it offline. Written to
 * a temporary name in the same directory and renamed into place, so a crash never leaves
 * a half file under the real name. The schema is documented in docs/trace.md (a test
 * checks that the file matches it). */
#ifndef LS_TRACE_H
#define LS_TRACE_H

#include <stdint.h>

#include "engine/engine.h"
#include "harness/compare.h"
#include "harness/localise.h"

typedef struct ls_trace_input {
    const char *config_path;
    const char *config_text;       /* the YAML as given (plus --set lines appended as comments) */
    const char *model_dir;
    uint64_t model_hash;
    const char *precision;         /* "fp64" | "fp32" */
    const char *mode;              /* "invariant" | "fast" */
    const char *backend;           /* "cpu" | "cuda" */
    const char *verdict;           /* "ok" | "divergence" */
    int exit_code;
    const ls_workload *workload;
    const ls_engine_result *engine;
    const ls_comparison *cmp;
    const ls_localisation *locs;   /* localised divergences (may be 0) */
    int64_t n_locs;
} ls_trace_input;

int ls_trace_write(const char *path, const ls_trace_input *in, ls_err *err);

/* lockstep inspect TRACE.h5: prints the run's summary from the file alone. */
int ls_cmd_inspect(int argc, char **argv);

#endif
