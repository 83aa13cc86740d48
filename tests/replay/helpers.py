"""Shared pieces of the replay tests: the corpus, a per-worker board root (the .mpy
build is reused), running a replay, and the host-side model of what the gateway must
publish (the firmware's own TICMeter, run on CPython over the recorded bytes)."""

import json
import os
import time
from pathlib import Path

from passerelle import recording
from passerelle.record import import_capture
from passerelle.replay import Replay

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT.parent / "shared" / "captures" / "tic"
RECORDINGS = ROOT / "tests" / "recordings"
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("PASSERELLE_UPDATE_GOLDEN") == "1"
# The corpus runs in lockstep (see lockstep()): the speed only sets how fast the
# firmware is pushed; a day of simulated traffic (~440 s on the line) takes ~2 s.
SPEED = float(os.environ.get("PASSERELLE_REPLAY_SPEED", "100"))          # captures
RECORDING_SPEED = float(os.environ.get("PASSERELLE_REPLAY_SPEED", "200"))  # simulator days
BOARD = json.loads((ROOT / "boards" / "emu" / "board.json").read_text())


def capture_names():
    return sorted(p.name for p in CAPTURES.glob("*.bin")) if CAPTURES.is_dir() else []


def recording_names():
    return sorted(p.name for p in RECORDINGS.glob("*.jsonl*"))


def capture_recording(capture, out_dir):
    out = Path(out_dir) / (Path(capture).stem + ".jsonl")
    import_capture(Path(capture).read_bytes(), out, source=Path(capture).name)
    return recording.read(out)


def run_replay(rec, broker, root, speed=SPEED, **kw):
    kw.setdefault("settle_s", 1.0)
    return Replay(rec, broker.host, broker.port, speed=speed, root=str(root), **kw).run()


class _Hal:
    def __init__(self):
        self.now = 0

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b


class _Log:
    def __getattr__(self, name):
        return lambda *a, **k: None


def expected_states(rec, channel="tic", speed=SPEED, cfg=None):
    """-> (states, frames): the states the gateway must publish for ``rec``, in order."""
    states, frames, _, _ = model(rec, channel, speed, cfg)
    return states, frames


def model(rec, channel="tic", speed=SPEED, cfg=None):
    """-> (states, frames, waits, meter stats).  The firmware's TICMeter
    (gw/drivers/tic_meter.py) fed the recorded bytes on a clock running at ``speed``:
    a state after the 2nd frame, then after every frame that changed one.  ``waits``:
    {i: n} = before the channel's rx chunk i is sent, n states must have been published
    (for :func:`lockstep`)."""
    import protocols.tic as tic
    from gw.drivers.tic_meter import TICMeter

    ch = rec.channels[channel]
    mcfg = {"id": channel, "type": "tic", "mode": ch.get("mode", "auto"), "uart": 1,
            "period_s": 3600, "min_interval_s": 0}
    mcfg.update(cfg or {})
    hal = _Hal()
    meter = TICMeter(mcfg, hal, _Log(), tic=tic)
    dec = tic.TicDecoder(mode={"historic": tic.HISTORIC, "standard": tic.STANDARD}.get(
        mcfg["mode"], tic.AUTO))
    out, frames, waits = [], 0, {}
    rx = [ev for ev in rec.channel_events(channel) if ev.get("dir") == "rx"]
    for i, ev in enumerate(rx):
        data = recording.payload(ev)
        hal.now = int(ev["t"] / speed * 1000)
        pos = 0
        while pos < len(data):
            used, frame = dec.decode(data, pos)
            if not used:
                break
            pos += used
            if frame is None:
                continue
            meter.apply(frame, hal.now)
            frames += 1
            if frames >= 2 and (frames == 2 or meter.changed):
                meter.changed = False
                out.append(json.loads(meter.state_json()))
                waits[i + 1] = len(out)
    return out, frames, waits, dict(meter.stats)


def lockstep(waits, topic, timeout=10.0):
    """A Replay ``gate``: hold the next chunk until the gateway has published the state
    of the previous frame (as the model says it must), so that a loaded machine slows
    the replay down instead of merging two frames into one publish.  Gives up after
    ``timeout`` (the comparison then shows what is missing)."""
    seen = {"i": 0, "last": None, "n": 0}

    def gate(name, i, collector):
        need = waits.get(i)
        if not need:
            return
        end = time.monotonic() + timeout
        while True:
            with collector.lock:
                fresh = collector.messages[seen["i"]:]
                seen["i"] += len(fresh)
            for m in fresh:
                if m[0] == topic and not m[3] and m[1] != seen["last"]:
                    seen["last"] = m[1]
                    seen["n"] += 1
            if seen["n"] >= need or time.monotonic() > end:
                return
            time.sleep(0.002)
    return gate


def collapse(states):
    out = []
    for s in states:
        if not out or out[-1] != s:
            out.append(s)
    return out


def energy_labels():
    import protocols.tic as tic

    def is_energy(label):
        info = tic.labels.info(label)
        return info is not None and info[0] == "energy"
    return is_energy
