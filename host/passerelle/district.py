"""``passerelle district --gateways N --broker URL [--duration S]``: a district of emulated
gateways publishing to one broker, measured from a subscriber.

* The firmware (``firmware/`` + ``protocols/``, compiled to ``.mpy`` by
  :func:`passerelle.build.build_mpy`) runs on the MicroPython unix port, MANY gateways per
  process: ``district_main.py`` (copied next to the build) starts ``count`` unmodified
  ``gw.app.Gateway`` objects in one asyncio loop, each with its own config, MQTT connection
  and TIC meter, and feeds every meter one standard three-phase frame per second in-process
  (``--procs`` processes share the gateways, default: ~64 gateways per process and at
  least one process per CPU, see PER_PROCESS).
* A paho-mqtt subscriber on CPython (``<base>/+/linky/state``) timestamps every state: the
  frame carries its hand-over time (PRM, ms since the epoch, same host clock) and a sequence
  number (EAST); latency = arrival - hand-over (the gateway's decode, state JSON, publish,
  the broker, the subscriber); loss = per-gateway sequence gaps plus gateways never heard.
* Report (stdout, ``--json FILE`` too): gateways, connected, messages/s over the measured
  window, latency p50/p99/max, lost messages and silent gateways, targets (N=1000: no loss,
  p99 < 100 ms).

``--broker mqtt://host:port`` targets any broker (a cluster's load balancer included, see
README "District simulation"); without it a loopback mosquitto is started and stopped.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from . import project_root
from .emulate import _die_with_parent, find_micropython, parse_broker

KB_PER_GATEWAY = 48     # heap per gateway in a district process (64-bit unix port), measured
# Gateways per process by default: MicroPython's asyncio polls every registered socket at
# each scheduler pass, so a process's cost per gateway grows with its gateway count.
# Measured on 2 cores, N=1000: 2 processes 5.0 ms CPU/message (221 msg/s delivered, 9 s
# p50), 8 processes 1.57 ms (p99 238 ms), 16 processes 1.48 ms (no loss, p99 56 ms).
PER_PROCESS = 64
WARMUP_S = 3.0


class Subscriber:
    """paho on ``<base>/+/linky/state``: latency and per-gateway sequence bookkeeping."""

    def __init__(self, host, port, base):
        import paho.mqtt.client as mqtt
        self.base = base
        self.lock = threading.Lock()
        self.window = None           # (t_start, t_end) wall clock: only these count
        self.lat = []
        self.count = 0
        self.total = 0
        self.last = {}               # gateway -> last sequence number
        self.first_in_window = {}
        self.gaps = 0
        self.out_of_order = 0
        self._ready = threading.Event()
        c = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                      client_id="district-sub-" + uuid.uuid4().hex[:6])
        c.max_queued_messages_set(0)
        c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe(base + "/+/linky/state", 0)
        c.on_subscribe = lambda *a: self._ready.set()
        c.on_message = self._on_message
        c.connect(host, port, 60)
        c.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("district subscriber: no SUBACK from %s:%d" % (host, port))

    @staticmethod
    def _num(payload, key):
        i = payload.find(key)
        if i < 0:
            return None
        i += len(key)
        while payload[i:i + 1] in (b" ", b'"', b":"):
            i += 1
        j = i
        while payload[j:j + 1].isdigit():
            j += 1
        return int(payload[i:j]) if j > i else None

    def _on_message(self, cl, ud, msg):
        now = time.time()
        if msg.retain:
            return
        p = msg.payload
        gw = msg.topic[len(self.base) + 1:].split("/", 1)[0]
        seq = self._num(p, b'"EAST"')
        ts = self._num(p, b'"PRM"')
        with self.lock:
            self.total += 1
            last = self.last.get(gw)
            if seq is not None:
                if last is not None:
                    if seq > last + 1 and self.window and self.window[0] <= now:
                        self.gaps += seq - last - 1
                    elif seq <= last:
                        self.out_of_order += 1
                self.last[gw] = max(seq, last or 0)
            w = self.window
            if w and w[0] <= now <= w[1]:
                self.count += 1
                self.first_in_window.setdefault(gw, seq)
                if ts:
                    self.lat.append(now * 1000.0 - ts)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def _cpu_s(pid):
    """CPU seconds (user + system) used so far by process ``pid`` (Linux), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _cpu(pids):
    vals = [_cpu_s(p) for p in pids]
    return None if any(v is None for v in vals) else sum(vals)


def _pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, len(xs) * p // 100)], 2)


def prepare_root(root=None):
    """Build the .mpy tree and put district_main.py beside it; returns the root."""
    from .build import build_mpy
    root = Path(root or project_root() / "build" / "district")
    root.mkdir(parents=True, exist_ok=True)
    build_mpy(project_root(), root)
    shutil.copyfile(Path(__file__).with_name("district_main.py"), root / "district_main.py")
    return root


def run(gateways, broker=None, duration=30.0, procs=None, micropython=None, rate=1.0,
        first_id=0, log=None):
    """Run the district; returns the report dict."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    if not procs:
        procs = max(os.cpu_count() or 1, -(-gateways // PER_PROCESS))
    procs = max(1, min(procs, gateways))
    mp = micropython or find_micropython()
    started = None
    if broker:
        host, port = parse_broker(broker)
    else:
        from .brokers import Mosquitto, launch
        started = launch(Mosquitto)
        host, port = started.host, started.port
    base = "district-" + uuid.uuid4().hex[:6]
    root = prepare_root()
    sub = Subscriber(host, port, base)
    children = []
    ready = []
    stats = []
    lock = threading.Lock()

    errors = []

    def reader(proc):
        tb = 0
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            with lock:
                if line.startswith("DISTRICT READY"):
                    ready.append(int(line.split()[2]))
                elif line.startswith("DISTRICT STATS "):
                    stats.append(json.loads(line[15:]))
                elif tb or "Traceback" in line or "Error" in line or line.startswith("E "):
                    tb = 8 if "Traceback" in line else max(0, tb - 1)
                    if len(errors) < 40:
                        errors.append(line[:300])
                        log("district: %s" % line[:300])

    t0 = time.monotonic()
    try:
        share = [gateways // procs + (1 if i < gateways % procs else 0) for i in range(procs)]
        first = first_id
        connect_s = 30 + gateways * 0.03
        for k, count in enumerate(share):
            heap_kb = 2048 + count * KB_PER_GATEWAY
            proot = root / ("p%d" % k)      # this process's board flash (NVS, outbox): its own
            shutil.rmtree(proot, ignore_errors=True)
            proot.mkdir()
            cfg = {"first": first, "count": count, "host": host, "port": port, "base": base,
                   "root": proot.name,
                   "duration": duration + WARMUP_S + 2.0, "rate": rate,
                   "connect_timeout_s": connect_s, "gc_threshold": heap_kb * 1024 // 8}
            first += count
            env = dict(os.environ)
            env["MICROPYPATH"] = os.pathsep.join([".frozen", str(root / "lib")])
            p = subprocess.Popen([mp, "-X", "heapsize=%dK" % heap_kb, "district_main.py",
                                  json.dumps(cfg)], cwd=str(root), env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 preexec_fn=_die_with_parent)
            children.append(p)
            threading.Thread(target=reader, args=(p,), daemon=True).start()
        deadline = time.monotonic() + connect_s + 10
        while len(ready) < procs and time.monotonic() < deadline:
            if any(p.poll() is not None for p in children):
                break
            time.sleep(0.2)
        connected = sum(ready)
        setup_s = time.monotonic() - t0
        log("district: %d/%d gateways connected in %.1f s (%d processes); measuring %g s"
            % (connected, gateways, setup_s, procs, duration))
        time.sleep(WARMUP_S)
        pids = [p.pid for p in children]
        bpid = [started.proc.pid] if started is not None and started.proc is not None else []
        cpu0, bcpu0 = _cpu(pids), _cpu(bpid)
        w0 = time.time()
        sub.window = (w0, w0 + duration)
        time.sleep(duration)
        cpu1, bcpu1 = _cpu(pids), _cpu(bpid)
        time.sleep(1.0)
        # the processes end by themselves (their duration covers the window); wait for STATS
        end = time.monotonic() + connect_s + 30
        while len(stats) < len(children) and time.monotonic() < end:
            if all(p.poll() is not None for p in children):
                break
            time.sleep(0.2)
    finally:
        for p in children:
            if p.poll() is None:
                for sig, wait in ((signal.SIGINT, 3), (signal.SIGTERM, 2), (signal.SIGKILL, 2)):
                    try:
                        p.send_signal(sig)
                        p.wait(wait)
                        break
                    except (subprocess.TimeoutExpired, ProcessLookupError):
                        continue
        sub.close()
        if started is not None:
            started.__exit__(None, None, None)
    with sub.lock:
        heard = set(sub.first_in_window)
        lat = list(sub.lat)
        expected = int(round(gateways * duration * rate))
        rep = {
            "gateways": gateways, "processes": procs, "connected": sum(ready),
            "broker": "%s:%d" % (host, port) if broker else "loopback mosquitto (started here)",
            "duration_s": duration, "rate_per_gateway_hz": rate,
            "setup_s": round(setup_s, 1),
            "messages": sub.count, "expected_messages": expected,
            "messages_per_s": round(sub.count / duration, 1),
            "latency_p50_ms": _pct(lat, 50), "latency_p99_ms": _pct(lat, 99),
            "latency_max_ms": round(max(lat), 2) if lat else None,
            "lost_messages": sub.gaps, "silent_gateways": gateways - len(heard),
            "out_of_order": sub.out_of_order,
            "firmware": stats, "firmware_errors": errors,
        }
    # what the window did not deliver beyond one frame per gateway at its edges: late
    # (still queued in the gateways' outboxes) or lost
    rep["undelivered_in_window"] = max(0, expected - gateways - sub.count)
    if cpu0 is not None and cpu1 is not None:
        rep["micropython_cpu_cores"] = round((cpu1 - cpu0) / duration, 2)
        if sub.count:
            rep["micropython_cpu_ms_per_message"] = round((cpu1 - cpu0) * 1000.0 / sub.count, 3)
    if bcpu0 is not None and bcpu1 is not None and bpid:
        rep["broker_cpu_cores"] = round((bcpu1 - bcpu0) / duration, 3)
    rep["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    rep["loss"] = rep["lost_messages"] + rep["silent_gateways"]
    rep["targets"] = {"no_loss": rep["loss"] == 0 and rep["connected"] == gateways
                      and rep["undelivered_in_window"] == 0,
                      "p99_below_100ms": rep["latency_p99_ms"] is not None
                      and rep["latency_p99_ms"] < 100.0}
    return rep


def add_parser(subparsers):
    p = subparsers.add_parser("district", help="N emulated gateways (many per MicroPython "
                              "process) publishing to one broker: messages/s, latency, loss",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--gateways", type=int, required=True, metavar="N")
    p.add_argument("--broker", default=None, metavar="URL",
                   help="mqtt://host:port (default: a loopback mosquitto started here)")
    p.add_argument("--duration", type=float, default=30.0, metavar="S",
                   help="measured window in seconds (default 30), after connection and warm-up")
    p.add_argument("--procs", type=int, default=None,
                   help="MicroPython processes sharing the gateways (default: %d gateways per "
                        "process, at least one per CPU)" % PER_PROCESS)
    p.add_argument("--rate", type=float, default=1.0, help="frames per second per gateway")
    p.add_argument("--first-id", type=int, default=0, metavar="K",
                   help="gateway ids gwK.. (several machines on one broker: disjoint ranges)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the report here")
    p.set_defaults(func=_cmd)


def _cmd(args):
    if args.gateways < 1:
        print("district: --gateways must be >= 1", file=sys.stderr)
        return 2
    try:
        rep = run(args.gateways, broker=args.broker, duration=args.duration, procs=args.procs,
                  rate=args.rate, first_id=args.first_id)
    except (ValueError, RuntimeError, OSError) as e:
        print("district: %s" % e, file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1) + "\n")
    for k in ("gateways", "processes", "connected", "setup_s", "messages_per_s", "expected_messages",
              "messages", "latency_p50_ms", "latency_p99_ms", "latency_max_ms", "lost_messages",
              "silent_gateways", "undelivered_in_window", "micropython_cpu_cores",
              "micropython_cpu_ms_per_message", "broker_cpu_cores", "load_avg"):
        print("%-30s %s" % (k, rep.get(k)))
    print("%-30s %s" % ("no loss", "PASS" if rep["targets"]["no_loss"] else "FAIL"))
    print("%-30s %s" % ("p99 < 100 ms", "PASS" if rep["targets"]["p99_below_100ms"] else "FAIL"))
    return 0 if all(rep["targets"].values()) else 1
