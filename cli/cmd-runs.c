/* cli/cmd-runs.c: kiln runs (list, show, compare, export), kiln sweep. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "kiln/runs.h"
#include "kiln/store.h"

static const char RUNS_USAGE[] =
    "usage: kiln runs list [--columns KEYS] [--where EXPR] [--sort KEY] [--desc] [--limit N] [--json]\n"
    "       kiln runs show run:N [--json]\n"
    "       kiln runs compare run:A run:B [run:C ...] [--all] [--json]\n"
    "       kiln runs export --mlflow DIR [run:N ...]\n"
    "       (each takes --workspace DIR)\n"
    "\n"
    "list     the runs, newest first (--sort KEY sorts ascending, --desc descending).\n"
    "         KEYS: id status dataset started ended duration host user device threads pid\n"
    "         sweep resumed_from engine commit error out_dir, a metric's latest value\n"
    "         (val_accuracy, test_accuracy, lr, ...) or a param (train.optimizer.lr, ...).\n"
    "         --where 'test_accuracy > 0.88 and train.optimizer.type = \"adam\"': KEY OP VALUE\n"
    "         joined by and; OP > >= < <= = !=; VALUE a number or a quoted string.\n"
    "show     everything about a run: config, params, dataset version, engine, host,\n"
    "         device, times, status or error, per-epoch metrics, checkpoints, final metrics.\n"
    "compare  the params that differ (--all: every param) and the final metrics side by\n"
    "         side, with each run's difference from the first.\n"
    "export   writes the runs (default all) in MLflow's file-store layout under DIR:\n"
    "         MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri DIR shows them.\n";

/* Parses run:N arguments into ids. */
static enum kiln_status run_ids(struct kiln_store *ws, char **args, int n, int64_t **ids)
{
    *ids = calloc((size_t)(n > 0 ? n : 1), sizeof **ids);
    if (!*ids) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        enum kiln_status st = kiln_run_parse(ws, args[i], &(*ids)[i]);
        if (st != KILN_OK) return st;
    }
    return KILN_OK;
}

enum kiln_status cmd_runs(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, RUNS_USAGE)) return KILN_OK;
    if (argc < 2) return cli_usage_error(RUNS_USAGE, "expected list, show, compare or export");
    const char *sub = argv[1];
    bool list = !strcmp(sub, "list"), show = !strcmp(sub, "show"),
         compare = !strcmp(sub, "compare"), export = !strcmp(sub, "export");
    if (!list && !show && !compare && !export)
        return cli_usage_error(RUNS_USAGE, "unknown subcommand '%s' (list, show, compare, export)",
                               sub);
    struct kiln_runs_query q = {0};
    const char *ws_dir = NULL, *limit = NULL, *mlflow = NULL;
    bool json = false, all = false;
    char **refs = calloc((size_t)argc, sizeof *refs);
    if (!refs) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    int n_refs = 0;
    enum kiln_status st = KILN_OK;
    for (int i = 2; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--workspace", &ws_dir, &st)) continue;
        if (list && cli_opt(argc, argv, &i, "--columns", &q.columns, &st)) continue;
        if (list && cli_opt(argc, argv, &i, "--where", &q.where, &st)) continue;
        if (list && cli_opt(argc, argv, &i, "--sort", &q.sort, &st)) continue;
        if (list && cli_opt(argc, argv, &i, "--limit", &limit, &st)) continue;
        if (export && cli_opt(argc, argv, &i, "--mlflow", &mlflow, &st)) continue;
        if (list && !strcmp(argv[i], "--desc")) {
            q.desc = true;
            continue;
        }
        if (!export && !strcmp(argv[i], "--json")) {
            json = true;
            continue;
        }
        if (compare && !strcmp(argv[i], "--all")) {
            all = true;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            st = cli_usage_error(RUNS_USAGE, "runs %s: unknown option '%s'", sub, argv[i]);
            break;
        }
        if (list) {
            st = cli_usage_error(RUNS_USAGE, "runs list: unexpected argument '%s'", argv[i]);
            break;
        }
        refs[n_refs++] = argv[i];
    }
    if (st == KILN_OK && limit) {
        long long n;
        st = cli_parse_int("--limit", limit, &n);
        q.limit = n;
    }
    if (st == KILN_OK && show && n_refs != 1)
        st = cli_usage_error(RUNS_USAGE, "runs show takes one run:N");
    if (st == KILN_OK && compare && n_refs < 2)
        st = cli_usage_error(RUNS_USAGE, "runs compare takes two runs or more");
    if (st == KILN_OK && export && !mlflow)
        st = cli_usage_error(RUNS_USAGE, "runs export needs --mlflow DIR");
    struct kiln_store *ws = NULL;
    int64_t *ids = NULL;
    if (st == KILN_OK) st = cli_open_store(ws_dir, true, &ws);
    if (st == KILN_OK && !list) st = run_ids(ws, refs, n_refs, &ids);
    if (st == KILN_OK) {
        q.json = json;
        if (list) {
            st = kiln_runs_list(ws, &q, stdout);
        } else if (show) {
            st = kiln_runs_show(ws, ids[0], json, stdout);
        } else if (compare) {
            st = kiln_runs_compare(ws, ids, n_refs, all, json, stdout);
        } else {
            int64_t n = 0;
            st = kiln_runs_export_mlflow(ws, mlflow, ids, n_refs, &n);
            if (st == KILN_OK)
                printf("exported %lld run%s to %s (MLflow file store, experiment \"kiln\")\n",
                       (long long)n, n == 1 ? "" : "s", mlflow);
        }
    }
    free(ids);
    free(refs);
    kiln_store_close(ws);
    return st;
}

static const char SWEEP_USAGE[] =
    "usage: kiln sweep SWEEP.yaml [--jobs N] [--threads N] [--device D] [--workspace DIR]\n"
    "\n"
    "Runs a grid or random search over config keys: each trial is `kiln train BASE\n"
    "--data DATA --set KEY=VALUE ...`, recorded as a run linked to the sweep; --jobs N\n"
    "runs N trials at once (default 1). A failing trial is recorded as failed and the\n"
    "sweep goes on. At the end, the trials ranked by the sweep's metric. The file\n"
    "(docs/FORMATS.md, \"Sweep file\"):\n"
    "  base: mlp.yaml          # relative to the sweep file\n"
    "  data: blobs             # a dataset reference or file\n"
    "  method: grid            # or random (with trials: N and seed: S)\n"
    "  metric: val_accuracy\n"
    "  mode: max               # or min\n"
    "  parameters:\n"
    "    train.optimizer.lr: [0.001, 0.003, 0.01]\n"
    "    train.batch_size: [32, 64]\n"
    "    # random: train.optimizer.lr: {min: 1e-4, max: 1e-2, log: true}\n"
    "  --threads N   CPU threads per trial (default: the config's)\n";

enum kiln_status cmd_sweep(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, SWEEP_USAGE)) return KILN_OK;
    const char *path = NULL, *jobs = NULL, *threads = NULL, *device = NULL, *ws_dir = NULL;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--jobs", &jobs, &st)) continue;
        if (cli_opt(argc, argv, &i, "--threads", &threads, &st)) continue;
        if (cli_opt(argc, argv, &i, "--device", &device, &st)) continue;
        if (cli_opt(argc, argv, &i, "--workspace", &ws_dir, &st)) continue;
        if (argv[i][0] == '-') return cli_usage_error(SWEEP_USAGE, "unknown option '%s'", argv[i]);
        if (path) return cli_usage_error(SWEEP_USAGE, "one SWEEP.yaml only, got '%s'", argv[i]);
        path = argv[i];
    }
    if (st != KILN_OK) return st;
    if (!path) return cli_usage_error(SWEEP_USAGE, "SWEEP.yaml is required");
    struct kiln_sweep_options opt = {.jobs = 1, .device = device};
    long long n;
    if (jobs) {
        if ((st = cli_parse_int("--jobs", jobs, &n)) != KILN_OK) return st;
        if (n < 1 || n > 256) return cli_usage_error(SWEEP_USAGE, "--jobs must be in [1, 256]");
        opt.jobs = (int)n;
    }
    if (threads) {
        if ((st = cli_parse_int("--threads", threads, &n)) != KILN_OK) return st;
        opt.threads = (int)n;
    }
    /* Trials run this very binary. */
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return kiln_errorf(KILN_ERR_IO, "cannot find the kiln binary (/proc/self/exe)");
    exe[len] = '\0';
    opt.exe = exe;
    struct kiln_sweep_spec *spec = NULL;
    struct kiln_store *ws = NULL;
    st = kiln_sweep_load(path, &spec);
    if (st == KILN_OK) st = cli_open_store(ws_dir, true, &ws);
    int64_t sweep_id;
    if (st == KILN_OK) st = kiln_sweep_run(ws, spec, &opt, &sweep_id, stdout);
    kiln_store_close(ws);
    kiln_sweep_free(spec);
    return st;
}
