/* engine/nn/train.c: the training loop: seeded shuffles, batches, the
 * optimizer over the flat buffer, schedules, clipping, evaluation each
 * epoch, early stopping, and NaN/Inf guards. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/backend-mem.h"
#include "elementwise.h"
#include "kiln/log.h"
#include "model-internal.h"

struct kiln_trainer {
    const struct kiln_config *cfg;
    const struct kiln_dataset *ds;
    const struct kiln_split *train;
    struct kiln_backend *be;
    struct kiln_model *model;
    int n_classes;
    int64_t *train_rows, n_train; /* rows of the train split used for training */
    int64_t *val_rows, n_val;     /* validation rows (into val_split) */
    const struct kiln_split *val_split;
    int64_t *order;               /* this epoch's shuffled train_rows */
    int64_t *idx_dev;             /* batch row indices on the backend */
    const void *x_src;            /* train X on the backend (borrowed on host backends) */
    void *x_src_owned;
    void *host_labels;            /* label staging when the backend is not host memory */
    float *optim_state;           /* backend memory, optim_size floats */
    int64_t optim_size;
    struct kiln_train_state state;
    /* The device step (backends whose memory is not the host's, or forced
     * by the test hook): labels and the epoch's order on the backend, step
     * values computed ahead for the epoch, checks on the device, the step
     * captured into a graph where the backend can, and the host reading
     * back every sync_every steps. */
    bool device_path;
    int sync_every;
    const void *y_src;            /* train y on the backend (borrowed on host backends) */
    void *y_src_owned;
    int64_t *order_dev;           /* [n_train] */
    struct kiln_step_vars *vars_dev, *vars_host; /* [steps_per_epoch] */
    struct kiln_step_ctl *ctl_dev;
    /* Captured steps: a full batch, and the epoch's short last one (its
     * size, n_train % batch_size, is the same every epoch). */
    void *graph_full, *graph_tail;
    bool no_graphs;               /* a capture failed once: run the ops directly */
    bool streaming;               /* X did not fit: batches go up from host memory */
    /* Streaming: batch s of an epoch goes up through stage s & 1: its raw
     * rows gathered into stage_host (page-locked where the backend has it),
     * copied to stage_dev on the copy stream with upload tag s & 1. */
    void *stage_host[KILN_UPLOAD_TAGS], *stage_dev[KILN_UPLOAD_TAGS];
    int64_t *ident_dev;           /* streaming: 0..batch-1 */
};

/* Default host read-back interval of the device step: rare enough that the
 * device runs ahead, often enough for a live progress line. */
#define DEVICE_SYNC_EVERY 50

static enum kiln_optim_kind optim_kind(enum kiln_config_optim o)
{
    return o == KILN_CFG_SGD ? KILN_OPTIM_SGD : o == KILN_CFG_ADAM ? KILN_OPTIM_ADAM
                                                                   : KILN_OPTIM_ADAMW;
}

/* Fisher-Yates over rows with a stream keyed by (seed, salt). */
static void shuffle_rows(int64_t *rows, int64_t n, uint64_t seed, uint64_t salt)
{
    uint64_t s = kiln_rng_hash(seed, salt);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(kiln_rng_hash(s, (uint64_t)i) % (uint64_t)(i + 1));
        int64_t t = rows[i];
        rows[i] = rows[j];
        rows[j] = t;
    }
}

#define SALT_VAL_SPLIT 0x76616c00ull   /* "val" */
#define SALT_EPOCH 0x65706f6300000000ull /* "epoc" + epoch */
#define SALT_DROPOUT 0x64726f7000000000ull

static enum kiln_status metric_value(const char *name, const struct kiln_metrics *m, double *out)
{
    if (!strcmp(name, "val_loss")) *out = m->loss;
    else if (!strcmp(name, "val_accuracy")) *out = m->accuracy;
    else if (!strcmp(name, "val_mse")) *out = m->mse;
    else if (!strcmp(name, "val_mae")) *out = m->mae;
    else if (!strcmp(name, "val_r2")) *out = m->r2;
    else if (!strcmp(name, "val_f1")) *out = m->macro_f1;
    else
        return kiln_errorf(KILN_ERR_CONFIG, "train.early_stopping.metric: unknown metric '%s'",
                           name);
    return KILN_OK;
}

/* Checks that the model fits the data, naming both sides on a mismatch. */
static enum kiln_status trainer_check_shapes(const struct kiln_model *m,
                                             const struct kiln_dataset *ds,
                                             const struct kiln_split *train)
{
    const struct kiln_model_config *mc = kiln_model_config(m);
    char model_shape[128] = "", data_shape[128] = "";
    int pos = 0;
    for (int d = 0; d < mc->input_ndim; d++)
        pos += snprintf(model_shape + pos, sizeof model_shape - pos, "%s%lld", d ? ", " : "",
                        (long long)mc->input_shape[d]);
    pos = 0;
    for (int d = 0; d < train->feat_ndim; d++)
        pos += snprintf(data_shape + pos, sizeof data_shape - pos, "%s%lld", d ? ", " : "",
                        (long long)train->feat_shape[d]);
    bool same = mc->input_ndim == train->feat_ndim;
    for (int d = 0; same && d < mc->input_ndim; d++)
        same = mc->input_shape[d] == train->feat_shape[d];
    /* A flat model input may take any data shape with as many features. */
    bool flat_ok = mc->input_ndim == 1 && kiln_model_input_size(m) == train->feat_size;
    if (!same && !flat_ok)
        return kiln_errorf(KILN_ERR_SHAPE,
                           "model.input is [%s] but the dataset's rows have shape [%s]",
                           model_shape, data_shape);
    int64_t out = kiln_model_output_size(m);
    if (mc->loss == KILN_LOSS_SOFTMAX_XENT) {
        if (train->y_dtype != KILN_DTYPE_I32 || ds->n_classes < 1)
            return kiln_errorf(KILN_ERR_SHAPE,
                               "loss softmax_cross_entropy needs class labels, but the dataset "
                               "has regression targets");
        if (out != ds->n_classes)
            return kiln_errorf(KILN_ERR_SHAPE,
                               "the model outputs %lld values but the dataset has %d classes",
                               (long long)out, ds->n_classes);
    } else {
        if (train->y_dtype != KILN_DTYPE_F32)
            return kiln_errorf(KILN_ERR_SHAPE,
                               "loss %s needs float targets, but the dataset has class labels "
                               "(use softmax_cross_entropy)",
                               kiln_loss_kind_name(mc->loss));
        if (out != train->y_dim)
            return kiln_errorf(KILN_ERR_SHAPE,
                               "the model outputs %lld values but the dataset's targets have %lld",
                               (long long)out, (long long)train->y_dim);
    }
    return KILN_OK;
}


/* The share of free device memory the training set may take: the device
 * spec's share=F, else KILN_DEVICE_DATA_SHARE, else 0.8 (room for the
 * model, cuBLAS and the step's buffers). */
static double trainer_data_share(void)
{
    const char *env = getenv("KILN_DEVICE_DATA_SHARE");
    char *end = NULL;
    double f = env ? strtod(env, &end) : 0.0;
    return env && end != env && !*end && f > 0.0 && f <= 1.0 ? f : 0.8;
}

/* Streaming: waits until no queued copy or step still reads or writes a
 * stage (the compute stream ordered after both upload tags, then waited
 * for), so that a stage may be rewritten or freed. Returns the first
 * failure. */
static enum kiln_status stream_drain(struct kiln_trainer *t)
{
    struct kiln_backend *be = t->be;
    enum kiln_status st = KILN_OK;
    for (int k = 0; k < KILN_UPLOAD_TAGS; k++) {
        enum kiln_status w = backend_upload_wait(be, k);
        if (st == KILN_OK) st = w;
    }
    enum kiln_status w = be->iface->sync(be->ctx);
    return st == KILN_OK ? w : st;
}

/* stream_drain on the way out after an error, or when freeing: a failure
 * here is only logged, and the message of the error that matters is kept. */
static void stream_drain_quiet(struct kiln_trainer *t)
{
    char keep[1024];
    snprintf(keep, sizeof keep, "%s", kiln_last_error());
    if (stream_drain(t) != KILN_OK) {
        kiln_log(KILN_LOG_WARN, "trainer: waiting for the streamed batches: %s",
                 kiln_last_error());
        kiln_errorf(KILN_ERR_INTERNAL, "%s", keep);
    }
}

/* Drains, then frees the streaming stages. */
static void trainer_free_stream(struct kiln_trainer *t)
{
    struct kiln_backend *be = t->be;
    bool any = t->ident_dev != NULL;
    for (int k = 0; k < KILN_UPLOAD_TAGS; k++) any = any || t->stage_host[k] || t->stage_dev[k];
    if (!any) return;
    stream_drain_quiet(t);
    for (int k = 0; k < KILN_UPLOAD_TAGS; k++) {
        if (t->stage_dev[k]) be->iface->free(be->ctx, t->stage_dev[k]);
        backend_host_free(be, t->stage_host[k]);
        t->stage_dev[k] = t->stage_host[k] = NULL;
    }
    if (t->ident_dev) be->iface->free(be->ctx, t->ident_dev);
    t->ident_dev = NULL;
}

static void trainer_free_device(struct kiln_trainer *t)
{
    struct kiln_backend *be = t->be;
    trainer_free_stream(t);
    void *bufs[] = {t->y_src_owned, t->order_dev, t->vars_dev, t->ctl_dev};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->iface->free(be->ctx, bufs[i]);
    if (be->iface->graph_free) {
        be->iface->graph_free(be->ctx, t->graph_full);
        be->iface->graph_free(be->ctx, t->graph_tail);
    }
    t->graph_full = t->graph_tail = NULL;
    t->y_src_owned = t->order_dev = NULL;
    t->vars_dev = NULL;
    t->ctl_dev = NULL;
    free(t->vars_host);
    t->vars_host = NULL;
}

/* Streaming: two host stages (page-locked where the backend has it), two
 * device stages of one batch of raw rows each, and the identity index the
 * device gather reads a stage with. */
static enum kiln_status trainer_plan_stream(struct kiln_trainer *t)
{
    struct kiln_backend *be = t->be;
    const struct kiln_split *sp = t->train;
    int64_t bs = t->cfg->train.batch_size;
    size_t bytes = (size_t)bs * (size_t)sp->feat_size * kiln_dtype_size(sp->x_dtype);
    for (int k = 0; k < KILN_UPLOAD_TAGS; k++) {
        t->stage_host[k] = backend_host_alloc(be, bytes);
        if (!t->stage_host[k])
            return kiln_error_context(KILN_ERR_NOMEM, "trainer: the streaming stage");
        t->stage_dev[k] = be->iface->alloc(be->ctx, bytes);
        if (!t->stage_dev[k])
            return kiln_error_context(KILN_ERR_NOMEM, "trainer: the streaming stage");
    }
    t->ident_dev = be->iface->alloc(be->ctx, (size_t)bs * sizeof(int64_t));
    int64_t *ident = malloc((size_t)bs * sizeof(int64_t));
    if (!ident || !t->ident_dev) {
        free(ident);
        return kiln_error_context(KILN_ERR_NOMEM, "trainer: the streaming stage");
    }
    for (int64_t i = 0; i < bs; i++) ident[i] = i;
    enum kiln_status st =
        be->iface->upload(be->ctx, t->ident_dev, ident, (size_t)bs * sizeof(int64_t));
    free(ident);
    return st;
}

/* Plans the device step's buffers once: labels, the epoch's order and step
 * values, the control block (and the streaming stage). */
static enum kiln_status trainer_plan_device(struct kiln_trainer *t)
{
    struct kiln_backend *be = t->be;
    const struct kiln_split *sp = t->train;
    int64_t bs = t->cfg->train.batch_size;
    int64_t steps = (t->n_train + bs - 1) / bs;
    size_t y_bytes = (size_t)(sp->n * sp->y_dim) * kiln_dtype_size(sp->y_dtype);
    enum kiln_status st = KILN_OK;
    const struct kiln_ops *ops = be->iface->ops;
    if (!ops->step_begin || !ops->step_check || !ops->dropout_keyed)
        return kiln_errorf(KILN_ERR_INTERNAL, "backend %s lacks the device step's ops",
                           be->iface->name);
    if (be->iface->host_memory) {
        t->y_src = sp->y;
    } else {
        t->y_src_owned = be->iface->alloc(be->ctx, y_bytes);
        if (!t->y_src_owned) return kiln_error_context(KILN_ERR_NOMEM, "trainer: the labels");
        st = be->iface->upload(be->ctx, t->y_src_owned, sp->y, y_bytes);
        if (st != KILN_OK) return st;
        t->y_src = t->y_src_owned;
    }
    t->order_dev = be->iface->alloc(be->ctx, (size_t)(t->n_train > 0 ? t->n_train : 1) *
                                                 sizeof(int64_t));
    t->vars_dev = be->iface->alloc(be->ctx, (size_t)steps * sizeof(struct kiln_step_vars));
    t->ctl_dev = be->iface->alloc(be->ctx, sizeof(struct kiln_step_ctl));
    t->vars_host = calloc((size_t)steps, sizeof(struct kiln_step_vars));
    if (!t->order_dev || !t->vars_dev || !t->ctl_dev)
        return kiln_error_context(KILN_ERR_NOMEM, "trainer: the step's buffers");
    if (!t->vars_host) return kiln_errorf(KILN_ERR_NOMEM, "trainer: out of memory");
    if (t->streaming) st = trainer_plan_stream(t);
    return st;
}

enum kiln_status kiln_trainer_create(const struct kiln_config *cfg, const struct kiln_dataset *ds,
                                     struct kiln_backend *be, struct kiln_trainer **out)
{
    *out = NULL;
    const struct kiln_train_config *tc = &cfg->train;
    const struct kiln_split *train = ds->splits[KILN_SPLIT_TRAIN];
    if (!train || train->n < 1)
        return kiln_errorf(KILN_ERR_FORMAT, "dataset '%s' has no training rows",
                           ds->name ? ds->name : "");
    struct kiln_trainer *t = calloc(1, sizeof *t);
    if (!t) return kiln_errorf(KILN_ERR_NOMEM, "trainer: out of memory");
    t->cfg = cfg;
    t->ds = ds;
    t->train = train;
    t->be = be;
    t->n_classes = ds->n_classes;
    t->state.seed = tc->seed;
    t->state.best_metric = NAN;
    enum kiln_status st = kiln_model_create(&cfg->model, be, tc->batch_size, &t->model);
    if (st != KILN_OK) goto cleanup;
    st = trainer_check_shapes(t->model, ds, train);
    if (st != KILN_OK) goto cleanup;
    st = kiln_model_init_params(t->model, tc->seed);
    if (st != KILN_OK) goto cleanup;

    /* Validation rows: the dataset's val split, else a seeded share of train. */
    int64_t n = train->n;
    t->train_rows = malloc((size_t)n * sizeof(int64_t));
    t->order = malloc((size_t)n * sizeof(int64_t));
    if (!t->train_rows || !t->order) {
        st = kiln_errorf(KILN_ERR_NOMEM, "trainer: out of memory");
        goto cleanup;
    }
    for (int64_t i = 0; i < n; i++) t->train_rows[i] = i;
    if (ds->splits[KILN_SPLIT_VAL] && ds->splits[KILN_SPLIT_VAL]->n > 0) {
        t->val_split = ds->splits[KILN_SPLIT_VAL];
        t->n_train = n;
    } else if (tc->val_fraction > 0.0f) {
        int64_t n_val = (int64_t)llround((double)tc->val_fraction * (double)n);
        if (n_val >= n) n_val = n - 1;
        shuffle_rows(t->train_rows, n, tc->seed, SALT_VAL_SPLIT);
        t->val_rows = malloc((size_t)(n_val > 0 ? n_val : 1) * sizeof(int64_t));
        if (!t->val_rows) {
            st = kiln_errorf(KILN_ERR_NOMEM, "trainer: out of memory");
            goto cleanup;
        }
        memcpy(t->val_rows, t->train_rows, (size_t)n_val * sizeof(int64_t));
        memmove(t->train_rows, t->train_rows + n_val, (size_t)(n - n_val) * sizeof(int64_t));
        t->n_val = n_val;
        t->n_train = n - n_val;
        t->val_split = n_val > 0 ? train : NULL;
    } else {
        t->n_train = n;
    }
    if (tc->patience > 0 && !t->val_split) {
        st = kiln_errorf(KILN_ERR_CONFIG,
                         "train.early_stopping needs validation data: the dataset has no val "
                         "split and train.val_fraction is 0");
        goto cleanup;
    }
    if (tc->patience > 0) {
        struct kiln_metrics probe = {0};
        double v;
        st = metric_value(tc->early_stopping_metric, &probe, &v);
        if (st != KILN_OK) goto cleanup;
    }

    /* The training X on the backend: borrowed in place on host memory;
     * on a device when it fits in the configured share of free memory,
     * else streamed a batch at a time from host memory. */
    size_t x_bytes = (size_t)(train->n * train->feat_size) * kiln_dtype_size(train->x_dtype);
    t->device_path = !be->iface->host_memory;
    t->sync_every = DEVICE_SYNC_EVERY;
    if (be->iface->host_memory) {
        t->x_src = train->X;
    } else {
        size_t free_b = 0, total_b = 0;
        double share = be->data_share > 0 ? be->data_share : trainer_data_share();
        if (be->iface->mem_info && be->iface->mem_info(be->ctx, &free_b, &total_b) == KILN_OK &&
            (double)x_bytes > share * (double)free_b) {
            t->streaming = true;
            kiln_log(KILN_LOG_INFO,
                     "the training set (%.1f MiB) is over %.0f%% of free device memory (%.1f "
                     "MiB): batches stream from host memory",
                     x_bytes / 1048576.0, share * 100.0, free_b / 1048576.0);
        } else {
            t->x_src_owned = be->iface->alloc(be->ctx, x_bytes);
            if (!t->x_src_owned) {
                st = kiln_error_context(KILN_ERR_NOMEM, "trainer: the training set (%.1f MiB)",
                                        x_bytes / 1048576.0);
                goto cleanup;
            }
            st = be->iface->upload(be->ctx, t->x_src_owned, train->X, x_bytes);
            if (st != KILN_OK) goto cleanup;
            t->x_src = t->x_src_owned;
        }
    }
    t->idx_dev = be->iface->alloc(be->ctx, (size_t)tc->batch_size * sizeof(int64_t));
    if (!be->iface->host_memory) {
        t->host_labels = malloc((size_t)(tc->batch_size * train->y_dim) *
                                kiln_dtype_size(train->y_dtype));
        if (!t->host_labels) {
            st = kiln_errorf(KILN_ERR_NOMEM, "trainer: out of memory");
            goto cleanup;
        }
    }
    int spp = kiln_optim_state_per_param(optim_kind(tc->optimizer), tc->momentum);
    t->optim_size = spp * kiln_model_param_count(t->model);
    if (t->optim_size > 0) {
        t->optim_state = be->iface->alloc(be->ctx, (size_t)t->optim_size * sizeof(float));
        float *zeros = calloc((size_t)t->optim_size, sizeof(float));
        if (t->optim_state && zeros)
            st = be->iface->upload(be->ctx, t->optim_state, zeros,
                                   (size_t)t->optim_size * sizeof(float));
        else
            st = kiln_errorf(KILN_ERR_NOMEM, "trainer: out of memory for optimizer state");
        free(zeros);
        if (st != KILN_OK) goto cleanup;
    }
    if (!t->idx_dev) {
        st = kiln_error_context(KILN_ERR_NOMEM, "trainer");
        goto cleanup;
    }
    if (t->device_path) st = trainer_plan_device(t);
cleanup:
    if (st != KILN_OK) {
        kiln_trainer_free(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

void kiln_trainer_free(struct kiln_trainer *t)
{
    if (!t) return;
    struct kiln_backend *be = t->be;
    trainer_free_device(t);
    if (t->idx_dev) be->iface->free(be->ctx, t->idx_dev);
    if (t->optim_state) be->iface->free(be->ctx, t->optim_state);
    if (t->x_src_owned) be->iface->free(be->ctx, t->x_src_owned);
    kiln_model_free(t->model);
    free(t->train_rows);
    free(t->val_rows);
    free(t->order);
    free(t->host_labels);
    free(t);
}

struct kiln_model *kiln_trainer_model(struct kiln_trainer *t) { return t->model; }
struct kiln_train_state kiln_trainer_state(const struct kiln_trainer *t) { return t->state; }
void kiln_trainer_set_state(struct kiln_trainer *t, const struct kiln_train_state *s)
{
    t->state = *s;
}
int64_t kiln_trainer_optim_size(const struct kiln_trainer *t) { return t->optim_size; }

enum kiln_status kiln_trainer_get_optim(const struct kiln_trainer *t, float *host)
{
    if (!t->optim_size) return KILN_OK;
    return t->be->iface->download(t->be->ctx, host, t->optim_state,
                                  (size_t)t->optim_size * sizeof(float));
}

enum kiln_status kiln_trainer_set_optim(struct kiln_trainer *t, const float *host)
{
    if (!t->optim_size) return KILN_OK;
    for (int64_t i = 0; i < t->optim_size; i++)
        if (!isfinite(host[i]))
            return kiln_errorf(KILN_ERR_NUMERIC, "optimizer state [%lld] is %g", (long long)i,
                               (double)host[i]);
    return t->be->iface->upload(t->be->ctx, t->optim_state, host,
                                (size_t)t->optim_size * sizeof(float));
}

double kiln_schedule_lr(const struct kiln_train_config *cfg, int64_t step, int64_t epoch,
                        int64_t steps_per_epoch)
{
    double base = cfg->lr;
    if (cfg->warmup_steps > 0 && step < cfg->warmup_steps)
        return base * (double)(step + 1) / (double)cfg->warmup_steps;
    switch (cfg->schedule) {
    case KILN_SCHED_STEP:
        return base * pow(cfg->gamma, (double)(epoch / (cfg->step_size > 0 ? cfg->step_size : 1)));
    case KILN_SCHED_COSINE: {
        int64_t total = cfg->epochs * steps_per_epoch - cfg->warmup_steps;
        double progress = total > 0 ? (double)(step - cfg->warmup_steps) / (double)total : 1.0;
        if (progress > 1.0) progress = 1.0;
        return cfg->min_lr + (base - cfg->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    }
    case KILN_SCHED_CONSTANT: break;
    }
    return base;
}

/* Names the first tensor holding a NaN or Inf gradient (only on failure). */
static void nonfinite_tensor(struct kiln_model *m, const char **name)
{
    *name = "?";
    for (int i = 0; i < m->n_tensors; i++) {
        int64_t bad = 0;
        const struct kiln_param_view *v = &m->tensors[i];
        if (m->ops->count_nonfinite(m->be->ctx, m->grads + v->offset, v->size, &bad) == KILN_OK &&
            bad > 0) {
            *name = v->name;
            return;
        }
    }
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One optimizer step on the batch rows[0..rows). */
static enum kiln_status train_step(struct kiln_trainer *t, const int64_t *rows, int64_t n_rows,
                                   int64_t epoch, int64_t step_in_epoch, double *loss_out)
{
    struct kiln_model *m = t->model;
    struct kiln_backend *be = t->be;
    const struct kiln_ops *ops = m->ops;
    const struct kiln_train_config *tc = &t->cfg->train;
    const struct kiln_split *sp = t->train;
    int64_t step = t->state.step;
    enum kiln_status st =
        be->iface->upload(be->ctx, t->idx_dev, rows, (size_t)n_rows * sizeof(int64_t));
    if (st != KILN_OK) return st;
    bool u8 = sp->x_dtype == KILN_DTYPE_U8;
    st = ops->gather_rows(be->ctx, t->x_src, u8 ? KILN_ELEM_U8 : KILN_ELEM_F32, sp->feat_size,
                          t->idx_dev, n_rows, u8 ? KILN_U8_SCALE : 1.0f, m->x);
    if (st != KILN_OK) return st;
    /* Labels are small: gathered on the host, then uploaded when the
     * backend's memory is not host memory. */
    void *lab = be->iface->host_memory ? m->labels : t->host_labels;
    size_t lab_row = (size_t)sp->y_dim * kiln_dtype_size(sp->y_dtype);
    for (int64_t r = 0; r < n_rows; r++)
        memcpy((char *)lab + (size_t)r * lab_row, (const char *)sp->y + (size_t)rows[r] * lab_row,
               lab_row);
    if (!be->iface->host_memory)
        st = be->iface->upload(be->ctx, m->labels, lab, (size_t)n_rows * lab_row);
    if (st != KILN_OK) return st;

    uint64_t dropout_seed = kiln_rng_hash(t->state.seed, SALT_DROPOUT + (uint64_t)step);
    const float *logits;
    double loss;
    st = nn_forward(m, n_rows, true, dropout_seed, &logits);
    if (st == KILN_OK) st = nn_loss_backward(m, logits, n_rows, true, dropout_seed, &loss);
    if (st != KILN_OK) return st;
    if (!isfinite(loss))
        return kiln_errorf(KILN_ERR_NUMERIC,
                           "the loss became %g at epoch %lld, step %lld (global step %lld); "
                           "try a lower train.optimizer.lr or train.clip_norm",
                           loss, (long long)epoch + 1, (long long)step_in_epoch + 1,
                           (long long)step + 1);
    int64_t bad = 0;
    st = ops->count_nonfinite(be->ctx, m->grads, m->n_params, &bad);
    if (st != KILN_OK) return st;
    if (bad > 0) {
        const char *name;
        nonfinite_tensor(m, &name);
        return kiln_errorf(KILN_ERR_NUMERIC,
                           "the gradient of %s has %lld NaN/Inf values at epoch %lld, global "
                           "step %lld",
                           name, (long long)bad, (long long)epoch + 1, (long long)step + 1);
    }
    if (tc->clip_norm > 0.0f) {
        double sq;
        st = ops->sum_squares(be->ctx, m->grads, m->n_params, &sq);
        if (st != KILN_OK) return st;
        double norm = sqrt(sq);
        /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6). */
        if (norm > tc->clip_norm)
            st = ops->scale(be->ctx, m->grads, m->n_params, (float)(tc->clip_norm / (norm + 1e-6)));
        if (st != KILN_OK) return st;
    }
    int64_t steps_per_epoch = (t->n_train + tc->batch_size - 1) / tc->batch_size;
    struct kiln_optim_step h = {
        .kind = optim_kind(tc->optimizer),
        .lr = (float)kiln_schedule_lr(tc, step, epoch, steps_per_epoch),
        .weight_decay = tc->weight_decay,
        .momentum = tc->momentum,
        .nesterov = tc->nesterov,
        .beta1 = tc->beta1,
        .beta2 = tc->beta2,
        .eps = tc->eps,
        .t = step + 1,
    };
    st = ops->optimizer_step(be->ctx, &h, m->params, m->grads, t->optim_state, m->n_params);
    if (st != KILN_OK) return st;
    t->state.step++;
    *loss_out = loss;
    return KILN_OK;
}


/* --- the device step ------------------------------------------------------------ */

void nn_trainer_force_device_path(struct kiln_trainer *t, bool on, int sync_every)
{
    t->sync_every = sync_every > 0 ? sync_every : DEVICE_SYNC_EVERY;
    if (on == t->device_path) return;
    if (on) {
        t->device_path = true;
        if (trainer_plan_device(t) != KILN_OK) {
            trainer_free_device(t);
            t->device_path = false;
        }
    } else if (t->be->iface->host_memory) {
        trainer_free_device(t);
        t->device_path = false;
        t->streaming = false;
    }
}

enum kiln_status nn_trainer_force_streaming(struct kiln_trainer *t)
{
    if (!t->device_path)
        return kiln_errorf(KILN_ERR_INTERNAL,
                           "nn_trainer_force_streaming: the device path is not on");
    if (t->streaming) return KILN_OK;
    t->streaming = true;
    enum kiln_status st = trainer_plan_stream(t);
    if (st != KILN_OK) {
        trainer_free_stream(t);
        t->streaming = false;
    }
    return st;
}

/* Streaming: gathers the batch's raw rows (order[lo..lo+n)) on the host
 * into stage_host[k] and queues their copy to stage_dev[k] on the copy
 * stream (tag k); the device gather then converts them. The caller has
 * proved that no queued copy or step still reads either stage k (see
 * device_epoch). */
static enum kiln_status stream_queue(struct kiln_trainer *t, int k, int64_t lo, int64_t n)
{
    const struct kiln_split *sp = t->train;
    size_t row = (size_t)sp->feat_size * kiln_dtype_size(sp->x_dtype);
    for (int64_t r = 0; r < n; r++)
        memcpy((char *)t->stage_host[k] + (size_t)r * row,
               (const char *)sp->X + (size_t)t->order[lo + r] * row, row);
    return backend_upload_async(t->be, t->stage_dev[k], t->stage_host[k], (size_t)n * row, k);
}

/* Queues one step's ops, reading nothing back: step values, gathers,
 * forward, loss, backward and, with update, the guard, clipping and the
 * optimizer. Every pointer is fixed for the run, so the sequence can be
 * captured once and replayed; streaming (never captured), X comes from
 * stage_dev[stage]. */
static enum kiln_status device_step_ops(struct kiln_trainer *t, int64_t rows, bool update,
                                        int stage)
{
    struct kiln_model *m = t->model;
    const struct kiln_ops *ops = m->ops;
    const struct kiln_train_config *tc = &t->cfg->train;
    const struct kiln_split *sp = t->train;
    void *ctx = t->be->ctx;
    bool u8 = sp->x_dtype == KILN_DTYPE_U8, classes = sp->y_dtype == KILN_DTYPE_I32;
    const uint64_t *seed = &t->ctl_dev->now.dropout_seed;
    const float *logits = NULL;
    enum kiln_status st = ops->step_begin(ctx, t->ctl_dev, t->vars_dev, t->order_dev,
                                          tc->batch_size, rows, t->idx_dev);
    if (st == KILN_OK)
        st = ops->gather_rows(ctx, t->streaming ? t->stage_dev[stage] : t->x_src,
                              u8 ? KILN_ELEM_U8 : KILN_ELEM_F32, sp->feat_size,
                              t->streaming ? t->ident_dev : t->idx_dev, rows,
                              u8 ? KILN_U8_SCALE : 1.0f, m->x);
    if (st == KILN_OK)
        st = ops->gather_rows(ctx, t->y_src, classes ? KILN_ELEM_I32 : KILN_ELEM_F32, sp->y_dim,
                              t->idx_dev, rows, 1.0f, m->labels);
    if (st == KILN_OK) st = nn_forward_keyed(m, rows, true, 0, seed, &logits);
    if (st == KILN_OK) st = nn_loss_rows(m, logits, rows, true);
    if (st == KILN_OK) st = nn_backward_keyed(m, rows, 0, seed);
    if (st != KILN_OK || !update) return st;
    st = ops->step_check(ctx, t->ctl_dev, t->vars_dev, m->loss_rows, rows, m->grads, m->n_params,
                         tc->clip_norm);
    struct kiln_optim_step h = {
        .kind = optim_kind(tc->optimizer),
        .weight_decay = tc->weight_decay,
        .momentum = tc->momentum,
        .nesterov = tc->nesterov,
        .beta1 = tc->beta1,
        .beta2 = tc->beta2,
        .eps = tc->eps,
        .t = 1, /* unused: the step's values carry lr and the bias corrections */
        .ctl = t->ctl_dev,
    };
    if (st == KILN_OK)
        st = ops->optimizer_step(ctx, &h, m->params, m->grads, t->optim_state, m->n_params);
    return st;
}

/* Runs one step: the captured graph for this batch size (captured on first
 * use), or the ops directly where the backend cannot capture or the step
 * streams (its stage alternates, and upload_wait cannot be captured). */
static enum kiln_status device_step_run(struct kiln_trainer *t, int64_t rows, int stage)
{
    struct kiln_backend *be = t->be;
    if (t->no_graphs || t->streaming || !be->iface->capture_begin)
        return device_step_ops(t, rows, true, stage);
    bool full = rows == t->cfg->train.batch_size;
    void **g = full ? &t->graph_full : &t->graph_tail;
    if (!*g) {
        char why[512] = "";
        enum kiln_status st = be->iface->capture_begin(be->ctx);
        if (st == KILN_OK) {
            /* Nothing runs while capturing: an op refused here (a call the
             * capture does not allow) is retried below, outside a capture,
             * where a real error shows again. The capture is always ended. */
            st = device_step_ops(t, rows, true, 0);
            if (st != KILN_OK) snprintf(why, sizeof why, "%s", kiln_last_error());
            void *graph = NULL;
            enum kiln_status end = be->iface->capture_end(be->ctx, &graph);
            if (st == KILN_OK) st = end;
            if (st == KILN_OK) {
                *g = graph;
            } else {
                be->iface->graph_free(be->ctx, graph);
            }
        }
        if (st != KILN_OK) {
            /* Slower, never wrong: the same ops, launched one by one. */
            kiln_log(KILN_LOG_WARN, "capturing the training step failed (%s); running its ops "
                                    "directly",
                     why[0] ? why : kiln_last_error());
            t->no_graphs = true;
            return device_step_ops(t, rows, true, 0);
        }
    }
    return be->iface->graph_launch(be->ctx, *g);
}

/* The error for a step the device guard marked bad (s: its index in the
 * epoch). A gradient's tensor is named by running the step again up to the
 * backward pass: the weights have not moved since, so it is the same step. */
static enum kiln_status device_step_error(struct kiln_trainer *t, int64_t epoch, int64_t s)
{
    const struct kiln_step_vars *v = &t->vars_host[s];
    int64_t step = t->state.step;
    if (v->bad == KILN_STEP_BAD_LOSS)
        return kiln_errorf(KILN_ERR_NUMERIC,
                           "the loss became %g at epoch %lld, step %lld (global step %lld); "
                           "try a lower train.optimizer.lr or train.clip_norm",
                           v->loss, (long long)epoch + 1, (long long)s + 1, (long long)step + 1);
    struct kiln_backend *be = t->be;
    struct kiln_model *m = t->model;
    int64_t bs = t->cfg->train.batch_size, lo = s * bs;
    int64_t n = lo + bs <= t->n_train ? bs : t->n_train - lo;
    struct kiln_step_ctl ctl = {.cursor = s, .first_bad = s};
    int64_t bad = 0;
    const char *name = "?";
    int k = (int)(s & 1);
    enum kiln_status st = KILN_OK;
    /* Streaming: the next batch's copy may still be in flight. */
    if (t->streaming) st = stream_drain(t);
    if (st == KILN_OK) st = be->iface->upload(be->ctx, t->ctl_dev, &ctl, sizeof ctl);
    if (st == KILN_OK && t->streaming) st = stream_queue(t, k, lo, n);
    if (st == KILN_OK && t->streaming) st = backend_upload_wait(be, k);
    if (st == KILN_OK) st = device_step_ops(t, n, false, k);
    if (st == KILN_OK) st = m->ops->count_nonfinite(be->ctx, m->grads, m->n_params, &bad);
    if (st == KILN_OK) nonfinite_tensor(m, &name);
    return kiln_errorf(KILN_ERR_NUMERIC,
                       "the gradient of %s has %lld NaN/Inf values at epoch %lld, global step %lld",
                       name, (long long)bad, (long long)epoch + 1, (long long)step + 1);
}

/* One epoch of device steps. The host computes every step's values ahead,
 * queues the steps, and reads back losses and the guard every sync_every
 * steps (reporting them through on_step in order, as the classic loop
 * does).
 *
 * Streaming, batch s of the epoch goes up through stage k = s & 1 (a host
 * and a device stage); batch 0 is queued before the loop, and iteration s
 * (1) waits on the host until step s-1 has finished (the compute stream's
 * sync; skipped when the read-back that ended iteration s-1 already waited
 * for it), (2) orders step s after batch s's copy (upload_wait(k)) and
 * queues step s, (3) gathers batch s+1 into host stage k^1 and queues its
 * copy to device stage k^1 on the copy stream (tag k^1): the gather and the
 * copy run while the device computes step s, (4) reads back as above. The
 * rows of each batch and their order are the resident step's, so are the
 * results, bit for bit.
 *
 * Why no stage is rewritten while a queued copy or step still reads it:
 * - host stage k^1 was last read by the copy of batch s-1. Step s-1 was
 *   ordered after that copy (upload_wait), and (1) saw step s-1 finish, so
 *   the copy had finished before (3) overwrites the stage;
 * - device stage k^1 was last read by step s-1's gather, finished by (1);
 *   it was last written by the copy of batch s-1, ahead of batch s+1's on
 *   the same in-order copy stream;
 * - device stage k is read by step s only after its copy (2), and written
 *   again only by the copy of batch s+2, queued in iteration s+1 after its
 *   (1) saw step s finish; the only copy in flight during step s is batch
 *   s+1's, into the other stage;
 * - nothing inside a step waits for the host (no graph, no read-back), so
 *   (1) is the one wait that proves it; it replaces the synchronous upload
 *   each streamed step did before (which waited for step s-1 as well, and
 *   then overlapped neither the gather nor the copy with a step).
 * Nothing crosses an epoch: the last iteration queues no copy, and every
 * exit from here (the end, an error, a bad step) drains both streams
 * (stream_drain), so the epoch's start, evaluation, checkpoints, the
 * bad-step re-run, and freeing find both stages idle. */
static enum kiln_status device_epoch(struct kiln_trainer *t, int64_t epoch,
                                     const struct kiln_train_callbacks *cb, double t0,
                                     double *loss_sum)
{
    struct kiln_backend *be = t->be;
    const struct kiln_train_config *tc = &t->cfg->train;
    int64_t bs = tc->batch_size, steps = (t->n_train + bs - 1) / bs;
    for (int64_t s = 0; s < steps; s++) {
        int64_t step = t->state.step + s;
        struct kiln_step_vars *v = &t->vars_host[s];
        memset(v, 0, sizeof *v);
        v->step = step;
        v->dropout_seed = kiln_rng_hash(t->state.seed, SALT_DROPOUT + (uint64_t)step);
        v->lr = (float)kiln_schedule_lr(tc, step, epoch, steps);
        /* As the optimizer computes them from t = step + 1. */
        v->bc1 = 1.0f - powf(tc->beta1, (float)(step + 1));
        v->bc2_sqrt = sqrtf(1.0f - powf(tc->beta2, (float)(step + 1)));
    }
    struct kiln_step_ctl ctl = {.cursor = 0, .first_bad = -1};
    enum kiln_status st =
        be->iface->upload(be->ctx, t->order_dev, t->order, (size_t)t->n_train * sizeof(int64_t));
    if (st == KILN_OK)
        st = be->iface->upload(be->ctx, t->vars_dev, t->vars_host,
                               (size_t)steps * sizeof(struct kiln_step_vars));
    if (st == KILN_OK)
        st = be->iface->upload(be->ctx, t->ctl_dev, &ctl, sizeof ctl);
    if (st == KILN_OK && t->streaming && steps > 0)
        st = stream_queue(t, 0, 0, bs <= t->n_train ? bs : t->n_train);
    int64_t reported = 0;
    for (int64_t s = 0; s < steps && st == KILN_OK; s++) {
        int64_t lo = s * bs, n = lo + bs <= t->n_train ? bs : t->n_train - lo;
        int k = (int)(s & 1);
        if (t->streaming) {
            if (s > 0 && reported < s) st = be->iface->sync(be->ctx);
            if (st == KILN_OK) st = backend_upload_wait(be, k);
        }
        if (st == KILN_OK) st = device_step_run(t, n, k);
        if (st == KILN_OK && t->streaming && s + 1 < steps) {
            int64_t lo1 = lo + bs, n1 = lo1 + bs <= t->n_train ? bs : t->n_train - lo1;
            st = stream_queue(t, k ^ 1, lo1, n1);
        }
        if (st != KILN_OK || ((s + 1) % t->sync_every != 0 && s + 1 != steps)) continue;
        /* Read back what ran: the losses and the guard's verdicts. */
        st = be->iface->download(be->ctx, t->vars_host + reported, t->vars_dev + reported,
                                 (size_t)(s + 1 - reported) * sizeof(struct kiln_step_vars));
        for (int64_t i = reported; i <= s && st == KILN_OK; i++) {
            if (t->vars_host[i].bad) {
                st = device_step_error(t, epoch, i);
                break;
            }
            *loss_sum += t->vars_host[i].loss;
            t->state.step++;
            if (cb && cb->on_step) {
                double el = now_seconds() - t0;
                int64_t done = i * bs + (i + 1 < steps ? bs : t->n_train - i * bs);
                cb->on_step(cb->user, epoch + 1, i + 1, steps, t->vars_host[i].loss,
                            el > 0 ? (double)done / el : 0.0);
            }
        }
        reported = s + 1;
    }
    if (t->streaming && st == KILN_OK) st = stream_drain(t);
    else if (t->streaming) stream_drain_quiet(t);
    return st;
}

/* One line on device memory after a device run: the peak against what the
 * run had to hold. */
static void device_memory_report(const struct kiln_trainer *t)
{
    const struct kiln_backend *be = t->be;
    if (be->iface->host_memory || !be->iface->mem_peak) return;
    const struct kiln_split *sp = t->train;
    const struct kiln_model *m = t->model;
    double mib = 1048576.0;
    double data = t->x_src_owned ? (double)(sp->n * sp->feat_size) * kiln_dtype_size(sp->x_dtype)
                                 : 0.0;
    data += (double)(sp->n * sp->y_dim) * kiln_dtype_size(sp->y_dtype);
    double params = 2.0 * (double)m->n_params * sizeof(float); /* weights + gradients */
    double optim = (double)t->optim_size * sizeof(float);
    double acts = 0.0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].out) acts += (double)(m->max_batch * m->layers[i].out_size) * sizeof(float);
    acts += (double)m->max_batch * (double)(m->in_size + 2 * m->max_width + m->out_size + 1) *
            sizeof(float);
    kiln_log(KILN_LOG_INFO,
             "device memory: peak %.1f MiB allocated (dataset %.1f, parameters + gradients %.1f, "
             "optimizer state %.1f, activations and step buffers %.1f MiB)",
             (double)be->iface->mem_peak(be->ctx) / mib, data / mib, params / mib, optim / mib,
             acts / mib);
}

enum kiln_status kiln_trainer_run(struct kiln_trainer *t, const struct kiln_train_callbacks *cb)
{
    const struct kiln_train_config *tc = &t->cfg->train;
    int64_t bs = tc->batch_size;
    int64_t steps_per_epoch = (t->n_train + bs - 1) / bs;
    bool maximize = tc->early_stopping_mode == KILN_MODE_MAX;
    enum kiln_status st = KILN_OK;
    for (int64_t epoch = t->state.epoch; epoch < tc->epochs; epoch++) {
        double t0 = now_seconds();
        memcpy(t->order, t->train_rows, (size_t)t->n_train * sizeof(int64_t));
        shuffle_rows(t->order, t->n_train, t->state.seed, SALT_EPOCH + (uint64_t)epoch);
        double loss_sum = 0.0;
        if (t->device_path) {
            st = device_epoch(t, epoch, cb, t0, &loss_sum);
            if (st != KILN_OK) return st;
        }
        for (int64_t s = 0; s < steps_per_epoch && !t->device_path; s++) {
            int64_t lo = s * bs, n = lo + bs <= t->n_train ? bs : t->n_train - lo;
            double loss = 0.0;
            st = train_step(t, t->order + lo, n, epoch, s, &loss);
            if (st != KILN_OK) return st;
            loss_sum += loss;
            if (cb && cb->on_step) {
                double el = now_seconds() - t0;
                cb->on_step(cb->user, epoch + 1, s + 1, steps_per_epoch, loss,
                            el > 0 ? (double)(lo + n) / el : 0.0);
            }
        }
        struct kiln_epoch_report r = {
            .epoch = epoch + 1,
            .epochs = tc->epochs,
            .step = t->state.step,
            .lr = kiln_schedule_lr(tc, t->state.step - 1, epoch, steps_per_epoch),
            .train_loss = loss_sum / (double)steps_per_epoch,
        };
        r.seconds = now_seconds() - t0;
        r.samples_per_s = r.seconds > 0 ? (double)t->n_train / r.seconds : 0.0;
        if (t->val_split) {
            st = kiln_evaluate(t->model, t->val_split, t->val_rows, t->val_rows ? t->n_val : t->val_split->n,
                               t->n_classes, &r.val);
            if (st != KILN_OK) return st;
            r.has_val = true;
        }
        t->state.epoch = epoch + 1;
        if (tc->patience > 0 && r.has_val) {
            double v;
            metric_value(tc->early_stopping_metric, &r.val, &v);
            double best = t->state.best_metric;
            r.improved = isnan(best) || (maximize ? v > best : v < best);
            if (r.improved) {
                t->state.best_metric = v;
                t->state.best_epoch = epoch + 1;
                t->state.bad_epochs = 0;
            } else if (++t->state.bad_epochs >= tc->patience) {
                r.stopping = true;
            }
        }
        if (cb && cb->on_epoch) st = cb->on_epoch(cb->user, t, &r);
        kiln_metrics_free(&r.val);
        if (st != KILN_OK) return st;
        if (r.stopping) {
            kiln_log(KILN_LOG_INFO,
                     "early stopping after epoch %lld: %s did not improve for %lld epochs "
                     "(best %.6g at epoch %lld)",
                     (long long)(epoch + 1), tc->early_stopping_metric, (long long)tc->patience,
                     t->state.best_metric, (long long)t->state.best_epoch);
            break;
        }
    }
    device_memory_report(t);
    return KILN_OK;
}
