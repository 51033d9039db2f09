/* tests/test_train_device.c: the trainer's device step (step values in
 * backend memory, guard and clipping on the device, the host reading back
 * every few steps, the step captured into a CUDA graph).
 *
 * CPU cases (always run): the device step forced onto the CPU backend gives
 * bitwise the weights, losses and NaN-guard message of the classic step, for
 * Adam, SGD with momentum + dropout + clipping + cosine schedule + label
 * smoothing, and MSE regression, read back every step or every 7.
 *
 * CUDA cases (with a GPU; else the program exits 77 after the CPU cases
 * pass): the gradients of a tiny model after one step on CUDA vs the CPU
 * within stated tolerances, two CUDA runs bitwise identical (cuBLAS and
 * kiln's SGEMM), CUDA training reaching the CPU's accuracy.
 *
 *   test_train_device        CPU and CUDA cases (77 without a GPU)
 *   test_train_device --cpu  CPU cases only
 */
#include "test.h"

#include "kernels.h"
#include "kiln/backend.h"
#include "kiln/nn.h"
#include "nn/model-internal.h"

#define THREADS 2

static struct kiln_backend *g_be;

#include "train-fixture.h"

struct run_result {
    float *params;
    int64_t n;
    double losses[64];
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
    (void)epoch, (void)step, (void)steps, (void)loss, (void)sps;
    ((struct run_result *)user)->steps_seen++;
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

/* Trains cfg on ds on backend be; device: force the device step with
 * read-back every sync_every steps (0: the backend's own choice). */
static void run(const struct kiln_config *cfg, const struct kiln_dataset *ds,
                struct kiln_backend *be, bool device, int sync_every, struct run_result *out)
{
    memset(out, 0, sizeof *out);
    struct kiln_trainer *t = NULL;
    struct kiln_train_callbacks cb = {.on_step = on_step, .on_epoch = on_epoch, .user = out};
    out->st = kiln_trainer_create(cfg, ds, be, &t);
    if (out->st == KILN_OK && device) nn_trainer_force_device_path(t, true, sync_every);
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
    run(cfg, ds, g_be, false, 0, &classic);
    run(cfg, ds, g_be, true, 1, &dev1);
    run(cfg, ds, g_be, true, 7, &dev7);
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
    base_config(&cfg);
    cfg.model.n_layers = 0;
    add_layer(&cfg.model, KILN_LAYER_DENSE, 16);
    add_layer(&cfg.model, KILN_LAYER_SIGMOID, 0);
    add_layer(&cfg.model, KILN_LAYER_DENSE, 2);
    cfg.model.loss = KILN_LOSS_MSE;
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
    base_config(&cfg);
    cfg.train.epochs = 5;
    cfg.model.n_layers = 0;
    add_layer(&cfg.model, KILN_LAYER_DENSE, 64);
    add_layer(&cfg.model, KILN_LAYER_RELU, 0);
    add_layer(&cfg.model, KILN_LAYER_DROPOUT, 0);
    add_layer(&cfg.model, KILN_LAYER_DENSE, CLASSES);
    cfg.model.layers[2].rate = 0.1f;
    cfg.train.clip_norm = 5.0f;
    struct kiln_dataset *ds = make_blobs(2000, 31);
    ASSERT(ds != NULL);
    struct run_result cpu;
    run(&cfg, ds, g_be, false, 0, &cpu);
    ASSERT_OK(cpu.st);
    for (int s = 0; s < 2; s++) {
        struct kiln_backend *cuda = open_cuda(specs[s]);
        ASSERT(cuda != NULL);
        struct run_result a, b;
        run(&cfg, ds, cuda, false, 0, &a);
        run(&cfg, ds, cuda, false, 0, &b);
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

int main(int argc, char **argv)
{
    bool cpu_only = argc > 1 && !strcmp(argv[1], "--cpu");
    if (kiln_cpu_backend_create(THREADS, &g_be) != KILN_OK) return 1;
    RUN(device_step_adam);
    RUN(device_step_sgd_dropout_clip_cosine);
    RUN(device_step_mse);
    RUN(device_step_nan_guard);
    char devs[512];
    bool gpu = !cpu_only && kiln_cuda_devices(devs, sizeof devs) > 0;
    if (gpu) {
        RUN(cuda_gradients_match_cpu);
        RUN(cuda_deterministic_and_learns);
    }
    kiln_backend_free(g_be);
    int rc = test_summary();
    if (rc == 0 && !cpu_only && !gpu) {
        fprintf(stderr, "SKIP: no CUDA device answered: the CPU cases passed, the CUDA cases did "
                        "not run\n");
        return 77;
    }
    return rc;
}
