#!/usr/bin/env bash
# Same-machine A/B of the decode benchmark: the working tree against an earlier commit, in
# one call (timings from different calls or machines do not compare; docs/gpu.md):
#
#   here:   git archive REV -o .carry/base.tar
#   there:  bash tools/gpu/run.sh 'bash tools/gpu/ab.sh'          (run tool, carry [".carry"])
#
# Builds the commit's bench_gpu in /tmp/lockstep-base (with the environment run.sh set up),
# then runs the two binaries ROUNDS times each, alternating (base first), at BATCHES in
# MODES, each run taking the median of REPEAT decode measurements (bench_gpu --repeat: the
# base must have it), and prints each run's table rows after a "== base" or "== tree" line.
# Environment: ROUNDS (default 2), REPEAT (default 5), BATCHES (default 256), MODES (default
# tf32), BASE_TAR (default .carry/base.tar).
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${LS_GPU_BUILD:-build-gpu}
BASE=/tmp/lockstep-base
TAR=${BASE_TAR:-.carry/base.tar}
ROUNDS=${ROUNDS:-2}
REPEAT=${REPEAT:-5}
BATCHES=${BATCHES:-256}
MODES=${MODES:-tf32}
model=$B/models/jamba-bench-1b
if [ ! -f "$TAR" ]; then
  echo "ab.sh: no $TAR (make it here with: git archive REV -o $TAR)" >&2
  exit 2
fi
if [ ! -x "$BASE/$B/bench/bench_gpu" ]; then
  rm -rf "$BASE" && mkdir -p "$BASE" && tar -xf "$TAR" -C "$BASE" || exit 2
  (cd "$BASE" && meson setup "$B" -Dwerror=false -Dbuildtype=debugoptimized > /tmp/ab_setup.log 2>&1 &&
    ninja -C "$B" bench/bench_gpu > /tmp/ab_build.log 2>&1) || {
    echo "ab.sh: building the base failed:" >&2
    tail -30 /tmp/ab_setup.log /tmp/ab_build.log >&2
    exit 2
  }
fi
if [ ! -f "$model/model.safetensors" ]; then
  python3 tools/gpu/make_bench_model.py "$model" > /tmp/ab_model.log 2>&1 || {
    tail -5 /tmp/ab_model.log >&2
    exit 2
  }
fi
rc=0
for r in $(seq 1 "$ROUNDS"); do
  for side in base tree; do
    bin=$B/bench/bench_gpu
    [ "$side" = base ] && bin=$BASE/$B/bench/bench_gpu
    echo "== $side, round $r"
    timeout 300 "$bin" "$model" --batches "$BATCHES" --modes "$MODES" --no-profile --repeat "$REPEAT" \
      2> "/tmp/ab_$side.err" | grep -E '^\| (mode|invariant|fast|tf32) ' || {
      rc=1
      tail -5 "/tmp/ab_$side.err"
    }
  done
done
exit $rc
