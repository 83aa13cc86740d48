"""Memory of Modbus meters on the emulated board, firmware imported in place from a ROMFS
image (as tests/firmware/test_heap.py does for the Linky alone):

* two Modbus meters on one RS-485 bus at the board budget, -X heapsize=96K on the
  64-bit unix port: measured ~7-8 KB free in steady state before meter states went out
  with QoS 1 through the outbox (issue 7); since then a publish fails a small allocation
  there, so 96K is an expected failure (the Linky alone now passes at 96K, see
  firmware/README.md Memory) and the board's heapsize (112K) is checked as well;
* a Linky plus the two Modbus meters run at the filesystem budget, 144K (heapsize_fs):
  the Modbus part costs ~20 KB (codec, maps and drivers imported ~12 KB, their qstrs,
  bus and meters ~5 KB), which 96K does not have next to the TIC decoder (see
  firmware/README.md Memory)."""

import json
import os
import shutil
import time

import pytest

from passerelle.romfs import build_image
from tests.firmware.feed import ROOT, Firmware, Recorder, TicFeed
from tests.modbus.sim import RtuLink
from tests.modbus.test_modbus_e2e import PAC, PV

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

RUN_S = float(os.environ.get("PASSERELLE_HEAP_RUN_S", "8"))
MIN_FREE = 4 * 1024
MAX_GROWTH = 2048


@pytest.mark.parametrize("heapsize,tic", [
    pytest.param("96K", False, marks=pytest.mark.xfail(
        reason="not met: at 96K, with the board.json flash deploys, a poll fails a 328 B "
               "allocation (the bus request's coroutine frame); without board.json it passed "
               "with 4.9 KB free (2026-12-07, firmware/README.md Memory)",
        strict=False)),
    ("112K", False), ("144K", True)])
def test_modbus_meters_heap(micropython, mosquitto, tmp_path, heapsize, tic):
    image = build_image(ROOT, tmp_path / "build").image
    root = tmp_path / "board"
    root.mkdir()
    shutil.copyfile(ROOT / "firmware" / "main.py", root / "main.py")
    mb = {"type": "modbus", "uart": 2, "de_pin": 4, "period_s": 1, "timeout_ms": 250}
    meters = [dict(mb, id="pac", model="sdm630", address=1),
              dict(mb, id="pv", model="sdm120", address=2)]
    if tic:
        meters.insert(0, {"id": "linky", "uart": 1, "period_s": 5, "min_interval_s": 1})
    cfg = {"device_id": "heap", "stats_period_s": 5,
           "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "keepalive": 10},
           "network": {"type": "none"}, "meters": meters}
    (root / "config.json").write_text(json.dumps(cfg))
    feed = TicFeed(period_s=0.5) if tic else None
    link = RtuLink({1: ("sdm630", PAC), 2: ("sdm120", PV)}).start()
    rec = Recorder(mosquitto.host, mosquitto.port)
    uarts = {"2": link.port}
    if tic:
        uarts["1"] = feed.port
    fw = Firmware(micropython, root, {"uart": uarts}, heapsize=heapsize, paths=[],
                  script=root / "main.py", romfs=image)
    try:
        assert rec.wait(lambda: (rec.json("passerelle/heap/pv/state") and
                                 (not tic or "EAST" in (rec.json("passerelle/heap/linky/state")
                                                        or {})))
                        or fw.proc.poll() is not None, 40), fw.output
        t_end = time.monotonic() + RUN_S
        while time.monotonic() < t_end:
            assert fw.proc.poll() is None and "MemoryError" not in fw.output, fw.output
            time.sleep(0.5)
        def frees():
            return [json.loads(p)["free_heap"] for t, p in list(rec.history)
                    if t == "passerelle/heap/stats"]

        assert rec.wait(lambda: len(frees()) >= 3, 15), fw.output
        stats = rec.json("passerelle/heap/stats")
        assert stats["restarts"] == {}, (stats, fw.output)
        frees = frees()
        print("\nheap %s, %sSDM630 + SDM120: boot free %d B, steady free %s B"
              % (heapsize, "Linky + " if tic else "", fw.boot_report()["free_heap"], frees))
        assert stats["meters"]["pac"]["frames"] >= RUN_S / 2, stats
        assert min(frees) > MIN_FREE, frees
        # (the first stats come while discovery is still announcing)
        assert frees[-1] >= frees[1] - MAX_GROWTH, "the heap grows: %s" % frees
    finally:
        fw.kill()
        rec.stop()
        link.stop()
        if feed is not None:
            feed.stop()
    assert "MemoryError" not in fw.output and "Traceback" not in fw.output, fw.output
