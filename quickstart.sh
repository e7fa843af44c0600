#!/usr/bin/env bash
# nnmask quick start: installs the dependencies, builds, gets the ImageNet
# MobileNetV2 weights and the face-mask dataset, trains the mask classifier
# with train/configs/mask.ini and prints the test scores, then (where the
# annotated street photos are, ../shared/data/street) trains the camera model
# that nnmask-detect and nnmask-live use (train/configs/camera.ini).
#   bash quickstart.sh                 # everything
#   SKIP_TRAIN=1 bash quickstart.sh    # set up and build only
#   SKIP_CAMERA=1 bash quickstart.sh   # no camera model
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)

echo "== 1/5 dependencies (apt)"
bash .ci/install-deps.sh

echo "== 2/5 build"
[ -d build ] || meson setup build
ninja -C build

echo "== 3/5 weights and data"
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

echo "== 4/5 train (train/configs/mask.ini)"
./build/apps/nnmask-train train/configs/mask.ini data.dir="$data" output.dir=runs/mask
echo
echo "report:  runs/mask/report.txt"
echo "metrics: runs/mask/metrics.json"
echo "plots:   runs/mask/curves.png runs/mask/confusion.png runs/mask/roc.png"
echo "model:   runs/mask/model.safetensors"

echo
echo "== 5/5 camera model (train/configs/camera.ini) for nnmask-detect and nnmask-live"
street="$root/../shared/data/street/ANNOTATIONS.csv"
if [ "${SKIP_CAMERA:-0}" = 1 ]; then
  echo "skipped (SKIP_CAMERA=1)"
elif [ -f "$street" ] && [ "$data" = "$root/../shared/data/mask" ]; then
  bash train/make_camera_model.sh build
  echo "camera model: models/camera.safetensors (runs/camera/report.txt, runs/camera/street_eval.json)"
  echo "try:          build/apps/nnmask-detect --out annotated/ PHOTO.jpg"
else
  echo "no annotated street photos ($street): the camera model needs them (see README,"
  echo "'A classifier for real cameras'); nnmask-detect and nnmask-live detect faces"
  echo "without a mask classifier until models/camera.safetensors exists"
fi
