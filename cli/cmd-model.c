/* cli/cmd-model.c: kiln model register|list|show|alias|tag|archive|lineage|card. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kiln/registry.h"
#include "kiln/store.h"

#define MAX_ITEMS 256

static const char MODEL_USAGE[] =
    "usage: kiln model COMMAND [ARGS] [--workspace DIR]   (kiln model COMMAND --help for each)\n"
    "\n"
    "commands:\n"
    "  register SOURCE --name NAME   make a new version of a model from run:N or a model file\n"
    "  list [NAME]                   models, or the versions of one model\n"
    "  show NAME@VER                 everything about a version\n"
    "  alias NAME@VER ALIAS          point ALIAS (production, staging ...) at a version\n"
    "  tag NAME@VER KEY=VALUE...     set (or --delete) tags on a version\n"
    "  archive NAME@VER              archive a version (--undo brings it back)\n"
    "  lineage NAME@REF              dataset versions -> run -> checkpoint -> model -> aliases\n"
    "  card NAME@REF -o FILE         write a model card (Markdown, or HTML with --html)\n"
    "  package NAME@REF -o FILE.kiln write a deployable package (--sign KEY to sign it)\n"
    "  verify PACKAGE                check a package: members, signature (--key), golden outputs\n"
    "\n"
    "A model reference is NAME (its newest version that is not archived), NAME@N\n"
    "(version N) or NAME@ALIAS. Version numbers are never reused.\n";

static const char REGISTER_USAGE[] =
    "usage: kiln model register SOURCE --name NAME [--description TEXT] [--tag KEY=VALUE]...\n"
    "                           [--json] [--workspace DIR]\n"
    "\n"
    "Registers a new version of model NAME (created when new). SOURCE is run:N (the\n"
    "run's final model; a run without one is refused) or a kiln model file, which is\n"
    "copied into the store. The version number is the model's next one, never reused\n"
    "and never given twice, even to concurrent registrations.\n";

static const char LIST_USAGE[] =
    "usage: kiln model list [NAME] [--json] [--workspace DIR]\n"
    "\n"
    "Without NAME: every model with its latest version, version count and aliases.\n"
    "With NAME: each version with its creation time, run, dataset, key metrics,\n"
    "tags, aliases and whether it is archived.\n";

static const char SHOW_USAGE[] =
    "usage: kiln model show NAME@VER [--json] [--workspace DIR]\n"
    "\n"
    "Prints a version's description, object hash, run, checkpoint, dataset version,\n"
    "metrics, tags, aliases and the history of the aliases that pointed at it.\n";

static const char ALIAS_USAGE[] =
    "usage: kiln model alias NAME@VER ALIAS [--workspace DIR]\n"
    "       kiln model alias --delete NAME ALIAS [--workspace DIR]\n"
    "\n"
    "Points ALIAS at version VER of NAME, moving it if it pointed elsewhere; who\n"
    "moved it, when and from which version is kept (kiln model show). NAME@ALIAS\n"
    "then names that version everywhere (eval, predict, card ...). An alias starts\n"
    "with a letter; an archived version cannot be aliased.\n";

static const char TAG_USAGE[] =
    "usage: kiln model tag NAME@VER KEY=VALUE... [--workspace DIR]\n"
    "       kiln model tag NAME@VER --delete KEY... [--workspace DIR]\n"
    "\n"
    "Sets tags on a version (a key's old value is replaced), or deletes them.\n";

static const char ARCHIVE_USAGE[] =
    "usage: kiln model archive NAME@VER [--undo] [--workspace DIR]\n"
    "\n"
    "Archives a version: it stays readable as NAME@VER but is no longer NAME's\n"
    "latest, and its number is never given again. Refused while an alias points at\n"
    "it (move the alias first). --undo brings it back.\n";

static const char LINEAGE_USAGE[] =
    "usage: kiln model lineage NAME@REF [--json] [--workspace DIR]\n"
    "\n"
    "Prints where a version came from: the dataset version it was trained on and its\n"
    "parents (with their transforms), the run (config hash, git commit, engine\n"
    "version, status), the checkpoint, the model version and its aliases, each with\n"
    "its SHA-256.\n";

static const char CARD_USAGE[] =
    "usage: kiln model card NAME@REF -o FILE [--html] [--workspace DIR]\n"
    "\n"
    "Writes a model card: intended use and limitations (the config's card: section),\n"
    "training data and its statistics, the training config, evaluation metrics\n"
    "overall and per class with the confusion matrix (evaluated now, on the CPU, on\n"
    "the dataset's test split, else val, else train), training curves, lineage and\n"
    "hashes. --html writes one self-contained HTML file with inline SVG charts.\n";

/* Parsed arguments shared by the subcommands. */
struct model_args {
    const char *ws;
    const char *pos[MAX_ITEMS];
    int n_pos;
    bool json, del, undo, html;
    const char *name, *description, *out;
    const char *tags[MAX_ITEMS];
    int n_tags;
};

/* The options each subcommand accepts. */
enum {
    OPT_JSON = 1, OPT_DELETE = 2, OPT_UNDO = 4, OPT_HTML = 8, OPT_NAME = 16, OPT_DESC = 32,
    OPT_TAG = 64, OPT_OUT = 128,
};

static enum kiln_status parse_args(int argc, char **argv, const char *usage, unsigned opts,
                                   struct model_args *a)
{
    memset(a, 0, sizeof *a);
    enum kiln_status st = KILN_OK;
    const char *v = NULL;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--workspace", &a->ws, &st)) continue;
        if ((opts & OPT_NAME) && cli_opt(argc, argv, &i, "--name", &a->name, &st)) continue;
        if ((opts & OPT_DESC) && cli_opt(argc, argv, &i, "--description", &a->description, &st))
            continue;
        if ((opts & OPT_OUT) && (cli_opt(argc, argv, &i, "-o", &a->out, &st) ||
                                 cli_opt(argc, argv, &i, "--output", &a->out, &st)))
            continue;
        if ((opts & OPT_TAG) && cli_opt(argc, argv, &i, "--tag", &v, &st)) {
            if (st != KILN_OK) break;
            if (a->n_tags == MAX_ITEMS) return cli_usage_error(usage, "at most %d tags", MAX_ITEMS);
            a->tags[a->n_tags++] = v;
            continue;
        }
        const char *arg = argv[i];
        if ((opts & OPT_JSON) && !strcmp(arg, "--json")) a->json = true;
        else if ((opts & OPT_DELETE) && !strcmp(arg, "--delete")) a->del = true;
        else if ((opts & OPT_UNDO) && !strcmp(arg, "--undo")) a->undo = true;
        else if ((opts & OPT_HTML) && !strcmp(arg, "--html")) a->html = true;
        else if (arg[0] == '-' && arg[1] != '\0')
            return cli_usage_error(usage, "unknown option '%s'", arg);
        else if (a->n_pos == MAX_ITEMS)
            return cli_usage_error(usage, "too many arguments");
        else a->pos[a->n_pos++] = arg;
    }
    return st;
}

static enum kiln_status model_register(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, REGISTER_USAGE)) return KILN_OK;
    struct model_args a;
    enum kiln_status st =
        parse_args(argc, argv, REGISTER_USAGE, OPT_JSON | OPT_NAME | OPT_DESC | OPT_TAG, &a);
    if (st != KILN_OK) return st;
    if (a.n_pos != 1) return cli_usage_error(REGISTER_USAGE, "expected one SOURCE (run:N or a model file)");
    if (!a.name) return cli_usage_error(REGISTER_USAGE, "--name NAME is required");
    struct kiln_store *ws = NULL;
    if ((st = cli_open_store(a.ws, true, &ws)) != KILN_OK) return st;
    struct kiln_register_opts o = {.source = a.pos[0], .name = a.name, .description = a.description,
                                   .tags = a.tags, .n_tags = a.n_tags};
    struct kiln_model_version v;
    st = kiln_model_register(ws, &o, &v);
    if (st == KILN_OK && a.json)
        printf("{\"name\": \"%s\", \"version\": %lld, \"sha256\": \"%s\"}\n", v.name,
               (long long)v.version, v.sha256);
    else if (st == KILN_OK)
        printf("registered %s@%lld (sha256 %.12s) from %s\n", v.name, (long long)v.version,
               v.sha256, a.pos[0]);
    kiln_store_close(ws);
    return st;
}

static enum kiln_status model_list(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, LIST_USAGE)) return KILN_OK;
    struct model_args a;
    enum kiln_status st = parse_args(argc, argv, LIST_USAGE, OPT_JSON, &a);
    if (st != KILN_OK) return st;
    if (a.n_pos > 1) return cli_usage_error(LIST_USAGE, "at most one NAME");
    struct kiln_store *ws = NULL;
    if ((st = cli_open_store(a.ws, true, &ws)) != KILN_OK) return st;
    st = kiln_model_list(ws, a.n_pos ? a.pos[0] : NULL, a.json, stdout);
    kiln_store_close(ws);
    return st;
}

/* The subcommands that take exactly one reference and print. */
static enum kiln_status model_show_or_lineage(int argc, char **argv, bool lineage)
{
    const char *usage = lineage ? LINEAGE_USAGE : SHOW_USAGE;
    if (cli_wants_help(argc, argv, usage)) return KILN_OK;
    struct model_args a;
    enum kiln_status st = parse_args(argc, argv, usage, OPT_JSON, &a);
    if (st != KILN_OK) return st;
    if (a.n_pos != 1) return cli_usage_error(usage, "expected one model reference");
    struct kiln_store *ws = NULL;
    if ((st = cli_open_store(a.ws, true, &ws)) != KILN_OK) return st;
    st = lineage ? kiln_model_lineage_print(ws, a.pos[0], a.json, stdout)
                 : kiln_model_show(ws, a.pos[0], a.json, stdout);
    kiln_store_close(ws);
    return st;
}

static enum kiln_status model_alias(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, ALIAS_USAGE)) return KILN_OK;
    struct model_args a;
    enum kiln_status st = parse_args(argc, argv, ALIAS_USAGE, OPT_DELETE, &a);
    if (st != KILN_OK) return st;
    if (a.n_pos != 2)
        return cli_usage_error(ALIAS_USAGE, a.del ? "expected NAME and ALIAS"
                                                  : "expected NAME@VER and ALIAS");
    struct kiln_store *ws = NULL;
    if ((st = cli_open_store(a.ws, true, &ws)) != KILN_OK) return st;
    if (a.del) {
        st = kiln_model_alias_delete(ws, a.pos[0], a.pos[1]);
        if (st == KILN_OK) printf("deleted alias %s of %s\n", a.pos[1], a.pos[0]);
    } else {
        int64_t from = 0;
        struct kiln_model_version v;
        st = kiln_model_alias_set(ws, a.pos[0], a.pos[1], &from);
        if (st == KILN_OK) st = kiln_model_version_find(ws, a.pos[0], &v);
        if (st == KILN_OK && from == v.version)
            printf("%s@%s already points at version %lld\n", v.name, a.pos[1], (long long)v.version);
        else if (st == KILN_OK && from)
            printf("%s@%s: version %lld -> %lld\n", v.name, a.pos[1], (long long)from,
                   (long long)v.version);
        else if (st == KILN_OK)
            printf("%s@%s -> version %lld\n", v.name, a.pos[1], (long long)v.version);
    }
    kiln_store_close(ws);
    return st;
}

static enum kiln_status model_tag(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, TAG_USAGE)) return KILN_OK;
    struct model_args a;
    enum kiln_status st = parse_args(argc, argv, TAG_USAGE, OPT_DELETE, &a);
    if (st != KILN_OK) return st;
    if (a.n_pos < 2)
        return cli_usage_error(TAG_USAGE, a.del ? "expected NAME@VER and KEY..."
                                                : "expected NAME@VER and KEY=VALUE...");
    struct kiln_store *ws = NULL;
    if ((st = cli_open_store(a.ws, true, &ws)) != KILN_OK) return st;
    const char *const *items = a.pos + 1;
    st = a.del ? kiln_model_tag_delete(ws, a.pos[0], items, a.n_pos - 1)
               : kiln_model_tag_set(ws, a.pos[0], items, a.n_pos - 1);
    if (st == KILN_OK)
        printf("%s %d tag%s on %s\n", a.del ? "deleted" : "set", a.n_pos - 1,
               a.n_pos == 2 ? "" : "s", a.pos[0]);
    kiln_store_close(ws);
    return st;
}

static enum kiln_status model_archive(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, ARCHIVE_USAGE)) return KILN_OK;
    struct model_args a;
    enum kiln_status st = parse_args(argc, argv, ARCHIVE_USAGE, OPT_UNDO, &a);
    if (st != KILN_OK) return st;
    if (a.n_pos != 1) return cli_usage_error(ARCHIVE_USAGE, "expected one NAME@VER");
    struct kiln_store *ws = NULL;
    if ((st = cli_open_store(a.ws, true, &ws)) != KILN_OK) return st;
    st = kiln_model_archive(ws, a.pos[0], a.undo);
    if (st == KILN_OK) printf("%s %s\n", a.undo ? "unarchived" : "archived", a.pos[0]);
    kiln_store_close(ws);
    return st;
}

static enum kiln_status model_card(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, CARD_USAGE)) return KILN_OK;
    struct model_args a;
    enum kiln_status st = parse_args(argc, argv, CARD_USAGE, OPT_HTML | OPT_OUT, &a);
    if (st != KILN_OK) return st;
    if (a.n_pos != 1) return cli_usage_error(CARD_USAGE, "expected one model reference");
    if (!a.out) return cli_usage_error(CARD_USAGE, "-o FILE is required");
    struct kiln_store *ws = NULL;
    if ((st = cli_open_store(a.ws, true, &ws)) != KILN_OK) return st;
    st = kiln_model_card(ws, a.pos[0], a.html ? KILN_CARD_HTML : KILN_CARD_MARKDOWN, a.out);
    if (st == KILN_OK) printf("wrote the model card of %s to %s\n", a.pos[0], a.out);
    kiln_store_close(ws);
    return st;
}

static enum kiln_status model_show(int argc, char **argv) { return model_show_or_lineage(argc, argv, false); }
static enum kiln_status model_lineage(int argc, char **argv) { return model_show_or_lineage(argc, argv, true); }

enum kiln_status cmd_model(int argc, char **argv)
{
    static const struct {
        const char *name;
        cli_command_fn fn;
    } subs[] = {
        {"register", model_register}, {"list", model_list},     {"show", model_show},
        {"alias", model_alias},       {"tag", model_tag},       {"archive", model_archive},
        {"lineage", model_lineage},   {"card", model_card},
        {"package", cmd_model_package}, {"verify", cmd_model_verify},
    };
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        if (argc < 2) return cli_usage_error(MODEL_USAGE, "expected a command");
        fputs(MODEL_USAGE, stdout);
        return KILN_OK;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(argv[1], subs[i].name)) return subs[i].fn(argc - 1, argv + 1);
    return cli_usage_error(MODEL_USAGE, "unknown command 'model %s'", argv[1]);
}
