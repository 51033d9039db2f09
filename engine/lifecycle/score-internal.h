/* engine/lifecycle/score-internal.h: kiln_score with its test hook (not
 * public API). */
#ifndef KILN_LIFECYCLE_SCORE_INTERNAL_H
#define KILN_LIFECYCLE_SCORE_INTERNAL_H

#include <stdbool.h>

#include "kiln/score.h"

/* kiln_score; force_staged runs the device pipeline (ring and transform
 * buffers from backend_host_alloc, double-buffered staging buffers,
 * asynchronous uploads, split predict) on any backend, so that the CPU can
 * prove it scores bit for bit as the in-place path does. kiln_score uses it
 * exactly when the backend's memory is not host memory. */
enum kiln_status score_run(const struct kiln_score_job *job, bool force_staged,
                           struct kiln_score_result *out);

#endif
