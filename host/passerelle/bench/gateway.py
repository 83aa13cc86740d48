"""Whole-gateway benchmarks on the MicroPython unix port (``passerelle.emulate``):

* :func:`min_heapsize` -- the smallest ``-X heapsize`` at which the gateway scenario
  (standard three-phase TIC, plus the relays/Modbus meters the config schema has when
  it runs, discovery on, ``meter_s`` seconds of TIC line time replayed at ``speed``)
  runs without MemoryError, crash or board reset, found by bisection;
* :func:`heap_growth` -- free heap from the gateway's own ``<base>/<id>/stats`` (it runs
  ``gc.collect()`` then ``gc.mem_free()``) at frame ~100 and at frame ~N under
  accelerated replay; growth = free@100 - free@N (> 0: the gateway keeps more memory);
  the TIC state goes out at most once per second of gateway clock (``min_interval_s`` 1:
  at x100 one state per frame would pile up in the QoS 1 outbox, a backlog, not a leak);
* :func:`e2e` -- frame end to state on a subscriber: the time the TIC server's socket
  write carrying a frame's ETX returned, against the arrival, on a paho subscriber in
  this process (same clock), of the state whose DATE is that frame's; relay command ->
  pin -> state echo when the firmware has relays (else ``None`` and a note).

Every run uses mosquitto on loopback, the ``emu`` board and ``min_interval_s`` 0 (a
state per changed frame); the meter clock runs 60x (``accel``) so that every frame
changes the indexes and hence the state.
"""

import json
import re
import threading
import time
from pathlib import Path

from passerelle import project_root
from passerelle.emulate import Emulation, clear_board_state
from passerelle.sim.linky import LinkySim
from passerelle.tic_server import TicServer

DEVICE = "bench1"
RELAY_PIN = 12          # r1's GPIO in the scenario
BASE = "passerelle/" + DEVICE
FRAME_S = 1214 * 10 / 9600.0 + 0.025     # one standard three-phase frame on the wire
_ERR = re.compile(r"MemoryError|PASSERELLE CRASH|Traceback|board reset")
_DATE = re.compile(rb"\nDATE\t([^\t]*)\t")


def firmware_features(root=None):
    """What the firmware in this checkout can do, for the scenario and the notes."""
    gw = Path(root or project_root()) / "firmware" / "gw"
    app = (gw / "app.py").read_text()
    return {"relays_driven": "relays" in app and "/set" in app,
            "modbus_meters": (gw / "drivers" / "modbus_bus.py").is_file() or "modbus" in app}


# Two Modbus meters on one RS-485 link (emulated UART 2, served by passerelle.emulate with
# passerelle.sim.modbus): (id, model, slave address)
MODBUS_METERS = (("pac", "sdm630", 1), ("pv", "sdm120", 2))


def scenario_config(stats_period_s=5, relays=True, modbus=True, min_interval_s=0):
    """The gateway scenario's config (what the schema of this checkout accepts) and the
    notes saying what it lacks."""
    from passerelle.emulate import validate_config
    cfg = {"device_id": DEVICE, "name": "Bench", "mqtt": {"host": "127.0.0.1", "port": 1883},
           "network": {"type": "none"}, "stats_period_s": stats_period_s,
           "meters": [{"id": "linky", "type": "tic", "mode": "standard", "uart": 1,
                       "period_s": 5, "min_interval_s": min_interval_s}]}
    notes = []
    if modbus:
        mb = dict(cfg, meters=cfg["meters"] + [
            {"id": mid, "type": "modbus", "model": model, "uart": 2, "address": addr,
             "baudrate": 9600, "de_pin": 4, "period_s": 1, "timeout_ms": 250}
            for mid, model, addr in MODBUS_METERS])
        if not validate_config(project_root(), mb, {}):
            cfg = mb
        else:
            notes.append("no Modbus meters: the config schema does not accept them yet")
    if relays:
        with_relays = dict(cfg, relays=[{"id": "r%d" % i, "pin": p}
                                        for i, p in enumerate((12, 13, 14, 15), 1)])
        if not validate_config(project_root(), with_relays, {}):
            cfg = with_relays
            if not firmware_features()["relays_driven"]:
                notes.append("4 relays in the config (the schema has them) but the gateway "
                             "does not drive relays yet")
        else:
            notes.append("no relays: the config schema does not accept them yet")
    if relays and "relays" in cfg:
        notes.append("4 relays")
    if any(m["type"] == "modbus" for m in cfg["meters"]):
        notes.append("2 Modbus meters (SDM630 + SDM120 polled every second on one emulated "
                     "RS-485 link)")
    return cfg, notes


class _TimedConn:
    """The TIC server's client socket, recording when each write carrying an ETX returned."""

    def __init__(self, conn, server):
        self._c, self._s = conn, server

    def sendall(self, data):
        self._c.sendall(data)
        if b"\x03" in data:
            self._s.etx_sent(time.monotonic())

    def __getattr__(self, name):
        return getattr(self._c, name)


class TimedTicServer(TicServer):
    """A TicServer that knows, per frame (its DATE horodate), when the frame's ETX left."""

    def __init__(self, stream, *a, **kw):
        self.sent = {}                 # DATE -> monotonic time of the ETX write
        self._dates = []               # DATEs of the frames taken from the stream, in order
        self._lock = threading.Lock()
        super().__init__(self._tap(stream), *a, **kw)

    def _tap(self, stream):
        for t, raw in stream:
            m = _DATE.search(raw)
            with self._lock:
                self._dates.append(m.group(1).decode() if m else None)
            yield t, raw

    def etx_sent(self, when):
        with self._lock:
            if self._dates:
                d = self._dates.pop(0)
                if d:
                    self.sent[d] = when

    def _feed(self, conn):
        return super()._feed(_TimedConn(conn, self))


class BenchEmulation(Emulation):
    """Emulation whose TIC servers are :class:`TimedTicServer` (the Modbus links and the
    I/O server are passerelle.emulate's own)."""

    def _start_servers(self):
        mb = {str(m.get("uart", 2)) for m in (self.config or {}).get("meters", [])
              if m.get("type") == "modbus"}
        for i, (meter_id, uart) in enumerate(self.meter_uarts()):
            if uart in self.servers or uart in mb:
                continue
            sim = LinkySim(mode=self.tic_sim, phases=self.phases, tariff=self.tariff,
                           seed=self.seed + i, noise=self.noise, accel=self.accel)
            self.servers[uart] = TimedTicServer(sim.stream(), sim.line_rate(), self.speed,
                                                name=meter_id).start()
        super()._start_servers()


class Watcher:
    """paho subscriber on ``<base>/#``: states (with arrival time), stats, boot."""

    def __init__(self, host, port):
        import paho.mqtt.client as mqtt
        self.states, self.stats, self.msgs = [], [], 0
        self.topics = {}                # topic -> messages
        self.echo = None                # (monotonic arrival, payload) of the last r1 state
        self.echo_ev = threading.Event()
        self._ready = threading.Event()
        c = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                      client_id="bench-watch-%d" % id(self))
        c.on_connect = lambda cl, ud, fl, rc, pr: cl.subscribe(BASE + "/#", 0)
        c.on_subscribe = lambda *a: self._ready.set()
        c.on_message = self._on_message
        c.connect(host, port, 30)
        c.loop_start()
        if not self._ready.wait(5):
            raise RuntimeError("subscriber: no SUBACK")

    def _on_message(self, cl, ud, msg):
        now = time.monotonic()
        self.msgs += 1
        self.topics[msg.topic] = self.topics.get(msg.topic, 0) + 1
        if msg.topic == BASE + "/r1/state":
            self.echo = (now, bytes(msg.payload))
            self.echo_ev.set()
            return
        if msg.retain:
            return
        if msg.topic.endswith("/linky/state"):
            self.states.append((now, msg.payload))
        elif msg.topic.endswith("/stats"):
            try:
                self.stats.append((now, json.loads(msg.payload)))
            except ValueError:
                pass

    def command(self, value, timeout=2.0, io=None, pin=None):
        """Publish ``value`` to <base>/r1/set (QoS 1); (ms until the r1 state echoes it,
        ms until the board reported the pin's new level to the I/O server ``io``), each
        None when it did not come within ``timeout``."""
        self.echo_ev.clear()
        t0 = time.monotonic()
        self.client.publish(BASE + "/r1/set", value, qos=1)
        end = t0 + timeout
        echo = None
        while time.monotonic() < end:
            if self.echo_ev.wait(max(0.0, end - time.monotonic())):
                self.echo_ev.clear()
                e = self.echo
                if e and e[1] == value.encode():
                    echo = (e[0] - t0) * 1000.0
                    break
        level = 1 if value == "ON" else 0
        pin_ms = None
        if io is not None:
            for t, g, v in list(io.history):
                if t >= t0 and g == pin and v == level:
                    pin_ms = (t - t0) * 1000.0
                    break
        return echo, pin_ms

    def all_meters(self, cfg):
        """Every configured meter has published a state."""
        return all(self.topics.get("%s/%s/state" % (BASE, m["id"])) for m in cfg["meters"])

    def frames(self):
        """(frames decoded, free_heap) of the last stats message, or (0, None)."""
        if not self.stats:
            return 0, None
        s = self.stats[-1][1]
        return (s.get("meters", {}).get("linky", {}).get("frames", 0), s.get("free_heap"))

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def _run(broker, heapsize, speed, until, timeout, stats_period_s=5, root=None, accel=60.0,
         min_interval_s=0):
    """One emulated gateway run; ``until(watcher, emu)`` true ends it.  Returns
    (ok, reason, watcher, emu)."""
    cfg, _ = scenario_config(stats_period_s, min_interval_s=min_interval_s)
    if root is not None:        # a fresh board flash: no NVS (reset causes, seq), no outbox
        clear_board_state(root)
    w = Watcher(broker.host, broker.port)
    emu = BenchEmulation(config=cfg, broker=broker.url, tic_sim="standard", phases=3,
                         tariff="tempo", accel=accel, speed=speed, heapsize=heapsize,
                         echo=False, root=root, max_restarts=0)
    reason = None
    try:
        emu.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not emu.running():
                reason = "firmware exited (code %s)" % emu.returncode
                break
            bad = [x for x in list(emu.lines) if _ERR.search(x)]
            if bad:
                reason = bad[0][:200]
                break
            if until(w, emu):
                break
            time.sleep(0.1)
        else:
            reason = "timeout (%d frames by the last stats)" % w.frames()[0]
        if reason is None:
            bad = [x for x in list(emu.lines) if _ERR.search(x)]
            reason = bad[0][:200] if bad else None
    finally:
        emu.stop()
        w.close()
    return reason is None, reason, w, emu


def _build_root():
    root = project_root() / "build" / "bench" / "gwroot"
    root.mkdir(parents=True, exist_ok=True)
    return root


def min_heapsize(broker, lo_k=48, hi_k=256, step_k=4, meter_s=600.0, speed=50.0, log=print):
    """Bisection over -X heapsize (KB): returns (bytes or None, {heapsize_k: reason|None}).
    A run passes when the gateway decoded ``meter_s`` seconds of frames and published
    states with no MemoryError, crash or reset."""
    need = max(3, int(meter_s / FRAME_S) - 3)
    wall = meter_s / speed
    tried = {}
    root = _build_root()

    def passes(k):
        cfg = scenario_config()[0]
        ok, reason, w, _ = _run(broker, "%dK" % k, speed,
                                lambda w, e: w.frames()[0] >= need and w.all_meters(cfg),
                                timeout=wall * 3 + 20, root=root)
        tried[k] = reason
        log("  heap %dK: %s" % (k, "pass" if ok else "FAIL (%s)" % reason))
        return ok

    if not passes(hi_k):
        return None, tried
    lo, hi = lo_k, hi_k          # lo: assumed failing (not run), hi: passes
    while hi - lo > step_k:
        mid = (lo + hi) // 2 // step_k * step_k
        if mid <= lo:
            break
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi * 1024, tried


def heap_growth(broker, first=100, last=10000, speed=100.0, heapsize="144K", slow=True,
                min_interval_s=1, log=print):
    """Free heap (gateway stats) at the first stats after frame ``first`` and after
    frame ``last``.  With ``slow``, the TIC is served slower (stats every 5 s land near
    frame ``first``) until the first sample, then at ``speed``.  Returns dict(growth_bytes,
    free_first, free_last, frame_first, frame_last, ...)."""
    samples = {}
    slow = max(1.0, first / 2.0 * FRAME_S / 5.0) if slow else speed   # first/2 frames per stats

    def until(w, e):
        n, free = w.frames()
        if n >= first and "first" not in samples and free is not None:
            samples["first"] = (n, free)
            for srv in e.servers.values():
                srv.speed = speed        # TicServer reads it for every chunk
        if n >= last and free is not None:
            samples["last"] = (n, free)
            return True
        return False

    timeout = last * FRAME_S / speed * 3 + first * FRAME_S / slow + 40
    ok, reason, w, _ = _run(broker, heapsize, slow, until, timeout, root=_build_root(),
                            min_interval_s=min_interval_s)
    out = {"heapsize": heapsize, "speed": speed, "ok": ok, "reason": reason,
           "min_interval_s": min_interval_s}
    if "first" in samples:
        out["frame_first"], out["free_first"] = samples["first"]
    if "last" in samples:
        out["frame_last"], out["free_last"] = samples["last"]
    if "first" in samples and "last" in samples:
        out["growth_bytes"] = samples["first"][1] - samples["last"][1]
    else:
        out["growth_bytes"] = None
    log("  heap growth: %s" % out)
    return out


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, len(xs) * p // 100)] if xs else None


def e2e(broker, samples=60, speed=4.0, heapsize="144K", commands=None, log=print):
    """Frame ETX -> state on the subscriber, p50/p99 in ms, over ``samples`` states; then,
    when the firmware drives relays, ``commands`` (default ``samples``) relay commands
    ON/OFF on <base>/r1/set -> the r1 state echo on the subscriber, and -> the pin's new
    level as the board reports it to the emulator's I/O server (passerelle.emu_io)."""
    holder = {"cmd": []}
    relays = firmware_features()["relays_driven"] and "relays" in scenario_config()[0]
    commands = samples if commands is None else commands

    def until(w, e):
        holder["srv"] = e.servers.get("1")
        if len(w.states) < samples + 3:
            return False
        if relays and not holder["cmd"]:
            io = getattr(e, "io", None)
            w.command("OFF")                          # known start state; retained echo seen
            for i in range(commands + 5):
                ms, pin_ms = w.command("ON" if i % 2 == 0 else "OFF", io=io, pin=RELAY_PIN)
                if i >= 5:                            # the first few warm up
                    holder["cmd"].append(ms)
                    holder.setdefault("pin", []).append(pin_ms)
        return True

    timeout = (samples + 10) * FRAME_S / speed * 2 + 20
    ok, reason, w, emu = _run(broker, heapsize, speed, until, timeout, root=_build_root())
    srv = holder.get("srv")
    lat = []
    for arrived, payload in w.states[2:]:
        try:
            date = json.loads(payload).get("DATE")
        except ValueError:
            continue
        sent = srv.sent.get(date) if srv else None
        if sent is not None and arrived >= sent:
            lat.append((arrived - sent) * 1000.0)
    out = {"ok": ok, "reason": reason, "samples": len(lat), "speed": speed,
           "topics": {k[len(BASE) + 1:]: v for k, v in sorted(w.topics.items())},
           "frame_to_state_p50_ms": round(_pct(lat, 50), 3) if lat else None,
           "frame_to_state_p99_ms": round(_pct(lat, 99), 3) if lat else None,
           "relays": relays}
    cmd = [x for x in holder["cmd"] if x is not None]
    out["command_samples"] = len(holder["cmd"])
    out["command_missed"] = len(holder["cmd"]) - len(cmd)
    out["command_to_echo_p50_ms"] = round(_pct(cmd, 50), 3) if cmd else None
    out["command_to_echo_p99_ms"] = round(_pct(cmd, 99), 3) if cmd else None
    pins = [x for x in holder.get("pin", []) if x is not None]
    out["command_to_pin_p50_ms"] = round(_pct(pins, 50), 3) if pins else None
    out["command_to_pin_p99_ms"] = round(_pct(pins, 99), 3) if pins else None
    out["command_to_pin_samples"] = len(pins)
    log("  e2e: %s" % out)
    return out
