/* kernels/cpu/cpu-backend.c: the CPU backend's memory functions and op table. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "cpu-backend.h"

static void *cpu_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = rounded >= bytes ? aligned_alloc(64, rounded ? rounded : 64) : NULL;
    if (!p)
        kiln_errorf(KILN_ERR_NOMEM, "cpu: out of memory allocating %zu bytes", bytes);
    return p;
}

static enum kiln_status cpu_timer_start(void *ctx)
{
    struct cpu_ctx *c = ctx;
    clock_gettime(CLOCK_MONOTONIC, &c->timer_start);
    return KILN_OK;
}

static enum kiln_status cpu_timer_stop(void *ctx, double *ms)
{
    const struct cpu_ctx *c = ctx;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    *ms = (double)(now.tv_sec - c->timer_start.tv_sec) * 1e3 +
          (double)(now.tv_nsec - c->timer_start.tv_nsec) * 1e-6;
    return KILN_OK;
}

static const struct kiln_timer_i cpu_timer = {.start = cpu_timer_start, .stop = cpu_timer_stop};

static void cpu_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static enum kiln_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    (void)ctx;
    if (bytes) memcpy(dst, src, bytes);
    return KILN_OK;
}

static enum kiln_status cpu_sync(void *ctx)
{
    (void)ctx;
    return KILN_OK;
}

static void cpu_destroy(void *ctx) { free(ctx); }

static const struct kiln_ops cpu_ops = {
    .gemm = cpu_gemm,
    .bias_act = cpu_bias_act,
    .act_forward = cpu_act_forward,
    .act_backward = cpu_act_backward,
    .bias_grad = cpu_bias_grad,
    .softmax_forward = cpu_softmax_forward,
    .softmax_backward = cpu_softmax_backward,
    .dropout_forward = cpu_dropout_forward,
    .dropout_backward = cpu_dropout_backward,
    .softmax_xent = cpu_softmax_xent,
    .bce_logits = cpu_bce_logits,
    .mse = cpu_mse,
    .sum_squares = cpu_sum_squares,
    .count_nonfinite = cpu_count_nonfinite,
    .scale = cpu_scale,
    .optimizer_step = cpu_optimizer_step,
    .gather_rows = cpu_gather_rows,
    .dropout_keyed = cpu_dropout_keyed,
    .step_begin = cpu_step_begin,
    .step_check = cpu_step_check,
    .confusion = cpu_confusion,
};

static const struct kiln_backend_i cpu_iface = {
    .name = "cpu",
    .host_memory = true,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .sync = cpu_sync,
    .destroy = cpu_destroy,
    .ops = &cpu_ops,
    .copy = cpu_copy,
    .timer = &cpu_timer,
};

enum kiln_status kiln_cpu_backend_create(int threads, struct kiln_backend **out)
{
    *out = NULL;
    if (threads <= 0) threads = omp_get_num_procs();
    struct kiln_backend *be = calloc(1, sizeof *be);
    struct cpu_ctx *ctx = calloc(1, sizeof *ctx);
    if (!be || !ctx) {
        free(be);
        free(ctx);
        return kiln_errorf(KILN_ERR_NOMEM, "cpu backend: out of memory");
    }
    ctx->threads = threads;
    /* GEMM threads follow --threads too, so a run's thread count fixes every
     * reduction order and results are reproducible. */
    openblas_set_num_threads(threads);
    be->iface = &cpu_iface;
    be->ctx = ctx;
    be->threads = threads;
    *out = be;
    return KILN_OK;
}

void kiln_backend_free(struct kiln_backend *be)
{
    if (!be) return;
    if (be->iface && be->iface->destroy) be->iface->destroy(be->ctx);
    free(be);
}
