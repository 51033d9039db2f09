/* kiln/package.h: model packages (.kiln): one tar file holding a registered
 * model version with everything needed to deploy and check it, optionally
 * signed with Ed25519 (docs/FORMATS.md, "Package (.kiln)").
 *
 *   kiln_keygen("release");                            // release.key, release.pub
 *   struct kiln_package_opts o = {.ref = "clf@production", .out = "clf.kiln",
 *                                 .key_path = "release.key", .golden_rows = 8};
 *   kiln_model_package(ws, &o, &info);
 *
 *   struct kiln_package *p;
 *   if (kiln_package_open("clf.kiln", "release.pub", true, &p) == KILN_OK) {
 *       // p->model_path: a verified model file, p->golden_max_diff ...
 *       kiln_package_close(p);
 *   }
 *
 * Opening never extracts to a path taken from the archive and never parses a
 * member before its size and SHA-256 match the manifest.
 */
#ifndef KILN_PACKAGE_H
#define KILN_PACKAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/status.h"

struct kiln_store;

/* Limits on what kiln_package_open reads. */
#define KILN_PACKAGE_MAX_MEMBERS 16
#define KILN_PACKAGE_MAX_MANIFEST (1 << 20)                 /* 1 MiB */
#define KILN_PACKAGE_MAX_MEMBER ((int64_t)4 << 30)         /* 4 GiB */
#define KILN_PACKAGE_MAX_TOTAL ((int64_t)8 << 30)          /* 8 GiB */
#define KILN_PACKAGE_MAX_GOLDEN 1024                        /* golden rows */
#define KILN_PACKAGE_GOLDEN_TOL 1e-5                        /* absolute */
#define KILN_PACKAGE_SIG_BYTES 64                           /* raw Ed25519 */

/* Writes NAME.key (Ed25519 private key, PEM, mode 0600) and NAME.pub (PEM).
 * Refuses (KILN_ERR_USAGE) to overwrite either. */
enum kiln_status kiln_keygen(const char *name);

struct kiln_package_opts {
    const char *ref;         /* model reference: NAME, NAME@N, NAME@ALIAS */
    const char *out;         /* the .kiln file to write (atomically) */
    const char *key_path;    /* Ed25519 private key (PEM) to sign with, or NULL */
    int golden_rows;         /* golden input rows, 1..KILN_PACKAGE_MAX_GOLDEN (0: 8) */
};

struct kiln_package_info {
    char name[256];
    int64_t version;
    char sha256[65];         /* the package file's bytes (its object in the store) */
    int64_t size;
    bool is_signed;
    int golden_rows;
};

/* Packages a model version of ws into o->out (one tar: manifest.yaml,
 * [manifest.sig], model.h5, card.md, stats.json, golden.h5), stores it as an
 * object of kind "package", records it in the packages table and appends a
 * "model.package" audit entry. info may be NULL. */
enum kiln_status kiln_model_package(struct kiln_store *ws, const struct kiln_package_opts *o,
                                    struct kiln_package_info *info);

/* A verified package: its members extracted to a private folder, and the
 * manifest's fields. Everything is owned by the package. */
struct kiln_package {
    char dir[4096];            /* private temp folder (mkdtemp) holding the members */
    char manifest_path[4200], model_path[4200], card_path[4200], stats_path[4200],
        golden_path[4200];
    char sha256[65];           /* the package file's bytes */
    char *manifest;            /* manifest.yaml's bytes, NUL-terminated */
    char name[256];
    int64_t version;
    char created[64];
    char engine_version[64], engine_commit[64];
    char dataset_name[256], dataset_sha256[65], checkpoint_sha256[65], model_sha256[65];
    int64_t dataset_version, run_id;
    int64_t n_features;        /* input: [n_features], float32 */
    int64_t n_outputs;         /* output: [n_outputs] */
    int n_classes;
    char **classes;            /* n_classes names (classifiers) */
    int n_metrics;
    char **metric_names;
    double *metric_values;     /* NaN for a metric recorded as null */
    char *transforms_json;     /* NULL when the model takes raw features */
    int n_members;
    char *members[KILN_PACKAGE_MAX_MEMBERS]; /* names extracted into dir */
    bool is_signed;            /* manifest.sig present */
    bool signature_verified;   /* ... and checked against the given key */
    int64_t golden_rows;
    double golden_max_diff;    /* largest |output - golden| seen */
};

/* Opens and verifies the package at path, in this order: archive structure
 * (regular files only, no links, no absolute or '..' paths, no duplicates,
 * the size limits above), the signature (with pubkey_path when not NULL;
 * require_signature without a key is KILN_ERR_USAGE, without a signature
 * KILN_ERR_INTEGRITY), the manifest (libyaml), every member against the
 * manifest (nothing missing or extra, sizes and SHA-256), and finally the
 * golden check (model.h5 run on golden.h5's inputs within
 * KILN_PACKAGE_GOLDEN_TOL). KILN_ERR_FORMAT for a malformed archive or
 * manifest, KILN_ERR_INTEGRITY for hash, signature and golden failures.
 * Caller closes *out. */
enum kiln_status kiln_package_open(const char *path, const char *pubkey_path,
                                   bool require_signature, struct kiln_package **out);
/* Removes the extracted members and their folder and frees p; NULL is fine. */
void kiln_package_close(struct kiln_package *p);

#endif
