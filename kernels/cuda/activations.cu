// kernels/cuda/activations.cu: the dense epilogue, activations and softmax.
// Per-element math comes from elementwise.h, shared with the CPU backend.
#include "cuda-backend.h"

// y[r,c] = act(y[r,c] + bias[c]); 2-D so the column needs no division.
__global__ void cuda_bias_act_kernel(float *__restrict__ y, const float *__restrict__ bias,
                                     long long rows, long long cols, int act, float param)
{
    for (long long r = blockIdx.y; r < rows; r += gridDim.y)
        for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < cols;
             c += (long long)gridDim.x * blockDim.x) {
            float v = y[r * cols + c];
            if (bias) v += bias[c];
            y[r * cols + c] = kiln_act_apply((enum kiln_act)act, param, v);
        }
}

extern "C" enum kiln_status cuda_bias_act(void *ctx, float *y, const float *bias, int64_t rows,
                                          int64_t cols, enum kiln_act act, float param)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (rows <= 0 || cols <= 0) return KILN_OK;
    if (!bias && act == KILN_ACT_NONE) return KILN_OK;
    dim3 grid((unsigned)((cols + 255) / 256 < 64 ? (cols + 255) / 256 : 64),
              (unsigned)(rows < 65535 ? rows : 65535));
    cuda_bias_act_kernel<<<grid, 256, 0, c->stream>>>(y, bias, rows, cols, (int)act, param);
    return cuda_launched("bias_act");
}

// Vectorised when every pointer is 16-byte aligned: 4 elements a thread.
// No __restrict__: the contract allows x == y (each element is read and
// written by the same thread, but restrict would still be a lie).
__global__ void cuda_act_forward_kernel(int act, float param, const float *x, float *y,
                                        long long n, bool vec)
{
    long long stride = (long long)gridDim.x * blockDim.x;
    long long i0 = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long n4 = vec ? n / 4 : 0;
    for (long long i = i0; i < n4; i += stride) {
        float4 v = reinterpret_cast<const float4 *>(x)[i];
        v.x = kiln_act_apply((enum kiln_act)act, param, v.x);
        v.y = kiln_act_apply((enum kiln_act)act, param, v.y);
        v.z = kiln_act_apply((enum kiln_act)act, param, v.z);
        v.w = kiln_act_apply((enum kiln_act)act, param, v.w);
        reinterpret_cast<float4 *>(y)[i] = v;
    }
    for (long long i = n4 * 4 + i0; i < n; i += stride)
        y[i] = kiln_act_apply((enum kiln_act)act, param, x[i]);
}

extern "C" enum kiln_status cuda_act_forward(void *ctx, enum kiln_act act, float param,
                                             const float *x, float *y, int64_t n)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (n <= 0) return KILN_OK;
    bool vec = cuda_aligned16(x) && cuda_aligned16(y);
    cuda_act_forward_kernel<<<cuda_blocks(c, vec ? (n + 3) / 4 : n), 256, 0, c->stream>>>(
        (int)act, param, x, y, n, vec);
    return cuda_launched("act_forward");
}

__device__ __forceinline__ float cuda_act_grad(int act, float param, const float *x,
                                               const float *y, float dy, long long i)
{
    // relu selects, as the CPU backend does: a dropped gradient stays 0 even
    // when it is infinite.
    if (act == KILN_ACT_RELU) return y[i] > 0.0f ? dy : 0.0f;
    return dy * kiln_act_deriv((enum kiln_act)act, param, x ? x[i] : 0.0f, y ? y[i] : 0.0f);
}

__global__ void cuda_act_backward_kernel(int act, float param, const float *x, const float *y,
                                         const float *dy, float *dx, long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dx[i] = cuda_act_grad(act, param, x, y, dy[i], i);
}

extern "C" enum kiln_status cuda_act_backward(void *ctx, enum kiln_act act, float param,
                                              const float *x, const float *y, const float *dy,
                                              float *dx, int64_t n)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (n <= 0) return KILN_OK;
    cuda_act_backward_kernel<<<cuda_blocks(c, n), 256, 0, c->stream>>>((int)act, param, x, y, dy,
                                                                       dx, n);
    return cuda_launched("act_backward");
}

// --- softmax: one warp per row, shuffles in a fixed order -------------------

__device__ __forceinline__ float cuda_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float cuda_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Max that lets a NaN win, so that a NaN row gives NaN probabilities as the
// CPU's loop does (fmaxf would drop it).
__device__ __forceinline__ float cuda_nan_max(float a, float b)
{
    return (a != a || b != b) ? __int_as_float(0x7fc00000) : fmaxf(a, b);
}

__global__ void cuda_softmax_forward_kernel(const float *x, float *y, long long rows,
                                            long long cols)
{
    int lane = threadIdx.x & 31;
    long long warps = (long long)gridDim.x * (blockDim.x / 32);
    for (long long r = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32; r < rows;
         r += warps) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float mx = -INFINITY;
        for (long long cc = lane; cc < cols; cc += 32) mx = cuda_nan_max(mx, xr[cc]);
        for (int o = 16; o > 0; o >>= 1) mx = cuda_nan_max(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        float sum = 0.0f;
        for (long long cc = lane; cc < cols; cc += 32) sum += expf(xr[cc] - mx);
        sum = cuda_warp_sum(sum);
        float inv = 1.0f / sum;
        for (long long cc = lane; cc < cols; cc += 32) yr[cc] = expf(xr[cc] - mx) * inv;
    }
}

extern "C" enum kiln_status cuda_softmax_forward(void *ctx, const float *x, float *y,
                                                 int64_t rows, int64_t cols)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (rows <= 0 || cols <= 0) return KILN_OK;
    cuda_softmax_forward_kernel<<<cuda_blocks(c, rows * 32), 256, 0, c->stream>>>(x, y, rows, cols);
    return cuda_launched("softmax_forward");
}

__global__ void cuda_softmax_backward_kernel(const float *y, const float *dy, float *dx,
                                             long long rows, long long cols)
{
    int lane = threadIdx.x & 31;
    long long warps = (long long)gridDim.x * (blockDim.x / 32);
    for (long long r = blockIdx.x * (long long)(blockDim.x / 32) + threadIdx.x / 32; r < rows;
         r += warps) {
        const float *yr = y + r * cols, *dyr = dy + r * cols;
        float dot = 0.0f;
        for (long long cc = lane; cc < cols; cc += 32) dot += dyr[cc] * yr[cc];
        dot = cuda_warp_sum(dot);
        for (long long cc = lane; cc < cols; cc += 32) dx[r * cols + cc] = yr[cc] * (dyr[cc] - dot);
    }
}

extern "C" enum kiln_status cuda_softmax_backward(void *ctx, const float *y, const float *dy,
                                                  float *dx, int64_t rows, int64_t cols)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (rows <= 0 || cols <= 0) return KILN_OK;
    cuda_softmax_backward_kernel<<<cuda_blocks(c, rows * 32), 256, 0, c->stream>>>(y, dy, dx, rows,
                                                                                   cols);
    return cuda_launched("softmax_backward");
}
