/* lockstep gate [GATE.yaml] [--junit PATH]: the CI check (configs/gate.yaml by default).
 *   golden      the fp64 reference against transformers' float64 logprobs
 *   invariance  engine == reference bit for bit over a matrix of runs
 *   faults      every planted fault caught (divergence) and localised where expected
 * Prints one line per case, writes JUnit XML, exits 0 (all pass), 1 (a case failed) or
 * 2 (bad gate file or error before any verdict). */
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

#include "engine/reference.h"
#include "harness/commands.h"
#include "harness/logprob_file.h"
#include "harness/pipeline.h"
#include "harness/tokens_file.h"
#include "ls_build.h"

typedef struct gcase {
    char suite[16];
    char name[512];
    char failure[1024];            /* empty: passed */
    double seconds;
} gcase;

typedef struct gate {
    const char *path;
    char dir[4096];
    yaml_document_t doc;
    gcase *cases;
    int64_t n, cap;
    ls_err err;
} gate;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static gcase *add_case(gate *g, const char *suite, const char *name) {
    if (g->n == g->cap) {
        int64_t nc = g->cap ? g->cap * 2 : 32;
        gcase *c = realloc(g->cases, (size_t)nc * sizeof *c);
        if (!c) return NULL;
        g->cases = c;
        g->cap = nc;
    }
    gcase *c = &g->cases[g->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->suite, sizeof c->suite, "%s", suite);
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

static void report(const gcase *c) {
    printf("%-4s %-10s %s (%.2f s)%s%s\n", c->failure[0] ? "FAIL" : "ok", c->suite, c->name, c->seconds,
           c->failure[0] ? ": " : "", c->failure);
    fflush(stdout);
}

/* ---- the gate file (libyaml document API) ---- */

static yaml_node_t *map_get(gate *g, yaml_node_t *map, const char *key) {
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&g->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, key))
            return yaml_document_get_node(&g->doc, p->value);
    }
    return NULL;
}

static int bad(gate *g, yaml_node_t *n, const char *what) {
    return ls_errf(&g->err, "%s:%zu:%zu: %s", g->path, n ? n->start_mark.line + 1 : 0,
                   n ? n->start_mark.column + 1 : 0, what);
}

static const char *scalar(yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static void resolve(gate *g, const char *rel, char *out, size_t cap) {
    if (rel[0] == '/') snprintf(out, cap, "%s", rel);
    else snprintf(out, cap, "%s/%s", g->dir, rel);
}

static int check_keys(gate *g, yaml_node_t *map, const char *const *allowed) {
    if (!map || map->type != YAML_MAPPING_NODE) return bad(g, map, "expected a mapping");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&g->doc, p->key);
        const char *ks = scalar(k);
        int ok = 0;
        for (int i = 0; ks && allowed[i]; i++) ok |= !strcmp(ks, allowed[i]);
        if (!ok) {
            char msg[256];
            snprintf(msg, sizeof msg, "unknown key '%s'", ks ? ks : "?");
            return bad(g, k, msg);
        }
    }
    return 0;
}

/* ---- golden ---- */

static int read_lines(const char *path, ls_token_seqs *t, int64_t vocab, ls_err *err) {
    FILE *f = fopen(path, "r");
    if (!f) return ls_errf(err, "%s: cannot open", path);
    int rc = ls_tokens_read(f, path, vocab, t, err);
    fclose(f);
    return rc;
}

static int golden_model(gate *g, const char *dir, double max_abs, gcase *c) {
    ls_model m;
    ls_err err = {{0}};
    char path[4200];
    if (ls_model_load(dir, LS_F64, &m, &err)) { snprintf(c->failure, sizeof c->failure, "%s", err.msg); return 0; }
    ls_token_seqs toks = {0};
    ls_logprob_file want = {0};
    double worst = 0, *got = NULL;
    int64_t count = 0;
    snprintf(path, sizeof path, "%s/tokens.txt", dir);
    if (read_lines(path, &toks, m.cfg.vocab_size, &err)) { snprintf(c->failure, sizeof c->failure, "%s", err.msg); goto out; }
    snprintf(path, sizeof path, "%s/logprobs_fp64.txt", dir);
    if (ls_logprob_file_read(path, &want, &err)) { snprintf(c->failure, sizeof c->failure, "%s", err.msg); goto out; }
    if (want.n != toks.n) {
        snprintf(c->failure, sizeof c->failure, "%s: %lld lines for %lld sequences", path,
                 (long long)want.n, (long long)toks.n);
        goto out;
    }
    for (int64_t s = 0; s < toks.n; s++) {
        free(got);
        got = malloc((size_t)toks.lens[s] * sizeof(double));
        if (!got || want.counts[s] != toks.lens[s] - 1 ||
            ls_reference_logprobs(&m, toks.seqs[s], toks.lens[s], NULL, got, &err)) {
            snprintf(c->failure, sizeof c->failure, "%s line %lld: %s", path, (long long)s + 1,
                     err.msg[0] ? err.msg : "wrong number of values");
            break;
        }
        for (int64_t i = 0; i < want.counts[s]; i++) {
            double d = fabs(got[i] - want.vals[s][i]);
            if (!(d <= worst)) worst = d;
        }
        count += want.counts[s];
    }
    if (!c->failure[0] && !(worst <= max_abs))
        snprintf(c->failure, sizeof c->failure, "max |reference - transformers| = %.3g > %.3g over %lld tokens",
                 worst, max_abs, (long long)count);
    if (!c->failure[0])
        snprintf(c->name + strlen(c->name), sizeof c->name - strlen(c->name), " [%lld tokens, max |d| %.2g]",
                 (long long)count, worst);
out:
    free(got);
    ls_logprob_file_free(&want);
    ls_tokens_free(&toks);
    ls_model_free(&m);
    (void)g;
    return 0;
}

static int run_golden(gate *g, yaml_node_t *sec) {
    static const char *const keys[] = {"models", "max_abs", NULL};
    if (check_keys(g, sec, keys)) return -1;
    yaml_node_t *models = map_get(g, sec, "models"), *ma = map_get(g, sec, "max_abs");
    double max_abs = ma && scalar(ma) ? strtod(scalar(ma), NULL) : 1e-9;
    if (!models || models->type != YAML_SEQUENCE_NODE) return bad(g, sec, "golden.models must be a list");
    for (yaml_node_item_t *it = models->data.sequence.items.start; it < models->data.sequence.items.top; it++) {
        const char *rel = scalar(yaml_document_get_node(&g->doc, *it));
        if (!rel) return bad(g, models, "golden.models entries must be paths");
        char dir[4200];
        resolve(g, rel, dir, sizeof dir);
        gcase *c = add_case(g, "golden", rel);
        if (!c) return ls_errf(&g->err, "out of memory");
        double t0 = now();
        golden_model(g, dir, max_abs, c);
        c->seconds = now() - t0;
        report(c);
    }
    return 0;
}

/* ---- runs: invariance cells and fault canaries ---- */

/* Loads `config`, applies space-separated assignments, runs. */
static int run_cell(const gate *g, const char *config, const char *assigns, int want_locs,
                    ls_run_config *rc, ls_run_outcome *o, char *failure, size_t cap) {
    ls_err err = {{0}};
    memset(o, 0, sizeof *o);
    if (ls_config_load(config, rc, &err)) { snprintf(failure, cap, "%s", err.msg); return -1; }
    char buf[1024], one[4400];
    snprintf(buf, sizeof buf, "%s", assigns ? assigns : "");
    for (char *save, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        /* a model path in the gate file is relative to the gate file, like every other path */
        if (!strncmp(tok, "model=", 6) && tok[6] != '/') snprintf(one, sizeof one, "model=%s/%s", g->dir, tok + 6);
        else snprintf(one, sizeof one, "%s", tok);
        if (ls_config_set(rc, one, &err)) { snprintf(failure, cap, "--set %s: %s", tok, err.msg); return -1; }
    }
    if (ls_config_check(rc, &err)) { snprintf(failure, cap, "%s", err.msg); return -1; }
    rc->compare.probe_layers = want_locs;
    free(rc->trace_path);
    rc->trace_path = NULL;
    if (ls_run_execute(rc, o, &err)) { snprintf(failure, cap, "%s", err.msg); return -1; }
    return 0;
}

typedef struct axis {
    const char *name;
    yaml_node_t *values;
} axis;

static int run_invariance(gate *g, yaml_node_t *sec) {
    static const char *const keys[] = {"base", "axes", NULL};
    if (check_keys(g, sec, keys)) return -1;
    const char *base_rel = scalar(map_get(g, sec, "base"));
    yaml_node_t *axes = map_get(g, sec, "axes");
    if (!base_rel) return bad(g, sec, "invariance.base must name a run config");
    if (!axes || axes->type != YAML_MAPPING_NODE) return bad(g, sec, "invariance.axes must be a mapping of lists");
    char base[4200];
    resolve(g, base_rel, base, sizeof base);
    axis ax[16];
    int na = 0;
    int64_t cells = 1;
    for (yaml_node_pair_t *p = axes->data.mapping.pairs.start; p < axes->data.mapping.pairs.top && na < 16; p++) {
        yaml_node_t *v = yaml_document_get_node(&g->doc, p->value);
        if (!v || v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
            return bad(g, v, "each invariance axis must be a non-empty list of assignments");
        ax[na].name = scalar(yaml_document_get_node(&g->doc, p->key));
        ax[na].values = v;
        cells *= v->data.sequence.items.top - v->data.sequence.items.start;
        na++;
    }
    for (int64_t cell = 0; cell < cells; cell++) {
        char assigns[1024] = "";
        int64_t rest = cell;
        for (int a = na - 1; a >= 0; a--) {
            int64_t k = ax[a].values->data.sequence.items.top - ax[a].values->data.sequence.items.start;
            const char *v = scalar(yaml_document_get_node(&g->doc, ax[a].values->data.sequence.items.start[rest % k]));
            rest /= k;
            if (!v) return bad(g, ax[a].values, "axis values must be strings of KEY=VALUE assignments");
            char tmp[1024];
            snprintf(tmp, sizeof tmp, "%s%s%s", v, assigns[0] ? " " : "", assigns);
            snprintf(assigns, sizeof assigns, "%s", tmp);
        }
        gcase *c = add_case(g, "invariance", assigns);
        if (!c) return ls_errf(&g->err, "out of memory");
        double t0 = now();
        ls_run_config rc;
        ls_run_outcome o;
        if (run_cell(g, base, assigns, 0, &rc, &o, c->failure, sizeof c->failure) == 0) {
            const ls_compare_summary *S = &o.cmp.sum;
            if (o.diverged)
                snprintf(c->failure, sizeof c->failure, "%lld of %lld tokens differ from the reference "
                         "(first: sequence %lld position %lld); rerun: lockstep run %s %s%s",
                         (long long)S->divergent_tokens, (long long)S->tokens, (long long)S->first_seq,
                         (long long)S->first_position, base, "--set ", assigns);
            else if (S->tokens == 0)
                snprintf(c->failure, sizeof c->failure, "no tokens compared");
        }
        ls_run_outcome_free(&o);
        ls_config_free(&rc);
        c->seconds = now() - t0;
        report(c);
    }
    return 0;
}

static int run_faults(gate *g, yaml_node_t *sec) {
    if (!sec || sec->type != YAML_SEQUENCE_NODE) return bad(g, sec, "faults must be a list");
    for (yaml_node_item_t *it = sec->data.sequence.items.start; it < sec->data.sequence.items.top; it++) {
        yaml_node_t *f = yaml_document_get_node(&g->doc, *it);
        static const char *const keys[] = {"config", "expect", NULL};
        if (check_keys(g, f, keys)) return -1;
        const char *rel = scalar(map_get(g, f, "config"));
        yaml_node_t *expect = map_get(g, f, "expect");
        if (!rel || !expect || expect->type != YAML_SEQUENCE_NODE)
            return bad(g, f, "each fault needs config: PATH and expect: [components]");
        char path[4200];
        resolve(g, rel, path, sizeof path);
        gcase *c = add_case(g, "faults", rel);
        if (!c) return ls_errf(&g->err, "out of memory");
        double t0 = now();
        ls_run_config rc;
        ls_run_outcome o;
        if (run_cell(g, path, NULL, 1, &rc, &o, c->failure, sizeof c->failure) == 0) {
            if (!o.diverged) {
                snprintf(c->failure, sizeof c->failure, "the planted fault went unnoticed: no divergence");
            } else if (o.n_locs == 0 || !o.locs[0].found) {
                snprintf(c->failure, sizeof c->failure, "caught but not localised");
            } else {
                int ok = 0;
                for (yaml_node_item_t *e = expect->data.sequence.items.start; e < expect->data.sequence.items.top; e++) {
                    const char *comp = scalar(yaml_document_get_node(&g->doc, *e));
                    ok |= comp && !strcmp(comp, o.locs[0].component);
                }
                if (!ok)
                    snprintf(c->failure, sizeof c->failure, "localised to %s, not an expected component",
                             o.locs[0].summary);
                else
                    snprintf(c->name + strlen(c->name), sizeof c->name - strlen(c->name),
                             " [%lld divergent tokens; request %lld slot %lld: %s]",
                             (long long)o.cmp.sum.divergent_tokens, (long long)o.locs[0].request,
                             (long long)o.engine.seqs[o.locs[0].seq].prov[o.locs[0].position].slot,
                             o.locs[0].summary);
            }
        }
        ls_run_outcome_free(&o);
        ls_config_free(&rc);
        c->seconds = now() - t0;
        report(c);
    }
    return 0;
}

/* ---- JUnit ---- */

static void xml_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static int write_junit(gate *g, const char *path) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return ls_errf(&g->err, "cannot write JUnit XML '%s'", path);
    static const char *const suites[] = {"golden", "invariance", "faults"};
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"lockstep gate\">\n");
    for (int s = 0; s < 3; s++) {
        int64_t n = 0, fails = 0;
        double t = 0;
        for (int64_t i = 0; i < g->n; i++)
            if (!strcmp(g->cases[i].suite, suites[s])) { n++; fails += g->cases[i].failure[0] != 0; t += g->cases[i].seconds; }
        fprintf(f, "  <testsuite name=\"%s\" tests=\"%lld\" failures=\"%lld\" errors=\"0\" time=\"%.3f\">\n",
                suites[s], (long long)n, (long long)fails, t);
        for (int64_t i = 0; i < g->n; i++) {
            const gcase *c = &g->cases[i];
            if (strcmp(c->suite, suites[s])) continue;
            fprintf(f, "    <testcase classname=\"lockstep.gate.%s\" name=\"", c->suite);
            xml_escape(f, c->name);
            fprintf(f, "\" time=\"%.3f\"", c->seconds);
            if (c->failure[0]) {
                fprintf(f, ">\n      <failure message=\"");
                xml_escape(f, c->failure);
                fprintf(f, "\"/>\n    </testcase>\n");
            } else {
                fprintf(f, "/>\n");
            }
        }
        fprintf(f, "  </testsuite>\n");
    }
    fprintf(f, "</testsuites>\n");
    if (fclose(f) || rename(tmp, path)) {
        remove(tmp);
        return ls_errf(&g->err, "cannot write JUnit XML '%s'", path);
    }
    return 0;
}

int ls_cmd_gate(int argc, char **argv) {
    const char *path = NULL, *junit = NULL;
    char def[4096];
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--junit") && i + 1 < argc) junit = argv[++i];
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else {
            fprintf(stderr, "usage: lockstep gate [GATE.yaml] [--junit PATH.xml]\n");
            return 2;
        }
    }
    if (!path) {
        snprintf(def, sizeof def, "%s/configs/gate.yaml", LS_SOURCE_ROOT);
        path = def;
    }
    gate g = {.path = path};
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(g.dir, sizeof g.dir, "%s", dirname(tmp));
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "lockstep gate: %s: cannot open\n", path); return 2; }
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    int ok = yaml_parser_load(&p, &g.doc);
    if (!ok) {
        fprintf(stderr, "lockstep gate: %s:%zu:%zu: %s\n", path, p.problem_mark.line + 1,
                p.problem_mark.column + 1, p.problem ? p.problem : "invalid YAML");
        yaml_parser_delete(&p);
        fclose(f);
        return 2;
    }
    yaml_parser_delete(&p);
    fclose(f);
    double t0 = now();
    yaml_node_t *root = yaml_document_get_root_node(&g.doc);
    static const char *const keys[] = {"golden", "invariance", "faults", NULL};
    int rc = root ? check_keys(&g, root, keys) : ls_errf(&g.err, "%s: empty gate file", path);
    if (rc == 0 && map_get(&g, root, "golden")) rc = run_golden(&g, map_get(&g, root, "golden"));
    if (rc == 0 && map_get(&g, root, "invariance")) rc = run_invariance(&g, map_get(&g, root, "invariance"));
    if (rc == 0 && map_get(&g, root, "faults")) rc = run_faults(&g, map_get(&g, root, "faults"));
    if (rc == 0 && junit) rc = write_junit(&g, junit);
    int code;
    if (rc) {
        fprintf(stderr, "lockstep gate: %s\n", g.err.msg);
        code = 2;
    } else {
        int64_t fails = 0;
        for (int64_t i = 0; i < g.n; i++) fails += g.cases[i].failure[0] != 0;
        printf("gate: %lld cases, %lld failed (%.1f s)%s%s\n", (long long)g.n, (long long)fails, now() - t0,
               junit ? "; JUnit: " : "", junit ? junit : "");
        code = fails ? 1 : 0;
    }
    yaml_document_delete(&g.doc);
    free(g.cases);
    return code;
}
