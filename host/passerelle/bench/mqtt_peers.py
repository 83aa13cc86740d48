"""MQTT publish throughput and latency of the peer clients, next to ours
(``passerelle.bench.mqtt``), against one loopback mosquitto:

* ``chumicro_mqtt`` and ``aiomqttc`` (pip-installable MicroPython clients) on the
  MicroPython unix port: pip installs them (pinned, no dependencies beyond their own
  MicroPython-side packages) with ``--target`` into ``build/bench/mpylib``, which is put on
  ``MICROPYPATH``; the measuring body is ``mqtt_peers_bench.py``;
* ``paho`` (paho-mqtt, the CPython reference) in this interpreter.

Each ``run_*`` returns ``{"qos0_msgs_per_s", "qos1_msgs_per_s", "latency_p50_ms",
"latency_p99_ms"}`` or raises; :func:`run_all` records ``None`` and the reason instead.
"""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parents[2]

# MicroPython packages, installed for the unix port only (never into the venv).
MPY_PINS = {
    "chumicro_mqtt": ["chumicro-mqtt==0.30.3", "chumicro-sockets==0.21.3",
                      "chumicro-timing==0.8.4", "chumicro-config==0.7.7"],
    "aiomqttc": ["aiomqttc==1.0.7"],
}


def mpy_lib_dir(root=None):
    return Path(root or _ROOT) / "build" / "bench" / "mpylib"


def install_mpy_clients(root=None):
    """pip install --target the pinned MicroPython clients (once; a stamp lists them)."""
    lib = mpy_lib_dir(root)
    pins = sorted(p for v in MPY_PINS.values() for p in v)
    stamp = lib / ".pins"
    if stamp.is_file() and stamp.read_text().split() == pins:
        return lib
    lib.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--upgrade", "--target", str(lib)] + pins,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("pip install --target failed: %s" % proc.stderr[-2000:])
    stamp.write_text("\n".join(pins) + "\n")
    return lib


def run_micropython_client(client, host, port, micropython, n_qos0=5000, n_qos1=2000,
                           n_qos1_slow=20, n_latency=300, payload=58, timeout=300):
    lib = install_mpy_clients()
    cfg = {"client": client, "host": host, "port": port, "n_qos0": n_qos0, "n_qos1": n_qos1,
           "n_qos1_slow": n_qos1_slow, "n_latency": n_latency, "payload": payload,
           "prefix": "bench/" + uuid.uuid4().hex[:8]}
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([".frozen", str(lib)])
    proc = subprocess.run([str(micropython), "-X", "heapsize=4M",
                           str(_HERE / "mqtt_peers_bench.py"), json.dumps(cfg)],
                          env=env, capture_output=True, text=True, timeout=timeout)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("BENCH ")]
    if not lines:
        raise RuntimeError("%s on the unix port failed: %s" % (client, (proc.stdout + proc.stderr)[-1500:]))
    res = json.loads(lines[-1][6:])
    tail = (proc.stdout + proc.stderr).strip().splitlines()
    errors = [x for x in tail if "Error" in x]
    if errors:
        res["stderr"] = errors[-1][:200]
    return res


def run_paho(host, port, n_qos0=20000, n_qos1=4000, n_latency=1000, payload=58, max_inflight=32):
    """paho-mqtt 2.x on CPython, its network loop in its own thread (loop_start)."""
    import paho.mqtt.client as mqtt

    data = b"x" * payload
    prefix = "bench/" + uuid.uuid4().hex[:8]

    def client(cid):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(0)
        ev = threading.Event()
        c.on_connect = lambda *a: ev.set()
        c.connect(host, port, keepalive=30)
        c.loop_start()
        if not ev.wait(5):
            raise OSError("paho: no CONNACK")
        return c

    res = {}
    for qos, n in ((0, n_qos0), (1, n_qos1)):
        c = client("paho-q%d" % qos)
        done = threading.Event()
        count = [0]

        def on_publish(cl, ud, mid, rc, props):
            count[0] += 1
            if count[0] >= n:
                done.set()

        c.on_publish = on_publish
        t0 = time.perf_counter()
        for _ in range(n):
            c.publish(prefix + "/p%d" % qos, data, qos=qos)
        ok = done.wait(60)
        dt = time.perf_counter() - t0
        res["qos%d_msgs_per_s" % qos] = round(n / dt) if ok else 0
        c.disconnect()
        c.loop_stop()
    c = client("paho-lat")
    got = threading.Event()
    stamp = [0.0]

    def on_message(cl, ud, msg):
        stamp[0] = time.perf_counter()
        got.set()

    subbed = threading.Event()
    c.on_message = on_message
    c.on_subscribe = lambda *a: subbed.set()
    c.subscribe(prefix + "/lat", 0)
    subbed.wait(5)
    lat = []
    for i in range(n_latency + 20):
        got.clear()
        t0 = time.perf_counter()
        c.publish(prefix + "/lat", data, qos=0)
        if not got.wait(2):
            lat.append(2.0)
        elif i >= 20:
            lat.append(stamp[0] - t0)
    c.disconnect()
    c.loop_stop()
    lat.sort()
    res["latency_p50_ms"] = round(lat[len(lat) // 2] * 1000, 3)
    res["latency_p99_ms"] = round(lat[min(len(lat) - 1, len(lat) * 99 // 100)] * 1000, 3)
    return res


KEYS = ("qos0_msgs_per_s", "qos1_msgs_per_s", "latency_p50_ms", "latency_p99_ms")


def run_all(micropython, host=None, port=None, quick=False):
    """``({client: {KEYS...}|None-valued}, notes)`` for chumicro_mqtt, aiomqttc, paho."""
    from passerelle.brokers import Mosquitto, launch
    broker = None
    if host is None:
        broker = launch(Mosquitto)
        host, port = broker.host, broker.port
    scale = 0.1 if quick else 1.0
    out, notes = {}, {}
    try:
        for client in ("chumicro_mqtt", "aiomqttc"):
            try:
                r = run_micropython_client(client, host, port, micropython,
                                           n_qos0=int(5000 * scale), n_qos1=int(2000 * scale),
                                           n_qos1_slow=10 if quick else 30,
                                           n_latency=int(300 * scale))
                if r.pop("stderr", None) and client == "aiomqttc":
                    notes["aiomqttc"] = ("runs on the unix port; publish(qos=1) polls for its "
                                         "PUBACK every 100 ms (one QoS1 message in flight); its "
                                         "receive loop references TimeoutError, which MicroPython "
                                         "lacks (NameError when the connection closes); its per-ack "
                                         "log lines were silenced")
                out[client] = {k: r.get(k) for k in KEYS}
            except Exception as e:   # noqa: BLE001 - recorded, not fatal
                out[client] = dict.fromkeys(KEYS)
                notes[client] = "could not run on the unix port: %s" % str(e)[-300:]
        try:
            r = run_paho(host, port, n_qos0=int(20000 * scale), n_qos1=int(4000 * scale),
                         n_latency=int(1000 * scale))
            out["paho"] = {k: r[k] for k in KEYS}
        except Exception as e:   # noqa: BLE001
            out["paho"] = dict.fromkeys(KEYS)
            notes["paho"] = "failed: %s" % e
    finally:
        if broker is not None:
            broker.__exit__(None, None, None)
    return out, notes


if __name__ == "__main__":
    from passerelle.emulate import find_micropython
    print(json.dumps(run_all(find_micropython(), quick="--quick" in sys.argv), indent=1))
