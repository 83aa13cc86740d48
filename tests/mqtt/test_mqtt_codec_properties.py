"""protocols.mqtt Hypothesis properties: round trips in any chunking, bounded memory
under garbage, only MalformedPacket on bad wire data, chunking-independent results."""

import pytest
from hypothesis import given, strategies as st

from protocols.mqtt import MQTTDecoder
from protocols.mqtt.server import MQTTServerDecoder

from passerelle.strategies.mqtt import packets, reencode
from tests.mqtt.codec_feed import feed

pytestmark = pytest.mark.timeout(1800)     # the fuzz profile runs 20000 examples per test


@given(st.lists(packets(), min_size=1, max_size=6),
       st.lists(st.integers(0, 1500), max_size=12))
def test_roundtrip_any_chunking(pkts, cuts):
    data = b"".join(bytes(p[0]) for p in pkts)
    d = MQTTServerDecoder(1024)
    events = feed(d, data, cuts)
    assert [e[0] for e in events] == ["pkt"] * len(pkts)
    assert [e[1] for e in events] == [p[1] for p in pkts]
    assert d.stats["packets"] == len(pkts) and d.stats["bytes"] == len(data)
    assert d.stats["malformed"] == 0


@given(st.binary(max_size=800), st.lists(st.integers(0, 800), max_size=12),
       st.integers(16, 300))
def test_garbage_bounded_only_documented_error_and_chunking_independent(data, cuts, maxp):
    whole = feed(MQTTServerDecoder(maxp), data, [])
    d = MQTTServerDecoder(maxp)
    chunked = feed(d, data, cuts)
    assert chunked == whole
    assert d.stats["malformed"] == sum(1 for e in whole if e[0] == "err")


@given(st.lists(packets(), min_size=1, max_size=5), st.data())
def test_mutated_packets_decode_or_raise_malformed(pkts, data):
    raw = bytearray(b"".join(bytes(p[0]) for p in pkts))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cuts = data.draw(st.lists(st.integers(0, len(raw))))
    raw = bytes(raw)
    assert feed(MQTTServerDecoder(512), raw, cuts) == feed(MQTTServerDecoder(512), raw, [])


@given(st.lists(packets(), min_size=1, max_size=4), st.data())
def test_whatever_decodes_reencodes_to_the_same_packet(pkts, data):
    """Anything the decoder accepts (even from mutated input) is encodable and decodes
    back to the same fields: the decoder accepts nothing the encoder would refuse."""
    raw = bytearray(b"".join(bytes(p[0]) for p in pkts))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    for ev in feed(MQTTServerDecoder(4096), bytes(raw), []):
        if ev[0] == "pkt":
            p = ev[1]
            _, q = MQTTServerDecoder(4096).decode(reencode(p))
            if p.type == 1:         # any protocol level decodes (the broker answers
                q.level = p.level   # CONNACK 1); our encoder only writes level 4
            assert q == p


@given(st.lists(packets(), min_size=1, max_size=6),
       st.lists(st.integers(0, 1500), max_size=12))
def test_client_decoder_agrees_on_server_to_client_streams(pkts, cuts):
    """The gateway's decoder gives exactly the server decoder's packets for what a
    broker may send, and refuses (MalformedPacket) the client-only types."""
    data = b"".join(bytes(p[0]) for p in pkts)
    ev_client = feed(MQTTDecoder(1024), data, cuts)
    ev_server = feed(MQTTServerDecoder(1024), data, [])
    for i, pkt in enumerate(pkts):
        if pkt[1].type in (1, 8, 10, 12, 14):
            assert ev_client[i][0] == "err" and "not expected" in ev_client[i][1]
            break
        assert ev_client[i] == ev_server[i]
