# gw/outbox.py - store-and-forward of the meter states: a bounded RAM ring spilling to
# flash, drained in order with QoS 1; per-meter sequence numbers kept across reboots.
# MIT license.
#
# Outbox(hal, path, ram_bytes, flash_bytes)
#   put(topic, payload, retain=True)  append one message (copied; never blocks, never
#                                     allocates in steady state: the ring is preallocated)
#   peek() -> (topic bytes, payload, retain) | None   the oldest message
#   pop()                             forget the oldest (after its PUBACK)
#   flush()                           spill the whole RAM ring to flash (before a reset)
#   len(outbox), stats, ram_peak
#
# Order: the flash segments always hold OLDER messages than the ring (the ring spills
# its oldest records), so the oldest message is the read position of the first segment,
# else the ring head.  A segment is written once, atomically (gw.store: tmp + rename),
# and deleted when drained; after a reboot a partly drained segment is sent again from
# its start (duplicates, never losses: the subscriber deduplicates by "seq").
# Full: when the ring has no room it spills its oldest half into a new segment; when the
# segments exceed flash_bytes, or the flash is full (ENOSPC), the OLDEST segment is
# deleted (its messages counted in stats["dropped"]); with no segment left to sacrifice
# the oldest ring records are dropped and counted.
#
# Record: flags (bit 0 retain), topic length, payload length (2 bytes, big endian),
# topic, payload.  A segment file is records back to back: <path>/<8 digits>.seg.
#
# Seq(nvs, key, block): per-meter monotonic numbers that survive reboots without a
# flash write per message: the NVS holds a limit; numbers are taken below it, and when
# it is reached it moves up by ``block`` (one NVS write per block).  At boot the counter
# restarts at the stored limit (the numbers up to it may have been used: they are
# skipped, never reused) and the limit moves up by one block (one write per boot).
from gw import store

_HDR = 4
_SEG_NAME = "%08d.seg"


class Seq:
    def __init__(self, nvs, key, block):
        self._nvs = nvs
        self._key = key
        self.block = block
        self.n = nvs.get(key, 0)  # the first number of this boot
        self.limit = self.n
        self.writes = 0
        self._reserve()

    def _reserve(self):
        self.limit = self.n + self.block
        self._nvs.set(self._key, self.limit)
        self._nvs.commit()  # raises OSError: the caller decides (it is logged)
        self.writes += 1

    def next(self):
        """The next number; persists the next block first when this one is used up."""
        if self.n >= self.limit:
            try:
                self._reserve()
            except OSError:
                pass  # NVS unwritable: keep counting; retried at the next number
        n = self.n
        self.n = n + 1
        return n


class Outbox:
    def __init__(self, hal, path, ram_bytes, flash_bytes):
        self.hal = hal
        self.path = path
        self.buf = bytearray(ram_bytes)
        self._mv = memoryview(self.buf)
        self.head = self.tail = 0  # live records: buf[head:tail]
        self.nram = 0  # records in the ring
        self.flash_bytes = flash_bytes
        self.segs = []  # [number, bytes, records] oldest first
        self._rd = 0  # read offset in segs[0]
        self._rn = 0  # records already read from segs[0]
        self._next = 0
        self._cur = None  # the peeked segment record (bytes), until pop()
        self.ram_peak = 0
        self.stats = {"queued": 0, "sent": 0, "dropped": 0, "spilled": 0, "segments": 0,
                      "spill_errors": 0, "too_big": 0}
        store.makedirs(path)
        store.clean(path)
        self._load()

    # ------------------------------------------------------------ boot
    def _load(self):
        nums = []
        for name in store.listdir(self.path):
            if name.endswith(".seg") and len(name) == 12:
                try:
                    nums.append(int(name[:8]))
                except ValueError:
                    pass
        nums.sort()
        for num in nums:
            data = store.read(self._name(num))
            nb, nr = _scan(data)
            if nr:
                self.segs.append([num, nb, nr])
            else:
                store.remove(self._name(num))
            self._next = num + 1

    def _name(self, num):
        return self.path + "/" + _SEG_NAME % num

    # ------------------------------------------------------------ size
    def __len__(self):
        n = self.nram
        for s in self.segs:
            n += s[2]
        return n - self._rn

    def flash_used(self):
        n = 0
        for s in self.segs:
            n += s[1]
        return n

    # ------------------------------------------------------------ put
    def put(self, topic, payload, retain=True):
        """Queue one message; returns False when it cannot be kept (bigger than the ring)."""
        tl = len(topic)
        pl = len(payload)
        size = _HDR + tl + pl
        buf = self.buf
        if size > len(buf) or tl > 255:
            self.stats["too_big"] += 1
            self.stats["dropped"] += 1
            return False
        while len(buf) - self.tail < size:
            if self.head:
                self._compact()
            else:
                self._spill(len(buf) >> 1)
        i = self.tail
        buf[i] = 1 if retain else 0
        buf[i + 1] = tl
        buf[i + 2] = pl >> 8
        buf[i + 3] = pl & 0xFF
        i += _HDR
        buf[i:i + tl] = topic
        i += tl
        self._mv[i:i + pl] = payload
        self.tail = i + pl
        self.nram += 1
        self.stats["queued"] += 1
        used = self.tail - self.head
        if used > self.ram_peak:
            self.ram_peak = used
        return True

    def _compact(self):
        n = self.tail - self.head
        mv = self._mv
        if n:
            mv[0:n] = mv[self.head:self.tail]
        self.head = 0
        self.tail = n

    def _cut(self, want):
        """End offset of the oldest ring records totalling >= want bytes (>= 1 record)
        -> (end, records)."""
        buf = self.buf
        i = self.head
        k = 0
        while i < self.tail and (i - self.head < want or not k):
            i += _HDR + buf[i + 1] + ((buf[i + 2] << 8) | buf[i + 3])
            k += 1
        return i, k

    def _drop_oldest_segment(self):
        s = self.segs.pop(0)
        store.remove(self._name(s[0]))
        self.stats["dropped"] += s[2] - self._rn
        self._rd = self._rn = 0
        self._cur = None

    def _spill(self, want):
        """Move the oldest ring records (>= want bytes) to a new segment; when the
        flash cannot take them, older segments go first, then these records."""
        if self.head == self.tail:
            return
        end, k = self._cut(want)
        n = end - self.head
        while True:
            while self.segs and self.flash_used() + n > self.flash_bytes:
                self._drop_oldest_segment()
            if n > self.flash_bytes:
                break
            try:
                store.write(self._name(self._next), self._mv[self.head:end], self.hal)
            except OSError:
                self.stats["spill_errors"] += 1
                if self.segs:
                    self._drop_oldest_segment()
                    continue
                break
            self.segs.append([self._next, n, k])
            self._next += 1
            self.stats["spilled"] += k
            self.stats["segments"] += 1
            self.head = end
            self.nram -= k
            return
        self.stats["dropped"] += k  # nowhere to keep them: the oldest of the ring go
        self.head = end
        self.nram -= k

    def flush(self):
        """Spill the whole ring to flash (before the board resets: RAM is lost)."""
        while self.nram:
            before = self.nram
            self._spill(self.tail - self.head)
            if self.nram == before:
                break
        if not self.nram:
            self.head = self.tail = 0

    # ------------------------------------------------------------ drain
    def peek(self):
        while self.segs:
            if self._cur is None:
                s = self.segs[0]
                rec = _read_record(self._name(s[0]), self._rd)
                if rec is None:  # unreadable (removed under us?): count what is left
                    self._drop_oldest_segment()
                    continue
                self._cur = rec
            rec = self._cur
            tl = rec[1]
            return (rec[_HDR:_HDR + tl], memoryview(rec)[_HDR + tl:], rec[0] & 1)
        if not self.nram:
            return None
        buf = self.buf
        i = self.head
        tl = buf[i + 1]
        pl = (buf[i + 2] << 8) | buf[i + 3]
        j = i + _HDR + tl
        # copies: the ring may move (compaction) while the message is being sent
        return (bytes(self._mv[i + _HDR:j]), bytes(self._mv[j:j + pl]), buf[i] & 1)

    def pop(self):
        self.stats["sent"] += 1
        if self.segs:
            rec = self._cur
            if rec is None:
                rec = _read_record(self._name(self.segs[0][0]), self._rd)
            self._cur = None
            self._rd += len(rec) if rec is not None else 1 << 30
            self._rn += 1
            s = self.segs[0]
            if self._rd >= s[1] or self._rn >= s[2]:
                self.segs.pop(0)
                store.remove(self._name(s[0]))
                self._rd = self._rn = 0
            return
        if not self.nram:
            return
        buf = self.buf
        i = self.head
        self.head = i + _HDR + buf[i + 1] + ((buf[i + 2] << 8) | buf[i + 3])
        self.nram -= 1
        if not self.nram:
            self.head = self.tail = 0


def _scan(data):
    """-> (bytes of whole records, records) of a segment's content."""
    if not data:
        return 0, 0
    i = k = 0
    n = len(data)
    while i + _HDR <= n:
        j = i + _HDR + data[i + 1] + ((data[i + 2] << 8) | data[i + 3])
        if j > n:
            break
        i = j
        k += 1
    return i, k


def _read_record(name, offset):
    try:
        with open(name, "rb") as f:
            f.seek(offset)
            h = f.read(_HDR)
            if len(h) < _HDR:
                return None
            n = h[1] + ((h[2] << 8) | h[3])
            rest = f.read(n)
            if len(rest) < n:
                return None
            return h + rest
    except OSError:
        return None
