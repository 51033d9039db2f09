#!/usr/bin/env python3
"""Recomputes a kiln dataset's content hash from the file with h5py + numpy.

Usage: recompute_hash.py DATASET.h5 [--check]

Prints the recomputed hash. With --check, also compares it with the file's
`sha256` attribute and exits 1 on a mismatch. The byte stream is the one
docs/FORMATS.md defines ("Content hash"); kiln never has to run for it.
"""
import hashlib
import sys

import h5py
import numpy as np

# dtype tags in the stream: numpy's names, each followed by one NUL byte.
TAGS = {np.dtype("uint8"): b"uint8", np.dtype("int32"): b"int32", np.dtype("float32"): b"float32"}


def hash_array(h, arr):
    arr = np.asarray(arr)
    tag = TAGS[arr.dtype.newbyteorder("=")]
    h.update(tag + b"\0")
    h.update(np.array([arr.ndim, *arr.shape], dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes())


def dataset_hash(path):
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        for split in ("train", "val", "test"):
            if split not in f:
                continue
            h.update(split.encode("ascii") + b"\0")
            hash_array(h, f[split]["X"][()])
            hash_array(h, f[split]["y"][()])
        stored = f.attrs.get("sha256")
    if isinstance(stored, bytes):
        stored = stored.decode()
    return h.hexdigest(), stored


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    got, stored = dataset_hash(argv[1])
    print(got)
    if "--check" in argv[2:] and got != stored:
        print(f"mismatch: file says {stored}, arrays hash to {got}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
