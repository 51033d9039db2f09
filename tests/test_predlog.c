/* tests/test_predlog.c: the prediction log (kiln/predlog.h): sampling shares
 * and their reproducibility, the line format, exact float round trips,
 * redaction, rotation and retention, 8 threads recording at once, drop
 * counting on a full queue, write errors that stay off the request path,
 * unwritable folders, and the reader's refusal of malformed lines. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kiln/log.h"
#include "kiln/predlog.h"
#include "serve/predlog-internal.h"
#include "test.h"

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* A fresh folder under the test's temp folder. */
static const char *fresh_dir(const char *name)
{
    const char *p = test_path(name);
    nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return p;
}

/* What kiln_predlog_read handed over, all records concatenated. */
struct got {
    int64_t records, rows, width;
    int64_t redacted;           /* records without inputs */
    int64_t with_classes;
    float *x;                   /* rows x width (when not redacted) */
    int32_t *classes;
    int64_t cap;
    int fail_after;             /* > 0: the callback fails at that record */
};

static enum kiln_status got_rows(void *user, const float *x, int64_t rows, int64_t width,
                                 const int32_t *classes)
{
    struct got *g = user;
    g->records++;
    if (g->fail_after > 0 && g->records == g->fail_after)
        return kiln_errorf(KILN_ERR_SHAPE, "callback refused record %lld", (long long)g->records);
    if (!x) g->redacted++;
    if (classes) g->with_classes++;
    if (x) g->width = width;
    if (g->rows + rows > g->cap) {
        g->cap = 2 * (g->rows + rows) + 16;
        g->x = realloc(g->x, (size_t)(g->cap * (width > 0 ? width : 1)) * sizeof *g->x);
        g->classes = realloc(g->classes, (size_t)g->cap * sizeof *g->classes);
        if (!g->x || !g->classes) abort();
    }
    if (x) memcpy(g->x + g->rows * width, x, (size_t)(rows * width) * sizeof *x);
    for (int64_t i = 0; i < rows; i++) g->classes[g->rows + i] = classes ? classes[i] : -1;
    g->rows += rows;
    return KILN_OK;
}

static void got_free(struct got *g)
{
    free(g->x);
    free(g->classes);
    memset(g, 0, sizeof *g);
}

/* The lines of one file, as jansson objects (NULL for a line that is not JSON). */
static int read_lines(const char *path, json_t **out, int max)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int n = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0 && n < max) {
        json_error_t e;
        out[n++] = json_loadb(line, (size_t)len, 0, &e);
    }
    free(line);
    fclose(f);
    return n;
}

static int count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    closedir(d);
    return n;
}

static int64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

/* Records n one-row requests "r<i>" with x = {i, -i/3}, y = {0.25, 0.75},
 * class i % 3. */
static void record_n(struct kiln_predlog *l, int n)
{
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "r%d", i);
        float x[2] = {(float)i, -(float)i / 3.0f}, y[2] = {0.25f, 0.75f};
        int32_t c = i % 3;
        kiln_predlog_record(l, id, x, 1, 2, y, 2, &c);
    }
}

static int64_t sampled_with(double share, uint64_t seed, int n, const char *dir, struct got *g)
{
    struct kiln_predlog_options o = {.dir = dir, .sample = share, .model_name = "m",
                                     .model_version = 1, .seed = seed};
    struct kiln_predlog *l = NULL;
    if (kiln_predlog_open(&o, &l) != KILN_OK) return -1;
    record_n(l, n);
    kiln_predlog_close(l);
    if (g && kiln_predlog_read(dir, got_rows, g) != KILN_OK) return -2;
    return g ? g->rows : 0;
}

TEST(sampling_shares)
{
    struct got g = {0};
    struct kiln_predlog_options o = {.dir = fresh_dir("s0"), .sample = 0.0};
    struct kiln_predlog *l = NULL;
    ASSERT_OK(kiln_predlog_open(&o, &l));
    record_n(l, 1000);
    struct kiln_predlog_counts c = kiln_predlog_counts(l);
    kiln_predlog_close(l);
    ASSERT_EQ_INT(0, c.sampled);
    ASSERT_EQ_INT(0, file_size(test_path("s0/predictions.jsonl")));

    ASSERT_EQ_INT(1000, sampled_with(1.0, 7, 1000, fresh_dir("s1"), &g));
    ASSERT_EQ_INT(1000, g.records);
    /* Every request, in order. */
    for (int i = 0; i < 1000; i++) ASSERT_NEAR((double)i, g.x[2 * i], 0.0);
    got_free(&g);

    /* 0.1 of 20000: mean 2000, sd sqrt(20000 * 0.1 * 0.9) = 42.4; 5 sd. */
    enum { N = 20000 };
    int64_t got = sampled_with(0.1, 42, N, fresh_dir("s01"), &g);
    ASSERT_NEAR(2000.0, (double)got, 5 * 42.43);
    /* The same seed samples the same requests; another seed others. */
    struct got g2 = {0}, g3 = {0};
    ASSERT_EQ_INT(got, sampled_with(0.1, 42, N, fresh_dir("s01b"), &g2));
    ASSERT(memcmp(g.x, g2.x, (size_t)(2 * got) * sizeof(float)) == 0);
    int64_t other = sampled_with(0.1, 43, N, fresh_dir("s01c"), &g3);
    ASSERT_NEAR(2000.0, (double)other, 5 * 42.43);
    ASSERT(other != got || memcmp(g.x, g3.x, (size_t)(2 * got) * sizeof(float)) != 0);
    got_free(&g);
    got_free(&g2);
    got_free(&g3);

    /* Outside [0, 1] (and NaN) is a usage error. */
    const char *bad_dir = fresh_dir("sbad");
    double bad[3] = {-0.1, 1.5, NAN};
    for (int i = 0; i < 3; i++) {
        struct kiln_predlog_options b = {.dir = bad_dir, .sample = bad[i]};
        ASSERT_STATUS(KILN_ERR_USAGE, kiln_predlog_open(&b, &l), "outside [0, 1]");
        ASSERT(l == NULL);
    }
}

TEST(line_format)
{
    const char *dir = fresh_dir("fmt");
    struct kiln_predlog_options o = {.dir = dir, .sample = 1.0, .model_name = "clf",
                                     .model_version = 3};
    struct kiln_predlog *l = NULL;
    ASSERT_OK(kiln_predlog_open(&o, &l));
    float x[4] = {1.0f, 2.5f, -3.0f, 0.0f}, y[6] = {0.1f, 0.2f, 0.7f, 0.5f, 0.25f, 0.25f};
    int32_t classes[2] = {2, 0};
    kiln_predlog_record(l, "req-17", x, 2, 2, y, 3, classes);
    /* A client's id with quotes, a control character and bytes that are not UTF-8. */
    kiln_predlog_record(l, "a\"b\\c\n\xff\xfe", x, 1, 2, y, 3, NULL);
    kiln_predlog_close(l);

    json_t *lines[4] = {0};
    ASSERT_EQ_INT(2, read_lines(test_path("fmt/predictions.jsonl"), lines, 4));
    ASSERT(lines[0] && lines[1]);
    json_t *a = lines[0];
    const char *t = json_string_value(json_object_get(a, "time"));
    /* 2026-11-27T01:02:03.123Z */
    ASSERT(t && strlen(t) == 24 && t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    ASSERT_EQ_STR("req-17", json_string_value(json_object_get(a, "request_id")));
    ASSERT_EQ_STR("clf", json_string_value(json_object_get(a, "model")));
    ASSERT_EQ_INT(3, json_integer_value(json_object_get(a, "model_version")));
    ASSERT_EQ_INT(2, json_integer_value(json_object_get(a, "rows")));
    ASSERT_EQ_INT(2, json_array_size(json_object_get(a, "inputs")));
    json_t *out = json_object_get(a, "outputs");
    ASSERT_EQ_INT(2, json_array_size(out));
    ASSERT_NEAR(0.7f, (float)json_real_value(json_array_get(json_array_get(out, 0), 2)), 0.0);
    ASSERT_EQ_INT(0, json_integer_value(json_array_get(json_object_get(a, "classes"), 1)));
    json_t *b = lines[1];
    ASSERT_EQ_STR("a\"b\\c\n??", json_string_value(json_object_get(b, "request_id")));
    ASSERT(json_object_get(b, "classes") == NULL);
    json_decref(lines[0]);
    json_decref(lines[1]);
}

TEST(floats_round_trip)
{
    enum { N = 4096 };
    static float x[N], y[N];
    test_rng_state = 1234;
    fprintf(stderr, "seed 1234\n");
    for (int i = 0; i < N; i++) {
        /* Any bit pattern: denormals, huge, tiny, both signs. */
        uint32_t bits = (uint32_t)test_rng_u64();
        memcpy(&x[i], &bits, sizeof bits);
        if (!isfinite(x[i])) x[i] = (float)(test_rng01() - 0.5);
        y[i] = (float)test_rng01();
    }
    float special[] = {0.0f, -0.0f, 1.0f / 3.0f, 0.1f, 16777217.0f, 3.4028235e38f, -3.4028235e38f,
                       1.17549435e-38f, 1.4e-45f, -1.4e-45f, 1e-7f, 123456.789f};
    memcpy(x, special, sizeof special);
    x[100] = NAN;
    x[101] = INFINITY;
    const char *dir = fresh_dir("floats");
    struct kiln_predlog_options o = {.dir = dir, .sample = 1.0};
    struct kiln_predlog *l = NULL;
    ASSERT_OK(kiln_predlog_open(&o, &l));
    kiln_predlog_record(l, "f", x, N / 64, 64, y, 64, NULL);
    kiln_predlog_close(l);
    struct got g = {0};
    ASSERT_OK(kiln_predlog_read(dir, got_rows, &g));
    ASSERT_EQ_INT(N / 64, g.rows);
    ASSERT_EQ_INT(64, g.width);
    ASSERT_EQ_INT(0, g.with_classes);
    for (int i = 0; i < N; i++) {
        if (i == 100 || i == 101) {
            /* JSON has no NaN or Inf: written as null, read as NaN. */
            ASSERT(isnan(g.x[i]));
            continue;
        }
        if (memcmp(&x[i], &g.x[i], sizeof(float)) != 0)
            TEST_FAIL("value %d: wrote %.9g, read %.9g", i, (double)x[i], (double)g.x[i]);
    }
    got_free(&g);
}

TEST(redaction)
{
    const char *dir = fresh_dir("redact");
    struct kiln_predlog_options o = {.dir = dir, .sample = 1.0, .redact = true};
    struct kiln_predlog *l = NULL;
    ASSERT_OK(kiln_predlog_open(&o, &l));
    record_n(l, 10);
    kiln_predlog_close(l);
    json_t *lines[16] = {0};
    ASSERT_EQ_INT(10, read_lines(test_path("redact/predictions.jsonl"), lines, 16));
    for (int i = 0; i < 10; i++) {
        ASSERT(lines[i]);
        ASSERT(json_object_get(lines[i], "inputs") == NULL);
        ASSERT(json_object_get(lines[i], "outputs") != NULL);
        json_decref(lines[i]);
    }
    struct got g = {0};
    ASSERT_OK(kiln_predlog_read(dir, got_rows, &g));
    ASSERT_EQ_INT(10, g.records);
    ASSERT_EQ_INT(10, g.redacted);
    ASSERT_EQ_INT(10, g.with_classes);
    for (int i = 0; i < 10; i++) ASSERT_EQ_INT(i % 3, g.classes[i]);
    got_free(&g);
}

TEST(rotation_and_retention)
{
    const char *dir = fresh_dir("rot");
    /* Lines of about 150 bytes: about 6 to a 1000-byte file. */
    struct kiln_predlog_options o = {.dir = dir, .sample = 1.0, .max_file_bytes = 1000,
                                     .max_files = 3, .model_name = "m"};
    struct kiln_predlog *l = NULL;
    ASSERT_OK(kiln_predlog_open(&o, &l));
    record_n(l, 200);
    kiln_predlog_close(l);
    ASSERT_EQ_INT(3, count_files(dir, "predictions-"));
    ASSERT_EQ_INT(4, count_files(dir, "predictions"));
    DIR *d = opendir(dir);
    ASSERT(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        int64_t size = file_size(p);
        if (!(size > 0 && size <= 1000)) {
            closedir(d);
            TEST_FAIL("%s is %lld bytes, the limit 1000", e->d_name, (long long)size);
        }
    }
    closedir(d);
    /* What is left is the newest records, read oldest first without a gap. */
    struct got g = {0};
    ASSERT_OK(kiln_predlog_read(dir, got_rows, &g));
    ASSERT(g.rows > 3 * 3 && g.rows < 200);
    for (int64_t i = 0; i < g.rows; i++) ASSERT_NEAR((double)(200 - g.rows + i), g.x[2 * i], 0.0);
    got_free(&g);

    /* A second run in the folder continues the rotation sequence: its files
     * sort after the first run's, and retention still keeps 3. */
    ASSERT_OK(kiln_predlog_open(&o, &l));
    struct kiln_predlog_counts before = kiln_predlog_counts(l);
    ASSERT_EQ_INT(0, before.rotations);
    float x[2] = {1000.0f, 0.0f}, y[2] = {0.5f, 0.5f};
    for (int i = 0; i < 20; i++) kiln_predlog_record(l, "again", x, 1, 2, y, 2, NULL);
    kiln_predlog_close(l);
    ASSERT_EQ_INT(3, count_files(dir, "predictions-"));
    ASSERT_OK(kiln_predlog_read(dir, got_rows, &g));
    ASSERT_NEAR(1000.0, g.x[2 * (g.rows - 1)], 0.0);
    int64_t first_new = -1;
    for (int64_t i = 0; i < g.rows; i++)
        if (g.x[2 * i] == 1000.0f && first_new < 0) first_new = i;
    for (int64_t i = first_new; i < g.rows; i++) ASSERT_NEAR(1000.0, g.x[2 * i], 0.0);
    got_free(&g);
}

struct thread_arg {
    struct kiln_predlog *l;
    int t;
};

enum { THREADS = 8, PER_THREAD = 500 };

static void *record_thread(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < PER_THREAD; i++) {
        char id[32];
        snprintf(id, sizeof id, "t%d-%d", a->t, i);
        float x[3] = {(float)a->t, (float)i, (float)(a->t * 1000 + i)}, y[1] = {(float)i};
        int32_t c = a->t;
        kiln_predlog_record(a->l, id, x, 1, 3, y, 1, &c);
    }
    return NULL;
}

TEST(concurrent_recording)
{
    const char *dir = fresh_dir("conc");
    /* Rotating, but keeping every file. */
    struct kiln_predlog_options o = {.dir = dir, .sample = 1.0, .max_file_bytes = 100000,
                                     .max_files = 100};
    struct kiln_predlog *l = NULL;
    ASSERT_OK(kiln_predlog_open(&o, &l));
    pthread_t th[THREADS];
    struct thread_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct thread_arg){l, t};
        ASSERT(pthread_create(&th[t], NULL, record_thread, &args[t]) == 0);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    kiln_predlog_close(l);
    /* Counts after close, when the writer has drained the queue. */
    struct got g = {0};
    ASSERT_OK(kiln_predlog_read(dir, got_rows, &g));
    ASSERT_EQ_INT(THREADS * PER_THREAD, g.rows);
    /* Every (thread, i) exactly once, each line's values its own. */
    static char seen[THREADS][PER_THREAD];
    memset(seen, 0, sizeof seen);
    for (int64_t r = 0; r < g.rows; r++) {
        int t = (int)g.x[3 * r], i = (int)g.x[3 * r + 1];
        ASSERT(t >= 0 && t < THREADS && i >= 0 && i < PER_THREAD);
        ASSERT_NEAR((double)(t * 1000 + i), g.x[3 * r + 2], 0.0);
        ASSERT_EQ_INT(t, g.classes[r]);
        ASSERT(!seen[t][i]);
        seen[t][i] = 1;
    }
    got_free(&g);
    ASSERT(count_files(dir, "predictions-") >= 1);
}

TEST(concurrent_counts)
{
    const char *dir = fresh_dir("conc2");
    struct kiln_predlog_options o = {.dir = dir, .sample = 0.5, .seed = 9};
    struct kiln_predlog *l = NULL;
    ASSERT_OK(kiln_predlog_open(&o, &l));
    pthread_t th[THREADS];
    struct thread_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct thread_arg){l, t};
        ASSERT(pthread_create(&th[t], NULL, record_thread, &args[t]) == 0);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    /* kiln_predlog_counts is a snapshot; it may be read while writing. */
    struct kiln_predlog_counts mid = kiln_predlog_counts(l);
    ASSERT(mid.written <= mid.sampled);
    kiln_predlog_close(l);
    struct got g = {0};
    ASSERT_OK(kiln_predlog_read(dir, got_rows, &g));
    /* 4000 requests at 0.5: sd 31.6; the lines are exactly those sampled. */
    ASSERT_EQ_INT(mid.sampled, g.rows);
    ASSERT_NEAR(2000.0, (double)g.rows, 5 * 31.63);
    got_free(&g);
}

TEST(full_queue_drops)
{
    const char *dir = fresh_dir("drop");
    struct kiln_predlog_options o = {.dir = dir, .sample = 1.0};
    struct kiln_predlog *l = NULL;
    ASSERT_OK(kiln_predlog_open(&o, &l));
    int64_t one = predlog_record_bytes(l, "r0", 1, 2, 2, true);
    ASSERT(one > 0);
    /* Room for exactly three records, and a writer that does not drain. */
    predlog_test_set_queue_bytes(l, 3 * one);
    predlog_test_hold_writer(l, true);
    record_n(l, 10);
    struct kiln_predlog_counts c = kiln_predlog_counts(l);
    ASSERT_EQ_INT(3, c.sampled);
    ASSERT_EQ_INT(7, c.dropped);
    ASSERT_EQ_INT(0, c.written);
    predlog_test_hold_writer(l, false);
    /* A record larger than the whole queue bound is dropped, never queued. */
    static float big[4096];
    kiln_predlog_record(l, "big", big, 64, 64, big, 1, NULL);
    kiln_predlog_close(l);
    struct got g = {0};
    ASSERT_OK(kiln_predlog_read(dir, got_rows, &g));
    ASSERT_EQ_INT(3, g.rows);
    for (int i = 0; i < 3; i++) ASSERT_NEAR((double)i, g.x[2 * i], 0.0);
    got_free(&g);
}

static atomic_int warnings;
static void count_warnings(enum kiln_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == KILN_LOG_WARN && strstr(msg, "prediction log")) atomic_fetch_add(&warnings, 1);
}

TEST(write_errors_are_counted)
{
    /* /dev/full opens, and every write fails with ENOSPC. */
    if (access("/dev/full", W_OK) != 0) SKIP("no /dev/full");
    const char *dir = fresh_dir("full");
    ASSERT(mkdir(dir, 0755) == 0);
    ASSERT(symlink("/dev/full", test_path("full/predictions.jsonl")) == 0);
    struct kiln_predlog_options o = {.dir = dir, .sample = 1.0};
    struct kiln_predlog *l = NULL;
    ASSERT_OK(kiln_predlog_open(&o, &l));
    atomic_store(&warnings, 0);
    kiln_log_set_sink(count_warnings, NULL);
    record_n(l, 5);
    /* The writer works behind the caller: wait for it to get through. */
    struct kiln_predlog_counts c = {0};
    for (int i = 0; i < 5000; i++) {
        c = kiln_predlog_counts(l);
        if (c.errors + c.written == 5) break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    kiln_predlog_close(l);
    kiln_log_set_sink(NULL, NULL);
    /* Counted every time, logged once; the caller never saw a thing. */
    ASSERT_EQ_INT(5, c.sampled);
    ASSERT_EQ_INT(5, c.errors);
    ASSERT_EQ_INT(0, c.written);
    ASSERT_EQ_INT(1, atomic_load(&warnings));
}

TEST(torn_last_line_cut)
{
    /* A machine crash can leave a line without its end: reopening cuts it
     * off, so the next line starts on a line of its own. */
    const char *dir = fresh_dir("torn");
    ASSERT(mkdir(dir, 0755) == 0);
    const char *good = "{\"rows\":1,\"inputs\":[[7,7]],\"outputs\":[[1]]}\n";
    char text[256];
    snprintf(text, sizeof text, "%s%s{\"rows\":1,\"inp", good, good);
    test_write_text(test_path("torn/predictions.jsonl"), text);
    struct kiln_predlog_options o = {.dir = dir, .sample = 1.0};
    struct kiln_predlog *l = NULL;
    ASSERT_OK(kiln_predlog_open(&o, &l));
    record_n(l, 1);
    kiln_predlog_close(l);
    struct got g = {0};
    ASSERT_OK(kiln_predlog_read(dir, got_rows, &g));
    ASSERT_EQ_INT(3, g.rows);
    ASSERT_NEAR(7.0, g.x[2], 0.0);
    ASSERT_NEAR(0.0, g.x[4], 0.0);
    got_free(&g);
    /* A file that is one unfinished line is emptied. */
    test_write_text(test_path("torn/predictions.jsonl"), "{\"rows\"");
    ASSERT_OK(kiln_predlog_open(&o, &l));
    kiln_predlog_close(l);
    ASSERT_EQ_INT(0, file_size(test_path("torn/predictions.jsonl")));
}

TEST(unwritable_folder)
{
    struct kiln_predlog *l = NULL;
    /* A folder under a regular file cannot be made. */
    test_write_text(test_path("plainfile"), "x");
    struct kiln_predlog_options o = {.dir = test_path("plainfile/log"), .sample = 1.0};
    ASSERT_STATUS(KILN_ERR_IO, kiln_predlog_open(&o, &l), "plainfile");
    ASSERT(l == NULL);
    /* The active file's name taken by a folder. */
    const char *dir = fresh_dir("taken");
    ASSERT(mkdir(dir, 0755) == 0);
    ASSERT(mkdir(test_path("taken/predictions.jsonl"), 0755) == 0);
    o.dir = dir;
    ASSERT_STATUS(KILN_ERR_IO, kiln_predlog_open(&o, &l), "predictions.jsonl");
    /* A read-only folder (root writes through permissions). */
    if (geteuid() != 0) {
        const char *ro = fresh_dir("ro");
        ASSERT(mkdir(ro, 0555) == 0);
        o.dir = ro;
        ASSERT_STATUS(KILN_ERR_IO, kiln_predlog_open(&o, &l), "not writable");
        chmod(ro, 0755);
    }
    struct kiln_predlog_options none = {.dir = NULL, .sample = 1.0};
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_predlog_open(&none, &l), "no folder");
    /* NULL is fine for close and record. */
    kiln_predlog_close(NULL);
    kiln_predlog_record(NULL, "x", NULL, 0, 0, NULL, 0, NULL);
}

TEST(reader_refuses_malformed_lines)
{
    const char *good = "{\"rows\":1,\"inputs\":[[1,2]],\"outputs\":[[0.5]],\"classes\":[0]}\n";
    struct {
        const char *name, *text, *needle;
    } cases[] = {
        {"notjson.jsonl", "%s{\"rows\":1,\n", "notjson.jsonl:2: not JSON"},
        {"trunc.jsonl", "%s%s{\"rows\":1,\"inputs\":[[1,2]],\"outp", "trunc.jsonl:3: not JSON"},
        {"norows.jsonl", "%s{\"outputs\":[]}\n", "norows.jsonl:2: no \"rows\""},
        {"array.jsonl", "[1,2]\n", "array.jsonl:1: not a JSON object"},
        {"ragged.jsonl", "{\"rows\":2,\"inputs\":[[1,2],[3]],\"outputs\":[[0],[1]]}\n",
         "ragged.jsonl:1: \"inputs\" row 1 has 1 values, row 0 has 2"},
        {"count.jsonl", "{\"rows\":3,\"outputs\":[[0],[1]]}\n",
         "count.jsonl:1: \"outputs\" has 2 rows, \"rows\" says 3"},
        {"text.jsonl", "{\"rows\":1,\"inputs\":[[1,\"a\"]],\"outputs\":[[0]]}\n",
         "text.jsonl:1: \"inputs\"[0][1] is not a number"},
        {"class.jsonl", "{\"rows\":1,\"outputs\":[[0]],\"classes\":[1.5]}\n",
         "class.jsonl:1: \"classes\"[0] is not a class index"},
        {"dup.jsonl", "{\"rows\":1,\"rows\":1,\"outputs\":[[0]]}\n", "dup.jsonl:1: not JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, cases[i].text, good, good);
        test_write_text(test_path(cases[i].name), text);
        struct got g = {0};
        ASSERT_STATUS(KILN_ERR_FORMAT, kiln_predlog_read(test_path(cases[i].name), got_rows, &g),
                      cases[i].needle);
        got_free(&g);
    }
    /* Blank lines and a last line without its newline are fine; null is NaN. */
    test_write_text(test_path("ok.jsonl"),
                    "\n{\"rows\":1,\"inputs\":[[null,2]],\"outputs\":[[0]]}\n  \n"
                    "{\"rows\":1,\"inputs\":[[3,4]],\"outputs\":[[0]],\"extra\":1}");
    struct got g = {0};
    ASSERT_OK(kiln_predlog_read(test_path("ok.jsonl"), got_rows, &g));
    ASSERT_EQ_INT(2, g.rows);
    ASSERT(isnan(g.x[0]));
    ASSERT_NEAR(4.0, g.x[3], 0.0);
    got_free(&g);
    /* The callback's failure stops the read and is placed. */
    g.fail_after = 2;
    ASSERT_STATUS(KILN_ERR_SHAPE, kiln_predlog_read(test_path("ok.jsonl"), got_rows, &g),
                  "ok.jsonl:4: callback refused record 2");
    got_free(&g);
    /* An absurd line is refused by length, before it is parsed. */
    char line[400];
    memset(line, ' ', sizeof line);
    line[sizeof line - 1] = '\0';
    test_write_text(test_path("long.jsonl"), line);
    predlog_test_set_max_line(100);
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_predlog_read(test_path("long.jsonl"), got_rows, &g),
                  "long.jsonl:1: line longer than 100 bytes");
    predlog_test_set_max_line((size_t)4 * KILN_PREDLOG_QUEUE_BYTES + ((size_t)1 << 20));
    /* Nothing to read. */
    ASSERT_STATUS(KILN_ERR_IO, kiln_predlog_read(test_path("nosuch.jsonl"), got_rows, &g),
                  "nosuch.jsonl");
    const char *empty = fresh_dir("empty");
    ASSERT(mkdir(empty, 0755) == 0);
    ASSERT_STATUS(KILN_ERR_IO, kiln_predlog_read(empty, got_rows, &g), "no predictions*.jsonl");
    got_free(&g);
}

int main(void)
{
    snprintf(test_tmpdir, sizeof test_tmpdir, "/tmp/kiln-test-predlog-XXXXXX");
    if (!mkdtemp(test_tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(sampling_shares);
    RUN(line_format);
    RUN(floats_round_trip);
    RUN(redaction);
    RUN(rotation_and_retention);
    RUN(concurrent_recording);
    RUN(concurrent_counts);
    RUN(full_queue_drops);
    RUN(write_errors_are_counted);
    RUN(torn_last_line_cut);
    RUN(unwritable_folder);
    RUN(reader_refuses_malformed_lines);
    nftw(test_tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_summary();
}
