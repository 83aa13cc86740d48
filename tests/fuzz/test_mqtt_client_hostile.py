"""gw.mqtt.client against a hostile broker, driven by a Hypothesis state machine.

The client runs on CPython asyncio (as tests/mqtt/test_mqtt_client_edges.py does) in
an event-loop thread; the broker is a scripted asyncio server on 127.0.0.1 built on
protocols.mqtt.server.  Rules publish QoS1 messages and make the broker hostile: drop
the connection, refuse or ignore CONNECT, withhold, duplicate or invent PUBACKs, send
malformed packets, garbage or unexpected packets, read slowly.  Invariants: the
client never crashes (its run() task lives, stats["errors"] stays 0), never blocks the
event loop, and every call returns within a deadline.  At the end, with the broker
back to normal: the client reconnects, and every QoS1 message publish() accepted has
reached the broker at least once, first arrivals in publish order."""

import asyncio
import concurrent.futures
import socket
import threading
import time

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gw.mqtt.client import MQTTClient
from protocols.errors import MalformedPacket
from protocols.mqtt import encode, server

from passerelle.strategies.mqtt import malformed, to_client
from tests.fuzz.fuzzutil import FUZZ, budget

CALL_S = 5.0            # deadline of any single client call (publish, subscribe, close)
DRAIN_S = 20.0          # deadline for the backlog once the broker behaves again
UNKNOWN_PID = 60000     # the client numbers from 1: it never has these in flight


class LoopThread:
    """An asyncio loop in a daemon thread; ``run(coro, timeout)`` from the test thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=CALL_S, what="call"):
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise AssertionError("%s did not return within %.1f s (hang)" % (what, timeout))

    def stop(self):
        async def cancel_all():
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            self.run(cancel_all(), 5, "cancel")
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


class HostileBroker:
    """Scripted MQTT 3.1.1 broker; the knobs are set by the state machine's rules."""

    def __init__(self):
        self.refuse = []            # CONNACK codes for the next CONNECTs (then close)
        self.silent_connects = 0    # next CONNECTs left unanswered
        self.withhold = False       # PUBLISH recorded, no PUBACK
        self.dup_acks = False       # every PUBACK sent twice
        self.unknown_acks = False   # a PUBACK for a pid never used before each real one
        self.slow_ms = 0            # pause before each read of at most 64 bytes
        self.stall_until = 0.0      # loop time until which nothing is read at all
        self.received = []          # (payload, dup) of every QoS1 PUBLISH, arrival order
        self.writers = []
        self.conns = 0
        self.srv = None
        self.port = None

    def normal(self):
        self.refuse, self.silent_connects = [], 0
        self.withhold = self.dup_acks = self.unknown_acks = False
        self.slow_ms = 0
        self.stall_until = 0.0

    async def start(self):
        self.srv = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.srv.sockets[0].getsockname()[1]

    async def stop(self):
        self.srv.close()
        for w in self.writers:
            w.close()
        await self.srv.wait_closed()

    async def _conn(self, r, w):
        self.conns += 1
        self.writers.append(w)
        d = server.MQTTServerDecoder(4096)
        sock = w.get_extra_info("socket")
        if sock is not None:        # a small window: a stalled broker blocks writers sooner
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        loop = asyncio.get_running_loop()
        try:
            while True:
                while loop.time() < self.stall_until:
                    await asyncio.sleep(0.02)
                if self.slow_ms:
                    await asyncio.sleep(self.slow_ms / 1000)
                data = await r.read(64 if self.slow_ms else 4096)
                if not data:
                    return
                i = 0
                while i < len(data):
                    used, p = d.decode(data, i)
                    i += used
                    if p is not None and await self._on(p, w) is False:
                        return
        except (OSError, MalformedPacket, asyncio.CancelledError):
            pass
        finally:
            w.close()
            if w in self.writers:
                self.writers.remove(w)

    async def _on(self, p, w):
        t = p.type
        if t == 1:
            if self.refuse:
                w.write(server.connack(False, self.refuse.pop(0)))
                await w.drain()
                return False
            if self.silent_connects:
                self.silent_connects -= 1
                return None
            w.write(server.connack(False, 0))
        elif t == 3 and p.qos == 1:
            self.received.append((bytes(p.payload), p.dup))
            if self.withhold:
                return None
            if self.unknown_acks:
                w.write(encode.puback(UNKNOWN_PID + len(self.received) % 5000))
            w.write(encode.puback(p.pid))
            if self.dup_acks:
                w.write(encode.puback(p.pid))
        elif t == 8:
            w.write(server.suback(p.pid, [q for _, q in p.topics]))
        elif t == 12:
            w.write(server.PINGRESP)
        elif t == 14:
            return False
        await w.drain()
        return None

    async def send(self, data):
        """Write raw bytes to every open connection."""
        for w in list(self.writers):
            try:
                w.write(data)
                await w.drain()
            except OSError:
                pass

    async def drop(self):
        for w in list(self.writers):
            w.close()


class HostileBrokerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.lt = LoopThread()
        self.broker = HostileBroker()
        self.accepted = []
        self.got = []
        self.n = 0
        self.lt.run(self.broker.start(), what="broker start")

        async def make():
            c = MQTTClient("127.0.0.1", self.broker.port, "fuzz", keepalive=1,
                           backoff_min_ms=20, backoff_max_ms=200, max_pending=200,
                           ack_timeout_ms=300, connect_timeout_ms=500, write_timeout_ms=1000,
                           on_message=lambda t, m, r: self.got.append((t, bytes(m))))
            return c, asyncio.ensure_future(c.run())
        self.client, self.task = self.lt.run(make(), what="client start")
        self.lt.run(self.client.wait_connected(3000), what="first connect")

    # --- the application ------------------------------------------------------------

    @rule(k=st.integers(1, 3), size=st.sampled_from((0, 0, 0, 200, 1500)))
    def publish_qos1(self, k, size=0):
        for _ in range(k):
            self.n += 1
            payload = b"m%d:" % self.n + b"x" * size
            ok = self.lt.run(self.client.publish("fuzz/q", payload, qos=1), what="publish")
            assert ok is True
            self.accepted.append(payload)

    @rule()
    def publish_qos0(self):
        self.lt.run(self.client.publish("fuzz/q0", b"x", qos=0), what="publish qos0")

    @rule()
    def subscribe(self):
        self.lt.run(self.client.subscribe("fuzz/in/#", 1), timeout=CALL_S, what="subscribe")

    @rule(ms=st.integers(10, 400))
    def time_passes(self, ms):
        time.sleep(ms / 1000)

    # --- the broker turns hostile -------------------------------------------------------

    @rule()
    def drop_connection(self):
        self.lt.run(self.broker.drop(), what="drop")

    @rule(codes=st.lists(st.integers(1, 255), min_size=1, max_size=3))
    def refuse_next_connects(self, codes):
        self.broker.refuse = list(codes)
        self.lt.run(self.broker.drop(), what="drop")

    @rule(n=st.integers(1, 2))
    def ignore_next_connects(self, n):
        self.broker.silent_connects = n
        self.lt.run(self.broker.drop(), what="drop")

    @rule(on=st.booleans())
    def withhold_pubacks(self, on):
        self.broker.withhold = on

    @rule(on=st.booleans())
    def duplicate_pubacks(self, on):
        self.broker.dup_acks = on

    @rule(on=st.booleans())
    def unknown_pubacks(self, on):
        self.broker.unknown_acks = on

    @rule(ms=st.sampled_from((0, 0, 50, 200)))
    def slow_reads(self, ms):
        self.broker.slow_ms = ms

    @rule(ms=st.integers(100, 1800), k=st.integers(0, 12))
    def stall_while_publishing(self, ms, k):
        """The broker reads nothing for a while (keepalive 1 s: the client gives the link
        up after 1.5 s) while the application keeps publishing 1.5 KB messages."""
        self.broker.stall_until = self.lt.loop.time() + ms / 1000
        self.publish_qos1(k, 1500)
        time.sleep(ms / 1000)

    @rule(m=malformed().filter(to_client))
    def send_malformed(self, m):
        self.lt.run(self.broker.send(bytes(m)), what="send malformed")

    @rule(data=st.binary(min_size=1, max_size=40))
    def send_garbage(self, data):
        self.lt.run(self.broker.send(data), what="send garbage")

    @rule(pkt=st.sampled_from((
        server.connack(False, 0), server.suback(4242, [1]), server.unsuback(4243),
        encode.pubrec(17), encode.pubcomp(18), server.PINGRESP,
        encode.publish("fuzz/in/a", b"cmd", qos=1, pid=99), encode.publish("fuzz/in/b", b"x"),
        encode.publish("fuzz/in/c", b"q2", qos=2, pid=100))))
    def send_unexpected(self, pkt):
        self.lt.run(self.broker.send(bytes(pkt)), what="send packet")

    # --- both at once: a hostile spell while the application publishes ---------------------

    @rule(hostility=st.sampled_from(("drop", "refuse", "ignore", "withhold", "dup", "unknown",
                                     "slow", "malformed", "stall")),
          k=st.integers(1, 4), ms=st.integers(50, 700), m=malformed().filter(to_client))
    def hostile_spell(self, hostility, k, ms, m):
        b = self.broker
        if hostility in ("withhold", "dup", "unknown"):
            setattr(b, {"withhold": "withhold", "dup": "dup_acks", "unknown": "unknown_acks"}[
                hostility], True)
        elif hostility == "slow":
            b.slow_ms = 100
        elif hostility == "stall":
            b.stall_until = self.lt.loop.time() + ms / 500
        elif hostility == "refuse":
            b.refuse = [5]
        elif hostility == "ignore":
            b.silent_connects = 1
        self.publish_qos1(k)
        if hostility in ("drop", "refuse", "ignore"):
            self.lt.run(b.drop(), what="drop")
        elif hostility == "malformed":
            self.lt.run(b.send(bytes(m)), what="send malformed")
        self.publish_qos1(k)
        time.sleep(ms / 1000)
        b.normal()

    # --- always ---------------------------------------------------------------------------

    @invariant()
    def client_alive_and_loop_responsive(self):
        if self.task.done():
            exc = self.task.exception()
            raise AssertionError("the client's run() ended: %r" % (exc,))
        t0 = time.monotonic()
        self.lt.run(asyncio.sleep(0), timeout=2.0, what="event loop round trip")
        assert time.monotonic() - t0 < 2.0
        st_ = self.client.stats
        assert st_["errors"] == 0 and st_["hook_errors"] == 0, (st_, self.client.last_error)
        assert st_["dropped_qos1"] == 0

    def teardown(self):
        try:
            self.broker.normal()
            self.lt.run(self._drained(), timeout=DRAIN_S + 5, what="drain")
            firsts = []
            for payload, _ in self.broker.received:
                if payload not in firsts:
                    firsts.append(payload)
            missing = [p for p in self.accepted if p not in firsts]
            assert not missing, "QoS1 messages lost: %r (stats %r)" % (missing, self.client.stats)
            assert [p for p in firsts if p in self.accepted] == self.accepted, \
                "first arrivals out of publish order: %r" % (firsts,)
            self.lt.run(self.client.close(), what="close")
            self.lt.run(asyncio.wait_for(asyncio.shield(self.task), CALL_S), timeout=CALL_S + 1,
                        what="run() after close")
        finally:
            try:
                self.lt.run(self.broker.stop(), what="broker stop")
            finally:
                self.lt.stop()

    async def _drained(self):
        c = self.client
        t0 = time.monotonic()
        while c.pending or not c.connected:
            if time.monotonic() - t0 > DRAIN_S:
                raise AssertionError("backlog not drained within %.0f s: pending %d, connected %s, "
                                     "stats %r, last error %r" % (DRAIN_S, c.pending, c.connected,
                                                                  c.stats, c.last_error))
            await asyncio.sleep(0.02)


HostileBrokerMachine.TestCase.settings = budget(15, fuzz=300, stateful_step_count=50 if FUZZ else 20,
                                                deadline=None)
test_mqtt_client_against_a_hostile_broker = pytest.mark.slow(HostileBrokerMachine.TestCase)
