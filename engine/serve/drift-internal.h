/* engine/serve/drift-internal.h: what drift.c shares with drift-window.c
 * (not public API), so that a live window bins values exactly as a batch
 * comparison does. */
#ifndef KILN_SERVE_DRIFT_INTERNAL_H
#define KILN_SERVE_DRIFT_INTERNAL_H

#include "kiln/stats.h"

/* kiln_stats_bin, except for a baseline constant feature (see kiln/drift.h):
 * a value equal to it goes to the last bin, any other to bin 0, so that a
 * change shows. */
static inline int drift_bin(double x, double min, double max)
{
    if (!(max > min)) return x == min ? KILN_STATS_BINS - 1 : 0;
    return kiln_stats_bin(x, min, max);
}

#endif
