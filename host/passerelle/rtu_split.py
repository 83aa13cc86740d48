"""Sort what a sniffer hears on a Modbus RTU line into requests and answers.

A USB/RS-485 adapter on the bus hears both sides: the master's requests (the gateway's:
``tx`` in a recording) and the slaves' answers (``rx``).  :class:`RtuSplitter` cuts the
byte stream into frames by their structure and CRC (protocols.modbus.crc16), so that
``passerelle record serial --protocol modbus-rtu`` writes a reactive channel the replay
can play as a cassette:

* a request: function 3, 4 or 6 (8 bytes) or 16 (9 + byte count), CRC valid;
* after a request, its answer: same address, the function (its length by the function
  and byte count) or the function | 0x80 (an exception, 5 bytes), CRC valid.  An FC 6
  answer repeats its request: the alternation tells them apart;
* a request where an answer was due: the slave stayed silent (a timeout, then the
  master's retry or next request);
* anything else (noise, a frame cut by a silence) goes out as ``rx`` bytes as heard,
  never dropped.

``feed(data, t)`` takes a read and the time of its first byte and returns the events
``(t, dir, bytes)`` complete so far, each stamped at its first byte (``char_s`` per
character); ``silence()`` says the line went quiet: a partial frame is over.
"""

from protocols.modbus import crc16

_READS = (3, 4)
_FIXED = (3, 4, 6)


def _check(buf, n, i=0):
    """n if the n-byte candidate at buf[i:] has a valid CRC, 0 if more bytes are needed,
    -1 if it is not that frame."""
    if n <= 0:
        return n
    if len(buf) - i < n:
        return 0
    return n if crc16(buf, i, i + n) == 0 else -1


def request_length(buf, i=0):
    """The length of the request at buf[i:] (FC 3, 4, 6, 16, CRC valid), 0 if more bytes
    are needed, -1 if none starts there (also the simulated bus's request framing,
    passerelle.sim.modbus.parse_requests)."""
    if len(buf) - i < 2:
        return 0
    fc = buf[i + 1]
    if fc in _FIXED:
        return _check(buf, 8, i)
    if fc == 16:
        return _check(buf, 9 + buf[i + 6], i) if len(buf) - i >= 7 else 0
    return -1


def answer_length(buf, address, function):
    if len(buf) < 2:
        return 0 if not buf or buf[0] == address else -1
    if buf[0] != address:
        return -1
    f = buf[1]
    if f == function | 0x80:
        return _check(buf, 5)
    if f != function:
        return -1
    if function in _READS:
        return _check(buf, 5 + buf[2]) if len(buf) >= 3 else 0
    return _check(buf, 8)


class RtuSplitter:
    def __init__(self, char_s):
        self.char_s = float(char_s)
        self.buf = bytearray()
        self.times = []         # the time of each byte in buf
        self.want = None        # (address, function) of the request awaiting its answer
        self.junk = bytearray()
        self.junk_t = None
        self.stats = {"requests": 0, "answers": 0, "exceptions": 0, "unanswered": 0,
                      "junk_bytes": 0}

    def feed(self, data, t):
        for i in range(len(data)):
            self.times.append(t + i * self.char_s)
        self.buf += data
        out = []
        self._split(out)
        return out

    def silence(self):
        """The line went quiet: what is left cannot complete -> its events."""
        out = []
        self._split(out)
        if self.buf:
            self._to_junk(len(self.buf))
        self._junk_out(out)
        return out

    def _take(self, n, direction, out):
        self._junk_out(out)
        out.append((self.times[0], direction, bytes(self.buf[:n])))
        del self.buf[:n]
        del self.times[:n]

    def _to_junk(self, n):
        if not self.junk:
            self.junk_t = self.times[0]
        self.junk += self.buf[:n]
        self.stats["junk_bytes"] += n
        del self.buf[:n]
        del self.times[:n]

    def _junk_out(self, out):
        if self.junk:
            out.append((self.junk_t, "rx", bytes(self.junk)))
            self.junk = bytearray()

    def _split(self, out):
        while self.buf:
            if self.want is not None:
                n = answer_length(self.buf, *self.want)
                if n > 0:
                    self.stats["exceptions" if self.buf[1] & 0x80 else "answers"] += 1
                    self._take(n, "rx", out)
                    self.want = None
                    continue
                if n == 0:
                    return      # an answer still arriving
            n = request_length(self.buf)
            if n > 0:
                if self.want is not None:
                    self.stats["unanswered"] += 1
                self.want = (self.buf[0], self.buf[1])
                self.stats["requests"] += 1
                self._take(n, "tx", out)
                continue
            if n == 0:
                return          # a request still arriving
            self._to_junk(1)    # neither: one byte of noise, the rest scanned again
