"""Host-side helpers of ``protocols.tic.labels`` (tests, simulator, CLI,
synthetic data): reached as ``labels.check`` etc. through ``labels``' module
``__getattr__``, so a gateway that only decodes does not load them."""

from protocols.tic.labels import AUTO, HISTORIC, NAMES, NH, CODES, SPECS, KINDS, UNITS, F_NUM
from protocols.tic.labels import index, data_ok


def names(mode):
    """The labels of ``mode`` (HISTORIC or STANDARD), a tuple."""
    return NAMES[:NH] if mode == HISTORIC else NAMES[NH:]


def spec(label, mode=AUTO):
    """The spec ``(fmt, minw, maxw, horodated, kind, unit)`` of ``label`` in
    ``mode`` (AUTO: either table), or None."""
    i = index(label, mode)
    if i < 0:
        return None
    o = CODES[i] * 6
    s = SPECS
    return (s[o], s[o + 1], s[o + 2], s[o + 3], KINDS[s[o + 4]], UNITS[s[o + 5]])


def horodate_ok(h):
    """``[ EHeh]\\d{12}`` checked by hand (no ``re`` on the device)."""
    if len(h) != 13:
        return False
    b = h.encode()
    x = b[0]
    if x != 32 and x != 69 and x != 72 and x != 101 and x != 104:
        return False
    for i in range(1, len(b)):
        x = b[i]
        if x < 48 or x > 57:
            return False
    return True


def check(label, value, horodate=None, mode=AUTO):
    """Full validation of one decoded group (label known in ``mode``, data and
    horodate formats).  Used by tests and by producers of synthetic data."""
    i = index(label, mode)
    if i < 0:
        return False
    o = CODES[i] * 6
    if SPECS[o + 3]:
        if horodate is None or not horodate_ok(horodate):
            return False
    elif horodate is not None:
        return False
    return data_ok(o, value)


def convert(label, value):
    """JSON-ready value: int for numeric fields (indexes Wh, VA, A, V, kVA...),
    otherwise the string stripped of its padding."""
    i = index(label)
    if i >= 0 and SPECS[CODES[i] * 6] == F_NUM and value.isdigit():
        return int(value)
    return value.strip()


def _color(c):
    if c == 'B' or c == 'BLEU':
        return 'BLEU'
    if c == 'W' or c == 'BLAN':
        return 'BLANC'
    if c == 'R' or c == 'ROUG':
        return 'ROUGE'
    return None


def group(v):
    """A ``frame.groups`` value -> ``(value, horodate or None)`` (the decoder keeps a
    tuple only for the horodated labels, see TicDecoder)."""
    return v if type(v) is tuple else (v, None)


def pairs(groups):
    """``frame.groups`` -> ``{label: (value, horodate or None)}`` (a new dict)."""
    return {k: group(v) for k, v in groups.items()}


def tempo(groups):
    """Tempo colours ``(today, tomorrow)`` from a frame's groups dict (or its
    ``pairs()``), each
    'BLEU', 'BLANC', 'ROUGE' or None.

    Standard mode: STGE bits 24-25 / 26-27.  Historic mode: today from PTEC
    (``HCJB``/``HPJW``... last letter), tomorrow from DEMAIN (``----`` = None).
    """
    g = groups.get('STGE')      # frame.groups values, or (value, horodate) pairs
    if g is not None:
        from protocols.tic.stge import colors
        return colors(group(g)[0])
    today = tomorrow = None
    g = groups.get('PTEC')
    g = None if g is None else group(g)[0]
    if g is not None and len(g) == 4 and g.startswith('J', 2):
        today = _color(g[3:])
    g = groups.get('DEMAIN')
    if g is not None:
        tomorrow = _color(group(g)[0])
    return today, tomorrow
