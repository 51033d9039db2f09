/* engine/lifecycle/checkpoint.c: model files and checkpoints (HDF5).
 *
 * Layout (docs/FORMATS.md): root attributes kiln_format="model",
 * kiln_format_version, created, engine_version, dataset_sha256,
 * dataset_name, classes; /model/config (the model YAML) and
 * /model/train_config (the whole config as given); /params/<name> in
 * PyTorch's state_dict names and layouts; /optimizer/<slot>/<name> with the
 * optimizer's hyperparameters as attributes; /state attributes (epoch,
 * step, seed, early-stopping state); /preprocess attributes.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "core/util.h"
#include "kiln/backend.h"
#include "kiln/lifecycle.h"

#define MODEL_FORMAT "model"
#define MODEL_FORMAT_VERSION 1

/* Names of the optimizer's state slots, as torch.optim names them. */
static const char *optim_slot_name(enum kiln_config_optim o, int slot)
{
    if (o == KILN_CFG_SGD) return "momentum_buffer";
    return slot == 0 ? "exp_avg" : "exp_avg_sq";
}

static const char *optim_type_name(enum kiln_config_optim o)
{
    return o == KILN_CFG_SGD ? "sgd" : o == KILN_CFG_ADAM ? "adam" : "adamw";
}

static enum kiln_status h5_write_str_dataset(hid_t loc, const char *name, const char *text)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text);
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
    H5Tclose(type);
    return rc < 0 ? kiln_errorf(KILN_ERR_IO, "cannot write '%s'", name) : KILN_OK;
}

static enum kiln_status h5_read_str_dataset(hid_t loc, const char *name, char **out)
{
    *out = NULL;
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
        return kiln_errorf(KILN_ERR_FORMAT, "'%s' is missing", name);
    enum kiln_status st = KILN_OK;
    struct h5_array a;
    bool opened = h5_array_open(loc, name, &a);
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, H5T_VARIABLE);
    char *v = NULL;
    if (!opened || H5Tget_class(a.type) != H5T_STRING || H5Tis_variable_str(a.type) <= 0 ||
        H5Sget_simple_extent_npoints(a.space) != 1 ||
        H5Dread(a.d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0)
        st = kiln_errorf(KILN_ERR_FORMAT, "'%s' is not a readable string", name);
    else
        st = str_dup(v ? v : "", out);
    if (v) H5free_memory(v);
    H5Tclose(mem);
    h5_array_close(&a);
    return st;
}

static bool all_finite(const float *x, int64_t n, int64_t *bad_at)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            *bad_at = i;
            return false;
        }
    return true;
}

static enum kiln_status write_params(hid_t file, struct kiln_model *m, const float *params)
{
    hid_t g = H5Gcreate2(file, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return kiln_errorf(KILN_ERR_IO, "cannot create /params");
    enum kiln_status st = KILN_OK;
    for (int i = 0; i < kiln_model_tensor_count(m) && st == KILN_OK; i++) {
        const struct kiln_param_view *v = kiln_model_tensor(m, i);
        st = h5_write_f32(g, v->name, v->ndim, v->shape, params + v->offset);
    }
    H5Gclose(g);
    return st;
}

static enum kiln_status write_optimizer(hid_t file, const struct kiln_config *cfg,
                                        struct kiln_model *m, const float *state, int64_t size)
{
    const struct kiln_train_config *tc = &cfg->train;
    hid_t g = H5Gcreate2(file, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return kiln_errorf(KILN_ERR_IO, "cannot create /optimizer");
    enum kiln_status st = h5_attr_write_str(g, "type", optim_type_name(tc->optimizer));
    if (st == KILN_OK) st = h5_attr_write_f64(g, "lr", tc->lr);
    if (st == KILN_OK) st = h5_attr_write_f64(g, "weight_decay", tc->weight_decay);
    if (st == KILN_OK) st = h5_attr_write_f64(g, "momentum", tc->momentum);
    if (st == KILN_OK) st = h5_attr_write_f64(g, "beta1", tc->beta1);
    if (st == KILN_OK) st = h5_attr_write_f64(g, "beta2", tc->beta2);
    if (st == KILN_OK) st = h5_attr_write_f64(g, "eps", tc->eps);
    int64_t n = kiln_model_param_count(m);
    for (int slot = 0; n > 0 && slot < size / n && st == KILN_OK; slot++) {
        hid_t sg = H5Gcreate2(g, optim_slot_name(tc->optimizer, slot), H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
        if (sg < 0) {
            st = kiln_errorf(KILN_ERR_IO, "cannot create an optimizer group");
            break;
        }
        for (int i = 0; i < kiln_model_tensor_count(m) && st == KILN_OK; i++) {
            const struct kiln_param_view *v = kiln_model_tensor(m, i);
            st = h5_write_f32(sg, v->name, v->ndim, v->shape, state + slot * n + v->offset);
        }
        H5Gclose(sg);
    }
    H5Gclose(g);
    return st;
}

static enum kiln_status write_state(hid_t file, const struct kiln_train_state *s)
{
    hid_t g = H5Gcreate2(file, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return kiln_errorf(KILN_ERR_IO, "cannot create /state");
    enum kiln_status st = h5_attr_write_i64(g, "epoch", s->epoch);
    if (st == KILN_OK) st = h5_attr_write_i64(g, "step", s->step);
    if (st == KILN_OK) st = h5_attr_write_i64(g, "seed", (int64_t)s->seed);
    if (st == KILN_OK) st = h5_attr_write_f64(g, "best_metric", s->best_metric);
    if (st == KILN_OK) st = h5_attr_write_i64(g, "best_epoch", s->best_epoch);
    if (st == KILN_OK) st = h5_attr_write_i64(g, "bad_epochs", s->bad_epochs);
    /* The RNG is counter-based: (seed, epoch, step) is its whole state. */
    if (st == KILN_OK) st = h5_attr_write_str(g, "rng", "splitmix64-counter(seed, epoch, step)");
    H5Gclose(g);
    return st;
}

enum kiln_status kiln_checkpoint_save(const char *path, const struct kiln_config *cfg,
                                      struct kiln_trainer *t, const struct kiln_dataset *ds)
{
    h5_quiet();
    struct kiln_model *m = kiln_trainer_model(t);
    int64_t n = kiln_model_param_count(m), osize = kiln_trainer_optim_size(t);
    float *params = malloc((size_t)(n ? n : 1) * sizeof(float));
    float *optim = malloc((size_t)(osize ? osize : 1) * sizeof(float));
    char *model_yaml = kiln_model_config_to_yaml(&cfg->model);
    char tmp[4200];
    hid_t file = -1, g = -1;
    enum kiln_status st = KILN_OK;
    bool created = false;
    if (!params || !optim || !model_yaml) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    st = kiln_model_get_params(m, params);
    if (st == KILN_OK) st = kiln_trainer_get_optim(t, optim);
    if (st != KILN_OK) goto cleanup;
    int64_t bad;
    if (!all_finite(params, n, &bad) || !all_finite(optim, osize, &bad)) {
        st = kiln_errorf(KILN_ERR_NUMERIC, "%s: refusing to write a NaN/Inf value", path);
        goto cleanup;
    }
    st = fs_temp_path(path, tmp, sizeof tmp);
    if (st != KILN_OK) goto cleanup;
    file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) {
        st = kiln_errorf(KILN_ERR_IO, "%s: cannot create the file (folder missing or not writable?)",
                         path);
        goto cleanup;
    }
    created = true;
    char now[32];
    time_iso8601(now);
    st = h5_attr_write_str(file, "kiln_format", MODEL_FORMAT);
    if (st == KILN_OK) st = h5_attr_write_i64(file, "kiln_format_version", MODEL_FORMAT_VERSION);
    if (st == KILN_OK) st = h5_attr_write_str(file, "created", now);
    if (st == KILN_OK) st = h5_attr_write_str(file, "engine_version", kiln_version_string());
    if (st == KILN_OK) st = h5_attr_write_str(file, "engine_commit", kiln_git_commit());
    if (st == KILN_OK) st = h5_attr_write_str(file, "dataset_sha256", ds->sha256);
    if (st == KILN_OK) st = h5_attr_write_str(file, "dataset_name", ds->name ? ds->name : "");
    if (st == KILN_OK && ds->n_classes > 0)
        st = h5_attr_write_strs(file, "classes", ds->classes, ds->n_classes);
    if (st != KILN_OK) goto cleanup;
    g = H5Gcreate2(file, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    st = g < 0 ? kiln_errorf(KILN_ERR_IO, "cannot create /model")
               : h5_write_str_dataset(g, "config", model_yaml);
    if (st == KILN_OK && cfg->source_yaml)
        st = h5_write_str_dataset(g, "train_config", cfg->source_yaml);
    if (g >= 0) H5Gclose(g);
    g = -1;
    if (st == KILN_OK) st = write_params(file, m, params);
    if (st == KILN_OK) st = write_optimizer(file, cfg, m, optim, osize);
    struct kiln_train_state s = kiln_trainer_state(t);
    if (st == KILN_OK) st = write_state(file, &s);
    if (st == KILN_OK) {
        g = H5Gcreate2(file, "preprocess", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        const struct kiln_split *tr = ds->splits[KILN_SPLIT_TRAIN];
        bool u8 = tr && tr->x_dtype == KILN_DTYPE_U8;
        st = g < 0 ? kiln_errorf(KILN_ERR_IO, "cannot create /preprocess")
                   : h5_attr_write_f64(g, "uint8_scale", KILN_U8_SCALE);
        if (st == KILN_OK) st = h5_attr_write_str(g, "input_dtype", u8 ? "uint8" : "float32");
        /* What raw rows go through before the model sees them (absent when
         * the training data was not transformed). */
        if (st == KILN_OK && ds->transforms && ds->transforms[0])
            st = h5_attr_write_str(g, "transforms", ds->transforms);
        if (g >= 0) H5Gclose(g);
        g = -1;
    }
    if (st != KILN_OK) goto cleanup;
    herr_t rc = H5Fclose(file);
    file = -1;
    if (rc < 0) {
        st = kiln_errorf(KILN_ERR_IO, "%s: closing the file failed (disk full?)", path);
        goto cleanup;
    }
    st = fs_publish(tmp, path);
    created = false; /* fs_publish removes the temp file itself on failure */
cleanup:
    if (file >= 0) H5Fclose(file);
    if (st != KILN_OK) {
        if (created) unlink(tmp);
        kiln_error_context(st, "writing %s", path);
    }
    free(params);
    free(optim);
    free(model_yaml);
    return st;
}

/* Opens a model file and checks its format attributes. */
static enum kiln_status model_file_open(const char *path, hid_t *out)
{
    h5_quiet();
    *out = -1;
    struct stat sb;
    if (stat(path, &sb) != 0) return kiln_errorf(KILN_ERR_IO, "%s: no such file", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return kiln_errorf(KILN_ERR_FORMAT, "%s: not an HDF5 file, or truncated/corrupt", path);
    char *fmt = NULL;
    int64_t version = 0;
    enum kiln_status st = h5_attr_read_str(f, "kiln_format", &fmt);
    if (st == KILN_OK && strcmp(fmt, MODEL_FORMAT) != 0)
        st = kiln_errorf(KILN_ERR_FORMAT, "kiln_format is '%s', expected '%s'", fmt, MODEL_FORMAT);
    if (st == KILN_OK) st = h5_attr_read_i64(f, "kiln_format_version", &version);
    if (st == KILN_OK && version > MODEL_FORMAT_VERSION)
        st = kiln_errorf(KILN_ERR_FORMAT,
                         "format version %lld is newer than this kiln reads (%d): upgrade kiln",
                         (long long)version, MODEL_FORMAT_VERSION);
    free(fmt);
    if (st != KILN_OK) {
        H5Fclose(f);
        return kiln_error_context(st, "%s", path);
    }
    *out = f;
    return KILN_OK;
}

static enum kiln_status read_params(hid_t file, struct kiln_model *m, float *params)
{
    hid_t g = H5Lexists(file, "params", H5P_DEFAULT) > 0 ? H5Gopen2(file, "params", H5P_DEFAULT)
                                                         : -1;
    if (g < 0) return kiln_errorf(KILN_ERR_FORMAT, "/params is missing");
    enum kiln_status st = KILN_OK;
    for (int i = 0; i < kiln_model_tensor_count(m) && st == KILN_OK; i++) {
        const struct kiln_param_view *v = kiln_model_tensor(m, i);
        st = h5_read_f32_exact(g, v->name, v->ndim, v->shape, params + v->offset);
        if (st != KILN_OK) kiln_error_context(st, "/params");
    }
    H5Gclose(g);
    return st;
}

static enum kiln_status read_state(hid_t file, struct kiln_train_state *s)
{
    hid_t g = H5Lexists(file, "state", H5P_DEFAULT) > 0 ? H5Gopen2(file, "state", H5P_DEFAULT) : -1;
    if (g < 0) return kiln_errorf(KILN_ERR_FORMAT, "/state is missing");
    int64_t seed = 0;
    enum kiln_status st = h5_attr_read_i64(g, "epoch", &s->epoch);
    if (st == KILN_OK) st = h5_attr_read_i64(g, "step", &s->step);
    if (st == KILN_OK) st = h5_attr_read_i64(g, "seed", &seed);
    if (st == KILN_OK) st = h5_attr_read_f64(g, "best_metric", &s->best_metric);
    if (st == KILN_OK) st = h5_attr_read_i64(g, "best_epoch", &s->best_epoch);
    if (st == KILN_OK) st = h5_attr_read_i64(g, "bad_epochs", &s->bad_epochs);
    s->seed = (uint64_t)seed;
    if (st == KILN_OK && (s->epoch < 0 || s->step < 0))
        st = kiln_errorf(KILN_ERR_FORMAT, "/state has a negative epoch or step");
    H5Gclose(g);
    return st == KILN_OK ? st : kiln_error_context(st, "/state");
}

void kiln_model_meta_free(struct kiln_model_meta *meta)
{
    if (!meta) return;
    free(meta->dataset_name);
    free(meta->transforms_json);
    strv_free(meta->classes, meta->n_classes);
    meta->transforms_json = NULL;
    meta->dataset_name = NULL;
    meta->classes = NULL;
    meta->n_classes = 0;
}

static enum kiln_status read_meta(hid_t f, const char *path, struct kiln_model_meta *meta)
{
    char *yaml = NULL, *hash = NULL;
    enum kiln_status st = KILN_OK;
    hid_t g = H5Lexists(f, "model", H5P_DEFAULT) > 0 ? H5Gopen2(f, "model", H5P_DEFAULT) : -1;
    if (g < 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "/model is missing");
        goto cleanup;
    }
    st = h5_read_str_dataset(g, "config", &yaml);
    H5Gclose(g);
    if (st == KILN_OK) {
        char name[4200];
        snprintf(name, sizeof name, "%s:/model/config", path);
        st = kiln_model_config_parse(yaml, strlen(yaml), name, &meta->model);
    }
    if (st == KILN_OK) st = h5_attr_read_str(f, "dataset_sha256", &hash);
    if (st == KILN_OK) {
        snprintf(meta->dataset_sha256, sizeof meta->dataset_sha256, "%s", hash);
        if (h5_attr_exists(f, "dataset_name")) st = h5_attr_read_str(f, "dataset_name", &meta->dataset_name);
    }
    if (st == KILN_OK && h5_attr_exists(f, "classes"))
        st = h5_attr_read_strs(f, "classes", &meta->classes, &meta->n_classes);
    meta->uint8_scale = KILN_U8_SCALE;
    if (st == KILN_OK && H5Lexists(f, "preprocess", H5P_DEFAULT) > 0) {
        hid_t p = H5Gopen2(f, "preprocess", H5P_DEFAULT);
        if (p >= 0 && h5_attr_exists(p, "uint8_scale"))
            st = h5_attr_read_f64(p, "uint8_scale", &meta->uint8_scale);
        if (st == KILN_OK && p >= 0 && h5_attr_exists(p, "transforms"))
            st = h5_attr_read_str(p, "transforms", &meta->transforms_json);
        if (p >= 0) H5Gclose(p);
    }
    if (st == KILN_OK) st = read_state(f, &meta->state);
cleanup:
    free(yaml);
    free(hash);
    return st;
}

enum kiln_status kiln_model_load(const char *path, struct kiln_backend *be, int64_t max_batch,
                                 struct kiln_model **model, struct kiln_model_meta *meta)
{
    *model = NULL;
    memset(meta, 0, sizeof *meta);
    hid_t f;
    enum kiln_status st = model_file_open(path, &f);
    if (st != KILN_OK) return st;
    float *params = NULL;
    st = read_meta(f, path, meta);
    if (st == KILN_OK) st = kiln_model_create(&meta->model, be, max_batch, model);
    if (st == KILN_OK) {
        params = malloc((size_t)(kiln_model_param_count(*model) + 1) * sizeof(float));
        st = params ? read_params(f, *model, params)
                    : kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    }
    if (st == KILN_OK) st = kiln_model_set_params(*model, params);
    H5Fclose(f);
    if (st == KILN_OK) st = sha256_file(path, meta->file_sha256);
    free(params);
    if (st != KILN_OK) {
        kiln_model_free(*model);
        *model = NULL;
        kiln_model_meta_free(meta);
        return kiln_error_context(st, "loading %s", path);
    }
    return KILN_OK;
}

enum kiln_status kiln_checkpoint_restore(const char *path, const struct kiln_config *cfg,
                                         struct kiln_trainer *t, const struct kiln_dataset *ds)
{
    hid_t f;
    enum kiln_status st = model_file_open(path, &f);
    if (st != KILN_OK) return st;
    struct kiln_model *m = kiln_trainer_model(t);
    struct kiln_model_meta meta = {0};
    int64_t n = kiln_model_param_count(m), osize = kiln_trainer_optim_size(t);
    float *params = malloc((size_t)(n + 1) * sizeof(float));
    float *optim = malloc((size_t)(osize + 1) * sizeof(float));
    char *want = kiln_model_config_to_yaml(kiln_model_config(m));
    char *have = NULL, *otype = NULL;
    if (!params || !optim || !want) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    st = read_meta(f, path, &meta);
    if (st != KILN_OK) goto cleanup;
    have = kiln_model_config_to_yaml(&meta.model);
    if (!have || strcmp(have, want) != 0) {
        st = kiln_errorf(KILN_ERR_SHAPE,
                         "the checkpoint's model differs from the config's model section");
        goto cleanup;
    }
    if (strcmp(meta.dataset_sha256, ds->sha256) != 0) {
        st = kiln_errorf(KILN_ERR_FORMAT,
                         "the checkpoint was trained on dataset %.12s, but --data is %.12s",
                         meta.dataset_sha256, ds->sha256);
        goto cleanup;
    }
    st = read_params(f, m, params);
    if (st == KILN_OK) st = kiln_model_set_params(m, params);
    if (st != KILN_OK) goto cleanup;
    if (osize > 0) {
        hid_t g = H5Lexists(f, "optimizer", H5P_DEFAULT) > 0
                      ? H5Gopen2(f, "optimizer", H5P_DEFAULT)
                      : -1;
        if (g < 0) {
            st = kiln_errorf(KILN_ERR_FORMAT, "/optimizer is missing");
            goto cleanup;
        }
        enum kiln_config_optim o = cfg->train.optimizer;
        st = h5_attr_read_str(g, "type", &otype);
        if (st == KILN_OK && strcmp(otype, optim_type_name(o)) != 0)
            st = kiln_errorf(KILN_ERR_FORMAT,
                             "the checkpoint's optimizer is '%s' but the config says '%s'", otype,
                             optim_type_name(o));
        for (int slot = 0; st == KILN_OK && slot < osize / n; slot++) {
            hid_t sg = H5Lexists(g, optim_slot_name(o, slot), H5P_DEFAULT) > 0
                           ? H5Gopen2(g, optim_slot_name(o, slot), H5P_DEFAULT)
                           : -1;
            if (sg < 0) {
                st = kiln_errorf(KILN_ERR_FORMAT, "/optimizer/%s is missing",
                                 optim_slot_name(o, slot));
                break;
            }
            for (int i = 0; i < kiln_model_tensor_count(m) && st == KILN_OK; i++) {
                const struct kiln_param_view *v = kiln_model_tensor(m, i);
                st = h5_read_f32_exact(sg, v->name, v->ndim, v->shape,
                                       optim + slot * n + v->offset);
            }
            H5Gclose(sg);
        }
        H5Gclose(g);
        if (st == KILN_OK) st = kiln_trainer_set_optim(t, optim);
        if (st != KILN_OK) goto cleanup;
    }
    kiln_trainer_set_state(t, &meta.state);
cleanup:
    H5Fclose(f);
    kiln_model_meta_free(&meta);
    free(params);
    free(optim);
    free(want);
    free(have);
    free(otype);
    return st == KILN_OK ? st : kiln_error_context(st, "resuming from %s", path);
}
