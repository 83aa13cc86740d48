# gw/mqtt/session.py  One MQTT connection: socket + codec + deadlines.  No retry policy.
# SPDX-License-Identifier: MIT
#
# Hinch's split (mqtt_as MQTT_base vs MQTTClient): this layer opens ONE TCP
# connection, does CONNECT/CONNACK, sends whole packets under a lock with a write
# deadline and hands back decoded packets.  Any failure marks the link dead (``dead``,
# the ``down`` event) and surfaces as OSError or MQTTError; deciding what to do next
# (reconnect, back off, resend) is client.py's job.
#
# Runs unchanged on MicroPython (unix port, ESP32) and CPython asyncio:
# * MicroPython: we create the socket ourselves (so TCP_NODELAY is set on every new
#   socket, and a connect that times out or is cancelled closes its socket instead of
#   leaking it), wait for the non-blocking connect with select.poll in 10 ms steps,
#   then wrap it in asyncio.StreamReader (the extmod Stream).  The unix port's socket
#   module has no IPPROTO_TCP/TCP_NODELAY names: the numbers 6 and 1 are used, and a
#   port where setsockopt fails simply runs without it (``nodelay`` says which).
# * CPython: asyncio.open_connection (it already sets TCP_NODELAY; we set it again).
# DNS: MicroPython's getaddrinfo() BLOCKS the event loop.  With an IP literal it
# returns at once; with a host name it runs a DNS query (lwIP: up to seconds).  So the
# client resolves once (``resolve``) and keeps the address across reconnections,
# asking again only after several failed connections in a row (a broker that moved);
# still, give the broker as an IP address on a board where the loop must never stall.
# CPython resolves in a thread, without blocking.

import asyncio
import errno

from protocols.compat import IS_MICROPYTHON, const, pick
from protocols.errors import MQTTError
from protocols.mqtt import MQTTDecoder, CONNACK  # noqa: F401  (MQTTDecoder: for callers)

try:
    from time import ticks_ms, ticks_diff
except ImportError:            # CPython
    from time import monotonic as _monotonic

    def ticks_ms():
        return int(_monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

_IPPROTO_TCP = const(6)
_TCP_NODELAY = const(1)
_POLL_STEP_MS = const(10)
# messages: one table, not a heap object per message (protocols.compat.pick)
_MSG = ("connection refused, CONNACK code %d|first packet is not CONNACK|"
        "expected CONNACK, got type %d|write timeout|closed by peer")
_M_REFUSED = const(0)
_M_FIRST = const(1)
_M_EXPECTED = const(2)
_M_WRITE_TIMEOUT = const(3)
_M_CLOSED = const(4)


class ConnectRefused(MQTTError):
    """The broker answered CONNECT with a non-zero CONNACK return code (``code``)."""

    def __init__(self, code):
        super().__init__(pick(_MSG, _M_REFUSED) % code)
        self.code = code


def set_nodelay(sock):
    """Disable Nagle on ``sock``; False where the port does not support it."""
    if sock is None:
        return False
    try:
        sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        return True
    except (OSError, AttributeError, TypeError, ValueError):
        return False


def _buffered(w):
    """Bytes the stream writer still holds (MicroPython Stream.out_buf or the
    CPython transport buffer)."""
    b = getattr(w, "out_buf", None)
    if b is not None:
        return len(b)
    t = getattr(w, "transport", None)
    return t.get_write_buffer_size() if t is not None else 0


def resolve(host, port):
    """MicroPython: getaddrinfo's first answer for a TCP connection to host:port.
    BLOCKS the event loop for a host name (see DNS above): callers keep the answer."""
    import socket
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]


async def _open_micropython(ai, timeout_ms):
    import select
    import socket
    s = socket.socket(ai[0], ai[1], ai[2])
    ok = False
    try:
        nodelay = set_nodelay(s)
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.errno != errno.EINPROGRESS:
                raise
        p = select.poll()
        p.register(s, select.POLLOUT)
        t0 = ticks_ms()
        while True:
            r = p.poll(0)
            if r:
                if r[0][1] & (select.POLLERR | select.POLLHUP):
                    raise OSError(errno.ECONNREFUSED)
                break
            if ticks_diff(ticks_ms(), t0) >= timeout_ms:
                raise OSError(errno.ETIMEDOUT)
            await asyncio.sleep_ms(_POLL_STEP_MS)
        p.unregister(s)
        stream = asyncio.StreamReader(s)    # extmod: one Stream object reads and writes
        ok = True
        return stream, stream, s, nodelay
    finally:
        if not ok:
            s.close()


async def _open_cpython(host, port, timeout_ms):
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_ms / 1000)
    sock = w.get_extra_info("socket")
    return r, w, sock, set_nodelay(sock)


class Link:
    """One connection.  ``decoder`` (an MQTTDecoder) and ``rbuf`` (bytearray) are
    owned by the client and reused from link to link, so a reconnect allocates only
    this small object, its lock and its event."""

    def __init__(self, decoder, rbuf):
        decoder.reset()
        self.decoder = decoder
        self._rbuf = rbuf
        self._rmv = memoryview(rbuf)
        self._data = rbuf
        self._pos = self._n = 0
        self._r = self._w = self._sock = None
        self._readinto = False
        self._lock = asyncio.Lock()
        self.down = asyncio.Event()     # set once, when the link dies
        self.dead = False
        self.reason = None
        self.nodelay = False
        self.session_present = False
        now = ticks_ms()
        self.last_rx = self.last_tx = self.last_ping = now

    def fail(self, reason):
        """Mark the link dead (idempotent); the first reason is kept."""
        if not self.dead:
            self.dead = True
            self.reason = reason
            self.down.set()

    async def open(self, host, port, timeout_ms, ai=None):
        """Connect; on MicroPython to ``ai`` (a ``resolve`` answer) when given."""
        if IS_MICROPYTHON:
            r, w, s, nd = await _open_micropython(ai or resolve(host, port), timeout_ms)
        else:
            r, w, s, nd = await _open_cpython(host, port, timeout_ms)
        self._r, self._w, self._sock, self.nodelay = r, w, s, nd
        self._readinto = hasattr(r, "readinto")
        self.last_rx = self.last_tx = self.last_ping = ticks_ms()

    async def handshake(self, connect_pkt, timeout_ms):
        """Send CONNECT, wait for CONNACK; returns session_present.  Raises OSError,
        asyncio.TimeoutError, MalformedPacket, ConnectRefused or MQTTError."""
        await self.send(connect_pkt, timeout_ms)
        try:
            p = await asyncio.wait_for(self.next_packet(), timeout_ms / 1000)
        except asyncio.TimeoutError:
            self.fail("no CONNACK")
            raise OSError(errno.ETIMEDOUT)
        if p.type != CONNACK:
            self.fail(pick(_MSG, _M_FIRST))
            raise MQTTError(pick(_MSG, _M_EXPECTED) % p.type)
        if p.code:
            self.fail("refused %d" % p.code)
            raise ConnectRefused(p.code)
        self.session_present = p.session_present
        return p.session_present

    def put(self, data, tail=None):
        """Write one whole packet now, without waiting (no coroutine: see
        MQTTClient.publish_now): what the socket does not take at once stays in the
        stream's buffer, emptied by the next send().  -> bytes still buffered.
        Raises OSError (and marks the link dead) on a write error."""
        if self.dead:
            raise OSError(errno.ENOTCONN)
        w = self._w
        try:
            w.write(data)
            if tail is not None:
                w.write(tail)
        except OSError as e:
            self.fail("write: %r" % (e,))
            raise
        self.last_tx = ticks_ms()
        return _buffered(w)

    async def send(self, data, timeout_ms, tail=None):
        """Write one whole packet (``data``, then ``tail`` if given: a payload sent
        without being copied into the packet).  Waits (with the deadline) only if
        the stream could not take it at once.  Raises OSError and marks the link
        dead on any failure, the deadline included."""
        if self.dead:
            raise OSError(errno.ENOTCONN)
        async with self._lock:
            w = self._w
            buffered = self.put(data, tail)  # (dead meanwhile, or a write error: OSError)
            try:
                if buffered:
                    await asyncio.wait_for(w.drain(), timeout_ms / 1000)
                else:
                    await w.drain()         # MicroPython: yields once; CPython: no wait
            except asyncio.TimeoutError:
                self.fail(pick(_MSG, _M_WRITE_TIMEOUT))
                raise OSError(errno.ETIMEDOUT)
            except OSError as e:
                self.fail("write: %r" % (e,))
                raise

    async def next_packet(self):
        """The next decoded packet (the decoder's reused Packet object).  Raises
        OSError on EOF or a socket error, MalformedPacket on bad data."""
        dec = self.decoder
        while True:
            if self._pos < self._n:
                used, p = dec.decode(self._data, self._pos, self._n)
                self._pos += used
                if p is not None:
                    return p
                continue
            if self._readinto:
                n = await self._r.readinto(self._rmv)
            else:
                d = await self._r.read(len(self._rbuf))
                self._data = d
                n = len(d)
            if n is None:               # MicroPython: spurious wake-up (EAGAIN)
                continue
            if not n:
                self.fail(pick(_MSG, _M_CLOSED))
                raise OSError(errno.ECONNRESET)
            self._pos = 0
            self._n = n
            self.last_rx = ticks_ms()

    async def close(self):
        """Drop the connection now (no DISCONNECT: the caller sends it if wanted)."""
        self.fail("closed")
        w, self._w = self._w, None
        if w is None:
            return
        t = getattr(w, "transport", None)
        if t is not None:           # CPython: abort, never wait on a dead peer
            t.abort()
            return
        try:
            w.close()
            await w.wait_closed()   # MicroPython: closes the socket at once
        except OSError:
            pass
