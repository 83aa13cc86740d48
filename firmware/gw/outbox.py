# gw/outbox.py - store-and-forward of the meter states: a bounded RAM ring spilling to
# flash, drained in order (by gw.app, QoS 1).
# MIT license.
#
# Outbox(hal, path, ram_bytes, flash_bytes, stats)
#   put(topic, payload, retain=True)  append one message (copied into the ring; never
#                                     blocks; at most one flash write)
#   peek() -> (topic bytes, payload, retain) | None   the oldest message, number first
#   pop(first)                        forget it (after its PUBACK)
#   flush()                           spill the whole RAM ring to flash (before a reset)
#   len(outbox), stats (the owner's dict of STAT_KEYS)
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
# The gateway's side (module functions, so that their code costs RAM only while used):
#   open_for(gw)      an Outbox for gw (its drain task started), gw.outbox set
#   drain(gw, ob)     the task sending it, oldest first, one QoS 1 message at a time
#
# Memory: the gateway creates an Outbox only when a state cannot be sent at once (link
# down, or a message still unacknowledged) or when segments are left on flash at boot,
# and drops it (and this module) once drained: online, it costs no RAM.  The ring is
# allocated then; when that fails (MemoryError) every message goes straight to flash.
import asyncio
import gc
import sys

from gw import store

_HDR = 4
_SEG_NAME = "%08d.seg"
# counters; "waiting" messages, "ram_bytes" of ring and "flash_bytes" used now;
# "ram_peak": the most ring bytes ever in use; "oom_retries": sends retried after a
# MemoryError (the packet did not find a block in a busy heap)
STAT_KEYS = ("queued", "sent", "dropped", "spilled", "segments", "spill_errors", "too_big",
             "waiting", "ram_bytes", "flash_bytes", "ram_peak", "oom_retries")


class Outbox:
    def __init__(self, hal, path, ram_bytes, flash_bytes, stats):
        self.hal = hal
        self.path = path
        try:
            self.buf = bytearray(ram_bytes)
        except MemoryError:
            self.buf = bytearray(0)  # every message straight to flash
        self._mv = memoryview(self.buf)
        self.head = self.tail = 0  # live records: buf[head:tail]
        self.nram = 0  # records in the ring
        self.flash_bytes = flash_bytes
        self.segs = []  # [number, bytes, records] oldest first
        self._rd = 0  # read offset in segs[0]
        self._rn = 0  # records already read from segs[0]
        self._next = 0
        self._cur = None  # the peeked segment record (bytes), until pop()
        self.first = 0  # number of the oldest message: +1 for each one sent or dropped
        self.task = None  # the owner's drain task
        self.stats = stats  # STAT_KEYS -> int, kept by the owner across Outbox objects
        stats["ram_bytes"] = len(self.buf)
        store.makedirs(path)
        store.clean(path)
        self._load()
        self._note()

    def _note(self):
        st = self.stats
        st["waiting"] = len(self)
        st["flash_bytes"] = self.flash_used()

    def start(self, gw):
        self.task = asyncio.create_task(drain(gw, self))

    def close(self):
        """Forget the ring (empty) and say so in the counters."""
        self.stats["ram_bytes"] = 0
        self.buf = self._mv = None

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
            nb, nr = _scan(self._name(num))
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
        if tl > 255 or pl > 65535:
            self.stats["too_big"] += 1
            self.stats["dropped"] += 1
            return False
        if size > len(buf):  # bigger than the ring: a segment of its own, after the ring
            self.flush()
            h = bytearray(_HDR)
            h[0] = 1 if retain else 0
            h[1] = tl
            h[2] = pl >> 8
            h[3] = pl & 0xFF
            self.stats["queued"] += 1
            if not self._keep((h, topic, payload), size, 1):
                self.stats["dropped"] += 1
            self._note()
            return True
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
        st = self.stats
        st["queued"] += 1
        if self.tail - self.head > st["ram_peak"]:
            st["ram_peak"] = self.tail - self.head
        self._note()
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
        self.first += s[2] - self._rn
        self._rd = self._rn = 0
        self._cur = None

    def _spill(self, want):
        """Move the oldest ring records (>= want bytes) to a new segment."""
        if self.head == self.tail:
            return
        end, k = self._cut(want)
        if not self._keep(self._mv[self.head:end], end - self.head, k):
            self.stats["dropped"] += k  # nowhere to keep them: the oldest go
            self.first += k
        self.head = end
        self.nram -= k

    def _keep(self, data, n, k):
        """Write ``k`` records (``n`` bytes) as the newest segment; when the flash cannot
        take them the oldest segments go first; False: not kept either."""
        while True:
            while self.segs and self.flash_used() + n > self.flash_bytes:
                self._drop_oldest_segment()
            if n > self.flash_bytes:
                break
            try:
                store.write(self._name(self._next), data, self.hal)
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
            return True
        return False

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
        # views into the ring, valid until the next put(): encode the packet before
        # yielding to the other tasks (MQTTClient.enqueue does when it has room)
        mv = self._mv
        return (bytes(mv[i + _HDR:j]), mv[j:j + pl], buf[i] & 1)

    def pop(self, first=None):
        """Forget the oldest message, sent.  ``first``: self.first when it was peeked;
        if the message was dropped meanwhile (flash full), nothing more is removed and
        it is not counted as lost (it was delivered)."""
        self.stats["sent"] += 1
        if first is not None and first != self.first:
            self.stats["dropped"] -= 1
            self._note()
            return
        self.first += 1
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
            self._note()
            return
        if not self.nram:
            return
        buf = self.buf
        i = self.head
        self.head = i + _HDR + buf[i + 1] + ((buf[i + 2] << 8) | buf[i + 3])
        self.nram -= 1
        if not self.nram:
            self.head = self.tail = 0
        self.stats["waiting"] -= 1


def _scan(name):
    """-> (bytes of whole records, records) of a segment file, from its record headers
    (nothing but a 4-byte header is read at a time)."""
    i = k = 0
    try:
        n = store.size(name)
        with open(name, "rb") as f:
            while i + _HDR <= n:
                f.seek(i)
                h = f.read(_HDR)
                if len(h) < _HDR:
                    break
                j = i + _HDR + h[1] + ((h[2] << 8) | h[3])
                if j > n:
                    break
                i = j
                k += 1
    except OSError:
        pass
    return i, k


def _read_record(name, offset):
    """One record of a segment, read into one buffer of its size (one allocation)."""
    try:
        with open(name, "rb") as f:
            f.seek(offset)
            h = f.read(_HDR)
            if len(h) < _HDR:
                return None
            n = h[1] + ((h[2] << 8) | h[3])
            rec = bytearray(_HDR + n)
            rec[0:_HDR] = h
            if f.readinto(memoryview(rec)[_HDR:]) != n:
                return None
            return rec
    except OSError:
        return None


def open_for(gw):
    if gw._obs is None:
        gw._obs = d = {}
        for k in STAT_KEYS:
            d[k] = 0
    ocfg = gw.cfg["outbox"]
    path = "%s/%s/outbox" % (gw.hal.data_dir, gw.cfg["device_id"])
    gw.outbox = ob = Outbox(gw.hal, path, ocfg["ram_bytes"], ocfg["flash_kb"] * 1024, gw._obs)
    try:
        gw.log.info("out", "buffering (%d waiting, ring %d B)", len(ob), len(ob.buf))
        ob.start(gw)
    except MemoryError:  # no room for its task now: gw.app's main loop starts it (each
        pass  # second); the outbox takes the state anyway
    return ob


async def drain(gw, ob):
    """While the outbox is open (a task of its own, not a job: no RAM when online):
    send it oldest first, one QoS 1 message at a time, each forgotten only after its
    PUBACK (on a lost link the client resends it with DUP); close it once empty."""
    c = gw.client
    meters = gw.meters
    try:
        while True:
            # only once the client has nothing in flight (older messages), and once
            # discovery is announced (entities before their states; and the two never
            # take the heap at the same time): enqueue() then copies the message into
            # its packet before yielding, while the ring's views are still valid
            rec = None
            if c.connected and not c.pending:
                for m in meters:
                    if m.new_keys:
                        break
                else:
                    rec = ob.peek()
                    first = ob.first
            if rec is None:
                if not len(ob):
                    _close(gw, ob)
                    return
                await asyncio.sleep(0.05)
                continue
            try:
                pid = await c.enqueue(rec[0], rec[1], bool(rec[2]))
            except ValueError as e:  # a record that cannot be sent (bad topic)
                gw.log.exception("out", "dropped", e)
                ob.pop(first)
                ob.stats["sent"] -= 1
                ob.stats["dropped"] += 1
                continue
            except MemoryError:  # no block for the packet now (a busy heap): retry
                rec = None
                ob.stats["oom_retries"] += 1
                gc.collect()
                await asyncio.sleep(0.2)
                continue
            rec = None
            await c.wait_acked(pid)
            ob.pop(first)  # (a message the flash-full policy dropped meanwhile stays gone)
    except Exception as e:  # noqa: BLE001 - restarted by the gateway's main loop
        gw.log.exception("out", "drain", e)
    finally:
        ob.task = None


def _close(gw, ob):
    """Drained: give its RAM back (ring, this module, gw.store) until the next outage."""
    ob.close()
    gw.outbox = None
    st = ob.stats
    gw.log.info("out", "drained (%d sent, %d dropped so far)", st["sent"], st["dropped"])
    pkg = sys.modules.get("gw")
    for name in ("outbox", "store"):
        sys.modules.pop("gw." + name, None)
        if pkg is not None and name in dir(pkg):
            delattr(pkg, name)
    gc.collect()
