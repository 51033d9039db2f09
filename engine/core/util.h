/* engine/core/util.h: small helpers shared inside libkiln (not public API):
 * atomic file publication, SHA-256, HDF5 attribute helpers, time stamps. */
#ifndef KILN_CORE_UTIL_H
#define KILN_CORE_UTIL_H

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
/* mkdir -p for one level; fine when it exists. */
enum kiln_status fs_make_dir(const char *dir);

/* --- SHA-256 (OpenSSL EVP) ---------------------------------------------------- */
struct sha256_ctx; /* opaque */
enum kiln_status sha256_begin(struct sha256_ctx **out);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
/* Writes 64 hex digits and a NUL to hex, frees c. */
void sha256_end(struct sha256_ctx *c, char hex[65]);
void sha256_abort(struct sha256_ctx *c);
/* SHA-256 of a whole file, streamed. */
enum kiln_status sha256_file(const char *path, char hex[65]);

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

/* --- misc ---------------------------------------------------------------------- */
/* Current UTC time as "2026-11-26T21:28:19Z". */
void time_iso8601(char buf[32]);
/* strdup that reports out of memory as a status; NULL src gives NULL. */
enum kiln_status str_dup(const char *src, char **out);

#endif
