/* engine/core/util.c: atomic files, folders, SHA-256, HDF5 attribute helpers,
 * growable strings, name lists. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util.h"

/* --- atomic files ----------------------------------------------------------- */

static void path_split(const char *path, char *dir, size_t dlen, char *base, size_t blen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(dir, dlen, "%s", dirname(tmp));
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(base, blen, "%s", basename(tmp));
}

enum kiln_status fs_temp_path(const char *final, char *buf, size_t len)
{
    char dir[4096], base[1024];
    path_split(final, dir, sizeof dir, base, sizeof base);
    int n = snprintf(buf, len, "%s/.%s.tmp.%ld", dir, base, (long)getpid());
    if (n < 0 || (size_t)n >= len)
        return kiln_errorf(KILN_ERR_IO, "%s: path too long", final);
    return KILN_OK;
}

static enum kiln_status fsync_path(const char *path, bool is_dir)
{
    int fd = open(path, is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* Some file systems refuse fsync on folders; the rename is still atomic. */
    if (rc != 0 && !(is_dir && (err == EINVAL || err == ENOTSUP)))
        return kiln_errorf(KILN_ERR_IO, "%s: fsync: %s", path, strerror(err));
    return KILN_OK;
}

enum kiln_status fs_publish(const char *tmp, const char *final)
{
    enum kiln_status st = fsync_path(tmp, false);
    if (st != KILN_OK) goto fail;
    if (rename(tmp, final) != 0) {
        st = kiln_errorf(KILN_ERR_IO, "%s: rename from %s: %s", final, tmp, strerror(errno));
        goto fail;
    }
    char dir[4096], base[1024];
    path_split(final, dir, sizeof dir, base, sizeof base);
    return fsync_path(dir, true);
fail:
    unlink(tmp);
    return st;
}

enum kiln_status fs_check_writable_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return kiln_errorf(KILN_ERR_IO, "%s: not a folder", dir);
    if (access(dir, W_OK) != 0)
        return kiln_errorf(KILN_ERR_IO, "%s: not writable: %s", dir, strerror(errno));
    return KILN_OK;
}

enum kiln_status fs_make_dir(const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return kiln_errorf(KILN_ERR_IO, "%s: cannot create folder: %s", dir, strerror(errno));
    return fs_check_writable_dir(dir);
}

enum kiln_status fs_make_dirs(const char *dir)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return kiln_errorf(KILN_ERR_IO, "%s: path too long", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return kiln_errorf(KILN_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
        *p = '/';
    }
    return fs_make_dir(buf);
}

enum kiln_status fs_check_file(const char *path, int64_t *size)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return kiln_errorf(KILN_ERR_IO, "%s: is a folder", path);
    if (size) *size = (int64_t)sb.st_size;
    return KILN_OK;
}

/* --- SHA-256 ------------------------------------------------------------------ */

struct sha256_ctx {
    EVP_MD_CTX *md;
};

enum kiln_status sha256_begin(struct sha256_ctx **out)
{
    struct sha256_ctx *c = malloc(sizeof *c);
    if (!c) return kiln_errorf(KILN_ERR_NOMEM, "sha256: out of memory");
    c->md = EVP_MD_CTX_new();
    if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c->md);
        free(c);
        return kiln_errorf(KILN_ERR_INTERNAL, "sha256: OpenSSL could not start a digest");
    }
    *out = c;
    return KILN_OK;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
    EVP_DigestUpdate(c->md, data, len);
}

void sha256_end(struct sha256_ctx *c, char hex[65])
{
    unsigned char digest[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(c->md, digest, &len);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    hex[64] = '\0';
    sha256_abort(c);
}

void sha256_abort(struct sha256_ctx *c)
{
    if (!c) return;
    EVP_MD_CTX_free(c->md);
    free(c);
}

bool sha256_is_hex(const char *s)
{
    if (strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

enum kiln_status sha256_file(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    struct sha256_ctx *c;
    enum kiln_status st = sha256_begin(&c);
    if (st != KILN_OK) {
        fclose(f);
        return st;
    }
    static _Thread_local unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(c, buf, n);
    if (ferror(f)) {
        sha256_abort(c);
        fclose(f);
        return kiln_errorf(KILN_ERR_IO, "%s: read error", path);
    }
    fclose(f);
    sha256_end(c, hex);
    return KILN_OK;
}

/* --- HDF5 --------------------------------------------------------------------- */

void h5_quiet(void)
{
    /* HDF5's exit handler re-closes files whose close failed (a full disk)
     * and crashes doing it (1.10); kiln closes every file it opens, so the
     * handler has nothing to do. It must be turned off before HDF5 starts. */
    static bool done;
    if (done) return;
    done = true;
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static enum kiln_status h5_attr_write(hid_t obj, const char *name, hid_t type, hid_t space,
                                      const void *buf)
{
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, type, buf);
    if (a >= 0) H5Aclose(a);
    if (rc < 0) return kiln_errorf(KILN_ERR_IO, "HDF5: cannot write attribute '%s'", name);
    return KILN_OK;
}

enum kiln_status h5_attr_write_str(hid_t obj, const char *name, const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hid_t space = H5Screate(H5S_SCALAR);
    const char *v = value ? value : "";
    enum kiln_status st = h5_attr_write(obj, name, type, space, &v);
    H5Sclose(space);
    H5Tclose(type);
    return st;
}

enum kiln_status h5_attr_write_strs(hid_t obj, const char *name, char *const *values, int n)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    hsize_t dim = (hsize_t)n;
    hid_t space = n > 0 ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_NULL);
    enum kiln_status st = h5_attr_write(obj, name, type, space, values);
    H5Sclose(space);
    H5Tclose(type);
    return st;
}

enum kiln_status h5_attr_write_i64(hid_t obj, const char *name, int64_t value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    enum kiln_status st = h5_attr_write(obj, name, H5T_NATIVE_INT64, space, &value);
    H5Sclose(space);
    return st;
}

enum kiln_status h5_attr_write_f64(hid_t obj, const char *name, double value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    enum kiln_status st = h5_attr_write(obj, name, H5T_NATIVE_DOUBLE, space, &value);
    H5Sclose(space);
    return st;
}

bool h5_attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

enum kiln_status h5_attr_read_str(hid_t obj, const char *name, char **out)
{
    *out = NULL;
    enum kiln_status st = KILN_OK;
    hid_t a = -1, type = -1, space = -1, mem = -1;
    if (H5Aexists(obj, name) <= 0)
        return kiln_errorf(KILN_ERR_FORMAT, "attribute '%s' is missing", name);
    a = H5Aopen(obj, name, H5P_DEFAULT);
    type = a < 0 ? -1 : H5Aget_type(a);
    space = a < 0 ? -1 : H5Aget_space(a);
    if (type < 0 || space < 0 || H5Tget_class(type) != H5T_STRING ||
        H5Sget_simple_extent_npoints(space) != 1) {
        st = kiln_errorf(KILN_ERR_FORMAT, "attribute '%s' is not a string", name);
        goto cleanup;
    }
    if (H5Tis_variable_str(type) > 0) {
        mem = H5Tcopy(H5T_C_S1);
        H5Tset_size(mem, H5T_VARIABLE);
        H5Tset_cset(mem, H5Tget_cset(type));
        char *v = NULL;
        if (H5Aread(a, mem, &v) < 0) {
            st = kiln_errorf(KILN_ERR_FORMAT, "attribute '%s' cannot be read", name);
            goto cleanup;
        }
        st = str_dup(v ? v : "", out);
        H5free_memory(v);
    } else {
        size_t size = H5Tget_size(type);
        char *v = calloc(size + 1, 1);
        if (!v) {
            st = kiln_errorf(KILN_ERR_NOMEM, "attribute '%s': out of memory", name);
            goto cleanup;
        }
        mem = H5Tcopy(type);
        if (H5Aread(a, mem, v) < 0) {
            free(v);
            st = kiln_errorf(KILN_ERR_FORMAT, "attribute '%s' cannot be read", name);
            goto cleanup;
        }
        *out = v;
    }
cleanup:
    if (mem >= 0) H5Tclose(mem);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (a >= 0) H5Aclose(a);
    return st;
}

static enum kiln_status h5_attr_read_scalar(hid_t obj, const char *name, hid_t mem, void *out)
{
    if (H5Aexists(obj, name) <= 0)
        return kiln_errorf(KILN_ERR_FORMAT, "attribute '%s' is missing", name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t space = a < 0 ? -1 : H5Aget_space(a);
    hid_t type = a < 0 ? -1 : H5Aget_type(a);
    bool ok = space >= 0 && type >= 0 && H5Sget_simple_extent_npoints(space) == 1 &&
              (H5Tget_class(type) == H5T_INTEGER || H5Tget_class(type) == H5T_FLOAT) &&
              H5Aread(a, mem, out) >= 0;
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (a >= 0) H5Aclose(a);
    return ok ? KILN_OK : kiln_errorf(KILN_ERR_FORMAT, "attribute '%s' is not a number", name);
}

enum kiln_status h5_attr_read_i64(hid_t obj, const char *name, int64_t *out)
{
    return h5_attr_read_scalar(obj, name, H5T_NATIVE_INT64, out);
}

enum kiln_status h5_attr_read_f64(hid_t obj, const char *name, double *out)
{
    return h5_attr_read_scalar(obj, name, H5T_NATIVE_DOUBLE, out);
}

enum kiln_status h5_attr_read_strs(hid_t obj, const char *name, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    if (H5Aexists(obj, name) <= 0)
        return kiln_errorf(KILN_ERR_FORMAT, "attribute '%s' is missing", name);
    enum kiln_status st = KILN_OK;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t space = a < 0 ? -1 : H5Aget_space(a);
    hid_t type = a < 0 ? -1 : H5Aget_type(a);
    hid_t mem = -1;
    char **raw = NULL;
    if (space < 0 || type < 0 || H5Tget_class(type) != H5T_STRING) {
        st = kiln_errorf(KILN_ERR_FORMAT, "attribute '%s' is not a list of strings", name);
        goto cleanup;
    }
    if (H5Sget_simple_extent_type(space) == H5S_NULL) goto cleanup;
    hssize_t count = H5Sget_simple_extent_npoints(space);
    if (count < 0 || count > (1 << 24) || H5Tis_variable_str(type) <= 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "attribute '%s' is not a list of strings", name);
        goto cleanup;
    }
    raw = calloc((size_t)count + 1, sizeof *raw);
    char **v = calloc((size_t)count + 1, sizeof *v);
    if (!raw || !v) {
        free(v);
        st = kiln_errorf(KILN_ERR_NOMEM, "attribute '%s': out of memory", name);
        goto cleanup;
    }
    mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5Tget_cset(type));
    if (H5Aread(a, mem, raw) < 0) {
        free(v);
        st = kiln_errorf(KILN_ERR_FORMAT, "attribute '%s' cannot be read", name);
        goto cleanup;
    }
    for (hssize_t i = 0; i < count && st == KILN_OK; i++) st = str_dup(raw[i] ? raw[i] : "", &v[i]);
    for (hssize_t i = 0; i < count; i++) H5free_memory(raw[i]);
    if (st != KILN_OK) {
        strv_free(v, (int)count);
        goto cleanup;
    }
    *out = v;
    *n = (int)count;
cleanup:
    free(raw);
    if (mem >= 0) H5Tclose(mem);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (a >= 0) H5Aclose(a);
    return st;
}

void strv_free(char **v, int n)
{
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

enum kiln_status h5_write_f32(hid_t loc, const char *name, int ndim, const int64_t *dims,
                              const float *data)
{
    hsize_t hd[8];
    for (int i = 0; i < ndim; i++) hd[i] = (hsize_t)dims[i];
    hid_t space = H5Screate_simple(ndim, hd, NULL);
    hid_t d = H5Dcreate2(loc, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (d >= 0) H5Dclose(d);
    H5Sclose(space);
    return rc < 0 ? kiln_errorf(KILN_ERR_IO, "HDF5: cannot write '%s'", name) : KILN_OK;
}

enum kiln_status h5_read_f32_exact(hid_t loc, const char *name, int ndim, const int64_t *dims,
                                   float *data)
{
    enum kiln_status st = KILN_OK;
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
        return kiln_errorf(KILN_ERR_FORMAT, "'%s' is missing", name);
    struct h5_array a;
    bool opened = h5_array_open(loc, name, &a);
    hsize_t hd[8];
    int nd = opened ? H5Sget_simple_extent_ndims(a.space) : -1;
    if (nd != ndim || H5Tget_class(a.type) != H5T_FLOAT) {
        st = kiln_errorf(KILN_ERR_FORMAT, "'%s' is not a float array of rank %d", name, ndim);
        goto cleanup;
    }
    H5Sget_simple_extent_dims(a.space, hd, NULL);
    for (int i = 0; i < ndim; i++)
        if ((int64_t)hd[i] != dims[i]) {
            st = kiln_errorf(KILN_ERR_SHAPE, "'%s' has dimension %d of %lld, expected %lld", name,
                             i, (long long)hd[i], (long long)dims[i]);
            goto cleanup;
        }
    if (H5Dread(a.d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = kiln_errorf(KILN_ERR_FORMAT, "'%s' cannot be read (corrupt file?)", name);
cleanup:
    h5_array_close(&a);
    return st;
}

bool h5_array_open(hid_t loc, const char *name, struct h5_array *a)
{
    a->d = H5Dopen2(loc, name, H5P_DEFAULT);
    a->type = a->d < 0 ? -1 : H5Dget_type(a->d);
    a->space = a->d < 0 ? -1 : H5Dget_space(a->d);
    return a->type >= 0 && a->space >= 0;
}

void h5_array_close(struct h5_array *a)
{
    if (a->space >= 0) H5Sclose(a->space);
    if (a->type >= 0) H5Tclose(a->type);
    if (a->d >= 0) H5Dclose(a->d);
    a->d = a->type = a->space = -1;
}

/* --- growable strings ------------------------------------------------------------ */

/* Room for need more bytes and a NUL; false (and failed set) when out of
 * memory. Doubling keeps appends amortised O(1). */
static bool sbuf_reserve(struct sbuf *b, size_t need)
{
    if (b->failed) return false;
    if (b->len + need + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + need + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void sbuf_addv(struct sbuf *b, const char *fmt, va_list ap)
{
    if (b->failed) return;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if (!sbuf_reserve(b, (size_t)n)) return;
    va_copy(ap2, ap);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

void sbuf_add(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbuf_addv(b, fmt, ap);
    va_end(ap);
}

void sbuf_append(struct sbuf *b, const char *s, size_t len)
{
    if (!sbuf_reserve(b, len)) return;
    memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len] = '\0';
}

char *sbuf_take(struct sbuf *b)
{
    if (!b->p) sbuf_append(b, "", 0);
    if (b->failed) {
        sbuf_free(b);
        return NULL;
    }
    char *p = b->p;
    memset(b, 0, sizeof *b);
    return p;
}

void sbuf_free(struct sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* --- name lists ------------------------------------------------------------------ */

enum kiln_status str_split_list(const char *list, const char *what, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    enum kiln_status st = KILN_OK;
    int cap = 1, count = 0;
    for (const char *p = list; *p; p++) cap += *p == ',';
    char **v = calloc((size_t)cap + 1, sizeof *v);
    if (!v) return kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", what ? what : "list");
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        /* Blanks around commas are layout, not part of the name. */
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if (e == p && what) {
            st = kiln_errorf(KILN_ERR_USAGE, "%s: item %d is empty in '%s'", what, count + 1,
                             list);
            goto cleanup;
        }
        if (e > p) {
            v[count] = malloc((size_t)(e - p) + 1);
            if (!v[count]) {
                st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", what ? what : "list");
                goto cleanup;
            }
            memcpy(v[count], p, (size_t)(e - p));
            v[count][e - p] = '\0';
            count++;
        }
        if (!*end) break;
        p = end + 1;
    }
    *out = v;
    *n = count;
    v = NULL;
cleanup:
    strv_free(v, count);
    return st;
}

/* --- misc ------------------------------------------------------------------------ */

void time_iso8601(char buf[32])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

enum kiln_status str_dup(const char *src, char **out)
{
    *out = NULL;
    if (!src) return KILN_OK;
    size_t n = strlen(src) + 1;
    char *d = malloc(n);
    if (!d) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    memcpy(d, src, n);
    *out = d;
    return KILN_OK;
}
