#include "harness/h5util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ls_h5_state ls_h5_quiet(void) {
    ls_h5_state s = {NULL, NULL};
    H5Eget_auto2(H5E_DEFAULT, &s.func, &s.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return s;
}

void ls_h5_restore(ls_h5_state s) {
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, s.func, s.data);
}

static herr_t first_error_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    char *buf = data;
    if (!buf[0] && e->desc && e->desc[0]) snprintf(buf, 256, "%s", e->desc);
    return 0;
}

const char *ls_h5_reason(char buf[256]) {
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_error_cb, buf);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

int ls_h5_write_str(hid_t loc, const char *name, const char *value) {
    hid_t t = H5Tcopy(H5T_C_S1), space = -1, a = -1;
    int rc = -1;
    if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) goto out;
    if ((space = H5Screate(H5S_SCALAR)) < 0) goto out;
    if ((a = H5Acreate2(loc, name, t, space, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto out;
    const char *v = value ? value : "";
    if (H5Awrite(a, t, &v) < 0) goto out;
    rc = 0;
out:
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    if (space >= 0) H5Sclose(space);
    if (t >= 0) H5Tclose(t);
    return rc;
}

int ls_h5_write_i64(hid_t loc, const char *name, int64_t value) {
    hid_t space = H5Screate(H5S_SCALAR), a = -1;
    int rc = -1;
    if (space < 0) goto out;
    if ((a = H5Acreate2(loc, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT)) < 0) goto out;
    if (H5Awrite(a, H5T_NATIVE_INT64, &value) < 0) goto out;
    rc = 0;
out:
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    if (space >= 0) H5Sclose(space);
    return rc;
}

int ls_h5_attr_str(hid_t loc, const char *name, char **out) {
    *out = NULL;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), ft = -1, mt = -1, space = -1;
    int rc = -1;
    if (a < 0) return -1;
    if ((ft = H5Aget_type(a)) < 0 || H5Tget_class(ft) != H5T_STRING) goto out;
    if ((space = H5Aget_space(a)) < 0 || H5Sget_simple_extent_npoints(space) != 1) goto out;
    htri_t var = H5Tis_variable_str(ft);
    if (var < 0) goto out;
    if (var) {
        if ((mt = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 ||
            H5Tset_cset(mt, H5Tget_cset(ft)) < 0)
            goto out;
        char *v = NULL;
        if (H5Aread(a, mt, &v) < 0) goto out;
        *out = strdup(v ? v : "");
        if (v) H5free_memory(v);
    } else {
        size_t size = H5Tget_size(ft);
        if (!size) goto out;
        char *buf = calloc(size + 1, 1);
        if (!buf) goto out;
        if (H5Aread(a, ft, buf) < 0) {
            free(buf);
            goto out;
        }
        *out = buf;
    }
    rc = *out ? 0 : -1;
out:
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    if (space >= 0) H5Sclose(space);
    H5Aclose(a);
    return rc;
}

int ls_h5_attr_i64(hid_t loc, const char *name, int64_t *out) {
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT), ft = -1;
    int rc = -1;
    if (a < 0) return -1;
    if ((ft = H5Aget_type(a)) >= 0 && H5Tget_class(ft) == H5T_INTEGER &&
        H5Aread(a, H5T_NATIVE_INT64, out) >= 0)
        rc = 0;
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

int64_t ls_h5_rows(hid_t loc, const char *name) {
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return -1;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT), sp = -1;
    int64_t n = -1;
    hsize_t dims[1];
    if (ds >= 0 && (sp = H5Dget_space(ds)) >= 0 && H5Sget_simple_extent_ndims(sp) == 1 &&
        H5Sget_simple_extent_dims(sp, dims, NULL) == 1)
        n = (int64_t)dims[0];
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    return n;
}
