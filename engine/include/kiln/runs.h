/* kiln/runs.h: tracked training runs in a workspace: the recorder that
 * watches kiln_train, the queries behind `kiln runs list|show|compare`, the
 * MLflow export, and sweeps.
 *
 *   struct kiln_run_options opt = kiln_run_options_default();
 *   opt.data_ref = "blobs";
 *   struct kiln_run_recorder *rec;
 *   kiln_run_recorder_create(ws, &opt, &rec);
 *   job.observer = kiln_run_recorder_observer(rec);   // records as it trains
 *   kiln_train(&job, &result);                        // run:N finished or failed
 *   kiln_run_recorder_free(rec);
 *
 *   struct kiln_runs_query q = {.where = "test_accuracy > 0.88", .limit = 20};
 *   kiln_runs_list(ws, &q, stdout);
 *
 * What a run records (tables in docs/FORMATS.md, "Runs"): the resolved config
 * and every hyperparameter flattened to `train.optimizer.lr`-style keys, the
 * dataset version, engine version and commit, host, user, pid, device,
 * threads, times, status (running, finished, failed with the error,
 * interrupted), per-step loss (batched: one transaction per 1000 steps or 2
 * seconds and at every epoch end), per-epoch metrics, checkpoints (stored as
 * objects) and final metrics, with the test split's when the dataset has one.
 *
 * A recording process holds an exclusive flock on the run's lock file for
 * as long as the run is open; a run whose process died (kill -9) is marked
 * interrupted by the next command that opens the workspace.
 */
#ifndef KILN_RUNS_H
#define KILN_RUNS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/lifecycle.h"
#include "kiln/status.h"
#include "kiln/store.h"

/* --- resuming ------------------------------------------------------------------ */

/* Where `kiln train --resume run:N` continues. */
struct kiln_run_resume {
    int64_t run_id;
    char status[16];              /* the run's status before the resume */
    /* true for an interrupted or failed run: the same run continues (its
     * metrics after the checkpoint's step are deleted first, so nothing is
     * duplicated). false for a finished run: a new run is recorded with
     * resumed_from = run_id (e.g. to train more epochs). */
    bool reuse;
    int64_t epoch, step;          /* of the checkpoint */
    char checkpoint_path[4096];   /* the checkpoint object (hash verified); "" when the
                                     run died before its first: it starts over */
    int64_t dataset_version_id;   /* the run's dataset version, 0 when a plain file */
    char data_path[4096];         /* the run's dataset file (object or plain path), "" if gone */
    char data_ref[4096];          /* the run's --data as it was given */
};

/* Looks up the last checkpoint of the run text names ("run:N"):
 * KILN_ERR_USAGE for a malformed reference or a run that is still running,
 * KILN_ERR_NOT_FOUND for an unknown run or one without any checkpoint,
 * KILN_ERR_INTEGRITY when the checkpoint object fails its hash. */
enum kiln_status kiln_run_resume_point(struct kiln_store *ws, const char *text,
                                       struct kiln_run_resume *out);

/* --- recording ------------------------------------------------------------------- */

struct kiln_run_options {
    const char *data_ref;          /* --data as the user wrote it (recorded as param data) */
    int64_t dataset_version_id;    /* 0: found by the dataset's content hash, if registered */
    int64_t sweep_id;              /* 0: not part of a sweep */
    const struct kiln_run_resume *resume; /* NULL: a fresh run */
    const char *const *sets;       /* the --set overrides (recorded in the run's config) */
    int n_sets;
    bool evaluate_test;            /* at the end, evaluate the final model on the test split */
    /* Called once the run has its id (before training starts), e.g. to print it. */
    void (*on_run_id)(void *user, int64_t run_id);
    void *user;
};

/* evaluate_test on, everything else empty. */
struct kiln_run_options kiln_run_options_default(void);

struct kiln_run_recorder;

/* A recorder for one training job in ws (borrowed: ws must outlive it).
 * opt's strings are copied. Caller frees. */
enum kiln_status kiln_run_recorder_create(struct kiln_store *ws, const struct kiln_run_options *opt,
                                          struct kiln_run_recorder **out);
/* The observer to put into kiln_train_job.observer; its user is rec. */
struct kiln_train_observer kiln_run_recorder_observer(struct kiln_run_recorder *rec);
/* The run's id once on_start has recorded it, else 0. */
int64_t kiln_run_recorder_run_id(const struct kiln_run_recorder *rec);
/* Steps logged and the wall time spent in on_step (buffering and the batched
 * writes), for measuring the cost of logging. */
void kiln_run_recorder_step_cost(const struct kiln_run_recorder *rec, int64_t *steps,
                                 double *seconds);
/* Releases the run's lock; NULL is fine. */
void kiln_run_recorder_free(struct kiln_run_recorder *rec);

/* Parses "run:N" and checks the run exists: KILN_ERR_USAGE when text is not
 * run:N, KILN_ERR_NOT_FOUND when there is no such run. */
enum kiln_status kiln_run_parse(struct kiln_store *ws, const char *text, int64_t *id);

/* One line about a run: "run:3 finished in 2.1s: val_loss 0.12, val_accuracy
 * 0.97, test_accuracy 0.96". */
enum kiln_status kiln_run_summary_line(struct kiln_store *ws, int64_t id, char *buf, size_t len);

/* --- queries ------------------------------------------------------------------------
 * Keys name what a column shows and what --where and --sort compare:
 *   id status dataset started ended duration host user device threads pid
 *   sweep resumed_from engine commit error out_dir   the run's own fields
 *   a key with a '.' (train.optimizer.lr, model.layers[0].units, data.sha256)
 *                                                     a param (text; compared as a
 *                                                     number against a number)
 *   any other key (val_accuracy, test_accuracy, lr)   a metric's latest value
 * --where is `KEY OP VALUE [and KEY OP VALUE]...`, OP one of > >= < <= = !=,
 * VALUE a number or a quoted string ('...' or "..."). It compiles to SQL with
 * every key and value bound as a parameter: text is never pasted into SQL. */

struct kiln_runs_query {
    const char *columns;          /* comma-separated keys; NULL: the default set */
    const char *where;            /* NULL or "": every run */
    const char *sort;             /* a key; NULL: newest first */
    bool desc;                    /* sort descending (runs without the key go last) */
    int64_t limit;                /* 0: all */
    bool json;                    /* a JSON array of objects instead of a table */
};

/* The columns when the query names none. */
extern const char KILN_RUNS_DEFAULT_COLUMNS[];

/* Prints the runs matching q to out. KILN_ERR_USAGE naming the offending
 * token for a bad column, --where or --sort. */
enum kiln_status kiln_runs_list(struct kiln_store *ws, const struct kiln_runs_query *q, FILE *out);
/* Compiles a --where expression to its SQL condition (for tests and
 * docs): the condition with ?N placeholders into sql, the number of bound
 * values into *n_bound. KILN_ERR_USAGE naming the position of what is
 * wrong. */
enum kiln_status kiln_runs_where_sql(const char *where, char *sql, size_t len, int *n_bound);

/* Everything about one run: its record, dataset, params, per-epoch metrics,
 * checkpoints, final metrics and config. */
enum kiln_status kiln_runs_show(struct kiln_store *ws, int64_t id, bool json, FILE *out);
/* Runs side by side: the params that differ (all with all) and every final
 * metric, with deltas against the first run. n >= 2. */
enum kiln_status kiln_runs_compare(struct kiln_store *ws, const int64_t *ids, int n, bool all,
                                   bool json, FILE *out);

/* Writes runs (ids; every run when n == 0) in MLflow's file-store layout
 * under dir (created when missing): an experiment named "kiln" (and the
 * Default experiment 0 when dir is new), one folder per run with meta.yaml,
 * params/, metrics/ (`timestamp_ms value step` lines), tags/ and
 * artifacts/config.yaml. Exporting again rewrites the same run folders. */
enum kiln_status kiln_runs_export_mlflow(struct kiln_store *ws, const char *dir,
                                         const int64_t *ids, int n, int64_t *exported);

/* --- sweeps -------------------------------------------------------------------------
 * A sweep file (docs/FORMATS.md, "Sweep file"):
 *   base: mlp.yaml                  # the config; relative to the sweep file
 *   data: blobs                     # a dataset reference (a path: relative to the sweep file)
 *   method: grid                    # or random
 *   trials: 8                       # random: how many
 *   seed: 1                         # random: the draws
 *   metric: val_accuracy            # what ranks the trials
 *   mode: max                       # or min
 *   parameters:
 *     train.optimizer.lr: [0.001, 0.003]           # values (grid, or random choice)
 *     train.batch_size: {min: 16, max: 64, int: true}  # random only
 *     train.optimizer.weight_decay: {min: 1e-5, max: 1e-2, log: true}
 */

#define KILN_SWEEP_MAX_PARAMS 16
#define KILN_SWEEP_MAX_VALUES 64
#define KILN_SWEEP_MAX_TRIALS 10000

struct kiln_sweep_param {
    char key[128];
    int n_values;                  /* > 0: a list of values */
    char *values[KILN_SWEEP_MAX_VALUES];
    double min, max;               /* n_values == 0: a range */
    bool log, integer;
};

struct kiln_sweep_spec {
    char path[4096];
    char base[4096];               /* resolved against the sweep file's folder */
    char data[4096];
    bool random;
    int64_t trials;                /* random; grid: the product of the value counts */
    uint64_t seed;
    char metric[64];
    bool maximize;
    int n_params;
    struct kiln_sweep_param params[KILN_SWEEP_MAX_PARAMS];
    char *source;                  /* the file as read */
};

/* Reads and checks a sweep file; errors name file:line:column and the key.
 * Caller frees with kiln_sweep_free. */
enum kiln_status kiln_sweep_load(const char *path, struct kiln_sweep_spec **out);
void kiln_sweep_free(struct kiln_sweep_spec *spec);
/* The --set values ("key=value") of trial t (0-based) into sets (n_params of
 * them, each up to 192 bytes). Random draws depend only on seed and t. */
void kiln_sweep_trial_sets(const struct kiln_sweep_spec *spec, int64_t t,
                           char sets[][192]);

struct kiln_sweep_options {
    const char *exe;               /* the kiln binary each trial runs */
    int jobs;                      /* trials at once (>= 1) */
    int threads;                   /* passed to each trial when > 0 */
    const char *device;            /* passed to each trial when not NULL */
};

/* Records a sweep, runs every trial as `exe train BASE --data DATA --set
 * k=v ... --sweep-id S --workspace ROOT` (jobs at a time; each trial's output
 * goes to .kiln/sweeps/S/trial-T.log), and prints a line per finished trial
 * and, at the end, the trials ranked by the metric to out. Each trial's
 * config is checked before any trial starts (KILN_ERR_CONFIG naming the
 * trial). A failing trial is recorded as failed and the sweep goes on; the
 * sweep fails only when every trial failed (with the first trial's status). */
enum kiln_status kiln_sweep_run(struct kiln_store *ws, const struct kiln_sweep_spec *spec,
                                const struct kiln_sweep_options *opt, int64_t *sweep_id,
                                FILE *out);

#endif
