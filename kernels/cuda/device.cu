// kernels/cuda/device.cu: device discovery for `--device auto` and
// `kiln version`. No op runs on the GPU yet (see the CUDA backend issue).
#include <cuda_runtime.h>

#include <stdio.h>

#include "cuda-device.h"

extern "C" int kiln_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky error of a machine without a driver
        return 0;
    }
    return n;
}

extern "C" int kiln_cuda_device_name(int i, char *buf, size_t len)
{
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    snprintf(buf, len, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
             prop.totalGlobalMem / 1073741824.0);
    return 0;
}
