#!/usr/bin/env python3
"""Assemble a lockstep sweep file (docs/sweeps.md) from `lockstep run --trace` runs, for
tests of the analysis and the report that must not depend on `lockstep sweep`.

    make_sweep.py LOCKSTEP CONFIG.yaml OUT.h5 [-j N] [--set K=V ...] \
        --axis KEY=V1,V2,... [--axis KEY=...]

The grid is the cross product of the axes, first axis slowest (as in a sweep spec); every
point runs `LOCKSTEP run CONFIG --set ... --trace` and its trace is copied under
/points/pNNNNN with the point attributes of docs/sweeps.md. Needs h5py.
"""
import argparse
import itertools
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import h5py


def run_point(lockstep, config, sets, trace):
    cmd = [lockstep, "run", config]
    for s in sets:
        cmd += ["--set", s]
    cmd += ["--trace", trace]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stderr.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lockstep")
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--axis", action="append", default=[])
    a = ap.parse_args()

    axes = []
    for ax in a.axis:
        k, v = ax.split("=", 1)
        axes.append((k, v.split(",")))
    grid = list(itertools.product(*[[(k, x) for x in vals] for k, vals in axes])) or [()]
    tmp = tempfile.mkdtemp(prefix="mksweep.")
    jobs = []
    for i, pt in enumerate(grid):
        assigns = [f"{k}={v}" for k, v in pt]
        jobs.append((i, assigns, os.path.join(tmp, f"p{i:05d}.h5")))
    with ThreadPoolExecutor(max_workers=max(1, a.j)) as ex:
        results = list(ex.map(lambda j: run_point(a.lockstep, a.config, a.set + j[1], j[2]), jobs))

    spec = "base: %s\n" % a.config
    if a.set:
        spec += "set:\n" + "".join(f"  {s.split('=', 1)[0]}: {s.split('=', 1)[1]}\n" for s in a.set)
    if axes:
        spec += "grid:\n" + "".join(f"  {k}: [{', '.join(v)}]\n" for k, v in axes)
    part = a.out + ".part"
    with h5py.File(part, "w") as out:
        out.attrs["format"] = "lockstep-sweep"
        out.attrs["format_version"] = 1
        out.attrs["tool_version"] = "make_sweep.py"
        out.attrs["spec_path"] = a.config
        out.attrs["spec_text"] = spec
        out.attrs["axes"] = "\n".join(k for k, _ in axes)
        out.attrs["n_points"] = len(grid)
        out.attrs["shard"] = ""
        pts = out.create_group("points")
        for (i, assigns, trace), (rc, err) in zip(jobs, results):
            g = pts.create_group(f"p{i:05d}")
            g.attrs["index"] = i
            g.attrs["assignments"] = "\n".join(assigns)
            if rc not in (0, 1) or not os.path.exists(trace):
                g.attrs["status"] = "error"
                g.attrs["error"] = err or f"exit {rc}"
                g.attrs["verdict"] = "error"
                g.attrs["exit_code"] = 2
                continue
            g.attrs["status"] = "ok"
            g.attrs["error"] = ""
            g.attrs["verdict"] = "divergence" if rc == 1 else "ok"
            g.attrs["exit_code"] = rc
            with h5py.File(trace, "r") as t:
                for k in ("config_text", "model_hash", "precision", "mode", "backend"):
                    g.attrs[k] = t.attrs[k]
                for name in t:
                    t.copy(t[name], g, name=name)
            os.unlink(trace)
    os.replace(part, a.out)
    os.rmdir(tmp)
    bad = [i for (i, _, _), (rc, _) in zip(jobs, results) if rc not in (0, 1)]
    if bad:
        print(f"make_sweep: points {bad} failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
