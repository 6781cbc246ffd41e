#!/usr/bin/env bash
# lockstep run / gate end to end: the default run is clean; every planted-fault config is
# caught (exit 1) and the report names the request, its slot and block, and the first
# divergent layer; bad input is exit 2 with a location and leaves no file behind; the gate
# passes, writes JUnit XML, and fails when a canary's expectation is wrong.
set -u
ROOT=${LS_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
LS=${LS_BUILD_ROOT:-$ROOT/build}/lockstep
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$LS" run >"$T/out" 2>&1; rc=$?
[ $rc -eq 0 ] || fail "default run exit $rc: $(tail -3 "$T/out")"
grep -q "verdict: OK" "$T/out" || fail "default run: no OK verdict"

declare -A expect=(
  [decode_misclassified]="conv_state|SSM state|conv state"
  [narrow_state_offset]="SSM state"
  [prefix_hit_without_state]="conv state|SSM state"
  [fork_shares_slot]="conv state|SSM state"
  [preempt_keeps_state]="conv state|SSM state"
  [chunk_drops_conv_state]="conv state"
  [padding_writes_slot]="conv state|SSM state"
  [stale_block_table]="attention output"
)
n=0
for f in "$ROOT"/configs/faults/*.yaml; do
  name=$(basename "$f" .yaml); n=$((n + 1))
  "$LS" run "$f" >"$T/out" 2>&1; rc=$?
  [ $rc -eq 1 ] || { fail "$name: exit $rc, expected 1"; continue; }
  grep -q "^first divergence: request [0-9]* rollout [0-9]* position [0-9]*" "$T/out" || fail "$name: no request named"
  grep -Eq "provenance: step [0-9]+, batch row [0-9]+, Mamba slot [0-9]+ .*KV block -?[0-9]+" "$T/out" || fail "$name: no slot/block"
  grep -E "first divergent layer: layer [0-9]+ " "$T/out" | head -1 | grep -Eq "${expect[$name]}" ||
    fail "$name: first divergent layer not one of '${expect[$name]}': $(grep 'first divergent layer' "$T/out" | head -1)"
  grep -q "verdict: DIVERGENCE" "$T/out" || fail "$name: no DIVERGENCE verdict"
done
[ $n -eq 8 ] || fail "expected 8 fault configs, found $n"

# the calibration's wide clean workload (bench/calibrate_fast; its first step prefills 256
# rows, for the cuBLAS MoE) stays valid and clean
"$LS" run "$ROOT/configs/gpu/wide_prefill.yaml" >"$T/out" 2>&1 || fail "wide_prefill: exit $? $(tail -3 "$T/out")"
grep -q "bit for bit" "$T/out" || fail "wide_prefill: not bit for bit: $(tail -3 "$T/out")"
grep -q "16 requests -> 32 sequences" "$T/out" || fail "wide_prefill: workload changed: $(grep engine: "$T/out")"

# the narrow offset diverges exactly in slots >= ceil(2^12 / 1024) = 4
"$LS" run "$ROOT/configs/faults/narrow_state_offset.yaml" >"$T/out" 2>&1
slots=$(grep -o "divergent: request [0-9]* rollout [0-9]* from position [0-9]* (slot [0-9]*" "$T/out" | grep -o "slot [0-9]*" | awk '{print $2}' | sort -n | tr '\n' ' ')
[ "$slots" = "4 5 6 7 " ] || fail "narrow_state_offset: divergent slots '$slots', expected '4 5 6 7 '"

# bad input: exit 2, a location, nothing written
printf 'model: ../golden/jamba-tiny-a\ncache: {block_size: [\n' >"$T/bad.yaml"
"$LS" run "$T/bad.yaml" --trace "$T/x.h5" >"$T/out" 2>&1; rc=$?
[ $rc -eq 2 ] || fail "malformed YAML: exit $rc"
grep -q "bad.yaml:[0-9]*:[0-9]*" "$T/out" || fail "malformed YAML: no file:line:col: $(cat "$T/out")"
printf 'model: %s/nope\n' "$T" >"$T/nomodel.yaml"
"$LS" run "$T/nomodel.yaml" --trace "$T/x.h5" >"$T/out" 2>&1; rc=$?
[ $rc -eq 2 ] || fail "missing model: exit $rc"
grep -q "nope" "$T/out" || fail "missing model: message does not name it"
"$LS" run --trace "$T/no/such/dir/x.h5" >"$T/out" 2>&1; rc=$?
[ $rc -eq 2 ] || fail "unwritable trace: exit $rc"
grep -q "no/such/dir/x.h5" "$T/out" || fail "unwritable trace: message does not name the path"
"$LS" run --set cache.num_blokcs=3 >"$T/out" 2>&1; rc=$?
[ $rc -eq 2 ] || fail "unknown --set key: exit $rc"
[ -z "$(find "$T" -name '*.h5*')" ] || fail "a trace file was left behind: $(find "$T" -name '*.h5*')"

# a trace is written on success and on divergence
"$LS" run "$ROOT/configs/faults/fork_shares_slot.yaml" --trace "$T/f.h5" >/dev/null 2>&1
[ -s "$T/f.h5" ] || fail "no trace written"
"$LS" inspect "$T/f.h5" >"$T/out" 2>&1 || fail "inspect failed"
grep -q "divergence" "$T/out" || fail "inspect: no verdict"

# the gate: passes, JUnit XML, and a wrong canary expectation fails it
"$LS" gate --junit "$T/junit.xml" >"$T/out" 2>&1; rc=$?
[ $rc -eq 0 ] || fail "gate exit $rc: $(grep FAIL "$T/out" | head -3)"
/usr/bin/python3 - "$T/junit.xml" <<'PY' || fail "JUnit XML"
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
suites = {s.get("name"): s for s in r.findall("testsuite")}
assert set(suites) == {"golden", "invariance", "faults"}, suites
assert int(suites["faults"].get("tests")) == 8 and int(suites["golden"].get("tests")) == 3
assert int(suites["invariance"].get("tests")) >= 12
assert all(int(s.get("failures")) == 0 for s in suites.values())
PY
sed -e "s#^  base: default.yaml#  base: $ROOT/configs/default.yaml#" \
    -e "s#\.\./golden#$ROOT/golden#g" -e "s#config: faults/#config: $ROOT/configs/faults/#" \
    -e "s#faults/chunk_drops_conv_state.yaml, expect: \[conv_state\]#faults/chunk_drops_conv_state.yaml, expect: [attention]#" \
    "$ROOT/configs/gate.yaml" >"$T/gate.yaml"
"$LS" gate "$T/gate.yaml" --junit "$T/j2.xml" >"$T/out" 2>&1; rc=$?
[ $rc -eq 1 ] || fail "gate with a wrong expectation: exit $rc"
grep -q "FAIL faults .*chunk_drops_conv_state" "$T/out" || fail "gate did not name the failing canary"

echo "cli_run: $fails failures"
[ $fails -eq 0 ]
