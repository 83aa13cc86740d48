"""MQTT client benchmark: gw.mqtt.client on the MicroPython unix port against a
loopback mosquitto (started and stopped here unless host/port are given).

    python -m passerelle.bench.mqtt [--micropython PATH] [--cpython] [--json]

``run()`` returns ``{"qos0_msgs_per_s", "qos1_msgs_per_s", "latency_p50_ms",
"latency_p99_ms", ...}``; the method is in ``mqtt_client_bench.py`` (the portable
part that runs inside the interpreter under test).  Targets from
perf-reliability.md T6: latency p50 <= 1 ms, p99 <= 5 ms on loopback; a QoS1
round trip near 0.1 ms rather than Nagle's 44 ms.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[2]
BUDGET = {"latency_p50_ms": 1.0, "latency_p99_ms": 5.0}


def _interpreter_cmd(micropython, cpython):
    env = dict(os.environ)
    if cpython:
        env["PYTHONPATH"] = os.pathsep.join([str(_ROOT / "firmware"), str(_ROOT)])
        return [sys.executable, "-u"], env
    env["MICROPYPATH"] = os.pathsep.join([str(_ROOT / "firmware"), str(_ROOT), ".frozen"])
    return [str(micropython or _ROOT / ".venv" / "bin" / "micropython"), "-X", "heapsize=1M"], env


def run(micropython=None, host=None, port=None, n_qos0=20000, n_qos1=4000, n_latency=1000,
        payload=58, max_pending=32, cpython=False, timeout=300):
    """Measure; returns a dict (see module doc).  ``cpython=True`` runs the same client
    under this CPython's asyncio instead of the unix port, for comparison."""
    cfg = {"payload": payload, "n_qos0": n_qos0, "n_qos1": n_qos1, "n_latency": n_latency,
           "max_pending": max_pending, "prefix": "bench/" + uuid.uuid4().hex[:8]}
    broker = None
    if host is None:
        from passerelle.brokers import Mosquitto
        broker = Mosquitto().start()
        host, port = broker.host, broker.port
    try:
        cfg["host"], cfg["port"] = host, port
        argv, env = _interpreter_cmd(micropython, cpython)
        proc = subprocess.run(argv + [str(_HERE / "mqtt_client_bench.py"), json.dumps(cfg)],
                              env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        if broker is not None:
            broker.__exit__(None, None, None)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError("MQTT benchmark failed: %s%s" % (proc.stdout, proc.stderr))
    res = json.loads(lines[-1][6:])
    res["interpreter"] = "cpython" if cpython else "micropython-unix"
    res["payload_bytes"] = payload
    return res


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m passerelle.bench.mqtt",
                                 description="Benchmark the gateway MQTT client.")
    ap.add_argument("--micropython", default=None)
    ap.add_argument("--cpython", action="store_true", help="also measure under CPython")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    res = run(micropython=args.micropython)
    ok = all(res[k] <= v for k, v in BUDGET.items())
    out = {"micropython": res}
    if args.cpython:
        out["cpython"] = run(cpython=True)
    if args.json:
        out["budgets_ok"] = ok
        print(json.dumps(out))
        return 0 if ok else 1
    keys = ("qos0_msgs_per_s", "qos1_msgs_per_s", "qos1_sequential_msgs_per_s",
            "latency_p50_ms", "latency_p99_ms", "nodelay")
    print("%-28s %s" % ("", "  ".join("%14s" % k for k in out)))
    for k in keys:
        print("%-28s %s" % (k, "  ".join("%14s" % out[i][k] for i in out)))
    for k, v in BUDGET.items():
        print("%-28s <= %s  %s" % (k, v, "PASS" if res[k] <= v else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
