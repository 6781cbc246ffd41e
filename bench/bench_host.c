/* The engine's host work per decode step, without a GPU: what bounds a GPU step from below
 * however fast the kernels get.
 *
 *   bench_host [--batches 1,16,64,256] [--sampling device,host] [--new 64] [--warm 8]
 *              [--prompt 16]
 *
 * The engine runs unchanged on a "null" backend with the shapes of the GPU benchmark's
 * ~1B-parameter Jamba (tools/gpu/make_bench_model.py: hidden 2048, 16 layers of which 14
 * Mamba, vocab 32000; only config.json's numbers matter, there are no weights). Its memory
 * is address space only (mmap PROT_NONE: nothing is read or written), its forward does no
 * math, and its copy / zero ops are queued and planned into waves exactly as the CUDA
 * backend does before launching them (engine/copy_plan.h), minus the launches. So a step
 * costs what the host spends on the scheduler, the pools, the state-copy queue and its
 * planning, the draws and the bookkeeping.
 *
 * Two sampling modes, in one run (--sampling picks):
 *   device  the backend has a sample op (as the CUDA backend now does): the host hands over
 *           the draws and gets a token and a log-probability per draw back;
 *   host    no sample op (the CUDA backend before): the forward writes each wanted row (a
 *           flat row of vocab entries, the worst case for the sampler's heap, like a random
 *           model's) and the engine runs ls_sample on the host.
 * Decode time is run(WARM + NEW) - run(WARM), as bench_gpu measures it. The numbers are this
 * machine's CPU, one thread; the GPU machine's host is a different CPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "engine/backend.h"
#include "engine/copy_plan.h"
#include "engine/model_config.h"
#include "bench/decode_workload.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- the null backend -------------------------------------------------------------------- */

typedef struct mapping { void *p; size_t bytes; } mapping;
static mapping maps[4096];
static int n_maps;
static ls_copy_op *queue;
static int64_t q_n, q_cap;
static ls_copy_plan plan;
static int64_t n_kept, vocab;
static double t_plan;                     /* seconds spent planning queued copies */
static int64_t n_copies, n_waves, n_flushes;

static void *nb_alloc(const ls_backend *b, int64_t bytes, ls_err *err) {
    (void)b;
    size_t n = (size_t)(bytes > 0 ? bytes : 1);
    void *p = mmap(NULL, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED || n_maps == (int)(sizeof maps / sizeof *maps)) {
        ls_errf(err, "null backend: cannot reserve %lld bytes", (long long)bytes);
        return NULL;
    }
    maps[n_maps++] = (mapping){p, n};
    return p;
}

static void nb_release(const ls_backend *b, void *p) {
    (void)b;
    for (int i = 0; i < n_maps; i++)
        if (maps[i].p == p) {
            munmap(p, maps[i].bytes);
            maps[i] = maps[--n_maps];
            return;
        }
}

/* What the CUDA backend's flush does on the host: drop no-ops, plan the waves, sort each
 * wave's descriptors by alignment class. */
static int nb_flush(ls_err *err) {
    double t = now();
    const int64_t n = ls_copy_compact(queue, q_n);
    q_n = 0;
    if (n == 0) return 0;
    if (ls_copy_plan_waves(&plan, queue, n)) return ls_errf(err, "null backend: out of memory");
    volatile uintptr_t sink = 0;
    for (int64_t i = 0; i < n; i++)
        sink += ((uintptr_t)queue[i].dst | (uintptr_t)queue[i].src | (uintptr_t)queue[i].bytes) & 15;
    (void)sink;
    n_copies += n;
    n_waves += plan.n_waves;
    n_flushes++;
    t_plan += now() - t;
    return 0;
}

static int nb_copy(const ls_backend *b, void *dst, const void *src, int64_t bytes, ls_err *err) {
    (void)b;
    if (bytes <= 0 || dst == src) return 0;
    if (q_n == q_cap) {
        int64_t nc = q_cap ? 2 * q_cap : 1024;
        ls_copy_op *nq = realloc(queue, (size_t)nc * sizeof *nq);
        if (!nq) return ls_errf(err, "null backend: out of memory");
        queue = nq;
        q_cap = nc;
    }
    queue[q_n++] = (ls_copy_op){dst, src, bytes};
    return 0;
}

static int nb_zero(const ls_backend *b, void *p, int64_t bytes, ls_err *err) {
    return nb_copy(b, p, NULL, bytes, err);
}

static int nb_poison(const ls_backend *b, void *p, int64_t eb, int64_t n, int64_t c, int64_t st,
                     ls_err *err) {
    (void)b; (void)p; (void)eb; (void)n; (void)c; (void)st;
    return nb_flush(err);
}

/* A flat row, as a random model gives: -log(V) plus a little noise, the same every call. */
static float *flat_row;

static int nb_forward(const ls_backend *b, const ls_model *m, const ls_kv_cache *kv,
                      const ls_seq_step *seqs, int64_t n_seqs, const ls_forward_opts *o,
                      ls_err *err) {
    (void)b; (void)m; (void)kv;
    if (nb_flush(err)) return -1;
    n_kept = 0;
    for (int64_t s = 0; s < n_seqs; s++) {
        if (!seqs[s].logprobs) continue;
        const int64_t rows = seqs[s].n - seqs[s].logits_from;
        if (o && o->keep_rows) n_kept += rows;
        else
            for (int64_t r = 0; r < rows; r++)
                memcpy((float *)seqs[s].logprobs + r * vocab, flat_row, (size_t)vocab * sizeof(float));
    }
    return 0;
}

static int nb_sample(const ls_backend *b, const ls_sample_draw *d, int64_t n, int32_t *tok,
                     double *lp, ls_err *err) {
    (void)b;
    if (nb_flush(err)) return -1;
    for (int64_t j = 0; j < n; j++) {
        if (d[j].row < 0 || d[j].row >= n_kept) return ls_errf(err, "null backend: bad row");
        tok[j] = (int32_t)((d[j].request * 7919u + d[j].rollout * 104729u + d[j].position) %
                           (uint64_t)vocab);
        lp[j] = (double)flat_row[tok[j]];
    }
    return 0;
}

/* ---- the benchmark ----------------------------------------------------------------------- */

static const char *bench_config =
    "{\"model_type\": \"jamba\", \"vocab_size\": 32000, \"hidden_size\": 2048,"
    " \"intermediate_size\": 1024, \"num_hidden_layers\": 16, \"num_attention_heads\": 16,"
    " \"num_key_value_heads\": 8, \"attn_layer_period\": 8, \"attn_layer_offset\": 4,"
    " \"expert_layer_period\": 2, \"expert_layer_offset\": 1, \"num_experts\": 8,"
    " \"num_experts_per_tok\": 2, \"mamba_d_state\": 16, \"mamba_d_conv\": 4,"
    " \"mamba_expand\": 2, \"mamba_dt_rank\": 128, \"mamba_conv_bias\": true,"
    " \"mamba_proj_bias\": false, \"tie_word_embeddings\": false, \"rms_norm_eps\": 1e-6,"
    " \"hidden_act\": \"silu\"}";

/* One engine run of B prompts, nnew new tokens each; seconds. */
static double engine_run(const ls_model *m, const ls_backend *be, int64_t B, int64_t plen,
                         int64_t nnew) {
    ls_workload wl;
    ls_engine_config c;
    decode_workload(m, B, plen, nnew, 11, &wl, &c);
    c.backend = be;
    ls_err err = {{0}};
    ls_engine_result res;
    double t0 = now();
    if (ls_engine_config_resolve(&c, m, &err) || ls_engine_run(m, &c, &wl, &res, &err)) {
        fprintf(stderr, "engine (B %lld): %s\n", (long long)B, err.msg);
        exit(2);
    }
    double t = now() - t0;
    ls_engine_result_free(&res);
    ls_workload_free(&wl);
    return t;
}

static int parse_list(const char *s, int64_t *v, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        v[n] = strtoll(s, &end, 10);
        if (end == s || v[n] < 1) return -1;
        n++;
        s = end;
        if (*s == ',') s++;
    }
    return n;
}

int main(int argc, char **argv) {
    int64_t batches[16] = {1, 16, 64, 256};
    int nb = 4;
    int64_t plen = 16, nnew = 64, warm = 8;
    const char *sampling = "device,host";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batches") && i + 1 < argc) {
            if ((nb = parse_list(argv[++i], batches, 16)) < 1) {
                fprintf(stderr, "bench_host: --batches wants a list of positive integers\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--sampling") && i + 1 < argc) sampling = argv[++i];
        else if (!strcmp(argv[i], "--new") && i + 1 < argc) nnew = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--warm") && i + 1 < argc) warm = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) plen = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_host [--batches 1,16,64,256] [--sampling device,host] "
                            "[--new 64] [--warm 8] [--prompt 16]\n");
            return 2;
        }
    }
    if (nnew < 1 || warm < 1 || plen < 1) {
        fprintf(stderr, "bench_host: --new, --warm and --prompt must be >= 1\n");
        return 2;
    }
    ls_model m;
    memset(&m, 0, sizeof m);
    ls_err err = {{0}};
    if (ls_model_config_parse(bench_config, strlen(bench_config), "bench config", &m.cfg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    m.prec = LS_F32;
    vocab = m.cfg.vocab_size;
    flat_row = malloc((size_t)vocab * sizeof *flat_row);
    uint64_t x = 99;
    for (int64_t i = 0; i < vocab; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        flat_row[i] = (float)(-log((double)vocab) + 1e-3 * ((double)(x % 2001) / 1000.0 - 1.0));
    }
    static ls_backend_ops ops = {.alloc = nb_alloc, .release = nb_release, .copy = nb_copy,
                                 .zero = nb_zero, .poison = nb_poison, .forward = nb_forward};
    ls_backend be = {.ops = &ops, .name = "null"};
    be.reference = &be;

    printf("engine host work per decode step (null backend, shapes of the 1B bench model: %lld "
           "Mamba layers, vocab %lld); prompts of %lld tokens, decode = run(%lld + %lld new) - "
           "run(%lld new); this machine's CPU, one thread\n\n",
           (long long)ls_cfg_count(&m.cfg, LS_LAYER_MAMBA), (long long)vocab, (long long)plen,
           (long long)warm, (long long)nnew, (long long)warm);
    printf("| batch | sampling | host ms/step | us per sequence | copies queued/step | waves/step | "
           "copy planning ms/step | host-bound tok/s |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < nb; i++) {
        const int64_t B = batches[i];
        for (int dev = 1; dev >= 0; dev--) {
            if (!strstr(sampling, dev ? "device" : "host")) continue;
            ops.sample = dev ? nb_sample : NULL;
            (void)engine_run(&m, &be, B, plen, 2);   /* warm-up */
            n_copies = n_waves = n_flushes = 0;
            t_plan = 0;
            double ta = engine_run(&m, &be, B, plen, warm);
            int64_t ca = n_copies, wa = n_waves;
            double pa = t_plan;
            double tb = engine_run(&m, &be, B, plen, warm + nnew);
            const double ms = 1e3 * (tb - ta) / (double)nnew;
            printf("| %lld | %s | %.3f | %.1f | %.0f | %.1f | %.3f | %.0f |\n", (long long)B,
                   dev ? "device" : "host", ms, 1e3 * ms / (double)B,
                   (double)(n_copies - 2 * ca) / (double)nnew, (double)(n_waves - 2 * wa) / (double)nnew,
                   1e3 * (t_plan - 2 * pa) / (double)nnew, (double)B / (ms * 1e-3));
            fflush(stdout);
        }
    }
    free(queue);
    ls_copy_plan_free(&plan);
    free(flat_row);
    return 0;
}
