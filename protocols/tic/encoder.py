"""TIC encoder (meter side): used by the simulator, the tests and the benchmarks.

Structural rules only (printable ASCII, no separator inside a label, horodate
only in standard mode): the encoder deliberately does not enforce the label
whitelist, so tests can produce unknown labels and odd widths on purpose.
"""

from protocols.errors import EncodeError, UsageError
from protocols.tic.labels import HISTORIC, STANDARD

STX = b'\x02'
ETX = b'\x03'


def checksum(data):
    """``(sum(data) & 0x3F) + 0x20`` of a bytes-like object."""
    return (sum(data) & 0x3F) + 0x20


def _ascii(name, s, allow_space):
    if not isinstance(s, str):
        raise EncodeError('%s must be a str' % name)
    for c in s:
        if c < ' ' or c > '~' or (c == ' ' and not allow_space):
            raise EncodeError('%s has a character not allowed on the wire: %r' % (name, s))
    return s.encode()


def encode_group(label, value, mode, horodate=None):
    """One group, ``LF ... CR``, with the checksum rule of ``mode``.

    historic: ``LF label SP data SP ck CR``, ck over ``label SP data``;
    standard: ``LF label HT [horodate HT] data HT ck CR``, ck over everything
    from the label up to and including the last HT.
    """
    if mode == HISTORIC:
        if horodate is not None:
            raise EncodeError('historic groups carry no horodate')
        body = _ascii('label', label, False) + b' ' + _ascii('value', value, True)
        if not label:
            raise EncodeError('empty label')
        return b'\n' + body + b' ' + bytes((checksum(body),)) + b'\r'
    if mode == STANDARD:
        if not label:
            raise EncodeError('empty label')
        body = _ascii('label', label, False) + b'\t'
        if horodate is not None:
            body += _ascii('horodate', horodate, True) + b'\t'
        body += _ascii('value', value, True) + b'\t'
        return b'\n' + body + bytes((checksum(body),)) + b'\r'
    raise UsageError('mode must be HISTORIC or STANDARD')


def encode_frame(groups, mode):
    """A whole frame ``STX group... ETX`` from ``[(label, value, horodate|None), ...]``
    (2-tuples ``(label, value)`` are accepted too)."""
    parts = [STX]
    for g in groups:
        if not isinstance(g, (tuple, list)):
            raise UsageError('groups are (label, value[, horodate]) tuples')
        if len(g) == 2:
            parts.append(encode_group(g[0], g[1], mode))
        elif len(g) == 3:
            parts.append(encode_group(g[0], g[1], mode, g[2]))
        else:
            raise UsageError('groups are (label, value[, horodate]) tuples')
    parts.append(ETX)
    return b''.join(parts)
