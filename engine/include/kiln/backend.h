/* kiln/backend.h: choosing a compute backend.
 *
 *   struct kiln_backend *be;
 *   char said[256];
 *   if (kiln_backend_open("auto", 0, &be, said, sizeof said) == KILN_OK)
 *       puts(said);                       // "cpu (8 threads): no CUDA device answered"
 *   ...
 *   kiln_backend_free(be);
 */
#ifndef KILN_BACKEND_H
#define KILN_BACKEND_H

#include <stddef.h>

#include "kiln/status.h"

struct kiln_backend;

/* Opens the backend named by device: "cpu", "cuda", "cuda:N" or "auto"
 * (a GPU when one answers and the build has the CUDA backend, else the
 * CPU; also the CPU, with a warning on stderr, when a GPU answers but the
 * CUDA backend cannot start, e.g. cuBLAS is missing), optionally followed by options: ",gemm=cublas|kiln|auto" (which
 * SGEMM the CUDA backend runs), ",math=fp32|tf32" (TF32 tensor cores for
 * GEMMs), ",share=F" (the share of free device memory the training set
 * may take). threads <= 0 means every core. said receives one line saying
 * which backend was chosen and why. Caller frees *out with kiln_backend_free. */
enum kiln_status kiln_backend_open(const char *device, int threads, struct kiln_backend **out,
                                   char *said, size_t said_len);
void kiln_backend_free(struct kiln_backend *be);

/* Writes the device spec for --device D --gemm G --math M into buf (gemm
 * and math may be NULL) and checks it: KILN_ERR_USAGE naming the bad part. */
enum kiln_status kiln_device_spec(char *buf, size_t len, const char *device, const char *gemm,
                                  const char *math);

/* Backends compiled into this build, e.g. "cpu" or "cpu, cuda (device probe only)". */
const char *kiln_build_backends(void);
/* Writes a line per CUDA device that answers (nothing in a CPU-only build). */
int kiln_cuda_devices(char *buf, size_t len);

const char *kiln_version_string(void); /* "0.1.0" */
const char *kiln_git_commit(void);

#endif
