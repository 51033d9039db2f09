/* tests/train-fixture.h: the synthetic data and the base config that the
 * training tests share (test_train.c, test_train_device.c): separable
 * Gaussian blobs, a linear regression target, and a small MLP config.
 * Static functions (the config helpers inline, so a test may leave them
 * unused): include it once per test executable, after test.h and
 * after defining THREADS (the config's thread count). */
#ifndef KILN_TESTS_TRAIN_FIXTURE_H
#define KILN_TESTS_TRAIN_FIXTURE_H

#include "test.h"
#include "kiln/nn.h"

/* --- synthetic data -------------------------------------------------------------- */

static double rnd_normal(void)
{
    return sqrt(-2.0 * log(test_rng01())) * cos(6.283185307179586 * test_rng01());
}

enum { FEAT = 8, CLASSES = 4 };

static void free_dataset(struct kiln_dataset *ds)
{
    if (!ds) return;
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) kiln_split_free(ds->splits[i]);
    free(ds);
}

/* n rows of 4 Gaussian blobs in 8 dimensions: class c is centred at +-2.5 on
 * axes c and c + 4 (sign alternating), noise sd 0.6: separable with margin. */
static struct kiln_dataset *make_blobs(int64_t n, uint64_t seed)
{
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    int64_t feat = FEAT;
    struct kiln_split *s = NULL;
    if (kiln_split_create(n, 1, &feat, KILN_DTYPE_F32, KILN_DTYPE_I32, 1, &s) != KILN_OK) {
        free(ds);
        return NULL;
    }
    test_rng_state = seed;
    float *X = s->X;
    int32_t *y = s->y;
    for (int64_t r = 0; r < n; r++) {
        int c = (int)(test_rng_u64() % CLASSES);
        y[r] = c;
        for (int j = 0; j < FEAT; j++) {
            double centre = 0.0;
            if (j == c) centre = 2.5;
            if (j == c + 4) centre = c % 2 ? -2.5 : 2.5;
            X[r * FEAT + j] = (float)(centre + 0.6 * rnd_normal());
        }
    }
    ds->n_classes = CLASSES;
    ds->splits[KILN_SPLIT_TRAIN] = s;
    return ds;
}

/* Targets y = X W + b + small noise, [n, 2]. */
static struct kiln_dataset *make_linear(int64_t n, uint64_t seed)
{
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    int64_t feat = FEAT;
    struct kiln_split *s = NULL;
    if (kiln_split_create(n, 1, &feat, KILN_DTYPE_F32, KILN_DTYPE_F32, 2, &s) != KILN_OK) {
        free(ds);
        return NULL;
    }
    test_rng_state = seed;
    static const double W[2][FEAT] = {{0.8, -0.5, 0.3, 0.0, 1.2, -0.7, 0.2, 0.4},
                                      {-0.3, 0.6, 0.9, -1.1, 0.0, 0.5, -0.4, 0.1}};
    static const double B[2] = {0.5, -1.0};
    float *X = s->X, *y = s->y;
    for (int64_t r = 0; r < n; r++) {
        for (int j = 0; j < FEAT; j++) X[r * FEAT + j] = (float)rnd_normal();
        for (int k = 0; k < 2; k++) {
            double t = B[k] + 0.05 * rnd_normal();
            for (int j = 0; j < FEAT; j++) t += W[k][j] * X[r * FEAT + j];
            y[r * 2 + k] = (float)t;
        }
    }
    ds->n_classes = 0;
    ds->splits[KILN_SPLIT_TRAIN] = s;
    return ds;
}

/* --- configs ---------------------------------------------------------------------- */

static void add_layer(struct kiln_model_config *m, enum kiln_layer_kind kind, int64_t units)
{
    struct kiln_layer_config *l = &m->layers[m->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->units = units;
    l->bias = true;
    l->init = KILN_INIT_HE_NORMAL;
    l->negative_slope = 0.01f;
    l->rate = 0.5f;
    l->line = m->n_layers;
}

/* input [8] -> dense 32 -> relu -> dense 4, softmax cross-entropy, Adam. */
static void base_config(struct kiln_config *c)
{
    memset(c, 0, sizeof *c);
    c->model.input_ndim = 1;
    c->model.input_shape[0] = FEAT;
    add_layer(&c->model, KILN_LAYER_DENSE, 32);
    add_layer(&c->model, KILN_LAYER_RELU, 0);
    add_layer(&c->model, KILN_LAYER_DENSE, CLASSES);
    c->model.loss = KILN_LOSS_SOFTMAX_XENT;
    struct kiln_train_config *t = &c->train;
    t->epochs = 20;
    t->batch_size = 32;
    t->seed = 1;
    t->optimizer = KILN_CFG_ADAM;
    t->lr = 1e-2f;
    t->beta1 = 0.9f;
    t->beta2 = 0.999f;
    t->eps = 1e-8f;
    t->schedule = KILN_SCHED_CONSTANT;
    t->gamma = 0.1f;
    t->step_size = 1;
    t->val_fraction = 0.2f;
    strcpy(t->early_stopping_metric, "val_loss");
    t->early_stopping_mode = KILN_MODE_MIN;
    t->patience = 0;
    t->checkpoint_every = 0;
    strcpy(t->device, "cpu");
    t->threads = THREADS;
}

/* base_config with a regression MLP for make_linear's 2 targets: dense 16
 * -> act -> dense 2, MSE. */
static inline void regression_config(struct kiln_config *c, enum kiln_layer_kind act)
{
    base_config(c);
    c->model.n_layers = 0;
    add_layer(&c->model, KILN_LAYER_DENSE, 16);
    add_layer(&c->model, act, 0);
    add_layer(&c->model, KILN_LAYER_DENSE, 2);
    c->model.loss = KILN_LOSS_MSE;
}

/* base_config with dropout: dense hidden -> relu -> dropout(rate) -> dense 4. */
static inline void dropout_config(struct kiln_config *c, int64_t hidden, float rate)
{
    base_config(c);
    c->model.n_layers = 0;
    add_layer(&c->model, KILN_LAYER_DENSE, hidden);
    add_layer(&c->model, KILN_LAYER_RELU, 0);
    add_layer(&c->model, KILN_LAYER_DROPOUT, 0);
    add_layer(&c->model, KILN_LAYER_DENSE, CLASSES);
    c->model.layers[2].rate = rate;
}

#endif
