/* kiln/score.h: batch scoring: a model (or a verified package) over an HDF5
 * or CSV file of any size, in bounded memory, resumable after a crash.
 *
 *   struct kiln_score_job job = {.model = "clf.kiln", .input = "big.h5",
 *                                .output = "pred.h5", .resume = true};
 *   struct kiln_score_result res;
 *   if (kiln_score(&job, &res) == KILN_OK) ...   // res.rows, res.resumed_from
 *
 * A reader thread, the caller's thread (the model) and a writer thread pass
 * chunks of job.batch rows through a ring of KILN_SCORE_RING buffers, so
 * memory is KILN_SCORE_RING x chunk whatever the number of rows. HDF5 to
 * HDF5 runs write OUTPUT.partial and OUTPUT.progress (rows written, input
 * path, size and mtime, model hash), both handed to the OS after every
 * chunk (a killed process loses nothing written) and fsynced every 2 s;
 * resume continues after the last chunk the progress file records, and the
 * finished file is renamed to OUTPUT.
 */
#ifndef KILN_SCORE_H
#define KILN_SCORE_H

#include <stdbool.h>
#include <stdint.h>

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
    int64_t batch;              /* rows per chunk, 0: about KILN_SCORE_CHUNK_BYTES */
    int threads;                /* CPU threads for the model, 0: the default */
    bool resume;                /* continue an interrupted run (HDF5 to HDF5 only) */
    /* Called from the writer thread after every chunk is durable. */
    void (*on_progress)(void *user, int64_t rows_done, int64_t rows_total, double seconds);
    void *user;
};

struct kiln_score_result {
    int64_t rows;               /* rows in the output */
    int64_t resumed_from;       /* rows already written by the interrupted run */
    double seconds;             /* this run's wall time */
    char package_sha256[65];    /* "" for a model file */
};

/* Scores job->input with job->model into job->output. Without resume an
 * old OUTPUT.partial is replaced; with resume a progress record for another
 * input (path, size, mtime) or model is KILN_ERR_USAGE, and a missing one
 * starts from row 0. On failure OUTPUT is untouched. */
enum kiln_status kiln_score(const struct kiln_score_job *job, struct kiln_score_result *out);

#endif
