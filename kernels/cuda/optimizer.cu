// kernels/cuda/optimizer.cu: SGD (momentum, Nesterov, weight decay), Adam
// and AdamW over the whole flat parameter buffer in one launch, with the
// update formulas of elementwise.h.
#include "cuda-backend.h"

// h is passed by value; when h.ctl is set, lr and the bias corrections
// come from the step's control block and a bad step skips the update.
__global__ void cuda_sgd_kernel(struct kiln_optim_step h, float *__restrict__ p,
                                const float *__restrict__ g, float *__restrict__ buf, long long n)
{
    if (h.ctl) {
        if (h.ctl->first_bad >= 0) return;
        h.lr = h.ctl->now.lr;
    }
    float dummy = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        p[i] = kiln_sgd_update(&h, p[i], g[i], buf ? buf + i : &dummy);
}

__global__ void cuda_adam_kernel(struct kiln_optim_step h, float bc1, float bc2_sqrt,
                                 float *__restrict__ p, const float *__restrict__ g,
                                 float *__restrict__ m, float *__restrict__ v, long long n)
{
    if (h.ctl) {
        if (h.ctl->first_bad >= 0) return;
        h.lr = h.ctl->now.lr;
        bc1 = h.ctl->now.bc1;
        bc2_sqrt = h.ctl->now.bc2_sqrt;
    }
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float mi = m[i], vi = v[i];
        p[i] = kiln_adam_update(&h, p[i], g[i], &mi, &vi, bc1, bc2_sqrt);
        m[i] = mi;
        v[i] = vi;
    }
}

extern "C" enum kiln_status cuda_optimizer_step(void *ctx, const struct kiln_optim_step *h,
                                                float *params, const float *grads, float *state,
                                                int64_t n)
{
    struct cuda_ctx *c = CUDA_CTX(ctx);
    if (n <= 0) return KILN_OK;
    unsigned blocks = cuda_blocks(c, n);
    if (h->kind == KILN_OPTIM_SGD) {
        cuda_sgd_kernel<<<blocks, 256, 0, c->stream>>>(*h, params, grads, state, n);
        return cuda_launched("optimizer_step (sgd)");
    }
    // Computed on the host as the CPU backend computes them, so both
    // backends start from the same bias corrections.
    float bc1 = 1.0f - powf(h->beta1, (float)h->t);
    float bc2_sqrt = sqrtf(1.0f - powf(h->beta2, (float)h->t));
    cuda_adam_kernel<<<blocks, 256, 0, c->stream>>>(*h, bc1, bc2_sqrt, params, grads, state,
                                                    state + n, n);
    return cuda_launched("optimizer_step (adam)");
}
