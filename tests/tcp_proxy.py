"""A TCP proxy for the tests that cut links (tests/mqtt, tests/faults): imported as
``tests.tcp_proxy``.  Threads serve it; close() stops it (the tests' fixtures call it)."""

import socket
import threading
import time


def close_socks(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


class BlackholeProxy:
    """TCP proxy 127.0.0.1:``port`` -> ``target_host``:``target_port``.  ``blackhole()``
    makes every connection open at that moment swallow bytes both ways while staying
    open (a half-open link as seen from each end); connections accepted afterwards are
    forwarded normally.  ``accepts``: the time (monotonic) of each connection accepted."""

    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.ls.settimeout(0.1)     # accept() polls, so close() returns at once
        self.host, self.port = "127.0.0.1", self.ls.getsockname()[1]
        self.accepts = []
        self.pairs = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _refuse(self, a):
        """True when the new connection ``a`` was dealt with here (not forwarded)."""
        return False

    def _accept(self):
        while not self.closed:
            try:
                a, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepts.append(time.monotonic())
            if self._refuse(a):
                continue
            try:
                b = socket.create_connection(self.target, timeout=5)
            except OSError:
                a.close()
                continue
            pair = {"socks": (a, b), "black": False}
            self.pairs.append(pair)
            threading.Thread(target=self._up, args=(pair, a, b), daemon=True).start()
            threading.Thread(target=self._down, args=(pair, b, a), daemon=True).start()

    def _up(self, pair, src, dst):
        """Client -> target."""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not pair["black"]:
                    dst.sendall(data)
        except OSError:
            pass
        if not pair["black"]:
            close_socks(src, dst)

    _down = _up         # target -> client: the same, unless a subclass adds to it

    def blackhole(self):
        for pair in self.pairs:
            pair["black"] = True

    def close(self):
        self.closed = True
        self.ls.close()
        for pair in self.pairs:
            close_socks(*pair["socks"])


def mqtt_packets(buf):
    """Split the MQTT packets off the front of ``buf`` (bytearray, consumed):
    -> [packet bytes], whole packets only (a partial one stays in ``buf``)."""
    out = []
    while len(buf) >= 2:
        n = shift = 0
        i = 1
        while True:
            if i >= len(buf):
                return out
            b = buf[i]
            n |= (b & 0x7F) << shift
            shift += 7
            i += 1
            if not b & 0x80:
                break
        if len(buf) < i + n:
            return out
        out.append(bytes(buf[:i + n]))
        del buf[:i + n]
    return out


def publish_info(pkt):
    """(dup, qos, retain, packet id (None at QoS 0), topic, payload) of a PUBLISH packet
    (first byte 0x3X)."""
    i = 1
    while pkt[i] & 0x80:
        i += 1
    i += 1
    tl = (pkt[i] << 8) | pkt[i + 1]
    topic = pkt[i + 2:i + 2 + tl].decode("utf-8", "replace")
    qos = (pkt[0] >> 1) & 3
    j = i + 2 + tl
    pid = ((pkt[j] << 8) | pkt[j + 1]) if qos else None
    return bool(pkt[0] & 0x08), qos, bool(pkt[0] & 0x01), pid, topic, pkt[j + (2 if qos else 0):]


class PubackProxy(BlackholeProxy):
    """A proxy that parses MQTT both ways: broker->client PUBACKs are delayed by
    ``delay_s`` (every other packet passes at once), or withheld while ``hold(True)``
    (``hold(False)`` lets them go); ``drop()`` cuts every open connection (the client
    reconnects through the proxy and resends its unacknowledged QoS 1 PUBLISHes with
    DUP).  ``publishes``: (time, dup, qos, retain, pid, topic, payload) of every
    PUBLISH the client sent, in order; ``acked``: (time, pid) of every PUBACK passed on
    to the client."""

    def __init__(self, target_port, delay_s=0.0, target_host="127.0.0.1"):
        self.delay_s = delay_s
        self.holding = False
        self.publishes = []
        self.acked = []
        self._lock = threading.Lock()
        super().__init__(target_port, target_host)

    def hold(self, on):
        with self._lock:
            self.holding = on
            if not on:
                for pair in self.pairs:
                    for e in pair.get("acks", ()):
                        e[0] = min(e[0], time.monotonic() + self.delay_s)

    def drop(self):
        """Cut every open connection (the PUBACKs held for them are lost with them)."""
        with self._lock:
            pairs = list(self.pairs)
            for pair in pairs:
                del pair.get("acks", [])[:]
        for pair in pairs:
            close_socks(*pair["socks"])

    def _up(self, pair, src, dst):
        buf = bytearray()
        try:
            while not self.closed:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                for pkt in mqtt_packets(buf):
                    if pkt[0] & 0xF0 == 0x30:
                        self.publishes.append((time.monotonic(),) + publish_info(pkt))
                dst.sendall(data)
        except OSError:
            pass
        close_socks(src, dst)

    def _down(self, pair, src, dst):
        buf = bytearray()
        acks = pair.setdefault("acks", [])  # [[release time, packet]]
        src.settimeout(0.01)
        try:
            while not self.closed:
                now = time.monotonic()
                with self._lock:
                    due = []
                    while acks and acks[0][0] <= now:
                        due.append(acks.pop(0)[1])
                for pkt in due:
                    dst.sendall(pkt)
                    self.acked.append((time.monotonic(), (pkt[2] << 8) | pkt[3]))
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                buf += data
                for pkt in mqtt_packets(buf):
                    if pkt[0] == 0x40:
                        with self._lock:
                            acks.append([float("inf") if self.holding
                                         else time.monotonic() + self.delay_s, pkt])
                    else:
                        dst.sendall(pkt)
        except OSError:
            pass
        close_socks(src, dst)
