"""TIC strategies: valid groups and frames of both modes, Linky meter streams whose
indexes advance, and the faults of a real line (see ``error_fragments.py`` in the
captures: almost every real corruption is a single 1->0 bit drop).

Valid:   ``groups(mode)``, ``frames(mode)`` -> (mode, [(label, value, horodate)], bytes),
         ``streams()`` (frames of one mode, sometimes both, optionally damaged),
         ``meter_streams()`` -> MeterStream (LinkySim frames over advancing indexes).
Faults:  ``mutated(data, kinds=...)`` -> Mutated(data, faults); ``damaged(data)`` the bytes
         only.  Kinds (``FAULTS``): bit_drop, lf_garbled, lf_lost, cr_garbled, ht_garbled,
         truncate, eot, stx, cut, garbage, byte.  ``LINE_FAULTS`` are the ones a real TIC
         line produces (no arbitrary byte rewrite).
"""

from hypothesis import strategies as st

from protocols.tic import HISTORIC, STANDARD, encode_frame
from protocols.tic import labels as L

_DIGITS = "0123456789"
_ALNUM = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HEX = _DIGITS + "ABCDEF"
_CODE = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ."
_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))

STX, ETX, EOT, LF, CR, HT = 0x02, 0x03, 0x04, 0x0A, 0x0D, 0x09

FAULTS = ("bit_drop", "lf_garbled", "lf_lost", "cr_garbled", "ht_garbled", "truncate",
          "eot", "stx", "cut", "garbage", "byte")
LINE_FAULTS = ("bit_drop", "lf_garbled", "lf_lost", "cr_garbled", "ht_garbled", "truncate",
               "eot", "garbage")
LABELS_BY_MODE = {}


def value_for(label, spec):
    """Strategy for a valid data field of ``label`` (``spec`` = labels.spec(label, mode))."""
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


def labels_of(mode):
    if mode not in LABELS_BY_MODE:
        LABELS_BY_MODE[mode] = sorted(L.names(mode))
    return LABELS_BY_MODE[mode]


@st.composite
def groups(draw, mode):
    """One valid (label, value, horodate|None) of ``mode``."""
    label = draw(st.sampled_from(labels_of(mode)))
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


# --- faults -----------------------------------------------------------------------


class Mutated(bytes):
    """Damaged bytes; ``faults`` lists (kind, offset, detail) as applied, for reports."""

    faults = ()


def _positions(b, pred):
    return [i for i in range(len(b)) if pred(b[i])]


@st.composite
def fault(draw, b, kinds=FAULTS):
    """Apply one fault of a kind from ``kinds`` to the bytearray ``b`` in place;
    returns (kind, offset, detail) or None when that kind has no place to apply."""
    kind = draw(st.sampled_from(kinds))
    n = len(b)
    if kind == "bit_drop":              # the dominant real error: one bit 1 -> 0
        pos = _positions(b, lambda c: c & 0x7F)
        if not pos:
            return None
        i = draw(st.sampled_from(pos))
        bit = draw(st.sampled_from([k for k in range(7) if b[i] >> k & 1]))
        b[i] &= ~(1 << bit) & 0xFF
        return (kind, i, bit)
    if kind in ("lf_garbled", "lf_lost", "cr_garbled", "ht_garbled"):
        c = {"lf_garbled": LF, "lf_lost": LF, "cr_garbled": CR, "ht_garbled": HT}[kind]
        pos = _positions(b, lambda x: x == c)
        if not pos:
            return None
        i = draw(st.sampled_from(pos))
        if kind == "lf_lost":           # two groups merge on one line
            del b[i]
            return (kind, i, None)
        new = {LF: (0x0B, 0x0E, 0x0F), CR: (0x0C, 0x09, 0x05), HT: (0x08, 0x01)}[c]
        b[i] = draw(st.sampled_from(new))
        return (kind, i, b[i])
    if not n and kind in ("truncate", "cut", "byte"):
        return None
    i = draw(st.integers(0, max(n - 1, 0)))
    if kind == "truncate":              # the line goes quiet: the tail is lost
        del b[i:]
        return (kind, i, None)
    if kind == "eot":                   # the meter aborts the frame (and often starts the next)
        tail = draw(st.sampled_from((b"\x04", b"\x04\x02", b"\x04\x02\n")))
        b[i:i] = tail
        return (kind, i, tail)
    if kind == "stx":
        c = draw(st.sampled_from((STX, ETX)))
        b.insert(i, c)
        return (kind, i, c)
    if kind == "cut":
        k = draw(st.integers(1, 24))
        del b[i:i + k]
        return (kind, i, k)
    if kind == "garbage":               # noise burst; between frames when one is at hand
        pos = _positions(b, lambda x: x == ETX)
        if pos and draw(st.booleans()):
            i = draw(st.sampled_from(pos)) + 1
        g = draw(st.binary(min_size=1, max_size=40))
        b[i:i] = g
        return (kind, i, g)
    b[i] = draw(st.integers(0, 255))    # "byte": anything at all
    return (kind, i, b[i])


@st.composite
def mutated(draw, data, kinds=FAULTS, min_faults=0, max_faults=4):
    """``data`` (bytes or a strategy) with min..max faults -> Mutated."""
    if not isinstance(data, (bytes, bytearray)):
        data = draw(data)
    b = bytearray(data)
    done = []
    for _ in range(draw(st.integers(min_faults, max_faults))):
        f = draw(fault(b, kinds))
        if f is not None:
            done.append(f)
    out = Mutated(bytes(b))
    out.faults = tuple(done)
    return out


def damaged(data, kinds=FAULTS, max_faults=4):
    """``data`` with up to ``max_faults`` faults (bytes)."""
    return mutated(data, kinds, 0, max_faults).map(bytes)


@st.composite
def streams(draw, max_frames=4, max_groups=8):
    """A stream of valid frames of one mode (sometimes both), then sometimes damaged."""
    parts = []
    mode = draw(st.sampled_from((HISTORIC, STANDARD)))
    for _ in range(draw(st.integers(1, max_frames))):
        m = mode if draw(st.integers(0, 9)) else None
        parts.append(draw(frames(m, max_groups=max_groups))[2])
    data = b"".join(parts)
    if draw(st.booleans()):
        data = draw(damaged(data))
    return data


# --- a real meter: LinkySim frames over advancing indexes --------------------------


class MeterStream:
    """``frames``: [(t seconds, clean frame bytes, [(label, value, horodate)])] of one
    simulated Linky; ``mode`` HISTORIC/STANDARD; ``desc`` for reports."""

    def __init__(self, mode, frames, desc):
        self.mode = mode
        self.frames = frames
        self.desc = desc

    def __repr__(self):
        return "MeterStream(%s, %d frames)" % (self.desc, len(self.frames))


@st.composite
def meter_streams(draw, min_frames=3, max_frames=12):
    """Consecutive frames of one simulated meter (passerelle.sim.linky), indexes
    advancing as the simulated load integrates; ``accel`` > 1 makes them move faster
    (the meter clock runs ahead of the line clock, as a fast-forwarded day)."""
    from passerelle.sim.linky import LinkySim
    mode = draw(st.sampled_from(("historic", "standard")))
    phases = draw(st.sampled_from((1, 3)))
    tariff = draw(st.sampled_from(("base", "hc", "tempo")))
    seed = draw(st.integers(0, 2 ** 16))
    accel = draw(st.sampled_from((1.0, 1.0, 20.0)))
    start = draw(st.integers(0, 365)) * 86400 + draw(st.integers(0, 86399))
    n = draw(st.integers(min_frames, max_frames))
    sim = LinkySim(mode=mode, phases=phases, tariff=tariff, seed=seed, accel=accel,
                   start=1735689600 + start)
    out = []
    for t, raw in sim.stream(n):
        out.append((t, raw, sim.groups(t)))
    desc = "%s %dP %s seed=%d accel=%g start=+%ds" % (mode, phases, tariff, seed, accel, start)
    return MeterStream(HISTORIC if mode == "historic" else STANDARD, out, desc)
