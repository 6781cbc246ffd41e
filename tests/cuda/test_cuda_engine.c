/* The engine's contract on the GPU: a GPU-sized subset of tests/test_engine_property.c
 * (the same random configurations: batch limits, block and chunk sizes, cache pressure
 * down to constant preemption, rollouts 1..16, shared prefixes, slot policies, debug
 * poison, padded decode batches, both precisions, the three golden models), each run by the
 * engine on the CUDA backend in invariant mode and compared BIT FOR BIT with the reference
 * on the same backend. The totals show the mechanisms ran.
 *
 * Also: the backend's strided poison fill (one launch over a pool) writes exactly the CPU's
 * NaN payload into exactly the runs asked for; and, for information, how far the GPU
 * reference is from the CPU reference on the same tokens (exp/log differ by an ulp).
 *
 * LS_CUDA_CONFIGS=n (default 200) configurations starting at seed 0x5eed0000 (the CPU
 * test's first seeds); `test_cuda_engine SEED` reruns one, verbosely. No GPU: exit 77. */
#include <inttypes.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "engine/backend.h"
#include "engine/reference.h"
#include "tests/check.h"
#include "tests/engine/engine_util.h"

static ls_model models[2][3];      /* [prec][model] */
static ls_backend *backends[2][3];
static const char *model_names[3] = {"jamba-tiny-a", "jamba-tiny-b", "jamba-small-c"};

typedef struct totals {
    tu_mechanisms m;
    int64_t tokens;
    int64_t poisoned;
    double max_gpu_cpu[2];         /* GPU reference vs CPU reference, per precision */
    int64_t bit_gpu_cpu[2], n_gpu_cpu[2];
} totals;

/* The CPU property test's cases (tu_random_case: same seed, same config), on the GPU. */
static int run_one(uint64_t seed, totals *T, int verbose) {
    int64_t vocab[3];
    for (int i = 0; i < 3; i++) vocab[i] = models[0][i].cfg.vocab_size;
    tu_case k;
    if (tu_random_case(seed, vocab, &k)) {
        fprintf(stderr, "seed %" PRIu64 ": out of memory\n", seed);
        return -1;
    }
    int prec = k.prec, mi = k.model;
    const ls_model *m = &models[prec][mi];
    ls_engine_config c = k.cfg;
    ls_workload wl = k.wl;
    ls_err err = {{0}};
    const ls_backend *bk = backends[prec][mi];
    c.backend = bk;
    ls_engine_result res;
    int rc = ls_engine_config_resolve(&c, m, &err);
    if (rc == 0) rc = ls_engine_run(m, &c, &wl, &res, &err);
    if (rc) {
        CHECKF(0, "seed %" PRIu64 ": engine failed: %s", seed, err.msg);
        ls_workload_free(&wl);
        return -1;
    }
    ls_comparison cmp;
    ls_compare_rule rule = {.tolerance = -1};
    rc = ls_compare_with_reference_on(bk, m, &res, &rule, &cmp, &err);
    CHECKF(rc == 0, "seed %" PRIu64 ": reference failed: %s", seed, err.msg);
    int64_t expect_tokens = 0;
    for (int64_t r = 0; r < wl.n_requests; r++)
        expect_tokens += wl.requests[r].n_rollouts * wl.requests[r].max_new_tokens;
    if (rc == 0) {
        CHECKF(cmp.sum.tokens == expect_tokens, "seed %" PRIu64 ": %lld tokens compared, expected %lld",
               seed, (long long)cmp.sum.tokens, (long long)expect_tokens);
        CHECKF(cmp.sum.divergent_tokens == 0,
               "seed %" PRIu64 " (%s %s, cuda): %lld of %lld tokens differ from the GPU reference; first: "
               "seq %lld position %lld (max |d| %.3g); rerun: test_cuda_engine %" PRIu64,
               seed, model_names[mi], prec ? "fp64" : "fp32", (long long)cmp.sum.divergent_tokens,
               (long long)cmp.sum.tokens, (long long)cmp.sum.first_seq,
               (long long)cmp.sum.first_position, cmp.sum.max_abs, seed);
        T->tokens += cmp.sum.tokens;
        ls_comparison_free(&cmp);
    }
    /* for information: the GPU reference against the CPU reference on the first sequence */
    if (res.n_seqs > 0) {
        const ls_engine_seq *q = &res.seqs[0];
        double *g = malloc((size_t)q->len * sizeof *g), *h = malloc((size_t)q->len * sizeof *h);
        if (g && h && ls_reference_logprobs_on(bk, m, q->tokens, q->len, NULL, g, NULL, &err) == 0 &&
            ls_reference_logprobs(m, q->tokens, q->len, NULL, h, &err) == 0)
            for (int64_t t = 0; t + 1 < q->len; t++) {
                double d = fabs(g[t] - h[t]);
                if (!(d <= T->max_gpu_cpu[prec])) T->max_gpu_cpu[prec] = d;
                T->bit_gpu_cpu[prec] += memcmp(&g[t], &h[t], sizeof(double)) == 0;
                T->n_gpu_cpu[prec]++;
            }
        free(g);
        free(h);
    }
    if (verbose) tu_print_case(seed, model_names[mi], prec, &res.stats);
    tu_tally(&T->m, &res.stats);
    T->poisoned += c.debug_poison;
    ls_engine_result_free(&res);
    ls_workload_free(&wl);
    return 0;
}

/* The poison fill: runs of n elements every `stride`, the CPU's payload, nothing else. */
static void check_poison(const ls_backend *bk) {
    for (int es = 4; es <= 8; es += 4) {
        const int64_t n = 37, count = 1001, stride = 100, total = count * stride;
        ls_err err = {{0}};
        void *d = bk->ops->alloc(bk, total * es, &err);
        CHECKF(d != NULL, "alloc: %s", err.msg);
        if (!d) return;
        CHECKF(bk->ops->poison(bk, (char *)d + 3 * es, es, n, count - 1, stride, &err) == 0, "%s", err.msg);
        unsigned char *h = malloc((size_t)(total * es)), *want = calloc((size_t)(total * es), 1);
        cudaDeviceSynchronize();
        CHECK(cudaMemcpy(h, d, (size_t)(total * es), cudaMemcpyDeviceToHost) == cudaSuccess);
        for (int64_t c = 0; c < count - 1; c++) {
            char *p = (char *)want + (3 + c * stride) * es;
            if (es == 8) ls_poison_f64((double *)p, n);
            else ls_poison_f32((float *)p, n);
        }
        CHECKF(memcmp(h, want, (size_t)(total * es)) == 0, "poison fill (%d-byte elements) differs from the CPU's", es);
        free(h);
        free(want);
        bk->ops->release(bk, d);
    }
}

int main(int argc, char **argv) {
    if (!ls_backend_cuda_available()) {
        fprintf(stderr, "no CUDA device (or built without CUDA): skipped\n");
        _exit(77);
    }
    const char *root = getenv("LS_SOURCE_ROOT");
    if (!root) root = ".";
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 3; i++) {
            char dir[4096];
            ls_err err = {{0}};
            snprintf(dir, sizeof dir, "%s/golden/%s", root, model_names[i]);
            if (ls_model_load(dir, p ? LS_F64 : LS_F32, &models[p][i], &err) ||
                ls_backend_cuda_create(&models[p][i], 0, 0, &backends[p][i], &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
        }
    check_poison(backends[0][0]);
    totals T = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (argc > 1) {
        run_one(strtoull(argv[1], NULL, 10), &T, 1);
    } else {
        const char *nc = getenv("LS_CUDA_CONFIGS");
        int64_t n = nc ? strtoll(nc, NULL, 10) : 200;
        for (int64_t i = 0; i < n; i++) run_one(0x5eed0000ULL + (uint64_t)i, &T, 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fprintf(stderr, "cuda invariant: %lld configurations, %lld tokens compared bitwise (GPU engine vs GPU "
                "reference) in %.1f s\n", (long long)T.m.configs, (long long)T.tokens,
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
        fprintf(stderr, "mechanisms: preemptions %lld (in %lld configs), prefix-hit tokens %lld, snapshot "
                "restores %lld (in %lld configs), forks %lld, copy-on-write %lld, chunked prefills %lld, "
                "padded rows %lld, configs using slot >= 8: %lld, with debug poison: %lld\n",
                (long long)T.m.preemptions, (long long)T.m.configs_preempting, (long long)T.m.prefix_hit_tokens,
                (long long)T.m.restores, (long long)T.m.configs_hitting, (long long)T.m.forks, (long long)T.m.cow,
                (long long)T.m.chunked, (long long)T.m.padded, (long long)T.m.high_slot_runs, (long long)T.poisoned);
        for (int p = 0; p < 2; p++)
            fprintf(stderr, "GPU reference vs CPU reference (%s, information): %lld tokens, %lld bitwise equal, "
                    "max |d| %.3g\n", p ? "fp64" : "fp32", (long long)T.n_gpu_cpu[p],
                    (long long)T.bit_gpu_cpu[p], T.max_gpu_cpu[p]);
        /* the engine's decode steps replayed as CUDA graphs where consecutive steps share a
         * shape: every token above was compared with them in place */
        int64_t cap = 0, rep = 0;
        for (int p = 0; p < 2; p++)
            for (int i = 0; i < 3; i++) {
                int64_t c1, r1;
                ls_backend_cuda_graph_stats(backends[p][i], &c1, &r1);
                cap += c1, rep += r1;
            }
        fprintf(stderr, "CUDA graphs: %lld captured, %lld forwards replayed one\n", (long long)cap,
                (long long)rep);
        CHECK(T.m.configs == n);
        if (n >= 100) {
            CHECK(cap > 0 && rep > cap);
            CHECK(T.m.configs_preempting >= n / 10);
            CHECK(T.m.configs_hitting >= n / 20);
            CHECK(T.m.forks >= n / 4);
            CHECK(T.m.cow >= n / 4);
            CHECK(T.m.chunked >= n / 4);
            CHECK(T.m.padded > 0);
            CHECK(T.m.high_slot_runs >= n / 20);
        }
    }
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 3; i++) {
            ls_backend_free(backends[p][i]);
            ls_model_free(&models[p][i]);
        }
    return check_status();
}
