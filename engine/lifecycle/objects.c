/* engine/lifecycle/objects.c: the content-addressed object store. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "store-internal.h"

void kiln_store_object_path_unchecked(const struct kiln_store *ws, const char *sha, char *buf,
                                      size_t len)
{
    snprintf(buf, len, "%s/objects/%.2s/%s", ws->dir, sha, sha + 2);
}

enum kiln_status kiln_store_tmp_path(struct kiln_store *ws, const char *suffix, char *buf,
                                     size_t len)
{
    static unsigned counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* The pid lets gc tell a live writer's temp file from a dead one's. */
    int n = snprintf(buf, len, "%s/tmp/%ld-%ld%09ld-%u%s", ws->dir, (long)getpid(),
                     (long)ts.tv_sec, ts.tv_nsec, counter++, suffix ? suffix : "");
    if (n < 0 || (size_t)n >= len) return kiln_errorf(KILN_ERR_IO, "%s: path too long", ws->dir);
    return KILN_OK;
}

/* Moves the finished, fsynced temp file tmp to its object name (or drops it
 * when that content is stored already) and records it. */
static enum kiln_status object_install(struct kiln_store *ws, const char *tmp, const char *sha,
                                       int64_t size, const char *kind)
{
    char path[4400], dir[4400];
    kiln_store_object_path_unchecked(ws, sha, path, sizeof path);
    snprintf(dir, sizeof dir, "%s/objects/%.2s", ws->dir, sha);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        unlink(tmp);
        return kiln_errorf(KILN_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    }
    struct stat sb;
    enum kiln_status st = KILN_OK;
    if (stat(path, &sb) == 0 && sb.st_size == size) {
        unlink(tmp); /* the same bytes are stored once */
    } else {
        chmod(tmp, 0444); /* read-only once written */
        st = fs_publish(tmp, path);
        if (st != KILN_OK) return st;
    }
    sqlite3_stmt *s;
    st = store_prepare(ws,
                       "INSERT OR IGNORE INTO objects(sha256, size, kind, created) "
                       "VALUES(?, ?, ?, ?)",
                       &s);
    if (st != KILN_OK) return st;
    char ts[32];
    time_iso8601(ts);
    sqlite3_bind_text(s, 1, sha, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, size);
    sqlite3_bind_text(s, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, ts, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(ws, "recording an object");
    sqlite3_finalize(s);
    return st;
}

enum kiln_status kiln_store_put_file(struct kiln_store *ws, const char *path, const char *kind,
                                     char sha[65], int64_t *size_out)
{
    char tmp[4400];
    enum kiln_status st = kiln_store_tmp_path(ws, ".obj", tmp, sizeof tmp);
    if (st != KILN_OK) return st;
    int in = open(path, O_RDONLY);
    if (in < 0) return kiln_errorf(KILN_ERR_IO, "%s: %s", path, strerror(errno));
    int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (out < 0) {
        close(in);
        return kiln_errorf(KILN_ERR_IO, "%s: %s", tmp, strerror(errno));
    }
    struct sha256_ctx *c = NULL;
    st = sha256_begin(&c);
    static _Thread_local char buf[1 << 20];
    int64_t size = 0;
    while (st == KILN_OK) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0) st = kiln_errorf(KILN_ERR_IO, "%s: read: %s", path, strerror(errno));
        if (n <= 0) break;
        sha256_update(c, buf, (size_t)n);
        for (ssize_t off = 0; off < n && st == KILN_OK;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) st = kiln_errorf(KILN_ERR_IO, "%s: write: %s (disk full?)", tmp, strerror(errno));
            else off += w;
        }
        size += n;
    }
    close(in);
    if (close(out) != 0 && st == KILN_OK)
        st = kiln_errorf(KILN_ERR_IO, "%s: write: %s", tmp, strerror(errno));
    if (st != KILN_OK) {
        sha256_abort(c);
        unlink(tmp);
        return st;
    }
    sha256_end(c, sha);
    if (size_out) *size_out = size;
    return object_install(ws, tmp, sha, size, kind);
}

enum kiln_status kiln_store_adopt_tmp(struct kiln_store *ws, const char *tmp_path,
                                      const char *kind, char sha[65], int64_t *size_out)
{
    struct stat sb;
    if (stat(tmp_path, &sb) != 0)
        return kiln_errorf(KILN_ERR_IO, "%s: %s", tmp_path, strerror(errno));
    enum kiln_status st = sha256_file(tmp_path, sha);
    if (st != KILN_OK) {
        unlink(tmp_path);
        return st;
    }
    if (size_out) *size_out = sb.st_size;
    return object_install(ws, tmp_path, sha, sb.st_size, kind);
}

enum kiln_status kiln_store_object_path(struct kiln_store *ws, const char *sha, char *buf,
                                        size_t len)
{
    if (!sha256_is_hex(sha)) return kiln_errorf(KILN_ERR_FORMAT, "'%s' is not a SHA-256", sha);
    kiln_store_object_path_unchecked(ws, sha, buf, len);
    struct stat sb;
    if (stat(buf, &sb) != 0)
        return kiln_errorf(KILN_ERR_NOT_FOUND, "object %.12s is missing from the store (%s); "
                           "`kiln fsck` lists what else is",
                           sha, buf);
    char got[65];
    enum kiln_status st = sha256_file(buf, got);
    if (st != KILN_OK) return st;
    if (strcmp(got, sha) != 0)
        return kiln_errorf(KILN_ERR_INTEGRITY,
                           "object %s is corrupt: its bytes hash to %s; refusing to use it", buf,
                           got);
    return KILN_OK;
}
