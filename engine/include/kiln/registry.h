/* kiln/registry.h: the model registry: numbered versions of named models,
 * aliases that move (with their history), tags, archiving; lineage and model
 * cards. Everything lives in the workspace store (kiln/store.h).
 *
 *   struct kiln_register_opts o = {.source = "run:42", .name = "classifier"};
 *   struct kiln_model_version v;
 *   kiln_model_register(ws, &o, &v);                    // v.version: 1, 2, 3 ... never reused
 *   kiln_model_alias_set(ws, "classifier@3", "production", NULL);
 *   kiln_model_lineage_print(ws, "classifier@production", false, stdout);
 *   kiln_model_card(ws, "classifier@production", KILN_CARD_HTML, "card.html");
 *
 * A model reference here is NAME (the newest version that is not archived),
 * NAME@N (version N) or NAME@ALIAS. Unknown names, versions and aliases are
 * KILN_ERR_NOT_FOUND; malformed names and refused changes are KILN_ERR_USAGE.
 * Every change appends an audit entry (model.register, model.alias,
 * model.tag, model.archive, model.unarchive) in the same transaction.
 */
#ifndef KILN_REGISTRY_H
#define KILN_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/card.h"
#include "kiln/status.h"

struct kiln_store;

/* One row of model_versions, with its model's name. */
struct kiln_model_version {
    int64_t id;              /* model_versions.id */
    int64_t model_id;
    char name[256];
    int64_t version;         /* 1, 2, ... per model */
    char sha256[65];         /* the model file (an object in the store) */
    int64_t run_id;          /* 0 when not known */
    int64_t checkpoint_id;   /* 0 when not known */
    bool archived;
    char created[32];        /* ISO 8601, UTC */
};

struct kiln_register_opts {
    const char *source;          /* "run:N" (its final model) or a model file path */
    const char *name;            /* letters, digits, '_', '-', '.'; starts with a letter or digit */
    const char *description;     /* NULL: none */
    const char *const *tags;     /* "key=value" each */
    int n_tags;
};

/* Registers a new version of o->name (creating the model when new). The
 * number is the model's counter plus one, taken inside one BEGIN IMMEDIATE
 * transaction, so concurrent registrations get distinct numbers and a number
 * is never given twice, even after its version is archived. A run without a
 * final model is refused; a file is checked to be a loadable kiln model and
 * stored as an object (kind "model"); when its bytes are a recorded
 * checkpoint, the version is linked to that checkpoint and run. out may be
 * NULL. */
enum kiln_status kiln_model_register(struct kiln_store *ws, const struct kiln_register_opts *o,
                                     struct kiln_model_version *out);

/* Resolves a model reference (above) without reading the object. */
enum kiln_status kiln_model_version_find(struct kiln_store *ws, const char *ref,
                                         struct kiln_model_version *out);

/* Points alias at the version ref names (moving it if it pointed elsewhere)
 * and records who, when and from which version in alias_history. An
 * archived version cannot be aliased. *from_version (may be NULL) receives
 * the version it pointed at before, 0 when new. */
enum kiln_status kiln_model_alias_set(struct kiln_store *ws, const char *ref, const char *alias,
                                      int64_t *from_version);
/* Deletes alias of model name (name may carry an "@..." suffix, ignored);
 * alias_history records it with to_version 0. */
enum kiln_status kiln_model_alias_delete(struct kiln_store *ws, const char *name,
                                         const char *alias);

/* Sets "key=value" tags (replacing a key's value) / deletes keys on a
 * version. Deleting a key the version lacks is KILN_ERR_NOT_FOUND. */
enum kiln_status kiln_model_tag_set(struct kiln_store *ws, const char *ref,
                                    const char *const *kv, int n);
enum kiln_status kiln_model_tag_delete(struct kiln_store *ws, const char *ref,
                                       const char *const *keys, int n);

/* Archives a version (it is no longer any reference's "latest"; its number
 * stays taken) or, with undo, brings it back. Refused while an alias points
 * at it. */
enum kiln_status kiln_model_archive(struct kiln_store *ws, const char *ref, bool undo);

/* Prints every model (latest version, version count, aliases) or, when name
 * is not NULL, every version of that model (created, run, dataset, key
 * metrics, tags, aliases, archived); json: one JSON document. */
enum kiln_status kiln_model_list(struct kiln_store *ws, const char *name, bool json, FILE *out);
/* Prints everything about one version: description, object hash, run,
 * checkpoint, dataset version, metrics, tags, aliases, alias history. */
enum kiln_status kiln_model_show(struct kiln_store *ws, const char *ref, bool json, FILE *out);

/* The lineage of a version: dataset version(s) (the run's, then its parents
 * with their transforms), run (config hash, git commit, engine version,
 * status), checkpoint, model version, aliases, each with its hash.
 * _json returns a new JSON string (caller frees; docs/CLI.md shows its
 * shape); _print writes an indented chain, or the JSON. */
enum kiln_status kiln_model_lineage_json(struct kiln_store *ws, const char *ref, char **out);
enum kiln_status kiln_model_lineage_print(struct kiln_store *ws, const char *ref, bool json,
                                          FILE *out);

/* Writes the model card of a version to path: the registry's facts, the
 * training config and its card: section, the dataset and its statistics,
 * per-epoch curves, lineage, and an evaluation of the model run now on the
 * CPU on its dataset's test split (else val, else train). */
enum kiln_status kiln_model_card(struct kiln_store *ws, const char *ref,
                                 enum kiln_card_format fmt, const char *path);

#endif
