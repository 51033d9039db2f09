/* kiln/predlog.h: the prediction log: a sampled share of inference
 * requests written as JSON lines to rotated files by a background thread,
 * so that logging never sits on the request path (docs/FORMATS.md,
 * "Prediction log").
 *
 *   struct kiln_predlog_options o = {.dir = "predlog", .sample = 0.1,
 *                                    .model_name = "clf", .model_version = 3};
 *   struct kiln_predlog *log;
 *   if (kiln_predlog_open(&o, &log) == KILN_OK) {
 *       kiln_predlog_record(log, "req-17", x, rows, width, y, k, classes);
 *       ...
 *       kiln_predlog_close(log);            // drains the queue, flushes
 *   }
 *
 * One line per sampled request:
 *   {"time":"2026-11-27T01:02:03.123Z","request_id":"req-17","model":"clf",
 *    "model_version":3,"rows":2,"inputs":[[...],[...]],"outputs":[[...],[...]],
 *    "classes":[4,1]}
 * "inputs" is absent with redact; "classes" only for classifiers. The active
 * file is DIR/predictions.jsonl; when it would pass max_file_bytes it is
 * renamed to DIR/predictions-<UTC stamp>-<seq>.jsonl and the oldest rotated
 * files beyond max_files are removed.
 */
#ifndef KILN_PREDLOG_H
#define KILN_PREDLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/status.h"

#define KILN_PREDLOG_FILE "predictions.jsonl"
#define KILN_PREDLOG_MAX_FILE_BYTES ((int64_t)64 << 20) /* default rotation size */
#define KILN_PREDLOG_MAX_FILES 10                       /* default rotated files kept */
#define KILN_PREDLOG_QUEUE_BYTES ((int64_t)64 << 20)    /* queued records, at most */

struct kiln_predlog_options {
    const char *dir;            /* made when missing */
    double sample;              /* share of requests logged, in [0, 1] */
    bool redact;                /* leave the inputs out */
    int64_t max_file_bytes;     /* <= 0: KILN_PREDLOG_MAX_FILE_BYTES */
    int max_files;              /* rotated files kept, <= 0: KILN_PREDLOG_MAX_FILES */
    const char *model_name;
    int64_t model_version;
    uint64_t seed;              /* of the sampling decision (counter-based) */
};

struct kiln_predlog;

/* Makes o->dir, opens (appends to) its active file and starts the writer
 * thread. KILN_ERR_USAGE for a sample outside [0, 1], KILN_ERR_IO when the
 * folder cannot be made or written. Caller closes *out. */
enum kiln_status kiln_predlog_open(const struct kiln_predlog_options *o, struct kiln_predlog **out);

/* Decides whether this request is sampled and, when it is, copies it and
 * queues it for the writer thread; never blocks on the disk. x is rows x
 * width raw inputs, y rows x k outputs, classes (may be NULL) rows predicted
 * class indices. When the queue holds KILN_PREDLOG_QUEUE_BYTES the record is
 * dropped and counted. Thread-safe. */
void kiln_predlog_record(struct kiln_predlog *l, const char *request_id, const float *x,
                         int64_t rows, int64_t width, const float *y, int64_t k,
                         const int32_t *classes);

struct kiln_predlog_counts {
    int64_t sampled;            /* records queued */
    int64_t written;            /* records written to a file */
    int64_t dropped;            /* records dropped: queue full */
    int64_t errors;             /* records lost to a write error (logged once) */
    int64_t rotations;
};
/* A snapshot of the counters. Thread-safe. */
struct kiln_predlog_counts kiln_predlog_counts(const struct kiln_predlog *l);

/* Writes what is queued, closes the file and stops the thread; NULL is fine. */
void kiln_predlog_close(struct kiln_predlog *l);

/* Reads a prediction log (one file, or a folder: every predictions*.jsonl in
 * it, oldest first) and calls fn for each record's rows: x (rows x width, NULL
 * when the log is redacted) and classes (NULL when absent). A malformed line
 * is KILN_ERR_FORMAT naming the file and line; fn returning non-OK stops. */
typedef enum kiln_status (*kiln_predlog_row_fn)(void *user, const float *x, int64_t rows,
                                                 int64_t width, const int32_t *classes);
enum kiln_status kiln_predlog_read(const char *path, kiln_predlog_row_fn fn, void *user);

#endif
