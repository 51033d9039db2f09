/* engine/core/backend-mem.h: the backend's optional host-memory and
 * asynchronous-upload members behind wrappers that supply the default, so
 * that callers never branch on what a backend has (not public API).
 *
 *   float *x = backend_host_alloc(be, bytes);          // pinned on CUDA
 *   ... fill x ...
 *   backend_upload_async(be, dev, x, bytes, 0);        // copy stream on CUDA
 *   backend_upload_wait(be, 0);                        // ops queued next wait for it
 *   ... queue ops reading dev, then download/sync ...
 *   backend_host_free(be, x);
 */
#ifndef KILN_CORE_BACKEND_MEM_H
#define KILN_CORE_BACKEND_MEM_H

#include <stddef.h>

#include "kernels.h"

/* be's page-locked host memory, or 64-byte-aligned malloc memory where be
 * has none. NULL with a kiln_errorf message when out of memory. Free with
 * backend_host_free on the same backend, before it is freed. */
void *backend_host_alloc(struct kiln_backend *be, size_t bytes);
/* Accepts NULL. */
void backend_host_free(struct kiln_backend *be, void *ptr);
/* be's upload_async, or a plain (finished) upload where be has none. tag in
 * [0, KILN_UPLOAD_TAGS), else KILN_ERR_INTERNAL. */
enum kiln_status backend_upload_async(struct kiln_backend *be, void *dst, const void *host_src,
                                      size_t bytes, int tag);
/* be's upload_wait, or nothing to wait for where be has no upload_async. */
enum kiln_status backend_upload_wait(struct kiln_backend *be, int tag);

/* Fault injection for the tests of the pipelines built on these (kiln
 * score's staged path, streamed training): the nth backend_upload_async
 * from now (1: the next) fails with KILN_ERR_BACKEND, as a device error
 * there would; 0 clears it. A process-wide countdown: tests only, one
 * pipeline at a time. */
void backend_fail_upload_async_at(long n);

#endif
