#!/usr/bin/env bash
# Downloads the public face-mask dataset (github.com/chandrikadeb7/Face-Mask-Detection,
# folder dataset/, MIT licence) into data/mask/{with_mask,without_mask}.
# Where ../shared/data/mask exists (as on the project's machines) nothing is
# downloaded. Offline, it says what it could not fetch and where to put it.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-data/mask}
url="https://github.com/chandrikadeb7/Face-Mask-Detection/archive/refs/heads/master.zip"

if [ -d "$dest/with_mask" ] && [ -d "$dest/without_mask" ]; then
  echo "dataset already present in $dest"; exit 0
fi
if [ -d ../shared/data/mask/with_mask ]; then
  echo "dataset available in ../shared/data/mask (nothing to download)"; exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading $url"
if ! curl -fL --retry 2 --connect-timeout 15 -o "$tmp/ds.zip" "$url"; then
  cat >&2 <<MSG
fetch_dataset: could not download the face-mask dataset from
  $url
Download that archive by hand (or any folder with with_mask/ and without_mask/
images) and unpack its dataset/ folder so that these exist:
  $(pwd)/$dest/with_mask/
  $(pwd)/$dest/without_mask/
MSG
  exit 1
fi
command -v unzip >/dev/null || { echo "fetch_dataset: needs unzip (apt-get install unzip)" >&2; exit 1; }
unzip -q "$tmp/ds.zip" -d "$tmp/x"
src=$(find "$tmp/x" -maxdepth 2 -type d -name dataset | head -n1)
[ -n "$src" ] && [ -d "$src/with_mask" ] || { echo "fetch_dataset: archive has no dataset/with_mask" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial"
cp -r "$src" "$dest.partial"
mv "$dest.partial" "$dest"
echo "dataset in $dest: $(ls "$dest/with_mask" | wc -l) with_mask, $(ls "$dest/without_mask" | wc -l) without_mask"
