# protocols/mqtt/packets.py  MQTT 3.1.1 packet types and the decoded-packet record.
# SPDX-License-Identifier: MIT

from ..compat import const

# Control packet types (high nibble of the first byte), MQTT 3.1.1 table 2.1.
CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
PUBREC = const(5)
PUBREL = const(6)
PUBCOMP = const(7)
SUBSCRIBE = const(8)
SUBACK = const(9)
UNSUBSCRIBE = const(10)
UNSUBACK = const(11)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

NAMES = ("?", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
         "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP",
         "DISCONNECT", "?")

# CONNACK return codes (3.2.2.3).
ACCEPTED = const(0)
REFUSED_PROTOCOL = const(1)
REFUSED_IDENTIFIER = const(2)
REFUSED_UNAVAILABLE = const(3)
REFUSED_CREDENTIALS = const(4)
REFUSED_NOT_AUTHORIZED = const(5)
SUBACK_FAILURE = const(0x80)

MAX_REMAINING = const(268435455)   # largest remaining length a 4-byte varint can carry


class Packet:
    """One decoded packet.  The decoder reuses a single instance: it is valid until
    the next ``decode()`` call; use ``copy()`` to keep it.

    Fields (None / 0 / False when the packet type does not carry them):
      type, flags        high and low nibble of the first byte
      pid                packet identifier
      PUBLISH            topic (str), payload (bytes, None if truncated), qos, retain, dup,
                         truncated (True: larger than the decoder's max_packet; payload dropped)
      CONNACK            session_present (bool), code (return code)
      SUBACK             codes (bytes: granted QoS or 0x80 per filter)
      SUBSCRIBE          topics: list of (filter, qos)
      UNSUBSCRIBE        topics: list of filter
      CONNECT            level, client_id, clean, keepalive, will (topic, payload, retain, qos)
                         or None, user (str or None), password (bytes or None)
    """

    __slots__ = ("type", "flags", "pid", "topic", "payload", "qos", "retain", "dup",
                 "truncated", "session_present", "code", "codes", "topics", "level",
                 "client_id", "clean", "keepalive", "will", "user", "password")

    def __init__(self):
        self.clear()

    def clear(self):
        self.type = self.flags = self.pid = self.qos = self.code = self.level = 0
        self.keepalive = 0
        self.topic = self.payload = self.codes = self.topics = None
        self.client_id = self.will = self.user = self.password = None
        self.retain = self.dup = self.truncated = self.session_present = self.clean = False

    def copy(self):
        p = Packet()
        for k in Packet.__slots__:
            setattr(p, k, getattr(self, k))
        return p

    def __eq__(self, other):
        if not isinstance(other, Packet):
            return False
        for k in Packet.__slots__:
            if getattr(self, k) != getattr(other, k):
                return False
        return True

    def __repr__(self):
        t = self.type
        s = "<%s" % NAMES[t & 15]
        if self.pid:
            s += " pid=%d" % self.pid
        if t == PUBLISH:
            s += " topic=%r qos=%d retain=%d dup=%d len=%s" % (
                self.topic, self.qos, self.retain, self.dup,
                "trunc" if self.payload is None else len(self.payload))
        elif t == CONNACK:
            s += " sp=%d code=%d" % (self.session_present, self.code)
        elif t == SUBACK:
            s += " codes=%r" % (self.codes,)
        elif t in (SUBSCRIBE, UNSUBSCRIBE):
            s += " topics=%r" % (self.topics,)
        elif t == CONNECT:
            s += " id=%r clean=%d ka=%d will=%r user=%r" % (
                self.client_id, self.clean, self.keepalive, self.will, self.user)
        return s + ">"
