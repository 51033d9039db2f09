/* engine/lifecycle/sweep.c: kiln sweep: a grid or random search over config
 * keys, each trial a `kiln train` child process recorded as a run linked to
 * the sweep, ranked by a metric at the end. */
#define _DEFAULT_SOURCE /* realpath, strcasecmp */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <yaml.h>

#include "core/util.h"
#include "kiln/config.h"
#include "runs-internal.h"

extern char **environ;

#define SWEEP_MAX_BYTES (1 << 20)

/* --- reading the file --------------------------------------------------------------- */

struct sweep_parse {
    const char *path;
    yaml_document_t doc;
};

static enum kiln_status sweep_error(const struct sweep_parse *p, const yaml_node_t *n,
                                    const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum kiln_status sweep_error(const struct sweep_parse *p, const yaml_node_t *n,
                                    const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = n ? (int)n->start_mark.line + 1 : 1, col = n ? (int)n->start_mark.column + 1 : 1;
    return kiln_errorf(KILN_ERR_CONFIG, "%s:%d:%d: %s%s%s", p->path, line, col, key ? key : "",
                       key ? ": " : "", msg);
}

static yaml_node_t *node_at(struct sweep_parse *p, int index)
{
    return yaml_document_get_node(&p->doc, index);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* Refuses anchors, aliases and tags before the document is built (an alias
 * can make a loop) and reports syntax errors with their position. */
static enum kiln_status sweep_prescan(const struct sweep_parse *p, const char *buf, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    enum kiln_status st = KILN_OK;
    int docs = 0;
    for (bool done = false; !done && st == KILN_OK;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            st = kiln_errorf(KILN_ERR_CONFIG, "%s:%d:%d: YAML syntax error: %s", p->path,
                             (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1,
                             parser.problem ? parser.problem : "unknown");
            break;
        }
        const yaml_char_t *anchor = NULL;
        if (ev.type == YAML_SCALAR_EVENT) anchor = ev.data.scalar.anchor ? ev.data.scalar.anchor : ev.data.scalar.tag;
        if (ev.type == YAML_SEQUENCE_START_EVENT)
            anchor = ev.data.sequence_start.anchor ? ev.data.sequence_start.anchor : ev.data.sequence_start.tag;
        if (ev.type == YAML_MAPPING_START_EVENT)
            anchor = ev.data.mapping_start.anchor ? ev.data.mapping_start.anchor : ev.data.mapping_start.tag;
        if (ev.type == YAML_ALIAS_EVENT || anchor)
            st = kiln_errorf(KILN_ERR_CONFIG,
                             "%s:%d:%d: anchors, aliases and tags are not supported: write the "
                             "value out",
                             p->path, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1);
        if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1)
            st = kiln_errorf(KILN_ERR_CONFIG, "%s:%d:%d: a second YAML document: a sweep is one",
                             p->path, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return st;
}

static enum kiln_status parse_int(struct sweep_parse *p, const yaml_node_t *n, const char *key,
                                  int64_t lo, int64_t hi, int64_t *out)
{
    const char *t = scalar(n);
    char *end;
    errno = 0;
    long long v = t ? strtoll(t, &end, 10) : 0;
    if (!t || !*t || *end || errno || v < lo || v > hi)
        return sweep_error(p, n, key, "expected a whole number in [%lld, %lld], got %s%.40s%s",
                           (long long)lo, (long long)hi, t ? "\"" : "", t ? t : "a list or map",
                           t ? "\"" : "");
    *out = v;
    return KILN_OK;
}

static enum kiln_status parse_double(struct sweep_parse *p, const yaml_node_t *n, const char *key,
                                     double *out)
{
    const char *t = scalar(n);
    char *end;
    double v = t ? strtod(t, &end) : 0;
    if (!t || !*t || *end || !isfinite(v))
        return sweep_error(p, n, key, "expected a number, got %s%.40s%s", t ? "\"" : "",
                           t ? t : "a list or map", t ? "\"" : "");
    *out = v;
    return KILN_OK;
}

static enum kiln_status parse_bool(struct sweep_parse *p, const yaml_node_t *n, const char *key,
                                   bool *out)
{
    const char *t = scalar(n);
    if (t && !strcmp(t, "true")) *out = true;
    else if (t && !strcmp(t, "false")) *out = false;
    else return sweep_error(p, n, key, "expected true or false");
    return KILN_OK;
}

static enum kiln_status copy_string(struct sweep_parse *p, const yaml_node_t *n, const char *key,
                                    char *buf, size_t len)
{
    const char *t = scalar(n);
    if (!t || !*t) return sweep_error(p, n, key, "expected a non-empty string");
    if (strlen(t) >= len) return sweep_error(p, n, key, "longer than %zu characters", len - 1);
    snprintf(buf, len, "%s", t);
    return KILN_OK;
}

/* A parameter: a list of values, or {min, max, log, int}. */
static enum kiln_status parse_param(struct sweep_parse *p, const yaml_node_t *key,
                                    const yaml_node_t *val, struct kiln_sweep_param *out)
{
    const char *k = scalar(key);
    if (!k || !*k || strlen(k) >= sizeof out->key || strpbrk(k, "= \t\n"))
        return sweep_error(p, key, "parameters", "a parameter is a config key such as train.optimizer.lr");
    snprintf(out->key, sizeof out->key, "%s", k);
    char where[160];
    snprintf(where, sizeof where, "parameters.%s", k);
    if (val->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = val->data.sequence.items.start; it < val->data.sequence.items.top; it++) {
            const yaml_node_t *v = node_at(p, *it);
            const char *t = scalar(v);
            if (!t || !*t || strchr(t, '\n'))
                return sweep_error(p, v, where, "each value is one scalar (a number or a word)");
            if (out->n_values == KILN_SWEEP_MAX_VALUES)
                return sweep_error(p, v, where, "at most %d values", KILN_SWEEP_MAX_VALUES);
            if (!(out->values[out->n_values] = strdup(t))) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
            out->n_values++;
        }
        if (out->n_values == 0) return sweep_error(p, val, where, "an empty list");
        return KILN_OK;
    }
    if (val->type != YAML_MAPPING_NODE)
        return sweep_error(p, val, where, "expected a list of values or {min: A, max: B, log: true}");
    bool have_min = false, have_max = false;
    for (yaml_node_pair_t *pr = val->data.mapping.pairs.start; pr < val->data.mapping.pairs.top; pr++) {
        const yaml_node_t *kn = node_at(p, pr->key), *vn = node_at(p, pr->value);
        const char *name = scalar(kn);
        enum kiln_status st;
        if (name && !strcmp(name, "min")) st = parse_double(p, vn, where, &out->min), have_min = true;
        else if (name && !strcmp(name, "max")) st = parse_double(p, vn, where, &out->max), have_max = true;
        else if (name && !strcmp(name, "log")) st = parse_bool(p, vn, where, &out->log);
        else if (name && !strcmp(name, "int")) st = parse_bool(p, vn, where, &out->integer);
        else st = sweep_error(p, kn, where, "unknown key %s%.40s%s (a range has min, max, log, int)",
                              name ? "'" : "", name ? name : "?", name ? "'" : "");
        if (st != KILN_OK) return st;
    }
    if (!have_min || !have_max) return sweep_error(p, val, where, "a range needs min and max");
    if (!(out->min <= out->max)) return sweep_error(p, val, where, "min is above max");
    if (out->log && !(out->min > 0)) return sweep_error(p, val, where, "log: true needs min > 0");
    return KILN_OK;
}

static bool looks_like_path(const char *t)
{
    if (strchr(t, '/')) return true;
    const char *dot = strrchr(t, '.');
    return dot && (!strcmp(dot, ".h5") || !strcmp(dot, ".hdf5") || !strcmp(dot, ".csv"));
}

/* A relative path is relative to the sweep file's folder. */
static void resolve_path(const char *sweep_path, const char *rel, char *out, size_t len)
{
    if (rel[0] == '/') {
        snprintf(out, len, "%s", rel);
        return;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", sweep_path);
    const char *dir = dirname(tmp);
    if (!strcmp(dir, ".")) snprintf(out, len, "%s", rel);
    else snprintf(out, len, "%s/%s", dir, rel);
}

static enum kiln_status sweep_parse_doc(struct sweep_parse *p, struct kiln_sweep_spec *s)
{
    yaml_node_t *root = yaml_document_get_root_node(&p->doc);
    if (!root || root->type != YAML_MAPPING_NODE)
        return sweep_error(p, root, NULL, "a sweep file is a map (base, data, method, metric, "
                           "parameters ...)");
    const yaml_node_t *params = NULL, *method = NULL, *trials = NULL, *mode = NULL;
    bool have_base = false, have_data = false, have_metric = false;
    enum kiln_status st = KILN_OK;
    char base[4096] = "", data[4096] = "";
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
         st == KILN_OK && pr < root->data.mapping.pairs.top; pr++) {
        const yaml_node_t *kn = node_at(p, pr->key), *vn = node_at(p, pr->value);
        const char *k = scalar(kn);
        for (yaml_node_pair_t *q = root->data.mapping.pairs.start; k && q < pr; q++) {
            const char *prev = scalar(node_at(p, q->key));
            if (prev && !strcmp(prev, k)) return sweep_error(p, kn, k, "given twice");
        }
        if (!k) st = sweep_error(p, kn, NULL, "keys are words");
        else if (!strcmp(k, "base")) st = copy_string(p, vn, k, base, sizeof base), have_base = true;
        else if (!strcmp(k, "data")) st = copy_string(p, vn, k, data, sizeof data), have_data = true;
        else if (!strcmp(k, "method")) method = vn;
        else if (!strcmp(k, "trials")) trials = vn;
        else if (!strcmp(k, "seed")) {
            int64_t v;
            st = parse_int(p, vn, k, 0, INT64_MAX, &v);
            s->seed = (uint64_t)v;
        } else if (!strcmp(k, "metric")) {
            st = copy_string(p, vn, k, s->metric, sizeof s->metric);
            have_metric = true;
            for (const char *c = s->metric; st == KILN_OK && *c; c++)
                if (!isalnum((unsigned char)*c) && *c != '_')
                    st = sweep_error(p, vn, k, "a metric name such as val_accuracy");
        } else if (!strcmp(k, "mode")) mode = vn;
        else if (!strcmp(k, "parameters")) params = vn;
        else
            st = sweep_error(p, kn, k, "unknown key (a sweep has base, data, method, trials, seed, "
                             "metric, mode, parameters)");
    }
    if (st != KILN_OK) return st;
    if (!have_base) return sweep_error(p, root, "base", "missing: the config file to train");
    if (!have_data) return sweep_error(p, root, "data", "missing: the dataset to train on");
    if (!have_metric) return sweep_error(p, root, "metric", "missing: what ranks the trials (e.g. val_accuracy)");
    if (!params) return sweep_error(p, root, "parameters", "missing: the config keys to search");
    resolve_path(p->path, base, s->base, sizeof s->base);
    if (looks_like_path(data)) resolve_path(p->path, data, s->data, sizeof s->data);
    else snprintf(s->data, sizeof s->data, "%s", data);
    const char *m = method ? scalar(method) : "grid";
    if (!m || (strcmp(m, "grid") && strcmp(m, "random")))
        return sweep_error(p, method, "method", "expected grid or random");
    s->random = !strcmp(m, "random");
    if (mode) {
        const char *md = scalar(mode);
        if (!md || (strcmp(md, "max") && strcmp(md, "min")))
            return sweep_error(p, mode, "mode", "expected max or min");
        s->maximize = !strcmp(md, "max");
    } else {
        /* Like early stopping: accuracy, F1 and R^2 go up, losses and errors down. */
        s->maximize = strstr(s->metric, "accuracy") || strstr(s->metric, "f1") || strstr(s->metric, "r2");
    }
    if (params->type != YAML_MAPPING_NODE)
        return sweep_error(p, params, "parameters", "expected a map of config keys to values");
    for (yaml_node_pair_t *pr = params->data.mapping.pairs.start; pr < params->data.mapping.pairs.top; pr++) {
        if (s->n_params == KILN_SWEEP_MAX_PARAMS)
            return sweep_error(p, node_at(p, pr->key), "parameters", "at most %d parameters",
                               KILN_SWEEP_MAX_PARAMS);
        struct kiln_sweep_param *sp = &s->params[s->n_params];
        st = parse_param(p, node_at(p, pr->key), node_at(p, pr->value), sp);
        s->n_params++;
        if (st != KILN_OK) return st;
        for (int i = 0; i < s->n_params - 1; i++)
            if (!strcmp(s->params[i].key, sp->key))
                return sweep_error(p, node_at(p, pr->key), "parameters", "%s given twice", sp->key);
        if (!s->random && sp->n_values == 0)
            return sweep_error(p, node_at(p, pr->value), sp->key,
                               "grid search needs a list of values (a range is for method: random)");
    }
    if (s->n_params == 0) return sweep_error(p, params, "parameters", "no parameters to search");
    if (s->random) {
        if (!trials) return sweep_error(p, root, "trials", "missing: method random needs a trial count");
        st = parse_int(p, trials, "trials", 1, KILN_SWEEP_MAX_TRIALS, &s->trials);
        if (st != KILN_OK) return st;
    } else {
        if (trials) return sweep_error(p, trials, "trials", "grid search runs every combination; "
                                       "trials is for method: random");
        s->trials = 1;
        for (int i = 0; i < s->n_params; i++) {
            s->trials *= s->params[i].n_values;
            if (s->trials > KILN_SWEEP_MAX_TRIALS)
                return sweep_error(p, params, "parameters", "the grid has more than %d combinations",
                                   KILN_SWEEP_MAX_TRIALS);
        }
    }
    return KILN_OK;
}

enum kiln_status kiln_sweep_load(const char *path, struct kiln_sweep_spec **out)
{
    *out = NULL;
    struct kiln_sweep_spec *s = calloc(1, sizeof *s);
    if (!s) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    snprintf(s->path, sizeof s->path, "%s", path);
    struct sweep_parse p = {.path = path};
    bool have_doc = false;
    enum kiln_status st = KILN_OK;
    FILE *f = fopen(path, "rb");
    if (!f) {
        st = kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
        goto done;
    }
    s->source = malloc(SWEEP_MAX_BYTES + 1);
    size_t len = s->source ? fread(s->source, 1, SWEEP_MAX_BYTES + 1, f) : 0;
    bool err = ferror(f);
    fclose(f);
    if (!s->source) st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    else if (err) st = kiln_errorf(KILN_ERR_IO, "%s: read failed", path);
    else if (len > SWEEP_MAX_BYTES) st = kiln_errorf(KILN_ERR_CONFIG, "%s: over 1 MiB: not a sweep file", path);
    if (st != KILN_OK) goto done;
    s->source[len] = '\0';
    if (memchr(s->source, '\0', len)) {
        st = kiln_errorf(KILN_ERR_CONFIG, "%s: holds NUL bytes: not a YAML file", path);
        goto done;
    }
    st = sweep_prescan(&p, s->source, len);
    if (st != KILN_OK) goto done;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        st = kiln_errorf(KILN_ERR_NOMEM, "out of memory");
        goto done;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)s->source, len);
    if (!yaml_parser_load(&parser, &p.doc))
        st = kiln_errorf(KILN_ERR_CONFIG, "%s:%d:%d: YAML error: %s", path,
                         (int)parser.problem_mark.line + 1, (int)parser.problem_mark.column + 1,
                         parser.problem ? parser.problem : "unknown");
    else have_doc = true;
    yaml_parser_delete(&parser);
    if (st == KILN_OK) st = sweep_parse_doc(&p, s);
done:
    if (have_doc) yaml_document_delete(&p.doc);
    if (st != KILN_OK) {
        kiln_sweep_free(s);
        return st;
    }
    *out = s;
    return KILN_OK;
}

void kiln_sweep_free(struct kiln_sweep_spec *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_params; i++)
        for (int j = 0; j < s->params[i].n_values; j++) free(s->params[i].values[j]);
    free(s->source);
    free(s);
}

/* --- trials ---------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A uniform double in [0, 1) that depends only on (seed, trial, param). */
static double draw(uint64_t seed, int64_t trial, int param)
{
    uint64_t x = splitmix64(splitmix64(seed ^ 0x6b696c6e) ^ (uint64_t)trial);
    x = splitmix64(x ^ ((uint64_t)param << 32));
    return (double)(x >> 11) * 0x1.0p-53;
}

void kiln_sweep_trial_sets(const struct kiln_sweep_spec *spec, int64_t t, char sets[][192])
{
    int64_t rest = t;
    /* Grid: the last parameter varies fastest, like nested loops. */
    int64_t idx[KILN_SWEEP_MAX_PARAMS] = {0};
    if (!spec->random)
        for (int i = spec->n_params - 1; i >= 0; i--) {
            idx[i] = rest % spec->params[i].n_values;
            rest /= spec->params[i].n_values;
        }
    for (int i = 0; i < spec->n_params; i++) {
        const struct kiln_sweep_param *p = &spec->params[i];
        char val[64];
        if (!spec->random) {
            snprintf(sets[i], 192, "%s=%s", p->key, p->values[idx[i]]);
            continue;
        }
        double u = draw(spec->seed, t, i);
        if (p->n_values > 0) {
            int k = (int)(u * p->n_values);
            snprintf(sets[i], 192, "%s=%s", p->key, p->values[k < p->n_values ? k : p->n_values - 1]);
            continue;
        }
        double v = p->log ? exp(log(p->min) + u * (log(p->max) - log(p->min)))
                          : p->min + u * (p->max - p->min);
        if (p->integer) {
            double lo = ceil(p->min), hi = floor(p->max);
            v = p->log ? round(v) : floor(lo + u * (hi - lo + 1));
            if (v < lo) v = lo;
            if (v > hi) v = hi;
            snprintf(val, sizeof val, "%.0f", v);
        } else {
            snprintf(val, sizeof val, "%.6g", v);
        }
        snprintf(sets[i], 192, "%s=%s", p->key, val);
    }
}

struct trial {
    pid_t pid;
    bool done;
    int exit_code;         /* 128 + signal when killed */
    int64_t run_id;
    bool has_metric;
    double metric;
    char error[512];
};

/* The run id the child printed ("run:N" on a line of its own) and its last
 * error line. */
static void trial_read_log(const char *log, struct trial *t)
{
    FILE *f = fopen(log, "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *end;
        if (!t->run_id && !strncmp(line, "run:", 4) && isdigit((unsigned char)line[4])) {
            long long id = strtoll(line + 4, &end, 10);
            if (*end == '\0' || *end == ' ') t->run_id = id;
        }
        if (!strncmp(line, "kiln: error: ", 13)) runs_fmt(t->error, sizeof t->error, "%s", line + 13);
    }
    fclose(f);
}

static enum kiln_status status_of_exit(int code)
{
    for (int s = KILN_OK; s <= KILN_ERR_INTERNAL; s++)
        if (kiln_status_exit_code((enum kiln_status)s) == code) return (enum kiln_status)s;
    return KILN_ERR_INTERNAL;
}

static enum kiln_status trial_spawn(struct kiln_store *ws, const struct kiln_sweep_spec *spec,
                                    const struct kiln_sweep_options *opt, int64_t sweep_id,
                                    int64_t t, const char *log, pid_t *pid)
{
    char sets[KILN_SWEEP_MAX_PARAMS][192];
    kiln_sweep_trial_sets(spec, t, sets);
    char sweep_text[32], threads[32];
    snprintf(sweep_text, sizeof sweep_text, "%lld", (long long)sweep_id);
    snprintf(threads, sizeof threads, "%d", opt->threads);
    const char *argv[16 + 2 * KILN_SWEEP_MAX_PARAMS];
    int n = 0;
    argv[n++] = opt->exe;
    argv[n++] = "train";
    argv[n++] = spec->base;
    argv[n++] = "--data";
    argv[n++] = spec->data;
    for (int i = 0; i < spec->n_params; i++) {
        argv[n++] = "--set";
        argv[n++] = sets[i];
    }
    argv[n++] = "--sweep-id";
    argv[n++] = sweep_text;
    argv[n++] = "--workspace";
    argv[n++] = ws->root;
    if (opt->threads > 0) {
        argv[n++] = "--threads";
        argv[n++] = threads;
    }
    if (opt->device) {
        argv[n++] = "--device";
        argv[n++] = opt->device;
    }
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    int rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0) rc = posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (rc == 0) rc = posix_spawn(pid, opt->exe, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return kiln_errorf(KILN_ERR_IO, "cannot start %s: %s", opt->exe, strerror(rc));
    return KILN_OK;
}

static double trial_metric(struct kiln_store *ws, int64_t run_id, const char *metric, bool *have)
{
    *have = false;
    sqlite3_stmt *s;
    if (store_prepare(ws, "SELECT value FROM run_summary WHERE run_id = ? AND key = ?", &s) != KILN_OK)
        return 0;
    sqlite3_bind_int64(s, 1, run_id);
    sqlite3_bind_text(s, 2, metric, -1, SQLITE_STATIC);
    double v = 0;
    if (sqlite3_step(s) == SQLITE_ROW) {
        v = sqlite3_column_double(s, 0);
        *have = true;
    }
    sqlite3_finalize(s);
    return v;
}

/* The values a trial set, without the keys, for the table. */
static const char *set_value(const char *set) { return strchr(set, '=') + 1; }

static void print_trial(FILE *out, const struct kiln_sweep_spec *spec, int64_t t,
                        const struct trial *tr)
{
    char sets[KILN_SWEEP_MAX_PARAMS][192];
    kiln_sweep_trial_sets(spec, t, sets);
    fprintf(out, "trial %lld/%lld", (long long)t + 1, (long long)spec->trials);
    if (tr->run_id) fprintf(out, "  run:%lld", (long long)tr->run_id);
    for (int i = 0; i < spec->n_params; i++) fprintf(out, "  %s", sets[i]);
    if (tr->exit_code == 0) {
        fprintf(out, "  finished");
        if (tr->has_metric) fprintf(out, "  %s %.4f", spec->metric, tr->metric);
    } else {
        fprintf(out, "  failed (exit %d)%s%s", tr->exit_code, tr->error[0] ? ": " : "", tr->error);
    }
    fputc('\n', out);
    fflush(out);
}

static const struct kiln_sweep_spec *rank_spec;
static const struct trial *rank_trials;

static int rank_cmp(const void *a, const void *b)
{
    const struct trial *x = &rank_trials[*(const int64_t *)a], *y = &rank_trials[*(const int64_t *)b];
    bool gx = x->exit_code == 0 && x->has_metric, gy = y->exit_code == 0 && y->has_metric;
    if (gx != gy) return gx ? -1 : 1;
    if (gx && x->metric != y->metric)
        return (x->metric > y->metric) == rank_spec->maximize ? -1 : 1;
    return *(const int64_t *)a < *(const int64_t *)b ? -1 : 1;
}

static void print_ranking(FILE *out, const struct kiln_sweep_spec *spec, int64_t sweep_id,
                          const struct trial *trials)
{
    int64_t *order = malloc((size_t)spec->trials * sizeof *order);
    if (!order) return;
    for (int64_t t = 0; t < spec->trials; t++) order[t] = t;
    rank_spec = spec;
    rank_trials = trials;
    qsort(order, (size_t)spec->trials, sizeof *order, rank_cmp);
    fprintf(out, "\nsweep %lld: %lld trials ranked by %s (%s)\n", (long long)sweep_id,
            (long long)spec->trials, spec->metric, spec->maximize ? "max" : "min");
    int w[KILN_SWEEP_MAX_PARAMS];
    fprintf(out, "%-4s  %-9s  %-8s", "rank", "run", "status");
    for (int i = 0; i < spec->n_params; i++) {
        w[i] = (int)strlen(spec->params[i].key);
        if (w[i] < 10) w[i] = 10;
        fprintf(out, "  %-*s", w[i], spec->params[i].key);
    }
    fprintf(out, "  %s\n", spec->metric);
    for (int64_t r = 0; r < spec->trials; r++) {
        const struct trial *tr = &trials[order[r]];
        char sets[KILN_SWEEP_MAX_PARAMS][192], run[32] = "-";
        kiln_sweep_trial_sets(spec, order[r], sets);
        if (tr->run_id) snprintf(run, sizeof run, "run:%lld", (long long)tr->run_id);
        fprintf(out, "%-4lld  %-9s  %-8s", (long long)r + 1, run, tr->exit_code == 0 ? "finished" : "failed");
        for (int i = 0; i < spec->n_params; i++) fprintf(out, "  %-*s", w[i], set_value(sets[i]));
        if (tr->exit_code == 0 && tr->has_metric) fprintf(out, "  %.4f\n", tr->metric);
        else fprintf(out, "  -\n");
    }
    free(order);
}

static enum kiln_status sweep_record(struct kiln_store *ws, const struct kiln_sweep_spec *spec,
                                     int64_t *id)
{
    enum kiln_status st = kiln_store_begin(ws);
    if (st != KILN_OK) return st;
    sqlite3_stmt *s;
    st = store_prepare(ws,
                       "INSERT INTO sweeps(spec, metric, mode, status, created) VALUES(?, ?, ?, "
                       "'running', ?)",
                       &s);
    if (st == KILN_OK) {
        char ts[40];
        runs_time_now(ts);
        sqlite3_bind_text(s, 1, spec->source, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, spec->metric, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, spec->maximize ? "max" : "min", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, ts, -1, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(ws, "recording the sweep");
        sqlite3_finalize(s);
    }
    if (st == KILN_OK) {
        *id = sqlite3_last_insert_rowid(ws->db);
        char subject[64], detail[256];
        snprintf(subject, sizeof subject, "sweep:%lld", (long long)*id);
        snprintf(detail, sizeof detail, "%s search, %lld trials, by %s", spec->random ? "random" : "grid",
                 (long long)spec->trials, spec->metric);
        st = kiln_audit_append(ws, "sweep.start", subject, detail);
    }
    if (st == KILN_OK) return kiln_store_commit(ws);
    kiln_store_rollback(ws);
    return st;
}

static enum kiln_status sweep_end(struct kiln_store *ws, int64_t id, int64_t trials, int64_t failed)
{
    enum kiln_status st = kiln_store_begin(ws);
    if (st != KILN_OK) return st;
    sqlite3_stmt *s;
    st = store_prepare(ws, "UPDATE sweeps SET status = ? WHERE id = ?", &s);
    if (st == KILN_OK) {
        sqlite3_bind_text(s, 1, failed == trials ? "failed" : "finished", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, id);
        if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(ws, "recording the sweep's end");
        sqlite3_finalize(s);
    }
    if (st == KILN_OK) {
        char subject[64], detail[128];
        snprintf(subject, sizeof subject, "sweep:%lld", (long long)id);
        snprintf(detail, sizeof detail, "%lld trials, %lld failed", (long long)trials, (long long)failed);
        st = kiln_audit_append(ws, "sweep.end", subject, detail);
    }
    if (st == KILN_OK) return kiln_store_commit(ws);
    kiln_store_rollback(ws);
    return st;
}

enum kiln_status kiln_sweep_run(struct kiln_store *ws, const struct kiln_sweep_spec *spec,
                                const struct kiln_sweep_options *opt, int64_t *sweep_id, FILE *out)
{
    *sweep_id = 0;
    /* Everything that can be checked is checked before the first trial. */
    struct kiln_ref ref;
    enum kiln_status st = kiln_ref_resolve(ws, spec->data, KILN_REF_DATASET, &ref);
    if (st != KILN_OK) return kiln_error_context(st, "%s: data", spec->path);
    for (int64_t t = 0; t < spec->trials; t++) {
        char sets[KILN_SWEEP_MAX_PARAMS][192];
        const char *ptrs[KILN_SWEEP_MAX_PARAMS];
        kiln_sweep_trial_sets(spec, t, sets);
        for (int i = 0; i < spec->n_params; i++) ptrs[i] = sets[i];
        struct kiln_config *cfg;
        st = kiln_config_load(spec->base, ptrs, spec->n_params, &cfg);
        if (st != KILN_OK) return kiln_error_context(st, "%s: trial %lld", spec->path, (long long)t + 1);
        kiln_config_free(cfg);
    }
    st = sweep_record(ws, spec, sweep_id);
    if (st != KILN_OK) return st;
    char dir[4400];
    snprintf(dir, sizeof dir, "%s/sweeps/%lld", ws->dir, (long long)*sweep_id);
    st = fs_make_dirs(dir);
    if (st != KILN_OK) return st;
    fprintf(out, "sweep %lld: %s search, %lld trials, %d at a time; logs in %s\n",
            (long long)*sweep_id, spec->random ? "random" : "grid", (long long)spec->trials,
            opt->jobs, dir);
    fflush(out);
    struct trial *trials = calloc((size_t)spec->trials, sizeof *trials);
    if (!trials) return kiln_errorf(KILN_ERR_NOMEM, "out of memory");
    int jobs = opt->jobs > 0 ? opt->jobs : 1, running = 0;
    int64_t next = 0, finished = 0, failed = 0;
    while (finished < spec->trials) {
        while (st == KILN_OK && running < jobs && next < spec->trials) {
            char log[4500];
            snprintf(log, sizeof log, "%s/trial-%lld.log", dir, (long long)next + 1);
            st = trial_spawn(ws, spec, opt, *sweep_id, next, log, &trials[next].pid);
            if (st != KILN_OK) break;
            running++;
            next++;
        }
        if (running == 0) break;
        int wstatus;
        pid_t pid = waitpid(-1, &wstatus, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            st = kiln_errorf(KILN_ERR_IO, "waiting for a trial: %s", strerror(errno));
            break;
        }
        int64_t t = 0;
        while (t < next && (trials[t].pid != pid || trials[t].done)) t++;
        if (t == next) continue; /* not one of ours */
        struct trial *tr = &trials[t];
        tr->done = true;
        running--;
        finished++;
        tr->exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
        char log[4500];
        snprintf(log, sizeof log, "%s/trial-%lld.log", dir, (long long)t + 1);
        trial_read_log(log, tr);
        if (tr->exit_code != 0 && !tr->error[0])
            runs_fmt(tr->error, sizeof tr->error, "see %s", log);
        if (tr->exit_code != 0) failed++;
        if (tr->run_id) tr->metric = trial_metric(ws, tr->run_id, spec->metric, &tr->has_metric);
        print_trial(out, spec, t, tr);
    }
    /* A spawn failure leaves the trials already started to finish. */
    while (running > 0) {
        int wstatus;
        if (waitpid(-1, &wstatus, 0) < 0 && errno != EINTR) break;
        running--;
    }
    enum kiln_status est = sweep_end(ws, *sweep_id, spec->trials, failed + (spec->trials - finished));
    if (st == KILN_OK) st = est;
    if (st == KILN_OK) print_ranking(out, spec, *sweep_id, trials);
    if (st == KILN_OK && failed == spec->trials) {
        st = kiln_errorf(status_of_exit(trials[0].exit_code), "every trial of sweep %lld failed; "
                         "the first: %s", (long long)*sweep_id, trials[0].error);
    }
    free(trials);
    return st;
}
