#!/usr/bin/env bash
# `lockstep shrink` end to end (docs/shrink.md). For EVERY planted-fault scenario in
# configs/faults/: the shrinker exits 0 and prints one line (the reproduce command), the
# reproducer has at most 2 requests and the same planted faults as the original, and
# `lockstep run` on it (from another directory) exits 1 with its first divergent layer
# naming the same component as the original's. Then the error paths (a config that does
# not fail, a missing file, a bad --set, bad options: exit 2, nothing written), the
# default output name, a time bound that stops the search at once (the unchanged config is
# still a reproducer), --set, and determinism.
#
# Time: about 10 s in a release build, about a minute under ASan+UBSan. SHRINK_SECONDS
# bounds each fault's search (default 20 s; every scenario gets to <= 2 requests within a few
# seconds even under the sanitizers); SHRINK_PF_SECONDS the prompts-file case's (default 90 s,
# a bound that should never bind: that case checks the search's result).
set -uo pipefail
BUILD=${LS_BUILD_ROOT:?LS_BUILD_ROOT not set}
SRC=${LS_SOURCE_ROOT:?LS_SOURCE_ROOT not set}
LS="$BUILD/lockstep"
SECONDS_PER_FAULT=${SHRINK_SECONDS:-20}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ls_test_shrink.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1
mkdir elsewhere

fails=0
checks=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
check() { checks=$((checks + 1)); }

HAVE_PYYAML=0
/usr/bin/python3 -c 'import yaml' 2>/dev/null && HAVE_PYYAML=1

# component FILE: the component named by the first "first divergent layer:" line of a
# `lockstep run` output ("layer 0 SSM state (Mamba), as read ... (max |diff| 3.06)" ->
# "SSM state (Mamba), as read ...").
component() {
  grep -m1 'first divergent layer:' "$1" |
    sed -e 's/^ *first divergent layer: layer [0-9]* //' -e 's/ (max |diff| .*$//'
}

# prompts OUT.yaml: workload.prompts of an emitted config.
prompts() {
  if [ $HAVE_PYYAML = 1 ]; then
    /usr/bin/python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["workload"]["prompts"])' "$1"
  else
    sed -n '/^workload:/,/^[a-z]/s/^  prompts: *\([0-9]*\).*/\1/p' "$1" | head -n 1
  fi
}

# same_faults ORIG.yaml OUT.yaml: the planted fault switches (and bits) are unchanged.
same_faults() {
  [ $HAVE_PYYAML = 1 ] || return 0
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import sys, yaml
def faults(path):
    f = yaml.safe_load(open(path)).get("faults") or {}
    out = {}
    for k, v in f.items():
        if isinstance(v, dict):
            on = v.get("enabled", "bits" in v)
            out[k] = (bool(on), v.get("bits", 32) if on else None)
        else:
            out[k] = (bool(v), 32 if (v and k == "narrow_state_offset") else None)
    return {k: v for k, v in out.items() if v[0]}
a, b = faults(sys.argv[1]), faults(sys.argv[2])
if a != b:
    print(f"faults differ: original {a}, shrunk {b}")
    sys.exit(1)
EOF
}

# ---- every planted fault shrinks to <= 2 requests and still fails the same way --------
n_faults=0
for cfg in "$SRC"/configs/faults/*.yaml; do
  name=$(basename "$cfg" .yaml)
  n_faults=$((n_faults + 1))
  "$LS" run "$cfg" >"$name.orig.txt" 2>&1
  rc=$?
  check
  [ $rc -eq 1 ] || { fail "$name: the original does not fail (lockstep run exit $rc)"; continue; }
  want=$(component "$name.orig.txt")
  out="$TMP/$name.min.yaml"
  t0=$(date +%s.%N)
  "$LS" shrink "$cfg" -o "$out" --max-seconds "$SECONDS_PER_FAULT" >"$name.shrink.out" 2>"$name.shrink.err"
  rc=$?
  t1=$(date +%s.%N)
  check
  if [ $rc -ne 0 ]; then
    fail "$name: lockstep shrink exit $rc, want 0: $(tail -n 3 "$name.shrink.err")"
    continue
  fi
  check
  [ -s "$out" ] || { fail "$name: no reproducer written at $out"; continue; }
  check
  [ "$(wc -l <"$name.shrink.out")" -eq 1 ] || fail "$name: stdout is not exactly one line: $(cat "$name.shrink.out")"
  check
  grep -q "^lockstep run $out " "$name.shrink.out" || fail "$name: stdout does not give the command: $(cat "$name.shrink.out")"
  check
  grep -q '^shrink: .* (still fails: ' "$name.shrink.err" || fail "$name: no progress line on stderr"
  check
  grep -q '^shrink: [0-9]* candidates tried' "$name.shrink.err" || fail "$name: no candidate count on stderr"
  check
  ls "$TMP" | grep -q '\.tmp\.' && fail "$name: a temporary file was left behind"
  n=$(prompts "$out")
  check
  if [ -z "$n" ] || [ "$n" -gt 2 ]; then fail "$name: shrunk to workload.prompts = '$n', want <= 2"; fi
  check
  msg=$(same_faults "$cfg" "$out") || fail "$name: $msg"
  # the reproducer works from any directory
  (cd elsewhere && "$LS" run "$out") >"$name.min.txt" 2>&1
  rc=$?
  check
  [ $rc -eq 1 ] || { fail "$name: lockstep run on the reproducer exits $rc, want 1: $(tail -n 2 "$name.min.txt")"; continue; }
  got=$(component "$name.min.txt")
  check
  [ -n "$want" ] && [ "$got" = "$want" ] || fail "$name: the reproducer diverges in '$got', the original in '$want'"
  printf 'ok  %-26s %s; %.1f s; first divergent: %s\n' "$name" \
    "$(sed 's/^.*# //' "$name.shrink.out")" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$got"
done
check
[ $n_faults -ge 8 ] || fail "only $n_faults fault scenarios found in $SRC/configs/faults"

# ---- errors: exit 2, a message, nothing written ----------------------------------------
expect_2() {
  local desc=$1 pat=$2; shift 2
  "$@" >e.out 2>e.err
  local rc=$?
  check
  [ $rc -eq 2 ] || fail "$desc: exit $rc, want 2 ($(head -c 300 e.err))"
  check
  grep -qF -- "$pat" e.err || fail "$desc: stderr does not say '$pat': $(head -c 300 e.err)"
  check
  [ -s e.out ] && fail "$desc: stdout not empty: $(head -c 200 e.out)"
  echo "ok  $desc: $(head -n 1 e.err)"
}
expect_2 "a config that does not fail" "does not fail: nothing to shrink" \
  "$LS" shrink "$SRC/configs/default.yaml" -o nofail.yaml
check
[ -e nofail.yaml ] && fail "a reproducer was written for a config that does not fail"
expect_2 "a missing config" "cannot open" "$LS" shrink "$TMP/no-such.yaml" -o x.yaml
expect_2 "a bad --set" "--set" "$LS" shrink "$SRC/configs/faults/fork_shares_slot.yaml" --set cache.no_such_key=1
expect_2 "an invalid --set value" "--set" "$LS" shrink "$SRC/configs/faults/fork_shares_slot.yaml" --set workload.prompts=0
expect_2 "a bad --max-seconds" "--max-seconds" "$LS" shrink "$SRC/configs/faults/fork_shares_slot.yaml" --max-seconds -1
expect_2 "a bad --pattern" "--pattern" "$LS" shrink "$SRC/configs/faults/fork_shares_slot.yaml" --pattern loose
expect_2 "an unknown option" "unknown option" "$LS" shrink "$SRC/configs/faults/fork_shares_slot.yaml" --frobnicate
expect_2 "no config" "usage" "$LS" shrink
expect_2 "a model that does not load" "model" "$LS" shrink "$SRC/configs/faults/fork_shares_slot.yaml" --set model="$TMP"
expect_2 "an unwritable output" "cannot" "$LS" shrink "$SRC/configs/faults/fork_shares_slot.yaml" -o "$TMP/no/such/dir/x.yaml"

# ---- the default output name: FAILING's basename + .min.yaml in the current directory --
"$LS" shrink "$SRC/configs/faults/fork_shares_slot.yaml" >d.out 2>d.err
rc=$?
check
[ $rc -eq 0 ] && [ -s fork_shares_slot.min.yaml ] || fail "default output: exit $rc, fork_shares_slot.min.yaml $( [ -e fork_shares_slot.min.yaml ] && echo exists || echo missing)"
check
grep -q '^lockstep run fork_shares_slot.min.yaml ' d.out || fail "default output: stdout is $(cat d.out)"
echo "ok  default output name: $(cat d.out)"

# ---- determinism: the same input gives the same reproducer ------------------------------
"$LS" shrink "$SRC/configs/faults/fork_shares_slot.yaml" -o again.yaml >/dev/null 2>&1
check
if diff <(grep -v '^#' fork_shares_slot.min.yaml) <(grep -v '^#' again.yaml) >/dev/null; then
  echo "ok  deterministic"
else
  fail "two shrinks of the same config differ"
fi

# ---- a time bound that stops at once: the (unchanged) original is the reproducer --------
"$LS" shrink "$SRC/configs/faults/narrow_state_offset.yaml" -o quick.yaml --max-seconds 0.001 >q.out 2>q.err
rc=$?
check
[ $rc -eq 0 ] || fail "--max-seconds 0.001: exit $rc, want 0: $(tail -n 2 q.err)"
check
grep -q 'time limit' q.err || fail "--max-seconds 0.001: no time-limit notice: $(cat q.err)"
check
[ "$(prompts quick.yaml)" = 8 ] || fail "--max-seconds 0.001: the config changed ($(prompts quick.yaml) prompts, want 8)"
(cd elsewhere && "$LS" run ../quick.yaml) >q.run 2>&1
rc=$?
check
[ $rc -eq 1 ] || fail "--max-seconds 0.001: the written config does not fail (exit $rc)"
echo "ok  --max-seconds 0.001: $(cat q.out)"

# ---- an explicit prompts file: requests dropped anywhere in the list, the rest written ---
# next to the reproducer (OUT minus .yaml + .prompts.txt); no temporary file left behind
mkdir -p tmpd pf
printf '%s\n' '26 12 62 3 49 55 77 97 98 0 89' '34 92 29 75 13 40 3 2 3 83 69' \
  '20 41 7 99 16 72 88 5 60 31' '11 64 93 27 50 8 45 70 36' '58 2 81 19 66 24 97 13 40 77 5 90' \
  '3 47 85 30 62 18 54 9 71' >pf/prompts.txt
cat >pf/pf.yaml <<EOF
model: $SRC/golden/jamba-tiny-a
cache: {block_size: 4, num_blocks: 10, num_state_slots: 8, prefix_caching: false}
sched: {max_num_seqs: 4, max_batched_tokens: 16}
workload: {seed: 23, prompts_file: prompts.txt, max_new_tokens: 6}
faults: {stale_block_table: true}
EOF
"$LS" run pf/pf.yaml >pf.orig.txt 2>&1
rc=$?
check
if [ $rc -ne 1 ]; then
  fail "prompts file: the original does not fail (exit $rc): $(tail -n 2 pf.orig.txt)"
else
  # a budget that does not bind: the check below is of the result, not of the machine's speed
  # (with 20 s a loaded 2-core CI machine under the sanitizers once stopped at 3 prompts)
  TMPDIR="$TMP/tmpd" "$LS" shrink pf/pf.yaml -o "$TMP/pfmin.yaml" --pattern keep \
    --max-seconds "${SHRINK_PF_SECONDS:-90}" >pf.out 2>pf.err
  rc=$?
  check
  [ $rc -eq 0 ] || fail "prompts file: exit $rc: $(tail -n 2 pf.err)"
  check
  grep -q '^shrink: time limit' pf.err &&
    fail "prompts file: the search hit its ${SHRINK_PF_SECONDS:-90} s limit (a slow machine? SHRINK_PF_SECONDS raises it)"
  check
  [ -s pfmin.prompts.txt ] || fail "prompts file: no pfmin.prompts.txt next to the reproducer"
  check
  n=$(grep -c . pfmin.prompts.txt)
  [ "$n" -le 2 ] || fail "prompts file: still $n prompts, want <= 2"
  check
  [ "$(prompts pfmin.yaml)" = "$n" ] || fail "prompts file: workload.prompts $(prompts pfmin.yaml) but $n prompts in the file"
  check
  grep -q '^# Signature (--pattern keep)' pfmin.yaml || fail "prompts file: the header does not say --pattern keep"
  check
  grep -q "prompts_file: \"$TMP/pfmin.prompts.txt\"" pfmin.yaml || fail "prompts file: the reproducer does not name $TMP/pfmin.prompts.txt"
  check
  [ -z "$(ls -A tmpd)" ] || fail "prompts file: temporary files left in TMPDIR: $(ls -A tmpd)"
  (cd elsewhere && "$LS" run "$TMP/pfmin.yaml") >pf.min.txt 2>&1
  rc=$?
  check
  [ $rc -eq 1 ] || fail "prompts file: the reproducer exits $rc, want 1: $(tail -n 2 pf.min.txt)"
  check
  [ "$(component pf.min.txt)" = "$(component pf.orig.txt)" ] || fail "prompts file: component '$(component pf.min.txt)', want '$(component pf.orig.txt)'"
  echo "ok  prompts file (--pattern keep): $(sed 's/^.*# //' pf.out); $n prompts kept"
fi

# ---- -v: a line per rejected candidate, with the reason --------------------------------
"$LS" shrink "$SRC/configs/faults/fork_shares_slot.yaml" -o v.yaml -v >/dev/null 2>v.err
rc=$?
check
[ $rc -eq 0 ] && grep -q '^shrink:   (rejected) .*: ' v.err || fail "-v: exit $rc, no '(rejected)' lines"

# ---- --set: shrink a passing config made to fail ----------------------------------------
"$LS" shrink "$SRC/configs/default.yaml" --set faults.fork_shares_slot=true -o set.yaml >s.out 2>s.err
rc=$?
check
[ $rc -eq 0 ] || fail "--set: exit $rc, want 0: $(tail -n 2 s.err)"
check
grep -q '^  fork_shares_slot: true' set.yaml || fail "--set: the fault is not on in the reproducer"
"$LS" run set.yaml >s.run 2>&1
rc=$?
check
[ $rc -eq 1 ] || fail "--set: the reproducer does not fail (exit $rc)"
echo "ok  --set faults.fork_shares_slot=true on the default run: $(cat s.out)"

echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
