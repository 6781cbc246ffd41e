#include "engine/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ls_errf(ls_err *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int ls_err_prefix(ls_err *err, const char *fmt, ...) {
    if (!err) return -1;
    char head[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(head);
    if (n >= sizeof err->msg) n = sizeof err->msg - 1;
    memcpy(err->msg, head, n);
    size_t rest = strnlen(old, sizeof old - 1);
    if (rest > sizeof err->msg - 1 - n) rest = sizeof err->msg - 1 - n;  /* truncate the tail */
    memcpy(err->msg + n, old, rest);
    err->msg[n + rest] = '\0';
    return -1;
}
