/* lockstep run [CONFIG] [--set KEY=VALUE ...] [--trace PATH]
 * Loads the YAML run config (configs/default.yaml without an argument), runs the engine
 * and the reference, compares, and prints the verdict and, for divergences, where the
 * token came from and the first layer and component where engine and reference part.
 * Exit 0 = no divergence beyond the mode's bound, 1 = divergence, 2 = bad input or error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/commands.h"
#include "harness/pipeline.h"
#include "ls_build.h"

static int usage(void) {
    fprintf(stderr, "usage: lockstep run [CONFIG.yaml] [--set KEY=VALUE ...] [--trace PATH.h5]\n"
                    "  without CONFIG: %s/configs/default.yaml\n", LS_SOURCE_ROOT);
    return 2;
}

static void print_stats(const ls_run_config *rc, const ls_run_outcome *o) {
    const ls_engine_stats *st = &o->engine.stats;
    printf("lockstep run %s\n  model %s (%s, %s mode, %s backend)\n", rc->path, rc->model_dir,
           ls_prec_name(rc->precision), rc->mode_fast ? "fast" : "invariant", rc->backend_cuda ? "cuda" : "cpu");
    printf("  cache: %lld KV blocks x %lld tokens, %lld Mamba state slots (%s), prefix caching %s\n",
           (long long)rc->engine.num_blocks, (long long)rc->engine.block_size,
           (long long)rc->engine.num_state_slots, ls_slot_policy_name(rc->engine.slot_policy),
           rc->engine.prefix_caching ? "on" : "off");
    for (int f = 0; f < LS_FAULT_COUNT; f++)
        if (rc->engine.faults.on[f])
            printf("  planted fault: %s — %s\n", ls_fault_name((ls_fault)f), ls_fault_doc((ls_fault)f));
    printf("engine: %lld requests -> %lld sequences in %lld steps (%.2f s): %lld preemptions, "
           "%lld prefix-hit tokens, %lld snapshot restores, %lld forks, %lld copy-on-write, "
           "%lld chunked prefills, highest slot %lld\n",
           (long long)o->workload.n_requests, (long long)o->engine.n_seqs, (long long)st->steps,
           o->t_engine, (long long)st->preemptions, (long long)st->prefix_hit_tokens,
           (long long)st->snapshot_restores, (long long)st->forks, (long long)st->cow_copies,
           (long long)st->chunked_prefills, (long long)st->max_slot_used);
    const ls_compare_summary *S = &o->cmp.sum;
    printf("reference: %lld sequences teacher-forced (%.2f s)\n", (long long)S->seqs, o->t_reference);
    printf("compare (%s): %lld tokens, %lld bitwise equal; %lld divergent in %lld of %lld sequences; "
           "max |d| %.3g, mean %.3g, std %.3g; prob pearson %.9f; k3 KL %.3g\n",
           rc->mode_fast ? "tolerance" : "invariant: any bit is a divergence", (long long)S->tokens,
           (long long)S->bitwise_equal_tokens, (long long)S->divergent_tokens, (long long)S->divergent_seqs,
           (long long)S->seqs, S->max_abs, S->mean_abs, S->std_abs, S->prob_pearson, S->kl_k3);
}

static void print_tenant(const ls_engine_result *r, int64_t id) {
    if (id < 0 || id >= r->n_tenants) { printf("none"); return; }
    const ls_engine_tenant *t = &r->tenants[id];
    if (t->rollout < 0) printf("request %lld's prompt prefill", (long long)t->request);
    else printf("request %lld rollout %lld", (long long)t->request, (long long)t->rollout);
}

static void print_divergences(const ls_run_outcome *o) {
    const ls_comparison *c = &o->cmp;
    for (int64_t i = 0; i < o->n_locs; i++) {
        const ls_localisation *l = &o->locs[i];
        const ls_engine_seq *q = &o->engine.seqs[l->seq];
        const ls_provenance *p = &q->prov[l->position];
        const ls_token_cmp *t = NULL;
        for (int64_t k = 0; k < c->n_tokens && !t; k++)
            if (c->tokens[k].seq == l->seq && c->tokens[k].position == l->position) t = &c->tokens[k];
        printf("%s divergence: request %lld rollout %lld position %lld (token %d): engine %.17g, "
               "reference %.17g\n", i == 0 ? "first" : "next", (long long)l->request, (long long)l->rollout,
               (long long)l->position, q->tokens[l->position], t ? t->engine : 0.0, t ? t->reference : 0.0);
        printf("  provenance: step %lld, batch row %lld, Mamba slot %lld (previous tenant: ",
               (long long)p->step, (long long)p->batch_row, (long long)p->slot);
        print_tenant(&o->engine, p->prev_tenant);
        printf("), KV block %lld of %lld, chunk %lld (first chunk %lld tokens), state from prefix "
               "snapshot: %s, preemptions %lld\n", (long long)p->block, (long long)p->n_blocks,
               (long long)p->chunk, (long long)p->first_chunk, p->from_snapshot ? "yes" : "no",
               (long long)p->preemptions);
        printf("  first divergent layer: %s\n", l->summary);
    }
    int64_t listed = 0;
    for (int64_t s = 0; s < o->engine.n_seqs; s++) {
        if (c->first_divergent[s] < 0) continue;
        if (listed++ == 16) { printf("  ...\n"); break; }
        const ls_engine_seq *q = &o->engine.seqs[s];
        const ls_provenance *p = &q->prov[c->first_divergent[s]];
        printf("  divergent: request %lld rollout %lld from position %lld (slot %lld, step %lld)\n",
               (long long)q->request, (long long)q->rollout, (long long)c->first_divergent[s],
               (long long)p->slot, (long long)p->step);
    }
}

int ls_cmd_run(int argc, char **argv) {
    const char *path = NULL, *trace = NULL;
    char def[4096];
    int n_sets = 0;
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    if (!sets) return 2;
    int bad = 0;
    for (int i = 0; i < argc && !bad; i++) {
        if (!strcmp(argv[i], "--set") || !strcmp(argv[i], "--trace")) {
            if (i + 1 >= argc) { fprintf(stderr, "lockstep run: %s needs a value\n", argv[i]); bad = 1; break; }
            if (argv[i][2] == 's') sets[n_sets++] = argv[++i];
            else trace = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            free(sets);
            usage();
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "lockstep run: unknown option '%s'\n", argv[i]);
            bad = 1;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "lockstep run: more than one config given ('%s', '%s')\n", path, argv[i]);
            bad = 1;
        }
    }
    if (bad) { free(sets); return usage(); }
    if (!path) {
        snprintf(def, sizeof def, "%s/configs/default.yaml", LS_SOURCE_ROOT);
        path = def;
    }
    ls_err err = {{0}};
    ls_run_config rc;
    if (ls_config_load(path, &rc, &err)) {
        fprintf(stderr, "lockstep run: %s\n", err.msg);
        free(sets);
        return 2;
    }
    for (int i = 0; i < n_sets; i++)
        if (ls_config_set(&rc, sets[i], &err)) {
            fprintf(stderr, "lockstep run: --set %s: %s\n", sets[i], err.msg);
            free(sets);
            ls_config_free(&rc);
            return 2;
        }
    free(sets);
    if (ls_config_check(&rc, &err)) {
        fprintf(stderr, "lockstep run: %s\n", err.msg);
        ls_config_free(&rc);
        return 2;
    }
    if (trace) {
        free(rc.trace_path);
        rc.trace_path = strdup(trace);
    }
    ls_run_outcome o;
    int code;
    if (ls_run_execute(&rc, &o, &err)) {
        fprintf(stderr, "lockstep run: %s\n", err.msg);
        code = 2;
    } else {
        print_stats(&rc, &o);
        if (o.diverged) {
            print_divergences(&o);
            printf("verdict: DIVERGENCE\n");
        } else {
            printf("verdict: OK — the engine equals the reference%s\n",
                   rc.mode_fast ? " within tolerance" : " bit for bit");
        }
        if (rc.trace_path) printf("trace: %s\n", rc.trace_path);
        code = o.diverged ? 1 : 0;
    }
    ls_run_outcome_free(&o);
    ls_config_free(&rc);
    fflush(stdout);
    return code;
}
