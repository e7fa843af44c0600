#!/usr/bin/python3
# convert_mobilenetv2.py — turns published ImageNet MobileNetV2 weights (a TF-slim
# .npy folder with SHA256SUMS, or an official Keras HDF5 file) into one nnmask safetensors file.
"""Convert ImageNet MobileNetV2 weights to nnmask's safetensors layout.

Sources:
  * a folder of one .npy per tensor with TF-slim names and a SHA256SUMS file
    (e.g. ../shared/weights/mobilenet_v2_1.0_224/); every listed file is
    checked against SHA256SUMS before anything is read;
  * an official Keras HDF5 weights file
    (mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{size}[_no_top].h5).

Output: one safetensors file (F32) with the tensor names and layouts of
layers/mobilenetv2.h, written atomically (temp file + rename). Default:
<repo>/models/mobilenet_v2_{alpha}_{size}.safetensors, the file that
`nnmask-predict --imagenet` loads when given no --model.

ImageNet head: the nnmask head is the 1001-way TF-slim layer (row 0 =
"background"). --imagenet-head DIR adds it from a folder holding
*weights*.npy ([1001,C] or [C,1001]) and *biases*.npy ([1001]); an .npy
source folder's own imagenet_head/ subfolder is used by default
(--no-imagenet-head leaves it out). A Keras file
with top has a 1000-way "Logits" layer without the background class: it is
written as 1001 rows whose row 0 has zero weights and bias -1e4, so the
softmax gives "background" probability 0 and the 1000 other probabilities
equal Keras' own (metadata logits_background=synthetic).

Exit status: 0 ok, 1 bad input (message names the file/tensor), 2 usage.
"""

import argparse
import hashlib
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nnst import ConvertError, sha256_file, write_safetensors  # noqa: E402

BN_EPS = 0.001
PREPROCESS = "rgb*(1/127.5)-1"
ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# (expansion t, output channels c, stride s) per inverted-residual block 0..16
BLOCKS = [(1, 16, 1),
          (6, 24, 2), (6, 24, 1),
          (6, 32, 2), (6, 32, 1), (6, 32, 1),
          (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
          (6, 96, 1), (6, 96, 1), (6, 96, 1),
          (6, 160, 2), (6, 160, 1), (6, 160, 1),
          (6, 320, 1)]
BN_PARTS = ("gamma", "beta", "mean", "var")


def make_divisible(v, divisor=8):
    """Keras' _make_divisible: round to a multiple of 8, never down by >10%."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def alpha_str(alpha):
    """1.0 -> '1.0', 0.35 -> '0.35' (the spelling of the Keras file names)."""
    s = "%g" % alpha
    return s + ".0" if "." not in s else s


def architecture(alpha):
    """List of (engine_name, shape, kind) in stage order; kind is 'conv',
    'dw' or 'bn'. Channel rounding exactly as keras.applications."""
    if not any(abs(alpha - a) < 1e-6 for a in ALPHAS):
        raise ConvertError("alpha %g not supported (one of %s)" % (alpha, ALPHAS))
    out = []

    def conv_bn(prefix, shape, kind="conv"):
        out.append((prefix + ".weight", shape, kind))
        c = shape[-1]
        for p in BN_PARTS:
            out.append((prefix + ".bn." + p, (c,), "bn"))

    cin = make_divisible(32 * alpha)
    conv_bn("stem", (3, 3, 3, cin))
    for i, (t, c, s) in enumerate(BLOCKS):
        cout = make_divisible(int(c * alpha))
        cexp = cin * t
        if i > 0:
            conv_bn("block%d.expand" % i, (1, 1, cin, cexp))
        conv_bn("block%d.dw" % i, (3, 3, cexp), "dw")
        conv_bn("block%d.project" % i, (1, 1, cexp, cout))
        cin = cout
    clast = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    conv_bn("last", (1, 1, cin, clast))
    return out, clast


# ---- source names ---------------------------------------------------------

def slim_name(engine_name):
    """Engine tensor name -> TF-slim .npy file stem."""
    bn_map = {"gamma": "gamma", "beta": "beta", "mean": "moving_mean",
              "var": "moving_variance"}
    parts = engine_name.split(".")
    unit = parts[0]
    if unit == "stem":
        scope = "Conv"
    elif unit == "last":
        scope = "Conv_1"
    else:
        i = int(unit[len("block"):])
        op = {"expand": "expand", "dw": "depthwise", "project": "project"}[parts[1]]
        scope = ("expanded_conv_" if i == 0 else "expanded_conv_%d_" % i) + op
    if parts[-1] == "weight":
        return scope + ("_depthwise_weights" if scope.endswith("depthwise") else "_weights")
    return scope + "_BatchNorm_" + bn_map[parts[-1]]


def keras_name(engine_name):
    """Engine tensor name -> (Keras layer name, weight basename)."""
    bn_map = {"gamma": "gamma", "beta": "beta", "mean": "moving_mean",
              "var": "moving_variance"}
    parts = engine_name.split(".")
    unit = parts[0]
    if unit == "stem":
        conv, bn = "Conv1", "bn_Conv1"
    elif unit == "last":
        conv, bn = "Conv_1", "Conv_1_bn"
    else:
        i = int(unit[len("block"):])
        op = {"expand": "expand", "dw": "depthwise", "project": "project"}[parts[1]]
        conv = ("expanded_conv_" if i == 0 else "block_%d_" % i) + op
        bn = conv + "_BN"
    if parts[-1] == "weight":
        return conv, ("depthwise_kernel" if unit != "stem" and parts[1] == "dw" else "kernel")
    return bn, bn_map[parts[-1]]


# ---- checks ---------------------------------------------------------------

def check_tensor(what, arr, shape, kind):
    """Float tensor of the expected shape (depthwise [3,3,C,1] -> [3,3,C])."""
    arr = np.asarray(arr)
    if arr.dtype.kind != "f":
        raise ConvertError("%s: dtype %s, expected float32" % (what, arr.dtype))
    if kind == "dw" and arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr.reshape(arr.shape[:3])
    if tuple(arr.shape) != tuple(shape):
        raise ConvertError("%s: shape %s, expected %s" % (what, list(arr.shape), list(shape)))
    arr = arr.astype("<f4")
    if not np.all(np.isfinite(arr)):
        raise ConvertError("%s: holds NaN or Inf values" % what)
    if kind == "bn_var" and np.any(arr < 0):
        raise ConvertError("%s: negative variance" % what)
    return np.ascontiguousarray(arr)


def parse_sums(path):
    sums = {}
    with open(path, "r") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            m = re.match(r"^([0-9a-fA-F]{64})\s+\*?(.+)$", line)
            if not m:
                raise ConvertError("%s:%d: not a sha256sum line" % (path, n))
            sums[m.group(2)] = m.group(1).lower()
    return sums


# ---- readers --------------------------------------------------------------

def read_npy_folder(folder, alpha):
    sums_path = os.path.join(folder, "SHA256SUMS")
    if not os.path.isfile(sums_path):
        raise ConvertError("%s: missing (the folder must list its files' sha256)" % sums_path)
    sums = parse_sums(sums_path)
    for name, want in sorted(sums.items()):
        p = os.path.join(folder, name)
        if not os.path.isfile(p):
            raise ConvertError("%s: missing (listed in SHA256SUMS)" % p)
        got = sha256_file(p)
        if got != want:
            raise ConvertError("%s: sha256 mismatch (file %s, SHA256SUMS %s)" % (p, got, want))
    arch, clast = architecture(alpha)
    tensors = []
    for name, shape, kind in arch:
        fname = slim_name(name) + ".npy"
        p = os.path.join(folder, fname)
        if fname not in sums:
            raise ConvertError("%s: tensor %s not listed in SHA256SUMS" % (p, name))
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file is a user error
            raise ConvertError("%s: cannot read (%s)" % (p, e))
        kind2 = "bn_var" if name.endswith(".var") else kind
        tensors.append((name, check_tensor("%s (%s)" % (name, p), arr, shape, kind2)))
    return tensors, clast, sha256_file(sums_path)


def read_head_folder(folder, clast):
    ws = sorted(f for f in os.listdir(folder) if f.endswith(".npy") and "weight" in f)
    bs = sorted(f for f in os.listdir(folder) if f.endswith(".npy") and "bias" in f)
    if len(ws) != 1 or len(bs) != 1:
        raise ConvertError("%s: expected one *weights*.npy and one *biases*.npy, found %s and %s"
                           % (folder, ws, bs))
    wp, bp = os.path.join(folder, ws[0]), os.path.join(folder, bs[0])
    w = np.load(wp, allow_pickle=False)
    b = np.load(bp, allow_pickle=False)
    if w.ndim == 2 and w.shape == (1001, clast):
        w = w.T
    w = check_tensor("logits.weight (%s)" % wp, w, (clast, 1001), "dense")
    b = check_tensor("logits.bias (%s)" % bp, b, (1001,), "dense")
    h = hashlib.sha256((sha256_file(wp) + sha256_file(bp)).encode()).hexdigest()
    return [("logits.weight", w), ("logits.bias", b)], h


def _decode(x):
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def keras_layer_weights(root, layer, path):
    """{basename: dataset} for one Keras layer group (weight_names attribute,
    else every dataset below the group)."""
    if layer not in root:
        raise ConvertError("%s: Keras layer '%s' missing" % (path, layer))
    g = root[layer]
    found = {}
    names = [_decode(n) for n in g.attrs.get("weight_names", [])]
    if names:
        for wn in names:
            if wn not in g:
                raise ConvertError("%s: layer '%s': weight '%s' listed but absent" % (path, layer, wn))
            found[wn.split("/")[-1].split(":")[0]] = g[wn]
    else:
        def visit(name, obj):
            if hasattr(obj, "shape") and hasattr(obj, "dtype"):
                found[name.split("/")[-1].split(":")[0]] = obj
        g.visititems(visit)
    return found


def read_keras_h5(path, alpha):
    try:
        import h5py
    except ImportError:
        raise ConvertError("python3-h5py is needed to read %s (apt-get install python3-h5py)" % path)
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001
        raise ConvertError("%s: not a readable HDF5 file (%s)" % (path, e))
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        arch, clast = architecture(alpha)
        cache = {}
        tensors = []
        for name, shape, kind in arch:
            layer, wname = keras_name(name)
            if layer not in cache:
                cache[layer] = keras_layer_weights(root, layer, path)
            if wname not in cache[layer]:
                raise ConvertError("%s: tensor %s: Keras weight %s/%s missing"
                                   % (path, name, layer, wname))
            kind2 = "bn_var" if name.endswith(".var") else kind
            arr = cache[layer][wname][()]
            tensors.append((name, check_tensor("%s (Keras %s/%s in %s)" % (name, layer, wname, path),
                                               arr, shape, kind2)))
        head = []
        if "Logits" in root:
            lw = keras_layer_weights(root, "Logits", path)
            if "kernel" not in lw or "bias" not in lw:
                raise ConvertError("%s: Keras layer Logits lacks kernel or bias" % path)
            k = check_tensor("logits.weight (Keras Logits/kernel in %s)" % path, lw["kernel"][()],
                             (clast, 1000), "dense")
            b = check_tensor("logits.bias (Keras Logits/bias in %s)" % path, lw["bias"][()],
                             (1000,), "dense")
            w1001 = np.zeros((clast, 1001), "<f4")
            w1001[:, 1:] = k
            b1001 = np.empty(1001, "<f4")
            b1001[0] = -1e4
            b1001[1:] = b
            head = [("logits.weight", w1001), ("logits.bias", b1001)]
    return tensors, clast, head


# ---- writer ---------------------------------------------------------------

def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_output(alpha, size):
    base = os.environ.get("NNMASK_MODELS") or os.path.join(repo_root(), "models")
    return os.path.join(base, "mobilenet_v2_%s_%d.safetensors" % (alpha_str(alpha), size))


def guess_alpha_size(src):
    m = re.search(r"_(\d+(?:\.\d+)?)_(\d+)(?:_no_top)?(?:\.h5)?/?$", src.rstrip("/"))
    if m:
        return float(m.group(1)), int(m.group(2))
    return None, None


def convert(src, out=None, alpha=None, size=None, head_dir=None, quiet=False):
    galpha, gsize = guess_alpha_size(os.path.basename(os.path.normpath(src)))
    alpha = alpha if alpha is not None else galpha
    size = size if size is not None else gsize
    if alpha is None or size is None:
        raise ConvertError("%s: cannot tell alpha/input size from the name; pass --alpha and --size" % src)
    if size % 32 or not 96 <= size <= 224:
        raise ConvertError("input size %d not supported (a multiple of 32 in 96..224)" % size)
    architecture(alpha)  # rejects an unsupported alpha before reading anything
    meta = {"format": "nnmask", "arch": "mobilenetv2", "alpha": alpha_str(alpha),
            "input_size": str(size), "preprocess": PREPROCESS, "bn_eps": "0.001"}
    head = []
    if os.path.isdir(src):
        tensors, clast, src_sha = read_npy_folder(src, alpha)
        meta["source"] = "tf-slim npy folder %s" % os.path.basename(os.path.normpath(src))
        meta["source_sha256"] = src_sha  # sha256 of its SHA256SUMS
    elif os.path.isfile(src):
        tensors, clast, head = read_keras_h5(src, alpha)
        meta["source"] = "keras h5 %s" % os.path.basename(src)
        meta["source_sha256"] = sha256_file(src)
        if head:
            meta["logits_source"] = "keras Logits (1000-way)"
            meta["logits_background"] = "synthetic"
    else:
        raise ConvertError("%s: no such file or folder" % src)
    if head_dir:
        head, hsha = read_head_folder(head_dir, clast)
        meta["logits_source"] = "npy folder %s" % os.path.basename(os.path.normpath(head_dir))
        meta["logits_sha256"] = hsha
        meta.pop("logits_background", None)
    if head:
        meta["num_classes"] = "1001"
    out = out or default_output(alpha, size)
    write_safetensors(out, tensors + head, meta)
    if not quiet:
        n = sum(a.size for _, a in tensors)
        print("wrote %s: %d backbone parameters%s" % (out, n, ", ImageNet head" if head else ""))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source", help="TF-slim .npy folder (with SHA256SUMS) or Keras .h5 file")
    ap.add_argument("-o", "--output", help="output .safetensors (default: <repo>/models/"
                    "mobilenet_v2_ALPHA_SIZE.safetensors, or $NNMASK_MODELS/...)")
    ap.add_argument("--alpha", type=float, help="width multiplier (default: from the name)")
    ap.add_argument("--size", type=int, help="input size (default: from the name)")
    ap.add_argument("--imagenet-head", metavar="DIR",
                    help="add the 1001-way logits from DIR (*weights*.npy, *biases*.npy)")
    ap.add_argument("--no-imagenet-head", action="store_true",
                    help="do not add SOURCE/imagenet_head/ (used by default when present)")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    head = a.imagenet_head
    auto = os.path.join(a.source, "imagenet_head")
    if head is None and not a.no_imagenet_head and os.path.isdir(auto):
        head = auto
    try:
        convert(a.source, a.output, a.alpha, a.size, head, a.quiet)
    except ConvertError as e:
        print("convert_mobilenetv2: error: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        print("convert_mobilenetv2: error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
