"""What the gateway must publish for a recording, computed on the host: the model
behind lockstep replays and the corpus tests.

:func:`tic_model` runs the firmware's own ``TICMeter`` (firmware/gw/drivers/tic_meter.py,
loaded from the checkout on CPython) and ``protocols.tic.TicDecoder`` over the recorded
bytes of one TIC channel, with the replay's configuration (``min_interval_s: 0``): a state
is published after the 2nd frame, then after every frame that changed one.

:func:`lockstep` turns that into a ``Replay`` gate: before the chunk that follows a
frame that must be published is sent, wait until that state is on MQTT.  A loaded
machine then slows the replay down instead of merging two frames into one publish, so
a golden comparison does not depend on the speed or the load.
"""

import importlib.util
import json
import time

from . import project_root, recording
from .mpeval import Clock, NullLog


def _tic_meter_class(root=None):
    path = (root or project_root()) / "firmware" / "gw" / "drivers" / "tic_meter.py"
    spec = importlib.util.spec_from_file_location("_passerelle_tic_meter", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.TICMeter


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
    meter = _tic_meter_class(root)(mcfg, clock, NullLog(), tic=tic)
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
