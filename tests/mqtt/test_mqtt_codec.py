"""protocols.mqtt: known-answer vectors, strict rejection, MicroPython parity."""

from pathlib import Path

import pytest

from protocols.errors import EncodeError, MalformedPacket, UsageError
from protocols.mqtt import MQTTDecoder, encode, server, PUBLISH, PUBACK, CONNECT
from protocols.mqtt.server import MQTTServerDecoder
from tests.mqtt import codec_cases

HERE = Path(__file__).resolve().parent

# (vector name in codec_cases.VALID, the encoder call that must produce it byte for byte)
ENCODED = {
    "connect_min": lambda: encode.connect("test", 60),
    "connect_full": lambda: encode.connect("cid", 30, True, ("g/123/status", b"offline", True, 1),
                                           "u", b"pw!"),
    "publish_q0": lambda: encode.publish("a/b", b"hi"),
    "publish_q1_retain": lambda: encode.publish("a/b", "hi", qos=1, retain=True, pid=1),
    "publish_q1_dup": lambda: encode.publish("a/b", b"hi", qos=1, dup=True, pid=7),
    "publish_utf8": lambda: encode.publish("\u00e9/", b""),
    "publish_empty_payload": lambda: encode.publish("a/b", b""),
    "puback": lambda: encode.puback(7),
    "pubrec": lambda: encode.pubrec(7),
    "pubrel": lambda: encode.pubrel(7),
    "pubcomp": lambda: encode.pubcomp(7),
    "subscribe": lambda: encode.subscribe(1, [("a/#", 1), ("a/+/c", 0)]),
    "unsubscribe": lambda: encode.unsubscribe(1, ["a/#"]),
    "pingreq": lambda: encode.PINGREQ,
    "pingresp": lambda: server.PINGRESP,
    "disconnect": lambda: encode.DISCONNECT,
    "connack": lambda: server.connack(True, 0),
    "connack_refused": lambda: server.connack(False, 5),
    "suback": lambda: server.suback(1, [1, 0x80, 2]),
    "unsuback": lambda: server.unsuback(9),
}


@pytest.mark.parametrize("name,hexdata", codec_cases.VALID, ids=[c[0] for c in codec_cases.VALID])
def test_known_answer_encode_and_decode(name, hexdata):
    data = codec_cases.unhex(hexdata)
    assert bytes(ENCODED[name]()) == data
    d = MQTTServerDecoder(256)
    used, p = d.decode(data)
    assert used == len(data) and p is not None
    assert d.stats["packets"] == 1 and d.stats["bytes"] == len(data)


@pytest.mark.parametrize("name,hexdata", codec_cases.MALFORMED,
                         ids=[c[0] for c in codec_cases.MALFORMED])
def test_malformed_is_rejected_counted_and_resets(name, hexdata):
    d = MQTTServerDecoder(256)
    data = codec_cases.unhex(hexdata)
    with pytest.raises(MalformedPacket) as ei:
        d.decode(data)
    assert 0 < ei.value.used <= len(data)
    assert d.stats["malformed"] == 1 and d.buffered == 0
    # The decoder is usable again: a valid packet right after is decoded.
    assert d.decode(b"\xd0\x00") == (2, d.packet) and d.packet.type == 13


@pytest.mark.parametrize("rem,varint", [(127, "7f"), (128, "8001"), (16383, "ff7f"),
                                        (16384, "808001"), (2097151, "ffff7f"),
                                        (2097152, "80808001"), (268435455, "ffffff7f")])
def test_remaining_length_varint_boundaries(rem, varint):
    # MQTT 3.1.1 table 2.4; the encoder writes the minimal form, the decoder reads it
    # (and skips the oversize body without buffering it).
    payload = rem - 2 - 3
    head = bytes(encode.publish("a/b", b""))[:1]
    if rem <= 20000:
        pkt = bytes(encode.publish("a/b", b"x" * payload))
        assert pkt[1:1 + len(varint) // 2] == codec_cases.unhex(varint)
    d = MQTTDecoder(64)
    used, p = d.decode(head + codec_cases.unhex(varint) + b"\x00\x03a/b")
    assert p is None and d.buffered == 5
    assert d.max_packet == 64 and len(d._buf) == 64


def test_oversize_publish_is_skipped_but_reported_for_ack():
    d = MQTTDecoder(32)
    big = bytes(encode.publish("big/t", b"x" * 5000, qos=1, pid=42))
    nxt = bytes(encode.puback(9))
    stream = big + nxt
    got = []
    i = 0
    while i < len(stream):
        used, p = d.decode(stream, i, min(len(stream), i + 700))
        i += used
        assert d.buffered <= 32
        if p is not None:
            got.append(p.copy())
    assert [(p.type, p.pid, p.topic, p.truncated, p.payload) for p in got] == [
        (PUBLISH, 42, "big/t", True, None), (PUBACK, 9, None, False, None)]
    assert d.stats["oversize"] == 1 and d.stats["packets"] == 2


def test_oversize_non_publish_is_skipped_silently():
    d = MQTTServerDecoder(16)
    sub = bytes(encode.subscribe(5, [("a/" + "x" * 40, 1)]))
    used, p = d.decode(sub + b"\xc0\x00")
    assert p is None and used == len(sub)
    assert d.decode(b"\xc0\x00")[1].type == 12       # PINGREQ
    assert d.stats["oversize"] == 1


def test_decode_with_start_and_end_reads_only_that_window():
    blob = b"\xff\xff" + bytes(encode.puback(3)) + b"\xff"
    d = MQTTDecoder(64)
    used, p = d.decode(blob, 2, 6)
    assert used == 4 and p.type == PUBACK and p.pid == 3


def test_bad_window_is_a_usage_error_and_reset_zeroes_counters():
    d = MQTTDecoder(64)
    for start, end in ((-1, None), (3, 2), (0, 9)):
        with pytest.raises(UsageError):
            d.decode(b"\xd0\x00", start, end)
    assert d.decode(b"\xd0\x00", 2, 2) == (0, None)
    d.decode(b"\xd0\x00\x30")
    d.decode(b"\xd0\x00\x30", 2)
    assert d.stats["packets"] == 1 and d.buffered == 0 and d._state == 1
    d.reset()
    assert d.stats == {"packets": 0, "malformed": 0, "oversize": 0, "bytes": 0}
    assert d.decode(b"\xd0\x00")[1].type == 13


def test_connect_fields():
    d = MQTTServerDecoder(256)
    _, p = d.decode(encode.connect("gw-1", 45, False, ("s/t", "offline", True, 1), "bob", "pw"))
    assert (p.type, p.client_id, p.keepalive, p.clean, p.will, p.user, p.password, p.level) == (
        CONNECT, "gw-1", 45, False, ("s/t", b"offline", True, 1), "bob", b"pw", 4)


@pytest.mark.parametrize("call,err", [
    (lambda: encode.publish("a/+", b""), EncodeError),
    (lambda: encode.publish("a/#", b""), EncodeError),
    (lambda: encode.publish("", b""), EncodeError),
    (lambda: encode.publish("a\x00b", b""), EncodeError),
    (lambda: encode.publish("x" * 65536, b""), EncodeError),
    (lambda: encode.publish("a\ud800", b""), EncodeError),
    (lambda: encode.publish("a", b"", qos=3), UsageError),
    (lambda: encode.publish("a", b"", qos=1, pid=0), UsageError),
    (lambda: encode.publish("a", b"", dup=True), UsageError),
    (lambda: encode.publish(b"\xc0\x80", b""), EncodeError),
    (lambda: encode.publish(7, b""), UsageError),
    (lambda: encode.connect("c", 70000), UsageError),
    (lambda: encode.connect("c", 10, password=b"p"), UsageError),
    (lambda: encode.connect("c", 10, will=("a", b"x")), UsageError),
    (lambda: encode.subscribe(1, [("a/#/b", 0)]), EncodeError),
    (lambda: encode.subscribe(1, [("a+", 0)]), EncodeError),
    (lambda: encode.subscribe(1, []), UsageError),
    (lambda: encode.unsubscribe(1, "a/b"), UsageError),
    (lambda: server.suback(1, [3]), UsageError),
])
def test_encoder_argument_errors(call, err):
    with pytest.raises(err):
        call()


@pytest.mark.parametrize("name", codec_cases.CLIENT_REJECTS)
def test_client_decoder_refuses_client_only_packets(name):
    data = codec_cases.unhex(dict(codec_cases.VALID)[name])
    d = MQTTDecoder(256)
    with pytest.raises(MalformedPacket) as ei:
        d.decode(data)
    assert ei.value.used == 1 and "not expected" in ei.value.reason


def test_codec_identical_on_micropython(run_micropython):
    """The same vectors decoded by the unix port give the same fields and the same
    errors (MicroPython's own str() would accept overlong/surrogate UTF-8)."""
    r = run_micropython(HERE / "codec_cases.py", heapsize="96K", cwd=str(HERE))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    alloc = [ln for ln in lines if ln.startswith("ALLOC ")]
    assert [ln for ln in lines if not ln.startswith("ALLOC ")] == codec_cases.run_cases([])
    whole, bytewise = (int(x) for x in alloc[0].split()[1:])
    # A 31-byte PUBLISH: topic str + payload bytes + small views (64-bit heap) when fed
    # whole; fed one byte per call, only the (used, packet) result tuple per call.
    assert whole <= 512, alloc
    assert bytewise <= whole + 31 * 48, alloc
