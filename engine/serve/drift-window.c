/* engine/serve/drift-window.c: drift over a sliding window of live traffic
 * (kiln/drift.h, "Sliding-window drift").
 *
 * The window is a ring of KILN_DRIFT_WINDOW_BLOCKS + 1 blocks, each holding
 * per-feature histograms over the baseline's bins and class counts for
 * window_rows / KILN_DRIFT_WINDOW_BLOCKS rows. When the filling block is
 * full the ring advances and the oldest block is emptied for reuse, so old
 * traffic leaves in whole blocks and memory stays fixed. Values are binned
 * with drift.c's drift_bin and scored with kiln_drift_psi / kiln_drift_ks,
 * so a window that still holds every row agrees with kiln_drift exactly.
 *
 * Adds bin their rows outside the lock (the arithmetic) and take it only to
 * count (the increments); scores take it to sum the blocks. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/drift.h"
#include "serve/drift-internal.h"

#define WINDOW_RING (KILN_DRIFT_WINDOW_BLOCKS + 1)
#define WINDOW_CHUNK 64            /* rows binned per lock, at most */
#define WINDOW_BINS_STACK 32768    /* bytes of bins kept on the stack per add: 41 rows of 784 */
#define WINDOW_MISSING 0xff        /* the "bin" of a NaN/Inf value: not counted */

struct window_block {
    int64_t rows;
    int64_t *hist;                 /* [n_features][KILN_STATS_BINS] */
    int64_t *classes;              /* [n_classes] */
};

struct kiln_drift_window {
    pthread_mutex_t mu;
    int64_t n_features, block_rows;
    int n_classes;                 /* 0: the baseline has no class counts */
    char (*names)[64];
    double *min, *max;
    double *range;                 /* max - min; 1 where the baseline is constant */
    int64_t *constant;             /* the features whose baseline is constant */
    int64_t n_constant;
    int64_t *base_hist;            /* [n_features][KILN_STATS_BINS] */
    int64_t *base_classes;
    struct window_block ring[WINDOW_RING];
    int cur;                       /* the filling block */
    int64_t *counts;               /* the blocks' histograms and class counts, one allocation */
};

void kiln_drift_window_free(struct kiln_drift_window *w)
{
    if (!w) return;
    pthread_mutex_destroy(&w->mu);
    free(w->names);
    free(w->min);
    free(w->max);
    free(w->range);
    free(w->constant);
    free(w->base_hist);
    free(w->base_classes);
    free(w->counts);
    free(w);
}

enum kiln_status kiln_drift_window_create(const struct kiln_split_stats *base, int64_t window_rows,
                                          struct kiln_drift_window **out)
{
    *out = NULL;
    if (window_rows < KILN_DRIFT_WINDOW_BLOCKS)
        return kiln_errorf(KILN_ERR_USAGE, "drift window: %lld rows is less than %d",
                           (long long)window_rows, KILN_DRIFT_WINDOW_BLOCKS);
    /* kiln_drift_begin holds the rules for what a baseline must have. */
    struct kiln_drift *check = NULL;
    enum kiln_status st = kiln_drift_begin(base, &check);
    kiln_drift_free(check);
    if (st != KILN_OK) return st;
    struct kiln_drift_window *w = calloc(1, sizeof *w);
    if (!w) return kiln_errorf(KILN_ERR_NOMEM, "drift window: out of memory");
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        free(w);
        return kiln_errorf(KILN_ERR_NOMEM, "drift window: cannot make a mutex");
    }
    int64_t nf = base->n_features;
    w->n_features = nf;
    w->block_rows = window_rows / KILN_DRIFT_WINDOW_BLOCKS;
    w->n_classes = base->n_classes > 0 && base->class_counts ? base->n_classes : 0;
    size_t hist_len = (size_t)nf * KILN_STATS_BINS;
    size_t block_len = hist_len + (size_t)w->n_classes;
    w->names = calloc((size_t)nf, sizeof *w->names);
    w->min = malloc((size_t)nf * sizeof *w->min);
    w->max = malloc((size_t)nf * sizeof *w->max);
    w->range = malloc((size_t)nf * sizeof *w->range);
    w->constant = malloc((size_t)nf * sizeof *w->constant);
    w->base_hist = malloc(hist_len * sizeof *w->base_hist);
    w->base_classes = calloc((size_t)w->n_classes + 1, sizeof *w->base_classes);
    w->counts = calloc(WINDOW_RING * block_len, sizeof *w->counts);
    if (!w->names || !w->min || !w->max || !w->range || !w->constant || !w->base_hist || !w->base_classes || !w->counts) {
        st = kiln_errorf(KILN_ERR_NOMEM, "drift window: out of memory for %lld features",
                         (long long)nf);
        goto cleanup;
    }
    for (int64_t j = 0; j < nf; j++) {
        const struct kiln_feature_stats *f = &base->features[j];
        memcpy(w->names[j], f->name, sizeof w->names[j]);
        w->names[j][sizeof w->names[j] - 1] = '\0';
        w->min[j] = f->min;
        w->max[j] = f->max;
        w->range[j] = f->max > f->min ? f->max - f->min : 1.0;
        if (!(f->max > f->min)) w->constant[w->n_constant++] = j;
        memcpy(w->base_hist + j * KILN_STATS_BINS, f->hist, sizeof f->hist);
    }
    if (w->n_classes > 0)
        memcpy(w->base_classes, base->class_counts, (size_t)w->n_classes * sizeof *w->base_classes);
    for (int b = 0; b < WINDOW_RING; b++) {
        w->ring[b].hist = w->counts + (size_t)b * block_len;
        w->ring[b].classes = w->ring[b].hist + hist_len;
    }
cleanup:
    if (st != KILN_OK) {
        kiln_drift_window_free(w);
        w = NULL;
    }
    *out = w;
    return st;
}

/* The next block becomes the filling one; what it held (the oldest rows)
 * leaves the window. Called with the lock held. */
static void window_advance(struct kiln_drift_window *w)
{
    w->cur = (w->cur + 1) % WINDOW_RING;
    struct window_block *b = &w->ring[w->cur];
    memset(b->hist, 0, ((size_t)w->n_features * KILN_STATS_BINS + (size_t)w->n_classes) *
                           sizeof *b->hist);
    b->rows = 0;
}

/* The bins of one row, drift_bin's exactly (the same double arithmetic),
 * WINDOW_MISSING for NaN/Inf. Written without branches so that the
 * compiler vectorizes it: the server bins every value of every request
 * (50,176 per 64-row Fashion-MNIST request), and drift_bin's branches per
 * value were 12% of its CPU. Constant features are fixed up after. */
static void window_bin_row(const struct kiln_drift_window *w, const float *row, uint8_t *bins)
{
    const double *mn = w->min, *rg = w->range;
    for (int64_t j = 0; j < w->n_features; j++) {
        double x = (double)row[j];
        double f = (x - mn[j]) / rg[j] * KILN_STATS_BINS;
        f = f >= 0.0 ? f : 0.0; /* NaN too */
        f = f < KILN_STATS_BINS ? f : KILN_STATS_BINS - 1;
        int b = x - x == 0.0 ? (int)f : WINDOW_MISSING; /* x - x is NaN for NaN and Inf */
        bins[j] = (uint8_t)b;
    }
    for (int64_t c = 0; c < w->n_constant; c++) {
        int64_t j = w->constant[c];
        double x = (double)row[j];
        bins[j] = isfinite(x) ? (uint8_t)drift_bin(x, w->min[j], w->max[j]) : WINDOW_MISSING;
    }
}

enum kiln_status kiln_drift_window_add(struct kiln_drift_window *w, const float *rows, int64_t n,
                                       int64_t width, const int32_t *classes)
{
    if (width != w->n_features)
        return kiln_errorf(KILN_ERR_SHAPE, "drift window: rows have %lld features, the baseline %lld",
                           (long long)width, (long long)w->n_features);
    if (n <= 0) return KILN_OK;
    /* Checked before anything is counted, so a refused add changes nothing. */
    bool use_classes = classes && w->n_classes > 0;
    for (int64_t i = 0; use_classes && i < n; i++)
        if (classes[i] < 0 || classes[i] >= w->n_classes)
            return kiln_errorf(KILN_ERR_FORMAT, "drift window: class %d of row %lld is outside [0, %d)",
                               (int)classes[i], (long long)i, w->n_classes);
    /* The server adds once per request: the bins go on the stack, and only
     * a row wider than the stack buffer costs an allocation. */
    uint8_t stack[WINDOW_BINS_STACK];
    uint8_t *bins = stack;
    int64_t chunk = WINDOW_BINS_STACK / width;
    if (chunk > WINDOW_CHUNK) chunk = WINDOW_CHUNK;
    if (chunk == 0) {
        chunk = 1;
        if (!(bins = malloc((size_t)width)))
            return kiln_errorf(KILN_ERR_NOMEM, "drift window: out of memory");
    }
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        int64_t m = n - r0 < chunk ? n - r0 : chunk;
        for (int64_t i = 0; i < m; i++)
            window_bin_row(w, rows + (r0 + i) * width, bins + i * width);
        pthread_mutex_lock(&w->mu);
        for (int64_t i0 = 0; i0 < m;) {
            /* The rows that fit in the filling block, counted feature by
             * feature: a feature's bins share a cache line or two, where
             * row by row every count would touch a line of its own. */
            struct window_block *b = &w->ring[w->cur];
            int64_t seg = m - i0 < w->block_rows - b->rows ? m - i0 : w->block_rows - b->rows;
            for (int64_t j = 0; j < width; j++) {
                int64_t *h = b->hist + j * KILN_STATS_BINS;
                for (int64_t i = i0; i < i0 + seg; i++) {
                    uint8_t bin = bins[i * width + j];
                    if (bin != WINDOW_MISSING) h[bin]++;
                }
            }
            for (int64_t i = i0; use_classes && i < i0 + seg; i++) b->classes[classes[r0 + i]]++;
            b->rows += seg;
            i0 += seg;
            if (b->rows == w->block_rows) window_advance(w);
        }
        pthread_mutex_unlock(&w->mu);
    }
    if (bins != stack) free(bins);
    return KILN_OK;
}

void kiln_drift_window_scores_free(struct kiln_drift_window_scores *s)
{
    if (!s) return;
    free(s->names);
    free(s->psi);
    free(s->ks);
    memset(s, 0, sizeof *s);
}

enum kiln_status kiln_drift_window_scores(struct kiln_drift_window *w,
                                          struct kiln_drift_window_scores *out)
{
    memset(out, 0, sizeof *out);
    int64_t nf = w->n_features;
    out->n_features = nf;
    out->names = malloc((size_t)nf * sizeof *out->names);
    out->psi = calloc((size_t)nf, sizeof *out->psi);
    out->ks = calloc((size_t)nf, sizeof *out->ks);
    int64_t *classes = calloc((size_t)w->n_classes + 1, sizeof *classes);
    if (!out->names || !out->psi || !out->ks || !classes) {
        free(classes);
        kiln_drift_window_scores_free(out);
        return kiln_errorf(KILN_ERR_NOMEM, "drift window: out of memory");
    }
    memcpy(out->names, w->names, (size_t)nf * sizeof *out->names);
    pthread_mutex_lock(&w->mu);
    for (int b = 0; b < WINDOW_RING; b++) out->rows += w->ring[b].rows;
    for (int64_t j = 0; j < nf; j++) {
        int64_t hist[KILN_STATS_BINS] = {0};
        for (int b = 0; b < WINDOW_RING; b++) {
            const int64_t *h = w->ring[b].hist + j * KILN_STATS_BINS;
            for (int k = 0; k < KILN_STATS_BINS; k++) hist[k] += h[k];
        }
        const int64_t *base = w->base_hist + j * KILN_STATS_BINS;
        out->psi[j] = kiln_drift_psi(base, hist, KILN_STATS_BINS);
        out->ks[j] = kiln_drift_ks(base, hist, KILN_STATS_BINS);
    }
    int64_t class_rows = 0;
    for (int b = 0; b < WINDOW_RING; b++)
        for (int c = 0; c < w->n_classes; c++) {
            classes[c] += w->ring[b].classes[c];
            class_rows += w->ring[b].classes[c];
        }
    pthread_mutex_unlock(&w->mu);
    for (int64_t j = 0; j < nf; j++) {
        if (out->psi[j] > out->max_psi) out->max_psi = out->psi[j];
        if (out->ks[j] > out->max_ks) out->max_ks = out->ks[j];
        if (out->psi[j] > KILN_DRIFT_PSI_THRESHOLD || out->ks[j] > KILN_DRIFT_KS_THRESHOLD)
            out->drifted++;
    }
    if (class_rows > 0) {
        out->has_classes = true;
        out->class_psi = kiln_drift_psi(w->base_classes, classes, w->n_classes);
    }
    free(classes);
    return KILN_OK;
}
