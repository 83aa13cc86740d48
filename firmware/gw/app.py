# gw/app.py - composition root: config -> hal -> drivers -> MQTT, under a supervisor
# MIT license.
#
# Gateway(cfg, secrets, hal).run():
#   1. validates the config, prints the boot report line
#        PASSERELLE BOOT {"version": ..., "board": ..., "free_heap": ..., "config": "ok"|"error",
#                         "errors": [...], "reset_cause": ..., "device_id": ...}
#      and returns False at once when the config has errors (main.py exits 78);
#   2. starts supervised jobs: network, mqtt (client.run), one tic driver and one state
#      publisher per meter, discovery;
#   3. runs the main loop: feeds the watchdog only while every job is healthy and the
#      broker was reachable within watchdog.offline_reset_s, publishes stats.
# Topics (base = <mqtt.base>/<device_id>):
#   base/status  "online" / "offline" (retained; "offline" is the will)
#   base/boot    the boot report + reset cause (retained, once per boot)
#   base/stats   counters and free heap (every stats_period_s, not retained)
#   base/<meter>/state  retained JSON of the meter (see gw/drivers/tic_meter.py)
import asyncio
import gc
import json
import os
import sys

from gw import VERSION
from gw.discovery import Discovery
from gw.log import Log
from gw.sched import Supervisor

_LOOP_MS = 1000
_NET_CHECK_S = 5
_CONFIG_EXIT = 78  # EX_CONFIG, used by main.py


def _unload(name):
    """Forget a module that is needed only at boot (gw.config: ~15 KB of heap on the
    64-bit unix port).  The next import loads it again."""
    sys.modules.pop(name, None)
    pkg, attr = name.rsplit(".", 1)
    parent = sys.modules.get(pkg)
    if parent is not None and attr in dir(parent):
        delattr(parent, attr)


def read_board_root(root="."):
    """Everything main.py needs from the board root -> (cfg, secrets, board, options, errors).

    config.json / secrets.json (gw.config.load), board.json (optional, from boards/<B>/)
    and the emulated board's options: env PASSERELLE_EMU (JSON), else <root>/emu.json.
    Never raises: problems are returned as messages for the boot report.
    """
    from gw import config

    def path(name):
        return name if root == "." else root + "/" + name

    cfg, secrets, errors = config.load(path("config.json"), path("secrets.json"))
    board = config.read_json(path("board.json"))[0]
    getenv = getattr(os, "getenv", None)
    text = getenv("PASSERELLE_EMU") if getenv is not None else None
    if text:
        where = "PASSERELLE_EMU"
        try:
            options = json.loads(text)
        except ValueError:
            options = {}
            errors.append(where + ": invalid JSON")
    else:
        where = path("emu.json")
        options, err = config.read_json(where)
        if err and not err.endswith("file not found"):
            errors.append(err)
    if options is not None and not isinstance(options, dict):
        errors.append(where + ": expected a JSON object")
        options = None
    return cfg, secrets, board if isinstance(board, dict) else None, options or {}, errors


class Gateway:
    def __init__(self, cfg, secrets, hal, errors=(), client_factory=None):
        self.hal = hal
        from gw import config

        board = hal.board if hal.board.get("pins") else None
        self.cfg, errs = config.validate(cfg, secrets, board)
        self.secrets = config.validate_secrets(secrets)[0]
        self.errors = list(errors) + errs
        config = None
        _unload("gw.config")
        self.log = Log(self.cfg["log_level"])
        self.disc = Discovery(self.cfg, hal.name, VERSION)
        self._client_factory = client_factory
        self.client = None
        self.sup = None
        self.wdt = None
        self.meters = []
        self._announced = {}
        self._disc_event = asyncio.Event()
        self._first_connect = True
        self._online_ms = None
        self._boot_ms = hal.ticks_ms()
        self._unhealthy_logged = False

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
        }

    # ------------------------------------------------------------------ run
    async def run(self):
        """Run forever; returns False immediately when the config is invalid."""
        report = json.dumps(self.boot_report())
        print("PASSERELLE BOOT " + report)
        if self.errors:
            for e in self.errors:
                self.log.error("config", e)
            return False
        cfg = self.cfg
        hal = self.hal
        if cfg["watchdog"]["timeout_s"]:
            self.wdt = hal.wdt(cfg["watchdog"]["timeout_s"] * 1000)
        self.sup = sup = Supervisor(hal, self.log)
        self.client = self._make_client()
        sup.spawn("net", self._network)
        sup.spawn("mqtt", self.client.run)
        from gw.drivers.tic_meter import TICMeter

        for mcfg in cfg["meters"]:
            m = TICMeter(mcfg, hal, self.log)
            self.meters.append(m)
            self._announced[m.id] = set()
            sup.spawn("tic/" + m.id, m.run)
            sup.spawn("pub/" + m.id, self._publisher_for(m))
        sup.spawn("discovery", self._discovery)
        if cfg["mqtt"]["discovery"]:
            await self.client.subscribe(cfg["mqtt"]["discovery_prefix"] + "/status")
        await self._main_loop()
        return True

    def _make_client(self):
        factory = self._client_factory
        if factory is None:
            from gw.mqtt.client import MQTTClient as factory
        m = self.cfg["mqtt"]
        s = self.secrets
        return factory(m["host"], m["port"], m["client_id"],
                       user=s["mqtt_username"] or None, password=s["mqtt_password"] or None,
                       keepalive=m["keepalive"],
                       will=(self.disc.status_topic(), "offline", True, 1),
                       on_message=self._on_message, on_connect=self._on_connect)

    async def _main_loop(self):
        hal = self.hal
        offline_ms = self.cfg["watchdog"]["offline_reset_s"] * 1000
        stats_ms = self.cfg["stats_period_s"] * 1000
        last_stats = hal.ticks_ms()
        while True:
            await asyncio.sleep(_LOOP_MS / 1000)
            now = hal.ticks_ms()
            if self.client.connected or self._online_ms is None:
                self._online_ms = now
            healthy = self.sup.healthy()
            if healthy and offline_ms and hal.ticks_diff(now, self._online_ms) > offline_ms:
                healthy = False
            if healthy:
                if self.wdt is not None:
                    self.wdt.feed()
                self._unhealthy_logged = False
            elif not self._unhealthy_logged:
                self._unhealthy_logged = True
                self.log.error("gw", "unhealthy (jobs %s, offline since %d ms): watchdog not fed",
                               self.sup.stats(), hal.ticks_diff(now, self._online_ms))
            if hal.ticks_diff(now, last_stats) >= stats_ms:
                last_stats = now
                try:
                    await self._publish_stats()
                except (OSError, MemoryError, ValueError) as e:
                    self.log.exception("gw", "stats not published", e)
                gc.collect()

    async def close(self):
        """Stop everything this gateway started (tests; a board just resets)."""
        if self.sup is not None:
            self.sup.cancel()
        if self.client is not None:
            try:
                await self.client.publish(self.disc.status_topic(), "offline", retain=True)
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
                self.log.info("net", "connecting (%s)", ncfg["type"])
                if await net.connect(ncfg, self.secrets, ncfg["timeout_s"] * 1000):
                    self.log.info("net", "up: %s", net.info())
                else:
                    self.log.warning("net", "no link after %d s", ncfg["timeout_s"])
            await asyncio.sleep(_NET_CHECK_S)

    async def _on_connect(self, client):
        # Runs inside the MQTT client after every (re)connection: keep it short, qos 0.
        await client.publish(self.disc.status_topic(), "online", retain=True)
        if self._first_connect:
            self._first_connect = False
            await client.publish(self.disc.base + "/boot", json.dumps(self.boot_report()),
                                 retain=True)
        self._rediscover()
        self.log.info("mqtt", "connected")

    def _on_message(self, topic, payload, retained):
        if (topic == self.cfg["mqtt"]["discovery_prefix"] + "/status"
                and bytes(payload) == b"online" and not retained):
            self.log.info("disc", "Home Assistant restarted: republishing discovery")
            self._rediscover()

    def _rediscover(self):
        for k in self._announced:
            self._announced[k] = set()
        for m in self.meters:
            m.changed = True  # republish state too (a broker restart loses retained data)
            m.updated.set()
        self._disc_event.set()

    async def _discovery(self):
        if not self.cfg["mqtt"]["discovery"]:
            return await asyncio.Event().wait()
        disc = self.disc
        labels = None
        while True:
            await self._disc_event.wait()
            self._disc_event.clear()
            for m in self.meters:
                if labels is None:
                    labels = m.tic.labels
                done = self._announced[m.id]
                for key in list(m.values):
                    if key in done or not self.client.connected:
                        continue
                    await self.client.publish(disc.topic(m.id, key),
                                              disc.payload(m.id, key, labels.info(key)),
                                              retain=True)
                    done.add(key)
                    await asyncio.sleep(0)

    def _publisher_for(self, meter):
        async def job():
            await self._publisher(meter)
        return job

    async def _publisher(self, meter):
        """State of one meter: on change (at most every min_interval_s) and at least every
        period_s while frames arrive; stale values are not republished."""
        hal = self.hal
        period = meter.cfg["period_s"] * 1000
        min_iv = meter.cfg["min_interval_s"] * 1000
        topic = self.disc.state_topic(meter.id)
        last = None
        while True:
            wait = period if last is None else max(0, period - hal.ticks_diff(hal.ticks_ms(), last))
            try:
                await asyncio.wait_for(meter.updated.wait(), wait / 1000)
            except asyncio.TimeoutError:
                pass
            meter.updated.clear()
            if meter.new_keys:
                meter.new_keys = []
                self._disc_event.set()
            if meter.stats["frames"] < 2 or meter.last_frame_ms is None:
                continue  # indexes need a confirming frame: publish complete states only
            now = hal.ticks_ms()
            since = None if last is None else hal.ticks_diff(now, last)
            alive = hal.ticks_diff(now, meter.last_frame_ms) < period
            if since is not None and since < period and meter.changed and since < min_iv:
                await asyncio.sleep((min_iv - since) / 1000)
                meter.updated.set()
                continue
            if since is None or meter.changed or (alive and since >= period):
                meter.changed = False
                await self.client.publish(topic, meter.state_json(), retain=True)
                last = now

    async def _publish_stats(self):
        if not self.client.connected:
            return
        gc.collect()
        meters = {}
        for m in self.meters:
            s = dict(m.stats)
            s["decoder"] = m.decoder_stats()
            s["mode"] = m.mode
            s["baudrate"] = m.baudrate
            meters[m.id] = s
        doc = {
            "uptime_s": self.hal.ticks_diff(self.hal.ticks_ms(), self._boot_ms) // 1000,
            "free_heap": gc.mem_free(),
            "restarts": self.sup.stats(),
            "mqtt": self.client.stats,
            "meters": meters,
        }
        await self.client.publish(self.disc.base + "/stats", json.dumps(doc))
