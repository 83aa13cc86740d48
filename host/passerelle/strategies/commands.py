"""MQTT command payloads (issue 6: relays and fil pilote on ``<base>/<device>/<id>/set``).

``relay_payloads()``      ON / OFF / TOGGLE, and a pulse as JSON with a duration
``pilot_payloads()``      fil pilote orders: confort, eco, hors-gel, arret, confort-1, confort-2
``valid_payloads()``      either of the above -> Command(payload bytes, kind, value)
``hostile_payloads()``    what must switch nothing: near misses, wrong case or type, empty,
                          oversize, non-UTF-8, NUL, deep or huge JSON -> bytes
``payloads()``            a mix of both -> bytes

The pulse JSON shapes generated are ``{"pulse_s": <seconds>}``, ``{"pulse_ms": <ms>}`` and
``{"state": "ON", "duration_s": <seconds>}``: adjust PULSE_SHAPES to the command parser's
contract once it is fixed (issue 6), the rest of the module does not depend on it.
"""

import json

from hypothesis import strategies as st

RELAY_WORDS = ("ON", "OFF", "TOGGLE")
PILOT_ORDERS = ("confort", "eco", "hors-gel", "arret", "confort-1", "confort-2")
PULSE_SHAPES = ("pulse_s", "pulse_ms", "state+duration_s")
MAX_PAYLOAD = 256       # a command longer than this is hostile by definition


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
        return _cmd(w.encode(), "relay", w)
    shape = draw(st.sampled_from(PULSE_SHAPES))
    secs = draw(st.integers(1, 3600))
    if shape == "pulse_s":
        doc = {"pulse_s": secs}
    elif shape == "pulse_ms":
        doc = {"pulse_ms": secs * 1000}
    else:
        doc = {"state": "ON", "duration_s": secs}
    return _cmd(json.dumps(doc).encode(), "pulse", secs)


@st.composite
def pilot_payloads(draw):
    o = draw(st.sampled_from(PILOT_ORDERS))
    return _cmd(o.encode(), "pilot", o)


def valid_payloads():
    return st.one_of(relay_payloads(), pilot_payloads())


def _near_misses(words):
    w = st.sampled_from(words)
    return st.one_of(
        w.map(str.lower), w.map(str.upper), w.map(str.title),
        w.map(lambda s: s + " "), w.map(lambda s: " " + s), w.map(lambda s: s + "\n"),
        w.map(lambda s: s[:-1]), w.map(lambda s: s + s[-1]), w.map(lambda s: s.replace("-", "_")),
        w.map(lambda s: json.dumps(s)), w.map(lambda s: json.dumps({"state": s.lower()})))


@st.composite
def hostile_payloads(draw):
    kind = draw(st.sampled_from(("near_miss", "empty", "oversize", "non_utf8", "nul", "json_type",
                                 "json_deep", "json_huge_number", "pulse_range", "binary")))
    if kind == "near_miss":
        s = draw(_near_misses(RELAY_WORDS + PILOT_ORDERS))
        if s in RELAY_WORDS or s in PILOT_ORDERS:
            s = s + "?"
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
    if kind == "json_type":
        v = draw(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                           st.lists(st.integers(), max_size=3), st.text(max_size=8)))
        key = draw(st.sampled_from(("pulse_s", "pulse_ms", "state", "duration_s", "order")))
        return json.dumps({key: v}).encode()
    if kind == "json_deep":
        n = draw(st.integers(20, 2000))
        return b"[" * n + b"]" * n
    if kind == "json_huge_number":
        return draw(st.sampled_from((b'{"pulse_s": 1e999}', b'{"pulse_s": 99999999999999999999999}',
                                     b'{"pulse_ms": -1}', b'{"pulse_s": NaN}')))
    if kind == "pulse_range":
        secs = draw(st.one_of(st.integers(-10 ** 6, 0), st.integers(10 ** 6, 10 ** 12)))
        return json.dumps({"pulse_s": secs}).encode()
    return draw(st.binary(min_size=1, max_size=64))


def payloads():
    return st.one_of(valid_payloads(), hostile_payloads())
