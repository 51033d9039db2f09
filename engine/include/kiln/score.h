/* kiln/score.h: batch scoring: a model (or a verified package) over an HDF5
 * or CSV file of any size, in bounded memory, resumable after a crash, and,
 * inside a workspace, recorded as a scoring job.
 *
 *   struct kiln_score_job job = {.model = "clf.kiln", .input = "big.h5",
 *                                .output = "pred.h5", .resume = true};
 *   struct kiln_score_result res;
 *   if (kiln_score(&job, &res) == KILN_OK) ...   // res.rows, res.resumed_from
 *
 * A reader thread, the caller's thread (the model) and a writer thread pass
 * chunks of job.batch rows through a ring of KILN_SCORE_RING buffers, so
 * memory is KILN_SCORE_RING x chunk whatever the number of rows. Every run
 * (any input and output format) writes OUTPUT.partial and OUTPUT.progress
 * (rows written, for CSV the byte offset where they end, input path, size
 * and mtime, model hash), both handed to the OS after every chunk (a killed
 * process loses nothing written) and fsynced every 2 s; resume continues
 * after the last chunk the progress file records (an HDF5 partial is cut
 * back to that row, a CSV one to that byte; a CSV input is re-read up to
 * it), and the finished file is renamed to OUTPUT.
 */
#ifndef KILN_SCORE_H
#define KILN_SCORE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kiln/status.h"

#define KILN_SCORE_RING 3
/* The default chunk: about KILN_SCORE_CHUNK_BYTES of input rows, within
 * [KILN_SCORE_MIN_BATCH, KILN_SCORE_MAX_BATCH] rows. */
#define KILN_SCORE_CHUNK_BYTES ((int64_t)8 << 20)
#define KILN_SCORE_MIN_BATCH 256
#define KILN_SCORE_MAX_BATCH 65536

struct kiln_score_job {
    const char *model;          /* a .kiln package (verified first) or a model file */
    const char *model_name;     /* recorded in the output when set (a package's own win) */
    int64_t model_version;
    const char *input;          /* .h5/.hdf5 or .csv */
    const char *input_array;    /* HDF5 array, NULL: test/X then X */
    const char *drop_column;    /* CSV column to skip, or NULL */
    const char *output;         /* .h5/.hdf5 or .csv */
    const char *device;         /* kiln_backend_open's names; NULL: "cpu" */
    int64_t batch;              /* rows per chunk, 0: about KILN_SCORE_CHUNK_BYTES */
    int threads;                /* CPU threads for the model, 0: the default */
    bool resume;                /* continue an interrupted run */
    /* Called from the writer thread after every chunk is durable. */
    void (*on_progress)(void *user, int64_t rows_done, int64_t rows_total, double seconds);
    void *user;
};

struct kiln_score_result {
    int64_t rows;               /* rows in the output */
    int64_t resumed_from;       /* rows already written by the interrupted run */
    double seconds;             /* this run's wall time */
    /* Seconds each stage spent working (not waiting for the others): reading
     * and converting rows, transforms + model, writing + flushing. */
    double read_seconds, compute_seconds, write_seconds;
    char package_sha256[65];    /* "" for a model file */
    char model_sha256[65];      /* the model file that scored ("" when it never loaded) */
    char model_name[256];       /* as recorded in the output ("" when unknown) */
    int64_t model_version;      /* 0 when unknown */
};

/* Scores job->input with job->model into job->output. Without resume an
 * old OUTPUT.partial is replaced; with resume a progress record for another
 * input (path, size, mtime) or model is KILN_ERR_USAGE, and a missing one
 * starts from row 0. On failure OUTPUT is untouched. */
enum kiln_status kiln_score(const struct kiln_score_job *job, struct kiln_score_result *out);

/* --- inside a workspace (engine/lifecycle/scorejobs.c) ------------------------
 * A scoring job is a row of score_jobs (docs/FORMATS.md, "Scoring jobs"):
 * recorded as running before the first row is read (with an audit entry
 * score.start), finished or failed at the end with the model version, the
 * input dataset version, the output's SHA-256, rows and timings (score.end).
 * The process holds an flock on .kiln/locks/score-N.lock while it scores, so
 * a job whose process died is marked interrupted by the next listing or job
 * (score.interrupted). */
struct kiln_store;

struct kiln_scorejob_options {
    const char *model_ref;      /* the model or package as the user named it */
    const char *input_ref;      /* the input as the user named it */
    /* dataset_versions.id of the input when it was given as a reference; 0:
     * the newest version whose content hash is the input file's `sha256`
     * attribute (a kiln dataset file), if any. */
    int64_t input_version_id;
    const char *split;          /* the split scored when the input is a dataset, or NULL */
    /* When set, the finished output is registered as a version of this
     * dataset: one split, train, X = the scored rows (a kiln dataset's
     * split as it stores it, any other input as the float32 rows the model
     * read), y = the predicted class (classifiers) or outputs (regression);
     * parent = the input's version when known. Needs an HDF5 output; holds
     * the rows in memory, as kiln data import does. */
    const char *register_name;
};

struct kiln_scorejob_result {
    int64_t job_id;
    int64_t model_version_id;   /* model_versions.id, 0 when the model is not registered */
    int64_t input_version_id;   /* dataset_versions.id, 0 when unknown */
    char output_sha256[65];
    int64_t registered_version_id; /* 0 unless register_name */
    char registered[300];       /* "NAME@vN (sha12)" of the registered version */
};

/* kiln_score inside workspace ws, recorded as a job (and its output
 * registered when opt->register_name is set). The job row is written even
 * when scoring fails (status failed, with the error); the status returned
 * is the scoring's, or the recording's when scoring succeeded. */
enum kiln_status kiln_scorejob_run(struct kiln_store *ws, const struct kiln_score_job *job,
                                   const struct kiln_scorejob_options *opt,
                                   struct kiln_score_result *res,
                                   struct kiln_scorejob_result *out);
/* Prints the newest limit jobs (0: all), newest first: a table, or with json
 * an array of objects with every column. (Opening ws marked the jobs whose
 * process died interrupted.) */
enum kiln_status kiln_scorejobs_list(struct kiln_store *ws, int64_t limit, bool json, FILE *out);

#endif
