/* Small HDF5 helpers shared by traces, sweeps, analysis and reports: quiet error
 * handling with a readable reason, and scalar string / int64 attributes. */
#ifndef LS_H5UTIL_H
#define LS_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

/* Switches HDF5's automatic error printing off (restore with the returned state). */
typedef struct ls_h5_state {
    H5E_auto2_t func;
    void *data;
} ls_h5_state;
ls_h5_state ls_h5_quiet(void);
void ls_h5_restore(ls_h5_state s);

/* The innermost (most specific) message on HDF5's error stack, "" if none; clears it. */
const char *ls_h5_reason(char buf[256]);

/* Scalar attributes: strings (variable- or fixed-length; read ones malloc'd) and int64.
 * Each returns 0, or -1 if absent, of another type, or unreadable. */
int ls_h5_attr_str(hid_t loc, const char *name, char **out);
int ls_h5_attr_i64(hid_t loc, const char *name, int64_t *out);
int ls_h5_write_str(hid_t loc, const char *name, const char *value);
int ls_h5_write_i64(hid_t loc, const char *name, int64_t value);

/* Rows of the 1-D dataset `name` under loc, -1 if absent or not 1-D. */
int64_t ls_h5_rows(hid_t loc, const char *name);

#endif
