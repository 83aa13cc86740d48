"""Host side of the emulated board's I/O: watch its output pins, drive its inputs.

The firmware's ``hal/unix_io.py`` connects to :class:`IoServer` (``PASSERELLE_EMU``
``{"io": <port>}``) and speaks line-delimited JSON (one object per line, see
firmware/README.md "Emulated board I/O"):

* board -> host: ``{"hello": board, "out": {"<gpio>": 0|1}, "in": [gpio...]}`` at each
  connection (every output's level), then ``{"pin": gpio, "v": 0|1}`` per output change;
* host -> board: ``{"pin": gpio, "v": 0|1, "t": ms}`` input levels (a 1 -> 0 edge is a
  falling edge for the S0 counters; ``t`` is the edge's time on the host's timeline,
  so pulses with exact widths, gaps and bounces can be sent at once), and
  ``{"ow": gpio, "rom": "<16 hex>", "scratch": "<18 hex>"|null}`` the scratchpad that a
  DS18B20 returns (null: not on the bus).

Input levels and sensors persist across firmware restarts: they are sent again to
every new connection (a board that reboots finds its world unchanged).  Everything
binds 127.0.0.1; one thread accepts and serves the (single) board connection.
"""

import json
import socket
import threading
import time

from protocols import onewire

_MASK = 0x3FFFFFFF  # MicroPython ticks wrap at 2**30 ms


def wants_io(cfg):
    """True when a config has devices whose I/O the host can see (relays, heaters,
    S0 counters, DS18B20 sensors)."""
    cfg = cfg or {}
    return any(cfg.get(k) for k in ("relays", "heaters", "counters", "sensors"))


class IoServer:
    def __init__(self, host="127.0.0.1", port=0):
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(4)
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self.out = {}        # gpio -> last level reported by the board
        self.history = []    # (time.monotonic(), gpio, level) of every output report
        self.inputs = {}     # gpio -> level the host set (resent on every connection)
        self.sensors = {}    # (bus gpio, rom hex) -> scratchpad hex or None
        self.hellos = []     # every hello received (one per firmware (re)start)
        self._conn = None
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._t = 0          # last edge time sent (host timeline, ms)
        self._thread = None

    # ---- lifecycle ---------------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._accept, name="emu-io", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        conn = self._conn
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(3)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(0.2)
            old, self._conn = self._conn, conn
            if old is not None:
                try:
                    old.close()
                except OSError:
                    pass
            with self._send_lock:
                lines = [{"pin": g, "v": v} for g, v in self.inputs.items()]
                lines += [{"ow": b, "rom": r, "scratch": s} for (b, r), s in self.sensors.items()]
                self._write(conn, lines)
            self._serve(conn)

    def _serve(self, conn):
        buf = b""
        while not self._stop.is_set():
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self._on_line(line)
        try:
            conn.close()
        except OSError:
            pass

    def _on_line(self, line):
        try:
            m = json.loads(line)
        except ValueError:
            return
        now = time.monotonic()
        with self._cond:
            if "hello" in m:
                self.hellos.append(m)
                for g, v in (m.get("out") or {}).items():
                    self.out[int(g)] = v
                    self.history.append((now, int(g), v))
            elif "pin" in m:
                self.out[m["pin"]] = m["v"]
                self.history.append((now, m["pin"], m["v"]))
            self._cond.notify_all()

    def _write(self, conn, objs):
        data = "".join(json.dumps(o) + "\n" for o in objs).encode()
        if conn is None or not data:
            return False
        try:
            conn.sendall(data)
            return True
        except OSError:
            return False

    def _send(self, objs):
        with self._send_lock:
            return self._write(self._conn, objs)

    # ---- observing the board -----------------------------------------------------
    def level(self, gpio):
        with self._cond:
            return self.out.get(gpio)

    def wait(self, pred, timeout=10.0):
        """Wait until pred() (called under the lock) is true -> its value, or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.2))

    def wait_level(self, gpio, v, timeout=10.0):
        return self.wait(lambda: self.out.get(gpio) == v, timeout) is not None

    def wait_hello(self, n=1, timeout=20.0):
        return self.wait(lambda: len(self.hellos) >= n, timeout) is not None

    # ---- driving the board -------------------------------------------------------
    def _edge_time(self):
        t = max(int(time.monotonic() * 1000), self._t + 1)
        self._t = t
        return t

    def set_input(self, gpio, v):
        self.inputs[gpio] = 1 if v else 0
        return self._send([{"pin": gpio, "v": self.inputs[gpio], "t": self._edge_time() & _MASK}])

    def pulses(self, gpio, n, width_ms=40, gap_ms=60, bounces=0, bounce_ms=2):
        """n S0 pulses (line low for width_ms, then high for gap_ms), each leading edge
        followed by ``bounces`` extra high/low flickers bounce_ms apart; sent at once
        with their timestamps on the host's timeline."""
        t = self._edge_time()
        lines = []
        for _ in range(n):
            lines.append({"pin": gpio, "v": 0, "t": t & _MASK})
            for k in range(bounces):
                lines.append({"pin": gpio, "v": 1, "t": (t + (2 * k + 1) * bounce_ms) & _MASK})
                lines.append({"pin": gpio, "v": 0, "t": (t + (2 * k + 2) * bounce_ms) & _MASK})
            lines.append({"pin": gpio, "v": 1, "t": (t + width_ms) & _MASK})
            t += width_ms + gap_ms
        self._t = t
        self.inputs[gpio] = 1
        return self._send(lines)

    def set_scratch(self, bus, rom, scratch):
        """What sensor ``rom`` on GPIO ``bus`` returns (9 bytes, or None: gone)."""
        key = (bus, rom.lower())
        self.sensors[key] = None if scratch is None else bytes(scratch).hex()
        return self._send([{"ow": bus, "rom": key[1], "scratch": self.sensors[key]}])

    def set_temperature(self, bus, rom, celsius, crc_ok=True):
        return self.set_scratch(bus, rom, onewire.ds18b20_scratch(int(round(celsius * 100)), crc_ok))

    # ---- make run: a lively demo board -------------------------------------------
    def demo(self, cfg, period_s=2.0):
        """Start a thread that makes the configured devices move: a pulse on every S0
        counter and a slowly drifting temperature on every DS18B20, every period_s."""
        def loop():
            i = 0
            while not self._stop.wait(0 if i == 0 else period_s):
                for c in cfg.get("counters") or []:
                    if isinstance(c.get("pin"), int):
                        self.pulses(c["pin"], 1 + i % 3)
                for j, s in enumerate(cfg.get("sensors") or []):
                    if isinstance(s.get("pin"), int) and isinstance(s.get("rom"), str):
                        self.set_temperature(s["pin"], s["rom"], 19.5 + j + (i % 20) * 0.0625)
                i += 1
        t = threading.Thread(target=loop, name="emu-io-demo", daemon=True)
        t.start()
        return t
