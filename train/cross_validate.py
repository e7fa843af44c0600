#!/usr/bin/env python3
# cross_validate.py — K-fold cross-validation of a training config: trains every fold
# with nnmask-train (data.folds/data.fold) and pools the held-out predictions of all folds.
"""
usage: train/cross_validate.py CONFIG.ini [--folds K] [--out DIR] [--build DIR]
                               [--no-detect] [section.key=value ...]

Why: the street photos of ../shared hold 125 unmasked faces of at least 24 px,
so one held-out test split scores about 17 of them and one face moves the
"no mask" recall by 6 points. Cross-validation holds every photo out once:
fold f tests on part f of the K parts (split by photo, stratified, the same
parts for every fold: they depend on data.seed only), chooses its threshold
and best epoch on part f+1 and trains on the rest. With K = 7 each fold trains
on 5/7 of the data, the proportions of a 0.7/0.15/0.15 split. Pooling the K
test parts scores every face exactly once, each by a model that never saw its
photo.

Each fold trains into DIR/fold-F (default DIR: runs/<config name>-cv); a fold
with a metrics.json is kept, one with a checkpoint resumes (--resume), so a
killed run goes on where it stopped. Unless --no-detect, each fold's held-out
street photos are also run through nnmask-detect (train/eval_street.py; needs
the detector weights), and the matched faces are pooled too.

Writes DIR/cv.json and DIR/cv_report.txt (atomically) and prints the report:
per source and for annotated faces >= 24 px and by size: accuracy, per-class
recall and precision, confusion matrix, ROC AUC of the pooled probabilities
(2 classes), and the spread (min / max over folds) of accuracy and per-class
recall. Exit status 0, 1 when a fold fails, 2 on bad usage.
"""
import csv
import json
import os
import subprocess
import sys

from eval_street import MIN_FACE, side as box_side, summarize  # train/, next to this script

BANDS = [(0, 16), (16, 24), (24, 40), (40, 60), (60, 100), (100, 1e9)]


def usage(msg):
    print(f"cross_validate.py: {msg}\n{__doc__.strip().splitlines()[0]}", file=sys.stderr)
    sys.exit(2)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def auc(scores_pos, scores_neg):
    """ROC AUC: the probability that a positive scores above a negative (ties half)."""
    if not scores_pos or not scores_neg:
        return None
    allv = sorted([(s, 1) for s in scores_pos] + [(s, 0) for s in scores_neg])
    rank_sum, i = 0.0, 0
    while i < len(allv):
        j = i
        while j < len(allv) and allv[j][0] == allv[i][0]:
            j += 1
        pos = sum(lab for _, lab in allv[i:j])
        rank_sum += pos * (i + j + 1) / 2.0  # mean 1-based rank of the tie run
        i = j
    npos, nneg = len(scores_pos), len(scores_neg)
    return (rank_sum - npos * (npos + 1) / 2.0) / (npos * nneg)


def metrics(rows, classes):
    """rows: dicts with label, predicted, p (list of class probabilities)."""
    k = len(classes)
    idx = {c: i for i, c in enumerate(classes)}
    conf = [[0] * k for _ in range(k)]
    for r in rows:
        conf[idx[r["label"]]][idx[r["predicted"]]] += 1
    n = len(rows)
    out = {"n": n, "accuracy": (sum(conf[i][i] for i in range(k)) / n) if n else None, "per_class": {},
           "confusion": conf}
    for i, c in enumerate(classes):
        sup = sum(conf[i])
        pred = sum(conf[j][i] for j in range(k))
        out["per_class"][c] = {"support": sup, "correct": conf[i][i],
                               "recall": conf[i][i] / sup if sup else None,
                               "precision": conf[i][i] / pred if pred else None}
    if k == 2:
        out["auc"] = auc([r["p"][1] for r in rows if r["label"] == classes[1]],
                         [r["p"][1] for r in rows if r["label"] == classes[0]])
    return out


def side(r):
    return box_side([float(r[k]) for k in ("x0", "y0", "x1", "y1")])


def subsets(rows):
    """name -> rows: all, per source, per annotated source >= 24 px and by size."""
    out = {"all": rows}
    for s in sorted({r["source"] for r in rows}):
        sr = [r for r in rows if r["source"] == s]
        out[s] = sr
        boxed = [r for r in sr if r["x0"]]
        if boxed:
            out[f"{s}, faces >= {MIN_FACE} px"] = [r for r in boxed if side(r) >= MIN_FACE]
            for lo, hi in BANDS:
                b = [r for r in boxed if lo <= side(r) < hi]
                if b:
                    nm = f"{lo}+" if hi > 1e8 else f"{lo}-{hi}"
                    out[f"{s}, faces {nm} px"] = b
    return out


def read_predictions(path, classes):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["split"] != "test":
                continue
            r["p"] = [float(r["p_" + c]) for c in classes]
            rows.append(r)
    return rows


def pool_detect(evals):
    """The matched faces of eval_street.py results, pooled (summed confusions,
    scored by eval_street's own summarize)."""
    out = {}
    for key in ("matched_all_sizes", "matched_min24px_faces"):
        pairs = [(g, p) for e in evals for g, d in e["detect"][key]["confusion"].items()
                 for p, n in d.items() for _ in range(n)]
        out[key] = summarize(pairs)
    for key in ("gt_faces", "matched", "gt_faces_min24px", "matched_min24px", "detections"):
        out[key] = sum(e["detect"][key] for e in evals)
    out["detection_recall"] = out["matched"] / out["gt_faces"] if out["gt_faces"] else None
    return out


def pct(v):
    return "     -" if v is None else f"{100 * v:6.2f}%"


def main(argv):
    opts = {"--folds": "7", "--out": None, "--build": "build"}
    flags, overrides, pos = set(), [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        if a in opts:
            if i + 1 >= len(argv):
                usage(f"{a} needs a value")
            opts[a] = argv[i + 1]
            i += 2
            continue
        if a == "--no-detect":
            flags.add(a)
        elif a.startswith("-"):
            usage(f"unknown option {a}")
        elif "=" in a:
            overrides.append(a)
        else:
            pos.append(a)
        i += 1
    if len(pos) != 1:
        usage("one CONFIG.ini expected")
    config = pos[0]
    if not os.path.isfile(config):
        usage(f"{config}: no such file")
    try:
        folds = int(opts["--folds"])
    except ValueError:
        folds = 0
    if folds < 3:
        usage(f"--folds {opts['--folds']}: at least 3 (test, validation and training parts)")
    for o in overrides:
        if o.split("=", 1)[0].strip() in ("data.folds", "data.fold", "output.dir"):
            usage(f"{o}: set by cross_validate.py itself (use --folds / --out)")
    out = opts["--out"] or os.path.join("runs", os.path.splitext(os.path.basename(config))[0] + "-cv")
    train = os.path.join(opts["--build"], "apps", "nnmask-train")
    if not os.access(train, os.X_OK):
        usage(f"{train} not found: build first (meson setup {opts['--build']} && ninja -C {opts['--build']})")
    os.makedirs(out, exist_ok=True)

    # the run folder belongs to one config (its settings: comments may change) + overrides + K
    def settings(text):
        return [ln.strip() for ln in text.splitlines() if ln.strip() and ln.strip()[0] not in ";#"]

    ident = {"config": os.path.abspath(config), "config_text": open(config).read(), "overrides": overrides,
             "folds": folds}
    idf = os.path.join(out, "cv_command.json")
    if os.path.exists(idf):
        old = json.load(open(idf))
        same = (old.get("config") == ident["config"] and old.get("overrides") == overrides and
                old.get("folds") == folds and
                settings(old.get("config_text", "")) == settings(ident["config_text"]))
        if not same:
            print(f"cross_validate.py: {out} holds a cross-validation of another configuration "
                  f"({old.get('config')}, overrides {old.get('overrides')}, {old.get('folds')} folds); "
                  f"use another --out or remove it", file=sys.stderr)
            return 2
    else:
        write_atomic(idf, json.dumps(ident, indent=1) + "\n")

    here = os.path.dirname(os.path.abspath(__file__))
    evals, fold_dirs = [], []
    for f in range(folds):
        d = os.path.join(out, f"fold-{f}")
        fold_dirs.append(d)
        if os.path.exists(os.path.join(d, "metrics.json")) and os.path.exists(os.path.join(d, "predictions.csv")):
            print(f"fold {f}/{folds}: done earlier ({d})")
        else:
            cmd = [train, config] + overrides + [f"data.folds={folds}", f"data.fold={f}", f"output.dir={d}"]
            if os.path.exists(os.path.join(d, "checkpoint.safetensors")):
                cmd.insert(2, "--resume")
            print(f"fold {f}/{folds}: {' '.join(cmd)}", flush=True)
            r = subprocess.run(cmd)
            if r.returncode != 0:
                print(f"cross_validate.py: fold {f} failed (exit status {r.returncode}, message above); "
                      f"run again when fixed: finished folds are kept, a killed one resumes", file=sys.stderr)
                return 1
        if "--no-detect" not in flags:
            ev = os.path.join(d, "street_eval.json")
            if not os.path.exists(ev):
                r = subprocess.run(["/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                                    os.path.join(here, "eval_street.py"), d, "--build", opts["--build"]],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"cross_validate.py: note: street evaluation of fold {f} failed, pooling the "
                          f"classifier only (--no-detect to skip it):\n{r.stderr.strip()}", file=sys.stderr)
                    flags.add("--no-detect")
            if os.path.exists(ev):
                evals.append(json.load(open(ev)))

    # pool the test rows of every fold
    classes = None
    rows, per_fold = [], []
    for f, d in enumerate(fold_dirs):
        if not os.path.exists(os.path.join(d, "metrics.json")):
            print(f"cross_validate.py: fold {f} wrote no metrics.json ({d}): it had no test items", file=sys.stderr)
            return 1
        m = json.load(open(os.path.join(d, "metrics.json")))
        if m.get("folds") != folds or m.get("fold") != f:
            print(f"cross_validate.py: {d}/metrics.json is not fold {f} of {folds}", file=sys.stderr)
            return 1
        if classes is None:
            classes = m["classes"]
        fr = read_predictions(os.path.join(d, "predictions.csv"), classes)
        for r in fr:
            r["fold"] = f
        rows += fr
        per_fold.append({"fold": f, "threshold": m.get("threshold"), "best_epoch": m.get("best_epoch"),
                         "train_seconds": m.get("train_seconds"), "subsets": {
                             k: metrics(v, classes) for k, v in subsets(fr).items()}})
    keys = [(r["source"], r["path"], r["x0"], r["y0"], r["x1"], r["y1"]) for r in rows]
    if len(set(keys)) != len(keys):
        print("cross_validate.py: an item is in the test part of two folds", file=sys.stderr)
        return 1

    pooled = {k: metrics(v, classes) for k, v in subsets(rows).items()}
    for k, m in pooled.items():
        accs = [pf["subsets"][k]["accuracy"] for pf in per_fold if k in pf["subsets"]]
        m["fold_accuracy_min"] = min(accs) if accs else None
        m["fold_accuracy_max"] = max(accs) if accs else None
        for c in classes:
            rec = [pf["subsets"][k]["per_class"][c]["recall"] for pf in per_fold
                   if k in pf["subsets"] and pf["subsets"][k]["per_class"][c]["recall"] is not None]
            m["per_class"][c]["fold_recall_min"] = min(rec) if rec else None
            m["per_class"][c]["fold_recall_max"] = max(rec) if rec else None
    result = {"config": config, "overrides": overrides, "folds": folds, "classes": classes,
              "pooled_test": pooled,
              "per_fold": [{k: v for k, v in pf.items() if k != "subsets"} |
                           {"street_min24px": pf["subsets"].get(f"street, faces >= {MIN_FACE} px")}
                           for pf in per_fold]}
    if evals and len(evals) == folds:
        result["detect"] = pool_detect(evals)

    lines = [f"{folds}-fold cross-validation of {config}" + (f" ({' '.join(overrides)})" if overrides else ""),
             f"every item scored once, by the fold that held its photo out: {len(rows)} test items",
             "", f"{'subset':28s} {'n':>5s} {'accuracy':>8s} {'AUC':>7s}  " +
             "  ".join(f"{'recall ' + c:>24s} {'(n)':>5s} {'folds min-max':>15s}" for c in classes)]
    for k, m in pooled.items():
        a = "      -" if m.get("auc") is None else f"{m['auc']:.4f}"
        cols = []
        for c in classes:
            pc = m["per_class"][c]
            mm = "" if pc["fold_recall_min"] is None else \
                f"{100 * pc['fold_recall_min']:.1f}-{100 * pc['fold_recall_max']:.1f}%"
            cols.append(f"{pct(pc['recall']):>24s} {pc['support']:5d} {mm:>15s}")
        lines.append(f"{k:28s} {m['n']:5d} {pct(m['accuracy']):>8s} {a:>7s}  " + "  ".join(cols))
    for k in ("mask", "street", f"street, faces >= {MIN_FACE} px"):
        if k in pooled:
            lines += ["", f"confusion, {k} (rows: true, columns: predicted: {', '.join(classes)})"]
            lines += [f"  {c:14s} " + " ".join(f"{v:6d}" for v in row)
                      for c, row in zip(classes, pooled[k]["confusion"])]
    lines += ["", "per fold: threshold, best epoch, street faces >= 24 px (accuracy, per-class recall)"]
    for pf in result["per_fold"]:
        s = pf["street_min24px"]
        rec = "" if not s else "  ".join(
            f"{c} {pct(s['per_class'][c]['recall'])} ({s['per_class'][c]['correct']}/{s['per_class'][c]['support']})"
            for c in classes)
        thr = "-" if pf["threshold"] is None else f"{pf['threshold']:.4f}"
        lines.append(f"  fold {pf['fold']}: threshold {thr}  best epoch {pf['best_epoch']}  " +
                     (f"accuracy {pct(s['accuracy'])}  {rec}" if s else ""))
    if "detect" in result:
        d = result["detect"]
        lines += ["", f"nnmask-detect on the held-out photos of every fold: {d['matched']}/{d['gt_faces']} "
                      f"faces matched (IoU >= 0.5), {d['matched_min24px']}/{d['gt_faces_min24px']} of those >= {MIN_FACE} px"]
        for nm, key in (("all matched", "matched_all_sizes"), (f"matched >= {MIN_FACE} px", "matched_min24px_faces")):
            m = d[key]
            lines.append(f"  {nm:17s}: mask accuracy {pct(m['accuracy'])} (n {m['n']})  with_mask recall "
                         f"{pct(m['with_mask']['recall'])} (n {m['with_mask']['n']})  without_mask recall "
                         f"{pct(m['without_mask']['recall'])} (n {m['without_mask']['n']})  "
                         f"mask_weared_incorrect -> unmasked {pct(m['mask_weared_incorrect']['recall'])} "
                         f"(n {m['mask_weared_incorrect']['n']})")
    text = "\n".join(lines) + "\n"
    write_atomic(os.path.join(out, "cv.json"), json.dumps(result, indent=1) + "\n")
    write_atomic(os.path.join(out, "cv_report.txt"), text)
    print(text + f"written to {out}/cv.json and {out}/cv_report.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
