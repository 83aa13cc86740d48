"""The moving parts of a replay (used by :mod:`passerelle.replay`).

* :class:`Clock` -- the replay timeline: closed until the gateway is ready, then
  recorded time ``t`` is due at ``origin + (t - start) / speed`` (``fast``: at once);
* :class:`Cassette` -- reactive playback of a request/response line (Modbus...): a
  request of the gateway's is matched byte for byte with the first unused recorded
  request (``tx`` events) of the same bytes, and releases the answer recorded after it
  (the ``rx`` events that follow); bytes that begin no recorded request are a mismatch,
  reported;
* :class:`TcpEndpoint` (the emulated board's UART, a loopback TCP server the firmware
  connects to; a new connection replaces the old one, like a board that reboots) and
  :class:`SerialEndpoint` (a real serial port, pyserial);
* :class:`Feeder` -- one serial channel: a thread writing the stream at its time, or
  answering requests from its cassette;
* :class:`Collector` -- a paho-mqtt subscriber keeping every message with its
  arrival time, and whether it was delivered by the subscription (retained from
  before the run) or live.
"""

import socket
import threading
import time

from . import recording
from .tic_server import accept_pending


class Clock:
    def __init__(self, speed=1.0, fast=False, start=0.0):
        self.speed, self.fast, self.start = float(speed), bool(fast), float(start)
        self.gate = threading.Event()
        self.origin = None

    def open(self):
        self.origin = time.monotonic()
        self.gate.set()

    def due(self, t):
        return self.origin + max(0.0, t - self.start) / self.speed

    def wait_until(self, t, stop):
        """Sleep until recorded time ``t`` is due; False if ``stop`` was set first."""
        while not self.gate.wait(0.1):
            if stop.is_set():
                return False
        if self.fast:
            return not stop.is_set()
        due = self.due(t)
        while not stop.is_set():
            delay = due - time.monotonic()
            if delay <= 0:
                return True
            stop.wait(min(delay, 0.1))
        return False


class Cassette:
    """Recorded exchanges of one request/response line.

    Each distinct request (a meter's read of one block of registers, say) is a queue of
    its own: the gateway's request gets the answer recorded after the first unused
    occurrence of the same bytes.  The polls of several devices on one bus may then
    interleave otherwise than in the recording, and a request recorded without an answer
    (a timeout, then the retry) is silent again.  A request whose recorded occurrences
    are all used gets no answer (counted: ``unanswered``, a device gone silent); bytes
    that begin no recorded request are a mismatch (reported, dropped up to where a
    recorded request may begin).

    ``tx`` events in a row are one request read in several pieces unless a silence of
    3.5 characters (at least 10 ms: timestamps jitter) separates them, the RTU rule
    for the end of a frame: a request repeated after a timeout is a request again.
    ``channel``: the recording's channel (its line settings time a character)."""

    def __init__(self, events, channel=None):
        char_s = 1.0 / recording.bytes_per_second(dict({"baud": 9600, "bits": 8, "parity": "N"},
                                                       **(channel or {})))
        silence_s = max(0.010, 3.5 * char_s)
        self.leading = []          # answers recorded before any request (sent at start)
        self.exchanges = []        # [request bytes, [answer chunks]]
        last, end = None, 0.0
        for ev in events:
            d = ev.get("dir")
            data = recording.payload(ev)
            t = ev.get("t", 0.0)
            if d == "tx":
                if last == "tx" and t - end < silence_s:
                    self.exchanges[-1][0] += data        # one request in several reads
                else:
                    self.exchanges.append([data, []])
                end = t + len(data) * char_s
            elif d == "rx":
                (self.exchanges[-1][1] if self.exchanges else self.leading).append(data)
            last = d
        self.queues = {}           # request bytes -> [exchange index], in recorded order
        for i, ex in enumerate(self.exchanges):
            self.queues.setdefault(bytes(ex[0]), []).append(i)
        self._next = dict.fromkeys(self.queues, 0)
        # longest first: a request that begins another one's bytes never hides it
        self._requests = sorted(self.queues, key=len, reverse=True)
        self.buf = bytearray()
        self.matched = 0
        self.unanswered = 0
        self.mismatches = []

    def remaining(self):
        return len(self.exchanges) - self.matched

    def exhausted(self):
        return self.matched >= len(self.exchanges)

    def pending(self, request):
        """Recorded occurrences of ``request`` not answered yet."""
        q = self.queues.get(bytes(request), ())
        return len(q) - self._next.get(bytes(request), 0)

    def _begins_a_request(self, buf):
        return any(r.startswith(buf) or buf.startswith(r) for r in self._requests)

    def feed(self, data):
        """Bytes from the gateway -> the answers to send now (list of bytes)."""
        self.buf += data
        out = []
        while self.buf:
            buf = bytes(self.buf)
            req = next((r for r in self._requests if buf.startswith(r)), None)
            if req is None:
                if self._begins_a_request(buf):
                    break                       # a request still arriving
                # up to where a recorded request may begin: resynchronised there
                i = next((i for i in range(1, len(buf)) if self._begins_a_request(buf[i:])),
                         len(buf))
                nxt = min((q[self._next[r]] for r, q in self.queues.items()
                           if self._next[r] < len(q)), default=None)
                self.mismatches.append("%s is no recorded request (next recorded: %s)" % (
                    buf[:min(i, 32)].hex(" "),
                    "none" if nxt is None else self.exchanges[nxt][0].hex(" ")))
                del self.buf[:i]
                continue
            del self.buf[:len(req)]
            k = self._next[req]
            if k < len(self.queues[req]):
                self._next[req] = k + 1
                out.extend(self.exchanges[self.queues[req][k]][1])
                self.matched += 1
            else:
                self.unanswered += 1
        return out


class TcpEndpoint:
    """Loopback TCP server: the emulated board's UART connects to ``port``."""

    def __init__(self, host="127.0.0.1"):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(2)
        self._sock.settimeout(0.1)
        self.host, self.port = self._sock.getsockname()[:2]
        self.conn = None
        self.connections = 0

    def open(self):
        return self

    def _accept(self, stop, timeout=None):
        end = None if timeout is None else time.monotonic() + timeout
        while not stop.is_set() and (end is None or time.monotonic() < end):
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return None
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
            return conn
        return None

    def _newer(self):
        conn = accept_pending(self._sock, 0.1)
        if conn is None:
            return None
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections += 1
        return conn

    def _switch(self, conn):
        old, self.conn = self.conn, conn
        if old is not None:
            try:
                old.close()
            except OSError:
                pass

    def send(self, data, stop):
        while not stop.is_set():
            newer = self._newer()
            if newer is not None:
                self._switch(newer)
            if self.conn is None:
                self._switch(self._accept(stop))
                continue
            try:
                self.conn.settimeout(5.0)
                self.conn.sendall(data)
                return True
            except OSError:
                self._switch(None)
        return False

    def recv(self, timeout, stop):
        newer = self._newer()
        if newer is not None:
            self._switch(newer)
        if self.conn is None:
            self._switch(self._accept(stop, timeout))
            return b""
        try:
            self.conn.settimeout(timeout)
            data = self.conn.recv(4096)
        except socket.timeout:
            return b""
        except OSError:
            data = b""
        if not data:
            self._switch(None)
        return data

    def close(self):
        self._switch(None)
        try:
            self._sock.close()
        except OSError:
            pass


class SerialEndpoint:
    """A real serial port with the channel's settings (baud, bits, parity, stop)."""

    def __init__(self, port, channel):
        self.port_name, self.channel = port, channel
        self.port = None
        self.ser = None

    def open(self):
        import serial
        ch = self.channel
        self.ser = serial.serial_for_url(self.port_name, baudrate=int(ch.get("baud", 1200)),
                                         bytesize=int(ch.get("bits", 7)), parity=ch.get("parity", "E"),
                                         stopbits=ch.get("stop", 1), timeout=0.1)
        return self

    def send(self, data, stop):
        if stop.is_set():
            return False
        self.ser.write(data)
        self.ser.flush()
        return True

    def recv(self, timeout, stop):
        self.ser.timeout = timeout
        return self.ser.read(max(1, min(4096, self.ser.in_waiting)))

    def close(self):
        if self.ser is not None:
            self.ser.close()


class Feeder:
    """Plays one serial channel through ``endpoint`` on ``clock``."""

    def __init__(self, name, channel, events, endpoint, clock, idle_s=30.0):
        self.name, self.channel, self.endpoint, self.clock = name, channel, endpoint, clock
        self.idle_s = idle_s    # reactive: done when no recorded request came for that long
        self.cassette = Cassette(events, channel) if channel.get("reactive") else None
        self.stream = [(ev["t"], recording.payload(ev)) for ev in events if ev.get("dir") == "rx"]
        self.stats = {"bytes": 0, "chunks": 0, "requests": 0, "answers": 0}
        self.gate = None        # gate(name, i): called before sending stream chunk i (lockstep)
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self.error = None

    @property
    def port(self):
        return self.endpoint.port

    def start(self):
        self.endpoint.open()
        self._thread = threading.Thread(target=self._run, name="replay-%s" % self.name, daemon=True)
        self._thread.start()
        return self

    def _send(self, data):
        if not self.endpoint.send(data, self._stop):
            return False
        self.stats["bytes"] += len(data)
        self.stats["chunks"] += 1
        return True

    def _run(self):
        try:
            if self.cassette is None:
                for i, (t, data) in enumerate(self.stream):
                    if not self.clock.wait_until(t, self._stop):
                        return
                    if self.gate is not None:
                        self.gate(self.name, i)
                    if not self._send(data):
                        return
            else:
                self._reactive()
        except Exception as exc:        # reported by the replay, never a silent thread death
            self.error = exc
        finally:
            self.done.set()

    def _reactive(self):
        """Serve from the start, as a device on the bus does (the gateway polls its meters
        from boot, before it is online): not on the timeline's clock."""
        cas = self.cassette
        for data in cas.leading:
            if not self._send(data):
                return
        idle_end = time.monotonic() + self.idle_s + 30.0     # + the gateway's boot
        while not self._stop.is_set() and not cas.exhausted():
            data = self.endpoint.recv(0.1, self._stop)
            if not data:
                if time.monotonic() > idle_end:
                    return      # the gateway stopped making the recorded requests: reported
                continue
            before = cas.matched
            answers = cas.feed(data)
            if cas.matched > before:
                idle_end = time.monotonic() + self.idle_s
            self.stats["requests"] += cas.matched - before
            for a in answers:
                if not self._send(a):
                    return
                self.stats["answers"] += 1

    def stop(self, timeout=3.0):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.endpoint.close()


class Collector:
    """Subscribes to ``topics`` and keeps ``messages``: (topic, payload, retain flag,
    from_subscription, arrival time)."""

    def __init__(self, host, port, topics, client_id=None):
        import paho.mqtt.client as mqtt
        self.host, self.port, self.topics = host, int(port), list(topics)
        self.messages = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.armed = False
        self.last_live = time.monotonic()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=client_id or "passerelle-replay-%d" % (id(self) % 1000000))
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_message = self._on_message
        self.c.on_log = lambda *a: None

    def _on_connect(self, client, userdata, flags, rc, props=None):
        if not getattr(rc, "is_failure", False):
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, msg):
        now = time.monotonic()
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain), not self.armed, now))
            if self.armed:
                self.last_live = now

    def start(self, timeout=10.0, retained_wait=0.3):
        self.c.connect_async(self.host, self.port, keepalive=30)
        self.c.loop_start()
        if not self.subscribed.wait(timeout):
            return False
        time.sleep(retained_wait)           # what the broker still retains from earlier runs
        with self.lock:
            self.armed = True
        return True

    def wait_for(self, pred, timeout, alive=lambda: True):
        end = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < end:
            with self.lock:
                fresh = self.messages[seen:]
                seen = len(self.messages)
            if any(not m[3] and pred(m) for m in fresh):
                return True
            if not alive():
                return False
            time.sleep(0.02)
        return False

    def settle(self, quiet_s, max_s=30.0, volatile=lambda topic: topic.endswith("/stats")):
        """Wait until no live message (but volatile ones) came for ``quiet_s``."""
        end = time.monotonic() + max_s
        while time.monotonic() < end:
            with self.lock:
                lives = [m[4] for m in self.messages if not m[3] and not volatile(m[0])]
            last = max(lives) if lives else self.last_live
            if time.monotonic() - last >= quiet_s:
                return True
            time.sleep(0.05)
        return False

    def retained_snapshot(self, wait_s=0.5, prefixes=("#",)):
        """What the broker retains now: {topic: payload} (a fresh subscription)."""
        import paho.mqtt.client as mqtt
        got, done = {}, threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                        client_id="passerelle-snap-%d" % (id(self) % 1000000))
        c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe([(t, 0) for t in prefixes])
        c.on_subscribe = lambda *a: done.set()
        c.on_message = lambda cl, u, msg: got.__setitem__(msg.topic, bytes(msg.payload)) \
            if msg.retain and msg.payload else None
        c.on_log = lambda *a: None
        try:
            c.connect(self.host, self.port, 30)
            c.loop_start()
            if done.wait(10):
                time.sleep(max(0.2, wait_s))
        finally:
            c.disconnect()
            c.loop_stop()
        return got

    def stop(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()
