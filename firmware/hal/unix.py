# hal/unix.py - the emulated board ("emu"): MicroPython unix port (also imports on CPython)
# MIT license.
#
# What stands in for the hardware:
#   UART   a TCP client to <host>:<port> (options {"uart": {"<id>": port}}): the host-side
#          meter simulator listens there and writes raw TIC bytes.  Baud rate is ignored.
#   Pin    an in-memory value.
#   WDT    a deadline checked by an asyncio task.  On expiry: a log line, a breadcrumb
#          so that the next boot reports reset cause "wdt", then the process exits with
#          status 75 (WDT_EXIT_STATUS), as a board would reset.  A supervisor restarts it.
#   NVS    <root>/nvs.json, {namespace: {key: value}}, written atomically on commit().
#   net    always up.
#   reset  cause from the breadcrumb left by the previous run, else options["reset_cause"]
#          (default "power_on").  Hal.reset() exits with status 76 (RESET_EXIT_STATUS).
import asyncio
import json
import os
import time

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython: a monotonic millisecond clock without wrap-around
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

WDT_EXIT_STATUS = const(75)  # EX_TEMPFAIL: "reset me"
RESET_EXIT_STATUS = const(76)
_POLL_MS = const(250)
_NVS_FILE = "nvs.json"
_HAL_NS = "hal"


class UART:
    """One TIC line: a TCP connection to the simulator, read with asyncio."""

    def __init__(self, uart_id, host, port, baudrate):
        self.id = uart_id
        self.host = host
        self.port = port
        self.baudrate = baudrate
        self._r = None
        self._w = None

    async def open(self):
        self._r, self._w = await asyncio.open_connection(self.host, self.port)

    async def readinto(self, buf):
        """Wait for bytes, copy them into buf; 0 means the link closed."""
        r = self._r
        if r is None:
            return 0
        if hasattr(r, "readinto"):  # MicroPython stream
            return await r.readinto(buf)
        data = await r.read(len(buf))  # CPython StreamReader
        buf[:len(data)] = data
        return len(data)

    def set_baudrate(self, baudrate):
        self.baudrate = baudrate  # a TCP link has no baud rate

    def close(self):
        w, self._r, self._w = self._w, None, None
        if w is not None:
            try:
                w.close()
            except OSError:
                pass


class Pin:
    IN = 0
    OUT = 1

    def __init__(self, number, mode=0, pull=None, value=None):
        self.number = number
        self.mode = mode
        self._v = value or 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        return None


class WDT:
    """Emulated watchdog: must be fed within timeout_ms or the process exits."""

    def __init__(self, hal, timeout_ms):
        self._hal = hal
        self.timeout_ms = timeout_ms
        self.feed()
        self._task = asyncio.create_task(self._watch())

    def feed(self):
        self._deadline = ticks_add(ticks_ms(), self.timeout_ms)

    async def _watch(self):
        while True:
            left = ticks_diff(self._deadline, ticks_ms())
            if left <= 0:
                self._hal.expire(self.timeout_ms)
            await asyncio.sleep(min(left, _POLL_MS) / 1000)

    def stop(self):
        # Not possible on a real board; used when an emulated gateway is torn down.
        self._task.cancel()


class NVS:
    """Key/value store of one namespace; values are ints or strings."""

    def __init__(self, path, namespace):
        self._path = path
        self._ns = namespace
        self._pending = {}

    def _load(self):
        try:
            with open(self._path) as f:
                data = json.loads(f.read())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key, default=None):
        if key in self._pending:
            return self._pending[key]
        ns = self._load().get(self._ns)
        return ns.get(key, default) if isinstance(ns, dict) else default

    def set(self, key, value):
        self._pending[key] = value

    def erase(self, key):
        self._pending[key] = None

    def commit(self):
        data = self._load()
        ns = data.get(self._ns)
        if not isinstance(ns, dict):
            ns = data[self._ns] = {}
        for k in self._pending:
            if self._pending[k] is None:
                ns.pop(k, None)
            else:
                ns[k] = self._pending[k]
        self._pending = {}
        tmp = self._path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(data))
        os.rename(tmp, self._path)


class Network:
    """The host's network: always connected."""

    def __init__(self):
        self.type = "none"

    async def connect(self, net_cfg, secrets, timeout_ms):
        self.type = net_cfg.get("type", "none")
        return True

    def isconnected(self):
        return True

    def info(self):
        return {"type": self.type, "ip": "127.0.0.1"}


class Hal:
    platform = "unix"

    def __init__(self, board, options):
        self.board = board
        self.name = board.get("id") or options.get("board") or "emu"
        self.options = options
        self.root = options.get("root") or "."
        self.host = options.get("host") or "127.0.0.1"
        self.net = Network()
        self.wdt_obj = None
        crumbs = self.nvs(_HAL_NS)
        cause = crumbs.get("reset_cause")
        if cause:
            crumbs.erase("reset_cause")
            crumbs.commit()
        self._cause = cause or options.get("reset_cause") or "power_on"

    # -- clock (milliseconds, wrapping like the board's) --
    def ticks_ms(self):
        return ticks_ms()

    def ticks_diff(self, a, b):
        return ticks_diff(a, b)

    def ticks_add(self, a, b):
        return ticks_add(a, b)

    # -- peripherals --
    async def uart(self, uart_id, baudrate, rx=None, invert=False):
        """Open TIC line uart_id; raises OSError when it cannot be opened."""
        ports = self.options.get("uart") or {}
        port = ports.get(str(uart_id))
        if not port:
            raise OSError("no emulated UART %s (options uart: %s)" % (uart_id, sorted(ports)))
        u = UART(uart_id, self.host, int(port), baudrate)
        await u.open()
        return u

    def pin(self, number, mode=0, pull=None, value=None):
        return Pin(number, mode, pull, value)

    def wdt(self, timeout_ms):
        self.wdt_obj = WDT(self, timeout_ms)
        return self.wdt_obj

    def expire(self, timeout_ms):
        print("hal: watchdog not fed for %d ms: resetting the emulated board" % timeout_ms)
        self._breadcrumb("wdt")
        raise SystemExit(WDT_EXIT_STATUS)

    def nvs(self, namespace):
        return NVS(self.root + "/" + _NVS_FILE, namespace)

    def reset_cause(self):
        return self._cause

    def reset(self):
        self._breadcrumb("soft")
        raise SystemExit(RESET_EXIT_STATUS)

    def _breadcrumb(self, cause):
        try:
            n = self.nvs(_HAL_NS)
            n.set("reset_cause", cause)
            n.commit()
        except OSError:
            pass

    def unique_id(self):
        return self.options.get("unique_id") or "emu-" + self.name

    def close(self):
        if self.wdt_obj is not None:
            self.wdt_obj.stop()
            self.wdt_obj = None
