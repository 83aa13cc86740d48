"""``passerelle replay`` as a command: embedded broker by default, --expect /
--update-golden, a readable diff and exit 1 on a mismatch, --into a serial port."""

import json
import os
import subprocess
import sys
import threading
import time
import tty

import pytest

from passerelle import golden, recording
from passerelle.replay import Replay, replay_config

from tests.replay.helpers import RECORDINGS

pytestmark = pytest.mark.slow

REC = RECORDINGS / "sim_hist_1p_base.jsonl.gz"


def _replay(*args, rec=REC, timeout=120):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "passerelle.cli", "replay", str(rec), *args],
                          env=env, capture_output=True, text=True, timeout=timeout)


def _small_recording(tmp_path, frames=12):
    """The first ``frames`` frames of the historic base recording."""
    rec = recording.read(REC)
    out = tmp_path / "small.jsonl"
    n = 0
    with recording.Writer(out, rec.channels, source="first frames of " + REC.name, t0=0.0) as w:
        for ev in rec.events:
            data = recording.payload(ev)
            w.event(ev["ch"], ev["dir"], data, t=ev["t"])
            n += data.count(b"\x03")
            if n >= frames:
                break
    return out


def test_update_then_expect_then_mismatch_with_embedded_amqtt(tmp_path):
    gold = tmp_path / "g.jsonl"
    small = _small_recording(tmp_path)
    p = _replay("--speed", "20", "--expect", str(gold), "--update-golden", rec=small)
    assert p.returncode == 0, p.stderr
    assert "embedded amqtt" in p.stderr and "golden written" in p.stderr
    head, msgs = golden.read(gold)
    assert head["recording"] == small.name
    states = [m for m in msgs if m["topic"] == "passerelle/replay/tic/state"]
    assert len(states) >= 5 and all("BASE" in m["payload"] for m in states)

    # tamper with one state: the replay now fails with a per-topic diff
    i = msgs.index(states[3])
    msgs[i] = {"topic": states[3]["topic"], "payload": dict(states[3]["payload"], BASE=1)}
    golden.write(gold, msgs, recording=REC.name)
    p = _replay("--speed", "20", "--expect", str(gold), rec=small)
    assert p.returncode == 1, p.stderr
    assert "MISMATCH" in p.stderr
    assert "~ passerelle/replay/tic/state" in p.stdout
    assert "\"BASE\": 1," in p.stdout and "\n    -{" in p.stdout and "\n    +{" in p.stdout


def test_usage_errors(tmp_path):
    assert _replay("--update-golden").returncode == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n")
    p = subprocess.run([sys.executable, "-m", "passerelle.cli", "replay", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "header is not JSON" in p.stderr


def test_replay_config_maps_channels_to_uarts():
    rec = recording.Recording(recording.header({
        "linky": recording.serial_channel(baud=9600),
        "mb": recording.serial_channel(baud=9600, bits=8, parity="N", protocol="modbus-rtu", reactive=True),
        "ha": recording.mqtt_channel("mqtt://x:1883")}), [])
    cfg, uarts = replay_config(rec, broker=("127.0.0.1", 1234))
    assert uarts == {"linky": "1", "mb": "2"}
    assert cfg["meters"] == [{"id": "linky", "type": "tic", "mode": "standard", "uart": 1,
                              "period_s": 3600, "min_interval_s": 0}]
    assert cfg["mqtt"] == {"host": "127.0.0.1", "port": 1234}


@pytest.mark.mosquitto
def test_into_a_serial_port_keeps_the_recorded_pace(tmp_path, mosquitto):
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    name = os.ttyname(slave)
    rec = recording.read(REC)
    want = rec.payload_bytes("tic")
    got = bytearray()
    stop = threading.Event()

    def reader():
        import select
        while not stop.is_set():
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                got.extend(os.read(master, 4096))

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    try:
        t0 = time.monotonic()
        res = Replay(rec, mosquitto.host, mosquitto.port, into=name, speed=20.0, settle_s=0.2).run()
        elapsed = time.monotonic() - t0
        deadline = time.monotonic() + 5
        while len(got) < len(want) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        th.join(2)
        os.close(master)
        os.close(slave)
    assert bytes(got) == want
    assert res.online is None and res.feeders["tic"].stats["bytes"] == len(want)
    assert rec.duration / 20 * 0.8 < res.timeline_s < rec.duration / 20 + 3, (res.timeline_s, elapsed)
    json.dumps(res.golden())


@pytest.mark.mosquitto
def test_fast_lockstep_replay_matches_the_golden_file(mosquitto, board_root):
    """--fast --lockstep: as fast as the firmware goes, same output as the paced corpus."""
    from tests.replay.helpers import GOLDEN
    rec = recording.read(RECORDINGS / "sim_hist_3p_tempo.jsonl.gz")
    res = Replay(rec, mosquitto.host, mosquitto.port, fast=True, lockstep=True, root=str(board_root),
                 settle_s=0.3).run()
    _, expected = golden.read(GOLDEN / "sim_hist_3p_tempo.golden.jsonl")
    assert golden.compare(expected, res.golden()) == []
    assert res.online and not res.firmware_errors
