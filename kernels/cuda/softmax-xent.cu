// kernels/cuda/softmax-xent.cu: softmax cross-entropy, loss and gradient in
// one pass per row (a warp a row: an online max/sum over the logits, then
// the gradient from the same values).
#include "cuda-backend.h"

// Online (max, sum of exp) merge: the pair for a union of two sets.
__device__ __forceinline__ void cuda_lse_merge(float &m, float &s, float m2, float s2)
{
    float mm = fmaxf(m, m2);
    if (mm == -INFINITY) return; // both empty or all -inf: nothing to add
    s = s * expf(m - mm) + s2 * expf(m2 - mm);
    m = mm;
}

__global__ void cuda_softmax_xent_kernel(const float *__restrict__ logits,
                                         const int32_t *__restrict__ labels, long long rows,
                                         long long cols, float smoothing, float *loss_rows,
                                         float *dlogits, float grad_scale,
                                         struct cuda_dev_error *err)
{
    int lane = threadIdx.x & 31;
    long long warps = (long long)gridDim.x * (blockDim.x / 32);
    float off = smoothing / (float)cols;
    float on = 1.0f - smoothing + off;
    for (long long r = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32; r < rows;
         r += warps) {
        const float *z = logits + r * cols;
        int32_t y = labels[r];
        if (y < 0 || y >= cols) {
            // Reported by the next sync; the row's outputs are NaN meanwhile.
            if (lane == 0 && atomicCAS(&err->code, 0, CUDA_DEV_ERR_LABEL) == 0) {
                err->label = y;
                err->row = r;
                err->cols = cols;
            }
            if (lane == 0) loss_rows[r] = __int_as_float(0x7fc00000);
            if (dlogits)
                for (long long c = lane; c < cols; c += 32)
                    dlogits[r * cols + c] = __int_as_float(0x7fc00000);
            continue;
        }
        float m = -INFINITY, s = 0.0f, zsum = 0.0f;
        bool nan_seen = false;
        for (long long c = lane; c < cols; c += 32) {
            float v = z[c];
            // A NaN, or a +inf (exp(inf - inf) in the CPU's two passes),
            // makes the whole row NaN, as on the CPU.
            nan_seen |= v != v || v == INFINITY;
            zsum += v;
            if (v > m) {
                s = s * expf(m - v) + 1.0f;
                m = v;
            } else if (v != -INFINITY) {
                s += expf(v - m);
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float m2 = __shfl_xor_sync(0xffffffffu, m, o);
            float s2 = __shfl_xor_sync(0xffffffffu, s, o);
            cuda_lse_merge(m, s, m2, s2);
            zsum += __shfl_xor_sync(0xffffffffu, zsum, o);
        }
        nan_seen = __any_sync(0xffffffffu, nan_seen);
        if (nan_seen) s = __int_as_float(0x7fc00000);
        float lse = m + logf(s);
        float zy = z[y];
        if (lane == 0)
            // Without smoothing the sum term is skipped, not multiplied by 0:
            // a -inf logit would make it NaN where PyTorch's loss is finite.
            loss_rows[r] = lse - (1.0f - smoothing) * zy - (smoothing > 0.0f ? off * zsum : 0.0f);
        if (dlogits) {
            float inv = 1.0f / s;
            for (long long c = lane; c < cols; c += 32)
                dlogits[r * cols + c] = grad_scale * (expf(z[c] - m) * inv - (c == y ? on : off));
        }
    }
}

extern "C" enum kiln_status cuda_softmax_xent(void *ctx, const float *logits,
                                              const int32_t *labels, int64_t rows, int64_t cols,
                                              float smoothing, float *loss_rows, float *dlogits,
                                              float grad_scale)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (rows <= 0) return KILN_OK;
    cuda_softmax_xent_kernel<<<cuda_blocks(c, rows * 32), 256, 0, c->stream>>>(
        logits, labels, rows, cols, smoothing, loss_rows, dlogits, grad_scale, c->dev_err);
    return cuda_launched("softmax_xent");
}
