/* tests/test_transform.c: dataset transforms (kiln/transform.h): each kind on
 * small hand-made datasets, fitting on train only, column and class
 * resolution, chaining, apply_rows against fit_apply (bitwise), the JSON
 * round trip and parse errors. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "kiln/data.h"
#include "kiln/transform.h"
#include "test.h"

/* A dataset from literal arrays: x_rows[s] rows of width features per split
 * (NULL: absent), float32 or uint8 (x given as floats holding the bytes),
 * classes (class names given) or one float target. */
struct spec {
    int64_t rows[3];
    const float *x[3];
    const int32_t *y[3];
};

static struct kiln_dataset *make_ds(const struct spec *sp, int64_t width,
                                    enum kiln_dtype x_dtype, const char *const *classes,
                                    int n_classes, const char *const *names)
{
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    str_dup("hand", &ds->name);
    str_dup("unit test", &ds->source);
    int64_t shape[1] = {width};
    for (int s = 0; s < KILN_SPLIT_COUNT; s++) {
        if (!sp->x[s]) continue;
        struct kiln_split *p = NULL;
        kiln_split_create(sp->rows[s], 1, shape, x_dtype,
                          n_classes ? KILN_DTYPE_I32 : KILN_DTYPE_F32, 1, &p);
        for (int64_t i = 0; i < sp->rows[s] * width; i++) {
            if (x_dtype == KILN_DTYPE_U8)
                ((uint8_t *)p->X)[i] = (uint8_t)sp->x[s][i];
            else
                ((float *)p->X)[i] = sp->x[s][i];
        }
        for (int64_t i = 0; i < sp->rows[s]; i++) {
            if (n_classes)
                ((int32_t *)p->y)[i] = sp->y[s] ? sp->y[s][i] : 0;
            else
                ((float *)p->y)[i] = (float)i;
        }
        ds->splits[s] = p;
    }
    ds->n_classes = n_classes;
    if (n_classes) {
        ds->classes = calloc((size_t)n_classes, sizeof *ds->classes);
        for (int c = 0; c < n_classes; c++) str_dup(classes[c], &ds->classes[c]);
    }
    if (names) {
        ds->n_features = (int)width;
        ds->feature_names = calloc((size_t)width, sizeof *ds->feature_names);
        for (int64_t j = 0; j < width; j++) str_dup(names[j], &ds->feature_names[j]);
    }
    kiln_dataset_hash(ds, ds->sha256);
    return ds;
}

/* Parses a list of specs (NULL-terminated) into one list. */
static struct kiln_transform_list *parse_all(const char *const *specs)
{
    struct kiln_transform_list *tl = NULL;
    for (; *specs; specs++)
        if (kiln_transform_parse(*specs, &tl) != KILN_OK) {
            fprintf(stderr, "parse '%s': %s\n", *specs, kiln_last_error());
            kiln_transform_list_free(tl);
            return NULL;
        }
    return tl;
}

static float xf(const struct kiln_split *s, int64_t i, int64_t j)
{
    return ((const float *)s->X)[i * s->feat_size + j];
}

static const char *const three_names[] = {"age", "color", "height"};

TEST(parse_specs)
{
    struct kiln_transform_list *tl = NULL;
    ASSERT_OK(kiln_transform_parse("standardize", &tl));
    ASSERT_OK(kiln_transform_parse("minmax=a, b", &tl));
    ASSERT_OK(kiln_transform_parse("onehot=color", &tl));
    ASSERT_OK(kiln_transform_parse("cast=float32", &tl));
    ASSERT_OK(kiln_transform_parse("select=a,f2,3", &tl));
    ASSERT_OK(kiln_transform_parse("drop=x", &tl));
    ASSERT_OK(kiln_transform_parse("filter-labels=cat,1", &tl));
    ASSERT_EQ_INT(7, tl->n);
    ASSERT_EQ_INT(KILN_TF_STANDARDIZE, tl->steps[0].kind);
    ASSERT_EQ_INT(0, tl->steps[0].n_names);
    ASSERT_EQ_INT(KILN_TF_MINMAX, tl->steps[1].kind);
    ASSERT_EQ_INT(2, tl->steps[1].n_names);
    ASSERT_EQ_STR("b", tl->steps[1].names[1]);
    ASSERT_EQ_INT(KILN_TF_ONEHOT, tl->steps[2].kind);
    ASSERT_EQ_INT(KILN_TF_CAST_F32, tl->steps[3].kind);
    ASSERT_EQ_INT(3, tl->steps[4].n_names);
    ASSERT_EQ_INT(KILN_TF_DROP, tl->steps[5].kind);
    ASSERT_EQ_INT(KILN_TF_FILTER_LABELS, tl->steps[6].kind);
    ASSERT_EQ_INT(0, kiln_transform_in_width(tl));
    /* Errors leave the list as it was. */
    static const struct {
        const char *spec, *needle;
    } bad[] = {
        {"", "empty"},
        {"normalize", "unknown kind"},
        {"onehot", "needs an argument"},
        {"select", "needs an argument"},
        {"onehot=a,b", "one column"},
        {"cast=int8", "float32"},
        {"select=a,,b", "item 2"},
        {"drop=a, a", "listed twice"},
        {"standardize=", "item 1"},
        {"filter-labels=\xff", "UTF-8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum kiln_status st = kiln_transform_parse(bad[i].spec, &tl);
        if (st != KILN_ERR_USAGE || !strstr(kiln_last_error(), bad[i].needle))
            TEST_FAIL("'%s': %s: %s", bad[i].spec, kiln_status_name(st), kiln_last_error());
    }
    ASSERT_EQ_INT(7, tl->n);
    kiln_transform_list_free(tl);
    struct kiln_transform_list *none = NULL;
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_parse("bogus", &none), "bogus");
    ASSERT(none == NULL);
}

TEST(standardize_fits_on_train_only)
{
    static const float tr[] = {1, 10, 3, 10};  /* mean 2, 10; std 1, 0 -> 1 */
    static const float va[] = {5, 12};
    static const float te[] = {2, 9, 0, 10};
    struct spec sp = {{2, 1, 2}, {tr, va, te}, {NULL, NULL, NULL}};
    struct kiln_dataset *ds = make_ds(&sp, 2, KILN_DTYPE_F32, NULL, 0, NULL);
    char sha[65];
    memcpy(sha, ds->sha256, sizeof sha);
    const char *specs[] = {"standardize", NULL};
    struct kiln_transform_list *tl = parse_all(specs);
    struct kiln_dataset *ch = NULL;
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    const struct kiln_transform *t = &tl->steps[0];
    ASSERT_EQ_INT(2, t->n_params);
    ASSERT_NEAR(2.0, t->a[0], 0);
    ASSERT_NEAR(10.0, t->a[1], 0);
    ASSERT_NEAR(1.0, t->b[0], 0);
    ASSERT_NEAR(1.0, t->b[1], 0);
    const struct kiln_split *c = ch->splits[KILN_SPLIT_TRAIN];
    ASSERT_EQ_INT(KILN_DTYPE_F32, c->x_dtype);
    ASSERT_NEAR(-1, xf(c, 0, 0), 0);
    ASSERT_NEAR(0, xf(c, 0, 1), 0);
    ASSERT_NEAR(1, xf(c, 1, 0), 0);
    c = ch->splits[KILN_SPLIT_VAL];
    ASSERT_NEAR(3, xf(c, 0, 0), 0);
    ASSERT_NEAR(2, xf(c, 0, 1), 0);
    c = ch->splits[KILN_SPLIT_TEST];
    ASSERT_NEAR(0, xf(c, 0, 0), 0);
    ASSERT_NEAR(-1, xf(c, 0, 1), 0);
    ASSERT_NEAR(-2, xf(c, 1, 0), 0);
    /* Provenance: parent untouched, child points at it and is hashed. */
    char again[65];
    ASSERT_OK(kiln_dataset_hash(ds, again));
    ASSERT_EQ_STR(sha, again);
    ASSERT_NEAR(1, ((float *)ds->splits[KILN_SPLIT_TRAIN]->X)[0], 0);
    ASSERT_EQ_STR(sha, ch->parent);
    char want_src[128];
    snprintf(want_src, sizeof want_src, "transform of hand@%.12s: standardize", sha);
    ASSERT_EQ_STR(want_src, ch->source);
    ASSERT_EQ_STR("hand", ch->name);
    ASSERT(ch->created && ch->created[0]);
    ASSERT_OK(kiln_dataset_hash(ch, again));
    ASSERT_EQ_STR(again, ch->sha256);
    ASSERT(strcmp(ch->sha256, sha) != 0);
    ASSERT_EQ_INT(0, ch->n_features); /* unnamed stays unnamed */
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);
    kiln_dataset_free(ds);
}

TEST(minmax_and_subset_columns)
{
    static const float tr[] = {0, 5, 1, 10, 5, 3};
    static const float te[] = {5, 7, 2};
    struct spec sp = {{2, -1, 1}, {tr, NULL, te}, {NULL, NULL, NULL}};
    struct kiln_dataset *ds = make_ds(&sp, 3, KILN_DTYPE_F32, NULL, 0, three_names);
    const char *specs[] = {"minmax", NULL};
    struct kiln_transform_list *tl = parse_all(specs);
    struct kiln_dataset *ch = NULL;
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    const struct kiln_split *c = ch->splits[KILN_SPLIT_TEST];
    ASSERT_NEAR(0.5, xf(c, 0, 0), 0);
    ASSERT_NEAR(2.0, xf(c, 0, 1), 0); /* constant in train: x - min */
    ASSERT_NEAR(0.5, xf(c, 0, 2), 0);
    ASSERT_EQ_INT(3, ch->n_features);
    ASSERT_EQ_STR("height", ch->feature_names[2]);
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);

    /* Only the named column is scaled; the others pass through bit for bit. */
    const char *sub[] = {"standardize=height", NULL};
    tl = parse_all(sub);
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    c = ch->splits[KILN_SPLIT_TEST];
    ASSERT_NEAR(5, xf(c, 0, 0), 0);
    ASSERT_NEAR(7, xf(c, 0, 1), 0);
    ASSERT_NEAR(0, xf(c, 0, 2), 0); /* mean 2, std 1 */
    ASSERT_EQ_INT(1, tl->steps[0].n_columns);
    ASSERT_EQ_INT(2, tl->steps[0].columns[0]);
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);
    kiln_dataset_free(ds);
}

TEST(onehot_codes_and_unseen)
{
    static const float tr[] = {1, 2, 0, 2, 0, 0, 5, 5, 0, 2, 2, 1};
    static const float te[] = {7, 3, 8};
    struct spec sp = {{4, -1, 1}, {tr, NULL, te}, {NULL, NULL, NULL}};
    struct kiln_dataset *ds = make_ds(&sp, 3, KILN_DTYPE_F32, NULL, 0, three_names);
    const char *specs[] = {"onehot=color", NULL};
    struct kiln_transform_list *tl = parse_all(specs);
    struct kiln_dataset *ch = NULL;
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    ASSERT_EQ_INT(5, tl->steps[0].out_width); /* codes 0, 2, 5 */
    ASSERT_EQ_INT(3, tl->steps[0].n_params);
    static const char *const want_names[] = {"age", "color=0", "color=2", "color=5", "height"};
    ASSERT_EQ_INT(5, ch->n_features);
    for (int j = 0; j < 5; j++) ASSERT_EQ_STR(want_names[j], ch->feature_names[j]);
    const struct kiln_split *c = ch->splits[KILN_SPLIT_TRAIN];
    ASSERT_EQ_INT(1, c->feat_ndim);
    ASSERT_EQ_INT(5, c->feat_shape[0]);
    static const float want_tr[] = {1, 0, 1, 0, 0, 2, 1, 0, 0, 0, 5, 0, 0, 1, 0, 2, 0, 1, 0, 1};
    for (int i = 0; i < 20; i++) ASSERT_NEAR(want_tr[i], ((float *)c->X)[i], 0);
    /* Code 3 was never seen in train: all indicators 0. */
    c = ch->splits[KILN_SPLIT_TEST];
    static const float want_te[] = {7, 0, 0, 0, 8};
    for (int i = 0; i < 5; i++) ASSERT_NEAR(want_te[i], ((float *)c->X)[i], 0);
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);
    kiln_dataset_free(ds);
}

TEST(cast_keeps_shape_and_scales)
{
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    str_dup("img", &ds->name);
    int64_t shape[2] = {2, 3};
    kiln_split_create(2, 2, shape, KILN_DTYPE_U8, KILN_DTYPE_I32, 1, &ds->splits[KILN_SPLIT_TRAIN]);
    for (int i = 0; i < 12; i++) ((uint8_t *)ds->splits[KILN_SPLIT_TRAIN]->X)[i] = (uint8_t)(i * 21);
    ds->n_classes = 1;
    ds->classes = calloc(1, sizeof *ds->classes);
    str_dup("only", &ds->classes[0]);
    const char *specs[] = {"cast=float32", NULL};
    struct kiln_transform_list *tl = parse_all(specs);
    struct kiln_dataset *ch = NULL;
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    const struct kiln_split *c = ch->splits[KILN_SPLIT_TRAIN];
    ASSERT_EQ_INT(KILN_DTYPE_F32, c->x_dtype);
    ASSERT_EQ_INT(2, c->feat_ndim);
    ASSERT_EQ_INT(3, c->feat_shape[1]);
    for (int i = 0; i < 12; i++)
        ASSERT(((float *)c->X)[i] == kiln_u8_to_f32((uint8_t)(i * 21)));
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);

    /* standardize on uint8 scales first and keeps the image shape. */
    const char *st[] = {"standardize", NULL};
    tl = parse_all(st);
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    c = ch->splits[KILN_SPLIT_TRAIN];
    ASSERT_EQ_INT(KILN_DTYPE_F32, c->x_dtype);
    ASSERT_EQ_INT(2, c->feat_ndim);
    double mean0 = ((double)kiln_u8_to_f32(0) + (double)kiln_u8_to_f32(126)) / 2;
    ASSERT_NEAR(mean0, tl->steps[0].a[0], 1e-15);
    ASSERT_NEAR(-1.0, ((float *)c->X)[0], 1e-6);
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);
    kiln_dataset_free(ds);
}

TEST(select_and_drop_resolve_names)
{
    static const float tr[] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct spec sp = {{2, -1, -1}, {tr, NULL, NULL}, {NULL, NULL, NULL}};
    static const char *const names[] = {"a", "b", "f0", "3"};
    struct kiln_dataset *ds = make_ds(&sp, 4, KILN_DTYPE_U8, NULL, 0, names);
    /* "f0" and "3" are names here and win over indices; "f1" and "1" are
     * indices (no such names). */
    const char *specs[] = {"select=3,f0,f1", NULL};
    struct kiln_transform_list *tl = parse_all(specs);
    struct kiln_dataset *ch = NULL;
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    const struct kiln_split *c = ch->splits[KILN_SPLIT_TRAIN];
    ASSERT_EQ_INT(KILN_DTYPE_U8, c->x_dtype); /* moving columns keeps uint8 */
    ASSERT_EQ_INT(3, c->feat_size);
    static const uint8_t want[] = {4, 3, 2, 8, 7, 6};
    ASSERT(memcmp(want, c->X, 6) == 0);
    ASSERT_EQ_STR("3", ch->feature_names[0]);
    ASSERT_EQ_STR("f0", ch->feature_names[1]);
    ASSERT_EQ_STR("b", ch->feature_names[2]);
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);

    const char *drops[] = {"drop=1,a", NULL};
    tl = parse_all(drops);
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    c = ch->splits[KILN_SPLIT_TRAIN];
    static const uint8_t want2[] = {3, 4, 7, 8};
    ASSERT_EQ_INT(2, c->feat_size);
    ASSERT(memcmp(want2, c->X, 4) == 0);
    ASSERT_EQ_STR("f0", ch->feature_names[0]);
    ASSERT_EQ_INT(0, tl->steps[0].columns[0]); /* sorted */
    ASSERT_EQ_INT(1, tl->steps[0].columns[1]);
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);

    /* Unknown columns are named in the error, with the step. */
    const char *unknown[] = {"select=a,nope", NULL};
    tl = parse_all(unknown);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_fit_apply(tl, ds, &ch), "no column 'nope'");
    ASSERT(strstr(kiln_last_error(), "transform 1 'select=a,nope'") != NULL);
    ASSERT(ch == NULL);
    ASSERT_EQ_INT(0, tl->steps[0].in_width); /* not left half fitted */
    kiln_transform_list_free(tl);
    const char *range[] = {"drop=f4", NULL};
    tl = parse_all(range);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_fit_apply(tl, ds, &ch), "'f4'");
    kiln_transform_list_free(tl);
    const char *same[] = {"select=a,0", NULL};
    tl = parse_all(same);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_fit_apply(tl, ds, &ch), "same column");
    kiln_transform_list_free(tl);
    const char *all[] = {"drop=a,b,f0,3", NULL};
    tl = parse_all(all);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_fit_apply(tl, ds, &ch), "every column");
    kiln_transform_list_free(tl);
    kiln_dataset_free(ds);
}

TEST(filter_labels_renumbers)
{
    static const float tr[] = {10, 11, 12, 13, 14, 15};
    static const int32_t ytr[] = {0, 1, 2, 2, 1, 0};
    static const float te[] = {20, 21, 22};
    static const int32_t yte[] = {1, 2, 0};
    struct spec sp = {{6, -1, 3}, {tr, NULL, te}, {ytr, NULL, yte}};
    static const char *const classes[] = {"cat", "dog", "bird"};
    struct kiln_dataset *ds = make_ds(&sp, 1, KILN_DTYPE_F32, classes, 3, NULL);
    const char *specs[] = {"filter-labels=bird,0", NULL};
    struct kiln_transform_list *tl = parse_all(specs);
    struct kiln_dataset *ch = NULL;
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    ASSERT_EQ_INT(2, ch->n_classes);
    ASSERT_EQ_STR("bird", ch->classes[0]);
    ASSERT_EQ_STR("cat", ch->classes[1]);
    ASSERT_EQ_INT(2, tl->steps[0].n_labels);
    ASSERT_EQ_INT(2, tl->steps[0].labels[0]);
    ASSERT_EQ_INT(0, tl->steps[0].labels[1]);
    const struct kiln_split *c = ch->splits[KILN_SPLIT_TRAIN];
    ASSERT_EQ_INT(4, c->n);
    static const float wx[] = {10, 12, 13, 15};
    static const int32_t wy[] = {1, 0, 0, 1};
    for (int i = 0; i < 4; i++) {
        ASSERT_NEAR(wx[i], xf(c, i, 0), 0);
        ASSERT_EQ_INT(wy[i], ((int32_t *)c->y)[i]);
    }
    c = ch->splits[KILN_SPLIT_TEST];
    ASSERT_EQ_INT(2, c->n);
    ASSERT_NEAR(21, xf(c, 0, 0), 0);
    ASSERT_EQ_INT(0, ((int32_t *)c->y)[0]);
    ASSERT_EQ_INT(1, ((int32_t *)c->y)[1]);
    /* A no-op on rows. */
    float row[1] = {3.5f}, out[1];
    ASSERT_OK(kiln_transform_apply_rows(tl, row, 1, out));
    ASSERT_NEAR(3.5, out[0], 0);
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);

    const char *bad[] = {"filter-labels=cat,fish", NULL};
    tl = parse_all(bad);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_fit_apply(tl, ds, &ch), "no class 'fish'");
    kiln_transform_list_free(tl);
    const char *twice[] = {"filter-labels=cat,0", NULL};
    tl = parse_all(twice);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_fit_apply(tl, ds, &ch), "twice");
    kiln_transform_list_free(tl);
    kiln_dataset_free(ds);

    /* Regression datasets have no classes to filter. */
    struct spec rs = {{2, -1, -1}, {tr, NULL, NULL}, {NULL, NULL, NULL}};
    ds = make_ds(&rs, 1, KILN_DTYPE_F32, NULL, 0, NULL);
    const char *reg[] = {"filter-labels=0", NULL};
    tl = parse_all(reg);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_fit_apply(tl, ds, &ch), "no classes");
    kiln_transform_list_free(tl);
    kiln_dataset_free(ds);
}

TEST(chain_select_then_standardize)
{
    static const float tr[] = {1, 100, 2, 3, 200, 4, 5, 300, 6};
    static const float va[] = {7, 400, 8};
    struct spec sp = {{3, 1, -1}, {tr, va, NULL}, {NULL, NULL, NULL}};
    struct kiln_dataset *ds = make_ds(&sp, 3, KILN_DTYPE_F32, NULL, 0, three_names);
    const char *specs[] = {"select=height,age", "standardize", NULL};
    struct kiln_transform_list *tl = parse_all(specs);
    struct kiln_dataset *ch = NULL;
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    ASSERT_EQ_INT(3, kiln_transform_in_width(tl));
    ASSERT_EQ_INT(2, kiln_transform_out_width(tl));
    ASSERT_EQ_INT(2, tl->steps[1].in_width);
    ASSERT_NEAR(4.0, tl->steps[1].a[0], 0); /* mean of height */
    ASSERT_NEAR(3.0, tl->steps[1].a[1], 0); /* mean of age */
    ASSERT_NEAR(sqrt(8.0 / 3.0), tl->steps[1].b[0], 1e-15);
    ASSERT_EQ_STR("height", ch->feature_names[0]);
    ASSERT_EQ_STR("age", ch->feature_names[1]);
    const struct kiln_split *c = ch->splits[KILN_SPLIT_VAL];
    ASSERT_NEAR((8 - 4) / sqrt(8.0 / 3.0), xf(c, 0, 0), 1e-6);
    ASSERT_NEAR((7 - 3) / sqrt(8.0 / 3.0), xf(c, 0, 1), 1e-6);
    char want[160];
    snprintf(want, sizeof want, "transform of hand@%.12s: select=height,age, standardize",
             ds->sha256);
    ASSERT_EQ_STR(want, ch->source);
    /* Names resolve against each step's input: after the select, "age" is
     * column 1 and "color" is gone. */
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);
    const char *gone[] = {"select=height,age", "onehot=color", NULL};
    tl = parse_all(gone);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_fit_apply(tl, ds, &ch), "transform 2");
    ASSERT(strstr(kiln_last_error(), "'color'") != NULL);
    kiln_transform_list_free(tl);
    kiln_dataset_free(ds);
}

/* A random uint8 dataset [n, 6] with names and 4 classes, codes 0..3 in column 2. */
static struct kiln_dataset *make_random_u8(void)
{
    static float x[3][40 * 6];
    static int32_t y[3][40];
    uint32_t r = 12345;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < 40; i++) {
            for (int j = 0; j < 6; j++) {
                r = r * 1664525u + 1013904223u;
                x[s][i * 6 + j] = (float)(j == 2 ? (r >> 24) % 4 : (r >> 24));
            }
            y[s][i] = (int32_t)((r >> 8) % 4);
        }
    struct spec sp = {{40, 17, 23}, {x[0], x[1], x[2]}, {y[0], y[1], y[2]}};
    static const char *const classes[] = {"a", "b", "c", "d"};
    static const char *const names[] = {"p0", "p1", "code", "p3", "p4", "p5"};
    return make_ds(&sp, 6, KILN_DTYPE_U8, classes, 4, names);
}

/* The rows of split s as the model sees them. */
static float *rows_as_float(const struct kiln_split *s)
{
    float *out = malloc((size_t)(s->n * s->feat_size + 1) * sizeof *out);
    for (int64_t i = 0; i < s->n * s->feat_size; i++)
        out[i] = s->x_dtype == KILN_DTYPE_U8 ? kiln_u8_to_f32(((uint8_t *)s->X)[i])
                                             : ((float *)s->X)[i];
    return out;
}

/* apply_rows on each parent split equals the child's X bit for bit (no
 * filter in the list, so rows correspond). */
static int rows_match_child(const struct kiln_transform_list *tl, const struct kiln_dataset *ds,
                            const struct kiln_dataset *ch)
{
    for (int s = 0; s < KILN_SPLIT_COUNT; s++) {
        if (!ds->splits[s]) continue;
        float *in = rows_as_float(ds->splits[s]);
        float *want = rows_as_float(ch->splits[s]);
        int64_t n = ds->splits[s]->n, w = kiln_transform_out_width(tl);
        float *out = malloc((size_t)(n * w + 1) * sizeof *out);
        int ok = ch->splits[s]->feat_size == w &&
                 kiln_transform_apply_rows(tl, in, n, out) == KILN_OK &&
                 memcmp(out, want, (size_t)(n * w) * sizeof *out) == 0;
        free(in);
        free(want);
        free(out);
        if (!ok) return 0;
    }
    return 1;
}

TEST(apply_rows_matches_fit_apply)
{
    struct kiln_dataset *ds = make_random_u8();
    static const char *const lists[][5] = {
        {"standardize", NULL},
        {"minmax", NULL},
        {"onehot=code", "standardize", NULL},
        {"drop=p1", "onehot=code", "minmax=p0,p5", NULL},
        {"select=p5,code,p0", NULL},           /* stays uint8 */
        {"cast=float32", "select=p4,p3", NULL},
    };
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++) {
        struct kiln_transform_list *tl = parse_all(lists[k]);
        struct kiln_dataset *ch = NULL;
        ASSERT(tl != NULL);
        ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
        if (!rows_match_child(tl, ds, ch)) TEST_FAIL("list %zu: rows differ from the child", k);
        kiln_dataset_free(ch);
        kiln_transform_list_free(tl);
    }
    /* onehot on uint8 codes names them by the stored byte. */
    const char *oh[] = {"onehot=code", NULL};
    struct kiln_transform_list *tl = parse_all(oh);
    struct kiln_dataset *ch = NULL;
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    ASSERT_EQ_STR("code=3", ch->feature_names[5]);
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);
    kiln_dataset_free(ds);
}

TEST(apply_rows_in_place_and_errors)
{
    struct kiln_dataset *ds = make_random_u8();
    const char *specs[] = {"standardize", NULL};
    struct kiln_transform_list *tl = parse_all(specs);
    float row[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}, out[6], in_place[6];
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_apply_rows(tl, row, 1, out), "not fitted");
    struct kiln_dataset *ch = NULL;
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    ASSERT_OK(kiln_transform_apply_rows(tl, row, 1, out));
    memcpy(in_place, row, sizeof row);
    ASSERT_OK(kiln_transform_apply_rows(tl, in_place, 1, in_place));
    ASSERT(memcmp(out, in_place, sizeof out) == 0);
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);
    /* A permutation in place: the row is read whole before it is written. */
    const char *perm[] = {"select=p5,p4,code,p3,p1,p0", NULL};
    tl = parse_all(perm);
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    memcpy(in_place, row, sizeof row);
    ASSERT_OK(kiln_transform_apply_rows(tl, in_place, 1, in_place));
    ASSERT_NEAR(row[5], in_place[0], 0);
    ASSERT_NEAR(row[0], in_place[5], 0);
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);
    const char *narrow[] = {"drop=p0", NULL};
    tl = parse_all(narrow);
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_apply_rows(tl, row, 1, row), "in place");
    kiln_dataset_free(ch);
    kiln_transform_list_free(tl);
    kiln_dataset_free(ds);
}

TEST(json_round_trip_then_rows)
{
    struct kiln_dataset *ds = make_random_u8();
    const char *specs[] = {"filter-labels=d,a,b", "drop=p1", "onehot=code", "standardize",
                           "minmax=p0", "select=p0,code=1,p5", "cast=float32", NULL};
    struct kiln_transform_list *tl = parse_all(specs);
    ASSERT(tl != NULL);
    /* Unfitted lists round-trip too (names only). */
    char *raw = kiln_transform_list_to_json(tl);
    struct kiln_transform_list *raw_back = NULL;
    ASSERT(raw != NULL);
    ASSERT_OK(kiln_transform_list_from_json(raw, &raw_back));
    ASSERT_EQ_INT(7, raw_back->n);
    ASSERT_EQ_STR("code=1", raw_back->steps[5].names[1]);
    kiln_transform_list_free(raw_back);
    free(raw);

    struct kiln_dataset *ch = NULL;
    ASSERT_OK(kiln_transform_fit_apply(tl, ds, &ch));
    char *json = kiln_transform_list_to_json(tl);
    ASSERT(json != NULL);
    ASSERT(strncmp(json, "{\"transforms\":[{\"kind\":\"filter-labels\"", 38) == 0);
    struct kiln_transform_list *back = NULL;
    ASSERT_OK(kiln_transform_list_from_json(json, &back));
    char *again = kiln_transform_list_to_json(back);
    ASSERT_EQ_STR(json, again);
    ASSERT_EQ_INT(kiln_transform_in_width(tl), kiln_transform_in_width(back));
    ASSERT_EQ_INT(3, kiln_transform_out_width(back));
    /* Fitted parameters read back exactly: same rows out, bit for bit. */
    const struct kiln_split *te = ds->splits[KILN_SPLIT_TEST];
    float *in = rows_as_float(te);
    float *a = malloc((size_t)te->n * 3 * sizeof *a), *b = malloc((size_t)te->n * 3 * sizeof *b);
    ASSERT_OK(kiln_transform_apply_rows(tl, in, te->n, a));
    ASSERT_OK(kiln_transform_apply_rows(back, in, te->n, b));
    ASSERT(memcmp(a, b, (size_t)te->n * 3 * sizeof *a) == 0);
    /* Standardized values are not round numbers: the exactness is real. */
    ASSERT(back->steps[3].b[0] == tl->steps[3].b[0]);
    free(in);
    free(a);
    free(b);
    free(json);
    free(again);
    kiln_transform_list_free(back);
    kiln_transform_list_free(tl);
    kiln_dataset_free(ch);
    kiln_dataset_free(ds);
}

TEST(json_refuses_malformed)
{
    struct kiln_transform_list *tl = NULL;
    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"transforms\":[", "line 1"},
        {"[]", "at the top"},
        {"{\"transforms\":[],\"x\":1}", "at the top"},
        {"{\"transforms\":[{\"kind\":\"scale\",\"names\":[],\"in_width\":0,\"out_width\":0}]}",
         "transforms[0].kind"},
        {"{\"transforms\":[{\"kind\":\"cast\",\"names\":[],\"in_width\":-1,\"out_width\":0}]}",
         "in_width"},
        {"{\"transforms\":[{\"kind\":\"cast\",\"names\":[],\"in_width\":0,\"out_width\":0,"
         "\"mean\":[]}]}", "unexpected key 'mean'"},
        {"{\"transforms\":[{\"kind\":\"select\",\"names\":[1],\"in_width\":0,\"out_width\":0}]}",
         "names[0]"},
        {"{\"transforms\":[{\"kind\":\"standardize\",\"names\":[],\"in_width\":2,\"out_width\":2,"
         "\"columns\":[],\"mean\":[0,1],\"std\":[1]}]}", "mean has 2 entries"},
        {"{\"transforms\":[{\"kind\":\"standardize\",\"names\":[],\"in_width\":2,\"out_width\":2,"
         "\"columns\":[],\"mean\":[0,1],\"std\":[1,0]}]}", "do not fit"},
        {"{\"transforms\":[{\"kind\":\"standardize\",\"names\":[],\"in_width\":2,\"out_width\":2,"
         "\"columns\":[],\"mean\":[0,\"1\"],\"std\":[1,1]}]}", "transforms[0].mean[1]"},
        {"{\"transforms\":[{\"kind\":\"select\",\"names\":[],\"in_width\":2,\"out_width\":1,"
         "\"columns\":[2]}]}", "step 1 (select)"},
        {"{\"transforms\":[{\"kind\":\"select\",\"names\":[],\"in_width\":2,\"out_width\":1,"
         "\"columns\":[1]},{\"kind\":\"cast\",\"names\":[],\"in_width\":2,\"out_width\":2}]}",
         "step 2"},
        {"{\"transforms\":[{\"kind\":\"onehot\",\"names\":[\"c\"],\"in_width\":2,\"out_width\":3,"
         "\"column\":0,\"codes\":[2,1]}]}", "step 1 (onehot)"},
        {"{\"transforms\":[{\"kind\":\"drop\",\"names\":[],\"in_width\":3,\"out_width\":1,"
         "\"columns\":[1,0]}]}", "step 1 (drop)"},
        {"{\"transforms\":[{\"kind\":\"filter-labels\",\"names\":[],\"in_width\":3,"
         "\"out_width\":3,\"labels\":[-1]}]}", "labels[0]"},
        {"{\"transforms\":[{\"kind\":\"cast\",\"names\":[],\"in_width\":3,\"out_width\":3},"
         "{\"kind\":\"cast\",\"names\":[],\"in_width\":0,\"out_width\":0}]}", "some steps"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum kiln_status st = kiln_transform_list_from_json(bad[i].json, &tl);
        if (st != KILN_ERR_FORMAT || !strstr(kiln_last_error(), bad[i].needle))
            TEST_FAIL("case %zu: %s: %s", i, kiln_status_name(st), kiln_last_error());
        ASSERT(tl == NULL);
    }
    /* A good one, for contrast. */
    ASSERT_OK(kiln_transform_list_from_json(
        "{\"transforms\":[{\"kind\":\"onehot\",\"names\":[\"c\"],\"in_width\":2,\"out_width\":3,"
        "\"column\":1,\"codes\":[1,2]}]}", &tl));
    float row[2] = {7, 2}, out[3];
    ASSERT_OK(kiln_transform_apply_rows(tl, row, 1, out));
    ASSERT_NEAR(7, out[0], 0);
    ASSERT_NEAR(0, out[1], 0);
    ASSERT_NEAR(1, out[2], 0);
    kiln_transform_list_free(tl);
}

TEST(fit_errors)
{
    struct kiln_dataset *ds = make_random_u8();
    struct kiln_dataset *ch = NULL;
    const char *specs[] = {"standardize", NULL};
    struct kiln_transform_list *tl = parse_all(specs);
    /* No train split to fit on. */
    struct kiln_split *train = ds->splits[KILN_SPLIT_TRAIN];
    ds->splits[KILN_SPLIT_TRAIN] = NULL;
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_fit_apply(tl, ds, &ch), "no train split");
    ds->splits[KILN_SPLIT_TRAIN] = train;
    /* An empty train split has nothing to fit. */
    int64_t n = train->n;
    train->n = 0;
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_fit_apply(tl, ds, &ch), "empty");
    train->n = n;
    kiln_transform_list_free(tl);
    /* A continuous column is not a column of codes. */
    struct spec sp = {{2000, -1, -1}, {NULL, NULL, NULL}, {NULL, NULL, NULL}};
    float *x = malloc(2000 * sizeof *x);
    for (int i = 0; i < 2000; i++) x[i] = (float)i * 0.5f;
    sp.x[0] = x;
    struct kiln_dataset *cont = make_ds(&sp, 1, KILN_DTYPE_F32, NULL, 0, NULL);
    free(x);
    const char *oh[] = {"onehot=0", NULL};
    tl = parse_all(oh);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_transform_fit_apply(tl, cont, &ch), "2000 distinct");
    kiln_transform_list_free(tl);
    kiln_dataset_free(cont);
    kiln_dataset_free(ds);
}

int main(void)
{
    RUN(parse_specs);
    RUN(standardize_fits_on_train_only);
    RUN(minmax_and_subset_columns);
    RUN(onehot_codes_and_unseen);
    RUN(cast_keeps_shape_and_scales);
    RUN(select_and_drop_resolve_names);
    RUN(filter_labels_renumbers);
    RUN(chain_select_then_standardize);
    RUN(apply_rows_matches_fit_apply);
    RUN(apply_rows_in_place_and_errors);
    RUN(json_round_trip_then_rows);
    RUN(json_refuses_malformed);
    RUN(fit_errors);
    return test_summary();
}
