"""protocols.mqtt decoders (client MQTTDecoder, broker MQTTServerDecoder) under malformed
packets (passerelle.strategies.mqtt.malformed), oversize packets and garbage.  The
round trips and the server decoder's chunking properties are in
tests/mqtt/test_mqtt_codec_properties.py; this file adds the client decoder, every
malformation kind, recovery, and the error contract."""

from hypothesis import example, given, strategies as st

from protocols.errors import MalformedPacket, UsageError
from protocols.mqtt import MQTTDecoder, encode
from protocols.mqtt.server import MQTTServerDecoder

from passerelle.strategies.mqtt import make_malformed, malformed, pkt, to_client, to_client_packets
from tests.fuzz.fuzzutil import budget
from tests.mqtt.codec_feed import feed

DECODERS = {"client": MQTTDecoder, "server": MQTTServerDecoder}


@budget(150)
@given(malformed(), st.sampled_from(sorted(DECODERS)), st.lists(st.integers(0, 400), max_size=6),
       to_client_packets())
# make fuzz found the strategy cutting a topic inside a character (b"\xc2") before the
# stray continuation b"\x80": that was U+0080, well-formed; the real fault, as it is now:
@example(make_malformed(b"0\x0a\x00\x01\x80payload", "utf8", True), "client", [], (b"\xd0\x00", pkt(type=13)))
def test_malformed_raises_malformed_counted_and_recovers(bad, side, cuts, after):
    """A malformed packet raises MalformedPacket (nothing else), counted once, whatever
    the chunking; when the fault is in the body, the next packet decodes; after
    reset() (a new connection) a valid packet always decodes."""
    d = DECODERS[side](512)
    if side == "client" and not to_client(bad):
        ev = feed(d, bytes(bad), cuts)
        assert ev[0][0] == "err" and "not expected" in ev[0][1]
    else:
        data = bytes(bad) + bytes(after[0])
        ev = feed(d, data, cuts)
        assert ev[0][0] == "err", (bad.what, ev)
        assert ev == feed(DECODERS[side](512), data), "chunking changed the outcome"
        if bad.body:
            assert ev[0][2] == len(bad), (bad.what, ev)
            assert ev[1:] == [("pkt", after[1], len(data))], (bad.what, ev)
    assert d.stats["malformed"] == sum(1 for e in ev if e[0] == "err")
    d.reset()
    assert d.stats == {"packets": 0, "malformed": 0, "oversize": 0, "bytes": 0}
    assert feed(d, bytes(after[0])) == [("pkt", after[1], len(after[0]))]


@budget(100)
@given(st.lists(to_client_packets(), min_size=1, max_size=6), st.integers(16, 200),
       st.lists(st.integers(0, 2000), max_size=10))
def test_client_decoder_any_max_packet_any_chunking(pkts, maxp, cuts):
    """What a broker sends, through the client decoder with any max_packet: packets that
    fit come out exact; larger ones are skipped (counted oversize), a PUBLISH among
    them still comes out truncated (topic and pid, no payload) when its header fits;
    the same whatever the chunking."""
    data = b"".join(bytes(p[0]) for p in pkts)
    d = MQTTDecoder(maxp)
    ev = feed(d, data, cuts)
    assert ev == feed(MQTTDecoder(maxp), data)
    assert all(e[0] == "pkt" for e in ev)
    got = [e[1] for e in ev]
    want = []
    oversize = 0
    for raw, p in pkts:
        body = len(raw) - 2 if len(raw) < 130 else len(raw) - 3
        if body <= maxp:
            want.append(p)
            continue
        oversize += 1
        if p.type == 3:
            hdr = 2 + len(p.topic.encode()) + (2 if p.qos else 0)
            if hdr <= maxp:
                t = p.copy()
                t.payload, t.truncated = None, True
                want.append(t)
    assert got == want
    assert d.stats["oversize"] == oversize and d.stats["bytes"] == len(data)
    assert d.stats["packets"] == len(want) and d.stats["malformed"] == 0


@budget(100)
@given(st.binary(max_size=600), st.integers(16, 64), st.sampled_from(sorted(DECODERS)))
def test_garbage_only_malformed_and_bounded(data, maxp, side):
    """Any bytes: only MalformedPacket, memory bounded by max_packet, counters add up."""
    d = DECODERS[side](maxp)
    ev = feed(d, data, (7, 100, 101))
    assert d.stats["malformed"] == sum(1 for e in ev if e[0] == "err")
    assert d.stats["packets"] == sum(1 for e in ev if e[0] == "pkt")
    # bytes counts everything consumed up to the last decision (a partial packet: pending)
    assert d.stats["bytes"] <= len(data)


@budget(60)
@given(st.binary(max_size=64), st.integers(-3, 70), st.integers(-3, 70))
def test_bad_offsets_raise_usage_error(data, start, end):
    d = MQTTServerDecoder(64)
    try:
        d.decode(data, start, end)
    except UsageError:
        assert not (0 <= start <= end <= len(data))
    except MalformedPacket:
        assert 0 <= start <= end <= len(data)
    else:
        assert 0 <= start <= end <= len(data)


@budget(50)
@given(st.integers(1, 65535), st.binary(min_size=200, max_size=3000), st.integers(1, 97))
def test_oversize_publish_is_acked_not_buffered(pid, payload, chunk):
    """A QoS1 PUBLISH far beyond max_packet: returned truncated with its pid (so the
    client PUBACKs it) without ever buffering more than max_packet."""
    raw = bytes(encode.publish("gw/cmd", payload, 1, False, False, pid)) + bytes(encode.puback(9))
    d = MQTTDecoder(64)
    ev = feed(d, raw, list(range(chunk, len(raw), chunk)))
    assert [(e[1].type, e[1].pid, e[1].truncated, e[1].payload) for e in ev] == \
        [(3, pid, True, None), (4, 9, False, None)]
    assert d.stats["oversize"] == 1

