/* kiln/bench.h: kernel throughput (`kiln bench`).
 *
 *   struct kiln_bench_report r;
 *   if (kiln_bench_run("cuda", 0, false, &r) == KILN_OK)
 *       for (int i = 0; i < r.n_rows; i++) printf("%s %g\n", r.rows[i].name, r.rows[i].rate);
 *
 * Each kernel family runs at several sizes: verified against a reference
 * first, then warmed up and timed (median of many; device events on CUDA,
 * the wall clock on the CPU), inputs rotated through several copies where
 * one copy would sit in cache. Ceilings come from the same run: the
 * backend's buffer-to-buffer copy bandwidth for memory-bound kernels, the
 * vendor GEMM (cuBLAS, OpenBLAS) for GEMMs.
 */
#ifndef KILN_BENCH_H
#define KILN_BENCH_H

#include <stdbool.h>

#include "kiln/status.h"

#define KILN_BENCH_MAX_ROWS 64

struct kiln_bench_row {
    char family[24];   /* gemm, activation, softmax_xent, optimizer, gather, copy */
    char name[48];     /* e.g. "gemm kiln NT" */
    char shape[48];    /* e.g. "4096x4096x4096" */
    double ms;         /* median time of one call */
    double rate;       /* GFLOP/s (gemm) or GB/s (the rest) */
    bool flops;        /* rate is GFLOP/s */
    double pct_ceiling;/* rate against the ceiling of its kind, in % */
    double vs_vendor;  /* own GEMM / vendor GEMM at this shape (0: not applicable) */
    bool verified;     /* matched the reference before timing */
};

struct kiln_bench_report {
    char device[256];  /* which backend ran, as kiln_backend_open said */
    double copy_gbs;   /* measured copy bandwidth (read + write) */
    int n_rows;
    struct kiln_bench_row rows[KILN_BENCH_MAX_ROWS];
};

/* Benchmarks the kernels of the backend device names (see
 * kiln_backend_open); quick uses fewer sizes and repetitions (tests).
 * Fills *out; a kernel that fails verification is still timed and marked
 * verified = false. */
enum kiln_status kiln_bench_run(const char *device, int threads, bool quick,
                                struct kiln_bench_report *out);

#endif
