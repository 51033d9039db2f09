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
 * - an op returns KILN_OK or a status with kiln_errorf naming the op.
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
};

/* Floats of optimizer state per parameter: SGD with momentum 1, Adam 2. */
static inline int kiln_optim_state_per_param(enum kiln_optim_kind kind, float momentum)
{
    return kind == KILN_OPTIM_SGD ? (momentum != 0.0f ? 1 : 0) : 2;
}

enum kiln_elem { KILN_ELEM_U8, KILN_ELEM_I32, KILN_ELEM_F32 };

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
     * elements of type elem (U8 or F32). */
    enum kiln_status (*gather_rows)(void *ctx, const void *src, enum kiln_elem elem,
                                    int64_t row_size, const int64_t *idx, int64_t rows,
                                    float scale, float *dst);
};

struct kiln_backend;

/* The memory functions and op table of one backend. */
struct kiln_backend_i {
    const char *name;
    /* The backend's memory is host memory: callers may hand it host
     * pointers directly (the CPU backend trains on the dataset in place). */
    bool host_memory;
    /* NULL when out of memory. Memory is aligned to 64 bytes. */
    void *(*alloc)(void *ctx, size_t bytes);
    void (*free)(void *ctx, void *ptr);
    enum kiln_status (*upload)(void *ctx, void *dst, const void *host_src, size_t bytes);
    enum kiln_status (*download)(void *ctx, void *host_dst, const void *src, size_t bytes);
    /* Waits for all queued work. */
    enum kiln_status (*sync)(void *ctx);
    void (*destroy)(void *ctx);
    const struct kiln_ops *ops;
};

struct kiln_backend {
    const struct kiln_backend_i *iface;
    void *ctx;
    int threads; /* worker threads the backend was opened with */
};

/* Frees the backend and its context; NULL is fine. */
void kiln_backend_free(struct kiln_backend *be);

/* CPU backend: GEMM through CBLAS (OpenBLAS), every other op in C with
 * OpenMP. threads <= 0 means every core. */
enum kiln_status kiln_cpu_backend_create(int threads, struct kiln_backend **out);

#endif
