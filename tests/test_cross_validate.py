#!/usr/bin/env python3
# test_cross_validate.py — train/cross_validate.py for real: 3 folds of a tiny run on a
# subset of ../shared/data/street + data/mask, checked fold by fold and pooled.
"""usage: test_cross_validate.py CROSS_VALIDATE.py NNMASK_TRAIN

Trains 3 folds (random alpha-0.35 backbone, 1 epoch, input 96) on the faces
of 30 street photos and a few data/mask images and checks:
  - every item is in the test part of exactly one fold, and the test parts
    cover the whole dataset (the same items as a plain split of it);
  - fold f validates on the part fold f+1 tests on; no photo in two parts;
    each fold's street test faces hold both classes (stratified);
  - cv.json: the pooled confusion matrices equal the ones counted here from
    the folds' predictions.csv (all, per source, street >= 24 px), the per-fold
    minimum / maximum recall bracket the pooled recall, the AUC is in [0, 1];
  - a second run keeps every finished fold and writes the same cv.json; a run
    with other overrides into the same folder is refused; --folds 2 is refused;
    a fold killed before its end (checkpoint, no metrics) resumes.
Exits 77 (skip) without $NNMASK_SHARED/data/street.
"""
import csv
import json
import os
import subprocess
import sys
import tempfile

from tu import check  # noqa: E402  (tests/tu.py: the shared counter)
import tu  # noqa: E402

K = 3


def side(r):
    return min(float(r["x1"]) - float(r["x0"]), float(r["y1"]) - float(r["y0"]))


def main():
    cv, train = sys.argv[1], sys.argv[2]
    build = os.path.dirname(os.path.dirname(os.path.abspath(train)))
    data = tu.shared_street_mask()
    if not data:
        return 77
    with tempfile.TemporaryDirectory(prefix="nnmask-cv.") as tmp:
        return run(cv, train, build, *data, tmp)


def run(cv, train, build, street, mask, tmp):
    ann, _, _ = tu.street_subset(street, tmp, 30)
    ini = os.path.join(tmp, "cv.ini")
    with open(ini, "w") as f:
        f.write(f"""[data]
dir = {mask}
annotations = {ann}
max_per_class = 12
seed = 3
min_face = 12
balance = weights
balance_sources = true
[model]
backbone = random
alpha = 0.35
input_size = 96
[train]
epochs = 1
batch = 16
lr = 3e-3
threads = 2
threshold = equal_recall
threshold_source = street
[augment]
enabled = false
[output]
plots = false
""")
    out = os.path.join(tmp, "cvrun")
    cmd = [sys.executable, cv, ini, "--folds", str(K), "--out", out, "--build", build, "--no-detect"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    print(r.stdout[-3000:])
    if r.returncode != 0:
        print(r.stderr, file=sys.stderr)
        check(False, f"cross_validate.py exit status {r.returncode}")
        return 1

    def item(s):
        return (s["source"], s["path"], s["x0"], s["y0"], s["x1"], s["y1"])

    splits = [list(csv.DictReader(open(os.path.join(out, f"fold-{f}", "split.csv")))) for f in range(K)]
    everything = {item(s) for s in splits[0]}
    check(all({item(s) for s in sp} == everything for sp in splits), "every fold splits the same items")
    tests = [{item(s) for s in sp if s["split"] == "test"} for sp in splits]
    vals = [{item(s) for s in sp if s["split"] == "val"} for sp in splits]
    check(sum(len(t) for t in tests) == len(everything) and set().union(*tests) == everything,
          f"test parts cover every item once ({sum(len(t) for t in tests)} test rows, {len(everything)} items)")
    for f in range(K):
        check(vals[f] == tests[(f + 1) % K], f"fold {f} validates on the test part of fold {(f + 1) % K}")
        check(tests[f] and abs(len(tests[f]) - len(everything) / K) < 0.2 * len(everything) / K + 3,
              f"fold {f}: {len(tests[f])} test items, about {len(everything) / K:.0f} expected")
        parts = {}
        for s in splits[f]:
            if s["x0"]:
                parts.setdefault(os.path.basename(s["path"]), set()).add(s["split"])
        check(all(len(v) == 1 for v in parts.values()), f"fold {f}: a photo has faces in two parts")
        labels = {s["label"] for s in splits[f] if s["split"] == "test" and s["source"] == "street"}
        check(labels == {"with_mask", "without_mask"}, f"fold {f}: street test faces of both classes ({labels})")

    # pooled confusions recounted from the folds' predictions
    classes = ["with_mask", "without_mask"]
    preds = []
    for f in range(K):
        preds += [p for p in csv.DictReader(open(os.path.join(out, f"fold-{f}", "predictions.csv")))
                  if p["split"] == "test"]
    check(len(preds) == len(everything), f"{len(preds)} pooled predictions, {len(everything)} items")
    res = json.load(open(os.path.join(out, "cv.json")))
    check(res["folds"] == K and res["classes"] == classes, "cv.json folds and classes")
    subsets = {"all": preds, "mask": [p for p in preds if p["source"] == "mask"],
               "street": [p for p in preds if p["source"] == "street"],
               "street, faces >= 24 px": [p for p in preds if p["source"] == "street" and side(p) >= 24]}
    for name, sub in subsets.items():
        conf = [[0, 0], [0, 0]]
        for p in sub:
            conf[classes.index(p["label"])][classes.index(p["predicted"])] += 1
        m = res["pooled_test"].get(name)
        check(m is not None and m["confusion"] == conf, f"{name}: pooled confusion {m and m['confusion']} != {conf}")
        if not m:
            continue
        check(m["n"] == len(sub), f"{name}: n")
        check(m["auc"] is None or 0 <= m["auc"] <= 1, f"{name}: AUC {m['auc']}")
        for c in classes:
            pc = m["per_class"][c]
            if pc["recall"] is not None and pc["fold_recall_min"] is not None:
                check(pc["fold_recall_min"] - 1e-12 <= pc["recall"] <= pc["fold_recall_max"] + 1e-12,
                      f"{name} {c}: pooled recall {pc['recall']} outside the folds' "
                      f"[{pc['fold_recall_min']}, {pc['fold_recall_max']}]")
    report = open(os.path.join(out, "cv_report.txt")).read()
    check("street, faces >= 24 px" in report and "fold 2:" in report, "cv_report.txt has the street rows and folds")

    def figures():
        """cv.json without the folds' training times (a resumed fold has its own)."""
        j = json.load(open(os.path.join(out, "cv.json")))
        for pf in j["per_fold"]:
            pf.pop("train_seconds", None)
        return j

    # a second run keeps the folds and writes the same figures
    before = open(os.path.join(out, "cv.json")).read()
    before_fig = figures()
    r = subprocess.run(cmd, capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.count("done earlier") == K, f"second run reuses the folds: {r.stdout[:300]}")
    check(open(os.path.join(out, "cv.json")).read() == before, "second run: same cv.json")

    # more folds than the data can fill: a clear error, not a traceback
    r = subprocess.run(cmd[:3] + ["--folds", "60", "--out", out + "-60"] + cmd[7:], capture_output=True, text=True)
    check(r.returncode == 1 and "use fewer folds" in r.stderr and "Traceback" not in r.stderr,
          f"--folds 60 on ~30 photos: rc {r.returncode} {r.stderr[-500:]}")

    # a comment added to the config changes no setting: the folds are kept
    with open(ini, "a") as f:
        f.write("; a note added later\n")
    r = subprocess.run(cmd, capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.count("done earlier") == K, f"comment-only change reuses the folds: {r.stderr}")

    # other overrides into the same folder: refused
    r = subprocess.run(cmd + ["train.lr=1e-3"], capture_output=True, text=True)
    check(r.returncode == 2 and "another configuration" in r.stderr, f"other overrides refused: {r.stderr}")
    r = subprocess.run(cmd[:3] + ["--folds", "2"] + cmd[5:], capture_output=True, text=True)
    check(r.returncode == 2 and "at least 3" in r.stderr, f"--folds 2 refused: {r.stderr}")
    r = subprocess.run(cmd + ["data.fold=1"], capture_output=True, text=True)
    check(r.returncode == 2 and "set by cross_validate.py" in r.stderr, f"data.fold override refused: {r.stderr}")

    # a fold killed after its checkpoint resumes; the pooled result is unchanged
    f1 = os.path.join(out, "fold-1")
    os.remove(os.path.join(f1, "metrics.json"))
    check(os.path.exists(os.path.join(f1, "checkpoint.safetensors")), "fold 1 keeps a checkpoint")
    r = subprocess.run(cmd, capture_output=True, text=True)
    check(r.returncode == 0 and "--resume" in r.stdout and r.stdout.count("done earlier") == K - 1,
          f"fold 1 resumed: {r.stdout[:400]} {r.stderr[-400:]}")
    check(figures() == before_fig, "after the resume: the same pooled and per-fold figures")
    return tu.summary("test_cross_validate")


if __name__ == "__main__":
    sys.exit(main())
