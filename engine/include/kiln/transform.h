/* kiln/transform.h: dataset transforms recorded as data, not code.
 *
 *   struct kiln_transform_list *tl;
 *   kiln_transform_parse("standardize", NULL, &tl);          // from the CLI
 *   struct kiln_dataset *child;
 *   kiln_transform_fit_apply(tl, parent, &child);           // fits on train, applies to every split
 *   char *json = kiln_transform_list_to_json(tl);           // now holds the fitted means/stds
 *
 * A model trained on a transformed dataset stores the fitted list under
 * /preprocess/transforms and applies it to every row at predict, score and
 * serve time with kiln_transform_apply_rows, so inputs are transformed
 * identically everywhere.
 */
#ifndef KILN_TRANSFORM_H
#define KILN_TRANSFORM_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/data.h"
#include "kiln/status.h"

enum kiln_transform_kind {
    KILN_TF_STANDARDIZE,   /* (x - mean) / std per feature, fitted on train; std 0 -> 1 */
    KILN_TF_MINMAX,        /* (x - min) / (max - min) per feature, fitted on train */
    KILN_TF_ONEHOT,        /* feature column of integer codes -> one indicator column per
                              code seen in train (unseen codes: all zeros) */
    KILN_TF_CAST_F32,      /* uint8 X -> float32 (v * 1/255, the same values the model sees) */
    KILN_TF_SELECT,        /* keep only the named/indexed feature columns, in that order */
    KILN_TF_DROP,          /* drop the named/indexed feature columns */
    KILN_TF_FILTER_LABELS, /* keep rows whose class is listed; classes renumbered in list order */
};

struct kiln_transform {
    enum kiln_transform_kind kind;
    /* the columns or classes as the spec gave them (names or indices), kept
     * for resolving at fit time and for describing the step */
    int n_names;
    char **names;
    /* columns (ONEHOT: one; SELECT/DROP: several, DROP's sorted ascending;
     * STANDARDIZE/MINMAX: the ones scaled, none meaning all) as feature
     * indices into the input of this step, resolved from names at fit time */
    int64_t n_columns;
    int64_t *columns;
    /* FILTER_LABELS: the kept class indices (of the input) */
    int n_labels;
    int32_t *labels;
    /* fitted parameters (per input feature for STANDARDIZE/MINMAX, identity
     * 0 and 1 for columns not scaled; the codes for ONEHOT, ascending, as the
     * model sees them: a uint8 code v is stored as v * 1/255) */
    int64_t n_params;
    double *a, *b;          /* STANDARDIZE: mean, std; MINMAX: min, max; ONEHOT: codes in a */
    int64_t in_width, out_width; /* features before and after this step; 0 until fitted */
};

struct kiln_transform_list {
    int n;
    struct kiln_transform *steps;
};

/* Parses one CLI transform spec into a new list (*list NULL) or appends to
 * *list: "standardize", "minmax", "onehot=COL", "cast=float32",
 * "select=COL,COL", "drop=COL,COL", "filter-labels=CLASS,CLASS".
 * "standardize=COL,..." and "minmax=COL,..." scale only those columns (the
 * others pass through unchanged). A column is a feature name, "f<index>" or
 * a plain index (a name that matches wins); a class is a name or an index.
 * Names are resolved against the dataset when fitting. KILN_ERR_USAGE for a
 * bad spec; *list is then as it was. */
enum kiln_status kiln_transform_parse(const char *spec, struct kiln_transform_list **list);
void kiln_transform_list_free(struct kiln_transform_list *tl);

/* Fits every step on parent's train split (in order) and applies the list to
 * every split, giving a new dataset (caller frees) whose feature names,
 * classes and source describe the result; parent is unchanged. Errors name
 * the step and the column.
 *
 * The child: STANDARDIZE, MINMAX, ONEHOT and CAST_F32 give float32 X (uint8
 * input scaled by 1/255 first); SELECT, DROP and FILTER_LABELS keep the
 * dtype. Per-row shapes ([28, 28]) survive the steps that keep every column
 * in place (STANDARDIZE, MINMAX, CAST_F32, FILTER_LABELS); SELECT, DROP and
 * ONEHOT make X [n, width]. ONEHOT puts its indicator columns where the
 * coded column was, named "COL=code", codes in ascending order (at most
 * KILN_TF_ONEHOT_MAX codes). STANDARDIZE uses the population std; a
 * constant column gets std 1, and MINMAX maps a constant column to x - min.
 * Feature names follow the steps (a dataset without names gets "f<index>"
 * names once a step moves columns). name is the parent's, parent its
 * sha256, source "transform of NAME@SHA12: step, step", and sha256 is set. */
#define KILN_TF_ONEHOT_MAX 1024

enum kiln_status kiln_transform_fit_apply(struct kiln_transform_list *tl,
                                          const struct kiln_dataset *parent,
                                          struct kiln_dataset **child);

/* Applies a fitted list to rows of float features (in_width wide, already
 * scaled as the model sees uint8 data) into out (out_width wide), computing
 * bit for bit what kiln_transform_fit_apply stored. Row filters
 * (FILTER_LABELS) do not apply to unlabelled rows and are skipped. in == out
 * is allowed only when the widths are equal. KILN_ERR_USAGE for a list that
 * is not fitted (or is inconsistent), KILN_ERR_NOMEM. */
enum kiln_status kiln_transform_apply_rows(const struct kiln_transform_list *tl, const float *in,
                                           int64_t rows, float *out);
/* Widths of a fitted list's input and output; 0 for an empty or unfitted list. */
int64_t kiln_transform_in_width(const struct kiln_transform_list *tl);
int64_t kiln_transform_out_width(const struct kiln_transform_list *tl);

/* JSON form (docs/FORMATS.md) with the fitted parameters, and back.
 * to_json returns a new compact string (caller frees), NULL when out of
 * memory:
 *   {"transforms":[{"kind":"standardize","names":[..],"in_width":N,"out_width":N,
 *                   ...fitted keys, only when in_width > 0...}, ...]}
 * kinds: standardize, minmax, onehot, cast, select, drop, filter-labels;
 * fitted keys: standardize "columns","mean","std"; minmax "columns","min",
 * "max"; onehot "column","codes"; select and drop "columns" (drop: sorted);
 * filter-labels "labels". Doubles are printed with 17 digits, so they read
 * back exactly. from_json refuses unknown keys and wrong types, and checks
 * that a fitted list is consistent (widths chain, parameter counts, column
 * ranges): KILN_ERR_FORMAT naming the key ("transforms[1].mean"). */
char *kiln_transform_list_to_json(const struct kiln_transform_list *tl);
enum kiln_status kiln_transform_list_from_json(const char *json,
                                               struct kiln_transform_list **out);

#endif
