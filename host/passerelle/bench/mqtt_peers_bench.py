# Portable body of the MQTT peer-client benchmark: the pip-installable MicroPython
# clients (chumicro-mqtt, aiomqttc) on the MicroPython unix port, measured the way
# mqtt_client_bench.py measures ours.  Driven by passerelle.bench.mqtt_peers, which
# passes a JSON config as argv[1] and reads the line "BENCH {json}".
#
# qos0:    N QoS0 publishes through the client's normal API, elapsed until the client
#          has written them all; rate = N / elapsed.
# qos1:    N QoS1 publishes, elapsed until the last PUBACK; as many in flight as the
#          client allows (chumicro: its tx queue; aiomqttc: publish() waits for its ack).
# latency: publish a QoS0 message to a topic the same client subscribes to and wait
#          until its message callback sees it: publish -> broker -> delivered, one at a time.
import json
import sys

from mqtt_bench_timing import (LOST_MS, WARMUP, pcts, round_trips,  # this script's folder
                               ticks_diff, ticks_ms, ticks_us)


# ---------------------------------------------------------------- chumicro-mqtt
def bench_chumicro(cfg):
    from chumicro_mqtt import MQTTClient, MQTTBackpressureError
    from chumicro_sockets.sockets_factory import fixed_connector_factory

    def client(cid):
        # its own transport (chumicro_sockets' MicroPython adapter), as from_config() builds it
        c = MQTTClient(transport_factory=fixed_connector_factory(cfg["host"], cfg["port"]),
                       client_id=cid, keep_alive_seconds=30)
        c.connect()
        t0 = ticks_ms()
        while c.state != "connected":
            c.handle(ticks_ms())
            if ticks_diff(ticks_ms(), t0) > 5000:
                raise OSError("chumicro: no CONNACK (state %s)" % c.state)
        return c

    def spin(c, cond, ms):
        t0 = ticks_ms()
        while not cond():
            c.handle(ticks_ms())
            if ticks_diff(ticks_ms(), t0) > ms:
                return False
        return True

    payload = b"x" * cfg["payload"]
    r = {}
    for qos, n in ((0, cfg["n_qos0"]), (1, cfg["n_qos1"])):
        c = client("chu-q%d" % qos)
        acks = [0]

        def on_pub(topic, payload_bytes):
            acks[0] += 1

        topic = cfg["prefix"] + "/chu%d" % qos
        t0 = ticks_us()
        for _ in range(n):
            while True:
                try:
                    if qos:
                        c.publish(topic, payload, qos=1, on_publish=on_pub)
                    else:
                        c.publish(topic, payload)
                    break
                except MQTTBackpressureError:
                    c.handle(ticks_ms())
        if qos:
            ok = spin(c, lambda: acks[0] >= n, 30000)
        else:
            ok = spin(c, lambda: not c._tx_queue and c._partial_send is None, 30000)
        dt = ticks_diff(ticks_us(), t0)
        r["qos%d_msgs_per_s" % qos] = round(n * 1000000 / dt) if ok else 0
        c.disconnect()
        spin(c, lambda: c.state == "disconnected", 1000)
    box = [None]

    def on_message(topic, payload_bytes):
        box[0] = ticks_us()

    c = client("chu-lat")
    c.on_message = on_message
    topic = cfg["prefix"] + "/chulat"
    subbed = [False]

    def on_sub(t, q):
        subbed[0] = True

    c.subscribe(topic, 0, on_subscribe=on_sub)
    spin(c, lambda: subbed[0], 5000)
    lat = []
    for i in range(cfg["n_latency"] + WARMUP):    # round_trips() without asyncio
        box[0] = None
        t0 = ticks_us()
        c.publish(topic, payload)
        if not spin(c, lambda: box[0] is not None, LOST_MS):
            lat.append(LOST_MS * 1000)
        elif i >= WARMUP:
            lat.append(ticks_diff(box[0], t0))
    r["latency_p50_ms"], r["latency_p99_ms"] = pcts(lat)
    c.disconnect()
    return r


# ---------------------------------------------------------------- aiomqttc
def bench_aiomqttc(cfg):
    import asyncio
    import aiomqttc

    def _quiet(msg=""):
        pass

    aiomqttc.log = _quiet   # it prints a timestamped line per PUBACK/SUBACK: not what we measure

    async def client(cid):
        c = aiomqttc.MQTTClient(client_id=cid, server=cfg["host"], port=cfg["port"], keepalive=30)
        if not await c.connect(timeout_sec=5):
            raise OSError("aiomqttc: no connection")
        return c

    async def main():
        payload = b"x" * cfg["payload"]
        r = {}
        for qos, n in ((0, cfg["n_qos0"]), (1, cfg["n_qos1_slow"])):
            c = await client("aio-q%d" % qos)
            topic = cfg["prefix"] + "/aio%d" % qos
            t0 = ticks_us()
            ok = True
            for _ in range(n):
                if not await c.publish(topic, payload, qos=qos):
                    ok = False
            dt = ticks_diff(ticks_us(), t0)
            r["qos%d_msgs_per_s" % qos] = round(n * 1000000 / dt) if ok else 0
            await c.disconnect()
        box = [None]

        async def on_message(proto, topic, msg, retained):
            box[0] = ticks_us()

        c = await client("aio-lat")
        c.on_message = on_message
        topic = cfg["prefix"] + "/aiolat"
        await c.subscribe(topic, 0)
        await asyncio.sleep(0.3)
        r["latency_p50_ms"], r["latency_p99_ms"] = await round_trips(
            lambda: c.publish(topic, payload, qos=0), box, cfg["n_latency"])
        await c.disconnect()
        return r

    return asyncio.run(main())


cfg = json.loads(sys.argv[1])
res = {"chumicro_mqtt": bench_chumicro, "aiomqttc": bench_aiomqttc}[cfg["client"]](cfg)
sys.stdout.write("BENCH " + json.dumps(res) + "\n")
