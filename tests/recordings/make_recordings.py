"""Regenerate the simulator recordings of this directory (deterministic: fixed seeds).

    .venv/bin/python tests/recordings/make_recordings.py

Each is ``passerelle sim linky ... -o raw.bin`` then ``passerelle import-capture raw.bin
--mode M -o NAME.jsonl.gz``; ``ha_restart`` adds an MQTT channel on which Home Assistant
announces a restart (``homeassistant/status`` = ``online``) half-way through.  After
regenerating, refresh the golden files: ``PASSERELLE_UPDATE_GOLDEN=1 pytest tests/replay``.

The Modbus recordings (``sim_modbus_*``) are what ``passerelle emulate --record``
writes while the gateway polls the simulated meters (``passerelle.sim.modbus``): the
gateway's requests and the meters' answers, replayed as a cassette.

The "day" recordings run the meter clock ``accel`` times faster than the line, so a
whole day (HP/HC switches, the Tempo colour announced at 20:00 and changing at 06:00,
the midnight maxima reset) fits in a few hundred frames, which the replay tests feed
50x faster than the line rate: a day of traffic in seconds.  ``accel`` is kept low
enough that the index rises < 1000 Wh per frame (the firmware's plausibility bound
with no elapsed time).
"""

import gzip
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1] / "host"), str(HERE.parents[1])]

from passerelle import cli, recording  # noqa: E402

RECORDINGS = [
    # name, mode, phases, tariff, frames, accel, noise
    ("sim_hist_1p_base", "historic", 1, "base", 30, 1, 0.0),
    ("sim_hist_1p_hc_day", "historic", 1, "hc", 300, 200, 0.0),
    ("sim_hist_3p_tempo", "historic", 3, "tempo", 40, 100, 0.0),
    ("sim_std_1p_hc_noise", "standard", 1, "hc", 60, 60, 0.01),
    ("sim_std_3p_tempo_day", "standard", 3, "tempo", 224, 300, 0.0),
]


def make(name, mode, phases, tariff, frames, accel, noise, tmp):
    raw = Path(tmp) / (name + ".bin")
    argv = ["sim", "linky", "--mode", mode, "--phases", str(phases), "--tariff", tariff,
            "--frames", str(frames), "--accel", str(accel), "--seed", "7", "-o", str(raw)]
    if noise:
        argv += ["--noise", str(noise)]
    assert cli.main(argv) == 0
    out = HERE / (name + ".jsonl.gz")
    assert cli.main(["import-capture", str(raw), "--mode", mode, "--source",
                     "passerelle " + " ".join(argv), "-o", str(out)]) == 0
    return out


def add_ha_restart(path, out):
    """Copy ``path`` adding an MQTT channel: HA restarts half-way through."""
    rec = recording.read(path)
    chans = dict(rec.channels)
    chans["ha"] = recording.mqtt_channel("mqtt://127.0.0.1:1883", ["homeassistant/status"])
    mid = rec.duration / 2
    with recording.Writer(out, chans, source=rec.header.get("source", "") + " + HA restart", t0=0.0) as w:
        done = False
        for ev in rec.events:
            if not done and ev["t"] >= mid:
                w.event("ha", "rx", b"online", t=mid, encoding="b64", topic="homeassistant/status",
                        qos=0, retain=False)
                done = True
            w.event(ev["ch"], ev["dir"], recording.payload(ev), t=ev["t"])


# name, meters (config entries, uart 2), seconds recorded
MODBUS = [
    ("sim_modbus_sdm630", [{"id": "pac", "model": "sdm630", "address": 1, "period_s": 1}], 8),
    # two meters polled at different periods, a transceiver that echoes the requests
    ("sim_modbus_two_meters_echo",
     [{"id": "pac", "model": "sdm630", "address": 1, "period_s": 1, "echo": True},
      {"id": "pv", "model": "sdm120", "address": 2, "period_s": 2, "echo": True}], 8),
]


def make_modbus(name, meters, seconds):
    """Record the gateway polling the simulated meters (no broker: it polls anyway)."""
    import time

    from passerelle.emulate import Emulation
    out = HERE / (name + ".jsonl.gz")
    cfg = {"device_id": "rec", "mqtt": {"host": "127.0.0.1", "port": 9}, "network": {"type": "none"},
           "stats_period_s": 3600, "meters": [dict(m, type="modbus", uart=2) for m in meters]}
    with Emulation(config=cfg, record=str(out), seed=7, echo=False):
        time.sleep(seconds)
    return out


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for spec in RECORDINGS:
            out = make(*spec, tmp)
            print(out.name, out.stat().st_size, "bytes")
        add_ha_restart(HERE / "sim_hist_1p_base.jsonl.gz", HERE / "sim_hist_1p_base_ha_restart.jsonl.gz")
    for spec in MODBUS:
        out = make_modbus(*spec)
        print(out.name, out.stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
