/* engine/serve/metrics.c: the server's Prometheus metrics: counters and
 * histograms updated from the request and batcher threads, and their text
 * exposition (format 0.0.4: HELP and TYPE lines, counters ending in _total,
 * histograms as cumulative _bucket{le=...} series with _sum and _count).
 * The format is a plain line format, written here by hand; names and
 * meanings are listed in docs/SERVING.md. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "serve/serve-internal.h"

static const char *const ENDPOINT_NAMES[SERVE_EP_COUNT] = {
    [SERVE_EP_HEALTH] = "health", [SERVE_EP_SERVER] = "server", [SERVE_EP_MODEL] = "model",
    [SERVE_EP_INFER] = "infer",   [SERVE_EP_METRICS] = "metrics", [SERVE_EP_OTHER] = "other",
};

/* Request latency bounds (seconds) and batch bounds (rows, requests). */
static const double LATENCY_LE[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
#define N_LATENCY ((int)(sizeof LATENCY_LE / sizeof LATENCY_LE[0]))
static const double ROWS_LE[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
#define N_ROWS ((int)(sizeof ROWS_LE / sizeof ROWS_LE[0]))
static const double REQS_LE[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
#define N_REQS ((int)(sizeof REQS_LE / sizeof REQS_LE[0]))
#define MAX_BOUNDS 16

/* HTTP statuses counted: 100..599, indexed by code - 100. */
#define CODE_MIN 100
#define N_CODES 500

struct histogram {
    int n;                       /* bounds; counts[n] is the +Inf bucket */
    const double *le;
    int64_t counts[MAX_BOUNDS + 1]; /* per bucket, not cumulative */
    double sum;
    int64_t count;
};

struct serve_metrics {
    _Atomic int64_t requests[SERVE_EP_COUNT][N_CODES];
    _Atomic int64_t inflight;
    _Atomic int64_t rows_scored;
    int n_classes;
    char **class_names;          /* [n_classes] */
    _Atomic int64_t *predictions; /* [n_classes] */
    pthread_mutex_t mu;          /* the histograms */
    struct histogram latency[SERVE_EP_COUNT];
    struct histogram batch_rows, batch_requests;
};

static void histogram_init(struct histogram *h, const double *le, int n)
{
    memset(h, 0, sizeof *h);
    h->le = le;
    h->n = n;
}

static void histogram_observe(struct histogram *h, double v)
{
    int b = 0;
    while (b < h->n && v > h->le[b]) b++;
    h->counts[b]++;
    h->sum += v;
    h->count++;
}

void serve_metrics_free(struct serve_metrics *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    if (m->class_names) strv_free(m->class_names, m->n_classes);
    free((void *)m->predictions);
    free(m);
}

enum kiln_status serve_metrics_create(int n_classes, char *const *class_names,
                                      struct serve_metrics **out)
{
    *out = NULL;
    enum kiln_status st = KILN_OK;
    struct serve_metrics *m = calloc(1, sizeof *m);
    if (!m) return kiln_errorf(KILN_ERR_NOMEM, "serve: out of memory for metrics");
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return kiln_errorf(KILN_ERR_NOMEM, "serve: cannot make a mutex");
    }
    for (int e = 0; e < SERVE_EP_COUNT; e++) histogram_init(&m->latency[e], LATENCY_LE, N_LATENCY);
    histogram_init(&m->batch_rows, ROWS_LE, N_ROWS);
    histogram_init(&m->batch_requests, REQS_LE, N_REQS);
    if (n_classes > 0) {
        m->class_names = calloc((size_t)n_classes, sizeof *m->class_names);
        m->predictions = calloc((size_t)n_classes, sizeof *m->predictions);
        if (!m->class_names || !m->predictions) {
            st = kiln_errorf(KILN_ERR_NOMEM, "serve: out of memory for metrics");
            goto cleanup;
        }
        m->n_classes = n_classes;
        for (int i = 0; i < n_classes && st == KILN_OK; i++) {
            char index[32];
            snprintf(index, sizeof index, "%d", i);
            st = str_dup(class_names && class_names[i] ? class_names[i] : index,
                         &m->class_names[i]);
        }
    }
cleanup:
    if (st != KILN_OK) {
        serve_metrics_free(m);
        m = NULL;
    }
    *out = m;
    return st;
}

void serve_metrics_request(struct serve_metrics *m, enum serve_endpoint ep, int code,
                           double seconds)
{
    if (ep < 0 || ep >= SERVE_EP_COUNT) ep = SERVE_EP_OTHER;
    if (code >= CODE_MIN && code < CODE_MIN + N_CODES)
        atomic_fetch_add(&m->requests[ep][code - CODE_MIN], 1);
    pthread_mutex_lock(&m->mu);
    histogram_observe(&m->latency[ep], seconds);
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_batch(struct serve_metrics *m, int64_t rows, int64_t requests)
{
    pthread_mutex_lock(&m->mu);
    histogram_observe(&m->batch_rows, (double)rows);
    histogram_observe(&m->batch_requests, (double)requests);
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_rows(struct serve_metrics *m, const int32_t *classes, int64_t rows)
{
    atomic_fetch_add(&m->rows_scored, rows);
    if (!classes) return;
    for (int64_t i = 0; i < rows; i++)
        if (classes[i] >= 0 && classes[i] < m->n_classes)
            atomic_fetch_add(&m->predictions[classes[i]], 1);
}

void serve_metrics_inflight(struct serve_metrics *m, int delta)
{
    atomic_fetch_add(&m->inflight, delta);
}

int64_t serve_metrics_inflight_now(const struct serve_metrics *m)
{
    return atomic_load(&((struct serve_metrics *)m)->inflight);
}

/* --- exposition ----------------------------------------------------------------- */

/* A label value with backslash, double quote and newline escaped, as the
 * format requires. */
static void add_label_value(struct sbuf *b, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\') sbuf_append(b, "\\\\", 2);
        else if (*p == '"') sbuf_append(b, "\\\"", 2);
        else if (*p == '\n') sbuf_append(b, "\\n", 2);
        else sbuf_append(b, p, 1);
    }
}

/* A sample value: Go's ParseFloat spellings for the non-finite ones. */
static void add_value(struct sbuf *b, double v)
{
    if (isnan(v)) sbuf_add(b, " NaN\n");
    else if (isinf(v)) sbuf_add(b, v > 0 ? " +Inf\n" : " -Inf\n");
    else sbuf_add(b, " %.17g\n", v);
}

static void add_family(struct sbuf *b, const char *name, const char *type, const char *help)
{
    sbuf_add(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* label: "" or one 'key="value"' pair (already escaped) put before le. */
static void add_histogram(struct sbuf *b, const char *name, const char *label,
                          const struct histogram *h)
{
    int64_t cum = 0;
    const char *sep = label[0] ? "," : "";
    for (int i = 0; i < h->n; i++) {
        cum += h->counts[i];
        sbuf_add(b, "%s_bucket{%s%sle=\"%g\"} %lld\n", name, label, sep, h->le[i],
                 (long long)cum);
    }
    cum += h->counts[h->n];
    sbuf_add(b, "%s_bucket{%s%sle=\"+Inf\"} %lld\n", name, label, sep, (long long)cum);
    sbuf_add(b, "%s_sum%s%s%s", name, label[0] ? "{" : "", label, label[0] ? "}" : "");
    add_value(b, h->sum);
    sbuf_add(b, "%s_count%s%s%s %lld\n", name, label[0] ? "{" : "", label, label[0] ? "}" : "",
             (long long)h->count);
}

static void render_drift(struct sbuf *b, const struct kiln_drift_window_scores *d)
{
    add_family(b, "kiln_drift_window_rows", "gauge",
               "Live rows the drift statistics cover now (sliding window).");
    sbuf_add(b, "kiln_drift_window_rows %lld\n", (long long)d->rows);
    add_family(b, "kiln_drift_psi", "gauge",
               "Population stability index of a feature, live window against the training data.");
    for (int64_t j = 0; j < d->n_features; j++) {
        sbuf_add(b, "kiln_drift_psi{feature=\"");
        add_label_value(b, d->names[j]);
        sbuf_add(b, "\"}");
        add_value(b, d->psi[j]);
    }
    add_family(b, "kiln_drift_ks", "gauge",
               "Kolmogorov-Smirnov statistic of a feature, live window against the training data.");
    for (int64_t j = 0; j < d->n_features; j++) {
        sbuf_add(b, "kiln_drift_ks{feature=\"");
        add_label_value(b, d->names[j]);
        sbuf_add(b, "\"}");
        add_value(b, d->ks[j]);
    }
    add_family(b, "kiln_drift_psi_max", "gauge", "Largest feature PSI in the window.");
    sbuf_add(b, "kiln_drift_psi_max");
    add_value(b, d->max_psi);
    add_family(b, "kiln_drift_ks_max", "gauge", "Largest feature KS in the window.");
    sbuf_add(b, "kiln_drift_ks_max");
    add_value(b, d->max_ks);
    add_family(b, "kiln_drift_features_drifted", "gauge",
               "Features over the default drift thresholds (PSI > 0.2 or KS > 0.1).");
    sbuf_add(b, "kiln_drift_features_drifted %lld\n", (long long)d->drifted);
    if (d->has_classes) {
        add_family(b, "kiln_drift_class_psi", "gauge",
                   "PSI of the predicted classes against the training labels' shares.");
        sbuf_add(b, "kiln_drift_class_psi");
        add_value(b, d->class_psi);
    }
}

char *serve_metrics_render(struct serve_metrics *m, const struct serve_metrics_view *v)
{
    struct sbuf b = {0};
    const struct kiln_server_info *info = v->info;

    add_family(&b, "kiln_model_info", "gauge", "The model served (always 1).");
    sbuf_add(&b, "kiln_model_info{name=\"");
    add_label_value(&b, info->model_name);
    sbuf_add(&b, "\",version=\"%lld\",package_sha256=\"%s\"} 1\n", (long long)info->model_version,
             info->package_sha256);
    add_family(&b, "kiln_start_time_seconds", "gauge", "Unix time the server started.");
    sbuf_add(&b, "kiln_start_time_seconds");
    add_value(&b, v->start_time);

    add_family(&b, "kiln_http_requests_total", "counter",
               "HTTP requests answered, by endpoint and status code.");
    for (int e = 0; e < SERVE_EP_COUNT; e++)
        for (int c = 0; c < N_CODES; c++) {
            int64_t n = atomic_load(&m->requests[e][c]);
            if (n > 0)
                sbuf_add(&b, "kiln_http_requests_total{endpoint=\"%s\",code=\"%d\"} %lld\n",
                         ENDPOINT_NAMES[e], c + CODE_MIN, (long long)n);
        }
    add_family(&b, "kiln_http_requests_in_flight", "gauge",
               "Requests received and not yet answered.");
    sbuf_add(&b, "kiln_http_requests_in_flight %lld\n", (long long)atomic_load(&m->inflight));
    add_family(&b, "kiln_batcher_queue_rows", "gauge", "Rows waiting for the batcher.");
    sbuf_add(&b, "kiln_batcher_queue_rows %lld\n", (long long)v->queue_rows);

    /* One consistent copy of the histograms. */
    struct histogram lat[SERVE_EP_COUNT], brows, breqs;
    pthread_mutex_lock(&m->mu);
    memcpy(lat, m->latency, sizeof lat);
    brows = m->batch_rows;
    breqs = m->batch_requests;
    pthread_mutex_unlock(&m->mu);
    add_family(&b, "kiln_http_request_duration_seconds", "histogram",
               "Seconds from a request's first byte to its answer, by endpoint.");
    for (int e = 0; e < SERVE_EP_COUNT; e++) {
        if (lat[e].count == 0) continue;
        char label[64];
        snprintf(label, sizeof label, "endpoint=\"%s\"", ENDPOINT_NAMES[e]);
        add_histogram(&b, "kiln_http_request_duration_seconds", label, &lat[e]);
    }
    add_family(&b, "kiln_batch_rows", "histogram", "Rows per forward pass (dynamic batching).");
    add_histogram(&b, "kiln_batch_rows", "", &brows);
    add_family(&b, "kiln_batch_requests", "histogram", "Requests gathered into one forward pass.");
    add_histogram(&b, "kiln_batch_requests", "", &breqs);

    add_family(&b, "kiln_rows_scored_total", "counter", "Rows the model has scored.");
    sbuf_add(&b, "kiln_rows_scored_total %lld\n", (long long)atomic_load(&m->rows_scored));
    if (m->n_classes > 0) {
        add_family(&b, "kiln_predictions_total", "counter", "Rows predicted as each class.");
        for (int i = 0; i < m->n_classes; i++) {
            sbuf_add(&b, "kiln_predictions_total{class=\"");
            add_label_value(&b, m->class_names[i]);
            sbuf_add(&b, "\"} %lld\n", (long long)atomic_load(&m->predictions[i]));
        }
    }
    if (v->predlog) {
        const struct kiln_predlog_counts *p = v->predlog;
        add_family(&b, "kiln_predlog_records_total", "counter",
                   "Prediction log records, by outcome (sampled, written, dropped, error).");
        sbuf_add(&b, "kiln_predlog_records_total{outcome=\"sampled\"} %lld\n", (long long)p->sampled);
        sbuf_add(&b, "kiln_predlog_records_total{outcome=\"written\"} %lld\n", (long long)p->written);
        sbuf_add(&b, "kiln_predlog_records_total{outcome=\"dropped\"} %lld\n", (long long)p->dropped);
        sbuf_add(&b, "kiln_predlog_records_total{outcome=\"error\"} %lld\n", (long long)p->errors);
        add_family(&b, "kiln_predlog_rotations_total", "counter", "Prediction log files rotated.");
        sbuf_add(&b, "kiln_predlog_rotations_total %lld\n", (long long)p->rotations);
    }
    if (v->drift) render_drift(&b, v->drift);
    return sbuf_take(&b);
}
