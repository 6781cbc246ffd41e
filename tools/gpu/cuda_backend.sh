#!/usr/bin/env bash
# The CUDA backend end to end, in one call on the GPU machine (after tools/gpu/run.sh has
# built build-gpu/; docs/gpu.md has the `run` tool call):
#
#   bash tools/gpu/run.sh 'bash tools/gpu/cuda_backend.sh [PARTS...]'
#
# PARTS (default: tests overflow calibrate cli), each with its own time limit, logs under $OUT:
#   tests      meson test --suite cuda: kernels vs CPU twins, the engine property subset
#              (bitwise vs the GPU reference), every fault in both modes, golden logprobs
#   overflow   the real-scale narrow_state_offset run (25 GB pool), fault on and off,
#              then the sweep configs/sweeps/overflow_real.yaml and `lockstep analyse`
#   calibrate  bench/calibrate_fast: fast mode's clean |delta| and the faults' separation
#   cli        every configs/faults/*.yaml through `lockstep run --set backend=cuda`, in
#              invariant and fast mode, fault on (expect exit 1) and off (expect exit 0)
#   sanitize   compute-sanitizer memcheck (leak check) on a few engine configurations, then
#              racecheck and memcheck on test_cuda_sample and test_cuda_engine
# Environment: CALIB_SEEDS (default 60), LS_CUDA_CONFIGS (default 200). All four default parts
# take about 2 minutes on an H100 after the build.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/out}
B=${LS_GPU_BUILD:-build-gpu}
mkdir -p "$OUT"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(tests overflow calibrate cli)
say() { printf '\n== %s (%s)\n' "$*" "$(date -u +%T)"; }
rc_all=0
# NAME STATUS EXPECTED: a run with a planted fault must exit 1 (divergence found)
note() { echo "$1 exit $2 (expected ${3:-0})" >> "$OUT/summary.log"; [ "$2" -ne "${3:-0}" ] && rc_all=1; }

model=$B/models/jamba-1mamba-overflow
[ -f "$model/model.safetensors" ] || python3 tools/gpu/make_overflow_model.py "$model"

for p in "${parts[@]}"; do
  case $p in
  tests)
    say "meson test --suite cuda"
    timeout 200 meson test -C "$B" --suite cuda --print-errorlogs --num-processes 1 \
      > "$OUT/tests.log" 2>&1; r=$?
    grep -E '^ *[0-9]+/[0-9]+ |^Ok:|^Fail:|^Skipped:' "$OUT/tests.log"
    cp "$B/meson-logs/testlog.txt" "$OUT/testlog.txt" 2>/dev/null
    note tests $r ;;
  overflow)
    say "overflow_real: fault on"
    nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader
    ( while sleep 0.5; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done ) \
      > "$OUT/overflow_mem.log" 2>&1 & mon=$!
    timeout 60 /usr/bin/time -f 'wall %e s, max rss %M KB' "$B/lockstep" run configs/gpu/overflow_real.yaml \
      --trace "$OUT/overflow_on.h5" > "$OUT/overflow_on.log" 2>&1; r=$?
    kill $mon 2>/dev/null
    echo "peak GPU memory used (MiB): $(sort -n "$OUT/overflow_mem.log" | tail -1)" | tee -a "$OUT/overflow_on.log"
    head -8 "$OUT/overflow_on.log"; tail -3 "$OUT/overflow_on.log"
    note overflow_on $r 1
    say "overflow_real: fault off"
    timeout 60 /usr/bin/time -f 'wall %e s, max rss %M KB' "$B/lockstep" run configs/gpu/overflow_real.yaml \
      --set faults.narrow_state_offset=false > "$OUT/overflow_off.log" 2>&1; r=$?
    head -8 "$OUT/overflow_off.log"; tail -2 "$OUT/overflow_off.log"
    note overflow_off $r
    say "sweep overflow_real"
    rm -rf "$OUT/overflow_real.h5" "$OUT/overflow_real.h5.parts"
    timeout 200 "$B/lockstep" sweep configs/sweeps/overflow_real.yaml -o "$OUT/overflow_real.h5" \
      > "$OUT/sweep.log" 2>&1; r=$?
    tail -4 "$OUT/sweep.log"
    note sweep $r 1
    "$B/lockstep" analyse "$OUT/overflow_real.h5" > "$OUT/analyse.log" 2>&1
    head -30 "$OUT/analyse.log" ;;
  calibrate)
    say "calibrate_fast"
    timeout 330 "$B/bench/calibrate_fast" --seeds "${CALIB_SEEDS:-60}" > "$OUT/calibrate.md" \
      2> "$OUT/calibrate.err"; r=$?
    cat "$OUT/calibrate.md"; tail -5 "$OUT/calibrate.err"
    note calibrate $r ;;
  cli)
    say "lockstep run configs/faults/*.yaml --set backend=cuda"
    bad=0
    for f in configs/faults/*.yaml; do
      name=$(basename "$f" .yaml)
      for mode in invariant fast; do
        "$B/lockstep" run "$f" --set backend=cuda --set mode=$mode > "$OUT/cli.log" 2>&1; on=$?
        d_on=$(grep -o 'max |d| [^,]*' "$OUT/cli.log" | head -1)
        "$B/lockstep" run "$f" --set backend=cuda --set mode=$mode --set "faults.$name=false" \
          > "$OUT/cli.log" 2>&1; off=$?
        d_off=$(grep -o 'max |d| [^,]*' "$OUT/cli.log" | head -1)
        printf '%-26s %-9s fault on: exit %d (%s)   fault off: exit %d (%s)\n' "$name" "$mode" \
          $on "$d_on" $off "$d_off"
        [ $on -eq 1 ] && [ $off -eq 0 ] || bad=1
      done
    done
    rm -f "$OUT/cli.log"
    note cli $bad ;;
  sanitize)
    say "compute-sanitizer memcheck"
    LS_CUDA_CONFIGS=6 timeout 200 compute-sanitizer --tool memcheck --leak-check full --print-limit 20 \
      "$B/tests/cuda/test_cuda_engine" > "$OUT/san-engine.log" 2>&1; r=$?
    grep -E 'SUMMARY|LEAK|rror' "$OUT/san-engine.log" | head -10
    note sanitize_engine $r
    # the device sampler and the engine's batched copies / grouped MoE under racecheck
    # (shared-memory hazards) and memcheck
    for t in test_cuda_sample test_cuda_engine; do
      say "compute-sanitizer racecheck + memcheck: $t"
      LS_CUDA_CONFIGS=4 timeout 200 compute-sanitizer --tool racecheck --print-limit 20 \
        "$B/tests/cuda/$t" > "$OUT/race-$t.log" 2>&1; r=$?
      grep -E 'SUMMARY|hazard|rror' "$OUT/race-$t.log" | head -5
      note "racecheck_$t" $r
      LS_CUDA_CONFIGS=4 timeout 200 compute-sanitizer --tool memcheck --print-limit 20 \
        "$B/tests/cuda/$t" > "$OUT/mem-$t.log" 2>&1; r=$?
      grep -E 'SUMMARY|rror' "$OUT/mem-$t.log" | head -5
      note "memcheck_$t" $r
    done ;;
  *) echo "unknown part $p"; rc_all=2 ;;
  esac
done
say "summary"; cat "$OUT/summary.log"
exit $rc_all
