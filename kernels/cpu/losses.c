/* kernels/cpu/losses.c: fused softmax cross-entropy, BCE with logits, MSE. */
#include <math.h>

#include "cpu-backend.h"
#include "elementwise.h"

enum kiln_status cpu_softmax_xent(void *ctx, const float *logits, const int32_t *labels,
                                  int64_t rows, int64_t cols, float smoothing, float *loss_rows,
                                  float *dlogits, float grad_scale)
{
    for (int64_t r = 0; r < rows; r++)
        if (labels[r] < 0 || labels[r] >= cols)
            return kiln_errorf(KILN_ERR_FORMAT,
                               "softmax_xent: label %d of row %lld is outside [0, %lld)",
                               labels[r], (long long)r, (long long)cols);
    int threads = rows * cols >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
    float off = smoothing / (float)cols; /* smoothed target of every class */
    float on = 1.0f - smoothing + off;   /* ... and of the true class */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *z = logits + r * cols;
        float mx = -INFINITY;
        for (int64_t c = 0; c < cols; c++) mx = z[c] > mx ? z[c] : mx;
        float sum = 0.0f, zsum = 0.0f;
        for (int64_t c = 0; c < cols; c++) {
            sum += expf(z[c] - mx);
            zsum += z[c];
        }
        float lse = mx + logf(sum);
        int32_t y = labels[r];
        /* -sum_c t_c log p_c = lse - sum_c t_c z_c */
        /* Without smoothing the sum term is skipped, not multiplied by 0: a
         * -inf logit would make it NaN where PyTorch's loss is finite. */
        loss_rows[r] = lse - (1.0f - smoothing) * z[y] - (smoothing > 0.0f ? off * zsum : 0.0f);
        if (dlogits) {
            float *d = dlogits + r * cols;
            float inv = 1.0f / sum;
            for (int64_t c = 0; c < cols; c++)
                d[c] = grad_scale * (expf(z[c] - mx) * inv - off);
            d[y] = grad_scale * (expf(z[y] - mx) * inv - on);
        }
    }
    return KILN_OK;
}

enum kiln_status cpu_bce_logits(void *ctx, const float *logits, const float *targets,
                                int64_t rows, int64_t cols, float *loss_rows, float *dlogits,
                                float grad_scale)
{
    int threads = rows * cols >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
    float inv_cols = 1.0f / (float)cols;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float sum = 0.0f;
        for (int64_t c = 0; c < cols; c++) {
            int64_t i = r * cols + c;
            sum += kiln_bce_logit_loss(logits[i], targets[i]);
            if (dlogits)
                dlogits[i] = grad_scale * inv_cols *
                             (kiln_act_apply(KILN_ACT_SIGMOID, 0.0f, logits[i]) - targets[i]);
        }
        loss_rows[r] = sum * inv_cols;
    }
    return KILN_OK;
}

enum kiln_status cpu_mse(void *ctx, const float *pred, const float *targets, int64_t rows,
                         int64_t cols, float *loss_rows, float *dpred, float grad_scale)
{
    int threads = rows * cols >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
    float inv_cols = 1.0f / (float)cols;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float sum = 0.0f;
        for (int64_t c = 0; c < cols; c++) {
            int64_t i = r * cols + c;
            float d = pred[i] - targets[i];
            sum += d * d;
            if (dpred) dpred[i] = grad_scale * 2.0f * inv_cols * d;
        }
        loss_rows[r] = sum * inv_cols;
    }
    return KILN_OK;
}
