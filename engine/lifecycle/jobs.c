/* engine/lifecycle/jobs.c: the train, eval and predict jobs: config +
 * dataset + backend + model + files, with the CLI only parsing arguments
 * and printing. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "kernels.h"
#include "kiln/backend.h"
#include "kiln/lifecycle.h"
#include "kiln/transform.h"
#include "lifecycle/infer.h"

struct kiln_train_job kiln_train_job_default(void)
{
    return (struct kiln_train_job){.threads = 0};
}

/* --- metrics.csv --------------------------------------------------------------
 * Rewritten whole (temp + rename) after every epoch: it is small, and a
 * reader never sees half a row. */
struct metrics_log {
    char path[4200];
    struct sbuf text;
};

static const char METRICS_HEADER[] =
    "epoch,step,lr,train_loss,val_loss,val_accuracy,val_macro_f1,val_mse,val_mae,val_r2,"
    "seconds,samples_per_s\n";

static enum kiln_status metrics_append(struct metrics_log *ml, const char *line)
{
    sbuf_append(&ml->text, line, strlen(line));
    return ml->text.failed ? kiln_errorf(KILN_ERR_NOMEM, "metrics: out of memory") : KILN_OK;
}

static enum kiln_status metrics_flush(struct metrics_log *ml)
{
    char tmp[4300];
    enum kiln_status st = fs_temp_path(ml->path, tmp, sizeof tmp);
    if (st != KILN_OK) return st;
    FILE *f = fopen(tmp, "w");
    if (!f) return kiln_errorf(KILN_ERR_IO, "%s: %s", ml->path, strerror(errno));
    bool ok = fwrite(ml->text.p, 1, ml->text.len, f) == ml->text.len;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        unlink(tmp);
        return kiln_errorf(KILN_ERR_IO, "%s: write failed (disk full?)", ml->path);
    }
    return fs_publish(tmp, ml->path);
}

/* Starts the log; on resume keeps the rows of epochs up to keep_epochs. */
static enum kiln_status metrics_open(struct metrics_log *ml, const char *dir, int64_t keep_epochs)
{
    snprintf(ml->path, sizeof ml->path, "%s/metrics.csv", dir);
    enum kiln_status st = metrics_append(ml, METRICS_HEADER);
    FILE *f = keep_epochs > 0 ? fopen(ml->path, "r") : NULL;
    if (!f) return st;
    char line[2048];
    bool header = true;
    while (st == KILN_OK && fgets(line, sizeof line, f)) {
        if (header) {
            header = false;
            continue;
        }
        long long epoch = strtoll(line, NULL, 10);
        if (epoch >= 1 && epoch <= keep_epochs) st = metrics_append(ml, line);
    }
    fclose(f);
    return st;
}

struct train_ctx {
    const struct kiln_train_job *job;
    const struct kiln_config *cfg;
    const struct kiln_dataset *ds;
    struct metrics_log metrics;
    char checkpoint_path[4200];
    int64_t steps_per_epoch;
};

static void fmt_metric(char *buf, size_t len, bool have, double v)
{
    if (have)
        snprintf(buf, len, "%.9g", v);
    else
        buf[0] = '\0';
}

static enum kiln_status train_on_epoch(void *user, struct kiln_trainer *t,
                                       const struct kiln_epoch_report *r)
{
    struct train_ctx *c = user;
    bool cls = r->has_val && r->val.n_classes > 0;
    bool reg = r->has_val && r->val.n_classes == 0;
    char vl[32], va[32], vf[32], vm[32], vma[32], vr[32], line[512];
    fmt_metric(vl, sizeof vl, r->has_val, r->val.loss);
    fmt_metric(va, sizeof va, cls, r->val.accuracy);
    fmt_metric(vf, sizeof vf, cls, r->val.macro_f1);
    fmt_metric(vm, sizeof vm, reg, r->val.mse);
    fmt_metric(vma, sizeof vma, reg, r->val.mae);
    fmt_metric(vr, sizeof vr, reg, r->val.r2);
    snprintf(line, sizeof line, "%lld,%lld,%.9g,%.9g,%s,%s,%s,%s,%s,%s,%.3f,%.1f\n",
             (long long)r->epoch, (long long)r->step, r->lr, r->train_loss, vl, va, vf, vm, vma,
             vr, r->seconds, r->samples_per_s);
    enum kiln_status st = metrics_append(&c->metrics, line);
    if (st == KILN_OK) st = metrics_flush(&c->metrics);
    int64_t every = c->cfg->train.checkpoint_every;
    bool checkpoint =
        every > 0 && (r->epoch % every == 0 || r->epoch == r->epochs || r->stopping);
    if (st == KILN_OK && checkpoint) st = kiln_checkpoint_save(c->checkpoint_path, c->cfg, t, c->ds);
    const struct kiln_train_observer *ob = &c->job->observer;
    if (st == KILN_OK && ob->on_epoch)
        st = ob->on_epoch(ob->user, r, checkpoint ? c->checkpoint_path : NULL);
    if (st == KILN_OK && c->job->progress.on_epoch)
        st = c->job->progress.on_epoch(c->job->progress.user, t, r);
    return st;
}

static void train_on_step(void *user, int64_t epoch, int64_t step, int64_t steps, double loss,
                          double sps)
{
    struct train_ctx *c = user;
    const struct kiln_train_observer *ob = &c->job->observer;
    if (ob->on_step) ob->on_step(ob->user, epoch, (epoch - 1) * steps + step, loss);
    if (c->job->progress.on_step)
        c->job->progress.on_step(c->job->progress.user, epoch, step, steps, loss, sps);
}

enum kiln_status kiln_train(const struct kiln_train_job *job, struct kiln_train_result *out)
{
    memset(out, 0, sizeof *out);
    struct kiln_config *cfg = NULL;
    struct kiln_dataset *ds = NULL;
    struct kiln_backend *be = NULL;
    struct kiln_trainer *t = NULL;
    struct train_ctx ctx = {.job = job};
    const struct kiln_train_observer *ob = &job->observer;
    bool started = false;
    char out_dir[4096] = "";
    enum kiln_status st = kiln_config_load(job->config_path, job->sets, job->n_sets, &cfg);
    if (st != KILN_OK) goto cleanup;
    if (job->device) {
        if (strlen(job->device) >= sizeof cfg->train.device) {
            st = kiln_errorf(KILN_ERR_USAGE, "device '%.40s...' is longer than %zu characters",
                             job->device, sizeof cfg->train.device - 1);
            goto cleanup;
        }
        snprintf(cfg->train.device, sizeof cfg->train.device, "%s", job->device);
    }
    if (job->threads > 0) cfg->train.threads = job->threads;
    /* Fail before any work when the results could not be written. */
    if (job->out_dir) {
        snprintf(out_dir, sizeof out_dir, "%s", job->out_dir);
        st = fs_make_dirs(out_dir);
        if (st != KILN_OK) goto cleanup;
    }
    st = kiln_dataset_load(job->data_path, &ds);
    if (st != KILN_OK) goto cleanup;
    st = kiln_backend_open(cfg->train.device, (int)cfg->train.threads, &be, out->backend,
                           sizeof out->backend);
    if (st != KILN_OK) goto cleanup;
    st = kiln_trainer_create(cfg, ds, be, &t);
    if (st != KILN_OK) goto cleanup;
    if (job->resume_path) {
        st = kiln_checkpoint_restore(job->resume_path, cfg, t, ds);
        if (st != KILN_OK) goto cleanup;
    }
    struct kiln_train_state before = kiln_trainer_state(t);
    if (ob->on_start) {
        st = ob->on_start(ob->user, cfg, ds, out->backend, &before, out_dir, sizeof out_dir);
        started = true;
        if (st != KILN_OK) goto cleanup;
        if (!job->out_dir) st = fs_make_dirs(out_dir);
        if (st != KILN_OK) goto cleanup;
    }
    if (!out_dir[0]) {
        st = kiln_errorf(KILN_ERR_USAGE, "train: no output folder (--out)");
        goto cleanup;
    }
    ctx.cfg = cfg;
    ctx.ds = ds;
    snprintf(ctx.checkpoint_path, sizeof ctx.checkpoint_path, "%s/checkpoint.h5", out_dir);
    st = metrics_open(&ctx.metrics, out_dir, before.epoch);
    if (st != KILN_OK) goto cleanup;
    struct kiln_train_callbacks cb = {
        .on_step = train_on_step, .on_epoch = train_on_epoch, .user = &ctx};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = kiln_trainer_run(t, &cb);
    if (st != KILN_OK) goto cleanup;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct kiln_train_state after = kiln_trainer_state(t);
    out->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    snprintf(out->model_path, sizeof out->model_path, "%s/model.h5", out_dir);
    st = kiln_checkpoint_save(out->model_path, cfg, t, ds);
    out->epochs_run = after.epoch - before.epoch;
    out->steps = after.step;
    out->samples_per_s = out->seconds > 0 ? (double)(after.step - before.step) *
                                                (double)cfg->train.batch_size / out->seconds
                                          : 0.0;
cleanup:
    if (started && ob->on_end)
        ob->on_end(ob->user, st, st == KILN_OK ? "" : kiln_last_error(),
                   st == KILN_OK ? out->model_path : NULL, out);
    kiln_trainer_free(t);
    kiln_backend_free(be);
    kiln_dataset_free(ds);
    kiln_config_free(cfg);
    sbuf_free(&ctx.metrics.text);
    return st;
}

/* --- eval and predict ------------------------------------------------------------ */

#define INFER_BATCH 1024

enum kiln_status kiln_eval(const char *model_path, const char *data_path, const char *split,
                           const char *device, int threads, struct kiln_metrics *out,
                           struct kiln_model_meta *meta)
{
    memset(out, 0, sizeof *out);
    memset(meta, 0, sizeof *meta);
    struct kiln_dataset *ds = NULL;
    struct kiln_backend *be = NULL;
    struct kiln_model *m = NULL;
    enum kiln_split_id id;
    char said[256];
    enum kiln_status st = kiln_split_parse(split, &id);
    if (st == KILN_OK) st = kiln_backend_open(device, threads, &be, said, sizeof said);
    if (st == KILN_OK) st = kiln_model_load(model_path, be, INFER_BATCH, &m, meta);
    if (st == KILN_OK) st = kiln_dataset_load(data_path, &ds);
    if (st != KILN_OK) goto cleanup;
    const struct kiln_split *sp = ds->splits[id];
    if (!sp) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s has no '%s' split", data_path, split);
        goto cleanup;
    }
    if (meta->n_classes > 0 && ds->n_classes != meta->n_classes) {
        st = kiln_errorf(KILN_ERR_SHAPE, "the model knows %d classes, %s has %d", meta->n_classes,
                         data_path, ds->n_classes);
        goto cleanup;
    }
    st = kiln_evaluate(m, sp, NULL, sp->n, ds->n_classes, out);
cleanup:
    if (st != KILN_OK) kiln_model_meta_free(meta);
    kiln_model_free(m);
    kiln_backend_free(be);
    kiln_dataset_free(ds);
    return st;
}

enum kiln_status kiln_predict(const char *model_path, const char *input, const char *input_array,
                              const char *drop_column, const char *output, int64_t batch,
                              const char *device, int threads, int64_t *rows_out)
{
    *rows_out = 0;
    struct infer_model im = {0};
    struct kiln_rows_reader *r = NULL;
    struct kiln_pred_writer *w = NULL;
    float *x = NULL, *y = NULL;
    if (batch <= 0) batch = INFER_BATCH;
    enum kiln_status st = infer_model_open(&im, model_path, device, threads, batch);
    if (st == KILN_OK) st = kiln_rows_open(input, input_array, drop_column, &r);
    if (st == KILN_OK) st = infer_bind_rows(&im, r, input);
    if (st != KILN_OK) goto cleanup;
    struct kiln_pred_meta pm = infer_pred_meta(&im);
    st = kiln_pred_writer_open(output, &pm, &w);
    if (st != KILN_OK) goto cleanup;
    x = malloc((size_t)(batch * im.raw) * sizeof(float));
    y = malloc((size_t)(batch * im.k) * sizeof(float));
    if (!x || !y) {
        st = kiln_errorf(KILN_ERR_NOMEM, "predict: out of memory");
        goto cleanup;
    }
    for (;;) {
        int64_t got = 0;
        st = kiln_rows_read(r, batch, x, &got);
        if (st != KILN_OK || got == 0) break;
        st = infer_model_run(&im, x, got, y);
        if (st == KILN_OK) st = kiln_pred_writer_write(w, y, got);
        if (st != KILN_OK) break;
        *rows_out += got;
    }
cleanup:
    if (w) {
        enum kiln_status cst = kiln_pred_writer_close(w, st == KILN_OK);
        if (st == KILN_OK) st = cst;
    }
    kiln_rows_close(r);
    free(x);
    free(y);
    infer_model_close(&im);
    return st;
}
