/* tests/test_registry.c: the model registry: version numbers (never reused,
 * never raced), aliases and their history, archive rules, tags, lineage
 * through two dataset parents, model cards. Runs, checkpoints and dataset
 * versions are inserted by SQL, as the recorders would write them. */
#define _DEFAULT_SOURCE
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "kiln/lifecycle.h"
#include "kiln/registry.h"
#include "kiln/stats.h"
#include "kiln/store.h"
#include "test.h"
#include "blobs3-fixture.h"

static char root[4096];
static char model_path[4200], data_path[4200];
static struct kiln_store *ws;

static const char CONFIG[] =
    BLOBS3_CONFIG_HEAD
    "  checkpoint_every: 1\n"
    "  threads: 1\n"
    "card:\n"
    "  intended_use: sorting three kinds of blobs in unit tests\n"
    "  limitations: only blobs\n";

static int sql(const char *q)
{
    char *err = NULL;
    int rc = sqlite3_exec(kiln_store_db(ws), q, NULL, NULL, &err);
    if (rc != SQLITE_OK) fprintf(stderr, "sql: %s: %s\n", err ? err : "?", q);
    sqlite3_free(err);
    return rc;
}

static int64_t sql_int(const char *q)
{
    sqlite3_stmt *s;
    int64_t v = -1;
    if (sqlite3_prepare_v2(kiln_store_db(ws), q, -1, &s, NULL) != SQLITE_OK) return -2;
    if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* Binds text parameters to one statement and runs it. */
static int sql_bind(const char *q, int n, const char *const *texts)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(kiln_store_db(ws), q, -1, &s, NULL) != SQLITE_OK) {
        fprintf(stderr, "sql: %s: %s\n", sqlite3_errmsg(kiln_store_db(ws)), q);
        return -1;
    }
    for (int i = 0; i < n; i++) sqlite3_bind_text(s, i + 1, texts[i], -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The workspace: a dataset with three versions (v3's parent v2, v2's parent
 * v1), run 1 (finished, with a final checkpoint and per-epoch metrics) on
 * v3, and run 2 (interrupted, no final model). */
static int setup(void)
{
    snprintf(root, sizeof root, "/tmp/kiln-test-registry.XXXXXX");
    if (!mkdtemp(root)) return -1;
    setenv("KILN_USER", "tester", 1);
    if (kiln_store_init(root, NULL, 0) != KILN_OK || kiln_store_open(root, &ws) != KILN_OK) return -1;
    char cfg_path[4200], out_dir[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/mlp.yaml", root);
    snprintf(data_path, sizeof data_path, "%s/blobs.h5", root);
    snprintf(out_dir, sizeof out_dir, "%s/run", root);
    FILE *f = fopen(cfg_path, "w");
    if (!f) return -1;
    fputs(CONFIG, f);
    fclose(f);
    struct kiln_dataset *ds = make_blobs3(0.0f, 0.0f);
    struct kiln_dataset_stats *stats = NULL;
    if (kiln_dataset_save(ds, data_path) != KILN_OK || kiln_dataset_stats_compute(ds, &stats) != KILN_OK)
        return -1;
    char *stats_json = kiln_dataset_stats_to_json(stats);
    kiln_dataset_stats_free(stats);
    char content[65];
    snprintf(content, sizeof content, "%s", ds->sha256);
    kiln_dataset_free(ds);
    struct kiln_train_job job = kiln_train_job_default();
    job.config_path = cfg_path;
    job.data_path = data_path;
    job.out_dir = out_dir;
    job.device = "cpu";
    struct kiln_train_result r;
    if (kiln_train(&job, &r) != KILN_OK) return -1;
    snprintf(model_path, sizeof model_path, "%s", r.model_path);

    char data_sha[65], model_sha[65];
    if (kiln_store_put_file(ws, data_path, "dataset", data_sha, NULL) != KILN_OK ||
        kiln_store_put_file(ws, model_path, "checkpoint", model_sha, NULL) != KILN_OK)
        return -1;
    const char *v1[] = {data_sha};
    const char *v3[] = {content, data_sha, stats_json};
    const char *run[] = {CONFIG};
    const char *ck[] = {model_sha};
    int bad = 0;
    bad |= sql("INSERT INTO datasets(id, name, created) VALUES(1, 'blobs', '2026-01-01T00:00:00Z')");
    bad |= sql_bind("INSERT INTO dataset_versions(id, dataset_id, version, content_sha256, "
                    "object_sha256, source, created, created_by) VALUES(1, 1, 1, "
                    "'1111111111111111111111111111111111111111111111111111111111111111', ?, "
                    "'blobs.csv', '2026-01-01T00:00:00Z', 'tester')", 1, v1);
    bad |= sql_bind("INSERT INTO dataset_versions(id, dataset_id, version, content_sha256, "
                    "object_sha256, parent_id, transforms, source, created, created_by) "
                    "VALUES(2, 1, 2, "
                    "'2222222222222222222222222222222222222222222222222222222222222222', ?, 1, "
                    "'{\"transforms\":[{\"kind\":\"standardize\",\"names\":[]}]}', 'transform', "
                    "'2026-01-01T00:00:00Z', 'tester')", 1, v1);
    bad |= sql_bind("INSERT INTO dataset_versions(id, dataset_id, version, content_sha256, "
                    "object_sha256, parent_id, transforms, stats, rows_train, rows_test, source, "
                    "created, created_by) VALUES(3, 1, 3, ?, ?, 2, "
                    "'{\"transforms\":[{\"kind\":\"standardize\",\"names\":[]},"
                    "{\"kind\":\"select\",\"names\":[\"f0\",\"f1\",\"f2\",\"f3\"]}]}', ?, 60, 30, "
                    "'transform', '2026-01-01T00:00:00Z', 'tester')", 3, v3);
    bad |= sql_bind("INSERT INTO runs(id, status, config, dataset_version_id, engine_version, "
                    "git_commit, host, user, started, ended) VALUES(1, 'finished', ?, 3, '0.1.0', "
                    "'abc123', 'host', 'tester', '2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z')",
                    1, run);
    bad |= sql("INSERT INTO runs(id, status, config, dataset_version_id, engine_version, "
               "git_commit, host, user, started) VALUES(2, 'interrupted', 'model: {}', 3, '0.1.0', "
               "'abc123', 'host', 'tester', '2026-01-01T00:00:00Z')");
    bad |= sql_bind("INSERT INTO checkpoints(id, run_id, epoch, step, final, object_sha256, created) "
                    "VALUES(1, 1, 2, 8, 1, ?, '2026-01-01T00:01:00Z')", 1, ck);
    bad |= sql_bind("INSERT INTO checkpoints(id, run_id, epoch, step, final, object_sha256, created) "
                    "VALUES(2, 2, 1, 4, 0, ?, '2026-01-01T00:01:00Z')", 1, ck);
    bad |= sql("INSERT INTO run_metrics(run_id, key, step, epoch, value, time) VALUES"
               "(1, 'train_loss', 4, 1, 0.9, 1), (1, 'val_loss', 4, 1, 0.8, 1),"
               "(1, 'val_accuracy', 4, 1, 0.6, 1), (1, 'train_loss', 8, 2, 0.5, 2),"
               "(1, 'val_loss', 8, 2, 0.4, 2), (1, 'val_accuracy', 8, 2, 0.9, 2),"
               "(1, 'step_loss', 1, NULL, 1.1, 0)");
    bad |= sql("INSERT INTO run_summary(run_id, key, value) VALUES(1, 'val_accuracy', 0.9), "
               "(1, 'val_loss', 0.4)");
    free(stats_json);
    return bad ? -1 : 0;
}

static enum kiln_status reg(const char *source, const char *name, struct kiln_model_version *v)
{
    struct kiln_register_opts o = {.source = source, .name = name};
    return kiln_model_register(ws, &o, v);
}

TEST(register_numbers_versions_in_order)
{
    struct kiln_model_version v;
    const char *tags[] = {"team=ml", "stage=dev"};
    struct kiln_register_opts o = {.source = "run:1", .name = "clf", .description = "first",
                                   .tags = tags, .n_tags = 2};
    ASSERT_OK(kiln_model_register(ws, &o, &v));
    ASSERT_EQ_INT(1, v.version);
    ASSERT_EQ_INT(1, v.run_id);
    ASSERT_EQ_INT(1, v.checkpoint_id);
    /* A file whose bytes are a recorded checkpoint links to its run. */
    ASSERT_OK(reg(model_path, "clf", &v));
    ASSERT_EQ_INT(2, v.version);
    ASSERT_EQ_INT(1, v.run_id);
    ASSERT_OK(reg("run:1", "clf", &v));
    ASSERT_EQ_INT(3, v.version);
    ASSERT_OK(reg("run:1", "other", &v));
    ASSERT_EQ_INT(1, v.version); /* numbers are per model */
    ASSERT_EQ_INT(2, sql_int("SELECT COUNT(*) FROM model_tags WHERE version_id = "
                             "(SELECT id FROM model_versions WHERE version = 1 AND model_id = "
                             "(SELECT id FROM models WHERE name = 'clf'))"));
    ASSERT_EQ_INT(4, sql_int("SELECT COUNT(*) FROM audit WHERE action = 'model.register'"));
    ASSERT_EQ_INT(1, sql_int("SELECT COUNT(*) FROM audit WHERE subject = 'clf@3'"));
    struct kiln_model_version found;
    ASSERT_OK(kiln_model_version_find(ws, "clf", &found));
    ASSERT_EQ_INT(3, found.version);
    ASSERT_OK(kiln_model_version_find(ws, "clf@2", &found));
    ASSERT_EQ_STR(v.sha256, found.sha256);
}

TEST(register_refusals)
{
    struct kiln_model_version v;
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, reg("run:2", "clf", &v),
                  "run:2 has no final model (status interrupted): resume it or register a "
                  "checkpoint file");
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, reg("run:99", "clf", &v), "no such run");
    ASSERT_STATUS(KILN_ERR_USAGE, reg("run:x", "clf", &v), "run:N");
    ASSERT_STATUS(KILN_ERR_FORMAT, reg(data_path, "clf", &v), "not a kiln model");
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, reg("/no/such/model.h5", "clf", &v), "no such file");
    ASSERT_STATUS(KILN_ERR_USAGE, reg("run:1", "bad name", &v), "only letters");
    ASSERT_STATUS(KILN_ERR_USAGE, reg("run:1", "x@1", &v), "only letters");
    ASSERT_STATUS(KILN_ERR_USAGE, reg("run:1", "m.h5", &v), "file name");
    ASSERT_STATUS(KILN_ERR_USAGE, reg("run:1", "", &v), "empty");
    ASSERT_STATUS(KILN_ERR_USAGE, reg("run:1", "blobs", &v), "names a dataset");
    const char *bad_tag[] = {"novalue"};
    struct kiln_register_opts o = {.source = "run:1", .name = "clf", .tags = bad_tag, .n_tags = 1};
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_register(ws, &o, &v), "KEY=VALUE");
    o = (struct kiln_register_opts){.source = "run:1", .name = "clf", .description = "a\001b"};
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_register(ws, &o, &v), "control character");
    /* Nothing was taken by the refusals. */
    ASSERT_EQ_INT(3, sql_int("SELECT last_version FROM model_counters WHERE model_id = "
                             "(SELECT id FROM models WHERE name = 'clf')"));
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_model_version_find(ws, "nope@1", &v), "no such model");
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_model_version_find(ws, "clf@77", &v), "no such version");
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_model_version_find(ws, "clf@prod", &v), "no alias");
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_model_version_find(ws, "clf@99999999999999999999999", &v),
                  "no such version");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_version_find(ws, "run:1", &v), "model reference");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_version_find(ws, "clf@", &v), "NAME@VERSION");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_version_find(ws, "@1", &v), "NAME@VERSION");
}

TEST(numbers_never_reused_after_archive)
{
    struct kiln_model_version v;
    ASSERT_OK(kiln_model_archive(ws, "clf@3", false));
    ASSERT_EQ_INT(1, sql_int("SELECT COUNT(*) FROM audit WHERE action = 'model.archive'"));
    ASSERT_OK(kiln_model_version_find(ws, "clf", &v));
    ASSERT_EQ_INT(2, v.version); /* archived: no longer the latest */
    ASSERT_OK(reg("run:1", "clf", &v));
    ASSERT_EQ_INT(4, v.version);
    /* Even a version row deleted by hand does not give its number back. */
    ASSERT(sql("DELETE FROM model_versions WHERE version = 4 AND model_id = "
               "(SELECT id FROM models WHERE name = 'clf')") == SQLITE_OK);
    ASSERT_OK(reg("run:1", "clf", &v));
    ASSERT_EQ_INT(5, v.version);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_archive(ws, "clf@3", false), "already archived");
    ASSERT_OK(kiln_model_archive(ws, "clf@3", true));
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_archive(ws, "clf@3", true), "not archived");
    ASSERT_OK(kiln_model_archive(ws, "clf@5", false));
    ASSERT_OK(kiln_model_archive(ws, "clf@3", false));
    ASSERT_OK(kiln_model_version_find(ws, "clf", &v));
    ASSERT_EQ_INT(2, v.version);
}

TEST(alias_moves_are_recorded)
{
    int64_t from = -1;
    ASSERT_OK(kiln_model_alias_set(ws, "clf@1", "production", &from));
    ASSERT_EQ_INT(0, from);
    ASSERT_OK(kiln_model_alias_set(ws, "clf@2", "production", &from));
    ASSERT_EQ_INT(1, from);
    ASSERT_OK(kiln_model_alias_set(ws, "clf@2", "production", &from)); /* no change */
    ASSERT_EQ_INT(2, from);
    struct kiln_model_version v;
    ASSERT_OK(kiln_model_version_find(ws, "clf@production", &v));
    ASSERT_EQ_INT(2, v.version);
    ASSERT_EQ_INT(2, sql_int("SELECT COUNT(*) FROM alias_history WHERE alias = 'production'"));
    ASSERT_EQ_INT(1, sql_int("SELECT from_version FROM alias_history WHERE alias = 'production' "
                             "AND to_version = 2"));
    ASSERT_EQ_INT(1, sql_int("SELECT COUNT(*) FROM alias_history WHERE alias = 'production' AND "
                             "from_version IS NULL AND to_version = 1 AND user = 'tester'"));
    ASSERT_EQ_INT(2, sql_int("SELECT COUNT(*) FROM audit WHERE action = 'model.alias' AND "
                             "subject = 'clf@production'"));
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_alias_set(ws, "clf@3", "staging", NULL), "archived");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_alias_set(ws, "clf@1", "9lives", NULL), "letter");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_alias_set(ws, "clf@1", "a b", NULL), "only letters");
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_model_alias_set(ws, "clf@42", "staging", NULL), "no such version");
    ASSERT_OK(kiln_model_alias_set(ws, "clf@1", "staging", NULL));
    ASSERT_OK(kiln_model_alias_delete(ws, "clf", "staging"));
    ASSERT_EQ_INT(0, sql_int("SELECT to_version FROM alias_history WHERE alias = 'staging' "
                             "ORDER BY id DESC LIMIT 1"));
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_model_alias_delete(ws, "clf", "staging"), "no such alias");
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_model_version_find(ws, "clf@staging", &v), "production");
}

TEST(archive_refused_while_aliased)
{
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_archive(ws, "clf@2", false),
                  "clf@2 is aliased as production");
    ASSERT_OK(kiln_model_alias_set(ws, "clf@1", "production", NULL));
    ASSERT_OK(kiln_model_archive(ws, "clf@2", false));
    struct kiln_model_version v;
    ASSERT_OK(kiln_model_version_find(ws, "clf", &v));
    ASSERT_EQ_INT(1, v.version);
    ASSERT_OK(kiln_model_archive(ws, "clf@2", true));
    ASSERT_OK(kiln_model_alias_set(ws, "clf@2", "production", NULL));
}

TEST(tags)
{
    const char *set1[] = {"owner=ana", "risk=low"};
    const char *set2[] = {"risk=high"};
    const char *del[] = {"owner"};
    const char *missing[] = {"nope"};
    const char *bad[] = {"=x"};
    ASSERT_OK(kiln_model_tag_set(ws, "clf@2", set1, 2));
    ASSERT_OK(kiln_model_tag_set(ws, "clf@production", set2, 1));
    const char *q = "SELECT COUNT(*) FROM model_tags t JOIN model_versions v ON v.id = t.version_id "
                    "WHERE v.version = 2 AND v.model_id = (SELECT id FROM models WHERE name = 'clf')";
    ASSERT_EQ_INT(2, sql_int(q));
    ASSERT_EQ_INT(1, sql_int("SELECT COUNT(*) FROM model_tags WHERE key = 'risk' AND value = 'high'"));
    ASSERT_OK(kiln_model_tag_delete(ws, "clf@2", del, 1));
    ASSERT_EQ_INT(1, sql_int(q));
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_model_tag_delete(ws, "clf@2", missing, 1), "no tag 'nope'");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_model_tag_set(ws, "clf@2", bad, 1), "KEY=VALUE");
    ASSERT_EQ_INT(3, sql_int("SELECT COUNT(*) FROM audit WHERE action = 'model.tag'"));
}

static json_t *lineage_of(const char *ref)
{
    char *text = NULL;
    if (kiln_model_lineage_json(ws, ref, &text) != KILN_OK) {
        fprintf(stderr, "lineage: %s\n", kiln_last_error());
        return NULL;
    }
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    return j;
}

TEST(lineage_walks_two_dataset_parents)
{
    json_t *l = lineage_of("clf@production");
    ASSERT(l != NULL);
    json_t *ds = json_object_get(l, "datasets");
    ASSERT_EQ_INT(3, json_array_size(ds));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ_INT(3 - i, json_integer_value(json_object_get(json_array_get(ds, i), "version")));
    ASSERT_EQ_STR("standardize, select=f0,f1,f2,f3",
                  json_string_value(json_object_get(json_array_get(ds, 0), "transforms")));
    ASSERT_EQ_STR("standardize",
                  json_string_value(json_object_get(json_array_get(ds, 1), "transforms")));
    ASSERT(json_is_null(json_object_get(json_array_get(ds, 2), "parent")));
    char config_sha[65];
    struct sha256_ctx *c;
    ASSERT_OK(sha256_begin(&c));
    sha256_update(c, CONFIG, strlen(CONFIG));
    sha256_end(c, config_sha);
    json_t *run = json_object_get(l, "run");
    ASSERT_EQ_STR(config_sha, json_string_value(json_object_get(run, "config_sha256")));
    ASSERT_EQ_STR("abc123", json_string_value(json_object_get(run, "git_commit")));
    ASSERT_EQ_STR("finished", json_string_value(json_object_get(run, "status")));
    const char *kinds[] = {"dataset", "dataset", "dataset", "run", "checkpoint", "model", "alias"};
    json_t *chain = json_object_get(l, "chain");
    ASSERT_EQ_INT(7, json_array_size(chain));
    for (int i = 0; i < 7; i++)
        ASSERT_EQ_STR(kinds[i], json_string_value(json_object_get(json_array_get(chain, i), "kind")));
    ASSERT_EQ_STR("1111111111111111111111111111111111111111111111111111111111111111",
                  json_string_value(json_object_get(json_array_get(chain, 0), "sha256")));
    json_t *model = json_object_get(l, "model");
    const char *sha = json_string_value(json_object_get(model, "sha256"));
    ASSERT_EQ_STR(sha, json_string_value(json_object_get(json_array_get(chain, 6), "sha256")));
    ASSERT_EQ_STR(sha, json_string_value(json_object_get(json_object_get(l, "checkpoint"), "sha256")));
    json_decref(l);
    /* A cycle written by hand ends the walk instead of looping. */
    ASSERT(sql("UPDATE dataset_versions SET parent_id = 3 WHERE id = 1") == SQLITE_OK);
    l = lineage_of("clf@production");
    ASSERT(l != NULL);
    ASSERT_EQ_INT(3, json_array_size(json_object_get(l, "datasets")));
    json_decref(l);
    ASSERT(sql("UPDATE dataset_versions SET parent_id = NULL WHERE id = 1") == SQLITE_OK);
}

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

TEST(list_show_and_cards)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/list.json", root);
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    ASSERT_OK(kiln_model_list(ws, NULL, true, f));
    ASSERT_OK(kiln_model_list(ws, "clf", false, f));
    ASSERT_OK(kiln_model_show(ws, "clf@2", false, f));
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_model_list(ws, "nope", false, f), "no such model");
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_model_show(ws, "clf@9", false, f), "no such version");
    fclose(f);
    ASSERT(file_has(path, "\"production\": 2"));
    ASSERT(file_has(path, "val_accuracy=0.9"));
    ASSERT(file_has(path, "production   1 -> 2  by tester"));

    snprintf(path, sizeof path, "%s/card.md", root);
    ASSERT_OK(kiln_model_card(ws, "clf@production", KILN_CARD_MARKDOWN, path));
    ASSERT(file_has(path, "sorting three kinds of blobs"));
    ASSERT(file_has(path, "green"));
    ASSERT(file_has(path, "blobs v3"));
    snprintf(path, sizeof path, "%s/card.html", root);
    ASSERT_OK(kiln_model_card(ws, "clf@production", KILN_CARD_HTML, path));
    ASSERT(file_has(path, "<svg"));
    /* A config that no longer parses only loses the card: section. */
    ASSERT(sql("UPDATE runs SET config = 'model: [' WHERE id = 1") == SQLITE_OK);
    ASSERT_OK(kiln_model_card(ws, "clf@1", KILN_CARD_MARKDOWN, path));
    ASSERT(!file_has(path, "sorting three kinds of blobs"));
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_model_card(ws, "ghost", KILN_CARD_MARKDOWN, path), "no such model");
}

/* Processes registering at once get distinct, gapless numbers. */
TEST(concurrent_registrations)
{
    enum { PROCS = 4, EACH = 5 };
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            struct kiln_store *mine;
            if (kiln_store_open(root, &mine) != KILN_OK) _exit(2);
            for (int i = 0; i < EACH; i++) {
                struct kiln_register_opts o = {.source = i % 2 ? "run:1" : model_path, .name = "race"};
                if (kiln_model_register(mine, &o, NULL) != KILN_OK) {
                    fprintf(stderr, "child: %s\n", kiln_last_error());
                    _exit(1);
                }
            }
            kiln_store_close(mine);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++) {
        int status;
        ASSERT(waitpid(pids[p], &status, 0) == pids[p]);
        ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    const char *m = "(SELECT id FROM models WHERE name = 'race')";
    char q[256];
    snprintf(q, sizeof q, "SELECT COUNT(DISTINCT version) FROM model_versions WHERE model_id = %s", m);
    ASSERT_EQ_INT(PROCS * EACH, sql_int(q));
    snprintf(q, sizeof q, "SELECT MIN(version) * 1000 + MAX(version) FROM model_versions WHERE model_id = %s", m);
    ASSERT_EQ_INT(1000 + PROCS * EACH, sql_int(q));
    int64_t entries;
    ASSERT_OK(kiln_audit_verify(ws, &entries));
}

int main(void)
{
    if (setup() != 0) {
        fprintf(stderr, "setup failed: %s\n", kiln_last_error());
        return 1;
    }
    RUN(register_numbers_versions_in_order);
    RUN(register_refusals);
    RUN(numbers_never_reused_after_archive);
    RUN(alias_moves_are_recorded);
    RUN(archive_refused_while_aliased);
    RUN(tags);
    RUN(lineage_walks_two_dataset_parents);
    RUN(list_show_and_cards);
    RUN(concurrent_registrations);
    kiln_store_close(ws);
    int rc = test_summary();
    if (rc == 0) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    }
    return rc;
}
