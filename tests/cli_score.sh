#!/usr/bin/env bash
# `lockstep score` end to end: its output format (a line per sequence, %.17g values that
# round-trip, an empty line for L = 1), stdin and file input agreeing, and every kind of
# bad input rejected with exit code 2, a message that says where, and NO partial stdout.
set -uo pipefail
BUILD=${LS_BUILD_ROOT:?LS_BUILD_ROOT not set}
SRC=${LS_SOURCE_ROOT:?LS_SOURCE_ROOT not set}
LS="$BUILD/lockstep"
MODEL="$SRC/golden/jamba-tiny-a"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ls_cli_score.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
cd "$TMP" || exit 1

fails=0
checks=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { checks=$((checks + 1)); }

# expect_error DESCRIPTION PATTERN... -- ARGS... (stdin from $STDIN_FILE if set)
# Runs `lockstep ARGS`; wants exit 2, empty stdout, and every (grep -F) PATTERN in stderr.
expect_error() {
  local desc=$1; shift
  local pats=()
  while [ "$1" != "--" ]; do pats+=("$1"); shift; done
  shift
  local rc
  "$LS" "$@" <"${STDIN_FILE:-/dev/null}" >out.txt 2>err.txt
  rc=$?
  ok
  [ $rc -eq 2 ] || fail "$desc: exit code $rc, want 2 (stderr: $(head -c 300 err.txt))"
  [ -s out.txt ] && fail "$desc: stdout not empty on error: $(head -c 200 out.txt)"
  [ -s err.txt ] || fail "$desc: no message on stderr"
  for p in "${pats[@]}"; do
    grep -qF -- "$p" err.txt || fail "$desc: stderr does not mention '$p': $(head -c 300 err.txt)"
  done
  echo "ok  $desc: $(head -n 1 err.txt)"
}

# ---- a valid run: one output line per input sequence ----------------------------------
"$LS" score --model "$MODEL" --tokens "$MODEL/tokens.txt" >file.txt 2>err.txt
rc=$?; ok
[ $rc -eq 0 ] || fail "score on the golden tokens: exit $rc: $(cat err.txt)"
nin=$(grep -c '[0-9]' "$MODEL/tokens.txt")
nout=$(wc -l <file.txt)
ok; [ "$nin" -eq "$nout" ] || fail "$nout output lines for $nin sequences"
# each line has L-1 values
python3 - "$MODEL/tokens.txt" file.txt <<'PY' || fail "values per line"
import sys
seqs = [l.split() for l in open(sys.argv[1]) if l.strip()]
outs = open(sys.argv[2]).read().split("\n")
assert outs[-1] == "", "output must end with a newline"
outs = outs[:-1]
for i, (s, o) in enumerate(zip(seqs, outs)):
    assert len(o.split()) == len(s) - 1, f"line {i+1}: {len(o.split())} values for L={len(s)}"
PY
ok

# ---- %.17g: each value round-trips and matches the golden at 1e-9 ----------------------
python3 - file.txt "$MODEL/logprobs_fp64.txt" <<'PY' || fail "%.17g round trip / golden comparison"
import math, sys
got = open(sys.argv[1]).read().split("\n")[:-1]
gold = open(sys.argv[2]).read().split("\n")[:-1]
assert len(got) == len(gold), f"{len(got)} lines vs {len(gold)} golden"
worst = 0.0
for i, (g, r) in enumerate(zip(got, gold)):
    gs, rs = g.split(" ") if g else [], r.split() if r else []
    assert len(gs) == len(rs), f"line {i+1}: {len(gs)} values vs {len(rs)}"
    for s, t in zip(gs, rs):
        v = float(s)
        assert math.isfinite(v) and v <= 0, f"line {i+1}: {s}"
        # printed with %.17g: formatting the parsed value again gives the same text
        assert "%.17g" % v == s, f"line {i+1}: '{s}' is not %.17g of its value ('{'%.17g' % v}')"
        worst = max(worst, abs(v - float(t)))
assert worst <= 1e-9, f"max |delta| {worst:.3g} > 1e-9"
print(f"ok  golden fp64 via the CLI: max |delta| {worst:.3g}")
PY
ok

# ---- stdin: no --tokens, and --tokens -, give the same bytes -----------------------------
"$LS" score --model "$MODEL" <"$MODEL/tokens.txt" >stdin1.txt 2>err.txt
rc=$?; ok; [ $rc -eq 0 ] || fail "stdin (no --tokens): $(cat err.txt)"
ok; cmp -s file.txt stdin1.txt || fail "stdin (no --tokens) output differs from --tokens FILE"
"$LS" score --model "$MODEL" --tokens - <"$MODEL/tokens.txt" >stdin2.txt 2>err.txt
rc=$?; ok; [ $rc -eq 0 ] || fail "--tokens -: $(cat err.txt)"
ok; cmp -s file.txt stdin2.txt || fail "--tokens - output differs from --tokens FILE"
cat "$MODEL/tokens.txt" | "$LS" score --precision fp64 --model "$MODEL" >stdin3.txt 2>err.txt
ok; cmp -s file.txt stdin3.txt || fail "piped stdin output differs"
echo "ok  stdin and --tokens - match --tokens FILE"

# ---- length-1 sequences give empty lines; blank input lines are skipped ----------------
printf '5\n1 2 3\n\n7\n  9   4 \t 2\n' >short.txt
"$LS" score --model "$MODEL" --tokens short.txt >short_out.txt 2>err.txt
rc=$?; ok; [ $rc -eq 0 ] || fail "short sequences: $(cat err.txt)"
python3 - short_out.txt <<'PY' || fail "length-1 sequences"
import sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "" and len(lines) == 5, f"want 4 lines, got {lines!r}"
assert lines[0] == "" and lines[2] == "", f"L=1 must print an empty line: {lines!r}"
assert len(lines[1].split(" ")) == 2 and len(lines[3].split(" ")) == 2, lines
PY
ok
# the same tokens within a longer file give the same numbers (fresh state per sequence)
printf '1 2 3\n' | "$LS" score --model "$MODEL" >one.txt
ok; [ "$(cat one.txt)" = "$(sed -n 2p short_out.txt)" ] || fail "a sequence's logprobs depend on its neighbours"
# fp32 runs, and differs from fp64 only slightly
"$LS" score --model "$MODEL" --precision fp32 --tokens "$MODEL/tokens.txt" >f32.txt 2>err.txt
rc=$?; ok; [ $rc -eq 0 ] || fail "fp32: $(cat err.txt)"
python3 - f32.txt "$MODEL/logprobs_fp64.txt" <<'PY' || fail "fp32 vs golden at 2e-4"
import sys
a = [l.split() for l in open(sys.argv[1])]
b = [l.split() for l in open(sys.argv[2])]
assert len(a) == len(b)
w = max((abs(float(x) - float(y)) for p, q in zip(a, b) for x, y in zip(p, q)), default=0)
assert w <= 2e-4, w
PY
ok
echo "ok  length-1 lines, fp32"

# ---- bad input: exit 2, a message saying where, nothing on stdout ----------------------
printf '1 2 3\n4 5 6\n7 100000 8\n' >t.txt
expect_error "token id >= vocab" "t.txt:3" "100000" -- score --model "$MODEL" --tokens t.txt
printf '1 2 3\n4 5 6\n7 128\n' >t.txt
expect_error "token id == vocab (128)" "t.txt:3" "128" -- score --model "$MODEL" --tokens t.txt
printf '1 2 3\n4 abc 6\n' >t.txt
expect_error "non-integer token" "t.txt:2" "abc" -- score --model "$MODEL" --tokens t.txt
printf '1 2 3.5\n' >t.txt
expect_error "fractional token" "t.txt:1" "3.5" -- score --model "$MODEL" --tokens t.txt
printf '1 2\n\n3 -4 5\n' >t.txt
expect_error "negative token" "t.txt:3" "-4" -- score --model "$MODEL" --tokens t.txt
printf '1 2\n99999999999999999999\n' >t.txt
expect_error "token id overflowing" "t.txt:2" -- score --model "$MODEL" --tokens t.txt
printf '1 2 3\n4 5 x\n' >t.txt
STDIN_FILE=t.txt expect_error "bad token on stdin" "<stdin>:2" -- score --model "$MODEL"
expect_error "missing --model" "--model" -- score --tokens "$MODEL/tokens.txt"
expect_error "--model without a value" "--model" -- score --model
expect_error "nonexistent model dir" "$TMP/no-such-model" "config.json" -- \
  score --model "$TMP/no-such-model" --tokens "$MODEL/tokens.txt"
expect_error "bad --precision" "precision" "fp16" -- score --model "$MODEL" --precision fp16 --tokens "$MODEL/tokens.txt"
expect_error "unknown flag" "--bogus" -- score --model "$MODEL" --bogus --tokens "$MODEL/tokens.txt"
expect_error "nonexistent tokens file" "$TMP/nope.txt" -- score --model "$MODEL" --tokens "$TMP/nope.txt"
# a valid line before the bad one must not be printed (no partial output)
printf '1 2 3\n4 5 6\n1 2 3 4 5 6 7 8 9 10 11 12\n7 8 -1\n' >t.txt
expect_error "bad last line after good ones" "t.txt:4" -- score --model "$MODEL" --tokens t.txt

echo "cli_score: $checks checks, $fails failed"
[ $fails -eq 0 ]
