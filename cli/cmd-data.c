/* cli/cmd-data.c: kiln data import|list|show|log|diff|stats|export|transform. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "kiln/data.h"
#include "kiln/dataversions.h"
#include "kiln/store.h"

static const char DATA_USAGE[] =
    "usage: kiln data import NAME SOURCE [options] [-o FILE]\n"
    "       kiln data list [--json]\n"
    "       kiln data show REF|FILE [--json]\n"
    "       kiln data log NAME [--json]\n"
    "       kiln data diff REF REF [--split S] [--all] [--json]\n"
    "       kiln data stats REF|FILE [--split S] [--max-features N] [--json]\n"
    "       kiln data export REF|FILE -o FILE [--format csv|h5] [--split S]\n"
    "       kiln data transform SRC TRANSFORM... --as NAME\n"
    "(every subcommand takes --workspace DIR; `kiln data SUBCOMMAND --help` for each)\n"
    "\n"
    "Inside a workspace (kiln init), import registers a dataset version: the same\n"
    "content twice is one version; changed content is a new version whose parent is\n"
    "the previous one. A REF is NAME (the latest version), NAME@v3 or NAME@3f2a9c (a\n"
    "content-hash prefix of 4+ digits), or a plain file.\n";

static const char IMPORT_USAGE[] =
    "usage: kiln data import NAME SOURCE [options] [-o FILE] [--workspace DIR]\n"
    "\n"
    "Reads SOURCE into a kiln dataset. Inside a workspace it is registered as a\n"
    "version of NAME (statistics computed and stored; -o FILE also writes the file);\n"
    "outside one it is written to -o FILE (default NAME.h5). SOURCE is one of:\n"
    "  --idx IMAGES LABELS [--test-idx IMAGES LABELS]   IDX files, gzip or raw (MNIST format)\n"
    "  --csv FILE --label COLUMN [--delimiter C] [--fill mean|zero]\n"
    "        [--task auto|classification|regression]   CSV with a header row\n"
    "  --h5 FILE [--x NAME --y NAME] [--test-x NAME --test-y NAME]   arrays in an HDF5 file\n"
    "options:\n"
    "  --test-fraction F   hold out a stratified share as the test split (CSV, HDF5)\n"
    "  --seed N            seed of that split (default 0)\n"
    "  --classes A,B,...   class names, in label order\n"
    "  -o FILE             output file\n"
    "privacy (CSV):\n"
    "  --drop-columns A,B  columns never read into the dataset\n"
    "  --hash-columns A,B  identifier columns kept out of the features, stored as salted\n"
    "                      SHA-256 per row (/<split>/hashed/<column>) for joining back\n"
    "  --salt-file FILE    the salt (text); inside a workspace the default is one made\n"
    "                      and kept per dataset in .kiln/salts/NAME (mode 0600)\n";

static const char LIST_USAGE[] =
    "usage: kiln data list [--json] [--workspace DIR]\n"
    "\n"
    "Every dataset in the workspace: name, versions, latest version, its content-hash\n"
    "prefix, rows, created.\n";

static const char SHOW_USAGE[] =
    "usage: kiln data show REF|FILE [--json] [--workspace DIR]\n"
    "\n"
    "Splits, shapes, dtypes, classes and their balance, the content hash and a\n"
    "per-feature summary. For a dataset version (REF) also its record: parent,\n"
    "source, transforms, privacy, and the statistics stored at import. The object\n"
    "is checked against its hash first (exit 12 when it does not match).\n";

static const char LOG_USAGE[] =
    "usage: kiln data log NAME [--json] [--workspace DIR]\n"
    "\n"
    "The versions of dataset NAME, newest first, with parents and what changed.\n";

static const char DIFF_USAGE[] =
    "usage: kiln data diff REF REF [--split S] [--all] [--json] [--workspace DIR]\n"
    "\n"
    "Compares two versions (or files): schema (shapes, dtypes, feature names,\n"
    "classes), rows per split, and the statistics of each feature of --split\n"
    "(default train) side by side with their deltas. Features whose mean moved by\n"
    "more than 0.1 std are marked *. Text lists changed features (--all: every one).\n";

static const char STATS_USAGE[] =
    "usage: kiln data stats REF|FILE [--split S] [--max-features N] [--json] [--workspace DIR]\n"
    "\n"
    "The per-feature statistics stored at import (count, missing, mean, std, min,\n"
    "quantiles 1/25/50/75/99%, max; class balance or target statistics), of every\n"
    "split or of --split. --json prints the stored JSON (docs/FORMATS.md).\n";

static const char EXPORT_USAGE[] =
    "usage: kiln data export REF|FILE -o FILE [--format csv|h5] [--split S] [--workspace DIR]\n"
    "\n"
    "Writes a dataset version out, atomically. CSV (the default for a .csv name):\n"
    "one split (--split, default train), a header of feature names and 'label',\n"
    "classes as names; `kiln data import --csv FILE --label label` reads it back to\n"
    "the same content hash. h5: a copy of the kiln dataset file.\n";

static const char TRANSFORM_USAGE[] =
    "usage: kiln data transform SRC TRANSFORM... --as NAME [--workspace DIR]\n"
    "\n"
    "Makes a child version of SRC (a dataset version) named NAME, applying the\n"
    "transforms in the order given, each fitted on the train split:\n"
    "  --standardize[=COLS]   (x - mean) / std per feature\n"
    "  --minmax[=COLS]        (x - min) / (max - min) per feature\n"
    "  --onehot COL           a column of integer codes -> one indicator per code\n"
    "  --cast float32         uint8 features -> float32 (scaled by 1/255)\n"
    "  --select COLS          keep only these columns, in this order\n"
    "  --drop COLS            drop these columns\n"
    "  --filter-labels CLS    keep rows of these classes\n"
    "COLS are comma-separated feature names or indices. The fitted parameters are\n"
    "recorded with the version, and a model trained on it applies them to raw rows\n"
    "at predict time.\n";

/* --- helpers ----------------------------------------------------------------------- */

/* The options every data subcommand shares. Returns true when argv[*i] was
 * one of them. */
struct common {
    const char *ws_dir;
    bool json;
};

static bool common_opt(int argc, char **argv, int *i, struct common *c, enum kiln_status *st)
{
    if (cli_opt(argc, argv, i, "--workspace", &c->ws_dir, st)) return true;
    if (!strcmp(argv[*i], "--json")) {
        c->json = true;
        return true;
    }
    return false;
}

static bool looks_like_path(const char *t)
{
    if (strchr(t, '/')) return true;
    const char *dot = strrchr(t, '.');
    return dot && (!strcmp(dot, ".h5") || !strcmp(dot, ".hdf5") || !strcmp(dot, ".csv") ||
                   !strcmp(dot, ".kiln"));
}

/* A dataset reference or a plain file: inside a workspace a name is looked
 * up as a dataset first, then as a file of that name. */
static enum kiln_status resolve_data(struct kiln_store *ws, const char *text, struct kiln_ref *ref)
{
    if (!ws || looks_like_path(text)) return kiln_ref_resolve(ws, text, KILN_REF_DATASET, ref);
    enum kiln_status st = kiln_ref_resolve(ws, text, KILN_REF_DATASET, ref);
    struct stat sb;
    if (st == KILN_ERR_NOT_FOUND && !strchr(text, '@') && stat(text, &sb) == 0 &&
        S_ISREG(sb.st_mode))
        return kiln_ref_resolve(NULL, text, KILN_REF_FILE, ref);
    return st;
}

/* "v1", or "other@v1" for a parent of another name. */
static void parent_text(const struct kiln_dataversion *v, char *buf, size_t len)
{
    if (strcmp(v->parent_name, v->name) == 0)
        snprintf(buf, len, "v%lld", (long long)v->parent_version);
    else
        snprintf(buf, len, "%s@v%lld", v->parent_name, (long long)v->parent_version);
}

static void print_registered(const struct kiln_dataversion *v)
{
    if (!v->created_new) {
        printf("unchanged: same content as %s@v%lld (%.12s)\n", v->name, (long long)v->version,
               v->content_sha256);
        return;
    }
    printf("%s v%lld (%.12s) registered", v->name, (long long)v->version, v->content_sha256);
    if (v->parent_id) {
        char p[400];
        parent_text(v, p, sizeof p);
        printf(", parent %s", p);
    }
    printf("\n");
}

/* --- import ------------------------------------------------------------------------ */

static enum kiln_status data_import(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, IMPORT_USAGE)) return KILN_OK;
    struct kiln_import_options opt = kiln_import_options_default();
    const char *out = NULL, *v = NULL, *salt_file = NULL;
    struct common c = {0};
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--idx") || !strcmp(a, "--test-idx")) {
            if (i + 2 >= argc)
                return cli_usage_error(IMPORT_USAGE, "%s needs IMAGES and LABELS", a);
            bool test = a[2] == 't';
            (test ? &opt.test_idx_images : &opt.idx_images)[0] = argv[i + 1];
            (test ? &opt.test_idx_labels : &opt.idx_labels)[0] = argv[i + 2];
            i += 2;
            continue;
        }
        if (common_opt(argc, argv, &i, &c, &st)) continue;
        if (cli_opt(argc, argv, &i, "--csv", &opt.csv, &st)) continue;
        if (cli_opt(argc, argv, &i, "--label", &opt.label, &st)) continue;
        if (cli_opt(argc, argv, &i, "--h5", &opt.h5, &st)) continue;
        if (cli_opt(argc, argv, &i, "--x", &opt.h5_x, &st)) continue;
        if (cli_opt(argc, argv, &i, "--y", &opt.h5_y, &st)) continue;
        if (cli_opt(argc, argv, &i, "--test-x", &opt.h5_test_x, &st)) continue;
        if (cli_opt(argc, argv, &i, "--test-y", &opt.h5_test_y, &st)) continue;
        if (cli_opt(argc, argv, &i, "--classes", &opt.classes, &st)) continue;
        if (cli_opt(argc, argv, &i, "--drop-columns", &opt.drop_columns, &st)) continue;
        if (cli_opt(argc, argv, &i, "--hash-columns", &opt.hash_columns, &st)) continue;
        if (cli_opt(argc, argv, &i, "--salt-file", &salt_file, &st)) continue;
        if (cli_opt(argc, argv, &i, "-o", &out, &st)) continue;
        if (cli_opt(argc, argv, &i, "--output", &out, &st)) continue;
        if (cli_opt(argc, argv, &i, "--delimiter", &v, &st)) {
            if (st != KILN_OK) break;
            if (!strcmp(v, "\\t") || !strcmp(v, "tab")) opt.delimiter = '\t';
            else if (strlen(v) == 1) opt.delimiter = v[0];
            else return cli_usage_error(IMPORT_USAGE, "--delimiter takes one character, got '%s'", v);
            continue;
        }
        if (cli_opt(argc, argv, &i, "--fill", &v, &st)) {
            if (st != KILN_OK) break;
            if (!strcmp(v, "mean")) opt.fill = KILN_FILL_MEAN;
            else if (!strcmp(v, "zero")) opt.fill = KILN_FILL_ZERO;
            else return cli_usage_error(IMPORT_USAGE, "--fill is mean or zero, got '%s'", v);
            continue;
        }
        if (cli_opt(argc, argv, &i, "--task", &v, &st)) {
            if (st != KILN_OK) break;
            if (!strcmp(v, "auto")) opt.task = KILN_TASK_AUTO;
            else if (!strcmp(v, "classification")) opt.task = KILN_TASK_CLASSIFICATION;
            else if (!strcmp(v, "regression")) opt.task = KILN_TASK_REGRESSION;
            else return cli_usage_error(IMPORT_USAGE, "--task is auto, classification or regression");
            continue;
        }
        if (cli_opt(argc, argv, &i, "--test-fraction", &v, &st)) {
            if (st == KILN_OK) st = cli_parse_double("--test-fraction", v, &opt.test_fraction);
            if (st == KILN_OK && (opt.test_fraction < 0 || opt.test_fraction >= 1))
                return cli_usage_error(IMPORT_USAGE, "--test-fraction must be in [0, 1)");
            continue;
        }
        if (cli_opt(argc, argv, &i, "--seed", &v, &st)) {
            long long s = 0;
            if (st == KILN_OK) st = cli_parse_int("--seed", v, &s);
            opt.seed = (uint64_t)s;
            continue;
        }
        if (a[0] == '-') return cli_usage_error(IMPORT_USAGE, "unknown option '%s'", a);
        if (opt.name) return cli_usage_error(IMPORT_USAGE, "one NAME only, got '%s'", a);
        opt.name = a;
    }
    if (st != KILN_OK) return st;
    if (!opt.name) return cli_usage_error(IMPORT_USAGE, "import needs a NAME");
    if (c.json) return cli_usage_error(IMPORT_USAGE, "import does not print JSON");
    if ((opt.drop_columns || opt.hash_columns) && !opt.csv)
        return cli_usage_error(IMPORT_USAGE, "--drop-columns and --hash-columns apply to CSV "
                                             "imports");
    if (salt_file && !opt.hash_columns)
        return cli_usage_error(IMPORT_USAGE, "--salt-file goes with --hash-columns");
    struct kiln_store *ws = NULL;
    struct kiln_dataset *ds = NULL;
    char salt[4200], salt_where[512] = "", *privacy = NULL;
    /* --workspace names one that must exist; otherwise one is optional. */
    st = cli_open_store(c.ws_dir, c.ws_dir != NULL, &ws);
    if (st != KILN_OK) return st;
    if (opt.hash_columns) {
        if (salt_file) {
            st = kiln_salt_read_file(salt_file, salt, sizeof salt);
            snprintf(salt_where, sizeof salt_where, "kept by the user (--salt-file), not stored");
        } else if (ws) {
            st = kiln_dataversion_salt(ws, opt.name, salt, sizeof salt);
            snprintf(salt_where, sizeof salt_where, "stored in .kiln/salts/%s", opt.name);
        } else {
            st = cli_usage_error(IMPORT_USAGE, "--hash-columns needs --salt-file outside a "
                                               "workspace");
        }
        opt.salt = salt;
        if (st != KILN_OK) goto cleanup;
    }
    char path[4096];
    if (!out && !ws) {
        snprintf(path, sizeof path, "%s.h5", opt.name);
        out = path;
    }
    st = kiln_data_import(&opt, &ds);
    if (st != KILN_OK) goto cleanup;
    if (ws) {
        privacy = kiln_dataversion_privacy_json(opt.drop_columns, opt.hash_columns, salt_where);
        struct kiln_dataversion_options vo = {.action = "data.import", .privacy_json = privacy};
        struct kiln_dataversion dv;
        st = kiln_dataversion_register(ws, ds, &vo, &dv);
        if (st != KILN_OK) goto cleanup;
        print_registered(&dv);
    }
    if (out) {
        st = kiln_dataset_save(ds, out);
        if (st != KILN_OK) goto cleanup;
        printf("imported %s into %s\n", opt.name, out);
    }
    for (int s = 0; s < KILN_SPLIT_COUNT; s++)
        if (ds->splits[s])
            printf("  %-5s %lld rows\n", kiln_split_name(s), (long long)ds->splits[s]->n);
    printf("  classes %d\n  sha256 %s\n", ds->n_classes, ds->sha256);
cleanup:
    free(privacy);
    kiln_dataset_free(ds);
    kiln_store_close(ws);
    return st;
}

/* --- reading commands -------------------------------------------------------------- */

/* Parses "SUBCOMMAND [POSITIONAL...] [options]" with the shared options and
 * up to n_pos positionals; extra options by name into vals (NULL-ended
 * names), flags into flags. */
struct parsed {
    struct common c;
    const char *pos[2];
    int n_pos;
};

static enum kiln_status parse_args(int argc, char **argv, const char *usage, int want_pos,
                                   const char *const *opt_names, const char **opt_vals,
                                   const char *const *flag_names, bool *flags, struct parsed *p)
{
    memset(p, 0, sizeof *p);
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (common_opt(argc, argv, &i, &p->c, &st)) continue;
        bool matched = false;
        for (int k = 0; opt_names && opt_names[k] && !matched; k++)
            matched = cli_opt(argc, argv, &i, opt_names[k], &opt_vals[k], &st);
        for (int k = 0; flag_names && flag_names[k] && !matched; k++)
            if (!strcmp(argv[i], flag_names[k])) matched = flags[k] = true;
        if (matched) continue;
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_usage_error(usage, "unknown option '%s'", argv[i]);
        if (p->n_pos >= want_pos)
            return cli_usage_error(usage, "unexpected argument '%s'", argv[i]);
        p->pos[p->n_pos++] = argv[i];
    }
    if (st == KILN_OK && p->n_pos < want_pos)
        return cli_usage_error(usage, "%s needs %s", argv[0],
                               want_pos == 2 ? "two references"
                               : !strcmp(argv[0], "log") ? "a dataset NAME" : "a reference");
    return st;
}

/* Opens the workspace, if any (a dataset file needs none), and resolves
 * each positional as a dataset into refs[i]; *ws is the caller's to close. */
static enum kiln_status open_refs(const struct parsed *p, struct kiln_store **ws,
                                  struct kiln_ref *refs)
{
    enum kiln_status st = cli_open_store(p->c.ws_dir, p->c.ws_dir != NULL, ws);
    for (int i = 0; i < p->n_pos && st == KILN_OK; i++) st = resolve_data(*ws, p->pos[i], &refs[i]);
    return st;
}

static enum kiln_status data_list(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, LIST_USAGE)) return KILN_OK;
    struct parsed p;
    enum kiln_status st = parse_args(argc, argv, LIST_USAGE, 0, NULL, NULL, NULL, NULL, &p);
    struct kiln_store *ws = NULL;
    if (st == KILN_OK) st = cli_open_store(p.c.ws_dir, true, &ws);
    if (st == KILN_OK) st = kiln_dataversions_list(ws, p.c.json, stdout);
    kiln_store_close(ws);
    return st;
}

static enum kiln_status data_show(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, SHOW_USAGE)) return KILN_OK;
    struct parsed p;
    enum kiln_status st = parse_args(argc, argv, SHOW_USAGE, 1, NULL, NULL, NULL, NULL, &p);
    struct kiln_store *ws = NULL;
    struct kiln_ref ref;
    if (st == KILN_OK) st = open_refs(&p, &ws, &ref);
    if (st == KILN_OK) st = kiln_dataversion_show(ws, &ref, p.c.json, stdout);
    kiln_store_close(ws);
    return st;
}

static enum kiln_status data_log(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, LOG_USAGE)) return KILN_OK;
    struct parsed p;
    enum kiln_status st = parse_args(argc, argv, LOG_USAGE, 1, NULL, NULL, NULL, NULL, &p);
    struct kiln_store *ws = NULL;
    if (st == KILN_OK) st = cli_open_store(p.c.ws_dir, true, &ws);
    if (st == KILN_OK) {
        /* NAME@... names the dataset too. */
        char name[256];
        snprintf(name, sizeof name, "%s", p.pos[0]);
        char *at = strchr(name, '@');
        if (at) *at = '\0';
        st = kiln_dataversion_log(ws, name, p.c.json, stdout);
    }
    kiln_store_close(ws);
    return st;
}

static enum kiln_status data_diff(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, DIFF_USAGE)) return KILN_OK;
    static const char *const opts[] = {"--split", NULL};
    static const char *const flag_names[] = {"--all", NULL};
    const char *vals[1] = {NULL};
    bool flags[1] = {false};
    struct parsed p;
    enum kiln_status st = parse_args(argc, argv, DIFF_USAGE, 2, opts, vals, flag_names, flags, &p);
    struct kiln_store *ws = NULL;
    struct kiln_ref refs[2];
    if (st == KILN_OK) st = open_refs(&p, &ws, refs);
    if (st == KILN_OK)
        st = kiln_dataversion_diff(ws, &refs[0], &refs[1], vals[0], flags[0], p.c.json, stdout);
    kiln_store_close(ws);
    return st;
}

static enum kiln_status data_stats(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, STATS_USAGE)) return KILN_OK;
    static const char *const opts[] = {"--split", "--max-features", NULL};
    const char *vals[2] = {NULL, NULL};
    struct parsed p;
    long long maxf = 0;
    enum kiln_status st = parse_args(argc, argv, STATS_USAGE, 1, opts, vals, NULL, NULL, &p);
    if (st == KILN_OK && vals[1]) st = cli_parse_int("--max-features", vals[1], &maxf);
    if (st == KILN_OK && maxf > 1000000000) maxf = 0;
    struct kiln_store *ws = NULL;
    struct kiln_ref ref;
    if (st == KILN_OK) st = open_refs(&p, &ws, &ref);
    if (st == KILN_OK)
        st = kiln_dataversion_stats(ws, &ref, vals[0], (int)maxf, p.c.json, stdout);
    kiln_store_close(ws);
    return st;
}

static enum kiln_status data_export(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, EXPORT_USAGE)) return KILN_OK;
    static const char *const opts[] = {"-o", "--output", "--format", "--split", NULL};
    const char *vals[4] = {NULL, NULL, NULL, NULL};
    struct parsed p;
    enum kiln_status st = parse_args(argc, argv, EXPORT_USAGE, 1, opts, vals, NULL, NULL, &p);
    const char *out = vals[0] ? vals[0] : vals[1];
    if (st == KILN_OK && !out) return cli_usage_error(EXPORT_USAGE, "export needs -o FILE");
    if (st == KILN_OK && p.c.json) return cli_usage_error(EXPORT_USAGE, "export writes a file, "
                                                                        "not JSON");
    struct kiln_store *ws = NULL;
    struct kiln_ref ref;
    if (st == KILN_OK) st = open_refs(&p, &ws, &ref);
    if (st == KILN_OK) st = kiln_dataversion_export(&ref, out, vals[2], vals[3]);
    if (st == KILN_OK) printf("exported %s to %s\n", p.pos[0], out);
    kiln_store_close(ws);
    return st;
}

/* --- transform --------------------------------------------------------------------- */

static enum kiln_status data_transform(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, TRANSFORM_USAGE)) return KILN_OK;
    /* Spec strings, in the order given ("standardize", "onehot=color", ...). */
    char **specs = calloc((size_t)argc + 1, sizeof *specs);
    if (!specs) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    int n = 0;
    const char *src = NULL, *as = NULL, *v = NULL;
    struct common c = {0};
    enum kiln_status st = KILN_OK;
    static const struct {
        const char *opt, *kind;
        bool value;
    } kinds[] = {
        {"--onehot", "onehot", true},         {"--cast", "cast", true},
        {"--select", "select", true},         {"--drop", "drop", true},
        {"--filter-labels", "filter-labels", true},
    };
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        const char *a = argv[i];
        if (common_opt(argc, argv, &i, &c, &st)) continue;
        if (cli_opt(argc, argv, &i, "--as", &as, &st)) continue;
        /* --standardize and --minmax take no value, or =COLS. */
        if (!strncmp(a, "--standardize", 13) || !strncmp(a, "--minmax", 8)) {
            const char *rest = a + (a[2] == 's' ? 13 : 8);
            if (*rest && *rest != '=') {
                st = cli_usage_error(TRANSFORM_USAGE, "unknown option '%s'", a);
                break;
            }
            size_t len = strlen(a);
            specs[n] = malloc(len);
            if (!specs[n]) {
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
                break;
            }
            snprintf(specs[n++], len, "%s", a + 2);
            continue;
        }
        bool matched = false;
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0] && !matched; k++) {
            if (!cli_opt(argc, argv, &i, kinds[k].opt, &v, &st)) continue;
            matched = true;
            if (st != KILN_OK) break;
            size_t len = strlen(kinds[k].kind) + strlen(v) + 2;
            specs[n] = malloc(len);
            if (!specs[n]) st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            else snprintf(specs[n++], len, "%s=%s", kinds[k].kind, v);
        }
        if (matched) continue;
        if (a[0] == '-') {
            st = cli_usage_error(TRANSFORM_USAGE, "unknown option '%s'", a);
            break;
        }
        if (src) {
            st = cli_usage_error(TRANSFORM_USAGE, "one SRC only, got '%s'", a);
            break;
        }
        src = a;
    }
    if (st == KILN_OK && !src) st = cli_usage_error(TRANSFORM_USAGE, "transform needs SRC");
    if (st == KILN_OK && !as) st = cli_usage_error(TRANSFORM_USAGE, "transform needs --as NAME");
    if (st == KILN_OK && n == 0)
        st = cli_usage_error(TRANSFORM_USAGE, "give at least one transform (--standardize, ...)");
    if (st == KILN_OK && c.json)
        st = cli_usage_error(TRANSFORM_USAGE, "transform does not print JSON");
    struct kiln_store *ws = NULL;
    struct kiln_dataversion dv;
    if (st == KILN_OK) st = cli_open_store(c.ws_dir, true, &ws);
    if (st == KILN_OK)
        st = kiln_dataversion_transform(ws, src, (const char *const *)specs, n, as, &dv);
    if (st == KILN_OK) {
        print_registered(&dv);
        printf("  transforms");
        for (int k = 0; k < n; k++) printf("%s %s", k ? "," : "", specs[k]);
        printf("\n");
    }
    kiln_store_close(ws);
    for (int k = 0; k < n; k++) free(specs[k]);
    free(specs);
    return st;
}

enum kiln_status cmd_data(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(DATA_USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? kiln_errorf(KILN_ERR_USAGE, "data needs a subcommand (import, list, "
                                                      "show, log, diff, stats, export, "
                                                      "transform)")
                        : KILN_OK;
    }
    static const struct {
        const char *name;
        cli_command_fn fn;
    } subs[] = {
        {"import", data_import}, {"list", data_list},     {"show", data_show},
        {"log", data_log},       {"diff", data_diff},     {"stats", data_stats},
        {"export", data_export}, {"transform", data_transform},
    };
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(argv[1], subs[i].name)) return subs[i].fn(argc - 1, argv + 1);
    return cli_usage_error(DATA_USAGE, "unknown data subcommand '%s'", argv[1]);
}
