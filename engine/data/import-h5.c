/* engine/data/import-h5.c: imports numeric arrays from any HDF5 file (h5py's
 * `f["X"] = X` output, or a file already laid out as train/ and test/
 * groups). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "data-internal.h"

/* A larger label is a data error (ids, not classes), not a class count. */
#define H5_MAX_CLASS 1000000

/* H5Lexists fails rather than answers "no" when a middle component of the
 * path is missing, so walk the path one component at a time. */
static bool h5_path_exists(hid_t file, const char *path)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return false;
    for (char *p = buf + (buf[0] == '/');; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) return false;
        if (c == '\0') return true;
        *p = c;
    }
}

struct h5_pair {
    const char *x, *y;
};

/* Reads one X/y pair into a split. *y_int says whether y held integers
 * (classes); *max_label grows to the largest label seen. */
static enum kiln_status read_pair(hid_t file, const char *path, struct h5_pair pr,
                                  struct kiln_split **out, bool *y_int, int *max_label)
{
    enum kiln_status st = KILN_OK;
    struct h5_array xa = H5_ARRAY_INIT, ya = H5_ARRAY_INIT;
    hsize_t xd[32], yd[32];
    void *X = NULL, *y = NULL;
    int64_t *ytmp = NULL;
    *out = NULL;
    if (!h5_path_exists(file, pr.x) || !h5_path_exists(file, pr.y)) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: no array '%s'", path,
                         h5_path_exists(file, pr.x) ? pr.y : pr.x);
        goto cleanup;
    }
    bool x_ok = h5_array_open(file, pr.x, &xa), y_ok = h5_array_open(file, pr.y, &ya);
    if (!x_ok || !y_ok) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' or '%s' is not an array", path, pr.x, pr.y);
        goto cleanup;
    }
    int xr = H5Sget_simple_extent_ndims(xa.space), yr = H5Sget_simple_extent_ndims(ya.space);
    if (xr < 1 || xr > 4) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' has rank %d (expected 1 to 4)", path, pr.x,
                         xr);
        goto cleanup;
    }
    if (yr < 1 || yr > 2) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' has rank %d (expected 1 or 2)", path, pr.y,
                         yr);
        goto cleanup;
    }
    H5Sget_simple_extent_dims(xa.space, xd, NULL);
    H5Sget_simple_extent_dims(ya.space, yd, NULL);
    H5T_class_t xc = H5Tget_class(xa.type), yc = H5Tget_class(ya.type);
    if (xc != H5T_INTEGER && xc != H5T_FLOAT) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' is not numeric", path, pr.x);
        goto cleanup;
    }
    if (yc != H5T_INTEGER && yc != H5T_FLOAT) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' is not numeric", path, pr.y);
        goto cleanup;
    }
    if (xd[0] != yd[0]) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' has %llu rows but '%s' has %llu", path, pr.x,
                         (unsigned long long)xd[0], pr.y, (unsigned long long)yd[0]);
        goto cleanup;
    }
    if (xd[0] == 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' has no rows", path, pr.x);
        goto cleanup;
    }
    *y_int = yc == H5T_INTEGER;
    if (*y_int && yr == 2 && yd[1] != 1) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: integer labels '%s' must be [n] or [n, 1], not "
                         "[n, %llu]", path, pr.y, (unsigned long long)yd[1]);
        goto cleanup;
    }
    /* uint8 stays compact (and is scaled by 1/255 at batch time); anything
     * else becomes float32, the one float type the engine computes in. */
    bool u8 = xc == H5T_INTEGER && H5Tget_size(xa.type) == 1 &&
              H5Tget_sign(xa.type) == H5T_SGN_NONE;
    enum kiln_dtype xdt = u8 ? KILN_DTYPE_U8 : KILN_DTYPE_F32;
    int64_t n = (int64_t)xd[0], fshape[3] = {1, 1, 1}, fs = 1;
    int feat_ndim = xr > 1 ? xr - 1 : 1;
    for (int i = 1; i < xr; i++) {
        fshape[i - 1] = (int64_t)xd[i];
        fs *= fshape[i - 1];
    }
    int64_t ydim = *y_int || yr == 1 ? 1 : (int64_t)yd[1];
    X = malloc((size_t)(n * fs) * kiln_dtype_size(xdt) + 1);
    y = malloc((size_t)(n * ydim) * 4 + 1);
    ytmp = *y_int ? malloc((size_t)n * sizeof *ytmp) : NULL;
    if (!X || !y || (*y_int && !ytmp)) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory for '%s'", path, pr.x);
        goto cleanup;
    }
    if (H5Dread(xa.d, u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                X) < 0 ||
        H5Dread(ya.d, *y_int ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                *y_int ? (void *)ytmp : y) < 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' or '%s' cannot be read (corrupt file?)", path,
                         pr.x, pr.y);
        goto cleanup;
    }
    if (*y_int) {
        int32_t *yi = y;
        for (int64_t i = 0; i < n; i++) {
            if (ytmp[i] < 0 || ytmp[i] >= H5_MAX_CLASS) {
                st = kiln_errorf(KILN_ERR_FORMAT, "%s: %s[%" PRId64 "] = %" PRId64 " is not a "
                                 "class index (0 to %d)", path, pr.y, i, ytmp[i],
                                 H5_MAX_CLASS - 1);
                goto cleanup;
            }
            yi[i] = (int32_t)ytmp[i];
            if (yi[i] > *max_label) *max_label = yi[i];
        }
    }
    st = data_split_wrap(n, feat_ndim, fshape, xdt, X, *y_int ? KILN_DTYPE_I32 : KILN_DTYPE_F32,
                         ydim, y, out);
    X = y = NULL;
cleanup:
    free(X);
    free(y);
    free(ytmp);
    h5_array_close(&ya);
    h5_array_close(&xa);
    return st;
}

enum kiln_status data_import_h5(const struct kiln_import_options *opt, struct kiln_dataset *ds)
{
    enum kiln_status st = KILN_OK;
    const char *path = opt->h5;
    hid_t file = -1;
    struct h5_pair pairs[KILN_SPLIT_COUNT] = {{0}};
    char **names = NULL;
    int n_names = 0;
    h5_quiet();
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (S_ISDIR(sb.st_mode) || H5Fis_hdf5(path) <= 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: not an HDF5 file", path);
        goto cleanup;
    }
    file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: cannot be opened as HDF5 (truncated or corrupt)",
                         path);
        goto cleanup;
    }
    const char *ydef = opt->h5_y ? opt->h5_y : "y";
    if (opt->h5_x) {
        pairs[KILN_SPLIT_TRAIN] = (struct h5_pair){opt->h5_x, ydef};
    } else if (h5_path_exists(file, "X")) {
        pairs[KILN_SPLIT_TRAIN] = (struct h5_pair){"X", ydef};
    } else if (h5_path_exists(file, "train/X")) {
        pairs[KILN_SPLIT_TRAIN] = (struct h5_pair){"train/X", "train/y"};
        if (h5_path_exists(file, "val/X")) pairs[KILN_SPLIT_VAL] = (struct h5_pair){"val/X", "val/y"};
        if (h5_path_exists(file, "test/X"))
            pairs[KILN_SPLIT_TEST] = (struct h5_pair){"test/X", "test/y"};
    } else {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: no array 'X' or 'train/X' (name the arrays to "
                         "import with --x and --y)", path);
        goto cleanup;
    }
    if (opt->h5_test_x || opt->h5_test_y) {
        if (!opt->h5_test_x || !opt->h5_test_y) {
            st = kiln_errorf(KILN_ERR_USAGE, "%s: give both test arrays (X and y) or neither",
                             path);
            goto cleanup;
        }
        pairs[KILN_SPLIT_TEST] = (struct h5_pair){opt->h5_test_x, opt->h5_test_y};
    }
    int max_label = -1, kind = -1; /* kind: 1 integer labels, 0 float targets */
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        if (!pairs[i].x) continue;
        bool y_int = false;
        st = read_pair(file, path, pairs[i], &ds->splits[i], &y_int, &max_label);
        if (st != KILN_OK) goto cleanup;
        if (kind >= 0 && kind != (int)y_int) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' holds %s but the train labels are %s",
                             path, pairs[i].y, y_int ? "integers" : "floats",
                             kind ? "integers" : "floats");
            goto cleanup;
        }
        kind = y_int;
    }
    if (kind == 1) {
        /* A kiln dataset (or a file written like one) names its classes. */
        if (!opt->classes && h5_attr_exists(file, "classes") &&
            h5_attr_read_strs(file, "classes", &names, &n_names) == KILN_OK &&
            n_names >= max_label + 1) {
            ds->classes = names;
            ds->n_classes = n_names;
            names = NULL;
        } else {
            st = data_classes_make(opt->classes, max_label + 1, &ds->classes, &ds->n_classes);
            if (st != KILN_OK) goto cleanup;
        }
    }
    kiln_clear_error();
    if (h5_attr_exists(file, "feature_names")) {
        strv_free(names, n_names);
        names = NULL;
        if (h5_attr_read_strs(file, "feature_names", &names, &n_names) == KILN_OK &&
            n_names == ds->splits[KILN_SPLIT_TRAIN]->feat_size) {
            ds->feature_names = names;
            ds->n_features = n_names;
            names = NULL;
        }
        kiln_clear_error();
    }
    char src[8192];
    int used = snprintf(src, sizeof src, "hdf5: %s (%s, %s", path, pairs[0].x, pairs[0].y);
    for (int i = 1; i < KILN_SPLIT_COUNT && used > 0 && used < (int)sizeof src; i++)
        if (pairs[i].x)
            used += snprintf(src + used, sizeof src - (size_t)used, "; %s %s, %s",
                             kiln_split_name(i), pairs[i].x, pairs[i].y);
    if (used > 0 && used < (int)sizeof src) snprintf(src + used, sizeof src - (size_t)used, ")");
    st = str_dup(src, &ds->source);
cleanup:
    strv_free(names, n_names);
    if (file >= 0) H5Fclose(file);
    return st;
}
