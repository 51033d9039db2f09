/* engine/lifecycle/registry.c: the model registry (register, aliases, tags,
 * archive, list, show), lineage and model cards. Tables: models,
 * model_versions, model_counters, model_tags, aliases, alias_history
 * (docs/FORMATS.md, "Registry"). Every statement binds its parameters; no
 * user text is ever pasted into SQL. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core/util.h"
#include "kiln/backend.h"
#include "kiln/config.h"
#include "kiln/lifecycle.h"
#include "kiln/log.h"
#include "kiln/registry.h"
#include "kiln/stats.h"
#include "store-internal.h"

#define MAX_DESCRIPTION 4096
#define MAX_TAG_KEY 128
#define MAX_TAG_VALUE 1024
#define MAX_ALIAS 64
#define MAX_LINEAGE_DEPTH 64

/* --- small helpers --------------------------------------------------------------- */

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

static bool col_null(sqlite3_stmt *s, int i) { return sqlite3_column_type(s, i) == SQLITE_NULL; }

static bool all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

/* A JSON string from any bytes: text that is not UTF-8 (a hand-edited
 * database) has its non-ASCII bytes replaced by '?' rather than failing. */
static json_t *jstr(const char *s)
{
    if (!s) return json_null();
    json_t *j = json_string(s);
    if (j) return j;
    char *copy = strdup(s);
    if (!copy) return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

/* Getters that never fail on a missing key (the text printers below read
 * the JSON they built; a key can only be missing when memory ran out). */
static const char *jget_str(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

static long long jget_int(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void jset(json_t *o, const char *key, json_t *v) { json_object_set_new(o, key, v); }

static enum kiln_status json_emit(json_t *root, FILE *out)
{
    if (!root) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    if (json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
        return kiln_errorf(KILN_ERR_IO, "writing JSON: %s", strerror(errno));
    fputc('\n', out);
    return KILN_OK;
}

static void sha256_text(const char *text, char out[65])
{
    struct sha256_ctx *c;
    if (sha256_begin(&c) != KILN_OK) {
        snprintf(out, 65, "%s", "");
        return;
    }
    sha256_update(c, text, strlen(text));
    sha256_end(c, out);
}

/* Runs a prepared statement that returns no rows and finalizes it. */
static enum kiln_status step_done(struct kiln_store *ws, sqlite3_stmt *s, const char *what)
{
    enum kiln_status st = KILN_OK;
    if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(ws, what);
    sqlite3_finalize(s);
    return st;
}

/* --- names and references ------------------------------------------------------------ */

static bool name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.'; }

/* Model names and aliases: what a reference can hold without ambiguity. */
static enum kiln_status check_name(const char *what, const char *s, size_t max, bool letter_first)
{
    if (!s || !*s) return kiln_errorf(KILN_ERR_USAGE, "an empty %s", what);
    size_t n = strlen(s);
    if (n > max) return kiln_errorf(KILN_ERR_USAGE, "%s '%.40s...' is longer than %zu characters", what, s, max);
    bool first_ok = letter_first ? isalpha((unsigned char)s[0]) : isalnum((unsigned char)s[0]);
    if (!first_ok)
        return kiln_errorf(KILN_ERR_USAGE, "%s '%s' must start with a letter%s", what, s,
                           letter_first ? "" : " or a digit");
    for (size_t i = 0; i < n; i++)
        if (!name_char(s[i]))
            return kiln_errorf(KILN_ERR_USAGE,
                               "%s '%s': only letters, digits, '_', '-' and '.' are allowed", what,
                               s);
    const char *dot = strrchr(s, '.');
    if (dot && (!strcmp(dot, ".h5") || !strcmp(dot, ".hdf5") || !strcmp(dot, ".csv") ||
                !strcmp(dot, ".kiln")))
        return kiln_errorf(KILN_ERR_USAGE, "%s '%s' would read as a file name", what, s);
    return KILN_OK;
}

/* Free text (descriptions, tag values): no control characters but newline
 * and tab, valid UTF-8 (so that --json output stays valid). */
static enum kiln_status check_text(const char *what, const char *s, size_t max)
{
    if (strlen(s) > max) return kiln_errorf(KILN_ERR_USAGE, "%s is longer than %zu bytes", what, max);
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t')
            return kiln_errorf(KILN_ERR_USAGE, "%s holds a control character", what);
    json_t *j = json_string(s);
    if (!j) return kiln_errorf(KILN_ERR_USAGE, "%s is not valid UTF-8", what);
    json_decref(j);
    return KILN_OK;
}

/* Splits NAME[@SELECTOR]; *sel is NULL without '@'. */
static enum kiln_status split_ref(const char *ref, char name[256], const char **sel)
{
    *sel = NULL;
    if (!ref || !*ref) return kiln_errorf(KILN_ERR_USAGE, "an empty model reference");
    if (!strncmp(ref, "run:", 4) || strchr(ref, '/'))
        return kiln_errorf(KILN_ERR_USAGE,
                           "%.200s: expected a model reference: NAME, NAME@VERSION or NAME@ALIAS", ref);
    const char *at = strchr(ref, '@');
    size_t n = at ? (size_t)(at - ref) : strlen(ref);
    if (n == 0 || n >= 256)
        return kiln_errorf(KILN_ERR_USAGE, "%.200s: expected NAME, NAME@VERSION or NAME@ALIAS",
                           ref);
    memcpy(name, ref, n);
    name[n] = '\0';
    if (at) {
        *sel = at + 1;
        if (!**sel || strchr(*sel, '@'))
            return kiln_errorf(KILN_ERR_USAGE, "%.200s: expected NAME, NAME@VERSION or NAME@ALIAS",
                               ref);
    }
    return KILN_OK;
}

static enum kiln_status model_id_of(struct kiln_store *ws, const char *name, int64_t *id)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, "SELECT id FROM models WHERE name = ?", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_DONE)
        st = kiln_errorf(KILN_ERR_NOT_FOUND,
                         "%s: no such model (`kiln model list` shows the registered ones)", name);
    else st = store_sql_error(ws, "looking up a model");
    sqlite3_finalize(s);
    return st;
}

/* Comma-separated aliases of a model, for messages. */
static void model_aliases_text(struct kiln_store *ws, int64_t model_id, char *buf, size_t len)
{
    buf[0] = '\0';
    sqlite3_stmt *s;
    if (store_prepare(ws, "SELECT alias FROM aliases WHERE model_id = ? ORDER BY alias", &s) != KILN_OK)
        return;
    sqlite3_bind_int64(s, 1, model_id);
    while (sqlite3_step(s) == SQLITE_ROW) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", used ? ", " : "", col_text(s, 0));
    }
    sqlite3_finalize(s);
}

#define VERSION_SELECT                                                                      \
    "SELECT v.id, v.model_id, m.name, v.version, v.object_sha256, IFNULL(v.run_id, 0), "    \
    "IFNULL(v.checkpoint_id, 0), v.archived, v.created FROM model_versions v "              \
    "JOIN models m ON m.id = v.model_id "

static void version_from_row(sqlite3_stmt *s, struct kiln_model_version *v)
{
    memset(v, 0, sizeof *v);
    v->id = sqlite3_column_int64(s, 0);
    v->model_id = sqlite3_column_int64(s, 1);
    snprintf(v->name, sizeof v->name, "%s", col_text(s, 2));
    v->version = sqlite3_column_int64(s, 3);
    snprintf(v->sha256, sizeof v->sha256, "%s", col_text(s, 4));
    v->run_id = sqlite3_column_int64(s, 5);
    v->checkpoint_id = sqlite3_column_int64(s, 6);
    v->archived = sqlite3_column_int64(s, 7) != 0;
    snprintf(v->created, sizeof v->created, "%s", col_text(s, 8));
}

enum kiln_status kiln_model_version_find(struct kiln_store *ws, const char *ref,
                                         struct kiln_model_version *out)
{
    memset(out, 0, sizeof *out);
    char name[256];
    const char *sel;
    int64_t model_id = 0;
    enum kiln_status st = split_ref(ref, name, &sel);
    if (st == KILN_OK) st = model_id_of(ws, name, &model_id);
    if (st != KILN_OK) return st;
    bool by_version = sel && all_digits(sel);
    const char *sql = !sel ? VERSION_SELECT "WHERE v.model_id = ?1 AND v.archived = 0 "
                             "ORDER BY v.version DESC LIMIT 1"
                      : by_version ? VERSION_SELECT "WHERE v.model_id = ?1 AND v.version = ?2"
                                   : VERSION_SELECT "JOIN aliases a ON a.version_id = v.id "
                                                    "WHERE a.model_id = ?1 AND a.alias = ?2";
    sqlite3_stmt *s;
    st = store_prepare(ws, sql, &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, model_id);
    if (by_version) {
        errno = 0;
        long long n = strtoll(sel, NULL, 10);
        sqlite3_bind_int64(s, 2, errno ? -1 : n);
    } else if (sel) {
        sqlite3_bind_text(s, 2, sel, -1, SQLITE_TRANSIENT);
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) version_from_row(s, out);
    sqlite3_finalize(s);
    if (rc == SQLITE_ROW) return KILN_OK;
    if (rc != SQLITE_DONE) return store_sql_error(ws, "looking up a model version");
    if (!sel)
        return kiln_errorf(KILN_ERR_NOT_FOUND,
                           "%s: every version is archived (name one: %s@N)", ref, name);
    if (by_version) return kiln_errorf(KILN_ERR_NOT_FOUND, "%s: no such version of %s", ref, name);
    char aliases[512];
    model_aliases_text(ws, model_id, aliases, sizeof aliases);
    return kiln_errorf(KILN_ERR_NOT_FOUND, "%s: %s has no alias '%s' (%s%s)", ref, name, sel,
                       aliases[0] ? "its aliases: " : "it has no aliases", aliases);
}

/* --- register --------------------------------------------------------------------------- */

/* Checks that path is a kiln model that loads (parameters included). */
static enum kiln_status check_model_file(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return kiln_errorf(KILN_ERR_NOT_FOUND, "%s: no such file", path);
    if (!S_ISREG(sb.st_mode)) return kiln_errorf(KILN_ERR_USAGE, "%s is not a file", path);
    struct kiln_backend *be = NULL;
    char said[256];
    enum kiln_status st = kiln_backend_open("cpu", 1, &be, said, sizeof said);
    if (st != KILN_OK) return st;
    struct kiln_model *m = NULL;
    struct kiln_model_meta meta;
    st = kiln_model_load(path, be, 1, &m, &meta);
    if (st == KILN_OK) {
        kiln_model_free(m);
        kiln_model_meta_free(&meta);
    }
    kiln_backend_free(be);
    return st == KILN_OK ? st : kiln_error_context(st, "%s is not a kiln model file", path);
}

/* The final checkpoint of run:N (text is "run:N"). */
static enum kiln_status run_final_model(struct kiln_store *ws, const char *text, int64_t *run_id,
                                        int64_t *checkpoint_id, char sha[65])
{
    if (!all_digits(text + 4) || strlen(text + 4) > 18)
        return kiln_errorf(KILN_ERR_USAGE, "%s: a run is run:N", text);
    *run_id = strtoll(text + 4, NULL, 10);
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(
        ws,
        "SELECT r.status, (SELECT c.id FROM checkpoints c WHERE c.run_id = r.id AND c.final = 1 "
        "ORDER BY c.id DESC LIMIT 1) FROM runs r WHERE r.id = ?",
        &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, *run_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && col_null(s, 1))
        st = kiln_errorf(KILN_ERR_NOT_FOUND,
                         "%s has no final model (status %s): resume it or register a checkpoint "
                         "file",
                         text, col_text(s, 0));
    else if (rc == SQLITE_ROW) *checkpoint_id = sqlite3_column_int64(s, 1);
    else if (rc == SQLITE_DONE) st = kiln_errorf(KILN_ERR_NOT_FOUND, "%s: no such run", text);
    else st = store_sql_error(ws, "looking up a run");
    sqlite3_finalize(s);
    if (st != KILN_OK) return st;
    st = store_prepare(ws, "SELECT object_sha256 FROM checkpoints WHERE id = ?", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, *checkpoint_id);
    if (sqlite3_step(s) == SQLITE_ROW) snprintf(sha, 65, "%s", col_text(s, 0));
    sqlite3_finalize(s);
    /* Refuse to register bytes that are gone or fail their hash. */
    char path[4400];
    st = kiln_store_object_path(ws, sha, path, sizeof path);
    return st == KILN_OK ? st : kiln_error_context(st, "%s's final model", text);
}

/* A recorded checkpoint with exactly these bytes, so that a model registered
 * from a file still links to its run. */
static void checkpoint_of_object(struct kiln_store *ws, const char *sha, int64_t *checkpoint_id,
                                 int64_t *run_id)
{
    sqlite3_stmt *s;
    if (store_prepare(ws,
                      "SELECT id, run_id FROM checkpoints WHERE object_sha256 = ? "
                      "ORDER BY final DESC, id DESC LIMIT 1",
                      &s) != KILN_OK)
        return;
    sqlite3_bind_text(s, 1, sha, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_ROW) {
        *checkpoint_id = sqlite3_column_int64(s, 0);
        *run_id = sqlite3_column_int64(s, 1);
    }
    sqlite3_finalize(s);
}

static enum kiln_status check_tag(const char *kv, size_t *key_len)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return kiln_errorf(KILN_ERR_USAGE, "tag '%s': expected KEY=VALUE", kv);
    *key_len = (size_t)(eq - kv);
    if (*key_len > MAX_TAG_KEY)
        return kiln_errorf(KILN_ERR_USAGE, "tag '%.40s...': the key is longer than %d", kv,
                           MAX_TAG_KEY);
    for (const char *p = kv; p < eq; p++)
        if (!name_char(*p) && *p != ':' && *p != '/')
            return kiln_errorf(KILN_ERR_USAGE,
                               "tag '%s': a key holds letters, digits and '_', '-', '.', ':', '/'",
                               kv);
    return check_text("a tag value", eq + 1, MAX_TAG_VALUE);
}

static enum kiln_status tags_write(struct kiln_store *ws, int64_t version_id,
                                   const char *const *kv, int n)
{
    for (int i = 0; i < n; i++) {
        size_t klen;
        enum kiln_status st = check_tag(kv[i], &klen);
        if (st != KILN_OK) return st;
        sqlite3_stmt *s;
        st = store_prepare(ws,
                           "INSERT OR REPLACE INTO model_tags(version_id, key, value) "
                           "VALUES(?, ?, ?)",
                           &s);
        if (st != KILN_OK) return st;
        sqlite3_bind_int64(s, 1, version_id);
        sqlite3_bind_text(s, 2, kv[i], (int)klen, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 3, kv[i] + klen + 1, -1, SQLITE_TRANSIENT);
        st = step_done(ws, s, "writing a tag");
        if (st != KILN_OK) return st;
    }
    return KILN_OK;
}

/* Inside the caller's transaction: the model's id, creating it when new. */
static enum kiln_status model_get_or_create(struct kiln_store *ws, const char *name, int64_t *id)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, "SELECT 1 FROM datasets WHERE name = ?", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
    bool clash = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    if (clash)
        return kiln_errorf(KILN_ERR_USAGE,
                           "'%s' already names a dataset: give the model another name, so that "
                           "references stay unambiguous",
                           name);
    char ts[32];
    time_iso8601(ts);
    st = store_prepare(ws, "INSERT OR IGNORE INTO models(name, created) VALUES(?, ?)", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, ts, -1, SQLITE_TRANSIENT);
    st = step_done(ws, s, "creating a model");
    if (st == KILN_OK) st = model_id_of(ws, name, id);
    return st;
}

/* Inside the caller's transaction: the model's next version number. The
 * counter only grows; MAX() also covers rows written by hand. */
static enum kiln_status next_version(struct kiln_store *ws, int64_t model_id, int64_t *version)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(
        ws, "INSERT OR IGNORE INTO model_counters(model_id, last_version) VALUES(?, 0)", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, model_id);
    if ((st = step_done(ws, s, "creating a version counter")) != KILN_OK) return st;
    st = store_prepare(ws,
                       "UPDATE model_counters SET last_version = MAX(last_version, "
                       "(SELECT IFNULL(MAX(version), 0) FROM model_versions WHERE model_id = ?1)) "
                       "+ 1 WHERE model_id = ?1",
                       &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, model_id);
    if ((st = step_done(ws, s, "counting versions")) != KILN_OK) return st;
    st = store_prepare(ws, "SELECT last_version FROM model_counters WHERE model_id = ?", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, model_id);
    if (sqlite3_step(s) == SQLITE_ROW) *version = sqlite3_column_int64(s, 0);
    else st = store_sql_error(ws, "reading the version counter");
    sqlite3_finalize(s);
    return st;
}

enum kiln_status kiln_model_register(struct kiln_store *ws, const struct kiln_register_opts *o,
                                     struct kiln_model_version *out)
{
    struct kiln_model_version v = {0};
    if (!o->source || !*o->source) return kiln_errorf(KILN_ERR_USAGE, "nothing to register");
    enum kiln_status st = check_name("model name", o->name, 128, false);
    const char *desc = o->description ? o->description : "";
    if (st == KILN_OK) st = check_text("the description", desc, MAX_DESCRIPTION);
    for (int i = 0; i < o->n_tags && st == KILN_OK; i++) {
        size_t klen;
        st = check_tag(o->tags[i], &klen);
    }
    if (st != KILN_OK) return st;
    bool from_run = !strncmp(o->source, "run:", 4);
    /* The slow checks (reading the file) come before the write lock. */
    if (from_run) st = run_final_model(ws, o->source, &v.run_id, &v.checkpoint_id, v.sha256);
    else st = check_model_file(o->source);
    if (st != KILN_OK) return st;

    if ((st = kiln_store_begin(ws)) != KILN_OK) return st;
    /* The copy happens under the lock, so that gc cannot remove the new,
     * still unreferenced object before the version refers to it. */
    if (!from_run) {
        st = kiln_store_put_file(ws, o->source, "model", v.sha256, NULL);
        if (st == KILN_OK) checkpoint_of_object(ws, v.sha256, &v.checkpoint_id, &v.run_id);
    }
    if (st == KILN_OK) st = model_get_or_create(ws, o->name, &v.model_id);
    if (st == KILN_OK) st = next_version(ws, v.model_id, &v.version);
    sqlite3_stmt *s = NULL;
    if (st == KILN_OK) {
        time_iso8601(v.created);
        st = store_prepare(ws,
                           "INSERT INTO model_versions(model_id, version, run_id, checkpoint_id, "
                           "object_sha256, description, archived, created, created_by) "
                           "VALUES(?, ?, ?, ?, ?, ?, 0, ?, ?)",
                           &s);
    }
    if (st == KILN_OK) {
        sqlite3_bind_int64(s, 1, v.model_id);
        sqlite3_bind_int64(s, 2, v.version);
        if (v.run_id) sqlite3_bind_int64(s, 3, v.run_id);
        else sqlite3_bind_null(s, 3);
        if (v.checkpoint_id) sqlite3_bind_int64(s, 4, v.checkpoint_id);
        else sqlite3_bind_null(s, 4);
        sqlite3_bind_text(s, 5, v.sha256, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 6, desc, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 7, v.created, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 8, kiln_store_user(), -1, SQLITE_TRANSIENT);
        st = step_done(ws, s, "recording a model version");
        v.id = sqlite3_last_insert_rowid(kiln_store_db(ws));
    }
    if (st == KILN_OK) st = tags_write(ws, v.id, o->tags, o->n_tags);
    if (st == KILN_OK) {
        char subject[300], detail[4300];
        snprintf(subject, sizeof subject, "%s@%lld", o->name, (long long)v.version);
        snprintf(detail, sizeof detail, "from %s, sha256 %s", o->source, v.sha256);
        st = kiln_audit_append(ws, "model.register", subject, detail);
    }
    if (st == KILN_OK) st = kiln_store_commit(ws);
    if (st != KILN_OK) {
        kiln_store_rollback(ws);
        return kiln_error_context(st, "registering %s as %s", o->source, o->name);
    }
    snprintf(v.name, sizeof v.name, "%s", o->name);
    if (out) *out = v;
    return KILN_OK;
}

/* --- aliases, tags, archive ----------------------------------------------------------- */

/* Finishes a change: audit, commit; or rolls back. */
static enum kiln_status finish_change(struct kiln_store *ws, enum kiln_status st,
                                      const char *action, const char *subject, const char *detail)
{
    if (st == KILN_OK) st = kiln_audit_append(ws, action, subject, detail);
    if (st == KILN_OK) st = kiln_store_commit(ws);
    if (st != KILN_OK) kiln_store_rollback(ws);
    return st;
}

/* The version an alias points at (0 when the alias does not exist). */
static enum kiln_status alias_target(struct kiln_store *ws, int64_t model_id, const char *alias,
                                     int64_t *version)
{
    *version = 0;
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws,
                                        "SELECT v.version FROM aliases a JOIN model_versions v "
                                        "ON v.id = a.version_id WHERE a.model_id = ? AND a.alias = ?",
                                        &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, model_id);
    sqlite3_bind_text(s, 2, alias, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_ROW) *version = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return KILN_OK;
}

static enum kiln_status alias_history_add(struct kiln_store *ws, int64_t model_id,
                                          const char *alias, int64_t from, int64_t to)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws,
                                        "INSERT INTO alias_history(model_id, alias, from_version, "
                                        "to_version, user, time) VALUES(?, ?, ?, ?, ?, ?)",
                                        &s);
    if (st != KILN_OK) return st;
    char ts[32];
    time_iso8601(ts);
    sqlite3_bind_int64(s, 1, model_id);
    sqlite3_bind_text(s, 2, alias, -1, SQLITE_TRANSIENT);
    if (from) sqlite3_bind_int64(s, 3, from);
    else sqlite3_bind_null(s, 3);
    sqlite3_bind_int64(s, 4, to);
    sqlite3_bind_text(s, 5, kiln_store_user(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 6, ts, -1, SQLITE_TRANSIENT);
    return step_done(ws, s, "recording the alias history");
}

enum kiln_status kiln_model_alias_set(struct kiln_store *ws, const char *ref, const char *alias,
                                      int64_t *from_version)
{
    enum kiln_status st = check_name("alias", alias, MAX_ALIAS, true);
    if (st != KILN_OK) return st;
    if ((st = kiln_store_begin(ws)) != KILN_OK) return st;
    struct kiln_model_version v;
    int64_t from = 0;
    st = kiln_model_version_find(ws, ref, &v);
    if (st == KILN_OK && v.archived)
        st = kiln_errorf(KILN_ERR_USAGE,
                         "%s@%lld is archived: bring it back first (kiln model archive %s@%lld "
                         "--undo)",
                         v.name, (long long)v.version, v.name, (long long)v.version);
    if (st == KILN_OK) st = alias_target(ws, v.model_id, alias, &from);
    if (from_version) *from_version = from;
    if (st == KILN_OK && from == v.version) /* already there: nothing to record */
        return kiln_store_commit(ws);
    sqlite3_stmt *s = NULL;
    if (st == KILN_OK)
        st = store_prepare(ws,
                           "INSERT INTO aliases(model_id, alias, version_id) VALUES(?, ?, ?) "
                           "ON CONFLICT(model_id, alias) DO UPDATE SET version_id = "
                           "excluded.version_id",
                           &s);
    if (st == KILN_OK) {
        sqlite3_bind_int64(s, 1, v.model_id);
        sqlite3_bind_text(s, 2, alias, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 3, v.id);
        st = step_done(ws, s, "moving an alias");
    }
    if (st == KILN_OK) st = alias_history_add(ws, v.model_id, alias, from, v.version);
    char subject[400] = "", detail[128] = "";
    if (st == KILN_OK) {
        snprintf(subject, sizeof subject, "%s@%s", v.name, alias);
        if (from) snprintf(detail, sizeof detail, "version %lld (was %lld)", (long long)v.version, (long long)from);
        else snprintf(detail, sizeof detail, "version %lld (new alias)", (long long)v.version);
    }
    return finish_change(ws, st, "model.alias", subject, detail);
}

enum kiln_status kiln_model_alias_delete(struct kiln_store *ws, const char *name_ref,
                                         const char *alias)
{
    char name[256];
    const char *sel;
    enum kiln_status st = split_ref(name_ref, name, &sel);
    if (st != KILN_OK) return st;
    if ((st = kiln_store_begin(ws)) != KILN_OK) return st;
    int64_t model_id = 0, from = 0;
    st = model_id_of(ws, name, &model_id);
    if (st == KILN_OK) st = alias_target(ws, model_id, alias, &from);
    if (st == KILN_OK && !from) {
        char aliases[512];
        model_aliases_text(ws, model_id, aliases, sizeof aliases);
        st = kiln_errorf(KILN_ERR_NOT_FOUND, "%s@%s: no such alias (%s%s)", name, alias,
                         aliases[0] ? "its aliases: " : "it has no aliases", aliases);
    }
    sqlite3_stmt *s = NULL;
    if (st == KILN_OK)
        st = store_prepare(ws, "DELETE FROM aliases WHERE model_id = ? AND alias = ?", &s);
    if (st == KILN_OK) {
        sqlite3_bind_int64(s, 1, model_id);
        sqlite3_bind_text(s, 2, alias, -1, SQLITE_TRANSIENT);
        st = step_done(ws, s, "deleting an alias");
    }
    if (st == KILN_OK) st = alias_history_add(ws, model_id, alias, from, 0);
    char subject[400] = "", detail[128] = "";
    snprintf(subject, sizeof subject, "%s@%s", name, alias);
    snprintf(detail, sizeof detail, "deleted (was version %lld)", (long long)from);
    return finish_change(ws, st, "model.alias", subject, detail);
}

enum kiln_status kiln_model_tag_set(struct kiln_store *ws, const char *ref,
                                    const char *const *kv, int n)
{
    if (n <= 0) return kiln_errorf(KILN_ERR_USAGE, "no KEY=VALUE tags given");
    enum kiln_status st = kiln_store_begin(ws);
    if (st != KILN_OK) return st;
    struct kiln_model_version v;
    st = kiln_model_version_find(ws, ref, &v);
    if (st == KILN_OK) st = tags_write(ws, v.id, kv, n);
    char subject[300] = "", detail[2048] = "";
    snprintf(subject, sizeof subject, "%s@%lld", v.name, (long long)v.version);
    for (int i = 0; i < n; i++) {
        size_t used = strlen(detail);
        snprintf(detail + used, sizeof detail - used, "%s%s", i ? ", " : "", kv[i]);
    }
    return finish_change(ws, st, "model.tag", subject, detail);
}

enum kiln_status kiln_model_tag_delete(struct kiln_store *ws, const char *ref,
                                       const char *const *keys, int n)
{
    if (n <= 0) return kiln_errorf(KILN_ERR_USAGE, "no tag keys given");
    enum kiln_status st = kiln_store_begin(ws);
    if (st != KILN_OK) return st;
    struct kiln_model_version v;
    st = kiln_model_version_find(ws, ref, &v);
    for (int i = 0; i < n && st == KILN_OK; i++) {
        sqlite3_stmt *s;
        st = store_prepare(ws, "DELETE FROM model_tags WHERE version_id = ? AND key = ?", &s);
        if (st != KILN_OK) break;
        sqlite3_bind_int64(s, 1, v.id);
        sqlite3_bind_text(s, 2, keys[i], -1, SQLITE_TRANSIENT);
        st = step_done(ws, s, "deleting a tag");
        if (st == KILN_OK && sqlite3_changes(kiln_store_db(ws)) == 0)
            st = kiln_errorf(KILN_ERR_NOT_FOUND, "%s@%lld has no tag '%s'", v.name,
                             (long long)v.version, keys[i]);
    }
    char subject[300] = "", detail[2048] = "deleted";
    snprintf(subject, sizeof subject, "%s@%lld", v.name, (long long)v.version);
    for (int i = 0; i < n; i++) {
        size_t used = strlen(detail);
        snprintf(detail + used, sizeof detail - used, "%s%s", i ? ", " : " ", keys[i]);
    }
    return finish_change(ws, st, "model.tag", subject, detail);
}

enum kiln_status kiln_model_archive(struct kiln_store *ws, const char *ref, bool undo)
{
    enum kiln_status st = kiln_store_begin(ws);
    if (st != KILN_OK) return st;
    struct kiln_model_version v;
    st = kiln_model_version_find(ws, ref, &v);
    if (st == KILN_OK && v.archived == !undo)
        st = kiln_errorf(KILN_ERR_USAGE, "%s@%lld is %s archived", v.name, (long long)v.version,
                         undo ? "not" : "already");
    sqlite3_stmt *s = NULL;
    if (st == KILN_OK && !undo) {
        /* An alias must never point at an archived version. */
        char aliases[512] = "";
        st = store_prepare(ws, "SELECT alias FROM aliases WHERE version_id = ? ORDER BY alias", &s);
        if (st == KILN_OK) {
            sqlite3_bind_int64(s, 1, v.id);
            while (sqlite3_step(s) == SQLITE_ROW) {
                size_t used = strlen(aliases);
                snprintf(aliases + used, sizeof aliases - used, "%s%s", used ? ", " : "",
                         col_text(s, 0));
            }
            sqlite3_finalize(s);
            s = NULL;
        }
        if (st == KILN_OK && aliases[0])
            st = kiln_errorf(KILN_ERR_USAGE,
                             "%s@%lld is aliased as %s: move the alias to another version first "
                             "(kiln model alias %s@N ALIAS, or kiln model alias --delete %s ALIAS)",
                             v.name, (long long)v.version, aliases, v.name, v.name);
    }
    if (st == KILN_OK) st = store_prepare(ws, "UPDATE model_versions SET archived = ? WHERE id = ?", &s);
    if (st == KILN_OK) {
        sqlite3_bind_int(s, 1, undo ? 0 : 1);
        sqlite3_bind_int64(s, 2, v.id);
        st = step_done(ws, s, "archiving a version");
    }
    char subject[300] = "";
    snprintf(subject, sizeof subject, "%s@%lld", v.name, (long long)v.version);
    return finish_change(ws, st, undo ? "model.unarchive" : "model.archive", subject, "");
}

/* --- list and show ----------------------------------------------------------------------- */

/* Metrics worth a column, in order of preference. */
static const char *const KEY_METRICS[] = {"test_accuracy", "val_accuracy", "test_loss",
                                          "val_loss",      "val_r2",       "train_loss"};

static json_t *run_metrics_json(struct kiln_store *ws, int64_t run_id)
{
    json_t *m = json_object();
    sqlite3_stmt *s;
    if (!m || !run_id ||
        store_prepare(ws, "SELECT key, value FROM run_summary WHERE run_id = ? ORDER BY key", &s) !=
            KILN_OK)
        return m;
    sqlite3_bind_int64(s, 1, run_id);
    while (sqlite3_step(s) == SQLITE_ROW) {
        double x = sqlite3_column_double(s, 1);
        jset(m, col_text(s, 0), isfinite(x) ? json_real(x) : json_null());
    }
    sqlite3_finalize(s);
    return m;
}

static json_t *tags_json(struct kiln_store *ws, int64_t version_id)
{
    json_t *t = json_object();
    sqlite3_stmt *s;
    if (!t || store_prepare(ws, "SELECT key, value FROM model_tags WHERE version_id = ? ORDER BY key",
                            &s) != KILN_OK)
        return t;
    sqlite3_bind_int64(s, 1, version_id);
    while (sqlite3_step(s) == SQLITE_ROW) jset(t, col_text(s, 0), jstr(col_text(s, 1)));
    sqlite3_finalize(s);
    return t;
}

static json_t *version_aliases_json(struct kiln_store *ws, int64_t version_id)
{
    json_t *a = json_array();
    sqlite3_stmt *s;
    if (!a || store_prepare(ws, "SELECT alias FROM aliases WHERE version_id = ? ORDER BY alias",
                            &s) != KILN_OK)
        return a;
    sqlite3_bind_int64(s, 1, version_id);
    while (sqlite3_step(s) == SQLITE_ROW) json_array_append_new(a, jstr(col_text(s, 0)));
    sqlite3_finalize(s);
    return a;
}

/* The dataset version a run trained on, or JSON null. */
static json_t *run_dataset_json(struct kiln_store *ws, int64_t run_id)
{
    sqlite3_stmt *s;
    if (!run_id || store_prepare(ws,
                                 "SELECT d.name, v.version, v.content_sha256, v.id FROM runs r "
                                 "JOIN dataset_versions v ON v.id = r.dataset_version_id "
                                 "JOIN datasets d ON d.id = v.dataset_id WHERE r.id = ?",
                                 &s) != KILN_OK)
        return json_null();
    sqlite3_bind_int64(s, 1, run_id);
    json_t *d = json_null();
    if (sqlite3_step(s) == SQLITE_ROW) {
        json_decref(d);
        d = json_object();
        jset(d, "name", jstr(col_text(s, 0)));
        jset(d, "version", json_integer(sqlite3_column_int64(s, 1)));
        jset(d, "content_sha256", jstr(col_text(s, 2)));
        jset(d, "id", json_integer(sqlite3_column_int64(s, 3)));
    }
    sqlite3_finalize(s);
    return d ? d : json_null();
}

static json_t *run_json(struct kiln_store *ws, int64_t run_id)
{
    sqlite3_stmt *s;
    if (!run_id || store_prepare(ws, "SELECT status, started, ended FROM runs WHERE id = ?", &s) !=
                       KILN_OK)
        return json_null();
    sqlite3_bind_int64(s, 1, run_id);
    json_t *r = NULL;
    if (sqlite3_step(s) == SQLITE_ROW) {
        r = json_object();
        jset(r, "id", json_integer(run_id));
        jset(r, "status", jstr(col_text(s, 0)));
        jset(r, "started", jstr(col_text(s, 1)));
        jset(r, "ended", col_null(s, 2) ? json_null() : jstr(col_text(s, 2)));
    }
    sqlite3_finalize(s);
    return r ? r : json_null();
}

static json_t *checkpoint_json(struct kiln_store *ws, int64_t checkpoint_id)
{
    sqlite3_stmt *s;
    if (!checkpoint_id ||
        store_prepare(ws,
                      "SELECT id, run_id, epoch, step, final, object_sha256, created FROM "
                      "checkpoints WHERE id = ?",
                      &s) != KILN_OK)
        return json_null();
    sqlite3_bind_int64(s, 1, checkpoint_id);
    json_t *c = NULL;
    if (sqlite3_step(s) == SQLITE_ROW) {
        c = json_object();
        jset(c, "id", json_integer(sqlite3_column_int64(s, 0)));
        jset(c, "run", json_integer(sqlite3_column_int64(s, 1)));
        jset(c, "epoch", json_integer(sqlite3_column_int64(s, 2)));
        jset(c, "step", json_integer(sqlite3_column_int64(s, 3)));
        jset(c, "final", json_boolean(sqlite3_column_int64(s, 4) != 0));
        jset(c, "sha256", jstr(col_text(s, 5)));
        jset(c, "created", jstr(col_text(s, 6)));
    }
    sqlite3_finalize(s);
    return c ? c : json_null();
}

static json_t *alias_history_json(struct kiln_store *ws, int64_t model_id, int64_t version)
{
    json_t *h = json_array();
    sqlite3_stmt *s;
    if (!h || store_prepare(ws,
                            "SELECT alias, from_version, to_version, user, time FROM alias_history "
                            "WHERE model_id = ?1 AND (from_version = ?2 OR to_version = ?2) "
                            "ORDER BY id",
                            &s) != KILN_OK)
        return h;
    sqlite3_bind_int64(s, 1, model_id);
    sqlite3_bind_int64(s, 2, version);
    while (sqlite3_step(s) == SQLITE_ROW) {
        json_t *e = json_object();
        jset(e, "alias", jstr(col_text(s, 0)));
        jset(e, "from_version",
             col_null(s, 1) ? json_null() : json_integer(sqlite3_column_int64(s, 1)));
        int64_t to = sqlite3_column_int64(s, 2);
        jset(e, "to_version", to ? json_integer(to) : json_null()); /* 0: deleted */
        jset(e, "user", jstr(col_text(s, 3)));
        jset(e, "time", jstr(col_text(s, 4)));
        json_array_append_new(h, e);
    }
    sqlite3_finalize(s);
    return h;
}

/* Everything about one version; full adds the checkpoint and alias history. */
static json_t *version_json(struct kiln_store *ws, const struct kiln_model_version *v, bool full)
{
    json_t *o = json_object();
    if (!o) return NULL;
    sqlite3_stmt *s;
    char description[MAX_DESCRIPTION + 1] = "", created_by[256] = "";
    if (store_prepare(ws, "SELECT description, created_by FROM model_versions WHERE id = ?", &s) ==
        KILN_OK) {
        sqlite3_bind_int64(s, 1, v->id);
        if (sqlite3_step(s) == SQLITE_ROW) {
            snprintf(description, sizeof description, "%s", col_text(s, 0));
            snprintf(created_by, sizeof created_by, "%s", col_text(s, 1));
        }
        sqlite3_finalize(s);
    }
    jset(o, "name", jstr(v->name));
    jset(o, "version", json_integer(v->version));
    jset(o, "sha256", jstr(v->sha256));
    jset(o, "created", jstr(v->created));
    jset(o, "created_by", jstr(created_by));
    jset(o, "description", jstr(description));
    jset(o, "archived", json_boolean(v->archived));
    jset(o, "run", run_json(ws, v->run_id));
    if (full) jset(o, "checkpoint", checkpoint_json(ws, v->checkpoint_id));
    jset(o, "dataset", run_dataset_json(ws, v->run_id));
    jset(o, "metrics", run_metrics_json(ws, v->run_id));
    jset(o, "tags", tags_json(ws, v->id));
    jset(o, "aliases", version_aliases_json(ws, v->id));
    if (full) jset(o, "alias_history", alias_history_json(ws, v->model_id, v->version));
    return o;
}

static void text_metrics(const json_t *metrics, char *buf, size_t len, int max)
{
    buf[0] = '\0';
    int shown = 0;
    for (size_t i = 0; i < sizeof KEY_METRICS / sizeof KEY_METRICS[0] && shown < max; i++) {
        json_t *x = json_object_get(metrics, KEY_METRICS[i]);
        if (!json_is_number(x)) continue;
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s=%.4g", shown ? " " : "", KEY_METRICS[i],
                 json_number_value(x));
        shown++;
    }
    if (!buf[0]) snprintf(buf, len, "-");
}

static void text_tags(const json_t *tags, char *buf, size_t len)
{
    buf[0] = '\0';
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)tags, k, val) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s=%s", used ? " " : "", k, json_string_value(val));
    }
    if (!buf[0]) snprintf(buf, len, "-");
}

static void text_list(const json_t *arr, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", i ? "," : "", json_string_value(x));
    }
    if (!buf[0]) snprintf(buf, len, "-");
}

static void text_dataset(const json_t *d, char *buf, size_t len)
{
    if (json_is_object(d))
        snprintf(buf, len, "%s v%lld", jget_str(d, "name"), jget_int(d, "version"));
    else snprintf(buf, len, "-");
}

static enum kiln_status list_models(struct kiln_store *ws, bool json, FILE *out)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(
        ws,
        "SELECT m.id, m.name, m.created, "
        "(SELECT MAX(version) FROM model_versions WHERE model_id = m.id AND archived = 0), "
        "(SELECT COUNT(*) FROM model_versions WHERE model_id = m.id), "
        "(SELECT COUNT(*) FROM model_versions WHERE model_id = m.id AND archived = 1) "
        "FROM models m ORDER BY m.name",
        &s);
    if (st != KILN_OK) return st;
    json_t *root = json_array();
    while (root && sqlite3_step(s) == SQLITE_ROW) {
        json_t *m = json_object(), *aliases = json_object();
        int64_t id = sqlite3_column_int64(s, 0);
        jset(m, "name", jstr(col_text(s, 1)));
        jset(m, "created", jstr(col_text(s, 2)));
        jset(m, "latest", col_null(s, 3) ? json_null() : json_integer(sqlite3_column_int64(s, 3)));
        jset(m, "versions", json_integer(sqlite3_column_int64(s, 4)));
        jset(m, "archived", json_integer(sqlite3_column_int64(s, 5)));
        sqlite3_stmt *a;
        if (store_prepare(ws,
                          "SELECT a.alias, v.version FROM aliases a JOIN model_versions v "
                          "ON v.id = a.version_id WHERE a.model_id = ? ORDER BY a.alias",
                          &a) == KILN_OK) {
            sqlite3_bind_int64(a, 1, id);
            while (sqlite3_step(a) == SQLITE_ROW)
                jset(aliases, col_text(a, 0), json_integer(sqlite3_column_int64(a, 1)));
            sqlite3_finalize(a);
        }
        jset(m, "aliases", aliases);
        json_array_append_new(root, m);
    }
    sqlite3_finalize(s);
    if (!root) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    if (json) {
        st = json_emit(root, out);
    } else if (json_array_size(root) == 0) {
        fprintf(out, "no models registered yet (kiln model register run:N --name NAME)\n");
    } else {
        fprintf(out, "%-24s %-7s %-16s %s\n", "NAME", "LATEST", "VERSIONS", "ALIASES");
        size_t i;
        json_t *m;
        json_array_foreach(root, i, m) {
            char latest[32], versions[64], aliases[1024] = "";
            json_t *l = json_object_get(m, "latest");
            snprintf(latest, sizeof latest, json_is_integer(l) ? "%lld" : "-",
                     (long long)json_integer_value(l));
            long long archived = jget_int(m, "archived");
            if (archived) snprintf(versions, sizeof versions, "%lld (%lld archived)", jget_int(m, "versions"), archived);
            else snprintf(versions, sizeof versions, "%lld", jget_int(m, "versions"));
            const char *k;
            json_t *val;
            json_object_foreach(json_object_get(m, "aliases"), k, val) {
                size_t used = strlen(aliases);
                snprintf(aliases + used, sizeof aliases - used, "%s%s=%lld", used ? " " : "", k,
                         (long long)json_integer_value(val));
            }
            fprintf(out, "%-24s %-7s %-16s %s\n", jget_str(m, "name"), latest, versions,
                    aliases[0] ? aliases : "-");
        }
    }
    json_decref(root);
    return st;
}

static enum kiln_status list_versions(struct kiln_store *ws, const char *name, bool json,
                                      FILE *out)
{
    char base[256];
    const char *sel;
    int64_t model_id = 0;
    enum kiln_status st = split_ref(name, base, &sel);
    if (st == KILN_OK && sel)
        st = kiln_errorf(KILN_ERR_USAGE, "list takes a model NAME (use `kiln model show %s`)", name);
    if (st == KILN_OK) st = model_id_of(ws, base, &model_id);
    if (st != KILN_OK) return st;
    sqlite3_stmt *s;
    st = store_prepare(ws, VERSION_SELECT "WHERE v.model_id = ? ORDER BY v.version", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, model_id);
    json_t *root = json_object(), *versions = json_array();
    while (sqlite3_step(s) == SQLITE_ROW) {
        struct kiln_model_version v;
        version_from_row(s, &v);
        json_array_append_new(versions, version_json(ws, &v, false));
    }
    sqlite3_finalize(s);
    jset(root, "name", jstr(base));
    jset(root, "versions", versions);
    if (json) {
        st = json_emit(root, out);
    } else {
        fprintf(out, "%-8s %-21s %-7s %-20s %-40s %-9s %-20s %s\n", "VERSION", "CREATED", "RUN",
                "DATASET", "METRICS", "ARCHIVED", "TAGS", "ALIASES");
        size_t i;
        json_t *v;
        json_array_foreach(versions, i, v) {
            char run[32] = "-", dataset[300], metrics[256], tags[2048], aliases[1024];
            json_t *r = json_object_get(v, "run");
            if (json_is_object(r)) snprintf(run, sizeof run, "run:%lld", jget_int(r, "id"));
            text_dataset(json_object_get(v, "dataset"), dataset, sizeof dataset);
            text_metrics(json_object_get(v, "metrics"), metrics, sizeof metrics, 2);
            text_tags(json_object_get(v, "tags"), tags, sizeof tags);
            text_list(json_object_get(v, "aliases"), aliases, sizeof aliases);
            fprintf(out, "%-8lld %-21s %-7s %-20s %-40s %-9s %-20s %s\n", jget_int(v, "version"),
                    jget_str(v, "created"), run, dataset, metrics,
                    json_is_true(json_object_get(v, "archived")) ? "archived" : "-", tags, aliases);
        }
    }
    json_decref(root);
    return st;
}

enum kiln_status kiln_model_list(struct kiln_store *ws, const char *name, bool json, FILE *out)
{
    return name ? list_versions(ws, name, json, out) : list_models(ws, json, out);
}

enum kiln_status kiln_model_show(struct kiln_store *ws, const char *ref, bool json, FILE *out)
{
    struct kiln_model_version v;
    enum kiln_status st = kiln_model_version_find(ws, ref, &v);
    if (st != KILN_OK) return st;
    json_t *o = version_json(ws, &v, true);
    if (!o) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    if (json) {
        st = json_emit(o, out);
        json_decref(o);
        return st;
    }
    char buf[2048];
    fprintf(out, "%s@%lld%s\n", v.name, (long long)v.version, v.archived ? "  (archived)" : "");
    const char *desc = jget_str(o, "description");
    fprintf(out, "  description  %s\n", desc[0] ? desc : "-");
    fprintf(out, "  sha256       %s\n", v.sha256);
    fprintf(out, "  created      %s by %s\n", v.created, jget_str(o, "created_by"));
    json_t *r = json_object_get(o, "run");
    if (json_is_object(r))
        fprintf(out, "  run          run:%lld (%s)\n", jget_int(r, "id"), jget_str(r, "status"));
    else fprintf(out, "  run          - (registered from a file)\n");
    json_t *c = json_object_get(o, "checkpoint");
    if (json_is_object(c))
        fprintf(out, "  checkpoint   epoch %lld, step %lld%s, sha256 %s\n", jget_int(c, "epoch"),
                jget_int(c, "step"), json_is_true(json_object_get(c, "final")) ? " (final)" : "",
                jget_str(c, "sha256"));
    json_t *d = json_object_get(o, "dataset");
    if (json_is_object(d))
        fprintf(out, "  dataset      %s v%lld (content sha256 %s)\n", jget_str(d, "name"),
                jget_int(d, "version"), jget_str(d, "content_sha256"));
    else fprintf(out, "  dataset      -\n");
    const char *k;
    json_t *x;
    json_t *metrics = json_object_get(o, "metrics");
    fprintf(out, "  metrics      %s\n", json_object_size(metrics) ? "" : "-");
    json_object_foreach(metrics, k, x)
        if (json_is_number(x)) fprintf(out, "    %-20s %.6g\n", k, json_number_value(x));
    text_tags(json_object_get(o, "tags"), buf, sizeof buf);
    fprintf(out, "  tags         %s\n", buf);
    text_list(json_object_get(o, "aliases"), buf, sizeof buf);
    fprintf(out, "  aliases      %s\n", buf);
    json_t *h = json_object_get(o, "alias_history");
    if (json_array_size(h)) {
        fprintf(out, "  alias history\n");
        size_t i;
        json_array_foreach(h, i, x) {
            json_t *from = json_object_get(x, "from_version"), *to = json_object_get(x, "to_version");
            char fs[32] = "-", ts[32] = "deleted";
            if (json_is_integer(from)) snprintf(fs, sizeof fs, "%lld", (long long)json_integer_value(from));
            if (json_is_integer(to)) snprintf(ts, sizeof ts, "%lld", (long long)json_integer_value(to));
            fprintf(out, "    %s  %-12s %s -> %s  by %s\n", jget_str(x, "time"),
                    jget_str(x, "alias"), fs, ts, jget_str(x, "user"));
        }
    }
    json_decref(o);
    return KILN_OK;
}

/* --- lineage --------------------------------------------------------------------------- */

/* "standardize, select=f1,f2" from a transforms JSON column: either
 * {"transforms":[{"kind":..,"names":[..]},..]} or a bare array of such
 * steps; anything else is shown as it is (shortened). New string. */
static char *transforms_summary(const char *text)
{
    if (!text || !*text) return strdup("");
    json_t *root = json_loads(text, 0, NULL);
    json_t *steps = json_is_array(root) ? root : json_object_get(root, "transforms");
    char buf[1024] = "";
    if (json_is_array(steps)) {
        size_t i;
        json_t *step;
        json_array_foreach(steps, i, step) {
            size_t used = strlen(buf);
            const char *kind = json_string_value(json_object_get(step, "kind"));
            if (!kind) kind = json_string_value(json_object_get(step, "op"));
            snprintf(buf + used, sizeof buf - used, "%s%s", i ? ", " : "", kind ? kind : "?");
            json_t *names = json_object_get(step, "names");
            size_t j;
            json_t *n;
            json_array_foreach(names, j, n) {
                used = strlen(buf);
                snprintf(buf + used, sizeof buf - used, "%s%s", j ? "," : "=",
                         json_string_value(n) ? json_string_value(n) : "?");
            }
        }
    } else {
        snprintf(buf, sizeof buf, "%.200s", text);
    }
    json_decref(root);
    return strdup(buf);
}

static void chain_add(json_t *chain, const char *kind, const char *label, const char *sha,
                      const char *detail)
{
    json_t *e = json_object();
    jset(e, "kind", jstr(kind));
    jset(e, "label", jstr(label));
    jset(e, "sha256", jstr(sha ? sha : ""));
    jset(e, "detail", jstr(detail ? detail : ""));
    json_array_append_new(chain, e);
}

/* The run's dataset version, then its parents, newest first. */
static enum kiln_status lineage_datasets(struct kiln_store *ws, int64_t dv_id, json_t *datasets)
{
    for (int depth = 0; dv_id && depth < MAX_LINEAGE_DEPTH; depth++) {
        sqlite3_stmt *s;
        enum kiln_status st = store_prepare(
            ws,
            "SELECT v.id, d.name, v.version, v.content_sha256, v.object_sha256, v.parent_id, "
            "v.transforms, v.source, v.created, pd.name, p.version FROM dataset_versions v "
            "JOIN datasets d ON d.id = v.dataset_id "
            "LEFT JOIN dataset_versions p ON p.id = v.parent_id "
            "LEFT JOIN datasets pd ON pd.id = p.dataset_id WHERE v.id = ?",
            &s);
        if (st != KILN_OK) return st;
        sqlite3_bind_int64(s, 1, dv_id);
        if (sqlite3_step(s) != SQLITE_ROW) {
            sqlite3_finalize(s);
            break;
        }
        json_t *d = json_object();
        jset(d, "id", json_integer(dv_id));
        jset(d, "name", jstr(col_text(s, 1)));
        jset(d, "version", json_integer(sqlite3_column_int64(s, 2)));
        jset(d, "content_sha256", jstr(col_text(s, 3)));
        jset(d, "object_sha256", jstr(col_text(s, 4)));
        char *summary = transforms_summary(col_null(s, 6) ? NULL : col_text(s, 6));
        jset(d, "transforms", jstr(summary ? summary : ""));
        free(summary);
        jset(d, "source", jstr(col_text(s, 7)));
        jset(d, "created", jstr(col_text(s, 8)));
        int64_t parent = col_null(s, 5) ? 0 : sqlite3_column_int64(s, 5);
        if (parent && !col_null(s, 9)) {
            json_t *p = json_object();
            jset(p, "name", jstr(col_text(s, 9)));
            jset(p, "version", json_integer(sqlite3_column_int64(s, 10)));
            jset(d, "parent", p);
        } else {
            jset(d, "parent", json_null());
        }
        sqlite3_finalize(s);
        json_array_append_new(datasets, d);
        /* A cycle (a hand-edited database) ends the walk. */
        size_t i;
        json_t *seen;
        json_array_foreach(datasets, i, seen)
            if (jget_int(seen, "id") == parent) parent = 0;
        dv_id = parent;
    }
    return KILN_OK;
}

/* The whole lineage of v as JSON (see docs/CLI.md, kiln model lineage). */
static enum kiln_status lineage_build(struct kiln_store *ws, const struct kiln_model_version *v,
                                      json_t **out)
{
    *out = NULL;
    json_t *root = json_object(), *model = version_json(ws, v, false), *datasets = json_array(),
           *chain = json_array(), *aliases = json_array();
    enum kiln_status st = KILN_OK;
    if (!root || !model || !datasets || !chain || !aliases) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    /* The run. */
    json_t *run = json_null();
    int64_t dv_id = 0;
    sqlite3_stmt *s;
    if (v->run_id) {
        st = store_prepare(ws,
                           "SELECT status, config, git_commit, engine_version, started, ended, "
                           "IFNULL(dataset_version_id, 0), host, user FROM runs WHERE id = ?",
                           &s);
        if (st != KILN_OK) goto cleanup;
        sqlite3_bind_int64(s, 1, v->run_id);
        if (sqlite3_step(s) == SQLITE_ROW) {
            char config_sha[65];
            sha256_text(col_text(s, 1), config_sha);
            json_decref(run);
            run = json_object();
            jset(run, "id", json_integer(v->run_id));
            jset(run, "status", jstr(col_text(s, 0)));
            jset(run, "config_sha256", jstr(config_sha));
            jset(run, "git_commit", jstr(col_text(s, 2)));
            jset(run, "engine_version", jstr(col_text(s, 3)));
            jset(run, "started", jstr(col_text(s, 4)));
            jset(run, "ended", col_null(s, 5) ? json_null() : jstr(col_text(s, 5)));
            jset(run, "host", jstr(col_text(s, 7)));
            jset(run, "user", jstr(col_text(s, 8)));
            dv_id = sqlite3_column_int64(s, 6);
        }
        sqlite3_finalize(s);
    }
    st = lineage_datasets(ws, dv_id, datasets);
    if (st != KILN_OK) {
        json_decref(run);
        goto cleanup;
    }
    json_t *checkpoint = checkpoint_json(ws, v->checkpoint_id);
    /* The chain, oldest first. */
    char label[600], detail[1400];
    for (size_t i = json_array_size(datasets); i-- > 0;) {
        json_t *d = json_array_get(datasets, i);
        json_t *p = json_object_get(d, "parent");
        snprintf(label, sizeof label, "%s v%lld", jget_str(d, "name"), jget_int(d, "version"));
        const char *tf = jget_str(d, "transforms");
        if (json_is_object(p))
            snprintf(detail, sizeof detail, "parent %s v%lld; transforms: %s", jget_str(p, "name"),
                     jget_int(p, "version"), tf[0] ? tf : "none");
        else
            snprintf(detail, sizeof detail, "source: %.600s; transforms: %s",
                     jget_str(d, "source")[0] ? jget_str(d, "source") : "-", tf[0] ? tf : "none");
        chain_add(chain, "dataset", label, jget_str(d, "content_sha256"), detail);
    }
    if (json_is_object(run)) {
        snprintf(label, sizeof label, "run:%lld", (long long)v->run_id);
        snprintf(detail, sizeof detail, "%s; commit %s; kiln %s",
                 jget_str(run, "status"), jget_str(run, "git_commit"),
                 jget_str(run, "engine_version"));
        chain_add(chain, "run", label, jget_str(run, "config_sha256"), detail);
    }
    if (json_is_object(checkpoint)) {
        snprintf(label, sizeof label, "run:%lld epoch %lld", jget_int(checkpoint, "run"),
                 jget_int(checkpoint, "epoch"));
        snprintf(detail, sizeof detail, "step %lld%s", jget_int(checkpoint, "step"),
                 json_is_true(json_object_get(checkpoint, "final")) ? ", final" : "");
        chain_add(chain, "checkpoint", label, jget_str(checkpoint, "sha256"), detail);
    }
    snprintf(label, sizeof label, "%s@%lld", v->name, (long long)v->version);
    snprintf(detail, sizeof detail, "registered %s%s", v->created, v->archived ? ", archived" : "");
    chain_add(chain, "model", label, v->sha256, detail);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(model, "aliases"), i, a) {
        json_t *e = json_object();
        jset(e, "alias", jstr(json_string_value(a)));
        jset(e, "sha256", jstr(v->sha256));
        json_array_append_new(aliases, e);
        snprintf(label, sizeof label, "%s@%s", v->name, json_string_value(a));
        snprintf(detail, sizeof detail, "-> version %lld", (long long)v->version);
        chain_add(chain, "alias", label, v->sha256, detail);
    }
    jset(root, "model", json_incref(model));
    jset(root, "aliases", json_incref(aliases));
    jset(root, "checkpoint", checkpoint);
    jset(root, "run", run);
    jset(root, "datasets", json_incref(datasets));
    jset(root, "chain", json_incref(chain));
    *out = json_incref(root);
cleanup:
    json_decref(model);
    json_decref(datasets);
    json_decref(chain);
    json_decref(aliases);
    json_decref(root);
    return st;
}

enum kiln_status kiln_model_lineage_json(struct kiln_store *ws, const char *ref, char **out)
{
    *out = NULL;
    struct kiln_model_version v;
    json_t *root = NULL;
    enum kiln_status st = kiln_model_version_find(ws, ref, &v);
    if (st == KILN_OK) st = lineage_build(ws, &v, &root);
    if (st != KILN_OK) return st;
    *out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return *out ? KILN_OK : kiln_errorf(KILN_ERR_NOMEM, "out of memory");
}

enum kiln_status kiln_model_lineage_print(struct kiln_store *ws, const char *ref, bool json,
                                          FILE *out)
{
    struct kiln_model_version v;
    json_t *root = NULL;
    enum kiln_status st = kiln_model_version_find(ws, ref, &v);
    if (st == KILN_OK) st = lineage_build(ws, &v, &root);
    if (st != KILN_OK) return st;
    if (json) {
        st = json_emit(root, out);
        json_decref(root);
        return st;
    }
    json_t *chain = json_object_get(root, "chain");
    size_t i;
    json_t *e;
    json_array_foreach(chain, i, e) {
        int indent = 2 * (int)i;
        fprintf(out, "%*s%s%-10s %s\n", indent, "", i ? "`-> " : "", jget_str(e, "kind"),
                jget_str(e, "label"));
        int pad = indent + (i ? 4 : 0) + 4;
        const char *sha = jget_str(e, "sha256"), *kind = jget_str(e, "kind");
        if (sha[0])
            fprintf(out, "%*s%ssha256 %s\n", pad, "",
                    !strcmp(kind, "dataset") ? "content " : !strcmp(kind, "run") ? "config " : "",
                    sha);
        const char *detail = jget_str(e, "detail");
        if (detail[0]) fprintf(out, "%*s%s\n", pad, "", detail);
    }
    if (!json_is_object(json_object_get(root, "run")))
        fprintf(out, "(registered from a file: no run or dataset recorded)\n");
    json_decref(root);
    return KILN_OK;
}

/* --- model card ---------------------------------------------------------------------------- */

/* Per-epoch curves from run_metrics. *out is malloc'd (caller frees). */
static enum kiln_status card_epochs(struct kiln_store *ws, int64_t run_id,
                                    struct kiln_card_epoch **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!run_id) return KILN_OK;
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(
        ws,
        "SELECT epoch, key, value FROM run_metrics WHERE run_id = ? AND epoch IS NOT NULL AND "
        "key IN ('train_loss', 'val_loss', 'val_accuracy') ORDER BY epoch, step",
        &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, run_id);
    int cap = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        int64_t epoch = sqlite3_column_int64(s, 0);
        if (*n == 0 || (*out)[*n - 1].epoch != epoch) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 64;
                struct kiln_card_epoch *grown = realloc(*out, (size_t)cap * sizeof **out);
                if (!grown) {
                    st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
                    break;
                }
                *out = grown;
            }
            (*out)[(*n)++] = (struct kiln_card_epoch){epoch, NAN, NAN, NAN};
        }
        struct kiln_card_epoch *e = &(*out)[*n - 1];
        const char *key = col_text(s, 1);
        double x = sqlite3_column_double(s, 2);
        if (!strcmp(key, "train_loss")) e->train_loss = x;
        else if (!strcmp(key, "val_loss")) e->val_loss = x;
        else e->val_accuracy = x;
    }
    sqlite3_finalize(s);
    return st;
}

/* What the card needs from the run: its config text and dataset version. */
struct card_sources {
    char *config;            /* runs.config, or NULL */
    char dataset_name[256];
    char dataset_content[65];
    char dataset_object[65];
    char *stats_json;        /* dataset_versions.stats, or NULL */
};

static enum kiln_status card_sources_read(struct kiln_store *ws, int64_t run_id,
                                          struct card_sources *cs)
{
    if (!run_id) return KILN_OK;
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(
        ws,
        "SELECT r.config, d.name, v.content_sha256, v.object_sha256, v.stats FROM runs r "
        "LEFT JOIN dataset_versions v ON v.id = r.dataset_version_id "
        "LEFT JOIN datasets d ON d.id = v.dataset_id WHERE r.id = ?",
        &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, run_id);
    if (sqlite3_step(s) == SQLITE_ROW) {
        if (!col_null(s, 0)) st = str_dup(col_text(s, 0), &cs->config);
        if (!col_null(s, 1)) {
            snprintf(cs->dataset_name, sizeof cs->dataset_name, "%s", col_text(s, 1));
            snprintf(cs->dataset_content, sizeof cs->dataset_content, "%s", col_text(s, 2));
            snprintf(cs->dataset_object, sizeof cs->dataset_object, "%s", col_text(s, 3));
        }
        if (st == KILN_OK && !col_null(s, 4)) st = str_dup(col_text(s, 4), &cs->stats_json);
    }
    sqlite3_finalize(s);
    return st;
}

/* Without a run, the dataset a model file names (its dataset_sha256) may
 * still be a version in the store. */
static void card_dataset_by_content(struct kiln_store *ws, const char *model_path,
                                    struct card_sources *cs)
{
    struct kiln_backend *be = NULL;
    char said[256];
    if (kiln_backend_open("cpu", 1, &be, said, sizeof said) != KILN_OK) {
        kiln_clear_error();
        return;
    }
    struct kiln_model *m = NULL;
    struct kiln_model_meta meta;
    if (kiln_model_load(model_path, be, 1, &m, &meta) == KILN_OK) {
        sqlite3_stmt *s;
        if (store_prepare(ws,
                          "SELECT d.name, v.content_sha256, v.object_sha256, v.stats FROM "
                          "dataset_versions v JOIN datasets d ON d.id = v.dataset_id "
                          "WHERE v.content_sha256 = ? ORDER BY v.id DESC LIMIT 1",
                          &s) == KILN_OK) {
            sqlite3_bind_text(s, 1, meta.dataset_sha256, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(s) == SQLITE_ROW) {
                snprintf(cs->dataset_name, sizeof cs->dataset_name, "%s", col_text(s, 0));
                snprintf(cs->dataset_content, sizeof cs->dataset_content, "%s", col_text(s, 1));
                snprintf(cs->dataset_object, sizeof cs->dataset_object, "%s", col_text(s, 2));
                if (!col_null(s, 3) && str_dup(col_text(s, 3), &cs->stats_json) != KILN_OK)
                    cs->stats_json = NULL;
            }
            sqlite3_finalize(s);
        }
        kiln_model_free(m);
        kiln_model_meta_free(&meta);
    }
    kiln_backend_free(be);
    kiln_clear_error();
}

/* The split a card evaluates on: test, else val, else train. */
static const char *card_split(const char *data_path)
{
    struct kiln_dataset *ds = NULL;
    const char *split = "test";
    if (kiln_dataset_load_header(data_path, &ds) == KILN_OK) {
        if (!ds->splits[KILN_SPLIT_TEST] || ds->splits[KILN_SPLIT_TEST]->n == 0)
            split = ds->splits[KILN_SPLIT_VAL] && ds->splits[KILN_SPLIT_VAL]->n > 0 ? "val"
                                                                                    : "train";
    } else {
        kiln_clear_error();
    }
    kiln_dataset_free(ds);
    return split;
}

enum kiln_status kiln_model_card(struct kiln_store *ws, const char *ref,
                                 enum kiln_card_format fmt, const char *path)
{
    struct kiln_model_version v;
    struct card_sources cs = {0};
    struct kiln_config *cfg = NULL;
    struct kiln_dataset_stats *stats = NULL;
    struct kiln_metrics metrics;
    struct kiln_model_meta meta;
    memset(&metrics, 0, sizeof metrics);
    memset(&meta, 0, sizeof meta);
    bool evaluated = false;
    struct kiln_card_epoch *epochs = NULL;
    struct kiln_card_lineage *links = NULL;
    char **details = NULL;
    int n_details = 0;
    json_t *lineage = NULL, *model = NULL;
    int n_epochs = 0;
    char model_path[4400], data_path[4400], run_name[64];

    enum kiln_status st = kiln_model_version_find(ws, ref, &v);
    if (st == KILN_OK) st = kiln_store_object_path(ws, v.sha256, model_path, sizeof model_path);
    if (st == KILN_OK) st = card_sources_read(ws, v.run_id, &cs);
    if (st == KILN_OK && !cs.dataset_name[0]) card_dataset_by_content(ws, model_path, &cs);
    if (st == KILN_OK) st = lineage_build(ws, &v, &lineage);
    if (st == KILN_OK) st = card_epochs(ws, v.run_id, &epochs, &n_epochs);
    if (st != KILN_OK) goto cleanup;
    model = json_object_get(lineage, "model");
    snprintf(run_name, sizeof run_name, "run:%lld config", (long long)v.run_id);
    /* The card: section is optional; a config that no longer parses (written
     * by another kiln) only loses it. */
    if (cs.config && kiln_config_parse(cs.config, strlen(cs.config), run_name, NULL, 0, &cfg) !=
                         KILN_OK) {
        kiln_log(KILN_LOG_WARN, "%s@%lld: the run's config does not parse (%s); the card has no "
                 "card: section",
                 v.name, (long long)v.version, kiln_last_error());
        kiln_clear_error();
        cfg = NULL;
    }
    if (cs.stats_json && kiln_dataset_stats_from_json(cs.stats_json, &stats) != KILN_OK) {
        kiln_log(KILN_LOG_WARN, "%s: the stored statistics do not parse (%s); the card has none",
                 cs.dataset_name, kiln_last_error());
        kiln_clear_error();
        stats = NULL;
    }
    const char *split = NULL;
    if (cs.dataset_object[0]) {
        st = kiln_store_object_path(ws, cs.dataset_object, data_path, sizeof data_path);
        if (st != KILN_OK) {
            kiln_error_context(st, "the dataset %s", cs.dataset_name);
            goto cleanup;
        }
        split = card_split(data_path);
        st = kiln_eval(model_path, data_path, split, "cpu", 0, &metrics, &meta);
        if (st != KILN_OK) {
            kiln_error_context(st, "evaluating %s@%lld on %s (%s split)", v.name,
                               (long long)v.version, cs.dataset_name, split);
            goto cleanup;
        }
        evaluated = true;
    } else {
        kiln_log(KILN_LOG_WARN, "%s@%lld: no dataset version is recorded for it; the card has no "
                 "evaluation",
                 v.name, (long long)v.version);
    }
    json_t *chain = json_object_get(lineage, "chain");
    int n_links = (int)json_array_size(chain);
    links = calloc((size_t)n_links + 1, sizeof *links);
    details = calloc((size_t)n_links + 1, sizeof *details);
    if (!links || !details) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    for (int i = 0; i < n_links; i++) {
        json_t *e = json_array_get(chain, (size_t)i);
        const char *kind = jget_str(e, "kind"), *detail = jget_str(e, "detail");
        /* The card's one hash column: say which hash a dataset's and a run's is. */
        const char *which = !strcmp(kind, "dataset") ? " (hash: the content hash)"
                            : !strcmp(kind, "run")   ? " (hash: SHA-256 of the config)"
                                                     : "";
        size_t len = strlen(detail) + strlen(which) + 1;
        if (!(details[i] = malloc(len))) {
            st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        snprintf(details[i], len, "%s%s", detail, which);
        n_details = i + 1;
        links[i] = (struct kiln_card_lineage){kind, jget_str(e, "label"), jget_str(e, "sha256"),
                                              details[i]};
    }
    struct kiln_card_input in = {
        .model_name = v.name,
        .model_version = v.version,
        .model_sha256 = v.sha256,
        .description = jget_str(model, "description"),
        .created = v.created,
        .card = cfg ? &cfg->card : NULL,
        .config_yaml = cs.config ? cs.config : "",
        .dataset_name = cs.dataset_name,
        .dataset_sha256 = cs.dataset_content,
        .stats = stats,
        .n_classes = evaluated ? meta.n_classes : 0,
        .classes = evaluated ? meta.classes : NULL,
        .metrics = evaluated ? &metrics : NULL,
        .metrics_split = split ? split : "",
        .n_epochs = n_epochs,
        .epochs = epochs,
        .n_lineage = n_links,
        .lineage = links,
    };
    st = kiln_card_write(&in, fmt, path);
cleanup:
    if (evaluated) {
        kiln_metrics_free(&metrics);
        kiln_model_meta_free(&meta);
    }
    for (int i = 0; details && i < n_details; i++) free(details[i]);
    free(details);
    free(links);
    free(epochs);
    json_decref(lineage);
    kiln_dataset_stats_free(stats);
    kiln_config_free(cfg);
    free(cs.config);
    free(cs.stats_json);
    return st;
}
