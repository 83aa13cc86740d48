"""``passerelle record serial`` on a PTY and ``record mqtt`` on a broker: what was seen
is what was written, Ctrl-C / --duration stop cleanly, nothing already written is lost."""

import os
import signal
import subprocess
import sys
import threading
import time
import tty

import paho.mqtt.client as mqtt
import pytest

from passerelle import recording
from passerelle.record import record_mqtt, record_serial

FRAME = b"\x02\nADCO 012345678901 E\r\nOPTARIF BASE 0\r\nBASE 001234567 ,\r\x03"


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(master)
    name = os.ttyname(slave)
    try:
        yield master, name
    finally:
        os.close(master)
        os.close(slave)


def _write_slowly(fd, data, n=4, pause=0.05):
    for i in range(0, len(data), max(1, len(data) // n)):
        os.write(fd, data[i:i + max(1, len(data) // n)])
        time.sleep(pause)


def test_record_serial_on_a_pty(tmp_path, pty_pair):
    master, name = pty_pair
    out = tmp_path / "tic.jsonl"
    stop = threading.Event()
    events = []
    th = threading.Thread(target=lambda: events.append(record_serial(
        name, out, baud=1200, bytesize=7, parity="E", stop_event=stop)), daemon=True)
    th.start()
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:   # the port is open once the file is
        time.sleep(0.02)
    _write_slowly(master, FRAME * 3)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and recording.read(out).payload_bytes("tic") != FRAME * 3:
        time.sleep(0.05)       # flushed as it goes: visible before the recorder stops
    stop.set()
    th.join(5)
    rec = recording.read(out)
    assert rec.payload_bytes("tic") == FRAME * 3
    assert rec.channels["tic"] == {"kind": "serial", "protocol": "tic", "port": name, "baud": 1200,
                                   "bits": 7, "parity": "E", "stop": 1, "mode": "historic"}
    ts = [ev["t"] for ev in rec.events]
    assert ts == sorted(ts) and len(ts) >= 2 and ts[-1] - ts[0] > 0.1    # written over ~0.2 s
    assert events[0][1] == len(FRAME) * 3


def _cli(*args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "passerelle.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_record_serial_cli_stops_on_ctrl_c_and_keeps_everything(tmp_path, pty_pair):
    master, name = pty_pair
    out = tmp_path / "tic.jsonl.gz"
    proc = _cli("record", "serial", "--port", name, "--baud", "9600", "--bytesize", "7",
                "--parity", "E", "-o", str(out))
    try:
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        _write_slowly(master, FRAME * 2)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and recording.read(out).payload_bytes("tic") != FRAME * 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "record: " in err and "events" in err
    rec = recording.read(out)
    assert not rec.warnings
    assert rec.payload_bytes("tic") == FRAME * 2
    assert rec.channels["tic"]["baud"] == 9600 and rec.channels["tic"]["mode"] == "standard"


def test_record_serial_cli_duration(tmp_path, pty_pair):
    master, name = pty_pair
    out = tmp_path / "d.jsonl"
    t0 = time.monotonic()
    proc = _cli("record", "serial", "--port", name, "--duration", "3", "-o", str(out))
    while not out.exists() and time.monotonic() - t0 < 8:    # the port is open once the file is
        time.sleep(0.02)
    os.write(master, FRAME)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert 3 <= time.monotonic() - t0 < 12
    assert recording.read(out).payload_bytes("tic") == FRAME


def test_record_serial_cli_bad_port(tmp_path):
    proc = _cli("record", "serial", "--port", str(tmp_path / "nope"), "-o", str(tmp_path / "x.jsonl"))
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 2 and "record:" in err


@pytest.mark.mosquitto
def test_record_mqtt(tmp_path, mosquitto):
    out = tmp_path / "mqtt.jsonl"
    stop, ready = threading.Event(), threading.Event()
    th = threading.Thread(target=record_mqtt, args=(mosquitto.url, out), daemon=True,
                          kwargs={"topics": ["#"], "stop_event": stop, "ready": ready})
    th.start()
    assert ready.wait(20)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ha")
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    c.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
    c.publish("passerelle/emu1/linky/state", b'{"BASE": 1}', qos=1, retain=True).wait_for_publish(5)
    c.publish("homeassistant/sensor/emu1/linky_base/config", b"{}", qos=1).wait_for_publish(5)
    c.publish("bin/ary", bytes(range(256)), qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(recording.read(out).events) < 4:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    stop.set()
    th.join(5)
    rec = recording.read(out)
    assert rec.channels["mqtt"]["kind"] == "mqtt" and rec.channels["mqtt"]["broker"] == mosquitto.url
    got = [(ev["topic"], ev["dir"], recording.payload(ev)) for ev in rec.events]
    assert got == [("homeassistant/status", "rx", b"online"),
                   ("passerelle/emu1/linky/state", "tx", b'{"BASE": 1}'),
                   ("homeassistant/sensor/emu1/linky_base/config", "tx", b"{}"),
                   ("bin/ary", "rx", bytes(range(256)))]
    assert all("b64" in ev for ev in rec.events)


@pytest.mark.mosquitto
def test_record_mqtt_cli_duration(tmp_path, mosquitto):
    out = tmp_path / "m.jsonl.gz"
    proc = _cli("record", "mqtt", "--broker", mosquitto.url, "--topic", "homeassistant/#",
                "--duration", "1.5", "-o", str(out))
    time.sleep(0.8)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ha2")
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    c.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
    c.publish("other/topic", b"x", qos=1).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    rec = recording.read(out)
    assert rec.channels["mqtt"]["topics"] == ["homeassistant/#"]
    assert [ev["topic"] for ev in rec.events] == ["homeassistant/status"]
