// kernels/cuda/losses.cu: BCE with logits and MSE, a warp a row (the row's
// mean loss is a warp sum in a fixed order), gradients in the same pass.
#include "cuda-backend.h"

__device__ __forceinline__ float cuda_row_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ void cuda_bce_logits_kernel(const float *z, const float *t, long long rows,
                                       long long cols, float *loss_rows, float *dz,
                                       float grad_scale)
{
    int lane = threadIdx.x & 31;
    long long warps = (long long)gridDim.x * (blockDim.x / 32);
    float inv_cols = 1.0f / (float)cols;
    for (long long r = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32; r < rows;
         r += warps) {
        float sum = 0.0f;
        for (long long c = lane; c < cols; c += 32) {
            long long i = r * cols + c;
            sum += kiln_bce_logit_loss(z[i], t[i]);
            if (dz)
                dz[i] = grad_scale * inv_cols *
                        (kiln_act_apply(KILN_ACT_SIGMOID, 0.0f, z[i]) - t[i]);
        }
        sum = cuda_row_sum(sum);
        if (lane == 0) loss_rows[r] = sum * inv_cols;
    }
}

extern "C" enum kiln_status cuda_bce_logits(void *ctx, const float *logits, const float *targets,
                                            int64_t rows, int64_t cols, float *loss_rows,
                                            float *dlogits, float grad_scale)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (rows <= 0) return KILN_OK;
    cuda_bce_logits_kernel<<<cuda_blocks(c, rows * 32), 256, 0, c->stream>>>(
        logits, targets, rows, cols, loss_rows, dlogits, grad_scale);
    return cuda_launched("bce_logits");
}

__global__ void cuda_mse_kernel(const float *p, const float *t, long long rows, long long cols,
                                float *loss_rows, float *dp, float grad_scale)
{
    int lane = threadIdx.x & 31;
    long long warps = (long long)gridDim.x * (blockDim.x / 32);
    float inv_cols = 1.0f / (float)cols;
    for (long long r = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32; r < rows;
         r += warps) {
        float sum = 0.0f;
        for (long long c = lane; c < cols; c += 32) {
            long long i = r * cols + c;
            float d = p[i] - t[i];
            sum += d * d;
            if (dp) dp[i] = grad_scale * 2.0f * inv_cols * d;
        }
        sum = cuda_row_sum(sum);
        if (lane == 0) loss_rows[r] = sum * inv_cols;
    }
}

extern "C" enum kiln_status cuda_mse(void *ctx, const float *pred, const float *targets,
                                     int64_t rows, int64_t cols, float *loss_rows, float *dpred,
                                     float grad_scale)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (rows <= 0) return KILN_OK;
    cuda_mse_kernel<<<cuda_blocks(c, rows * 32), 256, 0, c->stream>>>(pred, targets, rows, cols,
                                                                      loss_rows, dpred, grad_scale);
    return cuda_launched("mse");
}
