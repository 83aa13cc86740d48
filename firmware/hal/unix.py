# hal/unix.py - the emulated board ("emu"): MicroPython unix port (also imports on CPython)
# MIT license.
#
# What stands in for the hardware:
#   UART   a TCP client to <host>:<port> (options {"uart": {"<id>": port}}): the host-side
#          meter simulator listens there and writes raw TIC bytes (or answers Modbus RTU
#          requests written with awrite()).  Baud rate and framing are ignored.
#   Pin    an in-memory value; with options {"io": <port>} outputs are reported to and
#          inputs / falling edges / DS18B20 scratchpads driven by the host's I/O server
#          (hal/unix_io.py, imported only then).
#   WDT    a deadline checked by an asyncio task.  On expiry: a log line, a breadcrumb
#          so that the next boot reports reset cause "wdt", then the process exits with
#          status 75 (WDT_EXIT_STATUS), as a board would reset.  A supervisor restarts it.
#   NVS    <root>/nvs.json, {namespace: {key: value}}, written atomically on commit().
#   net    always up (the Hal object is its own `net`).
#   flash  the board root's files; the gateway's own (outbox spill, gw.store) live in
#          <root>/data.  Option {"flash_kb": N} gives that data partition N KB: a write
#          through gw.store that would not fit raises OSError(ENOSPC) (fs_check), as a
#          full littlefs would.  Writes are counted in flash_writes (wear budget).
#   clock  time() = the host's epoch seconds (a board after NTP).
#   reset  cause from the breadcrumb left by the previous run, else options["reset_cause"]
#          (default "power_on").  Hal.reset() exits with status 76 (RESET_EXIT_STATUS).
import asyncio
import json
import os
from time import time as _time

try:
    from micropython import const
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython: a monotonic millisecond clock without wrap-around
    import time

    def const(x):
        return x

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

WDT_EXIT_STATUS = const(75)  # EX_TEMPFAIL: "reset me"
RESET_EXIT_STATUS = const(76)
_POLL_MS = const(250)


def _du(path):
    """Bytes in the files under ``path`` (the emulated data partition)."""
    n = 0
    try:
        names = os.listdir(path)
    except OSError:
        return 0
    for name in names:
        p = path + "/" + name
        try:
            st = os.stat(p)
        except OSError:
            continue
        n += _du(p) if st[0] & 0x4000 else st[6]
    return n


class UART:
    """One TIC line: a TCP connection to the simulator, read with asyncio."""

    def __init__(self, uart_id, baudrate):
        self.id = uart_id
        self.baudrate = baudrate
        self._r = self._w = None

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

    def read_nb(self, buf):
        """Non-blocking read (Modbus polls the line): n bytes copied into buf, None when
        nothing is waiting, 0 when the link closed.  MicroPython streams only."""
        r = self._r
        if r is None:
            return 0
        return r.s.readinto(buf)

    async def awrite(self, buf):
        """Send buf (bytes, bytearray or memoryview): returns once it is handed to the
        link (on a board: once the last bit left the UART, so the RS-485 driver can be
        released).  Raises OSError when the link is closed."""
        w = self._w
        if w is None:
            raise OSError("UART %s closed" % self.id)
        w.write(buf)
        await w.drain()

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

    def __init__(self, number, mode=0, pull=None, value=None, link=None):
        self.number = number
        self.mode = mode
        self._v = value or 0
        self._link = link  # hal.unix_io.IoLink or None
        if link is not None and mode == 1:
            link.report(number, self._v)

    def value(self, v=None):
        link = self._link
        if v is None:
            if link is not None and self.mode != 1:
                return link.inp.get(self.number, 1)
            return self._v
        self._v = 1 if v else 0
        if link is not None and self.mode == 1:
            link.report(self.number, self._v)
        return None


class WDT:
    """Emulated watchdog: must be fed within timeout_ms or the process exits."""

    def __init__(self, hal, timeout_ms):
        self.timeout_ms = timeout_ms
        self.feed()
        self._task = asyncio.create_task(self._watch(hal))

    def feed(self):
        self._deadline = ticks_add(ticks_ms(), self.timeout_ms)

    async def _watch(self, hal):
        while True:
            left = ticks_diff(self._deadline, ticks_ms())
            if left <= 0:
                print("hal: watchdog not fed for %d ms: resetting the emulated board"
                      % self.timeout_ms)
                hal.exit("wdt", WDT_EXIT_STATUS)
            await asyncio.sleep(min(left, _POLL_MS) / 1000)

    def stop(self):
        # Not possible on a real board; used when an emulated gateway is torn down.
        self._task.cancel()


class NVS:
    """Key/value store of one namespace; values are ints or strings."""

    def __init__(self, path, namespace):
        self._path = path
        self._ns = namespace
        self._pending = {}  # key -> value, None = erase

    def _load(self):
        try:
            with open(self._path) as f:
                data = json.loads(f.read())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key, default=None):
        if key in self._pending:
            v = self._pending[key]
            return default if v is None else v
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
            v = self._pending[k]
            if v is None:
                ns.pop(k, None)
            else:
                ns[k] = v
        self._pending = {}
        tmp = self._path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(data))
        os.rename(tmp, self._path)


class Hal:
    platform = "unix"
    # the clock (wrapping ms): the functions themselves, no wrapper per call
    ticks_ms = staticmethod(ticks_ms)
    ticks_diff = staticmethod(ticks_diff)
    ticks_add = staticmethod(ticks_add)

    def __init__(self, board, options):
        self.board = board
        self.name = board.get("id") or options.get("board") or "emu"
        self.options = options
        self.net = self  # the host network: always connected (connect, isconnected, info)
        self.wdt_obj = None
        self.io = None  # hal.unix_io.IoLink when options["io"] (a port) is set
        self.data_dir = (options.get("root") or ".") + "/data"
        self.flash_writes = 0  # counted by gw.store.write
        crumbs = self.nvs("hal")
        cause = crumbs.get("reset_cause")
        if cause:
            crumbs.erase("reset_cause")
            crumbs.commit()
        self._cause = cause or options.get("reset_cause") or "power_on"

    # -- network (Hal.net is the Hal) --
    async def connect(self, net_cfg, secrets, timeout_ms):
        return True

    def isconnected(self):
        return True

    def info(self):
        return {"type": "host", "ip": "127.0.0.1"}

    # -- peripherals --
    async def uart(self, uart_id, baudrate, rx=None, invert=False, tx=None, bits=7, parity=0):
        """Open line uart_id (TIC: 7E1 receive only; Modbus: bits=8, parity None/0/1,
        written with awrite()); raises OSError when it cannot be opened.  Only the
        port matters here: baud rate, framing and pins are those of a real board."""
        ports = self.options.get("uart") or {}
        port = ports.get(str(uart_id))
        if not port:
            raise OSError("no emulated UART %s (options uart: %s)" % (uart_id, sorted(ports)))
        u = UART(uart_id, baudrate)
        u._r, u._w = await asyncio.open_connection(self.options.get("host") or "127.0.0.1",
                                                   int(port))
        return u

    def _io(self):
        if self.io is None and self.options.get("io"):
            from hal.unix_io import IoLink

            self.io = IoLink(self, self.options["io"])
        if self.io is not None:
            self.io.start()
        return self.io

    def pin(self, number, mode=0, pull=None, value=None):
        return Pin(number, mode, pull, value, self._io())

    def on_fall(self, number, handler):
        """Input with pull-up; handler(t_ms) on every falling edge (S0 counters)."""
        link = self._io()
        if link is not None:
            link.irq[number] = handler
        return Pin(number, 0, None, None, link)

    def onewire(self, number):
        """The 1-Wire bus at GPIO number: scan(), convert(), read(rom, buf)."""
        from hal.unix_io import OneWire

        return OneWire(self._io(), number)

    async def flush_io(self, timeout_ms):
        """Let the host see the outputs' levels (before a halt); True when it has."""
        if self._io() is None:
            return True
        return await self.io.flush(timeout_ms)

    def wdt(self, timeout_ms):
        self.wdt_obj = WDT(self, timeout_ms)
        return self.wdt_obj

    def nvs(self, namespace):
        return NVS((self.options.get("root") or ".") + "/nvs.json", namespace)

    def reset_cause(self):
        return self._cause

    # -- flash and clock --
    def fs_check(self, path, nbytes):
        """Raise OSError(ENOSPC) when writing ``nbytes`` more to the data partition
        would exceed options["flash_kb"] (no quota: the host disk decides)."""
        kb = self.options.get("flash_kb")
        if kb is None:
            return
        if _du(self.data_dir) + nbytes > kb * 1024:
            raise OSError(28)  # ENOSPC

    def time(self):
        """Epoch seconds (int); the host clock is always set."""
        return int(_time())

    def reset(self):
        self.exit("soft", RESET_EXIT_STATUS)

    def exit(self, cause, status):
        """Leave a breadcrumb for the next boot's reset_cause(), then end the process."""
        try:
            n = self.nvs("hal")
            n.set("reset_cause", cause)
            n.commit()
        except OSError:
            pass
        raise SystemExit(status)

    def halt(self, status):
        """The gateway cannot run (config error): end the process with ``status`` so
        the harness reports it; the board root's files stay as they are."""
        raise SystemExit(status)

    def unique_id(self):
        return self.options.get("unique_id") or "emu-" + self.name

    def close(self):
        if self.wdt_obj is not None:
            self.wdt_obj.stop()
            self.wdt_obj = None
