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


def test_the_simulated_bus_records_what_the_gateway_sent_and_heard(tmp_path):
    """ModbusLinkServer's tap -> a Writer: the gateway's request (tx), the echo and the
    answer (rx); the cassette made of it answers that request with those bytes."""
    import socket

    from passerelle.replay_io import Cassette
    from passerelle.sim.modbus import ModbusLinkServer
    from protocols.modbus import rtu

    out = tmp_path / "bus.jsonl"
    ch = {"bus": recording.serial_channel(baud=9600, bits=8, parity="N", protocol="modbus-rtu",
                                          reactive=True, meters=[{"id": "pac", "model": "sdm120",
                                                                  "address": 3}])}
    req = rtu.request(3, 4, 0, 2)
    with recording.Writer(out, ch) as w:
        srv = ModbusLinkServer([{"model": "sdm120", "address": 3}], echo=True,
                               tap=lambda d, data: w.event("bus", d, data)).start()
        try:
            with socket.create_connection(("127.0.0.1", srv.port), 5) as s:
                s.settimeout(5)
                heard = b""
                for r in (req, rtu.request(9, 4, 0, 2)):     # address 9: nobody answers
                    s.sendall(r)
                    time.sleep(0.2)
                    while True:
                        try:
                            s.settimeout(0.3)
                            heard += s.recv(512)
                        except socket.timeout:
                            break
        finally:
            srv.stop()
    rec = recording.read(out)
    ev = rec.channel_events("bus")
    assert [e["dir"] for e in ev] == ["tx", "rx", "rx", "tx", "rx"]
    assert recording.payload(ev[0]) == req and recording.payload(ev[1]) == req      # the echo
    answer = recording.payload(ev[2])
    assert heard.startswith(req + answer) and rtu.crc16(answer) == 0 and answer[:2] == b"\x03\x04"
    cas = Cassette(ev, rec.channels["bus"])
    assert cas.feed(req) == [req, answer]
    assert cas.feed(rtu.request(9, 4, 0, 2)) == [rtu.request(9, 4, 0, 2)]    # only the echo
    assert cas.exhausted() and not cas.mismatches


def test_emulate_record_writes_a_modbus_recording_replay_understands(tmp_path):
    """``passerelle emulate --record``: the firmware polls a simulated meter; the file
    says which meter, with its config, and holds whole requests and their answers."""
    from passerelle.replay import replay_config
    from passerelle.replay_io import Cassette

    cfg = tmp_path / "config.json"
    cfg.write_text('{"device_id": "rec", "mqtt": {"host": "127.0.0.1", "port": 9}, '
                   '"network": {"type": "none"}, "meters": [{"id": "pac", "type": "modbus", '
                   '"model": "sdm630", "uart": 2, "address": 1, "period_s": 1, "de_pin": 4}]}')
    out = tmp_path / "mb.jsonl.gz"
    p = subprocess.run([sys.executable, "-m", "passerelle.cli", "emulate", "--config", str(cfg),
                        "--record", str(out), "--duration", "4"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    rec = recording.read(out)
    assert rec.channels["modbus-uart2"]["meters"] == [
        {"id": "pac", "model": "sdm630", "address": 1, "period_s": 1}]   # no pins: the board's
    cas = Cassette(rec.channel_events("modbus-uart2"), rec.channels["modbus-uart2"])
    first = cas.exchanges[0][0]
    assert first[:2] == b"\x01\x04" and len(first) == 8
    assert cas.pending(first) >= 3, "one poll a second for 4 s"
    assert all(len(b"".join(ans)) > 5 for _, ans in cas.exchanges)
    cfg_r, uarts = replay_config(rec, speed=4)
    assert uarts == {"modbus-uart2": "1"}
    assert cfg_r["meters"] == [{"id": "pac", "model": "sdm630", "address": 1, "period_s": 1,
                                "type": "modbus", "uart": 1, "min_interval_s": 0}]
