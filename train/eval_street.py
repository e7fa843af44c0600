#!/usr/bin/env python3
# eval_street.py — scores a mask classifier on the street photos a training run
# held out (its split.csv): the classifier on every annotated face, and nnmask-detect end to end.
"""
usage: train/eval_street.py RUN_DIR [--model M] [--build DIR] [--annotations CSV]
                            [--out FILE.json] [-- nnmask-detect options...]

RUN_DIR is an nnmask-train output folder whose split.csv holds annotated street
faces (e.g. runs/camera). The held-out photos are the photos of its "test" rows
that appear in ANNOTATIONS.csv (default $NNMASK_SHARED or ../shared, then
data/street/ANNOTATIONS.csv): no face of them was used for training or for the
threshold. Two figures:

1. classifier: every annotated face of those photos (all sizes, including the
   ones under the run's min_face) cut as nnmask-detect cuts faces and scored by
   nnmask-eval --split (metrics overall, for faces >= 24 px and by size);
2. detect: nnmask-detect --json on those photos (default detector options, or
   the ones after --); every detection is matched to the unmatched ground-truth
   face of highest IoU >= 0.5 (greedy, best score first). Reports detection
   recall and, on matched faces, the mask accuracy (with_mask vs without_mask
   ground truth; mask_weared_incorrect reported apart, counted as unmasked),
   per-class recall, for all sizes and for faces >= 24 px.

Writes FILE.json (default RUN_DIR/street_eval.json) and prints a summary.
Exit status 0, or 1 on a failure of the tools.
"""
import csv
import json
import os
import subprocess
import sys
import tempfile

MIN_FACE = 24


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / u if u > 0 else 0.0


def side(b):
    return min(b[2] - b[0], b[3] - b[1])


def masked(label):
    """1 mask worn, 0 not (or badly) worn, None unknown (as nn_pipe_class_masked)."""
    if label.startswith("with_mask") or label.startswith("mask"):
        return 1
    if label in ("without_mask", "no_mask", "mask_weared_incorrect"):
        return 0
    return None


def summarize(pairs):
    """pairs: (gt_label, predicted_label). Mask accuracy over with/without_mask."""
    out = {}
    two = [(g, p) for g, p in pairs if g in ("with_mask", "without_mask")]
    out["n"] = len(two)
    out["accuracy"] = (sum(masked(g) == masked(p) for g, p in two) / len(two)) if two else None
    for cls in ("with_mask", "without_mask", "mask_weared_incorrect"):
        sel = [(g, p) for g, p in pairs if g == cls]
        out[cls] = {"n": len(sel),
                    "recall": (sum(masked(g) == masked(p) for g, p in sel) / len(sel)) if sel else None}
    conf = {}
    for g, p in pairs:
        conf.setdefault(g, {}).setdefault(p, 0)
        conf[g][p] += 1
    out["confusion"] = conf
    return out


def main(argv):
    detect_args = []
    if "--" in argv:
        k = argv.index("--")
        detect_args = argv[k + 1:]
        argv = argv[:k]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    run = argv[0]
    opts = {"--model": os.path.join(run, "model.safetensors"), "--build": "build",
            "--annotations": None, "--out": os.path.join(run, "street_eval.json")}
    i = 1
    while i < len(argv):
        if argv[i] in opts and i + 1 < len(argv):
            opts[argv[i]] = argv[i + 1]
            i += 2
        else:
            print(f"eval_street.py: unknown or incomplete option '{argv[i]}'", file=sys.stderr)
            return 2
    shared = os.environ.get("NNMASK_SHARED", "../shared")
    ann = opts["--annotations"] or os.path.join(shared, "data", "street", "ANNOTATIONS.csv")
    apps = os.path.join(opts["--build"], "apps")
    ann_dir = os.path.dirname(ann)

    gt = {}  # photo basename -> [(label, box)]
    with open(ann) as f:
        for r in csv.DictReader(f):
            b = [float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
            gt.setdefault(r["image"], []).append((r["label"], b))
    held = set()
    with open(os.path.join(run, "split.csv")) as f:
        for r in csv.DictReader(f):
            if r["split"] == "test" and r["x0"] and os.path.basename(r["path"]) in gt:
                held.add(os.path.basename(r["path"]))
    if not held:
        print(f"eval_street.py: no held-out photo of {ann} in {run}/split.csv", file=sys.stderr)
        return 1
    held = sorted(held)

    def photo_path(name):
        for sub in ("", "images", "photos"):
            p = os.path.join(ann_dir, sub, name)
            if os.path.exists(p):
                return p
        return os.path.join(ann_dir, name)

    result = {"run": run, "model": opts["--model"], "annotations": ann, "photos": len(held),
              "photo_list": held}

    # 1. the classifier on every annotated face of the held-out photos
    meta = json.loads(subprocess.run(
        [sys.executable, "-c",
         "import json,struct,sys;f=open(sys.argv[1],'rb');n=struct.unpack('<Q',f.read(8))[0];"
         "print(json.dumps(json.loads(f.read(n)).get('__metadata__',{})))", opts["--model"]],
        check=True, capture_output=True, text=True).stdout)
    classes = json.loads(meta["classes"])
    with tempfile.TemporaryDirectory() as tmp:
        sp = os.path.join(tmp, "split.csv")
        with open(sp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["split", "label", "source", "path", "x0", "y0", "x1", "y1"])
            for name in held:
                for label, b in gt[name]:
                    if label in classes:
                        w.writerow(["test", label, "street", photo_path(name)] + [f"{v:.9g}" for v in b])
        r = subprocess.run([os.path.join(apps, "nnmask-eval"), "--model", opts["--model"], "--split", sp,
                            "--json"], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            return 1
        ev = json.loads(r.stdout)
        src = ev.get("sources", {}).get("street", ev)
        result["classifier_all_sizes"] = {k: ev[k] for k in ("n", "accuracy", "auc", "threshold", "per_class",
                                                            "confusion", "classes") if k in ev}
        result["classifier_min24px"] = src.get(f"faces_min{MIN_FACE}px")
        result["classifier_by_size"] = src.get("by_size")

    # 2. nnmask-detect end to end
    cmd = [os.path.join(apps, "nnmask-detect"), "--json", "--model", opts["--model"]] + detect_args + \
          [photo_path(n) for n in held]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        return 1
    dets = {}
    for line in r.stdout.splitlines():
        o = json.loads(line)
        dets[os.path.basename(o["image"])] = o["faces"]
    pairs_all, pairs_big = [], []
    n_gt = n_gt_big = n_match = n_match_big = n_det = 0
    for name in held:
        faces = sorted(dets.get(name, []), key=lambda d: -d["score"])
        n_det += len(faces)
        g = gt[name]
        used = [False] * len(g)
        n_gt += len(g)
        n_gt_big += sum(side(b) >= MIN_FACE for _, b in g)
        for d in faces:
            best, bi = 0.5, -1
            for k, (_, b) in enumerate(g):
                if not used[k]:
                    v = iou(d["box"], b)
                    if v >= best:
                        best, bi = v, k
            if bi < 0:
                continue
            used[bi] = True
            label, b = g[bi]
            pairs_all.append((label, d["label"]))
            n_match += 1
            if side(b) >= MIN_FACE:
                pairs_big.append((label, d["label"]))
                n_match_big += 1
    result["detect"] = {
        "command": " ".join(cmd[:4 + len(detect_args)]) + " PHOTOS...",
        "detections": n_det, "gt_faces": n_gt, "matched": n_match,
        "detection_recall": n_match / n_gt if n_gt else None,
        "gt_faces_min24px": n_gt_big, "matched_min24px": n_match_big,
        "detection_recall_min24px": n_match_big / n_gt_big if n_gt_big else None,
        "matched_all_sizes": summarize(pairs_all),
        "matched_min24px_faces": summarize(pairs_big),
    }
    text = json.dumps(result, indent=1)
    tmpf = opts["--out"] + ".tmp"
    with open(tmpf, "w") as f:
        f.write(text + "\n")
    os.replace(tmpf, opts["--out"])

    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}%"

    ca, cb = result["classifier_all_sizes"], result["classifier_min24px"] or {}
    print(f"held-out street photos: {len(held)} (from {run}/split.csv), model {opts['--model']}")
    for nm, m in (("all sizes", ca), (f">= {MIN_FACE} px", cb)):
        pc = m.get("per_class", {})
        rec = "  ".join(f"{k} recall {pct(v['recall'])} (n {v['support']})" for k, v in pc.items())
        print(f"classifier, faces {nm:9s}: n {m.get('n')}  accuracy {pct(m.get('accuracy'))}  "
              f"AUC {m.get('auc') if m.get('auc') is None else round(m['auc'], 4)}  {rec}")
    d = result["detect"]
    print(f"nnmask-detect: {d['detections']} detections, {d['matched']}/{d['gt_faces']} faces matched "
          f"(IoU >= 0.5; {d['matched_min24px']}/{d['gt_faces_min24px']} of the faces >= {MIN_FACE} px)")
    for nm, m in (("all matched", d["matched_all_sizes"]), (f"matched >= {MIN_FACE} px", d["matched_min24px_faces"])):
        print(f"  {nm:17s}: mask accuracy {pct(m['accuracy'])} (n {m['n']})  with_mask recall "
              f"{pct(m['with_mask']['recall'])} (n {m['with_mask']['n']})  without_mask recall "
              f"{pct(m['without_mask']['recall'])} (n {m['without_mask']['n']})  mask_weared_incorrect -> "
              f"unmasked {pct(m['mask_weared_incorrect']['recall'])} (n {m['mask_weared_incorrect']['n']})")
    print(f"written to {opts['--out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
