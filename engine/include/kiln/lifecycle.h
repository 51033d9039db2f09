/* kiln/lifecycle.h: checkpoints and model files, and the jobs the CLI runs
 * (train, eval, predict) that tie datasets, models and files together.
 *
 *   struct kiln_train_job job = kiln_train_job_default();
 *   job.config_path = "examples/fashion-mnist-mlp.yaml";
 *   job.data_path = "fashion-mnist.h5";
 *   job.out_dir = "runs/mlp";
 *   kiln_train(&job, &result);               // runs/mlp/model.h5, metrics.csv
 *
 * A model file and a checkpoint are the same HDF5 layout (docs/FORMATS.md):
 * /model/config (YAML), /params/<state_dict name>, /optimizer/..., /state,
 * /preprocess. Files are written to a temporary name, fsynced and renamed:
 * a crash never leaves a torn file under the final name.
 */
#ifndef KILN_LIFECYCLE_H
#define KILN_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/config.h"
#include "kiln/data.h"
#include "kiln/nn.h"
#include "kiln/status.h"

struct kiln_backend;

/* What a model file says about itself besides the parameters. */
struct kiln_model_meta {
    struct kiln_model_config model;
    char dataset_sha256[65];
    char *dataset_name;
    int n_classes;
    char **classes;
    double uint8_scale;          /* scale applied to uint8 inputs (1/255) */
    /* /preprocess/transforms: the fitted transforms (kiln/transform.h JSON)
     * the training data went through, applied to raw rows at predict time;
     * NULL when none. */
    char *transforms_json;
    char file_sha256[65];        /* hash of the model file's bytes */
    struct kiln_train_state state;
};
void kiln_model_meta_free(struct kiln_model_meta *meta); /* the fields, not meta */

/* Writes the trainer's model, optimizer and state to path atomically. ds
 * supplies the dataset hash and class names. Refuses (KILN_ERR_NUMERIC) to
 * write a NaN or Inf parameter. */
enum kiln_status kiln_checkpoint_save(const char *path, const struct kiln_config *cfg,
                                      struct kiln_trainer *t, const struct kiln_dataset *ds);
/* Loads a checkpoint into a trainer built from the same model config and
 * dataset (KILN_ERR_SHAPE / KILN_ERR_FORMAT naming the difference), so the
 * run continues bitwise where it stopped. */
enum kiln_status kiln_checkpoint_restore(const char *path, const struct kiln_config *cfg,
                                         struct kiln_trainer *t, const struct kiln_dataset *ds);
/* Opens a model file for inference: builds the model on be for batches of
 * max_batch rows and loads its parameters. Caller frees *model and meta. */
enum kiln_status kiln_model_load(const char *path, struct kiln_backend *be, int64_t max_batch,
                                 struct kiln_model **model, struct kiln_model_meta *meta);

/* --- jobs -------------------------------------------------------------------- */

struct kiln_train_result;

/* Watches a training job from outside the engine's files: the workspace's
 * run recorder is one. Every member may be NULL. */
struct kiln_train_observer {
    /* Once the config, dataset and backend are ready, before the first step
     * (after a resume, state holds where it continues). When the job has no
     * out_dir, on_start must write one into out_dir. A non-OK return stops
     * the job before it trains. */
    enum kiln_status (*on_start)(void *user, const struct kiln_config *cfg,
                                 const struct kiln_dataset *ds, const char *backend,
                                 const struct kiln_train_state *state, char *out_dir,
                                 size_t out_dir_len);
    /* After every optimizer step (global_step is 1-based). */
    void (*on_step)(void *user, int64_t epoch, int64_t global_step, double loss);
    /* After every epoch; checkpoint is the checkpoint file just written, or
     * NULL. A non-OK return stops the job. */
    enum kiln_status (*on_epoch)(void *user, const struct kiln_epoch_report *r,
                                 const char *checkpoint);
    /* At the end, whatever happened: st and its message; on success the final
     * model file and the result. */
    void (*on_end)(void *user, enum kiln_status st, const char *error, const char *model_path,
                   const struct kiln_train_result *result);
    void *user;
};

struct kiln_train_job {
    const char *config_path;
    const char *const *sets;     /* --set key=value overrides */
    int n_sets;
    const char *data_path;
    const char *out_dir;         /* NULL: the observer's on_start chooses it */
    const char *resume_path;     /* checkpoint to continue from, or NULL */
    const char *device;          /* overrides train.device when not NULL */
    int threads;                 /* overrides train.threads when > 0 */
    struct kiln_train_callbacks progress; /* on_step for a progress display; on_epoch
                                             is called after the job's own work */
    struct kiln_train_observer observer;
};

struct kiln_train_result {
    int64_t epochs_run;
    int64_t steps;
    double seconds;
    double samples_per_s;
    bool has_val;
    double val_loss, val_accuracy;
    char model_path[4096];
    char backend[256];           /* which backend ran it */
};

struct kiln_train_job kiln_train_job_default(void);
/* Trains per the job: out_dir/model.h5 (final), out_dir/checkpoint.h5
 * (every train.checkpoint_every epochs), out_dir/metrics.csv (one row per
 * epoch, written as it goes). Fails before training if out_dir is not
 * writable or the model does not fit the data. */
enum kiln_status kiln_train(const struct kiln_train_job *job, struct kiln_train_result *out);

/* Evaluates a model file on one split of a dataset file. */
enum kiln_status kiln_eval(const char *model_path, const char *data_path, const char *split,
                           const char *device, int threads, struct kiln_metrics *out,
                           struct kiln_model_meta *meta);

/* Runs a model over input (HDF5 or CSV) in chunks of batch rows, writing
 * predictions to output (HDF5 or CSV) in bounded memory. input_array names
 * the HDF5 array (NULL: test/X, then X); drop_column a CSV column to skip. */
enum kiln_status kiln_predict(const char *model_path, const char *input, const char *input_array,
                              const char *drop_column, const char *output, int64_t batch,
                              const char *device, int threads, int64_t *rows_out);

#endif
