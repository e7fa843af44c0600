#!/bin/sh
# make_camera_model.sh — trains the camera classifier (train/configs/camera.ini) and
# installs it as models/camera.safetensors, the default model of nnmask-detect and nnmask-live.
#
# usage: train/make_camera_model.sh [BUILD_DIR] [section.key=value ...]
#   BUILD_DIR   meson build folder with apps/nnmask-train (default: build)
#   overrides   passed to nnmask-train (e.g. train.threads=4)
# Run from the project root. Needs models/mobilenet_v2_1.0_224.safetensors
# (weights/fetch_weights.sh) and the data of camera.ini (../shared/data/mask and
# ../shared/data/street, or the same folders fetched by train/fetch_dataset.sh).
# The run goes to runs/camera (model, metrics.json, report.txt, plots, split.csv);
# the model is then copied to models/camera.safetensors atomically (temp file +
# rename), so an app starting meanwhile sees the old model or the new one, never
# half a file. With the street data and a built nnmask-detect it also scores the
# held-out street photos end to end (train/eval_street.py -> runs/camera/street_eval.json).
set -eu
BUILD=build
if [ $# -gt 0 ] && [ -d "$1" ]; then
    BUILD=$1
    shift
fi
TRAIN="$BUILD/apps/nnmask-train"
if [ ! -x "$TRAIN" ]; then
    echo "make_camera_model.sh: $TRAIN not found: build first (meson setup $BUILD && ninja -C $BUILD)" >&2
    exit 2
fi
OUT=runs/camera
"$TRAIN" train/configs/camera.ini output.dir="$OUT" "$@"
mkdir -p models
cp "$OUT/model.safetensors" models/.camera.safetensors.tmp
mv -f models/.camera.safetensors.tmp models/camera.safetensors
echo "installed $OUT/model.safetensors as models/camera.safetensors"

if [ -x "$BUILD/apps/nnmask-detect" ] && [ -x /usr/bin/python3 ] &&
   [ -f "${NNMASK_SHARED:-../shared}/data/street/ANNOTATIONS.csv" ]; then
    /usr/bin/python3 train/eval_street.py "$OUT" --build "$BUILD" ||
        echo "make_camera_model.sh: note: the street evaluation failed (detector weights missing? see weights/README)" >&2
fi
