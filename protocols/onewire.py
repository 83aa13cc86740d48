"""Dallas/Maxim 1-Wire helpers: CRC-8, ROM ids, DS18B20 scratchpads.

Pure code (no I/O), identical on CPython and MicroPython.

* ``crc8(data, start=0, end=None) -> int``: the Dallas/Maxim CRC-8 (polynomial
  x^8 + x^5 + x^4 + 1, reflected 0x8C, initial 0).  Over a ROM id or a scratchpad
  *including* its CRC byte the result is 0 when the data is intact.
* ``rom_from_hex(text) -> bytes | None``: a ROM id as written in config.json
  (16 hex digits, family code first, e.g. ``"28ff4a1b01160324"``); None when it is
  not 16 hex digits or its CRC byte does not match.  ``rom_hex(rom)`` is the reverse.
* ``ds18b20_decode(scratch) -> (status, centi)``: a 9-byte DS18B20 scratchpad ->
  status ``OK`` with the temperature in 1/100 degC (an int: exact at every resolution),
  or ``CRC`` (bad CRC, e.g. a disconnected sensor reads all 0xFF, a noisy line),
  ``POWER_ON`` (85.00 degC: the register's reset value, read before any conversion
  finished, e.g. after a brown-out of a parasite-powered sensor), ``RANGE`` (outside
  the sensor's -55..+125 degC), ``MISSING`` (all bytes 0xFF: no sensor drove the
  line, e.g. it is disconnected while others answer).  Never raises on wire data.
* ``ds18b20_scratch(centi, crc_ok=True) -> bytes``: the scratchpad a DS18B20 returns
  at 12-bit resolution (for emulated buses and tests).
"""

from protocols.compat import const

FAMILY_DS18B20 = const(0x28)
OK = const(0)
CRC = const(1)
POWER_ON = const(2)
RANGE = const(3)
MISSING = const(4)
STATUS_NAMES = ("ok", "crc", "power_on", "range", "missing")

_HEX = "0123456789abcdef"


def crc8(data, start=0, end=None):
    if end is None:
        end = len(data)
    crc = 0
    for i in range(start, end):
        b = data[i]
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def rom_from_hex(text):
    if not isinstance(text, str) or len(text) != 16:
        return None
    out = bytearray(8)
    t = text.lower()
    for i in range(8):
        hi = _HEX.find(t[2 * i])
        lo = _HEX.find(t[2 * i + 1])
        if hi < 0 or lo < 0:
            return None
        out[i] = (hi << 4) | lo
    if crc8(out):
        return None
    return bytes(out)


def rom_hex(rom):
    out = ""
    for b in rom:
        out += _HEX[b >> 4] + _HEX[b & 15]
    return out


def ds18b20_decode(scratch):
    if scratch is None or len(scratch) != 9:
        return CRC, 0
    if crc8(scratch):
        for b in scratch:
            if b != 0xFF:
                return CRC, 0
        return MISSING, 0  # nobody answered: the line stayed high
    raw = scratch[0] | (scratch[1] << 8)
    if raw & 0x8000:
        raw -= 0x10000
    if raw == 0x0550:
        return POWER_ON, 8500
    # 1/16 degC per LSB at every resolution (lower resolutions leave low bits undefined)
    centi = (raw * 100) // 16 if raw >= 0 else -((-raw * 100) // 16)
    if centi < -5500 or centi > 12500:
        return RANGE, centi
    return OK, centi


def ds18b20_scratch(centi, crc_ok=True):
    raw = (centi * 16) // 100 if centi >= 0 else -((-centi * 16) // 100)
    raw &= 0xFFFF
    b = bytearray((raw & 0xFF, raw >> 8, 0x4B, 0x46, 0x7F, 0xFF, 0x01, 0x10, 0))
    b[8] = crc8(b, 0, 8)
    if not crc_ok:
        b[8] ^= 0x5A
    return bytes(b)
