/* engine/data/import-csv.c: the streaming CSV tokenizer (RFC 4180) and the
 * CSV importer: a header row, one label column, numeric features. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "data-internal.h"

/* --- tokenizer -------------------------------------------------------------------- */

#define CSV_READ_BUF (1 << 16)
/* A record longer than this is almost surely an unbalanced quote swallowing
 * the rest of the file; refusing it keeps memory bounded. */
#define CSV_MAX_RECORD ((size_t)64 << 20)
#define CSV_MAX_FIELDS (1 << 20)

struct csv_reader {
    FILE *f;
    char *path;
    char delim;
    char buf[CSV_READ_BUF];
    size_t len, pos;
    char *text;        /* field bytes of the current record, each NUL-ended */
    size_t text_len, text_cap;
    size_t *starts;    /* offsets of fields in text */
    char **fields;
    int n_fields, fields_cap;
    int64_t line;      /* 1-based line of the next character */
    bool first;        /* before the first record: a UTF-8 BOM is skipped */
};

enum kiln_status csv_open(const char *path, char delimiter, struct csv_reader **out)
{
    *out = NULL;
    enum kiln_status st = KILN_OK;
    struct csv_reader *r = calloc(1, sizeof *r);
    if (!r) return kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
    if (delimiter == '"' || delimiter == '\n' || delimiter == '\r' || delimiter == '\0') {
        st = kiln_errorf(KILN_ERR_USAGE, "%s: the delimiter cannot be a quote, a line end or "
                         "NUL", path);
        goto cleanup;
    }
    st = fs_check_file(path, NULL);
    if (st != KILN_OK) goto cleanup;
    r->f = fopen(path, "rb");
    if (!r->f) {
        st = kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    st = str_dup(path, &r->path);
    if (st != KILN_OK) goto cleanup;
    r->delim = delimiter;
    r->line = 1;
    r->first = true;
    *out = r;
    r = NULL;
cleanup:
    csv_close(r);
    return st;
}

void csv_close(struct csv_reader *r)
{
    if (!r) return;
    if (r->f) fclose(r->f);
    free(r->path);
    free(r->text);
    free(r->starts);
    free(r->fields);
    free(r);
}

static int csv_getc(struct csv_reader *r)
{
    if (r->pos == r->len) {
        r->len = fread(r->buf, 1, sizeof r->buf, r->f);
        r->pos = 0;
        if (r->len == 0) return EOF;
    }
    return (unsigned char)r->buf[r->pos++];
}

static int csv_peek(struct csv_reader *r)
{
    int c = csv_getc(r);
    if (c != EOF) r->pos--;
    return c;
}

static enum kiln_status csv_put(struct csv_reader *r, char c, int64_t line)
{
    if (r->text_len == r->text_cap) {
        if (r->text_cap >= CSV_MAX_RECORD)
            return kiln_errorf(KILN_ERR_FORMAT, "%s:%" PRId64 ": record longer than %zu MiB "
                               "(an unbalanced quote?)", r->path, line, CSV_MAX_RECORD >> 20);
        size_t cap = r->text_cap ? 2 * r->text_cap : 4096;
        char *t = realloc(r->text, cap);
        if (!t) return kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", r->path);
        r->text = t;
        r->text_cap = cap;
    }
    r->text[r->text_len++] = c;
    return KILN_OK;
}

static enum kiln_status csv_field_start(struct csv_reader *r, int64_t line)
{
    if (r->n_fields == r->fields_cap) {
        if (r->fields_cap >= CSV_MAX_FIELDS)
            return kiln_errorf(KILN_ERR_FORMAT, "%s:%" PRId64 ": more than %d fields", r->path,
                               line, CSV_MAX_FIELDS);
        int cap = r->fields_cap ? 2 * r->fields_cap : 64;
        size_t *s = realloc(r->starts, (size_t)cap * sizeof *s);
        if (!s) return kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", r->path);
        r->starts = s;
        char **f = realloc(r->fields, (size_t)cap * sizeof *f);
        if (!f) return kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", r->path);
        r->fields = f;
        r->fields_cap = cap;
    }
    r->starts[r->n_fields++] = r->text_len;
    return KILN_OK;
}

/* Consumes the rest of a line end whose first character c was read. */
static void csv_eol(struct csv_reader *r, int c)
{
    if (c == '\r' && csv_peek(r) == '\n') r->pos++;
    r->line++;
}

enum kiln_status csv_next(struct csv_reader *r, char ***fields, int *n, int64_t *line)
{
    enum kiln_status st = KILN_OK;
    *n = 0;
    r->text_len = 0;
    r->n_fields = 0;
    int c = csv_getc(r);
    if (r->first) {
        r->first = false;
        /* A UTF-8 byte-order mark (Excel writes one) is not part of the header. */
        if (c == 0xEF && csv_peek(r) == 0xBB) {
            r->pos++;
            if (csv_peek(r) == 0xBF) r->pos++;
            c = csv_getc(r);
        }
    }
    while (c == '\n' || c == '\r') { /* blank lines carry no record */
        csv_eol(r, c);
        c = csv_getc(r);
    }
    if (c == EOF) goto cleanup;
    *line = r->line;
    for (;;) { /* one field per pass; c is its first character */
        st = csv_field_start(r, *line);
        if (st != KILN_OK) goto cleanup;
        if (c == '"') {
            for (;;) {
                c = csv_getc(r);
                if (c == EOF) {
                    st = kiln_errorf(KILN_ERR_FORMAT, "%s:%" PRId64 ": unterminated quoted field",
                                     r->path, *line);
                    goto cleanup;
                }
                if (c == '"') {
                    if (csv_peek(r) != '"') break;
                    r->pos++;
                } else if (c == '\n' || (c == '\r' && csv_peek(r) != '\n')) {
                    r->line++;
                }
                st = csv_put(r, (char)c, *line);
                if (st != KILN_OK) goto cleanup;
            }
            c = csv_getc(r);
            /* Blanks after a closing quote are layout, unless they delimit. */
            while ((c == ' ' || c == '\t') && c != r->delim) c = csv_getc(r);
            if (c != r->delim && c != '\n' && c != '\r' && c != EOF) {
                st = kiln_errorf(KILN_ERR_FORMAT, "%s:%" PRId64 ": unexpected '%c' after a "
                                 "closing quote (quotes inside a field must be doubled)",
                                 r->path, r->line, c);
                goto cleanup;
            }
        } else {
            while (c != r->delim && c != '\n' && c != '\r' && c != EOF) {
                st = csv_put(r, (char)c, *line);
                if (st != KILN_OK) goto cleanup;
                c = csv_getc(r);
            }
        }
        st = csv_put(r, '\0', *line);
        if (st != KILN_OK) goto cleanup;
        if (c != r->delim) break;
        c = csv_getc(r);
    }
    if (c == '\n' || c == '\r') csv_eol(r, c);
    if (ferror(r->f)) {
        st = kiln_errorf(KILN_ERR_IO, "%s: read error", r->path);
        goto cleanup;
    }
    for (int i = 0; i < r->n_fields; i++) r->fields[i] = r->text + r->starts[i];
    *fields = r->fields;
    *n = r->n_fields;
cleanup:
    return st;
}

/* --- numbers ------------------------------------------------------------------------ */

bool data_is_blank(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    return *s == '\0';
}

bool data_parse_f64(const char *s, double *out)
{
    char *end;
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) return false;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s) return false;
    while (*end == ' ' || *end == '\t') end++;
    if (*end || !isfinite(v)) return false;
    *out = v;
    return true;
}

bool data_parse_f32(const char *s, float *out)
{
    double v;
    if (!data_parse_f64(s, &v) || fabs(v) > FLT_MAX) return false;
    *out = (float)v;
    return true;
}

/* --- importer ------------------------------------------------------------------------- */

/* A distinct label text: rows refer to it by index, so a million rows of ten
 * classes store ten strings. */
struct label {
    char *text;
    double value;      /* when numeric */
    bool numeric;
    int64_t line;      /* first line it appears on */
    int32_t cls;       /* class index after sorting */
};

struct label_table {
    struct label *v;
    int64_t n, cap;
    int64_t *slots;    /* open addressing: index into v, or -1 */
    int64_t n_slots;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void labels_free(struct label_table *t)
{
    for (int64_t i = 0; i < t->n; i++) free(t->v[i].text);
    free(t->v);
    free(t->slots);
}

static enum kiln_status labels_grow(struct label_table *t)
{
    int64_t ns = t->n_slots ? 2 * t->n_slots : 64;
    int64_t *slots = malloc((size_t)ns * sizeof *slots);
    if (!slots) return kiln_errorf(KILN_ERR_NOMEM, "CSV labels: out of memory");
    for (int64_t i = 0; i < ns; i++) slots[i] = -1;
    for (int64_t i = 0; i < t->n; i++) {
        uint64_t h = hash_str(t->v[i].text) & (uint64_t)(ns - 1);
        while (slots[h] >= 0) h = (h + 1) & (uint64_t)(ns - 1);
        slots[h] = i;
    }
    free(t->slots);
    t->slots = slots;
    t->n_slots = ns;
    return KILN_OK;
}

/* Finds or adds text; *id gets its index. */
static enum kiln_status labels_intern(struct label_table *t, const char *text, int64_t line,
                                      int64_t *id)
{
    if (2 * (t->n + 1) > t->n_slots) {
        enum kiln_status st = labels_grow(t);
        if (st != KILN_OK) return st;
    }
    uint64_t h = hash_str(text) & (uint64_t)(t->n_slots - 1);
    while (t->slots[h] >= 0) {
        if (strcmp(t->v[t->slots[h]].text, text) == 0) {
            *id = t->slots[h];
            return KILN_OK;
        }
        h = (h + 1) & (uint64_t)(t->n_slots - 1);
    }
    if (t->n == t->cap) {
        int64_t cap = t->cap ? 2 * t->cap : 16;
        struct label *v = realloc(t->v, (size_t)cap * sizeof *v);
        if (!v) return kiln_errorf(KILN_ERR_NOMEM, "CSV labels: out of memory");
        t->v = v;
        t->cap = cap;
    }
    struct label *l = &t->v[t->n];
    memset(l, 0, sizeof *l);
    enum kiln_status st = str_dup(text, &l->text);
    if (st != KILN_OK) return st;
    l->numeric = data_parse_f64(text, &l->value);
    l->line = line;
    t->slots[h] = t->n;
    *id = t->n++;
    return KILN_OK;
}

/* "-3", "+7", "10": integer labels, which sort as numbers. "2.0" is not one:
 * its text differs from "2", so it is another class and sorts as text. */
static bool is_integer_text(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    if (*s == '-' || *s == '+') s++;
    if (*s < '0' || *s > '9') return false;
    while (*s >= '0' && *s <= '9') s++;
    while (*s == ' ' || *s == '\t') s++;
    return *s == '\0';
}

static int cmp_label_num(const void *a, const void *b)
{
    const struct label *p = *(struct label *const *)a, *q = *(struct label *const *)b;
    if (p->value != q->value) return p->value < q->value ? -1 : 1;
    return strcmp(p->text, q->text); /* "02" and "2": equal values, distinct texts */
}

static int cmp_label_text(const void *a, const void *b)
{
    return strcmp((*(struct label *const *)a)->text, (*(struct label *const *)b)->text);
}

/* Growable row storage; doubling keeps appends amortised O(1). */
static enum kiln_status grow(void **p, int64_t *cap, int64_t need, size_t elem, const char *path)
{
    if (need <= *cap) return KILN_OK;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory at %" PRId64 " rows", path, need);
    *p = q;
    *cap = c;
    return KILN_OK;
}

static const char *fill_name(enum kiln_fill f)
{
    return f == KILN_FILL_MEAN ? "mean" : f == KILN_FILL_ZERO ? "zero" : "none";
}

/* What each CSV column becomes. */
enum csv_role { CSV_FEATURE, CSV_LABEL, CSV_DROP, CSV_HASH };

/* "'a', 'b', ..." of the header, for messages about a column not found. */
static void column_list(char *list, size_t len, char *const *names, int ncols)
{
    size_t used = 0;
    list[0] = '\0';
    for (int j = 0; j < ncols && used + 1 < len; j++) {
        int w = snprintf(list + used, len - used, "%s'%s'", j ? ", " : "", names[j]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

/* Marks the columns of a comma-separated list (--drop-columns or
 * --hash-columns) with role; each must name a header column that has no
 * role yet. Appends the names to desc ("a, b"). */
static enum kiln_status mark_columns(const char *path, const char *list, const char *option,
                                     enum csv_role role, char *const *names, int ncols,
                                     enum csv_role *roles, int *count, char *desc, size_t desc_len)
{
    *count = 0;
    if (!list) return KILN_OK;
    char what[4200], **items = NULL;
    int n_items = 0;
    snprintf(what, sizeof what, "%s: %s", path, option);
    enum kiln_status st = str_split_list(list, what, &items, &n_items);
    for (int i = 0; i < n_items && st == KILN_OK; i++) {
        int j = 0;
        while (j < ncols && strcmp(names[j], items[i]) != 0) j++;
        if (j == ncols) {
            char cols[1024];
            column_list(cols, sizeof cols, names, ncols);
            st = kiln_errorf(KILN_ERR_USAGE, "%s: %s: no column '%s' (columns: %s)", path, option,
                             items[i], cols);
        } else if (roles[j] != CSV_FEATURE) {
            st = kiln_errorf(KILN_ERR_USAGE, "%s: %s: column '%s' is %s", path, option, names[j],
                             roles[j] == CSV_LABEL ? "the label" :
                             roles[j] == CSV_DROP ? "dropped already" : "hashed already");
        } else {
            roles[j] = role;
            size_t used = strlen(desc);
            snprintf(desc + used, desc_len - used, "%s%s", *count ? ", " : "", names[j]);
            (*count)++;
        }
    }
    strv_free(items, n_items);
    return st;
}

/* Appends hex SHA-256(salt || value) of one identifier (blanks around it
 * trimmed, as for labels) at dst. */
static enum kiln_status hash_identifier(const char *salt, const char *value, char dst[64])
{
    while (*value == ' ' || *value == '\t') value++;
    size_t n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t')) n--;
    struct sha256_ctx *c;
    enum kiln_status st = sha256_begin(&c);
    if (st != KILN_OK) return st;
    char hex[65];
    sha256_update(c, salt, strlen(salt));
    sha256_update(c, value, n);
    sha256_end(c, hex);
    memcpy(dst, hex, 64);
    return KILN_OK;
}

enum kiln_status data_import_csv(const struct kiln_import_options *opt, struct kiln_dataset *ds)
{
    enum kiln_status st = KILN_OK;
    const char *path = opt->csv;
    struct csv_reader *r = NULL;
    struct label_table labels = {0};
    char **names = NULL, **fields;
    int ncols = 0, nf = 0, label_col = -1;
    int64_t line = 0, rows = 0, xcap = 0, ycap = 0;
    float *X = NULL;
    int64_t *lab = NULL;
    double *sum = NULL;
    int64_t *valid = NULL;
    struct label **order = NULL;
    void *y = NULL;
    enum csv_role *roles = NULL;
    int n_drop = 0, n_hash = 0;
    char dropped[1024] = "", hashed_desc[1024] = "";
    char **hashed = NULL;        /* [n_hash] growable buffers of 64-digit digests */
    int64_t *hcap = NULL;
    char **hashed_names = NULL;
    if (!opt->label || !opt->label[0]) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s: CSV import needs the name of the label column",
                         path);
        goto cleanup;
    }
    if (opt->classes) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s: class names apply to IDX and HDF5 imports; a CSV's "
                         "classes are the label column's values", path);
        goto cleanup;
    }
    st = csv_open(path, opt->delimiter ? opt->delimiter : ',', &r);
    if (st != KILN_OK) goto cleanup;
    st = csv_next(r, &fields, &ncols, &line);
    if (st != KILN_OK) goto cleanup;
    if (ncols == 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: empty file (expected a header row)", path);
        goto cleanup;
    }
    names = calloc((size_t)ncols, sizeof *names);
    if (!names) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    for (int j = 0; j < ncols; j++) {
        /* Header names are trimmed: "a, b" means columns "a" and "b". */
        char *s = fields[j], *e = s + strlen(s);
        while (*s == ' ' || *s == '\t') s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
        st = str_dup(s, &names[j]);
        if (st != KILN_OK) goto cleanup;
        if (label_col < 0 && strcmp(names[j], opt->label) == 0) label_col = j;
    }
    if (label_col < 0) {
        char list[1024];
        column_list(list, sizeof list, names, ncols);
        st = kiln_errorf(KILN_ERR_USAGE, "%s: no label column '%s' (columns: %s)", path,
                         opt->label, list);
        goto cleanup;
    }
    roles = calloc((size_t)ncols, sizeof *roles);
    if (!roles) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    roles[label_col] = CSV_LABEL;
    st = mark_columns(path, opt->drop_columns, "--drop-columns", CSV_DROP, names, ncols, roles,
                      &n_drop, dropped, sizeof dropped);
    if (st == KILN_OK)
        st = mark_columns(path, opt->hash_columns, "--hash-columns", CSV_HASH, names, ncols,
                          roles, &n_hash, hashed_desc, sizeof hashed_desc);
    if (st != KILN_OK) goto cleanup;
    if (n_hash > 0 && (!opt->salt || !opt->salt[0])) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s: --hash-columns needs a salt (--salt-file FILE, or "
                         "import inside a workspace, which keeps one per dataset)", path);
        goto cleanup;
    }
    nf = ncols - 1 - n_drop - n_hash;
    if (nf == 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: no feature columns besides the label '%s'%s", path,
                         opt->label, n_drop + n_hash ? " and the dropped or hashed ones" : "");
        goto cleanup;
    }
    if (n_hash > 0) {
        hashed = calloc((size_t)n_hash, sizeof *hashed);
        hcap = calloc((size_t)n_hash, sizeof *hcap);
        hashed_names = calloc((size_t)n_hash, sizeof *hashed_names);
        if (!hashed || !hcap || !hashed_names) {
            st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
            goto cleanup;
        }
        for (int j = 0, h = 0; j < ncols && st == KILN_OK; j++)
            if (roles[j] == CSV_HASH) st = str_dup(names[j], &hashed_names[h++]);
        if (st != KILN_OK) goto cleanup;
    }
    sum = calloc((size_t)nf, sizeof *sum);
    valid = calloc((size_t)nf, sizeof *valid);
    if (!sum || !valid) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    for (;;) {
        int n = 0;
        st = csv_next(r, &fields, &n, &line);
        if (st != KILN_OK) goto cleanup;
        if (n == 0) break;
        if (n != ncols) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s:%" PRId64 ": %d fields, but the header has %d",
                             path, line, n, ncols);
            goto cleanup;
        }
        st = grow((void **)&X, &xcap, (rows + 1) * nf, sizeof *X, path);
        if (st == KILN_OK) st = grow((void **)&lab, &ycap, rows + 1, sizeof *lab, path);
        if (st != KILN_OK) goto cleanup;
        float *row = X + rows * nf;
        for (int j = 0, h = 0; j < ncols && n_hash > 0; j++) {
            if (roles[j] != CSV_HASH) continue;
            st = grow((void **)&hashed[h], &hcap[h], (rows + 1) * 64, 1, path);
            if (st == KILN_OK) st = hash_identifier(opt->salt, fields[j], hashed[h] + rows * 64);
            if (st != KILN_OK) goto cleanup;
            h++;
        }
        for (int j = 0, k = 0; j < ncols; j++) {
            if (roles[j] != CSV_FEATURE) continue; /* dropped columns are never parsed */
            if (data_parse_f32(fields[j], &row[k])) {
                sum[k] += row[k];
                valid[k]++;
            } else if (opt->fill != KILN_FILL_NONE) {
                row[k] = NAN; /* filled in once the column means are known */
            } else {
                bool blank = data_is_blank(fields[j]);
                st = kiln_errorf(KILN_ERR_FORMAT, "%s:%" PRId64 ":%s: %s%s%s (import with --fill "
                                 "mean or --fill zero to fill such values)", path, line, names[j],
                                 blank ? "missing value" : "'", blank ? "" : fields[j],
                                 blank ? "" : "' is not a finite number");
                goto cleanup;
            }
            k++;
        }
        /* Blanks around a label are layout: " cat" and "cat" are one class. */
        char *lt = fields[label_col], *le = lt + strlen(lt);
        while (*lt == ' ' || *lt == '\t') lt++;
        while (le > lt && (le[-1] == ' ' || le[-1] == '\t')) *--le = '\0';
        fields[label_col] = lt;
        if (data_is_blank(fields[label_col])) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s:%" PRId64 ":%s: missing label", path, line,
                             names[label_col]);
            goto cleanup;
        }
        st = labels_intern(&labels, fields[label_col], line, &lab[rows]);
        if (st != KILN_OK) goto cleanup;
        rows++;
    }
    if (rows == 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s: no data rows after the header", path);
        goto cleanup;
    }
    if (opt->fill != KILN_FILL_NONE)
        for (int k = 0, col = -1; k < nf; k++) {
            do col++; while (roles[col] != CSV_FEATURE);
            if (valid[k] == rows) continue;
            if (opt->fill == KILN_FILL_MEAN && valid[k] == 0) {
                st = kiln_errorf(KILN_ERR_FORMAT, "%s:%s: no numeric values to take a mean of",
                                 path, names[col]);
                goto cleanup;
            }
            float v = opt->fill == KILN_FILL_MEAN ? (float)(sum[k] / (double)valid[k]) : 0.0f;
            for (int64_t i = 0; i < rows; i++)
                if (isnan(X[i * nf + k])) X[i * nf + k] = v;
        }
    bool all_numeric = true, all_integer = true;
    const struct label *bad = NULL;
    for (int64_t i = 0; i < labels.n; i++) {
        const struct label *l = &labels.v[i];
        if (!l->numeric && (!bad || l->line < bad->line)) bad = l;
        all_numeric &= l->numeric;
        all_integer &= l->numeric && is_integer_text(l->text);
    }
    bool classify = opt->task == KILN_TASK_CLASSIFICATION ||
                    (opt->task == KILN_TASK_AUTO && !all_numeric);
    if (opt->task == KILN_TASK_REGRESSION && !all_numeric) {
        st = kiln_errorf(KILN_ERR_FORMAT, "%s:%" PRId64 ":%s: '%s' is not a number (regression "
                         "needs numeric labels)", path, bad->line, names[label_col], bad->text);
        goto cleanup;
    }
    if (classify) {
        if (labels.n < 1 || labels.n > INT32_MAX / 2) {
            st = kiln_errorf(KILN_ERR_FORMAT, "%s: %" PRId64 " distinct labels are too many "
                             "classes", path, labels.n);
            goto cleanup;
        }
        order = malloc((size_t)labels.n * sizeof *order);
        int32_t *yc = malloc((size_t)rows * sizeof *yc);
        y = yc;
        ds->classes = calloc((size_t)labels.n, sizeof *ds->classes);
        if (!order || !yc || !ds->classes) {
            st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
            goto cleanup;
        }
        for (int64_t i = 0; i < labels.n; i++) order[i] = &labels.v[i];
        /* Integer labels sort as numbers (2 before 10); anything else as text. */
        qsort(order, (size_t)labels.n, sizeof *order, all_integer ? cmp_label_num : cmp_label_text);
        for (int64_t i = 0; i < labels.n; i++) {
            order[i]->cls = (int32_t)i;
            ds->classes[i] = order[i]->text;
            order[i]->text = NULL;
            ds->n_classes++;
        }
        for (int64_t i = 0; i < rows; i++) yc[i] = labels.v[lab[i]].cls;
    } else {
        float *yr = malloc((size_t)rows * sizeof *yr);
        y = yr;
        if (!yr) {
            st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
            goto cleanup;
        }
        for (int64_t i = 0; i < rows; i++) {
            double v = labels.v[lab[i]].value;
            if (fabs(v) > FLT_MAX) {
                st = kiln_errorf(KILN_ERR_FORMAT, "%s:%" PRId64 ":%s: %g does not fit float32",
                                 path, labels.v[lab[i]].line, names[label_col], v);
                goto cleanup;
            }
            yr[i] = (float)v;
        }
    }
    /* Give the row buffer back its slack before it becomes the split. */
    float *shrunk = realloc(X, (size_t)(rows * nf) * sizeof *X);
    if (shrunk) X = shrunk;
    int64_t fshape[1] = {nf};
    st = data_split_wrap(rows, 1, fshape, KILN_DTYPE_F32, X, classify ? KILN_DTYPE_I32
                                                                      : KILN_DTYPE_F32,
                         1, y, &ds->splits[KILN_SPLIT_TRAIN]);
    X = NULL;
    y = NULL;
    if (st != KILN_OK) goto cleanup;
    if (n_hash > 0) {
        struct kiln_split *tr = ds->splits[KILN_SPLIT_TRAIN];
        tr->n_hashed = n_hash;
        tr->hashed_names = hashed_names;
        tr->hashed = hashed;
        hashed_names = hashed = NULL;
    }
    /* Feature names are the header minus the label, dropped and hashed columns. */
    for (int j = 0, k = 0; j < ncols; j++) {
        if (roles[j] == CSV_FEATURE) {
            names[k++] = names[j];
        } else {
            free(names[j]);
        }
        if (j >= k) names[j] = NULL;
    }
    ds->feature_names = names;
    ds->n_features = nf;
    names = NULL;
    char src[8192], delim[8], privacy[2200] = "";
    char dc = opt->delimiter ? opt->delimiter : ',';
    snprintf(delim, sizeof delim, dc == '\t' ? "tab" : "'%c'", dc);
    if (n_drop > 0) snprintf(privacy, sizeof privacy, ", dropped %s", dropped);
    if (n_hash > 0)
        snprintf(privacy + strlen(privacy), sizeof privacy - strlen(privacy),
                 ", hashed %s (salted SHA-256)", hashed_desc);
    snprintf(src, sizeof src, "csv: %s (label '%s', delimiter %s, task %s, fill %s%s)", path,
             opt->label, delim, classify ? "classification" : "regression",
             fill_name(opt->fill), privacy);
    st = str_dup(src, &ds->source);
cleanup:
    csv_close(r);
    labels_free(&labels);
    strv_free(names, ncols);
    free(X);
    free(y);
    free(lab);
    free(sum);
    free(valid);
    free(order);
    free(roles);
    strv_free(hashed, n_hash);
    strv_free(hashed_names, n_hash);
    free(hcap);
    return st;
}
