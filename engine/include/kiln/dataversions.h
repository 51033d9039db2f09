/* kiln/dataversions.h: dataset versions in the workspace: registering an
 * imported or transformed dataset, and reading the versions back (list,
 * show, log, diff, stats, export).
 *
 *   struct kiln_dataset *ds;
 *   kiln_data_import(&opt, &ds);
 *   struct kiln_dataversion v;
 *   if (kiln_dataversion_register(ws, ds, NULL, &v) == KILN_OK)
 *       printf("%s v%lld (%.12s) %s\n", v.name, (long long)v.version, v.content_sha256,
 *              v.created_new ? "registered" : "unchanged");
 *   kiln_dataset_free(ds);
 *
 * A version is identified by the content hash of its arrays (X and y of
 * every split, kiln_dataset_hash): the same content registered twice under
 * one name is one version, stored once. Its file is a plain kiln dataset file
 * kept as a content-addressed object; its record (tables datasets and
 * dataset_versions, docs/FORMATS.md "Dataset versions") holds the lineage
 * (parent), source, transforms, privacy record and per-feature statistics.
 * Printing functions write to the FILE they are given; with json they write
 * one JSON document.
 */
#ifndef KILN_DATAVERSIONS_H
#define KILN_DATAVERSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/data.h"
#include "kiln/status.h"
#include "kiln/store.h"

struct kiln_dataversion_options {
    const char *action;          /* audit action; NULL: "data.import" */
    int64_t parent_id;           /* dataset_versions.id of the parent; 0: the latest
                                    version of ds->name (none for a first version) */
    const char *transforms_json; /* the fitted steps this version applied to its parent
                                    (kiln_transform_list_to_json), or NULL */
    const char *privacy_json;    /* the privacy record (kiln_dataversion_privacy_json), or NULL */
};

/* One registered version, as register returns it. */
struct kiln_dataversion {
    int64_t id;                  /* dataset_versions.id */
    char name[256];
    int64_t version;             /* 1, 2, ... per name */
    char content_sha256[65];     /* the version id */
    char object_sha256[65];      /* the dataset file's bytes */
    int64_t parent_id;           /* 0 when none */
    char parent_name[256];
    int64_t parent_version;
    char parent_sha256[65];      /* the parent's content hash */
    bool created_new;            /* false: the same content was registered already */
};

/* Registers ds as a version of ds->name in one transaction: when a version
 * of that name has the same content hash, returns it (created_new false,
 * nothing written); otherwise writes ds (its parent attribute set to the
 * parent's content hash) into the object store, computes its statistics,
 * and records version max + 1 with its parent, rows per split, source,
 * transforms, privacy, statistics, time and user, and an audit entry
 * (subject "NAME@vN (sha12)"). ds->sha256 must be ds's content hash or empty
 * (then it is computed). Names are 1-128 characters of letters, digits, '.',
 * '_' and '-', starting with a letter or digit and not ending like a file
 * (.h5, .hdf5, .csv, .kiln): KILN_ERR_USAGE otherwise. opt may be NULL. */
enum kiln_status kiln_dataversion_register(struct kiln_store *ws, struct kiln_dataset *ds,
                                           const struct kiln_dataversion_options *opt,
                                           struct kiln_dataversion *out);

/* Makes a child version: loads the dataset version src (a reference),
 * applies the transform specs in order (kiln_transform_parse syntax:
 * "standardize", "onehot=COL", ...), fitted on its train split, and
 * registers the result as a version of as_name whose parent is src. The
 * child's file carries the whole chain of transforms from untransformed
 * data (attribute `transforms`), its record the steps of this version. */
enum kiln_status kiln_dataversion_transform(struct kiln_store *ws, const char *src,
                                            const char *const *specs, int n_specs,
                                            const char *as_name, struct kiln_dataversion *out);

/* --- privacy ---------------------------------------------------------------------- */

/* The salt for hashing identifier columns of dataset name: read from
 * .kiln/salts/NAME, or made (32 random bytes from /dev/urandom as 64 hex
 * digits) and stored there, mode 0600, when absent, so every version of a
 * dataset hashes an identifier alike. salt gets the text (len >= 65). */
enum kiln_status kiln_dataversion_salt(struct kiln_store *ws, const char *name, char *salt,
                                       size_t len);
/* Reads a salt from a file the user keeps (--salt-file): its text without a
 * trailing line end; empty files, NUL bytes and more than 4096 bytes are
 * refused (KILN_ERR_USAGE naming the file). */
enum kiln_status kiln_salt_read_file(const char *path, char *salt, size_t len);
/* The privacy record stored with a version:
 *   {"dropped":["email"],"hashed":["user_id"],"salt":"stored in .kiln/salts/NAME"}
 * from the comma-separated lists (either may be NULL) and a description of
 * where the salt lives (never the salt). NULL when both lists are NULL or
 * out of memory; the caller frees. */
char *kiln_dataversion_privacy_json(const char *drop_columns, const char *hash_columns,
                                    const char *salt_where);

/* --- reading ---------------------------------------------------------------------- */

/* Everything dataset_versions holds about one version (strings caller-owned,
 * freed by kiln_dataversion_record_free; NULL columns stay NULL). */
struct kiln_dataversion_record {
    struct kiln_dataversion v;   /* created_new is false */
    char *source, *transforms, *privacy, *stats, *created, *created_by;
    int64_t rows[KILN_SPLIT_COUNT]; /* -1 when the split is absent */
    int64_t n_features;
    int n_classes;
};
enum kiln_status kiln_dataversion_get(struct kiln_store *ws, int64_t id,
                                      struct kiln_dataversion_record *out);
void kiln_dataversion_record_free(struct kiln_dataversion_record *r); /* the fields, not r */

/* Every dataset: name, versions, latest version, its hash prefix, rows, created. */
enum kiln_status kiln_dataversions_list(struct kiln_store *ws, bool json, FILE *out);
/* One dataset version or plain file (ref from kiln_ref_resolve): the file's
 * description (kiln_dataset_describe) and, for a version, its record: parent,
 * source, transforms, privacy, splits, classes, a statistics summary. ws may
 * be NULL for a plain file. */
enum kiln_status kiln_dataversion_show(struct kiln_store *ws, const struct kiln_ref *ref,
                                       bool json, FILE *out);
/* A dataset's versions, newest first, with parents and what changed. */
enum kiln_status kiln_dataversion_log(struct kiln_store *ws, const char *name, bool json,
                                      FILE *out);
/* Compares two versions: schema (feature names, shapes, dtypes, classes),
 * rows per split, per-feature statistics of split (NULL: train) side by
 * side with their deltas, flagging features whose mean moved by more than
 * 0.1 of version a's std (or of b's when a's is 0). Text output lists the
 * changed features only unless all. */
enum kiln_status kiln_dataversion_diff(struct kiln_store *ws, const struct kiln_ref *a,
                                       const struct kiln_ref *b, const char *split, bool all,
                                       bool json, FILE *out);
/* The stored statistics (kiln_dataset_stats_print, at most max_features rows
 * per split, 0 = all), of one split or all (split NULL); json prints the
 * stored JSON (of that split only when split is given). */
enum kiln_status kiln_dataversion_stats(struct kiln_store *ws, const struct kiln_ref *ref,
                                        const char *split, int max_features, bool json,
                                        FILE *out);
/* Writes the dataset file ref names (a version or a plain file) to path
 * atomically: format "csv" (one split, default train: a header of feature
 * names ("f0".. when unnamed) and "label", classes written as their names,
 * float32 with 9 significant digits, uint8 as stored) or "h5" (a byte copy of
 * the kiln dataset file). NULL format: from path's ending (.csv, else h5). */
enum kiln_status kiln_dataversion_export(const struct kiln_ref *ref, const char *path,
                                         const char *format, const char *split);

#endif
