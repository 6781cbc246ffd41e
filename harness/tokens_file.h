/* Token-id sequences as text: one sequence per line, ids separated by whitespace. */
#ifndef LS_TOKENS_FILE_H
#define LS_TOKENS_FILE_H

#include <stdint.h>
#include <stdio.h>

#include "engine/err.h"

typedef struct ls_token_seqs {
    int32_t **seqs;
    int64_t *lens;
    int64_t *lines;      /* source line of each sequence, for messages */
    int64_t n;
} ls_token_seqs;

/* Reads every line of f. Blank lines are skipped. Ids must be integers in [0, vocab);
 * anything else is an error "NAME:LINE: ...". vocab <= 0 skips the range check. */
int ls_tokens_read(FILE *f, const char *name, int64_t vocab, ls_token_seqs *out, ls_err *err);
void ls_tokens_free(ls_token_seqs *t);

#endif
