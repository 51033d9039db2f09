/* engine/core/backend.c: choosing a backend for --device, and the wrappers
 * of its optional memory members (core/backend-mem.h). */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend-mem.h"
#include "kernels.h"
#include "kiln_git_commit.h" /* generated at build time */
#include "kiln/backend.h"

#ifdef KILN_HAVE_CUDA
#include "cuda/cuda-device.h"
#endif

const char *kiln_version_string(void) { return KILN_VERSION; }
const char *kiln_git_commit(void) { return KILN_GIT_COMMIT; }

const char *kiln_build_backends(void)
{
#ifdef KILN_HAVE_CUDA
    return "cpu, cuda";
#else
    return "cpu (built without nvcc: no CUDA backend)";
#endif
}

int kiln_cuda_devices(char *buf, size_t len)
{
    if (len) buf[0] = '\0';
#ifdef KILN_HAVE_CUDA
    int n = kiln_cuda_device_count();
    size_t pos = 0;
    for (int i = 0; i < n && pos < len; i++) {
        char name[256];
        if (kiln_cuda_device_name(i, name, sizeof name) != 0) continue;
        pos += (size_t)snprintf(buf + pos, len - pos, "cuda:%d %s\n", i, name);
    }
    return n;
#else
    (void)len;
    return 0;
#endif
}

/* The parsed form of a device spec: NAME[,gemm=cublas|kiln][,math=fp32|tf32]
 * [,share=F]. */
struct device_spec {
    char name[32];  /* cpu, auto, cuda */
    int index;      /* N of cuda:N */
    enum kiln_gemm_impl gemm;
    enum kiln_math_mode math;
    double data_share;
};

static enum kiln_status device_spec_parse(const char *spec, struct device_spec *out)
{
    memset(out, 0, sizeof *out);
    char buf[256];
    if (strlen(spec) >= sizeof buf)
        return kiln_errorf(KILN_ERR_USAGE, "device spec too long: '%.40s...'", spec);
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    char *tok = strtok_r(buf, ",", &save);
    if (!tok) return kiln_errorf(KILN_ERR_USAGE, "empty device (cpu, cuda, cuda:N or auto)");
    if (!strcmp(tok, "cpu") || !strcmp(tok, "auto") || !strcmp(tok, "cuda")) {
        snprintf(out->name, sizeof out->name, "%s", tok);
    } else if (!strncmp(tok, "cuda:", 5)) {
        char *end = NULL;
        long n = strtol(tok + 5, &end, 10);
        if (end == tok + 5 || *end || n < 0 || n > 1024)
            return kiln_errorf(KILN_ERR_USAGE, "device '%s': N in cuda:N must be a device number",
                               tok);
        snprintf(out->name, sizeof out->name, "cuda");
        out->index = (int)n;
    } else {
        return kiln_errorf(KILN_ERR_USAGE, "unknown device '%s' (cpu, cuda, cuda:N or auto)", tok);
    }
    while ((tok = strtok_r(NULL, ",", &save))) {
        if (!strcmp(tok, "gemm=cublas")) out->gemm = KILN_GEMM_VENDOR;
        else if (!strcmp(tok, "gemm=kiln")) out->gemm = KILN_GEMM_KILN;
        else if (!strcmp(tok, "gemm=auto")) out->gemm = KILN_GEMM_AUTO;
        else if (!strcmp(tok, "math=fp32")) out->math = KILN_MATH_FP32;
        else if (!strcmp(tok, "math=tf32")) out->math = KILN_MATH_TF32;
        else if (!strncmp(tok, "share=", 6)) {
            char *end = NULL;
            double f = strtod(tok + 6, &end);
            if (end == tok + 6 || *end || !(f > 0.0 && f <= 1.0))
                return kiln_errorf(KILN_ERR_USAGE,
                                   "device option '%s': share must be in (0, 1]", tok);
            out->data_share = f;
        } else {
            return kiln_errorf(KILN_ERR_USAGE,
                               "unknown device option '%s' in '%s' (gemm=cublas|kiln, "
                               "math=fp32|tf32, share=F)",
                               tok, spec);
        }
    }
    return KILN_OK;
}

enum kiln_status kiln_device_spec(char *buf, size_t len, const char *device, const char *gemm,
                                  const char *math)
{
    if (gemm && strcmp(gemm, "cublas") && strcmp(gemm, "kiln") && strcmp(gemm, "auto"))
        return kiln_errorf(KILN_ERR_USAGE, "--gemm: '%s' is not cublas, kiln or auto", gemm);
    if (math && strcmp(math, "fp32") && strcmp(math, "tf32"))
        return kiln_errorf(KILN_ERR_USAGE, "--math: '%s' is not fp32 or tf32", math);
    int n = snprintf(buf, len, "%s%s%s%s%s", device ? device : "auto", gemm ? ",gemm=" : "",
                     gemm ? gemm : "", math ? ",math=" : "", math ? math : "");
    if (n < 0 || (size_t)n >= len)
        return kiln_errorf(KILN_ERR_USAGE, "device spec too long: '%.40s...'", device);
    struct device_spec check;
    return device_spec_parse(buf, &check);
}

enum kiln_status kiln_backend_open(const char *device, int threads, struct kiln_backend **out,
                                   char *said, size_t said_len)
{
    *out = NULL;
    struct device_spec ds;
    enum kiln_status st = device_spec_parse(device, &ds);
    if (st != KILN_OK) return st;
    bool want_cuda = !strcmp(ds.name, "cuda");
#ifdef KILN_HAVE_CUDA
    int n_gpus = !strcmp(ds.name, "cpu") ? 0 : kiln_cuda_device_count();
    if (want_cuda || (!strcmp(ds.name, "auto") && n_gpus > 0)) {
        if (n_gpus == 0)
            return kiln_errorf(KILN_ERR_UNSUPPORTED,
                               "device '%s': no CUDA device answered (no GPU or no driver); use "
                               "--device cpu or auto",
                               device);
        st = kiln_cuda_backend_create(ds.index, ds.gemm, ds.math, out);
        if (st != KILN_OK && want_cuda) return kiln_error_context(st, "device '%s'", device);
        if (st != KILN_OK) {
            /* auto asked for the best device there is, not for a GPU: one
             * that answers but cannot be used (cuBLAS missing, driver too
             * old, out of memory) leaves the CPU. Said on stderr too, since
             * not every caller prints `said`, and a silent CPU run on a GPU
             * machine would look like a slow GPU. */
            char why[384];
            snprintf(why, sizeof why, "%s", kiln_last_error());
            fprintf(stderr, "kiln: warning: device '%s': a GPU answered but the CUDA backend did "
                            "not start (%s); running on the CPU\n",
                    device, why);
            st = kiln_cpu_backend_create(threads, out);
            if (st != KILN_OK) return st;
            snprintf(said, said_len, "device cpu (%d threads): auto: the CUDA backend did not "
                                     "start: %s",
                     (*out)->threads, why);
            return KILN_OK;
        }
        (*out)->data_share = ds.data_share;
        char name[256] = "";
        kiln_cuda_device_name(ds.index, name, sizeof name);
        snprintf(said, said_len, "device cuda:%d %s, gemm %s, math %s%s", ds.index, name,
                 kiln_cuda_backend_gemm_name(*out), ds.math == KILN_MATH_TF32 ? "tf32" : "fp32",
                 want_cuda ? "" : " (auto: a GPU answered)");
        return KILN_OK;
    }
#else
    if (want_cuda)
        return kiln_errorf(KILN_ERR_UNSUPPORTED,
                           "device '%s': this build has no CUDA backend (built without nvcc); "
                           "use --device cpu",
                           device);
#endif
    st = kiln_cpu_backend_create(threads, out);
    if (st != KILN_OK) return st;
    const char *why = "";
    if (!strcmp(ds.name, "auto"))
#ifdef KILN_HAVE_CUDA
        why = ": no CUDA device answered";
#else
        why = ": this build has no CUDA backend";
#endif
    snprintf(said, said_len, "device cpu (%d threads)%s", (*out)->threads, why);
    return KILN_OK;
}

/* --- optional memory members (core/backend-mem.h) ---------------------------- */

void *backend_host_alloc(struct kiln_backend *be, size_t bytes)
{
    if (be->iface->host_alloc) return be->iface->host_alloc(be->ctx, bytes);
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = rounded >= bytes ? aligned_alloc(64, rounded ? rounded : 64) : NULL;
    if (!p) kiln_errorf(KILN_ERR_NOMEM, "out of host memory allocating %zu bytes", bytes);
    return p;
}

void backend_host_free(struct kiln_backend *be, void *ptr)
{
    if (!ptr) return;
    if (be->iface->host_free) be->iface->host_free(be->ctx, ptr);
    else free(ptr);
}

static _Atomic long upload_fault_countdown; /* backend_fail_upload_async_at */

void backend_fail_upload_async_at(long n) { upload_fault_countdown = n > 0 ? n : 0; }

enum kiln_status backend_upload_async(struct kiln_backend *be, void *dst, const void *host_src,
                                      size_t bytes, int tag)
{
    if (tag < 0 || tag >= KILN_UPLOAD_TAGS)
        return kiln_errorf(KILN_ERR_INTERNAL, "upload_async: tag %d outside [0, %d)", tag,
                           KILN_UPLOAD_TAGS);
    if (upload_fault_countdown > 0 && --upload_fault_countdown == 0)
        return kiln_errorf(KILN_ERR_BACKEND, "upload_async: injected failure (a test)");
    if (be->iface->upload_async) return be->iface->upload_async(be->ctx, dst, host_src, bytes, tag);
    return be->iface->upload(be->ctx, dst, host_src, bytes);
}

enum kiln_status backend_upload_wait(struct kiln_backend *be, int tag)
{
    if (tag < 0 || tag >= KILN_UPLOAD_TAGS)
        return kiln_errorf(KILN_ERR_INTERNAL, "upload_wait: tag %d outside [0, %d)", tag,
                           KILN_UPLOAD_TAGS);
    return be->iface->upload_wait ? be->iface->upload_wait(be->ctx, tag) : KILN_OK;
}
