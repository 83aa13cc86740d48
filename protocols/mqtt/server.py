# protocols/mqtt/server.py  The broker side of the codec: decode what clients send,
# encode what brokers send.  For tests, fake brokers and host tools; a gateway (a
# client) never imports it, which keeps ~3 KB of parser out of its heap.
# SPDX-License-Identifier: MIT

from ..compat import const
from ..errors import UsageError
from .decode import MQTTDecoder
from .encode import _ack, _header, _pid
from .packets import CONNECT, SUBSCRIBE
from .text import filter_ok

PINGRESP = b"\xd0\x00"

_ALL = const(0b0111111111111110)     # every packet type 1..14


class MQTTServerDecoder(MQTTDecoder):
    """MQTTDecoder that also accepts and parses CONNECT, SUBSCRIBE, UNSUBSCRIBE,
    PINGREQ and DISCONNECT (same contract, same errors)."""

    _accept = _ALL

    def _parse_client(self, p, t, n, used):
        if t == CONNECT:
            return self._connect(p, n, used)
        mv = self._mv
        p.pid = self._pid(0, used)
        topics = []
        j = 2
        while j < n:
            f = self._string(j, n, used)
            j = self._j
            if not filter_ok(f):
                self._fail("bad topic filter", used)
            if t == SUBSCRIBE:
                if j >= n or mv[j] > 2:
                    self._fail("bad requested QoS", used)
                topics.append((f, mv[j]))
                j += 1
            else:
                topics.append(f)
        p.topics = topics

    def _binary(self, j, n, used):
        if j + 2 > n:
            self._fail("data length beyond the packet", used)
        k = j + 2 + ((self._mv[j] << 8) | self._mv[j + 1])
        if k > n:
            self._fail("data beyond the packet", used)
        self._j = k
        return bytes(self._mv[j + 2:k])

    def _connect(self, p, n, used):
        mv = self._mv
        if bytes(mv[0:6]) != b"\x00\x04MQTT":
            self._fail("protocol name is not MQTT", used)
        p.level = mv[6]                 # any level decodes; a broker answers CONNACK 1
        fl = mv[7]
        if fl & 1:
            self._fail("reserved CONNECT flag", used)
        wq = (fl >> 3) & 3
        if wq == 3 or (not fl & 4 and fl & 0x38):
            self._fail("bad will flags", used)
        if fl & 0x40 and not fl & 0x80:
            self._fail("password without user name", used)
        p.clean = bool(fl & 2)
        p.keepalive = (mv[8] << 8) | mv[9]
        p.client_id = self._string(10, n, used)
        j = self._j
        if fl & 4:
            wt = self._string(j, n, used)
            if not wt or "+" in wt or "#" in wt:
                self._fail("bad will topic", used)
            wp = self._binary(self._j, n, used)
            j = self._j
            p.will = (wt, wp, bool(fl & 0x20), wq)
        if fl & 0x80:
            p.user = self._string(j, n, used)
            j = self._j
        if fl & 0x40:
            p.password = self._binary(j, n, used)
            j = self._j
        if j != n:
            self._fail("bytes left over in CONNECT", used)


def connack(session_present=False, code=0):
    if not isinstance(code, int) or code < 0 or code > 255:
        raise UsageError("connack code must be 0..255")
    return bytes((0x20, 2, 1 if session_present else 0, code))


def suback(pid, codes):
    """SUBACK; codes: granted QoS (0..2) or 0x80 per filter."""
    _pid(pid)
    if not codes:
        raise UsageError("suback needs at least one return code")
    for c in codes:
        if c not in (0, 1, 2, 0x80):
            raise UsageError("suback code must be 0, 1, 2 or 0x80")
    buf, i = _header(0x90, 2 + len(codes))
    buf[i] = pid >> 8
    buf[i + 1] = pid & 0xFF
    buf[i + 2:] = bytes(codes)
    return buf


def unsuback(pid):
    return _ack(0xB0, pid)
