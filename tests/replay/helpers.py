"""Shared pieces of the replay tests: the corpus, a per-worker board root (the .mpy
build is reused), running a replay, and the host-side model of what the gateway must
publish (the firmware's own TICMeter, run on CPython over the recorded bytes)."""

import json
import os
from pathlib import Path

from passerelle import recording
from passerelle.record import import_capture
from passerelle.replay import Replay
from passerelle.replay_model import distinct, lockstep, tic_model, without_stamps  # noqa: F401

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


def recording_names(modbus=False):
    """The simulator's recordings: TIC streams, or (``modbus``) the sim_modbus_* ones
    (``passerelle emulate --record`` of the gateway polling the simulated meters)."""
    return sorted(p.name for p in RECORDINGS.glob("*.jsonl*")
                  if p.name.startswith("sim_modbus_") == modbus)


def capture_recording(capture, out_dir):
    out = Path(out_dir) / (Path(capture).stem + ".jsonl")
    import_capture(Path(capture).read_bytes(), out, source=Path(capture).name)
    return recording.read(out)


def run_replay(rec, broker, root, speed=SPEED, **kw):
    """The board's heapsize (boards/emu/board.json) unless PASSERELLE_HEAPSIZE says."""
    kw.setdefault("settle_s", 1.0)
    if not kw.get("heapsize"):
        kw["heapsize"] = os.environ.get("PASSERELLE_HEAPSIZE") or None
    return Replay(rec, broker.host, broker.port, speed=speed, root=str(root), **kw).run()


def expected_states(rec, channel="tic", speed=SPEED, cfg=None):
    """-> (states, frames): the states the gateway must publish for ``rec``, in order."""
    states, frames, _, _ = model(rec, channel, speed, cfg)
    return states, frames


def model(rec, channel="tic", speed=SPEED, cfg=None):
    """-> (states, frames, waits, meter stats): see passerelle.replay_model.tic_model."""
    return tic_model(rec, channel, speed, cfg)


def unstamped(payload):
    """A state payload without the gateway's delivery stamps "seq" and "ts" (JSON text
    with sorted keys, so that equal states compare equal)."""
    d = without_stamps(payload)
    return payload if d is payload else json.dumps(d, sort_keys=True)


collapse = distinct     # states without the repeats of the one before


def energy_labels():
    import protocols.tic as tic

    def is_energy(label):
        info = tic.labels.info(label)
        return info is not None and info[0] == "energy"
    return is_energy
