/* engine/lifecycle/runs-internal.h: what runs.c, runs-query.c,
 * runs-mlflow.c and sweep.c share (not public API). */
#ifndef KILN_RUNS_INTERNAL_H
#define KILN_RUNS_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/util.h" /* struct sbuf */
#include "kiln/runs.h"
#include "store-internal.h"

/* snprintf that says whether it fit (false: buf holds a truncated string):
 * for paths and messages whose parts can be long. */
bool runs_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* UTC now with milliseconds: "2026-11-26T21:28:19.123Z". */
void runs_time_now(char buf[40]);
/* Seconds since the epoch of an ISO 8601 UTC time as runs store them (with
 * or without milliseconds); -1 when it does not parse. */
double runs_time_parse(const char *iso);

/* The shortest decimal text that reads back to the same float ("0.003",
 * not "0.00300000003"). */
void runs_format_float(float f, char *buf, size_t len);
/* A metric value for a table: "0.9833", "1.235e-05". */
void runs_format_metric(double v, char *buf, size_t len);

/* Column text, "" for NULL. */
const char *runs_col_text(sqlite3_stmt *s, int col);

#endif
