"""The host's Modbus meter simulator (passerelle.sim.modbus), and `passerelle emulate`
serving a config's Modbus meters with it (the firmware on the unix port, mosquitto)."""

import json
import socket
import time

import pytest

from passerelle.emulate import Emulation
from passerelle.sim.modbus import MeterSim, ModbusLinkServer, parse_requests
from protocols.modbus import RtuDecoder, request, values
from tests.firmware.feed import Recorder


def ask(sock, req, dec):
    sock.sendall(req)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        data = sock.recv(512)
        pos = 0
        while True:
            used, r = dec.decode(data, pos)
            pos += used
            if r is not None:
                return r
            if pos >= len(data):
                break
    return None


def test_parse_requests_resynchronises():
    reqs = request(1, 4, 0, 76) + request(2, 16, 28, [1, 2]) + request(3, 6, 1, 7)
    got, used = parse_requests(b"\x00\xff" + reqs + request(1, 3, 0, 2)[:5])
    assert got == [(1, 4, 0, 76), (2, 16, 28, [1, 2]), (3, 6, 1, 7)] and used == 2 + len(reqs)


def test_link_server_answers_like_a_meter():
    with ModbusLinkServer([MeterSim("sdm630", 1), {"model": "em111", "address": 7}]) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        try:
            d = RtuDecoder()
            r = ask(s, request(1, 4, 0x48, 2), d)  # import energy, kWh float32
            assert r.address == 1 and r.count == 2
            assert values.f32(r.data, r.offset) == pytest.approx(12345.678, rel=1e-5)
            r = ask(s, request(7, 4, 0, 2), d)  # EM111 voltage, x10, low word first
            assert 2280 <= values.get(values.S32_SW, r.data, r.offset) <= 2320
            r = ask(s, request(1, 4, 0x1FF, 2), d)
            assert r.exception == 2
            r = ask(s, request(7, 16, 4, [5, 6]), d)
            assert (r.function, r.register, r.count) == (16, 4, 2)
            s.sendall(request(9, 4, 0, 2))  # nobody at 9: silence
            s.settimeout(0.3)
            with pytest.raises(socket.timeout):
                s.recv(64)
        finally:
            s.close()
        assert srv.stats["requests"] == 5 and srv.stats["answers"] == 4


def test_link_server_setup_registers_and_echo():
    """The model's set-up registers take FC 16 writes and read back; with echo the
    request comes back before the answer (what "echo": true strips on the gateway)."""
    with ModbusLinkServer([{"model": "sdm120", "address": 2, "echo": True}]) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        try:
            req = request(2, 16, 0xF920, [1])
            s.sendall(req)
            got = b""
            while len(got) < len(req) + 8:
                got += s.recv(64)
            assert got[:len(req)] == req  # the echo first, then the answer
            used, r = RtuDecoder().decode(got, len(req))
            assert (r.function, r.register, r.count) == (16, 0xF920, 1)
            d = RtuDecoder()
            d.expect(2, 3, 1)  # the echo of the read is not its answer
            r = ask(s, request(2, 3, 0xF920, 1), d)
            assert r.reg(0) == 1 and d.stats["garbage_bytes"] == 8
            r = ask(s, request(2, 16, 0xF930, [1]), RtuDecoder())  # not a set-up register
            assert r.exception == 2
        finally:
            s.close()
        assert srv.stats["echoed"] == 11 + 8 + 11  # FC 16 of one register, FC 3, FC 16


@pytest.mark.mosquitto
def test_emulate_serves_modbus_meters(mosquitto, tmp_path):
    cfg = {"device_id": "emb", "mqtt": {"host": "127.0.0.1"}, "network": {"type": "none"},
           "meters": [{"id": "pac", "type": "modbus", "model": "sdm630", "address": 1,
                       "period_s": 1},
                      {"id": "em", "type": "modbus", "model": "em111", "address": 2,
                       "period_s": 1}]}
    rec = Recorder(mosquitto.host, mosquitto.port)
    emu = Emulation(config=cfg, broker="mqtt://127.0.0.1:%d" % mosquitto.port, echo=False)
    try:
        emu.start()
        assert list(emu.servers) == ["2"] and isinstance(emu.servers["2"], ModbusLinkServer)
        pac = rec.wait(lambda: rec.json("passerelle/emb/pac/state"), 40)
        em = rec.wait(lambda: rec.json("passerelle/emb/em/state"), 20)
        assert pac and em, "\n".join(emu.lines)
        assert pac["energy_import"] >= 12345678 and isinstance(pac["energy_import"], int)
        assert 225 < pac["voltage_l1"] < 235 and 49.9 < pac["frequency"] < 50.1
        assert em["energy_import"] >= 12345600 and 225 < em["voltage"] < 235
        assert rec.wait(lambda: rec.json("homeassistant/sensor/emb/em_energy_import/config"))
    finally:
        emu.stop()
        rec.stop()
    assert not any("Traceback" in line for line in emu.lines), "\n".join(emu.lines)
