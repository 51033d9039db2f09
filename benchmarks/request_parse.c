/* benchmarks/request_parse.c: the infer request parser on one body, with
 * the data lane and with yajl reading every byte (engine/serve/request.c),
 * alternately, in pieces of the size libmicrohttpd hands the server.
 * Prints the median milliseconds per body of each and their ratio.
 *
 *   request_parse BODY.json WIDTH [RUNS] [PIECE]   (defaults 21 runs, 32 KiB pieces)
 *
 * benchmarks/serve_bench.sh's bodies are 64 Fashion-MNIST rows (WIDTH 784).
 * LANE_ONLY=1 in the environment times the lane alone (for perf record). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve-internal.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Milliseconds to parse body once; -1 when it is refused. */
static double parse_once(const char *body, size_t len, long width, size_t piece, int lane)
{
    struct serve_parser *p = NULL;
    if (serve_parser_create(width, 1 << 20, 1, &p) != KILN_OK) return -1;
    if (!lane) serve_parser_lane_off(p);
    double t0 = now_ms();
    for (size_t at = 0; at < len; at += piece)
        if (!serve_parser_feed(p, body + at, len - at < piece ? len - at : piece)) break;
    int good = serve_parser_finish(p);
    double ms = now_ms() - t0;
    if (!good) {
        int code;
        fprintf(stderr, "request_parse: refused (%s)\n", serve_parser_error(p, &code));
    }
    serve_parser_free(p);
    return good ? ms : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: request_parse BODY.json WIDTH [RUNS] [PIECE]\n");
        return 2;
    }
    long width = atol(argv[2]);
    int runs = argc > 3 ? atoi(argv[3]) : 21;
    size_t piece = argc > 4 ? (size_t)atol(argv[4]) : 32768;
    FILE *f = fopen(argv[1], "rb");
    if (!f || width < 1 || runs < 1 || piece < 1) {
        fprintf(stderr, "request_parse: cannot read %s\n", argv[1]);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    rewind(f);
    char *body = malloc(len);
    if (!body || fread(body, 1, len, f) != len) return 2;
    fclose(f);
    double *ms[2] = {calloc((size_t)runs, sizeof(double)), calloc((size_t)runs, sizeof(double))};
    for (int r = 0; r < runs; r++)
        for (int lane = getenv("LANE_ONLY") ? 1 : 0; lane < 2; lane++)
            if ((ms[lane][r] = parse_once(body, len, width, piece, lane)) < 0) return 1;
    for (int lane = 0; lane < 2; lane++) qsort(ms[lane], (size_t)runs, sizeof(double), cmp_double);
    double off = ms[0][runs / 2], on = ms[1][runs / 2];
    printf("%zu-byte body, %zu-byte pieces, median of %d: yajl alone %.3f ms, with the data lane "
           "%.3f ms (%.0f MB/s): %.2fx faster\n", len, piece, runs, off, on, (double)len / on / 1e3,
           off / on);
    free(ms[0]);
    free(ms[1]);
    free(body);
    return 0;
}
