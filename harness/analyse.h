/* Structure analysis of a trace or a sweep: per point, the divergence rate, onset, period
 * and how divergence lines up with provenance (thresholds, perfect separations, the
 * arithmetic coincidences behind them); across a grid, which parameter changes the
 * failure's structure and which only its size. */
#ifndef LS_ANALYSE_H
#define LS_ANALYSE_H

#include <stdio.h>

#include "engine/err.h"

/* Reads a sweep file (format "lockstep-sweep"), analyses every point and the grid,
 * rewrites the file with an /analysis group (atomically: temporary name, fsync, rename),
 * and prints the findings to `out` (NULL: print nothing). */
int ls_analyse_sweep_file(const char *path, FILE *out, ls_err *err);

/* The findings for a single trace, printed to `out`. */
int ls_analyse_trace_file(const char *path, FILE *out, ls_err *err);

/* As ls_analyse_sweep_file, but writes /analysis only when allow_write and the sweep is
 * complete. Returns 1 if /analysis was written, 0 if only printed, -1 on error. */
int ls_analyse_sweep_auto(const char *path, FILE *out, int allow_write, ls_err *err);

/* `lockstep analyse FILE.h5`: a trace or a sweep; prints the findings. */
int ls_cmd_analyse(int argc, char **argv);

#endif
