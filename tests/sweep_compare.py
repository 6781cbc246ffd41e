#!/usr/bin/env python3
"""Checks on sweep results files (docs/sweeps.md), for tests/test_sweep.sh.

  sweep_compare.py check FILE.h5 SPEC.yaml N [VERDICTS]
      the layout: root attributes (spec_text = the spec file's text, n_points = N),
      points p00000..p{N-1}, each with exactly the documented attributes, trace datasets
      and summary group (none for an error point); VERDICTS (comma-separated, one per
      point: ok / divergence / error) checks each point's verdict.
  sweep_compare.py same A.h5 B.h5
      identical content: the same groups, datasets (type, shape, bytes) and attributes
      everywhere (attributes named `created` are ignored: wall-clock).
  sweep_compare.py count FILE.h5
      prints the number of point groups (0 if the file cannot be read).
"""
import os
import re
import sys

import h5py
import numpy as np

POINT_ATTRS = {"index", "assignments", "status", "error", "verdict", "exit_code",
               "config_text", "model_hash", "precision", "mode", "backend"}
ROOT_ATTRS = {"format", "format_version", "tool_version", "spec_path", "spec_text", "axes",
              "n_points", "shard"}
TRACE_MD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "trace.md")


def trace_children():
    """A trace's datasets and groups, from the schema page docs/trace.md."""
    found = re.findall(r"^## (?:Dataset|Group) `/(\w+)`", open(TRACE_MD).read(), re.M)
    return set(found) or {"requests", "sequences", "sequence_tokens", "tokens", "steps",
                          "divergences", "probes", "summary"}


TRACE_CHILDREN = trace_children()
IGNORED_ATTRS = {"created"}


def s(v):
    return v.decode() if isinstance(v, bytes) else v


def check(path, spec_path, n, verdicts=None):
    errs = []
    with h5py.File(path, "r") as f:
        root = set(f.attrs)
        if root != ROOT_ATTRS:
            errs.append(f"root attributes {sorted(root)} != {sorted(ROOT_ATTRS)}")
        if s(f.attrs["format"]) != "lockstep-sweep" or int(f.attrs["format_version"]) != 1:
            errs.append("format / format_version")
        if s(f.attrs["spec_text"]) != open(spec_path).read():
            errs.append("spec_text differs from the spec file")
        if int(f.attrs["n_points"]) != n:
            errs.append(f"n_points {f.attrs['n_points']} != {n}")
        want = [f"p{i:05d}" for i in range(n)]
        have = sorted(f["points"])
        if have != want:
            errs.append(f"points {have} != {want}")
        for name in have:
            g = f["points"][name]
            a = set(g.attrs)
            if a != POINT_ATTRS:
                errs.append(f"{name}: attributes {sorted(a)} != {sorted(POINT_ATTRS)}")
                continue
            if int(g.attrs["index"]) != int(name[1:]):
                errs.append(f"{name}: index {g.attrs['index']}")
            status, verdict = s(g.attrs["status"]), s(g.attrs["verdict"])
            code = int(g.attrs["exit_code"])
            if status == "ok":
                if set(g) != TRACE_CHILDREN:
                    errs.append(f"{name}: children {sorted(g)} != {sorted(TRACE_CHILDREN)}")
                if (verdict, code) not in (("ok", 0), ("divergence", 1)):
                    errs.append(f"{name}: verdict {verdict} exit_code {code}")
                if len(s(g.attrs["model_hash"])) != 16 or s(g.attrs["error"]):
                    errs.append(f"{name}: model_hash / error of an ok point")
                if "trace: null" not in s(g.attrs["config_text"]):
                    errs.append(f"{name}: config_text keeps a trace path")
            elif status == "error":
                if len(g) or verdict != "error" or code != 2 or not s(g.attrs["error"]):
                    errs.append(f"{name}: malformed error point")
            else:
                errs.append(f"{name}: status {status}")
            if verdicts and int(name[1:]) < len(verdicts) and verdict != verdicts[int(name[1:])]:
                errs.append(f"{name}: verdict {verdict}, expected {verdicts[int(name[1:])]}")
    for e in errs:
        print(f"{path}: {e}", file=sys.stderr)
    return not errs


def attr_equal(x, y):
    x, y = s(x), s(y)
    if isinstance(x, str) or isinstance(y, str):
        return x == y
    ax, ay = np.asarray(x), np.asarray(y)
    return ax.dtype == ay.dtype and ax.shape == ay.shape and ax.tobytes() == ay.tobytes()


def same(pa, pb):
    errs = []

    def attrs(oa, ob, where):
        ka = set(oa.attrs) - IGNORED_ATTRS
        kb = set(ob.attrs) - IGNORED_ATTRS
        if ka != kb:
            errs.append(f"{where}: attributes {sorted(ka ^ kb)} in one file only")
        for k in sorted(ka & kb):
            if not attr_equal(oa.attrs[k], ob.attrs[k]):
                errs.append(f"{where}: attribute {k} differs")

    def walk(ga, gb, where):
        attrs(ga, gb, where or "/")
        if set(ga) != set(gb):
            errs.append(f"{where or '/'}: members {sorted(set(ga) ^ set(gb))} in one file only")
        for k in sorted(set(ga) & set(gb)):
            a, b = ga[k], gb[k]
            w = f"{where}/{k}"
            if isinstance(a, h5py.Group) and isinstance(b, h5py.Group):
                walk(a, b, w)
            elif isinstance(a, h5py.Dataset) and isinstance(b, h5py.Dataset):
                attrs(a, b, w)
                if a.dtype != b.dtype or a.shape != b.shape:
                    errs.append(f"{w}: dtype/shape {a.dtype}{a.shape} vs {b.dtype}{b.shape}")
                elif a[()].tobytes() != b[()].tobytes():
                    errs.append(f"{w}: data differs")
            else:
                errs.append(f"{w}: different kinds of object")

    with h5py.File(pa, "r") as fa, h5py.File(pb, "r") as fb:
        walk(fa, fb, "")
    for e in errs[:20]:
        print(f"{pa} vs {pb}: {e}", file=sys.stderr)
    return not errs


def count(path):
    try:
        with h5py.File(path, "r") as f:
            print(len(f["points"]))
    except Exception:  # noqa: BLE001 - absent or being replaced: none yet
        print(0)
    return True


def main(argv):
    if len(argv) >= 4 and argv[0] == "check":
        verdicts = argv[4].split(",") if len(argv) > 4 else None
        return check(argv[1], argv[2], int(argv[3]), verdicts)
    if len(argv) == 3 and argv[0] == "same":
        return same(argv[1], argv[2])
    if len(argv) == 2 and argv[0] == "count":
        return count(argv[1])
    print(__doc__, file=sys.stderr)
    return False


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
