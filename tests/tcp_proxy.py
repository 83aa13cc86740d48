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
