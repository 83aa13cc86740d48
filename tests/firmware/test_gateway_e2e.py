"""The whole gateway on the MicroPython unix port: TIC over TCP in, mosquitto out."""

import json
import time

import pytest

from tests.firmware.feed import (FIRMWARE, ROOT, Firmware, Recorder, TicFeed, have_tic,
                                 standard_1p_groups, write_root)

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(not have_tic(), reason="protocols.tic decoder/encoder not landed yet"),
]

BASE = "passerelle/e2e"
STATE = BASE + "/linky/state"


@pytest.fixture
def feed():
    f = TicFeed()
    try:
        yield f
    finally:
        f.stop()


def start(micropython, root, feed, **kw):
    return Firmware(micropython, root, {"uart": {"1": feed.port}}, **kw)


def complete_state(rec):
    s = rec.json(STATE)
    return s if s and "EAST" in s and "tempo_today" in s and s.get("phases") == 3 else None


def test_end_to_end(micropython, mosquitto, feed, recorder, tmp_path):
    write_root(tmp_path, mosquitto.port)
    fw = start(micropython, tmp_path, feed)
    try:
        assert recorder.wait(lambda: recorder.get(BASE + "/status") == b"online", 30), fw.output
        state = recorder.wait(lambda: complete_state(recorder), 30)
        assert state, fw.output
        # numbers vs strings, padding stripped, derived keys
        assert isinstance(state["EAST"], int) and state["EAST"] >= 12345678
        assert isinstance(state["SINSTS"], int) and isinstance(state["IRMS2"], int)
        assert state["URMS1"] == 230 and state["PREF"] == 12 and state["SMAXSN-1"] == 4040
        assert state["LTARF"] == "HP  BLEU" and state["NGTF"] == "TEMPO"
        assert state["ADSC"] == "041876097263" and state["STGE"] == "063A0001"
        assert state["DATE"].startswith("H230301")
        assert state["tempo_today"] == "white" and state["tempo_tomorrow"] == "blue"
        assert "EASF03" not in state  # a zero index is never published

        # discovery: one retained config per label, published when first seen
        disc = "homeassistant/sensor/e2e/linky_east/config"
        cfg = recorder.wait(lambda: recorder.json(disc), 20)
        assert cfg["device_class"] == "energy" and cfg["state_class"] == "total_increasing"
        assert cfg["unit_of_measurement"] == "Wh" and cfg["state_topic"] == STATE
        assert cfg["availability_topic"] == BASE + "/status"
        assert cfg["device"]["manufacturer"] == "Passerelle"
        sin = recorder.wait(lambda: recorder.json("homeassistant/sensor/e2e/linky_sinsts/config"))
        assert sin["device_class"] == "apparent_power" and sin["unit_of_measurement"] == "VA"
        tempo = recorder.wait(
            lambda: recorder.json("homeassistant/sensor/e2e/linky_tempo_tomorrow/config"))
        assert tempo["device_class"] == "enum"
        assert recorder.wait(lambda: recorder.json("homeassistant/sensor/e2e/linky_ltarf/config"))

        # boot report on stdout and on MQTT (retained, with the reset cause)
        boot = fw.boot_report()
        assert boot["config"] == "ok" and boot["errors"] == [] and boot["board"] == "emu"
        assert boot["free_heap"] > 0 and boot["version"]
        mq_boot = recorder.wait(lambda: recorder.json(BASE + "/boot"))
        assert mq_boot["reset_cause"] == "power_on" and mq_boot["config"] == "ok"

        # stats topic
        stats = recorder.wait(lambda: recorder.json(BASE + "/stats"), 20)
        assert stats["meters"]["linky"]["frames"] > 0 and stats["free_heap"] > 0

        # Home Assistant restart (birth message): discovery is published again
        n = sum(1 for t, _ in recorder.history if t == disc)
        recorder.publish("homeassistant/status", b"online")
        assert recorder.wait(lambda: sum(1 for t, _ in recorder.history if t == disc) > n, 20)

        # the state is republished on change; the index never goes down
        time.sleep(3)
        easts = [json.loads(p)["EAST"] for t, p in recorder.history
                 if t == STATE and "EAST" in json.loads(p)]
        assert len(easts) >= 2 and easts == sorted(easts)
        assert "Traceback" not in fw.output and "MemoryError" not in fw.output
        # state, discovery and boot are retained: a late subscriber gets them at once
        late = Recorder(mosquitto.host, mosquitto.port)
        try:
            assert late.wait(lambda: late.get(STATE) and late.get(disc) and late.get(BASE + "/boot")
                             and late.retained[STATE] and late.retained[disc], 10)
        finally:
            late.stop()
    finally:
        fw.kill()
    # the broker publishes the will when the process dies
    assert recorder.wait(lambda: recorder.get(BASE + "/status") == b"offline", 30)


def test_bad_config_exits_78_with_boot_report(micropython, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"device_id": "Bad Id", "mqtt": {"host": "127.0.0.1"}, "network": {"type": "none"},
         "meters": [{"id": "linky", "mode": "histo"}]}))
    (tmp_path / "secrets.json").write_text("{oops")
    fw = Firmware(micropython, tmp_path, {})
    try:
        assert fw.wait(30) == 78, fw.output
    finally:
        fw.kill()
    boot = fw.boot_report()
    assert boot["config"] == "error"
    assert boot["errors"] == [
        "secrets.json: invalid JSON",
        'device_id: expected 1-32 characters from a-z, 0-9, "_" and "-", got "Bad Id"',
        'meters[0].mode: expected one of "auto", "historic", "standard", got "histo"',
    ]


TWO = """
import asyncio, hal
from gw import app, config

def gateway(dev, uart_port, mqtt_port):
    cfg = {"device_id": dev, "stats_period_s": 5,
           "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
           "network": {"type": "none"},
           "meters": [{"id": "linky", "period_s": 5, "min_interval_s": 1}]}
    return app.Gateway(cfg, {}, hal.open("emu", {"uart": {"1": uart_port}}))

async def main(port_a, port_b, mqtt_port):
    a = gateway("gwa", port_a, mqtt_port)
    b = gateway("gwb", port_b, mqtt_port)
    await asyncio.gather(a.run(), b.run())

import sys
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
"""


def test_two_gateways_in_one_process(micropython, mosquitto, recorder, tmp_path):
    feed_a = TicFeed()
    feed_b = TicFeed(groups=standard_1p_groups)
    script = tmp_path / "two.py"
    script.write_text(TWO)
    import subprocess
    import os
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(FIRMWARE), str(ROOT), ".frozen"]))
    proc = subprocess.Popen([micropython, str(script), str(feed_a.port), str(feed_b.port),
                             str(mosquitto.port)], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        a = recorder.wait(lambda: (recorder.json("passerelle/gwa/linky/state") or {})
                          .get("phases") == 3 and recorder.json("passerelle/gwa/linky/state"), 40)
        b = recorder.wait(lambda: "EAST" in (recorder.json("passerelle/gwb/linky/state") or {})
                          and recorder.json("passerelle/gwb/linky/state"), 40)
        assert a and b
        assert a["phases"] == 3 and "IRMS3" in a
        assert b["phases"] == 1 and "IRMS3" not in b and "IRMS1" in b
        assert recorder.get("passerelle/gwa/status") == b"online"
        assert recorder.get("passerelle/gwb/status") == b"online"
        assert recorder.json("homeassistant/sensor/gwa/linky_irms3/config")
        assert recorder.json("homeassistant/sensor/gwb/linky_irms3/config") is None
    finally:
        proc.kill()
        out = proc.communicate(timeout=10)[0]
        feed_a.stop()
        feed_b.stop()
    assert "Traceback" not in out, out
