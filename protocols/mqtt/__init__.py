# protocols/mqtt  Pure MQTT 3.1.1 codec (no I/O): encoders and a streaming decoder.
# SPDX-License-Identifier: MIT
#
#   from protocols.mqtt import MQTTDecoder, encode, PUBLISH, ...
#   pkt = encode.publish("a/b", b"x", qos=1, pid=7)      # one bytearray per packet
#   d = MQTTDecoder(max_packet=4096)
#   used, p = d.decode(buf, start, end)                    # see decode.py for the contract
#
# Errors: protocols.errors.MalformedPacket (decode, wire data), UsageError and
# EncodeError (encoders, arguments).  QoS 2 packets are decoded but not driven.
# The broker side (decoding CONNECT/SUBSCRIBE/..., encoding CONNACK/SUBACK/...) is
# protocols.mqtt.server, imported explicitly by tests and fake brokers only.

from . import encode  # noqa: F401
from .decode import MQTTDecoder  # noqa: F401
from .packets import (Packet, NAMES, CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC,  # noqa: F401
                      PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ,
                      PINGRESP, DISCONNECT, SUBACK_FAILURE, MAX_REMAINING)
