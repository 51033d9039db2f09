// kernels/cuda/gemm-cublas.cu: GEMM through cuBLAS, the dispatch between
// cuBLAS and kiln's own SGEMM, and the dense forward (GEMM + epilogue).
#include <limits.h>

#include "cuda-backend.h"

enum kiln_status cuda_gemm_cublas(struct cuda_ctx *c, bool ta, bool tb, int64_t m, int64_t n,
                                  int64_t k, float alpha, const float *a, int64_t lda,
                                  const float *b, int64_t ldb, float beta, float *cc, int64_t ldc)
{
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap
    // the operands instead of transposing anything.
    cublasStatus_t s = cublasSgemm(c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m, (int)k, &alpha,
                                   b, (int)ldb, a, (int)lda, &beta, cc, (int)ldc);
    return s == CUBLAS_STATUS_SUCCESS ? KILN_OK : cublas_status("gemm (cuBLAS)", s);
}

extern "C" enum kiln_status cuda_gemm(void *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n,
                                      int64_t k, float alpha, const float *a, int64_t lda,
                                      const float *b, int64_t ldb, float beta, float *c,
                                      int64_t ldc)
{
    struct cuda_ctx *cx = CUDA_CTX(ctx);
    // cuBLAS takes int (and kiln's kernel indexes with int); refuse rather
    // than truncate.
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
        ldc > INT_MAX)
        return kiln_errorf(KILN_ERR_UNSUPPORTED,
                           "gemm: dimension over INT_MAX (%lld x %lld x %lld)", (long long)m,
                           (long long)n, (long long)k);
    if (m == 0 || n == 0) return KILN_OK;
    if (cx->gemm == KILN_GEMM_KILN)
        return cuda_gemm_kiln(cx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                              NULL, KILN_ACT_NONE, 0.0f);
    return cuda_gemm_cublas(cx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

extern "C" enum kiln_status cuda_dense_forward(void *ctx, int64_t m, int64_t n, int64_t k,
                                               const float *x, const float *w, const float *bias,
                                               enum kiln_act act, float param, float *y)
{
    struct cuda_ctx *cx = CUDA_CTX(ctx);
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
        return kiln_errorf(KILN_ERR_UNSUPPORTED,
                           "dense_forward: dimension over INT_MAX (%lld x %lld x %lld)",
                           (long long)m, (long long)n, (long long)k);
    if (m == 0 || n == 0) return KILN_OK;
    // kiln's SGEMM applies bias and activation in its epilogue (one pass);
    // cuBLAS is followed by the epilogue kernel.
    if (cx->gemm == KILN_GEMM_KILN)
        return cuda_gemm_kiln(cx, false, true, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n, bias, act,
                              param);
    enum kiln_status st = cuda_gemm_cublas(cx, false, true, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
    if (st == KILN_OK) st = cuda_bias_act(ctx, y, bias, m, n, act, param);
    return st;
}
