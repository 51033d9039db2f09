/* engine/serve/serve-internal.h: what the server (server.c) and its
 * Prometheus metrics (metrics.c) share. Internal to libkiln.
 *
 *   struct serve_metrics *m;
 *   serve_metrics_create(k, class_names, &m);
 *   serve_metrics_request(m, SERVE_EP_INFER, 200, 0.004);   // any thread
 *   serve_metrics_batch(m, rows, requests);                 // the batcher
 *   char *text = serve_metrics_render(m, &view);            // GET /metrics
 *   serve_metrics_free(m);
 *
 *   struct serve_parser *p;                                 // an infer body
 *   serve_parser_create(raw, max_rows, classifier, &p);
 *   serve_parser_feed(p, piece, len);                       // as pieces arrive
 *   if (serve_parser_finish(p)) use serve_parser_request(p);
 *   else answer serve_parser_error(p, &code);
 *   serve_parser_free(p);
 */
#ifndef KILN_SERVE_INTERNAL_H
#define KILN_SERVE_INTERNAL_H

#include <stdint.h>

#include "kiln/drift.h"
#include "kiln/predlog.h"
#include "kiln/serve.h"
#include "kiln/status.h"

/* What a request asked for, the "endpoint" label of the request metrics. */
enum serve_endpoint {
    SERVE_EP_HEALTH,             /* /v2/health/live, /v2/health/ready */
    SERVE_EP_SERVER,             /* /v2 (server metadata) */
    SERVE_EP_MODEL,              /* /v2/models/NAME[/versions/V][/ready] */
    SERVE_EP_INFER,              /* POST .../infer */
    SERVE_EP_METRICS,            /* /metrics */
    SERVE_EP_OTHER,              /* anything else (404) */
    SERVE_EP_COUNT
};

/* The tensor names the server speaks. */
#define SERVE_INPUT "input"
#define SERVE_OUT_PROB "probabilities"
#define SERVE_OUT_CLASS "class"
#define SERVE_OUT_REG "output"
#define SERVE_MAX_REQUEST_ID 128

struct serve_metrics;

/* n_classes counters of predictions, labelled with class_names (copied;
 * NULL or missing names: the class index). n_classes 0: a regression
 * model, no per-class counters. Caller frees *out. */
enum kiln_status serve_metrics_create(int n_classes, char *const *class_names,
                                      struct serve_metrics **out);
void serve_metrics_free(struct serve_metrics *m);

/* One finished request: its endpoint, HTTP status and seconds from its
 * first byte to its answer. Thread-safe. */
void serve_metrics_request(struct serve_metrics *m, enum serve_endpoint ep, int code,
                           double seconds);
/* One forward pass over rows rows gathered from requests requests. */
void serve_metrics_batch(struct serve_metrics *m, int64_t rows, int64_t requests);
/* rows rows scored; classes (may be NULL) their predicted classes. */
void serve_metrics_rows(struct serve_metrics *m, const int32_t *classes, int64_t rows);
/* Requests received and not yet answered (+1 / -1). */
void serve_metrics_inflight(struct serve_metrics *m, int delta);
int64_t serve_metrics_inflight_now(const struct serve_metrics *m);

/* The rest of what /metrics shows, sampled at scrape time. */
struct serve_metrics_view {
    const struct kiln_server_info *info;
    const struct kiln_drift_window_scores *drift;   /* NULL: no drift baseline */
    const struct kiln_predlog_counts *predlog;      /* NULL: no prediction log */
    int64_t queue_rows;                             /* rows waiting for the batcher */
    double start_time;                              /* Unix seconds the server started */
};

/* The Prometheus text exposition format (version 0.0.4) of every metric,
 * a new string (caller frees), or NULL when out of memory. */
char *serve_metrics_render(struct serve_metrics *m, const struct serve_metrics_view *v);

/* --- infer request bodies (request.c) ------------------------------------------------ */

enum serve_output {
    SERVE_OUTPUT_PROB,           /* a classifier's probabilities, FP32 [rows, k] */
    SERVE_OUTPUT_CLASS,          /* its predicted classes, INT32 [rows] */
    SERVE_OUTPUT_REG,            /* a regression's outputs, FP32 [rows, k] */
    SERVE_OUTPUT_COUNT
};

/* An infer request as read from its JSON (the whole body, or the header
 * before the binary tensor extension's bytes). */
struct serve_infer_req {
    int64_t rows;                /* shape [rows, raw], checked against the model */
    float *x;                    /* rows x raw inputs (owned by the parser; may be taken:
                                    set it to NULL). Finite for JSON data; with binary
                                    data the caller fills and checks it */
    int64_t binary_bytes;        /* -1: the data was JSON; else the FP32 bytes after it */
    int n_order;                 /* outputs to answer, in this order (the request's
                                    "outputs", else all of the model's) */
    enum serve_output order[SERVE_OUTPUT_COUNT];
    bool binary[SERVE_OUTPUT_COUNT]; /* answer this output as binary data */
    bool has_id;
    char id[SERVE_MAX_REQUEST_ID + 1];
};

struct serve_parser;

/* A parser for one infer request to a model taking rows of raw features
 * (at most max_rows of them) with a classifier's outputs or a regression's.
 * Caller frees *out. */
enum kiln_status serve_parser_create(int64_t raw, int64_t max_rows, bool classifier,
                                     struct serve_parser **out);
void serve_parser_free(struct serve_parser *p);
/* Reads the next len bytes of the JSON. False once the request is known
 * to be bad (serve_parser_error says why); later calls do nothing. */
bool serve_parser_feed(struct serve_parser *p, const char *text, size_t len);
/* The JSON has ended: true when it was a complete, valid request. */
bool serve_parser_finish(struct serve_parser *p);
/* Why the request was refused and the HTTP status to answer (400, or 500
 * when out of memory); NULL (code 0) while it is fine. Owned by p. */
const char *serve_parser_error(const struct serve_parser *p, int *code);
/* The request after a successful finish (NULL otherwise); owned by p. */
struct serve_infer_req *serve_parser_request(struct serve_parser *p);
/* Reads every byte through yajl, without the data lane (request.c): for
 * the tests that compare the two and the parse benchmark. Before the
 * first feed. */
void serve_parser_lane_off(struct serve_parser *p);

#endif
