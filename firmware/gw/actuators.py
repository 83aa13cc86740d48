# gw/actuators.py - relays and fil pilote zones (heaters), commanded over MQTT
# MIT license.  Imported by gw.app only when the config has relays or heaters.
#
# Commands: <base>/<device_id>/<id>/set (one subscription: <base>/<device_id>/+/set)
#   relay   ON | OFF | TOGGLE | PULSE <seconds>   (case-insensitive; seconds 0.1..86400,
#           decimals allowed) or JSON {"state": "ON"|"OFF"|"TOGGLE"[, "pulse_s": s]}
#           (pulse_s only with ON).  A pulse switches ON, then OFF after s seconds; any
#           later command cancels the pending OFF.
#   heater  confort | eco | hors-gel | arret | confort-1 | confort-2  (case-insensitive)
# State, retained: <base>/<device_id>/<id>/state  "ON"/"OFF" or the order, after every
# change, after every (re)connection and when Home Assistant restarts.
# Errors (nothing is switched), not retained: <base>/<device_id>/error
#   {"topic": <topic or null>, "error": <code>, "detail": <text>}, code one of
#   unknown_actuator, unknown_value, oversize (> 64 bytes; a message larger than the
#   MQTT receive buffer is dropped by the client and reported with topic null),
#   not_utf8, retained (retained commands are ignored: they would replay at every
#   reconnection).
# Interlock: relays a and b interlocked (either names the other): switching one ON
# first switches the other OFF (break-before-make, both states echoed); never both ON.
# Restore after reboot: relay restore off | on | last; heater restore <order> | last
# (default hors-gel).  "last" states are kept in the HAL's NVS (namespace "act", key
# "r<id>" / "h<id>"; on the emulated board nvs.json written to a temp file then renamed,
# on an ESP32 the NVS commit is atomic), written when the state changes (a pulse's
# state is its end state, OFF).
#
# Fil pilote (the French 6-order pilot wire, 230 V half-waves towards the neutral):
#   confort    no signal                      pos 0  neg 0
#   eco        full wave                      pos 1  neg 1
#   hors-gel   negative half-wave only        pos 0  neg 1
#   arret      positive half-wave only        pos 1  neg 0
#   confort-1  full wave 3 s, then no signal for the rest of each 300 s cycle
#   confort-2  full wave 7 s, then no signal for the rest of each 300 s cycle
# pin_pos / pin_neg drive the switches passing the positive / negative half-wave
# (invert: true for active-low drivers).  Zones start at hors-gel before anything else.
import asyncio
import json

from protocols.compat import const
from protocols.mqtt.text import valid_utf8

FP_ORDERS = ("confort", "eco", "hors-gel", "arret", "confort-1", "confort-2")
FP_LEVELS = ((0, 0), (1, 1), (0, 1), (1, 0))  # (pos, neg) of the four steady orders
FP_CYCLE_MS = const(300000)
FP_ECO_MS = (3000, 7000)  # confort-1, confort-2: full wave at the start of each cycle
HORS_GEL = const(2)
MAX_CMD = const(64)  # bytes: the longest valid command is ~40
_TICK_MS = const(50)
_MAX_ERRORS = const(4)
_MAX_PULSE_MS = const(86400000)

# item fields (one list per relay / zone: fewer objects than instances with a dict each)
_ID = const(0)
_KIND = const(1)  # 0 relay, 1 heater
_PA = const(2)  # relay pin / pin_pos
_PB = const(3)  # None / pin_neg
_INV = const(4)
_STATE = const(5)  # relay 0/1, heater order index
_UNTIL = const(6)  # relay: pulse end; heater: next pattern change (ticks) or None
_OTHER = const(7)  # relay: index of the interlocked relay or -1; heater: cycle start
_RESTORE = const(8)
_PUB = const(9)  # state to publish


def fp_levels(order, t_ms):
    """(pos, neg, ms until the next change or -1) of order index ``order`` at
    t_ms since the start of its cycle."""
    if order < 4:
        lv = FP_LEVELS[order]
        return lv[0], lv[1], -1
    on = FP_ECO_MS[order - 4]
    t = t_ms % FP_CYCLE_MS
    if t < on:
        return 1, 1, on - t
    return 0, 0, FP_CYCLE_MS - t


def parse_relay(text):
    """Command text -> (0 off | 1 on | 2 toggle, pulse ms or 0), or None if invalid."""
    if text[:1] == "{":
        try:
            m = json.loads(text)
        except ValueError:
            return None
        if not isinstance(m, dict) or not isinstance(m.get("state"), str):
            return None
        for k in m:
            if k != "state" and k != "pulse_s":
                return None
        p = m.get("pulse_s")
        text = m["state"]
        if p is not None:
            if text.strip().upper() != "ON" or isinstance(p, bool) or not isinstance(p, (int, float)):
                return None
            text = "PULSE " + str(p)
    t = text.strip().upper()
    if t == "ON":
        return 1, 0
    if t == "OFF":
        return 0, 0
    if t == "TOGGLE":
        return 2, 0
    if t[:6] == "PULSE ":
        try:
            ms = int(float(t[6:]) * 1000)
        except (ValueError, OverflowError):
            return None
        if 100 <= ms <= _MAX_PULSE_MS:
            return 1, ms
    return None


class Actuators:
    def __init__(self, gw):
        self.gw = gw
        hal = gw.hal
        self.nvs = hal.nvs("act")
        self.items = []
        self.errors = []  # [topic or None, code, detail] waiting to be published
        self.disc = True  # discovery to (re)announce
        self.stats = {"commands": 0, "rejected": 0, "errors_dropped": 0}
        self._oversize = 0  # client stats["oversize"] already reported
        cfg = gw.cfg
        now = hal.ticks_ms()
        for h in cfg["heaters"]:  # the safe order first, before anything else
            inv = 1 if h["invert"] else 0
            a = hal.pin(h["pin_pos"], 1, value=inv)
            b = hal.pin(h["pin_neg"], 1, value=1 - inv)
            self.items.append([h["id"], 1, a, b, inv, HORS_GEL, None, now, h["restore"], True])
        relays = cfg["relays"]
        for r in relays:
            inv = 1 if r["invert"] else 0
            self.items.append([r["id"], 0, hal.pin(r["pin"], 1, value=inv), None, inv, 0, None,
                               -1, r["restore"], True])
        for it in self.items:  # interlocks, both ways
            if it[_KIND] == 0:
                for r in relays:
                    if r["id"] == it[_ID] and r["interlock"]:
                        j = self.find(r["interlock"])
                        it[_OTHER] = j
                        self.items[j][_OTHER] = self.items.index(it)
        for it in self.items:  # restore
            rs = it[_RESTORE]
            if it[_KIND] == 1:
                order = FP_ORDERS.index(rs) if rs in FP_ORDERS else self._stored("h", it, HORS_GEL)
                if 0 <= order < len(FP_ORDERS):
                    self.set_order(it, order, False)
            else:
                on = 1 if rs == "on" else (self._stored("r", it, 0) if rs == "last" else 0)
                if on == 1:
                    self.switch(it, 1, 0, False)

    def _stored(self, prefix, it, default):
        v = self.nvs.get(prefix + it[_ID], default)
        return v if isinstance(v, int) else default

    def _save(self, prefix, it, v):
        if it[_RESTORE] != "last":
            return
        try:
            if self.nvs.get(prefix + it[_ID]) != v:
                self.nvs.set(prefix + it[_ID], v)
                self.nvs.commit()
        except OSError as e:
            self.gw.log.exception("act", "state of %s not saved" % it[_ID], e)

    def find(self, ident):
        for i in range(len(self.items)):
            if self.items[i][_ID] == ident:
                return i
        return -1

    # ---------------------------------------------------------------- switching
    def _out(self, it, a, b):
        inv = it[_INV]
        it[_PA].value(a ^ inv)
        if b is not None:
            it[_PB].value(b ^ inv)

    def switch(self, it, on, pulse_ms, save=True):
        """Relay to on (1) / off (0) now; on with pulse_ms: off again after pulse_ms."""
        hal = self.gw.hal
        j = it[_OTHER]
        if on and j >= 0:
            other = self.items[j]
            if other[_STATE]:
                self.switch(other, 0, 0, save)  # break before make
        self._out(it, on, None)
        if it[_STATE] != on:
            it[_STATE] = on
            it[_PUB] = True
        it[_UNTIL] = hal.ticks_add(hal.ticks_ms(), pulse_ms) if on and pulse_ms else None
        if save:
            self._save("r", it, 0 if pulse_ms else on)

    def set_order(self, it, order, save=True):
        hal = self.gw.hal
        now = hal.ticks_ms()
        pos, neg, left = fp_levels(order, 0)
        self._out(it, pos, neg)
        if it[_STATE] != order:
            it[_STATE] = order
            it[_PUB] = True
        it[_OTHER] = now  # cycle start
        it[_UNTIL] = None if left < 0 else hal.ticks_add(now, left)
        if save:
            self._save("h", it, order)

    def _deadlines(self):
        hal = self.gw.hal
        now = hal.ticks_ms()
        for it in self.items:
            until = it[_UNTIL]
            if until is None or hal.ticks_diff(until, now) > 0:
                continue
            if it[_KIND] == 0:
                self.switch(it, 0, 0, False)  # end of a pulse (its end state is saved)
            else:
                pos, neg, left = fp_levels(it[_STATE], hal.ticks_diff(now, it[_OTHER]))
                self._out(it, pos, neg)
                it[_UNTIL] = hal.ticks_add(now, left)

    # ---------------------------------------------------------------- commands
    def command(self, topic, ident, payload, retained):
        """One message on <base>/<device_id>/<ident>/set (called by the MQTT client's
        reader: switches at once, publishing is left to run())."""
        self.stats["commands"] += 1
        i = self.find(ident)
        if retained:
            return self._reject(topic, "retained", "retained command ignored")
        if i < 0:
            return self._reject(topic, "unknown_actuator", "no relay or heater \"%s\"" % ident)
        if len(payload) > MAX_CMD:
            return self._reject(topic, "oversize", "%d bytes, at most %d" % (len(payload), MAX_CMD))
        if not valid_utf8(payload, 0, len(payload)):  # strict: MicroPython's str() takes
            return self._reject(topic, "not_utf8", "payload is not UTF-8")  # 0xF5.. leads
        text = str(payload, "utf-8")
        if len(text) != len(payload):  # non-ASCII: CPython's strip/upper/float take
            return self._reject(topic, "unknown_value", "commands are ASCII")  # U+00A0...
        it = self.items[i]
        if it[_KIND] == 1:
            t = text.strip().lower()
            if t not in FP_ORDERS:
                return self._reject(topic, "unknown_value",
                                    "expected one of %s" % ", ".join(FP_ORDERS))
            self.set_order(it, FP_ORDERS.index(t))
            it[_PUB] = True
            return
        cmd = parse_relay(text)
        if cmd is None:
            return self._reject(topic, "unknown_value",
                                "expected ON, OFF, TOGGLE, PULSE <seconds> or "
                                "{\"state\": ..., \"pulse_s\": ...}")
        on = cmd[0]
        if on == 2:
            on = 1 - it[_STATE]
        self.switch(it, on, cmd[1])
        it[_PUB] = True

    def _reject(self, topic, code, detail):
        self.stats["rejected"] += 1
        self.gw.log.warning("act", "%s: %s (%s)", topic, code, detail)
        errs = self.errors
        if len(errs) >= _MAX_ERRORS:
            errs.pop(0)
            self.stats["errors_dropped"] += 1
        errs.append([topic, code, detail])

    # ---------------------------------------------------------------- job
    def rediscover(self):
        self.disc = True
        for it in self.items:
            it[_PUB] = True

    def entities(self):
        """Home Assistant discovery: a switch per relay, a select per zone."""
        base = self.gw.base
        out = []
        for it in self.items:
            cmd = "%s/%s/set" % (base, it[_ID])
            if it[_KIND]:
                out.append(("select", it[_ID], {"command_topic": cmd, "options": list(FP_ORDERS),
                                                "icon": "mdi:radiator"}))
            else:
                out.append(("switch", it[_ID], {"command_topic": cmd, "payload_on": "ON",
                                                "payload_off": "OFF", "state_on": "ON",
                                                "state_off": "OFF"}))
        return out

    async def run(self):
        gw = self.gw
        base = gw.base
        while True:
            if hasattr(asyncio, "sleep_ms"):
                await asyncio.sleep_ms(_TICK_MS)
            else:
                await asyncio.sleep(_TICK_MS / 1000)
            self._deadlines()
            client = gw.client
            if not client.connected:
                continue
            n = client.stats.get("oversize", 0)
            if n != self._oversize:
                self._oversize = n
                self._reject(None, "oversize", "a message larger than the MQTT receive "
                             "buffer was dropped")
            if self.disc:
                from gw.devdisc import announce

                self.disc = not await announce(gw, self.entities())
            for it in self.items:
                if it[_PUB]:
                    it[_PUB] = False
                    s = FP_ORDERS[it[_STATE]] if it[_KIND] else ("ON" if it[_STATE] else "OFF")
                    if not await client.publish("%s/%s/state" % (base, it[_ID]), s, retain=True):
                        it[_PUB] = True
            while self.errors:
                e = self.errors.pop(0)
                await gw._publish_json(base + "/error", {"topic": e[0], "error": e[1],
                                                         "detail": e[2]})
