/* kernels/cpu/reduce.c: deterministic reductions, scaling, the optimizer
 * update and the batch gather. */
#include <math.h>
#include <string.h>

#include "cpu-backend.h"
#include "elementwise.h"

/* At most this many partial sums: blocks are sized from n alone, so the
 * summation order (and the result) does not depend on the thread count. */
#define SUM_MAX_BLOCKS 256
#define SUM_MIN_BLOCK 4096

enum kiln_status cpu_sum_squares(void *ctx, const float *x, int64_t n, double *out)
{
    double partial[SUM_MAX_BLOCKS];
    int64_t block = (n + SUM_MAX_BLOCKS - 1) / SUM_MAX_BLOCKS;
    if (block < SUM_MIN_BLOCK) block = SUM_MIN_BLOCK;
    int64_t blocks = (n + block - 1) / block;
    int threads = n >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t lo = b * block, hi = lo + block < n ? lo + block : n;
        double s = 0.0;
        for (int64_t i = lo; i < hi; i++) s += (double)x[i] * (double)x[i];
        partial[b] = s;
    }
    double total = 0.0;
    for (int64_t b = 0; b < blocks; b++) total += partial[b];
    *out = total;
    return KILN_OK;
}

enum kiln_status cpu_count_nonfinite(void *ctx, const float *x, int64_t n, int64_t *out)
{
    int64_t count = 0;
    int threads = n >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : count)
    for (int64_t i = 0; i < n; i++) count += !isfinite(x[i]);
    *out = count;
    return KILN_OK;
}

enum kiln_status cpu_scale(void *ctx, float *x, int64_t n, float s)
{
    int threads = n >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] *= s;
    return KILN_OK;
}

enum kiln_status cpu_bias_grad(void *ctx, const float *dy, int64_t rows, int64_t cols, float *db)
{
    /* Threads split the columns; each column sums its rows in order. */
    int threads = rows * cols >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
    int64_t chunk = (cols + threads - 1) / threads;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; t++) {
        int64_t lo = t * chunk, hi = lo + chunk < cols ? lo + chunk : cols;
        for (int64_t c = lo; c < hi; c++) db[c] = 0.0f;
        for (int64_t r = 0; r < rows; r++) {
            const float *row = dy + r * cols;
            for (int64_t c = lo; c < hi; c++) db[c] += row[c];
        }
    }
    return KILN_OK;
}

enum kiln_status cpu_optimizer_step(void *ctx, const struct kiln_optim_step *h, float *params,
                                    const float *grads, float *state, int64_t n)
{
    int threads = n >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
    struct kiln_optim_step now;
    if (h->ctl) {
        /* A step the guard marked bad (or any after it) leaves the weights
         * as they were; lr comes from the step's values. */
        if (h->ctl->first_bad >= 0) return KILN_OK;
        now = *h;
        now.lr = h->ctl->now.lr;
        h = &now;
    }
    if (h->kind == KILN_OPTIM_SGD) {
        float dummy = 0.0f;
#pragma omp parallel for num_threads(threads) schedule(static) firstprivate(dummy)
        for (int64_t i = 0; i < n; i++)
            params[i] = kiln_sgd_update(h, params[i], grads[i], state ? state + i : &dummy);
        return KILN_OK;
    }
    float bc1 = 1.0f - powf(h->beta1, (float)h->t);
    float bc2_sqrt = sqrtf(1.0f - powf(h->beta2, (float)h->t));
    if (h->ctl) {
        bc1 = h->ctl->now.bc1;
        bc2_sqrt = h->ctl->now.bc2_sqrt;
    }
    float *m = state, *v = state + n;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n; i++)
        params[i] = kiln_adam_update(h, params[i], grads[i], m + i, v + i, bc1, bc2_sqrt);
    return KILN_OK;
}

enum kiln_status cpu_gather_rows(void *ctx, const void *src, enum kiln_elem elem,
                                 int64_t row_size, const int64_t *idx, int64_t rows, float scale,
                                 float *dst)
{
    int threads = rows * row_size >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
    if (elem == KILN_ELEM_U8) {
        const uint8_t *s = src;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const uint8_t *in = s + idx[r] * row_size;
            float *o = dst + r * row_size;
            for (int64_t c = 0; c < row_size; c++) o[c] = (float)in[c] * scale;
        }
    } else if (elem == KILN_ELEM_F32) {
        const float *s = src;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float *in = s + idx[r] * row_size;
            float *o = dst + r * row_size;
            for (int64_t c = 0; c < row_size; c++) o[c] = in[c] * scale;
        }
    } else if (elem == KILN_ELEM_I32) {
        const int32_t *s = src;
        int32_t *o = (int32_t *)(void *)dst;
        for (int64_t r = 0; r < rows; r++)
            memcpy(o + r * row_size, s + idx[r] * row_size, (size_t)row_size * sizeof(int32_t));
    } else {
        return kiln_errorf(KILN_ERR_INTERNAL, "gather_rows: element type %d not supported", elem);
    }
    return KILN_OK;
}

enum kiln_status cpu_step_begin(void *ctx, struct kiln_step_ctl *ctl,
                                const struct kiln_step_vars *vars, const int64_t *order,
                                int64_t batch, int64_t rows, int64_t *idx)
{
    (void)ctx;
    ctl->now = vars[ctl->cursor];
    memcpy(idx, order + ctl->cursor * batch, (size_t)rows * sizeof(int64_t));
    return KILN_OK;
}

enum kiln_status cpu_step_check(void *ctx, struct kiln_step_ctl *ctl, struct kiln_step_vars *vars,
                                const float *loss_rows, int64_t rows, float *grads, int64_t n,
                                float clip_norm)
{
    /* The same arithmetic, in the same order, as the trainer's host-side
     * checks, so that both paths give bitwise identical weights. */
    double sum = 0.0;
    for (int64_t r = 0; r < rows; r++) sum += loss_rows[r];
    double loss = sum / (double)rows;
    int32_t bad = 0;
    enum kiln_status st = KILN_OK;
    if (!isfinite(loss)) {
        bad = KILN_STEP_BAD_LOSS;
    } else {
        int64_t nonfinite = 0;
        st = cpu_count_nonfinite(ctx, grads, n, &nonfinite);
        if (st != KILN_OK) return st;
        if (nonfinite > 0) {
            bad = KILN_STEP_BAD_GRAD;
        } else if (clip_norm > 0.0f) {
            double sq;
            st = cpu_sum_squares(ctx, grads, n, &sq);
            if (st != KILN_OK) return st;
            double norm = sqrt(sq);
            if (norm > clip_norm) st = cpu_scale(ctx, grads, n, (float)(clip_norm / (norm + 1e-6)));
            if (st != KILN_OK) return st;
        }
    }
    ctl->now.loss = loss;
    ctl->now.bad = bad;
    vars[ctl->cursor].loss = loss;
    vars[ctl->cursor].bad = bad;
    if (bad && ctl->first_bad < 0) ctl->first_bad = ctl->cursor;
    ctl->cursor++;
    return KILN_OK;
}

enum kiln_status cpu_confusion(void *ctx, const float *logits, const int32_t *labels, int64_t rows,
                               int64_t cols, int64_t *counts)
{
    (void)ctx;
    for (int64_t r = 0; r < rows; r++) {
        const float *o = logits + r * cols;
        int64_t best = 0;
        for (int64_t c = 1; c < cols; c++)
            if (o[c] > o[best]) best = c;
        if (labels[r] >= 0 && labels[r] < cols) counts[(int64_t)labels[r] * cols + best]++;
    }
    return KILN_OK;
}
