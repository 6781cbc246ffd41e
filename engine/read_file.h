/* Reading a whole (small) file into memory, with the limit and errors every caller wants. */
#ifndef LS_READ_FILE_H
#define LS_READ_FILE_H

#include <stddef.h>

#include "engine/err.h"

/* Reads `path` whole into a malloc'd, NUL-terminated buffer (*len excludes the NUL).
 * A file larger than `max` bytes is an error, as are open and read failures; the
 * message names the path. */
int ls_read_file(const char *path, size_t max, char **out, size_t *len, ls_err *err);

#endif
