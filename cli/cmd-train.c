/* cli/cmd-train.c: kiln train, kiln eval, kiln predict. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kiln/lifecycle.h"

#define MAX_SETS 64

static const char TRAIN_USAGE[] =
    "usage: kiln train CONFIG --data DATASET --out DIR [--set KEY=VALUE]... [--resume CHECKPOINT]\n"
    "                  [--device cpu|cuda|auto] [--threads N]\n"
    "\n"
    "Trains the model CONFIG declares on DATASET (a kiln dataset file).\n"
    "Writes DIR/model.h5 (final model), DIR/checkpoint.h5 (every train.checkpoint_every\n"
    "epochs) and DIR/metrics.csv (one row per epoch).\n"
    "  --set KEY=VALUE   override a config key, e.g. --set train.epochs=3 (repeatable)\n"
    "  --resume FILE     continue from a checkpoint: 2 epochs straight equal 1 epoch,\n"
    "                    resume, 1 epoch, bitwise\n"
    "  --device D        overrides train.device\n"
    "  --threads N       CPU threads (default train.threads; 0 = every core)\n";

/* Progress: a bar redrawn in place on a terminal, one line per epoch when
 * stderr is a file or a pipe. */
struct progress {
    bool tty;
    double last_draw;
    double epoch_start;
    int64_t last_epoch;
    int64_t epochs;
};

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_step(void *user, int64_t epoch, int64_t step, int64_t steps, double loss,
                          double sps)
{
    struct progress *p = user;
    if (!p->tty) return;
    double now = wall_seconds();
    if (epoch != p->last_epoch) {
        p->last_epoch = epoch;
        p->epoch_start = now;
    }
    if (now - p->last_draw < 0.1 && step != steps) return;
    p->last_draw = now;
    int width = 24, filled = (int)(width * step / (steps ? steps : 1));
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    double el = now - p->epoch_start, eta = step ? el * (double)(steps - step) / (double)step : 0;
    fprintf(stderr, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld loss %.4f  %.0f samples/s  ETA %d:%02d",
            (long long)epoch, (long long)p->epochs, bar, (long long)step, (long long)steps, loss,
            sps, (int)eta / 60, (int)eta % 60);
    fflush(stderr);
}

static enum kiln_status progress_epoch(void *user, struct kiln_trainer *t,
                                       const struct kiln_epoch_report *r)
{
    (void)t;
    struct progress *p = user;
    if (p->tty) fprintf(stderr, "\r\033[K");
    fprintf(stderr, "epoch %lld/%lld  train_loss %.4f", (long long)r->epoch, (long long)r->epochs,
            r->train_loss);
    if (r->has_val) {
        fprintf(stderr, "  val_loss %.4f", r->val.loss);
        if (r->val.n_classes > 0)
            fprintf(stderr, "  val_accuracy %.4f", r->val.accuracy);
        else
            fprintf(stderr, "  val_mse %.4g  val_r2 %.4f", r->val.mse, r->val.r2);
    }
    fprintf(stderr, "  %.0f samples/s  %.1fs%s\n", r->samples_per_s, r->seconds,
            r->stopping ? "  (early stopping)" : "");
    return KILN_OK;
}

enum kiln_status cmd_train(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, TRAIN_USAGE)) return KILN_OK;
    struct kiln_train_job job = kiln_train_job_default();
    const char *sets[MAX_SETS];
    const char *threads = NULL, *v = NULL;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--data", &job.data_path, &st)) continue;
        if (cli_opt(argc, argv, &i, "--out", &job.out_dir, &st)) continue;
        if (cli_opt(argc, argv, &i, "--resume", &job.resume_path, &st)) continue;
        if (cli_opt(argc, argv, &i, "--device", &job.device, &st)) continue;
        if (cli_opt(argc, argv, &i, "--threads", &threads, &st)) continue;
        if (cli_opt(argc, argv, &i, "--set", &v, &st)) {
            if (job.n_sets == MAX_SETS)
                return cli_usage_error(TRAIN_USAGE, "at most %d --set options", MAX_SETS);
            sets[job.n_sets++] = v;
            continue;
        }
        if (argv[i][0] == '-') return cli_usage_error(TRAIN_USAGE, "unknown option '%s'", argv[i]);
        if (job.config_path) return cli_usage_error(TRAIN_USAGE, "one CONFIG only, got '%s'", argv[i]);
        job.config_path = argv[i];
    }
    if (st != KILN_OK) return st;
    if (!job.config_path || !job.data_path || !job.out_dir)
        return cli_usage_error(TRAIN_USAGE, "CONFIG, --data and --out are required");
    if (threads) {
        long long n;
        if ((st = cli_parse_int("--threads", threads, &n)) != KILN_OK) return st;
        job.threads = (int)n;
    }
    job.sets = sets;
    struct progress p = {.tty = isatty(STDERR_FILENO), .last_epoch = -1};
    job.progress = (struct kiln_train_callbacks){
        .on_step = progress_step, .on_epoch = progress_epoch, .user = &p};
    /* The epoch total for the bar comes from the config; peek at it. */
    struct kiln_config *cfg;
    if ((st = kiln_config_load(job.config_path, sets, job.n_sets, &cfg)) != KILN_OK) return st;
    p.epochs = cfg->train.epochs;
    kiln_config_free(cfg);
    struct kiln_train_result r;
    st = kiln_train(&job, &r);
    if (p.tty) fprintf(stderr, "\r\033[K");
    if (st != KILN_OK) return st;
    printf("trained %lld epochs (%lld steps) in %.1fs on %s: %.0f samples/s\n",
           (long long)r.epochs_run, (long long)r.steps, r.seconds, r.backend, r.samples_per_s);
    printf("model: %s\n", r.model_path);
    return KILN_OK;
}

static const char EVAL_USAGE[] =
    "usage: kiln eval MODEL --data DATASET [--split train|val|test] [--json] [--device D] [--threads N]\n"
    "\n"
    "Evaluates MODEL (a model.h5 or checkpoint) on a split of DATASET (default test):\n"
    "loss, accuracy, per-class precision/recall/F1 and the confusion matrix for\n"
    "classifiers; MSE, MAE and R^2 for regression. --json prints one JSON object.\n";

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void eval_print_json(const struct kiln_metrics *m, const struct kiln_model_meta *meta,
                            const char *split)
{
    printf("{\"split\": ");
    print_json_string(split);
    printf(", \"rows\": %lld, \"loss\": %.9g", (long long)m->n, m->loss);
    if (m->n_classes > 0) {
        printf(", \"accuracy\": %.9g, \"macro_f1\": %.9g, \"classes\": [", m->accuracy, m->macro_f1);
        for (int c = 0; c < m->n_classes; c++) {
            printf("%s{\"class\": ", c ? ", " : "");
            if (meta->classes && c < meta->n_classes) print_json_string(meta->classes[c]);
            else printf("\"%d\"", c);
            printf(", \"precision\": %.9g, \"recall\": %.9g, \"f1\": %.9g}", m->precision[c],
                   m->recall[c], m->f1[c]);
        }
        printf("], \"confusion_matrix\": [");
        for (int r = 0; r < m->n_classes; r++) {
            printf("%s[", r ? ", " : "");
            for (int c = 0; c < m->n_classes; c++)
                printf("%s%lld", c ? ", " : "", (long long)m->confusion[r * m->n_classes + c]);
            printf("]");
        }
        printf("]");
    } else {
        printf(", \"mse\": %.9g, \"mae\": %.9g, \"r2\": %.9g", m->mse, m->mae, m->r2);
    }
    printf(", \"model_sha256\": \"%s\", \"dataset_sha256\": \"%s\"}\n", meta->file_sha256,
           meta->dataset_sha256);
}

static void eval_print_text(const struct kiln_metrics *m, const struct kiln_model_meta *meta,
                            const char *split)
{
    printf("split %s: %lld rows\nloss      %.4f\n", split, (long long)m->n, m->loss);
    if (m->n_classes == 0) {
        printf("mse       %.6g\nmae       %.6g\nr2        %.4f\n", m->mse, m->mae, m->r2);
        return;
    }
    printf("accuracy  %.4f\nmacro F1  %.4f\n\n%-16s %9s %9s %9s\n", m->accuracy, m->macro_f1,
           "class", "precision", "recall", "f1");
    for (int c = 0; c < m->n_classes; c++) {
        char num[16];
        snprintf(num, sizeof num, "%d", c);
        const char *name = meta->classes && c < meta->n_classes ? meta->classes[c] : num;
        printf("%-16.16s %9.4f %9.4f %9.4f\n", name, m->precision[c], m->recall[c], m->f1[c]);
    }
    printf("\nconfusion matrix (rows: true class, columns: predicted)\n");
    for (int r = 0; r < m->n_classes; r++) {
        for (int c = 0; c < m->n_classes; c++)
            printf("%6lld", (long long)m->confusion[r * m->n_classes + c]);
        printf("\n");
    }
}

enum kiln_status cmd_eval(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, EVAL_USAGE)) return KILN_OK;
    const char *model = NULL, *data = NULL, *split = "test", *device = "cpu", *threads = NULL;
    bool json = false;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--data", &data, &st)) continue;
        if (cli_opt(argc, argv, &i, "--split", &split, &st)) continue;
        if (cli_opt(argc, argv, &i, "--device", &device, &st)) continue;
        if (cli_opt(argc, argv, &i, "--threads", &threads, &st)) continue;
        if (!strcmp(argv[i], "--json")) {
            json = true;
            continue;
        }
        if (argv[i][0] == '-') return cli_usage_error(EVAL_USAGE, "unknown option '%s'", argv[i]);
        if (model) return cli_usage_error(EVAL_USAGE, "one MODEL only, got '%s'", argv[i]);
        model = argv[i];
    }
    if (st != KILN_OK) return st;
    if (!model || !data) return cli_usage_error(EVAL_USAGE, "MODEL and --data are required");
    long long n = 0;
    if (threads && (st = cli_parse_int("--threads", threads, &n)) != KILN_OK) return st;
    struct kiln_metrics m;
    struct kiln_model_meta meta;
    st = kiln_eval(model, data, split, device, (int)n, &m, &meta);
    if (st != KILN_OK) return st;
    if (json) eval_print_json(&m, &meta, split);
    else eval_print_text(&m, &meta, split);
    kiln_metrics_free(&m);
    kiln_model_meta_free(&meta);
    return KILN_OK;
}

static const char PREDICT_USAGE[] =
    "usage: kiln predict MODEL --input FILE --output FILE [--array NAME] [--drop-column NAME]\n"
    "                    [--batch N] [--device D] [--threads N]\n"
    "\n"
    "Runs MODEL over the rows of FILE (.h5 or .csv) in chunks of --batch rows (bounded\n"
    "memory) and writes predictions to --output (.h5 or .csv): the class and its\n"
    "probabilities for classifiers, the outputs for regression.\n"
    "  --array NAME        HDF5 array to read (default test/X, then X)\n"
    "  --drop-column NAME  CSV column to skip (e.g. the label)\n";

enum kiln_status cmd_predict(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, PREDICT_USAGE)) return KILN_OK;
    const char *model = NULL, *input = NULL, *output = NULL, *array = NULL, *drop = NULL;
    const char *batch = NULL, *device = "cpu", *threads = NULL;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--input", &input, &st)) continue;
        if (cli_opt(argc, argv, &i, "--output", &output, &st)) continue;
        if (cli_opt(argc, argv, &i, "--array", &array, &st)) continue;
        if (cli_opt(argc, argv, &i, "--drop-column", &drop, &st)) continue;
        if (cli_opt(argc, argv, &i, "--batch", &batch, &st)) continue;
        if (cli_opt(argc, argv, &i, "--device", &device, &st)) continue;
        if (cli_opt(argc, argv, &i, "--threads", &threads, &st)) continue;
        if (argv[i][0] == '-') return cli_usage_error(PREDICT_USAGE, "unknown option '%s'", argv[i]);
        if (model) return cli_usage_error(PREDICT_USAGE, "one MODEL only, got '%s'", argv[i]);
        model = argv[i];
    }
    if (st != KILN_OK) return st;
    if (!model || !input || !output)
        return cli_usage_error(PREDICT_USAGE, "MODEL, --input and --output are required");
    long long nb = 1024, nt = 0;
    if (batch && (st = cli_parse_int("--batch", batch, &nb)) != KILN_OK) return st;
    if (threads && (st = cli_parse_int("--threads", threads, &nt)) != KILN_OK) return st;
    if (nb < 1) return cli_usage_error(PREDICT_USAGE, "--batch must be at least 1");
    int64_t rows;
    st = kiln_predict(model, input, array, drop, output, nb, device, (int)nt, &rows);
    if (st != KILN_OK) return st;
    printf("wrote %lld predictions to %s\n", (long long)rows, output);
    return KILN_OK;
}
