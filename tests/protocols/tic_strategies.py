"""Hypothesis strategies for TIC groups, frames and damaged streams."""

from hypothesis import strategies as st

from protocols.tic import HISTORIC, STANDARD, encode_frame
from protocols.tic import labels as L

_DIGITS = "0123456789"
_ALNUM = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX = _DIGITS + "ABCDEF"
_CODE = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ."
_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


def value_for(label, spec):
    fmt, lo, hi = spec[0], spec[1], spec[2]
    if fmt == L.F_EMPTY:
        return st.just("")
    if fmt == L.F_ENUM:
        return st.sampled_from(L.DEMAIN_VALUES)
    alphabet = {L.F_NUM: _DIGITS, L.F_ID: _ALNUM, L.F_HEX: _HEX,
                L.F_TEXT: _PRINTABLE, L.F_CODE: _CODE}[fmt]
    return st.text(alphabet=alphabet, min_size=lo, max_size=hi)


horodates = st.builds(lambda s, d: s + d, st.sampled_from(" EHeh"),
                      st.text(alphabet=_DIGITS, min_size=12, max_size=12))


@st.composite
def groups(draw, mode):
    """One valid (label, value, horodate|None) of ``mode``."""
    label = draw(st.sampled_from(sorted(L.names(mode))))
    spec = L.spec(label, mode)
    value = draw(value_for(label, spec))
    hd = draw(horodates) if spec[3] else None
    return (label, value, hd)


@st.composite
def frames(draw, mode=None, min_groups=1, max_groups=20):
    """(mode, [groups], encoded frame bytes)."""
    if mode is None:
        mode = draw(st.sampled_from((HISTORIC, STANDARD)))
    gs = draw(st.lists(groups(mode), min_size=min_groups, max_size=max_groups))
    return mode, gs, encode_frame(gs, mode)


@st.composite
def damaged(draw, data):
    """``data`` with a few realistic faults: bit drops, LF->0x0B/0x0E/0x0F,
    CR->0x0C, inserted EOT/STX, cut-outs, garbage bursts."""
    b = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        if not b:
            break
        i = draw(st.integers(0, len(b) - 1))
        kind = draw(st.integers(0, 5))
        if kind == 0:       # a 1 -> 0 bit drop
            b[i] &= ~(1 << draw(st.integers(0, 6))) & 0xFF
        elif kind == 1 and b[i] == 0x0A:
            b[i] = draw(st.sampled_from((0x0B, 0x0E, 0x0F)))
        elif kind == 2:
            b.insert(i, draw(st.sampled_from((0x04, 0x02, 0x03, 0x0C))))
        elif kind == 3:
            del b[i:i + draw(st.integers(1, 20))]
        elif kind == 4:
            b[i:i] = draw(st.binary(min_size=1, max_size=40))
        else:
            b[i] = draw(st.integers(0, 255))
    return bytes(b)


@st.composite
def streams(draw):
    """A stream of valid frames of one mode (sometimes both), then damaged."""
    parts = []
    mode = draw(st.sampled_from((HISTORIC, STANDARD)))
    for _ in range(draw(st.integers(1, 4))):
        m = mode if draw(st.integers(0, 9)) else None
        parts.append(draw(frames(m, max_groups=8))[2])
    data = b"".join(parts)
    if draw(st.booleans()):
        data = draw(damaged(data))
    return data
