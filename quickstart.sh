#!/usr/bin/env bash
# nnmask quick start: installs the dependencies, builds, gets the ImageNet
# MobileNetV2 weights and the face-mask dataset, trains the mask classifier
# with train/configs/mask.ini and prints the test scores.
#   bash quickstart.sh            # everything
#   SKIP_TRAIN=1 bash quickstart.sh   # set up and build only
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)

echo "== 1/4 dependencies (apt)"
bash .ci/install-deps.sh

echo "== 2/4 build"
[ -d build ] || meson setup build
ninja -C build

echo "== 3/4 weights and data"
bash weights/fetch_weights.sh all
data=""
if [ -d "$root/../shared/data/mask/with_mask" ]; then
  data="$root/../shared/data/mask"
  echo "using the face-mask dataset in $data"
else
  bash train/fetch_dataset.sh
  data="$root/data/mask"
fi

if [ "${SKIP_TRAIN:-0}" = 1 ]; then echo "setup done (SKIP_TRAIN=1)"; exit 0; fi

echo "== 4/4 train (train/configs/mask.ini)"
./build/apps/nnmask-train train/configs/mask.ini data.dir="$data" output.dir=runs/mask
echo
echo "report:  runs/mask/report.txt"
echo "metrics: runs/mask/metrics.json"
echo "plots:   runs/mask/curves.png runs/mask/confusion.png runs/mask/roc.png"
echo "model:   runs/mask/model.safetensors"
