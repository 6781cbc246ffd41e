#!/usr/bin/env python3
"""Plants bugs in the CUDA path, one at a time, and checks that a test catches each.

Run on the GPU machine after tools/gpu/run.sh has built build-gpu/:

    bash tools/gpu/run.sh 'python3 tools/gpu/mutants.py'          (run tool, carry [".carry"])

For each mutant below: the one edit is made to the source, the test binary is rebuilt and
run, and the source is put back. A mutant is "caught" when the test exits non-zero (a failed
check, a CUDA error or a crash); "SURVIVED" means the test suite cannot see that bug. At the
end the tree is rebuilt clean. Prints a markdown table; exits 1 if any mutant survived or a
mutant could not be applied (its text no longer in the source: update the list).

A test that passes on the clean tree is run first, so a failure is the mutant's.
Options: --only NAME[,NAME...], --build DIR (default build-gpu).
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name, file, the text to change, its replacement, which occurrence (0-based), test binary,
# what the bug would be in the field
MUTANTS = [
    ("scan-dt-bias", "kernels/cuda/selective_scan.cu",
     "if (a.dt_bias) v = v + a.dt_bias[c];", "if (a.dt_bias) v = v;", 0,
     "tests/cuda/test_cuda_kernels", "the scan forgets dt_proj's bias when it fuses it"),
    ("scan-dt-softplus", "kernels/cuda/selective_scan.cu",
     "return a.dt_softplus ? ls_softplus(v) : v;", "return v;", 0,
     "tests/cuda/test_cuda_kernels", "the fused scan skips the softplus"),
    ("scan-prefetch-row", "kernels/cuda/selective_scan.cu",
     "next = ls_scan_in_load(a, r + 1, c, t);", "next = ls_scan_in_load(a, r, c, t);", 0,
     "tests/cuda/test_cuda_kernels", "the block scan prefetches the wrong token's inputs"),
    ("logsoftmax-ahead", "kernels/cuda/logsoftmax.cu",
     "f(i + k * LS_LSM_THREADS, v[k]);", "f(i + k * LS_LSM_THREADS, v[0]);", 0,
     "tests/cuda/test_cuda_kernels", "the 8-ahead logsoftmax uses one loaded element 8 times"),
    ("silu-rows4", "kernels/cuda/elementwise.cu",
     "gv[k] = ls_silu(gv[k]) * uv[k];", "gv[k] = ls_silu(uv[k]) * gv[k];", 0,
     "tests/cuda/test_cuda_kernels", "the 16-byte silu_mul swaps gate and up"),
    ("rmsnorm-loop-sum", "kernels/cuda/rmsnorm.cu",
     "lane += v * v;", "lane += v;", 0,
     "tests/cuda/test_cuda_kernels", "rows past the registers (> 4096) sum x, not x^2"),
    ("add-rmsnorm-residual", "kernels/cuda/rmsnorm.cu",
     "if (ADD) xr[i] = v[k];", "(void)0;", 0,
     "tests/cuda/test_cuda_kernels", "add_rmsnorm drops the residual stream's store"),
    ("rmsnorm-segs-stride", "kernels/cuda/rmsnorm.cu",
     "for (int64_t i = t + 32 * m; i < n; i += LS_SUM_LANES)",
     "for (int64_t i = t + 32 * m; i < n && i < LS_SUM_LANES; i += LS_SUM_LANES)", 0,
     "tests/cuda/test_cuda_kernels", "a norm segment wider than 256 loses its tail"),
    ("graph-key", "engine/forward_cuda.c",
     "if (x->graph && !memcmp(cur, g, bytes))", "if (x->graph && !memcmp(cur, g, 8))", 0,
     "tests/cuda/test_cuda_engine", "a graph replays a forward of another shape"),
    ("graph-never-replays-inputs", "engine/forward_cuda.c",
     "CR(cudaGraphLaunch(x->graph, S));\n        x->graph_replays++;",
     "x->graph_replays++;", 0,
     "tests/cuda/test_cuda_engine", "a replay step computes nothing"),
]


def sh(cmd, log, timeout):
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        try:
            return subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            f.write("(timed out)\n")
            return 124


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--build", default="build-gpu")
    ap.add_argument("--log", default=os.path.join(os.environ.get("OUT", "out"), "mutants.log"))
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    todo = [m for m in MUTANTS if not only or m[0] in only]
    os.makedirs(os.path.dirname(os.path.abspath(a.log)), exist_ok=True)
    open(a.log, "w").close()
    env_tests = {"LS_CUDA_CONFIGS": "40"}   # the engine test's first 40 configurations
    os.environ.update(env_tests)
    for t in sorted({m[5] for m in todo}):   # the clean tree must pass first
        if sh(["ninja", "-C", a.build, t], a.log, 900) or sh([f"{a.build}/{t}"], a.log, 300):
            print(f"mutants.py: {t} fails on the clean tree (see {a.log})")
            return 2
    print("| mutant | file | test | result | s | the bug |")
    print("| --- | --- | --- | --- | --- | --- |")
    bad = 0
    for name, path, old, new, occ, test, what in todo:
        full = os.path.join(ROOT, path)
        src = open(full).read()
        at, i = -1, -1
        for _ in range(occ + 1):
            at = src.find(old, at + 1)
            if at < 0:
                break
        if at < 0:
            print(f"| {name} | {path} | {test} | NOT APPLIED (text not found) | - | {what} |")
            bad = 1
            continue
        t0 = time.time()
        try:
            with open(full, "w") as f:
                f.write(src[:at] + new + src[at + len(old):])
            if sh(["ninja", "-C", a.build, test], a.log, 900):
                result = "caught (does not build)"
            else:
                rc = sh([f"{a.build}/{test}"], a.log, 300)
                result = f"caught (exit {rc})" if rc else "SURVIVED"
        finally:
            with open(full, "w") as f:
                f.write(src)
        if result == "SURVIVED":
            bad = 1
        print(f"| {name} | {path} | {os.path.basename(test)} | {result} | "
              f"{time.time() - t0:.0f} | {what} |", flush=True)
    sh(["ninja", "-C", a.build], a.log, 900)   # the clean binaries back
    return bad


if __name__ == "__main__":
    sys.exit(main())
