/* Copy-queue planning (engine/copy_plan.h): the conflict sweep and the greedy waves. */
#include "engine/copy_plan.h"

#include <stdlib.h>

int64_t ls_copy_compact(ls_copy_op *ops, int64_t n) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ops[i].bytes <= 0 || (ops[i].src && (const void *)ops[i].dst == ops[i].src)) continue;
        ops[k++] = ops[i];
    }
    return k;
}

int ls_copy_self_overlaps(const ls_copy_op *op) {
    if (op->bytes <= 0 || !op->src) return 0;
    const uint64_t d = (uint64_t)(uintptr_t)op->dst, s = (uint64_t)(uintptr_t)op->src;
    const uint64_t b = (uint64_t)op->bytes;
    return d < s + b && s < d + b;
}

static int ivl_cmp(const void *pa, const void *pb) {
    const ls_copy_ivl *a = pa, *b = pb;
    return a->lo < b->lo ? -1 : a->lo > b->lo ? 1 : 0;
}

/* Sweep in order of start: a range overlaps some earlier-starting range iff it starts
 * before that range's end. So a write conflicts iff it starts before the largest end of
 * all earlier ranges, a read iff it starts before the largest end of earlier writes. Every
 * overlapping pair is seen when its later-sorted member is reached (equal starts in either
 * order), and the two ranges of one op are treated like any other pair: their overlap is
 * the self-conflict of copy_plan.h. */
int ls_copy_conflict_free(const ls_copy_op *ops, int64_t n, ls_copy_ivl *ivl) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ops[i].bytes <= 0) continue;
        const uint64_t b = (uint64_t)ops[i].bytes, d = (uint64_t)(uintptr_t)ops[i].dst;
        ivl[m++] = (ls_copy_ivl){d, d + b, 1};
        if (ops[i].src) {
            const uint64_t s = (uint64_t)(uintptr_t)ops[i].src;
            ivl[m++] = (ls_copy_ivl){s, s + b, 0};
        }
    }
    if (m > 1) qsort(ivl, (size_t)m, sizeof *ivl, ivl_cmp);
    uint64_t end_all = 0, end_write = 0;
    for (int64_t k = 0; k < m; k++) {
        if (ivl[k].lo < (ivl[k].write ? end_all : end_write)) return 0;
        if (ivl[k].hi > end_all) end_all = ivl[k].hi;
        if (ivl[k].write && ivl[k].hi > end_write) end_write = ivl[k].hi;
    }
    return 1;
}

static int push_wave(ls_copy_plan *p, int64_t end) {
    if (p->n_waves == p->cap_waves) {
        int64_t nc = p->cap_waves ? 2 * p->cap_waves : 16;
        int64_t *ne = realloc(p->end, (size_t)nc * sizeof *ne);
        if (!ne) return -1;
        p->end = ne;
        p->cap_waves = nc;
    }
    p->end[p->n_waves++] = end;
    return 0;
}

int ls_copy_plan_waves(ls_copy_plan *p, const ls_copy_op *ops, int64_t n) {
    p->n_waves = 0;
    if (n <= 0) return 0;
    if (2 * n > p->cap_ivl) {
        ls_copy_ivl *ni = realloc(p->ivl, (size_t)(2 * n) * sizeof *ni);
        if (!ni) return -1;
        p->ivl = ni;
        p->cap_ivl = 2 * n;
    }
    int64_t a = 0;
    while (a < n) {
        if (ls_copy_conflict_free(ops + a, n - a, p->ivl)) {
            if (push_wave(p, n)) return -1;
            break;
        }
        /* [a, a + ok) may form a wave (one op always does: alone, a self-conflicting op
         * runs through a temporary); [a, a + bad) may not. Double, then bisect. */
        int64_t ok = 1, bad = n - a;
        for (int64_t len = 2; len < bad; len *= 2) {
            if (!ls_copy_conflict_free(ops + a, len, p->ivl)) {
                bad = len;
                break;
            }
            ok = len;
        }
        while (bad - ok > 1) {
            const int64_t mid = ok + (bad - ok) / 2;
            if (ls_copy_conflict_free(ops + a, mid, p->ivl)) ok = mid;
            else bad = mid;
        }
        if (push_wave(p, a + ok)) return -1;
        a += ok;
    }
    return 0;
}

void ls_copy_plan_free(ls_copy_plan *p) {
    free(p->end);
    free(p->ivl);
    *p = (ls_copy_plan){0};
}
