# Portable body of the MQTT client benchmark: runs on the MicroPython unix port (the
# figure that matters) and on CPython.  Driven by passerelle.bench.mqtt, which passes a
# JSON config as argv[1] and reads the line "BENCH {json}".
#
# qos0:    N QoS0 publishes, each awaited (the client writes it at once: one packet,
#          one write, TCP_NODELAY); rate = N / elapsed.
# qos1:    N QoS1 publishes through the client's bounded queue (max_pending in flight),
#          elapsed until the last PUBACK; plus the same with max_pending=1 (one publish
#          in flight at a time: the PUBACK round trip, where Nagle would show as 40 ms).
# qos1 rtt: one QoS1 publish at a time, publish() -> its PUBACK received (p50/p99).
# latency: publish a QoS0 message to a topic the same client subscribes to and wait
#          until on_message sees it: publish -> broker -> delivered, one at a time.

import asyncio
import json
import sys

from gw.mqtt.client import MQTTClient
from gw.mqtt.session import ticks_ms, ticks_diff

from mqtt_bench_timing import WARMUP, pcts, round_trips, ticks_us  # this script's folder


async def _client(cfg, cid, **kw):
    c = MQTTClient(cfg["host"], cfg["port"], cid, keepalive=30, **kw)
    task = asyncio.create_task(c.run())
    if not await c.wait_connected(5000):
        raise OSError("no connection to the broker")
    return c, task


async def _drain(c, ms):
    t0 = ticks_ms()
    while c.pending and ticks_diff(ticks_ms(), t0) < ms:
        await asyncio.sleep(0)


async def bench_qos(cfg, qos, n, max_pending, payload):
    c, task = await _client(cfg, "bench-q%d-%d" % (qos, max_pending), max_pending=max_pending)
    topic = cfg["prefix"] + "/q%d" % qos
    t0 = ticks_us()
    for _ in range(n):
        await c.publish(topic, payload, qos=qos)
    await _drain(c, 30000)
    dt = ticks_diff(ticks_us(), t0)
    ok = c.pending == 0 and c.stats["dropped_qos%d" % qos] == 0
    await c.close()
    await task
    return n * 1000000 / dt if ok else 0.0, c.stats


async def bench_qos1_rtt(cfg, n, payload):
    """QoS1 publish -> PUBACK, one at a time: (p50, p99) in ms."""
    c, task = await _client(cfg, "bench-rtt", max_pending=1)
    topic = cfg["prefix"] + "/rtt"
    lat = []
    for i in range(n + WARMUP):
        t0 = ticks_us()
        await c.publish(topic, payload, qos=1)
        await _drain(c, 2000)
        if i >= WARMUP:
            lat.append(ticks_diff(ticks_us(), t0))
    await c.close()
    await task
    return pcts(lat)


async def bench_latency(cfg, n, payload):
    box = [None]

    def on_message(topic, msg, retained):
        box[0] = ticks_us()

    c, task = await _client(cfg, "bench-lat", on_message=on_message)
    topic = cfg["prefix"] + "/lat"
    await c.subscribe(topic, 0)
    res = await round_trips(lambda: c.publish(topic, payload, qos=0), box, n)
    await c.close()
    await task
    return res


async def main(cfg):
    payload = b"x" * cfg["payload"]
    r = {}
    r["qos0_msgs_per_s"], st0 = await bench_qos(cfg, 0, cfg["n_qos0"], 32, payload)
    r["qos1_msgs_per_s"], st1 = await bench_qos(cfg, 1, cfg["n_qos1"], cfg["max_pending"], payload)
    r["qos1_sequential_msgs_per_s"], _ = await bench_qos(cfg, 1, cfg["n_qos1"] // 4, 1, payload)
    r["latency_p50_ms"], r["latency_p99_ms"] = await bench_latency(cfg, cfg["n_latency"], payload)
    r["qos1_publish_p50_ms"], r["qos1_publish_p99_ms"] = await bench_qos1_rtt(
        cfg, cfg["n_latency"], payload)
    r["nodelay"] = st1["nodelay"]
    r["resent"] = st1["resent"]
    for k in ("qos0_msgs_per_s", "qos1_msgs_per_s", "qos1_sequential_msgs_per_s"):
        r[k] = round(r[k])
    for k in ("latency_p50_ms", "latency_p99_ms", "qos1_publish_p50_ms", "qos1_publish_p99_ms"):
        r[k] = round(r[k], 3)
    sys.stdout.write("BENCH " + json.dumps(r) + "\n")


asyncio.run(main(json.loads(sys.argv[1])))
