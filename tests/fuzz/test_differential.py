"""CPython vs the MicroPython unix port on the same generated inputs: TIC decoding, the
MQTT decoders, config validation and reading, TICMeter (what reaches MQTT), the Modbus
RTU response decoder and its float32 values.  One
MicroPython worker (passerelle.mpworker, fixture ``mpw``) serves the whole session;
both sides run passerelle/mpeval.py and the results must be identical."""

import json
import re

from hypothesis import example, given, strategies as st

from protocols.tic import AUTO, HISTORIC, STANDARD

from passerelle.strategies import config as sc
from passerelle.strategies import modbus as sm_modbus
from passerelle.strategies import mqtt as sm
from passerelle.strategies.tic import FAULTS, LINE_FAULTS, frames, meter_streams, mutated, streams
from tests.fuzz.fuzzutil import budget, fragments

chunkings = st.lists(st.integers(1, 80), max_size=4)


def same(mpw, op, *args):
    mp, py = mpw.compare(op, *args)
    assert "exc" not in py, py          # CPython itself must not fail on these inputs
    assert mp == py
    return py["ok"]


# --- TIC -------------------------------------------------------------------------------


@budget(120)
@given(st.one_of(streams(), st.lists(frames(max_groups=12), min_size=1, max_size=3).flatmap(
    lambda fs: mutated(b"".join(f[2] for f in fs), FAULTS, 0, 6)), st.binary(max_size=400)),
    chunkings, st.sampled_from((AUTO, HISTORIC, STANDARD)))
@example(b"\x02\nOPTARIF BA\xc3\xa9 ,\r\x03", [], AUTO)
@example(b"\x02\nMSG1\tPAS DE \xff MESSAGE\t/\r\x03", [1], STANDARD)
def test_tic_identical(mpw, data, sizes, mode):
    same(mpw, "tic", mode, sizes, data.hex())


@budget(60, fuzz=3000)
@given(meter_streams(max_frames=12), st.data(), st.sampled_from((AUTO, HISTORIC, STANDARD)))
def test_tic_consecutive_frames_identical(mpw, ms, data, mode):
    """Consecutive frames of one meter, some with line faults, in buffers holding whole
    frames: CPython decodes them through its whole-frame path (protocols/tic/frames.py),
    the unix port through the main loop only."""
    raws = [data.draw(mutated(raw, LINE_FAULTS, 0, 3)) if data.draw(st.booleans()) else raw
            for _, raw, _ in ms.frames]
    stream = b"".join(raws)
    same(mpw, "tic", mode, [], stream.hex())
    same(mpw, "tic", mode, [len(raws[0])], stream.hex())


def test_tic_real_fragments_identical(mpw):
    for frag in fragments():
        for data in (frag["bytes"], b"\n" + frag["bytes"] + b"\r",
                     b"\x02\n" + frag["bytes"] + b"\r\x03"):
            for sizes in ([], [1], [3]):
                same(mpw, "tic", AUTO, sizes, data.hex())


# --- MQTT ------------------------------------------------------------------------------

mqtt_streams = st.lists(st.one_of(sm.packets().map(lambda p: bytes(p[0])),
                                  sm.malformed().map(bytes), st.binary(max_size=20)),
                        min_size=1, max_size=5).map(b"".join)


@budget(150)
@given(mqtt_streams, st.sampled_from(("client", "server")), st.integers(16, 300),
       st.lists(st.integers(0, 600), max_size=8))
@example(b"\x30\x07\x00\x03a\xc0\x80xx", "server", 64, [])           # overlong UTF-8
@example(b"\x30\x08\x00\x04\xed\xa0\x80az", "client", 64, [3])        # surrogate
@example(b"\x30\x07\x00\x03\xf4\x90\x80\x80", "client", 64, [])       # > U+10FFFF, cut
def test_mqtt_identical(mpw, data, side, maxp, cuts):
    same(mpw, "mqtt", side, maxp, cuts, data.hex())


_any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_topics = st.one_of(sm.topic_names(), sm.topic_filters(), _any_text,
                    st.sampled_from(("", "a\x00b", "a/+", "#", "\U0001F3E0/x", "x" * 70000)))


@st.composite
def encoder_calls(draw):
    kind = draw(st.sampled_from(("publish", "subscribe", "unsubscribe", "connect")))
    pid = draw(st.integers(-1, 65537))
    qos = draw(st.integers(-1, 3))
    if kind == "publish":
        return kind, [draw(_topics), {"hex": draw(st.binary(max_size=40)).hex()}, qos,
                      draw(st.booleans()), draw(st.booleans()), pid]
    if kind == "subscribe":
        return kind, [pid, draw(st.lists(st.tuples(_topics, st.integers(-1, 3)), max_size=3))]
    if kind == "unsubscribe":
        return kind, [pid, draw(st.lists(_topics, max_size=3))]
    will = draw(st.none() | st.tuples(_topics, st.binary(max_size=8).map(bytes.hex),
                                      st.booleans(), st.integers(-1, 3)))
    user = draw(st.none() | _any_text)
    pw = draw(st.none() | st.binary(max_size=8).map(lambda b: {"hex": b.hex()}))
    return kind, [draw(_any_text), draw(st.integers(-1, 65536)), draw(st.booleans()),
                  None if will is None else list(will), user, pw]


@budget(150, fuzz=5000)
@given(encoder_calls())
@example(("publish", ["\U0001F3E0/t", {"hex": "00"}, 1, False, False, 7]))
@example(("connect", ["\U0001F3E0", 30, True, ["w/\U0001F3E0", "", True, 1], "u\u00e9", None]))
def test_mqtt_encoders_identical(mpw, call):
    """What the gateway puts on the wire (protocols.mqtt.encode), the same bytes or the
    same documented error on both interpreters, for any arguments."""
    same(mpw, "encode", call[0], call[1])


# --- config ------------------------------------------------------------------------------


def _text(obj):
    return None if obj is None else json.dumps(obj, ensure_ascii=False)


@budget(120, fuzz=5000)
@given(sc.any_configs, st.none() | sc.secrets(), sc.boards())
@example({"device_id": "a", "name": "Maison \U0001F3E0", "mqtt": {"host": "h", "client_id": "\U00010000"},
          "network": {"type": "wifi", "ssid": "Box\U0001F4F6"}}, {"wifi_password": "\U0001F511" * 3}, None)
def test_config_validate_identical(mpw, cfg, sec, board):
    same(mpw, "validate", json.dumps(cfg, ensure_ascii=False), _text(sec), _text(board))


@budget(60, fuzz=3000)
@given(sc.configs(), st.none() | sc.secrets(), sc.boards().filter(lambda b: b is not None))
@example({"device_id": "a", "name": "Maison \U0001F3E0", "mqtt": {"host": "h"},
          "network": {"type": "wifi", "ssid": "Box\U0001F4F6"}}, {"wifi_password": "\U0001F511"},
         {"id": "emu"})
def test_the_device_reads_the_config_flash_writes(mpw, scratch, cfg, sec, board):
    """passerelle flash's config.json / secrets.json, read back by gw.config.read_json on
    MicroPython: the very objects the host validated (found: \\u escapes of characters
    beyond U+FFFF were read back as other strings)."""
    from passerelle.flash import board_files
    files = board_files(scratch, [], cfg, sec, board)
    for name in ("/config.json", "/secrets.json"):
        if name in files:
            p = scratch / name[1:]
            p.write_bytes(files[name])
            got = same(mpw, "read_json", str(p))
            assert got == [cfg if name == "/config.json" else sec, None]


@budget(80)
@given(sc.config_texts())
@example(b'{"device_id": "\xff"}')
@example(b"\xef\xbb\xbf{}")
@example(b'{"a": 1} x')
@example(b'{"a": 1,}')
@example(b"[1, 2")
@example(b'{"name": "\xc0\x80"}')
@example(b'{"name": "\xed\xa0\x80"}')
def test_config_read_json_identical(mpw, scratch, text):
    """Identical for every file CPython reads as JSON.  Three known MicroPython
    differences are allowed, each in the direction "the device reads a file the host
    refuses" (the host's check-config and flash refuse it first):
    - its json is lenient: trailing or missing commas, missing colons, leading zeros;
    - its UTF-8 decoder takes ill-formed text (overlong forms such as C0 80, surrogates,
      code points beyond U+10FFFF) that CPython refuses as not UTF-8;
    - it decodes a surrogate pair escape (a character beyond U+FFFF written by an
      ASCII-only JSON writer) as two invalid characters (passerelle flash writes UTF-8)."""
    p = scratch / "config.json"
    p.write_bytes(text)
    mp, py = mpw.compare("read_json", str(p))
    assert "exc" not in py and "exc" not in mp, (mp, py)
    if py["ok"][1] is not None and mp["ok"][1] is None:
        try:
            text.decode("utf-8")
        except UnicodeError:
            assert py["ok"][1].endswith("invalid JSON (not UTF-8)")
            return                                  # MicroPython's lax UTF-8 decoder
        assert py["ok"][1].endswith("invalid JSON")
        return                                      # MicroPython's lenient json
    if re.search(rb"\\u[dD][89abAB]", text):
        return                                      # surrogate pair escapes
    assert mp == py


# --- what reaches MQTT: TICMeter on both interpreters ----------------------------------


@budget(40, fuzz=2000)
@given(meter_streams(max_frames=8), st.data())
def test_tic_meter_identical(mpw, ms, data):
    chunks = []
    for t, raw, _ in ms.frames:
        bad = data.draw(mutated(raw, LINE_FAULTS, 0, 3))
        cut = data.draw(st.integers(0, len(bad)))
        chunks.append([int(t * 1000), bad[:cut].hex()])
        chunks.append([int(t * 1000) + 1, bad[cut:].hex()])
    same(mpw, "meter", "auto", chunks)


# --- Modbus RTU ------------------------------------------------------------------------


@budget(100, 20000)
@given(sm_modbus.streams(), st.data())
@example(sm_modbus.Stream((), bytes.fromhex("010402000a3934")), None)
def test_modbus_rtu_identical(mpw, stream, data):
    """The RTU response decoder (any chunking, garbage, then the line going silent)."""
    cuts = data.draw(sm_modbus.chunkings(stream.data)) if data is not None else [3]
    expect = [0, 0, 0]
    if data is not None and stream.responses and data.draw(st.booleans()):
        r = stream.responses[0].fields
        expect = [r[0], r[1], r[3] if r[1] in (3, 4) and not r[2] else 0]
    got = same(mpw, "modbus", cuts, expect, stream.data.hex())
    stats = dict(got["stats"])
    assert stats["bytes"] == len(stream.data)
    assert stats["frames"] == len(got["responses"])


@budget(60, 5000)
@given(st.lists(sm_modbus.float_bits(), min_size=1, max_size=40))
def test_modbus_float32_identical(mpw, bits):
    same(mpw, "f32", bits)
