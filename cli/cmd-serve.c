/* cli/cmd-serve.c: kiln serve: the HTTP inference server (kiln/serve.h)
 * until SIGTERM or SIGINT, which drain it. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "kiln/serve.h"

static const char SERVE_USAGE[] =
    "usage: kiln serve PACKAGE [--port 8080] [--host 127.0.0.1] [--key PUB] [--require-signature]\n"
    "                  [--max-batch N | --no-batching] [--max-delay-us N] [--max-rows N]\n"
    "                  [--max-body BYTES] [--max-connections N] [--timeout S]\n"
    "                  [--request-timeout-ms MS] [--drain-timeout S] [--token-file FILE]\n"
    "                  [--log-dir DIR] [--log-sample P] [--log-redact] [--drift-window ROWS]\n"
    "                  [--threads N] [--device cpu|cuda|cuda:N|auto]\n"
    "\n"
    "Serves a verified package (.kiln; the golden check must pass) over HTTP with the Open\n"
    "Inference Protocol (KServe v2 / Triton): GET /v2/health/live, /v2/health/ready, /v2,\n"
    "/v2/models/NAME[/versions/V][/ready], POST /v2/models/NAME[/versions/V]/infer, and\n"
    "Prometheus metrics at GET /metrics. Runs until SIGTERM or SIGINT, then stops accepting,\n"
    "finishes the requests in flight, flushes the prediction log and exits 0.\n"
    "  --host ADDR            address to bind (default 127.0.0.1: this machine only)\n"
    "  --port N               port (default 8080; 0: a free one, printed at start)\n"
    "  --key PUB              check the package's signature with this public key\n"
    "  --require-signature    refuse an unsigned package (needs --key)\n"
    "  --max-batch N          rows gathered from concurrent requests into one forward pass\n"
    "                         (default 256; 1 or --no-batching: each request alone)\n"
    "  --max-delay-us N       longest a request waits for others to join it (default 1000)\n"
    "  --max-rows N           rows one request may carry (default 1024)\n"
    "  --max-body BYTES       larger bodies get 413 (default 16777216)\n"
    "  --max-connections N    open connections at once (default 256)\n"
    "  --timeout S            idle connections are closed after S seconds (default 30)\n"
    "  --request-timeout-ms MS  an infer request waiting longer for the model gets 503 (default 10000)\n"
    "  --drain-timeout S      on SIGTERM, wait at most S seconds for requests in flight (default 30)\n"
    "  --token-file FILE      require 'Authorization: Bearer TOKEN' (TOKEN: FILE's first line)\n"
    "                         on every endpoint but the two health probes\n"
    "  --log-dir DIR          prediction log folder (default predlog when --log-sample is given)\n"
    "  --log-sample P         share of requests logged, 0..1 (default 0.1 when --log-dir is given)\n"
    "  --log-redact           leave the inputs out of the prediction log\n"
    "  --drift-window ROWS    live rows the drift metrics cover (default 10000; 0: none)\n"
    "  --threads N            threads of the model's forward pass (default 1; 0: every core);\n"
    "                         over 1, run with OMP_WAIT_POLICY=passive (docs/SERVING.md)\n"
    "  --device D             where the one model instance runs: cpu (default), cuda, cuda:N,\n"
    "                         or auto (a GPU when one answers)\n";

/* --max-body: bytes, with an optional K, M or G (binary) suffix. */
static enum kiln_status parse_bytes(const char *opt, const char *s, long long *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    long long mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1LL << 10;
    else if (*end == 'M' || *end == 'm') mul = 1LL << 20;
    else if (*end == 'G' || *end == 'g') mul = 1LL << 30;
    if (mul > 1) end++;
    if (end == s || *end || v < 0 || v > (1LL << 40) / mul)
        return kiln_errorf(KILN_ERR_USAGE, "%s: '%s' is not a size in bytes (e.g. 1048576 or 16M)",
                           opt, s);
    *out = v * mul;
    return KILN_OK;
}

enum kiln_status cmd_serve(int argc, char **argv)
{
    if (cli_wants_help(argc, argv, SERVE_USAGE)) return KILN_OK;
    struct kiln_serve_options o = kiln_serve_defaults();
    const char *port = NULL, *max_batch = NULL, *max_delay = NULL, *max_rows = NULL;
    const char *max_body = NULL, *max_conn = NULL, *timeout = NULL, *req_timeout = NULL;
    const char *drain = NULL, *sample = NULL, *window = NULL, *threads = NULL;
    bool no_batching = false;
    enum kiln_status st = KILN_OK;
    for (int i = 1; i < argc && st == KILN_OK; i++) {
        if (cli_opt(argc, argv, &i, "--port", &port, &st)) continue;
        if (cli_opt(argc, argv, &i, "--host", &o.host, &st)) continue;
        if (cli_opt(argc, argv, &i, "--key", &o.pubkey, &st)) continue;
        if (cli_opt(argc, argv, &i, "--max-batch", &max_batch, &st)) continue;
        if (cli_opt(argc, argv, &i, "--max-delay-us", &max_delay, &st)) continue;
        if (cli_opt(argc, argv, &i, "--max-rows", &max_rows, &st)) continue;
        if (cli_opt(argc, argv, &i, "--max-body", &max_body, &st)) continue;
        if (cli_opt(argc, argv, &i, "--max-connections", &max_conn, &st)) continue;
        if (cli_opt(argc, argv, &i, "--timeout", &timeout, &st)) continue;
        if (cli_opt(argc, argv, &i, "--request-timeout-ms", &req_timeout, &st)) continue;
        if (cli_opt(argc, argv, &i, "--drain-timeout", &drain, &st)) continue;
        if (cli_opt(argc, argv, &i, "--token-file", &o.token_file, &st)) continue;
        if (cli_opt(argc, argv, &i, "--log-dir", &o.log_dir, &st)) continue;
        if (cli_opt(argc, argv, &i, "--log-sample", &sample, &st)) continue;
        if (cli_opt(argc, argv, &i, "--drift-window", &window, &st)) continue;
        if (cli_opt(argc, argv, &i, "--threads", &threads, &st)) continue;
        if (cli_opt(argc, argv, &i, "--device", &o.device, &st)) continue;
        if (!strcmp(argv[i], "--require-signature")) {
            o.require_signature = true;
            continue;
        }
        if (!strcmp(argv[i], "--no-batching")) {
            no_batching = true;
            continue;
        }
        if (!strcmp(argv[i], "--log-redact")) {
            o.log_redact = true;
            continue;
        }
        if (argv[i][0] == '-') return cli_usage_error(SERVE_USAGE, "unknown option '%s'", argv[i]);
        if (o.package) return cli_usage_error(SERVE_USAGE, "one PACKAGE only, got '%s'", argv[i]);
        o.package = argv[i];
    }
    if (st != KILN_OK) return st;
    if (!o.package) return cli_usage_error(SERVE_USAGE, "a PACKAGE (.kiln) is required");
    long long v = 0;
    double d = 0;
    if (port) {
        if ((st = cli_parse_int("--port", port, &v)) != KILN_OK) return st;
        if (v > 65535) return cli_usage_error(SERVE_USAGE, "--port must be in 0..65535");
        o.port = (int)v;
    }
#define INT_OPT(str, name, field)                                                        \
    if (str) {                                                                           \
        if ((st = cli_parse_int(name, str, &v)) != KILN_OK) return st;                   \
        if (v > 1000000000LL) return cli_usage_error(SERVE_USAGE, "%s is too large", name); \
        o.field = v;                                                                     \
    }
    INT_OPT(max_batch, "--max-batch", max_batch)
    INT_OPT(max_delay, "--max-delay-us", max_delay_us)
    INT_OPT(max_rows, "--max-rows", max_rows)
    INT_OPT(max_conn, "--max-connections", max_connections)
    INT_OPT(timeout, "--timeout", connection_timeout_s)
    INT_OPT(req_timeout, "--request-timeout-ms", request_timeout_ms)
    INT_OPT(window, "--drift-window", drift_window_rows)
    INT_OPT(threads, "--threads", threads)
#undef INT_OPT
    if (no_batching && max_batch && o.max_batch != 1)
        return cli_usage_error(SERVE_USAGE, "--no-batching and --max-batch %lld disagree",
                               (long long)o.max_batch);
    if (no_batching) o.max_batch = 1;
    if (max_body) {
        if ((st = parse_bytes("--max-body", max_body, &v)) != KILN_OK) return st;
        o.max_body_bytes = v;
    }
    if (drain) {
        if ((st = cli_parse_double("--drain-timeout", drain, &d)) != KILN_OK) return st;
        if (d < 0) return cli_usage_error(SERVE_USAGE, "--drain-timeout must be >= 0");
        o.drain_timeout_s = d;
    }
    if (sample) {
        if ((st = cli_parse_double("--log-sample", sample, &d)) != KILN_OK) return st;
        if (!(d >= 0 && d <= 1)) return cli_usage_error(SERVE_USAGE, "--log-sample must be in [0, 1]");
        o.log_sample = d;
        if (!o.log_dir) o.log_dir = "predlog";
    } else if (o.log_dir) {
        o.log_sample = 0.1;
    }
    if (o.log_redact && !o.log_dir)
        return cli_usage_error(SERVE_USAGE, "--log-redact needs --log-dir or --log-sample");
    if (o.require_signature && !o.pubkey)
        return cli_usage_error(SERVE_USAGE, "--require-signature needs --key PUB to check it");

    /* The server's threads inherit this mask, so the two signals reach
     * only the sigwait below; a client that hangs up mid-answer must not
     * kill the process. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &stop, NULL) != 0)
        return kiln_errorf(KILN_ERR_INTERNAL, "serve: cannot block SIGTERM/SIGINT");
    struct kiln_server *srv = NULL;
    st = kiln_server_start(&o, &srv);
    if (st != KILN_OK) return st;
    const struct kiln_server_info *in = kiln_server_info(srv);
    bool v6 = strchr(in->host, ':') != NULL;
    printf("serving %s v%lld on http://%s%s%s:%d\n", in->model_name, (long long)in->model_version,
           v6 ? "[" : "", in->host, v6 ? "]" : "", in->port);
    fflush(stdout);
    fprintf(stderr, "kiln: serve: %lld features -> %lld outputs%s; batching %s (model batch %lld "
            "rows); drift metrics %s; prediction log %s\n", (long long)in->n_features,
            (long long)in->n_outputs, in->classifier ? " (classifier)" : "",
            o.max_batch > 1 ? "up to --max-batch rows" : "off", (long long)in->model_batch,
            in->drift ? "on" : "off", o.log_dir ? o.log_dir : "off");
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "kiln: serve: %s: draining requests in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    int64_t left = kiln_server_close(srv);
    if (left > 0)
        fprintf(stderr, "kiln: warning: serve: %lld requests were still in flight after "
                "--drain-timeout\n", (long long)left);
    fprintf(stderr, "kiln: serve: stopped\n");
    return KILN_OK;
}
