"""tamper_golden.py IN OUT [--drop-signature]: copies package IN to OUT with
its golden outputs shifted by 0.01 and the manifest re-hashed to match, a
consistent but wrong package: only the golden check itself can refuse it.
--drop-signature leaves manifest.sig out (the old one no longer fits)."""
import hashlib
import io
import sys
import tarfile

import h5py
import numpy as np

src, dst = sys.argv[1], sys.argv[2]
drop_sig = "--drop-signature" in sys.argv[3:]
t = tarfile.open(src)
members = [(m.name, t.extractfile(m).read()) for m in t.getmembers()
           if not (drop_sig and m.name == "manifest.sig")]
d = dict(members)
f = h5py.File(io.BytesIO(d["golden.h5"]), "r")
bio = io.BytesIO()
with h5py.File(bio, "w") as g:
    g["inputs"] = f["inputs"][()]
    g["outputs"] = (f["outputs"][()] + np.float32(0.01)).astype(np.float32)
    g.attrs["inputs_transformed"] = np.int64(0)
new = bio.getvalue()
new_sha = hashlib.sha256(new).hexdigest()
man = d["manifest.yaml"].decode()
man = man.replace(hashlib.sha256(d["golden.h5"]).hexdigest(), new_sha)
man = man.replace('size: %d\n    sha256: "%s' % (len(d["golden.h5"]), new_sha),
                  'size: %d\n    sha256: "%s' % (len(new), new_sha))
out = tarfile.open(dst, "w", format=tarfile.PAX_FORMAT)
for name, data in members:
    data = {"golden.h5": new, "manifest.yaml": man.encode()}.get(name, data)
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    out.addfile(ti, io.BytesIO(data))
out.close()
