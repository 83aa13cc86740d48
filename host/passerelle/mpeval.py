# passerelle/mpeval.py  The evaluations compared between CPython and MicroPython.
#
# Portable (MicroPython subset): imported by CPython (passerelle.mpworker computes the
# reference in-process) and run as a script by the MicroPython unix port
# (``micropython mpeval.py``, MICROPYPATH=firmware:<root>), one process per test
# session.  Protocol: one request per line on stdin, a JSON array [op, args...]; one
# JSON line per request on stdout: {"ok": result} or {"exc": "<class>: <message>"}.
# Bytes travel hex-encoded.  Results hold only lists, dicts with str keys, str,
# int, bool and None, so both sides compare equal after a JSON round trip.
#
# Ops:
#   ["tic", mode, [chunk sizes], hex]                 -> TIC frames and counters
#   ["mqtt", "client"|"server", max_packet, [cuts], hex] -> MQTT events and counters
#   ["validate", cfg_json, secrets_json|null, board_json|null] -> [config, errors]
#   ["read_json", path]                               -> gw.config.read_json(path)
#   ["meter", mode, [[t_ms, hex], ...]]               -> TICMeter values and counters
#   ["commands", [[ident, hex, retained, t_ms], ...]]   -> gw.actuators states and errors
#   ["encode", "publish"|"subscribe"|"unsubscribe"|"connect", [args]] -> packet or error
#   ["modbus", [cuts], [address, function, count], hex] -> RTU responses and counters
#   ["f32", [bits, ...]]                              -> float32 values, exactly (frexp)
#   ["regs", [[type, value], ...]]                    -> modbus values.regs (a float32
#                                                        value as [mantissa, exponent])
#   ["ping"]                                          -> "pong"

import json
import sys
from binascii import hexlify, unhexlify


def _hex(b):
    return str(hexlify(bytes(b)), "ascii")


def _items(d):
    return sorted([[k, d[k]] for k in d])


def _chunks(n, sizes):
    """Chunk boundaries [(a, b)] of n bytes cut in the given sizes (cycled; [] = one)."""
    out = []
    i = k = 0
    while i < n:
        step = sizes[k % len(sizes)] if sizes else n
        k += 1
        if step < 1:
            step = 1
        out.append((i, min(n, i + step)))
        i += step
    return out


def tic(mode, sizes, data):
    from protocols.tic import TicDecoder
    d = TicDecoder(mode)
    frames = []
    for a, b in _chunks(len(data), sizes):
        buf = data[a:b]         # a fresh buffer per chunk: the decoder keeps nothing of it
        p = 0
        while p < len(buf):
            used, f = d.decode(buf, p)
            if used <= 0:
                raise RuntimeError("decode() made no progress")
            p += used
            if f is not None:
                g = []
                for k in f.groups:
                    v = f.groups[k]   # the data, or (data, horodate)
                    g.append([k, v[0], v[1]] if type(v) is tuple else [k, v, None])
                frames.append([f.mode, sorted(g), f.invalid])
    return {"frames": frames, "stats": _items(d.stats), "in_frame": bool(d.in_frame)}


def _packet(p):
    out = {}
    for k in ("type", "flags", "pid", "qos", "retain", "dup", "truncated", "session_present",
              "code", "level", "clean", "keepalive", "topic", "client_id", "user"):
        out[k] = getattr(p, k)
    for k in ("payload", "codes", "password"):
        v = getattr(p, k)
        out[k] = None if v is None else _hex(v)
    t = p.topics
    if t is not None:
        t = [list(x) if isinstance(x, tuple) else x for x in t]
    out["topics"] = t
    w = p.will
    out["will"] = None if w is None else [w[0], _hex(w[1]), w[2], w[3]]
    return out


def mqtt(side, max_packet, cuts, data):
    from protocols.errors import MalformedPacket
    if side == "server":
        from protocols.mqtt.server import MQTTServerDecoder as D
    else:
        from protocols.mqtt import MQTTDecoder as D
    d = D(max_packet)
    events = []
    bounds = sorted([c for c in cuts if 0 < c < len(data)]) + [len(data)]
    start = 0
    peak = 0
    for end in bounds:
        i = start
        while i < end:
            try:
                used, p = d.decode(data, i, end)
            except MalformedPacket as e:
                if e.used <= 0 or e.used > end - i:
                    raise RuntimeError("MalformedPacket.used out of range")
                i += e.used
                events.append(["err", e.reason, i])
                continue
            if used <= 0:
                raise RuntimeError("decode() made no progress")
            i += used
            if d.buffered > peak:
                peak = d.buffered
            if p is not None:
                events.append(["pkt", _packet(p), i])
        start = end
    return {"events": events, "stats": _items(d.stats), "peak": peak}


def validate(cfg_text, secrets_text, board_text):
    from gw import config
    cfg = json.loads(cfg_text)      # always a JSON text (null included)
    secrets = None if secrets_text is None else json.loads(secrets_text)
    board = None if board_text is None else json.loads(board_text)
    out, errs = config.validate(cfg, secrets, board)
    return [out, errs]


def read_json(path):
    from gw import config
    obj, err = config.read_json(path)
    return [obj, err]


class Clock:
    """The hal of the drivers evaluated here: a clock set by hand (``now``, ms); also
    the TICMeter clock of passerelle.replay_model and the fuzz tests."""

    def __init__(self):
        self.now = 0

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b


class NullLog:
    """A logger that drops everything."""

    def _n(self, *a):
        pass

    debug = info = warning = error = exception = _n


def meter(mode, frames):
    """TICMeter.apply() on what the decoder returns for each chunk of the stream; each
    chunk carries the line time (ms) at which it arrives."""
    from gw.drivers.tic_meter import TICMeter
    hal = Clock()
    m = TICMeter({"id": "linky", "mode": mode}, hal, NullLog())
    dec = m._decoder
    published = []
    for t, h in frames:
        hal.now = t
        data = unhexlify(h)
        p = 0
        while p < len(data):
            used, f = dec.decode(data, p)
            p += used
            if f is not None:
                m.apply(f, t)
                published.append(_items(m.values))
    return {"published": published, "stats": _items(m.stats), "decoder": _items(dec.stats)}


class _Pin:
    def __init__(self):
        self.v = 0

    def value(self, v=None):
        if v is not None:
            self.v = v
        return self.v


class _Nvs:
    def __init__(self):
        self.d = {}

    def get(self, k, default=None):
        return self.d.get(k, default)

    def set(self, k, v):
        self.d[k] = v

    def commit(self):
        pass


class _ActHal(Clock):
    def nvs(self, ns):
        return _Nvs()

    def pin(self, n, mode, value=0):
        p = _Pin()
        p.value(value)
        return p

    def ticks_add(self, a, b):
        return a + b


class _Gw:
    def __init__(self):
        self.hal = _ActHal()
        self.log = NullLog()
        self.cfg = {"heaters": [{"id": "salon", "pin_pos": 1, "pin_neg": 2, "invert": False,
                                 "restore": "hors-gel"}],
                    "relays": [{"id": "boiler", "pin": 3, "invert": False, "restore": "off",
                                "interlock": "pump"},
                               {"id": "pump", "pin": 4, "invert": True, "restore": "last",
                                "interlock": "boiler"}]}


def commands(cmds):
    """gw.actuators.Actuators.command() on [[ident, payload hex, retained, t_ms], ...]:
    after each, the relay/zone states, their pending pulse end and the errors."""
    from gw.actuators import Actuators
    gw = _Gw()
    a = Actuators(gw)
    out = []
    for ident, h, retained, t in cmds:
        gw.hal.now = t
        a.command("b/d/" + ident + "/set", ident, unhexlify(h), retained)
        a._deadlines()
        out.append([[[it[0], it[5], it[6]] for it in a.items], [list(e) for e in a.errors]])
        a.errors = []
    return {"after": out, "stats": _items(a.stats)}


def encode(kind, args):
    """protocols.mqtt.encode.<kind>(*args) -> ["ok", hex] or ["err", class name] for the
    documented errors (messages quote values with repr(), which differs between ports).
    Bytes arguments travel as {"hex": ...}; (filter, qos) pairs as lists."""
    from protocols.errors import ProtocolError
    from protocols.mqtt import encode as E
    a = []
    for x in args:
        if isinstance(x, dict) and "hex" in x:
            x = unhexlify(x["hex"])
        a.append(x)
    if kind == "subscribe":
        a[1] = [tuple(t) for t in a[1]]
    if kind == "connect" and a[3] is not None:
        w = a[3]
        a[3] = (w[0], unhexlify(w[1]), w[2], w[3])
    try:
        return ["ok", _hex(getattr(E, kind)(*a))]
    except ProtocolError as e:
        return ["err", e.__class__.__name__]


def modbus(cuts, expect, data):
    """RtuDecoder over ``data`` cut at ``cuts``, expecting ``expect``, then silence()."""
    from protocols.modbus.rtu import RtuDecoder
    d = RtuDecoder()
    d.expect(expect[0], expect[1], expect[2])
    out = []

    def take(r):
        regs = [r.reg(i) for i in range(r.count)] if r.function in (3, 4) and not r.exception else []
        out.append([r.address, r.function, r.exception, r.count, r.register, r.value, regs])

    bounds = sorted([c for c in cuts if 0 < c < len(data)]) + [len(data)]
    pos = 0
    for end in bounds:
        while True:
            used, r = d.decode(data, pos, end)
            if used < 0 or used > end - pos:
                raise RuntimeError("decode() used out of range")
            pos += used
            if r is not None:
                take(r)
            elif pos >= end:
                break
            elif used == 0:
                raise RuntimeError("decode() made no progress")
    n = 0
    while n < 300:
        r = d.silence()
        if r is None:
            break
        take(r)
        n += 1
    return {"responses": out, "stats": _items(d.stats)}


def f32(bits):
    """protocols.modbus.values.f32 of each 32-bit pattern, exactly: [mantissa * 2**53,
    exponent] of math.frexp for the finite ones (a float32 is exact in a double),
    else "nan" / "inf" / "-inf"."""
    from math import frexp

    from protocols.modbus.values import f32 as get, finite
    out = []
    for x in bits:
        b = bytes([(x >> 24) & 255, (x >> 16) & 255, (x >> 8) & 255, x & 255])
        v = get(b, 0)
        if finite(v):
            m, e = frexp(v)
            out.append([int(m * 9007199254740992), e, x >> 31])  # sign bit: -0.0 vs 0.0
        else:
            out.append("nan" if v != v else ("inf" if v > 0 else "-inf"))
    return out


def regs(items):
    """protocols.modbus.values.regs of each (type, value): the registers of a set-up
    write; a float32 value travels as [m, e] = ldexp(m, e) (exact, no float parsing)."""
    from math import ldexp

    from protocols.modbus.values import F32, regs as encode
    out = []
    for t, v in items:
        if t == F32:
            v = ldexp(v[0], v[1])
        out.append(encode(t, v))
    return out


def handle(req):
    op = req[0]
    if op == "tic":
        return tic(req[1], req[2], unhexlify(req[3]))
    if op == "mqtt":
        return mqtt(req[1], req[2], req[3], unhexlify(req[4]))
    if op == "validate":
        return validate(req[1], req[2], req[3])
    if op == "read_json":
        return read_json(req[1])
    if op == "meter":
        return meter(req[1], req[2])
    if op == "encode":
        return encode(req[1], req[2])
    if op == "commands":
        return commands(req[1])
    if op == "modbus":
        return modbus(req[1], req[2], unhexlify(req[3]))
    if op == "f32":
        return f32(req[1])
    if op == "regs":
        return regs(req[1])
    if op == "ping":
        return "pong"
    raise ValueError("unknown op")


def answer(line):
    """The response line (without newline) for one request line."""
    try:
        res = {"ok": handle(json.loads(line))}
    except Exception as e:      # reported, compared, and the worker keeps serving
        res = {"exc": "%s: %s" % (e.__class__.__name__, e)}
    return json.dumps(res)


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        sys.stdout.write(answer(line) + "\n")
        try:
            sys.stdout.flush()
        except AttributeError:
            pass


if __name__ == "__main__":
    main()
