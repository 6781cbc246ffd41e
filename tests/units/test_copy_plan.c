/* Copy-queue planner (engine/copy_plan.h) against the definition written the obvious way
 * (every pair, O(n^2)) on thousands of random op sets over a small byte buffer: dense
 * random ranges (many conflicts), slot-aligned ranges (adjacent, end == start, is not a
 * conflict), zero-length ops, zero fills, identical ranges, copies onto themselves and
 * self-overlapping copies. Executing the waves in order, each wave simulated as truly
 * concurrent (all its reads first, then its writes in reverse order), must give exactly
 * the bytes of executing the ops one by one. */
#include "engine/copy_plan.h"
#include "tests/check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUF 256

static uint64_t rng = 0x1234567u;
static uint64_t rnd(void) {
    uint64_t z = (rng += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}
static int64_t irand(int64_t n) { return (int64_t)(rnd() % (uint64_t)n); }

/* ---- the spec, written the obvious way ---- */

static int overlap(const void *a, const void *b, int64_t bytes) {
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b, n = (uintptr_t)bytes;
    return x < y + n && y < x + n;
}

static int naive_free(const ls_copy_op *ops, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (ops[i].bytes <= 0) continue;
        if (ops[i].src && overlap(ops[i].dst, ops[i].src, ops[i].bytes)) return 0;
        for (int64_t j = 0; j < n; j++) {
            if (j == i || ops[j].bytes <= 0) continue;
            const uintptr_t d = (uintptr_t)ops[i].dst, e = d + (uintptr_t)ops[i].bytes;
            const uintptr_t w = (uintptr_t)ops[j].dst, r = (uintptr_t)ops[j].src;
            const uintptr_t len = (uintptr_t)ops[j].bytes;
            if (d < w + len && w < e) return 0;
            if (ops[j].src && d < r + len && r < e) return 0;
        }
    }
    return 1;
}

static void run_seq(const ls_copy_op *ops, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (ops[i].bytes <= 0) continue;
        if (ops[i].src) memmove(ops[i].dst, ops[i].src, (size_t)ops[i].bytes);
        else memset(ops[i].dst, 0, (size_t)ops[i].bytes);
    }
}

/* One wave as a parallel machine might run it: every read before any write, writes in
 * reverse order. A lone op runs as memmove (the executor's temporary). */
static void run_wave(const ls_copy_op *ops, int64_t n) {
    if (n == 1) { run_seq(ops, 1); return; }
    unsigned char *tmp = malloc((size_t)(n * BUF) + 1);
    for (int64_t i = 0; i < n; i++)
        if (ops[i].bytes > 0 && ops[i].src) memcpy(tmp + i * BUF, ops[i].src, (size_t)ops[i].bytes);
    for (int64_t i = n - 1; i >= 0; i--) {
        if (ops[i].bytes <= 0) continue;
        if (ops[i].src) memcpy(ops[i].dst, tmp + i * BUF, (size_t)ops[i].bytes);
        else memset(ops[i].dst, 0, (size_t)ops[i].bytes);
    }
    free(tmp);
}

/* ---- random op sets over buf ---- */

static unsigned char buf[BUF + 16];

static void random_ops(ls_copy_op *ops, int64_t n, int mode) {
    const int64_t S = mode == 1 ? 8 : 16;           /* slot size for the slot modes */
    for (int64_t i = 0; i < n; i++) {
        ls_copy_op o;
        if (mode == 0) {                             /* dense: anything goes */
            const int64_t len = irand(17), d = irand(BUF - len + 1), s = irand(BUF - len + 1);
            o = (ls_copy_op){buf + d, buf + s, len};
        } else {                                     /* whole slots, sometimes a tail short */
            const int64_t slots = BUF / S;
            const int64_t len = irand(8) ? S : irand(S + 1);
            o = (ls_copy_op){buf + irand(slots) * S, buf + irand(slots) * S, len};
            if (mode == 3 && irand(4) == 0) o.dst = buf + irand(BUF - S);   /* a stray write */
        }
        const int64_t k = irand(20);
        if (k == 0) o.src = NULL;                                  /* zero fill */
        else if (k == 1) o.src = o.dst;                            /* onto itself */
        else if (k == 2 && i > 0) o = ops[irand(i)];               /* a repeat */
        else if (k == 3 && o.bytes > 1) o.src = (unsigned char *)o.dst + 1;  /* self-overlap */
        else if (k == 4) o.bytes = 0;
        ops[i] = o;
    }
}

static void check_plan(ls_copy_plan *p, ls_copy_op *ops, int64_t n, int compacted) {
    CHECK(ls_copy_plan_waves(p, ops, n) == 0);
    const int all_free = naive_free(ops, n);
    CHECKF(ls_copy_conflict_free(ops, n, p->ivl) == all_free, "n %lld", (long long)n);
    if (n == 0) { CHECK(p->n_waves == 0); return; }
    CHECK(p->n_waves >= 1 && p->end[p->n_waves - 1] == n);
    if (all_free) CHECKF(p->n_waves == 1, "a conflict-free set of %lld ops took %lld waves",
                         (long long)n, (long long)p->n_waves);
    unsigned char init[BUF + 16], want[BUF + 16];
    for (int i = 0; i < BUF + 16; i++) init[i] = (unsigned char)rnd();
    memcpy(buf, init, sizeof buf);
    run_seq(ops, n);
    memcpy(want, buf, sizeof buf);
    memcpy(buf, init, sizeof buf);
    int64_t a = 0;
    for (int64_t w = 0; w < p->n_waves; w++) {
        const int64_t b = p->end[w];
        CHECKF(b > a, "wave %lld is empty", (long long)w);
        if (b <= a) return;
        /* each wave conflict-free (or one op), and as long as it can be */
        CHECKF(b - a == 1 || naive_free(ops + a, b - a), "wave [%lld, %lld) has a conflict",
               (long long)a, (long long)b);
        if (b < n) CHECKF(!naive_free(ops + a, b + 1 - a), "wave [%lld, %lld) could be longer",
                          (long long)a, (long long)b);
        run_wave(ops + a, b - a);
        a = b;
    }
    CHECKF(memcmp(buf, want, sizeof buf) == 0, "waves differ from the sequence (n %lld, %lld waves%s)",
           (long long)n, (long long)p->n_waves, compacted ? ", compacted" : "");
}

static void test_random(void) {
    ls_copy_plan p = {0};
    ls_copy_op ops[64], sub[64];
    int64_t waves_total = 0, sets = 0;
    for (int it = 0; it < 6000; it++) {
        const int mode = it % 4;
        const int64_t n = irand(mode == 0 ? 12 : 40);
        random_ops(ops, n, mode);
        check_plan(&p, ops, n, 0);
        waves_total += p.n_waves;
        sets++;
        /* the compacted queue: no no-ops left, same bytes */
        memcpy(sub, ops, sizeof ops);
        const int64_t m = ls_copy_compact(sub, n);
        CHECK(m <= n);
        for (int64_t i = 0; i < m; i++)
            CHECK(sub[i].bytes > 0 && (!sub[i].src || sub[i].src != (const void *)sub[i].dst));
        check_plan(&p, sub, m, 1);
        /* conflict_free on random sub-ranges agrees with the definition */
        if (n > 0) {
            const int64_t a = irand(n), b = a + irand(n - a + 1);
            CHECK(ls_copy_conflict_free(ops + a, b - a, p.ivl) == naive_free(ops + a, b - a));
        }
    }
    printf("random: %lld op sets, %.2f waves on average\n", (long long)sets,
           (double)waves_total / (double)sets);
    ls_copy_plan_free(&p);
}

/* Hand-made cases: adjacency, identical reads, self-overlap, zero fills. */
static void test_cases(void) {
    unsigned char *b = buf;
    ls_copy_plan p = {0};
    ls_copy_ivl ivl[8];
    /* adjacent ranges (end == start) never conflict */
    ls_copy_op adj[] = {{b + 0, b + 16, 16}, {b + 32, b + 48, 16}, {b + 64, b + 32, 0}};
    CHECK(ls_copy_conflict_free(adj, 2, ivl) == 1);
    ls_copy_op adj2[] = {{b + 16, b + 0, 16}, {b + 32, b + 16 + 32, 16}, {b + 64, NULL, 16}};
    CHECK(ls_copy_conflict_free(adj2, 3, ivl) == 1);
    /* two ops reading the same bytes: fine; writing the same bytes: not */
    ls_copy_op rr[] = {{b + 0, b + 100, 16}, {b + 16, b + 100, 16}};
    CHECK(ls_copy_conflict_free(rr, 2, ivl) == 1);
    ls_copy_op ww[] = {{b + 0, b + 100, 16}, {b + 0, b + 200, 16}};
    CHECK(ls_copy_conflict_free(ww, 2, ivl) == 0);
    /* one byte of overlap between a write and a later read */
    ls_copy_op wr[] = {{b + 0, b + 100, 16}, {b + 40, b + 15, 16}};
    CHECK(ls_copy_conflict_free(wr, 2, ivl) == 0);
    /* zero-length ops touch nothing, even inside other ranges */
    ls_copy_op z[] = {{b + 0, b + 100, 16}, {b + 8, b + 8, 0}, {b + 4, NULL, 0}};
    CHECK(ls_copy_conflict_free(z, 3, ivl) == 1);
    /* self-overlap: a conflict alone, its own wave, memmove's bytes */
    ls_copy_op so = {b + 8, b + 0, 16};
    CHECK(ls_copy_self_overlaps(&so) && ls_copy_conflict_free(&so, 1, ivl) == 0);
    ls_copy_op so2 = {b + 16, b + 0, 16}, zf = {b + 0, NULL, 16};
    CHECK(!ls_copy_self_overlaps(&so2) && !ls_copy_self_overlaps(&zf));
    ls_copy_op mix[] = {{b + 100, b + 120, 4}, {b + 8, b + 0, 16}, {b + 200, b + 220, 4}};
    CHECK(ls_copy_plan_waves(&p, mix, 3) == 0);
    CHECK(p.n_waves == 3 && p.end[0] == 1 && p.end[1] == 2 && p.end[2] == 3);
    /* dst == src is a conflict until compacted away */
    ls_copy_op self[] = {{b + 0, b + 0, 16}, {b + 32, b + 64, 16}};
    CHECK(ls_copy_conflict_free(self, 2, ivl) == 0);
    CHECK(ls_copy_compact(self, 2) == 1 && self[0].dst == b + 32);
    ls_copy_plan_free(&p);
}

/* The engine's shape: thousands of slot copies and no conflict is one wave; one conflict
 * in the middle makes two. */
static void test_large(void) {
    enum { N = 20000 };
    static unsigned char pool[4 * N * 8];
    ls_copy_op *ops = malloc(N * sizeof *ops);
    for (int64_t i = 0; i < N; i++)   /* slot 2i+1 -> staging row i, and zero fills */
        ops[i] = (ls_copy_op){pool + (2 * N + i) * 8, i % 7 ? pool + (2 * i + 1) * 8 : NULL, 8};
    ls_copy_plan p = {0};
    CHECK(ls_copy_plan_waves(&p, ops, N) == 0);
    CHECK(p.n_waves == 1);
    ops[N / 2].src = pool + (2 * N + 10) * 8;   /* reads what op 10 wrote */
    CHECK(ls_copy_plan_waves(&p, ops, N) == 0);
    CHECKF(p.n_waves == 2 && p.end[0] == N / 2, "%lld waves, first ends at %lld",
           (long long)p.n_waves, (long long)(p.n_waves ? p.end[0] : -1));
    ls_copy_plan_free(&p);
    free(ops);
}

int main(void) {
    test_cases();
    test_random();
    test_large();
    return check_status();
}
