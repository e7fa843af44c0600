#!/usr/bin/python3
# ref_mobilenetv2.py — an independent float64 numpy MobileNetV2 read straight from TF-slim .npy
# files (direct convolutions, TF SAME padding, unfolded BN); also writes random-weight .npy folders.
"""Independent numpy reference for the nnmask MobileNetV2 tests.

Shares no code with the C engine nor with weights/convert_mobilenetv2.py:
it reads the TF-slim .npy files itself and computes everything in float64
with numpy (sliding-window einsum for the 3x3 stem, 9 shifted slices for
depthwise, matmul for 1x1), batch norm unfolded with eps 1e-3, ReLU6, and
TensorFlow SAME padding (the smaller half of the pad on top/left).

  ref_mobilenetv2.py forward --weights DIR --input X.f32 --n N --size S \
        --out POOLED.f32 [--head DIR --logits-out LOGITS.f32]
      X.f32: raw little-endian float32 [N,S,S,3] (already scaled to [-1,1]);
      POOLED.f32: raw float32 [N,C]; LOGITS.f32: raw float32 [N,1001].
  ref_mobilenetv2.py gradcheck --weights DIR --input X.f32 --n N --size S \
        --r R.f32 --coords FILE --batch-from K --out FD.f64
      float64 central differences of sum(pooled * R) for the listed
      (TF-slim tensor, flat index) pairs; stages >= K use batch statistics.
  ref_mobilenetv2.py random DIR --alpha A [--seed S]
      writes a TF-slim style folder of random weights plus SHA256SUMS.
"""

import argparse
import hashlib
import os
import sys

import numpy as np

EPS = 1e-3
STRIDES = [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]   # blocks 0..16


_cache = {}


def load(d, name):
    """float64 tensor `name` of folder d (cached; gradcheck perturbs the cache)."""
    key = (d, name)
    if key not in _cache:
        _cache[key] = np.load(os.path.join(d, name + ".npy")).astype(np.float64)
    return _cache[key]


def same_pad(x, k, s):
    """Pads NHWC x for TF SAME with kernel k and stride s."""
    pads = []
    for size in x.shape[1:3]:
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0))), [-(-x.shape[1] // s), -(-x.shape[2] // s)]


def conv(x, w, s):
    """Full convolution, w [k,k,cin,cout]."""
    k = w.shape[0]
    if k == 1 and s == 1:
        return x @ w[0, 0]
    xp, (oh, ow) = same_pad(x, k, s)
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # n,h,w,c,k,k
    win = win[:, ::s, ::s][:, :oh, :ow]
    return np.einsum("nhwcij,ijco->nhwo", win, w, optimize=True)


def dwconv(x, w, s):
    """Depthwise convolution, w [k,k,c,1] or [k,k,c]."""
    w = w.reshape(w.shape[0], w.shape[1], -1)
    k = w.shape[0]
    xp, (oh, ow) = same_pad(x, k, s)
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(k):
        for j in range(k):
            out += xp[:, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s, :] * w[i, j]
    return out


def bn(x, d, scope, batch=False):
    """Batch norm with the running statistics, or (batch=True, training) with
    the batch's own mean and biased variance over N, H, W."""
    g = load(d, scope + "_BatchNorm_gamma")
    b = load(d, scope + "_BatchNorm_beta")
    if batch:
        m = x.mean(axis=(0, 1, 2))
        v = x.var(axis=(0, 1, 2))
    else:
        m = load(d, scope + "_BatchNorm_moving_mean")
        v = load(d, scope + "_BatchNorm_moving_variance")
    return (x - m) / np.sqrt(v + EPS) * g + b


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def forward(d, x, batch_from=99):
    """x [N,S,S,3] float64 -> (feature map [N,S/32,S/32,C], pooled [N,C]).
    Stages >= batch_from (0 stem, 1..17 blocks, 18 last conv) normalise with
    batch statistics (training-mode batch norm)."""
    x = relu6(bn(conv(x, load(d, "Conv_weights"), 2), d, "Conv", batch_from <= 0))
    for i, s in enumerate(STRIDES):
        p = "expanded_conv" if i == 0 else "expanded_conv_%d" % i
        bt = batch_from <= i + 1
        inp = x
        if i > 0:
            x = relu6(bn(conv(x, load(d, p + "_expand_weights"), 1), d, p + "_expand", bt))
        x = relu6(bn(dwconv(x, load(d, p + "_depthwise_depthwise_weights"), s), d,
                     p + "_depthwise", bt))
        x = bn(conv(x, load(d, p + "_project_weights"), 1), d, p + "_project", bt)
        if s == 1 and inp.shape[3] == x.shape[3]:
            x = x + inp
    x = relu6(bn(conv(x, load(d, "Conv_1_weights"), 1), d, "Conv_1", batch_from <= 18))
    return x, x.mean(axis=(1, 2))


def gradcheck(d, x, r, coords, batch_from):
    """Central differences in float64 of L = sum(pooled * r) for each
    (tensor, flat index) in coords."""
    out = []
    for name, idx in coords:
        t = load(d, name)
        flat = t.reshape(-1)
        p0 = flat[idx]
        h = 1e-6 * max(abs(p0), 1.0)
        flat[idx] = p0 + h
        lp = (forward(d, x, batch_from)[1] * r).sum()
        flat[idx] = p0 - h
        lm = (forward(d, x, batch_from)[1] * r).sum()
        flat[idx] = p0
        out.append((lp - lm) / (2 * h))
    return np.array(out)


def head_logits(head_dir, pooled):
    ws = [f for f in os.listdir(head_dir) if f.endswith(".npy") and "weight" in f]
    bs = [f for f in os.listdir(head_dir) if f.endswith(".npy") and "bias" in f]
    w = np.load(os.path.join(head_dir, ws[0])).astype(np.float64)
    b = np.load(os.path.join(head_dir, bs[0])).astype(np.float64)
    if w.shape[0] == b.shape[0]:
        w = w.T
    return pooled @ w + b


def make_divisible(v, d=8):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def write_random(folder, alpha, seed):
    """Random TF-slim-named weights for width multiplier alpha."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    files = {}

    def conv_w(name, shape):
        fan_in = shape[0] * shape[1] * (shape[2] if len(shape) == 4 and shape[3] != 1 else 1)
        files[name] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def bn_w(scope, c):
        # gamma < 1 keeps the random network well conditioned: a plain float32
        # numpy pass then stays within ~3e-6 of float64 (gamma ~ 1 amplifies
        # rounding through the 17 blocks to ~2e-4, which no float32 engine meets).
        files[scope + "_BatchNorm_gamma"] = rng.uniform(0.3, 0.8, c).astype(np.float32)
        files[scope + "_BatchNorm_beta"] = rng.normal(0, 0.2, c).astype(np.float32)
        files[scope + "_BatchNorm_moving_mean"] = rng.normal(0, 0.2, c).astype(np.float32)
        files[scope + "_BatchNorm_moving_variance"] = rng.uniform(0.5, 1.5, c).astype(np.float32)

    outs = [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320]
    c = make_divisible(32 * alpha)
    conv_w("Conv_weights", (3, 3, 3, c))
    bn_w("Conv", c)
    for i in range(17):
        p = "expanded_conv" if i == 0 else "expanded_conv_%d" % i
        e = c if i == 0 else 6 * c
        if i > 0:
            conv_w(p + "_expand_weights", (1, 1, c, e))
            bn_w(p + "_expand", e)
        conv_w(p + "_depthwise_depthwise_weights", (3, 3, e, 1))
        bn_w(p + "_depthwise", e)
        c = make_divisible(int(outs[i] * alpha))
        conv_w(p + "_project_weights", (1, 1, e, c))
        bn_w(p + "_project", c)
    last = make_divisible(1280 * alpha) if alpha > 1 else 1280
    conv_w("Conv_1_weights", (1, 1, c, last))
    bn_w("Conv_1", last)
    lines = []
    for name, arr in sorted(files.items()):
        p = os.path.join(folder, name + ".npy")
        np.save(p, arr)
        with open(p, "rb") as f:
            lines.append("%s  %s.npy\n" % (hashlib.sha256(f.read()).hexdigest(), name))
    with open(os.path.join(folder, "SHA256SUMS"), "w") as f:
        f.writelines(lines)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("forward")
    f.add_argument("--weights", required=True)
    f.add_argument("--input", required=True)
    f.add_argument("--n", type=int, required=True)
    f.add_argument("--size", type=int, required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--head")
    f.add_argument("--logits-out")
    g = sub.add_parser("gradcheck")
    g.add_argument("--weights", required=True)
    g.add_argument("--input", required=True)
    g.add_argument("--n", type=int, required=True)
    g.add_argument("--size", type=int, required=True)
    g.add_argument("--r", required=True, help="raw float32 [N,C]: dL/dpooled")
    g.add_argument("--coords", required=True, help="text lines: TFSLIM_NAME FLAT_INDEX")
    g.add_argument("--batch-from", type=int, default=99)
    g.add_argument("--out", required=True, help="raw float64 finite differences")
    r = sub.add_parser("random")
    r.add_argument("folder")
    r.add_argument("--alpha", type=float, required=True)
    r.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "random":
        write_random(a.folder, a.alpha, a.seed)
        return 0
    if a.cmd == "gradcheck":
        x = np.fromfile(a.input, dtype="<f4").reshape(a.n, a.size, a.size, 3).astype(np.float64)
        rr = np.fromfile(a.r, dtype="<f4").astype(np.float64).reshape(a.n, -1)
        with open(a.coords) as f:
            coords = [(l.split()[0], int(l.split()[1])) for l in f if l.strip()]
        gradcheck(a.weights, x, rr, coords, a.batch_from).astype("<f8").tofile(a.out)
        return 0
    x = np.fromfile(a.input, dtype="<f4")
    if x.size != a.n * a.size * a.size * 3:
        print("ref_mobilenetv2: %s holds %d floats, expected %d" % (a.input, x.size,
              a.n * a.size * a.size * 3), file=sys.stderr)
        return 1
    x = x.reshape(a.n, a.size, a.size, 3).astype(np.float64)
    _, pooled = forward(a.weights, x)
    pooled.astype("<f4").tofile(a.out)
    if a.head and a.logits_out:
        head_logits(a.head, pooled).astype("<f4").tofile(a.logits_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
