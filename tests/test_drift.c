/* tests/test_drift.c: PSI and binned KS on hand-made histograms, the
 * drift accumulator on identical, shifted and labelled data, and the
 * sliding window of live traffic (agreement with the accumulator, blocks
 * leaving, a shift showing, concurrent adds and scrapes). */
#define _POSIX_C_SOURCE 200809L /* fmemopen */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/drift.h"
#include "test.h"

TEST(psi_known_values)
{
    /* Shares 0.5/0.5 against 0.25/0.75:
     * (0.25-0.5) ln(0.5) + (0.75-0.5) ln(1.5) = 0.25 ln 3. */
    int64_t b[2] = {50, 50}, c[2] = {25, 75};
    ASSERT_NEAR(0.25 * log(3.0), kiln_drift_psi(b, c, 2), 1e-12);
    /* Symmetric in its arguments. */
    ASSERT_NEAR(0.25 * log(3.0), kiln_drift_psi(c, b, 2), 1e-12);
    /* An empty current bin counts as share 1e-4:
     * (1e-4 - 0.5) ln(1e-4 / 0.5) + (1 - 0.5) ln(1 / 0.5). */
    int64_t e[2] = {0, 10};
    double want = (1e-4 - 0.5) * log(1e-4 / 0.5) + 0.5 * log(2.0);
    ASSERT_NEAR(want, kiln_drift_psi(b, e, 2), 1e-12);
    /* Empty in both: that bin adds nothing. */
    int64_t b3[3] = {0, 3, 1}, c3[3] = {0, 3, 1};
    ASSERT_NEAR(0.0, kiln_drift_psi(b3, c3, 3), 0.0);
    /* Same shares at different totals: 0. */
    int64_t b4[4] = {1, 2, 3, 4}, c4[4] = {10, 20, 30, 40};
    ASSERT_NEAR(0.0, kiln_drift_psi(b4, c4, 4), 1e-15);
    /* An all-zero side: 0 rather than a division by zero. */
    int64_t z[4] = {0};
    ASSERT_NEAR(0.0, kiln_drift_psi(b4, z, 4), 0.0);
}

TEST(ks_known_values)
{
    /* CDFs 0.1,0.3,0.6,1.0 and 0.4,0.7,0.9,1.0: largest gap 0.4 at bin 1. */
    int64_t b[4] = {1, 2, 3, 4}, c[4] = {4, 3, 2, 1};
    ASSERT_NEAR(0.4, kiln_drift_ks(b, c, 4), 1e-12);
    ASSERT_NEAR(0.4, kiln_drift_ks(c, b, 4), 1e-12);
    int64_t c2[4] = {2, 4, 6, 8};
    ASSERT_NEAR(0.0, kiln_drift_ks(b, c2, 4), 1e-15);
    /* Disjoint supports: 1. */
    int64_t l[4] = {5, 5, 0, 0}, r[4] = {0, 0, 1, 1};
    ASSERT_NEAR(1.0, kiln_drift_ks(l, r, 4), 1e-15);
}

/* A baseline split of two features: a uniform one on [0, 1] and a constant
 * one (0), built from the same rows the tests then feed as current data. */
static void make_rows(float *rows, int64_t n, double shift)
{
    for (int64_t i = 0; i < n; i++) {
        rows[2 * i] = (float)(test_rng01() + shift);
        rows[2 * i + 1] = (float)(0.0 + shift);
    }
}

/* The split and the arrays it points into, kept together; not to be copied
 * (b.s points into b). */
struct baseline {
    struct kiln_split_stats s;
    struct kiln_feature_stats f[2];
    int64_t classes[3];
};

static void make_baseline(const float *rows, int64_t n, struct baseline *b)
{
    memset(b, 0, sizeof *b);
    struct kiln_split_stats *s = &b->s;
    struct kiln_feature_stats *f = b->f;
    int64_t *classes = b->classes;
    for (int j = 0; j < 2; j++) {
        snprintf(f[j].name, sizeof f[j].name, "f%d", j);
        double mn = rows[j], mx = rows[j], sum = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double x = rows[2 * i + j];
            mn = x < mn ? x : mn;
            mx = x > mx ? x : mx;
            sum += x;
        }
        f[j].min = mn;
        f[j].max = mx;
        f[j].mean = sum / (double)n;
        f[j].count = n;
        for (int64_t i = 0; i < n; i++) f[j].hist[kiln_stats_bin(rows[2 * i + j], mn, mx)]++;
    }
    s->split = KILN_SPLIT_TRAIN;
    s->rows = n;
    s->n_features = 2;
    s->features = f;
    s->n_classes = 3;
    classes[0] = 100, classes[1] = 100, classes[2] = 100;
    s->class_counts = classes;
}

TEST(identical_data_no_drift)
{
    enum { N = 3000 };
    static float rows[2 * N];
    make_rows(rows, N, 0.0);
    struct baseline b;
    make_baseline(rows, N, &b);
    struct kiln_drift *d = NULL;
    struct kiln_drift_report *r = NULL;
    ASSERT_OK(kiln_drift_begin(&b.s, &d));
    /* In two chunks: the result must not depend on how rows arrive. */
    ASSERT_OK(kiln_drift_add_rows(d, rows, N / 3, 2));
    ASSERT_OK(kiln_drift_add_rows(d, rows + 2 * (N / 3), N - N / 3, 2));
    int32_t labels[30];
    for (int i = 0; i < 30; i++) labels[i] = i % 3;
    ASSERT_OK(kiln_drift_add_labels(d, labels, 30));
    ASSERT_OK(kiln_drift_finish(d, NULL, &r));
    ASSERT_EQ_INT(0, r->drifted);
    ASSERT_EQ_INT(N, r->cur_rows);
    for (int j = 0; j < 2; j++) {
        ASSERT_NEAR(0.0, r->features[j].psi, 1e-12);
        ASSERT_NEAR(0.0, r->features[j].ks, 1e-12);
        ASSERT_NEAR(r->features[j].base_mean, r->features[j].cur_mean, 1e-6);
    }
    ASSERT(r->has_classes);
    ASSERT_NEAR(0.0, r->class_psi, 1e-12);
    ASSERT(!r->classes_drifted);
    ASSERT_NEAR(KILN_DRIFT_PSI_THRESHOLD, r->psi_threshold, 0.0);
    char *json = kiln_drift_report_to_json(r, 0);
    ASSERT(json && strstr(json, "\"drifted\":0"));
    free(json);
    kiln_drift_report_free(r);
    kiln_drift_free(d);
}

TEST(shifted_copy_flagged)
{
    enum { N = 3000 };
    static float rows[2 * N], shifted[2 * N];
    make_rows(rows, N, 0.0);
    test_rng_state = 42;
    make_rows(shifted, N, 0.3);
    struct baseline b;
    make_baseline(rows, N, &b);
    struct kiln_drift *d = NULL;
    struct kiln_drift_report *r = NULL;
    ASSERT_OK(kiln_drift_begin(&b.s, &d));
    ASSERT_OK(kiln_drift_add_rows(d, shifted, N, 2));
    int32_t labels[30];
    for (int i = 0; i < 30; i++) labels[i] = i < 25 ? 0 : 1 + i % 2;
    ASSERT_OK(kiln_drift_add_labels(d, labels, 30));
    ASSERT_OK(kiln_drift_finish(d, NULL, &r));
    ASSERT_EQ_INT(2, r->drifted);
    /* The uniform feature: 30% of the mass moves past max into the last bin,
     * so the binned KS is about 0.3. */
    const struct kiln_drift_feature *u = r->features[0].index == 0 ? &r->features[0] : &r->features[1];
    ASSERT(u->drifted);
    ASSERT_NEAR(0.3, u->ks, 0.05);
    ASSERT_NEAR(u->base_mean + 0.3, u->cur_mean, 0.03); /* different draws */
    /* Sorted by PSI, largest first. */
    ASSERT(r->features[0].psi >= r->features[1].psi);
    /* The constant feature moved off its value: all of it changes bin. */
    const struct kiln_drift_feature *c = u == &r->features[0] ? &r->features[1] : &r->features[0];
    ASSERT_NEAR(1.0, c->ks, 1e-12);
    ASSERT(r->classes_drifted);
    /* Thresholds from the options: raised past both statistics, nothing drifts. */
    kiln_drift_report_free(r);
    struct kiln_drift_options opt = {.psi_threshold = 1e9, .ks_threshold = 2.0};
    ASSERT_OK(kiln_drift_finish(d, &opt, &r));
    ASSERT_EQ_INT(0, r->drifted);
    kiln_drift_report_free(r);
    kiln_drift_free(d);
}

TEST(bad_input_refused)
{
    enum { N = 10 };
    float rows[2 * N];
    make_rows(rows, N, 0.0);
    struct baseline b;
    make_baseline(rows, N, &b);
    struct kiln_drift *d = NULL;
    struct kiln_drift_report *r = NULL;
    ASSERT_OK(kiln_drift_begin(&b.s, &d));
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_drift_finish(d, NULL, &r), "no current rows");
    ASSERT_STATUS(KILN_ERR_SHAPE, kiln_drift_add_rows(d, rows, N, 3), "3 features");
    int32_t bad = 3;
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_drift_add_labels(d, &bad, 1), "outside [0, 3)");
    kiln_drift_free(d);
    kiln_drift_free(NULL);
    kiln_drift_report_free(NULL);
}

TEST(labels_only_report)
{
    /* A redacted prediction log: predicted classes, no feature rows. */
    enum { N = 10 };
    float rows[2 * N];
    make_rows(rows, N, 0.0);
    struct baseline b;
    make_baseline(rows, N, &b);
    struct kiln_drift *d = NULL;
    struct kiln_drift_report *r = NULL;
    ASSERT_OK(kiln_drift_begin(&b.s, &d));
    int32_t labels[30];
    for (int i = 0; i < 30; i++) labels[i] = i < 24 ? 0 : 1 + i % 2;
    ASSERT_OK(kiln_drift_add_labels(d, labels, 30));
    ASSERT_OK(kiln_drift_finish(d, NULL, &r));
    ASSERT_EQ_INT(0, r->cur_rows);
    ASSERT_EQ_INT(30, r->cur_labels);
    ASSERT_EQ_INT(0, r->drifted);
    ASSERT(r->has_classes && r->classes_drifted);
    char *json = kiln_drift_report_to_json(r, 0);
    ASSERT(json && strstr(json, "\"features_checked\":false") && strstr(json, "\"features\":[]") &&
           strstr(json, "\"current_labels\":30"));
    free(json);
    char text[1024] = {0};
    FILE *mem = fmemopen(text, sizeof text - 1, "w");
    ASSERT(mem);
    kiln_drift_report_print(r, 0, mem);
    fclose(mem);
    ASSERT(strstr(text, "feature drift not checked") && strstr(text, "class distribution: PSI") &&
           !strstr(text, "features drifted"));
    kiln_drift_report_free(r);
    kiln_drift_free(d);
}

/* --- the sliding window -------------------------------------------------------------- */

/* Per-feature PSI and KS of a batch report, by feature index. */
static void report_by_index(const struct kiln_drift_report *r, double psi[2], double ks[2])
{
    for (int64_t i = 0; i < r->n_features; i++) {
        psi[r->features[i].index] = r->features[i].psi;
        ks[r->features[i].index] = r->features[i].ks;
    }
}

/* The scores of window w, which has seen cur (n rows of 2 features;
 * labels may be NULL), against those of one batch (kiln_drift) over the
 * same rows: the same PSI, KS and verdicts, bit for bit. */
static void check_window_scores(const struct baseline *b, struct kiln_drift_window *w,
                                const float *cur, int64_t n, const int32_t *labels)
{
    struct kiln_drift *d = NULL;
    struct kiln_drift_report *r = NULL;
    struct kiln_drift_window_scores sc = {0};
    double psi[2], ks[2];
    ASSERT_OK(kiln_drift_begin(&b->s, &d));
    enum kiln_status st = kiln_drift_add_rows(d, cur, n, 2);
    if (st == KILN_OK && labels) st = kiln_drift_add_labels(d, labels, n);
    if (st == KILN_OK) st = kiln_drift_finish(d, NULL, &r);
    if (st == KILN_OK) st = kiln_drift_window_scores(w, &sc);
    kiln_drift_free(d);
    if (st != KILN_OK) {
        kiln_drift_report_free(r);
        TEST_FAIL("scoring: %s", kiln_last_error());
    }
    report_by_index(r, psi, ks);
    bool same = sc.rows == n && sc.n_features == 2 && !strcmp(sc.names[0], "f0") &&
                sc.drifted == r->drifted && sc.has_classes == (labels != NULL) &&
                sc.max_psi == (psi[0] > psi[1] ? psi[0] : psi[1]) &&
                (!labels || sc.class_psi == r->class_psi);
    for (int j = 0; j < 2; j++) same = same && sc.psi[j] == psi[j] && sc.ks[j] == ks[j];
    if (!same)
        TEST_FAIL("window: %lld rows, psi %.9g %.9g, ks %.9g %.9g, class psi %.9g; batch: psi "
                  "%.9g %.9g, ks %.9g %.9g, class psi %.9g", (long long)sc.rows, sc.psi[0],
                  sc.psi[1], sc.ks[0], sc.ks[1], sc.class_psi, psi[0], psi[1], ks[0], ks[1],
                  r->class_psi);
    kiln_drift_window_scores_free(&sc);
    kiln_drift_window_scores_free(&sc); /* emptied: twice is fine */
    kiln_drift_report_free(r);
}

/* cur added to a window larger than the stream in uneven steps, then
 * scored as check_window_scores does. */
static void check_window_equals_batch(const struct baseline *b, const float *cur, int64_t n,
                                      const int32_t *labels)
{
    struct kiln_drift_window *w = NULL;
    ASSERT_OK(kiln_drift_window_create(&b->s, 100000, &w));
    for (int64_t at = 0, step = 1; at < n; at += step, step = step * 3 + 1) {
        int64_t m = n - at < step ? n - at : step;
        ASSERT_OK(kiln_drift_window_add(w, cur + 2 * at, m, 2, labels ? labels + at : NULL));
    }
    check_window_scores(b, w, cur, n, labels);
    kiln_drift_window_free(w);
}

TEST(window_matches_batch)
{
    enum { N = 3000 };
    static float rows[2 * N], cur[2 * N];
    static int32_t labels[N];
    make_rows(rows, N, 0.0);
    make_rows(cur, N, 0.1);
    cur[10] = NAN; /* not binned, by either */
    for (int i = 0; i < N; i++) labels[i] = (int32_t)(test_rng_u64() % 3);
    struct baseline b;
    make_baseline(rows, N, &b);
    check_window_equals_batch(&b, cur, N, labels);
}

/* The window's vectorized binning against the batch's drift_bin on the
 * edges: values at the baseline's min and max and on bin boundaries,
 * beyond both ends, +-Inf and NaN, and a feature the baseline holds
 * constant (binned by the fix-up). */
TEST(window_edges_match_batch)
{
    enum { N = 400 };
    static float rows[2 * N], cur[2 * N];
    for (int i = 0; i < N; i++) {
        rows[2 * i] = (float)(i % 40) * 0.25f - 2.0f; /* [-2, 7.75] */
        rows[2 * i + 1] = 3.0f;                         /* constant */
    }
    const float edges[] = {-2.0f, 7.75f, -2.0001f, 7.7501f, -1e30f, 1e30f, INFINITY, -INFINITY,
                           NAN,   0.0f,  -0.0f,    2.875f,  -1.0225f, 6.7750001f, 3.0f, 2.9999998f};
    int ne = (int)(sizeof edges / sizeof *edges);
    for (int i = 0; i < N; i++) {
        /* Bin boundaries: min + k * (max - min) / KILN_STATS_BINS. */
        double step = 9.75 / KILN_STATS_BINS;
        cur[2 * i] = i < ne ? edges[i] : (float)(-2.0 + step * (double)(i % (KILN_STATS_BINS + 1)));
        cur[2 * i + 1] = edges[(i * 7) % ne];
    }
    struct baseline b;
    make_baseline(rows, N, &b);
    ASSERT(b.f[1].min == b.f[1].max);
    check_window_equals_batch(&b, cur, N, NULL);
}

TEST(window_blocks_fall_out)
{
    enum { N = 3000, W = 800 }; /* blocks of 100 rows */
    static float rows[2 * N], shifted[2 * N];
    make_rows(rows, N, 0.0);
    make_rows(shifted, N, 0.5);
    struct baseline b;
    make_baseline(rows, N, &b);
    struct kiln_drift_window *w = NULL;
    struct kiln_drift_window_scores sc;
    ASSERT_OK(kiln_drift_window_create(&b.s, W, &w));
    ASSERT_OK(kiln_drift_window_scores(w, &sc));
    ASSERT_EQ_INT(0, sc.rows);
    ASSERT_NEAR(0.0, sc.max_psi, 0.0);
    ASSERT(!sc.has_classes);
    kiln_drift_window_scores_free(&sc);
    /* 1000 shifted rows: drift. */
    ASSERT_OK(kiln_drift_window_add(w, shifted, 1000, 2, NULL));
    ASSERT_OK(kiln_drift_window_scores(w, &sc));
    ASSERT_EQ_INT(800, sc.rows); /* 8 complete blocks, the 9th just emptied */
    ASSERT_EQ_INT(2, sc.drifted);
    kiln_drift_window_scores_free(&sc);
    /* 850 unshifted rows: the window is 8 full blocks and 50 rows, of which
     * 8 blocks and 50 rows are new ... */
    ASSERT_OK(kiln_drift_window_add(w, rows, 850, 2, NULL));
    ASSERT_OK(kiln_drift_window_scores(w, &sc));
    ASSERT_EQ_INT(850, sc.rows);
    ASSERT_EQ_INT(0, sc.drifted);
    ASSERT(sc.max_psi < 0.1);
    kiln_drift_window_scores_free(&sc);
    /* ... and between 8 and 9 blocks from then on. */
    for (int i = 0; i < 30; i++) {
        ASSERT_OK(kiln_drift_window_add(w, rows + 2 * 1000, 37, 2, NULL));
        ASSERT_OK(kiln_drift_window_scores(w, &sc));
        int64_t n = sc.rows;
        kiln_drift_window_scores_free(&sc);
        ASSERT(n >= W && n < W + W / KILN_DRIFT_WINDOW_BLOCKS);
    }
    kiln_drift_window_free(w);
}

TEST(window_shift_raises_psi)
{
    enum { N = 4000 };
    static float rows[2 * N], live[2 * N];
    static int32_t even[N], skewed[N];
    make_rows(rows, N, 0.0);
    for (int i = 0; i < N; i++) {
        even[i] = i % 3;
        skewed[i] = i % 10 == 0 ? 1 : 0;
    }
    struct baseline b;
    make_baseline(rows, N, &b);
    struct kiln_drift_window *w = NULL;
    struct kiln_drift_window_scores sc;
    ASSERT_OK(kiln_drift_window_create(&b.s, 2000, &w));
    /* Fresh draws from the baseline's distribution: quiet. */
    make_rows(live, N, 0.0);
    ASSERT_OK(kiln_drift_window_add(w, live, N, 2, even));
    ASSERT_OK(kiln_drift_window_scores(w, &sc));
    /* Feature 0: fresh uniform draws, 2000 rows in 20 bins: PSI about 0.01. */
    ASSERT(sc.psi[0] < 0.05 && sc.ks[0] < 0.05);
    ASSERT_NEAR(0.0, sc.psi[1], 1e-12);
    ASSERT_EQ_INT(0, sc.drifted);
    ASSERT(sc.has_classes && sc.class_psi < 0.01);
    double quiet = sc.max_psi;
    kiln_drift_window_scores_free(&sc);
    /* The live stream shifts by 0.2 (a fifth of the range) and one class dominates. */
    make_rows(live, N, 0.2);
    for (int i = 0; i < N; i++) live[2 * i + 1] = 0.0f; /* keep the constant one still */
    ASSERT_OK(kiln_drift_window_add(w, live, N, 2, skewed));
    ASSERT_OK(kiln_drift_window_scores(w, &sc));
    ASSERT(sc.psi[0] > KILN_DRIFT_PSI_THRESHOLD && sc.psi[0] > 10 * quiet);
    ASSERT_NEAR(0.2, sc.ks[0], 0.05);
    ASSERT_NEAR(0.0, sc.psi[1], 1e-12);
    ASSERT_EQ_INT(1, sc.drifted);
    ASSERT(sc.class_psi > KILN_DRIFT_PSI_THRESHOLD);
    kiln_drift_window_scores_free(&sc);
    kiln_drift_window_free(w);
}

enum { WT_THREADS = 8, WT_ADDS = 50, WT_ROWS = 10 };
static float wt_rows[2 * WT_THREADS * WT_ADDS * WT_ROWS];
static int32_t wt_labels[WT_THREADS * WT_ADDS * WT_ROWS];

struct wt_arg {
    struct kiln_drift_window *w;
    int t;
    enum kiln_status st;
};

static void *wt_add(void *p)
{
    struct wt_arg *a = p;
    for (int i = 0; i < WT_ADDS && a->st == KILN_OK; i++) {
        int64_t at = ((int64_t)a->t * WT_ADDS + i) * WT_ROWS;
        a->st = kiln_drift_window_add(a->w, wt_rows + 2 * at, WT_ROWS, 2, wt_labels + at);
    }
    return NULL;
}

static void *wt_scrape(void *p)
{
    struct wt_arg *a = p;
    for (int i = 0; i < 200 && a->st == KILN_OK; i++) {
        struct kiln_drift_window_scores sc;
        a->st = kiln_drift_window_scores(a->w, &sc);
        if (a->st == KILN_OK && (sc.rows < 0 || sc.rows > WT_THREADS * WT_ADDS * WT_ROWS))
            a->st = KILN_ERR_INTERNAL;
        kiln_drift_window_scores_free(&sc);
    }
    return NULL;
}

TEST(window_concurrent_adds)
{
    enum { N = WT_THREADS * WT_ADDS * WT_ROWS };
    make_rows(wt_rows, N, 0.05);
    for (int i = 0; i < N; i++) wt_labels[i] = (int32_t)(test_rng_u64() % 3);
    static float base_rows[2 * N];
    make_rows(base_rows, N, 0.0);
    struct baseline b;
    make_baseline(base_rows, N, &b);
    struct kiln_drift_window *w = NULL;
    ASSERT_OK(kiln_drift_window_create(&b.s, 10 * N, &w));
    pthread_t th[WT_THREADS + 1];
    struct wt_arg args[WT_THREADS + 1];
    for (int t = 0; t <= WT_THREADS; t++) {
        args[t] = (struct wt_arg){w, t, KILN_OK};
        ASSERT(pthread_create(&th[t], NULL, t < WT_THREADS ? wt_add : wt_scrape, &args[t]) == 0);
    }
    for (int t = 0; t <= WT_THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t <= WT_THREADS; t++) ASSERT_OK(args[t].st);
    /* Histograms do not care about arrival order: the batch's numbers exactly. */
    check_window_scores(&b, w, wt_rows, N, wt_labels);
    kiln_drift_window_free(w);
}

TEST(window_bad_input_refused)
{
    enum { N = 10 };
    float rows[2 * N];
    make_rows(rows, N, 0.0);
    struct baseline b;
    make_baseline(rows, N, &b);
    struct kiln_drift_window *w = NULL;
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_drift_window_create(&b.s, 7, &w), "less than 8");
    ASSERT(w == NULL);
    struct kiln_split_stats empty = b.s;
    empty.rows = 0;
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_drift_window_create(&empty, 100, &w), "no rows");
    ASSERT_OK(kiln_drift_window_create(&b.s, 8, &w));
    ASSERT_STATUS(KILN_ERR_SHAPE, kiln_drift_window_add(w, rows, N, 3, NULL), "3 features");
    int32_t labels[N] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 3};
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_drift_window_add(w, rows, N, 2, labels), "outside [0, 3)");
    /* A refused add counted nothing. */
    struct kiln_drift_window_scores sc;
    ASSERT_OK(kiln_drift_window_scores(w, &sc));
    ASSERT_EQ_INT(0, sc.rows);
    kiln_drift_window_scores_free(&sc);
    /* A baseline without class counts ignores the classes. */
    struct kiln_drift_window *w2 = NULL;
    struct kiln_split_stats noclass = b.s;
    noclass.n_classes = 0;
    noclass.class_counts = NULL;
    ASSERT_OK(kiln_drift_window_create(&noclass, 8, &w2));
    ASSERT_OK(kiln_drift_window_add(w2, rows, N, 2, labels));
    ASSERT_OK(kiln_drift_window_scores(w2, &sc));
    ASSERT(!sc.has_classes);
    kiln_drift_window_scores_free(&sc);
    kiln_drift_window_free(w2);
    kiln_drift_window_free(w);
    kiln_drift_window_free(NULL);
    kiln_drift_window_scores_free(NULL);
}

TEST(window_wide_rows)
{
    /* Rows wider than the add's stack buffer (4096 features) take the
     * allocated path, one row per lock, and count as any other. */
    enum { NF = 5000 };
    struct kiln_feature_stats *f = calloc(NF, sizeof *f);
    float *rows = malloc(2 * NF * sizeof *rows);
    ASSERT(f && rows);
    for (int j = 0; j < NF; j++) {
        snprintf(f[j].name, sizeof f[j].name, "f%d", j);
        f[j].min = 0.0;
        f[j].max = 1.0;
        f[j].count = 2;
        f[j].hist[0] = f[j].hist[KILN_STATS_BINS - 1] = 1;
        rows[j] = 0.0f;
        rows[NF + j] = 1.0f;
    }
    rows[NF - 1] = 1.0f; /* the last feature: both rows in the last bin */
    struct kiln_split_stats s = {.split = KILN_SPLIT_TRAIN, .rows = 2, .n_features = NF,
                                 .features = f};
    struct kiln_drift_window *w = NULL;
    struct kiln_drift_window_scores sc;
    ASSERT_OK(kiln_drift_window_create(&s, 800, &w));
    ASSERT_OK(kiln_drift_window_add(w, rows, 2, NF, NULL));
    ASSERT_OK(kiln_drift_window_scores(w, &sc));
    ASSERT_EQ_INT(2, sc.rows);
    ASSERT_NEAR(0.0, sc.psi[0], 1e-12);
    ASSERT_NEAR(0.0, sc.psi[NF - 2], 1e-12);
    ASSERT(sc.psi[NF - 1] > KILN_DRIFT_PSI_THRESHOLD);
    ASSERT_EQ_INT(1, sc.drifted);
    kiln_drift_window_scores_free(&sc);
    kiln_drift_window_free(w);
    free(rows);
    free(f);
}

int main(void)
{
    test_rng_state = 7;
    fprintf(stderr, "seed 7\n");
    RUN(psi_known_values);
    RUN(ks_known_values);
    RUN(identical_data_no_drift);
    RUN(shifted_copy_flagged);
    RUN(bad_input_refused);
    RUN(labels_only_report);
    RUN(window_matches_batch);
    RUN(window_edges_match_batch);
    RUN(window_blocks_fall_out);
    RUN(window_shift_raises_psi);
    RUN(window_concurrent_adds);
    RUN(window_bad_input_refused);
    RUN(window_wide_rows);
    return test_summary();
}
