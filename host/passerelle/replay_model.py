"""What the gateway must publish for a recording, computed on the host: the model
behind lockstep replays and the corpus tests.

:func:`tic_model` runs the firmware's own ``TICMeter`` (firmware/gw/drivers/tic_meter.py,
loaded from the checkout on CPython) and ``protocols.tic.TicDecoder`` over the recorded
bytes of one TIC channel, with the replay's configuration (``min_interval_s: 0``): a state
is published after the 2nd frame, then after every frame that changed one.

:func:`modbus_model` runs the firmware's own ``ModbusMeter`` (modbus_meter.py) over the
recorded answers of a reactive Modbus channel, served as the replay serves them: a state
after every poll that read something.

:func:`lockstep` turns the TIC model's waits into a ``Replay`` gate: before the chunk
that follows a frame that must be published is sent, wait until that state is on MQTT.  A loaded
machine then slows the replay down instead of merging two frames into one publish, so
a golden comparison does not depend on the speed or the load.
"""

import importlib.util
import json
import time

from . import project_root, recording
from .mpeval import Clock, NullLog


def _firmware_class(rel, name, root=None):
    path = (root or project_root()) / "firmware" / "gw" / "drivers" / rel
    spec = importlib.util.spec_from_file_location("_passerelle_" + rel[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)


def tic_model(rec, channel, speed=1.0, meter_cfg=None, root=None):
    """-> (states, frames, waits, meter stats) for the TIC channel ``channel``.

    ``states``: the state dicts the gateway publishes, in order; ``waits``: {i: n} =
    before the channel's rx chunk ``i`` is sent, ``n`` states must be on MQTT.  The
    meter's clock runs at the recorded time / ``speed`` (its index plausibility bound
    depends on the time between frames)."""
    import protocols.tic as tic

    ch = rec.channels[channel]
    mcfg = {"id": channel, "type": "tic", "mode": ch.get("mode", "auto"), "uart": 1,
            "period_s": 3600, "min_interval_s": 0}
    mcfg.update(meter_cfg or {})
    clock = Clock()
    meter = _firmware_class("tic_meter.py", "TICMeter", root)(mcfg, clock, NullLog(), tic=tic)
    dec = tic.TicDecoder(mode={"historic": tic.HISTORIC, "standard": tic.STANDARD}.get(
        mcfg["mode"], tic.AUTO))
    out, frames, waits = [], 0, {}
    rx = [ev for ev in rec.channel_events(channel) if ev.get("dir") == "rx"]
    for i, ev in enumerate(rx):
        data = recording.payload(ev)
        clock.now = int(ev["t"] / speed * 1000)
        pos = 0
        while pos < len(data):
            used, frame = dec.decode(data, pos)
            if not used:
                break
            pos += used
            if frame is None:
                continue
            meter.apply(frame, clock.now)
            frames += 1
            if frames >= 2 and (frames == 2 or meter.changed):
                meter.changed = False
                out.append(json.loads(meter.state_json()))
                waits[i + 1] = len(out)
    return out, frames, waits, dict(meter.stats)


class _CassetteBus:
    """The ModbusBus of :func:`modbus_model`: a request gets the recorded answer to the
    same bytes (replay_io.Cassette, as the replay serves it), decoded by protocols.modbus."""

    def __init__(self, cassette):
        self.cas = cassette
        self.stats = {}

    def decoder_stats(self):
        return {}

    async def request(self, address, function, register, arg, timeout_ms, retries):
        from protocols.modbus import rtu
        req = rtu.request(address, function, register, arg)
        for _ in range(retries + 1):
            ans = b"".join(self.cas.feed(req))
            if ans.startswith(req):
                ans = ans[len(req):]        # the line's echo of the request
            dec = rtu.RtuDecoder()
            dec.expect(address, function, arg if function in (3, 4) else 0)
            r = dec.decode(ans)[1] if ans else None
            if r is None and ans:
                r = dec.silence()
            if r is not None:
                return r
        return None


def modbus_model(rec, channel, root=None):
    """-> {meter id: [states]} for the reactive Modbus channel ``channel`` (its header
    lists the meters, with the config replay_config gives them): the firmware's own
    ModbusMeter (firmware/gw/drivers/modbus_meter.py, on CPython) polls the recorded
    answers (each request the answer recorded after the same bytes, as the replay's
    Cassette serves them) until its first request has none left; a state after every
    poll that read something (the replay polls once a period and publishes each)."""
    import asyncio

    from .replay_io import Cassette

    ch = rec.channels[channel]
    meter_cls = _firmware_class("modbus_meter.py", "ModbusMeter", root)
    out = {}
    for m in ch.get("meters") or ():
        cas = Cassette(rec.channel_events(channel), ch)
        cfg = {"timeout_ms": 300, "retries": 1}
        cfg.update(m)
        cfg["setup"] = {}   # set-up writes are requests of their own: the reads do not wait
        meter = meter_cls(cfg, Clock(), NullLog(), _CassetteBus(cas))
        first = next((req for req, _ in cas.exchanges if req[:1] == bytes([m["address"]])), None)
        states = out[m["id"]] = []
        while first is not None and cas.pending(first):
            if asyncio.run(meter.poll()):
                states.append(dict(meter.values))
    return out


def lockstep(waits, topic, timeout=10.0):
    """A gate for :class:`passerelle.replay.Replay`: ``gate(channel, i, collector)``
    holds chunk ``i`` until ``waits[i]`` distinct states (their values, "seq" and "ts"
    aside) were received on ``topic``
    (gives up after ``timeout``, for the rest of the replay: the comparison then shows
    what is missing)."""
    seen = {"i": 0, "last": None, "n": 0, "gave_up": False}

    def gate(name, i, collector):
        need = waits.get(i)
        if not need or seen["gave_up"]:     # after one timeout the model is off: stop waiting
            return
        end = time.monotonic() + timeout
        while True:
            with collector.lock:
                fresh = collector.messages[seen["i"]:]
                seen["i"] += len(fresh)
            for m in fresh:
                if m[0] == topic and not m[3]:
                    values = without_stamps(m[1])
                    if values != seen["last"]:
                        seen["last"] = values
                        seen["n"] += 1
            if seen["n"] >= need:
                return
            if time.monotonic() > end:
                seen["gave_up"] = True
                return
            time.sleep(0.002)
    return gate


def without_stamps(payload):
    """A state payload without the gateway's delivery stamps "seq" and "ts": a state
    republished as is (Home Assistant restarted, a reconnection) is not a new one."""
    try:
        d = json.loads(payload)
    except ValueError:
        return payload
    if isinstance(d, dict):
        d.pop("seq", None)
        d.pop("ts", None)
    return d


def distinct(states):
    """``states`` without the repeats of the one before (what a subscriber sees change)."""
    out = []
    for st in states:
        if not out or out[-1] != st:
            out.append(st)
    return out


def count_states(msgs, topic):
    """Distinct consecutive live states on ``topic`` among collector messages (their
    values: "seq" and "ts" aside)."""
    n, last = 0, None
    for m in msgs:
        if m[0] == topic and not m[3]:
            values = without_stamps(m[1])
            if values != last:
                last = values
                n += 1
    return n
