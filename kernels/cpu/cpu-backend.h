/* kernels/cpu/cpu-backend.h: internals shared by the CPU backend's files. */
#ifndef KILN_CPU_BACKEND_H
#define KILN_CPU_BACKEND_H

#include <time.h>

#include "kernels.h"

struct cpu_ctx {
    int threads;
    struct timespec timer_start; /* benchmarks (kiln_timer_i) */
};

/* Below this many elements an op runs on one thread: waking the team costs
 * more than the work. */
#define CPU_PARALLEL_MIN 16384

#define CPU_THREADS(ctx) (((const struct cpu_ctx *)(ctx))->threads)

enum kiln_status cpu_gemm(void *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                          float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                          float beta, float *c, int64_t ldc);
enum kiln_status cpu_bias_act(void *ctx, float *y, const float *bias, int64_t rows, int64_t cols,
                              enum kiln_act act, float param);
enum kiln_status cpu_act_forward(void *ctx, enum kiln_act act, float param, const float *x,
                                 float *y, int64_t n);
enum kiln_status cpu_act_backward(void *ctx, enum kiln_act act, float param, const float *x,
                                  const float *y, const float *dy, float *dx, int64_t n);
enum kiln_status cpu_bias_grad(void *ctx, const float *dy, int64_t rows, int64_t cols, float *db);
enum kiln_status cpu_softmax_forward(void *ctx, const float *x, float *y, int64_t rows,
                                     int64_t cols);
enum kiln_status cpu_softmax_backward(void *ctx, const float *y, const float *dy, float *dx,
                                      int64_t rows, int64_t cols);
enum kiln_status cpu_dropout_forward(void *ctx, const float *x, float *y, int64_t n, float p,
                                     uint64_t seed, uint64_t offset);
enum kiln_status cpu_dropout_backward(void *ctx, const float *dy, float *dx, int64_t n, float p,
                                      uint64_t seed, uint64_t offset);
enum kiln_status cpu_softmax_xent(void *ctx, const float *logits, const int32_t *labels,
                                  int64_t rows, int64_t cols, float smoothing, float *loss_rows,
                                  float *dlogits, float grad_scale);
enum kiln_status cpu_bce_logits(void *ctx, const float *logits, const float *targets,
                                int64_t rows, int64_t cols, float *loss_rows, float *dlogits,
                                float grad_scale);
enum kiln_status cpu_mse(void *ctx, const float *pred, const float *targets, int64_t rows,
                         int64_t cols, float *loss_rows, float *dpred, float grad_scale);
enum kiln_status cpu_sum_squares(void *ctx, const float *x, int64_t n, double *out);
enum kiln_status cpu_count_nonfinite(void *ctx, const float *x, int64_t n, int64_t *out);
enum kiln_status cpu_scale(void *ctx, float *x, int64_t n, float s);
enum kiln_status cpu_optimizer_step(void *ctx, const struct kiln_optim_step *h, float *params,
                                    const float *grads, float *state, int64_t n);
enum kiln_status cpu_gather_rows(void *ctx, const void *src, enum kiln_elem elem,
                                 int64_t row_size, const int64_t *idx, int64_t rows, float scale,
                                 float *dst);
enum kiln_status cpu_dropout_keyed(void *ctx, const float *x, float *y, int64_t n, float p,
                                   const uint64_t *seed, uint64_t offset);
enum kiln_status cpu_step_begin(void *ctx, struct kiln_step_ctl *ctl,
                                const struct kiln_step_vars *vars, const int64_t *order,
                                int64_t batch, int64_t rows, int64_t *idx);
enum kiln_status cpu_step_check(void *ctx, struct kiln_step_ctl *ctl, struct kiln_step_vars *vars,
                                const float *loss_rows, int64_t rows, float *grads, int64_t n,
                                float clip_norm);
enum kiln_status cpu_confusion(void *ctx, const float *logits, const int32_t *labels, int64_t rows,
                               int64_t cols, int64_t *counts);

#endif
