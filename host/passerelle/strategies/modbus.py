"""Modbus RTU strategies: requests, valid response ADUs (with what a decoder must
return), streams of responses with garbage between them, chunkings of a byte string.

Valid:   ``requests()`` -> (address, function, register, arg) that the encoders accept;
         ``responses()`` -> Resp(fields, data): ``fields`` is the decoded form
         (address, function, exception, count, register, value, registers);
         ``streams(garbage=True)`` -> Stream(responses, data) (garbage never holds a
         frame start followed by a valid frame by construction: it is random bytes).
Bytes:   ``chunkings(data)`` -> list of cut positions; ``float_bits()`` float32 bit
         patterns biased to the special ones (zero, subnormal, inf, NaN).
Writes:  ``write_exchanges()`` -> (request, its confirming answer) of FC 6/16 (what the
         bus driver checks); ``typed_values()`` -> (value type, value) within the
         type's range, what ``values.regs`` encodes (set-up writes), a float32 given as
         ``[mantissa, exponent]`` (``math.ldexp``: exact on every port, doubles that
         round, subnormals and overflow included).
The CRC is computed by ``crc16_bitwise`` (the specification's shift-and-xor loop), an
oracle independent of protocols.modbus's table.
"""

from collections import namedtuple

from hypothesis import strategies as st

Resp = namedtuple("Resp", "fields data")
Stream = namedtuple("Stream", "responses data")


def crc16_bitwise(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def adu(body):
    """body + its CRC, low byte first."""
    c = crc16_bitwise(body)
    return bytes(body) + bytes([c & 0xFF, c >> 8])


addresses = st.integers(1, 247)
registers16 = st.integers(0, 0xFFFF)


@st.composite
def requests(draw):
    function = draw(st.sampled_from((3, 4, 6, 16)))
    address = draw(st.integers(0 if function in (6, 16) else 1, 247))
    if function in (3, 4):
        count = draw(st.integers(1, 125))
        return address, function, draw(st.integers(0, 0x10000 - count)), count
    if function == 6:
        return address, function, draw(registers16), draw(registers16)
    values = draw(st.lists(registers16, min_size=1, max_size=123))
    return address, function, draw(st.integers(0, 0x10000 - len(values))), values


@st.composite
def responses(draw, address=None, functions=(3, 4, 6, 16), exceptions=True):
    a = draw(addresses) if address is None else address
    f = draw(st.sampled_from(functions))
    if exceptions and draw(st.integers(0, 5)) == 0:
        code = draw(st.integers(1, 255))
        return Resp((a, f, code, 0, 0, 0, ()), adu([a, f | 0x80, code]))
    if f in (3, 4):
        regs = tuple(draw(st.lists(registers16, min_size=1, max_size=125)))
        body = bytearray([a, f, 2 * len(regs)])
        for r in regs:
            body += bytes([r >> 8, r & 0xFF])
        return Resp((a, f, 0, len(regs), 0, 0, regs), adu(body))
    reg = draw(registers16)
    v = draw(registers16) if f == 6 else draw(st.integers(1, 123))
    body = [a, f, reg >> 8, reg & 0xFF, v >> 8, v & 0xFF]
    return Resp((a, f, 0, v if f == 16 else 0, reg, v, ()), adu(body))


@st.composite
def streams(draw, garbage=True, max_responses=5):
    rs = draw(st.lists(responses(), min_size=0, max_size=max_responses))
    data = bytearray()
    for r in rs:
        if garbage and draw(st.booleans()):
            data += draw(st.binary(min_size=1, max_size=40))
        data += r.data
    if garbage and draw(st.booleans()):
        data += draw(st.binary(min_size=1, max_size=40))
    return Stream(rs, bytes(data))


@st.composite
def chunkings(draw, data):
    n = len(data)
    if n < 2:
        return []
    return sorted(set(draw(st.lists(st.integers(1, n - 1), max_size=min(n - 1, 20)))))


def float_bits():
    special = st.sampled_from((0, 0x80000000, 1, 0x807FFFFF, 0x00800000, 0x7F7FFFFF,
                               0x7F800000, 0xFF800000, 0x7FC00000, 0xFFFFFFFF, 0x3F800000))
    return st.one_of(special, st.integers(0, 0xFFFFFFFF))


@st.composite
def write_exchanges(draw):
    """(address, function, register, arg) of a FC 6/16 request, and the bytes of the
    answer that confirms it (FC 6: register + value; FC 16: register + count)."""
    a = draw(addresses)
    f = draw(st.sampled_from((6, 16)))
    if f == 6:
        reg, v = draw(registers16), draw(registers16)
        return (a, 6, reg, v), adu([a, 6, reg >> 8, reg & 0xFF, v >> 8, v & 0xFF])
    vals = draw(st.lists(registers16, min_size=1, max_size=123))
    reg = draw(st.integers(0, 0x10000 - len(vals)))
    n = len(vals)
    return (a, 16, reg, vals), adu([a, 16, reg >> 8, reg & 0xFF, n >> 8, n & 0xFF])


# value type (protocols.modbus.values) -> range of its integers
TYPE_RANGES = {1: (0, 0xFFFF), 2: (-0x8000, 0x7FFF), 3: (0, 0xFFFFFFFF),
               4: (-0x80000000, 0x7FFFFFFF), 5: (0, 0xFFFFFFFF), 6: (-0x80000000, 0x7FFFFFFF)}


@st.composite
def typed_values(draw):
    """(type, value): an int within an integer type's range, or for F32 (0)
    [mantissa, exponent] with |mantissa| < 2**53 (ldexp(m, e) is then a finite double,
    beyond the float32 range or below its subnormals included)."""
    t = draw(st.sampled_from((0, 1, 2, 3, 4, 5, 6)))
    if t:
        lo, hi = TYPE_RANGES[t]
        return t, draw(st.integers(lo, hi))
    kind = draw(st.integers(0, 2))
    if kind == 0:  # a float32 value exactly: its 24-bit significand, its exponent
        return t, [draw(st.integers(-0xFFFFFF, 0xFFFFFF)), draw(st.integers(-160, 104))]
    if kind == 1:  # small integers, as the set-up values are
        return t, [draw(st.integers(-100000, 100000)), 0]
    return t, [draw(st.integers(-(1 << 53) + 1, (1 << 53) - 1)), draw(st.integers(-1130, 970))]
