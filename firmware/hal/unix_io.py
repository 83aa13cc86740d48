# hal/unix_io.py - the emulated board's I/O link: pins and 1-Wire sensors seen from the host
# MIT license.  Imported by hal.unix only when the options have "io": <port>.
#
# The board is a TCP client of the host's I/O server (host/passerelle/emu_io.py) at
# <host>:<io>; one JSON object per line each way (protocol in firmware/README.md):
#   board -> host  {"hello": <board>, "out": {"<gpio>": 0|1, ...}, "in": [<gpio>, ...]}
#                  once per connection: every output's level and the inputs in use;
#                  {"pin": <gpio>, "v": 0|1}   an output changed level (Pin.value(v))
#   host -> board  {"pin": <gpio>, "v": 0|1[, "t": <ms>]}   an input's level; a 1 -> 0
#                  transition calls the falling-edge handler with t (the host's time of
#                  the edge, so debouncing does not depend on TCP delivery timing) or,
#                  without t, with the board's ticks_ms();
#                  {"ow": <gpio>, "rom": "<16 hex>", "scratch": "<18 hex>" | null}
#                  what the DS18B20 with that ROM id on the bus at that GPIO returns to
#                  "read scratchpad" (null: the sensor is not on the bus any more).
# Never blocks the event loop: the connection has a deadline and is retried every
# 0.5 s; output changes are written at once (a small line on a local socket) and the
# hello line gives the host the full picture after every (re)connection.
import asyncio
import json

from protocols.compat import const

_CONNECT_MS = const(2000)
_RETRY_MS = const(500)


class IoLink:
    def __init__(self, hal, port):
        self._hal = hal
        self._port = int(port)
        self.out = {}  # gpio -> level of every output pin
        self.inp = {}  # gpio -> level set by the host (inputs idle high: pull-ups)
        self.irq = {}  # gpio -> falling-edge handler(t_ms)
        self.ow = {}  # bus gpio -> {rom hex: scratchpad bytes or None}
        self._w = None
        self._task = None

    def start(self):
        """Connect in the background (needs a running event loop; else a no-op)."""
        if self._task is None:
            try:
                self._task = asyncio.create_task(self._run())
            except RuntimeError:  # CPython without a running loop
                pass

    def report(self, gpio, v):
        if self.out.get(gpio) == v:
            return
        self.out[gpio] = v
        self._send('{"pin": %d, "v": %d}\n' % (gpio, v))

    def _send(self, line):
        w = self._w
        if w is not None:
            try:
                w.write(line.encode())
            except OSError:
                self._w = None

    async def flush(self, timeout_ms):
        """Wait (at most timeout_ms) until the host has the outputs' current levels."""
        hal = self._hal
        t0 = hal.ticks_ms()
        self.start()
        while self._w is None:
            if hal.ticks_diff(hal.ticks_ms(), t0) >= timeout_ms:
                return False
            await asyncio.sleep(0.02)
        try:
            await asyncio.wait_for(self._w.drain(), max(timeout_ms - hal.ticks_diff(hal.ticks_ms(), t0), 1) / 1000)
        except (OSError, asyncio.TimeoutError):
            return False
        return True

    async def _run(self):
        hal = self._hal
        while True:
            w = None
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection(hal.options.get("host") or "127.0.0.1", self._port),
                    _CONNECT_MS / 1000)
                out = {}
                for g in self.out:
                    out[str(g)] = self.out[g]
                w.write((json.dumps({"hello": hal.name, "out": out,
                                     "in": sorted(self.irq)}) + "\n").encode())
                # reports go out from now on, queued behind the hello: an output that
                # changed while the hello drained was lost (the host kept the old level)
                self._w = w
                await w.drain()
                while True:
                    line = await r.readline()
                    if not line:
                        break
                    self._on_line(line)
            except (OSError, asyncio.TimeoutError, ValueError):
                pass
            self._w = None
            if w is not None:
                try:
                    w.close()
                except OSError:
                    pass
            await asyncio.sleep(_RETRY_MS / 1000)

    def _on_line(self, line):
        try:
            m = json.loads(line)
        except ValueError:
            return
        if not isinstance(m, dict):
            return
        if "ow" in m:
            bus = self.ow.get(m["ow"])
            if bus is None:
                bus = self.ow[m["ow"]] = {}
            s = m.get("scratch")
            bus[str(m.get("rom", "")).lower()] = None if s is None else bytes.fromhex(s)
            return
        g = m.get("pin")
        v = 1 if m.get("v") else 0
        if not isinstance(g, int):
            return
        prev = self.inp.get(g, 1)
        self.inp[g] = v
        h = self.irq.get(g)
        if h is not None and prev and not v:
            t = m.get("t")
            h(t if isinstance(t, int) else self._hal.ticks_ms())


class OneWire:
    """An emulated 1-Wire bus at one GPIO: the DS18B20s the host put there."""

    def __init__(self, link, gpio):
        self._link = link
        self._gpio = gpio

    def _bus(self):
        return {} if self._link is None else (self._link.ow.get(self._gpio) or {})

    def scan(self):
        bus = self._bus()
        return [bytes.fromhex(k) for k in bus if bus[k] is not None]

    def convert(self):
        """Start a conversion on every sensor -> presence pulse seen (a sensor answered)."""
        bus = self._bus()
        for k in bus:
            if bus[k] is not None:
                return True
        return False

    def read(self, rom, buf):
        """Read the 9-byte scratchpad of ``rom`` into buf -> presence pulse seen.  A
        sensor that is not there while others are leaves the line high (0xFF bytes)."""
        bus = self._bus()
        key = "".join(["%02x" % b for b in rom])
        s = bus.get(key)
        if s is None:
            if not self.convert():
                return False
            s = b"\xff" * 9
        n = min(len(s), len(buf))
        buf[:n] = s[:n]
        for i in range(n, len(buf)):
            buf[i] = 0xFF
        return True
