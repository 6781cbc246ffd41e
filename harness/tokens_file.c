#include "harness/tokens_file.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int push(ls_token_seqs *t, int32_t *seq, int64_t len, int64_t line) {
    int64_t n = t->n + 1;
    int32_t **s = realloc(t->seqs, (size_t)n * sizeof *s);
    if (!s) return -1;
    t->seqs = s;
    int64_t *l = realloc(t->lens, (size_t)n * sizeof *l);
    if (!l) return -1;
    t->lens = l;
    int64_t *ln = realloc(t->lines, (size_t)n * sizeof *ln);
    if (!ln) return -1;
    t->lines = ln;
    t->seqs[t->n] = seq;
    t->lens[t->n] = len;
    t->lines[t->n] = line;
    t->n = n;
    return 0;
}

int ls_tokens_read(FILE *f, const char *name, int64_t vocab, ls_token_seqs *out, ls_err *err) {
    memset(out, 0, sizeof *out);
    char *line = NULL;
    size_t cap = 0;
    int64_t lineno = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        int32_t *seq = NULL;
        int64_t len = 0, scap = 0;
        char *p = line;
        for (;;) {
            while (*p && isspace((unsigned char)*p)) p++;
            if (!*p) break;
            char *end;
            errno = 0;
            long long v = strtoll(p, &end, 10);
            if (end == p || (*end && !isspace((unsigned char)*end))) {
                char *tok_end = p;
                while (*tok_end && !isspace((unsigned char)*tok_end)) tok_end++;
                ls_errf(err, "%s:%lld: expected a token id (integer), got '%.*s'", name,
                        (long long)lineno, (int)(tok_end - p > 40 ? 40 : tok_end - p), p);
                goto fail;
            }
            if (errno == ERANGE || v < 0 || (vocab > 0 && v >= vocab) || v > INT32_MAX) {
                ls_errf(err, "%s:%lld: token id %.*s is outside the vocabulary [0, %lld)", name,
                        (long long)lineno, (int)(end - p > 40 ? 40 : end - p), p, (long long)vocab);
                goto fail;
            }
            if (len == scap) {
                scap = scap ? scap * 2 : 64;
                int32_t *ns = realloc(seq, (size_t)scap * sizeof *ns);
                if (!ns) { ls_errf(err, "%s: out of memory", name); goto fail; }
                seq = ns;
            }
            seq[len++] = (int32_t)v;
            p = end;
        }
        if (len == 0) { free(seq); continue; }
        if (push(out, seq, len, lineno)) { ls_errf(err, "%s: out of memory", name); goto fail; }
        continue;
    fail:
        free(seq);
        free(line);
        ls_tokens_free(out);
        return -1;
    }
    free(line);
    if (ferror(f)) { ls_tokens_free(out); return ls_errf(err, "%s: read error", name); }
    return 0;
}

void ls_tokens_free(ls_token_seqs *t) {
    for (int64_t i = 0; i < t->n; i++) free(t->seqs[i]);
    free(t->seqs);
    free(t->lens);
    free(t->lines);
    memset(t, 0, sizeof *t);
}
