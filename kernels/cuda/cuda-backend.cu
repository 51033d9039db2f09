// kernels/cuda/cuda-backend.cu: the CUDA backend's context, memory
// functions, graphs, timer and op table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda-backend.h"
#include "cuda-device.h"

enum kiln_status cuda_status(const char *op, cudaError_t e)
{
    return kiln_errorf(e == cudaErrorMemoryAllocation ? KILN_ERR_NOMEM : KILN_ERR_BACKEND,
                       "%s: CUDA error %s: %s", op, cudaGetErrorName(e), cudaGetErrorString(e));
}

enum kiln_status cublas_status(const struct cuda_blas_api *api, const char *op,
                               cublasStatus_t s)
{
    return kiln_errorf(s == CUBLAS_STATUS_ALLOC_FAILED ? KILN_ERR_NOMEM : KILN_ERR_BACKEND,
                       "%s: cuBLAS error %s: %s", op, api->status_name(s),
                       api->status_string(s));
}

enum kiln_status cuda_wait(struct cuda_ctx *c, const char *op)
{
    if (c->in_capture)
        return kiln_errorf(KILN_ERR_INTERNAL, "%s: waits for the device inside a graph capture", op);
    CUDA_TRY(op, cudaMemcpyAsync(c->host_err, c->dev_err, sizeof *c->host_err,
                                 cudaMemcpyDeviceToHost, c->stream));
    CUDA_TRY(op, cudaStreamSynchronize(c->stream));
    if (c->host_err->code == CUDA_DEV_ERR_NONE) return KILN_OK;
    struct cuda_dev_error e = *c->host_err;
    // Cleared so that the next step starts clean; the report is this one.
    CUDA_TRY(op, cudaMemsetAsync(c->dev_err, 0, sizeof *c->dev_err, c->stream));
    CUDA_TRY(op, cudaStreamSynchronize(c->stream));
    return kiln_errorf(KILN_ERR_FORMAT, "softmax_xent: label %d of row %lld is outside [0, %lld)",
                       e.label, e.row, e.cols);
}

// --- memory ------------------------------------------------------------------

static void *cuda_alloc(void *ctx, size_t bytes)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    void *p = NULL;
    size_t rounded = (bytes + 255) & ~(size_t)255;
    if (rounded == 0) rounded = 256;
    if (c->n_allocs == c->cap_allocs) {
        int cap = c->cap_allocs ? 2 * c->cap_allocs : 64;
        void *grown = realloc(c->allocs, (size_t)cap * sizeof *c->allocs);
        if (!grown) {
            kiln_errorf(KILN_ERR_NOMEM, "cuda: out of host memory for the allocation table");
            return NULL;
        }
        c->allocs = static_cast<struct cuda_alloc_rec *>(grown);
        c->cap_allocs = cap;
    }
    cudaError_t e = cudaMalloc(&p, rounded);
    if (e != cudaSuccess) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        cudaGetLastError();
        if (e == cudaErrorMemoryAllocation)
            kiln_errorf(KILN_ERR_NOMEM,
                        "cuda:%d: out of device memory: asked for %.1f MiB, %.1f MiB free of "
                        "%.1f MiB",
                        c->device, bytes / 1048576.0, free_b / 1048576.0, total_b / 1048576.0);
        else
            cuda_status("cuda alloc", e);
        return NULL;
    }
    c->allocs[c->n_allocs++] = {p, rounded};
    c->bytes_now += rounded;
    if (c->bytes_now > c->bytes_peak) c->bytes_peak = c->bytes_now;
    return p;
}

static void cuda_free_mem(void *ctx, void *ptr)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (!ptr) return;
    for (int i = 0; i < c->n_allocs; i++)
        if (c->allocs[i].ptr == ptr) {
            c->bytes_now -= c->allocs[i].bytes;
            c->allocs[i] = c->allocs[--c->n_allocs];
            break;
        }
    cudaFree(ptr);
}

static size_t cuda_mem_peak(void *ctx) { return CUDA_CTX(ctx)->bytes_peak; }

static enum kiln_status cuda_upload(void *ctx, void *dst, const void *src, size_t bytes)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (!bytes) return KILN_OK;
    // Ordered after queued work; the copy from pageable memory returns once
    // the source has been read, so the caller may reuse it.
    CUDA_TRY("upload", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    CUDA_TRY("upload", cudaStreamSynchronize(c->stream));
    return KILN_OK;
}

static enum kiln_status cuda_download(void *ctx, void *dst, const void *src, size_t bytes)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (bytes) CUDA_TRY("download", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    return cuda_wait(c, "download");
}

static enum kiln_status cuda_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (bytes) CUDA_TRY("copy", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
    return KILN_OK;
}

// Pinned, portable: the reader thread fills it and the compute thread
// uploads it, and an asynchronous copy from pageable memory would not be.
static void *cuda_host_alloc(void *ctx, size_t bytes)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    void *p = NULL;
    cudaError_t e = cudaHostAlloc(&p, bytes ? bytes : 64, cudaHostAllocPortable);
    if (e != cudaSuccess) {
        cudaGetLastError();
        if (e == cudaErrorMemoryAllocation)
            kiln_errorf(KILN_ERR_NOMEM,
                        "cuda:%d: out of page-locked host memory: asked for %.1f MiB", c->device,
                        bytes / 1048576.0);
        else
            cuda_status("cuda host_alloc", e);
        return NULL;
    }
    return p;
}

static void cuda_host_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr) cudaFreeHost(ptr);
}

static enum kiln_status cuda_upload_async(void *ctx, void *dst, const void *src, size_t bytes,
                                          int tag)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (tag < 0 || tag >= KILN_UPLOAD_TAGS)
        return kiln_errorf(KILN_ERR_INTERNAL, "upload_async: tag %d outside [0, %d)", tag,
                           KILN_UPLOAD_TAGS);
    if (bytes)
        CUDA_TRY("upload_async",
                 cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->copy_stream));
    CUDA_TRY("upload_async", cudaEventRecord(c->up_done[tag], c->copy_stream));
    return KILN_OK;
}

static enum kiln_status cuda_upload_wait(void *ctx, int tag)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (tag < 0 || tag >= KILN_UPLOAD_TAGS)
        return kiln_errorf(KILN_ERR_INTERNAL, "upload_wait: tag %d outside [0, %d)", tag,
                           KILN_UPLOAD_TAGS);
    if (c->in_capture)
        return kiln_errorf(KILN_ERR_INTERNAL, "upload_wait: inside a graph capture");
    CUDA_TRY("upload_wait", cudaStreamWaitEvent(c->stream, c->up_done[tag], 0));
    return KILN_OK;
}

static enum kiln_status cuda_sync(void *ctx) { return cuda_wait(CUDA_CTX(ctx), "sync"); }

static enum kiln_status cuda_mem_info(void *ctx, size_t *free_b, size_t *total_b)
{
    (void)ctx;
    CUDA_TRY("mem_info", cudaMemGetInfo(free_b, total_b));
    return KILN_OK;
}

// --- graphs ------------------------------------------------------------------

static enum kiln_status cuda_capture_begin(void *ctx)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    // Thread-local mode: another thread's unrelated CUDA calls do not break
    // the capture, and a forbidden call on this thread fails loudly.
    CUDA_TRY("capture_begin", cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    c->in_capture = true;
    return KILN_OK;
}

static enum kiln_status cuda_capture_end(void *ctx, void **graph)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    *graph = NULL;
    cudaGraph_t g = NULL;
    cudaGraphExec_t exec = NULL;
    c->in_capture = false;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (e != cudaSuccess) {
        // A call that broke the capture left its error as the thread's last
        // error: clear it, or the first launch of the trainer's fallback
        // (the same ops run directly) would report it as its own.
        cudaGetLastError();
        if (g) cudaGraphDestroy(g);
        return cuda_status("capture_end", e);
    }
    e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return cuda_status("capture_end (instantiate)", e);
    }
    *graph = exec;
    return KILN_OK;
}

static enum kiln_status cuda_graph_launch(void *ctx, void *graph)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    CUDA_TRY("graph_launch", cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph), c->stream));
    return KILN_OK;
}

static void cuda_graph_free(void *ctx, void *graph)
{
    (void)ctx;
    if (graph) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph));
}

// --- timer (benchmarks) -------------------------------------------------------

static enum kiln_status cuda_timer_start(void *ctx)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    CUDA_TRY("timer", cudaEventRecord(c->ev_start, c->stream));
    return KILN_OK;
}

static enum kiln_status cuda_timer_stop(void *ctx, double *ms)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    float f = 0.0f;
    CUDA_TRY("timer", cudaEventRecord(c->ev_stop, c->stream));
    CUDA_TRY("timer", cudaEventSynchronize(c->ev_stop));
    CUDA_TRY("timer", cudaEventElapsedTime(&f, c->ev_start, c->ev_stop));
    *ms = f;
    return KILN_OK;
}

static const struct kiln_timer_i cuda_timer = {cuda_timer_start, cuda_timer_stop};

// --- lifetime ------------------------------------------------------------------

static void cuda_destroy(void *ctx)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (!c) return;
    cudaSetDevice(c->device);
    if (c->stream) cudaStreamSynchronize(c->stream);
    if (c->copy_stream) cudaStreamSynchronize(c->copy_stream);
    if (c->blas) c->blas_api->destroy(c->blas);
    cudaFree(c->blas_ws);
    cudaFree(c->partial);
    cudaFree(c->partial_count);
    cudaFree(c->clip_scale);
    cudaFree(c->dev_err);
    cudaFreeHost(c->host_result);
    cudaFreeHost(c->host_count);
    cudaFreeHost(c->host_err);
    if (c->ev_start) cudaEventDestroy(c->ev_start);
    if (c->ev_stop) cudaEventDestroy(c->ev_stop);
    for (int i = 0; i < KILN_UPLOAD_TAGS; i++)
        if (c->up_done[i]) cudaEventDestroy(c->up_done[i]);
    if (c->copy_stream) cudaStreamDestroy(c->copy_stream);
    if (c->stream) cudaStreamDestroy(c->stream);
    // Planned buffers the caller forgot are the caller's leak, but the
    // device memory goes back with the context either way.
    for (int i = 0; i < c->n_allocs; i++) cudaFree(c->allocs[i].ptr);
    free(c->allocs);
    cudaGetLastError();
    free(c);
}

static const struct kiln_ops cuda_ops = {
    .gemm = cuda_gemm,
    .bias_act = cuda_bias_act,
    .act_forward = cuda_act_forward,
    .act_backward = cuda_act_backward,
    .bias_grad = cuda_bias_grad,
    .softmax_forward = cuda_softmax_forward,
    .softmax_backward = cuda_softmax_backward,
    .dropout_forward = cuda_dropout_forward,
    .dropout_backward = cuda_dropout_backward,
    .softmax_xent = cuda_softmax_xent,
    .bce_logits = cuda_bce_logits,
    .mse = cuda_mse,
    .sum_squares = cuda_sum_squares,
    .count_nonfinite = cuda_count_nonfinite,
    .scale = cuda_scale,
    .optimizer_step = cuda_optimizer_step,
    .gather_rows = cuda_gather_rows,
    .dense_forward = cuda_dense_forward,
    .dropout_keyed = cuda_dropout_keyed,
    .step_begin = cuda_step_begin,
    .step_check = cuda_step_check,
    .confusion = cuda_confusion,
};

static const struct kiln_backend_i cuda_iface = {
    .name = "cuda",
    .host_memory = false,
    .alloc = cuda_alloc,
    .free = cuda_free_mem,
    .upload = cuda_upload,
    .download = cuda_download,
    .sync = cuda_sync,
    .destroy = cuda_destroy,
    .ops = &cuda_ops,
    .copy = cuda_copy,
    .mem_info = cuda_mem_info,
    .mem_peak = cuda_mem_peak,
    .capture_begin = cuda_capture_begin,
    .capture_end = cuda_capture_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    .timer = &cuda_timer,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .upload_async = cuda_upload_async,
    .upload_wait = cuda_upload_wait,
};

#define CREATE_TRY(what, call)                                                 \
    do {                                                                       \
        cudaError_t e_ = (call);                                               \
        if (e_ != cudaSuccess) {                                               \
            st = cuda_status(what, e_);                                        \
            goto cleanup;                                                      \
        }                                                                      \
    } while (0)

extern "C" enum kiln_status kiln_cuda_backend_create(int device, enum kiln_gemm_impl gemm,
                                                     enum kiln_math_mode math,
                                                     struct kiln_backend **out)
{
    *out = NULL;
    enum kiln_status st = KILN_OK;
    cublasStatus_t bs;
    cudaDeviceProp prop;
    int n = kiln_cuda_device_count();
    struct kiln_backend *be = static_cast<struct kiln_backend *>(calloc(1, sizeof *be));
    struct cuda_ctx *c = static_cast<struct cuda_ctx *>(calloc(1, sizeof *c));
    if (!be || !c) {
        free(be);
        free(c);
        return kiln_errorf(KILN_ERR_NOMEM, "cuda backend: out of memory");
    }
    c->device = device;
    if (device < 0 || device >= n) {
        st = kiln_errorf(KILN_ERR_UNSUPPORTED, "device cuda:%d: %d CUDA device%s answered", device,
                         n, n == 1 ? "" : "s");
        goto cleanup;
    }
    // cuBLAS first: a missing library fails before any device memory is
    // taken. kiln's own SGEMM needs none of it.
    if (gemm != KILN_GEMM_KILN) {
        st = cuda_blas_get(&c->blas_api);
        if (st != KILN_OK) goto cleanup;
    }
    CREATE_TRY("cuda backend (set device)", cudaSetDevice(device));
    CREATE_TRY("cuda backend (device properties)", cudaGetDeviceProperties(&prop, device));
    c->sm_count = prop.multiProcessorCount;
    c->l2_bytes = (size_t)prop.l2CacheSize;
    CREATE_TRY("cuda backend (stream)", cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CREATE_TRY("cuda backend (events)", cudaEventCreate(&c->ev_start));
    CREATE_TRY("cuda backend (events)", cudaEventCreate(&c->ev_stop));
    CREATE_TRY("cuda backend (copy stream)",
               cudaStreamCreateWithFlags(&c->copy_stream, cudaStreamNonBlocking));
    for (int i = 0; i < KILN_UPLOAD_TAGS; i++)
        CREATE_TRY("cuda backend (upload events)",
                   cudaEventCreateWithFlags(&c->up_done[i], cudaEventDisableTiming));
    CREATE_TRY("cuda backend (scratch)", cudaMalloc(&c->partial, CUDA_SUM_MAX_BLOCKS * sizeof(double)));
    CREATE_TRY("cuda backend (scratch)",
               cudaMalloc(&c->partial_count, CUDA_SUM_MAX_BLOCKS * sizeof(long long)));
    CREATE_TRY("cuda backend (scratch)", cudaMalloc(&c->clip_scale, sizeof(float)));
    CREATE_TRY("cuda backend (scratch)", cudaMalloc(&c->dev_err, sizeof *c->dev_err));
    // On our stream, then waited for: the stream is non-blocking, so a plain
    // cudaMemset (legacy stream) would not be ordered before its kernels.
    CREATE_TRY("cuda backend (scratch)",
               cudaMemsetAsync(c->dev_err, 0, sizeof *c->dev_err, c->stream));
    CREATE_TRY("cuda backend (scratch)", cudaStreamSynchronize(c->stream));
    CREATE_TRY("cuda backend (pinned)", cudaMallocHost(&c->host_result, sizeof(double)));
    CREATE_TRY("cuda backend (pinned)", cudaMallocHost(&c->host_count, sizeof(long long)));
    CREATE_TRY("cuda backend (pinned)", cudaMallocHost(&c->host_err, sizeof *c->host_err));
    // AUTO: cuBLAS until kiln's own SGEMM has been measured ahead of it on
    // the target GPU (benchmarks/gpu_check.sh prints the ratio).
    c->gemm = gemm == KILN_GEMM_KILN ? KILN_GEMM_KILN : KILN_GEMM_VENDOR;
    c->math = math;
    if (c->gemm == KILN_GEMM_VENDOR) {
        bs = c->blas_api->create(&c->blas);
        if (bs != CUBLAS_STATUS_SUCCESS) {
            st = cublas_status(c->blas_api, "cuda backend (cuBLAS handle)", bs);
            goto cleanup;
        }
        // A workspace of our own: cuBLAS then never allocates (none inside a
        // captured graph) and picks the same algorithms run after run.
        c->blas_ws_bytes = 32u << 20;
        CREATE_TRY("cuda backend (cuBLAS workspace)", cudaMalloc(&c->blas_ws, c->blas_ws_bytes));
        bs = c->blas_api->set_stream(c->blas, c->stream);
        if (bs == CUBLAS_STATUS_SUCCESS)
            bs = c->blas_api->set_workspace(c->blas, c->blas_ws, c->blas_ws_bytes);
        if (bs == CUBLAS_STATUS_SUCCESS)
            bs = c->blas_api->set_math_mode(c->blas, math == KILN_MATH_TF32
                                                         ? CUBLAS_TF32_TENSOR_OP_MATH
                                                         : CUBLAS_DEFAULT_MATH);
        if (bs != CUBLAS_STATUS_SUCCESS) {
            st = cublas_status(c->blas_api, "cuda backend (cuBLAS setup)", bs);
            goto cleanup;
        }
    }
    be->iface = &cuda_iface;
    be->ctx = c;
    be->threads = 1;
cleanup:
    if (st != KILN_OK) {
        cuda_destroy(c);
        free(be);
        return st;
    }
    *out = be;
    return KILN_OK;
}

extern "C" const char *kiln_cuda_backend_gemm_name(const struct kiln_backend *be)
{
    const struct cuda_ctx *c = static_cast<const struct cuda_ctx *>(be->ctx);
    return c->gemm == KILN_GEMM_KILN ? "kiln" : "cublas";
}
