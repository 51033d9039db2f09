/* engine/serve/predlog-internal.h: test hooks of the prediction log (not
 * public API). They let a unit test make the queue tiny and hold the writer
 * thread still, so that drop counting is exact rather than a race. */
#ifndef KILN_SERVE_PREDLOG_INTERNAL_H
#define KILN_SERVE_PREDLOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kiln/predlog.h"

/* Replaces the queue bound (KILN_PREDLOG_QUEUE_BYTES) of an open log. */
void predlog_test_set_queue_bytes(struct kiln_predlog *l, int64_t bytes);
/* While held, the writer thread writes nothing and the queue only grows;
 * kiln_predlog_close releases it. */
void predlog_test_hold_writer(struct kiln_predlog *l, bool hold);
/* Replaces the longest line kiln_predlog_read accepts (256 MiB and a bit),
 * so that a test need not write a 256 MiB line. Not thread-safe. */
void predlog_test_set_max_line(size_t bytes);
/* Bytes a record of this shape counts against the queue bound. */
int64_t predlog_record_bytes(const struct kiln_predlog *l, const char *request_id, int64_t rows,
                             int64_t width, int64_t k, bool has_classes);

#endif
