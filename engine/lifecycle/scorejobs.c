/* engine/lifecycle/scorejobs.c: kiln score inside a workspace: the job
 * record (table score_jobs), the lock that tells a live job from a dead one,
 * registering the output as a dataset version, and the listing
 * (kiln/score.h, docs/FORMATS.md "Scoring jobs"). */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "kiln/dataversions.h"
#include "kiln/score.h"
#include "store-internal.h"

/* --- liveness ------------------------------------------------------------------------
 * As for runs: the scoring process holds an exclusive flock on
 * .kiln/locks/score-N.lock while the job runs; the kernel drops it however
 * the process dies, so kiln_store_open (store_reap_dead) marks a job whose
 * lock anyone can take interrupted. */

/* Takes job id's lock. A reaper may hold it for an instant while it checks
 * it, so a refusal is retried for a second before it counts. */
static enum kiln_status job_lock(struct kiln_store *ws, int64_t id, int *fd_out)
{
    char path[4400], dir[4400];
    *fd_out = -1;
    store_lock_path(ws, "score", id, path, sizeof path);
    snprintf(dir, sizeof dir, "%s/locks", ws->dir);
    mkdir(dir, 0777); /* workspaces made before locks/ existed */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    for (int tries = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; tries++) {
        if (errno != EWOULDBLOCK || tries == 100) {
            int err = errno;
            close(fd);
            return kiln_errorf(KILN_ERR_IO, "%s: flock: %s", path, strerror(err));
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    *fd_out = fd;
    return KILN_OK;
}

/* --- lookups --------------------------------------------------------------------------- */

static int64_t query_id(struct kiln_store *ws, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *s;
    if (store_prepare(ws, sql, &s) != KILN_OK) return 0;
    sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(s) >= 2) sqlite3_bind_text(s, 2, b ? b : "", -1, SQLITE_STATIC);
    int64_t id = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return id;
}

/* The registered version whose file is the model that scored (by SHA-256:
 * the same for a package's model.h5, a run's checkpoint and a reference),
 * preferring one of the name the output records. */
static int64_t find_model_version(struct kiln_store *ws, const char *model_sha, const char *name)
{
    if (!model_sha[0]) return 0;
    return query_id(ws, "SELECT v.id FROM model_versions v JOIN models m ON m.id = v.model_id "
                        "WHERE v.object_sha256 = ?1 ORDER BY m.name = ?2 DESC, v.id DESC LIMIT 1",
                    model_sha, name);
}

/* The newest dataset version holding the content of the kiln dataset file
 * at path (its `sha256` attribute), or 0 for any other file. */
static int64_t find_input_version(struct kiln_store *ws, const char *path)
{
    struct kiln_dataset *hdr = NULL;
    int64_t id = 0;
    h5_quiet();
    if (H5Fis_hdf5(path) > 0 && kiln_dataset_load_header(path, &hdr) == KILN_OK && hdr->sha256[0])
        id = query_id(ws, "SELECT id FROM dataset_versions WHERE content_sha256 = ? ORDER BY id "
                          "DESC LIMIT 1", hdr->sha256, NULL);
    kiln_dataset_free(hdr);
    return id;
}

/* "blobs@v2 (3f2a9c1d7e0b)" for dataset version id. */
static void version_label(struct kiln_store *ws, int64_t id, char *buf, size_t len)
{
    struct kiln_dataversion_record r;
    buf[0] = '\0';
    if (id && kiln_dataversion_get(ws, id, &r) == KILN_OK) {
        snprintf(buf, len, "%s@v%lld (%.12s)", r.v.name, (long long)r.v.version,
                 r.v.content_sha256);
        kiln_dataversion_record_free(&r);
    }
}

/* The split an input array names: "test" for test/X (and by default). */
static const char *job_split(const struct kiln_score_job *job, const struct kiln_scorejob_options *opt)
{
    static const char *const names[] = {"train", "val", "test"};
    if (opt->split) return opt->split;
    if (!job->input_array) return "test";
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(names[i]);
        const char *a = job->input_array + (job->input_array[0] == '/');
        if (!strncmp(a, names[i], n) && !strcmp(a + n, "/X")) return names[i];
    }
    return NULL;
}

/* --- registering the output --------------------------------------------------------- */

/* Reads the output's predictions into split s's y: the class index
 * (classifiers, y int32) or the outputs (regression, y float32 [n, k]). */
static enum kiln_status output_labels(const char *path, struct kiln_dataset *ds, int64_t rows,
                                      enum kiln_dtype *y_dtype, int64_t *y_dim, void **y)
{
    enum kiln_status st = KILN_OK;
    struct h5_array a = H5_ARRAY_INIT;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hsize_t dims[2] = {0, 0};
    *y = NULL;
    if (f < 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: cannot be opened as HDF5", path);
        goto cleanup;
    }
    bool cls = H5Lexists(f, "pred", H5P_DEFAULT) > 0;
    if (cls) {
        st = h5_attr_read_strs(f, "classes", &ds->classes, &ds->n_classes);
        if (st != KILN_OK) goto cleanup;
    }
    const char *name = cls ? "pred" : "output";
    int rank = cls ? 1 : 2;
    if (!h5_array_open(f, name, &a) || H5Sget_simple_extent_ndims(a.space) != rank ||
        H5Sget_simple_extent_dims(a.space, dims, NULL) != rank || dims[0] != (hsize_t)rows) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: no /%s of %" PRId64 " rows", path, name, rows);
        goto cleanup;
    }
    *y_dtype = cls ? KILN_DTYPE_I32 : KILN_DTYPE_F32;
    *y_dim = cls ? 1 : (int64_t)dims[1];
    *y = malloc((size_t)(rows * *y_dim) * 4 + 4);
    if (!*y) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory for %" PRId64 " rows", path, rows);
        goto cleanup;
    }
    if (H5Dread(a.d, cls ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                *y) < 0)
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: /%s cannot be read", path, name);
cleanup:
    h5_array_close(&a);
    if (f >= 0) H5Fclose(f);
    if (st != KILN_OK) {
        free(*y);
        *y = NULL;
    }
    return st;
}

/* The scored rows as a split for ds: a kiln dataset's split as it stores it
 * (uint8 stays uint8), any other input as the float32 rows the model read.
 * Its y is the caller's to fill (a placeholder of y_dtype x y_dim). */
static enum kiln_status input_rows(const struct kiln_score_job *job, const char *split,
                                   int64_t rows, enum kiln_dtype y_dtype, int64_t y_dim,
                                   struct kiln_dataset *ds, struct kiln_split **out)
{
    enum kiln_status st = KILN_OK;
    struct kiln_dataset *src = NULL, *hdr = NULL;
    struct kiln_rows_reader *r = NULL;
    struct kiln_split *s = NULL;
    enum kiln_split_id sid;
    *out = NULL;
    h5_quiet();
    bool is_dataset = H5Fis_hdf5(job->input) > 0 && split &&
                      kiln_split_parse(split, &sid) == KILN_OK &&
                      kiln_dataset_load_header(job->input, &hdr) == KILN_OK;
    if (is_dataset) {
        st = kiln_dataset_load(job->input, &src);
        if (st != KILN_OK) goto cleanup;
        s = src->splits[sid];
        if (!s || s->n != rows) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: the %s split no longer has the %" PRId64
                             " rows scored", job->input, split, rows);
            s = NULL;
            goto cleanup;
        }
        /* The labels are replaced and identifier digests dropped: they
         * belong to the source's salt, which this version does not carry. */
        src->splits[sid] = NULL;
        strv_free(s->hashed_names, s->n_hashed);
        strv_free(s->hashed, s->n_hashed);
        s->hashed_names = s->hashed = NULL;
        s->n_hashed = 0;
        s->y_dtype = y_dtype;
        s->y_dim = y_dim;
        ds->feature_names = src->feature_names;
        ds->n_features = src->n_features;
        src->feature_names = NULL;
        src->n_features = 0;
        ds->transforms = src->transforms;
        src->transforms = NULL;
        goto cleanup;
    }
    st = kiln_rows_open(job->input, job->input_array, job->drop_column, &r);
    if (st != KILN_OK) goto cleanup;
    int64_t w = kiln_rows_width(r), got = 0;
    st = kiln_split_create(rows, 1, &w, KILN_DTYPE_F32, y_dtype, y_dim, &s);
    if (st == KILN_OK) st = kiln_rows_read(r, rows, s->X, &got);
    if (st == KILN_OK && got != rows)
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: no longer has the %" PRId64 " rows scored",
                         job->input, rows);
cleanup:
    if (st == KILN_OK) *out = s;
    else kiln_split_free(s);
    kiln_rows_close(r);
    kiln_dataset_free(hdr);
    kiln_dataset_free(src);
    return st;
}

/* The dataset that registers job's finished output as a version of
 * opt->register_name (see kiln/score.h); caller frees. Made before the
 * registering transaction, so that reading the rows does not hold the
 * workspace's write lock. */
static enum kiln_status job_dataset(struct kiln_store *ws, const struct kiln_score_job *job,
                                    const struct kiln_scorejob_options *opt, int64_t job_id,
                                    int64_t input_version, const struct kiln_score_result *res,
                                    struct kiln_dataset **out)
{
    enum kiln_status st = KILN_OK;
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    struct kiln_split *s = NULL;
    enum kiln_dtype y_dtype = KILN_DTYPE_I32;
    int64_t y_dim = 1;
    void *y = NULL;
    char in_label[300] = "", now[32];
    if (!ds) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    st = output_labels(job->output, ds, res->rows, &y_dtype, &y_dim, &y);
    if (st == KILN_OK) st = input_rows(job, job_split(job, opt), res->rows, y_dtype, y_dim, ds, &s);
    if (st != KILN_OK) goto cleanup;
    free(s->y);
    s->y = y;
    y = NULL;
    ds->splits[KILN_SPLIT_TRAIN] = s;
    s = NULL;
    version_label(ws, input_version, in_label, sizeof in_label);
    struct sbuf b = {0};
    sbuf_add(&b, "kiln score (score:%lld): model %s", (long long)job_id, opt->model_ref);
    char named[300] = "";
    if (res->model_name[0] && res->model_version > 0)
        snprintf(named, sizeof named, "%s@%lld", res->model_name, (long long)res->model_version);
    if (named[0] && strcmp(named, opt->model_ref)) sbuf_add(&b, " (%s)", named);
    sbuf_add(&b, " sha256 %.12s over %s", res->model_sha256, in_label[0] ? in_label : opt->input_ref);
    if (job_split(job, opt) && in_label[0]) sbuf_add(&b, " split %s", job_split(job, opt));
    ds->source = sbuf_take(&b);
    time_iso8601(now);
    if (st == KILN_OK) st = str_dup(opt->register_name, &ds->name);
    if (st == KILN_OK) st = str_dup(now, &ds->created);
    if (st == KILN_OK && !ds->source) st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
cleanup:
    free(y);
    kiln_split_free(s);
    if (st == KILN_OK) *out = ds;
    else kiln_dataset_free(ds);
    return st;
}

/* --- the job ----------------------------------------------------------------------- */

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
    if (t && t[0]) sqlite3_bind_text(s, i, t, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(s, i);
}

static void bind_id_or_null(sqlite3_stmt *s, int i, int64_t id)
{
    if (id > 0) sqlite3_bind_int64(s, i, id);
    else sqlite3_bind_null(s, i);
}

/* Records job as running, takes its lock (before the row is visible, so no
 * reaper sees it unlocked) and appends score.start, in one transaction. */
static enum kiln_status job_begin(struct kiln_store *ws, const struct kiln_score_job *job,
                                  const struct kiln_scorejob_options *opt, const char *input_abs,
                                  const char *output_abs, int64_t input_version, int64_t *id,
                                  int *lock_fd)
{
    sqlite3_stmt *s = NULL;
    char now[32], subject[64], detail[9000];
    *id = 0;
    time_iso8601(now);
    enum kiln_status st = kiln_store_begin(ws);
    if (st != KILN_OK) return st;
    st = store_prepare(ws, "INSERT INTO score_jobs(status, model, input, input_path, input_array, "
                           "split, input_version_id, output, device, threads, batch, host, user, "
                           "pid, started) VALUES('running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       &s);
    if (st != KILN_OK) goto cleanup;
    sqlite3_bind_text(s, 1, opt->model_ref, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, opt->input_ref, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, input_abs, -1, SQLITE_STATIC);
    bind_text_or_null(s, 4, job->input_array);
    bind_text_or_null(s, 5, opt->split);
    bind_id_or_null(s, 6, input_version);
    sqlite3_bind_text(s, 7, output_abs, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, job->device ? job->device : "cpu", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, job->threads);
    sqlite3_bind_int64(s, 10, job->batch);
    sqlite3_bind_text(s, 11, kiln_store_host(), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 12, kiln_store_user(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 13, (int64_t)getpid());
    sqlite3_bind_text(s, 14, now, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) {
        st = store_sql_error(ws, "recording a scoring job");
        goto cleanup;
    }
    *id = sqlite3_last_insert_rowid(ws->db);
    st = job_lock(ws, *id, lock_fd);
    if (st != KILN_OK) goto cleanup;
    snprintf(subject, sizeof subject, "score:%lld", (long long)*id);
    snprintf(detail, sizeof detail, "%s over %s -> %s%s", opt->model_ref, opt->input_ref,
             output_abs, job->resume ? " (resume)" : "");
    st = kiln_audit_append(ws, "score.start", subject, detail);
    if (st == KILN_OK) st = kiln_store_commit(ws);
cleanup:
    sqlite3_finalize(s);
    if (st != KILN_OK) {
        kiln_store_rollback(ws);
        if (*lock_fd >= 0) close(*lock_fd);
        *lock_fd = -1;
    }
    return st;
}

/* Records how job id ended (failed when error is not NULL), with the
 * version its output registered as (out->registered_version_id, when set),
 * and appends score.end; the caller holds the transaction. */
static enum kiln_status job_end(struct kiln_store *ws, int64_t id,
                                const struct kiln_score_result *res,
                                const struct kiln_scorejob_result *out, const char *error)
{
    sqlite3_stmt *s = NULL;
    char now[32], subject[64], detail[1200];
    time_iso8601(now);
    enum kiln_status st = store_prepare(
        ws, "UPDATE score_jobs SET status = ?, model_version_id = ?, model_sha256 = ?, "
            "package_sha256 = ?, output_sha256 = ?, rows = ?, resumed_from = ?, seconds = ?, "
            "read_seconds = ?, compute_seconds = ?, write_seconds = ?, ended = ?, error = ?, "
            "registered_version_id = ? WHERE id = ?",
        &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_text(s, 1, error ? "failed" : "finished", -1, SQLITE_STATIC);
    bind_id_or_null(s, 2, out->model_version_id);
    bind_text_or_null(s, 3, res->model_sha256);
    bind_text_or_null(s, 4, res->package_sha256);
    bind_text_or_null(s, 5, out->output_sha256);
    sqlite3_bind_int64(s, 6, res->rows);
    sqlite3_bind_int64(s, 7, res->resumed_from);
    sqlite3_bind_double(s, 8, res->seconds);
    sqlite3_bind_double(s, 9, res->read_seconds);
    sqlite3_bind_double(s, 10, res->compute_seconds);
    sqlite3_bind_double(s, 11, res->write_seconds);
    sqlite3_bind_text(s, 12, now, -1, SQLITE_STATIC);
    bind_text_or_null(s, 13, error);
    bind_id_or_null(s, 14, out->registered_version_id);
    sqlite3_bind_int64(s, 15, id);
    if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(ws, "recording a scoring job's end");
    sqlite3_finalize(s);
    if (st != KILN_OK) return st;
    snprintf(subject, sizeof subject, "score:%lld", (long long)id);
    if (error)
        snprintf(detail, sizeof detail, "failed: %.1100s", error);
    else
        snprintf(detail, sizeof detail, "finished: %lld rows (resumed after %lld) in %.2f s, "
                 "model %.12s, output %.12s", (long long)res->rows, (long long)res->resumed_from,
                 res->seconds, res->model_sha256, out->output_sha256);
    return kiln_audit_append(ws, "score.end", subject, detail);
}

/* KILN_ERR_USAGE naming the version and the splits it has when the dataset
 * file at path (version id) has no split named split. */
static enum kiln_status check_split(struct kiln_store *ws, int64_t id, const char *path,
                                    const char *split)
{
    struct kiln_dataset *hdr = NULL;
    enum kiln_split_id sid;
    enum kiln_status st = kiln_split_parse(split, &sid);
    if (st == KILN_OK) st = kiln_dataset_load_header(path, &hdr);
    if (st == KILN_OK && !hdr->splits[sid]) {
        char label[300], have[64] = "";
        version_label(ws, id, label, sizeof label);
        for (int i = 0; i < KILN_SPLIT_COUNT; i++)
            if (hdr->splits[i])
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s",
                         have[0] ? ", " : "", kiln_split_name(i));
        st = kiln_errorf(KILN_ERR_USAGE, "dataset %s has no %s split (it has %s); choose one "
                         "with --split", label, split, have);
    }
    kiln_dataset_free(hdr);
    return st;
}

/* The absolute form of path, whose folder must exist (the output's may not
 * hold the file yet). */
static void abs_path(const char *path, char *buf, size_t len)
{
    char dir[4096], *slash;
    if (realpath(path, buf)) return;
    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : path;
    if (slash) *slash = '\0';
    char real[4096];
    struct sbuf b = {0};
    if (realpath(slash ? (dir[0] ? dir : "/") : ".", real))
        sbuf_add(&b, "%s/%s", strcmp(real, "/") ? real : "", base);
    char *p = sbuf_take(&b);
    snprintf(buf, len, "%s", p && strlen(p) < len ? p : path);
    free(p);
}

enum kiln_status kiln_scorejob_run(struct kiln_store *ws, const struct kiln_score_job *job,
                                   const struct kiln_scorejob_options *opt,
                                   struct kiln_score_result *res,
                                   struct kiln_scorejob_result *out)
{
    enum kiln_status st = KILN_OK;
    char input_abs[4096], output_abs[4096], err[1024] = "";
    int lock_fd = -1;
    memset(out, 0, sizeof *out);
    memset(res, 0, sizeof *res);
    size_t n = strlen(job->output);
    if (opt->register_name && !(n > 3 && !strcasecmp(job->output + n - 3, ".h5")) &&
        !(n > 5 && !strcasecmp(job->output + n - 5, ".hdf5"))) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s: --register reads the predictions back from an HDF5 "
                         "output; write .h5 instead", job->output);
        goto cleanup;
    }
    if (opt->input_version_id && opt->split) {
        st = check_split(ws, opt->input_version_id, job->input, opt->split);
        if (st != KILN_OK) goto cleanup;
    }
    abs_path(job->input, input_abs, sizeof input_abs);
    abs_path(job->output, output_abs, sizeof output_abs);
    out->input_version_id = opt->input_version_id ? opt->input_version_id
                                                  : find_input_version(ws, job->input);
    st = job_begin(ws, job, opt, input_abs, output_abs, out->input_version_id, &out->job_id,
                   &lock_fd);
    if (st != KILN_OK) goto cleanup;
    enum kiln_status sst = kiln_score(job, res);
    if (sst != KILN_OK) snprintf(err, sizeof err, "%s", kiln_last_error());
    out->model_version_id = find_model_version(ws, res->model_sha256, res->model_name);
    if (sst == KILN_OK) sst = sha256_file(job->output, out->output_sha256);
    if (sst != KILN_OK && !err[0]) snprintf(err, sizeof err, "%s", kiln_last_error());
    struct kiln_dataset *ds = NULL;
    if (sst == KILN_OK && opt->register_name) {
        sst = job_dataset(ws, job, opt, out->job_id, out->input_version_id, res, &ds);
        if (sst != KILN_OK)
            snprintf(err, sizeof err, "registering the output: %s", kiln_last_error());
    }
    /* The end and the registration commit together: a registered version
     * always has its job finished. */
    st = kiln_store_begin(ws);
    if (st == KILN_OK && ds) {
        struct kiln_dataversion v;
        struct kiln_dataversion_options dvo = {.action = "score.register",
                                               .parent_id = out->input_version_id};
        st = kiln_dataversion_register(ws, ds, &dvo, &v);
        if (st == KILN_OK) {
            out->registered_version_id = v.id;
            snprintf(out->registered, sizeof out->registered, "%s@v%lld (%.12s)%s", v.name,
                     (long long)v.version, v.content_sha256,
                     v.created_new ? "" : ", unchanged");
        } else {
            /* The output is written but the command failed: the job is
             * recorded failed, with why, in a transaction of its own (the
             * register rolled back the one it ran in). */
            sst = st;
            snprintf(err, sizeof err, "registering the output: %s", kiln_last_error());
            kiln_store_rollback(ws);
            st = kiln_store_begin(ws);
        }
    }
    kiln_dataset_free(ds);
    if (st == KILN_OK) st = job_end(ws, out->job_id, res, out, sst == KILN_OK ? NULL : err);
    if (st == KILN_OK) st = kiln_store_commit(ws);
    else kiln_store_rollback(ws);
    /* The scoring's own failure is what the caller needs to hear. */
    if (sst != KILN_OK) st = kiln_errorf(sst, "%s", err);
cleanup:
    if (lock_fd >= 0) {
        char path[4400];
        store_lock_path(ws, "score", out->job_id, path, sizeof path);
        unlink(path);
        close(lock_fd);
    }
    return st;
}

/* --- listing ---------------------------------------------------------------------- */

static const char LIST_SQL[] =
    "SELECT j.id, j.status, j.model, m.name, mv.version, j.model_sha256, j.package_sha256, "
    "j.input, j.input_path, j.input_array, j.split, j.input_version_id, j.output, "
    "j.output_sha256, j.rows, j.resumed_from, j.device, j.threads, j.batch, j.seconds, "
    "j.read_seconds, j.compute_seconds, j.write_seconds, j.registered_version_id, j.host, "
    "j.user, j.pid, j.started, j.ended, j.error, j.model_version_id "
    "FROM score_jobs j LEFT JOIN model_versions mv ON mv.id = j.model_version_id "
    "LEFT JOIN models m ON m.id = mv.model_id ORDER BY j.id DESC LIMIT ?";

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : NULL;
}

static json_t *json_text_or_null(sqlite3_stmt *s, int i)
{
    return col_text(s, i) ? json_string(col_text(s, i)) : json_null();
}

static json_t *json_int_or_null(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? json_null()
                                                    : json_integer(sqlite3_column_int64(s, i));
}

static json_t *json_real_or_null(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? json_null()
                                                    : json_real(sqlite3_column_double(s, i));
}

/* What the listings show of a LIST_SQL row besides its columns: the input
 * and registered versions and "name@version" of the model ("" for none). */
struct job_labels {
    char input[300], registered[300], model[300];
};

static void job_labels(struct kiln_store *ws, sqlite3_stmt *s, struct job_labels *l)
{
    version_label(ws, sqlite3_column_int64(s, 11), l->input, sizeof l->input);
    version_label(ws, sqlite3_column_int64(s, 23), l->registered, sizeof l->registered);
    l->model[0] = '\0';
    if (col_text(s, 3))
        snprintf(l->model, sizeof l->model, "%s@%lld", col_text(s, 3),
                 (long long)sqlite3_column_int64(s, 4));
}

/* job_json's keys in order: a LIST_SQL column as text, integer or real
 * (NULL as null), or one of the labels ('m' model, 'n' input, 'g'
 * registered version; "" as null). */
static const struct {
    const char *key;
    char kind;
    int col;
} JOB_FIELDS[] = {
    {"id", 'i', 0},                  {"status", 't', 1},          {"model", 't', 2},
    {"model_version_id", 'i', 30},   {"model_version", 'm', 0},   {"model_sha256", 't', 5},
    {"package_sha256", 't', 6},      {"input", 't', 7},           {"input_path", 't', 8},
    {"input_array", 't', 9},         {"split", 't', 10},          {"input_version_id", 'i', 11},
    {"input_version", 'n', 0},       {"output", 't', 12},         {"output_sha256", 't', 13},
    {"rows", 'i', 14},               {"resumed_from", 'i', 15},   {"device", 't', 16},
    {"threads", 'i', 17},            {"batch", 'i', 18},          {"seconds", 'r', 19},
    {"read_seconds", 'r', 20},       {"compute_seconds", 'r', 21}, {"write_seconds", 'r', 22},
    {"registered_version_id", 'i', 23}, {"registered", 'g', 0},   {"host", 't', 24},
    {"user", 't', 25},               {"pid", 'i', 26},            {"started", 't', 27},
    {"ended", 't', 28},              {"error", 't', 29},
};

static json_t *job_json(struct kiln_store *ws, sqlite3_stmt *s)
{
    struct job_labels l;
    job_labels(ws, s, &l);
    json_t *o = json_object();
    if (!o) return NULL;
    for (size_t i = 0; i < sizeof JOB_FIELDS / sizeof *JOB_FIELDS; i++) {
        int c = JOB_FIELDS[i].col;
        const char *label = NULL;
        json_t *v;
        switch (JOB_FIELDS[i].kind) {
        case 't': v = json_text_or_null(s, c); break;
        case 'i': v = json_int_or_null(s, c); break;
        case 'r': v = json_real_or_null(s, c); break;
        default:
            label = JOB_FIELDS[i].kind == 'm' ? l.model
                    : JOB_FIELDS[i].kind == 'n' ? l.input : l.registered;
            v = label[0] ? json_string(label) : json_null();
        }
        json_object_set_new(o, JOB_FIELDS[i].key, v);
    }
    return o;
}

static void job_print(struct kiln_store *ws, sqlite3_stmt *s, FILE *out)
{
    char rows[32] = "-", secs[32] = "-";
    struct job_labels l;
    job_labels(ws, s, &l);
    char *in_label = l.input, *reg_label = l.registered;
    const char *model = l.model[0] ? l.model : col_text(s, 2) ? col_text(s, 2) : "";
    if (sqlite3_column_type(s, 14) != SQLITE_NULL)
        snprintf(rows, sizeof rows, "%lld", (long long)sqlite3_column_int64(s, 14));
    if (sqlite3_column_type(s, 19) != SQLITE_NULL)
        snprintf(secs, sizeof secs, "%.2f", sqlite3_column_double(s, 19));
    /* The input's version label without its hash keeps the column narrow. */
    char *paren = strstr(in_label, " (");
    if (paren) *paren = '\0';
    const char *input = in_label[0] ? in_label : col_text(s, 7) ? col_text(s, 7) : "";
    fprintf(out, "score:%-5lld %-11s %-20s %-20s %-5s %10s %8s  %-19s  %s", 
            (long long)sqlite3_column_int64(s, 0), col_text(s, 1) ? col_text(s, 1) : "", model,
            input, col_text(s, 10) ? col_text(s, 10) : "-", rows, secs,
            col_text(s, 27) ? col_text(s, 27) : "", col_text(s, 12) ? col_text(s, 12) : "");
    if (reg_label[0]) fprintf(out, " -> %s", reg_label);
    if (col_text(s, 29)) fprintf(out, "\n            error: %s", col_text(s, 29));
    fputc('\n', out);
}

enum kiln_status kiln_scorejobs_list(struct kiln_store *ws, int64_t limit, bool json, FILE *out)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, LIST_SQL, &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, limit > 0 ? limit : -1);
    json_t *arr = json ? json_array() : NULL;
    int n = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (json) {
            json_t *o = job_json(ws, s);
            if (!o || json_array_append_new(arr, o) != 0) {
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
                break;
            }
        } else {
            if (n == 0)
                fprintf(out, "%-11s %-11s %-20s %-20s %-5s %10s %8s  %-19s  %s\n", "JOB", "STATUS",
                        "MODEL", "INPUT", "SPLIT", "ROWS", "SECONDS", "STARTED", "OUTPUT");
            job_print(ws, s, out);
        }
        n++;
    }
    if (st == KILN_OK && rc != SQLITE_DONE) st = store_sql_error(ws, "listing scoring jobs");
    sqlite3_finalize(s);
    if (st != KILN_OK) {
        json_decref(arr);
        return st;
    }
    if (json) {
        if (!arr) return kiln_errorf(KILN_ERR_NOMEM, "out of memory building JSON");
        int jrc = json_dumpf(arr, out, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        json_decref(arr);
        fputc('\n', out);
        if (jrc != 0) return kiln_errorf(KILN_ERR_IO, "cannot write the output");
    } else if (n == 0) {
        fprintf(out, "no scoring jobs yet: `kiln score MODEL --input DATA --output FILE` inside "
                     "the workspace records one\n");
    }
    return ferror(out) ? kiln_errorf(KILN_ERR_IO, "cannot write the output") : KILN_OK;
}
