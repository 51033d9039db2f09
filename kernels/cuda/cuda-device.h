/* kernels/cuda/cuda-device.h: what the engine may ask of the CUDA target
 * without including a CUDA header. */
#ifndef KILN_CUDA_DEVICE_H
#define KILN_CUDA_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices that answer (0 when no driver or no device). */
int kiln_cuda_device_count(void);
/* Name of device i, written into buf; returns 0 on success. */
int kiln_cuda_device_name(int i, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
