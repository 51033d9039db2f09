/* engine/core/log.c: routes engine messages to the sink the CLI installs. */
#include <stdarg.h>
#include <stdio.h>

#include "kiln/log.h"

static kiln_log_sink_fn log_sink;
static void *log_user;

void kiln_log_set_sink(kiln_log_sink_fn fn, void *user)
{
    log_sink = fn;
    log_user = user;
}

void kiln_log(enum kiln_log_level level, const char *fmt, ...)
{
    if (!log_sink) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_sink(level, msg, log_user);
}
