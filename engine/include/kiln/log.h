/* kiln/log.h: the one way the engine talks to a person.
 *
 *   kiln_log_set_sink(my_sink, NULL);       // the CLI installs a sink
 *   kiln_log(KILN_LOG_INFO, "imported %lld rows", (long long)n);
 *
 * The engine never writes to stdout or stderr itself; without a sink, log
 * lines are dropped. Progress of long jobs goes through struct
 * kiln_progress callbacks (see train.h), not through here.
 */
#ifndef KILN_LOG_H
#define KILN_LOG_H

enum kiln_log_level { KILN_LOG_DEBUG, KILN_LOG_INFO, KILN_LOG_WARN };

typedef void (*kiln_log_sink_fn)(enum kiln_log_level level, const char *msg, void *user);

/* Installs the sink (NULL drops every line). Not thread-safe: call at start-up. */
void kiln_log_set_sink(kiln_log_sink_fn fn, void *user);
void kiln_log(enum kiln_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
