#!/usr/bin/python3
# test_fetch.py — weights/fetch_weights.sh without internet: a clear message and no partial file
# when offline, then the Keras path with files placed by hand (sha256 recorded, then enforced).
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_convert as tc  # noqa: E402  (the Keras-layout HDF5 writer)
import tu  # noqa: E402
from tu import check  # noqa: E402

SRC = tc.SRC
FETCH = os.path.join(SRC, "weights", "fetch_weights.sh")


def run(dest, *args):
    env = dict(os.environ, NNMASK_KERAS_BASE="http://127.0.0.1:9/none",
               NNMASK_CLASS_INDEX_URL="http://127.0.0.1:9/none.json", NNMASK_PYTHON=sys.executable)
    return subprocess.run(["bash", FETCH, "--keras", "--alpha", "0.35", "--size", "96",
                           "--dest", dest] + list(args), capture_output=True, text=True, env=env)


def main():
    try:
        import h5py  # noqa: F401
    except ImportError:
        print("test_fetch: python3-h5py missing, skipping")
        return 77
    stem = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96"
    with tempfile.TemporaryDirectory(prefix="nnmask-fetch-") as dest:
        kd = os.path.join(dest, "keras")
        # offline: every missing file named with the place to put it, exit 1, nothing half-written
        p = run(dest)
        check(p.returncode == 1, "offline rc %d" % p.returncode)
        for name in (stem + ".h5", stem + "_no_top.h5", "imagenet_class_index.json"):
            check("could not download" in p.stderr and os.path.join(kd, name) in p.stderr,
                     "offline message names %s: %s" % (name, p.stderr))
        left = [f for r, _, fs in os.walk(dest) for f in fs]
        check(left == [], "no files left behind offline: %s" % left)

        # placed by hand: converted, sha256 recorded
        os.makedirs(kd, exist_ok=True)
        vals = tc.write_keras_h5(os.path.join(kd, stem + ".h5"), 0.35, top=True, seed=11)
        tc.write_keras_h5(os.path.join(kd, stem + "_no_top.h5"), 0.35, top=False, seed=12)
        with open(os.path.join(kd, "imagenet_class_index.json"), "w") as f:
            json.dump({str(i): ["n%08d" % i, "class_%d" % i] for i in range(1000)}, f)
        p = run(dest)
        check(p.returncode == 0, "placed files: rc %d %s" % (p.returncode, p.stderr))
        out = os.path.join(dest, "mobilenet_v2_0.35_96.safetensors")
        check(os.path.isfile(out) and os.path.isfile(out.replace(".safetensors", "_no_top.safetensors")),
                 "both conversions written")
        if os.path.isfile(out):
            t, meta, _ = tc.read_st(out)
            check((t["logits.weight"][:, 1:] == vals[("Logits", "kernel")]).all(), "keras head")
        with open(os.path.join(dest, "imagenet_labels.txt")) as f:
            labels = f.read().splitlines()
        check(len(labels) == 1001 and labels[0] == "background" and labels[1] == "class 0",
                 "labels from the class index: %s" % labels[:2])
        with open(os.path.join(kd, "SHA256SUMS")) as f:
            rec = f.read()
        check(rec.count("\n") == 3 and stem + ".h5" in rec, "sha256 recorded: %r" % rec)

        # a file that no longer matches its recorded sha256 is refused (re-download fails offline)
        with open(os.path.join(kd, stem + "_no_top.h5"), "r+b") as f:
            f.seek(-100, 2)
            f.write(b"x" * 10)
        p = run(dest)
        check(p.returncode == 1 and "expected" in p.stderr and "_no_top.h5" in p.stderr,
                 "changed file refused: %s" % p.stderr)
    return tu.summary("test_fetch")


if __name__ == "__main__":
    sys.exit(main())
