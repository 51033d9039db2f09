/* engine/serve/request.c: infer request bodies (serve-internal.h): the
 * Open Inference Protocol's JSON read with yajl's callback (SAX) parser, as
 * the body arrives, straight into the request's float rows.
 *
 * Why yajl and not jansson (which the server uses for everything else): a
 * 64-row Fashion-MNIST request is ~640 KB of JSON holding 50,176 numbers.
 * jansson's json_loadb took 28 ms on it (a json_t allocated per number, each
 * number converted through a locale-safe copy), which held the server at
 * ~0.07x of kiln score's rows/s. yajl's yajl_number callback hands over each
 * number's text, which becomes a float in place: 5.5 ms on the same body,
 * with no allocation per number (measured on this 2-core machine, best of
 * 20). Streaming also means the JSON body is never buffered whole.
 *
 * The data lane: yajl's lexer still cost 31% of the server's CPU on such
 * a body and number conversion 20% (perf, docs/SERVING.md), so a flat run
 * of numbers inside "data" is read by req_lane, one pass that checks each
 * number's JSON syntax and converts it, while yajl reads everything else.
 * The body is fed to yajl in pieces that end at each '[': when the piece's
 * last token opened a data array, yajl stands at the array's start, and the
 * lane takes the numbers and commas that follow. At the first byte that is
 * not one of them (']', a nested '[', null, ...), yajl resumes from the
 * same state, having seen an array start and nothing since: from its side
 * the elements the lane took never were, and what it reads next is still
 * valid or invalid exactly as in the whole document, except a ',' before
 * ']', which the lane refuses itself.
 *
 * Numbers become float32 as the CSV reader's data_parse_f32 makes them
 * (strtod, then rounded to float), so a row sent as JSON text scores as the
 * same row read by kiln predict from a CSV. Values that round to infinity
 * are refused.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "serve/serve-internal.h"

/* Containers nest at most this deep anywhere in a request: the protocol
 * needs 4 ({"inputs": [{"data": [[...]]}]}) plus what a client's own
 * "parameters" hold; deeper is refused rather than followed. */
#define REQ_MAX_DEPTH 32
/* The longest number the data may hold: far past any float's shortest
 * form (at most 9 significant digits and an exponent) and past what a
 * careless client prints, small enough to keep across two body pieces. */
#define REQ_MAX_NUMBER 1024
#define REQ_HTTP_BAD 400
#define REQ_HTTP_NOMEM 500

/* What the next value in the document is: from the key just read in an
 * object, or from the array it is an element of. */
enum req_slot {
    SLOT_ROOT,
    SLOT_SKIP,                   /* a value nobody asked about (any depth) */
    SLOT_ID,                     /* "id" */
    SLOT_INPUTS,                 /* "inputs" */
    SLOT_OUTPUTS,                /* "outputs" */
    SLOT_PARAMS,                 /* the request's "parameters" */
    SLOT_BIN_OUT,                /* parameters.binary_data_output */
    SLOT_INPUT,                  /* an element of "inputs" */
    SLOT_IN_NAME,
    SLOT_IN_DTYPE,
    SLOT_IN_SHAPE,
    SLOT_IN_DATA,
    SLOT_IN_PARAMS,
    SLOT_IN_BIN_SIZE,            /* inputs[0].parameters.binary_data_size */
    SLOT_SHAPE_ELEM,
    SLOT_DATA_ELEM,              /* a number, or a nested array of them */
    SLOT_OUTPUT,                 /* an element of "outputs" */
    SLOT_OUT_NAME,
    SLOT_OUT_PARAMS,
    SLOT_OUT_BIN,                /* outputs[i].parameters.binary_data */
};

enum req_frame_kind {
    FRAME_SKIP,                  /* inside a skipped value */
    FRAME_TOP,                   /* the request object */
    FRAME_PARAMS,                /* its "parameters" */
    FRAME_INPUTS,
    FRAME_INPUT,                 /* inputs[0] */
    FRAME_IN_PARAMS,
    FRAME_SHAPE,
    FRAME_DATA,
    FRAME_OUTPUTS,
    FRAME_OUTPUT,
    FRAME_OUT_PARAMS,
};

struct req_frame {
    enum req_frame_kind kind;
    enum req_slot slot;          /* what this container's next value is */
    uint32_t seen;               /* slots already read here (1 << slot): duplicates refused */
};

struct serve_parser {
    /* The model. */
    int64_t raw, max_rows;
    bool classifier;
    /* The document. */
    yajl_handle h;
    struct req_frame st[REQ_MAX_DEPTH + 1];
    int depth;                   /* frames open; 0 before the root value */
    bool root_seen;
    int64_t fed;                 /* bytes fed before the current chunk */
    char tail[16];               /* the last bytes fed, for the NaN hint */
    size_t tail_len;
    /* The request. */
    struct serve_infer_req req;
    int64_t n_inputs, n_outputs;
    bool in_name, in_dtype, in_shape, in_data, all_bin;
    int64_t shape[2];
    int n_shape;
    bool shape_bad;              /* an element not an integer, or a non-array shape */
    char shape_text[80];         /* the shape as sent, for messages */
    int64_t cap;                 /* floats x holds */
    int64_t n;                   /* values read into x */
    int64_t bin_size;            /* binary_data_size; -1 absent, -2 not an integer */
    char out_name[201];          /* the output being read */
    size_t out_name_len;
    bool out_named, out_bin;
    /* The data lane (req_lane). */
    bool lane_off;               /* everything through yajl (tests, the parse bench) */
    bool lane_ready;             /* yajl's last token opened a data array */
    bool in_lane;                /* the lane reads the bytes that come */
    bool lane_value_next;        /* a number comes next, not ',' or ']' */
    bool lane_comma;             /* the lane read a ',' in this array */
    char num[REQ_MAX_NUMBER];    /* a number cut by the end of a piece */
    size_t num_len;
    /* The outcome. */
    bool failed;
    int code;
    char err[1024];
};

static bool req_fail(struct serve_parser *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool req_fail(struct serve_parser *p, int code, const char *fmt, ...)
{
    if (p->failed) return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    p->failed = true;
    p->code = code;
    return false;
}

static enum req_slot req_slot_now(const struct serve_parser *p)
{
    return p->depth == 0 ? SLOT_ROOT : p->st[p->depth - 1].slot;
}

/* Opens a container of kind; its first value is slot (arrays) or set by
 * the keys that follow (objects). */
static bool req_push(struct serve_parser *p, enum req_frame_kind kind, enum req_slot slot)
{
    if (p->depth >= REQ_MAX_DEPTH)
        return req_fail(p, REQ_HTTP_BAD, "the request nests JSON deeper than %d levels",
                        REQ_MAX_DEPTH);
    p->st[p->depth++] = (struct req_frame){.kind = kind, .slot = slot};
    return true;
}

/* The slot an object's key names. Keys nobody reads are skipped, with
 * whatever they hold. */
static enum req_slot req_key_slot(enum req_frame_kind kind, const char *k, size_t n)
{
#define KEY_IS(lit) (n == sizeof lit - 1 && !memcmp(k, lit, n))
    switch (kind) {
    case FRAME_TOP:
        if (KEY_IS("inputs")) return SLOT_INPUTS;
        if (KEY_IS("outputs")) return SLOT_OUTPUTS;
        if (KEY_IS("id")) return SLOT_ID;
        if (KEY_IS("parameters")) return SLOT_PARAMS;
        break;
    case FRAME_PARAMS:
        if (KEY_IS("binary_data_output")) return SLOT_BIN_OUT;
        break;
    case FRAME_INPUT:
        if (KEY_IS("data")) return SLOT_IN_DATA;
        if (KEY_IS("name")) return SLOT_IN_NAME;
        if (KEY_IS("shape")) return SLOT_IN_SHAPE;
        if (KEY_IS("datatype")) return SLOT_IN_DTYPE;
        if (KEY_IS("parameters")) return SLOT_IN_PARAMS;
        break;
    case FRAME_IN_PARAMS:
        if (KEY_IS("binary_data_size")) return SLOT_IN_BIN_SIZE;
        break;
    case FRAME_OUTPUT:
        if (KEY_IS("name")) return SLOT_OUT_NAME;
        if (KEY_IS("parameters")) return SLOT_OUT_PARAMS;
        break;
    case FRAME_OUT_PARAMS:
        if (KEY_IS("binary_data")) return SLOT_OUT_BIN;
        break;
    default: break;
    }
    return SLOT_SKIP;
#undef KEY_IS
}

static void req_shape_note(struct serve_parser *p, const char *text, size_t n)
{
    size_t at = strlen(p->shape_text);
    if (at + 1 >= sizeof p->shape_text) return;
    snprintf(p->shape_text + at, sizeof p->shape_text - at, "%s%.*s",
             at > 1 && p->shape_text[at - 1] != '[' ? "," : "", (int)n, text);
}

/* A JSON integer token's value; false for fractions, exponents and
 * values past int64. */
static bool req_token_int(const char *s, size_t n, int64_t *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf) return false;
    for (size_t i = s[0] == '-'; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno) return false;
    *out = v;
    return true;
}

/* The value of the JSON number s[0..n), correctly rounded to double as
 * strtod rounds it; false when the text is not a JSON number
 * (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?), which only the lane can
 * hand over: yajl checks its own. Clinger's fast path: a number of at most
 * 15 digits with no exponent is an exact integer m over an exact power of
 * ten 10^f (f <= 15), so the one correctly rounded division m / 10^f is the
 * double strtod returns, bit for bit (-0 included), at a fraction of its
 * cost: strtod was over half of the parse. Pixels ("0", "0.5294118") all
 * take it; the rest go to strtod. */
static inline bool req_number(const char *s, size_t n, double *out)
{
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
#define REQ_DIGIT(c) ((unsigned)((unsigned char)(c) - '0') < 10)
    size_t i = s[0] == '-', digits = 0, frac = 0;
    uint64_t m = 0; /* wraps past 19 digits, then unused */
    if (i == n || !REQ_DIGIT(s[i])) return false;
    if (s[i] == '0') {
        i++, digits++;
    } else {
        for (; i < n && REQ_DIGIT(s[i]); i++, digits++) m = m * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < n && s[i] == '.') {
        size_t first = ++i;
        for (; i < n && REQ_DIGIT(s[i]); i++, frac++) m = m * 10 + (uint64_t)(s[i] - '0');
        if (i == first) return false;
        digits += frac;
    }
    bool exponent = i < n && (s[i] == 'e' || s[i] == 'E');
    if (exponent) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t first = i;
        while (i < n && REQ_DIGIT(s[i])) i++;
        if (i == first) return false;
    }
    if (i != n) return false;
#undef REQ_DIGIT
    if (!exponent && digits <= 15) {
        double v = (double)m / pow10[frac];
        *out = s[0] == '-' ? -v : v;
        return true;
    }
    char buf[REQ_MAX_NUMBER + 1];
    if (n > REQ_MAX_NUMBER) return false; /* the callers refuse such numbers first */
    memcpy(buf, s, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return true;
}

/* The data's next value v, read from the text s[0..n), where the rows go:
 * x grows while the shape is unknown (it may follow the data), up to what
 * --max-rows rows hold. */
static bool req_data_value(struct serve_parser *p, double v, const char *s, size_t n)
{
    int64_t raw = p->raw;
    if (p->n >= p->cap) {
        bool shaped = p->in_shape && !p->shape_bad;
        int64_t limit = shaped ? p->req.rows * raw : p->max_rows * raw;
        if (p->n >= limit) {
            if (shaped)
                return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' has more than the %lld "
                                "values its shape holds", (long long)limit);
            return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' has more values than %lld "
                            "rows hold: at most %lld rows are allowed per request (--max-rows)",
                            (long long)p->max_rows, (long long)p->max_rows);
        }
        int64_t cap = p->cap ? p->cap * 2 : 64 * raw;
        if (cap > limit) cap = limit;
        float *x = realloc(p->req.x, (size_t)cap * sizeof *x);
        if (!x) return req_fail(p, REQ_HTTP_NOMEM, "out of memory for the request's rows");
        p->req.x = x;
        p->cap = cap;
    }
    /* Past FLT_MAX plus half its ulp a value rounds to infinity; below
     * that it rounds to FLT_MAX, so FLT_MAX's shortest decimal form
     * (3.4028235e38, which numpy prints) is accepted. */
    if (!(fabs(v) < 0x1.ffffffp127))
        return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' row %lld, column %lld is %.*s, "
                        "outside FP32's range (|x| <= %.9g): inputs must be finite FP32 numbers",
                        (long long)(p->n / raw + 1), (long long)(p->n % raw + 1),
                        (int)(n > 40 ? 40 : n), s, (double)FLT_MAX);
    p->req.x[p->n++] = (float)v;
    return true;
}

static bool req_number_too_long(struct serve_parser *p, size_t n)
{
    return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' value %lld is a number of %zu "
                    "characters, more than %d", (long long)p->n, n, REQ_MAX_NUMBER);
}

/* A number yajl read in the data. */
static bool req_data_text(struct serve_parser *p, const char *s, size_t n)
{
    double v;
    if (n > REQ_MAX_NUMBER) return req_number_too_long(p, n);
    if (!req_number(s, n, &v))
        return req_fail(p, REQ_HTTP_BAD, "internal error: yajl passed the number '%.*s'",
                        (int)(n > 40 ? 40 : n), s);
    return req_data_value(p, v, s, n);
}

/* The values that are not numbers and not containers. */
enum req_scalar { SCALAR_NULL, SCALAR_TRUE, SCALAR_FALSE, SCALAR_NUMBER, SCALAR_STRING };

/* A value of type t at the current slot (s, n: its text for numbers and
 * strings); containers open their frame. Returns false to stop the parse. */
static bool req_value(struct serve_parser *p, enum req_scalar t, bool map, bool array,
                      const char *s, size_t n)
{
    enum req_slot slot = req_slot_now(p);
    bool scalar = !map && !array;
    if (slot == SLOT_ROOT) p->root_seen = true;
    if (slot == SLOT_INPUT) p->n_inputs++;
    if (slot == SLOT_OUTPUT) p->n_outputs++;
    switch (slot) {
    case SLOT_SKIP: return scalar || req_push(p, FRAME_SKIP, SLOT_SKIP);
    case SLOT_ROOT:
        if (!map)
            return req_fail(p, REQ_HTTP_BAD, "the request must be a JSON object with \"inputs\"");
        return req_push(p, FRAME_TOP, SLOT_SKIP);
    case SLOT_ID:
        if (t != SCALAR_STRING || !scalar)
            return req_fail(p, REQ_HTTP_BAD, "\"id\" must be a string");
        if (n > SERVE_MAX_REQUEST_ID)
            return req_fail(p, REQ_HTTP_BAD, "\"id\" is longer than %d characters",
                            SERVE_MAX_REQUEST_ID);
        if (memchr(s, '\0', n)) return req_fail(p, REQ_HTTP_BAD, "\"id\" holds a NUL character");
        memcpy(p->req.id, s, n);
        p->req.id[n] = '\0';
        p->req.has_id = true;
        return true;
    case SLOT_INPUTS:
        if (!array)
            return req_fail(p, REQ_HTTP_BAD, "\"inputs\" must be a non-empty array of tensors");
        return req_push(p, FRAME_INPUTS, SLOT_INPUT);
    case SLOT_INPUT:
        /* Only the first input is read; more are counted and refused at
         * the end, with their number. */
        if (p->n_inputs > 1) return scalar || req_push(p, FRAME_SKIP, SLOT_SKIP);
        if (!map) return req_fail(p, REQ_HTTP_BAD, "inputs[0] must be an object with a \"name\"");
        return req_push(p, FRAME_INPUT, SLOT_SKIP);
    case SLOT_IN_NAME:
        if (t != SCALAR_STRING || !scalar)
            return req_fail(p, REQ_HTTP_BAD, "inputs[0] must be an object with a \"name\"");
        if (n != strlen(SERVE_INPUT) || memcmp(s, SERVE_INPUT, n) != 0)
            return req_fail(p, REQ_HTTP_BAD, "unknown input '%.*s': the model's input is '"
                            SERVE_INPUT "'", (int)(n > 200 ? 200 : n), s);
        p->in_name = true;
        return true;
    case SLOT_IN_DTYPE:
        if (t != SCALAR_STRING || !scalar || n != 4 || memcmp(s, "FP32", 4) != 0)
            return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' has datatype %.*s, the "
                            "model takes FP32", t == SCALAR_STRING ? (int)(n > 64 ? 64 : n) : 16,
                            t == SCALAR_STRING ? s : "(not a string)");
        p->in_dtype = true;
        return true;
    case SLOT_IN_SHAPE:
        p->in_shape = true;
        if (array) {
            snprintf(p->shape_text, sizeof p->shape_text, "[");
            return req_push(p, FRAME_SHAPE, SLOT_SHAPE_ELEM);
        }
        p->shape_bad = true;
        snprintf(p->shape_text, sizeof p->shape_text, "%s",
                 map ? "an object" : t == SCALAR_STRING ? "a string" : "not an array");
        return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' has shape %s, the model takes "
                        "[rows, %lld]", p->shape_text, (long long)p->raw);
    case SLOT_SHAPE_ELEM: {
        int64_t v;
        bool is_int = t == SCALAR_NUMBER && scalar && req_token_int(s, n, &v);
        if (is_int && p->n_shape < 2) p->shape[p->n_shape] = v;
        if (!is_int) p->shape_bad = true;
        p->n_shape++;
        const char *what = t == SCALAR_NUMBER && scalar ? s
                           : map ? "{...}" : array ? "[...]" : t == SCALAR_STRING ? "\"...\""
                           : t == SCALAR_NULL ? "null" : t == SCALAR_TRUE ? "true" : "false";
        req_shape_note(p, what, t == SCALAR_NUMBER && scalar ? n : strlen(what));
        return scalar || req_push(p, FRAME_SKIP, SLOT_SKIP);
    }
    case SLOT_IN_DATA:
        if (!array)
            return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' needs \"data\": an array "
                            "of numbers, %lld per row", (long long)p->raw);
        p->in_data = true;
        return req_push(p, FRAME_DATA, SLOT_DATA_ELEM);
    case SLOT_DATA_ELEM:
        if (array) return req_push(p, FRAME_DATA, SLOT_DATA_ELEM);
        if (t != SCALAR_NUMBER || map)
            return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' value %lld (row %lld, "
                            "column %lld) is not a number", (long long)p->n,
                            (long long)(p->n / p->raw + 1), (long long)(p->n % p->raw + 1));
        return req_data_text(p, s, n);
    case SLOT_IN_PARAMS: return map ? req_push(p, FRAME_IN_PARAMS, SLOT_SKIP)
                                    : scalar || req_push(p, FRAME_SKIP, SLOT_SKIP);
    case SLOT_IN_BIN_SIZE:
        if (t != SCALAR_NUMBER || !scalar || !req_token_int(s, n, &p->bin_size) || p->bin_size < 0)
            p->bin_size = -2;
        return scalar || req_push(p, FRAME_SKIP, SLOT_SKIP);
    case SLOT_PARAMS: return map ? req_push(p, FRAME_PARAMS, SLOT_SKIP)
                                 : scalar || req_push(p, FRAME_SKIP, SLOT_SKIP);
    case SLOT_BIN_OUT:
        p->all_bin = t == SCALAR_TRUE && scalar;
        return scalar || req_push(p, FRAME_SKIP, SLOT_SKIP);
    case SLOT_OUTPUTS:
        if (!array) return req_fail(p, REQ_HTTP_BAD, "\"outputs\" must be an array");
        return req_push(p, FRAME_OUTPUTS, SLOT_OUTPUT);
    case SLOT_OUTPUT:
        if (!map)
            return req_fail(p, REQ_HTTP_BAD, "outputs[%lld] needs a \"name\"",
                            (long long)(p->n_outputs - 1));
        p->out_named = p->out_bin = false;
        return req_push(p, FRAME_OUTPUT, SLOT_SKIP);
    case SLOT_OUT_NAME:
        if (t == SCALAR_STRING && scalar) {
            /* A name too long or odd to be one of ours is kept cut short,
             * for the message. */
            bool fits = n < sizeof p->out_name && !memchr(s, '\0', n);
            size_t keep = n < sizeof p->out_name ? n : sizeof p->out_name - 1;
            memcpy(p->out_name, s, keep);
            p->out_name[keep] = '\0';
            p->out_name_len = fits ? n : (size_t)-1;
            p->out_named = true;
        }
        return scalar || req_push(p, FRAME_SKIP, SLOT_SKIP);
    case SLOT_OUT_PARAMS: return map ? req_push(p, FRAME_OUT_PARAMS, SLOT_SKIP)
                                     : scalar || req_push(p, FRAME_SKIP, SLOT_SKIP);
    case SLOT_OUT_BIN:
        p->out_bin = t == SCALAR_TRUE && scalar;
        return scalar || req_push(p, FRAME_SKIP, SLOT_SKIP);
    }
    return req_fail(p, REQ_HTTP_BAD, "internal error: unexpected JSON value");
}

/* The shape, once read: what x must hold. */
static bool req_shape_done(struct serve_parser *p)
{
    snprintf(p->shape_text + strlen(p->shape_text),
             sizeof p->shape_text - strlen(p->shape_text), "]");
    if (p->shape_bad || p->n_shape != 2)
        return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' has shape %s, the model takes "
                        "[rows, %lld]", p->shape_text, (long long)p->raw);
    int64_t rows = p->shape[0], width = p->shape[1];
    if (width != p->raw || rows < 1)
        return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' has shape [%lld, %lld], the "
                        "model takes [rows >= 1, %lld]", (long long)rows, (long long)width,
                        (long long)p->raw);
    if (rows > p->max_rows)
        return req_fail(p, REQ_HTTP_BAD, "the request has %lld rows, at most %lld are allowed per "
                        "request (--max-rows)", (long long)rows, (long long)p->max_rows);
    int64_t want = rows * p->raw;
    if (p->n > want)
        return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' has more than the %lld values "
                        "its shape holds", (long long)want);
    p->req.rows = rows;
    if (p->cap != want) {
        float *x = realloc(p->req.x, (size_t)want * sizeof *x);
        if (!x) return req_fail(p, REQ_HTTP_NOMEM, "out of memory for %lld rows", (long long)rows);
        p->req.x = x;
        p->cap = want;
    }
    return true;
}

/* inputs[0], once read: everything it needs is there and agrees. */
static bool req_input_done(struct serve_parser *p)
{
    if (!p->in_name) return req_fail(p, REQ_HTTP_BAD, "inputs[0] must be an object with a \"name\"");
    if (!p->in_dtype)
        return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' has datatype (none), the model "
                        "takes FP32");
    if (!p->in_shape)
        return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' has shape (none), the model "
                        "takes [rows, %lld]", (long long)p->raw);
    int64_t want = p->req.rows * p->raw;
    if (p->bin_size != -1) {
        if (p->in_data)
            return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' has both \"data\" and "
                            "binary_data_size");
        if (p->bin_size != want * (int64_t)sizeof(float))
            return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "': binary_data_size must be "
                            "%lld bytes (%lld rows x %lld FP32)",
                            (long long)(want * (int64_t)sizeof(float)), (long long)p->req.rows,
                            (long long)p->raw);
        p->req.binary_bytes = p->bin_size;
        return true;
    }
    if (!p->in_data)
        return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' needs \"data\": an array of "
                        "%lld numbers", (long long)want);
    if (p->n != want)
        return req_fail(p, REQ_HTTP_BAD, "input '" SERVE_INPUT "' has %lld values, its shape "
                        "[%lld, %lld] needs %lld", (long long)p->n, (long long)p->req.rows,
                        (long long)p->raw, (long long)want);
    return true;
}

/* outputs[i], once read: a known output, asked for once. */
static bool req_output_done(struct serve_parser *p)
{
    int64_t i = p->n_outputs - 1;
    if (!p->out_named) return req_fail(p, REQ_HTTP_BAD, "outputs[%lld] needs a \"name\"", (long long)i);
    const char *name = p->out_name_len == (size_t)-1 ? "" : p->out_name;
    enum serve_output o = SERVE_OUTPUT_COUNT;
    if (p->classifier && !strcmp(name, SERVE_OUT_PROB)) o = SERVE_OUTPUT_PROB;
    else if (p->classifier && !strcmp(name, SERVE_OUT_CLASS)) o = SERVE_OUTPUT_CLASS;
    else if (!p->classifier && !strcmp(name, SERVE_OUT_REG)) o = SERVE_OUTPUT_REG;
    if (o == SERVE_OUTPUT_COUNT)
        return req_fail(p, REQ_HTTP_BAD, "unknown output '%.200s%s': the model's outputs are %s",
                        p->out_name, p->out_name_len == (size_t)-1 ? "..." : "",
                        p->classifier ? "'" SERVE_OUT_PROB "' and '" SERVE_OUT_CLASS "'"
                                      : "'" SERVE_OUT_REG "'");
    for (int j = 0; j < p->req.n_order; j++)
        if (p->req.order[j] == o)
            return req_fail(p, REQ_HTTP_BAD, "output '%s' is asked for twice", name);
    p->req.order[p->req.n_order++] = o;
    p->req.binary[o] = p->out_bin;
    return true;
}

/* --- yajl's callbacks --------------------------------------------------------------- */

static int on_null(void *ctx)
{
    return req_value(ctx, SCALAR_NULL, false, false, "null", 4);
}

static int on_boolean(void *ctx, int v)
{
    return req_value(ctx, v ? SCALAR_TRUE : SCALAR_FALSE, false, false, v ? "true" : "false",
                     v ? 4 : 5);
}

static int on_number(void *ctx, const char *s, size_t n)
{
    struct serve_parser *p = ctx;
    /* The hot path: a value in the data. */
    if (p->depth > 0 && p->st[p->depth - 1].kind == FRAME_DATA) return req_data_text(p, s, n);
    return req_value(p, SCALAR_NUMBER, false, false, s, n);
}

static int on_string(void *ctx, const unsigned char *s, size_t n)
{
    return req_value(ctx, SCALAR_STRING, false, false, (const char *)s, n);
}

static int on_start_map(void *ctx)
{
    return req_value(ctx, SCALAR_NULL, true, false, NULL, 0);
}

static int on_start_array(void *ctx)
{
    struct serve_parser *p = ctx;
    if (!req_value(p, SCALAR_NULL, false, true, NULL, 0)) return 0;
    p->lane_ready = p->st[p->depth - 1].kind == FRAME_DATA;
    return 1;
}

static int on_map_key(void *ctx, const unsigned char *k, size_t n)
{
    struct serve_parser *p = ctx;
    struct req_frame *f = &p->st[p->depth - 1];
    f->slot = req_key_slot(f->kind, (const char *)k, n);
    if (f->slot == SLOT_SKIP) return 1;
    uint32_t bit = 1u << f->slot;
    if (f->seen & bit)
        return req_fail(p, REQ_HTTP_BAD, "the key \"%.*s\" appears twice in one object",
                        (int)(n > 64 ? 64 : n), (const char *)k);
    f->seen |= bit;
    return 1;
}

static int on_end_container(void *ctx)
{
    struct serve_parser *p = ctx;
    enum req_frame_kind kind = p->st[--p->depth].kind;
    switch (kind) {
    case FRAME_SHAPE: return req_shape_done(p);
    case FRAME_INPUT: return req_input_done(p);
    case FRAME_OUTPUT: return req_output_done(p);
    default: return 1;
    }
}

static const yajl_callbacks req_callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,    /* numbers as text: no integer/double split */
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_container,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_container,
};

/* --- the parser --------------------------------------------------------------------- */

enum kiln_status serve_parser_create(int64_t raw, int64_t max_rows, bool classifier,
                                     struct serve_parser **out)
{
    *out = NULL;
    struct serve_parser *p = calloc(1, sizeof *p);
    if (!p) return kiln_errorf(KILN_ERR_NOMEM, "serve: out of memory");
    p->raw = raw;
    p->max_rows = max_rows;
    p->classifier = classifier;
    p->bin_size = -1;
    p->req.binary_bytes = -1;
    p->h = yajl_alloc(&req_callbacks, NULL, p);
    if (!p->h) {
        free(p);
        return kiln_errorf(KILN_ERR_NOMEM, "serve: out of memory");
    }
    *out = p;
    return KILN_OK;
}

void serve_parser_free(struct serve_parser *p)
{
    if (!p) return;
    if (p->h) yajl_free(p->h);
    free(p->req.x);
    free(p);
}

/* Whether the text around byte at of chunk[0..len) (and the bytes fed
 * before it) spells NaN or Infinity. */
static bool req_near_nan(const struct serve_parser *p, const char *chunk, size_t len, size_t at)
{
    char near[48];
    size_t from = at > 16 ? at - 16 : 0, nl = 0;
    if (at < 16) {
        size_t back = 16 - at < p->tail_len ? 16 - at : p->tail_len;
        memcpy(near, p->tail + p->tail_len - back, back);
        nl = back;
    }
    for (size_t i = from; i < len && i < at + 16 && nl < sizeof near - 1; i++) near[nl++] = chunk[i];
    near[nl] = '\0';
    return strcasestr(near, "nan") || strcasestr(near, "inf");
}

/* JSON has no NaN or Infinity; a client that wrote them (Python's json
 * does by default) is told so rather than only "invalid char". */
#define REQ_NAN_HINT " (JSON has no NaN or Infinity: inputs must be finite numbers)"

/* yajl's own error (malformed JSON) at byte at of the chunk[0..len) that
 * failed. */
static bool req_syntax_error(struct serve_parser *p, const char *chunk, size_t len, size_t at)
{
    unsigned char *msg = yajl_get_error(p->h, 0, NULL, 0);
    char text[256] = "";
    if (msg) {
        snprintf(text, sizeof text, "%s", (const char *)msg);
        yajl_free_error(p->h, msg);
    }
    size_t tl = strlen(text);
    while (tl > 0 && (text[tl - 1] == '\n' || text[tl - 1] == '.' || text[tl - 1] == ' '))
        text[--tl] = '\0';
    return req_fail(p, REQ_HTTP_BAD, "malformed JSON at byte %lld: %s%s",
                    (long long)(p->fed + (int64_t)at), text[0] ? text : "parse error",
                    req_near_nan(p, chunk, len, at) ? REQ_NAN_HINT : "");
}

/* A syntax error the lane found at byte at of the chunk text[0..len). */
static bool req_lane_error(struct serve_parser *p, const char *text, size_t len, size_t at,
                           const char *what)
{
    return req_fail(p, REQ_HTTP_BAD, "malformed JSON at byte %lld: %s%s",
                    (long long)(p->fed + (int64_t)at), what,
                    req_near_nan(p, text, len, at) ? REQ_NAN_HINT : "");
}

/* The number s[0..n) the lane read, which began at byte at of the chunk
 * text[0..len). */
static bool req_lane_number(struct serve_parser *p, const char *s, size_t n, const char *text,
                            size_t len, size_t at)
{
    double v;
    if (n > REQ_MAX_NUMBER) return req_number_too_long(p, n);
    if (!req_number(s, n, &v)) {
        char what[96];
        snprintf(what, sizeof what, "'%.*s%s' in \"data\" is not a JSON number",
                 (int)(n > 40 ? 40 : n), s, n > 40 ? "..." : "");
        return req_lane_error(p, text, len, at, what);
    }
    return req_data_value(p, v, s, n);
}

static inline bool req_number_char(char c)
{
    return (unsigned)((unsigned char)c - '0') < 10 || c == '.' || c == '-' || c == '+' ||
           c == 'e' || c == 'E';
}

/* The number of decimal digits that open the 8 bytes at s (0 to 8), and
 * in *value what they spell. SWAR: a byte is a digit when it XORs with
 * '0' to 0..9; adding 0x76 sets the top bit of every byte above 9 (the
 * OR catches those above 127, whose sum would carry), and no carry can
 * come from a digit byte below the first non-digit, the lowest set bit. */
static inline unsigned req_digits8(const char *s, uint64_t *value)
{
    uint64_t w;
    memcpy(&w, s, 8);
    uint64_t d = w ^ 0x3030303030303030u;
    uint64_t above9 = ((d + 0x7676767676767676u) | d) & 0x8080808080808080u;
    unsigned k = above9 ? (unsigned)__builtin_ctzll(above9) / 8 : 8;
    *value = 0;
    if (k == 0) return 0;
    /* The k digits to the top bytes (little-endian: the first digit is the
     * lowest byte, the most significant), zeros before them; then pairs,
     * quads and the eight combined by multiplication. */
    d <<= 8 * (8 - k);
    d = d * 10 + (d >> 8);
    d = (((d & 0x000000FF000000FFu) * (100 + (1000000ull << 32))) +
         (((d >> 16) & 0x000000FF000000FFu) * (1 + (10000ull << 32)))) >> 32;
    *value = (uint32_t)d;
    return k;
}

/* Reads the run of digits at t[*j] into *m (m * 10^k + the k digits),
 * adding their number to *n and moving *j past them. False when the run
 * comes within 8 bytes of len (a byte-wise read's to finish) or passes 16
 * digits (m may then have wrapped). */
static inline bool req_digit_run(const char *t, size_t *j, size_t len, uint64_t *m, size_t *n)
{
    static const uint64_t scale[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                     100000000};
    for (;;) {
        if (len - *j < 8) return false;
        uint64_t part;
        unsigned k = req_digits8(t + *j, &part);
        *m = *m * scale[k] + part;
        *n += k;
        *j += k;
        if (k < 8) return true;
        if (*n > 16) return false;
    }
}

/* The lane's fast path, for text[i] a '-' or a digit: a number of at most
 * 15 digits without an exponent, read in one pass (Clinger's division as
 * in req_number). Returns the index after it with *out its value, or 0
 * for anything else (longer, an exponent, malformed, or near the end of
 * the piece), which req_number reads or refuses. */
static inline size_t req_lane_fast(const char *t, size_t i, size_t len, double *out)
{
    static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    bool neg = t[i] == '-';
    size_t j = i + neg, digits = 0, frac = 0;
    uint64_t m = 0;
    if (len - j < 8) return 0;
    if (t[j] == '0') {
        j++, digits++;
    } else if (!req_digit_run(t, &j, len, &m, &digits) || digits == 0) {
        return 0;
    }
    if (t[j] == '.') {
        j++;
        if (!req_digit_run(t, &j, len, &m, &frac) || frac == 0) return 0;
        digits += frac;
    }
    /* j < len: each run ended on a non-digit inside its 8 bytes. */
    char c = t[j];
    if (digits > 15 || (unsigned)((unsigned char)c - '0') < 10 || c == '.' || c == 'e' ||
        c == 'E' || c == '-' || c == '+')
        return 0;
    double v = (double)m / pow10[frac];
    *out = neg ? -v : v;
    return j;
}

/* Reads the numbers, commas and white space of a data array from
 * text[at..len) (text is the chunk whose first byte is document byte
 * p->fed). Returns where it stopped: len, or the first byte that is yajl's
 * to read, with p->in_lane cleared. A number cut by len waits in p->num. */
static size_t req_lane(struct serve_parser *p, const char *text, size_t at, size_t len)
{
    size_t i = at;
    if (p->num_len > 0) { /* the rest of a number cut by the last chunk */
        size_t j = i;
        while (j < len && req_number_char(text[j])) j++;
        size_t n = p->num_len + (j - i);
        if (n > REQ_MAX_NUMBER) {
            req_number_too_long(p, n);
            return len;
        }
        memcpy(p->num + p->num_len, text + i, j - i);
        p->num_len = n;
        if (j == len) return len;
        p->num_len = 0;
        if (!req_lane_number(p, p->num, n, text, len, at)) return len;
        p->lane_value_next = false;
        i = j;
    }
    while (i < len) {
        char c = text[i];
        if (c == ' ' || c == ',' || c == '\n' || c == '\r' || c == '\t') {
            if (c == ',') {
                if (p->lane_value_next) {
                    req_lane_error(p, text, len, i, "a ',' where a value belongs in \"data\"");
                    return len;
                }
                p->lane_value_next = p->lane_comma = true;
            }
            i++;
            continue;
        }
        if (p->lane_value_next && (c == '-' || (unsigned)((unsigned char)c - '0') < 10)) {
            double v;
            size_t after = req_lane_fast(text, i, len, &v);
            if (after) {
                /* req_data_value's common case inline: room, and in range. */
                if (p->n < p->cap && fabs(v) < 0x1.ffffffp127) p->req.x[p->n++] = (float)v;
                else if (!req_data_value(p, v, text + i, after - i)) return len;
                p->lane_value_next = false;
                i = after;
                continue;
            }
            size_t j = i + 1;
            while (j < len && req_number_char(text[j])) j++;
            if (j == len) {
                size_t n = j - i;
                if (n > REQ_MAX_NUMBER) {
                    req_number_too_long(p, n);
                    return len;
                }
                memcpy(p->num, text + i, n);
                p->num_len = n;
                return len;
            }
            if (!req_lane_number(p, text + i, j - i, text, len, i)) return len;
            p->lane_value_next = false;
            i = j;
            continue;
        }
        if (!p->lane_value_next && c != ']') {
            req_lane_error(p, text, len, i, "after a value in \"data\", expected ',' or ']'");
            return len;
        }
        if (c == ']' && p->lane_value_next && p->lane_comma) {
            req_lane_error(p, text, len, i, "a ',' before ']' in \"data\"");
            return len;
        }
        /* ']' after a value (or right after '['), or a value that is not
         * a number: yajl, still at the array's start, reads it. */
        p->in_lane = false;
        return i;
    }
    return len;
}

/* Feeds text[at..end) to yajl; false (with the reason) on an error. */
static bool req_yajl(struct serve_parser *p, const char *text, size_t at, size_t end, size_t len)
{
    yajl_status ys = yajl_parse(p->h, (const unsigned char *)text + at, end - at);
    if (ys == yajl_status_client_canceled) return false; /* p->err says why */
    if (ys != yajl_status_ok)
        return req_syntax_error(p, text, len, at + yajl_get_bytes_consumed(p->h));
    return true;
}

bool serve_parser_feed(struct serve_parser *p, const char *text, size_t len)
{
    if (p->failed) return false;
    if (len == 0) return true;
    size_t at = 0;
    while (at < len && !p->failed) {
        if (p->in_lane) {
            at = req_lane(p, text, at, len);
            continue;
        }
        /* yajl reads up to and including the next '[', so that a data
         * array's start is the last token it has read. */
        const char *open = p->lane_off ? NULL : memchr(text + at, '[', len - at);
        size_t end = open ? (size_t)(open - text) + 1 : len;
        p->lane_ready = false;
        if (!req_yajl(p, text, at, end, len)) break;
        at = end;
        if (p->lane_ready && !p->lane_off) {
            p->in_lane = p->lane_value_next = true;
            p->lane_comma = false;
        }
    }
    if (p->failed) return false;
    p->fed += (int64_t)len;
    if (len >= sizeof p->tail) {
        memcpy(p->tail, text + len - sizeof p->tail, sizeof p->tail);
        p->tail_len = sizeof p->tail;
    } else {
        size_t keep = p->tail_len + len > sizeof p->tail ? sizeof p->tail - len : p->tail_len;
        memmove(p->tail, p->tail + p->tail_len - keep, keep);
        memcpy(p->tail + keep, text, len);
        p->tail_len = keep + len;
    }
    return true;
}

bool serve_parser_finish(struct serve_parser *p)
{
    if (p->failed) return false;
    if (!p->root_seen && p->fed == 0)
        return req_fail(p, REQ_HTTP_BAD, "malformed JSON: the body is empty (send the request "
                        "as a JSON object with \"inputs\")");
    yajl_status ys = yajl_complete_parse(p->h);
    if (ys == yajl_status_client_canceled) return false;
    if (ys != yajl_status_ok) return req_syntax_error(p, "", 0, 0);
    if (p->n_inputs == 0)
        return req_fail(p, REQ_HTTP_BAD, "\"inputs\" must be a non-empty array of tensors");
    if (p->n_inputs != 1)
        return req_fail(p, REQ_HTTP_BAD, "the model takes one input ('" SERVE_INPUT "'), the "
                        "request has %lld", (long long)p->n_inputs);
    /* Outputs: all of them when none are named; binary_data_output may
     * come after them. */
    if (p->req.n_order == 0) {
        if (p->classifier) {
            p->req.order[p->req.n_order++] = SERVE_OUTPUT_PROB;
            p->req.order[p->req.n_order++] = SERVE_OUTPUT_CLASS;
        } else {
            p->req.order[p->req.n_order++] = SERVE_OUTPUT_REG;
        }
    }
    for (int i = 0; i < SERVE_OUTPUT_COUNT; i++) p->req.binary[i] = p->req.binary[i] || p->all_bin;
    return true;
}

const char *serve_parser_error(const struct serve_parser *p, int *code)
{
    *code = p->failed ? p->code : 0;
    return p->failed ? p->err : NULL;
}

struct serve_infer_req *serve_parser_request(struct serve_parser *p)
{
    return p->failed ? NULL : &p->req;
}

void serve_parser_lane_off(struct serve_parser *p)
{
    p->lane_off = true;
}
