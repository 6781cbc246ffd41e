/* Sweeps (docs/sweeps.md): a grid or list of run configurations, each run in a worker
 * process, every point's trace kept in one HDF5 results file that is only ever replaced
 * whole (temporary name, fsync, rename, fsync of the directory).
 *
 *   lockstep sweep SPEC.yaml [-j N] [--resume] [--shard K/N] [-o OUT.h5]
 *   lockstep merge OUT.h5 IN.h5...
 *
 * The commands live in sweep.c and merge.c; the helpers below are shared by the two (and
 * by anything else that reads or rewrites a results file). */
#ifndef LS_SWEEP_H
#define LS_SWEEP_H

#include <hdf5.h>
#include <stdint.h>

#include "harness/h5util.h"

#include "engine/err.h"

#define LS_SWEEP_FORMAT "lockstep-sweep"
#define LS_SWEEP_FORMAT_VERSION 1
/* Point groups are named p%05lld, so a spec may hold at most this many points. */
#define LS_SWEEP_MAX_POINTS 100000

int ls_cmd_sweep(int argc, char **argv);
int ls_cmd_merge(int argc, char **argv);

/* The root attributes of a results file (every string malloc'd). */
typedef struct ls_sweep_header {
    char *tool_version, *spec_path, *spec_text, *axes, *shard;
    int64_t n_points;
} ls_sweep_header;

/* Reads and checks the root attributes (format "lockstep-sweep", format_version 1, and
 * a /points group); `path` names the file in messages. */
int ls_sweep_read_header(hid_t file, const char *path, ls_sweep_header *h, ls_err *err);
void ls_sweep_header_free(ls_sweep_header *h);
/* Writes the root attributes (format, format_version and tool_version are this build's)
 * and creates the empty /points group. */
int ls_sweep_write_header(hid_t file, const ls_sweep_header *h, ls_err *err);

/* Replaces `path` whole: the new content is built under `.<name>.tmp.<pid>` in the same
 * directory, starting from a byte copy of `copy_from` (opened read-write) or, when
 * copy_from is NULL, from an empty file; fn edits it; then close, fsync, rename over
 * `path`, fsync the directory. On any failure the temporary file is removed and `path`
 * is untouched. HDF5's automatic error printing should be off (ls_h5_quiet). */
typedef int (*ls_sweep_edit_fn)(hid_t file, void *ctx, ls_err *err);
int ls_sweep_replace(const char *path, const char *copy_from, ls_sweep_edit_fn fn, void *ctx,
                     ls_err *err);

/* "p00012" -> 12; -1 if the name is not a point group name below n_points. */
int64_t ls_sweep_point_index(const char *name, int64_t n_points);

/* Tallies the /points groups by their verdict attribute: counts[0] ok, [1] divergence,
 * [2] error; present (n_points bytes, may be NULL) gets 1 for each point found. */
int ls_sweep_tally(hid_t file, const char *path, int64_t n_points, int64_t counts[3],
                   unsigned char *present, ls_err *err);

/* After a complete sweep or merge: ls_analyse_sweep_file (harness/analyse.h) on the
 * file, findings on stdout. Returns 0 or -1 with a message. */
int ls_sweep_analyse(const char *path, ls_err *err);

#endif
