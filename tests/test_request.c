/* tests/test_request.c: the infer request parser's data lane
 * (engine/serve/request.c) against yajl reading every byte: random valid
 * bodies (numbers of every JSON form, white space, nested and empty arrays)
 * give bit-identical rows whether the lane is on or off and however the body
 * is cut into pieces, one byte at a time included; malformed data is refused
 * either way, with a 400 and the lane's byte offset. The end-to-end parser
 * cases (through HTTP) are in tests/serve/serve_check.py. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve-internal.h"
#include "test.h"

#define WIDTH 4

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n) /* uniform enough in [0, n) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* A growable string. */
struct text {
    char *s;
    size_t len, cap;
};

static void put(struct text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->s = realloc(t->s, t->cap);
        if (!t->s) abort();
    }
    memcpy(t->s + t->len, s, n + 1);
    t->len += n;
}

static void put_space(struct text *t)
{
    static const char *ws[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};
    put(t, ws[rnd(7)]);
}

/* A random JSON number of the kinds clients send and the edges of the
 * grammar: integers, decimals of up to 20 digits (past the fast path's 15),
 * exponents with and without signs, -0, leading fraction zeros. */
static void put_number(struct text *t)
{
    char buf[96];
    int len = 0;
    if (rnd(4) == 0) buf[len++] = '-';
    int ints = (int)rnd(6);
    if (ints == 0) {
        buf[len++] = '0';
    } else {
        buf[len++] = (char)('1' + rnd(9));
        for (int i = 1; i < ints; i++) buf[len++] = (char)('0' + rnd(10));
    }
    if (rnd(3) != 0) {
        buf[len++] = '.';
        int fr = 1 + (int)rnd(18);
        for (int i = 0; i < fr; i++) buf[len++] = (char)('0' + (rnd(3) == 0 ? 0 : rnd(10)));
    }
    if (rnd(8) == 0) {
        buf[len++] = rnd(2) ? 'e' : 'E';
        int sign = (int)rnd(3);
        if (sign == 1) buf[len++] = '+';
        if (sign == 2) buf[len++] = '-';
        len += snprintf(buf + len, sizeof buf - (size_t)len, "%u", rnd(30));
    }
    buf[len] = '\0';
    put(t, buf);
}

/* A valid request of rows x WIDTH numbers; the data's rows are nested one
 * level deeper at random, with an empty array now and then. */
static void make_body(struct text *t, int rows)
{
    t->len = 0;
    char head[160];
    snprintf(head, sizeof head, "{\"inputs\":[{\"name\":\"input\",\"shape\":[%d,%d],"
             "\"datatype\":\"FP32\",\"data\":", rows, WIDTH);
    put(t, head);
    put_space(t);
    put(t, "[");
    for (int r = 0; r < rows; r++) {
        bool nest = rnd(2) == 0;
        if (r > 0) put(t, ",");
        put_space(t);
        if (nest) put(t, "[");
        for (int c = 0; c < WIDTH; c++) {
            if (c > 0) {
                put_space(t);
                put(t, ",");
            }
            put_space(t);
            if (rnd(40) == 0) put(t, "[],");
            put_number(t);
        }
        put_space(t);
        if (nest) put(t, "]");
    }
    put_space(t);
    put(t, "]}]}");
}

/* Parses body in pieces of piece bytes (0: whole), the lane on or off.
 * Returns the HTTP code (200 when the request is good) and copies the rows
 * to x (rows * WIDTH floats) and the message to err. */
static int parse(const char *body, size_t len, size_t piece, bool lane, float *x, int rows,
                 char *err, size_t err_len)
{
    struct serve_parser *p = NULL;
    if (serve_parser_create(WIDTH, 1000, true, &p) != KILN_OK) return -1;
    if (!lane) serve_parser_lane_off(p);
    if (piece == 0) piece = len;
    for (size_t at = 0; at < len; at += piece)
        if (!serve_parser_feed(p, body + at, len - at < piece ? len - at : piece)) break;
    int code = 200;
    if (serve_parser_finish(p)) {
        struct serve_infer_req *req = serve_parser_request(p);
        if (req->rows != rows) code = -2;
        else memcpy(x, req->x, (size_t)rows * WIDTH * sizeof *x);
        err[0] = '\0';
    } else {
        snprintf(err, err_len, "%s", serve_parser_error(p, &code));
    }
    serve_parser_free(p);
    return code;
}

TEST(random_bodies_same_rows_lane_on_off_any_pieces)
{
    struct text t = {0};
    float want[64 * WIDTH], got[64 * WIDTH];
    char err[1024];
    for (int round = 0; round < 300; round++) {
        int rows = 1 + (int)rnd(12);
        make_body(&t, rows);
        int code = parse(t.s, t.len, 0, false, want, rows, err, sizeof err);
        if (code != 200) TEST_FAIL("round %d: yajl alone refused: %d %s\n%s", round, code, err, t.s);
        size_t pieces[] = {0, 1, 2, 3, 5, 7, 13, 64, 1 + rnd(200)};
        for (size_t k = 0; k < sizeof pieces / sizeof *pieces; k++) {
            memset(got, 0xff, sizeof got);
            code = parse(t.s, t.len, pieces[k], true, got, rows, err, sizeof err);
            if (code != 200)
                TEST_FAIL("round %d, pieces of %zu: the lane refused: %d %s\n%s", round, pieces[k],
                          code, err, t.s);
            if (memcmp(want, got, (size_t)rows * WIDTH * sizeof *got) != 0) {
                for (int i = 0; i < rows * WIDTH; i++)
                    if (memcmp(&want[i], &got[i], sizeof *got) != 0)
                        TEST_FAIL("round %d, pieces of %zu: value %d is %a with the lane, %a "
                                  "without\n%s", round, pieces[k], i, (double)got[i],
                                  (double)want[i], t.s);
            }
        }
    }
    free(t.s);
}

/* Malformed data, each refused with a 400 by yajl alone and by the lane,
 * in one piece and a byte at a time. */
TEST(malformed_data_refused_either_way)
{
    static const char *bad[] = {
        "[1,2,3,4,]",    "[,1,2,3,4]",    "[1,,2,3,4]",     "[1 2,3,4]",     "[01,2,3,4]",
        "[1.,2,3,4]",    "[.5,2,3,4]",    "[-,2,3,4]",      "[1e,2,3,4]",    "[1e+,2,3,4]",
        "[+1,2,3,4]",    "[0x10,2,3,4]",  "[NaN,2,3,4]",    "[1,Infinity,3,4]", "[1,2,-Infinity,4]",
        "[1.2.3,2,3,4]", "[--1,2,3,4]",   "[1e5e5,2,3,4]",  "[1,2,3,4",      "[1,2,3,4}",
        "[1,2,3,4-]",    "[1,2,3,4.5.]",  "[[1,2],[3,4],]", "[1,2,3,4]]",    "[1,2,3,4e]",
        "[1,2,3,-]",     "[1,2,3,\"4\"]", "[1,2,3,null]",   "[1,2,3,4,,]",   "[1,2,3,4 5]",
    };
    char body[256], err[1024];
    float x[WIDTH];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int n = snprintf(body, sizeof body, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,4],"
                         "\"datatype\":\"FP32\",\"data\":%s}]}", bad[i]);
        for (int lane = 0; lane < 2; lane++)
            for (size_t piece = 0; piece < 2; piece++) {
                int code = parse(body, (size_t)n, piece, lane, x, 1, err, sizeof err);
                if (code != 400)
                    TEST_FAIL("data %s (lane %s, pieces of %zu): got %d, expected 400 (%s)", bad[i],
                              lane ? "on" : "off", piece, code, err);
            }
    }
    /* The lane's own refusals say where. */
    const char *trailing = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,4],\"datatype\":\"FP32\","
                           "\"data\":[1,2,3,4,]}]}";
    ASSERT(parse(trailing, strlen(trailing), 0, true, x, 1, err, sizeof err) == 400);
    char want[64];
    snprintf(want, sizeof want, "malformed JSON at byte %zu", strstr(trailing, ",]") - trailing + 1);
    if (!strstr(err, want)) TEST_FAIL("'%s' lacks '%s'", err, want);
    /* NaN still gets its hint when the lane hands it to yajl. */
    const char *nan = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,4],\"datatype\":\"FP32\","
                      "\"data\":[1,NaN,3,4]}]}";
    ASSERT(parse(nan, strlen(nan), 0, true, x, 1, err, sizeof err) == 400);
    if (!strstr(err, "no NaN or Infinity")) TEST_FAIL("NaN: '%s' lacks the hint", err);
    /* ... and when the lane refuses it itself ('-' starts a number). */
    const char *minf = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,4],\"datatype\":\"FP32\","
                       "\"data\":[1,-Infinity,3,4]}]}";
    ASSERT(parse(minf, strlen(minf), 0, true, x, 1, err, sizeof err) == 400);
    if (!strstr(err, "no NaN or Infinity")) TEST_FAIL("-Infinity: '%s' lacks the hint", err);
}

/* Valid bodies with a few bytes changed (to digits, signs, points,
 * exponents, commas, brackets, white space, letters) or cut short: the
 * lane and yajl alone must agree on every one, the same answer code and,
 * when accepted, the same rows bit for bit, in one piece and in random
 * pieces. */
TEST(mutated_bodies_agree)
{
    static const char alphabet[] = "0123456789-+.eE,[] \n{}\"naNI";
    struct text t = {0};
    float want[64 * WIDTH], got[64 * WIDTH];
    char err_off[1024], err_on[1024];
    int accepted = 0, refused = 0;
    for (int round = 0; round < 3000; round++) {
        int rows = 1 + (int)rnd(6);
        make_body(&t, rows);
        /* Mutate inside "data" mostly: that is the lane's ground. */
        size_t from = (size_t)(strstr(t.s, "\"data\"") - t.s);
        int edits = 1 + (int)rnd(3);
        for (int e = 0; e < edits; e++) {
            size_t at = from + rnd((uint32_t)(t.len - from));
            t.s[at] = alphabet[rnd(sizeof alphabet - 1)];
        }
        if (rnd(10) == 0) t.len = from + rnd((uint32_t)(t.len - from)); /* cut short */
        int off = parse(t.s, t.len, 0, false, want, rows, err_off, sizeof err_off);
        size_t pieces[] = {0, 1 + rnd(40)};
        for (size_t k = 0; k < 2; k++) {
            memset(got, 0xff, sizeof got);
            int on = parse(t.s, t.len, pieces[k], true, got, rows, err_on, sizeof err_on);
            if (on != off)
                TEST_FAIL("round %d, pieces of %zu: lane %d (%s), yajl alone %d (%s)\n%.*s", round,
                          pieces[k], on, err_on, off, err_off, (int)t.len, t.s);
            if (on == 200 && memcmp(want, got, (size_t)rows * WIDTH * sizeof *got) != 0)
                TEST_FAIL("round %d, pieces of %zu: accepted, with other values\n%.*s", round,
                          pieces[k], (int)t.len, t.s);
        }
        if (off == 200) accepted++;
        else refused++;
    }
    fprintf(stderr, "   %d mutated bodies accepted, %d refused, alike\n", accepted, refused);
    ASSERT(accepted > 100 && refused > 100);
    free(t.s);
}

/* Numbers up to 1024 characters are read, longer ones refused, however
 * the pieces fall; the value is strtod's. */
TEST(long_numbers)
{
    struct text t = {0};
    char err[1024];
    float x[WIDTH];
    for (int len = 1020; len <= 1030; len += 10) {
        t.len = 0;
        put(&t, "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2,3,0.");
        for (int i = 2; i < len - 1; i++) put(&t, "0");
        put(&t, "5]}]}");
        for (int lane = 0; lane < 2; lane++)
            for (size_t piece = 0; piece < 600; piece += 299) {
                int code = parse(t.s, t.len, piece, lane, x, 1, err, sizeof err);
                if (len <= 1024 && (code != 200 || x[3] != 0.0f))
                    TEST_FAIL("a %d-character number: %d %s", len, code, err);
                if (len > 1024 && (code != 400 || !strstr(err, "more than 1024")))
                    TEST_FAIL("a %d-character number: %d %s", len, code, err);
            }
    }
    free(t.s);
}

int main(void)
{
    RUN(random_bodies_same_rows_lane_on_off_any_pieces);
    RUN(malformed_data_refused_either_way);
    RUN(mutated_bodies_agree);
    RUN(long_numbers);
    return test_summary();
}
