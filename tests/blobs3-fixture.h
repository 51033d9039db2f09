/* tests/blobs3-fixture.h: the three-class, four-feature blobs and the small
 * MLP that the lifecycle tests train on (test_registry.c, test_score.c).
 * Static functions: include it once per test executable, after test.h. */
#ifndef KILN_TESTS_BLOBS3_FIXTURE_H
#define KILN_TESTS_BLOBS3_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "kiln/data.h"

/* The model and the start of its train: section; a test appends the rest
 * (checkpoint_every, threads, a card). */
#define BLOBS3_CONFIG_HEAD                                                     \
    "model:\n"                                                                 \
    "  input: [4]\n"                                                           \
    "  layers:\n"                                                              \
    "    - {type: dense, units: 8}\n"                                          \
    "    - {type: relu}\n"                                                     \
    "    - {type: dense, units: 3}\n"                                          \
    "  loss: softmax_cross_entropy\n"                                          \
    "train:\n"                                                                 \
    "  epochs: 2\n"                                                            \
    "  batch_size: 16\n"                                                       \
    "  seed: 3\n"                                                              \
    "  optimizer: {type: adam, lr: 0.01}\n"

/* A 3-class dataset named "blobs" (train 60 rows, test 30; classes red,
 * green, blue): feature j of a class-c row is base + step * j, plus 3 when
 * j == c, plus a little ripple. NULL when out of memory. */
static struct kiln_dataset *make_blobs3(float base, float step)
{
    struct kiln_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    int64_t feat = 4, rows[2] = {60, 30};
    int splits[2] = {KILN_SPLIT_TRAIN, KILN_SPLIT_TEST};
    ds->name = strdup("blobs");
    ds->source = strdup("unit test");
    for (int k = 0; k < 2; k++) {
        if (kiln_split_create(rows[k], 1, &feat, KILN_DTYPE_F32, KILN_DTYPE_I32, 1,
                              &ds->splits[splits[k]]) != KILN_OK)
            return ds; /* the caller's save fails on the missing split */
        struct kiln_split *s = ds->splits[splits[k]];
        for (int64_t r = 0; r < s->n; r++) {
            int c = (int)(r % 3);
            ((int32_t *)s->y)[r] = c;
            for (int j = 0; j < 4; j++)
                ((float *)s->X)[r * 4 + j] = base + step * (float)j +
                                             (float)(j == c ? 3.0 : 0.0) +
                                             0.1f * (float)((r * 7 + j) % 5);
        }
    }
    const char *names[3] = {"red", "green", "blue"};
    ds->n_classes = 3;
    ds->classes = calloc(3, sizeof *ds->classes);
    for (int c = 0; ds->classes && c < 3; c++) ds->classes[c] = strdup(names[c]);
    return ds;
}

#endif
