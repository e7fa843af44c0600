# fetch_lib.sh — sourced by the fetch scripts: temp-file cleanup, sha256, and
# one verified download (temp file beside the target, checked, then renamed).

TMPFILES=()
fetch_cleanup() { for f in "${TMPFILES[@]+"${TMPFILES[@]}"}"; do rm -f -- "$f"; done; }
trap fetch_cleanup EXIT
trap 'exit 130' INT TERM

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# fetch_file TAG URL OUT WANT: downloads URL into OUT. WANT is the expected
# sha256 (empty: any content). OUT is only ever replaced by a complete file
# whose sha256 matched. On failure prints what could not be fetched and where
# to place it by hand, and returns 1.
fetch_file() {
    local tag="$1" url="$2" out="$3" want="$4" tmp got ok=0
    mkdir -p "$(dirname "$out")"
    tmp="$out.part.$$"
    TMPFILES+=("$tmp")
    echo "$tag: downloading $url"
    if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 2 --connect-timeout 20 -o "$tmp" "$url" && ok=1
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$tmp" "$url" && ok=1
    else
        "${PY:-python3}" -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
            "$url" "$tmp" && ok=1
    fi
    if [ "$ok" != 1 ] || [ ! -s "$tmp" ]; then
        rm -f -- "$tmp"
        cat >&2 <<MSG
$tag: could not download
    $url
  (offline?). Download it on a machine with internet access and place it at
    $out
  then run this script again${want:+; its sha256 must be $want}.
MSG
        return 1
    fi
    got="$(sha256_of "$tmp")"
    if [ -n "$want" ] && [ "$got" != "$want" ]; then
        rm -f -- "$tmp"
        echo "$tag: $url: sha256 $got, expected $want (file discarded)" >&2
        return 1
    fi
    mv -f -- "$tmp" "$out"
}
