#!/bin/sh
# run.sh — builds the libFuzzer targets with clang (ASan + UBSan, UB is fatal) in their own
# build dir, writes a seed corpus of small valid files, and fuzzes each target for a while.
# usage: [FUZZ_SEED=N] tests/fuzz/run.sh [SECONDS_PER_TARGET=30] [BUILD_DIR=build-fuzz]
# FUZZ_SEED fixes libFuzzer's random seed (CI does, so a run is repeatable).
# Exit status is non-zero if a target crashes; crashing inputs land in BUILD_DIR/fuzz-artifacts.
set -eu
secs=${1:-30}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$src/build-fuzz}
case $build in /*) ;; *) build=$src/$build ;; esac

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$src" -Dfuzz=true -Db_sanitize=address,undefined \
        -Db_lundef=false -Dbuildtype=debugoptimized -Dlive=disabled
fi
ninja -C "$build" tests/fuzz/fuzz_image tests/fuzz/fuzz_safetensors tests/fuzz/make_seeds

corpus=$build/fuzz-corpus
artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"
"$build/tests/fuzz/make_seeds" "$corpus/image" "$corpus/safetensors"
# a few small real photos (JPEG progressive/EXIF, palette PNG, WebP) when the data is here
shared=${NNMASK_SHARED:-$src/../shared}
if [ -d "$shared/data/mask" ]; then
    find "$shared/data/mask" -type f \( -name '*.jpg' -o -name '*.png' -o -name '*.webp' \) \
        -size -12k | sort | head -n 6 | while read -r f; do
        cp "$f" "$corpus/image/real-$(basename "$f")"
    done
fi

status=0
for t in image safetensors; do
    echo "== fuzz_$t: ${secs}s, $(ls "$corpus/$t" | wc -l) files in the corpus"
    log=$build/fuzz-$t.log
    # UBSan is fatal (-fno-sanitize-recover at compile time); print the stack on UB.
    if UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
       "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" ${FUZZ_SEED:+-seed="$FUZZ_SEED"} \
           -timeout=10 -rss_limit_mb=3072 \
           -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
           "$corpus/$t" >"$log" 2>&1; then
        echo "fuzz_$t: no crash"
    else
        echo "fuzz_$t: CRASH (see $log and $artifacts)"
        tail -n 40 "$log"
        status=1
    fi
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+ *DONE' \
        "$log" || true
done
exit $status
