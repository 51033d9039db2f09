// kernels/cuda/reduce.cu: deterministic reductions (bias gradient, sum of
// squares, non-finite count), scaling, and the training step's guard.
//
// No atomics feed a weight: every sum runs over fixed blocks whose size
// depends on n alone, each block reduces in a fixed tree, and the block
// partials are added in block order, so results repeat bit for bit on the
// same GPU whatever else is running.
#include "cuda-backend.h"

#define REDUCE_THREADS 256

// A block-wide sum in a fixed order (thread 0 gets the result).
template <typename T>
__device__ T cuda_block_sum(T v, T *smem)
{
    smem[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) smem[threadIdx.x] += smem[threadIdx.x + s];
        __syncthreads();
    }
    return smem[0];
}

// db[c] = sum_r dy[r, c]: 32 columns a block, 16 row groups each summing
// its rows in order, then the groups in order.
__global__ void cuda_bias_grad_kernel(const float *dy, long long rows, long long cols, float *db)
{
    __shared__ float part[16][33];
    long long c = blockIdx.x * 32LL + threadIdx.x;
    float s = 0.0f;
    if (c < cols)
        for (long long r = threadIdx.y; r < rows; r += 16) s += dy[r * cols + c];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float t = 0.0f;
        for (int g = 0; g < 16; g++) t += part[g][threadIdx.x];
        db[c] = t;
    }
}

extern "C" enum kiln_status cuda_bias_grad(void *ctx, const float *dy, int64_t rows, int64_t cols,
                                           float *db)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (cols <= 0) return KILN_OK;
    cuda_bias_grad_kernel<<<(unsigned)((cols + 31) / 32), dim3(32, 16), 0, c->stream>>>(dy, rows,
                                                                                     cols, db);
    return cuda_launched("bias_grad");
}

// One CUDA block per fixed block of x: partial[b] = sum x^2 (double),
// count[b] = number of NaN/Inf.
__global__ void cuda_sq_partials_kernel(const float *x, long long n, long long block,
                                        double *partial, long long *count)
{
    __shared__ double sd[REDUCE_THREADS];
    __shared__ long long sc[REDUCE_THREADS];
    long long lo = blockIdx.x * block, hi = lo + block < n ? lo + block : n;
    double s = 0.0;
    long long bad = 0;
    for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        float v = x[i];
        s += (double)v * (double)v;
        bad += !isfinite(v);
    }
    s = cuda_block_sum(s, sd);
    bad = cuda_block_sum(bad, sc);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = s;
        count[blockIdx.x] = bad;
    }
}

// Adds the partials in block order.
__global__ void cuda_sq_total_kernel(const double *partial, const long long *count, int blocks,
                                     double *sum_out, long long *count_out)
{
    double s = 0.0;
    long long bad = 0;
    for (int b = 0; b < blocks; b++) {
        s += partial[b];
        bad += count[b];
    }
    if (sum_out) *sum_out = s;
    if (count_out) *count_out = bad;
}

static enum kiln_status cuda_sq_launch(struct cuda_ctx *c, const char *op, const float *x,
                                       long long n, int *blocks)
{
    long long block = cuda_sum_block(n);
    *blocks = (int)((n + block - 1) / block);
    if (*blocks < 1) *blocks = 1;
    cuda_sq_partials_kernel<<<*blocks, REDUCE_THREADS, 0, c->stream>>>(x, n, block, c->partial,
                                                                       c->partial_count);
    return cuda_launched(op);
}

extern "C" enum kiln_status cuda_sum_squares(void *ctx, const float *x, int64_t n, double *out)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    int blocks;
    enum kiln_status st = cuda_sq_launch(c, "sum_squares", x, n, &blocks);
    if (st != KILN_OK) return st;
    cuda_sq_total_kernel<<<1, 1, 0, c->stream>>>(c->partial, c->partial_count, blocks, c->partial,
                                                 NULL);
    if ((st = cuda_launched("sum_squares")) != KILN_OK) return st;
    CUDA_TRY("sum_squares", cudaMemcpyAsync(c->host_result, c->partial, sizeof(double),
                                            cudaMemcpyDeviceToHost, c->stream));
    if ((st = cuda_wait(c, "sum_squares")) != KILN_OK) return st;
    *out = *c->host_result;
    return KILN_OK;
}

extern "C" enum kiln_status cuda_count_nonfinite(void *ctx, const float *x, int64_t n, int64_t *out)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    int blocks;
    enum kiln_status st = cuda_sq_launch(c, "count_nonfinite", x, n, &blocks);
    if (st != KILN_OK) return st;
    cuda_sq_total_kernel<<<1, 1, 0, c->stream>>>(c->partial, c->partial_count, blocks, NULL,
                                                 c->partial_count);
    if ((st = cuda_launched("count_nonfinite")) != KILN_OK) return st;
    CUDA_TRY("count_nonfinite", cudaMemcpyAsync(c->host_count, c->partial_count, sizeof(long long),
                                                cudaMemcpyDeviceToHost, c->stream));
    if ((st = cuda_wait(c, "count_nonfinite")) != KILN_OK) return st;
    *out = *c->host_count;
    return KILN_OK;
}

// x *= s, or x *= *s_mem when s_mem is set (read when the kernel runs).
__global__ void cuda_scale_kernel(float *x, long long n, float s, const float *s_mem)
{
    float f = s_mem ? *s_mem : s;
    if (s_mem && f == 1.0f) return; // step_check decided not to clip
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        x[i] *= f;
}

extern "C" enum kiln_status cuda_scale(void *ctx, float *x, int64_t n, float s)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (n <= 0) return KILN_OK;
    cuda_scale_kernel<<<cuda_blocks(c, n), 256, 0, c->stream>>>(x, n, s, NULL);
    return cuda_launched("scale");
}

// The step's guard: the loss mean (a fixed tree in double), then the
// gradient partials in block order; records the outcome and the clip scale.
__global__ void cuda_step_check_kernel(struct kiln_step_ctl *ctl, struct kiln_step_vars *vars,
                                       const float *loss_rows, long long rows,
                                       const double *partial, const long long *count, int blocks,
                                       float clip_norm, float *clip_scale)
{
    __shared__ double sd[REDUCE_THREADS];
    double s = 0.0;
    for (long long r = threadIdx.x; r < rows; r += blockDim.x) s += (double)loss_rows[r];
    s = cuda_block_sum(s, sd);
    if (threadIdx.x != 0) return;
    double loss = s / (double)rows;
    int bad = 0;
    float scale = 1.0f;
    if (!isfinite(loss)) {
        bad = KILN_STEP_BAD_LOSS;
    } else {
        double sq = 0.0;
        long long nonfinite = 0;
        for (int b = 0; b < blocks; b++) {
            sq += partial[b];
            nonfinite += count[b];
        }
        if (nonfinite > 0) {
            bad = KILN_STEP_BAD_GRAD;
        } else if (clip_norm > 0.0f) {
            double norm = sqrt(sq);
            // torch.nn.utils.clip_grad_norm_: max_norm / (norm + 1e-6).
            if (norm > clip_norm) scale = (float)(clip_norm / (norm + 1e-6));
        }
    }
    long long cur = ctl->cursor;
    ctl->now.loss = loss;
    ctl->now.bad = bad;
    vars[cur].loss = loss;
    vars[cur].bad = bad;
    if (bad && ctl->first_bad < 0) ctl->first_bad = cur;
    ctl->cursor = cur + 1;
    *clip_scale = scale;
}

extern "C" enum kiln_status cuda_step_check(void *ctx, struct kiln_step_ctl *ctl,
                                            struct kiln_step_vars *vars, const float *loss_rows,
                                            int64_t rows, float *grads, int64_t n,
                                            float clip_norm)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    int blocks;
    enum kiln_status st = cuda_sq_launch(c, "step_check", grads, n, &blocks);
    if (st != KILN_OK) return st;
    cuda_step_check_kernel<<<1, REDUCE_THREADS, 0, c->stream>>>(
        ctl, vars, loss_rows, rows, c->partial, c->partial_count, blocks, clip_norm, c->clip_scale);
    if ((st = cuda_launched("step_check")) != KILN_OK) return st;
    if (clip_norm > 0.0f && n > 0) {
        cuda_scale_kernel<<<cuda_blocks(c, n), 256, 0, c->stream>>>(grads, n, 1.0f, c->clip_scale);
        st = cuda_launched("step_check (clip)");
    }
    return st;
}
