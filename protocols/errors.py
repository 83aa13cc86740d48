"""Errors raised by the ``protocols`` codecs.

Rule: decoders never raise on wire data (garbage, bad checksums, truncated
frames are counted, not raised).  These exceptions only signal API misuse by
the caller (bad argument type or range, a value that cannot be encoded).
Every class derives from ``ValueError`` so callers can catch broadly.
"""


class ProtocolError(ValueError):
    """Base class of every error raised by ``protocols``."""


class UsageError(ProtocolError):
    """A codec API was called with an invalid argument (mode, offset, type)."""


class EncodeError(ProtocolError):
    """A value cannot be encoded on the wire (bad label, bad character, too long)."""


# --- MQTT (protocols.mqtt) -------------------------------------------------
# The one place where a decoder raises on wire data, on purpose: MQTT runs over
# TCP, a malformed packet means the byte stream can no longer be framed, and
# MQTT 3.1.1 (4.8.0-1) requires the receiver to close the network connection.
# An exception makes that impossible to ignore.  The decoder counts the error
# first (stats['malformed']) and resets itself, so a broker or a test may feed it
# again after ``e.used`` bytes.


class MQTTError(ProtocolError):
    """Base class of the MQTT codec errors."""


class MalformedPacket(MQTTError):
    """Wire data that is not a valid MQTT 3.1.1 packet.

    ``used``: bytes consumed from ``buf[start:]`` by the failing ``decode()`` call
    (the bad packet included, when its length was known); ``reason``: short text.
    """

    def __init__(self, reason, used=0):
        super().__init__(reason)
        self.reason = reason
        self.used = used


# --- Modbus RTU (protocols.modbus) ------------------------------------------
# The Modbus response decoder never raises on wire data (a bad CRC, garbage, an
# exception response are counted or returned).  This is raised by the request
# encoders only: an address, function, register, count or value out of range.


class ModbusError(EncodeError):
    """A Modbus request that cannot be put on the wire (a field out of range)."""
