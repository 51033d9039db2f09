/* kiln/stats.h: per-feature, per-split statistics of a dataset: the
 * baseline that drift monitoring compares live traffic against.
 *
 *   struct kiln_dataset_stats *s;
 *   kiln_dataset_stats_compute(ds, &s);
 *   char *json = kiln_dataset_stats_to_json(s);   // stored with the version
 *   ...
 *   kiln_dataset_stats_free(s);
 */
#ifndef KILN_STATS_H
#define KILN_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "kiln/data.h"
#include "kiln/status.h"

#define KILN_STATS_BINS 20      /* histogram bins between min and max */
#define KILN_STATS_QUANTILES 5  /* at 1%, 25%, 50%, 75%, 99% */

extern const double kiln_stats_quantile_at[KILN_STATS_QUANTILES];

/* The histogram bin of a finite value x: floor((x - min) / (max - min) * BINS),
 * clamped to [0, BINS - 1], so max falls in the last bin; every value is in
 * the last bin when max == min. Drift checks bin live values with this same
 * function so that they compare like with like. */
static inline int kiln_stats_bin(double x, double min, double max)
{
    if (!(max > min)) return KILN_STATS_BINS - 1;
    double f = (x - min) / (max - min) * KILN_STATS_BINS;
    if (!(f >= 0.0)) return 0;
    if (f >= KILN_STATS_BINS) return KILN_STATS_BINS - 1;
    return (int)f;
}

struct kiln_feature_stats {
    char name[64];              /* feature name, or "f<index>" */
    int64_t count;              /* finite values */
    int64_t missing;            /* NaN/Inf values (0 in a kiln dataset, which refuses them) */
    double mean, std;           /* population std */
    double min, max;
    double quantiles[KILN_STATS_QUANTILES];
    int64_t hist[KILN_STATS_BINS]; /* equal-width bins over [min, max] */
};

struct kiln_split_stats {
    enum kiln_split_id split;
    int64_t rows;
    int64_t n_features;
    struct kiln_feature_stats *features; /* [n_features], scaled as the model sees them
                                            (uint8 features times 1/255) */
    int n_classes;
    int64_t *class_counts;      /* [n_classes] for classification, else NULL */
    int64_t target_dim;         /* regression: targets per row */
    struct kiln_feature_stats *targets; /* [target_dim] for regression, else NULL */
};

struct kiln_dataset_stats {
    int n_splits;
    struct kiln_split_stats splits[KILN_SPLIT_COUNT]; /* in train, val, test order, present ones only */
};

/* Computes every split's statistics (exact quantiles, by sorting each float
 * feature's column or counting a uint8 column's 256 values; OpenMP over
 * features; the same result for any thread count). Quantiles interpolate
 * linearly between order statistics (numpy's default method). Splits must
 * have their arrays loaded (KILN_ERR_USAGE otherwise); a label outside
 * [0, n_classes) is KILN_ERR_FORMAT. Caller frees *out. */
enum kiln_status kiln_dataset_stats_compute(const struct kiln_dataset *ds,
                                            struct kiln_dataset_stats **out);
void kiln_dataset_stats_free(struct kiln_dataset_stats *s);

/* JSON form (documented in docs/FORMATS.md), and back. to_json returns a new
 * string (caller frees) or NULL when out of memory. Compact, keys in this order:
 *   {"splits":[{"split":"train","rows":N,
 *               "features":[{"name":"f0","count":N,"missing":0,"mean":..,"std":..,
 *                            "min":..,"max":..,"quantiles":[p1,p25,p50,p75,p99],
 *                            "hist":[20 counts]}, ...],
 *               "class_counts":[per class]        (classification)
 *               "targets":[objects like features] (regression)}, ...]}
 * Numbers are printed with 17 significant digits, so they read back exactly.
 * A feature with no finite values has mean, std, min, max and quantiles 0.
 * from_json refuses wrong types, sizes, unknown keys and splits out of
 * order with KILN_ERR_FORMAT naming the key ("splits[0].features[3].hist"). */
char *kiln_dataset_stats_to_json(const struct kiln_dataset_stats *s);
enum kiln_status kiln_dataset_stats_from_json(const char *json, struct kiln_dataset_stats **out);

/* A table per split: feature, count, missing, mean, std, min, quantiles, max
 * (at most max_features rows; 0 = all), then class balance or target stats. */
void kiln_dataset_stats_print(const struct kiln_dataset_stats *s, int max_features, FILE *out);

#endif
