/* engine/serve/server.c: kiln serve (kiln/serve.h): the Open Inference
 * Protocol (KServe v2 / Triton HTTP/REST) over libmicrohttpd, with dynamic
 * batching, Prometheus metrics, a sampled prediction log and live drift.
 *
 * Threads: libmicrohttpd's listener plus one thread per connection (bounded
 * by max_connections), and one batcher per model instance. A connection
 * thread reads and validates its request, queues its rows and sleeps on a
 * condition variable; the batcher gathers queued requests until max_batch
 * rows or max_delay_us after the oldest one arrived, runs one forward pass
 * over their rows and hands each request its slice. The prediction log and
 * the drift window are fed after the answer has gone out (libmicrohttpd's
 * completion callback), off the request's latency. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <omp.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "kiln/backend.h"
#include "kiln/log.h"
#include "kiln/package.h"
#include "kiln/stats.h"
#include "kiln/transform.h"
#include "lifecycle/infer.h"
#include "serve/serve-internal.h"

#define SERVE_MAX_TOKEN 4096
#define SERVE_MAX_ROWS 65536       /* --max-batch, --max-rows */

struct kiln_serve_options kiln_serve_defaults(void)
{
    return (struct kiln_serve_options){
        .host = "127.0.0.1",
        .port = 8080,
        .device = "cpu",
        .threads = 1,
        .max_batch = 256,
        .max_delay_us = 1000,
        .max_rows = 1024,
        .max_body_bytes = (int64_t)16 << 20,
        .max_connections = 256,
        .connection_timeout_s = 30,
        .request_timeout_ms = 10000,
        .drain_timeout_s = 30.0,
        .log_sample = 0.0,
        .drift_window_rows = 10000,
    };
}

/* --- the batcher ------------------------------------------------------------------ */

/* One infer request in the batcher's queue; it lives on its connection
 * thread's stack while that thread waits. */
struct serve_job {
    const float *x;              /* rows x raw */
    int64_t rows;
    float *y;                    /* rows x k, filled by the batcher */
    struct timespec queued;
    bool taken, done;
    enum kiln_status st;
    char err[512];
    struct serve_job *next;
};

struct serve_batcher {
    pthread_mutex_t mu;
    pthread_cond_t work;         /* the batcher waits for jobs */
    pthread_cond_t done;         /* connection threads wait for answers */
    struct serve_job *head, *tail;
    int64_t queued_rows;
    bool stop;
    pthread_t thread;
    float *x, *y;                /* model_batch rows, for gathered batches */
};

struct kiln_server {
    struct kiln_serve_options o;
    struct kiln_server_info info;
    struct kiln_package *pkg;
    struct infer_model im;
    bool classifier;
    char token_sha[65];          /* SHA-256 of the bearer token; "" without one */
    struct serve_metrics *metrics;
    struct kiln_predlog *log;
    struct kiln_drift_window *drift;
    bool drift_transformed;      /* the baseline is of the model's transformed rows */
    struct serve_batcher b;
    bool sync_made, batcher_up;
    struct MHD_Daemon *mhd;
    _Atomic bool draining;
    _Atomic uint64_t next_id;
    double start_time;
};

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + 1e-9 * (double)(b->tv_nsec - a->tv_nsec);
}

static void timespec_add_us(struct timespec *t, int64_t us)
{
    t->tv_sec += (time_t)(us / 1000000);
    t->tv_nsec += (long)(us % 1000000) * 1000;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

/* The class a row predicts, as kiln predict's writer picks it. */
static int32_t serve_argmax(const float *o, int64_t k)
{
    if (k == 1) return o[0] >= 0.5f; /* a sigmoid output: P(class 1) */
    int32_t best = 0;
    for (int64_t j = 1; j < k; j++)
        if (o[j] > o[best]) best = (int32_t)j; /* first of ties, as numpy argmax */
    return best;
}

/* Runs one gathered batch (jobs linked through next, n of them, rows rows)
 * and records each job's outcome. Called without the lock. */
static void batcher_run(struct kiln_server *s, struct serve_job *jobs, int64_t n, int64_t rows)
{
    struct infer_model *im = &s->im;
    enum kiln_status st;
    if (n == 1) {
        /* One request: its own buffers, no copies. */
        st = infer_model_run(im, jobs->x, jobs->rows, jobs->y);
    } else {
        int64_t at = 0;
        for (struct serve_job *j = jobs; j; j = j->next) {
            memcpy(s->b.x + at * im->raw, j->x, (size_t)(j->rows * im->raw) * sizeof(float));
            at += j->rows;
        }
        st = infer_model_run(im, s->b.x, rows, s->b.y);
        at = 0;
        for (struct serve_job *j = jobs; j && st == KILN_OK; j = j->next) {
            memcpy(j->y, s->b.y + at * im->k, (size_t)(j->rows * im->k) * sizeof(float));
            at += j->rows;
        }
    }
    for (struct serve_job *j = jobs; j; j = j->next) {
        j->st = st;
        if (st != KILN_OK) snprintf(j->err, sizeof j->err, "%s", kiln_last_error());
    }
    serve_metrics_batch(s->metrics, rows, n);
}

static void *batcher_main(void *arg)
{
    struct kiln_server *s = arg;
    struct serve_batcher *b = &s->b;
    int64_t cap = s->info.model_batch;
    /* OpenMP's thread count is per thread, and this one starts with the
     * default (every core). OpenBLAS's OpenMP build sizes each GEMM by the
     * calling thread's count, overriding the backend's: without this the
     * model ran 2-thread GEMMs whatever --threads said (measured: 75 req/s
     * instead of ~400 with --threads 1, unbatched, the team spinning). */
    omp_set_num_threads(s->o.threads > 0 ? s->o.threads : omp_get_num_procs());
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->stop) pthread_cond_wait(&b->work, &b->mu);
        if (!b->head) break; /* stopped with nothing left to do */
        /* Wait for company: until the batch is full or the oldest request
         * has waited max_delay_us. Stopping runs what is queued at once. */
        struct timespec deadline = b->head->queued;
        timespec_add_us(&deadline, s->o.max_delay_us);
        while (!b->stop && b->queued_rows < s->o.max_batch) {
            if (pthread_cond_timedwait(&b->work, &b->mu, &deadline) == ETIMEDOUT) break;
        }
        /* The oldest request always goes (even one larger than max_batch);
         * the next ones while they fit. */
        struct serve_job *first = b->head, *last = first;
        int64_t rows = first->rows, n = 1;
        while (last->next && rows + last->next->rows <= s->o.max_batch &&
               rows + last->next->rows <= cap) {
            last = last->next;
            rows += last->rows;
            n++;
        }
        b->head = last->next;
        if (!b->head) b->tail = NULL;
        last->next = NULL;
        b->queued_rows -= rows;
        for (struct serve_job *j = first; j; j = j->next) j->taken = true;
        pthread_mutex_unlock(&b->mu);

        batcher_run(s, first, n, rows);

        pthread_mutex_lock(&b->mu);
        for (struct serve_job *j = first, *next; j; j = next) {
            next = j->next; /* j belongs to its waiting thread once done is set */
            j->done = true;
        }
        pthread_cond_broadcast(&b->done);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* Queues job and waits for its answer. KILN_ERR_BACKEND (timed_out set)
 * when it waited request_timeout_ms in the queue, or the server is
 * stopping; otherwise the batch's status, job->err holding its message. */
static enum kiln_status batcher_submit(struct kiln_server *s, struct serve_job *job,
                                       bool *timed_out)
{
    struct serve_batcher *b = &s->b;
    *timed_out = false;
    clock_gettime(CLOCK_MONOTONIC, &job->queued);
    struct timespec deadline = job->queued;
    timespec_add_us(&deadline, s->o.request_timeout_ms * 1000);
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        pthread_mutex_unlock(&b->mu);
        snprintf(job->err, sizeof job->err, "the server is shutting down");
        return KILN_ERR_BACKEND;
    }
    if (b->tail) b->tail->next = job;
    else b->head = job;
    b->tail = job;
    b->queued_rows += job->rows;
    pthread_cond_signal(&b->work);
    while (!job->done) {
        if (job->taken) {
            /* Running: the batch is bounded, so wait for it whatever the
             * deadline (the batcher writes into job->y). */
            pthread_cond_wait(&b->done, &b->mu);
            continue;
        }
        if (pthread_cond_timedwait(&b->done, &b->mu, &deadline) == ETIMEDOUT && !job->taken &&
            !job->done) {
            /* Still queued: take it out and give up. */
            struct serve_job **pp = &b->head, *prev = NULL;
            while (*pp && *pp != job) {
                prev = *pp;
                pp = &(*pp)->next;
            }
            if (*pp) {
                *pp = job->next;
                if (b->tail == job) b->tail = prev;
                b->queued_rows -= job->rows;
            }
            *timed_out = true;
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
    if (*timed_out) {
        snprintf(job->err, sizeof job->err, "timed out after %lld ms waiting for the model "
                 "(--request-timeout-ms)", (long long)s->o.request_timeout_ms);
        return KILN_ERR_BACKEND;
    }
    return job->st;
}

static int64_t batcher_queue_rows(struct kiln_server *s)
{
    pthread_mutex_lock(&s->b.mu);
    int64_t n = s->b.queued_rows;
    pthread_mutex_unlock(&s->b.mu);
    return n;
}

/* --- one HTTP request ------------------------------------------------------------- */

struct serve_req {
    enum serve_endpoint ep;
    struct timespec t0;
    int code;                    /* the status answered, 0 before */
    /* An infer's body: its JSON goes to the parser as it arrives (never
     * buffered whole); binary tensor bytes after a JSON header of hdr_len
     * bytes (Inference-Header-Content-Length) are kept in body. */
    struct serve_parser *parser;
    size_t hdr_len;              /* SIZE_MAX: the whole body is JSON */
    bool hdr_bad;                /* Inference-Header-Content-Length is not a size within it */
    size_t received;             /* body bytes so far */
    char *body;
    size_t len, cap;
    /* A successful infer's rows, for the log and the drift window. */
    float *x, *y;
    int32_t *classes;
    int64_t rows;
    char id[SERVE_MAX_REQUEST_ID + 1];
};

static void serve_req_free(struct serve_req *r)
{
    if (!r) return;
    serve_parser_free(r->parser);
    free(r->body);
    free(r->x);
    free(r->y);
    free(r->classes);
    free(r);
}

/* Queues a response with its body (taken over: freed by libmicrohttpd). */
static enum MHD_Result reply(struct kiln_server *s, struct MHD_Connection *c, struct serve_req *r,
                             int code, char *body, size_t len, const char *type,
                             long long header_len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body ? body : (void *)"", body ? MHD_RESPMEM_MUST_FREE
                                                                      : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (header_len >= 0) {
        char n[32];
        snprintf(n, sizeof n, "%lld", header_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", n);
    }
    if (code == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                r->ep == SERVE_EP_INFER ? "POST" : "GET, HEAD");
    /* While draining, clients are told not to send another request on
     * this connection. */
    if (atomic_load(&s->draining)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)code, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) r->code = code;
    return ret;
}

static enum MHD_Result reply_json(struct kiln_server *s, struct MHD_Connection *c,
                                  struct serve_req *r, int code, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(doc);
    if (!text) return MHD_NO;
    return reply(s, c, r, code, text, strlen(text), "application/json", -1);
}

/* {"error": "..."} with a 4xx/5xx status, as the protocol answers errors. */
static enum MHD_Result reply_error(struct kiln_server *s, struct MHD_Connection *c,
                                   struct serve_req *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum MHD_Result reply_error(struct kiln_server *s, struct MHD_Connection *c,
                                   struct serve_req *r, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return reply_json(s, c, r, code, json_pack("{s:s}", "error", msg));
}

/* --- routing ------------------------------------------------------------------------ */

enum serve_route {
    ROUTE_NONE,
    ROUTE_LIVE,
    ROUTE_READY,
    ROUTE_SERVER_META,
    ROUTE_MODEL_META,
    ROUTE_MODEL_READY,
    ROUTE_INFER,
    ROUTE_METRICS,
};

/* Splits url into a route. For /v2/models/NAME[/versions/V]/..., a name or
 * version other than the one served is reported in err (a 404). */
static enum serve_route route_parse(const struct kiln_server *s, const char *url, char *err,
                                    size_t err_len)
{
    err[0] = '\0';
    if (!strcmp(url, "/v2/health/live")) return ROUTE_LIVE;
    if (!strcmp(url, "/v2/health/ready")) return ROUTE_READY;
    if (!strcmp(url, "/v2") || !strcmp(url, "/v2/")) return ROUTE_SERVER_META;
    if (!strcmp(url, "/metrics")) return ROUTE_METRICS;
    const char *p = url;
    if (strncmp(p, "/v2/models/", 11) != 0) return ROUTE_NONE;
    p += 11;
    size_t name_len = strcspn(p, "/");
    const char *rest = p + name_len;
    char version[32] = "";
    if (!strncmp(rest, "/versions/", 10)) {
        size_t vl = strcspn(rest + 10, "/");
        if (vl == 0 || vl >= sizeof version) return ROUTE_NONE;
        memcpy(version, rest + 10, vl);
        version[vl] = '\0';
        rest += 10 + vl;
    }
    enum serve_route route;
    if (!*rest) route = ROUTE_MODEL_META;
    else if (!strcmp(rest, "/ready")) route = ROUTE_MODEL_READY;
    else if (!strcmp(rest, "/infer")) route = ROUTE_INFER;
    else return ROUTE_NONE;
    if (name_len != strlen(s->info.model_name) || strncmp(p, s->info.model_name, name_len)) {
        snprintf(err, err_len, "unknown model '%.*s': this server serves '%s'",
                 (int)(name_len > 200 ? 200 : name_len), p, s->info.model_name);
    } else if (version[0]) {
        char *end;
        long long v = strtoll(version, &end, 10);
        if (*end || v != s->info.model_version)
            snprintf(err, err_len, "model '%s' has no version '%s' here (serving version %lld)",
                     s->info.model_name, version, (long long)s->info.model_version);
    }
    return route;
}

static enum serve_endpoint route_endpoint(enum serve_route r)
{
    switch (r) {
    case ROUTE_LIVE:
    case ROUTE_READY: return SERVE_EP_HEALTH;
    case ROUTE_SERVER_META: return SERVE_EP_SERVER;
    case ROUTE_MODEL_META:
    case ROUTE_MODEL_READY: return SERVE_EP_MODEL;
    case ROUTE_INFER: return SERVE_EP_INFER;
    case ROUTE_METRICS: return SERVE_EP_METRICS;
    default: return SERVE_EP_OTHER;
    }
}

/* Bearer token check: the SHA-256 of what was sent against the token's,
 * compared in constant time (the digests hide the token's length too). */
static bool auth_ok(const struct kiln_server *s, struct MHD_Connection *c)
{
    if (!s->token_sha[0]) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    struct sha256_ctx *ctx;
    char hex[65];
    if (sha256_begin(&ctx) != KILN_OK) return false;
    sha256_update(ctx, h, strlen(h));
    sha256_end(ctx, hex);
    return CRYPTO_memcmp(hex, s->token_sha, 64) == 0;
}

/* --- the endpoints ------------------------------------------------------------------ */

static json_t *tensor_meta(const char *name, const char *dtype, int64_t width)
{
    json_t *shape = width > 0 ? json_pack("[iI]", -1, (json_int_t)width) : json_pack("[i]", -1);
    return json_pack("{s:s,s:s,s:o}", "name", name, "datatype", dtype, "shape", shape);
}

static enum MHD_Result do_model_meta(struct kiln_server *s, struct MHD_Connection *c,
                                     struct serve_req *r)
{
    char version[32];
    snprintf(version, sizeof version, "%lld", (long long)s->info.model_version);
    json_t *outputs = s->classifier
                          ? json_pack("[oo]", tensor_meta(SERVE_OUT_PROB, "FP32", s->im.k),
                                      tensor_meta(SERVE_OUT_CLASS, "INT32", 0))
                          : json_pack("[o]", tensor_meta(SERVE_OUT_REG, "FP32", s->im.k));
    json_t *doc = json_pack("{s:s,s:[s],s:s,s:[o],s:o}", "name", s->info.model_name, "versions",
                            version, "platform", "kiln", "inputs",
                            tensor_meta(SERVE_INPUT, "FP32", s->im.raw), "outputs", outputs);
    return reply_json(s, c, r, MHD_HTTP_OK, doc);
}

static enum MHD_Result do_server_meta(struct kiln_server *s, struct MHD_Connection *c,
                                      struct serve_req *r)
{
    json_t *doc = json_pack("{s:s,s:s,s:[s]}", "name", "kiln", "version", kiln_version_string(),
                            "extensions", "binary_tensor_data");
    return reply_json(s, c, r, MHD_HTTP_OK, doc);
}

static enum MHD_Result do_metrics(struct kiln_server *s, struct MHD_Connection *c,
                                  struct serve_req *r)
{
    struct kiln_drift_window_scores ds;
    bool have_drift = false;
    struct kiln_predlog_counts pc;
    if (s->drift) {
        if (kiln_drift_window_scores(s->drift, &ds) == KILN_OK) have_drift = true;
        else kiln_log(KILN_LOG_WARN, "serve: drift scores: %s", kiln_last_error());
    }
    if (s->log) pc = kiln_predlog_counts(s->log);
    struct serve_metrics_view v = {.info = &s->info, .drift = have_drift ? &ds : NULL,
                                   .predlog = s->log ? &pc : NULL,
                                   .queue_rows = batcher_queue_rows(s),
                                   .start_time = s->start_time};
    char *text = serve_metrics_render(s->metrics, &v);
    if (have_drift) kiln_drift_window_scores_free(&ds);
    if (!text) return reply_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return reply(s, c, r, MHD_HTTP_OK, text, strlen(text), "text/plain; version=0.0.4; charset=utf-8",
                 -1);
}

/* Appends one output tensor to outputs (and its bytes to bin when binary). */
static bool infer_add_output(json_t *outputs, struct sbuf *bin, const char *name,
                             const float *y, const int32_t *cls, int64_t rows, int64_t k,
                             bool binary)
{
    bool ok = true;
    json_t *shape = cls ? json_pack("[I]", (json_int_t)rows)
                        : json_pack("[II]", (json_int_t)rows, (json_int_t)k);
    json_t *t = json_pack("{s:s,s:s,s:o}", "name", name, "datatype", cls ? "INT32" : "FP32",
                          "shape", shape);
    if (!t || json_array_append_new(outputs, t) != 0) return false;
    int64_t n = cls ? rows : rows * k;
    size_t bytes = (size_t)n * 4;
    if (binary) {
        sbuf_append(bin, cls ? (const char *)cls : (const char *)y, bytes);
        ok = json_object_set_new(t, "parameters",
                                 json_pack("{s:I}", "binary_data_size", (json_int_t)bytes)) == 0;
    } else {
        json_t *data = json_array();
        for (int64_t i = 0; ok && data && i < n; i++)
            ok = json_array_append_new(data, cls ? json_integer(cls[i]) : json_real(y[i])) == 0;
        ok = ok && data && json_object_set_new(t, "data", data) == 0;
    }
    return ok;
}

static enum MHD_Result do_infer(struct kiln_server *s, struct MHD_Connection *c,
                                struct serve_req *r)
{
    json_t *resp = NULL;
    float *y = NULL;
    int32_t *cls = NULL;
    struct sbuf bin = {0};
    enum MHD_Result ret;
    int code = 0;
    if (!r->parser) return MHD_NO; /* answered when its headers came */
    if (r->hdr_bad) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                    "Inference-Header-Content-Length");
        ret = reply_error(s, c, r, MHD_HTTP_BAD_REQUEST, "Inference-Header-Content-Length "
                          "'%.32s' is not a size within the %zu-byte body", h ? h : "",
                          r->received);
        goto cleanup;
    }
    if (!serve_parser_finish(r->parser)) {
        const char *msg = serve_parser_error(r->parser, &code);
        ret = reply_error(s, c, r, code, "%s", msg);
        goto cleanup;
    }
    struct serve_infer_req *call = serve_parser_request(r->parser);
    int64_t raw = s->im.raw, want = call->rows * raw;
    if (call->binary_bytes >= 0) {
        /* The binary tensor extension: raw little-endian FP32 after the JSON. */
        if (r->len != (size_t)call->binary_bytes) {
            ret = reply_error(s, c, r, MHD_HTTP_BAD_REQUEST, "the body holds %zu bytes of binary "
                              "data after its %zu-byte JSON header, binary_data_size says %lld",
                              r->len, r->hdr_len, (long long)call->binary_bytes);
            goto cleanup;
        }
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the binary tensor extension is little-endian; swap bytes here"
#endif
        /* The body holds exactly the rows (checked above; malloc'd, so
         * aligned for floats): it becomes them rather than being copied. */
        free(call->x);
        call->x = (float *)(void *)r->body;
        r->body = NULL;
        r->len = r->cap = 0;
        for (int64_t i = 0; i < want; i++)
            if (!isfinite(call->x[i])) {
                ret = reply_error(s, c, r, MHD_HTTP_BAD_REQUEST, "input '" SERVE_INPUT "' row "
                                  "%lld, column %lld is %g: inputs must be finite FP32 numbers",
                                  (long long)(i / raw + 1), (long long)(i % raw + 1),
                                  (double)call->x[i]);
                goto cleanup;
            }
    } else if (r->len > 0) {
        ret = reply_error(s, c, r, MHD_HTTP_BAD_REQUEST, "%zu bytes follow the JSON header but no "
                          "input has binary_data_size", r->len);
        goto cleanup;
    }
    int64_t k = s->im.k;
    y = malloc((size_t)(call->rows * k) * sizeof *y);
    cls = s->classifier ? malloc((size_t)call->rows * sizeof *cls) : NULL;
    if (!y || (s->classifier && !cls)) {
        ret = reply_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        goto cleanup;
    }
    struct serve_job job = {.x = call->x, .rows = call->rows, .y = y};
    bool timed_out = false;
    enum kiln_status st = batcher_submit(s, &job, &timed_out);
    if (st != KILN_OK) {
        bool unavailable = timed_out || st == KILN_ERR_BACKEND;
        ret = reply_error(s, c, r, unavailable ? MHD_HTTP_SERVICE_UNAVAILABLE
                                               : MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", job.err);
        goto cleanup;
    }
    /* Finite inputs can still overflow the model (3e38 is a valid FP32);
     * JSON has no NaN to answer with, and a client is better told why. */
    for (int64_t i = 0; i < call->rows * k; i++)
        if (!isfinite(y[i])) {
            ret = reply_error(s, c, r, MHD_HTTP_BAD_REQUEST, "the model's output for row %lld is "
                              "not finite (%g): its inputs are too large for this model",
                              (long long)(i / k + 1), (double)y[i]);
            goto cleanup;
        }
    if (cls)
        for (int64_t i = 0; i < call->rows; i++) cls[i] = serve_argmax(y + i * k, k);
    /* The answer, outputs in the order asked for. */
    char version[32];
    snprintf(version, sizeof version, "%lld", (long long)s->info.model_version);
    resp = json_pack("{s:s,s:s}", "model_name", s->info.model_name, "model_version", version);
    json_t *outputs = json_array();
    bool ok = resp && outputs && json_object_set_new(resp, "outputs", outputs) == 0;
    if (ok && call->has_id) ok = json_object_set_new(resp, "id", json_string(call->id)) == 0;
    for (int i = 0; ok && i < call->n_order; i++) {
        enum serve_output o = call->order[i];
        bool b = call->binary[o];
        if (o == SERVE_OUTPUT_PROB)
            ok = infer_add_output(outputs, &bin, SERVE_OUT_PROB, y, NULL, call->rows, k, b);
        else if (o == SERVE_OUTPUT_CLASS)
            ok = infer_add_output(outputs, &bin, SERVE_OUT_CLASS, NULL, cls, call->rows, k, b);
        else
            ok = infer_add_output(outputs, &bin, SERVE_OUT_REG, y, NULL, call->rows, k, b);
    }
    char *text = ok ? json_dumps(resp, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    if (!text || bin.failed) {
        free(text);
        ret = reply_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        goto cleanup;
    }
    /* Kept for the prediction log and the drift window, fed once the
     * answer has gone out. */
    if (call->has_id) snprintf(r->id, sizeof r->id, "%s", call->id);
    else snprintf(r->id, sizeof r->id, "%.0f-%" PRIu64, s->start_time,
                  atomic_fetch_add(&s->next_id, 1));
    r->rows = call->rows;
    r->x = call->x;
    r->y = y;
    r->classes = cls;
    call->x = NULL;
    y = NULL;
    cls = NULL;
    if (bin.len == 0) {
        ret = reply(s, c, r, MHD_HTTP_OK, text, strlen(text), "application/json", -1);
    } else {
        size_t tl = strlen(text);
        char *all = malloc(tl + bin.len);
        if (!all) {
            free(text);
            ret = reply_error(s, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
            goto cleanup;
        }
        memcpy(all, text, tl);
        memcpy(all + tl, bin.p, bin.len);
        free(text);
        ret = reply(s, c, r, MHD_HTTP_OK, all, tl + bin.len, "application/octet-stream",
                    (long long)tl);
    }
cleanup:
    sbuf_free(&bin);
    json_decref(resp);
    free(y);
    free(cls);
    return ret;
}

/* libmicrohttpd's access handler: called once when the headers are in,
 * then for each piece of the body, then once more with none. */
static enum MHD_Result serve_access(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    (void)version;
    struct kiln_server *s = cls;
    struct serve_req *r = *con_cls;
    char err[512];
    enum serve_route route = route_parse(s, url, err, sizeof err);
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *con_cls = r;
        clock_gettime(CLOCK_MONOTONIC, &r->t0);
        r->ep = route_endpoint(route);
        serve_metrics_inflight(s->metrics, 1);
        /* Everything that can be refused before the body is read is. */
        bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
        bool post = !strcmp(method, "POST");
        if (atomic_load(&s->draining))
            return reply_error(s, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is shutting down");
        if (route == ROUTE_NONE)
            return reply_error(s, c, r, MHD_HTTP_NOT_FOUND, "no such endpoint: %s %.200s", method,
                               url);
        if (route == ROUTE_INFER ? !post : !get)
            return reply_error(s, c, r, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %.200s "
                               "(use %s)", method, url, route == ROUTE_INFER ? "POST" : "GET");
        /* Health probes stay open so that orchestrators need no token. */
        if (route != ROUTE_LIVE && route != ROUTE_READY && !auth_ok(s, c))
            return reply_error(s, c, r, MHD_HTTP_UNAUTHORIZED,
                               "missing or wrong bearer token (Authorization: Bearer ...)");
        if (err[0]) return reply_error(s, c, r, MHD_HTTP_NOT_FOUND, "%s", err);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_TRANSFER_ENCODING);
        /* A chunked body's size is known only once it has been read: such
         * bodies are refused so that none is read past --max-body. */
        if (route == ROUTE_INFER && !cl && te && strcasestr(te, "chunked"))
            return reply_error(s, c, r, MHD_HTTP_LENGTH_REQUIRED, "send the body with a "
                               "Content-Length (chunked bodies are not accepted)");
        unsigned long long body_len = 0;
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (*end == '\0' && n > (unsigned long long)s->o.max_body_bytes)
                return reply_error(s, c, r, MHD_HTTP_CONTENT_TOO_LARGE, "the body is %llu bytes, "
                                   "at most %lld are allowed (--max-body)", n,
                                   (long long)s->o.max_body_bytes);
            if (*end == '\0') body_len = n;
        }
        if (route == ROUTE_INFER) {
            if (serve_parser_create(s->im.raw, s->o.max_rows, s->classifier, &r->parser) != KILN_OK)
                return MHD_NO;
            r->hdr_len = SIZE_MAX;
            const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                        "Inference-Header-Content-Length");
            if (h) {
                /* A JSON header, then binary tensors: those are kept. A
                 * bad size is answered once the body is in. */
                char *end;
                long long v = strtoll(h, &end, 10);
                r->hdr_bad = !*h || *end || v < 0 || (unsigned long long)v > body_len;
                r->hdr_len = r->hdr_bad ? 0 : (size_t)v;
                if (!r->hdr_bad && body_len > (unsigned long long)v) {
                    r->cap = (size_t)(body_len - (unsigned long long)v);
                    r->body = malloc(r->cap);
                    if (!r->body) return MHD_NO;
                }
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        /* A GET's body is ignored, as is one after an answer queued early. */
        if (route != ROUTE_INFER || !r->parser) return MHD_YES;
        if (r->received + n > (size_t)s->o.max_body_bytes) {
            /* Cannot happen past the Content-Length check; should it, the
             * connection is closed rather than the body read on. */
            return MHD_NO;
        }
        if (r->hdr_bad) {
            r->received += n; /* refused once it is in */
            return MHD_YES;
        }
        /* The JSON part to the parser (after a refusal it reads no more,
         * and the rest of the body is only counted), the rest kept. */
        size_t json = r->received < r->hdr_len ? r->hdr_len - r->received : 0;
        if (json > n) json = n;
        serve_parser_feed(r->parser, upload_data, json);
        r->received += n;
        n -= json;
        if (n == 0) return MHD_YES;
        if (r->len + n > r->cap) {
            size_t cap = r->cap ? r->cap : 65536;
            while (cap < r->len + n) cap *= 2;
            if (cap > (size_t)s->o.max_body_bytes) cap = (size_t)s->o.max_body_bytes;
            char *p = realloc(r->body, cap);
            if (!p) return MHD_NO;
            r->body = p;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload_data + json, n);
        r->len += n;
        return MHD_YES;
    }
    switch (route) {
    case ROUTE_LIVE: return reply(s, c, r, MHD_HTTP_OK, NULL, 0, NULL, -1);
    case ROUTE_READY:
    case ROUTE_MODEL_READY:
        if (atomic_load(&s->draining))
            return reply_error(s, c, r, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is shutting down");
        return reply(s, c, r, MHD_HTTP_OK, NULL, 0, NULL, -1);
    case ROUTE_SERVER_META: return do_server_meta(s, c, r);
    case ROUTE_MODEL_META: return do_model_meta(s, c, r);
    case ROUTE_METRICS: return do_metrics(s, c, r);
    case ROUTE_INFER: return do_infer(s, c, r);
    default: return reply_error(s, c, r, MHD_HTTP_NOT_FOUND, "no such endpoint");
    }
}

/* After the answer went out (or the connection died): metrics, then the
 * prediction log and the drift window for a successful infer. */
static void serve_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    struct kiln_server *s = cls;
    struct serve_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (r->code) serve_metrics_request(s->metrics, r->ep, r->code, seconds_between(&r->t0, &t1));
    if (r->code == MHD_HTTP_OK && r->x) {
        int64_t k = s->im.k, raw = s->im.raw;
        serve_metrics_rows(s->metrics, r->classes, r->rows);
        if (s->log) kiln_predlog_record(s->log, r->id, r->x, r->rows, raw, r->y, k, r->classes);
        if (s->drift) {
            const float *rows = r->x;
            float *tx = NULL;
            enum kiln_status st = KILN_OK;
            if (s->drift_transformed) {
                tx = malloc((size_t)(r->rows * s->im.in) * sizeof *tx);
                st = tx ? kiln_transform_apply_rows(s->im.tl, r->x, r->rows, tx)
                        : kiln_errorf(KILN_ERR_NOMEM, "out of memory");
                rows = tx;
            }
            if (st == KILN_OK)
                st = kiln_drift_window_add(s->drift, rows, r->rows,
                                           s->drift_transformed ? s->im.in : raw, r->classes);
            if (st != KILN_OK) kiln_log(KILN_LOG_WARN, "serve: drift window: %s", kiln_last_error());
            free(tx);
        }
    }
    serve_metrics_inflight(s->metrics, -1);
    serve_req_free(r);
}

static void serve_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    kiln_log(KILN_LOG_DEBUG, "serve: libmicrohttpd: %s", msg);
}

/* --- start and stop ----------------------------------------------------------------- */

static enum kiln_status serve_check_options(const struct kiln_serve_options *o)
{
    if (!o->package) return kiln_errorf(KILN_ERR_USAGE, "serve: no package given");
    if (o->port < 0 || o->port > 65535)
        return kiln_errorf(KILN_ERR_USAGE, "serve: port %d is not in 0..65535", o->port);
    if (o->max_batch < 1) return kiln_errorf(KILN_ERR_USAGE, "serve: --max-batch must be >= 1");
    if (o->max_rows < 1) return kiln_errorf(KILN_ERR_USAGE, "serve: --max-rows must be >= 1");
    if (o->max_batch > SERVE_MAX_ROWS || o->max_rows > SERVE_MAX_ROWS)
        return kiln_errorf(KILN_ERR_USAGE, "serve: --max-batch and --max-rows must be <= %d",
                           SERVE_MAX_ROWS);
    if (o->max_delay_us < 0 || o->max_delay_us > 10000000)
        return kiln_errorf(KILN_ERR_USAGE, "serve: --max-delay-us must be in 0..10000000");
    if (o->max_body_bytes < 1024)
        return kiln_errorf(KILN_ERR_USAGE, "serve: --max-body must be >= 1024 bytes");
    if (o->max_connections < 1)
        return kiln_errorf(KILN_ERR_USAGE, "serve: --max-connections must be >= 1");
    if (o->connection_timeout_s < 1)
        return kiln_errorf(KILN_ERR_USAGE, "serve: --timeout must be >= 1 second");
    if (o->request_timeout_ms < 1)
        return kiln_errorf(KILN_ERR_USAGE, "serve: --request-timeout-ms must be >= 1");
    if (!(o->log_sample >= 0.0 && o->log_sample <= 1.0))
        return kiln_errorf(KILN_ERR_USAGE, "serve: --log-sample must be in [0, 1]");
    if (o->require_signature && !o->pubkey)
        return kiln_errorf(KILN_ERR_USAGE, "serve: --require-signature needs --key PUB to check it");
    if (o->drift_window_rows != 0 && o->drift_window_rows < KILN_DRIFT_WINDOW_BLOCKS)
        return kiln_errorf(KILN_ERR_USAGE, "serve: --drift-window must be 0 or >= %d rows",
                           KILN_DRIFT_WINDOW_BLOCKS);
    return KILN_OK;
}

/* The token's SHA-256: the file's first line, blanks around it trimmed. */
static enum kiln_status serve_load_token(const char *path, char hex[65])
{
    char buf[SERVE_MAX_TOKEN + 2];
    FILE *f = fopen(path, "r");
    if (!f) return kiln_errorf(KILN_ERR_USAGE, "--token-file %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    char *p = buf;
    while (*p == ' ' || *p == '\t') p++;
    size_t len = strlen(p);
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) p[--len] = '\0';
    if (len == 0) return kiln_errorf(KILN_ERR_USAGE, "--token-file %s: the token is empty", path);
    if (len > SERVE_MAX_TOKEN)
        return kiln_errorf(KILN_ERR_USAGE, "--token-file %s: the token is longer than %d bytes",
                           path, SERVE_MAX_TOKEN);
    struct sha256_ctx *ctx;
    enum kiln_status st = sha256_begin(&ctx);
    if (st != KILN_OK) return st;
    sha256_update(ctx, p, len);
    sha256_end(ctx, hex);
    OPENSSL_cleanse(buf, sizeof buf);
    return KILN_OK;
}

/* The drift window over the package's training statistics (its train
 * split), when it has them and they describe the rows the model sees: the
 * raw rows, or the transformed ones for a model that carries transforms
 * (it was trained on a transformed dataset version, whose statistics the
 * package holds). Without them the server runs with no drift metrics. */
static enum kiln_status serve_open_drift(struct kiln_server *s)
{
    enum kiln_status st = KILN_OK;
    struct kiln_dataset_stats *stats = NULL;
    char *text = NULL;
    int64_t size = 0;
    FILE *f = NULL;
    if (s->o.drift_window_rows == 0) return KILN_OK;
    st = fs_check_file(s->pkg->stats_path, &size);
    if (st != KILN_OK) goto cleanup;
    text = malloc((size_t)size + 1);
    f = fopen(s->pkg->stats_path, "rb");
    if (!text || !f || fread(text, 1, (size_t)size, f) != (size_t)size) {
        st = kiln_errorf(KILN_ERR_IO, "%s: cannot read the package's stats.json", s->o.package);
        goto cleanup;
    }
    text[size] = '\0';
    if (!strncmp(text, "null", 4)) {
        kiln_log(KILN_LOG_WARN, "serve: %s has no training statistics: no drift metrics",
                 s->o.package);
        goto cleanup;
    }
    st = kiln_dataset_stats_from_json(text, &stats);
    if (st != KILN_OK) {
        kiln_error_context(st, "%s: stats.json", s->o.package);
        goto cleanup;
    }
    const struct kiln_split_stats *train = NULL;
    for (int i = 0; i < stats->n_splits; i++)
        if (stats->splits[i].split == KILN_SPLIT_TRAIN) train = &stats->splits[i];
    int64_t width = s->im.tl ? s->im.in : s->im.raw;
    if (!train || train->n_features != width) {
        kiln_log(KILN_LOG_WARN, "serve: %s: the training statistics %s: no drift metrics",
                 s->o.package, train ? "do not match the model's input width" : "have no train split");
        goto cleanup;
    }
    s->drift_transformed = s->im.tl != NULL;
    st = kiln_drift_window_create(train, s->o.drift_window_rows, &s->drift);
cleanup:
    if (f) fclose(f);
    free(text);
    kiln_dataset_stats_free(stats);
    return st;
}

static enum kiln_status serve_start_batcher(struct kiln_server *s)
{
    struct serve_batcher *b = &s->b;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) return kiln_errorf(KILN_ERR_NOMEM, "serve: cannot make a condition");
    /* Deadlines on the monotonic clock: a wall-clock jump cannot stall or
     * flush batches. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool ok = pthread_mutex_init(&b->mu, NULL) == 0;
    ok = ok && pthread_cond_init(&b->work, &ca) == 0;
    ok = ok && pthread_cond_init(&b->done, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok) return kiln_errorf(KILN_ERR_NOMEM, "serve: cannot make a mutex");
    s->sync_made = true;
    int64_t cap = s->info.model_batch;
    b->x = malloc((size_t)(cap * s->im.raw) * sizeof(float));
    b->y = malloc((size_t)(cap * s->im.k) * sizeof(float));
    if (!b->x || !b->y)
        return kiln_errorf(KILN_ERR_NOMEM, "serve: out of memory for %lld-row batches", (long long)cap);
    if (pthread_create(&b->thread, NULL, batcher_main, s) != 0)
        return kiln_errorf(KILN_ERR_NOMEM, "serve: cannot start the batcher thread");
    s->batcher_up = true;
    return KILN_OK;
}

static void serve_stop_batcher(struct kiln_server *s)
{
    if (!s->batcher_up) return;
    pthread_mutex_lock(&s->b.mu);
    s->b.stop = true; /* what is queued still runs */
    pthread_cond_broadcast(&s->b.work);
    pthread_mutex_unlock(&s->b.mu);
    pthread_join(s->b.thread, NULL);
    s->batcher_up = false;
}

static enum kiln_status serve_listen(struct kiln_server *s)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE},
                    *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", s->o.port);
    int rc = getaddrinfo(s->o.host, port, &hints, &ai);
    if (rc != 0)
        return kiln_errorf(KILN_ERR_USAGE, "serve: --host %s: %s", s->o.host, gai_strerror(rc));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    errno = 0;
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, serve_access, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->o.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o.connection_timeout_s,
        /* Room for the headers and large reads of the body. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)256 * 1024,
        MHD_OPTION_NOTIFY_COMPLETED, serve_completed, s,
        MHD_OPTION_EXTERNAL_LOGGER, serve_mhd_log, s, MHD_OPTION_END);
    int e = errno;
    freeaddrinfo(ai);
    if (!s->mhd)
        return kiln_errorf(KILN_ERR_IO, "serve: cannot listen on %s port %d: %s", s->o.host,
                           s->o.port, e ? strerror(e) : "libmicrohttpd refused to start");
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->info.port = di && di->port ? di->port : s->o.port;
    return KILN_OK;
}

enum kiln_status kiln_server_start(const struct kiln_serve_options *o, struct kiln_server **out)
{
    *out = NULL;
    enum kiln_status st = serve_check_options(o);
    if (st != KILN_OK) return st;
    struct kiln_server *s = calloc(1, sizeof *s);
    if (!s) return kiln_errorf(KILN_ERR_NOMEM, "serve: out of memory");
    s->o = *o;
    if (!s->o.host) s->o.host = "127.0.0.1";
    if (!s->o.device) s->o.device = "cpu";
    if (o->token_file && (st = serve_load_token(o->token_file, s->token_sha)) != KILN_OK)
        goto cleanup;
    /* Verification first, the golden check included: a package that fails
     * it is never served. */
    st = kiln_package_open(o->package, o->pubkey, o->require_signature, &s->pkg);
    if (st != KILN_OK) {
        kiln_error_context(st, "%s: not ready to serve", o->package);
        goto cleanup;
    }
    /* Idle OpenMP threads spin (libgomp's default wait policy) on the cores
     * the connection threads parse on: measured unbatched with 64
     * connections on 2 cores, --threads 2 answered 117 req/s, --threads 1
     * 408, --threads 2 with OMP_WAIT_POLICY=passive 592. The policy is read
     * when libgomp loads, so it can only be suggested here. */
    int threads = o->threads > 0 ? o->threads : omp_get_num_procs();
    if (threads > 1 && !getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT"))
        kiln_log(KILN_LOG_WARN, "serve: %d model threads without OMP_WAIT_POLICY=passive: idle "
                 "model threads will spin on the cores that read requests (docs/SERVING.md)",
                 threads);
    s->info.model_batch = o->max_batch > o->max_rows ? o->max_batch : o->max_rows;
    st = infer_model_open(&s->im, s->pkg->model_path, s->o.device, o->threads, s->info.model_batch);
    if (st != KILN_OK) goto cleanup;
    s->classifier = s->im.meta.model.loss == KILN_LOSS_SOFTMAX_XENT;
    snprintf(s->info.host, sizeof s->info.host, "%s", s->o.host);
    snprintf(s->info.model_name, sizeof s->info.model_name, "%s", s->pkg->name);
    snprintf(s->info.package_sha256, sizeof s->info.package_sha256, "%s", s->pkg->sha256);
    s->info.model_version = s->pkg->version;
    s->info.n_features = s->im.raw;
    s->info.n_outputs = s->im.k;
    s->info.classifier = s->classifier;
    st = serve_metrics_create(s->classifier ? (int)s->im.k : 0,
                              s->pkg->n_classes == s->im.k ? s->pkg->classes : NULL, &s->metrics);
    if (st == KILN_OK) st = serve_open_drift(s);
    if (st != KILN_OK) goto cleanup;
    s->info.drift = s->drift != NULL;
    if (o->log_dir) {
        struct kiln_predlog_options lo = {.dir = o->log_dir, .sample = o->log_sample,
                                          .redact = o->log_redact, .model_name = s->pkg->name,
                                          .model_version = s->pkg->version,
                                          .seed = (uint64_t)time(NULL)};
        st = kiln_predlog_open(&lo, &s->log);
        if (st != KILN_OK) goto cleanup;
    }
    s->start_time = (double)time(NULL);
    st = serve_start_batcher(s);
    if (st == KILN_OK) st = serve_listen(s);
cleanup:
    if (st != KILN_OK) {
        kiln_server_close(s);
        s = NULL;
    }
    *out = s;
    return st;
}

const struct kiln_server_info *kiln_server_info(const struct kiln_server *s)
{
    return &s->info;
}

int64_t kiln_server_close(struct kiln_server *s)
{
    if (!s) return 0;
    int64_t left = 0;
    MHD_socket listen_fd = MHD_INVALID_SOCKET;
    if (s->mhd) {
        atomic_store(&s->draining, true);
        listen_fd = MHD_quiesce_daemon(s->mhd);
        struct timespec t0, now, nap = {.tv_nsec = 5000000};
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            left = serve_metrics_inflight_now(s->metrics);
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (left <= 0 || seconds_between(&t0, &now) >= s->o.drain_timeout_s) break;
            nanosleep(&nap, NULL);
        }
    }
    serve_stop_batcher(s);
    if (s->mhd) MHD_stop_daemon(s->mhd);
    /* libmicrohttpd leaves a quiesced listening socket to its caller. */
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    kiln_predlog_close(s->log);
    kiln_drift_window_free(s->drift);
    serve_metrics_free(s->metrics);
    if (s->sync_made) {
        pthread_mutex_destroy(&s->b.mu);
        pthread_cond_destroy(&s->b.work);
        pthread_cond_destroy(&s->b.done);
    }
    free(s->b.x);
    free(s->b.y);
    infer_model_close(&s->im);
    kiln_package_close(s->pkg);
    OPENSSL_cleanse(s->token_sha, sizeof s->token_sha);
    free(s);
    return left > 0 ? left : 0;
}
