#!/usr/bin/env python3
"""One decode step's kernels, each with its GPU time, from an Nsight Compute CSV.

    ncu --metrics gpu__time_duration.sum --clock-control none --cache-control none \
        --csv --print-units base -s SKIP -c COUNT build-gpu/bench/bench_gpu MODEL \
        --batches B --modes MODE --no-profile --new 8 > ncu_step.csv
    python3 tools/gpu/ncu_step.py ncu_step.csv [--list]

(tools/gpu/bench.sh runs both with STEP=1.) A step is the kernels from one forward's first
embedding lookup to the next one's: the layers, the final norm, lm_head, log-softmax and the
sampler. Prints the kernels grouped by name (calls, total us, us per call, share of the
step) and their sum, the step's GPU-busy time: the engine's measured ms/step minus this sum
is what launches and host work leave idle. --list prints every launch in order.
"""
import csv
import re
import sys


def short(name):
    name = re.sub(r"\(.*", "", name)
    name = re.sub(r"<.*", "", name)
    return name.replace("void ", "").strip()[:64]


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    lines = [l for l in open(argv[1], errors="replace") if l.startswith('"')]
    if not lines:
        print(f"{argv[1]}: no CSV rows (did ncu run?)")
        return 1
    rows = list(csv.reader(lines))
    hdr, data = rows[0], rows[1:]
    try:
        ki, vi = hdr.index("Kernel Name"), hdr.index("Metric Value")
    except ValueError:
        print(f"{argv[1]}: no 'Kernel Name' / 'Metric Value' columns: {hdr}")
        return 1
    ks = [(short(d[ki]), float(d[vi].replace(",", "")) / 1e3) for d in data]
    # a forward starts with the embedding of its tokens followed by the first norm; the final
    # block's gather of the rows that want logits is an embedding followed by a norm too, but
    # comes right after a layer's kernels, so take every other start: the first embedding
    # after the sampler
    starts = [i for i, (n, _) in enumerate(ks)
              if n.startswith("ls_embed") and i > 0 and "sample" in ks[i - 1][0]]
    if len(starts) < 2:
        print(f"{argv[1]}: fewer than two step starts among {len(ks)} kernels; raise -c")
        return 1
    step = ks[starts[0]:starts[1]]
    total = sum(v for _, v in step)
    agg = {}
    for n, v in step:
        c = agg.setdefault(n, [0, 0.0])
        c[0] += 1
        c[1] += v
    print(f"one decode step: {len(step)} kernels, GPU time {total / 1e3:.3f} ms "
          f"(kernel {starts[0]} to {starts[1]} of {len(ks)} profiled)\n")
    print("| kernel | calls | us | us per call | % of step |")
    print("| --- | --- | --- | --- | --- |")
    for n, (c, v) in sorted(agg.items(), key=lambda t: -t[1][1]):
        print(f"| {n} | {c} | {v:.1f} | {v / c:.1f} | {100 * v / total:.1f} |")
    if "--list" in argv:
        print()
        for n, v in step:
            print(f"{v:8.1f}  {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
