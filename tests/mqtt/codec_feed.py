"""Feeding bytes to the protocols.mqtt decoders (client MQTTDecoder, broker
MQTTServerDecoder) as the tests do: shared by tests/mqtt/test_mqtt_codec_properties.py
and tests/fuzz/test_mqtt_fuzz.py (passerelle/mpeval.py has the portable, JSON-only
variant compared with MicroPython)."""

from protocols.errors import MalformedPacket


def feed(d, data, cuts=()):
    """Decode ``data`` cut at ``cuts`` -> [("pkt", Packet copy, end offset) | ("err",
    reason, end offset)], checking the contract at each call: progress, ``used`` within
    the slice, a reason on every MalformedPacket, memory bounded by max_packet."""
    events = []
    bounds = sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]
    start = 0
    for end in bounds:
        i = start
        while i < end:
            try:
                used, p = d.decode(data, i, end)
            except MalformedPacket as e:
                assert 0 < e.used <= end - i and e.reason
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
