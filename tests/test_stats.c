/* tests/test_stats.c: per-feature dataset statistics (kiln/stats.h) against a
 * brute-force reference (sort every column, numpy's linear quantiles), the
 * quantile method on hand examples, the JSON round trip and malformed JSON. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/util.h"
#include "kiln/data.h"
#include "kiln/stats.h"
#include "test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
    /* splitmix64: a fixed stream, so failures reproduce. */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(void) { return (double)(rng_next() >> 11) / 9007199254740992.0; }

/* A dataset with the given splits' row counts (0: absent), X [rows, d0, d1]
 * of x_dtype, classes (k > 0) or k = -t float targets [n, t]. */
static struct kiln_dataset *make_ds(const int64_t rows[3], int64_t d0, int64_t d1,
                                    enum kiln_dtype x_dtype, int k)
{
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    int64_t shape[2] = {d0, d1};
    str_dup("stats-test", &ds->name);
    for (int s = 0; s < KILN_SPLIT_COUNT; s++) {
        if (rows[s] < 0) continue;
        kiln_split_create(rows[s], d1 > 1 ? 2 : 1, shape, x_dtype,
                          k > 0 ? KILN_DTYPE_I32 : KILN_DTYPE_F32, k > 0 ? 1 : -k,
                          &ds->splits[s]);
    }
    if (k > 0) {
        ds->n_classes = k;
        ds->classes = calloc((size_t)k, sizeof *ds->classes);
        for (int c = 0; c < k; c++) {
            char name[16];
            snprintf(name, sizeof name, "c%d", c);
            str_dup(name, &ds->classes[c]);
        }
    }
    return ds;
}

/* Fills every split with random values: uint8 over the full range (with a
 * constant column 0 and a sparse column 1), float32 with duplicates, signs,
 * a constant column and wide magnitudes. */
static void fill_random(struct kiln_dataset *ds)
{
    for (int s = 0; s < KILN_SPLIT_COUNT; s++) {
        struct kiln_split *sp = ds->splits[s];
        if (!sp) continue;
        int64_t fs = sp->feat_size;
        for (int64_t i = 0; i < sp->n; i++)
            for (int64_t j = 0; j < fs; j++) {
                int64_t at = i * fs + j;
                if (sp->x_dtype == KILN_DTYPE_U8) {
                    uint8_t v = (uint8_t)(rng_next() & 0xff);
                    if (j == 0) v = 7;
                    if (j == 1) v = rng_next() % 10 == 0 ? v : 0;
                    ((uint8_t *)sp->X)[at] = v;
                } else {
                    float v;
                    uint64_t r = rng_next() % 4;
                    if (j == 0) v = -2.5f;
                    else if (r == 0) v = (float)(int)(rng_next() % 5) - 2.0f; /* duplicates */
                    else if (r == 1) v = (float)((rng_unit() - 0.5) * 1e6);
                    else v = (float)((rng_unit() - 0.5) * 3e-3);
                    ((float *)sp->X)[at] = v;
                }
            }
        for (int64_t i = 0; i < sp->n * sp->y_dim; i++) {
            if (sp->y_dtype == KILN_DTYPE_I32)
                ((int32_t *)sp->y)[i] = (int32_t)(rng_next() % (uint64_t)ds->n_classes);
            else
                ((float *)sp->y)[i] = (float)(rng_unit() * 10.0 - 3.0);
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.quantile(v, q) with the default ("linear") method, written plainly. */
static double ref_quantile(const double *sorted, int64_t n, double q)
{
    double h = (double)(n - 1) * q;
    int64_t lo = (int64_t)floor(h);
    int64_t hi = lo + 1 < n ? lo + 1 : n - 1;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (h - (double)lo);
}

/* Brute-force statistics of column j of a [n, width] array. */
static void ref_column(const void *X, enum kiln_dtype dt, int64_t n, int64_t width, int64_t j,
                       struct kiln_feature_stats *f)
{
    double *v = malloc((size_t)(n + 1) * sizeof *v);
    int64_t count = 0;
    memset(f, 0, sizeof *f);
    for (int64_t i = 0; i < n; i++) {
        double x = dt == KILN_DTYPE_U8 ? (double)kiln_u8_to_f32(((const uint8_t *)X)[i * width + j])
                                       : (double)((const float *)X)[i * width + j];
        if (isfinite(x)) v[count++] = x;
    }
    f->count = count;
    f->missing = n - count;
    if (count > 0) {
        qsort(v, (size_t)count, sizeof *v, cmp_double);
        f->min = v[0];
        f->max = v[count - 1];
        double sum = 0.0, sq = 0.0;
        for (int64_t i = 0; i < count; i++) sum += v[i];
        f->mean = sum / (double)count;
        for (int64_t i = 0; i < count; i++) sq += (v[i] - f->mean) * (v[i] - f->mean);
        f->std = sqrt(sq / (double)count);
        for (int q = 0; q < KILN_STATS_QUANTILES; q++)
            f->quantiles[q] = ref_quantile(v, count, kiln_stats_quantile_at[q]);
        for (int64_t i = 0; i < count; i++) {
            int b;
            if (f->max == f->min) {
                b = KILN_STATS_BINS - 1;
            } else {
                b = (int)floor((v[i] - f->min) / (f->max - f->min) * KILN_STATS_BINS);
                if (b >= KILN_STATS_BINS) b = KILN_STATS_BINS - 1;
            }
            f->hist[b]++;
        }
    }
    free(v);
}

/* Compares got with the reference; relative tolerance for sums (the order
 * of a double sum differs), exact for order statistics and counts. */
static int feature_matches(const struct kiln_feature_stats *want,
                           const struct kiln_feature_stats *got, const char *what)
{
    double scale = fabs(want->max) > fabs(want->min) ? fabs(want->max) : fabs(want->min);
    double tol = 1e-12 * (scale > 1.0 ? scale : 1.0);
    if (want->count != got->count || want->missing != got->missing) {
        fprintf(stderr, "%s: count %lld/%lld missing %lld/%lld\n", what, (long long)want->count,
                (long long)got->count, (long long)want->missing, (long long)got->missing);
        return 0;
    }
    if (want->min != got->min || want->max != got->max) {
        fprintf(stderr, "%s: min %.17g/%.17g max %.17g/%.17g\n", what, want->min, got->min,
                want->max, got->max);
        return 0;
    }
    if (!(fabs(want->mean - got->mean) <= tol) || !(fabs(want->std - got->std) <= tol)) {
        fprintf(stderr, "%s: mean %.17g/%.17g std %.17g/%.17g\n", what, want->mean, got->mean,
                want->std, got->std);
        return 0;
    }
    for (int q = 0; q < KILN_STATS_QUANTILES; q++)
        if (!(fabs(want->quantiles[q] - got->quantiles[q]) <= tol)) {
            fprintf(stderr, "%s: quantile %d %.17g/%.17g\n", what, q, want->quantiles[q],
                    got->quantiles[q]);
            return 0;
        }
    for (int b = 0; b < KILN_STATS_BINS; b++)
        if (want->hist[b] != got->hist[b]) {
            fprintf(stderr, "%s: hist[%d] %lld/%lld\n", what, b, (long long)want->hist[b],
                    (long long)got->hist[b]);
            return 0;
        }
    return 1;
}

/* Checks every split of ds against the reference. */
static int stats_match_reference(const struct kiln_dataset *ds, const struct kiln_dataset_stats *s)
{
    int k = 0;
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        const struct kiln_split *sp = ds->splits[i];
        if (!sp) continue;
        const struct kiln_split_stats *ss = &s->splits[k++];
        if (ss->split != (enum kiln_split_id)i || ss->rows != sp->n ||
            ss->n_features != sp->feat_size) {
            fprintf(stderr, "split %d: header differs\n", i);
            return 0;
        }
        for (int64_t j = 0; j < sp->feat_size; j++) {
            struct kiln_feature_stats want;
            char what[64];
            snprintf(what, sizeof what, "%s feature %lld", kiln_split_name(i), (long long)j);
            ref_column(sp->X, sp->x_dtype, sp->n, sp->feat_size, j, &want);
            if (!feature_matches(&want, &ss->features[j], what)) return 0;
        }
        if (ds->n_classes > 0) {
            int64_t counts[64] = {0};
            for (int64_t r = 0; r < sp->n; r++) counts[((const int32_t *)sp->y)[r]]++;
            if (ss->n_classes != ds->n_classes || !ss->class_counts || ss->targets) return 0;
            for (int c = 0; c < ds->n_classes; c++)
                if (counts[c] != ss->class_counts[c]) return 0;
        } else {
            if (ss->target_dim != sp->y_dim || !ss->targets || ss->class_counts) return 0;
            for (int64_t j = 0; j < sp->y_dim; j++) {
                struct kiln_feature_stats want;
                ref_column(sp->y, KILN_DTYPE_F32, sp->n, sp->y_dim, j, &want);
                if (!feature_matches(&want, &ss->targets[j], "target")) return 0;
            }
        }
    }
    return k == s->n_splits;
}

TEST(quantiles_by_hand)
{
    /* numpy.quantile([4, 1, 3, 2], [.01, .25, .5, .75, .99]) */
    const int64_t rows[3] = {4, -1, -1};
    struct kiln_dataset *ds = make_ds(rows, 1, 1, KILN_DTYPE_F32, 2);
    float x[4] = {4, 1, 3, 2};
    memcpy(ds->splits[KILN_SPLIT_TRAIN]->X, x, sizeof x);
    struct kiln_dataset_stats *s = NULL;
    ASSERT_OK(kiln_dataset_stats_compute(ds, &s));
    const struct kiln_feature_stats *f = &s->splits[0].features[0];
    const double want[5] = {1.03, 1.75, 2.5, 3.25, 3.97};
    for (int q = 0; q < 5; q++) ASSERT_NEAR(want[q], f->quantiles[q], 1e-12);
    ASSERT_NEAR(2.5, f->mean, 0);
    ASSERT_NEAR(sqrt(1.25), f->std, 1e-15);
    ASSERT_NEAR(1, f->min, 0);
    ASSERT_NEAR(4, f->max, 0);
    /* bins of width 0.15: 1 -> 0, 2 -> 6, 3 -> 13, 4 (= max) -> 19 */
    ASSERT_EQ_INT(1, f->hist[0]);
    ASSERT_EQ_INT(1, f->hist[6]);
    ASSERT_EQ_INT(1, f->hist[13]);
    ASSERT_EQ_INT(1, f->hist[19]);
    ASSERT_EQ_STR("f0", f->name);
    kiln_dataset_stats_free(s);
    kiln_dataset_free(ds);
}

TEST(quantiles_uint8_counts)
{
    /* Five rows 0, 51, 51, 204, 255 (scaled): the counting path must give
     * numpy's answers on the scaled values. */
    const int64_t rows[3] = {5, -1, -1};
    struct kiln_dataset *ds = make_ds(rows, 2, 1, KILN_DTYPE_U8, 2);
    uint8_t x[10] = {0, 9, 51, 9, 51, 9, 204, 9, 255, 9};
    memcpy(ds->splits[KILN_SPLIT_TRAIN]->X, x, sizeof x);
    struct kiln_dataset_stats *s = NULL;
    ASSERT_OK(kiln_dataset_stats_compute(ds, &s));
    const struct kiln_feature_stats *f = &s->splits[0].features[0];
    double v[5];
    for (int i = 0; i < 5; i++) v[i] = (double)kiln_u8_to_f32(x[2 * i]);
    /* h = 4q: 0.04 -> v0 + .04 (v1 - v0); 1 -> v1; 2 -> v2; 3 -> v3; 3.96 */
    ASSERT_NEAR(v[0] + 0.04 * (v[1] - v[0]), f->quantiles[0], 1e-15);
    ASSERT_NEAR(v[1], f->quantiles[1], 0);
    ASSERT_NEAR(v[2], f->quantiles[2], 0);
    ASSERT_NEAR(v[3], f->quantiles[3], 0);
    ASSERT_NEAR(v[4] - 0.04 * (v[4] - v[3]), f->quantiles[4], 1e-15);
    ASSERT_NEAR(0.0, f->min, 0);
    ASSERT_NEAR((double)kiln_u8_to_f32(255), f->max, 0);
    /* A constant column: every value in the last bin, std 0. */
    const struct kiln_feature_stats *c = &s->splits[0].features[1];
    ASSERT_EQ_INT(5, c->hist[KILN_STATS_BINS - 1]);
    ASSERT_NEAR(0.0, c->std, 0);
    ASSERT_NEAR((double)kiln_u8_to_f32(9), c->quantiles[2], 0);
    kiln_dataset_stats_free(s);
    kiln_dataset_free(ds);
}

TEST(single_row_and_empty_split)
{
    const int64_t rows[3] = {1, 0, -1};
    struct kiln_dataset *ds = make_ds(rows, 3, 1, KILN_DTYPE_F32, -1);
    float x[3] = {-1.5f, 0.0f, 2.0f};
    memcpy(ds->splits[KILN_SPLIT_TRAIN]->X, x, sizeof x);
    struct kiln_dataset_stats *s = NULL;
    ASSERT_OK(kiln_dataset_stats_compute(ds, &s));
    ASSERT_EQ_INT(2, s->n_splits);
    for (int q = 0; q < 5; q++) ASSERT_NEAR(-1.5, s->splits[0].features[0].quantiles[q], 0);
    ASSERT_EQ_INT(1, s->splits[0].features[2].hist[KILN_STATS_BINS - 1]);
    ASSERT_EQ_INT(KILN_SPLIT_VAL, s->splits[1].split);
    ASSERT_EQ_INT(0, s->splits[1].features[0].count);
    ASSERT_NEAR(0.0, s->splits[1].features[0].mean, 0);
    ASSERT_EQ_STR("y0", s->splits[1].targets[0].name);
    kiln_dataset_stats_free(s);
    kiln_dataset_free(ds);
}

TEST(missing_values_counted)
{
    const int64_t rows[3] = {5, -1, -1};
    struct kiln_dataset *ds = make_ds(rows, 1, 1, KILN_DTYPE_F32, 2);
    float x[5] = {1.0f, NAN, 3.0f, INFINITY, -INFINITY};
    memcpy(ds->splits[KILN_SPLIT_TRAIN]->X, x, sizeof x);
    struct kiln_dataset_stats *s = NULL;
    ASSERT_OK(kiln_dataset_stats_compute(ds, &s));
    const struct kiln_feature_stats *f = &s->splits[0].features[0];
    ASSERT_EQ_INT(2, f->count);
    ASSERT_EQ_INT(3, f->missing);
    ASSERT_NEAR(2.0, f->mean, 0);
    ASSERT_NEAR(2.0, f->quantiles[2], 0);
    ASSERT_EQ_INT(1, f->hist[0]);
    ASSERT_EQ_INT(1, f->hist[19]);
    kiln_dataset_stats_free(s);
    kiln_dataset_free(ds);
}

TEST(reference_u8_classes)
{
    /* 70 columns: two counting blocks of 64, the second partial. */
    const int64_t rows[3] = {257, 31, 64};
    struct kiln_dataset *ds = make_ds(rows, 10, 7, KILN_DTYPE_U8, 5);
    fill_random(ds);
    ds->n_features = 70;
    ds->feature_names = calloc(70, sizeof *ds->feature_names);
    for (int j = 0; j < 70; j++) {
        char name[32];
        snprintf(name, sizeof name, "pixel %d", j);
        str_dup(name, &ds->feature_names[j]);
    }
    struct kiln_dataset_stats *s = NULL;
    ASSERT_OK(kiln_dataset_stats_compute(ds, &s));
    ASSERT_EQ_INT(3, s->n_splits);
    ASSERT(stats_match_reference(ds, s));
    ASSERT_EQ_STR("pixel 69", s->splits[2].features[69].name);
    kiln_dataset_stats_free(s);
    kiln_dataset_free(ds);
}

TEST(reference_f32_regression)
{
    /* 37 columns: float blocks of 16 with a partial one; 2 targets. */
    const int64_t rows[3] = {301, -1, 45};
    struct kiln_dataset *ds = make_ds(rows, 37, 1, KILN_DTYPE_F32, -2);
    fill_random(ds);
    struct kiln_dataset_stats *s = NULL;
    ASSERT_OK(kiln_dataset_stats_compute(ds, &s));
    ASSERT_EQ_INT(2, s->n_splits);
    ASSERT_EQ_INT(KILN_SPLIT_TEST, s->splits[1].split);
    ASSERT(stats_match_reference(ds, s));
    kiln_dataset_stats_free(s);
    kiln_dataset_free(ds);
}

TEST(reference_f32_long_column)
{
    /* Enough rows for every radix pass, with negative zero and subnormals. */
    const int64_t rows[3] = {20000, -1, -1};
    struct kiln_dataset *ds = make_ds(rows, 3, 1, KILN_DTYPE_F32, 3);
    fill_random(ds);
    float *X = ds->splits[KILN_SPLIT_TRAIN]->X;
    X[3 * 10 + 1] = -0.0f;
    X[3 * 11 + 1] = 1e-40f;
    X[3 * 12 + 1] = -1e-40f;
    struct kiln_dataset_stats *s = NULL;
    ASSERT_OK(kiln_dataset_stats_compute(ds, &s));
    ASSERT(stats_match_reference(ds, s));
    kiln_dataset_stats_free(s);
    kiln_dataset_free(ds);
}

static char *stats_json_with_threads(const struct kiln_dataset *ds, int threads)
{
#ifdef _OPENMP
    int before = omp_get_max_threads();
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    struct kiln_dataset_stats *s = NULL;
    char *json = NULL;
    if (kiln_dataset_stats_compute(ds, &s) == KILN_OK) json = kiln_dataset_stats_to_json(s);
    kiln_dataset_stats_free(s);
#ifdef _OPENMP
    omp_set_num_threads(before);
#endif
    return json;
}

TEST(same_result_any_thread_count)
{
    const int64_t rows[3] = {500, 100, -1};
    struct kiln_dataset *u8 = make_ds(rows, 150, 1, KILN_DTYPE_U8, 4);
    struct kiln_dataset *f32 = make_ds(rows, 50, 1, KILN_DTYPE_F32, -1);
    fill_random(u8);
    fill_random(f32);
    for (int d = 0; d < 2; d++) {
        const struct kiln_dataset *ds = d ? f32 : u8;
        char *one = stats_json_with_threads(ds, 1);
        char *four = stats_json_with_threads(ds, 4);
        ASSERT(one && four);
        ASSERT_EQ_STR(one, four);
        free(one);
        free(four);
    }
    kiln_dataset_free(u8);
    kiln_dataset_free(f32);
}

static int stats_equal(const struct kiln_dataset_stats *a, const struct kiln_dataset_stats *b)
{
    if (a->n_splits != b->n_splits) return 0;
    for (int i = 0; i < a->n_splits; i++) {
        const struct kiln_split_stats *x = &a->splits[i], *y = &b->splits[i];
        if (x->split != y->split || x->rows != y->rows || x->n_features != y->n_features ||
            x->n_classes != y->n_classes || x->target_dim != y->target_dim)
            return 0;
        if (memcmp(x->features, y->features, (size_t)x->n_features * sizeof *x->features))
            return 0;
        if (x->n_classes &&
            memcmp(x->class_counts, y->class_counts, (size_t)x->n_classes * sizeof(int64_t)))
            return 0;
        if (x->target_dim &&
            memcmp(x->targets, y->targets, (size_t)x->target_dim * sizeof *x->targets))
            return 0;
    }
    return 1;
}

TEST(json_round_trip)
{
    const int64_t rows[3] = {120, 20, 30};
    struct kiln_dataset *ds[2] = {make_ds(rows, 9, 1, KILN_DTYPE_U8, 3),
                                  make_ds(rows, 5, 1, KILN_DTYPE_F32, -2)};
    for (int d = 0; d < 2; d++) {
        fill_random(ds[d]);
        struct kiln_dataset_stats *s = NULL, *back = NULL;
        ASSERT_OK(kiln_dataset_stats_compute(ds[d], &s));
        char *json = kiln_dataset_stats_to_json(s);
        ASSERT(json != NULL);
        const char *head = "{\"splits\":[{\"split\":\"train\",\"rows\":120,\"features\":[{\"name\":";
        ASSERT(strncmp(json, head, strlen(head)) == 0);
        ASSERT(strchr(json, '\n') == NULL);
        ASSERT_OK(kiln_dataset_stats_from_json(json, &back));
        ASSERT(stats_equal(s, back));
        char *again = kiln_dataset_stats_to_json(back);
        ASSERT_EQ_STR(json, again);
        free(json);
        free(again);
        kiln_dataset_stats_free(s);
        kiln_dataset_stats_free(back);
        kiln_dataset_free(ds[d]);
    }
}

/* Replaces the first occurrence of old in a copy of text. */
static char *replace_once(const char *text, const char *old, const char *new)
{
    const char *at = strstr(text, old);
    if (!at) return NULL;
    size_t n = strlen(text) - strlen(old) + strlen(new) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, new, at + strlen(old));
    return out;
}

TEST(json_malformed)
{
    struct kiln_dataset_stats *s = NULL;
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_stats_from_json("{\"splits\": [", &s), "line 1");
    ASSERT(s == NULL);
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_stats_from_json("[1, 2]", &s), "object");
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_stats_from_json("{}", &s), "'splits'");
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_stats_from_json("{\"splits\":{}}", &s), "array");
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  kiln_dataset_stats_from_json("{\"splits\":[],\"extra\":1}", &s), "'extra'");
    ASSERT_OK(kiln_dataset_stats_from_json("{\"splits\":[]}", &s));
    ASSERT_EQ_INT(0, s->n_splits);
    kiln_dataset_stats_free(s);
    s = NULL;

    const int64_t rows[3] = {10, 4, -1};
    struct kiln_dataset *ds = make_ds(rows, 2, 1, KILN_DTYPE_F32, 2);
    fill_random(ds);
    struct kiln_dataset_stats *good = NULL;
    ASSERT_OK(kiln_dataset_stats_compute(ds, &good));
    char *json = kiln_dataset_stats_to_json(good);
    kiln_dataset_stats_free(good);
    kiln_dataset_free(ds);
    ASSERT(json);
    static const struct {
        const char *old, *new, *needle;
    } cases[] = {
        {"\"split\":\"train\"", "\"split\":\"training\"", "splits[0].split"},
        {"\"split\":\"val\"", "\"split\":\"train\"", "out of order"},
        {"\"rows\":10", "\"rows\":-10", "splits[0].rows"},
        {"\"rows\":10", "\"rows\":\"10\"", "splits[0].rows"},
        {"\"hist\":[", "\"hist\":[1,", "splits[0].features[0].hist: expected 20 entries"},
        {"\"quantiles\":[", "\"quantiles\":[\"a\",0,0,0,0],\"q\":[", "features[0].quantiles[0]"},
        {"\"quantiles\":[", "\"quantiles\":[\"a\",", "expected 5 entries"},
        {"\"count\":10", "\"count\":9", "do not add up"},
        {"\"mean\":", "\"mean\":\"x\",\"m\":", "features[0].mean: expected a number"},
        {"\"mean\":", "\"mean\":1,\"m\":", "unknown key 'm'"},
        {"\"name\":\"f0\"", "\"name\":3", "features[0].name"},
        {"\"name\":\"f0\"", "\"name\":\"f0\",\"color\":1", "unknown key 'color'"},
        {"\"class_counts\":[", "\"targets\":[],\"class_counts\":[", "exactly one"},
        {"\"class_counts\":[", "\"class_counts\":[1.5,", "class_counts[0]"},
        {"\"features\":[", "\"features\":{\"a\":1},\"x\":[", "features: expected an array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *bad = replace_once(json, cases[i].old, cases[i].new);
        if (!bad) TEST_FAIL("case %zu: '%s' not in the JSON", i, cases[i].old);
        enum kiln_status st = kiln_dataset_stats_from_json(bad, &s);
        free(bad);
        if (st != KILN_ERR_FORMAT || !strstr(kiln_last_error(), cases[i].needle))
            TEST_FAIL("case %zu (%s): %s: %s", i, cases[i].new, kiln_status_name(st),
                      kiln_last_error());
        ASSERT(s == NULL);
    }
    /* Class counts that do not add up to the rows. */
    char *bad = replace_once(json, "\"class_counts\":[", "\"class_counts\":[1,");
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_stats_from_json(bad, &s), "add up");
    free(bad);
    free(json);
}

TEST(refuses_header_only_and_bad_labels)
{
    const int64_t rows[3] = {3, -1, -1};
    struct kiln_dataset *ds = make_ds(rows, 2, 1, KILN_DTYPE_U8, 2);
    struct kiln_dataset_stats *s = NULL;
    ((int32_t *)ds->splits[KILN_SPLIT_TRAIN]->y)[1] = 5;
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_stats_compute(ds, &s), "train/y[1]");
    ASSERT(s == NULL);
    free(ds->splits[KILN_SPLIT_TRAIN]->X);
    ds->splits[KILN_SPLIT_TRAIN]->X = NULL;
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_dataset_stats_compute(ds, &s), "no arrays");
    kiln_dataset_free(ds);
}

TEST(print_table)
{
    const int64_t rows[3] = {50, -1, 20};
    struct kiln_dataset *ds = make_ds(rows, 30, 1, KILN_DTYPE_U8, 3);
    fill_random(ds);
    struct kiln_dataset_stats *s = NULL;
    ASSERT_OK(kiln_dataset_stats_compute(ds, &s));
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    kiln_dataset_stats_print(s, 4, out);
    fclose(out);
    ASSERT(strstr(buf, "train: 50 rows, 30 features") != NULL);
    ASSERT(strstr(buf, "test: 20 rows") != NULL);
    ASSERT(strstr(buf, "p50") != NULL);
    ASSERT(strstr(buf, "f3 ") != NULL);
    ASSERT(strstr(buf, "f4 ") == NULL);
    ASSERT(strstr(buf, "... 26 more") != NULL);
    ASSERT(strstr(buf, "class") != NULL);
    free(buf);
    kiln_dataset_stats_free(s);
    kiln_dataset_free(ds);
}

TEST(names_cut_to_valid_utf8)
{
    const int64_t rows[3] = {2, -1, -1};
    struct kiln_dataset *ds = make_ds(rows, 2, 1, KILN_DTYPE_F32, 2);
    ds->n_features = 2;
    ds->feature_names = calloc(2, sizeof *ds->feature_names);
    char long_name[200];
    memset(long_name, 0, sizeof long_name);
    for (int i = 0; i < 40; i++) memcpy(long_name + 2 * i, "\xc3\xa9", 2); /* 40 x 'é' */
    str_dup(long_name, &ds->feature_names[0]);
    str_dup("bad \xff byte", &ds->feature_names[1]);
    struct kiln_dataset_stats *s = NULL, *back = NULL;
    ASSERT_OK(kiln_dataset_stats_compute(ds, &s));
    ASSERT_EQ_INT(62, strlen(s->splits[0].features[0].name));
    ASSERT_EQ_STR("bad ? byte", s->splits[0].features[1].name);
    char *json = kiln_dataset_stats_to_json(s);
    ASSERT(json);
    ASSERT_OK(kiln_dataset_stats_from_json(json, &back));
    ASSERT_EQ_STR(s->splits[0].features[0].name, back->splits[0].features[0].name);
    free(json);
    kiln_dataset_stats_free(s);
    kiln_dataset_stats_free(back);
    kiln_dataset_free(ds);
}

TEST(fashion_mnist_sized)
{
    /* 70k x 784 uint8, the size of Fashion-MNIST: the counting path keeps
     * this well under 2 s on 2 cores in a release build; the bound here is
     * loose for sanitizer builds and loaded machines. */
    const int64_t rows[3] = {60000, -1, 10000};
    struct kiln_dataset *ds = make_ds(rows, 28, 28, KILN_DTYPE_U8, 10);
    fill_random(ds);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct kiln_dataset_stats *s = NULL;
    ASSERT_OK(kiln_dataset_stats_compute(ds, &s));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "stats of 70000 x 784 uint8: %.3f s\n", sec);
    ASSERT(sec < 30.0);
    ASSERT_EQ_INT(784, s->splits[0].n_features);
    ASSERT_EQ_INT(60000, s->splits[0].features[500].count);
    kiln_dataset_stats_free(s);
    kiln_dataset_free(ds);
}

int main(void)
{
    RUN(quantiles_by_hand);
    RUN(quantiles_uint8_counts);
    RUN(single_row_and_empty_split);
    RUN(missing_values_counted);
    RUN(reference_u8_classes);
    RUN(reference_f32_regression);
    RUN(reference_f32_long_column);
    RUN(same_result_any_thread_count);
    RUN(json_round_trip);
    RUN(json_malformed);
    RUN(refuses_header_only_and_bad_labels);
    RUN(print_table);
    RUN(names_cut_to_valid_utf8);
    RUN(fashion_mnist_sized);
    return test_summary();
}
