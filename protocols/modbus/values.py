"""Register values -> numbers, without struct (no tuple, no bytes slice per value).

``b`` is a buffer and ``o`` the offset of the first byte of the value (for a
response: ``r.data, r.offset + 2 * i``).  Registers are big-endian; 32-bit values
span two registers, high word first (Eastron, IEEE 754 float32) or low word first
(``*_sw``: Carlo Gavazzi and others).  ``regs(t, v)`` goes the other way (a
set-up write), with ``f32_bits(v)`` for float32.
"""

from math import copysign, frexp, ldexp

from protocols.compat import const

F32 = const(0)    # IEEE 754 float32, high word first (Eastron)
U16 = const(1)
S16 = const(2)
U32 = const(3)    # high word first
S32 = const(4)
U32_SW = const(5)  # low word first ("word swapped")
S32_SW = const(6)
NAMES = "f32 u16 s16 u32 s32 u32_sw s32_sw"


def width(t):
    """Registers taken by a value of type t."""
    return 1 if t == U16 or t == S16 else 2


def u16(b, o):
    return (b[o] << 8) | b[o + 1]


def s16(b, o):
    v = (b[o] << 8) | b[o + 1]
    return v - 0x10000 if v & 0x8000 else v


def u32(b, o):
    return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]


def u32_sw(b, o):
    return (b[o + 2] << 24) | (b[o + 3] << 16) | (b[o] << 8) | b[o + 1]


def _signed32(v):
    return v - 0x100000000 if v & 0x80000000 else v


def float_of_bits(x):
    """IEEE 754 binary32 bits (an int) -> float; NaN and infinities included."""
    e = (x >> 23) & 0xFF
    m = x & 0x7FFFFF
    if e == 0xFF:
        v = float("nan") if m else float("inf")
    elif e:
        v = ldexp(m | 0x800000, e - 150)
    else:
        v = ldexp(m, -149)  # subnormal (or zero)
    return -v if x & 0x80000000 else v


def f32_bits(v):
    """A number -> its IEEE 754 binary32 bits (an int), rounded to nearest, ties to
    even, as struct.pack(">f") does; beyond the float32 range -> infinity, NaN ->
    0x7FC00000.  The inverse of float_of_bits for every float32 value."""
    v = float(v)
    if v != v:
        return 0x7FC00000
    s = 0x80000000 if copysign(1.0, v) < 0 else 0
    v = abs(v)
    if v - v != 0:
        return s | 0x7F800000
    if v == 0:
        return s
    m, e = frexp(v)  # v = m * 2**e, 0.5 <= m < 1 (0 for zero)
    if e < -125:  # subnormal: units of 2**-149 (rounding may give the smallest normal)
        q = ldexp(v, 149)
        x = 0
    else:
        q = ldexp(m, 24)  # 24 significant bits, exact in a double
        x = e + 126  # the biased exponent
    r = int(q)
    f = q - r
    if f > 0.5 or (f == 0.5 and r & 1):
        r += 1
    if x == 0:
        return s | r
    if r == 0x1000000:  # rounded up to the next power of two
        r = 0x800000
        x += 1
    if x > 254:
        return s | 0x7F800000
    return s | (x << 23) | (r - 0x800000)


def f32(b, o):
    """float32 at b[o:o + 4], big-endian (high word first)."""
    return float_of_bits(u32(b, o))


def get(t, b, o):
    """The value of type t at b[o:]: int, or float for F32."""
    if t == F32:
        return float_of_bits(u32(b, o))
    if t == U16:
        return u16(b, o)
    if t == S16:
        return s16(b, o)
    if t == U32:
        return u32(b, o)
    if t == S32:
        return _signed32(u32(b, o))
    if t == U32_SW:
        return u32_sw(b, o)
    return _signed32(u32_sw(b, o))


def regs(t, v):
    """The registers (a list of 0..65535) that hold the number v as type t: the
    inverse of get() for values within t's range (what a FC 16 write sends)."""
    if t == F32:
        x = f32_bits(v)
    else:
        x = int(v)
        if width(t) == 1:
            return [x & 0xFFFF]
        x &= 0xFFFFFFFF
    if t == U32_SW or t == S32_SW:
        return [x & 0xFFFF, x >> 16]
    return [x >> 16, x & 0xFFFF]


def finite(v):
    """False for NaN and infinities (not representable in JSON)."""
    return v == v and v - v == 0
