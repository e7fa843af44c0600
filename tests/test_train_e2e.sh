#!/bin/sh
# test_train_e2e.sh — nnmask-train end to end on generated faces: config errors
# (file:line, nothing written), an unreadable image reported and skipped, every
# output written, nnmask-eval --json, kill -9 mid-epoch + --resume giving the
# same model as an uninterrupted run, and (when the ImageNet backbone can be had)
# an accuracy far above chance.
# usage: test_train_e2e.sh MAKE_FACES NNMASK_TRAIN NNMASK_EVAL NNMASK_PREDICT
set -u
MAKE_FACES=$1
TRAIN=$2
EVAL=$3
PREDICT=$4
T=$(mktemp -d /tmp/nnmask-e2e.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

"$MAKE_FACES" "$T/faces" 48 7 || { echo "make_faces failed" >&2; exit 1; }
printf 'this is not an image' > "$T/faces/with_mask/broken.jpg"

cat > "$T/base.ini" <<EOF
[data]
dir = $T/faces
split = 0.6, 0.2, 0.2
seed = 3
[model]
backbone = random
alpha = 0.35
input_size = 96
freeze = all
[train]
epochs = 3
batch = 16
lr = 3e-3
threads = 2
[augment]
enabled = true
downscale_prob = 0.3
jpeg_prob = 0.3
blur_prob = 0.2
noise_prob = 0.2
box_jitter = 0.1
perspective = 0.05
[output]
dir = $T/runA
EOF

# ---- config errors: file:line message, non-zero exit, nothing written
cfg_error() { # name, text, expected substring
    printf '%b' "$2" > "$T/$1.ini"
    "$TRAIN" "$T/$1.ini" > "$T/$1.out" 2> "$T/$1.err"
    rc=$?
    check "[ $rc -ne 0 ]" "$1: exit status 0"
    check "grep -q -- \"$3\" '$T/$1.err'" "$1: stderr lacks '$3': $(cat "$T/$1.err")"
    check "[ ! -e '$T/cfgout' ]" "$1: output folder was created"
}
cfg_error unknown_key "[output]\ndir = $T/cfgout\n[train]\nepochs = 3\nepocs = 2\n" "unknown_key.ini:5: unknown key 'epocs'"
cfg_error bad_value "[output]\ndir = $T/cfgout\n[train]\nbatch = lots\n" "bad_value.ini:4: train.batch: 'lots' is not an integer"
cfg_error unknown_section "[output]\ndir = $T/cfgout\n[trainning]\nepochs = 3\n" "unknown_section.ini:3: unknown section \\[trainning\\]"
"$TRAIN" "$T/base.ini" output.dir="$T/cfgout" train.epochs=zero > /dev/null 2> "$T/ovr.err"
check "[ $? -ne 0 ] && grep -q \"override 'train.epochs=zero'\" '$T/ovr.err' && [ ! -e '$T/cfgout' ]" \
    "override error: $(cat "$T/ovr.err")"

# ---- a full run (random backbone, augmentation in background threads)
start=$(date +%s)
"$TRAIN" "$T/base.ini" > "$T/runA.out" 2> "$T/runA.err"
rc=$?
check "[ $rc -eq 0 ]" "run A failed ($rc): $(tail -5 "$T/runA.err")"
check "grep -q 'broken.jpg' '$T/runA.err' && grep -q 'skipped' '$T/runA.err'" "unreadable image not reported by name"
check "! grep -q broken.jpg '$T/runA/split.csv'" "unreadable image in split.csv"
for f in model.safetensors checkpoint.safetensors metrics.json report.txt history.csv split.csv config.ini \
         curves.png confusion.png roc.png augment_preview.png; do
    check "[ -s '$T/runA/$f' ]" "run A did not write $f"
done
check "[ \$(wc -l < '$T/runA/history.csv') -eq 4 ]" "history.csv should have 3 epochs"
check "grep -q 'macro avg' '$T/runA/report.txt' && grep -q 'ROC AUC' '$T/runA/report.txt'" "report.txt content"
check "grep -q 'test (' '$T/runA.out'" "test scores not printed"
echo "run A: $(($(date +%s) - start)) s; $(grep 'test (' "$T/runA.out")"

# ---- nnmask-eval on the saved test split
"$EVAL" --model "$T/runA/model.safetensors" --split "$T/runA/split.csv" --json > "$T/eval.json" 2> "$T/eval.err"
check "[ $? -eq 0 ]" "nnmask-eval failed: $(cat "$T/eval.err")"
for k in accuracy precision recall f1 auc per_class confusion; do
    check "grep -q '\"$k\"' '$T/eval.json'" "eval --json lacks $k"
done
accA=$(sed -n 's/.*"accuracy":[[:space:]]*\([0-9.e-]*\).*/\1/p' "$T/runA/metrics.json" | head -1)
accE=$(sed -n 's/^{"n":[0-9]*,"accuracy":\([0-9.e-]*\).*/\1/p' "$T/eval.json")
check "[ -n '$accA' ] && [ '$accA' = '$accE' ]" "eval accuracy '$accE' differs from training's test accuracy '$accA'"
# --shrink: the input size itself changes nothing, 8 px changes the figures; bad sizes refused
"$EVAL" --model "$T/runA/model.safetensors" --split "$T/runA/split.csv" --shrink 96 --json > "$T/evals96.json" 2> /dev/null
check "[ \$? -eq 0 ] && grep -q '\"shrink\":96' '$T/evals96.json'" "eval --shrink 96 failed or lacks the shrink field"
lossE=$(sed -n 's/.*"loss":\([0-9.e-]*\),"threshold".*/\1/p' "$T/eval.json" | head -c 40)
check "[ -n '$lossE' ] && grep -q '\"loss\":$lossE,' '$T/evals96.json'" "eval --shrink 96 (= input size) changed the loss"
"$EVAL" --model "$T/runA/model.safetensors" --split "$T/runA/split.csv" --shrink 8 --json > "$T/evals8.json" 2> /dev/null
check "[ \$? -eq 0 ] && grep -q '\"shrink\":8' '$T/evals8.json' && ! grep -q '\"loss\":$lossE,' '$T/evals8.json'" \
    "eval --shrink 8 should change the loss"
for bad in 4 97 x; do
    "$EVAL" --model "$T/runA/model.safetensors" --split "$T/runA/split.csv" --shrink $bad > /dev/null 2> "$T/evalbad.err"
    check "[ \$? -eq 2 ] && grep -q 'shrink' '$T/evalbad.err'" "eval --shrink $bad should be refused: $(cat "$T/evalbad.err")"
done
"$EVAL" --model "$T/runA/model.safetensors" --data "$T/faces" --out "$T/evalout" > "$T/eval2.out" 2> "$T/eval2.err"
check "[ $? -ne 0 ] && grep -q broken.jpg '$T/eval2.err'" "eval on a folder with a broken image should fail naming it"
check "[ -s '$T/evalout/metrics.json' ] && [ -s '$T/evalout/roc.png' ] && grep -q 'macro avg' '$T/eval2.out'" "eval --out outputs"

# ---- nnmask-predict --model: one line per readable image, the broken one on stderr, exit 1
"$PREDICT" --model "$T/runA/model.safetensors" "$T/faces" > "$T/pred.out" 2> "$T/pred.err"
rc=$?
n_img=$(find "$T/faces" -type f | wc -l)
check "[ $rc -ne 0 ] && grep -q broken.jpg '$T/pred.err'" "predict: broken image not reported (rc $rc)"
check "[ \$(wc -l < '$T/pred.out') -eq $((n_img - 1)) ]" "predict: expected $((n_img - 1)) lines"
check "grep -q '^$T/faces/with_mask/with_mask_000.jpg with_mask\\|^$T/faces/with_mask/with_mask_000.jpg without_mask' '$T/pred.out'" \
    "predict line format: $(head -1 "$T/pred.out")"
"$PREDICT" --model "$T/runA/model.safetensors" --json "$T/faces/without_mask" > "$T/pred.json" 2> /dev/null
check "[ $? -eq 0 ] && grep -q '\"probability\"' '$T/pred.json'" "predict --json"
"$PREDICT" --model "$T/runA/model.safetensors" --csv "$T/faces/without_mask/without_mask_001.png" > "$T/pred.csv"
check "head -1 '$T/pred.csv' | grep -q '^path,label,probability,p_with_mask,p_without_mask' && [ \$(wc -l < '$T/pred.csv') -eq 2 ]" "predict --csv"

# ---- kill -9 in the middle of an epoch, then --resume: same final model
sed -e "s#dir = $T/runA#dir = $T/runB#" -e "s/epochs = 3/epochs = 4/" "$T/base.ini" > "$T/b.ini"
sed -e "s#dir = $T/runA#dir = $T/runC#" -e "s/epochs = 3/epochs = 4/" "$T/base.ini" > "$T/c.ini"
"$TRAIN" "$T/c.ini" > "$T/runC.out" 2>&1 || bad "run C failed"
"$TRAIN" "$T/b.ini" > "$T/runB1.out" 2>&1 &
pid=$!
i=0
while [ ! -e "$T/runB/checkpoint.safetensors" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.3
if kill -9 $pid 2> /dev/null; then killed=1; else killed=0; fi
wait $pid 2> /dev/null
"$TRAIN" "$T/b.ini" --resume > "$T/runB2.out" 2>&1
check "[ $? -eq 0 ]" "resumed run failed: $(tail -3 "$T/runB2.out")"
if [ $killed -eq 1 ]; then
    check "grep -q 'resuming after epoch' '$T/runB2.out'" "resume did not start from a checkpoint"
else
    echo "note: the first run B ended before the kill" >&2
fi
check "cmp -s '$T/runB/model.safetensors' '$T/runC/model.safetensors'" "resumed model differs from the uninterrupted one"
cut -d, -f1-6 "$T/runB/history.csv" > "$T/hb"
cut -d, -f1-6 "$T/runC/history.csv" > "$T/hc"
check "cmp -s '$T/hb' '$T/hc'" "resumed history differs: $(diff "$T/hb" "$T/hc")"
check "cmp -s '$T/runB/split.csv' '$T/runC/split.csv'" "split differs"

# ---- accuracy with the ImageNet backbone (when it can be had)
W=""
if [ -f "${NNMASK_SRC:-.}/models/mobilenet_v2_1.0_224.safetensors" ]; then
    W="${NNMASK_SRC:-.}/models/mobilenet_v2_1.0_224.safetensors"
elif [ -d "${NNMASK_SHARED:-../shared}/weights/mobilenet_v2_1.0_224" ] && [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 "${NNMASK_SRC:-.}/weights/convert_mobilenetv2.py" -q -o "$T/mnv2.safetensors" \
        "${NNMASK_SHARED:-../shared}/weights/mobilenet_v2_1.0_224" > /dev/null 2>&1 && W="$T/mnv2.safetensors"
fi
if [ -n "$W" ]; then
    "$TRAIN" "$T/base.ini" output.dir="$T/runI" model.backbone="$W" model.alpha=1.0 augment.enabled=false \
        train.epochs=8 train.lr=1e-3 > "$T/runI.out" 2>&1
    check "[ $? -eq 0 ]" "ImageNet run failed: $(tail -3 "$T/runI.out")"
    acc=$(sed -n 's/.*"accuracy":[[:space:]]*\([0-9.e-]*\).*/\1/p' "$T/runI/metrics.json" | head -1)
    check "awk 'BEGIN{exit !($acc >= 0.9)}'" "ImageNet-backbone test accuracy $acc < 0.9 (chance 0.5)"
    echo "ImageNet backbone: $(grep 'test (' "$T/runI.out")"
else
    echo "note: no ImageNet MobileNetV2 weights (models/ or \$NNMASK_SHARED/weights): accuracy check skipped" >&2
fi
echo "test_train_e2e: $pass passed, $fail failed"
[ $fail -eq 0 ]
