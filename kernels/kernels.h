/* kernels/kernels.h: the backend contract. Every backend (cpu, cuda) fills
 * one struct kiln_backend_i with its memory functions and its op table.
 *
 *   struct kiln_backend *be;
 *   kiln_cpu_backend_create(4, &be);                     // 4 threads
 *   float *w = be->iface->alloc(be->ctx, n * sizeof(float));
 *   be->iface->ops->act_forward(be->ctx, KILN_ACT_RELU, 0, x, y, n);
 *   kiln_backend_free(be);
 *
 * Contract for every op:
 * - pointers are memory of that backend (host memory for cpu, device memory
 *   for cuda), row-major, float32 unless named otherwise;
 * - ops never allocate; scratch comes from the caller's plan;
 * - results are deterministic for a given backend and thread count:
 *   reductions that feed weights (bias_grad, sum_squares) split work by
 *   output element or in fixed-size blocks summed in a fixed order;
 * - an op returns KILN_OK or a status with kiln_errorf naming the op;
 * - ops are queued, not finished, when they return on a device backend:
 *   errors a kernel can only find while it runs (a label out of range) are
 *   reported by the next sync or download.
 * Kernels know nothing of models, files or the CLI.
 */
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/status.h"

enum kiln_act {
    KILN_ACT_NONE,
    KILN_ACT_RELU,
    KILN_ACT_LEAKY_RELU, /* param: negative slope */
    KILN_ACT_TANH,
    KILN_ACT_SIGMOID,
    KILN_ACT_GELU, /* exact (erf) form, as torch.nn.GELU() */
};

/* Whether act's derivative can be computed from its output alone, which lets
 * the forward pass fuse it into the GEMM epilogue and drop the input. */
static inline bool kiln_act_grad_from_output(enum kiln_act act)
{
    return act != KILN_ACT_GELU;
}

enum kiln_optim_kind { KILN_OPTIM_SGD, KILN_OPTIM_ADAM, KILN_OPTIM_ADAMW };

/* One optimizer step's hyperparameters, with PyTorch's semantics
 * (torch.optim.SGD/Adam/AdamW, dampening 0, amsgrad off). */
struct kiln_optim_step {
    enum kiln_optim_kind kind;
    float lr;
    float weight_decay;
    float momentum; /* SGD; 0 = plain SGD */
    bool nesterov;  /* SGD */
    float beta1, beta2, eps; /* Adam/AdamW */
    int64_t t; /* 1-based step number, for Adam's bias correction */
    /* Backend memory or NULL. When set, lr and Adam's bias corrections are
     * read from ctl->now when the op runs (t above is then unused), and the
     * update is skipped once ctl->first_bad >= 0: a captured training step
     * replays with each step's values and never updates past a NaN. */
    const struct kiln_step_ctl *ctl;
};

/* Per-step values of a training step, computed ahead by the trainer for a
 * whole epoch and read from backend memory by the step when it runs, so
 * that one captured step (a CUDA graph) replays with each step's values and
 * the host waits for the device once per log interval, not once per step. */
struct kiln_step_vars {
    int64_t step;          /* 0-based global step */
    uint64_t dropout_seed; /* the step's dropout key */
    float lr;
    float bc1, bc2_sqrt;   /* Adam: 1 - beta1^t and sqrt(1 - beta2^t), as computed in float */
    int32_t bad;           /* out: 0, KILN_STEP_BAD_LOSS or KILN_STEP_BAD_GRAD */
    double loss;           /* out: the batch's mean loss */
};

enum { KILN_STEP_BAD_LOSS = 1, KILN_STEP_BAD_GRAD = 2 };

/* The running step's control block (backend memory). step_begin copies
 * vars[cursor] into now; step_check writes the outputs back to
 * vars[cursor] and advances cursor. */
struct kiln_step_ctl {
    int64_t cursor;        /* index into the epoch's kiln_step_vars */
    int64_t first_bad;     /* -1, or the cursor of the first bad step (sticky) */
    struct kiln_step_vars now;
};

/* Floats of optimizer state per parameter: SGD with momentum 1, Adam 2. */
static inline int kiln_optim_state_per_param(enum kiln_optim_kind kind, float momentum)
{
    return kind == KILN_OPTIM_SGD ? (momentum != 0.0f ? 1 : 0) : 2;
}

enum kiln_elem { KILN_ELEM_U8, KILN_ELEM_I32, KILN_ELEM_F32 };

/* GEMM: which implementation, and whether TF32 tensor cores may be used.
 * The CPU backend has one (CBLAS, FP32) and ignores both. */
enum kiln_gemm_impl { KILN_GEMM_AUTO, KILN_GEMM_VENDOR, KILN_GEMM_KILN };
enum kiln_math_mode { KILN_MATH_FP32, KILN_MATH_TF32 };

struct kiln_ops {
    /* c[m,n] = alpha * op(a) * op(b) + beta * c, row-major, op = transpose
     * when trans_* is set (a is [k,m] then, b is [n,k]). */
    enum kiln_status (*gemm)(void *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n,
                             int64_t k, float alpha, const float *a, int64_t lda,
                             const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
    /* y[r,c] = act(y[r,c] + bias[c]) in place; bias may be NULL. The GEMM
     * epilogue of a dense layer. */
    enum kiln_status (*bias_act)(void *ctx, float *y, const float *bias, int64_t rows,
                                 int64_t cols, enum kiln_act act, float param);
    /* y = act(x) elementwise; x == y allowed. */
    enum kiln_status (*act_forward)(void *ctx, enum kiln_act act, float param, const float *x,
                                    float *y, int64_t n);
    /* dx = dy * act'(x); x may be NULL when kiln_act_grad_from_output(act),
     * in which case y (the forward output) is used. dx == dy allowed. */
    enum kiln_status (*act_backward)(void *ctx, enum kiln_act act, float param, const float *x,
                                     const float *y, const float *dy, float *dx, int64_t n);
    /* db[c] = sum over rows of dy[r,c] (overwrites db). */
    enum kiln_status (*bias_grad)(void *ctx, const float *dy, int64_t rows, int64_t cols,
                                  float *db);
    /* Row-wise softmax, numerically stable. x == y allowed. */
    enum kiln_status (*softmax_forward)(void *ctx, const float *x, float *y, int64_t rows,
                                        int64_t cols);
    /* dx = y * (dy - sum(dy * y)) per row. */
    enum kiln_status (*softmax_backward)(void *ctx, const float *y, const float *dy, float *dx,
                                         int64_t rows, int64_t cols);
    /* Inverted dropout with keep mask drawn from a counter-based RNG:
     * element i is kept iff kiln_rng_uniform(seed, offset + i) >= p, so the
     * result does not depend on how the work is split. backward regenerates
     * the same mask. */
    enum kiln_status (*dropout_forward)(void *ctx, const float *x, float *y, int64_t n, float p,
                                        uint64_t seed, uint64_t offset);
    enum kiln_status (*dropout_backward)(void *ctx, const float *dy, float *dx, int64_t n,
                                         float p, uint64_t seed, uint64_t offset);
    /* Fused softmax cross-entropy with label smoothing, in one pass per row:
     * loss_rows[r] = loss of row r; dlogits (may be NULL) =
     * grad_scale * (softmax - smoothed one-hot). A label outside [0, cols)
     * is KILN_ERR_FORMAT. */
    enum kiln_status (*softmax_xent)(void *ctx, const float *logits, const int32_t *labels,
                                     int64_t rows, int64_t cols, float smoothing,
                                     float *loss_rows, float *dlogits, float grad_scale);
    /* Binary cross-entropy with logits, targets in [0,1], loss_rows[r] =
     * mean over the row's cols; dlogits = grad_scale * (sigmoid - t) / cols. */
    enum kiln_status (*bce_logits)(void *ctx, const float *logits, const float *targets,
                                   int64_t rows, int64_t cols, float *loss_rows,
                                   float *dlogits, float grad_scale);
    /* Mean squared error, loss_rows[r] = mean over cols of (p - t)^2;
     * dpred = grad_scale * 2 (p - t) / cols. */
    enum kiln_status (*mse)(void *ctx, const float *pred, const float *targets, int64_t rows,
                            int64_t cols, float *loss_rows, float *dpred, float grad_scale);
    /* *out = sum x[i]^2 in double, summed in fixed blocks in a fixed order. */
    enum kiln_status (*sum_squares)(void *ctx, const float *x, int64_t n, double *out);
    /* *out = number of NaN or Inf values in x. */
    enum kiln_status (*count_nonfinite)(void *ctx, const float *x, int64_t n, int64_t *out);
    /* x *= s. */
    enum kiln_status (*scale)(void *ctx, float *x, int64_t n, float s);
    /* One update of every parameter in the flat buffer (state holds
     * kiln_optim_state_per_param floats per parameter, laid out as
     * [slot0[n], slot1[n]]). */
    enum kiln_status (*optimizer_step)(void *ctx, const struct kiln_optim_step *h,
                                       float *params, const float *grads, float *state,
                                       int64_t n);
    /* dst[r, :] = scale * float(src[idx[r], :]) for rows of row_size
     * elements of type elem (U8 or F32). I32 rows (class labels) are copied
     * bit for bit and scale is ignored: dst then holds int32 values. */
    enum kiln_status (*gather_rows)(void *ctx, const void *src, enum kiln_elem elem,
                                    int64_t row_size, const int64_t *idx, int64_t rows,
                                    float scale, float *dst);

    /* --- ops a training step runs without the host reading anything back --- */

    /* Optional (NULL: gemm then bias_act): the dense forward in one pass,
     * y[m,n] = act(x[m,k] w[n,k]^T + bias[n]), bias may be NULL. */
    enum kiln_status (*dense_forward)(void *ctx, int64_t m, int64_t n, int64_t k, const float *x,
                                      const float *w, const float *bias, enum kiln_act act,
                                      float param, float *y);
    /* dropout_forward with the seed read from backend memory (*seed) when
     * the op runs; backward is the same op applied to dy. */
    enum kiln_status (*dropout_keyed)(void *ctx, const float *x, float *y, int64_t n, float p,
                                      const uint64_t *seed, uint64_t offset);
    /* ctl->now = vars[ctl->cursor]; idx[r] = order[ctl->cursor * batch + r]
     * for r < rows. All pointers are backend memory. */
    enum kiln_status (*step_begin)(void *ctx, struct kiln_step_ctl *ctl,
                                   const struct kiln_step_vars *vars, const int64_t *order,
                                   int64_t batch, int64_t rows, int64_t *idx);
    /* The step's guard and clipping, with the trainer's arithmetic: loss =
     * mean of loss_rows (double, in row order); a non-finite loss marks the
     * step KILN_STEP_BAD_LOSS, else any NaN/Inf in grads KILN_STEP_BAD_GRAD,
     * else when clip_norm > 0 and the global norm (sum_squares' blocks) is
     * above it grads are scaled by clip_norm / (norm + 1e-6). Writes loss and
     * bad to vars[ctl->cursor], records the first bad step in ctl, and
     * advances ctl->cursor. */
    enum kiln_status (*step_check)(void *ctx, struct kiln_step_ctl *ctl,
                                   struct kiln_step_vars *vars, const float *loss_rows,
                                   int64_t rows, float *grads, int64_t n, float clip_norm);
    /* counts[labels[r] * cols + argmax(logits[r, :])] += 1 for every row
     * (first maximum wins; a NaN never compares greater, so a NaN in column
     * 0 keeps column 0). counts is int64
     * [cols * cols] in backend memory; a label outside [0, cols) is skipped. */
    enum kiln_status (*confusion)(void *ctx, const float *logits, const int32_t *labels,
                                  int64_t rows, int64_t cols, int64_t *counts);
};

/* An optional timer for benchmarks: start/stop bracket queued work; stop
 * waits for it and returns the milliseconds between the two (device events
 * on CUDA, wall clock on the CPU). */
struct kiln_timer_i {
    enum kiln_status (*start)(void *ctx);
    enum kiln_status (*stop)(void *ctx, double *ms);
};

struct kiln_backend;

/* The memory functions and op table of one backend. */
struct kiln_backend_i {
    const char *name;
    /* The backend's memory is host memory: callers may hand it host
     * pointers directly (the CPU backend trains on the dataset in place). */
    bool host_memory;
    /* NULL when out of memory, with a kiln_errorf message saying how much
     * was asked (and, on a device, how much was free). Aligned to 64 bytes. */
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *ptr);
    enum kiln_status (*upload)(void *ctx, void *dst, const void *host_src, size_t bytes);
    enum kiln_status (*download)(void *ctx, void *host_dst, const void *src, size_t bytes);
    /* Waits for all queued work. */
    enum kiln_status (*sync)(void *ctx);
    void (*destroy)(void *ctx);
    const struct kiln_ops *ops;
    /* --- optional members (NULL where a backend has no use for them) --- */
    /* Copies between two buffers of this backend (device to device). */
    enum kiln_status (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
    /* Free and total memory of the device. */
    enum kiln_status (*mem_info)(void *ctx, size_t *free_bytes, size_t *total_bytes);
    /* Peak bytes allocated through alloc since the backend was created. */
    size_t (*mem_peak)(void *ctx);
    /* Records the ops queued between capture_begin and capture_end into a
     * replayable graph (a CUDA graph), without running them; the ops must
     * not read anything back to the host in between. */
    enum kiln_status (*capture_begin)(void *ctx);
    enum kiln_status (*capture_end)(void *ctx, void **graph);
    enum kiln_status (*graph_launch)(void *ctx, void *graph);
    void (*graph_free)(void *ctx, void *graph);
    const struct kiln_timer_i *timer;
    /* Page-locked host memory, readable by asynchronous uploads from any
     * thread (CUDA: cudaHostAlloc, portable). NULL with a kiln_errorf
     * message when out of memory. Callers use backend_host_alloc/free
     * (engine/core/backend-mem.h), which fall back to 64-byte-aligned
     * malloc/free on a backend without them. */
    void *(*host_alloc)(void *ctx, size_t bytes);
    void (*host_free)(void *ctx, void *ptr);
    /* Queues a copy of bytes from host_src (host_alloc memory) to dst on a
     * second, copy stream and returns at once; tag (0 <= tag <
     * KILN_UPLOAD_TAGS) names the copy for upload_wait. host_src must stay
     * unchanged, and dst unread, until work ordered after upload_wait(tag)
     * has finished (a later sync or download says so). Both members or
     * neither; without them backend_upload_async is a plain upload. */
    enum kiln_status (*upload_async)(void *ctx, void *dst, const void *host_src, size_t bytes,
                                     int tag);
    /* Orders every op queued after this call after tag's last upload_async,
     * without blocking the host (CUDA: cudaStreamWaitEvent). A tag with no
     * upload yet is a no-op. */
    enum kiln_status (*upload_wait)(void *ctx, int tag);
};

/* Tags of upload_async that may be in flight at once (double buffering). */
#define KILN_UPLOAD_TAGS 2

struct kiln_backend {
    const struct kiln_backend_i *iface;
    void *ctx;
    int threads; /* worker threads the backend was opened with */
    /* Share of free device memory the training set may take before it is
     * streamed from host memory instead (device backends; 0 = default). */
    double data_share;
};

/* Frees the backend and its context; NULL is fine. */
void kiln_backend_free(struct kiln_backend *be);

/* CPU backend: GEMM through CBLAS (OpenBLAS), every other op in C with
 * OpenMP. threads <= 0 means every core. */
enum kiln_status kiln_cpu_backend_create(int threads, struct kiln_backend **out);

#endif
