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
 * (a GPU when one answers and the build can train on it, else the CPU).
 * threads <= 0 means every core. said receives one line saying which backend
 * was chosen and why. Caller frees *out with kiln_backend_free. */
enum kiln_status kiln_backend_open(const char *device, int threads, struct kiln_backend **out,
                                   char *said, size_t said_len);
void kiln_backend_free(struct kiln_backend *be);

/* Backends compiled into this build, e.g. "cpu" or "cpu, cuda (device probe only)". */
const char *kiln_build_backends(void);
/* Writes a line per CUDA device that answers (nothing in a CPU-only build). */
int kiln_cuda_devices(char *buf, size_t len);

const char *kiln_version_string(void); /* "0.1.0" */
const char *kiln_git_commit(void);

#endif
