/* engine/core/backend.c: choosing a backend for --device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    return "cpu, cuda (device discovery only: CUDA kernels are not in this version)";
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

enum kiln_status kiln_backend_open(const char *device, int threads, struct kiln_backend **out,
                                   char *said, size_t said_len)
{
    *out = NULL;
    bool want_cuda = !strcmp(device, "cuda") || !strncmp(device, "cuda:", 5);
    if (strcmp(device, "cpu") && strcmp(device, "auto") && !want_cuda)
        return kiln_errorf(KILN_ERR_USAGE, "unknown device '%s' (cpu, cuda, cuda:N or auto)",
                           device);
    if (want_cuda)
        return kiln_errorf(KILN_ERR_UNSUPPORTED,
                           "device '%s': this build has no CUDA training kernels yet; "
                           "use --device cpu (backends built: %s)",
                           device, kiln_build_backends());
    enum kiln_status st = kiln_cpu_backend_create(threads, out);
    if (st != KILN_OK) return st;
    const char *why = "";
    if (!strcmp(device, "auto")) {
        char devs[512];
        why = kiln_cuda_devices(devs, sizeof devs) > 0
                  ? ": a GPU answered, but this build has no CUDA training kernels"
                  : ": no CUDA device answered";
    }
    snprintf(said, said_len, "device cpu (%d threads)%s", (*out)->threads, why);
    return KILN_OK;
}
