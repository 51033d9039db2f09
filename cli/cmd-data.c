/* cli/cmd-data.c: kiln data import, kiln data show. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kiln/data.h"

static const char DATA_USAGE[] =
    "usage: kiln data import NAME SOURCE [options] [-o FILE]\n"
    "       kiln data show FILE\n"
    "\n"
    "import reads SOURCE into a kiln dataset file (default NAME.h5). SOURCE is one of:\n"
    "  --idx IMAGES LABELS [--test-idx IMAGES LABELS]   IDX files, gzip or raw (MNIST format)\n"
    "  --csv FILE --label COLUMN [--delimiter C] [--fill mean|zero]\n"
    "        [--task auto|classification|regression]   CSV with a header row\n"
    "  --h5 FILE [--x NAME --y NAME] [--test-x NAME --test-y NAME]   arrays in an HDF5 file\n"
    "options:\n"
    "  --test-fraction F   hold out a stratified share as the test split (CSV, HDF5)\n"
    "  --seed N            seed of that split (default 42)\n"
    "  --classes A,B,...   class names, in label order\n"
    "  -o FILE             output file\n"
    "show prints splits, shapes, dtypes, classes, the content hash and a per-feature summary.\n";

static enum kiln_status data_import(int argc, char **argv)
{
    struct kiln_import_options opt = kiln_import_options_default();
    const char *out = NULL, *v = NULL;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--idx") || !strcmp(a, "--test-idx")) {
            if (i + 2 >= argc)
                return cli_usage_error(DATA_USAGE, "%s needs IMAGES and LABELS", a);
            bool test = a[2] == 't';
            (test ? &opt.test_idx_images : &opt.idx_images)[0] = argv[i + 1];
            (test ? &opt.test_idx_labels : &opt.idx_labels)[0] = argv[i + 2];
            i += 2;
            continue;
        }
        if (cli_opt(argc, argv, &i, "--csv", &opt.csv, &st)) continue;
        if (cli_opt(argc, argv, &i, "--label", &opt.label, &st)) continue;
        if (cli_opt(argc, argv, &i, "--h5", &opt.h5, &st)) continue;
        if (cli_opt(argc, argv, &i, "--x", &opt.h5_x, &st)) continue;
        if (cli_opt(argc, argv, &i, "--y", &opt.h5_y, &st)) continue;
        if (cli_opt(argc, argv, &i, "--test-x", &opt.h5_test_x, &st)) continue;
        if (cli_opt(argc, argv, &i, "--test-y", &opt.h5_test_y, &st)) continue;
        if (cli_opt(argc, argv, &i, "--classes", &opt.classes, &st)) continue;
        if (cli_opt(argc, argv, &i, "-o", &out, &st)) continue;
        if (cli_opt(argc, argv, &i, "--output", &out, &st)) continue;
        if (cli_opt(argc, argv, &i, "--delimiter", &v, &st)) {
            if (st != KILN_OK) break;
            if (!strcmp(v, "\\t") || !strcmp(v, "tab")) opt.delimiter = '\t';
            else if (strlen(v) == 1) opt.delimiter = v[0];
            else return cli_usage_error(DATA_USAGE, "--delimiter takes one character, got '%s'", v);
            continue;
        }
        if (cli_opt(argc, argv, &i, "--fill", &v, &st)) {
            if (st != KILN_OK) break;
            if (!strcmp(v, "mean")) opt.fill = KILN_FILL_MEAN;
            else if (!strcmp(v, "zero")) opt.fill = KILN_FILL_ZERO;
            else return cli_usage_error(DATA_USAGE, "--fill is mean or zero, got '%s'", v);
            continue;
        }
        if (cli_opt(argc, argv, &i, "--task", &v, &st)) {
            if (st != KILN_OK) break;
            if (!strcmp(v, "auto")) opt.task = KILN_TASK_AUTO;
            else if (!strcmp(v, "classification")) opt.task = KILN_TASK_CLASSIFICATION;
            else if (!strcmp(v, "regression")) opt.task = KILN_TASK_REGRESSION;
            else return cli_usage_error(DATA_USAGE, "--task is auto, classification or regression");
            continue;
        }
        if (cli_opt(argc, argv, &i, "--test-fraction", &v, &st)) {
            if (st == KILN_OK) st = cli_parse_double("--test-fraction", v, &opt.test_fraction);
            if (st == KILN_OK && (opt.test_fraction < 0 || opt.test_fraction >= 1))
                return cli_usage_error(DATA_USAGE, "--test-fraction must be in [0, 1)");
            continue;
        }
        if (cli_opt(argc, argv, &i, "--seed", &v, &st)) {
            long long s = 0;
            if (st == KILN_OK) st = cli_parse_int("--seed", v, &s);
            opt.seed = (uint64_t)s;
            continue;
        }
        if (a[0] == '-') return cli_usage_error(DATA_USAGE, "unknown option '%s'", a);
        if (opt.name) return cli_usage_error(DATA_USAGE, "one NAME only, got '%s'", a);
        opt.name = a;
    }
    if (st != KILN_OK) return st;
    if (!opt.name) return cli_usage_error(DATA_USAGE, "import needs a NAME");
    char path[4096];
    if (!out) {
        snprintf(path, sizeof path, "%s.h5", opt.name);
        out = path;
    }
    struct kiln_dataset *ds = NULL;
    st = kiln_data_import(&opt, &ds);
    if (st == KILN_OK) st = kiln_dataset_save(ds, out);
    if (st == KILN_OK) {
        printf("imported %s into %s\n", opt.name, out);
        for (int s = 0; s < KILN_SPLIT_COUNT; s++)
            if (ds->splits[s])
                printf("  %-5s %lld rows\n", kiln_split_name(s), (long long)ds->splits[s]->n);
        printf("  classes %d\n  sha256 %s\n", ds->n_classes, ds->sha256);
    }
    kiln_dataset_free(ds);
    return st;
}

enum kiln_status cmd_data(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(DATA_USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? kiln_errorf(KILN_ERR_USAGE, "data needs a subcommand (import, show)")
                        : KILN_OK;
    }
    if (cli_wants_help(argc, argv, DATA_USAGE)) return KILN_OK;
    if (!strcmp(argv[1], "import")) return data_import(argc - 1, argv + 1);
    if (!strcmp(argv[1], "show")) {
        if (argc != 3) return cli_usage_error(DATA_USAGE, "show takes one FILE");
        struct kiln_dataset *ds = NULL;
        enum kiln_status st = kiln_dataset_load(argv[2], &ds);
        if (st == KILN_OK) st = kiln_dataset_describe(ds, stdout);
        kiln_dataset_free(ds);
        return st;
    }
    return cli_usage_error(DATA_USAGE, "unknown data subcommand '%s'", argv[1]);
}
