/* engine/lifecycle/infer.h: what kiln predict and kiln score share: a model
 * loaded for inference with the transforms it carries, the check that an
 * input's rows fit it, and the per-chunk step (transforms, forward pass).
 * Internal to libkiln. */
#ifndef KILN_LIFECYCLE_INFER_H
#define KILN_LIFECYCLE_INFER_H

#include <stdint.h>

#include "kiln/data.h"
#include "kiln/lifecycle.h"

struct kiln_transform_list;

struct infer_model {
    const char *path;            /* the model file (borrowed) */
    struct kiln_backend *be;
    struct kiln_model *m;
    struct kiln_model_meta meta;
    struct kiln_transform_list *tl; /* NULL when the model takes raw rows */
    int64_t batch;               /* most rows per infer_model_run */
    int64_t raw, in, k;          /* raw row width, model input width, outputs */
    float *tx;                   /* batch * in transformed rows (tl only) */
};

/* Loads model_path on device for batches of up to batch rows, with its
 * fitted transforms. On failure everything is released; infer_model_close
 * frees a loaded one (and accepts a zeroed one). */
enum kiln_status infer_model_open(struct infer_model *im, const char *model_path,
                                  const char *device, int threads, int64_t batch);
void infer_model_close(struct infer_model *im);
/* Fits im to r's rows. Rows a dataset version's transforms already made
 * (kiln_rows_transforms) that are the model's own transforms go to the
 * model as they are: im drops its transforms (raw becomes in), rather than
 * transform them twice. KILN_ERR_USAGE when the rows were made by other
 * transforms than the model's, or the model takes untransformed rows;
 * KILN_ERR_SHAPE naming input when the rows are not as wide as the model
 * takes them. */
enum kiln_status infer_bind_rows(struct infer_model *im, struct kiln_rows_reader *r,
                                 const char *input);
/* The predictions writer's metadata for this model (pointers into im). */
struct kiln_pred_meta infer_pred_meta(const struct infer_model *im);
/* The host half of infer_model_run: the transforms of rows (<= batch) raw
 * rows x into tx (batch * in floats; unused and may be NULL without
 * transforms). *ready is then what the model takes: tx, or x itself. */
enum kiln_status infer_model_prep(const struct infer_model *im, const float *x, int64_t rows,
                                  float *tx, const float **ready);
/* Runs rows (<= batch) raw rows x through the transforms and the model into
 * y (rows * k). The rows must be finite, and every caller's source checks
 * them before they get here: kiln_rows_read refuses NaN/Inf with the row and
 * column, and so does the server for each request. A second check here was
 * 6% of kiln score's compute. Not reentrant: one caller at a time per im. */
enum kiln_status infer_model_run(struct infer_model *im, const float *x, int64_t rows, float *y);

#endif
