/* engine/data/data-internal.h: what the files of engine/data/ share with one
 * another (not public API): the importers kiln_data_import dispatches to,
 * split helpers, the streaming CSV tokenizer and number parsing. */
#ifndef KILN_DATA_INTERNAL_H
#define KILN_DATA_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/data.h"

/* --- importers (each fills ds->splits, classes, feature names and source;
 * kiln_data_import sets name, created and the hash) --------------------------- */
enum kiln_status data_import_idx(const struct kiln_import_options *opt, struct kiln_dataset *ds);
enum kiln_status data_import_csv(const struct kiln_import_options *opt, struct kiln_dataset *ds);
enum kiln_status data_import_h5(const struct kiln_import_options *opt, struct kiln_dataset *ds);

/* --- splits and classes -------------------------------------------------------- */
/* Makes a split that takes ownership of X and y (malloc'd, freed with the
 * split, also on failure). */
enum kiln_status data_split_wrap(int64_t n, int feat_ndim, const int64_t *feat_shape,
                                 enum kiln_dtype x_dtype, void *X, enum kiln_dtype y_dtype,
                                 int64_t y_dim, void *y, struct kiln_split **out);
/* Checks one split against the dataset's task: y kind matches n_classes,
 * labels in [0, n_classes), no NaN/Inf in float X or y. Messages name the
 * split, row and column ("train/X[12, 5] is NaN"); KILN_ERR_FORMAT. */
enum kiln_status data_check_split(const struct kiln_dataset *ds, enum kiln_split_id id);
/* Moves a held-out test split out of ds's train split: per class for
 * classifiers (stratified), over all rows for regression. Rows keep their
 * order within each split. KILN_ERR_USAGE when either side would be empty. */
enum kiln_status data_split_holdout(struct kiln_dataset *ds, double fraction, uint64_t seed);
/* Class names: from a comma-separated list (at least min_k names, no empty
 * or duplicate names) or numbered "0".."k-1" when list is NULL. */
enum kiln_status data_classes_make(const char *list, int min_k, char ***out, int *n);

/* --- CSV tokenizer (RFC 4180: quoted fields, doubled quotes, CRLF) ------------ */
struct csv_reader;
/* Opens path for streaming; KILN_ERR_IO naming it when it cannot be read. */
enum kiln_status csv_open(const char *path, char delimiter, struct csv_reader **out);
/* Reads the next record. *fields (n strings, valid until the next call) and
 * *line (1-based line where the record starts); *n = 0 at the end of the
 * file. Blank lines are skipped. KILN_ERR_FORMAT names file and line for an
 * unterminated quote or text after a closing quote. */
enum kiln_status csv_next(struct csv_reader *r, char ***fields, int *n, int64_t *line);
void csv_close(struct csv_reader *r);

/* Parses a finite number that fits float32 (surrounding blanks allowed).
 * Empty text, "nan", "inf" and out-of-range values are not numbers. */
bool data_parse_f32(const char *s, float *out);
/* The same for double precision (label parsing). */
bool data_parse_f64(const char *s, double *out);
/* True when s is empty or only blanks. */
bool data_is_blank(const char *s);

#endif
