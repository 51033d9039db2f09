/* kernels/cuda/cuda-device.h: what the engine may ask of the CUDA target
 * without including a CUDA header. */
#ifndef KILN_CUDA_DEVICE_H
#define KILN_CUDA_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
#ifndef _Noreturn
#define _Noreturn [[noreturn]] /* status.h is C11 */
#endif
extern "C" {
#endif

#include "kernels.h"

/* Number of CUDA devices that answer (0 when no driver or no device). */
int kiln_cuda_device_count(void);
/* Name of device i, written into buf; returns 0 on success. */
int kiln_cuda_device_name(int i, char *buf, size_t len);

/* Opens the CUDA backend on device `device`: one stream, a cuBLAS handle
 * with a workspace of our own (reproducible results), the deterministic
 * reductions' scratch. gemm AUTO takes the implementation measured faster
 * (cuBLAS until kiln's SGEMM is measured ahead on the target GPU); math TF32
 * lets both GEMMs use TF32 tensor cores. cuBLAS is loaded (dlopen) by the
 * first backend that needs it, never for gemm KILN; a missing or unusable
 * library is KILN_ERR_BACKEND naming it and dlerror(). Errors name the
 * device and the CUDA error. Caller frees *out with kiln_backend_free. */
enum kiln_status kiln_cuda_backend_create(int device, enum kiln_gemm_impl gemm,
                                          enum kiln_math_mode math, struct kiln_backend **out);
/* The GEMM a CUDA backend resolved to ("cublas" or "kiln"). */
const char *kiln_cuda_backend_gemm_name(const struct kiln_backend *be);

#ifdef __cplusplus
}
#endif

#endif
