/* Workload generation (see workload_gen.h). */
#include "harness/workload_gen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "harness/tokens_file.h"

/* ---- splitmix64 (Steele, Lea, Flood 2014): tiny, well mixed, fully specified here so
 * the workload of a seed never changes with a library version. */
static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct rng {
    uint64_t s;
} rng;

enum { STREAM_PREFIX = 1, STREAM_PROMPT = 2 };

static rng stream(uint64_t seed, uint64_t what, uint64_t index) {
    rng r = {mix64(mix64(mix64(seed) ^ what) + index)};
    return r;
}

static uint64_t next64(rng *r) {
    r->s += 0x9E3779B97F4A7C15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n >= 1, without modulo bias: values below 2^64 mod n are redrawn. */
static uint64_t below(rng *r, uint64_t n) {
    uint64_t t = (0 - n) % n, x;
    do x = next64(r);
    while (x < t);
    return x % n;
}

static int check_spec(const ls_workload_spec *s, int64_t vocab, ls_err *err) {
    if (vocab < 1 || vocab > ((int64_t)1 << 31))
        return ls_errf(err, "vocabulary size %lld is outside [1, 2^31]", (long long)vocab);
    if (s->rollouts < 1) return ls_errf(err, "workload.rollouts must be >= 1 (got %lld)", (long long)s->rollouts);
    if (s->max_new_tokens < 1)
        return ls_errf(err, "workload.max_new_tokens must be >= 1 (got %lld)", (long long)s->max_new_tokens);
    if (s->arrival_every < 0)
        return ls_errf(err, "workload.arrival_every must be >= 0 (got %lld)", (long long)s->arrival_every);
    if (ls_sampling_check(&s->sampling, err)) return ls_err_prefix(err, "workload: ");
    if (s->prompts_file) return 0;
    if (s->prompts < 1) return ls_errf(err, "workload.prompts must be >= 1 (got %lld)", (long long)s->prompts);
    if (s->prompt_len_min < 1 || s->prompt_len_min > s->prompt_len_max)
        return ls_errf(err, "workload.prompt_len [%lld, %lld] needs 1 <= min <= max",
                       (long long)s->prompt_len_min, (long long)s->prompt_len_max);
    if (s->shared_prefix < 0)
        return ls_errf(err, "workload.shared_prefix must be >= 0 (got %lld)", (long long)s->shared_prefix);
    if (s->shared_prefix > 0 && s->shared_prefix >= s->prompt_len_min)
        return ls_errf(err, "workload.shared_prefix (%lld) must be less than the shortest prompt "
                       "(workload.prompt_len min %lld): every prompt needs a token of its own",
                       (long long)s->shared_prefix, (long long)s->prompt_len_min);
    if (s->prefix_groups < 1)
        return ls_errf(err, "workload.prefix_groups must be >= 1 (got %lld)", (long long)s->prefix_groups);
    if (s->prompt_len_max > LS_WORKLOAD_MAX_TOKENS / s->prompts)
        return ls_errf(err, "workload: %lld prompts of up to %lld tokens is more than the %lld-token limit",
                       (long long)s->prompts, (long long)s->prompt_len_max, (long long)LS_WORKLOAD_MAX_TOKENS);
    return 0;
}

static int fill_request(const ls_workload_spec *s, int64_t i, ls_request *q, ls_err *err) {
    q->n_rollouts = s->rollouts;
    q->max_new_tokens = s->max_new_tokens;
    q->sampling = s->sampling;
    q->arrival_step = 0;
    if (s->arrival_stagger) {
        if (s->arrival_every > 0 && i > INT64_MAX / s->arrival_every)
            return ls_errf(err, "workload: request %lld's arrival step %lld x %lld overflows", (long long)i,
                           (long long)i, (long long)s->arrival_every);
        q->arrival_step = i * s->arrival_every;
    }
    return 0;
}

static int from_file(const ls_workload_spec *s, int64_t vocab, ls_workload *out, ls_err *err) {
    FILE *f = fopen(s->prompts_file, "r");
    if (!f) return ls_errf(err, "workload.prompts_file: cannot open '%s': %s", s->prompts_file, strerror(errno));
    ls_token_seqs t;
    int rc = ls_tokens_read(f, s->prompts_file, vocab, &t, err);
    fclose(f);
    if (rc) return -1;
    if (t.n == 0) {
        ls_tokens_free(&t);
        return ls_errf(err, "%s: no prompts (the file has no non-blank line)", s->prompts_file);
    }
    out->requests = calloc((size_t)t.n, sizeof *out->requests);
    if (!out->requests) {
        ls_tokens_free(&t);
        return ls_errf(err, "%s: out of memory", s->prompts_file);
    }
    out->n_requests = t.n;
    for (int64_t i = 0; i < t.n; i++) {
        ls_request *q = &out->requests[i];
        q->prompt = t.seqs[i]; /* ownership moves to the workload */
        t.seqs[i] = NULL;
        q->prompt_len = t.lens[i];
        if (fill_request(s, i, q, err)) {
            ls_tokens_free(&t);
            return -1;
        }
    }
    ls_tokens_free(&t);
    return 0;
}

int ls_workload_generate(const ls_workload_spec *s, int64_t vocab, ls_workload *out, ls_err *err) {
    memset(out, 0, sizeof *out);
    if (check_spec(s, vocab, err)) return -1;
    out->seed = s->seed;
    int rc;
    if (s->prompts_file) {
        rc = from_file(s, vocab, out, err);
    } else {
        rc = -1;
        out->requests = calloc((size_t)s->prompts, sizeof *out->requests);
        if (!out->requests) {
            ls_errf(err, "workload: out of memory for %lld requests", (long long)s->prompts);
            goto done;
        }
        out->n_requests = s->prompts;
        const uint64_t span = (uint64_t)(s->prompt_len_max - s->prompt_len_min) + 1;
        for (int64_t i = 0; i < s->prompts; i++) {
            ls_request *q = &out->requests[i];
            rng pr = stream(s->seed, STREAM_PROMPT, (uint64_t)i);
            int64_t len = s->prompt_len_min + (int64_t)below(&pr, span);
            q->prompt = malloc((size_t)len * sizeof *q->prompt);
            if (!q->prompt) {
                ls_errf(err, "workload: out of memory for a %lld-token prompt", (long long)len);
                goto done;
            }
            q->prompt_len = len;
            int64_t p = 0;
            if (s->shared_prefix > 0) {
                rng gr = stream(s->seed, STREAM_PREFIX, (uint64_t)(i % s->prefix_groups));
                for (; p < s->shared_prefix; p++) q->prompt[p] = (int32_t)below(&gr, (uint64_t)vocab);
            }
            for (; p < len; p++) q->prompt[p] = (int32_t)below(&pr, (uint64_t)vocab);
            if (fill_request(s, i, q, err)) goto done;
        }
        rc = 0;
    }
done:
    if (rc) ls_workload_free(out);
    else out->seed = s->seed;
    return rc;
}
