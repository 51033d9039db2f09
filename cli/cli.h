/* cli/cli.h: what the command files share. The CLI parses arguments, calls
 * libkiln and prints; it holds no logic of its own. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <stdbool.h>

#include "kiln/status.h"

/* Each command returns a status; main turns it into the message and exit
 * code (docs/CLI.md lists the codes). */
typedef enum kiln_status (*cli_command_fn)(int argc, char **argv);

enum kiln_status cmd_data(int argc, char **argv);
enum kiln_status cmd_train(int argc, char **argv);
enum kiln_status cmd_eval(int argc, char **argv);
enum kiln_status cmd_predict(int argc, char **argv);
enum kiln_status cmd_score(int argc, char **argv);
enum kiln_status cmd_serve(int argc, char **argv);
enum kiln_status cmd_config(int argc, char **argv);
enum kiln_status cmd_version(int argc, char **argv);
enum kiln_status cmd_init(int argc, char **argv);
enum kiln_status cmd_gc(int argc, char **argv);
enum kiln_status cmd_fsck(int argc, char **argv);
enum kiln_status cmd_audit(int argc, char **argv);
enum kiln_status cmd_runs(int argc, char **argv);
enum kiln_status cmd_sweep(int argc, char **argv);
enum kiln_status cmd_model(int argc, char **argv);
enum kiln_status cmd_keygen(int argc, char **argv);
/* kiln model package / kiln model verify (cli/cmd-package.c); argv[0] is the subcommand. */
enum kiln_status cmd_model_package(int argc, char **argv);
enum kiln_status cmd_model_verify(int argc, char **argv);
enum kiln_status cmd_monitor(int argc, char **argv);
enum kiln_status cmd_bench(int argc, char **argv);

/* True when argv holds -h or --help; prints usage to stdout then. */
bool cli_wants_help(int argc, char **argv, const char *usage);
/* Reports a usage error with the command's usage line. */
enum kiln_status cli_usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Parses a whole non-negative integer / a float option value. */
enum kiln_status cli_parse_int(const char *opt, const char *s, long long *out);
enum kiln_status cli_parse_double(const char *opt, const char *s, double *out);

/* Option parsing, one argument at a time: when argv[*i] is name (or
 * name=VALUE), stores the value (the next argument) in *value, advances *i
 * past it and returns true. A missing value sets *st to a usage error. */
bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value,
             enum kiln_status *st);

struct kiln_store;
/* Opens the workspace named by --workspace (ws_dir, may be NULL) or found by
 * walking up from the cwd. required: no workspace is an error suggesting
 * `kiln init`; otherwise *out may come back NULL. */
enum kiln_status cli_open_store(const char *ws_dir, bool required, struct kiln_store **out);

#endif
