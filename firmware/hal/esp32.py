# hal/esp32.py - the real board backend (MicroPython ESP32 port)
# MIT license. Nothing is touched at import: every peripheral is built by a Hal method.
#
# TIC UART: 7 data bits, even parity (parity=0), 1 stop, 1200 Bd (historic) or 9600 Bd
# (standard); rxbuf 2048 because a standard frame (up to ~1.4 KB) overflows the default
# 256 bytes.  invert=True sets UART.INV_RX for interfaces whose optocoupler inverts.
#
# reset_cause(): machine.reset_cause() -> name.  The ESP32 port reports a brownout as
# PWRON_RESET and a panic as HARD_RESET, so "power_on" may hide a brownout.
#
# time(): epoch seconds once the clock was set by SNTP (sync_time(), called by the
# gateway when the network is up: one UDP query, non-blocking but for the DNS lookup of
# the server name), before that the seconds since boot (a value < 10**9, which
# subscribers can tell from an epoch time).  fs_check(): raises OSError(ENOSPC) when a
# write would leave less than _FS_RESERVE bytes free on the filesystem (littlefs needs
# some free blocks to stay writable).
import asyncio
import time

import machine

_CAUSES = (
    ("PWRON_RESET", "power_on"),
    ("HARD_RESET", "hard"),
    ("WDT_RESET", "wdt"),
    ("DEEPSLEEP_RESET", "deepsleep"),
    ("SOFT_RESET", "soft"),
)
_NVS_BLOB_MAX = 128
_FS_RESERVE = 16384
_NTP_DELTA_1900 = 2208988800  # 1900-01-01 -> 1970-01-01


class UART:
    """machine.UART (TIC: 7E1; Modbus RTU: 8N1/8E1/8O1) wrapped in an asyncio stream."""

    def __init__(self, uart_id, baudrate, rx, tx, invert, bits=7, parity=0):
        self.id = uart_id
        self._kw = {"bits": bits, "parity": parity, "stop": 1, "rx": rx, "rxbuf": 2048,
                    "timeout": 0}
        if tx is not None:
            self._kw["tx"] = tx  # keep TX off the flash pins (UART1 defaults to GPIO 9/10)
        if invert:
            self._kw["invert"] = machine.UART.INV_RX
        self.baudrate = baudrate
        self._u = machine.UART(uart_id, baudrate=baudrate, **self._kw)
        self._s = asyncio.StreamReader(self._u)

    async def readinto(self, buf):
        return await self._s.readinto(buf)

    def read_nb(self, buf):
        """Non-blocking read: n bytes copied into buf, None when nothing is waiting."""
        return self._u.readinto(buf)  # timeout=0

    async def awrite(self, buf):
        """Send buf; returns once the last stop bit left the UART (txdone), so that
        the caller can release the RS-485 driver (DE) right after."""
        u = self._u
        u.write(buf)
        # bits on the wire x 2 + 20 ms: a stuck transmitter cannot hold the caller
        limit = len(buf) * 22000 // self.baudrate + 20
        start = time.ticks_ms()
        while not u.txdone():
            if time.ticks_diff(time.ticks_ms(), start) > limit:
                raise OSError("UART %s: transmit not done after %d ms" % (self.id, limit))
            await asyncio.sleep_ms(1)

    def set_baudrate(self, baudrate):
        self.baudrate = baudrate
        self._u.init(baudrate=baudrate, **self._kw)

    def close(self):
        try:
            self._u.deinit()
        except (AttributeError, OSError):
            pass


class NVS:
    """esp32.NVS namespace: ints stored as i32, strings as blobs (<= 128 bytes)."""

    def __init__(self, namespace):
        import esp32

        self._n = esp32.NVS(namespace)

    def get(self, key, default=None):
        try:
            return self._n.get_i32(key)
        except OSError:
            pass
        buf = bytearray(_NVS_BLOB_MAX)
        try:
            n = self._n.get_blob(key, buf)
        except OSError:
            return default
        return bytes(buf[:n]).decode()

    def set(self, key, value):
        if isinstance(value, int):
            self._n.set_i32(key, value)
        else:
            self._n.set_blob(key, str(value).encode())

    def erase(self, key):
        try:
            self._n.erase_key(key)
        except OSError:
            pass

    def commit(self):
        self._n.commit()


class OneWireBus:
    """DS18B20s on one GPIO: raw scratchpad reads (ds18x20.read_scratch raises on a bad
    CRC; the driver wants to count those instead)."""

    def __init__(self, number):
        import onewire

        self._ow = onewire.OneWire(machine.Pin(number))

    def scan(self):
        return self._ow.scan()

    def convert(self):
        ow = self._ow
        if not ow.reset():
            return False
        ow.writebyte(0xCC)  # SKIP ROM: every sensor
        ow.writebyte(0x44)  # CONVERT T
        return True

    def read(self, rom, buf):
        ow = self._ow
        if not ow.reset():
            return False
        ow.select_rom(rom)
        ow.writebyte(0xBE)  # READ SCRATCHPAD
        ow.readinto(buf)
        return True


class Network:
    """Station Wi-Fi or wired Ethernet (PHY settings from board.json "ethernet")."""

    def __init__(self, board):
        self._board = board
        self._if = None
        self.type = "none"

    async def connect(self, net_cfg, secrets, timeout_ms):
        """Bring the link up; True when connected before the deadline."""
        import network

        self.type = net_cfg.get("type", "none")
        if self.type == "none":
            return True
        if net_cfg.get("hostname"):
            try:
                network.hostname(net_cfg["hostname"])
            except (AttributeError, ValueError, OSError):
                pass
        if self._if is None:
            if self.type == "wifi":
                self._if = network.WLAN(network.STA_IF)
            else:
                self._if = self._lan(network)
            self._if.active(True)
        if self.type == "wifi" and not self._if.isconnected():
            self._if.connect(net_cfg.get("ssid", ""), secrets.get("wifi_password", ""))
        start = time.ticks_ms()
        while not self._if.isconnected():
            if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
                if self.type == "wifi":
                    self._if.disconnect()  # a clean state for the next attempt
                return False
            await asyncio.sleep(0.2)
        return True

    def _lan(self, network):
        eth = self._board.get("ethernet")
        if not eth:
            raise OSError("board %s has no ethernet section" % self._board.get("id"))
        kw = {
            "mdc": machine.Pin(eth["mdc"]),
            "mdio": machine.Pin(eth["mdio"]),
            "phy_type": getattr(network, "PHY_" + eth["phy"]),
            "phy_addr": eth.get("phy_addr", 0),
        }
        if eth.get("power") is not None:
            kw["power"] = machine.Pin(eth["power"])
        if eth.get("ref_clk") is not None:
            kw["ref_clk"] = machine.Pin(eth["ref_clk"])
            kw["ref_clk_mode"] = machine.Pin.OUT if eth.get("ref_clk_out") else machine.Pin.IN
        return network.LAN(**kw)

    def isconnected(self):
        return self.type == "none" or (self._if is not None and self._if.isconnected())

    def info(self):
        ip = self._if.ifconfig()[0] if self._if is not None else None
        return {"type": self.type, "ip": ip}


class Hal:
    platform = "esp32"

    def __init__(self, board, options):
        self.board = board
        self.name = board.get("id") or "esp32"
        self.options = options
        self.net = Network(board)
        self.wdt_obj = None
        self.data_dir = "/data"
        self.flash_writes = 0  # counted by gw.store.write
        self._clock_set = False

    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    def ticks_add(self, a, b):
        return time.ticks_add(a, b)

    async def uart(self, uart_id, baudrate, rx=None, invert=False, tx=None, bits=7, parity=0):
        spec = (self.board.get("uarts") or {}).get(str(uart_id)) or {}
        if rx is None:
            rx = spec.get("rx")
        if rx is None:
            raise OSError("UART %s: no rx_pin in config nor in board.json" % uart_id)
        if tx is None:
            tx = spec.get("tx")
        return UART(uart_id, baudrate, rx, tx, invert, bits, parity)

    def pin(self, number, mode=0, pull=None, value=None):
        mode = machine.Pin.OUT if mode == 1 else machine.Pin.IN
        if value is None:
            return machine.Pin(number, mode, pull)
        return machine.Pin(number, mode, pull, value=value)

    def on_fall(self, number, handler):
        """Input with pull-up; handler(t_ms) on every falling edge (S0 counters).  The
        IRQ is a soft one (scheduled), so the handler may allocate; it only counts."""
        p = machine.Pin(number, machine.Pin.IN, machine.Pin.PULL_UP)
        ticks = time.ticks_ms
        p.irq(lambda _p: handler(ticks()), trigger=machine.Pin.IRQ_FALLING)
        return p

    def onewire(self, number):
        """The 1-Wire bus at GPIO number (built-in onewire module): scan(), convert(),
        read(rom, buf) -> presence; the caller checks the CRC."""
        return OneWireBus(number)

    async def flush_io(self, timeout_ms):
        return True  # a real pin is at its level as soon as it is written

    def wdt(self, timeout_ms):
        # Cannot be stopped once started; the app feeds it from its main loop only.
        self.wdt_obj = machine.WDT(timeout=timeout_ms)
        return self.wdt_obj

    def nvs(self, namespace):
        return NVS(namespace)

    def reset_cause(self):
        cause = machine.reset_cause()
        for name, label in _CAUSES:
            if getattr(machine, name, None) == cause:
                return label
        return "unknown"

    def reset(self):
        machine.reset()

    def fs_check(self, path, nbytes):
        import os

        st = os.statvfs("/")
        if st[0] * st[3] - nbytes < _FS_RESERVE:
            raise OSError(28)  # ENOSPC

    def time(self):
        if self._clock_set:
            t = time.time()
            return t + 946684800 if time.gmtime(0)[0] == 2000 else t
        return time.ticks_ms() // 1000  # uptime (ticks_ms wraps after ~12 days)

    async def sync_time(self, server="pool.ntp.org", timeout_ms=2000):
        """Set the RTC from one SNTP answer -> True.  getaddrinfo() blocks (DNS)."""
        import socket
        import struct

        q = bytearray(48)
        q[0] = 0x1B
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setblocking(False)
            s.sendto(q, socket.getaddrinfo(server, 123)[0][-1])
            t0 = time.ticks_ms()
            while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
                try:
                    msg = s.recv(48)
                except OSError:
                    await asyncio.sleep_ms(50)
                    continue
                if len(msg) < 48:
                    return False
                t = struct.unpack("!I", msg[40:44])[0] - _NTP_DELTA_1900
                if time.gmtime(0)[0] == 2000:
                    t -= 946684800
                tm = time.gmtime(t)
                machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))
                self._clock_set = True
                return True
            return False
        except OSError:
            return False
        finally:
            s.close()

    def halt(self, status):
        """The gateway cannot run (config error): return to the REPL so an installer
        can fix config.json.  sys.exit() in main.py would soft-reset the board and
        run main.py again, in a loop that keeps the REPL busy."""
        return status

    def unique_id(self):
        return "".join(["%02x" % b for b in machine.unique_id()])

    def close(self):
        pass
