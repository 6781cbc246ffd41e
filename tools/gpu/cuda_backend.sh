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
#              invariant and fast mode, fault on (expect exit 1) and off (expect exit 0);
#              configs/gpu/wide_prefill.yaml in both modes (clean: expect exit 0)
#   sanitize   compute-sanitizer memcheck (leak check), racecheck, synccheck and initcheck on
#              test_cuda_kernels; racecheck and memcheck on test_cuda_sample; memcheck (leak
#              check) on 6 engine configurations of test_cuda_engine -> sanitize.log
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
    # the wide clean workload (cuBLAS MoE in fp64 fast mode too): clean in both modes
    for mode in invariant fast; do
      "$B/lockstep" run configs/gpu/wide_prefill.yaml --set backend=cuda --set mode=$mode \
        > "$OUT/cli.log" 2>&1; r=$?
      printf '%-26s %-9s clean: exit %d (%s)\n' wide_prefill $mode $r \
        "$(grep -o 'max |d| [^,]*' "$OUT/cli.log" | head -1)"
      [ $r -eq 0 ] || bad=1
    done
    rm -f "$OUT/cli.log"
    note cli $bad ;;
  sanitize)
    # every kernel test under the four tools (LS_CUDA_BIG=0: no 4 GiB copy), the device
    # sampler under racecheck + memcheck, the engine's launches (batched copies, grouped MoE)
    # under memcheck with leak checking; all output in one log ($OUT keeps few files)
    san() {   # NAME TOOL TIMEOUT BINARY [tool options]
      local name=$1 tool=$2 lim=$3 bin=$4; shift 4
      say "compute-sanitizer $tool: $bin"
      echo "== $name: compute-sanitizer --tool $tool $* $bin" >> "$OUT/sanitize.log"
      # stdbuf: the test's lines reach the log as they are printed, so a run stopped by the
      # timeout still shows how far it got
      timeout "$lim" stdbuf -oL compute-sanitizer --tool "$tool" "$@" --print-limit 20 \
        "$B/tests/cuda/$bin" > "$OUT/san.tmp" 2>&1; local r=$?
      cat "$OUT/san.tmp" >> "$OUT/sanitize.log"
      grep -E 'SUMMARY|LEAK|checks,|rror' "$OUT/san.tmp" | head -6
      rm -f "$OUT/san.tmp"
      note "$name" $r
    }
    export LS_CUDA_BIG=0
    san memcheck_kernels memcheck 200 test_cuda_kernels --leak-check full
    san racecheck_kernels racecheck "${RACE_LIMIT:-400}" test_cuda_kernels
    san synccheck_kernels synccheck 200 test_cuda_kernels
    san initcheck_kernels initcheck 200 test_cuda_kernels
    san racecheck_sample racecheck 200 test_cuda_sample
    san memcheck_sample memcheck 200 test_cuda_sample
    LS_CUDA_CONFIGS=6 san memcheck_engine memcheck 200 test_cuda_engine --leak-check full ;;
  *) echo "unknown part $p"; rc_all=2 ;;
  esac
done
say "summary"; cat "$OUT/summary.log"
exit $rc_all
