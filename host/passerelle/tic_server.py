"""Serve a TIC byte stream over loopback TCP, paced like a meter's serial line.

The emulated board (``hal.unix``) reads its TIC UART as a TCP client of
127.0.0.1:<port>; a :class:`TicServer` is the meter end of that wire.  Bytes go
out at ``rate * speed`` bytes/s in ~20 ms chunks, following the stream's own
timestamps (so the inter-frame silences are kept).  One client at a time; a new
connection replaces the previous one; the stream continues where it was (the
meter keeps running while the gateway reboots).
"""

import socket
import threading
import time

from .sim.linky import line_rate

CHUNK_S = 0.02


def capture_stream(path, rate=None, chunk=64):
    """Loop forever over a raw capture file: yields ``(t, bytes)`` with ``t`` =
    byte offset / line rate (rate guessed from the separator when not given)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ValueError("%s is empty" % path)
    if rate is None:
        rate = line_rate("standard" if b"\t" in data else "historic")
    t = 0.0
    while True:
        for i in range(0, len(data), chunk):
            part = data[i:i + chunk]
            yield t, part
            t += len(part) / rate


def accept_pending(sock, restore_timeout):
    """A client already waiting on the listening ``sock``, or None, without blocking;
    the socket's timeout is set back to ``restore_timeout``."""
    try:
        sock.settimeout(0)
        conn, _ = sock.accept()
    except OSError:  # BlockingIOError / timeout: nobody waiting
        return None
    finally:
        sock.settimeout(restore_timeout)
    return conn


class TicServer:
    """``TicServer(stream, rate, speed)``: ``stream`` yields ``(t_seconds, bytes)``."""

    def __init__(self, stream, rate, speed=1.0, host="127.0.0.1", port=0, name="tic", tap=None):
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.stream = iter(stream)
        self.rate = float(rate)
        self.speed = float(speed)
        self.name = name
        self.tap = tap      # tap("rx", bytes): what the gateway was sent (a recording)
        self.stats = {"connections": 0, "bytes": 0, "chunks": 0, "disconnects": 0}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(2)
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = None
        self._pending = None          # (t, bytes) not yet sent when a client left

    def start(self):
        self._thread = threading.Thread(target=self._serve, name="tic-server-%s" % self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _serve(self):
        conn = None
        while not self._stop.is_set():
            if conn is None:
                try:
                    conn, _ = self._sock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                self.stats["connections"] += 1
            current, conn = conn, None
            try:
                conn = self._feed(current)      # a newer client to switch to, or None
            except OSError:
                self.stats["disconnects"] += 1
            finally:
                try:
                    current.close()
                except OSError:
                    pass
        if conn is not None:
            conn.close()

    def _newer_client(self):
        """A new client is waiting: the current one is replaced (gateway restarted)."""
        return accept_pending(self._sock, 0.2)

    def _feed(self, conn):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(5.0)
        bps = self.rate * self.speed
        chunk = max(8, int(bps * CHUNK_S))
        origin, t0 = time.monotonic(), None
        while not self._stop.is_set():
            item, self._pending = self._pending, None
            if item is None:
                try:
                    item = next(self.stream)
                except StopIteration:
                    return None
            t, data = item
            if t0 is None:
                t0 = t
            for off in range(0, len(data), chunk):
                due = origin + ((t - t0) + off / self.rate) / self.speed
                while True:
                    delay = due - time.monotonic()
                    if self._stop.is_set():
                        self._pending = (t, data[off:])
                        return None
                    if delay <= 0:
                        break
                    time.sleep(min(delay, 0.1))
                if delay < -1.0:          # fell behind (client stalled): don't burst to catch up
                    origin -= delay
                newer = self._newer_client()
                if newer is not None:
                    self._pending = (t, data[off:])
                    self.stats["connections"] += 1
                    return newer
                piece = data[off:off + chunk]
                try:
                    conn.sendall(piece)
                except OSError:
                    self._pending = (t, data[off:])
                    raise
                self.stats["bytes"] += len(piece)
                self.stats["chunks"] += 1
                if self.tap is not None:
                    self.tap("rx", piece)
