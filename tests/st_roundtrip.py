#!/usr/bin/python3
"""st_roundtrip.py — cross-checks nnmask's safetensors code against an independent
reader/writer (Python + numpy, no safetensors package) following the format's rules.

usage: st_roundtrip.py PATH/TO/st_roundtrip_helper
1. The C helper writes a file; we parse it as the reference implementation would
   (8-byte LE length, UTF-8 JSON, offsets contiguous from 0 to the end of the buffer,
   metadata strings) and compare every value with what the helper printed.
2. We write a file (F32, F16 with subnormals, BF16, I64, no header padding, data
   order different from header order, metadata) and the helper reads it back.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("st_roundtrip: numpy missing, skipped")
    sys.exit(77)

failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg)


DT = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
      "I8": "i1", "U8": "u1", "BOOL": "?", "U16": "<u2", "U32": "<u4", "U64": "<u8"}


def parse(path):
    """Reads a safetensors file strictly (the rules of the reference Rust reader)."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw), "header length past EOF"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    assert raw[8:9] == b"{"
    buf = raw[8 + n:]
    meta = header.pop("__metadata__", None) or {}
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    spans = sorted((e["data_offsets"][0], e["data_offsets"][1], k) for k, e in header.items())
    pos = 0
    for b, e, k in spans:
        assert b == pos, "tensor %s: offsets not contiguous (%d != %d)" % (k, b, pos)
        pos = e
    assert pos == len(buf), "buffer not fully indexed (%d of %d)" % (pos, len(buf))
    tensors = {}
    for k, e in header.items():
        b, en = e["data_offsets"]
        shape = tuple(e["shape"])
        if e["dtype"] == "BF16":
            u = np.frombuffer(buf[b:en], "<u2").astype(np.uint32) << 16
            a = u.view(np.float32)
        else:
            a = np.frombuffer(buf[b:en], DT[e["dtype"]])
        assert a.size == int(np.prod(shape)), "tensor %s: size mismatch" % k
        tensors[k] = (e["dtype"], a.reshape(shape))
    return n, meta, tensors


def helper_lines(out):
    rows = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if parts[0] == "T":
            _, name, dtype, shape, vals = parts
            shape = tuple(int(s) for s in shape.split(",")) if shape else ()
            v = np.array([float(x) for x in vals.split()], np.float32)
            rows[name] = ("T", dtype, shape, v)
        elif parts[0] == "M":
            rows[("meta", parts[1])] = parts[2]
        elif parts[0] == "E":
            rows.setdefault("errors", []).append(parts[1])
    return rows


def main():
    helper = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="nnmask-st-")

    # 1. C writes, Python reads
    cpath = os.path.join(tmp, "c.safetensors")
    out = subprocess.run([helper, "write", cpath], check=True, capture_output=True,
                         text=True).stdout
    printed = helper_lines(out)
    n, meta, tensors = parse(cpath)
    check(n % 8 == 0, "header length %d not a multiple of 8" % n)
    check(meta == {"format": "pt", "note": 'quote " backslash \\ newline\n utf8 \u00e9'},
          "metadata %r" % meta)
    names = {k for k in printed if isinstance(k, str) and k != "errors"}
    check(set(tensors) == names, "tensor names %s vs %s" % (sorted(tensors), sorted(names)))
    for k in names:
        _, dtype, shape, v = printed[k]
        if k not in tensors:
            continue
        fdt, a = tensors[k]
        check(fdt == "F32", "%s: dtype %s" % (k, fdt))
        check(a.shape == shape, "%s: shape %s vs %s" % (k, a.shape, shape))
        check(np.array_equal(a.ravel(), v), "%s: values differ" % k)

    # 2. Python writes, C reads
    rng = np.random.default_rng(7)
    f32 = rng.standard_normal((3, 4)).astype(np.float32)
    f16 = np.array([0.5, -2.0, 65504.0, 6.0e-8, -0.0, 1e-4, 3.14159], np.float16)
    bf_src = np.array([1.5, -0.15625, 123.456, -1e-20], np.float32)
    bf = (bf_src.view(np.uint32) >> 16).astype(np.uint16)      # truncating BF16
    bf_val = (bf.astype(np.uint32) << 16).view(np.float32)
    i64 = np.array([1, -2], np.int64)
    scalar = np.array(2.5, np.float32)
    # data laid out in a different order than the header lists them
    blobs = [("z_i64", "I64", i64), ("a_bf16", "BF16", bf), ("m_f16", "F16", f16),
             ("b.f32", "F32", f32), ("s", "F32", scalar)]
    header, data, pos = {}, b"", 0
    for name, dt, arr in blobs:
        by = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [pos, pos + len(by)]}
        data += by
        pos += len(by)
    order = ["m_f16", "s", "b.f32", "z_i64", "a_bf16"]
    hdr = {"__metadata__": {"k": "v \u00fc \"q\"", "step": "12"}}
    hdr.update({k: header[k] for k in order})
    hj = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    if len(hj) % 8 == 0:
        hj += b" "       # deliberately unpadded (the format allows any length)
    ppath = os.path.join(tmp, "py.safetensors")
    with open(ppath, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + data)
    out = subprocess.run([helper, "check", ppath], check=True, capture_output=True,
                         text=True).stdout
    got = helper_lines(out)
    check(got.get(("meta", "k")) == "v \u00fc \"q\"" and got.get(("meta", "step")) == "12",
          "metadata read by C: %r" % {k: v for k, v in got.items() if isinstance(k, tuple)})
    expect = {"b.f32": ("F32", f32), "m_f16": ("F16", f16.astype(np.float32)),
              "a_bf16": ("BF16", bf_val), "s": ("F32", scalar)}
    for name, (dt, ref) in expect.items():
        if name not in got:
            check(False, "C did not read %s" % name)
            continue
        _, gdt, shape, v = got[name]
        check(gdt == dt, "%s: dtype %s vs %s" % (name, gdt, dt))
        check(shape == ref.shape, "%s: shape %s vs %s" % (name, shape, ref.shape))
        check(np.array_equal(v, ref.ravel().astype(np.float32)),
              "%s: values %s vs %s" % (name, v, ref.ravel()))
    errs = got.get("errors", [])
    check(len(errs) == 1 and "tensor 'z_i64': dtype I64, expected F32" in errs[0]
          and "py.safetensors" in errs[0], "I64 error: %r" % errs)

    # 3. Python's own parse of its file agrees (sanity of the reference parser)
    _, _, t2 = parse(ppath)
    check(np.array_equal(t2["b.f32"][1], f32), "python reparse")

    for fn in os.listdir(tmp):
        os.unlink(os.path.join(tmp, fn))
    os.rmdir(tmp)
    passed = "ok" if failures == 0 else "FAILED"
    print("st_roundtrip: %d failed (%s)" % (failures, passed))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
