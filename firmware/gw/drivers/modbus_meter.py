# gw/drivers/modbus_meter.py - a Modbus RTU energy meter on a shared RS-485 bus
# MIT license.
#
# Same interface as TICMeter for gw.app: id, cfg, values (key -> int | float),
# new_keys, changed, updated (asyncio.Event set after every poll that read
# something), stats, mode, baudrate, run(), decoder_stats(), and info(key), the
# discovery hints of a key: (unit, device_class, state_class).
#
# The register map comes from protocols.modbus.maps (model in config); its entries
# are grouped into a few reads (maps.plan).  Every period_s the meter reads them
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
# index_rejected.
import asyncio

from protocols.compat import const
from protocols.modbus import maps, values

_MIN_SLEEP_MS = const(50)


class ModbusMeter:
    min_frames = 1  # the app publishes after this many successful polls

    def __init__(self, cfg, hal, log, bus):
        self.cfg = cfg
        self.id = cfg["id"]
        self.hal = hal
        self.log = log
        self.bus = bus
        self.tag = "modbus/" + self.id
        fc, max_regs, entries = maps.model(cfg["model"])
        self._fc = fc
        self._plan = maps.plan(entries, max_regs)
        self.values = v = {}
        for e in entries:  # size the table now, while the heap is young
            v[e[0]] = None
        for e in entries:
            del v[e[0]]
        self.new_keys = []
        self.changed = False
        self.updated = asyncio.Event()
        self.mode = "rtu"
        self.baudrate = cfg["baudrate"]
        self.online = False
        self.stats = {"frames": 0, "polls": 0, "errors": 0, "exceptions": 0,
                      "value_errors": 0, "index_rejected": 0}

    def info(self, key):
        """Discovery hints of a key: (unit, device_class, state_class), or None."""
        for _, _, entries in self._plan:
            for e in entries:
                if e[0] == key:
                    return maps.hints(e[5])
        return None

    def decoder_stats(self):
        d = dict(self.bus.stats)
        d.update(self.bus.decoder_stats())
        return d

    def _set(self, key, v):
        vals = self.values
        if key not in vals:
            if key not in self.new_keys:
                self.new_keys.append(key)
        elif vals[key] == v:
            return
        vals[key] = v
        self.changed = True

    def apply(self, r, first, entries):
        """Store the values of one read response (registers from ``first``)."""
        st = self.stats
        get = values.get
        for key, reg, t, scale, dec, kind in entries:
            v = get(t, r.data, r.offset + 2 * (reg - first))
            if not values.finite(v):
                st["value_errors"] += 1
                continue
            v = v * scale
            v = round(v, dec) if dec else int(round(v))
            if kind == "energy":
                old = self.values.get(key)
                if v < 0 or (old is not None and v < old):
                    st["index_rejected"] += 1
                    continue
            self._set(key, v)

    async def poll(self):
        """One pass over the register map -> True if something was read."""
        cfg = self.cfg
        st = self.stats
        st["polls"] += 1
        retries = cfg["retries"] if self.online else 0
        got = 0
        for first, count, entries in self._plan:
            r = await self.bus.request(cfg["address"], self._fc, first, count,
                                       cfg["timeout_ms"], retries)
            # r is the bus decoder's: used before the next await
            if r is None:
                st["errors"] += 1
                if self.online or st["polls"] == 1:  # once per outage
                    self.log.warning(self.tag, "no valid answer from address %d (register %d)",
                                     cfg["address"], first)
                break
            if r.exception:
                st["exceptions"] += 1
                self.log.warning(self.tag, "exception %d reading register %d",
                                 r.exception, first)
                continue
            self.apply(r, first, entries)
            got += 1
        if got == len(self._plan) and not self.online:
            self.log.info(self.tag, "address %d answers", cfg["address"])
        self.online = got == len(self._plan)
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
