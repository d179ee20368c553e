#!/usr/bin/env python3
"""Prints the ONNX op types (with counts) of each .onnx file: the importer's to-do list.

Usage: python3 list_ops.py [FILE_OR_DIR ...]   (default: models/ next to this script)
       --union   also print the union over all files (op: number of files using it)
Needs the onnx package (Debian's python3-onnx or the corpus venv).
"""
import collections
import os
import sys

import onnx


def files(args):
    for a in args:
        if os.path.isdir(a):
            yield from sorted(os.path.join(a, f) for f in os.listdir(a) if f.endswith(".onnx"))
        else:
            yield a


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    union = "--union" in sys.argv
    if not args:
        args = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")]
    used_by = collections.Counter()
    for path in files(args):
        model = onnx.load(path, load_external_data=False)
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), "?")
        ops = collections.Counter(n.op_type for n in model.graph.node)
        used_by.update(ops.keys())
        print(f"{os.path.basename(path)} (opset {opset}, {sum(ops.values())} nodes): "
              + ", ".join(f"{op} {n}" for op, n in sorted(ops.items())))
    if union:
        print("union: " + ", ".join(f"{op} {n}" for op, n in sorted(used_by.items())))


if __name__ == "__main__":
    main()
