/* engine/lifecycle/maintenance.c: kiln gc and kiln fsck. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "store-internal.h"

/* Every column that points at an object. */
static const char REFERENCED_OBJECTS[] =
    "SELECT object_sha256 FROM dataset_versions UNION SELECT object_sha256 FROM checkpoints "
    "UNION SELECT object_sha256 FROM model_versions UNION SELECT object_sha256 FROM packages";

/* Whether a temp file's writer is gone: names start with the writer's pid;
 * anything over a day old is stale whatever its name says. */
static bool tmp_is_stale(const char *name, time_t mtime)
{
    long pid = strtol(name, NULL, 10);
    if (time(NULL) - mtime > 24 * 3600) return true;
    return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Object files with no row: a process that died between moving a file into
 * place and committing its record. An hour's grace covers writers still in
 * that window. */
static enum kiln_status gc_orphan_files(struct kiln_store *ws, bool dry_run,
                                        struct kiln_gc_report *out)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, "SELECT 1 FROM objects WHERE sha256 = ?", &s);
    if (st != KILN_OK) return st;
    char objdir[4400];
    snprintf(objdir, sizeof objdir, "%s/objects", ws->dir);
    DIR *top = opendir(objdir);
    struct dirent *fan;
    while (top && (fan = readdir(top))) {
        if (strlen(fan->d_name) != 2) continue;
        char sub[4500];
        snprintf(sub, sizeof sub, "%s/%s", objdir, fan->d_name);
        DIR *d = opendir(sub);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (strlen(e->d_name) != 62) continue;
            char sha[65], path[4600];
            snprintf(sha, sizeof sha, "%s%s", fan->d_name, e->d_name);
            snprintf(path, sizeof path, "%s/%s", sub, e->d_name);
            sqlite3_reset(s);
            sqlite3_bind_text(s, 1, sha, -1, SQLITE_TRANSIENT);
            struct stat sb;
            if (sqlite3_step(s) == SQLITE_ROW || stat(path, &sb) != 0 ||
                time(NULL) - sb.st_mtime < 3600)
                continue;
            if (dry_run || unlink(path) == 0) {
                out->objects_removed++;
                out->bytes_removed += sb.st_size;
            }
        }
        if (d) closedir(d);
    }
    if (top) closedir(top);
    sqlite3_finalize(s);
    return KILN_OK;
}

enum kiln_status kiln_store_gc(struct kiln_store *ws, bool dry_run, struct kiln_gc_report *out)
{
    memset(out, 0, sizeof *out);
    /* One transaction: nothing can start referencing an object between the
     * query and its removal. */
    enum kiln_status st = kiln_store_begin(ws);
    if (st != KILN_OK) return st;
    sqlite3_stmt *s;
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT sha256, size FROM objects WHERE sha256 NOT IN (%s)",
             REFERENCED_OBJECTS);
    st = store_prepare(ws, sql, &s);
    if (st != KILN_OK) goto done;
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *sha = (const char *)sqlite3_column_text(s, 0);
        char path[4400];
        kiln_store_object_path_unchecked(ws, sha, path, sizeof path);
        if (!dry_run && unlink(path) != 0 && errno != ENOENT) continue;
        out->objects_removed++;
        out->bytes_removed += sqlite3_column_int64(s, 1);
    }
    sqlite3_finalize(s);
    if (!dry_run && out->objects_removed) {
        snprintf(sql, sizeof sql, "DELETE FROM objects WHERE sha256 NOT IN (%s)",
                 REFERENCED_OBJECTS);
        st = store_exec(ws, sql);
    }
    if (st == KILN_OK) st = gc_orphan_files(ws, dry_run, out);
    char tmpdir[4400];
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp", ws->dir);
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (st == KILN_OK && d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4700];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        if (stat(path, &sb) != 0 || !tmp_is_stale(e->d_name, sb.st_mtime)) continue;
        if (dry_run || unlink(path) == 0) out->tmp_removed++;
    }
    if (d) closedir(d);
    if (st == KILN_OK && !dry_run) {
        char detail[128];
        snprintf(detail, sizeof detail, "%lld objects, %lld bytes, %lld temp files",
                 (long long)out->objects_removed, (long long)out->bytes_removed,
                 (long long)out->tmp_removed);
        st = kiln_audit_append(ws, "gc", ws->root, detail);
    }
done:
    if (st == KILN_OK) return kiln_store_commit(ws);
    kiln_store_rollback(ws);
    return st;
}

enum kiln_status kiln_store_fsck(struct kiln_store *ws, FILE *out, int64_t *problems)
{
    *problems = 0;
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, "SELECT sha256, size FROM objects ORDER BY sha256", &s);
    if (st != KILN_OK) return st;
    int64_t checked = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *sha = (const char *)sqlite3_column_text(s, 0);
        char path[4400];
        checked++;
        if (kiln_store_object_path(ws, sha, path, sizeof path) != KILN_OK) {
            fprintf(out, "object %s: %s\n", sha, kiln_last_error());
            (*problems)++;
        }
    }
    sqlite3_finalize(s);
    /* Every record that names an object must find it recorded. */
    static const char *const refs[][2] = {
        {"dataset_versions", "SELECT 'dataset version ' || id, object_sha256 FROM dataset_versions"},
        {"checkpoints", "SELECT 'checkpoint ' || id || ' of run:' || run_id, object_sha256 FROM checkpoints"},
        {"model_versions", "SELECT 'model version ' || id, object_sha256 FROM model_versions"},
        {"packages", "SELECT 'package ' || id, object_sha256 FROM packages"},
    };
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        char sql[512];
        snprintf(sql, sizeof sql, "%s WHERE object_sha256 NOT IN (SELECT sha256 FROM objects)",
                 refs[i][1]);
        if ((st = store_prepare(ws, sql, &s)) != KILN_OK) return st;
        while (sqlite3_step(s) == SQLITE_ROW) {
            fprintf(out, "%s: refers to object %s, which the store does not hold\n",
                    sqlite3_column_text(s, 0), sqlite3_column_text(s, 1));
            (*problems)++;
        }
        sqlite3_finalize(s);
    }
    if ((st = store_prepare(ws, "PRAGMA foreign_key_check", &s)) != KILN_OK) return st;
    while (sqlite3_step(s) == SQLITE_ROW) {
        fprintf(out, "table %s row %lld: refers to a missing row of %s\n",
                sqlite3_column_text(s, 0), (long long)sqlite3_column_int64(s, 1),
                sqlite3_column_text(s, 2));
        (*problems)++;
    }
    sqlite3_finalize(s);
    int64_t entries;
    if (kiln_audit_verify(ws, &entries) != KILN_OK) {
        fprintf(out, "%s\n", kiln_last_error());
        (*problems)++;
    }
    fprintf(out, "checked %lld objects and %lld audit entries: %lld problem%s\n",
            (long long)checked, (long long)entries, (long long)*problems,
            *problems == 1 ? "" : "s");
    if (*problems)
        return kiln_errorf(KILN_ERR_INTEGRITY, "fsck found %lld problem%s in %s",
                           (long long)*problems, *problems == 1 ? "" : "s", ws->root);
    return KILN_OK;
}
