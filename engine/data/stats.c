/* engine/data/stats.c: per-feature, per-split statistics (kiln/stats.h), their
 * JSON form and a text table.
 *
 * uint8 columns take 256 values, so a count per value gives exact quantiles,
 * mean and std without sorting: columns are counted in blocks of 64 (one
 * cache line per row) so the array is read once. float32 columns are copied
 * out in blocks and sorted with a radix sort on their bit patterns (O(n),
 * exact). Every per-column result depends only on that column, so the
 * OpenMP split over column blocks gives the same numbers for any thread
 * count. */
#define _POSIX_C_SOURCE 200809L
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

#include "kiln/stats.h"

const double kiln_stats_quantile_at[KILN_STATS_QUANTILES] = {0.01, 0.25, 0.50, 0.75, 0.99};

/* float32 columns copied out per block, at most; fewer when the copies of
 * all threads would pass STATS_F32_BUDGET bytes. */
#define STATS_F32_BLOCK 64
#define STATS_F32_BUDGET ((int64_t)256 << 20)
/* Rows per tile when copying float columns out (tile: 64 KiB at most). */
#define STATS_F32_TILE 256

static int stats_threads(void)
{
#ifdef _OPENMP
    int t = omp_get_max_threads();
    return t > 0 ? t : 1;
#else
    return 1;
#endif
}

static int stats_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* numpy's _lerp: a + (b - a) t, computed from b's side when t >= 0.5 so that
 * t = 1 gives b exactly. */
static double stats_lerp(double a, double b, double t)
{
    double d = b - a;
    return t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
}

/* Quantile q of count sorted values, at virtual index (count - 1) q between
 * order statistics (numpy's "linear" method); at(k) gives the k-th smallest. */
#define STATS_QUANTILE(q, count, at, out)                                      \
    do {                                                                       \
        double h_ = (double)((count) - 1) * (q);                               \
        double lo_ = floor(h_);                                                \
        int64_t k_ = (int64_t)lo_;                                             \
        int64_t k1_ = k_ + 1 < (count) ? k_ + 1 : (count) - 1;                 \
        (out) = stats_lerp(at(k_), at(k1_), h_ - lo_);                         \
    } while (0)

/* Copies a display name into the fixed field, cutting at a character
 * boundary and replacing bytes that are not UTF-8 by '?', so that the JSON
 * encoder (which wants valid UTF-8) always accepts it. */
static void stats_name_copy(char dst[64], const char *src)
{
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)src;
    while (*s) {
        size_t len = *s < 0x80 ? 1 : (*s >> 5) == 6 ? 2 : (*s >> 4) == 14 ? 3
                                                     : (*s >> 3) == 30 ? 4 : 0;
        bool valid = len > 0;
        for (size_t i = 1; valid && i < len; i++) valid = (s[i] >> 6) == 2;
        if (!valid) len = 1;
        if (o + len > 63) break;
        if (valid)
            memcpy(dst + o, s, len);
        else
            dst[o] = '?';
        o += len;
        s += len;
    }
    dst[o] = '\0';
}

static void stats_name_set(struct kiln_feature_stats *f, const char *prefix, int64_t j,
                           char *const *names, int64_t n_names)
{
    if (names && j < n_names && names[j]) {
        stats_name_copy(f->name, names[j]);
    } else {
        snprintf(f->name, sizeof f->name, "%s%" PRId64, prefix, j);
    }
}

/* --- uint8 columns: counts per value ----------------------------------------- */

/* The k-th smallest value (scaled) of a column given its counts. */
static double stats_u8_kth(const int64_t cnt[256], int64_t k)
{
    int64_t seen = 0;
    for (int v = 0; v < 256; v++) {
        seen += cnt[v];
        if (k < seen) return (double)kiln_u8_to_f32((uint8_t)v);
    }
    return (double)kiln_u8_to_f32(255);
}

static void stats_from_counts(const int64_t cnt[256], int64_t n, struct kiln_feature_stats *f)
{
    f->count = n;
    f->missing = 0;
    if (n == 0) return;
    int lo = 0, hi = 255;
    while (cnt[lo] == 0) lo++;
    while (cnt[hi] == 0) hi--;
    f->min = (double)kiln_u8_to_f32((uint8_t)lo);
    f->max = (double)kiln_u8_to_f32((uint8_t)hi);
    double sum = 0.0;
    for (int v = lo; v <= hi; v++) sum += (double)cnt[v] * (double)kiln_u8_to_f32((uint8_t)v);
    f->mean = sum / (double)n;
    double sq = 0.0;
    for (int v = lo; v <= hi; v++) {
        double d = (double)kiln_u8_to_f32((uint8_t)v) - f->mean;
        sq += (double)cnt[v] * d * d;
    }
    f->std = sqrt(sq / (double)n);
#define STATS_U8_AT(k) stats_u8_kth(cnt, (k))
    for (int q = 0; q < KILN_STATS_QUANTILES; q++)
        STATS_QUANTILE(kiln_stats_quantile_at[q], n, STATS_U8_AT, f->quantiles[q]);
#undef STATS_U8_AT
    for (int v = lo; v <= hi; v++)
        f->hist[kiln_stats_bin((double)kiln_u8_to_f32((uint8_t)v), f->min, f->max)] += cnt[v];
}

/* Statistics of the width columns of X [n, width] (uint8) into out[width]:
 * rows are read once, in order, counting each column group's values in a
 * uint32 table per thread (rows split across threads in ranges below 2^32). */
#define STATS_U8_GROUP 4096
static enum kiln_status stats_u8_matrix(const uint8_t *X, int64_t n, int64_t width,
                                        struct kiln_feature_stats *out)
{
    int nt = stats_threads();
    int64_t g = width < STATS_U8_GROUP ? width : STATS_U8_GROUP;
    uint32_t *part = malloc((size_t)nt * (size_t)g * 256 * sizeof *part);
    int64_t *tot = malloc((size_t)g * 256 * sizeof *tot);
    if (!part || !tot) { free(part); free(tot); return kiln_errorf(KILN_ERR_NOMEM, "stats: out of memory"); }
    /* A thread's uint32 counts hold at most 2^32 - 1 rows: go in row slabs. */
    const int64_t slab = INT64_C(1) << 31;
    for (int64_t j0 = 0; j0 < width; j0 += g) {
        int64_t w = width - j0 < g ? width - j0 : g;
        memset(tot, 0, (size_t)w * 256 * sizeof *tot);
        for (int64_t s0 = 0; s0 < n; s0 += slab) {
            int64_t sn = n - s0 < slab ? n - s0 : slab;
#pragma omp parallel num_threads(nt)
            {
                int t = stats_thread_id(), T = nt;
#ifdef _OPENMP
                T = omp_get_num_threads();
#endif
                uint32_t *c = part + (size_t)t * (size_t)g * 256;
                memset(c, 0, (size_t)w * 256 * sizeof *c);
                int64_t r0 = s0 + sn * t / T, r1 = s0 + sn * (t + 1) / T;
                for (int64_t i = r0; i < r1; i++) {
                    const uint8_t *row = X + i * width + j0;
                    for (int64_t b = 0; b < w; b++) c[b * 256 + row[b]]++;
                }
#pragma omp critical
                for (int64_t k = 0; k < w * 256; k++) tot[k] += c[k];
            }
        }
        for (int64_t b = 0; b < w; b++) stats_from_counts(tot + b * 256, n, &out[j0 + b]);
    }
    free(part);
    free(tot);
    return KILN_OK;
}

/* --- float32 columns: radix sort ---------------------------------------------- */

/* Order-preserving map of a float's bits to an unsigned key (negative values
 * flip every bit, positive ones the sign bit), and back. */
static inline uint32_t stats_f32_key(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float stats_key_f32(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* LSD radix sort of a[0..n) in three passes of 11 bits (2048 counters fit
 * in L1), tmp[n] as scratch; passes where every key has the same digit are
 * skipped. */
#define STATS_RADIX_BITS 11
#define STATS_RADIX_SIZE (1 << STATS_RADIX_BITS)
static void stats_radix_sort(uint32_t *a, uint32_t *tmp, int64_t n)
{
    int64_t hist[3][STATS_RADIX_SIZE];
    const uint32_t mask = STATS_RADIX_SIZE - 1;
    memset(hist, 0, sizeof hist);
    for (int64_t i = 0; i < n; i++) {
        uint32_t k = a[i];
        hist[0][k & mask]++;
        hist[1][(k >> STATS_RADIX_BITS) & mask]++;
        hist[2][k >> (2 * STATS_RADIX_BITS)]++;
    }
    uint32_t *src = a, *dst = tmp;
    for (int pass = 0; pass < 3; pass++) {
        int64_t *h = hist[pass];
        int shift = pass * STATS_RADIX_BITS;
        if (n == 0 || h[(src[0] >> shift) & mask] == n) continue;
        int64_t pos = 0;
        for (int b = 0; b < STATS_RADIX_SIZE; b++) {
            int64_t c = h[b];
            h[b] = pos;
            pos += c;
        }
        for (int64_t i = 0; i < n; i++) dst[h[(src[i] >> shift) & mask]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
}

/* Statistics of count finite values sorted ascending in v. */
static void stats_from_sorted(const float *v, int64_t count, int64_t missing,
                              struct kiln_feature_stats *f)
{
    f->count = count;
    f->missing = missing;
    if (count == 0) return;
    f->min = v[0];
    f->max = v[count - 1];
    double sum = 0.0;
    for (int64_t i = 0; i < count; i++) sum += v[i];
    f->mean = sum / (double)count;
    double sq = 0.0;
    for (int64_t i = 0; i < count; i++) {
        double d = (double)v[i] - f->mean;
        sq += d * d;
    }
    f->std = sqrt(sq / (double)count);
#define STATS_F32_AT(k) ((double)v[(k)])
    for (int q = 0; q < KILN_STATS_QUANTILES; q++)
        STATS_QUANTILE(kiln_stats_quantile_at[q], count, STATS_F32_AT, f->quantiles[q]);
#undef STATS_F32_AT
    /* kiln_stats_bin never decreases as x grows, so on sorted values each
     * bin is a run: find where each run ends by bisection. */
    int64_t start = 0;
    for (int b = 0; b < KILN_STATS_BINS && start < count; b++) {
        int64_t lo = start, hi = count; /* first index past bin b lies in [lo, hi] */
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (kiln_stats_bin(v[mid], f->min, f->max) <= b)
                lo = mid + 1;
            else
                hi = mid;
        }
        f->hist[b] = lo - start;
        start = lo;
    }
}

/* Statistics of the width columns of X [n, width] (float32) into out[width];
 * NaN and Inf count as missing. */
static enum kiln_status stats_f32_matrix(const float *X, int64_t n, int64_t width,
                                         struct kiln_feature_stats *out)
{
    int nt = stats_threads();
    int64_t per_row = (n + 1) * (int64_t)sizeof(uint32_t);
    int64_t block = STATS_F32_BUDGET / nt / per_row - 2;
    if (block > STATS_F32_BLOCK) block = STATS_F32_BLOCK;
    if (block > width) block = width;
    if (block < 1) block = 1;
    /* Per thread: block columns of keys, the radix scratch, the sorted floats. */
    size_t per_thread = (size_t)(block + 2) * (size_t)(n + 1);
    uint32_t *keys = malloc((size_t)nt * per_thread * sizeof *keys);
    float *vals = malloc((size_t)nt * (size_t)(n + 1) * sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return kiln_errorf(KILN_ERR_NOMEM, "stats: out of memory for %" PRId64 " rows", n);
    }
    int64_t blocks = (width + block - 1) / block;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int t = stats_thread_id();
        uint32_t *kb = keys + (size_t)t * per_thread;
        uint32_t *tmp = kb + (size_t)block * (size_t)(n + 1);
        float *v = vals + (size_t)t * (size_t)(n + 1);
        int64_t j0 = blk * block;
        int64_t w = width - j0 < block ? width - j0 : block;
        int64_t fill[STATS_F32_BLOCK] = {0};
        /* Copied out a tile of rows at a time, column by column: the tile
         * stays in cache while each column's keys are written in sequence
         * (one output stream at a time, not one per column). */
        for (int64_t i0 = 0; i0 < n; i0 += STATS_F32_TILE) {
            int64_t i1 = i0 + STATS_F32_TILE < n ? i0 + STATS_F32_TILE : n;
            for (int64_t b = 0; b < w; b++) {
                uint32_t *col = kb + b * (n + 1);
                int64_t f = fill[b];
                for (int64_t i = i0; i < i1; i++) {
                    float x = X[i * width + j0 + b];
                    if (isfinite(x)) col[f++] = stats_f32_key(x);
                }
                fill[b] = f;
            }
        }
        for (int64_t b = 0; b < w; b++) {
            uint32_t *col = kb + b * (n + 1);
            stats_radix_sort(col, tmp, fill[b]);
            for (int64_t i = 0; i < fill[b]; i++) v[i] = stats_key_f32(col[i]);
            stats_from_sorted(v, fill[b], n - fill[b], &out[j0 + b]);
        }
    }
    free(keys);
    free(vals);
    return KILN_OK;
}

/* --- compute ------------------------------------------------------------------------ */

void kiln_dataset_stats_free(struct kiln_dataset_stats *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_splits && i < KILN_SPLIT_COUNT; i++) {
        free(s->splits[i].features);
        free(s->splits[i].class_counts);
        free(s->splits[i].targets);
    }
    free(s);
}

static enum kiln_status stats_split_compute(const struct kiln_dataset *ds, enum kiln_split_id id,
                                            struct kiln_split_stats *ss)
{
    const struct kiln_split *sp = ds->splits[id];
    const char *name = kiln_split_name(id);
    enum kiln_status st = KILN_OK;
    ss->split = id;
    ss->rows = sp->n;
    ss->n_features = sp->feat_size;
    if (!sp->X || !sp->y)
        return kiln_errorf(KILN_ERR_USAGE, "stats: split %s has no arrays loaded", name);
    ss->features = calloc((size_t)sp->feat_size + 1, sizeof *ss->features);
    if (!ss->features) return kiln_errorf(KILN_ERR_NOMEM, "stats: out of memory");
    bool named = ds->feature_names && ds->n_features == sp->feat_size;
    for (int64_t j = 0; j < sp->feat_size; j++)
        stats_name_set(&ss->features[j], "f", j, named ? ds->feature_names : NULL,
                       ds->n_features);
    st = sp->x_dtype == KILN_DTYPE_U8
             ? stats_u8_matrix(sp->X, sp->n, sp->feat_size, ss->features)
             : stats_f32_matrix(sp->X, sp->n, sp->feat_size, ss->features);
    if (st != KILN_OK) return st;
    if (ds->n_classes > 0 && sp->y_dtype == KILN_DTYPE_I32) {
        ss->n_classes = ds->n_classes;
        ss->class_counts = calloc((size_t)ds->n_classes, sizeof *ss->class_counts);
        if (!ss->class_counts) return kiln_errorf(KILN_ERR_NOMEM, "stats: out of memory");
        const int32_t *y = sp->y;
        for (int64_t i = 0; i < sp->n; i++) {
            if (y[i] < 0 || y[i] >= ds->n_classes)
                return kiln_errorf(KILN_ERR_FORMAT, "stats: %s/y[%" PRId64 "] = %d is not a "
                                   "class index in [0, %d)", name, i, (int)y[i], ds->n_classes);
            ss->class_counts[y[i]]++;
        }
    } else if (ds->n_classes == 0 && sp->y_dtype == KILN_DTYPE_F32) {
        ss->target_dim = sp->y_dim;
        ss->targets = calloc((size_t)sp->y_dim, sizeof *ss->targets);
        if (!ss->targets) return kiln_errorf(KILN_ERR_NOMEM, "stats: out of memory");
        for (int64_t j = 0; j < sp->y_dim; j++)
            stats_name_set(&ss->targets[j], "y", j, NULL, 0);
        st = stats_f32_matrix(sp->y, sp->n, sp->y_dim, ss->targets);
    } else {
        st = kiln_errorf(KILN_ERR_FORMAT, "stats: %s/y is %s but the dataset has %d classes",
                         name, sp->y_dtype == KILN_DTYPE_I32 ? "int32 classes" : "float32 targets",
                         ds->n_classes);
    }
    return st;
}

enum kiln_status kiln_dataset_stats_compute(const struct kiln_dataset *ds,
                                            struct kiln_dataset_stats **out)
{
    enum kiln_status st = KILN_OK;
    *out = NULL;
    struct kiln_dataset_stats *s = calloc(1, sizeof *s);
    if (!s) return kiln_errorf(KILN_ERR_NOMEM, "stats: out of memory");
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        if (!ds->splits[i]) continue;
        /* Counted before computing, so that a failure frees what was made. */
        st = stats_split_compute(ds, (enum kiln_split_id)i, &s->splits[s->n_splits++]);
        if (st != KILN_OK) goto cleanup;
    }
    *out = s;
    s = NULL;
cleanup:
    kiln_dataset_stats_free(s);
    return st;
}

/* --- JSON out ---------------------------------------------------------------------- */

/* Sets key to v (NULL when it could not be made); false on any failure.
 * json_object_set_new releases v when it cannot take it. */
static bool json_put(json_t *obj, const char *key, json_t *v)
{
    return v && json_object_set_new(obj, key, v) == 0;
}

static bool json_push(json_t *arr, json_t *v) { return v && json_array_append_new(arr, v) == 0; }

static json_t *stats_feature_json(const struct kiln_feature_stats *f)
{
    json_t *o = json_object(), *q = json_array(), *h = json_array();
    bool ok = o && q && h;
    for (int i = 0; ok && i < KILN_STATS_QUANTILES; i++) ok = json_push(q, json_real(f->quantiles[i]));
    for (int i = 0; ok && i < KILN_STATS_BINS; i++) ok = json_push(h, json_integer(f->hist[i]));
    ok = ok && json_put(o, "name", json_string(f->name)) &&
         json_put(o, "count", json_integer(f->count)) &&
         json_put(o, "missing", json_integer(f->missing)) &&
         json_put(o, "mean", json_real(f->mean)) && json_put(o, "std", json_real(f->std)) &&
         json_put(o, "min", json_real(f->min)) && json_put(o, "max", json_real(f->max));
    if (ok) {
        ok = json_put(o, "quantiles", q);
        q = NULL;
    }
    if (ok) {
        ok = json_put(o, "hist", h);
        h = NULL;
    }
    json_decref(q);
    json_decref(h);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *stats_feature_list_json(const struct kiln_feature_stats *f, int64_t n)
{
    json_t *a = json_array();
    bool ok = a != NULL;
    for (int64_t j = 0; ok && j < n; j++) ok = json_push(a, stats_feature_json(&f[j]));
    if (!ok) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *stats_split_json(const struct kiln_split_stats *ss)
{
    json_t *o = json_object();
    bool ok = o && json_put(o, "split", json_string(kiln_split_name(ss->split))) &&
              json_put(o, "rows", json_integer(ss->rows)) &&
              json_put(o, "features", stats_feature_list_json(ss->features, ss->n_features));
    if (ok && ss->class_counts) {
        json_t *c = json_array();
        ok = c != NULL;
        for (int k = 0; ok && k < ss->n_classes; k++)
            ok = json_push(c, json_integer(ss->class_counts[k]));
        if (ok)
            ok = json_put(o, "class_counts", c);
        else
            json_decref(c);
    }
    if (ok && ss->targets)
        ok = json_put(o, "targets", stats_feature_list_json(ss->targets, ss->target_dim));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *kiln_dataset_stats_to_json(const struct kiln_dataset_stats *s)
{
    json_t *root = json_object(), *splits = json_array();
    bool ok = root && splits;
    for (int i = 0; ok && i < s->n_splits; i++) ok = json_push(splits, stats_split_json(&s->splits[i]));
    if (ok) {
        ok = json_put(root, "splits", splits);
        splits = NULL;
    }
    char *text = ok ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(splits);
    json_decref(root);
    return text;
}

/* --- JSON in ------------------------------------------------------------------------ */

/* Refuses keys of obj outside the NULL-terminated allowed list: a misspelt
 * key is an error, never silently dropped data. */
static enum kiln_status json_keys_check(json_t *obj, const char *where,
                                        const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++) known = strcmp(key, *a) == 0;
        if (!known)
            return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s: unknown key '%s'", where, key);
    }
    return KILN_OK;
}

static enum kiln_status json_get(json_t *obj, const char *where, const char *key, json_t **out)
{
    *out = json_object_get(obj, key);
    if (!*out)
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s: missing key '%s'", where, key);
    return KILN_OK;
}

static enum kiln_status json_get_count(json_t *obj, const char *where, const char *key,
                                       int64_t *out)
{
    json_t *v;
    enum kiln_status st = json_get(obj, where, key, &v);
    if (st != KILN_OK) return st;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.%s: expected a non-negative integer",
                           where, key);
    *out = (int64_t)json_integer_value(v);
    return KILN_OK;
}

static enum kiln_status json_get_real(json_t *obj, const char *where, const char *key,
                                      double *out)
{
    json_t *v;
    enum kiln_status st = json_get(obj, where, key, &v);
    if (st != KILN_OK) return st;
    if (!json_is_number(v))
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.%s: expected a number", where, key);
    *out = json_number_value(v);
    return KILN_OK;
}

/* An array under key; want >= 0 demands that many entries. */
static enum kiln_status json_get_array(json_t *obj, const char *where, const char *key,
                                       int64_t want, json_t **out)
{
    enum kiln_status st = json_get(obj, where, key, out);
    if (st != KILN_OK) return st;
    if (!json_is_array(*out))
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.%s: expected an array", where, key);
    if (want >= 0 && (int64_t)json_array_size(*out) != want)
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.%s: expected %" PRId64 " entries, "
                           "got %zu", where, key, want, json_array_size(*out));
    return KILN_OK;
}

static enum kiln_status stats_feature_parse(json_t *o, const char *where, int64_t rows,
                                            struct kiln_feature_stats *f)
{
    static const char *const keys[] = {"name", "count", "missing", "mean", "std", "min",
                                       "max", "quantiles", "hist", NULL};
    json_t *v;
    enum kiln_status st = KILN_OK;
    if (!json_is_object(o))
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s: expected an object", where);
    st = json_get(o, where, "name", &v);
    if (st != KILN_OK) return st;
    if (!json_is_string(v) || json_string_length(v) >= sizeof f->name)
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.name: expected a string of at most "
                           "%zu bytes", where, sizeof f->name - 1);
    memcpy(f->name, json_string_value(v), json_string_length(v) + 1);
    st = json_get_count(o, where, "count", &f->count);
    if (st == KILN_OK) st = json_get_count(o, where, "missing", &f->missing);
    if (st == KILN_OK) st = json_get_real(o, where, "mean", &f->mean);
    if (st == KILN_OK) st = json_get_real(o, where, "std", &f->std);
    if (st == KILN_OK) st = json_get_real(o, where, "min", &f->min);
    if (st == KILN_OK) st = json_get_real(o, where, "max", &f->max);
    if (st == KILN_OK) st = json_get_array(o, where, "quantiles", KILN_STATS_QUANTILES, &v);
    if (st != KILN_OK) return st;
    for (int i = 0; i < KILN_STATS_QUANTILES; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_number(e))
            return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.quantiles[%d]: expected a "
                               "number", where, i);
        f->quantiles[i] = json_number_value(e);
    }
    st = json_get_array(o, where, "hist", KILN_STATS_BINS, &v);
    if (st != KILN_OK) return st;
    int64_t total = 0;
    for (int i = 0; i < KILN_STATS_BINS; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.hist[%d]: expected a "
                               "non-negative integer", where, i);
        f->hist[i] = (int64_t)json_integer_value(e);
        total += f->hist[i];
    }
    if (f->count > rows || f->missing != rows - f->count)
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s: count %" PRId64 " and missing %"
                           PRId64 " do not add up to the split's %" PRId64 " rows", where,
                           f->count, f->missing, rows);
    if (total != f->count)
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.hist: holds %" PRId64 " values, "
                           "count says %" PRId64, where, total, f->count);
    /* Checked last, so that a mistyped value is named before a stray key. */
    return json_keys_check(o, where, keys);
}

static enum kiln_status stats_feature_list_parse(json_t *o, const char *where, const char *key,
                                                 int64_t rows, struct kiln_feature_stats **out,
                                                 int64_t *n)
{
    json_t *arr;
    enum kiln_status st = json_get_array(o, where, key, -1, &arr);
    if (st != KILN_OK) return st;
    *n = (int64_t)json_array_size(arr);
    *out = calloc((size_t)*n + 1, sizeof **out);
    if (!*out) return kiln_errorf(KILN_ERR_NOMEM, "stats JSON: out of memory");
    for (int64_t j = 0; j < *n && st == KILN_OK; j++) {
        char at[160];
        snprintf(at, sizeof at, "%s.%s[%" PRId64 "]", where, key, j);
        st = stats_feature_parse(json_array_get(arr, (size_t)j), at, rows, &(*out)[j]);
    }
    return st;
}

static enum kiln_status stats_split_parse(json_t *o, const char *where, int prev,
                                          struct kiln_split_stats *ss)
{
    static const char *const keys[] = {"split", "rows", "features", "class_counts", "targets",
                                       NULL};
    json_t *v;
    enum kiln_status st = KILN_OK;
    if (!json_is_object(o))
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s: expected an object", where);
    st = json_get(o, where, "split", &v);
    if (st != KILN_OK) return st;
    if (!json_is_string(v) || kiln_split_parse(json_string_value(v), &ss->split) != KILN_OK)
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.split: expected \"train\", \"val\" "
                           "or \"test\"", where);
    if ((int)ss->split <= prev)
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.split: '%s' is repeated or out of "
                           "order (train, val, test)", where, json_string_value(v));
    st = json_get_count(o, where, "rows", &ss->rows);
    if (st == KILN_OK)
        st = stats_feature_list_parse(o, where, "features", ss->rows, &ss->features,
                                      &ss->n_features);
    if (st != KILN_OK) return st;
    json_t *cc = json_object_get(o, "class_counts"), *tg = json_object_get(o, "targets");
    if ((cc != NULL) == (tg != NULL))
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s: expected exactly one of "
                           "'class_counts' (classification) and 'targets' (regression)", where);
    if (tg) {
        st = stats_feature_list_parse(o, where, "targets", ss->rows, &ss->targets,
                                      &ss->target_dim);
        return st == KILN_OK ? json_keys_check(o, where, keys) : st;
    }
    if (!json_is_array(cc) || json_array_size(cc) < 1 || json_array_size(cc) > INT32_MAX)
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.class_counts: expected a non-empty "
                           "array", where);
    ss->n_classes = (int)json_array_size(cc);
    ss->class_counts = calloc((size_t)ss->n_classes, sizeof *ss->class_counts);
    if (!ss->class_counts) return kiln_errorf(KILN_ERR_NOMEM, "stats JSON: out of memory");
    int64_t total = 0;
    for (int k = 0; k < ss->n_classes; k++) {
        json_t *e = json_array_get(cc, (size_t)k);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.class_counts[%d]: expected a "
                               "non-negative integer", where, k);
        ss->class_counts[k] = (int64_t)json_integer_value(e);
        total += ss->class_counts[k];
    }
    if (total != ss->rows)
        return kiln_errorf(KILN_ERR_FORMAT, "stats JSON: %s.class_counts: add up to %" PRId64
                           ", not the split's %" PRId64 " rows", where, total, ss->rows);
    /* Checked last, so that a mistyped value is named before a stray key. */
    return json_keys_check(o, where, keys);
}

enum kiln_status kiln_dataset_stats_from_json(const char *json, struct kiln_dataset_stats **out)
{
    enum kiln_status st = KILN_OK;
    struct kiln_dataset_stats *s = NULL;
    json_error_t err;
    json_t *splits;
    *out = NULL;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        st = kiln_errorf(KILN_ERR_FORMAT, "stats JSON: line %d, column %d: %s", err.line,
                         err.column, err.text);
        goto cleanup;
    }
    if (!json_is_object(root)) {
        st = kiln_errorf(KILN_ERR_FORMAT, "stats JSON: expected an object at the top");
        goto cleanup;
    }
    static const char *const keys[] = {"splits", NULL};
    st = json_keys_check(root, "(top)", keys);
    if (st == KILN_OK) st = json_get_array(root, "(top)", "splits", -1, &splits);
    if (st != KILN_OK) goto cleanup;
    if (json_array_size(splits) > KILN_SPLIT_COUNT) {
        st = kiln_errorf(KILN_ERR_FORMAT, "stats JSON: splits: %zu entries, at most %d",
                         json_array_size(splits), KILN_SPLIT_COUNT);
        goto cleanup;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        st = kiln_errorf(KILN_ERR_NOMEM, "stats JSON: out of memory");
        goto cleanup;
    }
    int prev = -1;
    for (size_t i = 0; i < json_array_size(splits); i++) {
        char at[32];
        snprintf(at, sizeof at, "splits[%zu]", i);
        struct kiln_split_stats *ss = &s->splits[s->n_splits++];
        st = stats_split_parse(json_array_get(splits, i), at, prev, ss);
        if (st != KILN_OK) goto cleanup;
        prev = (int)ss->split;
    }
    *out = s;
    s = NULL;
cleanup:
    kiln_dataset_stats_free(s);
    json_decref(root);
    return st;
}

/* --- text table ---------------------------------------------------------------------- */

static const char *const stats_quantile_labels[KILN_STATS_QUANTILES] = {"p1", "p25", "p50",
                                                                         "p75", "p99"};

static void stats_table_print(const struct kiln_feature_stats *f, int64_t n, int64_t shown,
                              const char *what, FILE *out)
{
    int w = (int)strlen(what);
    for (int64_t j = 0; j < shown; j++) {
        int len = (int)strlen(f[j].name);
        if (len > w) w = len;
    }
    if (w > 32) w = 32;
    fprintf(out, "  %-*s %10s %8s %12s %12s %12s", w, what, "count", "missing", "mean", "std",
            "min");
    for (int q = 0; q < KILN_STATS_QUANTILES; q++) fprintf(out, " %12s", stats_quantile_labels[q]);
    fprintf(out, " %12s\n", "max");
    for (int64_t j = 0; j < shown; j++) {
        fprintf(out, "  %-*.*s %10" PRId64 " %8" PRId64 " %12.6g %12.6g %12.6g", w, w, f[j].name,
                f[j].count, f[j].missing, f[j].mean, f[j].std, f[j].min);
        for (int q = 0; q < KILN_STATS_QUANTILES; q++) fprintf(out, " %12.6g", f[j].quantiles[q]);
        fprintf(out, " %12.6g\n", f[j].max);
    }
    if (shown < n) fprintf(out, "  ... %" PRId64 " more\n", n - shown);
}

void kiln_dataset_stats_print(const struct kiln_dataset_stats *s, int max_features, FILE *out)
{
    for (int i = 0; i < s->n_splits; i++) {
        const struct kiln_split_stats *ss = &s->splits[i];
        if (i > 0) fprintf(out, "\n");
        fprintf(out, "%s: %" PRId64 " rows, %" PRId64 " features (uint8 scaled by 1/255)\n",
                kiln_split_name(ss->split), ss->rows, ss->n_features);
        int64_t shown = max_features > 0 && max_features < ss->n_features ? max_features
                                                                           : ss->n_features;
        stats_table_print(ss->features, ss->n_features, shown, "feature", out);
        if (ss->class_counts) {
            fprintf(out, "  %-8s %10s %8s\n", "class", "rows", "share");
            for (int k = 0; k < ss->n_classes; k++)
                fprintf(out, "  %-8d %10" PRId64 " %7.2f%%\n", k, ss->class_counts[k],
                        ss->rows ? 100.0 * (double)ss->class_counts[k] / (double)ss->rows : 0.0);
        }
        if (ss->targets) stats_table_print(ss->targets, ss->target_dim, ss->target_dim, "target", out);
    }
}
