/* cli/cmd-bench.c: kiln bench (kernel throughput). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kiln/bench.h"

static const char BENCH_USAGE[] =
    "usage: kiln bench [--device cpu|cuda|cuda:N|auto] [--threads N] [--quick] [--json]\n"
    "\n"
    "Times each kernel family at several sizes: GEMM (a 4096^3 one on a GPU, 1024^3 on\n"
    "the CPU, and the example MLP's layer shapes), activations, softmax cross-entropy,\n"
    "the Adam update and the batch gather. Each is checked against a reference, warmed\n"
    "up, then timed (median of many; CUDA events on a GPU), with inputs rotated where\n"
    "one copy would sit in cache. Rates are against ceilings measured in the same run:\n"
    "buffer-to-buffer copy bandwidth for memory-bound kernels, the vendor GEMM (cuBLAS\n"
    "on a GPU, OpenBLAS on the CPU) for GEMMs; 'vs vendor' is kiln's SGEMM / cuBLAS.\n"
    "  --quick   fewer sizes and repetitions\n"
    "  --json    one JSON object instead of the table\n";

static void print_json(const struct kiln_bench_report *r)
{
    printf("{\"device\": \"");
    for (const char *s = r->device; *s; s++)
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s >= 0x20) putchar(*s);
    printf("\", \"copy_gbs\": %.3f, \"rows\": [", r->copy_gbs);
    for (int i = 0; i < r->n_rows; i++) {
        const struct kiln_bench_row *w = &r->rows[i];
        printf("%s\n  {\"family\": \"%s\", \"name\": \"%s\", \"shape\": \"%s\", \"ms\": %.6f, "
               "\"%s\": %.3f, \"pct_ceiling\": %.2f, \"vs_vendor\": %.4f, \"verified\": %s}",
               i ? "," : "", w->family, w->name, w->shape, w->ms, w->flops ? "gflops" : "gbs",
               w->rate, w->pct_ceiling, w->vs_vendor, w->verified ? "true" : "false");
    }
    printf("\n]}\n");
}

static void print_table(const struct kiln_bench_report *r)
{
    printf("%s\n", r->device);
    printf("%-22s %-22s %10s %12s %9s %10s %s\n", "kernel", "shape", "ms", "rate", "ceiling",
           "vs vendor", "");
    for (int i = 0; i < r->n_rows; i++) {
        const struct kiln_bench_row *w = &r->rows[i];
        char rate[32], vs[16] = "";
        snprintf(rate, sizeof rate, "%.1f %s", w->rate, w->flops ? "GFLOP/s" : "GB/s");
        if (w->vs_vendor > 0) snprintf(vs, sizeof vs, "%.3f", w->vs_vendor);
        printf("%-22s %-22s %10.4f %12s %8.1f%% %10s %s\n", w->name, w->shape, w->ms, rate,
               w->pct_ceiling, vs, w->verified ? "" : "UNVERIFIED");
    }
}

enum kiln_status cmd_bench(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, BENCH_USAGE)) return KILN_OK;
    const char *device = "auto", *threads = NULL;
    bool json = false, quick = false;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--device", &device, &st)) continue;
        if (cli_opt(argc, argv, &i, "--threads", &threads, &st)) continue;
        if (!strcmp(argv[i], "--json")) {
            json = true;
            continue;
        }
        if (!strcmp(argv[i], "--quick")) {
            quick = true;
            continue;
        }
        return cli_usage_error(BENCH_USAGE, "unknown argument '%s'", argv[i]);
    }
    if (st != KILN_OK) return st;
    long long n = 0;
    if (threads && (st = cli_parse_int("--threads", threads, &n)) != KILN_OK) return st;
    static struct kiln_bench_report r;
    if ((st = kiln_bench_run(device, (int)n, quick, &r)) != KILN_OK) return st;
    if (json) print_json(&r);
    else print_table(&r);
    return KILN_OK;
}
