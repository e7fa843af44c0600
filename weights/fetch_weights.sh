#!/bin/bash
# fetch_weights.sh — gets the pre-trained weights nnmask needs and converts them into models/:
# ImageNet MobileNetV2 (from ../shared when present, else the official Keras HDF5 files).
#
# usage: weights/fetch_weights.sh [options] [mobilenetv2|ultraface|all]   (default: mobilenetv2)
#   --alpha A      Keras width multiplier: 0.35 0.5 0.75 1.0 1.3 1.4 (default 1.0)
#   --size S       Keras input size: 96 128 160 192 224 (default 224)
#   --keras        download the Keras files even when ../shared has the weights
#   --dest DIR     output folder (default $NNMASK_MODELS, else <repo>/models)
#
# MobileNetV2 from ../shared (developer checkouts, CI): converts
#   ../shared/weights/mobilenet_v2_1.0_224 (+ imagenet_head, the 1001-way head)
#   -> DEST/mobilenet_v2_1.0_224.safetensors, labels -> DEST/imagenet_labels.txt
# MobileNetV2 from the internet (a user's machine): downloads into DEST/keras/
#   mobilenet_v2_weights_tf_dim_ordering_tf_kernels_A_S.h5        (with the 1000-way top)
#   mobilenet_v2_weights_tf_dim_ordering_tf_kernels_A_S_no_top.h5
#   imagenet_class_index.json                                     (class names)
# checks each file's sha256 (pinned below; a file without a pinned value is
# recorded in DEST/keras/SHA256SUMS on its first download and checked against
# that record from then on), then converts:
#   with top -> DEST/mobilenet_v2_A_S.safetensors (head written as 1001 rows,
#               row 0 "background" never chosen), no_top -> ..._no_top.safetensors
# Downloads go to a temporary file that is renamed only when complete and
# verified: an interrupted or offline run never leaves a half-written file.
# Exit status: 0 done, 1 a download/check/conversion failed (the message says
# which file and where to put it by hand).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${NNMASK_PYTHON:-/usr/bin/python3}"
[ -x "$PY" ] || PY=python3
SHARED="${NNMASK_SHARED:-$ROOT/../shared}"
# (overridable for mirrors and tests)
KERAS_BASE="${NNMASK_KERAS_BASE:-https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2}"
CLASS_INDEX_URL="${NNMASK_CLASS_INDEX_URL:-https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json}"

# Pinned sha256 of the official files ("name sha256" lines). None are known to
# this project yet: keras.applications itself does not pin them. Add them here
# once verified on a trusted connection.
PINNED_SHA256=""

ALPHA=1.0
SIZE=224
FORCE_KERAS=0
DEST="${NNMASK_MODELS:-$ROOT/models}"
WHAT=mobilenetv2

die() { echo "fetch_weights: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --alpha) ALPHA="${2:?--alpha needs a value}"; shift 2 ;;
        --size) SIZE="${2:?--size needs a value}"; shift 2 ;;
        --keras) FORCE_KERAS=1; shift ;;
        --dest) DEST="${2:?--dest needs a value}"; shift 2 ;;
        -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        mobilenetv2|ultraface|all) WHAT="$1"; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
case "$ALPHA" in 0.35|0.5|0.75|1.0|1.3|1.4) ;; *) die "alpha $ALPHA: use 0.35 0.5 0.75 1.0 1.3 1.4" ;; esac
case "$SIZE" in 96|128|160|192|224) ;; *) die "size $SIZE: use 96 128 160 192 224" ;; esac

# shellcheck source=fetch_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/fetch_lib.sh"

# The expected sha256 of a file name: pinned, else recorded at first download.
expected_sha() {
    local name="$1" rec="$DEST/keras/SHA256SUMS" line
    line="$(printf '%s\n' "$PINNED_SHA256" | awk -v n="$name" '$1 == n {print $2}')"
    if [ -z "$line" ] && [ -f "$rec" ]; then
        line="$(awk -v n="$name" '$2 == n || $2 == "*"n {print $1}' "$rec")"
    fi
    printf '%s' "$line"
}

record_sha() {   # appends "sha  name" to DEST/keras/SHA256SUMS atomically
    local name="$1" sha="$2" rec="$DEST/keras/SHA256SUMS" tmp
    tmp="$rec.tmp.$$"
    TMPFILES+=("$tmp")
    { [ -f "$rec" ] && grep -v "  $name\$" "$rec" || true; echo "$sha  $name"; } > "$tmp"
    mv -f "$tmp" "$rec"
}

download() {   # download URL FILE: temp file, verify, rename
    local url="$1" out="$2" name want got
    name="$(basename "$out")"
    want="$(expected_sha "$name")"
    if [ -f "$out" ]; then
        got="$(sha256_of "$out")"
        if [ -z "$want" ] || [ "$got" = "$want" ]; then
            echo "fetch_weights: $name present${want:+ (sha256 ok)}"
            [ -n "$want" ] || record_sha "$name" "$got"
            return 0
        fi
        echo "fetch_weights: $out has sha256 $got, expected $want: downloading again" >&2
    fi
    fetch_file fetch_weights "$url" "$out" "$want" || return 1
    got="$(sha256_of "$out")"
    if [ -z "$want" ]; then
        record_sha "$name" "$got"
        echo "fetch_weights: $name: no pinned sha256; recorded $got in $DEST/keras/SHA256SUMS"
    fi
}

labels_from_keras_index() {   # imagenet_class_index.json -> 1001 lines, background first
    "$PY" - "$1" "$2" <<'EOF'
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
idx = json.load(open(src))
names = [idx[str(i)][1].replace("_", " ") for i in range(1000)]
tmp = "%s.tmp.%d" % (out, os.getpid())
with open(tmp, "w") as f:
    f.write("background\n" + "".join(n + "\n" for n in names))
os.replace(tmp, out)
EOF
}

copy_atomic() {
    local tmp="$2.tmp.$$"
    TMPFILES+=("$tmp")
    cat -- "$1" > "$tmp" && mv -f -- "$tmp" "$2"
}

fetch_mobilenetv2() {
    local conv="$HERE/convert_mobilenetv2.py"
    mkdir -p "$DEST"
    local sw="$SHARED/weights/mobilenet_v2_1.0_224"
    if [ "$FORCE_KERAS" = 0 ] && [ "$ALPHA" = 1.0 ] && [ "$SIZE" = 224 ] && [ -d "$sw" ]; then
        echo "fetch_weights: converting $sw (../shared)"
        "$PY" "$conv" "$sw" --imagenet-head "$sw/imagenet_head" \
            -o "$DEST/mobilenet_v2_1.0_224.safetensors"
        copy_atomic "$SHARED/data/imagenet/labels.txt" "$DEST/imagenet_labels.txt"
        return 0
    fi
    local stem="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_${ALPHA}_${SIZE}"
    local kd="$DEST/keras" failed=0
    download "$KERAS_BASE/$stem.h5" "$kd/$stem.h5" || failed=1
    download "$KERAS_BASE/${stem}_no_top.h5" "$kd/${stem}_no_top.h5" || failed=1
    download "$CLASS_INDEX_URL" "$kd/imagenet_class_index.json" || failed=1
    [ "$failed" = 0 ] || exit 1
    "$PY" "$conv" "$kd/$stem.h5" -o "$DEST/mobilenet_v2_${ALPHA}_${SIZE}.safetensors"
    "$PY" "$conv" "$kd/${stem}_no_top.h5" -o "$DEST/mobilenet_v2_${ALPHA}_${SIZE}_no_top.safetensors"
    labels_from_keras_index "$kd/imagenet_class_index.json" "$DEST/imagenet_labels.txt"
}

# Hook for the face detector: its own script (owned by the detector code)
# converts ../shared/weights/ultraface or downloads the public originals.
fetch_ultraface() {
    if [ -x "$HERE/fetch_ultraface.sh" ]; then
        NNMASK_MODELS="$DEST" NNMASK_SHARED="$SHARED" "$HERE/fetch_ultraface.sh"
    else
        die "UltraFace: weights/fetch_ultraface.sh is not part of this checkout"
    fi
}

case "$WHAT" in
    mobilenetv2) fetch_mobilenetv2 ;;
    ultraface) fetch_ultraface ;;
    all) fetch_mobilenetv2; fetch_ultraface ;;
esac
echo "fetch_weights: done ($DEST)"
