/* Every planted fault (every .yaml in configs/faults/) caught on the GPU, through the same pipeline
 * as `lockstep run CONFIG --set backend=cuda [--set mode=fast]`:
 *   - invariant mode, in the config's precision (fp64) and in fp32: the fault diverges and
 *     the localiser names the component the CPU gate expects (configs/gate.yaml); with the
 *     fault switched off the run is bit for bit;
 *   - fast mode (cuBLAS linears), with the config's compare.max_abs / max_divergent_frac
 *     (calibrated by bench/calibrate_fast): the fault diverges and the localiser, replaying
 *     the run in invariant mode, names the same components; with the fault off, no token
 *     exceeds the tolerance.
 * LS_FAST_MAX_ABS=x overrides the tolerance (for calibrating). No GPU: exit 77. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/backend.h"
#include "harness/config.h"
#include "harness/pipeline.h"
#include "tests/check.h"

/* configs/gate.yaml's expectations: the component(s) the localiser may name */
static const struct { const char *fault, *expect[2]; } EXPECT[] = {
    {"decode_misclassified", {"conv_state", "ssm_state"}},
    {"narrow_state_offset", {"ssm_state", NULL}},
    {"prefix_hit_without_state", {"conv_state", "ssm_state"}},
    {"fork_shares_slot", {"conv_state", "ssm_state"}},
    {"preempt_keeps_state", {"conv_state", "ssm_state"}},
    {"chunk_drops_conv_state", {"conv_state", NULL}},
    {"padding_writes_slot", {"conv_state", "ssm_state"}},
    {"stale_block_table", {"attention", NULL}},
};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* One run; returns 0 and fills the outcome summary, -1 on error (reported). */
static int run(const char *path, const char *fault, int on, const char *prec, int fast,
               double *max_abs, int64_t *tokens, int64_t *divergent, int *diverged, char *comp,
               size_t comp_cap) {
    ls_run_config rc;
    ls_err err = {{0}};
    char set[256];
    if (ls_config_load(path, &rc, &err)) {
        CHECKF(0, "%s: %s", path, err.msg);
        return -1;
    }
    int bad = 0;
    snprintf(set, sizeof set, "faults.%s.enabled=%s", fault, on ? "true" : "false");
    bad |= ls_config_set(&rc, "backend=cuda", &err);
    bad |= ls_config_set(&rc, fast ? "mode=fast" : "mode=invariant", &err);
    bad |= ls_config_set(&rc, set, &err);
    snprintf(set, sizeof set, "precision=%s", prec);
    bad |= ls_config_set(&rc, set, &err);
    bad |= ls_config_set(&rc, "compare.probe_layers=true", &err);
    const char *tol = getenv("LS_FAST_MAX_ABS");
    if (fast && tol) {
        snprintf(set, sizeof set, "compare.max_abs=%s", tol);
        bad |= ls_config_set(&rc, set, &err);
    }
    if (bad || ls_config_check(&rc, &err)) {
        CHECKF(0, "%s: %s", path, err.msg);
        ls_config_free(&rc);
        return -1;
    }
    free(rc.trace_path);
    rc.trace_path = NULL;
    ls_run_outcome o;
    int rcode = ls_run_execute(&rc, &o, &err);
    CHECKF(rcode == 0, "%s (%s, %s, %s): %s", path, on ? "fault on" : "fault off", prec,
           fast ? "fast" : "invariant", err.msg);
    if (rcode == 0) {
        *max_abs = o.cmp.sum.max_abs;
        *tokens = o.cmp.sum.tokens;
        *divergent = o.cmp.sum.divergent_tokens;
        *diverged = o.diverged;
        snprintf(comp, comp_cap, "%s", o.n_locs > 0 && o.locs[0].found ? o.locs[0].component : "-");
    }
    ls_run_outcome_free(&o);
    ls_config_free(&rc);
    return rcode;
}

int main(void) {
    if (!ls_backend_cuda_available()) {
        fprintf(stderr, "no CUDA device (or built without CUDA): skipped\n");
        _exit(77);
    }
    const char *root = getenv("LS_SOURCE_ROOT");
    if (!root) root = ".";
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/configs/faults", root);
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "%s: cannot open", dir);
    if (!d) return check_status();
    char *names[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".yaml")) names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    CHECKF(n == 8, "%d fault configs, expected 8", n);
    printf("%-26s %-5s %-9s %-5s %7s %9s %10s  %-10s %s\n", "fault", "prec", "mode", "fault", "tokens",
           "divergent", "max |d|", "localised", "verdict");
    for (int i = 0; i < n; i++) {
        char fault[128], path[4400];
        snprintf(fault, sizeof fault, "%.*s", (int)(strlen(names[i]) - 5), names[i]);
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        static const struct { const char *prec; int fast; } MODES[] = {
            {"fp64", 0}, {"fp32", 0}, {"fp64", 1}};
        for (size_t k = 0; k < sizeof MODES / sizeof *MODES; k++)
            for (int on = 1; on >= 0; on--) {
                double mx = 0;
                int64_t toks = 0, div = 0;
                int dv = 0;
                char comp[32] = "-";
                if (run(path, fault, on, MODES[k].prec, MODES[k].fast, &mx, &toks, &div, &dv, comp,
                        sizeof comp))
                    continue;
                const char *verdict = on ? (dv ? "caught" : "MISSED") : (dv ? "FALSE ALARM" : "clean");
                printf("%-26s %-5s %-9s %-5s %7lld %9lld %10.3g  %-10s %s\n", fault, MODES[k].prec,
                       MODES[k].fast ? "fast" : "invariant", on ? "on" : "off", (long long)toks,
                       (long long)div, mx, comp, verdict);
                fflush(stdout);
                CHECKF(on ? dv : !dv, "%s %s %s fault %s: %s", fault, MODES[k].prec,
                       MODES[k].fast ? "fast" : "invariant", on ? "on" : "off", verdict);
                if (!on && !MODES[k].fast)
                    CHECKF(div == 0 && mx == 0, "%s %s: fault off but %lld tokens differ", fault,
                           MODES[k].prec, (long long)div);
                if (on) {
                    int ok = 0;
                    for (size_t e = 0; e < sizeof EXPECT / sizeof *EXPECT; e++)
                        if (!strcmp(EXPECT[e].fault, fault))
                            for (int j = 0; j < 2; j++)
                                ok |= EXPECT[e].expect[j] && !strcmp(EXPECT[e].expect[j], comp);
                    CHECKF(ok, "%s %s %s: localised to '%s', not where configs/gate.yaml expects",
                           fault, MODES[k].prec, MODES[k].fast ? "fast" : "invariant", comp);
                }
            }
        free(names[i]);
    }
    return check_status();
}
