/* cli/cmd-workspace.c: kiln init, gc, fsck, audit. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kiln/store.h"

enum kiln_status cli_open_store(const char *ws_dir, bool required, struct kiln_store **out)
{
    return required ? kiln_store_open(ws_dir, out) : kiln_store_open_optional(ws_dir, out);
}

static const char INIT_USAGE[] =
    "usage: kiln init [DIR]\n"
    "\n"
    "Makes a kiln workspace (.kiln/) in DIR (default: the current folder). Inside it\n"
    "(or below it), data import registers dataset versions, train records runs, and\n"
    "model commands keep a registry; every command finds it by walking up, like git,\n"
    "or takes --workspace DIR.\n";

enum kiln_status cmd_init(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, INIT_USAGE)) return KILN_OK;
    if (argc > 2) return cli_usage_error(INIT_USAGE, "at most one DIR");
    char root[4096];
    enum kiln_status st = kiln_store_init(argc == 2 ? argv[1] : NULL, root, sizeof root);
    if (st == KILN_OK) printf("initialised an empty kiln workspace in %s/.kiln\n", root);
    return st;
}

/* Parses the one option every maintenance command takes. */
static enum kiln_status ws_args(int argc, char **argv, const char *usage, const char **ws,
                                bool *flag, const char *flag_name, const char **limit)
{
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--workspace", ws, &st)) continue;
        if (limit && cli_opt(argc, argv, &i, "--limit", limit, &st)) continue;
        if (flag_name && !strcmp(argv[i], flag_name)) {
            *flag = true;
            continue;
        }
        return cli_usage_error(usage, "unexpected argument '%s'", argv[i]);
    }
    return st;
}

static const char GC_USAGE[] =
    "usage: kiln gc [--dry-run] [--workspace DIR]\n"
    "\n"
    "Removes objects that no dataset version, checkpoint, model version or package\n"
    "refers to, and temp files left by dead processes. --dry-run only counts them.\n";

enum kiln_status cmd_gc(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, GC_USAGE)) return KILN_OK;
    const char *ws_dir = NULL;
    bool dry = false;
    enum kiln_status st = ws_args(argc, argv, GC_USAGE, &ws_dir, &dry, "--dry-run", NULL);
    struct kiln_store *ws = NULL;
    if (st == KILN_OK) st = cli_open_store(ws_dir, true, &ws);
    struct kiln_gc_report r;
    if (st == KILN_OK) st = kiln_store_gc(ws, dry, &r);
    if (st == KILN_OK)
        printf("%s %lld objects (%lld bytes) and %lld temp files\n", dry ? "would remove" : "removed",
               (long long)r.objects_removed, (long long)r.bytes_removed, (long long)r.tmp_removed);
    kiln_store_close(ws);
    return st;
}

static const char FSCK_USAGE[] =
    "usage: kiln fsck [--workspace DIR]\n"
    "\n"
    "Checks every object's bytes against its hash, every record's reference to an\n"
    "object or row, and the audit log's chain; prints each problem and exits 12\n"
    "when there is any.\n";

enum kiln_status cmd_fsck(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, FSCK_USAGE)) return KILN_OK;
    const char *ws_dir = NULL;
    enum kiln_status st = ws_args(argc, argv, FSCK_USAGE, &ws_dir, NULL, NULL, NULL);
    struct kiln_store *ws = NULL;
    int64_t problems = 0;
    if (st == KILN_OK) st = cli_open_store(ws_dir, true, &ws);
    if (st == KILN_OK) st = kiln_store_fsck(ws, stdout, &problems);
    kiln_store_close(ws);
    return st;
}

static const char AUDIT_USAGE[] =
    "usage: kiln audit log [--limit N] [--json] [--workspace DIR]\n"
    "       kiln audit verify [--workspace DIR]\n"
    "\n"
    "log prints the newest N entries (--limit; default all), oldest first: id, time,\n"
    "user, action, subject, detail, hash; --json one object a line, with host too.\n"
    "verify recomputes its SHA-256 chain and exits 12 if any entry was edited,\n"
    "inserted or deleted.\n";

enum kiln_status cmd_audit(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, AUDIT_USAGE)) return KILN_OK;
    if (argc < 2 || (strcmp(argv[1], "log") && strcmp(argv[1], "verify")))
        return cli_usage_error(AUDIT_USAGE, "expected 'log' or 'verify'");
    bool verify = !strcmp(argv[1], "verify");
    const char *ws_dir = NULL, *limit = NULL;
    bool json = false;
    enum kiln_status st = ws_args(argc - 1, argv + 1, AUDIT_USAGE, &ws_dir, &json,
                                  verify ? NULL : "--json", verify ? NULL : &limit);
    long long n = 0;
    if (st == KILN_OK && limit) st = cli_parse_int("--limit", limit, &n);
    struct kiln_store *ws = NULL;
    if (st == KILN_OK) st = cli_open_store(ws_dir, true, &ws);
    if (st == KILN_OK && verify) {
        int64_t entries;
        st = kiln_audit_verify(ws, &entries);
        if (st == KILN_OK) printf("audit log intact: %lld entries\n", (long long)entries);
    } else if (st == KILN_OK) {
        st = kiln_audit_print(ws, n, json, stdout);
    }
    kiln_store_close(ws);
    return st;
}
