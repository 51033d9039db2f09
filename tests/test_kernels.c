/* tests/test_kernels.c: every op of the CPU backend's table against a float64
 * reference written here as plain loops.
 *
 * Inputs come from a seeded generator; the seed is printed and can be set
 * with KILN_TEST_SEED=<n> to repeat a run. Every output buffer is poisoned
 * with NaN before the call (so an element the op forgets to write shows up)
 * and carries a sentinel float after its end that must come back unchanged.
 * Shapes cover 1, 7, 33, 127, 1000+, an odd 5x7x11x13 total and one above
 * CPU_PARALLEL_MIN (16384 elements), where the ops switch to several threads.
 * Each op runs on a 1-thread and a 2-thread backend (gemm, which is
 * OpenBLAS with a process-wide thread count, on the 2-thread one).
 *
 * Tolerances: |got - ref| <= rtol |ref| + atol * scale, with rtol 1e-5 and
 * scale the magnitude of the terms the op combines (sum |a||b| for a dot
 * product), so that float32 rounding of long sums is allowed for but a wrong
 * term is not. Looser ones say why where they are used. NaN and Inf must
 * appear exactly where the reference has them.
 */
#include <float.h>
#include <inttypes.h>

#include "test.h"

#include "elementwise.h"
#include "kernels.h"
#include "kernel-ref.h"

/* --- inputs -------------------------------------------------------------------- */

static uint64_t g_seed = 20240611;
static float rnd_range(double lo, double hi) { return (float)(lo + (hi - lo) * test_rng01()); }

static void fill_uniform(float *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = rnd_range(lo, hi);
}

/* --- output buffers: NaN poison and a sentinel after the end ------------------ */

static const float SENTINEL = 1234.5678f;

static float *out_buf(int64_t n)
{
    float *p = malloc((size_t)(n + 1) * sizeof(float));
    if (!p) abort();
    for (int64_t i = 0; i < n; i++) p[i] = NAN;
    p[n] = SENTINEL;
    return p;
}

/* An input/output buffer: a copy of src with a sentinel after it. */
static float *inout_buf(const float *src, int64_t n)
{
    float *p = out_buf(n);
    if (n) memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

static int sentinel_ok(const float *p, int64_t n) { return memcmp(&p[n], &SENTINEL, sizeof(float)) == 0; }

static double *dbuf(int64_t n)
{
    double *p = calloc((size_t)(n ? n : 1), sizeof(double));
    if (!p) abort();
    return p;
}

/* Fails the test when got and ref differ or the sentinel after got moved. */
#define CHECK_ARRAY(got, ref, n, rtol, atol, scale, ...)                               \
    do {                                                                               \
        int64_t bad_ = ref_first_mismatch((got), (ref), (n), (rtol), (atol), (scale));     \
        if (bad_ >= 0) {                                                               \
            fprintf(stderr, "  case: ");                                               \
            fprintf(stderr, __VA_ARGS__);                                              \
            fprintf(stderr, "\n");                                                     \
            TEST_FAIL("%s[%" PRId64 "] = %.9g, reference %.9g (n %" PRId64 ")", #got, bad_, \
                      (double)(got)[bad_], (ref)[bad_], (int64_t)(n));                 \
        }                                                                              \
        if (!sentinel_ok((got), (n))) {                                                \
            fprintf(stderr, "  case: ");                                               \
            fprintf(stderr, __VA_ARGS__);                                              \
            fprintf(stderr, "\n");                                                     \
            TEST_FAIL("%s: the sentinel after element %" PRId64 " was overwritten", #got, \
                      (int64_t)(n));                                                   \
        }                                                                              \
    } while (0)

#define ASSERT_BITWISE(a, b, n, what)                                                  \
    do {                                                                               \
        if ((n) != 0 && memcmp((a), (b), (size_t)(n) * sizeof(*(a))) != 0)                  \
            TEST_FAIL("%s: results differ bitwise", what);                            \
    } while (0)

/* --- backends -------------------------------------------------------------------- */

#define N_BE 2
static struct kiln_backend *g_be[N_BE]; /* 1 and 2 threads */
static const int g_threads[N_BE] = {1, 2};

#define OPS(b) (g_be[b]->iface->ops)
#define CTX(b) (g_be[b]->ctx)

static const int64_t SIZES[] = {1, 7, 33, 127, 1031, 5 * 7 * 11 * 13, 40000};
#define N_SIZES ((int)(sizeof SIZES / sizeof SIZES[0]))

struct shape2 {
    int64_t rows, cols;
};
/* (5*7) x (11*13) is the odd one; 300 x 100 crosses CPU_PARALLEL_MIN. */
static const struct shape2 SHAPES2[] = {{1, 1},    {7, 33},   {127, 7},  {35, 143},
                                        {1, 1031}, {33, 1000}, {300, 100}};
#define N_SHAPES2 ((int)(sizeof SHAPES2 / sizeof SHAPES2[0]))

/* --- float64 references ---------------------------------------------------------- */

/* ==================================================================================
 * gemm
 * ================================================================================== */

TEST(gemm)
{
    /* (m, n, k): k = 1031 is the long dot product, 35 x 11 x 13 the odd one. */
    static const int64_t shapes[][3] = {{1, 1, 1},   {7, 33, 127},  {33, 7, 1031},
                                        {35, 11, 13}, {127, 127, 33}, {64, 300, 100}};
    static const float ab[][2] = {{1.0f, 0.0f}, {0.5f, -1.5f}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t c = 0; c < sizeof ab / sizeof ab[0]; c++) {
                    float alpha = ab[c][0], beta = ab[c][1];
                    /* Leading dimensions padded past the minimum. */
                    int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5;
                    int64_t a_rows = ta ? k : m, b_rows = tb ? n : k;
                    float *a = malloc((size_t)(a_rows * lda) * sizeof(float));
                    float *b = malloc((size_t)(b_rows * ldb) * sizeof(float));
                    float *c0 = malloc((size_t)(m * ldc) * sizeof(float));
                    fill_uniform(a, a_rows * lda, -1, 1);
                    fill_uniform(b, b_rows * ldb, -1, 1);
                    fill_uniform(c0, m * ldc, -1, 1);
                    float *cg = inout_buf(c0, m * ldc);
                    /* beta = 0: C is output only, and a NaN in it must not leak. */
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = 0; j < n; j++)
                            if (beta == 0.0f) cg[i * ldc + j] = NAN;
                    ASSERT_OK(OPS(1)->gemm(CTX(1), ta, tb, m, n, k, alpha, a, lda, b, ldb, beta,
                                           cg, ldc));
                    double *ref = dbuf(m * ldc), *scale = dbuf(m * ldc);
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = 0; j < ldc; j++) {
                            if (j >= n) { /* padding between rows: untouched */
                                ref[i * ldc + j] = c0[i * ldc + j];
                                continue;
                            }
                            double acc = 0.0, mag = 0.0;
                            for (int64_t p = 0; p < k; p++) {
                                double av = ta ? a[p * lda + i] : a[i * lda + p];
                                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                                acc += av * bv;
                                mag += fabs(av * bv);
                            }
                            double cv = c0[i * ldc + j];
                            ref[i * ldc + j] = alpha * acc + (beta != 0.0f ? beta * cv : 0.0);
                            scale[i * ldc + j] = fabs(alpha) * mag + fabs(beta * cv);
                        }
                    CHECK_ARRAY(cg, ref, m * ldc, 0.0, 1e-5, scale,
                                "m %lld n %lld k %lld trans_a %d trans_b %d alpha %g beta %g",
                                (long long)m, (long long)n, (long long)k, ta, tb, alpha, beta);
                    free(a);
                    free(b);
                    free(c0);
                    free(cg);
                    free(ref);
                    free(scale);
                }
    }
    /* m or n = 0: nothing to do, nothing written. */
    float c = SENTINEL;
    ASSERT_OK(OPS(0)->gemm(CTX(0), false, false, 0, 3, 4, 1.0f, NULL, 4, NULL, 3, 0.0f, &c, 3));
    ASSERT(memcmp(&c, &SENTINEL, sizeof c) == 0);
}

/* ==================================================================================
 * bias_act: the dense epilogue
 * ================================================================================== */

TEST(bias_act)
{
    for (int b = 0; b < N_BE; b++)
        for (int s = 0; s < N_SHAPES2; s++)
            for (int a = 0; a < N_ACTS; a++)
                for (int with_bias = 0; with_bias < 2; with_bias++) {
                    int64_t rows = SHAPES2[s].rows, cols = SHAPES2[s].cols, n = rows * cols;
                    float *y0 = malloc((size_t)n * sizeof(float));
                    float *bias = malloc((size_t)cols * sizeof(float));
                    fill_uniform(y0, n, -4, 4);
                    fill_uniform(bias, cols, -2, 2);
                    float *y = inout_buf(y0, n);
                    ASSERT_OK(OPS(b)->bias_act(CTX(b), y, with_bias ? bias : NULL, rows, cols,
                                               ACTS[a].act, ACTS[a].param));
                    double *ref = dbuf(n);
                    for (int64_t r = 0; r < rows; r++)
                        for (int64_t c = 0; c < cols; c++)
                            ref[r * cols + c] =
                                ref_act(ACTS[a].act, ACTS[a].param,
                                        (double)y0[r * cols + c] + (with_bias ? bias[c] : 0.0));
                    /* atol 1e-6: y + bias is rounded to float before the
                     * activation (up to 5e-7 for |y + b| < 8). */
                    CHECK_ARRAY(y, ref, n, 1e-5, 1e-6, NULL, "%s rows %lld cols %lld bias %d threads %d",
                                ACTS[a].name, (long long)rows, (long long)cols, with_bias,
                                g_threads[b]);
                    free(y0);
                    free(bias);
                    free(y);
                    free(ref);
                }
}

/* ==================================================================================
 * act_forward / act_backward
 * ================================================================================== */

TEST(act_forward)
{
    for (int b = 0; b < N_BE; b++)
        for (int s = 0; s < N_SIZES; s++)
            for (int a = 0; a < N_ACTS; a++) {
                int64_t n = SIZES[s];
                float *x = malloc((size_t)n * sizeof(float));
                fill_uniform(x, n, -6, 6);
                float *y = out_buf(n);
                ASSERT_OK(OPS(b)->act_forward(CTX(b), ACTS[a].act, ACTS[a].param, x, y, n));
                double *ref = dbuf(n);
                for (int64_t i = 0; i < n; i++) ref[i] = ref_act(ACTS[a].act, ACTS[a].param, x[i]);
                /* atol 1e-6: GELU's 1 + erf(x / sqrt 2) cancels for x < -2,
                 * leaving erff's absolute error (~1e-7) in a small result. */
                CHECK_ARRAY(y, ref, n, 1e-5, 1e-6, NULL, "%s n %lld threads %d", ACTS[a].name,
                            (long long)n, g_threads[b]);
                /* x == y is allowed and gives the same result. */
                float *xy = inout_buf(x, n);
                ASSERT_OK(OPS(b)->act_forward(CTX(b), ACTS[a].act, ACTS[a].param, xy, xy, n));
                ASSERT_BITWISE(xy, y, n, "in place vs out of place");
                free(x);
                free(y);
                free(xy);
                free(ref);
            }
}

/* NaN and Inf come out where torch puts them. */
TEST(act_forward_nonfinite)
{
    static const float special[] = {NAN,    INFINITY, -INFINITY, 0.0f,   -0.0f,  1e-40f,
                                    -1e-40f, 88.5f,   -88.5f,    100.0f, -100.0f, 1e30f,
                                    -1e30f,  FLT_MAX, -FLT_MAX,  0.5f,   -0.5f};
    const int64_t n = (int64_t)(sizeof special / sizeof special[0]);
    double ref[sizeof special / sizeof special[0]];
    for (int a = 0; a < N_ACTS; a++) {
        float *y = out_buf(n);
        ASSERT_OK(OPS(0)->act_forward(CTX(0), ACTS[a].act, ACTS[a].param, special, y, n));
        for (int64_t i = 0; i < n; i++) ref[i] = ref_act(ACTS[a].act, ACTS[a].param, special[i]);
        /* Where the float64 result is past FLT_MAX, float overflows to Inf. */
        for (int64_t i = 0; i < n; i++)
            if (fabs(ref[i]) > FLT_MAX) ref[i] = ref[i] > 0 ? INFINITY : -INFINITY;
        CHECK_ARRAY(y, ref, n, 1e-5, 1e-6, NULL, "%s on NaN/Inf/extremes", ACTS[a].name);
        /* The fused epilogue follows the same rules. */
        float *e = inout_buf(special, n);
        ASSERT_OK(OPS(0)->bias_act(CTX(0), e, NULL, 1, n, ACTS[a].act, ACTS[a].param));
        CHECK_ARRAY(e, ref, n, 1e-5, 1e-6, NULL, "bias_act %s on NaN/Inf/extremes", ACTS[a].name);
        free(y);
        free(e);
    }
}

TEST(act_backward)
{
    for (int b = 0; b < N_BE; b++)
        for (int s = 0; s < N_SIZES; s++)
            for (int a = 0; a < N_ACTS; a++) {
                enum kiln_act act = ACTS[a].act;
                float p = ACTS[a].param;
                int64_t n = SIZES[s];
                float *x = malloc((size_t)n * sizeof(float));
                float *y = malloc((size_t)n * sizeof(float));
                float *dy = malloc((size_t)n * sizeof(float));
                fill_uniform(x, n, -5, 5);
                fill_uniform(dy, n, -2, 2);
                for (int64_t i = 0; i < n; i++) y[i] = (float)ref_act(act, p, x[i]);
                bool from_out = kiln_act_grad_from_output(act);
                float *dx = out_buf(n);
                /* From the output alone (x NULL) where the contract allows it;
                 * GELU reads x only (y NULL). */
                ASSERT_OK(OPS(b)->act_backward(CTX(b), act, p, from_out ? NULL : x,
                                               from_out ? y : NULL, dy, dx, n));
                double *ref = dbuf(n);
                for (int64_t i = 0; i < n; i++) ref[i] = ref_act_grad(act, p, x[i], dy[i]);
                /* atol 1e-6: tanh' = 1 - y^2 and sigmoid' = y (1 - y) from a
                 * float y lose ~1e-7 absolute where the derivative is small. */
                CHECK_ARRAY(dx, ref, n, 1e-5, 1e-6, NULL, "%s n %lld threads %d", ACTS[a].name,
                            (long long)n, g_threads[b]);
                /* dx == dy is allowed; passing both x and y changes nothing. */
                float *d2 = inout_buf(dy, n);
                ASSERT_OK(OPS(b)->act_backward(CTX(b), act, p, x, y, d2, d2, n));
                ASSERT_BITWISE(d2, dx, n, "in place with x and y vs out of place");
                free(x);
                free(y);
                free(dy);
                free(dx);
                free(d2);
                free(ref);
            }
}

/* A NaN or Inf gradient passes through (times the derivative). Inputs are
 * fixed away from the points where a derivative is 0 in float but not in
 * float64 (which would make Inf * 0 differ). */
TEST(act_backward_nonfinite)
{
    static const float xs[] = {-2.0f, -0.5f, 0.5f, 2.0f};
    static const float dys[] = {NAN, INFINITY, -INFINITY, 1.0f};
    enum { N = 16 };
    float x[N], y[N], dy[N];
    double ref[N];
    for (int a = 0; a < N_ACTS; a++) {
        for (int i = 0; i < N; i++) {
            x[i] = xs[i / 4];
            dy[i] = dys[i % 4];
            y[i] = (float)ref_act(ACTS[a].act, ACTS[a].param, x[i]);
            ref[i] = ref_act_grad(ACTS[a].act, ACTS[a].param, x[i], dy[i]);
        }
        float *dx = out_buf(N);
        ASSERT_OK(OPS(0)->act_backward(CTX(0), ACTS[a].act, ACTS[a].param, x, y, dy, dx, N));
        CHECK_ARRAY(dx, ref, N, 1e-5, 1e-6, NULL, "%s with NaN/Inf gradients", ACTS[a].name);
        free(dx);
    }
}

/* ==================================================================================
 * bias_grad
 * ================================================================================== */

TEST(bias_grad)
{
    /* Add shapes whose column count is below the thread count and rows*cols
     * past the parallel threshold. */
    static const struct shape2 extra[] = {{20000, 1}, {9000, 3}, {17, 1500}};
    for (int s = 0; s < N_SHAPES2 + 3; s++) {
        struct shape2 sh = s < N_SHAPES2 ? SHAPES2[s] : extra[s - N_SHAPES2];
        int64_t rows = sh.rows, cols = sh.cols;
        float *dy = malloc((size_t)(rows * cols) * sizeof(float));
        fill_uniform(dy, rows * cols, -1, 1);
        double *ref = dbuf(cols), *scale = dbuf(cols);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                ref[c] += dy[r * cols + c];
                scale[c] += fabs(dy[r * cols + c]);
            }
        float *db[N_BE];
        for (int b = 0; b < N_BE; b++) {
            db[b] = out_buf(cols);
            ASSERT_OK(OPS(b)->bias_grad(CTX(b), dy, rows, cols, db[b]));
            CHECK_ARRAY(db[b], ref, cols, 0.0, 1e-5, scale, "rows %lld cols %lld threads %d",
                        (long long)rows, (long long)cols, g_threads[b]);
        }
        /* Feeds the weights: must not depend on the thread count. */
        ASSERT_BITWISE(db[0], db[1], cols, "bias_grad with 1 vs 2 threads");
        free(dy);
        free(ref);
        free(scale);
        for (int b = 0; b < N_BE; b++) free(db[b]);
    }
}

/* ==================================================================================
 * softmax
 * ================================================================================== */

TEST(softmax_forward)
{
    for (int b = 0; b < N_BE; b++)
        for (int s = 0; s < N_SHAPES2; s++) {
            int64_t rows = SHAPES2[s].rows, cols = SHAPES2[s].cols, n = rows * cols;
            float *x = malloc((size_t)n * sizeof(float));
            fill_uniform(x, n, -5, 5);
            float *y = out_buf(n);
            ASSERT_OK(OPS(b)->softmax_forward(CTX(b), x, y, rows, cols));
            double *ref = dbuf(n);
            for (int64_t r = 0; r < rows; r++) ref_softmax_row(x + r * cols, ref + r * cols, cols);
            /* atol 1e-8: probabilities near 0 keep expf's relative error. */
            CHECK_ARRAY(y, ref, n, 1e-5, 1e-8, NULL, "rows %lld cols %lld threads %d",
                        (long long)rows, (long long)cols, g_threads[b]);
            float *xy = inout_buf(x, n);
            ASSERT_OK(OPS(b)->softmax_forward(CTX(b), xy, xy, rows, cols));
            ASSERT_BITWISE(xy, y, n, "softmax in place vs out of place");
            free(x);
            free(y);
            free(xy);
            free(ref);
        }
}

/* Large logits stay finite; NaN or +Inf in a row makes the row NaN, as in
 * torch.softmax; -Inf entries get probability 0. */
TEST(softmax_forward_nonfinite)
{
    enum { R = 6, C = 3 };
    static const float x[R * C] = {1000.0f, 1001.0f, 999.0f,     /* large: stable */
                                   1.0f,    NAN,     2.0f,       /* NaN row */
                                   INFINITY, 1.0f,   2.0f,       /* +Inf: NaN row */
                                   -INFINITY, 1.0f,  2.0f,       /* -Inf: p = 0 */
                                   -INFINITY, -INFINITY, -INFINITY, /* all -Inf: NaN */
                                   -1000.0f, -1001.0f, -999.0f};
    double ref[R * C];
    for (int r = 0; r < R; r++) ref_softmax_row(x + r * C, ref + r * C, C);
    float *y = out_buf(R * C);
    ASSERT_OK(OPS(0)->softmax_forward(CTX(0), x, y, R, C));
    CHECK_ARRAY(y, ref, R * C, 1e-5, 1e-8, NULL, "softmax on extreme rows");
    ASSERT(!isnan(ref[0]) && isnan(ref[4]) && isnan(ref[6]) && ref[9] == 0.0 && isnan(ref[12]));
    free(y);
}

TEST(softmax_backward)
{
    for (int b = 0; b < N_BE; b++)
        for (int s = 0; s < N_SHAPES2; s++) {
            int64_t rows = SHAPES2[s].rows, cols = SHAPES2[s].cols, n = rows * cols;
            float *x = malloc((size_t)n * sizeof(float));
            float *y = malloc((size_t)n * sizeof(float));
            float *dy = malloc((size_t)n * sizeof(float));
            fill_uniform(x, n, -3, 3);
            fill_uniform(dy, n, -1, 1);
            double *tmp = dbuf(cols);
            for (int64_t r = 0; r < rows; r++) {
                ref_softmax_row(x + r * cols, tmp, cols);
                for (int64_t c = 0; c < cols; c++) y[r * cols + c] = (float)tmp[c];
            }
            float *dx = out_buf(n);
            ASSERT_OK(OPS(b)->softmax_backward(CTX(b), y, dy, dx, rows, cols));
            double *ref = dbuf(n), *scale = dbuf(n);
            for (int64_t r = 0; r < rows; r++) {
                double dot = 0.0, mag = 0.0;
                for (int64_t c = 0; c < cols; c++) {
                    dot += (double)dy[r * cols + c] * y[r * cols + c];
                    mag += fabs((double)dy[r * cols + c] * y[r * cols + c]);
                }
                for (int64_t c = 0; c < cols; c++) {
                    int64_t i = r * cols + c;
                    ref[i] = (double)y[i] * ((double)dy[i] - dot);
                    scale[i] = fabs((double)y[i]) * (fabs((double)dy[i]) + mag);
                }
            }
            CHECK_ARRAY(dx, ref, n, 0.0, 1e-5, scale, "rows %lld cols %lld threads %d",
                        (long long)rows, (long long)cols, g_threads[b]);
            free(x);
            free(y);
            free(dy);
            free(tmp);
            free(dx);
            free(ref);
            free(scale);
        }
}

/* ==================================================================================
 * dropout
 * ================================================================================== */

TEST(dropout)
{
    static const float rates[] = {0.0f, 0.3f, 0.5f, 0.9f, 1.0f};
    static const uint64_t offsets[] = {0, (uint64_t)3 << 44};
    const uint64_t seed = g_seed ^ 0xd20u;
    for (int s = 0; s < N_SIZES; s++)
        for (size_t ri = 0; ri < sizeof rates / sizeof rates[0]; ri++)
            for (size_t oi = 0; oi < 2; oi++) {
                int64_t n = SIZES[s];
                float p = rates[ri];
                uint64_t off = offsets[oi];
                float *x = malloc((size_t)n * sizeof(float));
                fill_uniform(x, n, 0.5, 2); /* nonzero: a zero output means dropped */
                double *ref = dbuf(n);
                int64_t kept = 0;
                for (int64_t i = 0; i < n; i++) {
                    bool keep = kiln_rng_uniform(seed, off + (uint64_t)i) >= p;
                    kept += keep;
                    ref[i] = keep ? (double)x[i] / (1.0 - p) : 0.0;
                }
                float *y[N_BE];
                for (int b = 0; b < N_BE; b++) {
                    y[b] = out_buf(n);
                    ASSERT_OK(OPS(b)->dropout_forward(CTX(b), x, y[b], n, p, seed, off));
                    /* rtol 1e-6: x * float(1 / (1 - p)) rounds twice. */
                    CHECK_ARRAY(y[b], ref, n, 1e-6, 0.0, NULL, "p %g n %lld offset %llu threads %d",
                                p, (long long)n, (unsigned long long)off, g_threads[b]);
                }
                /* The mask is a function of (seed, offset + i) only. */
                ASSERT_BITWISE(y[0], y[1], n, "dropout mask with 1 vs 2 threads");
                if (p == 0.0f) ASSERT_BITWISE(y[0], x, n, "dropout with p = 0 is the identity");
                /* Keep fraction near 1 - p: within 5 standard deviations. */
                if (n >= 1000 && p > 0.0f && p < 1.0f) {
                    double frac = (double)kept / (double)n;
                    double sd = sqrt((double)p * (1.0 - p) / (double)n);
                    if (fabs(frac - (1.0 - p)) > 5.0 * sd)
                        TEST_FAIL("dropout p %g n %lld kept %.4f, expected %.4f +- %.4f", p,
                                  (long long)n, frac, 1.0 - p, 5.0 * sd);
                }
                /* Backward: the same mask and scale applied to dy. */
                float *dy = malloc((size_t)n * sizeof(float));
                fill_uniform(dy, n, -1, 1);
                double *dref = dbuf(n);
                for (int64_t i = 0; i < n; i++)
                    dref[i] = y[0][i] != 0.0f ? (double)dy[i] / (1.0 - p) : 0.0;
                for (int b = 0; b < N_BE; b++) {
                    float *dx = out_buf(n);
                    ASSERT_OK(OPS(b)->dropout_backward(CTX(b), dy, dx, n, p, seed, off));
                    CHECK_ARRAY(dx, dref, n, 1e-6, 0.0, NULL, "backward p %g n %lld threads %d", p,
                                (long long)n, g_threads[b]);
                    /* In place, as the model runs it. */
                    float *dd = inout_buf(dy, n);
                    ASSERT_OK(OPS(b)->dropout_backward(CTX(b), dd, dd, n, p, seed, off));
                    ASSERT_BITWISE(dd, dx, n, "dropout backward in place");
                    free(dx);
                    free(dd);
                }
                free(x);
                free(ref);
                free(dy);
                free(dref);
                for (int b = 0; b < N_BE; b++) free(y[b]);
            }
    /* Different seeds and offsets give different masks. */
    enum { N = 4096 };
    float *x = malloc(N * sizeof(float)), *a = out_buf(N), *c = out_buf(N), *d = out_buf(N);
    for (int i = 0; i < N; i++) x[i] = 1.0f;
    ASSERT_OK(OPS(0)->dropout_forward(CTX(0), x, a, N, 0.5f, 1, 0));
    ASSERT_OK(OPS(0)->dropout_forward(CTX(0), x, c, N, 0.5f, 2, 0));
    ASSERT_OK(OPS(0)->dropout_forward(CTX(0), x, d, N, 0.5f, 1, (uint64_t)1 << 44));
    ASSERT(memcmp(a, c, N * sizeof(float)) != 0);
    ASSERT(memcmp(a, d, N * sizeof(float)) != 0);
    free(x);
    free(a);
    free(c);
    free(d);
}

/* ==================================================================================
 * losses
 * ================================================================================== */

TEST(softmax_xent)
{
    static const float smoothing[] = {0.0f, 0.1f};
    for (int b = 0; b < N_BE; b++)
        for (int s = 0; s < N_SHAPES2; s++)
            for (int si = 0; si < 2; si++) {
                int64_t rows = SHAPES2[s].rows, cols = SHAPES2[s].cols, n = rows * cols;
                float sm = smoothing[si];
                float *z = malloc((size_t)n * sizeof(float));
                int32_t *lab = malloc((size_t)rows * sizeof(int32_t));
                fill_uniform(z, n, -5, 5);
                for (int64_t r = 0; r < rows; r++) lab[r] = (int32_t)(test_rng_u64() % (uint64_t)cols);
                float gs = 1.0f / (float)rows;
                float *loss = out_buf(rows), *d = out_buf(n);
                ASSERT_OK(OPS(b)->softmax_xent(CTX(b), z, lab, rows, cols, sm, loss, d, gs));
                double *lref = dbuf(rows), *lscale = dbuf(rows), *dref = dbuf(n);
                for (int64_t r = 0; r < rows; r++)
                    lref[r] = ref_xent_row(z + r * cols, lab[r], cols, sm, gs, dref + r * cols,
                                           &lscale[r]);
                /* Loss: lse - sum t z cancels; atol 1e-6 of the terms' size. */
                CHECK_ARRAY(loss, lref, rows, 1e-5, 1e-6, lscale,
                            "loss rows %lld cols %lld smoothing %g threads %d", (long long)rows,
                            (long long)cols, sm, g_threads[b]);
                /* Gradient: softmax - target, times 1/rows; atol 1e-7 of that. */
                CHECK_ARRAY(d, dref, n, 1e-5, 1e-7 * gs, NULL,
                            "dlogits rows %lld cols %lld smoothing %g threads %d", (long long)rows,
                            (long long)cols, sm, g_threads[b]);
                /* dlogits NULL: the same losses. */
                float *loss2 = out_buf(rows);
                ASSERT_OK(OPS(b)->softmax_xent(CTX(b), z, lab, rows, cols, sm, loss2, NULL, gs));
                ASSERT_BITWISE(loss2, loss, rows, "softmax_xent loss without dlogits");
                free(z);
                free(lab);
                free(loss);
                free(d);
                free(loss2);
                free(lref);
                free(lscale);
                free(dref);
            }
}

TEST(softmax_xent_bad_label)
{
    float z[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    float loss[2], d[6];
    int32_t neg[2] = {0, -1}, over[2] = {3, 1};
    ASSERT_STATUS(KILN_ERR_FORMAT, OPS(0)->softmax_xent(CTX(0), z, neg, 2, 3, 0.0f, loss, d, 0.5f),
                  "softmax_xent");
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  OPS(1)->softmax_xent(CTX(1), z, over, 2, 3, 0.1f, loss, d, 0.5f), "label 3");
}

/* NaN and +Inf logits make the row's loss and gradient NaN, as in torch. */
TEST(softmax_xent_nonfinite)
{
    enum { R = 3, C = 3 };
    const float z[R * C] = {1.0f, NAN, 2.0f, INFINITY, 1.0f, 2.0f, 1.0f, 2.0f, 3.0f};
    const int32_t lab[R] = {0, 1, 2};
    for (int si = 0; si < 2; si++) {
        float sm = si ? 0.1f : 0.0f;
        float *loss = out_buf(R), *d = out_buf(R * C);
        ASSERT_OK(OPS(0)->softmax_xent(CTX(0), z, lab, R, C, sm, loss, d, 1.0f));
        double lref[R], ls[R], dref[R * C];
        for (int r = 0; r < R; r++)
            lref[r] = ref_xent_row(z + r * C, lab[r], C, sm, 1.0, dref + r * C, &ls[r]);
        CHECK_ARRAY(loss, lref, R, 1e-5, 1e-6, ls, "loss with NaN/Inf logits, smoothing %g", sm);
        CHECK_ARRAY(d, dref, R * C, 1e-5, 1e-7, NULL, "dlogits with NaN/Inf logits, smoothing %g",
                    sm);
        ASSERT(isnan(loss[0]) && isnan(loss[1]) && isfinite(loss[2]));
        free(loss);
        free(d);
    }
}

TEST(bce_logits)
{
    for (int b = 0; b < N_BE; b++)
        for (int s = 0; s < N_SHAPES2; s++) {
            int64_t rows = SHAPES2[s].rows, cols = SHAPES2[s].cols, n = rows * cols;
            float *z = malloc((size_t)n * sizeof(float)), *t = malloc((size_t)n * sizeof(float));
            fill_uniform(z, n, -8, 8);
            for (int64_t i = 0; i < n; i++)
                t[i] = i % 3 == 0 ? (float)(test_rng_u64() & 1) : rnd_range(0, 1); /* hard and soft */
            float gs = 1.0f / (float)rows;
            float *loss = out_buf(rows), *d = out_buf(n);
            ASSERT_OK(OPS(b)->bce_logits(CTX(b), z, t, rows, cols, loss, d, gs));
            double *lref = dbuf(rows), *lscale = dbuf(rows), *dref = dbuf(n);
            for (int64_t r = 0; r < rows; r++) {
                double sum = 0.0, mag = 0.0;
                for (int64_t c = 0; c < cols; c++) {
                    int64_t i = r * cols + c;
                    double zz = z[i], tt = t[i];
                    /* torch: max(z, 0) - z t + log1p(exp(-|z|)) */
                    double sp = (zz > 0 ? zz : 0.0) + log1p(exp(-fabs(zz)));
                    sum += sp - tt * zz;
                    mag += sp + fabs(tt * zz);
                    dref[i] = gs * (1.0 / (1.0 + exp(-zz)) - tt) / (double)cols;
                }
                lref[r] = sum / (double)cols;
                lscale[r] = mag / (double)cols;
            }
            CHECK_ARRAY(loss, lref, rows, 1e-5, 1e-6, lscale, "bce loss rows %lld cols %lld threads %d",
                        (long long)rows, (long long)cols, g_threads[b]);
            CHECK_ARRAY(d, dref, n, 1e-5, 1e-7 * gs / (double)cols, NULL,
                        "bce dlogits rows %lld cols %lld threads %d", (long long)rows,
                        (long long)cols, g_threads[b]);
            float *loss2 = out_buf(rows);
            ASSERT_OK(OPS(b)->bce_logits(CTX(b), z, t, rows, cols, loss2, NULL, gs));
            ASSERT_BITWISE(loss2, loss, rows, "bce loss without dlogits");
            free(z);
            free(t);
            free(loss);
            free(d);
            free(loss2);
            free(lref);
            free(lscale);
            free(dref);
        }
    /* A NaN logit makes its row's loss and its gradient NaN. */
    float z[2] = {NAN, 1.0f}, t[2] = {1.0f, 0.0f}, loss[2], d[2];
    ASSERT_OK(OPS(0)->bce_logits(CTX(0), z, t, 2, 1, loss, d, 1.0f));
    ASSERT(isnan(loss[0]) && isnan(d[0]) && isfinite(loss[1]) && isfinite(d[1]));
}

TEST(mse)
{
    for (int b = 0; b < N_BE; b++)
        for (int s = 0; s < N_SHAPES2; s++) {
            int64_t rows = SHAPES2[s].rows, cols = SHAPES2[s].cols, n = rows * cols;
            float *p = malloc((size_t)n * sizeof(float)), *t = malloc((size_t)n * sizeof(float));
            fill_uniform(p, n, -3, 3);
            fill_uniform(t, n, -3, 3);
            float gs = 1.0f / (float)rows;
            float *loss = out_buf(rows), *d = out_buf(n);
            ASSERT_OK(OPS(b)->mse(CTX(b), p, t, rows, cols, loss, d, gs));
            double *lref = dbuf(rows), *dref = dbuf(n);
            for (int64_t r = 0; r < rows; r++) {
                double sum = 0.0;
                for (int64_t c = 0; c < cols; c++) {
                    int64_t i = r * cols + c;
                    double e = (double)p[i] - t[i];
                    sum += e * e;
                    dref[i] = gs * 2.0 * e / (double)cols;
                }
                lref[r] = sum / (double)cols;
            }
            /* A sum of non-negative terms: relative error only. */
            CHECK_ARRAY(loss, lref, rows, 1e-5, 0.0, NULL, "mse loss rows %lld cols %lld threads %d",
                        (long long)rows, (long long)cols, g_threads[b]);
            /* atol: p - t rounds to float (|p - t| < 6). */
            CHECK_ARRAY(d, dref, n, 1e-5, 1e-6 * gs / (double)cols, NULL,
                        "mse dpred rows %lld cols %lld threads %d", (long long)rows,
                        (long long)cols, g_threads[b]);
            free(p);
            free(t);
            free(loss);
            free(d);
            free(lref);
            free(dref);
        }
    float p[2] = {1.0f, INFINITY}, t[2] = {NAN, 0.0f}, loss[2], d[2];
    ASSERT_OK(OPS(0)->mse(CTX(0), p, t, 2, 1, loss, d, 1.0f));
    ASSERT(isnan(loss[0]) && isnan(d[0]) && isinf(loss[1]) && isinf(d[1]));
}

/* ==================================================================================
 * reductions, scale, optimizer, gather
 * ================================================================================== */

TEST(sum_squares)
{
    /* 3000017 > 256 blocks of 4096: the block size grows with n. */
    static const int64_t sizes[] = {0, 1, 7, 33, 127, 1031, 5005, 40000, 3000017};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        float *x = malloc((size_t)(n ? n : 1) * sizeof(float));
        fill_uniform(x, n, -2, 2);
        double ref = 0.0;
        for (int64_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
        double got[N_BE];
        for (int b = 0; b < N_BE; b++) {
            got[b] = NAN;
            ASSERT_OK(OPS(b)->sum_squares(CTX(b), x, n, &got[b]));
            /* Summed in double both ways, in a different order: 1e-12. */
            if (!(fabs(got[b] - ref) <= 1e-12 * ref + 1e-300))
                TEST_FAIL("sum_squares n %lld threads %d: %.17g, reference %.17g", (long long)n,
                          g_threads[b], got[b], ref);
        }
        /* Determinism: the same bits whatever the thread count. */
        if (memcmp(&got[0], &got[1], sizeof(double)) != 0)
            TEST_FAIL("sum_squares n %lld: %.17g with 1 thread, %.17g with 2", (long long)n, got[0],
                      got[1]);
        double again = NAN;
        ASSERT_OK(OPS(1)->sum_squares(CTX(1), x, n, &again));
        ASSERT(memcmp(&again, &got[1], sizeof(double)) == 0);
        free(x);
    }
}

TEST(count_nonfinite)
{
    for (int s = 0; s < N_SIZES; s++) {
        int64_t n = SIZES[s], want = 0;
        float *x = malloc((size_t)n * sizeof(float));
        fill_uniform(x, n, -1e30, 1e30);
        for (int64_t i = 0; i < n; i++) {
            uint64_t r = test_rng_u64() % 50;
            if (r == 0) x[i] = NAN;
            else if (r == 1) x[i] = INFINITY;
            else if (r == 2) x[i] = -INFINITY;
            else if (r == 3) x[i] = FLT_MAX;
        }
        if (n == 1) x[0] = NAN;
        for (int64_t i = 0; i < n; i++) want += !isfinite(x[i]);
        for (int b = 0; b < N_BE; b++) {
            int64_t got = -1;
            ASSERT_OK(OPS(b)->count_nonfinite(CTX(b), x, n, &got));
            ASSERT_EQ_INT(want, got);
        }
        free(x);
    }
}

TEST(scale)
{
    static const float factors[] = {0.0f, -1.0f, 0.37f, 3.0e5f};
    for (int b = 0; b < N_BE; b++)
        for (int s = 0; s < N_SIZES; s++)
            for (size_t f = 0; f < sizeof factors / sizeof factors[0]; f++) {
                int64_t n = SIZES[s];
                float k = factors[f];
                float *x0 = malloc((size_t)n * sizeof(float));
                fill_uniform(x0, n, -10, 10);
                x0[0] = n > 1 ? NAN : x0[0];
                float *x = inout_buf(x0, n);
                ASSERT_OK(OPS(b)->scale(CTX(b), x, n, k));
                double *ref = dbuf(n);
                /* A float product is correctly rounded: exact match. */
                for (int64_t i = 0; i < n; i++) ref[i] = (float)((double)x0[i] * k);
                CHECK_ARRAY(x, ref, n, 0.0, 0.0, NULL, "scale by %g n %lld threads %d", k,
                            (long long)n, g_threads[b]);
                free(x0);
                free(x);
                free(ref);
            }
}

/* One step of each optimizer against float64, on every size; the detailed
 * per-formula checks live in test_optim.c. */
TEST(optimizer_step)
{
    const struct kiln_optim_step *hs = ref_optim_cases;
    for (size_t h = 0; h < REF_OPTIM_CASES; h++)
        for (int s = 0; s < N_SIZES; s++) {
            const struct kiln_optim_step *o = &hs[h];
            int64_t n = SIZES[s];
            int spp = kiln_optim_state_per_param(o->kind, o->momentum);
            float *p0 = malloc((size_t)n * sizeof(float)), *g = malloc((size_t)n * sizeof(float));
            float *st0 = malloc((size_t)(spp * n + 1) * sizeof(float));
            fill_uniform(p0, n, -1, 1);
            fill_uniform(g, n, -1, 1);
            fill_uniform(st0, spp * n, 0, 0.5); /* m, v (>= 0) or momentum buffers */
            double *pref = dbuf(n), *sref = dbuf(spp * n);
            ref_optimizer_step(o, p0, g, st0, n, pref, sref);
            float *pg[N_BE], *sg[N_BE];
            for (int b = 0; b < N_BE; b++) {
                pg[b] = inout_buf(p0, n);
                sg[b] = inout_buf(st0, spp * n);
                ASSERT_OK(OPS(b)->optimizer_step(CTX(b), o, pg[b], g, spp ? sg[b] : NULL, n));
                /* rtol 1e-5 over the parameter; atol 1e-6 against the step
                 * (lr up to 0.1 times terms of size ~1, rounded in float). */
                CHECK_ARRAY(pg[b], pref, n, 1e-5, 1e-6, NULL, "optimizer %zu params n %lld threads %d",
                            h, (long long)n, g_threads[b]);
                CHECK_ARRAY(sg[b], sref, spp * n, 1e-5, 1e-7, NULL,
                            "optimizer %zu state n %lld threads %d", h, (long long)n,
                            g_threads[b]);
            }
            ASSERT_BITWISE(pg[0], pg[1], n, "optimizer_step with 1 vs 2 threads");
            free(p0);
            free(g);
            free(st0);
            free(pref);
            free(sref);
            for (int b = 0; b < N_BE; b++) {
                free(pg[b]);
                free(sg[b]);
            }
        }
}

TEST(gather_rows)
{
    static const int64_t row_sizes[] = {1, 7, 33, 127, 1031, 5 * 7 * 11 * 13};
    for (int b = 0; b < N_BE; b++)
        for (size_t s = 0; s < sizeof row_sizes / sizeof row_sizes[0]; s++) {
            int64_t rs = row_sizes[s], src_rows = 41, rows = 23;
            uint8_t *u8 = malloc((size_t)(src_rows * rs));
            float *f32 = malloc((size_t)(src_rows * rs) * sizeof(float));
            for (int64_t i = 0; i < src_rows * rs; i++) u8[i] = (uint8_t)(test_rng_u64() & 255);
            fill_uniform(f32, src_rows * rs, -5, 5);
            int64_t idx[23];
            for (int64_t r = 0; r < rows; r++) idx[r] = (int64_t)(test_rng_u64() % (uint64_t)src_rows);
            idx[1] = idx[0];                 /* repeats are fine */
            idx[rows - 1] = src_rows - 1;    /* the last row */
            double *ref = dbuf(rows * rs);
            /* uint8, scaled by 1/255 as batches of uint8 datasets are. */
            float *d = out_buf(rows * rs);
            ASSERT_OK(OPS(b)->gather_rows(CTX(b), u8, KILN_ELEM_U8, rs, idx, rows, 1.0f / 255.0f, d));
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < rs; c++)
                    ref[r * rs + c] = (double)u8[idx[r] * rs + c] / 255.0;
            /* rtol 2e-7: float(v) * float(1/255) is within one ulp of v / 255. */
            CHECK_ARRAY(d, ref, rows * rs, 2e-7, 0.0, NULL, "u8 row size %lld threads %d",
                        (long long)rs, g_threads[b]);
            free(d);
            /* float32, scale 1 (exact copy) and 0.5 (exact too). */
            for (int k = 0; k < 2; k++) {
                float sc = k ? 0.5f : 1.0f;
                d = out_buf(rows * rs);
                ASSERT_OK(OPS(b)->gather_rows(CTX(b), f32, KILN_ELEM_F32, rs, idx, rows, sc, d));
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = 0; c < rs; c++)
                        ref[r * rs + c] = (double)f32[idx[r] * rs + c] * sc;
                CHECK_ARRAY(d, ref, rows * rs, 0.0, 0.0, NULL, "f32 scale %g row size %lld threads %d",
                            sc, (long long)rs, g_threads[b]);
                free(d);
            }
            free(u8);
            free(f32);
            free(ref);
        }
    /* int32 rows (class labels) are copied bit for bit, scale ignored. */
    int32_t src[4] = {1, 2, -3, 2147483647};
    int64_t idx[2] = {1, 0};
    int32_t d[4];
    ASSERT_OK(OPS(0)->gather_rows(CTX(0), src, KILN_ELEM_I32, 2, idx, 2, 0.5f, (float *)(void *)d));
    ASSERT(d[0] == -3 && d[1] == 2147483647 && d[2] == 1 && d[3] == 2);
    /* Any other element type is refused. */
    ASSERT(OPS(0)->gather_rows(CTX(0), src, (enum kiln_elem)7, 2, idx, 1, 1.0f, (float *)(void *)d) !=
           KILN_OK);
}

/* Many rows: the parallel branch of gather_rows. */
TEST(gather_rows_parallel)
{
    int64_t rs = 784, src_rows = 300, rows = 256;
    uint8_t *u8 = malloc((size_t)(src_rows * rs));
    int64_t *idx = malloc((size_t)rows * sizeof(int64_t));
    for (int64_t i = 0; i < src_rows * rs; i++) u8[i] = (uint8_t)(test_rng_u64() & 255);
    for (int64_t r = 0; r < rows; r++) idx[r] = (int64_t)(test_rng_u64() % (uint64_t)src_rows);
    float *d[N_BE];
    for (int b = 0; b < N_BE; b++) {
        d[b] = out_buf(rows * rs);
        ASSERT_OK(OPS(b)->gather_rows(CTX(b), u8, KILN_ELEM_U8, rs, idx, rows, 1.0f / 255.0f, d[b]));
        ASSERT(sentinel_ok(d[b], rows * rs));
    }
    ASSERT_BITWISE(d[0], d[1], rows * rs, "gather_rows with 1 vs 2 threads");
    for (int64_t i = 0; i < rows * rs; i++)
        if (!(fabs(d[0][i] - (double)u8[idx[i / rs] * rs + i % rs] / 255.0) <= 2e-7))
            TEST_FAIL("gather_rows u8 element %lld", (long long)i);
    free(u8);
    free(idx);
    for (int b = 0; b < N_BE; b++) free(d[b]);
}

/* The op table is complete: every entry is set. */
TEST(op_table_complete)
{
    const struct kiln_ops *o = OPS(0);
    const bool entries[] = {
        o->gemm != NULL,            o->bias_act != NULL,         o->act_forward != NULL,
        o->act_backward != NULL,    o->bias_grad != NULL,        o->softmax_forward != NULL,
        o->softmax_backward != NULL, o->dropout_forward != NULL, o->dropout_backward != NULL,
        o->softmax_xent != NULL,    o->bce_logits != NULL,       o->mse != NULL,
        o->sum_squares != NULL,     o->count_nonfinite != NULL,  o->scale != NULL,
        o->optimizer_step != NULL,  o->gather_rows != NULL,
        true /* dense_forward: optional, NULL on the CPU (gemm + bias_act) */,
        o->dropout_keyed != NULL,   o->step_begin != NULL,       o->step_check != NULL,
        o->confusion != NULL,
    };
    /* Every member is listed above (a new op must be added here and tested). */
    ASSERT_EQ_INT(sizeof(struct kiln_ops) / sizeof(void (*)(void)),
                  sizeof entries / sizeof entries[0]);
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        if (!entries[i]) TEST_FAIL("op table entry %zu is NULL", i);
    ASSERT_EQ_STR("cpu", g_be[0]->iface->name);
    ASSERT(g_be[0]->iface->host_memory);
    ASSERT_EQ_INT(1, g_be[0]->threads);
    ASSERT_EQ_INT(2, g_be[1]->threads);
    /* alloc: 64-byte aligned, even for 0 bytes. */
    void *p = g_be[0]->iface->alloc(g_be[0]->ctx, 0), *q = g_be[0]->iface->alloc(g_be[0]->ctx, 100);
    ASSERT(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0);
    g_be[0]->iface->free(g_be[0]->ctx, p);
    g_be[0]->iface->free(g_be[0]->ctx, q);
}

int main(void)
{
    const char *env = getenv("KILN_TEST_SEED");
    if (env && *env) g_seed = strtoull(env, NULL, 0);
    test_rng_state = g_seed;
    fprintf(stderr, "test_kernels: seed %llu (set KILN_TEST_SEED to repeat)\n",
            (unsigned long long)g_seed);
    for (int b = 0; b < N_BE; b++)
        if (kiln_cpu_backend_create(g_threads[b], &g_be[b]) != KILN_OK) {
            fprintf(stderr, "cannot create the cpu backend: %s\n", kiln_last_error());
            return 1;
        }
    RUN(op_table_complete);
    RUN(gemm);
    RUN(bias_act);
    RUN(act_forward);
    RUN(act_forward_nonfinite);
    RUN(act_backward);
    RUN(act_backward_nonfinite);
    RUN(bias_grad);
    RUN(softmax_forward);
    RUN(softmax_forward_nonfinite);
    RUN(softmax_backward);
    RUN(dropout);
    RUN(softmax_xent);
    RUN(softmax_xent_bad_label);
    RUN(softmax_xent_nonfinite);
    RUN(bce_logits);
    RUN(mse);
    RUN(sum_squares);
    RUN(count_nonfinite);
    RUN(scale);
    RUN(optimizer_step);
    RUN(gather_rows);
    RUN(gather_rows_parallel);
    for (int b = 0; b < N_BE; b++) kiln_backend_free(g_be[b]);
    return test_summary();
}
