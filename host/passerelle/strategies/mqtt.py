"""MQTT 3.1.1 strategies: packets of every type as (encoded bytes, expected decoded
Packet), and malformed packets as Malformed(bytes, what, body) where ``body`` is True
when the fault is found after the remaining length was read (the decoder then
consumed the whole bad packet and the next byte is a packet boundary again).

``packets()``          any of the 14 types, as protocols.mqtt.encode / .server write them
``to_client_packets()`` only what a broker sends (CONNACK, PUBLISH, acks, SUBACK, ...)
``malformed()``        one broken packet: remaining length, topic and string lengths,
                       fixed-header flags, reserved types, UTF-8, pid 0, QoS 3, ...
``reencode(p)``        the bytes an encoder writes for a decoded Packet
"""

from hypothesis import strategies as st

from protocols.mqtt import Packet, encode, server

# Topic text: any Unicode scalar except NUL and surrogates (ill-formed in UTF-8).
chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_level = st.text(chars.filter(lambda c: c not in "/+#"), max_size=8)


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

KINDS = ("connect", "publish", "ack", "subscribe", "unsubscribe", "empty", "connack", "suback")
TO_CLIENT_KINDS = ("publish", "ack", "connack", "suback", "pingresp")


def pkt(**kw):
    p = Packet()
    for k, v in kw.items():
        setattr(p, k, v)
    return p


@st.composite
def packets(draw, kinds=KINDS):
    """(encoded bytes, expected decoded Packet) for every packet type."""
    kind = draw(st.sampled_from(kinds))
    if kind == "publish":
        q = draw(qos)
        pid = draw(pids) if q else 0
        dup = draw(st.booleans()) if q else False
        t, pl, rt = draw(topic_names()), draw(payloads), draw(st.booleans())
        data = encode.publish(t, pl, q, rt, dup, pid)
        return data, pkt(type=3, flags=(q << 1) | (8 if dup else 0) | (1 if rt else 0),
                         pid=pid, topic=t, payload=pl, qos=q, retain=rt, dup=dup)
    if kind == "ack":
        first, fn = draw(st.sampled_from([(0x40, encode.puback), (0x50, encode.pubrec),
                                          (0x62, encode.pubrel), (0x70, encode.pubcomp),
                                          (0xB0, server.unsuback)]))
        pid = draw(pids)
        return fn(pid), pkt(type=first >> 4, flags=first & 15, pid=pid)
    if kind == "subscribe":
        pid = draw(pids)
        topics = draw(st.lists(st.tuples(topic_filters(), qos), min_size=1, max_size=4))
        return encode.subscribe(pid, topics), pkt(type=8, flags=2, pid=pid, topics=topics)
    if kind == "unsubscribe":
        pid = draw(pids)
        fl = draw(st.lists(topic_filters(), min_size=1, max_size=4))
        return encode.unsubscribe(pid, fl), pkt(type=10, flags=2, pid=pid, topics=fl)
    if kind in ("empty", "pingresp"):
        data = server.PINGRESP if kind == "pingresp" else draw(
            st.sampled_from([encode.PINGREQ, server.PINGRESP, encode.DISCONNECT]))
        return data, pkt(type=data[0] >> 4)
    if kind == "connack":
        sp, code = draw(st.booleans()), draw(st.integers(0, 255))
        return server.connack(sp, code), pkt(type=2, session_present=sp, code=code)
    if kind == "suback":
        pid = draw(pids)
        codes = draw(st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=6))
        return server.suback(pid, codes), pkt(type=9, pid=pid, codes=bytes(codes))
    cid = draw(st.text(chars, max_size=23))
    ka = draw(st.integers(0, 65535))
    clean = draw(st.booleans())
    will = draw(st.none() | st.tuples(topic_names(), st.binary(max_size=40), st.booleans(), qos))
    user = draw(st.none() | st.text(chars, max_size=12))
    pw = draw(st.none() | st.binary(max_size=12)) if user is not None else None
    data = encode.connect(cid, ka, clean, will, user, pw)
    return data, pkt(type=1, level=4, client_id=cid, keepalive=ka, clean=clean, will=will,
                     user=user, password=pw)


def to_client_packets():
    return packets(TO_CLIENT_KINDS)


def reencode(p):
    """Bytes of a decoded Packet as the encoders write them."""
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


# --- malformed ------------------------------------------------------------------------


class Malformed(bytes):
    """One malformed packet; ``what`` names the fault, ``body`` (see module doc)."""

    what = ""
    body = False


def make_malformed(data, what, body):
    """A Malformed from bytes (for @example)."""
    m = Malformed(bytes(data))
    m.what = what
    m.body = body
    return m


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _frame(first, body):
    return bytes((first,)) + varint(len(body)) + body


def _str(b):
    return len(b).to_bytes(2, "big") + b


# bytes that are not well-formed UTF-8 (overlong, surrogate, > U+10FFFF, stray continuation,
# truncated sequence)
BAD_UTF8 = (b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82", b"\xff")

MALFORMED_KINDS = ("varint5", "rem_type", "flags", "reserved_type", "qos3", "dup_qos0",
                   "topic_len", "utf8", "nul", "wildcard", "empty_topic", "pid0",
                   "suback_code", "connack_flags", "connect_proto", "connect_flags",
                   "connect_left", "sub_qos", "sub_filter", "short_pid")


@st.composite
def malformed(draw, kinds=MALFORMED_KINDS):
    """One malformed packet -> Malformed (raised as MalformedPacket by the decoders
    that accept its type; ``to_client`` is False for a client-only type)."""
    kind = draw(st.sampled_from(kinds))
    topic = draw(topic_names()).encode()
    if kind == "varint5":           # 5 continuation bytes
        first = draw(st.sampled_from((0x30, 0x40, 0x20, 0x90)))
        return make_malformed(bytes((first,)) + bytes(draw(st.lists(st.integers(0x80, 0xFF), min_size=4,
                                                          max_size=4))) + b"\x01", kind, False)
    if kind == "rem_type":          # remaining length impossible for the type
        t, rem = draw(st.sampled_from([(0x20, 3), (0x20, 1), (0x40, 3), (0x40, 0), (0xD0, 1),
                                       (0x30, 1), (0x90, 2), (0xB0, 4), (0x62, 1), (0x10, 5)]))
        return make_malformed(bytes((t,)) + varint(rem) + bytes(rem), kind, False)
    if kind == "flags":             # wrong fixed-header flags
        t = draw(st.sampled_from((0x20, 0x40, 0x50, 0x70, 0x90, 0xB0, 0xD0, 0x60, 0x80, 0xA0)))
        f = draw(st.integers(0, 15).filter(lambda f: f != (2 if t in (0x60, 0x80, 0xA0) else 0)))
        return make_malformed(bytes((t | f, 2, 0, 1)), kind, False)
    if kind == "reserved_type":
        return make_malformed(bytes((draw(st.sampled_from((0x00, 0xF0))), 0)), kind, False)
    if kind == "qos3":
        return make_malformed(_frame(0x36 | draw(st.sampled_from((0, 1, 8, 9))), _str(topic) + b"\x00\x01x"),
                   kind, False)
    if kind == "dup_qos0":
        return make_malformed(_frame(0x38, _str(topic) + b"x"), kind, False)
    if kind == "topic_len":         # topic length beyond the packet
        extra = draw(st.integers(1, 300))
        return make_malformed(_frame(0x30, (len(topic) + extra).to_bytes(2, "big") + topic), kind, True)
    if kind in ("utf8", "nul", "wildcard", "empty_topic"):
        bad = {"utf8": draw(st.sampled_from(BAD_UTF8)), "nul": b"\x00",
               "wildcard": draw(st.sampled_from((b"+", b"#"))), "empty_topic": b""}[kind]
        text = topic.decode()       # cut between characters: a cut lead byte + a stray
        cut = text[:draw(st.integers(0, len(text)))].encode()   # continuation is valid
        t = b"" if kind == "empty_topic" else cut + bad
        return make_malformed(_frame(0x30 | draw(st.sampled_from((0, 1))), _str(t) + b"payload"), kind, True)
    if kind == "pid0":
        first, body = draw(st.sampled_from([(0x40, b"\x00\x00"), (0x32, _str(topic) + b"\x00\x00"),
                                            (0x90, b"\x00\x00\x00"), (0xB0, b"\x00\x00")]))
        return make_malformed(_frame(first, body), kind, True)
    if kind == "short_pid":         # QoS1 PUBLISH whose packet id does not fit
        return make_malformed(_frame(0x32, _str(topic) + b"\x07"), kind, True)
    if kind == "suback_code":
        c = draw(st.integers(3, 255).filter(lambda c: c != 0x80))
        return make_malformed(_frame(0x90, b"\x00\x05" + bytes((c,))), kind, True)
    if kind == "connack_flags":
        return make_malformed(bytes((0x20, 2, draw(st.integers(2, 255)), 0)), kind, True)
    cid = _str(b"x")
    if kind == "connect_proto":
        name = draw(st.sampled_from((b"\x00\x04MQTs", b"\x00\x06MQIsdp", b"\x00\x04mqtt")))
        return make_malformed(_frame(0x10, name + b"\x04\x02\x00\x1e" + cid), kind, True)
    if kind == "connect_flags":
        fl = draw(st.sampled_from((0x03, 0x18 | 0x04 | 0x02, 0x42, 0x08, 0x20)))
        return make_malformed(_frame(0x10, b"\x00\x04MQTT\x04" + bytes((fl,)) + b"\x00\x1e" + cid),
                   kind, True)
    if kind == "connect_left":
        return make_malformed(_frame(0x10, b"\x00\x04MQTT\x04\x02\x00\x1e" + cid + b"zz"), kind, True)
    if kind == "sub_qos":
        return make_malformed(_frame(0x82, b"\x00\x01" + _str(b"a/b") + bytes((draw(st.integers(3, 255)),))),
                   kind, True)
    bad_filter = draw(st.sampled_from((b"a/#/b", b"a+", b"#a", b"")))      # "sub_filter"
    # an empty filter makes the packet shorter than any SUBSCRIBE: refused from its header
    return make_malformed(_frame(0x82, b"\x00\x01" + _str(bad_filter) + b"\x01"), kind, bad_filter != b"")


CLIENT_ONLY_TYPES = (1, 8, 10, 12, 14)


def to_client(m):
    """True when a client-side decoder (MQTTDecoder) would get to parse ``m``'s
    fault (its type is one a broker may send)."""
    return (m[0] >> 4) not in CLIENT_ONLY_TYPES and (m[0] >> 4) not in (0, 15)
