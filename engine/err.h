/* Errors travel as return codes with a message; only the CLI decides to exit. */
#ifndef LS_ERR_H
#define LS_ERR_H

#include <stddef.h>

typedef struct ls_err {
    char msg[1024];
} ls_err;

/* Formats into err (if non-NULL) and returns -1, so callers can `return ls_errf(...)`. */
int ls_errf(ls_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends context ("loading foo: ") to an existing message; returns -1. */
int ls_err_prefix(ls_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
