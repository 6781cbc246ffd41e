#!/usr/bin/env bash
# `lockstep sweep` and `lockstep merge` end to end on configs/sweeps/tiny.yaml (6 points:
# 3 ok, 2 divergent, 1 error):
#   (a) -j 2: exit 1, every point present with its trace datasets, no leftovers;
#   (b) SIGKILL of a -j 1 sweep once its first point is in the file, then --resume: the
#       same content as (a); leftover part files and temporary files are picked up or
#       removed on --resume;
#   (c) --shard 1/2 + 2/2, then merge: the same content as (a); overlapping inputs;
#   (d) errors (exit 2): unknown / ill-typed spec keys with SPEC:LINE:COL, an existing
#       output without --resume, --resume of another spec's file, merging different specs
#       or differing copies of a point.
set -uo pipefail
BUILD=${LS_BUILD_ROOT:?LS_BUILD_ROOT not set}
SRC=${LS_SOURCE_ROOT:?LS_SOURCE_ROOT not set}
LS="$BUILD/lockstep"
SPEC=$(realpath "$SRC/configs/sweeps/tiny.yaml")
BASE=$(realpath "$SRC/configs/default.yaml")
CMP="$SRC/tests/sweep_compare.py"
N=6
VERDICTS=ok,divergence,ok,divergence,ok,error

# h5py: the system python has it; a `python3` on PATH may be a shim without it
PY=
for p in /usr/bin/python3 python3; do
  if "$p" -c 'import h5py' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then echo "SKIP: no python3 with h5py"; exit 77; fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ls_sweep.XXXXXX") || exit 1
bgpid=
cleanup() { [ -n "$bgpid" ] && kill -9 "$bgpid" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
cd "$TMP" || exit 1

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
pass() { echo "ok  $*"; }

# npoints FILE: point groups in a results file (0 if absent)
npoints() {
  if command -v h5ls >/dev/null; then
    h5ls "$1/points" 2>/dev/null | grep -c '^p[0-9]'
  else
    "$PY" "$CMP" count "$1"
  fi
}

# expect_rc WANT DESC CMD...: runs CMD (stdout > out.txt, stderr > err.txt)
expect_rc() {
  local want=$1 desc=$2; shift 2
  "$@" >out.txt 2>err.txt
  local rc=$?
  if [ $rc -ne "$want" ]; then
    fail "$desc: exit $rc, want $want; stderr: $(tail -n 3 err.txt)"
    return 1
  fi
  return 0
}

# expect_error DESC PATTERN... -- CMD...: exit 2 and every PATTERN (grep -F) in stderr
expect_error() {
  local desc=$1; shift
  local pats=()
  while [ "$1" != "--" ]; do pats+=("$1"); shift; done
  shift
  expect_rc 2 "$desc" "$@" || return
  local p
  for p in "${pats[@]}"; do
    grep -qF -- "$p" err.txt || { fail "$desc: stderr lacks '$p': $(head -c 400 err.txt)"; return; }
  done
  pass "$desc: $(head -n 1 err.txt)"
}

# ---- (a) a whole sweep, two workers ------------------------------------------------------
if expect_rc 1 "sweep -j 2" "$LS" sweep "$SPEC" -j 2 -o A.h5; then
  "$PY" "$CMP" check A.h5 "$SPEC" $N $VERDICTS || fail "A.h5 layout"
  [ "$(grep -c '^point [0-9]*/6 p0000[0-5] ' err.txt)" -eq $N ] || fail "one progress line per point: $(cat err.txt)"
  grep -q '^sweep: 6 points: 3 ok, 2 divergent, 1 error .* -> A.h5$' out.txt || fail "summary line: $(cat out.txt)"
  [ -e A.h5.parts ] && fail "A.h5.parts left behind"
  ls -a | grep -q '\.tmp\.' && fail "temporary files left behind: $(ls -a)"
  pass "sweep -j 2: $(cat out.txt)"
fi
[ -f A.h5 ] || { echo "no A.h5; giving up" >&2; exit 1; }

# ---- (b) SIGKILL once the first point is in, then --resume -----------------------------
"$LS" sweep "$SPEC" -j 1 -o B.h5 >b1.out 2>b1.err &
bgpid=$!
t0=$SECONDS
# The sweep (the process that merges points into B.h5) runs in 10 ms slices and B.h5 is
# looked at only while it is stopped: a look (h5ls or Python) may take longer than the whole
# tiny sweep on a loaded machine, and polling a running sweep once let it finish between two
# looks. A point's worker takes far longer than one slice, so the kill lands with few points.
while kill -0 "$bgpid" 2>/dev/null && [ $((SECONDS - t0)) -lt 120 ]; do
  kill -STOP "$bgpid" 2>/dev/null
  [ "$(npoints B.h5)" -ge 1 ] && break
  kill -CONT "$bgpid" 2>/dev/null
  sleep 0.01
done
kill -9 "$bgpid" 2>/dev/null
wait "$bgpid" 2>/dev/null
bgpid=
have=$(npoints B.h5)
if [ "$have" -lt 1 ] || [ "$have" -ge $N ]; then
  fail "kill -9 should land with 1..$((N - 1)) points in B.h5, found $have ($(cat b1.err))"
else
  pass "killed with $have of $N points in B.h5"
fi
"$PY" "$CMP" count B.h5 >/dev/null || fail "B.h5 unreadable after SIGKILL"
if expect_rc 1 "sweep --resume" "$LS" sweep "$SPEC" -j 1 --resume -o B.h5; then
  grep -q "^resuming B.h5: $have of 6 points present" err.txt || fail "resume message: $(head -n 2 err.txt)"
  "$PY" "$CMP" check B.h5 "$SPEC" $N $VERDICTS || fail "B.h5 layout"
  "$PY" "$CMP" same A.h5 B.h5 && pass "killed + resumed == uninterrupted" || fail "A.h5 and B.h5 differ"
  [ -e B.h5.parts ] && fail "B.h5.parts left behind"
fi

# leftovers: a finished part file of a point the file lacks is merged, not rerun; stale
# temporary files are removed
cp A.h5 C.h5
"$PY" - <<'PY' || fail "preparing C.h5"
import h5py
with h5py.File("C.h5", "r+") as f:
    del f["points/p00002"]
PY
mkdir -p C.h5.parts
"$LS" run "$BASE" --set workload.prompts=3 --set 'faults.narrow_state_offset={enabled: false, bits: 16}' \
  --set cache.num_blocks=40 --set faults.fork_shares_slot=false --trace C.h5.parts/p00002.h5 >/dev/null 2>&1 ||
  fail "writing a part trace for p00002"
touch .C.h5.tmp.99999 C.h5.parts/.p00003.h5.tmp.123
if expect_rc 1 "resume with a leftover part" "$LS" sweep "$SPEC" --resume -o C.h5; then
  grep -q "^resuming C.h5: 5 of 6 points present" err.txt || fail "resume message: $(head -n 2 err.txt)"
  "$PY" "$CMP" same A.h5 C.h5 && pass "leftover part merged" || fail "A.h5 and C.h5 differ"
  [ -e .C.h5.tmp.99999 ] && fail "stale temporary file kept"
  [ -e C.h5.parts ] && fail "C.h5.parts left behind: $(ls -a C.h5.parts)"
fi
# --resume of a complete file: nothing to run, same content
expect_rc 1 "resume of a complete sweep" "$LS" sweep "$SPEC" --resume -o C.h5 &&
  { "$PY" "$CMP" same A.h5 C.h5 || fail "C.h5 changed by a no-op resume"; }

# ---- (c) shards and merge ------------------------------------------------------------------
expect_rc 0 "shard 1/2 (points 0, 2, 4: no divergence)" "$LS" sweep "$SPEC" --shard 1/2 -o S1.h5
expect_rc 1 "shard 2/2 (points 1, 3, 5)" "$LS" sweep "$SPEC" --shard 2/2 -j 2 -o S2.h5
"$PY" - <<'PY' || fail "shard files"
import h5py
for name, shard, pts in (("S1.h5", "1/2", ["p00000", "p00002", "p00004"]),
                         ("S2.h5", "2/2", ["p00001", "p00003", "p00005"])):
    with h5py.File(name, "r") as f:
        assert f.attrs["shard"] == shard, (name, f.attrs["shard"])
        assert int(f.attrs["n_points"]) == 6, name
        assert sorted(f["points"]) == pts, (name, sorted(f["points"]))
PY
if expect_rc 1 "merge of the shards" "$LS" merge M.h5 S1.h5 S2.h5; then
  grep -q '^merge: 2 files, 6 of 6 points: 3 ok, 2 divergent, 1 error -> M.h5$' out.txt || fail "merge line: $(cat out.txt)"
  "$PY" "$CMP" same A.h5 M.h5 && pass "shards merged == unsharded" || fail "A.h5 and M.h5 differ"
fi
expect_rc 1 "merge with overlapping identical points" "$LS" merge M2.h5 S2.h5 A.h5 S1.h5 &&
  { "$PY" "$CMP" same A.h5 M2.h5 || fail "A.h5 and M2.h5 differ"; }
expect_rc 0 "merge of one shard" "$LS" merge M3.h5 S1.h5 &&
  { grep -q '3 of 6 points' out.txt || fail "partial merge line: $(cat out.txt)"; }
expect_error "--resume with another shard" "holds shard '1/2'" -- "$LS" sweep "$SPEC" --shard 2/2 --resume -o S1.h5

# ---- (d) errors ----------------------------------------------------------------------------
printf 'base: %s\ngrid:\n  cache.num_blockz: [8, 16]\n' "$BASE" >bad_key.yaml
expect_error "unknown grid key" "bad_key.yaml:3:3:" "unknown key 'cache.num_blockz'" -- "$LS" sweep bad_key.yaml -o X.h5
[ -e X.h5 ] && fail "a bad spec created its output"
printf 'base: %s\ngrid:\n  cache.num_blocks: [8, abc]\n' "$BASE" >bad_value.yaml
expect_error "ill-typed grid value" "bad_value.yaml:3:25:" "cache.num_blocks" -- "$LS" sweep bad_value.yaml -o X.h5
printf 'base: %s\ngird:\n  cache.num_blocks: [8]\n' "$BASE" >bad_top.yaml
expect_error "unknown spec key" "bad_top.yaml:2:1:" "unknown key 'gird'" -- "$LS" sweep bad_top.yaml -o X.h5
printf 'base: %s\npoints: [{cache.num_blocks: 8}, 3]\n' "$BASE" >bad_point.yaml
expect_error "a point that is not a mapping" "bad_point.yaml:2:33:" -- "$LS" sweep bad_point.yaml -o X.h5
printf 'base: %s\ngrid:\n  cache.num_blocks: 8\n' "$BASE" >bad_axis.yaml
expect_error "a grid value that is not a list" "bad_axis.yaml:3:21:" "non-empty list" -- "$LS" sweep bad_axis.yaml -o X.h5
printf 'base: nowhere.yaml\n' >bad_base.yaml
expect_error "a missing base" "bad_base.yaml:1:7:" -- "$LS" sweep bad_base.yaml -o X.h5
expect_error "existing output without --resume" "A.h5: exists; use --resume" -- "$LS" sweep "$SPEC" -o A.h5
expect_error "bad --shard" "--shard" -- "$LS" sweep "$SPEC" --shard 3/2 -o X.h5
printf 'base: %s\nset: {workload.prompts: 2}\n' "$BASE" >other.yaml
expect_rc 0 "a one-point sweep (no grid, no points)" "$LS" sweep other.yaml &&
  { "$PY" "$CMP" check other.h5 other.yaml 1 ok || fail "other.h5 layout"; }
# a point whose run fails (its model does not load: relative to the spec's directory) is an
# error point with the worker's message; the sweep goes on and exits 0 (nothing diverged)
printf 'base: %s\nset: {workload.prompts: 2}\npoints:\n  - {model: nowhere}\n  - {}\n' "$BASE" >errs.yaml
if expect_rc 0 "a sweep with a failing point" "$LS" sweep errs.yaml -j 4; then
  "$PY" "$CMP" check errs.h5 errs.yaml 2 error,ok || fail "errs.h5 layout"
  grep -q "^point [12]/2 p00000 error (model=nowhere) .*: .*/nowhere" err.txt || fail "error point line: $(cat err.txt)"
  grep -q "^point [12]/2 p00001 ok (base) " err.txt || fail "base point line: $(cat err.txt)"
  pass "a failing point is an error point"
fi
expect_error "--resume of another spec's file" "A.h5: was written by a different spec" -- "$LS" sweep other.yaml --resume -o A.h5
expect_error "merge of different specs" "other.h5: comes from a different sweep spec" -- "$LS" merge X.h5 A.h5 other.h5
[ -e X.h5 ] && fail "a failed merge created its output"
cp A.h5 A2.h5
"$PY" - <<'PY' || fail "preparing A2.h5"
import h5py
with h5py.File("A2.h5", "r+") as f:
    f["points/p00000/summary"].attrs["tokens"] = 999
PY
expect_error "merge of differing copies of a point" "point p00000 differs between A.h5 and A2.h5" -- "$LS" merge X.h5 A.h5 A2.h5
"$LS" run "$BASE" --set workload.prompts=2 --trace T.h5 >/dev/null 2>&1 || fail "lockstep run --trace T.h5"
expect_error "merge of a trace (not a sweep)" "T.h5: not a lockstep sweep results file" -- "$LS" merge X.h5 A.h5 T.h5

if [ $fails -ne 0 ]; then
  echo "$fails failure(s)" >&2
  exit 1
fi
echo "all sweep checks passed"
