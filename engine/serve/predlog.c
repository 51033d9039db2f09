/* engine/serve/predlog.c: placeholder until written. */
