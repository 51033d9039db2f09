/* engine/data/rows.c: bounded-memory streaming for batch scoring: a reader
 * of feature rows (HDF5 hyperslabs or CSV records) and a writer of
 * predictions (docs/FORMATS.md, "Predictions file"). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/util.h"
#include "data-internal.h"

#define PRED_FORMAT "predictions"
#define PRED_FORMAT_VERSION 1
/* Chunks of about 256 KiB: big enough for fast appends and reads, small
 * enough that a short run does not write a mostly empty megabyte. */
#define PRED_CHUNK_BYTES (1 << 18)

static bool has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

/* --- rows reader --------------------------------------------------------------------- */

struct kiln_rows_reader {
    char *path;
    bool csv;
    int64_t n;          /* rows, -1 for CSV */
    int64_t width;
    int64_t pos;        /* rows read so far */
    /* HDF5 */
    char *array;
    hid_t file, dset, fspace;
    int rank;
    hsize_t dims[32];
    bool u8;
    char *transforms;   /* the file's "transforms" attribute (a transformed kiln dataset) */
    uint8_t *scratch;
    size_t scratch_cap;
    /* CSV */
    struct csv_reader *r;
    char **names;
    int ncols, drop;
};

static enum kiln_status rows_open_h5(struct kiln_rows_reader *rr, const char *array)
{
    enum kiln_status st = KILN_OK;
    hid_t type = -1;
    const char *path = rr->path;
    rr->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (rr->file < 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: cannot be opened as HDF5 (truncated or corrupt)",
                         path);
        goto cleanup;
    }
    if (!array) {
        /* A kiln dataset's held-out rows first, then a plain array named X. */
        if (H5Lexists(rr->file, "test", H5P_DEFAULT) > 0 &&
            H5Lexists(rr->file, "test/X", H5P_DEFAULT) > 0)
            array = "test/X";
        else if (H5Lexists(rr->file, "X", H5P_DEFAULT) > 0)
            array = "X";
        else {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: no array 'test/X' or 'X' (name the array to "
                             "read)", path);
            goto cleanup;
        }
    }
    st = str_dup(array, &rr->array);
    if (st != KILN_OK) goto cleanup;
    if (h5_attr_exists(rr->file, "transforms")) {
        st = h5_attr_read_str(rr->file, "transforms", &rr->transforms);
        if (st != KILN_OK) goto cleanup;
        if (!rr->transforms[0]) { /* written only when there are some; empty is none */
            free(rr->transforms);
            rr->transforms = NULL;
        }
    }
    rr->dset = H5Dopen2(rr->file, array, H5P_DEFAULT);
    if (rr->dset < 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: no array '%s'", path, array);
        goto cleanup;
    }
    type = H5Dget_type(rr->dset);
    rr->fspace = H5Dget_space(rr->dset);
    H5T_class_t cls = type < 0 ? H5T_NO_CLASS : H5Tget_class(type);
    if (rr->fspace < 0 || (cls != H5T_INTEGER && cls != H5T_FLOAT)) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' is not a numeric array", path, array);
        goto cleanup;
    }
    rr->rank = H5Sget_simple_extent_ndims(rr->fspace);
    if (rr->rank < 1 || rr->rank > 32) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' has rank %d", path, array, rr->rank);
        goto cleanup;
    }
    H5Sget_simple_extent_dims(rr->fspace, rr->dims, NULL);
    rr->u8 = cls == H5T_INTEGER && H5Tget_size(type) == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
    rr->n = (int64_t)rr->dims[0];
    rr->width = 1;
    for (int i = 1; i < rr->rank; i++) rr->width *= (int64_t)rr->dims[i];
    if (rr->width < 1) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: '%s' has empty rows", path, array);
        goto cleanup;
    }
cleanup:
    if (type >= 0) H5Tclose(type);
    return st;
}

static enum kiln_status rows_open_csv(struct kiln_rows_reader *rr, const char *drop_column)
{
    char **fields;
    int64_t line = 0;
    enum kiln_status st = csv_open(rr->path, ',', &rr->r);
    if (st == KILN_OK) st = csv_next(rr->r, &fields, &rr->ncols, &line);
    if (st != KILN_OK) goto cleanup;
    if (rr->ncols == 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: empty file (expected a header row)", rr->path);
        goto cleanup;
    }
    rr->names = calloc((size_t)rr->ncols, sizeof *rr->names);
    if (!rr->names) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", rr->path);
        goto cleanup;
    }
    rr->drop = -1;
    for (int j = 0; j < rr->ncols && st == KILN_OK; j++) {
        /* Trimmed as the CSV importer trims them: "a, label" names "label". */
        char *s = fields[j], *e = s + strlen(s);
        while (*s == ' ' || *s == '\t') s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
        st = str_dup(s, &rr->names[j]);
        /* A scoring input may lack the label column: nothing to drop then. */
        if (st == KILN_OK && drop_column && rr->drop < 0 && strcmp(s, drop_column) == 0)
            rr->drop = j;
    }
    if (st != KILN_OK) goto cleanup;
    rr->n = -1;
    rr->width = rr->ncols - (rr->drop >= 0);
    if (rr->width < 1)
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: no feature columns", rr->path);
cleanup:
    return st;
}

enum kiln_status kiln_rows_open(const char *path, const char *array, const char *drop_column,
                                struct kiln_rows_reader **out)
{
    enum kiln_status st = KILN_OK;
    struct kiln_rows_reader *rr = calloc(1, sizeof *rr);
    *out = NULL;
    h5_quiet();
    if (!rr) return kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
    rr->file = rr->dset = rr->fspace = -1;
    st = str_dup(path, &rr->path);
    if (st != KILN_OK) goto cleanup;
    st = fs_check_file(path, NULL);
    if (st != KILN_OK) goto cleanup;
    if (H5Fis_hdf5(path) > 0) {
        st = rows_open_h5(rr, array);
    } else if (has_ext(path, ".h5") || has_ext(path, ".hdf5")) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: not an HDF5 file (truncated or corrupt?)", path);
    } else {
        rr->csv = true;
        st = rows_open_csv(rr, drop_column);
    }
    if (st != KILN_OK) goto cleanup;
    *out = rr;
    rr = NULL;
cleanup:
    kiln_rows_close(rr);
    return st;
}

int64_t kiln_rows_count(const struct kiln_rows_reader *r) { return r->n; }

int64_t kiln_rows_width(const struct kiln_rows_reader *r) { return r->width; }

const char *kiln_rows_transforms(const struct kiln_rows_reader *r) { return r->transforms; }

static enum kiln_status rows_read_h5(struct kiln_rows_reader *r, int64_t k, float *dst)
{
    enum kiln_status st = KILN_OK;
    hid_t mspace = -1;
    hsize_t start[32] = {0}, count[32];
    start[0] = (hsize_t)r->pos;
    count[0] = (hsize_t)k;
    for (int i = 1; i < r->rank; i++) count[i] = r->dims[i];
    hsize_t total = (hsize_t)(k * r->width);
    size_t need = (size_t)total;
    if (r->u8 && r->scratch_cap < need) {
        uint8_t *s = realloc(r->scratch, need);
        if (!s) {
            st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", r->path);
            goto cleanup;
        }
        r->scratch = s;
        r->scratch_cap = need;
    }
    /* The memory space has the file selection's shape: with a flat 1-D one
     * HDF5 walks the selection element by element (100x slower). */
    mspace = H5Screate_simple(r->rank, count, NULL);
    if (mspace < 0 ||
        H5Sselect_hyperslab(r->fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dread(r->dset, r->u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, mspace, r->fspace,
                H5P_DEFAULT, r->u8 ? (void *)r->scratch : (void *)dst) < 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: rows %" PRId64 " to %" PRId64 " of '%s' cannot be "
                         "read (truncated or corrupt file)", r->path, r->pos, r->pos + k - 1,
                         r->array);
        goto cleanup;
    }
    if (r->u8) {
        /* The conversion itself rather than a 256-entry table: the same
         * floats, and the compiler vectorises it (a table lookup is a
         * gather it does not); what is left is writing 4 bytes per value
         * (kiln score's reader thread spends most of its time here). */
        const uint8_t *src = r->scratch;
        for (size_t i = 0; i < need; i++) dst[i] = kiln_u8_to_f32(src[i]);
    } else {
        for (size_t i = 0; i < need; i++)
            if (!isfinite(dst[i])) {
                int64_t row = r->pos + (int64_t)i / r->width, col = (int64_t)i % r->width;
                st = kiln_errorf(KILN_ERR_FORMAT, "%s: %s[%" PRId64 ", %" PRId64 "] is %s (row %"
                                 PRId64 ", column %" PRId64 ")", r->path, r->array, row, col,
                                 isnan(dst[i]) ? "NaN" : "Inf", row, col);
                goto cleanup;
            }
    }
cleanup:
    if (mspace >= 0) H5Sclose(mspace);
    return st;
}

static enum kiln_status rows_read_csv(struct kiln_rows_reader *r, int64_t max_rows, float *dst,
                                      int64_t *got)
{
    enum kiln_status st = KILN_OK;
    char **fields;
    int64_t line = 0;
    while (*got < max_rows) {
        int n = 0;
        st = csv_next(r->r, &fields, &n, &line);
        if (st != KILN_OK || n == 0) goto cleanup;
        if (n != r->ncols) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s:%" PRId64 ": %d fields, but the header has %d",
                             r->path, line, n, r->ncols);
            goto cleanup;
        }
        float *row = dst + *got * r->width;
        for (int j = 0, k = 0; j < n; j++) {
            if (j == r->drop) continue;
            if (!data_parse_f32(fields[j], &row[k])) {
                bool blank = data_is_blank(fields[j]);
                st = kiln_errorf(KILN_ERR_FORMAT, "%s:%" PRId64 ":%s: %s%s%s", r->path, line,
                                 r->names[j], blank ? "missing value" : "'",
                                 blank ? "" : fields[j], blank ? "" : "' is not a finite number");
                goto cleanup;
            }
            k++;
        }
        ++*got;
    }
cleanup:
    return st;
}

enum kiln_status kiln_rows_read(struct kiln_rows_reader *r, int64_t max_rows, float *dst,
                                int64_t *got)
{
    enum kiln_status st = KILN_OK;
    *got = 0;
    if (max_rows <= 0) goto cleanup;
    if (r->csv) {
        st = rows_read_csv(r, max_rows, dst, got);
    } else {
        int64_t k = r->n - r->pos < max_rows ? r->n - r->pos : max_rows;
        if (k > 0) st = rows_read_h5(r, k, dst);
        if (st == KILN_OK) *got = k > 0 ? k : 0;
    }
    if (st == KILN_OK) r->pos += *got;
cleanup:
    return st;
}

enum kiln_status kiln_rows_skip(struct kiln_rows_reader *r, int64_t n)
{
    if (r->csv) return kiln_errorf(KILN_ERR_USAGE, "%s: cannot skip rows of a CSV file", r->path);
    r->pos = n > r->n - r->pos ? r->n : r->pos + n;
    return KILN_OK;
}

void kiln_rows_close(struct kiln_rows_reader *r)
{
    if (!r) return;
    if (r->fspace >= 0) H5Sclose(r->fspace);
    if (r->dset >= 0) H5Dclose(r->dset);
    if (r->file >= 0) H5Fclose(r->file);
    csv_close(r->r);
    strv_free(r->names, r->ncols);
    free(r->scratch);
    free(r->transforms);
    free(r->array);
    free(r->path);
    free(r);
}

/* --- predictions writer ---------------------------------------------------------------- */

struct kiln_pred_writer {
    char *path;
    char tmp[4200];
    bool csv;
    bool tmp_made;
    bool keep_tmp;      /* resumable: the temp file outlives a failed run */
    int n_classes;
    char **classes;     /* own copy (numbered when the caller gave none) */
    int64_t k;          /* outputs per row */
    int64_t rows;
    FILE *f;
    hid_t file, d_pred, d_out;
    int32_t *pred;      /* per-write argmax scratch */
    int64_t pred_cap;
};

/* Quotes a CSV field when it holds a delimiter, quote, line end or edge
 * blanks (RFC 4180), so class names round-trip through any CSV reader. */
static void csv_write_field(FILE *f, const char *s)
{
    size_t n = strlen(s);
    bool quote = strpbrk(s, ",\"\r\n") != NULL ||
                 (n > 0 && (s[0] == ' ' || s[n - 1] == ' '));
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static enum kiln_status pred_create_dataset(hid_t file, const char *name, hid_t type, int rank,
                                            int64_t k, hid_t *out)
{
    hsize_t dims[2] = {0, (hsize_t)k}, maxd[2] = {H5S_UNLIMITED, (hsize_t)k};
    hsize_t chunk[2] = {0, (hsize_t)k};
    int64_t row_bytes = (rank == 2 ? k : 1) * 4;
    chunk[0] = (hsize_t)(PRED_CHUNK_BYTES / row_bytes > 0 ? PRED_CHUNK_BYTES / row_bytes : 1);
    hid_t space = H5Screate_simple(rank, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    *out = -1;
    if (space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0)
        *out = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return *out < 0 ? kiln_errorf(KILN_ERR_IO, "cannot create /%s", name) : KILN_OK;
}

static enum kiln_status pred_open_h5(struct kiln_pred_writer *w, const struct kiln_pred_meta *m)
{
    enum kiln_status st = KILN_OK;
    char now[32];
    /* The 1.10 file format, as for datasets: checksummed metadata. A
     * resumable file keeps to the 1.8 format instead: 1.10's superblock
     * records "open for writing", and after a kill -9 HDF5 refuses to
     * reopen it (h5clear's job). */
    H5F_libver_t ver = w->keep_tmp ? H5F_LIBVER_V18 : H5F_LIBVER_V110;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_libver_bounds(fapl, w->keep_tmp ? H5F_LIBVER_EARLIEST : ver, ver) >= 0)
        w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (w->file < 0)
        return kiln_errorf(KILN_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
    w->tmp_made = true;
    time_iso8601(now);
    st = h5_attr_write_str(w->file, "kiln_format", PRED_FORMAT);
    if (st == KILN_OK) st = h5_attr_write_i64(w->file, "kiln_format_version", PRED_FORMAT_VERSION);
    if (st == KILN_OK) st = h5_attr_write_str(w->file, "model", m->model ? m->model : "");
    if (st == KILN_OK)
        st = h5_attr_write_str(w->file, "model_sha256", m->model_sha256 ? m->model_sha256 : "");
    if (st == KILN_OK) st = h5_attr_write_str(w->file, "created", now);
    if (st == KILN_OK && m->model_name)
        st = h5_attr_write_str(w->file, "model_name", m->model_name);
    if (st == KILN_OK && m->model_version > 0)
        st = h5_attr_write_i64(w->file, "model_version", m->model_version);
    if (st == KILN_OK && m->package_sha256)
        st = h5_attr_write_str(w->file, "package_sha256", m->package_sha256);
    if (st == KILN_OK && w->n_classes > 0)
        st = h5_attr_write_strs(w->file, "classes", w->classes, w->n_classes);
    if (st == KILN_OK && w->n_classes > 0)
        st = pred_create_dataset(w->file, "pred", H5T_STD_I32LE, 1, 1, &w->d_pred);
    if (st == KILN_OK)
        st = pred_create_dataset(w->file, w->n_classes > 0 ? "prob" : "output", H5T_IEEE_F32LE,
                                 2, w->k, &w->d_out);
    return st;
}

static enum kiln_status pred_open_csv(struct kiln_pred_writer *w)
{
    w->f = fopen(w->tmp, "wb");
    if (!w->f) return kiln_errorf(KILN_ERR_IO, "%s: cannot create: %s", w->tmp, strerror(errno));
    w->tmp_made = true;
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    if (w->n_classes > 0) {
        fputs("pred", w->f);
        /* A single output is the probability of the second (positive) class. */
        for (int64_t j = w->k == 1 ? 1 : 0; j < w->n_classes && j < (w->k == 1 ? 2 : w->k); j++) {
            fputc(',', w->f);
            size_t len = strlen(w->classes[j]) + 6;
            char *h = malloc(len);
            if (!h) return kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", w->path);
            snprintf(h, len, "prob_%s", w->classes[j]);
            csv_write_field(w->f, h);
            free(h);
        }
    } else {
        for (int64_t j = 0; j < w->k; j++) fprintf(w->f, "%soutput_%" PRId64, j ? "," : "", j);
    }
    fputc('\n', w->f);
    return ferror(w->f) ? kiln_errorf(KILN_ERR_IO, "%s: write error", w->tmp) : KILN_OK;
}

/* The writer's state for path, without opening any file. */
static enum kiln_status pred_writer_new(const char *path, const struct kiln_pred_meta *meta,
                                        struct kiln_pred_writer **out)
{
    enum kiln_status st = KILN_OK;
    struct kiln_pred_writer *w = NULL;
    char dir[4096], tmp[4096];
    *out = NULL;
    h5_quiet();
    bool csv = has_ext(path, ".csv");
    if (!csv && !has_ext(path, ".h5") && !has_ext(path, ".hdf5")) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s: predictions go to a .h5, .hdf5 or .csv file", path);
        goto cleanup;
    }
    if (meta->out_dim < 1 || meta->n_classes < 0 ||
        (meta->n_classes > 0 && meta->out_dim != meta->n_classes &&
         !(meta->n_classes == 2 && meta->out_dim == 1))) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s: %" PRId64 " outputs per row do not fit %d classes",
                         path, meta->out_dim, meta->n_classes);
        goto cleanup;
    }
    /* Check the folder now, not after hours of scoring. */
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(dir, sizeof dir, "%s", dirname(tmp));
    st = fs_check_writable_dir(dir);
    if (st != KILN_OK) goto cleanup;
    w = calloc(1, sizeof *w);
    if (!w) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    w->file = w->d_pred = w->d_out = -1;
    w->csv = csv;
    w->k = meta->out_dim;
    st = str_dup(path, &w->path);
    if (st != KILN_OK) goto cleanup;
    if (meta->n_classes > 0) {
        if (meta->classes) {
            w->classes = calloc((size_t)meta->n_classes, sizeof *w->classes);
            if (!w->classes) {
                st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
                goto cleanup;
            }
            w->n_classes = meta->n_classes;
            for (int c = 0; c < meta->n_classes && st == KILN_OK; c++)
                st = str_dup(meta->classes[c], &w->classes[c]);
        } else {
            st = data_classes_make(NULL, meta->n_classes, &w->classes, &w->n_classes);
        }
        if (st != KILN_OK) goto cleanup;
    }
    *out = w;
    w = NULL;
cleanup:
    if (w) kiln_pred_writer_close(w, false);
    return st;
}

enum kiln_status kiln_pred_writer_open(const char *path, const struct kiln_pred_meta *meta,
                                       struct kiln_pred_writer **out)
{
    struct kiln_pred_writer *w = NULL;
    enum kiln_status st = pred_writer_new(path, meta, &w);
    if (st == KILN_OK) st = fs_temp_path(path, w->tmp, sizeof w->tmp);
    if (st == KILN_OK) st = w->csv ? pred_open_csv(w) : pred_open_h5(w, meta);
    if (st != KILN_OK) {
        kiln_pred_writer_close(w, false);
        w = NULL;
    }
    *out = w;
    return st;
}

/* Reopens a resumable temp file and cuts its arrays back to rows. */
static enum kiln_status pred_reopen_h5(struct kiln_pred_writer *w, int64_t rows)
{
    w->file = H5Fopen(w->tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    if (w->file < 0) return kiln_errorf(KILN_ERR_FORMAT, "%s: cannot reopen to resume", w->tmp);
    w->tmp_made = true;
    const char *names[2] = {"pred", w->n_classes > 0 ? "prob" : "output"};
    hid_t *dsets[2] = {&w->d_pred, &w->d_out};
    for (int i = w->n_classes > 0 ? 0 : 1; i < 2; i++) {
        hsize_t dims[2] = {0, 0};
        int rank = i == 0 ? 1 : 2;
        hid_t sp = -1;
        *dsets[i] = H5Dopen2(w->file, names[i], H5P_DEFAULT);
        bool ok = *dsets[i] >= 0 && (sp = H5Dget_space(*dsets[i])) >= 0 &&
                  H5Sget_simple_extent_ndims(sp) == rank &&
                  H5Sget_simple_extent_dims(sp, dims, NULL) == rank;
        if (sp >= 0) H5Sclose(sp);
        if (!ok || (rank == 2 && dims[1] != (hsize_t)w->k) || dims[0] < (hsize_t)rows)
            return kiln_errorf(KILN_ERR_FORMAT, "%s: /%s does not hold the %" PRId64
                               " rows to resume from", w->tmp, names[i], rows);
        dims[0] = (hsize_t)rows;
        dims[1] = (hsize_t)w->k;
        if (H5Dset_extent(*dsets[i], dims) < 0)
            return kiln_errorf(KILN_ERR_IO, "%s: cannot cut /%s back to %" PRId64 " rows",
                               w->tmp, names[i], rows);
    }
    w->rows = rows;
    return KILN_OK;
}

/* Reopens a resumable CSV temp file to append after its rows. CSV text
 * cannot be cut back by a row count without parsing it, so the caller has
 * cut it to the byte where its last kept row ends (kiln score records that
 * offset); what is checked is that it ends a line. */
static enum kiln_status pred_reopen_csv(struct kiln_pred_writer *w, int64_t rows)
{
    w->f = fopen(w->tmp, "r+b");
    if (!w->f) return kiln_errorf(KILN_ERR_FORMAT, "%s: cannot reopen to resume: %s", w->tmp,
                                  strerror(errno));
    w->tmp_made = true;
    if (fseek(w->f, -1, SEEK_END) != 0 || fgetc(w->f) != '\n' || fseek(w->f, 0, SEEK_END) != 0)
        return kiln_errorf(KILN_ERR_FORMAT, "%s: does not end with a whole row to resume after",
                           w->tmp);
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    w->rows = rows;
    return KILN_OK;
}

enum kiln_status kiln_pred_writer_open_resumable(const char *path, const char *tmp,
                                                 int64_t resume_rows,
                                                 const struct kiln_pred_meta *meta,
                                                 struct kiln_pred_writer **out)
{
    struct kiln_pred_writer *w = NULL;
    enum kiln_status st = pred_writer_new(path, meta, &w);
    if (st == KILN_OK) {
        w->keep_tmp = true;
        snprintf(w->tmp, sizeof w->tmp, "%s", tmp);
        if (w->csv) st = resume_rows < 0 ? pred_open_csv(w) : pred_reopen_csv(w, resume_rows);
        else st = resume_rows < 0 ? pred_open_h5(w, meta) : pred_reopen_h5(w, resume_rows);
    }
    if (st == KILN_OK) st = kiln_pred_writer_flush(w, true);
    if (st != KILN_OK) {
        kiln_pred_writer_close(w, false);
        w = NULL;
    }
    *out = w;
    return st;
}

enum kiln_status kiln_pred_writer_flush(struct kiln_pred_writer *w, bool sync)
{
    int fd = -1;
    if (w->csv) {
        if (fflush(w->f) == 0) fd = fileno(w->f);
    } else {
        void *handle = NULL;
        if (H5Fflush(w->file, H5F_SCOPE_LOCAL) >= 0 &&
            H5Fget_vfd_handle(w->file, H5P_DEFAULT, &handle) >= 0 && handle)
            fd = *(int *)handle;
    }
    if (fd < 0 || (sync && fsync(fd) != 0))
        return kiln_errorf(KILN_ERR_IO, "%s: cannot flush (disk full?)", w->tmp);
    return KILN_OK;
}

static enum kiln_status pred_write_h5(struct kiln_pred_writer *w, const float *outputs,
                                      int64_t rows)
{
    enum kiln_status st = KILN_OK;
    hid_t fs = -1, ms = -1;
    hid_t dsets[2] = {w->d_pred, w->d_out};
    const void *bufs[2] = {w->pred, outputs};
    hid_t types[2] = {H5T_NATIVE_INT32, H5T_NATIVE_FLOAT};
    for (int i = 0; i < 2; i++) {
        if (dsets[i] < 0) continue;
        int rank = i == 0 ? 1 : 2;
        hsize_t dims[2] = {(hsize_t)(w->rows + rows), (hsize_t)w->k};
        hsize_t start[2] = {(hsize_t)w->rows, 0}, count[2] = {(hsize_t)rows, (hsize_t)w->k};
        bool ok = H5Dset_extent(dsets[i], dims) >= 0;
        if (ok) fs = H5Dget_space(dsets[i]);
        if (ok) ms = H5Screate_simple(rank, count, NULL);
        ok = ok && fs >= 0 && ms >= 0 &&
             H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dwrite(dsets[i], types[i], ms, fs, H5P_DEFAULT, bufs[i]) >= 0;
        if (!ok) {
            st = kiln_errorf(KILN_ERR_IO, "%s: cannot append %" PRId64 " rows (disk full?)",
                             w->tmp, rows);
            goto cleanup;
        }
        H5Sclose(fs);
        H5Sclose(ms);
        fs = ms = -1;
    }
cleanup:
    if (fs >= 0) H5Sclose(fs);
    if (ms >= 0) H5Sclose(ms);
    return st;
}

static enum kiln_status pred_write_csv(struct kiln_pred_writer *w, const float *outputs,
                                       int64_t rows)
{
    for (int64_t i = 0; i < rows; i++) {
        const float *o = outputs + i * w->k;
        if (w->n_classes > 0) {
            csv_write_field(w->f, w->classes[w->pred[i]]);
            fputc(',', w->f);
        }
        /* %.9g round-trips every float32 exactly. */
        for (int64_t j = 0; j < w->k; j++) fprintf(w->f, "%s%.9g", j ? "," : "", (double)o[j]);
        fputc('\n', w->f);
    }
    return ferror(w->f) ? kiln_errorf(KILN_ERR_IO, "%s: write error (disk full?)", w->tmp)
                        : KILN_OK;
}

enum kiln_status kiln_pred_writer_write(struct kiln_pred_writer *w, const float *outputs,
                                        int64_t rows)
{
    enum kiln_status st = KILN_OK;
    if (rows <= 0) goto cleanup;
    if (w->n_classes > 0) {
        if (w->pred_cap < rows) {
            int32_t *p = realloc(w->pred, (size_t)rows * sizeof *p);
            if (!p) {
                st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", w->path);
                goto cleanup;
            }
            w->pred = p;
            w->pred_cap = rows;
        }
        for (int64_t i = 0; i < rows; i++) {
            const float *o = outputs + i * w->k;
            int32_t best = 0;
            if (w->k == 1) {
                best = o[0] >= 0.5f; /* a sigmoid output: P(class 1) */
            } else {
                for (int64_t j = 1; j < w->k; j++)
                    if (o[j] > o[best]) best = (int32_t)j; /* first of ties, as numpy argmax */
            }
            w->pred[i] = best;
        }
    }
    st = w->csv ? pred_write_csv(w, outputs, rows) : pred_write_h5(w, outputs, rows);
    if (st == KILN_OK) w->rows += rows;
cleanup:
    return st;
}

enum kiln_status kiln_pred_writer_close(struct kiln_pred_writer *w, bool commit)
{
    enum kiln_status st = KILN_OK;
    if (!w) return KILN_OK;
    if (w->d_pred >= 0) H5Dclose(w->d_pred);
    if (w->d_out >= 0) H5Dclose(w->d_out);
    if (w->file >= 0 && H5Fclose(w->file) < 0 && commit)
        st = kiln_errorf(KILN_ERR_IO, "%s: cannot finish writing (disk full?)", w->tmp);
    if (w->f && fclose(w->f) != 0 && commit)
        st = kiln_errorf(KILN_ERR_IO, "%s: cannot finish writing: %s", w->tmp, strerror(errno));
    if (commit && st == KILN_OK && w->tmp_made) {
        st = fs_publish(w->tmp, w->path);
        w->tmp_made = false; /* fs_publish removes the temp file on failure */
    }
    if (w->tmp_made && !w->keep_tmp) unlink(w->tmp);
    strv_free(w->classes, w->n_classes);
    free(w->pred);
    free(w->path);
    free(w);
    return st;
}
