/* cli/cmd-train.c: kiln train, kiln eval, kiln predict. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kiln/backend.h"
#include "kiln/lifecycle.h"
#include "kiln/runs.h"
#include "kiln/store.h"

#define MAX_SETS 64

static const char TRAIN_USAGE[] =
    "usage: kiln train CONFIG --data DATASET [--out DIR] [--set KEY=VALUE]...\n"
    "                  [--resume run:N|CHECKPOINT] [--device cpu|cuda|cuda:N|auto] [--threads N]\n"
    "                  [--gemm cublas|kiln] [--math fp32|tf32] [--workspace DIR]\n"
    "\n"
    "Trains the model CONFIG declares on DATASET.\n"
    "Writes DIR/model.h5 (final model), DIR/checkpoint.h5 (every train.checkpoint_every\n"
    "epochs) and DIR/metrics.csv (one row per epoch).\n"
    "Inside a workspace (kiln init) the training is recorded as a run: it prints run:N\n"
    "first and a summary last, DATASET may be a reference (name, name@hash, name@vN or a\n"
    "file), and --out defaults to .kiln/runs/N. Outside one, DATASET is a dataset file and\n"
    "--out is required.\n"
    "  --set KEY=VALUE   override a config key, e.g. --set train.epochs=3 (repeatable)\n"
    "  --resume run:N    continue run N from its last checkpoint: an interrupted or\n"
    "                    failed run goes on as the same run; a finished one starts a new\n"
    "                    run resumed from it. --data defaults to the run's dataset\n"
    "  --resume FILE     continue from a checkpoint file: 2 epochs straight equal 1 epoch,\n"
    "                    resume, 1 epoch, bitwise\n"
    "  --device D        overrides train.device: cpu, cuda, cuda:N, or auto (a GPU when\n"
    "                    one answers, else the CPU; the first line says which)\n"
    "  --gemm G          CUDA: cublas or kiln (kiln's own SGEMM); default the faster\n"
    "  --math M          CUDA: fp32 (default) or tf32 (tensor cores for the GEMMs)\n"
    "  --threads N       CPU threads (default train.threads; 0 = every core)\n"
    "  --workspace DIR   the workspace (default: found by walking up from here)\n";

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

static void print_run_id(void *user, int64_t run_id)
{
    (void)user;
    printf("run:%lld\n", (long long)run_id);
    fflush(stdout);
}

/* Inside a workspace: resolves --data and --resume run:N and sets up the
 * run recorder. */
static enum kiln_status train_in_workspace(struct kiln_store *ws, struct kiln_train_job *job,
                                           const char *resume, const char *sweep_id,
                                           struct kiln_run_resume *rp, struct kiln_ref *dref,
                                           struct kiln_run_recorder **rec)
{
    struct kiln_run_options opt = kiln_run_options_default();
    enum kiln_status st = KILN_OK;
    if (resume && !strncmp(resume, "run:", 4)) {
        if ((st = kiln_run_resume_point(ws, resume, rp)) != KILN_OK) return st;
        /* empty: the run died before its first checkpoint and starts over */
        job->resume_path = rp->checkpoint_path[0] ? rp->checkpoint_path : NULL;
        opt.resume = rp;
        if (!job->data_path) {
            if (!rp->data_path[0])
                return cli_usage_error(TRAIN_USAGE, "%s's dataset (%s) is gone: give --data", resume,
                                       rp->data_ref);
            job->data_path = rp->data_path;
            opt.data_ref = rp->data_ref;
            opt.dataset_version_id = rp->dataset_version_id;
        }
    }
    if (!job->data_path) return cli_usage_error(TRAIN_USAGE, "CONFIG and --data are required");
    if (!opt.data_ref) {
        if ((st = kiln_ref_resolve(ws, job->data_path, KILN_REF_DATASET, dref)) != KILN_OK) return st;
        opt.data_ref = job->data_path;
        opt.dataset_version_id = dref->kind == KILN_REF_DATASET ? dref->id : 0;
        job->data_path = dref->path;
    }
    if (sweep_id) {
        long long n;
        if ((st = cli_parse_int("--sweep-id", sweep_id, &n)) != KILN_OK) return st;
        opt.sweep_id = n;
    }
    opt.sets = job->sets;
    opt.n_sets = job->n_sets;
    opt.on_run_id = print_run_id;
    if ((st = kiln_run_recorder_create(ws, &opt, rec)) != KILN_OK) return st;
    job->observer = kiln_run_recorder_observer(*rec);
    return KILN_OK;
}

enum kiln_status cmd_train(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, TRAIN_USAGE)) return KILN_OK;
    struct kiln_train_job job = kiln_train_job_default();
    const char *sets[MAX_SETS];
    const char *threads = NULL, *v = NULL, *ws_dir = NULL, *resume = NULL, *sweep_id = NULL;
    const char *gemm = NULL, *math = NULL;
    char devspec[64];
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--gemm", &gemm, &st)) continue;
        if (cli_opt(argc, argv, &i, "--math", &math, &st)) continue;
        if (cli_opt(argc, argv, &i, "--data", &job.data_path, &st)) continue;
        if (cli_opt(argc, argv, &i, "--out", &job.out_dir, &st)) continue;
        if (cli_opt(argc, argv, &i, "--resume", &resume, &st)) continue;
        if (cli_opt(argc, argv, &i, "--device", &job.device, &st)) continue;
        if (cli_opt(argc, argv, &i, "--threads", &threads, &st)) continue;
        if (cli_opt(argc, argv, &i, "--workspace", &ws_dir, &st)) continue;
        /* Set by kiln sweep for its trials; not for people. */
        if (cli_opt(argc, argv, &i, "--sweep-id", &sweep_id, &st)) continue;
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
    if (!job.config_path) return cli_usage_error(TRAIN_USAGE, "CONFIG and --data are required");
    if (gemm || math) {
        if (!job.device) return cli_usage_error(TRAIN_USAGE, "--gemm and --math need --device");
        if ((st = kiln_device_spec(devspec, sizeof devspec, job.device, gemm, math)) != KILN_OK)
            return st;
        job.device = devspec;
    }
    if (threads) {
        long long n;
        if ((st = cli_parse_int("--threads", threads, &n)) != KILN_OK) return st;
        job.threads = (int)n;
    }
    job.sets = sets;
    struct kiln_store *ws = NULL;
    if ((st = cli_open_store(ws_dir, ws_dir != NULL, &ws)) != KILN_OK) return st;
    struct kiln_run_recorder *rec = NULL;
    /* Big: kept off the stack. */
    struct kiln_run_resume *rp = calloc(1, sizeof *rp);
    struct kiln_ref *dref = calloc(1, sizeof *dref);
    if (!rp || !dref) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (ws) {
        st = train_in_workspace(ws, &job, resume, sweep_id, rp, dref, &rec);
    } else {
        if (!job.data_path || !job.out_dir)
            st = cli_usage_error(TRAIN_USAGE, "CONFIG, --data and --out are required (outside a "
                                 "workspace; `kiln init` makes one)");
        else if (resume && !strncmp(resume, "run:", 4))
            st = kiln_errorf(KILN_ERR_NOT_FOUND, "%s: runs live in a workspace, and none was "
                             "found here (kiln init, or --workspace DIR)", resume);
        else if (sweep_id)
            st = cli_usage_error(TRAIN_USAGE, "--sweep-id needs a workspace");
        job.resume_path = resume;
    }
    if (st != KILN_OK) goto done;
    struct progress p = {.tty = isatty(STDERR_FILENO), .last_epoch = -1};
    job.progress = (struct kiln_train_callbacks){
        .on_step = progress_step, .on_epoch = progress_epoch, .user = &p};
    /* The epoch total for the bar comes from the config; peek at it. */
    struct kiln_config *cfg;
    if ((st = kiln_config_load(job.config_path, sets, job.n_sets, &cfg)) != KILN_OK) goto done;
    p.epochs = cfg->train.epochs;
    kiln_config_free(cfg);
    struct kiln_train_result r;
    st = kiln_train(&job, &r);
    if (p.tty) fprintf(stderr, "\r\033[K");
    int64_t run_id = rec ? kiln_run_recorder_run_id(rec) : 0;
    if (st == KILN_OK) {
        printf("trained %lld epochs (%lld steps) in %.1fs on %s: %.0f samples/s\n",
               (long long)r.epochs_run, (long long)r.steps, r.seconds, r.backend, r.samples_per_s);
        printf("model: %s\n", r.model_path);
    }
    if (run_id) {
        /* The training's error stays the one main prints. */
        char line[1024], saved[2048];
        snprintf(saved, sizeof saved, "%s", kiln_last_error());
        if (kiln_run_summary_line(ws, run_id, line, sizeof line) == KILN_OK) printf("%s\n", line);
        if (st != KILN_OK) kiln_errorf(st, "%s", saved);
    }
done:
    kiln_run_recorder_free(rec);
    kiln_store_close(ws);
    free(rp);
    free(dref);
    return st;
}

/* A model or dataset argument: a file as it is, else (in a workspace) a
 * reference such as run:3, clf@production or blobs@v2. */
static enum kiln_status resolve_arg(struct kiln_store *ws, const char *text, enum kiln_ref_kind want,
                                    struct kiln_ref *ref, const char **path)
{
    struct stat sb;
    *path = text;
    if (!ws || stat(text, &sb) == 0) return KILN_OK;
    enum kiln_status st = kiln_ref_resolve(ws, text, want, ref);
    if (st != KILN_OK) return st;
    if (!ref->path[0])
        return kiln_errorf(KILN_ERR_NOT_FOUND, "%s has no model or checkpoint yet", text);
    *path = ref->path;
    return KILN_OK;
}

static const char EVAL_USAGE[] =
    "usage: kiln eval MODEL --data DATASET [--split train|val|test] [--json] [--device D] [--threads N]\n"
    "                 [--gemm cublas|kiln] [--math fp32|tf32] [--workspace DIR]\n"
    "\n"
    "Evaluates MODEL (a model.h5 or checkpoint; in a workspace also run:N, NAME@VERSION or\n"
    "NAME@ALIAS) on a split of DATASET (a file, or a dataset reference) (default test):\n"
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
    const char *ws_dir = NULL, *gemm = NULL, *math = NULL;
    char devspec[64];
    bool json = false;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--gemm", &gemm, &st)) continue;
        if (cli_opt(argc, argv, &i, "--math", &math, &st)) continue;
        if (cli_opt(argc, argv, &i, "--data", &data, &st)) continue;
        if (cli_opt(argc, argv, &i, "--split", &split, &st)) continue;
        if (cli_opt(argc, argv, &i, "--device", &device, &st)) continue;
        if (cli_opt(argc, argv, &i, "--threads", &threads, &st)) continue;
        if (cli_opt(argc, argv, &i, "--workspace", &ws_dir, &st)) continue;
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
    if ((gemm || math) &&
        (st = kiln_device_spec(devspec, sizeof devspec, device, gemm, math)) != KILN_OK)
        return st;
    if (gemm || math) device = devspec;
    long long n = 0;
    if (threads && (st = cli_parse_int("--threads", threads, &n)) != KILN_OK) return st;
    struct kiln_store *ws = NULL;
    struct kiln_ref *refs = calloc(2, sizeof *refs);
    if (!refs) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    st = cli_open_store(ws_dir, ws_dir != NULL, &ws);
    if (st == KILN_OK) st = resolve_arg(ws, model, KILN_REF_FILE, &refs[0], &model);
    if (st == KILN_OK) st = resolve_arg(ws, data, KILN_REF_DATASET, &refs[1], &data);
    struct kiln_metrics m;
    struct kiln_model_meta meta;
    if (st == KILN_OK) st = kiln_eval(model, data, split, device, (int)n, &m, &meta);
    kiln_store_close(ws);
    free(refs);
    if (st != KILN_OK) return st;
    if (json) eval_print_json(&m, &meta, split);
    else eval_print_text(&m, &meta, split);
    kiln_metrics_free(&m);
    kiln_model_meta_free(&meta);
    return KILN_OK;
}

static const char PREDICT_USAGE[] =
    "usage: kiln predict MODEL --input FILE --output FILE [--array NAME] [--drop-column NAME]\n"
    "                    [--batch N] [--device D] [--gemm G] [--math M] [--threads N]\n"
    "                    [--workspace DIR]\n"
    "\n"
    "MODEL is a model file or, in a workspace, run:N, NAME@VERSION or NAME@ALIAS.\n"
    "Runs MODEL over the rows of FILE (.h5 or .csv) in chunks of --batch rows (bounded\n"
    "memory) and writes predictions to --output (.h5 or .csv): the class and its\n"
    "probabilities for classifiers, the outputs for regression.\n"
    "  --array NAME        HDF5 array to read (default test/X, then X)\n"
    "  --drop-column NAME  CSV column to skip (e.g. the label)\n";

enum kiln_status cmd_predict(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, PREDICT_USAGE)) return KILN_OK;
    const char *model = NULL, *input = NULL, *output = NULL, *array = NULL, *drop = NULL;
    const char *batch = NULL, *device = "cpu", *threads = NULL, *ws_dir = NULL;
    const char *gemm = NULL, *math = NULL;
    char devspec[64];
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--gemm", &gemm, &st)) continue;
        if (cli_opt(argc, argv, &i, "--math", &math, &st)) continue;
        if (cli_opt(argc, argv, &i, "--input", &input, &st)) continue;
        if (cli_opt(argc, argv, &i, "--output", &output, &st)) continue;
        if (cli_opt(argc, argv, &i, "--array", &array, &st)) continue;
        if (cli_opt(argc, argv, &i, "--drop-column", &drop, &st)) continue;
        if (cli_opt(argc, argv, &i, "--batch", &batch, &st)) continue;
        if (cli_opt(argc, argv, &i, "--device", &device, &st)) continue;
        if (cli_opt(argc, argv, &i, "--threads", &threads, &st)) continue;
        if (cli_opt(argc, argv, &i, "--workspace", &ws_dir, &st)) continue;
        if (argv[i][0] == '-') return cli_usage_error(PREDICT_USAGE, "unknown option '%s'", argv[i]);
        if (model) return cli_usage_error(PREDICT_USAGE, "one MODEL only, got '%s'", argv[i]);
        model = argv[i];
    }
    if (st != KILN_OK) return st;
    if (!model || !input || !output)
        return cli_usage_error(PREDICT_USAGE, "MODEL, --input and --output are required");
    if ((gemm || math) &&
        (st = kiln_device_spec(devspec, sizeof devspec, device, gemm, math)) != KILN_OK)
        return st;
    if (gemm || math) device = devspec;
    long long nb = 1024, nt = 0;
    if (batch && (st = cli_parse_int("--batch", batch, &nb)) != KILN_OK) return st;
    if (threads && (st = cli_parse_int("--threads", threads, &nt)) != KILN_OK) return st;
    if (nb < 1) return cli_usage_error(PREDICT_USAGE, "--batch must be at least 1");
    struct kiln_store *ws = NULL;
    struct kiln_ref *ref = calloc(1, sizeof *ref);
    if (!ref) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    st = cli_open_store(ws_dir, ws_dir != NULL, &ws);
    if (st == KILN_OK) st = resolve_arg(ws, model, KILN_REF_FILE, ref, &model);
    int64_t rows;
    if (st == KILN_OK) st = kiln_predict(model, input, array, drop, output, nb, device, (int)nt, &rows);
    kiln_store_close(ws);
    free(ref);
    if (st != KILN_OK) return st;
    printf("wrote %lld predictions to %s\n", (long long)rows, output);
    return KILN_OK;
}
