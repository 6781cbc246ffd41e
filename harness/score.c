/* lockstep score --model DIR [--tokens FILE] [--precision fp64|fp32]
 * The reference pass as a filter: token ids in, teacher-forced logprobs out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/reference.h"
#include "harness/commands.h"
#include "harness/tokens_file.h"

static int usage(void) {
    fprintf(stderr,
            "usage: lockstep score --model DIR [--tokens FILE|-] [--precision fp64|fp32]\n"
            "  Reads token-id sequences (one per line, whitespace-separated) and prints, for\n"
            "  each, the L-1 teacher-forced logprobs of tokens 1..L-1 (%%.17g, space-separated;\n"
            "  an empty line for L = 1). Reference pass; fp64 by default.\n");
    return 2;
}

int ls_cmd_score(int argc, char **argv) {
    const char *model_dir = NULL, *tokens = "-", *prec_s = "fp64";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "--model") || !strcmp(a, "--tokens") || !strcmp(a, "--precision")) &&
            i + 1 >= argc) {
            fprintf(stderr, "lockstep score: %s needs a value\n", a);
            return usage();
        }
        if (!strcmp(a, "--model")) model_dir = argv[++i];
        else if (!strcmp(a, "--tokens")) tokens = argv[++i];
        else if (!strcmp(a, "--precision")) prec_s = argv[++i];
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        else { fprintf(stderr, "lockstep score: unknown argument '%s'\n", a); return usage(); }
    }
    if (!model_dir) { fprintf(stderr, "lockstep score: --model DIR is required\n"); return usage(); }
    ls_prec prec;
    if (ls_prec_parse(prec_s, &prec)) {
        fprintf(stderr, "lockstep score: --precision must be fp64 or fp32, not '%s'\n", prec_s);
        return 2;
    }
    ls_err err = {{0}};
    ls_model m;
    if (ls_model_load(model_dir, prec, &m, &err)) {
        fprintf(stderr, "lockstep score: %s\n", err.msg);
        return 2;
    }
    FILE *f = strcmp(tokens, "-") ? fopen(tokens, "r") : stdin;
    if (!f) {
        fprintf(stderr, "lockstep score: %s: cannot open\n", tokens);
        ls_model_free(&m);
        return 2;
    }
    ls_token_seqs seqs;
    int rc = ls_tokens_read(f, strcmp(tokens, "-") ? tokens : "<stdin>", m.cfg.vocab_size,
                            &seqs, &err);
    if (f != stdin) fclose(f);
    if (rc) {
        fprintf(stderr, "lockstep score: %s\n", err.msg);
        ls_model_free(&m);
        return 2;
    }
    /* Compute everything before printing, so a failure leaves no partial output. */
    double **out = calloc((size_t)seqs.n + 1, sizeof *out);
    rc = out ? 0 : 2;
    for (int64_t s = 0; rc == 0 && s < seqs.n; s++) {
        out[s] = malloc((size_t)seqs.lens[s] * sizeof(double));
        if (!out[s] || ls_reference_logprobs(&m, seqs.seqs[s], seqs.lens[s], NULL, out[s], &err)) {
            fprintf(stderr, "lockstep score: line %lld: %s\n", (long long)seqs.lines[s],
                    out[s] ? err.msg : "out of memory");
            rc = 2;
        }
    }
    for (int64_t s = 0; rc == 0 && s < seqs.n; s++) {
        for (int64_t t = 0; t + 1 < seqs.lens[s]; t++) printf(t ? " %.17g" : "%.17g", out[s][t]);
        putchar('\n');
    }
    if (rc == 0 && (fflush(stdout) || ferror(stdout))) {
        fprintf(stderr, "lockstep score: error writing output\n");
        rc = 2;
    }
    for (int64_t s = 0; out && s < seqs.n; s++) free(out[s]);
    free(out);
    ls_tokens_free(&seqs);
    ls_model_free(&m);
    return rc;
}
