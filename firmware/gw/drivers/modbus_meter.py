# gw/drivers/modbus_meter.py - a Modbus RTU energy meter on a shared RS-485 bus
# MIT license.
#
# Same interface as TICMeter for gw.app: id, cfg, values (key -> int | float),
# new_keys (a bytearray of key_at() indexes), changed, updated (asyncio.Event set after every poll that read
# something), stats, mode, baudrate, run(), decoder_stats(), and info(key), the
# discovery hints of a key: (unit, device_class, state_class).
#
# The register map comes from protocols.modbus.maps (model in config: keys and a bytes
# table, nothing per key on the heap but the values); its keys are grouped into a
# few reads (maps.plan, 5 bytes per read).  Every period_s the meter reads them
# through its ModbusBus, in order.  Values: scaled and rounded (energies as int Wh),
# NaN / infinities dropped (value_errors); an energy index never decreases (a lower
# reading is dropped and counted in index_rejected).  A read that fails (no answer,
# CRC error after the retries) ends the poll: the values of the reads done stay, the
# others keep their last value, nothing of the corrupted answer is used.  While the
# meter is offline (its last poll failed) it gets a single attempt per poll, so that a
# dead meter costs the bus one deadline per period.
#
# stats: frames (polls that read something; the app publishes from the first),
# polls, errors (failed reads), exceptions (exception responses), value_errors,
# index_rejected, poll_ms (duration of the last poll, waits for the bus included); with
# set-up writes (cfg["setup"], gw/drivers/modbus_setup.py, imported only then, before
# the polls until every key is done): setup_ok, setup_errors, setup_ms.
import asyncio

from protocols.compat import const
from protocols.modbus import maps, values

_MIN_SLEEP_MS = const(50)
_ENTRY = const(6)  # maps.ENTRY


class ModbusMeter:
    mode = "rtu"
    min_frames = 1  # the app publishes after this many successful polls

    def __init__(self, cfg, hal, log, bus):
        self.cfg = cfg
        self.id = cfg["id"]
        self.hal = hal
        self.log = log
        self.bus = bus
        self._map = m = maps.model(cfg["model"])  # (function, max_regs, keys, table)
        self._reads = maps.plan(m)
        self.values = v = {}
        for k in m[2]:  # size the table now, while the heap is young
            v[k] = None
        for k in m[2]:
            del v[k]
        self.new_keys = bytearray()  # indexes (key_at) of keys not announced yet
        self.changed = False
        self.updated = asyncio.Event()
        self.online = False
        self.stats = {"frames": 0, "polls": 0, "errors": 0, "exceptions": 0,
                      "value_errors": 0, "index_rejected": 0, "poll_ms": 0}
        self._setup = sorted(cfg.get("setup") or ())  # set-up keys not yet written
        if self._setup:
            self.stats["setup_ok"] = self.stats["setup_errors"] = self.stats["setup_ms"] = 0

    @property
    def baudrate(self):
        return self.cfg["baudrate"]

    def info(self, key):
        """Discovery hints of a key: (unit, device_class, state_class), or None."""
        keys = self._map[2]
        if key not in keys:
            return None
        return maps.HINTS[self._map[3][_ENTRY * keys.index(key) + 5]]

    def key_at(self, i):
        """The key of index ``i`` in the register map (``new_keys``), None past the last."""
        keys = self._map[2]
        return keys[i] if i < len(keys) else None

    def decoder_stats(self):
        d = dict(self.bus.stats)
        d.update(self.bus.decoder_stats())
        return d

    def _set(self, key, v):
        vals = self.values
        if key not in vals:
            self.new_keys.append(self._map[2].index(key))
        elif vals[key] == v:
            return
        vals[key] = v
        self.changed = True

    def apply(self, r, first, i, j):
        """Store keys i..j-1 from a read response whose first register is ``first``."""
        st = self.stats
        keys = self._map[2]
        t = self._map[3]
        get = values.get
        scales = maps.SCALES
        while i < j:
            o = _ENTRY * i
            key = keys[i]
            i += 1
            v = get(t[o + 2], r.data, r.offset + 2 * (((t[o] << 8) | t[o + 1]) - first))
            if not values.finite(v):
                st["value_errors"] += 1
                continue
            v = v * scales[t[o + 3]]
            dec = t[o + 4]
            v = round(v, dec) if dec else int(round(v))
            if t[o + 5] == 0:  # an energy index (maps.KINDS[0])
                old = self.values.get(key)
                if v < 0 or (old is not None and v < old):
                    st["index_rejected"] += 1
                    continue
            self._set(key, v)

    async def poll(self):
        """One pass over the register map -> True if something was read."""
        cfg = self.cfg
        st = self.stats
        if self._setup:
            from gw.drivers import modbus_setup

            self._setup = await modbus_setup.apply(self, self._setup)
        st["polls"] += 1
        t0 = self.hal.ticks_ms()
        retries = cfg["retries"] if self.online else 0
        reads = self._reads
        n = len(reads) // 5
        got = 0
        for k in range(0, len(reads), 5):
            first = (reads[k] << 8) | reads[k + 1]
            r = await self.bus.request(cfg["address"], self._map[0], first, reads[k + 2],
                                       cfg["timeout_ms"], retries)
            # r is the bus decoder's: used before the next await
            if r is None:
                st["errors"] += 1
                if self.online or st["polls"] == 1:  # once per outage
                    self.log.warning("modbus/" + self.id, "no valid answer from address %d "
                                     "(register %d)", cfg["address"], first)
                break
            if r.exception:
                st["exceptions"] += 1
                self.log.warning("modbus/" + self.id, "exception %d reading register %d",
                                 r.exception, first)
                continue
            self.apply(r, first, reads[k + 3], reads[k + 4])
            got += 1
        if got == n and not self.online:
            self.log.info("modbus/" + self.id, "address %d answers", cfg["address"])
        self.online = got == n
        st["poll_ms"] = self.hal.ticks_diff(self.hal.ticks_ms(), t0)
        if got:
            st["frames"] += 1
            self.updated.set()
        return got > 0

    async def run(self):
        """Poll every period_s, forever (supervised by the app)."""
        hal = self.hal
        period = self.cfg["period_s"] * 1000
        nxt = hal.ticks_ms()
        while True:
            await self.poll()
            nxt = hal.ticks_add(nxt, period)
            left = hal.ticks_diff(nxt, hal.ticks_ms())
            if left < _MIN_SLEEP_MS:  # the poll took longer than the period: no catch-up
                nxt = hal.ticks_add(hal.ticks_ms(), _MIN_SLEEP_MS)
                left = _MIN_SLEEP_MS
            await asyncio.sleep(left / 1000)
