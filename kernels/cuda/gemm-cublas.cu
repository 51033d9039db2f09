// kernels/cuda/gemm-cublas.cu: loading cuBLAS, GEMM through cuBLAS, the
// dispatch between cuBLAS and kiln's own SGEMM, and the dense forward (GEMM +
// epilogue).
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cuda-backend.h"

#ifndef KILN_CUBLAS_SONAME
#error "KILN_CUBLAS_SONAME must name cuBLAS's soname (kernels/cuda/CMakeLists.txt sets it)"
#endif

// cuBLAS is opened on first use, not linked: linking it made the loader map
// and relocate libcublas + libcublasLt (and run libcublasLt's constructor,
// which looks for the driver) at every start, ~210 MB of resident memory in
// runs that never touch a GPU (`kiln version` 225 MB against 16 MB).
enum kiln_status cuda_blas_open(const char *soname, struct cuda_blas_api *api)
{
    enum kiln_status st = KILN_OK;
    memset(api, 0, sizeof *api);
    void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        return kiln_errorf(KILN_ERR_BACKEND,
                           "cuBLAS: cannot load %s: %s (install cuBLAS %d or add its folder to "
                           "LD_LIBRARY_PATH; --gemm kiln runs without it)",
                           soname, why ? why : "unknown dlopen error", CUBLAS_VER_MAJOR);
    }
#define CUDA_BLAS_RESOLVE(field, sym)                                          \
    do {                                                                       \
        dlerror();                                                             \
        void *p_ = dlsym(lib, #sym);                                           \
        if (!p_) {                                                             \
            const char *why = dlerror();                                       \
            st = kiln_errorf(KILN_ERR_BACKEND, "cuBLAS: %s has no %s: %s", soname, #sym,  \
                             why ? why : "symbol is NULL");                    \
            goto cleanup;                                                      \
        }                                                                      \
        api->field = reinterpret_cast<decltype(api->field)>(p_);               \
    } while (0);
    CUDA_BLAS_FUNCS(CUDA_BLAS_RESOLVE)
#undef CUDA_BLAS_RESOLVE
cleanup:
    if (st != KILN_OK) {
        memset(api, 0, sizeof *api);
        dlclose(lib);
    }
    // On success lib is never closed: later backends reuse the table, and
    // a handle a backend still holds must not outlive its code.
    return st;
}

enum kiln_status cuda_blas_get(const struct cuda_blas_api **out)
{
    struct once {
        struct cuda_blas_api api;
        enum kiln_status st;
        char why[512];
    };
    // A function-local static is initialised once, thread-safely (C++11):
    // concurrent first backends wait for one dlopen, and a failure is not
    // retried (the library does not appear while the process runs).
    static const struct once lib = [] {
        struct once o;
        memset(&o, 0, sizeof o);
        o.st = cuda_blas_open(KILN_CUBLAS_SONAME, &o.api);
        if (o.st != KILN_OK) snprintf(o.why, sizeof o.why, "%s", kiln_last_error());
        return o;
    }();
    *out = lib.st == KILN_OK ? &lib.api : NULL;
    return lib.st == KILN_OK ? KILN_OK : kiln_errorf(lib.st, "%s", lib.why);
}

enum kiln_status cuda_gemm_cublas(struct cuda_ctx *c, bool ta, bool tb, int64_t m, int64_t n,
                                  int64_t k, float alpha, const float *a, int64_t lda,
                                  const float *b, int64_t ldb, float beta, float *cc, int64_t ldc)
{
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap
    // the operands instead of transposing anything.
    cublasStatus_t s = c->blas_api->sgemm(c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m, (int)k,
                                         &alpha, b, (int)ldb, a, (int)lda, &beta, cc, (int)ldc);
    return s == CUBLAS_STATUS_SUCCESS ? KILN_OK : cublas_status(c->blas_api, "gemm (cuBLAS)", s);
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
