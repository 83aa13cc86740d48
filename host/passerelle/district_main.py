# district_main.py - many gateways in one MicroPython unix-port process (passerelle district).
# MIT license.  Copied next to the .mpy build of firmware/ + protocols/ and run as
#   micropython -X heapsize=<H> district_main.py '<json config>'
# The firmware has no global state, so every gateway is an unmodified gw.app.Gateway with
# its own config, MQTT connection and meter; only the hardware differs: each gateway's
# TIC UART is an in-process FeedUART that a single feeder task fills with one standard
# three-phase frame per second per gateway (spread over the second), built once from a
# template and patched in place: EAST = the frame's sequence number (the subscriber counts
# gaps), PRM = the wall-clock time in ms when the frame is handed to the UART (the
# subscriber's latency origin).  Only those two groups and their checksums change.
#
# Collections: each Gateway calls gc.collect() at boot and around its stats; with hundreds
# of gateways in one heap that is hundreds of full collections, so gw.app sees a `gc` whose
# collect() does nothing and the process collects on its own schedule (threshold).
#
# Output lines: "DISTRICT READY n" once the gateways are connected, then "DISTRICT STATS
# {json}" after cfg["duration"] seconds of feeding; then the process ends.
import asyncio
import gc
import json
import sys
import time

from protocols.tic import STANDARD, encode_frame

cfg = json.loads(sys.argv[1])


class FeedUART:
    """One TIC line fed in-process: readinto() waits for the next pushed frame."""

    def __init__(self):
        self.id = 1
        self.baudrate = 9600
        self.frame = None  # the gateway's own bytearray frame
        self.pos = 0
        self.end = 0
        self.ev = asyncio.Event()
        self.overrun = 0

    async def readinto(self, buf):
        while self.pos >= self.end:
            self.ev.clear()
            await self.ev.wait()
        n = min(len(buf), self.end - self.pos)
        buf[:n] = memoryview(self.frame)[self.pos:self.pos + n]
        self.pos += n
        return n

    def push(self, frame):
        if self.pos < self.end:
            self.overrun += 1  # the gateway has not read the previous frame: replaced
        self.frame = frame
        self.pos = 0
        self.end = len(frame)
        self.ev.set()

    def set_baudrate(self, b):
        pass

    def close(self):
        pass


def _groups():
    g = [("ADSC", "041776199277", None), ("VTIC", "02", None),
         ("DATE", "", "H250115215500"), ("NGTF", "     TEMPO      ", None),
         ("LTARF", "    HP  BLEU    ", None), ("EAST", "000000000", None)]
    for k in range(1, 11):
        g.append(("EASF%02d" % k, "%09d" % (706363 * k), None))
    for k in range(1, 5):
        g.append(("EASD%02d" % k, "%09d" % (1849107 * k), None))
    g += [("IRMS1", "004", None), ("IRMS2", "003", None), ("IRMS3", "002", None),
          ("URMS1", "231", None), ("URMS2", "232", None), ("URMS3", "230", None),
          ("PREF", "12", None), ("PCOUP", "12", None), ("SINSTS", "02000", None),
          ("SINSTS1", "00900", None), ("SINSTS2", "00700", None), ("SINSTS3", "00400", None),
          ("SMAXSN", "05062", "H250115075148"), ("SMAXSN1", "03411", "H250115175135"),
          ("SMAXSN2", "01712", "H250115072652"), ("SMAXSN3", "01599", "H250115075151"),
          ("SMAXSN-1", "05340", "H250114101142"), ("CCASN", "01650", "H250115213000"),
          ("UMOY1", "233", "H250115215000"), ("UMOY2", "234", "H250115215000"),
          ("UMOY3", "232", "H250115215000"), ("STGE", "013A0401", None),
          ("MSG1", "PAS DE          MESSAGE         ", None),
          ("PRM", "00000000000000", None), ("RELAIS", "000", None), ("NTARF", "02", None),
          ("NJOURF", "00", None), ("NJOURF+1", "00", None),
          ("PJOURF+1", "00004001 06004002 22004001 NONUTILE NONUTILE NONUTILE NONUTILE"
                       " NONUTILE NONUTILE NONUTILE NONUTILE", None)]
    return g


def _field(tpl, label):
    """(group start, value start, value length, checksum offset) of ``label``."""
    start = tpl.find(b"\n" + label + b"\t") + 1
    v = start + len(label) + 1
    end = tpl.find(b"\t", v)
    return start, v, end - v, end + 1


class Frames:
    """The frame template and the in-place patch of EAST (sequence) and PRM (time)."""

    def __init__(self):
        self.tpl = encode_frame(_groups(), STANDARD)
        self.east = _field(self.tpl, b"EAST")
        self.prm = _field(self.tpl, b"PRM")

    def new(self):
        return bytearray(self.tpl)

    @staticmethod
    def _put(fr, field, value):
        start, v, n, ck = field
        fr[v:v + n] = (("%0" + str(n) + "d") % value).encode()
        t = 0
        for i in range(start, ck):
            t += fr[i]
        fr[ck] = (t & 0x3F) + 0x20

    def patch(self, fr, seq, ms):
        self._put(fr, self.east, seq)
        self._put(fr, self.prm, ms)


class _GC:
    """What gw.app sees as `gc` in the district (see the header)."""

    @staticmethod
    def collect():
        pass

    mem_free = staticmethod(gc.mem_free)
    mem_alloc = staticmethod(gc.mem_alloc)

    @staticmethod
    def threshold(*a):
        pass


async def main():
    import hal.unix as hal_unix
    from gw import app

    app.gc = _GC

    class DistrictHal(hal_unix.Hal):
        def __init__(self, board, options):
            super().__init__(board, options)
            self.feed = FeedUART()

        async def uart(self, uart_id, baudrate, rx=None, invert=False, *a, **kw):
            return self.feed

    frames = Frames()
    n = cfg["count"]
    first = cfg["first"]
    gws = []
    for i in range(first, first + n):
        gcfg = {"device_id": "gw%05d" % i, "log_level": "warning", "stats_period_s": 3600,
                "mqtt": {"host": cfg["host"], "port": cfg["port"], "base": cfg["base"],
                         "discovery": False, "keepalive": 60},
                "network": {"type": "none"}, "watchdog": {"timeout_s": 0, "offline_reset_s": 0},
                "meters": [{"id": "linky", "type": "tic", "mode": "standard", "uart": 1,
                            "period_s": 3600, "min_interval_s": 0}]}
        h = DistrictHal({"id": "emu"}, {"root": cfg.get("root", ".")})  # NVS, outbox files
        g = app.Gateway(gcfg, {}, h, [])
        gws.append((g, h.feed, frames.new()))
    gc.collect()
    tasks = []
    for g, _, _ in gws:
        tasks.append(asyncio.create_task(g.run()))
        await asyncio.sleep(cfg.get("start_gap_s", 0.002))
    # all connected?
    t0 = time.time()
    while time.time() - t0 < cfg.get("connect_timeout_s", 60):
        up = sum(1 for g, _, _ in gws if g.client is not None and g.client.connected)
        if up == n:
            break
        await asyncio.sleep(0.2)
    gc.collect()
    if cfg.get("gc_threshold"):
        gc.threshold(cfg["gc_threshold"])
    print("DISTRICT READY %d" % up)
    period = 1.0 / cfg.get("rate", 1.0)
    seq = 1000
    t_end = time.time() + cfg["duration"]
    fed = 0
    late_ms = 0
    while time.time() < t_end:
        tick = time.time()
        seq += 1
        for k in range(n):
            g, feed, fr = gws[k]
            due = tick + period * k / n
            d = due - time.time()
            if d > 0.002:
                await asyncio.sleep(d)
            frames.patch(fr, seq, time.time_ns() // 1000000)
            feed.push(fr)
            fed += 1
        rest = tick + period - time.time()
        if rest > 0:
            await asyncio.sleep(rest)
        else:
            late_ms = max(late_ms, int(-rest * 1000))
    await asyncio.sleep(1.0)
    st = {"gateways": n, "connected": up, "frames_fed": fed,
          "overruns": sum(f.overrun for _, f, _ in gws), "feeder_late_ms_max": late_ms,
          "frames_decoded": sum(g.meters[0].stats["frames"] for g, _, _ in gws if g.meters),
          "mqtt_dropped": sum(g.client.stats.get("dropped_qos0", 0) for g, _, _ in gws
                              if g.client is not None),
          "mem_free": gc.mem_free(), "mem_alloc": gc.mem_alloc()}
    print("DISTRICT STATS " + json.dumps(st))
    # no per-gateway close: the process ends here and the OS closes the sockets (the
    # broker publishes the gateways' wills), as when a district of boards loses power


asyncio.run(main())
