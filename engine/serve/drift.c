/* engine/serve/drift.c: current data against a training baseline (kiln/drift.h):
 * per-feature PSI and binned KS, and PSI of the class distribution.
 *
 * The accumulator holds one histogram per feature over the baseline's bins
 * and a running sum for the mean, so any number of rows is compared in
 * memory proportional to the feature count. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/drift.h"
#include "serve/drift-internal.h"

double kiln_drift_psi(const int64_t *base, const int64_t *cur, int n)
{
    double tb = 0.0, tc = 0.0;
    for (int i = 0; i < n; i++) {
        tb += (double)base[i];
        tc += (double)cur[i];
    }
    if (!(tb > 0.0) || !(tc > 0.0)) return 0.0;
    double psi = 0.0;
    for (int i = 0; i < n; i++) {
        double b = base[i] > 0 ? (double)base[i] / tb : KILN_DRIFT_EPS;
        double c = cur[i] > 0 ? (double)cur[i] / tc : KILN_DRIFT_EPS;
        psi += (c - b) * log(c / b);
    }
    return psi;
}

double kiln_drift_ks(const int64_t *base, const int64_t *cur, int n)
{
    double tb = 0.0, tc = 0.0;
    for (int i = 0; i < n; i++) {
        tb += (double)base[i];
        tc += (double)cur[i];
    }
    if (!(tb > 0.0) || !(tc > 0.0)) return 0.0;
    double cb = 0.0, cc = 0.0, ks = 0.0;
    for (int i = 0; i < n; i++) {
        cb += (double)base[i];
        cc += (double)cur[i];
        double d = fabs(cb / tb - cc / tc);
        if (d > ks) ks = d;
    }
    return ks;
}

struct drift_column {
    char name[64];
    double min, max, mean;
    int64_t base_hist[KILN_STATS_BINS];
    int64_t hist[KILN_STATS_BINS];
    double sum;
    int64_t count, missing;
};

struct kiln_drift {
    int64_t n_features;
    struct drift_column *cols;
    int64_t base_rows, cur_rows, labels;
    int n_classes;               /* 0 when the baseline has no class counts */
    int64_t *base_class_counts, *class_counts;
};

void kiln_drift_free(struct kiln_drift *d)
{
    if (!d) return;
    free(d->cols);
    free(d->base_class_counts);
    free(d->class_counts);
    free(d);
}

enum kiln_status kiln_drift_begin(const struct kiln_split_stats *base, struct kiln_drift **out)
{
    *out = NULL;
    if (!base || base->n_features <= 0 || base->rows <= 0)
        return kiln_errorf(KILN_ERR_USAGE, "drift baseline: the split has no features or no rows");
    enum kiln_status st = KILN_OK;
    struct kiln_drift *d = calloc(1, sizeof *d);
    if (!d) return kiln_errorf(KILN_ERR_NOMEM, "drift: out of memory");
    d->n_features = base->n_features;
    d->base_rows = base->rows;
    d->cols = calloc((size_t)base->n_features, sizeof *d->cols);
    if (!d->cols) {
        st = kiln_errorf(KILN_ERR_NOMEM, "drift: out of memory for %lld features",
                         (long long)base->n_features);
        goto cleanup;
    }
    for (int64_t j = 0; j < base->n_features; j++) {
        const struct kiln_feature_stats *f = &base->features[j];
        struct drift_column *c = &d->cols[j];
        memcpy(c->name, f->name, sizeof c->name);
        c->name[sizeof c->name - 1] = '\0';
        c->min = f->min;
        c->max = f->max;
        c->mean = f->mean;
        memcpy(c->base_hist, f->hist, sizeof c->base_hist);
    }
    if (base->n_classes > 0 && base->class_counts) {
        d->n_classes = base->n_classes;
        d->base_class_counts = malloc((size_t)base->n_classes * sizeof *d->base_class_counts);
        d->class_counts = calloc((size_t)base->n_classes, sizeof *d->class_counts);
        if (!d->base_class_counts || !d->class_counts) {
            st = kiln_errorf(KILN_ERR_NOMEM, "drift: out of memory");
            goto cleanup;
        }
        memcpy(d->base_class_counts, base->class_counts,
               (size_t)base->n_classes * sizeof *d->base_class_counts);
    }
cleanup:
    if (st != KILN_OK) {
        kiln_drift_free(d);
        d = NULL;
    }
    *out = d;
    return st;
}

enum kiln_status kiln_drift_add_rows(struct kiln_drift *d, const float *rows, int64_t n,
                                     int64_t width)
{
    if (width != d->n_features)
        return kiln_errorf(KILN_ERR_SHAPE, "drift: current rows have %lld features, the baseline %lld",
                           (long long)width, (long long)d->n_features);
    for (int64_t i = 0; i < n; i++) {
        const float *row = rows + i * width;
        for (int64_t j = 0; j < width; j++) {
            struct drift_column *c = &d->cols[j];
            double x = (double)row[j];
            if (!isfinite(x)) {
                c->missing++;
                continue;
            }
            c->hist[drift_bin(x, c->min, c->max)]++;
            c->sum += x;
            c->count++;
        }
    }
    d->cur_rows += n;
    return KILN_OK;
}

enum kiln_status kiln_drift_add_labels(struct kiln_drift *d, const int32_t *labels, int64_t n)
{
    if (d->n_classes == 0)
        return kiln_errorf(KILN_ERR_USAGE, "drift: the baseline has no class counts to compare labels with");
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= d->n_classes)
            return kiln_errorf(KILN_ERR_FORMAT, "drift: label %d of current row %lld is outside [0, %d)",
                               (int)labels[i], (long long)(d->labels + i), d->n_classes);
    }
    for (int64_t i = 0; i < n; i++) d->class_counts[labels[i]]++;
    d->labels += n;
    return KILN_OK;
}

enum kiln_status kiln_drift_add_split(struct kiln_drift *d, const struct kiln_split *s)
{
    if (!s->X) return kiln_errorf(KILN_ERR_USAGE, "drift: the current split's arrays are not loaded");
    if (s->feat_size != d->n_features)
        return kiln_errorf(KILN_ERR_SHAPE, "drift: current rows have %lld features, the baseline %lld",
                           (long long)s->feat_size, (long long)d->n_features);
    enum kiln_status st = KILN_OK;
    enum { BLOCK = 256 };
    float *buf = NULL;
    if (s->x_dtype == KILN_DTYPE_U8) {
        buf = malloc((size_t)BLOCK * (size_t)s->feat_size * sizeof *buf);
        if (!buf) return kiln_errorf(KILN_ERR_NOMEM, "drift: out of memory");
        const uint8_t *X = s->X;
        for (int64_t r = 0; r < s->n && st == KILN_OK; r += BLOCK) {
            int64_t m = s->n - r < BLOCK ? s->n - r : BLOCK;
            const uint8_t *src = X + r * s->feat_size;
            for (int64_t k = 0; k < m * s->feat_size; k++) buf[k] = kiln_u8_to_f32(src[k]);
            st = kiln_drift_add_rows(d, buf, m, s->feat_size);
        }
    } else {
        st = kiln_drift_add_rows(d, s->X, s->n, s->feat_size);
    }
    if (st == KILN_OK && d->n_classes > 0 && s->y && s->y_dtype == KILN_DTYPE_I32 && s->y_dim == 1)
        st = kiln_drift_add_labels(d, s->y, s->n);
    free(buf);
    return st;
}

static int drift_feature_cmp(const void *pa, const void *pb)
{
    const struct kiln_drift_feature *a = pa, *b = pb;
    if (a->psi != b->psi) return a->psi > b->psi ? -1 : 1;
    if (a->ks != b->ks) return a->ks > b->ks ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

void kiln_drift_report_free(struct kiln_drift_report *r)
{
    if (!r) return;
    free(r->features);
    free(r->base_class_counts);
    free(r->cur_class_counts);
    free(r);
}

enum kiln_status kiln_drift_finish(const struct kiln_drift *d, const struct kiln_drift_options *opt,
                                   struct kiln_drift_report **out)
{
    *out = NULL;
    if (d->cur_rows == 0 && d->labels == 0)
        return kiln_errorf(KILN_ERR_USAGE, "drift: no current rows (or labels) to compare");
    enum kiln_status st = KILN_OK;
    struct kiln_drift_report *r = calloc(1, sizeof *r);
    if (!r) return kiln_errorf(KILN_ERR_NOMEM, "drift: out of memory");
    r->psi_threshold = opt && opt->psi_threshold > 0 ? opt->psi_threshold : KILN_DRIFT_PSI_THRESHOLD;
    r->ks_threshold = opt && opt->ks_threshold > 0 ? opt->ks_threshold : KILN_DRIFT_KS_THRESHOLD;
    r->n_features = d->n_features;
    r->base_rows = d->base_rows;
    r->cur_rows = d->cur_rows;
    r->cur_labels = d->labels;
    r->features = calloc((size_t)d->n_features, sizeof *r->features);
    if (!r->features) {
        st = kiln_errorf(KILN_ERR_NOMEM, "drift: out of memory");
        goto cleanup;
    }
    for (int64_t j = 0; j < d->n_features; j++) {
        const struct drift_column *c = &d->cols[j];
        struct kiln_drift_feature *f = &r->features[j];
        memcpy(f->name, c->name, sizeof f->name);
        f->index = j;
        f->psi = kiln_drift_psi(c->base_hist, c->hist, KILN_STATS_BINS);
        f->ks = kiln_drift_ks(c->base_hist, c->hist, KILN_STATS_BINS);
        f->base_mean = c->mean;
        f->cur_mean = c->count > 0 ? c->sum / (double)c->count : 0.0;
        f->cur_count = c->count;
        f->cur_missing = c->missing;
        f->drifted = f->psi > r->psi_threshold || f->ks > r->ks_threshold;
        if (f->drifted) r->drifted++;
    }
    qsort(r->features, (size_t)r->n_features, sizeof *r->features, drift_feature_cmp);
    if (d->n_classes > 0 && d->labels > 0) {
        size_t bytes = (size_t)d->n_classes * sizeof(int64_t);
        r->base_class_counts = malloc(bytes);
        r->cur_class_counts = malloc(bytes);
        if (!r->base_class_counts || !r->cur_class_counts) {
            st = kiln_errorf(KILN_ERR_NOMEM, "drift: out of memory");
            goto cleanup;
        }
        memcpy(r->base_class_counts, d->base_class_counts, bytes);
        memcpy(r->cur_class_counts, d->class_counts, bytes);
        r->has_classes = true;
        r->n_classes = d->n_classes;
        r->class_psi = kiln_drift_psi(d->base_class_counts, d->class_counts, d->n_classes);
        r->classes_drifted = r->class_psi > r->psi_threshold;
    }
cleanup:
    if (st != KILN_OK) {
        kiln_drift_report_free(r);
        r = NULL;
    }
    *out = r;
    return st;
}

static int64_t drift_rows_shown(const struct kiln_drift_report *r, int64_t max_rows)
{
    if (r->cur_rows == 0) return 0; /* nothing was compared: no table of zeros */
    return max_rows > 0 && max_rows < r->n_features ? max_rows : r->n_features;
}

void kiln_drift_report_print(const struct kiln_drift_report *r, int64_t max_rows, FILE *out)
{
    int64_t shown = drift_rows_shown(r, max_rows);
    if (r->cur_rows == 0) {
        fprintf(out, "feature drift not checked: no current feature values (%lld labels only)\n",
                (long long)r->cur_labels);
        if (r->has_classes)
            fprintf(out, "class distribution: PSI %.4f%s\n", r->class_psi,
                    r->classes_drifted ? " DRIFT" : "");
        fprintf(out, "class distribution only (PSI > %g; baseline %lld rows, current %lld labels)\n",
                r->psi_threshold, (long long)r->base_rows, (long long)r->cur_labels);
        return;
    }
    fprintf(out, "%-24s %10s %8s %13s %13s  %s\n", "feature", "PSI", "KS", "baseline_mean",
            "current_mean", "flag");
    for (int64_t i = 0; i < shown; i++) {
        const struct kiln_drift_feature *f = &r->features[i];
        fprintf(out, "%-24s %10.4f %8.4f %13.6g %13.6g  %s\n", f->name, f->psi, f->ks, f->base_mean,
                f->cur_mean, f->drifted ? "DRIFT" : "-");
    }
    if (shown < r->n_features)
        fprintf(out, "... %lld more features (--top 0 shows all)\n", (long long)(r->n_features - shown));
    if (r->has_classes)
        fprintf(out, "class distribution: PSI %.4f%s\n", r->class_psi,
                r->classes_drifted ? " DRIFT" : "");
    fprintf(out, "%lld of %lld features drifted (PSI > %g or KS > %g; baseline %lld rows, current %lld rows)\n",
            (long long)r->drifted, (long long)r->n_features, r->psi_threshold, r->ks_threshold,
            (long long)r->base_rows, (long long)r->cur_rows);
}

/* json_object_set_new that remembers a failure. */
static void drift_json_set(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (!v || json_object_set_new(o, key, v) != 0) *ok = false;
}

static json_t *drift_json_counts(const int64_t *c, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer((json_int_t)c[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

char *kiln_drift_report_to_json(const struct kiln_drift_report *r, int64_t max_rows)
{
    bool ok = true;
    char *text = NULL;
    json_t *root = json_object();
    json_t *feats = json_array();
    if (!root || !feats) {
        json_decref(feats);
        goto cleanup;
    }
    drift_json_set(root, "psi_threshold", json_real(r->psi_threshold), &ok);
    drift_json_set(root, "ks_threshold", json_real(r->ks_threshold), &ok);
    drift_json_set(root, "baseline_rows", json_integer((json_int_t)r->base_rows), &ok);
    drift_json_set(root, "current_rows", json_integer((json_int_t)r->cur_rows), &ok);
    drift_json_set(root, "current_labels", json_integer((json_int_t)r->cur_labels), &ok);
    drift_json_set(root, "features_total", json_integer((json_int_t)r->n_features), &ok);
    drift_json_set(root, "features_checked", json_boolean(r->cur_rows > 0), &ok);
    drift_json_set(root, "drifted", json_integer((json_int_t)r->drifted), &ok);
    int64_t shown = drift_rows_shown(r, max_rows);
    for (int64_t i = 0; i < shown && ok; i++) {
        const struct kiln_drift_feature *f = &r->features[i];
        json_t *o = json_object();
        if (!o || json_array_append_new(feats, o) != 0) {
            ok = false;
            break;
        }
        drift_json_set(o, "name", json_string(f->name), &ok);
        drift_json_set(o, "index", json_integer((json_int_t)f->index), &ok);
        drift_json_set(o, "psi", json_real(f->psi), &ok);
        drift_json_set(o, "ks", json_real(f->ks), &ok);
        drift_json_set(o, "baseline_mean", json_real(f->base_mean), &ok);
        drift_json_set(o, "current_mean", json_real(f->cur_mean), &ok);
        drift_json_set(o, "drifted", json_boolean(f->drifted), &ok);
    }
    drift_json_set(root, "features", feats, &ok);
    if (ok && r->has_classes) {
        json_t *c = json_object();
        drift_json_set(root, "classes", c, &ok);
        if (ok) {
            drift_json_set(c, "psi", json_real(r->class_psi), &ok);
            drift_json_set(c, "drifted", json_boolean(r->classes_drifted), &ok);
            drift_json_set(c, "baseline", drift_json_counts(r->base_class_counts, r->n_classes), &ok);
            drift_json_set(c, "current", drift_json_counts(r->cur_class_counts, r->n_classes), &ok);
        }
    }
    if (ok) text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
cleanup:
    json_decref(root);
    return text;
}
