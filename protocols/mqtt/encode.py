# protocols/mqtt/encode.py  MQTT 3.1.1 packet encoders: each packet built in one buffer.
# SPDX-License-Identifier: MIT
#
# Client -> server packets, and the QoS acks (both ways); server.py has the server ->
# client ones.  Every encoder returns the whole packet as ONE bytes/bytearray,
# allocated once at its exact size, so that a client writes it with a single socket
# write (several small writes per packet trip Nagle + delayed ACK: 44 ms per QoS1
# publish).
# Errors: UsageError for an argument of the wrong type/range (qos 3, pid 0 ...),
# EncodeError for a value that cannot go on the wire (topic with a wildcard or NUL,
# string over 65535 bytes, packet over 268435455 bytes).  Nothing else is raised.

from ..compat import const, pick
from ..errors import EncodeError, UsageError
from .packets import MAX_REMAINING
from .text import filter_ok, valid_utf8

PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"

_PROTO = b"\x00\x04MQTT\x04"   # protocol name + level 4 (3.1.1)

# error messages: one table, not a heap object per message (compat.pick)
_MSG = ("%s is not encodable as UTF-8|%s is not valid UTF-8|%s must be str|"
        "%s longer than 65535 bytes|%s contains U+0000|%s must be bytes or str|"
        "empty topic|wildcard in topic name %r|invalid topic filter %r|"
        "qos must be 0..%d|packet id must be 1..65535|packet too large|"
        "keepalive must be 0..65535 s|will must be (topic, payload, retain, qos)|"
        "password without user (MQTT-3.1.2-22)|"
        "DUP set on a QoS 0 publish (MQTT-3.3.1-2)|"
        "subscribe needs at least one topic filter|topics must be (filter, qos) tuples|"
        "unsubscribe needs a list of topic filters")
_E_NOT_ENCODABLE = const(0)
_E_NOT_UTF8 = const(1)
_E_NOT_STR = const(2)
_E_LONGER = const(3)
_E_NUL = const(4)
_E_NOT_BYTES = const(5)
_E_EMPTY = const(6)
_E_WILDCARD = const(7)
_E_FILTER = const(8)
_E_QOS = const(9)
_E_PID = const(10)
_E_TOO_LARGE = const(11)
_E_KEEPALIVE = const(12)
_E_WILL = const(13)
_E_PASSWORD = const(14)
_E_DUP = const(15)
_E_SUBSCRIBE = const(16)
_E_TOPICS = const(17)
_E_UNSUBSCRIBE = const(18)


def _utf8(s, what):
    if isinstance(s, str):
        try:
            b = s.encode("utf-8")
        except UnicodeError:       # CPython lone surrogates
            raise EncodeError(pick(_MSG, _E_NOT_ENCODABLE) % what)
    elif isinstance(s, (bytes, bytearray)):
        b = bytes(s)
        if not valid_utf8(b, 0, len(b)):
            raise EncodeError(pick(_MSG, _E_NOT_UTF8) % what)
    else:
        raise UsageError(pick(_MSG, _E_NOT_STR) % what)
    if len(b) > 65535:
        raise EncodeError(pick(_MSG, _E_LONGER) % what)
    if b"\x00" in b:
        raise EncodeError(pick(_MSG, _E_NUL) % what)
    return b


def _binary(x, what):
    if isinstance(x, str):
        return x.encode("utf-8")
    if isinstance(x, (bytes, bytearray, memoryview)):
        return x
    raise UsageError(pick(_MSG, _E_NOT_BYTES) % what)


def topic_name(topic):
    """Validated UTF-8 bytes of a PUBLISH topic name (no wildcards, not empty)."""
    b = _utf8(topic, "topic")
    if not b:
        raise EncodeError(pick(_MSG, _E_EMPTY))
    if b"+" in b or b"#" in b:
        raise EncodeError(pick(_MSG, _E_WILDCARD) % (topic,))
    return b


def _topic_filter(f):
    b = _utf8(f, "topic filter")
    if not filter_ok(str(b, "utf-8")):
        raise EncodeError(pick(_MSG, _E_FILTER) % (f,))
    return b


def _qos(q, top=2):
    if not isinstance(q, int) or q < 0 or q > top:
        raise UsageError(pick(_MSG, _E_QOS) % top)
    return q


def _pid(pid):
    if not isinstance(pid, int) or pid < 1 or pid > 65535:
        raise UsageError(pick(_MSG, _E_PID))
    return pid


def _header(first, rem, tail=0):
    """Allocate the packet but its last ``tail`` bytes and write the fixed header;
    returns (buf, offset)."""
    if rem > MAX_REMAINING:
        raise EncodeError(pick(_MSG, _E_TOO_LARGE))
    n = 1
    x = rem
    while x > 127:
        n += 1
        x >>= 7
    buf = bytearray(1 + n + rem - tail)
    buf[0] = first
    i = 1
    while True:
        b = rem & 0x7F
        rem >>= 7
        if rem:
            buf[i] = b | 0x80
            i += 1
        else:
            buf[i] = b
            return buf, i + 1


def _put_bytes(buf, i, b):
    n = len(b)
    buf[i] = n >> 8
    buf[i + 1] = n & 0xFF
    buf[i + 2:i + 2 + n] = b
    return i + 2 + n


def connect(client_id, keepalive=0, clean_session=True, will=None, user=None, password=None):
    """CONNECT.  will: (topic, payload, retain, qos) or None; password needs user."""
    cid = _utf8(client_id, "client_id")
    if not isinstance(keepalive, int) or keepalive < 0 or keepalive > 65535:
        raise UsageError(pick(_MSG, _E_KEEPALIVE))
    flags = 0x02 if clean_session else 0
    rem = 10 + 2 + len(cid)
    if will is not None:
        if not isinstance(will, tuple) or len(will) != 4:
            raise UsageError(pick(_MSG, _E_WILL))
        wt = topic_name(will[0])
        wp = _binary(will[1], "will payload")
        if len(wp) > 65535:
            raise EncodeError(pick(_MSG, _E_LONGER) % "will payload")
        flags |= 0x04 | (_qos(will[3]) << 3) | (0x20 if will[2] else 0)
        rem += 4 + len(wt) + len(wp)
    if user is not None:
        ub = _utf8(user, "user")
        flags |= 0x80
        rem += 2 + len(ub)
    if password is not None:
        if user is None:
            raise UsageError(pick(_MSG, _E_PASSWORD))
        pb = _binary(password, "password")
        if len(pb) > 65535:
            raise EncodeError(pick(_MSG, _E_LONGER) % "password")
        flags |= 0x40
        rem += 2 + len(pb)
    buf, i = _header(0x10, rem)
    buf[i:i + 7] = _PROTO
    buf[i + 7] = flags
    buf[i + 8] = keepalive >> 8
    buf[i + 9] = keepalive & 0xFF
    i = _put_bytes(buf, i + 10, cid)
    if will is not None:
        i = _put_bytes(buf, i, wt)
        i = _put_bytes(buf, i, wp)
    if user is not None:
        i = _put_bytes(buf, i, ub)
    if password is not None:
        i = _put_bytes(buf, i, pb)
    return buf


def publish(topic, payload, qos=0, retain=False, dup=False, pid=0):
    """PUBLISH as one bytearray (byte 0 can later get the DUP bit: ``buf[0] |= 8``)."""
    pl = _binary(payload, "payload")
    buf = publish_head(topic, len(pl), qos, retain, dup, pid, True)
    buf[len(buf) - len(pl):] = pl
    return buf


def publish_head(topic, size, qos=0, retain=False, dup=False, pid=0, whole=False):
    """The PUBLISH packet up to its ``size``-byte payload (fixed header, topic,
    packet id), for a payload written right after it without being copied (a 1 KB
    state then needs no 1 KB packet).  ``whole``: room for the payload included."""
    tb = topic_name(topic)
    _qos(qos)
    if qos:
        _pid(pid)
    elif dup:
        raise UsageError(pick(_MSG, _E_DUP))
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    rem = 2 + len(tb) + (2 if qos else 0) + size
    buf, i = _header(first, rem, 0 if whole else size)
    i = _put_bytes(buf, i, tb)
    if qos:
        buf[i] = pid >> 8
        buf[i + 1] = pid & 0xFF
    return buf


def _ack(first, pid):
    _pid(pid)
    return bytes((first, 2, pid >> 8, pid & 0xFF))


def puback(pid):
    return _ack(0x40, pid)


def pubrec(pid):
    return _ack(0x50, pid)


def pubrel(pid):
    return _ack(0x62, pid)


def pubcomp(pid):
    return _ack(0x70, pid)


def subscribe(pid, topics):
    """SUBSCRIBE; topics: non-empty list of (filter, qos)."""
    _pid(pid)
    if not topics:
        raise UsageError(pick(_MSG, _E_SUBSCRIBE))
    enc = []
    rem = 2
    for t in topics:
        if not isinstance(t, tuple) or len(t) != 2:
            raise UsageError(pick(_MSG, _E_TOPICS))
        b = _topic_filter(t[0])
        enc.append((b, _qos(t[1])))
        rem += 3 + len(b)
    buf, i = _header(0x82, rem)
    buf[i] = pid >> 8
    buf[i + 1] = pid & 0xFF
    i += 2
    for b, q in enc:
        i = _put_bytes(buf, i, b)
        buf[i] = q
        i += 1
    return buf


def unsubscribe(pid, filters):
    """UNSUBSCRIBE; filters: non-empty list of str."""
    _pid(pid)
    if not filters or isinstance(filters, str):
        raise UsageError(pick(_MSG, _E_UNSUBSCRIBE))
    enc = [_topic_filter(f) for f in filters]
    rem = 2
    for b in enc:
        rem += 2 + len(b)
    buf, i = _header(0xA2, rem)
    buf[i] = pid >> 8
    buf[i + 1] = pid & 0xFF
    i += 2
    for b in enc:
        i = _put_bytes(buf, i, b)
    return buf
