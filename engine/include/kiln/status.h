/* kiln/status.h: status codes and the error message that goes with them.
 *
 *   enum kiln_status st = kiln_dataset_load("fm.h5", &ds);
 *   if (st != KILN_OK)
 *       fprintf(stderr, "kiln: error: %s\n", kiln_last_error());
 *
 * Every engine function that can fail returns an enum kiln_status and, on
 * failure, records a message naming what failed and where (file, line, key).
 * The message is thread-local and stays until the next failure on that thread.
 */
#ifndef KILN_STATUS_H
#define KILN_STATUS_H

/* X(code, name, exit code of the CLI, one-line meaning) */
#define KILN_STATUS_LIST(X)                                                    \
    X(KILN_OK, "ok", 0, "success")                                             \
    X(KILN_ERR_USAGE, "usage", 2, "bad command-line arguments")                \
    X(KILN_ERR_IO, "io", 3, "a file could not be read or written")             \
    X(KILN_ERR_FORMAT, "format", 4, "a file is truncated, corrupt or not what was expected") \
    X(KILN_ERR_CONFIG, "config", 5, "the YAML config is invalid")              \
    X(KILN_ERR_SHAPE, "shape", 6, "shapes do not match (model vs data)")       \
    X(KILN_ERR_NUMERIC, "numeric", 7, "a NaN or Inf appeared (training stopped)") \
    X(KILN_ERR_NOMEM, "nomem", 8, "out of memory")                             \
    X(KILN_ERR_UNSUPPORTED, "unsupported", 9, "not supported by this build")   \
    X(KILN_ERR_BACKEND, "backend", 10, "a compute backend failed")             \
    X(KILN_ERR_NOT_FOUND, "not_found", 11, "no such dataset, run, model or workspace") \
    X(KILN_ERR_INTEGRITY, "integrity", 12, "stored data fails its hash or the audit chain") \
    X(KILN_ERR_INTERNAL, "internal", 70, "an internal invariant failed (a bug)")

enum kiln_status {
#define KILN_X_ENUM(code, name, exitcode, doc) code,
    KILN_STATUS_LIST(KILN_X_ENUM)
#undef KILN_X_ENUM
};

/* Short name of a status ("io", "config", ...). Never NULL. */
const char *kiln_status_name(enum kiln_status st);
/* The process exit code the CLI uses for a status. */
int kiln_status_exit_code(enum kiln_status st);
/* One-line meaning of a status, for `--help` and docs. */
const char *kiln_status_doc(enum kiln_status st);

/* Records a formatted message for st and returns st, so that failure paths
 * read `return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));`. */
enum kiln_status kiln_errorf(enum kiln_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes the current message with context ("loading model.h5: ...") and
 * returns st unchanged. */
enum kiln_status kiln_error_context(enum kiln_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The last message recorded on this thread ("" when none). */
const char *kiln_last_error(void);
void kiln_clear_error(void);

/* Internal invariants only: a failed assertion is a bug, never bad input. */
#define KILN_ASSERT(cond)                                                      \
    do {                                                                       \
        if (!(cond)) kiln_assert_fail(#cond, __FILE__, __LINE__);              \
    } while (0)
_Noreturn void kiln_assert_fail(const char *what, const char *file, int line);

#endif
