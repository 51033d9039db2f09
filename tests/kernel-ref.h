/* tests/kernel-ref.h: float64 references of the ops, shared by the CPU op
 * tests (test_kernels.c) and the backend parity harness (test_parity.c). */
#ifndef KILN_TEST_KERNEL_REF_H
#define KILN_TEST_KERNEL_REF_H

#include <math.h>
#include <stdint.h>

#include "kernels.h"

/* The activations every op test runs, with their parameters. */
struct act_case {
    enum kiln_act act;
    float param;
    const char *name;
};
static const struct act_case ACTS[] = {
    {KILN_ACT_NONE, 0.0f, "none"},          {KILN_ACT_RELU, 0.0f, "relu"},
    {KILN_ACT_LEAKY_RELU, 0.01f, "leaky_relu(0.01)"}, {KILN_ACT_LEAKY_RELU, 0.2f, "leaky_relu(0.2)"},
    {KILN_ACT_TANH, 0.0f, "tanh"},          {KILN_ACT_SIGMOID, 0.0f, "sigmoid"},
    {KILN_ACT_GELU, 0.0f, "gelu"},
};
#define N_ACTS ((int)(sizeof ACTS / sizeof ACTS[0]))

/* Index of the first element where got differs from ref (NaN must match NaN,
 * an infinity the same infinity, anything else within rtol |ref| + atol *
 * scale[i] (scale NULL: 1)), or -1. */
static inline int64_t ref_first_mismatch(const float *got, const double *ref, int64_t n,
                                         double rtol, double atol, const double *scale)
{
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        if (isnan(r) || isnan(g)) {
            if (!(isnan(r) && isnan(g))) return i;
            continue;
        }
        if (isinf(r) || isinf(g)) {
            if (g != r) return i;
            continue;
        }
        if (!(fabs(g - r) <= rtol * fabs(r) + atol * (scale ? scale[i] : 1.0))) return i;
    }
    return -1;
}

/* torch.nn semantics, NaN propagating (torch.relu(nan) is nan). */
static inline double ref_act(enum kiln_act act, double p, double x)
{
    switch (act) {
    case KILN_ACT_RELU: return x < 0.0 ? 0.0 : x;
    case KILN_ACT_LEAKY_RELU: return x < 0.0 ? p * x : x;
    case KILN_ACT_TANH: return tanh(x);
    case KILN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case KILN_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case KILN_ACT_NONE: break;
    }
    return x;
}

/* dy * act'(x), as torch's backward computes it (relu selects: a gradient
 * where the output is 0 is dropped, even an infinite one). */
static inline double ref_act_grad(enum kiln_act act, double p, double x, double dy)
{
    switch (act) {
    case KILN_ACT_RELU: return x > 0.0 ? dy : 0.0;
    case KILN_ACT_LEAKY_RELU: return x > 0.0 ? dy : dy * p;
    case KILN_ACT_TANH: {
        double t = tanh(x);
        return dy * (1.0 - t * t);
    }
    case KILN_ACT_SIGMOID: {
        double s = 1.0 / (1.0 + exp(-x));
        return dy * s * (1.0 - s);
    }
    case KILN_ACT_GELU: {
        double cdf = 0.5 * (1.0 + erf(x / sqrt(2.0)));
        double pdf = exp(-0.5 * x * x) / sqrt(2.0 * 3.14159265358979323846);
        return dy * (cdf + x * pdf);
    }
    case KILN_ACT_NONE: break;
    }
    return dy;
}

static inline void ref_softmax_row(const float *x, double *y, int64_t cols)
{
    double mx = -INFINITY;
    for (int64_t c = 0; c < cols; c++)
        if (x[c] > mx) mx = x[c];
    double sum = 0.0;
    for (int64_t c = 0; c < cols; c++) {
        y[c] = exp((double)x[c] - mx);
        sum += y[c];
    }
    for (int64_t c = 0; c < cols; c++) y[c] /= sum;
}

/* Loss and gradient of one row of softmax cross-entropy with label smoothing s
 * (torch.nn.CrossEntropyLoss(label_smoothing=s)). */
static inline double ref_xent_row(const float *z, int32_t y, int64_t cols, double s, double gscale,
                           double *d, double *loss_scale)
{
    double mx = -INFINITY;
    for (int64_t c = 0; c < cols; c++)
        if (z[c] > mx) mx = z[c];
    double sum = 0.0;
    for (int64_t c = 0; c < cols; c++) sum += exp((double)z[c] - mx);
    double lse = mx + log(sum), loss = 0.0, mag = fabs(lse);
    for (int64_t c = 0; c < cols; c++) {
        double t = s / (double)cols + (c == y ? 1.0 - s : 0.0);
        if (t != 0.0) {
            loss -= t * ((double)z[c] - lse);
            mag += fabs(t * z[c]);
        }
        if (d) d[c] = gscale * (exp((double)z[c] - mx) / sum - t);
    }
    *loss_scale = mag;
    return loss;
}


/* The optimizer settings the op tests step with: plain SGD, SGD with
 * momentum, Nesterov and weight decay, Adam with L2 decay at step 3, AdamW at
 * step 1. */
static const struct kiln_optim_step ref_optim_cases[] = {
    {.kind = KILN_OPTIM_SGD, .lr = 0.1f},
    {.kind = KILN_OPTIM_SGD, .lr = 0.05f, .weight_decay = 0.01f, .momentum = 0.9f,
     .nesterov = true},
    {.kind = KILN_OPTIM_ADAM, .lr = 1e-3f, .weight_decay = 0.01f, .beta1 = 0.9f,
     .beta2 = 0.999f, .eps = 1e-8f, .t = 3},
    {.kind = KILN_OPTIM_ADAMW, .lr = 1e-2f, .weight_decay = 0.1f, .beta1 = 0.8f,
     .beta2 = 0.99f, .eps = 1e-6f, .t = 1},
};
#define REF_OPTIM_CASES (sizeof ref_optim_cases / sizeof ref_optim_cases[0])
/* One optimizer step over n parameters in float64, torch.optim's update:
 * parameters p0, gradients g, state st0 (kiln_optim_state_per_param slots
 * of n) in; pref (n) and sref (slots * n) out. */
static inline void ref_optimizer_step(const struct kiln_optim_step *o, const float *p0,
                                      const float *g, const float *st0, int64_t n, double *pref,
                                      double *sref)
{
    for (int64_t i = 0; i < n; i++) {
        double p = p0[i], gg = g[i];
        if (o->kind == KILN_OPTIM_SGD) {
            gg += (double)o->weight_decay * p;
            if (o->momentum != 0.0f) {
                double bb = (double)o->momentum * st0[i] + gg;
                sref[i] = bb;
                gg = o->nesterov ? gg + (double)o->momentum * bb : bb;
            }
            pref[i] = p - (double)o->lr * gg;
        } else {
            if (o->kind == KILN_OPTIM_ADAMW) p *= 1.0 - (double)o->lr * o->weight_decay;
            else gg += (double)o->weight_decay * p;
            double m = (double)o->beta1 * st0[i] + (1.0 - o->beta1) * gg;
            double v = (double)o->beta2 * st0[n + i] + (1.0 - o->beta2) * gg * gg;
            sref[i] = m;
            sref[n + i] = v;
            double bc1 = 1.0 - pow(o->beta1, (double)o->t);
            double bc2 = 1.0 - pow(o->beta2, (double)o->t);
            pref[i] = p - (double)o->lr / bc1 * m / (sqrt(v) / sqrt(bc2) + o->eps);
        }
    }
}

#endif
