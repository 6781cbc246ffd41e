#!/usr/bin/env python3
"""Make lockstep's golden checkpoints and transformers' float64 logprobs for them.

Runs where torch + transformers are installed (the GPU machine; it needs no GPU).
For each tiny Jamba config below it:
  1. builds JambaForCausalLM with random weights scaled so logprobs are far from uniform,
  2. writes the checkpoint in Hugging Face layout (dtype, sharding and expert layout
     vary per model, so the loader's paths are all exercised),
  3. reloads it with transformers' own from_pretrained in float64, CPU, eager paths
     (use_mamba_kernels=False, attn "eager", experts "eager") and checks the reload
     reproduces the written weights exactly,
  4. writes tokens.txt (one sequence per line) and logprobs_fp64.txt: transformers'
     teacher-forced logprobs of tokens 1..L-1, %.17g, in the format of `lockstep score`.

The numbers come from transformers, never from lockstep.

usage: make_golden.py OUT_DIR [--only NAME]
"""
import argparse, json, math, os, sys

import torch
import transformers
from transformers import JambaConfig, JambaForCausalLM
from safetensors.torch import save_file

MODELS = {
    # F32, one file, Hub per-expert layout, GQA 4q/2kv, untied, conv bias, no proj bias,
    # dt_rank "auto", MoE top-2 of 4 on odd layers, attention on odd layers.
    "jamba-tiny-a": dict(
        store="F32", shards=1, experts_layout="per_expert",
        cfg=dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, attn_layer_period=2,
                 attn_layer_offset=1, expert_layer_period=2, expert_layer_offset=1,
                 num_experts=4, num_experts_per_tok=2, mamba_d_state=8, mamba_d_conv=4,
                 mamba_expand=2, mamba_dt_rank="auto", mamba_conv_bias=True,
                 mamba_proj_bias=False, tie_word_embeddings=False, rms_norm_eps=1e-6,
                 hidden_act="silu")),
    # F16, one file, fused experts, single kv head (MQA), tied embeddings, proj bias,
    # no conv bias, explicit dt_rank, MoE top-1 of 3 on every layer, d_conv 2.
    "jamba-tiny-b": dict(
        store="F16", shards=1, experts_layout="fused",
        cfg=dict(vocab_size=100, hidden_size=48, intermediate_size=64, num_hidden_layers=3,
                 num_attention_heads=6, num_key_value_heads=1, attn_layer_period=3,
                 attn_layer_offset=1, expert_layer_period=1, expert_layer_offset=0,
                 num_experts=3, num_experts_per_tok=1, mamba_d_state=4, mamba_d_conv=2,
                 mamba_expand=2, mamba_dt_rank=6, mamba_conv_bias=False,
                 mamba_proj_bias=True, tie_word_embeddings=True, rms_norm_eps=1e-5,
                 hidden_act="silu")),
    # BF16, three shards + index, per-expert layout, the largest: 8 layers, attention at
    # 2 and 6 (period 4 offset 2), MoE top-2 of 4 on odd layers, dense elsewhere.
    "jamba-small-c": dict(
        store="BF16", shards=3, experts_layout="per_expert",
        cfg=dict(vocab_size=256, hidden_size=128, intermediate_size=96, num_hidden_layers=8,
                 num_attention_heads=8, num_key_value_heads=2, attn_layer_period=4,
                 attn_layer_offset=2, expert_layer_period=2, expert_layer_offset=1,
                 num_experts=4, num_experts_per_tok=2, mamba_d_state=16, mamba_d_conv=4,
                 mamba_expand=2, mamba_dt_rank="auto", mamba_conv_bias=True,
                 mamba_proj_bias=True, tie_word_embeddings=False, rms_norm_eps=1e-6,
                 hidden_act="silu")),
}

SEQ_LENGTHS = [2, 3, 5, 9, 17, 33, 64, 128, 131]
DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def scale_weights(model, gen):
    """Random weights, large enough that logprobs are far from uniform."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                n = p.shape[-1]
                base = torch.log(torch.arange(1, n + 1, dtype=torch.float64)).expand_as(p)
                p.copy_(base + 0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif name.endswith(".D"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif "layernorm" in name or name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif name.endswith("dt_proj.bias"):
                dt = torch.exp(torch.rand(p.shape, generator=gen, dtype=torch.float64)
                               * (math.log(0.2) - math.log(0.005)) + math.log(0.005))
                p.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif "conv1d.weight" in name:
                p.copy_(0.6 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
            else:
                fan_in = p.shape[-1]
                gain = 4.0 if name.startswith("lm_head") else 1.5
                p.copy_(gain / math.sqrt(fan_in) *
                        torch.randn(p.shape, generator=gen, dtype=torch.float64))


def to_hub_layout(sd, cfg, layout):
    """The model's state dict in the requested expert layout (per-expert or fused)."""
    out = {}
    fused = {}
    for k, v in sd.items():
        if ".experts." in k and (k.endswith("gate_up_proj") or k.endswith("down_proj")) \
                and v.dim() == 3:
            fused[k] = v
        else:
            out[k] = v
    # Normalise everything to per-expert first.
    for k, v in fused.items():
        prefix = k[: k.index(".experts.") + len(".experts.")]
        E = v.shape[0]
        I, H = cfg.intermediate_size, cfg.hidden_size
        if k.endswith("gate_up_proj"):
            for e in range(E):
                w = v[e]
                if w.shape == (2 * I, H):
                    g, u = w[:I], w[I:]
                elif w.shape == (H, 2 * I):
                    g, u = w[:, :I].T, w[:, I:].T
                else:
                    raise SystemExit(f"unexpected gate_up_proj shape {tuple(v.shape)} in {k}")
                out[f"{prefix}{e}.gate_proj.weight"] = g.contiguous()
                out[f"{prefix}{e}.up_proj.weight"] = u.contiguous()
        else:
            for e in range(E):
                w = v[e]
                if w.shape == (H, I):
                    d = w
                elif w.shape == (I, H):
                    d = w.T
                else:
                    raise SystemExit(f"unexpected down_proj shape {tuple(v.shape)} in {k}")
                out[f"{prefix}{e}.down_proj.weight"] = d.contiguous()
    if layout == "per_expert":
        return out
    # Fused: experts.gate_up_proj [E, 2I, H] (gate rows first), experts.down_proj [E, H, I].
    res = {}
    groups = {}
    for k, v in out.items():
        if ".experts." in k:
            prefix, rest = k.split(".experts.")
            e, proj = rest.split(".")[0], rest.split(".")[1]
            groups.setdefault(prefix, {}).setdefault(int(e), {})[proj] = v
        else:
            res[k] = v
    for prefix, ex in groups.items():
        E = len(ex)
        res[f"{prefix}.experts.gate_up_proj"] = torch.stack(
            [torch.cat([ex[e]["gate_proj"], ex[e]["up_proj"]], 0) for e in range(E)]).contiguous()
        res[f"{prefix}.experts.down_proj"] = torch.stack(
            [ex[e]["down_proj"] for e in range(E)]).contiguous()
    return res


def write_checkpoint(d, sd, store, shards):
    sd = {k: v.to(DTYPES[store]).contiguous() for k, v in sd.items()}
    if shards == 1:
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        return
    keys = sorted(sd)
    per = math.ceil(len(keys) / shards)
    weight_map = {}
    total = 0
    for s in range(shards):
        part = keys[s * per:(s + 1) * per]
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file({k: sd[k] for k in part}, os.path.join(d, fname), metadata={"format": "pt"})
        for k in part:
            weight_map[k] = fname
            total += sd[k].numel() * sd[k].element_size()
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


class TrueFloat64:
    """Run transformers' own modules with every float32 cast of a float64 tensor kept in
    float64.

    JambaRMSNorm does `.to(torch.float32)`, the mixer does `A_log.float()`, `B.float()`,
    `hidden_states.float()`, and the router `softmax(dtype=torch.float)`. Those casts exist
    to *upcast* half precision; in a float64 run they round intermediates to float32 and
    leave ~1e-7 noise in the logprobs, which would make a 1e-9 check meaningless. Inside
    this context a cast from float64 to float32 is a no-op; the model code that runs is
    transformers' own, unchanged. Both variants are written (see make()) and the gap
    between them is logged.
    """

    def __enter__(self):
        self.to, self.float = torch.Tensor.to, torch.Tensor.float
        self.softmax = torch.nn.functional.softmax
        orig_to, orig_float, orig_softmax = self.to, self.float, self.softmax

        def to(t, *args, **kw):
            if t.dtype == torch.float64:
                args = tuple(torch.float64 if a is torch.float32 else a for a in args)
                if kw.get("dtype") is torch.float32:
                    kw["dtype"] = torch.float64
            return orig_to(t, *args, **kw)

        def flt(t, *args, **kw):
            return t if t.dtype == torch.float64 else orig_float(t, *args, **kw)

        def softmax(x, dim=None, _stacklevel=3, dtype=None):
            if dtype is torch.float32 and x.dtype == torch.float64:
                dtype = torch.float64
            return orig_softmax(x, dim=dim, _stacklevel=_stacklevel, dtype=dtype)

        torch.Tensor.to, torch.Tensor.float = to, flt
        torch.nn.functional.softmax = softmax
        return self

    def __exit__(self, *exc):
        torch.Tensor.to, torch.Tensor.float = self.to, self.float
        torch.nn.functional.softmax = self.softmax


def teacher_forced_logprobs(model, toks):
    ids = torch.tensor([toks], dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0].to(torch.float64)
    lp = torch.log_softmax(logits, dim=-1)
    return [lp[t - 1, toks[t]].item() for t in range(1, len(toks))]


def make(name, spec, out_dir, log):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    seed = sum(map(ord, name))
    torch.manual_seed(seed)
    cfg = JambaConfig(use_mamba_kernels=False, **spec["cfg"])
    model = JambaForCausalLM(cfg).to(torch.float64)
    gen = torch.Generator().manual_seed(seed)
    scale_weights(model, gen)
    if cfg.tie_word_embeddings:
        model.tie_weights()
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    log(f"[{name}] transformers state dict: " +
        ", ".join(f"{k}{tuple(v.shape)}" for k, v in list(sd.items())[:40]))
    hub = to_hub_layout(sd, cfg, spec["experts_layout"])
    write_checkpoint(d, hub, spec["store"], spec["shards"])
    cfg.save_pretrained(d)
    # config.json as saved by transformers; drop fields we do not need to keep it stable.
    ref = JambaForCausalLM.from_pretrained(
        d, dtype=torch.float64, use_mamba_kernels=False, attn_implementation="eager",
        experts_implementation="eager")
    ref.eval()
    # The reload must reproduce the stored (rounded) weights exactly: proves the
    # layout we wrote is the one transformers reads.
    want = {k: v.to(DTYPES[spec["store"]]).to(torch.float64) for k, v in sd.items()}
    got = {k: v.detach() for k, v in ref.state_dict().items()}
    for k, v in want.items():
        if k not in got or got[k].shape != v.shape or not torch.equal(got[k], v):
            raise SystemExit(f"[{name}] reload mismatch on {k}")
    gen = torch.Generator().manual_seed(seed + 1)
    seqs = [torch.randint(0, cfg.vocab_size, (L,), generator=gen).tolist() for L in SEQ_LENGTHS]
    # One sequence with a long repeated motif: attention must find the earlier copy.
    motif = torch.randint(0, cfg.vocab_size, (12,), generator=gen).tolist()
    seqs.append((motif * 8)[:90])
    worst = 0.0
    with open(os.path.join(d, "tokens.txt"), "w") as ft, \
            open(os.path.join(d, "logprobs_fp64.txt"), "w") as fl, \
            open(os.path.join(d, "logprobs_hf_native.txt"), "w") as fn:
        for s in seqs:
            with TrueFloat64():
                lps = teacher_forced_logprobs(ref, s)
            native = teacher_forced_logprobs(ref, s)
            worst = max(worst, max(abs(a - b) for a, b in zip(lps, native)))
            ft.write(" ".join(map(str, s)) + "\n")
            fl.write(" ".join("%.17g" % x for x in lps) + "\n")
            fn.write(" ".join("%.17g" % x for x in native) + "\n")
            mean = sum(lps) / len(lps)
            log(f"[{name}] L={len(s)} mean logprob {mean:.4f} (uniform {-math.log(cfg.vocab_size):.4f})")
    log(f"[{name}] max |true fp64 - transformers' native casts| = {worst:.3g}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--only")
    a = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    logf = open(os.path.join(a.out_dir, "make_golden.log"), "a")

    def log(msg):
        print(msg, flush=True)
        logf.write(msg + "\n")

    log(f"torch {torch.__version__} transformers {transformers.__version__}")
    for name, spec in MODELS.items():
        if a.only and name != a.only:
            continue
        make(name, spec, a.out_dir, log)


if __name__ == "__main__":
    main()
