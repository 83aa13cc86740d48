"""TIC test helpers: capture files, VERIFICATION.txt numbers, the persistent
MicroPython differential worker (one process per test session)."""

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CAPTURES = ROOT.parent / "shared" / "captures" / "tic"


def capture_files():
    """Capture file names (for parametrize at collection time; [] if absent)."""
    if not CAPTURES.is_dir():
        return []
    return sorted(p.name for p in CAPTURES.glob("*.bin"))


def parse_verification(path):
    """{file: {"frames": complete STX..ETX frames, "ok": groups ok, "total": pieces,
    "bad": [piece bytes, ...], "bad_edge": [...]}} from VERIFICATION.txt."""
    out = {}
    cur = None
    head = re.compile(r"^== (\S+)\s+mode=\S+ .*strict-frames=(\d+)/(\d+) groups ok=(\d+)/(\d+)")
    for line in Path(path).read_text().splitlines():
        m = head.match(line)
        if m:
            cur = out[m.group(1)] = {"frames": int(m.group(3)), "ok": int(m.group(4)),
                                     "total": int(m.group(5)), "bad": [], "bad_edge": []}
            continue
        s = line.strip()
        if cur is not None and s.startswith("BAD "):
            lit = re.match(r"BAD (b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\")", s).group(1)
            piece = ast.literal_eval(lit)
            edge = "piece: capture" in s
            (cur["bad_edge"] if edge else cur["bad"]).append(piece)
    return out


@pytest.fixture(scope="session")
def verification(captures_dir):
    return parse_verification(captures_dir / "VERIFICATION.txt")


def read_capture(captures_dir, name):
    return (captures_dir / name).read_bytes()


class MicroPythonWorker:
    """``micropython tests/protocols/tic_worker.py`` kept alive; ``run(mode, chunk,
    data)`` returns the same string as ``tic_worker.run`` would on CPython."""

    def __init__(self, exe, root):
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join([str(HERE), str(root)])
        self.proc = subprocess.Popen([exe, str(HERE / "tic_worker.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, text=True, bufsize=1)

    def run(self, mode, chunk, data):
        self.proc.stdin.write("%d %d %s\n" % (mode, chunk, data.hex()))
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("micropython worker died (exit %s)" % self.proc.poll())
        return line.rstrip("\n")

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


@pytest.fixture(scope="session")
def mp_worker(micropython, project_root):
    w = MicroPythonWorker(micropython, project_root)
    try:
        yield w
    finally:
        w.close()
