/* engine/lifecycle/refs.c: resolving references (fashion-mnist,
 * fashion-mnist@3f2a9c, run:42, classifier@3, classifier@production, a path). */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store-internal.h"

static bool looks_like_path(const char *t)
{
    if (strchr(t, '/')) return true;
    const char *dot = strrchr(t, '.');
    return dot && (!strcmp(dot, ".h5") || !strcmp(dot, ".hdf5") || !strcmp(dot, ".csv") ||
                   !strcmp(dot, ".kiln"));
}

static bool all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

static bool all_hex(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s)) return false;
    return true;
}

static enum kiln_status ref_file(const char *text, struct kiln_ref *out)
{
    struct stat sb;
    if (stat(text, &sb) != 0 || !S_ISREG(sb.st_mode))
        return kiln_errorf(KILN_ERR_IO, "%s: no such file", text);
    out->kind = KILN_REF_FILE;
    snprintf(out->path, sizeof out->path, "%s", text);
    return KILN_OK;
}

/* Fills out from one dataset_versions row selected by where (one bound text
 * parameter, a second optional one). */
static enum kiln_status ref_dataset(struct kiln_store *ws, const char *text, const char *name,
                                    const char *selector, struct kiln_ref *out)
{
    char sql[512];
    const char *base =
        "SELECT v.id, v.version, v.object_sha256, v.content_sha256, d.name FROM dataset_versions v "
        "JOIN datasets d ON d.id = v.dataset_id WHERE d.name = ?1";
    char prefix[80] = "";
    if (!selector) {
        snprintf(sql, sizeof sql, "%s ORDER BY v.version DESC LIMIT 1", base);
    } else if (selector[0] == 'v' && all_digits(selector + 1)) {
        snprintf(sql, sizeof sql, "%s AND v.version = %lld", base, atoll(selector + 1));
    } else if (all_hex(selector) && strlen(selector) >= 4 && strlen(selector) <= 64) {
        snprintf(prefix, sizeof prefix, "%s*", selector);
        snprintf(sql, sizeof sql, "%s AND v.content_sha256 GLOB ?2 ORDER BY v.version LIMIT 6",
                 base);
    } else {
        return kiln_errorf(KILN_ERR_USAGE,
                           "%s: after '@' a dataset takes a hash prefix of 4+ lower-case hex "
                           "digits or vN",
                           text);
    }
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, sql, &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if (prefix[0]) sqlite3_bind_text(s, 2, prefix, -1, SQLITE_STATIC);
    int found = 0;
    char candidates[512] = "";
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (found++ == 0) {
            out->kind = KILN_REF_DATASET;
            out->id = sqlite3_column_int64(s, 0);
            out->version = sqlite3_column_int64(s, 1);
            snprintf(out->sha256, sizeof out->sha256, "%s", sqlite3_column_text(s, 2));
            snprintf(out->content_sha256, sizeof out->content_sha256, "%s",
                     sqlite3_column_text(s, 3));
            snprintf(out->name, sizeof out->name, "%s", sqlite3_column_text(s, 4));
        }
        size_t len = strlen(candidates);
        snprintf(candidates + len, sizeof candidates - len, "%s v%lld (%.12s)", found > 1 ? "," : "",
                 (long long)sqlite3_column_int64(s, 1), sqlite3_column_text(s, 3));
    }
    sqlite3_finalize(s);
    if (found == 0)
        return kiln_errorf(KILN_ERR_NOT_FOUND, "%s: no such dataset version", text);
    if (found > 1)
        return kiln_errorf(KILN_ERR_USAGE, "%s: the prefix is ambiguous:%s; give more digits",
                           text, candidates);
    return KILN_OK;
}

static enum kiln_status ref_model(struct kiln_store *ws, const char *text, const char *name,
                                  const char *selector, struct kiln_ref *out)
{
    const char *sql;
    if (!selector)
        sql = "SELECT v.id, v.version, v.object_sha256, m.name FROM model_versions v "
              "JOIN models m ON m.id = v.model_id WHERE m.name = ?1 AND v.archived = 0 "
              "ORDER BY v.version DESC LIMIT 1";
    else if (all_digits(selector))
        sql = "SELECT v.id, v.version, v.object_sha256, m.name FROM model_versions v "
              "JOIN models m ON m.id = v.model_id WHERE m.name = ?1 AND v.version = ?2";
    else
        sql = "SELECT v.id, v.version, v.object_sha256, m.name FROM aliases a "
              "JOIN models m ON m.id = a.model_id JOIN model_versions v ON v.id = a.version_id "
              "WHERE m.name = ?1 AND a.alias = ?2";
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, sql, &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if (selector) sqlite3_bind_text(s, 2, selector, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return kiln_errorf(KILN_ERR_NOT_FOUND, "%s: no such model %s", text,
                           !selector ? "(or every version is archived)"
                           : all_digits(selector) ? "version" : "alias");
    }
    out->kind = KILN_REF_MODEL;
    out->id = sqlite3_column_int64(s, 0);
    out->version = sqlite3_column_int64(s, 1);
    snprintf(out->sha256, sizeof out->sha256, "%s", sqlite3_column_text(s, 2));
    snprintf(out->name, sizeof out->name, "%s", sqlite3_column_text(s, 3));
    sqlite3_finalize(s);
    return KILN_OK;
}

/* A run's file: its final model, else its newest checkpoint. */
static enum kiln_status ref_run(struct kiln_store *ws, const char *text, struct kiln_ref *out)
{
    if (!all_digits(text + 4))
        return kiln_errorf(KILN_ERR_USAGE, "%s: a run is run:N", text);
    int64_t id = atoll(text + 4);
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(
        ws, "SELECT r.id, (SELECT object_sha256 FROM checkpoints c WHERE c.run_id = r.id "
            "ORDER BY c.final DESC, c.step DESC, c.id DESC LIMIT 1) FROM runs r WHERE r.id = ?",
        &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return kiln_errorf(KILN_ERR_NOT_FOUND, "%s: no such run", text);
    }
    out->kind = KILN_REF_RUN;
    out->id = id;
    snprintf(out->name, sizeof out->name, "run:%lld", (long long)id);
    const unsigned char *sha = sqlite3_column_text(s, 1);
    snprintf(out->sha256, sizeof out->sha256, "%s", sha ? (const char *)sha : "");
    sqlite3_finalize(s);
    return KILN_OK;
}

static bool name_exists(struct kiln_store *ws, const char *table, const char *name)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT 1 FROM %s WHERE name = ?", table);
    sqlite3_stmt *s;
    if (store_prepare(ws, sql, &s) != KILN_OK) return false;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    bool found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return found;
}

enum kiln_status kiln_ref_resolve(struct kiln_store *ws, const char *text, enum kiln_ref_kind want,
                                  struct kiln_ref *out)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text) return kiln_errorf(KILN_ERR_USAGE, "an empty reference");
    if (!ws || looks_like_path(text)) {
        enum kiln_status st = ref_file(text, out);
        if (st != KILN_OK && !ws && !looks_like_path(text))
            return kiln_errorf(KILN_ERR_NOT_FOUND,
                               "%s: no such file, and not inside a kiln workspace to look it up "
                               "as a name (kiln init)",
                               text);
        return st;
    }
    enum kiln_status st;
    if (!strncmp(text, "run:", 4)) {
        st = ref_run(ws, text, out);
    } else {
        char name[256];
        const char *at = strchr(text, '@');
        size_t n = at ? (size_t)(at - text) : strlen(text);
        if (n == 0 || n >= sizeof name) return kiln_errorf(KILN_ERR_USAGE, "%s: bad name", text);
        memcpy(name, text, n);
        name[n] = '\0';
        const char *sel = at ? at + 1 : NULL;
        bool is_model = want == KILN_REF_MODEL ||
                        (want != KILN_REF_DATASET && name_exists(ws, "models", name));
        bool is_dataset = want == KILN_REF_DATASET ||
                          (want != KILN_REF_MODEL && name_exists(ws, "datasets", name));
        if (is_model && is_dataset && want == KILN_REF_FILE)
            return kiln_errorf(KILN_ERR_USAGE, "%s names both a dataset and a model", text);
        if (is_model) st = ref_model(ws, text, name, sel, out);
        else if (is_dataset) st = ref_dataset(ws, text, name, sel, out);
        else {
            struct stat sb;
            if (stat(text, &sb) == 0) return ref_file(text, out);
            return kiln_errorf(KILN_ERR_NOT_FOUND, "%s: no dataset, model or file of that name",
                               text);
        }
    }
    if (st != KILN_OK) return st;
    if (want != KILN_REF_FILE && want != out->kind)
        return kiln_errorf(KILN_ERR_USAGE, "%s is a %s, not a %s", text,
                           out->kind == KILN_REF_RUN ? "run" : out->kind == KILN_REF_MODEL ? "model" : "dataset",
                           want == KILN_REF_RUN ? "run" : want == KILN_REF_MODEL ? "model" : "dataset");
    if (!out->sha256[0]) return KILN_OK; /* a run without a model yet */
    return kiln_store_object_path(ws, out->sha256, out->path, sizeof out->path);
}
