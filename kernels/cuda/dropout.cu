// kernels/cuda/dropout.cu: inverted dropout with the counter-based mask of
// elementwise.h: element i's mask depends on (seed, offset + i) only, so it
// is the CPU's mask whatever the launch shape.
#include "cuda-backend.h"

// seed_mem, when set, is read when the kernel runs (a captured step).
__global__ void cuda_dropout_kernel(const float *x, float *y, long long n, float p, uint64_t seed,
                                    const uint64_t *seed_mem, uint64_t offset)
{
    uint64_t s = seed_mem ? *seed_mem : seed;
    float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        y[i] = kiln_rng_uniform(s, offset + (uint64_t)i) >= p ? x[i] * keep_scale : 0.0f;
}

static enum kiln_status cuda_dropout_launch(struct cuda_ctx *c, const char *op, const float *x,
                                            float *y, int64_t n, float p, uint64_t seed,
                                            const uint64_t *seed_mem, uint64_t offset)
{
    if (n <= 0) return KILN_OK;
    cuda_dropout_kernel<<<cuda_blocks(c, n), 256, 0, c->stream>>>(x, y, n, p, seed, seed_mem,
                                                                  offset);
    return cuda_launched(op);
}

extern "C" enum kiln_status cuda_dropout_forward(void *ctx, const float *x, float *y, int64_t n,
                                                 float p, uint64_t seed, uint64_t offset)
{
    return cuda_dropout_launch(CUDA_CTX(ctx), "dropout_forward", x, y, n, p, seed, NULL, offset);
}

extern "C" enum kiln_status cuda_dropout_backward(void *ctx, const float *dy, float *dx, int64_t n,
                                                  float p, uint64_t seed, uint64_t offset)
{
    // Same mask, same scale: backward is forward applied to dy.
    return cuda_dropout_launch(CUDA_CTX(ctx), "dropout_backward", dy, dx, n, p, seed, NULL, offset);
}

extern "C" enum kiln_status cuda_dropout_keyed(void *ctx, const float *x, float *y, int64_t n,
                                               float p, const uint64_t *seed, uint64_t offset)
{
    return cuda_dropout_launch(CUDA_CTX(ctx), "dropout_keyed", x, y, n, p, 0, seed, offset);
}
