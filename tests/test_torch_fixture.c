/* tests/test_torch_fixture.c: kiln against PyTorch on one small MLP, end to
 * end: probabilities, loss and every gradient at step 0.
 *
 * The fixture tests/data/torch_mlp_fixture.h5 is made by
 * tests/data/make_torch_fixture.py (its docstring gives the layout):
 *
 *     /usr/bin/python3 tests/data/make_torch_fixture.py
 *
 * (Debian's python3-torch and python3-h5py; torch.manual_seed(0), so it is
 * reproducible). It holds nn.Sequential(Flatten, Linear(12, 16), ReLU,
 * Linear(16, 8), Tanh, Linear(8, 4)) with its state_dict, an input batch x
 * [6, 3, 4], labels y [6], the logits, and CrossEntropyLoss (mean) with its
 * gradients, without and with label_smoothing 0.1. kiln builds the same
 * model (input [3, 4]; flatten, dense 16, relu, dense 8, tanh, dense 4),
 * whose parameter views carry the state_dict's names and layouts, loads the
 * parameters by name and runs kiln_model_loss_grad.
 *
 * Tolerances (both sides are float32; they differ only in rounding and
 * summation order, e.g. OpenBLAS vs ATen's GEMM, ~1e-7 relative per value):
 * - probabilities (kiln_model_predict applies softmax for cross-entropy, so
 *   torch's logits go through a float64 softmax here): 1e-6 absolute;
 * - loss: 1e-6 absolute + 1e-6 relative;
 * - gradients, per tensor: 1e-6 absolute + 1e-5 relative to the tensor's
 *   largest entry. Each entry is a sum over the batch of products that can
 *   cancel, so its error scales with the tensor's magnitude, not the
 *   entry's. Observed differences are ~1e-8 (peaks ~0.1); the bound leaves
 *   room for another BLAS's summation order while a wrong layout, transpose
 *   or smoothing term is off by O(peak).
 */
#include <hdf5.h>

#include "test.h"

#include "kernels.h"
#include "kiln/nn.h"

#define FIXTURE "torch_mlp_fixture.h5"
enum { ROWS = 6, CLASSES = 4, IN = 12 };

static hid_t g_file = -1;

static hid_t open_fixture(char *path, size_t len)
{
    const char *dirs[] = {getenv("KILN_TEST_DATA"), "tests/data", "../tests/data",
                          "../../tests/data"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (!dirs[i] || !*dirs[i]) continue;
        snprintf(path, len, "%s/%s", dirs[i], FIXTURE);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fclose(f);
        return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    }
    return -1;
}

/* Reads the float32 (or int32) dataset at name, which must hold exactly n
 * elements, into out. Returns 0 on success. */
static int read_array(const char *name, hid_t mem_type, void *out, hsize_t n)
{
    hid_t d = H5Dopen2(g_file, name, H5P_DEFAULT);
    if (d < 0) {
        fprintf(stderr, "fixture: no dataset %s\n", name);
        return 1;
    }
    hid_t sp = H5Dget_space(d);
    hssize_t count = H5Sget_simple_extent_npoints(sp);
    int ret = 0;
    if (count != (hssize_t)n) {
        fprintf(stderr, "fixture: %s has %lld elements, expected %llu\n", name, (long long)count,
                (unsigned long long)n);
        ret = 1;
    } else if (H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        fprintf(stderr, "fixture: cannot read %s\n", name);
        ret = 1;
    }
    H5Sclose(sp);
    H5Dclose(d);
    return ret;
}

/* Shape check for a parameter: the dataset's dims must equal the view's. */
static int dims_match(const char *name, const struct kiln_param_view *v)
{
    hid_t d = H5Dopen2(g_file, name, H5P_DEFAULT);
    if (d < 0) return 0;
    hid_t sp = H5Dget_space(d);
    hsize_t dims[4] = {0};
    int nd = H5Sget_simple_extent_ndims(sp);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    if (nd != v->ndim) return 0;
    for (int i = 0; i < nd; i++)
        if ((int64_t)dims[i] != v->shape[i]) return 0;
    return 1;
}

static struct kiln_model_config fixture_config(float smoothing)
{
    struct kiln_model_config c;
    memset(&c, 0, sizeof c);
    c.input_ndim = 2;
    c.input_shape[0] = 3;
    c.input_shape[1] = 4;
    c.loss = KILN_LOSS_SOFTMAX_XENT;
    c.label_smoothing = smoothing;
    const enum kiln_layer_kind kinds[] = {KILN_LAYER_FLATTEN, KILN_LAYER_DENSE, KILN_LAYER_RELU,
                                          KILN_LAYER_DENSE,   KILN_LAYER_TANH,  KILN_LAYER_DENSE};
    const int64_t units[] = {0, 16, 0, 8, 0, CLASSES};
    c.n_layers = 6;
    for (int i = 0; i < c.n_layers; i++) {
        c.layers[i].kind = kinds[i];
        c.layers[i].units = units[i];
        c.layers[i].bias = true;
        c.layers[i].init = KILN_INIT_HE_NORMAL;
        c.layers[i].negative_slope = 0.01f;
        c.layers[i].rate = 0.5f;
        c.layers[i].line = i + 1;
    }
    return c;
}

static float g_x[ROWS * IN];
static int32_t g_y[ROWS];

/* Builds the kiln model with the fixture's parameters, runs loss_grad and
 * compares loss and every gradient with prefix (""/"smooth/"). Returns 0
 * when all agree. */
static int check_group(const char *prefix, float smoothing, int threads)
{
    int ret = 1;
    struct kiln_backend *be = NULL;
    struct kiln_model *m = NULL;
    float *params = NULL, *grads = NULL, *want = NULL;
    struct kiln_model_config cfg = fixture_config(smoothing);
    if (kiln_cpu_backend_create(threads, &be) != KILN_OK ||
        kiln_model_create(&cfg, be, ROWS, &m) != KILN_OK) {
        fprintf(stderr, "cannot build the model: %s\n", kiln_last_error());
        goto done;
    }
    int64_t n = kiln_model_param_count(m);
    /* 12*16 + 16 + 16*8 + 8 + 8*4 + 4 */
    if (n != 380 || kiln_model_tensor_count(m) != 6) {
        fprintf(stderr, "model has %lld parameters in %d tensors, torch 380 in 6\n", (long long)n,
                kiln_model_tensor_count(m));
        goto done;
    }
    params = calloc((size_t)n, sizeof(float));
    grads = calloc((size_t)n, sizeof(float));
    want = calloc((size_t)n, sizeof(float));
    if (!params || !grads || !want) goto done;
    char name[96];
    for (int t = 0; t < kiln_model_tensor_count(m); t++) {
        const struct kiln_param_view *v = kiln_model_tensor(m, t);
        snprintf(name, sizeof name, "/params/%s", v->name);
        if (!dims_match(name, v)) {
            fprintf(stderr, "%s: missing or not of kiln's shape [%lld, %lld]\n", name,
                    (long long)v->shape[0], (long long)v->shape[1]);
            goto done;
        }
        if (read_array(name, H5T_NATIVE_FLOAT, params + v->offset, (hsize_t)v->size)) goto done;
        snprintf(name, sizeof name, "/%sgrads/%s", prefix, v->name);
        if (!dims_match(name, v)) {
            fprintf(stderr, "%s: missing or not of kiln's shape\n", name);
            goto done;
        }
        if (read_array(name, H5T_NATIVE_FLOAT, want + v->offset, (hsize_t)v->size)) goto done;
    }
    if (kiln_model_set_params(m, params) != KILN_OK) goto done;

    double loss = NAN;
    float torch_loss = NAN;
    snprintf(name, sizeof name, "/%sloss", prefix);
    if (read_array(name, H5T_NATIVE_FLOAT, &torch_loss, 1)) goto done;
    if (kiln_model_loss_grad(m, g_x, g_y, ROWS, &loss) != KILN_OK ||
        kiln_model_get_grads(m, grads) != KILN_OK) {
        fprintf(stderr, "loss_grad: %s\n", kiln_last_error());
        goto done;
    }
    fprintf(stderr, "   %-8s threads %d: loss kiln %.9g torch %.9g\n", *prefix ? prefix : "plain",
            threads, loss, (double)torch_loss);
    if (!(fabs(loss - torch_loss) <= 1e-6 + 1e-6 * fabs((double)torch_loss))) {
        fprintf(stderr, "%sloss: kiln %.9g, torch %.9g\n", prefix, loss, (double)torch_loss);
        goto done;
    }
    for (int t = 0; t < kiln_model_tensor_count(m); t++) {
        const struct kiln_param_view *v = kiln_model_tensor(m, t);
        double peak = 0.0, worst = 0.0;
        for (int64_t j = 0; j < v->size; j++) peak = fmax(peak, fabs(want[v->offset + j]));
        double tol = 1e-6 + 1e-5 * peak;
        for (int64_t j = 0; j < v->size; j++) {
            double err = fabs((double)grads[v->offset + j] - want[v->offset + j]);
            worst = fmax(worst, err);
            if (!(err <= tol)) {
                fprintf(stderr, "%sgrads/%s[%lld]: kiln %.9g, torch %.9g (tol %.3g)\n", prefix,
                        v->name, (long long)j, (double)grads[v->offset + j],
                        (double)want[v->offset + j], tol);
                goto done;
            }
        }
        if (peak == 0.0) {
            fprintf(stderr, "%sgrads/%s is all zero: the fixture proves nothing\n", prefix, v->name);
            goto done;
        }
        fprintf(stderr, "     %-9s max |g| %.3g, max error %.3g (tol %.3g)\n", v->name, peak, worst,
                tol);
    }
    ret = 0;
done:
    kiln_model_free(m);
    kiln_backend_free(be);
    free(params);
    free(grads);
    free(want);
    return ret;
}

TEST(inputs)
{
    ASSERT(read_array("/x", H5T_NATIVE_FLOAT, g_x, ROWS * IN) == 0);
    ASSERT(read_array("/y", H5T_NATIVE_INT32, g_y, ROWS) == 0);
    for (int r = 0; r < ROWS; r++) ASSERT(g_y[r] >= 0 && g_y[r] < CLASSES);
}

/* Softmax of torch's logits against kiln_model_predict's probabilities. */
TEST(probabilities)
{
    float logits[ROWS * CLASSES], probs[ROWS * CLASSES];
    ASSERT(read_array("/logits", H5T_NATIVE_FLOAT, logits, ROWS * CLASSES) == 0);
    struct kiln_backend *be;
    struct kiln_model *m;
    struct kiln_model_config cfg = fixture_config(0.0f);
    ASSERT_OK(kiln_cpu_backend_create(1, &be));
    ASSERT_OK(kiln_model_create(&cfg, be, ROWS, &m));
    int64_t n = kiln_model_param_count(m);
    float *params = calloc((size_t)n, sizeof(float));
    int bad = 0;
    for (int t = 0; t < kiln_model_tensor_count(m) && !bad; t++) {
        const struct kiln_param_view *v = kiln_model_tensor(m, t);
        char name[64];
        snprintf(name, sizeof name, "/params/%s", v->name);
        bad = read_array(name, H5T_NATIVE_FLOAT, params + v->offset, (hsize_t)v->size);
    }
    enum kiln_status st = bad ? KILN_ERR_FORMAT : kiln_model_set_params(m, params);
    if (st == KILN_OK) st = kiln_model_predict(m, g_x, ROWS, probs);
    free(params);
    kiln_model_free(m);
    kiln_backend_free(be);
    ASSERT_OK(st);
    for (int r = 0; r < ROWS; r++) {
        const float *z = logits + r * CLASSES;
        double mx = -INFINITY, sum = 0.0;
        for (int c = 0; c < CLASSES; c++) mx = fmax(mx, z[c]);
        for (int c = 0; c < CLASSES; c++) sum += exp((double)z[c] - mx);
        for (int c = 0; c < CLASSES; c++) {
            double want = exp((double)z[c] - mx) / sum;
            if (!(fabs(probs[r * CLASSES + c] - want) <= 1e-6))
                TEST_FAIL("probability [%d, %d]: kiln %.9g, softmax(torch logits) %.9g", r, c,
                          (double)probs[r * CLASSES + c], want);
        }
    }
}

TEST(loss_and_grads)
{
    for (int threads = 1; threads <= 2; threads++)
        if (check_group("", 0.0f, threads)) TEST_FAIL("cross-entropy differs from torch");
}

TEST(loss_and_grads_label_smoothing)
{
    float smoothing = NAN;
    hid_t a = H5Aopen(g_file, "label_smoothing", H5P_DEFAULT);
    ASSERT(a >= 0);
    herr_t rd = H5Aread(a, H5T_NATIVE_FLOAT, &smoothing);
    H5Aclose(a);
    ASSERT(rd >= 0);
    ASSERT_NEAR(0.1, smoothing, 1e-7);
    for (int threads = 1; threads <= 2; threads++)
        if (check_group("smooth/", smoothing, threads))
            TEST_FAIL("cross-entropy with label smoothing %g differs from torch", smoothing);
}

int main(void)
{
    char path[4096];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    g_file = open_fixture(path, sizeof path);
    if (g_file < 0) {
        fprintf(stderr, "FAIL: cannot open %s (set KILN_TEST_DATA to tests/data; regenerate it "
                        "with /usr/bin/python3 tests/data/make_torch_fixture.py)\n", FIXTURE);
        return 1;
    }
    fprintf(stderr, "test_torch_fixture: %s\n", path);
    RUN(inputs);
    if (test_failures) return test_summary();
    RUN(probabilities);
    RUN(loss_and_grads);
    RUN(loss_and_grads_label_smoothing);
    H5Fclose(g_file);
    return test_summary();
}
