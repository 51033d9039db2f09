/* engine/lifecycle/score.c: kiln score: reader thread -> model (caller's
 * thread) -> writer thread over a ring of chunk buffers, with a durable
 * progress record after every chunk so that a killed run resumes where its
 * last fully written chunk ended, whatever the input and output formats
 * (kiln/score.h). On a device backend the ring is pinned host memory and
 * the model thread stages each chunk's upload on a copy stream while the
 * device runs the previous chunk (score_compute_staged). */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/backend-mem.h"
#include "core/util.h"
#include "kiln/package.h"
#include "kiln/score.h"
#include "lifecycle/infer.h"
#include "lifecycle/score-internal.h"

/* --- progress record --------------------------------------------------------------
 * A few "key value" lines, replaced atomically after the rows they count
 * are durable in the temp file; the input is known by path, size and mtime.
 * For a CSV output the record also holds the byte offset where those rows
 * end, since text cannot be cut back by a row count. */
struct score_identity {
    char input[4096];
    long long size, mtime_s, mtime_ns;
    char model_sha256[65];
};

static enum kiln_status score_identity_make(const char *input, const char *model_sha256,
                                            struct score_identity *id)
{
    struct stat sb;
    memset(id, 0, sizeof *id);
    if (stat(input, &sb) != 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", input, strerror(errno));
    if (!realpath(input, id->input)) snprintf(id->input, sizeof id->input, "%s", input);
    id->size = (long long)sb.st_size;
    id->mtime_s = (long long)sb.st_mtim.tv_sec;
    id->mtime_ns = (long long)sb.st_mtim.tv_nsec;
    snprintf(id->model_sha256, sizeof id->model_sha256, "%s", model_sha256);
    return KILN_OK;
}

/* sync: fsync the record and its folder (fs_publish); otherwise a plain
 * rename, which a process crash cannot tear but a power loss might reorder
 * before the data it counts (progress_read's caller then finds the partial
 * file short and says so). bytes < 0: not recorded (HDF5 output). */
static enum kiln_status progress_write(const char *path, const struct score_identity *id,
                                       int64_t rows, int64_t bytes, bool sync)
{
    char tmp[4300];
    enum kiln_status st = fs_temp_path(path, tmp, sizeof tmp);
    if (st != KILN_OK) return st;
    FILE *f = fopen(tmp, "w");
    if (!f) return kiln_errorf(KILN_ERR_IO, "%s: %s", tmp, strerror(errno));
    fprintf(f, "kiln_score_progress 1\nrows %" PRId64 "\n", rows);
    if (bytes >= 0) fprintf(f, "output_bytes %" PRId64 "\n", bytes);
    fprintf(f, "input_size %lld\ninput_mtime %lld.%09lld\nmodel_sha256 %s\ninput %s\n",
            id->size, id->mtime_s, id->mtime_ns, id->model_sha256, id->input);
    if (fclose(f) != 0) {
        unlink(tmp);
        return kiln_errorf(KILN_ERR_IO, "%s: write failed (disk full?)", path);
    }
    if (sync) return fs_publish(tmp, path);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return kiln_errorf(KILN_ERR_IO, "%s: rename: %s", path, strerror(errno));
    }
    return KILN_OK;
}

/* *rows = -1 when there is no record; KILN_ERR_USAGE when it is for another
 * input or model. *bytes = -1 when the record holds no byte offset. */
static enum kiln_status progress_read(const char *path, const struct score_identity *id,
                                      int64_t *rows, int64_t *bytes)
{
    *rows = *bytes = -1;
    FILE *f = fopen(path, "r");
    if (!f) return KILN_OK;
    struct score_identity got = {0};
    long long n = -1, b = -1;
    char line[4200];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "rows ", 5)) n = strtoll(line + 5, NULL, 10);
        else if (!strncmp(line, "output_bytes ", 13)) b = strtoll(line + 13, NULL, 10);
        else if (!strncmp(line, "input_size ", 11)) got.size = strtoll(line + 11, NULL, 10);
        else if (!strncmp(line, "input_mtime ", 12))
            sscanf(line + 12, "%lld.%lld", &got.mtime_s, &got.mtime_ns);
        else if (!strncmp(line, "model_sha256 ", 13))
            snprintf(got.model_sha256, sizeof got.model_sha256, "%.64s", line + 13);
        else if (!strncmp(line, "input ", 6))
            snprintf(got.input, sizeof got.input, "%.4095s", line + 6);
    }
    fclose(f);
    if (n < 0) return kiln_errorf(KILN_ERR_FORMAT, "%s: no 'rows' line", path);
    if (strcmp(got.input, id->input) || got.size != id->size || got.mtime_s != id->mtime_s ||
        got.mtime_ns != id->mtime_ns)
        return kiln_errorf(KILN_ERR_USAGE, "%s: the interrupted run read %s (%lld bytes), not "
                           "this input as it is now; run without --resume to start over",
                           path, got.input, got.size);
    if (strcmp(got.model_sha256, id->model_sha256))
        return kiln_errorf(KILN_ERR_USAGE, "%s: the interrupted run used model %.12s, not %.12s; "
                           "run without --resume to start over", path, got.model_sha256,
                           id->model_sha256);
    *rows = n;
    *bytes = b;
    return KILN_OK;
}

#define SCORE_SYNC_SECONDS 2.0

/* --- the pipeline ------------------------------------------------------------------ */

enum slot_state { SLOT_FREE, SLOT_READ, SLOT_DONE };

struct score_slot {
    float *x, *y;
    int64_t first, rows;
    enum slot_state state;
};

struct score_pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* One HDF5 call at a time: Debian's libhdf5 is not built threadsafe.
     * Taken only when both the input and the output are HDF5, so that a
     * CSV stage (parsing, formatting: the slow ones) never blocks the other. */
    pthread_mutex_t io;
    bool io_lock;
    struct score_slot slot[KILN_SCORE_RING];
    int64_t read_chunks;         /* -1 until the reader reached the end */
    int64_t computed_chunks;     /* -1 until the model thread finished */
    bool stop;                   /* a stage failed: everyone leaves */
    enum kiln_status err;
    char msg[1024];
    /* reader */
    struct kiln_rows_reader *r;
    int64_t batch, first_row;
    double read_s;
    /* writer */
    struct kiln_pred_writer *w;
    const char *progress_path;
    const char *tmp_path;
    bool csv_out;                /* record the byte offset of each durable chunk */
    const struct score_identity *id;
    int64_t rows_done, rows_total;
    struct timespec t0;
    double synced;               /* seconds at the last fsync */
    double write_s;
    const struct kiln_score_job *job;
};

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

/* Records the first failure (its message is thread-local) and stops all. */
static void pipe_fail(struct score_pipe *p, enum kiln_status st)
{
    pthread_mutex_lock(&p->mu);
    if (!p->stop) {
        p->stop = true;
        p->err = st;
        snprintf(p->msg, sizeof p->msg, "%s", kiln_last_error());
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Waits until slot c % RING is in state want, or the stage feeding it ended
 * after *end chunks (end >= 0), or the pipe stopped. False: leave. */
static bool pipe_wait(struct score_pipe *p, int64_t c, enum slot_state want, const int64_t *end)
{
    struct score_slot *s = &p->slot[c % KILN_SCORE_RING];
    pthread_mutex_lock(&p->mu);
    while (!p->stop && s->state != want && !(*end >= 0 && c >= *end))
        pthread_cond_wait(&p->cv, &p->mu);
    bool go = !p->stop && s->state == want;
    pthread_mutex_unlock(&p->mu);
    return go;
}

static bool pipe_stopped(struct score_pipe *p)
{
    pthread_mutex_lock(&p->mu);
    bool stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    return stop;
}

static void pipe_set(struct score_pipe *p, int64_t c, enum slot_state to)
{
    pthread_mutex_lock(&p->mu);
    p->slot[c % KILN_SCORE_RING].state = to;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *score_reader(void *arg)
{
    struct score_pipe *p = arg;
    int64_t row = p->first_row, never = -1;
    for (int64_t c = 0;; c++) {
        if (!pipe_wait(p, c, SLOT_FREE, &never)) break;
        struct score_slot *s = &p->slot[c % KILN_SCORE_RING];
        int64_t got = 0;
        if (p->io_lock) pthread_mutex_lock(&p->io);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        enum kiln_status st = kiln_rows_read(p->r, p->batch, s->x, &got);
        p->read_s += seconds_since(&t0);
        if (p->io_lock) pthread_mutex_unlock(&p->io);
        if (st != KILN_OK) {
            pipe_fail(p, st);
            break;
        }
        pthread_mutex_lock(&p->mu);
        if (got == 0) {
            p->read_chunks = c;
        } else {
            s->first = row;
            s->rows = got;
            s->state = SLOT_READ;
        }
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        if (got == 0) break;
        row += got;
    }
    return NULL;
}

/* The size of the flushed temp file: where the rows written so far end. */
static enum kiln_status score_output_bytes(const char *tmp, int64_t *bytes)
{
    struct stat sb;
    if (stat(tmp, &sb) != 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", tmp, strerror(errno));
    *bytes = (int64_t)sb.st_size;
    return KILN_OK;
}

static void *score_writer(void *arg)
{
    struct score_pipe *p = arg;
    for (int64_t c = 0;; c++) {
        if (!pipe_wait(p, c, SLOT_DONE, &p->computed_chunks)) break;
        struct score_slot *s = &p->slot[c % KILN_SCORE_RING];
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        /* The data reaches the file before the record that counts it:
         * after every chunk for a process crash, fsynced every
         * SCORE_SYNC_SECONDS against a power loss. */
        double now = seconds_since(&p->t0);
        bool sync = now - p->synced >= SCORE_SYNC_SECONDS;
        int64_t bytes = -1;
        if (p->io_lock) pthread_mutex_lock(&p->io);
        enum kiln_status st = kiln_pred_writer_write(p->w, s->y, s->rows);
        if (st == KILN_OK) st = kiln_pred_writer_flush(p->w, sync);
        if (p->io_lock) pthread_mutex_unlock(&p->io);
        if (st == KILN_OK && p->csv_out) st = score_output_bytes(p->tmp_path, &bytes);
        if (st == KILN_OK)
            st = progress_write(p->progress_path, p->id, s->first + s->rows, bytes, sync);
        if (sync) p->synced = now;
        p->write_s += seconds_since(&t0);
        if (st != KILN_OK) {
            pipe_fail(p, st);
            break;
        }
        p->rows_done = s->first + s->rows;
        pipe_set(p, c, SLOT_FREE);
        if (p->job->on_progress)
            p->job->on_progress(p->job->user, p->rows_done, p->rows_total, seconds_since(&p->t0));
    }
    return NULL;
}

/* Runs the model over the chunks as the reader fills them; returns the
 * seconds spent in the model. */
static double score_compute(struct score_pipe *p, struct infer_model *im)
{
    int64_t c = 0;
    double busy = 0;
    for (;; c++) {
        if (!pipe_wait(p, c, SLOT_READ, &p->read_chunks)) break;
        struct score_slot *s = &p->slot[c % KILN_SCORE_RING];
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        enum kiln_status st = infer_model_run(im, s->x, s->rows, s->y);
        busy += seconds_since(&t0);
        if (st != KILN_OK) {
            pipe_fail(p, st);
            break;
        }
        pipe_set(p, c, SLOT_DONE);
    }
    pthread_mutex_lock(&p->mu);
    p->computed_chunks = c;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return busy;
}

/* The staged pipeline's buffers: two device staging buffers the model
 * reads its input from, and (transforms only) two pinned host buffers the
 * transforms write into; chunk c uses index c & 1. */
struct score_stage {
    float *dev[KILN_UPLOAD_TAGS];
    float *tx[KILN_UPLOAD_TAGS];
};

/* Downloads chunk c's outputs (queued by kiln_model_predict_queue) into its
 * slot and hands the slot to the writer. */
static enum kiln_status score_collect(struct score_pipe *p, struct infer_model *im, int64_t c)
{
    struct score_slot *s = &p->slot[c % KILN_SCORE_RING];
    enum kiln_status st = kiln_model_predict_collect(im->m, s->rows, s->y);
    if (st == KILN_OK) pipe_set(p, c, SLOT_DONE);
    return st;
}

/* score_compute for a backend whose memory is not host memory (and for the
 * CPU when a test forces it): per chunk c, the host transforms
 * c, queues its upload on the copy stream (overlapping the device's pass
 * over c-1), collects c-1, and queues c's pass behind its upload.
 *
 * Why no buffer is overwritten while a queued copy or pass still reads it
 * (collect waits for the compute stream, which waited for the upload of the
 * chunk it ran, so after collect(c) the upload and the pass of c are done):
 * - slot c's x (the upload's source without transforms) is refilled by the
 *   reader only after the writer frees the slot, which follows DONE, which
 *   follows collect(c);
 * - tx[c & 1] (its source with transforms) is rewritten by the prep of c+2,
 *   which runs after collect(c) (iteration c+1);
 * - dev[c & 1] is rewritten by the upload of c+2, queued after collect(c),
 *   so the pass of c that reads it has finished;
 * - the model's own buffers (layer outputs, probs) are rewritten by the pass
 *   of c+1, queued after collect(c) has downloaded c's outputs;
 * - slot c's y is written by collect(c) before DONE, read by the writer
 *   after it.
 * On leaving early, score_stage_drain waits for both streams before any of
 * these buffers is freed. Returns the seconds spent in the model. */
static double score_compute_staged(struct score_pipe *p, struct infer_model *im,
                                   struct score_stage *sg)
{
    struct kiln_backend *be = im->be;
    int64_t c = 0, pending = -1; /* the chunk queued on the device, not collected */
    double busy = 0;
    enum kiln_status st = KILN_OK;
    for (;; c++) {
        if (!pipe_wait(p, c, SLOT_READ, &p->read_chunks)) break;
        struct score_slot *s = &p->slot[c % KILN_SCORE_RING];
        int tag = (int)(c & 1);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        const float *ready = NULL;
        st = infer_model_prep(im, s->x, s->rows, sg->tx[tag], &ready);
        if (st == KILN_OK)
            st = backend_upload_async(be, sg->dev[tag], ready,
                                      (size_t)(s->rows * im->in) * sizeof(float), tag);
        if (st == KILN_OK && pending >= 0) st = score_collect(p, im, pending);
        if (st == KILN_OK) {
            pending = -1;
            st = backend_upload_wait(be, tag);
        }
        if (st == KILN_OK) st = kiln_model_predict_queue(im->m, sg->dev[tag], s->rows);
        if (st == KILN_OK) pending = c;
        busy += seconds_since(&t0);
        if (st != KILN_OK) {
            pipe_fail(p, st);
            break;
        }
    }
    /* The reader ended (or the pipe stopped, when collecting is moot). */
    if (pending >= 0 && !pipe_stopped(p)) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        st = score_collect(p, im, pending);
        busy += seconds_since(&t0);
        if (st != KILN_OK) pipe_fail(p, st);
    }
    pthread_mutex_lock(&p->mu);
    p->computed_chunks = c;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return busy;
}

/* Waits for every queued copy and pass (errors ignored: the pipe's first
 * error is the one reported), so that their buffers may be freed. */
static void score_stage_drain(struct kiln_backend *be)
{
    for (int t = 0; t < KILN_UPLOAD_TAGS; t++) (void)backend_upload_wait(be, t);
    (void)be->iface->sync(be->ctx);
}

static void score_stage_free(struct kiln_backend *be, struct score_stage *sg)
{
    for (int t = 0; t < KILN_UPLOAD_TAGS; t++) {
        if (sg->dev[t]) be->iface->free(be->ctx, sg->dev[t]);
        backend_host_free(be, sg->tx[t]);
        sg->dev[t] = sg->tx[t] = NULL;
    }
}

static bool has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcasecmp(path + n - e, ext) == 0;
}

/* Moves r past its first n rows: a seek for HDF5; a CSV has no row index,
 * so its rows are read (into buf, batch rows at a time) and dropped. */
static enum kiln_status score_skip_rows(struct kiln_rows_reader *r, const char *input, int64_t n,
                                        float *buf, int64_t batch)
{
    if (kiln_rows_count(r) >= 0) return kiln_rows_skip(r, n);
    for (int64_t left = n; left > 0;) {
        int64_t got = 0;
        enum kiln_status st = kiln_rows_read(r, left < batch ? left : batch, buf, &got);
        if (st != KILN_OK) return st;
        if (got == 0)
            return kiln_errorf(KILN_ERR_FORMAT, "%s: has %" PRId64 " rows, the interrupted run "
                               "wrote %" PRId64 "; run without --resume to start over", input,
                               n - left, n);
        left -= got;
    }
    return KILN_OK;
}

/* Cuts a CSV partial file back to the end of its last recorded row. */
static enum kiln_status score_cut_csv(const char *tmp, int64_t bytes)
{
    struct stat sb;
    if (bytes < 0) return kiln_errorf(KILN_ERR_FORMAT, "%s.progress: no 'output_bytes' line", tmp);
    if (stat(tmp, &sb) != 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", tmp, strerror(errno));
    if ((int64_t)sb.st_size < bytes)
        return kiln_errorf(KILN_ERR_FORMAT, "%s: %lld bytes, shorter than the %" PRId64 " its "
                           "progress record counts (lost in a power failure?); run without "
                           "--resume to start over", tmp, (long long)sb.st_size, bytes);
    if (truncate(tmp, (off_t)bytes) != 0)
        return kiln_errorf(KILN_ERR_IO, "%s: cannot cut back to %" PRId64 " bytes: %s", tmp, bytes,
                           strerror(errno));
    return KILN_OK;
}

enum kiln_status kiln_score(const struct kiln_score_job *job, struct kiln_score_result *out)
{
    return score_run(job, false, out);
}

enum kiln_status score_run(const struct kiln_score_job *job, bool force_staged,
                           struct kiln_score_result *out)
{
    memset(out, 0, sizeof *out);
    struct score_stage sg = {0};
    bool staged = false;
    struct kiln_package *pkg = NULL;
    struct infer_model im = {0};
    struct kiln_rows_reader *r = NULL;
    struct score_pipe p = {.read_chunks = -1, .computed_chunks = -1, .job = job};
    struct score_identity id;
    pthread_t reader, writer;
    bool sync_made = false, reader_up = false, writer_up = false;
    char tmp[4200], progress[4200];
    const char *model = job->model, *name = job->model_name;
    int64_t version = job->model_version, batch = job->batch, done = -1, done_bytes = -1;
    size_t n = strlen(model);
    enum kiln_status st = KILN_OK;
    clock_gettime(CLOCK_MONOTONIC, &p.t0);
    if (!has_ext(job->output, ".h5") && !has_ext(job->output, ".hdf5") &&
        !has_ext(job->output, ".csv")) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s: predictions go to a .h5, .hdf5 or .csv file",
                         job->output);
        goto cleanup;
    }
    if (n > 5 && !strcmp(model + n - 5, ".kiln")) {
        st = kiln_package_open(model, NULL, false, &pkg);
        if (st != KILN_OK) goto cleanup;
        model = pkg->model_path;
        name = pkg->name;
        version = pkg->version;
        snprintf(out->package_sha256, sizeof out->package_sha256, "%s", pkg->sha256);
    }
    st = kiln_rows_open(job->input, job->input_array, job->drop_column, &r);
    if (st != KILN_OK) goto cleanup;
    /* Chunks of about KILN_SCORE_CHUNK_BYTES of input: few enough to keep
     * the per-chunk flush cheap, small enough for wide rows. */
    if (batch <= 0) {
        int64_t w = kiln_rows_width(r) > 0 ? kiln_rows_width(r) : 1;
        batch = KILN_SCORE_CHUNK_BYTES / (w * (int64_t)sizeof(float));
        batch = batch < KILN_SCORE_MIN_BATCH ? KILN_SCORE_MIN_BATCH
                : batch > KILN_SCORE_MAX_BATCH ? KILN_SCORE_MAX_BATCH : batch;
    }
    st = infer_model_open(&im, model, job->device ? job->device : "cpu", job->threads, batch);
    if (st == KILN_OK) st = infer_bind_rows(&im, r, job->input);
    if (st != KILN_OK) goto cleanup;
    snprintf(out->model_sha256, sizeof out->model_sha256, "%s", im.meta.file_sha256);
    snprintf(out->model_name, sizeof out->model_name, "%s", name ? name : "");
    out->model_version = version;
    struct kiln_pred_meta pm = infer_pred_meta(&im);
    pm.model_name = name;
    pm.model_version = version;
    pm.package_sha256 = pkg ? pkg->sha256 : NULL;
    /* Host memory backends (the CPU) run the model on the ring in place;
     * any other stages every chunk through pinned buffers. */
    staged = force_staged || !im.be->iface->host_memory;
    for (int i = 0; i < KILN_SCORE_RING; i++) {
        size_t xb = (size_t)(batch * im.raw) * sizeof(float);
        size_t yb = (size_t)(batch * im.k) * sizeof(float);
        p.slot[i].x = staged ? backend_host_alloc(im.be, xb) : malloc(xb);
        p.slot[i].y = staged ? backend_host_alloc(im.be, yb) : malloc(yb);
        if (!p.slot[i].x || !p.slot[i].y) {
            st = kiln_errorf(KILN_ERR_NOMEM, "score: out of memory for %" PRId64 "-row chunks",
                             batch);
            goto cleanup;
        }
    }
    for (int t = 0; staged && t < KILN_UPLOAD_TAGS; t++) {
        sg.dev[t] = im.be->iface->alloc(im.be->ctx, (size_t)(batch * im.in) * sizeof(float));
        if (im.tl) sg.tx[t] = backend_host_alloc(im.be, (size_t)(batch * im.in) * sizeof(float));
        if (!sg.dev[t] || (im.tl && !sg.tx[t])) {
            st = kiln_error_context(KILN_ERR_NOMEM, "score: staging buffers for %" PRId64
                                    "-row chunks", batch);
            goto cleanup;
        }
    }
    snprintf(tmp, sizeof tmp, "%s.partial", job->output);
    snprintf(progress, sizeof progress, "%s.progress", job->output);
    p.csv_out = has_ext(job->output, ".csv");
    st = score_identity_make(job->input, im.meta.file_sha256, &id);
    if (st == KILN_OK && job->resume) st = progress_read(progress, &id, &done, &done_bytes);
    if (st != KILN_OK) goto cleanup;
    if (done >= 0 && access(tmp, F_OK) != 0) done = -1;
    if (done >= 0 && kiln_rows_count(r) >= 0 && done > kiln_rows_count(r)) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: records %" PRId64 " rows, the input has %"
                         PRId64, progress, done, kiln_rows_count(r));
        goto cleanup;
    }
    if (done < 0) unlink(progress);
    if (done >= 0 && p.csv_out) st = score_cut_csv(tmp, done_bytes);
    if (st == KILN_OK) st = kiln_pred_writer_open_resumable(job->output, tmp, done, &pm, &p.w);
    if (st == KILN_OK && done > 0) st = score_skip_rows(r, job->input, done, p.slot[0].x, batch);
    if (st == KILN_OK && done < 0) {
        int64_t bytes = -1;
        if (p.csv_out) st = score_output_bytes(tmp, &bytes);
        if (st == KILN_OK) st = progress_write(progress, &id, 0, bytes, true);
    }
    if (st != KILN_OK) goto cleanup;
    p.progress_path = progress;
    p.tmp_path = tmp;
    p.id = &id;
    out->resumed_from = p.first_row = done > 0 ? done : 0;
    p.r = r;
    p.batch = batch;
    p.io_lock = kiln_rows_count(r) >= 0 && !p.csv_out; /* a CSV input counts -1 rows */
    p.rows_done = p.first_row;
    p.rows_total = kiln_rows_count(r);
    if (pthread_mutex_init(&p.mu, NULL) != 0 || pthread_mutex_init(&p.io, NULL) != 0 ||
        pthread_cond_init(&p.cv, NULL) != 0) {
        st = kiln_errorf(KILN_ERR_NOMEM, "score: cannot make a mutex");
        goto cleanup;
    }
    sync_made = true;
    reader_up = pthread_create(&reader, NULL, score_reader, &p) == 0;
    writer_up = reader_up && pthread_create(&writer, NULL, score_writer, &p) == 0;
    if (!writer_up) {
        pipe_fail(&p, kiln_errorf(KILN_ERR_NOMEM, "score: cannot start a thread"));
    } else {
        out->compute_seconds = staged ? score_compute_staged(&p, &im, &sg)
                                      : score_compute(&p, &im);
    }
cleanup:
    if (reader_up) pthread_join(reader, NULL);
    if (writer_up) pthread_join(writer, NULL);
    if (st == KILN_OK && p.stop) st = kiln_errorf(p.err, "%s", p.msg);
    out->rows = p.rows_done;
    out->read_seconds = p.read_s;
    out->write_seconds = p.write_s;
    if (p.w) {
        enum kiln_status cst = kiln_pred_writer_close(p.w, st == KILN_OK);
        if (st == KILN_OK) st = cst;
        if (st == KILN_OK) unlink(progress);
    }
    if (sync_made) {
        pthread_mutex_destroy(&p.mu);
        pthread_mutex_destroy(&p.io);
        pthread_cond_destroy(&p.cv);
    }
    if (staged) score_stage_drain(im.be);
    for (int i = 0; i < KILN_SCORE_RING; i++) {
        if (staged) {
            backend_host_free(im.be, p.slot[i].x);
            backend_host_free(im.be, p.slot[i].y);
        } else {
            free(p.slot[i].x);
            free(p.slot[i].y);
        }
    }
    if (staged) score_stage_free(im.be, &sg);
    kiln_rows_close(r);
    infer_model_close(&im);
    kiln_package_close(pkg);
    out->seconds = seconds_since(&p.t0);
    return st;
}
