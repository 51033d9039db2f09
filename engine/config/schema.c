/* engine/config/schema.c: the one table of config keys, the conversion of
 * YAML scalars into them, and the docs printer. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema.h"

/* --- names --------------------------------------------------------------------- */

static const struct schema_name layer_names[] = {
    {"dense", KILN_LAYER_DENSE},     {"relu", KILN_LAYER_RELU},
    {"leaky_relu", KILN_LAYER_LEAKY_RELU}, {"tanh", KILN_LAYER_TANH},
    {"sigmoid", KILN_LAYER_SIGMOID}, {"gelu", KILN_LAYER_GELU},
    {"softmax", KILN_LAYER_SOFTMAX}, {"dropout", KILN_LAYER_DROPOUT},
    {"flatten", KILN_LAYER_FLATTEN}, {NULL, 0},
};

/* xavier_* are accepted because PyTorch calls Glorot's init that; the glorot
 * spelling comes first so it is the one written back. */
static const struct schema_name init_names[] = {
    {"he_normal", KILN_INIT_HE_NORMAL},
    {"he_uniform", KILN_INIT_HE_UNIFORM},
    {"glorot_normal", KILN_INIT_GLOROT_NORMAL},
    {"glorot_uniform", KILN_INIT_GLOROT_UNIFORM},
    {"xavier_normal", KILN_INIT_GLOROT_NORMAL},
    {"xavier_uniform", KILN_INIT_GLOROT_UNIFORM},
    {"zeros", KILN_INIT_ZEROS},
    {NULL, 0},
};

static const struct schema_name loss_names[] = {
    {"softmax_cross_entropy", KILN_LOSS_SOFTMAX_XENT},
    {"bce_with_logits", KILN_LOSS_BCE_LOGITS},
    {"mse", KILN_LOSS_MSE},
    {NULL, 0},
};

static const struct schema_name optim_names[] = {
    {"sgd", KILN_CFG_SGD}, {"adam", KILN_CFG_ADAM}, {"adamw", KILN_CFG_ADAMW}, {NULL, 0},
};

static const struct schema_name schedule_names[] = {
    {"constant", KILN_SCHED_CONSTANT}, {"step", KILN_SCHED_STEP}, {"cosine", KILN_SCHED_COSINE},
    {NULL, 0},
};

static const struct schema_name mode_names[] = {
    {"min", KILN_MODE_MIN}, {"max", KILN_MODE_MAX}, {NULL, 0},
};

static const struct schema_name metric_names[] = {
    {"val_loss", 0}, {"val_accuracy", 0}, {"val_f1", 0}, {"val_mse", 0}, {"val_mae", 0},
    {"val_r2", 0},   {NULL, 0},
};

/* "cuda:N" stands for cuda:0, cuda:1, ... (see name_matches). */
static const struct schema_name device_names[] = {
    {"cpu", 0}, {"cuda", 0}, {"auto", 0}, {"cuda:N", 0}, {NULL, 0},
};

/* --- the table ----------------------------------------------------------------- */

#define FIELD(type_, base_, f)                                                 \
    .base = base_, .offset = offsetof(type_, f), .size = sizeof(((type_ *)0)->f)
#define MODEL(f) FIELD(struct kiln_model_config, SCHEMA_BASE_MODEL, f)
#define LAYER(f) FIELD(struct kiln_layer_config, SCHEMA_BASE_LAYER, f)
#define TRAIN(f) FIELD(struct kiln_train_config, SCHEMA_BASE_TRAIN, f)
#define CARD(f) FIELD(struct kiln_card_config, SCHEMA_BASE_CARD, f)

#define INT_IN(lo, hi) .range = SCHEMA_HAS_MIN | SCHEMA_HAS_MAX, .imin = (lo), .imax = (hi)
#define INT_AT_LEAST(lo) .range = SCHEMA_HAS_MIN, .imin = (lo), .imax = INT64_MAX
#define FLOAT_IN(lo, hi, open) .range = SCHEMA_HAS_MIN | SCHEMA_HAS_MAX | (open), .fmin = (lo), .fmax = (hi)
#define FLOAT_AT_LEAST(lo, open) .range = SCHEMA_HAS_MIN | (open), .fmin = (lo)

#define ONLY_DENSE .gate = "model.layers[].type", .gate_mask = 1u << KILN_LAYER_DENSE
#define ONLY_SGD .gate = "train.optimizer.type", .gate_mask = 1u << KILN_CFG_SGD
#define ONLY_ADAM                                                              \
    .gate = "train.optimizer.type", .gate_mask = (1u << KILN_CFG_ADAM) | (1u << KILN_CFG_ADAMW)

/* Order is the order of the docs and of the emitted model YAML. */
const struct schema_key schema_keys[] = {
    /* model ------------------------------------------------------------------ */
    {.path = "model", .type = SCHEMA_MAP, .required = true,
     .doc = "the network: input shape, layers, loss"},
    {.path = "model.input", .type = SCHEMA_INT_LIST, .required = true, INT_AT_LEAST(1),
     .min_items = 1, .max_items = KILN_MAX_DIMS, MODEL(input_shape),
     .count_offset = offsetof(struct kiln_model_config, input_ndim),
     .doc = "shape of one sample, e.g. [784] or [28, 28]"},
    {.path = "model.layers", .type = SCHEMA_LIST_OF_MAPS, .required = true,
     .min_items = 1, .max_items = KILN_MAX_LAYERS, MODEL(layers),
     .count_offset = offsetof(struct kiln_model_config, n_layers),
     .doc = "the layers in order; index i is PyTorch's Sequential index i"},
    {.path = "model.layers[].type", .type = SCHEMA_ENUM, .required = true, .names = layer_names,
     LAYER(kind), .doc = "what the layer computes"},
    {.path = "model.layers[].units", .type = SCHEMA_INT, .required = true, INT_IN(1, 1 << 24),
     ONLY_DENSE, LAYER(units), .doc = "output features"},
    {.path = "model.layers[].bias", .type = SCHEMA_BOOL, .def = "true", ONLY_DENSE, LAYER(bias),
     .doc = "add a learned bias"},
    {.path = "model.layers[].init", .type = SCHEMA_ENUM, .def = "he_normal", .names = init_names,
     ONLY_DENSE, LAYER(init), .doc = "weight init (xavier_* = glorot_*); biases start at 0"},
    {.path = "model.layers[].negative_slope", .type = SCHEMA_FLOAT, .def = "0.01",
     FLOAT_AT_LEAST(0.0f, 0), .gate = "model.layers[].type", .gate_mask = 1u << KILN_LAYER_LEAKY_RELU,
     LAYER(negative_slope), .doc = "slope for x < 0 (>= 0: the backward pass reads the output's sign)"},
    {.path = "model.layers[].rate", .type = SCHEMA_FLOAT, .def = "0.5",
     FLOAT_IN(0.0, 1.0, SCHEMA_MAX_OPEN), .gate = "model.layers[].type",
     .gate_mask = 1u << KILN_LAYER_DROPOUT, LAYER(rate),
     .doc = "probability of zeroing an input while training"},
    {.path = "model.loss", .type = SCHEMA_ENUM, .def = "softmax_cross_entropy",
     .names = loss_names, MODEL(loss), .doc = "training loss on the last layer's output"},
    {.path = "model.label_smoothing", .type = SCHEMA_FLOAT, .def = "0",
     FLOAT_IN(0.0, 1.0, SCHEMA_MAX_OPEN), .gate = "model.loss",
     .gate_mask = 1u << KILN_LOSS_SOFTMAX_XENT, MODEL(label_smoothing),
     .doc = "PyTorch's label_smoothing"},

    /* train ------------------------------------------------------------------ */
    {.path = "train", .type = SCHEMA_MAP, .doc = "how to train; every key has a default"},
    {.path = "train.epochs", .type = SCHEMA_INT, .def = "10", INT_IN(1, 1000000), TRAIN(epochs),
     .doc = "passes over the training set"},
    {.path = "train.batch_size", .type = SCHEMA_INT, .def = "128", INT_IN(1, 1 << 20),
     TRAIN(batch_size), .doc = "samples per step"},
    {.path = "train.seed", .type = SCHEMA_INT, .def = "42", INT_AT_LEAST(0), TRAIN(seed),
     .doc = "seeds init, shuffling, dropout and the validation split"},
    {.path = "train.optimizer", .type = SCHEMA_MAP, .doc = "the optimizer (PyTorch semantics)"},
    {.path = "train.optimizer.type", .type = SCHEMA_ENUM, .def = "adam", .names = optim_names,
     TRAIN(optimizer), .doc = "which optimizer"},
    {.path = "train.optimizer.lr", .type = SCHEMA_FLOAT, .def = "0.001",
     FLOAT_AT_LEAST(0.0, SCHEMA_MIN_OPEN), TRAIN(lr), .doc = "learning rate (peak, with a schedule)"},
    {.path = "train.optimizer.momentum", .type = SCHEMA_FLOAT, .def = "0",
     FLOAT_IN(0.0, 1.0, SCHEMA_MAX_OPEN), ONLY_SGD, TRAIN(momentum), .doc = "SGD momentum"},
    {.path = "train.optimizer.nesterov", .type = SCHEMA_BOOL, .def = "false", ONLY_SGD,
     TRAIN(nesterov), .doc = "Nesterov momentum; needs momentum > 0"},
    {.path = "train.optimizer.beta1", .type = SCHEMA_FLOAT, .def = "0.9",
     FLOAT_IN(0.0, 1.0, SCHEMA_MAX_OPEN), ONLY_ADAM, TRAIN(beta1), .doc = "Adam first-moment decay"},
    {.path = "train.optimizer.beta2", .type = SCHEMA_FLOAT, .def = "0.999",
     FLOAT_IN(0.0, 1.0, SCHEMA_MAX_OPEN), ONLY_ADAM, TRAIN(beta2),
     .doc = "Adam second-moment decay"},
    {.path = "train.optimizer.eps", .type = SCHEMA_FLOAT, .def = "1e-08",
     FLOAT_AT_LEAST(0.0, SCHEMA_MIN_OPEN), ONLY_ADAM, TRAIN(eps),
     .doc = "Adam denominator term"},
    {.path = "train.optimizer.weight_decay", .type = SCHEMA_FLOAT, .def = "0",
     FLOAT_AT_LEAST(0.0, 0), TRAIN(weight_decay),
     .doc = "L2 penalty (sgd, adam) or decoupled decay (adamw)"},
    {.path = "train.schedule", .type = SCHEMA_MAP, .doc = "learning-rate schedule"},
    {.path = "train.schedule.type", .type = SCHEMA_ENUM, .def = "constant",
     .names = schedule_names, TRAIN(schedule), .doc = "how lr changes over training"},
    {.path = "train.schedule.warmup_steps", .type = SCHEMA_INT, .def = "0", INT_AT_LEAST(0),
     TRAIN(warmup_steps), .doc = "linear warm-up from 0 to lr over this many steps"},
    {.path = "train.schedule.step_size", .type = SCHEMA_INT, .def = "10", INT_IN(1, 1000000),
     .gate = "train.schedule.type", .gate_mask = 1u << KILN_SCHED_STEP, TRAIN(step_size),
     .doc = "epochs between decays"},
    {.path = "train.schedule.gamma", .type = SCHEMA_FLOAT, .def = "0.1",
     FLOAT_IN(0.0, 1.0, SCHEMA_MIN_OPEN), .gate = "train.schedule.type",
     .gate_mask = 1u << KILN_SCHED_STEP, TRAIN(gamma), .doc = "lr multiplier at each decay"},
    {.path = "train.schedule.min_lr", .type = SCHEMA_FLOAT, .def = "0", FLOAT_AT_LEAST(0.0, 0),
     .gate = "train.schedule.type", .gate_mask = 1u << KILN_SCHED_COSINE, TRAIN(min_lr),
     .doc = "lr at the end of the cosine"},
    {.path = "train.val_fraction", .type = SCHEMA_FLOAT, .def = "0.1",
     FLOAT_IN(0.0, 1.0, SCHEMA_MAX_OPEN), TRAIN(val_fraction),
     .doc = "share of train held out when the dataset has no val split"},
    {.path = "train.early_stopping", .type = SCHEMA_MAP, .doc = "stop when a metric stalls"},
    {.path = "train.early_stopping.metric", .type = SCHEMA_STRING, .def = "val_loss",
     .names = metric_names, TRAIN(early_stopping_metric), .doc = "the metric watched"},
    {.path = "train.early_stopping.patience", .type = SCHEMA_INT, .def = "0",
     INT_IN(0, 1000000), TRAIN(patience), .doc = "epochs without improvement; 0 = off"},
    {.path = "train.early_stopping.mode", .type = SCHEMA_ENUM, .names = mode_names,
     .derived = "max for val_accuracy, val_f1 and val_r2, else min", TRAIN(early_stopping_mode),
     .doc = "whether lower or higher is better"},
    {.path = "train.checkpoint_every", .type = SCHEMA_INT, .def = "1", INT_IN(0, 1000000),
     TRAIN(checkpoint_every), .doc = "epochs between checkpoints; 0 = only the final model"},
    {.path = "train.clip_norm", .type = SCHEMA_FLOAT, .def = "0", FLOAT_AT_LEAST(0.0, 0),
     TRAIN(clip_norm), .doc = "clip the global gradient norm to this; 0 = off"},
    {.path = "train.device", .type = SCHEMA_STRING, .def = "cpu", .names = device_names,
     TRAIN(device), .doc = "where to train; cuda:N picks a GPU"},
    {.path = "train.threads", .type = SCHEMA_INT, .def = "0", INT_IN(0, 4096), TRAIN(threads),
     .doc = "CPU threads; 0 = every core"},

    /* card -------------------------------------------------------------------- */
    {.path = "card", .type = SCHEMA_MAP,
     .doc = "what the model card says beyond the numbers; every key optional"},
    {.path = "card.description", .type = SCHEMA_TEXT, CARD(description),
     .doc = "what the model is and does"},
    {.path = "card.intended_use", .type = SCHEMA_TEXT, CARD(intended_use),
     .doc = "what it is for, and what it is not for"},
    {.path = "card.limitations", .type = SCHEMA_TEXT, CARD(limitations),
     .doc = "known weaknesses: inputs, classes or conditions where it fails"},
    {.path = "card.ethical_considerations", .type = SCHEMA_TEXT,
     CARD(ethical_considerations), .doc = "risks, affected people, mitigations"},
    {.path = "card.authors", .type = SCHEMA_TEXT, CARD(authors), .doc = "who made it"},
    {.path = "card.license", .type = SCHEMA_TEXT, CARD(license),
     .doc = "terms of use, e.g. MIT or CC-BY-4.0"},
};

const int schema_n_keys = (int)(sizeof schema_keys / sizeof schema_keys[0]);

_Static_assert(sizeof schema_keys / sizeof schema_keys[0] <= SCHEMA_MAX_KEYS,
               "raise SCHEMA_MAX_KEYS");

const struct schema_key *schema_find(const char *path)
{
    for (int i = 0; i < schema_n_keys; i++)
        if (strcmp(schema_keys[i].path, path) == 0) return &schema_keys[i];
    return NULL;
}

int schema_index(const struct schema_key *k) { return (int)(k - schema_keys); }

size_t schema_parent_len(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? (size_t)(dot - path) : 0;
}

/* --- suggestions ----------------------------------------------------------------- */

#define SUGGEST_MAX_LEN 64

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int row[SUGGEST_MAX_LEN + 1];
    if (la > SUGGEST_MAX_LEN || lb > SUGGEST_MAX_LEN) return 1 << 20;
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const char *last_part(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

const char *schema_suggest(const char *path)
{
    const char *leaf = last_part(path);
    const char *best = NULL;
    int best_d = 3; /* a typo is one or two edits; more is a different word */
    /* The same name in another section ("train.lr") is the likelier slip;
     * of several (type), the nearest section wins. */
    int same_d = 1 << 30;
    for (int i = 0; i < schema_n_keys; i++) {
        if (strcmp(last_part(schema_keys[i].path), leaf) != 0) continue;
        int d = edit_distance(path, schema_keys[i].path);
        if (d < same_d) {
            same_d = d;
            best = schema_keys[i].path;
        }
    }
    if (best) return best;
    for (int i = 0; i < schema_n_keys; i++) {
        int d = edit_distance(path, schema_keys[i].path);
        if (d < best_d && (size_t)d < strlen(leaf)) {
            best_d = d;
            best = schema_keys[i].path;
        }
    }
    return best;
}

/* --- scalars ----------------------------------------------------------------------- */

void schema_quote(const char *s, char *buf, size_t len)
{
    size_t o = 0, i = 0;
    if (len < 8) {
        if (len) buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    for (; s[i] && o + 6 < len && i < 48; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    if (s[i] && o + 4 < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

/* What the user wrote, for "got ...": quoted scalars are called strings so
 * that `epochs: "10"` explains itself. */
static void describe_got(const char *text, bool plain, char *buf, size_t len)
{
    char q[80];
    if (plain && text[0] == '\0') {
        snprintf(buf, len, "an empty value");
        return;
    }
    schema_quote(text, q, sizeof q);
    snprintf(buf, len, plain ? "%s" : "the string %s (drop the quotes)", q);
}

static bool is_int_text(const char *s)
{
    if (*s == '+' || *s == '-') s++;
    if (!isdigit((unsigned char)*s)) return false;
    while (isdigit((unsigned char)*s)) s++;
    return *s == '\0';
}

/* YAML 1.2 core-schema decimal floats (1e-3 is a float here, unlike YAML 1.1). */
static bool is_float_text(const char *s)
{
    int digits = 0;
    if (*s == '+' || *s == '-') s++;
    while (isdigit((unsigned char)*s)) s++, digits++;
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s)) s++, digits++;
    }
    if (!digits) return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!isdigit((unsigned char)*s)) return false;
        while (isdigit((unsigned char)*s)) s++;
    }
    return *s == '\0';
}

static bool is_special_float(const char *s)
{
    if (*s == '+' || *s == '-') s++;
    return !strcmp(s, ".inf") || !strcmp(s, ".Inf") || !strcmp(s, ".INF") ||
           !strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN");
}

void schema_range_text(const struct schema_key *k, char *buf, size_t len)
{
    bool is_float = k->type == SCHEMA_FLOAT;
    char lo[32], hi[32];
    if (is_float) {
        snprintf(lo, sizeof lo, "%g", k->fmin);
        snprintf(hi, sizeof hi, "%g", k->fmax);
    } else {
        snprintf(lo, sizeof lo, "%" PRId64, k->imin);
        snprintf(hi, sizeof hi, "%" PRId64, k->imax);
    }
    bool has_min = k->range & SCHEMA_HAS_MIN, has_max = k->range & SCHEMA_HAS_MAX;
    bool min_open = k->range & SCHEMA_MIN_OPEN, max_open = k->range & SCHEMA_MAX_OPEN;
    if (has_min && has_max)
        snprintf(buf, len, "%c%s, %s%c", min_open ? '(' : '[', lo, hi, max_open ? ')' : ']');
    else if (has_min)
        snprintf(buf, len, "%s %s", min_open ? ">" : ">=", lo);
    else if (has_max)
        snprintf(buf, len, "%s %s", max_open ? "<" : "<=", hi);
    else
        snprintf(buf, len, "%s", "");
}

static bool out_of_range_int(const struct schema_key *k, int64_t v)
{
    return ((k->range & SCHEMA_HAS_MIN) && v < k->imin) ||
           ((k->range & SCHEMA_HAS_MAX) && v > k->imax);
}

static bool out_of_range_float(const struct schema_key *k, double v)
{
    if (k->range & SCHEMA_HAS_MIN) {
        if ((k->range & SCHEMA_MIN_OPEN) ? v <= k->fmin : v < k->fmin) return true;
    }
    if (k->range & SCHEMA_HAS_MAX) {
        if ((k->range & SCHEMA_MAX_OPEN) ? v >= k->fmax : v > k->fmax) return true;
    }
    return false;
}

static void range_why(const struct schema_key *k, const char *text, char *why, size_t why_len)
{
    char r[64];
    schema_range_text(k, r, sizeof r);
    snprintf(why, why_len, "%s is out of range, must be %s%s", text,
             (k->range & SCHEMA_HAS_MIN) && (k->range & SCHEMA_HAS_MAX) ? "in " : "", r);
}

bool schema_parse_int_item(const struct schema_key *k, const char *text, bool plain,
                           int64_t *out, char *why, size_t why_len)
{
    char got[128];
    if (!plain || !is_int_text(text)) {
        describe_got(text, plain, got, sizeof got);
        snprintf(why, why_len, "expected an integer, got %s", got);
        return false;
    }
    errno = 0;
    long long v = strtoll(text, NULL, 10);
    if (errno == ERANGE || out_of_range_int(k, v)) {
        char q[80];
        schema_quote(text, q, sizeof q);
        range_why(k, errno == ERANGE ? q : text, why, why_len);
        return false;
    }
    *out = v;
    return true;
}

/* Whether text is name, where a name ending ":N" stands for any index. */
static bool name_matches(const char *name, const char *text)
{
    size_t n = strlen(name);
    if (n >= 2 && strcmp(name + n - 2, ":N") == 0) {
        if (strncmp(text, name, n - 1) != 0) return false;
        const char *d = text + n - 1;
        size_t nd = strspn(d, "0123456789");
        return nd >= 1 && nd <= 4 && d[nd] == '\0';
    }
    return strcmp(name, text) == 0;
}

static void store_int(void *dst, size_t size, int64_t v)
{
    if (size == sizeof(int64_t)) {
        memcpy(dst, &v, sizeof v);
    } else {
        KILN_ASSERT(size == sizeof(int32_t));
        int32_t w = (int32_t)v;
        memcpy(dst, &w, sizeof w);
    }
}

int64_t schema_get_int(const struct schema_key *k, const void *base)
{
    const char *p = (const char *)base + k->offset;
    if (k->size == sizeof(int64_t)) {
        int64_t v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    KILN_ASSERT(k->size == sizeof(int32_t));
    int32_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

void schema_names_text(const struct schema_key *k, const char *sep, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; k->names && k->names[i].name && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? sep : "", k->names[i].name);
}

bool schema_set_scalar(const struct schema_key *k, void *base, const char *text, bool plain,
                       char *why, size_t why_len)
{
    char *dst = (char *)base + k->offset;
    char got[128];
    describe_got(text, plain, got, sizeof got);
    switch (k->type) {
    case SCHEMA_INT: {
        int64_t v;
        if (!schema_parse_int_item(k, text, plain, &v, why, why_len)) return false;
        store_int(dst, k->size, v);
        return true;
    }
    case SCHEMA_FLOAT: {
        if (plain && is_special_float(text)) {
            snprintf(why, why_len, "expected a finite number, got %s", got);
            return false;
        }
        if (!plain || !is_float_text(text)) {
            snprintf(why, why_len, "expected a number, got %s", got);
            return false;
        }
        /* Checked after rounding to float, the type it is used in: 1e-50
         * would be 0 there, and 1e39 infinite. */
        double d = strtod(text, NULL);
        float f = fabs(d) <= FLT_MAX ? (float)d : INFINITY;
        if (!isfinite(f) || out_of_range_float(k, f)) {
            range_why(k, text, why, why_len);
            return false;
        }
        memcpy(dst, &f, sizeof f);
        return true;
    }
    case SCHEMA_BOOL: {
        bool b;
        if (plain && (!strcmp(text, "true") || !strcmp(text, "True") || !strcmp(text, "TRUE")))
            b = true;
        else if (plain &&
                 (!strcmp(text, "false") || !strcmp(text, "False") || !strcmp(text, "FALSE")))
            b = false;
        else {
            snprintf(why, why_len, "expected true or false, got %s", got);
            return false;
        }
        memcpy(dst, &b, sizeof b);
        return true;
    }
    case SCHEMA_ENUM:
    case SCHEMA_STRING: {
        char names[256];
        for (int i = 0; k->names[i].name; i++) {
            if (!name_matches(k->names[i].name, text)) continue;
            if (k->type == SCHEMA_ENUM) {
                store_int(dst, k->size, k->names[i].value);
            } else {
                KILN_ASSERT(strlen(text) < k->size);
                memcpy(dst, text, strlen(text) + 1);
            }
            return true;
        }
        schema_names_text(k, ", ", names, sizeof names);
        if (plain && text[0] == '\0')
            snprintf(why, why_len, "expected one of %s, got an empty value", names);
        else {
            char q[80];
            schema_quote(text, q, sizeof q);
            snprintf(why, why_len, "%s is not one of %s", q, names);
        }
        return false;
    }
    default:
        snprintf(why, why_len, "not a scalar key");
        return false;
    }
}

const char *schema_enum_name(const struct schema_key *k, int value)
{
    for (int i = 0; k->names && k->names[i].name; i++)
        if (k->names[i].value == value) return k->names[i].name;
    return "?";
}

void schema_format_value(const struct schema_key *k, const void *base, char *buf, size_t len)
{
    const char *p = (const char *)base + k->offset;
    switch (k->type) {
    case SCHEMA_INT:
        snprintf(buf, len, "%" PRId64, schema_get_int(k, base));
        break;
    case SCHEMA_FLOAT: {
        float f;
        memcpy(&f, p, sizeof f);
        snprintf(buf, len, "%.9g", (double)f);
        break;
    }
    case SCHEMA_BOOL: {
        bool b;
        memcpy(&b, p, sizeof b);
        snprintf(buf, len, "%s", b ? "true" : "false");
        break;
    }
    case SCHEMA_ENUM:
        snprintf(buf, len, "%s", schema_enum_name(k, (int)schema_get_int(k, base)));
        break;
    case SCHEMA_STRING:
        snprintf(buf, len, "%.*s", (int)k->size, p);
        break;
    case SCHEMA_INT_LIST: {
        int n;
        size_t o = 0;
        memcpy(&n, (const char *)base + k->count_offset, sizeof n);
        o += (size_t)snprintf(buf, len, "[");
        for (int i = 0; i < n && o < len; i++) {
            int64_t v;
            memcpy(&v, p + (size_t)i * sizeof v, sizeof v);
            o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, i ? ", " : "", v);
        }
        if (o < len) snprintf(buf + o, len - o, "]");
        break;
    }
    default:
        snprintf(buf, len, "%s", "");
        break;
    }
}

bool schema_gate_open(const struct schema_key *k, const void *gate_base)
{
    if (!k->gate) return true;
    const struct schema_key *g = schema_find(k->gate);
    KILN_ASSERT(g && g->type == SCHEMA_ENUM);
    int64_t v = schema_get_int(g, gate_base);
    return v >= 0 && v < 32 && (k->gate_mask & (1u << v));
}

/* --- defaults ------------------------------------------------------------------------ */

static void apply_default(const struct schema_key *k, void *base)
{
    char why[256];
    if (!k->def) return;
    /* A default that does not parse is a bug in the table above. */
    bool ok = schema_set_scalar(k, base, k->def, true, why, sizeof why);
    KILN_ASSERT(ok);
}

void schema_apply_defaults(struct kiln_model_config *m, struct kiln_train_config *t)
{
    for (int i = 0; i < schema_n_keys; i++) {
        const struct schema_key *k = &schema_keys[i];
        if (k->base == SCHEMA_BASE_MODEL) apply_default(k, m);
        if (k->base == SCHEMA_BASE_TRAIN) apply_default(k, t);
    }
}

void schema_layer_defaults(struct kiln_layer_config *l)
{
    for (int i = 0; i < schema_n_keys; i++)
        if (schema_keys[i].base == SCHEMA_BASE_LAYER) apply_default(&schema_keys[i], l);
}

/* --- enum names ------------------------------------------------------------------------ */

const char *kiln_layer_kind_name(enum kiln_layer_kind kind)
{
    return schema_enum_name(schema_find("model.layers[].type"), (int)kind);
}

const char *kiln_loss_kind_name(enum kiln_loss_kind kind)
{
    return schema_enum_name(schema_find("model.loss"), (int)kind);
}

/* --- docs --------------------------------------------------------------------------------- */

static const char *type_name(enum schema_type t)
{
    switch (t) {
    case SCHEMA_MAP: return "map";
    case SCHEMA_LIST_OF_MAPS: return "list of maps";
    case SCHEMA_INT_LIST: return "int list";
    case SCHEMA_INT: return "int";
    case SCHEMA_FLOAT: return "float";
    case SCHEMA_BOOL: return "bool";
    case SCHEMA_STRING: return "string";
    case SCHEMA_ENUM: return "enum";
    case SCHEMA_TEXT: return "text";
    }
    return "?";
}

struct doc_row {
    char cols[5][320];
};

static void doc_row_fill(const struct schema_key *k, struct doc_row *r)
{
    snprintf(r->cols[0], sizeof r->cols[0], "%s", k->path);
    snprintf(r->cols[1], sizeof r->cols[1], "%s", type_name(k->type));
    if (k->def)
        snprintf(r->cols[2], sizeof r->cols[2], "%s", k->def);
    else
        snprintf(r->cols[2], sizeof r->cols[2], "%s",
                 k->required ? "required" : k->derived ? "derived" : "-");

    char range[64], extra[64] = "";
    if (k->type == SCHEMA_ENUM || k->type == SCHEMA_STRING) {
        schema_names_text(k, "|", r->cols[3], sizeof r->cols[3]);
    } else {
        schema_range_text(k, range, sizeof range);
        if (k->type == SCHEMA_INT_LIST || k->type == SCHEMA_LIST_OF_MAPS)
            snprintf(extra, sizeof extra, "%d..%d items%s", k->min_items, k->max_items,
                     range[0] ? ", each " : "");
        snprintf(r->cols[3], sizeof r->cols[3], "%s%s", extra, range[0] ? range : extra[0] ? "" : "-");
    }

    char gate[160] = "";
    if (k->gate) {
        const struct schema_key *g = schema_find(k->gate);
        size_t o = (size_t)snprintf(gate, sizeof gate, "; only when %s is ", last_part(g->path));
        for (int v = 0, n = 0; v < 32 && o < sizeof gate; v++) {
            if (!(k->gate_mask & (1u << v))) continue;
            o += (size_t)snprintf(gate + o, sizeof gate - o, "%s%s", n++ ? " or " : "",
                                  schema_enum_name(g, v));
        }
    }
    snprintf(r->cols[4], sizeof r->cols[4], "%s%s%s%s", k->doc, gate,
             k->derived ? "; default: " : "", k->derived ? k->derived : "");
}

void kiln_config_print_docs(FILE *f)
{
    static const char *const head[5] = {"key", "type", "default", "range / values", "doc"};
    size_t width[5];
    struct doc_row row;
    for (int c = 0; c < 5; c++) width[c] = strlen(head[c]);
    for (int i = 0; i < schema_n_keys; i++) {
        doc_row_fill(&schema_keys[i], &row);
        for (int c = 0; c < 4; c++)
            if (strlen(row.cols[c]) > width[c]) width[c] = strlen(row.cols[c]);
    }
    fprintf(f, "%-*s  %-*s  %-*s  %-*s  %s\n", (int)width[0], head[0], (int)width[1], head[1],
            (int)width[2], head[2], (int)width[3], head[3], head[4]);
    for (int i = 0; i < schema_n_keys; i++) {
        doc_row_fill(&schema_keys[i], &row);
        fprintf(f, "%-*s  %-*s  %-*s  %-*s  %s\n", (int)width[0], row.cols[0], (int)width[1],
                row.cols[1], (int)width[2], row.cols[2], (int)width[3], row.cols[3], row.cols[4]);
    }
}
