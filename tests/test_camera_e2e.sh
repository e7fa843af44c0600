#!/bin/bash
# test_camera_e2e.sh — the camera recipe end to end on real data: converts the
# ImageNet backbone and the face detector from ../shared, trains
# train/configs/camera.ini (fewer epochs), then scores the street photos the run
# held out (train/eval_street.py): the classifier on their faces and
# nnmask-detect on the photos, and asserts the figures.
# usage: test_camera_e2e.sh NNMASK_TRAIN NNMASK_EVAL NNMASK_DETECT
set -u
TRAIN=$(realpath "$1") EVAL=$(realpath "$2") DETECT=$(realpath "$3")
SRC=${NNMASK_SRC:?}
SHARED=${NNMASK_SHARED:-$SRC/../shared}
if [ "${NNMASK_SANITIZED:-0}" = 1 ]; then
    echo "skip: a full training run is not repeated under the sanitizers (the release suite runs it)"
    exit 77
fi
for need in "$SHARED/data/mask/with_mask" "$SHARED/data/street/ANNOTATIONS.csv" \
            "$SHARED/weights/mobilenet_v2_1.0_224" "$SHARED/weights/ultraface"; do
    [ -e "$need" ] || { echo "skip: $need is absent"; exit 77; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi; }

NNMASK_MODELS=$T/models NNMASK_SHARED=$SHARED bash "$SRC/weights/fetch_weights.sh" all > "$T/fetch.log" 2>&1
check "[ $? -eq 0 ]" "fetch_weights.sh all failed: $(tail -3 "$T/fetch.log")"

cd "$SRC"
"$TRAIN" train/configs/camera.ini train.epochs=3 output.dir="$T/run" \
    model.backbone="$T/models/mobilenet_v2_1.0_224.safetensors" \
    data.dir="$SHARED/data/mask" data.annotations="$SHARED/data/street/ANNOTATIONS.csv" \
    > "$T/train.log" 2>&1
check "[ $? -eq 0 ]" "camera.ini training failed: $(tail -5 "$T/train.log")"
check "grep -q 'threshold' '$T/run/report.txt'" "no threshold in the report"

NNMASK_DETECTOR="$T/models/ultraface-RFB-320.safetensors" /usr/bin/python3 "$SRC/train/eval_street.py" \
    "$T/run" --build "$(dirname "$(dirname "$DETECT")")" --annotations "$SHARED/data/street/ANNOTATIONS.csv" \
    --out "$T/street.json" > "$T/eval.log" 2>&1
check "[ $? -eq 0 ]" "eval_street.py failed: $(tail -5 "$T/eval.log")"
cat "$T/eval.log"

# The apps' default models: camera.safetensors and the RFB detector found
# through $NNMASK_MODELS, from a folder with no models/ of its own.
cp "$T/run/model.safetensors" "$T/models/camera.safetensors"
photo=$(ls "$SHARED"/data/photos/*.jpg | head -n 1)
(cd "$T" && NNMASK_MODELS="$T/models" "$DETECT" --json "$photo" > "$T/default.json" 2> "$T/default.err")
check "[ $? -eq 0 ] && grep -q '\"label\": *\"with\(out\)\?_mask\"' '$T/default.json'" \
    "nnmask-detect without --model/--detector: $(cat "$T/default.err")"
check "grep -q 'using the detector $T/models/ultraface-RFB-320.safetensors' '$T/default.err'" \
    "the default detector is RFB-320 where both are converted: $(cat "$T/default.err")"

# Figures (measured with 3 epochs: see the README for the full 12-epoch run).
read -r det_acc det_recall24 nm24 m24 mask_acc <<< "$(/usr/bin/python3 - "$T/street.json" "$T/run/metrics.json" 2>/dev/null <<'PY' || echo -1 -1 -1 -1 -1
import json, sys
s = json.load(open(sys.argv[1]))
m = json.load(open(sys.argv[2]))
d = s["detect"]
c = s["classifier_min24px"]["per_class"]
mask_acc = m["sources"]["mask"]["accuracy"]
print(d["matched_all_sizes"]["accuracy"], d["detection_recall_min24px"],
      c["without_mask"]["recall"], c["with_mask"]["recall"], mask_acc)
PY
)"
echo "detect mask accuracy $det_acc, detection recall (>= 24 px) $det_recall24, street >= 24 px recall: no mask $nm24, mask $m24; data/mask test accuracy $mask_acc"
check "awk 'BEGIN{exit !($det_acc >= 0.90)}'" "nnmask-detect mask accuracy on held-out street photos $det_acc < 0.90"
check "awk 'BEGIN{exit !($det_recall24 >= 0.65)}'" "face recall (>= 24 px) $det_recall24 < 0.65"
check "awk 'BEGIN{exit !($nm24 >= 0.85)}'" "street no-mask recall (>= 24 px) $nm24 < 0.85"
check "awk 'BEGIN{exit !($m24 >= 0.90)}'" "street mask recall (>= 24 px) $m24 < 0.90"
check "awk 'BEGIN{exit !($mask_acc >= 0.97)}'" "data/mask test accuracy $mask_acc < 0.97"
echo "test_camera_e2e: $pass passed, $fail failed"
[ $fail -eq 0 ]
