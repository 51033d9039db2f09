/* kernels/cpu/gemm.c: GEMM through CBLAS and the dense layer's epilogue. */
#include <limits.h>

#include <cblas.h>

#include "cpu-backend.h"
#include "elementwise.h"

enum kiln_status cpu_gemm(void *ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                          float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                          float beta, float *c, int64_t ldc)
{
    (void)ctx;
    /* CBLAS takes int; refuse rather than truncate. */
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
        ldc > INT_MAX)
        return kiln_errorf(KILN_ERR_UNSUPPORTED, "gemm: dimension over INT_MAX (%lld x %lld x %lld)",
                           (long long)m, (long long)n, (long long)k);
    if (m == 0 || n == 0) return KILN_OK;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda,
                b, (int)ldb, beta, c, (int)ldc);
    return KILN_OK;
}

enum kiln_status cpu_bias_act(void *ctx, float *y, const float *bias, int64_t rows, int64_t cols,
                              enum kiln_act act, float param)
{
    int threads = rows * cols >= CPU_PARALLEL_MIN ? CPU_THREADS(ctx) : 1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float *row = y + r * cols;
        if (bias)
            for (int64_t c = 0; c < cols; c++) row[c] += bias[c];
        /* The switch sits outside the inner loop so each loop vectorises. */
        switch (act) {
        case KILN_ACT_NONE: break;
        case KILN_ACT_RELU:
            for (int64_t c = 0; c < cols; c++) row[c] = row[c] < 0.0f ? 0.0f : row[c];
            break;
        default:
            for (int64_t c = 0; c < cols; c++) row[c] = kiln_act_apply(act, param, row[c]);
            break;
        }
    }
    return KILN_OK;
}
