"""Relays, fil pilote, S0 counters and DS18B20s on the emulated board (MicroPython unix
port) with mosquitto: commands over MQTT, pins and sensors through the host's I/O server
(host/passerelle/emu_io.py), restarts of the firmware on the same board root."""

import json
import time

import pytest

from passerelle.emu_io import IoServer
from tests.firmware.feed import Firmware, Recorder

pytestmark = [pytest.mark.mosquitto]

BASE = "passerelle/dev1"
ROM = "28ff4a1b011603bf"
ROM2 = "28ff4a1b01160410"  # CRC fixed below


def rom2():
    from protocols import onewire
    b = bytearray.fromhex(ROM2)
    b[7] = onewire.crc8(b, 0, 7)
    return b.hex()


def config(mqtt_port, **extra):
    cfg = {"device_id": "dev1", "stats_period_s": 5,
           "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "keepalive": 10},
           "network": {"type": "none"},
           "relays": [{"id": "boiler", "pin": 25, "restore": "last", "interlock": "pump"},
                      {"id": "pump", "pin": 26},
                      {"id": "light", "pin": 14, "restore": "on", "name": "Lumiere"}],
           "heaters": [{"id": "salon", "pin_pos": 32, "pin_neg": 33}],
           "counters": [{"id": "eau", "pin": 27, "per_pulse": 1, "unit": "L",
                         "period_s": 5, "min_interval_s": 0},
                        {"id": "elec", "pin": 13, "per_pulse": 0.5, "unit": "Wh",
                         "period_s": 5, "min_interval_s": 0}],
           "sensors": [{"id": "t1", "pin": 4, "rom": ROM, "period_s": 1},
                       {"id": "t2", "pin": 4, "rom": rom2(), "period_s": 1}]}
    cfg.update(extra)
    return cfg


@pytest.fixture
def io():
    s = IoServer().start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def rec(recorder):
    return recorder  # tests/conftest.py


def boot(micropython, root, io, n):
    fw = Firmware(micropython, root, {"io": io.port})
    assert io.wait_hello(n, 30), fw.output
    return fw


def sensors(rec):
    return ((rec.json(BASE + "/stats") or {}).get("devices") or {}).get("sensors") or {}


def count(rec, topic):
    return sum(1 for t, _ in rec.history if t == topic)


def test_relays_and_fil_pilote(micropython, mosquitto, io, rec, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config(mosquitto.port)))
    fw = boot(micropython, tmp_path, io, 1)
    try:
        # boot: zones at hors-gel (negative half-wave only), restore policies applied
        hello = io.hellos[0]["out"]
        assert hello["32"] == 0 and hello["33"] == 1, hello
        assert io.wait_level(14, 1) and io.level(25) == 0 and io.level(26) == 0
        assert rec.wait(lambda: rec.get(BASE + "/boiler/state") == b"OFF"
                        and rec.get(BASE + "/light/state") == b"ON"
                        and rec.get(BASE + "/salon/state") == b"hors-gel", 20), fw.output
        late = Recorder(mosquitto.host, mosquitto.port)  # the state is retained
        try:
            assert late.wait(lambda: late.get(BASE + "/boiler/state") == b"OFF"
                             and late.retained[BASE + "/boiler/state"], 10)
        finally:
            late.stop()

        # discovery: switch per relay, select per zone
        sw = rec.wait(lambda: rec.json("homeassistant/switch/dev1/boiler/config"))
        assert sw["command_topic"] == BASE + "/boiler/set"
        assert sw["state_topic"] == BASE + "/boiler/state"
        assert sw["payload_on"] == "ON" and sw["availability_topic"] == BASE + "/status"
        assert sw["unique_id"] == "passerelle_dev1_boiler"
        assert rec.wait(lambda: rec.json("homeassistant/switch/dev1/light/config"))["name"] == "Lumiere"
        sel = rec.wait(lambda: rec.json("homeassistant/select/dev1/salon/config"))
        assert sel["options"] == ["confort", "eco", "hors-gel", "arret", "confort-1", "confort-2"]
        assert sel["command_topic"] == BASE + "/salon/set"

        # ON: the pin follows, the state is echoed retained
        rec.publish(BASE + "/boiler/set", b"ON")
        assert io.wait_level(25, 1)
        assert rec.wait(lambda: rec.get(BASE + "/boiler/state") == b"ON")

        # interlock: pump ON switches boiler OFF first (break before make)
        mark = len(io.history)
        rec.publish(BASE + "/pump/set", b"on")
        assert io.wait_level(26, 1) and io.level(25) == 0
        seq = [(g, v) for _, g, v in io.history[mark:] if g in (25, 26)]
        assert seq == [(25, 0), (26, 1)], seq
        assert rec.wait(lambda: rec.get(BASE + "/boiler/state") == b"OFF"
                        and rec.get(BASE + "/pump/state") == b"ON")

        # TOGGLE: boiler on (pump off first), then off
        rec.publish(BASE + "/boiler/set", b"TOGGLE")
        assert io.wait_level(25, 1) and io.level(26) == 0
        rec.publish(BASE + "/boiler/set", b"TOGGLE")
        assert io.wait_level(25, 0)

        # pulse: ON for 1 s, then OFF (JSON form), then PULSE text form
        mark = len(io.history)
        rec.publish(BASE + "/boiler/set", b'{"state": "ON", "pulse_s": 1}')
        assert io.wait_level(25, 1) and io.wait_level(25, 0, 10)
        ev = [(t, v) for t, g, v in io.history[mark:] if g == 25]
        assert [v for _, v in ev] == [1, 0]
        assert 0.8 <= ev[1][0] - ev[0][0] <= 2.5, ev
        assert rec.wait(lambda: rec.get(BASE + "/boiler/state") == b"OFF")
        rec.publish(BASE + "/pump/set", b"PULSE 0.5")
        assert io.wait_level(26, 1) and io.wait_level(26, 0, 10)

        # invalid commands: an error each, nothing switched, the gateway carries on
        mark = len(io.history)
        bad = [("nope", b"ON", "unknown_actuator"), ("boiler", b"BLINK", "unknown_value"),
               ("boiler", b"PULSE -3", "unknown_value"), ("boiler", b"X" * 100, "oversize"),
               ("boiler", b"\xff\xfeON", "not_utf8"), ("salon", b"chaud", "unknown_value"),
               ("boiler", b'{"state": "OFF", "pulse_s": 2}', "unknown_value")]
        for ident, payload, code in bad:
            n = len([1 for t, _ in rec.history if t == BASE + "/error"])
            rec.publish("%s/%s/set" % (BASE, ident), payload)
            assert rec.wait(lambda: len([1 for t, _ in rec.history if t == BASE + "/error"]) > n, 10)
            err = rec.json(BASE + "/error")
            assert err["error"] == code and err["topic"] == "%s/%s/set" % (BASE, ident), err
        # a message larger than the MQTT receive buffer: dropped by the client, reported
        n = count(rec, BASE + "/error")
        rec.publish(BASE + "/boiler/set", b"ON" * 300)
        assert rec.wait(lambda: count(rec, BASE + "/error") > n, 10)
        assert rec.json(BASE + "/error") == {"topic": None, "error": "oversize", "detail":
                                             "a message larger than the MQTT receive buffer was dropped"}
        time.sleep(0.3)
        assert [h for h in io.history[mark:] if h[1] in (25, 26, 14, 32, 33)] == []
        assert "Traceback" not in fw.output

        # fil pilote orders -> (pos, neg)
        for order, levels in (("eco", (1, 1)), ("arret", (1, 0)), ("confort", (0, 0)),
                              ("HORS-GEL", (0, 1))):
            rec.publish(BASE + "/salon/set", order.encode())
            assert io.wait(lambda: (io.out.get(32), io.out.get(33)) == levels), order
            assert rec.wait(lambda: rec.get(BASE + "/salon/state") == order.lower().encode())
        # confort-1: full wave for 3 s, then no signal (rest of the 300 s cycle)
        mark = len(io.history)
        rec.publish(BASE + "/salon/set", b"confort-1")
        assert io.wait(lambda: (io.out.get(32), io.out.get(33)) == (1, 1))
        assert io.wait(lambda: (io.out.get(32), io.out.get(33)) == (0, 0), 10)
        ev = [(t, g, v) for t, g, v in io.history[mark:] if g in (32, 33)]
        t_on = max(t for t, g, v in ev if v == 1)
        t_off = max(t for t, g, v in ev if v == 0)
        assert 2.5 <= t_off - t_on <= 4.5, ev
        assert rec.get(BASE + "/salon/state") == b"confort-1"

        # state kept for the restore policy: boiler ON (last), pump ON then OFF (restore off)
        rec.publish(BASE + "/boiler/set", b"ON")
        assert io.wait_level(25, 1)
        rec.publish(BASE + "/light/set", b"OFF")
        assert io.wait_level(14, 0)
        time.sleep(0.3)
    finally:
        fw.kill()  # a power cut: no clean shutdown

    # a retained command found at (re)subscription is ignored: it would replay at every
    # reconnection (a live message is never retained for a subscriber)
    rec.publish(BASE + "/pump/set", b"ON", retain=True)
    n = count(rec, BASE + "/error")
    fw = boot(micropython, tmp_path, io, 2)
    try:
        assert rec.wait(lambda: count(rec, BASE + "/error") > n, 20), fw.output
        assert rec.json(BASE + "/error")["error"] == "retained"
        rec.publish(BASE + "/pump/set", b"", retain=True)  # clear it on the broker
        hello = io.hellos[1]["out"]
        assert io.wait_level(25, 1), hello   # restore "last": was ON
        assert io.wait_level(14, 1)          # restore "on"
        assert io.level(26) == 0             # restore "off"
        assert hello["32"] == 0 and hello["33"] == 1  # zones: hors-gel (default restore)
        assert rec.wait(lambda: rec.get(BASE + "/boiler/state") == b"ON"
                        and rec.get(BASE + "/light/state") == b"ON", 20)
        assert "Traceback" not in fw.output
    finally:
        fw.kill()


def test_s0_counters_and_ds18b20(micropython, mosquitto, io, rec, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config(mosquitto.port)))
    io.set_temperature(4, ROM, 21.5)
    io.set_temperature(4, rom2(), -3.25)
    fw = boot(micropython, tmp_path, io, 1)
    try:
        assert rec.wait(lambda: (rec.json(BASE + "/t1/state") or {}).get("temperature") == 21.5
                        and (rec.json(BASE + "/t2/state") or {}).get("temperature") == -3.25,
                        20), fw.output
        disc = rec.wait(lambda: rec.json("homeassistant/sensor/dev1/t1/config"))
        assert disc["device_class"] == "temperature" and disc["unit_of_measurement"] == "°C"
        assert disc["state_class"] == "measurement" and disc["state_topic"] == BASE + "/t1/state"
        ce = rec.wait(lambda: rec.json("homeassistant/sensor/dev1/eau/config"))
        assert ce["state_class"] == "total_increasing" and ce["device_class"] == "water"
        assert ce["unit_of_measurement"] == "L" and ce["value_template"] == "{{ value_json.total }}"
        cel = rec.wait(lambda: rec.json("homeassistant/sensor/dev1/elec/config"))
        assert cel["device_class"] == "energy" and cel["unit_of_measurement"] == "Wh"

        # S0: 5 pulses with contact bounce -> 5; 3 clean pulses -> 1.5 Wh
        assert rec.wait(lambda: rec.json(BASE + "/eau/state") == {"total": 0, "pulses": 0})
        io.pulses(27, 5, bounces=2)
        io.pulses(13, 3)
        assert rec.wait(lambda: rec.json(BASE + "/eau/state") == {"total": 5, "pulses": 5}), \
            rec.json(BASE + "/eau/state")
        assert rec.wait(lambda: rec.json(BASE + "/elec/state") == {"total": 1.5, "pulses": 3})

        # DS18B20: 85 degC (power-on value), a bad CRC, a missing sensor: rejected, counted
        n = count(rec, BASE + "/t1/state")
        io.set_temperature(4, ROM, 85.0)
        io.set_temperature(4, rom2(), 20.0, crc_ok=False)
        st = rec.wait(lambda: sensors(rec).get("t1", {}).get("power_on", 0) >= 2 and sensors(rec), 20)
        assert st and st["t2"]["crc"] >= 2, st
        assert rec.json(BASE + "/t1/state") == {"temperature": 21.5}
        assert rec.json(BASE + "/t2/state") == {"temperature": -3.25}
        io.set_scratch(4, rom2(), None)  # t2 disconnected: reads all 0xFF
        io.set_temperature(4, ROM, 19.25)
        assert rec.wait(lambda: rec.json(BASE + "/t1/state") == {"temperature": 19.25}, 10)
        assert count(rec, BASE + "/t1/state") > n
        st = rec.wait(lambda: sensors(rec).get("t2", {}).get("missing", 0) >= 1
                      and sensors(rec)["t1"]["ok"] >= 2 and sensors(rec), 15)
        assert st and st["t1"]["crc"] == 0 and st["t2"]["ok"] == 1, st
        assert rec.json(BASE + "/t2/state") == {"temperature": -3.25}
        s0 = rec.json(BASE + "/stats")["devices"]["counters"]
        assert s0["eau"] == {"pulses": 5, "bounces": 10} and s0["saves"] == 0, s0

        # steady state: no flash write within the 10 minutes (nvs.json has no s0 yet)
        nvs = json.loads((tmp_path / "nvs.json").read_text()) if (tmp_path / "nvs.json").exists() else {}
        assert "s0" not in nvs, nvs
    finally:
        fw.proc.send_signal(2)  # Ctrl-C: a clean shutdown saves the counts
        assert fw.wait(10) is not None
        fw.kill()
    assert "PASSERELLE STOPPED" in fw.output, fw.output
    nvs = json.loads((tmp_path / "nvs.json").read_text())
    assert nvs["s0"] == {"ceau": 5, "celec": 3}, nvs

    # the totals survive the restart and keep growing
    first = rec.json(BASE + "/eau/state")
    rec.history.clear()
    fw = boot(micropython, tmp_path, io, 2)
    try:
        assert rec.wait(lambda: any(t == BASE + "/eau/state" for t, _ in list(rec.history)), 20)
        io.pulses(27, 2)
        assert rec.wait(lambda: rec.json(BASE + "/eau/state") == {"total": 7, "pulses": 7})
        totals = [json.loads(p)["total"] for t, p in list(rec.history) if t == BASE + "/eau/state"]
        assert totals == sorted(totals) and totals[0] >= first["total"], totals
        assert "Traceback" not in fw.output
    finally:
        fw.kill()  # a power cut: the 2 pulses since the last save are not in the NVS
    assert json.loads((tmp_path / "nvs.json").read_text())["s0"]["ceau"] == 5

    # ... but the retained state has them: adopted, the total does not go down
    rec.history.clear()
    fw = boot(micropython, tmp_path, io, 3)
    try:
        st = rec.wait(lambda: [json.loads(p) for t, p in list(rec.history)
                               if t == BASE + "/eau/state"], 20)
        assert st and st[0] == {"total": 7, "pulses": 7}, st
        io.pulses(27, 1)
        assert rec.wait(lambda: rec.json(BASE + "/eau/state") == {"total": 8, "pulses": 8})
        assert rec.wait(lambda: ((rec.json(BASE + "/stats") or {}).get("devices") or {})
                        .get("counters", {}).get("adopted") == 1, 15)
    finally:
        fw.kill()


def test_config_error_drives_heaters_to_hors_gel(micropython, io, tmp_path):
    cfg = config(1883, heaters=[{"id": "salon", "pin_pos": 32, "pin_neg": 33, "invert": True},
                                {"id": "chambre", "pin_pos": 18, "pin_neg": 19}])
    cfg["relays"][0]["pin"] = 99  # invalid: the config is unusable
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    fw = Firmware(micropython, tmp_path, {"io": io.port})
    try:
        assert fw.wait(30) == 78, fw.output
    finally:
        fw.kill()
    assert fw.boot_report()["config"] == "error"
    assert io.wait_hello(1, 5), fw.output
    # inverted drivers: hors-gel = pos 1, neg 0 on the pins; normal: pos 0, neg 1
    assert io.hellos and {32: 1, 33: 0, 18: 0, 19: 1}.items() <= io.out.items(), (io.out, fw.output)
    assert 25 not in io.out and 26 not in io.out  # nothing else is driven
    assert "2 fil pilote zone(s) set to hors-gel" in fw.output


def test_emulate_starts_the_io_server_for_devices(mosquitto, project_root):
    """passerelle emulate / run on the emulated board's default config (what `make run`
    uses: the Linky, an SDM120, and one device of each kind), at the board's heapsize:
    the I/O server and the Modbus meter simulator are started, the demo thread makes the
    S0 counter and the DS18B20 move, a relay switches."""
    from passerelle.emulate import Emulation

    cfg = json.loads((project_root / "boards/emu/config.json").read_text())
    cfg["stats_period_s"] = 5
    heapsize = json.loads((project_root / "boards/emu/board.json").read_text())["heapsize"]
    rec = Recorder(mosquitto.host, mosquitto.port)
    lines = []
    emu = Emulation(project_root=project_root, config=cfg, broker=mosquitto.url, echo=False,
                    on_line=lines.append, io_demo=True)
    try:
        with emu:
            assert emu.heapsize == heapsize
            assert emu.io is not None and emu.emu_options()["io"] == emu.io.port
            assert "2" in emu.emu_options()["uart"]  # the SDM120's simulated RS-485 link
            b = "passerelle/emu1/"
            ok = rec.wait(lambda: (rec.json(b + "eau/state") or {}).get("pulses", 0) >= 1
                          and rec.json(b + "t_salon/state")
                          and rec.get(b + "chauffe_eau/state") == b"OFF"
                          and rec.get(b + "salon/state") == b"hors-gel"
                          and rec.json(b + "linky/state")
                          and (rec.json(b + "pac/state") or {}).get("energy_import"), 40)
            assert ok, "\n".join(lines[-30:])
            rec.publish(b + "chauffe_eau/set", b"ON")
            assert emu.io.wait_level(25, 1, 10)
            stats = rec.wait(lambda: rec.json(b + "stats"), 15)
            assert stats and stats["free_heap"] > 0, "\n".join(lines[-30:])
            print("free heap at %s with the default config:" % heapsize, stats["free_heap"])
            assert not emu.crashed() and emu.restarts == 0
        assert not any("Traceback" in line or "MemoryError" in line for line in lines), lines
    finally:
        emu.stop()
        rec.stop()
