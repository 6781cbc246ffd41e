#!/usr/bin/env bash
# Builds the safetensors fuzz target with clang's libFuzzer + ASan + UBSan and runs it
# for a bounded time over a scratch copy of the seed corpus (the source tree is never
# written). Exit 77 (meson's "skipped") when clang/libFuzzer/jansson is unavailable;
# exit 1 when the fuzzer finds a crash, a leak or undefined behaviour.
#   LS_FUZZ_SECONDS  run time (default 20)      CLANG  compiler (default clang)
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=${LS_SOURCE_ROOT:-$(cd "$here/../.." && pwd)}
build=${LS_BUILD_ROOT:-$root/build}
seconds=${LS_FUZZ_SECONDS:-20}
clang=${CLANG:-clang}

skip() { echo "SKIP: $*"; exit 77; }
command -v "$clang" >/dev/null 2>&1 || skip "$clang not found"
pkg-config --exists jansson 2>/dev/null || skip "jansson not found by pkg-config"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ls_fuzz_st.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# Can this clang link a libFuzzer binary at all? If not, skip rather than fail.
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$tmp/probe.c"
"$clang" -fsanitize=fuzzer,address,undefined "$tmp/probe.c" -o "$tmp/probe" >/dev/null 2>&1 ||
    skip "$clang cannot build libFuzzer targets (install libclang-rt-dev / compiler-rt)"

# From here on a failure is ours: the code must compile and survive.
# shellcheck disable=SC2046  # pkg-config output is meant to split into words
"$clang" -g -O1 -std=c17 -ffp-contract=off -D_DEFAULT_SOURCE \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$root" -I"$build" \
    "$root/tests/fuzz/fuzz_safetensors.c" "$root/engine/safetensors.c" "$root/engine/err.c" \
    $(pkg-config --cflags --libs jansson) -o "$tmp/fuzz_safetensors" || {
    echo "FAIL: could not build the fuzz target"; exit 1; }

mkdir -p "$tmp/corpus" "$tmp/artifacts"
cp "$root"/tests/fuzz/corpus/safetensors/* "$tmp/corpus/"

# Tokens of the format, so mutations stay near valid headers.
cat >"$tmp/dict" <<'DICT'
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"F32\""
"\"F16\""
"\"BF16\""
"\"F64\""
"\"I64\""
"\"BOOL\""
"\"F8_E4M3\""
"9223372036854775807"
"18446744073709551615"
"4294967296"
"-1"
"[]"
"{}"
DICT

UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
"$tmp/fuzz_safetensors" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=8192 -dict="$tmp/dict" -artifact_prefix="$tmp/artifacts/" \
    -print_final_stats=1 "$tmp/corpus" 2>"$tmp/log"
rc=$?
tail -n 40 "$tmp/log"
if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$tmp/artifacts")" ]; then
    echo "FAIL: fuzzer exit code $rc; crashing inputs (hex):"
    for f in "$tmp"/artifacts/*; do
        [ -e "$f" ] || continue
        echo "== $(basename "$f")"; od -A d -t x1 -v "$f" | head -n 40
    done
    echo "Add a crashing input to tests/fuzz/corpus/safetensors/ once fixed."
    exit 1
fi
echo "OK: fuzzed ${seconds}s with no findings"
