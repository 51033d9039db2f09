/* benchmarks/score_parts.c: the parts of kiln score timed alone, for
 * benchmarks/score_bench.sh to compare the whole pipeline against:
 *
 *   score_parts read INPUT ARRAY BATCH
 *       reads every row of INPUT's ARRAY with kiln's reader (kiln_rows_read,
 *       uint8 converted to float as score sees it), BATCH rows at a time
 *   score_parts compute MODEL INPUT ARRAY BATCH ROWS THREADS [DEVICE]
 *       runs the model (transforms, finite check, forward pass: the step
 *       score runs per chunk; on a device with its upload and download)
 *       over ROWS rows held in memory: the first 8 chunks of INPUT, read
 *       once before the clock starts and cycled; DEVICE as kiln score
 *       --device takes it (default cpu)
 *
 * Each prints one line "rows=N seconds=S rows_per_s=R". Before timing,
 * compute checks that its first chunk's outputs are finite probabilities
 * (or outputs), so a broken model cannot time well. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    st = infer_model_run(&im, input, 0, x[0], n[0], y);
    for (int64_t i = 0; st == KILN_OK && i < n[0] * im.k; i++)
        if (!isfinite(y[i])) st = kiln_errorf(KILN_ERR_FORMAT, "output %lld is not finite", (long long)i);
    if (st != KILN_OK) goto cleanup;
    int64_t rows = 0;
    double t0 = now_s();
    for (int64_t c = 0; rows < total && st == KILN_OK; c++) {
        int64_t k = n[c % chunks] < total - rows ? n[c % chunks] : total - rows;
        st = infer_model_run(&im, input, rows, x[c % chunks], k, y);
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
    } else {
        fprintf(stderr, "usage: score_parts read INPUT ARRAY BATCH\n"
                        "       score_parts compute MODEL INPUT ARRAY BATCH ROWS THREADS "
                        "[DEVICE]\n");
        return 2;
    }
    if (st != KILN_OK) {
        fprintf(stderr, "score_parts: error: %s\n", kiln_last_error());
        return 1;
    }
    return 0;
}
