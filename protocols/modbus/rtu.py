"""Modbus RTU codec: CRC-16, request encoders, streaming response decoder.

Pure and portable (CPython and MicroPython): no I/O, no clock.  The caller (the
bus driver) owns the UART, the DE/RE pin, the inter-frame silence and the
deadlines; see protocols/modbus/README.md.

Master side only: requests are encoded, responses decoded.  A response is
framed by its content (address, function, byte count or fixed length, CRC),
not by the 3.5-character silence, so the decoder works on any chunking of the
byte stream and resynchronises after garbage by itself.
"""


from protocols.compat import const
from protocols.errors import ModbusError, UsageError

ADU_MAX = const(256)   # address + PDU (<= 253) + CRC: the largest RTU frame
READ_MAX = const(125)  # registers in one FC 3/4 read
WRITE_MAX = const(123)  # registers in one FC 16 write

READ_HOLDING = const(3)
READ_INPUT = const(4)
WRITE_SINGLE = const(6)
WRITE_MULTIPLE = const(16)

# counter indexes, in the order of STAT_NAMES
_FRAMES = const(0)      # valid responses returned (exception responses included)
_EXCEPTIONS = const(1)  # exception responses (function | 0x80) among them
_CRC = const(2)         # well-formed candidates whose CRC did not match
_GARBAGE = const(3)     # bytes skipped while resynchronising
_UNEXPECTED = const(4)  # valid frames that did not answer the expected request
_BYTES = const(5)
_NCOUNTERS = const(6)
STAT_NAMES = "frames exceptions crc_errors garbage_bytes unexpected bytes"

_CRC_LO = (
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x01\xc0\x80\x41\x00\xc1\x81\x40\x00\xc1\x81\x40\x01\xc0\x80\x41"
    b"\x00\xc1\x81\x40\x01\xc0\x80\x41\x01\xc0\x80\x41\x00\xc1\x81\x40"
)
_CRC_HI = (
    b"\x00\xc0\xc1\x01\xc3\x03\x02\xc2\xc6\x06\x07\xc7\x05\xc5\xc4\x04"
    b"\xcc\x0c\x0d\xcd\x0f\xcf\xce\x0e\x0a\xca\xcb\x0b\xc9\x09\x08\xc8"
    b"\xd8\x18\x19\xd9\x1b\xdb\xda\x1a\x1e\xde\xdf\x1f\xdd\x1d\x1c\xdc"
    b"\x14\xd4\xd5\x15\xd7\x17\x16\xd6\xd2\x12\x13\xd3\x11\xd1\xd0\x10"
    b"\xf0\x30\x31\xf1\x33\xf3\xf2\x32\x36\xf6\xf7\x37\xf5\x35\x34\xf4"
    b"\x3c\xfc\xfd\x3d\xff\x3f\x3e\xfe\xfa\x3a\x3b\xfb\x39\xf9\xf8\x38"
    b"\x28\xe8\xe9\x29\xeb\x2b\x2a\xea\xee\x2e\x2f\xef\x2d\xed\xec\x2c"
    b"\xe4\x24\x25\xe5\x27\xe7\xe6\x26\x22\xe2\xe3\x23\xe1\x21\x20\xe0"
    b"\xa0\x60\x61\xa1\x63\xa3\xa2\x62\x66\xa6\xa7\x67\xa5\x65\x64\xa4"
    b"\x6c\xac\xad\x6d\xaf\x6f\x6e\xae\xaa\x6a\x6b\xab\x69\xa9\xa8\x68"
    b"\x78\xb8\xb9\x79\xbb\x7b\x7a\xba\xbe\x7e\x7f\xbf\x7d\xbd\xbc\x7c"
    b"\xb4\x74\x75\xb5\x77\xb7\xb6\x76\x72\xb2\xb3\x73\xb1\x71\x70\xb0"
    b"\x50\x90\x91\x51\x93\x53\x52\x92\x96\x56\x57\x97\x55\x95\x94\x54"
    b"\x9c\x5c\x5d\x9d\x5f\x9f\x9e\x5e\x5a\x9a\x9b\x5b\x99\x59\x58\x98"
    b"\x88\x48\x49\x89\x4b\x8b\x8a\x4a\x4e\x8e\x8f\x4f\x8d\x4d\x4c\x8c"
    b"\x44\x84\x85\x45\x87\x47\x46\x86\x82\x42\x43\x83\x41\x81\x80\x40"
)


def crc16(buf, start=0, end=None):
    """CRC-16/MODBUS of buf[start:end] (init 0xFFFF, reflected poly 0xA001).

    On the wire the CRC follows the frame low byte first; the CRC of a whole
    valid frame, its CRC included, is 0."""
    if end is None:
        end = len(buf)
    lo = 0xFF
    hi = 0xFF
    tlo = _CRC_LO
    thi = _CRC_HI
    i = start
    while i < end:
        x = lo ^ buf[i]
        lo = hi ^ tlo[x]
        hi = thi[x]
        i += 1
    return (hi << 8) | lo


def _check(v, lo, hi, what):
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
        raise ModbusError("%s: expected an integer in %d..%d, got %r" % (what, lo, hi, v))


def _room(buf, n):
    if not isinstance(buf, (bytearray, memoryview)) or len(buf) < n:
        raise UsageError("buf: expected a writable buffer of at least %d bytes" % n)


def _finish(buf, n):
    c = crc16(buf, 0, n)
    buf[n] = c & 0xFF
    buf[n + 1] = c >> 8
    return n + 2


def encode_read(buf, address, function, register, count):
    """FC 3 (holding) or 4 (input) read request into buf (>= 8 bytes) -> 8."""
    _check(address, 1, 247, "address")
    if function != READ_HOLDING and function != READ_INPUT:
        raise ModbusError("function: expected 3 or 4, got %r" % (function,))
    _check(register, 0, 0xFFFF, "register")
    _check(count, 1, READ_MAX, "count")
    if register + count > 0x10000:
        raise ModbusError("register + count: past register 65535")
    _room(buf, 8)
    buf[0] = address
    buf[1] = function
    buf[2] = register >> 8
    buf[3] = register & 0xFF
    buf[4] = count >> 8
    buf[5] = count & 0xFF
    return _finish(buf, 6)


def encode_write_single(buf, address, register, value):
    """FC 6 request (address 0 = broadcast) into buf (>= 8 bytes) -> 8."""
    _check(address, 0, 247, "address")
    _check(register, 0, 0xFFFF, "register")
    _check(value, 0, 0xFFFF, "value")
    _room(buf, 8)
    buf[0] = address
    buf[1] = WRITE_SINGLE
    buf[2] = register >> 8
    buf[3] = register & 0xFF
    buf[4] = value >> 8
    buf[5] = value & 0xFF
    return _finish(buf, 6)


def encode_write_multiple(buf, address, register, values):
    """FC 16 request of a sequence of 16-bit register values -> its length
    (9 + 2 * len(values) bytes)."""
    _check(address, 0, 247, "address")
    _check(register, 0, 0xFFFF, "register")
    n = len(values)
    _check(n, 1, WRITE_MAX, "len(values)")
    if register + n > 0x10000:
        raise ModbusError("register + len(values): past register 65535")
    _room(buf, 9 + 2 * n)
    buf[0] = address
    buf[1] = WRITE_MULTIPLE
    buf[2] = register >> 8
    buf[3] = register & 0xFF
    buf[4] = 0
    buf[5] = n
    buf[6] = 2 * n
    p = 7
    for v in values:
        _check(v, 0, 0xFFFF, "values[%d]" % ((p - 7) // 2))
        buf[p] = v >> 8
        buf[p + 1] = v & 0xFF
        p += 2
    return _finish(buf, p)


def request(address, function, register, arg):
    """A request as bytes (host side, tests): FC 3/4 ``arg`` = count, FC 6 ``arg`` =
    value, FC 16 ``arg`` = register values."""
    buf = bytearray(ADU_MAX)
    if function == WRITE_SINGLE:
        n = encode_write_single(buf, address, register, arg)
    elif function == WRITE_MULTIPLE:
        n = encode_write_multiple(buf, address, register, arg)
    else:
        n = encode_read(buf, address, function, register, arg)
    return bytes(buf[:n])


class Response:
    """One decoded response; the decoder reuses it (valid until the next decode()).

    ``address``, ``function`` (without the 0x80 bit), ``exception`` (0, or the
    exception code of an exception response).  FC 3/4: ``count`` registers whose
    bytes are ``data[offset:offset + 2 * count]`` (big-endian), see ``reg(i)`` and
    protocols.modbus.values.  FC 6: ``register`` and ``value``; FC 16: ``register``
    and ``count`` (the quantity written)."""

    def __init__(self, data):
        self.data = data
        self.offset = 0
        self.address = 0
        self.function = 0
        self.exception = 0
        self.count = 0
        self.register = 0
        self.value = 0

    def reg(self, i):
        """Register i (0-based) of a read response, 0..65535."""
        o = self.offset + 2 * i
        return (self.data[o] << 8) | self.data[o + 1]


class RtuDecoder:
    """``used, response = d.decode(buf, start, end)``; never raises on wire data.

    Bytes are copied into a window of ADU_MAX bytes (the whole buffer the
    decoder keeps).  The candidate frame at the start of the window is checked
    as its bytes arrive: address 1..247, function 3/4/6/16 or an exception
    response (function | 0x80), FC 3/4 byte count even and <= 250; once its
    length is reached the CRC decides.  On any failure the first byte is
    dropped (``garbage_bytes``) and the rest of the window is scanned again, so
    a frame that started inside a bad candidate is still found.

    ``expect(address, function, count)`` (0 = any) filters valid frames that do
    not answer the request in flight: they are counted (``unexpected``) and
    skipped.  ``flush()`` forgets the window (the bus driver calls it before each
    request: the inter-frame silence ended whatever came before)."""

    def __init__(self):
        self._w = bytearray(ADU_MAX)
        self._c = [0] * _NCOUNTERS
        self.msg = Response(self._w)
        self._ea = 0
        self._ef = 0
        self._ec = 0
        self.reset()

    def reset(self):
        """Forget the partial frame and zero the counters."""
        c = self._c
        for i in range(_NCOUNTERS):
            c[i] = 0
        self.flush()

    def flush(self):
        """Forget the partial frame (counters kept)."""
        self._h = 0   # start of the candidate in the window
        self._n = 0   # end of the bytes in the window

    def silence(self):
        """The line went quiet (3.5 characters, or the caller's deadline): the frame in
        progress is over: a response complete in the kept bytes is returned, else the
        first byte of the unfinished candidate is dropped and the rest scanned again
        -> a response, or None.  Call it until it returns None (then nothing is kept)."""
        while self._n > self._h:
            m = self._scan()  # a frame complete at the window start comes out first
            if m is not None:
                return m
            if self._n > self._h:  # the candidate there will never complete
                self._h += 1
                self._c[_GARBAGE] += 1
        self._h = self._n = 0
        return None

    def expect(self, address=0, function=0, count=0):
        """Accept only the response to this request (0 = any value)."""
        self._ea = address
        self._ef = function
        self._ec = count

    @property
    def pending(self):
        """Bytes kept in the window (a partial frame)."""
        return self._n - self._h

    @property
    def crc_errors(self):
        """The crc_errors counter (no dict allocated)."""
        return self._c[_CRC]

    @property
    def stats(self):
        """A new dict of the counters (STAT_NAMES)."""
        d = {}
        i = 0
        for k in STAT_NAMES.split():
            d[k] = self._c[i]
            i += 1
        return d

    def _need(self):
        """Length of the candidate at the window start: > 0, 0 = more header
        bytes needed, -1 = not a frame start."""
        w = self._w
        h = self._h
        k = self._n - h
        if k < 1:
            return 0
        a = w[h]
        if a < 1 or a > 247:
            return -1
        if k < 2:
            return 0
        f = w[h + 1]
        if f == WRITE_SINGLE or f == WRITE_MULTIPLE:
            return 8
        if f & 0x80:
            f &= 0x7F
            if f != READ_HOLDING and f != READ_INPUT and f != WRITE_SINGLE \
                    and f != WRITE_MULTIPLE:
                return -1
            if k < 3:
                return 0
            return 5 if w[h + 2] else -1
        if f != READ_HOLDING and f != READ_INPUT:
            return -1
        if k < 3:
            return 0
        b = w[h + 2]
        if b == 0 or b & 1 or b > 2 * READ_MAX:
            return -1
        return 5 + b

    def _frame(self, need):
        """The valid frame w[h:h+need] -> the response, or None if unexpected."""
        w = self._w
        h = self._h
        m = self.msg
        m.address = w[h]
        f = w[h + 1]
        m.exception = 0
        m.register = m.value = m.count = 0
        if f & 0x80:
            f &= 0x7F
            m.exception = w[h + 2]
        elif f == READ_HOLDING or f == READ_INPUT:
            m.count = w[h + 2] >> 1
            m.offset = h + 3
        else:
            m.register = (w[h + 2] << 8) | w[h + 3]
            m.value = (w[h + 4] << 8) | w[h + 5]
            if f == WRITE_MULTIPLE:
                m.count = m.value
        m.function = f
        if (self._ea and self._ea != m.address) or (self._ef and self._ef != f) or \
                (self._ec and not m.exception and self._ec != m.count):
            self._c[_UNEXPECTED] += 1
            return None
        self._c[_FRAMES] += 1
        if m.exception:
            self._c[_EXCEPTIONS] += 1
        return m

    def _scan(self):
        """Check the window from its start; a response, or None (needs more bytes)."""
        c = self._c
        while self._n > self._h:
            need = self._need()
            if need < 0:
                self._h += 1
                c[_GARBAGE] += 1
                continue
            if need == 0 or self._n - self._h < need:
                return None
            h = self._h
            if crc16(self._w, h, h + need) != 0:
                c[_CRC] += 1
                self._h += 1
                c[_GARBAGE] += 1
                continue
            m = self._frame(need)
            self._h = h + need
            if m is not None:
                return m
        self._h = self._n = 0
        return None

    def decode(self, buf, start=0, end=None):
        """Consume bytes of buf[start:end] until a response is complete ->
        (bytes used, Response or None).  After a resynchronisation a response
        may complete from bytes already kept: then ``used`` can be 0 with a
        response, so loop until (0, None) (see README)."""
        if end is None:
            end = len(buf)
        if start < 0 or end > len(buf) or start > end:
            raise UsageError("start/end out of range")
        pos = start
        w = self._w
        while True:
            m = self._scan()
            if m is not None:
                return pos - start, m
            if pos >= end:
                return pos - start, None
            k = self._n - self._h
            need = self._need()
            take = need - k if need > 0 else 3 - k
            if take > end - pos:
                take = end - pos
            if self._n + take > ADU_MAX:
                # compact: move the candidate to the window start (it is < ADU_MAX)
                h = self._h
                i = 0
                while i < k:  # forward copy: the regions may overlap
                    w[i] = w[h + i]
                    i += 1
                self._h = 0
                self._n = k
            n = self._n
            i = 0
            while i < take:
                w[n + i] = buf[pos + i]
                i += 1
            self._n = n + take
            pos += take
            self._c[_BYTES] += take
