/* lockstep: the command-line entry. Library code returns errors; only this decides to exit. */
#include <stdio.h>
#include <string.h>

#include "harness/commands.h"
#include "harness/trace.h"
#include "ls_build.h"

static int usage(FILE *f) {
    fprintf(f,
            "lockstep %s — deterministic logprob-divergence harness for hybrid Mamba+attention LLMs\n"
            "\n"
            "usage: lockstep COMMAND [ARGS]\n"
            "  run [CONFIG] [--set KEY=VALUE ...]   engine vs reference on a workload (default: configs/default.yaml)\n"
            "  gate [GATE.yaml] [--junit PATH]      the CI check: golden, invariance matrix, planted faults\n"
            "  score --model DIR [--tokens FILE] [--precision fp64|fp32]\n"
            "                                        reference teacher-forced logprobs of token sequences\n"
            "  inspect TRACE.h5                     summary of a run from its HDF5 trace (docs/trace.md)\n"
            "  sweep SPEC.yaml [-j N] [--resume] [--shard K/N] [-o OUT.h5]\n"
            "                                        run a grid of configs, every trace in one file (docs/sweeps.md)\n"
            "  merge OUT.h5 IN.h5...                join the results files of a sharded sweep\n"
            "  analyse FILE.h5                      structure of a trace's or a sweep's divergence (docs/analysis.md)\n"
            "  report FILE.h5 -o DIR                HTML report with plots of a trace or a sweep (reports/README.md)\n"
            "  shrink FAILING.yaml [-o OUT.yaml] [--max-seconds S] [--set KEY=VALUE ...]\n"
            "                                        smallest config that still fails the same way (docs/shrink.md)\n"
            "exit codes: 0 ok, 1 divergence found, 2 bad input or internal error\n",
            LS_VERSION);
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "score")) return ls_cmd_score(argc - 2, argv + 2);
    if (!strcmp(cmd, "run")) return ls_cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "inspect")) return ls_cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(cmd, "gate")) return ls_cmd_gate(argc - 2, argv + 2);
    if (!strcmp(cmd, "sweep")) return ls_cmd_sweep(argc - 2, argv + 2);
    if (!strcmp(cmd, "analyse") || !strcmp(cmd, "analyze")) return ls_cmd_analyse(argc - 2, argv + 2);
    if (!strcmp(cmd, "report")) return ls_cmd_report(argc - 2, argv + 2);
    if (!strcmp(cmd, "merge")) return ls_cmd_merge(argc - 2, argv + 2);
    if (!strcmp(cmd, "shrink")) return ls_cmd_shrink(argc - 2, argv + 2);
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) return usage(stdout);
    if (!strcmp(cmd, "--version")) { printf("lockstep %s\n", LS_VERSION); return 0; }
    fprintf(stderr, "lockstep: unknown command '%s'\n", cmd);
    return usage(stderr);
}
