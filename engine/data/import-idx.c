/* engine/data/import-idx.c: the IDX format of MNIST and Fashion-MNIST
 * (http://yann.lecun.com/exdb/mnist/): a 4-byte magic (0, 0, dtype, rank),
 * rank big-endian uint32 dimensions, then the data. Read gzip'd or raw:
 * zlib's gzread passes raw files through unchanged. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core/util.h"
#include "data-internal.h"

#define IDX_UBYTE 0x08
/* Nothing kiln can hold in memory is larger; bigger dims mean a bad header. */
#define IDX_MAX_BYTES ((int64_t)1 << 40)

struct idx_array {
    int ndim;
    int64_t dims[4];
    int64_t bytes;   /* product of dims */
    uint8_t *data;
};

/* Reads up to len bytes, looping because gzread takes an unsigned count and
 * may return short reads; returns the bytes read, -1 on a decoding error. */
static int64_t gz_read_all(gzFile g, uint8_t *dst, int64_t len)
{
    int64_t got = 0;
    while (got < len) {
        int64_t want = len - got;
        if (want > (1 << 30)) want = 1 << 30;
        int n = gzread(g, dst + got, (unsigned)want);
        if (n < 0) return -1;
        if (n == 0) break;
        got += n;
    }
    return got;
}

static enum kiln_status gz_fail(gzFile g, const char *path)
{
    int zerr = 0;
    const char *msg = gzerror(g, &zerr);
    return kiln_errorf(KILN_ERR_FORMAT, "%s: corrupt gzip stream: %s", path, msg ? msg : "?");
}

/* Reads one IDX file of unsigned bytes with a rank in [min_rank, max_rank]. */
static enum kiln_status idx_read(const char *path, const char *what, int min_rank, int max_rank,
                                 struct idx_array *out)
{
    enum kiln_status st = KILN_OK;
    gzFile g = NULL;
    uint8_t head[4 + 4 * 4];
    memset(out, 0, sizeof *out);
    int64_t file_size = 0;
    st = fs_check_file(path, &file_size);
    if (st != KILN_OK) goto cleanup;
    g = gzopen(path, "rb");
    if (!g) {
        st = kiln_errorf(KILN_ERR_IO, "%s: %s", path, errno ? strerror(errno) : "out of memory");
        goto cleanup;
    }
    gzbuffer(g, 1 << 18);
    const char *unit = "";
    int64_t got = gz_read_all(g, head, 4);
    if (got >= 0 && !gzdirect(g)) unit = " uncompressed";
    if (got < 0) {
        st = gz_fail(g, path);
        goto cleanup;
    }
    if (got < 4) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: truncated: expected at least 4%s bytes, found "
                         "%" PRId64, path, unit, got);
        goto cleanup;
    }
    if (head[0] != 0 || head[1] != 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: not an IDX file (magic %02x%02x%02x%02x)", path,
                         head[0], head[1], head[2], head[3]);
        goto cleanup;
    }
    if (head[2] != IDX_UBYTE) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: IDX element type 0x%02x is not supported (kiln "
                         "reads unsigned bytes, 0x08)", path, head[2]);
        goto cleanup;
    }
    int rank = head[3];
    if (rank < min_rank || rank > max_rank) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: IDX rank %d does not fit %s (expected magic "
                         "0x0000080%d)", path, rank, what, min_rank == 1 ? 1 : 3);
        goto cleanup;
    }
    int64_t header = 4 + 4 * (int64_t)rank;
    got = gz_read_all(g, head + 4, 4 * (int64_t)rank);
    if (got < 0) {
        st = gz_fail(g, path);
        goto cleanup;
    }
    if (got < 4 * rank) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: truncated: expected a %" PRId64 "-byte header, "
                         "found %" PRId64 "%s bytes", path, header, 4 + got, unit);
        goto cleanup;
    }
    out->ndim = rank;
    out->bytes = 1;
    for (int i = 0; i < rank; i++) {
        const uint8_t *p = head + 4 + 4 * i;
        out->dims[i] = (int64_t)p[0] << 24 | (int64_t)p[1] << 16 | (int64_t)p[2] << 8 | p[3];
        if (out->dims[i] == 0 || out->dims[i] > IDX_MAX_BYTES / out->bytes) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: IDX dimension %d is %" PRId64 " (empty or too "
                             "large)", path, i, out->dims[i]);
            goto cleanup;
        }
        out->bytes *= out->dims[i];
    }
    /* Check the claimed size against the file before allocating it: a raw
     * file must hold exactly header + data bytes, and deflate cannot expand
     * data more than 1032-fold, so a damaged header never costs a huge
     * allocation. */
    if (gzdirect(g) && header + out->bytes != file_size) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: %s: the header's dimensions need %" PRId64
                         " bytes (%" PRId64 " header + %" PRId64 " data), found %" PRId64, path,
                         header + out->bytes > file_size ? "truncated" : "too long",
                         header + out->bytes, header, out->bytes, file_size);
        goto cleanup;
    }
    if (!gzdirect(g) && out->bytes / 1032 > file_size) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: truncated or corrupt: the header's dimensions "
                         "need %" PRId64 " uncompressed bytes, more than %" PRId64 " compressed "
                         "bytes can hold", path, header + out->bytes, file_size);
        goto cleanup;
    }
    out->data = malloc((size_t)out->bytes);
    if (!out->data) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory for %" PRId64 " bytes", path,
                         out->bytes);
        goto cleanup;
    }
    got = gz_read_all(g, out->data, out->bytes);
    if (got < 0) {
        st = gz_fail(g, path);
        goto cleanup;
    }
    if (got < out->bytes) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: truncated: the header's dimensions need %" PRId64
                         "%s bytes (%" PRId64 " header + %" PRId64 " data), found %" PRId64, path,
                         header + out->bytes, unit, header, out->bytes, header + got);
        goto cleanup;
    }
    uint8_t extra;
    got = gz_read_all(g, &extra, 1);
    if (got < 0) {
        st = gz_fail(g, path);
        goto cleanup;
    }
    if (got > 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: the header's dimensions need %" PRId64 "%s bytes, "
                         "but the file is longer (wrong dimensions?)", path, header + out->bytes,
                         unit);
        goto cleanup;
    }
cleanup:
    if (g) gzclose(g);
    if (st != KILN_OK) {
        free(out->data);
        out->data = NULL;
    }
    return st;
}

/* Reads one images/labels pair into a split; *max_label gets the largest label. */
static enum kiln_status idx_read_pair(const char *images, const char *labels,
                                      struct kiln_split **out, int *max_label)
{
    enum kiln_status st = KILN_OK;
    struct idx_array im = {0}, lb = {0};
    int32_t *y = NULL;
    *out = NULL;
    st = idx_read(images, "images", 2, 4, &im);
    if (st == KILN_OK) st = idx_read(labels, "labels", 1, 1, &lb);
    if (st != KILN_OK) goto cleanup;
    if (im.dims[0] != lb.dims[0]) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s has %" PRId64 " images but %s has %" PRId64
                         " labels", images, im.dims[0], labels, lb.dims[0]);
        goto cleanup;
    }
    y = malloc((size_t)lb.dims[0] * sizeof *y);
    if (!y) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", labels);
        goto cleanup;
    }
    /* Labels are bytes, so always below 256. */
    for (int64_t i = 0; i < lb.dims[0]; i++) {
        y[i] = lb.data[i];
        if (y[i] > *max_label) *max_label = y[i];
    }
    st = data_split_wrap(im.dims[0], im.ndim - 1, im.dims + 1, KILN_DTYPE_U8, im.data,
                         KILN_DTYPE_I32, 1, y, out);
    im.data = NULL;
    y = NULL;
cleanup:
    free(im.data);
    free(lb.data);
    free(y);
    return st;
}

enum kiln_status data_import_idx(const struct kiln_import_options *opt, struct kiln_dataset *ds)
{
    enum kiln_status st = KILN_OK;
    int max_label = -1;
    if (!opt->idx_images || !opt->idx_labels) {
        st = kiln_errorf(KILN_ERR_USAGE, "IDX import needs both the images and the labels file");
        goto cleanup;
    }
    if (!opt->test_idx_images != !opt->test_idx_labels) {
        st = kiln_errorf(KILN_ERR_USAGE, "IDX import: give both the test images and the test "
                         "labels, or neither");
        goto cleanup;
    }
    st = idx_read_pair(opt->idx_images, opt->idx_labels, &ds->splits[KILN_SPLIT_TRAIN],
                       &max_label);
    if (st == KILN_OK && opt->test_idx_images)
        st = idx_read_pair(opt->test_idx_images, opt->test_idx_labels,
                           &ds->splits[KILN_SPLIT_TEST], &max_label);
    if (st != KILN_OK) goto cleanup;
    const struct kiln_split *tr = ds->splits[KILN_SPLIT_TRAIN], *te = ds->splits[KILN_SPLIT_TEST];
    if (te && (te->feat_ndim != tr->feat_ndim ||
               memcmp(te->feat_shape, tr->feat_shape, sizeof tr->feat_shape) != 0)) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: test images are shaped unlike the train images "
                         "in %s", opt->test_idx_images, opt->idx_images);
        goto cleanup;
    }
    st = data_classes_make(opt->classes, max_label + 1, &ds->classes, &ds->n_classes);
    if (st != KILN_OK) goto cleanup;
    char src[8192];
    if (opt->test_idx_images)
        snprintf(src, sizeof src, "idx: train %s, %s; test %s, %s", opt->idx_images,
                 opt->idx_labels, opt->test_idx_images, opt->test_idx_labels);
    else
        snprintf(src, sizeof src, "idx: train %s, %s", opt->idx_images, opt->idx_labels);
    st = str_dup(src, &ds->source);
cleanup:
    return st;
}
