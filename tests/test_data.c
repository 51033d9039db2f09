/* tests/test_data.c: the dataset file, importers (IDX, CSV, HDF5), the split,
 * the rows reader and the predictions writer. Inputs are generated small in
 * a fresh temp folder; the Fashion-MNIST files are for the e2e smoke test. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <ftw.h>
#include <hdf5.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/util.h"
#include "kiln/data.h"
#include "test.h"


static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* Number of entries in a folder whose name starts with '.', other than . and
 * ..: temp files the atomic writers left behind. */
static int count_hidden(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)n + 1, 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    return s;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* A small classification dataset: train 12 rows of uint8 [3, 2], test 6 rows. */
static struct kiln_dataset *make_u8(void)
{
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    int64_t shape[2] = {3, 2};
    str_dup("tiny", &ds->name);
    str_dup("unit test", &ds->source);
    kiln_split_create(12, 2, shape, KILN_DTYPE_U8, KILN_DTYPE_I32, 1, &ds->splits[KILN_SPLIT_TRAIN]);
    kiln_split_create(6, 2, shape, KILN_DTYPE_U8, KILN_DTYPE_I32, 1, &ds->splits[KILN_SPLIT_TEST]);
    for (int s = 0; s < KILN_SPLIT_COUNT; s++) {
        struct kiln_split *sp = ds->splits[s];
        if (!sp) continue;
        for (int64_t i = 0; i < sp->n * sp->feat_size; i++)
            ((uint8_t *)sp->X)[i] = (uint8_t)(i * 7 + s);
        for (int64_t i = 0; i < sp->n; i++) ((int32_t *)sp->y)[i] = (int32_t)(i % 3);
    }
    ds->n_classes = 3;
    ds->classes = calloc(3, sizeof *ds->classes);
    str_dup("cat", &ds->classes[0]);
    str_dup("dog", &ds->classes[1]);
    str_dup("bird, \"small\"", &ds->classes[2]);
    return ds;
}

/* A regression dataset: float32 X [n, 4] with names, y [n, 2], with val. */
static struct kiln_dataset *make_f32(void)
{
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    int64_t shape[1] = {4};
    str_dup("reg", &ds->name);
    str_dup("unit test", &ds->source);
    str_dup("00ff", &ds->parent);
    int64_t rows[3] = {20, 5, 7};
    for (int s = 0; s < KILN_SPLIT_COUNT; s++) {
        kiln_split_create(rows[s], 1, shape, KILN_DTYPE_F32, KILN_DTYPE_F32, 2, &ds->splits[s]);
        struct kiln_split *sp = ds->splits[s];
        for (int64_t i = 0; i < sp->n * 4; i++) ((float *)sp->X)[i] = (float)i * 0.25f - 3.0f + s;
        for (int64_t i = 0; i < sp->n * 2; i++) ((float *)sp->y)[i] = (float)i * 1.5f;
    }
    ds->n_features = 4;
    ds->feature_names = calloc(4, sizeof *ds->feature_names);
    const char *names[4] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) str_dup(names[i], &ds->feature_names[i]);
    return ds;
}

static bool splits_equal(const struct kiln_split *a, const struct kiln_split *b)
{
    if (!a || !b) return a == b;
    if (a->n != b->n || a->feat_ndim != b->feat_ndim || a->feat_size != b->feat_size ||
        a->x_dtype != b->x_dtype || a->y_dtype != b->y_dtype || a->y_dim != b->y_dim)
        return false;
    for (int i = 0; i < a->feat_ndim; i++)
        if (a->feat_shape[i] != b->feat_shape[i]) return false;
    return memcmp(a->X, b->X, (size_t)(a->n * a->feat_size) * kiln_dtype_size(a->x_dtype)) == 0 &&
           memcmp(a->y, b->y, (size_t)(a->n * a->y_dim) * kiln_dtype_size(a->y_dtype)) == 0;
}

/* Runs tests/data/recompute_hash.py when python3 with h5py is at hand: the
 * documented byte stream must give the same hash outside kiln. */
static int python_hash_check(const char *file, const char *want)
{
    const char *data = getenv("KILN_TEST_DATA");
    char cmd[2048], got[128] = "";
    if (!data || access("/usr/bin/python3", X_OK) != 0) return -1;
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import h5py' 2>/dev/null && /usr/bin/python3 "
             "%s/recompute_hash.py %s",
             data, file);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    if (!fgets(got, sizeof got, p)) got[0] = '\0';
    int rc = pclose(p);
    if (rc != 0 || !got[0]) return -1;
    got[strcspn(got, " \n")] = '\0';
    return strcmp(got, want) == 0 ? 1 : 0;
}

TEST(split_names)
{
    enum kiln_split_id id;
    ASSERT_EQ_STR("val", kiln_split_name(KILN_SPLIT_VAL));
    ASSERT_OK(kiln_split_parse("test", &id));
    ASSERT_EQ_INT(KILN_SPLIT_TEST, id);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_split_parse("dev", &id), "dev");
    ASSERT_EQ_INT(1, kiln_dtype_size(KILN_DTYPE_U8));
    ASSERT_EQ_INT(4, kiln_dtype_size(KILN_DTYPE_F32));
}

TEST(roundtrip_u8)
{
    struct kiln_dataset *ds = make_u8(), *back = NULL;
    const char *p = test_path("u8.h5");
    ASSERT_OK(kiln_dataset_save(ds, p));
    ASSERT_EQ_INT(64, strlen(ds->sha256));
    ASSERT(ds->created && strlen(ds->created) == 20);
    ASSERT_EQ_INT(0, count_hidden(test_tmpdir));
    ASSERT_OK(kiln_dataset_load(p, &back));
    ASSERT_EQ_STR("tiny", back->name);
    ASSERT_EQ_STR("unit test", back->source);
    ASSERT_EQ_STR(ds->created, back->created);
    ASSERT_EQ_STR(ds->sha256, back->sha256);
    ASSERT(back->parent == NULL);
    ASSERT_EQ_INT(3, back->n_classes);
    ASSERT_EQ_STR("bird, \"small\"", back->classes[2]);
    ASSERT_EQ_INT(0, back->n_features);
    for (int s = 0; s < KILN_SPLIT_COUNT; s++) ASSERT(splits_equal(ds->splits[s], back->splits[s]));
    int py = python_hash_check(p, ds->sha256);
    if (py == 0) TEST_FAIL("recompute_hash.py disagrees with kiln on %s", p);
    if (py < 0) fprintf(stderr, "   (python3 + h5py not available: hash cross-check skipped)\n");
    kiln_dataset_free(ds);
    kiln_dataset_free(back);
}

TEST(roundtrip_f32)
{
    struct kiln_dataset *ds = make_f32(), *back = NULL, *head = NULL;
    const char *p = test_path("f32.h5");
    ASSERT_OK(kiln_dataset_save(ds, p));
    ASSERT_OK(kiln_dataset_load(p, &back));
    ASSERT_EQ_INT(0, back->n_classes);
    ASSERT_EQ_INT(4, back->n_features);
    ASSERT_EQ_STR("d", back->feature_names[3]);
    ASSERT_EQ_STR("00ff", back->parent);
    for (int s = 0; s < KILN_SPLIT_COUNT; s++) ASSERT(splits_equal(ds->splits[s], back->splits[s]));
    ASSERT_EQ_INT(1, python_hash_check(p, ds->sha256) != 0);
    ASSERT_OK(kiln_dataset_load_header(p, &head));
    ASSERT_EQ_STR(ds->sha256, head->sha256);
    ASSERT_EQ_INT(5, head->splits[KILN_SPLIT_VAL]->n);
    ASSERT_EQ_INT(2, head->splits[KILN_SPLIT_VAL]->y_dim);
    ASSERT(head->splits[KILN_SPLIT_TRAIN]->X == NULL);
    /* describe works on both: header-only prints no statistics. */
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    ASSERT_OK(kiln_dataset_describe(head, m));
    ASSERT_OK(kiln_dataset_describe(back, m));
    fclose(m);
    ASSERT(strstr(buf, ds->sha256) != NULL);
    ASSERT(strstr(buf, "float32 [20, 4]") != NULL);
    ASSERT(strstr(buf, "target 1: mean") != NULL);
    ASSERT(strstr(buf, "(all)") != NULL);
    free(buf);
    kiln_dataset_free(ds);
    kiln_dataset_free(back);
    kiln_dataset_free(head);
}

TEST(describe_classes)
{
    struct kiln_dataset *ds = make_u8();
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    ASSERT_OK(kiln_dataset_describe(ds, m));
    fclose(m);
    ASSERT(strstr(buf, "cat 4 (33.3%)") != NULL);
    ASSERT(strstr(buf, "uint8 [12, 3, 2]") != NULL);
    ASSERT(strstr(buf, "int32 [12]") != NULL);
    free(buf);
    kiln_dataset_free(ds);
}

TEST(hash_stable_and_sensitive)
{
    struct kiln_dataset *ds = make_u8();
    char h1[65], h2[65], h3[65], h4[65];
    ASSERT_OK(kiln_dataset_hash(ds, h1));
    ASSERT_OK(kiln_dataset_hash(ds, h2));
    ASSERT_EQ_STR(h1, h2);
    ((uint8_t *)ds->splits[KILN_SPLIT_TEST]->X)[5] ^= 1;
    ASSERT_OK(kiln_dataset_hash(ds, h3));
    ASSERT(strcmp(h1, h3) != 0);
    ((uint8_t *)ds->splits[KILN_SPLIT_TEST]->X)[5] ^= 1;
    ((int32_t *)ds->splits[KILN_SPLIT_TRAIN]->y)[0] = 1;
    ASSERT_OK(kiln_dataset_hash(ds, h4));
    ASSERT(strcmp(h1, h4) != 0);
    /* The same bytes under another shape are another dataset. */
    ((int32_t *)ds->splits[KILN_SPLIT_TRAIN]->y)[0] = 0;
    ds->splits[KILN_SPLIT_TRAIN]->feat_shape[0] = 2;
    ds->splits[KILN_SPLIT_TRAIN]->feat_shape[1] = 3;
    ASSERT_OK(kiln_dataset_hash(ds, h4));
    ASSERT(strcmp(h1, h4) != 0);
    kiln_dataset_free(ds);
}

TEST(corrupt_data_byte)
{
    struct kiln_dataset *ds = make_u8(), *back = NULL;
    const char *p = test_path("corrupt.h5");
    /* A distinctive run of bytes to find in the file. */
    uint8_t *X = ds->splits[KILN_SPLIT_TRAIN]->X;
    const uint8_t mark[8] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x23, 0x45, 0x67};
    memcpy(X + 8, mark, sizeof mark);
    ASSERT_OK(kiln_dataset_save(ds, p));
    char *buf = NULL;
    long n = file_size(p);
    FILE *f = fopen(p, "r+b");
    ASSERT(f != NULL);
    buf = malloc((size_t)n);
    ASSERT(fread(buf, 1, (size_t)n, f) == (size_t)n);
    long at = -1;
    for (long i = 0; i + 8 <= n; i++)
        if (memcmp(buf + i, mark, 8) == 0) at = i;
    ASSERT(at >= 0);
    fseek(f, at + 3, SEEK_SET);
    fputc(0xee, f);
    fclose(f);
    free(buf);
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_load(p, &back), "hash mismatch");
    ASSERT(strstr(kiln_last_error(), ds->sha256) != NULL);
    ASSERT(back == NULL);
    kiln_dataset_free(ds);
}

TEST(corrupt_sha_attr)
{
    struct kiln_dataset *ds = make_u8(), *back = NULL;
    const char *p = test_path("sha.h5");
    ASSERT_OK(kiln_dataset_save(ds, p));
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT(f >= 0);
    char fake[65];
    memset(fake, 'a', 64);
    fake[64] = '\0';
    ASSERT_OK(h5_attr_write_str(f, "sha256", fake));
    H5Fclose(f);
    const char *fk = fake;
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_load(p, &back), fk);
    ASSERT(strstr(kiln_last_error(), ds->sha256) != NULL);
    kiln_dataset_free(ds);
}

TEST(newer_version_refused)
{
    struct kiln_dataset *ds = make_u8(), *back = NULL;
    const char *p = test_path("v2.h5");
    ASSERT_OK(kiln_dataset_save(ds, p));
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_OK(h5_attr_write_i64(f, "kiln_format_version", 2));
    H5Fclose(f);
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_load(p, &back), "newer");
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_OK(h5_attr_write_str(f, "kiln_format", "predictions"));
    H5Fclose(f);
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_load(p, &back), "not a dataset");
    kiln_dataset_free(ds);
}

TEST(truncated_and_missing)
{
    struct kiln_dataset *ds = make_f32(), *back = NULL;
    const char *p = test_path("trunc.h5");
    ASSERT_OK(kiln_dataset_save(ds, p));
    long n = file_size(p);
    ASSERT(truncate(p, n / 2) == 0);
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_load(p, &back), "trunc.h5");
    ASSERT(truncate(p, 100) == 0);
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_load(p, &back), "");
    ASSERT(truncate(p, 0) == 0);
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_load(p, &back), "not an HDF5");
    ASSERT_STATUS(KILN_ERR_IO, kiln_dataset_load(test_path("nope.h5"), &back), "nope.h5");
    test_write_text(test_path("text.h5"), "hello\n");
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_load_header(test_path("text.h5"), &back), "");
    ASSERT(back == NULL);
    kiln_dataset_free(ds);
}

TEST(bad_values_refused)
{
    struct kiln_dataset *ds = make_f32(), *back = NULL;
    ((float *)ds->splits[KILN_SPLIT_VAL]->X)[1 * 4 + 2] = NAN;
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_save(ds, test_path("nan.h5")), "val/X[1, 2]");
    ASSERT(strstr(kiln_last_error(), "'c'") != NULL);
    ASSERT(!exists(test_path("nan.h5")));
    ((float *)ds->splits[KILN_SPLIT_VAL]->X)[1 * 4 + 2] = 0;
    ((float *)ds->splits[KILN_SPLIT_TEST]->y)[3 * 2 + 1] = INFINITY;
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_save(ds, test_path("nan.h5")), "test/y[3, 1] is Inf");
    ((float *)ds->splits[KILN_SPLIT_TEST]->y)[3 * 2 + 1] = 0;
    /* A NaN written behind kiln's back is caught on load, with its place. */
    const char *p = test_path("nan2.h5");
    ASSERT_OK(kiln_dataset_save(ds, p));
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "train/X", H5P_DEFAULT);
    float *X = ds->splits[KILN_SPLIT_TRAIN]->X;
    X[7 * 4 + 1] = NAN;
    ASSERT(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, X) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_load(p, &back), "train/X[7, 1]");
    kiln_dataset_free(ds);

    ds = make_u8();
    ((int32_t *)ds->splits[KILN_SPLIT_TEST]->y)[4] = 3;
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_dataset_save(ds, test_path("lab.h5")), "test/y[4] = 3");
    ASSERT_EQ_INT(0, count_hidden(test_tmpdir));
    kiln_dataset_free(ds);
}

TEST(save_unwritable_folder)
{
    struct kiln_dataset *ds = make_u8();
    char dir[512];
    if (geteuid() == 0) {
        /* root writes through permissions: a missing folder is the failure. */
        snprintf(dir, sizeof dir, "%s/no/such/folder", test_tmpdir);
    } else {
        snprintf(dir, sizeof dir, "%s/ro", test_tmpdir);
        ASSERT(mkdir(dir, 0555) == 0);
    }
    char p[600];
    snprintf(p, sizeof p, "%s/x.h5", dir);
    const char *dirp = dir;
    ASSERT_STATUS(KILN_ERR_IO, kiln_dataset_save(ds, p), dirp);
    ASSERT(!exists(p));
    if (geteuid() != 0) {
        ASSERT_EQ_INT(0, count_hidden(dir));
        chmod(dir, 0755);
    }
    kiln_dataset_free(ds);
}

TEST(save_replaces_atomically)
{
    struct kiln_dataset *a = make_u8(), *b = make_f32(), *back = NULL;
    const char *p = test_path("replace.h5");
    ASSERT_OK(kiln_dataset_save(a, p));
    ASSERT_OK(kiln_dataset_save(b, p));
    ASSERT_OK(kiln_dataset_load(p, &back));
    ASSERT_EQ_STR(b->sha256, back->sha256);
    ASSERT_EQ_INT(0, count_hidden(test_tmpdir));
    kiln_dataset_free(a);
    kiln_dataset_free(b);
    kiln_dataset_free(back);
}

/* --- IDX -------------------------------------------------------------------------- */

static void idx_bytes(uint8_t *buf, size_t *len, int rank, const uint32_t *dims, int fill_kind)
{
    size_t n = 1, o = 4;
    buf[0] = buf[1] = 0;
    buf[2] = 0x08;
    buf[3] = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        buf[o++] = (uint8_t)(dims[i] >> 24);
        buf[o++] = (uint8_t)(dims[i] >> 16);
        buf[o++] = (uint8_t)(dims[i] >> 8);
        buf[o++] = (uint8_t)dims[i];
        n *= dims[i];
    }
    for (size_t i = 0; i < n; i++) buf[o + i] = fill_kind ? (uint8_t)(i % 3) : (uint8_t)(i * 13);
    *len = o + n;
}

static void write_idx(const char *path, bool gz, int rank, const uint32_t *dims, int fill_kind,
                      long cut)
{
    static uint8_t buf[1 << 16];
    size_t len;
    idx_bytes(buf, &len, rank, dims, fill_kind);
    if (cut > 0) len -= (size_t)cut;
    if (gz) {
        gzFile g = gzopen(path, "wb");
        gzwrite(g, buf, (unsigned)len);
        gzclose(g);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
    }
}

TEST(idx_gz_and_raw)
{
    uint32_t idims[3] = {7, 4, 5}, ldims[1] = {7}, tdims[3] = {3, 4, 5}, tl[1] = {3};
    write_idx(test_path("img.gz"), true, 3, idims, 0, 0);
    write_idx(test_path("lab.gz"), true, 1, ldims, 1, 0);
    write_idx(test_path("timg"), false, 3, tdims, 0, 0);
    write_idx(test_path("tlab"), false, 1, tl, 1, 0);
    struct kiln_import_options opt = kiln_import_options_default();
    opt.name = "idx";
    opt.idx_images = test_path("img.gz");
    opt.idx_labels = test_path("lab.gz");
    opt.test_idx_images = test_path("timg");
    opt.test_idx_labels = test_path("tlab");
    struct kiln_dataset *ds = NULL;
    ASSERT_OK(kiln_data_import(&opt, &ds));
    struct kiln_split *tr = ds->splits[KILN_SPLIT_TRAIN], *te = ds->splits[KILN_SPLIT_TEST];
    ASSERT_EQ_INT(7, tr->n);
    ASSERT_EQ_INT(2, tr->feat_ndim);
    ASSERT_EQ_INT(4, tr->feat_shape[0]);
    ASSERT_EQ_INT(5, tr->feat_shape[1]);
    ASSERT_EQ_INT(KILN_DTYPE_U8, tr->x_dtype);
    ASSERT_EQ_INT((uint8_t)(23 * 13), ((uint8_t *)tr->X)[23]);
    ASSERT_EQ_INT(2, ((int32_t *)tr->y)[5]);
    ASSERT_EQ_INT(3, te->n);
    ASSERT_EQ_INT(3, ds->n_classes);
    ASSERT_EQ_STR("2", ds->classes[2]);
    ASSERT_EQ_INT(64, strlen(ds->sha256));
    ASSERT(strstr(ds->source, "img.gz") != NULL);
    kiln_dataset_free(ds);
    ds = NULL;
    opt.classes = "T-shirt/top, Trouser ,Pullover,Dress";
    ASSERT_OK(kiln_data_import(&opt, &ds));
    ASSERT_EQ_INT(4, ds->n_classes);
    ASSERT_EQ_STR("Trouser", ds->classes[1]);
    kiln_dataset_free(ds);
    ds = NULL;
    opt.classes = "a,b";
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_data_import(&opt, &ds), "2 names");
    opt.classes = "a,,b";
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_data_import(&opt, &ds), "empty");
    opt.classes = NULL;
    opt.test_idx_labels = NULL;
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_data_import(&opt, &ds), "test");
}

TEST(idx_errors)
{
    uint32_t idims[3] = {7, 4, 5}, ldims[1] = {7}, short_l[1] = {6};
    struct kiln_import_options opt = kiln_import_options_default();
    struct kiln_dataset *ds = NULL;
    opt.name = "idx";
    write_idx(test_path("img_cut"), false, 3, idims, 0, 10);
    write_idx(test_path("lab7"), false, 1, ldims, 1, 0);
    opt.idx_images = test_path("img_cut");
    opt.idx_labels = test_path("lab7");
    /* 16 header + 140 data bytes expected, 146 found. */
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_data_import(&opt, &ds), "need 156 bytes");
    ASSERT(strstr(kiln_last_error(), "found 146") != NULL);
    ASSERT(strstr(kiln_last_error(), "img_cut") != NULL);
    write_idx(test_path("img_cut.gz"), true, 3, idims, 0, 10);
    opt.idx_images = test_path("img_cut.gz");
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_data_import(&opt, &ds), "found 146");
    /* A gzip stream cut short. */
    write_idx(test_path("img_ok.gz"), true, 3, idims, 0, 0);
    ASSERT(truncate(test_path("img_ok.gz"), file_size(test_path("img_ok.gz")) - 12) == 0);
    opt.idx_images = test_path("img_ok.gz");
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_data_import(&opt, &ds), "img_ok.gz");
    /* Too long: dims say fewer bytes than the file holds. */
    write_idx(test_path("img7"), false, 3, idims, 0, 0);
    FILE *f = fopen(test_path("img7"), "ab");
    fputc(1, f);
    fclose(f);
    opt.idx_images = test_path("img7");
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_data_import(&opt, &ds), "too long");
    write_idx(test_path("img7"), false, 3, idims, 0, 0);
    write_idx(test_path("lab6"), false, 1, short_l, 1, 0);
    opt.idx_labels = test_path("lab6");
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_data_import(&opt, &ds), "7 images");
    test_write_text(test_path("notidx"), "PK\x03\x04 hello world");
    opt.idx_labels = test_path("notidx");
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_data_import(&opt, &ds), "not an IDX");
    opt.idx_labels = test_path("img7"); /* images given as labels: wrong rank */
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_data_import(&opt, &ds), "0x00000801");
    opt.idx_labels = test_path("missing");
    ASSERT_STATUS(KILN_ERR_IO, kiln_data_import(&opt, &ds), "missing");
    test_write_text(test_path("empty"), "");
    opt.idx_labels = test_path("empty");
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_data_import(&opt, &ds), "truncated");
    opt.csv = "x.csv";
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_data_import(&opt, &ds), "exactly one");
    ASSERT(ds == NULL);
}

/* --- CSV ----------------------------------------------------------------------------- */

static enum kiln_status import_csv(const char *text, const char *label, char delim,
                                   enum kiln_task task, enum kiln_fill fill,
                                   struct kiln_dataset **ds)
{
    const char *p = test_path("in.csv");
    test_write_text(p, text);
    struct kiln_import_options opt = kiln_import_options_default();
    opt.name = "csv";
    opt.csv = p;
    opt.label = label;
    opt.delimiter = delim;
    opt.task = task;
    opt.fill = fill;
    return kiln_data_import(&opt, ds);
}

TEST(csv_classes_and_quotes)
{
    struct kiln_dataset *ds = NULL;
    ASSERT_OK(import_csv("x1,\"species, kind\",x2\r\n"
                         "1.5,\"versi\"\"color\",2\r\n"
                         "\n"
                         " -3 ,setosa,4e1\r\n"
                         "0,\"multi\nline\",1\r\n"
                         "2,setosa,3",
                         "species, kind", ',', KILN_TASK_AUTO, KILN_FILL_NONE, &ds));
    struct kiln_split *s = ds->splits[KILN_SPLIT_TRAIN];
    ASSERT_EQ_INT(4, s->n);
    ASSERT_EQ_INT(2, s->feat_size);
    ASSERT_EQ_INT(3, ds->n_classes);
    /* Sorted by bytes: "multi\nline" < "setosa" < "versi\"color". */
    ASSERT_EQ_STR("multi\nline", ds->classes[0]);
    ASSERT_EQ_STR("setosa", ds->classes[1]);
    ASSERT_EQ_STR("versi\"color", ds->classes[2]);
    const int32_t *y = s->y;
    ASSERT_EQ_INT(2, y[0]);
    ASSERT_EQ_INT(1, y[1]);
    ASSERT_EQ_INT(0, y[2]);
    ASSERT_EQ_INT(1, y[3]);
    const float *X = s->X;
    ASSERT_NEAR(1.5, X[0], 0);
    ASSERT_NEAR(-3, X[2], 0);
    ASSERT_NEAR(40, X[3], 0);
    ASSERT_NEAR(3, X[7], 0);
    ASSERT_EQ_INT(2, ds->n_features);
    ASSERT_EQ_STR("x2", ds->feature_names[1]);
    kiln_dataset_free(ds);
    ds = NULL;
    /* With ';' as delimiter, "1,5" is one field, and not a number. */
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv("a;b;c\n1,5;x;2\n", "b", ';', KILN_TASK_AUTO, KILN_FILL_NONE, &ds),
                  "in.csv:2:a: '1,5'");
    ASSERT_OK(import_csv("a\tb\tc\n1\tx\t2\n3\ty\t4\n", "b", '\t', KILN_TASK_AUTO, KILN_FILL_NONE,
                         &ds));
    ASSERT_EQ_INT(2, ds->splits[KILN_SPLIT_TRAIN]->n);
    ASSERT_NEAR(4, ((float *)ds->splits[KILN_SPLIT_TRAIN]->X)[3], 0);
    kiln_dataset_free(ds);
    ds = NULL;
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv("a,b\n1,\"x\"y\n", "b", ',', KILN_TASK_AUTO, KILN_FILL_NONE, &ds),
                  "in.csv:2");
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv("a,b\n1,\"xy\n2,3\n", "b", ',', KILN_TASK_AUTO, KILN_FILL_NONE, &ds),
                  "unterminated");
}

TEST(csv_regression_and_tasks)
{
    struct kiln_dataset *ds = NULL;
    const char *text = "f,target\n1,10\n2,2\n3,1\n4,2.0\n";
    ASSERT_OK(import_csv(text, "target", ',', KILN_TASK_AUTO, KILN_FILL_NONE, &ds));
    struct kiln_split *s = ds->splits[KILN_SPLIT_TRAIN];
    ASSERT_EQ_INT(0, ds->n_classes);
    ASSERT_EQ_INT(KILN_DTYPE_F32, s->y_dtype);
    ASSERT_EQ_INT(1, s->y_dim);
    ASSERT_NEAR(10, ((float *)s->y)[0], 0);
    kiln_dataset_free(ds);
    ds = NULL;
    /* Forced classes: "2" and "2.0" are different texts, so not all integers:
     * sorted as text. */
    ASSERT_OK(import_csv(text, "target", ',', KILN_TASK_CLASSIFICATION, KILN_FILL_NONE, &ds));
    ASSERT_EQ_INT(4, ds->n_classes);
    ASSERT_EQ_STR("1", ds->classes[0]);
    ASSERT_EQ_STR("10", ds->classes[1]);
    kiln_dataset_free(ds);
    ds = NULL;
    ASSERT_OK(import_csv("f,target\n1,10\n2,2\n3,1\n4,2\n", "target", ',',
                         KILN_TASK_CLASSIFICATION, KILN_FILL_NONE, &ds));
    ASSERT_EQ_INT(3, ds->n_classes);
    ASSERT_EQ_STR("1", ds->classes[0]);
    ASSERT_EQ_STR("2", ds->classes[1]);
    ASSERT_EQ_STR("10", ds->classes[2]);
    ASSERT_EQ_INT(2, ((int32_t *)ds->splits[KILN_SPLIT_TRAIN]->y)[0]);
    kiln_dataset_free(ds);
    ds = NULL;
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv("f,t\n1,2\n2,abc\n", "t", ',', KILN_TASK_REGRESSION, KILN_FILL_NONE,
                             &ds),
                  "in.csv:3:t: 'abc'");
}

TEST(csv_missing_values)
{
    struct kiln_dataset *ds = NULL;
    const char *text = "a,b,y\n1,2,u\n3,,v\n5,x,u\n";
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv(text, "y", ',', KILN_TASK_AUTO, KILN_FILL_NONE, &ds),
                  "in.csv:3:b: missing value");
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv("a,b,y\n1,2,u\n3,nan,v\n", "y", ',', KILN_TASK_AUTO, KILN_FILL_NONE,
                             &ds),
                  "in.csv:3:b: 'nan'");
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv("a,b,y\n1,2,u\n3,inf,v\n", "y", ',', KILN_TASK_AUTO, KILN_FILL_NONE,
                             &ds),
                  "in.csv:3:b: 'inf'");
    ASSERT_OK(import_csv(text, "y", ',', KILN_TASK_AUTO, KILN_FILL_MEAN, &ds));
    const float *X = ds->splits[KILN_SPLIT_TRAIN]->X;
    ASSERT_NEAR(2, X[3], 0);
    ASSERT_NEAR(2, X[5], 0);
    kiln_dataset_free(ds);
    ds = NULL;
    ASSERT_OK(import_csv(text, "y", ',', KILN_TASK_AUTO, KILN_FILL_ZERO, &ds));
    X = ds->splits[KILN_SPLIT_TRAIN]->X;
    ASSERT_NEAR(0, X[3], 0);
    ASSERT_NEAR(0, X[5], 0);
    ASSERT_NEAR(5, X[4], 0);
    kiln_dataset_free(ds);
    ds = NULL;
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv("a,y\n1,u\n2,\n", "y", ',', KILN_TASK_AUTO, KILN_FILL_MEAN, &ds),
                  "in.csv:3:y: missing label");
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv("a,b,y\n1,2,u\n3,4\n", "y", ',', KILN_TASK_AUTO, KILN_FILL_NONE, &ds),
                  "in.csv:3: 2 fields, but the header has 3");
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv("a,b,y\n1,2,u,9\n", "y", ',', KILN_TASK_AUTO, KILN_FILL_NONE, &ds),
                  "in.csv:2: 4 fields");
    ASSERT_STATUS(KILN_ERR_USAGE,
                  import_csv("a,b,y\n1,2,u\n", "label", ',', KILN_TASK_AUTO, KILN_FILL_NONE, &ds),
                  "columns: 'a', 'b', 'y'");
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv("", "y", ',', KILN_TASK_AUTO, KILN_FILL_NONE, &ds), "empty");
    ASSERT_STATUS(KILN_ERR_FORMAT,
                  import_csv("a,y\r\n", "y", ',', KILN_TASK_AUTO, KILN_FILL_NONE, &ds),
                  "no data rows");
    ASSERT(ds == NULL);
}

TEST(stratified_split)
{
    /* 60 rows of class a, 40 of class b; a feature that numbers the rows. */
    char *text = malloc(4096), *p = text;
    p += sprintf(p, "i,c\n");
    for (int i = 0; i < 100; i++) p += sprintf(p, "%d,%s\n", i, i % 5 < 3 ? "a" : "b");
    const char *path = test_path("strat.csv");
    test_write_text(path, text);
    free(text);
    struct kiln_import_options opt = kiln_import_options_default();
    opt.name = "strat";
    opt.csv = path;
    opt.label = "c";
    opt.test_fraction = 0.25;
    opt.seed = 7;
    struct kiln_dataset *a = NULL, *b = NULL, *c = NULL;
    ASSERT_OK(kiln_data_import(&opt, &a));
    ASSERT_OK(kiln_data_import(&opt, &b));
    opt.seed = 8;
    ASSERT_OK(kiln_data_import(&opt, &c));
    struct kiln_split *tr = a->splits[KILN_SPLIT_TRAIN], *te = a->splits[KILN_SPLIT_TEST];
    ASSERT_EQ_INT(75, tr->n);
    ASSERT_EQ_INT(25, te->n);
    int per[2] = {0, 0};
    for (int64_t i = 0; i < te->n; i++) per[((int32_t *)te->y)[i]]++;
    ASSERT_EQ_INT(15, per[0]);
    ASSERT_EQ_INT(10, per[1]);
    /* Rows keep file order within each split, and no row is lost. */
    float last = -1, seen = 0;
    for (int64_t i = 0; i < tr->n; i++) {
        ASSERT(((float *)tr->X)[i] > last);
        last = ((float *)tr->X)[i];
        seen += last;
    }
    for (int64_t i = 0; i < te->n; i++) seen += ((float *)te->X)[i];
    ASSERT_NEAR(4950, seen, 0);
    ASSERT_EQ_STR(a->sha256, b->sha256);
    ASSERT(strcmp(a->sha256, c->sha256) != 0);
    ASSERT(strstr(a->source, "stratified") != NULL);
    kiln_dataset_free(a);
    kiln_dataset_free(b);
    kiln_dataset_free(c);
    a = NULL;
    /* Regression: a plain shuffle of round(0.3 * 10) = 3 rows. */
    test_write_text(path, "x,t\n1,1\n2,2\n3,3\n4,4\n5,5\n6,6\n7,7\n8,8\n9,9\n10,10\n");
    opt.label = "t";
    opt.test_fraction = 0.3;
    ASSERT_OK(kiln_data_import(&opt, &a));
    ASSERT_EQ_INT(3, a->splits[KILN_SPLIT_TEST]->n);
    ASSERT_EQ_INT(7, a->splits[KILN_SPLIT_TRAIN]->n);
    kiln_dataset_free(a);
    a = NULL;
    opt.test_fraction = 0.01;
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_data_import(&opt, &a), "empty");
}

/* --- HDF5 import ------------------------------------------------------------------------ */

static void h5_put(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank,
                   const hsize_t *dims, const void *data)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(loc, name, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(sp);
}

TEST(h5_import)
{
    const char *p = test_path("plain.h5");
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    double X[6][3];
    int64_t y[6] = {0, 1, 2, 0, 1, 4};
    float t[6][2];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++) X[i][j] = i * 10 + j + 0.5;
    for (int i = 0; i < 6; i++) t[i][0] = t[i][1] = (float)i;
    hsize_t xd[2] = {6, 3}, yd[1] = {6}, td[2] = {6, 2}, yd5[1] = {5};
    h5_put(f, "X", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, xd, X);
    h5_put(f, "y", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, yd, y);
    h5_put(f, "t", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, td, t);
    h5_put(f, "short", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, yd5, y);
    H5Fclose(f);
    struct kiln_import_options opt = kiln_import_options_default();
    struct kiln_dataset *ds = NULL;
    opt.name = "h5";
    opt.h5 = p;
    ASSERT_OK(kiln_data_import(&opt, &ds));
    struct kiln_split *s = ds->splits[KILN_SPLIT_TRAIN];
    ASSERT_EQ_INT(KILN_DTYPE_F32, s->x_dtype);
    ASSERT_EQ_INT(3, s->feat_size);
    ASSERT_NEAR(51.5, ((float *)s->X)[16], 0);
    ASSERT_EQ_INT(5, ds->n_classes);
    ASSERT_EQ_INT(4, ((int32_t *)s->y)[5]);
    kiln_dataset_free(ds);
    ds = NULL;
    opt.h5_y = "t";
    ASSERT_OK(kiln_data_import(&opt, &ds));
    ASSERT_EQ_INT(0, ds->n_classes);
    ASSERT_EQ_INT(2, ds->splits[KILN_SPLIT_TRAIN]->y_dim);
    kiln_dataset_free(ds);
    ds = NULL;
    opt.h5_y = "short";
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_data_import(&opt, &ds), "6 rows");
    opt.h5_y = "nothere";
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_data_import(&opt, &ds), "nothere");

    /* A kiln dataset file imports as train/test groups with its class names. */
    struct kiln_dataset *src = make_u8();
    ASSERT_OK(kiln_dataset_save(src, test_path("groups.h5")));
    opt = kiln_import_options_default();
    opt.name = "again";
    opt.h5 = test_path("groups.h5");
    ASSERT_OK(kiln_data_import(&opt, &ds));
    ASSERT_EQ_STR(src->sha256, ds->sha256);
    ASSERT_EQ_STR("dog", ds->classes[1]);
    ASSERT_EQ_INT(KILN_DTYPE_U8, ds->splits[KILN_SPLIT_TEST]->x_dtype);
    kiln_dataset_free(ds);
    kiln_dataset_free(src);
    ds = NULL;
    opt.h5 = test_path("nothing.h5");
    ASSERT_STATUS(KILN_ERR_IO, kiln_data_import(&opt, &ds), "nothing.h5");
}

/* --- rows reader ------------------------------------------------------------------------- */

TEST(rows_h5)
{
    struct kiln_dataset *ds = make_u8();
    const char *p = test_path("rows.h5");
    ASSERT_OK(kiln_dataset_save(ds, p));
    struct kiln_rows_reader *r = NULL;
    ASSERT_OK(kiln_rows_open(p, NULL, NULL, &r));
    ASSERT_EQ_INT(6, kiln_rows_count(r));
    ASSERT_EQ_INT(6, kiln_rows_width(r));
    float buf[4 * 6];
    int64_t got = 0, total = 0;
    const uint8_t *X = ds->splits[KILN_SPLIT_TEST]->X;
    for (;;) {
        ASSERT_OK(kiln_rows_read(r, 4, buf, &got));
        if (got == 0) break;
        for (int64_t i = 0; i < got * 6; i++)
            ASSERT_NEAR(kiln_u8_to_f32(X[total * 6 + i]), buf[i], 0);
        total += got;
    }
    ASSERT_EQ_INT(6, total);
    kiln_rows_close(r);
    ASSERT_OK(kiln_rows_open(p, "train/y", NULL, &r));
    ASSERT_EQ_INT(12, kiln_rows_count(r));
    ASSERT_EQ_INT(1, kiln_rows_width(r));
    ASSERT_OK(kiln_rows_read(r, 100, buf, &got));
    ASSERT_EQ_INT(12, got);
    ASSERT_NEAR(2, buf[5], 0);
    kiln_rows_close(r);
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_rows_open(p, "nope/X", NULL, &r), "nope/X");
    ASSERT_STATUS(KILN_ERR_IO, kiln_rows_open(test_path("none.h5"), NULL, NULL, &r), "none.h5");
    kiln_dataset_free(ds);
}

TEST(rows_csv)
{
    const char *p = test_path("rows.csv");
    test_write_text(p, "a, label ,b\n1,x,2\n3,y,4\r\n5,z,6\n7,w,oops\n");
    struct kiln_rows_reader *r = NULL;
    ASSERT_OK(kiln_rows_open(p, NULL, "label", &r));
    ASSERT_EQ_INT(-1, kiln_rows_count(r));
    ASSERT_EQ_INT(2, kiln_rows_width(r));
    float buf[4];
    int64_t got = 0;
    ASSERT_OK(kiln_rows_read(r, 2, buf, &got));
    ASSERT_EQ_INT(2, got);
    ASSERT_NEAR(4, buf[3], 0);
    ASSERT_OK(kiln_rows_read(r, 1, buf, &got));
    ASSERT_EQ_INT(1, got);
    ASSERT_NEAR(6, buf[1], 0);
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_rows_read(r, 2, buf, &got), "rows.csv:5:b: 'oops'");
    kiln_rows_close(r);
    ASSERT_OK(kiln_rows_open(p, NULL, NULL, &r));
    ASSERT_EQ_INT(3, kiln_rows_width(r));
    float b3[3];
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_rows_read(r, 1, b3, &got), "rows.csv:2:label: 'x'");
    kiln_rows_close(r);
}

/* --- predictions writer -------------------------------------------------------------------- */

TEST(pred_writer_h5)
{
    const char *p = test_path("pred.h5");
    char *classes[3] = {"cat", "dog", "bird"};
    struct kiln_pred_meta meta = {.model = "m.h5", .model_sha256 = "abc", .n_classes = 3,
                                  .classes = classes, .out_dim = 3};
    struct kiln_pred_writer *w = NULL;
    ASSERT_OK(kiln_pred_writer_open(p, &meta, &w));
    float a[2 * 3] = {0.1f, 0.7f, 0.2f, 0.5f, 0.2f, 0.3f};
    float b[1 * 3] = {0.2f, 0.2f, 0.6f};
    ASSERT_OK(kiln_pred_writer_write(w, a, 2));
    ASSERT_OK(kiln_pred_writer_write(w, b, 1));
    ASSERT(!exists(p));
    ASSERT_OK(kiln_pred_writer_close(w, true));
    ASSERT_EQ_INT(0, count_hidden(test_tmpdir));
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    ASSERT(f >= 0);
    char *fmt = NULL, **cls = NULL;
    int n = 0;
    ASSERT_OK(h5_attr_read_str(f, "kiln_format", &fmt));
    ASSERT_EQ_STR("predictions", fmt);
    free(fmt);
    ASSERT_OK(h5_attr_read_str(f, "model_sha256", &fmt));
    ASSERT_EQ_STR("abc", fmt);
    free(fmt);
    ASSERT_OK(h5_attr_read_strs(f, "classes", &cls, &n));
    ASSERT_EQ_INT(3, n);
    ASSERT_EQ_STR("bird", cls[2]);
    strv_free(cls, n);
    int32_t pred[3];
    float prob[9];
    int64_t pd[1] = {3}, qd[2] = {3, 3};
    hid_t d = H5Dopen2(f, "pred", H5P_DEFAULT);
    ASSERT(H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, pred) >= 0);
    H5Dclose(d);
    ASSERT_OK(h5_read_f32_exact(f, "prob", 2, qd, prob));
    (void)pd;
    H5Fclose(f);
    ASSERT_EQ_INT(1, pred[0]);
    ASSERT_EQ_INT(0, pred[1]);
    ASSERT_EQ_INT(2, pred[2]);
    ASSERT_NEAR(0.6f, prob[8], 0);

    /* Regression: /output only. */
    struct kiln_pred_meta rm = {.model = "r", .model_sha256 = "def", .n_classes = 0, .out_dim = 2};
    ASSERT_OK(kiln_pred_writer_open(p, &rm, &w));
    float o[4] = {1, 2, 3, 4};
    ASSERT_OK(kiln_pred_writer_write(w, o, 2));
    ASSERT_OK(kiln_pred_writer_close(w, true));
    f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    float back[4];
    ASSERT_OK(h5_read_f32_exact(f, "output", 2, (int64_t[]){2, 2}, back));
    ASSERT(H5Lexists(f, "pred", H5P_DEFAULT) == 0);
    H5Fclose(f);
    ASSERT_NEAR(4, back[3], 0);
}

TEST(pred_writer_csv)
{
    const char *p = test_path("pred.csv");
    char *classes[2] = {"no", "yes, really"};
    struct kiln_pred_meta meta = {.model = "m", .model_sha256 = "x", .n_classes = 2,
                                  .classes = classes, .out_dim = 2};
    struct kiln_pred_writer *w = NULL;
    ASSERT_OK(kiln_pred_writer_open(p, &meta, &w));
    float a[4] = {0.25f, 0.75f, 0.5f, 0.5f};
    ASSERT_OK(kiln_pred_writer_write(w, a, 2));
    ASSERT_OK(kiln_pred_writer_close(w, true));
    char *text = read_text(p);
    ASSERT_EQ_STR("pred,prob_no,\"prob_yes, really\"\n\"yes, really\",0.25,0.75\nno,0.5,0.5\n",
                  text);
    free(text);
    /* One sigmoid output for two classes; numbered classes. */
    meta.classes = NULL;
    meta.out_dim = 1;
    ASSERT_OK(kiln_pred_writer_open(p, &meta, &w));
    float s[2] = {0.9f, 0.1f};
    ASSERT_OK(kiln_pred_writer_write(w, s, 2));
    ASSERT_OK(kiln_pred_writer_close(w, true));
    text = read_text(p);
    ASSERT_EQ_STR("pred,prob_1\n1,0.899999976\n0,0.100000001\n", text);
    free(text);
    struct kiln_pred_meta rm = {.model = "r", .model_sha256 = "x", .out_dim = 2};
    ASSERT_OK(kiln_pred_writer_open(p, &rm, &w));
    ASSERT_OK(kiln_pred_writer_write(w, a, 1));
    ASSERT_OK(kiln_pred_writer_close(w, true));
    text = read_text(p);
    ASSERT_EQ_STR("output_0,output_1\n0.25,0.75\n", text);
    free(text);
    meta.out_dim = 3;
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_pred_writer_open(p, &meta, &w), "3 outputs");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_pred_writer_open(test_path("p.txt"), &rm, &w), ".csv");
}

TEST(pred_writer_abort)
{
    struct kiln_pred_meta rm = {.model = "r", .model_sha256 = "x", .out_dim = 1};
    const char *names[2] = {"abort.h5", "abort.csv"};
    for (int i = 0; i < 2; i++) {
        struct kiln_pred_writer *w = NULL;
        ASSERT_OK(kiln_pred_writer_open(test_path(names[i]), &rm, &w));
        float o[1] = {1};
        ASSERT_OK(kiln_pred_writer_write(w, o, 1));
        ASSERT_EQ_INT(1, count_hidden(test_tmpdir));
        ASSERT_OK(kiln_pred_writer_close(w, false));
        ASSERT(!exists(test_path(names[i])));
        ASSERT_EQ_INT(0, count_hidden(test_tmpdir));
    }
    ASSERT_OK(kiln_pred_writer_close(NULL, true));
    char dir[600];
    snprintf(dir, sizeof dir, "%s/missing/p.h5", test_tmpdir);
    struct kiln_pred_writer *w = NULL;
    ASSERT_STATUS(KILN_ERR_IO, kiln_pred_writer_open(dir, &rm, &w), "missing");
}

int main(void)
{
    snprintf(test_tmpdir, sizeof test_tmpdir, "/tmp/kiln-test-data-XXXXXX");
    if (!mkdtemp(test_tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(split_names);
    RUN(roundtrip_u8);
    RUN(roundtrip_f32);
    RUN(describe_classes);
    RUN(hash_stable_and_sensitive);
    RUN(corrupt_data_byte);
    RUN(corrupt_sha_attr);
    RUN(newer_version_refused);
    RUN(truncated_and_missing);
    RUN(bad_values_refused);
    RUN(save_unwritable_folder);
    RUN(save_replaces_atomically);
    RUN(idx_gz_and_raw);
    RUN(idx_errors);
    RUN(csv_classes_and_quotes);
    RUN(csv_regression_and_tasks);
    RUN(csv_missing_values);
    RUN(stratified_split);
    RUN(h5_import);
    RUN(rows_h5);
    RUN(rows_csv);
    RUN(pred_writer_h5);
    RUN(pred_writer_csv);
    RUN(pred_writer_abort);
    nftw(test_tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary();
}
