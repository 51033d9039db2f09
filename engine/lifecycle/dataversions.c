/* engine/lifecycle/dataversions.c: dataset versions in the workspace
 * (kiln/dataversions.h): registering imports and transforms, salts for
 * hashed identifier columns, and list/show/log/diff/stats/export.
 *
 * Tables datasets and dataset_versions are store.c's schema (docs/FORMATS.md,
 * "Dataset versions"). */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "kiln/dataversions.h"
#include "kiln/stats.h"
#include "kiln/transform.h"
#include "store-internal.h"

#define DV_NAME_MAX 128
/* A mean that moved by more than this many stds is flagged by diff. */
#define DV_DIFF_FLAG_STD 0.1
/* Features whose statistics `show` prints per split. */
#define DV_SHOW_FEATURES 8

/* --- small helpers ------------------------------------------------------------------ */

static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : NULL;
}

static enum kiln_status dup_col(sqlite3_stmt *s, int i, char **out)
{
    return str_dup(col_text(s, i), out);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static enum kiln_status dv_check_name(const char *name)
{
    if (!name || !*name) return kiln_errorf(KILN_ERR_USAGE, "a dataset version needs a name");
    size_t n = strlen(name);
    bool ok = n <= DV_NAME_MAX && ((name[0] >= 'a' && name[0] <= 'z') ||
                                   (name[0] >= 'A' && name[0] <= 'Z') ||
                                   (name[0] >= '0' && name[0] <= '9'));
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    }
    if (!ok)
        return kiln_errorf(KILN_ERR_USAGE,
                           "dataset name '%s': use 1-%d letters, digits, '.', '_' or '-', "
                           "starting with a letter or digit (names appear in references "
                           "such as NAME@v2 and in file names)",
                           name, DV_NAME_MAX);
    static const char *const file_like[] = {".h5", ".hdf5", ".csv", ".kiln"};
    for (size_t i = 0; i < sizeof file_like / sizeof file_like[0]; i++)
        if (ends_with(name, file_like[i]))
            return kiln_errorf(KILN_ERR_USAGE,
                               "dataset name '%s' ends like a file name (%s), so references "
                               "to it would be read as a path; choose another name",
                               name, file_like[i]);
    return KILN_OK;
}

/* JSON text of a stored column as a value (null when absent or unparsable). */
static json_t *json_from_text(const char *text)
{
    if (!text) return json_null();
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v ? v : json_string(text);
}

/* Prints a JSON document and a line end; KILN_ERR_IO when out fails. */
static enum kiln_status json_print(json_t *doc, FILE *out)
{
    if (!doc) return kiln_errorf(KILN_ERR_NOMEM, "out of memory building JSON");
    int rc = json_dumpf(doc, out, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(doc);
    fputc('\n', out);
    if (rc != 0 || ferror(out)) return kiln_errorf(KILN_ERR_IO, "cannot write the output");
    return KILN_OK;
}

static enum kiln_status out_check(FILE *out)
{
    return ferror(out) ? kiln_errorf(KILN_ERR_IO, "cannot write the output") : KILN_OK;
}


/* --- records ------------------------------------------------------------------------ */

static const char RECORD_SQL[] =
    "SELECT v.id, d.name, v.version, v.content_sha256, v.object_sha256, v.parent_id, pd.name, "
    "pv.version, pv.content_sha256, v.source, v.transforms, v.privacy, v.stats, v.created, "
    "v.created_by, v.rows_train, v.rows_val, v.rows_test, v.n_features, v.n_classes "
    "FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id "
    "LEFT JOIN dataset_versions pv ON pv.id = v.parent_id "
    "LEFT JOIN datasets pd ON pd.id = pv.dataset_id WHERE v.id = ?";

void kiln_dataversion_record_free(struct kiln_dataversion_record *r)
{
    if (!r) return;
    free(r->source);
    free(r->transforms);
    free(r->privacy);
    free(r->stats);
    free(r->created);
    free(r->created_by);
    memset(r, 0, sizeof *r);
}

enum kiln_status kiln_dataversion_get(struct kiln_store *ws, int64_t id,
                                      struct kiln_dataversion_record *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, RECORD_SQL, &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        st = rc == SQLITE_DONE
                 ? kiln_errorf(KILN_ERR_NOT_FOUND, "no dataset version with id %lld", (long long)id)
                 : store_sql_error(ws, "reading a dataset version");
        sqlite3_finalize(s);
        return st;
    }
    struct kiln_dataversion *v = &out->v;
    v->id = sqlite3_column_int64(s, 0);
    snprintf(v->name, sizeof v->name, "%s", col_text(s, 1) ? col_text(s, 1) : "");
    v->version = sqlite3_column_int64(s, 2);
    snprintf(v->content_sha256, sizeof v->content_sha256, "%s", col_text(s, 3) ? col_text(s, 3) : "");
    snprintf(v->object_sha256, sizeof v->object_sha256, "%s", col_text(s, 4) ? col_text(s, 4) : "");
    v->parent_id = sqlite3_column_int64(s, 5);
    if (v->parent_id) {
        snprintf(v->parent_name, sizeof v->parent_name, "%s", col_text(s, 6) ? col_text(s, 6) : "");
        v->parent_version = sqlite3_column_int64(s, 7);
        snprintf(v->parent_sha256, sizeof v->parent_sha256, "%s",
                 col_text(s, 8) ? col_text(s, 8) : "");
    }
    st = dup_col(s, 9, &out->source);
    if (st == KILN_OK) st = dup_col(s, 10, &out->transforms);
    if (st == KILN_OK) st = dup_col(s, 11, &out->privacy);
    if (st == KILN_OK) st = dup_col(s, 12, &out->stats);
    if (st == KILN_OK) st = dup_col(s, 13, &out->created);
    if (st == KILN_OK) st = dup_col(s, 14, &out->created_by);
    for (int i = 0; i < KILN_SPLIT_COUNT; i++)
        out->rows[i] = sqlite3_column_type(s, 15 + i) == SQLITE_NULL ? -1
                                                                     : sqlite3_column_int64(s, 15 + i);
    out->n_features = sqlite3_column_int64(s, 18);
    out->n_classes = sqlite3_column_int(s, 19);
    sqlite3_finalize(s);
    if (st != KILN_OK) kiln_dataversion_record_free(out);
    return st;
}

/* --- register ----------------------------------------------------------------------- */

/* The statistics (and their JSON) are computed on a second thread while the
 * dataset file is written and hashed, which takes about as long
 * (benchmarks/import_store.sh). */
struct stats_job {
    const struct kiln_dataset *ds;
    struct kiln_dataset_stats *stats;
    char *json;
    enum kiln_status st;
    char err[1024];
};

static void *stats_job_run(void *arg)
{
    struct stats_job *j = arg;
    j->st = kiln_dataset_stats_compute(j->ds, &j->stats);
    if (j->st == KILN_OK) {
        j->json = kiln_dataset_stats_to_json(j->stats);
        if (!j->json) j->st = kiln_errorf(KILN_ERR_NOMEM, "statistics: out of memory");
    }
    if (j->st != KILN_OK) snprintf(j->err, sizeof j->err, "%s", kiln_last_error());
    return NULL;
}

/* Looks up a dataset's id by name (0 when none). */
static enum kiln_status dataset_id(struct kiln_store *ws, const char *name, int64_t *id)
{
    *id = 0;
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, "SELECT id FROM datasets WHERE name = ?", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(s, 0);
    else if (rc != SQLITE_DONE) st = store_sql_error(ws, "looking up a dataset");
    sqlite3_finalize(s);
    return st;
}

/* One int64 from a query with up to two bound values (0 when no row). */
static enum kiln_status query_i64(struct kiln_store *ws, const char *sql, int64_t a,
                                  const char *b, int64_t *out)
{
    *out = 0;
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, sql, &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, a);
    if (b) sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(s, 0);
    else if (rc != SQLITE_DONE) st = store_sql_error(ws, sql);
    sqlite3_finalize(s);
    return st;
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
    if (t) sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
    else sqlite3_bind_null(s, i);
}

static enum kiln_status insert_version(struct kiln_store *ws, int64_t ds_id, int64_t version,
                                       const struct kiln_dataset *ds, const char *object_sha,
                                       int64_t parent_id, const struct kiln_dataversion_options *opt,
                                       const char *stats_json, const char *now, int64_t *id)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(
        ws,
        "INSERT INTO dataset_versions(dataset_id, version, content_sha256, object_sha256, "
        "parent_id, source, transforms, privacy, stats, rows_train, rows_val, rows_test, "
        "n_features, n_classes, created, created_by) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, ds_id);
    sqlite3_bind_int64(s, 2, version);
    sqlite3_bind_text(s, 3, ds->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, object_sha, -1, SQLITE_STATIC);
    if (parent_id) sqlite3_bind_int64(s, 5, parent_id);
    else sqlite3_bind_null(s, 5);
    sqlite3_bind_text(s, 6, ds->source ? ds->source : "", -1, SQLITE_STATIC);
    bind_text_or_null(s, 7, opt->transforms_json);
    bind_text_or_null(s, 8, opt->privacy_json);
    bind_text_or_null(s, 9, stats_json);
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        if (ds->splits[i]) sqlite3_bind_int64(s, 10 + i, ds->splits[i]->n);
        else sqlite3_bind_null(s, 10 + i);
    }
    sqlite3_bind_int64(s, 13, ds->splits[KILN_SPLIT_TRAIN]->feat_size);
    sqlite3_bind_int(s, 14, ds->n_classes);
    sqlite3_bind_text(s, 15, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 16, kiln_store_user(), -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(ws, "recording a dataset version");
    else *id = sqlite3_last_insert_rowid(ws->db);
    sqlite3_finalize(s);
    return st;
}

/* Fills out from the stored record of version id. */
static enum kiln_status fill_from_record(struct kiln_store *ws, int64_t id,
                                         struct kiln_dataversion *out)
{
    struct kiln_dataversion_record r;
    enum kiln_status st = kiln_dataversion_get(ws, id, &r);
    if (st != KILN_OK) return st;
    *out = r.v;
    kiln_dataversion_record_free(&r);
    return KILN_OK;
}

enum kiln_status kiln_dataversion_register(struct kiln_store *ws, struct kiln_dataset *ds,
                                           const struct kiln_dataversion_options *opt,
                                           struct kiln_dataversion *out)
{
    static const struct kiln_dataversion_options no_options = {0};
    if (!opt) opt = &no_options;
    memset(out, 0, sizeof *out);
    enum kiln_status st = dv_check_name(ds->name);
    if (st != KILN_OK) return st;
    if (!ds->splits[KILN_SPLIT_TRAIN])
        return kiln_errorf(KILN_ERR_USAGE, "dataset %s has no train split", ds->name);
    if (!ds->sha256[0]) {
        st = kiln_dataset_hash(ds, ds->sha256);
        if (st != KILN_OK) return st;
    }
    struct stats_job job = {.ds = ds};
    pthread_t thread;
    bool job_running = false;
    char tmp[4400] = "", now[32], object_sha[65];
    bool tmp_made = false;
    int64_t ds_id = 0, existing = 0, version = 0, parent_id = opt->parent_id, id = 0;
    st = kiln_store_begin(ws);
    if (st != KILN_OK) return st;
    st = dataset_id(ws, ds->name, &ds_id);
    if (st == KILN_OK && ds_id)
        st = query_i64(ws, "SELECT id FROM dataset_versions WHERE dataset_id = ? AND "
                           "content_sha256 = ?",
                       ds_id, ds->sha256, &existing);
    if (st != KILN_OK) goto cleanup;
    if (existing) {
        /* The same content under this name: that version, nothing written. */
        st = fill_from_record(ws, existing, out);
        if (st == KILN_OK) st = kiln_store_commit(ws);
        else kiln_store_rollback(ws);
        return st;
    }
    if (ds_id) {
        st = query_i64(ws, "SELECT MAX(version) FROM dataset_versions WHERE dataset_id = ?",
                       ds_id, NULL, &version);
        if (st == KILN_OK && !parent_id)
            st = query_i64(ws, "SELECT id FROM dataset_versions WHERE dataset_id = ? "
                               "ORDER BY version DESC LIMIT 1",
                           ds_id, NULL, &parent_id);
        if (st != KILN_OK) goto cleanup;
    }
    version++;
    if (parent_id) {
        struct kiln_dataversion parent;
        st = fill_from_record(ws, parent_id, &parent);
        if (st != KILN_OK) goto cleanup;
        out->parent_id = parent_id;
        snprintf(out->parent_name, sizeof out->parent_name, "%s", parent.name);
        out->parent_version = parent.version;
        memcpy(out->parent_sha256, parent.content_sha256, sizeof out->parent_sha256);
        free(ds->parent);
        ds->parent = NULL;
        st = str_dup(parent.content_sha256, &ds->parent);
    } else {
        free(ds->parent);
        ds->parent = NULL;
    }
    time_iso8601(now);
    if (st == KILN_OK && (!ds->created || !ds->created[0])) {
        free(ds->created);
        ds->created = NULL;
        st = str_dup(now, &ds->created);
    }
    if (st != KILN_OK) goto cleanup;
    /* From here until the join, the stats thread reads ds's arrays; the
     * save below reads them too and writes nothing the thread reads. */
    job_running = pthread_create(&thread, NULL, stats_job_run, &job) == 0;
    if (!job_running) stats_job_run(&job);
    st = kiln_store_tmp_path(ws, ".h5", tmp, sizeof tmp);
    if (st == KILN_OK) {
        st = kiln_dataset_save(ds, tmp);
        tmp_made = st == KILN_OK;
    }
    if (st == KILN_OK) {
        tmp_made = false; /* adopt moves or removes it */
        st = kiln_store_adopt_tmp(ws, tmp, "dataset", object_sha, NULL);
    }
    if (job_running) pthread_join(thread, NULL);
    job_running = false;
    if (st != KILN_OK) goto cleanup;
    if (job.st != KILN_OK) {
        st = kiln_errorf(job.st, "%s", job.err);
        goto cleanup;
    }
    if (!ds_id) {
        sqlite3_stmt *s;
        st = store_prepare(ws, "INSERT INTO datasets(name, created) VALUES(?, ?)", &s);
        if (st != KILN_OK) goto cleanup;
        sqlite3_bind_text(s, 1, ds->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, now, -1, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(ws, "recording a dataset");
        else ds_id = sqlite3_last_insert_rowid(ws->db);
        sqlite3_finalize(s);
        if (st != KILN_OK) goto cleanup;
    }
    st = insert_version(ws, ds_id, version, ds, object_sha, parent_id, opt, job.json, now, &id);
    if (st != KILN_OK) goto cleanup;
    char subject[400], detail[600];
    snprintf(subject, sizeof subject, "%s@v%lld (%.12s)", ds->name, (long long)version,
             ds->sha256);
    if (parent_id)
        snprintf(detail, sizeof detail, "object %.12s, parent %s@v%lld (%.12s)", object_sha,
                 out->parent_name, (long long)out->parent_version, out->parent_sha256);
    else
        snprintf(detail, sizeof detail, "object %.12s", object_sha);
    st = kiln_audit_append(ws, opt->action ? opt->action : "data.import", subject, detail);
    if (st != KILN_OK) goto cleanup;
    st = kiln_store_commit(ws);
    if (st != KILN_OK) goto cleanup;
    out->id = id;
    snprintf(out->name, sizeof out->name, "%s", ds->name);
    out->version = version;
    memcpy(out->content_sha256, ds->sha256, sizeof out->content_sha256);
    memcpy(out->object_sha256, object_sha, sizeof out->object_sha256);
    out->created_new = true;
cleanup:
    if (job_running) pthread_join(thread, NULL);
    if (tmp_made) unlink(tmp);
    if (st != KILN_OK) {
        kiln_store_rollback(ws);
        kiln_error_context(st, "registering dataset %s", ds->name);
    }
    kiln_dataset_stats_free(job.stats);
    free(job.json);
    return st;
}

/* --- transforms --------------------------------------------------------------------- */

/* The chain a child's file carries: the parent's chain, then this version's
 * steps. Checked as a whole, so that a model never stores a broken chain. */
static enum kiln_status chain_json(const char *parent_chain, const char *steps, char **out)
{
    *out = NULL;
    enum kiln_status st = KILN_OK;
    json_t *a = NULL, *b = NULL;
    struct kiln_transform_list *check = NULL;
    if (!parent_chain || !parent_chain[0]) {
        st = str_dup(steps, out);
        goto cleanup;
    }
    a = json_loads(parent_chain, 0, NULL);
    b = json_loads(steps, 0, NULL);
    json_t *aa = a ? json_object_get(a, "transforms") : NULL;
    json_t *ba = b ? json_object_get(b, "transforms") : NULL;
    if (!json_is_array(aa) || !json_is_array(ba)) {
        st = kiln_errorf(KILN_ERR_FORMAT, "the source's 'transforms' attribute is not a "
                         "transform list ({\"transforms\":[...]})");
        goto cleanup;
    }
    if (json_array_extend(aa, ba) != 0) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    *out = json_dumps(a, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!*out) st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
cleanup:
    if (st == KILN_OK) {
        st = kiln_transform_list_from_json(*out, &check);
        if (st != KILN_OK) {
            kiln_error_context(st, "the transforms of the new version do not chain");
            free(*out);
            *out = NULL;
        }
    }
    kiln_transform_list_free(check);
    json_decref(a);
    json_decref(b);
    return st;
}

enum kiln_status kiln_dataversion_transform(struct kiln_store *ws, const char *src,
                                            const char *const *specs, int n_specs,
                                            const char *as_name, struct kiln_dataversion *out)
{
    memset(out, 0, sizeof *out);
    struct kiln_ref ref;
    struct kiln_dataset *parent = NULL, *child = NULL;
    struct kiln_transform_list *tl = NULL;
    struct kiln_dataversion_record rec = {0};
    char *steps = NULL, *chain = NULL;
    enum kiln_status st = dv_check_name(as_name);
    if (st != KILN_OK) return st;
    if (n_specs < 1)
        return kiln_errorf(KILN_ERR_USAGE, "transform: give at least one transform "
                                           "(--standardize, --minmax, --onehot COL, ...)");
    for (int i = 0; i < n_specs && st == KILN_OK; i++) st = kiln_transform_parse(specs[i], &tl);
    if (st != KILN_OK) goto cleanup;
    st = kiln_ref_resolve(ws, src, KILN_REF_DATASET, &ref);
    if (st != KILN_OK) goto cleanup;
    if (ref.kind != KILN_REF_DATASET) {
        st = kiln_errorf(KILN_ERR_USAGE, "transform: %s is a plain file; import it into the "
                         "workspace first (kiln data import), so the child has a parent", src);
        goto cleanup;
    }
    st = kiln_dataset_load(ref.path, &parent);
    if (st == KILN_OK) st = kiln_transform_fit_apply(tl, parent, &child);
    if (st != KILN_OK) goto cleanup;
    steps = kiln_transform_list_to_json(tl);
    if (!steps) {
        st = kiln_errorf(KILN_ERR_NOMEM, "transform: out of memory");
        goto cleanup;
    }
    st = chain_json(parent->transforms, steps, &chain);
    if (st != KILN_OK) goto cleanup;
    free(child->name);
    child->name = NULL;
    free(child->transforms);
    child->transforms = chain;
    chain = NULL;
    st = str_dup(as_name, &child->name);
    /* Dropped and hashed identifiers stay out of every descendant, so the
     * privacy record carries over. */
    if (st == KILN_OK) st = kiln_dataversion_get(ws, ref.id, &rec);
    if (st != KILN_OK) goto cleanup;
    struct kiln_dataversion_options opt = {
        .action = "data.transform",
        .parent_id = ref.id,
        .transforms_json = steps,
        .privacy_json = rec.privacy,
    };
    st = kiln_dataversion_register(ws, child, &opt, out);
cleanup:
    kiln_dataversion_record_free(&rec);
    kiln_transform_list_free(tl);
    kiln_dataset_free(parent);
    kiln_dataset_free(child);
    free(steps);
    free(chain);
    return st;
}

/* --- privacy ------------------------------------------------------------------------ */

#define SALT_MAX 4096

enum kiln_status kiln_salt_read_file(const char *path, char *salt, size_t len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return kiln_errorf(KILN_ERR_IO, "salt file %s: %s", path, strerror(errno));
    char buf[SALT_MAX + 2];
    size_t n = fread(buf, 1, sizeof buf, f);
    bool err = ferror(f);
    fclose(f);
    if (err) return kiln_errorf(KILN_ERR_IO, "salt file %s: read error", path);
    if (n > SALT_MAX)
        return kiln_errorf(KILN_ERR_USAGE, "salt file %s: longer than %d bytes", path, SALT_MAX);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
    if (n == 0) return kiln_errorf(KILN_ERR_USAGE, "salt file %s is empty", path);
    if (memchr(buf, '\0', n))
        return kiln_errorf(KILN_ERR_USAGE, "salt file %s holds a NUL byte (use text, e.g. hex)",
                           path);
    if (n + 1 > len) return kiln_errorf(KILN_ERR_INTERNAL, "salt buffer too small");
    memcpy(salt, buf, n);
    salt[n] = '\0';
    return KILN_OK;
}

/* 32 random bytes as 64 hex digits. */
static enum kiln_status salt_make(char hex[65])
{
    unsigned char b[32];
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f) return kiln_errorf(KILN_ERR_IO, "/dev/urandom: %s", strerror(errno));
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n != sizeof b) return kiln_errorf(KILN_ERR_IO, "/dev/urandom: short read");
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", b[i]);
    return KILN_OK;
}

enum kiln_status kiln_dataversion_salt(struct kiln_store *ws, const char *name, char *salt,
                                       size_t len)
{
    enum kiln_status st = dv_check_name(name);
    if (st != KILN_OK) return st;
    char dir[4400], path[4600], tmp[4700];
    snprintf(dir, sizeof dir, "%s/salts", ws->dir);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return kiln_errorf(KILN_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    struct stat sb;
    if (stat(path, &sb) == 0) return kiln_salt_read_file(path, salt, len);
    char hex[65];
    st = salt_make(hex);
    if (st != KILN_OK) return st;
    /* Written whole under a temp name, then linked into place: link fails
     * when a concurrent import made the salt first, and then theirs wins. */
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld", dir, name, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return kiln_errorf(KILN_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    char line[66];
    snprintf(line, sizeof line, "%s\n", hex);
    bool ok = write(fd, line, 65) == 65 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        unlink(tmp);
        return kiln_errorf(KILN_ERR_IO, "cannot write %s (disk full?)", tmp);
    }
    int rc = link(tmp, path);
    int link_errno = errno;
    unlink(tmp);
    if (rc != 0 && link_errno != EEXIST)
        return kiln_errorf(KILN_ERR_IO, "cannot create %s: %s", path, strerror(link_errno));
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return kiln_salt_read_file(path, salt, len);
}

/* Appends the names of a comma-separated list to arr (empty names, which
 * the import refused already, are left out). */
static bool json_push_list(json_t *arr, const char *list)
{
    if (!list) return true;
    char **v;
    int n;
    if (str_split_list(list, NULL, &v, &n) != KILN_OK) return false;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) ok = json_array_append_new(arr, json_string(v[i])) == 0;
    strv_free(v, n);
    return ok;
}

char *kiln_dataversion_privacy_json(const char *drop_columns, const char *hash_columns,
                                    const char *salt_where)
{
    if (!drop_columns && !hash_columns) return NULL;
    json_t *o = json_object(), *d = json_array(), *h = json_array();
    char *text = NULL;
    if (o && d && h && json_push_list(d, drop_columns) && json_push_list(h, hash_columns) &&
        json_object_set(o, "dropped", d) == 0 && json_object_set(o, "hashed", h) == 0 &&
        json_object_set_new(o, "salt", hash_columns && salt_where ? json_string(salt_where)
                                                                  : json_null()) == 0)
        text = json_dumps(o, JSON_COMPACT);
    json_decref(d);
    json_decref(h);
    json_decref(o);
    return text;
}

/* --- list --------------------------------------------------------------------------- */

static int64_t rows_total(const int64_t rows[KILN_SPLIT_COUNT])
{
    int64_t t = 0;
    for (int i = 0; i < KILN_SPLIT_COUNT; i++)
        if (rows[i] > 0) t += rows[i];
    return t;
}

/* {"train": N, "test": M} of the splits present. */
static json_t *rows_json(const int64_t rows[KILN_SPLIT_COUNT])
{
    json_t *o = json_object();
    for (int i = 0; o && i < KILN_SPLIT_COUNT; i++)
        if (rows[i] >= 0) json_object_set_new(o, kiln_split_name(i), json_integer(rows[i]));
    return o;
}

enum kiln_status kiln_dataversions_list(struct kiln_store *ws, bool json, FILE *out)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(
        ws,
        "SELECT d.name, (SELECT COUNT(*) FROM dataset_versions c WHERE c.dataset_id = d.id), "
        "v.version, v.content_sha256, v.rows_train, v.rows_val, v.rows_test, v.created, v.id "
        "FROM datasets d JOIN dataset_versions v ON v.id = (SELECT id FROM dataset_versions l "
        "WHERE l.dataset_id = d.id ORDER BY l.version DESC LIMIT 1) ORDER BY d.name",
        &s);
    if (st != KILN_OK) return st;
    json_t *arr = json ? json_array() : NULL;
    int n = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t rows[KILN_SPLIT_COUNT];
        for (int i = 0; i < KILN_SPLIT_COUNT; i++)
            rows[i] = sqlite3_column_type(s, 4 + i) == SQLITE_NULL ? -1
                                                                   : sqlite3_column_int64(s, 4 + i);
        const char *name = col_text(s, 0), *sha = col_text(s, 3), *created = col_text(s, 7);
        if (json) {
            json_t *o = json_pack("{s:s, s:I, s:I, s:s, s:o, s:I, s:s}", "name", name, "versions",
                                  (json_int_t)sqlite3_column_int64(s, 1), "latest",
                                  (json_int_t)sqlite3_column_int64(s, 2), "content_sha256", sha,
                                  "rows", rows_json(rows), "rows_total",
                                  (json_int_t)rows_total(rows), "created", created);
            if (!o || json_array_append_new(arr, o) != 0) {
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
                break;
            }
        } else {
            if (n == 0)
                fprintf(out, "%-24s %8s %7s  %-12s %10s  %s\n", "NAME", "VERSIONS", "LATEST",
                        "SHA256", "ROWS", "CREATED");
            char latest[32];
            snprintf(latest, sizeof latest, "v%lld", (long long)sqlite3_column_int64(s, 2));
            fprintf(out, "%-24s %8lld %7s  %.12s %10lld  %s\n", name,
                    (long long)sqlite3_column_int64(s, 1), latest, sha,
                    (long long)rows_total(rows), created);
        }
        n++;
    }
    if (st == KILN_OK && rc != SQLITE_DONE) st = store_sql_error(ws, "listing datasets");
    sqlite3_finalize(s);
    if (st != KILN_OK) {
        json_decref(arr);
        return st;
    }
    if (json) return json_print(arr, out);
    if (n == 0)
        fprintf(out, "no datasets yet: `kiln data import NAME ...` inside the workspace "
                     "registers one\n");
    return out_check(out);
}

/* --- describing transforms and privacy ---------------------------------------------- */

/* "standardize, onehot(color), filter-labels(cat,dog)" from a transform
 * list's JSON ("" when none). */
static void transforms_brief(const char *text, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!text) return;
    json_t *doc = json_loads(text, 0, NULL);
    json_t *arr = doc ? json_object_get(doc, "transforms") : NULL;
    size_t i;
    json_t *step;
    size_t used = 0;
    json_array_foreach(arr, i, step) {
        const char *kind = json_string_value(json_object_get(step, "kind"));
        json_t *names = json_object_get(step, "names");
        int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", kind ? kind : "?");
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
        if (json_array_size(names) > 0) {
            size_t k;
            json_t *nm;
            json_array_foreach(names, k, nm) {
                w = snprintf(buf + used, len - used, "%s%s", k ? "," : "(",
                             json_string_value(nm) ? json_string_value(nm) : "?");
                if (w < 0 || (size_t)w >= len - used) break;
                used += (size_t)w;
            }
            if (used + 2 < len) buf[used++] = ')', buf[used] = '\0';
        }
    }
    json_decref(doc);
}

/* "dropped: email; hashed: user_id (salt stored in ...)" ("" when none). */
static void privacy_brief(const char *text, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!text) return;
    json_t *doc = json_loads(text, 0, NULL);
    if (!doc) {
        snprintf(buf, len, "%s", text);
        return;
    }
    size_t used = 0;
    const char *labels[2] = {"dropped", "hashed"};
    for (int l = 0; l < 2; l++) {
        json_t *arr = json_object_get(doc, labels[l]);
        if (json_array_size(arr) == 0) continue;
        int w = snprintf(buf + used, len - used, "%s%s: ", used ? "; " : "", labels[l]);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) {
            w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                         json_string_value(v) ? json_string_value(v) : "?");
            if (w < 0 || (size_t)w >= len - used) break;
            used += (size_t)w;
        }
    }
    const char *salt = json_string_value(json_object_get(doc, "salt"));
    if (salt && used < len) snprintf(buf + used, len - used, " (salt %s)", salt);
    json_decref(doc);
}

/* --- show --------------------------------------------------------------------------- */

static const char *dtype_name(enum kiln_dtype dt)
{
    return dt == KILN_DTYPE_U8 ? "uint8" : dt == KILN_DTYPE_I32 ? "int32" : "float32";
}

static json_t *strv_json(char *const *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) json_array_append_new(a, json_string(v[i] ? v[i] : ""));
    return a;
}

/* What a dataset file's header says, as JSON. */
static json_t *header_json(const struct kiln_dataset *ds)
{
    json_t *splits = json_array();
    for (int i = 0; splits && i < KILN_SPLIT_COUNT; i++) {
        const struct kiln_split *s = ds->splits[i];
        if (!s) continue;
        json_t *shape = json_array();
        for (int d = 0; shape && d < s->feat_ndim; d++)
            json_array_append_new(shape, json_integer(s->feat_shape[d]));
        json_t *hashed = strv_json(s->hashed_names, s->n_hashed);
        json_array_append_new(
            splits, json_pack("{s:s, s:I, s:s, s:o, s:s, s:I, s:o}", "split", kiln_split_name(i),
                              "rows", (json_int_t)s->n, "x_dtype", dtype_name(s->x_dtype),
                              "x_shape", shape, "y_dtype", dtype_name(s->y_dtype), "y_dim",
                              (json_int_t)s->y_dim, "hashed_columns", hashed));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "name",
                     ds->name ? ds->name : "", "sha256", ds->sha256, "source",
                     ds->source ? ds->source : "", "created", ds->created ? ds->created : "",
                     "parent", ds->parent ? json_string(ds->parent) : json_null(), "transforms",
                     json_from_text(ds->transforms), "classes",
                     strv_json(ds->classes, ds->n_classes), "feature_names",
                     strv_json(ds->feature_names, ds->n_features), "splits", splits);
}

static json_t *parent_json(const struct kiln_dataversion *v)
{
    if (!v->parent_id) return json_null();
    return json_pack("{s:s, s:I, s:s}", "name", v->parent_name, "version",
                     (json_int_t)v->parent_version, "content_sha256", v->parent_sha256);
}

/* The version record as JSON (without the statistics, which `data stats`
 * prints). */
static json_t *record_json(const struct kiln_dataversion_record *r)
{
    return json_pack("{s:s, s:I, s:I, s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:I, s:i, s:s, s:s}",
                     "name", r->v.name, "version", (json_int_t)r->v.version, "id",
                     (json_int_t)r->v.id, "content_sha256", r->v.content_sha256,
                     "object_sha256", r->v.object_sha256, "parent", parent_json(&r->v),
                     "source", r->source ? r->source : "", "transforms",
                     json_from_text(r->transforms), "privacy", json_from_text(r->privacy),
                     "rows", rows_json(r->rows), "n_features", (json_int_t)r->n_features,
                     "n_classes", r->n_classes, "created", r->created ? r->created : "",
                     "created_by", r->created_by ? r->created_by : "");
}

/* Class counts per split from stored statistics, as JSON ({} when none). */
static json_t *class_counts_json(const struct kiln_dataset_stats *s)
{
    json_t *o = json_object();
    for (int i = 0; o && s && i < s->n_splits; i++) {
        const struct kiln_split_stats *ss = &s->splits[i];
        if (!ss->class_counts) continue;
        json_t *a = json_array();
        for (int k = 0; a && k < ss->n_classes; k++)
            json_array_append_new(a, json_integer(ss->class_counts[k]));
        json_object_set_new(o, kiln_split_name(ss->split), a);
    }
    return o;
}

static void version_label(char *buf, size_t len, const char *name, int64_t version,
                          const char *sha)
{
    snprintf(buf, len, "%s@v%lld (%.12s)", name, (long long)version, sha);
}

enum kiln_status kiln_dataversion_show(struct kiln_store *ws, const struct kiln_ref *ref,
                                       bool json, FILE *out)
{
    struct kiln_dataset *ds = NULL;
    struct kiln_dataversion_record rec = {0};
    struct kiln_dataset_stats *stats = NULL;
    enum kiln_status st = KILN_OK;
    bool version = ref->kind == KILN_REF_DATASET;
    if (version && !ws) return kiln_errorf(KILN_ERR_INTERNAL, "show: a version needs the store");
    /* A plain file is described in full (its statistics computed); a
     * version's statistics were stored at import. */
    st = version ? kiln_dataset_load_header(ref->path, &ds) : kiln_dataset_load(ref->path, &ds);
    if (st == KILN_OK && version) st = kiln_dataversion_get(ws, ref->id, &rec);
    if (st == KILN_OK && version && rec.stats)
        st = kiln_dataset_stats_from_json(rec.stats, &stats);
    if (st != KILN_OK) goto cleanup;
    if (json) {
        json_t *doc = header_json(ds);
        if (doc) json_object_set_new(doc, "path", json_string(ref->path));
        if (doc && version) {
            json_object_set_new(doc, "version", record_json(&rec));
            json_object_set_new(doc, "class_counts", class_counts_json(stats));
        }
        st = json_print(doc, out);
        goto cleanup;
    }
    if (version) {
        char label[400], buf[4096];
        version_label(label, sizeof label, rec.v.name, rec.v.version, rec.v.content_sha256);
        fprintf(out, "version   %s\n", label);
        fprintf(out, "object    %s\n", rec.v.object_sha256);
        if (rec.v.parent_id) {
            version_label(label, sizeof label, rec.v.parent_name, rec.v.parent_version,
                          rec.v.parent_sha256);
            fprintf(out, "parent    %s\n", label);
        } else {
            fprintf(out, "parent    (none)\n");
        }
        fprintf(out, "registered %s by %s\n", rec.created ? rec.created : "",
                rec.created_by ? rec.created_by : "");
        transforms_brief(rec.transforms, buf, sizeof buf);
        if (buf[0]) fprintf(out, "transforms %s\n", buf);
        transforms_brief(ds->transforms, buf, sizeof buf);
        if (buf[0] && rec.transforms && strcmp(rec.transforms, ds->transforms) != 0)
            fprintf(out, "chain     %s (applied to raw rows by models trained on it)\n", buf);
        privacy_brief(rec.privacy, buf, sizeof buf);
        if (buf[0]) fprintf(out, "privacy   %s\n", buf);
        fprintf(out, "\n");
    }
    st = kiln_dataset_describe(ds, out);
    if (st == KILN_OK && stats) {
        fprintf(out, "\nstatistics (stored at import; `kiln data stats` prints every feature):\n");
        kiln_dataset_stats_print(stats, DV_SHOW_FEATURES, out);
    }
    if (st == KILN_OK) st = out_check(out);
cleanup:
    kiln_dataset_stats_free(stats);
    kiln_dataversion_record_free(&rec);
    kiln_dataset_free(ds);
    return st;
}

/* --- log ---------------------------------------------------------------------------- */

static const char *const ROW_LABEL[KILN_SPLIT_COUNT] = {"train", "val", "test"};

/* What changed from parent p to version r, as short phrases. */
static json_t *changes_json(const struct kiln_dataversion_record *r,
                            const struct kiln_dataversion_record *p)
{
    json_t *a = json_array();
    char buf[4200];
    if (!a) return NULL;
    if (!p) {
        json_array_append_new(a, json_string("first version"));
        return a;
    }
    if (strcmp(p->v.name, r->v.name) != 0) {
        snprintf(buf, sizeof buf, "derived from %s@v%lld", p->v.name, (long long)p->v.version);
        json_array_append_new(a, json_string(buf));
    }
    char tb[4096];
    transforms_brief(r->transforms, tb, sizeof tb);
    if (tb[0]) {
        snprintf(buf, sizeof buf, "transforms: %s", tb);
        json_array_append_new(a, json_string(buf));
    }
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        if (r->rows[i] == p->rows[i]) continue;
        if (r->rows[i] < 0) snprintf(buf, sizeof buf, "%s split removed", ROW_LABEL[i]);
        else if (p->rows[i] < 0)
            snprintf(buf, sizeof buf, "%s split added (%lld rows)", ROW_LABEL[i],
                     (long long)r->rows[i]);
        else
            snprintf(buf, sizeof buf, "%s %+lld rows", ROW_LABEL[i],
                     (long long)(r->rows[i] - p->rows[i]));
        json_array_append_new(a, json_string(buf));
    }
    if (r->n_features != p->n_features) {
        snprintf(buf, sizeof buf, "features %lld -> %lld", (long long)p->n_features,
                 (long long)r->n_features);
        json_array_append_new(a, json_string(buf));
    }
    if (r->n_classes != p->n_classes) {
        snprintf(buf, sizeof buf, "classes %d -> %d", p->n_classes, r->n_classes);
        json_array_append_new(a, json_string(buf));
    }
    if (json_array_size(a) == 0 ||
        (json_array_size(a) == 1 && strcmp(p->v.name, r->v.name) != 0))
        json_array_append_new(a, json_string("values changed (same shapes)"));
    if (r->privacy && (!p->privacy || strcmp(r->privacy, p->privacy) != 0)) {
        char pb[2048];
        privacy_brief(r->privacy, pb, sizeof pb);
        snprintf(buf, sizeof buf, "privacy: %s", pb);
        json_array_append_new(a, json_string(buf));
    }
    return a;
}

enum kiln_status kiln_dataversion_log(struct kiln_store *ws, const char *name, bool json,
                                      FILE *out)
{
    int64_t ds_id = 0;
    enum kiln_status st = dataset_id(ws, name, &ds_id);
    if (st != KILN_OK) return st;
    if (!ds_id) return kiln_errorf(KILN_ERR_NOT_FOUND, "%s: no such dataset", name);
    sqlite3_stmt *s;
    st = store_prepare(ws, "SELECT id FROM dataset_versions WHERE dataset_id = ? "
                           "ORDER BY version DESC", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, ds_id);
    json_t *arr = json ? json_array() : NULL;
    int rc = SQLITE_DONE;
    while (st == KILN_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct kiln_dataversion_record r, p;
        bool have_parent = false;
        st = kiln_dataversion_get(ws, sqlite3_column_int64(s, 0), &r);
        if (st != KILN_OK) break;
        if (r.v.parent_id) {
            st = kiln_dataversion_get(ws, r.v.parent_id, &p);
            have_parent = st == KILN_OK;
        }
        json_t *changes = st == KILN_OK ? changes_json(&r, have_parent ? &p : NULL) : NULL;
        if (st == KILN_OK && !changes) st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        if (st == KILN_OK && json) {
            json_t *o = json_pack("{s:I, s:s, s:s, s:o, s:s, s:s, s:o, s:I, s:i, s:s, s:o, s:o}",
                                  "version", (json_int_t)r.v.version, "content_sha256",
                                  r.v.content_sha256, "object_sha256", r.v.object_sha256,
                                  "parent", parent_json(&r.v), "created",
                                  r.created ? r.created : "", "created_by",
                                  r.created_by ? r.created_by : "", "rows", rows_json(r.rows),
                                  "n_features", (json_int_t)r.n_features, "n_classes",
                                  r.n_classes, "source", r.source ? r.source : "", "transforms",
                                  json_from_text(r.transforms), "changes", json_incref(changes));
            if (!o || json_array_append_new(arr, o) != 0)
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        } else if (st == KILN_OK) {
            char label[400];
            fprintf(out, "%s@v%lld  %.12s  %s  %s\n", r.v.name, (long long)r.v.version,
                    r.v.content_sha256, r.created ? r.created : "",
                    r.created_by ? r.created_by : "");
            if (r.v.parent_id) {
                version_label(label, sizeof label, r.v.parent_name, r.v.parent_version,
                              r.v.parent_sha256);
                fprintf(out, "    parent   %s\n", label);
            }
            fprintf(out, "    rows    ");
            for (int i = 0; i < KILN_SPLIT_COUNT; i++)
                if (r.rows[i] >= 0) fprintf(out, " %s %lld", ROW_LABEL[i], (long long)r.rows[i]);
            fprintf(out, "; %lld features; %d classes\n", (long long)r.n_features, r.n_classes);
            fprintf(out, "    changed ");
            size_t i;
            json_t *c;
            json_array_foreach(changes, i, c) fprintf(out, "%s%s", i ? "; " : " ",
                                                      json_string_value(c));
            fprintf(out, "\n    source   %s\n", r.source ? r.source : "");
        }
        json_decref(changes);
        if (have_parent) kiln_dataversion_record_free(&p);
        kiln_dataversion_record_free(&r);
    }
    if (st == KILN_OK && rc != SQLITE_DONE) st = store_sql_error(ws, "reading versions");
    sqlite3_finalize(s);
    if (st != KILN_OK) {
        json_decref(arr);
        return st;
    }
    return json ? json_print(arr, out) : out_check(out);
}

/* --- diff --------------------------------------------------------------------------- */

/* One side of a diff: a version (header + stored statistics) or a plain file
 * (loaded, statistics computed). */
struct diff_side {
    char label[4200];
    struct kiln_dataset *ds;
    struct kiln_dataset_stats *stats;
    json_t *id;
};

static void diff_side_free(struct diff_side *d)
{
    kiln_dataset_free(d->ds);
    kiln_dataset_stats_free(d->stats);
    json_decref(d->id);
}

static enum kiln_status diff_side_load(struct kiln_store *ws, const struct kiln_ref *ref,
                                       struct diff_side *d)
{
    enum kiln_status st = KILN_OK;
    memset(d, 0, sizeof *d);
    if (ref->kind == KILN_REF_DATASET) {
        struct kiln_dataversion_record r;
        st = kiln_dataversion_get(ws, ref->id, &r);
        if (st != KILN_OK) return st;
        version_label(d->label, sizeof d->label, r.v.name, r.v.version, r.v.content_sha256);
        d->id = json_pack("{s:s, s:I, s:s}", "name", r.v.name, "version",
                          (json_int_t)r.v.version, "content_sha256", r.v.content_sha256);
        if (r.stats) {
            st = kiln_dataset_stats_from_json(r.stats, &d->stats);
            if (st == KILN_OK) st = kiln_dataset_load_header(ref->path, &d->ds);
        }
        kiln_dataversion_record_free(&r);
        if (st != KILN_OK || d->stats) return st;
    }
    st = kiln_dataset_load(ref->path, &d->ds);
    if (st == KILN_OK && !d->stats) st = kiln_dataset_stats_compute(d->ds, &d->stats);
    if (st == KILN_OK && !d->id) {
        snprintf(d->label, sizeof d->label, "%s (%.12s)", ref->path, d->ds->sha256);
        d->id = json_pack("{s:s, s:s}", "path", ref->path, "content_sha256", d->ds->sha256);
    }
    return st;
}

static const struct kiln_split_stats *stats_of(const struct kiln_dataset_stats *s,
                                               enum kiln_split_id id)
{
    for (int i = 0; s && i < s->n_splits; i++)
        if (s->splits[i].split == id) return &s->splits[i];
    return NULL;
}

static int64_t find_feature(const struct kiln_split_stats *s, const char *name, int64_t hint)
{
    if (hint < s->n_features && strcmp(s->features[hint].name, name) == 0) return hint;
    for (int64_t j = 0; j < s->n_features; j++)
        if (strcmp(s->features[j].name, name) == 0) return j;
    return -1;
}

static int find_str(char *const *v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0) return i;
    return -1;
}

static void shape_text(const struct kiln_split *s, char *buf, size_t len)
{
    int w = snprintf(buf, len, "%s [", dtype_name(s->x_dtype));
    for (int d = 0; d < s->feat_ndim && w > 0 && (size_t)w < len; d++)
        w += snprintf(buf + w, len - (size_t)w, "%s%lld", d ? ", " : "", (long long)s->feat_shape[d]);
    if (w > 0 && (size_t)w < len) snprintf(buf + w, len - (size_t)w, "]");
}

static bool feature_changed(const struct kiln_feature_stats *a, const struct kiln_feature_stats *b)
{
    bool same = a->count == b->count && a->missing == b->missing && a->mean == b->mean &&
                a->std == b->std && a->min == b->min && a->max == b->max;
    for (int q = 0; same && q < KILN_STATS_QUANTILES; q++) same = a->quantiles[q] == b->quantiles[q];
    for (int h = 0; same && h < KILN_STATS_BINS; h++) same = a->hist[h] == b->hist[h];
    return !same;
}

static bool feature_flagged(const struct kiln_feature_stats *a, const struct kiln_feature_stats *b)
{
    double sd = a->std > 0 ? a->std : b->std;
    double d = fabs(b->mean - a->mean);
    return sd > 0 ? d > DV_DIFF_FLAG_STD * sd : d > 0;
}

/* Names in x that are not in y, as a JSON array and a ", " list. */
static json_t *names_missing(char *const *x, int nx, char *const *y, int ny, char *buf,
                             size_t len)
{
    json_t *a = json_array();
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; a && i < nx; i++) {
        if (find_str(y, ny, x[i]) >= 0) continue;
        json_array_append_new(a, json_string(x[i]));
        if (used < len) {
            int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", x[i]);
            if (w > 0) used += (size_t)w;
        }
    }
    return a;
}

/* Feature names of a split's statistics as a string vector view. */
static char **stats_names(const struct kiln_split_stats *s)
{
    char **v = calloc((size_t)s->n_features + 1, sizeof *v);
    for (int64_t j = 0; v && j < s->n_features; j++) v[j] = (char *)s->features[j].name;
    return v;
}

enum kiln_status kiln_dataversion_diff(struct kiln_store *ws, const struct kiln_ref *a,
                                       const struct kiln_ref *b, const char *split, bool all,
                                       bool json, FILE *out)
{
    struct diff_side A, B;
    enum kiln_split_id sid = KILN_SPLIT_TRAIN;
    char **na = NULL, **nb = NULL;
    json_t *doc = NULL, *feats = NULL, *flagged = NULL;
    memset(&B, 0, sizeof B);
    enum kiln_status st = diff_side_load(ws, a, &A);
    if (st == KILN_OK) st = diff_side_load(ws, b, &B);
    if (st == KILN_OK && split) st = kiln_split_parse(split, &sid);
    if (st != KILN_OK) goto cleanup;
    const struct kiln_split_stats *sa = stats_of(A.stats, sid), *sb = stats_of(B.stats, sid);
    if (!sa || !sb) {
        st = kiln_errorf(KILN_ERR_USAGE, "diff: %s has no %s split", !sa ? A.label : B.label,
                         kiln_split_name(sid));
        goto cleanup;
    }
    const struct kiln_split *ta = A.ds->splits[KILN_SPLIT_TRAIN], *tb = B.ds->splits[KILN_SPLIT_TRAIN];
    char xa[128], xb[128], added_f[2048], removed_f[2048], added_c[2048], removed_c[2048];
    shape_text(ta, xa, sizeof xa);
    shape_text(tb, xb, sizeof xb);
    na = stats_names(sa);
    nb = stats_names(sb);
    if (!na || !nb) {
        st = kiln_errorf(KILN_ERR_NOMEM, "diff: out of memory");
        goto cleanup;
    }
    json_t *f_added = names_missing(nb, (int)sb->n_features, na, (int)sa->n_features, added_f,
                                    sizeof added_f);
    json_t *f_removed = names_missing(na, (int)sa->n_features, nb, (int)sb->n_features,
                                      removed_f, sizeof removed_f);
    json_t *c_added = names_missing(B.ds->classes, B.ds->n_classes, A.ds->classes,
                                    A.ds->n_classes, added_c, sizeof added_c);
    json_t *c_removed = names_missing(A.ds->classes, A.ds->n_classes, B.ds->classes,
                                      B.ds->n_classes, removed_c, sizeof removed_c);
    bool same_schema = strcmp(xa, xb) == 0 && ta->y_dtype == tb->y_dtype &&
                       ta->y_dim == tb->y_dim && json_array_size(f_added) == 0 &&
                       json_array_size(f_removed) == 0 && json_array_size(c_added) == 0 &&
                       json_array_size(c_removed) == 0 && A.ds->n_classes == B.ds->n_classes;
    json_t *schema = json_pack(
        "{s:b, s:[s,s], s:[s,s], s:[I,I], s:o, s:o, s:o, s:o}", "same", same_schema, "x",
        xa, xb, "y_dtype", dtype_name(ta->y_dtype), dtype_name(tb->y_dtype), "n_classes",
        (json_int_t)A.ds->n_classes, (json_int_t)B.ds->n_classes, "features_added", f_added,
        "features_removed", f_removed, "classes_added", c_added, "classes_removed", c_removed);
    json_t *rows = json_object();
    for (int i = 0; rows && i < KILN_SPLIT_COUNT; i++) {
        const struct kiln_split *x = A.ds->splits[i], *y = B.ds->splits[i];
        if (!x && !y) continue;
        json_object_set_new(rows, kiln_split_name(i),
                            json_pack("[o,o]", x ? json_integer(x->n) : json_null(),
                                      y ? json_integer(y->n) : json_null()));
    }
    feats = json_array();
    flagged = json_array();
    int64_t n_changed = 0, n_common = 0;
    for (int64_t j = 0; feats && j < sa->n_features; j++) {
        const struct kiln_feature_stats *fa = &sa->features[j];
        int64_t k = find_feature(sb, fa->name, j);
        if (k < 0) continue;
        const struct kiln_feature_stats *fb = &sb->features[k];
        n_common++;
        bool ch = feature_changed(fa, fb), fl = feature_flagged(fa, fb);
        n_changed += ch;
        if (fl) json_array_append_new(flagged, json_string(fa->name));
        json_array_append_new(
            feats, json_pack("{s:s, s:b, s:b, s:[f,f], s:f, s:[f,f], s:f, s:[f,f], s:[f,f]}",
                             "name", fa->name, "changed", ch, "flagged", fl, "mean", fa->mean,
                             fb->mean, "delta_mean", fb->mean - fa->mean, "std", fa->std,
                             fb->std, "delta_std", fb->std - fa->std, "min", fa->min, fb->min,
                             "max", fa->max, fb->max));
    }
    json_t *classes = json_array();
    for (int side = 0; classes && side < 2; side++) {
        const struct kiln_dataset *d = side ? B.ds : A.ds;
        for (int c = 0; c < d->n_classes; c++) {
            if (side == 1 && find_str(A.ds->classes, A.ds->n_classes, d->classes[c]) >= 0)
                continue;
            int ia = find_str(A.ds->classes, A.ds->n_classes, d->classes[c]);
            int ib = find_str(B.ds->classes, B.ds->n_classes, d->classes[c]);
            json_int_t ca = ia >= 0 && sa->class_counts ? sa->class_counts[ia] : 0;
            json_int_t cb = ib >= 0 && sb->class_counts ? sb->class_counts[ib] : 0;
            json_array_append_new(classes, json_pack("{s:s, s:[I,I]}", "class", d->classes[c],
                                                     "rows", ca, cb));
        }
    }
    doc = json_pack("{s:O, s:O, s:o, s:o, s:s, s:I, s:I, s:o, s:o, s:o}", "a", A.id, "b", B.id,
                    "schema", schema, "rows", rows, "split", kiln_split_name(sid),
                    "features_compared", (json_int_t)n_common, "features_changed",
                    (json_int_t)n_changed, "flagged", flagged, "features", feats,
                    "class_counts", classes);
    if (!doc) {
        st = kiln_errorf(KILN_ERR_NOMEM, "diff: out of memory");
        goto cleanup;
    }
    if (json) {
        st = json_print(doc, out);
        doc = NULL;
        goto cleanup;
    }
    fprintf(out, "a  %s\nb  %s\n", A.label, B.label);
    if (strcmp(A.ds->sha256, B.ds->sha256) == 0) fprintf(out, "same content\n");
    fprintf(out, "schema%s\n", same_schema ? " (same)" : "");
    fprintf(out, "  X          %s -> %s\n", xa, xb);
    fprintf(out, "  y          %s%s -> %s%s\n", dtype_name(ta->y_dtype),
            A.ds->n_classes ? "" : " targets", dtype_name(tb->y_dtype),
            B.ds->n_classes ? "" : " targets");
    fprintf(out, "  features   %lld -> %lld", (long long)sa->n_features, (long long)sb->n_features);
    if (added_f[0]) fprintf(out, "; added: %s", added_f);
    if (removed_f[0]) fprintf(out, "; removed: %s", removed_f);
    fprintf(out, "\n  classes    %d -> %d", A.ds->n_classes, B.ds->n_classes);
    if (added_c[0]) fprintf(out, "; added: %s", added_c);
    if (removed_c[0]) fprintf(out, "; removed: %s", removed_c);
    fprintf(out, "\nrows\n");
    for (int i = 0; i < KILN_SPLIT_COUNT; i++) {
        const struct kiln_split *x = A.ds->splits[i], *y = B.ds->splits[i];
        if (!x && !y) continue;
        char ra[32] = "-", rb[32] = "-";
        if (x) snprintf(ra, sizeof ra, "%lld", (long long)x->n);
        if (y) snprintf(rb, sizeof rb, "%lld", (long long)y->n);
        fprintf(out, "  %-10s %s -> %s", kiln_split_name(i), ra, rb);
        if (x && y && x->n != y->n) fprintf(out, "  (%+lld)", (long long)(y->n - x->n));
        fprintf(out, "\n");
    }
    fprintf(out, "features (%s): %lld of %lld compared changed; %zu moved by more than %.1f "
                 "std (marked *)\n",
            kiln_split_name(sid), (long long)n_changed, (long long)n_common,
            json_array_size(flagged), DV_DIFF_FLAG_STD);
    if (n_changed > 0 || all) {
        fprintf(out, "    %-20s %12s %12s %12s %12s %12s %12s\n", "feature", "mean a", "mean b",
                "delta", "std a", "std b", "delta");
        size_t i;
        json_t *f;
        json_array_foreach(feats, i, f) {
            if (!all && !json_is_true(json_object_get(f, "changed"))) continue;
            json_t *m = json_object_get(f, "mean"), *s = json_object_get(f, "std");
            fprintf(out, "  %c %-20s %12.6g %12.6g %+12.4g %12.6g %12.6g %+12.4g\n",
                    json_is_true(json_object_get(f, "flagged")) ? '*' : ' ',
                    json_string_value(json_object_get(f, "name")),
                    json_real_value(json_array_get(m, 0)), json_real_value(json_array_get(m, 1)),
                    json_real_value(json_object_get(f, "delta_mean")),
                    json_real_value(json_array_get(s, 0)), json_real_value(json_array_get(s, 1)),
                    json_real_value(json_object_get(f, "delta_std")));
        }
    }
    if (json_array_size(classes) > 0) {
        fprintf(out, "class balance (%s)\n", kiln_split_name(sid));
        size_t i;
        json_t *c;
        json_array_foreach(classes, i, c) {
            json_t *r = json_object_get(c, "rows");
            json_int_t ca = json_integer_value(json_array_get(r, 0));
            json_int_t cb = json_integer_value(json_array_get(r, 1));
            fprintf(out, "  %-20s %lld -> %lld", json_string_value(json_object_get(c, "class")),
                    (long long)ca, (long long)cb);
            if (ca != cb) fprintf(out, "  (%+lld)", (long long)(cb - ca));
            fprintf(out, "\n");
        }
    }
    st = out_check(out);
cleanup:
    json_decref(doc);
    free(na);
    free(nb);
    diff_side_free(&A);
    diff_side_free(&B);
    return st;
}

/* --- stats -------------------------------------------------------------------------- */

enum kiln_status kiln_dataversion_stats(struct kiln_store *ws, const struct kiln_ref *ref,
                                        const char *split, int max_features, bool json,
                                        FILE *out)
{
    struct kiln_dataversion_record rec = {0};
    struct kiln_dataset_stats *stats = NULL;
    struct kiln_dataset *ds = NULL;
    char *text = NULL;
    enum kiln_split_id sid = KILN_SPLIT_TRAIN;
    enum kiln_status st = split ? kiln_split_parse(split, &sid) : KILN_OK;
    if (st != KILN_OK) return st;
    if (ref->kind == KILN_REF_DATASET) {
        st = kiln_dataversion_get(ws, ref->id, &rec);
        if (st == KILN_OK && !rec.stats)
            st = kiln_errorf(KILN_ERR_NOT_FOUND, "%s@v%lld has no stored statistics", rec.v.name,
                             (long long)rec.v.version);
        if (st == KILN_OK) st = kiln_dataset_stats_from_json(rec.stats, &stats);
        text = rec.stats;
    } else {
        /* A plain file: computed now. */
        st = kiln_dataset_load(ref->path, &ds);
        if (st == KILN_OK) st = kiln_dataset_stats_compute(ds, &stats);
        if (st == KILN_OK && json) {
            text = kiln_dataset_stats_to_json(stats);
            if (!text) st = kiln_errorf(KILN_ERR_NOMEM, "stats: out of memory");
        }
    }
    if (st != KILN_OK) goto cleanup;
    const struct kiln_split_stats *one = split ? stats_of(stats, sid) : NULL;
    if (split && !one) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s has no %s split", ref->kind == KILN_REF_DATASET
                         ? rec.v.name : ref->path, kiln_split_name(sid));
        goto cleanup;
    }
    if (json && !split) {
        fprintf(out, "%s\n", text);
        st = out_check(out);
    } else if (json) {
        json_t *doc = json_loads(text, 0, NULL);
        json_t *arr = doc ? json_object_get(doc, "splits") : NULL, *pick = NULL;
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e)
            if (!strcmp(json_string_value(json_object_get(e, "split")) ? json_string_value(
                            json_object_get(e, "split")) : "", kiln_split_name(sid)))
                pick = e;
        json_t *one_doc = pick ? json_pack("{s:[O]}", "splits", pick) : NULL;
        char *s = one_doc ? json_dumps(one_doc, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
        if (s) fprintf(out, "%s\n", s);
        else st = kiln_errorf(KILN_ERR_FORMAT, "the stored statistics cannot be read back");
        free(s);
        json_decref(one_doc);
        json_decref(doc);
        if (st == KILN_OK) st = out_check(out);
    } else if (split) {
        /* A view of one split: shares the arrays, so it is not freed. */
        struct kiln_dataset_stats view = {.n_splits = 1};
        view.splits[0] = *one;
        kiln_dataset_stats_print(&view, max_features, out);
        st = out_check(out);
    } else {
        kiln_dataset_stats_print(stats, max_features, out);
        st = out_check(out);
    }
cleanup:
    if (ref->kind != KILN_REF_DATASET) free(text);
    kiln_dataversion_record_free(&rec);
    kiln_dataset_stats_free(stats);
    kiln_dataset_free(ds);
    return st;
}

/* --- export ------------------------------------------------------------------------- */

/* Writes s as one CSV field, quoted when it holds a delimiter, a quote, a
 * line end or blanks at its ends (RFC 4180). */
static void csv_field(FILE *f, const char *s)
{
    size_t n = strlen(s);
    bool quote = n > 0 && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t');
    for (const char *p = s; !quote && *p; p++) quote = *p == ',' || *p == '"' || *p == '\n' || *p == '\r';
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static enum kiln_status export_csv(const struct kiln_dataset *ds, enum kiln_split_id sid,
                                   const char *path, const char *tmp)
{
    const struct kiln_split *s = ds->splits[sid];
    FILE *f = fopen(tmp, "w");
    if (!f) return kiln_errorf(KILN_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    static char buf[1 << 20];
    setvbuf(f, buf, _IOFBF, sizeof buf);
    bool named = ds->feature_names && ds->n_features == s->feat_size;
    /* The label column is "label", unless a feature has that name. */
    char label[80] = "label";
    while (named && find_str(ds->feature_names, ds->n_features, label) >= 0 &&
           strlen(label) + 2 < sizeof label)
        strcat(label, "_");
    for (int64_t j = 0; j < s->feat_size; j++) {
        char fname[32];
        if (j) fputc(',', f);
        if (named) {
            csv_field(f, ds->feature_names[j]);
        } else {
            snprintf(fname, sizeof fname, "f%lld", (long long)j);
            fputs(fname, f);
        }
    }
    for (int64_t k = 0; k < s->y_dim; k++) {
        fputc(',', f);
        if (s->y_dim == 1) csv_field(f, label);
        else fprintf(f, "%s%lld", label, (long long)k);
    }
    fputc('\n', f);
    for (int64_t i = 0; i < s->n; i++) {
        for (int64_t j = 0; j < s->feat_size; j++) {
            if (j) fputc(',', f);
            if (s->x_dtype == KILN_DTYPE_U8)
                fprintf(f, "%u", (unsigned)((const uint8_t *)s->X)[i * s->feat_size + j]);
            else
                fprintf(f, "%.9g", (double)((const float *)s->X)[i * s->feat_size + j]);
        }
        if (s->y_dtype == KILN_DTYPE_I32) {
            fputc(',', f);
            csv_field(f, ds->classes[((const int32_t *)s->y)[i]]);
        } else {
            for (int64_t k = 0; k < s->y_dim; k++)
                fprintf(f, ",%.9g", (double)((const float *)s->y)[i * s->y_dim + k]);
        }
        fputc('\n', f);
    }
    bool ok = !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        unlink(tmp);
        return kiln_errorf(KILN_ERR_IO, "cannot write %s (disk full?)", path);
    }
    return fs_publish(tmp, path);
}

static enum kiln_status copy_file(const char *src, const char *path, const char *tmp)
{
    FILE *in = fopen(src, "rb");
    if (!in) return kiln_errorf(KILN_ERR_IO, "%s: %s", src, strerror(errno));
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        fclose(in);
        return kiln_errorf(KILN_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    static char buf[1 << 20];
    size_t n;
    bool ok = true;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    ok = ok && !ferror(in);
    fclose(in);
    ok = fclose(out) == 0 && ok;
    if (!ok) {
        unlink(tmp);
        return kiln_errorf(KILN_ERR_IO, "cannot write %s (disk full?)", path);
    }
    return fs_publish(tmp, path);
}

enum kiln_status kiln_dataversion_export(const struct kiln_ref *ref, const char *path,
                                         const char *format, const char *split)
{
    const char *fmt = format ? format : ends_with(path, ".csv") ? "csv" : "h5";
    bool csv = !strcmp(fmt, "csv");
    if (!csv && strcmp(fmt, "h5") && strcmp(fmt, "hdf5"))
        return kiln_errorf(KILN_ERR_USAGE, "export: format is csv or h5, got '%s'", fmt);
    if (!csv && split)
        return kiln_errorf(KILN_ERR_USAGE, "export: --split applies to CSV (an HDF5 export "
                                           "copies the whole dataset file)");
    char dir[4096], tmp[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
    else snprintf(dir, sizeof dir, ".");
    enum kiln_status st = fs_check_writable_dir(dir);
    if (st == KILN_OK) st = fs_temp_path(path, tmp, sizeof tmp);
    if (st != KILN_OK) return kiln_error_context(st, "export to %s", path);
    if (!csv) {
        /* The file is verified before it is copied: a version's object by
         * kiln_ref_resolve, a plain file here. */
        if (ref->kind != KILN_REF_DATASET) {
            struct kiln_dataset *ds = NULL;
            st = kiln_dataset_load_header(ref->path, &ds);
            kiln_dataset_free(ds);
            if (st != KILN_OK) return st;
        }
        return copy_file(ref->path, path, tmp);
    }
    enum kiln_split_id sid = KILN_SPLIT_TRAIN;
    if (split) st = kiln_split_parse(split, &sid);
    struct kiln_dataset *ds = NULL;
    if (st == KILN_OK) st = kiln_dataset_load(ref->path, &ds);
    if (st == KILN_OK && !ds->splits[sid])
        st = kiln_errorf(KILN_ERR_USAGE, "export: %s has no %s split", ref->path,
                         kiln_split_name(sid));
    if (st == KILN_OK) st = export_csv(ds, sid, path, tmp);
    kiln_dataset_free(ds);
    return st;
}
