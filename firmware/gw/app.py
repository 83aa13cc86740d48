# gw/app.py - composition root: config -> hal -> drivers -> MQTT, under a supervisor
# MIT license.
#
# Gateway(cfg, secrets, hal).run():
#   1. validates the config (gw.config, dropped from memory afterwards), prints the
#      boot report line
#        PASSERELLE BOOT {"version": ..., "board": ..., "free_heap": ..., "config": "ok"|"error",
#                         "errors": [...], "reset_cause": ..., "device_id": ...}
#      and returns False at once when the config has errors (main.py exits 78);
#   2. starts supervised jobs: network, mqtt (client.run), per meter one tic driver and
#      one publisher (discovery of its new keys, then its state);
#   3. runs the main loop: feeds the watchdog only while every job is healthy and the
#      broker was reachable within watchdog.offline_reset_s, publishes stats.
# Topics (base = <mqtt.base>/<device_id>):
#   base/status  "online" / "offline" (retained; "offline" is the will)
#   base/boot    the boot report + reset cause (retained, once per boot)
#   base/stats   counters and free heap (every stats_period_s, not retained)
#   base/<meter>/state  retained JSON of the meter (see gw/drivers/tic_meter.py), plus
#                       "seq" (per meter, monotonic across reboots) and "ts" (epoch s),
#                       sent QoS 1 through the outbox (gw/outbox.py: kept while offline)
#   base/safe_mode      retained while in safe mode (deleted at a normal boot)
#
# Safe mode (gw/safe.py, boot-only): the NVS counts consecutive abnormal resets (watchdog,
# panic) that came within _SAFE_CLEAR_MS of boot; at 3 the gateway boots without
# drivers (network + MQTT only, so it can be reached and reflashed).  The count is
# cleared after _SAFE_CLEAR_MS of healthy uptime.
#
# Memory (a 64 KB board): boot-only code (gw.config) and discovery (gw.discovery) are
# imported when needed and dropped from sys.modules afterwards; the MQTT client gets
# small receive buffers (the gateway only receives acks and homeassistant/status).
import asyncio
import gc
import io
import json
import os
import sys

from gw import VERSION
from gw.log import Log
from gw.sched import Supervisor
from protocols.compat import const, pick

_LOOP_MS = const(1000)
_NET_CHECK_S = const(5)
_MQTT_RX = const(256)  # receive buffer and largest packet kept whole (bigger: counted, dropped)
_GC_EVERY = const(4096)  # bytes allocated between two collections (see run())
_OUT_SIZE = const(1536)  # JSON output buffer: the biggest real state is ~1.1 KB; grows if needed
_SAFE_CLEAR_MS = const(60000)
_SEQ_BLOCK = const(1024)  # seq numbers per NVS write (see firmware/README.md wear budget)
_BACKOFF_MAX_MS = const(3000)  # reconnect delay cap (1.5-3 s with jitter): back within 5 s
_PERIOD_SLACK_MS = const(500)  # a reading polled every period_s lands a few ms either side
_ACK_GRACE_MS = const(1000)  # a PUBACK takes ms: a state waits that long for it (_publisher)
_HOLD_MS = const(20)  # how often a state held by _ACK_GRACE_MS looks again
# log messages and strings used once: one table, not a heap object per string
# (protocols.compat.pick)
_MSG = ("safe mode: %d abnormal resets in a row; no driver started|"
        "healthy for a minute: reset count cleared|"
        "unhealthy (jobs %s, offline since %d ms): watchdog not fed|stats not published|"
        "connecting (%s)|clock not set: ts is the uptime|no link after %d s|"
        "%d fil pilote zone(s) set to hors-gel|"
        "Home Assistant restarted: republishing discovery|no memory for the outbox: seq %d lost|"
        "gw.config_devices|gw.config_modbus|gw.discovery|PASSERELLE BOOT |discovery_prefix|"
        "mqtt_username|mqtt_password|offline_reset_s|stats_period_s|min_interval_s|"
        "offline_interval_s|%s/%s/state")
_M_SAFE = const(0)
_M_HEALTHY = const(1)
_M_UNHEALTHY = const(2)
_M_NO_STATS = const(3)
_M_CONNECTING = const(4)
_M_NO_CLOCK = const(5)
_M_NO_LINK = const(6)
_M_HORS_GEL = const(7)
_M_HA_RESTART = const(8)
_M_NO_OUTBOX = const(9)
_S_CONFIG_DEVICES = const(10)  # and strings used once (at boot, once per meter, per announce)
_S_CONFIG_MODBUS = const(11)
_S_DISCOVERY = const(12)
_S_BOOT = const(13)
_S_DISC_PREFIX = const(14)
_S_USER = const(15)
_S_PASSWORD = const(16)
_S_OFFLINE_RESET = const(17)
_S_STATS_PERIOD = const(18)
_S_MIN_INTERVAL = const(19)
_S_OFFLINE_INTERVAL = const(20)
_S_STATE = const(21)


def _unload(name):
    """Forget a module that is not needed in steady state (gw.config ~15 KB, gw.discovery
    ~1 KB of heap on the 64-bit unix port from ROMFS).  The next import loads it again."""
    sys.modules.pop(name, None)
    pkg, attr = name.rsplit(".", 1)
    parent = sys.modules.get(pkg)
    if parent is not None and attr in dir(parent):
        delattr(parent, attr)


class _Out(io.IOBase):
    """The reusable buffer json.dump() writes into: a publish then allocates no JSON
    string nor its UTF-8 copy (two ~1 KB blocks per state), only the MQTT packet."""

    def __init__(self, size):
        self.buf = bytearray(size)
        self.n = 0

    def write(self, b):
        if isinstance(b, str):  # CPython's json writes str chunks
            b = b.encode()
        k = len(b)
        self.buf[self.n:self.n + k] = b  # past the end: the bytearray grows
        self.n += k
        return k


class Gateway:
    def __init__(self, cfg, secrets, hal, errors=(), client_factory=None):
        self.hal = hal
        from gw import config

        b = hal.board
        self.cfg, errs = config.validate(cfg, secrets, b if b.get("pins") else None)
        # the HAL reads only these at run time; the pin lists (~2 KB of heap) were for the
        # checks above
        hal.board = {k: b[k] for k in ("id", "uarts", "ethernet") if k in b}
        b = None
        self.secrets = config.validate_secrets(secrets)[0]
        self.errors = list(errors) + errs
        config = None
        _unload("gw.config")
        _unload(pick(_MSG, _S_CONFIG_DEVICES))
        _unload(pick(_MSG, _S_CONFIG_MODBUS))
        self.log = Log(self.cfg["log_level"])
        self.base = "%s/%s" % (self.cfg["mqtt"]["base"], self.cfg["device_id"])
        self._client_factory = client_factory
        self.client = self.sup = self.wdt = self.boot = None
        self.meters = []
        self.devs = []  # relays + heaters (gw.actuators), S0 counters, DS18B20 sensors
        self.act = None  # the gw.actuators.Actuators in devs, which takes <base>/+/set
        self._out = self._out_lock = None  # JSON buffer, shared by every publisher
        self._online_ms = None  # last time the broker was reachable
        self._boot_ms = hal.ticks_ms()
        self.outbox = None  # gw.outbox.Outbox while states wait (link down, or left on flash)
        self._obs = None  # its counters, kept from outage to outage
        self.safe_mode = False
        self._resets = 0  # abnormal resets in a row (NVS), cleared after a healthy minute
        self._seq = None  # {meter id: [next seq, reserved in the NVS up to, pid in flight]}
        self._lag = 0  # the main loop's longest late wake-up since the last stats (ms)

    # ------------------------------------------------------------------ boot report
    def boot_report(self):
        gc.collect()
        return {
            "version": VERSION,
            "board": self.hal.name,
            "free_heap": gc.mem_free(),
            "config": "error" if self.errors else "ok",
            "errors": self.errors,
            "reset_cause": self.hal.reset_cause(),
            "device_id": self.cfg["device_id"],
            "safe_mode": self.safe_mode,
        }

    # ------------------------------------------------------------------ run
    async def run(self):
        """Run forever; returns False immediately when the config is invalid."""
        try:
            return await self._run()
        except Exception:
            # out of the gateway: main.py resets the board; the next boot counts it as
            # an abnormal reset (gw.safe), so that a crash loop ends in safe mode
            try:
                nvs = self.hal.nvs(("g" + self.cfg["device_id"])[:15])
                nvs.set("crashed", 1)
                nvs.commit()
            except OSError:
                pass
            raise

    async def _run(self):
        if not self.errors:
            from gw import safe  # boot-only: NVS reset counter, safe mode, seq blocks

            safe.boot(self, _SEQ_BLOCK)
            safe = None
            _unload("gw.safe")
        self.boot = json.dumps(self.boot_report())  # also published once connected
        print(pick(_MSG, _S_BOOT) + self.boot)
        if self.errors:
            for e in self.errors:
                self.log.error("config", e)
            await self._safe_heaters()
            return False
        self.errors = None
        cfg = self.cfg
        hal = self.hal
        if cfg["watchdog"]["timeout_s"]:
            self.wdt = hal.wdt(cfg["watchdog"]["timeout_s"] * 1000)
        # the big long-lived blocks first: JSON buffer, meters (decoder tables, buffer)
        self._out = _Out(_OUT_SIZE)
        self._out_lock = asyncio.Lock()
        if self.safe_mode:
            self.log.error("gw", pick(_MSG, _M_SAFE),
                           self._resets)
        buses = {}  # uart -> ModbusBus, shared by the Modbus meters wired to it
        for mcfg in cfg["meters"]:
            self.meters.append(self._meter(mcfg, buses))
        self.client = self._make_client()
        self.sup = sup = Supervisor(hal, self.log)
        sup.spawn("net", self._network)
        sup.spawn("mqtt", self.client.run)
        if self.meters:
            try:
                if os.listdir(self.hal.data_dir + "/" + self.cfg["device_id"] + "/outbox"):
                    from gw import outbox  # states left on flash by an earlier run

                    outbox.open_for(self)
            except OSError:
                pass
        for m in self.meters:
            sup.spawn(m.cfg["type"] + "/" + m.id, m.run)
            sup.spawn("pub/" + m.id, self._publisher, m)
        self._devices()
        for d in self.devs:
            sup.spawn(d.__class__.__name__.lower(), d.run)
        if self.act is not None:
            await self.client.subscribe(self.base + "/+/set", 1)
        if cfg["mqtt"]["discovery"]:
            await self.client.subscribe(cfg["mqtt"][pick(_MSG, _S_DISC_PREFIX)] + "/status")
        gc.collect()
        if hasattr(gc, "threshold"):
            # Collect after every few KB allocated instead of only when the heap is full:
            # garbage is then freed before it interleaves with long-lived objects, so a
            # 1 KB state packet still finds a contiguous block in a small, busy heap
            # (measured: the same gateway needs ~15 KB less heap).  ~2 ms per collection
            # on an ESP32, a few per second at most.
            gc.threshold(_GC_EVERY)
        await self._main_loop()
        return True

    def _meter(self, mcfg, buses):
        """The driver of a meter config; only the drivers the config uses are imported."""
        if mcfg["type"] == "modbus":
            from gw.drivers.modbus_meter import ModbusMeter

            bus = buses.get(mcfg["uart"])
            if bus is None:
                from gw.drivers.modbus_bus import ModbusBus

                bus = buses[mcfg["uart"]] = ModbusBus(mcfg, self.hal, self.log)
            return ModbusMeter(mcfg, self.hal, self.log, bus)
        from gw.drivers.tic_meter import TICMeter

        return TICMeter(mcfg, self.hal, self.log)

    def _make_client(self):
        factory = self._client_factory
        m = self.cfg["mqtt"]
        s = self.secrets
        kw = {}
        if factory is None:
            from gw.mqtt.client import MQTTClient as factory
            kw = {"max_packet": _MQTT_RX, "rx_size": _MQTT_RX, "backoff_max_ms": _BACKOFF_MAX_MS}
        return factory(m["host"], m["port"], m["client_id"],
                       user=s[pick(_MSG, _S_USER)] or None,
                       password=s[pick(_MSG, _S_PASSWORD)] or None,
                       keepalive=m["keepalive"], will=(self.base + "/status", "offline", True, 1),
                       on_message=self._on_message, on_connect=self._on_connect, **kw)

    async def _main_loop(self):
        hal = self.hal
        offline_ms = self.cfg["watchdog"][pick(_MSG, _S_OFFLINE_RESET)] * 1000
        stats_ms = self.cfg[pick(_MSG, _S_STATS_PERIOD)] * 1000
        last_stats = hal.ticks_ms()
        logged = False  # "unhealthy" already said
        while True:
            t0 = hal.ticks_ms()
            await asyncio.sleep(_LOOP_MS / 1000)
            now = hal.ticks_ms()
            lag = hal.ticks_diff(now, t0) - _LOOP_MS  # how long something held the loop
            if lag > self._lag:
                self._lag = lag
            if self.client.connected or self._online_ms is None:
                self._online_ms = now
            healthy = self.sup.healthy()
            if healthy and offline_ms and hal.ticks_diff(now, self._online_ms) > offline_ms:
                healthy = False
            ob = self.outbox
            if ob is not None and ob.task is None:  # the drain task ended on an error
                ob.start(self)
            if healthy:
                if self.wdt is not None:
                    self.wdt.feed()
                logged = False
                if self._resets and hal.ticks_diff(now, self._boot_ms) >= _SAFE_CLEAR_MS:
                    self._resets = 0  # also when the NVS fails: not retried every second
                    try:
                        nvs = hal.nvs(("g" + self.cfg["device_id"])[:15])
                        nvs.set("resets", 0)
                        nvs.commit()
                        self.log.info("gw", pick(_MSG, _M_HEALTHY))
                    except OSError as e:
                        self.log.exception("gw", "nvs", e)
            elif not logged:
                logged = True
                if self.outbox is not None:  # the board resets soon: RAM is lost
                    self.outbox.flush()
                self.log.error("gw", pick(_MSG, _M_UNHEALTHY),
                               self.sup.stats(), hal.ticks_diff(now, self._online_ms))
            if hal.ticks_diff(now, last_stats) >= stats_ms:
                last_stats = now
                try:
                    await self._publish_stats()
                except (OSError, MemoryError, ValueError) as e:
                    self.log.exception("gw", pick(_MSG, _M_NO_STATS), e)

    async def close(self):
        """Stop everything this gateway started (tests; a board just resets)."""
        if self.sup is not None:
            self.sup.cancel()
        self.shutdown()
        if self.client is not None:
            try:
                await self.client.publish(self.base + "/status", "offline", retain=True)
                await self.client.close()
            except OSError:
                pass
        self.hal.close()

    # ------------------------------------------------------------------ jobs
    async def _network(self):
        net = self.hal.net
        ncfg = self.cfg["network"]
        while True:
            if not net.isconnected():
                self.log.info("net", pick(_MSG, _M_CONNECTING), ncfg["type"])
                if await net.connect(ncfg, self.secrets, ncfg["timeout_s"] * 1000):
                    self.log.info("net", "up: %s", net.info())
                    sync = getattr(self.hal, "sync_time", None)  # ESP32: SNTP for "ts"
                    if sync is not None and not await sync():
                        self.log.warning("net", pick(_MSG, _M_NO_CLOCK))
                else:
                    self.log.warning("net", pick(_MSG, _M_NO_LINK), ncfg["timeout_s"])
            await asyncio.sleep(_NET_CHECK_S)

    async def _on_connect(self, client):
        # Runs inside the MQTT client after every (re)connection: keep it short, qos 0.
        await client.publish(self.base + "/status", "online", retain=True)
        if self.boot is not None:
            await client.publish(self.base + "/boot", self.boot, retain=True)
            self.boot = None
            # retained while in safe mode; an empty retained message deletes it
            await client.publish(self.base + "/safe_mode", json.dumps(
                {"safe_mode": True, "abnormal_resets": self._resets,
                 "reset_cause": self.hal.reset_cause()}) if self.safe_mode else "", retain=True)
        self._rediscover()
        self.log.info("mqtt", "connected")

    def _devices(self):
        """Relays/heaters, S0 counters, DS18B20s: only the drivers the config uses are
        imported (fil pilote zones go to hors-gel first, see gw/actuators.py)."""
        cfg = self.cfg
        if cfg["relays"] or cfg["heaters"]:
            from gw.actuators import Actuators

            self.act = Actuators(self)
            self.devs.append(self.act)
        if cfg["counters"]:
            from gw.drivers.s0 import Counters

            self.devs.append(Counters(self))
        if cfg["sensors"]:
            from gw.drivers.ds18b20 import Sensors

            self.devs.append(Sensors(self))

    async def _safe_heaters(self):
        """Config unusable: every fil pilote zone whose two GPIOs are still valid in
        the (partly defaulted) config is driven to hors-gel before the gateway stops."""
        n = 0
        for h in self.cfg.get("heaters") or ():
            a, b = h.get("pin_pos"), h.get("pin_neg")
            if isinstance(a, int) and isinstance(b, int) and a != b:
                inv = 1 if h.get("invert") is True else 0
                self.hal.pin(a, 1, value=inv)
                self.hal.pin(b, 1, value=1 - inv)
                n += 1
        if n:
            self.log.warning("config", pick(_MSG, _M_HORS_GEL), n)
            await self.hal.flush_io(2000)

    def shutdown(self):
        """Clean shutdown (Ctrl-C, close()): persist what is kept only in RAM (S0 counts)."""
        for d in self.devs:
            save = getattr(d, "save", None)
            if save is not None:
                try:
                    save()
                except OSError as e:
                    self.log.exception("gw", "not saved", e)

    def _on_message(self, topic, payload, retained):
        if retained and topic.endswith("/state"):  # S0 counters read back their total
            for d in self.devs:
                if hasattr(d, "adopt"):
                    d.adopt(topic, payload, retained)
            return
        act = self.act
        if act is not None and topic.endswith("/set") and topic.startswith(self.base + "/"):
            act.command(topic, topic[len(self.base) + 1:-4], payload, retained)
            return
        if (topic == self.cfg["mqtt"][pick(_MSG, _S_DISC_PREFIX)] + "/status"
                and bytes(payload) == b"online" and not retained):
            self.log.info("disc", pick(_MSG, _M_HA_RESTART))
            self._rediscover()

    def _rediscover(self):
        """Announce every key again and republish every state (a broker or Home Assistant
        restart may have lost the retained copies)."""
        for m in self.meters:
            # new_keys: indexes of keys (m.key_at, None past the last), a byte each
            m.new_keys[:] = bytes(i for i in range(255) if m.key_at(i) in m.values)
            m.changed = True
            m.updated.set()
        for d in self.devs:
            d.rediscover()

    async def _announce(self, meter):
        """Publish the discovery config of the meter's keys not announced yet."""
        keys = meter.new_keys  # indexes (meter.key_at), a byte each
        if not self.cfg["mqtt"]["discovery"]:
            keys[:] = b""
            return
        client = self.client
        if not client.connected:
            return  # kept: announced once connected (and again after every connection)
        from gw.discovery import Discovery

        disc = Discovery(self.cfg, self.hal.name, VERSION)
        info = meter.info if hasattr(meter, "info") else meter.tic.labels.info
        lock = self._out_lock
        out = self._out
        try:
            while keys and client.connected:
                key = meter.key_at(keys[0])
                gc.collect()  # the previous entity's garbage, before it fragments the heap
                if lock.locked():  # another task's JSON is in _out: let it finish
                    await lock.acquire()
                    lock.release()
                # nothing awaits from here to the write: _out is ours, and no coroutine
                # per entity (150-270 B blocks a fragmented 96K heap often lacks)
                for sq in (self._seq or {}).values():  # a state lent from _out: copied
                    client.in_flight(sq[2], True)
                out.n = 0
                disc.dump(out, (meter.id, key, info(key)))
                n = client.publish_now(disc.topic(meter.id, key),
                                       memoryview(out.buf)[:out.n], True)
                if n is None:
                    break
                keys[0:1] = b""
                await (client.flush() if n else asyncio.sleep(0))  # frames go on meanwhile
        finally:
            disc = Discovery = None
            _unload(pick(_MSG, _S_DISCOVERY))
            gc.collect()

    async def _publisher(self, meter):
        """Discovery of new keys, then the state of one meter; woken by every frame.
        State: on change at most every min_interval_s, at least every period_s while
        frames arrive (so stale values are never republished), complete states only."""
        hal = self.hal
        period = meter.cfg["period_s"] * 1000
        min_iv = meter.cfg[pick(_MSG, _S_MIN_INTERVAL)] * 1000
        off_iv = self.cfg["outbox"][pick(_MSG, _S_OFFLINE_INTERVAL)] * 1000
        topic = (pick(_MSG, _S_STATE) % (self.base, meter.id)).encode()
        client = self.client
        seq = self._seq[meter.id]  # kept here: a restarted publisher goes on counting
        last = None
        while True:
            await meter.updated.wait()
            meter.updated.clear()
            if meter.new_keys:
                await self._announce(meter)
            if meter.stats["frames"] < getattr(meter, "min_frames", 2):
                continue  # indexes need a confirming frame: publish complete states only
            now = hal.ticks_ms()
            since = None if last is None else hal.ticks_diff(now, last)
            if since is None:
                due = True
            elif off_iv and not client.connected:  # buffered: one state per off_iv
                due = since >= off_iv
            else:
                due = since >= period - _PERIOD_SLACK_MS or (meter.changed and since >= min_iv)
            if due and since is not None and since < _ACK_GRACE_MS and client.connected \
                    and self.outbox is None and client.in_flight(seq[2]):
                # the previous state still awaits its PUBACK (a busy loop reads it late):
                # this one waits (no seq used; newer frames still update the values)
                # instead of opening the outbox (its module and ring, ~2 KB); overdue (a
                # half-open link): it goes to the outbox, see _queue_state
                meter.updated.set()
                await asyncio.sleep(_HOLD_MS / 1000)
                continue
            if due:
                meter.changed = False
                last = now
                n = seq[0]
                if n >= seq[1]:  # block used up: reserve the next one before using it
                    try:
                        nvs = hal.nvs(("g" + self.cfg["device_id"])[:15])
                        nvs.set("q" + meter.id[:14], n + _SEQ_BLOCK)
                        nvs.commit()
                        seq[1] = n + _SEQ_BLOCK
                    except OSError as e:  # retried at the next state
                        self.log.exception("out", "nvs", e)
                seq[0] = n + 1
                await self._queue_state(topic, meter.values, n, seq)

    async def _queue_state(self, topic, obj, seq, sq):
        """JSON of ``obj`` + "seq" + "ts": sent at once (QoS 1) when the link is up and
        nothing waits, else into the outbox (sent in order by gw.outbox.drain); online,
        _publisher first holds a state while the previous one's PUBACK is not overdue."""
        async with self._out_lock:
            for q in self._seq.values():  # see _publish_json (q: not sq, this meter's)
                self.client.in_flight(q[2], True)
            out = self._out
            out.n = 0
            json.dump(obj, out)
            out.n -= 1  # the closing brace
            out.write((', "seq": %d, "ts": %d}' if out.n > 1 else '"seq": %d, "ts": %d}')
                      % (seq, self.hal.time()))
            payload = memoryview(out.buf)[:out.n]
            self.log.debug("out", "%s seq %d", topic, seq)
            c = self.client
            # (this meter's previous state acknowledged: a half-open link holds one
            # state per meter, not a heap of them; the outbox takes the rest)
            if self.outbox is None and c.connected and not c.in_flight(sq[2]):
                # the payload stays in _out (no ~1 KB packet per state) until its PUBACK
                # or until _out is needed again (then copied, see _publish_json)
                sq[2] = await c.enqueue(topic, payload, True, True)
                return
            ob = self.outbox
            try:
                if ob is None:
                    from gw import outbox

                    ob = outbox.open_for(self)
                ob.put(topic, payload, True)
            except MemoryError:  # no room for the outbox (or its flash write) now: lost
                self.log.error("out", pick(_MSG, _M_NO_OUTBOX), seq)

    async def _publish_json(self, topic, obj, retain=False):
        """Publish ``obj`` as JSON (the same text as json.dumps) from the shared buffer
        (discovery entities go out by _announce, without this coroutine)."""
        async with self._out_lock:
            # a state still in flight from _out (lent to the client, see _queue_state):
            # its PUBACK is awaited a little (ms, unless the loop is busy), then it is
            # copied out (a ~1 KB block, which a busy small heap may lack)
            c = self.client
            for sq in (self._seq or {}).values():
                t = 0
                while t < _ACK_GRACE_MS and c.connected and c.in_flight(sq[2]):
                    await asyncio.sleep(_HOLD_MS / 1000)
                    t += _HOLD_MS
                c.in_flight(sq[2], True)
            out = self._out
            out.n = 0
            json.dump(obj, out)
            return await self.client.publish(topic, memoryview(out.buf)[:out.n], retain=retain)

    def _dev_stats(self):
        out = {}
        for d in self.devs:
            s = d.stats
            out[d.__class__.__name__.lower()] = s() if callable(s) else s
        return out

    async def _publish_stats(self):
        if not self.client.connected:
            return
        meters = {}
        for m in self.meters:
            s = dict(m.stats)
            s["decoder"] = m.decoder_stats()
            s["mode"] = m.mode
            s["baudrate"] = m.baudrate
            meters[m.id] = s
        gc.collect()
        await self._publish_json(self.base + "/stats", {
            "uptime_s": self.hal.ticks_diff(self.hal.ticks_ms(), self._boot_ms) // 1000,
            "loop_lag_ms": self._lag,
            "free_heap": gc.mem_free(),
            "restarts": self.sup.stats(),
            "mqtt": self.client.stats,
            "outbox": self._obs,
            "meters": meters,
            "devices": self._dev_stats(),
        })
        self._lag = 0
