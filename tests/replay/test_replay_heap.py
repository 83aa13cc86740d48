"""What a long replay proves about memory (accelerated: 10,000 three-phase historic
Tempo frames fed as fast as the firmware reads them -- PASSERELLE_HEAP_MODE=standard
for three-phase standard frames, the heaviest, ~2x slower; the corpus already replays a
day of those at the board's heapsize):

* no MemoryError, no traceback, no board reset at the TIC gateway's guard heapsize
  (boards/emu/board.json ``heapsize_tic``, the firmware imported in place from ROMFS),
  nor for a day of three-phase standard traffic replayed at x200 at the 96K target (~ a
  64 KB ESP32 budget; measured 2026-12-07 at 4020de7: 45 runs of 45, most of them while
  other replays ran, and 95K passes, 94K fails at the first frame, the tightest point;
  before ce131b3's announce 5 runs of 86 failed there at 96K);
* no heap growth from frame 100 to frame 10,000: ``free_heap`` of the stats topic
  (published every 5 s, after gc.collect()) once the first ~100 frames are in vs. at
  rest after the last frame, within ``HEAP_NOISE`` (buffers in flight at the moment
  of a sample; a leak of one byte per frame would show 10 KB).

The first 150 frames are paced (0.04 s apart) so that the first stats sample falls
near frame 100; the rest are due at once.
"""

import json
import os

import pytest

from passerelle import recording
from passerelle.sim.linky import LinkySim

from tests.replay.helpers import BOARD, RECORDINGS, energy_labels, run_replay

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

FRAMES = int(os.environ.get("PASSERELLE_HEAP_FRAMES", "10000"))
HEAP_NOISE = 2048
MODE = os.environ.get("PASSERELLE_HEAP_MODE", "historic")
CURRENT = os.environ.get("PASSERELLE_HEAPSIZE") or BOARD["heapsize_tic"]
TARGET = "96K"

@pytest.fixture(scope="module")
def long_recording(tmp_path_factory):
    sim = LinkySim(mode=MODE, phases=3, tariff="tempo", seed=3, accel=1)
    path = tmp_path_factory.mktemp("heap") / "long.jsonl"
    chans = {"tic": recording.serial_channel(baud=9600 if MODE == "standard" else 1200)}
    with recording.Writer(path, chans, source="LinkySim %s 3P tempo seed 3" % MODE, t0=0.0) as w:
        for i, (_, raw) in enumerate(sim.stream(frames=FRAMES)):
            w.event("tic", "rx", raw, t=(i * 0.04 if i < 150 else 6.0), encoding="b64")
    return recording.read(path)


def _stats_frames(msgs):
    out = []
    for m in msgs:
        if m[0].endswith("/stats") and not m[3]:
            out.append(json.loads(m[1])["meters"]["tic"]["frames"])
    return out


def test_long_replay_memory(long_recording, mosquitto, board_root):
    heapsize = CURRENT
    res = run_replay(long_recording, mosquitto, board_root, speed=1.0, heapsize=heapsize,
                     config_overrides={"stats_period_s": 5}, settle_s=0.3,
                     until=lambda msgs: any(n >= FRAMES for n in _stats_frames(msgs)))
    log = "\n".join(res.lines[-40:])
    assert res.online, log
    assert not res.firmware_errors and not res.restarts, "\n".join(res.firmware_errors) + "\n" + log
    assert not any("MemoryError" in ln for ln in res.lines), log
    samples = [(d["meters"]["tic"]["frames"], d["free_heap"]) for d in res.stats_docs()]
    assert samples and samples[-1][0] >= FRAMES - 1, (samples, log)
    early = [s for s in samples if s[0] >= 100]
    first, last = early[0], samples[-1]
    print("\nheap %s: free %d B at frame %d, %d B at frame %d (%d stats samples)"
          % (heapsize, first[1], first[0], last[1], last[0], len(samples)))
    assert first[0] <= 1000, "no stats sample near frame 100: %s" % samples
    assert last[1] >= first[1] - HEAP_NOISE, "heap grew by %d B from frame %d to frame %d: %s" % (
        first[1] - last[1], first[0], last[0], json.dumps(samples))
    states = res.states()
    is_energy = energy_labels()
    assert states and any(is_energy(k) for k in states[-1][1]), states[-1:]


def test_no_memory_error_at_the_target_heap(mosquitto, board_root):
    """A day of three-phase standard Tempo traffic at the 96K target (states wait for
    the previous one's PUBACK instead of opening the outbox: gw.app._publisher).  Runs
    at the target whatever heapsize_tic is: the long replay above is historic traffic."""
    rec = recording.read(RECORDINGS / "sim_std_3p_tempo_day.jsonl.gz")
    res = run_replay(rec, mosquitto, board_root, speed=200, heapsize=TARGET, settle_s=0.3)
    log = "\n".join(res.lines[-40:])
    assert res.online and not res.firmware_errors and not res.restarts, log
    assert not any("MemoryError" in ln for ln in res.lines), log
