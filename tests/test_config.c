/* tests/test_config.c: the YAML config loader: values, defaults, every error
 * (status, file:line:col and key in the message), --set, the model YAML
 * round trip, the docs, and a no-crash smoke over broken inputs. */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/config.h"
#include "test.h"

/* A minimal valid model, 4 lines; tests append a train: section after it. */
#define MODEL_OK "model:\n  input: [4]\n  layers:\n    - {type: dense, units: 3}\n"

/* Parses yaml as "t.yaml" with the given sets; frees whatever it built. */
static enum kiln_status try_parse_sets(const char *yaml, const char *const *sets, int n)
{
    struct kiln_config *cfg = NULL;
    enum kiln_status st = kiln_config_parse(yaml, strlen(yaml), "t.yaml", sets, n, &cfg);
    if ((st == KILN_OK) != (cfg != NULL)) {
        fprintf(stderr, "kiln_config_parse: status %s but cfg %p\n", kiln_status_name(st),
                (void *)cfg);
        abort();
    }
    kiln_config_free(cfg);
    return st;
}

static enum kiln_status try_parse(const char *yaml) { return try_parse_sets(yaml, NULL, 0); }

static const char *data_dir(void)
{
    const char *d = getenv("KILN_TEST_DATA");
    return d ? d : "tests/data";
}

static void data_path(char *buf, size_t len, const char *rel)
{
    snprintf(buf, len, "%s/%s", data_dir(), rel);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) fwrite(chunk, 1, n, mem);
    fclose(mem);
    fclose(f);
    return buf;
}

/* --- valid configs ------------------------------------------------------------------ */

static const char full_yaml[] =
    "model:\n"
    "  input: [1, 28, 28]\n"
    "  layers:\n"
    "    - type: flatten\n"
    "    - type: dense\n"
    "      units: 300\n"
    "      bias: false\n"
    "      init: xavier_uniform\n"
    "    - {type: leaky_relu, negative_slope: 0.2}\n"
    "    - {type: dropout, rate: 0.25}\n"
    "    - {type: dense, units: 10, init: zeros}\n"
    "    - {type: tanh}\n"
    "    - {type: sigmoid}\n"
    "    - {type: gelu}\n"
    "    - {type: softmax}\n"
    "    - {type: relu}\n"
    "  loss: softmax_cross_entropy\n"
    "  label_smoothing: 0.1\n"
    "train:\n"
    "  epochs: 7\n"
    "  batch_size: 64\n"
    "  seed: 123\n"
    "  optimizer:\n"
    "    type: sgd\n"
    "    lr: 0.05\n"
    "    momentum: 0.9\n"
    "    nesterov: true\n"
    "    weight_decay: 5e-4\n"
    "  schedule:\n"
    "    type: step\n"
    "    warmup_steps: 20\n"
    "    step_size: 3\n"
    "    gamma: 0.5\n"
    "  val_fraction: 0.2\n"
    "  early_stopping:\n"
    "    metric: val_accuracy\n"
    "    patience: 4\n"
    "  checkpoint_every: 2\n"
    "  clip_norm: 1.5\n"
    "  device: cuda:1\n"
    "  threads: 8\n"
    "card:\n"
    "  description: A test net.\n"
    "  limitations: |\n"
    "    Line one.\n"
    "    Line <two> & \"three\".\n"
    "  license: \"MIT\"\n";

TEST(full_config)
{
    struct kiln_config *c = NULL;
    ASSERT_OK(kiln_config_parse(full_yaml, strlen(full_yaml), "full.yaml", NULL, 0, &c));
    const struct kiln_model_config *m = &c->model;
    const struct kiln_train_config *t = &c->train;
    ASSERT_EQ_INT(3, m->input_ndim);
    ASSERT_EQ_INT(1, m->input_shape[0]);
    ASSERT_EQ_INT(28, m->input_shape[2]);
    ASSERT_EQ_INT(10, m->n_layers);
    ASSERT_EQ_INT(KILN_LAYER_FLATTEN, m->layers[0].kind);
    ASSERT_EQ_INT(4, m->layers[0].line);
    ASSERT_EQ_INT(KILN_LAYER_DENSE, m->layers[1].kind);
    ASSERT_EQ_INT(300, m->layers[1].units);
    ASSERT(!m->layers[1].bias);
    ASSERT_EQ_INT(KILN_INIT_GLOROT_UNIFORM, m->layers[1].init);
    ASSERT_EQ_INT(KILN_LAYER_LEAKY_RELU, m->layers[2].kind);
    ASSERT_NEAR(0.2f, m->layers[2].negative_slope, 0);
    ASSERT_NEAR(0.25f, m->layers[3].rate, 0);
    ASSERT_EQ_INT(KILN_INIT_ZEROS, m->layers[4].init);
    ASSERT(m->layers[4].bias);
    ASSERT_EQ_INT(KILN_LAYER_TANH, m->layers[5].kind);
    ASSERT_EQ_INT(KILN_LAYER_SIGMOID, m->layers[6].kind);
    ASSERT_EQ_INT(KILN_LAYER_GELU, m->layers[7].kind);
    ASSERT_EQ_INT(KILN_LAYER_SOFTMAX, m->layers[8].kind);
    ASSERT_EQ_INT(KILN_LAYER_RELU, m->layers[9].kind);
    ASSERT_EQ_INT(KILN_LOSS_SOFTMAX_XENT, m->loss);
    ASSERT_NEAR(0.1f, m->label_smoothing, 0);
    ASSERT_EQ_INT(7, t->epochs);
    ASSERT_EQ_INT(64, t->batch_size);
    ASSERT_EQ_INT(123, t->seed);
    ASSERT_EQ_INT(KILN_CFG_SGD, t->optimizer);
    ASSERT_NEAR(0.05f, t->lr, 0);
    ASSERT_NEAR(0.9f, t->momentum, 0);
    ASSERT(t->nesterov);
    ASSERT_NEAR(5e-4f, t->weight_decay, 0);
    ASSERT_EQ_INT(KILN_SCHED_STEP, t->schedule);
    ASSERT_EQ_INT(20, t->warmup_steps);
    ASSERT_EQ_INT(3, t->step_size);
    ASSERT_NEAR(0.5f, t->gamma, 0);
    ASSERT_NEAR(0.2f, t->val_fraction, 0);
    ASSERT_EQ_STR("val_accuracy", t->early_stopping_metric);
    ASSERT_EQ_INT(4, t->patience);
    ASSERT_EQ_INT(KILN_MODE_MAX, t->early_stopping_mode); /* derived from the metric */
    ASSERT_EQ_INT(2, t->checkpoint_every);
    ASSERT_NEAR(1.5f, t->clip_norm, 0);
    ASSERT_EQ_STR("cuda:1", t->device);
    ASSERT_EQ_INT(8, t->threads);
    ASSERT_EQ_STR("A test net.", c->card.description);
    ASSERT_EQ_STR("Line one.\nLine <two> & \"three\".\n", c->card.limitations);
    ASSERT_EQ_STR("MIT", c->card.license);
    ASSERT(c->card.intended_use == NULL);
    ASSERT_EQ_STR(full_yaml, c->source_yaml);
    ASSERT_EQ_STR("full.yaml", c->path);
    kiln_config_free(c);
}

TEST(defaults)
{
    struct kiln_config *c = NULL;
    const char *y = MODEL_OK;
    ASSERT_OK(kiln_config_parse(y, strlen(y), "d.yaml", NULL, 0, &c));
    const struct kiln_model_config *m = &c->model;
    const struct kiln_train_config *t = &c->train;
    ASSERT_EQ_INT(1, m->input_ndim);
    ASSERT_EQ_INT(4, m->input_shape[0]);
    ASSERT_EQ_INT(1, m->n_layers);
    ASSERT_EQ_INT(3, m->layers[0].units);
    ASSERT(m->layers[0].bias);
    ASSERT_EQ_INT(KILN_INIT_HE_NORMAL, m->layers[0].init);
    ASSERT_NEAR(0.01f, m->layers[0].negative_slope, 0);
    ASSERT_NEAR(0.5f, m->layers[0].rate, 0);
    ASSERT_EQ_INT(KILN_LOSS_SOFTMAX_XENT, m->loss);
    ASSERT_NEAR(0, m->label_smoothing, 0);
    ASSERT_EQ_INT(10, t->epochs);
    ASSERT_EQ_INT(128, t->batch_size);
    ASSERT_EQ_INT(42, t->seed);
    ASSERT_EQ_INT(KILN_CFG_ADAM, t->optimizer);
    ASSERT_NEAR(1e-3f, t->lr, 0);
    ASSERT_NEAR(0, t->momentum, 0);
    ASSERT(!t->nesterov);
    ASSERT_NEAR(0.9f, t->beta1, 0);
    ASSERT_NEAR(0.999f, t->beta2, 0);
    ASSERT_NEAR(1e-8f, t->eps, 0);
    ASSERT_NEAR(0, t->weight_decay, 0);
    ASSERT_EQ_INT(KILN_SCHED_CONSTANT, t->schedule);
    ASSERT_EQ_INT(0, t->warmup_steps);
    ASSERT_EQ_INT(10, t->step_size);
    ASSERT_NEAR(0.1f, t->gamma, 0);
    ASSERT_NEAR(0, t->min_lr, 0);
    ASSERT_NEAR(0.1f, t->val_fraction, 0);
    ASSERT_EQ_STR("val_loss", t->early_stopping_metric);
    ASSERT_EQ_INT(0, t->patience);
    ASSERT_EQ_INT(KILN_MODE_MIN, t->early_stopping_mode);
    ASSERT_EQ_INT(1, t->checkpoint_every);
    ASSERT_NEAR(0, t->clip_norm, 0);
    ASSERT_EQ_STR("cpu", t->device);
    ASSERT_EQ_INT(0, t->threads);
    ASSERT(!c->card.description && !c->card.intended_use && !c->card.limitations &&
           !c->card.ethical_considerations && !c->card.authors && !c->card.license);
    kiln_config_free(c);
}

TEST(empty_sections_mean_defaults)
{
    struct kiln_config *c = NULL;
    const char *y = MODEL_OK "train:\ncard:\n";
    ASSERT_OK(kiln_config_parse(y, strlen(y), "d.yaml", NULL, 0, &c));
    ASSERT_EQ_INT(10, c->train.epochs);
    kiln_config_free(c);
}

TEST(values_in_other_spellings)
{
    struct kiln_config *c = NULL;
    const char *y = "model:\n  input: [4]\n  layers:\n"
                    "    - {type: dense, units: 3, bias: False, init: \"glorot_normal\"}\n"
                    "  loss: mse\n"
                    "train:\n  optimizer: {type: adamw, lr: .5, eps: 1E-6, beta1: 0}\n"
                    "  early_stopping: {metric: val_r2, mode: min}\n"
                    "  device: auto\n";
    ASSERT_OK(kiln_config_parse(y, strlen(y), "s.yaml", NULL, 0, &c));
    ASSERT(!c->model.layers[0].bias);
    ASSERT_EQ_INT(KILN_INIT_GLOROT_NORMAL, c->model.layers[0].init);
    ASSERT_EQ_INT(KILN_LOSS_MSE, c->model.loss);
    ASSERT_EQ_INT(KILN_CFG_ADAMW, c->train.optimizer);
    ASSERT_NEAR(0.5f, c->train.lr, 0);
    ASSERT_NEAR(1e-6f, c->train.eps, 0);
    ASSERT_NEAR(0, c->train.beta1, 0);
    ASSERT_EQ_INT(KILN_MODE_MIN, c->train.early_stopping_mode); /* given beats derived */
    ASSERT_EQ_STR("auto", c->train.device);
    kiln_config_free(c);
}

TEST(card_section)
{
    struct kiln_config *c = NULL;
    const char *y = MODEL_OK "card:\n"
                    "  description: >\n"
                    "    Folded\n"
                    "    text.\n"
                    "  intended_use: |\n"
                    "    Teaching.\n"
                    "      Indented.\n"
                    "  limitations: '<script>alert(1)</script>'\n"
                    "  ethical_considerations: None known.\n"
                    "  authors: 2024\n"
                    "  license: CC-BY-4.0\n";
    ASSERT_OK(kiln_config_parse(y, strlen(y), "c.yaml", NULL, 0, &c));
    ASSERT_EQ_STR("Folded text.\n", c->card.description);
    ASSERT_EQ_STR("Teaching.\n  Indented.\n", c->card.intended_use);
    ASSERT_EQ_STR("<script>alert(1)</script>", c->card.limitations);
    ASSERT_EQ_STR("None known.", c->card.ethical_considerations);
    ASSERT_EQ_STR("2024", c->card.authors); /* text as written, not a number */
    ASSERT_EQ_STR("CC-BY-4.0", c->card.license);
    kiln_config_free(c);

    /* --set reaches the card too, over the file's value or without one. */
    const char *sets[] = {"card.license=MIT", "card.authors=kiln team"};
    ASSERT_OK(kiln_config_parse(y, strlen(y), "c.yaml", sets, 2, &c));
    ASSERT_EQ_STR("MIT", c->card.license);
    ASSERT_EQ_STR("kiln team", c->card.authors);
    kiln_config_free(c);
    ASSERT_OK(kiln_config_parse(MODEL_OK, strlen(MODEL_OK), "c.yaml", sets, 1, &c));
    ASSERT_EQ_STR("MIT", c->card.license);
    ASSERT(c->card.description == NULL);
    kiln_config_free(c);

    /* Unknown keys and wrong types are errors, as everywhere else. */
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "card:\n  owner: me\n"),
                  "t.yaml:6:3: card.owner: unknown key");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "card:\n  licence: MIT\n"),
                  "t.yaml:6:3: card.licence: unknown key (did you mean license?)");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "card:\n  description: {a: 1}\n"),
                  "t.yaml:6:16: card.description: expected text, got a mapping");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "card:\n  authors: [ann, bo]\n"),
                  "t.yaml:6:12: card.authors: expected text, got a list");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "card:\n  license:\n"),
                  "t.yaml:6:11: card.license: expected text, got an empty value (leave the "
                  "key out instead)");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "card:\n  license: ~\n"),
                  "card.license: expected text, got \"~\"");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "card: free text\n"),
                  "t.yaml:5:7: card: expected a mapping, got \"free text\"");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "card:\n  license: MIT\n  license: BSD\n"),
                  "t.yaml:7:3: card.license: duplicate key");
    const char *bad_set[] = {"card.owner=me"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(MODEL_OK, bad_set, 1),
                  "--set:1:1: card.owner: unknown key");
    const char *deep_set[] = {"card.license.name=MIT"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(MODEL_OK, deep_set, 1),
                  "--set:1:1: card.license.name: unknown key");
    const char *map_set[] = {"card.license={a: 1}"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(MODEL_OK, map_set, 1),
                  "--set:1:14: card.license: expected text, got a mapping");
}

/* --- errors ------------------------------------------------------------------------------ */

TEST(error_wrong_type)
{
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  epochs: ten\n"),
                  "t.yaml:6:11: train.epochs: expected an integer, got \"ten\"");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  epochs: \"10\"\n"),
                  "t.yaml:6:11: train.epochs: expected an integer, got the string \"10\"");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  epochs: 2.5\n"),
                  "t.yaml:6:11: train.epochs: expected an integer");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  epochs:\n"),
                  "t.yaml:6:10: train.epochs: expected an integer, got an empty value");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  epochs: [1]\n"),
                  "t.yaml:6:11: train.epochs: expected an integer, got a list");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  optimizer: {lr: fast}\n"),
                  "t.yaml:6:19: train.optimizer.lr: expected a number, got \"fast\"");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  optimizer: {lr: .inf}\n"),
                  "t.yaml:6:19: train.optimizer.lr: expected a finite number");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse("model:\n  input: [4]\n  layers:\n    - {type: dense, units: 3, bias: yes}\n"),
                  "t.yaml:4:37: model.layers[0].bias: expected true or false, got \"yes\"");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train: 5\n"),
                  "t.yaml:5:8: train: expected a mapping, got \"5\"");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  optimizer: adam\n"),
                  "t.yaml:6:14: train.optimizer: expected a mapping");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  input: 784\n  layers: [{type: relu}]\n"),
                  "t.yaml:2:10: model.input: expected a list of integers");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  input: [4]\n  layers: {type: relu}\n"),
                  "t.yaml:3:11: model.layers: expected a list of layers, got a mapping");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  input: [4]\n  layers: [relu]\n"),
                  "t.yaml:3:12: model.layers[0]: expected a mapping such as {type: relu}");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  input: [4, x]\n  layers: [{type: relu}]\n"),
                  "t.yaml:2:14: model.input[1]: expected an integer, got \"x\"");
}

TEST(error_out_of_range)
{
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  epochs: 0\n"),
                  "t.yaml:6:11: train.epochs: 0 is out of range, must be in [1, 1000000]");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  seed: -1\n"),
                  "t.yaml:6:9: train.seed: -1 is out of range, must be >= 0");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse(MODEL_OK "train:\n  epochs: 99999999999999999999999\n"),
                  "t.yaml:6:11: train.epochs: \"99999999999999999999999\" is out of range");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  optimizer: {lr: 0}\n"),
                  "t.yaml:6:19: train.optimizer.lr: 0 is out of range, must be > 0");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  optimizer: {eps: 1e-50}\n"),
                  "train.optimizer.eps: 1e-50 is out of range"); /* 0 as a float */
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  optimizer: {lr: 1e39}\n"),
                  "train.optimizer.lr: 1e39 is out of range"); /* inf as a float */
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  val_fraction: 1\n"),
                  "t.yaml:6:17: train.val_fraction: 1 is out of range, must be in [0, 1)");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  schedule: {type: step, gamma: 0}\n"),
                  "train.schedule.gamma: 0 is out of range, must be in (0, 1]");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  input: [4, 0]\n  layers: [{type: relu}]\n"),
                  "t.yaml:2:14: model.input[1]: 0 is out of range, must be >= 1");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse("model:\n  input: [1, 2, 3, 4, 5]\n  layers: [{type: relu}]\n"),
                  "t.yaml:2:10: model.input: expected 1 to 4 integers, got 5");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  input: []\n  layers: [{type: relu}]\n"),
                  "t.yaml:2:10: model.input: expected 1 to 4 integers, got 0");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  input: [4]\n  layers: []\n"),
                  "t.yaml:3:11: model.layers: needs at least 1 layer");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse("model:\n  input: [4]\n  layers:\n    - {type: dropout, rate: 1.0}\n"),
                  "t.yaml:4:29: model.layers[0].rate: 1.0 is out of range, must be in [0, 1)");

    /* KILN_MAX_LAYERS + 1 layers: the error points at the first one too many. */
    char y[4096] = "model:\n  input: [4]\n  layers:\n";
    for (int i = 0; i <= KILN_MAX_LAYERS; i++) strcat(y, "    - {type: relu}\n");
    char want[128];
    snprintf(want, sizeof want, "t.yaml:%d:7: model.layers[%d]: more than %d layers",
             4 + KILN_MAX_LAYERS, KILN_MAX_LAYERS, KILN_MAX_LAYERS);
    const char *wantp = want;
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(y), wantp);
}

TEST(error_bad_enum)
{
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse("model:\n  input: [4]\n  layers:\n    - {type: conv}\n"),
                  "t.yaml:4:14: model.layers[0].type: \"conv\" is not one of dense, relu, "
                  "leaky_relu, tanh, sigmoid, gelu, softmax, dropout, flatten");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "  loss: hinge\n"),
                  "t.yaml:5:9: model.loss: \"hinge\" is not one of softmax_cross_entropy, "
                  "bce_with_logits, mse");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  optimizer: {type: rmsprop}\n"),
                  "train.optimizer.type: \"rmsprop\" is not one of sgd, adam, adamw");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  device: tpu\n"),
                  "t.yaml:6:11: train.device: \"tpu\" is not one of cpu, cuda, auto, cuda:N");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  device: \"cuda:\"\n"),
                  "train.device: \"cuda:\" is not one of");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  device: cuda:1x\n"),
                  "train.device: \"cuda:1x\" is not one of");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse(MODEL_OK "train:\n  early_stopping: {metric: accuracy}\n"),
                  "train.early_stopping.metric: \"accuracy\" is not one of val_loss, val_accuracy");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse(MODEL_OK "train:\n  early_stopping: {mode: lower}\n"),
                  "train.early_stopping.mode: \"lower\" is not one of min, max");
}

TEST(error_unknown_key)
{
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  epoch: 3\n"),
                  "t.yaml:6:3: train.epoch: unknown key (did you mean epochs?)");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  lr: 0.1\n"),
                  "t.yaml:6:3: train.lr: unknown key (did you mean train.optimizer.lr?)");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "trian:\n  epochs: 3\n"),
                  "t.yaml:5:1: trian: unknown key (did you mean train?)");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "data:\n  path: x.h5\n"),
                  "t.yaml:5:1: data: unknown key");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse("model:\n  input: [4]\n  layers:\n    - {type: dense, unit: 3}\n"),
                  "t.yaml:4:21: model.layers[0].unit: unknown key (did you mean units?)");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  \"train.epochs\": 3\n"),
                  "t.yaml:6:3: train.\"train.epochs\": unknown key");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  xyzzy: 3\n"),
                  "t.yaml:6:3: train.xyzzy: unknown key");
}

TEST(error_key_not_for_this_type)
{
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse("model:\n  input: [4]\n  layers:\n    - {type: relu, units: 3}\n"),
                  "t.yaml:4:20: model.layers[0].units: only applies when type is dense "
                  "(here type is relu)");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse("model:\n  input: [4]\n  layers:\n    - {rate: 0.1, type: dense, units: 2}\n"),
                  "t.yaml:4:8: model.layers[0].rate: only applies when type is dropout");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  optimizer: {momentum: 0.9}\n"),
                  "t.yaml:6:15: train.optimizer.momentum: only applies when type is sgd "
                  "(here type is adam)");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse(MODEL_OK "train:\n  optimizer: {type: sgd, beta1: 0.8}\n"),
                  "train.optimizer.beta1: only applies when type is adam or adamw");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  schedule: {min_lr: 0.1}\n"),
                  "train.schedule.min_lr: only applies when type is cosine");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse(MODEL_OK "  loss: mse\n  label_smoothing: 0.1\n"),
                  "t.yaml:6:3: model.label_smoothing: only applies when loss is "
                  "softmax_cross_entropy (here loss is mse)");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse(MODEL_OK "train:\n  optimizer: {type: sgd, nesterov: true}\n"),
                  "t.yaml:6:36: train.optimizer.nesterov: needs momentum > 0");
}

TEST(error_missing_required)
{
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  layers: [{type: relu}]\n"),
                  "t.yaml:2:3: model.input: required key is missing");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  input: [4]\n"),
                  "t.yaml:2:3: model.layers: required key is missing");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse("model:\n  input: [4]\n  layers:\n    - {type: relu}\n    - {type: dense}\n"),
                  "t.yaml:5:7: model.layers[1].units: required key is missing (needed when type "
                  "is dense)");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse("model:\n  input: [4]\n  layers:\n    - {units: 3}\n"),
                  "t.yaml:4:7: model.layers[0].type: required key is missing");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("train:\n  epochs: 3\n"),
                  "t.yaml:1:1: model: required key is missing");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\ntrain:\n"),
                  "t.yaml:1:7: model.input: required key is missing");
}

TEST(error_duplicate_key)
{
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  epochs: 3\n  epochs: 4\n"),
                  "t.yaml:7:3: train.epochs: duplicate key (first set at line 6, column 3)");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train: {}\ntrain: {}\n"),
                  "t.yaml:6:1: train: duplicate key (first set at line 5, column 1)");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse("model:\n  input: [4]\n  layers:\n    - {type: relu}\n    - {type: relu, type: tanh}\n"),
                  "t.yaml:5:20: model.layers[1].type: duplicate key (first set at line 5, column 8)");
    /* A big map is checked by sorting: still the first repeat in the file. */
    char y[8192] = MODEL_OK "card:\n";
    for (int i = 0; i < 200; i++) {
        char line[32];
        snprintf(line, sizeof line, "  k%d: v\n", i % 150);
        strcat(y, line);
    }
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(y),
                  "t.yaml:156:3: card.k0: duplicate key (first set at line 6, column 3)");
}

TEST(error_alias_anchor_tag)
{
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse(MODEL_OK "train:\n  epochs: &n 3\n  batch_size: 4\n"),
                  "t.yaml:6:11: train.epochs: anchors and aliases are not supported");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse(MODEL_OK "train:\n  epochs: *n\n"),
                  "t.yaml:6:11: train.epochs: aliases are not supported (*n)");
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse(MODEL_OK "x: &base {epochs: 3}\ntrain:\n  <<: *base\n"),
                  "t.yaml:5:4: x: anchors and aliases are not supported");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  epochs: !!int 3\n"),
                  "t.yaml:6:11: train.epochs: tags are not supported");
    char path[512];
    data_path(path, sizeof path, "config/alias.yaml");
    struct kiln_config *c = NULL;
    ASSERT_STATUS(KILN_ERR_CONFIG, kiln_config_load(path, NULL, 0, &c),
                  "alias.yaml:6:14: model.layers[0].units: anchors and aliases are not supported");
    ASSERT(c == NULL);
}

TEST(error_document_shape)
{
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(""), "t.yaml:1:1: the config is empty");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("# nothing here\n\n"), "t.yaml:1:1: the config is empty");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("---\n"), "t.yaml:");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("- a\n- b\n"),
                  "t.yaml:1:1: expected a mapping with model: and train: at the top, got a list");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("hello\n"),
                  "t.yaml:1:1: expected a mapping with model: and train: at the top, got \"hello\"");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "---\n" MODEL_OK),
                  "t.yaml:5:1: a second YAML document");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "? [a, b]\n: 1\n"),
                  "t.yaml:5:3: a key must be a name, not a list");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(MODEL_OK "train:\n  device: \"cp\\0u\"\n"),
                  "t.yaml:6:11: train.device: NUL characters are not supported");
}

TEST(error_syntax)
{
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  input: [4\n  layers: x\n"),
                  "t.yaml:3:9: YAML syntax error: ");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  input: [4]\n layers: x\n"),
                  "t.yaml:3:");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model: \"unterminated\n"), "YAML syntax error");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n\tinput: [4]\n"),
                  "t.yaml:2:1: YAML syntax error: found character that cannot start any token "
                  "(while scanning for the next token at line 2, column 1) (YAML indents with "
                  "spaces, not tabs)");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  input: [4]\n  x: \xff\xfe\n"),
                  "t.yaml:3:6: invalid input: ");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse("model:\n  x: \x01\n"), "t.yaml:2:6: invalid input");
}

TEST(error_nesting)
{
    char y[512];
    size_t o = 0;
    /* 64 levels are fine as far as nesting goes: the tree is built before
     * any key is checked. */
    o += (size_t)snprintf(y + o, sizeof y - o, "%s", MODEL_OK "card: ");
    for (int i = 0; i < KILN_CONFIG_MAX_DEPTH - 1; i++) y[o++] = '[';
    for (int i = 0; i < KILN_CONFIG_MAX_DEPTH - 1; i++) y[o++] = ']';
    y[o] = '\0';
    /* That is 64 collections with the root: a list under card is the wrong
     * type, but not too deep. */
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(y), "card: expected a mapping, got a list");
    o = 0;
    o += (size_t)snprintf(y + o, sizeof y - o, "%s", MODEL_OK "card: ");
    for (int i = 0; i < KILN_CONFIG_MAX_DEPTH; i++) y[o++] = '[';
    for (int i = 0; i < KILN_CONFIG_MAX_DEPTH; i++) y[o++] = ']';
    y[o] = '\0';
    char want[128];
    snprintf(want, sizeof want, "t.yaml:5:%d: card", 6 + KILN_CONFIG_MAX_DEPTH);
    const char *wantp = want;
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(y), wantp);
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(y), "nested deeper than 64 levels");

    /* 100k open brackets: refused at level 65, without a deep stack. */
    size_t n = 100000;
    char *deep = malloc(n + 32);
    memcpy(deep, "card: ", 6);
    memset(deep + 6, '[', n);
    deep[6 + n] = '\0';
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(deep), "nested deeper than 64 levels");
    free(deep);
}

TEST(error_too_big)
{
    const char *path = "/tmp/kiln_test_config_big.yaml";
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    fputs(MODEL_OK "card:\n", f);
    for (int i = 0; ftell(f) <= KILN_CONFIG_MAX_BYTES; i++) fprintf(f, "  key%d: some text\n", i);
    fclose(f);
    struct kiln_config *c = NULL;
    ASSERT_STATUS(KILN_ERR_CONFIG, kiln_config_load(path, NULL, 0, &c),
                  "kiln_test_config_big.yaml:1:1: the file is over the 1048576-byte limit");
    ASSERT(c == NULL);
    char *big = read_all(path);
    ASSERT(big != NULL);
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(big), "t.yaml:1:1: the config is");
    /* Just under the limit, ~50k keys are checked for duplicates by sorting
     * (not pairwise) before the first is found unknown. */
    big[KILN_CONFIG_MAX_BYTES - 200] = '\0';
    char *nl = strrchr(big, '\n');
    nl[1] = '\0';
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse(big), "t.yaml:6:3: card.key0: unknown key");
    free(big);
    remove(path);

    /* A card text just under the limit is fine. */
    f = fopen(path, "wb");
    ASSERT(f != NULL);
    fputs(MODEL_OK "card:\n  limitations: |\n", f);
    while (ftell(f) < KILN_CONFIG_MAX_BYTES - 100) fputs("    some text\n", f);
    fclose(f);
    ASSERT_OK(kiln_config_load(path, NULL, 0, &c));
    ASSERT(strlen(c->card.limitations) > KILN_CONFIG_MAX_BYTES / 2);
    kiln_config_free(c);
    remove(path);
}

TEST(error_missing_file)
{
    struct kiln_config *c = NULL;
    ASSERT_STATUS(KILN_ERR_IO, kiln_config_load("/nonexistent/dir/mlp.yaml", NULL, 0, &c),
                  "/nonexistent/dir/mlp.yaml: cannot open");
    ASSERT(c == NULL);
    ASSERT_STATUS(KILN_ERR_IO, kiln_config_load("/tmp", NULL, 0, &c), "/tmp");
    ASSERT(c == NULL);
}

/* --- files ---------------------------------------------------------------------------------- */

TEST(load_files)
{
    char path[512];
    struct kiln_config *c = NULL;
    data_path(path, sizeof path, "config/mlp.yaml");
    ASSERT_OK(kiln_config_load(path, NULL, 0, &c));
    ASSERT_EQ_INT(4, c->model.n_layers);
    ASSERT_EQ_INT(64, c->model.layers[1].units);
    ASSERT_EQ_INT(6, c->model.layers[1].line);
    ASSERT_EQ_INT(KILN_CFG_SGD, c->train.optimizer);
    ASSERT_EQ_STR(path, c->path);
    ASSERT(strstr(c->source_yaml, "units: 64") != NULL);
    kiln_config_free(c);
    c = NULL;

    data_path(path, sizeof path, "config/bad-epochs.yaml");
    ASSERT_STATUS(KILN_ERR_CONFIG, kiln_config_load(path, NULL, 0, &c),
                  "bad-epochs.yaml:8:11: train.epochs: expected an integer, got \"ten\"");
    ASSERT(strncmp(kiln_last_error(), path, strlen(path)) == 0);

    data_path(path, sizeof path, "config/two-docs.yaml");
    ASSERT_STATUS(KILN_ERR_CONFIG, kiln_config_load(path, NULL, 0, &c),
                  "two-docs.yaml:5:1: a second YAML document");

    /* The examples shipped with kiln load as they are. */
    data_path(path, sizeof path, "../../examples/fashion-mnist-mlp.yaml");
    ASSERT_OK(kiln_config_load(path, NULL, 0, &c));
    ASSERT_EQ_INT(6, c->model.n_layers);
    ASSERT_EQ_INT(KILN_LAYER_FLATTEN, c->model.layers[0].kind);
    ASSERT_EQ_INT(256, c->model.layers[1].units);
    ASSERT_EQ_INT(KILN_LAYER_RELU, c->model.layers[2].kind);
    ASSERT_EQ_INT(128, c->model.layers[3].units);
    ASSERT_EQ_INT(10, c->model.layers[5].units);
    ASSERT_EQ_INT(KILN_CFG_ADAM, c->train.optimizer);
    ASSERT_NEAR(1e-3f, c->train.lr, 0);
    ASSERT_EQ_INT(128, c->train.batch_size);
    ASSERT_EQ_INT(10, c->train.epochs);
    ASSERT_EQ_INT(42, c->train.seed);
    ASSERT_EQ_INT(KILN_LOSS_SOFTMAX_XENT, c->model.loss);
    ASSERT(c->card.intended_use && strstr(c->card.intended_use, "Not for decisions about people"));
    ASSERT(c->card.limitations && strstr(c->card.limitations, "shirts"));
    kiln_config_free(c);
    c = NULL;
    data_path(path, sizeof path, "../../examples/tiny-regression.yaml");
    ASSERT_OK(kiln_config_load(path, NULL, 0, &c));
    ASSERT_EQ_INT(KILN_LOSS_MSE, c->model.loss);
    ASSERT_EQ_INT(KILN_MODE_MIN, c->train.early_stopping_mode);
    kiln_config_free(c);
}

/* --- --set ------------------------------------------------------------------------------------ */

TEST(set_overrides)
{
    struct kiln_config *c = NULL;
    const char *y = MODEL_OK "train:\n  epochs: 5\n";
    const char *sets[] = {
        "train.epochs=3",                  /* replaces a value in the file */
        "train.optimizer.type=sgd",        /* creates a section */
        "train.optimizer.momentum=0.5",    /* valid because the set above made it sgd */
        "model.input=[1, 2, 2]",           /* a flow sequence */
        "model.layers[0].units=7",         /* an item of the layer list */
        "train.device=cuda:0",
        "train.epochs=4",                  /* the last --set wins */
        "card.license=MIT",                /* creates the card section */
    };
    ASSERT_OK(kiln_config_parse(y, strlen(y), "s.yaml", sets, 8, &c));
    ASSERT_EQ_STR("MIT", c->card.license);
    ASSERT_EQ_INT(4, c->train.epochs);
    ASSERT_EQ_INT(KILN_CFG_SGD, c->train.optimizer);
    ASSERT_NEAR(0.5f, c->train.momentum, 0);
    ASSERT_EQ_INT(3, c->model.input_ndim);
    ASSERT_EQ_INT(2, c->model.input_shape[2]);
    ASSERT_EQ_INT(7, c->model.layers[0].units);
    ASSERT_EQ_STR("cuda:0", c->train.device);
    ASSERT_EQ_STR(y, c->source_yaml); /* the file as read, without the sets */
    kiln_config_free(c);

    /* A key absent from the file, with no train: section at all. */
    const char *only_model = MODEL_OK;
    const char *one[] = {"train.epochs=2"};
    ASSERT_OK(kiln_config_parse(only_model, strlen(only_model), "s.yaml", one, 1, &c));
    ASSERT_EQ_INT(2, c->train.epochs);
    kiln_config_free(c);

    /* The derived early-stopping mode follows a metric set from the command line. */
    const char *f1[] = {"train.early_stopping.metric=val_f1"};
    ASSERT_OK(kiln_config_parse(only_model, strlen(only_model), "s.yaml", f1, 1, &c));
    ASSERT_EQ_INT(KILN_MODE_MAX, c->train.early_stopping_mode);
    kiln_config_free(c);

    /* Replacing a whole layer, and filling an empty section. */
    const char *y2 = MODEL_OK "train:\n";
    const char *two[] = {"model.layers[0]={type: dense, units: 9, bias: false}",
                         "train.schedule.type=cosine"};
    ASSERT_OK(kiln_config_parse(y2, strlen(y2), "s.yaml", two, 2, &c));
    ASSERT_EQ_INT(9, c->model.layers[0].units);
    ASSERT(!c->model.layers[0].bias);
    ASSERT_EQ_INT(KILN_SCHED_COSINE, c->train.schedule);
    kiln_config_free(c);
}

TEST(set_errors)
{
    const char *y = MODEL_OK "train:\n  epochs: 5\n";
    const char *unknown[] = {"train.epochs=3", "train.epoch=3"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, unknown, 2),
                  "--set:2:1: train.epoch: unknown key (did you mean train.epochs?)");
    const char *wrong[] = {"train.epochs=ten"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, wrong, 1),
                  "--set:1:14: train.epochs: expected an integer, got \"ten\"");
    const char *range[] = {"train.batch_size=0"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, range, 1),
                  "--set:1:18: train.batch_size: 0 is out of range");
    const char *list[] = {"model.input=[1, x]"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, list, 1),
                  "--set:1:17: model.input[1]: expected an integer, got \"x\"");
    const char *no_eq[] = {"train.epochs"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, no_eq, 1),
                  "--set:1:1: expected key=value, got \"train.epochs\"");
    const char *empty[] = {"train.epochs="};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, empty, 1),
                  "--set:1:14: train.epochs: expected an integer, got an empty value");
    const char *bad_key[] = {"train..epochs=1"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, bad_key, 1), "--set:1:1: ");
    const char *too_deep[] = {"train.epochs.x=1"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, too_deep, 1),
                  "--set:1:1: train.epochs.x: unknown key");
    const char *index[] = {"model.layers[3].units=1"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, index, 1),
                  "--set:1:1: model.layers[3]: no such item");
    const char *not_list[] = {"model.input[0]=1"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, not_list, 1),
                  "--set:1:1: model.input[0]: unknown key");
    const char *alias[] = {"train.epochs=*x"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, alias, 1),
                  "--set:1:14: train.epochs: aliases are not supported");
    const char *syntax[] = {"model.input=[1, 2"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, syntax, 1), "--set:1:");
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, syntax, 1), "YAML syntax error");
    const char *gate[] = {"train.optimizer.momentum=0.9"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, gate, 1),
                  "--set:1:1: train.optimizer.momentum: only applies when type is sgd");
    /* The file's own section has the wrong type: name where it is. */
    const char *under_scalar[] = {"train.optimizer.lr=0.1"};
    ASSERT_STATUS(KILN_ERR_CONFIG,
                  try_parse_sets(MODEL_OK "train:\n  optimizer: adam\n", under_scalar, 1),
                  "--set:1:1: train.optimizer: is not a mapping in t.yaml:6:14");
    /* A model-only key from --set must still be valid for its layer. */
    const char *units[] = {"model.layers[0].rate=0.1"};
    ASSERT_STATUS(KILN_ERR_CONFIG, try_parse_sets(y, units, 1),
                  "--set:1:1: model.layers[0].rate: only applies when type is dropout");
}

/* --- model YAML ------------------------------------------------------------------------------ */

static int layer_equal(const struct kiln_layer_config *a, const struct kiln_layer_config *b)
{
    return a->kind == b->kind && a->units == b->units && a->bias == b->bias &&
           a->init == b->init && a->negative_slope == b->negative_slope && a->rate == b->rate;
}

static int model_equal(const struct kiln_model_config *a, const struct kiln_model_config *b)
{
    if (a->input_ndim != b->input_ndim || a->n_layers != b->n_layers || a->loss != b->loss ||
        a->label_smoothing != b->label_smoothing)
        return 0;
    for (int i = 0; i < a->input_ndim; i++)
        if (a->input_shape[i] != b->input_shape[i]) return 0;
    for (int i = 0; i < a->n_layers; i++)
        if (!layer_equal(&a->layers[i], &b->layers[i])) return 0;
    return 1;
}

TEST(model_yaml_round_trip)
{
    struct kiln_config *c = NULL;
    ASSERT_OK(kiln_config_parse(full_yaml, strlen(full_yaml), "full.yaml", NULL, 0, &c));
    /* Floats that are not exact in binary must come back bit for bit. */
    c->model.layers[2].negative_slope = 0.1f / 3.0f;
    c->model.label_smoothing = 1.0f / 3.0f;
    char *y = kiln_model_config_to_yaml(&c->model);
    ASSERT(y != NULL);
    ASSERT(strncmp(y, "model:\n", 7) == 0);
    ASSERT(strstr(y, "init: glorot_uniform") != NULL); /* the canonical spelling */
    struct kiln_model_config back;
    memset(&back, 0, sizeof back);
    enum kiln_status st = kiln_model_config_parse(y, strlen(y), "emitted", &back);
    if (st != KILN_OK) fprintf(stderr, "%s\n%s\n", y, kiln_last_error());
    ASSERT_OK(st);
    ASSERT(model_equal(&c->model, &back));
    /* And once more: emitting the parsed copy gives the same text. */
    char *y2 = kiln_model_config_to_yaml(&back);
    ASSERT_EQ_STR(y, y2);
    free(y);
    free(y2);

    /* Every loss: label_smoothing only appears where it applies. */
    c->model.loss = KILN_LOSS_MSE;
    c->model.label_smoothing = 0;
    y = kiln_model_config_to_yaml(&c->model);
    ASSERT(strstr(y, "label_smoothing") == NULL);
    ASSERT_OK(kiln_model_config_parse(y, strlen(y), "emitted", &back));
    ASSERT(model_equal(&c->model, &back));
    free(y);
    kiln_config_free(c);
}

TEST(model_parse_only_model)
{
    struct kiln_model_config m;
    const char *y = MODEL_OK "train:\n  epochs: 3\n";
    ASSERT_STATUS(KILN_ERR_CONFIG, kiln_model_config_parse(y, strlen(y), "ckpt:/model/config", &m),
                  "ckpt:/model/config:5:1: train: unknown key (a model document holds only model:)");
    ASSERT_STATUS(KILN_ERR_CONFIG, kiln_model_config_parse("", 0, "ckpt", &m),
                  "ckpt:1:1: the config is empty");
    ASSERT_STATUS(KILN_ERR_CONFIG, kiln_model_config_parse("model: {}\n", 10, "ckpt", &m),
                  "ckpt:1:8: model.input: required key is missing");
    ASSERT_OK(kiln_model_config_parse(MODEL_OK, strlen(MODEL_OK), "ckpt", &m));
    ASSERT_EQ_INT(3, m.layers[0].units);
    ASSERT_EQ_STR("dense", kiln_layer_kind_name(m.layers[0].kind));
    ASSERT_EQ_STR("flatten", kiln_layer_kind_name(KILN_LAYER_FLATTEN));
    ASSERT_EQ_STR("bce_with_logits", kiln_loss_kind_name(KILN_LOSS_BCE_LOGITS));
    ASSERT_EQ_STR("softmax_cross_entropy", kiln_loss_kind_name(m.loss));
}

/* --- docs -------------------------------------------------------------------------------------- */

static const char *const all_keys[] = {
    "model", "model.input", "model.layers", "model.layers[].type", "model.layers[].units",
    "model.layers[].bias", "model.layers[].init", "model.layers[].negative_slope",
    "model.layers[].rate", "model.loss", "model.label_smoothing", "train", "train.epochs",
    "train.batch_size", "train.seed", "train.optimizer", "train.optimizer.type",
    "train.optimizer.lr", "train.optimizer.momentum", "train.optimizer.nesterov",
    "train.optimizer.beta1", "train.optimizer.beta2", "train.optimizer.eps",
    "train.optimizer.weight_decay", "train.schedule", "train.schedule.type",
    "train.schedule.warmup_steps", "train.schedule.step_size", "train.schedule.gamma",
    "train.schedule.min_lr", "train.val_fraction", "train.early_stopping",
    "train.early_stopping.metric", "train.early_stopping.patience", "train.early_stopping.mode",
    "train.checkpoint_every", "train.clip_norm", "train.device", "train.threads", "card",
    "card.description", "card.intended_use", "card.limitations", "card.ethical_considerations",
    "card.authors", "card.license",
};

TEST(docs_list_every_key)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    kiln_config_print_docs(f);
    fclose(f);
    for (size_t i = 0; i < sizeof all_keys / sizeof all_keys[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "\n%s ", all_keys[i]);
        if (!strstr(buf, want)) {
            free(buf);
            TEST_FAIL("docs lack %s", all_keys[i]);
        }
    }
    ASSERT(strstr(buf, "he_normal|he_uniform|glorot_normal") != NULL);
    ASSERT(strstr(buf, "[1, 1000000]") != NULL);

    /* docs/CONFIG.md carries the same table: regenerate it when this fails
     * (see the note above the table there). */
    char path[512];
    data_path(path, sizeof path, "../../docs/CONFIG.md");
    char *md = read_all(path);
    if (!md) {
        free(buf);
        TEST_FAIL("cannot read %s", path);
    }
    char *line = buf;
    while (*line) {
        char *end = strchr(line, '\n');
        *end = '\0';
        if (!strstr(md, line)) {
            fprintf(stderr, "docs/CONFIG.md lacks this line of kiln_config_print_docs:\n%s\n", line);
            free(md);
            free(buf);
            TEST_FAIL("docs/CONFIG.md is out of date");
        }
        line = end + 1;
    }
    free(md);
    free(buf);
}

/* --- smoke: broken inputs never crash or leak ------------------------------------------------- */

static void check_no_crash(const char *yaml, size_t len, const char *const *sets, int n_sets)
{
    struct kiln_config *c = NULL;
    enum kiln_status st = kiln_config_parse(yaml, len, "f.yaml", sets, n_sets, &c);
    if (st == KILN_OK) {
        char *y = kiln_model_config_to_yaml(&c->model);
        struct kiln_model_config m;
        if (y && kiln_model_config_parse(y, strlen(y), "emitted", &m) != KILN_OK) {
            fprintf(stderr, "emitted model does not parse: %s\n%s\n", kiln_last_error(), y);
            abort();
        }
        free(y);
        kiln_config_free(c);
        return;
    }
    if (c || st != KILN_ERR_CONFIG) {
        fprintf(stderr, "unexpected result %s (cfg %p): %s\n", kiln_status_name(st), (void *)c,
                kiln_last_error());
        abort();
    }
    const char *msg = kiln_last_error();
    if (strncmp(msg, "f.yaml:", 7) != 0 && strncmp(msg, "--set:", 6) != 0) {
        fprintf(stderr, "message without a location: %s\n", msg);
        abort();
    }
}

TEST(smoke_broken_inputs)
{
    size_t n = strlen(full_yaml);
    /* Every prefix of a valid file. */
    for (size_t i = 0; i <= n; i++) check_no_crash(full_yaml, i, NULL, 0);
    /* Seeded byte mutations. */
    unsigned seed = 12345;
    char *buf = malloc(n + 1);
    static const char junk[] = "{}[]:,-&*!|>'\"#%@` \n\t\x01\xff?0a.";
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, full_yaml, n + 1);
        int edits = 1 + round % 4;
        for (int e = 0; e < edits; e++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % n;
            seed = seed * 1103515245u + 12345u;
            buf[at] = junk[(seed >> 8) % (sizeof junk - 1)];
        }
        check_no_crash(buf, n, NULL, 0);
    }
    free(buf);
    static const char *const garbage[] = {
        "{", "}", "[", "]", ":", "-", "? ", "&a", "*a", "!", "%YAML 1.1\n", "%TAG ! x\n",
        "---\n...\n---\n", "model: [", "model:\n  - - - - -", "\"", "'", "|", ">\n x",
        "model: {input: [4], layers: [{type: dense, units: 3}]}\n---", "\xef\xbb\xbfmodel: 1",
        "model:\n  input: [4]\n  layers:\n    - {type: dense, units: 3}\n    -\n",
        "model: !!map {}", "? ? ? a", "[[[[[[[[", "a: b: c", "model:\n  input: [4]\n  layers:\n  -",
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
        check_no_crash(garbage[i], strlen(garbage[i]), NULL, 0);
    static const char *const bad_sets[] = {
        "=", "=1", "a=", ".=1", "[0]=1", "model.layers[=1", "model.layers[99999999999]=1",
        "model.layers[-1].units=1", "model.layers[0]=", "model.layers[0]=[", "train={",
        "train.epochs=1\n---\n2", "model=[]", "card=1", "card.a.b.c.d.e.f.g.h.i=1",
        "card.license=", "card.license=[a]", "card.license={",
        "model.layers[0].units.x=1", "train.epochs=&a 1", "train.epochs=!!int 1",
    };
    for (size_t i = 0; i < sizeof bad_sets / sizeof bad_sets[0]; i++)
        check_no_crash(MODEL_OK, strlen(MODEL_OK), &bad_sets[i], 1);
}

int main(void)
{
    RUN(full_config);
    RUN(defaults);
    RUN(empty_sections_mean_defaults);
    RUN(values_in_other_spellings);
    RUN(card_section);
    RUN(error_wrong_type);
    RUN(error_out_of_range);
    RUN(error_bad_enum);
    RUN(error_unknown_key);
    RUN(error_key_not_for_this_type);
    RUN(error_missing_required);
    RUN(error_duplicate_key);
    RUN(error_alias_anchor_tag);
    RUN(error_document_shape);
    RUN(error_syntax);
    RUN(error_nesting);
    RUN(error_too_big);
    RUN(error_missing_file);
    RUN(load_files);
    RUN(set_overrides);
    RUN(set_errors);
    RUN(model_yaml_round_trip);
    RUN(model_parse_only_model);
    RUN(docs_list_every_key);
    RUN(smoke_broken_inputs);
    return test_summary();
}
