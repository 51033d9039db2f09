/* engine/lifecycle/runs-mlflow.c: kiln runs export --mlflow DIR: runs in
 * MLflow's file-store layout, so that `mlflow ui --backend-store-uri DIR`
 * and MlflowClient("file:DIR") read them:
 *
 *   DIR/0/meta.yaml                       the Default experiment (when DIR is new)
 *   DIR/<exp>/meta.yaml                   the experiment "kiln"
 *   DIR/<exp>/<run_uuid>/meta.yaml        run info (times in ms, status as MLflow's enum)
 *   DIR/<exp>/<run_uuid>/params/<key>     the value, as text
 *   DIR/<exp>/<run_uuid>/metrics/<key>    one "timestamp_ms value step" line per value
 *   DIR/<exp>/<run_uuid>/tags/<key>       mlflow.runName, mlflow.user, kiln.* ...
 *   DIR/<exp>/<run_uuid>/artifacts/config.yaml
 */
#define _DEFAULT_SOURCE /* realpath, strcasecmp */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "runs-internal.h"

#define PATH_LEN 8192

/* MLflow's RunStatus enum as its meta.yaml stores it. */
enum { MLFLOW_RUNNING = 1, MLFLOW_FINISHED = 3, MLFLOW_FAILED = 4, MLFLOW_KILLED = 5 };

static enum kiln_status write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");
    if (!f) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    bool ok = fwrite(text, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    if (!ok) return kiln_errorf(KILN_ERR_IO, "%s: write failed (disk full?)", path);
    return KILN_OK;
}

/* A YAML single-quoted scalar (quotes doubled, line breaks made spaces). */
static void yaml_quoted(struct sbuf *b, const char *s)
{
    sbuf_add(b, "'");
    for (; *s; s++) {
        if (*s == '\'') sbuf_add(b, "''");
        else if (*s == '\n' || *s == '\r') sbuf_add(b, " ");
        else sbuf_add(b, "%c", *s);
    }
    sbuf_add(b, "'");
}

/* Removes the files of a run folder's subfolder, so that a second export
 * leaves no key the run no longer has. */
static void clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[PATH_LEN];
        runs_fmt(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode)) unlink(path);
    }
    if (d) closedir(d);
}

/* The experiment named "kiln" in dir, or a new one: its id into id. */
static enum kiln_status experiment_find(const char *dir, char *id, size_t len, bool *found)
{
    *found = false;
    DIR *d = opendir(dir);
    if (!d) return kiln_errorf(KILN_ERR_IO, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    long next = 1;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *end;
        long n = strtol(e->d_name, &end, 10);
        if (!*end && n >= next) next = n + 1;
        char path[PATH_LEN], line[512];
        runs_fmt(path, sizeof path, "%s/%s/meta.yaml", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f))
            if (!strcmp(line, "name: kiln\n") || !strcmp(line, "name: 'kiln'\n")) {
                runs_fmt(id, len, "%s", e->d_name);
                *found = true;
            }
        fclose(f);
        if (*found) break;
    }
    closedir(d);
    if (!*found) runs_fmt(id, len, "%ld", next);
    return KILN_OK;
}

static enum kiln_status experiment_write(const char *dir, const char *id, const char *name,
                                         const char *abs_dir)
{
    char path[PATH_LEN];
    runs_fmt(path, sizeof path, "%s/%s", dir, id);
    enum kiln_status st = fs_make_dirs(path);
    if (st != KILN_OK) return st;
    long long now = (long long)time(NULL) * 1000;
    struct sbuf b = {0};
    sbuf_add(&b, "artifact_location: ");
    char loc[PATH_LEN];
    runs_fmt(loc, sizeof loc, "file://%s/%s", abs_dir, id);
    yaml_quoted(&b, loc);
    sbuf_add(&b, "\ncreation_time: %lld\nexperiment_id: ", now);
    yaml_quoted(&b, id);
    sbuf_add(&b, "\nlast_update_time: %lld\nlifecycle_stage: active\nname: ", now);
    yaml_quoted(&b, name);
    sbuf_add(&b, "\n");
    runs_fmt(path, sizeof path, "%s/%s/meta.yaml", dir, id);
    st = b.failed ? kiln_errorf(KILN_ERR_NOMEM, "out of memory") : write_file(path, b.p, b.len);
    sbuf_free(&b);
    return st;
}

/* MLflow names may not hold brackets: model.layers[2].units becomes
 * model.layers.2.units. */
static void mlflow_key(const char *key, char *buf, size_t len)
{
    size_t o = 0;
    for (; *key && o + 1 < len; key++) {
        if (*key == ']') continue;
        buf[o++] = *key == '[' ? '.' : *key;
    }
    buf[o] = '\0';
}

static const char RUN_SQL[] =
    "SELECT r.status, r.started, r.ended, r.user, r.host, r.device, r.git_commit, "
    "r.engine_version, r.error, r.sweep_id, r.resumed_from, r.config, d.name || '@v' || v.version, "
    "(SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'data'), "
    "(SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = 'data.sha256') "
    "FROM runs r LEFT JOIN dataset_versions v ON v.id = r.dataset_version_id "
    "LEFT JOIN datasets d ON d.id = v.dataset_id WHERE r.id = ?";

static enum kiln_status export_run(struct kiln_store *ws, int64_t id, const char *dir,
                                   const char *exp, const char *abs_dir)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, RUN_SQL, &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return kiln_errorf(KILN_ERR_NOT_FOUND, "run:%lld: no such run", (long long)id);
    }
    const char *status = runs_col_text(s, 0);
    int mstatus = !strcmp(status, "finished") ? MLFLOW_FINISHED
                  : !strcmp(status, "failed") ? MLFLOW_FAILED
                  : !strcmp(status, "running") ? MLFLOW_RUNNING
                                               : MLFLOW_KILLED;
    double t0 = runs_time_parse(runs_col_text(s, 1));
    double t1 = sqlite3_column_type(s, 2) == SQLITE_NULL ? -1 : runs_time_parse(runs_col_text(s, 2));
    /* The reaper stamps an interrupted run to the second: never before its start. */
    if (t1 >= 0 && t1 < t0) t1 = t0;
    /* A stable id per run: exporting again rewrites the same folder. */
    char uuid[65], seed[256];
    snprintf(seed, sizeof seed, "kiln run %lld started %s", (long long)id, runs_col_text(s, 1));
    struct sha256_ctx *c;
    st = sha256_begin(&c);
    if (st != KILN_OK) {
        sqlite3_finalize(s);
        return st;
    }
    sha256_update(c, seed, strlen(seed));
    sha256_end(c, uuid);
    uuid[32] = '\0';
    char run_dir[PATH_LEN], path[PATH_LEN], name[64];
    snprintf(run_dir, sizeof run_dir, "%s/%s/%s", dir, exp, uuid);
    snprintf(name, sizeof name, "run:%lld", (long long)id);
    static const char *const subdirs[] = {"", "/metrics", "/params", "/tags", "/artifacts"};
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0] && st == KILN_OK; i++) {
        runs_fmt(path, sizeof path, "%s%s", run_dir, subdirs[i]);
        st = fs_make_dirs(path);
        if (st == KILN_OK && i > 0 && i < 4) clear_dir(path);
    }
    struct sbuf b = {0};
    if (st == KILN_OK) {
        char uri[PATH_LEN];
        runs_fmt(uri, sizeof uri, "file://%s/%s/%s/artifacts", abs_dir, exp, uuid);
        sbuf_add(&b, "artifact_uri: ");
        yaml_quoted(&b, uri);
        sbuf_add(&b, "\ndeleted_time: null\nend_time: ");
        if (t1 >= 0) sbuf_add(&b, "%lld", (long long)(t1 * 1000.0 + 0.5));
        else sbuf_add(&b, "null");
        sbuf_add(&b, "\nentry_point_name: ''\nexperiment_id: ");
        yaml_quoted(&b, exp);
        sbuf_add(&b, "\nlifecycle_stage: active\nrun_id: '%s'\nrun_name: ", uuid);
        yaml_quoted(&b, name);
        sbuf_add(&b, "\nrun_uuid: '%s'\nsource_name: ''\nsource_type: 4\nsource_version: ", uuid);
        yaml_quoted(&b, runs_col_text(s, 6));
        sbuf_add(&b, "\nstart_time: %lld\nstatus: %d\ntags: []\nuser_id: ",
                 (long long)(t0 >= 0 ? t0 * 1000.0 + 0.5 : 0), mstatus);
        yaml_quoted(&b, runs_col_text(s, 3));
        sbuf_add(&b, "\n");
        runs_fmt(path, sizeof path, "%s/meta.yaml", run_dir);
        st = b.failed ? kiln_errorf(KILN_ERR_NOMEM, "out of memory") : write_file(path, b.p, b.len);
    }
    /* Tags: MLflow's own, then kiln's record of the run. */
    char idtext[32], sweep[32] = "", resumed[32] = "";
    snprintf(idtext, sizeof idtext, "%lld", (long long)id);
    if (sqlite3_column_type(s, 9) != SQLITE_NULL)
        snprintf(sweep, sizeof sweep, "%lld", (long long)sqlite3_column_int64(s, 9));
    if (sqlite3_column_type(s, 10) != SQLITE_NULL)
        snprintf(resumed, sizeof resumed, "run:%lld", (long long)sqlite3_column_int64(s, 10));
    const char *dataset = sqlite3_column_type(s, 12) != SQLITE_NULL ? runs_col_text(s, 12)
                                                                      : runs_col_text(s, 13);
    const char *tags[][2] = {
        {"mlflow.runName", name},
        {"mlflow.user", runs_col_text(s, 3)},
        {"mlflow.source.name", "kiln train"},
        {"mlflow.source.type", "LOCAL"},
        {"mlflow.source.git.commit", runs_col_text(s, 6)},
        {"kiln.run_id", idtext},
        {"kiln.status", status},
        {"kiln.host", runs_col_text(s, 4)},
        {"kiln.device", runs_col_text(s, 5)},
        {"kiln.engine_version", runs_col_text(s, 7)},
        {"kiln.dataset", dataset},
        {"kiln.dataset.sha256", runs_col_text(s, 14)},
        {"kiln.error", runs_col_text(s, 8)},
        {"kiln.sweep_id", sweep},
        {"kiln.resumed_from", resumed},
    };
    for (size_t i = 0; i < sizeof tags / sizeof tags[0] && st == KILN_OK; i++) {
        if (!tags[i][1][0]) continue;
        runs_fmt(path, sizeof path, "%s/tags/%s", run_dir, tags[i][0]);
        st = write_file(path, tags[i][1], strlen(tags[i][1]));
    }
    if (st == KILN_OK) {
        const char *cfg = runs_col_text(s, 11);
        runs_fmt(path, sizeof path, "%s/artifacts/config.yaml", run_dir);
        st = write_file(path, cfg, strlen(cfg));
    }
    sqlite3_finalize(s);
    s = NULL;
    /* Params. */
    if (st == KILN_OK) st = store_prepare(ws, "SELECT key, value FROM run_params WHERE run_id = ?", &s);
    if (st == KILN_OK) {
        sqlite3_bind_int64(s, 1, id);
        while (st == KILN_OK && sqlite3_step(s) == SQLITE_ROW) {
            char key[256];
            mlflow_key(runs_col_text(s, 0), key, sizeof key);
            const char *v = runs_col_text(s, 1);
            runs_fmt(path, sizeof path, "%s/params/%s", run_dir, key);
            st = write_file(path, v, strlen(v));
        }
        sqlite3_finalize(s);
        s = NULL;
    }
    /* Metrics: each key's history in step order, one file per key. */
    if (st == KILN_OK)
        st = store_prepare(ws,
                           "SELECT key, step, value, time FROM run_metrics WHERE run_id = ? "
                           "ORDER BY key, step",
                           &s);
    if (st == KILN_OK) {
        sqlite3_bind_int64(s, 1, id);
        char key[128] = "";
        b.len = 0;
        int rc;
        while (st == KILN_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            const char *k = runs_col_text(s, 0);
            if (strcmp(k, key) != 0) {
                if (key[0]) {
                    runs_fmt(path, sizeof path, "%s/metrics/%s", run_dir, key);
                    st = b.failed ? kiln_errorf(KILN_ERR_NOMEM, "out of memory")
                                  : write_file(path, b.p ? b.p : "", b.len);
                }
                snprintf(key, sizeof key, "%s", k);
                b.len = 0;
            }
            sbuf_add(&b, "%lld %.17g %lld\n", (long long)(sqlite3_column_double(s, 3) * 1000.0 + 0.5),
                     sqlite3_column_double(s, 2), (long long)sqlite3_column_int64(s, 1));
        }
        if (st == KILN_OK && key[0]) {
            runs_fmt(path, sizeof path, "%s/metrics/%s", run_dir, key);
            st = b.failed ? kiln_errorf(KILN_ERR_NOMEM, "out of memory") : write_file(path, b.p, b.len);
        }
        sqlite3_finalize(s);
    }
    sbuf_free(&b);
    return st;
}

enum kiln_status kiln_runs_export_mlflow(struct kiln_store *ws, const char *dir,
                                         const int64_t *ids, int n, int64_t *exported)
{
    *exported = 0;
    struct stat sb;
    bool fresh = stat(dir, &sb) != 0;
    if (!fresh && !S_ISDIR(sb.st_mode)) return kiln_errorf(KILN_ERR_IO, "%s: not a folder", dir);
    enum kiln_status st = fs_make_dirs(dir);
    if (st != KILN_OK) return st;
    char abs_dir[4096];
    if (!realpath(dir, abs_dir)) return kiln_errorf(KILN_ERR_IO, "%s: %s", dir, strerror(errno));
    char path[PATH_LEN];
    runs_fmt(path, sizeof path, "%s/0", abs_dir);
    if (stat(path, &sb) != 0) {
        st = experiment_write(abs_dir, "0", "Default", abs_dir);
        if (st != KILN_OK) return st;
    }
    runs_fmt(path, sizeof path, "%s/.trash", abs_dir);
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    char exp[64];
    bool found;
    st = experiment_find(abs_dir, exp, sizeof exp, &found);
    if (st == KILN_OK && !found) st = experiment_write(abs_dir, exp, "kiln", abs_dir);
    if (st != KILN_OK) return st;
    if (n > 0) {
        for (int i = 0; i < n && st == KILN_OK; i++) {
            st = export_run(ws, ids[i], abs_dir, exp, abs_dir);
            if (st == KILN_OK) (*exported)++;
        }
        return st;
    }
    sqlite3_stmt *s;
    st = store_prepare(ws, "SELECT id FROM runs ORDER BY id", &s);
    if (st != KILN_OK) return st;
    int64_t *all = NULL;
    size_t count = 0, cap = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            int64_t *a = realloc(all, cap * sizeof *a);
            if (!a) {
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
                break;
            }
            all = a;
        }
        all[count++] = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    for (size_t i = 0; i < count && st == KILN_OK; i++) {
        st = export_run(ws, all[i], abs_dir, exp, abs_dir);
        if (st == KILN_OK) (*exported)++;
    }
    free(all);
    return st;
}
