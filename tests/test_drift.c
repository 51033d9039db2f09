/* tests/test_drift.c: PSI and binned KS on hand-made histograms, and the
 * drift accumulator on identical, shifted and labelled data. */
#include <math.h>
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

static void make_baseline(const float *rows, int64_t n, struct kiln_split_stats *s,
                          struct kiln_feature_stats f[2], int64_t classes[3])
{
    memset(s, 0, sizeof *s);
    memset(f, 0, 2 * sizeof *f);
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
    struct kiln_split_stats s;
    struct kiln_feature_stats f[2];
    int64_t classes[3];
    make_baseline(rows, N, &s, f, classes);
    struct kiln_drift *d = NULL;
    struct kiln_drift_report *r = NULL;
    ASSERT_OK(kiln_drift_begin(&s, &d));
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
    struct kiln_split_stats s;
    struct kiln_feature_stats f[2];
    int64_t classes[3];
    make_baseline(rows, N, &s, f, classes);
    struct kiln_drift *d = NULL;
    struct kiln_drift_report *r = NULL;
    ASSERT_OK(kiln_drift_begin(&s, &d));
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
    struct kiln_split_stats s;
    struct kiln_feature_stats f[2];
    int64_t classes[3];
    make_baseline(rows, N, &s, f, classes);
    struct kiln_drift *d = NULL;
    struct kiln_drift_report *r = NULL;
    ASSERT_OK(kiln_drift_begin(&s, &d));
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_drift_finish(d, NULL, &r), "no current rows");
    ASSERT_STATUS(KILN_ERR_SHAPE, kiln_drift_add_rows(d, rows, N, 3), "3 features");
    int32_t bad = 3;
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_drift_add_labels(d, &bad, 1), "outside [0, 3)");
    kiln_drift_free(d);
    kiln_drift_free(NULL);
    kiln_drift_report_free(NULL);
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
    return test_summary();
}
