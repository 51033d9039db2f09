/* cli/main.c: the kiln command: dispatch, help, exit codes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kiln/log.h"

static const struct {
    const char *name;
    cli_command_fn fn;
    const char *summary;
} commands[] = {
    {"data", cmd_data, "import, version, transform, compare and export datasets"},
    {"train", cmd_train, "train a model from a YAML config"},
    {"eval", cmd_eval, "evaluate a model on a dataset split"},
    {"predict", cmd_predict, "run a model over HDF5 or CSV rows"},
    {"score", cmd_score, "batch-score a package or model over a large file (resumable)"},
    {"serve", cmd_serve, "serve a package over HTTP (KServe v2 / Triton protocol, /metrics)"},
    {"config", cmd_config, "print the config reference or check a config"},
    {"init", cmd_init, "make a workspace (.kiln/) in the current folder"},
    {"runs", cmd_runs, "list, show, compare and export training runs"},
    {"sweep", cmd_sweep, "run a grid or random search over config keys"},
    {"model", cmd_model, "register, alias, tag, archive models; lineage and model cards"},
    {"monitor", cmd_monitor, "compare data with a training baseline (drift)"},
    {"keygen", cmd_keygen, "make an Ed25519 key pair for signing model packages"},
    {"audit", cmd_audit, "print or verify the workspace's audit log"},
    {"gc", cmd_gc, "remove unreferenced objects and stale temp files"},
    {"fsck", cmd_fsck, "check every object's hash, every reference and the audit chain"},
    {"bench", cmd_bench, "time the kernels against the copy bandwidth and the vendor GEMM"},
    {"version", cmd_version, "print the version and the backends built"},
};

static void print_help(FILE *f)
{
    fprintf(f, "usage: kiln COMMAND [ARGS]   (kiln COMMAND --help for each)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nexit codes:\n");
#define KILN_X_HELP(code, name, exitcode, doc) fprintf(f, "  %3d  %s\n", exitcode, doc);
    KILN_STATUS_LIST(KILN_X_HELP)
#undef KILN_X_HELP
    fprintf(f, "\nDocs: docs/CLI.md, docs/CONFIG.md, docs/FORMATS.md\n");
}

static void log_to_stderr(enum kiln_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == KILN_LOG_DEBUG && !getenv("KILN_DEBUG")) return;
    fprintf(stderr, "kiln: %s%s\n", level == KILN_LOG_WARN ? "warning: " : "", msg);
}

bool cli_wants_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            return true;
        }
    return false;
}

enum kiln_status cli_usage_error(const char *usage, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Only the first line of the usage text, to keep the error short. */
    const char *nl = strchr(usage, '\n');
    int first = nl ? (int)(nl - usage) : (int)strlen(usage);
    return kiln_errorf(KILN_ERR_USAGE, "%s\n%.*s", msg, first, usage);
}

enum kiln_status cli_parse_int(const char *opt, const char *s, long long *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 0) return kiln_errorf(KILN_ERR_USAGE, "%s: '%s' is not a whole number >= 0", opt, s);
    *out = v;
    return KILN_OK;
}

enum kiln_status cli_parse_double(const char *opt, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || v != v) return kiln_errorf(KILN_ERR_USAGE, "%s: '%s' is not a number", opt, s);
    *out = v;
    return KILN_OK;
}

bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value,
             enum kiln_status *st)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return false;
    if (a[n] == '=') {
        *value = a + n + 1;
        return true;
    }
    if (a[n] != '\0') return false;
    if (*i + 1 >= argc) {
        *st = kiln_errorf(KILN_ERR_USAGE, "%s needs a value", name);
        *value = NULL;
        return true;
    }
    *value = argv[++*i];
    return true;
}

int main(int argc, char **argv)
{
    kiln_log_set_sink(log_to_stderr, NULL);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        print_help(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) argv[1] = "version";
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        enum kiln_status st = commands[i].fn(argc - 1, argv + 1);
        if (st != KILN_OK) fprintf(stderr, "kiln: error: %s\n", kiln_last_error());
        return kiln_status_exit_code(st);
    }
    fprintf(stderr, "kiln: error: unknown command '%s'\n\n", argv[1]);
    print_help(stderr);
    return kiln_status_exit_code(KILN_ERR_USAGE);
}
