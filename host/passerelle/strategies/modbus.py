"""Modbus RTU strategies: requests, valid response ADUs (with what a decoder must
return), streams of responses with garbage between them, chunkings of a byte string.

Valid:   ``requests()`` -> (address, function, register, arg) that the encoders accept;
         ``responses()`` -> Resp(fields, data): ``fields`` is the decoded form
         (address, function, exception, count, register, value, registers);
         ``streams(garbage=True)`` -> Stream(responses, data) (garbage never holds a
         frame start followed by a valid frame by construction: it is random bytes).
Bytes:   ``chunkings(data)`` -> list of cut positions; ``float_bits()`` float32 bit
         patterns biased to the special ones (zero, subnormal, inf, NaN).
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
