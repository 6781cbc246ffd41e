/* Planning a queue of byte copies so that they can run in parallel without changing what
 * they do. A backend that defers its copy / zero ops (the CUDA one, engine/backend_cuda.c)
 * queues them and, before anything else runs, executes the queue as consecutive WAVES:
 * the ops of one wave may run concurrently, in any order, because none of them writes a
 * byte that another op of the wave reads or writes; waves run in queue order. The result
 * is exactly that of the ops one at a time, in order, overlaps included.
 *
 * Definitions (addresses compared as integers, ranges half-open, so a range ending where
 * another starts does NOT overlap it; an op with bytes <= 0 touches nothing):
 *   an op writes [dst, dst + bytes) and, unless it is a zero fill (src == NULL), reads
 *   [src, src + bytes);
 *   ops i != j conflict when i's write range overlaps j's write or read range (two reads
 *   never conflict);
 *   an op conflicts with ITSELF when its own read and write ranges overlap (a copy whose
 *   source and destination overlap: it cannot be split among threads). Its sequential
 *   meaning is memmove's (dst ends up holding the bytes src held before the op); an
 *   executor runs it alone, through a temporary (the CUDA backend does). dst == src is
 *   such an op too, and a no-op: ls_copy_compact drops it (and every op with bytes <= 0)
 *   before planning, which must also happen before execution, because running a no-op
 *   copy concurrently with a write to the same bytes could put stale bytes back.
 * Pure C, no allocation except in ls_copy_plan_waves (which reuses its buffers). */
#ifndef LS_COPY_PLAN_H
#define LS_COPY_PLAN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dst <- src, `bytes` bytes; src NULL: dst <- zeros. */
typedef struct ls_copy_op {
    void *dst;
    const void *src;
    int64_t bytes;
} ls_copy_op;

/* One byte range of one op, for the sweep: [lo, hi), written or only read. */
typedef struct ls_copy_ivl {
    uint64_t lo, hi;
    int64_t write;
} ls_copy_ivl;

/* Drops the no-ops (bytes <= 0, or dst == src for a copy) from ops[0, n) in place, keeping
 * the order of the rest; returns how many are left. */
int64_t ls_copy_compact(ls_copy_op *ops, int64_t n);

/* 1 if op's source and destination overlap (a copy that must run alone, as memmove). */
int ls_copy_self_overlaps(const ls_copy_op *op);

/* 1 if ops[0, n) are conflict-free (see above: no op's write range overlaps another op's
 * read or write range, nor its own read range), so they may run concurrently with the
 * result of running them in order; 0 if not. O(n log n): the 2n ranges are sorted by start
 * and swept once. ivl: room for 2n ranges (scratch). */
int ls_copy_conflict_free(const ls_copy_op *ops, int64_t n, ls_copy_ivl *ivl);

/* The waves of a queue: wave w is ops[w ? end[w-1] : 0, end[w]). */
typedef struct ls_copy_plan {
    int64_t *end;
    int64_t n_waves;
    int64_t cap_waves;
    ls_copy_ivl *ivl;          /* scratch */
    int64_t cap_ivl;
} ls_copy_plan;

/* Splits ops[0, n) into the fewest consecutive waves that are each conflict-free, except
 * that an op conflicting with itself is a wave of its own (and a self-conflicting op is
 * always alone). Greedy: each wave is the longest conflict-free run from where the last
 * one ended, found by doubling then bisecting (conflicts only grow with a run). A queue
 * without conflicts is one wave for one sort; in general O(n log^2 n). n == 0: no waves.
 * Returns 0, or -1 when out of memory. */
int ls_copy_plan_waves(ls_copy_plan *p, const ls_copy_op *ops, int64_t n);

void ls_copy_plan_free(ls_copy_plan *p);

#ifdef __cplusplus
}
#endif

#endif
