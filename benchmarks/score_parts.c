/* benchmarks/score_parts.c: the parts of kiln score timed alone, for
 * benchmarks/score_bench.sh to compare the whole pipeline against:
 *
 *   score_parts read INPUT ARRAY BATCH
 *       reads every row of INPUT's ARRAY with kiln's reader (kiln_rows_read,
 *       uint8 converted to float as score sees it), BATCH rows at a time
 *   score_parts compute MODEL INPUT ARRAY BATCH ROWS THREADS [DEVICE]
 *       runs the model (transforms and forward pass: the step
 *       score runs per chunk; on a device with its upload and download)
 *       over ROWS rows held in memory: the first 8 chunks of INPUT, read
 *       once before the clock starts and cycled; DEVICE as kiln score
 *       --device takes it (default cpu)
 *
 *   score_parts tile DATASET.h5 OUT.h5 ROWS
 *       writes the bench's input: the train and test images of a kiln
 *       dataset (uint8 [N, 28, 28]) repeated to ROWS rows in /X, chunked by
 *       1,337 rows like a kiln dataset (no python needed: the GPU machine
 *       has no h5py)
 *
 * read and compute print one line "rows=N seconds=S rows_per_s=R". Before timing,
 * compute checks that its first chunk's outputs are finite probabilities
 * (or outputs), so a broken model cannot time well. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hdf5.h>

#include "kiln/data.h"
#include "lifecycle/infer.h"

#define COMPUTE_CHUNKS 8

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int parse_i64(const char *s, long long *out)
{
    char *end;
    *out = strtoll(s, &end, 10);
    return *end == '\0' && *out > 0;
}

static enum kiln_status bench_read(const char *input, const char *array, int64_t batch)
{
    struct kiln_rows_reader *r = NULL;
    float *buf = NULL;
    int64_t rows = 0, got = 0;
    enum kiln_status st = kiln_rows_open(input, array, NULL, &r);
    if (st != KILN_OK) goto cleanup;
    buf = malloc((size_t)(batch * kiln_rows_width(r)) * sizeof(float));
    if (!buf) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    double t0 = now_s();
    do {
        st = kiln_rows_read(r, batch, buf, &got);
        rows += got;
    } while (st == KILN_OK && got > 0);
    double s = now_s() - t0;
    if (st == KILN_OK) printf("rows=%lld seconds=%.4f rows_per_s=%.0f\n", (long long)rows, s, rows / s);
cleanup:
    free(buf);
    kiln_rows_close(r);
    return st;
}

static enum kiln_status bench_compute(const char *model, const char *input, const char *array,
                                      int64_t batch, int64_t total, int threads,
                                      const char *device)
{
    struct infer_model im = {0};
    struct kiln_rows_reader *r = NULL;
    float *x[COMPUTE_CHUNKS] = {0}, *y = NULL;
    int64_t n[COMPUTE_CHUNKS] = {0}, chunks = 0;
    enum kiln_status st = kiln_rows_open(input, array, NULL, &r);
    if (st == KILN_OK) st = infer_model_open(&im, model, device, threads, batch);
    if (st == KILN_OK) st = infer_bind_rows(&im, r, input);
    if (st != KILN_OK) goto cleanup;
    y = malloc((size_t)(batch * im.k) * sizeof(float));
    for (; chunks < COMPUTE_CHUNKS && st == KILN_OK; chunks++) {
        x[chunks] = malloc((size_t)(batch * im.raw) * sizeof(float));
        if (!x[chunks] || !y) {
            st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            break;
        }
        st = kiln_rows_read(r, batch, x[chunks], &n[chunks]);
        if (st == KILN_OK && n[chunks] == 0) break;
    }
    if (st != KILN_OK) goto cleanup;
    if (chunks == 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: no rows", input);
        goto cleanup;
    }
    /* Verify before timing: finite outputs for the first chunk. */
    st = infer_model_run(&im, x[0], n[0], y);
    for (int64_t i = 0; st == KILN_OK && i < n[0] * im.k; i++)
        if (!isfinite(y[i])) st = kiln_errorf(KILN_ERR_FORMAT, "output %lld is not finite", (long long)i);
    if (st != KILN_OK) goto cleanup;
    int64_t rows = 0;
    double t0 = now_s();
    for (int64_t c = 0; rows < total && st == KILN_OK; c++) {
        int64_t k = n[c % chunks] < total - rows ? n[c % chunks] : total - rows;
        st = infer_model_run(&im, x[c % chunks], k, y);
        rows += k;
    }
    double s = now_s() - t0;
    if (st == KILN_OK) printf("rows=%lld seconds=%.4f rows_per_s=%.0f\n", (long long)rows, s, rows / s);
cleanup:
    for (int i = 0; i < COMPUTE_CHUNKS; i++) free(x[i]);
    free(y);
    infer_model_close(&im);
    kiln_rows_close(r);
    return st;
}

/* The bench's input (see the top): /X of rows uint8 rows, src's train and
 * test images over and over. */
static enum kiln_status bench_tile(const char *src, const char *dst, int64_t rows)
{
    enum kiln_status st = KILN_OK;
    uint8_t *all = NULL;
    hid_t in = -1, out = -1, space = -1, dcpl = -1, d = -1;
    hsize_t dims[3], row_bytes = 0, n = 0;
    in = H5Fopen(src, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (in < 0) return kiln_errorf(KILN_ERR_IO, "%s: cannot open", src);
    const char *parts[2] = {"train/X", "test/X"};
    for (int k = 0; k < 2 && st == KILN_OK; k++) {
        hid_t x = H5Dopen2(in, parts[k], H5P_DEFAULT), xs = x < 0 ? -1 : H5Dget_space(x);
        hsize_t xd[3];
        if (xs < 0 || H5Sget_simple_extent_ndims(xs) != 3) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: no uint8 [N, H, W] %s", src, parts[k]);
        } else {
            H5Sget_simple_extent_dims(xs, xd, NULL);
            if (k == 0) memcpy(dims, xd, sizeof dims), row_bytes = xd[1] * xd[2];
            uint8_t *grown = xd[1] == dims[1] && xd[2] == dims[2]
                                 ? realloc(all, (size_t)((n + xd[0]) * row_bytes)) : NULL;
            if (!grown) {
                st = kiln_errorf(KILN_ERR_FORMAT, "%s: %s is not like train/X (or out of memory)",
                                 src, parts[k]);
            } else {
                all = grown;
                if (H5Dread(x, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                            all + n * row_bytes) < 0)
                    st = kiln_errorf(KILN_ERR_IO, "%s: reading %s", src, parts[k]);
                n += xd[0];
            }
        }
        if (xs >= 0) H5Sclose(xs);
        if (x >= 0) H5Dclose(x);
    }
    H5Fclose(in);
    if (st != KILN_OK || n == 0) goto cleanup;
    dims[0] = (hsize_t)rows;
    hsize_t chunk[3] = {1337, dims[1], dims[2]};
    out = H5Fcreate(dst, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    space = H5Screate_simple(3, dims, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (out < 0 || space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 3, chunk) < 0 ||
        (d = H5Dcreate2(out, "X", H5T_NATIVE_UINT8, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0) {
        st = kiln_errorf(KILN_ERR_IO, "%s: cannot create /X", dst);
        goto cleanup;
    }
    for (hsize_t at = 0; at < (hsize_t)rows && st == KILN_OK; at += n) {
        hsize_t start[3] = {at, 0, 0}, count[3] = {at + n <= (hsize_t)rows ? n : rows - at,
                                                    dims[1], dims[2]};
        hid_t mem = H5Screate_simple(3, count, NULL);
        if (mem < 0 || H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dwrite(d, H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, all) < 0)
            st = kiln_errorf(KILN_ERR_IO, "%s: writing rows %llu..", dst, (unsigned long long)at);
        if (mem >= 0) H5Sclose(mem);
    }
cleanup:
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (out >= 0 && H5Fclose(out) < 0 && st == KILN_OK)
        st = kiln_errorf(KILN_ERR_IO, "%s: write failed (disk full?)", dst);
    free(all);
    return st;
}

int main(int argc, char **argv)
{
    long long batch = 0, rows = 0, threads = 0;
    enum kiln_status st;
    if (argc == 5 && !strcmp(argv[1], "read") && parse_i64(argv[4], &batch)) {
        st = bench_read(argv[2], argv[3], batch);
    } else if ((argc == 8 || argc == 9) && !strcmp(argv[1], "compute") &&
               parse_i64(argv[5], &batch) && parse_i64(argv[6], &rows) &&
               parse_i64(argv[7], &threads)) {
        st = bench_compute(argv[2], argv[3], argv[4], batch, rows, (int)threads,
                           argc == 9 ? argv[8] : "cpu");
    } else if (argc == 5 && !strcmp(argv[1], "tile") && parse_i64(argv[4], &rows)) {
        st = bench_tile(argv[2], argv[3], rows);
    } else {
        fprintf(stderr, "usage: score_parts read INPUT ARRAY BATCH\n"
                        "       score_parts compute MODEL INPUT ARRAY BATCH ROWS THREADS "
                        "[DEVICE]\n"
                        "       score_parts tile DATASET.h5 OUT.h5 ROWS\n");
        return 2;
    }
    if (st != KILN_OK) {
        fprintf(stderr, "score_parts: error: %s\n", kiln_last_error());
        return 1;
    }
    return 0;
}
