#include "harness/logprob_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ls_logprob_file_free(ls_logprob_file *f) {
    for (int64_t i = 0; i < f->n; i++) free(f->vals[i]);
    free(f->vals);
    free(f->counts);
    memset(f, 0, sizeof *f);
}

/* Parses one line's values into vals[i]/counts[i]. */
static int parse_line(const char *path, int64_t lineno, char *p, double **vals, int64_t *count,
                      ls_err *err) {
    int64_t cap = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) return 0;
        char *end;
        double v = strtod(p, &end);
        if (end == p) return ls_errf(err, "%s:%lld: not a number: '%.20s'", path, (long long)lineno, p);
        if (*count == cap) {
            cap = cap ? 2 * cap : 64;
            double *g = realloc(*vals, (size_t)cap * sizeof *g);
            if (!g) return ls_errf(err, "%s: out of memory", path);
            *vals = g;
        }
        (*vals)[(*count)++] = v;
        p = end;
    }
}

int ls_logprob_file_read(const char *path, ls_logprob_file *out, ls_err *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f) return ls_errf(err, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        int64_t n = out->n + 1;
        double **nv = realloc(out->vals, (size_t)n * sizeof *nv);
        if (nv) out->vals = nv;
        int64_t *nc = realloc(out->counts, (size_t)n * sizeof *nc);
        if (nc) out->counts = nc;
        if (!nv || !nc) { rc = ls_errf(err, "%s: out of memory", path); break; }
        out->vals[out->n] = NULL;
        out->counts[out->n] = 0;
        out->n = n;
        rc = parse_line(path, n, line, &out->vals[n - 1], &out->counts[n - 1], err);
    }
    free(line);
    if (rc == 0 && ferror(f)) rc = ls_errf(err, "%s: read error", path);
    fclose(f);
    if (rc) ls_logprob_file_free(out);
    return rc;
}
