"""TIC label tables (Enedis-NOI-CPT_02E historic, Enedis-NOI-CPT_54E standard).

Each known label maps to a shared spec tuple ``(fmt, minw, maxw, horodated, kind, unit)``:

- ``fmt``      how the data field is validated (``F_*`` below);
- ``minw/maxw`` accepted data length (exact width for indexes, a range where
  real meters or anonymised captures vary: ADCO/ADSC 10..12, NGTF 1..16);
- ``horodated`` 1 when the group carries ``SAAMMJJhhmmss`` (standard mode);
- ``kind``/``unit`` what the value means (for publishing).

The decoder rejects a group whose label is not in the table of its mode, or
whose data does not match its format: the checksum is only 6 bits, so these
checks are what stops garbage such as ``}PR`PzSOUSC 20 8`` (which passes the
checksum) from being published.
"""

from protocols.compat import const
from protocols.tic import stge

AUTO = const(0)
HISTORIC = const(1)
STANDARD = const(2)

# data formats
F_NUM = const(1)    # decimal digits only, width minw..maxw (indexes: exact)
F_ID = const(2)     # [0-9A-Za-z], width minw..maxw (meter ids, anonymised as XXXX)
F_HEX = const(3)    # [0-9A-F]
F_TEXT = const(4)   # printable ASCII 0x20..0x7E (may contain spaces)
F_CODE = const(5)   # [0-9A-Z.] (period codes such as 'TH..', 'HCJB')
F_ENUM = const(6)   # one of ENUMS[label]
F_EMPTY = const(7)  # must be empty (DATE: the information is in the horodate)

_E9 = (F_NUM, 9, 9, 0, 'energy', 'Wh')        # energy index
_EQ9 = (F_NUM, 9, 9, 0, 'energy', 'VArh')     # reactive energy index
_A3 = (F_NUM, 3, 3, 0, 'current', 'A')
_V3 = (F_NUM, 3, 3, 0, 'voltage', 'V')
_VH3 = (F_NUM, 3, 3, 1, 'voltage', 'V')       # UMOYx, horodated
_VA5 = (F_NUM, 5, 5, 0, 'power', 'VA')
_VAH5 = (F_NUM, 5, 5, 1, 'power', 'VA')       # SMAXxx, horodated
_WH5 = (F_NUM, 5, 5, 1, 'power', 'W')         # CCASN/CCAIN load-curve points
_KVA2 = (F_NUM, 2, 2, 0, 'power', 'kVA')
_ID = (F_ID, 10, 12, 0, 'id', None)
_PM = (F_NUM, 2, 2, 1, 'period', None)        # DPMx/FPMx (horodate, season may be SP)
_IDX2 = (F_NUM, 2, 2, 0, 'index', None)

HIST = {
    'ADCO': _ID,
    'OPTARIF': (F_TEXT, 4, 4, 0, 'tariff', None),
    'ISOUSC': (F_NUM, 2, 2, 0, 'current', 'A'),
    'BASE': _E9,
    'HCHC': _E9, 'HCHP': _E9,
    'EJPHN': _E9, 'EJPHPM': _E9,
    'BBRHCJB': _E9, 'BBRHPJB': _E9, 'BBRHCJW': _E9,
    'BBRHPJW': _E9, 'BBRHCJR': _E9, 'BBRHPJR': _E9,
    'PEJP': (F_NUM, 2, 2, 0, 'duration', 'min'),
    'PTEC': (F_CODE, 4, 4, 0, 'period', None),
    'DEMAIN': (F_ENUM, 4, 4, 0, 'color', None),
    'IINST': _A3, 'IINST1': _A3, 'IINST2': _A3, 'IINST3': _A3,
    'ADPS': _A3, 'ADIR1': _A3, 'ADIR2': _A3, 'ADIR3': _A3,
    'IMAX': _A3, 'IMAX1': _A3, 'IMAX2': _A3, 'IMAX3': _A3,
    'PMAX': (F_NUM, 5, 5, 0, 'power', 'W'),
    'PAPP': (F_NUM, 5, 5, 0, 'power', 'VA'),
    'HHPHC': (F_CODE, 1, 1, 0, 'tariff', None),
    'MOTDETAT': (F_ID, 6, 6, 0, 'status', None),
    'PPOT': (F_HEX, 2, 2, 0, 'status', None),
    'GAZ': (F_NUM, 7, 7, 0, 'energy', 'dal'),
    'AUTRE': (F_NUM, 7, 7, 0, 'energy', 'dal'),
}

STD = {
    'ADSC': _ID,
    'VTIC': (F_NUM, 2, 2, 0, 'version', None),
    'DATE': (F_EMPTY, 0, 0, 1, 'time', None),
    'NGTF': (F_TEXT, 1, 16, 0, 'text', None),
    'LTARF': (F_TEXT, 1, 16, 0, 'text', None),
    'EAST': _E9,
    'EASF01': _E9, 'EASF02': _E9, 'EASF03': _E9, 'EASF04': _E9, 'EASF05': _E9,
    'EASF06': _E9, 'EASF07': _E9, 'EASF08': _E9, 'EASF09': _E9, 'EASF10': _E9,
    'EASD01': _E9, 'EASD02': _E9, 'EASD03': _E9, 'EASD04': _E9,
    'EAIT': _E9,
    'ERQ1': _EQ9, 'ERQ2': _EQ9, 'ERQ3': _EQ9, 'ERQ4': _EQ9,
    'IRMS1': _A3, 'IRMS2': _A3, 'IRMS3': _A3,
    'URMS1': _V3, 'URMS2': _V3, 'URMS3': _V3,
    'PREF': _KVA2, 'PCOUP': _KVA2,
    'SINSTS': _VA5, 'SINSTS1': _VA5, 'SINSTS2': _VA5, 'SINSTS3': _VA5,
    'SMAXSN': _VAH5, 'SMAXSN1': _VAH5, 'SMAXSN2': _VAH5, 'SMAXSN3': _VAH5,
    'SMAXSN-1': _VAH5, 'SMAXSN1-1': _VAH5, 'SMAXSN2-1': _VAH5, 'SMAXSN3-1': _VAH5,
    'SINSTI': _VA5,
    'SMAXIN': _VAH5, 'SMAXIN-1': _VAH5,
    'CCASN': _WH5, 'CCASN-1': _WH5, 'CCAIN': _WH5, 'CCAIN-1': _WH5,
    'UMOY1': _VH3, 'UMOY2': _VH3, 'UMOY3': _VH3,
    'STGE': (F_HEX, 8, 8, 0, 'status', None),
    'DPM1': _PM, 'FPM1': _PM, 'DPM2': _PM, 'FPM2': _PM, 'DPM3': _PM, 'FPM3': _PM,
    'MSG1': (F_TEXT, 1, 32, 0, 'text', None),
    'MSG2': (F_TEXT, 1, 16, 0, 'text', None),
    'PRM': (F_ID, 14, 14, 0, 'id', None),
    'RELAIS': (F_NUM, 3, 3, 0, 'status', None),
    'NTARF': _IDX2, 'NJOURF': _IDX2, 'NJOURF+1': _IDX2,
    'PJOURF+1': (F_TEXT, 1, 98, 0, 'profile', None),
    'PPOINTE': (F_TEXT, 1, 98, 0, 'profile', None),
}

ENUMS = {
    'DEMAIN': ('----', 'BLEU', 'BLAN', 'ROUG'),
}

_HISTORIC_COLORS = {'BLEU': 'BLEU', 'BLAN': 'BLANC', 'ROUG': 'ROUGE'}
_PTEC_COLORS = {'B': 'BLEU', 'W': 'BLANC', 'R': 'ROUGE'}


def spec(label, mode=AUTO):
    """The raw spec tuple of ``label`` in ``mode`` (AUTO: either table), or None."""
    if mode != STANDARD:
        s = HIST.get(label)
        if s is not None or mode == HISTORIC:
            return s
    return STD.get(label)


def info(label):
    """``(kind, unit, width, numeric, horodated)`` for a known label, else None.

    ``width`` is the nominal data width (the maximum for variable fields).
    """
    s = spec(label)
    if s is None:
        return None
    return (s[4], s[5], s[2], s[0] == F_NUM, bool(s[3]))


def _chars_ok(v, fmt):
    if fmt == F_TEXT:
        for c in v:
            if c < ' ' or c > '~':
                return False
    elif fmt == F_HEX:
        for c in v:
            if not ('0' <= c <= '9' or 'A' <= c <= 'F'):
                return False
    elif fmt == F_ID:
        for c in v:
            if not ('0' <= c <= '9' or 'A' <= c <= 'Z' or 'a' <= c <= 'z'):
                return False
    elif fmt == F_CODE:
        for c in v:
            if not ('0' <= c <= '9' or 'A' <= c <= 'Z' or c == '.'):
                return False
    else:
        return False
    return True


def value_ok(label, s, v):
    """True if data ``v`` (str) is acceptable for ``label`` whose spec is ``s``."""
    n = len(v)
    if n < s[1] or n > s[2]:
        return False
    f = s[0]
    if f == F_NUM:
        return v.isdigit()
    if f == F_EMPTY:
        return True
    if f == F_ENUM:
        return v in ENUMS[label]
    if f == F_ID and v.isdigit():
        return True
    return _chars_ok(v, f)


def horodate_ok(h):
    """``[ EHeh]\\d{12}`` checked by hand (no ``re`` on the device)."""
    if len(h) != 13 or h[0] not in ' EHeh':
        return False
    for i in range(1, 13):
        c = h[i]
        if c < '0' or c > '9':
            return False
    return True


def check(label, value, horodate=None, mode=AUTO):
    """Full validation of one decoded group (label known in ``mode``, data and
    horodate formats).  Used by tests and by producers of synthetic data."""
    s = spec(label, mode)
    if s is None:
        return False
    if s[3]:
        if horodate is None or not horodate_ok(horodate):
            return False
    elif horodate is not None:
        return False
    return value_ok(label, s, value)


def convert(label, value):
    """JSON-ready value: int for numeric fields (indexes Wh, VA, A, V, kVA...),
    otherwise the string stripped of its padding."""
    s = spec(label)
    if s is not None and s[0] == F_NUM and value.isdigit():
        return int(value)
    return value.strip()


def tempo(groups):
    """Tempo colours ``(today, tomorrow)`` from a frame's groups dict, each
    'BLEU', 'BLANC', 'ROUGE' or None.

    Standard mode: STGE bits 24-25 / 26-27.  Historic mode: today from PTEC
    (``HCJB``/``HPJW``... last letter), tomorrow from DEMAIN (``----`` = None).
    """
    g = groups.get('STGE')
    if g is not None:
        return stge.colors(g[0])
    today = tomorrow = None
    g = groups.get('PTEC')
    if g is not None and len(g[0]) == 4 and g[0][2] == 'J':
        today = _PTEC_COLORS.get(g[0][3])
    g = groups.get('DEMAIN')
    if g is not None:
        tomorrow = _HISTORIC_COLORS.get(g[0])
    return today, tomorrow
