/* engine/serve/predlog.c: the prediction log (kiln/predlog.h).
 *
 * kiln_predlog_record, on the request path, only decides (a hash of the
 * seed and a request counter, so the same seed samples the same requests),
 * copies the arrays into one allocation and links it onto a queue. One
 * writer thread formats each record as a JSON line and appends it with a
 * single write() to a file opened O_APPEND, rotating by size. Disk trouble
 * is counted and logged once; it never reaches the caller, whose requests
 * matter more than their log.
 *
 * Floats are printed with %.9g, which round-trips every float32 exactly;
 * NaN and Inf, which JSON cannot hold, are written as null and read back as
 * NaN. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "elementwise.h"
#include "kiln/log.h"
#include "kiln/predlog.h"
#include "serve/predlog-internal.h"

/* The longest line the reader accepts. A record is dropped before it is
 * queued when its arrays pass the queue bound, and a float takes at most 16
 * characters for its 4 bytes, so every line the writer makes fits. */
#define PREDLOG_MAX_LINE ((size_t)4 * KILN_PREDLOG_QUEUE_BYTES + ((size_t)1 << 20))
static size_t predlog_max_line = PREDLOG_MAX_LINE; /* the reader's; tests lower it */
#define PREDLOG_ROTATED_PREFIX "predictions-"
#define PREDLOG_SUFFIX ".jsonl"

struct predlog_rec {
    struct predlog_rec *next;
    struct timespec when;
    int64_t rows, width, k;
    int64_t bytes;               /* counted against the queue bound */
    float *x, *y;                /* x is NULL when redacted */
    int32_t *classes;            /* NULL when the caller gave none */
    char *request_id;
};

struct kiln_predlog {
    char *dir;
    char active[4200];           /* dir/predictions.jsonl */
    char *model_json;            /* the model name as a JSON string */
    double sample;
    bool redact;
    int64_t max_file_bytes;
    int max_files;
    int64_t model_version;
    uint64_t seed;
    atomic_uint_fast64_t counter; /* requests seen: the sampling hash's counter */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    struct predlog_rec *head, *tail;
    int64_t queued_bytes;
    /* Atomic so that a record can size itself against it without the lock;
     * only the test hook changes it after open. */
    _Atomic int64_t queue_limit;
    bool stopping, hold;
    struct kiln_predlog_counts counts;

    /* The writer thread's own (no lock). */
    int fd;
    int64_t file_bytes;
    int64_t seq;                 /* of the next rotated file */
    bool logged;                 /* an error was logged already */
    struct sbuf line;
};

/* --- names ------------------------------------------------------------------------- */

/* predictions-YYYYMMDDTHHMMSSZ-NNNNNN.jsonl; *seq gets NNNNNN. */
static bool predlog_rotated_name(const char *name, int64_t *seq)
{
    size_t np = strlen(PREDLOG_ROTATED_PREFIX), ns = strlen(PREDLOG_SUFFIX), n = strlen(name);
    if (n < np + 16 + 2 + ns || strncmp(name, PREDLOG_ROTATED_PREFIX, np) != 0 ||
        strcmp(name + n - ns, PREDLOG_SUFFIX) != 0)
        return false;
    const char *s = name + np;
    for (int i = 0; i < 16; i++) {
        bool digit = s[i] >= '0' && s[i] <= '9';
        if (i == 8 ? s[i] != 'T' : i == 15 ? s[i] != 'Z' : !digit) return false;
    }
    if (s[16] != '-') return false;
    int64_t v = 0;
    const char *d = s + 17, *end = name + n - ns;
    if (d == end || end - d > 18) return false;
    for (; d < end; d++) {
        if (*d < '0' || *d > '9') return false;
        v = v * 10 + (*d - '0');
    }
    if (seq) *seq = v;
    return true;
}

static int predlog_filter_rotated(const struct dirent *e)
{
    return predlog_rotated_name(e->d_name, NULL);
}

/* Every predictions*.jsonl: what the reader takes from a folder. */
static int predlog_filter_any(const struct dirent *e)
{
    size_t n = strlen(e->d_name), np = strlen("predictions"), ns = strlen(PREDLOG_SUFFIX);
    return n >= np + ns && !strncmp(e->d_name, "predictions", np) &&
           !strcmp(e->d_name + n - ns, PREDLOG_SUFFIX);
}

/* By name (the rotation stamp, then its sequence number), the active file
 * last: oldest first. strcmp rather than alphasort: no locale. */
static int predlog_cmp_names(const struct dirent **a, const struct dirent **b)
{
    bool aa = !strcmp((*a)->d_name, KILN_PREDLOG_FILE), ba = !strcmp((*b)->d_name, KILN_PREDLOG_FILE);
    if (aa != ba) return aa ? 1 : -1;
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void predlog_free_names(struct dirent **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* The name as a JSON string (quoted, escaped) in a new string, NULL when out
 * of memory. Bytes that are not UTF-8 become '?': a request id comes from a
 * client, and one bad id must not cost the line. */
static char *predlog_json_string(const char *s)
{
    char *out = NULL, *copy = NULL;
    json_t *v = json_string(s ? s : "");
    if (!v && s) {
        if (str_dup(s, &copy) != KILN_OK) goto cleanup;
        for (char *p = copy; *p; p++)
            if ((unsigned char)*p >= 0x80) *p = '?';
        v = json_string(copy);
    }
    if (v) out = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
cleanup:
    json_decref(v);
    free(copy);
    return out;
}

/* --- the writer thread ------------------------------------------------------------------ */

static void predlog_warn(struct kiln_predlog *l, const char *what, const char *path, int err)
{
    if (l->logged) return;
    l->logged = true;
    kiln_log(KILN_LOG_WARN,
             "prediction log: %s %s: %s (requests are still served; later errors are counted, "
             "not logged)",
             what, path, strerror(err));
}

/* A line left unfinished by a crash (of the machine: a process's single
 * write() is whole or absent) would make the reader refuse the file, and a
 * line appended after it would share its line: cut it off. */
static void predlog_cut_torn_tail(struct kiln_predlog *l, int fd, int64_t *size)
{
    char buf[65536];
    int64_t end = *size, at = end;
    while (at > 0) {
        int64_t from = at > (int64_t)sizeof buf ? at - (int64_t)sizeof buf : 0;
        ssize_t n = pread(fd, buf, (size_t)(at - from), (off_t)from);
        if (n != (ssize_t)(at - from)) return; /* unreadable: leave it to the reader to report */
        int64_t i = n - 1;
        while (i >= 0 && buf[i] != '\n') i--;
        if (i >= 0) {
            at = from + i + 1;
            break;
        }
        at = from;
    }
    if (at == end || ftruncate(fd, (off_t)at) != 0) return;
    kiln_log(KILN_LOG_WARN, "prediction log %s: removed %lld bytes of a last line left unfinished",
             l->active, (long long)(end - at));
    *size = at;
}

static int predlog_open_active(struct kiln_predlog *l, int64_t *size)
{
    int fd = open(l->active, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct stat sb;
    if (fd >= 0 && fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (fd < 0) return -1;
    *size = (int64_t)sb.st_size;
    if (S_ISREG(sb.st_mode) && *size > 0) predlog_cut_torn_tail(l, fd, size);
    return fd;
}

/* Keeps the newest max_files rotated files. */
static void predlog_prune(struct kiln_predlog *l)
{
    struct dirent **names = NULL;
    int n = scandir(l->dir, &names, predlog_filter_rotated, predlog_cmp_names);
    if (n < 0) {
        predlog_warn(l, "listing", l->dir, errno);
        return;
    }
    for (int i = 0; i + l->max_files < n; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", l->dir, names[i]->d_name);
        if (unlink(path) != 0 && errno != ENOENT) predlog_warn(l, "removing", path, errno);
    }
    predlog_free_names(names, n);
}

/* Renames the active file to its rotated name and starts a new one. On
 * failure the old file stays active and grows past the limit. */
static void predlog_rotate(struct kiln_predlog *l)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char stamp[32], path[4400];
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(path, sizeof path, "%s/" PREDLOG_ROTATED_PREFIX "%s-%06lld" PREDLOG_SUFFIX, l->dir,
             stamp, (long long)l->seq);
    /* The rotated file is final: its bytes reach the disk before its name does. */
    if (fsync(l->fd) != 0 && errno != EINVAL) predlog_warn(l, "syncing", l->active, errno);
    if (rename(l->active, path) != 0) {
        predlog_warn(l, "rotating", l->active, errno);
        return;
    }
    l->seq++;
    close(l->fd);
    l->fd = predlog_open_active(l, &l->file_bytes);
    if (l->fd < 0) predlog_warn(l, "opening", l->active, errno);
    pthread_mutex_lock(&l->mu);
    l->counts.rotations++;
    pthread_mutex_unlock(&l->mu);
    predlog_prune(l);
}

static void predlog_add_floats(struct sbuf *b, const float *v, int64_t n)
{
    char t[32];
    for (int64_t i = 0; i < n; i++) {
        if (i) sbuf_append(b, ",", 1);
        if (!isfinite(v[i])) {
            sbuf_append(b, "null", 4);
            continue;
        }
        /* "-0" would read back as the integer 0: the sign needs a fraction. */
        if (v[i] == 0.0f && signbit(v[i])) {
            sbuf_append(b, "-0.0", 4);
            continue;
        }
        int len = snprintf(t, sizeof t, "%.9g", (double)v[i]);
        sbuf_append(b, t, (size_t)len);
    }
}

static void predlog_add_matrix(struct sbuf *b, const char *key, const float *m, int64_t rows,
                               int64_t cols)
{
    sbuf_add(b, ",\"%s\":[", key);
    for (int64_t r = 0; r < rows; r++) {
        sbuf_append(b, r ? ",[" : "[", r ? 2 : 1);
        predlog_add_floats(b, m + r * cols, cols);
        sbuf_append(b, "]", 1);
    }
    sbuf_append(b, "]", 1);
}

/* One record as one line, in l->line. False when out of memory. */
static bool predlog_format(struct kiln_predlog *l, const struct predlog_rec *r)
{
    struct sbuf *b = &l->line;
    /* Reused for every line: emptied, not freed. */
    b->len = 0;
    b->failed = false;
    if (b->p) b->p[0] = '\0';
    struct tm tm;
    gmtime_r(&r->when.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    char *id = predlog_json_string(r->request_id);
    if (!id) return false;
    sbuf_add(b, "{\"time\":\"%s.%03dZ\",\"request_id\":%s,\"model\":%s,\"model_version\":%lld,"
             "\"rows\":%lld",
             stamp, (int)(r->when.tv_nsec / 1000000), id, l->model_json,
             (long long)l->model_version, (long long)r->rows);
    free(id);
    if (r->x) predlog_add_matrix(b, "inputs", r->x, r->rows, r->width);
    predlog_add_matrix(b, "outputs", r->y, r->rows, r->k);
    if (r->classes) {
        sbuf_add(b, ",\"classes\":[");
        for (int64_t i = 0; i < r->rows; i++) sbuf_add(b, i ? ",%d" : "%d", (int)r->classes[i]);
        sbuf_append(b, "]", 1);
    }
    sbuf_append(b, "}\n", 2);
    return !b->failed;
}

/* Appends one record; true when it reached the file. */
static bool predlog_write(struct kiln_predlog *l, const struct predlog_rec *r)
{
    if (!predlog_format(l, r)) {
        predlog_warn(l, "formatting a record for", l->active, ENOMEM);
        return false;
    }
    size_t len = l->line.len;
    if (len > PREDLOG_MAX_LINE) {
        predlog_warn(l, "a record too large for one line of", l->active, EFBIG);
        return false;
    }
    if (l->fd >= 0 && l->file_bytes > 0 && l->file_bytes + (int64_t)len > l->max_file_bytes)
        predlog_rotate(l);
    if (l->fd < 0) {
        /* The folder came back, perhaps: try again for every record. */
        l->fd = predlog_open_active(l, &l->file_bytes);
        if (l->fd < 0) {
            predlog_warn(l, "opening", l->active, errno);
            return false;
        }
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(l->fd, l->line.p + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            predlog_warn(l, "writing", l->active, n < 0 ? errno : ENOSPC);
            /* No torn line for a reader to trip on: cut back what was written. */
            if (off > 0 && ftruncate(l->fd, (off_t)l->file_bytes) != 0)
                predlog_warn(l, "truncating", l->active, errno);
            return false;
        }
        off += (size_t)n;
    }
    l->file_bytes += (int64_t)len;
    return true;
}

static void *predlog_writer(void *arg)
{
    struct kiln_predlog *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stopping && (l->hold || !l->head)) pthread_cond_wait(&l->cv, &l->mu);
        if (!l->head) break; /* stopping, and everything is written */
        struct predlog_rec *r = l->head;
        l->head = r->next;
        if (!l->head) l->tail = NULL;
        pthread_mutex_unlock(&l->mu);
        bool ok = predlog_write(l, r);
        pthread_mutex_lock(&l->mu);
        l->queued_bytes -= r->bytes;
        if (ok) l->counts.written++;
        else l->counts.errors++;
        free(r);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* --- the public side ------------------------------------------------------------------ */

/* Bytes of one allocation holding a record; the layout is record, floats,
 * classes, request id (each part keeps its alignment). */
static int64_t predlog_alloc_bytes(bool redact, const char *request_id, int64_t rows,
                                   int64_t width, int64_t k, bool has_classes)
{
    int64_t floats = rows * ((redact ? 0 : width) + k);
    return (int64_t)sizeof(struct predlog_rec) + floats * (int64_t)sizeof(float) +
           (has_classes ? rows * (int64_t)sizeof(int32_t) : 0) +
           (int64_t)strlen(request_id ? request_id : "") + 1;
}

int64_t predlog_record_bytes(const struct kiln_predlog *l, const char *request_id, int64_t rows,
                             int64_t width, int64_t k, bool has_classes)
{
    return predlog_alloc_bytes(l->redact, request_id, rows, width, k, has_classes);
}

void predlog_test_set_queue_bytes(struct kiln_predlog *l, int64_t bytes)
{
    atomic_store(&l->queue_limit, bytes);
}

void predlog_test_set_max_line(size_t bytes)
{
    predlog_max_line = bytes;
}

void predlog_test_hold_writer(struct kiln_predlog *l, bool hold)
{
    pthread_mutex_lock(&l->mu);
    l->hold = hold;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void predlog_free(struct kiln_predlog *l)
{
    free(l->dir);
    free(l->model_json);
    sbuf_free(&l->line);
    free(l);
}

enum kiln_status kiln_predlog_open(const struct kiln_predlog_options *o, struct kiln_predlog **out)
{
    *out = NULL;
    if (!o || !o->dir || !*o->dir)
        return kiln_errorf(KILN_ERR_USAGE, "prediction log: no folder given");
    if (!(o->sample >= 0.0 && o->sample <= 1.0))
        return kiln_errorf(KILN_ERR_USAGE, "prediction log: sample share %g is outside [0, 1]",
                           o->sample);
    enum kiln_status st = KILN_OK;
    bool sync_made = false;
    struct dirent **names = NULL;
    int n_names = 0;
    struct kiln_predlog *l = calloc(1, sizeof *l);
    if (!l) return kiln_errorf(KILN_ERR_NOMEM, "prediction log: out of memory");
    l->fd = -1;
    l->sample = o->sample;
    l->redact = o->redact;
    l->max_file_bytes = o->max_file_bytes > 0 ? o->max_file_bytes : KILN_PREDLOG_MAX_FILE_BYTES;
    l->max_files = o->max_files > 0 ? o->max_files : KILN_PREDLOG_MAX_FILES;
    l->model_version = o->model_version;
    l->seed = o->seed;
    atomic_init(&l->queue_limit, KILN_PREDLOG_QUEUE_BYTES);
    atomic_init(&l->counter, 0);
    if ((st = str_dup(o->dir, &l->dir)) != KILN_OK) goto cleanup;
    l->model_json = predlog_json_string(o->model_name);
    if (!l->model_json) {
        st = kiln_errorf(KILN_ERR_NOMEM, "prediction log: out of memory");
        goto cleanup;
    }
    if (snprintf(l->active, sizeof l->active, "%s/%s", o->dir, KILN_PREDLOG_FILE) >=
        (int)sizeof l->active) {
        st = kiln_errorf(KILN_ERR_IO, "prediction log %s: path too long", o->dir);
        goto cleanup;
    }
    if ((st = fs_make_dirs(o->dir)) != KILN_OK) {
        kiln_error_context(st, "prediction log");
        goto cleanup;
    }
    l->fd = predlog_open_active(l, &l->file_bytes);
    if (l->fd < 0) {
        st = kiln_errorf(KILN_ERR_IO, "prediction log %s: %s", l->active, strerror(errno));
        goto cleanup;
    }
    /* Continue the rotation sequence of an earlier run in this folder. */
    n_names = scandir(o->dir, &names, predlog_filter_rotated, predlog_cmp_names);
    if (n_names < 0) {
        st = kiln_errorf(KILN_ERR_IO, "prediction log %s: %s", o->dir, strerror(errno));
        n_names = 0;
        goto cleanup;
    }
    l->seq = 1;
    for (int i = 0; i < n_names; i++) {
        int64_t s = 0;
        if (predlog_rotated_name(names[i]->d_name, &s) && s >= l->seq) l->seq = s + 1;
    }
    if (pthread_mutex_init(&l->mu, NULL) != 0 || pthread_cond_init(&l->cv, NULL) != 0) {
        st = kiln_errorf(KILN_ERR_NOMEM, "prediction log: cannot make a mutex");
        goto cleanup;
    }
    sync_made = true;
    int e = pthread_create(&l->thread, NULL, predlog_writer, l);
    if (e != 0) {
        st = kiln_errorf(KILN_ERR_NOMEM, "prediction log: cannot start the writer thread: %s",
                         strerror(e));
        goto cleanup;
    }
cleanup:
    predlog_free_names(names, n_names);
    if (st != KILN_OK) {
        if (l->fd >= 0) close(l->fd);
        if (sync_made) {
            pthread_mutex_destroy(&l->mu);
            pthread_cond_destroy(&l->cv);
        }
        predlog_free(l);
        l = NULL;
    }
    *out = l;
    return st;
}

void kiln_predlog_record(struct kiln_predlog *l, const char *request_id, const float *x,
                         int64_t rows, int64_t width, const float *y, int64_t k,
                         const int32_t *classes)
{
    if (!l) return;
    uint64_t n = atomic_fetch_add(&l->counter, 1);
    if (!(l->sample > 0.0)) return;
    /* 53 bits of the hash as a uniform double in [0, 1): 1.0 takes every request. */
    if (l->sample < 1.0 && (double)(kiln_rng_hash(l->seed, n) >> 11) * 0x1p-53 >= l->sample) return;
    bool redact = l->redact || !x;
    bool bad = rows < 0 || k < 0 || (!redact && width < 0) || (rows > 0 && k > 0 && !y);
    /* Estimated in double first, so that no product below can overflow. */
    double est = bad ? 0.0
                     : (double)rows * ((redact ? 0.0 : (double)width) + (double)k + 1.0) * 4.0 +
                           (double)(request_id ? strlen(request_id) : 0);
    int64_t limit = atomic_load(&l->queue_limit);
    struct predlog_rec *r = NULL;
    int64_t bytes = 0;
    if (!bad && est <= (double)limit) {
        bytes = predlog_alloc_bytes(redact, request_id, rows, width, k, classes != NULL);
        r = malloc((size_t)bytes);
    }
    pthread_mutex_lock(&l->mu);
    if (bad || !r || l->queued_bytes + bytes > atomic_load(&l->queue_limit) || l->stopping) {
        /* Full queue, a record larger than the bound, or out of memory: the
         * request is served unlogged. A malformed call is a caller bug,
         * counted with the errors. */
        if (bad) l->counts.errors++;
        else l->counts.dropped++;
        pthread_mutex_unlock(&l->mu);
        free(r);
        return;
    }
    l->queued_bytes += bytes;
    l->counts.sampled++;
    pthread_mutex_unlock(&l->mu);

    /* Filled outside the lock; linked in below. */
    memset(r, 0, sizeof *r);
    clock_gettime(CLOCK_REALTIME, &r->when);
    r->rows = rows;
    r->width = redact ? 0 : width;
    r->k = k;
    r->bytes = bytes;
    char *p = (char *)(r + 1);
    if (!redact) {
        r->x = (float *)p;
        if (rows * width > 0) memcpy(r->x, x, (size_t)(rows * width) * sizeof(float));
        p += (size_t)(rows * width) * sizeof(float);
    }
    r->y = (float *)p;
    if (rows * k > 0) memcpy(r->y, y, (size_t)(rows * k) * sizeof(float));
    p += (size_t)(rows * k) * sizeof(float);
    if (classes) {
        r->classes = (int32_t *)p;
        if (rows > 0) memcpy(r->classes, classes, (size_t)rows * sizeof(int32_t));
        p += (size_t)rows * sizeof(int32_t);
    }
    r->request_id = p;
    strcpy(r->request_id, request_id ? request_id : "");

    pthread_mutex_lock(&l->mu);
    if (l->tail) l->tail->next = r;
    else l->head = r;
    l->tail = r;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

struct kiln_predlog_counts kiln_predlog_counts(const struct kiln_predlog *l)
{
    struct kiln_predlog_counts c = {0};
    if (!l) return c;
    struct kiln_predlog *m = (struct kiln_predlog *)l; /* the lock is not part of the value */
    pthread_mutex_lock(&m->mu);
    c = m->counts;
    pthread_mutex_unlock(&m->mu);
    return c;
}

void kiln_predlog_close(struct kiln_predlog *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stopping = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    if (l->fd >= 0) {
        if (fsync(l->fd) != 0 && errno != EINVAL) predlog_warn(l, "syncing", l->active, errno);
        close(l->fd);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    predlog_free(l);
}

/* --- reading ------------------------------------------------------------------------- */

/* Lines of a file, each at most PREDLOG_MAX_LINE bytes, read in blocks. */
struct predlog_lines {
    FILE *f;
    char *buf;
    size_t cap, start, end;
    bool eof;
};

enum predlog_line_result { LINE_OK, LINE_EOF, LINE_TOO_LONG, LINE_IO, LINE_NOMEM };

static enum predlog_line_result predlog_next_line(struct predlog_lines *lr, char **line, size_t *len)
{
    for (;;) {
        char *nl = lr->end > lr->start ? memchr(lr->buf + lr->start, '\n', lr->end - lr->start) : NULL;
        if (nl) {
            *line = lr->buf + lr->start;
            *len = (size_t)(nl - *line);
            lr->start += *len + 1;
            return *len > predlog_max_line ? LINE_TOO_LONG : LINE_OK;
        }
        if (lr->end - lr->start > predlog_max_line) return LINE_TOO_LONG;
        if (lr->eof) {
            if (lr->start == lr->end) return LINE_EOF;
            /* A last line without its newline. */
            *line = lr->buf + lr->start;
            *len = lr->end - lr->start;
            lr->start = lr->end;
            return LINE_OK;
        }
        if (lr->start > 0) {
            memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
            lr->end -= lr->start;
            lr->start = 0;
        }
        if (lr->end == lr->cap) {
            size_t cap = lr->cap ? 2 * lr->cap : (size_t)1 << 20;
            if (cap > predlog_max_line + 2) cap = predlog_max_line + 2;
            char *b = realloc(lr->buf, cap);
            if (!b) return LINE_NOMEM;
            lr->buf = b;
            lr->cap = cap;
        }
        size_t got = fread(lr->buf + lr->end, 1, lr->cap - lr->end, lr->f);
        if (got == 0) {
            if (ferror(lr->f)) return LINE_IO;
            lr->eof = true;
        }
        lr->end += got;
    }
}

/* Reusable arrays for one record's rows. */
struct predlog_arrays {
    float *x;
    int32_t *classes;
    size_t x_cap, classes_cap;
};

static bool predlog_reserve(void **p, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap) return true;
    void *q = realloc(*p, n * size);
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}

/* A value of a row: a number, or null (NaN or Inf when written). */
static bool predlog_value(const json_t *v, float *out)
{
    if (json_is_null(v)) *out = NAN;
    else if (json_is_number(v)) *out = (float)json_number_value(v);
    else return false;
    return true;
}

/* Checks an array of rows arrays ("inputs", "outputs") of rows rows, all of
 * one width; fills x (when not NULL) with its values. */
static enum kiln_status predlog_parse_matrix(const json_t *a, const char *key, int64_t rows,
                                             struct predlog_arrays *buf, bool fill, int64_t *width)
{
    if (!json_is_array(a))
        return kiln_errorf(KILN_ERR_FORMAT, "\"%s\" is not an array", key);
    if ((int64_t)json_array_size(a) != rows)
        return kiln_errorf(KILN_ERR_FORMAT, "\"%s\" has %lld rows, \"rows\" says %lld", key,
                           (long long)json_array_size(a), (long long)rows);
    *width = 0;
    for (int64_t r = 0; r < rows; r++) {
        const json_t *row = json_array_get(a, (size_t)r);
        if (!json_is_array(row))
            return kiln_errorf(KILN_ERR_FORMAT, "\"%s\" row %lld is not an array", key, (long long)r);
        int64_t w = (int64_t)json_array_size(row);
        if (r == 0) {
            *width = w;
            if (fill && !predlog_reserve((void **)&buf->x, &buf->x_cap,
                                         (size_t)(rows * w > 0 ? rows * w : 1), sizeof(float)))
                return kiln_errorf(KILN_ERR_NOMEM, "out of memory for %lld x %lld inputs",
                                   (long long)rows, (long long)w);
        } else if (w != *width) {
            return kiln_errorf(KILN_ERR_FORMAT, "\"%s\" row %lld has %lld values, row 0 has %lld",
                               key, (long long)r, (long long)w, (long long)*width);
        }
        for (int64_t j = 0; j < w; j++) {
            float v;
            if (!predlog_value(json_array_get(row, (size_t)j), &v))
                return kiln_errorf(KILN_ERR_FORMAT, "\"%s\"[%lld][%lld] is not a number", key,
                                   (long long)r, (long long)j);
            if (fill) buf->x[r * w + j] = v;
        }
    }
    return KILN_OK;
}

/* One line: its record's rows handed to fn. Errors name no place; the
 * caller adds file:line. */
static enum kiln_status predlog_parse_line(const char *line, size_t len, struct predlog_arrays *buf,
                                           kiln_predlog_row_fn fn, void *user)
{
    json_error_t jerr;
    enum kiln_status st = KILN_OK;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) return kiln_errorf(KILN_ERR_FORMAT, "not JSON (column %d): %s", jerr.column, jerr.text);
    if (!json_is_object(o)) {
        st = kiln_errorf(KILN_ERR_FORMAT, "not a JSON object");
        goto cleanup;
    }
    const json_t *jrows = json_object_get(o, "rows");
    if (!json_is_integer(jrows) || json_integer_value(jrows) < 0) {
        st = kiln_errorf(KILN_ERR_FORMAT, "no \"rows\" count: not a prediction log record");
        goto cleanup;
    }
    int64_t rows = (int64_t)json_integer_value(jrows), width = 0, k = 0;
    const json_t *outputs = json_object_get(o, "outputs");
    if (!outputs) {
        st = kiln_errorf(KILN_ERR_FORMAT, "no \"outputs\": not a prediction log record");
        goto cleanup;
    }
    if ((st = predlog_parse_matrix(outputs, "outputs", rows, buf, false, &k)) != KILN_OK) goto cleanup;
    const json_t *inputs = json_object_get(o, "inputs");
    if (inputs && (st = predlog_parse_matrix(inputs, "inputs", rows, buf, true, &width)) != KILN_OK)
        goto cleanup;
    const json_t *classes = json_object_get(o, "classes");
    if (classes) {
        if (!json_is_array(classes) || (int64_t)json_array_size(classes) != rows) {
            st = kiln_errorf(KILN_ERR_FORMAT, "\"classes\" is not an array of %lld class indices",
                             (long long)rows);
            goto cleanup;
        }
        if (!predlog_reserve((void **)&buf->classes, &buf->classes_cap,
                             (size_t)(rows > 0 ? rows : 1), sizeof(int32_t))) {
            st = kiln_errorf(KILN_ERR_NOMEM, "out of memory for %lld classes", (long long)rows);
            goto cleanup;
        }
        for (int64_t i = 0; i < rows; i++) {
            const json_t *c = json_array_get(classes, (size_t)i);
            if (!json_is_integer(c) || json_integer_value(c) < INT32_MIN ||
                json_integer_value(c) > INT32_MAX) {
                st = kiln_errorf(KILN_ERR_FORMAT, "\"classes\"[%lld] is not a class index",
                                 (long long)i);
                goto cleanup;
            }
            buf->classes[i] = (int32_t)json_integer_value(c);
        }
    }
    if (rows > 0)
        st = fn(user, inputs ? buf->x : NULL, rows, inputs ? width : 0,
                classes ? buf->classes : NULL);
cleanup:
    json_decref(o);
    return st;
}

static bool predlog_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

static enum kiln_status predlog_read_file(const char *path, kiln_predlog_row_fn fn, void *user)
{
    enum kiln_status st = KILN_OK;
    struct predlog_lines lr = {0};
    struct predlog_arrays buf = {0};
    if ((st = fs_check_file(path, NULL)) != KILN_OK) return st;
    lr.f = fopen(path, "rb");
    if (!lr.f) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    for (long long lineno = 1;; lineno++) {
        char *line = NULL;
        size_t len = 0;
        enum predlog_line_result got = predlog_next_line(&lr, &line, &len);
        if (got == LINE_EOF) break;
        if (got == LINE_TOO_LONG) {
            st = kiln_errorf(KILN_ERR_FORMAT,
                             "%s:%lld: line longer than %zu bytes: not a prediction log", path,
                             lineno, predlog_max_line);
            goto cleanup;
        }
        if (got == LINE_IO) {
            st = kiln_errorf(KILN_ERR_IO, "%s:%lld: read error", path, lineno);
            goto cleanup;
        }
        if (got == LINE_NOMEM) {
            st = kiln_errorf(KILN_ERR_NOMEM, "%s:%lld: out of memory for the line", path, lineno);
            goto cleanup;
        }
        if (predlog_blank(line, len)) continue;
        st = predlog_parse_line(line, len, &buf, fn, user);
        if (st != KILN_OK) {
            kiln_error_context(st, "%s:%lld", path, lineno);
            goto cleanup;
        }
    }
cleanup:
    fclose(lr.f);
    free(lr.buf);
    free(buf.x);
    free(buf.classes);
    return st;
}

enum kiln_status kiln_predlog_read(const char *path, kiln_predlog_row_fn fn, void *user)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return predlog_read_file(path, fn, user);
    enum kiln_status st = KILN_OK;
    struct dirent **names = NULL;
    int n = scandir(path, &names, predlog_filter_any, predlog_cmp_names);
    if (n < 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    if (n == 0) st = kiln_errorf(KILN_ERR_IO, "%s: no predictions*.jsonl files in this folder", path);
    for (int i = 0; i < n && st == KILN_OK; i++) {
        char file[4400];
        if (snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name) >= (int)sizeof file)
            st = kiln_errorf(KILN_ERR_IO, "%s/%s: path too long", path, names[i]->d_name);
        else st = predlog_read_file(file, fn, user);
    }
    predlog_free_names(names, n);
    return st;
}
