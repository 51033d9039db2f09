/* engine/lifecycle/runs.c: the run recorder (the workspace's observer of
 * kiln_train), resuming a run, and the helpers the run queries share. */
#define _DEFAULT_SOURCE /* realpath, strcasecmp */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/schema.h"
#include "core/util.h"
#include "kiln/backend.h"
#include "kiln/log.h"
#include "runs-internal.h"

/* Per-step losses are written in one transaction per this many steps, or
 * per FLUSH_SECONDS, and at every epoch end. */
#define FLUSH_STEPS 1000
#define FLUSH_SECONDS 2.0

/* --- shared helpers ------------------------------------------------------------ */

bool runs_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < len;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void runs_time_now(char buf[40])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char s[32];
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, 40, "%s.%03dZ", s, (int)(ts.tv_nsec / 1000000));
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), after Howard Hinnant's
 * days_from_civil, so no time zone is involved. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

double runs_time_parse(const char *iso)
{
    int y, mo, d, h, mi, sec, used = 0;
    if (!iso || sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6)
        return -1;
    double frac = 0;
    const char *p = iso + used;
    if (*p == '.') {
        char *end;
        frac = strtod(p, &end);
        p = end;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31) return -1;
    return (double)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) + frac;
}

void runs_format_float(float f, char *buf, size_t len)
{
    if (!buf || len == 0) return;
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, len, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) return;
    }
}

/* %.4g without printf for the values a table shows most (1e-4 <= |v| <
 * 1e4): a listing formats tens of thousands of them, and glibc's float
 * printing is most of its time. Scaling by an exact power of ten rounds
 * once, as printf does; other values go to snprintf. */
static bool format_4g_fast(double v, char *buf, size_t len)
{
    static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7};
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e6) || len < 16) return false;
    int e = (int)floor(log10(a));
    if (e < -4 || e > 5) return false;
    double scaled = 3 - e >= 0 ? a * p10[3 - e] : a / p10[e - 3];
    /* Near a tie the scaling's own rounding can decide it: printf's call. */
    if (fabs(scaled - floor(scaled) - 0.5) < 1e-6) return false;
    long long m = llround(scaled);
    if (m >= 10000) {
        e++;
        m = llround(3 - e >= 0 ? a * p10[3 - e] : a / p10[e - 3]);
    }
    if (m < 1000 || m > 9999 || e > 3) return false; /* %g: exponents of 4 or more are 1e+04 style */
    char digits[5];
    for (int i = 3; i >= 0; i--, m /= 10) digits[i] = (char)('0' + m % 10);
    digits[4] = '\0';
    size_t o = 0;
    if (v < 0) buf[o++] = '-';
    if (e >= 0) { /* d.ddd up to dddd00 */
        for (int i = 0; i <= e; i++) buf[o++] = i < 4 ? digits[i] : '0';
        if (e < 3) {
            buf[o++] = '.';
            for (int i = e + 1; i < 4; i++) buf[o++] = digits[i];
        }
    } else { /* 0.000dddd */
        buf[o++] = '0';
        buf[o++] = '.';
        for (int i = -1; i > e; i--) buf[o++] = '0';
        for (int i = 0; i < 4; i++) buf[o++] = digits[i];
    }
    /* %g drops trailing zeros of the fraction, and a bare point. */
    buf[o] = '\0';
    if (strchr(buf, '.')) {
        while (o > 0 && buf[o - 1] == '0') buf[--o] = '\0';
        if (o > 0 && buf[o - 1] == '.') buf[--o] = '\0';
    }
    return true;
}

void runs_format_metric(double v, char *buf, size_t len)
{
    if (v == floor(v) && fabs(v) < 1e9) snprintf(buf, len, "%.0f", v);
    else if (!format_4g_fast(v, buf, len)) snprintf(buf, len, "%.4g", v);
}

const char *runs_col_text(sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    return t ? (const char *)t : "";
}

/* --- run references ------------------------------------------------------------ */

enum kiln_status kiln_run_parse(struct kiln_store *ws, const char *text, int64_t *id)
{
    *id = 0;
    const char *p = text && !strncmp(text, "run:", 4) ? text + 4 : NULL;
    bool digits = p && *p && strlen(p) <= 18;
    for (const char *q = p; digits && *q; q++) digits = isdigit((unsigned char)*q);
    if (!digits) return kiln_errorf(KILN_ERR_USAGE, "'%s' is not a run (a run is run:N)", text ? text : "");
    int64_t n = strtoll(p, NULL, 10);
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, "SELECT 1 FROM runs WHERE id = ?", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, n);
    bool found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    if (!found) return kiln_errorf(KILN_ERR_NOT_FOUND, "run:%lld: no such run", (long long)n);
    *id = n;
    return KILN_OK;
}

enum kiln_status kiln_run_resume_point(struct kiln_store *ws, const char *text,
                                       struct kiln_run_resume *out)
{
    memset(out, 0, sizeof *out);
    int64_t id;
    enum kiln_status st = kiln_run_parse(ws, text, &id);
    if (st != KILN_OK) return st;
    out->run_id = id;
    sqlite3_stmt *s;
    st = store_prepare(ws,
                       "SELECT r.status, r.pid, r.host, r.dataset_version_id, v.object_sha256, "
                       "(SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = "
                       "'data.path'), (SELECT value FROM run_params p WHERE p.run_id = r.id AND "
                       "p.key = 'data') FROM runs r LEFT JOIN dataset_versions v ON "
                       "v.id = r.dataset_version_id WHERE r.id = ?",
                       &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    char data_sha[65] = "", data_file[4096] = "";
    if (sqlite3_step(s) == SQLITE_ROW) {
        snprintf(out->status, sizeof out->status, "%s", runs_col_text(s, 0));
        if (!strcmp(out->status, "running"))
            st = kiln_errorf(KILN_ERR_USAGE,
                             "run:%lld is still running (pid %lld on %s); resume it once it "
                             "has stopped",
                             (long long)id, (long long)sqlite3_column_int64(s, 1),
                             runs_col_text(s, 2));
        out->dataset_version_id = sqlite3_column_int64(s, 3);
        snprintf(data_sha, sizeof data_sha, "%s", runs_col_text(s, 4));
        snprintf(data_file, sizeof data_file, "%s", runs_col_text(s, 5));
        snprintf(out->data_ref, sizeof out->data_ref, "%s", runs_col_text(s, 6));
    }
    sqlite3_finalize(s);
    if (st != KILN_OK) return st;
    out->reuse = !strcmp(out->status, "interrupted") || !strcmp(out->status, "failed");
    /* The newest checkpoint; a finished run's final model is one too. */
    st = store_prepare(ws,
                       "SELECT object_sha256, epoch, step FROM checkpoints WHERE run_id = ? "
                       "ORDER BY step DESC, final DESC, id DESC LIMIT 1",
                       &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    char sha[65] = "";
    if (sqlite3_step(s) == SQLITE_ROW) {
        snprintf(sha, sizeof sha, "%s", runs_col_text(s, 0));
        out->epoch = sqlite3_column_int64(s, 1);
        out->step = sqlite3_column_int64(s, 2);
    }
    sqlite3_finalize(s);
    if (!sha[0] && !out->reuse)
        return kiln_errorf(KILN_ERR_NOT_FOUND,
                           "run:%lld has no checkpoint to resume from (train.checkpoint_every "
                           "is 0)",
                           (long long)id);
    /* A run that died before its first checkpoint starts over, as the same
     * run (checkpoint_path stays empty: epoch and step 0). */
    if (sha[0]) {
        st = kiln_store_object_path(ws, sha, out->checkpoint_path, sizeof out->checkpoint_path);
        if (st != KILN_OK) return kiln_error_context(st, "run:%lld's checkpoint", (long long)id);
    }
    /* The dataset, so that --data may be left out; checked when it is used. */
    struct stat sb;
    if (data_sha[0])
        kiln_store_object_path_unchecked(ws, data_sha, out->data_path, sizeof out->data_path);
    else if (data_file[0] && stat(data_file, &sb) == 0)
        snprintf(out->data_path, sizeof out->data_path, "%s", data_file);
    return KILN_OK;
}

/* --- the recorder ------------------------------------------------------------------ */

struct step_entry {
    int64_t step, epoch;
    double loss, time;
};

struct kiln_run_recorder {
    struct kiln_store *ws;
    struct kiln_run_options opt;
    char *data_ref;
    char **sets;
    struct kiln_run_resume resume;
    bool has_resume;
    int64_t run_id;
    int lock_fd;
    /* from on_start, for the test evaluation at the end */
    char device[64];
    int threads;
    const struct kiln_dataset *ds;
    int64_t last_epoch, last_step;
    /* per-step losses not yet written */
    struct step_entry *buf;
    size_t n, cap;
    double last_flush;
    sqlite3_stmt *ins_metric, *ins_summary;
    int64_t steps_logged;
    double step_seconds;
    bool step_error_logged;
};

struct kiln_run_options kiln_run_options_default(void)
{
    return (struct kiln_run_options){.evaluate_test = true};
}

enum kiln_status kiln_run_recorder_create(struct kiln_store *ws, const struct kiln_run_options *opt,
                                          struct kiln_run_recorder **out)
{
    *out = NULL;
    struct kiln_run_recorder *r = calloc(1, sizeof *r);
    if (!r) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    r->ws = ws;
    r->lock_fd = -1;
    r->opt = *opt;
    enum kiln_status st = str_dup(opt->data_ref, &r->data_ref);
    if (st == KILN_OK && opt->n_sets > 0) {
        r->sets = calloc((size_t)opt->n_sets, sizeof *r->sets);
        if (!r->sets) st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        for (int i = 0; st == KILN_OK && i < opt->n_sets; i++) st = str_dup(opt->sets[i], &r->sets[i]);
    }
    if (opt->resume) {
        r->resume = *opt->resume;
        r->has_resume = true;
    }
    r->opt.data_ref = r->data_ref;
    r->opt.sets = (const char *const *)r->sets;
    r->opt.resume = NULL;
    if (st != KILN_OK) {
        kiln_run_recorder_free(r);
        return st;
    }
    *out = r;
    return KILN_OK;
}

void kiln_run_recorder_free(struct kiln_run_recorder *r)
{
    if (!r) return;
    sqlite3_finalize(r->ins_metric);
    sqlite3_finalize(r->ins_summary);
    if (r->lock_fd >= 0) close(r->lock_fd);
    for (int i = 0; r->sets && i < r->opt.n_sets; i++) free(r->sets[i]);
    free(r->sets);
    free(r->data_ref);
    free(r->buf);
    free(r);
}

int64_t kiln_run_recorder_run_id(const struct kiln_run_recorder *r) { return r->run_id; }

void kiln_run_recorder_step_cost(const struct kiln_run_recorder *r, int64_t *steps,
                                 double *seconds)
{
    *steps = r->steps_logged;
    *seconds = r->step_seconds;
}

/* Writes one metric value and makes it the run's latest for key. Runs
 * inside the caller's transaction. */
static enum kiln_status rec_metric(struct kiln_run_recorder *r, const char *key, int64_t step,
                                   int64_t epoch, double value, double time)
{
    if (!isfinite(value)) return KILN_OK; /* SQLite stores NaN as NULL; the column refuses it */
    sqlite3_stmt *s = r->ins_metric;
    sqlite3_bind_int64(s, 1, r->run_id);
    sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, step);
    sqlite3_bind_int64(s, 4, epoch);
    sqlite3_bind_double(s, 5, value);
    sqlite3_bind_double(s, 6, time);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return store_sql_error(r->ws, "recording a metric");
    s = r->ins_summary;
    sqlite3_bind_int64(s, 1, r->run_id);
    sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 3, value);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) return store_sql_error(r->ws, "recording a metric");
    return KILN_OK;
}

/* The stored names of an evaluation's metrics, one set per split. Literals
 * on purpose: rec_metric's statements keep the key pointers bound. */
struct eval_keys {
    const char *loss, *accuracy, *macro_f1, *mse, *mae, *r2;
};
static const struct eval_keys val_metric_keys = {"val_loss", "val_accuracy", "val_macro_f1",
                                                 "val_mse",  "val_mae",      "val_r2"};
static const struct eval_keys test_metric_keys = {"test_loss", "test_accuracy", "test_macro_f1",
                                                  "test_mse",  "test_mae",      "test_r2"};

/* An evaluation's loss and the metrics of its task (classification or
 * regression), inside the caller's transaction. */
static enum kiln_status rec_eval_metrics(struct kiln_run_recorder *r, const struct eval_keys *k,
                                         const struct kiln_metrics *m, int64_t step,
                                         int64_t epoch, double now)
{
    bool cls = m->n_classes > 0;
    struct {
        const char *key;
        bool have;
        double v;
    } v[] = {
        {k->loss, true, m->loss}, {k->accuracy, cls, m->accuracy}, {k->macro_f1, cls, m->macro_f1},
        {k->mse, !cls, m->mse},   {k->mae, !cls, m->mae},           {k->r2, !cls, m->r2},
    };
    enum kiln_status st = KILN_OK;
    for (size_t i = 0; i < sizeof v / sizeof v[0] && st == KILN_OK; i++)
        if (v[i].have) st = rec_metric(r, v[i].key, step, epoch, v[i].v, now);
    return st;
}

/* Stores the file at path (the run's final model, or a checkpoint) and
 * records it for the run, created at ts (NULL: now). Inside the caller's
 * transaction, so gc cannot take the object before the row that references
 * it exists. */
static enum kiln_status rec_checkpoint(struct kiln_run_recorder *r, const char *path, bool final,
                                       int64_t epoch, int64_t step, const char *ts)
{
    struct kiln_store *ws = r->ws;
    char sha[65];
    sqlite3_stmt *s = NULL;
    enum kiln_status st = kiln_store_put_file(ws, path, final ? "model" : "checkpoint", sha, NULL);
    if (st == KILN_OK)
        st = store_prepare(ws,
                           "INSERT INTO checkpoints(run_id, epoch, step, final, object_sha256, "
                           "created) VALUES(?, ?, ?, ?, ?, ?)",
                           &s);
    if (st == KILN_OK) {
        char now[40];
        if (!ts) {
            runs_time_now(now);
            ts = now;
        }
        sqlite3_bind_int64(s, 1, r->run_id);
        sqlite3_bind_int64(s, 2, epoch);
        sqlite3_bind_int64(s, 3, step);
        sqlite3_bind_int(s, 4, final);
        sqlite3_bind_text(s, 5, sha, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 6, ts, -1, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE)
            st = store_sql_error(ws, final ? "recording the final model" : "recording a checkpoint");
    }
    sqlite3_finalize(s);
    return st;
}

/* Writes the buffered per-step losses, inside the caller's transaction
 * (one INSERT per step with the same prepared statement; the summary once). */
static enum kiln_status rec_write_steps(struct kiln_run_recorder *r)
{
    if (r->n == 0) return KILN_OK;
    sqlite3_stmt *s = r->ins_metric;
    for (size_t i = 0; i < r->n; i++) {
        const struct step_entry *e = &r->buf[i];
        if (!isfinite(e->loss)) continue;
        sqlite3_bind_int64(s, 1, r->run_id);
        sqlite3_bind_text(s, 2, "step_loss", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, e->step);
        sqlite3_bind_int64(s, 4, e->epoch);
        sqlite3_bind_double(s, 5, e->loss);
        sqlite3_bind_double(s, 6, e->time);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE) return store_sql_error(r->ws, "recording the step losses");
    }
    const struct step_entry *last = &r->buf[r->n - 1];
    if (isfinite(last->loss)) {
        s = r->ins_summary;
        sqlite3_bind_int64(s, 1, r->run_id);
        sqlite3_bind_text(s, 2, "step_loss", -1, SQLITE_STATIC);
        sqlite3_bind_double(s, 3, last->loss);
        int rc = sqlite3_step(s);
        sqlite3_reset(s);
        if (rc != SQLITE_DONE) return store_sql_error(r->ws, "recording the step losses");
    }
    return KILN_OK;
}

static enum kiln_status rec_flush_steps(struct kiln_run_recorder *r)
{
    if (r->n == 0) return KILN_OK;
    enum kiln_status st = kiln_store_begin(r->ws);
    if (st != KILN_OK) return st;
    st = rec_write_steps(r);
    if (st == KILN_OK) st = kiln_store_commit(r->ws);
    else kiln_store_rollback(r->ws);
    if (st == KILN_OK) r->n = 0;
    return st;
}

/* "key=value" pairs of every hyperparameter, from the config schema table,
 * so that a key added there is recorded without a change here. Keys are
 * the --set spellings (model.layers[2].units). */
struct param_list {
    char (*key)[128];
    char (*value)[256];
    int n, cap;
    bool failed;
};

static void params_add(struct param_list *p, const char *key, const char *value)
{
    if (p->failed) return;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 64;
        char(*k)[128] = realloc(p->key, (size_t)cap * sizeof *k);
        if (k) p->key = k;
        char(*v)[256] = k ? realloc(p->value, (size_t)cap * sizeof *v) : NULL;
        if (v) p->value = v;
        if (!k || !v) {
            p->failed = true;
            return;
        }
        p->cap = cap;
    }
    snprintf(p->key[p->n], sizeof p->key[0], "%s", key);
    snprintf(p->value[p->n], sizeof p->value[0], "%s", value);
    p->n++;
}

static void param_value(const struct schema_key *k, const void *base, char *buf, size_t len)
{
    if (k->type == SCHEMA_FLOAT) {
        float f;
        memcpy(&f, (const char *)base + k->offset, sizeof f);
        runs_format_float(f, buf, len);
    } else {
        schema_format_value(k, base, buf, len);
    }
}

static void params_from_config(struct param_list *p, const struct kiln_config *cfg)
{
    char key[128], val[256];
    for (int i = 0; i < schema_n_keys; i++) {
        const struct schema_key *k = &schema_keys[i];
        if (k->type == SCHEMA_MAP || k->type == SCHEMA_TEXT) continue;
        if (k->type == SCHEMA_LIST_OF_MAPS) {
            for (int l = 0; l < cfg->model.n_layers; l++) {
                const struct kiln_layer_config *layer = &cfg->model.layers[l];
                for (int j = 0; j < schema_n_keys; j++) {
                    const struct schema_key *lk = &schema_keys[j];
                    if (lk->base != SCHEMA_BASE_LAYER || !schema_gate_open(lk, layer)) continue;
                    snprintf(key, sizeof key, "model.layers[%d].%s", l,
                             lk->path + strlen("model.layers[]."));
                    param_value(lk, layer, val, sizeof val);
                    params_add(p, key, val);
                }
            }
            continue;
        }
        const void *base = k->base == SCHEMA_BASE_MODEL   ? (const void *)&cfg->model
                           : k->base == SCHEMA_BASE_TRAIN ? (const void *)&cfg->train
                                                          : NULL;
        if (!base || !schema_gate_open(k, base)) continue;
        param_value(k, base, val, sizeof val);
        params_add(p, k->path, val);
    }
}

static enum kiln_status rec_write_params(struct kiln_run_recorder *r, const struct param_list *p)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(r->ws, "DELETE FROM run_params WHERE run_id = ?", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, r->run_id);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return store_sql_error(r->ws, "recording the run's params");
    st = store_prepare(r->ws, "INSERT OR REPLACE INTO run_params(run_id, key, value) VALUES(?, ?, ?)",
                       &s);
    if (st != KILN_OK) return st;
    for (int i = 0; i < p->n && st == KILN_OK; i++) {
        sqlite3_bind_int64(s, 1, r->run_id);
        sqlite3_bind_text(s, 2, p->key[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, p->value[i], -1, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(r->ws, "recording the run's params");
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    return st;
}

/* The config as recorded: the file as read, then the --set overrides as
 * comments (the params hold every resolved value). */
static char *rec_config_text(const struct kiln_run_recorder *r, const struct kiln_config *cfg)
{
    struct sbuf b = {0};
    sbuf_add(&b, "%s", cfg->source_yaml ? cfg->source_yaml : "");
    if (r->opt.n_sets > 0) {
        if (b.len && b.p[b.len - 1] != '\n') sbuf_add(&b, "\n");
        sbuf_add(&b, "# kiln train --set overrides, applied to the above:\n");
        for (int i = 0; i < r->opt.n_sets; i++) {
            /* One line each, whatever the value holds. */
            sbuf_add(&b, "#   ");
            for (const char *c = r->sets[i]; *c; c++) sbuf_add(&b, "%c", *c == '\n' ? ' ' : *c);
            sbuf_add(&b, "\n");
        }
    }
    return sbuf_take(&b);
}

/* The newest registered version with the dataset's content, or 0. */
static int64_t rec_find_dataset_version(struct kiln_store *ws, const char *content_sha)
{
    sqlite3_stmt *s;
    if (store_prepare(ws,
                      "SELECT id FROM dataset_versions WHERE content_sha256 = ? ORDER BY id DESC "
                      "LIMIT 1",
                      &s) != KILN_OK)
        return 0;
    sqlite3_bind_text(s, 1, content_sha, -1, SQLITE_STATIC);
    int64_t id = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return id;
}

/* Takes the run's lock for this process's lifetime in the run. A reaper in
 * another process may hold it for an instant while it checks it, so a
 * refusal is retried for a second before it counts. */
static enum kiln_status rec_lock(struct kiln_run_recorder *r)
{
    char path[4400];
    store_run_lock_path(r->ws, r->run_id, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0 && errno == ENOENT) {
        char dir[4400];
        snprintf(dir, sizeof dir, "%s/locks", r->ws->dir);
        mkdir(dir, 0777);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    }
    if (fd < 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    for (int tries = 0;; tries++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) break;
        if (errno != EWOULDBLOCK || tries == 100) {
            int err = errno;
            close(fd);
            if (err == EWOULDBLOCK)
                return kiln_errorf(KILN_ERR_USAGE,
                                   "run:%lld is being recorded by another process",
                                   (long long)r->run_id);
            return kiln_errorf(KILN_ERR_IO, "%s: flock: %s", path, strerror(err));
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (r->lock_fd >= 0) close(r->lock_fd);
    r->lock_fd = fd;
    return KILN_OK;
}

static enum kiln_status exec_bound(struct kiln_store *ws, const char *sql, int64_t a, int64_t b,
                                   const char *what)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, sql, &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, a);
    if (sqlite3_bind_parameter_count(s) >= 2) sqlite3_bind_int64(s, 2, b);
    if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(ws, what);
    sqlite3_finalize(s);
    return st;
}

/* Removes the temp files a killed process left in a run's folder
 * (".checkpoint.h5.tmp.<pid>" from the atomic writes) when that pid is gone. */
static void rec_clean_stale_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *tmp = e->d_name[0] == '.' ? strstr(e->d_name, ".tmp.") : NULL;
        if (!tmp) continue;
        char *end;
        long pid = strtol(tmp + 5, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char path[4400];
        if (runs_fmt(path, sizeof path, "%s/%s", dir, e->d_name)) unlink(path);
    }
    if (d) closedir(d);
}

/* Continuing an interrupted or failed run: it becomes running again and
 * forgets what it logged after the checkpoint it continues from. */
static enum kiln_status rec_reopen(struct kiln_run_recorder *r, const struct kiln_train_state *state)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(r->ws, "SELECT status FROM runs WHERE id = ?", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, r->run_id);
    char status[16] = "";
    if (sqlite3_step(s) == SQLITE_ROW) snprintf(status, sizeof status, "%s", runs_col_text(s, 0));
    sqlite3_finalize(s);
    /* We hold its lock, so a run still marked running has a dead owner. */
    if (strcmp(status, "interrupted") && strcmp(status, "failed") && strcmp(status, "running"))
        return kiln_errorf(KILN_ERR_USAGE, "run:%lld is %s now; it cannot be continued",
                           (long long)r->run_id, status[0] ? status : "gone");
    st = exec_bound(r->ws, "DELETE FROM run_metrics WHERE run_id = ? AND step > ?", r->run_id,
                    state->step, "resuming a run");
    if (st == KILN_OK)
        st = exec_bound(r->ws, "DELETE FROM checkpoints WHERE run_id = ? AND step > ?", r->run_id,
                        state->step, "resuming a run");
    if (st == KILN_OK)
        st = exec_bound(r->ws, "DELETE FROM run_summary WHERE run_id = ?", r->run_id, 0,
                        "resuming a run");
    /* The summary again from what is left: each key's value at its last step. */
    if (st == KILN_OK)
        st = exec_bound(r->ws,
                        "INSERT INTO run_summary(run_id, key, value) SELECT m.run_id, m.key, "
                        "m.value FROM run_metrics m WHERE m.run_id = ?1 AND m.step = (SELECT "
                        "MAX(step) FROM run_metrics n WHERE n.run_id = ?1 AND n.key = m.key)",
                        r->run_id, 0, "resuming a run");
    return st;
}

static enum kiln_status rec_on_start(void *user, const struct kiln_config *cfg,
                                     const struct kiln_dataset *ds, const char *backend,
                                     const struct kiln_train_state *state, char *out_dir,
                                     size_t out_dir_len)
{
    struct kiln_run_recorder *r = user;
    struct kiln_store *ws = r->ws;
    snprintf(r->device, sizeof r->device, "%s", cfg->train.device);
    r->threads = (int)cfg->train.threads;
    r->ds = ds;
    r->last_epoch = state->epoch;
    r->last_step = state->step;
    r->last_flush = now_seconds();

    struct param_list params = {0};
    params_from_config(&params, cfg);
    char abs_path[4096] = "";
    params_add(&params, "data", r->data_ref ? r->data_ref : "");
    params_add(&params, "data.name", ds->name ? ds->name : "");
    params_add(&params, "data.sha256", ds->sha256);
    char *config = rec_config_text(r, cfg);
    sqlite3_stmt *s = NULL;
    char ts[40];
    runs_time_now(ts);
    int64_t dsv = r->opt.dataset_version_id ? r->opt.dataset_version_id
                                            : rec_find_dataset_version(ws, ds->sha256);
    bool reuse = r->has_resume && r->resume.reuse;
    enum kiln_status st = KILN_OK;
    if (params.failed || !config) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (r->data_ref && realpath(r->data_ref, abs_path)) params_add(&params, "data.path", abs_path);
    /* Prepared once, reused for every step and epoch. */
    st = store_prepare(ws,
                       "INSERT OR REPLACE INTO run_metrics(run_id, key, step, epoch, value, time) "
                       "VALUES(?, ?, ?, ?, ?, ?)",
                       &r->ins_metric);
    if (st == KILN_OK)
        st = store_prepare(ws,
                           "INSERT OR REPLACE INTO run_summary(run_id, key, value) VALUES(?, ?, ?)",
                           &r->ins_summary);
    if (st != KILN_OK) goto done;

    if (reuse) {
        /* Lock first: two processes resuming the same run must not both win. */
        r->run_id = r->resume.run_id;
        st = rec_lock(r);
        if (st != KILN_OK) {
            r->run_id = 0; /* another process has it: its record is not ours to end */
            goto done;
        }
    }
    st = kiln_store_begin(ws);
    if (st != KILN_OK) {
        r->run_id = 0;
        goto done;
    }
    if (reuse) {
        st = rec_reopen(r, state);
        if (st != KILN_OK) goto rollback;
        st = store_prepare(ws,
                           "UPDATE runs SET status = 'running', config = ?1, "
                           "dataset_version_id = ?2, engine_version = ?3, git_commit = ?4, "
                           "host = ?5, user = ?6, pid = ?7, device = ?8, threads = ?9, "
                           "ended = NULL, error = NULL WHERE id = ?10",
                           &s);
    } else {
        st = store_prepare(ws,
                           "INSERT INTO runs(status, config, dataset_version_id, engine_version, "
                           "git_commit, host, user, pid, device, threads, started, sweep_id, "
                           "resumed_from) VALUES('running', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
                           "?11, ?12, ?13)",
                           &s);
    }
    if (st != KILN_OK) goto rollback;
    sqlite3_bind_text(s, 1, config, -1, SQLITE_STATIC);
    if (dsv) sqlite3_bind_int64(s, 2, dsv);
    else sqlite3_bind_null(s, 2);
    sqlite3_bind_text(s, 3, kiln_version_string(), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, kiln_git_commit(), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, kiln_store_host(), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, kiln_store_user(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, (int64_t)getpid());
    sqlite3_bind_text(s, 8, backend, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, cfg->train.threads);
    if (reuse) {
        sqlite3_bind_int64(s, 10, r->run_id);
    } else {
        sqlite3_bind_text(s, 11, ts, -1, SQLITE_STATIC);
        if (r->opt.sweep_id) sqlite3_bind_int64(s, 12, r->opt.sweep_id);
        else sqlite3_bind_null(s, 12);
        if (r->has_resume) sqlite3_bind_int64(s, 13, r->resume.run_id);
        else sqlite3_bind_null(s, 13);
    }
    if (sqlite3_step(s) != SQLITE_DONE) {
        st = store_sql_error(ws, "recording the run");
        goto rollback;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (!reuse) {
        r->run_id = sqlite3_last_insert_rowid(ws->db);
        /* Before the commit: no other process sees the run without its lock
         * held, so none can take it for dead. */
        st = rec_lock(r);
        if (st != KILN_OK) goto rollback;
    }
    st = rec_write_params(r, &params);
    if (st != KILN_OK) goto rollback;
    if (!out_dir[0]) {
        char prev[4096] = "";
        if (reuse) {
            st = store_prepare(ws, "SELECT out_dir FROM runs WHERE id = ?", &s);
            if (st != KILN_OK) goto rollback;
            sqlite3_bind_int64(s, 1, r->run_id);
            if (sqlite3_step(s) == SQLITE_ROW) snprintf(prev, sizeof prev, "%s", runs_col_text(s, 0));
            sqlite3_finalize(s);
            s = NULL;
        }
        if (prev[0]) {
            snprintf(out_dir, out_dir_len, "%s", prev);
            rec_clean_stale_tmp(out_dir);
        }
        else snprintf(out_dir, out_dir_len, "%s/runs/%lld", ws->dir, (long long)r->run_id);
    } else if (realpath(out_dir, abs_path)) {
        snprintf(out_dir, out_dir_len, "%s", abs_path);
    }
    st = store_prepare(ws, "UPDATE runs SET out_dir = ? WHERE id = ?", &s);
    if (st != KILN_OK) goto rollback;
    sqlite3_bind_text(s, 1, out_dir, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, r->run_id);
    if (sqlite3_step(s) != SQLITE_DONE) {
        st = store_sql_error(ws, "recording the run");
        goto rollback;
    }
    sqlite3_finalize(s);
    s = NULL;
    char subject[64], detail[512];
    snprintf(subject, sizeof subject, "run:%lld", (long long)r->run_id);
    if (reuse)
        snprintf(detail, sizeof detail, "continued from its checkpoint at epoch %lld, step %lld",
                 (long long)state->epoch, (long long)state->step);
    else if (r->has_resume)
        snprintf(detail, sizeof detail, "resumed from run:%lld at epoch %lld",
                 (long long)r->resume.run_id, (long long)state->epoch);
    else
        snprintf(detail, sizeof detail, "dataset %.64s (%.12s) on %.200s",
                 ds->name ? ds->name : "?", ds->sha256, backend);
    st = kiln_audit_append(ws, "run.start", subject, detail);
    if (st != KILN_OK) goto rollback;
    st = kiln_store_commit(ws);
    if (st != KILN_OK) {
        /* A failed COMMIT can leave the transaction open. */
        sqlite3_exec(ws->db, "ROLLBACK", NULL, NULL, NULL);
        r->run_id = 0;
        goto done;
    }
    if (r->opt.on_run_id) r->opt.on_run_id(r->opt.user, r->run_id);
    goto done;
rollback:
    sqlite3_finalize(s);
    s = NULL;
    kiln_store_rollback(ws);
    r->run_id = 0; /* nothing was recorded: on_end leaves the record alone */
done:
    sqlite3_finalize(s);
    free(config);
    free(params.key);
    free(params.value);
    return st;
}

static void rec_on_step(void *user, int64_t epoch, int64_t global_step, double loss)
{
    struct kiln_run_recorder *r = user;
    if (!r->run_id) return;
    double t0 = now_seconds();
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 2 * FLUSH_STEPS;
        struct step_entry *b = realloc(r->buf, cap * sizeof *b);
        if (!b) return; /* this step's loss is lost; the epoch's metrics are not */
        r->buf = b;
        r->cap = cap;
    }
    r->buf[r->n++] = (struct step_entry){global_step, epoch, loss, t0};
    r->steps_logged++;
    if (r->n >= FLUSH_STEPS || t0 - r->last_flush >= FLUSH_SECONDS) {
        r->last_flush = t0;
        /* A failed write keeps the buffer for the next try; the epoch's end
         * reports the error if it persists. */
        if (rec_flush_steps(r) != KILN_OK && !r->step_error_logged) {
            kiln_log(KILN_LOG_WARN, "run:%lld: %s (retrying at the epoch's end)",
                     (long long)r->run_id, kiln_last_error());
            r->step_error_logged = true;
        }
    }
    r->step_seconds += now_seconds() - t0;
}

static enum kiln_status rec_on_epoch(void *user, const struct kiln_epoch_report *e,
                                     const char *checkpoint)
{
    struct kiln_run_recorder *r = user;
    if (!r->run_id) return KILN_OK;
    struct kiln_store *ws = r->ws;
    double now = now_seconds();
    enum kiln_status st = kiln_store_begin(ws);
    if (st != KILN_OK) return st;
    st = rec_write_steps(r);
    struct {
        const char *key;
        double v;
    } m[] = {
        {"epoch", (double)e->epoch},   {"train_loss", e->train_loss},
        {"lr", e->lr},                 {"seconds", e->seconds},
        {"samples_per_s", e->samples_per_s},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0] && st == KILN_OK; i++)
        st = rec_metric(r, m[i].key, e->step, e->epoch, m[i].v, now);
    if (st == KILN_OK && e->has_val)
        st = rec_eval_metrics(r, &val_metric_keys, &e->val, e->step, e->epoch, now);
    if (st == KILN_OK && checkpoint)
        st = rec_checkpoint(r, checkpoint, false, e->epoch, e->step, NULL);
    if (st == KILN_OK) st = kiln_store_commit(ws);
    else kiln_store_rollback(ws);
    if (st != KILN_OK) return kiln_error_context(st, "recording run:%lld", (long long)r->run_id);
    r->n = 0;
    r->last_flush = now;
    r->last_epoch = e->epoch;
    r->last_step = e->step;
    return KILN_OK;
}

/* The final model on the dataset's test split, when it has one. */
static bool rec_eval_test(struct kiln_run_recorder *r, const char *model_path,
                          struct kiln_metrics *m)
{
    const struct kiln_split *test = r->ds ? r->ds->splits[KILN_SPLIT_TEST] : NULL;
    if (!r->opt.evaluate_test || !test || test->n == 0) return false;
    struct kiln_backend *be = NULL;
    struct kiln_model *model = NULL;
    struct kiln_model_meta meta = {0};
    char said[256];
    enum kiln_status st = kiln_backend_open(r->device, r->threads, &be, said, sizeof said);
    if (st == KILN_OK) st = kiln_model_load(model_path, be, 1024, &model, &meta);
    if (st == KILN_OK) st = kiln_evaluate(model, test, NULL, test->n, r->ds->n_classes, m);
    if (st != KILN_OK)
        kiln_log(KILN_LOG_WARN, "run:%lld: evaluating on the test split: %s", (long long)r->run_id,
                 kiln_last_error());
    kiln_model_meta_free(&meta);
    kiln_model_free(model);
    kiln_backend_free(be);
    return st == KILN_OK;
}

static enum kiln_status rec_finish(struct kiln_run_recorder *r, enum kiln_status result,
                                   const char *error, const char *model_path)
{
    struct kiln_store *ws = r->ws;
    struct kiln_metrics tm = {0};
    bool have_test = result == KILN_OK && model_path && rec_eval_test(r, model_path, &tm);
    double now = now_seconds();
    char ts[40];
    runs_time_now(ts);
    sqlite3_stmt *s = NULL;
    enum kiln_status st = kiln_store_begin(ws);
    if (st != KILN_OK) goto done;
    st = rec_write_steps(r);
    if (st == KILN_OK && have_test)
        st = rec_eval_metrics(r, &test_metric_keys, &tm, r->last_step, r->last_epoch, now);
    if (st == KILN_OK && result == KILN_OK && model_path)
        st = rec_checkpoint(r, model_path, true, r->last_epoch, r->last_step, ts);
    /* A run whose end could not be stored still ends: as failed, with why. */
    bool ok = st == KILN_OK && result == KILN_OK;
    char why[2048];
    snprintf(why, sizeof why, "%s", st == KILN_OK ? error : kiln_last_error());
    if (st != KILN_OK) {
        kiln_store_rollback(ws);
        if (kiln_store_begin(ws) != KILN_OK) goto done;
    }
    enum kiln_status st2 = store_prepare(
        ws, "UPDATE runs SET status = ?, ended = ?, error = ? WHERE id = ?", &s);
    if (st2 == KILN_OK) {
        sqlite3_bind_text(s, 1, ok ? "finished" : "failed", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, ts, -1, SQLITE_STATIC);
        if (ok) sqlite3_bind_null(s, 3);
        else sqlite3_bind_text(s, 3, why[0] ? why : "failed", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, r->run_id);
        if (sqlite3_step(s) != SQLITE_DONE) st2 = store_sql_error(ws, "recording the run's end");
    }
    char subject[64], detail[1100];
    snprintf(subject, sizeof subject, "run:%lld", (long long)r->run_id);
    runs_fmt(detail, sizeof detail, "%s%s%s", ok ? "finished" : "failed", ok ? "" : ": ", ok ? "" : why);
    if (st2 == KILN_OK) st2 = kiln_audit_append(ws, "run.end", subject, detail);
    if (st2 == KILN_OK) st2 = kiln_store_commit(ws);
    else kiln_store_rollback(ws);
    if (st == KILN_OK) st = st2;
    r->n = 0;
done:
    sqlite3_finalize(s);
    kiln_metrics_free(&tm);
    return st;
}

static void rec_on_end(void *user, enum kiln_status st, const char *error, const char *model_path,
                       const struct kiln_train_result *result)
{
    (void)result;
    struct kiln_run_recorder *r = user;
    /* The caller prints the training's error after this: keep it. */
    char saved[2048];
    snprintf(saved, sizeof saved, "%s", st == KILN_OK ? "" : error ? error : kiln_last_error());
    if (r->run_id) {
        enum kiln_status rst = rec_finish(r, st, saved, model_path);
        if (rst != KILN_OK)
            kiln_log(KILN_LOG_WARN, "run:%lld: could not record its end: %s", (long long)r->run_id,
                     kiln_last_error());
        if (r->steps_logged > 0)
            kiln_log(KILN_LOG_DEBUG, "run:%lld: logged %lld step losses, %.2f us per step",
                     (long long)r->run_id, (long long)r->steps_logged,
                     1e6 * r->step_seconds / (double)r->steps_logged);
    }
    if (st != KILN_OK) kiln_errorf(st, "%s", saved);
    else kiln_clear_error();
}

struct kiln_train_observer kiln_run_recorder_observer(struct kiln_run_recorder *r)
{
    return (struct kiln_train_observer){
        .on_start = rec_on_start,
        .on_step = rec_on_step,
        .on_epoch = rec_on_epoch,
        .on_end = rec_on_end,
        .user = r,
    };
}

/* --- one line about a run --------------------------------------------------------- */

enum kiln_status kiln_run_summary_line(struct kiln_store *ws, int64_t id, char *buf, size_t len)
{
    sqlite3_stmt *s;
    enum kiln_status st =
        store_prepare(ws, "SELECT status, started, ended, error FROM runs WHERE id = ?", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return kiln_errorf(KILN_ERR_NOT_FOUND, "run:%lld: no such run", (long long)id);
    }
    struct sbuf b = {0};
    const char *status = runs_col_text(s, 0);
    double t0 = runs_time_parse(runs_col_text(s, 1)), t1 = runs_time_parse(runs_col_text(s, 2));
    sbuf_add(&b, "run:%lld %s", (long long)id, status);
    if (t0 >= 0 && t1 >= 0) sbuf_add(&b, " in %.1fs", t1 - t0);
    bool failed = strcmp(status, "finished") != 0 && strcmp(status, "running") != 0;
    if (failed && sqlite3_column_type(s, 3) != SQLITE_NULL) sbuf_add(&b, ": %s", runs_col_text(s, 3));
    sqlite3_finalize(s);
    if (!failed) {
        static const char *const keys[] = {"val_loss", "val_accuracy", "val_mse", "val_r2",
                                           "test_loss", "test_accuracy", "test_mse", "test_r2"};
        st = store_prepare(ws, "SELECT value FROM run_summary WHERE run_id = ? AND key = ?", &s);
        if (st != KILN_OK) {
            sbuf_free(&b);
            return st;
        }
        const char *sep = ": ";
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            sqlite3_bind_int64(s, 1, id);
            sqlite3_bind_text(s, 2, keys[i], -1, SQLITE_STATIC);
            if (sqlite3_step(s) == SQLITE_ROW) {
                sbuf_add(&b, "%s%s %.4f", sep, keys[i], sqlite3_column_double(s, 0));
                sep = ", ";
            }
            sqlite3_reset(s);
        }
        sqlite3_finalize(s);
    }
    snprintf(buf, len, "%s", b.p ? b.p : "");
    sbuf_free(&b);
    return KILN_OK;
}
