#!/usr/bin/env python3
"""Render a lockstep trace or sweep (HDF5) as a self-contained HTML page with plots.

    render.py FILE.h5 -o DIR [--verdict-file TXT] [--lockstep BIN]

Writes DIR/index.html (every plot embedded as a base64 PNG, and linked to the PNG file
written next to it). `lockstep report FILE.h5 -o DIR` runs this; see reports/README.md.

A trace (docs/trace.md): divergence heatmap (sequence x position), |delta| histogram,
divergence by Mamba slot and by engine step, and the textual verdict of `lockstep
analyse` (from --verdict-file, else by running --lockstep BIN analyse FILE).
A sweep (docs/sweeps.md): the grid coloured by divergence rate, onset step per point, the
divergent share per slot with the analysis' threshold, and /analysis verdict_text.

Needs numpy, h5py and matplotlib (the Agg backend: no display).
"""
import argparse
import base64
import html
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

if "MPLCONFIGDIR" not in os.environ:
    os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="lockstep-mpl.")

try:
    import numpy as np
    import h5py
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colors
except ImportError as e:  # the C command checks first; this is for direct use
    print(f"render.py: {e}: needs python3 with numpy, h5py and matplotlib "
          "(Debian: python3-numpy python3-h5py python3-matplotlib)", file=sys.stderr)
    sys.exit(2)

DPI = 100


def _s(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def attrs(obj):
    return {k: _s(v) for k, v in obj.attrs.items()}


class Page:
    def __init__(self, outdir, title):
        self.outdir = outdir
        self.title = title
        self.parts = []
        self.images = []

    def h(self, level, text):
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text):
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def pre(self, text, cls="verdict"):
        self.parts.append(f'<pre class="{cls}">{html.escape(text)}</pre>')

    def table(self, rows, header=None):
        out = ["<table>"]
        if header:
            out.append("<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in header) + "</tr>")
        for r in rows:
            out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
        out.append("</table>")
        self.parts.append("\n".join(out))

    def figure(self, fig, name, caption):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
        plt.close(fig)
        data = buf.getvalue()
        with open(os.path.join(self.outdir, name), "wb") as f:
            f.write(data)
        self.images.append(name)
        b64 = base64.b64encode(data).decode("ascii")
        self.parts.append(
            f'<figure><a href="{html.escape(name)}"><img src="data:image/png;base64,{b64}" '
            f'alt="{html.escape(caption)}" data-file="{html.escape(name)}"></a>'
            f"<figcaption>{html.escape(caption)} ({html.escape(name)})</figcaption></figure>")

    def write(self):
        css = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
               "pre.verdict{background:#f6f6f6;border-left:4px solid #c33;padding:.8em;"
               "white-space:pre-wrap;font-size:13px}"
               "table{border-collapse:collapse;font-size:13px;margin:.5em 0}"
               "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
               "figure{margin:1em 0}img{max-width:100%}figcaption{font-size:12px;color:#555}")
        doc = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
               f"<title>{html.escape(self.title)}</title><style>{css}</style></head><body>\n"
               + "\n".join(self.parts) + "\n</body></html>\n")
        tmp = os.path.join(self.outdir, ".index.html.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(doc)
        os.replace(tmp, os.path.join(self.outdir, "index.html"))


# ---- shared plots ---------------------------------------------------------------------


def slot_threshold(text):
    """The slot threshold T named by an analysis text ("slot >= 47"), or None."""
    m = re.search(r"slot >= ([0-9,]+)", text or "")
    return int(m.group(1).replace(",", "")) if m else None


def seq_slots(tokens):
    """Per sequence: the Mamba slot of its last compared token (its final residency), and
    whether it diverged."""
    out = {}
    for s, slot, d in zip(tokens["seq"], tokens["slot"], tokens["divergent"]):
        s = int(s)
        prev = out.get(s, (int(slot), False))
        out[s] = (int(slot), prev[1] or bool(d))
    return out


def plot_slot_share(ax, slots_div, T, num_slots=None, title=""):
    """Bars: share of divergent sequences per slot; a line at the threshold."""
    if not slots_div:
        ax.text(0.5, 0.5, "no sequences", ha="center", va="center", transform=ax.transAxes)
        return
    per = {}
    for slot, d in slots_div:
        n, k = per.get(slot, (0, 0))
        per[slot] = (n + 1, k + (1 if d else 0))
    xs = np.array(sorted(per))
    share = np.array([per[x][1] / per[x][0] for x in xs])
    cols = ["#c0392b" if s > 0 else "#27ae60" for s in share]
    width = 1.0 if len(xs) < 2 else max(0.8, min(1.0, float(np.min(np.diff(xs)))))
    ax.bar(xs, np.maximum(share, 0.02), width=width, color=cols, edgecolor="none")
    if T is not None:
        ax.axvline(T - 0.5, color="k", linestyle="--", linewidth=1.2)
        ax.text(T - 0.5, 1.04, f" T = {T}", ha="left", va="bottom", fontsize=9)
    if num_slots:
        ax.set_xlim(-1, max(num_slots, int(xs.max()) + 1))
    ax.set_ylim(0, 1.12)
    counts = np.array([per[x][0] for x in xs])
    if counts.max() > 1:
        ax2 = ax.twinx()
        ax2.plot(xs, counts, color="#555555", linewidth=0.8, drawstyle="steps-mid", alpha=0.7)
        ax2.set_ylabel("sequences in the slot (grey)", color="#555555", fontsize=8)
        ax2.set_ylim(0, counts.max() * 1.15)
    ax.set_xlabel("Mamba state slot (final residency of the sequence)")
    ax.set_ylabel("divergent share of sequences")
    ax.set_title(title or "divergence by slot (green: clean, red: divergent)")


# ---- trace ------------------------------------------------------------------------------


def verdict_for(path, verdict_file, lockstep):
    if verdict_file and os.path.exists(verdict_file):
        with open(verdict_file, encoding="utf-8", errors="replace") as f:
            return f.read()
    cands = [lockstep] if lockstep else []
    here = os.path.dirname(os.path.abspath(__file__))
    cands += [os.path.join(here, "..", "build", "lockstep"), shutil.which("lockstep")]
    for c in cands:
        if c and os.path.exists(c):
            p = subprocess.run([c, "analyse", path], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
            if p.returncode == 0:
                return p.stdout
            return f"(lockstep analyse failed: {p.stderr.strip()})"
    return "(no verdict: lockstep not found)"


def render_trace(path, outdir, verdict_file, lockstep):
    with h5py.File(path, "r") as f:
        a = attrs(f)
        summ = attrs(f["summary"])
        tok = f["tokens"][()]
        seqs = f["sequences"][()]
    verdict = verdict_for(path, verdict_file, lockstep)
    page = Page(outdir, f"lockstep trace: {os.path.basename(path)}")
    page.h(1, f"lockstep trace {os.path.basename(path)}")
    page.table([
        ("config", a.get("config_path", "") or "(none)"),
        ("model", f"{a.get('model_dir', '')} (hash {a.get('model_hash', '')})"),
        ("run", f"{a.get('precision', '')}, {a.get('mode', '')} mode, {a.get('backend', '')} backend"),
        ("verdict", f"{a.get('verdict', '')} (exit {a.get('exit_code', '')})"),
        ("tokens", f"{summ.get('tokens', 0)} compared, {summ.get('divergent_tokens', 0)} divergent"),
        ("sequences", f"{summ.get('seqs', 0)}, {summ.get('divergent_seqs', 0)} divergent"),
        ("|delta|", f"max {summ.get('max_abs', 0):.6g}, mean {summ.get('mean_abs', 0):.6g}"),
        ("cache", f"{summ.get('num_slots', '?')} slots (stride {summ.get('slot_stride', '?')}), "
                  f"{summ.get('num_blocks', '?')} KV blocks"),
    ])
    page.h(2, "Verdict")
    page.pre(verdict)

    n = len(tok)
    div = tok["divergent"].astype(bool) if n else np.zeros(0, bool)
    delta = tok["delta"] if n else np.zeros(0)
    finite = np.isfinite(delta)

    # 1. heatmap: sequence x position
    nseq = int(max(len(seqs), (tok["seq"].max() + 1) if n else 0))
    if n:
        pmin, pmax = int(tok["position"].min()), int(tok["position"].max())
    else:
        pmin, pmax = 0, 0
    grid = np.full((max(nseq, 1), pmax - pmin + 1), np.nan)
    vals = np.where(div, np.where(finite, np.log10(np.maximum(np.abs(np.where(finite, delta, 1.0)), 1e-300)), 99.0), -99.0)
    if n:
        grid[tok["seq"], tok["position"] - pmin] = vals
    dv = vals[div & finite] if n else np.zeros(0)
    vmin = float(np.floor(dv.min())) if dv.size else -16.0
    vmax = float(np.ceil(dv.max())) if dv.size else 1.0
    if vmax <= vmin:
        vmax = vmin + 1
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_under("#d5efd9")   # clean
    cmap.set_over("#e74c3c")    # non-finite
    cmap.set_bad("#f4f4f4")     # no token
    h = max(2.5, min(14.0, 0.18 * nseq + 1.5))
    fig, ax = plt.subplots(figsize=(10, h))
    im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", interpolation="nearest", cmap=cmap,
                   norm=colors.Normalize(vmin=vmin, vmax=vmax),
                   extent=(pmin - 0.5, pmax + 0.5, nseq - 0.5, -0.5))
    cb = fig.colorbar(im, ax=ax, extend="both")
    cb.set_label("log10 |delta| (divergent)")
    ax.set_xlabel("position")
    ax.set_ylabel("sequence")
    ax.set_title("divergence heatmap (green: clean, colour: divergent, red: NaN/inf)")
    page.h(2, "Plots")
    page.figure(fig, "heatmap.png", "divergence heatmap over sequence x position")

    # 2. |delta| histogram
    fig, ax = plt.subplots(figsize=(8, 3.5))
    nz = np.abs(delta[finite & (delta != 0)]) if n else np.zeros(0)
    if nz.size:
        lo = np.floor(np.log10(nz.min()))
        hi = np.ceil(np.log10(nz.max())) + 1e-9
        bins = np.logspace(lo, max(hi, lo + 1), 40)
        ax.hist(nz, bins=bins, color="#8e44ad")
        ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "every compared token is bitwise equal" if n else "no tokens",
                ha="center", va="center", transform=ax.transAxes)
    eq = int(np.sum(delta == 0)) if n else 0
    ax.set_title(f"|delta| of differing tokens ({eq} exactly equal, "
                 f"{int(np.sum(~finite))} non-finite not shown)")
    ax.set_xlabel("|engine - reference| (log scale)")
    ax.set_ylabel("tokens")
    page.figure(fig, "delta_hist.png", "|delta| histogram")

    # 3. divergence by slot (tokens) with the threshold line
    T = slot_threshold(next((l for l in verdict.splitlines() if l.startswith("rule:")), ""))
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    ax = axes[0]
    if n:
        slots = tok["slot"]
        us = np.unique(slots)
        clean = np.array([np.sum((slots == s) & ~div) for s in us])
        dd = np.array([np.sum((slots == s) & div) for s in us])
        ax.bar(us, clean, color="#27ae60", label="clean", width=0.9)
        ax.bar(us, dd, bottom=clean, color="#c0392b", label="divergent", width=0.9)
        if T is not None:
            ax.axvline(T - 0.5, color="k", linestyle="--", linewidth=1.2)
            ax.text(T - 0.5, ax.get_ylim()[1], f" T = {T}", va="top", fontsize=9)
        ax.legend(fontsize=8)
    ax.set_xlabel("Mamba state slot")
    ax.set_ylabel("tokens")
    ax.set_title("tokens by slot")
    plot_slot_share(axes[1], list(seq_slots(tok).values()) if n else [], T,
                    summ.get("num_slots"), "sequences by slot: divergent share")
    page.figure(fig, "slot.png", "divergence vs Mamba state slot")

    # 4. divergence by step
    fig, ax = plt.subplots(figsize=(10, 3.2))
    if n:
        steps = tok["step"]
        us = np.unique(steps)
        clean = np.array([np.sum((steps == s) & ~div) for s in us])
        dd = np.array([np.sum((steps == s) & div) for s in us])
        ax.bar(us, clean, color="#27ae60", label="clean", width=0.9)
        ax.bar(us, dd, bottom=clean, color="#c0392b", label="divergent", width=0.9)
        ax.legend(fontsize=8)
    ax.set_xlabel("engine step")
    ax.set_ylabel("tokens produced")
    ax.set_title("divergence by engine step")
    page.figure(fig, "step.png", "divergence vs engine step")
    page.write()
    return page


# ---- sweep ------------------------------------------------------------------------------


def _num(v):
    try:
        return float(v)
    except ValueError:
        return None


def _sorted_vals(vals):
    if all(_num(v) is not None for v in vals):
        return sorted(vals, key=lambda v: _num(v))
    return sorted(vals)


def render_sweep(path, outdir, verdict_file=None):
    with h5py.File(path, "r") as f:
        a = attrs(f)
        axes = [x for x in (a.get("axes") or "").split("\n") if x]
        if "analysis" in f:
            an = attrs(f["analysis"])
            apts = f["analysis/points"][()]
            aaxes = f["analysis/axes"][()]
        elif verdict_file and os.path.exists(verdict_file):
            # a partial sweep (a shard, an unfinished run): /analysis is not written, the
            # verdict comes in a file and the per-point numbers from the traces
            with open(verdict_file, encoding="utf-8", errors="replace") as vf:
                text = vf.read()
            m = re.search(r"^lever: ([^:\s]+)", text, re.M)
            rl = next((l for l in text.splitlines() if l.startswith("rule:")), "")
            t = slot_threshold(rl)
            an = {"verdict_text": text, "lever": m.group(1) if m and m.group(1) != "none" else "",
                  "rule": f"slot >= {t}" if t is not None else "", "threshold": t if t is not None else -1}
            apts, aaxes = None, []
        else:
            print(f"render.py: {path} has no /analysis (run `lockstep analyse {path}` first)",
                  file=sys.stderr)
            return None
        points = []
        for name in sorted(f["points"]):
            g = f["points"][name]
            ga = attrs(g)
            assign = dict(l.split("=", 1) for l in (ga.get("assignments") or "").split("\n") if "=" in l)
            p = {"name": name, "index": ga.get("index"), "assign": assign,
                 "status": ga.get("status", "ok")}
            if "tokens" in g:
                t = g["tokens"][()]
                if apts is None:
                    d = t["divergent"].astype(bool) if len(t) else np.zeros(0, bool)
                    p["fallback"] = {
                        "rate": float(d.mean()) if len(t) else float("nan"),
                        "onset": int(t["step"][d].min()) if d.any() else -1,
                        "seq_rate": (len(set(t["seq"][d].tolist())) / len(set(t["seq"].tolist()))
                                     if len(t) else float("nan"))}
                p["slots"] = list(seq_slots(t).values()) if len(t) else []
                p["num_slots"] = _s(g["summary"].attrs.get("num_slots", 0)) if "summary" in g else 0
            else:
                p["slots"] = []
            points.append(p)
    by_index = {int(r["index"]): r for r in apts} if apts is not None else {}
    for p in points:
        r = by_index.get(int(p["index"])) if p["index"] is not None else None
        if r is None and "fallback" in p:
            p.update(p["fallback"])
            p["rule"] = "-"
            continue
        p["rate"] = float(r["rate"]) if r is not None else float("nan")
        p["onset"] = int(r["onset_step"]) if r is not None else -1
        p["rule"] = _s(r["rule"]) if r is not None else "?"
        p["seq_rate"] = (float(r["divergent_seqs"]) / float(r["seqs"])
                         if r is not None and r["seqs"] > 0 else float("nan"))
    verdict = an.get("verdict_text", "")
    lever = an.get("lever", "")
    T = int(an.get("threshold", -1))
    rule = an.get("rule", "")
    if T < 0 or not rule.startswith("slot"):
        T = None

    page = Page(outdir, f"lockstep sweep: {os.path.basename(path)}")
    page.h(1, f"lockstep sweep {os.path.basename(path)}")
    page.table([
        ("spec", a.get("spec_path", "")),
        ("points", f"{len(points)} of {a.get('n_points', '?')}"),
        ("axes", " x ".join(axes) or "(none)"),
        ("rule", rule or "(none)"),
        ("lever", lever or "(none)"),
        ("axis effects", ", ".join(f"{_s(r['axis'])}: {_s(r['effect'])}" for r in aaxes) or "-"),
    ])
    page.h(2, "Verdict")
    page.pre(verdict)
    page.h(2, "Plots")

    # 1. the grid coloured by divergence rate
    def label(p):
        return " ".join(f"{k.split('.')[-1]}={v}" for k, v in p["assign"].items()) or p["name"]

    if len(axes) == 2:
        xs = _sorted_vals({p["assign"].get(axes[1], "") for p in points})
        ys = _sorted_vals({p["assign"].get(axes[0], "") for p in points})
        M = np.full((len(ys), len(xs)), np.nan)
        R = [["" for _ in xs] for _ in ys]
        for p in points:
            try:
                i = ys.index(p["assign"].get(axes[0], ""))
                j = xs.index(p["assign"].get(axes[1], ""))
            except ValueError:
                continue
            M[i, j] = p["rate"]
            R[i][j] = p["rule"]
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(xs) + 2), max(3, 0.9 * len(ys) + 1.5)))
        cmap = plt.get_cmap("Reds").copy()
        cmap.set_bad("#dddddd")
        im = ax.imshow(np.ma.masked_invalid(M), cmap=cmap, vmin=0, vmax=max(1e-9, np.nanmax(M) if np.isfinite(M).any() else 1),
                       aspect="auto")
        for i in range(len(ys)):
            for j in range(len(xs)):
                if np.isfinite(M[i, j]):
                    txt = f"{100 * M[i, j]:.1f}%\n{R[i][j][:22]}"
                    ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                            color="white" if M[i, j] > 0.6 * np.nanmax(M) and M[i, j] > 0 else "black")
        ax.set_xticks(range(len(xs)), xs)
        ax.set_yticks(range(len(ys)), ys)
        ax.set_xlabel(axes[1])
        ax.set_ylabel(axes[0])
        fig.colorbar(im, ax=ax).set_label("divergent token rate")
        ax.set_title("divergence rate over the grid")
    else:
        if len(axes) == 1:
            pts = sorted(points, key=lambda p: _num(p["assign"].get(axes[0], "")) or 0)
            labels = [p["assign"].get(axes[0], "") for p in pts]
        else:
            pts = points
            labels = [label(p) for p in pts]
        fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(pts) + 2), 3.6))
        rates = [0 if not np.isfinite(p["rate"]) else p["rate"] for p in pts]
        ax.bar(range(len(pts)), rates, color=["#c0392b" if r > 0 else "#27ae60" for r in rates])
        for i, p in enumerate(pts):
            ax.text(i, rates[i], p["rule"][:18], ha="center", va="bottom", fontsize=7, rotation=90)
        ax.set_xticks(range(len(pts)), labels, rotation=45 if len(axes) != 1 else 0, ha="right" if len(axes) != 1 else "center")
        ax.set_xlabel(axes[0] if len(axes) == 1 else "point")
        ax.set_ylabel("divergent token rate")
        ax.set_ylim(0, max(rates + [0.01]) * 1.35)
        ax.set_title("divergence rate per point")
    page.figure(fig, "grid.png", "the grid coloured by divergence rate")

    # 2. onset step per point
    fig, ax = plt.subplots(figsize=(8, 3.6))
    if axes:
        xa = lever if lever in axes else axes[0]
        others = [x for x in axes if x != xa]
        xs = _sorted_vals({p["assign"].get(xa, "") for p in points})
        groups = {}
        for p in points:
            key = ", ".join(f"{o.split('.')[-1]}={p['assign'].get(o, '')}" for o in others)
            groups.setdefault(key, []).append(p)
        for key, ps in sorted(groups.items()):
            ps = sorted(ps, key=lambda p: xs.index(p["assign"].get(xa, "")))
            xi = [xs.index(p["assign"].get(xa, "")) for p in ps]
            on = [p["onset"] if p["onset"] >= 0 else np.nan for p in ps]
            ax.plot(xi, on, marker="o", label=key or "onset")
            none = [x for x, p in zip(xi, ps) if p["onset"] < 0]
            if none:
                ax.scatter(none, [0] * len(none), marker="x", color="#27ae60", zorder=3)
        ax.set_xticks(range(len(xs)), xs)
        ax.set_xlabel(xa)
        if len(groups) > 1:
            ax.legend(fontsize=7, ncol=2)
    else:
        on = [p["onset"] if p["onset"] >= 0 else np.nan for p in points]
        ax.plot(range(len(points)), on, marker="o")
        ax.set_xlabel("point")
    ax.set_ylabel("onset step (first divergent step)")
    ax.set_title("onset of divergence (green x: no divergence)")
    page.figure(fig, "onset.png", "onset step per point")

    # 3. threshold plot: divergent share per slot over all points
    fig, ax = plt.subplots(figsize=(10, 3.6))
    allslots = [sd for p in points for sd in p["slots"]]
    nsl = max([int(p.get("num_slots") or 0) for p in points] + [0])
    plot_slot_share(ax, allslots, T, nsl,
                    "divergent share of sequences per slot, all points" +
                    (f" (threshold {T})" if T is not None else ""))
    page.figure(fig, "threshold.png", "divergent share per slot with the threshold line")

    page.h(2, "Points")
    page.table([(p["name"], " ".join(f"{k}={v}" for k, v in p["assign"].items()),
                 f"{100 * p['rate']:.2f}%" if np.isfinite(p["rate"]) else "-",
                 f"{100 * p['seq_rate']:.1f}%" if np.isfinite(p["seq_rate"]) else "-",
                 p["onset"] if p["onset"] >= 0 else "-", p["rule"]) for p in points],
               header=["point", "assignments", "token rate", "seq share", "onset step", "rule"])
    page.write()
    return page


def main():
    ap = argparse.ArgumentParser(description="Render a lockstep trace or sweep as HTML.")
    ap.add_argument("file")
    ap.add_argument("-o", "--out", required=True, help="output directory")
    ap.add_argument("--verdict-file", help="textual verdict for a trace (lockstep analyse output)")
    ap.add_argument("--lockstep", help="lockstep binary, to run `lockstep analyse` for a trace")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    try:
        with h5py.File(a.file, "r") as f:
            fmt = _s(f.attrs.get("format", ""))
    except OSError as e:
        print(f"render.py: cannot open {a.file}: {e}", file=sys.stderr)
        return 2
    if fmt == "lockstep-trace":
        page = render_trace(a.file, a.out, a.verdict_file, a.lockstep)
    elif fmt == "lockstep-sweep":
        page = render_sweep(a.file, a.out, a.verdict_file)
    else:
        print(f"render.py: {a.file} is neither a lockstep trace nor a sweep (format {fmt!r})",
              file=sys.stderr)
        return 2
    if page is None:
        return 2
    print(f"render.py: wrote {os.path.join(a.out, 'index.html')} and {len(page.images)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
