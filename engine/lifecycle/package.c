/* engine/lifecycle/package.c: model packages (.kiln): Ed25519 keys, writing a
 * package from a registered version, and opening one with every check done
 * before any member other than the manifest is parsed (docs/FORMATS.md,
 * "Package (.kiln)"). libarchive reads and writes the tar, libyaml parses
 * the manifest, OpenSSL signs and verifies. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <yaml.h>

#include "core/util.h"
#include "kiln/backend.h"
#include "kiln/data.h"
#include "kiln/dataversions.h"
#include "kiln/lifecycle.h"
#include "kiln/package.h"
#include "kiln/registry.h"
#include "kiln/transform.h"
#include "store-internal.h"

#define MANIFEST "manifest.yaml"
#define SIGNATURE "manifest.sig"
#define MAX_NAME 64
/* Every member but the manifest and its signature, in the order written. */
static const char *const MEMBERS[] = {"model.h5", "card.md", "stats.json", "golden.h5"};
#define N_MEMBERS ((int)(sizeof MEMBERS / sizeof MEMBERS[0]))

/* --- OpenSSL boundary ------------------------------------------------------------ */

static enum kiln_status ssl_error(enum kiln_status st, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown OpenSSL error";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return kiln_errorf(st, "%s: %s", what, buf);
}

/* Reads an Ed25519 key (private when priv) from a PEM file. */
static enum kiln_status key_read(const char *path, bool priv, EVP_PKEY **out)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    EVP_PKEY *k = priv ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!k) {
        ERR_clear_error();
        return kiln_errorf(KILN_ERR_USAGE, "%s: not a PEM %s key", path, priv ? "private" : "public");
    }
    if (EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        return kiln_errorf(KILN_ERR_USAGE, "%s: not an Ed25519 key", path);
    }
    *out = k;
    return KILN_OK;
}

/* Writes one PEM key to path atomically with the given mode. */
static enum kiln_status key_write(const char *path, EVP_PKEY *k, bool priv, mode_t mode)
{
    char tmp[4300];
    enum kiln_status st = fs_temp_path(path, tmp, sizeof tmp);
    if (st != KILN_OK) return st;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", tmp, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(tmp);
        return kiln_errorf(KILN_ERR_IO, "%s: %s", tmp, strerror(errno));
    }
    int ok = priv ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) : PEM_write_PUBKEY(f, k);
    if (fclose(f) != 0 || ok != 1) {
        unlink(tmp);
        return ssl_error(KILN_ERR_IO, path);
    }
    st = fs_publish(tmp, path);
    if (st != KILN_OK) unlink(tmp);
    return st;
}

enum kiln_status kiln_keygen(const char *name)
{
    char priv[4200], pub[4200];
    if (!name || !*name) return kiln_errorf(KILN_ERR_USAGE, "keygen: a key name is required");
    int n1 = snprintf(priv, sizeof priv, "%s.key", name);
    int n2 = snprintf(pub, sizeof pub, "%s.pub", name);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof priv || (size_t)n2 >= sizeof pub)
        return kiln_errorf(KILN_ERR_USAGE, "%s: name too long", name);
    struct stat sb;
    if (stat(priv, &sb) == 0 || stat(pub, &sb) == 0)
        return kiln_errorf(KILN_ERR_USAGE, "%s or %s exists already: not overwriting a key", priv,
                           pub);
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (!c || EVP_PKEY_keygen_init(c) != 1 || EVP_PKEY_keygen(c, &k) != 1) {
        EVP_PKEY_CTX_free(c);
        return ssl_error(KILN_ERR_INTERNAL, "generating an Ed25519 key");
    }
    EVP_PKEY_CTX_free(c);
    enum kiln_status st = key_write(priv, k, true, 0600);
    if (st == KILN_OK) st = key_write(pub, k, false, 0644);
    if (st != KILN_OK) unlink(priv);
    EVP_PKEY_free(k);
    return st;
}

static enum kiln_status sign_bytes(EVP_PKEY *k, const char *msg, size_t len,
                                   unsigned char sig[KILN_PACKAGE_SIG_BYTES])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    size_t sig_len = KILN_PACKAGE_SIG_BYTES;
    if (!c || EVP_DigestSignInit(c, NULL, NULL, NULL, k) != 1 ||
        EVP_DigestSign(c, sig, &sig_len, (const unsigned char *)msg, len) != 1 ||
        sig_len != KILN_PACKAGE_SIG_BYTES) {
        EVP_MD_CTX_free(c);
        return ssl_error(KILN_ERR_INTERNAL, "signing the manifest");
    }
    EVP_MD_CTX_free(c);
    return KILN_OK;
}

static enum kiln_status verify_bytes(const char *key_path, const char *msg, size_t len,
                                     const unsigned char *sig, size_t sig_len)
{
    EVP_PKEY *k = NULL;
    enum kiln_status st = key_read(key_path, false, &k);
    if (st != KILN_OK) return st;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(c, sig, sig_len, (const unsigned char *)msg, len) == 1;
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
    ERR_clear_error();
    if (!ok)
        return kiln_errorf(KILN_ERR_INTEGRITY, "the manifest's signature does not verify with %s "
                           "(wrong key, or the manifest was changed)", key_path);
    return KILN_OK;
}

/* --- member names ------------------------------------------------------------------ */

/* A member is a plain file name: letters, digits, '.', '_', '-', not
 * starting with '.', at most MAX_NAME characters. The specific refusals
 * come first so that the message says what was wrong. */
static enum kiln_status check_member_name(const char *pkg, const char *name)
{
    if (!name || !*name) return kiln_errorf(KILN_ERR_FORMAT, "%s: a member has no name", pkg);
    if (name[0] == '/')
        return kiln_errorf(KILN_ERR_FORMAT, "%s: member '%.200s' has an absolute path", pkg, name);
    for (const char *p = name; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return kiln_errorf(KILN_ERR_FORMAT, "%s: member '%.200s' has a '..' component", pkg,
                               name);
        p += n + (slash ? 1 : 0);
        if (!slash) break;
    }
    size_t len = strlen(name);
    bool ok = len <= MAX_NAME && name[0] != '.';
    for (size_t i = 0; ok && i < len; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    }
    if (!ok)
        return kiln_errorf(KILN_ERR_FORMAT, "%s: member '%.200s' is not a plain file name "
                           "(letters, digits, '.', '_', '-'; no folders)", pkg, name);
    return KILN_OK;
}

/* --- writing ------------------------------------------------------------------------- */

/* Appends s as a YAML double-quoted scalar (JSON escapes are valid YAML). */
static void yaml_quote(struct sbuf *b, const char *s)
{
    sbuf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') sbuf_add(b, "\\%c", *p);
        else if (*p == '\n') sbuf_add(b, "\\n");
        else if (*p == '\t') sbuf_add(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f) sbuf_add(b, "\\x%02x", *p);
        else sbuf_append(b, (const char *)p, 1);
    }
    sbuf_append(b, "\"", 1);
}

static const char *jstr_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static enum kiln_status write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n;
    if (fclose(f) != 0 || !ok) return kiln_errorf(KILN_ERR_IO, "%s: write failed", path);
    return KILN_OK;
}

/* golden.h5: /inputs [rows, in] and /outputs [rows, k] float32, without
 * object time stamps so that the same rows give the same bytes. */
static enum kiln_status golden_write(const char *path, const float *x, const float *y, int64_t rows,
                                     int64_t in, int64_t k, bool transformed, const char *split)
{
    h5_quiet();
    enum kiln_status st = KILN_OK;
    hid_t f = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (f < 0 || dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) {
        st = kiln_errorf(KILN_ERR_IO, "%s: cannot create", path);
        goto cleanup;
    }
    const char *names[2] = {"inputs", "outputs"};
    const float *data[2] = {x, y};
    int64_t widths[2] = {in, k};
    for (int i = 0; i < 2 && st == KILN_OK; i++) {
        hsize_t dims[2] = {(hsize_t)rows, (hsize_t)widths[i]};
        hid_t sp = H5Screate_simple(2, dims, NULL);
        hid_t d = sp < 0 ? -1 : H5Dcreate2(f, names[i], H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl,
                                           H5P_DEFAULT);
        if (d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data[i]) < 0)
            st = kiln_errorf(KILN_ERR_IO, "%s: cannot write /%s", path, names[i]);
        if (d >= 0) H5Dclose(d);
        if (sp >= 0) H5Sclose(sp);
    }
    if (st == KILN_OK) st = h5_attr_write_i64(f, "inputs_transformed", transformed ? 1 : 0);
    if (st == KILN_OK) st = h5_attr_write_str(f, "split", split);
cleanup:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (f >= 0 && H5Fclose(f) < 0 && st == KILN_OK)
        st = kiln_errorf(KILN_ERR_IO, "%s: cannot close", path);
    return st;
}

/* Runs the model on the first rows of the dataset's test split (else val,
 * else train) and writes golden.h5. The dataset file holds rows as the model
 * saw them in training, i.e. after the model's transforms; golden.h5 says so
 * (inputs_transformed = 1) when the model carries transforms. */
static enum kiln_status golden_make(const char *model_path, const char *data_path, int n_rows,
                                    const char *out_path, struct kiln_model_meta *meta,
                                    int64_t *in_out, int64_t *k_out)
{
    struct kiln_backend *be = NULL;
    struct kiln_model *m = NULL;
    struct kiln_dataset *ds = NULL;
    float *x = NULL, *y = NULL;
    char said[256];
    enum kiln_status st = kiln_dataset_load(data_path, &ds);
    if (st != KILN_OK) return st;
    const struct kiln_split *sp = NULL;
    const char *split = NULL;
    static const enum kiln_split_id order[] = {KILN_SPLIT_TEST, KILN_SPLIT_VAL, KILN_SPLIT_TRAIN};
    for (int i = 0; i < 3 && !sp; i++)
        if (ds->splits[order[i]] && ds->splits[order[i]]->n > 0) {
            sp = ds->splits[order[i]];
            split = kiln_split_name(order[i]);
        }
    if (!sp) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: the dataset has no rows for golden examples",
                         data_path);
        goto cleanup;
    }
    int64_t rows = sp->n < n_rows ? sp->n : n_rows;
    st = kiln_backend_open("cpu", 1, &be, said, sizeof said);
    if (st == KILN_OK) st = kiln_model_load(model_path, be, rows, &m, meta);
    if (st != KILN_OK) goto cleanup;
    int64_t in = kiln_model_input_size(m), k = kiln_model_output_size(m);
    if (sp->feat_size != in) {
        st = kiln_errorf(KILN_ERR_SHAPE, "%s: rows have %lld features, the model takes %lld",
                         data_path, (long long)sp->feat_size, (long long)in);
        goto cleanup;
    }
    x = malloc((size_t)(rows * in) * sizeof *x);
    y = malloc((size_t)(rows * k) * sizeof *y);
    if (!x || !y) {
        st = kiln_errorf(KILN_ERR_NOMEM, "golden examples: out of memory");
        goto cleanup;
    }
    for (int64_t i = 0; i < rows * in; i++)
        x[i] = sp->x_dtype == KILN_DTYPE_U8 ? (float)((const uint8_t *)sp->X)[i] * KILN_U8_SCALE
                                            : ((const float *)sp->X)[i];
    st = kiln_model_predict(m, x, rows, y);
    if (st == KILN_OK)
        st = golden_write(out_path, x, y, rows, in, k, meta->transforms_json != NULL, split);
    *in_out = in;
    *k_out = k;
cleanup:
    free(x);
    free(y);
    kiln_model_free(m);
    kiln_backend_free(be);
    kiln_dataset_free(ds);
    return st;
}

/* Streams the file at path into the archive as a regular member with fixed
 * owner, mode and time, so that the same inputs give the same bytes. */
static enum kiln_status tar_add_file(struct archive *a, const char *name, const char *path,
                                     const char *data, int64_t data_len)
{
    int fd = -1;
    int64_t size = data_len;
    if (path) {
        enum kiln_status st = fs_check_file(path, &size);
        if (st != KILN_OK) return st;
        if ((fd = open(path, O_RDONLY)) < 0)
            return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    }
    struct archive_entry *e = archive_entry_new();
    enum kiln_status st = KILN_OK;
    if (!e) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, size);
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    if (archive_write_header(a, e) != ARCHIVE_OK) {
        st = kiln_errorf(KILN_ERR_IO, "writing member %s: %s", name, archive_error_string(a));
        goto cleanup;
    }
    if (!path) {
        if (archive_write_data(a, data, (size_t)data_len) != (la_ssize_t)data_len)
            st = kiln_errorf(KILN_ERR_IO, "writing member %s: %s", name, archive_error_string(a));
        goto cleanup;
    }
    static _Thread_local char buf[1 << 16];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            st = kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) break;
        if (archive_write_data(a, buf, (size_t)n) != n) {
            st = kiln_errorf(KILN_ERR_IO, "writing member %s: %s", name, archive_error_string(a));
            break;
        }
    }
cleanup:
    archive_entry_free(e);
    if (fd >= 0) close(fd);
    return st;
}

static enum kiln_status tar_write(const char *out, const char *manifest,
                                  const unsigned char *sig, const char *stage)
{
    char tmp[4300], path[4400];
    enum kiln_status st = fs_temp_path(out, tmp, sizeof tmp);
    if (st != KILN_OK) return st;
    struct archive *a = archive_write_new();
    if (!a) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    if (archive_write_set_format_ustar(a) != ARCHIVE_OK ||
        archive_write_open_filename(a, tmp) != ARCHIVE_OK) {
        st = kiln_errorf(KILN_ERR_IO, "%s: %s", tmp, archive_error_string(a));
        archive_write_free(a);
        unlink(tmp);
        return st;
    }
    st = tar_add_file(a, MANIFEST, NULL, manifest, (int64_t)strlen(manifest));
    if (st == KILN_OK && sig)
        st = tar_add_file(a, SIGNATURE, NULL, (const char *)sig, KILN_PACKAGE_SIG_BYTES);
    for (int i = 0; i < N_MEMBERS && st == KILN_OK; i++) {
        snprintf(path, sizeof path, "%s/%s", stage, MEMBERS[i]);
        st = tar_add_file(a, MEMBERS[i], path, NULL, 0);
    }
    if (archive_write_close(a) != ARCHIVE_OK && st == KILN_OK)
        st = kiln_errorf(KILN_ERR_IO, "%s: %s", tmp, archive_error_string(a));
    archive_write_free(a);
    if (st == KILN_OK) st = fs_publish(tmp, out);
    if (st != KILN_OK) unlink(tmp);
    return st;
}

static void stage_remove(const char *stage)
{
    char path[4400];
    for (int i = 0; i < N_MEMBERS; i++) {
        snprintf(path, sizeof path, "%s/%s", stage, MEMBERS[i]);
        unlink(path);
    }
    rmdir(stage);
}

/* The manifest text (docs/FORMATS.md lists its keys). */
static char *manifest_build(const struct kiln_model_version *v, const json_t *lineage,
                            const struct kiln_model_meta *meta, int64_t raw_features, int64_t in,
                            int64_t k, int golden_rows, const char *stage)
{
    struct sbuf b = {0};
    char created[32];
    time_iso8601(created);
    const json_t *model = json_object_get(lineage, "model");
    const json_t *run = json_object_get(lineage, "run");
    const json_t *ckpt = json_object_get(lineage, "checkpoint");
    const json_t *ds = json_array_get(json_object_get(lineage, "datasets"), 0);
    sbuf_add(&b, "# kiln model package manifest (docs/FORMATS.md, \"Package (.kiln)\")\n");
    sbuf_add(&b, "format: kiln-package\nformat_version: 1\nname: ");
    yaml_quote(&b, v->name);
    sbuf_add(&b, "\nversion: %lld\ncreated: ", (long long)v->version);
    yaml_quote(&b, created);
    sbuf_add(&b, "\nregistered: ");
    yaml_quote(&b, v->created);
    sbuf_add(&b, "\nengine:\n  version: ");
    yaml_quote(&b, kiln_version_string());
    sbuf_add(&b, "\n  commit: ");
    yaml_quote(&b, kiln_git_commit());
    sbuf_add(&b, "\nlineage:\n  dataset:\n    name: ");
    yaml_quote(&b, jstr_of(ds, "name"));
    sbuf_add(&b, "\n    version: %lld\n    content_sha256: ",
             (long long)json_integer_value(json_object_get(ds, "version")));
    yaml_quote(&b, jstr_of(ds, "content_sha256"));
    sbuf_add(&b, "\n  run_id: %lld\n  run_config_sha256: ", (long long)v->run_id);
    yaml_quote(&b, jstr_of(run, "config_sha256"));
    sbuf_add(&b, "\n  run_git_commit: ");
    yaml_quote(&b, jstr_of(run, "git_commit"));
    sbuf_add(&b, "\n  checkpoint_sha256: ");
    yaml_quote(&b, jstr_of(ckpt, "sha256"));
    sbuf_add(&b, "\n  model_sha256: ");
    yaml_quote(&b, v->sha256);
    sbuf_add(&b, "\nmetrics:");
    const json_t *metrics = json_object_get(model, "metrics");
    const char *key;
    json_t *val;
    if (json_object_size(metrics) == 0) sbuf_add(&b, " {}");
    json_object_foreach((json_t *)metrics, key, val) {
        sbuf_add(&b, "\n  ");
        yaml_quote(&b, key);
        if (json_is_number(val)) sbuf_add(&b, ": %.17g", json_number_value(val));
        else sbuf_add(&b, ": null");
    }
    sbuf_add(&b, "\ninput:\n  shape: [%lld]\n  dtype: float32\n  features: %lld\n"
             "  model_features: %lld\n",
             (long long)raw_features, (long long)raw_features, (long long)in);
    sbuf_add(&b, "output:\n  shape: [%lld]\n  dtype: float32\n  classes: [", (long long)k);
    bool classes = meta->model.loss == KILN_LOSS_SOFTMAX_XENT && meta->n_classes == k;
    for (int i = 0; classes && i < meta->n_classes; i++) {
        if (i) sbuf_add(&b, ", ");
        yaml_quote(&b, meta->classes[i]);
    }
    sbuf_add(&b, "]\ntransforms: ");
    if (meta->transforms_json) yaml_quote(&b, meta->transforms_json);
    else sbuf_add(&b, "null");
    sbuf_add(&b, "\ngolden:\n  rows: %d\n  tolerance: %g\n  inputs_transformed: %s\n", golden_rows,
             KILN_PACKAGE_GOLDEN_TOL, meta->transforms_json ? "true" : "false");
    sbuf_add(&b, "members:\n");
    char path[4400], sha[65];
    for (int i = 0; i < N_MEMBERS; i++) {
        int64_t size = 0;
        snprintf(path, sizeof path, "%s/%s", stage, MEMBERS[i]);
        if (fs_check_file(path, &size) != KILN_OK || sha256_file(path, sha) != KILN_OK) {
            sbuf_free(&b);
            return NULL;
        }
        sbuf_add(&b, "  - path: ");
        yaml_quote(&b, MEMBERS[i]);
        sbuf_add(&b, "\n    size: %lld\n    sha256: ", (long long)size);
        yaml_quote(&b, sha);
        sbuf_add(&b, "\n");
    }
    char *text = sbuf_take(&b);
    if (!text) kiln_errorf(KILN_ERR_NOMEM, "manifest: out of memory");
    return text;
}

static enum kiln_status copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY);
    if (in < 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (out < 0) {
        close(in);
        return kiln_errorf(KILN_ERR_IO, "%s: %s", to, strerror(errno));
    }
    enum kiln_status st = KILN_OK;
    static _Thread_local char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0) st = kiln_errorf(KILN_ERR_IO, "%s: %s", from, strerror(errno));
            break;
        }
        if (write(out, buf, (size_t)n) != n) {
            st = kiln_errorf(KILN_ERR_IO, "%s: %s", to, strerror(errno));
            break;
        }
    }
    close(in);
    if (close(out) != 0 && st == KILN_OK) st = kiln_errorf(KILN_ERR_IO, "%s: %s", to, strerror(errno));
    return st;
}

enum kiln_status kiln_model_package(struct kiln_store *ws, const struct kiln_package_opts *o,
                                    struct kiln_package_info *info)
{
    int golden_rows = o->golden_rows ? o->golden_rows : 8;
    if (golden_rows < 1 || golden_rows > KILN_PACKAGE_MAX_GOLDEN)
        return kiln_errorf(KILN_ERR_USAGE, "--golden must be 1..%d", KILN_PACKAGE_MAX_GOLDEN);
    if (!o->out || !*o->out) return kiln_errorf(KILN_ERR_USAGE, "no output file given");
    EVP_PKEY *key = NULL;
    struct kiln_model_version v;
    struct kiln_model_meta meta;
    struct kiln_dataversion_record rec;
    memset(&meta, 0, sizeof meta);
    memset(&rec, 0, sizeof rec);
    bool have_rec = false;
    char *lineage_text = NULL, *manifest = NULL;
    json_t *lineage = NULL;
    char stage[4200] = "", out_tmp[4400] = "", model_path[4400], data_path[4400], path[4400], pinned[300];
    unsigned char sig[KILN_PACKAGE_SIG_BYTES];
    struct kiln_package_info res = {0};
    struct kiln_transform_list *tl = NULL;

    enum kiln_status st = o->key_path ? key_read(o->key_path, true, &key) : KILN_OK;
    if (st == KILN_OK) st = kiln_model_version_find(ws, o->ref, &v);
    if (st != KILN_OK) goto cleanup;
    snprintf(pinned, sizeof pinned, "%s@%lld", v.name, (long long)v.version);
    st = kiln_store_object_path(ws, v.sha256, model_path, sizeof model_path);
    if (st == KILN_OK) st = kiln_model_lineage_json(ws, pinned, &lineage_text);
    if (st != KILN_OK) goto cleanup;
    json_error_t jerr;
    if (!(lineage = json_loads(lineage_text, 0, &jerr))) {
        st = kiln_errorf(KILN_ERR_INTERNAL, "lineage of %s: %s", pinned, jerr.text);
        goto cleanup;
    }
    const json_t *ds = json_array_get(json_object_get(lineage, "datasets"), 0);
    if (!json_is_object(ds)) {
        st = kiln_errorf(KILN_ERR_NOT_FOUND, "%s: no training dataset version is recorded for it, "
                         "so the package would have no golden examples or drift baseline "
                         "(register the model from its run)", pinned);
        goto cleanup;
    }
    st = kiln_dataversion_get(ws, (int64_t)json_integer_value(json_object_get(ds, "id")), &rec);
    if (st != KILN_OK) goto cleanup;
    have_rec = true;
    st = kiln_store_object_path(ws, rec.v.object_sha256, data_path, sizeof data_path);
    if (st != KILN_OK) goto cleanup;

    /* Stage the members in a private folder of the store's tmp. */
    st = kiln_store_tmp_path(ws, ".pkg", stage, sizeof stage);
    if (st == KILN_OK && mkdir(stage, 0700) != 0)
        st = kiln_errorf(KILN_ERR_IO, "%s: %s", stage, strerror(errno));
    if (st != KILN_OK) {
        stage[0] = '\0';
        goto cleanup;
    }
    snprintf(path, sizeof path, "%s/model.h5", stage);
    st = copy_file(model_path, path);
    snprintf(path, sizeof path, "%s/card.md", stage);
    if (st == KILN_OK) st = kiln_model_card(ws, pinned, KILN_CARD_MARKDOWN, path);
    snprintf(path, sizeof path, "%s/stats.json", stage);
    if (st == KILN_OK) st = write_text(path, rec.stats ? rec.stats : "null");
    snprintf(path, sizeof path, "%s/golden.h5", stage);
    int64_t in = 0, k = 0;
    if (st == KILN_OK) st = golden_make(model_path, data_path, golden_rows, path, &meta, &in, &k);
    if (st != KILN_OK) goto cleanup;
    int64_t raw = in;
    if (meta.transforms_json) {
        st = kiln_transform_list_from_json(meta.transforms_json, &tl);
        if (st != KILN_OK) goto cleanup;
        raw = kiln_transform_in_width(tl);
    }
    if (!(manifest = manifest_build(&v, lineage, &meta, raw, in, k, golden_rows, stage))) {
        st = KILN_ERR_IO;
        goto cleanup;
    }
    /* The package goes to a temp name beside o->out and is published only
     * once the store has recorded it: a failure on the way leaves no
     * unregistered .kiln file behind (and an older o->out untouched). */
    if (key) st = sign_bytes(key, manifest, strlen(manifest), sig);
    if (st == KILN_OK) st = fs_temp_path(o->out, out_tmp, sizeof out_tmp);
    if (st == KILN_OK) st = tar_write(out_tmp, manifest, key ? sig : NULL, stage);
    if (st != KILN_OK) goto cleanup;

    /* Record it: the object, the packages row and the audit entry in one
     * transaction (the copy under the lock, as register does, so gc cannot
     * take the unreferenced object). */
    res.is_signed = key != NULL;
    res.golden_rows = golden_rows;
    res.version = v.version;
    snprintf(res.name, sizeof res.name, "%s", v.name);
    if ((st = kiln_store_begin(ws)) != KILN_OK) goto cleanup;
    st = kiln_store_put_file(ws, out_tmp, "package", res.sha256, &res.size);
    sqlite3_stmt *s = NULL;
    char created[32];
    time_iso8601(created);
    if (st == KILN_OK)
        st = store_prepare(ws, "INSERT INTO packages(version_id, object_sha256, signed, created) "
                               "VALUES(?, ?, ?, ?)", &s);
    if (st == KILN_OK) {
        sqlite3_bind_int64(s, 1, v.id);
        sqlite3_bind_text(s, 2, res.sha256, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(s, 3, res.is_signed ? 1 : 0);
        sqlite3_bind_text(s, 4, created, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(ws, "recording a package");
        sqlite3_finalize(s);
    }
    if (st == KILN_OK) {
        char detail[4400];
        snprintf(detail, sizeof detail, "sha256 %s, %s, to %.4000s", res.sha256,
                 res.is_signed ? "signed" : "unsigned", o->out);
        st = kiln_audit_append(ws, "model.package", pinned, detail);
    }
    if (st == KILN_OK) st = kiln_store_commit(ws);
    if (st != KILN_OK) kiln_store_rollback(ws);
    if (st == KILN_OK) st = fs_publish(out_tmp, o->out);
cleanup:
    if (out_tmp[0] && st != KILN_OK) unlink(out_tmp);
    if (st != KILN_OK) kiln_error_context(st, "packaging %s", o->ref);
    else if (info) *info = res;
    if (stage[0]) stage_remove(stage);
    kiln_transform_list_free(tl);
    kiln_model_meta_free(&meta);
    if (have_rec) kiln_dataversion_record_free(&rec);
    json_decref(lineage);
    free(lineage_text);
    free(manifest);
    EVP_PKEY_free(key);
    return st;
}

/* --- reading: the manifest ----------------------------------------------------------- */

struct manifest_member {
    char path[MAX_NAME + 1];
    int64_t size;
    char sha256[65];
};

static yaml_node_t *ymap_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key))
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

static bool yis_null(const yaml_node_t *n)
{
    if (!n) return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || !strcmp(s, "null") || !strcmp(s, "~");
}

/* Reads the scalar at path (keys separated by '.') into buf. */
static enum kiln_status yget_str(yaml_document_t *d, const char *pkg, const char *path, char *buf,
                                 size_t len, bool required)
{
    char keys[128];
    snprintf(keys, sizeof keys, "%s", path);
    yaml_node_t *n = yaml_document_get_root_node(d);
    for (char *save = NULL, *k = strtok_r(keys, ".", &save); k && n; k = strtok_r(NULL, ".", &save))
        n = ymap_get(d, n, k);
    buf[0] = '\0';
    if (!n || yis_null(n)) {
        if (!required) return KILN_OK;
        return kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: '%s' is missing", pkg, path);
    }
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.length >= len)
        return kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml line %lu: '%s' is not a short text",
                           pkg, (unsigned long)n->start_mark.line + 1, path);
    memcpy(buf, n->data.scalar.value, n->data.scalar.length + 1);
    return KILN_OK;
}

static enum kiln_status yget_i64(yaml_document_t *d, const char *pkg, const char *path, int64_t *out,
                                 bool required)
{
    char buf[64], *end;
    enum kiln_status st = yget_str(d, pkg, path, buf, sizeof buf, required);
    if (st != KILN_OK) return st;
    *out = 0;
    if (!buf[0]) return KILN_OK;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end || x < 0)
        return kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: '%s' is not a whole number: '%s'",
                           pkg, path, buf);
    *out = x;
    return KILN_OK;
}

/* Parses the manifest's text into p and its member list. */
static enum kiln_status manifest_parse(const char *pkg, struct kiln_package *p,
                                       struct manifest_member *mm, int *n_mm)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_doc = false;
    enum kiln_status st = KILN_OK;
    char buf[256];
    *n_mm = 0;
    if (!yaml_parser_initialize(&parser)) return kiln_errorf(KILN_ERR_NOMEM, "libyaml: out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)p->manifest, strlen(p->manifest));
    if (!yaml_parser_load(&parser, &doc)) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml line %lu: %s", pkg,
                         (unsigned long)parser.problem_mark.line + 1,
                         parser.problem ? parser.problem : "malformed YAML");
        goto cleanup;
    }
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml is not a mapping", pkg);
        goto cleanup;
    }
    int64_t fv = 0;
    st = yget_str(&doc, pkg, "format", buf, sizeof buf, true);
    if (st == KILN_OK && strcmp(buf, "kiln-package"))
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: format is '%s', not kiln-package", pkg,
                         buf);
    if (st == KILN_OK) st = yget_i64(&doc, pkg, "format_version", &fv, true);
    if (st == KILN_OK && fv != 1)
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: format_version %lld is not supported "
                         "by this kiln (1)", pkg, (long long)fv);
    if (st == KILN_OK) st = yget_str(&doc, pkg, "name", p->name, sizeof p->name, true);
    if (st == KILN_OK) st = yget_i64(&doc, pkg, "version", &p->version, true);
    if (st == KILN_OK) st = yget_str(&doc, pkg, "created", p->created, sizeof p->created, true);
    if (st == KILN_OK)
        st = yget_str(&doc, pkg, "engine.version", p->engine_version, sizeof p->engine_version, false);
    if (st == KILN_OK)
        st = yget_str(&doc, pkg, "engine.commit", p->engine_commit, sizeof p->engine_commit, false);
    if (st == KILN_OK)
        st = yget_str(&doc, pkg, "lineage.dataset.name", p->dataset_name, sizeof p->dataset_name,
                      false);
    if (st == KILN_OK)
        st = yget_i64(&doc, pkg, "lineage.dataset.version", &p->dataset_version, false);
    if (st == KILN_OK)
        st = yget_str(&doc, pkg, "lineage.dataset.content_sha256", p->dataset_sha256,
                      sizeof p->dataset_sha256, false);
    if (st == KILN_OK) st = yget_i64(&doc, pkg, "lineage.run_id", &p->run_id, false);
    if (st == KILN_OK)
        st = yget_str(&doc, pkg, "lineage.checkpoint_sha256", p->checkpoint_sha256,
                      sizeof p->checkpoint_sha256, false);
    if (st == KILN_OK)
        st = yget_str(&doc, pkg, "lineage.model_sha256", p->model_sha256, sizeof p->model_sha256,
                      true);
    if (st == KILN_OK) st = yget_i64(&doc, pkg, "input.features", &p->n_features, true);
    if (st != KILN_OK) goto cleanup;
    /* output.shape: [k]; output.classes: [names] */
    yaml_node_t *out = ymap_get(&doc, root, "output");
    yaml_node_t *shape = ymap_get(&doc, out, "shape"), *classes = ymap_get(&doc, out, "classes");
    if (!shape || shape->type != YAML_SEQUENCE_NODE ||
        shape->data.sequence.items.top - shape->data.sequence.items.start != 1) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: output.shape must be [K]", pkg);
        goto cleanup;
    }
    yaml_node_t *k = yaml_document_get_node(&doc, *shape->data.sequence.items.start);
    p->n_outputs = k && k->type == YAML_SCALAR_NODE ? atoll((const char *)k->data.scalar.value) : 0;
    if (p->n_outputs <= 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: output.shape must be [K], K > 0", pkg);
        goto cleanup;
    }
    if (classes && classes->type == YAML_SEQUENCE_NODE) {
        int n = (int)(classes->data.sequence.items.top - classes->data.sequence.items.start);
        if (n > 0 && !(p->classes = calloc((size_t)n, sizeof *p->classes))) {
            st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        for (int i = 0; i < n && st == KILN_OK; i++) {
            yaml_node_t *c = yaml_document_get_node(&doc, classes->data.sequence.items.start[i]);
            if (!c || c->type != YAML_SCALAR_NODE) {
                st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: output.classes[%d] is not a "
                                 "name", pkg, i);
                break;
            }
            st = str_dup((const char *)c->data.scalar.value, &p->classes[i]);
            if (st == KILN_OK) p->n_classes = i + 1;
        }
        if (st != KILN_OK) goto cleanup;
    }
    /* transforms: null or the JSON text */
    yaml_node_t *tf = ymap_get(&doc, root, "transforms");
    if (!yis_null(tf)) {
        if (tf->type != YAML_SCALAR_NODE) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: transforms must be null or text",
                             pkg);
            goto cleanup;
        }
        if ((st = str_dup((const char *)tf->data.scalar.value, &p->transforms_json)) != KILN_OK)
            goto cleanup;
    }
    /* metrics: name -> number or null */
    yaml_node_t *metrics = ymap_get(&doc, root, "metrics");
    if (metrics && metrics->type == YAML_MAPPING_NODE) {
        int n = (int)(metrics->data.mapping.pairs.top - metrics->data.mapping.pairs.start);
        if (n > 0) {
            p->metric_names = calloc((size_t)n, sizeof *p->metric_names);
            p->metric_values = calloc((size_t)n, sizeof *p->metric_values);
            if (!p->metric_names || !p->metric_values) {
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
                goto cleanup;
            }
        }
        for (int i = 0; i < n && st == KILN_OK; i++) {
            yaml_node_pair_t *pr = &metrics->data.mapping.pairs.start[i];
            yaml_node_t *kn = yaml_document_get_node(&doc, pr->key),
                        *vn = yaml_document_get_node(&doc, pr->value);
            if (!kn || kn->type != YAML_SCALAR_NODE || !vn || vn->type != YAML_SCALAR_NODE) {
                st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: metrics must map names to "
                                 "numbers", pkg);
                break;
            }
            st = str_dup((const char *)kn->data.scalar.value, &p->metric_names[i]);
            if (st == KILN_OK) {
                p->n_metrics = i + 1;
                p->metric_values[i] = yis_null(vn) ? NAN : strtod((const char *)vn->data.scalar.value, NULL);
            }
        }
        if (st != KILN_OK) goto cleanup;
    }
    /* members: [{path, size, sha256}] */
    yaml_node_t *members = ymap_get(&doc, root, "members");
    if (!members || members->type != YAML_SEQUENCE_NODE) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: 'members' is missing", pkg);
        goto cleanup;
    }
    int n = (int)(members->data.sequence.items.top - members->data.sequence.items.start);
    if (n > KILN_PACKAGE_MAX_MEMBERS) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml lists %d members (at most %d)", pkg, n,
                         KILN_PACKAGE_MAX_MEMBERS);
        goto cleanup;
    }
    for (int i = 0; i < n; i++) {
        yaml_node_t *m = yaml_document_get_node(&doc, members->data.sequence.items.start[i]);
        yaml_node_t *mp = ymap_get(&doc, m, "path"), *ms = ymap_get(&doc, m, "size"),
                    *mh = ymap_get(&doc, m, "sha256");
        struct manifest_member *e = &mm[i];
        char *end = NULL;
        if (!mp || mp->type != YAML_SCALAR_NODE || !ms || ms->type != YAML_SCALAR_NODE || !mh ||
            mh->type != YAML_SCALAR_NODE || mp->data.scalar.length > MAX_NAME) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: members[%d] needs path, size and "
                             "sha256", pkg, i);
            goto cleanup;
        }
        snprintf(e->path, sizeof e->path, "%s", (const char *)mp->data.scalar.value);
        errno = 0;
        long long size = strtoll((const char *)ms->data.scalar.value, &end, 10);
        if (errno || *end || size < 0 || size > KILN_PACKAGE_MAX_MEMBER ||
            !sha256_is_hex((const char *)mh->data.scalar.value)) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml: members[%d] (%s): bad size or "
                             "sha256", pkg, i, e->path);
            goto cleanup;
        }
        e->size = size;
        memcpy(e->sha256, mh->data.scalar.value, 65);
        if ((st = check_member_name(pkg, e->path)) != KILN_OK) goto cleanup;
        if (!strcmp(e->path, MANIFEST) || !strcmp(e->path, SIGNATURE)) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml lists %s as a member", pkg, e->path);
            goto cleanup;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(mm[j].path, e->path)) {
                st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml lists %s twice", pkg, e->path);
                goto cleanup;
            }
        *n_mm = i + 1;
    }
cleanup:
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return st;
}

/* --- reading: the archive ------------------------------------------------------------- */

struct extracted {
    char name[MAX_NAME + 1];
    int64_t size;
    char sha256[65];
};

/* Copies the current entry's data to fd (or, fd < 0, into mem up to cap),
 * hashing it, refusing more than limit bytes. */
static enum kiln_status entry_read(struct archive *a, const char *pkg, const char *name, int fd,
                                   char *mem, size_t cap, int64_t limit, struct extracted *x)
{
    struct sha256_ctx *c = NULL;
    enum kiln_status st = sha256_begin(&c);
    if (st != KILN_OK) return st;
    static _Thread_local char buf[1 << 16];
    int64_t total = 0;
    for (;;) {
        la_ssize_t n = archive_read_data(a, buf, sizeof buf);
        if (n < 0) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: member %s: %s", pkg, name, archive_error_string(a));
            break;
        }
        if (n == 0) break;
        if (total + n > limit) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: member %s is larger than %lld bytes", pkg, name,
                             (long long)limit);
            break;
        }
        sha256_update(c, buf, (size_t)n);
        if (fd >= 0) {
            if (write(fd, buf, (size_t)n) != n) {
                st = kiln_errorf(KILN_ERR_IO, "extracting %s: %s", name, strerror(errno));
                break;
            }
        } else if ((size_t)(total + n) <= cap) {
            memcpy(mem + total, buf, (size_t)n);
        }
        total += n;
    }
    if (st != KILN_OK) {
        sha256_abort(c);
        return st;
    }
    sha256_end(c, x->sha256);
    x->size = total;
    return KILN_OK;
}

/* Reads every entry: structure checks, limits, each member extracted into
 * p->dir under its (checked) name; the manifest and signature kept in memory
 * as well. Parses nothing. */
static enum kiln_status archive_extract(const char *pkg, struct kiln_package *p,
                                        struct extracted *xs, int *n_xs, unsigned char *sig,
                                        size_t *sig_len)
{
    struct archive *a = archive_read_new();
    if (!a) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    enum kiln_status st = KILN_OK;
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, pkg, 1 << 16) != ARCHIVE_OK) {
        st = kiln_errorf(archive_errno(a) == ENOENT ? KILN_ERR_IO : KILN_ERR_FORMAT,
                         "%s: not a readable tar archive: %s", pkg, archive_error_string(a));
        archive_read_free(a);
        return st;
    }
    int64_t total = 0;
    *n_xs = 0;
    *sig_len = 0;
    struct archive_entry *e;
    int r;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (*n_xs == KILN_PACKAGE_MAX_MEMBERS) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: more than %d members", pkg,
                             KILN_PACKAGE_MAX_MEMBERS);
            break;
        }
        if (archive_entry_hardlink(e) || archive_entry_filetype(e) == AE_IFLNK) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: member '%.200s' is a link (links are refused)",
                             pkg, name ? name : "");
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: member '%.200s' is not a regular file", pkg,
                             name ? name : "");
            break;
        }
        if ((st = check_member_name(pkg, name)) != KILN_OK) break;
        for (int i = 0; i < *n_xs && st == KILN_OK; i++)
            if (!strcmp(xs[i].name, name))
                st = kiln_errorf(KILN_ERR_FORMAT, "%s: member %s appears twice", pkg, name);
        if (st != KILN_OK) break;
        int64_t limit = !strcmp(name, MANIFEST)    ? KILN_PACKAGE_MAX_MANIFEST
                        : !strcmp(name, SIGNATURE) ? KILN_PACKAGE_SIG_BYTES * 2
                                                   : KILN_PACKAGE_MAX_MEMBER;
        int64_t declared = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
        if (declared < 0 || declared > limit || total + declared > KILN_PACKAGE_MAX_TOTAL) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: member %s is %lld bytes (limit %lld, %lld in all)",
                             pkg, name, (long long)declared, (long long)limit,
                             (long long)KILN_PACKAGE_MAX_TOTAL);
            break;
        }
        struct extracted *x = &xs[*n_xs];
        snprintf(x->name, sizeof x->name, "%s", name);
        if (!strcmp(name, MANIFEST)) {
            if (!(p->manifest = malloc((size_t)declared + 1))) {
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
                break;
            }
        }
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", p->dir, name);
        /* The folder is ours (mkdtemp) and the name a plain checked one;
         * O_EXCL | O_NOFOLLOW anyway. */
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            st = kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if ((st = str_dup(name, &p->members[p->n_members])) == KILN_OK) p->n_members++;
        if (st == KILN_OK) st = entry_read(a, pkg, name, fd, NULL, 0, limit, x);
        if (close(fd) != 0 && st == KILN_OK)
            st = kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
        if (st != KILN_OK) break;
        if (x->size != declared) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: member %s holds %lld bytes, its header says %lld",
                             pkg, name, (long long)x->size, (long long)declared);
            break;
        }
        total += x->size;
        (*n_xs)++;
        if (!strcmp(name, MANIFEST) || !strcmp(name, SIGNATURE)) {
            /* Read back what was just written, bounded by the limit above. */
            FILE *f = fopen(path, "rb");
            char *dst = !strcmp(name, MANIFEST) ? p->manifest : (char *)sig;
            size_t got = f ? fread(dst, 1, (size_t)x->size, f) : 0;
            if (f) fclose(f);
            if (got != (size_t)x->size) {
                st = kiln_errorf(KILN_ERR_IO, "%s: cannot read back", path);
                break;
            }
            if (dst == p->manifest) p->manifest[got] = '\0';
            else *sig_len = got;
        }
    }
    if (st == KILN_OK && r != ARCHIVE_EOF)
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: not a readable tar archive: %s", pkg,
                         archive_error_string(a) ? archive_error_string(a) : "unknown error");
    archive_read_free(a);
    if (st == KILN_OK && !p->manifest)
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: no manifest.yaml (not a kiln package?)", pkg);
    for (int i = 0; st == KILN_OK && i < *n_xs; i++)
        if (!strcmp(xs[i].name, MANIFEST) && strlen(p->manifest) != (size_t)xs[i].size)
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: manifest.yaml holds a NUL byte", pkg);
    return st;
}

/* --- reading: the golden check ------------------------------------------------------------ */

static enum kiln_status golden_check(const char *pkg, struct kiln_package *p)
{
    struct kiln_backend *be = NULL;
    struct kiln_model *m = NULL;
    struct kiln_model_meta meta;
    struct kiln_transform_list *tl = NULL;
    struct h5_array ai = H5_ARRAY_INIT, ao = H5_ARRAY_INIT;
    float *x = NULL, *y = NULL, *want = NULL, *tx = NULL;
    char said[256];
    memset(&meta, 0, sizeof meta);
    h5_quiet();
    enum kiln_status st = KILN_OK;
    hid_t f = H5Fopen(p->golden_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hsize_t di[2] = {0, 0}, dout[2] = {0, 0};
    if (f < 0 || !h5_array_open(f, "inputs", &ai) || !h5_array_open(f, "outputs", &ao) ||
        H5Sget_simple_extent_ndims(ai.space) != 2 || H5Sget_simple_extent_ndims(ao.space) != 2 ||
        H5Tget_class(ai.type) != H5T_FLOAT || H5Tget_class(ao.type) != H5T_FLOAT) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: golden.h5 lacks float arrays /inputs and /outputs "
                         "of rank 2", pkg);
        goto cleanup;
    }
    H5Sget_simple_extent_dims(ai.space, di, NULL);
    H5Sget_simple_extent_dims(ao.space, dout, NULL);
    int64_t rows = (int64_t)di[0];
    if (rows < 1 || rows > KILN_PACKAGE_MAX_GOLDEN || dout[0] != di[0] ||
        (int64_t)dout[1] != p->n_outputs || di[1] < 1 || di[1] > (1u << 24)) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: golden.h5: inputs [%llu, %llu] and outputs [%llu, "
                         "%llu] do not fit the manifest (1..%d rows, %lld outputs)", pkg,
                         (unsigned long long)di[0], (unsigned long long)di[1],
                         (unsigned long long)dout[0], (unsigned long long)dout[1],
                         KILN_PACKAGE_MAX_GOLDEN, (long long)p->n_outputs);
        goto cleanup;
    }
    int64_t transformed = 0;
    if (h5_attr_exists(f, "inputs_transformed") &&
        (st = h5_attr_read_i64(f, "inputs_transformed", &transformed)) != KILN_OK)
        goto cleanup;
    st = kiln_backend_open("cpu", 1, &be, said, sizeof said);
    if (st == KILN_OK) st = kiln_model_load(p->model_path, be, rows, &m, &meta);
    if (st != KILN_OK) {
        kiln_error_context(st, "%s: model.h5", pkg);
        goto cleanup;
    }
    int64_t in = kiln_model_input_size(m), k = kiln_model_output_size(m);
    if (k != p->n_outputs) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: model.h5 gives %lld outputs, the manifest says %lld",
                         pkg, (long long)k, (long long)p->n_outputs);
        goto cleanup;
    }
    if ((meta.transforms_json == NULL) != (p->transforms_json == NULL) ||
        (meta.transforms_json && strcmp(meta.transforms_json, p->transforms_json))) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: the manifest's transforms are not model.h5's", pkg);
        goto cleanup;
    }
    bool apply = meta.transforms_json && !transformed;
    if (apply) {
        if ((st = kiln_transform_list_from_json(meta.transforms_json, &tl)) != KILN_OK) goto cleanup;
        if (kiln_transform_in_width(tl) != (int64_t)di[1] || kiln_transform_out_width(tl) != in) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: golden.h5 rows do not fit the transforms", pkg);
            goto cleanup;
        }
    } else if ((int64_t)di[1] != in) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: golden.h5 rows have %llu features, the model takes "
                         "%lld", pkg, (unsigned long long)di[1], (long long)in);
        goto cleanup;
    }
    x = malloc((size_t)rows * di[1] * sizeof *x);
    y = malloc((size_t)(rows * k) * sizeof *y);
    want = malloc((size_t)(rows * k) * sizeof *want);
    if (apply) tx = malloc((size_t)(rows * in) * sizeof *tx);
    if (!x || !y || !want || (apply && !tx)) {
        st = kiln_errorf(KILN_ERR_NOMEM, "golden check: out of memory");
        goto cleanup;
    }
    if (H5Dread(ai.d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0 ||
        H5Dread(ao.d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, want) < 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: golden.h5 cannot be read", pkg);
        goto cleanup;
    }
    if (apply) st = kiln_transform_apply_rows(tl, x, rows, tx);
    if (st == KILN_OK) st = kiln_model_predict(m, apply ? tx : x, rows, y);
    if (st != KILN_OK) goto cleanup;
    double worst = 0.0;
    int64_t worst_i = -1;
    for (int64_t i = 0; i < rows * k; i++) {
        double d = fabs((double)y[i] - (double)want[i]);
        if (isnan(y[i]) != isnan(want[i])) d = INFINITY;
        else if (isnan(y[i])) d = 0.0;
        if (worst_i < 0 || d > worst) {
            worst = d;
            worst_i = i;
        }
    }
    p->golden_rows = rows;
    p->golden_max_diff = worst;
    if (!(worst <= KILN_PACKAGE_GOLDEN_TOL))
        st = kiln_errorf(KILN_ERR_INTEGRITY, "%s: not ready: golden output row %lld, column %lld is "
                         "%.9g on this machine, %.9g in golden.h5 (difference %.3g > %g)", pkg,
                         (long long)(worst_i / k), (long long)(worst_i % k), (double)y[worst_i],
                         (double)want[worst_i], worst, KILN_PACKAGE_GOLDEN_TOL);
cleanup:
    free(x);
    free(y);
    free(want);
    free(tx);
    kiln_transform_list_free(tl);
    h5_array_close(&ai);
    h5_array_close(&ao);
    if (f >= 0) H5Fclose(f);
    kiln_model_free(m);
    kiln_model_meta_free(&meta);
    kiln_backend_free(be);
    return st;
}

/* --- open / close ---------------------------------------------------------------------- */

enum kiln_status kiln_package_open(const char *path, const char *pubkey_path,
                                   bool require_signature, struct kiln_package **out)
{
    *out = NULL;
    if (require_signature && !pubkey_path)
        return kiln_errorf(KILN_ERR_USAGE, "a signature is required but no public key (--key) is "
                           "given to check it with");
    struct kiln_package *p = calloc(1, sizeof *p);
    if (!p) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    struct extracted xs[KILN_PACKAGE_MAX_MEMBERS];
    struct manifest_member mm[KILN_PACKAGE_MAX_MEMBERS];
    unsigned char sig[KILN_PACKAGE_SIG_BYTES * 2];
    size_t sig_len = 0;
    int n_xs = 0, n_mm = 0;
    const char *tmp = getenv("TMPDIR");
    snprintf(p->dir, sizeof p->dir, "%s/kiln-package.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    enum kiln_status st = fs_check_file(path, NULL);
    if (st != KILN_OK) {
        free(p);
        return st;
    }
    if (!mkdtemp(p->dir)) {
        st = kiln_errorf(KILN_ERR_IO, "%s: %s", p->dir, strerror(errno));
        free(p);
        return st;
    }
    /* 1. Structure and limits; every member's size and hash, nothing parsed. */
    st = archive_extract(path, p, xs, &n_xs, sig, &sig_len);
    if (st != KILN_OK) goto cleanup;
    /* 2. The signature, over the manifest's bytes. */
    p->is_signed = sig_len > 0;
    for (int i = 0; i < n_xs; i++)
        if (!strcmp(xs[i].name, SIGNATURE)) p->is_signed = true;
    if (p->is_signed && sig_len != KILN_PACKAGE_SIG_BYTES) {
        st = kiln_errorf(KILN_ERR_INTEGRITY, "%s: manifest.sig is %zu bytes, not a %d-byte Ed25519 "
                         "signature", path, sig_len, KILN_PACKAGE_SIG_BYTES);
        goto cleanup;
    }
    if (pubkey_path) {
        if (!p->is_signed) {
            st = kiln_errorf(KILN_ERR_INTEGRITY, "%s: the package is not signed (no manifest.sig) "
                             "but a key was given to check it", path);
            goto cleanup;
        }
        st = verify_bytes(pubkey_path, p->manifest, strlen(p->manifest), sig, sig_len);
        if (st != KILN_OK) {
            kiln_error_context(st, "%s", path);
            goto cleanup;
        }
        p->signature_verified = true;
    }
    /* 3. The manifest (libyaml, bounded by the 1 MiB limit above). */
    st = manifest_parse(path, p, mm, &n_mm);
    if (st != KILN_OK) goto cleanup;
    /* 4. Members against the manifest: nothing missing, nothing extra, sizes and hashes. */
    for (int i = 0; i < n_mm && st == KILN_OK; i++) {
        int j = 0;
        while (j < n_xs && strcmp(xs[j].name, mm[i].path)) j++;
        if (j == n_xs)
            st = kiln_errorf(KILN_ERR_INTEGRITY, "%s: member %s is in the manifest but not in the "
                             "package", path, mm[i].path);
        else if (xs[j].size != mm[i].size)
            st = kiln_errorf(KILN_ERR_INTEGRITY, "%s: member %s is %lld bytes, the manifest says "
                             "%lld", path, mm[i].path, (long long)xs[j].size, (long long)mm[i].size);
        else if (strcmp(xs[j].sha256, mm[i].sha256))
            st = kiln_errorf(KILN_ERR_INTEGRITY, "%s: member %s has SHA-256 %s, the manifest says %s",
                             path, mm[i].path, xs[j].sha256, mm[i].sha256);
    }
    for (int j = 0; j < n_xs && st == KILN_OK; j++) {
        if (!strcmp(xs[j].name, MANIFEST) || !strcmp(xs[j].name, SIGNATURE)) continue;
        int i = 0;
        while (i < n_mm && strcmp(xs[j].name, mm[i].path)) i++;
        if (i == n_mm)
            st = kiln_errorf(KILN_ERR_INTEGRITY, "%s: member %s is not in the manifest", path,
                             xs[j].name);
    }
    for (int r = 0; r < N_MEMBERS && st == KILN_OK; r++) {
        int i = 0;
        while (i < n_mm && strcmp(MEMBERS[r], mm[i].path)) i++;
        if (i == n_mm)
            st = kiln_errorf(KILN_ERR_INTEGRITY, "%s: the manifest lacks the member %s", path,
                             MEMBERS[r]);
    }
    if (st != KILN_OK) goto cleanup;
    for (int i = 0; i < n_mm; i++)
        if (!strcmp(mm[i].path, "model.h5") && strcmp(mm[i].sha256, p->model_sha256)) {
            st = kiln_errorf(KILN_ERR_INTEGRITY, "%s: model.h5 is not the model the lineage names "
                             "(%s)", path, p->model_sha256);
            goto cleanup;
        }
    snprintf(p->manifest_path, sizeof p->manifest_path, "%s/%s", p->dir, MANIFEST);
    snprintf(p->model_path, sizeof p->model_path, "%s/model.h5", p->dir);
    snprintf(p->card_path, sizeof p->card_path, "%s/card.md", p->dir);
    snprintf(p->stats_path, sizeof p->stats_path, "%s/stats.json", p->dir);
    snprintf(p->golden_path, sizeof p->golden_path, "%s/golden.h5", p->dir);
    if ((st = sha256_file(path, p->sha256)) != KILN_OK) goto cleanup;
    /* 5. Only now is a member parsed: the model, run on the golden inputs. */
    st = golden_check(path, p);
cleanup:
    if (st != KILN_OK) {
        kiln_package_close(p);
        return st;
    }
    *out = p;
    return KILN_OK;
}

void kiln_package_close(struct kiln_package *p)
{
    if (!p) return;
    char path[4400];
    for (int i = 0; i < p->n_members; i++) {
        snprintf(path, sizeof path, "%s/%s", p->dir, p->members[i]);
        unlink(path);
        free(p->members[i]);
    }
    if (p->dir[0]) rmdir(p->dir);
    strv_free(p->classes, p->n_classes);
    strv_free(p->metric_names, p->n_metrics);
    free(p->metric_values);
    free(p->transforms_json);
    free(p->manifest);
    free(p);
}
