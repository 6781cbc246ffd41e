#!/usr/bin/env python3
"""transformers' JambaForCausalLM decode throughput on this GPU, for bench/bench_gpu's
"ratio to transformers" column (docs/gpu.md, "Benchmark").

    python3 tools/gpu/bench_transformers.py MODEL_DIR [--batches 1,16,64,256] [--prompt 16]
                                            [--new 64] [--warm 8] [--out FILE]

Loads the checkpoint in bf16 on cuda (attn "eager" unless sdpa loads), with
use_mamba_kernels=True only if mamba_ssm and causal_conv1d import (the script says which).
Workload as bench_gpu: B random prompts of PROMPT tokens; decode time = time(generate
WARM + NEW tokens) - time(generate WARM tokens), greedy, no early stop (min_new_tokens),
HF's own hybrid cache; tokens/s = B * NEW / that time. FILE gets "BATCH TOKENS_PER_S" lines.
"""
import argparse, time

import torch
import transformers
from transformers import JambaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batches", default="1,16,64,256")
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--warm", type=int, default=8)
    ap.add_argument("--out")
    a = ap.parse_args()
    try:
        import mamba_ssm, causal_conv1d  # noqa: F401
        kernels = True
    except Exception as e:  # noqa: BLE001
        kernels = False
        why = f"{type(e).__name__}: {e}"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.cuda.get_device_name(0)}; mamba kernels: "
          + ("installed, use_mamba_kernels=True" if kernels else f"not installed ({why}), use_mamba_kernels=False"),
          flush=True)
    t0 = time.time()
    kw = dict(use_mamba_kernels=kernels)
    try:
        model = JambaForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, **kw)
    except TypeError:
        model = JambaForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16, **kw)
    model = model.to("cuda").eval()
    print(f"loaded in {time.time() - t0:.1f} s; attn implementation "
          f"{getattr(model.config, '_attn_implementation', '?')}; "
          f"{sum(p.numel() for p in model.parameters()) / 1e9:.3f} B parameters", flush=True)
    V = model.config.vocab_size
    g = torch.Generator(device="cuda").manual_seed(0)
    res = []

    def gen(ids, n):
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                             min_new_tokens=n, do_sample=False, pad_token_id=0,
                             eos_token_id=None, use_cache=True)
        torch.cuda.synchronize()
        assert out.shape[1] == ids.shape[1] + n, out.shape
        return time.perf_counter() - t

    with torch.inference_mode():
        for B in [int(x) for x in a.batches.split(",")]:
            ids = torch.randint(0, V, (B, a.prompt), generator=g, device="cuda")
            gen(ids, 2)  # warm-up
            ta = gen(ids, a.warm)
            tb = gen(ids, a.warm + a.new)
            tps = B * a.new / (tb - ta)
            print(f"B {B}: generate({a.warm}) {ta:.3f} s, generate({a.warm + a.new}) {tb:.3f} s -> "
                  f"{1e3 * (tb - ta) / a.new:.2f} ms/step, {tps:.0f} tok/s; "
                  f"peak mem {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB", flush=True)
            res.append((B, tps))
    if a.out:
        with open(a.out, "w") as f:
            for B, t in res:
                f.write(f"{B} {t:.3f}\n")


if __name__ == "__main__":
    main()
