/* engine/config/config.c: YAML -> struct kiln_config.
 *
 * Three passes, so that every value, whichever way it arrived, meets the same
 * checks: (1) libyaml's event API builds a small tree of nodes, each with the
 * file:line:column it came from, refusing what we never accept (aliases,
 * anchors, tags, duplicate keys, deep nesting, several documents); (2) each
 * --set is parsed the same way and grafted into that tree, its nodes marked
 * "--set:N:COL"; (3) the tree is walked against the schema table, which
 * stores every value and reports the first problem with its mark and key.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config/schema.h"
#include "core/util.h"
#include "kiln/config.h"

/* --- the node tree ------------------------------------------------------------------ */

enum node_kind { NODE_SCALAR, NODE_SEQ, NODE_MAP };

struct node {
    enum node_kind kind;
    bool plain;       /* scalar written unquoted: 10 is a number, "10" a string */
    const char *src;  /* file name, or "--set" */
    int line, col;    /* 1-based; for --set, line is the --set's position */
    int n;            /* children */
    struct node *first, *last, *next; /* children in order (a map's are its keys) */
    struct node *value;               /* a map key's value */
    struct node *all;                 /* every node of the tree, for freeing */
    char text[];                      /* scalar text (keys too), NUL-terminated */
};

struct tree {
    struct node *all;
};

static void tree_free(struct tree *t)
{
    while (t->all) {
        struct node *n = t->all;
        t->all = n->all;
        free(n);
    }
}

static struct node *node_new(struct tree *t, enum node_kind kind, const char *text, size_t len,
                             const char *src, int line, int col)
{
    struct node *n = calloc(1, sizeof *n + len + 1);
    if (!n) return NULL;
    n->kind = kind;
    n->plain = true;
    n->src = src;
    n->line = line;
    n->col = col;
    if (len) memcpy(n->text, text, len);
    n->all = t->all;
    t->all = n;
    return n;
}

static void node_append(struct node *parent, struct node *child)
{
    if (parent->last)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->n++;
}

static struct node *map_find(const struct node *map, const char *key)
{
    for (struct node *k = map->first; k; k = k->next)
        if (strcmp(k->text, key) == 0) return k;
    return NULL;
}

/* YAML's spellings of null; an empty section (`train:`) means "all defaults". */
static bool node_is_null(const struct node *n)
{
    return n->kind == NODE_SCALAR && n->plain &&
           (!strcmp(n->text, "") || !strcmp(n->text, "~") || !strcmp(n->text, "null") ||
            !strcmp(n->text, "Null") || !strcmp(n->text, "NULL"));
}

static void node_describe(const struct node *n, char *buf, size_t len)
{
    char q[80];
    if (n->kind == NODE_MAP) {
        snprintf(buf, len, "a mapping");
    } else if (n->kind == NODE_SEQ) {
        snprintf(buf, len, "a list");
    } else if (n->plain && !n->text[0]) {
        snprintf(buf, len, "an empty value");
    } else {
        schema_quote(n->text, q, sizeof q);
        snprintf(buf, len, "%s", q);
    }
}

/* --- messages ------------------------------------------------------------------------- */

static enum kiln_status vmark_error(const char *src, int line, int col, const char *key,
                                    const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (key && key[0])
        return kiln_errorf(KILN_ERR_CONFIG, "%s:%d:%d: %s: %s", src, line, col, key, msg);
    return kiln_errorf(KILN_ERR_CONFIG, "%s:%d:%d: %s", src, line, col, msg);
}

static enum kiln_status mark_error(const char *src, int line, int col, const char *key,
                                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static enum kiln_status mark_error(const char *src, int line, int col, const char *key,
                                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum kiln_status st = vmark_error(src, line, col, key, fmt, ap);
    va_end(ap);
    return st;
}

static enum kiln_status node_error(const struct node *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum kiln_status node_error(const struct node *n, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum kiln_status st = vmark_error(n->src, n->line, n->col, key, fmt, ap);
    va_end(ap);
    return st;
}

/* Appends to a NUL-terminated buffer, silently stopping at its end: these
 * build key paths for messages, where a cut-off tail is harmless. */
static void path_add(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void path_add(char *buf, size_t len, const char *fmt, ...)
{
    size_t o = strlen(buf);
    if (o + 1 >= len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + o, len - o, fmt, ap);
    va_end(ap);
}

static bool is_key_name(const char *s)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
    return n > 0 && n < 64 && s[n] == '\0';
}

/* Adds one key to a display path: names as is, anything odd quoted. */
static void path_add_key(char *buf, size_t len, const char *key)
{
    char q[80];
    if (buf[0]) path_add(buf, len, ".");
    if (is_key_name(key)) {
        path_add(buf, len, "%s", key);
    } else {
        schema_quote(key, q, sizeof q);
        path_add(buf, len, "%s", q);
    }
}

/* --- YAML events -> tree ------------------------------------------------------------------ */

/* Where parsed text sits, for marks: a file (lines and columns as libyaml
 * counts them, plus one), or the value part of the set_index-th --set (its
 * columns counted within the whole "key=value" argument). */
struct origin {
    const char *src;
    int set_index;
    int col_shift;
    const char *key; /* --set: the key the value is for, to start paths with */
};

static void origin_mark(const struct origin *o, size_t yline, size_t ycol, int *line, int *col)
{
    if (o->set_index) {
        *line = o->set_index;
        *col = (yline == 0 ? o->col_shift : 0) + (int)ycol + 1;
    } else {
        *line = (int)yline + 1;
        *col = (int)ycol + 1;
    }
}

struct builder {
    struct tree *tree;
    const struct origin *origin;
    struct node *stack[KILN_CONFIG_MAX_DEPTH]; /* open mappings and lists */
    int depth;
    struct node *root;
};

/* The key path to where the next node goes (next) or to the innermost open
 * collection's parent chain (levels of the stack), for messages. */
static void builder_path(const struct builder *b, int levels, bool next, char *buf, size_t len)
{
    snprintf(buf, len, "%s", b->origin->key ? b->origin->key : "");
    for (int i = 0; i < levels; i++) {
        const struct node *c = b->stack[i];
        bool top = next && i == levels - 1;
        if (c->kind == NODE_MAP) {
            /* Inside, the last key's value is the next open level; at the top
             * it is the key waiting for the next node, if any. */
            if (c->last && (!top || !c->last->value)) path_add_key(buf, len, c->last->text);
        } else {
            path_add(buf, len, "[%d]", top ? c->n : c->n - 1);
        }
    }
}

static enum kiln_status builder_attach(struct builder *b, struct node *n)
{
    if (b->depth == 0) {
        b->root = n;
        return KILN_OK;
    }
    struct node *c = b->stack[b->depth - 1];
    if (c->kind == NODE_SEQ) {
        node_append(c, n);
    } else if (c->last && !c->last->value) {
        c->last->value = n;
    } else if (n->kind != NODE_SCALAR) {
        char path[256];
        builder_path(b, b->depth, true, path, sizeof path);
        return node_error(n, path, "a key must be a name, not %s",
                          n->kind == NODE_MAP ? "a mapping" : "a list");
    } else {
        node_append(c, n);
    }
    return KILN_OK;
}

static int node_pos_cmp(const struct node *a, const struct node *b)
{
    if (a->line != b->line) return a->line < b->line ? -1 : 1;
    return (a->col > b->col) - (a->col < b->col);
}

static int key_cmp(const void *pa, const void *pb)
{
    const struct node *a = *(const struct node *const *)pa, *b = *(const struct node *const *)pb;
    int c = strcmp(a->text, b->text);
    return c ? c : node_pos_cmp(a, b);
}

/* Finds a duplicate key in map: the repeat that comes first in the file.
 * Sorting keeps a 1 MiB card of distinct keys from going quadratic. */
static enum kiln_status builder_check_dups(const struct builder *b, const struct node *map)
{
    enum kiln_status st = KILN_OK;
    const struct node **keys = NULL;
    const struct node *first = NULL, *again = NULL;
    if (map->n < 2) goto cleanup;
    keys = malloc((size_t)map->n * sizeof *keys);
    if (!keys) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory checking keys");
        goto cleanup;
    }
    int i = 0;
    for (const struct node *k = map->first; k; k = k->next) keys[i++] = k;
    qsort(keys, (size_t)map->n, sizeof *keys, key_cmp);
    for (i = 1; i < map->n; i++) {
        if (strcmp(keys[i - 1]->text, keys[i]->text) != 0) continue;
        if (!again || node_pos_cmp(keys[i], again) < 0) {
            again = keys[i];
            first = keys[i - 1];
        }
    }
    if (again) {
        char path[256];
        builder_path(b, b->depth - 1, false, path, sizeof path);
        path_add_key(path, sizeof path, again->text);
        st = node_error(again, path, "duplicate key (first set at line %d, column %d)",
                        first->line, first->col);
    }
cleanup:
    free(keys);
    return st;
}

static enum kiln_status builder_syntax_error(const struct builder *b, const yaml_parser_t *p,
                                             const char *buf, size_t len)
{
    int line, col;
    if (p->error == YAML_MEMORY_ERROR) return kiln_errorf(KILN_ERR_NOMEM, "out of memory parsing YAML");
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        size_t off = p->problem_offset < len ? p->problem_offset : len, yline = 0, ycol = 0;
        for (size_t i = 0; i < off; i++) {
            if (buf[i] == '\n') {
                yline++;
                ycol = 0;
            } else {
                ycol++;
            }
        }
        origin_mark(b->origin, yline, ycol, &line, &col);
        if (p->problem_value != -1)
            return mark_error(b->origin->src, line, col, NULL, "invalid input: %s (byte 0x%02x)",
                              p->problem ? p->problem : "unreadable", p->problem_value & 0xff);
        return mark_error(b->origin->src, line, col, NULL, "invalid input: %s",
                          p->problem ? p->problem : "unreadable");
    }
    origin_mark(b->origin, p->problem_mark.line, p->problem_mark.column, &line, &col);
    /* libyaml's words for a tab are "cannot start any token": say it plainly. */
    const char *tab = p->problem_mark.index < len && buf[p->problem_mark.index] == '\t'
                          ? " (YAML indents with spaces, not tabs)"
                          : "";
    if (p->context) {
        int cline, ccol;
        origin_mark(b->origin, p->context_mark.line, p->context_mark.column, &cline, &ccol);
        return mark_error(b->origin->src, line, col, NULL,
                          "YAML syntax error: %s (%s at line %d, column %d)%s",
                          p->problem ? p->problem : "unknown", p->context, cline, ccol, tab);
    }
    return mark_error(b->origin->src, line, col, NULL, "YAML syntax error: %s%s",
                      p->problem ? p->problem : "unknown", tab);
}

/* Refuses what would make a value mean something other than what it says
 * where it stands: anchors and aliases (a value defined elsewhere) and tags
 * (a type other than the schema's). */
static enum kiln_status builder_refuse(const struct builder *b, const yaml_event_t *ev, int line,
                                       int col)
{
    const yaml_char_t *anchor = NULL, *tag = NULL;
    if (ev->type == YAML_SCALAR_EVENT) {
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    }
    if (ev->type != YAML_ALIAS_EVENT && !anchor && !tag) return KILN_OK;
    char path[256];
    builder_path(b, b->depth, true, path, sizeof path);
    if (ev->type == YAML_ALIAS_EVENT)
        return mark_error(b->origin->src, line, col, path,
                          "aliases are not supported (*%.64s): write the value out", ev->data.alias.anchor);
    if (anchor)
        return mark_error(b->origin->src, line, col, path,
                          "anchors and aliases are not supported (&%.64s): write the value out", anchor);
    return mark_error(b->origin->src, line, col, path, "tags are not supported (%.64s)", tag);
}

/* Parses buf into nodes of t; *root is NULL for a stream with no document. */
static enum kiln_status tree_parse(struct tree *t, const struct origin *o, const char *buf,
                                   size_t len, struct node **root)
{
    enum kiln_status st = KILN_OK;
    yaml_parser_t parser;
    yaml_event_t ev;
    bool have_parser = false, have_event = false, done = false;
    int docs = 0;
    struct builder b = {.tree = t, .origin = o};

    *root = NULL;
    if (!yaml_parser_initialize(&parser)) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory starting the YAML parser");
        goto cleanup;
    }
    have_parser = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            st = builder_syntax_error(&b, &parser, buf, len);
            goto cleanup;
        }
        have_event = true;
        int line, col;
        origin_mark(o, ev.start_mark.line, ev.start_mark.column, &line, &col);
        st = builder_refuse(&b, &ev, line, col);
        if (st != KILN_OK) goto cleanup;

        struct node *n = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                st = mark_error(o->src, line, col, NULL,
                                "a second YAML document: one config is one document");
                goto cleanup;
            }
            break;
        case YAML_SCALAR_EVENT: {
            const char *text = (const char *)ev.data.scalar.value;
            size_t tlen = ev.data.scalar.length;
            if (memchr(text, '\0', tlen)) {
                char path[256];
                builder_path(&b, b.depth, true, path, sizeof path);
                st = mark_error(o->src, line, col, path, "NUL characters are not supported");
                goto cleanup;
            }
            n = node_new(t, NODE_SCALAR, text, tlen, o->src, line, col);
            if (n) n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (b.depth >= KILN_CONFIG_MAX_DEPTH) {
                char path[256];
                builder_path(&b, b.depth, true, path, sizeof path);
                st = mark_error(o->src, line, col, path,
                                "nested deeper than %d levels (KILN_CONFIG_MAX_DEPTH)",
                                KILN_CONFIG_MAX_DEPTH);
                goto cleanup;
            }
            n = node_new(t, ev.type == YAML_MAPPING_START_EVENT ? NODE_MAP : NODE_SEQ, "", 0,
                         o->src, line, col);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            struct node *c = b.stack[b.depth - 1];
            /* libyaml gives `key:` an empty scalar; this only guards a
             * key it left without one. */
            if (c->kind == NODE_MAP && c->last && !c->last->value) {
                c->last->value = node_new(t, NODE_SCALAR, "", 0, o->src, line, col);
                if (!c->last->value) {
                    st = kiln_errorf(KILN_ERR_NOMEM, "out of memory parsing YAML");
                    goto cleanup;
                }
            }
            if (c->kind == NODE_MAP) {
                st = builder_check_dups(&b, c);
                if (st != KILN_OK) goto cleanup;
            }
            b.depth--;
            break;
        }
        default:
            break;
        }

        if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
            ev.type == YAML_MAPPING_START_EVENT) {
            if (!n) {
                st = kiln_errorf(KILN_ERR_NOMEM, "out of memory parsing YAML");
                goto cleanup;
            }
            st = builder_attach(&b, n);
            if (st != KILN_OK) goto cleanup;
            if (n->kind != NODE_SCALAR) b.stack[b.depth++] = n;
        }
        yaml_event_delete(&ev);
        have_event = false;
    }
    *root = b.root;

cleanup:
    if (have_event) yaml_event_delete(&ev);
    if (have_parser) yaml_parser_delete(&parser);
    return st;
}

/* --- --set overrides ----------------------------------------------------------------------- */

#define SET_MAX_PARTS 8

struct set_part {
    char name[64];
    int index; /* -1: not indexed */
};

/* Splits "model.layers[2].units" into parts and checks it names a schema
 * key. */
static enum kiln_status set_parse_key(const char *key, int index, struct set_part *parts,
                                      int *n_parts)
{
    char spath[256] = "", shown[160];
    const char *s = key;
    int n = 0;

    schema_quote(key, shown, sizeof shown);
    for (;;) {
        size_t len = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (len == 0 || len >= sizeof parts[0].name || n == SET_MAX_PARTS)
            return mark_error("--set", index, 1, NULL, "%s is not a key such as train.epochs",
                              shown);
        memcpy(parts[n].name, s, len);
        parts[n].name[len] = '\0';
        parts[n].index = -1;
        s += len;
        if (*s == '[') {
            char *end;
            errno = 0;
            long v = strtol(s + 1, &end, 10);
            if (end == s + 1 || *end != ']' || v < 0 || v >= KILN_MAX_LAYERS || errno)
                return mark_error("--set", index, 1, NULL,
                                  "%s: an index is written [N] with 0 <= N < %d", shown,
                                  KILN_MAX_LAYERS);
            parts[n].index = (int)v;
            s = end + 1;
        }
        path_add(spath, sizeof spath, "%s%s", spath[0] ? "." : "", parts[n].name);
        const struct schema_key *k = schema_find(spath);
        bool last = *s == '\0';
        bool ok = k && (last || k->type == SCHEMA_MAP || parts[n].index >= 0);
        if (ok && parts[n].index >= 0) {
            ok = k->type == SCHEMA_LIST_OF_MAPS;
            path_add(spath, sizeof spath, "[]");
        }
        if (!ok) {
            const char *hint = schema_suggest(spath);
            return mark_error("--set", index, 1, key, "unknown key%s%s%s",
                              hint ? " (did you mean " : "", hint ? hint : "", hint ? "?)" : "");
        }
        n++;
        if (*s == '\0') break;
        if (*s != '.') return mark_error("--set", index, 1, NULL, "%s is not a key such as train.epochs", shown);
        s++;
    }
    *n_parts = n;
    return KILN_OK;
}

/* Grafts the index-th (1-based) --set "key=value" into the file's tree:
 * missing sections are created, an existing value is replaced. */
static enum kiln_status set_apply(struct tree *t, struct node *root, int index, const char *arg)
{
    enum kiln_status st = KILN_OK;
    struct set_part parts[SET_MAX_PARTS];
    int n_parts = 0;
    char key[256], shown[160];
    const char *eq = strchr(arg, '=');

    schema_quote(arg, shown, sizeof shown);
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof key)
        return mark_error("--set", index, 1, NULL, "expected key=value, got %s", shown);
    memcpy(key, arg, (size_t)(eq - arg));
    key[eq - arg] = '\0';
    st = set_parse_key(key, index, parts, &n_parts);
    if (st != KILN_OK) return st;

    struct origin o = {.src = "--set", .set_index = index, .col_shift = (int)(eq - arg) + 1,
                       .key = key};
    struct node *value = NULL;
    st = tree_parse(t, &o, eq + 1, strlen(eq + 1), &value);
    if (st != KILN_OK) return st;
    if (!value) value = node_new(t, NODE_SCALAR, "", 0, "--set", index, o.col_shift + 1);
    if (!value) return kiln_errorf(KILN_ERR_NOMEM, "out of memory applying --set");

    char path[256] = "";
    struct node *cur = root;
    for (int i = 0; i < n_parts; i++) {
        bool last = i == n_parts - 1;
        struct set_part *p = &parts[i];
        struct node *k = map_find(cur, p->name);
        path_add_key(path, sizeof path, p->name);
        if (!k) {
            if (p->index >= 0)
                return mark_error("--set", index, 1, path, "no such list to index");
            k = node_new(t, NODE_SCALAR, p->name, strlen(p->name), "--set", index, 1);
            if (!k) return kiln_errorf(KILN_ERR_NOMEM, "out of memory applying --set");
            node_append(cur, k);
            if (last) {
                k->value = value;
                break;
            }
            k->value = node_new(t, NODE_MAP, "", 0, "--set", index, 1);
            if (!k->value) return kiln_errorf(KILN_ERR_NOMEM, "out of memory applying --set");
            cur = k->value;
            continue;
        }
        if (p->index < 0) {
            if (last) {
                k->value = value;
                break;
            }
            if (node_is_null(k->value)) {
                k->value = node_new(t, NODE_MAP, "", 0, "--set", index, 1);
                if (!k->value) return kiln_errorf(KILN_ERR_NOMEM, "out of memory applying --set");
            }
            if (k->value->kind != NODE_MAP)
                return mark_error("--set", index, 1, path, "is not a mapping in %s:%d:%d",
                                  k->value->src, k->value->line, k->value->col);
            cur = k->value;
            continue;
        }
        /* An indexed part: the item must already exist. */
        struct node *list = k->value, *prev = NULL, *item;
        path_add(path, sizeof path, "[%d]", p->index);
        if (list->kind != NODE_SEQ || p->index >= list->n)
            return mark_error("--set", index, 1, path, "no such item (%s:%d:%d has %d)",
                              list->src, list->line, list->col,
                              list->kind == NODE_SEQ ? list->n : 0);
        item = list->first;
        for (int j = 0; j < p->index; j++) {
            prev = item;
            item = item->next;
        }
        if (last) {
            value->next = item->next;
            if (prev)
                prev->next = value;
            else
                list->first = value;
            if (list->last == item) list->last = value;
            break;
        }
        if (item->kind != NODE_MAP)
            return mark_error("--set", index, 1, path, "is not a mapping in %s:%d:%d", item->src,
                              item->line, item->col);
        cur = item;
    }
    return KILN_OK;
}

/* --- tree -> struct, against the schema ------------------------------------------------------ */

struct walk {
    struct kiln_config *cfg;
    bool model_only;
    const struct node *given[SCHEMA_MAX_KEYS]; /* key node of each model/train key present */
};

static void *walk_base(struct walk *w, const struct schema_key *k, struct kiln_layer_config *layer)
{
    switch (k->base) {
    case SCHEMA_BASE_MODEL: return &w->cfg->model;
    case SCHEMA_BASE_TRAIN: return &w->cfg->train;
    case SCHEMA_BASE_LAYER: return layer;
    case SCHEMA_BASE_CARD: return &w->cfg->card;
    default: return NULL;
    }
}

static void expect_text(const struct schema_key *k, char *buf, size_t len)
{
    char names[256];
    switch (k->type) {
    case SCHEMA_INT: snprintf(buf, len, "an integer"); break;
    case SCHEMA_FLOAT: snprintf(buf, len, "a number"); break;
    case SCHEMA_BOOL: snprintf(buf, len, "true or false"); break;
    case SCHEMA_ENUM:
    case SCHEMA_STRING:
        schema_names_text(k, ", ", names, sizeof names);
        snprintf(buf, len, "one of %s", names);
        break;
    default: snprintf(buf, len, "a value"); break;
    }
}

static enum kiln_status walk_map(struct walk *w, const struct node *map, const char *spath,
                                 const char *dpath, struct kiln_layer_config *layer);

static enum kiln_status walk_int_list(struct walk *w, const struct schema_key *k,
                                      const struct node *v, const char *dp)
{
    char got[128], why[512], ip[300];
    void *base = walk_base(w, k, NULL);
    if (v->kind != NODE_SEQ) {
        node_describe(v, got, sizeof got);
        return node_error(v, dp, "expected a list of integers such as [28, 28], got %s", got);
    }
    if (v->n < k->min_items || v->n > k->max_items)
        return node_error(v, dp, "expected %d to %d integers, got %d", k->min_items,
                          k->max_items, v->n);
    int i = 0;
    for (const struct node *item = v->first; item; item = item->next, i++) {
        int64_t x;
        snprintf(ip, sizeof ip, "%s", dp);
        path_add(ip, sizeof ip, "[%d]", i);
        if (item->kind != NODE_SCALAR) {
            node_describe(item, got, sizeof got);
            return node_error(item, ip, "expected an integer, got %s", got);
        }
        if (!schema_parse_int_item(k, item->text, item->plain, &x, why, sizeof why))
            return node_error(item, ip, "%s", why);
        memcpy((char *)base + k->offset + (size_t)i * sizeof x, &x, sizeof x);
    }
    memcpy((char *)base + k->count_offset, &i, sizeof i);
    return KILN_OK;
}

static enum kiln_status walk_layers(struct walk *w, const struct schema_key *k,
                                    const struct node *v, const char *dp)
{
    char got[128], ip[300], spath[128];
    struct kiln_model_config *m = walk_base(w, k, NULL);
    if (v->kind != NODE_SEQ) {
        node_describe(v, got, sizeof got);
        return node_error(v, dp, "expected a list of layers, got %s", got);
    }
    if (v->n < k->min_items) return node_error(v, dp, "needs at least %d layer", k->min_items);
    snprintf(spath, sizeof spath, "%s[]", k->path);
    int i = 0;
    for (const struct node *item = v->first; item; item = item->next, i++) {
        snprintf(ip, sizeof ip, "%s", dp);
        path_add(ip, sizeof ip, "[%d]", i);
        if (i >= k->max_items)
            return node_error(item, ip, "more than %d layers (KILN_MAX_LAYERS)", k->max_items);
        if (item->kind != NODE_MAP) {
            node_describe(item, got, sizeof got);
            return node_error(item, ip, "expected a mapping such as {type: relu}, got %s", got);
        }
        struct kiln_layer_config *l = &m->layers[i];
        memset(l, 0, sizeof *l);
        schema_layer_defaults(l);
        l->line = item->line;
        enum kiln_status st = walk_map(w, item, spath, ip, l);
        if (st != KILN_OK) return st;
    }
    memcpy((char *)m + k->count_offset, &i, sizeof i);
    return KILN_OK;
}

/* Free text keeps whatever scalar was written (`license: 2024` is the text
 * "2024"); an empty or null value is refused like any other empty scalar,
 * since leaving the key out already means "not stated". */
static enum kiln_status walk_text(struct walk *w, const struct schema_key *k,
                                  const struct node *v, const char *dp)
{
    char got[128];
    char **dst = (char **)((char *)walk_base(w, k, NULL) + k->offset);
    if (v->kind != NODE_SCALAR || node_is_null(v)) {
        node_describe(v, got, sizeof got);
        return node_error(v, dp, "expected text, got %s%s", got,
                          v->kind == NODE_SCALAR ? " (leave the key out instead)" : "");
    }
    char *s = strdup(v->text);
    if (!s) return kiln_errorf(KILN_ERR_NOMEM, "out of memory reading %s", dp);
    free(*dst);
    *dst = s;
    return KILN_OK;
}

static enum kiln_status walk_value(struct walk *w, const struct schema_key *k,
                                   const struct node *v, const char *dp,
                                   struct kiln_layer_config *layer)
{
    char got[128], exp[300], why[512];
    switch (k->type) {
    case SCHEMA_MAP:
        if (v->kind != NODE_MAP && !node_is_null(v)) {
            node_describe(v, got, sizeof got);
            return node_error(v, dp, "expected a mapping, got %s", got);
        }
        return walk_map(w, v, k->path, dp, layer);
    case SCHEMA_LIST_OF_MAPS:
        return walk_layers(w, k, v, dp);
    case SCHEMA_INT_LIST:
        return walk_int_list(w, k, v, dp);
    case SCHEMA_TEXT:
        return walk_text(w, k, v, dp);
    default:
        if (v->kind != NODE_SCALAR) {
            expect_text(k, exp, sizeof exp);
            node_describe(v, got, sizeof got);
            return node_error(v, dp, "expected %s, got %s", exp, got);
        }
        if (!schema_set_scalar(k, walk_base(w, k, layer), v->text, v->plain, why, sizeof why))
            return node_error(v, dp, "%s", why);
        return KILN_OK;
    }
}

static enum kiln_status walk_unknown(struct walk *w, const struct node *key, const char *spath,
                                     const char *dp)
{
    char sp[256] = "", hint[160] = "";
    const char *s = NULL;
    if (is_key_name(key->text)) {
        snprintf(sp, sizeof sp, "%s%s%s", spath, spath[0] ? "." : "", key->text);
        s = schema_suggest(sp);
    }
    if (s && w->model_only && strncmp(s, "model", 5) != 0) s = NULL;
    if (s) {
        /* A sibling is named by its own name; a key elsewhere by its path. */
        size_t plen = strlen(spath);
        bool sibling = schema_parent_len(s) == plen && strncmp(s, spath, plen) == 0;
        snprintf(hint, sizeof hint, " (did you mean %s?)", sibling ? s + plen + (plen > 0) : s);
    } else if (w->model_only && !spath[0]) {
        snprintf(hint, sizeof hint, " (a model document holds only model:)");
    }
    return node_error(key, dp, "unknown key%s", hint);
}

/* Stores every key of map (the section at schema path spath, shown in
 * messages as dpath), then checks what only the whole map can tell: keys that
 * do not apply to this type, and required keys that are missing. */
static enum kiln_status walk_map(struct walk *w, const struct node *map, const char *spath,
                                 const char *dpath, struct kiln_layer_config *layer)
{
    const struct node *present[SCHEMA_MAX_KEYS] = {0};
    char dp[300], sp[256];
    size_t plen = strlen(spath);

    for (const struct node *key = map->kind == NODE_MAP ? map->first : NULL; key; key = key->next) {
        const struct schema_key *k = NULL;
        snprintf(dp, sizeof dp, "%s", dpath);
        path_add_key(dp, sizeof dp, key->text);
        if (is_key_name(key->text)) {
            snprintf(sp, sizeof sp, "%s%s%s", spath, plen ? "." : "", key->text);
            k = schema_find(sp);
        }
        if (k && w->model_only && !plen && strcmp(k->path, "model") != 0) k = NULL;
        if (!k) return walk_unknown(w, key, spath, dp);
        present[schema_index(k)] = key;
        if (k->base != SCHEMA_BASE_LAYER) w->given[schema_index(k)] = key;
        enum kiln_status st = walk_value(w, k, key->value, dp, layer);
        if (st != KILN_OK) return st;
    }

    for (int i = 0; i < schema_n_keys; i++) {
        const struct schema_key *k = &schema_keys[i];
        if (schema_parent_len(k->path) != plen || strncmp(k->path, spath, plen) != 0) continue;
        if (w->model_only && !plen && strcmp(k->path, "model") != 0) continue;
        const struct schema_key *g = k->gate ? schema_find(k->gate) : NULL;
        bool applies = !g || schema_gate_open(k, walk_base(w, g, layer));
        snprintf(dp, sizeof dp, "%s", dpath);
        path_add_key(dp, sizeof dp, k->path + plen + (plen > 0));

        char allowed[160] = "";
        if (g) {
            for (int v = 0; v < 32; v++)
                if (k->gate_mask & (1u << v))
                    path_add(allowed, sizeof allowed, "%s%s", allowed[0] ? " or " : "",
                             schema_enum_name(g, v));
        }
        const char *gname = g ? g->path + schema_parent_len(g->path) + 1 : "";
        if (present[i] && !applies)
            return node_error(present[i], dp, "only applies when %s is %s (here %s is %s)", gname,
                              allowed, gname,
                              schema_enum_name(g, (int)schema_get_int(g, walk_base(w, g, layer))));
        if (!present[i] && k->required && applies) {
            if (g)
                return node_error(map, dp, "required key is missing (needed when %s is %s)",
                                  gname, allowed);
            return node_error(map, dp, "required key is missing");
        }
    }
    return KILN_OK;
}

/* Rules across keys, checked once everything is stored. */
static enum kiln_status walk_finish(struct walk *w, const struct node *root)
{
    struct kiln_train_config *t = &w->cfg->train;
    if (w->model_only) return KILN_OK;

    const struct schema_key *nk = schema_find("train.optimizer.nesterov");
    if (t->nesterov && !(t->momentum > 0)) {
        const struct node *at = w->given[schema_index(nk)];
        return node_error(at ? at->value : root, nk->path,
                          "needs momentum > 0 (train.optimizer.momentum is %g)", (double)t->momentum);
    }

    /* Whether lower is better follows from the metric unless stated. */
    const struct schema_key *mk = schema_find("train.early_stopping.mode");
    if (!w->given[schema_index(mk)]) {
        const char *m = t->early_stopping_metric;
        t->early_stopping_mode =
            !strcmp(m, "val_accuracy") || !strcmp(m, "val_f1") || !strcmp(m, "val_r2")
                ? KILN_MODE_MAX
                : KILN_MODE_MIN;
    }
    return KILN_OK;
}

/* --- entry points ---------------------------------------------------------------------------- */

static enum kiln_status config_parse(const char *yaml, size_t len, const char *name,
                                     const char *const *sets, int n_sets, bool model_only,
                                     struct kiln_config *cfg)
{
    enum kiln_status st = KILN_OK;
    struct tree t = {0};
    struct node *root = NULL;
    struct origin o = {.src = name};
    struct walk *w = NULL;

    if (len > KILN_CONFIG_MAX_BYTES) {
        st = mark_error(name, 1, 1, NULL, "the config is %zu bytes, over the %d-byte limit (KILN_CONFIG_MAX_BYTES)",
                        len, KILN_CONFIG_MAX_BYTES);
        goto cleanup;
    }
    st = tree_parse(&t, &o, yaml, len, &root);
    if (st != KILN_OK) goto cleanup;
    if (!root || node_is_null(root)) {
        st = mark_error(name, root ? root->line : 1, root ? root->col : 1, NULL,
                        "the config is empty (expected a mapping with model:%s)",
                        model_only ? "" : " and train:");
        goto cleanup;
    }
    if (root->kind != NODE_MAP) {
        char got[128];
        node_describe(root, got, sizeof got);
        st = node_error(root, NULL, "expected a mapping with model:%s at the top, got %s",
                        model_only ? "" : " and train:", got);
        goto cleanup;
    }
    for (int i = 0; i < n_sets; i++) {
        st = set_apply(&t, root, i + 1, sets[i] ? sets[i] : "");
        if (st != KILN_OK) goto cleanup;
    }

    w = calloc(1, sizeof *w);
    if (!w) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory reading %s", name);
        goto cleanup;
    }
    w->cfg = cfg;
    w->model_only = model_only;
    schema_apply_defaults(&cfg->model, &cfg->train);
    st = walk_map(w, root, "", "", NULL);
    if (st != KILN_OK) goto cleanup;
    st = walk_finish(w, root);

cleanup:
    free(w);
    tree_free(&t);
    return st;
}

enum kiln_status kiln_config_parse(const char *yaml, size_t len, const char *name,
                                   const char *const *sets, int n_sets,
                                   struct kiln_config **out)
{
    enum kiln_status st = KILN_OK;
    struct kiln_config *cfg = NULL;

    *out = NULL;
    if (!name) name = "<config>";
    if ((!yaml && len) || n_sets < 0 || (n_sets && !sets)) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s: kiln_config_parse called without text or sets", name);
        goto cleanup;
    }
    cfg = calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->source_yaml = malloc(len + 1))) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory reading %s", name);
        goto cleanup;
    }
    if (len) memcpy(cfg->source_yaml, yaml, len);
    cfg->source_yaml[len] = '\0';
    snprintf(cfg->path, sizeof cfg->path, "%s", name);
    st = config_parse(cfg->source_yaml, len, name, sets, n_sets, false, cfg);
    if (st != KILN_OK) goto cleanup;
    *out = cfg;
    cfg = NULL;

cleanup:
    kiln_config_free(cfg);
    return st;
}

/* Reads at most one byte past the limit, so a huge file costs no more than
 * the limit to refuse. */
static enum kiln_status read_config_file(const char *path, char **out, size_t *out_len)
{
    enum kiln_status st = KILN_OK;
    FILE *f = NULL;
    char *buf = NULL;

    *out = NULL;
    f = fopen(path, "rb");
    if (!f) {
        st = kiln_errorf(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto cleanup;
    }
    buf = malloc((size_t)KILN_CONFIG_MAX_BYTES + 2);
    if (!buf) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    size_t n = fread(buf, 1, (size_t)KILN_CONFIG_MAX_BYTES + 1, f);
    if (ferror(f)) {
        st = kiln_errorf(KILN_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        goto cleanup;
    }
    if (n > KILN_CONFIG_MAX_BYTES) {
        st = mark_error(path, 1, 1, NULL, "the file is over the %d-byte limit (KILN_CONFIG_MAX_BYTES)",
                        KILN_CONFIG_MAX_BYTES);
        goto cleanup;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    buf = NULL;

cleanup:
    free(buf);
    if (f) fclose(f);
    return st;
}

enum kiln_status kiln_config_load(const char *path, const char *const *sets, int n_sets,
                                  struct kiln_config **out)
{
    enum kiln_status st = KILN_OK;
    struct kiln_config *cfg = NULL;
    size_t len = 0;

    *out = NULL;
    if (!path || (n_sets && !sets) || n_sets < 0) {
        st = kiln_errorf(KILN_ERR_USAGE, "kiln_config_load called without a path or sets");
        goto cleanup;
    }
    cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        st = kiln_errorf(KILN_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    if (strlen(path) >= sizeof cfg->path) {
        st = kiln_errorf(KILN_ERR_IO, "%.64s...: path is too long", path);
        goto cleanup;
    }
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    st = read_config_file(path, &cfg->source_yaml, &len);
    if (st != KILN_OK) goto cleanup;
    st = config_parse(cfg->source_yaml, len, path, sets, n_sets, false, cfg);
    if (st != KILN_OK) goto cleanup;
    *out = cfg;
    cfg = NULL;

cleanup:
    kiln_config_free(cfg);
    return st;
}

enum kiln_status kiln_model_config_parse(const char *yaml, size_t len, const char *name,
                                         struct kiln_model_config *out)
{
    enum kiln_status st = KILN_OK;
    struct kiln_config *cfg = NULL;

    if (!name) name = "<model config>";
    if (!yaml && len) {
        st = kiln_errorf(KILN_ERR_USAGE, "%s: kiln_model_config_parse called without text", name);
        goto cleanup;
    }
    cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory reading %s", name);
        goto cleanup;
    }
    st = config_parse(yaml ? yaml : "", len, name, NULL, 0, true, cfg);
    if (st != KILN_OK) goto cleanup;
    *out = cfg->model;

cleanup:
    kiln_config_free(cfg);
    return st;
}

static void card_config_free(struct kiln_card_config *c)
{
    free(c->description);
    free(c->intended_use);
    free(c->limitations);
    free(c->ethical_considerations);
    free(c->authors);
    free(c->license);
}

void kiln_config_free(struct kiln_config *cfg)
{
    if (!cfg) return;
    card_config_free(&cfg->card);
    free(cfg->source_yaml);
    free(cfg);
}

/* --- emitting the model ------------------------------------------------------------------------ */

static bool is_child_of(const struct schema_key *k, const char *parent)
{
    size_t plen = strlen(parent);
    return schema_parent_len(k->path) == plen && strncmp(k->path, parent, plen) == 0;
}

char *kiln_model_config_to_yaml(const struct kiln_model_config *m)
{
    struct sbuf b = {0};
    char val[256];

    sbuf_add(&b, "model:\n");
    for (int i = 0; i < schema_n_keys; i++) {
        const struct schema_key *k = &schema_keys[i];
        if (!is_child_of(k, "model")) continue;
        const char *name = k->path + strlen("model.");
        if (k->type == SCHEMA_LIST_OF_MAPS) {
            sbuf_add(&b, "  %s:\n", name);
            for (int l = 0; l < m->n_layers; l++) {
                const struct kiln_layer_config *layer = &m->layers[l];
                const char *sep = "";
                sbuf_add(&b, "    - {");
                /* Every field that applies to this layer's type, none other:
                 * the reader refuses keys that do not apply. */
                for (int j = 0; j < schema_n_keys; j++) {
                    const struct schema_key *lk = &schema_keys[j];
                    if (!is_child_of(lk, "model.layers[]") || !schema_gate_open(lk, layer)) continue;
                    schema_format_value(lk, layer, val, sizeof val);
                    sbuf_add(&b, "%s%s: %s", sep, lk->path + strlen("model.layers[]."), val);
                    sep = ", ";
                }
                sbuf_add(&b, "}\n");
            }
            continue;
        }
        if (k->gate && !schema_gate_open(k, m)) continue;
        schema_format_value(k, m, val, sizeof val);
        sbuf_add(&b, "  %s: %s\n", name, val);
    }
    return sbuf_take(&b);
}
