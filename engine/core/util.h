/* engine/core/util.h: small helpers shared inside libkiln (not public API):
 * atomic file publication, folders, SHA-256, HDF5 attribute helpers, growable
 * strings, name lists, time stamps. */
#ifndef KILN_CORE_UTIL_H
#define KILN_CORE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

#include "kiln/status.h"

/* --- atomic files -----------------------------------------------------------
 * Write to the path fs_temp_path gives, then fs_publish: fsync the temp file,
 * rename it over final, fsync the folder. A crash at any point leaves either
 * the old file or the new one under the final name, never a torn one. */

/* "<dir>/.<base>.tmp.<pid>" for final; KILN_ERR_IO when it does not fit. */
enum kiln_status fs_temp_path(const char *final, char *buf, size_t len);
enum kiln_status fs_publish(const char *tmp, const char *final);
/* Checks that the folder of path exists and is writable, so a job fails
 * before hours of work rather than at its end. */
enum kiln_status fs_check_writable_dir(const char *dir);
/* mkdir for one level; fine when it exists. Then checks, as
 * fs_check_writable_dir, that dir is a writable folder. */
enum kiln_status fs_make_dir(const char *dir);
/* mkdir -p: creates every missing folder of dir, then checks dir as
 * fs_make_dir does. KILN_ERR_IO naming the folder that could not be made. */
enum kiln_status fs_make_dirs(const char *dir);
/* Checks that path exists and is not a folder, so that a reader fails with
 * the path named ("x.idx: No such file or directory", "x.idx: is a folder")
 * rather than later with a vaguer read error. KILN_ERR_IO. *size, when size
 * is not NULL, gets the file's size in bytes. */
enum kiln_status fs_check_file(const char *path, int64_t *size);

/* --- SHA-256 (OpenSSL EVP) ---------------------------------------------------- */
struct sha256_ctx; /* opaque */
enum kiln_status sha256_begin(struct sha256_ctx **out);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
/* Writes 64 hex digits and a NUL to hex, frees c. */
void sha256_end(struct sha256_ctx *c, char hex[65]);
void sha256_abort(struct sha256_ctx *c);
/* SHA-256 of a whole file, streamed. */
enum kiln_status sha256_file(const char *path, char hex[65]);
/* Whether s is a digest as sha256_end writes it: 64 lowercase hex digits. */
bool sha256_is_hex(const char *s);

/* --- HDF5 ----------------------------------------------------------------------
 * HDF5 reports failure as a negative return; these helpers turn that into a
 * kiln status with the file and object named. h5_quiet() silences HDF5's own
 * stderr trace once per process (our messages say what failed). */
void h5_quiet(void);
enum kiln_status h5_attr_write_str(hid_t obj, const char *name, const char *value);
enum kiln_status h5_attr_write_i64(hid_t obj, const char *name, int64_t value);
enum kiln_status h5_attr_write_f64(hid_t obj, const char *name, double value);
/* Writes a list of strings as a 1-D variable-length string attribute. */
enum kiln_status h5_attr_write_strs(hid_t obj, const char *name, char *const *values, int n);
/* Reads a string attribute (fixed or variable length) into a new string the
 * caller frees. KILN_ERR_FORMAT when absent or not a string. */
enum kiln_status h5_attr_read_str(hid_t obj, const char *name, char **out);
enum kiln_status h5_attr_read_i64(hid_t obj, const char *name, int64_t *out);
enum kiln_status h5_attr_read_f64(hid_t obj, const char *name, double *out);
/* Reads a 1-D string attribute; *out is an array of n strings, all freed with
 * strv_free. */
enum kiln_status h5_attr_read_strs(hid_t obj, const char *name, char ***out, int *n);
bool h5_attr_exists(hid_t obj, const char *name);
void strv_free(char **v, int n);

/* Writes a float32 array [dims] under name in loc (creating it). */
enum kiln_status h5_write_f32(hid_t loc, const char *name, int ndim, const int64_t *dims,
                              const float *data);
/* Reads a float32 array that must have exactly the given dims. */
enum kiln_status h5_read_f32_exact(hid_t loc, const char *name, int ndim, const int64_t *dims,
                                   float *data);

/* A dataset opened with its type and dataspace, for code that checks both
 * before reading. h5_array_open returns false when any of the three could
 * not be opened (the caller words the error); either way the handles are
 * released with h5_array_close, which ignores those that are -1. */
struct h5_array {
    hid_t d, type, space;
};
#define H5_ARRAY_INIT {-1, -1, -1} /* closed: what a cleanup path may see */
bool h5_array_open(hid_t loc, const char *name, struct h5_array *a);
void h5_array_close(struct h5_array *a);

/* --- growable strings -----------------------------------------------------------
 * A builder checks for out of memory once, at the end: on a failed
 * allocation the string stops growing and failed is set, and the appends
 * after it do nothing. p is NUL-terminated whenever it is not NULL.
 *
 *     struct sbuf b = {0};
 *     sbuf_add(&b, "%s: %d\n", key, value);
 *     char *text = sbuf_take(&b);   // NULL when out of memory; caller frees
 */
struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
};
/* Appends printf-style text. */
void sbuf_add(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with a va_list, which it leaves unconsumed for the caller's va_end. */
void sbuf_addv(struct sbuf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends len bytes of s (which need not be NUL-terminated). */
void sbuf_append(struct sbuf *b, const char *s, size_t len);
/* Hands the string to the caller, who frees it with free(), and leaves b
 * empty: "" when nothing was added, NULL (the text freed) when an append
 * ran out of memory. */
char *sbuf_take(struct sbuf *b);
/* Frees the text and leaves b empty, ready for reuse. */
void sbuf_free(struct sbuf *b);

/* --- name lists ------------------------------------------------------------------ */
/* Splits a comma-separated list ("a, b,c") into names with the blanks
 * (spaces, tabs) around each trimmed. *out is an array of *n new strings,
 * freed with strv_free. An empty name is KILN_ERR_USAGE, its message
 * starting with what ("classes: item 2 is empty in 'a,,b'"); with what NULL,
 * empty names are dropped instead. Nothing is returned on failure. */
enum kiln_status str_split_list(const char *list, const char *what, char ***out, int *n);

/* --- misc ---------------------------------------------------------------------- */
/* Current UTC time as "2026-11-26T21:28:19Z". */
void time_iso8601(char buf[32]);
/* strdup that reports out of memory as a status; NULL src gives NULL. */
enum kiln_status str_dup(const char *src, char **out);

#endif
