"""Test stand-ins for the firmware tests (never deployed).

* ``tic()``: the real ``protocols.tic`` when it imports, else a minimal stand-in with the
  contract's surface (AUTO/HISTORIC/STANDARD, labels.info, stge.decode, TicDecoder).
* ``Frame``: a decoded frame as TicDecoder returns it (mode, groups, invalid).
* ``FakeHal``: a clock the test moves by hand, plus ``uart()`` from a byte script.
* ``Log``: collects lines.
"""

import asyncio
import types


class Frame:
    def __init__(self, mode, groups, invalid=0):
        self.mode = mode
        self.groups = groups
        self.invalid = invalid


_INFO = {
    "ADCO": ("id", None, 12, False, False), "OPTARIF": ("tariff", None, 4, False, False),
    "ISOUSC": ("current", "A", 2, True, False), "BASE": ("energy", "Wh", 9, True, False),
    "HCHC": ("energy", "Wh", 9, True, False), "HCHP": ("energy", "Wh", 9, True, False),
    "BBRHCJB": ("energy", "Wh", 9, True, False), "BBRHPJB": ("energy", "Wh", 9, True, False),
    "PTEC": ("period", None, 4, False, False), "DEMAIN": ("color", None, 4, False, False),
    "IINST": ("current", "A", 3, True, False), "IINST1": ("current", "A", 3, True, False),
    "IINST2": ("current", "A", 3, True, False), "IINST3": ("current", "A", 3, True, False),
    "ADPS": ("current", "A", 3, True, False), "ADIR1": ("current", "A", 3, True, False),
    "PAPP": ("power", "VA", 5, True, False), "MOTDETAT": ("status", None, 6, False, False),
    "ADSC": ("id", None, 12, False, False), "DATE": ("time", None, 0, False, True),
    "NGTF": ("text", None, 16, False, False), "LTARF": ("text", None, 16, False, False),
    "EAST": ("energy", "Wh", 9, True, False), "EASF01": ("energy", "Wh", 9, True, False),
    "ERQ1": ("energy", "VArh", 9, True, False),
    "IRMS1": ("current", "A", 3, True, False), "IRMS2": ("current", "A", 3, True, False),
    "IRMS3": ("current", "A", 3, True, False), "URMS1": ("voltage", "V", 3, True, False),
    "PREF": ("power", "kVA", 2, True, False), "SINSTS": ("power", "VA", 5, True, False),
    "SMAXSN-1": ("power", "VA", 5, True, True), "CCASN": ("power", "W", 5, True, True),
    "STGE": ("status", None, 8, False, False), "NJOURF+1": ("index", None, 2, True, False),
}


def _standin():
    m = types.SimpleNamespace(AUTO=0, HISTORIC=1, STANDARD=2)
    m.labels = types.SimpleNamespace(info=_INFO.get)

    def decode(hex8):
        v = int(hex8, 16)
        return {"tempo_today": (v >> 24) & 3, "tempo_tomorrow": (v >> 26) & 3}

    m.stge = types.SimpleNamespace(decode=decode)

    class TicDecoder:
        def __init__(self, mode=0):
            self.mode = mode
            self.stats = {"frames": 0}

        def reset(self):
            pass

    m.TicDecoder = TicDecoder
    return m


def tic():
    try:
        import protocols.tic as real
    except ImportError:
        return _standin()
    return real if hasattr(real, "TicDecoder") else _standin()


class FakeHal:
    name = "emu"
    platform = "unix"

    def __init__(self):
        self.now = 1000
        self.board = {"id": "emu"}

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, a, b):
        return a + b


class Log:
    def __init__(self):
        self.lines = []

    def _add(self, level, tag, msg, *args):
        self.lines.append("%s %s: %s" % (level, tag, msg % args if args else msg))

    def debug(self, tag, msg, *args):
        self._add("D", tag, msg, *args)

    def info(self, tag, msg, *args):
        self._add("I", tag, msg, *args)

    def warning(self, tag, msg, *args):
        self._add("W", tag, msg, *args)

    def error(self, tag, msg, *args):
        self._add("E", tag, msg, *args)

    def exception(self, tag, msg, exc):
        self._add("E", tag, "%s: %r" % (msg, exc))


def run(coro):
    return asyncio.run(coro)
