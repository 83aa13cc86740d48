"""TIC test helpers (imported as ``tests.protocols.tic_helpers``: tests/ is not a
package, and a package named ``protocols`` here would shadow the real one)."""

import ast
import importlib.util
import re
from pathlib import Path

from protocols.tic import AUTO, TicDecoder, labels

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CAPTURES = ROOT.parent / "shared" / "captures" / "tic"


def capture_files():
    """Capture file names (for parametrize at collection time; [] if absent)."""
    if not CAPTURES.is_dir():
        return []
    return sorted(p.name for p in CAPTURES.glob("*.bin"))


def read_capture(captures_dir, name):
    return (captures_dir / name).read_bytes()


def load_capture_module(captures_dir, name):
    """Import verify_captures.py / error_fragments.py from the captures folder."""
    spec = importlib.util.spec_from_file_location(name, captures_dir / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_fragments(captures_dir):
    return load_capture_module(captures_dir, "error_fragments").FRAGMENTS


def decode_chunks(data, sizes=(), mode=AUTO, d=None):
    """(decoder, [(mode, groups dict copy, invalid), ...]) for ``data`` cut into chunks
    of the given sizes (cycled; empty: at once), each a fresh buffer; every decode()
    call must make progress within its chunk.  ``d``: go on with that decoder."""
    d = d or TicDecoder(mode)
    out = []
    i = k = 0
    while i < len(data):
        step = sizes[k % len(sizes)] if sizes else len(data)
        k += 1
        buf = data[i:i + step]
        i += step
        p = 0
        while p < len(buf):
            used, f = d.decode(buf, p)
            assert 0 < used <= len(buf) - p, "decode() made no progress or overran its chunk"
            p += used
            if f is not None:
                out.append((f.mode, labels.pairs(f.groups), f.invalid))
    return d, out


def decode_all(data, mode=AUTO, chunk=0):
    """decode_chunks() in slices of ``chunk`` bytes (0: at once)."""
    return decode_chunks(data, [chunk] if chunk else (), mode)


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


def tic_reference(mode, chunk, data):
    """What passerelle/mpeval.py's TIC evaluation gives on CPython for ``data`` fed in
    slices of ``chunk`` bytes (0: at once): frames (groups sorted) and counters."""
    from passerelle.mpworker import MicroPythonWorker
    return MicroPythonWorker.reference("tic", mode, [chunk] if chunk else [], data.hex())


class TicOnMicroPython:
    """The same evaluation on the session's MicroPython worker (passerelle.mpworker)."""

    def __init__(self, worker):
        self.worker = worker

    def run(self, mode, chunk, data):
        return self.worker.call("tic", mode, [chunk] if chunk else [], data.hex())
