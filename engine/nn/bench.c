/* engine/nn/bench.c: kernel throughput through the op table (kiln bench).
 * Backend-agnostic: the CUDA backend times with its events, the CPU with
 * the wall clock (struct kiln_timer_i). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elementwise.h"
#include "kernels.h"
#include "kiln/backend.h"
#include "kiln/bench.h"

struct bench {
    struct kiln_backend *be;     /* own kernels (kiln's SGEMM on CUDA) */
    struct kiln_backend *vendor; /* cuBLAS / OpenBLAS */
    bool device;
    bool quick;
    int reps, warmup;
    struct kiln_bench_report *out;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* What one timed call does: fn(arg, rep) runs rep's input copy. */
typedef enum kiln_status (*bench_fn)(struct kiln_backend *be, void *arg, int rep);

/* Median milliseconds of one call after warm-up. */
static enum kiln_status bench_time(struct bench *b, struct kiln_backend *be, bench_fn fn, void *arg,
                                   double *ms)
{
    const struct kiln_timer_i *tm = be->iface->timer;
    if (!tm) return kiln_errorf(KILN_ERR_UNSUPPORTED, "bench: backend %s has no timer", be->iface->name);
    enum kiln_status st = KILN_OK;
    for (int i = 0; i < b->warmup && st == KILN_OK; i++) st = fn(be, arg, i);
    if (st == KILN_OK) st = be->iface->sync(be->ctx);
    double *t = calloc((size_t)b->reps, sizeof(double));
    if (!t) return kiln_errorf(KILN_ERR_NOMEM, "bench: out of memory");
    for (int i = 0; i < b->reps && st == KILN_OK; i++) {
        st = tm->start(be->ctx);
        if (st == KILN_OK) st = fn(be, arg, i);
        if (st == KILN_OK) st = tm->stop(be->ctx, &t[i]);
    }
    if (st == KILN_OK) {
        qsort(t, (size_t)b->reps, sizeof(double), cmp_double);
        *ms = t[b->reps / 2];
    }
    free(t);
    return st;
}

static struct kiln_bench_row *bench_row(struct bench *b, const char *family, const char *name,
                                        const char *shape)
{
    struct kiln_bench_report *r = b->out;
    if (r->n_rows >= KILN_BENCH_MAX_ROWS) return NULL;
    struct kiln_bench_row *row = &r->rows[r->n_rows++];
    memset(row, 0, sizeof *row);
    snprintf(row->family, sizeof row->family, "%s", family);
    snprintf(row->name, sizeof row->name, "%s", name);
    snprintf(row->shape, sizeof row->shape, "%s", shape);
    return row;
}

static float *bench_alloc(struct kiln_backend *be, size_t floats)
{
    return be->iface->alloc(be->ctx, floats * sizeof(float));
}

/* Fills a backend buffer with values in [-1, 1) from a counter RNG. */
static enum kiln_status bench_fill(struct kiln_backend *be, float *dst, size_t n, uint64_t seed)
{
    size_t chunk = (size_t)1 << 20;
    float *h = malloc(chunk * sizeof(float));
    if (!h) return kiln_errorf(KILN_ERR_NOMEM, "bench: out of memory");
    enum kiln_status st = KILN_OK;
    for (size_t lo = 0; lo < n && st == KILN_OK; lo += chunk) {
        size_t m = n - lo < chunk ? n - lo : chunk;
        for (size_t i = 0; i < m; i++) h[i] = 2.0f * kiln_rng_uniform(seed, lo + i) - 1.0f;
        st = be->iface->upload(be->ctx, dst + lo, h, m * sizeof(float));
    }
    free(h);
    return st;
}

/* --- copy: the memory ceiling ------------------------------------------------------ */

struct copy_arg {
    float *src, *dst;
    size_t bytes;
};

static enum kiln_status run_copy(struct kiln_backend *be, void *arg, int rep)
{
    struct copy_arg *a = arg;
    (void)rep;
    return be->iface->copy(be->ctx, a->dst, a->src, a->bytes);
}

/* --- GEMM ----------------------------------------------------------------------------- */

#define GEMM_COPIES 4
struct gemm_arg {
    bool ta, tb;
    int64_t m, n, k;
    float *a[GEMM_COPIES], *b[GEMM_COPIES], *c;
    int copies;
};

static enum kiln_status run_gemm(struct kiln_backend *be, void *arg, int rep)
{
    struct gemm_arg *g = arg;
    int i = rep % g->copies;
    int64_t lda = g->ta ? g->m : g->k, ldb = g->tb ? g->k : g->n;
    return be->iface->ops->gemm(be->ctx, g->ta, g->tb, g->m, g->n, g->k, 1.0f, g->a[i], lda,
                                g->b[i], ldb, 0.0f, g->c, g->n);
}

/* Largest relative difference of own vs vendor over the output. */
static enum kiln_status gemm_verify(struct bench *b, struct gemm_arg *g, bool *ok)
{
    size_t n = (size_t)(g->m * g->n);
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    enum kiln_status st = x && y ? KILN_OK : kiln_errorf(KILN_ERR_NOMEM, "bench: out of memory");
    if (st == KILN_OK) st = run_gemm(b->vendor, g, 0);
    if (st == KILN_OK) st = b->vendor->iface->download(b->vendor->ctx, x, g->c, n * sizeof(float));
    if (st == KILN_OK) st = run_gemm(b->be, g, 0);
    if (st == KILN_OK) st = b->be->iface->download(b->be->ctx, y, g->c, n * sizeof(float));
    double worst = 0.0;
    for (size_t i = 0; st == KILN_OK && i < n; i++) {
        /* FP32 sums of k terms of size <= 1 in another order. */
        double d = fabs((double)x[i] - y[i]) / (sqrt((double)g->k) + fabs(x[i]));
        if (!(d <= worst)) worst = d;
    }
    *ok = st == KILN_OK && worst < 1e-4;
    free(x);
    free(y);
    return st;
}

static enum kiln_status bench_gemm(struct bench *b, bool ta, bool tb, int64_t m, int64_t n,
                                   int64_t k)
{
    struct gemm_arg g = {.ta = ta, .tb = tb, .m = m, .n = n, .k = k};
    /* Small shapes sit in L2: rotate through copies of the inputs. */
    g.copies = (double)(m * k + k * n) * 4.0 < 64e6 ? GEMM_COPIES : 1;
    struct kiln_backend *be = b->be; /* own and vendor share memory on one device */
    enum kiln_status st = KILN_OK;
    for (int i = 0; i < g.copies && st == KILN_OK; i++) {
        g.a[i] = bench_alloc(be, (size_t)(m * k));
        g.b[i] = bench_alloc(be, (size_t)(k * n));
        if (!g.a[i] || !g.b[i]) st = kiln_error_context(KILN_ERR_NOMEM, "bench gemm");
        if (st == KILN_OK) st = bench_fill(be, g.a[i], (size_t)(m * k), 11 + (uint64_t)i);
        if (st == KILN_OK) st = bench_fill(be, g.b[i], (size_t)(k * n), 97 + (uint64_t)i);
    }
    g.c = st == KILN_OK ? bench_alloc(be, (size_t)(m * n)) : NULL;
    if (st == KILN_OK && !g.c) st = kiln_error_context(KILN_ERR_NOMEM, "bench gemm");
    char shape[48], name[48];
    snprintf(shape, sizeof shape, "%lldx%lldx%lld %s%s", (long long)m, (long long)n, (long long)k,
             ta ? "T" : "N", tb ? "T" : "N");
    double flop = 2.0 * (double)m * (double)n * (double)k, vendor_ms = 0, own_ms = 0;
    bool ok = true;
    if (st == KILN_OK && b->vendor != b->be) st = gemm_verify(b, &g, &ok);
    if (st == KILN_OK) st = bench_time(b, b->vendor, run_gemm, &g, &vendor_ms);
    if (st == KILN_OK) {
        snprintf(name, sizeof name, "gemm %s", b->device ? "cublas" : "openblas");
        struct kiln_bench_row *r = bench_row(b, "gemm", name, shape);
        if (r) {
            r->ms = vendor_ms;
            r->rate = flop / (vendor_ms * 1e-3) / 1e9;
            r->flops = true;
            r->pct_ceiling = 100.0;
            r->verified = true;
        }
    }
    if (st == KILN_OK && b->vendor != b->be) {
        st = bench_time(b, b->be, run_gemm, &g, &own_ms);
        struct kiln_bench_row *r = st == KILN_OK ? bench_row(b, "gemm", "gemm kiln", shape) : NULL;
        if (r) {
            r->ms = own_ms;
            r->rate = flop / (own_ms * 1e-3) / 1e9;
            r->flops = true;
            r->vs_vendor = vendor_ms / own_ms;
            r->pct_ceiling = 100.0 * r->vs_vendor;
            r->verified = ok;
        }
    }
    for (int i = 0; i < g.copies; i++) {
        if (g.a[i]) be->iface->free(be->ctx, g.a[i]);
        if (g.b[i]) be->iface->free(be->ctx, g.b[i]);
    }
    if (g.c) be->iface->free(be->ctx, g.c);
    return st;
}

/* --- memory-bound kernels ------------------------------------------------------------------ */

struct mem_arg {
    const char *what;
    int64_t n, rows, cols;
    float *x, *y, *z, *w;
    int32_t *labels;
    int64_t *idx;
    uint8_t *u8;
    float *state;
};

static enum kiln_status run_relu(struct kiln_backend *be, void *arg, int rep)
{
    struct mem_arg *a = arg;
    (void)rep;
    return be->iface->ops->act_forward(be->ctx, KILN_ACT_RELU, 0.0f, a->x, a->y, a->n);
}

static enum kiln_status run_gelu(struct kiln_backend *be, void *arg, int rep)
{
    struct mem_arg *a = arg;
    (void)rep;
    return be->iface->ops->act_forward(be->ctx, KILN_ACT_GELU, 0.0f, a->x, a->y, a->n);
}

static enum kiln_status run_xent(struct kiln_backend *be, void *arg, int rep)
{
    struct mem_arg *a = arg;
    (void)rep;
    return be->iface->ops->softmax_xent(be->ctx, a->x, a->labels, a->rows, a->cols, 0.0f, a->z,
                                        a->y, 1.0f / (float)a->rows);
}

static enum kiln_status run_adam(struct kiln_backend *be, void *arg, int rep)
{
    struct mem_arg *a = arg;
    struct kiln_optim_step h = {.kind = KILN_OPTIM_ADAM, .lr = 1e-9f, .beta1 = 0.9f,
                                .beta2 = 0.999f, .eps = 1e-8f, .t = rep + 1};
    return be->iface->ops->optimizer_step(be->ctx, &h, a->y, a->x, a->state, a->n);
}

static enum kiln_status run_gather(struct kiln_backend *be, void *arg, int rep)
{
    struct mem_arg *a = arg;
    (void)rep;
    return be->iface->ops->gather_rows(be->ctx, a->u8, KILN_ELEM_U8, a->cols, a->idx, a->rows,
                                       1.0f / 255.0f, a->y);
}

/* Checks a few outputs of act_forward(relu) against the host. */
static enum kiln_status relu_verify(struct kiln_backend *be, struct mem_arg *a, bool *ok)
{
    float xs[64], ys[64];
    enum kiln_status st = run_relu(be, a, 0);
    if (st == KILN_OK) st = be->iface->download(be->ctx, xs, a->x, sizeof xs);
    if (st == KILN_OK) st = be->iface->download(be->ctx, ys, a->y, sizeof ys);
    *ok = st == KILN_OK;
    for (int i = 0; i < 64 && *ok; i++) *ok = ys[i] == (xs[i] < 0.0f ? 0.0f : xs[i]);
    return st;
}

static enum kiln_status bench_mem(struct bench *b, const char *family, const char *name,
                                  bench_fn fn, struct mem_arg *a, double bytes, bool verified)
{
    double ms = 0;
    enum kiln_status st = bench_time(b, b->be, fn, a, &ms);
    if (st != KILN_OK) return st;
    char shape[48];
    if (a->rows) snprintf(shape, sizeof shape, "%lldx%lld", (long long)a->rows, (long long)a->cols);
    else snprintf(shape, sizeof shape, "%lld", (long long)a->n);
    struct kiln_bench_row *r = bench_row(b, family, name, shape);
    if (r) {
        r->ms = ms;
        r->rate = bytes / (ms * 1e-3) / 1e9;
        r->pct_ceiling = b->out->copy_gbs > 0 ? 100.0 * r->rate / b->out->copy_gbs : 0.0;
        r->verified = verified;
    }
    return KILN_OK;
}

static enum kiln_status bench_memory_bound(struct bench *b)
{
    struct kiln_backend *be = b->be;
    /* Well past any L2 (50 MiB on an H100) or CPU cache. */
    int64_t n = b->device ? ((int64_t)1 << 26) : ((int64_t)1 << (b->quick ? 20 : 23));
    struct mem_arg a = {.n = n};
    a.x = bench_alloc(be, (size_t)n);
    a.y = bench_alloc(be, (size_t)n);
    a.z = bench_alloc(be, (size_t)n);
    a.state = bench_alloc(be, (size_t)(2 * n));
    enum kiln_status st = a.x && a.y && a.z && a.state
                              ? KILN_OK
                              : kiln_error_context(KILN_ERR_NOMEM, "bench: %lld floats", (long long)n);
    if (st == KILN_OK) st = bench_fill(be, a.x, (size_t)n, 3);
    if (st == KILN_OK) st = bench_fill(be, a.y, (size_t)n, 4);
    if (st == KILN_OK) st = bench_fill(be, a.state, (size_t)(2 * n), 5);
    /* Adam's v must be >= 0: |fill| squared is. */
    bool ok = false;
    if (st == KILN_OK) st = relu_verify(be, &a, &ok);
    double fb = (double)n * sizeof(float);
    if (st == KILN_OK) st = bench_mem(b, "activation", "act_forward relu", run_relu, &a, 2 * fb, ok);
    if (st == KILN_OK) st = bench_mem(b, "activation", "act_forward gelu", run_gelu, &a, 2 * fb, true);
    /* Adam: reads p, g, m, v, writes p, m, v. */
    if (st == KILN_OK) st = bench_fill(be, a.state + n, (size_t)n, 6);
    if (st == KILN_OK) st = be->iface->ops->act_forward(be->ctx, KILN_ACT_RELU, 0.0f, a.state + n,
                                                        a.state + n, n);
    if (st == KILN_OK) st = bench_mem(b, "optimizer", "optimizer adam", run_adam, &a, 7 * fb, true);
    /* softmax cross-entropy, 10 classes: reads logits + labels, writes
     * gradient + loss. */
    struct mem_arg x = a;
    x.cols = 10;
    x.rows = n / 10;
    x.labels = be->iface->alloc(be->ctx, (size_t)x.rows * sizeof(int32_t));
    if (st == KILN_OK && !x.labels) st = kiln_error_context(KILN_ERR_NOMEM, "bench labels");
    if (st == KILN_OK) {
        int32_t *h = malloc((size_t)x.rows * sizeof(int32_t));
        if (!h) st = kiln_errorf(KILN_ERR_NOMEM, "bench: out of memory");
        for (int64_t r = 0; h && r < x.rows; r++) h[r] = (int32_t)(kiln_rng_hash(9, (uint64_t)r) % 10);
        if (h) st = be->iface->upload(be->ctx, x.labels, h, (size_t)x.rows * sizeof(int32_t));
        free(h);
    }
    if (st == KILN_OK)
        st = bench_mem(b, "softmax_xent", "softmax_xent fwd+bwd", run_xent, &x,
                       (double)x.rows * (2.0 * 10 * sizeof(float) + 8.0), true);
    /* gather of shuffled uint8 rows (784 pixels) into a float batch */
    struct mem_arg g = a;
    g.cols = 784;
    g.rows = b->device ? 65536 : 4096;
    g.u8 = be->iface->alloc(be->ctx, (size_t)(g.rows * g.cols));
    g.idx = be->iface->alloc(be->ctx, (size_t)g.rows * sizeof(int64_t));
    g.y = bench_alloc(be, (size_t)(g.rows * g.cols));
    if (st == KILN_OK && (!g.u8 || !g.idx || !g.y))
        st = kiln_error_context(KILN_ERR_NOMEM, "bench gather");
    if (st == KILN_OK) st = bench_fill(be, (float *)(void *)g.u8, (size_t)(g.rows * g.cols) / 4, 7);
    if (st == KILN_OK) {
        int64_t *h = malloc((size_t)g.rows * sizeof(int64_t));
        if (!h) st = kiln_errorf(KILN_ERR_NOMEM, "bench: out of memory");
        for (int64_t r = 0; h && r < g.rows; r++) h[r] = (int64_t)(kiln_rng_hash(8, (uint64_t)r) % (uint64_t)g.rows);
        if (h) st = be->iface->upload(be->ctx, g.idx, h, (size_t)g.rows * sizeof(int64_t));
        free(h);
    }
    if (st == KILN_OK)
        st = bench_mem(b, "gather", "gather_rows u8", run_gather, &g,
                       (double)(g.rows * g.cols) * 5.0, true);
    void *bufs[] = {a.x, a.y, a.z, a.state, x.labels, g.u8, g.idx, g.y};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->iface->free(be->ctx, bufs[i]);
    return st;
}

enum kiln_status kiln_bench_run(const char *device, int threads, bool quick,
                                struct kiln_bench_report *out)
{
    memset(out, 0, sizeof *out);
    struct bench b = {.out = out, .quick = quick};
    char said[256], spec[96];
    enum kiln_status st = kiln_backend_open(device, threads, &b.be, said, sizeof said);
    if (st != KILN_OK) return st;
    b.device = !b.be->iface->host_memory;
    snprintf(out->device, sizeof out->device, "%s", said);
    if (b.device) {
        /* The peer: cuBLAS on the same device, in the same process. Own
         * kernels run on a backend with kiln's SGEMM. */
        kiln_backend_free(b.be);
        b.be = NULL;
        snprintf(spec, sizeof spec, "%s,gemm=kiln", device);
        st = kiln_backend_open(spec, threads, &b.be, said, sizeof said);
        snprintf(spec, sizeof spec, "%s,gemm=cublas", device);
        if (st == KILN_OK) st = kiln_backend_open(spec, threads, &b.vendor, said, sizeof said);
        if (st != KILN_OK) goto cleanup;
    } else {
        b.vendor = b.be;
    }
    b.reps = b.device ? (quick ? 10 : 50) : (quick ? 3 : 10);
    b.warmup = b.device ? 5 : 1;
    /* Copy bandwidth first: the memory ceiling of the rest. */
    {
        size_t bytes = b.device ? (size_t)1 << 30 : (size_t)1 << (quick ? 24 : 27);
        struct copy_arg c = {.bytes = bytes};
        c.src = b.be->iface->alloc(b.be->ctx, bytes);
        c.dst = b.be->iface->alloc(b.be->ctx, bytes);
        double ms = 0;
        if (!c.src || !c.dst) st = kiln_error_context(KILN_ERR_NOMEM, "bench copy");
        if (st == KILN_OK) st = bench_fill(b.be, c.src, bytes / sizeof(float), 1);
        if (st == KILN_OK) st = bench_fill(b.be, c.dst, bytes / sizeof(float), 2);
        if (st == KILN_OK) st = bench_time(&b, b.be, run_copy, &c, &ms);
        if (c.src) b.be->iface->free(b.be->ctx, c.src);
        if (c.dst) b.be->iface->free(b.be->ctx, c.dst);
        if (st != KILN_OK) goto cleanup;
        out->copy_gbs = 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
        char shape[48];
        snprintf(shape, sizeof shape, "%zu MiB", bytes >> 20);
        struct kiln_bench_row *r = bench_row(&b, "copy", "copy (read + write)", shape);
        r->ms = ms;
        r->rate = out->copy_gbs;
        r->pct_ceiling = 100.0;
        r->verified = true;
    }
    /* GEMM: a big square one, and the Fashion-MNIST MLP's layer shapes at
     * batch 128 (forward NT, weight gradient TN, input gradient NN). */
    int64_t big = b.device ? 4096 : (quick ? 256 : 1024);
    st = bench_gemm(&b, false, false, big, big, big);
    static const int64_t mlp[][5] = {
        {0, 1, 128, 256, 784}, {0, 1, 128, 128, 256}, {0, 1, 128, 10, 128},
        {1, 0, 256, 784, 128}, {0, 0, 128, 256, 128},
    };
    for (size_t i = 0; i < sizeof mlp / sizeof mlp[0] && st == KILN_OK && !(quick && i > 0); i++)
        st = bench_gemm(&b, mlp[i][0], mlp[i][1], mlp[i][2], mlp[i][3], mlp[i][4]);
    if (st == KILN_OK) st = bench_memory_bound(&b);
cleanup:
    if (b.vendor && b.vendor != b.be) kiln_backend_free(b.vendor);
    kiln_backend_free(b.be);
    return st;
}
