#!/usr/bin/env python3
"""MicroPython-compatibility and project-rule lint for the portable code.

Checks protocols/ and firmware/ (the code that runs on a board):
  * hardware modules (machine, network, esp32, esp, onewire, ds18x20) imported only in firmware/hal/;
  * no `assert` (stripped under -O: it would check nothing on a board);
  * no CPython-only modules (typing, dataclasses, enum, abc, pathlib, re in protocols/),
    except in HOST_ONLY modules (never imported on MicroPython: their importer checks
    compat.IS_MICROPYTHON first; the other rules still apply to them);
  * no module-level mutable state (lists, dicts, sets, bytearrays bound at import time
    to a non-ALL_CAPS name, `global` statements): several gateways must be able to run
    in one process; ALL_CAPS tables are read-only by convention;
  * sys.platform only inspected in firmware/hal/;
  * no module over 600 lines.
Exit status 1 with one line per finding, each with a hint.
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HARDWARE = {"machine", "network", "esp32", "esp", "onewire", "ds18x20"}
CPYTHON_ONLY = {"typing", "dataclasses", "enum", "abc", "pathlib", "functools", "itertools", "threading"}
MAX_LINES = 600
# CPython-only speed-ups: the TIC decoder's whole-frame path (imported by decoder.py
# only when not compat.IS_MICROPYTHON; tests/protocols/test_tic_frames.py checks it)
HOST_ONLY = {"protocols/tic/frames.py"}


def portable_files():
    for top in ("protocols", "firmware"):
        yield from sorted((ROOT / top).rglob("*.py"))


def mutable(node):
    if isinstance(node, (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id in ("list", "dict", "set", "bytearray", "memoryview")
    return False


def check(path):
    rel = path.relative_to(ROOT).as_posix()
    in_hal = rel.startswith("firmware/hal/")
    text = path.read_text(encoding="utf-8")
    out = []
    lines = text.count("\n")
    if lines > MAX_LINES:
        out.append("%s: %d lines (> %d): split it by responsibility" % (rel, lines, MAX_LINES))
    try:
        tree = ast.parse(text, rel)
    except SyntaxError as e:
        return out + ["%s:%s: syntax error: %s" % (rel, e.lineno, e.msg)]
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for n in names:
                top = n.split(".")[0]
                if top in HARDWARE and not in_hal:
                    out.append("%s:%d: imports %s; only firmware/hal/ may touch hardware" % (rel, node.lineno, top))
                if top in CPYTHON_ONLY and rel not in HOST_ONLY:
                    out.append("%s:%d: imports %s, which MicroPython lacks" % (rel, node.lineno, top))
                if top == "re" and rel.startswith("protocols/"):
                    out.append("%s:%d: imports re; protocols/ must not depend on the optional re module" % (rel, node.lineno))
        elif isinstance(node, ast.Assert):
            out.append("%s:%d: assert is stripped by -O; raise a documented error or count it" % (rel, node.lineno))
        elif isinstance(node, ast.Attribute) and node.attr == "platform" and not in_hal:
            if isinstance(node.value, ast.Name) and node.value.id == "sys":
                out.append("%s:%d: sys.platform outside firmware/hal/; ask the HAL instead" % (rel, node.lineno))
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if targets and mutable(value):
            # ALL_CAPS names are read-only lookup tables by convention; anything else
            # bound to a mutable object at import time is state shared by every gateway.
            names = [t.id for t in targets if isinstance(t, ast.Name) and not t.id.lstrip("_").isupper()]
            if names and names != ["__all__"]:
                out.append("%s:%d: module-level mutable %s; use a tuple, an ALL_CAPS read-only table, "
                           "or keep it in an instance" % (rel, node.lineno, ", ".join(names)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            out.append("%s:%d: `global %s` mutates module state shared by every gateway in the process"
                       % (rel, node.lineno, ", ".join(node.names)))
    return out


def main():
    findings = []
    for p in portable_files():
        findings += check(p)
    for f in findings:
        print(f)
    print("lint_portable: %d finding(s) in %d files" % (len(findings), len(list(portable_files()))))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
