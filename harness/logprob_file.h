/* Logprob files in `lockstep score`'s output format: one line per sequence (blank for
 * a sequence of one token), %.17g values separated by spaces. golden/ keeps transformers'
 * numbers in this format. */
#ifndef LS_LOGPROB_FILE_H
#define LS_LOGPROB_FILE_H

#include <stdint.h>

#include "engine/err.h"

typedef struct ls_logprob_file {
    double **vals;                 /* [n][counts[i]] */
    int64_t *counts;
    int64_t n;                     /* lines, blank ones included: line i is sequence i */
} ls_logprob_file;

/* A value that is not a number is an error "PATH:LINE: ..." */
int ls_logprob_file_read(const char *path, ls_logprob_file *out, ls_err *err);
void ls_logprob_file_free(ls_logprob_file *f);

#endif
