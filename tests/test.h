/* tests/test.h: a tiny harness. Each test file is one executable that runs
 * its cases in order and exits non-zero at the first failure; ctest runs each
 * executable in its own process with a timeout.
 *
 *   TEST(dense_forward) { ASSERT_EQ_INT(2, 1 + 1); ASSERT_NEAR(1.0, x, 1e-6); }
 *   int main(void) { RUN(dense_forward); return test_summary(); }
 *
 * Failed assertions print both sides with file and line. A test that needs
 * something this machine lacks calls SKIP("why"): the executable then exits
 * 77, which ctest reports as skipped (never as passed).
 */
#ifndef KILN_TEST_H
#define KILN_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/status.h"

static int test_failures;
static int test_skips;
static int test_count;
static int test_current_failed;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                              \
    do {                                                                       \
        test_current_failed = 0;                                               \
        test_count++;                                                          \
        fprintf(stderr, "-- %s\n", #name);                                     \
        test_##name();                                                         \
        if (test_current_failed) test_failures++;                              \
    } while (0)

#define TEST_FAIL(...)                                                         \
    do {                                                                       \
        fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);                  \
        fprintf(stderr, __VA_ARGS__);                                          \
        fprintf(stderr, "\n");                                                 \
        test_current_failed = 1;                                               \
        return;                                                                \
    } while (0)

#define SKIP(why)                                                              \
    do {                                                                       \
        fprintf(stderr, "SKIP: %s\n", why);                                    \
        test_skips++;                                                          \
        return;                                                                \
    } while (0)

#define ASSERT(cond)                                                           \
    do {                                                                       \
        if (!(cond)) TEST_FAIL("%s", #cond);                                   \
    } while (0)

#define ASSERT_OK(expr)                                                        \
    do {                                                                       \
        enum kiln_status st_ = (expr);                                         \
        if (st_ != KILN_OK)                                                    \
            TEST_FAIL("%s returned %s: %s", #expr, kiln_status_name(st_),      \
                      kiln_last_error());                                      \
    } while (0)

/* Asserts that expr fails with status want and that the message contains
 * needle (NULL: any message). */
#define ASSERT_STATUS(want, expr, needle)                                      \
    do {                                                                       \
        enum kiln_status st_ = (expr);                                         \
        if (st_ != (want))                                                     \
            TEST_FAIL("%s returned %s, expected %s (message: %s)", #expr,      \
                      kiln_status_name(st_), kiln_status_name(want),           \
                      kiln_last_error());                                      \
        const char *needle_ = (needle);                                        \
        if (needle_ && !strstr(kiln_last_error(), needle_))                    \
            TEST_FAIL("message of %s lacks '%s': %s", #expr, needle_,          \
                      kiln_last_error());                                      \
    } while (0)

#define ASSERT_EQ_INT(want, got)                                               \
    do {                                                                       \
        long long w_ = (long long)(want), g_ = (long long)(got);               \
        if (w_ != g_) TEST_FAIL("%s == %s: expected %lld, got %lld", #want, #got, w_, g_); \
    } while (0)

#define ASSERT_EQ_STR(want, got)                                               \
    do {                                                                       \
        const char *w_ = (want), *g_ = (got);                                  \
        if (!w_ || !g_ || strcmp(w_, g_) != 0)                                 \
            TEST_FAIL("%s == %s: expected \"%s\", got \"%s\"", #want, #got,    \
                      w_ ? w_ : "(null)", g_ ? g_ : "(null)");                 \
    } while (0)

#define ASSERT_NEAR(want, got, tol)                                            \
    do {                                                                       \
        double w_ = (double)(want), g_ = (double)(got);                        \
        if (!(fabs(w_ - g_) <= (tol)))                                         \
            TEST_FAIL("%s ~ %s: expected %.9g, got %.9g (tol %.3g)", #want,    \
                      #got, w_, g_, (double)(tol));                            \
    } while (0)

/* A per-test-program temp folder (fill test_tmpdir with mkdtemp) and files in it. */
static char test_tmpdir[256];

/* test_tmpdir/name; the result stays valid for the next 7 calls. */
static inline const char *test_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, 512, "%s/%s", test_tmpdir, name);
    return b;
}

static inline void test_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fputs(text, f);
    fclose(f);
}

/* Test inputs: SplitMix64 steps from a seed the test prints, so any failure
 * can be replayed. */
static uint64_t test_rng_state;

static inline uint64_t test_rng_u64(void)
{
    uint64_t z = (test_rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): never 0, so log() of it is finite. */
static inline double test_rng01(void)
{
    return ((double)(test_rng_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static inline int test_summary(void)
{
    fprintf(stderr, "%d tests, %d failed, %d skipped\n", test_count, test_failures, test_skips);
    if (test_failures) return 1;
    if (test_skips && test_skips == test_count) return 77;
    return 0;
}

#endif
