"""gw.mqtt.client edge cases in-process on CPython asyncio, against tiny scripted servers
built on protocols.mqtt: refused CONNACK and backoff, malformed input, oversize
PUBLISH, bounded offline queue, keepalive pings.  (The broker scenarios in
test_mqtt_client.py run on both interpreters.)"""

import asyncio

import pytest

from gw.mqtt.client import MQTTClient
from protocols.mqtt import encode, server


class Server:
    """asyncio server; ``script(srv, packet, writer)`` answers each decoded packet."""

    def __init__(self, script, port=0):
        self.script = script
        self.port = port
        self.conns = 0
        self.log = []
        self.srv = None

    async def start(self):
        self.srv = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.srv.sockets[0].getsockname()[1]
        return self

    async def _handle(self, r, w):
        self.conns += 1
        d = server.MQTTServerDecoder(4096)
        try:
            while True:
                data = await r.read(4096)
                if not data:
                    return
                i = 0
                while i < len(data):
                    used, p = d.decode(data, i)
                    i += used
                    if p is not None:
                        self.log.append((self.conns, p.copy()))
                        if await self.script(self, p, w) is False:
                            w.close()
                            return
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            w.close()

    async def stop(self):
        self.srv.close()
        await self.srv.wait_closed()


def accept_all(srv, p, w):
    """Default broker behaviour: CONNACK, SUBACK, PUBACK, PINGRESP."""
    if p.type == 1:
        w.write(server.connack(False, 0))
    elif p.type == 3 and p.qos == 1:
        w.write(encode.puback(p.pid))
    elif p.type == 8:
        w.write(server.suback(p.pid, [q for _, q in p.topics]))
    elif p.type == 12:
        w.write(server.PINGRESP)


def scripted(fn):
    async def script(srv, p, w):
        r = fn(srv, p, w)
        await w.drain()
        return r
    return script


async def until(pred, timeout=5.0):
    t = 0.0
    while not pred() and t < timeout:
        await asyncio.sleep(0.02)
        t += 0.02
    return pred()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_backoff_is_capped_exponential_with_jitter():
    c = MQTTClient("127.0.0.1", 1, "x", backoff_min_ms=500, backoff_max_ms=30000)
    for attempt in range(1, 14):
        d = min(30000, 500 << (attempt - 1))
        got = [c._backoff(attempt) for _ in range(300)]
        assert min(got) >= d // 2 and max(got) <= d
        assert len(set(got)) > 50                   # jittered, not a constant
    assert max(c._backoff(40) for _ in range(100)) <= 30000


def test_refused_connack_is_counted_and_retried_with_backoff():
    async def main():
        srv = await Server(scripted(lambda s, p, w: w.write(server.connack(False, 5)))).start()
        c = MQTTClient("127.0.0.1", srv.port, "x", backoff_min_ms=100, backoff_max_ms=200)
        t = asyncio.create_task(c.run())
        await asyncio.sleep(1.0)
        assert not c.connected and c.stats["connects"] == 0
        assert 3 <= c.stats["refused"] <= 12 and c.stats["refused"] == c.stats["connect_failures"]
        assert "ConnectRefused" in c.last_error
        await c.close()
        await t
        await srv.stop()
    run(main())


def test_malformed_input_drops_the_link_and_reconnects():
    def script(srv, p, w):
        accept_all(srv, p, w)
        if p.type == 1 and srv.conns == 1:
            w.write(b"\x00\x00")                   # reserved packet type 0
    async def main():
        srv = await Server(scripted(script)).start()
        c = MQTTClient("127.0.0.1", srv.port, "x", backoff_min_ms=50, backoff_max_ms=100)
        t = asyncio.create_task(c.run())
        assert await until(lambda: c.stats["connects"] == 2 and c.connected)
        assert c.stats["malformed"] == 1 and c.stats["disconnects"] == 1
        await c.close()
        await t
        await srv.stop()
    run(main())


def test_oversize_qos1_publish_is_acked_but_not_delivered():
    def script(srv, p, w):
        accept_all(srv, p, w)
        if p.type == 1:
            w.write(encode.publish("big", b"x" * 500, qos=1, pid=9))
            w.write(encode.publish("small", b"ok", qos=1, pid=10))
    got = []

    async def main():
        srv = await Server(scripted(script)).start()
        c = MQTTClient("127.0.0.1", srv.port, "x", max_packet=64,
                       on_message=lambda t, m, r: got.append((t, m)))
        t = asyncio.create_task(c.run())
        assert await until(lambda: len([x for x in srv.log if x[1].type == 4]) == 2)
        assert [x[1].pid for x in srv.log if x[1].type == 4] == [9, 10]
        assert got == [("small", b"ok")] and c.stats["oversize"] == 1
        assert c.stats["received"] == 2
        await c.close()
        await t
        await srv.stop()
    run(main())


def test_offline_queue_is_bounded_drops_oldest_then_flushes_in_order(free_port):
    async def main():
        port = free_port()
        c = MQTTClient("127.0.0.1", port, "x", max_pending=4, backoff_min_ms=50,
                       backoff_max_ms=100)
        assert await c.publish("a/b", "q0") is False and c.stats["dropped_qos0"] == 1
        for i in range(6):
            assert await c.publish("a/b", "%d" % i, qos=1) is True
        assert c.pending == 4 and c.stats["dropped_qos1"] == 2
        t = asyncio.create_task(c.run())
        await asyncio.sleep(0.2)
        srv = await Server(scripted(accept_all), port).start()
        assert await until(lambda: c.pending == 0)
        pubs = [x[1] for x in srv.log if x[1].type == 3]
        assert [p.payload for p in pubs] == [b"2", b"3", b"4", b"5"]
        assert not any(p.dup for p in pubs)        # first transmission: no DUP
        await c.close()
        await t
        await srv.stop()
    run(main())


@pytest.mark.parametrize("answer", [True, False])
def test_keepalive_pings_and_silence_detection(answer):
    def script(srv, p, w):
        if p.type != 12 or answer:
            accept_all(srv, p, w)

    async def main():
        srv = await Server(scripted(script)).start()
        c = MQTTClient("127.0.0.1", srv.port, "x", keepalive=1, backoff_min_ms=5000,
                       backoff_max_ms=5000)
        t = asyncio.create_task(c.run())
        await asyncio.sleep(2.2)
        pings = len([x for x in srv.log if x[0] == 1 and x[1].type == 12])
        if answer:      # a ping every keepalive/2 of silence, link kept
            assert 3 <= pings <= 6 and c.connected and c.stats["ping_timeouts"] == 0
        else:           # nothing received for 1.5 x keepalive: dropped
            assert c.stats["ping_timeouts"] == 1 and not c.connected
        await c.close()
        await t
        await srv.stop()
    run(main())


def test_lent_payload_is_sent_after_the_header_and_a_detach_keeps_it():
    """enqueue(..., lend=True) (the gateway's states, gw/app.py) writes the caller's
    buffer after the header instead of copying it into a packet; in_flight(pid, True) copies it
    while unacknowledged, so the caller may reuse its buffer and a resend still
    carries the original bytes."""
    def script(srv, p, w):
        if p.type == 3 and srv.conns == 1:
            return False                        # no PUBACK: the link drops, resent later
        accept_all(srv, p, w)

    async def main():
        srv = await Server(scripted(script)).start()
        c = MQTTClient("127.0.0.1", srv.port, "x", backoff_min_ms=50, backoff_max_ms=100)
        t = asyncio.create_task(c.run())
        assert await until(lambda: c.connected)
        buf = bytearray(b'{"a": 1}--')
        pid = await c.enqueue("t/s", memoryview(buf)[:8], True, lend=True)
        assert c.in_flight(pid, True)
        buf[:8] = b"XXXXXXXX"                   # reused: the queued message kept its copy
        assert await until(lambda: not c.in_flight(pid))
        pid2 = await c.enqueue("t/s", memoryview(buf)[:4], False, lend=True)
        assert await until(lambda: not c.in_flight(pid2))
        assert not c.in_flight(pid2, True)      # acknowledged: nothing to copy
        pubs = [(n, p) for n, p in srv.log if p.type == 3]
        assert [(n, p.payload, p.dup, p.retain, p.pid) for n, p in pubs] == [
            (1, b'{"a": 1}', False, True, pid), (2, b'{"a": 1}', True, True, pid),
            (2, b"XXXX", False, False, pid2)]
        assert c.stats["resent"] == 1 and c.stats["pubacks"] == 2
        await c.close()
        await t
        await srv.stop()
    run(main())
