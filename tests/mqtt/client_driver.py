# Scenario driver for gw.mqtt.client, run by the tests under BOTH CPython and MicroPython:
#   python -u client_driver.py '<json config>'      (PYTHONPATH=firmware:.)
#   micropython client_driver.py '<json config>'    (MICROPYPATH=firmware:.:.frozen)
# It prints one JSON object per line: {"ev": <name>, "t": <ticks_ms>, ...}; the test
# reads them (and controls brokers / proxies in between).  Keep it portable.

import asyncio
import json
import sys

from gw.mqtt.client import MQTTClient
from gw.mqtt.session import ticks_ms, ticks_diff


def out(ev, **kw):
    kw["ev"] = ev
    kw["t"] = ticks_ms()
    sys.stdout.write(json.dumps(kw) + "\n")


def make(cfg, **kw):
    args = {}
    for k in ("keepalive", "clean_session", "backoff_min_ms", "backoff_max_ms", "max_pending",
              "ack_timeout_ms", "connect_timeout_ms"):
        if k in cfg:
            args[k] = cfg[k]
    args.update(kw)
    return MQTTClient(cfg["host"], cfg["port"], cfg["client_id"], **args)


async def until(pred, ms):
    t0 = ticks_ms()
    while not pred():
        if ticks_diff(ticks_ms(), t0) > ms:
            return False
        await asyncio.sleep(0.02)
    return True


def recorder(got):
    def on_message(topic, payload, retained):
        got.append((topic, payload.decode(), retained))
        out("msg", topic=topic, payload=payload.decode(), retained=retained)
    return on_message


async def start(c):
    task = asyncio.create_task(c.run())
    ok = await c.wait_connected(5000)
    return task, ok


STALL = [0]


async def monitor():
    """Longest gap between two wake-ups of a 10 ms periodic task: how long anything
    (the client included) held the event loop."""
    last = ticks_ms()
    while True:
        await asyncio.sleep(0.01)
        now = ticks_ms()
        gap = ticks_diff(now, last) - 10
        if gap > STALL[0]:
            STALL[0] = gap
        last = now


async def finish(c, task, **kw):
    out("done", stats=c.stats, pending=c.pending, last_error=c.last_error,
        max_stall_ms=STALL[0], **kw)
    await c.close()
    await task


async def sc_will(cfg):
    status = cfg["prefix"] + "/status"

    async def online(c):
        await c.publish(status, "online", retain=True, qos=1)

    c = make(cfg, will=(status, b"offline", True, 1), on_connect=online)
    task, ok = await start(c)
    await until(lambda: c.pending == 0, 3000)
    out("up", ok=ok, stats=c.stats)
    if cfg.get("close"):
        await c.close()
        await task
        out("closed", stats=c.stats)
        return
    await asyncio.sleep(30)         # the test kills us without a DISCONNECT


async def sc_qos1(cfg):
    c = make(cfg)
    task, ok = await start(c)
    out("up", ok=ok)
    t0 = ticks_ms()
    for i in range(cfg["n"]):
        await c.publish(cfg["prefix"] + "/q", "%d" % i, qos=1)
    drained = await until(lambda: c.pending == 0, 10000)
    await finish(c, task, drained=drained, ms=ticks_diff(ticks_ms(), t0))


async def sc_subscribe(cfg):
    got = []
    c = make(cfg, on_message=recorder(got))
    task, ok = await start(c)
    g = await c.subscribe(cfg["prefix"] + "/cmd/#", 1)
    out("subscribed", ok=ok, granted=g)
    await until(lambda: len(got) >= cfg["expect"], 10000)
    await finish(c, task)


async def sc_reconnect(cfg):
    p = cfg["prefix"]
    got = []

    async def online(c):
        await c.publish(p + "/status", "online-%d" % c.stats["connects"], qos=1)

    c = make(cfg, on_message=recorder(got), on_connect=online)
    task, ok = await start(c)
    await c.subscribe(p + "/#", 1)
    await until(lambda: c.pending == 0, 3000)
    out("up", ok=ok)
    down = await until(lambda: not c.connected, 10000)
    out("down", ok=down)
    k = cfg["n"]
    for i in range(k):
        await c.publish(p + "/rc", "%d" % i, qos=1)
    sent0 = await c.publish(p + "/q0", "lost", qos=0)
    out("queued", pending=c.pending, qos0=sent0)
    await until(lambda: len([m for m in got if m[0] == p + "/rc"]) >= k, 20000)
    await until(lambda: c.pending == 0, 3000)
    await finish(c, task, order=[m[1] for m in got])


async def sc_halfopen(cfg):
    p = cfg["prefix"]
    got = []
    c = make(cfg, on_message=recorder(got))
    task, ok = await start(c)
    await c.subscribe(p + "/ho", 1)
    out("up", ok=ok)
    n = cfg["n"]

    async def watch():
        # Link changes show in the counters (a drop and reconnect can both happen
        # between two polls of c.connected); poll them every 10 ms.
        seen = (c.stats["disconnects"], c.stats["connects"])
        while True:
            await asyncio.sleep(0.01)
            now = (c.stats["disconnects"], c.stats["connects"])
            if now[0] > seen[0]:
                out("down", stats=c.stats, reason=c.last_error)
            if now[1] > seen[1]:
                out("reup")
            seen = now

    watcher = asyncio.create_task(watch())
    i = 0
    t0 = ticks_ms()
    while ticks_diff(ticks_ms(), t0) < 20000:
        if i < n:
            await c.publish(p + "/ho", "%d" % i, qos=1)
            i += 1
        if i >= n and c.pending == 0 and len(set(m[1] for m in got)) >= n:
            break
        await asyncio.sleep(0.1)
    watcher.cancel()
    await finish(c, task, payloads=[m[1] for m in got])


async def sc_script(cfg):
    """Against the scripted fake broker (see harness.FakeBroker)."""
    got = []

    async def online(c):
        await c.publish("T/status", "online", qos=1)

    c = make(cfg, on_message=recorder(got), on_connect=online)
    task, ok = await start(c)
    await c.subscribe("T/in", 1)
    await until(lambda: c.pending == 0, 3000)
    await c.publish("T/d", "m1", qos=1)         # PUBACK withheld: resent after ack_timeout
    await until(lambda: c.pending == 0, 3000)
    out("m1", stats=c.stats)
    await c.publish("T/d", "m2", qos=1)         # the broker drops the link instead of acking
    await until(lambda: len(got) >= 1 and c.pending == 0, 5000)
    await finish(c, task)


async def sc_qos0_now(cfg):
    """publish_now: n QoS 0 messages written by plain calls from one reused buffer
    (the caller may rewrite it at once), then one while offline."""
    c = make(cfg)
    offline = c.publish_now(cfg["prefix"] + "/n", b"offline")
    task, ok = await start(c)
    out("up", ok=ok, offline=offline)
    buf = bytearray(16)
    held = 0
    for i in range(cfg["n"]):
        s = b"%d" % i
        buf[:len(s)] = s
        n = c.publish_now(cfg["prefix"] + "/n", memoryview(buf)[:len(s)], i % 2 == 0)
        buf[:len(s)] = b"x" * len(s)   # the caller's buffer is free again at once
        if n is None:
            break
        held = max(held, n)
        if n:
            await c.flush()
        elif i % 50 == 0:
            await asyncio.sleep(0)
    await finish(c, task, held=held)


SCENARIOS = {"will": sc_will, "qos0_now": sc_qos0_now, "qos1": sc_qos1, "subscribe": sc_subscribe,
             "reconnect": sc_reconnect, "halfopen": sc_halfopen, "script": sc_script}


async def amain(cfg):
    asyncio.create_task(monitor())
    await SCENARIOS[cfg["scenario"]](cfg)


def main():
    asyncio.run(amain(json.loads(sys.argv[1])))


main()
