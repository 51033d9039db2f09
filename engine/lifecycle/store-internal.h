/* engine/lifecycle/store-internal.h: what the lifecycle modules share about
 * the workspace store (not public API). */
#ifndef KILN_STORE_INTERNAL_H
#define KILN_STORE_INTERNAL_H

#include <sqlite3.h>

#include "kiln/store.h"

struct kiln_store {
    char root[4096];        /* folder holding .kiln */
    char dir[4200];         /* root/.kiln */
    sqlite3 *db;
    int txn_depth;          /* kiln_store_begin nesting */
};

/* Turns a failed SQLite call into a kiln status naming what was being done. */
enum kiln_status store_sql_error(struct kiln_store *ws, const char *what);
/* Runs SQL without results (several statements allowed). */
enum kiln_status store_exec(struct kiln_store *ws, const char *sql);
/* Prepares sql; on failure returns a status naming it. */
enum kiln_status store_prepare(struct kiln_store *ws, const char *sql, sqlite3_stmt **out);

/* The lock file a running process holds (flock) for its job: kind "run"
 * (a training run) or "score" (a scoring job), so that a dead process's job
 * can be told from a live one. */
void store_lock_path(const struct kiln_store *ws, const char *kind, int64_t id, char *buf,
                     size_t len);
/* store_lock_path for kind "run". */
void store_run_lock_path(const struct kiln_store *ws, int64_t run_id, char *buf, size_t len);
/* Marks runs and scoring jobs whose process is gone as interrupted (done by
 * kiln_store_open). */
enum kiln_status store_reap_dead(struct kiln_store *ws);

#endif
