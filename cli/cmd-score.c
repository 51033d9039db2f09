/* cli/cmd-score.c: kiln score: batch scoring of a package or model over a
 * large file (kiln/score.h), with a progress display. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "kiln/score.h"
#include "kiln/store.h"

static const char SCORE_USAGE[] =
    "usage: kiln score PACKAGE|MODEL --input FILE --output FILE [--batch N] [--resume]\n"
    "                  [--threads N] [--array NAME] [--drop-column NAME] [--workspace DIR]\n"
    "\n"
    "Scores the rows of FILE (.h5 or .csv, any size) with a verified package (.kiln) or a\n"
    "model (a file or, in a workspace, NAME@VERSION, NAME@ALIAS, run:N) on the CPU, in\n"
    "chunks of --batch rows (default: about 8 MiB of input) read, scored and written by\n"
    "overlapping threads in bounded memory. Predictions go to --output (.h5 or .csv) as\n"
    "with kiln predict, HDF5 ones recording model_name, model_version and package_sha256.\n"
    "HDF5 to HDF5 runs write OUTPUT.partial and OUTPUT.progress as they go: after a\n"
    "crash, the same command with --resume continues after the last written chunk.\n"
    "  --resume            continue an interrupted run (without it, start over)\n"
    "  --array NAME        HDF5 array to read (default test/X, then X)\n"
    "  --drop-column NAME  CSV column to skip (e.g. the label)\n";

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

enum kiln_status cmd_score(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, SCORE_USAGE)) return KILN_OK;
    const char *model = NULL, *input = NULL, *output = NULL, *array = NULL, *drop = NULL;
    const char *batch = NULL, *threads = NULL, *ws_dir = NULL;
    bool resume = false;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--input", &input, &st)) continue;
        if (cli_opt(argc, argv, &i, "--output", &output, &st)) continue;
        if (cli_opt(argc, argv, &i, "--array", &array, &st)) continue;
        if (cli_opt(argc, argv, &i, "--drop-column", &drop, &st)) continue;
        if (cli_opt(argc, argv, &i, "--batch", &batch, &st)) continue;
        if (cli_opt(argc, argv, &i, "--threads", &threads, &st)) continue;
        if (cli_opt(argc, argv, &i, "--workspace", &ws_dir, &st)) continue;
        if (!strcmp(argv[i], "--resume")) {
            resume = true;
            continue;
        }
        if (argv[i][0] == '-') return cli_usage_error(SCORE_USAGE, "unknown option '%s'", argv[i]);
        if (model) return cli_usage_error(SCORE_USAGE, "one PACKAGE or MODEL only, got '%s'", argv[i]);
        model = argv[i];
    }
    if (st != KILN_OK) return st;
    if (!model || !input || !output)
        return cli_usage_error(SCORE_USAGE, "PACKAGE or MODEL, --input and --output are required");
    long long nb = 0, nt = 0;
    if (batch && (st = cli_parse_int("--batch", batch, &nb)) != KILN_OK) return st;
    if (threads && (st = cli_parse_int("--threads", threads, &nt)) != KILN_OK) return st;
    if (batch && nb < 1) return cli_usage_error(SCORE_USAGE, "--batch must be at least 1");
    struct kiln_store *ws = NULL;
    struct kiln_ref *ref = calloc(1, sizeof *ref);
    if (!ref) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    struct score_display disp = {.tty = isatty(STDERR_FILENO) == 1};
    struct kiln_score_job job = {.model = model, .input = input, .input_array = array,
                                 .drop_column = drop, .output = output, .batch = nb,
                                 .threads = (int)nt, .resume = resume,
                                 .on_progress = score_on_progress, .user = &disp};
    struct stat sb;
    /* A file path is used as it is; anything else is a workspace reference. */
    if (stat(model, &sb) != 0) {
        st = cli_open_store(ws_dir, true, &ws);
        if (st == KILN_OK) st = kiln_ref_resolve(ws, model, KILN_REF_FILE, ref);
        if (st == KILN_OK && !ref->path[0])
            st = kiln_errorf(KILN_ERR_NOT_FOUND, "%s has no model file", model);
        if (st == KILN_OK) {
            job.model = ref->path;
            job.model_name = ref->name[0] ? ref->name : NULL;
            job.model_version = ref->version;
        }
    }
    struct kiln_score_result res;
    if (st == KILN_OK) st = kiln_score(&job, &res);
    if (disp.tty && disp.last > 0) fputc('\n', stderr);
    kiln_store_close(ws);
    free(ref);
    if (st != KILN_OK) return st;
    printf("wrote %lld predictions to %s", (long long)res.rows, output);
    if (res.resumed_from > 0) printf(" (resumed after row %lld)", (long long)res.resumed_from);
    printf(" in %.2f s (%.0f rows/s)\n", res.seconds,
           res.seconds > 0 ? (double)(res.rows - res.resumed_from) / res.seconds : 0.0);
    return KILN_OK;
}
