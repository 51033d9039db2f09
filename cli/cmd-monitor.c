/* cli/cmd-monitor.c: kiln monitor drift. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "kiln/data.h"
#include "kiln/dataversions.h"
#include "kiln/drift.h"
#include "kiln/stats.h"
#include "kiln/store.h"

static const char MONITOR_USAGE[] =
    "usage: kiln monitor drift --baseline DATASET_OR_FILE --current DATASET_OR_FILE\n"
    "           [--split S] [--psi-threshold X] [--ks-threshold X] [--top N] [--json]\n"
    "           [--drop-column NAME] [--workspace DIR]\n"
    "\n"
    "Compares current data with the train split of a baseline dataset, feature by\n"
    "feature: the population stability index (PSI) and the Kolmogorov-Smirnov\n"
    "statistic (KS) over the baseline's 20 histogram bins, and for labelled data the\n"
    "class distribution's PSI. A feature drifted when PSI > --psi-threshold (default\n"
    "0.2) or KS > --ks-threshold (default 0.1).\n"
    "  --baseline   a dataset version (its stored statistics) or a kiln dataset file\n"
    "  --current    a dataset version or file (its --split, default test), or a CSV of\n"
    "               feature rows with a header (--drop-column skips one, e.g. a label)\n"
    "  --top N      print the N most drifted features (default 20; 0 = all)\n"
    "  --json       one JSON object instead of the table\n"
    "exit codes: 0 = no drift, 1 = drift found, >= 2 = an error (kiln --help).\n";

static bool monitor_is_csv(const char *t)
{
    const char *dot = strrchr(t, '.');
    return dot && !strcmp(dot, ".csv");
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

static enum kiln_status monitor_add_csv(struct kiln_drift *d, const char *path, const char *drop)
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
        if (st == KILN_OK && got > 0) st = kiln_drift_add_rows(d, buf, got, width);
    } while (st == KILN_OK && got > 0);
cleanup:
    free(buf);
    kiln_rows_close(rd);
    return st;
}

static enum kiln_status monitor_add_dataset(struct kiln_store *ws, struct kiln_drift *d,
                                            const char *text, enum kiln_split_id split)
{
    struct kiln_ref ref;
    struct kiln_dataset *ds = NULL;
    enum kiln_status st = monitor_resolve(ws, text, &ref);
    if (st == KILN_OK) st = kiln_dataset_load(ref.path, &ds);
    if (st == KILN_OK && !ds->splits[split])
        st = kiln_errorf(KILN_ERR_USAGE, "current data %s has no %s split", text, kiln_split_name(split));
    if (st == KILN_OK) st = kiln_drift_add_split(d, ds->splits[split]);
    kiln_dataset_free(ds);
    return st;
}

static enum kiln_status monitor_drift(int argc, char **argv)
{
    const char *base_text = NULL, *cur_text = NULL, *split_text = "test", *psi_text = NULL,
               *ks_text = NULL, *top_text = NULL, *drop = NULL, *ws_dir = NULL;
    bool json = false;
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
        if (!strcmp(argv[i], "--json")) {
            json = true;
            continue;
        }
        return cli_usage_error(MONITOR_USAGE, "unexpected argument '%s'", argv[i]);
    }
    if (st != KILN_OK) return st;
    if (!base_text || !cur_text)
        return cli_usage_error(MONITOR_USAGE, "drift needs --baseline and --current");
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
    struct kiln_drift *d = NULL;
    struct kiln_drift_report *r = NULL;
    bool drifted = false;
    st = cli_open_store(ws_dir, ws_dir != NULL, &ws);
    if (st == KILN_OK) st = monitor_baseline(ws, base_text, &base);
    const struct kiln_split_stats *train = NULL;
    for (int s = 0; st == KILN_OK && s < base->n_splits; s++)
        if (base->splits[s].split == KILN_SPLIT_TRAIN) train = &base->splits[s];
    if (st == KILN_OK && !train) st = kiln_errorf(KILN_ERR_USAGE, "baseline %s has no train split", base_text);
    if (st == KILN_OK) st = kiln_drift_begin(train, &d);
    if (st == KILN_OK)
        st = monitor_is_csv(cur_text) ? monitor_add_csv(d, cur_text, drop)
                                       : monitor_add_dataset(ws, d, cur_text, split);
    if (st == KILN_OK) st = kiln_drift_finish(d, &opt, &r);
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
    kiln_drift_free(d);
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
