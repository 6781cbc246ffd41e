#!/usr/bin/env python3
"""Writes the benchmark checkpoint: a Jamba-like model of about 1B parameters with random
BF16 weights in Hugging Face layout (per-expert MoE tensors), for bench/bench_gpu and
tools/gpu/bench_transformers.py (docs/gpu.md, "Benchmark").

    python3 tools/gpu/make_bench_model.py OUT_DIR [--seed N] [--device cuda]

Shape: hidden 2048, 16 layers, attention at layers 4 and 12 (attn_layer_period 8, offset 4;
16 query heads and 8 KV heads of 128), Mamba elsewhere (d_state 16, d_conv 4, expand 2,
dt_rank 128), MoE with 8 experts top-2 on odd layers (expert_layer_period 2, offset 1) and a
dense MLP on even layers, intermediate 1024, vocab 32000, untied embeddings: 0.98 B
parameters (about 0.61 B touched per token). The intermediate size is what brings the total
to ~1B with 8 experts on every other layer (4096 would give 2.3 B).

Weights are scaled as in tools/golden/make_golden.py (its scale rules, drawn on the GPU with
a seeded generator); the model is built on the meta device so nothing of 1B parameters is
initialised twice. Needs torch, transformers and safetensors.
"""
import argparse, json, math, os, sys, time

import torch
from transformers import JambaConfig, JambaForCausalLM
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
from make_golden import to_hub_layout  # noqa: E402  (per-expert layout from fused, if any)

CFG = dict(vocab_size=32000, hidden_size=2048, intermediate_size=1024, num_hidden_layers=16,
           num_attention_heads=16, num_key_value_heads=8, attn_layer_period=8,
           attn_layer_offset=4, expert_layer_period=2, expert_layer_offset=1, num_experts=8,
           num_experts_per_tok=2, mamba_d_state=16, mamba_d_conv=4, mamba_expand=2,
           mamba_dt_rank=128, mamba_conv_bias=True, mamba_proj_bias=False,
           tie_word_embeddings=False, rms_norm_eps=1e-6, hidden_act="silu")


def draw(name, shape, gen, dev):
    """make_golden.py's scale_weights rules, in float32 on `dev`."""
    r = lambda: torch.randn(shape, generator=gen, device=dev, dtype=torch.float32)  # noqa: E731
    if name.endswith("A_log"):
        n = shape[-1]
        base = torch.log(torch.arange(1, n + 1, device=dev, dtype=torch.float32)).expand(shape)
        return base + 0.3 * r()
    if name.endswith(".D"):
        return r()
    if "layernorm" in name or name.endswith("norm.weight"):
        return 1.0 + 0.3 * r()
    if name.endswith("dt_proj.bias"):
        u = torch.rand(shape, generator=gen, device=dev, dtype=torch.float32)
        dt = torch.exp(u * (math.log(0.2) - math.log(0.005)) + math.log(0.005))
        return dt + torch.log(-torch.expm1(-dt))
    if name.endswith("bias"):
        return 0.2 * r()
    if "conv1d.weight" in name:
        return 0.6 * r()
    if "embed_tokens" in name:
        return r()
    gain = 4.0 if name.startswith("lm_head") else 1.5
    return gain / math.sqrt(shape[-1]) * r()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    t0 = time.time()
    cfg = JambaConfig(**CFG)
    with torch.device("meta"):
        model = JambaForCausalLM(cfg)
    gen = torch.Generator(device=a.device).manual_seed(a.seed)
    sd = {}
    for name, p in model.state_dict().items():
        sd[name] = draw(name, tuple(p.shape), gen, a.device).to(torch.bfloat16).cpu()
    sd = to_hub_layout(sd, cfg, "per_expert")
    sd = {k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}
    n = sum(v.numel() for v in sd.values())
    os.makedirs(a.out, exist_ok=True)
    save_file(sd, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})
    c = cfg.to_dict()
    c.update(CFG)
    c["model_type"] = "jamba"
    c["architectures"] = ["JambaForCausalLM"]
    c["torch_dtype"] = "bfloat16"
    with open(os.path.join(a.out, "config.json"), "w") as fh:
        json.dump(c, fh, indent=2, default=str)
        fh.write("\n")
    print(f"{a.out}: {n / 1e9:.3f} B parameters, {len(sd)} tensors, BF16, "
          f"{time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
