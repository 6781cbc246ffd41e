#!/usr/bin/env bash
# lockstep report end to end (reports/README.md): a trace and a sweep each become
# DIR/index.html with its plots; every image the page references exists next to it, is a
# PNG (magic bytes) of non-trivial size and is also embedded in the page; the analysis'
# verdict text is in the page; bad input is exit 2. Skips (77) only when no python3 has
# h5py, numpy and matplotlib.
set -u
ROOT=${LS_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
LS=${LS_BUILD_ROOT:-$ROOT/build}/lockstep
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

PY=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 &&
     "$p" -c 'import h5py, numpy, matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot' 2>/dev/null; then
    PY=$p; break
  fi
done
[ -n "$PY" ] || { echo "SKIP: no python3 with h5py, numpy and matplotlib"; exit 77; }

# check_page DIR MIN_IMAGES TEXT...: the page, its images, and the given texts in it
check_page() {
  local dir=$1 min=$2; shift 2
  local page=$dir/index.html
  [ -s "$page" ] || { fail "$dir: no index.html"; return; }
  grep -q '<!DOCTYPE html>' "$page" || fail "$page: not an HTML document"
  local imgs
  imgs=$(grep -o 'data-file="[^"]*\.png"' "$page" | sed 's/data-file="//; s/"$//' | sort -u)
  local n=0
  for img in $imgs; do
    n=$((n + 1))
    local f=$dir/$img
    [ -f "$f" ] || { fail "$page references $img, which is missing"; continue; }
    grep -q "href=\"$img\"" "$page" || fail "$page does not link $img"
    [ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] ||
      fail "$f is not a PNG (magic bytes)"
    local size
    size=$(stat -c %s "$f")
    [ "$size" -gt 5000 ] || fail "$f is only $size bytes"
  done
  [ $n -ge "$min" ] || fail "$page references $n images, expected at least $min"
  local emb
  emb=$(grep -o 'src="data:image/png;base64,' "$page" | wc -l)
  [ "$emb" -eq "$n" ] || fail "$page embeds $emb images but references $n"
  for text in "$@"; do
    grep -qF -- "$text" "$page" || fail "$page: '$text' not in the page"
  done
}

# ---- a trace -------------------------------------------------------------------------
"$LS" run "$ROOT/configs/faults/narrow_state_offset.yaml" --trace "$T/t.h5" >/dev/null 2>&1
"$LS" report "$T/t.h5" -o "$T/rt" >"$T/out" 2>&1; rc=$?
[ $rc -eq 0 ] || { fail "report of a trace: exit $rc"; cat "$T/out"; }
grep -q "report: $T/rt/index.html" "$T/out" || fail "report did not name its page: $(cat "$T/out")"
for img in heatmap.png delta_hist.png slot.png step.png; do
  [ -f "$T/rt/$img" ] || fail "trace report: $img missing"
done
# the verdict of lockstep analyse, HTML-escaped (">=" is "&gt;=")
check_page "$T/rt" 4 "that threshold is ceil(2^12 / 1,024) = 4" \
  "a sequence diverges iff slot &gt;= 4" "divergence: 16 of 40 tokens"

# ---- a sweep -------------------------------------------------------------------------
if "$LS" sweep --help >/dev/null 2>&1; then
  printf 'base: %s\ngrid:\n  cache.num_state_slots: [2, 4, 6, 8]\n' \
    "$ROOT/configs/faults/narrow_state_offset.yaml" >"$T/spec.yaml"
  "$LS" sweep "$T/spec.yaml" -j 2 -o "$T/s.h5" >"$T/sweep.log" 2>&1
else
  "$PY" "$ROOT/tests/analyse/make_sweep.py" "$LS" "$ROOT/configs/faults/narrow_state_offset.yaml" \
    "$T/s.h5" --axis cache.num_state_slots=2,4,6,8 >"$T/sweep.log" 2>&1
fi
[ -f "$T/s.h5" ] || { fail "no sweep file: $(tail -5 "$T/sweep.log")"; }
"$LS" report "$T/s.h5" -o "$T/rs" >"$T/out" 2>&1; rc=$?
[ $rc -eq 0 ] || { fail "report of a sweep: exit $rc"; cat "$T/out"; }
for img in grid.png onset.png threshold.png; do
  [ -f "$T/rs/$img" ] || fail "sweep report: $img missing"
done
check_page "$T/rs" 3 "lever: cache.num_state_slots" "that threshold is ceil(2^12 / 1,024) = 4"

# a sweep without /analysis: the report computes it first
"$PY" - "$T/s.h5" <<'EOF' || fail "could not drop /analysis"
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    del f["analysis"]
EOF
"$LS" report "$T/s.h5" -o "$T/rs2" >"$T/out" 2>&1 || fail "report of a sweep without /analysis: exit $?"
check_page "$T/rs2" 3 "lever: cache.num_state_slots"

# ---- bad input -----------------------------------------------------------------------
echo "not hdf5" >"$T/bad.h5"
"$LS" report "$T/bad.h5" -o "$T/rb" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 2 ] || fail "report of a non-HDF5 file: exit $rc, expected 2"
[ -f "$T/rb/index.html" ] && fail "report of a non-HDF5 file wrote a page"
"$LS" report "$T/t.h5" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "report without -o: exit $rc, expected 2"
"$LS" report "$T/missing.h5" -o "$T/rm" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || fail "report of a missing file: exit $rc, expected 2"

if [ $fails -gt 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "test_report: all checks passed"
