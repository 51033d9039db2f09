// kernels/cuda/cuda-backend.h: internals shared by the CUDA backend's files
// (C++/CUDA only; the engine sees kernels.h and cuda-device.h).
//
// Every op queues its kernels on the context's one stream (the compute
// stream; upload_async alone uses a second, copy stream) and returns at
// once; nothing in an op waits for the device except the ops whose contract
// returns a value to the host (sum_squares, count_nonfinite). Errors from
// the CUDA runtime and cuBLAS become kiln statuses here, once, naming the op.
//
// cuBLAS is not linked: cublas_v2.h gives its types and prototypes, and the
// functions come from dlopen by the first backend that uses them (see
// cuda_blas_get), so a run that never opens a CUDA backend never maps it.
#ifndef KILN_CUDA_BACKEND_H
#define KILN_CUDA_BACKEND_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#ifndef _Noreturn
#define _Noreturn [[noreturn]] // status.h is C11
#endif
extern "C" {
#include "kernels.h"
}
#include "elementwise.h"

// A device-side error word: kernels that find bad input while they run
// (a label outside [0, cols)) record it here; sync/download report it.
struct cuda_dev_error {
    int code;        // CUDA_DEV_ERR_*
    int label;
    long long row;
    long long cols;
};
enum { CUDA_DEV_ERR_NONE = 0, CUDA_DEV_ERR_LABEL = 1 };

// Partial sums of the deterministic reductions: one slot per fixed block.
#define CUDA_SUM_MAX_BLOCKS 256
#define CUDA_SUM_MIN_BLOCK 4096

struct cuda_alloc_rec {
    void *ptr;
    size_t bytes;
};

// The cuBLAS functions kiln calls: X(field, exported symbol). The symbols
// are the library's real names (cublas_v2.h maps cublasCreate and friends
// to the _v2 names by macro, and dlsym sees no macros); each field's type is
// the header's prototype.
#define CUDA_BLAS_FUNCS(X)                                                     \
    X(create, cublasCreate_v2)                                                 \
    X(destroy, cublasDestroy_v2)                                               \
    X(set_stream, cublasSetStream_v2)                                          \
    X(set_workspace, cublasSetWorkspace_v2)                                    \
    X(set_math_mode, cublasSetMathMode)                                        \
    X(sgemm, cublasSgemm_v2)                                                   \
    X(status_name, cublasGetStatusName)                                        \
    X(status_string, cublasGetStatusString)

struct cuda_blas_api {
#define CUDA_BLAS_FIELD(field, sym) decltype(&sym) field;
    CUDA_BLAS_FUNCS(CUDA_BLAS_FIELD)
#undef CUDA_BLAS_FIELD
};

// Opens the shared library soname and resolves every function of
// CUDA_BLAS_FUNCS into *api. KILN_ERR_BACKEND naming the library and
// dlerror() when it is missing or lacks a function (*api is then zeroed).
// On success the library stays loaded for the life of the process.
enum kiln_status cuda_blas_open(const char *soname, struct cuda_blas_api *api);
// The process's one cuBLAS (KILN_CUBLAS_SONAME, the toolkit's major
// version): the first call opens it, every later call returns the same
// table, or the same error, without trying again. Thread-safe.
enum kiln_status cuda_blas_get(const struct cuda_blas_api **out);

struct cuda_ctx {
    int device;
    int sm_count;
    size_t l2_bytes;
    cudaStream_t stream;
    const struct cuda_blas_api *blas_api; // NULL when gemm=kiln: cuBLAS is never loaded
    cublasHandle_t blas;
    void *blas_ws;                 // cuBLAS workspace, ours so results are reproducible
    size_t blas_ws_bytes;
    enum kiln_gemm_impl gemm;      // resolved: VENDOR or KILN
    enum kiln_math_mode math;
    double *partial;               // [CUDA_SUM_MAX_BLOCKS] sums of squares
    long long *partial_count;      // [CUDA_SUM_MAX_BLOCKS] non-finite counts
    float *clip_scale;             // step_check's scale for the grads
    double *host_result;           // pinned: results the host asked for
    long long *host_count;
    struct cuda_dev_error *dev_err;
    struct cuda_dev_error *host_err; // pinned
    cudaEvent_t ev_start, ev_stop;
    // upload_async's copy stream (non-blocking, so it runs beside `stream`)
    // and one event per tag, recorded after each tag's latest copy.
    cudaStream_t copy_stream;
    cudaEvent_t up_done[KILN_UPLOAD_TAGS];
    cudaGraph_t capturing;         // non-NULL only between capture_begin/end
    bool in_capture;
    // Allocation bookkeeping for mem_peak (a handful of planned buffers).
    struct cuda_alloc_rec *allocs;
    int n_allocs, cap_allocs;
    size_t bytes_now, bytes_peak;
};

#define CUDA_CTX(ctx) (static_cast<struct cuda_ctx *>(ctx))

// A failed CUDA call as a kiln status naming the op.
enum kiln_status cuda_status(const char *op, cudaError_t e);
enum kiln_status cublas_status(const struct cuda_blas_api *api, const char *op,
                               cublasStatus_t s);

#define CUDA_TRY(op, call)                                                     \
    do {                                                                       \
        cudaError_t e_ = (call);                                               \
        if (e_ != cudaSuccess) return cuda_status(op, e_);                     \
    } while (0)

// After a kernel launch: a bad configuration or a sticky error from an
// earlier kernel becomes the op's status.
static inline enum kiln_status cuda_launched(const char *op)
{
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? KILN_OK : cuda_status(op, e);
}

// Blocks for an elementwise launch over n items with 256 threads, capped so
// that a grid-stride loop covers the rest (results never depend on it).
static inline unsigned cuda_blocks(const struct cuda_ctx *c, long long n, int threads = 256)
{
    long long b = (n + threads - 1) / threads;
    long long cap = (long long)c->sm_count * 16;
    if (b > cap) b = cap;
    return (unsigned)(b < 1 ? 1 : b);
}

// Fixed-size blocks of the deterministic sums (as the CPU backend splits them).
static inline long long cuda_sum_block(long long n)
{
    long long block = (n + CUDA_SUM_MAX_BLOCKS - 1) / CUDA_SUM_MAX_BLOCKS;
    return block < CUDA_SUM_MIN_BLOCK ? CUDA_SUM_MIN_BLOCK : block;
}

static inline bool cuda_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

// Waits for queued work and reports a device-side error word.
enum kiln_status cuda_wait(struct cuda_ctx *c, const char *op);

// --- op entry points (one family per file) ---------------------------------
extern "C" {
enum kiln_status cuda_gemm(void *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                           float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                           float beta, float *c, int64_t ldc);
enum kiln_status cuda_dense_forward(void *ctx, int64_t m, int64_t n, int64_t k, const float *x,
                                    const float *w, const float *bias, enum kiln_act act,
                                    float param, float *y);
enum kiln_status cuda_bias_act(void *ctx, float *y, const float *bias, int64_t rows, int64_t cols,
                               enum kiln_act act, float param);
enum kiln_status cuda_act_forward(void *ctx, enum kiln_act act, float param, const float *x,
                                  float *y, int64_t n);
enum kiln_status cuda_act_backward(void *ctx, enum kiln_act act, float param, const float *x,
                                   const float *y, const float *dy, float *dx, int64_t n);
enum kiln_status cuda_bias_grad(void *ctx, const float *dy, int64_t rows, int64_t cols,
                                float *db);
enum kiln_status cuda_softmax_forward(void *ctx, const float *x, float *y, int64_t rows,
                                      int64_t cols);
enum kiln_status cuda_softmax_backward(void *ctx, const float *y, const float *dy, float *dx,
                                       int64_t rows, int64_t cols);
enum kiln_status cuda_dropout_forward(void *ctx, const float *x, float *y, int64_t n, float p,
                                      uint64_t seed, uint64_t offset);
enum kiln_status cuda_dropout_backward(void *ctx, const float *dy, float *dx, int64_t n, float p,
                                       uint64_t seed, uint64_t offset);
enum kiln_status cuda_dropout_keyed(void *ctx, const float *x, float *y, int64_t n, float p,
                                    const uint64_t *seed, uint64_t offset);
enum kiln_status cuda_softmax_xent(void *ctx, const float *logits, const int32_t *labels,
                                   int64_t rows, int64_t cols, float smoothing, float *loss_rows,
                                   float *dlogits, float grad_scale);
enum kiln_status cuda_bce_logits(void *ctx, const float *logits, const float *targets,
                                 int64_t rows, int64_t cols, float *loss_rows, float *dlogits,
                                 float grad_scale);
enum kiln_status cuda_mse(void *ctx, const float *pred, const float *targets, int64_t rows,
                          int64_t cols, float *loss_rows, float *dpred, float grad_scale);
enum kiln_status cuda_sum_squares(void *ctx, const float *x, int64_t n, double *out);
enum kiln_status cuda_count_nonfinite(void *ctx, const float *x, int64_t n, int64_t *out);
enum kiln_status cuda_scale(void *ctx, float *x, int64_t n, float s);
enum kiln_status cuda_optimizer_step(void *ctx, const struct kiln_optim_step *h, float *params,
                                     const float *grads, float *state, int64_t n);
enum kiln_status cuda_gather_rows(void *ctx, const void *src, enum kiln_elem elem,
                                  int64_t row_size, const int64_t *idx, int64_t rows, float scale,
                                  float *dst);
enum kiln_status cuda_step_begin(void *ctx, struct kiln_step_ctl *ctl,
                                 const struct kiln_step_vars *vars, const int64_t *order,
                                 int64_t batch, int64_t rows, int64_t *idx);
enum kiln_status cuda_step_check(void *ctx, struct kiln_step_ctl *ctl,
                                 struct kiln_step_vars *vars, const float *loss_rows,
                                 int64_t rows, float *grads, int64_t n, float clip_norm);
enum kiln_status cuda_confusion(void *ctx, const float *logits, const int32_t *labels,
                                int64_t rows, int64_t cols, int64_t *counts);
}

// cuBLAS and kiln's own SGEMM, each with the dense epilogue (bias + act).
enum kiln_status cuda_gemm_cublas(struct cuda_ctx *c, bool ta, bool tb, int64_t m, int64_t n,
                                  int64_t k, float alpha, const float *a, int64_t lda,
                                  const float *b, int64_t ldb, float beta, float *cc, int64_t ldc);
enum kiln_status cuda_gemm_kiln(struct cuda_ctx *c, bool ta, bool tb, int64_t m, int64_t n,
                                int64_t k, float alpha, const float *a, int64_t lda,
                                const float *b, int64_t ldb, float beta, float *cc, int64_t ldc,
                                const float *bias, enum kiln_act act, float param);

#endif
