// kernels/cuda/metrics.cu: the confusion matrix on the device (accuracy is
// its trace). Integer atomics: counts come out the same in any order.
#include "cuda-backend.h"

__global__ void cuda_confusion_kernel(const float *logits, const int32_t *labels, long long rows,
                                      long long cols, unsigned long long *counts)
{
    for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < rows;
         r += (long long)gridDim.x * blockDim.x) {
        const float *o = logits + r * cols;
        long long best = 0;
        // First maximum wins; a NaN never compares greater (the CPU's rule).
        for (long long c = 1; c < cols; c++)
            if (o[c] > o[best]) best = c;
        int32_t y = labels[r];
        if (y >= 0 && y < cols) atomicAdd(&counts[(long long)y * cols + best], 1ULL);
    }
}

extern "C" enum kiln_status cuda_confusion(void *ctx, const float *logits, const int32_t *labels,
                                           int64_t rows, int64_t cols, int64_t *counts)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (rows <= 0 || cols <= 0) return KILN_OK;
    cuda_confusion_kernel<<<cuda_blocks(c, rows), 256, 0, c->stream>>>(
        logits, labels, rows, cols, reinterpret_cast<unsigned long long *>(counts));
    return cuda_launched("confusion");
}
