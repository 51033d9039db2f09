/* engine/core/status.c: status names and the thread-local error message. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/status.h"

#define KILN_ERROR_MAX 2048

static _Thread_local char last_error[KILN_ERROR_MAX];

static const struct {
    const char *name;
    int exit_code;
    const char *doc;
} status_table[] = {
#define KILN_X_ROW(code, name, exitcode, doc) [code] = {name, exitcode, doc},
    KILN_STATUS_LIST(KILN_X_ROW)
#undef KILN_X_ROW
};

#define STATUS_COUNT (sizeof status_table / sizeof status_table[0])

const char *kiln_status_name(enum kiln_status st)
{
    return (unsigned)st < STATUS_COUNT ? status_table[st].name : "unknown";
}

int kiln_status_exit_code(enum kiln_status st)
{
    return (unsigned)st < STATUS_COUNT ? status_table[st].exit_code : 1;
}

const char *kiln_status_doc(enum kiln_status st)
{
    return (unsigned)st < STATUS_COUNT ? status_table[st].doc : "unknown status";
}

enum kiln_status kiln_errorf(enum kiln_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return st;
}

enum kiln_status kiln_error_context(enum kiln_status st, const char *fmt, ...)
{
    char joined[2 * KILN_ERROR_MAX + 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(joined, KILN_ERROR_MAX, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n >= KILN_ERROR_MAX) n = KILN_ERROR_MAX - 1;
    joined[n++] = ':';
    joined[n++] = ' ';
    memcpy(joined + n, last_error, strlen(last_error) + 1);
    /* Too long a message is cut, never overrun. */
    memcpy(last_error, joined, KILN_ERROR_MAX - 1);
    last_error[KILN_ERROR_MAX - 1] = '\0';
    return st;
}

const char *kiln_last_error(void) { return last_error; }

void kiln_clear_error(void) { last_error[0] = '\0'; }

void kiln_assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "kiln: internal error: assertion '%s' failed at %s:%d\n", what, file, line);
    abort();
}
