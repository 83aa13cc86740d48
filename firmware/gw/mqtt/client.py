# gw/mqtt/client.py  Resilient asyncio MQTT 3.1.1 client: reconnect, keepalive, QoS1, resubscribe.
# SPDX-License-Identifier: MIT
#
#   c = MQTTClient(host, port, client_id, user=None, password=None, keepalive=30,
#                  will=None, on_message=None, on_connect=None, clean_session=True,
#                  backoff_min_ms=500, backoff_max_ms=30000, max_pending=32)
#   task = asyncio.create_task(c.run())      # keeps a connection up until close()
#   await c.publish(topic, payload, retain=False, qos=0)  -> bool
#   pid = await c.enqueue(topic, payload, retain=False); c.in_flight(pid); await c.wait_acked(pid)
#   pid = await c.enqueue(topic, view, retain, lend=True); c.in_flight(pid, detach=True)
#   await c.subscribe(topic, qos=0)          # remembered, re-subscribed on every connect
#   c.connected; await c.wait_connected(timeout_ms); c.stats; await c.close()
#
# Layers: session.Link is ONE connection (codec + socket + deadlines, raises on
# failure); this module is the resilience around it (mqtt_as's split), and the
# application never sees a transient OSError.
#
# After each CONNACK, in this order: (1) re-subscribe every remembered filter and
# wait for the SUBACK, (2) await on_connect(client), whose own publishes go out at
# once (so ``online`` precedes the backlog), (3) send the QoS1 backlog in publish
# order, messages already sent on an earlier link with DUP and their original packet
# id (MQTT-4.4.0-1), (4) steady state.  QoS1 publishes made by other tasks during
# (1)-(3) are queued behind the backlog, never ahead of it.
#
# Failure detection: a read/write error or EOF; a write that does not drain within
# write_timeout_ms; and keepalive: PINGREQ once nothing was sent or received for
# keepalive/2, the link declared dead when nothing at all was received for
# 1.5 x keepalive (a half-open TCP link is noticed that way).  An unacknowledged
# QoS1 PUBLISH is resent with DUP after ack_timeout_ms on the same link and after
# every reconnect.  Reconnect delay: exponential from backoff_min_ms, capped at
# backoff_max_ms, with "equal jitter" (half fixed, half random); it restarts from
# zero only after a link that stayed up for _STABLE_MS.
#
# Every wait inside the client has a deadline; nothing blocks the event loop except
# getaddrinfo() of a host name on MicroPython, done once and again only after
# _RESOLVE_AFTER failed connections in a row (see session.py).  Two things are the
# application's: on_connect is awaited as is (keep it short: each publish/subscribe
# in it has its own deadline), and keepalive=0 turns half-open detection off.
# No module-level mutable state: several clients can share one process.

import asyncio
import errno
from random import getrandbits

from protocols.compat import IS_MICROPYTHON, const, pick
from protocols.errors import MalformedPacket, MQTTError, UsageError
from protocols.mqtt import encode, MQTTDecoder, PUBLISH, PUBACK, SUBACK, UNSUBACK, PINGRESP
from .session import Link, resolve, ticks_ms, ticks_diff

_DOWN = const(0)     # no connection
_SETUP = const(1)    # CONNACK received: resubscribe, on_connect, backlog
_UP = const(2)       # steady state
_STABLE_MS = const(10000)

# messages: one table, not a heap object per message (protocols.compat.pick); the
# "<what>: %r" errors are formatted from short strings for the same reason
_MSG = ("max_pending >= 1, 1 <= backoff_min_ms <= backoff_max_ms|qos must be 0 or 1|"
        "keepalive: nothing received for 1.5 x keepalive|malformed packet: ")
_M_ARGS = const(0)
_M_QOS = const(1)
_M_KEEPALIVE = const(2)
_M_MALFORMED = const(3)
_RESOLVE_AFTER = const(3)   # failed connections in a row before the host is resolved again

STAT_KEYS = ("connects", "connect_failures", "refused", "disconnects", "publishes",
             "pubacks", "resent", "dropped_qos0", "dropped_qos1", "received", "oversize",
             "malformed", "pings", "ping_timeouts", "subscribes", "suback_failures",
             "ack_timeouts", "unexpected", "hook_errors", "errors", "nodelay", "resolves")


class MQTTClient:
    def __init__(self, host, port, client_id, user=None, password=None, keepalive=30,
                 will=None, on_message=None, on_connect=None, clean_session=True,
                 backoff_min_ms=500, backoff_max_ms=30000, max_pending=32,
                 ack_timeout_ms=10000, connect_timeout_ms=5000, write_timeout_ms=5000,
                 max_packet=2048, rx_size=1024):
        if max_pending < 1 or backoff_min_ms < 1 or backoff_max_ms < backoff_min_ms:
            raise UsageError(pick(_MSG, _M_ARGS))
        self.host = host
        self.port = port
        self.client_id = client_id
        self.keepalive = keepalive
        self.on_message = on_message
        self.on_connect = on_connect
        self.backoff_min_ms = backoff_min_ms
        self.backoff_max_ms = backoff_max_ms
        self.max_pending = max_pending
        self.ack_timeout_ms = ack_timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.write_timeout_ms = write_timeout_ms
        # Built once: invalid will/credentials fail here, not in the reconnect loop.
        self._connect_pkt = bytes(encode.connect(client_id, keepalive, clean_session, will,
                                                 user, password))
        self._decoder = MQTTDecoder(max_packet)
        self._rbuf = bytearray(rx_size)
        self.stats = {}
        for k in STAT_KEYS:
            self.stats[k] = 0
        self.last_error = None
        self._link = None
        self._ai = None          # MicroPython: the broker's resolved address, kept
        self._fails = 0          # failed connections in a row
        self._gen = 0            # link generation; 0 = never sent
        self._phase = _DOWN
        self._pending = []       # QoS1 in publish order: [pid, packet, gen sent on, ticks sent,
        #                          lent payload sent after the packet, or None]
        self._subs = []          # [filter, qos, gen subscribed on]
        self._waiters = {}       # pid -> [Event, SUBACK codes / True]
        self._pid = 0
        self._up = asyncio.Event()
        self._slot = asyncio.Event()
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._closing = False
        self._runner = None

    # --- public API ------------------------------------------------------------

    @property
    def connected(self):
        link = self._link
        return self._phase != _DOWN and link is not None and not link.dead

    @property
    def pending(self):
        """QoS1 messages not yet acknowledged (queued or in flight)."""
        return len(self._pending)

    async def wait_connected(self, timeout_ms):
        if self.connected:
            return True
        try:
            await asyncio.wait_for(self._up.wait(), timeout_ms / 1000)
        except asyncio.TimeoutError:
            pass
        return self.connected

    async def publish(self, topic, payload, retain=False, qos=0):
        """QoS0: sent now, or dropped and counted when offline -> True/False.
        QoS1: queued (bounded by max_pending) and sent when possible -> True;
        when the queue is full it waits up to ack_timeout_ms for a PUBACK if online,
        then drops the OLDEST message (stats['dropped_qos1'])."""
        if qos == 0:
            if isinstance(payload, str):
                payload = payload.encode()
            n = self.publish_now(topic, payload, retain)
            if n:
                await self.flush()
            return n is not None
        if qos != 1:
            raise UsageError(pick(_MSG, _M_QOS))
        await self.enqueue(topic, payload, retain)
        return True

    def publish_now(self, topic, payload, retain=False):
        """QoS 0 publish of bytes-like ``payload``, written at once by a plain call:
        -> None when offline or on a write error (counted in stats['dropped_qos0']),
        else the bytes the link's stream still holds (0 normally; if not, ``await
        flush()`` before relying on them being sent).  The payload is copied into the
        stream (its buffer may be reused at once).  No coroutine per message: each
        nested coroutine of publish() is a 150-270 B block, which the first discovery
        announce of a 64 KB heap often cannot find (gw.app._announce)."""
        link = self._link
        if self._phase == _DOWN or link is None or link.dead:
            self.stats["dropped_qos0"] += 1
            return None
        try:
            # header and topic only: the payload is written after it, not copied into it
            n = link.put(encode.publish_head(topic, len(payload), 0, retain), payload)
        except OSError:
            self.stats["dropped_qos0"] += 1
            return None
        self.stats["publishes"] += 1
        return n

    async def flush(self):
        """Wait until the link's stream handed everything to the socket (at most
        write_timeout_ms: then the link is failed, as a stalled publish())."""
        link = self._link
        if link is not None and not link.dead:
            try:
                await link.send(b"", self.write_timeout_ms)
            except OSError:
                pass

    async def enqueue(self, topic, payload, retain=False, lend=False):
        """QoS1 publish as publish(..., qos=1), returning its packet id: the message
        is acknowledged once in_flight(pid) is False (unless dropped meanwhile, see
        stats['dropped_qos1']).  Store-and-forward (gw/outbox.py) sends one message at
        a time this way and forgets it only after its PUBACK.

        ``lend``: ``payload`` (bytes-like) is kept by reference, not copied into the
        packet (a 1 KB state then needs no 1 KB block): its bytes must not change
        while the message is in flight, unless ``in_flight(pid, True)`` copied them."""
        encode.topic_name(topic)            # reject a bad topic before waiting
        await self._make_room()
        pid = self._next_pid()
        if lend:
            if isinstance(payload, str):
                payload = payload.encode()
            e = [pid, encode.publish_head(topic, len(payload), 1, retain, False, pid), 0, 0,
                 payload]
        else:
            e = [pid, encode.publish(topic, payload, 1, retain, False, pid), 0, 0, None]
        self._pending.append(e)
        link = self._link
        if link is not None and (self._phase == _UP or (
                self._phase == _SETUP and asyncio.current_task() is self._runner)):
            try:
                if self._transmit(link, e):
                    await link.send(b"", self.write_timeout_ms)
            except OSError:
                pass                        # stays queued; resent after reconnect
        return pid

    def in_flight(self, pid, detach=False):
        """True while the QoS1 message ``pid`` (from enqueue) waits for its PUBACK.
        ``detach``: a payload lent to enqueue() is copied then (its buffer may be reused).
        (One method, not two: each function costs heap on a board.)"""
        for e in self._pending:
            if e[0] == pid:
                if detach and e[4] is not None:
                    pkt = bytearray(len(e[1]) + len(e[4]))
                    pkt[:len(e[1])] = e[1]
                    pkt[len(e[1]):] = e[4]
                    e[1] = pkt
                    e[4] = None
                return True
        return False

    async def wait_acked(self, pid):
        """Return once ``pid`` is no longer in flight (PUBACK, or dropped).  Woken by
        every PUBACK (no polling); while the link is down it waits for the reconnect and
        the resend: the caller bounds it if it must."""
        while self.in_flight(pid):
            self._slot.clear()
            await self._slot.wait()

    async def subscribe(self, topic, qos=0):
        """Remember ``topic`` (re-subscribed after every reconnect) and subscribe now
        if connected.  Returns the granted QoS (0x80: refused) or None when offline
        or when the SUBACK did not come within ack_timeout_ms."""
        if qos not in (0, 1):
            raise UsageError(pick(_MSG, _M_QOS))
        encode.subscribe(1, [(topic, qos)])     # validates the filter
        for s in self._subs:
            if s[0] == topic:
                if s[1] == qos and s[2] == self._gen and self.connected:
                    return qos                  # already subscribed on this link
                s[1] = qos
                break
        else:
            s = [topic, qos, 0]
            self._subs.append(s)
        link = self._link
        if not self.connected:
            return None
        try:
            codes = await self._subscribe_now(link, [s])
        except OSError:
            return None
        return codes[0] if codes else None

    async def unsubscribe(self, topic):
        """Forget ``topic`` and unsubscribe now if connected -> True if acknowledged."""
        for i in range(len(self._subs)):
            if self._subs[i][0] == topic:
                del self._subs[i]
                break
        link = self._link
        if not self.connected:
            return False
        pid = self._next_pid()
        try:
            return bool(await self._request(link, pid, encode.unsubscribe(pid, [topic])))
        except OSError:
            return False

    async def close(self):
        """Send DISCONNECT (the broker then discards the will), drop the link, stop
        run().  Queued QoS1 messages are abandoned."""
        self._closing = True
        self._stop.set()
        link = self._link
        if link is not None and not link.dead:
            try:
                await link.send(encode.DISCONNECT, 1000)
            except OSError:
                pass
            await link.close()
        self._wake()
        if self._runner is not None:
            try:
                await asyncio.wait_for(self._done.wait(), 2)
            except asyncio.TimeoutError:
                pass

    async def run(self):
        """Keep a connection up until close()."""
        self._runner = asyncio.current_task()
        attempt = 0
        try:
            while not self._closing:
                if attempt:
                    await self._sleep(self._backoff(attempt))
                    if self._closing:
                        break
                link = Link(self._decoder, self._rbuf)
                try:
                    if IS_MICROPYTHON and self._ai is None:
                        self.stats["resolves"] += 1
                        self._ai = resolve(self.host, self.port)    # blocks for a name
                    await link.open(self.host, self.port, self.connect_timeout_ms, self._ai)
                    self._link = link
                    await link.handshake(self._connect_pkt, self.connect_timeout_ms)
                    self._fails = 0
                except Exception as e:      # OSError, TimeoutError, MQTTError ...
                    self._note_connect_failure(e)
                    self._fails += 1
                    if self._fails >= _RESOLVE_AFTER:   # the broker may have moved
                        self._ai = None
                        self._fails = 0
                    await link.close()
                    self._link = None
                    attempt += 1
                    continue
                t_up = ticks_ms()
                try:
                    await self._serve(link)
                except Exception as e:      # supervisor: count, remember, reconnect
                    self._note_link_error(link, e)
                await self._drop(link)
                if ticks_diff(ticks_ms(), t_up) >= _STABLE_MS:
                    attempt = 0
                else:
                    attempt += 1
        finally:
            self._done.set()

    # --- connection lifecycle ----------------------------------------------------

    def _backoff(self, attempt):
        d = self.backoff_min_ms
        while attempt > 1 and d < self.backoff_max_ms:
            d <<= 1
            attempt -= 1
        if d > self.backoff_max_ms:
            d = self.backoff_max_ms
        half = d >> 1
        return d - half + ((getrandbits(16) * half) >> 16)

    async def _sleep(self, ms):
        """Sleep, but return at once when close() is called."""
        try:
            await asyncio.wait_for(self._stop.wait(), ms / 1000)
        except asyncio.TimeoutError:
            pass

    def _note_connect_failure(self, e):
        self.stats["connect_failures"] += 1
        if hasattr(e, "code") and isinstance(e, MQTTError):
            self.stats["refused"] += 1
        if isinstance(e, MalformedPacket):
            self.stats["malformed"] += 1
        self.last_error = "%s: %r" % ("connect", e)

    def _note_link_error(self, link, e):
        if isinstance(e, MalformedPacket):
            self.stats["malformed"] += 1
        elif not isinstance(e, (OSError, MQTTError)):
            self.stats["errors"] += 1       # a bug somewhere: keep going, but show it
        link.fail("link: %r" % (e,))

    async def _serve(self, link):
        self._gen += 1
        gen = self._gen
        self._phase = _SETUP
        self.stats["connects"] += 1
        self.stats["nodelay"] = 1 if link.nodelay else 0
        self._up.set()
        reader = asyncio.create_task(self._read_loop(link))
        try:
            if self._subs:
                await self._subscribe_now(link, list(self._subs))
            if self.on_connect is not None:
                try:
                    await self.on_connect(self)
                except Exception as e:      # the app's bug must not kill the link loop
                    self.stats["hook_errors"] += 1
                    self.last_error = "%s: %r" % ("on_connect", e)
            await self._flush(link, gen)
            if not link.dead:
                self._phase = _UP
            await self._supervise(link, gen)
        finally:
            reader.cancel()

    async def _drop(self, link):
        if self._link is link:
            self._phase = _DOWN
            self._up.clear()
            self._link = None
        self.stats["disconnects"] += 1
        if not self._closing:
            self.last_error = link.reason
        await link.close()
        self._wake()

    def _wake(self):
        """Link lost or closing: SUBACK/UNSUBACK waiters give up now, queue waiters
        re-check."""
        for w in self._waiters.values():
            w[0].set()
        self._slot.set()

    async def _supervise(self, link, gen):
        ka = self.keepalive * 1000
        ping_iv = ka >> 1
        tick = (ka >> 2) if ka else 1000
        tick = 50 if tick < 50 else (1000 if tick > 1000 else tick)
        while not link.dead and not self._closing:
            now = ticks_ms()
            if ka:
                if ticks_diff(now, link.last_rx) > ka + (ka >> 1):
                    self.stats["ping_timeouts"] += 1
                    link.fail(pick(_MSG, _M_KEEPALIVE))
                    break
                if ((ticks_diff(now, link.last_tx) >= ping_iv
                     or ticks_diff(now, link.last_rx) >= ping_iv)
                        and ticks_diff(now, link.last_ping) >= ping_iv):
                    link.last_ping = now
                    self.stats["pings"] += 1
                    await link.send(encode.PINGREQ, self.write_timeout_ms)
            await self._resend_overdue(link, gen, now)
            self._slot.set()                # lets _make_room() check its deadline
            wait = tick
            if ka:                          # wake up at the keepalive deadline itself
                left = ka + (ka >> 1) - ticks_diff(ticks_ms(), link.last_rx) + 1
                wait = 10 if left < 10 else (left if left < tick else tick)
            try:
                await asyncio.wait_for(link.down.wait(), wait / 1000)
            except asyncio.TimeoutError:
                pass

    # --- QoS1 -------------------------------------------------------------------

    def _next_pid(self):
        pid = self._pid
        while True:
            pid = pid + 1 if pid < 65535 else 1
            if pid in self._waiters:
                continue
            for e in self._pending:
                if e[0] == pid:
                    break
            else:
                self._pid = pid
                return pid

    async def _make_room(self):
        # Online, wait up to ack_timeout_ms for a PUBACK to free a slot.  The deadline
        # costs no timer task per wait: _slot is set by every PUBACK, by link loss and
        # by every supervisor tick, and the deadline is checked on each wake-up.
        t0 = ticks_ms()
        while len(self._pending) >= self.max_pending:
            if self.connected and ticks_diff(ticks_ms(), t0) < self.ack_timeout_ms:
                self._slot.clear()
                await self._slot.wait()
                continue
            self._pending.pop(0)
            self.stats["dropped_qos1"] += 1

    def _transmit(self, link, e):
        """(Re)send one queued QoS1 message on ``link``, without a coroutine frame (272 B
        per state) -> bytes the stream kept: then await link.send(b"", ...), the deadline."""
        if link.dead:                       # not sent: it keeps its first-send status
            raise OSError(errno.ENOTCONN)
        if e[2]:
            e[1][0] |= 0x08                 # DUP: it went out on an earlier attempt
            self.stats["resent"] += 1
        else:
            self.stats["publishes"] += 1
        e[2] = self._gen
        e[3] = ticks_ms()
        return link.put(e[1], e[4])

    async def _flush(self, link, gen):
        """Send every queued message not yet sent on this link, oldest first; new
        QoS1 publishes made meanwhile are appended and sent by this same loop."""
        while not link.dead:
            for e in self._pending:
                if e[2] != gen:
                    break
            else:
                return
            await (link.send(b"", self.write_timeout_ms) if self._transmit(link, e)
                   else asyncio.sleep(0))   # one message per turn of the loop, as before

    async def _resend_overdue(self, link, gen, now):
        to = self.ack_timeout_ms
        while not link.dead:
            for e in self._pending:
                if e[2] == gen and ticks_diff(now, e[3]) >= to:
                    break
            else:
                return
            self.stats["ack_timeouts"] += 1
            await (link.send(b"", self.write_timeout_ms) if self._transmit(link, e)
                   else asyncio.sleep(0))

    def _on_puback(self, pid):
        p = self._pending
        for i in range(len(p)):
            if p[i][0] == pid:
                del p[i]
                self.stats["pubacks"] += 1
                self._slot.set()
                return
        self.stats["unexpected"] += 1       # e.g. the ack of a message dropped meanwhile

    # --- subscriptions --------------------------------------------------------------

    async def _request(self, link, pid, pkt):
        """Send SUBSCRIBE/UNSUBSCRIBE and wait for its ack -> codes/True, or None."""
        w = [asyncio.Event(), None]
        self._waiters[pid] = w
        try:
            await link.send(pkt, self.write_timeout_ms)
            try:
                await asyncio.wait_for(w[0].wait(), self.ack_timeout_ms / 1000)
            except asyncio.TimeoutError:
                self.stats["ack_timeouts"] += 1
        finally:
            del self._waiters[pid]
        return w[1]

    async def _subscribe_now(self, link, subs):
        pid = self._next_pid()
        pkt = encode.subscribe(pid, [(s[0], s[1]) for s in subs])
        self.stats["subscribes"] += 1
        codes = await self._request(link, pid, pkt)
        if codes is None:
            return None
        gen = self._gen
        for i in range(len(codes)):
            if codes[i] == 0x80:
                self.stats["suback_failures"] += 1
            elif i < len(subs):
                subs[i][2] = gen
        return codes

    # --- incoming -------------------------------------------------------------------

    async def _read_loop(self, link):
        try:
            while True:
                p = await link.next_packet()
                t = p.type
                if t == PUBLISH:
                    await self._on_publish(link, p)
                elif t == PUBACK:
                    self._on_puback(p.pid)
                elif t == SUBACK or t == UNSUBACK:
                    w = self._waiters.get(p.pid)
                    if w is None:
                        self.stats["unexpected"] += 1
                    else:
                        w[1] = p.codes if t == SUBACK else True
                        w[0].set()
                elif t != PINGRESP:
                    self.stats["unexpected"] += 1
        except MalformedPacket as e:
            self.stats["malformed"] += 1
            link.fail(pick(_MSG, _M_MALFORMED) + e.reason)
        except OSError as e:
            link.fail("read: %r" % (e,))
        except Exception as e:          # supervisor of this task: count it, drop the link
            self.stats["errors"] += 1
            link.fail("reader: %r" % (e,))
        self._wake()

    async def _on_publish(self, link, p):
        self.stats["received"] += 1
        qos = p.qos
        pid = p.pid
        if p.truncated:
            self.stats["oversize"] += 1
        elif qos < 2 and self.on_message is not None:
            try:
                self.on_message(p.topic, p.payload, p.retain)
            except Exception as e:
                self.stats["hook_errors"] += 1
                self.last_error = "%s: %r" % ("on_message", e)
        if qos == 1:
            await link.send(encode.puback(pid), self.write_timeout_ms)
        elif qos == 2:                  # never requested (subscribe caps QoS at 1)
            self.stats["unexpected"] += 1
