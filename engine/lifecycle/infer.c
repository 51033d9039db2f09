/* engine/lifecycle/infer.c: the inference steps kiln predict and kiln score
 * share (infer.h). */
#include <stdlib.h>
#include <string.h>

#include "kiln/backend.h"
#include "kiln/transform.h"
#include "lifecycle/infer.h"

void infer_model_close(struct infer_model *im)
{
    kiln_transform_list_free(im->tl);
    free(im->tx);
    kiln_model_free(im->m);
    kiln_model_meta_free(&im->meta);
    kiln_backend_free(im->be);
    memset(im, 0, sizeof *im);
}

enum kiln_status infer_model_open(struct infer_model *im, const char *model_path,
                                  const char *device, int threads, int64_t batch)
{
    char said[256];
    memset(im, 0, sizeof *im);
    im->path = model_path;
    im->batch = batch;
    enum kiln_status st = kiln_backend_open(device, threads, &im->be, said, sizeof said);
    if (st == KILN_OK) st = kiln_model_load(model_path, im->be, batch, &im->m, &im->meta);
    if (st != KILN_OK) goto cleanup;
    im->in = kiln_model_input_size(im->m);
    im->k = kiln_model_output_size(im->m);
    im->raw = im->in;
    /* A model trained on transformed data takes raw rows and applies the
     * fitted transforms it carries, exactly as they made its training data. */
    if (im->meta.transforms_json) {
        st = kiln_transform_list_from_json(im->meta.transforms_json, &im->tl);
        if (st != KILN_OK) {
            kiln_error_context(st, "%s: /preprocess/transforms", model_path);
            goto cleanup;
        }
        im->raw = kiln_transform_in_width(im->tl);
        if (kiln_transform_out_width(im->tl) != im->in) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: its transforms give %lld features but the "
                             "model takes %lld", model_path,
                             (long long)kiln_transform_out_width(im->tl), (long long)im->in);
            goto cleanup;
        }
        im->tx = malloc((size_t)(batch * im->in) * sizeof(float));
        if (!im->tx) st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", model_path);
    }
cleanup:
    if (st != KILN_OK) infer_model_close(im);
    return st;
}

enum kiln_status infer_bind_rows(struct infer_model *im, struct kiln_rows_reader *r,
                                 const char *input)
{
    const char *made_by = kiln_rows_transforms(r);
    if (made_by && !im->tl)
        return kiln_errorf(KILN_ERR_USAGE, "%s: its rows were made by kiln data transform, and %s "
                           "was trained on untransformed rows: give it the rows before the "
                           "transforms", input, im->path);
    if (made_by && strcmp(made_by, im->meta.transforms_json) != 0)
        return kiln_errorf(KILN_ERR_USAGE, "%s: its rows were made by other transforms than the "
                           "ones %s applies: give it the untransformed rows (or the dataset "
                           "version it was trained on)", input, im->path);
    if (made_by) {
        /* The model's own transforms made these rows: they go in as they are. */
        kiln_transform_list_free(im->tl);
        free(im->tx);
        im->tl = NULL;
        im->tx = NULL;
        im->raw = im->in;
    }
    if (kiln_rows_width(r) == im->raw) return KILN_OK;
    return kiln_errorf(KILN_ERR_SHAPE, "%s: rows have %lld features, the model takes %lld%s",
                       input, (long long)kiln_rows_width(r), (long long)im->raw,
                       im->tl ? " (before its transforms)" : "");
}

struct kiln_pred_meta infer_pred_meta(const struct infer_model *im)
{
    bool cls = im->meta.model.loss == KILN_LOSS_SOFTMAX_XENT;
    return (struct kiln_pred_meta){
        .model = im->path,
        .model_sha256 = im->meta.file_sha256,
        .n_classes = cls ? (int)im->k : 0,
        .classes = cls && im->meta.n_classes == im->k ? im->meta.classes : NULL,
        .out_dim = im->k,
    };
}

enum kiln_status infer_model_prep(const struct infer_model *im, const float *x, int64_t rows,
                                  float *tx, const float **ready)
{
    *ready = NULL;
    if (!im->tl) {
        *ready = x;
        return KILN_OK;
    }
    enum kiln_status st = kiln_transform_apply_rows(im->tl, x, rows, tx);
    if (st == KILN_OK) *ready = tx;
    return st;
}

enum kiln_status infer_model_run(struct infer_model *im, const float *x, int64_t rows, float *y)
{
    const float *ready = NULL;
    enum kiln_status st = infer_model_prep(im, x, rows, im->tx, &ready);
    if (st == KILN_OK) st = kiln_model_predict(im->m, ready, rows, y);
    return st;
}
