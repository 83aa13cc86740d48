# Known-answer and malformed vectors for protocols.mqtt, runnable by CPython AND MicroPython:
#   micropython tests/mqtt/codec_cases.py   -> one line per case (compared with CPython's)
# Each case: (name, hex bytes).  Output: "name: <packet repr>" or "name: ERR <reason> used=N".

import sys

VALID = (
    ("connect_min", "101000044d5154540402003c000474657374"),
    ("connect_full", "102e00044d51545404ee001e0003636964000c672f3132332f737461747573"
                     "00076f66666c696e6500017500037077 21".replace(" ", "")),
    ("publish_q0", "30070003612f626869"),
    ("publish_q1_retain", "33090003612f6200016869"),
    ("publish_q1_dup", "3a090003612f6200076869"),
    ("publish_utf8", "30050003c3a92f"),
    ("publish_empty_payload", "30050003612f62"),
    ("puback", "40020007"),
    ("pubrec", "50020007"),
    ("pubrel", "62020007"),
    ("pubcomp", "70020007"),
    ("subscribe", "821000010003612f23010005612f2b2f6300"),
    ("unsubscribe", "a20700010003612f23"),
    ("pingreq", "c000"),
    ("pingresp", "d000"),
    ("disconnect", "e000"),
    ("connack", "20020100"),
    ("connack_refused", "20020005"),
    ("suback", "9005000101" + "8002"),
    ("unsuback", "b0020009"),
)

MALFORMED = (
    ("type_0", "0000"),
    ("type_15", "f000"),
    ("publish_qos3", "3607000361" + "2f626869"),
    ("publish_dup_qos0", "3807000361" + "2f626869"),
    ("pubrel_flags", "60020001"),
    ("subscribe_flags", "800800010003612f6201"),
    ("connack_len3", "2003010000"),
    ("puback_len3", "4003000100"),
    ("pingresp_len1", "d00100"),
    ("varint_5_bytes", "30ffffffff7f"),
    ("topic_beyond", "3005000961" + "2f62"),
    ("topic_bad_utf8", "30040002" + "61ff"),
    ("topic_overlong_nul", "30040002c080"),
    ("topic_surrogate", "30050003eda080"),
    ("topic_above_10ffff", "30060004f4908080"),
    ("topic_nul", "30050003610062"),
    ("topic_wildcard_plus", "3005000361" + "2f2b"),
    ("topic_wildcard_hash", "3005000361" + "2f23"),
    ("topic_empty", "3003000078"),
    ("publish_pid0", "32070001610000" + "6869"),
    ("puback_pid0", "40020000"),
    ("suback_code3", "9003000103"),
    ("connack_reserved", "20020200"),
    ("connect_bad_name", "101000044d5154580402003c000474657374"),
    ("connect_reserved_flag", "101000044d5154540403003c000474657374"),
    ("connect_pw_no_user", "101000044d5154540442003c000474657374"),
    ("connect_will_qos3", "101000044d515454041e003c000474657374"),
    ("connect_will_flags_no_will", "101000044d5154540422003c000474657374"),
    ("connect_trailing", "101100044d5154540402003c00047465737421"),
    ("subscribe_bad_filter", "820a0001000561" + "2f232f6200"),
    ("subscribe_qos3", "820800010003612f6203"),
    ("unsubscribe_empty_filter", "a20400010000"),
    ("subscribe_no_qos", "820700010003612f62"),
)


def unhex(h):
    return bytes(int(h[i:i + 2], 16) for i in range(0, len(h), 2))


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return "%d" % v
    if isinstance(v, str):
        return "u" + "".join("%02x" % c for c in v.encode("utf-8"))
    if isinstance(v, (bytes, bytearray)):
        return "b" + "".join("%02x" % c for c in v)
    return "(" + ",".join(_fmt(x) for x in v) + ")"


def describe(p):
    """Every field of a Packet, strings as hex: identical text on both interpreters."""
    from protocols.mqtt.packets import Packet
    return " ".join("%s=%s" % (k, _fmt(getattr(p, k))) for k in Packet.__slots__)


# Client-only packet types: the client-side MQTTDecoder refuses them.
CLIENT_REJECTS = ("connect_min", "connect_full", "subscribe", "unsubscribe", "pingreq",
                  "disconnect")


def run_cases(out):
    from protocols.errors import MalformedPacket
    from protocols.mqtt import MQTTDecoder
    from protocols.mqtt.server import MQTTServerDecoder
    cases = [(n, h, MQTTServerDecoder) for n, h in VALID + MALFORMED]
    cases += [("client_" + n, h, MQTTDecoder) for n, h in VALID if n in CLIENT_REJECTS]
    for name, h, cls in cases:
        d = cls(256)
        data = unhex(h)
        try:
            used, p = d.decode(data)
            line = "%s: used=%d %s" % (name, used, describe(p))
        except MalformedPacket as e:
            line = "%s: ERR %s used=%d" % (name, e.reason, e.used)
        out.append(line)
    return out


def alloc_per_packet():
    """MicroPython only: bytes allocated per decoded 20-byte-payload PUBLISH, fed
    whole and fed one byte per call."""
    import gc
    from protocols.mqtt import MQTTDecoder, encode
    d = MQTTDecoder(256)
    blob = bytes(encode.publish("t/xyz", b"y" * 20, 1, pid=3))
    res = []
    for chunk in (len(blob), 1):
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        for _ in range(20):
            i = 0
            while i < len(blob):
                u, p = d.decode(blob, i, min(len(blob), i + chunk))
                i += u
        res.append((gc.mem_alloc() - a) // 20)
        gc.enable()
    return res


if __name__ == "__main__":
    for line in run_cases([]):
        print(line)
    if sys.implementation.name == "micropython":
        print("ALLOC %d %d" % tuple(alloc_per_packet()))
