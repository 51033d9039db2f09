/* tests/test_score.c: kiln score's staged pipeline (pinned ring, staging
 * buffers, asynchronous uploads, split predict: what runs on a device) forced
 * onto the CPU scores bit for bit as the in-place CPU path does: an odd
 * number of chunks with a short last one, an even number, one chunk, a
 * model that carries transforms, and a NaN row failing with the same
 * message (the reader's, in both: it checks float rows as it reads them). The CUDA run itself is tests/cli/cuda_score.sh. */
#define _XOPEN_SOURCE 700 /* mkdtemp, strdup */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backend-mem.h"
#include "kiln/data.h"
#include "kiln/lifecycle.h"
#include "kiln/transform.h"
#include "lifecycle/score-internal.h"
#include "test.h"
#include "blobs3-fixture.h"

#define FEAT 4
#define ROWS 1000

static char root[4096];
static char model_plain[4200], model_tf[4200], input_ok[4200], input_nan[4200];

static const char CONFIG[] =
    BLOBS3_CONFIG_HEAD
    "  checkpoint_every: 0\n"
    "  threads: 1\n";

static int train(struct kiln_dataset *ds, const char *name, char *model_out, size_t len)
{
    char cfg_path[4200], data_path[4200], out_dir[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/mlp.yaml", root);
    snprintf(data_path, sizeof data_path, "%s/%s.h5", root, name);
    snprintf(out_dir, sizeof out_dir, "%s/%s", root, name);
    FILE *f = fopen(cfg_path, "w");
    if (!f) return -1;
    fputs(CONFIG, f);
    fclose(f);
    if (kiln_dataset_save(ds, data_path) != KILN_OK) return -1;
    struct kiln_train_job job = kiln_train_job_default();
    job.config_path = cfg_path;
    job.data_path = data_path;
    job.out_dir = out_dir;
    job.device = "cpu";
    struct kiln_train_result r;
    if (kiln_train(&job, &r) != KILN_OK) return -1;
    snprintf(model_out, len, "%s", r.model_path);
    return 0;
}

/* ROWS x FEAT float32 rows in /X; nan_row >= 0 puts a NaN in that row. */
static int write_input(const char *path, int64_t nan_row)
{
    float *x = malloc(ROWS * FEAT * sizeof *x);
    if (!x) return -1;
    for (int64_t i = 0; i < ROWS * FEAT; i++)
        x[i] = 10.0f + 5.0f * (float)(i % FEAT) + 4.0f * (float)((i * 7919) % 1000) / 1000.0f;
    if (nan_row >= 0) x[nan_row * FEAT + 2] = NAN;
    hsize_t dims[2] = {ROWS, FEAT};
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(file, "X", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    herr_t e = H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    H5Dclose(d);
    H5Sclose(space);
    H5Fclose(file);
    free(x);
    return file < 0 || d < 0 || e < 0 ? -1 : 0;
}

static int setup(void)
{
    snprintf(root, sizeof root, "/tmp/kiln-test-score.XXXXXX");
    if (!mkdtemp(root)) return -1;
    /* Offset and scaled, so that standardize has work to do. */
    struct kiln_dataset *ds = make_blobs3(10.0f, 5.0f), *child = NULL;
    struct kiln_transform_list *tl = NULL;
    int bad = train(ds, "plain", model_plain, sizeof model_plain);
    if (!bad) bad = kiln_transform_parse("standardize", &tl) != KILN_OK ||
                    kiln_transform_fit_apply(tl, ds, &child) != KILN_OK;
    if (!bad) bad = train(child, "tf", model_tf, sizeof model_tf);
    kiln_transform_list_free(tl);
    kiln_dataset_free(child);
    kiln_dataset_free(ds);
    snprintf(input_ok, sizeof input_ok, "%s/in.h5", root);
    snprintf(input_nan, sizeof input_nan, "%s/nan.h5", root);
    if (!bad) bad = write_input(input_ok, -1) || write_input(input_nan, 777);
    return bad ? -1 : 0;
}

/* The float32 array name of an HDF5 file into a malloc'd buffer. */
static void *read_array(const char *path, const char *name, size_t *bytes)
{
    void *buf = NULL;
    *bytes = 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return NULL;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d >= 0) {
        hid_t t = H5Dget_type(d);
        hid_t sp = H5Dget_space(d);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        size_t size = H5Tget_size(t);
        buf = n > 0 ? malloc((size_t)n * size) : NULL;
        if (buf && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) {
            *bytes = (size_t)n * size;
        } else {
            free(buf);
            buf = NULL;
        }
        H5Sclose(sp);
        H5Tclose(t);
        H5Dclose(d);
    }
    H5Fclose(f);
    return buf;
}

static enum kiln_status score_job(const char *model, const char *input, const char *out_name,
                                  int64_t batch, bool staged, bool resume,
                                  struct kiln_score_result *res)
{
    char out[4300];
    snprintf(out, sizeof out, "%s/%s", root, out_name);
    struct kiln_score_job job = {.model = model, .input = input, .input_array = "X",
                                 .output = out, .device = "cpu", .batch = batch, .threads = 1,
                                 .resume = resume};
    return score_run(&job, staged, res);
}

static enum kiln_status score(const char *model, const char *input, const char *out_name,
                              int64_t batch, bool staged, struct kiln_score_result *res)
{
    return score_job(model, input, out_name, batch, staged, false, res);
}

/* Whether outputs root/a and root/b hold the same /prob and /pred, byte
 * for byte. */
static void check_same_outputs(const char *a, const char *b, int64_t batch)
{
    char pa[4300], pb[4300];
    snprintf(pa, sizeof pa, "%s/%s", root, a);
    snprintf(pb, sizeof pb, "%s/%s", root, b);
    const char *arrays[] = {"prob", "pred"};
    for (int i = 0; i < 2; i++) {
        size_t na = 0, nb = 0;
        void *xa = read_array(pa, arrays[i], &na), *xb = read_array(pb, arrays[i], &nb);
        bool same = xa && xb && na == nb && na > 0 && memcmp(xa, xb, na) == 0;
        free(xa);
        free(xb);
        if (!same) TEST_FAIL("batch %lld: /%s differs between %s and %s", (long long)batch,
                             arrays[i], a, b);
    }
}

/* Scores model over the clean input in chunks of batch rows both ways and
 * compares every output array byte for byte. */
static void check_same(const char *model, int64_t batch)
{
    struct kiln_score_result a, b;
    ASSERT_OK(score(model, input_ok, "inplace.h5", batch, false, &a));
    ASSERT_OK(score(model, input_ok, "staged.h5", batch, true, &b));
    ASSERT_EQ_INT(ROWS, a.rows);
    ASSERT_EQ_INT(ROWS, b.rows);
    check_same_outputs("inplace.h5", "staged.h5", batch);
}

/* 1000 rows: 11 chunks of 96 (the last 40 rows), 4 of 250, 1 of 1000. */
TEST(staged_equals_inplace_odd_chunks) { check_same(model_plain, 96); }
TEST(staged_equals_inplace_even_chunks) { check_same(model_plain, 250); }
TEST(staged_equals_inplace_one_chunk) { check_same(model_plain, ROWS); }
TEST(staged_equals_inplace_with_transforms) { check_same(model_tf, 96); }

TEST(staged_nan_row_fails_alike)
{
    struct kiln_score_result r;
    char inplace[1024];
    ASSERT_STATUS(KILN_ERR_FORMAT, score(model_tf, input_nan, "nan1.h5", 96, false, &r),
                  "X[777, 2] is NaN");
    snprintf(inplace, sizeof inplace, "%s", kiln_last_error());
    ASSERT_STATUS(KILN_ERR_FORMAT, score(model_tf, input_nan, "nan2.h5", 96, true, &r),
                  "X[777, 2] is NaN");
    ASSERT_EQ_STR(inplace, kiln_last_error());
}

/* A device error mid-run (the 5th chunk's upload failing, by fault
 * injection): the staged pipeline stops with it and leaves no output under
 * the name; --resume then finishes the run, equal to an uninterrupted one. */
TEST(staged_upload_failure_stops_then_resumes)
{
    struct kiln_score_result r;
    char out[4300];
    snprintf(out, sizeof out, "%s/fault.h5", root);
    ASSERT_OK(score(model_plain, input_ok, "ref.h5", 96, false, &r));
    backend_fail_upload_async_at(5);
    enum kiln_status st = score(model_plain, input_ok, "fault.h5", 96, true, &r);
    backend_fail_upload_async_at(0);
    ASSERT_EQ_INT(KILN_ERR_BACKEND, st);
    if (!strstr(kiln_last_error(), "injected failure"))
        TEST_FAIL("message: %s", kiln_last_error());
    ASSERT(access(out, F_OK) != 0);
    ASSERT_OK(score_job(model_plain, input_ok, "fault.h5", 96, true, true, &r));
    ASSERT_EQ_INT(ROWS, r.rows);
    /* Chunks 0..2 at most were written before chunk 4's upload failed. */
    ASSERT(r.resumed_from % 96 == 0 && r.resumed_from <= 3 * 96);
    check_same_outputs("ref.h5", "fault.h5", 96);
}

int main(void)
{
    if (setup() != 0) {
        fprintf(stderr, "setup failed: %s\n", kiln_last_error());
        return 1;
    }
    RUN(staged_equals_inplace_odd_chunks);
    RUN(staged_equals_inplace_even_chunks);
    RUN(staged_equals_inplace_one_chunk);
    RUN(staged_equals_inplace_with_transforms);
    RUN(staged_nan_row_fails_alike);
    RUN(staged_upload_failure_stops_then_resumes);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return test_summary();
}
