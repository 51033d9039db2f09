/* engine/data/transform.c: dataset transforms (kiln/transform.h): parsing CLI
 * specs, fitting on train, applying to datasets and to rows, JSON.
 *
 * The per-row arithmetic lives in one function, tf_step_row, which both
 * kiln_transform_fit_apply (over whole splits) and kiln_transform_apply_rows
 * (at predict and serve time) call, so a model sees bit-identical inputs in
 * training and in production. Steps that only move columns or rows (SELECT,
 * DROP, FILTER_LABELS) keep uint8 data as uint8: scaling commutes with them. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/util.h"
#include "data-internal.h"
#include "kiln/transform.h"

static const char *const tf_kind_names[] = {
    [KILN_TF_STANDARDIZE] = "standardize", [KILN_TF_MINMAX] = "minmax",
    [KILN_TF_ONEHOT] = "onehot",           [KILN_TF_CAST_F32] = "cast",
    [KILN_TF_SELECT] = "select",           [KILN_TF_DROP] = "drop",
    [KILN_TF_FILTER_LABELS] = "filter-labels",
};
#define TF_KINDS ((int)(sizeof tf_kind_names / sizeof tf_kind_names[0]))

/* Steps that transform each value in place keep the per-row shape. */
static bool tf_keeps_columns(enum kiln_transform_kind k)
{
    return k == KILN_TF_STANDARDIZE || k == KILN_TF_MINMAX || k == KILN_TF_CAST_F32 ||
           k == KILN_TF_FILTER_LABELS;
}

/* Steps whose output is float32 whatever the input. */
static bool tf_makes_float(enum kiln_transform_kind k)
{
    return k == KILN_TF_STANDARDIZE || k == KILN_TF_MINMAX || k == KILN_TF_ONEHOT ||
           k == KILN_TF_CAST_F32;
}

/* --- per-row arithmetic (shared by datasets and rows) ----------------------------- */

static inline float tf_standardize(float x, double mean, double std)
{
    return (float)(((double)x - mean) / std);
}

static inline float tf_minmax(float x, double min, double max)
{
    double range = max - min;
    return (float)(((double)x - min) / (range != 0.0 ? range : 1.0));
}

/* One step on one row; in and out must not overlap unless the step keeps
 * every column in place. */
static void tf_step_row(const struct kiln_transform *t, const float *in, float *out)
{
    switch (t->kind) {
    case KILN_TF_STANDARDIZE:
        for (int64_t j = 0; j < t->in_width; j++) out[j] = tf_standardize(in[j], t->a[j], t->b[j]);
        break;
    case KILN_TF_MINMAX:
        for (int64_t j = 0; j < t->in_width; j++) out[j] = tf_minmax(in[j], t->a[j], t->b[j]);
        break;
    case KILN_TF_ONEHOT: {
        int64_t c = t->columns[0];
        memcpy(out, in, (size_t)c * sizeof *out);
        for (int64_t k = 0; k < t->n_params; k++) out[c + k] = in[c] == (float)t->a[k] ? 1.0f : 0.0f;
        memcpy(out + c + t->n_params, in + c + 1, (size_t)(t->in_width - c - 1) * sizeof *out);
        break;
    }
    case KILN_TF_SELECT:
        for (int64_t k = 0; k < t->n_columns; k++) out[k] = in[t->columns[k]];
        break;
    case KILN_TF_DROP: {
        int64_t o = 0, d = 0;
        for (int64_t j = 0; j < t->in_width; j++) {
            if (d < t->n_columns && t->columns[d] == j) {
                d++;
                continue;
            }
            out[o++] = in[j];
        }
        break;
    }
    case KILN_TF_CAST_F32:
    case KILN_TF_FILTER_LABELS:
        if (out != in) memcpy(out, in, (size_t)t->in_width * sizeof *out);
        break;
    }
}

/* --- lists and parsing ---------------------------------------------------------------- */

static void tf_fitted_clear(struct kiln_transform *t)
{
    free(t->columns);
    free(t->labels);
    free(t->a);
    free(t->b);
    t->columns = NULL;
    t->labels = NULL;
    t->a = t->b = NULL;
    t->n_columns = t->n_params = 0;
    t->n_labels = 0;
    t->in_width = t->out_width = 0;
}

static void tf_step_clear(struct kiln_transform *t)
{
    tf_fitted_clear(t);
    strv_free(t->names, t->n_names);
    t->names = NULL;
    t->n_names = 0;
}

void kiln_transform_list_free(struct kiln_transform_list *tl)
{
    if (!tl) return;
    for (int i = 0; i < tl->n; i++) tf_step_clear(&tl->steps[i]);
    free(tl->steps);
    free(tl);
}

enum kiln_status kiln_transform_parse(const char *spec, struct kiln_transform_list **list)
{
    enum kiln_status st = KILN_OK;
    struct kiln_transform t = {0};
    struct kiln_transform_list *made = NULL;
    if (!spec || !*spec) return kiln_errorf(KILN_ERR_USAGE, "transform: empty spec");
    /* Names end up in JSON, which must be UTF-8. */
    json_t *probe = json_string(spec);
    if (!probe) return kiln_errorf(KILN_ERR_USAGE, "transform '%s': not valid UTF-8", spec);
    json_decref(probe);
    const char *eq = strchr(spec, '=');
    size_t klen = eq ? (size_t)(eq - spec) : strlen(spec);
    const char *arg = eq ? eq + 1 : NULL;
    int kind = -1;
    for (int k = 0; k < TF_KINDS; k++)
        if (strlen(tf_kind_names[k]) == klen && strncmp(spec, tf_kind_names[k], klen) == 0)
            kind = k;
    if (kind < 0) {
        return kiln_errorf(KILN_ERR_USAGE, "transform '%s': unknown kind (expected standardize, "
                           "minmax, onehot=COL, cast=float32, select=COL,..., drop=COL,... or "
                           "filter-labels=CLASS,...)", spec);
    }
    t.kind = (enum kiln_transform_kind)kind;
    bool arg_optional = t.kind == KILN_TF_STANDARDIZE || t.kind == KILN_TF_MINMAX;
    if (!arg && !arg_optional)
        return kiln_errorf(KILN_ERR_USAGE, "transform '%s' needs an argument (%s=%s)", spec,
                           tf_kind_names[kind], t.kind == KILN_TF_CAST_F32 ? "float32"
                           : t.kind == KILN_TF_ONEHOT ? "COL" : t.kind == KILN_TF_FILTER_LABELS
                           ? "CLASS,CLASS" : "COL,COL");
    if (t.kind == KILN_TF_CAST_F32) {
        if (strcmp(arg, "float32") != 0)
            return kiln_errorf(KILN_ERR_USAGE, "transform '%s': can only cast to float32", spec);
    } else if (arg) {
        char what[64]; /* the message quotes the list itself */
        snprintf(what, sizeof what, "transform '%s'", tf_kind_names[kind]);
        st = str_split_list(arg, what, &t.names, &t.n_names);
        if (st != KILN_OK) goto cleanup;
        if (t.kind == KILN_TF_ONEHOT && t.n_names != 1) {
            st = kiln_errorf(KILN_ERR_USAGE, "transform '%s': onehot takes one column", spec);
            goto cleanup;
        }
        for (int i = 0; i < t.n_names; i++)
            for (int j = 0; j < i; j++)
                if (strcmp(t.names[i], t.names[j]) == 0) {
                    st = kiln_errorf(KILN_ERR_USAGE, "transform '%s': '%s' is listed twice",
                                     spec, t.names[i]);
                    goto cleanup;
                }
    }
    if (!*list) {
        made = calloc(1, sizeof *made);
        if (!made) {
            st = kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
            goto cleanup;
        }
    }
    struct kiln_transform_list *tl = made ? made : *list;
    struct kiln_transform *steps = realloc(tl->steps, (size_t)(tl->n + 1) * sizeof *steps);
    if (!steps) {
        st = kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
        goto cleanup;
    }
    tl->steps = steps;
    tl->steps[tl->n++] = t;
    memset(&t, 0, sizeof t);
    if (made) *list = made;
    made = NULL;
cleanup:
    tf_step_clear(&t);
    kiln_transform_list_free(made);
    return st;
}

/* "select=a,b" / "standardize" / "cast=float32": the step as the spec gave it. */
static void tf_step_describe(const struct kiln_transform *t, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "%s", tf_kind_names[t->kind]);
    if (t->kind == KILN_TF_CAST_F32 && o < len) o += (size_t)snprintf(buf + o, len - o, "=float32");
    for (int i = 0; i < t->n_names && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? "," : "=", t->names[i]);
}

int64_t kiln_transform_in_width(const struct kiln_transform_list *tl)
{
    return tl && tl->n > 0 ? tl->steps[0].in_width : 0;
}

int64_t kiln_transform_out_width(const struct kiln_transform_list *tl)
{
    return tl && tl->n > 0 ? tl->steps[tl->n - 1].out_width : 0;
}

/* Checks that a fitted list can be applied: widths chain and parameters
 * match each step's kind. The message starts with where (so callers put
 * "transforms[2]"-style or step names in front). */
static enum kiln_status tf_list_check(const struct kiln_transform_list *tl, const char *who)
{
    for (int i = 0; i < tl->n; i++) {
        const struct kiln_transform *t = &tl->steps[i];
        const char *kind = tf_kind_names[t->kind];
        int64_t in = t->in_width, outw = t->out_width;
        bool ok = in > 0 && outw > 0 && (i == 0 || in == tl->steps[i - 1].out_width);
        if (!ok)
            return kiln_errorf(KILN_ERR_USAGE, "%s: step %d (%s) is not fitted or its width %"
                               PRId64 " does not follow the step before", who, i + 1, kind, in);
        switch (t->kind) {
        case KILN_TF_STANDARDIZE:
        case KILN_TF_MINMAX:
            ok = t->n_params == in && outw == in && t->a && t->b;
            for (int64_t j = 0; ok && j < in; j++)
                ok = isfinite(t->a[j]) && isfinite(t->b[j]) &&
                     (t->kind == KILN_TF_MINMAX || t->b[j] > 0.0);
            break;
        case KILN_TF_ONEHOT:
            ok = t->n_columns == 1 && t->columns[0] >= 0 && t->columns[0] < in &&
                 t->n_params >= 1 && t->n_params <= KILN_TF_ONEHOT_MAX &&
                 outw == in - 1 + t->n_params;
            for (int64_t k = 0; ok && k < t->n_params; k++)
                ok = isfinite(t->a[k]) && (k == 0 || t->a[k - 1] < t->a[k]);
            break;
        case KILN_TF_SELECT:
            ok = t->n_columns >= 1 && outw == t->n_columns;
            for (int64_t k = 0; ok && k < t->n_columns; k++)
                ok = t->columns[k] >= 0 && t->columns[k] < in;
            break;
        case KILN_TF_DROP:
            ok = t->n_columns >= 1 && outw == in - t->n_columns;
            for (int64_t k = 0; ok && k < t->n_columns; k++)
                ok = t->columns[k] >= 0 && t->columns[k] < in &&
                     (k == 0 || t->columns[k - 1] < t->columns[k]);
            break;
        case KILN_TF_CAST_F32:
            ok = outw == in;
            break;
        case KILN_TF_FILTER_LABELS:
            ok = outw == in && t->n_labels >= 1;
            for (int k = 0; ok && k < t->n_labels; k++) ok = t->labels[k] >= 0;
            break;
        }
        if (!ok)
            return kiln_errorf(KILN_ERR_USAGE, "%s: step %d (%s): its parameters do not fit its "
                               "widths %" PRId64 " -> %" PRId64, who, i + 1, kind, in, outw);
    }
    return KILN_OK;
}

/* --- rows ---------------------------------------------------------------------------- */

enum kiln_status kiln_transform_apply_rows(const struct kiln_transform_list *tl, const float *in,
                                           int64_t rows, float *out)
{
    enum kiln_status st = tf_list_check(tl, "apply transforms");
    if (st != KILN_OK) return st;
    if (tl->n == 0) return kiln_errorf(KILN_ERR_USAGE, "apply transforms: the list is empty");
    int64_t in_w = kiln_transform_in_width(tl), out_w = kiln_transform_out_width(tl);
    if (in == out && in_w != out_w)
        return kiln_errorf(KILN_ERR_USAGE, "apply transforms: in place needs equal widths (%"
                           PRId64 " -> %" PRId64 ")", in_w, out_w);
    int64_t wmax = 0;
    for (int i = 0; i < tl->n; i++) {
        if (tl->steps[i].in_width > wmax) wmax = tl->steps[i].in_width;
        if (tl->steps[i].out_width > wmax) wmax = tl->steps[i].out_width;
    }
    float *buf = malloc(2 * (size_t)wmax * sizeof *buf);
    if (!buf) return kiln_errorf(KILN_ERR_NOMEM, "apply transforms: out of memory");
    float *bufs[2] = {buf, buf + wmax};
    for (int64_t r = 0; r < rows; r++) {
        const float *src = in + r * in_w;
        float *dst_row = out + r * out_w;
        if (in == out) {
            memcpy(bufs[0], src, (size_t)in_w * sizeof *buf);
            src = bufs[0];
        }
        for (int i = 0; i < tl->n; i++) {
            float *dst = i == tl->n - 1 ? dst_row : src == bufs[0] ? bufs[1] : bufs[0];
            tf_step_row(&tl->steps[i], src, dst);
            src = dst;
        }
    }
    free(buf);
    return KILN_OK;
}

/* --- fitting and applying to a dataset --------------------------------------------- */

/* What the steps see while fitting: the current splits (the parent's until a
 * step replaces them), feature names, and classes. */
struct tf_state {
    const struct kiln_split *cur[KILN_SPLIT_COUNT];
    struct kiln_split *owned[KILN_SPLIT_COUNT]; /* cur[i] when made here */
    int64_t width;
    char **names;           /* [width]; "f<index>" when the parent had none */
    bool named;             /* names belong in the child */
    int n_classes;
    char **classes;
};

static void tf_state_replace(struct tf_state *s, int i, struct kiln_split *next)
{
    kiln_split_free(s->owned[i]);
    s->owned[i] = next;
    s->cur[i] = next;
}

static void tf_state_free(struct tf_state *s)
{
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) kiln_split_free(s->owned[i]);
    strv_free(s->names, (int)s->width);
    strv_free(s->classes, s->n_classes);
}

static enum kiln_status tf_names_replace(struct tf_state *s, char **names, int64_t width)
{
    strv_free(s->names, (int)s->width);
    s->names = names;
    s->width = width;
    return KILN_OK;
}

/* Per-row shape after a step of kind k to width w. */
static void tf_out_shape(const struct kiln_split *in, enum kiln_transform_kind k, int64_t w,
                         int *ndim, int64_t shape[3])
{
    if (tf_keeps_columns(k)) {
        *ndim = in->feat_ndim;
        for (int d = 0; d < 3; d++) shape[d] = in->feat_shape[d];
    } else {
        *ndim = 1;
        shape[0] = w;
        shape[1] = shape[2] = 1;
    }
}

/* A float32 copy of s (uint8 scaled as the model sees it). */
static enum kiln_status tf_split_to_f32(const struct kiln_split *s, struct kiln_split **out)
{
    enum kiln_status st = kiln_split_create(s->n, s->feat_ndim, s->feat_shape, KILN_DTYPE_F32,
                                            s->y_dtype, s->y_dim, out);
    if (st != KILN_OK) return st;
    int64_t total = s->n * s->feat_size;
    float *dst = (*out)->X;
    if (s->x_dtype == KILN_DTYPE_U8) {
        const uint8_t *src = s->X;
        for (int64_t i = 0; i < total; i++) dst[i] = kiln_u8_to_f32(src[i]);
    } else {
        memcpy(dst, s->X, (size_t)total * sizeof *dst);
    }
    memcpy((*out)->y, s->y, (size_t)(s->n * s->y_dim) * kiln_dtype_size(s->y_dtype));
    return KILN_OK;
}

/* Applies a float step (s is float32) into a new float32 split. */
static enum kiln_status tf_split_float_step(const struct kiln_transform *t,
                                            const struct kiln_split *s, struct kiln_split **out)
{
    int ndim;
    int64_t shape[3];
    tf_out_shape(s, t->kind, t->out_width, &ndim, shape);
    enum kiln_status st =
        kiln_split_create(s->n, ndim, shape, KILN_DTYPE_F32, s->y_dtype, s->y_dim, out);
    if (st != KILN_OK) return st;
    const float *X = s->X;
    float *Y = (*out)->X;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < s->n; i++) tf_step_row(t, X + i * t->in_width, Y + i * t->out_width);
    memcpy((*out)->y, s->y, (size_t)(s->n * s->y_dim) * kiln_dtype_size(s->y_dtype));
    return KILN_OK;
}

/* SELECT/DROP on any dtype: the columns keep[0..w) of s, as X [n, w]. */
static enum kiln_status tf_split_columns(const struct kiln_split *s, const int64_t *keep,
                                         int64_t w, struct kiln_split **out)
{
    int64_t shape[3] = {w, 1, 1};
    enum kiln_status st =
        kiln_split_create(s->n, 1, shape, s->x_dtype, s->y_dtype, s->y_dim, out);
    if (st != KILN_OK) return st;
    size_t es = kiln_dtype_size(s->x_dtype);
    const char *X = s->X;
    char *Y = (*out)->X;
    for (int64_t i = 0; i < s->n; i++)
        for (int64_t k = 0; k < w; k++)
            memcpy(Y + (size_t)(i * w + k) * es, X + (size_t)(i * s->feat_size + keep[k]) * es, es);
    memcpy((*out)->y, s->y, (size_t)(s->n * s->y_dim) * kiln_dtype_size(s->y_dtype));
    return KILN_OK;
}

/* FILTER_LABELS: rows whose class is in labels, y renumbered to the
 * position in labels; newclass[c] is that position or -1. */
static enum kiln_status tf_split_filter(const struct kiln_split *s, const int32_t *newclass,
                                        int n_classes, struct kiln_split **out)
{
    const int32_t *y = s->y;
    int64_t kept = 0;
    for (int64_t i = 0; i < s->n; i++) kept += y[i] >= 0 && y[i] < n_classes && newclass[y[i]] >= 0;
    enum kiln_status st = kiln_split_create(kept, s->feat_ndim, s->feat_shape, s->x_dtype,
                                            s->y_dtype, s->y_dim, out);
    if (st != KILN_OK) return st;
    size_t row = (size_t)s->feat_size * kiln_dtype_size(s->x_dtype);
    int32_t *ny = (*out)->y;
    int64_t o = 0;
    for (int64_t i = 0; i < s->n; i++) {
        if (!(y[i] >= 0 && y[i] < n_classes && newclass[y[i]] >= 0)) continue;
        memcpy((char *)(*out)->X + (size_t)o * row, (const char *)s->X + (size_t)i * row, row);
        ny[o++] = newclass[y[i]];
    }
    return KILN_OK;
}

/* Resolves one column spec against the current names: an exact name, then
 * "f<index>", then a plain index. */
static bool tf_column_find(const struct tf_state *s, const char *spec, int64_t *out)
{
    for (int64_t j = 0; j < s->width; j++)
        if (strcmp(s->names[j], spec) == 0) {
            *out = j;
            return true;
        }
    const char *digits = spec[0] == 'f' ? spec + 1 : spec;
    if (*digits < '0' || *digits > '9') return false;
    char *end;
    errno = 0;
    long long v = strtoll(digits, &end, 10);
    if (*end || errno || v < 0 || v >= s->width) return false;
    *out = (int64_t)v;
    return true;
}

static enum kiln_status tf_columns_resolve(const struct tf_state *s, const struct kiln_transform *t,
                                           const char *step, int64_t *cols)
{
    for (int i = 0; i < t->n_names; i++) {
        if (tf_column_find(s, t->names[i], &cols[i])) {
            for (int k = 0; k < i; k++)
                if (cols[k] == cols[i])
                    return kiln_errorf(KILN_ERR_USAGE, "%s: '%s' and '%s' are the same column",
                                       step, t->names[k], t->names[i]);
            continue;
        }
        char some[256];
        size_t o = 0;
        some[0] = '\0';
        for (int64_t j = 0; j < s->width && j < 8 && o < sizeof some; j++)
            o += (size_t)snprintf(some + o, sizeof some - o, "%s%s", j ? ", " : "", s->names[j]);
        return kiln_errorf(KILN_ERR_USAGE, "%s: no column '%s' among the %" PRId64 " input "
                           "columns (%s%s)", step, t->names[i], s->width, some,
                           s->width > 8 ? ", ..." : "");
    }
    return KILN_OK;
}

static int tf_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int tf_cmp_f32(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* STANDARDIZE / MINMAX parameters from the float train split: every column's
 * statistic, then identity (0, 1) for columns the step does not cover. */
static enum kiln_status tf_fit_scale(struct kiln_transform *t, const struct kiln_split *tr,
                                     const int64_t *cols)
{
    int64_t w = tr->feat_size, n = tr->n;
    t->a = calloc((size_t)w, sizeof *t->a);
    t->b = calloc((size_t)w, sizeof *t->b);
    uint8_t *cover = calloc((size_t)w, 1);
    if (!t->a || !t->b || !cover) {
        free(cover);
        return kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
    }
    t->n_params = w;
    for (int i = 0; i < t->n_names; i++) cover[cols[i]] = 1;
    if (t->n_names == 0) memset(cover, 1, (size_t)w);
    const float *X = tr->X;
    bool standardize = t->kind == KILN_TF_STANDARDIZE;
    /* Each thread takes a contiguous range of columns and walks every row
     * over it (reads stay sequential, the sums vectorise across columns);
     * each column is summed over rows in order, so the numbers do not
     * depend on the thread count. a: sum or min, b: squares or max. */
    double *restrict a = t->a, *restrict b = t->b;
    if (!standardize) {
        for (int64_t j = 0; j < w; j++) a[j] = b[j] = X[j];
    }
    int parts = 1;
#ifdef _OPENMP
    parts = omp_get_max_threads();
#endif
    int64_t range = ((w + parts - 1) / parts + 15) / 16 * 16;
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int p = 0; p < parts; p++) {
        int64_t j0 = p * range < w ? p * range : w, j1 = j0 + range < w ? j0 + range : w;
        if (standardize) {
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = j0; j < j1; j++) a[j] += X[i * w + j];
            for (int64_t j = j0; j < j1; j++) a[j] /= (double)n;
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = j0; j < j1; j++) {
                    double d = (double)X[i * w + j] - a[j];
                    b[j] += d * d;
                }
            for (int64_t j = j0; j < j1; j++) {
                b[j] = sqrt(b[j] / (double)n);
                if (!(b[j] > 0.0)) b[j] = 1.0;
            }
        } else {
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = j0; j < j1; j++) {
                    float x = X[i * w + j];
                    if (x < a[j]) a[j] = x;
                    if (x > b[j]) b[j] = x;
                }
        }
    }
    for (int64_t j = 0; j < w; j++)
        if (!cover[j]) {
            a[j] = 0.0;
            b[j] = 1.0;
        }
    free(cover);
    return KILN_OK;
}

/* ONEHOT codes: the distinct values of column c in the float train split. */
static enum kiln_status tf_fit_onehot(struct kiln_transform *t, const struct kiln_split *tr,
                                      int64_t c, const char *step, const char *col)
{
    int64_t n = tr->n, w = tr->feat_size;
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
    const float *X = tr->X;
    for (int64_t i = 0; i < n; i++) v[i] = X[i * w + c];
    qsort(v, (size_t)n, sizeof *v, tf_cmp_f32);
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || v[i] != v[i - 1]) v[k++] = v[i];
    if (k > KILN_TF_ONEHOT_MAX) {
        free(v);
        return kiln_errorf(KILN_ERR_USAGE, "%s: column '%s' takes %" PRId64 " distinct values in "
                           "train, more than %d: is it a column of codes?", step, col, k,
                           KILN_TF_ONEHOT_MAX);
    }
    t->a = malloc((size_t)k * sizeof *t->a);
    if (!t->a) {
        free(v);
        return kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
    }
    for (int64_t i = 0; i < k; i++) t->a[i] = v[i];
    t->n_params = k;
    free(v);
    return KILN_OK;
}

/* Output names of a ONEHOT step: the coded column becomes "COL=code". */
static enum kiln_status tf_onehot_names(struct tf_state *s, const struct kiln_transform *t,
                                        bool was_u8)
{
    int64_t c = t->columns[0], w = t->out_width;
    char **names = calloc((size_t)w, sizeof *names);
    if (!names) return kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
    enum kiln_status st = KILN_OK;
    for (int64_t j = 0; j < w && st == KILN_OK; j++) {
        if (j < c) {
            st = str_dup(s->names[j], &names[j]);
        } else if (j >= c + t->n_params) {
            st = str_dup(s->names[j - t->n_params + 1], &names[j]);
        } else {
            double code = t->a[j - c];
            char buf[96];
            if (was_u8)
                snprintf(buf, sizeof buf, "%s=%ld", s->names[c], lround(code * 255.0));
            else
                snprintf(buf, sizeof buf, "%s=%.9g", s->names[c], code);
            st = str_dup(buf, &names[j]);
        }
    }
    if (st != KILN_OK) {
        strv_free(names, (int)w);
        return st;
    }
    return tf_names_replace(s, names, w);
}

static enum kiln_status tf_names_pick(struct tf_state *s, const int64_t *keep, int64_t w)
{
    char **names = calloc((size_t)w, sizeof *names);
    if (!names) return kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
    enum kiln_status st = KILN_OK;
    for (int64_t k = 0; k < w && st == KILN_OK; k++) st = str_dup(s->names[keep[k]], &names[k]);
    if (st != KILN_OK) {
        strv_free(names, (int)w);
        return st;
    }
    return tf_names_replace(s, names, w);
}

/* Fits step t on the state's train split and applies it to every split. */
static enum kiln_status tf_step_fit_apply(struct kiln_transform *t, int index,
                                          struct tf_state *s)
{
    enum kiln_status st = KILN_OK;
    char desc[512], step[600];
    int64_t *cols = NULL, *keep = NULL;
    int32_t *newclass = NULL;
    char **classes = NULL;
    int n_kept_classes = 0;
    tf_step_describe(t, desc, sizeof desc);
    snprintf(step, sizeof step, "transform %d '%s'", index + 1, desc);
    tf_fitted_clear(t);
    const struct kiln_split *tr = s->cur[KILN_SPLIT_TRAIN];
    t->in_width = s->width;
    cols = calloc((size_t)t->n_names + 1, sizeof *cols);
    if (!cols) {
        st = kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
        goto cleanup;
    }
    if (t->kind != KILN_TF_FILTER_LABELS) {
        st = tf_columns_resolve(s, t, step, cols);
        if (st != KILN_OK) goto cleanup;
    }
    bool was_u8 = tr->x_dtype == KILN_DTYPE_U8;
    if (tf_makes_float(t->kind)) {
        for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
            if (!s->cur[i] || s->cur[i]->x_dtype == KILN_DTYPE_F32) continue;
            struct kiln_split *f = NULL;
            st = tf_split_to_f32(s->cur[i], &f);
            if (st != KILN_OK) goto cleanup;
            tf_state_replace(s, i, f);
        }
        tr = s->cur[KILN_SPLIT_TRAIN];
        if (tr->n == 0 && t->kind != KILN_TF_CAST_F32) {
            st = kiln_errorf(KILN_ERR_USAGE, "%s: the train split is empty: nothing to fit on",
                             step);
            goto cleanup;
        }
    }
    switch (t->kind) {
    case KILN_TF_STANDARDIZE:
    case KILN_TF_MINMAX:
        if (t->n_names > 0) {
            t->columns = cols;
            t->n_columns = t->n_names;
            cols = NULL;
        }
        st = tf_fit_scale(t, tr, t->columns);
        t->out_width = t->in_width;
        break;
    case KILN_TF_ONEHOT:
        t->columns = cols;
        t->n_columns = 1;
        cols = NULL;
        st = tf_fit_onehot(t, tr, t->columns[0], step, s->names[t->columns[0]]);
        t->out_width = t->in_width - 1 + t->n_params;
        break;
    case KILN_TF_CAST_F32:
        t->out_width = t->in_width;
        break;
    case KILN_TF_SELECT:
        t->columns = cols;
        t->n_columns = t->n_names;
        cols = NULL;
        t->out_width = t->n_columns;
        break;
    case KILN_TF_DROP:
        qsort(cols, (size_t)t->n_names, sizeof *cols, tf_cmp_i64);
        t->columns = cols;
        t->n_columns = t->n_names;
        cols = NULL;
        t->out_width = t->in_width - t->n_columns;
        if (t->out_width == 0)
            st = kiln_errorf(KILN_ERR_USAGE, "%s: drops every column", step);
        break;
    case KILN_TF_FILTER_LABELS:
        if (s->n_classes == 0) {
            st = kiln_errorf(KILN_ERR_USAGE, "%s: the dataset has no classes (regression)", step);
            break;
        }
        t->labels = calloc((size_t)t->n_names, sizeof *t->labels);
        newclass = malloc((size_t)s->n_classes * sizeof *newclass);
        classes = calloc((size_t)t->n_names, sizeof *classes);
        if (!t->labels || !newclass || !classes) {
            st = kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
            break;
        }
        t->n_labels = t->n_names;
        for (int c = 0; c < s->n_classes; c++) newclass[c] = -1;
        for (int k = 0; k < t->n_names && st == KILN_OK; k++) {
            int c = -1;
            for (int j = 0; j < s->n_classes && c < 0; j++)
                if (strcmp(s->classes[j], t->names[k]) == 0) c = j;
            if (c < 0) {
                char *end;
                errno = 0;
                long v = strtol(t->names[k], &end, 10);
                if (t->names[k][0] >= '0' && t->names[k][0] <= '9' && !*end && !errno &&
                    v < s->n_classes)
                    c = (int)v;
            }
            if (c < 0) {
                char some[256];
                size_t o = 0;
                some[0] = '\0';
                for (int j = 0; j < s->n_classes && j < 8 && o < sizeof some; j++)
                    o += (size_t)snprintf(some + o, sizeof some - o, "%s%s", j ? ", " : "",
                                          s->classes[j]);
                st = kiln_errorf(KILN_ERR_USAGE, "%s: no class '%s' among the %d classes (%s%s)",
                                 step, t->names[k], s->n_classes, some,
                                 s->n_classes > 8 ? ", ..." : "");
                break;
            }
            if (newclass[c] >= 0) {
                st = kiln_errorf(KILN_ERR_USAGE, "%s: class '%s' is listed twice", step,
                                 s->classes[c]);
                break;
            }
            newclass[c] = k;
            t->labels[k] = c;
            st = str_dup(s->classes[c], &classes[k]);
            n_kept_classes = k + 1;
        }
        t->out_width = t->in_width;
        break;
    }
    if (st != KILN_OK) goto cleanup;

    /* Apply to every split. */
    if (t->kind == KILN_TF_DROP || t->kind == KILN_TF_SELECT) {
        int64_t w = t->out_width;
        keep = malloc((size_t)w * sizeof *keep);
        if (!keep) {
            st = kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
            goto cleanup;
        }
        if (t->kind == KILN_TF_SELECT) {
            memcpy(keep, t->columns, (size_t)w * sizeof *keep);
        } else {
            int64_t o = 0, d = 0;
            for (int64_t j = 0; j < t->in_width; j++) {
                if (d < t->n_columns && t->columns[d] == j)
                    d++;
                else
                    keep[o++] = j;
            }
        }
        for (int i = 0; i < KILN_SPLIT_COUNT && st == KILN_OK; i++) {
            if (!s->cur[i]) continue;
            struct kiln_split *next = NULL;
            st = tf_split_columns(s->cur[i], keep, w, &next);
            if (st == KILN_OK) tf_state_replace(s, i, next);
        }
        if (st == KILN_OK) st = tf_names_pick(s, keep, w);
        s->named = true;
    } else if (t->kind == KILN_TF_FILTER_LABELS) {
        for (int i = 0; i < KILN_SPLIT_COUNT && st == KILN_OK; i++) {
            if (!s->cur[i]) continue;
            struct kiln_split *next = NULL;
            st = tf_split_filter(s->cur[i], newclass, s->n_classes, &next);
            if (st == KILN_OK) tf_state_replace(s, i, next);
        }
        if (st == KILN_OK) {
            strv_free(s->classes, s->n_classes);
            s->classes = classes;
            s->n_classes = n_kept_classes;
            classes = NULL;
        }
    } else if (t->kind != KILN_TF_CAST_F32) {
        for (int i = 0; i < KILN_SPLIT_COUNT && st == KILN_OK; i++) {
            if (!s->cur[i]) continue;
            struct kiln_split *next = NULL;
            st = tf_split_float_step(t, s->cur[i], &next);
            if (st == KILN_OK) tf_state_replace(s, i, next);
        }
        if (st == KILN_OK && t->kind == KILN_TF_ONEHOT) {
            st = tf_onehot_names(s, t, was_u8);
            s->named = true;
        }
    }
cleanup:
    if (st != KILN_OK) tf_fitted_clear(t);
    free(cols);
    free(keep);
    free(newclass);
    strv_free(classes, n_kept_classes);
    return st;
}

static enum kiln_status tf_source(const struct kiln_transform_list *tl,
                                  const struct kiln_dataset *parent, const char *sha,
                                  char **out)
{
    size_t len = 128 + strlen(parent->name ? parent->name : "");
    for (int i = 0; i < tl->n; i++) {
        len += 32;
        for (int k = 0; k < tl->steps[i].n_names; k++) len += strlen(tl->steps[i].names[k]) + 1;
    }
    char *src = malloc(len);
    if (!src) return kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
    size_t o = (size_t)snprintf(src, len, "transform of %s@%.12s:",
                                parent->name ? parent->name : "", sha);
    for (int i = 0; i < tl->n && o < len; i++) {
        char desc[4096];
        tf_step_describe(&tl->steps[i], desc, sizeof desc);
        o += (size_t)snprintf(src + o, len - o, "%s %s", i ? "," : "", desc);
    }
    *out = src;
    return KILN_OK;
}

enum kiln_status kiln_transform_fit_apply(struct kiln_transform_list *tl,
                                          const struct kiln_dataset *parent,
                                          struct kiln_dataset **child)
{
    enum kiln_status st = KILN_OK;
    struct tf_state s = {0};
    struct kiln_dataset *ds = NULL;
    char sha[65];
    *child = NULL;
    const struct kiln_split *tr = parent->splits[KILN_SPLIT_TRAIN];
    if (!tl || tl->n == 0) {
        st = kiln_errorf(KILN_ERR_USAGE, "transform: no steps given");
        goto cleanup;
    }
    if (!tr) {
        st = kiln_errorf(KILN_ERR_USAGE, "transform: the dataset has no train split to fit on");
        goto cleanup;
    }
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        const struct kiln_split *sp = parent->splits[i];
        if (!sp) continue;
        if (!sp->X || !sp->y) {
            st = kiln_errorf(KILN_ERR_USAGE, "transform: split %s has no arrays loaded",
                             kiln_split_name(i));
            goto cleanup;
        }
        if (sp->feat_size != tr->feat_size || sp->x_dtype != tr->x_dtype ||
            sp->y_dtype != tr->y_dtype || sp->y_dim != tr->y_dim) {
            st = kiln_errorf(KILN_ERR_FORMAT, "transform: %s's shapes or dtypes differ from "
                             "train's", kiln_split_name(i));
            goto cleanup;
        }
        s.cur[i] = sp;
    }
    if (parent->n_classes > 0 && tr->y_dtype != KILN_DTYPE_I32) {
        st = kiln_errorf(KILN_ERR_FORMAT, "transform: the dataset lists classes but y is not "
                         "int32 class indices");
        goto cleanup;
    }
    if (parent->sha256[0]) {
        memcpy(sha, parent->sha256, sizeof sha);
    } else {
        st = kiln_dataset_hash(parent, sha);
        if (st != KILN_OK) goto cleanup;
    }
    /* Names and classes as the first step sees them. */
    s.width = tr->feat_size;
    s.named = parent->feature_names && parent->n_features == tr->feat_size;
    s.names = calloc((size_t)s.width, sizeof *s.names);
    if (!s.names) {
        st = kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
        goto cleanup;
    }
    for (int64_t j = 0; j < s.width && st == KILN_OK; j++) {
        char buf[32];
        snprintf(buf, sizeof buf, "f%" PRId64, j);
        st = str_dup(s.named ? parent->feature_names[j] : buf, &s.names[j]);
    }
    if (st != KILN_OK) goto cleanup;
    if (parent->n_classes > 0) {
        s.classes = calloc((size_t)parent->n_classes, sizeof *s.classes);
        if (!s.classes) {
            st = kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
            goto cleanup;
        }
        s.n_classes = parent->n_classes;
        for (int c = 0; c < parent->n_classes && st == KILN_OK; c++)
            st = str_dup(parent->classes[c], &s.classes[c]);
        if (st != KILN_OK) goto cleanup;
    }
    for (int i = 0; i < tl->n; i++) {
        st = tf_step_fit_apply(&tl->steps[i], i, &s);
        if (st != KILN_OK) goto cleanup;
    }

    ds = calloc(1, sizeof *ds);
    if (!ds) {
        st = kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
        goto cleanup;
    }
    char now[32];
    time_iso8601(now);
    st = str_dup(parent->name ? parent->name : "", &ds->name);
    if (st == KILN_OK) st = str_dup(now, &ds->created);
    if (st == KILN_OK) st = str_dup(sha, &ds->parent);
    if (st == KILN_OK) st = tf_source(tl, parent, sha, &ds->source);
    if (st != KILN_OK) goto cleanup;
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        if (!s.cur[i]) continue;
        if (s.owned[i]) {
            ds->splits[i] = s.owned[i];
            s.owned[i] = NULL;
        } else {
            /* Untouched by every step (CAST on float data): still a copy. */
            const struct kiln_split *p = s.cur[i];
            st = kiln_split_create(p->n, p->feat_ndim, p->feat_shape, p->x_dtype, p->y_dtype,
                                   p->y_dim, &ds->splits[i]);
            if (st != KILN_OK) goto cleanup;
            memcpy(ds->splits[i]->X, p->X, (size_t)(p->n * p->feat_size) * kiln_dtype_size(p->x_dtype));
            memcpy(ds->splits[i]->y, p->y, (size_t)(p->n * p->y_dim) * kiln_dtype_size(p->y_dtype));
        }
        s.cur[i] = ds->splits[i];
    }
    ds->n_classes = s.n_classes;
    ds->classes = s.classes;
    s.classes = NULL;
    s.n_classes = 0;
    if (s.named) {
        ds->n_features = (int)s.width;
        ds->feature_names = s.names;
        s.names = NULL;
        s.width = 0;
    }
    /* A tiny std can overflow to Inf: refuse a child kiln would not load. */
    for (int i = 0; i < KILN_SPLIT_COUNT && st == KILN_OK; i++) st = data_check_split(ds, i);
    if (st != KILN_OK) {
        kiln_error_context(st, "transform result");
        goto cleanup;
    }
    st = kiln_dataset_hash(ds, ds->sha256);
    if (st != KILN_OK) goto cleanup;
    *child = ds;
    ds = NULL;
cleanup:
    /* Half a fit is no fit: a list fitted up to a failing step must not be
     * applied as if whole. */
    if (st != KILN_OK && tl)
        for (int i = 0; i < tl->n; i++) tf_fitted_clear(&tl->steps[i]);
    tf_state_free(&s);
    kiln_dataset_free(ds);
    return st;
}

/* --- JSON ------------------------------------------------------------------------------ */

static bool tf_put(json_t *obj, const char *key, json_t *v)
{
    return v && json_object_set_new(obj, key, v) == 0;
}

static json_t *tf_reals(const double *v, int64_t n)
{
    json_t *a = json_array();
    for (int64_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_real(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *tf_ints(const int64_t *v64, const int32_t *v32, int64_t n)
{
    json_t *a = json_array();
    for (int64_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer(v64 ? v64[i] : v32[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *tf_step_json(const struct kiln_transform *t)
{
    json_t *o = json_object(), *names = json_array();
    bool ok = o && names;
    for (int i = 0; ok && i < t->n_names; i++)
        ok = json_array_append_new(names, json_string(t->names[i])) == 0;
    ok = ok && tf_put(o, "kind", json_string(tf_kind_names[t->kind]));
    if (ok) {
        ok = tf_put(o, "names", names);
        names = NULL;
    }
    ok = ok && tf_put(o, "in_width", json_integer(t->in_width)) &&
         tf_put(o, "out_width", json_integer(t->out_width));
    if (ok && t->in_width > 0) {
        switch (t->kind) {
        case KILN_TF_STANDARDIZE:
        case KILN_TF_MINMAX: {
            bool st = t->kind == KILN_TF_STANDARDIZE;
            ok = tf_put(o, "columns", tf_ints(t->columns, NULL, t->n_columns)) &&
                 tf_put(o, st ? "mean" : "min", tf_reals(t->a, t->n_params)) &&
                 tf_put(o, st ? "std" : "max", tf_reals(t->b, t->n_params));
            break;
        }
        case KILN_TF_ONEHOT:
            ok = tf_put(o, "column", json_integer(t->columns[0])) &&
                 tf_put(o, "codes", tf_reals(t->a, t->n_params));
            break;
        case KILN_TF_SELECT:
        case KILN_TF_DROP:
            ok = tf_put(o, "columns", tf_ints(t->columns, NULL, t->n_columns));
            break;
        case KILN_TF_FILTER_LABELS:
            ok = tf_put(o, "labels", tf_ints(NULL, t->labels, t->n_labels));
            break;
        case KILN_TF_CAST_F32:
            break;
        }
    }
    json_decref(names);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *kiln_transform_list_to_json(const struct kiln_transform_list *tl)
{
    json_t *root = json_object(), *steps = json_array();
    bool ok = root && steps;
    for (int i = 0; ok && i < tl->n; i++) {
        json_t *s = tf_step_json(&tl->steps[i]);
        ok = s && json_array_append_new(steps, s) == 0;
    }
    if (ok) {
        ok = tf_put(root, "transforms", steps);
        steps = NULL;
    }
    char *text = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(steps);
    json_decref(root);
    return text;
}

/* An array of numbers (doubles) or integers (ints) under key; *n its size. */
static enum kiln_status tf_json_numbers(json_t *o, const char *where, const char *key,
                                        bool integers, double **reals, int64_t **ints,
                                        int64_t *n)
{
    json_t *a = json_object_get(o, key);
    if (!a || !json_is_array(a))
        return kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s.%s: expected an array of %s",
                           where, key, integers ? "integers" : "numbers");
    size_t len = json_array_size(a);
    *n = (int64_t)len;
    if (integers)
        *ints = malloc((len + 1) * sizeof **ints);
    else
        *reals = malloc((len + 1) * sizeof **reals);
    if (integers ? !*ints : !*reals) return kiln_errorf(KILN_ERR_NOMEM, "transform JSON: out of memory");
    for (size_t i = 0; i < len; i++) {
        json_t *e = json_array_get(a, i);
        if (integers ? !json_is_integer(e) : !json_is_number(e))
            return kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s.%s[%zu]: expected %s", where,
                               key, i, integers ? "an integer" : "a number");
        if (integers)
            (*ints)[i] = (int64_t)json_integer_value(e);
        else
            (*reals)[i] = json_number_value(e);
    }
    return KILN_OK;
}

static enum kiln_status tf_step_parse(json_t *o, const char *where, struct kiln_transform *t)
{
    enum kiln_status st = KILN_OK;
    if (!json_is_object(o))
        return kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s: expected an object", where);
    json_t *kind = json_object_get(o, "kind");
    int k = -1;
    for (int i = 0; kind && json_is_string(kind) && i < TF_KINDS; i++)
        if (strcmp(json_string_value(kind), tf_kind_names[i]) == 0) k = i;
    if (k < 0)
        return kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s.kind: expected one of "
                           "standardize, minmax, onehot, cast, select, drop, filter-labels", where);
    t->kind = (enum kiln_transform_kind)k;
    json_t *iw = json_object_get(o, "in_width"), *ow = json_object_get(o, "out_width");
    if (!json_is_integer(iw) || !json_is_integer(ow) || json_integer_value(iw) < 0 ||
        json_integer_value(ow) < 0)
        return kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s: in_width and out_width must be "
                           "non-negative integers", where);
    t->in_width = (int64_t)json_integer_value(iw);
    t->out_width = (int64_t)json_integer_value(ow);
    bool fitted = t->in_width > 0;
    /* Keys each kind may carry (the fitted ones only when fitted). */
    const char *fit_keys[3] = {NULL, NULL, NULL};
    switch (t->kind) {
    case KILN_TF_STANDARDIZE: fit_keys[0] = "columns", fit_keys[1] = "mean", fit_keys[2] = "std"; break;
    case KILN_TF_MINMAX: fit_keys[0] = "columns", fit_keys[1] = "min", fit_keys[2] = "max"; break;
    case KILN_TF_ONEHOT: fit_keys[0] = "column", fit_keys[1] = "codes"; break;
    case KILN_TF_SELECT:
    case KILN_TF_DROP: fit_keys[0] = "columns"; break;
    case KILN_TF_FILTER_LABELS: fit_keys[0] = "labels"; break;
    case KILN_TF_CAST_F32: break;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool known = !strcmp(key, "kind") || !strcmp(key, "names") || !strcmp(key, "in_width") ||
                     !strcmp(key, "out_width");
        for (int i = 0; i < 3 && !known && fitted; i++) known = fit_keys[i] && !strcmp(key, fit_keys[i]);
        if (!known)
            return kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s: unexpected key '%s' for a%s "
                               "%s step", where, key, fitted ? "" : "n unfitted",
                               tf_kind_names[k]);
    }
    json_t *names = json_object_get(o, "names");
    if (!json_is_array(names) || json_array_size(names) > INT32_MAX)
        return kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s.names: expected an array of "
                           "strings", where);
    t->names = calloc(json_array_size(names) + 1, sizeof *t->names);
    if (!t->names) return kiln_errorf(KILN_ERR_NOMEM, "transform JSON: out of memory");
    for (size_t i = 0; i < json_array_size(names); i++) {
        json_t *e = json_array_get(names, i);
        if (!json_is_string(e))
            return kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s.names[%zu]: expected a "
                               "string", where, i);
        st = str_dup(json_string_value(e), &t->names[i]);
        if (st != KILN_OK) return st;
        t->n_names = (int)i + 1;
    }
    if (!fitted) return KILN_OK;
    int64_t n = 0, n2 = 0;
    double *dummy_r = NULL;
    int64_t *dummy_i = NULL;
    switch (t->kind) {
    case KILN_TF_STANDARDIZE:
    case KILN_TF_MINMAX:
        st = tf_json_numbers(o, where, fit_keys[0], true, &dummy_r, &t->columns, &t->n_columns);
        if (st == KILN_OK) st = tf_json_numbers(o, where, fit_keys[1], false, &t->a, &dummy_i, &n);
        if (st == KILN_OK) st = tf_json_numbers(o, where, fit_keys[2], false, &t->b, &dummy_i, &n2);
        t->n_params = n;
        if (st == KILN_OK && n != n2)
            st = kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s: %s has %" PRId64 " entries, "
                             "%s %" PRId64, where, fit_keys[1], n, fit_keys[2], n2);
        break;
    case KILN_TF_ONEHOT: {
        json_t *c = json_object_get(o, "column");
        if (!json_is_integer(c))
            return kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s.column: expected an integer",
                               where);
        t->columns = malloc(sizeof *t->columns);
        if (!t->columns) return kiln_errorf(KILN_ERR_NOMEM, "transform JSON: out of memory");
        t->columns[0] = (int64_t)json_integer_value(c);
        t->n_columns = 1;
        st = tf_json_numbers(o, where, "codes", false, &t->a, &dummy_i, &t->n_params);
        break;
    }
    case KILN_TF_SELECT:
    case KILN_TF_DROP:
        st = tf_json_numbers(o, where, "columns", true, &dummy_r, &t->columns, &t->n_columns);
        break;
    case KILN_TF_FILTER_LABELS: {
        int64_t *labels = NULL;
        st = tf_json_numbers(o, where, "labels", true, &dummy_r, &labels, &n);
        if (st == KILN_OK && n > INT32_MAX) st = kiln_errorf(KILN_ERR_FORMAT, "transform JSON: "
                                                             "%s.labels: too many", where);
        if (st == KILN_OK) {
            t->labels = malloc(((size_t)n + 1) * sizeof *t->labels);
            if (!t->labels) st = kiln_errorf(KILN_ERR_NOMEM, "transform JSON: out of memory");
        }
        for (int64_t i = 0; st == KILN_OK && i < n; i++) {
            if (labels[i] < 0 || labels[i] > INT32_MAX)
                st = kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s.labels[%" PRId64 "]: not "
                                 "a class index", where, i);
            else
                t->labels[i] = (int32_t)labels[i];
        }
        if (st == KILN_OK) t->n_labels = (int)n;
        free(labels);
        break;
    }
    case KILN_TF_CAST_F32:
        break;
    }
    return st;
}

enum kiln_status kiln_transform_list_from_json(const char *json,
                                               struct kiln_transform_list **out)
{
    enum kiln_status st = KILN_OK;
    struct kiln_transform_list *tl = NULL;
    json_error_t err;
    *out = NULL;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &err), *steps;
    if (!root) {
        st = kiln_errorf(KILN_ERR_FORMAT, "transform JSON: line %d, column %d: %s", err.line,
                         err.column, err.text);
        goto cleanup;
    }
    steps = json_object_get(root, "transforms");
    if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_array(steps) ||
        json_array_size(steps) > INT32_MAX) {
        st = kiln_errorf(KILN_ERR_FORMAT, "transform JSON: expected {\"transforms\": [...]} at "
                         "the top");
        goto cleanup;
    }
    tl = calloc(1, sizeof *tl);
    if (tl) tl->steps = calloc(json_array_size(steps) + 1, sizeof *tl->steps);
    if (!tl || !tl->steps) {
        st = kiln_errorf(KILN_ERR_NOMEM, "transform JSON: out of memory");
        goto cleanup;
    }
    bool fitted = false;
    for (size_t i = 0; i < json_array_size(steps); i++) {
        char at[48];
        snprintf(at, sizeof at, "transforms[%zu]", i);
        tl->n = (int)i + 1; /* counted first, so that a failure frees the step */
        st = tf_step_parse(json_array_get(steps, i), at, &tl->steps[i]);
        if (st != KILN_OK) goto cleanup;
        if (i > 0 && (tl->steps[i].in_width > 0) != fitted) {
            st = kiln_errorf(KILN_ERR_FORMAT, "transform JSON: %s: some steps are fitted and "
                             "some are not", at);
            goto cleanup;
        }
        fitted = tl->steps[i].in_width > 0;
    }
    if (fitted) {
        st = tf_list_check(tl, "transform JSON");
        if (st != KILN_OK) {
            st = KILN_ERR_FORMAT;
            goto cleanup;
        }
    }
    *out = tl;
    tl = NULL;
cleanup:
    kiln_transform_list_free(tl);
    json_decref(root);
    return st;
}
