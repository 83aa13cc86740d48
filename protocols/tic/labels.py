"""TIC label tables (Enedis-NOI-CPT_02E historic, Enedis-NOI-CPT_54E standard).

Each known label has a spec ``(fmt, minw, maxw, horodated, kind, unit)``:

- ``fmt``      how the data field is validated (``F_*`` below);
- ``minw/maxw`` accepted data length (exact width for indexes, a range where
  real meters or anonymised captures vary: ADCO/ADSC 10..12, NGTF 1..16);
- ``horodated`` 1 when the group carries ``SAAMMJJhhmmss`` (standard mode);
- ``kind``/``unit`` what the value means (for publishing).

The decoder rejects a group whose label is not in the table of its mode, or
whose data does not match its format: the checksum is only 6 bits, so these
checks are what stops garbage such as ``}PR`PzSOUSC 20 8`` (which passes the
checksum) from being published.

Layout, chosen for RAM (see README "Memory"): ``NAMES`` is one tuple of every
label (historic first, ``NH`` of them), ``CODES`` one byte per label (its spec
row), ``SPECS`` 6 bytes per row.  The tuples are built from lists so that their
strings are qstrs: the decoder's ``str(label bytes)`` then returns the interned
label without allocating, and frames share the label objects.  (A constant
tuple of strings would cost a str object per element when loaded from .mpy,
and a module's constants stay in RAM as long as the module.)

This module holds what the device needs (the tables, ``index``, ``info``, the
format checks); ``names``, ``spec``, ``check``, ``horodate_ok``, ``convert``
``tempo``, ``group`` and ``pairs`` are in ``labelx.py``, reached as ``labels.check`` etc. through
the module ``__getattr__`` at the end.
"""

from protocols.compat import const

AUTO = const(0)
HISTORIC = const(1)
STANDARD = const(2)

# data formats
F_NUM = const(1)    # decimal digits only, width minw..maxw (indexes: exact)
F_ID = const(2)     # [0-9A-Za-z], width minw..maxw (meter ids, anonymised as XXXX)
F_HEX = const(3)    # [0-9A-F]
F_TEXT = const(4)   # printable ASCII 0x20..0x7E (may contain spaces)
F_CODE = const(5)   # [0-9A-Z.] (period codes such as 'TH..', 'HCJB')
F_ENUM = const(6)   # one of DEMAIN_VALUES (DEMAIN is the only enumerated label)
F_EMPTY = const(7)  # must be empty (DATE: the information is in the horodate)

KINDS = tuple(['id', 'tariff', 'current', 'energy', 'duration', 'period', 'color', 'power',
               'status', 'version', 'time', 'text', 'voltage', 'index', 'profile'])
UNITS = tuple([None, 'A', 'Wh', 'min', 'W', 'VA', 'dal', 'VArh', 'V', 'kVA'])
DEMAIN_VALUES = tuple(['----', 'BLEU', 'BLAN', 'ROUG'])

# spec rows: (fmt, minw, maxw, horodated, KINDS index, UNITS index), 6 bytes each
_ID = const(0)
_TARIFF4 = const(1)
_A2 = const(2)
_E9 = const(3)      # energy index, Wh
_MIN2 = const(4)
_PERIOD4 = const(5)
_COLOR = const(6)
_A3 = const(7)
_W5 = const(8)
_VA5 = const(9)
_TARIFF1 = const(10)
_STATUS6 = const(11)
_HEX2 = const(12)
_DAL7 = const(13)
_VERSION = const(14)
_DATE = const(15)
_TEXT16 = const(16)
_EQ9 = const(17)    # reactive energy index, VArh
_V3 = const(18)
_KVA2 = const(19)
_VAH5 = const(20)   # SMAXxx, horodated
_WH5 = const(21)    # CCASN/CCAIN load-curve points, horodated
_VH3 = const(22)    # UMOYx, horodated
_HEX8 = const(23)
_PM = const(24)     # DPMx/FPMx (horodate, season may be SP)
_TEXT32 = const(25)
_PRM = const(26)
_RELAIS = const(27)
_IDX2 = const(28)
_PROFILE = const(29)

SPECS = bytes([    # a list: a constant tuple would stay in RAM next to the bytes
    F_ID, 10, 12, 0, 0, 0,          # _ID       id
    F_TEXT, 4, 4, 0, 1, 0,          # _TARIFF4  tariff
    F_NUM, 2, 2, 0, 2, 1,           # _A2       current A
    F_NUM, 9, 9, 0, 3, 2,           # _E9       energy Wh
    F_NUM, 2, 2, 0, 4, 3,           # _MIN2     duration min
    F_CODE, 4, 4, 0, 5, 0,          # _PERIOD4  period
    F_ENUM, 4, 4, 0, 6, 0,          # _COLOR    color
    F_NUM, 3, 3, 0, 2, 1,           # _A3       current A
    F_NUM, 5, 5, 0, 7, 4,           # _W5       power W
    F_NUM, 5, 5, 0, 7, 5,           # _VA5      power VA
    F_CODE, 1, 1, 0, 1, 0,          # _TARIFF1  tariff
    F_ID, 6, 6, 0, 8, 0,            # _STATUS6  status
    F_HEX, 2, 2, 0, 8, 0,           # _HEX2     status
    F_NUM, 7, 7, 0, 3, 6,           # _DAL7     energy dal
    F_NUM, 2, 2, 0, 9, 0,           # _VERSION  version
    F_EMPTY, 0, 0, 1, 10, 0,        # _DATE     time
    F_TEXT, 1, 16, 0, 11, 0,        # _TEXT16   text
    F_NUM, 9, 9, 0, 3, 7,           # _EQ9      energy VArh
    F_NUM, 3, 3, 0, 12, 8,          # _V3       voltage V
    F_NUM, 2, 2, 0, 7, 9,           # _KVA2     power kVA
    F_NUM, 5, 5, 1, 7, 5,           # _VAH5     power VA
    F_NUM, 5, 5, 1, 7, 4,           # _WH5      power W
    F_NUM, 3, 3, 1, 12, 8,          # _VH3      voltage V
    F_HEX, 8, 8, 0, 8, 0,           # _HEX8     status
    F_NUM, 2, 2, 1, 5, 0,           # _PM       period
    F_TEXT, 1, 32, 0, 11, 0,        # _TEXT32   text
    F_ID, 14, 14, 0, 0, 0,          # _PRM      id
    F_NUM, 3, 3, 0, 8, 0,           # _RELAIS   status
    F_NUM, 2, 2, 0, 13, 0,          # _IDX2     index
    F_TEXT, 1, 98, 0, 14, 0,        # _PROFILE  profile
])

# (label, spec row) pairs, historic then standard; split below into NAMES/CODES
_ROWS = [
    # historic (tic.md 4.2)
    'ADCO', _ID, 'OPTARIF', _TARIFF4, 'ISOUSC', _A2, 'BASE', _E9,
    'HCHC', _E9, 'HCHP', _E9, 'EJPHN', _E9, 'EJPHPM', _E9,
    'BBRHCJB', _E9, 'BBRHPJB', _E9, 'BBRHCJW', _E9,
    'BBRHPJW', _E9, 'BBRHCJR', _E9, 'BBRHPJR', _E9,
    'PEJP', _MIN2, 'PTEC', _PERIOD4, 'DEMAIN', _COLOR,
    'IINST', _A3, 'IINST1', _A3, 'IINST2', _A3, 'IINST3', _A3,
    'ADPS', _A3, 'ADIR1', _A3, 'ADIR2', _A3, 'ADIR3', _A3,
    'IMAX', _A3, 'IMAX1', _A3, 'IMAX2', _A3, 'IMAX3', _A3,
    'PMAX', _W5, 'PAPP', _VA5, 'HHPHC', _TARIFF1, 'MOTDETAT', _STATUS6,
    'PPOT', _HEX2, 'GAZ', _DAL7, 'AUTRE', _DAL7,
    # standard (tic.md 5.3)
    'ADSC', _ID, 'VTIC', _VERSION, 'DATE', _DATE, 'NGTF', _TEXT16, 'LTARF', _TEXT16,
    'EAST', _E9,
    'EASF01', _E9, 'EASF02', _E9, 'EASF03', _E9, 'EASF04', _E9, 'EASF05', _E9,
    'EASF06', _E9, 'EASF07', _E9, 'EASF08', _E9, 'EASF09', _E9, 'EASF10', _E9,
    'EASD01', _E9, 'EASD02', _E9, 'EASD03', _E9, 'EASD04', _E9,
    'EAIT', _E9,
    'ERQ1', _EQ9, 'ERQ2', _EQ9, 'ERQ3', _EQ9, 'ERQ4', _EQ9,
    'IRMS1', _A3, 'IRMS2', _A3, 'IRMS3', _A3,
    'URMS1', _V3, 'URMS2', _V3, 'URMS3', _V3,
    'PREF', _KVA2, 'PCOUP', _KVA2,
    'SINSTS', _VA5, 'SINSTS1', _VA5, 'SINSTS2', _VA5, 'SINSTS3', _VA5,
    'SMAXSN', _VAH5, 'SMAXSN1', _VAH5, 'SMAXSN2', _VAH5, 'SMAXSN3', _VAH5,
    'SMAXSN-1', _VAH5, 'SMAXSN1-1', _VAH5, 'SMAXSN2-1', _VAH5, 'SMAXSN3-1', _VAH5,
    'SINSTI', _VA5,
    'SMAXIN', _VAH5, 'SMAXIN-1', _VAH5,
    'CCASN', _WH5, 'CCASN-1', _WH5, 'CCAIN', _WH5, 'CCAIN-1', _WH5,
    'UMOY1', _VH3, 'UMOY2', _VH3, 'UMOY3', _VH3,
    'STGE', _HEX8,
    'DPM1', _PM, 'FPM1', _PM, 'DPM2', _PM, 'FPM2', _PM, 'DPM3', _PM, 'FPM3', _PM,
    'MSG1', _TEXT32, 'MSG2', _TEXT16, 'PRM', _PRM, 'RELAIS', _RELAIS,
    'NTARF', _IDX2, 'NJOURF', _IDX2, 'NJOURF+1', _IDX2,
    'PJOURF+1', _PROFILE, 'PPOINTE', _PROFILE,
]
NH = const(36)      # NAMES[:NH] are the historic labels, NAMES[NH:] the standard ones


def _split(rows):
    n = len(rows) // 2
    names = [None] * n
    codes = bytearray(n)
    for i in range(n):
        names[i] = rows[2 * i]
        codes[i] = rows[2 * i + 1]
    return tuple(names), bytes(codes)


NAMES, CODES = _split(_ROWS)
del _ROWS, _split


def index(label, mode=AUTO):
    """Index of ``label`` in ``NAMES`` if it is a label of ``mode`` (AUTO:
    either), else -1.  A linear search in C (~1 us over the standard table on
    the unix port): the decoder only calls it for groups that changed."""
    try:
        if mode == HISTORIC:
            return NAMES.index(label, 0, NH)
        if mode == STANDARD:
            return NAMES.index(label, NH)
        return NAMES.index(label)
    except ValueError:
        return -1


def info(label):
    """``(kind, unit, width, numeric, horodated)`` for a known label, else None.

    ``width`` is the nominal data width (the maximum for variable fields).
    """
    i = index(label)
    if i < 0:
        return None
    o = CODES[i] * 6
    s = SPECS
    return (KINDS[s[o + 4]], UNITS[s[o + 5]], s[o + 2], s[o] == F_NUM, s[o + 3] == 1)


def chars_ok(f, b, a, e):
    """True if the bytes ``b[a:e]`` are all in the character set of format
    ``f`` (F_TEXT, F_HEX, F_ID, F_CODE).  Works on byte values: iterating over
    a ``str`` on MicroPython interns every character it meets as a qstr."""
    if f == F_TEXT:
        while a < e:
            x = b[a]
            if x < 32 or x > 126:
                return False
            a += 1
    elif f == F_HEX:
        while a < e:
            x = b[a]
            if x < 48 or 57 < x < 65 or x > 70:
                return False
            a += 1
    elif f == F_ID:
        while a < e:
            x = b[a]
            if x < 48 or 57 < x < 65 or 90 < x < 97 or x > 122:
                return False
            a += 1
    elif f == F_CODE:
        while a < e:
            x = b[a]
            if (x < 48 and x != 46) or 57 < x < 65 or x > 90:
                return False
            a += 1
    else:
        return False
    return True


def data_ok(o, v, b=None, a=0, e=0):
    """True if data ``v`` (str) fits spec row offset ``o`` (``CODES[i] * 6``);
    ``b[a:e]`` are its bytes when the caller has them (else ``v.encode()``)."""
    s = SPECS
    n = len(v)
    if n < s[o + 1] or n > s[o + 2]:
        return False
    f = s[o]
    if f == F_NUM:
        return v.isdigit()
    if f == F_EMPTY:
        return True
    if f == F_ENUM:
        return v in DEMAIN_VALUES
    if f == F_ID and v.isdigit():
        return True
    if b is None:
        b = v.encode()
        a = 0
        e = len(b)
    if f == F_TEXT:
        # in C: a multi-byte character makes len(v) < bytes (MicroPython's str()
        # accepts UTF-8, CPython's 'ascii' codec raised already); control
        # bytes other than HT never reach a segment
        return (e - a == n and b.find(b'\t', a, e) < 0 and b.find(b'\x7f', a, e) < 0)
    return chars_ok(f, b, a, e)


def __getattr__(name):
    # names, spec, check, horodate_ok, convert, tempo, group, pairs: host-side helpers
    # (tests, simulator, CLI), loaded on first use (see README "Memory")
    import protocols.tic.labelx
    return getattr(protocols.tic.labelx, name)
