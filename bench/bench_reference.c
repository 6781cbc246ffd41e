/* Reference-pass throughput on the CPU, fp64 and fp32.
 *   bench_reference [MODEL_DIR] [SEQUENCES] [TOKENS] [MIN_SECONDS]
 * defaults: golden/jamba-small-c (the largest golden model), 8 sequences of 128 tokens
 * from a fixed-seed generator, repeated until at least 2 s per precision.
 * Prints: precision | sequences | tokens | seconds | tokens/s (tokens = all positions
 * run through the model, summed over the repeats), and a checksum of the logprobs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/reference.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "golden/jamba-small-c";
    const int64_t n_seqs = argc > 2 ? atoll(argv[2]) : 8;
    const int64_t len = argc > 3 ? atoll(argv[3]) : 128;
    const double min_s = argc > 4 ? atof(argv[4]) : 2.0;
    if (n_seqs < 1 || len < 2 || !(min_s >= 0)) {
        fprintf(stderr, "usage: bench_reference [MODEL_DIR] [SEQUENCES>=1] [TOKENS>=2] [MIN_SECONDS]\n");
        return 2;
    }
    int32_t *tokens = malloc((size_t)(n_seqs * len) * sizeof *tokens);
    double *out = malloc((size_t)len * sizeof *out);
    if (!tokens || !out) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }
    int rc = 0;
    int header = 0;
    for (int p = 0; p < 2 && rc == 0; p++) {
        const ls_prec prec = p == 0 ? LS_F64 : LS_F32;
        ls_model m;
        ls_err err = {{0}};
        if (ls_model_load(dir, prec, &m, &err)) {
            fprintf(stderr, "bench_reference: %s\n", err.msg);
            rc = 2;
            break;
        }
        if (!header) {
            printf("model %s: %lld layers (%lld attention), hidden %lld, vocab %lld\n", dir,
                   (long long)m.cfg.num_layers, (long long)ls_cfg_count(&m.cfg, LS_LAYER_ATTN),
                   (long long)m.cfg.hidden_size, (long long)m.cfg.vocab_size);
            printf("workload: %lld sequences x %lld tokens (fixed seed), repeated to >= %.1f s\n\n",
                   (long long)n_seqs, (long long)len, min_s);
            printf("%-9s | %9s | %9s | %8s | %10s | %s\n", "precision", "sequences", "tokens",
                   "seconds", "tokens/s", "checksum (sum of logprobs, one pass)");
            printf("----------+-----------+-----------+----------+------------+-------------------------------------\n");
            header = 1;
        }
        uint64_t s = 0x243F6A8885A308D3u;  /* same tokens for both precisions */
        for (int64_t i = 0; i < n_seqs * len; i++)
            tokens[i] = (int32_t)(xorshift(&s) % (uint64_t)m.cfg.vocab_size);
        int64_t seqs_run = 0, toks_run = 0;
        double checksum = 0;
        const double t0 = now();
        double el = 0;
        for (int rep = 0; rc == 0 && (rep == 0 || el < min_s); rep++) {
            for (int64_t q = 0; q < n_seqs; q++) {
                if (ls_reference_logprobs(&m, tokens + q * len, len, NULL, out, &err)) {
                    fprintf(stderr, "bench_reference: %s\n", err.msg);
                    rc = 2;
                    break;
                }
                if (rep == 0)
                    for (int64_t t = 0; t + 1 < len; t++) checksum += out[t];
                seqs_run++;
                toks_run += len;
            }
            el = now() - t0;
        }
        if (rc == 0)
            printf("%-9s | %9lld | %9lld | %8.3f | %10.1f | %.10g\n", ls_prec_name(prec),
                   (long long)seqs_run, (long long)toks_run, el, (double)toks_run / el, checksum);
        ls_model_free(&m);
    }
    free(tokens);
    free(out);
    return rc;
}
