/* engine/serve/drift-window.c: placeholder until written. */
