"""The same Modbus vectors on the MicroPython unix port and on CPython: identical
responses, counters, float32 values and requests; decode speed and heap per answer
on the unix port."""

import json
import random
import struct
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from passerelle.strategies import modbus as mst

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "mp_vectors.py"
ROOT = HERE.parents[1]


def vectors(seed=6, n=60):
    rnd = random.Random(seed)
    streams = []
    for i in range(n):
        data = bytearray()
        for _ in range(rnd.randint(0, 4)):
            if rnd.random() < 0.5:
                data += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 30)))
            f = rnd.choice((3, 4, 6, 16))
            a = rnd.randint(1, 247)
            if rnd.random() < 0.15:
                body = [a, f | 0x80, rnd.randint(1, 11)]
            elif f in (3, 4):
                k = rnd.randint(1, 125)
                body = [a, f, 2 * k] + [rnd.randrange(256) for _ in range(2 * k)]
            else:
                body = [a, f] + [rnd.randrange(256) for _ in range(4)]
            frame = bytearray(mst.adu(body))
            if rnd.random() < 0.1:
                frame[rnd.randrange(len(frame))] ^= 1 << rnd.randrange(8)
            data += frame
        cuts = sorted(set(rnd.randint(1, max(1, len(data) - 1)) for _ in range(rnd.randint(0, 6))))
        streams.append([data.hex(), [c for c in cuts if 0 < c < len(data)]])
    floats = [0, 0x80000000, 1, 0x807FFFFF, 0x00800000, 0x7F7FFFFF, 0x7F800000, 0xFF800000,
              0x7FC00000, 0x3F800000, 0x43663333] + [rnd.getrandbits(32) for _ in range(200)]
    requests = [[1, 4, 0, 76], [247, 3, 65535, 1], [0, 6, 18, 256], [2, 16, 28, [0x4140, 0]]]
    return {"streams": streams, "floats": floats, "requests": requests}


def run_cpython(req):
    p = subprocess.run([sys.executable, str(SCRIPT)], input=json.dumps(req), capture_output=True,
                       text=True, timeout=60, cwd=str(ROOT), env={"PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def run_mp(run_micropython, req):
    p = run_micropython(SCRIPT, input=json.dumps(req), timeout=120)
    assert p.returncode == 0, p.stderr + p.stdout
    return json.loads(p.stdout)


def test_same_results_on_micropython_and_cpython(run_micropython):
    req = vectors()
    mp, cp = run_mp(run_micropython, req), run_cpython(req)
    assert mp["streams"] == cp["streams"]
    assert mp["requests"] == cp["requests"]
    assert mp["requests"][0] == mst.adu(bytes.fromhex("01040000004c")).hex()
    # floats: the unix port prints repr() with fewer digits; compare the values
    for bits, a, b in zip(req["floats"], mp["floats"], cp["floats"]):
        ref = struct.unpack(">f", bits.to_bytes(4, "big"))[0]
        if a in ("nan", "inf", "-inf"):
            assert a == b
        else:
            assert float(a) == float(b) == ref or abs(float(a) - ref) <= abs(ref) * 1e-15, bits
    assert sum(len(s[0]) for s in cp["streams"]) > 50  # the vectors do hold frames


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(mst.streams(), st.randoms(use_true_random=False)), min_size=5,
                max_size=10))
def test_hypothesis_streams_on_micropython(run_micropython, batch):
    streams = []
    for s, rnd in batch:
        n = len(s.data)
        cuts = sorted(set(rnd.randint(1, n - 1) for _ in range(5))) if n > 1 else []
        streams.append([s.data.hex(), cuts])
    req = {"streams": streams, "floats": [], "requests": []}
    assert run_mp(run_micropython, req)["streams"] == run_cpython(req)["streams"]


def test_decode_speed_and_heap_on_the_unix_port(run_micropython):
    regs = [0x4366, 0x3333] * 38
    body = [1, 4, 2 * len(regs)]
    for r in regs:
        body += [r >> 8, r & 0xFF]
    req = {"streams": [], "floats": [], "requests": [], "bench": 300,
           "bench_data": mst.adu(body).hex()}
    b = run_mp(run_micropython, req)["bench"]
    print("unix port: %.0f us per 157-byte SDM630 answer, %.0f bytes allocated per decode, "
          "38 float32 in %d us" % (b["us_per_decode"], b["bytes_per_decode"], b["us_38_f32"]))
    assert b["frames"] == 300
    assert b["bytes_per_decode"] <= 64  # the (used, response) tuple; no per-byte allocation
    assert b["us_per_decode"] < 20000  # generous: a loaded CI machine


@settings(max_examples=60, deadline=None)
@given(st.lists(mst.typed_values(), min_size=1, max_size=40))
def test_setup_values_identical_on_micropython(mpw, items):
    """values.regs (set-up writes: float32 rounding, subnormals, overflow, word order)
    gives the same registers on the unix port (passerelle.mpeval 'regs')."""
    mp, py = mpw.compare("regs", [list(i) for i in items])
    assert "exc" not in py, py
    assert mp == py
