/* engine/config/schema.h: the config schema table, shared by the loader
 * (config.c) and the docs printer (schema.c). Not public API.
 *
 *   const struct schema_key *k = schema_find("train.epochs");
 *   char why[256];
 *   if (!schema_set_scalar(k, &cfg->train, "ten", true, why, sizeof why))
 *       ... why is "expected an integer, got \"ten\"" ...
 *
 * A key's path is dotted from the top of the file; the items of a list of
 * maps are written "[]" ("model.layers[].units"). Each value key names the
 * struct it lands in (base) and where (offset, size), so the loader, the
 * defaults, the YAML emitter and the docs all read the same row.
 */
#ifndef KILN_CONFIG_SCHEMA_H
#define KILN_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/config.h"

/* Room for the per-map bookkeeping arrays in config.c; schema.c checks the
 * table fits at compile time. */
#define SCHEMA_MAX_KEYS 96

enum schema_type {
    SCHEMA_MAP,          /* a section: its keys are rows of their own */
    SCHEMA_LIST_OF_MAPS, /* model.layers: each item a map of "path[]." keys */
    SCHEMA_INT_LIST,     /* int64_t array at offset, its length (int) at count_offset */
    SCHEMA_INT,
    SCHEMA_FLOAT,
    SCHEMA_BOOL,
    SCHEMA_STRING, /* char[size], one of names (a name ending ":N" matches any index) */
    SCHEMA_ENUM,   /* int-sized enum; names map YAML spellings to values */
    SCHEMA_TEXT,   /* free text (card): a malloc'd char * at offset, NULL when absent */
};

/* Which struct a row's offset is relative to. */
enum schema_base {
    SCHEMA_BASE_NONE,
    SCHEMA_BASE_MODEL,
    SCHEMA_BASE_LAYER,
    SCHEMA_BASE_TRAIN,
    SCHEMA_BASE_CARD,
};

/* Range flags. Open bounds exclude the bound itself. */
enum {
    SCHEMA_HAS_MIN = 1,
    SCHEMA_HAS_MAX = 2,
    SCHEMA_MIN_OPEN = 4,
    SCHEMA_MAX_OPEN = 8,
};

struct schema_name {
    const char *name;
    int value;
};

struct schema_key {
    const char *path;
    enum schema_type type;
    /* Default as YAML text, parsed by the same code as a user's value so the
     * documented default is the applied one. NULL: required, derived or none. */
    const char *def;
    bool required;
    const char *derived; /* when set, how the value is derived when absent */
    unsigned range;      /* SCHEMA_HAS_MIN | ... */
    int64_t imin, imax;  /* int and int-list element ranges */
    double fmin, fmax;   /* float ranges, checked after rounding to float */
    const struct schema_name *names; /* enum / string values, {NULL} terminated */
    /* A key that only makes sense for some values of a sibling enum (units
     * only for dense layers): gate is the sibling's path, gate_mask has bit v
     * set for each enum value v it applies to. NULL gate: always applies. */
    const char *gate;
    unsigned gate_mask;
    enum schema_base base;
    size_t offset, size;
    size_t count_offset; /* lists: where the item count (int) goes */
    int min_items, max_items;
    const char *doc;
};

extern const struct schema_key schema_keys[];
extern const int schema_n_keys;

/* The row whose path is exactly path, or NULL. */
const struct schema_key *schema_find(const char *path);
/* Index of k in schema_keys. */
int schema_index(const struct schema_key *k);
/* Length of the parent part of k's path ("train.optimizer" for
 * "train.optimizer.lr", 0 for "train"). */
size_t schema_parent_len(const char *path);
/* The closest known key to path (a full dotted schema path) when it is a
 * likely typo or a key written in the wrong section; NULL when none is close. */
const char *schema_suggest(const char *path);

/* Converts one scalar (text as written; plain: it was unquoted) for the
 * value key k and stores it in base + k->offset. On failure stores nothing,
 * returns false and writes a reason to why ("expected an integer, got
 * \"ten\"", "0 is out of range, must be in [1, 1000000]"). */
bool schema_set_scalar(const struct schema_key *k, void *base, const char *text, bool plain,
                       char *why, size_t why_len);
/* Parses one int-list element under k's element range. */
bool schema_parse_int_item(const struct schema_key *k, const char *text, bool plain,
                           int64_t *out, char *why, size_t why_len);
/* The stored value of an enum (or int) key. */
int64_t schema_get_int(const struct schema_key *k, const void *base);
/* The first YAML name of an enum key's value ("?" when none). */
const char *schema_enum_name(const struct schema_key *k, int value);
/* The stored value of a scalar or int-list key as canonical YAML text
 * (floats as %.9g so they read back bit for bit). */
void schema_format_value(const struct schema_key *k, const void *base, char *buf, size_t len);
/* "[1, 1000000]", ">= 0", "(0, 1]"; "" when unbounded. */
void schema_range_text(const struct schema_key *k, char *buf, size_t len);
/* "a, b, c" for enum and string keys. */
void schema_names_text(const struct schema_key *k, const char *sep, char *buf, size_t len);
/* Whether the sibling gate of k (read from gate_base) lets k apply. */
bool schema_gate_open(const struct schema_key *k, const void *gate_base);

/* Every default from the table: model and train keys, then one layer. */
void schema_apply_defaults(struct kiln_model_config *m, struct kiln_train_config *t);
void schema_layer_defaults(struct kiln_layer_config *l);

/* s as a quoted, printable, length-capped string for messages. */
void schema_quote(const char *s, char *buf, size_t len);

#endif
