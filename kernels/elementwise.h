/* kernels/elementwise.h: per-element math shared by every backend.
 *
 * Written once as static inline functions that compile as C (CPU backend)
 * and as CUDA device code (KILN_HD expands to __host__ __device__ under
 * nvcc), so the backends differ only in how they split the work.
 */
#ifndef KILN_ELEMENTWISE_H
#define KILN_ELEMENTWISE_H

#include <math.h>
#include <stdint.h>

#include "kernels.h"

#ifdef __CUDACC__
#define KILN_HD __host__ __device__ __forceinline__
#else
#define KILN_HD static inline
#endif

/* --- counter-based RNG ------------------------------------------------------
 * A stateless hash of (seed, counter): the value for element i never depends
 * on thread or launch shape. SplitMix64's finaliser mixes well enough for
 * dropout masks and shuffles. */
KILN_HD uint64_t kiln_rng_hash(uint64_t seed, uint64_t counter)
{
    uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform float in [0, 1) with 24 random bits. */
KILN_HD float kiln_rng_uniform(uint64_t seed, uint64_t counter)
{
    return (float)(kiln_rng_hash(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

/* --- activations --------------------------------------------------------- */
KILN_HD float kiln_act_apply(enum kiln_act act, float param, float x)
{
    switch (act) {
    case KILN_ACT_RELU: return x < 0.0f ? 0.0f : x; /* NaN stays NaN, as in torch.relu */
    case KILN_ACT_LEAKY_RELU: return x > 0.0f ? x : param * x;
    case KILN_ACT_TANH: return tanhf(x);
    case KILN_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case KILN_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case KILN_ACT_NONE: break;
    }
    return x;
}

/* act'(.) given the input x and the output y; for every act but GELU only y
 * is read (see kiln_act_grad_from_output). */
KILN_HD float kiln_act_deriv(enum kiln_act act, float param, float x, float y)
{
    switch (act) {
    case KILN_ACT_RELU: return y > 0.0f ? 1.0f : 0.0f;
    /* y > 0 iff x > 0 for a positive slope; PyTorch uses x > 0 too. */
    case KILN_ACT_LEAKY_RELU: return y > 0.0f ? 1.0f : param;
    case KILN_ACT_TANH: return 1.0f - y * y;
    case KILN_ACT_SIGMOID: return y * (1.0f - y);
    case KILN_ACT_GELU: {
        float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
        return cdf + x * pdf;
    }
    case KILN_ACT_NONE: break;
    }
    return 1.0f;
}

/* --- losses -------------------------------------------------------------- */
/* Numerically stable log(1 + exp(x)). */
KILN_HD float kiln_softplus(float x)
{
    return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
}

/* BCE with logits for one element: softplus(z) - t z, as PyTorch computes it. */
KILN_HD float kiln_bce_logit_loss(float z, float t)
{
    return kiln_softplus(z) - t * z;
}

/* --- optimizer updates (PyTorch semantics) -------------------------------- */
/* SGD with momentum (dampening 0) and optional Nesterov; buf may be NULL when
 * momentum is 0. Returns the new parameter. */
KILN_HD float kiln_sgd_update(const struct kiln_optim_step *h, float p, float g, float *buf)
{
    g += h->weight_decay * p;
    if (h->momentum != 0.0f) {
        float b = h->momentum * (*buf) + g;
        *buf = b;
        g = h->nesterov ? g + h->momentum * b : b;
    }
    return p - h->lr * g;
}

/* Adam / AdamW; bc1 = 1 - beta1^t, bc2_sqrt = sqrt(1 - beta2^t). */
KILN_HD float kiln_adam_update(const struct kiln_optim_step *h, float p, float g, float *m,
                               float *v, float bc1, float bc2_sqrt)
{
    if (h->kind == KILN_OPTIM_ADAMW)
        p *= 1.0f - h->lr * h->weight_decay;
    else
        g += h->weight_decay * p;
    float mm = h->beta1 * (*m) + (1.0f - h->beta1) * g;
    float vv = h->beta2 * (*v) + (1.0f - h->beta2) * g * g;
    *m = mm;
    *v = vv;
    float denom = sqrtf(vv) / bc2_sqrt + h->eps;
    return p - (h->lr / bc1) * (mm / denom);
}

#endif
