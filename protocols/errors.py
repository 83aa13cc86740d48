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
