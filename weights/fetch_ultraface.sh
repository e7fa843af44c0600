#!/bin/bash
# fetch_ultraface.sh — gets the UltraFace face detector (Linzaer's
# Ultra-Light-Fast-Generic-Face-Detector-1MB, MIT) and converts it for nnmask:
#   DEST/ultraface-RFB-320.safetensors    (the apps' default detector: finds more faces)
#   DEST/ultraface-slim-320.safetensors   (--detector option; the default where RFB is absent)
#
# usage: weights/fetch_ultraface.sh [--download] [--dest DIR] [slim|RFB|all]  (default all)
#   --download   fetch the public ONNX files even when ../shared has them
#   --dest DIR   output folder (default $NNMASK_MODELS, else <repo>/models)
#
# Source: ../shared/weights/ultraface/onnx/ when present (checked against its
# SHA256SUMS by the converter), else the public files of
#   github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB
#   models/onnx/version-{slim,RFB}-320_without_postprocessing.onnx
# downloaded into DEST/ultraface/ and checked against the sha256 pinned below.
# Downloads go to a temporary file renamed only when complete and verified:
# an interrupted or offline run never leaves a half-written file.
# Needs python3-onnx and python3-numpy (Debian) for the conversion.
# Exit status: 0 done, 1 a download/check/conversion failed (the message says
# which file and where to put it by hand).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${NNMASK_PYTHON:-/usr/bin/python3}"
[ -x "$PY" ] || PY=python3
SHARED="${NNMASK_SHARED:-$ROOT/../shared}"
DEST="${NNMASK_MODELS:-$ROOT/models}"
BASE="${NNMASK_ULTRAFACE_BASE:-https://raw.githubusercontent.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/master/models/onnx}"
FORCE=0
WHAT=all

# sha256 of the public files (the same files as ../shared/weights/ultraface)
declare -A SHA=(
    [slim]=6e12bb34a36eb17b86d2b76b79c9cd20f342a59ee737d2123a814ce6f532932b
    [RFB]=d7c687949526065ab6a192fdf993360045ce27b0fabf7c9fca5c2437b786b495
)

die() { echo "fetch_ultraface: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --download) FORCE=1; shift ;;
        --dest) DEST="${2:?--dest needs a value}"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        slim|RFB|all) WHAT="$1"; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# shellcheck source=fetch_lib.sh
. "$HERE/fetch_lib.sh"

"$PY" -c 'import onnx, numpy' 2>/dev/null ||
    die "$PY cannot import onnx and numpy (apt-get install python3-onnx python3-numpy)"

download() {   # download URL FILE SHA256: temp file, verify, rename
    local url="$1" out="$2" want="$3"
    if [ -f "$out" ] && [ "$(sha256_of "$out")" = "$want" ]; then
        echo "fetch_ultraface: $(basename "$out") present (sha256 ok)"
        return 0
    fi
    fetch_file fetch_ultraface "$url" "$out" "$want"
}

fetch_one() {   # slim | RFB
    local v="$1" name="version-$1-320_without_postprocessing.onnx" onnx
    local out="$DEST/ultraface-$v-320.safetensors"
    mkdir -p "$DEST"
    if [ "$FORCE" = 0 ] && [ -f "$SHARED/weights/ultraface/onnx/$name" ]; then
        onnx="$SHARED/weights/ultraface/onnx/$name"
        echo "fetch_ultraface: converting $onnx (../shared)"
        "$PY" "$HERE/convert_ultraface.py" "$onnx" "$out"
    else
        onnx="$DEST/ultraface/$name"
        download "$BASE/$name" "$onnx" "${SHA[$v]}" || return 1
        "$PY" "$HERE/convert_ultraface.py" "$onnx" "$out" --sha256 "${SHA[$v]}"
    fi
}

failed=0
case "$WHAT" in
    slim|RFB) fetch_one "$WHAT" || failed=1 ;;
    all) fetch_one slim || failed=1; fetch_one RFB || failed=1 ;;
esac
[ "$failed" = 0 ] || exit 1
echo "fetch_ultraface: done ($DEST)"
