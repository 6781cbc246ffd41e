#include "engine/read_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ls_read_file(const char *path, size_t max, char **out, size_t *len, ls_err *err) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ls_errf(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    int rc = 0;
    while (buf && rc == 0) {
        if (n == cap) {
            if (n > max) break;               /* more than max already: stop reading */
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) rc = ferror(f) ? -1 : 1;
    }
    fclose(f);
    if (!buf) return ls_errf(err, "%s: out of memory", path);
    if (rc < 0 || n > max) {
        free(buf);
        return rc < 0 ? ls_errf(err, "%s: read error", path)
                      : ls_errf(err, "%s: larger than %zu bytes", path, max);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}
