/* engine/nn/metrics.c: evaluation: loss, accuracy, confusion matrix,
 * per-class precision/recall/F1; MSE, MAE and R^2 for regression. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model-internal.h"

void kiln_metrics_free(struct kiln_metrics *m)
{
    if (!m) return;
    free(m->confusion);
    free(m->precision);
    free(m->recall);
    free(m->f1);
    m->confusion = NULL;
    m->precision = m->recall = m->f1 = NULL;
}

/* Puts rows idx[lo..lo+n) (or lo..lo+n) of split into the model's input and
 * label buffers. host_x/host_y are staging buffers for device backends. */
static enum kiln_status eval_load_batch(struct kiln_model *m, const struct kiln_split *sp,
                                        const int64_t *rows, int64_t n, float *host_x,
                                        void *host_y)
{
    struct kiln_backend *be = m->be;
    bool u8 = sp->x_dtype == KILN_DTYPE_U8;
    float scale = u8 ? KILN_U8_SCALE : 1.0f;
    size_t y_row = (size_t)sp->y_dim * kiln_dtype_size(sp->y_dtype);
    bool host = be->iface->host_memory;
    float *x = host ? m->x : host_x;
    char *y = host ? m->labels : host_y;
    for (int64_t r = 0; r < n; r++) {
        int64_t row = rows[r];
        float *o = x + r * sp->feat_size;
        if (u8) {
            const uint8_t *in = (const uint8_t *)sp->X + row * sp->feat_size;
            for (int64_t c = 0; c < sp->feat_size; c++) o[c] = (float)in[c] * scale;
        } else {
            memcpy(o, (const float *)sp->X + row * sp->feat_size,
                   (size_t)sp->feat_size * sizeof(float));
        }
        memcpy(y + (size_t)r * y_row, (const char *)sp->y + (size_t)row * y_row, y_row);
    }
    if (host) return KILN_OK;
    enum kiln_status st = be->iface->upload(be->ctx, m->x, host_x,
                                            (size_t)(n * sp->feat_size) * sizeof(float));
    if (st == KILN_OK) st = be->iface->upload(be->ctx, m->labels, host_y, (size_t)n * y_row);
    return st;
}

enum kiln_status kiln_evaluate(struct kiln_model *m, const struct kiln_split *split,
                               const int64_t *idx, int64_t n, int n_classes,
                               struct kiln_metrics *out)
{
    memset(out, 0, sizeof *out);
    struct kiln_backend *be = m->be;
    int64_t bs = m->max_batch, k = m->out_size;
    bool classify = m->cfg.loss == KILN_LOSS_SOFTMAX_XENT;
    enum kiln_status st = KILN_OK;
    if (split->feat_size != m->in_size)
        return kiln_errorf(KILN_ERR_SHAPE, "evaluate: rows have %lld features, the model takes %lld",
                           (long long)split->feat_size, (long long)m->in_size);
    if (classify && (split->y_dtype != KILN_DTYPE_I32 || n_classes != k))
        return kiln_errorf(KILN_ERR_SHAPE,
                           "evaluate: the model has %lld outputs but the data has %d classes",
                           (long long)k, n_classes);
    if (!classify && (split->y_dtype != KILN_DTYPE_F32 || split->y_dim != k))
        return kiln_errorf(KILN_ERR_SHAPE,
                           "evaluate: the model has %lld outputs but the targets have %lld",
                           (long long)k, (long long)split->y_dim);
    int64_t *counts_dev = NULL;
    int64_t *rows = malloc((size_t)bs * sizeof(int64_t));
    float *outs = malloc((size_t)(bs * k) * sizeof(float));
    float *host_x = NULL;
    void *host_y = NULL;
    double *col_sum = calloc((size_t)k, sizeof(double)), *col_sq = calloc((size_t)k, sizeof(double));
    if (!be->iface->host_memory) {
        host_x = malloc((size_t)(bs * m->in_size) * sizeof(float));
        host_y = malloc((size_t)(bs * (split->y_dim > 0 ? split->y_dim : 1)) * sizeof(float));
    }
    if (classify) {
        out->n_classes = n_classes;
        out->confusion = calloc((size_t)n_classes * (size_t)n_classes, sizeof(int64_t));
        out->precision = calloc((size_t)n_classes, sizeof(double));
        out->recall = calloc((size_t)n_classes, sizeof(double));
        out->f1 = calloc((size_t)n_classes, sizeof(double));
    }
    if (!rows || !outs || !col_sum || !col_sq ||
        (!be->iface->host_memory && (!host_x || !host_y)) ||
        (classify && (!out->confusion || !out->precision || !out->recall || !out->f1))) {
        st = kiln_errorf(KILN_ERR_NOMEM, "evaluate: out of memory");
        goto cleanup;
    }
    /* The backend counts the confusion matrix (accuracy is its trace): on
     * a device only the loss rows and, at the end, the matrix come back. */
    int64_t *counts = out->confusion;
    size_t counts_bytes = (size_t)n_classes * (size_t)n_classes * sizeof(int64_t);
    if (classify && !be->iface->host_memory) {
        counts = counts_dev = be->iface->alloc(be->ctx, counts_bytes);
        if (!counts_dev) {
            st = kiln_error_context(KILN_ERR_NOMEM, "evaluate: the confusion matrix");
            goto cleanup;
        }
        st = be->iface->upload(be->ctx, counts_dev, out->confusion, counts_bytes);
        if (st != KILN_OK) goto cleanup;
    }
    double loss_sum = 0.0, sq_err = 0.0, abs_err = 0.0;
    int64_t correct = 0, bin_total = 0;
    for (int64_t lo = 0; lo < n; lo += bs) {
        int64_t b = lo + bs <= n ? bs : n - lo;
        for (int64_t r = 0; r < b; r++) rows[r] = idx ? idx[lo + r] : lo + r;
        st = eval_load_batch(m, split, rows, b, host_x, host_y);
        const float *logits = NULL;
        double loss = 0.0;
        if (st == KILN_OK) st = nn_forward(m, b, false, 0, &logits);
        if (st == KILN_OK) st = nn_loss_backward(m, logits, b, false, 0, &loss);
        if (st == KILN_OK && classify)
            st = m->ops->confusion(be->ctx, logits, m->labels, b, k, counts);
        else if (st == KILN_OK)
            st = be->iface->download(be->ctx, outs, logits, (size_t)(b * k) * sizeof(float));
        if (st != KILN_OK) goto cleanup;
        loss_sum += loss * (double)b;
        if (classify) continue;
        for (int64_t r = 0; r < b; r++) {
            const float *o = outs + r * k;
            const float *t = (const float *)split->y + rows[r] * k;
            for (int64_t c = 0; c < k; c++) {
                double d = (double)o[c] - (double)t[c];
                sq_err += d * d;
                abs_err += fabs(d);
                col_sum[c] += t[c];
                col_sq[c] += (double)t[c] * t[c];
                if (m->cfg.loss == KILN_LOSS_BCE_LOGITS) {
                    correct += (o[c] > 0.0f) == (t[c] > 0.5f);
                    bin_total++;
                }
            }
        }
    }
    if (counts_dev) {
        st = be->iface->download(be->ctx, out->confusion, counts_dev, counts_bytes);
        if (st != KILN_OK) goto cleanup;
    }
    if (classify)
        for (int c = 0; c < n_classes; c++) correct += out->confusion[(int64_t)c * n_classes + c];
    out->n = n;
    out->loss = n ? loss_sum / (double)n : 0.0;
    if (classify) {
        out->accuracy = n ? (double)correct / (double)n : 0.0;
        double f1_sum = 0.0;
        for (int c = 0; c < n_classes; c++) {
            int64_t tp = out->confusion[(int64_t)c * n_classes + c], pred = 0, actual = 0;
            for (int j = 0; j < n_classes; j++) {
                pred += out->confusion[(int64_t)j * n_classes + c];
                actual += out->confusion[(int64_t)c * n_classes + j];
            }
            out->precision[c] = pred ? (double)tp / (double)pred : 0.0;
            out->recall[c] = actual ? (double)tp / (double)actual : 0.0;
            double pr = out->precision[c] + out->recall[c];
            out->f1[c] = pr > 0 ? 2.0 * out->precision[c] * out->recall[c] / pr : 0.0;
            f1_sum += out->f1[c];
        }
        out->macro_f1 = n_classes ? f1_sum / n_classes : 0.0;
    } else if (n > 0) {
        double total = (double)n * (double)k, ss_tot = 0.0;
        for (int64_t c = 0; c < k; c++) ss_tot += col_sq[c] - col_sum[c] * col_sum[c] / (double)n;
        out->mse = sq_err / total;
        out->mae = abs_err / total;
        out->r2 = ss_tot > 0 ? 1.0 - sq_err / ss_tot : 0.0;
        if (bin_total) out->accuracy = (double)correct / (double)bin_total;
    }
cleanup:
    if (counts_dev) be->iface->free(be->ctx, counts_dev);
    free(rows);
    free(outs);
    free(host_x);
    free(host_y);
    free(col_sum);
    free(col_sq);
    if (st != KILN_OK) kiln_metrics_free(out);
    return st;
}
