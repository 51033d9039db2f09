/* engine/lifecycle/runs-query.c: kiln runs list (columns, --where, --sort),
 * show and compare. Every key and value a user types is bound as an SQL
 * parameter; only fixed expressions from the table below are pasted. */
#define _DEFAULT_SOURCE /* realpath, strcasecmp */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "kiln/log.h"
#include "runs-internal.h"

const char KILN_RUNS_DEFAULT_COLUMNS[] =
    "id,status,dataset,started,duration,epoch,train_loss,val_loss,val_accuracy,test_accuracy";

#define JOINS                                                                   \
    " FROM runs r LEFT JOIN dataset_versions v ON v.id = r.dataset_version_id " \
    "LEFT JOIN datasets d ON d.id = v.dataset_id"

/* The run's own fields. sql is what a column shows and --sort orders by;
 * filter (when set) is what --where compares, e.g. the dataset's name
 * rather than "name@vN". */
struct run_field {
    const char *key;
    const char *sql;
    bool numeric;
    const char *filter;
    bool covered; /* read from the index runs_status alone */
};

static const struct run_field FIELDS[] = {
    {"id", "r.id", true, NULL, true},
    {"status", "r.status", false, NULL, true},
    {"dataset",
     "COALESCE(d.name || '@v' || v.version, (SELECT value FROM run_params p WHERE p.run_id = "
     "r.id AND p.key = 'data'))",
     false,
     "COALESCE(d.name, (SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = "
     "'data.name'))",
     true},
    {"started", "r.started", false, NULL, true},
    {"ended", "r.ended", false, NULL, true},
    {"duration",
     /* Tenths of a second; ROUND() would format every value through printf. */
     "MAX(CAST((julianday(COALESCE(r.ended, 'now')) - julianday(r.started)) * 864000.0 + 0.5 "
     "AS INTEGER), 0) / 10.0",
     true, NULL, true},
    {"host", "r.host", false, NULL, false},
    {"user", "r.user", false, NULL, false},
    {"device", "r.device", false, NULL, false},
    {"threads", "r.threads", true, NULL, false},
    {"pid", "r.pid", true, NULL, false},
    {"sweep", "r.sweep_id", true, NULL, true},
    {"resumed_from", "r.resumed_from", true, NULL, false},
    {"engine", "r.engine_version", false, NULL, false},
    {"commit", "r.git_commit", false, NULL, false},
    {"error", "r.error", false, NULL, false},
    {"out_dir", "r.out_dir", false, NULL, false},
};
#define N_FIELDS ((int)(sizeof FIELDS / sizeof FIELDS[0]))

#define METRIC_SQL "(SELECT value FROM run_summary s WHERE s.run_id = r.id AND s.key = ?%d)"
#define PARAM_SQL "(SELECT value FROM run_params p WHERE p.run_id = r.id AND p.key = ?%d)"

/* --- bound values ---------------------------------------------------------------- */

#define MAX_BINDS 256

struct binds {
    bool uncovered; /* a key needs a column of runs that runs_status lacks */
    int n;
    bool is_text[MAX_BINDS];
    char *text[MAX_BINDS];
    double num[MAX_BINDS];
};

static void binds_free(struct binds *b)
{
    for (int i = 0; i < b->n; i++) free(b->text[i]);
    b->n = 0;
}

/* Adds a value; returns its 1-based parameter number, 0 when full. */
static int bind_text(struct binds *b, const char *s, size_t len)
{
    if (b->n == MAX_BINDS) return 0;
    char *t = malloc(len + 1);
    if (!t) return 0;
    memcpy(t, s, len);
    t[len] = '\0';
    b->is_text[b->n] = true;
    b->text[b->n] = t;
    return ++b->n;
}

static int bind_num(struct binds *b, double v)
{
    if (b->n == MAX_BINDS) return 0;
    b->is_text[b->n] = false;
    b->text[b->n] = NULL;
    b->num[b->n] = v;
    return ++b->n;
}

static void binds_apply(const struct binds *b, sqlite3_stmt *s)
{
    for (int i = 0; i < b->n; i++) {
        if (b->is_text[i]) sqlite3_bind_text(s, i + 1, b->text[i], -1, SQLITE_STATIC);
        else sqlite3_bind_double(s, i + 1, b->num[i]);
    }
}

/* --- keys -------------------------------------------------------------------------- */

enum key_kind { KEY_FIELD, KEY_PARAM, KEY_METRIC };

static bool key_char(char c, bool first)
{
    return isalpha((unsigned char)c) || c == '_' ||
           (!first && (isdigit((unsigned char)c) || c == '.' || c == '[' || c == ']'));
}

static enum key_kind key_classify(const char *key, size_t len, const struct run_field **field)
{
    *field = NULL;
    for (int i = 0; i < N_FIELDS; i++)
        if (strlen(FIELDS[i].key) == len && !strncmp(FIELDS[i].key, key, len)) {
            *field = &FIELDS[i];
            return KEY_FIELD;
        }
    return memchr(key, '.', len) ? KEY_PARAM : KEY_METRIC;
}

/* Appends the SQL expression of a key (binding its name when it is a param
 * or a metric). for_filter picks a field's filter expression. */
static bool key_sql(struct sbuf *sql, struct binds *b, const char *key, size_t len,
                    bool for_filter, enum key_kind *kind, bool *numeric)
{
    const struct run_field *f;
    *kind = key_classify(key, len, &f);
    if (*kind == KEY_FIELD) {
        if (!f->covered) b->uncovered = true;
        sbuf_add(sql, "%s", for_filter && f->filter ? f->filter : f->sql);
        *numeric = f->numeric;
        return true;
    }
    int p = bind_text(b, key, len);
    if (!p) return false;
    sbuf_add(sql, *kind == KEY_PARAM ? PARAM_SQL : METRIC_SQL, p);
    *numeric = *kind == KEY_METRIC;
    return true;
}

static bool key_valid(const char *key, size_t len)
{
    if (len == 0 || len > 120 || !key_char(key[0], true)) return false;
    for (size_t i = 1; i < len; i++)
        if (!key_char(key[i], false)) return false;
    return true;
}

/* --- --where ------------------------------------------------------------------------ */

static enum kiln_status where_error(const char *where, const char *p, const char *what)
{
    char shown[48];
    snprintf(shown, sizeof shown, "%.40s", *p ? p : "(end)");
    return kiln_errorf(KILN_ERR_USAGE,
                       "--where: at column %d: %s, got '%s' (the form is KEY OP VALUE [and KEY "
                       "OP VALUE]..., OP one of > >= < <= = !=, VALUE a number or a quoted "
                       "string)",
                       (int)(p - where) + 1, what, shown);
}

static const char *skip_space(const char *p)
{
    while (isspace((unsigned char)*p)) p++;
    return p;
}

/* Compiles where into sql (a condition over the runs row r), adding its
 * values to b. */
static enum kiln_status where_compile(const char *where, struct sbuf *sql, struct binds *b)
{
    const char *p = skip_space(where);
    if (!*p) return KILN_OK;
    int clauses = 0;
    for (;;) {
        /* KEY */
        const char *k = p;
        while (*p && key_char(*p, p == k)) p++;
        size_t klen = (size_t)(p - k);
        if (!key_valid(k, klen)) return where_error(where, k, "expected a key such as val_accuracy");
        p = skip_space(p);
        /* OP */
        static const char *const ops[] = {">=", "<=", "!=", "<>", "==", ">", "<", "="};
        static const char *const sql_ops[] = {">=", "<=", "!=", "!=", "=", ">", "<", "="};
        int op = -1;
        for (int i = 0; i < 8 && op < 0; i++)
            if (!strncmp(p, ops[i], strlen(ops[i]))) op = i;
        if (op < 0) return where_error(where, p, "expected an operator");
        p = skip_space(p + strlen(ops[op]));
        /* VALUE */
        const char *v = p;
        bool text = false;
        char *buf = NULL;
        size_t vlen = 0;
        double num = 0;
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            buf = malloc(strlen(p) + 1);
            if (!buf) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            for (;;) {
                if (!*p) {
                    free(buf);
                    return where_error(where, v, "a string that is never closed");
                }
                if (*p == q && p[1] == q) { /* a doubled quote is a quote */
                    buf[vlen++] = q;
                    p += 2;
                    continue;
                }
                if (*p == q) break;
                buf[vlen++] = *p++;
            }
            p++;
            text = true;
        } else {
            char *end;
            num = strtod(p, &end);
            if (end == p || !isfinite(num) || (*end && !isspace((unsigned char)*end)))
                return where_error(where, v, "expected a number or a quoted string");
            p = end;
        }
        /* KEY OP VALUE as SQL */
        enum key_kind kind;
        bool numeric;
        sbuf_add(sql, "%s(", clauses ? " AND " : "");
        struct sbuf expr = {0};
        bool ok = key_sql(&expr, b, k, klen, true, &kind, &numeric);
        enum kiln_status st = KILN_OK;
        char keyname[128];
        snprintf(keyname, sizeof keyname, "%.*s", (int)klen, k);
        if (!ok) {
            st = kiln_errorf(KILN_ERR_USAGE, "--where: too many conditions");
        } else if (text && numeric) {
            st = kiln_errorf(KILN_ERR_USAGE, "--where: %s is a number: compare it with a number, "
                             "not a string",
                             keyname);
        } else if (!text && !numeric && kind == KEY_FIELD) {
            st = kiln_errorf(KILN_ERR_USAGE, "--where: %s is text: quote the value ('...')",
                             keyname);
        } else {
            int pv = text ? bind_text(b, buf, vlen) : bind_num(b, num);
            if (!pv) {
                st = kiln_errorf(KILN_ERR_USAGE, "--where: too many conditions");
            } else if (kind == KEY_PARAM && !text) {
                /* Params are text; against a number they compare as numbers. */
                sbuf_add(sql, "CAST(%s AS REAL) %s ?%d", expr.p, sql_ops[op], pv);
            } else {
                sbuf_add(sql, "%s %s ?%d", expr.p, sql_ops[op], pv);
            }
        }
        sbuf_free(&expr);
        free(buf);
        if (st != KILN_OK) return st;
        sbuf_add(sql, ")");
        clauses++;
        p = skip_space(p);
        if (!*p) break;
        if (strncasecmp(p, "and", 3) != 0 || (p[3] && !isspace((unsigned char)p[3])))
            return where_error(where, p, "expected 'and' or the end");
        p = skip_space(p + 3);
    }
    if (sql->failed) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    return KILN_OK;
}

enum kiln_status kiln_runs_where_sql(const char *where, char *out, size_t len, int *n_bound)
{
    struct sbuf sql = {0};
    struct binds b = {0};
    enum kiln_status st = where_compile(where ? where : "", &sql, &b);
    if (st == KILN_OK) snprintf(out, len, "%s", sql.p ? sql.p : "");
    *n_bound = b.n;
    binds_free(&b);
    sbuf_free(&sql);
    return st;
}

/* --- list ------------------------------------------------------------------------------- */

#define MAX_COLUMNS 64

struct column {
    char key[128];
};

static enum kiln_status parse_columns(const char *text, struct column *cols, int *n)
{
    *n = 0;
    const char *p = text;
    for (;;) {
        const char *start = skip_space(p);
        const char *end = start;
        while (*end && *end != ',') end++;
        const char *e = end;
        while (e > start && isspace((unsigned char)e[-1])) e--;
        size_t len = (size_t)(e - start);
        if (!key_valid(start, len))
            return kiln_errorf(KILN_ERR_USAGE,
                               "--columns: '%.*s' is not a key (id, status, dataset, a metric "
                               "such as val_accuracy, or a param such as train.optimizer.lr)",
                               (int)(len > 60 ? 60 : len), start);
        if (*n == MAX_COLUMNS) return kiln_errorf(KILN_ERR_USAGE, "--columns: at most %d", MAX_COLUMNS);
        snprintf(cols[*n].key, sizeof cols[0].key, "%.*s", (int)len, start);
        (*n)++;
        if (!*end) break;
        p = end + 1;
    }
    return KILN_OK;
}

/* Warns about a --where or --sort key that no run has: a typo would
 * otherwise quietly match nothing. */
static void warn_unknown_key(struct kiln_store *ws, const char *key)
{
    const struct run_field *f;
    enum key_kind kind = key_classify(key, strlen(key), &f);
    if (kind == KEY_FIELD) return;
    sqlite3_stmt *s;
    if (store_prepare(ws,
                      kind == KEY_PARAM ? "SELECT 1 FROM run_params WHERE key = ? LIMIT 1"
                                        : "SELECT 1 FROM run_summary WHERE key = ? LIMIT 1",
                      &s) != KILN_OK)
        return;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    bool found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    sqlite3_stmt *any;
    bool runs = false;
    if (store_prepare(ws, "SELECT 1 FROM runs LIMIT 1", &any) == KILN_OK) {
        runs = sqlite3_step(any) == SQLITE_ROW;
        sqlite3_finalize(any);
    }
    if (!found && runs)
        kiln_log(KILN_LOG_WARN, "no run has a %s named '%s'", kind == KEY_PARAM ? "param" : "metric",
                 key);
}

/* The keys a --where names, for warn_unknown_key. */
static void warn_where_keys(struct kiln_store *ws, const char *where)
{
    const char *p = where;
    bool expect_key = true;
    while (*p) {
        p = skip_space(p);
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            while (*p && *p != q) p++;
            if (*p) p++;
            continue;
        }
        const char *k = p;
        while (*p && key_char(*p, p == k)) p++;
        if (p > k) {
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)(p - k), k);
            if (expect_key && strcasecmp(key, "and")) warn_unknown_key(ws, key);
            expect_key = !strcasecmp(key, "and");
            continue;
        }
        if (*p) p++;
    }
}

/* One value of the listing. */
struct cell {
    int type; /* SQLITE_NULL, SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT */
    int64_t i;
    double d;
    char *t;
};

static bool cell_set_column(struct cell *c, sqlite3_stmt *s, int col)
{
    c->type = sqlite3_column_type(s, col);
    if (c->type == SQLITE_INTEGER) c->i = sqlite3_column_int64(s, col);
    else if (c->type == SQLITE_FLOAT) c->d = sqlite3_column_double(s, col);
    else if (c->type != SQLITE_NULL) {
        c->type = SQLITE_TEXT;
        if (!(c->t = strdup(runs_col_text(s, col)))) return false;
    }
    return true;
}

/* Whole numbers without printf: a listing formats up to a million cells. */
static size_t format_int(int64_t v, char *buf)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t o = 0;
    if (v < 0) buf[o++] = '-';
    while (n) buf[o++] = tmp[--n];
    buf[o] = '\0';
    return o;
}

/* The cell as the table shows it; returns its length. buf holds 512. */
static size_t cell_text(const struct cell *c, char *buf, size_t len)
{
    switch (c->type) {
    case SQLITE_NULL:
        buf[0] = '-';
        buf[1] = '\0';
        return 1;
    case SQLITE_INTEGER:
        return format_int(c->i, buf);
    case SQLITE_FLOAT:
        if (c->d == floor(c->d) && fabs(c->d) < 1e15) return format_int((int64_t)c->d, buf);
        runs_format_metric(c->d, buf, len);
        return strlen(buf);
    default: {
        const char *t = c->t;
        size_t n = strlen(t);
        /* Times as 2026-11-26 21:28:19: the table's width matters more
         * than the milliseconds (--json keeps them). */
        if (n >= 20 && t[10] == 'T' && t[4] == '-' && t[n - 1] == 'Z') {
            memcpy(buf, t, 19);
            buf[10] = ' ';
            buf[19] = '\0';
            return 19;
        }
        if (n >= len) n = len - 1;
        memcpy(buf, t, n);
        buf[n] = '\0';
        for (char *p = buf; *p; p++)
            if (*p == '\n' || *p == '\t') *p = ' ';
        return n;
    }
    }
}

static json_t *cell_json(const struct cell *c)
{
    switch (c->type) {
    case SQLITE_NULL: return json_null();
    case SQLITE_INTEGER: return json_integer(c->i);
    case SQLITE_FLOAT: return json_real(c->d);
    default: return json_string(c->t);
    }
}

static json_t *col_json(sqlite3_stmt *s, int col)
{
    struct cell c = {0};
    if (!cell_set_column(&c, s, col)) return NULL;
    json_t *j = cell_json(&c);
    free(c.t);
    return j;
}

static enum kiln_status json_emit(json_t *j, FILE *out)
{
    if (!j) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    int rc = json_dumpf(j, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(j);
    fputc('\n', out);
    if (rc != 0) return kiln_errorf(KILN_ERR_IO, "writing JSON failed");
    return KILN_OK;
}

struct id_row {
    int64_t id;
    int64_t row;
};

static int id_row_cmp(const void *a, const void *b)
{
    int64_t x = ((const struct id_row *)a)->id, y = ((const struct id_row *)b)->id;
    return (x > y) - (x < y);
}

/* Above this many rows, a param or metric column is read with one scan of
 * its key's index entries instead of a lookup per row (measured: 10,000
 * lookups ~80 ms, one scan of 10,000 entries ~2 ms). */
#define BULK_ROWS 200

/* Fills column col of the rows from run_params or run_summary (only the
 * cells still NULL when only_null). */
static enum kiln_status fill_keyed_column(struct kiln_store *ws, bool param, const char *key,
                                          struct cell *cells, int n_cols, int col, int64_t n_rows,
                                          const int64_t *ids, const struct id_row *by_id,
                                          bool only_null)
{
    const char *table = param ? "run_params" : "run_summary";
    char sql[160];
    sqlite3_stmt *s;
    enum kiln_status st = KILN_OK;
    if (n_rows <= BULK_ROWS) {
        snprintf(sql, sizeof sql, "SELECT value FROM %s WHERE run_id = ? AND key = ?", table);
        if ((st = store_prepare(ws, sql, &s)) != KILN_OK) return st;
        for (int64_t r = 0; r < n_rows && st == KILN_OK; r++) {
            struct cell *c = &cells[r * n_cols + col];
            if (only_null && c->type != SQLITE_NULL) continue;
            sqlite3_bind_int64(s, 1, ids[r]);
            sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
            if (sqlite3_step(s) == SQLITE_ROW && !cell_set_column(c, s, 0))
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            sqlite3_reset(s);
        }
    } else {
        snprintf(sql, sizeof sql, "SELECT run_id, value FROM %s WHERE key = ?", table);
        if ((st = store_prepare(ws, sql, &s)) != KILN_OK) return st;
        sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
        /* Run ids are mostly dense: index rows by id directly when the
         * span allows, else binary search. */
        int64_t lo = by_id[0].id, span = by_id[n_rows - 1].id - lo + 1;
        int64_t *row_of = span <= 4 * n_rows ? malloc((size_t)span * sizeof *row_of) : NULL;
        if (row_of) {
            for (int64_t i = 0; i < span; i++) row_of[i] = -1;
            for (int64_t r = 0; r < n_rows; r++) row_of[by_id[r].id - lo] = by_id[r].row;
        }
        while (st == KILN_OK && sqlite3_step(s) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(s, 0), row = -1;
            if (row_of) {
                if (id >= lo && id - lo < span) row = row_of[id - lo];
            } else {
                struct id_row want = {.id = id};
                const struct id_row *hit = bsearch(&want, by_id, (size_t)n_rows, sizeof *by_id, id_row_cmp);
                if (hit) row = hit->row;
            }
            if (row < 0) continue;
            struct cell *c = &cells[row * n_cols + col];
            if (only_null && c->type != SQLITE_NULL) continue;
            if (!cell_set_column(c, s, 1)) st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        }
        free(row_of);
    }
    sqlite3_finalize(s);
    return st;
}

/* Writes s padded with blanks to width (right-aligned when right). */
static void put_padded(FILE *out, const char *s, size_t len, size_t width, bool right)
{
    static const char blanks[] = "                                                                ";
    size_t pad = width > len ? width - len : 0;
    if (!right) fwrite(s, 1, len, out);
    while (pad > 0) {
        size_t n = pad < sizeof blanks - 1 ? pad : sizeof blanks - 1;
        fwrite(blanks, 1, n, out);
        pad -= n;
    }
    if (right) fwrite(s, 1, len, out);
}

/* The table: every cell's text goes into one buffer first (the widths
 * need them all), then out in one locked pass. */
static void print_table(FILE *out, const struct column *cols, int n_cols, const struct cell *cells,
                        int64_t n_rows)
{
    size_t n = (size_t)(n_rows * n_cols);
    size_t *width = calloc((size_t)n_cols, sizeof *width);
    bool *num = calloc((size_t)n_cols, sizeof *num);
    size_t *off = malloc((n + 1) * sizeof *off);
    struct sbuf text = {0};
    bool ok = width && num && off;
    for (int i = 0; ok && i < n_cols; i++) {
        width[i] = strlen(cols[i].key);
        num[i] = true;
    }
    for (size_t c = 0; ok && c < n; c++) {
        char buf[512];
        size_t blen = cell_text(&cells[c], buf, sizeof buf);
        off[c] = text.len;
        sbuf_append(&text, buf, blen);
        int i = (int)(c % (size_t)n_cols);
        size_t len = text.len - off[c];
        if (len > width[i]) width[i] = len;
        /* Numbers right-aligned (with their header), text left-aligned. */
        if (cells[c].type == SQLITE_TEXT) num[i] = false;
    }
    if (ok && !text.failed) {
        off[n] = text.len;
        flockfile(out);
        for (int i = 0; i < n_cols; i++) {
            bool last = i + 1 == n_cols;
            put_padded(out, cols[i].key, strlen(cols[i].key), last && !num[i] ? 0 : width[i], num[i]);
            fputs(last ? "\n" : "  ", out);
        }
        for (size_t c = 0; c < n; c++) {
            int i = (int)(c % (size_t)n_cols);
            bool last = i + 1 == n_cols;
            put_padded(out, text.p + off[c], off[c + 1] - off[c], last && !num[i] ? 0 : width[i],
                       num[i]);
            fputs(last ? "\n" : "  ", out);
        }
        funlockfile(out);
    }
    sbuf_free(&text);
    free(off);
    free(width);
    free(num);
}

/* JSON text of a string, escaped as RFC 8259 requires (the caller holds
 * out's lock). */
static void json_put_string(FILE *out, const char *t)
{
    putc_unlocked('"', out);
    for (const unsigned char *c = (const unsigned char *)t; *c; c++) {
        if (*c == '"' || *c == '\\') {
            putc_unlocked('\\', out);
            putc_unlocked(*c, out);
        } else if (*c == '\n') {
            fputs("\\n", out);
        } else if (*c < 0x20) {
            fprintf(out, "\\u%04x", *c);
        } else {
            putc_unlocked(*c, out);
        }
    }
    putc_unlocked('"', out);
}

/* The listing as a JSON array of objects, written directly (a listing of
 * 10,000 runs through a JSON tree costs more than the query). Laid out as
 * the other --json outputs (jansson, indent 2, reals with 10 digits). */
static void list_json(FILE *out, const struct column *cols, int n_cols, const struct cell *cells,
                      int64_t n_rows)
{
    flockfile(out);
    fputs(n_rows ? "[\n" : "[]", out);
    for (int64_t r = 0; r < n_rows; r++) {
        fputs("  {\n", out);
        for (int i = 0; i < n_cols; i++) {
            const struct cell *c = &cells[r * n_cols + i];
            fputs("    ", out);
            json_put_string(out, cols[i].key);
            fputs(": ", out);
            char buf[64];
            switch (c->type) {
            case SQLITE_NULL: fputs("null", out); break;
            case SQLITE_INTEGER:
                format_int(c->i, buf);
                fputs(buf, out);
                break;
            case SQLITE_FLOAT:
                snprintf(buf, sizeof buf, "%.10g", c->d);
                if (!strpbrk(buf, ".en")) strcat(buf, ".0");
                fputs(buf, out);
                break;
            default: json_put_string(out, c->t);
            }
            fputs(i + 1 < n_cols ? ",\n" : "\n", out);
        }
        fputs(r + 1 < n_rows ? "  },\n" : "  }\n]", out);
    }
    fputc('\n', out);
    funlockfile(out);
}

static bool has_index(struct kiln_store *ws, const char *name)
{
    sqlite3_stmt *s;
    if (store_prepare(ws, "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", &s) != KILN_OK)
        return false;
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    bool found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return found;
}

/* The listing in two steps: one query picks and orders the runs (--where,
 * --sort, --limit) and reads the run's own fields; then each metric or param
 * column is read per key (see BULK_ROWS), which keeps a listing of 10,000
 * runs far from 50,000 correlated lookups. */
enum kiln_status kiln_runs_list(struct kiln_store *ws, const struct kiln_runs_query *q, FILE *out)
{
    struct column *cols = calloc(MAX_COLUMNS, sizeof *cols);
    struct sbuf sql = {0}, cond = {0};
    struct binds b = {0};
    sqlite3_stmt *s = NULL;
    struct cell *cells = NULL;
    int64_t *ids = NULL;
    struct id_row *by_id = NULL;
    int64_t n_rows = 0, cap = 0;
    int n_cols = 0;
    enum key_kind kinds[MAX_COLUMNS];
    int sql_col[MAX_COLUMNS]; /* the column of query A holding it, or -1 */
    enum kiln_status st = cols ? KILN_OK : kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    if (st == KILN_OK)
        st = parse_columns(q->columns && *q->columns ? q->columns : KILN_RUNS_DEFAULT_COLUMNS, cols,
                           &n_cols);
    if (st != KILN_OK) goto done;
    sbuf_add(&sql, "SELECT r.id");
    int a_cols = 1;
    for (int i = 0; i < n_cols; i++) {
        const struct run_field *f;
        kinds[i] = key_classify(cols[i].key, strlen(cols[i].key), &f);
        sql_col[i] = -1;
        if (kinds[i] != KEY_FIELD) continue;
        /* A dataset that is a plain file is filled from its param below. */
        sbuf_add(&sql, ", %s", !strcmp(f->key, "dataset") ? "d.name || '@v' || v.version" : f->sql);
        if (!f->covered) b.uncovered = true;
        sql_col[i] = a_cols++;
    }
    size_t joins_at = sql.len;
    sbuf_add(&sql, JOINS);
    if (q->where && *skip_space(q->where)) {
        st = where_compile(q->where, &cond, &b);
        if (st != KILN_OK) goto done;
        sbuf_add(&sql, " WHERE %s", cond.p);
    }
    if (q->sort && *q->sort) {
        size_t len = strlen(q->sort);
        if (!key_valid(q->sort, len)) {
            st = kiln_errorf(KILN_ERR_USAGE, "--sort: '%.60s' is not a key", q->sort);
            goto done;
        }
        struct sbuf expr = {0};
        enum key_kind kind;
        bool numeric;
        if (!key_sql(&expr, &b, q->sort, len, false, &kind, &numeric)) {
            sbuf_free(&expr);
            st = kiln_errorf(KILN_ERR_USAGE, "--sort: too many values");
            goto done;
        }
        /* Params are text: sort them as numbers first (lr 0.003 before
         * 0.01), then as text (names such as adam, sgd). */
        const char *dir = q->desc ? "DESC" : "ASC";
        if (kind == KEY_PARAM)
            sbuf_add(&sql, " ORDER BY %s IS NULL, CAST(%s AS REAL) %s, %s %s, r.id DESC", expr.p,
                     expr.p, dir, expr.p, dir);
        else
            sbuf_add(&sql, " ORDER BY %s IS NULL, %s %s, r.id DESC", expr.p, expr.p, dir);
        sbuf_free(&expr);
        warn_unknown_key(ws, q->sort);
    } else {
        sbuf_add(&sql, " ORDER BY r.id %s", q->desc ? "ASC" : "DESC");
    }
    if (q->limit > 0) sbuf_add(&sql, " LIMIT %lld", (long long)q->limit);
    /* When every run field asked for is in runs_status, read the index
     * instead of the table: the rows hold the configs (kilobytes each), and
     * the planner prefers the table's id order to a sort. */
    bool few = q->limit > 0 && q->limit <= BULK_ROWS && !(q->where && *skip_space(q->where)) &&
               !(q->sort && *q->sort); /* the newest few: the table in id order stops early */
    if (!b.uncovered && !few && !sql.failed && has_index(ws, "runs_status")) {
        static const char from[] = " FROM runs r";
        struct sbuf with = {0};
        sbuf_append(&with, sql.p, joins_at + strlen(from));
        sbuf_add(&with, " INDEXED BY runs_status%s", sql.p + joins_at + strlen(from));
        sbuf_free(&sql);
        sql = with;
    }
    if (sql.failed) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (q->where) warn_where_keys(ws, q->where);
    st = store_prepare(ws, sql.p, &s);
    if (st != KILN_OK) goto done;
    binds_apply(&b, s);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n_rows == cap) {
            cap = cap ? cap * 2 : 256;
            struct cell *c = realloc(cells, (size_t)(cap * n_cols) * sizeof *c);
            if (c) cells = c;
            int64_t *i = c ? realloc(ids, (size_t)cap * sizeof *i) : NULL;
            if (i) ids = i;
            if (!c || !i) {
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
                break;
            }
        }
        ids[n_rows] = sqlite3_column_int64(s, 0);
        struct cell *row = &cells[n_rows * n_cols];
        for (int i = 0; i < n_cols; i++) row[i] = (struct cell){.type = SQLITE_NULL};
        n_rows++;
        for (int i = 0; i < n_cols && st == KILN_OK; i++)
            if (sql_col[i] >= 0 && !cell_set_column(&row[i], s, sql_col[i]))
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        if (st != KILN_OK) break;
    }
    if (st == KILN_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) st = store_sql_error(ws, "listing runs");
    sqlite3_finalize(s);
    s = NULL;
    if (st != KILN_OK) goto done;
    if (n_rows > BULK_ROWS) {
        if (!(by_id = malloc((size_t)n_rows * sizeof *by_id))) {
            st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (int64_t r = 0; r < n_rows; r++) by_id[r] = (struct id_row){ids[r], r};
        qsort(by_id, (size_t)n_rows, sizeof *by_id, id_row_cmp);
    }
    for (int i = 0; i < n_cols && st == KILN_OK; i++) {
        if (kinds[i] == KEY_FIELD && !strcmp(cols[i].key, "dataset"))
            st = fill_keyed_column(ws, true, "data", cells, n_cols, i, n_rows, ids, by_id, true);
        else if (kinds[i] != KEY_FIELD)
            st = fill_keyed_column(ws, kinds[i] == KEY_PARAM, cols[i].key, cells, n_cols, i, n_rows,
                                   ids, by_id, false);
    }
    if (st != KILN_OK) goto done;
    if (q->json) {
        list_json(out, cols, n_cols, cells, n_rows);
    } else {
        print_table(out, cols, n_cols, cells, n_rows);
    }
done:
    for (int64_t c = 0; cells && c < n_rows * n_cols; c++) free(cells[c].t);
    free(cells);
    free(ids);
    free(by_id);
    sqlite3_finalize(s);
    binds_free(&b);
    sbuf_free(&sql);
    sbuf_free(&cond);
    free(cols);
    return st;
}

/* --- show ------------------------------------------------------------------------------- */

/* Metrics in the order a person reads them; others follow alphabetically. */
static const char *const METRIC_ORDER[] = {
    "epoch",   "lr",      "train_loss", "val_loss", "val_accuracy", "val_macro_f1",
    "val_mse", "val_mae", "val_r2",     "seconds",  "samples_per_s"};
#define N_METRIC_ORDER ((int)(sizeof METRIC_ORDER / sizeof METRIC_ORDER[0]))

static int metric_rank(const char *key)
{
    for (int i = 0; i < N_METRIC_ORDER; i++)
        if (!strcmp(METRIC_ORDER[i], key)) return i;
    return N_METRIC_ORDER;
}

static int key_cmp(const void *a, const void *b)
{
    const char *ka = *(const char *const *)a, *kb = *(const char *const *)b;
    int ra = metric_rank(ka), rb = metric_rank(kb);
    if (ra != rb) return ra - rb;
    return strcmp(ka, kb);
}

struct epoch_table {
    char **keys;
    int n_keys;
    int64_t *steps, *epochs;
    double *values; /* [row * n_keys + key], NAN when absent */
    int n_rows;
};

static void epoch_table_free(struct epoch_table *t)
{
    for (int i = 0; i < t->n_keys; i++) free(t->keys[i]);
    free(t->keys);
    free(t->steps);
    free(t->epochs);
    free(t->values);
    memset(t, 0, sizeof *t);
}

/* The per-epoch metrics as a table: one row per epoch-end step. */
static enum kiln_status epoch_table_load(struct kiln_store *ws, int64_t id, struct epoch_table *t)
{
    memset(t, 0, sizeof *t);
    static const char *const where =
        "run_id = ?1 AND key != 'step_loss' AND key NOT LIKE 'test\\_%' ESCAPE '\\'";
    char sql[512];
    sqlite3_stmt *s;
    snprintf(sql, sizeof sql, "SELECT DISTINCT key FROM run_metrics WHERE %s", where);
    enum kiln_status st = store_prepare(ws, sql, &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    while (st == KILN_OK && sqlite3_step(s) == SQLITE_ROW) {
        char **k = realloc(t->keys, (size_t)(t->n_keys + 1) * sizeof *k);
        if (!k || !(k[t->n_keys] = strdup(runs_col_text(s, 0)))) {
            if (k) t->keys = k;
            st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            break;
        }
        t->keys = k;
        t->n_keys++;
    }
    sqlite3_finalize(s);
    if (st != KILN_OK || t->n_keys == 0) return st;
    qsort(t->keys, (size_t)t->n_keys, sizeof *t->keys, key_cmp);
    snprintf(sql, sizeof sql, "SELECT step, epoch, key, value FROM run_metrics WHERE %s ORDER BY step",
             where);
    st = store_prepare(ws, sql, &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    int cap = 0;
    while (st == KILN_OK && sqlite3_step(s) == SQLITE_ROW) {
        int64_t step = sqlite3_column_int64(s, 0);
        if (t->n_rows == 0 || t->steps[t->n_rows - 1] != step) {
            if (t->n_rows == cap) {
                cap = cap ? cap * 2 : 16;
                int64_t *a = realloc(t->steps, (size_t)cap * sizeof *a);
                if (a) t->steps = a;
                int64_t *e = a ? realloc(t->epochs, (size_t)cap * sizeof *e) : NULL;
                if (e) t->epochs = e;
                double *v = e ? realloc(t->values, (size_t)cap * (size_t)t->n_keys * sizeof *v) : NULL;
                if (v) t->values = v;
                if (!v) {
                    st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
                    break;
                }
            }
            t->steps[t->n_rows] = step;
            t->epochs[t->n_rows] = sqlite3_column_int64(s, 1);
            for (int k = 0; k < t->n_keys; k++) t->values[t->n_rows * t->n_keys + k] = NAN;
            t->n_rows++;
        }
        const char *key = runs_col_text(s, 2);
        for (int k = 0; k < t->n_keys; k++)
            if (!strcmp(t->keys[k], key)) t->values[(t->n_rows - 1) * t->n_keys + k] = sqlite3_column_double(s, 3);
    }
    sqlite3_finalize(s);
    return st;
}

static const char RUN_SQL[] =
    "SELECT r.id, r.status, r.config, r.dataset_version_id, r.engine_version, r.git_commit, "
    "r.host, r.user, r.pid, r.device, r.threads, r.started, r.ended, r.error, r.sweep_id, "
    "r.resumed_from, r.out_dir, d.name, v.version, v.content_sha256, v.object_sha256, "
    "MAX((julianday(COALESCE(r.ended, 'now')) - julianday(r.started)) * 86400.0, 0)" JOINS
    " WHERE r.id = ?";

enum run_col {
    RC_ID, RC_STATUS, RC_CONFIG, RC_DSV, RC_ENGINE, RC_COMMIT, RC_HOST, RC_USER, RC_PID,
    RC_DEVICE, RC_THREADS, RC_STARTED, RC_ENDED, RC_ERROR, RC_SWEEP, RC_RESUMED, RC_OUT_DIR,
    RC_DNAME, RC_DVERSION, RC_DCONTENT, RC_DOBJECT, RC_DURATION
};

static enum kiln_status show_json(struct kiln_store *ws, sqlite3_stmt *run, int64_t id, FILE *out)
{
    json_t *o = json_object();
    if (!o) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    static const struct {
        const char *name;
        int col;
    } plain[] = {
        {"id", RC_ID}, {"status", RC_STATUS}, {"started", RC_STARTED}, {"ended", RC_ENDED},
        {"duration_s", RC_DURATION}, {"error", RC_ERROR}, {"engine_version", RC_ENGINE},
        {"git_commit", RC_COMMIT}, {"host", RC_HOST}, {"user", RC_USER}, {"pid", RC_PID},
        {"device", RC_DEVICE}, {"threads", RC_THREADS}, {"sweep_id", RC_SWEEP},
        {"resumed_from", RC_RESUMED}, {"out_dir", RC_OUT_DIR},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        json_object_set_new(o, plain[i].name, col_json(run, plain[i].col));
    if (sqlite3_column_type(run, RC_DSV) != SQLITE_NULL)
        json_object_set_new(o, "dataset",
                            json_pack("{s:I, s:s, s:I, s:s, s:s}", "version_id",
                                      (json_int_t)sqlite3_column_int64(run, RC_DSV), "name",
                                      runs_col_text(run, RC_DNAME), "version",
                                      (json_int_t)sqlite3_column_int64(run, RC_DVERSION),
                                      "content_sha256", runs_col_text(run, RC_DCONTENT),
                                      "object_sha256", runs_col_text(run, RC_DOBJECT)));
    else
        json_object_set_new(o, "dataset", json_null());
    json_t *params = json_object(), *metrics = json_object(), *epochs = json_array(),
           *ckpts = json_array();
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(ws, "SELECT key, value FROM run_params WHERE run_id = ?", &s);
    if (st == KILN_OK) {
        sqlite3_bind_int64(s, 1, id);
        while (sqlite3_step(s) == SQLITE_ROW)
            json_object_set_new(params, runs_col_text(s, 0), json_string(runs_col_text(s, 1)));
        sqlite3_finalize(s);
    }
    struct epoch_table t;
    if (st == KILN_OK) st = epoch_table_load(ws, id, &t);
    if (st == KILN_OK) {
        for (int r = 0; r < t.n_rows; r++) {
            json_t *row = json_object();
            json_object_set_new(row, "step", json_integer(t.steps[r]));
            for (int k = 0; k < t.n_keys; k++) {
                double v = t.values[r * t.n_keys + k];
                if (!isnan(v)) json_object_set_new(row, t.keys[k], json_real(v));
            }
            json_array_append_new(epochs, row);
        }
        epoch_table_free(&t);
    }
    if (st == KILN_OK)
        st = store_prepare(ws,
                           "SELECT id, epoch, step, final, object_sha256, created FROM checkpoints "
                           "WHERE run_id = ? ORDER BY step, id",
                           &s);
    if (st == KILN_OK) {
        sqlite3_bind_int64(s, 1, id);
        while (sqlite3_step(s) == SQLITE_ROW)
            json_array_append_new(
                ckpts, json_pack("{s:I, s:I, s:I, s:b, s:s, s:s}", "id",
                                 (json_int_t)sqlite3_column_int64(s, 0), "epoch",
                                 (json_int_t)sqlite3_column_int64(s, 1), "step",
                                 (json_int_t)sqlite3_column_int64(s, 2), "final",
                                 sqlite3_column_int(s, 3), "object_sha256", runs_col_text(s, 4),
                                 "created", runs_col_text(s, 5)));
        sqlite3_finalize(s);
    }
    if (st == KILN_OK) st = store_prepare(ws, "SELECT key, value FROM run_summary WHERE run_id = ?", &s);
    if (st == KILN_OK) {
        sqlite3_bind_int64(s, 1, id);
        while (sqlite3_step(s) == SQLITE_ROW)
            json_object_set_new(metrics, runs_col_text(s, 0), json_real(sqlite3_column_double(s, 1)));
        sqlite3_finalize(s);
    }
    json_object_set_new(o, "params", params);
    json_object_set_new(o, "epochs", epochs);
    json_object_set_new(o, "checkpoints", ckpts);
    json_object_set_new(o, "metrics", metrics);
    json_object_set_new(o, "config", json_string(runs_col_text(run, RC_CONFIG)));
    if (st != KILN_OK) {
        json_decref(o);
        return st;
    }
    return json_emit(o, out);
}

static void show_line(FILE *out, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void show_line(FILE *out, const char *label, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(out, "%-13s", label);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    va_end(ap);
}

static enum kiln_status show_text(struct kiln_store *ws, sqlite3_stmt *run, int64_t id, FILE *out)
{
    fprintf(out, "run:%lld  %s\n", (long long)id, runs_col_text(run, RC_STATUS));
    if (sqlite3_column_type(run, RC_ERROR) != SQLITE_NULL)
        show_line(out, "error", "%s", runs_col_text(run, RC_ERROR));
    sqlite3_stmt *s;
    char data[4096] = "";
    enum kiln_status st = store_prepare(ws, "SELECT key, value FROM run_params WHERE run_id = ? AND "
                                            "key IN ('data', 'data.sha256')",
                                        &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    char data_sha[65] = "";
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (!strcmp(runs_col_text(s, 0), "data")) snprintf(data, sizeof data, "%s", runs_col_text(s, 1));
        else snprintf(data_sha, sizeof data_sha, "%s", runs_col_text(s, 1));
    }
    sqlite3_finalize(s);
    if (sqlite3_column_type(run, RC_DSV) != SQLITE_NULL)
        show_line(out, "dataset", "%s@v%lld  content %.12s  object %.12s", runs_col_text(run, RC_DNAME),
                  (long long)sqlite3_column_int64(run, RC_DVERSION), runs_col_text(run, RC_DCONTENT),
                  runs_col_text(run, RC_DOBJECT));
    else
        show_line(out, "dataset", "%s  content %.12s (a file, not a registered version)", data,
                  data_sha);
    if (data[0] && sqlite3_column_type(run, RC_DSV) != SQLITE_NULL) show_line(out, "data", "%s", data);
    double dur = sqlite3_column_double(run, RC_DURATION);
    show_line(out, "started", "%s", runs_col_text(run, RC_STARTED));
    if (sqlite3_column_type(run, RC_ENDED) != SQLITE_NULL)
        show_line(out, "ended", "%s  (%.1f s)", runs_col_text(run, RC_ENDED), dur);
    show_line(out, "engine", "kiln %s, commit %s", runs_col_text(run, RC_ENGINE),
              runs_col_text(run, RC_COMMIT));
    show_line(out, "host", "%s@%s, pid %lld", runs_col_text(run, RC_USER), runs_col_text(run, RC_HOST),
              (long long)sqlite3_column_int64(run, RC_PID));
    const char *device = runs_col_text(run, RC_DEVICE);
    show_line(out, "device", "%s", strncmp(device, "device ", 7) ? device : device + 7);
    show_line(out, "threads", "%lld%s", (long long)sqlite3_column_int64(run, RC_THREADS),
              sqlite3_column_int64(run, RC_THREADS) == 0 ? " (every core)" : "");
    if (sqlite3_column_type(run, RC_SWEEP) != SQLITE_NULL)
        show_line(out, "sweep", "%lld", (long long)sqlite3_column_int64(run, RC_SWEEP));
    if (sqlite3_column_type(run, RC_RESUMED) != SQLITE_NULL)
        show_line(out, "resumed from", "run:%lld", (long long)sqlite3_column_int64(run, RC_RESUMED));
    show_line(out, "out_dir", "%s", runs_col_text(run, RC_OUT_DIR));

    fprintf(out, "\nparams\n");
    st = store_prepare(ws, "SELECT key, value FROM run_params WHERE run_id = ? ORDER BY key", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    while (sqlite3_step(s) == SQLITE_ROW)
        fprintf(out, "  %-34s %s\n", runs_col_text(s, 0), runs_col_text(s, 1));
    sqlite3_finalize(s);

    struct epoch_table t;
    st = epoch_table_load(ws, id, &t);
    if (st != KILN_OK) return st;
    if (t.n_rows > 0) {
        fprintf(out, "\nepochs\n  %6s", "step");
        for (int k = 0; k < t.n_keys; k++) fprintf(out, "  %*s", k == 0 ? 5 : 13, t.keys[k]);
        fputc('\n', out);
        for (int r = 0; r < t.n_rows; r++) {
            fprintf(out, "  %6lld", (long long)t.steps[r]);
            for (int k = 0; k < t.n_keys; k++) {
                char v[32] = "-";
                double x = t.values[r * t.n_keys + k];
                if (!isnan(x)) runs_format_metric(x, v, sizeof v);
                fprintf(out, "  %*s", k == 0 ? 5 : 13, v);
            }
            fputc('\n', out);
        }
    }
    epoch_table_free(&t);

    st = store_prepare(ws,
                       "SELECT id, epoch, step, final, object_sha256, created FROM checkpoints "
                       "WHERE run_id = ? ORDER BY step, id",
                       &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    bool any = false;
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (!any) fprintf(out, "\ncheckpoints\n  %5s  %5s  %6s  %-5s  %-16s  %s\n", "id", "epoch",
                          "step", "final", "object", "created");
        any = true;
        fprintf(out, "  %5lld  %5lld  %6lld  %-5s  %.16s  %s\n", (long long)sqlite3_column_int64(s, 0),
                (long long)sqlite3_column_int64(s, 1), (long long)sqlite3_column_int64(s, 2),
                sqlite3_column_int(s, 3) ? "yes" : "no", runs_col_text(s, 4), runs_col_text(s, 5));
    }
    sqlite3_finalize(s);

    st = store_prepare(ws, "SELECT key, value FROM run_summary WHERE run_id = ? ORDER BY key", &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    any = false;
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (!any) fprintf(out, "\nfinal metrics\n");
        any = true;
        fprintf(out, "  %-20s %.6g\n", runs_col_text(s, 0), sqlite3_column_double(s, 1));
    }
    sqlite3_finalize(s);

    st = store_prepare(ws,
                       "SELECT COUNT(*), MIN(step), MAX(step) FROM run_metrics WHERE run_id = ? "
                       "AND key = 'step_loss'",
                       &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, id);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0)
        fprintf(out, "\nstep losses   %lld logged, steps %lld to %lld\n",
                (long long)sqlite3_column_int64(s, 0), (long long)sqlite3_column_int64(s, 1),
                (long long)sqlite3_column_int64(s, 2));
    sqlite3_finalize(s);

    fprintf(out, "\nconfig\n");
    const char *cfg = runs_col_text(run, RC_CONFIG);
    while (*cfg) {
        const char *nl = strchr(cfg, '\n');
        int len = nl ? (int)(nl - cfg) : (int)strlen(cfg);
        fprintf(out, "  %.*s\n", len, cfg);
        cfg += len + (nl ? 1 : 0);
    }
    return KILN_OK;
}

enum kiln_status kiln_runs_show(struct kiln_store *ws, int64_t id, bool json, FILE *out)
{
    sqlite3_stmt *run;
    enum kiln_status st = store_prepare(ws, RUN_SQL, &run);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(run, 1, id);
    if (sqlite3_step(run) != SQLITE_ROW) {
        sqlite3_finalize(run);
        return kiln_errorf(KILN_ERR_NOT_FOUND, "run:%lld: no such run", (long long)id);
    }
    st = json ? show_json(ws, run, id, out) : show_text(ws, run, id, out);
    sqlite3_finalize(run);
    return st;
}

/* --- compare ------------------------------------------------------------------------------ */

/* The union of keys of runs ids from sql (run_id = ?, key, value), with each
 * run's value (NULL when it lacks the key). */
struct kv_grid {
    char **keys;
    int n_keys;
    int n_runs;
    char **text;     /* [key * n_runs + run] (params), NULL when absent */
    double *num;     /* metrics; NAN when absent */
};

static void kv_grid_free(struct kv_grid *g)
{
    for (int k = 0; k < g->n_keys; k++) {
        free(g->keys[k]);
        for (int r = 0; g->text && r < g->n_runs; r++) free(g->text[k * g->n_runs + r]);
    }
    free(g->keys);
    free(g->text);
    free(g->num);
    memset(g, 0, sizeof *g);
}

static int kv_find(struct kv_grid *g, const char *key, bool numeric)
{
    for (int k = 0; k < g->n_keys; k++)
        if (!strcmp(g->keys[k], key)) return k;
    char **keys = realloc(g->keys, (size_t)(g->n_keys + 1) * sizeof *keys);
    if (!keys) return -1;
    g->keys = keys;
    size_t cells = (size_t)(g->n_keys + 1) * (size_t)g->n_runs;
    if (numeric) {
        double *n = realloc(g->num, cells * sizeof *n);
        if (!n) return -1;
        g->num = n;
        for (int r = 0; r < g->n_runs; r++) n[g->n_keys * g->n_runs + r] = NAN;
    } else {
        char **t = realloc(g->text, cells * sizeof *t);
        if (!t) return -1;
        g->text = t;
        for (int r = 0; r < g->n_runs; r++) t[g->n_keys * g->n_runs + r] = NULL;
    }
    if (!(keys[g->n_keys] = strdup(key))) return -1;
    return g->n_keys++;
}

static enum kiln_status kv_grid_load(struct kiln_store *ws, const char *sql, const int64_t *ids,
                                     int n, bool numeric, struct kv_grid *g)
{
    memset(g, 0, sizeof *g);
    g->n_runs = n;
    sqlite3_stmt *s = NULL;
    enum kiln_status st = store_prepare(ws, sql, &s);
    for (int r = 0; st == KILN_OK && r < n; r++) {
        sqlite3_bind_int64(s, 1, ids[r]);
        while (st == KILN_OK && sqlite3_step(s) == SQLITE_ROW) {
            int k = kv_find(g, runs_col_text(s, 0), numeric);
            if (k < 0) {
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
                break;
            }
            if (numeric) {
                g->num[k * n + r] = sqlite3_column_double(s, 1);
            } else {
                free(g->text[k * n + r]);
                if (!(g->text[k * n + r] = strdup(runs_col_text(s, 1))))
                    st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            }
        }
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    if (st == KILN_OK && numeric && g->n_keys > 1) {
        /* Order keys as a person reads them; move the values with them. */
        for (int i = 1; i < g->n_keys; i++)
            for (int j = i; j > 0 && key_cmp(&g->keys[j], &g->keys[j - 1]) < 0; j--) {
                char *t = g->keys[j];
                g->keys[j] = g->keys[j - 1];
                g->keys[j - 1] = t;
                for (int r = 0; r < n; r++) {
                    double x = g->num[j * n + r];
                    g->num[j * n + r] = g->num[(j - 1) * n + r];
                    g->num[(j - 1) * n + r] = x;
                }
            }
    }
    return st;
}

static bool row_differs(const struct kv_grid *g, int k)
{
    for (int r = 1; r < g->n_runs; r++) {
        const char *a = g->text[k * g->n_runs], *b = g->text[k * g->n_runs + r];
        if (!a != !b || (a && strcmp(a, b))) return true;
    }
    return false;
}

/* Prints rows of cells (row 0 the header) with columns as wide as their
 * widest cell; no trailing blanks. */
static void print_grid(FILE *out, char **cells, int rows, int cols)
{
    int w[MAX_COLUMNS] = {0};
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols && c < MAX_COLUMNS; c++)
            if ((int)strlen(cells[r * cols + c]) > w[c]) w[c] = (int)strlen(cells[r * cols + c]);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols && c < MAX_COLUMNS; c++)
            if (c + 1 < cols) fprintf(out, "%-*s  ", w[c], cells[r * cols + c]);
            else fprintf(out, "%s\n", cells[r * cols + c]);
}

static enum kiln_status compare_text(const struct kv_grid *p, const struct kv_grid *m,
                                     const int64_t *ids, int n, bool all, FILE *out)
{
    if (n + 1 > MAX_COLUMNS) return kiln_errorf(KILN_ERR_USAGE, "compare: at most %d runs", MAX_COLUMNS - 1);
    int cols = n + 1, rows = 1 + (p->n_keys > m->n_keys ? p->n_keys : m->n_keys);
    char **cells = calloc((size_t)rows * (size_t)cols, sizeof *cells);
    if (!cells) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    enum kiln_status st = KILN_OK;
    char buf[512];
#define CELL(r, c, ...)                                                           \
    do {                                                                          \
        runs_fmt(buf, sizeof buf, __VA_ARGS__);                                   \
        free(cells[(r) * cols + (c)]);                                            \
        if (!(cells[(r) * cols + (c)] = strdup(buf))) st = KILN_ERR_NOMEM;        \
    } while (0)
    /* params */
    CELL(0, 0, "%s", all ? "params" : "params that differ");
    for (int r = 0; r < n; r++) CELL(0, r + 1, "run:%lld", (long long)ids[r]);
    int row = 1;
    for (int k = 0; k < p->n_keys; k++) {
        if (!all && !row_differs(p, k)) continue;
        CELL(row, 0, "%s", p->keys[k]);
        for (int r = 0; r < n; r++) {
            const char *t = p->text[k * n + r];
            CELL(row, r + 1, "%.60s", t ? t : "-");
        }
        row++;
    }
    if (st == KILN_OK) print_grid(out, cells, row, cols);
    if (row == 1) fprintf(out, "(none: the runs share every param)\n");
    /* metrics */
    CELL(0, 0, "%s", "metrics");
    for (int r = 0; r < n; r++) CELL(0, r + 1, r ? "run:%lld (delta)" : "run:%lld", (long long)ids[r]);
    row = 1;
    for (int k = 0; k < m->n_keys; k++) {
        CELL(row, 0, "%s", m->keys[k]);
        double a = m->num[k * n];
        for (int r = 0; r < n; r++) {
            char v[32] = "-", d[32];
            double x = m->num[k * n + r];
            if (!isnan(x)) runs_format_metric(x, v, sizeof v);
            if (r > 0 && !isnan(x) && !isnan(a)) {
                runs_format_metric(x - a, d, sizeof d);
                CELL(row, r + 1, "%s (%s%s)", v, x - a >= 0 ? "+" : "", d);
            } else {
                CELL(row, r + 1, "%s", v);
            }
        }
        row++;
    }
#undef CELL
    if (st == KILN_OK) {
        fputc('\n', out);
        print_grid(out, cells, row, cols);
    }
    for (int i = 0; i < rows * cols; i++) free(cells[i]);
    free(cells);
    if (st != KILN_OK) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    return KILN_OK;
}

enum kiln_status kiln_runs_compare(struct kiln_store *ws, const int64_t *ids, int n, bool all,
                                   bool json, FILE *out)
{
    if (n < 2) return kiln_errorf(KILN_ERR_USAGE, "compare needs two runs or more");
    struct kv_grid p, m;
    /* The run's own fields first, as params named run.*, then the params. */
    static const char PARAMS_SQL[] =
        "SELECT 'run.status', status FROM runs WHERE id = ?1 UNION ALL "
        "SELECT 'run.dataset', COALESCE((SELECT d.name || '@v' || v.version FROM dataset_versions v "
        "JOIN datasets d ON d.id = v.dataset_id WHERE v.id = r.dataset_version_id), (SELECT value "
        "FROM run_params WHERE run_id = ?1 AND key = 'data')) FROM runs r WHERE r.id = ?1 UNION ALL "
        "SELECT key, value FROM (SELECT key, value FROM run_params WHERE run_id = ?1 ORDER BY key)";
    enum kiln_status st = kv_grid_load(ws, PARAMS_SQL, ids, n, false, &p);
    if (st != KILN_OK) {
        kv_grid_free(&p);
        return st;
    }
    st = kv_grid_load(ws, "SELECT key, value FROM run_summary WHERE run_id = ?1", ids, n, true, &m);
    if (st != KILN_OK) {
        kv_grid_free(&p);
        kv_grid_free(&m);
        return st;
    }
    if (json) {
        json_t *o = json_object(), *runs = json_array(), *params = json_object(),
               *metrics = json_object();
        for (int r = 0; r < n; r++) json_array_append_new(runs, json_integer(ids[r]));
        for (int k = 0; k < p.n_keys; k++) {
            if (!all && !row_differs(&p, k)) continue;
            json_t *vals = json_array();
            for (int r = 0; r < n; r++) {
                const char *t = p.text[k * n + r];
                json_array_append_new(vals, t ? json_string(t) : json_null());
            }
            json_object_set_new(params, p.keys[k], vals);
        }
        for (int k = 0; k < m.n_keys; k++) {
            json_t *vals = json_array(), *deltas = json_array();
            double a = m.num[k * n];
            for (int r = 0; r < n; r++) {
                double x = m.num[k * n + r];
                json_array_append_new(vals, isnan(x) ? json_null() : json_real(x));
                json_array_append_new(deltas, r == 0 || isnan(x) || isnan(a) ? json_null()
                                                                             : json_real(x - a));
            }
            json_object_set_new(metrics, m.keys[k], json_pack("{s:o, s:o}", "values", vals, "deltas", deltas));
        }
        json_object_set_new(o, "runs", runs);
        json_object_set_new(o, "params", params);
        json_object_set_new(o, "metrics", metrics);
        st = json_emit(o, out);
    } else {
        st = compare_text(&p, &m, ids, n, all, out);
    }
    kv_grid_free(&p);
    kv_grid_free(&m);
    return st;
}
