#!/usr/bin/env python3
"""Rewrites a safetensors file for negative tests (python3 stdlib only).

  st_edit.py FILE list                      print "name dtype shape" per tensor
  st_edit.py FILE drop NAME                 remove a tensor
  st_edit.py FILE add NAME [DTYPE SHAPE]    add an extra tensor (default F32 2,3; zeros)
  st_edit.py FILE reshape NAME SHAPE        declare another shape (e.g. 64,2); the data is
                                            cut or zero-padded to match, so the file stays valid
  st_edit.py FILE dtype NAME DTYPE          declare another dtype (e.g. F8_E4M3, I64); the
                                            data is cut or zero-padded to numel * size
  st_edit.py FILE truncate [BYTES]          cut BYTES off the end (default: half the data)

Every edit but truncate writes a well-formed safetensors file (8-byte little-endian header
length, JSON header, then the data, offsets contiguous), so the loader must reject it for
what it means, not for how it is encoded.
"""
import json
import struct
import sys

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
         "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8}


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None)
    tensors = []
    # in file order, so that an untouched tensor keeps its place
    for name in sorted(header, key=lambda k: header[k]["data_offsets"][0]):
        t = header[name]
        a, b = t["data_offsets"]
        tensors.append([name, t["dtype"], list(t["shape"]), data[a:b]])
    return meta, tensors


def save(path, meta, tensors):
    header = {}
    if meta is not None:
        header["__metadata__"] = meta
    off = 0
    for name, dtype, shape, blob in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        off += len(blob)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for t in tensors:
            f.write(t[3])


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def fit(blob, nbytes):
    return blob[:nbytes] + b"\0" * max(0, nbytes - len(blob))


def find(tensors, name):
    for t in tensors:
        if t[0] == name:
            return t
    sys.exit(f"st_edit: no tensor {name!r}")


def parse_shape(s):
    return [int(x) for x in s.split(",") if x != ""]


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    path, op, args = argv[1], argv[2], argv[3:]
    if op == "truncate":
        with open(path, "rb") as f:
            raw = f.read()
        (n,) = struct.unpack("<Q", raw[:8])
        cut = int(args[0]) if args else (len(raw) - 8 - n) // 2
        with open(path, "wb") as f:
            f.write(raw[:len(raw) - cut])
        return
    meta, tensors = load(path)
    if op == "list":
        for name, dtype, shape, _ in tensors:
            print(name, dtype, ",".join(map(str, shape)))
        return
    if op == "drop":
        t = find(tensors, args[0])
        tensors.remove(t)
    elif op == "add":
        dtype = args[1] if len(args) > 1 else "F32"
        shape = parse_shape(args[2]) if len(args) > 2 else [2, 3]
        if any(t[0] == args[0] for t in tensors):
            sys.exit(f"st_edit: {args[0]!r} exists")
        tensors.append([args[0], dtype, shape, b"\0" * (numel(shape) * SIZES[dtype])])
    elif op == "reshape":
        t = find(tensors, args[0])
        t[2] = parse_shape(args[1])
        t[3] = fit(t[3], numel(t[2]) * SIZES[t[1]])
    elif op == "dtype":
        t = find(tensors, args[0])
        t[1] = args[1]
        t[3] = fit(t[3], numel(t[2]) * SIZES[args[1]])
    else:
        sys.exit(f"st_edit: unknown operation {op!r}\n{__doc__}")
    save(path, meta, tensors)


if __name__ == "__main__":
    main(sys.argv)
