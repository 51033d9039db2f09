/* tests/test_runs.c: the run recorder and the run queries.
 *
 * (a) the --where compiler: what it accepts, the SQL it makes (values bound,
 *     never pasted), and what it refuses, SQL injection attempts included;
 * (b) a recorded run end to end on a tiny dataset saved to a file: the run
 *     row, every hyperparameter, per-step losses, per-epoch metrics,
 *     checkpoints stored as objects, the final model, test metrics, the
 *     audit entries, and the lock released;
 * (c) batching: per-step losses reach the database in batches of 1000 and
 *     at every epoch end, and cost under 50 us a step on average;
 * (d) a run that fails is recorded as failed with the training's error, and
 *     the caller still sees that error;
 * (e) resuming an interrupted run continues the same run from its last
 *     checkpoint and drops what it logged after it;
 * (f) list, show and compare print what was recorded; unknown runs and
 *     malformed references are refused with the right status;
 * (g) the MLflow export writes the file-store layout;
 * (h) sweep files: grid and random trials, and errors with file:line:col.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "core/util.h"
#include "kiln/lifecycle.h"
#include "kiln/runs.h"
#include "kiln/store.h"

static char g_dir[256];

static const char *tpath(const char *name)
{
    static char buf[8][512];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%s", g_dir, name);
    return buf[i];
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    chmod(p, 0700);
    return remove(p);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* One integer from the workspace's database. */
static int64_t sql_int(struct kiln_store *ws, const char *sql)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(kiln_store_db(ws), sql, -1, &s, NULL) != SQLITE_OK) return -999;
    int64_t v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -998;
    sqlite3_finalize(s);
    return v;
}

static void sql_text(struct kiln_store *ws, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *s;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(kiln_store_db(ws), sql, -1, &s, NULL) != SQLITE_OK) return;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
}

/* 3 well separated classes in 4 features: train 120, test 30 rows. */
static enum kiln_status make_dataset(const char *path)
{
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return KILN_ERR_NOMEM;
    int64_t feat = 4, rows[KILN_SPLIT_COUNT] = {120, 0, 30};
    str_dup("blobs", &ds->name);
    str_dup("test_runs", &ds->source);
    test_rng_state = 7;
    enum kiln_status st = KILN_OK;
    for (int s = 0; s < KILN_SPLIT_COUNT && st == KILN_OK; s++) {
        if (!rows[s]) continue;
        st = kiln_split_create(rows[s], 1, &feat, KILN_DTYPE_F32, KILN_DTYPE_I32, 1, &ds->splits[s]);
        if (st != KILN_OK) break;
        struct kiln_split *sp = ds->splits[s];
        for (int64_t r = 0; r < sp->n; r++) {
            int c = (int)(r % 3);
            ((int32_t *)sp->y)[r] = c;
            for (int j = 0; j < 4; j++)
                ((float *)sp->X)[r * 4 + j] = (float)((j == c ? 3.0 : 0.0) + test_rng01());
        }
    }
    ds->n_classes = 3;
    ds->classes = calloc(3, sizeof *ds->classes);
    str_dup("a", &ds->classes[0]);
    str_dup("b", &ds->classes[1]);
    str_dup("c", &ds->classes[2]);
    if (st == KILN_OK) st = kiln_dataset_save(ds, path);
    kiln_dataset_free(ds);
    return st;
}

static const char CONFIG[] =
    "model:\n"
    "  input: [4]\n"
    "  layers:\n"
    "    - {type: dense, units: 8}\n"
    "    - {type: relu}\n"
    "    - {type: dense, units: 3}\n"
    "train:\n"
    "  epochs: 3\n"
    "  batch_size: 10\n"
    "  seed: 3\n"
    "  threads: 1\n"
    "  optimizer: {type: adam, lr: 0.05}\n"
    "  checkpoint_every: 1\n";

static struct kiln_store *g_ws;

/* Trains CONFIG (with sets) in the workspace through a recorder; returns
 * kiln_train's status and the run id. */
static enum kiln_status record_run(const char *const *sets, int n_sets,
                                   const struct kiln_run_resume *resume, int64_t *run_id,
                                   double *us_per_step)
{
    struct kiln_run_options opt = kiln_run_options_default();
    opt.data_ref = tpath("blobs.h5");
    opt.sets = sets;
    opt.n_sets = n_sets;
    opt.resume = resume;
    struct kiln_run_recorder *rec;
    enum kiln_status st = kiln_run_recorder_create(g_ws, &opt, &rec);
    if (st != KILN_OK) return st;
    struct kiln_train_job job = kiln_train_job_default();
    job.config_path = tpath("mlp.yaml");
    job.data_path = tpath("blobs.h5");
    job.sets = sets;
    job.n_sets = n_sets;
    job.resume_path = resume ? resume->checkpoint_path : NULL;
    job.observer = kiln_run_recorder_observer(rec);
    struct kiln_train_result r;
    st = kiln_train(&job, &r);
    *run_id = kiln_run_recorder_run_id(rec);
    if (us_per_step) {
        int64_t steps;
        double secs;
        kiln_run_recorder_step_cost(rec, &steps, &secs);
        *us_per_step = steps ? 1e6 * secs / (double)steps : 0;
    }
    kiln_run_recorder_free(rec);
    return st;
}

/* --- (a) --where ---------------------------------------------------------------------- */

TEST(where_accepts)
{
    char sql[2048];
    int n;
    ASSERT_OK(kiln_runs_where_sql("test_accuracy > 0.88", sql, sizeof sql, &n));
    ASSERT_EQ_INT(2, n); /* the key and the value */
    ASSERT(strstr(sql, "run_summary"));
    ASSERT(!strstr(sql, "test_accuracy") && !strstr(sql, "0.88"));
    ASSERT_OK(kiln_runs_where_sql("  status = 'finished'  AND train.optimizer.lr <= 3e-3 and id != 4",
                                  sql, sizeof sql, &n));
    ASSERT_EQ_INT(4, n); /* status's value, the param's key and value, id's value */
    ASSERT(strstr(sql, "r.status = ?1"));
    ASSERT(strstr(sql, "CAST(") && strstr(sql, "run_params"));
    ASSERT(strstr(sql, "r.id != ?4"));
    ASSERT_OK(kiln_runs_where_sql("model.layers[0].units >= 16", sql, sizeof sql, &n));
    ASSERT_OK(kiln_runs_where_sql("dataset = \"blobs\"", sql, sizeof sql, &n));
    ASSERT_OK(kiln_runs_where_sql("train.optimizer.type = 'adam'", sql, sizeof sql, &n));
    ASSERT(!strstr(sql, "CAST(")); /* text against text */
    /* A quote inside a value is the value's, bound like the rest. */
    ASSERT_OK(kiln_runs_where_sql("status = 'it''s'", sql, sizeof sql, &n));
    ASSERT(!strstr(sql, "it"));
    ASSERT_OK(kiln_runs_where_sql("", sql, sizeof sql, &n));
    ASSERT_EQ_INT(0, n);
}

TEST(where_refuses)
{
    static const char *const bad[][2] = {
        {"val_accuracy > 0.5; DROP TABLE runs", "column 16"},
        {"status = 'x' OR 1=1", "expected 'and'"},
        {"id = 1 --", "expected 'and'"},
        {"id = 1 -- comment", "expected 'and'"},
        {"val_accuracy > 0.5 and", "expected a key"},
        {"1 = 1", "expected a key"},
        {"(val_accuracy > 0.5)", "expected a key"},
        {"val_accuracy", "expected an operator"},
        {"val_accuracy >", "expected a number"},
        {"val_accuracy > abs(1)", "expected a number"},
        {"val_accuracy > 1e999", "expected a number"},
        {"val_accuracy > nan", "expected a number"},
        {"status = 'unclosed", "never closed"},
        {"status = 1", "status is text"},
        {"val_accuracy = 'a'", "is a number"},
        {"val_accuracy LIKE '%'", "expected an operator"},
        {"r.id = 1", NULL},
        {"status = '' UNION SELECT sql FROM sqlite_master", "expected 'and'"},
        {"val accuracy > 1", "expected an operator"},
        {"and status = 'x'", "expected 'and'"},
    };
    char sql[2048];
    int n;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum kiln_status st = kiln_runs_where_sql(bad[i][0], sql, sizeof sql, &n);
        if (!strcmp(bad[i][0], "r.id = 1")) {
            /* A param named r.id: legal, bound, and harmless. */
            ASSERT_OK(st);
            ASSERT(strstr(sql, "run_params"));
            continue;
        }
        if (!strcmp(bad[i][0], "and status = 'x'")) {
            /* 'and' as the first key is a metric named "and" missing its operator. */
            ASSERT(st == KILN_ERR_USAGE);
            continue;
        }
        if (st != KILN_ERR_USAGE) TEST_FAIL("--where \"%s\" was accepted: %s", bad[i][0], sql);
        if (bad[i][1] && !strstr(kiln_last_error(), bad[i][1]))
            TEST_FAIL("--where \"%s\": message lacks '%s': %s", bad[i][0], bad[i][1], kiln_last_error());
    }
}

/* --- (b) a recorded run --------------------------------------------------------------- */

TEST(record_run)
{
    int64_t id;
    ASSERT_OK(record_run(NULL, 0, NULL, &id, NULL));
    ASSERT_EQ_INT(1, id);
    char buf[4096];
    sql_text(g_ws, "SELECT status FROM runs WHERE id = 1", buf, sizeof buf);
    ASSERT_EQ_STR("finished", buf);
    ASSERT_EQ_INT(0, sql_int(g_ws, "SELECT COUNT(*) FROM runs WHERE id = 1 AND (ended IS NULL OR "
                                   "error IS NOT NULL OR pid IS NULL OR host = '' OR device IS NULL)"));
    sql_text(g_ws, "SELECT config FROM runs WHERE id = 1", buf, sizeof buf);
    ASSERT(strstr(buf, "units: 8"));
    /* Every hyperparameter, under its --set name. */
    static const char *const keys[][2] = {
        {"model.input", "[4]"},          {"model.layers[0].units", "8"},
        {"model.layers[1].type", "relu"}, {"model.loss", "softmax_cross_entropy"},
        {"train.epochs", "3"},           {"train.batch_size", "10"},
        {"train.seed", "3"},             {"train.optimizer.type", "adam"},
        {"train.optimizer.lr", "0.05"},  {"train.optimizer.beta2", "0.999"},
        {"train.schedule.type", "constant"}, {"train.val_fraction", "0.1"},
        {"train.early_stopping.patience", "0"}, {"train.checkpoint_every", "1"},
        {"train.clip_norm", "0"},        {"train.device", "cpu"},
        {"train.threads", "1"},          {"data.name", "blobs"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT value FROM run_params WHERE run_id = 1 AND key = '%s'", keys[i][0]);
        sql_text(g_ws, sql, buf, sizeof buf);
        if (strcmp(buf, keys[i][1])) TEST_FAIL("param %s = '%s', expected '%s'", keys[i][0], buf, keys[i][1]);
    }
    /* 108 training rows (12 held out for validation) in batches of 10: 11 steps an epoch. */
    ASSERT_EQ_INT(33, sql_int(g_ws, "SELECT COUNT(*) FROM run_metrics WHERE run_id = 1 AND key = 'step_loss'"));
    ASSERT_EQ_INT(33, sql_int(g_ws, "SELECT MAX(step) FROM run_metrics WHERE run_id = 1 AND key = 'step_loss'"));
    ASSERT_EQ_INT(3, sql_int(g_ws, "SELECT COUNT(*) FROM run_metrics WHERE run_id = 1 AND key = 'val_accuracy'"));
    ASSERT_EQ_INT(22, sql_int(g_ws, "SELECT step FROM run_metrics WHERE run_id = 1 AND key = 'train_loss' AND epoch = 2"));
    ASSERT_EQ_INT(1, sql_int(g_ws, "SELECT COUNT(*) FROM run_summary WHERE run_id = 1 AND key = 'test_accuracy' AND value > 0.9"));
    ASSERT_EQ_INT(3, sql_int(g_ws, "SELECT value FROM run_summary WHERE run_id = 1 AND key = 'epoch'"));
    /* A checkpoint per epoch plus the final model, each an object. */
    ASSERT_EQ_INT(3, sql_int(g_ws, "SELECT COUNT(*) FROM checkpoints WHERE run_id = 1 AND final = 0"));
    ASSERT_EQ_INT(1, sql_int(g_ws, "SELECT COUNT(*) FROM checkpoints WHERE run_id = 1 AND final = 1 AND step = 33 AND epoch = 3"));
    ASSERT_EQ_INT(4, sql_int(g_ws, "SELECT COUNT(*) FROM checkpoints c JOIN objects o ON o.sha256 = c.object_sha256 WHERE run_id = 1"));
    sql_text(g_ws, "SELECT object_sha256 FROM checkpoints WHERE run_id = 1 AND final = 1", buf, sizeof buf);
    char path[4096];
    ASSERT_OK(kiln_store_object_path(g_ws, buf, path, sizeof path));
    ASSERT_EQ_INT(1, sql_int(g_ws, "SELECT COUNT(*) FROM audit WHERE action = 'run.start' AND subject = 'run:1'"));
    ASSERT_EQ_INT(1, sql_int(g_ws, "SELECT COUNT(*) FROM audit WHERE action = 'run.end' AND subject = 'run:1'"));
    int64_t entries;
    ASSERT_OK(kiln_audit_verify(g_ws, &entries));
    /* The out_dir defaults into the workspace. */
    sql_text(g_ws, "SELECT out_dir FROM runs WHERE id = 1", buf, sizeof buf);
    ASSERT(strstr(buf, "/.kiln/runs/1"));
    /* The lock is free again: reopening does not take the run for dead. */
    char lock[4400];
    snprintf(lock, sizeof lock, "%s/.kiln/locks/run-1.lock", g_dir);
    int fd = open(lock, O_RDONLY);
    ASSERT(fd >= 0);
    ASSERT(flock(fd, LOCK_EX | LOCK_NB) == 0);
    close(fd);
    char line[1024];
    ASSERT_OK(kiln_run_summary_line(g_ws, 1, line, sizeof line));
    ASSERT(strstr(line, "run:1 finished") && strstr(line, "test_accuracy"));
}

/* --- (c) batching ------------------------------------------------------------------- */

TEST(batching)
{
    struct kiln_config *cfg;
    struct kiln_dataset *ds;
    ASSERT_OK(kiln_config_load(tpath("mlp.yaml"), NULL, 0, &cfg));
    ASSERT_OK(kiln_dataset_load(tpath("blobs.h5"), &ds));
    struct kiln_run_options opt = kiln_run_options_default();
    opt.data_ref = "blobs.h5";
    opt.evaluate_test = false;
    struct kiln_run_recorder *rec;
    ASSERT_OK(kiln_run_recorder_create(g_ws, &opt, &rec));
    struct kiln_train_observer ob = kiln_run_recorder_observer(rec);
    struct kiln_train_state state = {0};
    char out_dir[4096] = "";
    ASSERT_OK(ob.on_start(ob.user, cfg, ds, "cpu (test)", &state, out_dir, sizeof out_dir));
    int64_t id = kiln_run_recorder_run_id(rec);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM run_metrics WHERE run_id = %lld AND key = 'step_loss'", (long long)id);
    for (int64_t s = 1; s <= 999; s++) ob.on_step(ob.user, 1, s, 1.0 / (double)s);
    ASSERT_EQ_INT(0, sql_int(g_ws, sql));
    ob.on_step(ob.user, 1, 1000, 0.001);
    ASSERT_EQ_INT(1000, sql_int(g_ws, sql));
    for (int64_t s = 1001; s <= 2500; s++) ob.on_step(ob.user, 1, s, 1.0 / (double)s);
    ASSERT_EQ_INT(2000, sql_int(g_ws, sql));
    struct kiln_epoch_report r = {.epoch = 1, .epochs = 1, .step = 2500, .lr = 0.01, .train_loss = 0.5};
    ASSERT_OK(ob.on_epoch(ob.user, &r, NULL));
    ASSERT_EQ_INT(2500, sql_int(g_ws, sql));
    /* The cost of logging, batched writes included. */
    for (int64_t s = 2501; s <= 102500; s++) ob.on_step(ob.user, 2, s, 0.5);
    r.epoch = 2;
    r.step = 102500;
    ASSERT_OK(ob.on_epoch(ob.user, &r, NULL));
    ASSERT_EQ_INT(102500, sql_int(g_ws, sql));
    int64_t steps;
    double secs;
    kiln_run_recorder_step_cost(rec, &steps, &secs);
    ASSERT_EQ_INT(102500, steps);
    double us = 1e6 * secs / (double)steps;
    fprintf(stderr, "logging cost: %.2f us per step over %lld steps\n", us, (long long)steps);
#ifdef __SANITIZE_ADDRESS__
    ASSERT(us < 500); /* sanitizers slow everything several times */
#else
    ASSERT(us < 50);
#endif
    ob.on_end(ob.user, KILN_ERR_NUMERIC, "made up", NULL, NULL);
    ASSERT_EQ_STR("made up", kiln_last_error());
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM runs WHERE id = %lld AND status = 'failed' AND error = 'made up'", (long long)id);
    ASSERT_EQ_INT(1, sql_int(g_ws, sql));
    kiln_run_recorder_free(rec);
    kiln_config_free(cfg);
    kiln_dataset_free(ds);
}

/* --- (d) a failing run -------------------------------------------------------------- */

TEST(failed_run)
{
    const char *sets[] = {"train.optimizer.type=sgd", "train.optimizer.lr=1e30"};
    int64_t id;
    ASSERT_STATUS(KILN_ERR_NUMERIC, record_run(sets, 2, NULL, &id, NULL), "epoch 1, step");
    ASSERT(id > 0);
    char sql[256], buf[1024];
    snprintf(sql, sizeof sql, "SELECT status || ': ' || error FROM runs WHERE id = %lld", (long long)id);
    sql_text(g_ws, sql, buf, sizeof buf);
    ASSERT(!strncmp(buf, "failed: ", 8) && strstr(buf, "epoch 1, step"));
    snprintf(sql, sizeof sql, "SELECT value FROM run_params WHERE run_id = %lld AND key = 'train.optimizer.lr'", (long long)id);
    sql_text(g_ws, sql, buf, sizeof buf);
    ASSERT_EQ_STR("1e+30", buf);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM checkpoints WHERE run_id = %lld AND final = 1", (long long)id);
    ASSERT_EQ_INT(0, sql_int(g_ws, sql));
    snprintf(sql, sizeof sql, "SELECT config FROM runs WHERE id = %lld", (long long)id);
    sql_text(g_ws, sql, buf, sizeof buf);
    ASSERT(strstr(buf, "#   train.optimizer.lr=1e30"));
}

/* --- (e) resume ----------------------------------------------------------------------- */

TEST(resume_interrupted)
{
    int64_t id;
    const char *sets[] = {"train.epochs=2"};
    ASSERT_OK(record_run(sets, 1, NULL, &id, NULL));
    char sql[512];
    /* Make it look like a run killed during epoch 3, after its checkpoint of
     * epoch 2 and a batch of step losses. */
    snprintf(sql, sizeof sql,
             "UPDATE runs SET status = 'interrupted', error = 'the training process died' WHERE id = %lld;"
             "DELETE FROM checkpoints WHERE run_id = %lld AND final = 1;"
             "INSERT INTO run_metrics VALUES(%lld, 'step_loss', 23, 3, 9.5, 0), (%lld, 'step_loss', 24, 3, 9.5, 0);"
             "INSERT OR REPLACE INTO run_summary VALUES(%lld, 'step_loss', 9.5)",
             (long long)id, (long long)id, (long long)id, (long long)id, (long long)id);
    ASSERT(sqlite3_exec(kiln_store_db(g_ws), sql, NULL, NULL, NULL) == SQLITE_OK);
    char ref[32];
    snprintf(ref, sizeof ref, "run:%lld", (long long)id);
    struct kiln_run_resume rp;
    ASSERT_OK(kiln_run_resume_point(g_ws, ref, &rp));
    ASSERT(rp.reuse);
    ASSERT_EQ_INT(2, rp.epoch);
    ASSERT_EQ_INT(22, rp.step);
    ASSERT_EQ_STR("interrupted", rp.status);
    int64_t again;
    ASSERT_OK(record_run(NULL, 0, &rp, &again, NULL));
    ASSERT_EQ_INT(id, again);
    snprintf(sql, sizeof sql, "SELECT status FROM runs WHERE id = %lld AND error IS NULL", (long long)id);
    char buf[64];
    sql_text(g_ws, sql, buf, sizeof buf);
    ASSERT_EQ_STR("finished", buf);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM run_metrics WHERE run_id = %lld AND key = 'step_loss'", (long long)id);
    ASSERT_EQ_INT(33, sql_int(g_ws, sql));
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM run_metrics WHERE run_id = %lld AND value = 9.5", (long long)id);
    ASSERT_EQ_INT(0, sql_int(g_ws, sql));
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM run_metrics WHERE run_id = %lld AND key = 'train_loss'", (long long)id);
    ASSERT_EQ_INT(3, sql_int(g_ws, sql));
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM run_summary WHERE run_id = %lld AND key = 'step_loss' AND value = 9.5", (long long)id);
    ASSERT_EQ_INT(0, sql_int(g_ws, sql));
    /* A finished run resumed starts a new run that remembers where it came from. */
    ASSERT_OK(kiln_run_resume_point(g_ws, ref, &rp));
    ASSERT(!rp.reuse);
    const char *more[] = {"train.epochs=4"};
    int64_t next;
    ASSERT_OK(record_run(more, 1, &rp, &next, NULL));
    ASSERT(next != id);
    snprintf(sql, sizeof sql, "SELECT resumed_from FROM runs WHERE id = %lld", (long long)next);
    ASSERT_EQ_INT(id, sql_int(g_ws, sql));
    snprintf(sql, sizeof sql, "SELECT MIN(step) FROM run_metrics WHERE run_id = %lld AND key = 'step_loss'", (long long)next);
    ASSERT_EQ_INT(34, sql_int(g_ws, sql));
    /* References. */
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_run_resume_point(g_ws, "run:999", &rp), "run:999");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_run_resume_point(g_ws, "run:abc", &rp), "run:N");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_run_resume_point(g_ws, "42", &rp), "run:N");
}

/* --- (f) queries ------------------------------------------------------------------------- */

static char *capture(enum kiln_status (*fn)(FILE *, void *), void *arg, enum kiln_status *st)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    *st = fn(f, arg);
    fclose(f);
    return text;
}

static enum kiln_status do_list(FILE *f, void *arg) { return kiln_runs_list(g_ws, arg, f); }

static enum kiln_status do_show(FILE *f, void *arg)
{
    return kiln_runs_show(g_ws, *(int64_t *)arg, false, f);
}

static enum kiln_status do_compare(FILE *f, void *arg)
{
    (void)arg;
    int64_t ids[2] = {1, 2};
    return kiln_runs_compare(g_ws, ids, 2, false, false, f);
}

TEST(queries)
{
    enum kiln_status st;
    struct kiln_runs_query q = {.columns = "id,status,train.optimizer.lr,test_accuracy",
                                .where = "status = 'finished' and test_accuracy > 0.5",
                                .sort = "id"};
    char *t = capture(do_list, &q, &st);
    ASSERT_OK(st);
    ASSERT(t && strstr(t, "train.optimizer.lr") && strstr(t, "0.05"));
    ASSERT(!strstr(t, "failed"));
    ASSERT(!strncmp(t, "id", 2) || strstr(t, " id"));
    free(t);
    q = (struct kiln_runs_query){.where = "status = 'failed'", .json = true};
    t = capture(do_list, &q, &st);
    ASSERT_OK(st);
    ASSERT(t && strstr(t, "\"status\": \"failed\"") && !strstr(t, "finished"));
    free(t);
    /* Injection through a column or sort key is refused before any SQL. */
    q = (struct kiln_runs_query){.columns = "id,status); DROP TABLE runs; --"};
    t = capture(do_list, &q, &st);
    ASSERT(st == KILN_ERR_USAGE);
    free(t);
    q = (struct kiln_runs_query){.sort = "id; DROP TABLE runs"};
    t = capture(do_list, &q, &st);
    ASSERT(st == KILN_ERR_USAGE);
    free(t);
    ASSERT(sql_int(g_ws, "SELECT COUNT(*) FROM runs") >= 4);
    int64_t id = 1;
    t = capture(do_show, &id, &st);
    ASSERT_OK(st);
    ASSERT(t && strstr(t, "run:1  finished") && strstr(t, "train.optimizer.lr") &&
           strstr(t, "checkpoints") && strstr(t, "val_accuracy") && strstr(t, "test_accuracy"));
    free(t);
    id = 999;
    t = capture(do_show, &id, &st);
    ASSERT(st == KILN_ERR_NOT_FOUND);
    free(t);
    t = capture(do_compare, NULL, &st);
    ASSERT_OK(st);
    ASSERT(t && strstr(t, "run.status") && strstr(t, "finished") && strstr(t, "failed"));
    free(t);
    int64_t n;
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_run_parse(g_ws, "run:999", &n), "no such run");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_run_parse(g_ws, "run:1x", &n), "run:N");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_run_parse(g_ws, "run:", &n), "run:N");
    ASSERT_OK(kiln_run_parse(g_ws, "run:1", &n));
    ASSERT_EQ_INT(1, n);
}

/* --- (g) MLflow ------------------------------------------------------------------------- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 20);
    if (buf) fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    return buf;
}

TEST(mlflow_export)
{
    int64_t ids[1] = {1}, n;
    ASSERT_OK(kiln_runs_export_mlflow(g_ws, tpath("mlruns"), ids, 1, &n));
    ASSERT_EQ_INT(1, n);
    char *meta = read_all(tpath("mlruns/0/meta.yaml"));
    ASSERT(meta && strstr(meta, "name: 'Default'"));
    free(meta);
    meta = read_all(tpath("mlruns/1/meta.yaml"));
    ASSERT(meta && strstr(meta, "name: 'kiln'") && strstr(meta, "experiment_id: '1'"));
    free(meta);
    /* Again: the same experiment and run folder. */
    ASSERT_OK(kiln_runs_export_mlflow(g_ws, tpath("mlruns"), NULL, 0, &n));
    ASSERT(n >= 4);
    struct stat sb;
    ASSERT(stat(tpath("mlruns/2"), &sb) != 0);
    char cmd[1024], run_dir[600] = "";
    snprintf(cmd, sizeof cmd, "grep -l \"^run_name: 'run:1'$\" %s/mlruns/1/*/meta.yaml", g_dir);
    FILE *p = popen(cmd, "r");
    ASSERT(p && fgets(run_dir, sizeof run_dir, p));
    pclose(p);
    run_dir[strcspn(run_dir, "\n")] = '\0';
    char *slash = strrchr(run_dir, '/');
    ASSERT(slash);
    *slash = '\0';
    char path[1024];
    snprintf(path, sizeof path, "%s/meta.yaml", run_dir);
    meta = read_all(path);
    ASSERT(meta && strstr(meta, "status: 3") && strstr(meta, "source_type: 4") &&
           strstr(meta, "lifecycle_stage: active") && strstr(meta, "tags: []"));
    free(meta);
    snprintf(path, sizeof path, "%s/params/model.layers.0.units", run_dir);
    char *v = read_all(path);
    ASSERT(v);
    ASSERT_EQ_STR("8", v);
    free(v);
    snprintf(path, sizeof path, "%s/metrics/step_loss", run_dir);
    v = read_all(path);
    ASSERT(v);
    int lines = 0;
    for (char *c = v; *c; c++) lines += *c == '\n';
    ASSERT_EQ_INT(33, lines);
    long long ts, step;
    double val;
    ASSERT(sscanf(v, "%lld %lf %lld", &ts, &val, &step) == 3 && step == 1 && ts > 1600000000000LL);
    free(v);
    snprintf(path, sizeof path, "%s/tags/mlflow.runName", run_dir);
    v = read_all(path);
    ASSERT(v);
    ASSERT_EQ_STR("run:1", v);
    free(v);
    snprintf(path, sizeof path, "%s/artifacts/config.yaml", run_dir);
    ASSERT(stat(path, &sb) == 0);
}

/* --- (h) sweep files ---------------------------------------------------------------------- */

TEST(sweep_files)
{
    write_text(tpath("grid.yaml"),
               "base: mlp.yaml\ndata: blobs.h5\nmetric: val_accuracy\nparameters:\n"
               "  train.optimizer.lr: [0.001, 0.01, 0.1]\n  train.batch_size: [8, 16]\n");
    struct kiln_sweep_spec *s;
    ASSERT_OK(kiln_sweep_load(tpath("grid.yaml"), &s));
    ASSERT(!s->random && s->maximize);
    ASSERT_EQ_INT(6, s->trials);
    ASSERT_EQ_STR(tpath("mlp.yaml"), s->base);
    ASSERT_EQ_STR(tpath("blobs.h5"), s->data);
    char sets[KILN_SWEEP_MAX_PARAMS][192];
    kiln_sweep_trial_sets(s, 0, sets);
    ASSERT_EQ_STR("train.optimizer.lr=0.001", sets[0]);
    ASSERT_EQ_STR("train.batch_size=8", sets[1]);
    kiln_sweep_trial_sets(s, 5, sets);
    ASSERT_EQ_STR("train.optimizer.lr=0.1", sets[0]);
    ASSERT_EQ_STR("train.batch_size=16", sets[1]);
    kiln_sweep_free(s);

    write_text(tpath("random.yaml"),
               "base: mlp.yaml\ndata: blobs\nmethod: random\ntrials: 20\nseed: 9\nmetric: val_loss\n"
               "parameters:\n  train.optimizer.lr: {min: 1e-4, max: 1e-1, log: true}\n"
               "  train.batch_size: {min: 8, max: 64, int: true}\n  train.optimizer.type: [adam, sgd]\n");
    ASSERT_OK(kiln_sweep_load(tpath("random.yaml"), &s));
    ASSERT(s->random && !s->maximize);
    ASSERT_EQ_STR("blobs", s->data);
    char again[KILN_SWEEP_MAX_PARAMS][192];
    for (int64_t t = 0; t < s->trials; t++) {
        kiln_sweep_trial_sets(s, t, sets);
        kiln_sweep_trial_sets(s, t, again);
        for (int i = 0; i < 3; i++) ASSERT_EQ_STR(sets[i], again[i]);
        double lr = atof(strchr(sets[0], '=') + 1);
        long bs = atol(strchr(sets[1], '=') + 1);
        ASSERT(lr >= 1e-4 && lr <= 1e-1);
        ASSERT(bs >= 8 && bs <= 64);
        ASSERT(!strcmp(sets[2], "train.optimizer.type=adam") || !strcmp(sets[2], "train.optimizer.type=sgd"));
    }
    kiln_sweep_free(s);

    static const char *const bad[][2] = {
        {"base: a.yaml\ndata: d\nmetric: m\nparameters:\n  train.epochs: {min: 1, max: 3}\n",
         "bad1.yaml:5:17: train.epochs: grid search needs a list"},
        {"base: a.yaml\ndata: d\nmetric: m\nmethod: random\nparameters:\n  train.epochs: [1]\n",
         "trials: missing"},
        {"base: a.yaml\ndata: d\nmetric: m\nparameters:\n  train.epochs: []\n", "bad3.yaml:5:17"},
        {"base: a.yaml\ndata: d\nmetrics: m\n", "bad4.yaml:3:1: metrics: unknown key"},
        {"base: a.yaml\ndata: d\nmetric: m\nparameters:\n  x: &a [1]\n  y: *a\n", "anchors"},
        {"base: a.yaml\ndata: d\nmetric: m\nparameters: {a: [1, [2]]}\n", "one scalar"},
        {"base: a.yaml\nbase: b.yaml\n", "bad7.yaml:2:1: base: given twice"},
        {"base: [a\n", "bad8.yaml:2:1: YAML syntax error"},
        {"base: a.yaml\ndata: d\nmetric: m\nmethod: random\ntrials: 0\nparameters: {a: [1]}\n",
         "trials: expected a whole number"},
        {"base: a.yaml\ndata: d\nmetric: m\nmethod: random\ntrials: 2\nparameters:\n"
         "  a: {min: 0, max: 1, log: true}\n", "log: true needs min > 0"},
        {"- 1\n- 2\n", "a sweep file is a map"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.yaml", i + 1);
        write_text(tpath(name), bad[i][0]);
        ASSERT_STATUS(KILN_ERR_CONFIG, kiln_sweep_load(tpath(name), &s), bad[i][1]);
    }
    ASSERT_STATUS(KILN_ERR_IO, kiln_sweep_load(tpath("missing.yaml"), &s), "missing.yaml");
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/kiln-test-runs.XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    char root[4096];
    if (kiln_store_init(g_dir, root, sizeof root) != KILN_OK ||
        kiln_store_open(g_dir, &g_ws) != KILN_OK || make_dataset(tpath("blobs.h5")) != KILN_OK) {
        fprintf(stderr, "setup failed: %s\n", kiln_last_error());
        return 1;
    }
    write_text(tpath("mlp.yaml"), CONFIG);
    RUN(where_accepts);
    RUN(where_refuses);
    RUN(record_run);
    RUN(batching);
    RUN(failed_run);
    RUN(resume_interrupted);
    RUN(queries);
    RUN(mlflow_export);
    RUN(sweep_files);
    kiln_store_close(g_ws);
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary();
}
