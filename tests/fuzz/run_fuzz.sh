#!/usr/bin/env bash
# Builds a fuzz target with clang's libFuzzer + ASan + UBSan and runs it for a bounded
# time over a scratch copy of its seed corpus (the source tree is never written).
#   run_fuzz.sh [TARGET]   TARGET: safetensors (default) | config
# tests/fuzz/fuzz_TARGET.c is the entry point, tests/fuzz/corpus/TARGET/ the seeds.
# Exit 77 (meson's "skipped") when clang/libFuzzer/a library is unavailable;
# exit 1 when the fuzzer finds a crash, a leak or undefined behaviour.
#   LS_FUZZ_SECONDS  run time (default 20)      CLANG  compiler (default clang)
set -u

target=${1:-safetensors}
case "$target" in
safetensors)
    sources="engine/safetensors.c engine/err.c"
    pkgs="jansson"
    max_len=8192 ;;
config)
    # config.c and what it links: fault and slot-policy names, precision names
    # (weights.c, which pulls the checkpoint reader), engine config defaults, sampling check.
    sources="harness/config.c engine/err.c engine/faults.c engine/state_pool.c engine/weights.c
             engine/checkpoint.c engine/safetensors.c engine/model_config.c engine/engine_config.c
             engine/sampler.c engine/philox.c engine/read_file.c"
    pkgs="jansson yaml-0.1"
    max_len=4096 ;;
*) echo "run_fuzz.sh: unknown target '$target' (safetensors | config)"; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
root=${LS_SOURCE_ROOT:-$(cd "$here/../.." && pwd)}
build=${LS_BUILD_ROOT:-$root/build}
seconds=${LS_FUZZ_SECONDS:-20}
clang=${CLANG:-clang}

skip() { echo "SKIP: $*"; exit 77; }
command -v "$clang" >/dev/null 2>&1 || skip "$clang not found"
for p in $pkgs; do pkg-config --exists "$p" 2>/dev/null || skip "$p not found by pkg-config"; done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ls_fuzz_$target.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# Can this clang link a libFuzzer binary at all? If not, skip rather than fail.
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$tmp/probe.c"
"$clang" -fsanitize=fuzzer,address,undefined "$tmp/probe.c" -o "$tmp/probe" >/dev/null 2>&1 ||
    skip "$clang cannot build libFuzzer targets (install libclang-rt-dev / compiler-rt)"

# From here on a failure is ours: the code must compile and survive.
src_paths=""
for f in $sources; do src_paths="$src_paths $root/$f"; done
# shellcheck disable=SC2046,SC2086  # pkg-config output and the source list split into words
"$clang" -g -O1 -std=c17 -ffp-contract=off -D_DEFAULT_SOURCE \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$root" -I"$build" \
    "$root/tests/fuzz/fuzz_$target.c" $src_paths \
    $(pkg-config --cflags --libs $pkgs) -lm -o "$tmp/fuzz_$target" || {
    echo "FAIL: could not build the fuzz target"; exit 1; }

mkdir -p "$tmp/corpus" "$tmp/artifacts"
cp "$root"/tests/fuzz/corpus/"$target"/* "$tmp/corpus/"

# Tokens of the format, so mutations stay near valid inputs.
if [ "$target" = config ]; then
cat >"$tmp/dict" <<'DICT'
"model:"
"precision:"
"backend:"
"mode:"
"cache:"
"sched:"
"workload:"
"faults:"
"compare:"
"output:"
"block_size:"
"num_blocks:"
"num_state_slots:"
"slot_stride:"
"num_snapshots:"
"memory_budget_mb:"
"memory_fraction:"
"slot_policy:"
"slot_seed:"
"prefix_caching:"
"debug_poison:"
"max_num_seqs:"
"max_batched_tokens:"
"max_chunk:"
"pad_decode_to:"
"max_steps:"
"seed:"
"prompts:"
"prompt_len:"
"shared_prefix:"
"prefix_groups:"
"rollouts:"
"max_new_tokens:"
"arrival:"
"arrival_every:"
"temperature:"
"top_k:"
"top_p:"
"prompts_file:"
"narrow_state_offset"
"fork_shares_slot"
"enabled:"
"bits:"
"max_abs:"
"max_divergent_frac:"
"probe_layers:"
"trace:"
"report:"
"cache.num_blocks="
"faults.narrow_state_offset.bits="
"workload.prompt_len="
"true"
"false"
"null"
"fp32"
"stagger"
"random"
"9223372036854775807"
"18446744073709551615"
"1e308"
"0.5"
"-1"
"[4, 9]"
"{}"
"\x0a  "
"---"
"&a"
"*a"
"!!str"
"\\u00e9"
DICT
else
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
fi

UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
"$tmp/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="$max_len" -dict="$tmp/dict" -artifact_prefix="$tmp/artifacts/" \
    -print_final_stats=1 "$tmp/corpus" 2>"$tmp/log"
rc=$?
tail -n 40 "$tmp/log"
if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$tmp/artifacts")" ]; then
    echo "FAIL: fuzzer exit code $rc; crashing inputs (hex):"
    for f in "$tmp"/artifacts/*; do
        [ -e "$f" ] || continue
        echo "== $(basename "$f")"; od -A d -t x1 -v "$f" | head -n 40
    done
    echo "Add a crashing input to tests/fuzz/corpus/$target/ once fixed."
    exit 1
fi
echo "OK: fuzzed ${seconds}s with no findings"
