# Portable timing shared by the MQTT benchmark bodies (mqtt_client_bench.py for ours,
# mqtt_peers_bench.py for the peer clients), so that every client's latency is measured
# the same way.  Those scripts import it from their own folder: the first entry of
# sys.path on the MicroPython unix port as on CPython.

try:
    from time import ticks_us, ticks_ms, ticks_diff
except ImportError:
    import time

    def ticks_us():
        return int(time.perf_counter() * 1000000)

    def ticks_ms():
        return int(time.perf_counter() * 1000)

    def ticks_diff(a, b):
        return a - b

WARMUP = 20         # round trips made before measuring
LOST_MS = 2000      # a message not back by then counts this long


def pcts(lat):
    """(p50, p99) in ms of a list of latencies in us (sorted in place)."""
    lat.sort()
    return lat[len(lat) // 2] / 1000, lat[min(len(lat) - 1, (len(lat) * 99) // 100)] / 1000


async def round_trips(publish, box, n):
    """publish -> broker -> delivered, one message at a time, on asyncio: ``await
    publish()`` sends one QoS0 message to a topic the client subscribes to, and its
    message callback sets ``box[0] = ticks_us()``.  ``n`` round trips after WARMUP ones
    -> (p50, p99) in ms."""
    import asyncio

    lat = []
    for i in range(n + WARMUP):
        box[0] = None
        t0 = ticks_us()
        await publish()
        t1 = ticks_ms()
        while box[0] is None and ticks_diff(ticks_ms(), t1) < LOST_MS:
            await asyncio.sleep(0)
        if box[0] is None:
            lat.append(LOST_MS * 1000)
        elif i >= WARMUP:
            lat.append(ticks_diff(box[0], t0))
    return pcts(lat)
