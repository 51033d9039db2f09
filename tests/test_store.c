/* tests/test_store.c: the workspace store core: init/open, schema versions,
 * objects (dedupe, read-only, verification), references to files, the audit
 * chain and its tampering, gc and fsck. */
#define _DEFAULT_SOURCE
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln/store.h"
#include "test.h"

static char root[4096];

/* A fresh workspace in a new temp folder. */
static struct kiln_store *fresh_store(void)
{
    snprintf(root, sizeof root, "/tmp/kiln-test-store.XXXXXX");
    if (!mkdtemp(root)) return NULL;
    if (kiln_store_init(root, NULL, 0) != KILN_OK) return NULL;
    struct kiln_store *ws = NULL;
    kiln_store_open(root, &ws);
    return ws;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void sql(struct kiln_store *ws, const char *q)
{
    sqlite3_exec(kiln_store_db(ws), q, NULL, NULL, NULL);
}

TEST(init_open_and_walk_up)
{
    struct kiln_store *ws = fresh_store();
    ASSERT(ws != NULL);
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/a/b", root);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", sub);
    ASSERT(system(cmd) == 0);
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_store_init(root, NULL, 0), "already");
    char cwd[4096];
    ASSERT(getcwd(cwd, sizeof cwd) != NULL);
    ASSERT(chdir(sub) == 0);
    struct kiln_store *found = NULL;
    enum kiln_status st = kiln_store_open(NULL, &found);
    ASSERT(chdir(cwd) == 0);
    ASSERT_OK(st);
    ASSERT_EQ_STR(kiln_store_root(ws), kiln_store_root(found));
    kiln_store_close(found);
    /* --workspace names the workspace itself, not a folder below it */
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_store_open(sub, &found), "kiln init");
    ASSERT_OK(kiln_store_open_optional(sub, &found));
    ASSERT(found == NULL);
    kiln_store_close(ws);
}

TEST(newer_schema_refused)
{
    struct kiln_store *ws = fresh_store();
    ASSERT(ws != NULL);
    sql(ws, "UPDATE meta SET value = '99' WHERE key = 'schema_version'");
    kiln_store_close(ws);
    struct kiln_store *again = NULL;
    ASSERT_STATUS(KILN_ERR_UNSUPPORTED, kiln_store_open(root, &again), "upgrade kiln");
    ASSERT(again == NULL);
}

TEST(objects_dedupe_verify_and_read_only)
{
    struct kiln_store *ws = fresh_store();
    ASSERT(ws != NULL);
    char src[4200], sha1[65], sha2[65], path[4400];
    snprintf(src, sizeof src, "%s/hello.txt", root);
    write_file(src, "hello objects\n");
    int64_t size = 0;
    ASSERT_OK(kiln_store_put_file(ws, src, "test", sha1, &size));
    ASSERT_EQ_INT(14, size);
    ASSERT_OK(kiln_store_put_file(ws, src, "test", sha2, NULL));
    ASSERT_EQ_STR(sha1, sha2);
    /* sha256("hello objects\n") computed with sha256sum */
    FILE *p = popen("printf 'hello objects\\n' | sha256sum", "r");
    char want[65] = "";
    ASSERT(p && fscanf(p, "%64s", want) == 1);
    pclose(p);
    ASSERT_EQ_STR(want, sha1);
    ASSERT_OK(kiln_store_object_path(ws, sha1, path, sizeof path));
    struct stat sb;
    ASSERT(stat(path, &sb) == 0);
    ASSERT_EQ_INT(0444, sb.st_mode & 0777);
    sqlite3_stmt *s;
    sqlite3_prepare_v2(kiln_store_db(ws), "SELECT count(*) FROM objects", -1, &s, NULL);
    sqlite3_step(s);
    ASSERT_EQ_INT(1, sqlite3_column_int64(s, 0));
    sqlite3_finalize(s);
    /* one flipped byte is refused, naming the hash it now has */
    chmod(path, 0644);
    int fd = open(path, O_WRONLY);
    ASSERT(fd >= 0 && pwrite(fd, "j", 1, 0) == 1);
    close(fd);
    ASSERT_STATUS(KILN_ERR_INTEGRITY, kiln_store_object_path(ws, sha1, path, sizeof path), "corrupt");
    FILE *out = tmpfile();
    int64_t problems = 0;
    ASSERT_STATUS(KILN_ERR_INTEGRITY, kiln_store_fsck(ws, out, &problems), "1 problem");
    ASSERT_EQ_INT(1, problems);
    fclose(out);
    /* a missing object is not found */
    unlink(path);
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_store_object_path(ws, sha1, path, sizeof path), "missing");
    ASSERT_STATUS(KILN_ERR_FORMAT, kiln_store_object_path(ws, "../../etc/passwd", path, sizeof path), NULL);
    kiln_store_close(ws);
}

TEST(gc_removes_unreferenced_objects_and_stale_tmp)
{
    struct kiln_store *ws = fresh_store();
    ASSERT(ws != NULL);
    char src[4200], sha[65], path[4400], tmp[4400];
    snprintf(src, sizeof src, "%s/x.bin", root);
    write_file(src, "unreferenced");
    ASSERT_OK(kiln_store_put_file(ws, src, "test", sha, NULL));
    /* a temp file of a process that no longer exists */
    snprintf(tmp, sizeof tmp, "%s/.kiln/tmp/999999999-1-0.obj", root);
    write_file(tmp, "left behind");
    /* an object file whose record never committed (its writer died), two
     * hours old, and a fresh one that may still be on its way in */
    char orphan[4400], young[4400], cmd[20000];
    snprintf(orphan, sizeof orphan, "%s/.kiln/objects/ab/%062d", root, 0);
    snprintf(young, sizeof young, "%s/.kiln/objects/ab/%062d", root, 1);
    snprintf(cmd, sizeof cmd, "mkdir -p %s/.kiln/objects/ab && echo x > %s && echo y > %s && "
             "touch -d '2 hours ago' %s", root, orphan, young, orphan);
    ASSERT(system(cmd) == 0);
    struct kiln_gc_report r;
    ASSERT_OK(kiln_store_gc(ws, true, &r));
    ASSERT_EQ_INT(2, r.objects_removed);
    ASSERT_EQ_INT(1, r.tmp_removed);
    kiln_store_object_path_unchecked(ws, sha, path, sizeof path);
    ASSERT(access(path, F_OK) == 0); /* dry run removed nothing */
    ASSERT_OK(kiln_store_gc(ws, false, &r));
    ASSERT_EQ_INT(2, r.objects_removed);
    ASSERT(access(path, F_OK) != 0);
    ASSERT(access(orphan, F_OK) != 0);
    ASSERT(access(young, F_OK) == 0);
    ASSERT(access(tmp, F_OK) != 0);
    FILE *out = tmpfile();
    int64_t problems = -1;
    ASSERT_OK(kiln_store_fsck(ws, out, &problems));
    ASSERT_EQ_INT(0, problems);
    fclose(out);
    kiln_store_close(ws);
}

TEST(audit_chain_detects_edits_and_deletions)
{
    struct kiln_store *ws = fresh_store();
    ASSERT(ws != NULL);
    ASSERT_OK(kiln_audit_append(ws, "test.a", "one", "first"));
    ASSERT_OK(kiln_audit_append(ws, "test.b", "two", "second"));
    ASSERT_OK(kiln_audit_append(ws, "test.c", "three", ""));
    int64_t n = 0;
    ASSERT_OK(kiln_audit_verify(ws, &n));
    ASSERT_EQ_INT(4, n); /* init + 3 */
    sql(ws, "UPDATE audit SET detail = 'forged' WHERE id = 2");
    ASSERT_STATUS(KILN_ERR_INTEGRITY, kiln_audit_verify(ws, &n), "entry 2");
    sql(ws, "UPDATE audit SET detail = 'first' WHERE id = 2");
    ASSERT_OK(kiln_audit_verify(ws, &n));
    sql(ws, "DELETE FROM audit WHERE id = 3");
    ASSERT_STATUS(KILN_ERR_INTEGRITY, kiln_audit_verify(ws, &n), "entry 3 is missing");
    kiln_store_close(ws);

    ws = fresh_store();
    ASSERT(ws != NULL);
    ASSERT_OK(kiln_audit_append(ws, "test.a", "one", ""));
    ASSERT_OK(kiln_audit_append(ws, "test.b", "two", ""));
    sql(ws, "DELETE FROM audit WHERE id = 3");
    ASSERT_STATUS(KILN_ERR_INTEGRITY, kiln_audit_verify(ws, &n), "newest");
    kiln_store_close(ws);
}

TEST(concurrent_audit_appends_chain)
{
    struct kiln_store *ws = fresh_store();
    ASSERT(ws != NULL);
    kiln_store_close(ws);
    /* 6 processes append 20 entries each through their own connections. */
    for (int p = 0; p < 6; p++) {
        if (fork() == 0) {
            struct kiln_store *w = NULL;
            if (kiln_store_open(root, &w) != KILN_OK) _exit(1);
            for (int i = 0; i < 20; i++)
                if (kiln_audit_append(w, "test.concurrent", "x", "") != KILN_OK) _exit(2);
            kiln_store_close(w);
            _exit(0);
        }
    }
    int failed = 0, status;
    while (wait(&status) > 0) failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    ASSERT_EQ_INT(0, failed);
    ASSERT_OK(kiln_store_open(root, &ws));
    int64_t n = 0;
    ASSERT_OK(kiln_audit_verify(ws, &n));
    ASSERT_EQ_INT(121, n);
    kiln_store_close(ws);
}

TEST(references_to_plain_files)
{
    struct kiln_ref ref;
    ASSERT_STATUS(KILN_ERR_IO, kiln_ref_resolve(NULL, "./no-such.h5", KILN_REF_FILE, &ref), "no such file");
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_ref_resolve(NULL, "fashion-mnist", KILN_REF_DATASET, &ref), "kiln init");
    struct kiln_store *ws = fresh_store();
    ASSERT(ws != NULL);
    char src[4200];
    snprintf(src, sizeof src, "%s/data.h5", root);
    write_file(src, "x");
    ASSERT_OK(kiln_ref_resolve(ws, src, KILN_REF_FILE, &ref));
    ASSERT_EQ_INT(KILN_REF_FILE, ref.kind);
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_ref_resolve(ws, "nothing", KILN_REF_FILE, &ref), "no dataset, model or file");
    ASSERT_STATUS(KILN_ERR_NOT_FOUND, kiln_ref_resolve(ws, "run:7", KILN_REF_RUN, &ref), "no such run");
    ASSERT_STATUS(KILN_ERR_USAGE, kiln_ref_resolve(ws, "run:x", KILN_REF_RUN, &ref), "run:N");
    kiln_store_close(ws);
}

int main(void)
{
    RUN(init_open_and_walk_up);
    RUN(newer_schema_refused);
    RUN(objects_dedupe_verify_and_read_only);
    RUN(gc_removes_unreferenced_objects_and_stale_tmp);
    RUN(audit_chain_detects_edits_and_deletions);
    RUN(concurrent_audit_appends_chain);
    RUN(references_to_plain_files);
    return test_summary();
}
