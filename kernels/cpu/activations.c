/* kernels/cpu/activations.c: activations, softmax and dropout. */
#include <math.h>

#include "cpu-backend.h"
#include "elementwise.h"

enum kiln_status cpu_act_forward(void *ctx, enum kiln_act act, float param, const float *x,
                                 float *y, int64_t n)
{
    int threads = n >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] = kiln_act_apply(act, param, x[i]);
    return KILN_OK;
}

enum kiln_status cpu_act_backward(void *ctx, enum kiln_act act, float param, const float *x,
                                  const float *y, const float *dy, float *dx, int64_t n)
{
    int threads = n >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
    if (act == KILN_ACT_RELU) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        return KILN_OK;
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++)
        dx[i] = dy[i] * kiln_act_deriv(act, param, x ? x[i] : 0.0f, y ? y[i] : 0.0f);
    return KILN_OK;
}

enum kiln_status cpu_softmax_forward(void *ctx, const float *x, float *y, int64_t rows,
                                     int64_t cols)
{
    int threads = rows * cols >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float mx = -INFINITY;
        for (int64_t c = 0; c < cols; c++) mx = xr[c] > mx ? xr[c] : mx;
        float sum = 0.0f;
        for (int64_t c = 0; c < cols; c++) {
            yr[c] = expf(xr[c] - mx);
            sum += yr[c];
        }
        float inv = 1.0f / sum;
        for (int64_t c = 0; c < cols; c++) yr[c] *= inv;
    }
    return KILN_OK;
}

enum kiln_status cpu_softmax_backward(void *ctx, const float *y, const float *dy, float *dx,
                                      int64_t rows, int64_t cols)
{
    int threads = rows * cols >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * cols, *dyr = dy + r * cols;
        float *dxr = dx + r * cols;
        float dot = 0.0f;
        for (int64_t c = 0; c < cols; c++) dot += dyr[c] * yr[c];
        for (int64_t c = 0; c < cols; c++) dxr[c] = yr[c] * (dyr[c] - dot);
    }
    return KILN_OK;
}

enum kiln_status cpu_dropout_forward(void *ctx, const float *x, float *y, int64_t n, float p,
                                     uint64_t seed, uint64_t offset)
{
    int threads = n >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
    float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++)
        y[i] = kiln_rng_uniform(seed, offset + (uint64_t)i) >= p ? x[i] * keep_scale : 0.0f;
    return KILN_OK;
}

enum kiln_status cpu_dropout_backward(void *ctx, const float *dy, float *dx, int64_t n, float p,
                                      uint64_t seed, uint64_t offset)
{
    /* Same mask, same scale: backward is forward applied to dy. */
    return cpu_dropout_forward(ctx, dy, dx, n, p, seed, offset);
}

enum kiln_status cpu_dropout_keyed(void *ctx, const float *x, float *y, int64_t n, float p,
                                   const uint64_t *seed, uint64_t offset)
{
    return cpu_dropout_forward(ctx, x, y, n, p, *seed, offset);
}
