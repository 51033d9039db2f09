/* tests/test_dataversions.c: dataset versions in a workspace: registering
 * (same content = same version, changed content = a child of the previous),
 * stored statistics, transform children with fitted parameters, the privacy
 * record and salts, hashed identifier columns, diff, export. Each test works
 * in one fresh workspace under a temp folder. */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/data.h"
#include "kiln/dataversions.h"
#include "kiln/stats.h"
#include "kiln/store.h"
#include "kiln/transform.h"
#include "test.h"

static struct kiln_store *ws;

static char *dup_s(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    if (!d) abort();
    return strcpy(d, s);
}

/* A toy dataset: n rows of 3 float features (f0 ~ row / n, f1 = 10 + class,
 * f2 = -1) and 2 classes "no"/"yes" alternating. */
static struct kiln_dataset *toy(const char *name, int64_t n)
{
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    int64_t shape[1] = {3};
    if (!ds || kiln_split_create(n, 1, shape, KILN_DTYPE_F32, KILN_DTYPE_I32, 1,
                                 &ds->splits[KILN_SPLIT_TRAIN]) != KILN_OK)
        abort();
    ds->name = dup_s(name);
    ds->source = dup_s("test: toy");
    ds->n_classes = 2;
    ds->classes = calloc(2, sizeof *ds->classes);
    ds->classes[0] = dup_s("no");
    ds->classes[1] = dup_s("yes");
    ds->n_features = 3;
    ds->feature_names = calloc(3, sizeof *ds->feature_names);
    ds->feature_names[0] = dup_s("f0");
    ds->feature_names[1] = dup_s("f1");
    ds->feature_names[2] = dup_s("f2");
    float *X = ds->splits[KILN_SPLIT_TRAIN]->X;
    int32_t *y = ds->splits[KILN_SPLIT_TRAIN]->y;
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 2);
        X[i * 3 + 0] = (float)i / (float)n;
        X[i * 3 + 1] = 10.0f + (float)y[i];
        X[i * 3 + 2] = -1.0f;
    }
    return ds;
}

/* Runs a printing function into a string (caller frees). */
#define CAPTURE(buf, call)                                                     \
    do {                                                                       \
        size_t len_;                                                           \
        FILE *f_ = open_memstream(&(buf), &len_);                              \
        if (!f_) abort();                                                      \
        enum kiln_status cst_ = (call);                                        \
        fclose(f_);                                                            \
        if (cst_ != KILN_OK)                                                   \
            TEST_FAIL("%s: %s", #call, kiln_last_error());                     \
    } while (0)

static int64_t count_entries(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "find '%s' -type f | wc -l", dir);
    FILE *p = popen(cmd, "r");
    long long n = -1;
    if (p) {
        if (fscanf(p, "%lld", &n) != 1) n = -1;
        pclose(p);
    }
    return n;
}

TEST(register_twice_same_version)
{
    struct kiln_dataset *ds = toy("toy", 40);
    struct kiln_dataversion a, b;
    ASSERT_OK(kiln_dataversion_register(ws, ds, NULL, &a));
    ASSERT(a.created_new);
    ASSERT_EQ_INT(1, a.version);
    ASSERT_EQ_INT(0, a.parent_id);
    ASSERT_EQ_STR(ds->sha256, a.content_sha256);
    char objects[600];
    snprintf(objects, sizeof objects, "%s/.kiln/objects", test_tmpdir);
    int64_t before = count_entries(objects);
    /* The same content again, from a fresh in-memory copy. */
    struct kiln_dataset *again = toy("toy", 40);
    ASSERT_OK(kiln_dataversion_register(ws, again, NULL, &b));
    ASSERT(!b.created_new);
    ASSERT_EQ_INT(a.id, b.id);
    ASSERT_EQ_INT(1, b.version);
    ASSERT_EQ_STR(a.object_sha256, b.object_sha256);
    ASSERT_EQ_INT(before, count_entries(objects));
    /* A reference resolves to the verified object, which loads. */
    struct kiln_ref ref;
    ASSERT_OK(kiln_ref_resolve(ws, "toy", KILN_REF_DATASET, &ref));
    ASSERT_EQ_INT(a.id, ref.id);
    struct kiln_dataset *back = NULL;
    ASSERT_OK(kiln_dataset_load(ref.path, &back));
    ASSERT_EQ_STR(a.content_sha256, back->sha256);
    kiln_dataset_free(back);
    kiln_dataset_free(again);
    kiln_dataset_free(ds);
}

TEST(changed_content_is_child)
{
    struct kiln_dataset *ds = toy("toy", 40);
    ((float *)ds->splits[KILN_SPLIT_TRAIN]->X)[5] = 0.75f;
    ds->sha256[0] = '\0'; /* computed by register */
    struct kiln_dataversion v1, v2;
    ASSERT_OK(kiln_ref_resolve(ws, "toy@v1", KILN_REF_DATASET, &(struct kiln_ref){0}));
    ASSERT_OK(kiln_dataversion_register(ws, ds, NULL, &v2));
    ASSERT(v2.created_new);
    ASSERT_EQ_INT(2, v2.version);
    ASSERT(v2.parent_id != 0);
    ASSERT_EQ_INT(1, v2.parent_version);
    ASSERT_EQ_STR("toy", v2.parent_name);
    struct kiln_dataversion_record r;
    ASSERT_OK(kiln_dataversion_get(ws, v2.parent_id, &r));
    v1 = r.v;
    kiln_dataversion_record_free(&r);
    ASSERT_EQ_STR(v1.content_sha256, v2.parent_sha256);
    /* The file's parent attribute names the parent's content hash. */
    struct kiln_ref ref;
    ASSERT_OK(kiln_ref_resolve(ws, "toy", KILN_REF_DATASET, &ref));
    ASSERT_EQ_INT(2, ref.version);
    struct kiln_dataset *back = NULL;
    ASSERT_OK(kiln_dataset_load_header(ref.path, &back));
    ASSERT_EQ_STR(v1.content_sha256, back->parent);
    kiln_dataset_free(back);
    kiln_dataset_free(ds);
}

TEST(stats_stored_and_parseable)
{
    struct kiln_ref ref;
    ASSERT_OK(kiln_ref_resolve(ws, "toy@v1", KILN_REF_DATASET, &ref));
    struct kiln_dataversion_record r;
    ASSERT_OK(kiln_dataversion_get(ws, ref.id, &r));
    ASSERT(r.stats != NULL);
    ASSERT_EQ_INT(40, r.rows[KILN_SPLIT_TRAIN]);
    ASSERT_EQ_INT(-1, r.rows[KILN_SPLIT_TEST]);
    ASSERT_EQ_INT(3, r.n_features);
    ASSERT_EQ_INT(2, r.n_classes);
    ASSERT(r.created && r.created_by && r.created_by[0]);
    struct kiln_dataset_stats *s = NULL;
    enum kiln_status st = kiln_dataset_stats_from_json(r.stats, &s);
    kiln_dataversion_record_free(&r);
    ASSERT_OK(st);
    ASSERT_EQ_INT(1, s->n_splits);
    ASSERT_EQ_INT(40, s->splits[0].rows);
    ASSERT_EQ_STR("f1", s->splits[0].features[1].name);
    ASSERT_NEAR(10.5, s->splits[0].features[1].mean, 1e-9);
    ASSERT_NEAR(0.5, s->splits[0].features[1].std, 1e-9);
    ASSERT_EQ_INT(20, s->splits[0].class_counts[1]);
    kiln_dataset_stats_free(s);
    /* stats --split test of a version without one is a usage error. */
    char *text = NULL;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_dataversion_stats(ws, &ref, "test", 0, false, f),
                  "no test split");
    fclose(f);
    free(text);
    CAPTURE(text, kiln_dataversion_stats(ws, &ref, "train", 0, true, f_));
    ASSERT(strstr(text, "\"split\":\"train\"") != NULL);
    free(text);
}

TEST(transform_child_carries_parent_and_params)
{
    struct kiln_ref src;
    ASSERT_OK(kiln_ref_resolve(ws, "toy", KILN_REF_DATASET, &src));
    const char *specs[] = {"standardize", "drop=f2"};
    struct kiln_dataversion v;
    ASSERT_OK(kiln_dataversion_transform(ws, "toy", specs, 2, "toy-std", &v));
    ASSERT(v.created_new);
    ASSERT_EQ_INT(1, v.version);
    ASSERT_EQ_INT(src.id, v.parent_id);
    ASSERT_EQ_STR("toy", v.parent_name);
    ASSERT_EQ_INT(2, v.parent_version);
    struct kiln_dataversion_record r;
    ASSERT_OK(kiln_dataversion_get(ws, v.id, &r));
    ASSERT(r.transforms && strstr(r.transforms, "standardize") && strstr(r.transforms, "mean"));
    ASSERT_EQ_INT(2, r.n_features);
    struct kiln_transform_list *tl = NULL;
    enum kiln_status st = kiln_transform_list_from_json(r.transforms, &tl);
    kiln_dataversion_record_free(&r);
    ASSERT_OK(st);
    ASSERT_EQ_INT(2, tl->n);
    ASSERT_EQ_INT(3, kiln_transform_in_width(tl));
    ASSERT_EQ_INT(2, kiln_transform_out_width(tl));
    ASSERT_NEAR(10.5, tl->steps[0].a[1], 1e-6); /* fitted mean of f1 */
    ASSERT_NEAR(0.5, tl->steps[0].b[1], 1e-6);  /* and its std */
    /* The child's file carries the chain, and applying it to raw rows gives
     * the child's stored rows bit for bit. */
    struct kiln_ref ref;
    ASSERT_OK(kiln_ref_resolve(ws, "toy-std", KILN_REF_DATASET, &ref));
    struct kiln_dataset *child = NULL, *parent = NULL;
    ASSERT_OK(kiln_dataset_load(ref.path, &child));
    ASSERT_OK(kiln_dataset_load(src.path, &parent));
    ASSERT(child->transforms != NULL);
    ASSERT_EQ_STR(parent->sha256, child->parent);
    struct kiln_transform_list *chain = NULL;
    ASSERT_OK(kiln_transform_list_from_json(child->transforms, &chain));
    float out[2];
    const float *raw = (const float *)parent->splits[KILN_SPLIT_TRAIN]->X + 7 * 3;
    ASSERT_OK(kiln_transform_apply_rows(chain, raw, 1, out));
    const float *stored = (const float *)child->splits[KILN_SPLIT_TRAIN]->X + 7 * 2;
    ASSERT(memcmp(out, stored, sizeof out) == 0);
    /* The same transform again is the same version. */
    struct kiln_dataversion again;
    ASSERT_OK(kiln_dataversion_transform(ws, "toy", specs, 2, "toy-std", &again));
    ASSERT(!again.created_new);
    ASSERT_EQ_INT(v.id, again.id);
    /* A transform of the transform chains both lists in the file. */
    const char *more[] = {"minmax"};
    struct kiln_dataversion v3;
    ASSERT_OK(kiln_dataversion_transform(ws, "toy-std", more, 1, "toy-mm", &v3));
    struct kiln_ref ref3;
    ASSERT_OK(kiln_ref_resolve(ws, "toy-mm", KILN_REF_DATASET, &ref3));
    struct kiln_dataset *grandchild = NULL;
    ASSERT_OK(kiln_dataset_load_header(ref3.path, &grandchild));
    struct kiln_transform_list *chain3 = NULL;
    ASSERT_OK(kiln_transform_list_from_json(grandchild->transforms, &chain3));
    ASSERT_EQ_INT(3, chain3->n);
    ASSERT_EQ_INT(3, kiln_transform_in_width(chain3));
    kiln_transform_list_free(chain3);
    kiln_dataset_free(grandchild);
    kiln_transform_list_free(chain);
    kiln_transform_list_free(tl);
    kiln_dataset_free(child);
    kiln_dataset_free(parent);
    /* Bad inputs name what is wrong. */
    ASSERT_STATUS(KILN_ERR_NOT_FOUND,
                  kiln_dataversion_transform(ws, "nosuch", specs, 1, "x", &again), "nosuch");
    const char *bad[] = {"standardize=nosuchcolumn"};
    ASSERT(kiln_dataversion_transform(ws, "toy", bad, 1, "x", &again) != KILN_OK);
}

TEST(names_checked)
{
    struct kiln_dataset *ds = toy("a/b", 4);
    struct kiln_dataversion v;
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_dataversion_register(ws, ds, NULL, &v), "a/b");
    free(ds->name);
    ds->name = dup_s("data.h5");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_dataversion_register(ws, ds, NULL, &v), "file name");
    free(ds->name);
    ds->name = dup_s("x@1");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_dataversion_register(ws, ds, NULL, &v), "x@1");
    kiln_dataset_free(ds);
}

TEST(privacy_record_and_salt)
{
    char *p = kiln_dataversion_privacy_json("email, phone", "user_id", "stored in .kiln/salts/x");
    ASSERT(p != NULL);
    ASSERT_EQ_STR("{\"dropped\":[\"email\",\"phone\"],\"hashed\":[\"user_id\"],"
                  "\"salt\":\"stored in .kiln/salts/x\"}",
                  p);
    free(p);
    ASSERT(kiln_dataversion_privacy_json(NULL, NULL, "x") == NULL);
    char s1[128], s2[128];
    ASSERT_OK(kiln_dataversion_salt(ws, "people", s1, sizeof s1));
    ASSERT_EQ_INT(64, strlen(s1));
    ASSERT_OK(kiln_dataversion_salt(ws, "people", s2, sizeof s2));
    ASSERT_EQ_STR(s1, s2);
    struct stat sb;
    ASSERT_EQ_INT(0, stat(test_path(".kiln/salts/people"), &sb));
    ASSERT_EQ_INT(0600, sb.st_mode & 0777);
    ASSERT_OK(kiln_dataversion_salt(ws, "other", s2, sizeof s2));
    ASSERT(strcmp(s1, s2) != 0);
    test_write_text(test_path("salt.txt"), "pepper\n");
    ASSERT_OK(kiln_salt_read_file(test_path("salt.txt"), s2, sizeof s2));
    ASSERT_EQ_STR("pepper", s2);
    test_write_text(test_path("empty.txt"), "\n");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_salt_read_file(test_path("empty.txt"), s2, sizeof s2), "empty");
    ASSERT_STATUS(KILN_ERR_IO, kiln_salt_read_file(test_path("missing.txt"), s2, sizeof s2),
                  "missing.txt");
}

TEST(csv_drop_and_hash_columns)
{
    const char *csv = test_path("people.csv");
    FILE *f = fopen(csv, "w");
    fprintf(f, "email,user_id,x1,x2,label\n");
    for (int i = 0; i < 40; i++)
        fprintf(f, "person%d@example.org,u%05d,%d.5,%d,%s\n", i, i, i % 2, i % 7, i % 2 ? "b" : "a");
    fclose(f);
    struct kiln_import_options opt = kiln_import_options_default();
    opt.name = "people";
    opt.csv = csv;
    opt.label = "label";
    opt.drop_columns = "email";
    opt.hash_columns = "user_id";
    opt.test_fraction = 0.25;
    opt.seed = 3;
    struct kiln_dataset *ds = NULL;
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_data_import(&opt, &ds), "salt");
    char salt[128];
    ASSERT_OK(kiln_dataversion_salt(ws, "people", salt, sizeof salt));
    opt.salt = salt;
    ASSERT_OK(kiln_data_import(&opt, &ds));
    ASSERT_EQ_INT(2, ds->n_features);
    ASSERT_EQ_STR("x1", ds->feature_names[0]);
    ASSERT_EQ_STR("x2", ds->feature_names[1]);
    const struct kiln_split *tr = ds->splits[KILN_SPLIT_TRAIN], *te = ds->splits[KILN_SPLIT_TEST];
    ASSERT(te != NULL);
    ASSERT_EQ_INT(1, tr->n_hashed);
    ASSERT_EQ_INT(1, te->n_hashed);
    ASSERT_EQ_STR("user_id", tr->hashed_names[0]);
    /* The hashes followed their rows into the splits: rows are told apart by
     * x2 = i % 7 and x1, so recompute each row's hash from its values. */
    char privacy_where[64] = "stored in .kiln/salts/people";
    char *privacy = kiln_dataversion_privacy_json(opt.drop_columns, opt.hash_columns, privacy_where);
    struct kiln_dataversion_options vo = {.privacy_json = privacy};
    struct kiln_dataversion v;
    ASSERT_OK(kiln_dataversion_register(ws, ds, &vo, &v));
    free(privacy);
    struct kiln_dataversion_record r;
    ASSERT_OK(kiln_dataversion_get(ws, v.id, &r));
    ASSERT(r.privacy && strstr(r.privacy, "\"dropped\":[\"email\"]") &&
           strstr(r.privacy, "\"hashed\":[\"user_id\"]") && !strstr(r.privacy, salt));
    kiln_dataversion_record_free(&r);
    /* The object holds the hashes, never the dropped or raw identifiers. */
    struct kiln_ref ref;
    ASSERT_OK(kiln_ref_resolve(ws, "people", KILN_REF_DATASET, &ref));
    FILE *obj = fopen(ref.path, "rb");
    ASSERT(obj != NULL);
    static char bytes[1 << 20];
    size_t n = fread(bytes, 1, sizeof bytes, obj);
    fclose(obj);
    ASSERT(n > 0 && n < sizeof bytes);
    ASSERT(memmem(bytes, n, "example.org", 11) == NULL);
    ASSERT(memmem(bytes, n, "u00001", 6) == NULL);
    ASSERT(memmem(bytes, n, tr->hashed[0], 64) != NULL);
    struct kiln_dataset *back = NULL;
    ASSERT_OK(kiln_dataset_load(ref.path, &back));
    ASSERT_EQ_INT(1, back->splits[KILN_SPLIT_TEST]->n_hashed);
    ASSERT(memcmp(back->splits[KILN_SPLIT_TEST]->hashed[0], te->hashed[0], 64 * (size_t)te->n) == 0);
    /* Importing again with the stored salt hashes alike: same content, and
     * the same digests. */
    struct kiln_dataset *ds2 = NULL;
    ASSERT_OK(kiln_data_import(&opt, &ds2));
    ASSERT(memcmp(ds2->splits[KILN_SPLIT_TRAIN]->hashed[0], tr->hashed[0], 64 * (size_t)tr->n) == 0);
    /* Hashing does not change a dataset's identity. */
    opt.hash_columns = NULL;
    opt.drop_columns = "email,user_id";
    struct kiln_dataset *ds3 = NULL;
    ASSERT_OK(kiln_data_import(&opt, &ds3));
    ASSERT_EQ_STR(ds->sha256, ds3->sha256);
    /* Unknown and conflicting columns are usage errors naming them. */
    struct kiln_dataset *bad = NULL;
    opt.drop_columns = "nope";
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_data_import(&opt, &bad), "nope");
    opt.drop_columns = "label";
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_data_import(&opt, &bad), "the label");
    opt.drop_columns = "email";
    opt.hash_columns = "email";
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_data_import(&opt, &bad), "dropped already");
    kiln_dataset_free(back);
    kiln_dataset_free(ds);
    kiln_dataset_free(ds2);
    kiln_dataset_free(ds3);
}

TEST(diff_names_changed_features)
{
    struct kiln_dataset *ds = toy("drift", 100);
    struct kiln_dataversion v1, v2;
    ASSERT_OK(kiln_dataversion_register(ws, ds, NULL, &v1));
    float *X = ds->splits[KILN_SPLIT_TRAIN]->X;
    for (int64_t i = 0; i < 100; i++) X[i * 3 + 0] += 0.5f; /* f0 moves by > 1 std */
    X[3 * 3 + 1] = 10.25f;                                   /* f1 moves a little */
    ds->sha256[0] = '\0';
    ASSERT_OK(kiln_dataversion_register(ws, ds, NULL, &v2));
    struct kiln_ref a, b;
    ASSERT_OK(kiln_ref_resolve(ws, "drift@v1", KILN_REF_DATASET, &a));
    ASSERT_OK(kiln_ref_resolve(ws, "drift@v2", KILN_REF_DATASET, &b));
    char *text = NULL;
    CAPTURE(text, kiln_dataversion_diff(ws, &a, &b, NULL, false, false, f_));
    ASSERT(strstr(text, "* f0") != NULL);   /* flagged */
    ASSERT(strstr(text, "  f1") != NULL);   /* changed, not flagged */
    ASSERT(strstr(text, " f2 ") == NULL);   /* unchanged: not listed */
    ASSERT(strstr(text, "2 of 3 compared changed; 1 moved") != NULL);
    free(text);
    CAPTURE(text, kiln_dataversion_diff(ws, &a, &b, "train", true, true, f_));
    ASSERT(strstr(text, "\"flagged\": [\n    \"f0\"\n  ]") != NULL);
    free(text);
    CAPTURE(text, kiln_dataversion_log(ws, "drift", false, f_));
    ASSERT(strstr(text, "drift@v2") < strstr(text, "drift@v1")); /* newest first */
    ASSERT(strstr(text, "values changed") != NULL);
    free(text);
    CAPTURE(text, kiln_dataversions_list(ws, true, f_));
    ASSERT(strstr(text, "\"name\": \"drift\"") && strstr(text, "\"latest\": 2"));
    free(text);
    CAPTURE(text, kiln_dataversion_show(ws, &b, false, f_));
    ASSERT(strstr(text, "parent    drift@v1") != NULL);
    free(text);
    kiln_dataset_free(ds);
}

TEST(export_csv_round_trip)
{
    struct kiln_ref ref;
    ASSERT_OK(kiln_ref_resolve(ws, "drift", KILN_REF_DATASET, &ref));
    ASSERT_OK(kiln_dataversion_export(&ref, test_path("drift.csv"), NULL, NULL));
    struct kiln_import_options opt = kiln_import_options_default();
    opt.name = "drift";
    opt.csv = test_path("drift.csv");
    opt.label = "label";
    struct kiln_dataset *ds = NULL;
    ASSERT_OK(kiln_data_import(&opt, &ds));
    ASSERT_EQ_STR(ref.content_sha256, ds->sha256);
    kiln_dataset_free(ds);
    ASSERT_OK(kiln_dataversion_export(&ref, test_path("drift.h5"), "h5", NULL));
    ASSERT_OK(kiln_dataset_load(test_path("drift.h5"), &ds));
    ASSERT_EQ_STR(ref.content_sha256, ds->sha256);
    kiln_dataset_free(ds);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_dataversion_export(&ref, test_path("x.csv"), NULL, "test"),
                  "no test split");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_dataversion_export(&ref, test_path("x.h5"), "parquet", NULL),
                  "parquet");
    ASSERT_STATUS(KILN_ERR_IO, kiln_dataversion_export(&ref, test_path("no/dir/x.csv"), NULL, NULL),
                  "no/dir");
    struct stat sb;
    ASSERT(stat(test_path("x.csv"), &sb) != 0);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

int main(void)
{
    snprintf(test_tmpdir, sizeof test_tmpdir, "/tmp/kiln-test-dv-XXXXXX");
    if (!mkdtemp(test_tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    if (kiln_store_init(test_tmpdir, NULL, 0) != KILN_OK || kiln_store_open(test_tmpdir, &ws) != KILN_OK) {
        fprintf(stderr, "cannot make a workspace in %s: %s\n", test_tmpdir, kiln_last_error());
        return 1;
    }
    RUN(register_twice_same_version);
    RUN(changed_content_is_child);
    RUN(stats_stored_and_parseable);
    RUN(transform_child_carries_parent_and_params);
    RUN(names_checked);
    RUN(privacy_record_and_salt);
    RUN(csv_drop_and_hash_columns);
    RUN(diff_names_changed_features);
    RUN(export_csv_round_trip);
    int64_t entries = 0;
    if (kiln_audit_verify(ws, &entries) != KILN_OK || entries < 8) {
        fprintf(stderr, "audit log: %s (%lld entries)\n", kiln_last_error(), (long long)entries);
        test_failures++;
    }
    kiln_store_close(ws);
    nftw(test_tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary();
}
