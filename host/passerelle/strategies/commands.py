"""MQTT command payloads (issue 6: relays and fil pilote on ``<base>/<device>/<id>/set``).

``relay_payloads()``      ON / OFF / TOGGLE, and a pulse as JSON with a duration
``pilot_payloads()``      fil pilote orders: confort, eco, hors-gel, arret, confort-1, confort-2
``valid_payloads()``      either of the above -> Command(payload bytes, kind, value)
``hostile_payloads()``    what must switch nothing: near misses, wrong case or type, empty,
                          oversize, non-UTF-8, NUL, deep or huge JSON -> bytes
``payloads()``            a mix of both -> bytes

The grammar is gw.actuators': relay ``ON | OFF | TOGGLE | PULSE <seconds>`` (any case,
seconds 0.1..86400) or ``{"state": ..., "pulse_s": <seconds>}``; heater orders any case;
at most MAX_PAYLOAD bytes, UTF-8, never retained.
"""

import json

from hypothesis import strategies as st

RELAY_WORDS = ("ON", "OFF", "TOGGLE")
PILOT_ORDERS = ("confort", "eco", "hors-gel", "arret", "confort-1", "confort-2")
PULSE_SHAPES = ("PULSE <s>", "json")
MAX_PAYLOAD = 64        # gw.actuators.MAX_CMD: a longer command is refused


class Command(bytes):
    kind = ""           # "relay", "pulse", "pilot"
    value = None        # the word/order, or the pulse duration in seconds


def _cmd(payload, kind, value):
    c = Command(payload)
    c.kind = kind
    c.value = value
    return c


@st.composite
def relay_payloads(draw):
    if draw(st.integers(0, 3)):
        w = draw(st.sampled_from(RELAY_WORDS))
        w = draw(st.sampled_from((w, w.lower(), w.title(), " %s " % w)))
        return _cmd(w.encode(), "relay", w.strip().upper())
    secs = draw(st.one_of(st.integers(1, 86400), st.decimals(min_value="0.1", max_value="86400",
                                                               places=3).map(float)))
    shape = draw(st.sampled_from(PULSE_SHAPES))
    if shape == "PULSE <s>":
        doc = ("PULSE %s" % secs).encode()
    else:
        doc = json.dumps({"state": "ON", "pulse_s": secs}).encode()
    return _cmd(doc, "pulse", secs)


@st.composite
def pilot_payloads(draw):
    o = draw(st.sampled_from(PILOT_ORDERS))
    return _cmd(o.encode(), "pilot", o)


def valid_payloads():
    return st.one_of(relay_payloads(), pilot_payloads())


def _near_misses(words):
    """Invalid in any case: a letter short or long, "_" for "-", a JSON string."""
    w = st.sampled_from(words)
    return st.one_of(w.map(lambda s: s[:-1]), w.map(lambda s: s + s[-1]),
                     w.map(lambda s: s.replace("-", "_") + ("" if "-" in s else "!")),
                     w.map(lambda s: json.dumps(s)), w.map(lambda s: s + "\x00"))


def _unicode_lookalikes():
    """Non-ASCII text that Unicode-aware str methods (CPython's upper/lower/strip) would
    turn into a valid command, but ASCII-only ones (MicroPython's) would not."""
    return st.sampled_from(("ON\u00a0", "\u2003OFF", "pulſe 5", "toggle\u3000", "eco\u00a0",
                            "ＯＮ", "\u0130", "confort\u2028", "PULSE \u0661"))


@st.composite
def hostile_payloads(draw):
    kind = draw(st.sampled_from(("near_miss", "empty", "oversize", "non_utf8", "nul", "json_type",
                                 "json_deep", "json_huge_number", "pulse_range", "binary")))
    if kind == "near_miss":
        s = draw(st.one_of(_near_misses(RELAY_WORDS + PILOT_ORDERS), _unicode_lookalikes()))
        return s.encode()
    if kind == "empty":
        return draw(st.sampled_from((b"", b" ", b"\n", b"{}", b"[]", b"null", b'""')))
    if kind == "oversize":
        n = draw(st.integers(MAX_PAYLOAD + 1, 16384))
        head = draw(st.sampled_from((b"ON", b"confort", b'{"pulse_s": 1, "x": "')))
        return head + b" " * (n - len(head))
    if kind == "non_utf8":
        good = draw(st.sampled_from(RELAY_WORDS + PILOT_ORDERS)).encode()
        i = draw(st.integers(0, len(good)))
        bad = draw(st.sampled_from((b"\xff", b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\x80")))
        return good[:i] + bad + good[i:]
    if kind == "nul":
        good = draw(st.sampled_from(RELAY_WORDS + PILOT_ORDERS)).encode()
        return good + b"\x00" + draw(st.binary(max_size=4))
    if kind == "json_type":           # wrong types and keys: never a valid command
        v = draw(st.one_of(st.booleans(), st.lists(st.integers(), max_size=3),
                           st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)))
        key = draw(st.sampled_from(("pulse_s", "state")))
        if key == "pulse_s":
            return json.dumps({"state": draw(st.sampled_from(("ON", "OFF", "TOGGLE"))),
                               key: v}).encode()
        return json.dumps({key: v}).encode()
    if kind == "json_deep":
        n = draw(st.integers(20, 2000))
        return b"[" * n + b"]" * n
    if kind == "json_huge_number":
        return draw(st.sampled_from((b'{"pulse_s": 1e999}', b'{"pulse_s": 99999999999999999999999}',
                                     b'{"pulse_ms": -1}', b'{"pulse_s": NaN}')))
    if kind == "pulse_range":
        secs = draw(st.one_of(st.integers(-10 ** 6, 0), st.integers(86401, 10 ** 12),
                              st.floats(0, 0.099), st.sampled_from(("1e999", "nan", "inf",
                                                                    "0x10", "\u0661\u0662", "5\u00a0"))))
        if isinstance(secs, str):
            return ("PULSE " + secs).encode()
        return draw(st.sampled_from((("PULSE %s" % secs).encode(),
                                     json.dumps({"state": "ON", "pulse_s": secs}).encode())))
    return draw(st.binary(min_size=1, max_size=64))


def payloads():
    return st.one_of(valid_payloads(), hostile_payloads())
