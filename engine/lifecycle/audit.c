/* engine/lifecycle/audit.c: the append-only audit log, a SHA-256 chain. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store-internal.h"

#define GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* The hash covers every field and the previous entry's hash, each
 * length-prefixed so that no two entries serialise alike. */
static enum kiln_status audit_hash(int64_t id, const char *fields[6], const char *prev,
                                   char out[65])
{
    struct sha256_ctx *c;
    enum kiln_status st = sha256_begin(&c);
    if (st != KILN_OK) return st;
    char num[32];
    int n = snprintf(num, sizeof num, "%lld", (long long)id);
    sha256_update(c, num, (size_t)n + 1);
    for (int i = 0; i < 6; i++) {
        const char *f = fields[i] ? fields[i] : "";
        size_t len = strlen(f);
        n = snprintf(num, sizeof num, "%zu:", len);
        sha256_update(c, num, (size_t)n);
        sha256_update(c, f, len);
    }
    sha256_update(c, prev, 64);
    sha256_end(c, out);
    return KILN_OK;
}

enum kiln_status kiln_audit_append(struct kiln_store *ws, const char *action, const char *subject,
                                   const char *detail)
{
    enum kiln_status st = kiln_store_begin(ws);
    if (st != KILN_OK) return st;
    sqlite3_stmt *s = NULL;
    char prev[65] = GENESIS, sha[65], ts[32];
    int64_t id = 1;
    st = store_prepare(ws, "SELECT id, sha256 FROM audit ORDER BY id DESC LIMIT 1", &s);
    if (st != KILN_OK) goto done;
    if (sqlite3_step(s) == SQLITE_ROW) {
        id = sqlite3_column_int64(s, 0) + 1;
        snprintf(prev, sizeof prev, "%s", (const char *)sqlite3_column_text(s, 1));
    }
    sqlite3_finalize(s);
    s = NULL;
    time_iso8601(ts);
    const char *fields[6] = {ts, kiln_store_user(), kiln_store_host(), action, subject,
                             detail ? detail : ""};
    st = audit_hash(id, fields, prev, sha);
    if (st != KILN_OK) goto done;
    st = store_prepare(ws,
                       "INSERT INTO audit(id, time, user, host, action, subject, detail, "
                       "prev_sha256, sha256) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       &s);
    if (st != KILN_OK) goto done;
    sqlite3_bind_int64(s, 1, id);
    for (int i = 0; i < 6; i++) sqlite3_bind_text(s, 2 + i, fields[i], -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, prev, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 9, sha, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) {
        st = store_sql_error(ws, "appending to the audit log");
        goto done;
    }
    sqlite3_finalize(s);
    s = NULL;
    /* The head is kept apart from the chain, so that deleting the newest
     * entries is detected too. */
    st = store_prepare(ws, "INSERT OR REPLACE INTO meta(key, value) VALUES('audit_head', ?)", &s);
    if (st != KILN_OK) goto done;
    char head[96];
    snprintf(head, sizeof head, "%lld:%s", (long long)id, sha);
    sqlite3_bind_text(s, 1, head, -1, SQLITE_STATIC);
    if (sqlite3_step(s) != SQLITE_DONE) st = store_sql_error(ws, "recording the audit head");
done:
    sqlite3_finalize(s);
    if (st == KILN_OK) return kiln_store_commit(ws);
    kiln_store_rollback(ws);
    return st;
}

enum kiln_status kiln_audit_verify(struct kiln_store *ws, int64_t *entries)
{
    *entries = 0;
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(
        ws, "SELECT id, time, user, host, action, subject, detail, prev_sha256, sha256 FROM audit "
            "ORDER BY id",
        &s);
    if (st != KILN_OK) return st;
    char prev[65] = GENESIS, sha[65];
    int64_t expect = 1;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0);
        const char *fields[6];
        for (int i = 0; i < 6; i++) fields[i] = (const char *)sqlite3_column_text(s, 1 + i);
        const char *stored_prev = (const char *)sqlite3_column_text(s, 7);
        const char *stored = (const char *)sqlite3_column_text(s, 8);
        if (id != expect) {
            st = kiln_errorf(KILN_ERR_INTEGRITY,
                             "audit log: entry %lld is missing (the next is %lld): history was "
                             "deleted",
                             (long long)expect, (long long)id);
            break;
        }
        if (!stored_prev || strcmp(stored_prev, prev) != 0) {
            st = kiln_errorf(KILN_ERR_INTEGRITY,
                             "audit log: entry %lld does not chain to entry %lld: history was "
                             "edited or deleted",
                             (long long)id, (long long)id - 1);
            break;
        }
        st = audit_hash(id, fields, prev, sha);
        if (st != KILN_OK) break;
        if (!stored || strcmp(stored, sha) != 0) {
            st = kiln_errorf(KILN_ERR_INTEGRITY,
                             "audit log: entry %lld (%s %s) was edited: its hash does not match "
                             "its contents",
                             (long long)id, fields[3] ? fields[3] : "", fields[4] ? fields[4] : "");
            break;
        }
        snprintf(prev, sizeof prev, "%s", sha);
        expect++;
    }
    sqlite3_finalize(s);
    if (st != KILN_OK) return st;
    if (rc != SQLITE_DONE) return store_sql_error(ws, "reading the audit log");
    *entries = expect - 1;
    /* The newest entries must still be there. */
    st = store_prepare(ws, "SELECT value FROM meta WHERE key = 'audit_head'", &s);
    if (st != KILN_OK) return st;
    char want[96] = "", have[96];
    if (sqlite3_step(s) == SQLITE_ROW) snprintf(want, sizeof want, "%s", sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    snprintf(have, sizeof have, "%lld:%s", (long long)(expect - 1), prev);
    if (expect > 1 && strcmp(want, have) != 0)
        return kiln_errorf(KILN_ERR_INTEGRITY,
                           "audit log: the newest entries were deleted (the log ends at entry "
                           "%lld, its head says %s)",
                           (long long)(expect - 1), want);
    return KILN_OK;
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(out, "\\%c", ch);
        else if (ch < 0x20) fprintf(out, "\\u%04x", ch);
        else fputc(ch, out);
    }
    fputc('"', out);
}

enum kiln_status kiln_audit_print(struct kiln_store *ws, int64_t limit, bool json, FILE *out)
{
    sqlite3_stmt *s;
    enum kiln_status st = store_prepare(
        ws, "SELECT * FROM (SELECT id, time, user, host, action, subject, detail, sha256 FROM audit "
            "ORDER BY id DESC LIMIT ?) ORDER BY id",
        &s);
    if (st != KILN_OK) return st;
    sqlite3_bind_int64(s, 1, limit > 0 ? limit : -1);
    static const char *const names[] = {"id", "time", "user", "host", "action", "subject",
                                        "detail", "sha256"};
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (json) {
            fputc('{', out);
            for (int i = 0; i < 8; i++) {
                fprintf(out, "%s\"%s\": ", i ? ", " : "", names[i]);
                if (i == 0) fprintf(out, "%lld", (long long)sqlite3_column_int64(s, 0));
                else json_str(out, (const char *)sqlite3_column_text(s, i));
            }
            fputs("}\n", out);
        } else {
            fprintf(out, "%5lld  %s  %-10s %-22s %-28s %s  %.12s\n",
                    (long long)sqlite3_column_int64(s, 0), sqlite3_column_text(s, 1),
                    sqlite3_column_text(s, 2), sqlite3_column_text(s, 4),
                    sqlite3_column_text(s, 5), sqlite3_column_text(s, 6),
                    sqlite3_column_text(s, 7));
        }
    }
    sqlite3_finalize(s);
    return KILN_OK;
}
