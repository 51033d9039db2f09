/* kiln/config.h: the model and training config, read from YAML.
 *
 *   struct kiln_config *cfg;
 *   const char *sets[] = {"train.epochs=3"};
 *   if (kiln_config_load("mlp.yaml", sets, 1, &cfg) != KILN_OK)
 *       fprintf(stderr, "%s\n", kiln_last_error());   // "mlp.yaml:12:5: train.epochs: ..."
 *   ...
 *   kiln_config_free(cfg);
 *
 * One table (engine/config/schema.c) declares every key with its type,
 * default, range and doc; `kiln config docs` prints it. Unknown keys, wrong
 * types, out-of-range values, duplicate keys, aliases/anchors, files over
 * 1 MiB and nesting deeper than 64 are errors naming file:line:column and the
 * key: never a silent default.
 */
#ifndef KILN_CONFIG_H
#define KILN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/status.h"

#define KILN_CONFIG_MAX_BYTES (1 << 20)
#define KILN_CONFIG_MAX_DEPTH 64
#define KILN_MAX_LAYERS 64
#define KILN_MAX_DIMS 4

enum kiln_layer_kind {
    KILN_LAYER_DENSE,
    KILN_LAYER_RELU,
    KILN_LAYER_LEAKY_RELU,
    KILN_LAYER_TANH,
    KILN_LAYER_SIGMOID,
    KILN_LAYER_GELU,
    KILN_LAYER_SOFTMAX,
    KILN_LAYER_DROPOUT,
    KILN_LAYER_FLATTEN,
};

enum kiln_init_kind {
    KILN_INIT_HE_NORMAL,
    KILN_INIT_HE_UNIFORM,
    KILN_INIT_GLOROT_NORMAL,
    KILN_INIT_GLOROT_UNIFORM,
    KILN_INIT_ZEROS,
};

enum kiln_loss_kind { KILN_LOSS_SOFTMAX_XENT, KILN_LOSS_BCE_LOGITS, KILN_LOSS_MSE };
enum kiln_schedule_kind { KILN_SCHED_CONSTANT, KILN_SCHED_STEP, KILN_SCHED_COSINE };
/* Which of the optimizer kinds; values match enum kiln_optim_kind in kernels.h. */
enum kiln_config_optim { KILN_CFG_SGD, KILN_CFG_ADAM, KILN_CFG_ADAMW };
enum kiln_metric_mode { KILN_MODE_MIN, KILN_MODE_MAX };

struct kiln_layer_config {
    enum kiln_layer_kind kind;
    int64_t units;               /* dense */
    bool bias;                   /* dense, default true */
    enum kiln_init_kind init;    /* dense weights, default he_normal */
    float negative_slope;        /* leaky_relu, default 0.01 */
    float rate;                  /* dropout probability, default 0.5 */
    int line;                    /* where it was declared, for errors */
};

struct kiln_model_config {
    int input_ndim;
    int64_t input_shape[KILN_MAX_DIMS]; /* per sample, e.g. [784] or [1, 28, 28] */
    int n_layers;
    struct kiln_layer_config layers[KILN_MAX_LAYERS];
    enum kiln_loss_kind loss;
    float label_smoothing;       /* softmax_cross_entropy only */
};

struct kiln_train_config {
    int64_t epochs;
    int64_t batch_size;
    uint64_t seed;
    enum kiln_config_optim optimizer;
    float lr;
    float momentum;
    bool nesterov;
    float beta1, beta2, eps;
    float weight_decay;
    enum kiln_schedule_kind schedule;
    int64_t warmup_steps;        /* linear warm-up before the schedule (cosine) */
    int64_t step_size;           /* step schedule: epochs between decays */
    float gamma;                 /* step schedule: decay factor */
    float min_lr;                /* cosine floor */
    float val_fraction;          /* used when the dataset has no /val split */
    char early_stopping_metric[32]; /* val_loss, val_accuracy, ... (patience 0 = off) */
    int64_t patience;            /* epochs without improvement; 0 = off */
    enum kiln_metric_mode early_stopping_mode;
    int64_t checkpoint_every;    /* epochs; 0 = only the final model */
    float clip_norm;             /* 0 = off */
    char device[64];             /* cpu, cuda, cuda:N, auto; the CLI may add ",gemm=..,math=.." */
    int64_t threads;             /* 0 = every core */
};

/* The config's optional card: section, shown on model cards. Each field is
 * NULL when absent. */
struct kiln_card_config {
    char *description;
    char *intended_use;
    char *limitations;
    char *ethical_considerations;
    char *authors;
    char *license;
};

struct kiln_config {
    struct kiln_model_config model;
    struct kiln_train_config train;
    struct kiln_card_config card;
    char *source_yaml;           /* the whole file as read (NUL-terminated) */
    char path[4096];
};

/* Loads and validates path, applying the `key=value` overrides in sets
 * (n_sets of them) before validation. On success *out is owned by the caller
 * (kiln_config_free); on failure *out is NULL and the message names
 * file:line:column and the key. */
enum kiln_status kiln_config_load(const char *path, const char *const *sets, int n_sets,
                                  struct kiln_config **out);
/* The same from a YAML string; name is used in messages in place of a path. */
enum kiln_status kiln_config_parse(const char *yaml, size_t len, const char *name,
                                   const char *const *sets, int n_sets,
                                   struct kiln_config **out);
/* Parses only a `model:` document (as stored in a checkpoint's /model/config),
 * with the same checks; any other top-level key is an error. On failure *out
 * is left as it was. */
enum kiln_status kiln_model_config_parse(const char *yaml, size_t len, const char *name,
                                         struct kiln_model_config *out);
void kiln_config_free(struct kiln_config *cfg);

/* The model section as canonical YAML (a `model:` document that
 * kiln_model_config_parse reads back to an equal struct). Caller frees;
 * NULL when out of memory. Stored in checkpoints as /model/config. */
char *kiln_model_config_to_yaml(const struct kiln_model_config *m);

/* Writes the schema table (every key, type, default, range, doc) to f. */
void kiln_config_print_docs(FILE *f);

/* Names for enum values, as they appear in YAML. */
const char *kiln_layer_kind_name(enum kiln_layer_kind kind);
const char *kiln_loss_kind_name(enum kiln_loss_kind kind);

#endif
