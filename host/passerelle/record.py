"""``passerelle record serial|mqtt`` and ``passerelle import-capture``: make recordings.

* ``record serial --port P --baud 1200 --bytesize 7 --parity E -o f.jsonl`` reads a
  serial port (a USB adapter, a PTY) with pyserial and writes each read as one
  ``rx`` event stamped on the monotonic clock; ``--protocol modbus-rtu`` (a sniffer on
  an RS-485 bus) writes a reactive channel instead: the master's requests ``tx``, the
  answers ``rx`` (:mod:`passerelle.rtu_split`), with the polled meters (``--meter``);
* ``record mqtt --broker URL --topic '#' -o f.jsonl`` subscribes with paho-mqtt and
  writes each message (``rx`` = into the gateway, e.g. Home Assistant's commands;
  ``tx`` = topics the gateway publishes, see ``--gateway-topic``);
* ``import-capture raw.bin --channel tic --mode historic -o f.jsonl`` turns a raw
  byte dump (``cat /dev/ttyUSB0 > raw.bin``) into a recording with line-rate timing
  (1200 Bd 7E1 = 120 B/s, 9600 Bd = 960 B/s), one chunk per TIC group.

Both recorders stop cleanly on Ctrl-C (SIGINT), SIGTERM or ``--duration`` and flush
every event as it is written: a recording is never lost.  Format: RECORDING.md.
"""

import signal
import sys
import threading
import time

from . import recording
from .recording import Writer, serial_channel, mqtt_channel

GATEWAY_TOPICS = ("passerelle/#", "homeassistant/+/+/config", "homeassistant/+/+/+/config")


class _Stopper:
    """Turns SIGINT/SIGTERM into a stop flag for the duration of a recording."""

    def __init__(self):
        self.event = threading.Event()
        self.signal = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame):
        self.signal = signum
        self.event.set()

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _deadline(duration):
    return None if duration is None else time.monotonic() + float(duration)


def _expired(deadline):
    return deadline is not None and time.monotonic() >= deadline


# ---- serial ---------------------------------------------------------------------------

def parse_meter(text):
    """``ID:MODEL:ADDRESS[:PERIOD_S]`` -> a Modbus meter entry of a recording's header."""
    parts = text.split(":")
    if len(parts) not in (3, 4) or not parts[0] or not parts[2].isdigit() or (
            len(parts) == 4 and not parts[3].isdigit()):
        raise ValueError("--meter takes ID:MODEL:ADDRESS[:PERIOD_S] (e.g. pac:sdm630:1:10), got %r"
                         % text)
    from protocols.modbus.maps import MODELS
    if parts[1] not in MODELS:
        raise ValueError("--meter %s: unknown model %r (one of %s)" % (text, parts[1], ", ".join(MODELS)))
    m = {"id": parts[0], "model": parts[1], "address": int(parts[2])}
    if len(parts) == 4:
        m["period_s"] = int(parts[3])
    return m


def record_serial(port, output, baud=1200, bytesize=7, parity="E", stopbits=1, channel="tic",
                  protocol="tic", duration=None, source=None, stop_event=None, encoding="hex",
                  on_event=None, meters=None):
    """Record ``port`` into ``output`` until ``stop_event`` is set or ``duration``
    elapses; returns the writer's counters ``(events, bytes)``.  ``protocol``
    ``"modbus-rtu"``: a reactive channel, requests and answers told apart, ``meters``
    (header entries, see :func:`parse_meter`) the meters the replay polls."""
    import serial

    modbus = protocol == "modbus-rtu"
    if meters and not modbus:
        raise ValueError("--meter is for --protocol modbus-rtu")
    ser = serial.serial_for_url(port, baudrate=baud, bytesize=bytesize, parity=parity,
                                stopbits=stopbits, timeout=0.05)
    stop_event = stop_event or threading.Event()
    extra = {"reactive": True, "meters": list(meters or ())} if modbus else {}
    chans = {channel: serial_channel(port=port, baud=baud, bits=bytesize, parity=parity,
                                     stop=stopbits, protocol=protocol, **extra)}
    char_s = 1.0 / recording.bytes_per_second(chans[channel])
    split = None
    if modbus:
        from .rtu_split import RtuSplitter
        split = RtuSplitter(char_s)
    deadline = _deadline(duration)

    def write(w, t, direction, data):
        ev = w.event(channel, direction, data, t=t, encoding=encoding)
        if on_event:
            on_event(ev)

    try:
        with Writer(output, chans, source=source) as w:
            while not stop_event.is_set() and not _expired(deadline):
                try:
                    data = ser.read(max(1, min(4096, ser.in_waiting)))
                except serial.SerialException as exc:
                    w.mark("serial error: %s" % exc)
                    break
                if not data:        # a silence: a partial Modbus frame is over
                    events = split.silence() if split is not None else ()
                else:
                    # stamp the read at its first byte, as far as the line rate tells
                    t = max(0.0, w.now() - len(data) * char_s)
                    events = [(t, "rx", data)] if split is None else split.feed(data, t)
                for t, direction, frame in events:
                    write(w, t, direction, frame)
            for t, direction, frame in (split.silence() if split is not None else ()):
                write(w, t, direction, frame)
            return w.count, w.bytes.get(channel, 0)
    finally:
        ser.close()


# ---- mqtt -----------------------------------------------------------------------------

def parse_broker(url):
    """``mqtt://host:port``, ``host:port`` or ``host`` -> (host, port) (like emulate's,
    without importing the emulation and the codecs)."""
    from urllib.parse import urlsplit
    parts = urlsplit(url if "://" in url else "mqtt://" + url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError("broker URL must be mqtt://host:port, got %r" % url)
    return parts.hostname, parts.port or 1883


def _matches(pattern, topic):
    p, t = pattern.split("/"), topic.split("/")
    for i, seg in enumerate(p):
        if seg == "#":
            return True
        if i >= len(t) or (seg != "+" and seg != t[i]):
            return False
    return len(p) == len(t)


def record_mqtt(broker, output, topics=("#",), channel="mqtt", duration=None, source=None,
                gateway_topics=GATEWAY_TOPICS, stop_event=None, ready=None, client_id=None):
    """Subscribe to ``topics`` on ``broker`` and record every message; returns the
    number of messages."""
    import paho.mqtt.client as mqtt

    host, port = parse_broker(broker)
    stop_event = stop_event or threading.Event()
    ready = ready or threading.Event()
    lock = threading.Lock()
    chans = {channel: mqtt_channel(broker, topics, gateway_topics=list(gateway_topics))}
    deadline = _deadline(duration)
    with Writer(output, chans, source=source) as w:
        def on_connect(client, userdata, flags, rc, props=None):
            if getattr(rc, "is_failure", False):
                return
            client.subscribe([(tp, 1) for tp in topics])

        def on_subscribe(*a):
            ready.set()

        def on_message(client, userdata, msg):
            direction = "tx" if any(_matches(g, msg.topic) for g in gateway_topics) else "rx"
            with lock:
                w.event(channel, direction, msg.payload, topic=msg.topic, qos=msg.qos,
                        retain=bool(msg.retain), encoding="b64")

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                        client_id=client_id or "passerelle-rec-%d" % (id(w) % 100000))
        c.on_connect, c.on_message, c.on_subscribe = on_connect, on_message, on_subscribe
        c.on_log = lambda *a: None
        c.reconnect_delay_set(0.2, 5)
        c.connect_async(host, port, keepalive=30)
        c.loop_start()
        try:
            while not stop_event.is_set() and not _expired(deadline):
                stop_event.wait(0.05)
        finally:
            c.disconnect()
            c.loop_stop()
        with lock:
            return w.count


# ---- import-capture ---------------------------------------------------------------------

def import_capture(data, output, channel="tic", mode=None, max_chunk=64, frame_gap=0.025,
                   source=None):
    """Raw TIC bytes -> a recording with line-rate timing; returns the event count."""
    if mode is None:
        mode = "standard" if b"\t" in data else "historic"
    baud = 9600 if mode == "standard" else 1200
    ch = serial_channel(baud=baud, bits=7, parity="E", stop=1, protocol="tic", mode=mode)
    rate = recording.bytes_per_second(ch)
    with Writer(output, {channel: ch}, source=source, t0=0.0) as w:
        for t, chunk in recording.timed_chunks(data, rate, max_chunk, frame_gap):
            w.event(channel, "rx", chunk, t=t)
        return w.count


# ---- CLI --------------------------------------------------------------------------------

def add_parser(subparsers):
    p = subparsers.add_parser("record", help="record serial or MQTT traffic into a recording",
                              description="Record field traffic into a JSON Lines recording "
                              "(RECORDING.md). Ctrl-C or --duration stops; every event is "
                              "flushed as it is written.")
    sub = p.add_subparsers(dest="record_kind", metavar="KIND")
    s = sub.add_parser("serial", help="record a serial port (pyserial; adapter or PTY)")
    s.add_argument("--port", required=True, help="device or pyserial URL (/dev/ttyUSB0, /dev/pts/3)")
    s.add_argument("--baud", type=int, default=1200, help="1200 (TIC historic) or 9600 (standard)")
    s.add_argument("--bytesize", type=int, choices=(5, 6, 7, 8), default=7)
    s.add_argument("--parity", choices=recording.PARITIES, default="E")
    s.add_argument("--stopbits", type=float, choices=(1, 1.5, 2), default=1)
    s.add_argument("--channel", default="tic", help="channel name (default tic)")
    s.add_argument("--protocol", default="tic",
                   help="what the line carries (default tic); modbus-rtu: a sniffer on an RS-485 "
                   "bus, the master's requests (tx) and the answers (rx) told apart, replayed "
                   "reactively")
    s.add_argument("--meter", action="append", default=None, metavar="ID:MODEL:ADDRESS[:PERIOD_S]",
                   help="modbus-rtu: a meter polled on the bus (repeatable), which the replay "
                   "configures (e.g. pac:sdm630:1:10)")
    s.add_argument("--source", default=None, help="free text saved in the header")
    s.add_argument("--duration", type=float, default=None, metavar="S")
    s.add_argument("-o", "--output", required=True, help="recording (.jsonl, .jsonl.gz)")
    s.set_defaults(func=run_record_serial)
    m = sub.add_parser("mqtt", help="record MQTT messages (paho-mqtt)")
    m.add_argument("--broker", required=True, metavar="URL", help="mqtt://host:port")
    m.add_argument("--topic", action="append", default=None, help="filter (repeatable, default #)")
    m.add_argument("--gateway-topic", action="append", default=None, metavar="FILTER",
                   help="topics the gateway publishes, recorded as tx (default: %s)"
                   % " ".join(GATEWAY_TOPICS))
    m.add_argument("--channel", default="mqtt")
    m.add_argument("--source", default=None)
    m.add_argument("--duration", type=float, default=None, metavar="S")
    m.add_argument("-o", "--output", required=True)
    m.set_defaults(func=run_record_mqtt)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    i = subparsers.add_parser("import-capture", help="turn a raw TIC byte capture into a recording",
                              description="Turn a raw byte capture (e.g. cat /dev/ttyUSB0 > raw.bin) "
                              "into a recording with line-rate timing: 1200 Bd 7E1 = 120 B/s "
                              "(historic), 9600 Bd = 960 B/s (standard), one chunk per TIC group.")
    i.add_argument("capture", help="raw capture file (- for stdin)")
    i.add_argument("--channel", default="tic")
    i.add_argument("--mode", choices=("historic", "standard"), default=None,
                   help="TIC mode (default: standard if the capture has TABs, else historic)")
    i.add_argument("--max-chunk", type=int, default=64, metavar="N",
                   help="split groups longer than N bytes (default 64)")
    i.add_argument("--frame-gap", type=float, default=0.025, metavar="S",
                   help="silence after each frame, as a meter leaves (default 0.025)")
    i.add_argument("--source", default=None, help="free text for the header (default: the file name)")
    i.add_argument("-o", "--output", required=True)
    i.set_defaults(func=run_import_capture)


def _report(msg):
    print(msg, file=sys.stderr, flush=True)


def run_record_serial(args):
    try:
        with _Stopper() as stop:
            meters = [parse_meter(m) for m in args.meter or ()]
            n, nbytes = record_serial(args.port, args.output, args.baud, args.bytesize, args.parity,
                                      args.stopbits, args.channel, args.protocol, args.duration,
                                      args.source, stop.event, meters=meters)
    except (OSError, ValueError) as exc:
        _report("record: %s" % exc)
        return 2
    _report("record: %d events, %d bytes from %s -> %s" % (n, nbytes, args.port, args.output))
    return 0


def run_record_mqtt(args):
    try:
        with _Stopper() as stop:
            n = record_mqtt(args.broker, args.output, args.topic or ["#"], args.channel,
                            args.duration, args.source,
                            args.gateway_topic or GATEWAY_TOPICS, stop.event)
    except (OSError, ValueError) as exc:
        _report("record: %s" % exc)
        return 2
    _report("record: %d messages from %s -> %s" % (n, args.broker, args.output))
    return 0


def run_import_capture(args):
    try:
        if args.capture == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.capture, "rb") as f:
                data = f.read()
        if not data:
            raise ValueError("%s is empty" % args.capture)
        n = import_capture(data, args.output, args.channel, args.mode, args.max_chunk,
                           args.frame_gap, args.source or args.capture.rsplit("/", 1)[-1])
    except (OSError, ValueError) as exc:
        _report("import-capture: %s" % exc)
        return 2
    _report("import-capture: %d bytes -> %d events -> %s" % (len(data), n, args.output))
    return 0
