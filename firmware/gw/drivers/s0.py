# gw/drivers/s0.py - S0 pulse counters (water, gas, electricity meters' pulse outputs)
# MIT license.  Imported by gw.app only when the config has counters.
#
# Config (counters[]): {"id": "eau", "type": "s0", "pin": 27, "per_pulse": 1, "unit": "L"}
#   per_pulse    units per pulse (1000 imp/kWh -> per_pulse 1, unit "Wh"; 1 L/imp ->
#                1, "L"; gas 0.01 m3/imp -> 0.01, "m³")
#   debounce_ms  (50) lock-out after a counted falling edge: edges closer than that are
#                bounces (counted, not pulses); must exceed the pulse width (S0: >= 30
#                ms) plus its contact bounce; 50 ms still counts 20 pulses/s (72 kW at
#                1000 imp/kWh)
#   device_class ("" = from the unit: Wh/kWh energy, L water) energy | water | gas
# Input: the HAL's falling-edge handler (pull-up, the S0 output pulls the line low):
# an ESP32 pin IRQ, on the emulated board the host's edges with their timestamps.
# State, retained, on <base>/<device_id>/<id>/state: {"total": <pulses x per_pulse>,
# "pulses": <count>} on change at most every min_interval_s, at least every period_s.
# The total never decreases: the pulse count only grows; it survives reboots in the
# HAL's NVS (namespace "s0", key "c<id>", all counters in one commit): at most one
# write per 10 minutes while pulses arrive (none while idle), plus one at a clean
# shutdown (Gateway.close(), Ctrl-C).  After a power cut (up to 10 minutes of pulses not
# saved), the count of our own retained state, read for 2 s at the first connection
# before anything is published, is adopted when it is higher (stats "adopted"): only
# the pulses between the last publish and the cut are lost, the total does not go down.
import asyncio
import json

from protocols.compat import const

SAVE_MS = const(600000)  # at most one flash write per 10 minutes in steady state
_ADOPT_MS = const(2000)
_TICK_MS = const(200)


def _decimals(x):
    """Decimal places of per_pulse (0.01 -> 2), to round totals to."""
    if isinstance(x, int):
        return 0
    s = "%.6f" % x
    s = s.rstrip("0")
    return len(s) - s.find(".") - 1


class S0:
    """One counter; edge(t_ms) is its falling-edge handler (IRQ context: no
    allocation beyond small ints, only counts)."""

    def __init__(self, cfg, pulses, ticks_diff):
        self.cfg = cfg
        self.base = pulses  # restored total (NVS, or our retained state if higher)
        self.n = 0  # pulses counted since boot: only edge() writes it (IRQ-safe)
        self.saved = pulses
        self.bounces = 0
        self._last = None  # time of the last counted edge
        self._deb = cfg["debounce_ms"]
        self._diff = ticks_diff
        self._dec = _decimals(cfg["per_pulse"])
        self.pub = None  # (pulses, ticks) last published; None: publish at once

    def edge(self, t):
        last = self._last
        if last is not None and self._diff(t, last) < self._deb:
            self.bounces += 1
            return
        self._last = t
        self.n += 1

    @property
    def pulses(self):
        """Total since installation (restored + counted since boot)."""
        return self.base + self.n

    def total(self):
        pp = self.cfg["per_pulse"]
        if self._dec == 0:
            return self.pulses * int(pp)
        return round(self.pulses * pp, self._dec)


def device_class(cfg):
    dc = cfg["device_class"]
    if dc:
        return dc
    u = cfg["unit"]
    if u in ("Wh", "kWh", "MWh"):
        return "energy"
    if u in ("L", "l"):
        return "water"
    return None


class Counters:
    def __init__(self, gw):
        self.gw = gw
        hal = gw.hal
        self.nvs = hal.nvs("s0")
        self.items = []
        self.pins = []  # keeps the input pins (and their IRQs) alive
        self.saves = 0
        self.adopted = 0  # counts raised from our retained state
        self.adopting = None  # state topics subscribed while adopting, else None
        self.disc = True
        self._saved_ms = hal.ticks_ms()
        for c in gw.cfg["counters"]:
            n = self.nvs.get("c" + c["id"], 0)
            s0 = S0(c, n if isinstance(n, int) and n > 0 else 0, hal.ticks_diff)
            self.items.append(s0)
            self.pins.append(hal.on_fall(c["pin"], s0.edge))

    def adopt(self, topic, payload, retained):
        """Our own retained state, received once at the first connection: a higher
        count than the NVS one (pulses counted after the last save, before a power
        cut) is adopted, so the published total never goes down."""
        if not retained or self.adopting is None:
            return
        for s0 in self.items:
            if topic == "%s/%s/state" % (self.gw.base, s0.cfg["id"]):
                try:
                    n = json.loads(payload)["pulses"]
                except (ValueError, KeyError, TypeError):
                    return
                if isinstance(n, int) and n > s0.base:
                    s0.base = n
                    self.adopted += 1

    async def _adopt(self, client):
        """Subscribe to the counters' state topics for up to _ADOPT_MS before the first
        publish (a retained message arrives right after the SUBACK)."""
        hal = self.gw.hal
        t0 = hal.ticks_ms()
        self.adopting = []
        for s0 in self.items:
            t = "%s/%s/state" % (self.gw.base, s0.cfg["id"])
            self.adopting.append(t)
            await client.subscribe(t, 0)
        while client.connected and hal.ticks_diff(hal.ticks_ms(), t0) < _ADOPT_MS:
            await asyncio.sleep(0.1)
        for t in self.adopting:
            await client.unsubscribe(t)
        self.adopting = None

    def rediscover(self):
        self.disc = True
        for s0 in self.items:
            s0.pub = None  # republish now

    def save(self, now=None):
        """Write the counts that changed (one NVS commit) -> True if written."""
        hal = self.gw.hal
        self._saved_ms = hal.ticks_ms() if now is None else now
        dirty = False
        for s0 in self.items:
            n = s0.pulses
            if n != s0.saved:
                self.nvs.set("c" + s0.cfg["id"], n)
                s0.saved = n
                dirty = True
        if dirty:
            self.nvs.commit()
            self.saves += 1
        return dirty

    def maybe_save(self, now):
        """Steady-state policy: at most one write per SAVE_MS, none while idle."""
        if self.gw.hal.ticks_diff(now, self._saved_ms) >= SAVE_MS:
            try:
                self.save(now)
            except OSError as e:
                self.gw.log.exception("s0", "counts not saved", e)

    def stats(self):
        out = {"saves": self.saves, "adopted": self.adopted}
        for s0 in self.items:
            out[s0.cfg["id"]] = {"pulses": s0.pulses, "bounces": s0.bounces}
        return out

    def entities(self):
        out = []
        for s0 in self.items:
            c = s0.cfg
            f = {"value_template": "{{ value_json.total }}", "state_class": "total_increasing",
                 "unit_of_measurement": c["unit"]}
            dc = device_class(c)
            if dc:
                f["device_class"] = dc
            out.append(("sensor", c["id"], f))
        return out

    async def run(self):
        gw = self.gw
        hal = gw.hal
        while not gw.client.connected:  # the broker may stay away for hours: keep saving
            await asyncio.sleep(_TICK_MS / 1000)
            self.maybe_save(hal.ticks_ms())
        await self._adopt(gw.client)
        while True:
            await asyncio.sleep(_TICK_MS / 1000)
            now = hal.ticks_ms()
            self.maybe_save(now)
            if not gw.client.connected:
                continue
            if self.disc:
                from gw.devdisc import announce

                self.disc = not await announce(gw, self.entities())
            for s0 in self.items:
                c = s0.cfg
                last = s0.pub
                if last is not None:
                    since = hal.ticks_diff(now, last[1])
                    if since < c["period_s"] * 1000 and (
                            last[0] == s0.pulses or since < c["min_interval_s"] * 1000):
                        continue
                n = s0.pulses
                if await gw._publish_json("%s/%s/state" % (gw.base, c["id"]),
                                          {"total": s0.total(), "pulses": n}, True):
                    s0.pub = (n, now)
