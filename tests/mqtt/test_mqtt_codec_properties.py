"""protocols.mqtt Hypothesis properties: round trips in any chunking, bounded memory
under garbage, only MalformedPacket on bad wire data, chunking-independent results."""

import pytest
from hypothesis import given, strategies as st

from protocols.errors import MalformedPacket
from protocols.mqtt import MQTTDecoder, Packet, encode, server
from protocols.mqtt.server import MQTTServerDecoder

pytestmark = pytest.mark.timeout(1800)     # the fuzz profile runs 20000 examples per test

# Topic text: any Unicode scalar except NUL and surrogates (ill-formed in UTF-8).
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_level = st.text(_chars.filter(lambda c: c not in "/+#"), max_size=8)


@st.composite
def topic_names(draw):
    t = "/".join(draw(st.lists(_level, min_size=1, max_size=4)))
    return t if t else "t"


@st.composite
def topic_filters(draw):
    levels = draw(st.lists(st.one_of(_level, st.just("+")), min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    f = "/".join(levels)
    return f if f else "+"


pids = st.integers(1, 65535)
payloads = st.binary(max_size=120)
qos = st.integers(0, 2)


def _pkt(**kw):
    p = Packet()
    for k, v in kw.items():
        setattr(p, k, v)
    return p


@st.composite
def packets(draw):
    """(encoded bytes, expected decoded Packet) for every packet type."""
    kind = draw(st.sampled_from(["connect", "publish", "ack", "subscribe", "unsubscribe",
                                 "empty", "connack", "suback"]))
    if kind == "publish":
        q = draw(qos)
        pid = draw(pids) if q else 0
        dup = draw(st.booleans()) if q else False
        t, pl, rt = draw(topic_names()), draw(payloads), draw(st.booleans())
        data = encode.publish(t, pl, q, rt, dup, pid)
        return data, _pkt(type=3, flags=(q << 1) | (8 if dup else 0) | (1 if rt else 0),
                          pid=pid, topic=t, payload=pl, qos=q, retain=rt, dup=dup)
    if kind == "ack":
        first, fn = draw(st.sampled_from([(0x40, encode.puback), (0x50, encode.pubrec),
                                          (0x62, encode.pubrel), (0x70, encode.pubcomp),
                                          (0xB0, server.unsuback)]))
        pid = draw(pids)
        return fn(pid), _pkt(type=first >> 4, flags=first & 15, pid=pid)
    if kind == "subscribe":
        pid = draw(pids)
        topics = draw(st.lists(st.tuples(topic_filters(), qos), min_size=1, max_size=4))
        return encode.subscribe(pid, topics), _pkt(type=8, flags=2, pid=pid, topics=topics)
    if kind == "unsubscribe":
        pid = draw(pids)
        fl = draw(st.lists(topic_filters(), min_size=1, max_size=4))
        return encode.unsubscribe(pid, fl), _pkt(type=10, flags=2, pid=pid, topics=fl)
    if kind == "empty":
        data = draw(st.sampled_from([encode.PINGREQ, server.PINGRESP, encode.DISCONNECT]))
        return data, _pkt(type=data[0] >> 4)
    if kind == "connack":
        sp, code = draw(st.booleans()), draw(st.integers(0, 255))
        return server.connack(sp, code), _pkt(type=2, session_present=sp, code=code)
    if kind == "suback":
        pid = draw(pids)
        codes = draw(st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=6))
        return server.suback(pid, codes), _pkt(type=9, pid=pid, codes=bytes(codes))
    cid = draw(st.text(_chars, max_size=23))
    ka = draw(st.integers(0, 65535))
    clean = draw(st.booleans())
    will = draw(st.none() | st.tuples(topic_names(), st.binary(max_size=40), st.booleans(), qos))
    user = draw(st.none() | st.text(_chars, max_size=12))
    pw = draw(st.none() | st.binary(max_size=12)) if user is not None else None
    data = encode.connect(cid, ka, clean, will, user, pw)
    return data, _pkt(type=1, level=4, client_id=cid, keepalive=ka, clean=clean, will=will,
                      user=user, password=pw)


def feed(d, data, cuts):
    """Decode ``data`` cut at ``cuts``; returns the event list: ("pkt", Packet copy,
    end offset) or ("err", reason, end offset).  Checks the memory bound at each step."""
    events = []
    bounds = sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]
    start = 0
    for end in bounds:
        i = start
        while i < end:
            try:
                used, p = d.decode(data, i, end)
            except MalformedPacket as e:
                assert 0 < e.used <= end - i
                i += e.used
                events.append(("err", e.reason, i))
                continue
            assert 0 < used <= end - i
            i += used
            assert d.buffered <= d.max_packet and len(d._buf) == d.max_packet
            if p is not None:
                events.append(("pkt", p.copy(), i))
        start = end
    return events


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


def _reencode(p):
    t = p.type
    if t == 3:
        return encode.publish(p.topic, p.payload, p.qos, p.retain, p.dup, p.pid)
    if t == 1:
        return encode.connect(p.client_id, p.keepalive, p.clean, p.will, p.user, p.password)
    if t == 8:
        return encode.subscribe(p.pid, p.topics)
    if t == 10:
        return encode.unsubscribe(p.pid, p.topics)
    if t == 2:
        return server.connack(p.session_present, p.code)
    if t == 9:
        return server.suback(p.pid, p.codes)
    if t in (12, 13, 14):
        return bytes((t << 4, 0))
    return bytes(((t << 4) | p.flags, 2, p.pid >> 8, p.pid & 255))


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
            _, q = MQTTServerDecoder(4096).decode(_reencode(p))
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
