/* tests/test_gradcheck.c: float64 finite-difference gradient checks for every
 * layer, activation and loss.
 *
 * Each case builds a tiny model with kiln_model_create from a hand-filled
 * struct kiln_model_config, sets random parameters, and runs
 * kiln_model_loss_grad (float32 analytic gradients). A float64 reference
 * forward pass written here (PyTorch's math, nn.Linear weights [out, in])
 * gives the loss, and central differences on it (eps 1e-6 in double) give
 * the numeric gradient of every parameter. The loss must match the reference
 * to float32 precision and every gradient entry within
 *     |analytic - numeric| <= 1e-6 + 1e-4 |numeric|:
 * the analytic side is computed in float32 (activations rounded to 24 bits,
 * sums over the batch in float), which leaves ~1e-7 relative error, a little
 * more on entries that cancel; the numeric side is accurate to ~1e-9
 * (truncation eps^2 ~ 1e-12, rounding 1e-16 / eps ~ 1e-10). Over 60 seeds
 * the worst entry used a tenth of this tolerance. A wrong formula is off by
 * O(|g|), far outside it.
 *
 * Dropout: kiln_model_loss_grad seeds dropout with 0, so its mask is the same
 * on every call; the reference draws the same mask (element i of layer l is
 * kept iff kiln_rng_uniform(0, (l << 44) + i) >= rate, engine/nn/model.c),
 * which makes the numeric differences consistent with the analytic pass.
 * ReLU and leaky ReLU: inputs are redrawn until no pre-activation lies
 * within 1e-3 of the kink.
 */
#include <inttypes.h>

#include "test.h"

#include "elementwise.h"
#include "kernels.h"
#include "kiln/nn.h"

#define GRAD_ATOL 1e-6
#define GRAD_RTOL 1e-4
#define FD_EPS 1e-6
#define KINK_MARGIN 1e-3

static uint64_t g_seed = 7;
static struct kiln_backend *g_be;

/* --- inputs -------------------------------------------------------------------- */

static float rnd_range(double lo, double hi) { return (float)(lo + (hi - lo) * test_rng01()); }

/* --- configs ------------------------------------------------------------------- */

static struct kiln_model_config config(int ndim, const int64_t *shape, enum kiln_loss_kind loss,
                                       float smoothing)
{
    struct kiln_model_config c;
    memset(&c, 0, sizeof c);
    c.input_ndim = ndim;
    for (int d = 0; d < ndim; d++) c.input_shape[d] = shape[d];
    c.loss = loss;
    c.label_smoothing = smoothing;
    return c;
}

static void add(struct kiln_model_config *c, enum kiln_layer_kind kind, double arg, bool bias)
{
    struct kiln_layer_config *l = &c->layers[c->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->bias = bias;
    l->init = KILN_INIT_GLOROT_UNIFORM;
    l->negative_slope = 0.01f;
    l->rate = 0.5f;
    l->line = c->n_layers;
    if (kind == KILN_LAYER_DENSE) l->units = (int64_t)arg;
    if (kind == KILN_LAYER_LEAKY_RELU) l->negative_slope = (float)arg;
    if (kind == KILN_LAYER_DROPOUT) l->rate = (float)arg;
}

#define DENSE(c, units) add((c), KILN_LAYER_DENSE, (units), true)
#define DENSE_NOBIAS(c, units) add((c), KILN_LAYER_DENSE, (units), false)
#define LAYER(c, kind) add((c), (kind), 0, false)

/* --- float64 reference ---------------------------------------------------------- */

/* Parameter layout, worked out independently of the engine: for each dense
 * layer i in order, i.weight [units, in] then i.bias [units]. */
struct ref_layout {
    int64_t in_size, out_size;
    int64_t size_in[KILN_MAX_LAYERS], size_out[KILN_MAX_LAYERS];
    int64_t w_off[KILN_MAX_LAYERS], b_off[KILN_MAX_LAYERS];
    int64_t n_params, max_width;
};

static void ref_plan(const struct kiln_model_config *c, struct ref_layout *L)
{
    int64_t size = 1;
    for (int d = 0; d < c->input_ndim; d++) size *= c->input_shape[d];
    L->in_size = size;
    L->max_width = size;
    L->n_params = 0;
    for (int i = 0; i < c->n_layers; i++) {
        L->size_in[i] = size;
        L->w_off[i] = L->b_off[i] = -1;
        if (c->layers[i].kind == KILN_LAYER_DENSE) {
            L->w_off[i] = L->n_params;
            L->n_params += c->layers[i].units * size;
            if (c->layers[i].bias) {
                L->b_off[i] = L->n_params;
                L->n_params += c->layers[i].units;
            }
            size = c->layers[i].units;
        }
        L->size_out[i] = size;
        if (size > L->max_width) L->max_width = size;
    }
    L->out_size = size;
}

static double ref_act(enum kiln_layer_kind k, double slope, double x)
{
    switch (k) {
    case KILN_LAYER_RELU: return x > 0 ? x : 0.0;
    case KILN_LAYER_LEAKY_RELU: return x > 0 ? x : slope * x;
    case KILN_LAYER_TANH: return tanh(x);
    case KILN_LAYER_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case KILN_LAYER_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    default: return x;
    }
}

/* The model's output for rows inputs (train: dropout on, seed 0, as
 * kiln_model_loss_grad runs it) into out [rows, out_size]; *kink = the
 * smallest |input| of a relu/leaky_relu. */
static void ref_forward(const struct kiln_model_config *c, const struct ref_layout *L,
                        const double *p, const float *x, int64_t rows, bool train, double *out,
                        double *kink)
{
    double *a = malloc((size_t)(rows * L->max_width) * sizeof(double));
    double *b = malloc((size_t)(rows * L->max_width) * sizeof(double));
    for (int64_t i = 0; i < rows * L->in_size; i++) a[i] = x[i];
    if (kink) *kink = INFINITY;
    for (int li = 0; li < c->n_layers; li++) {
        const struct kiln_layer_config *lc = &c->layers[li];
        int64_t in = L->size_in[li], on = L->size_out[li];
        switch (lc->kind) {
        case KILN_LAYER_DENSE: /* y = x W^T + b */
            for (int64_t r = 0; r < rows; r++)
                for (int64_t o = 0; o < on; o++) {
                    double s = L->b_off[li] >= 0 ? p[L->b_off[li] + o] : 0.0;
                    for (int64_t k = 0; k < in; k++) s += a[r * in + k] * p[L->w_off[li] + o * in + k];
                    b[r * on + o] = s;
                }
            {
                double *t = a;
                a = b;
                b = t;
            }
            break;
        case KILN_LAYER_SOFTMAX:
            for (int64_t r = 0; r < rows; r++) {
                double mx = -INFINITY, sum = 0.0;
                for (int64_t k = 0; k < in; k++) mx = fmax(mx, a[r * in + k]);
                for (int64_t k = 0; k < in; k++) sum += exp(a[r * in + k] - mx);
                for (int64_t k = 0; k < in; k++) a[r * in + k] = exp(a[r * in + k] - mx) / sum;
            }
            break;
        case KILN_LAYER_DROPOUT:
            if (train && lc->rate > 0.0f)
                for (int64_t i = 0; i < rows * in; i++) {
                    bool keep = kiln_rng_uniform(0, ((uint64_t)li << 44) + (uint64_t)i) >= lc->rate;
                    a[i] = keep ? a[i] / (1.0 - lc->rate) : 0.0;
                }
            break;
        case KILN_LAYER_FLATTEN: break;
        default:
            for (int64_t i = 0; i < rows * in; i++) {
                if (kink && (lc->kind == KILN_LAYER_RELU || lc->kind == KILN_LAYER_LEAKY_RELU))
                    *kink = fmin(*kink, fabs(a[i]));
                a[i] = ref_act(lc->kind, lc->negative_slope, a[i]);
            }
            break;
        }
    }
    memcpy(out, a, (size_t)(rows * L->out_size) * sizeof(double));
    free(a);
    free(b);
}

/* Mean loss over rows, as torch.nn.CrossEntropyLoss(label_smoothing=s),
 * BCEWithLogitsLoss and MSELoss (reduction mean) compute it. */
static double ref_loss_of(const struct kiln_model_config *c, int64_t k, const double *z,
                          const void *labels, int64_t rows)
{
    double total = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        const double *zr = z + r * k;
        if (c->loss == KILN_LOSS_SOFTMAX_XENT) {
            int32_t y = ((const int32_t *)labels)[r];
            double mx = -INFINITY, sum = 0.0;
            for (int64_t j = 0; j < k; j++) mx = fmax(mx, zr[j]);
            for (int64_t j = 0; j < k; j++) sum += exp(zr[j] - mx);
            double lse = mx + log(sum), s = c->label_smoothing;
            for (int64_t j = 0; j < k; j++) {
                double t = s / (double)k + (j == y ? 1.0 - s : 0.0);
                total -= t * (zr[j] - lse);
            }
        } else {
            const float *t = (const float *)labels + r * k;
            double row = 0.0;
            for (int64_t j = 0; j < k; j++) {
                if (c->loss == KILN_LOSS_BCE_LOGITS)
                    row += fmax(zr[j], 0.0) - zr[j] * t[j] + log1p(exp(-fabs(zr[j])));
                else
                    row += (zr[j] - t[j]) * (zr[j] - t[j]);
            }
            total += row / (double)k;
        }
    }
    return total / (double)rows;
}

static double ref_loss(const struct kiln_model_config *c, const struct ref_layout *L,
                       const double *p, const float *x, const void *labels, int64_t rows,
                       double *kink)
{
    double *z = malloc((size_t)(rows * L->out_size) * sizeof(double));
    ref_forward(c, L, p, x, rows, true, z, kink);
    double loss = ref_loss_of(c, L->out_size, z, labels, rows);
    free(z);
    return loss;
}

/* --- the check -------------------------------------------------------------------- */

#define FAILF(...)                                                                     \
    do {                                                                               \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                \
        fprintf(stderr, __VA_ARGS__);                                                  \
        fprintf(stderr, "\n");                                                         \
        ret = 1;                                                                       \
        goto done;                                                                     \
    } while (0)

#define CHECK_OK(expr)                                                                 \
    do {                                                                               \
        enum kiln_status st_ = (expr);                                                 \
        if (st_ != KILN_OK) FAILF("%s: %s: %s", #expr, kiln_status_name(st_), kiln_last_error()); \
    } while (0)

/* Builds the model of cfg, checks its parameter views against the reference
 * layout, and compares loss, every gradient and the inference outputs with
 * the float64 reference. Returns 0 when all agree. */
static int gradcheck(const char *name, const struct kiln_model_config *cfg, int64_t rows)
{
    int ret = 0;
    struct kiln_model *m = NULL;
    struct ref_layout L;
    ref_plan(cfg, &L);
    const int64_t max_batch = rows + 3; /* a batch smaller than planned */
    float *x = malloc((size_t)(rows * L.in_size) * sizeof(float));
    float *pf = malloc((size_t)L.n_params * sizeof(float));
    float *grads = malloc((size_t)L.n_params * sizeof(float));
    float *grads2 = malloc((size_t)L.n_params * sizeof(float));
    double *pd = malloc((size_t)L.n_params * sizeof(double));
    double *num = malloc((size_t)L.n_params * sizeof(double));
    int64_t nlab = rows * L.out_size;
    float *yf = malloc((size_t)nlab * sizeof(float));
    int32_t *yi = malloc((size_t)rows * sizeof(int32_t));
    float *pred = malloc((size_t)nlab * sizeof(float));
    double *zref = malloc((size_t)nlab * sizeof(double));
    const void *labels = cfg->loss == KILN_LOSS_SOFTMAX_XENT ? (const void *)yi : (const void *)yf;

    CHECK_OK(kiln_model_create(cfg, g_be, max_batch, &m));
    if (kiln_model_param_count(m) != L.n_params)
        FAILF("%s: %lld parameters, expected %lld", name, (long long)kiln_model_param_count(m),
              (long long)L.n_params);
    if (kiln_model_input_size(m) != L.in_size || kiln_model_output_size(m) != L.out_size)
        FAILF("%s: input/output size %lld/%lld, expected %lld/%lld", name,
              (long long)kiln_model_input_size(m), (long long)kiln_model_output_size(m),
              (long long)L.in_size, (long long)L.out_size);
    /* Views: "<layer>.weight" [units, in], "<layer>.bias" [units]. */
    {
        int t = 0;
        for (int i = 0; i < cfg->n_layers; i++) {
            if (L.w_off[i] < 0) continue;
            for (int wb = 0; wb < 2; wb++) {
                if (wb && L.b_off[i] < 0) continue;
                const struct kiln_param_view *v = kiln_model_tensor(m, t++);
                char want[32];
                snprintf(want, sizeof want, "%d.%s", i, wb ? "bias" : "weight");
                if (!v || strcmp(v->name, want) != 0 || v->offset != (wb ? L.b_off[i] : L.w_off[i]) ||
                    v->ndim != (wb ? 1 : 2) || v->shape[0] != L.size_out[i] ||
                    (!wb && v->shape[1] != L.size_in[i]))
                    FAILF("%s: tensor %d is %s at %lld, expected %s at %lld", name, t - 1,
                          v ? v->name : "(none)", v ? (long long)v->offset : -1LL, want,
                          (long long)(wb ? L.b_off[i] : L.w_off[i]));
            }
        }
        if (kiln_model_tensor_count(m) != t)
            FAILF("%s: %d tensors, expected %d", name, kiln_model_tensor_count(m), t);
    }

    /* Random parameters and inputs, redrawn while a ReLU sits on its kink. */
    double kink = 0.0;
    for (int attempt = 0; attempt < 200; attempt++) {
        for (int i = 0; i < cfg->n_layers; i++) {
            if (L.w_off[i] < 0) continue;
            double bound = 1.6 / sqrt((double)L.size_in[i]) + 0.2;
            for (int64_t j = 0; j < L.size_in[i] * L.size_out[i]; j++)
                pf[L.w_off[i] + j] = rnd_range(-bound, bound);
            if (L.b_off[i] >= 0)
                for (int64_t j = 0; j < L.size_out[i]; j++) pf[L.b_off[i] + j] = rnd_range(-0.5, 0.5);
        }
        for (int64_t j = 0; j < rows * L.in_size; j++) x[j] = rnd_range(-1.5, 1.5);
        for (int64_t j = 0; j < L.n_params; j++) pd[j] = pf[j];
        ref_loss(cfg, &L, pd, x, labels, rows, &kink);
        if (kink >= KINK_MARGIN) break;
    }
    if (kink < KINK_MARGIN) FAILF("%s: could not draw inputs away from the ReLU kink", name);
    for (int64_t r = 0; r < rows; r++) yi[r] = (int32_t)(test_rng_u64() % (uint64_t)L.out_size);
    for (int64_t j = 0; j < nlab; j++)
        yf[j] = cfg->loss == KILN_LOSS_BCE_LOGITS
                    ? (j % 2 ? (float)(test_rng_u64() & 1) : rnd_range(0, 1)) /* hard and soft */
                    : rnd_range(-2, 2);

    /* Analytic (kiln, float32). */
    CHECK_OK(kiln_model_set_params(m, pf));
    double loss = NAN;
    CHECK_OK(kiln_model_loss_grad(m, x, labels, rows, &loss));
    CHECK_OK(kiln_model_get_grads(m, grads));

    /* The loss itself: float32 per-row losses, summed in double. */
    double want_loss = ref_loss(cfg, &L, pd, x, labels, rows, NULL);
    if (!(fabs(loss - want_loss) <= 1e-5 * fabs(want_loss) + 1e-6))
        FAILF("%s: loss %.9g, reference %.9g", name, loss, want_loss);

    /* Numeric (float64 central differences). */
    for (int64_t j = 0; j < L.n_params; j++) {
        double keep = pd[j];
        pd[j] = keep + FD_EPS;
        double lp = ref_loss(cfg, &L, pd, x, labels, rows, NULL);
        pd[j] = keep - FD_EPS;
        double lm = ref_loss(cfg, &L, pd, x, labels, rows, NULL);
        pd[j] = keep;
        num[j] = (lp - lm) / (2.0 * FD_EPS);
    }
    double worst = 0.0, max_g = 0.0;
    for (int64_t j = 0; j < L.n_params; j++) {
        double err = fabs((double)grads[j] - num[j]);
        double tol = GRAD_ATOL + GRAD_RTOL * fabs(num[j]);
        worst = fmax(worst, err / tol);
        max_g = fmax(max_g, fabs(num[j]));
        if (!(err <= tol)) {
            const char *tname = "?";
            for (int t = 0; t < kiln_model_tensor_count(m); t++) {
                const struct kiln_param_view *v = kiln_model_tensor(m, t);
                if (j >= v->offset && j < v->offset + v->size) tname = v->name;
            }
            FAILF("%s: gradient of parameter %lld (%s): kiln %.9g, numeric %.9g", name,
                  (long long)j, tname, (double)grads[j], num[j]);
        }
    }
    fprintf(stderr, "   %-28s %3lld params, loss %.6f, max |g| %.3g, worst err/tol %.3f\n", name,
            (long long)L.n_params, loss, max_g, worst);
    if (max_g < 1e-3) FAILF("%s: gradients are all ~0: the check proves nothing", name);

    /* The gradient buffer is overwritten, not accumulated: a second call on
     * other data, then the first again, gives the same bits. */
    {
        float *x2 = malloc((size_t)(rows * L.in_size) * sizeof(float));
        for (int64_t j = 0; j < rows * L.in_size; j++) x2[j] = -x[j];
        double l2;
        enum kiln_status st = kiln_model_loss_grad(m, x2, labels, rows, &l2);
        free(x2);
        CHECK_OK(st);
        CHECK_OK(kiln_model_loss_grad(m, x, labels, rows, &l2));
        CHECK_OK(kiln_model_get_grads(m, grads2));
        if (memcmp(grads, grads2, (size_t)L.n_params * sizeof(float)) != 0 ||
            memcmp(&l2, &loss, sizeof loss) != 0)
            FAILF("%s: a repeated loss_grad gives different gradients or loss", name);
    }

    /* Inference: dropout off; softmax for cross-entropy, sigmoid for BCE,
     * raw outputs for MSE. */
    CHECK_OK(kiln_model_predict(m, x, rows, pred));
    ref_forward(cfg, &L, pd, x, rows, false, zref, NULL);
    for (int64_t r = 0; r < rows; r++) {
        double *z = zref + r * L.out_size, mx = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j < L.out_size; j++) mx = fmax(mx, z[j]);
        for (int64_t j = 0; j < L.out_size; j++) sum += exp(z[j] - mx);
        for (int64_t j = 0; j < L.out_size; j++) {
            if (cfg->loss == KILN_LOSS_SOFTMAX_XENT) z[j] = exp(z[j] - mx) / sum;
            else if (cfg->loss == KILN_LOSS_BCE_LOGITS) z[j] = 1.0 / (1.0 + exp(-z[j]));
        }
    }
    for (int64_t j = 0; j < nlab; j++)
        if (!(fabs(pred[j] - zref[j]) <= 1e-5 * fabs(zref[j]) + 1e-6))
            FAILF("%s: predict output %lld is %.9g, reference %.9g", name, (long long)j,
                  (double)pred[j], zref[j]);

done:
    kiln_model_free(m);
    free(x);
    free(pf);
    free(grads);
    free(grads2);
    free(pd);
    free(num);
    free(yf);
    free(yi);
    free(pred);
    free(zref);
    return ret;
}

#define GRADCHECK(name, cfg, rows)                                                     \
    do {                                                                               \
        if (gradcheck((name), &(cfg), (rows))) TEST_FAIL("gradient check '%s' failed", (name)); \
    } while (0)

static const int64_t IN5[] = {5};

/* --- layers ------------------------------------------------------------------------ */

TEST(dense)
{
    struct kiln_model_config c = config(1, IN5, KILN_LOSS_SOFTMAX_XENT, 0.0f);
    DENSE(&c, 3);
    GRADCHECK("dense", c, 6);
    /* dense -> dense, no activation between */
    c = config(1, IN5, KILN_LOSS_SOFTMAX_XENT, 0.0f);
    DENSE(&c, 7);
    DENSE(&c, 3);
    GRADCHECK("dense-dense", c, 6);
}

TEST(dense_no_bias)
{
    struct kiln_model_config c = config(1, IN5, KILN_LOSS_SOFTMAX_XENT, 0.0f);
    DENSE_NOBIAS(&c, 7);
    LAYER(&c, KILN_LAYER_TANH);
    DENSE_NOBIAS(&c, 3);
    GRADCHECK("dense without bias", c, 6);
    c = config(1, IN5, KILN_LOSS_MSE, 0.0f);
    DENSE(&c, 7);
    LAYER(&c, KILN_LAYER_SIGMOID);
    DENSE_NOBIAS(&c, 2);
    GRADCHECK("mixed bias / no bias", c, 6);
}

/* input 5 -> dense 7 -> act -> dense 3 (fused into the dense epilogue for all
 * but GELU, whose derivative needs the input). */
static void act_case(const char *name, enum kiln_layer_kind act, double arg, int *failed)
{
    struct kiln_model_config c = config(1, IN5, KILN_LOSS_SOFTMAX_XENT, 0.0f);
    DENSE(&c, 7);
    add(&c, act, arg, false);
    DENSE(&c, 3);
    *failed = gradcheck(name, &c, 6);
}

TEST(relu)
{
    int f;
    act_case("relu", KILN_LAYER_RELU, 0, &f);
    ASSERT(!f);
}
TEST(leaky_relu)
{
    int f;
    act_case("leaky_relu(0.01)", KILN_LAYER_LEAKY_RELU, 0.01, &f);
    ASSERT(!f);
    act_case("leaky_relu(0.2)", KILN_LAYER_LEAKY_RELU, 0.2, &f);
    ASSERT(!f);
}
TEST(tanh)
{
    int f;
    act_case("tanh", KILN_LAYER_TANH, 0, &f);
    ASSERT(!f);
}
TEST(sigmoid)
{
    int f;
    act_case("sigmoid", KILN_LAYER_SIGMOID, 0, &f);
    ASSERT(!f);
}
TEST(gelu)
{
    int f;
    act_case("gelu", KILN_LAYER_GELU, 0, &f);
    ASSERT(!f);
}

/* Activations that are not fused: after another activation, and first. */
TEST(unfused_activations)
{
    struct kiln_model_config c = config(1, IN5, KILN_LOSS_SOFTMAX_XENT, 0.0f);
    DENSE(&c, 7);
    LAYER(&c, KILN_LAYER_TANH);
    LAYER(&c, KILN_LAYER_RELU); /* not fused: follows tanh */
    DENSE(&c, 6);
    LAYER(&c, KILN_LAYER_GELU);
    add(&c, KILN_LAYER_LEAKY_RELU, 0.1, false); /* after an unfused GELU */
    DENSE(&c, 3);
    GRADCHECK("tanh,relu / gelu,leaky chains", c, 6);
    c = config(1, IN5, KILN_LOSS_SOFTMAX_XENT, 0.0f);
    LAYER(&c, KILN_LAYER_SIGMOID); /* before any parameter */
    DENSE(&c, 4);
    LAYER(&c, KILN_LAYER_SIGMOID);
    DENSE(&c, 3);
    GRADCHECK("activation on the input", c, 6);
}

TEST(softmax_layer)
{
    struct kiln_model_config c = config(1, IN5, KILN_LOSS_SOFTMAX_XENT, 0.0f);
    DENSE(&c, 6);
    LAYER(&c, KILN_LAYER_SOFTMAX);
    DENSE(&c, 3);
    GRADCHECK("hidden softmax", c, 6);
    c = config(1, IN5, KILN_LOSS_MSE, 0.0f);
    DENSE(&c, 4);
    LAYER(&c, KILN_LAYER_SOFTMAX); /* softmax outputs into the loss */
    GRADCHECK("softmax output + mse", c, 6);
}

TEST(dropout)
{
    struct kiln_model_config c = config(1, IN5, KILN_LOSS_SOFTMAX_XENT, 0.0f);
    DENSE(&c, 16);
    LAYER(&c, KILN_LAYER_RELU);
    add(&c, KILN_LAYER_DROPOUT, 0.3, false);
    DENSE(&c, 3);
    GRADCHECK("dropout(0.3) after relu", c, 6);
    c = config(1, IN5, KILN_LOSS_SOFTMAX_XENT, 0.0f);
    add(&c, KILN_LAYER_DROPOUT, 0.3, false); /* on the input */
    DENSE(&c, 8);
    LAYER(&c, KILN_LAYER_TANH);
    add(&c, KILN_LAYER_DROPOUT, 0.3, false);
    DENSE(&c, 3);
    GRADCHECK("dropout(0.3) on input and hidden", c, 6);
    /* Dropout directly after a dense (not after an activation), then GELU,
     * which reads the dropout's output as its input. */
    c = config(1, IN5, KILN_LOSS_MSE, 0.0f);
    DENSE(&c, 9);
    add(&c, KILN_LAYER_DROPOUT, 0.3, false);
    LAYER(&c, KILN_LAYER_GELU);
    DENSE(&c, 2);
    GRADCHECK("dense, dropout, gelu", c, 6);
}

TEST(flatten)
{
    static const int64_t shape[] = {2, 3, 2};
    struct kiln_model_config c = config(3, shape, KILN_LOSS_SOFTMAX_XENT, 0.0f);
    LAYER(&c, KILN_LAYER_FLATTEN);
    DENSE(&c, 4);
    LAYER(&c, KILN_LAYER_TANH);
    DENSE(&c, 3);
    GRADCHECK("flatten [2,3,2]", c, 6);
    static const int64_t shape2[] = {3, 4};
    c = config(2, shape2, KILN_LOSS_BCE_LOGITS, 0.0f);
    add(&c, KILN_LAYER_DROPOUT, 0.3, false); /* element-wise layers before flatten */
    LAYER(&c, KILN_LAYER_FLATTEN);
    DENSE(&c, 5);
    LAYER(&c, KILN_LAYER_RELU);
    DENSE(&c, 2);
    GRADCHECK("dropout, flatten [3,4]", c, 6);
}

/* --- losses ------------------------------------------------------------------------ */

static struct kiln_model_config loss_model(enum kiln_loss_kind loss, float smoothing, int64_t out)
{
    struct kiln_model_config c = config(1, IN5, loss, smoothing);
    DENSE(&c, 7);
    LAYER(&c, KILN_LAYER_TANH);
    DENSE(&c, out);
    return c;
}

TEST(softmax_cross_entropy)
{
    struct kiln_model_config c = loss_model(KILN_LOSS_SOFTMAX_XENT, 0.0f, 3);
    GRADCHECK("softmax_cross_entropy", c, 6);
    c = loss_model(KILN_LOSS_SOFTMAX_XENT, 0.0f, 2);
    GRADCHECK("softmax_cross_entropy, 2 classes, 1 row", c, 1);
}

TEST(softmax_cross_entropy_smoothing)
{
    struct kiln_model_config c = loss_model(KILN_LOSS_SOFTMAX_XENT, 0.1f, 3);
    GRADCHECK("softmax_xent smoothing 0.1", c, 6);
    c = loss_model(KILN_LOSS_SOFTMAX_XENT, 0.3f, 5);
    GRADCHECK("softmax_xent smoothing 0.3", c, 6);
}

TEST(bce_with_logits)
{
    struct kiln_model_config c = loss_model(KILN_LOSS_BCE_LOGITS, 0.0f, 3);
    GRADCHECK("bce_with_logits, 3 outputs", c, 6);
    c = loss_model(KILN_LOSS_BCE_LOGITS, 0.0f, 1);
    GRADCHECK("bce_with_logits, 1 output", c, 6);
}

TEST(mse)
{
    struct kiln_model_config c = loss_model(KILN_LOSS_MSE, 0.0f, 3);
    GRADCHECK("mse, 3 outputs", c, 6);
    c = loss_model(KILN_LOSS_MSE, 0.0f, 1);
    GRADCHECK("mse, 1 output", c, 6);
}

/* Everything at once, deeper. */
TEST(deep_mixed)
{
    struct kiln_model_config c = config(1, IN5, KILN_LOSS_SOFTMAX_XENT, 0.1f);
    DENSE(&c, 8);
    LAYER(&c, KILN_LAYER_GELU);
    add(&c, KILN_LAYER_DROPOUT, 0.3, false);
    DENSE(&c, 6);
    LAYER(&c, KILN_LAYER_SIGMOID);
    DENSE_NOBIAS(&c, 4);
    add(&c, KILN_LAYER_LEAKY_RELU, 0.05, false);
    DENSE(&c, 3);
    GRADCHECK("deep mixed", c, 5);
}

int main(void)
{
    const char *env = getenv("KILN_TEST_SEED");
    if (env && *env) g_seed = strtoull(env, NULL, 0);
    test_rng_state = g_seed;
    fprintf(stderr, "test_gradcheck: seed %llu (set KILN_TEST_SEED to repeat)\n",
            (unsigned long long)g_seed);
    if (kiln_cpu_backend_create(1, &g_be) != KILN_OK) {
        fprintf(stderr, "cannot create the cpu backend: %s\n", kiln_last_error());
        return 1;
    }
    RUN(dense);
    RUN(dense_no_bias);
    RUN(relu);
    RUN(leaky_relu);
    RUN(tanh);
    RUN(sigmoid);
    RUN(gelu);
    RUN(unfused_activations);
    RUN(softmax_layer);
    RUN(dropout);
    RUN(flatten);
    RUN(softmax_cross_entropy);
    RUN(softmax_cross_entropy_smoothing);
    RUN(bce_with_logits);
    RUN(mse);
    RUN(deep_mixed);
    kiln_backend_free(g_be);
    return test_summary();
}
