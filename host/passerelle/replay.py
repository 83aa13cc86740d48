"""``passerelle replay``: feed a recording into a gateway and check what it publishes.

* serial stream channels (a TIC meter) are written into the gateway's UART at the
  recorded pace, ``--speed N`` times faster, or ``--fast`` (no pacing: as fast as the
  firmware reads, i.e. TCP back-pressure; without lockstep, states may then coalesce);
* ``--lockstep`` (the default with ``--expect``): each TIC frame is held until the state
  the host model (:mod:`passerelle.replay_model`) expects for the previous one is on
  MQTT, so the output does not depend on the speed or the machine's load;
* reactive serial channels (``"reactive": true``: Modbus and other request/response
  lines) are a cassette (:class:`Cassette`): a recorded answer (``rx``) is sent when
  the gateway's matching request (``tx``) arrives, never on a timer;
* MQTT channels: the ``rx`` messages (what Home Assistant sent to the gateway) are
  published on the broker at their recorded time (scaled like the serial channels).

``--into emu`` (default) runs the firmware on the MicroPython unix port
(:class:`passerelle.emulate.Emulation`) with one TIC meter per serial TIC channel and
the Modbus meters a reactive Modbus channel lists, each UART served over loopback TCP;
``--into PORT`` writes the (single) serial channel to a real serial port (pyserial) for
a real board.  Broker: ``--broker URL``, else an
embedded one started for the replay (``amqtt`` by default, ``--broker mosquitto`` for
mosquitto).  The timeline starts once the gateway is online on MQTT, so the first
frames are never published before the client is connected.

``--expect golden.jsonl`` compares the normalised MQTT output (:mod:`passerelle.golden`)
and exits 1 with a per-topic diff; ``--update-golden`` writes it instead.
Exit: 0 ok, 1 golden mismatch / firmware error / cassette mismatch, 2 usage errors.
"""

import argparse
import json
import re
import sys
import threading
import time
from pathlib import Path

from . import golden, recording
from .emulate import Emulation, EmulationError, clear_board_state, parse_broker
from .replay_io import Cassette, Clock, Collector, Feeder, SerialEndpoint, TcpEndpoint  # noqa: F401

FIRMWARE_ERRORS = ("MemoryError", "Traceback", "crashed", "CRASH")
DEFAULT_DEVICE = "replay"


def meter_id(name):
    mid = re.sub(r"[^a-z0-9_-]", "_", name.lower())[:16]
    return mid or "meter"


def replay_config(rec, device_id=DEFAULT_DEVICE, broker=("127.0.0.1", 1883), overrides=None,
                  meter_overrides=None, speed=1.0):
    """The gateway config for a replay: one TIC meter per serial TIC channel (UART 1, 2,
    ...), the Modbus meters a reactive Modbus channel lists (its ``meters``: the config
    they were recorded with) on that channel's UART, polled every ``period_s / speed``
    seconds (at least 1); every change published at once (min_interval_s 0), no periodic
    republish or stats during the run (their timing is the wall clock's, not the
    recording's).  ``meter_overrides`` apply to the TIC meters."""
    meters, uarts = [], {}
    serial = rec.serial_channels()
    tic = [c for c in serial if rec.channels[c].get("protocol", "tic") == "tic"
           and not rec.channels[c].get("reactive")]
    other = [c for c in serial if c not in tic]
    for n, name in enumerate(tic + other, 1):
        uarts[name] = str(n)
    for name in tic:
        m = {"id": meter_id(name), "type": "tic",
             "mode": rec.channels[name].get("mode") or recording.tic_mode_for_baud(
                 rec.channels[name].get("baud", 1200)),
             "uart": int(uarts[name]), "period_s": 3600, "min_interval_s": 0}
        m.update(meter_overrides or {})
        meters.append(m)
    for name in other:
        ch = rec.channels[name]
        if ch.get("protocol") != "modbus-rtu":
            continue
        for rm in ch.get("meters") or ():
            m = dict(rm, type="modbus", uart=int(uarts[name]), min_interval_s=0)
            m["period_s"] = max(1, int(rm.get("period_s", 10) / speed))
            meters.append(m)
    cfg = {"device_id": device_id, "name": "Passerelle replay",
           "mqtt": {"host": broker[0], "port": broker[1]}, "network": {"type": "none"},
           "stats_period_s": 3600, "meters": meters}
    for k, v in (overrides or {}).items():
        cfg[k] = v
    return cfg, uarts


class ReplayEmulation(Emulation):
    """An Emulation whose UARTs are fed by the replay's :class:`Feeder` objects."""

    def __init__(self, feeders, **kw):
        self.feeders = feeders          # {uart id: Feeder}
        super().__init__(**kw)

    def _start_servers(self):
        for uart, feeder in self.feeders.items():
            self.servers[uart] = feeder.start()


class Result:
    def __init__(self):
        self.messages = []          # raw (topic, payload, retain, from_subscription, t)
        self.normalised = []
        self.retained = {}
        self.feeders = {}
        self.lines = []
        self.firmware_errors = []
        self.restarts = 0
        self.elapsed = 0.0
        self.timeline_s = 0.0
        self.mqtt_published = 0
        self.online = False

    def golden(self):
        return self.normalised + [{"topic": t, "payload": golden.decode_payload(p), "retained": True}
                                  for t, p in sorted(self.retained.items())
                                  if not golden.volatile_topic(t)]

    def states(self, topic_suffix="/state"):
        """Every state JSON received (topic, dict), in order, without the gateway's
        delivery stamps "seq" and "ts" (what the meter said; stamped(): with them)."""
        out = []
        for t, d in self.stamped(topic_suffix):
            d = dict(d)
            d.pop("seq", None)
            d.pop("ts", None)
            out.append((t, d))
        return out

    def stamped(self, topic_suffix="/state"):
        """Every state JSON received (topic, dict), in order, as published."""
        out = []
        for m in self.messages:
            if m[0].endswith(topic_suffix) and not m[3]:
                try:
                    out.append((m[0], json.loads(m[1])))
                except ValueError:
                    pass
        return out

    def stats_docs(self):
        out = []
        for m in self.messages:
            if m[0].endswith("/stats") and not m[3]:
                try:
                    out.append(json.loads(m[1]))
                except ValueError:
                    pass
        return out


class Replay:
    """One replay of ``rec`` (a :class:`recording.Recording`) into an emulated gateway
    (``into="emu"``) or a serial port, against the broker ``host:port``."""

    def __init__(self, rec, host, port, into="emu", speed=1.0, fast=False, device_id=DEFAULT_DEVICE,
                 heapsize=None, root=None, echo=False, config_overrides=None, meter_overrides=None,
                 settle_s=1.0, online_timeout_s=60.0, max_wait_s=None, on_line=None, base="passerelle",
                 gate=None, until=None, until_timeout_s=30.0, lockstep=False):
        self.rec, self.host, self.port = rec, host, int(port)
        self.into, self.speed, self.fast = into, float(speed), bool(fast)
        if self.speed <= 0:
            raise ValueError("--speed must be > 0")
        self.device_id, self.heapsize, self.root, self.echo = device_id, heapsize, root, echo
        self.config_overrides, self.meter_overrides = config_overrides, meter_overrides
        self.settle_s, self.online_timeout_s = settle_s, online_timeout_s
        self.max_wait_s = max_wait_s
        self.on_line = on_line
        self.base = base
        self.gate = gate        # gate(channel, chunk index, collector): lockstep pacing (tests)
        self.until = until      # until(messages) -> bool: also waited for before settling
        self.until_timeout_s = until_timeout_s
        self.lockstep = lockstep
        self.expected = {}      # lockstep: TIC channel or Modbus meter id -> states expected
        self.result = Result()

    def _feeders(self, clock, cfg, uarts):
        out = {}
        for name in self.rec.serial_channels():
            ch = self.rec.channels[name]
            events = self.rec.channel_events(name)
            if self.into == "emu":
                endpoint = TcpEndpoint()
            else:
                endpoint = SerialEndpoint(self.into, ch)
            # a reactive channel is done when the gateway stops asking for a few periods
            periods = [m["period_s"] for m in cfg["meters"] if str(m["uart"]) == uarts.get(name)]
            out[uarts.get(name, name)] = Feeder(name, ch, events, endpoint, clock,
                                                idle_s=10.0 + 3 * max(periods, default=10))
        return out

    def _setup_lockstep(self, cfg, uarts):
        """Gate and end condition from the host model of each TIC meter; end condition
        from the host model of each Modbus meter (no gate: a reactive channel keeps its
        own pace, a request then its answer)."""
        from .replay_model import count_states, distinct, lockstep, modbus_model, tic_model
        gates, wants = {}, {}
        speed = 1e9 if self.fast else self.speed
        for name in self.rec.serial_channels():
            if self.rec.channels[name].get("protocol") == "modbus-rtu":
                for mid, states in modbus_model(self.rec, name).items():
                    topic = "%s/%s/%s/state" % (self.base, self.device_id, mid)
                    wants[topic] = len(distinct(states))
                    self.expected[mid] = states
        for m in cfg["meters"]:
            if m["type"] != "tic":
                continue
            name = next(n for n, u in uarts.items() if u == str(m["uart"]))
            states, _, waits, _ = tic_model(self.rec, name, speed, {"mode": m["mode"]})
            topic = "%s/%s/%s/state" % (self.base, self.device_id, m["id"])
            gates[name] = lockstep(waits, topic)
            wants[topic] = len(states)
            self.expected[name] = states
        self.gate = lambda name, i, col: gates[name](name, i, col) if name in gates else None
        self.until = lambda msgs: all(count_states(msgs, t) >= n for t, n in wants.items())

    def _mqtt_events(self):
        return [ev for ev in self.rec.events
                if ev.get("ch") in self.rec.mqtt_channels() and ev.get("dir") == "rx" and "topic" in ev]

    def run(self, stop_event=None):
        res = self.result
        stop_event = stop_event or threading.Event()
        t_begin = time.monotonic()
        start = min((ev["t"] for ev in self.rec.events if "ch" in ev), default=0.0)
        clock = Clock(self.speed, self.fast, start)
        cfg, uarts = replay_config(self.rec, self.device_id, (self.host, self.port),
                                   self.config_overrides, self.meter_overrides,
                                   1e9 if self.fast else self.speed)
        if self.into != "emu" and len(self.rec.serial_channels()) > 1:
            raise ValueError("--into PORT takes a recording with one serial channel")
        feeders = self._feeders(clock, cfg, uarts)
        res.feeders = {f.name: f for f in feeders.values()}
        collector = Collector(self.host, self.port, golden.SUBSCRIPTIONS)
        if self.lockstep and self.gate is None and self.until is None:
            self._setup_lockstep(cfg, uarts)
        if self.gate is not None:
            for f in feeders.values():
                f.gate = lambda name, i: self.gate(name, i, collector)
        emu = None
        pub = None
        try:
            if not collector.start(15.0):
                raise RuntimeError("cannot subscribe on %s:%d" % (self.host, self.port))
            status = "%s/%s/status" % (self.base, self.device_id)
            if self.into == "emu":
                emu = ReplayEmulation(feeders, config=cfg, heapsize=self.heapsize, root=self.root,
                                      echo=self.echo, on_line=self.on_line, prefix="gw | ")
                if self.root:
                    clear_board_state(self.root)
                emu.start()
            else:
                for f in feeders.values():
                    f.start()
            if self.into == "emu":
                res.online = collector.wait_for(
                    lambda m: m[0] == status and m[1] == b"online", self.online_timeout_s,
                    lambda: emu.running() and not emu.restarts)
            else:
                res.online = None           # a real board: already running, maybe online
            if res.online is False:
                errors = [ln for ln in emu.lines if any(k in ln for k in FIRMWARE_ERRORS)]
                raise RuntimeError("the gateway did not come online on %s%s" % (
                    status, ": " + errors[-1] if errors else " within %gs" % self.online_timeout_s))
            mqtt_events = self._mqtt_events()
            if mqtt_events:
                pub = _Publisher(self.host, self.port, mqtt_events, clock, stop_event)
            clock.open()
            if pub:
                pub.start()
            deadline = None if self.max_wait_s is None else time.monotonic() + self.max_wait_s
            while not stop_event.is_set():
                if all(f.done.is_set() for f in feeders.values()) and (pub is None or pub.done.is_set()):
                    break
                if emu is not None and (not emu.running() or emu.restarts):
                    break       # crashed or reset: the run is a failure, reported below
                if deadline is not None and time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            res.timeline_s = time.monotonic() - clock.origin
            if self.until is not None:
                end = time.monotonic() + self.until_timeout_s
                while not stop_event.is_set() and time.monotonic() < end:
                    with collector.lock:
                        msgs = list(collector.messages)
                    if self.until(msgs) or (emu is not None and (not emu.running() or emu.restarts)):
                        break
                    time.sleep(0.02)
            if not stop_event.is_set():
                collector.settle(self.settle_s, max_s=30.0)
            res.retained = collector.retained_snapshot(self.settle_s / 2, prefixes=golden.SUBSCRIPTIONS)
            res.mqtt_published = pub.count if pub else 0
        finally:
            collector.stop()
            if pub is not None:
                pub.stop()
            if emu is not None:
                before_stop = list(emu.lines)     # stopping prints a KeyboardInterrupt traceback
                emu.stop()
                res.lines = list(emu.lines)
                res.firmware_errors = [ln for ln in before_stop if any(k in ln for k in FIRMWARE_ERRORS)]
                res.restarts = emu.restarts
            for f in feeders.values():
                f.stop()
        seen = {m[0] for m in collector.messages if not m[3]}
        res.retained = {t: p for t, p in res.retained.items() if t in seen}
        res.messages = list(collector.messages)
        res.normalised = golden.normalise(res.messages)
        res.elapsed = time.monotonic() - t_begin
        return res


class _Publisher:
    """Publishes the recording's MQTT ``rx`` messages at their (scaled) time."""

    def __init__(self, host, port, events, clock, stop_event):
        import paho.mqtt.client as mqtt
        self.events, self.clock, self.stop_event = events, clock, stop_event
        self.done = threading.Event()
        self.count = 0
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="passerelle-replay-pub")
        self.c.on_log = lambda *a: None
        self.c.connect(host, port, 30)
        self.c.loop_start()
        self._t = threading.Thread(target=self._run, name="replay-mqtt", daemon=True)

    def start(self):
        self._t.start()

    def _run(self):
        try:
            for ev in self.events:
                if not self.clock.wait_until(ev["t"], self.stop_event):
                    return
                info = self.c.publish(ev["topic"], recording.payload(ev), qos=int(ev.get("qos", 0)),
                                      retain=bool(ev.get("retain", False)))
                info.wait_for_publish(5)
                self.count += 1
        finally:
            self.done.set()

    def stop(self):
        self.stop_event.set()
        self._t.join(2) if self._t.is_alive() else None
        self.c.disconnect()
        self.c.loop_stop()


# ---- embedded broker ---------------------------------------------------------------------

def start_broker(spec):
    """``None``/"amqtt" -> embedded amqtt; "mosquitto" -> embedded mosquitto; else a URL.
    Returns (host, port, broker object to stop or None, description)."""
    from . import brokers
    if spec in (None, "amqtt", "mosquitto"):
        b = brokers.launch(brokers.Mosquitto if spec == "mosquitto" else brokers.Amqtt)
        return b.host, b.port, b, "embedded %s on %s" % (b.name, b.url)
    host, port = parse_broker(spec)
    return host, port, None, "mqtt://%s:%d" % (host, port)


# ---- CLI ------------------------------------------------------------------------------------

def add_parser(subparsers):
    p = subparsers.add_parser("replay", help="replay a recording into a gateway; golden tests",
                              description="Feed a recording (RECORDING.md) into the emulated board "
                              "(or a serial port) and compare the gateway's MQTT output with a "
                              "golden file.")
    p.add_argument("recording", help="recording (.jsonl or .jsonl.gz)")
    p.add_argument("--into", default="emu", metavar="emu|PORT",
                   help="emu (default): the firmware on the MicroPython unix port; else a serial port")
    p.add_argument("--broker", default=None, metavar="URL|amqtt|mosquitto",
                   help="broker URL; default: start an embedded amqtt (or 'mosquitto')")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, metavar="N",
                      help="N times the recorded pace (default 1)")
    pace.add_argument("--fast", action="store_true",
                      help="no pacing: as fast as the firmware reads (states may coalesce)")
    p.add_argument("--expect", default=None, metavar="GOLDEN", help="compare with this golden file")
    p.add_argument("--update-golden", action="store_true", help="(re)write the --expect file")
    p.add_argument("--device-id", default=DEFAULT_DEVICE, help="gateway device_id (default replay)")
    p.add_argument("--heapsize", default=None, help="MicroPython heap (default: the board's)")
    p.add_argument("--lockstep", action=argparse.BooleanOptionalAction, default=None,
                   help="hold each TIC frame until the state the host model expects for the "
                   "previous one is published (default: on with --expect)")
    p.add_argument("--settle", type=float, default=1.0, metavar="S",
                   help="quiet time on MQTT that ends the replay after the last event (default 1)")
    p.add_argument("--verbose", "-v", action="store_true", help="echo the firmware's output")
    p.set_defaults(func=run_replay)


def _say(msg):
    print("replay: " + msg, file=sys.stderr, flush=True)


def run_replay(args):
    if args.update_golden and not args.expect:
        _say("--update-golden needs --expect FILE")
        return 2
    try:
        rec = recording.read(args.recording)
    except (OSError, recording.RecordingError) as exc:
        _say(str(exc))
        return 2
    for w in rec.warnings:
        _say("warning: " + w)
    if args.into != "emu" and not args.broker and args.expect:
        _say("--into PORT with --expect needs --broker (the broker the board publishes to)")
        return 2
    broker = None
    try:
        host, port, broker, desc = start_broker(args.broker)
        _say("%s: %d events, %.1f s recorded, channels %s; broker %s; %s"
             % (args.recording, len(rec.events), rec.duration, ", ".join(rec.channels), desc,
                "fast" if args.fast else "speed x%g" % args.speed))
        rp = Replay(rec, host, port, into=args.into, speed=args.speed, fast=args.fast,
                    device_id=args.device_id, heapsize=args.heapsize, echo=args.verbose,
                    settle_s=args.settle,
                    lockstep=bool(args.expect) if args.lockstep is None else args.lockstep)
        stop = threading.Event()
        try:
            res = rp.run(stop)
        except KeyboardInterrupt:
            stop.set()
            return 130
    except (EmulationError, ValueError, OSError) as exc:
        _say(str(exc))
        return 2
    except RuntimeError as exc:         # the gateway crashed / never came online
        _say(str(exc))
        return 1
    finally:
        if broker is not None:
            broker.__exit__(None, None, None)
    rc = _report(res)
    if args.expect:
        rc = max(rc, _check_golden(res, args))
    return rc


def _report(res):
    rc = 0
    fed = ", ".join("%s %d B" % (f.name, f.stats["bytes"]) for f in res.feeders.values())
    _say("timeline %.2f s, total %.2f s; fed %s; %d MQTT messages published; got %s"
         % (res.timeline_s, res.elapsed, fed or "nothing", res.mqtt_published,
            golden.summary(res.normalised)))
    for f in res.feeders.values():
        if f.cassette is not None and (f.cassette.mismatches or f.cassette.remaining()):
            _say("channel %s: %d request(s) did not match the recording, %d not made"
                 % (f.name, len(f.cassette.mismatches), f.cassette.remaining()))
            for m in f.cassette.mismatches[:5]:
                _say("  " + m)
            rc = 1
    if res.firmware_errors or res.restarts:
        _say("firmware errors (%d board resets):" % res.restarts)
        for ln in res.firmware_errors[:20]:
            _say("  " + ln)
        rc = 1
    return rc


def _check_golden(res, args):
    actual = res.golden()
    if args.update_golden:
        golden.write(args.expect, actual, recording=Path(args.recording).name, device_id=args.device_id)
        _say("golden written: %s (%s)" % (args.expect, golden.summary(actual)))
        return 0
    try:
        _, expected = golden.read(args.expect)
    except (OSError, golden.GoldenError) as exc:
        _say(str(exc))
        return 2
    diff = golden.compare(expected, actual)
    if not diff:
        _say("golden %s: OK (%s)" % (args.expect, golden.summary(actual)))
        return 0
    _say("golden %s: MISMATCH" % args.expect)
    for line in diff:
        print(line, flush=True)
    return 1
