/* tests/test_train_device.c: the trainer's device step (step values in
 * backend memory, guard and clipping on the device, the host reading back
 * every few steps, the step captured into a CUDA graph).
 *
 * CPU cases (always run): the device step forced onto the CPU backend gives
 * bitwise the weights, losses and NaN-guard message of the classic step, for
 * Adam, SGD with momentum + dropout + clipping + cosine schedule + label
 * smoothing, and MSE regression, read back every step or every 7.
 * Streaming forced onto the CPU too (batches through two host and two
 * device stages, the next batch's copy queued while the step runs): the
 * same weights, per-step losses and NaN message as the resident step, for
 * float and uint8 rows, training sets that are not a multiple of the batch,
 * a single batch per epoch, evaluation and early stopping.
 *
 * CUDA cases (with a GPU; else the program exits 77 after the CPU cases
 * pass): the gradients of a tiny model after one step on CUDA vs the CPU
 * within stated tolerances, two CUDA runs bitwise identical (cuBLAS and
 * kiln's SGEMM), CUDA training reaching the CPU's accuracy, streamed CUDA
 * training (pinned stages, copies on the second stream) bitwise equal to
 * resident CUDA training.
 *
 *   test_train_device           CPU and CUDA cases (77 without a GPU)
 *   test_train_device --cpu     CPU cases only
 *   test_train_device --stream  the CPU streaming cases only
 */
#include "core/backend-mem.h"
#include "test.h"

#include "kernels.h"
#include "kiln/backend.h"
#include "kiln/nn.h"
#include "nn/model-internal.h"

#define THREADS 2

static struct kiln_backend *g_be;

#include "train-fixture.h"

#define MAX_STEP_LOSSES 1024

struct run_result {
    float *params;
    int64_t n;
    double losses[64];
    double step_losses[MAX_STEP_LOSSES]; /* in on_step's order */
    int epochs;
    int64_t steps_seen;
    double acc;
    enum kiln_status st;
    char msg[512];
    int64_t step;
};

static void on_step(void *user, int64_t epoch, int64_t step, int64_t steps, double loss,
                    double sps)
{
    (void)epoch, (void)step, (void)steps, (void)sps;
    struct run_result *res = user;
    if (res->steps_seen < MAX_STEP_LOSSES) res->step_losses[res->steps_seen] = loss;
    res->steps_seen++;
}

static enum kiln_status on_epoch(void *user, struct kiln_trainer *t,
                                 const struct kiln_epoch_report *r)
{
    struct run_result *res = user;
    (void)t;
    if (res->epochs < 64) res->losses[res->epochs] = r->train_loss;
    res->epochs++;
    if (r->has_val) res->acc = r->val.accuracy;
    return KILN_OK;
}

/* Called on the new trainer's model before a run, when set (a test that
 * needs particular weights). */
static void (*g_prepare)(struct kiln_model *m);

/* How a run trains: the backend's own choice; the device step forced on;
 * the device step forced on and streaming from host memory. */
enum run_path { PATH_OWN, PATH_DEVICE, PATH_STREAM };

/* Trains cfg on ds on backend be along path, the device step reading back
 * every sync_every steps (0: the default). */
static void run(const struct kiln_config *cfg, const struct kiln_dataset *ds,
                struct kiln_backend *be, enum run_path path, int sync_every,
                struct run_result *out)
{
    memset(out, 0, sizeof *out);
    struct kiln_trainer *t = NULL;
    struct kiln_train_callbacks cb = {.on_step = on_step, .on_epoch = on_epoch, .user = out};
    out->st = kiln_trainer_create(cfg, ds, be, &t);
    if (out->st == KILN_OK && g_prepare) g_prepare(kiln_trainer_model(t));
    if (out->st == KILN_OK && path != PATH_OWN) nn_trainer_force_device_path(t, true, sync_every);
    if (out->st == KILN_OK && path == PATH_STREAM) out->st = nn_trainer_force_streaming(t);
    if (out->st == KILN_OK) out->st = kiln_trainer_run(t, &cb);
    snprintf(out->msg, sizeof out->msg, "%s", out->st == KILN_OK ? "" : kiln_last_error());
    if (t) {
        struct kiln_model *m = kiln_trainer_model(t);
        out->n = kiln_model_param_count(m);
        out->params = malloc((size_t)out->n * sizeof(float));
        if (!out->params || kiln_model_get_params(m, out->params) != KILN_OK) abort();
        out->step = kiln_trainer_state(t).step;
    }
    kiln_trainer_free(t);
}

static bool same_run(const struct run_result *a, const struct run_result *b)
{
    return a->st == b->st && a->n == b->n && a->epochs == b->epochs &&
           a->steps_seen == b->steps_seen && a->step == b->step &&
           memcmp(a->params, b->params, (size_t)a->n * sizeof(float)) == 0 &&
           memcmp(a->losses, b->losses, (size_t)a->epochs * sizeof(double)) == 0 &&
           memcmp(a->step_losses, b->step_losses,
                  (size_t)(a->steps_seen < MAX_STEP_LOSSES ? a->steps_seen : MAX_STEP_LOSSES) *
                      sizeof(double)) == 0 &&
           !strcmp(a->msg, b->msg);
}

/* ==================================================================================
 * CPU: the device step equals the classic step bit for bit
 * ================================================================================== */

/* Takes ds (freed here; NULL fails). expect: the classic run's status, so
 * that two runs failing the same way (or not failing where the guard
 * should) cannot pass as "the same". */
static void check_device_equals_classic(const struct kiln_config *cfg, struct kiln_dataset *ds,
                                        const char *what, enum kiln_status expect)
{
    if (!ds) TEST_FAIL("%s: could not make the dataset", what);
    struct run_result classic, dev1, dev7;
    run(cfg, ds, g_be, PATH_OWN, 0, &classic);
    run(cfg, ds, g_be, PATH_DEVICE, 1, &dev1);
    run(cfg, ds, g_be, PATH_DEVICE, 7, &dev7);
    bool ok1 = same_run(&classic, &dev1), ok7 = same_run(&classic, &dev7);
    fprintf(stderr, "   %s: classic %s (%lld steps, %s), device/1 %s, device/7 %s\n", what,
            kiln_status_name(classic.st), (long long)classic.step, classic.msg,
            ok1 ? "same" : "DIFFERENT", ok7 ? "same" : "DIFFERENT");
    if (!ok1 || !ok7) fprintf(stderr, "   device: %s / %s\n", dev1.msg, dev7.msg);
    free(classic.params);
    free(dev1.params);
    free(dev7.params);
    free_dataset(ds);
    if (classic.st != expect)
        TEST_FAIL("%s: the classic run gave %s, expected %s", what, kiln_status_name(classic.st),
                  kiln_status_name(expect));
    if (!ok1 || !ok7) TEST_FAIL("%s: the device step differs from the classic one", what);
}

TEST(device_step_adam)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.epochs = 3;
    /* 301 rows: a short last batch. */
    check_device_equals_classic(&cfg, make_blobs(301, 12), "adam", KILN_OK);
}

TEST(device_step_sgd_dropout_clip_cosine)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.model.n_layers = 0;
    add_layer(&cfg.model, KILN_LAYER_DENSE, 32);
    add_layer(&cfg.model, KILN_LAYER_GELU, 0);
    add_layer(&cfg.model, KILN_LAYER_DROPOUT, 0);
    add_layer(&cfg.model, KILN_LAYER_DENSE, 16);
    add_layer(&cfg.model, KILN_LAYER_TANH, 0);
    add_layer(&cfg.model, KILN_LAYER_DENSE, CLASSES);
    cfg.model.label_smoothing = 0.1f;
    cfg.train.optimizer = KILN_CFG_SGD;
    cfg.train.lr = 0.05f;
    cfg.train.momentum = 0.9f;
    cfg.train.nesterov = true;
    cfg.train.weight_decay = 1e-4f;
    cfg.train.clip_norm = 0.5f;
    cfg.train.schedule = KILN_SCHED_COSINE;
    cfg.train.warmup_steps = 5;
    cfg.train.epochs = 3;
    check_device_equals_classic(&cfg, make_blobs(250, 13), "sgd+dropout+clip+cosine", KILN_OK);
}

TEST(device_step_mse)
{
    struct kiln_config cfg;
    regression_config(&cfg, KILN_LAYER_SIGMOID);
    cfg.train.optimizer = KILN_CFG_ADAMW;
    cfg.train.weight_decay = 0.01f;
    cfg.train.epochs = 3;
    check_device_equals_classic(&cfg, make_linear(200, 20), "mse/adamw", KILN_OK);
}

/* A huge learning rate: the same KILN_ERR_NUMERIC message (epoch, step,
 * tensor), the same last good weights, whatever the read-back interval. */
TEST(device_step_nan_guard)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.optimizer = KILN_CFG_SGD;
    cfg.train.lr = 1e30f;
    cfg.train.epochs = 3;
    check_device_equals_classic(&cfg, make_blobs(300, 15), "nan guard", KILN_ERR_NUMERIC);
}

/* ==================================================================================
 * CPU: the streamed step equals the resident one bit for bit
 * ================================================================================== */

/* make_blobs with rows stored as uint8 (x scaled into [0, 255]), as image
 * datasets are: the device gather converts them from the stage. */
static struct kiln_dataset *make_blobs_u8(int64_t n, uint64_t seed)
{
    struct kiln_dataset *f = make_blobs(n, seed);
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    int64_t feat = FEAT;
    struct kiln_split *s = NULL;
    if (!f || !ds ||
        kiln_split_create(n, 1, &feat, KILN_DTYPE_U8, KILN_DTYPE_I32, 1, &s) != KILN_OK) {
        free_dataset(f);
        free(ds);
        return NULL;
    }
    const struct kiln_split *fs = f->splits[KILN_SPLIT_TRAIN];
    const float *X = fs->X;
    uint8_t *U = s->X;
    for (int64_t i = 0; i < n * FEAT; i++) {
        double v = 128.0 + 30.0 * X[i];
        U[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    memcpy(s->y, fs->y, (size_t)n * sizeof(int32_t));
    ds->n_classes = CLASSES;
    ds->splits[KILN_SPLIT_TRAIN] = s;
    free_dataset(f);
    return ds;
}

/* Takes ds (freed here; NULL fails). The classic step, the resident device
 * step and the streamed device step (read back every step, every 7, and at
 * the default interval) give the same weights, epoch and per-step losses,
 * step counts and message; the classic run's status is expect. *epochs_out
 * (when not NULL): the epochs the classic run reported. */
static void check_stream_equals_resident(const struct kiln_config *cfg, struct kiln_dataset *ds,
                                         const char *what, enum kiln_status expect,
                                         int *epochs_out)
{
    if (!ds) TEST_FAIL("%s: could not make the dataset", what);
    enum { RUNS = 5 };
    static const enum run_path paths[RUNS] = {PATH_OWN, PATH_DEVICE, PATH_STREAM, PATH_STREAM,
                                              PATH_STREAM};
    static const int every[RUNS] = {0, 7, 1, 7, 0};
    static const char *names[RUNS] = {"classic", "device/7", "stream/1", "stream/7",
                                      "stream/default"};
    struct run_result r[RUNS];
    bool same = true;
    for (int i = 0; i < RUNS; i++) {
        run(cfg, ds, g_be, paths[i], every[i], &r[i]);
        bool ok = i == 0 || same_run(&r[0], &r[i]);
        if (!ok) fprintf(stderr, "   %s: %s differs (%s: %s)\n", what, names[i],
                         kiln_status_name(r[i].st), r[i].msg);
        same = same && ok;
    }
    fprintf(stderr, "   %s: classic %s (%d epochs, %lld steps%s%s), resident and streamed %s\n",
            what, kiln_status_name(r[0].st), r[0].epochs, (long long)r[0].step,
            r[0].msg[0] ? ", " : "", r[0].msg, same ? "the same" : "DIFFERENT");
    enum kiln_status got = r[0].st;
    int64_t steps = r[0].step;
    if (epochs_out) *epochs_out = r[0].epochs;
    for (int i = 0; i < RUNS; i++) free(r[i].params);
    free_dataset(ds);
    if (got != expect)
        TEST_FAIL("%s: the classic run gave %s, expected %s", what, kiln_status_name(got),
                  kiln_status_name(expect));
    if (expect == KILN_OK && steps < 1) TEST_FAIL("%s: no step ran", what);
    if (!same) TEST_FAIL("%s: the streamed step differs from the resident one", what);
}

/* 2 epochs, Adam, 301 rows less a validation fifth: 241 training rows,
 * 7 full batches of 32 and one of 17; evaluation after each epoch. */
TEST(stream_adam_partial_batch)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.epochs = 2;
    check_stream_equals_resident(&cfg, make_blobs(301, 12), "stream adam", KILN_OK, NULL);
}

/* uint8 rows (converted by the device gather from the stage), dropout
 * keyed per step, SGD with momentum, clipping, a step schedule; 250 rows,
 * no validation: 7 full batches and one of 26. */
TEST(stream_u8_dropout_sgd)
{
    struct kiln_config cfg;
    dropout_config(&cfg, 32, 0.2f);
    cfg.train.optimizer = KILN_CFG_SGD;
    cfg.train.lr = 0.05f;
    cfg.train.momentum = 0.9f;
    cfg.train.clip_norm = 1.0f;
    cfg.train.schedule = KILN_SCHED_STEP;
    cfg.train.val_fraction = 0.0f;
    cfg.train.epochs = 3;
    check_stream_equals_resident(&cfg, make_blobs_u8(250, 21), "stream u8+dropout+sgd", KILN_OK,
                                 NULL);
}

/* Regression targets (float labels, gathered on the device beside the
 * streamed rows); 200 rows: 6 full batches and one of 8. */
TEST(stream_mse)
{
    struct kiln_config cfg;
    regression_config(&cfg, KILN_LAYER_TANH);
    cfg.train.val_fraction = 0.0f;
    cfg.train.epochs = 2;
    check_stream_equals_resident(&cfg, make_linear(200, 22), "stream mse", KILN_OK, NULL);
}

/* A device error mid-epoch (the upload of the epoch's 6th batch failing,
 * by fault injection): training stops with that error, in step with what
 * ran (the steps before it, no more), and everything is freed (ASan). */
TEST(stream_upload_failure_stops)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.val_fraction = 0.0f;
    cfg.train.epochs = 2;
    struct kiln_dataset *ds = make_blobs(300, 26);
    ASSERT(ds != NULL);
    struct run_result r;
    backend_fail_upload_async_at(6);
    run(&cfg, ds, g_be, PATH_STREAM, 1, &r);
    backend_fail_upload_async_at(0);
    free(r.params);
    free_dataset(ds);
    ASSERT_EQ_INT(KILN_ERR_BACKEND, r.st);
    if (!strstr(r.msg, "injected failure")) TEST_FAIL("message: %s", r.msg);
    /* Uploads 1..5 carried batches 0..4; the 6th (batch 5's) failed while
     * step 4 ran: steps 0..3 were read back and counted, step 4 not. */
    ASSERT_EQ_INT(4, r.step);
}

/* Epochs of one batch (nothing to prefetch) and of exactly two. */
TEST(stream_one_and_two_batches)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.val_fraction = 0.0f;
    cfg.train.epochs = 3;
    check_stream_equals_resident(&cfg, make_blobs(20, 23), "stream 1 batch", KILN_OK, NULL);
    check_stream_equals_resident(&cfg, make_blobs(64, 24), "stream 2 batches", KILN_OK, NULL);
}

/* Early stopping on validation loss, patience 1, on labels that are noise
 * (nothing to learn, so the validation loss soon stops improving): the
 * streamed run stops after the same epoch, well before the last. */
TEST(stream_early_stop)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.epochs = 30;
    cfg.train.patience = 1;
    struct kiln_dataset *ds = make_blobs(150, 25);
    if (ds) {
        int32_t *y = ds->splits[KILN_SPLIT_TRAIN]->y;
        for (int64_t i = 0; i < 150; i++) y[i] = (int32_t)(test_rng_u64() % CLASSES);
    }
    int epochs = 0;
    check_stream_equals_resident(&cfg, ds, "stream early stop", KILN_OK, &epochs);
    if (epochs >= cfg.train.epochs) TEST_FAIL("early stopping never stopped the run");
}

/* A bad step in the middle of an epoch, while the next batch's copy is
 * queued: the same NaN message (the bad step is re-run from its stage) and
 * the same last good weights. */
TEST(stream_nan_guard)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.optimizer = KILN_CFG_SGD;
    cfg.train.lr = 1e30f;
    cfg.train.epochs = 3;
    check_stream_equals_resident(&cfg, make_blobs(300, 15), "stream nan guard",
                                 KILN_ERR_NUMERIC, NULL);
}

/* Weights that make a huge row's first-layer gradient overflow while its
 * loss stays finite: 0.weight scaled by 1e-10, 2.weight by 1e20. */
static void prepare_grad_overflow(struct kiln_model *m)
{
    int64_t n = kiln_model_param_count(m);
    float *p = malloc((size_t)n * sizeof(float));
    if (!p || kiln_model_get_params(m, p) != KILN_OK) abort();
    const struct kiln_param_view *w0 = kiln_model_tensor(m, 0), *w2 = kiln_model_tensor(m, 2);
    for (int64_t j = 0; j < w0->size; j++) p[w0->offset + j] *= 1e-10f;
    for (int64_t j = 0; j < w2->size; j++) p[w2->offset + j] *= 1e20f;
    if (kiln_model_set_params(m, p) != KILN_OK) abort();
    free(p);
}

/* A finite loss with a NaN/Inf gradient at global step 7 (rows 40 and 41
 * fall in the epoch's seventh batch), found while the next batch's copy is
 * queued: the guard's bad step is re-run from its batch, staged again after
 * the streams drain, to name the tensor; the message (0.weight, the step)
 * is the classic one. */
TEST(stream_nan_gradient_rerun)
{
    struct kiln_config cfg;
    base_config(&cfg);
    cfg.train.val_fraction = 0.0f;
    cfg.train.epochs = 2;
    /* Steps too small to move the prepared weights before the huge row. */
    cfg.train.optimizer = KILN_CFG_SGD;
    cfg.train.lr = 1e-30f;
    struct kiln_dataset *ds = make_blobs(300, 16);
    if (ds) {
        /* Two huge rows of two classes: the same logits, so one row's label
         * is not the argmax and its gradient is not zero. */
        float *X = ds->splits[KILN_SPLIT_TRAIN]->X;
        int32_t *y = ds->splits[KILN_SPLIT_TRAIN]->y;
        for (int r = 40; r < 42; r++) {
            for (int j = 0; j < FEAT; j++) X[r * FEAT + j] = 1e22f;
            y[r] = r % CLASSES;
        }
    }
    g_prepare = prepare_grad_overflow;
    check_stream_equals_resident(&cfg, ds, "stream nan gradient", KILN_ERR_NUMERIC, NULL);
    g_prepare = NULL;
}

/* ==================================================================================
 * CUDA (skipped without a GPU)
 * ================================================================================== */

static struct kiln_backend *open_cuda(const char *spec)
{
    char said[256];
    struct kiln_backend *be = NULL;
    if (kiln_backend_open(spec, 1, &be, said, sizeof said) != KILN_OK) {
        fprintf(stderr, "   %s: %s\n", spec, kiln_last_error());
        return NULL;
    }
    fprintf(stderr, "   %s\n", said);
    return be;
}

/* One step's gradients of a tiny model on CUDA vs the CPU, from the same
 * parameters and batch. Tolerance: |cuda - cpu| <= 1e-4 max|g| of the
 * tensor + 1e-5 |g|: FP32 sums in a different order (cuBLAS or kiln's
 * tiles) through two dense layers. */
TEST(cuda_gradients_match_cpu)
{
    static const char *specs[] = {"cuda,gemm=cublas", "cuda,gemm=kiln"};
    struct kiln_config cfg;
    base_config(&cfg);
    struct kiln_dataset *ds = make_blobs(64, 30);
    ASSERT(ds != NULL);
    const struct kiln_split *sp = ds->splits[KILN_SPLIT_TRAIN];
    for (int s = 0; s < 2; s++) {
        struct kiln_backend *cuda = open_cuda(specs[s]);
        ASSERT(cuda != NULL);
        struct kiln_model *mc = NULL, *mg = NULL;
        ASSERT_OK(kiln_model_create(&cfg.model, g_be, 64, &mc));
        ASSERT_OK(kiln_model_create(&cfg.model, cuda, 64, &mg));
        ASSERT_OK(kiln_model_init_params(mc, 7));
        int64_t n = kiln_model_param_count(mc);
        float *p = malloc((size_t)n * sizeof(float)), *gc = malloc((size_t)n * sizeof(float));
        float *gg = malloc((size_t)n * sizeof(float));
        ASSERT_OK(kiln_model_get_params(mc, p));
        ASSERT_OK(kiln_model_set_params(mg, p));
        double lc = 0, lg = 0;
        ASSERT_OK(kiln_model_loss_grad(mc, sp->X, sp->y, 64, &lc));
        ASSERT_OK(kiln_model_loss_grad(mg, sp->X, sp->y, 64, &lg));
        ASSERT_OK(kiln_model_get_grads(mc, gc));
        ASSERT_OK(kiln_model_get_grads(mg, gg));
        ASSERT_NEAR(lc, lg, 1e-5 * fabs(lc) + 1e-6);
        for (int ti = 0; ti < kiln_model_tensor_count(mc); ti++) {
            const struct kiln_param_view *v = kiln_model_tensor(mc, ti);
            double mx = 0;
            for (int64_t j = 0; j < v->size; j++) mx = fmax(mx, fabs(gc[v->offset + j]));
            for (int64_t j = 0; j < v->size; j++) {
                double a = gc[v->offset + j], b = gg[v->offset + j];
                if (!(fabs(a - b) <= 1e-4 * mx + 1e-5 * fabs(a)))
                    TEST_FAIL("%s: grad %s[%lld] cpu %.9g cuda %.9g", specs[s], v->name,
                              (long long)j, a, b);
            }
        }
        free(p);
        free(gc);
        free(gg);
        kiln_model_free(mc);
        kiln_model_free(mg);
        kiln_backend_free(cuda);
    }
    free_dataset(ds);
}

/* Same config, same seed, same GPU: the same bits (graphs, device guard,
 * no atomics feeding weights). And the result learns as the CPU does. */
TEST(cuda_deterministic_and_learns)
{
    static const char *specs[] = {"cuda,gemm=cublas", "cuda,gemm=kiln"};
    struct kiln_config cfg;
    dropout_config(&cfg, 64, 0.1f);
    cfg.train.epochs = 5;
    cfg.train.clip_norm = 5.0f;
    struct kiln_dataset *ds = make_blobs(2000, 31);
    ASSERT(ds != NULL);
    struct run_result cpu;
    run(&cfg, ds, g_be, PATH_OWN, 0, &cpu);
    ASSERT_OK(cpu.st);
    for (int s = 0; s < 2; s++) {
        struct kiln_backend *cuda = open_cuda(specs[s]);
        ASSERT(cuda != NULL);
        struct run_result a, b;
        run(&cfg, ds, cuda, PATH_OWN, 0, &a);
        run(&cfg, ds, cuda, PATH_OWN, 0, &b);
        kiln_backend_free(cuda);
        fprintf(stderr, "   %s: accuracy %.4f (cpu %.4f)\n", specs[s], a.acc, cpu.acc);
        bool same = a.st == KILN_OK && same_run(&a, &b);
        bool learns = a.acc >= cpu.acc - 0.01;
        int64_t steps = a.steps_seen;
        free(a.params);
        free(b.params);
        ASSERT(same);
        ASSERT(learns);
        ASSERT_EQ_INT(cpu.steps_seen, steps);
    }
    free(cpu.params);
    free_dataset(ds);
}

/* Streamed CUDA training (pinned stages, each next batch's copy on the copy
 * stream beside the step, no graph) against resident CUDA training (the
 * data on the device, the step replayed from a graph): the same kernels,
 * cuBLAS workspace and rows, so the same bits. Streaming comes from the
 * test hook (read back every step, and at the default interval) and from a
 * device spec whose share leaves no room for the data (the path a user's
 * run takes). 1901 rows less a validation fifth: 1521 training rows, 47
 * full batches and one of 17. */
TEST(cuda_streaming_equals_resident)
{
    struct kiln_config cfg;
    dropout_config(&cfg, 64, 0.1f);
    cfg.train.epochs = 2;
    struct kiln_dataset *ds = make_blobs(1901, 32);
    ASSERT(ds != NULL);
    static const char *specs[] = {"cuda,gemm=cublas", "cuda,gemm=kiln"};
    static const char *starved[] = {"cuda,gemm=cublas,share=1e-9", "cuda,gemm=kiln,share=1e-9"};
    for (int s = 0; s < 2; s++) {
        struct kiln_backend *cuda = open_cuda(specs[s]);
        ASSERT(cuda != NULL);
        struct run_result res, st1, stdef, sh;
        run(&cfg, ds, cuda, PATH_OWN, 0, &res);
        run(&cfg, ds, cuda, PATH_STREAM, 1, &st1);
        run(&cfg, ds, cuda, PATH_STREAM, 0, &stdef);
        kiln_backend_free(cuda);
        struct kiln_backend *small = open_cuda(starved[s]);
        ASSERT(small != NULL);
        run(&cfg, ds, small, PATH_OWN, 0, &sh);
        kiln_backend_free(small);
        bool s1 = same_run(&res, &st1), sd = same_run(&res, &stdef), ss = same_run(&res, &sh);
        fprintf(stderr, "   %s: resident %s; streamed/1 %s, streamed %s, share=1e-9 %s\n",
                specs[s], kiln_status_name(res.st), s1 ? "same" : "DIFFERENT",
                sd ? "same" : "DIFFERENT", ss ? "same" : "DIFFERENT");
        enum kiln_status rst = res.st;
        free(res.params);
        free(st1.params);
        free(stdef.params);
        free(sh.params);
        ASSERT_OK(rst);
        ASSERT(s1 && sd && ss);
    }
    free_dataset(ds);
}

int main(int argc, char **argv)
{
    bool cpu_only = argc > 1 && !strcmp(argv[1], "--cpu");
    bool stream_only = argc > 1 && !strcmp(argv[1], "--stream");
    if (kiln_cpu_backend_create(THREADS, &g_be) != KILN_OK) return 1;
    if (!stream_only) {
        RUN(device_step_adam);
        RUN(device_step_sgd_dropout_clip_cosine);
        RUN(device_step_mse);
        RUN(device_step_nan_guard);
    }
    RUN(stream_adam_partial_batch);
    RUN(stream_u8_dropout_sgd);
    RUN(stream_mse);
    RUN(stream_one_and_two_batches);
    RUN(stream_early_stop);
    RUN(stream_nan_guard);
    RUN(stream_nan_gradient_rerun);
    RUN(stream_upload_failure_stops);
    char devs[512];
    bool gpu = !cpu_only && !stream_only && kiln_cuda_devices(devs, sizeof devs) > 0;
    if (gpu) {
        RUN(cuda_gradients_match_cpu);
        RUN(cuda_deterministic_and_learns);
        RUN(cuda_streaming_equals_resident);
    }
    kiln_backend_free(g_be);
    int rc = test_summary();
    if (rc == 0 && !cpu_only && !stream_only && !gpu) {
        fprintf(stderr, "SKIP: no CUDA device answered: the CPU cases passed, the CUDA cases did "
                        "not run\n");
        return 77;
    }
    return rc;
}
