#!/usr/bin/env python3
"""Writes a tiny random Jamba checkpoint with ONE Mamba layer and no attention, for the
real-scale narrow_state_offset run (configs/gpu/overflow_real.yaml).

    python3 tools/gpu/make_overflow_model.py OUT_DIR [--seed N]

Shape: hidden 256, d_inner 512 (expand 2), d_state 16, so one slot's SSM state is
512 x 16 = 8,192 elements; the config pads each slot to cache.slot_stride = 89,600 (the
real bug's stride). With a 32-bit offset, slot 47,935 + k wraps to element
47,935 x 89,600 - 2^32 + k x 89,600 = 8,704 + k x 89,600: 8,704 elements into slot k, past
its 8,192-element state, so a wrapped write lands in padding and never on another live
state. Divergence then marks exactly the sequences in slots >= 47,935, nothing else.

Layer 0 is Mamba (attn_layer_period 2, offset 1: the first attention layer would be layer 1,
and there is none); the feed-forward is a dense MLP (num_experts 1). Weights are small
uniform random numbers (seeded), A_log = log(1..16) and D = 1 as in Mamba's init, dt's bias
so that softplus(dt) starts in [0.001, 0.1]. Pure standard library (no numpy, no
safetensors package): the GPU machine needs nothing installed.
"""
import argparse
import array
import json
import math
import os
import random
import struct
import sys

VOCAB, HIDDEN, INTER, D_STATE, EXPAND, D_CONV, DT_RANK = 256, 256, 512, 16, 2, 4, 16
D_INNER = EXPAND * HIDDEN


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)

    def unif(n, scale):
        return array.array("f", (rng.uniform(-scale, scale) for _ in range(n)))

    def const(n, v):
        return array.array("f", [v] * n)

    t = {}
    t["model.embed_tokens.weight"] = ([VOCAB, HIDDEN], unif(VOCAB * HIDDEN, 1.0))
    p = "model.layers.0"
    t[p + ".input_layernorm.weight"] = ([HIDDEN], const(HIDDEN, 1.0))
    t[p + ".pre_ff_layernorm.weight"] = ([HIDDEN], const(HIDDEN, 1.0))
    m = p + ".mamba"
    t[m + ".in_proj.weight"] = ([2 * D_INNER, HIDDEN], unif(2 * D_INNER * HIDDEN, 1 / math.sqrt(HIDDEN)))
    t[m + ".conv1d.weight"] = ([D_INNER, 1, D_CONV], unif(D_INNER * D_CONV, 0.5))
    t[m + ".conv1d.bias"] = ([D_INNER], unif(D_INNER, 0.1))
    t[m + ".x_proj.weight"] = ([DT_RANK + 2 * D_STATE, D_INNER],
                               unif((DT_RANK + 2 * D_STATE) * D_INNER, 1 / math.sqrt(D_INNER)))
    t[m + ".dt_proj.weight"] = ([D_INNER, DT_RANK], unif(D_INNER * DT_RANK, 1 / math.sqrt(DT_RANK)))
    dt = [math.exp(rng.uniform(math.log(1e-3), math.log(1e-1))) for _ in range(D_INNER)]
    t[m + ".dt_proj.bias"] = ([D_INNER], array.array("f", (math.log(math.expm1(x)) for x in dt)))
    t[m + ".A_log"] = ([D_INNER, D_STATE],
                       array.array("f", (math.log(n + 1) for _ in range(D_INNER) for n in range(D_STATE))))
    t[m + ".D"] = ([D_INNER], const(D_INNER, 1.0))
    t[m + ".out_proj.weight"] = ([HIDDEN, D_INNER], unif(HIDDEN * D_INNER, 1 / math.sqrt(D_INNER)))
    t[m + ".dt_layernorm.weight"] = ([DT_RANK], const(DT_RANK, 1.0))
    t[m + ".b_layernorm.weight"] = ([D_STATE], const(D_STATE, 1.0))
    t[m + ".c_layernorm.weight"] = ([D_STATE], const(D_STATE, 1.0))
    f = p + ".feed_forward"
    t[f + ".gate_proj.weight"] = ([INTER, HIDDEN], unif(INTER * HIDDEN, 1 / math.sqrt(HIDDEN)))
    t[f + ".up_proj.weight"] = ([INTER, HIDDEN], unif(INTER * HIDDEN, 1 / math.sqrt(HIDDEN)))
    t[f + ".down_proj.weight"] = ([HIDDEN, INTER], unif(HIDDEN * INTER, 1 / math.sqrt(INTER)))
    t["model.final_layernorm.weight"] = ([HIDDEN], const(HIDDEN, 1.0))
    t["lm_head.weight"] = ([VOCAB, HIDDEN], unif(VOCAB * HIDDEN, 1 / math.sqrt(HIDDEN)))

    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(t):
        shape, data = t[name]
        assert len(data) == math.prod(shape), name
        if sys.byteorder != "little":
            data.byteswap()
        b = data.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as fh:
        fh.write(struct.pack("<Q", len(hj)))
        fh.write(hj)
        for b in blobs:
            fh.write(b)
    cfg = {
        "model_type": "jamba", "architectures": ["JambaForCausalLM"], "hidden_act": "silu",
        "vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": INTER,
        "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 4,
        "num_experts": 1, "num_experts_per_tok": 1, "expert_layer_period": 2, "expert_layer_offset": 1,
        "attn_layer_period": 2, "attn_layer_offset": 1,
        "mamba_d_state": D_STATE, "mamba_d_conv": D_CONV, "mamba_expand": EXPAND,
        "mamba_dt_rank": DT_RANK, "mamba_conv_bias": True, "mamba_proj_bias": False,
        "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "sliding_window": None,
        "torch_dtype": "float32",
    }
    with open(os.path.join(a.out, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=2)
        fh.write("\n")
    n = sum(len(d) for _, d in t.values())
    print(f"{a.out}: 1 Mamba layer, hidden {HIDDEN}, d_inner {D_INNER}, d_state {D_STATE} "
          f"(state {D_INNER * D_STATE} elements), {n} parameters")


if __name__ == "__main__":
    main()
