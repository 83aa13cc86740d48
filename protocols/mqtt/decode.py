# protocols/mqtt/decode.py  Streaming MQTT 3.1.1 decoder: bytes in any chunking -> packets.
# SPDX-License-Identifier: MIT
#
# Contract (pymodbus framer shape):
#     used, pkt = d.decode(buf, start=0, end=None)
# consumes bytes from buf[start:end] until ONE packet is complete (returns it) or the
# input is exhausted (returns None); call again with start += used while start < end.
# ``pkt`` is the decoder's reused Packet: valid until the next decode() call.
#
# Memory: one bytearray of ``max_packet`` bytes, allocated in __init__, holds a packet
# body (the remaining-length part).  A packet whose remaining length exceeds it is
# skipped, not buffered: its bytes are counted through and dropped (stats['oversize']).
# A skipped PUBLISH whose topic and packet id fit in the buffer is still returned,
# with truncated=True and payload=None, so that a client can PUBACK it (otherwise
# the broker would redeliver it forever).  Per packet the only allocations are the
# decoded fields (topic str, payload bytes, ...); nothing is allocated per byte.
#
# Client side: MQTTDecoder rejects the packet types only a client sends (CONNECT,
# SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT); server.MQTTServerDecoder (brokers,
# tests) accepts and parses every type.
#
# Failure model: a packet that breaks MQTT 3.1.1 (unexpected type, wrong fixed-header
# flags, remaining length over 4 bytes or impossible for the type, topic or string
# length beyond the packet, ill-formed UTF-8, U+0000, wildcard in a topic name,
# packet id 0, QoS 3, reserved CONNECT/CONNACK bits, bad SUBACK code, bytes left over)
# raises MalformedPacket (protocols.errors) after counting it in stats['malformed'];
# nothing else is raised for any wire data (UsageError: bad start/end arguments).
# MQTT cannot re-synchronise inside a TCP stream, so the caller must close the
# connection (MQTT-4.8.0-1).  The partial packet is dropped (counters kept); e.used
# bytes were consumed (the whole bad packet when its length was known), so a test or
# broker may keep feeding the decoder: it then parses the next byte as a header.

from ..errors import MalformedPacket, UsageError
from ..compat import const, pick
from .packets import Packet, CONNECT, CONNACK, PUBLISH, PUBREL, SUBSCRIBE, SUBACK, UNSUBSCRIBE
from .text import valid_utf8

# MalformedPacket reasons (and the two UsageErrors): one table, not a heap object per
# message (compat.pick)
_WHY = ("packet type %d not expected here|PUBLISH with QoS 3|DUP on a QoS 0 PUBLISH|"
        "bad fixed-header flags 0x%02x|remaining length longer than 4 bytes|"
        "remaining length %d impossible for type %d|reserved CONNACK flags|"
        "bad SUBACK code 0x%02x|packet id 0|string length beyond the packet|"
        "string beyond the packet|ill-formed UTF-8|U+0000 in a string|empty topic name|"
        "wildcard in a topic name|packet id beyond the packet|"
        "max_packet must be an int >= 16|need 0 <= start <= end <= len(buf)")
_W_TYPE = const(0)
_W_QOS3 = const(1)
_W_DUP0 = const(2)
_W_FLAGS = const(3)
_W_REMLEN = const(4)
_W_IMPOSSIBLE = const(5)
_W_CONNACK = const(6)
_W_SUBACK = const(7)
_W_PID0 = const(8)
_W_STRLEN = const(9)
_W_STR = const(10)
_W_UTF8 = const(11)
_W_NUL = const(12)
_W_EMPTY = const(13)
_W_WILDCARD = const(14)
_W_PID = const(15)
_W_MAX_PACKET = const(16)
_W_RANGE = const(17)

_S_TYPE = const(0)    # waiting for the first byte of a fixed header
_S_LEN = const(1)     # inside the remaining-length varint
_S_BODY = const(2)    # inside the body

# Minimum remaining length per type (index = type); -1: reserved type.
_MIN_LEN = (-1, 12, 2, 3, 2, 2, 2, 2, 6, 3, 5, 2, 0, 0, 0, -1)
# Packet types a client may receive (bit per type): not CONNECT, SUBSCRIBE,
# UNSUBSCRIBE, PINGREQ, DISCONNECT.  MQTTServerDecoder accepts all 14.
_TO_CLIENT = const(0b0010101011111100)
# Types whose remaining length is exact (equal to _MIN_LEN).
_FIXED = (False, False, True, False, True, True, True, True, False, False, False, True,
          True, True, True, False)


class MQTTDecoder:
    """Streaming decoder; see the module comment for the contract.

    max_packet: largest remaining length buffered (bytes).  Counters in ``stats``:
    packets (returned, truncated included), malformed, oversize (skipped, larger than
    max_packet), bytes (consumed).
    """

    _accept = _TO_CLIENT

    def __init__(self, max_packet=4096):
        if not isinstance(max_packet, int) or max_packet < 16:
            raise UsageError(pick(_WHY, _W_MAX_PACKET))
        self.max_packet = max_packet
        self._buf = bytearray(max_packet)
        self._mv = memoryview(self._buf)
        self.packet = Packet()
        self.stats = {"packets": 0, "malformed": 0, "oversize": 0, "bytes": 0}
        self.reset()

    def reset(self):
        """Forget any partial packet and zero the counters (new connection)."""
        for k in self.stats:
            self.stats[k] = 0
        self._restart()

    def _restart(self):
        self._state = _S_TYPE
        self._first = 0
        self._rem = 0
        self._shift = 0
        self._got = 0
        self._j = 0

    @property
    def buffered(self):
        """Bytes of the current partial packet held in memory (<= max_packet)."""
        return min(self._got, self.max_packet)

    def _fail(self, reason, used, args=None):
        """``reason``: a message, or an index in _WHY formatted with ``args``."""
        self.stats["malformed"] += 1
        self.stats["bytes"] += used
        self._restart()
        if isinstance(reason, int):
            reason = pick(_WHY, reason)
            if args is not None:
                reason = reason % args
        raise MalformedPacket(reason, used)

    def decode(self, buf, start=0, end=None):
        if end is None:
            end = len(buf)
        if start < 0 or start > end or end > len(buf):
            raise UsageError(pick(_WHY, _W_RANGE))
        i = start
        while i < end:
            st = self._state
            if st == _S_BODY:
                want = self._rem - self._got
                n = end - i
                if n > want:
                    n = want
                got = self._got
                room = self.max_packet - got
                if room > 0:
                    k = n if n < room else room
                    if k < 8:            # a few bytes: copy without allocating views
                        dst = self._buf
                        for j in range(k):
                            dst[got + j] = buf[i + j]
                    else:
                        self._mv[got:got + k] = memoryview(buf)[i:i + k]
                i += n
                self._got = got + n
                if self._got == self._rem:
                    return i - start, self._complete(i - start)
                continue
            c = buf[i]
            i += 1
            if st == _S_TYPE:
                t = c >> 4
                f = c & 15
                if not (self._accept >> t) & 1:
                    self._fail(_W_TYPE, i - start, t)
                if t == PUBLISH:
                    if f & 6 == 6:
                        self._fail(_W_QOS3, i - start)
                    if f & 8 and not f & 6:
                        self._fail(_W_DUP0, i - start)
                elif f != (2 if t in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0):
                    self._fail(_W_FLAGS, i - start, c)
                self._first = c
                self._rem = 0
                self._shift = 0
                self._state = _S_LEN
                continue
            # _S_LEN: one varint byte
            self._rem |= (c & 0x7F) << self._shift
            self._shift += 7
            if c & 0x80:
                if self._shift >= 28:
                    self._fail(_W_REMLEN, i - start)
                continue
            t = self._first >> 4
            rem = self._rem
            m = _MIN_LEN[t]
            if rem < m or (_FIXED[t] and rem != m):
                self._fail(_W_IMPOSSIBLE, i - start, (rem, t))
            self._got = 0
            if rem == 0:
                return i - start, self._complete(i - start)
            self._state = _S_BODY
        self.stats["bytes"] += i - start
        return i - start, None

    # --- body parsing ----------------------------------------------------------

    def _complete(self, used):
        first = self._first
        t = first >> 4
        n = self._rem
        self._state = _S_TYPE
        self._got = 0
        p = self.packet
        p.clear()
        p.type = t
        p.flags = first & 15
        if n > self.max_packet:
            self.stats["oversize"] += 1
            self.stats["bytes"] += used
            if t != PUBLISH or not self._publish(p, self.max_packet, True, used):
                return None
            self.stats["packets"] += 1
            return p
        mv = self._mv
        if t == PUBLISH:
            self._publish(p, n, False, used)
        elif t == CONNACK:
            if mv[0] & 0xFE:
                self._fail(_W_CONNACK, used)
            p.session_present = bool(mv[0])
            p.code = mv[1]
        elif t == SUBACK:
            p.pid = self._pid(0, used)
            j = 2
            while j < n:
                if mv[j] not in (0, 1, 2, 0x80):
                    self._fail(_W_SUBACK, used, mv[j])
                j += 1
            p.codes = bytes(mv[2:n])
        elif t == CONNECT or t == SUBSCRIBE or t == UNSUBSCRIBE:
            self._parse_client(p, t, n, used)       # MQTTServerDecoder only
        elif n == 2:     # PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK
            p.pid = self._pid(0, used)
        self.stats["packets"] += 1
        self.stats["bytes"] += used
        return p

    def _pid(self, j, used):
        pid = (self._mv[j] << 8) | self._mv[j + 1]
        if not pid:
            self._fail(_W_PID0, used)
        return pid

    def _string(self, j, n, used):
        """UTF-8 string with a 2-byte length at j; returns it, next offset in self._j."""
        if j + 2 > n:
            self._fail(_W_STRLEN, used)
        mv = self._mv
        k = j + 2 + ((mv[j] << 8) | mv[j + 1])
        if k > n:
            self._fail(_W_STR, used)
        try:
            s = str(mv[j + 2:k], "utf-8")
        except UnicodeError:
            s = None
        if s is None or (len(s) != k - j - 2 and not valid_utf8(mv, j + 2, k)):
            self._fail(_W_UTF8, used)
        if "\x00" in s:
            self._fail(_W_NUL, used)
        self._j = k
        return s

    def _publish(self, p, n, truncated, used):
        """Parse a PUBLISH body of n bytes held in the buffer.  For a truncated one
        (only the first n bytes are held) return False when the header did not fit."""
        mv = self._mv
        f = p.flags
        qos = (f >> 1) & 3
        end = 2 + ((mv[0] << 8) | mv[1])
        if truncated and end + (2 if qos else 0) > n:
            return False
        p.topic = self._string(0, n, used)
        j = self._j
        if not p.topic:
            self._fail(_W_EMPTY, used)
        if "+" in p.topic or "#" in p.topic:
            self._fail(_W_WILDCARD, used)
        if qos:
            if j + 2 > n:
                self._fail(_W_PID, used)
            p.pid = self._pid(j, used)
            j += 2
        p.qos = qos
        p.retain = bool(f & 1)
        p.dup = bool(f & 8)
        p.truncated = truncated
        p.payload = None if truncated else bytes(mv[j:n])
        return True
