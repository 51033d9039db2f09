/* engine/lifecycle/store.c: finding, creating and opening a workspace, its
 * SQLite schema and forward-only migrations, transactions. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "store-internal.h"

/* Schema version 1. Every table is documented in docs/FORMATS.md
 * ("Workspace"); a change to it is a new migration, never an edit. */
static const char SCHEMA_V1[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
    "CREATE TABLE objects(sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, kind TEXT NOT NULL,\n"
    "  created TEXT NOT NULL);\n"
    "CREATE TABLE datasets(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created TEXT NOT NULL);\n"
    "CREATE TABLE dataset_versions(id INTEGER PRIMARY KEY,\n"
    "  dataset_id INTEGER NOT NULL REFERENCES datasets(id), version INTEGER NOT NULL,\n"
    "  content_sha256 TEXT NOT NULL, object_sha256 TEXT NOT NULL REFERENCES objects(sha256),\n"
    "  parent_id INTEGER REFERENCES dataset_versions(id), source TEXT NOT NULL DEFAULT '',\n"
    "  transforms TEXT, privacy TEXT, stats TEXT, rows_train INTEGER, rows_val INTEGER,\n"
    "  rows_test INTEGER, n_features INTEGER, n_classes INTEGER, created TEXT NOT NULL,\n"
    "  created_by TEXT NOT NULL, UNIQUE(dataset_id, version), UNIQUE(dataset_id, content_sha256));\n"
    "CREATE TABLE sweeps(id INTEGER PRIMARY KEY, spec TEXT NOT NULL, metric TEXT NOT NULL,\n"
    "  mode TEXT NOT NULL, status TEXT NOT NULL, created TEXT NOT NULL);\n"
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, status TEXT NOT NULL\n"
    "    CHECK(status IN ('running','finished','failed','interrupted')),\n"
    "  config TEXT NOT NULL, dataset_version_id INTEGER REFERENCES dataset_versions(id),\n"
    "  engine_version TEXT NOT NULL, git_commit TEXT NOT NULL, host TEXT NOT NULL,\n"
    "  user TEXT NOT NULL, pid INTEGER, device TEXT, threads INTEGER, started TEXT NOT NULL,\n"
    "  ended TEXT, error TEXT, sweep_id INTEGER REFERENCES sweeps(id),\n"
    "  resumed_from INTEGER REFERENCES runs(id), out_dir TEXT);\n"
    "CREATE TABLE run_params(run_id INTEGER NOT NULL REFERENCES runs(id), key TEXT NOT NULL,\n"
    "  value TEXT NOT NULL, PRIMARY KEY(run_id, key)) WITHOUT ROWID;\n"
    /* Every logged value: per-epoch metrics (step = the global step at the
     * epoch's end) and per-step loss (key 'step_loss'). */
    "CREATE TABLE run_metrics(run_id INTEGER NOT NULL REFERENCES runs(id), key TEXT NOT NULL,\n"
    "  step INTEGER NOT NULL, epoch INTEGER, value REAL NOT NULL, time REAL NOT NULL,\n"
    "  PRIMARY KEY(run_id, key, step)) WITHOUT ROWID;\n"
    /* The latest value of each metric, so listing runs reads one row per
     * metric instead of scanning their history. */
    "CREATE TABLE run_summary(run_id INTEGER NOT NULL REFERENCES runs(id), key TEXT NOT NULL,\n"
    "  value REAL NOT NULL, PRIMARY KEY(run_id, key)) WITHOUT ROWID;\n"
    "CREATE TABLE checkpoints(id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id),\n"
    "  epoch INTEGER NOT NULL, step INTEGER NOT NULL, final INTEGER NOT NULL DEFAULT 0,\n"
    "  object_sha256 TEXT NOT NULL REFERENCES objects(sha256), created TEXT NOT NULL);\n"
    "CREATE INDEX checkpoints_run ON checkpoints(run_id);\n"
    /* runs list: each metric or param column is read as one range of its
     * key (covering: the value and, implicitly, run_id), and the reaper's
     * status = 'running' and the default columns come from runs_status
     * without reading the runs' configs. */
    "CREATE INDEX runs_status ON runs(status, started, ended, dataset_version_id, sweep_id);\n"
    "CREATE INDEX run_params_key ON run_params(key, value);\n"
    "CREATE INDEX run_summary_key ON run_summary(key, value);\n"
    "CREATE TABLE models(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,\n"
    "  created TEXT NOT NULL);\n"
    "CREATE TABLE model_versions(id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL\n"
    "    REFERENCES models(id), version INTEGER NOT NULL, run_id INTEGER REFERENCES runs(id),\n"
    "  checkpoint_id INTEGER REFERENCES checkpoints(id),\n"
    "  object_sha256 TEXT NOT NULL REFERENCES objects(sha256), description TEXT NOT NULL DEFAULT '',\n"
    "  archived INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL, created_by TEXT NOT NULL,\n"
    "  UNIQUE(model_id, version));\n"
    /* Version numbers are never reused, even after an archive: the next
     * number comes from here, inside the registering transaction. */
    "CREATE TABLE model_counters(model_id INTEGER PRIMARY KEY REFERENCES models(id),\n"
    "  last_version INTEGER NOT NULL);\n"
    "CREATE TABLE model_tags(version_id INTEGER NOT NULL REFERENCES model_versions(id),\n"
    "  key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(version_id, key)) WITHOUT ROWID;\n"
    "CREATE TABLE aliases(model_id INTEGER NOT NULL REFERENCES models(id), alias TEXT NOT NULL,\n"
    "  version_id INTEGER NOT NULL REFERENCES model_versions(id), PRIMARY KEY(model_id, alias))\n"
    "  WITHOUT ROWID;\n"
    "CREATE TABLE alias_history(id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL, alias TEXT NOT NULL,\n"
    "  from_version INTEGER, to_version INTEGER NOT NULL, user TEXT NOT NULL, time TEXT NOT NULL);\n"
    "CREATE TABLE packages(id INTEGER PRIMARY KEY, version_id INTEGER NOT NULL\n"
    "    REFERENCES model_versions(id), object_sha256 TEXT NOT NULL REFERENCES objects(sha256),\n"
    "  signed INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL);\n"
    "CREATE TABLE audit(id INTEGER PRIMARY KEY, time TEXT NOT NULL, user TEXT NOT NULL,\n"
    "  host TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL,\n"
    "  prev_sha256 TEXT NOT NULL, sha256 TEXT NOT NULL);\n";

/* Version 2: scoring jobs (kiln score inside a workspace). */
static const char SCHEMA_V2[] =
    "CREATE TABLE score_jobs(id INTEGER PRIMARY KEY, status TEXT NOT NULL\n"
    "    CHECK(status IN ('running','finished','failed','interrupted')),\n"
    "  model TEXT NOT NULL, model_version_id INTEGER REFERENCES model_versions(id),\n"
    "  model_sha256 TEXT, package_sha256 TEXT, input TEXT NOT NULL, input_path TEXT NOT NULL,\n"
    "  input_array TEXT, split TEXT, input_version_id INTEGER REFERENCES dataset_versions(id),\n"
    "  output TEXT NOT NULL, output_sha256 TEXT, rows INTEGER,\n"
    "  resumed_from INTEGER NOT NULL DEFAULT 0, device TEXT NOT NULL, threads INTEGER,\n"
    "  batch INTEGER, seconds REAL, read_seconds REAL, compute_seconds REAL,\n"
    "  write_seconds REAL, registered_version_id INTEGER REFERENCES dataset_versions(id),\n"
    "  host TEXT NOT NULL, user TEXT NOT NULL, pid INTEGER NOT NULL, started TEXT NOT NULL,\n"
    "  ended TEXT, error TEXT);\n"
    "CREATE INDEX score_jobs_status ON score_jobs(status);\n";

/* Migrations: MIGRATIONS[i] takes a database from version i to i + 1. */
static const char *const MIGRATIONS[] = {SCHEMA_V1, SCHEMA_V2};
#define N_MIGRATIONS ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))
_Static_assert(N_MIGRATIONS == KILN_STORE_SCHEMA_VERSION, "one migration per schema version");

enum kiln_status store_sql_error(struct kiln_store *ws, const char *what)
{
    int code = sqlite3_extended_errcode(ws->db);
    enum kiln_status st = KILN_ERR_IO;
    if ((code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB) st = KILN_ERR_INTEGRITY;
    if ((code & 0xff) == SQLITE_NOMEM) st = KILN_ERR_NOMEM;
    return kiln_errorf(st, "workspace %s/kiln.db: %s: %s", ws->dir, what, sqlite3_errmsg(ws->db));
}

enum kiln_status store_exec(struct kiln_store *ws, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(ws->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        enum kiln_status st = store_sql_error(ws, err ? err : "exec");
        sqlite3_free(err);
        return st;
    }
    return KILN_OK;
}

enum kiln_status store_prepare(struct kiln_store *ws, const char *sql, sqlite3_stmt **out)
{
    if (sqlite3_prepare_v2(ws->db, sql, -1, out, NULL) != SQLITE_OK) return store_sql_error(ws, sql);
    return KILN_OK;
}

const char *kiln_store_root(const struct kiln_store *ws) { return ws->root; }
struct sqlite3 *kiln_store_db(struct kiln_store *ws) { return ws->db; }

enum kiln_status kiln_store_begin(struct kiln_store *ws)
{
    if (ws->txn_depth++ > 0) return KILN_OK;
    enum kiln_status st = store_exec(ws, "BEGIN IMMEDIATE");
    if (st != KILN_OK) ws->txn_depth = 0;
    return st;
}

enum kiln_status kiln_store_commit(struct kiln_store *ws)
{
    if (ws->txn_depth == 0) return kiln_errorf(KILN_ERR_INTERNAL, "commit without begin");
    if (--ws->txn_depth > 0) return KILN_OK;
    enum kiln_status st = store_exec(ws, "COMMIT");
    /* A failed COMMIT leaves the transaction open: end it, so the
     * connection is usable and the caller's changes are not half-kept. */
    if (st != KILN_OK) sqlite3_exec(ws->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

void kiln_store_rollback(struct kiln_store *ws)
{
    if (ws->txn_depth == 0) return;
    ws->txn_depth = 0;
    sqlite3_exec(ws->db, "ROLLBACK", NULL, NULL, NULL);
}

const char *kiln_store_user(void)
{
    static char user[128];
    if (!user[0]) {
        const char *u = getenv("KILN_USER");
        struct passwd *pw = u ? NULL : getpwuid(getuid());
        snprintf(user, sizeof user, "%s", u ? u : pw ? pw->pw_name : "unknown");
    }
    return user;
}

const char *kiln_store_host(void)
{
    static char host[HOST_NAME_MAX + 1];
    if (!host[0] && gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
    return host;
}

static enum kiln_status schema_version(struct kiln_store *ws, int64_t *out)
{
    *out = 0;
    sqlite3_stmt *s;
    /* A database without the meta table is version 0 (empty). */
    if (sqlite3_prepare_v2(ws->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &s,
                           NULL) != SQLITE_OK)
        return KILN_OK;
    if (sqlite3_step(s) == SQLITE_ROW) *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return KILN_OK;
}

/* Brings the schema forward to KILN_STORE_SCHEMA_VERSION; refuses a newer one. */
static enum kiln_status store_migrate(struct kiln_store *ws)
{
    enum kiln_status st = kiln_store_begin(ws);
    if (st != KILN_OK) return st;
    int64_t v;
    schema_version(ws, &v);
    if (v > KILN_STORE_SCHEMA_VERSION) {
        kiln_store_rollback(ws);
        return kiln_errorf(KILN_ERR_UNSUPPORTED,
                           "workspace %s was written by a newer kiln (schema version %lld, this "
                           "kiln reads up to %d): upgrade kiln",
                           ws->root, (long long)v, KILN_STORE_SCHEMA_VERSION);
    }
    for (int64_t i = v; i < KILN_STORE_SCHEMA_VERSION && st == KILN_OK; i++) {
        st = store_exec(ws, MIGRATIONS[i]);
        if (st == KILN_OK) {
            char sql[128];
            snprintf(sql, sizeof sql,
                     "INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '%lld')",
                     (long long)(i + 1));
            st = store_exec(ws, sql);
        }
    }
    if (st == KILN_OK) st = kiln_store_commit(ws);
    else kiln_store_rollback(ws);
    return st;
}

/* Opens .kiln/kiln.db in dir (root of a workspace) and sets it up. */
static enum kiln_status store_open_at(const char *root, bool create, struct kiln_store **out)
{
    *out = NULL;
    struct kiln_store *ws = calloc(1, sizeof *ws);
    if (!ws) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    snprintf(ws->root, sizeof ws->root, "%s", root);
    snprintf(ws->dir, sizeof ws->dir, "%s/%s", root, KILN_STORE_DIR);
    char path[4400];
    snprintf(path, sizeof path, "%s/kiln.db", ws->dir);
    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_FULLMUTEX;
    enum kiln_status st = KILN_OK;
    if (sqlite3_open_v2(path, &ws->db, flags, NULL) != SQLITE_OK) {
        st = kiln_errorf(KILN_ERR_IO, "cannot open %s: %s", path,
                         ws->db ? sqlite3_errmsg(ws->db) : "out of memory");
        goto cleanup;
    }
    /* Concurrent commands wait for each other's writes instead of failing. */
    sqlite3_busy_timeout(ws->db, 30000);
    st = store_exec(ws, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                        "PRAGMA foreign_keys=ON;");
    if (st == KILN_OK) st = store_migrate(ws);
cleanup:
    if (st != KILN_OK) {
        kiln_store_close(ws);
        return st;
    }
    *out = ws;
    return KILN_OK;
}

void kiln_store_close(struct kiln_store *ws)
{
    if (!ws) return;
    if (ws->txn_depth) kiln_store_rollback(ws);
    sqlite3_close(ws->db);
    free(ws);
}

static bool has_store(const char *root)
{
    char path[4400];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s/kiln.db", root, KILN_STORE_DIR);
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

enum kiln_status kiln_store_init(const char *dir, char *root_out, size_t len)
{
    char root[4096];
    if (!realpath(dir ? dir : ".", root))
        return kiln_errorf(KILN_ERR_IO, "%s: %s", dir ? dir : ".", strerror(errno));
    if (has_store(root))
        return kiln_errorf(KILN_ERR_USAGE, "%s already holds a kiln workspace", root);
    char path[4400];
    const char *subdirs[] = {"", "/objects", "/tmp", "/locks", "/runs"};
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s%s", root, KILN_STORE_DIR, subdirs[i]);
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return kiln_errorf(KILN_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    }
    struct kiln_store *ws;
    enum kiln_status st = store_open_at(root, true, &ws);
    if (st != KILN_OK) return st;
    st = kiln_audit_append(ws, "init", root, "");
    kiln_store_close(ws);
    if (root_out) snprintf(root_out, len, "%s", root);
    return st;
}

static enum kiln_status store_find(const char *dir, char *root, bool *found)
{
    *found = false;
    char cur[4096];
    if (!realpath(dir ? dir : ".", cur))
        return kiln_errorf(KILN_ERR_IO, "%s: %s", dir ? dir : ".", strerror(errno));
    if (dir) {
        /* An explicit --workspace names the workspace itself. */
        *found = has_store(cur);
        snprintf(root, 4096, "%s", cur);
        return KILN_OK;
    }
    for (;;) {
        if (has_store(cur)) {
            *found = true;
            snprintf(root, 4096, "%s", cur);
            return KILN_OK;
        }
        char *slash = strrchr(cur, '/');
        if (!slash || slash == cur) {
            if (slash && cur[1] != '\0') {
                cur[1] = '\0';
                continue;
            }
            return KILN_OK;
        }
        *slash = '\0';
    }
}

enum kiln_status kiln_store_open_optional(const char *dir, struct kiln_store **out)
{
    *out = NULL;
    char root[4096];
    bool found;
    enum kiln_status st = store_find(dir, root, &found);
    if (st != KILN_OK || !found) return st;
    st = store_open_at(root, false, out);
    if (st == KILN_OK) st = store_reap_dead(*out);
    if (st != KILN_OK) {
        kiln_store_close(*out);
        *out = NULL;
    }
    return st;
}

enum kiln_status kiln_store_open(const char *dir, struct kiln_store **out)
{
    enum kiln_status st = kiln_store_open_optional(dir, out);
    if (st == KILN_OK && !*out)
        return kiln_errorf(KILN_ERR_NOT_FOUND,
                           dir ? "%s is not a kiln workspace (run `kiln init` there first)"
                               : "not inside a kiln workspace (%s or any folder above it); "
                                 "run `kiln init` to make one",
                           dir ? dir : ".");
    return st;
}

/* --- runs and scoring jobs whose process died ---------------------------------------- */

void store_lock_path(const struct kiln_store *ws, const char *kind, int64_t id, char *buf,
                     size_t len)
{
    snprintf(buf, len, "%s/locks/%s-%lld.lock", ws->dir, kind, (long long)id);
}

void store_run_lock_path(const struct kiln_store *ws, int64_t run_id, char *buf, size_t len)
{
    store_lock_path(ws, "run", run_id, buf, len);
}

/* A running process holds an exclusive flock on its job's lock file for its
 * whole life; the kernel drops it when the process dies, however it dies.
 * So a lock we can take belongs to a dead job. */
static bool job_is_alive(const struct kiln_store *ws, const char *kind, int64_t id)
{
    char path[4400];
    store_lock_path(ws, kind, id, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool alive = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return alive;
}

/* Marks the rows of table still 'running' whose process is gone as
 * interrupted (error: why), each with its audit entry KIND.interrupted on
 * subject KIND:ID. With drop_lock, the dead job's lock file goes too (for
 * jobs whose id never runs again; a run can be resumed under its id). */
static enum kiln_status reap_dead(struct kiln_store *ws, const char *table, const char *kind,
                                  const char *why, bool drop_lock)
{
    sqlite3_stmt *s;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id FROM %s WHERE status = 'running'", table);
    enum kiln_status st = store_prepare(ws, sql, &s);
    if (st != KILN_OK) return st;
    int64_t dead[64];
    int n = 0;
    while (sqlite3_step(s) == SQLITE_ROW && n < 64) {
        int64_t id = sqlite3_column_int64(s, 0);
        if (!job_is_alive(ws, kind, id)) dead[n++] = id;
    }
    sqlite3_finalize(s);
    snprintf(sql, sizeof sql, "UPDATE %s SET status = 'interrupted', ended = ?, error = ? "
             "WHERE id = ? AND status = 'running'", table);
    for (int i = 0; i < n && st == KILN_OK; i++) {
        char ts[32], subject[64], action[64], path[4400];
        bool reaped = false;
        time_iso8601(ts);
        st = kiln_store_begin(ws);
        if (st != KILN_OK) break;
        st = store_prepare(ws, sql, &s);
        if (st == KILN_OK) {
            sqlite3_bind_text(s, 1, ts, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 2, why, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 3, dead[i]);
            if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(ws, "marking a dead job");
            sqlite3_finalize(s);
        }
        if (st == KILN_OK && sqlite3_changes(ws->db) > 0) {
            reaped = true;
            snprintf(subject, sizeof subject, "%s:%lld", kind, (long long)dead[i]);
            snprintf(action, sizeof action, "%s.interrupted", kind);
            st = kiln_audit_append(ws, action, subject, why);
        }
        if (st == KILN_OK) st = kiln_store_commit(ws);
        else kiln_store_rollback(ws);
        if (st == KILN_OK && reaped && drop_lock) {
            store_lock_path(ws, kind, dead[i], path, sizeof path);
            unlink(path);
        }
    }
    return st;
}

enum kiln_status store_reap_dead(struct kiln_store *ws)
{
    enum kiln_status st = reap_dead(ws, "runs", "run", "the training process died", false);
    if (st == KILN_OK)
        st = reap_dead(ws, "score_jobs", "score", "the scoring process died", true);
    return st;
}
