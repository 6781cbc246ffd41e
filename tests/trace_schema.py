#!/usr/bin/env python3
"""The trace file matches docs/trace.md exactly, and the readers read it.

    trace_schema.py [TEST_TRACE_EXE LOCKSTEP_EXE]

Writes the synthetic trace with `test_trace --write`, parses the markdown tables in
docs/trace.md and checks the file against them: every documented dataset exists with
exactly the documented fields in order and types, every documented attribute exists with
its type, and nothing undocumented is in the file. Then runs `lockstep inspect` on it (and
on files that are not traces) and loads it with tools/lockstep_trace.py.
Exit 0 pass, 1 fail, 77 skip (no h5py)."""
import os
import re
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError:
    # A pyenv or venv python without h5py: fall back to the system one (python3-h5py).
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != \
            os.path.realpath("/usr/bin/python3") and not os.environ.get("LS_TRACE_SCHEMA_REEXEC"):
        os.environ["LS_TRACE_SCHEMA_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("trace_schema: h5py/numpy not available, skipping", file=sys.stderr)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("LS_SOURCE_ROOT") or os.path.dirname(HERE)
BUILD = os.environ.get("LS_BUILD_ROOT") or os.path.join(SRC, "build")
if len(sys.argv) == 3:
    TEST_TRACE, LOCKSTEP = sys.argv[1], sys.argv[2]
else:
    TEST_TRACE = os.path.join(BUILD, "tests", "test_trace")
    LOCKSTEP = os.path.join(BUILD, "lockstep")

TYPES = {"int64": "<i8", "int32": "<i4", "float64": "<f8", "uint8": "|u1"}

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


def cells(line):
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.strip().strip("`").replace("\\|", "|") for p in parts]


def parse_doc(path):
    """{'attrs': {obj_path: [(name, type)]}, 'datasets': {ds_path: [(field, type)]}}"""
    attrs, datasets = {}, {}
    section = None
    rows = None
    for line in open(path, encoding="utf-8"):
        if line.startswith("#"):
            h = line.lstrip("#").strip()
            m = re.search(r"`(/[^`]*)`", h)
            if h.lower().startswith("root attributes"):
                section = ("attrs", "/")
            elif h.lower().startswith("group") and "attributes" in h.lower() and m:
                section = ("attrs", m.group(1))
            elif h.lower().startswith("dataset") and m:
                section = ("datasets", m.group(1))
            else:
                section = None
            rows = None
            continue
        if not line.lstrip().startswith("|"):
            rows = None
            continue
        c = cells(line)
        if rows is None:  # header row
            if section is None:
                raise SystemExit(f"{path}: a table under a heading the schema test does not "
                                 f"understand: {line.strip()}")
            want = ["attribute", "type", "meaning"] if section[0] == "attrs" else \
                ["field", "type", "meaning"]
            if c != want:
                raise SystemExit(f"{path}: table header {c}, expected {want}")
            target = attrs if section[0] == "attrs" else datasets
            if section[1] in target:
                raise SystemExit(f"{path}: {section[1]} documented twice")
            rows = target[section[1]] = []
            continue
        if all(set(x) <= set("-: ") for x in c):
            continue  # separator
        rows.append((c[0], c[1]))
    return {"attrs": attrs, "datasets": datasets}


def type_ok(doc_type, dt):
    if doc_type.startswith("string"):
        if h5py.check_string_dtype(dt) is None and dt.kind != "S":
            return False
        m = re.fullmatch(r"string\((\d+)\)", doc_type)
        if m:
            return dt.kind == "S" and dt.itemsize == int(m.group(1))
        return True
    return doc_type in TYPES and dt.str == TYPES[doc_type]


def check_file(path, doc):
    with h5py.File(path, "r") as f:
        objects = {}
        f.visititems(lambda name, obj: objects.setdefault("/" + name, obj))
        documented_groups = {p for p in doc["attrs"] if p != "/"}
        for p, obj in objects.items():
            if isinstance(obj, h5py.Dataset):
                check(p in doc["datasets"], f"undocumented dataset {p}")
                check(len(obj.attrs) == 0, f"undocumented attributes on {p}: {list(obj.attrs)}")
            else:
                check(p in documented_groups, f"undocumented group {p}")
        for p, fields in doc["datasets"].items():
            if p not in f:
                check(False, f"documented dataset {p} missing")
                continue
            ds = f[p]
            check(isinstance(ds, h5py.Dataset) and ds.ndim == 1, f"{p} is not a 1-D dataset")
            dt = ds.dtype
            if len(fields) == 1 and fields[0][0] == "-":
                check(dt.names is None, f"{p} should be a plain array, is compound")
                check(type_ok(fields[0][1], dt), f"{p}: type {dt.str}, documented {fields[0][1]}")
                continue
            names = list(dt.names or ())
            check(names == [n for n, _ in fields],
                  f"{p}: fields {names}, documented {[n for n, _ in fields]}")
            for n, t in fields:
                if n in (dt.names or ()):
                    check(type_ok(t, dt[n]), f"{p}.{n}: type {dt[n].str}, documented {t}")
        for p, names in doc["attrs"].items():
            if p not in f:
                check(False, f"documented group {p} missing")
                continue
            obj = f[p]
            have = set(obj.attrs)
            for n, t in names:
                if n not in have:
                    check(False, f"documented attribute {p}:{n} missing")
                    continue
                aid = obj.attrs.get_id(n)
                check(aid.shape == (), f"attribute {p}:{n} is not scalar")
                check(type_ok(t, aid.dtype), f"attribute {p}:{n}: type {aid.dtype}, documented {t}")
            extra = have - {n for n, _ in names}
            check(not extra, f"undocumented attributes on {p}: {sorted(extra)}")


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def main():
    doc = parse_doc(os.path.join(SRC, "docs", "trace.md"))
    check(set(doc["datasets"]) == {"/requests", "/sequences", "/sequence_tokens", "/tokens",
                                   "/steps", "/tenants", "/divergences", "/probes"},
          f"docs/trace.md documents datasets {sorted(doc['datasets'])}")
    check(set(doc["attrs"]) == {"/", "/summary"}, f"attribute tables {sorted(doc['attrs'])}")

    with tempfile.TemporaryDirectory(prefix="ls_trace_schema_") as tmp:
        trace = os.path.join(tmp, "run.h5")
        r = run([TEST_TRACE, "--write", trace])
        if r.returncode != 0:
            print(r.stdout, r.stderr, file=sys.stderr)
            raise SystemExit(f"{TEST_TRACE} --write failed ({r.returncode})")
        check(sorted(os.listdir(tmp)) == ["run.h5"], f"left behind: {os.listdir(tmp)}")
        check_file(trace, doc)

        # lockstep inspect: a trace, then things that are not.
        r = run([LOCKSTEP, "inspect", trace])
        check(r.returncode == 0, f"inspect exit {r.returncode}: {r.stderr}")
        check("divergence" in r.stdout and "conv_state" in r.stdout and
              "0123456789abcdef" in r.stdout, f"inspect output:\n{r.stdout}")
        not_h5 = os.path.join(tmp, "notes.txt")
        with open(not_h5, "w") as fh:
            fh.write("not an HDF5 file\n")
        foreign = os.path.join(tmp, "foreign.h5")
        with h5py.File(foreign, "w") as fh:
            fh.attrs["format"] = "something-else"
        truncated = os.path.join(tmp, "truncated.h5")
        with open(trace, "rb") as src, open(truncated, "wb") as dst:
            data = src.read()
            dst.write(data[: len(data) // 3])
        for bad in (not_h5, foreign, truncated, os.path.join(tmp, "missing.h5")):
            r = run([LOCKSTEP, "inspect", bad])
            check(r.returncode == 2 and bad in r.stderr and not r.stdout,
                  f"inspect {os.path.basename(bad)}: exit {r.returncode}, stderr {r.stderr!r}")
            check("HDF5-DIAG" not in r.stderr, f"HDF5 printed its own errors: {r.stderr}")

        # The Python loader.
        sys.path.insert(0, os.path.join(SRC, "tools"))
        import lockstep_trace as lt

        t = lt.load(trace)
        check(t["attrs"]["verdict"] == "divergence", f"loader verdict {t['attrs'].get('verdict')}")
        check(t["summary"]["tokens"] == len(t["tokens"]), "summary tokens != /tokens rows")
        check(len(t["divergences"]) == 1 and t["divergences"]["component"][0] == "conv_state",
              f"loader divergences {t['divergences']}")
        check(t["probes"]["component"][1] == "ssm_state", "probe component not decoded")
        s = t["sequences"]
        toks = t["sequence_tokens"]
        check(toks.dtype == np.int32 and len(toks) == int(s["len"].sum()), "sequence_tokens")
        row = t["tokens"][(t["tokens"]["seq"] == 1) & (t["tokens"]["position"] == 4)]
        check(len(row) == 1 and row["prev_tenant"][0] == 42 and row["divergent"][0] == 1,
              f"token row {row}")
        check("conv_state" in lt.summary(t), "loader summary")
        try:
            frames = lt.to_pandas(trace)
            check(len(frames["tokens"]) == len(t["tokens"]), "to_pandas tokens")
        except ImportError as e:
            check("pandas" in str(e), f"to_pandas error {e}")
        r = run([sys.executable, os.path.join(SRC, "tools", "lockstep_trace.py"), trace])
        check(r.returncode == 0 and "divergence" in r.stdout, f"loader __main__: {r.stderr}")

    if failures:
        print(f"trace_schema: {len(failures)} failures", file=sys.stderr)
        return 1
    print("trace_schema: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
