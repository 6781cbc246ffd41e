/* Engine vs reference throughput on the CPU: 64 prompts x 8 rollouts.
 *   bench_engine [MODEL_DIR] [PROMPT_LEN] [NEW_TOKENS]
 * Prints a table: the engine (batched, cached, forked rollouts) and the reference
 * (teacher-forced, one sequence at a time, over the engine's finished sequences). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/reference.h"
#include "tests/engine/engine_util.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "golden/jamba-small-c";
    int64_t plen = argc > 2 ? atoll(argv[2]) : 32, nnew = argc > 3 ? atoll(argv[3]) : 16;
    printf("workload: 64 prompts x 8 rollouts, prompt %lld tokens, %lld new tokens each; model %s\n",
           (long long)plen, (long long)nnew, dir);
    printf("%-5s | %-9s | %10s | %10s | %8s | %12s | %14s\n", "prec", "pass", "tokens out", "tokens run",
           "seconds", "out tok/s", "run tok/s");
    for (int p = 0; p < 2; p++) {
        ls_model m;
        ls_err err = {{0}};
        if (ls_model_load(dir, p ? LS_F32 : LS_F64, &m, &err)) { fprintf(stderr, "%s\n", err.msg); return 2; }
        uint64_t rng = 42;
        ls_workload wl;
        ls_sampling smp = {.temperature = 1.0, .top_k = 0, .top_p = 1.0};
        tu_workload(&rng, m.cfg.vocab_size, 64, plen, plen, 0, 1, 8, nnew, 0, smp, &wl);
        ls_engine_config c;
        ls_engine_config_default(&c);
        c.block_size = 16;
        c.num_blocks = 64 * 8 * ((plen + nnew) / 16 + 2);
        c.num_state_slots = 256;
        c.max_num_seqs = 256;
        c.max_batched_tokens = 2048;
        ls_engine_result res;
        double t0 = now();
        if (ls_engine_config_resolve(&c, &m, &err) || ls_engine_run(&m, &c, &wl, &res, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 2;
        }
        double te = now() - t0;
        int64_t out_tokens = 0, ref_tokens = 0;
        for (int64_t s = 0; s < res.n_seqs; s++) {
            out_tokens += res.seqs[s].len - res.seqs[s].prompt_len;
            ref_tokens += res.seqs[s].len;
        }
        double *lp = malloc((size_t)(plen + nnew) * sizeof(double));
        t0 = now();
        for (int64_t s = 0; s < res.n_seqs; s++)
            if (ls_reference_logprobs(&m, res.seqs[s].tokens, res.seqs[s].len, NULL, lp, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 2;
            }
        double tr = now() - t0;
        const char *pn = p ? "fp32" : "fp64";
        printf("%-5s | %-9s | %10lld | %10lld | %8.2f | %12.0f | %14.0f\n", pn, "engine",
               (long long)out_tokens, (long long)res.stats.tokens_computed, te, (double)out_tokens / te,
               (double)res.stats.tokens_computed / te);
        printf("%-5s | %-9s | %10lld | %10lld | %8.2f | %12.0f | %14.0f\n", pn, "reference",
               (long long)out_tokens, (long long)ref_tokens, tr, (double)out_tokens / tr,
               (double)ref_tokens / tr);
        free(lp);
        ls_engine_result_free(&res);
        ls_workload_free(&wl);
        ls_model_free(&m);
    }
    return 0;
}
