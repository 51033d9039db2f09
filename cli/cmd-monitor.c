/* cli/cmd-monitor.c: kiln monitor drift. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "kiln/data.h"
#include "kiln/dataversions.h"
#include "kiln/drift.h"
#include "kiln/package.h"
#include "kiln/predlog.h"
#include "kiln/stats.h"
#include "kiln/store.h"
#include "kiln/transform.h"

static const char MONITOR_USAGE[] =
    "usage: kiln monitor drift --baseline DATASET_OR_PACKAGE --current DATA_OR_LOG\n"
    "           [--split S] [--psi-threshold X] [--ks-threshold X] [--top N] [--json]\n"
    "           [--drop-column NAME] [--key PUB] [--require-signature] [--workspace DIR]\n"
    "\n"
    "Compares current data with the train split of a baseline dataset, feature by\n"
    "feature: the population stability index (PSI) and the Kolmogorov-Smirnov\n"
    "statistic (KS) over the baseline's 20 histogram bins, and for labelled data or\n"
    "logged predictions the class distribution's PSI. A feature drifted when\n"
    "PSI > --psi-threshold (default 0.2) or KS > --ks-threshold (default 0.1).\n"
    "  --baseline   a dataset version (its stored statistics), a kiln dataset file, or\n"
    "               a model package (.kiln: its stats.json, checked as `kiln model\n"
    "               verify` does, with --key PUB and --require-signature)\n"
    "  --current    a dataset version or file (its --split, default test), a CSV of\n"
    "               feature rows with a header (--drop-column skips one, e.g. a label),\n"
    "               or a prediction log (a .jsonl file or a folder of them, as\n"
    "               kiln serve --log writes): its inputs and its predicted classes.\n"
    "               A redacted log has no inputs: only the classes are compared.\n"
    "               With a package that carries transforms, current rows are raw\n"
    "               model inputs and are transformed first, as the model would.\n"
    "  --top N      print the N most drifted features (default 20; 0 = all)\n"
    "  --json       one JSON object instead of the table\n"
    "exit codes: 0 = no drift, 1 = drift found, >= 2 = an error (kiln --help).\n";

static bool monitor_is_csv(const char *t)
{
    const char *dot = strrchr(t, '.');
    return dot && !strcmp(dot, ".csv");
}

static bool monitor_has_suffix(const char *t, const char *suffix)
{
    size_t n = strlen(t), m = strlen(suffix);
    return n > m && !strcmp(t + n - m, suffix);
}

/* A prediction log: a .jsonl file or a folder (datasets are never folders). */
static bool monitor_is_log(const char *t)
{
    struct stat sb;
    return monitor_has_suffix(t, ".jsonl") || (stat(t, &sb) == 0 && S_ISDIR(sb.st_mode));
}

static bool monitor_looks_like_path(const char *t)
{
    if (strchr(t, '/')) return true;
    const char *dot = strrchr(t, '.');
    return dot && (!strcmp(dot, ".h5") || !strcmp(dot, ".hdf5") || !strcmp(dot, ".kiln"));
}

/* A dataset reference or a plain file: inside a workspace a name is looked
 * up as a dataset first, then as a file of that name. */
static enum kiln_status monitor_resolve(struct kiln_store *ws, const char *text, struct kiln_ref *ref)
{
    if (!ws || monitor_looks_like_path(text)) return kiln_ref_resolve(ws, text, KILN_REF_DATASET, ref);
    enum kiln_status st = kiln_ref_resolve(ws, text, KILN_REF_DATASET, ref);
    struct stat sb;
    if (st == KILN_ERR_NOT_FOUND && !strchr(text, '@') && stat(text, &sb) == 0 &&
        S_ISREG(sb.st_mode))
        return kiln_ref_resolve(NULL, text, KILN_REF_FILE, ref);
    return st;
}

/* A package's stats.json (the training data's statistics) and its
 * transforms, after kiln_package_open has checked the package. */
static enum kiln_status monitor_package_baseline(const char *path, const char *key, bool require,
                                                 struct kiln_dataset_stats **out,
                                                 struct kiln_transform_list **tl)
{
    struct kiln_package *p = NULL;
    char *text = NULL;
    FILE *f = NULL;
    enum kiln_status st = kiln_package_open(path, key, require, &p);
    if (st != KILN_OK) goto cleanup;
    /* The package verified stats.json's size and hash; the bound is the manifest's limit. */
    if (!(f = fopen(p->stats_path, "rb"))) {
        st = kiln_errorf(KILN_ERR_IO, "%s: stats.json: %s", path, strerror(errno));
        goto cleanup;
    }
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || size > KILN_PACKAGE_MAX_MEMBER || fseek(f, 0, SEEK_SET) != 0) {
        st = kiln_errorf(KILN_ERR_IO, "%s: stats.json cannot be read", path);
        goto cleanup;
    }
    if (!(text = malloc((size_t)size + 1))) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory for stats.json", path);
        goto cleanup;
    }
    if (fread(text, 1, (size_t)size, f) != (size_t)size) {
        st = kiln_errorf(KILN_ERR_IO, "%s: stats.json: read error", path);
        goto cleanup;
    }
    text[size] = '\0';
    if (!strncmp(text, "null", 4)) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s: the package holds no training statistics "
                         "(stats.json is null), so it cannot be a drift baseline", path);
        goto cleanup;
    }
    st = kiln_dataset_stats_from_json(text, out);
    if (st != KILN_OK) {
        kiln_error_context(st, "%s: stats.json", path);
        goto cleanup;
    }
    if (p->transforms_json && (st = kiln_transform_list_from_json(p->transforms_json, tl)) != KILN_OK)
        kiln_error_context(st, "%s: transforms", path);
cleanup:
    if (f) fclose(f);
    free(text);
    kiln_package_close(p);
    return st;
}

/* The baseline's statistics: stored with a dataset version, else computed
 * from the file's train split. Caller frees *out. */
static enum kiln_status monitor_baseline(struct kiln_store *ws, const char *text,
                                         struct kiln_dataset_stats **out)
{
    *out = NULL;
    struct kiln_ref ref;
    struct kiln_dataversion_record rec;
    memset(&rec, 0, sizeof rec);
    struct kiln_dataset *ds = NULL;
    enum kiln_status st = monitor_resolve(ws, text, &ref);
    if (st != KILN_OK) goto cleanup;
    if (ref.kind == KILN_REF_DATASET) {
        st = kiln_dataversion_get(ws, ref.id, &rec);
        if (st != KILN_OK) goto cleanup;
        if (rec.stats) {
            st = kiln_dataset_stats_from_json(rec.stats, out);
            goto cleanup;
        }
    }
    st = kiln_dataset_load(ref.path, &ds);
    if (st != KILN_OK) goto cleanup;
    if (!ds->splits[KILN_SPLIT_TRAIN]) {
        st = kiln_errorf(KILN_ERR_USAGE, "baseline %s has no train split", text);
        goto cleanup;
    }
    /* Only the train split is the baseline: a shallow copy without the others. */
    struct kiln_dataset train_only = *ds;
    train_only.splits[KILN_SPLIT_VAL] = NULL;
    train_only.splits[KILN_SPLIT_TEST] = NULL;
    st = kiln_dataset_stats_compute(&train_only, out);
cleanup:
    kiln_dataversion_record_free(&rec);
    kiln_dataset_free(ds);
    return st;
}

/* Where current rows go: the accumulator, through the package's transforms
 * when it has them. */
struct monitor_sink {
    struct kiln_drift *d;
    const struct kiln_transform_list *tl; /* NULL: rows are compared as they are */
    float *buf;                           /* transformed rows */
    int64_t buf_rows;
    bool labels;                          /* the baseline has class counts */
    int64_t log_rows, log_redacted, log_labels;
};

enum { MONITOR_BLOCK = 256 };

static enum kiln_status monitor_add_rows(struct monitor_sink *s, const float *x, int64_t n,
                                         int64_t width)
{
    if (!s->tl) return kiln_drift_add_rows(s->d, x, n, width);
    int64_t in = kiln_transform_in_width(s->tl), out = kiln_transform_out_width(s->tl);
    if (width != in)
        return kiln_errorf(KILN_ERR_SHAPE, "current rows have %lld features, the package's model "
                           "takes %lld", (long long)width, (long long)in);
    if (!s->buf) {
        s->buf = malloc((size_t)(MONITOR_BLOCK * (out > 0 ? out : 1)) * sizeof *s->buf);
        if (!s->buf) return kiln_errorf(KILN_ERR_NOMEM, "drift: out of memory");
    }
    enum kiln_status st = KILN_OK;
    for (int64_t r = 0; r < n && st == KILN_OK; r += MONITOR_BLOCK) {
        int64_t m = n - r < MONITOR_BLOCK ? n - r : MONITOR_BLOCK;
        st = kiln_transform_apply_rows(s->tl, x + r * width, m, s->buf);
        if (st == KILN_OK) st = kiln_drift_add_rows(s->d, s->buf, m, out);
    }
    return st;
}

static enum kiln_status monitor_add_csv(struct monitor_sink *sink, const char *path, const char *drop)
{
    struct kiln_rows_reader *rd = NULL;
    float *buf = NULL;
    enum kiln_status st = kiln_rows_open(path, NULL, drop, &rd);
    if (st != KILN_OK) goto cleanup;
    int64_t width = kiln_rows_width(rd), block = 1024, got = 0;
    buf = malloc((size_t)(block * (width > 0 ? width : 1)) * sizeof *buf);
    if (!buf) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    do {
        st = kiln_rows_read(rd, block, buf, &got);
        if (st == KILN_OK && got > 0) st = monitor_add_rows(sink, buf, got, width);
    } while (st == KILN_OK && got > 0);
cleanup:
    free(buf);
    kiln_rows_close(rd);
    return st;
}

/* A split of raw rows through the package's transforms, in blocks. Labels
 * are compared unless a transform renumbers classes (filter-labels), which
 * raw labels cannot follow. */
static enum kiln_status monitor_add_raw_split(struct monitor_sink *sink, const struct kiln_split *s)
{
    enum kiln_status st = KILN_OK;
    float *buf = NULL;
    if (s->x_dtype == KILN_DTYPE_U8) {
        buf = malloc((size_t)(MONITOR_BLOCK * s->feat_size) * sizeof *buf);
        if (!buf) return kiln_errorf(KILN_ERR_NOMEM, "drift: out of memory");
    }
    for (int64_t r = 0; r < s->n && st == KILN_OK; r += MONITOR_BLOCK) {
        int64_t m = s->n - r < MONITOR_BLOCK ? s->n - r : MONITOR_BLOCK;
        const float *x = (const float *)s->X + r * s->feat_size;
        if (buf) {
            const uint8_t *src = (const uint8_t *)s->X + r * s->feat_size;
            for (int64_t k = 0; k < m * s->feat_size; k++) buf[k] = kiln_u8_to_f32(src[k]);
            x = buf;
        }
        st = monitor_add_rows(sink, x, m, s->feat_size);
    }
    bool renumbered = false;
    for (int i = 0; i < sink->tl->n; i++)
        renumbered |= sink->tl->steps[i].kind == KILN_TF_FILTER_LABELS;
    if (st == KILN_OK && sink->labels && !renumbered && s->y && s->y_dtype == KILN_DTYPE_I32 &&
        s->y_dim == 1)
        st = kiln_drift_add_labels(sink->d, s->y, s->n);
    free(buf);
    return st;
}

static enum kiln_status monitor_add_dataset(struct kiln_store *ws, struct monitor_sink *sink,
                                            const char *text, enum kiln_split_id split)
{
    struct kiln_ref ref;
    struct kiln_dataset *ds = NULL;
    enum kiln_status st = monitor_resolve(ws, text, &ref);
    if (st == KILN_OK) st = kiln_dataset_load(ref.path, &ds);
    if (st == KILN_OK && !ds->splits[split])
        st = kiln_errorf(KILN_ERR_USAGE, "current data %s has no %s split", text, kiln_split_name(split));
    /* A dataset that records transforms holds rows as the model sees them already. */
    if (st == KILN_OK)
        st = sink->tl && !ds->transforms ? monitor_add_raw_split(sink, ds->splits[split])
                                         : kiln_drift_add_split(sink->d, ds->splits[split]);
    kiln_dataset_free(ds);
    return st;
}

/* kiln_predlog_read's callback: a record's inputs (absent when redacted) and
 * predicted classes (compared with the training labels' distribution). */
static enum kiln_status monitor_log_rows(void *user, const float *x, int64_t rows, int64_t width,
                                         const int32_t *classes)
{
    struct monitor_sink *s = user;
    enum kiln_status st = KILN_OK;
    if (x) st = monitor_add_rows(s, x, rows, width);
    if (x) s->log_rows += rows;
    else s->log_redacted += rows;
    if (st == KILN_OK && classes && s->labels) {
        st = kiln_drift_add_labels(s->d, classes, rows);
        s->log_labels += rows;
    }
    return st;
}

static enum kiln_status monitor_add_log(struct monitor_sink *sink, const char *path)
{
    enum kiln_status st = kiln_predlog_read(path, monitor_log_rows, sink);
    if (st != KILN_OK) return st;
    if (sink->log_rows == 0 && sink->log_labels == 0)
        return kiln_errorf(KILN_ERR_USAGE, "%s: the log holds no inputs (%s) and no predicted "
                           "classes to compare with the baseline", path,
                           sink->log_redacted > 0 ? "it is redacted" : "it is empty");
    if (sink->log_redacted > 0 && sink->log_rows > 0)
        fprintf(stderr, "kiln: note: %lld of %lld logged rows have no inputs (redacted); "
                "features are compared over the other %lld\n", (long long)sink->log_redacted,
                (long long)(sink->log_redacted + sink->log_rows), (long long)sink->log_rows);
    return KILN_OK;
}

static enum kiln_status monitor_drift(int argc, char **argv)
{
    const char *base_text = NULL, *cur_text = NULL, *split_text = "test", *psi_text = NULL,
               *ks_text = NULL, *top_text = NULL, *drop = NULL, *ws_dir = NULL, *key = NULL;
    bool json = false, require = false;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--baseline", &base_text, &st)) continue;
        if (cli_opt(argc, argv, &i, "--current", &cur_text, &st)) continue;
        if (cli_opt(argc, argv, &i, "--split", &split_text, &st)) continue;
        if (cli_opt(argc, argv, &i, "--psi-threshold", &psi_text, &st)) continue;
        if (cli_opt(argc, argv, &i, "--ks-threshold", &ks_text, &st)) continue;
        if (cli_opt(argc, argv, &i, "--top", &top_text, &st)) continue;
        if (cli_opt(argc, argv, &i, "--drop-column", &drop, &st)) continue;
        if (cli_opt(argc, argv, &i, "--workspace", &ws_dir, &st)) continue;
        if (cli_opt(argc, argv, &i, "--key", &key, &st)) continue;
        if (!strcmp(argv[i], "--json")) {
            json = true;
            continue;
        }
        if (!strcmp(argv[i], "--require-signature")) {
            require = true;
            continue;
        }
        return cli_usage_error(MONITOR_USAGE, "unexpected argument '%s'", argv[i]);
    }
    if (st != KILN_OK) return st;
    if (!base_text || !cur_text)
        return cli_usage_error(MONITOR_USAGE, "drift needs --baseline and --current");
    bool package = monitor_has_suffix(base_text, ".kiln");
    if ((key || require) && !package)
        return cli_usage_error(MONITOR_USAGE, "--key and --require-signature apply to a package "
                               "baseline (.kiln)");
    if (require && !key)
        return cli_usage_error(MONITOR_USAGE, "--require-signature needs --key PUB to check it");
    struct kiln_drift_options opt = {0};
    long long top = 20;
    enum kiln_split_id split;
    st = kiln_split_parse(split_text, &split);
    if (st == KILN_OK && psi_text) st = cli_parse_double("--psi-threshold", psi_text, &opt.psi_threshold);
    if (st == KILN_OK && ks_text) st = cli_parse_double("--ks-threshold", ks_text, &opt.ks_threshold);
    if (st == KILN_OK && top_text) st = cli_parse_int("--top", top_text, &top);
    if (st == KILN_OK && ((psi_text && !(opt.psi_threshold > 0)) || (ks_text && !(opt.ks_threshold > 0))))
        st = cli_usage_error(MONITOR_USAGE, "thresholds must be > 0");
    if (st != KILN_OK) return st;

    struct kiln_store *ws = NULL;
    struct kiln_dataset_stats *base = NULL;
    struct kiln_transform_list *tl = NULL;
    struct monitor_sink sink = {0};
    struct kiln_drift_report *r = NULL;
    bool drifted = false;
    st = cli_open_store(ws_dir, ws_dir != NULL, &ws);
    if (st == KILN_OK)
        st = package ? monitor_package_baseline(base_text, key, require, &base, &tl)
                     : monitor_baseline(ws, base_text, &base);
    const struct kiln_split_stats *train = NULL;
    for (int s = 0; st == KILN_OK && s < base->n_splits; s++)
        if (base->splits[s].split == KILN_SPLIT_TRAIN) train = &base->splits[s];
    if (st == KILN_OK && !train) st = kiln_errorf(KILN_ERR_USAGE, "baseline %s has no train split", base_text);
    if (st == KILN_OK) st = kiln_drift_begin(train, &sink.d);
    if (st == KILN_OK) {
        sink.tl = tl && tl->n > 0 ? tl : NULL;
        sink.labels = train->n_classes > 0 && train->class_counts;
        st = monitor_is_log(cur_text)   ? monitor_add_log(&sink, cur_text)
             : monitor_is_csv(cur_text) ? monitor_add_csv(&sink, cur_text, drop)
                                        : monitor_add_dataset(ws, &sink, cur_text, split);
    }
    if (st == KILN_OK) st = kiln_drift_finish(sink.d, &opt, &r);
    if (st == KILN_OK && json) {
        char *text = kiln_drift_report_to_json(r, top);
        if (!text) st = kiln_errorf(KILN_ERR_NOMEM, "drift report: out of memory");
        else printf("%s\n", text);
        free(text);
    } else if (st == KILN_OK) {
        kiln_drift_report_print(r, top, stdout);
    }
    if (st == KILN_OK) drifted = r->drifted > 0 || r->classes_drifted;
    kiln_drift_report_free(r);
    kiln_drift_free(sink.d);
    free(sink.buf);
    kiln_transform_list_free(tl);
    kiln_dataset_stats_free(base);
    kiln_store_close(ws);
    if (drifted) {
        /* Exit code 1 = drift found, below every error code (>= 2). */
        fflush(stdout);
        exit(1);
    }
    return st;
}

enum kiln_status cmd_monitor(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, MONITOR_USAGE)) return KILN_OK;
    if (argc < 2 || strcmp(argv[1], "drift") != 0)
        return cli_usage_error(MONITOR_USAGE, "expected 'drift'");
    return monitor_drift(argc - 1, argv + 1);
}
