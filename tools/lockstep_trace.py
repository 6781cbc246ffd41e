#!/usr/bin/env python3
"""Load a lockstep HDF5 trace (schema: docs/trace.md).

    import lockstep_trace as lt
    t = lt.load("out/run.h5")        # {'attrs': {...}, 'summary': {...}, 'tokens': ndarray, ...}
    t["tokens"][t["tokens"]["divergent"] == 1]
    frames = lt.to_pandas("out/run.h5")   # needs pandas

    python3 tools/lockstep_trace.py TRACE.h5   # prints a summary
"""
import sys

import numpy as np

FORMAT = "lockstep-trace"
FORMAT_VERSION = 1


def _value(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def _attrs(obj):
    return {k: _value(v) for k, v in obj.attrs.items()}


def _decode(arr):
    """Fixed-length byte-string fields become str fields (NUL padding dropped)."""
    if arr.dtype.names is None:
        return arr.astype(f"U{arr.dtype.itemsize}") if arr.dtype.kind == "S" else arr
    if not any(arr.dtype[n].kind == "S" for n in arr.dtype.names):
        return arr
    dt = np.dtype([(n, f"U{arr.dtype[n].itemsize}" if arr.dtype[n].kind == "S" else arr.dtype[n])
                   for n in arr.dtype.names])
    out = np.empty(arr.shape, dtype=dt)
    for n in arr.dtype.names:
        col = arr[n]
        out[n] = np.char.decode(col, "ascii", "replace") if col.dtype.kind == "S" else col
    return out


def load(path):
    """Returns {'attrs': root attributes, 'summary': /summary attributes, and one numpy array
    per dataset, keyed by its name without the slash}."""
    import h5py

    with h5py.File(path, "r") as f:
        attrs = _attrs(f)
        if attrs.get("format") != FORMAT:
            raise ValueError(f"{path}: not a lockstep trace (format {attrs.get('format')!r})")
        if attrs.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported format_version {attrs.get('format_version')!r}")
        out = {"attrs": attrs, "summary": _attrs(f["summary"])}
        for name, obj in f.items():
            if isinstance(obj, h5py.Dataset):
                out[name] = _decode(obj[()])
    return out


def to_pandas(path):
    """One pandas DataFrame per dataset (plus 'attrs' and 'summary' dicts)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("lockstep_trace.to_pandas needs pandas (pip install pandas); "
                          "load() works without it") from None
    t = load(path)
    out = {}
    for k, v in t.items():
        if isinstance(v, np.ndarray):
            out[k] = pd.DataFrame(v) if v.dtype.names else pd.DataFrame({"token": v})
        else:
            out[k] = v
    return out


def summary(t):
    a, s = t["attrs"], t["summary"]
    lines = [
        f"lockstep {a['tool_version']} trace, created {a['created']}",
        f"config {a['config_path'] or '(none)'}; model {a['model_dir']} ({a['model_hash']})",
        f"{a['precision']} / {a['mode']} / {a['backend']}: {a['verdict']} (exit {a['exit_code']})",
        f"{s['tokens']} tokens, {s['divergent_tokens']} divergent; "
        f"{s['seqs']} sequences, {s['divergent_seqs']} divergent",
        f"|delta| max {s['max_abs']:.6g} mean {s['mean_abs']:.6g} std {s['std_abs']:.6g}; "
        f"pearson {s['prob_pearson']:.9g}, k3 {s['kl_k3']:.6g}",
        f"{len(t['steps'])} steps, {s['preemptions']} preemptions, {s['forks']} forks",
    ]
    for d in t["divergences"][:10]:
        lines.append(f"  request {d['request']} rollout {d['rollout']} position {d['position']} "
                     f"slot {d['slot']} prev tenant {d['prev_tenant']}: layer {d['layer']} "
                     f"{d['component']}: {d['summary']}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: lockstep_trace.py TRACE.h5")
    print(summary(load(sys.argv[1])))
