/* tests/test_train.c: the training loop on synthetic data built in memory.
 *
 * (a) an MLP learns a separable 4-class problem to >= 99% accuracy;
 * (b) two runs with the same seed and threads give bitwise equal parameters,
 *     another seed different ones;
 * (c) resume in memory is bitwise: 2 epochs straight equal 1 epoch, then
 *     parameters + optimizer state + train state copied into a fresh
 *     trainer that runs the rest (also with dropout and a cosine schedule,
 *     where the RNG counters and the schedule's step matter);
 * (d) a huge learning rate stops training with KILN_ERR_NUMERIC naming the
 *     epoch and step, leaving finite parameters;
 * (e) early stopping with patience 1 stops after epoch 2 when the metric
 *     cannot improve (lr 0);
 * (f) model/data shape mismatches are KILN_ERR_SHAPE;
 * (g) MSE regression on a linear target reaches R^2 > 0.95.
 */
#include "test.h"

#include "kernels.h"
#include "kiln/nn.h"

#define THREADS 2

static struct kiln_backend *g_be;

#include "train-fixture.h"

/* Trains cfg on ds from scratch; *params (caller frees) gets the result. */
static enum kiln_status train_params(const struct kiln_config *cfg, const struct kiln_dataset *ds,
                                     float **params, int64_t *n)
{
    struct kiln_trainer *t = NULL;
    *params = NULL;
    enum kiln_status st = kiln_trainer_create(cfg, ds, g_be, &t);
    if (st == KILN_OK) st = kiln_trainer_run(t, NULL);
    if (st == KILN_OK) {
        struct kiln_model *m = kiln_trainer_model(t);
        *n = kiln_model_param_count(m);
        *params = malloc((size_t)*n * sizeof(float));
        st = *params ? kiln_model_get_params(m, *params) : KILN_ERR_NOMEM;
    }
    kiln_trainer_free(t);
    return st;
}

/* --- callbacks ---------------------------------------------------------------------- */

struct progress {
    int epochs_seen;
    int64_t steps_seen;
    double first_loss, last_loss;
    int bad_order;
    int stopping_at;      /* epoch whose report said stopping (0: none) */
    int stop_after;       /* on_epoch fails after this epoch (0: never) */
    bool had_val;
};

static void on_step(void *user, int64_t epoch, int64_t step, int64_t steps, double loss,
                    double sps)
{
    struct progress *p = user;
    (void)epoch;
    (void)loss;
    (void)sps;
    if (step < 1 || step > steps) p->bad_order++;
    p->steps_seen++;
}

static enum kiln_status on_epoch(void *user, struct kiln_trainer *t,
                                 const struct kiln_epoch_report *r)
{
    struct progress *p = user;
    (void)t;
    if (r->epoch != p->epochs_seen + 1) p->bad_order++;
    p->epochs_seen = (int)r->epoch;
    if (r->epoch == 1) p->first_loss = r->train_loss;
    p->last_loss = r->train_loss;
    p->had_val = r->has_val;
    if (r->stopping) p->stopping_at = (int)r->epoch;
    if (p->stop_after && r->epoch == p->stop_after)
        return kiln_errorf(KILN_ERR_INTERNAL, "test: stopping after epoch %lld", (long long)r->epoch);
    return KILN_OK;
}

/* ==================================================================================
 * (a) learning a separable problem
 * ================================================================================== */

TEST(learns_blobs)
{
    struct kiln_config cfg;
    base_config(&cfg);
    struct kiln_dataset *ds = make_blobs(800, 11);
    ASSERT(ds != NULL);
    struct kiln_trainer *t = NULL;
    struct progress p = {0};
    struct kiln_train_callbacks cb = {.on_step = on_step, .on_epoch = on_epoch, .user = &p};
    struct kiln_metrics met = {0};
    enum kiln_status st = kiln_trainer_create(&cfg, ds, g_be, &t);
    if (st == KILN_OK) st = kiln_trainer_run(t, &cb);
    if (st == KILN_OK)
        st = kiln_evaluate(kiln_trainer_model(t), ds->splits[KILN_SPLIT_TRAIN], NULL, 800,
                           CLASSES, &met);
    struct kiln_train_state state = t ? kiln_trainer_state(t) : (struct kiln_train_state){0};
    kiln_trainer_free(t);
    free_dataset(ds);
    double acc = met.accuracy;
    int64_t diag = 0;
    if (met.confusion)
        for (int c = 0; c < CLASSES; c++) diag += met.confusion[c * CLASSES + c];
    kiln_metrics_free(&met);
    ASSERT_OK(st);
    fprintf(stderr, "   accuracy %.4f, train loss %.4f -> %.4f\n", acc, p.first_loss, p.last_loss);
    ASSERT(acc >= 0.99);
    ASSERT_EQ_INT(llround(acc * 800), diag);
    ASSERT_EQ_INT(20, p.epochs_seen);
    ASSERT_EQ_INT(0, p.bad_order);
    /* 640 training rows (val_fraction 0.2 of 800) in batches of 32. */
    ASSERT_EQ_INT(20 * 20, p.steps_seen);
    ASSERT_EQ_INT(20, state.epoch);
    ASSERT_EQ_INT(400, state.step);
    ASSERT(p.had_val);
    ASSERT(p.last_loss < 0.2 * p.first_loss);
}

/* ==================================================================================
 * (b) determinism
 * ================================================================================== */

TEST(deterministic)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.epochs = 3;
    struct kiln_dataset *ds = make_blobs(300, 12);
    ASSERT(ds != NULL);
    float *a = NULL, *b = NULL, *c = NULL;
    int64_t n = 0;
    enum kiln_status st = train_params(&cfg, ds, &a, &n);
    if (st == KILN_OK) st = train_params(&cfg, ds, &b, &n);
    cfg.train.seed = 2;
    if (st == KILN_OK) st = train_params(&cfg, ds, &c, &n);
    free_dataset(ds);
    bool same = st == KILN_OK && memcmp(a, b, (size_t)n * sizeof(float)) == 0;
    bool differ = st == KILN_OK && memcmp(a, c, (size_t)n * sizeof(float)) != 0;
    free(a);
    free(b);
    free(c);
    ASSERT_OK(st);
    ASSERT(same);   /* same seed, same threads: the same bits */
    ASSERT(differ); /* another seed: another initialisation and shuffle */
}

/* ==================================================================================
 * (c) resume in memory
 * ================================================================================== */

/* Runs cfg (epochs E) straight, and again split as: a trainer stopped after
 * `first` epochs (by its own config's epochs, or by a callback when
 * stop_by_callback), whose parameters, optimizer state and train state go
 * into a fresh trainer that runs the rest. Returns 0 when bitwise equal. */
static int resume_matches(const struct kiln_config *cfg, const struct kiln_dataset *ds, int first,
                          bool stop_by_callback)
{
    int ret = 1;
    float *straight = NULL, *params = NULL, *optim = NULL, *resumed = NULL;
    struct kiln_trainer *b = NULL, *c = NULL;
    int64_t n = 0;
    if (train_params(cfg, ds, &straight, &n) != KILN_OK) goto fail;

    struct kiln_config cfg_b = *cfg;
    struct progress p = {.stop_after = stop_by_callback ? first : 0};
    struct kiln_train_callbacks cb = {.on_epoch = on_epoch, .user = &p};
    if (!stop_by_callback) cfg_b.train.epochs = first;
    if (kiln_trainer_create(&cfg_b, ds, g_be, &b) != KILN_OK) goto fail;
    enum kiln_status st = kiln_trainer_run(b, &cb);
    if (st != (stop_by_callback ? KILN_ERR_INTERNAL : KILN_OK)) goto fail;
    struct kiln_train_state state = kiln_trainer_state(b);
    if (state.epoch != first) {
        fprintf(stderr, "stopped trainer is at epoch %lld, expected %d\n", (long long)state.epoch,
                first);
        goto fail;
    }
    int64_t on = kiln_trainer_optim_size(b);
    params = malloc((size_t)n * sizeof(float));
    optim = malloc((size_t)(on ? on : 1) * sizeof(float));
    if (!params || !optim || kiln_model_get_params(kiln_trainer_model(b), params) != KILN_OK ||
        kiln_trainer_get_optim(b, optim) != KILN_OK)
        goto fail;

    /* The fresh trainer has its own seeded initialisation, then takes B's. */
    if (kiln_trainer_create(cfg, ds, g_be, &c) != KILN_OK) goto fail;
    if (kiln_trainer_optim_size(c) != on) goto fail;
    if (kiln_model_set_params(kiln_trainer_model(c), params) != KILN_OK ||
        kiln_trainer_set_optim(c, optim) != KILN_OK)
        goto fail;
    kiln_trainer_set_state(c, &state);
    if (kiln_trainer_run(c, NULL) != KILN_OK) goto fail;
    if (kiln_trainer_state(c).epoch != cfg->train.epochs) goto fail;
    resumed = malloc((size_t)n * sizeof(float));
    if (!resumed || kiln_model_get_params(kiln_trainer_model(c), resumed) != KILN_OK) goto fail;
    if (memcmp(straight, resumed, (size_t)n * sizeof(float)) != 0) {
        int64_t first_diff = 0;
        while (first_diff < n && straight[first_diff] == resumed[first_diff]) first_diff++;
        fprintf(stderr, "resumed parameters differ from the straight run at %lld: %.9g vs %.9g\n",
                (long long)first_diff, (double)resumed[first_diff], (double)straight[first_diff]);
        goto fail;
    }
    /* And the resumed trainer's state is the straight run's. */
    ret = 0;
fail:
    if (ret) fprintf(stderr, "resume: %s\n", kiln_last_error());
    kiln_trainer_free(b);
    kiln_trainer_free(c);
    free(straight);
    free(params);
    free(optim);
    free(resumed);
    return ret;
}

TEST(resume_bitwise)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.epochs = 2;
    struct kiln_dataset *ds = make_blobs(300, 13);
    ASSERT(ds != NULL);
    int bad = resume_matches(&cfg, ds, 1, false);
    free_dataset(ds);
    ASSERT(!bad);
}

/* Dropout masks (keyed by seed and step), a cosine schedule with warm-up
 * (keyed by the global step and the planned epochs) and SGD momentum state:
 * the run is stopped after epoch 2 of 4 by its callback, as a crash would. */
TEST(resume_bitwise_dropout_cosine)
{
    struct kiln_config cfg;
    base_config(&cfg);
    struct kiln_model_config *m = &cfg.model;
    m->n_layers = 0;
    add_layer(m, KILN_LAYER_DENSE, 24);
    add_layer(m, KILN_LAYER_TANH, 0);
    add_layer(m, KILN_LAYER_DROPOUT, 0);
    m->layers[m->n_layers - 1].rate = 0.3f;
    add_layer(m, KILN_LAYER_DENSE, CLASSES);
    m->label_smoothing = 0.1f;
    cfg.train.epochs = 4;
    cfg.train.optimizer = KILN_CFG_SGD;
    cfg.train.lr = 0.05f;
    cfg.train.momentum = 0.9f;
    cfg.train.nesterov = true;
    cfg.train.weight_decay = 1e-3f;
    cfg.train.schedule = KILN_SCHED_COSINE;
    cfg.train.warmup_steps = 5;
    cfg.train.min_lr = 1e-4f;
    cfg.train.clip_norm = 1.0f;
    cfg.train.patience = 3; /* early-stopping state travels too */
    struct kiln_dataset *ds = make_blobs(300, 14);
    ASSERT(ds != NULL);
    int bad = resume_matches(&cfg, ds, 2, true);
    free_dataset(ds);
    ASSERT(!bad);
}

/* ==================================================================================
 * (d) NaN guard
 * ================================================================================== */

TEST(nan_guard)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.optimizer = KILN_CFG_SGD;
    cfg.train.lr = 1e30f;
    cfg.train.epochs = 3;
    struct kiln_dataset *ds = make_blobs(300, 15);
    ASSERT(ds != NULL);
    struct kiln_trainer *t = NULL;
    enum kiln_status st = kiln_trainer_create(&cfg, ds, g_be, &t);
    if (st != KILN_OK) {
        free_dataset(ds);
        ASSERT_OK(st);
    }
    st = kiln_trainer_run(t, NULL);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", kiln_last_error());
    struct kiln_model *m = kiln_trainer_model(t);
    int64_t n = kiln_model_param_count(m), bad = 0;
    float *p = malloc((size_t)n * sizeof(float));
    if (p && kiln_model_get_params(m, p) == KILN_OK)
        for (int64_t i = 0; i < n; i++) bad += !isfinite(p[i]);
    struct kiln_train_state state = kiln_trainer_state(t);
    free(p);
    kiln_trainer_free(t);
    free_dataset(ds);
    fprintf(stderr, "   %s\n", msg);
    ASSERT_EQ_INT(KILN_ERR_NUMERIC, st);
    ASSERT(strstr(msg, "epoch 1") != NULL);
    ASSERT(strstr(msg, "step") != NULL);
    /* The parameters are those of the last good step: finite. */
    ASSERT_EQ_INT(0, bad);
    ASSERT_EQ_INT(0, state.epoch);
    ASSERT(state.step >= 1);
}

/* ==================================================================================
 * (e) early stopping
 * ================================================================================== */

TEST(early_stopping)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.lr = 0.0f; /* nothing moves: val_loss is the same every epoch */
    cfg.train.epochs = 10;
    cfg.train.patience = 1;
    struct kiln_dataset *ds = make_blobs(200, 16);
    ASSERT(ds != NULL);
    struct kiln_trainer *t = NULL;
    struct progress p = {0};
    struct kiln_train_callbacks cb = {.on_epoch = on_epoch, .user = &p};
    enum kiln_status st = kiln_trainer_create(&cfg, ds, g_be, &t);
    if (st == KILN_OK) st = kiln_trainer_run(t, &cb);
    struct kiln_train_state s = t ? kiln_trainer_state(t) : (struct kiln_train_state){0};
    kiln_trainer_free(t);
    free_dataset(ds);
    ASSERT_OK(st);
    ASSERT_EQ_INT(2, s.epoch);
    ASSERT_EQ_INT(2, p.epochs_seen);
    ASSERT_EQ_INT(2, p.stopping_at);
    ASSERT_EQ_INT(1, s.best_epoch);
    ASSERT_EQ_INT(1, s.bad_epochs);
    ASSERT(isfinite(s.best_metric));
}

/* Early stopping without validation data is a config error. */
TEST(early_stopping_needs_val)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.patience = 2;
    cfg.train.val_fraction = 0.0f;
    struct kiln_dataset *ds = make_blobs(100, 17);
    ASSERT(ds != NULL);
    struct kiln_trainer *t = NULL;
    enum kiln_status st = kiln_trainer_create(&cfg, ds, g_be, &t);
    kiln_trainer_free(t);
    free_dataset(ds);
    ASSERT_EQ_INT(KILN_ERR_CONFIG, st);
}

/* ==================================================================================
 * (f) shape mismatches
 * ================================================================================== */

TEST(shape_mismatch)
{
    struct kiln_dataset *ds = make_blobs(100, 18);
    ASSERT(ds != NULL);
    struct kiln_trainer *t = NULL;
    struct kiln_config cfg;

    base_config(&cfg);
    cfg.model.input_shape[0] = FEAT - 1; /* 7 inputs, rows of 8 */
    enum kiln_status st = kiln_trainer_create(&cfg, ds, g_be, &t);
    char msg1[512];
    snprintf(msg1, sizeof msg1, "%s", kiln_last_error());
    kiln_trainer_free(t);
    t = NULL;

    base_config(&cfg);
    cfg.model.layers[2].units = CLASSES - 1; /* 3 outputs, 4 classes */
    enum kiln_status st2 = kiln_trainer_create(&cfg, ds, g_be, &t);
    char msg2[512];
    snprintf(msg2, sizeof msg2, "%s", kiln_last_error());
    kiln_trainer_free(t);
    t = NULL;

    base_config(&cfg); /* a [2, 4] input is not rows of [8] */
    cfg.model.input_ndim = 2;
    cfg.model.input_shape[0] = 2;
    cfg.model.input_shape[1] = 4;
    cfg.model.n_layers = 0;
    add_layer(&cfg.model, KILN_LAYER_FLATTEN, 0);
    add_layer(&cfg.model, KILN_LAYER_DENSE, CLASSES);
    enum kiln_status st3 = kiln_trainer_create(&cfg, ds, g_be, &t);
    kiln_trainer_free(t);
    t = NULL;

    base_config(&cfg); /* regression loss on class labels */
    cfg.model.loss = KILN_LOSS_MSE;
    enum kiln_status st4 = kiln_trainer_create(&cfg, ds, g_be, &t);
    kiln_trainer_free(t);
    t = NULL;
    free_dataset(ds);

    ASSERT_EQ_INT(KILN_ERR_SHAPE, st);
    ASSERT(strstr(msg1, "[7]") && strstr(msg1, "[8]"));
    ASSERT_EQ_INT(KILN_ERR_SHAPE, st2);
    ASSERT(strstr(msg2, "3") && strstr(msg2, "4 classes"));
    ASSERT_EQ_INT(KILN_ERR_SHAPE, st3);
    ASSERT_EQ_INT(KILN_ERR_SHAPE, st4);

    /* Classification loss on regression targets, and an output count that
     * differs from the targets'. */
    struct kiln_dataset *reg = make_linear(100, 19);
    ASSERT(reg != NULL);
    base_config(&cfg);
    st = kiln_trainer_create(&cfg, reg, g_be, &t);
    kiln_trainer_free(t);
    t = NULL;
    base_config(&cfg);
    cfg.model.loss = KILN_LOSS_MSE;
    cfg.model.layers[2].units = 3; /* targets have 2 */
    st2 = kiln_trainer_create(&cfg, reg, g_be, &t);
    kiln_trainer_free(t);
    free_dataset(reg);
    ASSERT_EQ_INT(KILN_ERR_SHAPE, st);
    ASSERT_EQ_INT(KILN_ERR_SHAPE, st2);
}

/* ==================================================================================
 * (g) regression
 * ================================================================================== */

TEST(regression_mse)
{
    struct kiln_config cfg;
    regression_config(&cfg, KILN_LAYER_TANH);
    cfg.train.epochs = 30;
    struct kiln_dataset *ds = make_linear(600, 20);
    ASSERT(ds != NULL);
    struct kiln_trainer *t = NULL;
    struct kiln_metrics met = {0};
    enum kiln_status st = kiln_trainer_create(&cfg, ds, g_be, &t);
    if (st == KILN_OK) st = kiln_trainer_run(t, NULL);
    if (st == KILN_OK)
        st = kiln_evaluate(kiln_trainer_model(t), ds->splits[KILN_SPLIT_TRAIN], NULL, 600, 0, &met);
    kiln_trainer_free(t);
    free_dataset(ds);
    double r2 = met.r2, mse = met.mse;
    kiln_metrics_free(&met);
    ASSERT_OK(st);
    fprintf(stderr, "   R^2 %.4f, mse %.4f\n", r2, mse);
    ASSERT(r2 > 0.95);
    ASSERT(mse < 0.2);
}

int main(void)
{
    if (kiln_cpu_backend_create(THREADS, &g_be) != KILN_OK) {
        fprintf(stderr, "cannot create the cpu backend: %s\n", kiln_last_error());
        return 1;
    }
    RUN(learns_blobs);
    RUN(deterministic);
    RUN(resume_bitwise);
    RUN(resume_bitwise_dropout_cosine);
    RUN(nan_guard);
    RUN(early_stopping);
    RUN(early_stopping_needs_val);
    RUN(shape_mismatch);
    RUN(regression_mse);
    kiln_backend_free(g_be);
    return test_summary();
}
