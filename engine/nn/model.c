/* engine/nn/model.c: building, planning and running a Sequential model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elementwise.h"
#include "model-internal.h"

static bool layer_is_activation(enum kiln_layer_kind k, enum kiln_act *act)
{
    switch (k) {
    case KILN_LAYER_RELU: *act = KILN_ACT_RELU; return true;
    case KILN_LAYER_LEAKY_RELU: *act = KILN_ACT_LEAKY_RELU; return true;
    case KILN_LAYER_TANH: *act = KILN_ACT_TANH; return true;
    case KILN_LAYER_SIGMOID: *act = KILN_ACT_SIGMOID; return true;
    case KILN_LAYER_GELU: *act = KILN_ACT_GELU; return true;
    default: return false;
    }
}

static float *be_alloc_floats(struct kiln_backend *be, int64_t n)
{
    return be->iface->alloc(be->ctx, (size_t)(n > 0 ? n : 1) * sizeof(float));
}

static void model_add_tensor(struct kiln_model *m, int layer_index, const char *suffix, int ndim,
                             int64_t d0, int64_t d1)
{
    struct kiln_param_view *v = &m->tensors[m->n_tensors++];
    snprintf(v->name, sizeof v->name, "%d.%s", layer_index, suffix);
    v->ndim = ndim;
    v->shape[0] = d0;
    v->shape[1] = ndim > 1 ? d1 : 0;
    v->offset = m->n_params;
    v->size = ndim > 1 ? d0 * d1 : d0;
    m->n_params += v->size;
}

/* Works out each layer's shapes, fusions and parameter offsets. */
static enum kiln_status model_plan_layers(struct kiln_model *m)
{
    const struct kiln_model_config *cfg = &m->cfg;
    int ndim = cfg->input_ndim;
    int64_t shape[KILN_MAX_DIMS];
    int64_t size = 1;
    for (int d = 0; d < ndim; d++) {
        shape[d] = cfg->input_shape[d];
        size *= shape[d];
    }
    m->in_size = size;
    m->max_width = size;
    if (cfg->n_layers < 1) return kiln_errorf(KILN_ERR_CONFIG, "model: no layers");
    for (int i = 0; i < cfg->n_layers; i++) {
        const struct kiln_layer_config *lc = &cfg->layers[i];
        struct nn_layer *l = &m->layers[i];
        l->kind = lc->kind;
        l->index = i;
        l->in_size = size;
        l->w_off = l->b_off = -1;
        enum kiln_act act;
        if (lc->kind == KILN_LAYER_DENSE) {
            if (ndim != 1)
                return kiln_errorf(KILN_ERR_CONFIG,
                                   "model.layers[%d] (dense, line %d): input has %d dimensions; "
                                   "add a flatten layer before it",
                                   i, lc->line, ndim);
            if (lc->units < 1)
                return kiln_errorf(KILN_ERR_CONFIG, "model.layers[%d] (dense, line %d): units < 1",
                                   i, lc->line);
            l->w_off = m->n_params;
            model_add_tensor(m, i, "weight", 2, lc->units, size);
            if (lc->bias) {
                l->b_off = m->n_params;
                model_add_tensor(m, i, "bias", 1, lc->units, 0);
            }
            size = lc->units;
            shape[0] = size;
        } else if (lc->kind == KILN_LAYER_FLATTEN) {
            ndim = 1;
            shape[0] = size;
            l->passthrough = true;
        } else if (lc->kind == KILN_LAYER_SOFTMAX) {
            if (ndim != 1)
                return kiln_errorf(KILN_ERR_CONFIG,
                                   "model.layers[%d] (softmax, line %d): input has %d dimensions; "
                                   "add a flatten layer before it",
                                   i, lc->line, ndim);
        } else if (lc->kind == KILN_LAYER_DROPOUT) {
            l->rate = lc->rate;
        } else if (layer_is_activation(lc->kind, &act)) {
            l->act = act;
            l->act_param = lc->negative_slope;
            /* kiln_act_deriv reads the output's sign, which is the input's
             * only for a slope >= 0 (the config schema enforces it too). */
            if (act == KILN_ACT_LEAKY_RELU && l->act_param < 0.0f)
                return kiln_errorf(KILN_ERR_CONFIG,
                                   "model.layers[%d] (leaky_relu, line %d): negative_slope must "
                                   "be >= 0",
                                   i, lc->line);
            /* Fuse into the dense before when the derivative needs only the
             * output: one pass over the activations instead of two. */
            if (i > 0 && m->layers[i - 1].kind == KILN_LAYER_DENSE &&
                m->layers[i - 1].epilogue == KILN_ACT_NONE && kiln_act_grad_from_output(act)) {
                m->layers[i - 1].epilogue = act;
                m->layers[i - 1].epilogue_param = l->act_param;
                l->fused = true;
            }
        } else {
            return kiln_errorf(KILN_ERR_CONFIG, "model.layers[%d]: unknown layer kind %d", i,
                               (int)lc->kind);
        }
        l->out_size = size;
        if (size > m->max_width) m->max_width = size;
    }
    m->n_layers = cfg->n_layers;
    m->out_size = size;
    return KILN_OK;
}

enum kiln_status kiln_model_create(const struct kiln_model_config *cfg, struct kiln_backend *be,
                                   int64_t max_batch, struct kiln_model **out)
{
    *out = NULL;
    if (max_batch < 1) return kiln_errorf(KILN_ERR_CONFIG, "model: batch size must be >= 1");
    struct kiln_model *m = calloc(1, sizeof *m);
    if (!m) return kiln_errorf(KILN_ERR_NOMEM, "model: out of memory");
    m->cfg = *cfg;
    m->be = be;
    m->queued_rows = -1;
    m->ops = be->iface->ops;
    m->max_batch = max_batch;
    enum kiln_status st = model_plan_layers(m);
    if (st != KILN_OK) goto cleanup;

    /* Every buffer a step needs, allocated once at the worst case. */
    m->params = be_alloc_floats(be, m->n_params);
    m->grads = be_alloc_floats(be, m->n_params);
    m->x = be_alloc_floats(be, max_batch * m->in_size);
    m->labels = be_alloc_floats(be, max_batch * (m->out_size > 1 ? m->out_size : 1));
    m->loss_rows = be_alloc_floats(be, max_batch);
    m->grad_a = be_alloc_floats(be, max_batch * m->max_width);
    m->grad_b = be_alloc_floats(be, max_batch * m->max_width);
    m->probs = be_alloc_floats(be, max_batch * m->out_size);
    bool ok = m->params && m->grads && m->x && m->labels && m->loss_rows && m->grad_a &&
              m->grad_b && m->probs;
    if (!be->iface->host_memory) {
        m->host_loss_rows = malloc((size_t)max_batch * sizeof(float));
        ok = ok && m->host_loss_rows;
    }
    for (int i = 0; i < m->n_layers && ok; i++) {
        struct nn_layer *l = &m->layers[i];
        if (l->passthrough || l->fused) continue;
        l->out = be_alloc_floats(be, max_batch * l->out_size);
        ok = l->out != NULL;
    }
    if (!ok) {
        /* The backend's message says how much was asked (and free). */
        st = kiln_error_context(KILN_ERR_NOMEM, "model: planning buffers for batch %lld",
                                (long long)max_batch);
        goto cleanup;
    }
    float *zeros = calloc((size_t)(m->n_params ? m->n_params : 1), sizeof(float));
    if (!zeros) {
        st = kiln_errorf(KILN_ERR_NOMEM, "model: out of memory");
        goto cleanup;
    }
    st = be->iface->upload(be->ctx, m->params, zeros, (size_t)m->n_params * sizeof(float));
    if (st == KILN_OK)
        st = be->iface->upload(be->ctx, m->grads, zeros, (size_t)m->n_params * sizeof(float));
    free(zeros);
cleanup:
    if (st != KILN_OK) {
        kiln_model_free(m);
        return st;
    }
    *out = m;
    return KILN_OK;
}

void kiln_model_free(struct kiln_model *m)
{
    if (!m) return;
    struct kiln_backend *be = m->be;
    void *bufs[] = {m->params, m->grads, m->x, m->labels, m->loss_rows,
                    m->grad_a, m->grad_b, m->probs};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->iface->free(be->ctx, bufs[i]);
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].out) be->iface->free(be->ctx, m->layers[i].out);
    free(m->host_loss_rows);
    free(m);
}

/* Standard normal from two counter-based uniforms (Box-Muller). */
static float rng_normal(uint64_t seed, uint64_t i)
{
    float u1 = kiln_rng_uniform(seed, 2 * i), u2 = kiln_rng_uniform(seed, 2 * i + 1);
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

enum kiln_status kiln_model_init_params(struct kiln_model *m, uint64_t seed)
{
    float *host = calloc((size_t)(m->n_params ? m->n_params : 1), sizeof(float));
    if (!host) return kiln_errorf(KILN_ERR_NOMEM, "model: out of memory");
    for (int i = 0; i < m->n_layers; i++) {
        const struct nn_layer *l = &m->layers[i];
        if (l->w_off < 0) continue;
        const struct kiln_layer_config *lc = &m->cfg.layers[i];
        double fan_in = (double)l->in_size, fan_out = (double)l->out_size;
        int64_t n = l->in_size * l->out_size;
        uint64_t tseed = kiln_rng_hash(seed, 0x1000 + (uint64_t)i);
        float *w = host + l->w_off;
        double normal_std = 0, uniform_bound = 0;
        switch (lc->init) {
        case KILN_INIT_HE_NORMAL: normal_std = sqrt(2.0 / fan_in); break;
        case KILN_INIT_HE_UNIFORM: uniform_bound = sqrt(6.0 / fan_in); break;
        case KILN_INIT_GLOROT_NORMAL: normal_std = sqrt(2.0 / (fan_in + fan_out)); break;
        case KILN_INIT_GLOROT_UNIFORM: uniform_bound = sqrt(6.0 / (fan_in + fan_out)); break;
        case KILN_INIT_ZEROS: break;
        }
        for (int64_t j = 0; j < n; j++) {
            if (normal_std > 0)
                w[j] = (float)normal_std * rng_normal(tseed, (uint64_t)j);
            else if (uniform_bound > 0)
                w[j] = (float)uniform_bound * (2.0f * kiln_rng_uniform(tseed, (uint64_t)j) - 1.0f);
            else
                w[j] = 0.0f;
        }
    }
    enum kiln_status st = kiln_model_set_params(m, host);
    free(host);
    return st;
}

int64_t kiln_model_param_count(const struct kiln_model *m) { return m->n_params; }
int kiln_model_tensor_count(const struct kiln_model *m) { return m->n_tensors; }
const struct kiln_param_view *kiln_model_tensor(const struct kiln_model *m, int i)
{
    return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL;
}
int64_t kiln_model_input_size(const struct kiln_model *m) { return m->in_size; }
int64_t kiln_model_output_size(const struct kiln_model *m) { return m->out_size; }
int64_t kiln_model_max_batch(const struct kiln_model *m) { return m->max_batch; }
const struct kiln_model_config *kiln_model_config(const struct kiln_model *m) { return &m->cfg; }

enum kiln_status kiln_model_get_params(const struct kiln_model *m, float *host)
{
    return m->be->iface->download(m->be->ctx, host, m->params,
                                  (size_t)m->n_params * sizeof(float));
}

enum kiln_status kiln_model_get_grads(const struct kiln_model *m, float *host)
{
    return m->be->iface->download(m->be->ctx, host, m->grads, (size_t)m->n_params * sizeof(float));
}

enum kiln_status kiln_model_set_params(struct kiln_model *m, const float *host)
{
    for (int t = 0; t < m->n_tensors; t++) {
        const struct kiln_param_view *v = &m->tensors[t];
        for (int64_t j = 0; j < v->size; j++)
            if (!isfinite(host[v->offset + j]))
                return kiln_errorf(KILN_ERR_NUMERIC, "parameter %s[%lld] is %g", v->name,
                                   (long long)j, (double)host[v->offset + j]);
    }
    return m->be->iface->upload(m->be->ctx, m->params, host, (size_t)m->n_params * sizeof(float));
}

/* --- forward and backward ----------------------------------------------------- */

/* Dropout masks of different layers and steps must not repeat: the counter
 * space is split by layer (high bits) and row offset (low bits). */
static uint64_t dropout_offset(int layer) { return (uint64_t)layer << 44; }

enum kiln_status nn_forward(struct kiln_model *m, int64_t rows, bool train, uint64_t seed,
                            const float **out)
{
    return nn_forward_keyed(m, rows, train, seed, NULL, out);
}

/* The forward pass over rows of x (backend memory): m->x for training and
 * predict, a caller's staging buffer for kiln_model_predict_queue. Only the
 * first op reads x; with no op at all (every layer passes through) *out is
 * x itself. */
static enum kiln_status nn_forward_from(struct kiln_model *m, const float *x, int64_t rows,
                                        bool train, uint64_t seed, const uint64_t *seed_mem,
                                        const float **out)
{
    const struct kiln_ops *ops = m->ops;
    void *ctx = m->be->ctx;
    const float *cur = x;
    enum kiln_status st = KILN_OK;
    for (int i = 0; i < m->n_layers && st == KILN_OK; i++) {
        struct nn_layer *l = &m->layers[i];
        switch (l->kind) {
        case KILN_LAYER_DENSE: {
            const float *bias = l->b_off >= 0 ? m->params + l->b_off : NULL;
            if (ops->dense_forward) {
                st = ops->dense_forward(ctx, rows, l->out_size, l->in_size, cur,
                                        m->params + l->w_off, bias, l->epilogue,
                                        l->epilogue_param, l->out);
            } else {
                st = ops->gemm(ctx, false, true, rows, l->out_size, l->in_size, 1.0f, cur,
                               l->in_size, m->params + l->w_off, l->in_size, 0.0f, l->out,
                               l->out_size);
                if (st == KILN_OK)
                    st = ops->bias_act(ctx, l->out, bias, rows, l->out_size, l->epilogue,
                                       l->epilogue_param);
            }
            cur = l->out;
            break;
        }
        case KILN_LAYER_FLATTEN: break;
        case KILN_LAYER_SOFTMAX:
            st = ops->softmax_forward(ctx, cur, l->out, rows, l->out_size);
            cur = l->out;
            break;
        case KILN_LAYER_DROPOUT:
            if (train && l->rate > 0.0f) {
                st = seed_mem ? ops->dropout_keyed(ctx, cur, l->out, rows * l->out_size, l->rate,
                                                   seed_mem, dropout_offset(i))
                              : ops->dropout_forward(ctx, cur, l->out, rows * l->out_size,
                                                     l->rate, seed, dropout_offset(i));
                cur = l->out;
            }
            break;
        default: /* activations */
            if (!l->fused) {
                st = ops->act_forward(ctx, l->act, l->act_param, cur, l->out, rows * l->out_size);
                cur = l->out;
            }
            break;
        }
    }
    *out = cur;
    return st;
}

enum kiln_status nn_forward_keyed(struct kiln_model *m, int64_t rows, bool train, uint64_t seed,
                                  const uint64_t *seed_mem, const float **out)
{
    return nn_forward_from(m, m->x, rows, train, seed, seed_mem, out);
}

/* The input a layer saw in the last forward pass (train mode). */
static const float *layer_input(const struct kiln_model *m, int i, bool train)
{
    for (int j = i - 1; j >= 0; j--) {
        const struct nn_layer *l = &m->layers[j];
        if (l->kind == KILN_LAYER_FLATTEN || l->fused) continue;
        if (l->kind == KILN_LAYER_DROPOUT && !(train && l->rate > 0.0f)) continue;
        return l->out;
    }
    return m->x;
}

enum kiln_status nn_backward_keyed(struct kiln_model *m, int64_t rows, uint64_t seed,
                                   const uint64_t *seed_mem)
{
    const struct kiln_ops *ops = m->ops;
    void *ctx = m->be->ctx;
    float *g = m->grad_a, *spare = m->grad_b;
    /* Layers before the first one with parameters need no input gradient. */
    int first_param = m->n_layers;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].w_off >= 0) {
            first_param = i;
            break;
        }
    enum kiln_status st = KILN_OK;
    for (int i = m->n_layers - 1; i >= first_param && st == KILN_OK; i--) {
        struct nn_layer *l = &m->layers[i];
        const float *in = layer_input(m, i, true);
        switch (l->kind) {
        case KILN_LAYER_DENSE:
            st = ops->gemm(ctx, true, false, l->out_size, l->in_size, rows, 1.0f, g, l->out_size,
                           in, l->in_size, 0.0f, m->grads + l->w_off, l->in_size);
            if (st == KILN_OK && l->b_off >= 0)
                st = ops->bias_grad(ctx, g, rows, l->out_size, m->grads + l->b_off);
            if (st == KILN_OK && i > first_param) {
                st = ops->gemm(ctx, false, false, rows, l->in_size, l->out_size, 1.0f, g,
                               l->out_size, m->params + l->w_off, l->in_size, 0.0f, spare,
                               l->in_size);
                float *t = g;
                g = spare;
                spare = t;
            }
            break;
        case KILN_LAYER_FLATTEN: break;
        case KILN_LAYER_SOFTMAX: {
            st = ops->softmax_backward(ctx, l->out, g, spare, rows, l->out_size);
            float *t = g;
            g = spare;
            spare = t;
            break;
        }
        case KILN_LAYER_DROPOUT:
            if (l->rate > 0.0f)
                st = seed_mem ? ops->dropout_keyed(ctx, g, g, rows * l->out_size, l->rate,
                                                   seed_mem, dropout_offset(i))
                              : ops->dropout_backward(ctx, g, g, rows * l->out_size, l->rate,
                                                      seed, dropout_offset(i));
            break;
        default: {
            /* A fused activation's output is the dense layer's buffer. */
            const float *y = l->fused ? m->layers[i - 1].out : l->out;
            st = ops->act_backward(ctx, l->act, l->act_param,
                                   kiln_act_grad_from_output(l->act) ? NULL : in, y, g, g,
                                   rows * l->out_size);
            break;
        }
        }
    }
    return st;
}

enum kiln_status nn_loss_rows(struct kiln_model *m, const float *logits, int64_t rows,
                              bool backward)
{
    const struct kiln_ops *ops = m->ops;
    void *ctx = m->be->ctx;
    float scale = 1.0f / (float)rows;
    float *dlogits = backward ? m->grad_a : NULL;
    enum kiln_status st;
    switch (m->cfg.loss) {
    case KILN_LOSS_SOFTMAX_XENT:
        st = ops->softmax_xent(ctx, logits, m->labels, rows, m->out_size, m->cfg.label_smoothing,
                               m->loss_rows, dlogits, scale);
        break;
    case KILN_LOSS_BCE_LOGITS:
        st = ops->bce_logits(ctx, logits, m->labels, rows, m->out_size, m->loss_rows, dlogits,
                             scale);
        break;
    default:
        st = ops->mse(ctx, logits, m->labels, rows, m->out_size, m->loss_rows, dlogits, scale);
        break;
    }
    return st;
}

enum kiln_status nn_loss_backward(struct kiln_model *m, const float *logits, int64_t rows,
                                  bool backward, uint64_t seed, double *loss)
{
    void *ctx = m->be->ctx;
    enum kiln_status st = nn_loss_rows(m, logits, rows, backward);
    if (st != KILN_OK) return st;
    const float *lr = m->loss_rows;
    if (m->host_loss_rows) {
        st = m->be->iface->download(ctx, m->host_loss_rows, m->loss_rows,
                                    (size_t)rows * sizeof(float));
        if (st != KILN_OK) return st;
        lr = m->host_loss_rows;
    }
    double sum = 0.0;
    for (int64_t r = 0; r < rows; r++) sum += lr[r];
    *loss = sum / (double)rows;
    return backward ? nn_backward_keyed(m, rows, seed, NULL) : KILN_OK;
}

enum kiln_status nn_outputs(struct kiln_model *m, const float *logits, int64_t rows,
                            const float **out)
{
    enum kiln_status st = KILN_OK;
    int64_t n = rows * m->out_size;
    switch (m->cfg.loss) {
    case KILN_LOSS_SOFTMAX_XENT:
        st = m->ops->softmax_forward(m->be->ctx, logits, m->probs, rows, m->out_size);
        break;
    case KILN_LOSS_BCE_LOGITS:
        st = m->ops->act_forward(m->be->ctx, KILN_ACT_SIGMOID, 0.0f, logits, m->probs, n);
        break;
    default:
        *out = logits;
        return KILN_OK;
    }
    *out = m->probs;
    return st;
}

/* Reads the input from the caller's buffer rather than copying it into m->x
 * on the compute stream first: the copy would cost a pass over the chunk for
 * nothing, since only the first op reads the input, and the caller's
 * contract (dev_x untouched until collect) is what m->x would need too. */
enum kiln_status kiln_model_predict_queue(struct kiln_model *m, const float *dev_x, int64_t rows)
{
    m->queued_out = NULL;
    m->queued_rows = -1;
    if (rows < 0 || rows > m->max_batch)
        return kiln_errorf(KILN_ERR_INTERNAL, "predict: %lld rows over the planned batch %lld",
                           (long long)rows, (long long)m->max_batch);
    const float *logits = NULL, *outp = NULL;
    enum kiln_status st = KILN_OK;
    if (rows > 0) {
        st = nn_forward_from(m, dev_x, rows, false, 0, NULL, &logits);
        if (st == KILN_OK) st = nn_outputs(m, logits, rows, &outp);
        if (st != KILN_OK) return st;
    }
    m->queued_out = outp;
    m->queued_rows = rows;
    return KILN_OK;
}

enum kiln_status kiln_model_predict_collect(struct kiln_model *m, int64_t rows, float *host_out)
{
    if (m->queued_rows < 0 || rows != m->queued_rows)
        return kiln_errorf(KILN_ERR_INTERNAL, "predict_collect: %lld rows, %lld queued",
                           (long long)rows, (long long)m->queued_rows);
    const float *outp = m->queued_out;
    m->queued_out = NULL;
    m->queued_rows = -1;
    if (rows == 0) return KILN_OK;
    return m->be->iface->download(m->be->ctx, host_out, outp,
                                  (size_t)(rows * m->out_size) * sizeof(float));
}

enum kiln_status kiln_model_predict(struct kiln_model *m, const float *host_x, int64_t rows,
                                    float *host_out)
{
    if (rows < 0 || rows > m->max_batch)
        return kiln_errorf(KILN_ERR_INTERNAL, "predict: %lld rows over the planned batch %lld",
                           (long long)rows, (long long)m->max_batch);
    if (rows == 0) return KILN_OK;
    struct kiln_backend *be = m->be;
    /* A backend whose memory is host memory reads the caller's rows where
     * they are (the pass never writes its input): copying them into m->x
     * was 5% of kiln score's compute on the CPU. */
    const float *x = host_x;
    enum kiln_status st = KILN_OK;
    if (!be->iface->host_memory) {
        x = m->x;
        st = be->iface->upload(be->ctx, m->x, host_x, (size_t)(rows * m->in_size) * sizeof(float));
    }
    if (st == KILN_OK) st = kiln_model_predict_queue(m, x, rows);
    if (st == KILN_OK) st = kiln_model_predict_collect(m, rows, host_out);
    return st;
}

enum kiln_status kiln_model_loss_grad(struct kiln_model *m, const float *host_x,
                                      const void *host_labels, int64_t rows, double *loss)
{
    if (rows < 1 || rows > m->max_batch)
        return kiln_errorf(KILN_ERR_INTERNAL, "loss_grad: %lld rows, planned batch %lld",
                           (long long)rows, (long long)m->max_batch);
    struct kiln_backend *be = m->be;
    size_t label_bytes = m->cfg.loss == KILN_LOSS_SOFTMAX_XENT
                             ? (size_t)rows * sizeof(int32_t)
                             : (size_t)(rows * m->out_size) * sizeof(float);
    enum kiln_status st = be->iface->upload(be->ctx, m->x, host_x,
                                            (size_t)(rows * m->in_size) * sizeof(float));
    if (st == KILN_OK) st = be->iface->upload(be->ctx, m->labels, host_labels, label_bytes);
    const float *logits = NULL;
    if (st == KILN_OK) st = nn_forward(m, rows, true, 0, &logits);
    if (st == KILN_OK) st = nn_loss_backward(m, logits, rows, true, 0, loss);
    return st;
}
