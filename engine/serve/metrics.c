/* engine/serve/metrics.c: placeholder until written. */
