/* cli/cmd-score.c: kiln score: batch scoring of a package or model over a
 * large file (kiln/score.h), with a progress display. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "kiln/data.h"
#include "kiln/score.h"
#include "kiln/store.h"

static const char SCORE_USAGE[] =
    "usage: kiln score PACKAGE|MODEL --input DATA --output FILE [--split S] [--batch N]\n"
    "                  [--resume] [--device D] [--threads N] [--array NAME]\n"
    "                  [--drop-column NAME] [--register NAME] [--workspace DIR]\n"
    "       kiln score --list [--limit N] [--json] [--workspace DIR]\n"
    "\n"
    "Scores the rows of DATA (.h5 or .csv, any size; in a workspace also a dataset\n"
    "version such as fashion-mnist or fashion-mnist@3f2a, whose --split is scored,\n"
    "default test) with a verified package (.kiln) or a model (a file or, in a\n"
    "workspace, NAME@VERSION, NAME@ALIAS, run:N), in chunks of --batch rows (default:\n"
    "about 8 MiB of input) read, scored and written by overlapping threads in\n"
    "bounded memory. Predictions go to --output (.h5 or .csv) as with kiln predict,\n"
    "HDF5 ones recording model_name, model_version and package_sha256. Every run\n"
    "writes OUTPUT.partial and OUTPUT.progress as it goes: after a crash, the same\n"
    "command with --resume continues after the last written chunk.\n"
    "In a workspace the run is recorded as a scoring job (kiln score --list).\n"
    "  --resume            continue an interrupted run (without it, start over)\n"
    "  --split S           train, val or test of a dataset input (default test)\n"
    "  --array NAME        HDF5 array to read (default test/X, then X)\n"
    "  --drop-column NAME  CSV column to skip (e.g. the label)\n"
    "  --device D          cpu (default), cuda, cuda:N or auto\n"
    "  --register NAME     register the output as a version of dataset NAME: X = the\n"
    "                      scored rows, y = the predictions (HDF5 output, workspace)\n"
    "  --list              the recorded scoring jobs, newest first (--limit N, --json)\n";

struct score_display {
    bool tty;
    double last;                 /* seconds at the last line printed */
};

static void score_on_progress(void *user, int64_t rows, int64_t total, double seconds)
{
    struct score_display *d = user;
    bool end = total >= 0 && rows >= total;
    if (!end && seconds - d->last < (d->tty ? 0.2 : 2.0)) return;
    d->last = seconds;
    double rate = seconds > 0 ? (double)rows / seconds : 0.0;
    char eta[64] = "";
    if (total > 0 && rate > 0)
        snprintf(eta, sizeof eta, "  %5.1f%%  ETA %.0f s", 100.0 * (double)rows / (double)total,
                 (double)(total - rows) / rate);
    fprintf(stderr, "%sscore: %lld rows  %.0f rows/s%s%s", d->tty ? "\r" : "", (long long)rows,
            rate, eta, d->tty ? "\033[K" : "\n");
    fflush(stderr);
}

/* Resolves the model and input arguments: a path is used as it is;
 * anything else, in a workspace, is a reference (a model, a dataset
 * version). */
static enum kiln_status score_resolve(struct kiln_store **ws, const char *ws_dir,
                                      struct kiln_score_job *job, struct kiln_ref *mref,
                                      struct kiln_ref *dref)
{
    struct stat sb;
    enum kiln_status st = KILN_OK;
    if (stat(job->model, &sb) != 0) {
        if (!*ws) st = cli_open_store(ws_dir, true, ws);
        if (st == KILN_OK) st = kiln_ref_resolve(*ws, job->model, KILN_REF_FILE, mref);
        if (st == KILN_OK && !mref->path[0])
            st = kiln_errorf(KILN_ERR_NOT_FOUND, "%s has no model file", job->model);
        if (st != KILN_OK) return st;
        job->model = mref->path;
        job->model_name = mref->name[0] ? mref->name : NULL;
        job->model_version = mref->version;
    }
    if (*ws && stat(job->input, &sb) != 0) {
        st = kiln_ref_resolve(*ws, job->input, KILN_REF_DATASET, dref);
        if (st != KILN_OK) return st;
        job->input = dref->path;
    }
    return st;
}

static void score_print(const char *output, const struct kiln_score_result *res)
{
    printf("wrote %lld predictions to %s", (long long)res->rows, output);
    if (res->resumed_from > 0) printf(" (resumed after row %lld)", (long long)res->resumed_from);
    printf(" in %.2f s (%.0f rows/s)\n", res->seconds,
           res->seconds > 0 ? (double)(res->rows - res->resumed_from) / res->seconds : 0.0);
}

enum kiln_status cmd_score(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, SCORE_USAGE)) return KILN_OK;
    const char *model = NULL, *input = NULL, *output = NULL, *array = NULL, *drop = NULL;
    const char *batch = NULL, *threads = NULL, *ws_dir = NULL, *device = "cpu", *split = NULL;
    const char *reg = NULL, *limit = NULL;
    bool resume = false, list = false, json = false;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--input", &input, &st)) continue;
        if (cli_opt(argc, argv, &i, "--output", &output, &st)) continue;
        if (cli_opt(argc, argv, &i, "--array", &array, &st)) continue;
        if (cli_opt(argc, argv, &i, "--split", &split, &st)) continue;
        if (cli_opt(argc, argv, &i, "--drop-column", &drop, &st)) continue;
        if (cli_opt(argc, argv, &i, "--batch", &batch, &st)) continue;
        if (cli_opt(argc, argv, &i, "--threads", &threads, &st)) continue;
        if (cli_opt(argc, argv, &i, "--device", &device, &st)) continue;
        if (cli_opt(argc, argv, &i, "--register", &reg, &st)) continue;
        if (cli_opt(argc, argv, &i, "--limit", &limit, &st)) continue;
        if (cli_opt(argc, argv, &i, "--workspace", &ws_dir, &st)) continue;
        if (!strcmp(argv[i], "--resume")) {
            resume = true;
            continue;
        }
        if (!strcmp(argv[i], "--list")) {
            list = true;
            continue;
        }
        if (!strcmp(argv[i], "--json")) {
            json = true;
            continue;
        }
        if (argv[i][0] == '-') return cli_usage_error(SCORE_USAGE, "unknown option '%s'", argv[i]);
        if (model) return cli_usage_error(SCORE_USAGE, "one PACKAGE or MODEL only, got '%s'", argv[i]);
        model = argv[i];
    }
    if (st != KILN_OK) return st;
    long long nb = 0, nt = 0, nl = 0;
    if (limit && (st = cli_parse_int("--limit", limit, &nl)) != KILN_OK) return st;
    struct kiln_store *ws = NULL;
    if (list) {
        if (model || input || output)
            return cli_usage_error(SCORE_USAGE, "--list takes no MODEL, --input or --output");
        st = cli_open_store(ws_dir, true, &ws);
        if (st == KILN_OK) st = kiln_scorejobs_list(ws, nl, json, stdout);
        kiln_store_close(ws);
        return st;
    }
    if (json || limit) return cli_usage_error(SCORE_USAGE, "--json and --limit go with --list");
    if (!model || !input || !output)
        return cli_usage_error(SCORE_USAGE, "PACKAGE or MODEL, --input and --output are required");
    if (batch && (st = cli_parse_int("--batch", batch, &nb)) != KILN_OK) return st;
    if (threads && (st = cli_parse_int("--threads", threads, &nt)) != KILN_OK) return st;
    if (batch && nb < 1) return cli_usage_error(SCORE_USAGE, "--batch must be at least 1");
    if (split && array) return cli_usage_error(SCORE_USAGE, "--split or --array, not both");
    enum kiln_split_id sid;
    if (split && (st = kiln_split_parse(split, &sid)) != KILN_OK) return st;
    char split_array[32] = "";
    if (split) snprintf(split_array, sizeof split_array, "%s/X", split);
    struct kiln_ref *refs = calloc(2, sizeof *refs);
    if (!refs) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    struct score_display disp = {.tty = isatty(STDERR_FILENO) == 1};
    struct kiln_score_job job = {.model = model, .input = input,
                                 .input_array = split ? split_array : array,
                                 .drop_column = drop, .output = output, .device = device,
                                 .batch = nb, .threads = (int)nt, .resume = resume,
                                 .on_progress = score_on_progress, .user = &disp};
    struct kiln_score_result res;
    struct kiln_scorejob_result rec;
    st = cli_open_store(ws_dir, ws_dir != NULL || reg != NULL, &ws);
    if (st == KILN_OK) st = score_resolve(&ws, ws_dir, &job, &refs[0], &refs[1]);
    bool dataset_ref = refs[1].kind == KILN_REF_DATASET && refs[1].id > 0;
    if (st == KILN_OK && dataset_ref && !split && !array) {
        job.input_array = "test/X"; /* a dataset version scores its test split by default */
        split = "test";
    }
    struct kiln_scorejob_options opt = {.model_ref = model, .input_ref = input,
                                        .input_version_id = dataset_ref ? refs[1].id : 0,
                                        .split = split, .register_name = reg};
    if (st == KILN_OK) st = ws ? kiln_scorejob_run(ws, &job, &opt, &res, &rec) : kiln_score(&job, &res);
    if (disp.tty && disp.last > 0) fputc('\n', stderr);
    if (st == KILN_OK) {
        score_print(output, &res);
        if (ws) printf("recorded score:%lld\n", (long long)rec.job_id);
        if (ws && rec.registered[0]) printf("registered %s\n", rec.registered);
    }
    kiln_store_close(ws);
    free(refs);
    return st;
}
