/* cli/cmd-misc.c: kiln config, kiln version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kiln/backend.h"
#include "kiln/config.h"

static const char CONFIG_USAGE[] =
    "usage: kiln config docs\n"
    "       kiln config check CONFIG [--set KEY=VALUE]...\n"
    "\n"
    "docs prints every config key with its type, default, range and meaning.\n"
    "check validates CONFIG (with overrides) and prints the resolved model.\n";

enum kiln_status cmd_config(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, CONFIG_USAGE)) return KILN_OK;
    if (argc >= 2 && !strcmp(argv[1], "docs")) {
        if (argc > 2) return cli_usage_error(CONFIG_USAGE, "docs takes no arguments");
        kiln_config_print_docs(stdout);
        return KILN_OK;
    }
    if (argc >= 3 && !strcmp(argv[1], "check")) {
        const char *sets[64], *v = NULL, *path = NULL;
        int n_sets = 0;
        enum kiln_status st = KILN_OK;
        for (int i = 2; i < argc && st == KILN_OK; i++) {
            if (cli_opt(argc, argv, &i, "--set", &v, &st)) {
                if (n_sets == 64) return cli_usage_error(CONFIG_USAGE, "at most 64 --set options");
                sets[n_sets++] = v;
                continue;
            }
            if (argv[i][0] == '-' || path)
                return cli_usage_error(CONFIG_USAGE, "unexpected argument '%s'", argv[i]);
            path = argv[i];
        }
        if (st != KILN_OK) return st;
        if (!path) return cli_usage_error(CONFIG_USAGE, "check needs a CONFIG");
        struct kiln_config *cfg;
        if ((st = kiln_config_load(path, sets, n_sets, &cfg)) != KILN_OK) return st;
        char *yaml = kiln_model_config_to_yaml(&cfg->model);
        printf("%s: ok\n%s", path, yaml ? yaml : "");
        free(yaml);
        kiln_config_free(cfg);
        return KILN_OK;
    }
    return cli_usage_error(CONFIG_USAGE, "expected 'docs' or 'check CONFIG'");
}

enum kiln_status cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) return kiln_errorf(KILN_ERR_USAGE, "usage: kiln version");
    printf("kiln %s (commit %s)\nbackends: %s\n", kiln_version_string(), kiln_git_commit(),
           kiln_build_backends());
    char devs[1024];
    if (kiln_cuda_devices(devs, sizeof devs) > 0) printf("CUDA devices:\n%s", devs);
    return KILN_OK;
}
