#!/usr/bin/python3
# test_convert.py — tests weights/convert_mobilenetv2.py: a Keras-layout HDF5 file written here
# with h5py, random TF-slim .npy folders, the real ../shared folder, and every bad-input error.
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

from tu import check  # noqa: E402  (tests/tu.py: the shared counter)
import tu  # noqa: E402

SRC = os.environ.get("NNMASK_SRC") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("NNMASK_SHARED") or os.path.join(SRC, "..", "shared")
CONVERTER = os.path.join(SRC, "weights", "convert_mobilenetv2.py")
REF = os.path.join(SRC, "tests", "ref_mobilenetv2.py")
PY = sys.executable



def run_converter(*args):
    p = subprocess.run([PY, CONVERTER, "-q"] + list(args), capture_output=True, text=True)
    return p.returncode, p.stderr


def read_st(path):
    """Minimal independent safetensors reader: {name: array}, metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        assert info["dtype"] == "F32"
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], "<f4").reshape(info["shape"])
    return out, meta, list(header)


# ---- the Keras layout, spelled out by hand (independent of the converter) ----
def mkdiv(v):
    n = max(8, int(v + 4) // 8 * 8)
    return n + 8 if n < 0.9 * v else n


def keras_layers(alpha, top):
    """[(layer name, {weight: array shape}), ...] in Keras model order."""
    L = [("input_1", {})]
    bn = lambda c: {"gamma": (c,), "beta": (c,), "moving_mean": (c,), "moving_variance": (c,)}
    c = mkdiv(32 * alpha)
    L += [("Conv1", {"kernel": (3, 3, 3, c)}), ("bn_Conv1", bn(c)), ("Conv1_relu", {})]
    outs = [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320]
    for i, o in enumerate(outs):
        p = "expanded_conv_" if i == 0 else "block_%d_" % i
        e = c if i == 0 else 6 * c
        if i:
            L += [(p + "expand", {"kernel": (1, 1, c, e)}), (p + "expand_BN", bn(e)),
                  (p + "expand_relu", {})]
        L += [(p + "depthwise", {"depthwise_kernel": (3, 3, e, 1)}), (p + "depthwise_BN", bn(e)),
              (p + "depthwise_relu", {})]
        c2 = mkdiv(int(o * alpha))
        L += [(p + "project", {"kernel": (1, 1, e, c2)}), (p + "project_BN", bn(c2))]
        c = c2
    last = mkdiv(1280 * alpha) if alpha > 1 else 1280
    L += [("Conv_1", {"kernel": (1, 1, c, last)}), ("Conv_1_bn", bn(last)), ("out_relu", {})]
    if top:
        L += [("global_average_pooling2d", {}), ("Logits", {"kernel": (last, 1000), "bias": (1000,)})]
    return L


def write_keras_h5(path, alpha, top, seed=0, wrap=False, drop=None, mutate=None):
    """Writes weights the way Keras' save_weights does: root attribute
    layer_names, per-layer attribute weight_names, datasets at
    <layer>/<layer>/<weight>:0. Returns {(layer, weight): array}."""
    import h5py
    rng = np.random.default_rng(seed)
    vals = {}
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if wrap else f
        layers = [l for l in keras_layers(alpha, top) if l[0] != drop]
        root.attrs["layer_names"] = np.array([l[0].encode() for l in layers])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.2.4"
        for lname, ws in layers:
            g = root.create_group(lname)
            g.attrs["weight_names"] = np.array(["%s/%s:0" % (lname, w) for w in ws], dtype="S")
            for w, shape in ws.items():
                a = rng.standard_normal(shape).astype(np.float32)
                if w == "moving_variance":
                    a = np.abs(a) + 0.1
                if mutate and (lname, w) == mutate[0]:
                    a = mutate[1](a)
                g.create_dataset("%s/%s:0" % (lname, w), data=a)
                vals[(lname, w)] = a
    return vals


def engine_keras_pairs():
    """Engine tensor name -> (Keras layer, weight)."""
    pairs = [("stem.weight", ("Conv1", "kernel"))]
    bnp = [("gamma", "gamma"), ("beta", "beta"), ("mean", "moving_mean"), ("var", "moving_variance")]
    pairs += [("stem.bn." + e, ("bn_Conv1", k)) for e, k in bnp]
    for i in range(17):
        p = "expanded_conv_" if i == 0 else "block_%d_" % i
        ops = ([("expand", "expand", "kernel")] if i else []) + [
            ("dw", "depthwise", "depthwise_kernel"), ("project", "project", "kernel")]
        for eop, kop, wn in ops:
            pairs.append(("block%d.%s.weight" % (i, eop), (p + kop, wn)))
            pairs += [("block%d.%s.bn.%s" % (i, eop, e), (p + kop + "_BN", k)) for e, k in bnp]
    pairs.append(("last.weight", ("Conv_1", "kernel")))
    pairs += [("last.bn." + e, ("Conv_1_bn", k)) for e, k in bnp]
    return pairs


def test_keras(tmp):
    # alpha 0.35, input 96, with the 1000-way top
    h5 = os.path.join(tmp, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96.h5")
    vals = write_keras_h5(h5, 0.35, top=True, seed=3)
    out = os.path.join(tmp, "k035.safetensors")
    rc, err = run_converter(h5, "-o", out)
    check(rc == 0, "keras 0.35 conversion failed: %s" % err)
    t, meta, order = read_st(out)
    pairs = engine_keras_pairs()
    check(order[:len(pairs)] == [e for e, _ in pairs], "tensor order is stage order")
    check(len(t) == len(pairs) + 2, "tensor count %d" % len(t))
    for e, (layer, w) in pairs:
        src = vals[(layer, w)]
        if w == "depthwise_kernel":
            src = src[:, :, :, 0]
        check(e in t and t[e].shape == src.shape and np.array_equal(t[e], src),
              "%s <- %s/%s" % (e, layer, w))
    check(t["block0.dw.weight"].shape == (3, 3, 16), "depthwise squeezed to [3,3,C]")
    check(t["block1.expand.weight"].shape == (1, 1, 8, 48), "alpha 0.35 block1 expand 8->48")
    check(t["block16.project.weight"].shape == (1, 1, 336, 112), "alpha 0.35 block16 project")
    lw, lb = t["logits.weight"], t["logits.bias"]
    check(lw.shape == (1280, 1001) and lb.shape == (1001,), "logits shapes")
    check(np.array_equal(lw[:, 1:], vals[("Logits", "kernel")]) and not lw[:, 0].any(),
          "logits rows shifted by one, background row zero")
    check(np.array_equal(lb[1:], vals[("Logits", "bias")]) and lb[0] == -1e4, "logits bias")
    with open(h5, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    want = {"format": "nnmask", "arch": "mobilenetv2", "alpha": "0.35", "input_size": "96",
            "preprocess": "rgb*(1/127.5)-1", "bn_eps": "0.001", "source_sha256": sha,
            "num_classes": "1001", "logits_background": "synthetic"}
    for k, v in want.items():
        check(meta.get(k) == v, "metadata %s = %r, want %r" % (k, meta.get(k), v))
    check("source" in meta and h5.split("/")[-1] in meta["source"], "metadata source")

    # model.save() style file (model_weights group), no top, alpha 1.3 (last = 1664)
    h5b = os.path.join(tmp, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.3_224_no_top.h5")
    vals = write_keras_h5(h5b, 1.3, top=False, seed=4, wrap=True)
    out = os.path.join(tmp, "k13.safetensors")
    rc, err = run_converter(h5b, "-o", out)
    check(rc == 0, "keras 1.3 no_top conversion failed: %s" % err)
    t, meta, _ = read_st(out)
    check("logits.weight" not in t, "no_top has no logits")
    check(t["last.weight"].shape == (1, 1, 416, 1664), "alpha 1.3 last conv 1664")
    check(t["stem.weight"].shape == (3, 3, 3, 40), "alpha 1.3 stem 40")
    check(np.array_equal(t["block7.dw.bn.var"], vals[("block_7_depthwise_BN", "moving_variance")]),
          "block7 dw var")
    check(meta.get("alpha") == "1.3" and meta.get("input_size") == "224", "1.3 metadata")

    # errors name the tensor
    bad = os.path.join(tmp, "bad_0.35_96.h5")
    out = os.path.join(tmp, "bad.safetensors")
    write_keras_h5(bad, 0.35, top=False, drop="block_5_project_BN")
    rc, err = run_converter(bad, "-o", out)
    check(rc == 1 and "block_5_project_BN" in err, "missing layer: rc %d: %s" % (rc, err))
    write_keras_h5(bad, 0.35, top=False, mutate=(("block_2_expand", "kernel"), lambda a: a[:, :, :, :-1]))
    rc, err = run_converter(bad, "-o", out)
    check(rc == 1 and "block2.expand.weight" in err and "shape" in err, "wrong shape: %s" % err)
    write_keras_h5(bad, 0.35, top=False, mutate=(("Conv_1_bn", "gamma"),
                                                 lambda a: np.where(np.arange(a.size) == 7, np.nan, a)))
    rc, err = run_converter(bad, "-o", out)
    check(rc == 1 and "last.bn.gamma" in err and "NaN" in err, "NaN: %s" % err)
    write_keras_h5(bad, 0.35, top=False, mutate=(("bn_Conv1", "beta"), lambda a: a.astype(np.int32)))
    rc, err = run_converter(bad, "-o", out)
    check(rc == 1 and "stem.bn.beta" in err and "dtype" in err, "int dtype: %s" % err)
    check(not os.path.exists(out), "no output written on error")
    check(not [f for f in os.listdir(tmp) if ".tmp." in f], "no temp files left behind")
    with open(bad, "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n truncated")
    rc, err = run_converter(bad, "-o", out)
    check(rc == 1 and "bad_0.35_96.h5" in err, "truncated h5: %s" % err)


def test_npy(tmp):
    folder = os.path.join(tmp, "mobilenet_v2_0.5_128")
    subprocess.run([PY, REF, "random", folder, "--alpha", "0.5", "--seed", "5"], check=True)
    out = os.path.join(tmp, "n05.safetensors")
    rc, err = run_converter(folder, "-o", out)
    check(rc == 0, "npy 0.5 conversion: %s" % err)
    t, meta, _ = read_st(out)
    check(meta.get("alpha") == "0.5" and meta.get("input_size") == "128", "npy metadata")
    with open(os.path.join(folder, "SHA256SUMS"), "rb") as f:
        check(meta.get("source_sha256") == hashlib.sha256(f.read()).hexdigest(), "npy source_sha256")
    w = np.load(os.path.join(folder, "expanded_conv_4_depthwise_depthwise_weights.npy"))
    check(np.array_equal(t["block4.dw.weight"], w[:, :, :, 0]), "npy block4 dw")
    m = np.load(os.path.join(folder, "expanded_conv_project_BatchNorm_moving_mean.npy"))
    check(np.array_equal(t["block0.project.bn.mean"], m), "npy block0 project mean")
    check(sum(a.size for a in t.values()) == 706224, "alpha 0.5 parameter count")

    # tampered file -> sha256 mismatch naming it
    victim = os.path.join(folder, "expanded_conv_9_expand_weights.npy")
    data = bytearray(open(victim, "rb").read())
    data[-3] ^= 0x40
    open(victim, "wb").write(bytes(data))
    rc, err = run_converter(folder, "-o", out + "2")
    check(rc == 1 and "expanded_conv_9_expand_weights.npy" in err and "sha256" in err,
          "tampered npy: %s" % err)
    os.unlink(victim)
    rc, err = run_converter(folder, "-o", out + "2")
    check(rc == 1 and "expanded_conv_9_expand_weights.npy" in err and "missing" in err,
          "missing npy: %s" % err)
    os.unlink(os.path.join(folder, "SHA256SUMS"))
    rc, err = run_converter(folder, "-o", out + "2")
    check(rc == 1 and "SHA256SUMS" in err, "missing SHA256SUMS: %s" % err)
    rc, err = run_converter(folder, "--alpha", "0.6", "-o", out + "2")
    check(rc == 1 and "alpha" in err, "bad alpha: %s" % err)


def test_shared(tmp):
    src = os.path.join(SHARED, "weights", "mobilenet_v2_1.0_224")
    if not os.path.isdir(src):
        print("test_convert: %s absent, skipping the real-weights part" % src)
        return
    out = os.path.join(tmp, "real.safetensors")
    t0 = time.time()
    rc, err = run_converter(src, "--imagenet-head", os.path.join(src, "imagenet_head"), "-o", out)
    dt = time.time() - t0
    check(rc == 0, "shared conversion: %s" % err)
    print("test_convert: converted ../shared weights in %.2f s" % dt)
    t, meta, _ = read_st(out)
    n = sum(a.size for k, a in t.items() if not k.startswith("logits"))
    check(n == 2257984, "backbone parameters %d" % n)
    w = np.load(os.path.join(src, "expanded_conv_13_project_weights.npy"))
    check(np.array_equal(t["block13.project.weight"], w), "real block13 project")
    hw = np.load(os.path.join(src, "imagenet_head", "logits_weights_1001x1280_f32.npy"))
    check(np.array_equal(t["logits.weight"], hw.T), "real logits transposed to [1280,1001]")
    # imagenet_head/ is used by default; --no-imagenet-head leaves it out
    rc, err = run_converter(src, "-o", out)
    t, meta, _ = read_st(out)
    check(rc == 0 and "logits.weight" in t and meta.get("num_classes") == "1001", "default head")
    rc, err = run_converter(src, "--no-imagenet-head", "-o", out)
    t, meta, _ = read_st(out)
    check(rc == 0 and "logits.weight" not in t and "num_classes" not in meta, "--no-imagenet-head")


def main():
    try:
        import h5py  # noqa: F401
    except ImportError:
        print("test_convert: python3-h5py missing, skipping")
        return 77
    with tempfile.TemporaryDirectory(prefix="nnmask-convert-") as tmp:
        test_keras(tmp)
        test_npy(tmp)
        test_shared(tmp)
    return tu.summary("test_convert")


if __name__ == "__main__":
    sys.exit(main())
