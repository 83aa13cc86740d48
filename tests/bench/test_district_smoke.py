"""`passerelle district`: 20 gateways (unmodified gw.app.Gateway, 10 per MicroPython
process) at one standard frame per second against mosquitto for a few seconds: every
gateway connects and publishes, no sequence gap, every frame of the window delivered."""

import json
import subprocess
import sys

import pytest


@pytest.mark.mosquitto
def test_district_20_gateways_no_loss(tmp_path, mosquitto, micropython):
    out = tmp_path / "district.json"
    proc = subprocess.run([sys.executable, "-m", "passerelle.cli", "district", "--gateways", "20",
                           "--procs", "2", "--duration", "4", "--broker", mosquitto.url,
                           "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    rep = json.loads(out.read_text())
    assert rep["connected"] == 20, proc.stdout + proc.stderr
    assert rep["processes"] == 2
    assert rep["silent_gateways"] == 0
    assert rep["lost_messages"] == 0
    assert rep["undelivered_in_window"] == 0
    assert rep["messages"] >= 20 * 4 - 20            # one frame per gateway per second
    assert rep["latency_p50_ms"] is not None and rep["latency_p99_ms"] >= rep["latency_p50_ms"]
    assert rep["targets"]["no_loss"] is True
    assert [s["gateways"] for s in rep["firmware"]] == [10, 10]
    assert sum(s["frames_decoded"] for s in rep["firmware"]) == sum(s["frames_fed"] for s in rep["firmware"])
    assert "no loss" in proc.stdout and "PASS" in proc.stdout
