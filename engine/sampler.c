#include "engine/sampler.h"

#include "engine/philox_core.h"

#include <math.h>
#include <stdlib.h>

int ls_sampling_check(const ls_sampling *s, ls_err *err) {
    if (!(s->temperature >= 0.0) || !isfinite(s->temperature))
        return ls_errf(err, "sampling: temperature must be finite and >= 0, got %g",
                       s->temperature);
    if (s->top_k < 0)
        return ls_errf(err, "sampling: top_k must be >= 0 (0 = all), got %lld",
                       (long long)s->top_k);
    if (!(s->top_p > 0.0 && s->top_p <= 1.0))
        return ls_errf(err, "sampling: top_p must be in (0, 1], got %g", s->top_p);
    return 0;
}

/* A NaN logprob ranks last (as -inf) instead of poisoning comparisons. */
static double rank_key(double x) { return isnan(x) ? -HUGE_VAL : x; }

/* Rank order: logprob descending, then token id ascending. A strict total order,
 * so any correct sort or heap yields the same sequence. */
static int ranks_before(const double *lp, int64_t a, int64_t b) {
    double x = rank_key(lp[a]), y = rank_key(lp[b]);
    return x > y || (x == y && a < b);
}

static int32_t greedy(const double *lp, int64_t vocab) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; i++)
        if (ranks_before(lp, i, best)) best = i;
    return (int32_t)best;
}

/* The ranking is produced lazily by a binary heap, so a peaked distribution costs
 * O(vocab) rather than a full sort. Token ids live in the caller's double scratch
 * (exact below 2^53; vocab is capped at INT32_MAX). Popped ids fill the heap array
 * from the back: rank j sits at heap[vocab - 1 - j]. */
typedef struct ranking {
    const double *lp;
    double *heap;    /* [vocab]: heap of ids, then ranked ids from the back */
    double *weight;  /* [vocab]: weight of rank j */
    int64_t vocab, size, popped;
    double lp_max, temperature;
} ranking;

static int64_t heap_id(const ranking *r, int64_t i) { return (int64_t)r->heap[i]; }

static void sift_down(ranking *r, int64_t i) {
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= r->size) return;
        if (c + 1 < r->size && ranks_before(r->lp, heap_id(r, c + 1), heap_id(r, c))) c++;
        if (!ranks_before(r->lp, heap_id(r, c), heap_id(r, i))) return;
        double t = r->heap[i];
        r->heap[i] = r->heap[c];
        r->heap[c] = t;
        i = c;
    }
}

static double weight_of(const ranking *r, int64_t id) {
    /* Subtract before scaling: the top token weighs exactly 1, and a tiny T sends
     * the rest to 0 instead of overflowing lp / T. */
    return exp((rank_key(r->lp[id]) - r->lp_max) / r->temperature);
}

/* Token id of rank j, popping the heap as far as needed; its weight in *w. */
static int64_t rank_at(ranking *r, int64_t j, double *w) {
    while (r->popped <= j) {
        double top = r->heap[0];
        r->size--;
        r->heap[0] = r->heap[r->size];
        r->heap[r->size] = top;
        sift_down(r, 0);
        r->weight[r->popped] = weight_of(r, (int64_t)top);
        r->popped++;
    }
    *w = r->weight[j];
    return (int64_t)r->heap[r->vocab - 1 - j];
}

/* The exponential race: candidate i's key is w_i / E_i with E_i = -log(u_i) an exponential
 * variate (u_i = the token's own uniform, ls_token_uniform_core); the largest key wins,
 * ties to the lower id. P(i wins) = w_i / sum of the candidates' w, exactly the categorical
 * draw, with no running sum: each key depends only on its own token, and a max is exact in
 * any order, so the device finds the same token in parallel. */
typedef struct race {
    uint32_t sk[2];
    uint64_t position;
    double key;
    int64_t id;
} race;

static void race_enter(race *rc, int64_t id, double w, double u) {
    double e = -log(u);
    double key = w / e;
    if (key > rc->key || (key == rc->key && id < rc->id)) {
        rc->key = key;
        rc->id = id;
    }
}

/* Every token of the row a candidate: no ranking needed, uniforms two per Philox block. */
static void race_all(race *rc, const ranking *r) {
    for (int64_t i = 0; i < r->vocab; i += 2) {
        double u[2];
        ls_token_pair_core(rc->sk, rc->position, (uint32_t)(i / 2), u);
        for (int64_t t = i; t < i + 2 && t < r->vocab; t++)
            race_enter(rc, t, weight_of(r, t), u[t - i]);
    }
}

int32_t ls_sample(const double *logprobs, int64_t vocab, const ls_sampling *s, uint64_t seed,
                  uint64_t request, uint64_t rollout, uint64_t position, double *scratch) {
    if (vocab < 1 || vocab > INT32_MAX || ls_sampling_check(s, NULL) < 0) return -1;
    int32_t top = greedy(logprobs, vocab);
    double lp_max = rank_key(logprobs[top]);
    if (s->temperature == 0.0 || !isfinite(lp_max)) return top;

    race rc = {{0, 0}, position, -HUGE_VAL, -1};
    ls_stream_key_core(seed, request, rollout, rc.sk);
    ranking r = {logprobs, NULL, NULL, vocab, vocab, 0, lp_max, s->temperature};
    int64_t keep = s->top_k == 0 || s->top_k > vocab ? vocab : s->top_k;
    if (keep == vocab && s->top_p >= 1.0) {
        race_all(&rc, &r);
        return (int32_t)rc.id;
    }

    double *owned = NULL;
    if (!scratch) {
        owned = malloc((size_t)vocab * 2 * sizeof *owned);
        if (!owned) return -1;
        scratch = owned;
    }
    r.heap = scratch;
    r.weight = scratch + vocab;
    for (int64_t i = 0; i < vocab; i++) r.heap[i] = (double)i;
    for (int64_t i = vocab / 2 - 1; i >= 0; i--) sift_down(&r, i);

    double w;
    if (s->top_p < 1.0) {
        double total = 0.0;
        if (keep < vocab) {
            for (int64_t j = 0; j < keep; j++) {
                (void)rank_at(&r, j, &w);
                total += w;
            }
        } else {
            /* All tokens kept: sum in id order, so no full sort is needed. */
            for (int64_t i = 0; i < vocab; i++) total += weight_of(&r, i);
        }
        double cum = 0.0, need = s->top_p * total;
        int64_t j = 0;
        while (j < keep) {
            (void)rank_at(&r, j, &w);
            cum += w;
            j++;
            if (cum >= need) break;
        }
        keep = j;
    }

    for (int64_t j = 0; j < keep; j++) {
        int64_t id = rank_at(&r, j, &w);
        race_enter(&rc, id, w, ls_token_uniform_core(rc.sk, position, (uint32_t)id));
    }
    free(owned);
    return (int32_t)rc.id;
}
