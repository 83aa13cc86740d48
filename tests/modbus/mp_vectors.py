# Runs on MicroPython and CPython: decode the vectors read as JSON from stdin and print
# the results as JSON (tests/modbus/test_modbus_micropython.py compares both).
#   stdin: {"streams": [[hex, [cuts...]], ...], "floats": [bits...], "requests": [[a, f, r, arg]]}
#   "bench": N -> also time N decodes of an SDM630 answer (76 registers) and the heap
#   allocated per decode (MicroPython only: gc.mem_alloc)
import json
import sys
from binascii import hexlify, unhexlify

from protocols.modbus import RtuDecoder, request, values

from modbus_helpers import decode_all  # this script's folder: sys.path[0] on both ports


def run_stream(data, cuts):
    d = RtuDecoder()
    return [decode_all(d, data, cuts, silence=True), d.stats]


def f32_repr(bits):
    v = values.float_of_bits(bits)
    if not values.finite(v):
        return "nan" if v != v else ("inf" if v > 0 else "-inf")
    return repr(v)


def bench(n, data):
    import time

    try:
        import gc
        alloc = gc.mem_alloc
    except (ImportError, AttributeError):
        alloc = None
    d = RtuDecoder()
    t0 = time.ticks_us() if hasattr(time, "ticks_us") else int(time.perf_counter() * 1e6)
    a0 = alloc() if alloc else 0
    for _ in range(n):
        used, r = d.decode(data, 0, len(data))
    a1 = alloc() if alloc else 0
    t1 = time.ticks_us() if hasattr(time, "ticks_us") else int(time.perf_counter() * 1e6)
    s = 0.0
    t2 = t1
    for i in range(38):
        s += values.f32(r.data, r.offset + 4 * i)
    t3 = time.ticks_us() if hasattr(time, "ticks_us") else int(time.perf_counter() * 1e6)
    return {"us_per_decode": (t1 - t0) / n, "bytes_per_decode": (a1 - a0) / n,
            "frames": d.stats["frames"], "us_38_f32": t3 - t2, "check": s}


def main():
    req = json.loads(sys.stdin.read())
    out = {"streams": [run_stream(unhexlify(h), c) for h, c in req["streams"]],
           "floats": [f32_repr(b) for b in req["floats"]],
           "requests": [hexlify(request(a, f, r, g)).decode() for a, f, r, g in req["requests"]]}
    if req.get("bench"):
        out["bench"] = bench(req["bench"], unhexlify(req["bench_data"]))
    print(json.dumps(out))


main()
