/* engine/nn/model-internal.h: the planned model, shared by model.c,
 * train.c and metrics.c (not public API). */
#ifndef KILN_NN_MODEL_INTERNAL_H
#define KILN_NN_MODEL_INTERNAL_H

#include "kernels.h"
#include "kiln/nn.h"

struct nn_layer {
    enum kiln_layer_kind kind;
    int index;               /* position in the Sequential: the state_dict prefix */
    int64_t in_size, out_size; /* features per row */
    enum kiln_act act;       /* activation layers */
    float act_param;
    /* dense: the activation applied in its GEMM epilogue (the next layer then
     * skips its forward and only runs its backward, from the output) */
    enum kiln_act epilogue;
    float epilogue_param;
    bool fused;              /* activation layer whose forward ran in the dense before */
    bool passthrough;        /* flatten; dropout at inference */
    int64_t w_off, b_off;    /* in the flat parameter buffer; -1 when absent */
    float rate;              /* dropout */
    float *out;              /* [max_batch, out_size] on the backend, or aliased */
};

struct kiln_model {
    struct kiln_model_config cfg;
    struct kiln_backend *be;
    const struct kiln_ops *ops;
    int64_t max_batch;
    int n_layers;
    struct nn_layer layers[KILN_MAX_LAYERS];
    int n_tensors;
    struct kiln_param_view tensors[2 * KILN_MAX_LAYERS];
    int64_t n_params;
    float *params, *grads;   /* flat, backend memory */
    float *x;                /* input batch [max_batch, in] */
    void *labels;            /* [max_batch] int32 or [max_batch, out] float */
    float *loss_rows;        /* [max_batch] */
    float *grad_a, *grad_b;  /* ping-pong gradient buffers [max_batch, max width] */
    float *probs;            /* [max_batch, out] for predict */
    float *host_loss_rows;   /* host copy of loss_rows when the backend is not host memory */
    const float *queued_out; /* kiln_model_predict_queue's outputs (backend memory) */
    int64_t queued_rows;     /* their rows, -1 when nothing is queued */
    int64_t in_size, out_size, max_width;
};

/* Forward pass over rows rows of m->x. train enables dropout, keyed by seed.
 * *out is the last layer's output (logits for the losses). */
enum kiln_status nn_forward(struct kiln_model *m, int64_t rows, bool train, uint64_t seed,
                            const float **out);
/* nn_forward with the dropout seed read from backend memory (*seed_mem)
 * when the ops run, not when they are queued (a captured training step);
 * seed_mem NULL is nn_forward. */
enum kiln_status nn_forward_keyed(struct kiln_model *m, int64_t rows, bool train, uint64_t seed,
                                  const uint64_t *seed_mem, const float **out);
/* The loss op alone: per-row losses in m->loss_rows and, with backward,
 * dlogits (of the mean loss) in m->grad_a. Reads nothing back. */
enum kiln_status nn_loss_rows(struct kiln_model *m, const float *logits, int64_t rows,
                              bool backward);
/* Backward from dlogits in m->grad_a through every layer into m->grads. */
enum kiln_status nn_backward_keyed(struct kiln_model *m, int64_t rows, uint64_t seed,
                                   const uint64_t *seed_mem);
/* Loss over rows (labels in m->labels): per-row losses in m->loss_rows, mean
 * in *loss; with backward, gradients of the mean loss fill m->grads. */
enum kiln_status nn_loss_backward(struct kiln_model *m, const float *logits, int64_t rows,
                                  bool backward, uint64_t seed, double *loss);
/* Maps final-layer outputs to what predict returns (softmax for
 * softmax_xent, sigmoid for BCE, identity for MSE), into m->probs. */
enum kiln_status nn_outputs(struct kiln_model *m, const float *logits, int64_t rows,
                            const float **out);

/* Test hook: runs the trainer's device-style step (step vars in backend
 * memory, checks on the device, host reads every sync_every steps) on any
 * backend, so that the CPU can prove it equals the classic step bit for
 * bit. sync_every <= 0 restores the default. */
struct kiln_trainer;
void nn_trainer_force_device_path(struct kiln_trainer *t, bool on, int sync_every);
/* Test hook: with the device path forced on (above), streams every batch
 * through the two host and two device stages, as a device without room for
 * the training set does (asynchronous copies, plain uploads on the CPU), so
 * that the CPU can prove the streamed step equals the resident one bit for
 * bit. Returns KILN_ERR_INTERNAL when the device path is off, or an
 * allocation's error (the trainer then stays resident). */
enum kiln_status nn_trainer_force_streaming(struct kiln_trainer *t);

#endif
