#!/usr/bin/python3
"""convert_ultraface.py — converts an UltraFace ONNX file (Linzaer's
Ultra-Light-Fast-Generic-Face-Detector-1MB, slim-320 or RFB-320,
"without_postprocessing" export) into an nnmask safetensors file.

The ONNX graph is walked node by node; only what the two UltraFace networks
use is accepted (Conv, BatchNormalization, Relu, Concat, Add, and the
Transpose/Reshape/Concat/Softmax tail that flattens the heads); anything else
is refused. BatchNormalization is folded into the preceding convolution (in
float64), a Relu that is the only consumer of a convolution is fused into it.

Output file (layouts as in engine/nnmask.h, channel last):
  <name>.weight  conv [KH,KW,Cin,Cout] or depthwise [KH,KW,C]   (BN folded)
  <name>.bias    [Cout]
  metadata: format=nnmask, arch=ultraface, variant, input_size=320x240,
    preprocess="(rgb-127)/128", graph (JSON op list, see below), priors
    (JSON: strides and min sizes), center_variance, size_variance,
    scores_softmax, source, source_sha256.
  graph = {"input": "input", "ops": [...], "scores": [t...], "boxes": [t...]}
    {"op": "conv", "in": T, "out": T, "weight": W, "bias": B, "cin", "cout",
     "k", "stride", "pad", "dil", "depthwise": bool, "relu": bool}
    {"op": "relu", "in": T, "out": T}
    {"op": "add", "in": [A, B], "out": T}
    {"op": "concat", "in": [T, ...], "out": T}
  "scores"/"boxes" list the head tensors (NHWC, A*2 / A*4 channels) in the
  order in which their rows are concatenated (feature map -> row -> column ->
  prior size).

Usage:
  convert_ultraface.py ONNX OUT.safetensors [--sha256 HEX | --no-verify]
Without --sha256 the file is checked against a SHA256SUMS next to it (or in
its parent folder), as shipped in ../shared/weights/ultraface/.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nnst import ConvertError, sha256_file, write_safetensors  # noqa: E402

try:
    import onnx
    from onnx import helper, numpy_helper
except ImportError:  # pragma: no cover
    sys.stderr.write("convert_ultraface.py: needs python3-onnx (apt-get install python3-onnx)\n")
    sys.exit(3)

PRIORS = {"strides": [8, 16, 32, 64],
          "min_sizes": [[10, 16, 24], [32, 48], [64, 96], [128, 192, 256]]}


def expected_sha256(path):
    """Looks the file up in a SHA256SUMS next to it or one folder up."""
    d = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    for sums_dir, rel in ((d, base), (os.path.dirname(d), os.path.basename(d) + "/" + base)):
        sums = os.path.join(sums_dir, "SHA256SUMS")
        if not os.path.exists(sums):
            continue
        with open(sums) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1].lstrip("*") in (rel, base):
                    return parts[0].lower(), sums
    return None, None


def attrs_of(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def convert(model, source_name):
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in g.initializer}
    consts = {}
    for n in g.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    producer = {o: n for n in g.node for o in n.output}
    graph_inputs = [i.name for i in g.input if i.name not in inits]
    if len(graph_inputs) != 1:
        raise ConvertError("expected one graph input, got %s" % graph_inputs)
    in_name = graph_inputs[0]
    dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3:
        raise ConvertError("input %s: expected [1,3,H,W], got %s" % (in_name, dims))
    in_h, in_w = dims[2], dims[3]

    names = {in_name: "input"}  # onnx tensor -> short nnmask activation name

    def tname(t):
        if t not in names:
            names[t] = "t%d" % len(names)
        return names[t]

    ops, tensors = [], []
    done = set()
    heads = {}  # onnx tensor of a head conv -> (kind, flattened tensor name)
    flat_of = {}  # reshape output -> head conv tensor
    out_concat = {}  # "scores"/"boxes" -> list of head conv tensors
    softmax = False
    ignored = {"Constant", "Shape", "Gather", "Unsqueeze"}

    def only_consumer(t, op_type):
        c = consumers.get(t, [])
        return c[0] if len(c) == 1 and c[0].op_type == op_type else None

    for n in g.node:
        if id(n) in done or n.op_type in ignored:
            continue
        a = attrs_of(n)
        if n.op_type == "Conv":
            wname = n.input[1]
            w = inits[wname]
            cout, cin_g, kh, kw = w.shape
            group = a.get("group", 1)
            pads = a.get("pads", [0, 0, 0, 0])
            strides = a.get("strides", [1, 1])
            dil = a.get("dilations", [1, 1])
            if kh != kw or len(set(pads)) != 1 or strides[0] != strides[1] or dil[0] != dil[1]:
                raise ConvertError("conv %s: only square kernels, symmetric pads, equal strides"
                                   % wname)
            b = inits[n.input[2]] if len(n.input) > 2 else np.zeros(cout)
            depthwise = group != 1
            if depthwise and not (group == cout and cin_g == 1):
                raise ConvertError("conv %s: grouped conv that is not depthwise" % wname)
            if depthwise:
                wl = w[:, 0].transpose(1, 2, 0)  # [C,1,KH,KW] -> [KH,KW,C]
                cin = cout
            else:
                wl = w.transpose(2, 3, 1, 0)  # [Cout,Cin,KH,KW] -> [KH,KW,Cin,Cout]
                cin = cin_g
            out = n.output[0]
            bn = only_consumer(out, "BatchNormalization")
            if bn is not None:
                gamma, beta, mean, var = (inits[x] for x in bn.input[1:5])
                eps = attrs_of(bn).get("epsilon", 1e-5)
                s = gamma / np.sqrt(var + eps)
                wl = wl * s  # output channel is last in both layouts
                b = (b - mean) * s + beta
                done.add(id(bn))
                out = bn.output[0]
            relu = only_consumer(out, "Relu")
            if relu is not None:
                done.add(id(relu))
                out = relu.output[0]
            base = wname[:-len(".weight")] if wname.endswith(".weight") else wname
            tensors.append((base + ".weight", wl.astype(np.float32)))
            tensors.append((base + ".bias", b.astype(np.float32)))
            ops.append({"op": "conv", "in": tname(n.input[0]), "out": tname(out),
                        "weight": base + ".weight", "bias": base + ".bias",
                        "cin": int(cin), "cout": int(cout), "k": int(kh),
                        "stride": int(strides[0]), "pad": int(pads[0]), "dil": int(dil[0]),
                        "depthwise": bool(depthwise), "relu": relu is not None})
        elif n.op_type == "Relu":
            ops.append({"op": "relu", "in": tname(n.input[0]), "out": tname(n.output[0])})
        elif n.op_type == "Add":
            for i in n.input:
                if i in inits or i in consts:
                    raise ConvertError("Add with a constant operand is not supported")
            ops.append({"op": "add", "in": [tname(i) for i in n.input],
                        "out": tname(n.output[0])})
        elif n.op_type == "BatchNormalization":
            raise ConvertError("BatchNormalization %s does not follow a conv" % n.name)
        elif n.op_type == "Transpose":
            if list(a.get("perm", [])) != [0, 2, 3, 1]:
                raise ConvertError("Transpose with perm %s" % a.get("perm"))
            cs = consumers.get(n.output[0], [])
            rs = [c for c in cs if c.op_type == "Reshape"]
            r = rs[0] if len(rs) == 1 else None
            if r is None or any(c.op_type not in ("Reshape", "Shape") for c in cs):
                raise ConvertError("Transpose %s is not followed by a Reshape" % n.name)
            # the reshape's target shape ends in 2 (scores) or 4 (boxes)
            shape_src = producer[r.input[1]]
            last = consts.get(shape_src.input[-1]) if shape_src.op_type == "Concat" else None
            if last is None:
                last_node = producer[shape_src.input[-1]]
                last = consts[last_node.input[0]]
            k = int(np.asarray(last).reshape(-1)[0])
            if k not in (2, 4):
                raise ConvertError("head reshape to %d columns" % k)
            flat_of[r.output[0]] = (n.input[0], k)
            done.add(id(r))
        elif n.op_type == "Reshape":
            raise ConvertError("Reshape %s outside a head" % n.name)
        elif n.op_type == "Concat":
            axis = a.get("axis")
            if all(i in flat_of for i in n.input):
                if axis != 1:
                    raise ConvertError("head concat along axis %s" % axis)
                ks = {flat_of[i][1] for i in n.input}
                if len(ks) != 1:
                    raise ConvertError("head concat mixes scores and boxes")
                kind = "scores" if ks.pop() == 2 else "boxes"
                out_concat[kind] = (n.output[0], [tname(flat_of[i][0]) for i in n.input])
            elif axis == 1 and not any(i in flat_of for i in n.input):
                if any(i in consts or producer.get(i) is not None and
                       producer[i].op_type == "Unsqueeze" for i in n.input):
                    continue  # shape arithmetic of a reshape
                ops.append({"op": "concat", "in": [tname(i) for i in n.input],
                            "out": tname(n.output[0])})
            elif axis == 0:
                continue  # shape arithmetic of a reshape
            else:
                raise ConvertError("Concat %s along axis %s" % (n.name, axis))
        elif n.op_type == "Softmax":
            if "scores" not in out_concat or n.input[0] != out_concat["scores"][0]:
                raise ConvertError("Softmax on something other than the scores")
            if a.get("axis") not in (2, -1):
                raise ConvertError("Softmax along axis %s" % a.get("axis"))
            softmax = True
            out_concat["scores"] = (n.output[0], out_concat["scores"][1])
        else:
            raise ConvertError("unsupported ONNX op %s (%s)" % (n.op_type, n.name))

    outs = [o.name for o in g.output]
    if set(out_concat) != {"scores", "boxes"}:
        raise ConvertError("graph does not end in scores and boxes")
    for kind in ("scores", "boxes"):
        if out_concat[kind][0] not in outs:
            raise ConvertError("%s concat is not a graph output" % kind)
    if len(out_concat["scores"][1]) != len(PRIORS["strides"]):
        raise ConvertError("expected %d heads" % len(PRIORS["strides"]))
    graph = {"input": "input", "ops": ops, "scores": out_concat["scores"][1],
             "boxes": out_concat["boxes"][1]}
    meta = {"format": "nnmask", "arch": "ultraface",
            "input_size": "%dx%d" % (in_w, in_h),
            "preprocess": "(rgb-127)/128",
            "graph": json.dumps(graph, separators=(",", ":")),
            "priors": json.dumps(PRIORS, separators=(",", ":")),
            "center_variance": "0.1", "size_variance": "0.2",
            "scores_softmax": "1" if softmax else "0"}
    return tensors, meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("onnx")
    ap.add_argument("out")
    ap.add_argument("--sha256", help="expected SHA-256 of the ONNX file")
    ap.add_argument("--no-verify", action="store_true",
                    help="do not check the ONNX file against SHA256SUMS")
    ap.add_argument("--variant", help="name stored in the metadata (default from file name)")
    args = ap.parse_args(argv)
    prog = "convert_ultraface.py"
    try:
        digest = sha256_file(args.onnx)
    except OSError as e:
        sys.stderr.write("%s: %s: %s\n" % (prog, args.onnx, e.strerror))
        return 1
    want = args.sha256.lower() if args.sha256 else None
    where = "--sha256"
    if want is None and not args.no_verify:
        want, where = expected_sha256(args.onnx)
        if want is None:
            sys.stderr.write("%s: %s: no SHA256SUMS entry (use --sha256 or --no-verify)\n"
                             % (prog, args.onnx))
            return 1
    if want is not None and digest != want:
        sys.stderr.write("%s: %s: SHA-256 %s does not match %s (%s)\n"
                         % (prog, args.onnx, digest, want, where))
        return 1
    try:
        model = onnx.load(args.onnx)
    except Exception as e:  # protobuf errors have many types
        sys.stderr.write("%s: %s: not a readable ONNX file (%s)\n" % (prog, args.onnx, e))
        return 1
    base = os.path.basename(args.onnx)
    variant = args.variant
    if variant is None:
        variant = "RFB-320" if "RFB" in base else ("slim-320" if "slim" in base else base)
    try:
        tensors, meta = convert(model, base)
    except (ConvertError, KeyError) as e:
        sys.stderr.write("%s: %s: %s\n" % (prog, args.onnx, e))
        return 1
    meta["variant"] = variant
    meta["source"] = base
    meta["source_sha256"] = digest
    try:
        write_safetensors(args.out, tensors, meta)
    except (OSError, ConvertError) as e:
        sys.stderr.write("%s: %s: %s\n" % (prog, args.out, e))
        return 1
    nparams = sum(t.size for _, t in tensors)
    print("%s: wrote %s (%s, %d tensors, %d parameters)" % (prog, args.out, variant,
                                                            len(tensors), nparams))
    return 0


if __name__ == "__main__":
    sys.exit(main())
