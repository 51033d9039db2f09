/* kiln/drift.h: data drift: current data compared with a training baseline
 * (the per-feature statistics of kiln/stats.h), feature by feature.
 *
 *   struct kiln_drift *d;
 *   kiln_drift_begin(&baseline->splits[0], &d);          // the train split's stats
 *   kiln_drift_add_rows(d, rows, n, width);               // as often as needed
 *   kiln_drift_add_labels(d, labels, n);                  // optional
 *   struct kiln_drift_report *r;
 *   kiln_drift_finish(d, NULL, &r);                       // sorted by PSI, flags set
 *   if (r->drifted || r->classes_drifted) ...
 *   kiln_drift_report_free(r);
 *   kiln_drift_free(d);
 *
 * Both statistics compare histograms over the baseline's KILN_STATS_BINS
 * equal-width bins on [min, max]: current values are binned with
 * kiln_stats_bin on the baseline's min and max, so values outside that range
 * fall into the end bins. A feature constant in the baseline (min == max, all
 * of it in the last bin) is the exception: a current value equal to it goes
 * to the last bin and any other value to bin 0, so that a change shows.
 *
 * Population stability index, over bins i with shares b_i (baseline) and
 * c_i (current):  PSI = sum_i (c_i - b_i) ln(c_i / b_i), where an empty bin's
 * share is taken as KILN_DRIFT_EPS (1e-4) so that the logarithm stays finite.
 * Kolmogorov-Smirnov: KS = max_k |B_k - C_k| over the cumulative shares B, C
 * at the bins' upper edges: the two-sample statistic, approximated at the
 * baseline's bin resolution (it can only be smaller than the exact one).
 * A feature is flagged (drifted) when PSI > psi_threshold or KS > ks_threshold.
 */
#ifndef KILN_DRIFT_H
#define KILN_DRIFT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/stats.h"
#include "kiln/status.h"

#define KILN_DRIFT_EPS 1e-4              /* share of an empty bin in PSI */
#define KILN_DRIFT_PSI_THRESHOLD 0.2     /* default thresholds */
#define KILN_DRIFT_KS_THRESHOLD 0.1

/* PSI of two histograms of n bins (counts, each summing to > 0; an all-zero
 * histogram gives 0). */
double kiln_drift_psi(const int64_t *base, const int64_t *cur, int n);
/* Largest distance between the two histograms' cumulative shares (0 when
 * either is all zero). */
double kiln_drift_ks(const int64_t *base, const int64_t *cur, int n);

struct kiln_drift_options {
    double psi_threshold;        /* <= 0: KILN_DRIFT_PSI_THRESHOLD */
    double ks_threshold;         /* <= 0: KILN_DRIFT_KS_THRESHOLD */
};

struct kiln_drift_feature {
    char name[64];
    int64_t index;               /* column in the rows */
    double psi, ks;
    double base_mean, cur_mean;  /* cur_mean is 0 without finite current values */
    int64_t cur_count;           /* finite current values */
    int64_t cur_missing;         /* NaN/Inf current values (not binned) */
    bool drifted;
};

struct kiln_drift_report {
    int64_t n_features;
    struct kiln_drift_feature *features; /* [n_features], by PSI, largest first
                                            (ties: by KS, then by index) */
    int64_t drifted;             /* flagged features */
    int64_t base_rows, cur_rows;
    int64_t cur_labels;          /* current class labels added */
    double psi_threshold, ks_threshold;
    /* Class distribution (when the baseline has class counts and labels were
     * added): PSI over the classes, flagged against psi_threshold. */
    bool has_classes;
    int n_classes;
    int64_t *base_class_counts, *cur_class_counts; /* [n_classes] */
    double class_psi;
    bool classes_drifted;
};

struct kiln_drift;

/* Starts a comparison against the statistics of one baseline split (copied:
 * base need not outlive the accumulator). KILN_ERR_USAGE when the split has
 * no features or no rows. Caller frees *out with kiln_drift_free. */
enum kiln_status kiln_drift_begin(const struct kiln_split_stats *base, struct kiln_drift **out);
void kiln_drift_free(struct kiln_drift *d);
/* Adds n current rows of width floats (row-major), scaled as the model sees
 * them (uint8 features times 1/255). KILN_ERR_SHAPE when width differs from
 * the baseline's feature count. */
enum kiln_status kiln_drift_add_rows(struct kiln_drift *d, const float *rows, int64_t n,
                                     int64_t width);
/* Adds n current class labels; one outside [0, n_classes) is KILN_ERR_FORMAT,
 * and a baseline without class counts is KILN_ERR_USAGE. */
enum kiln_status kiln_drift_add_labels(struct kiln_drift *d, const int32_t *labels, int64_t n);
/* Adds every row (and, for classes, every label) of a loaded split. */
enum kiln_status kiln_drift_add_split(struct kiln_drift *d, const struct kiln_split *s);
/* The report (opt may be NULL: default thresholds); d stays usable. KILN_ERR_USAGE
 * when neither rows nor labels were added. With labels only (a prediction log
 * without its inputs) cur_rows is 0, no feature is flagged, and only the
 * class distribution is compared. Caller frees *out. */
enum kiln_status kiln_drift_finish(const struct kiln_drift *d, const struct kiln_drift_options *opt,
                                   struct kiln_drift_report **out);
void kiln_drift_report_free(struct kiln_drift_report *r);

/* A table (feature, PSI, KS, baseline mean, current mean, flag; at most
 * max_rows features, 0 = all), the class line and the summary line
 * "N of M features drifted"; without current rows, a line saying that
 * feature drift was not checked instead of the table. */
void kiln_drift_report_print(const struct kiln_drift_report *r, int64_t max_rows, FILE *out);
/* The report as one JSON object (max_rows as for print), a new string (caller
 * frees) or NULL when out of memory:
 *   {"psi_threshold":..,"ks_threshold":..,"baseline_rows":N,"current_rows":N,
 *    "current_labels":N,"features_total":M,"features_checked":bool (current_rows > 0),
 *    "drifted":N,
 *    "features":[{"name":..,"index":..,"psi":..,"ks":..,"baseline_mean":..,
 *                 "current_mean":..,"drifted":bool}, ...],
 *    "classes":{"psi":..,"drifted":bool,"baseline":[counts],"current":[counts]} (labelled) } */
char *kiln_drift_report_to_json(const struct kiln_drift_report *r, int64_t max_rows);

/* Sliding-window drift for a server: the same statistics over the most
 * recent rows of live traffic. Rows accumulate in blocks of window_rows / 8
 * rows; the window is the newest 8 complete blocks plus the one filling, so
 * a snapshot covers between 7/8 and 9/8 of window_rows rows (or every row so
 * far, until that many have arrived). All functions are thread-safe.
 *
 *   struct kiln_drift_window *w;
 *   kiln_drift_window_create(&stats->splits[0], 100000, &w);
 *   kiln_drift_window_add(w, x, rows, width, classes);   // per request/batch
 *   struct kiln_drift_window_scores s;
 *   kiln_drift_window_scores(w, &s);                      // for /metrics
 *   ... s.psi[i], s.ks[i] ...
 *   kiln_drift_window_scores_free(&s);
 *   kiln_drift_window_free(w);
 */
#define KILN_DRIFT_WINDOW_BLOCKS 8

struct kiln_drift_window;

/* KILN_ERR_USAGE for window_rows < KILN_DRIFT_WINDOW_BLOCKS or a baseline
 * kiln_drift_begin refuses. base is copied. Caller frees *out. */
enum kiln_status kiln_drift_window_create(const struct kiln_split_stats *base, int64_t window_rows,
                                          struct kiln_drift_window **out);
void kiln_drift_window_free(struct kiln_drift_window *w);
/* Adds n rows of width floats (scaled as the model sees them) and, when not
 * NULL, their n predicted classes (counted against the baseline's class
 * shares). KILN_ERR_SHAPE for a width other than the baseline's. */
enum kiln_status kiln_drift_window_add(struct kiln_drift_window *w, const float *rows, int64_t n,
                                       int64_t width, const int32_t *classes);

struct kiln_drift_window_scores {
    int64_t rows;                /* rows in the window now */
    int64_t n_features;
    char (*names)[64];           /* [n_features] feature names */
    double *psi, *ks;            /* [n_features] (0 while rows == 0) */
    double max_psi, max_ks;
    int64_t drifted;             /* features over the default thresholds */
    bool has_classes;
    double class_psi;            /* prediction classes against training's labels */
};
/* Fills *out with the window's statistics now. Caller frees with
 * kiln_drift_window_scores_free. */
enum kiln_status kiln_drift_window_scores(struct kiln_drift_window *w,
                                          struct kiln_drift_window_scores *out);
void kiln_drift_window_scores_free(struct kiln_drift_window_scores *s);

#endif
