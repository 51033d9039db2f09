/* engine/serve/server.c: placeholder until written. */
