/* kiln/store.h: the workspace: an embedded store of dataset versions, runs,
 * checkpoints, models and an audit log, with content-addressed objects.
 *
 *   struct kiln_store *ws;
 *   kiln_store_open(NULL, &ws);                 // walks up from the cwd to a .kiln/, like git
 *   char sha[65];
 *   kiln_store_put_file(ws, "fm.h5", "dataset", sha, NULL);
 *   kiln_store_close(ws);
 *
 * Layout (docs/FORMATS.md, "Workspace"):
 *   .kiln/kiln.db          SQLite (WAL): the index of everything
 *   .kiln/objects/ab/cd..  content-addressed files named by the SHA-256 of
 *                          their bytes; written temp + fsync + rename + folder
 *                          fsync, read-only once written, verified when read
 *   .kiln/tmp/             temp files of writes in progress (gc removes stale ones)
 * Every change to the store appends an audit entry that chains the SHA-256 of
 * the entry before it.
 */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/status.h"

#define KILN_STORE_DIR ".kiln"
#define KILN_STORE_SCHEMA_VERSION 2

struct kiln_store;
struct sqlite3;

/* --- opening --------------------------------------------------------------------- */

/* Creates .kiln/ in dir (the cwd when NULL) with an empty database. Refuses
 * (KILN_ERR_USAGE) when dir already holds one. */
enum kiln_status kiln_store_init(const char *dir, char *root_out, size_t len);
/* Opens the workspace at dir (its .kiln/ must exist) or, when dir is NULL,
 * the nearest one found walking up from the cwd. KILN_ERR_NOT_FOUND when
 * there is none (the message suggests `kiln init`). A database of a newer
 * schema is refused; an older one is migrated forward. Also marks runs whose
 * process has died as interrupted. Caller closes. */
enum kiln_status kiln_store_open(const char *dir, struct kiln_store **out);
/* Like open, but *out is NULL (and KILN_OK) when no workspace is found:
 * for commands that work with or without one. */
enum kiln_status kiln_store_open_optional(const char *dir, struct kiln_store **out);
void kiln_store_close(struct kiln_store *ws);

const char *kiln_store_root(const struct kiln_store *ws); /* folder holding .kiln */
struct sqlite3 *kiln_store_db(struct kiln_store *ws);     /* for the lifecycle modules */

/* --- transactions -------------------------------------------------------------------
 * BEGIN IMMEDIATE: writers queue on SQLite's lock (busy timeout 30 s), so
 * concurrent commands wait rather than fail. */
enum kiln_status kiln_store_begin(struct kiln_store *ws);
enum kiln_status kiln_store_commit(struct kiln_store *ws);
void kiln_store_rollback(struct kiln_store *ws);

/* --- objects ------------------------------------------------------------------------ */

/* Copies the file at path into the object store (once: the same bytes are
 * stored once) and records it with kind ("dataset", "checkpoint", "model",
 * "package", ...). Writes the object's SHA-256 to sha. *size_out may be NULL. */
enum kiln_status kiln_store_put_file(struct kiln_store *ws, const char *path, const char *kind,
                                     char sha[65], int64_t *size_out);
/* Like put_file, but moves a file that already lies in the store's tmp folder
 * (kiln_store_tmp_path) into place without copying. */
enum kiln_status kiln_store_adopt_tmp(struct kiln_store *ws, const char *tmp_path,
                                      const char *kind, char sha[65], int64_t *size_out);
/* A fresh temp path inside .kiln/tmp for a writer that will adopt it. */
enum kiln_status kiln_store_tmp_path(struct kiln_store *ws, const char *suffix, char *buf,
                                     size_t len);
/* The path of object sha, after checking its bytes against the hash
 * (KILN_ERR_FORMAT naming both hashes on a mismatch; KILN_ERR_NOT_FOUND when
 * the file is gone). */
enum kiln_status kiln_store_object_path(struct kiln_store *ws, const char *sha, char *buf,
                                        size_t len);
/* The path without the check (for fsck, gc). */
void kiln_store_object_path_unchecked(const struct kiln_store *ws, const char *sha, char *buf,
                                      size_t len);

/* --- references ----------------------------------------------------------------------
 *   fashion-mnist            latest version of a dataset (or a model's latest version)
 *   fashion-mnist@3f2a9c     a dataset version by unique content-hash prefix (>= 4 hex)
 *   run:42                   a run
 *   classifier@3             a model version
 *   classifier@production    a model alias
 *   ./file.h5, /abs/file.h5  a plain file (anything with a '/' or ending in .h5/.kiln)
 */
enum kiln_ref_kind { KILN_REF_FILE, KILN_REF_DATASET, KILN_REF_RUN, KILN_REF_MODEL };

struct kiln_ref {
    enum kiln_ref_kind kind;
    int64_t id;             /* dataset_versions.id, runs.id or model_versions.id */
    char name[256];         /* dataset or model name */
    int64_t version;        /* dataset or model version number */
    char sha256[65];        /* the object (file) hash, "" for a run without a model */
    char content_sha256[65];/* datasets: the content hash (version id) */
    char path[4096];        /* a readable file: the object (verified) or the plain file */
};

/* Resolves text to a reference. ws may be NULL: then only plain files
 * resolve. Unknown names, ambiguous prefixes (listing the candidates) and
 * missing or corrupted objects are errors naming the reference. want is the
 * kind the caller needs (KILN_REF_FILE accepts any kind that has a file). */
enum kiln_status kiln_ref_resolve(struct kiln_store *ws, const char *text,
                                  enum kiln_ref_kind want, struct kiln_ref *out);

/* --- audit log ---------------------------------------------------------------------- */

/* Appends an entry (time, user, host, action, subject, detail, the previous
 * entry's SHA-256, its own SHA-256) inside the caller's transaction when one
 * is open, else in its own. */
enum kiln_status kiln_audit_append(struct kiln_store *ws, const char *action, const char *subject,
                                   const char *detail);
/* Recomputes the chain; KILN_ERR_FORMAT naming the first entry that was
 * edited, deleted or inserted. */
enum kiln_status kiln_audit_verify(struct kiln_store *ws, int64_t *entries);
enum kiln_status kiln_audit_print(struct kiln_store *ws, int64_t limit, bool json, FILE *out);

/* --- maintenance --------------------------------------------------------------------- */

struct kiln_gc_report { int64_t objects_removed, bytes_removed, tmp_removed; };
/* Removes objects no record references and temp files older than an hour. */
enum kiln_status kiln_store_gc(struct kiln_store *ws, bool dry_run, struct kiln_gc_report *out);
/* Checks every object's hash, every reference from the database to an
 * object, and the audit chain; prints each problem to out and returns
 * KILN_ERR_FORMAT when there is any. */
enum kiln_status kiln_store_fsck(struct kiln_store *ws, FILE *out, int64_t *problems);

/* The current user and host, for records and the audit log. */
const char *kiln_store_user(void);
const char *kiln_store_host(void);

#endif
