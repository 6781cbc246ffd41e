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
# Environment: BATCHES (default 1,16,64,256), MODES (default invariant,fast,tf32).
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
say "transformers"
timeout 300 python3 tools/gpu/bench_transformers.py "$model" --batches "$BATCHES" \
  --out "$OUT/hf.txt" > "$OUT/hf.log" 2>&1 || rc=1
tail -12 "$OUT/hf.log"
say "bench_gpu"
timeout 400 "$B/bench/bench_gpu" "$model" --batches "$BATCHES" --modes "$MODES" \
  --hf "$OUT/hf.txt" > "$OUT/bench.md" 2> "$OUT/bench.err" || rc=1
cat "$OUT/bench.md"
say "bench_gpu stderr"
tail -30 "$OUT/bench.err"
exit $rc
