/* engine/data/dataset.c: the in-memory dataset, its content hash, the HDF5
 * dataset file (docs/FORMATS.md, "Dataset file"), `data show`, and
 * kiln_data_import, which dispatches to the importers. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "data-internal.h"
#include "elementwise.h"
#include "kiln/data.h"

/* The hash is defined over little-endian bytes; hashing the arrays as they
 * lie in memory is only right on a little-endian host. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kiln's dataset hash assumes a little-endian host"
#endif

#define DATASET_FORMAT "dataset"
#define DATASET_FORMAT_VERSION 1
/* Rows per chunk are chosen so that a chunk holds about this many bytes:
 * large enough that a whole-array read is a few dozen big reads, small
 * enough that a row-range read does not pull in much more than it needs. */
#define DATASET_CHUNK_BYTES (1 << 20)
/* Splits, shapes and names beyond these are not a dataset kiln made. */
#define DATASET_MAX_NAMES (1 << 24)

static const char *const split_names[KILN_SPLIT_COUNT] = {"train", "val", "test"};

const char *kiln_split_name(enum kiln_split_id id)
{
    return (unsigned)id < KILN_SPLIT_COUNT ? split_names[id] : "?";
}

enum kiln_status kiln_split_parse(const char *name, enum kiln_split_id *out)
{
    for (int i = 0; i < KILN_SPLIT_COUNT; i++)
        if (name && strcmp(name, split_names[i]) == 0) {
            *out = (enum kiln_split_id)i;
            return KILN_OK;
        }
    return kiln_errorf(KILN_ERR_USAGE, "unknown split '%s' (expected train, val or test)",
                       name ? name : "(null)");
}

size_t kiln_dtype_size(enum kiln_dtype dt)
{
    switch (dt) {
    case KILN_DTYPE_U8: return 1;
    case KILN_DTYPE_I32: return 4;
    case KILN_DTYPE_F32: return 4;
    }
    return 0;
}

/* numpy's names: the hash stream and `data show` both use them. */
static const char *dtype_tag(enum kiln_dtype dt)
{
    switch (dt) {
    case KILN_DTYPE_U8: return "uint8";
    case KILN_DTYPE_I32: return "int32";
    case KILN_DTYPE_F32: return "float32";
    }
    return "?";
}

/* --- splits ------------------------------------------------------------------ */

/* Validates the shape arguments shared by split_create and split_wrap and
 * returns the element counts, refusing sizes whose byte counts overflow. */
static enum kiln_status split_shape_check(int64_t n, int feat_ndim, const int64_t *feat_shape,
                                          enum kiln_dtype x_dtype, enum kiln_dtype y_dtype,
                                          int64_t y_dim, int64_t *feat_size)
{
    if (n < 0 || feat_ndim < 1 || feat_ndim > 3 || y_dim < 1)
        return kiln_errorf(KILN_ERR_INTERNAL, "split: bad shape (n %" PRId64 ", feature rank %d)",
                           n, feat_ndim);
    if (x_dtype == KILN_DTYPE_I32 || (y_dtype == KILN_DTYPE_U8) ||
        (y_dtype == KILN_DTYPE_I32 && y_dim != 1))
        return kiln_errorf(KILN_ERR_INTERNAL, "split: X must be uint8 or float32, y int32 [n] "
                                              "or float32 [n, k]");
    int64_t fs = 1;
    for (int i = 0; i < feat_ndim; i++) {
        if (feat_shape[i] < 1 || feat_shape[i] > ((int64_t)1 << 40) / fs)
            return kiln_errorf(KILN_ERR_FORMAT, "split: feature dimension %d is %" PRId64, i,
                               feat_shape[i]);
        fs *= feat_shape[i];
    }
    if (n > 0 && (fs > (INT64_MAX / 8) / n || y_dim > (INT64_MAX / 8) / n))
        return kiln_errorf(KILN_ERR_NOMEM, "split: %" PRId64 " rows of %" PRId64
                                           " features do not fit in memory", n, fs);
    *feat_size = fs;
    return KILN_OK;
}

enum kiln_status kiln_split_create(int64_t n, int feat_ndim, const int64_t *feat_shape,
                                   enum kiln_dtype x_dtype, enum kiln_dtype y_dtype,
                                   int64_t y_dim, struct kiln_split **out)
{
    *out = NULL;
    int64_t fs = 0;
    enum kiln_status st =
        split_shape_check(n, feat_ndim, feat_shape, x_dtype, y_dtype, y_dim, &fs);
    if (st != KILN_OK) return st;
    /* +1 so that an empty split still has buffers to point at. */
    void *X = calloc((size_t)(n * fs) + 1, kiln_dtype_size(x_dtype));
    void *y = calloc((size_t)(n * y_dim) + 1, kiln_dtype_size(y_dtype));
    if (!X || !y) {
        free(X);
        free(y);
        return kiln_errorf(KILN_ERR_NOMEM, "split: out of memory for %" PRId64 " rows", n);
    }
    return data_split_wrap(n, feat_ndim, feat_shape, x_dtype, X, y_dtype, y_dim, y, out);
}

enum kiln_status data_split_wrap(int64_t n, int feat_ndim, const int64_t *feat_shape,
                                 enum kiln_dtype x_dtype, void *X, enum kiln_dtype y_dtype,
                                 int64_t y_dim, void *y, struct kiln_split **out)
{
    *out = NULL;
    int64_t fs = 0;
    enum kiln_status st =
        split_shape_check(n, feat_ndim, feat_shape, x_dtype, y_dtype, y_dim, &fs);
    struct kiln_split *s = NULL;
    if (st != KILN_OK) goto cleanup;
    s = calloc(1, sizeof *s);
    if (!s) {
        st = kiln_errorf(KILN_ERR_NOMEM, "split: out of memory");
        goto cleanup;
    }
    s->n = n;
    s->feat_ndim = feat_ndim;
    for (int i = 0; i < feat_ndim; i++) s->feat_shape[i] = feat_shape[i];
    s->feat_size = fs;
    s->x_dtype = x_dtype;
    s->X = X;
    s->y_dtype = y_dtype;
    s->y_dim = y_dim;
    s->y = y;
    *out = s;
cleanup:
    if (st != KILN_OK) {
        free(X);
        free(y);
    }
    return st;
}

void kiln_split_free(struct kiln_split *s)
{
    if (!s) return;
    free(s->X);
    free(s->y);
    strv_free(s->hashed_names, s->n_hashed);
    strv_free(s->hashed, s->n_hashed);
    free(s);
}

void kiln_dataset_free(struct kiln_dataset *ds)
{
    if (!ds) return;
    free(ds->name);
    free(ds->source);
    free(ds->created);
    free(ds->parent);
    free(ds->transforms);
    strv_free(ds->classes, ds->n_classes);
    strv_free(ds->feature_names, ds->n_features);
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) kiln_split_free(ds->splits[i]);
    free(ds);
}

/* "train/X[12, 5] ('age')": where a bad value sits, with the feature's name
 * when the dataset has names. */
static void value_where(char *buf, size_t len, const struct kiln_dataset *ds, const char *split,
                        const char *array, int64_t row, int64_t col, bool named)
{
    if (named && ds->feature_names && col < ds->n_features)
        snprintf(buf, len, "%s/%s[%" PRId64 ", %" PRId64 "] (column '%s')", split, array, row,
                 col, ds->feature_names[col]);
    else
        snprintf(buf, len, "%s/%s[%" PRId64 ", %" PRId64 "]", split, array, row, col);
}

enum kiln_status data_check_split(const struct kiln_dataset *ds, enum kiln_split_id id)
{
    const struct kiln_split *s = ds->splits[id];
    const char *name = kiln_split_name(id);
    char where[512];
    if (!s || !s->X || !s->y) return KILN_OK;
    if (ds->n_classes > 0 && (s->y_dtype != KILN_DTYPE_I32 || s->y_dim != 1))
        return kiln_errorf(KILN_ERR_FORMAT, "%s/y must be int32 class indices [n] for a dataset "
                           "with %d classes", name, ds->n_classes);
    if (ds->n_classes == 0 && s->y_dtype == KILN_DTYPE_I32)
        return kiln_errorf(KILN_ERR_FORMAT, "%s/y holds int32 class indices but the dataset "
                           "lists no classes", name);
    if (ds->n_features > 0 && ds->n_features != s->feat_size)
        return kiln_errorf(KILN_ERR_FORMAT, "%d feature names for %" PRId64 " features in %s/X",
                           ds->n_features, s->feat_size, name);
    if (s->x_dtype == KILN_DTYPE_F32) {
        const float *X = s->X;
        int64_t total = s->n * s->feat_size;
        for (int64_t i = 0; i < total; i++)
            if (!isfinite(X[i])) {
                value_where(where, sizeof where, ds, name, "X", i / s->feat_size,
                            i % s->feat_size, true);
                return kiln_errorf(KILN_ERR_FORMAT, "%s is %s (row %" PRId64 ", column %" PRId64
                                   ")", where, isnan(X[i]) ? "NaN" : "Inf", i / s->feat_size,
                                   i % s->feat_size);
            }
    }
    if (s->y_dtype == KILN_DTYPE_I32) {
        const int32_t *y = s->y;
        for (int64_t i = 0; i < s->n; i++)
            if (y[i] < 0 || y[i] >= ds->n_classes)
                return kiln_errorf(KILN_ERR_FORMAT, "%s/y[%" PRId64 "] = %d is not a class index "
                                   "in [0, %d) (row %" PRId64 ")", name, i, (int)y[i],
                                   ds->n_classes, i);
    } else {
        const float *y = s->y;
        for (int64_t i = 0; i < s->n * s->y_dim; i++)
            if (!isfinite(y[i])) {
                value_where(where, sizeof where, ds, name, "y", i / s->y_dim, i % s->y_dim,
                            false);
                return kiln_errorf(KILN_ERR_FORMAT, "%s is %s (row %" PRId64 ", column %" PRId64
                                   ")", where, isnan(y[i]) ? "NaN" : "Inf", i / s->y_dim,
                                   i % s->y_dim);
            }
    }
    return KILN_OK;
}

/* Gathers the rows flagged (or not flagged) in pick, in order, into a new
 * split with s's shapes. */
static enum kiln_status split_gather(const struct kiln_split *s, const uint8_t *pick, bool want,
                                     int64_t count, struct kiln_split **out)
{
    enum kiln_status st = kiln_split_create(count, s->feat_ndim, s->feat_shape, s->x_dtype,
                                            s->y_dtype, s->y_dim, out);
    if (st != KILN_OK) return st;
    size_t xrow = (size_t)s->feat_size * kiln_dtype_size(s->x_dtype);
    size_t yrow = (size_t)s->y_dim * kiln_dtype_size(s->y_dtype);
    /* Hashed identifier columns travel with their rows. */
    struct kiln_split *o = *out;
    if (s->n_hashed > 0) {
        o->hashed_names = calloc((size_t)s->n_hashed, sizeof *o->hashed_names);
        o->hashed = calloc((size_t)s->n_hashed, sizeof *o->hashed);
        if (!o->hashed_names || !o->hashed) st = kiln_errorf(KILN_ERR_NOMEM, "split: out of memory");
        for (int c = 0; st == KILN_OK && c < s->n_hashed; c++) {
            o->n_hashed = c + 1;
            st = str_dup(s->hashed_names[c], &o->hashed_names[c]);
            o->hashed[c] = malloc((size_t)count * 64 + 1);
            if (st == KILN_OK && !o->hashed[c])
                st = kiln_errorf(KILN_ERR_NOMEM, "split: out of memory");
        }
        if (st != KILN_OK) {
            kiln_split_free(o);
            *out = NULL;
            return st;
        }
    }
    int64_t j = 0;
    for (int64_t i = 0; i < s->n; i++) {
        if ((pick[i] != 0) != want) continue;
        memcpy((char *)o->X + j * xrow, (const char *)s->X + i * xrow, xrow);
        memcpy((char *)o->y + j * yrow, (const char *)s->y + i * yrow, yrow);
        for (int c = 0; c < s->n_hashed; c++) memcpy(o->hashed[c] + j * 64, s->hashed[c] + i * 64, 64);
        j++;
    }
    KILN_ASSERT(j == count);
    return KILN_OK;
}

/* Fisher-Yates over idx[0..m) with a counter-based stream, so the result
 * depends only on (seed, m) and not on any global RNG state. */
static void shuffle_indices(int64_t *idx, int64_t m, uint64_t seed)
{
    for (int64_t i = m - 1; i > 0; i--) {
        int64_t j = (int64_t)(kiln_rng_hash(seed, (uint64_t)i) % (uint64_t)(i + 1));
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

enum kiln_status data_split_holdout(struct kiln_dataset *ds, double fraction, uint64_t seed)
{
    enum kiln_status st = KILN_OK;
    struct kiln_split *s = ds->splits[KILN_SPLIT_TRAIN];
    int64_t *idx = NULL, *start = NULL;
    uint8_t *pick = NULL;
    struct kiln_split *train = NULL, *test = NULL;
    if (!(fraction > 0.0 && fraction < 1.0)) {
        st = kiln_errorf(KILN_ERR_USAGE, "test fraction %g is not in (0, 1)", fraction);
        goto cleanup;
    }
    int64_t n = s->n;
    int k = ds->n_classes > 0 ? ds->n_classes : 1;
    idx = malloc((size_t)(n + 1) * sizeof *idx);
    start = calloc((size_t)k + 1, sizeof *start);
    pick = calloc((size_t)n + 1, 1);
    if (!idx || !start || !pick) {
        st = kiln_errorf(KILN_ERR_NOMEM, "test split: out of memory");
        goto cleanup;
    }
    /* Group row indices by class (a counting sort keeps file order within a
     * class), then shuffle and take round(fraction * count) of each. */
    const int32_t *y = ds->n_classes > 0 ? s->y : NULL;
    for (int64_t i = 0; i < n; i++) start[(y ? y[i] : 0) + 1]++;
    for (int c = 0; c < k; c++) start[c + 1] += start[c];
    int64_t *fill = calloc((size_t)k, sizeof *fill);
    if (!fill) {
        st = kiln_errorf(KILN_ERR_NOMEM, "test split: out of memory");
        goto cleanup;
    }
    for (int64_t i = 0; i < n; i++) {
        int c = y ? y[i] : 0;
        idx[start[c] + fill[c]++] = i;
    }
    free(fill);
    int64_t n_test = 0;
    for (int c = 0; c < k; c++) {
        int64_t m = start[c + 1] - start[c];
        shuffle_indices(idx + start[c], m, y ? kiln_rng_hash(seed, (uint64_t)c) : seed);
        int64_t take = llround(fraction * (double)m);
        for (int64_t j = 0; j < take; j++) pick[idx[start[c] + j]] = 1;
        n_test += take;
    }
    if (n_test == 0 || n_test == n) {
        st = kiln_errorf(KILN_ERR_USAGE, "test fraction %g of %" PRId64 " rows leaves the %s "
                         "split empty", fraction, n, n_test == 0 ? "test" : "train");
        goto cleanup;
    }
    st = split_gather(s, pick, false, n - n_test, &train);
    if (st == KILN_OK) st = split_gather(s, pick, true, n_test, &test);
    if (st != KILN_OK) goto cleanup;
    kiln_split_free(ds->splits[KILN_SPLIT_TRAIN]);
    kiln_split_free(ds->splits[KILN_SPLIT_TEST]);
    ds->splits[KILN_SPLIT_TRAIN] = train;
    ds->splits[KILN_SPLIT_TEST] = test;
    train = test = NULL;
cleanup:
    kiln_split_free(train);
    kiln_split_free(test);
    free(idx);
    free(start);
    free(pick);
    return st;
}

enum kiln_status data_classes_make(const char *list, int min_k, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    enum kiln_status st = KILN_OK;
    char **v = NULL;
    int count = 0;
    if (!list) {
        v = calloc((size_t)min_k + 1, sizeof *v);
        if (!v) return kiln_errorf(KILN_ERR_NOMEM, "classes: out of memory");
        for (count = 0; count < min_k; count++) {
            char num[16];
            snprintf(num, sizeof num, "%d", count);
            st = str_dup(num, &v[count]);
            if (st != KILN_OK) goto cleanup;
        }
    } else {
        st = str_split_list(list, "classes", &v, &count);
        if (st != KILN_OK) return st;
        for (int i = 0; i < count; i++)
            for (int j = 0; j < i; j++)
                if (strcmp(v[j], v[i]) == 0) {
                    st = kiln_errorf(KILN_ERR_USAGE, "classes: '%s' is listed twice", v[j]);
                    goto cleanup;
                }
        if (count < min_k) {
            st = kiln_errorf(KILN_ERR_USAGE, "classes: %d names given, but the labels go up to "
                             "%d (%d classes)", count, min_k - 1, min_k);
            goto cleanup;
        }
    }
    *out = v;
    *n = count;
    v = NULL;
cleanup:
    strv_free(v, count);
    return st;
}

/* --- content hash ---------------------------------------------------------------- */

static void hash_array(struct sha256_ctx *c, enum kiln_dtype dt, int ndim, const int64_t *shape,
                       const void *data)
{
    const char *tag = dtype_tag(dt);
    sha256_update(c, tag, strlen(tag) + 1);
    int64_t hdr[5];
    int64_t count = 1;
    hdr[0] = ndim;
    for (int i = 0; i < ndim; i++) {
        hdr[i + 1] = shape[i];
        count *= shape[i];
    }
    sha256_update(c, hdr, (size_t)(ndim + 1) * sizeof hdr[0]);
    sha256_update(c, data, (size_t)count * kiln_dtype_size(dt));
}

enum kiln_status kiln_dataset_hash(const struct kiln_dataset *ds, char out[65])
{
    struct sha256_ctx *c = NULL;
    enum kiln_status st = sha256_begin(&c);
    if (st != KILN_OK) return st;
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        const struct kiln_split *s = ds->splits[i];
        if (!s) continue;
        if (!s->X || !s->y) {
            sha256_abort(c);
            return kiln_errorf(KILN_ERR_USAGE, "hash: split %s has no arrays loaded",
                               split_names[i]);
        }
        sha256_update(c, split_names[i], strlen(split_names[i]) + 1);
        int64_t xs[4] = {s->n, s->feat_shape[0], s->feat_shape[1], s->feat_shape[2]};
        hash_array(c, s->x_dtype, 1 + s->feat_ndim, xs, s->X);
        int64_t ys[2] = {s->n, s->y_dim};
        hash_array(c, s->y_dtype, s->y_dtype == KILN_DTYPE_I32 ? 1 : 2, ys, s->y);
    }
    sha256_end(c, out);
    return KILN_OK;
}

/* --- HDF5 file ----------------------------------------------------------------------- */

static hid_t dtype_file_type(enum kiln_dtype dt)
{
    return dt == KILN_DTYPE_U8 ? H5T_STD_U8LE : dt == KILN_DTYPE_I32 ? H5T_STD_I32LE
                                                                      : H5T_IEEE_F32LE;
}

static hid_t dtype_mem_type(enum kiln_dtype dt)
{
    return dt == KILN_DTYPE_U8 ? H5T_NATIVE_UINT8 : dt == KILN_DTYPE_I32 ? H5T_NATIVE_INT32
                                                                          : H5T_NATIVE_FLOAT;
}

/* Writes one array [dims] chunked by rows. */
static enum kiln_status write_array(hid_t grp, const char *split, const char *name,
                                    enum kiln_dtype dt, int rank, const int64_t *dims,
                                    const void *data)
{
    enum kiln_status st = KILN_OK;
    hid_t space = -1, dcpl = -1, d = -1;
    hsize_t hd[4], chunk[4];
    size_t row_bytes = kiln_dtype_size(dt);
    for (int i = 0; i < rank; i++) {
        hd[i] = (hsize_t)dims[i];
        chunk[i] = hd[i];
        if (i > 0) row_bytes *= (size_t)dims[i];
    }
    space = H5Screate_simple(rank, hd, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    bool ok = space >= 0 && dcpl >= 0;
    /* An empty array cannot be chunked (chunks must not exceed fixed dims). */
    if (ok && dims[0] > 0) {
        size_t rows = DATASET_CHUNK_BYTES / row_bytes;
        if (rows < 1) rows = 1;
        chunk[0] = rows < hd[0] ? rows : hd[0];
        ok = H5Pset_chunk(dcpl, rank, chunk) >= 0;
    }
    if (ok) d = H5Dcreate2(grp, name, dtype_file_type(dt), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    ok = ok && d >= 0 &&
         (dims[0] == 0 ||
          H5Dwrite(d, dtype_mem_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    if (!ok) st = kiln_errorf(KILN_ERR_IO, "cannot write %s/%s (disk full?)", split, name);
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return st;
}

/* The fixed-length string type of hashed identifiers: 64 hex digits. */
static hid_t hashed_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, 64) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0)) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* /<split>/hashed/<column>: [n] 64-character strings (docs/FORMATS.md). */
static enum kiln_status write_hashed(hid_t split_grp, const struct kiln_split *s, const char *name)
{
    enum kiln_status st = KILN_OK;
    hid_t g = H5Gcreate2(split_grp, "hashed", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t type = hashed_type();
    hsize_t n = (hsize_t)s->n;
    hid_t space = H5Screate_simple(1, &n, NULL);
    if (g < 0 || type < 0 || space < 0) st = kiln_errorf(KILN_ERR_IO, "cannot create /%s/hashed", name);
    for (int c = 0; c < s->n_hashed && st == KILN_OK; c++) {
        hid_t d = H5Dcreate2(g, s->hashed_names[c], type, space, H5P_DEFAULT, H5P_DEFAULT,
                             H5P_DEFAULT);
        if (d < 0 || (n > 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->hashed[c]) < 0))
            st = kiln_errorf(KILN_ERR_IO, "cannot write /%s/hashed/%s (disk full?)", name,
                             s->hashed_names[c]);
        if (d >= 0) H5Dclose(d);
    }
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (g >= 0) H5Gclose(g);
    return st;
}

/* Reads /<split>/hashed/ when present: every member must be [n] 64-character
 * strings. Without want_data only the names (hashed[c] stay NULL). */
static enum kiln_status read_hashed(hid_t split_grp, const char *name, struct kiln_split *s,
                                    bool want_data)
{
    if (H5Lexists(split_grp, "hashed", H5P_DEFAULT) <= 0) return KILN_OK;
    enum kiln_status st = KILN_OK;
    hid_t g = H5Gopen2(split_grp, "hashed", H5P_DEFAULT), type = hashed_type();
    H5G_info_t info;
    if (g < 0 || type < 0 || H5Gget_info(g, &info) < 0 || info.nlinks > 4096) {
        st = kiln_errorf(KILN_ERR_FORMAT, "/%s/hashed is not a readable group", name);
        goto cleanup;
    }
    s->hashed_names = calloc(info.nlinks + 1, sizeof *s->hashed_names);
    s->hashed = calloc(info.nlinks + 1, sizeof *s->hashed);
    if (!s->hashed_names || !s->hashed) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    for (hsize_t c = 0; c < info.nlinks && st == KILN_OK; c++) {
        char col[256];
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, c, col, sizeof col,
                                         H5P_DEFAULT);
        if (len <= 0 || (size_t)len >= sizeof col) {
            st = kiln_errorf(KILN_ERR_FORMAT, "/%s/hashed: member %llu has a bad name", name,
                             (unsigned long long)c);
            break;
        }
        s->n_hashed = (int)c + 1;
        st = str_dup(col, &s->hashed_names[c]);
        if (st != KILN_OK) break;
        struct h5_array a;
        hsize_t dims[2] = {0, 0};
        bool ok = h5_array_open(g, col, &a) && H5Tget_class(a.type) == H5T_STRING &&
                  H5Tis_variable_str(a.type) == 0 && H5Tget_size(a.type) == 64 &&
                  H5Sget_simple_extent_ndims(a.space) == 1 &&
                  H5Sget_simple_extent_dims(a.space, dims, NULL) == 1 && (int64_t)dims[0] == s->n;
        if (ok && want_data) {
            s->hashed[c] = malloc((size_t)s->n * 64 + 1);
            if (!s->hashed[c]) st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            else if (s->n > 0 &&
                     H5Dread(a.d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->hashed[c]) < 0)
                ok = false;
        }
        if (!ok && st == KILN_OK)
            st = kiln_errorf(KILN_ERR_FORMAT, "/%s/hashed/%s must be [%lld] strings of 64 hex "
                             "digits", name, col, (long long)s->n);
        h5_array_close(&a);
    }
cleanup:
    if (type >= 0) H5Tclose(type);
    if (g >= 0) H5Gclose(g);
    return st;
}

static enum kiln_status write_split(hid_t file, const struct kiln_split *s, const char *name)
{
    enum kiln_status st = KILN_OK;
    hid_t g = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return kiln_errorf(KILN_ERR_IO, "cannot create group /%s", name);
    int64_t xs[4] = {s->n, s->feat_shape[0], s->feat_shape[1], s->feat_shape[2]};
    int64_t ys[2] = {s->n, s->y_dim};
    st = write_array(g, name, "X", s->x_dtype, 1 + s->feat_ndim, xs, s->X);
    if (st == KILN_OK)
        st = write_array(g, name, "y", s->y_dtype, s->y_dtype == KILN_DTYPE_I32 ? 1 : 2, ys,
                         s->y);
    if (st == KILN_OK && s->n_hashed > 0) st = write_hashed(g, s, name);
    H5Gclose(g);
    return st;
}

/* Every split must look like train: a model trained on one scores the others. */
static enum kiln_status splits_agree(const struct kiln_dataset *ds)
{
    const struct kiln_split *t = ds->splits[KILN_SPLIT_TRAIN];
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        const struct kiln_split *s = ds->splits[i];
        if (!s || !t) continue;
        bool same = s->feat_ndim == t->feat_ndim && s->x_dtype == t->x_dtype &&
                    s->y_dtype == t->y_dtype && s->y_dim == t->y_dim;
        for (int j = 0; same && j < s->feat_ndim; j++) same = s->feat_shape[j] == t->feat_shape[j];
        if (!same)
            return kiln_errorf(KILN_ERR_FORMAT, "%s's shapes or dtypes differ from train's",
                               split_names[i]);
    }
    return KILN_OK;
}

/* The folder a path lives in ("." for a bare name). */
static void path_dir(const char *path, char *dir, size_t len)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(dir, len, "%s", dirname(tmp));
}

enum kiln_status kiln_dataset_save(struct kiln_dataset *ds, const char *path)
{
    enum kiln_status st = KILN_OK;
    hid_t file = -1, fapl = -1;
    char tmp[4200], dir[4096];
    bool tmp_made = false;
    h5_quiet();
    if (!ds->splits[KILN_SPLIT_TRAIN]) {
        st = kiln_errorf(KILN_ERR_USAGE, "the dataset has no train split");
        goto cleanup;
    }
    st = splits_agree(ds);
    for (int i = 0; i < KILN_SPLIT_COUNT && st == KILN_OK; i++) st = data_check_split(ds, i);
    if (st != KILN_OK) goto cleanup;
    /* Check the folder first so the error names it rather than a temp file. */
    path_dir(path, dir, sizeof dir);
    st = fs_check_writable_dir(dir);
    if (st != KILN_OK) goto cleanup;
    st = kiln_dataset_hash(ds, ds->sha256);
    if (st != KILN_OK) goto cleanup;
    if (!ds->created || !ds->created[0]) {
        char now[32];
        time_iso8601(now);
        free(ds->created);
        st = str_dup(now, &ds->created);
        if (st != KILN_OK) goto cleanup;
    }
    st = fs_temp_path(path, tmp, sizeof tmp);
    if (st != KILN_OK) goto cleanup;
    fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* The 1.10 file format checksums its metadata (object headers, chunk
     * indexes), so a damaged header is a read error instead of garbage that
     * HDF5 would parse; every HDF5 since 1.10 (2016) and h5py read it. */
    if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0) {
        st = kiln_errorf(KILN_ERR_INTERNAL, "HDF5: cannot set the file format version");
        goto cleanup;
    }
    file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (file < 0) {
        st = kiln_errorf(KILN_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    tmp_made = true;
    st = h5_attr_write_str(file, "kiln_format", DATASET_FORMAT);
    if (st == KILN_OK) st = h5_attr_write_i64(file, "kiln_format_version", DATASET_FORMAT_VERSION);
    if (st == KILN_OK) st = h5_attr_write_str(file, "name", ds->name ? ds->name : "");
    if (st == KILN_OK && ds->n_classes > 0)
        st = h5_attr_write_strs(file, "classes", ds->classes, ds->n_classes);
    if (st == KILN_OK && ds->n_features > 0)
        st = h5_attr_write_strs(file, "feature_names", ds->feature_names, ds->n_features);
    if (st == KILN_OK) st = h5_attr_write_str(file, "source", ds->source ? ds->source : "");
    if (st == KILN_OK) st = h5_attr_write_str(file, "created", ds->created);
    if (st == KILN_OK && ds->parent && ds->parent[0])
        st = h5_attr_write_str(file, "parent", ds->parent);
    if (st == KILN_OK && ds->transforms && ds->transforms[0])
        st = h5_attr_write_str(file, "transforms", ds->transforms);
    if (st == KILN_OK) st = h5_attr_write_str(file, "sha256", ds->sha256);
    for (int i = 0; i < KILN_SPLIT_COUNT && st == KILN_OK; i++)
        if (ds->splits[i]) st = write_split(file, ds->splits[i], split_names[i]);
    if (st != KILN_OK) goto cleanup;
    /* Closing flushes the metadata: its failure is a failed write. */
    herr_t rc = H5Fclose(file);
    file = -1;
    if (rc < 0) {
        st = kiln_errorf(KILN_ERR_IO, "cannot finish writing %s (disk full?)", tmp);
        goto cleanup;
    }
    st = fs_publish(tmp, path);
    tmp_made = false; /* fs_publish removes the temp file itself on failure */
cleanup:
    if (file >= 0) H5Fclose(file);
    if (fapl >= 0) H5Pclose(fapl);
    if (tmp_made) unlink(tmp);
    if (st != KILN_OK) kiln_error_context(st, "saving dataset %s", path);
    return st;
}

/* Reads one split's shapes (and arrays when want_arrays). */
static enum kiln_status read_split(hid_t file, const char *name, bool want_arrays,
                                   struct kiln_split **out)
{
    enum kiln_status st = KILN_OK;
    hid_t g = -1;
    struct h5_array x = H5_ARRAY_INIT, y = H5_ARRAY_INIT;
    hsize_t xd[8], yd[8];
    struct kiln_split *s = NULL;
    *out = NULL;
    g = H5Gopen2(file, name, H5P_DEFAULT);
    if (g < 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "/%s is not a group", name);
        goto cleanup;
    }
    if (H5Lexists(g, "X", H5P_DEFAULT) <= 0 || H5Lexists(g, "y", H5P_DEFAULT) <= 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "/%s lacks X or y", name);
        goto cleanup;
    }
    bool x_ok = h5_array_open(g, "X", &x), y_ok = h5_array_open(g, "y", &y);
    if (!x_ok || !y_ok) {
        st = kiln_errorf(KILN_ERR_FORMAT, "/%s/X or /%s/y cannot be opened", name, name);
        goto cleanup;
    }
    int xr = H5Sget_simple_extent_ndims(x.space), yr = H5Sget_simple_extent_ndims(y.space);
    if (xr < 2 || xr > 4 || yr < 1 || yr > 2) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s/X has rank %d (expected 2 to 4) or %s/y rank %d "
                         "(expected 1 or 2)", name, xr, name, yr);
        goto cleanup;
    }
    H5Sget_simple_extent_dims(x.space, xd, NULL);
    H5Sget_simple_extent_dims(y.space, yd, NULL);
    enum kiln_dtype xdt, ydt;
    if (H5Tget_class(x.type) == H5T_INTEGER && H5Tget_size(x.type) == 1 &&
        H5Tget_sign(x.type) == H5T_SGN_NONE)
        xdt = KILN_DTYPE_U8;
    else if (H5Tget_class(x.type) == H5T_FLOAT && H5Tget_size(x.type) == 4)
        xdt = KILN_DTYPE_F32;
    else {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s/X must be uint8 or float32", name);
        goto cleanup;
    }
    if (yr == 1 && H5Tget_class(y.type) == H5T_INTEGER && H5Tget_size(y.type) == 4 &&
        H5Tget_sign(y.type) == H5T_SGN_2)
        ydt = KILN_DTYPE_I32;
    else if (yr == 2 && H5Tget_class(y.type) == H5T_FLOAT && H5Tget_size(y.type) == 4)
        ydt = KILN_DTYPE_F32;
    else {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s/y must be int32 [n] (classes) or float32 [n, k] "
                         "(targets)", name);
        goto cleanup;
    }
    if (xd[0] != yd[0]) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s/X has %llu rows but %s/y has %llu", name,
                         (unsigned long long)xd[0], name, (unsigned long long)yd[0]);
        goto cleanup;
    }
    int64_t fshape[3] = {1, 1, 1};
    for (int i = 1; i < xr; i++) fshape[i - 1] = (int64_t)xd[i];
    int64_t ydim = yr == 2 ? (int64_t)yd[1] : 1;
    if (want_arrays) {
        st = kiln_split_create((int64_t)xd[0], xr - 1, fshape, xdt, ydt, ydim, &s);
        if (st != KILN_OK) goto cleanup;
        if (s->n > 0 &&
            (H5Dread(x.d, dtype_mem_type(xdt), H5S_ALL, H5S_ALL, H5P_DEFAULT, s->X) < 0 ||
             H5Dread(y.d, dtype_mem_type(ydt), H5S_ALL, H5S_ALL, H5P_DEFAULT, s->y) < 0)) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s/X or %s/y cannot be read (truncated or "
                             "corrupt file)", name, name);
            goto cleanup;
        }
        st = read_hashed(g, name, s, true);
        if (st != KILN_OK) goto cleanup;
    } else {
        /* data_split_wrap frees what it is given; a header split owns nothing. */
        int64_t fs = 0;
        st = split_shape_check((int64_t)xd[0], xr - 1, fshape, xdt, ydt, ydim, &fs);
        if (st != KILN_OK) goto cleanup;
        s = calloc(1, sizeof *s);
        if (!s) {
            st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        s->n = (int64_t)xd[0];
        s->feat_ndim = xr - 1;
        memcpy(s->feat_shape, fshape, sizeof fshape);
        s->feat_size = fs;
        s->x_dtype = xdt;
        s->y_dtype = ydt;
        s->y_dim = ydim;
        st = read_hashed(g, name, s, false);
        if (st != KILN_OK) goto cleanup;
    }
    *out = s;
    s = NULL;
cleanup:
    kiln_split_free(s);
    h5_array_close(&y);
    h5_array_close(&x);
    if (g >= 0) H5Gclose(g);
    return st;
}

/* Reads an optional string attribute: absent gives NULL. */
static enum kiln_status attr_str_opt(hid_t file, const char *name, char **out)
{
    *out = NULL;
    return h5_attr_exists(file, name) ? h5_attr_read_str(file, name, out) : KILN_OK;
}

static enum kiln_status dataset_read(const char *path, bool want_arrays,
                                     struct kiln_dataset **out)
{
    enum kiln_status st = KILN_OK;
    struct kiln_dataset *ds = NULL;
    hid_t file = -1;
    char *fmt = NULL, *sha = NULL;
    *out = NULL;
    h5_quiet();
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = kiln_errorf(KILN_ERR_IO, "%s", strerror(errno));
        goto cleanup;
    }
    if (S_ISDIR(sb.st_mode)) {
        st = kiln_errorf(KILN_ERR_IO, "is a folder, not a dataset file");
        goto cleanup;
    }
    if (access(path, R_OK) != 0) {
        st = kiln_errorf(KILN_ERR_IO, "%s", strerror(errno));
        goto cleanup;
    }
    if (H5Fis_hdf5(path) <= 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "not an HDF5 file (or its first bytes are damaged)");
        goto cleanup;
    }
    file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "cannot be opened as HDF5 (truncated or corrupt file)");
        goto cleanup;
    }
    ds = calloc(1, sizeof *ds);
    if (!ds) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    if (!h5_attr_exists(file, "kiln_format")) {
        st = kiln_errorf(KILN_ERR_FORMAT, "not a kiln dataset (no 'kiln_format' attribute)");
        goto cleanup;
    }
    st = h5_attr_read_str(file, "kiln_format", &fmt);
    if (st != KILN_OK) goto cleanup;
    if (strcmp(fmt, DATASET_FORMAT) != 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "is a kiln '%s' file, not a dataset", fmt);
        goto cleanup;
    }
    int64_t version = 0;
    st = h5_attr_read_i64(file, "kiln_format_version", &version);
    if (st != KILN_OK) goto cleanup;
    if (version > DATASET_FORMAT_VERSION) {
        st = kiln_errorf(KILN_ERR_FORMAT, "dataset format version %" PRId64 " is newer than this "
                         "kiln reads (up to %d): upgrade kiln", version, DATASET_FORMAT_VERSION);
        goto cleanup;
    }
    if (version < 1) {
        st = kiln_errorf(KILN_ERR_FORMAT, "bad kiln_format_version %" PRId64, version);
        goto cleanup;
    }
    st = attr_str_opt(file, "name", &ds->name);
    if (st == KILN_OK) st = attr_str_opt(file, "source", &ds->source);
    if (st == KILN_OK) st = attr_str_opt(file, "created", &ds->created);
    if (st == KILN_OK) st = attr_str_opt(file, "parent", &ds->parent);
    if (st == KILN_OK) st = attr_str_opt(file, "transforms", &ds->transforms);
    if (st == KILN_OK) st = h5_attr_read_str(file, "sha256", &sha);
    if (st == KILN_OK && h5_attr_exists(file, "classes"))
        st = h5_attr_read_strs(file, "classes", &ds->classes, &ds->n_classes);
    if (st == KILN_OK && h5_attr_exists(file, "feature_names"))
        st = h5_attr_read_strs(file, "feature_names", &ds->feature_names, &ds->n_features);
    if (st != KILN_OK) goto cleanup;
    if (strlen(sha) != 64) {
        st = kiln_errorf(KILN_ERR_FORMAT, "attribute 'sha256' is not 64 hex digits");
        goto cleanup;
    }
    memcpy(ds->sha256, sha, 65);
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        htri_t has = H5Lexists(file, split_names[i], H5P_DEFAULT);
        if (has <= 0) continue;
        st = read_split(file, split_names[i], want_arrays, &ds->splits[i]);
        if (st != KILN_OK) goto cleanup;
    }
    if (!ds->splits[KILN_SPLIT_TRAIN]) {
        st = kiln_errorf(KILN_ERR_FORMAT, "no /train split");
        goto cleanup;
    }
    st = splits_agree(ds);
    if (st != KILN_OK) goto cleanup;
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        const struct kiln_split *s = ds->splits[i];
        if (!s) continue;
        if (!want_arrays) {
            /* Header-only: the task checks data_check_split makes on arrays. */
            if ((ds->n_classes > 0) != (s->y_dtype == KILN_DTYPE_I32)) {
                st = kiln_errorf(KILN_ERR_FORMAT, "%s/y is %s but the file lists %d classes",
                                 split_names[i], dtype_tag(s->y_dtype), ds->n_classes);
                goto cleanup;
            }
            continue;
        }
        st = data_check_split(ds, i);
        if (st != KILN_OK) goto cleanup;
    }
    if (want_arrays) {
        char got[65];
        st = kiln_dataset_hash(ds, got);
        if (st != KILN_OK) goto cleanup;
        if (strcmp(got, ds->sha256) != 0) {
            st = kiln_errorf(KILN_ERR_FORMAT, "content hash mismatch: the file says sha256 %s "
                             "but its arrays hash to %s (corrupt or modified file)", ds->sha256,
                             got);
            goto cleanup;
        }
    }
    *out = ds;
    ds = NULL;
cleanup:
    free(fmt);
    free(sha);
    kiln_dataset_free(ds);
    if (file >= 0) H5Fclose(file);
    if (st != KILN_OK) kiln_error_context(st, "%s", path);
    return st;
}

enum kiln_status kiln_dataset_load(const char *path, struct kiln_dataset **out)
{
    return dataset_read(path, true, out);
}

enum kiln_status kiln_dataset_load_header(const char *path, struct kiln_dataset **out)
{
    return dataset_read(path, false, out);
}

/* --- describe -------------------------------------------------------------------------- */

#define DESCRIBE_MAX_FEATURES 16
#define DESCRIBE_MAX_CLASSES 100

static void print_shape(FILE *out, const char *dt, int64_t n, int ndim, const int64_t *shape)
{
    fprintf(out, "%s [%" PRId64, dt, n);
    for (int i = 0; i < ndim; i++) fprintf(out, ", %" PRId64, shape[i]);
    fprintf(out, "]");
}

static double x_at(const struct kiln_split *s, int64_t i)
{
    return s->x_dtype == KILN_DTYPE_U8 ? (double)((const uint8_t *)s->X)[i]
                                       : (double)((const float *)s->X)[i];
}

struct stat_acc {
    double min, max, sum, sq;
    int64_t n;
};

static void describe_balance(FILE *out, const struct kiln_dataset *ds, const struct kiln_split *s)
{
    int64_t *count = calloc((size_t)ds->n_classes, sizeof *count);
    if (!count) return;
    const int32_t *y = s->y;
    for (int64_t i = 0; i < s->n; i++)
        if (y[i] >= 0 && y[i] < ds->n_classes) count[y[i]]++;
    fprintf(out, "  class balance:");
    int shown = ds->n_classes < DESCRIBE_MAX_CLASSES ? ds->n_classes : DESCRIBE_MAX_CLASSES;
    for (int c = 0; c < shown; c++)
        fprintf(out, "%s %s %" PRId64 " (%.1f%%)", c ? "," : "", ds->classes[c], count[c],
                s->n ? 100.0 * (double)count[c] / (double)s->n : 0.0);
    if (shown < ds->n_classes) fprintf(out, ", ... %d more", ds->n_classes - shown);
    fprintf(out, "\n");
    free(count);
}

static void describe_targets(FILE *out, const struct kiln_split *s)
{
    const float *y = s->y;
    int64_t k = s->y_dim < DESCRIBE_MAX_FEATURES ? s->y_dim : DESCRIBE_MAX_FEATURES;
    for (int64_t j = 0; j < k; j++) {
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < s->n; i++) sum += y[i * s->y_dim + j];
        double mean = s->n ? sum / (double)s->n : 0;
        for (int64_t i = 0; i < s->n; i++) {
            double d = y[i * s->y_dim + j] - mean;
            sq += d * d;
        }
        fprintf(out, "  target %" PRId64 ": mean %.6g std %.6g\n", j, mean,
                s->n ? sqrt(sq / (double)s->n) : 0.0);
    }
}

/* Two passes (mean, then squared deviations) keep the std accurate when the
 * mean is large next to the spread. */
static void describe_features(FILE *out, const struct kiln_dataset *ds, const struct kiln_split *s,
                              const char *split)
{
    int64_t fs = s->feat_size;
    int64_t k = fs < DESCRIBE_MAX_FEATURES ? fs : DESCRIBE_MAX_FEATURES;
    struct stat_acc all = {INFINITY, -INFINITY, 0, 0, 0}, per[DESCRIBE_MAX_FEATURES];
    for (int64_t j = 0; j < k; j++) per[j] = all;
    if (s->n == 0) return;
    for (int64_t i = 0; i < s->n; i++)
        for (int64_t j = 0; j < fs; j++) {
            double v = x_at(s, i * fs + j);
            if (v < all.min) all.min = v;
            if (v > all.max) all.max = v;
            all.sum += v;
            if (j < k) {
                if (v < per[j].min) per[j].min = v;
                if (v > per[j].max) per[j].max = v;
                per[j].sum += v;
            }
        }
    double mean = all.sum / (double)(s->n * fs);
    for (int64_t i = 0; i < s->n; i++)
        for (int64_t j = 0; j < fs; j++) {
            double v = x_at(s, i * fs + j);
            all.sq += (v - mean) * (v - mean);
            if (j < k) {
                double d = v - per[j].sum / (double)s->n;
                per[j].sq += d * d;
            }
        }
    fprintf(out, "features (%s, %" PRId64 " per row, %s values as stored):\n", split, fs,
            dtype_tag(s->x_dtype));
    fprintf(out, "  %-20s %12s %12s %12s %12s\n", "feature", "min", "max", "mean", "std");
    fprintf(out, "  %-20s %12.6g %12.6g %12.6g %12.6g\n", "(all)", all.min, all.max, mean,
            sqrt(all.sq / (double)(s->n * fs)));
    for (int64_t j = 0; j < k; j++) {
        char label[64];
        if (ds->feature_names && j < ds->n_features)
            snprintf(label, sizeof label, "%s", ds->feature_names[j]);
        else
            snprintf(label, sizeof label, "[%" PRId64 "]", j);
        fprintf(out, "  %-20s %12.6g %12.6g %12.6g %12.6g\n", label, per[j].min, per[j].max,
                per[j].sum / (double)s->n, sqrt(per[j].sq / (double)s->n));
    }
    if (k < fs) fprintf(out, "  ... %" PRId64 " more features\n", fs - k);
}

enum kiln_status kiln_dataset_describe(const struct kiln_dataset *ds, FILE *out)
{
    fprintf(out, "name      %s\n", ds->name ? ds->name : "");
    fprintf(out, "sha256    %s\n", ds->sha256[0] ? ds->sha256 : "(not computed)");
    fprintf(out, "source    %s\n", ds->source ? ds->source : "");
    fprintf(out, "created   %s\n", ds->created ? ds->created : "");
    if (ds->parent && ds->parent[0]) fprintf(out, "parent    %s\n", ds->parent);
    if (ds->n_classes > 0) {
        fprintf(out, "classes   %d:", ds->n_classes);
        int shown = ds->n_classes < DESCRIBE_MAX_CLASSES ? ds->n_classes : DESCRIBE_MAX_CLASSES;
        for (int c = 0; c < shown; c++) fprintf(out, "%s %s", c ? "," : "", ds->classes[c]);
        if (shown < ds->n_classes) fprintf(out, ", ... %d more", ds->n_classes - shown);
        fprintf(out, "\n");
    } else {
        fprintf(out, "task      regression\n");
    }
    if (ds->n_features > 0) fprintf(out, "features  %d named\n", ds->n_features);
    const struct kiln_split *first = NULL;
    const char *first_name = NULL;
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        const struct kiln_split *s = ds->splits[i];
        if (!s) continue;
        fprintf(out, "%-5s     %" PRId64 " rows  X ", split_names[i], s->n);
        print_shape(out, dtype_tag(s->x_dtype), s->n, s->feat_ndim, s->feat_shape);
        fprintf(out, "  y ");
        print_shape(out, dtype_tag(s->y_dtype), s->n, s->y_dtype == KILN_DTYPE_I32 ? 0 : 1,
                    &s->y_dim);
        fprintf(out, "\n");
        if (!s->X || !s->y) continue;
        if (ds->n_classes > 0 && s->y_dtype == KILN_DTYPE_I32)
            describe_balance(out, ds, s);
        else if (s->y_dtype == KILN_DTYPE_F32)
            describe_targets(out, s);
        if (!first) {
            first = s;
            first_name = split_names[i];
        }
    }
    if (first) describe_features(out, ds, first, first_name);
    if (ferror(out)) return kiln_errorf(KILN_ERR_IO, "describe: cannot write the output");
    return KILN_OK;
}

/* --- import ------------------------------------------------------------------------------ */

struct kiln_import_options kiln_import_options_default(void)
{
    return (struct kiln_import_options){
        .delimiter = ',',
        .fill = KILN_FILL_NONE,
        .task = KILN_TASK_AUTO,
        .test_fraction = 0.0,
        .seed = 0,
    };
}

enum kiln_status kiln_data_import(const struct kiln_import_options *opt,
                                  struct kiln_dataset **out)
{
    enum kiln_status st = KILN_OK;
    struct kiln_dataset *ds = NULL;
    *out = NULL;
    bool idx = opt->idx_images || opt->idx_labels || opt->test_idx_images || opt->test_idx_labels;
    int sources = (int)idx + (opt->csv != NULL) + (opt->h5 != NULL);
    if (sources != 1) {
        st = kiln_errorf(KILN_ERR_USAGE, "import: give exactly one source (IDX images and "
                         "labels, a CSV file, or an HDF5 file); got %d", sources);
        goto cleanup;
    }
    if (!opt->name || !opt->name[0]) {
        st = kiln_errorf(KILN_ERR_USAGE, "import: the dataset needs a name");
        goto cleanup;
    }
    if ((opt->drop_columns || opt->hash_columns) && !opt->csv) {
        st = kiln_errorf(KILN_ERR_USAGE, "import: dropping and hashing columns apply to CSV "
                         "imports");
        goto cleanup;
    }
    if (!(opt->test_fraction >= 0.0 && opt->test_fraction < 1.0)) {
        st = kiln_errorf(KILN_ERR_USAGE, "import: test fraction %g is not in [0, 1)",
                         opt->test_fraction);
        goto cleanup;
    }
    ds = calloc(1, sizeof *ds);
    if (!ds) {
        st = kiln_errorf(KILN_ERR_NOMEM, "import: out of memory");
        goto cleanup;
    }
    st = str_dup(opt->name, &ds->name);
    if (st != KILN_OK) goto cleanup;
    st = idx ? data_import_idx(opt, ds) : opt->csv ? data_import_csv(opt, ds)
                                                   : data_import_h5(opt, ds);
    if (st != KILN_OK) goto cleanup;
    /* Checked before the split, which indexes per-class tables by label. */
    st = splits_agree(ds);
    for (int i = 0; i < KILN_SPLIT_COUNT && st == KILN_OK; i++) st = data_check_split(ds, i);
    if (st != KILN_OK) {
        kiln_error_context(st, "%s", idx ? opt->idx_images : opt->csv ? opt->csv : opt->h5);
        goto cleanup;
    }
    if (!ds->splits[KILN_SPLIT_TEST] && opt->test_fraction > 0.0) {
        st = data_split_holdout(ds, opt->test_fraction, opt->seed);
        if (st != KILN_OK) goto cleanup;
        /* The split is part of where the data came from: record how to redo it. */
        size_t len = strlen(ds->source) + 128;
        char *src = malloc(len);
        if (!src) {
            st = kiln_errorf(KILN_ERR_NOMEM, "import: out of memory");
            goto cleanup;
        }
        snprintf(src, len, "%s; test split %g of rows (%s), seed %" PRIu64, ds->source,
                 opt->test_fraction, ds->n_classes > 0 ? "stratified" : "shuffled", opt->seed);
        free(ds->source);
        ds->source = src;
    }
    char now[32];
    time_iso8601(now);
    st = str_dup(now, &ds->created);
    if (st == KILN_OK) st = kiln_dataset_hash(ds, ds->sha256);
    if (st != KILN_OK) goto cleanup;
    *out = ds;
    ds = NULL;
cleanup:
    kiln_dataset_free(ds);
    return st;
}
