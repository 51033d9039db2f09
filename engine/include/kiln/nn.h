/* kiln/nn.h: models, training and metrics. Device-free: everything runs on
 * a struct kiln_backend (kernels/kernels.h), and nothing here reads files.
 *
 *   struct kiln_trainer *t;
 *   kiln_trainer_create(cfg, dataset, backend, &t);   // builds and plans the model
 *   kiln_trainer_run(t, &callbacks);                   // epochs, eval, early stopping
 *   struct kiln_model *m = kiln_trainer_model(t);      // borrowed
 *   kiln_trainer_free(t);
 *
 * Describe, allocate, run: kiln_model_create plans every buffer for the
 * largest batch once; a training step allocates nothing. Parameters,
 * gradients and optimizer state are each one flat buffer with named views
 * (`1.weight`, `1.bias`, ... as a PyTorch nn.Sequential state_dict names
 * them, with PyTorch's layouts), so one op updates every parameter.
 */
#ifndef KILN_NN_H
#define KILN_NN_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/config.h"
#include "kiln/data.h"
#include "kiln/status.h"

struct kiln_backend;
struct kiln_model;
struct kiln_trainer;

/* --- model ------------------------------------------------------------------ */

/* A named view into the flat parameter buffer. */
struct kiln_param_view {
    char name[32];          /* "1.weight" */
    int ndim;
    int64_t shape[2];       /* Linear weight [out, in]; bias [out] */
    int64_t offset, size;   /* in floats */
};

/* Builds the model cfg declares on backend be, planned for batches of up to
 * max_batch rows; parameters are zero until kiln_model_init_params or
 * kiln_model_set_params. Checks every layer's shapes (KILN_ERR_CONFIG naming
 * the layer and its YAML line). The model borrows be. */
enum kiln_status kiln_model_create(const struct kiln_model_config *cfg, struct kiln_backend *be,
                                   int64_t max_batch, struct kiln_model **out);
void kiln_model_free(struct kiln_model *m);

/* Draws every weight from its initialiser with a counter-based RNG keyed by
 * seed and the tensor's index (biases start at zero). */
enum kiln_status kiln_model_init_params(struct kiln_model *m, uint64_t seed);

int64_t kiln_model_param_count(const struct kiln_model *m);
int kiln_model_tensor_count(const struct kiln_model *m);
const struct kiln_param_view *kiln_model_tensor(const struct kiln_model *m, int i);
int64_t kiln_model_input_size(const struct kiln_model *m);
int64_t kiln_model_output_size(const struct kiln_model *m);
int64_t kiln_model_max_batch(const struct kiln_model *m);
const struct kiln_model_config *kiln_model_config(const struct kiln_model *m);

/* Copies the flat parameter (or gradient) buffer to/from host memory of
 * kiln_model_param_count floats. set refuses NaN/Inf (KILN_ERR_NUMERIC). */
enum kiln_status kiln_model_get_params(const struct kiln_model *m, float *host);
enum kiln_status kiln_model_set_params(struct kiln_model *m, const float *host);
enum kiln_status kiln_model_get_grads(const struct kiln_model *m, float *host);

/* Runs the model on rows inputs (host memory, rows * input_size floats,
 * rows <= max_batch) in inference mode and copies rows * output_size floats
 * to out. Classifiers trained with softmax cross-entropy return
 * probabilities (softmax applied), BCE models sigmoid probabilities, MSE
 * models raw outputs. */
enum kiln_status kiln_model_predict(struct kiln_model *m, const float *host_x, int64_t rows,
                                    float *host_out);

/* kiln_model_predict in two halves, for a caller that overlaps the next
 * input's upload with this pass (kiln score on a device):
 * _queue queues the inference forward pass over rows inputs already in the
 * model's backend memory at dev_x (rows * input_size floats, rows <=
 * max_batch; the caller owns it) and returns, on a device backend before
 * the pass has run. Until the matching _collect returns, dev_x must not be
 * written and nothing else may run on m (no second _queue, predict or
 * training step): the pass reads dev_x and writes m's own buffers.
 * _collect copies the rows * output_size outputs of the queued pass to
 * host_out and waits for it; rows must be the queued count, else
 * KILN_ERR_INTERNAL. Errors a kernel finds while it runs are reported here.
 * After _collect (failed or not) nothing is queued. */
enum kiln_status kiln_model_predict_queue(struct kiln_model *m, const float *dev_x, int64_t rows);
enum kiln_status kiln_model_predict_collect(struct kiln_model *m, int64_t rows, float *host_out);

/* One forward + loss + backward on a batch already in host memory, filling
 * the gradient buffer (mean loss over rows in *loss). labels: int32 [rows]
 * for softmax cross-entropy, float32 [rows, output_size] otherwise. For
 * tests and tools; training uses the trainer's planned path. */
enum kiln_status kiln_model_loss_grad(struct kiln_model *m, const float *host_x,
                                      const void *host_labels, int64_t rows, double *loss);

/* --- metrics ------------------------------------------------------------------ */

struct kiln_metrics {
    int64_t n;                  /* rows evaluated */
    double loss;                /* mean loss */
    /* classification (n_classes > 0) */
    int n_classes;
    double accuracy;
    int64_t *confusion;         /* [n_classes * n_classes], row = true, col = predicted */
    double *precision, *recall, *f1; /* per class; 0 when undefined */
    double macro_f1;
    /* regression */
    double mse, mae, r2;
};

void kiln_metrics_free(struct kiln_metrics *m); /* frees the arrays inside, not m */

/* Evaluates the model on rows idx[0..n) of split (all rows when idx is
 * NULL) in batches of the model's max batch. */
enum kiln_status kiln_evaluate(struct kiln_model *m, const struct kiln_split *split,
                               const int64_t *idx, int64_t n, int n_classes,
                               struct kiln_metrics *out);

/* --- training ------------------------------------------------------------------- */

struct kiln_epoch_report {
    int64_t epoch;              /* 1-based */
    int64_t epochs;             /* total planned */
    int64_t step;               /* global steps so far */
    double lr;                  /* learning rate at the epoch's last step */
    double train_loss;          /* mean over the epoch's batches */
    double seconds, samples_per_s;
    bool has_val;
    struct kiln_metrics val;    /* valid when has_val */
    bool improved;              /* the early-stopping metric improved */
    bool stopping;              /* early stopping ends the run after this epoch */
};

struct kiln_train_callbacks {
    /* After every step (may be NULL). */
    void (*on_step)(void *user, int64_t epoch, int64_t step_in_epoch, int64_t steps_per_epoch,
                    double loss, double samples_per_s);
    /* After every epoch's evaluation (may be NULL); a non-OK return stops the
     * run with that status. Checkpoints and metrics files are written here. */
    enum kiln_status (*on_epoch)(void *user, struct kiln_trainer *t,
                                 const struct kiln_epoch_report *r);
    void *user;
};

/* Everything besides the parameters and optimizer buffers that a resumed
 * run needs to continue bitwise where it stopped. Shuffles and dropout masks
 * are drawn from counter-based streams keyed by (seed, epoch, step), so the
 * seed and the counters are the whole RNG state. */
struct kiln_train_state {
    int64_t epoch;              /* completed epochs */
    int64_t step;               /* completed optimizer steps */
    uint64_t seed;
    double best_metric;         /* early stopping */
    int64_t best_epoch;
    int64_t bad_epochs;
};

/* Builds the model from cfg for ds (shapes checked against ds's train split
 * and classes: KILN_ERR_SHAPE naming both), initialises it from the seed,
 * and plans the validation rows (ds's val split, else a seeded val_fraction
 * of train). Borrows cfg, ds and be for its lifetime. */
enum kiln_status kiln_trainer_create(const struct kiln_config *cfg, const struct kiln_dataset *ds,
                                     struct kiln_backend *be, struct kiln_trainer **out);
void kiln_trainer_free(struct kiln_trainer *t);

/* Runs the remaining epochs (from the state's epoch to train.epochs),
 * stopping early when patience runs out. A NaN or Inf in the loss or a
 * gradient stops the run with KILN_ERR_NUMERIC naming the epoch, step and
 * tensor; the parameters are then those of the last good step. */
enum kiln_status kiln_trainer_run(struct kiln_trainer *t, const struct kiln_train_callbacks *cb);

struct kiln_model *kiln_trainer_model(struct kiln_trainer *t);
struct kiln_train_state kiln_trainer_state(const struct kiln_trainer *t);
void kiln_trainer_set_state(struct kiln_trainer *t, const struct kiln_train_state *s);
/* Floats of optimizer state (0 for plain SGD) and copies to/from host. */
int64_t kiln_trainer_optim_size(const struct kiln_trainer *t);
enum kiln_status kiln_trainer_get_optim(const struct kiln_trainer *t, float *host);
enum kiln_status kiln_trainer_set_optim(struct kiln_trainer *t, const float *host);

/* Learning rate of cfg's schedule at a 0-based global step in epoch
 * (0-based), with steps_per_epoch steps an epoch. */
double kiln_schedule_lr(const struct kiln_train_config *cfg, int64_t step, int64_t epoch,
                        int64_t steps_per_epoch);

#endif
