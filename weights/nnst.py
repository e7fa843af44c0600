"""nnst.py — what the weight converters share: the safetensors writer (atomic,
finite float32 only), file sha256 and the converters' error type."""
import hashlib
import json
import os
import struct

import numpy as np


class ConvertError(Exception):
    pass


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, array) written as little-endian F32 after an
    8-byte LE header length and the JSON header (padded to 8 bytes). Written
    to a temp file in the same folder, fsynced and renamed: a killed run
    leaves no half-written file. A NaN/Inf tensor raises ConvertError."""
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs = []
    off = 0
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr, dtype="<f4")
        if not np.all(np.isfinite(arr)):
            raise ConvertError("%s: tensor %s holds NaN/Inf" % (path, name))
        b = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hj)))
            f.write(hj)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
