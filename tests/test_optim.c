/* tests/test_optim.c: the optimizers (through the op table's optimizer_step)
 * and the learning-rate schedules (kiln_schedule_lr).
 *
 * Each optimizer takes two steps on five parameters. The result is compared
 * with (a) the PyTorch update rules written out below in float64, and (b)
 * the numbers torch.optim itself produced for the same parameters and
 * gradients (float32), pasted in from this script:
 *
 *   import torch
 *   p0 = [0.5, -1.25, 2.0, 0.0, -0.3]
 *   gs = [[0.1, -0.2, 0.3, -0.4, 0.05], [-0.3, 0.25, 0.1, 0.2, -0.6]]
 *   q = torch.tensor(p0, requires_grad=True)
 *   opt = torch.optim.Adam([q], lr=0.01, betas=(0.9, 0.999), eps=1e-8)  # etc.
 *   for g in gs: q.grad = torch.tensor(g); opt.step(); print(q)
 *
 * Tolerances: against float64, 1e-6 relative to the parameter plus 1e-7
 * absolute (float32 rounding of a few operations on values of size ~2);
 * against torch's float32 numbers 1e-6 absolute (two float32 computations
 * of the same formula in a different operation order differ by a few ulp).
 */
#include "test.h"

#include "kernels.h"
#include "kiln/nn.h"

static struct kiln_backend *g_be;

enum { N = 5 };
static const float P0[N] = {0.5f, -1.25f, 2.0f, 0.0f, -0.3f};
static const float GRADS[2][N] = {{0.1f, -0.2f, 0.3f, -0.4f, 0.05f},
                                  {-0.3f, 0.25f, 0.1f, 0.2f, -0.6f}};

/* --- the PyTorch update rules, in float64 --------------------------------------- */

/* torch.optim.SGD (dampening 0):
 *   g = g + wd * p
 *   if momentum: buf = momentum * buf + g   (buf starts at 0, so the first
 *                                            step gives buf = g, as torch)
 *                g = nesterov ? g + momentum * buf : buf
 *   p = p - lr * g
 */
static void ref_sgd(const struct kiln_optim_step *h, double *p, const float *g, double *buf)
{
    for (int i = 0; i < N; i++) {
        double gg = (double)g[i] + (double)h->weight_decay * p[i];
        if (h->momentum != 0.0f) {
            buf[i] = (double)h->momentum * buf[i] + gg;
            gg = h->nesterov ? gg + (double)h->momentum * buf[i] : buf[i];
        }
        p[i] -= (double)h->lr * gg;
    }
}

/* torch.optim.Adam / AdamW (amsgrad off), step t (1-based):
 *   Adam:  g = g + wd * p                     (L2 in the gradient)
 *   AdamW: p = p * (1 - lr * wd)              (decoupled decay, first)
 *   m = b1 m + (1 - b1) g
 *   v = b2 v + (1 - b2) g^2
 *   p = p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 */
static void ref_adam(const struct kiln_optim_step *h, double *p, const float *g, double *m,
                     double *v)
{
    double b1 = h->beta1, b2 = h->beta2, lr = h->lr, wd = h->weight_decay;
    for (int i = 0; i < N; i++) {
        double gg = g[i];
        if (h->kind == KILN_OPTIM_ADAMW) p[i] *= 1.0 - lr * wd;
        else gg += wd * p[i];
        m[i] = b1 * m[i] + (1.0 - b1) * gg;
        v[i] = b2 * v[i] + (1.0 - b2) * gg * gg;
        double bc1 = 1.0 - pow(b1, (double)h->t), bc2 = 1.0 - pow(b2, (double)h->t);
        p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + (double)h->eps);
    }
}

/* --- the cases --------------------------------------------------------------------- */

struct optim_case {
    const char *name;
    struct kiln_optim_step h;
    float torch_p[2][N]; /* torch.optim after step 1 and step 2 */
};

static const struct optim_case CASES[] = {
    {"sgd lr 0.1",
     {.kind = KILN_OPTIM_SGD, .lr = 0.1f},
     {{0.49000001f, -1.23000002f, 1.97000003f, 0.0400000028f, -0.305000007f},
      {0.520000041f, -1.255f, 1.96000004f, 0.0200000014f, -0.245000005f}}},
    {"sgd weight_decay 0.05",
     {.kind = KILN_OPTIM_SGD, .lr = 0.1f, .weight_decay = 0.05f},
     {{0.487500012f, -1.22375f, 1.96000004f, 0.0400000028f, -0.303500026f},
      {0.515062511f, -1.2426312f, 1.94020009f, 0.0198000018f, -0.24198252f}}},
    {"sgd momentum 0.9",
     {.kind = KILN_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f},
     {{0.49000001f, -1.23000002f, 1.97000003f, 0.0400000028f, -0.305000007f},
      {0.511000037f, -1.23699999f, 1.93299997f, 0.0560000017f, -0.249500006f}}},
    {"sgd nesterov 0.9 weight_decay 0.01",
     {.kind = KILN_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f, .nesterov = true,
      .weight_decay = 0.01f},
     {{0.480049998f, -1.20962501f, 1.93920004f, 0.0759999976f, -0.30893001f},
      {0.527632892f, -1.23761427f, 1.89059556f, 0.0702555925f, -0.198150024f}}},
    {"adam",
     {.kind = KILN_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
     {{0.49000001f, -1.24000001f, 1.99000001f, 0.00999999978f, -0.310000002f},
      {0.49494192f, -1.24162734f, 1.98128939f, 0.01266337f, -0.303140491f}}},
    {"adam weight_decay 0.1 (L2)",
     {.kind = KILN_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
      .weight_decay = 0.1f},
     {{0.49000001f, -1.24000001f, 1.99000001f, 0.00999999978f, -0.310000002f},
      {0.492952466f, -1.236444f, 1.98042941f, 0.012644073f, -0.302774519f}}},
    {"adamw weight_decay 0.1",
     {.kind = KILN_OPTIM_ADAMW, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
      .weight_decay = 0.1f},
     {{0.489500016f, -1.23874998f, 1.98800004f, 0.00999999978f, -0.309700012f},
      {0.493952423f, -1.2391386f, 1.97730148f, 0.0126533704f, -0.302530795f}}},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

static int run_case(const struct optim_case *c)
{
    const struct kiln_ops *ops = g_be->iface->ops;
    int spp = kiln_optim_state_per_param(c->h.kind, c->h.momentum);
    float p[N], state[2 * N + 1];
    double pd[N], s1[N] = {0}, s2[N] = {0};
    const float guard = 777.0f;
    for (int i = 0; i < N; i++) {
        p[i] = P0[i];
        pd[i] = P0[i];
    }
    for (int i = 0; i < 2 * N + 1; i++) state[i] = 0.0f;
    state[spp * N] = guard; /* nothing past the state's spp * N floats is touched */
    for (int step = 0; step < 2; step++) {
        struct kiln_optim_step h = c->h;
        h.t = step + 1;
        enum kiln_status st = ops->optimizer_step(g_be->ctx, &h, p, GRADS[step],
                                                  spp ? state : NULL, N);
        if (st != KILN_OK) {
            fprintf(stderr, "%s: optimizer_step failed: %s\n", c->name, kiln_last_error());
            return 1;
        }
        if (c->h.kind == KILN_OPTIM_SGD) ref_sgd(&h, pd, GRADS[step], s1);
        else ref_adam(&h, pd, GRADS[step], s1, s2);
        for (int i = 0; i < N; i++) {
            if (!(fabs(p[i] - pd[i]) <= 1e-6 * fabs(pd[i]) + 1e-7)) {
                fprintf(stderr, "%s step %d: p[%d] = %.9g, float64 rule %.9g\n", c->name, step + 1,
                        i, (double)p[i], pd[i]);
                return 1;
            }
            if (!(fabs(p[i] - c->torch_p[step][i]) <= 1e-6)) {
                fprintf(stderr, "%s step %d: p[%d] = %.9g, torch.optim %.9g\n", c->name, step + 1,
                        i, (double)p[i], (double)c->torch_p[step][i]);
                return 1;
            }
            /* State layout: SGD [buf[n]], Adam [m[n], v[n]]. */
            if (spp >= 1 && !(fabs(state[i] - s1[i]) <= 1e-6 * fabs(s1[i]) + 1e-9)) {
                fprintf(stderr, "%s step %d: state[%d] = %.9g, expected %.9g\n", c->name, step + 1,
                        i, (double)state[i], s1[i]);
                return 1;
            }
            if (spp == 2 && !(fabs(state[N + i] - s2[i]) <= 1e-6 * fabs(s2[i]) + 1e-12)) {
                fprintf(stderr, "%s step %d: v[%d] = %.9g, expected %.9g\n", c->name, step + 1, i,
                        (double)state[N + i], s2[i]);
                return 1;
            }
        }
        if (memcmp(&state[spp * N], &guard, sizeof guard) != 0) {
            fprintf(stderr, "%s: wrote past the optimizer state\n", c->name);
            return 1;
        }
    }
    return 0;
}

TEST(optimizers_match_torch)
{
    for (int c = 0; c < N_CASES; c++) {
        fprintf(stderr, "   %s\n", CASES[c].name);
        if (run_case(&CASES[c])) TEST_FAIL("%s", CASES[c].name);
    }
}

TEST(state_per_param)
{
    ASSERT_EQ_INT(0, kiln_optim_state_per_param(KILN_OPTIM_SGD, 0.0f));
    ASSERT_EQ_INT(1, kiln_optim_state_per_param(KILN_OPTIM_SGD, 0.9f));
    ASSERT_EQ_INT(2, kiln_optim_state_per_param(KILN_OPTIM_ADAM, 0.0f));
    ASSERT_EQ_INT(2, kiln_optim_state_per_param(KILN_OPTIM_ADAMW, 0.9f));
}

/* After one step from zero state: m = (1 - b1) g and v = (1 - b2) g^2 sit in
 * [m[n], v[n]], and the first Adam step moves each parameter by about lr
 * against the sign of its gradient. */
TEST(adam_first_step)
{
    const struct kiln_ops *ops = g_be->iface->ops;
    struct kiln_optim_step h = {.kind = KILN_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f,
                                .beta2 = 0.999f, .eps = 1e-8f, .t = 1};
    float p[N], st[2 * N] = {0};
    memcpy(p, P0, sizeof p);
    ASSERT_OK(ops->optimizer_step(g_be->ctx, &h, p, GRADS[0], st, N));
    for (int i = 0; i < N; i++) {
        /* (1 - b) with b the float32 hyperparameter, as kiln and torch use it */
        ASSERT_NEAR((1.0 - (double)0.9f) * GRADS[0][i], st[i], 1e-8);
        ASSERT_NEAR((1.0 - (double)0.999f) * GRADS[0][i] * GRADS[0][i], st[N + i], 1e-11);
        double sign = GRADS[0][i] > 0 ? 1.0 : -1.0;
        ASSERT_NEAR(P0[i] - 0.01 * sign, p[i], 1e-6);
    }
}

/* AdamW with no weight decay is Adam; lr 0 leaves the parameters alone. */
TEST(adam_adamw_edge_cases)
{
    const struct kiln_ops *ops = g_be->iface->ops;
    struct kiln_optim_step a = {.kind = KILN_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f,
                                .beta2 = 0.999f, .eps = 1e-8f, .t = 1};
    struct kiln_optim_step w = a;
    w.kind = KILN_OPTIM_ADAMW;
    float pa[N], pw[N], sa[2 * N] = {0}, sw[2 * N] = {0};
    memcpy(pa, P0, sizeof pa);
    memcpy(pw, P0, sizeof pw);
    for (int t = 1; t <= 2; t++) {
        a.t = w.t = t;
        ASSERT_OK(ops->optimizer_step(g_be->ctx, &a, pa, GRADS[t - 1], sa, N));
        ASSERT_OK(ops->optimizer_step(g_be->ctx, &w, pw, GRADS[t - 1], sw, N));
    }
    ASSERT(memcmp(pa, pw, sizeof pa) == 0);
    ASSERT(memcmp(sa, sw, sizeof sa) == 0);

    struct kiln_optim_step z = w;
    z.lr = 0.0f;
    z.weight_decay = 0.1f;
    z.t = 3;
    float pz[N];
    memcpy(pz, P0, sizeof pz);
    ASSERT_OK(ops->optimizer_step(g_be->ctx, &z, pz, GRADS[0], sw, N));
    ASSERT(memcmp(pz, P0, sizeof pz) == 0);
    struct kiln_optim_step s = {.kind = KILN_OPTIM_SGD, .lr = 0.0f, .momentum = 0.9f};
    float buf[N] = {0};
    ASSERT_OK(ops->optimizer_step(g_be->ctx, &s, pz, GRADS[1], buf, N));
    ASSERT(memcmp(pz, P0, sizeof pz) == 0);
    for (int i = 0; i < N; i++) ASSERT_NEAR(GRADS[1][i], buf[i], 0.0); /* buf = g */
}

/* --- schedules ------------------------------------------------------------------- */

static struct kiln_train_config sched_config(enum kiln_schedule_kind kind)
{
    struct kiln_train_config c;
    memset(&c, 0, sizeof c);
    c.lr = 0.1f;
    c.schedule = kind;
    c.epochs = 10;
    c.gamma = 0.5f;
    c.step_size = 3;
    c.min_lr = 0.001f;
    return c;
}

TEST(schedule_constant)
{
    struct kiln_train_config c = sched_config(KILN_SCHED_CONSTANT);
    const double base = (double)0.1f;
    for (int64_t step = 0; step < 100; step += 7)
        ASSERT_NEAR(base, kiln_schedule_lr(&c, step, step / 10, 10), 0.0);
    /* A linear warm-up first: lr (step + 1) / warmup for step < warmup. */
    c.warmup_steps = 5;
    ASSERT_NEAR(base * 1.0 / 5.0, kiln_schedule_lr(&c, 0, 0, 10), 1e-15);
    ASSERT_NEAR(base * 3.0 / 5.0, kiln_schedule_lr(&c, 2, 0, 10), 1e-15);
    ASSERT_NEAR(base, kiln_schedule_lr(&c, 4, 0, 10), 1e-15);
    ASSERT_NEAR(base, kiln_schedule_lr(&c, 5, 0, 10), 0.0);
    ASSERT_NEAR(base, kiln_schedule_lr(&c, 99, 9, 10), 0.0);
}

/* torch.optim.lr_scheduler.StepLR: lr * gamma^(epoch // step_size). */
TEST(schedule_step)
{
    struct kiln_train_config c = sched_config(KILN_SCHED_STEP);
    const double base = (double)0.1f;
    static const double factor[10] = {1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125};
    for (int64_t epoch = 0; epoch < 10; epoch++)
        for (int64_t s = 0; s < 10; s += 9) {
            double got = kiln_schedule_lr(&c, epoch * 10 + s, epoch, 10);
            if (!(fabs(got - base * factor[epoch]) <= 1e-15))
                TEST_FAIL("step schedule epoch %lld step %lld: %.17g, expected %.17g",
                          (long long)epoch, (long long)s, got, base * factor[epoch]);
        }
}

/* Cosine with warm-up over epochs * steps_per_epoch steps:
 *   step < W:  lr (step + 1) / W
 *   else:      min_lr + (lr - min_lr) (1 + cos(pi (step - W) / (T - W))) / 2,
 *              progress clamped to 1 past the end. */
TEST(schedule_cosine_warmup)
{
    struct kiln_train_config c = sched_config(KILN_SCHED_COSINE);
    c.warmup_steps = 10;
    const double base = (double)0.1f, lo = (double)0.001f, pi = 3.14159265358979323846;
    const int64_t spe = 10, total = 100, w = 10;
    static const int64_t steps[] = {0, 4, 9, 10, 11, 33, 55, 90, 99, 100, 150};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int64_t s = steps[i];
        double want;
        if (s < w) {
            want = base * (double)(s + 1) / (double)w;
        } else {
            double progress = (double)(s - w) / (double)(total - w);
            if (progress > 1.0) progress = 1.0;
            want = lo + (base - lo) * 0.5 * (1.0 + cos(pi * progress));
        }
        double got = kiln_schedule_lr(&c, s, s / spe, spe);
        if (!(fabs(got - want) <= 1e-12))
            TEST_FAIL("cosine step %lld: %.17g, expected %.17g", (long long)s, got, want);
    }
    /* Landmarks: the peak right after warm-up, half way, the floor. */
    ASSERT_NEAR(base, kiln_schedule_lr(&c, 10, 1, spe), 1e-15);
    ASSERT_NEAR((base + lo) / 2.0, kiln_schedule_lr(&c, 55, 5, spe), 1e-12);
    ASSERT_NEAR(lo, kiln_schedule_lr(&c, 100, 10, spe), 1e-15);
    ASSERT_NEAR(lo, kiln_schedule_lr(&c, 1000, 100, spe), 1e-15);
    /* Monotone non-increasing after warm-up. */
    double prev = INFINITY;
    for (int64_t s = w; s < total + 5; s++) {
        double v = kiln_schedule_lr(&c, s, s / spe, spe);
        if (v > prev + 1e-15) TEST_FAIL("cosine rises at step %lld", (long long)s);
        prev = v;
    }
    /* Without warm-up it starts at lr. */
    c.warmup_steps = 0;
    ASSERT_NEAR(base, kiln_schedule_lr(&c, 0, 0, spe), 1e-15);
    ASSERT_NEAR(lo + (base - lo) * 0.5 * (1.0 + cos(pi * 0.25)), kiln_schedule_lr(&c, 25, 2, spe),
                1e-12);
}

int main(void)
{
    if (kiln_cpu_backend_create(1, &g_be) != KILN_OK) {
        fprintf(stderr, "cannot create the cpu backend: %s\n", kiln_last_error());
        return 1;
    }
    RUN(state_per_param);
    RUN(optimizers_match_torch);
    RUN(adam_first_step);
    RUN(adam_adamw_edge_cases);
    RUN(schedule_constant);
    RUN(schedule_step);
    RUN(schedule_cosine_warmup);
    kiln_backend_free(g_be);
    return test_summary();
}
