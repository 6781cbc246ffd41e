#!/usr/bin/env bash
# The GPU benchmark in one call on the GPU machine (docs/gpu.md, "Benchmark"):
#
#   bash tools/gpu/run.sh 'bash tools/gpu/bench.sh'        (run tool, carry [".carry"])
#
# 1. tools/gpu/make_bench_model.py: the ~1B-parameter random BF16 Jamba checkpoint
#    (build-gpu/models/jamba-bench-1b, kept between calls on a warm machine);
# 2. tools/gpu/bench_transformers.py: JambaForCausalLM decode tok/s at each batch -> hf.txt;
# 3. bench/bench_gpu: the HBM bandwidth (2 GiB device-to-device copy), the engine's decode
#    tok/s in invariant, fast and tf32 modes at each batch, the roofline, the ratio to
#    transformers, and the per-piece profile of one step -> bench.md (the table).
# Environment: BATCHES (default 1,16,64,256), MODES (default invariant,fast,tf32), HF=0 skips
# transformers (the table then has no ratio column values), NSYS=1 adds an Nsight Systems
# kernel summary of one run at the largest batch in mode NSYS_MODE (default fast) when nsys is
# installed (nsys.log, nsys_cuda_gpu_kern_sum.csv), NCU=REGEX an Nsight Compute report
# (speed of light, occupancy, warp stalls) of the first decode-step launch at the largest
# batch of the kernels whose names match REGEX, in mode NSYS_MODE (ncu.txt), STEP=1 every
# kernel's GPU time over one decode step at the largest batch in mode NSYS_MODE, grouped by
# kernel (tools/gpu/ncu_step.py -> ncu_step.md; STEP_LIST=1 adds every launch in order).
# Logs under $OUT: make_model.log hf.log hf.txt bench.md bench.err.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/out}
B=${LS_GPU_BUILD:-build-gpu}
BATCHES=${BATCHES:-1,16,64,256}
MODES=${MODES:-invariant,fast,tf32}
mkdir -p "$OUT"
say() { printf '\n== %s (%s)\n' "$*" "$(date -u +%T)"; }
rc=0
model=$B/models/jamba-bench-1b
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader
if [ ! -f "$model/model.safetensors" ]; then
  say "make_bench_model"
  timeout 300 python3 tools/gpu/make_bench_model.py "$model" > "$OUT/make_model.log" 2>&1 || rc=1
  tail -5 "$OUT/make_model.log"
fi
hf_args=()
if [ "${HF:-1}" != 0 ]; then
  say "transformers"
  timeout 300 python3 tools/gpu/bench_transformers.py "$model" --batches "$BATCHES" \
    --out "$OUT/hf.txt" > "$OUT/hf.log" 2>&1 || rc=1
  tail -12 "$OUT/hf.log"
  hf_args=(--hf "$OUT/hf.txt")
fi
say "bench_gpu"
timeout 400 "$B/bench/bench_gpu" "$model" --batches "$BATCHES" --modes "$MODES" \
  "${hf_args[@]}" > "$OUT/bench.md" 2> "$OUT/bench.err" || rc=1
cat "$OUT/bench.md"
say "bench_gpu stderr"
tail -30 "$OUT/bench.err"
NSYS_BIN=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
if [ "${NSYS:-0}" = 1 ] && [ -n "$NSYS_BIN" ]; then
  say "nsys: ${NSYS_MODE:-fast} mode, batch ${BATCHES##*,}"
  timeout 300 "$NSYS_BIN" profile -o "$OUT/nsys" --force-overwrite true --stats=false \
    "$B/bench/bench_gpu" "$model" --batches "${BATCHES##*,}" --modes "${NSYS_MODE:-fast}" \
    --no-profile > "$OUT/nsys.log" 2>&1 || rc=1
  timeout 200 "$NSYS_BIN" stats -r cuda_gpu_kern_sum,cuda_api_sum -f csv -o "$OUT/nsys" \
    "$OUT/nsys.nsys-rep" >> "$OUT/nsys.log" 2>&1
  head -40 "$OUT"/nsys_cuda_gpu_kern_sum.csv 2>/dev/null
  rm -f "$OUT/nsys.nsys-rep" "$OUT/nsys.sqlite"
elif [ "${NSYS:-0}" = 1 ]; then
  echo "nsys: not installed on this machine"
fi
NCU_BIN=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
if [ "${STEP:-0}" = 1 ] && [ -n "$NCU_BIN" ]; then
  # every kernel's GPU time over a few decode steps (one metric: no replay; clocks and caches
  # left as they run), then one whole step grouped by kernel (tools/gpu/ncu_step.py)
  say "ncu step profile: ${NSYS_MODE:-fast} mode, batch ${BATCHES##*,}"
  timeout 300 "$NCU_BIN" --metrics gpu__time_duration.sum --clock-control none \
    --cache-control none --csv --print-units base -s "${STEP_SKIP:-3500}" -c 800 \
    "$B/bench/bench_gpu" "$model" --batches "${BATCHES##*,}" --modes "${NSYS_MODE:-fast}" \
    --no-profile --new 8 > "$OUT/ncu_step.csv" 2>&1 || rc=1
  list=()
  [ "${STEP_LIST:-0}" = 1 ] && list=(--list)
  python3 tools/gpu/ncu_step.py "$OUT/ncu_step.csv" "${list[@]}" > "$OUT/ncu_step.md" &&
    rm -f "$OUT/ncu_step.csv"   # kept when it could not be read
  cat "$OUT/ncu_step.md"
fi
if [ -n "${NCU:-}" ] && [ -n "$NCU_BIN" ]; then
  # skip the warm-up run's launches (prefill + 2 decode steps + the first WARM steps): one
  # launch per matching kernel from a decode step of the measured runs
  say "ncu: $NCU, ${NSYS_MODE:-fast} mode, batch ${BATCHES##*,}"
  timeout 300 "$NCU_BIN" -k "regex:$NCU" -s "${NCU_SKIP:-40}" -c "${NCU_COUNT:-1}" \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section MemoryWorkloadAnalysis \
    "$B/bench/bench_gpu" "$model" --batches "${BATCHES##*,}" --modes "${NSYS_MODE:-fast}" \
    --no-profile --new 8 > "$OUT/ncu.txt" 2>&1 || rc=1
  grep -v '^==PROF==' "$OUT/ncu.txt" | tail -120
elif [ -n "${NCU:-}" ]; then
  echo "ncu: not installed on this machine"
fi
exit $rc
