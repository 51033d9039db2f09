/* cli/cmd-package.c: kiln keygen, kiln model package, kiln model verify. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kiln/package.h"
#include "kiln/store.h"

static const char KEYGEN_USAGE[] =
    "usage: kiln keygen -o NAME\n"
    "\n"
    "Makes an Ed25519 key pair for signing model packages: NAME.key (private, PEM,\n"
    "mode 0600: keep it secret) and NAME.pub (public, PEM: give it to whoever\n"
    "verifies). Existing files are never overwritten.\n";

static const char PACKAGE_USAGE[] =
    "usage: kiln model package NAME@REF -o FILE.kiln [--sign KEY] [--golden N] [--workspace DIR]\n"
    "\n"
    "Writes one tar file holding manifest.yaml (lineage, metrics, input and output\n"
    "signature, transforms, engine version, every member's size and SHA-256),\n"
    "model.h5, card.md, stats.json (the training data's statistics: the drift\n"
    "baseline) and golden.h5 (N rows of the test split, default 8, with the\n"
    "model's outputs on them); with --sign KEY (from kiln keygen) also\n"
    "manifest.sig, an Ed25519 signature of the manifest. The package is stored\n"
    "in the workspace and recorded in its audit log.\n";

static const char VERIFY_USAGE[] =
    "usage: kiln model verify PACKAGE [--key PUB] [--require-signature]\n"
    "\n"
    "Checks a package without trusting it: the archive's structure and limits\n"
    "(regular files only, no links, no absolute or '..' paths), the signature\n"
    "with PUB, every member against the manifest, then runs model.h5 on\n"
    "golden.h5's inputs and compares the outputs (within 1e-5). Exit 12 for a\n"
    "hash, signature or golden failure, 4 for a malformed archive.\n";

enum kiln_status cmd_keygen(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, KEYGEN_USAGE)) return KILN_OK;
    const char *name = NULL;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "-o", &name, &st) ||
            cli_opt(argc, argv, &i, "--output", &name, &st))
            continue;
        return cli_usage_error(KEYGEN_USAGE, "unexpected argument '%s'", argv[i]);
    }
    if (st != KILN_OK) return st;
    if (!name || !*name) return cli_usage_error(KEYGEN_USAGE, "-o NAME is required");
    st = kiln_keygen(name);
    if (st == KILN_OK) printf("wrote %s.key (private, mode 0600) and %s.pub\n", name, name);
    return st;
}

enum kiln_status cmd_model_package(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, PACKAGE_USAGE)) return KILN_OK;
    struct kiln_package_opts o = {0};
    const char *ws_dir = NULL, *golden = NULL;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--workspace", &ws_dir, &st) ||
            cli_opt(argc, argv, &i, "-o", &o.out, &st) ||
            cli_opt(argc, argv, &i, "--output", &o.out, &st) ||
            cli_opt(argc, argv, &i, "--sign", &o.key_path, &st) ||
            cli_opt(argc, argv, &i, "--golden", &golden, &st))
            continue;
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_usage_error(PACKAGE_USAGE, "unknown option '%s'", argv[i]);
        if (o.ref) return cli_usage_error(PACKAGE_USAGE, "expected one model reference");
        o.ref = argv[i];
    }
    if (st != KILN_OK) return st;
    if (!o.ref) return cli_usage_error(PACKAGE_USAGE, "expected a model reference");
    if (!o.out) return cli_usage_error(PACKAGE_USAGE, "-o FILE.kiln is required");
    if (golden) {
        long long n = 0;
        if ((st = cli_parse_int("--golden", golden, &n)) != KILN_OK) return st;
        if (n < 1 || n > KILN_PACKAGE_MAX_GOLDEN)
            return cli_usage_error(PACKAGE_USAGE, "--golden must be 1..%d",
                                   KILN_PACKAGE_MAX_GOLDEN);
        o.golden_rows = (int)n;
    }
    struct kiln_store *ws = NULL;
    if ((st = cli_open_store(ws_dir, true, &ws)) != KILN_OK) return st;
    struct kiln_package_info info;
    st = kiln_model_package(ws, &o, &info);
    if (st == KILN_OK)
        printf("packaged %s@%lld into %s (%lld bytes, sha256 %.12s, %s, %d golden rows)\n",
               info.name, (long long)info.version, o.out, (long long)info.size, info.sha256,
               info.is_signed ? "signed" : "unsigned", info.golden_rows);
    kiln_store_close(ws);
    return st;
}

enum kiln_status cmd_model_verify(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, VERIFY_USAGE)) return KILN_OK;
    const char *path = NULL, *key = NULL;
    bool require = false;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--key", &key, &st)) continue;
        if (!strcmp(argv[i], "--require-signature")) {
            require = true;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_usage_error(VERIFY_USAGE, "unknown option '%s'", argv[i]);
        if (path) return cli_usage_error(VERIFY_USAGE, "expected one package");
        path = argv[i];
    }
    if (st != KILN_OK) return st;
    if (!path) return cli_usage_error(VERIFY_USAGE, "expected a package file");
    if (require && !key)
        return cli_usage_error(VERIFY_USAGE, "--require-signature needs --key PUB to check it");
    struct kiln_package *p = NULL;
    st = kiln_package_open(path, key, require, &p);
    if (st != KILN_OK) return st;
    printf("%s: %s@%lld, package sha256 %.12s, %d members verified\n", path, p->name,
           (long long)p->version, p->sha256, p->n_members);
    printf("  signature: %s\n", p->signature_verified ? "verified"
                                : p->is_signed        ? "present, not checked (no --key)"
                                                      : "none");
    printf("  lineage: dataset %s v%lld (%.12s), run:%lld, model %.12s\n", p->dataset_name,
           (long long)p->dataset_version, p->dataset_sha256, (long long)p->run_id,
           p->model_sha256);
    printf("  input [%lld] float32, output [%lld]%s\n", (long long)p->n_features,
           (long long)p->n_outputs, p->transforms_json ? ", with transforms" : "");
    printf("  golden: %lld rows, max difference %.3g: ready\n", (long long)p->golden_rows,
           p->golden_max_diff);
    kiln_package_close(p);
    return KILN_OK;
}
