/* kiln/serve.h: the HTTP inference server (kiln serve): one verified
 * package served over the Open Inference Protocol (KServe v2 / Triton
 * HTTP/REST), with dynamic batching, Prometheus metrics, a sampled
 * prediction log and sliding-window drift (docs/SERVING.md).
 *
 *   struct kiln_serve_options o = kiln_serve_defaults();
 *   o.package = "clf.kiln";
 *   o.port = 0;                                  // a free port
 *   struct kiln_server *s;
 *   if (kiln_server_start(&o, &s) == KILN_OK) {
 *       printf("serving on port %d\n", kiln_server_info(s)->port);
 *       ... wait for SIGTERM (the caller's business) ...
 *       kiln_server_close(s);                     // drains in-flight requests
 *   }
 *
 * The server runs on its own threads (libmicrohttpd's, one per connection,
 * and one batcher per model instance); the caller's thread is free once
 * start returns. Signals are the caller's: block SIGTERM/SIGINT before
 * start (the server's threads inherit the mask) and sigwait for them.
 */
#ifndef KILN_SERVE_H
#define KILN_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/status.h"

struct kiln_serve_options {
    const char *package;         /* the .kiln package to serve (verified, golden check included) */
    const char *pubkey;          /* Ed25519 public key (PEM) checking its signature, or NULL */
    bool require_signature;      /* refuse an unsigned package (needs pubkey) */
    const char *host;            /* address to bind (numeric or a name); NULL: 127.0.0.1 */
    int port;                    /* 0: a free port (kiln_server_info says which) */
    const char *device;          /* backend for the model ("cpu", "auto"); NULL: cpu */
    int threads;                 /* model threads (default 1), 0: every core */
    int64_t max_batch;           /* rows gathered into one forward pass (1: no batching) */
    int64_t max_delay_us;        /* longest a request waits for others to join its batch */
    int64_t max_rows;            /* rows one request may carry */
    int64_t max_body_bytes;      /* larger request bodies get 413 */
    int max_connections;         /* connections open at once; more are refused */
    int connection_timeout_s;    /* an idle connection is closed after this */
    int64_t request_timeout_ms;  /* an infer request waiting longer for the model gets 503 */
    double drain_timeout_s;      /* kiln_server_close waits at most this for in-flight requests */
    const char *token_file;      /* file holding the bearer token, or NULL: no auth */
    const char *log_dir;         /* prediction log folder, or NULL: no log */
    double log_sample;           /* share of requests logged, [0, 1] */
    bool log_redact;             /* leave the inputs out of the log */
    int64_t drift_window_rows;   /* live rows the drift statistics cover (0: no drift) */
};

/* The defaults kiln serve documents: 127.0.0.1:8080, 1 model thread, max_batch 256,
 * max_delay_us 1000, max_rows 1024, max_body_bytes 16 MiB, 256 connections,
 * 30 s connection timeout, 10 s request timeout, 30 s drain, drift over
 * 10000 rows, no token, no log. */
struct kiln_serve_options kiln_serve_defaults(void);

struct kiln_server_info {
    char host[256];              /* as bound */
    int port;                    /* the port bound (the chosen one for port 0) */
    char model_name[256];
    int64_t model_version;
    char package_sha256[65];
    int64_t n_features, n_outputs;
    bool classifier;
    bool drift;                  /* the package carried a training baseline */
    int64_t model_batch;         /* rows one forward pass holds */
};

struct kiln_server;

/* Opens and verifies o->package (as kiln_package_open, so a failed golden
 * check is KILN_ERR_INTEGRITY and nothing is served), loads the model,
 * opens the prediction log, binds o->host:o->port and starts serving.
 * KILN_ERR_USAGE for out-of-range options or an empty/unreadable token
 * file, KILN_ERR_IO when the address cannot be bound. Caller closes *out. */
enum kiln_status kiln_server_start(const struct kiln_serve_options *o, struct kiln_server **out);

/* What is served and where; owned by s. */
const struct kiln_server_info *kiln_server_info(const struct kiln_server *s);

/* Stops accepting connections, lets the requests already received finish
 * (at most drain_timeout_s), then stops the threads, flushes the prediction
 * log and frees everything. Returns the number of requests that were still
 * in flight when the drain timed out (0 after a clean drain). NULL is fine. */
int64_t kiln_server_close(struct kiln_server *s);

#endif
