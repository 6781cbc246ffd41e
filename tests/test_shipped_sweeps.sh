#!/usr/bin/env bash
# The two stories as shipped specs: each sweep runs, and its analysis and report name the
# lever and the threshold on their own (nothing in the check tells them what to find).
set -u
ROOT=${LS_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
LS=${LS_BUILD_ROOT:-$ROOT/build}/lockstep
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect() { grep -qF -- "$2" "$1" || fail "$(basename "$1"): missing '$2'"; }

"$LS" sweep "$ROOT/configs/sweeps/stale_slot.yaml" -j 2 -o "$T/stale.h5" >"$T/stale.out" 2>&1
[ $? -eq 1 ] || fail "stale_slot sweep: expected exit 1 (divergence found)"
expect "$T/stale.out" "rule: divergence only where a new request is granted one token (first_chunk == 1)"
expect "$T/stale.out" "lever: sched.max_batched_tokens"

"$LS" sweep "$ROOT/configs/sweeps/overflow.yaml" -j 2 -o "$T/overflow.h5" >"$T/overflow.out" 2>&1
[ $? -eq 1 ] || fail "overflow sweep: expected exit 1 (divergence found)"
expect "$T/overflow.out" "every divergent token came from a slot >= 47, none below"
expect "$T/overflow.out" "that threshold is ceil(2^18 / 5,600) = 47"
expect "$T/overflow.out" "lever: cache.memory_fraction"
expect "$T/overflow.out" "81 of 128 sequences diverged"

if /usr/bin/python3 -c 'import h5py, matplotlib' 2>/dev/null; then
  "$LS" report "$T/overflow.h5" -o "$T/rep" >/dev/null 2>&1 || fail "report failed"
  expect "$T/rep/index.html" "ceil(2^18 / 5,600) = 47"
  expect "$T/rep/index.html" "lever: cache.memory_fraction"
fi
echo "test_shipped_sweeps: $fails failures"
[ $fails -eq 0 ]
