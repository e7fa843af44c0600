#!/usr/bin/env python3
# test_train_street.py — nnmask-train on annotated photos for real: a short run on a
# subset of ../shared/data/street (+ a few data/mask images) checked end to end.
"""usage: test_train_street.py NNMASK_TRAIN NNMASK_EVAL

Builds a small annotations CSV from the first photos of
$NNMASK_SHARED/data/street/ANNOTATIONS.csv (faces of all sizes and labels, so
that min_face and the class list have something to drop), trains a random
alpha-0.35 backbone for two epochs on it plus a few data/mask images, with
loss-weight balancing per (source, class), a min_recall threshold and the
augmented-copies feature cache, and checks:
  - split.csv: faces cut from the CSV rows that pass min_face and the class
    list, and no photo with faces in two parts (split by photo);
  - the balancing weights printed by the run equal n / (groups * count) of the
    (source, class) counts of the training rows of split.csv;
  - model metadata: threshold chosen by the min_recall rule on the street
    validation faces (threshold_source), and their without_mask recall at it
    (from predictions.csv) >= the configured minimum; predictions.csv's
    decisions follow the threshold;
  - metrics.json: both sources with accuracy, per-class recall/precision, AUC,
    confusion; street with faces >= 24 px and by-size bands that add up;
  - nnmask-eval --split on the run's split.csv gives the same test figures.
Exits 77 (skip) without $NNMASK_SHARED/data/street.
"""
import csv
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

from tu import check  # noqa: E402  (tests/tu.py: the shared counter)
import tu  # noqa: E402



def st_meta(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def main():
    train, evalp = sys.argv[1], sys.argv[2]
    data = tu.shared_street_mask()
    if not data:
        return 77
    with tempfile.TemporaryDirectory(prefix="nnmask-street.") as tmp:
        return run(train, evalp, *data, tmp)


def run(train, evalp, street, mask, tmp):
    ann, keep, _ = tu.street_subset(street, tmp, 36)
    min_face = 14
    side = lambda r: min(float(r["xmax"]) - float(r["xmin"]), float(r["ymax"]) - float(r["ymin"]))
    classes = ("with_mask", "without_mask")
    expect = [r for r in keep if r["label"] in classes and side(r) >= min_face]
    check(len(expect) < len(keep), "the subset has faces that min_face / the class list drop")
    out = os.path.join(tmp, "run")
    ini = os.path.join(tmp, "street.ini")
    with open(ini, "w") as f:
        f.write(f"""[data]
dir = {mask}
annotations = {ann}
max_per_class = 24
split = 0.5, 0.25, 0.25
seed = 5
min_face = {min_face}
balance = weights
balance_sources = true
[model]
backbone = random
alpha = 0.35
input_size = 96
[train]
epochs = 2
batch = 16
lr = 3e-3
threads = 2
aug_copies = 2
threshold = min_recall:without_mask:0.9
threshold_source = street
[augment]
downscale_prob = 0.5
jpeg_prob = 0.3
box_jitter = 0.1
[output]
dir = {out}
plots = false
""")
    r = subprocess.run([train, ini], capture_output=True, text=True)
    print(r.stdout)
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        check(False, f"nnmask-train exit status {r.returncode}")
        return 1
    check("augmented copies" in r.stdout, "the run used the augmented-copies feature cache")

    # split by photo, faces as filtered
    sp = list(csv.DictReader(open(os.path.join(out, "split.csv"))))
    faces = [s for s in sp if s["x0"]]
    check(len(faces) == len(expect), f"{len(faces)} annotated faces in split.csv, {len(expect)} expected")
    parts = {}
    for s in faces:
        parts.setdefault(os.path.basename(s["path"]), set()).add(s["split"])
    check(all(len(v) == 1 for v in parts.values()), "a photo has faces in two parts of the split")
    check(len({p for v in parts.values() for p in v}) == 3, "street faces in train, val and test")
    check(all(s["source"] == "street" for s in faces), "annotated faces have source 'street'")
    check(any(not s["x0"] and s["source"] == "mask" for s in sp), "class-folder images have source 'mask'")

    # balancing weights: n / (groups * count) per (source, class) of the training rows
    cnt = {}
    for s in sp:
        if s["split"] == "train":
            cnt[(s["source"], s["label"])] = cnt.get((s["source"], s["label"]), 0) + 1
    n = sum(cnt.values())
    m = re.search(r"^balance \(loss weights\): weight per training image of(.*)$", r.stdout, re.M)
    check(m is not None, "the run prints its balancing weights")
    if m:
        got = {(a, b): (float(wt), int(c)) for a, b, wt, c in re.findall(r" (\w+)/(\w+) ([0-9.]+) \((\d+)\)", m.group(1))}
        check(set(got) == set(cnt), f"weight groups {sorted(got)} != {sorted(cnt)}")
        for g, c in cnt.items():
            if g in got:
                want = n / (len(cnt) * c)
                check(got[g][1] == c and abs(got[g][0] - want) < 1e-3 * want, f"weight of {g}: {got[g]}, want {want:.4f} ({c})")

    # threshold in the model metadata, chosen on validation
    meta = st_meta(os.path.join(out, "model.safetensors"))
    th = float(meta.get("threshold", "nan"))
    check(0 < th < 1, f"model threshold {meta.get('threshold')}")
    rule = meta.get("threshold_rule", "")
    check("min_recall:without_mask:0.9" in rule and "validation" in rule and "of source street" in rule,
          f"threshold_rule {rule}")
    mj = json.load(open(os.path.join(out, "metrics.json")))
    check(abs(mj.get("threshold", -1) - th) < 1e-4, "metrics.json uses the model's threshold")
    pr = list(csv.DictReader(open(os.path.join(out, "predictions.csv"))))
    check({p["split"] for p in pr} == {"val", "test"}, "predictions.csv holds the validation and test rows")
    check(sum(p["split"] == "test" for p in pr) == mj.get("n"), "predictions.csv: test rows = metrics n")
    check(all(p["predicted"] == ("without_mask" if float(p["p_without_mask"]) >= th else "with_mask")
              for p in pr if abs(float(p["p_without_mask"]) - th) > 1e-5),
          "predictions.csv decisions follow the model threshold")
    vs = [float(p["p_without_mask"]) >= th for p in pr
          if p["split"] == "val" and p["source"] == "street" and p["label"] == "without_mask"]
    check(vs and sum(vs) / len(vs) >= 0.9, f"street validation recall of without_mask {sum(vs)}/{len(vs)} < 0.9")

    # per-source metrics
    srcs = mj.get("sources", {})
    check(set(srcs) == {"mask", "street"}, f"sources {sorted(srcs)}")
    for name, s in srcs.items():
        for k in ("accuracy", "auc", "per_class", "confusion", "n"):
            check(k in s, f"source {name} lacks {k}")
        for c in classes:
            pc = s.get("per_class", {}).get(c, {})
            check("recall" in pc and "precision" in pc, f"source {name} class {c}: recall/precision")
        conf = s.get("confusion", [[0]])
        check(sum(map(sum, conf)) == s.get("n"), f"source {name}: confusion sums to n")
    st = srcs.get("street", {})
    n_test_street = sum(1 for s in faces if s["split"] == "test")
    check(st.get("n") == n_test_street, f"street test faces {st.get('n')} != {n_test_street}")
    big = st.get("faces_min24px")
    n_big = sum(1 for s in faces if s["split"] == "test" and
                min(float(s["x1"]) - float(s["x0"]), float(s["y1"]) - float(s["y0"])) >= 24)
    check(big is not None and big.get("n") == n_big, f"street faces >= 24 px: {big and big.get('n')} != {n_big}")
    bands = st.get("by_size", [])
    check(sum(b["n"] for b in bands) == n_test_street, "by_size bands add up to the street test faces")
    check(mj.get("n") == srcs.get("mask", {}).get("n", 0) + st.get("n", 0), "sources add up to the test split")
    rep = open(os.path.join(out, "report.txt")).read()
    check("source 'street', faces >= 24 px" in rep and "by face size" in rep, "report.txt has the street size sections")

    # nnmask-eval on the saved split reproduces the test figures
    e = subprocess.run([evalp, "--model", os.path.join(out, "model.safetensors"), "--split",
                        os.path.join(out, "split.csv"), "--json", "--threads", "2"], capture_output=True, text=True)
    check(e.returncode == 0, f"nnmask-eval exit status {e.returncode}: {e.stderr}")
    if e.returncode == 0:
        ej = json.loads(e.stdout)
        check(ej.get("n") == mj.get("n") and abs(ej.get("accuracy", -1) - mj.get("accuracy", -2)) < 1e-9,
              f"nnmask-eval: n {ej.get('n')} accuracy {ej.get('accuracy')} vs {mj.get('n')} {mj.get('accuracy')}")
        check(ej.get("sources", {}).get("street", {}).get("faces_min24px", {}).get("n") == n_big,
              "nnmask-eval: street faces >= 24 px")
    return 0


if __name__ == "__main__":
    rc = main()
    st = tu.summary("test_train_street")
    sys.exit(rc if rc else st)
