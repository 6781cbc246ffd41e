#!/usr/bin/env bash
# lockstep analyse end to end (docs/analysis.md), on traces and sweeps built here in a few
# seconds from the planted-fault configs:
#  - narrow_state_offset.yaml (12-bit offsets, stride 1,024): the trace's rule is slot >= 4
#    and the analysis names 4 = ceil(2^12 / 1,024); a sweep over num_state_slots finds the
#    same threshold in every divergent point and names num_state_slots as the lever;
#  - decode_misclassified.yaml: the trace shows first_chunk == 1 among the conditions; with
#    debug_poison it is the rule, and a sweep over max_batched_tokens names the budget as the
#    lever;
#  - /analysis is written into the sweep file (atomically, no temporary left behind) and
#    read back; bad input is exit 2.
# Sweeps come from `lockstep sweep`, or, where that command is absent (or with
# LS_TEST_NO_SWEEP=1), are assembled from `lockstep run --trace` traces by
# tests/analyse/make_sweep.py (needs h5py).
set -u
ROOT=${LS_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
LS=${LS_BUILD_ROOT:-$ROOT/build}/lockstep
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect() {  # expect FILE PATTERN WHAT: fixed-string grep
  grep -qF -- "$2" "$1" || { fail "$3: '$2' not in output:"; sed 's/^/    /' "$1" | head -40; }
}

PY=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import h5py, numpy' 2>/dev/null; then PY=$p; break; fi
done

# make_sweep OUT SPEC_BASE [SET...] -- AXIS=V1,V2,...
make_sweep() {
  local out=$1 base=$2; shift 2
  local sets=() axes=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do sets+=("$1"); shift; done
  shift
  axes=("$@")
  if [ -z "${LS_TEST_NO_SWEEP:-}" ] && "$LS" sweep --help >/dev/null 2>&1; then
    {
      echo "base: $base"
      if [ ${#sets[@]} -gt 0 ]; then
        echo "set:"
        for s in "${sets[@]}"; do echo "  ${s%%=*}: ${s#*=}"; done
      fi
      echo "grid:"
      for a in "${axes[@]}"; do echo "  ${a%%=*}: [${a#*=}]"; done
    } >"$T/spec.yaml"
    "$LS" sweep "$T/spec.yaml" -j 2 -o "$out" >"$T/sweep.log" 2>&1
    local rc=$?
    [ $rc -le 1 ] || { fail "lockstep sweep exit $rc: $(tail -5 "$T/sweep.log")"; return 1; }
  elif [ -n "$PY" ]; then
    local args=()
    for s in "${sets[@]}"; do args+=(--set "$s"); done
    for a in "${axes[@]}"; do args+=(--axis "$a"); done
    "$PY" "$ROOT/tests/analyse/make_sweep.py" "$LS" "$base" "$out" -j 2 "${args[@]}" ||
      { fail "make_sweep.py failed"; return 1; }
  else
    echo "SKIP: neither lockstep sweep nor h5py to assemble a sweep"; exit 77
  fi
}

NARROW=$ROOT/configs/faults/narrow_state_offset.yaml
DECODE=$ROOT/configs/faults/decode_misclassified.yaml

# ---- traces --------------------------------------------------------------------------
"$LS" run "$NARROW" --trace "$T/narrow.h5" >/dev/null 2>&1
[ -f "$T/narrow.h5" ] || fail "narrow_state_offset: no trace written"
"$LS" analyse "$T/narrow.h5" >"$T/a.out" 2>&1; rc=$?
[ $rc -eq 0 ] || fail "analyse narrow trace: exit $rc"
expect "$T/a.out" "a sequence diverges iff slot >= 4" "narrow trace rule"
expect "$T/a.out" "that threshold is ceil(2^12 / 1,024) = 4" "narrow trace threshold arithmetic"
expect "$T/a.out" "a 12-bit offset overflow" "narrow trace names the overflow"
expect "$T/a.out" "share check: 4 of 8 sequences diverged" "narrow trace share check"
expect "$T/a.out" "divergence: 16 of 40 tokens" "narrow trace rate"
expect "$T/a.out" "onset: step 1" "narrow trace onset"

"$LS" run "$DECODE" --trace "$T/decode.h5" >/dev/null 2>&1
"$LS" analyse "$T/decode.h5" >"$T/a.out" 2>&1 || fail "analyse decode trace: exit $?"
expect "$T/a.out" "first_chunk == 1" "decode trace: first_chunk == 1 named"
expect "$T/a.out" "prev_tenant >= 0" "decode trace: the previous tenant named"

"$LS" run "$DECODE" --set cache.debug_poison=true --trace "$T/decode_p.h5" >/dev/null 2>&1
"$LS" analyse "$T/decode_p.h5" >"$T/a.out" 2>&1 || fail "analyse poisoned decode trace: exit $?"
expect "$T/a.out" "rule: divergence only where a new request is granted one token (first_chunk == 1)" \
  "decode trace with debug_poison: first_chunk == 1 is the rule"
expect "$T/a.out" "every divergent token has first_chunk == 1, no clean token does" \
  "decode trace with debug_poison: perfect separation"

"$LS" run "$ROOT/configs/default.yaml" --trace "$T/clean.h5" >/dev/null 2>&1
"$LS" analyse "$T/clean.h5" >"$T/a.out" 2>&1 || fail "analyse clean trace: exit $?"
expect "$T/a.out" "divergence: 0 of" "clean trace"

# ---- sweeps --------------------------------------------------------------------------
make_sweep "$T/narrow_sweep.h5" "$NARROW" -- cache.num_state_slots=2,4,6,8
"$LS" analyse --recompute "$T/narrow_sweep.h5" >"$T/s.out" 2>&1 || fail "analyse narrow sweep: exit $?"
expect "$T/s.out" "rule: divergence only where a sequence sits in a Mamba state slot >= 4" "narrow sweep rule"
expect "$T/s.out" "that threshold is ceil(2^12 / 1,024) = 4" "narrow sweep threshold arithmetic"
expect "$T/s.out" "lever: cache.num_state_slots" "narrow sweep lever"
expect "$T/s.out" "cache.num_state_slots >= 6 (none at 2, 4)" "narrow sweep lever values"
expect "$T/s.out" "cache.num_state_slots: structure" "narrow sweep axis effect"
ls -a "$T" | grep -q "analyse.tmp" && fail "a temporary file was left next to the sweep"
# printed again from the stored /analysis, identical
"$LS" analyse "$T/narrow_sweep.h5" >"$T/s2.out" 2>&1 || fail "analyse narrow sweep (stored): exit $?"
cmp -s "$T/s.out" "$T/s2.out" ||
  fail "stored /analysis verdict differs from the computed one"
if [ -n "$PY" ]; then
  "$PY" - "$T/narrow_sweep.h5" >"$T/py.out" 2>&1 <<'EOF' || { fail "/analysis content"; cat "$T/py.out"; }
import sys, h5py
f = h5py.File(sys.argv[1], "r")
a = f["analysis"]
assert a.attrs["lever"] == "cache.num_state_slots", a.attrs["lever"]
assert "ceil(2^12 / 1,024) = 4" in a.attrs["verdict_text"]
pts = a["points"][()]
assert list(pts.dtype.names) == ["index", "divergent_tokens", "tokens", "divergent_seqs", "seqs",
                                 "rate", "onset_step", "period", "rule", "threshold"], pts.dtype.names
assert len(pts) == 4
for p in pts:
    if p["divergent_tokens"] > 0:
        assert p["threshold"] == 4 and p["rule"] == b"slot >= 4", p
    else:
        assert p["threshold"] == -1 and p["rule"] == b"none", p
ax = a["axes"][()]
assert list(ax["axis"]) == [b"cache.num_state_slots"] and list(ax["effect"]) == [b"structure"], ax
EOF
fi

make_sweep "$T/decode_sweep.h5" "$DECODE" cache.debug_poison=true -- sched.max_batched_tokens=2,4,8
"$LS" analyse "$T/decode_sweep.h5" >"$T/s.out" 2>&1 || fail "analyse decode sweep: exit $?"
expect "$T/s.out" "rule: divergence only where a new request is granted one token (first_chunk == 1)" "decode sweep rule"
expect "$T/s.out" "lever: sched.max_batched_tokens" "decode sweep lever"
expect "$T/s.out" "sched.max_batched_tokens <= 2 (none at 4, 8)" "decode sweep lever values"
# --recompute rewrites the group; --no-write leaves the file alone
before=$(md5sum <"$T/decode_sweep.h5")
"$LS" analyse --no-write --recompute "$T/decode_sweep.h5" >/dev/null 2>&1 || fail "--no-write exit $?"
[ "$(md5sum <"$T/decode_sweep.h5")" = "$before" ] || fail "--no-write changed the file"
"$LS" analyse --recompute "$T/decode_sweep.h5" >"$T/s3.out" 2>&1 || fail "--recompute exit $?"
expect "$T/s3.out" "lever: sched.max_batched_tokens" "recomputed decode sweep lever"

# a shard is partial: analysed and printed, /analysis not written into it
if [ -z "${LS_TEST_NO_SWEEP:-}" ] && "$LS" sweep --help >/dev/null 2>&1; then
  printf 'base: %s\ngrid:\n  cache.num_state_slots: [2, 4, 6, 8]\n' "$NARROW" >"$T/shard.yaml"
  "$LS" sweep "$T/shard.yaml" --shard 2/2 -o "$T/shard.h5" >/dev/null 2>&1
  if [ -f "$T/shard.h5" ]; then
    before=$(md5sum <"$T/shard.h5")
    "$LS" analyse "$T/shard.h5" >"$T/s.out" 2>"$T/err" || fail "analyse of a shard: exit $?"
    expect "$T/s.out" "2 points of 4 (partial)" "shard analysis"
    grep -q "partial sweep" "$T/err" || fail "analyse of a shard: no 'partial sweep' note"
    [ "$(md5sum <"$T/shard.h5")" = "$before" ] || fail "analyse wrote /analysis into a shard"
  else
    fail "lockstep sweep --shard 2/2 wrote no file"
  fi
fi

# ---- bad input -----------------------------------------------------------------------
echo "not hdf5" >"$T/bad.h5"
"$LS" analyse "$T/bad.h5" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 2 ] || fail "analyse of a non-HDF5 file: exit $rc, expected 2"
grep -q "not an HDF5 file" "$T/err" || fail "analyse of a non-HDF5 file: message: $(cat "$T/err")"
"$LS" analyse "$T/missing.h5" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "analyse of a missing file: exit $rc, expected 2"
"$LS" analyse >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "analyse without a file: exit $rc, expected 2"

if [ $fails -gt 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "test_analyse: all checks passed"
