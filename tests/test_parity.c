/* tests/test_parity.c: every op of every backend against a float64
 * reference, from one table of cases (STYLE.md's parity harness).
 *
 * Backends: the CPU, and when a CUDA device answers the CUDA backend with
 * cuBLAS, with kiln's own SGEMM, and each with TF32 (GEMM cases only). Each
 * case draws inputs from the printed seed (KILN_TEST_SEED repeats a run),
 * uploads them, poisons every output with NaN, runs the op, downloads the
 * output with the sentinel float after its end, and compares: NaN and Inf
 * exactly where the reference has them, anything else within
 * rtol |ref| + atol * scale (scale: the size of the terms the op combines).
 *
 *   test_parity           CPU cases and device cases; exits 77 (skipped)
 *                         at once when no CUDA device answers (the CPU
 *                         cases are test_parity --cpu's), so a machine
 *                         without a GPU never reports the device cases as
 *                         passed
 *   test_parity --cpu     the CPU cases only (0 when they pass)
 */
#include <float.h>
#include <inttypes.h>

#include "test.h"

#include "elementwise.h"
#include "kernel-ref.h"
#include "kernels.h"
#include "kiln/backend.h"

static uint64_t g_seed = 20250301;
static float rnd(double lo, double hi) { return (float)(lo + (hi - lo) * test_rng01()); }
static void fill(float *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = rnd(lo, hi);
}

/* --- backends under test ---------------------------------------------------------- */

struct pbe {
    const char *name;
    struct kiln_backend *be;
    bool tf32;      /* GEMMs round inputs to TF32 */
    bool gemm_only; /* a second GEMM configuration of a backend already tested */
};
#define MAX_BE 5
static struct pbe g_be[MAX_BE];
static int g_nbe;
static bool g_have_device;

#define OPS(b) ((b)->be->iface->ops)
#define CTX(b) ((b)->be->ctx)

static const float SENTINEL = 1234.5678f;

/* Backend buffers: inputs uploaded, outputs poisoned with NaN and followed
 * by the sentinel. */
static void *dev_in(const struct pbe *b, const void *host, size_t bytes)
{
    void *p = b->be->iface->alloc(b->be->ctx, bytes ? bytes : 1);
    if (!p) abort();
    if (bytes && b->be->iface->upload(b->be->ctx, p, host, bytes) != KILN_OK) abort();
    return p;
}

static float *dev_out(const struct pbe *b, const float *init, int64_t n)
{
    float *h = malloc((size_t)(n + 1) * sizeof(float));
    if (!h) abort();
    for (int64_t i = 0; i < n; i++) h[i] = init ? init[i] : NAN;
    h[n] = SENTINEL;
    float *p = dev_in(b, h, (size_t)(n + 1) * sizeof(float));
    free(h);
    return p;
}

static float *fetch(const struct pbe *b, const float *dev, int64_t n)
{
    float *h = malloc((size_t)(n + 1) * sizeof(float));
    if (!h) abort();
    enum kiln_status st = b->be->iface->download(b->be->ctx, h, dev, (size_t)(n + 1) * sizeof(float));
    if (st != KILN_OK) {
        fprintf(stderr, "download failed: %s\n", kiln_last_error());
        abort();
    }
    return h;
}

static void dev_free(const struct pbe *b, void *p) { b->be->iface->free(b->be->ctx, p); }

static double *dbuf(int64_t n)
{
    double *p = calloc((size_t)(n ? n : 1), sizeof(double));
    if (!p) abort();
    return p;
}

/* Index of the first mismatch (NaN/Inf pattern, tolerance, or the sentinel
 * at n), or -1. */
static int64_t mismatch(const float *got, const double *ref, int64_t n, double rtol, double atol,
                        const double *scale)
{
    int64_t i = ref_first_mismatch(got, ref, n, rtol, atol, scale);
    if (i >= 0) return i;
    if (memcmp(&got[n], &SENTINEL, sizeof(float)) != 0) return n;
    return -1;
}

#define CHECK(b, got, ref, n, rtol, atol, scale, ...)                                         \
    do {                                                                                      \
        int64_t bad_ = mismatch((got), (ref), (n), (rtol), (atol), (scale));                  \
        if (bad_ >= 0) {                                                                      \
            fprintf(stderr, "  backend %s, case: ", (b)->name);                               \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fprintf(stderr, "\n");                                                            \
            if (bad_ == (n))                                                                  \
                TEST_FAIL("%s: the sentinel after element %" PRId64 " was overwritten", #got, \
                          (int64_t)(n));                                                      \
            TEST_FAIL("%s[%" PRId64 "] = %.9g, reference %.9g (n %" PRId64 ")", #got, bad_,   \
                      (double)(got)[bad_], (ref)[bad_], (int64_t)(n));                        \
        }                                                                                     \
    } while (0)

#define FOR_BACKENDS(b)                                                                       \
    for (const struct pbe *b = g_be; b < g_be + g_nbe; b++)                                   \
        if (!b->gemm_only)

#define FOR_GEMM_BACKENDS(b) for (const struct pbe *b = g_be; b < g_be + g_nbe; b++)

/* GEMM tolerance: FP32 sums of k terms; TF32 rounds inputs to 10 bits
 * (relative 2^-11 each), so the error bound grows to ~1e-3 of the terms. */
static double gemm_atol(const struct pbe *b) { return b->tf32 ? 2e-3 : 1e-5; }

/* --- shapes ------------------------------------------------------------------------------ */

static const int64_t SIZES[] = {1, 7, 33, 127, 1031, 5 * 7 * 11 * 13, 40000, (1 << 20) + 3};
/* KILN_PARITY_QUICK=1 (compute-sanitizer runs) drops the largest size. */
static int g_n_sizes = (int)(sizeof SIZES / sizeof SIZES[0]);
static bool g_quick;
#define N_SIZES g_n_sizes
static const int64_t SHAPES2[][2] = {{1, 1},   {7, 33},    {127, 7},  {35, 143}, {1, 1031},
                                     {33, 1000}, {300, 100}, {128, 10}, {4096, 10}};
#define N_SHAPES2 ((int)(sizeof SHAPES2 / sizeof SHAPES2[0]))

/* The absolute tolerance's scale for act(x): 1 + |x|. GELU's 0.5 x (1 +
 * erf(x / sqrt 2)) cancels where erf nears -1, so each ulp of erff there
 * (6e-8; CUDA's erff is within 2 ulp, glibc's within 1) shows as 3e-8 |x|
 * of absolute error on a result near 0. */
static double act_atol_scale(float x) { return 1.0 + (isfinite(x) ? fabs((double)x) : 0.0); }

/* Puts NaN, +Inf and -Inf at a few places (when n allows). */
static void sprinkle_nonfinite(float *x, int64_t n)
{
    if (n > 3) {
        x[1] = NAN;
        x[n / 2] = INFINITY;
        x[n - 2] = -INFINITY;
    }
}

/* ==================================================================================
 * cases
 * ================================================================================== */

/* GEMM: every transpose, padded leading dimensions, alpha/beta, sizes that
 * are not multiples of any tile (and the MLP's layer shapes). */
TEST(gemm)
{
    /* The last three are big enough that kiln's SGEMM picks its 64x64 and
     * 128x128 tiles on a GPU with ~100-140 SMs (smaller GEMMs all take the
     * 32x32 tile): partial tiles, a K tail, float4 paths (dimensions that
     * are multiples of 4) and scalar ones (odd dimensions). */
    static const int64_t shapes[][3] = {{1, 1, 1},     {7, 33, 127},   {33, 7, 1031},
                                        {35, 11, 13},  {127, 127, 33}, {130, 129, 67},
                                        {128, 256, 784}, {256, 784, 128}, {128, 10, 128},
                                        {257, 300, 9},  {1000, 700, 36}, {1540, 1532, 20},
                                        {1543, 1537, 19}};
    enum { FIRST_BIG = 10 };
    static const float ab[][2] = {{1.0f, 0.0f}, {0.5f, -1.5f}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int c = 0; c < 2; c++)
                    for (int pad = 0; pad < 2; pad++) {
                        /* Under compute-sanitizer (quick) the big shapes run
                         * once per transpose pair, with beta. */
                        if (g_quick && s >= FIRST_BIG && (c == 0 || pad == 1 || ta != tb))
                            continue;
                        int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                        float alpha = ab[c][0], beta = ab[c][1];
                        /* pad 1: odd leading dimensions (no vector loads). */
                        int64_t lda = (ta ? m : k) + 3 * pad, ldb = (tb ? k : n) + 2 * pad;
                        int64_t ldc = n + 5 * pad;
                        int64_t ar = ta ? k : m, br = tb ? n : k;
                        float *a = malloc((size_t)(ar * lda) * sizeof(float));
                        float *bb = malloc((size_t)(br * ldb) * sizeof(float));
                        float *c0 = malloc((size_t)(m * ldc) * sizeof(float));
                        fill(a, ar * lda, -1, 1);
                        fill(bb, br * ldb, -1, 1);
                        fill(c0, m * ldc, -1, 1);
                        if (beta == 0.0f) /* C is output only: a NaN must not leak */
                            for (int64_t i = 0; i < m; i++)
                                for (int64_t j = 0; j < n; j++) c0[i * ldc + j] = NAN;
                        double *ref = dbuf(m * ldc), *scale = dbuf(m * ldc);
                        for (int64_t i = 0; i < m; i++)
                            for (int64_t j = 0; j < ldc; j++) {
                                if (j >= n) {
                                    ref[i * ldc + j] = c0[i * ldc + j];
                                    continue;
                                }
                                double acc = 0.0, mag = 0.0;
                                for (int64_t p = 0; p < k; p++) {
                                    double av = ta ? a[p * lda + i] : a[i * lda + p];
                                    double bv = tb ? bb[j * ldb + p] : bb[p * ldb + j];
                                    acc += av * bv;
                                    mag += fabs(av * bv);
                                }
                                double cv = beta != 0.0f ? c0[i * ldc + j] : 0.0;
                                ref[i * ldc + j] = alpha * acc + beta * cv;
                                scale[i * ldc + j] = fabs(alpha) * mag + fabs(beta * cv);
                            }
                        FOR_GEMM_BACKENDS(b)
                        {
                            float *da = dev_in(b, a, (size_t)(ar * lda) * sizeof(float));
                            float *db = dev_in(b, bb, (size_t)(br * ldb) * sizeof(float));
                            float *dc = dev_out(b, c0, m * ldc);
                            ASSERT_OK(OPS(b)->gemm(CTX(b), ta, tb, m, n, k, alpha, da, lda, db,
                                                   ldb, beta, dc, ldc));
                            float *got = fetch(b, dc, m * ldc);
                            CHECK(b, got, ref, m * ldc, 0.0, gemm_atol(b), scale,
                                  "gemm m %lld n %lld k %lld ta %d tb %d alpha %g beta %g pad %d",
                                  (long long)m, (long long)n, (long long)k, ta, tb, alpha, beta,
                                  pad);
                            free(got);
                            dev_free(b, da);
                            dev_free(b, db);
                            dev_free(b, dc);
                        }
                        free(a);
                        free(bb);
                        free(c0);
                        free(ref);
                        free(scale);
                    }
}

/* The dense forward: y = act(x w^T + bias), through dense_forward where the
 * backend fuses it, else gemm + bias_act. */
TEST(dense_forward)
{
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 33, 127}, {128, 256, 784}, {128, 10, 128},
                                        {33, 131, 5}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ai = 0; ai < N_ACTS; ai++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                const struct act_case *ac = &ACTS[ai];
                float *x = malloc((size_t)(m * k) * sizeof(float));
                float *w = malloc((size_t)(n * k) * sizeof(float));
                float *bias = malloc((size_t)n * sizeof(float));
                fill(x, m * k, -1, 1);
                fill(w, n * k, -1, 1);
                fill(bias, n, -1, 1);
                double *ref = dbuf(m * n), *scale = dbuf(m * n);
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double acc = with_bias ? bias[j] : 0.0, mag = fabs(acc);
                        for (int64_t p = 0; p < k; p++) {
                            acc += (double)x[i * k + p] * w[j * k + p];
                            mag += fabs((double)x[i * k + p] * w[j * k + p]);
                        }
                        ref[i * n + j] = ref_act(ac->act, ac->param, acc);
                        scale[i * n + j] = mag;
                    }
                FOR_GEMM_BACKENDS(b)
                {
                    float *dx = dev_in(b, x, (size_t)(m * k) * sizeof(float));
                    float *dw = dev_in(b, w, (size_t)(n * k) * sizeof(float));
                    float *dbias = dev_in(b, bias, (size_t)n * sizeof(float));
                    float *dy = dev_out(b, NULL, m * n);
                    const float *bp = with_bias ? dbias : NULL;
                    if (OPS(b)->dense_forward) {
                        ASSERT_OK(OPS(b)->dense_forward(CTX(b), m, n, k, dx, dw, bp, ac->act,
                                                        ac->param, dy));
                    } else {
                        ASSERT_OK(OPS(b)->gemm(CTX(b), false, true, m, n, k, 1.0f, dx, k, dw, k,
                                               0.0f, dy, n));
                        ASSERT_OK(OPS(b)->bias_act(CTX(b), dy, bp, m, n, ac->act, ac->param));
                    }
                    float *got = fetch(b, dy, m * n);
                    /* The activations' slopes are <= 1.13 (gelu): the GEMM's
                     * tolerance carries through. */
                    CHECK(b, got, ref, m * n, 2e-6, 1.2 * gemm_atol(b), scale,
                          "dense m %lld n %lld k %lld act %s bias %d", (long long)m, (long long)n,
                          (long long)k, ac->name, with_bias);
                    free(got);
                    dev_free(b, dx);
                    dev_free(b, dw);
                    dev_free(b, dbias);
                    dev_free(b, dy);
                }
                free(x);
                free(w);
                free(bias);
                free(ref);
                free(scale);
            }
}

TEST(bias_act)
{
    for (int s = 0; s < N_SHAPES2; s++)
        for (int ai = 0; ai < N_ACTS; ai++) {
            int64_t rows = SHAPES2[s][0], cols = SHAPES2[s][1], n = rows * cols;
            const struct act_case *ac = &ACTS[ai];
            float *y0 = malloc((size_t)n * sizeof(float)), *bias = malloc((size_t)cols * sizeof(float));
            fill(y0, n, -4, 4);
            fill(bias, cols, -1, 1);
            sprinkle_nonfinite(y0, n);
            double *ref = dbuf(n), *xs = dbuf(n);
            for (int64_t i = 0; i < n; i++) {
                float v = y0[i] + bias[i % cols];
                ref[i] = ref_act(ac->act, ac->param, (double)v);
                xs[i] = act_atol_scale(v);
            }
            FOR_BACKENDS(b)
            {
                float *dy = dev_out(b, y0, n);
                float *dbias = dev_in(b, bias, (size_t)cols * sizeof(float));
                ASSERT_OK(OPS(b)->bias_act(CTX(b), dy, dbias, rows, cols, ac->act, ac->param));
                float *got = fetch(b, dy, n);
                /* rtol 2e-6: expf/tanhf/erff within a few ulp (see
                 * act_atol_scale for the absolute part). */
                CHECK(b, got, ref, n, 2e-6, 1e-7, xs, "bias_act %lldx%lld %s", (long long)rows,
                      (long long)cols, ac->name);
                free(got);
                dev_free(b, dy);
                dev_free(b, dbias);
            }
            free(y0);
            free(bias);
            free(ref);
            free(xs);
        }
}

TEST(act_forward_backward)
{
    for (int s = 0; s < N_SIZES; s++)
        for (int ai = 0; ai < N_ACTS; ai++) {
            int64_t n = SIZES[s];
            const struct act_case *ac = &ACTS[ai];
            float *x = malloc((size_t)n * sizeof(float)), *dy = malloc((size_t)n * sizeof(float));
            float *y = malloc((size_t)n * sizeof(float));
            fill(x, n, -6, 6);
            fill(dy, n, -1, 1);
            sprinkle_nonfinite(x, n);
            double *ref = dbuf(n), *gref = dbuf(n), *xs = dbuf(n);
            for (int64_t i = 0; i < n; i++) {
                xs[i] = act_atol_scale(x[i]);
                ref[i] = ref_act(ac->act, ac->param, x[i]);
                y[i] = kiln_act_apply(ac->act, ac->param, x[i]);
                gref[i] = ref_act_grad(ac->act, ac->param, x[i], dy[i]);
            }
            bool from_y = kiln_act_grad_from_output(ac->act);
            FOR_BACKENDS(b)
            {
                float *dx = dev_in(b, x, (size_t)n * sizeof(float));
                float *dyv = dev_in(b, y, (size_t)n * sizeof(float));
                float *dd = dev_in(b, dy, (size_t)n * sizeof(float));
                float *out = dev_out(b, NULL, n), *gout = dev_out(b, NULL, n);
                ASSERT_OK(OPS(b)->act_forward(CTX(b), ac->act, ac->param, dx, out, n));
                ASSERT_OK(OPS(b)->act_backward(CTX(b), ac->act, ac->param, from_y ? NULL : dx,
                                               dyv, dd, gout, n));
                float *got = fetch(b, out, n), *ggot = fetch(b, gout, n);
                CHECK(b, got, ref, n, 2e-6, 1e-7, xs, "act_forward n %lld %s", (long long)n,
                      ac->name);
                /* Backward from the float output (tanh: 1 - y^2 with y
                 * rounded): atol 1e-6 of |dy|. */
                CHECK(b, ggot, gref, n, 1e-5, 1e-6, NULL, "act_backward n %lld %s", (long long)n,
                      ac->name);
                free(got);
                free(ggot);
                dev_free(b, dx);
                dev_free(b, dyv);
                dev_free(b, dd);
                dev_free(b, out);
                dev_free(b, gout);
            }
            free(x);
            free(dy);
            free(y);
            free(ref);
            free(gref);
            free(xs);
        }
}

TEST(bias_grad)
{
    for (int s = 0; s < N_SHAPES2; s++) {
        int64_t rows = SHAPES2[s][0], cols = SHAPES2[s][1], n = rows * cols;
        float *dy = malloc((size_t)n * sizeof(float));
        fill(dy, n, -1, 1);
        double *ref = dbuf(cols), *scale = dbuf(cols);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                ref[c] += dy[r * cols + c];
                scale[c] += fabs(dy[r * cols + c]);
            }
        FOR_BACKENDS(b)
        {
            float *d = dev_in(b, dy, (size_t)n * sizeof(float));
            float *db = dev_out(b, NULL, cols);
            ASSERT_OK(OPS(b)->bias_grad(CTX(b), d, rows, cols, db));
            float *got = fetch(b, db, cols);
            CHECK(b, got, ref, cols, 0.0, 1e-6, scale, "bias_grad %lldx%lld", (long long)rows,
                  (long long)cols);
            free(got);
            dev_free(b, d);
            dev_free(b, db);
        }
        free(dy);
        free(ref);
        free(scale);
    }
}

TEST(softmax)
{
    for (int s = 0; s < N_SHAPES2; s++) {
        int64_t rows = SHAPES2[s][0], cols = SHAPES2[s][1], n = rows * cols;
        float *x = malloc((size_t)n * sizeof(float)), *dy = malloc((size_t)n * sizeof(float));
        float *y = malloc((size_t)n * sizeof(float));
        fill(x, n, -8, 8);
        fill(dy, n, -1, 1);
        double *ref = dbuf(n), *gref = dbuf(n);
        for (int64_t r = 0; r < rows; r++) ref_softmax_row(x + r * cols, ref + r * cols, cols);
        for (int64_t i = 0; i < n; i++) y[i] = (float)ref[i];
        for (int64_t r = 0; r < rows; r++) {
            double dot = 0.0;
            for (int64_t c = 0; c < cols; c++) dot += (double)dy[r * cols + c] * y[r * cols + c];
            for (int64_t c = 0; c < cols; c++)
                gref[r * cols + c] = y[r * cols + c] * (dy[r * cols + c] - dot);
        }
        FOR_BACKENDS(b)
        {
            float *dx = dev_in(b, x, (size_t)n * sizeof(float));
            float *dyy = dev_in(b, y, (size_t)n * sizeof(float));
            float *ddy = dev_in(b, dy, (size_t)n * sizeof(float));
            float *out = dev_out(b, NULL, n), *gout = dev_out(b, NULL, n);
            ASSERT_OK(OPS(b)->softmax_forward(CTX(b), dx, out, rows, cols));
            ASSERT_OK(OPS(b)->softmax_backward(CTX(b), dyy, ddy, gout, rows, cols));
            float *got = fetch(b, out, n), *ggot = fetch(b, gout, n);
            /* Probabilities: a float sum of cols exps; atol 1e-7. */
            CHECK(b, got, ref, n, 1e-5, 1e-7, NULL, "softmax_forward %lldx%lld", (long long)rows,
                  (long long)cols);
            /* y (dy - dot): dot is a float sum of cols terms up to 1 in
             * size, so its error (~cols ulp of 1) survives the cancellation. */
            CHECK(b, ggot, gref, n, 1e-4, 1e-6, NULL, "softmax_backward %lldx%lld",
                  (long long)rows, (long long)cols);
            free(got);
            free(ggot);
            dev_free(b, dx);
            dev_free(b, dyy);
            dev_free(b, ddy);
            dev_free(b, out);
            dev_free(b, gout);
        }
        free(x);
        free(dy);
        free(y);
        free(ref);
        free(gref);
    }
}

/* Masks come from the shared counter RNG: every backend must match the
 * reference exactly (the kept values are x / (1 - p) in float). */
TEST(dropout)
{
    static const float ps[] = {0.0f, 0.1f, 0.5f, 1.0f};
    for (int s = 0; s < N_SIZES; s++)
        for (int pi = 0; pi < 4; pi++) {
            int64_t n = SIZES[s];
            float p = ps[pi];
            uint64_t seed = test_rng_u64(), off = (uint64_t)3 << 44;
            float *x = malloc((size_t)n * sizeof(float));
            fill(x, n, -2, 2);
            double *ref = dbuf(n);
            float keep = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
            for (int64_t i = 0; i < n; i++)
                ref[i] = kiln_rng_uniform(seed, off + (uint64_t)i) >= p ? x[i] * keep : 0.0f;
            FOR_BACKENDS(b)
            {
                float *dx = dev_in(b, x, (size_t)n * sizeof(float));
                uint64_t *dseed = dev_in(b, &seed, sizeof seed);
                float *y1 = dev_out(b, NULL, n), *y2 = dev_out(b, NULL, n), *y3 = dev_out(b, NULL, n);
                ASSERT_OK(OPS(b)->dropout_forward(CTX(b), dx, y1, n, p, seed, off));
                ASSERT_OK(OPS(b)->dropout_backward(CTX(b), dx, y2, n, p, seed, off));
                ASSERT_OK(OPS(b)->dropout_keyed(CTX(b), dx, y3, n, p, dseed, off));
                float *g1 = fetch(b, y1, n), *g2 = fetch(b, y2, n), *g3 = fetch(b, y3, n);
                CHECK(b, g1, ref, n, 0.0, 0.0, NULL, "dropout_forward n %lld p %g", (long long)n, p);
                CHECK(b, g2, ref, n, 0.0, 0.0, NULL, "dropout_backward n %lld p %g", (long long)n, p);
                CHECK(b, g3, ref, n, 0.0, 0.0, NULL, "dropout_keyed n %lld p %g", (long long)n, p);
                free(g1);
                free(g2);
                free(g3);
                dev_free(b, dx);
                dev_free(b, dseed);
                dev_free(b, y1);
                dev_free(b, y2);
                dev_free(b, y3);
            }
            free(x);
            free(ref);
        }
}

TEST(softmax_xent)
{
    static const float smoothing[] = {0.0f, 0.1f};
    for (int s = 0; s < N_SHAPES2; s++)
        for (int si = 0; si < 2; si++)
            for (int nonfinite = 0; nonfinite < 2; nonfinite++) {
                int64_t rows = SHAPES2[s][0], cols = SHAPES2[s][1], n = rows * cols;
                float sm = smoothing[si], gs = 1.0f / (float)rows;
                float *z = malloc((size_t)n * sizeof(float));
                int32_t *lab = malloc((size_t)rows * sizeof(int32_t));
                fill(z, n, -6, 6);
                if (nonfinite) sprinkle_nonfinite(z, n);
                for (int64_t r = 0; r < rows; r++) lab[r] = (int32_t)(test_rng_u64() % (uint64_t)cols);
                double *lref = dbuf(rows), *lscale = dbuf(rows), *dref = dbuf(n);
                for (int64_t r = 0; r < rows; r++)
                    lref[r] = ref_xent_row(z + r * cols, lab[r], cols, sm, gs, dref + r * cols,
                                           &lscale[r]);
                FOR_BACKENDS(b)
                {
                    float *dz = dev_in(b, z, (size_t)n * sizeof(float));
                    int32_t *dl = dev_in(b, lab, (size_t)rows * sizeof(int32_t));
                    float *loss = dev_out(b, NULL, rows), *d = dev_out(b, NULL, n);
                    ASSERT_OK(OPS(b)->softmax_xent(CTX(b), dz, dl, rows, cols, sm, loss, d, gs));
                    float *gl = fetch(b, loss, rows), *gd = fetch(b, d, n);
                    if (nonfinite) {
                        /* Only the NaN/Inf pattern is compared on such rows:
                         * the reference's NaN rows must be NaN. */
                        for (int64_t r = 0; r < rows; r++)
                            if (!isnan(lref[r])) lref[r] = gl[r];
                        for (int64_t i = 0; i < n; i++)
                            if (!isnan(dref[i])) dref[i] = gd[i];
                    }
                    CHECK(b, gl, lref, rows, 1e-5, 1e-6, lscale,
                          "softmax_xent loss %lldx%lld smoothing %g nonfinite %d", (long long)rows,
                          (long long)cols, sm, nonfinite);
                    /* dlogits = gs (p - t): where p nears t (both up to 1)
                     * the difference keeps p's absolute error, a few ulp of
                     * 1 (6e-8 each) from expf and the row's float sum. */
                    CHECK(b, gd, dref, n, 1e-5, 1e-6 * gs, NULL,
                          "softmax_xent dlogits %lldx%lld smoothing %g", (long long)rows,
                          (long long)cols, sm);
                    free(gl);
                    free(gd);
                    dev_free(b, dz);
                    dev_free(b, dl);
                    dev_free(b, loss);
                    dev_free(b, d);
                }
                free(z);
                free(lab);
                free(lref);
                free(lscale);
                free(dref);
            }
}

/* A label outside [0, cols) is KILN_ERR_FORMAT (on a device: at the next sync). */
TEST(softmax_xent_bad_label)
{
    float z[6] = {0, 1, 2, 3, 4, 5};
    int32_t lab[2] = {1, 3};
    FOR_BACKENDS(b)
    {
        float *dz = dev_in(b, z, sizeof z);
        int32_t *dl = dev_in(b, lab, sizeof lab);
        float *loss = dev_out(b, NULL, 2);
        enum kiln_status st = OPS(b)->softmax_xent(CTX(b), dz, dl, 2, 3, 0.0f, loss, NULL, 1.0f);
        if (st == KILN_OK) st = b->be->iface->sync(CTX(b));
        ASSERT_EQ_INT(KILN_ERR_FORMAT, st);
        ASSERT(strstr(kiln_last_error(), "label 3 of row 1") != NULL);
        /* The error is reported once; the backend carries on. */
        ASSERT_OK(b->be->iface->sync(CTX(b)));
        dev_free(b, dz);
        dev_free(b, dl);
        dev_free(b, loss);
    }
}

TEST(bce_mse)
{
    for (int s = 0; s < N_SHAPES2; s++) {
        int64_t rows = SHAPES2[s][0], cols = SHAPES2[s][1], n = rows * cols;
        float gs = 1.0f / (float)rows;
        float *z = malloc((size_t)n * sizeof(float)), *t = malloc((size_t)n * sizeof(float));
        fill(z, n, -8, 8);
        fill(t, n, 0, 1);
        double *bl = dbuf(rows), *bd = dbuf(n), *ml = dbuf(rows), *md = dbuf(n), *ls = dbuf(rows);
        for (int64_t r = 0; r < rows; r++) {
            double sb = 0, sm = 0, mag = 0;
            for (int64_t c = 0; c < cols; c++) {
                int64_t i = r * cols + c;
                double zz = z[i], tt = t[i];
                double sp = zz > 0 ? zz + log1p(exp(-zz)) : log1p(exp(zz));
                sb += sp - tt * zz;
                mag += sp + fabs(tt * zz);
                bd[i] = gs / (double)cols * (1.0 / (1.0 + exp(-zz)) - tt);
                sm += (zz - tt) * (zz - tt);
                md[i] = gs * 2.0 / (double)cols * (zz - tt);
            }
            bl[r] = sb / (double)cols;
            ml[r] = sm / (double)cols;
            ls[r] = mag / (double)cols;
        }
        FOR_BACKENDS(b)
        {
            float *dz = dev_in(b, z, (size_t)n * sizeof(float));
            float *dt = dev_in(b, t, (size_t)n * sizeof(float));
            float *l1 = dev_out(b, NULL, rows), *d1 = dev_out(b, NULL, n);
            float *l2 = dev_out(b, NULL, rows), *d2 = dev_out(b, NULL, n);
            ASSERT_OK(OPS(b)->bce_logits(CTX(b), dz, dt, rows, cols, l1, d1, gs));
            ASSERT_OK(OPS(b)->mse(CTX(b), dz, dt, rows, cols, l2, d2, gs));
            float *g1 = fetch(b, l1, rows), *h1 = fetch(b, d1, n);
            float *g2 = fetch(b, l2, rows), *h2 = fetch(b, d2, n);
            CHECK(b, g1, bl, rows, 1e-5, 1e-6, ls, "bce loss %lldx%lld", (long long)rows,
                  (long long)cols);
            /* sigmoid(z) - t cancels as in softmax_xent: a few ulp of 1. */
            CHECK(b, h1, bd, n, 1e-5, 4e-7 * gs, NULL, "bce grad %lldx%lld", (long long)rows,
                  (long long)cols);
            CHECK(b, g2, ml, rows, 1e-5, 1e-6, NULL, "mse loss %lldx%lld", (long long)rows,
                  (long long)cols);
            CHECK(b, h2, md, n, 1e-5, 1e-7 * gs, NULL, "mse grad %lldx%lld", (long long)rows,
                  (long long)cols);
            free(g1);
            free(h1);
            free(g2);
            free(h2);
            dev_free(b, dz);
            dev_free(b, dt);
            dev_free(b, l1);
            dev_free(b, d1);
            dev_free(b, l2);
            dev_free(b, d2);
        }
        free(z);
        free(t);
        free(bl);
        free(bd);
        free(ml);
        free(md);
        free(ls);
    }
}

TEST(reductions)
{
    for (int s = 0; s < N_SIZES; s++)
        for (int nonfinite = 0; nonfinite < 2; nonfinite++) {
            int64_t n = SIZES[s];
            float *x = malloc((size_t)n * sizeof(float));
            fill(x, n, -1, 1);
            if (nonfinite) sprinkle_nonfinite(x, n);
            double sq = 0.0;
            int64_t bad = 0;
            for (int64_t i = 0; i < n; i++) {
                sq += (double)x[i] * x[i];
                bad += !isfinite(x[i]);
            }
            double *sref = dbuf(n);
            for (int64_t i = 0; i < n; i++) sref[i] = (double)x[i] * 0.37f;
            FOR_BACKENDS(b)
            {
                float *dx = dev_out(b, x, n);
                double got_sq = 0;
                int64_t got_bad = -1;
                ASSERT_OK(OPS(b)->sum_squares(CTX(b), dx, n, &got_sq));
                ASSERT_OK(OPS(b)->count_nonfinite(CTX(b), dx, n, &got_bad));
                ASSERT_EQ_INT(bad, got_bad);
                if (isfinite(sq)) ASSERT_NEAR(sq, got_sq, 1e-12 * (sq + 1));
                else ASSERT(!isfinite(got_sq));
                ASSERT_OK(OPS(b)->scale(CTX(b), dx, n, 0.37f));
                float *got = fetch(b, dx, n);
                CHECK(b, got, sref, n, 1e-7, 0.0, NULL, "scale n %lld", (long long)n);
                free(got);
                dev_free(b, dx);
            }
            free(x);
            free(sref);
        }
}

TEST(optimizer_step)
{
    const struct kiln_optim_step *hs = ref_optim_cases;
    for (size_t h = 0; h < REF_OPTIM_CASES; h++)
        for (int s = 0; s < N_SIZES; s++)
            for (int via_ctl = 0; via_ctl < 2; via_ctl++) {
                const struct kiln_optim_step *o = &hs[h];
                int64_t n = SIZES[s];
                int spp = kiln_optim_state_per_param(o->kind, o->momentum);
                float *p0 = malloc((size_t)n * sizeof(float)), *g = malloc((size_t)n * sizeof(float));
                float *st0 = malloc((size_t)(spp * n + 1) * sizeof(float));
                fill(p0, n, -1, 1);
                fill(g, n, -1, 1);
                fill(st0, spp * n, 0, 0.5);
                double *pref = dbuf(n), *sref = dbuf(spp * n);
                ref_optimizer_step(o, p0, g, st0, n, pref, sref);
                /* Through a control block: the step's values carry lr and
                 * the bias corrections (t is then ignored). */
                struct kiln_step_ctl ctl = {.cursor = 0, .first_bad = -1};
                ctl.now.lr = o->lr;
                ctl.now.bc1 = 1.0f - powf(o->beta1, (float)o->t);
                ctl.now.bc2_sqrt = sqrtf(1.0f - powf(o->beta2, (float)o->t));
                FOR_BACKENDS(b)
                {
                    struct kiln_optim_step hh = *o;
                    struct kiln_step_ctl *dctl = dev_in(b, &ctl, sizeof ctl);
                    if (via_ctl) {
                        hh.ctl = dctl;
                        hh.lr = 123.0f; /* must be ignored */
                        hh.t = 99;
                    }
                    float *dp = dev_out(b, p0, n), *ds = dev_out(b, st0, spp * n);
                    float *dg = dev_in(b, g, (size_t)n * sizeof(float));
                    ASSERT_OK(OPS(b)->optimizer_step(CTX(b), &hh, dp, dg, spp ? ds : NULL, n));
                    float *gp = fetch(b, dp, n), *gs = fetch(b, ds, spp * n);
                    CHECK(b, gp, pref, n, 1e-5, 1e-6, NULL, "optimizer %zu params n %lld ctl %d", h,
                          (long long)n, via_ctl);
                    CHECK(b, gs, sref, spp * n, 1e-5, 1e-7, NULL, "optimizer %zu state n %lld", h,
                          (long long)n);
                    free(gp);
                    free(gs);
                    /* A bad step recorded in the control block: no update. */
                    if (via_ctl) {
                        struct kiln_step_ctl badctl = ctl;
                        badctl.first_bad = 0;
                        ASSERT_OK(b->be->iface->upload(CTX(b), dctl, &badctl, sizeof badctl));
                        float *dp2 = dev_out(b, p0, n);
                        ASSERT_OK(OPS(b)->optimizer_step(CTX(b), &hh, dp2, dg, spp ? ds : NULL, n));
                        float *gp2 = fetch(b, dp2, n);
                        ASSERT(memcmp(gp2, p0, (size_t)n * sizeof(float)) == 0);
                        free(gp2);
                        dev_free(b, dp2);
                    }
                    dev_free(b, dctl);
                    dev_free(b, dp);
                    dev_free(b, ds);
                    dev_free(b, dg);
                }
                free(p0);
                free(g);
                free(st0);
                free(pref);
                free(sref);
            }
}

TEST(gather_rows)
{
    static const int64_t row_sizes[] = {1, 7, 33, 784, 1031};
    for (size_t s = 0; s < sizeof row_sizes / sizeof row_sizes[0]; s++) {
        int64_t rs = row_sizes[s], src_rows = 301, rows = 257;
        uint8_t *u8 = malloc((size_t)(src_rows * rs));
        float *f32 = malloc((size_t)(src_rows * rs) * sizeof(float));
        int32_t *i32 = malloc((size_t)(src_rows * rs) * sizeof(int32_t));
        int64_t *idx = malloc((size_t)rows * sizeof(int64_t));
        for (int64_t i = 0; i < src_rows * rs; i++) {
            u8[i] = (uint8_t)(test_rng_u64() & 255);
            i32[i] = (int32_t)test_rng_u64();
        }
        fill(f32, src_rows * rs, -5, 5);
        for (int64_t r = 0; r < rows; r++) idx[r] = (int64_t)(test_rng_u64() % (uint64_t)src_rows);
        idx[rows - 1] = src_rows - 1;
        double *ru = dbuf(rows * rs), *rf = dbuf(rows * rs);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < rs; c++) {
                ru[r * rs + c] = (float)u8[idx[r] * rs + c] * (1.0f / 255.0f);
                rf[r * rs + c] = f32[idx[r] * rs + c] * 0.5f;
            }
        FOR_BACKENDS(b)
        {
            void *su = dev_in(b, u8, (size_t)(src_rows * rs));
            void *sf = dev_in(b, f32, (size_t)(src_rows * rs) * sizeof(float));
            void *si = dev_in(b, i32, (size_t)(src_rows * rs) * sizeof(int32_t));
            int64_t *di = dev_in(b, idx, (size_t)rows * sizeof(int64_t));
            float *ou = dev_out(b, NULL, rows * rs), *of = dev_out(b, NULL, rows * rs);
            float *oi = dev_out(b, NULL, rows * rs);
            ASSERT_OK(OPS(b)->gather_rows(CTX(b), su, KILN_ELEM_U8, rs, di, rows, 1.0f / 255.0f, ou));
            ASSERT_OK(OPS(b)->gather_rows(CTX(b), sf, KILN_ELEM_F32, rs, di, rows, 0.5f, of));
            ASSERT_OK(OPS(b)->gather_rows(CTX(b), si, KILN_ELEM_I32, rs, di, rows, 0.5f, oi));
            float *gu = fetch(b, ou, rows * rs), *gf = fetch(b, of, rows * rs);
            float *gi = fetch(b, oi, rows * rs);
            CHECK(b, gu, ru, rows * rs, 0.0, 0.0, NULL, "gather u8 row %lld", (long long)rs);
            CHECK(b, gf, rf, rows * rs, 0.0, 0.0, NULL, "gather f32 row %lld", (long long)rs);
            for (int64_t r = 0; r < rows; r++)
                if (memcmp(gi + r * rs, i32 + idx[r] * rs, (size_t)rs * sizeof(int32_t)))
                    TEST_FAIL("backend %s: gather i32 row %lld differs", b->name, (long long)r);
            ASSERT(memcmp(&gi[rows * rs], &SENTINEL, sizeof(float)) == 0);
            free(gu);
            free(gf);
            free(gi);
            dev_free(b, su);
            dev_free(b, sf);
            dev_free(b, si);
            dev_free(b, di);
            dev_free(b, ou);
            dev_free(b, of);
            dev_free(b, oi);
        }
        free(u8);
        free(f32);
        free(i32);
        free(idx);
        free(ru);
        free(rf);
    }
}

/* The training step's device-side control: step_begin picks the step's
 * values and indices; step_check computes the mean loss, the guard and the
 * clipping with the trainer's formulas. */
TEST(step_ops)
{
    enum { STEPS = 3, BATCH = 5, N = 1031 };
    struct kiln_step_vars vars[STEPS];
    memset(vars, 0, sizeof vars);
    for (int s = 0; s < STEPS; s++) {
        vars[s].step = 10 + s;
        vars[s].lr = 0.1f * (float)(s + 1);
        vars[s].dropout_seed = 777 + (uint64_t)s;
    }
    int64_t order[STEPS * BATCH];
    for (int i = 0; i < STEPS * BATCH; i++) order[i] = (i * 7) % (STEPS * BATCH);
    float loss_rows[BATCH] = {0.5f, 1.5f, 2.0f, 0.25f, 0.75f};
    float *grads = malloc(N * sizeof(float));
    fill(grads, N, -1, 1);
    double sq = 0, lsum = 0;
    for (int i = 0; i < N; i++) sq += (double)grads[i] * grads[i];
    for (int r = 0; r < BATCH; r++) lsum += loss_rows[r];
    double norm = sqrt(sq);
    float clip = (float)(norm / 2);
    double *cref = dbuf(N);
    for (int i = 0; i < N; i++) cref[i] = (double)grads[i] * (float)(clip / (norm + 1e-6));
    FOR_BACKENDS(b)
    {
        struct kiln_step_ctl ctl = {.cursor = 1, .first_bad = -1};
        struct kiln_step_ctl *dctl = dev_in(b, &ctl, sizeof ctl);
        struct kiln_step_vars *dvars = dev_in(b, vars, sizeof vars);
        int64_t *dorder = dev_in(b, order, sizeof order);
        int64_t *didx = dev_in(b, order, BATCH * sizeof(int64_t));
        float *dloss = dev_in(b, loss_rows, sizeof loss_rows);
        float *dg = dev_out(b, grads, N);
        ASSERT_OK(OPS(b)->step_begin(CTX(b), dctl, dvars, dorder, BATCH, 4, didx));
        ASSERT_OK(OPS(b)->step_check(CTX(b), dctl, dvars, dloss, BATCH, dg, N, clip));
        struct kiln_step_ctl got;
        struct kiln_step_vars gv[STEPS];
        int64_t gidx[BATCH];
        ASSERT_OK(b->be->iface->download(CTX(b), &got, dctl, sizeof got));
        ASSERT_OK(b->be->iface->download(CTX(b), gv, dvars, sizeof gv));
        ASSERT_OK(b->be->iface->download(CTX(b), gidx, didx, sizeof gidx));
        ASSERT_EQ_INT(2, got.cursor);
        ASSERT_EQ_INT(-1, got.first_bad);
        ASSERT_EQ_INT(11, got.now.step);
        ASSERT(got.now.lr == vars[1].lr && got.now.dropout_seed == vars[1].dropout_seed);
        for (int r = 0; r < 4; r++) ASSERT_EQ_INT(order[BATCH + r], gidx[r]);
        ASSERT_EQ_INT(order[4], gidx[4]); /* rows past `rows` untouched */
        ASSERT_NEAR(lsum / BATCH, gv[1].loss, 1e-12);
        ASSERT_EQ_INT(0, gv[1].bad);
        float *gg = fetch(b, dg, N);
        CHECK(b, gg, cref, N, 1e-6, 0.0, NULL, "step_check clipping");
        free(gg);
        /* A NaN loss row, then a NaN gradient: marked bad, first one kept. */
        float nanrow[BATCH] = {0.5f, NAN, 1, 1, 1};
        ASSERT_OK(b->be->iface->upload(CTX(b), dloss, nanrow, sizeof nanrow));
        ASSERT_OK(OPS(b)->step_check(CTX(b), dctl, dvars, dloss, BATCH, dg, N, 0.0f));
        float g1 = INFINITY;
        ASSERT_OK(b->be->iface->upload(CTX(b), dloss, loss_rows, sizeof loss_rows));
        ASSERT_OK(b->be->iface->upload(CTX(b), dg + 17, &g1, sizeof g1));
        ASSERT_OK(b->be->iface->download(CTX(b), &got, dctl, sizeof got));
        ASSERT_EQ_INT(3, got.cursor);
        ASSERT_EQ_INT(2, got.first_bad);
        ASSERT_OK(b->be->iface->download(CTX(b), gv, dvars, sizeof gv));
        ASSERT_EQ_INT(KILN_STEP_BAD_LOSS, gv[2].bad);
        got.cursor = 0;
        got.first_bad = -1;
        ASSERT_OK(b->be->iface->upload(CTX(b), dctl, &got, sizeof got));
        ASSERT_OK(OPS(b)->step_check(CTX(b), dctl, dvars, dloss, BATCH, dg, N, 1.0f));
        ASSERT_OK(b->be->iface->download(CTX(b), gv, dvars, sizeof gv));
        ASSERT_EQ_INT(KILN_STEP_BAD_GRAD, gv[0].bad);
        ASSERT_OK(b->be->iface->download(CTX(b), &got, dctl, sizeof got));
        ASSERT_EQ_INT(0, got.first_bad);
        /* Sticky: a later bad step leaves first_bad at the first one. */
        ASSERT_OK(OPS(b)->step_check(CTX(b), dctl, dvars, dloss, BATCH, dg, N, 1.0f));
        ASSERT_OK(b->be->iface->download(CTX(b), &got, dctl, sizeof got));
        ASSERT_EQ_INT(2, got.cursor);
        ASSERT_EQ_INT(0, got.first_bad);
        ASSERT_EQ_INT(KILN_STEP_BAD_GRAD, got.now.bad);
        dev_free(b, dctl);
        dev_free(b, dvars);
        dev_free(b, dorder);
        dev_free(b, didx);
        dev_free(b, dloss);
        dev_free(b, dg);
    }
    free(grads);
    free(cref);
}

TEST(confusion)
{
    static const int64_t shapes[][2] = {{1, 1}, {7, 3}, {1000, 10}, {4099, 17}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t rows = shapes[s][0], cols = shapes[s][1];
        float *z = malloc((size_t)(rows * cols) * sizeof(float));
        int32_t *lab = malloc((size_t)rows * sizeof(int32_t));
        fill(z, rows * cols, -3, 3);
        for (int64_t i = 0; i < rows * cols; i += 13) z[i] = 1.0f; /* ties */
        if (rows * cols > 5) z[5] = NAN;
        for (int64_t r = 0; r < rows; r++) lab[r] = (int32_t)(test_rng_u64() % (uint64_t)cols);
        if (rows > 2) lab[2] = (int32_t)cols; /* out of range: skipped */
        int64_t *ref = calloc((size_t)(cols * cols), sizeof(int64_t));
        for (int64_t r = 0; r < rows; r++) {
            int64_t best = 0;
            for (int64_t c = 1; c < cols; c++)
                if (z[r * cols + c] > z[r * cols + best]) best = c;
            if (lab[r] >= 0 && lab[r] < cols) ref[lab[r] * cols + best] += 2; /* counted twice */
        }
        FOR_BACKENDS(b)
        {
            float *dz = dev_in(b, z, (size_t)(rows * cols) * sizeof(float));
            int32_t *dl = dev_in(b, lab, (size_t)rows * sizeof(int32_t));
            int64_t *zeros = calloc((size_t)(cols * cols), sizeof(int64_t));
            int64_t *dc = dev_in(b, zeros, (size_t)(cols * cols) * sizeof(int64_t));
            ASSERT_OK(OPS(b)->confusion(CTX(b), dz, dl, rows, cols, dc));
            ASSERT_OK(OPS(b)->confusion(CTX(b), dz, dl, rows, cols, dc)); /* accumulates */
            ASSERT_OK(b->be->iface->download(CTX(b), zeros, dc, (size_t)(cols * cols) * sizeof(int64_t)));
            for (int64_t i = 0; i < cols * cols; i++)
                if (zeros[i] != ref[i])
                    TEST_FAIL("backend %s: confusion %lldx%lld cell %lld = %lld, reference %lld",
                              b->name, (long long)rows, (long long)cols, (long long)i,
                              (long long)zeros[i], (long long)ref[i]);
            free(zeros);
            dev_free(b, dz);
            dev_free(b, dl);
            dev_free(b, dc);
        }
        free(z);
        free(lab);
        free(ref);
    }
}

/* ==================================================================================
 * main
 * ================================================================================== */

static void open_backend(const char *spec, const char *name, bool tf32, bool gemm_only)
{
    char said[256];
    struct kiln_backend *be = NULL;
    if (kiln_backend_open(spec, 2, &be, said, sizeof said) != KILN_OK) {
        fprintf(stderr, "test_parity: %s: %s\n", spec, kiln_last_error());
        return;
    }
    fprintf(stderr, "test_parity: backend %s: %s\n", name, said);
    g_be[g_nbe++] = (struct pbe){.name = name, .be = be, .tf32 = tf32, .gemm_only = gemm_only};
}

int main(int argc, char **argv)
{
    const char *env = getenv("KILN_TEST_SEED");
    if (env) g_seed = strtoull(env, NULL, 10);
    test_rng_state = g_seed;
    fprintf(stderr, "test_parity: seed %" PRIu64 " (set KILN_TEST_SEED to repeat)\n", g_seed);
    bool cpu_only = argc > 1 && !strcmp(argv[1], "--cpu");
    g_quick = getenv("KILN_PARITY_QUICK") != NULL;
    if (g_quick) g_n_sizes--;
    open_backend("cpu", "cpu", false, false);
    if (!cpu_only) {
        char devs[1024];
        if (kiln_cuda_devices(devs, sizeof devs) > 0) {
            open_backend("cuda,gemm=cublas", "cuda/cublas", false, false);
            open_backend("cuda,gemm=kiln", "cuda/kiln", false, true);
            open_backend("cuda,gemm=cublas,math=tf32", "cuda/cublas-tf32", true, true);
            open_backend("cuda,gemm=kiln,math=tf32", "cuda/kiln-tf32", true, true);
            g_have_device = g_nbe == MAX_BE;
            if (!g_have_device) {
                fprintf(stderr, "test_parity: a CUDA device answered but a CUDA backend did not open\n");
                return 1;
            }
        }
        /* Without a device the CPU cases are test_parity_cpu's (ctest runs
         * both): skip at once rather than run them twice. */
        if (!g_have_device) {
            kiln_backend_free(g_be[0].be);
            fprintf(stderr, "SKIP: no CUDA device answered (test_parity --cpu runs the CPU cases)\n");
            return 77;
        }
    }
    if (g_nbe < 1) return 1;
    RUN(gemm);
    RUN(dense_forward);
    RUN(bias_act);
    RUN(act_forward_backward);
    RUN(bias_grad);
    RUN(softmax);
    RUN(dropout);
    RUN(softmax_xent);
    RUN(softmax_xent_bad_label);
    RUN(bce_mse);
    RUN(reductions);
    RUN(optimizer_step);
    RUN(gather_rows);
    RUN(step_ops);
    RUN(confusion);
    for (int i = 0; i < g_nbe; i++) kiln_backend_free(g_be[i].be);
    return test_summary();
}
