"""Modbus RTU meters end to end: pymodbus acting as an SDM630 and an SDM120 on one
emulated RS-485 link (RTU framer over TCP), the firmware on the MicroPython unix port,
mosquitto, a paho subscriber."""

import json
import time

import pytest

from tests.firmware.feed import Firmware
from tests.modbus.sim import RtuLink

pytestmark = [pytest.mark.mosquitto]

BASE = "passerelle/mb"
PAC = {"voltage_l1": 230.1, "voltage_l2": 231.2, "voltage_l3": 229.8,
       "current_l1": 4.25, "current_l2": 1.5, "current_l3": 0.75,
       "power_l1": 950.5, "power_l2": 330.0, "power_l3": 160.2, "power": 1440.7,
       "apparent_power": 1500.0, "reactive_power": -120.5, "power_factor": 0.96,
       "frequency": 50.02, "energy_import": 12345678, "energy_export": 4321,
       "current_n": 0.125, "energy_total": 12349999}
PV = {"voltage": 232.4, "current": 6.5, "power": -1480.0, "apparent_power": 1510.0,
      "reactive_power": 30.0, "power_factor": -0.98, "frequency": 49.98,
      "energy_import": 12, "energy_export": 2345678, "energy_total": 2345690}


def meter(mid, model, address, **kw):
    m = {"id": mid, "type": "modbus", "model": model, "uart": 2, "address": address,
         "baudrate": 9600, "de_pin": 4, "period_s": 1, "timeout_ms": 250}
    m.update(kw)
    return m


def write_root(root, mqtt_port, meters):
    cfg = {"device_id": "mb", "name": "Modbus gateway", "stats_period_s": 5,
           "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "keepalive": 10},
           "network": {"type": "none"}, "meters": meters}
    (root / "config.json").write_text(json.dumps(cfg))


def values(state):
    """The meter's values of a state (without the envelope keys the gateway adds)."""
    return None if state is None else {k: v for k, v in state.items() if k not in ("seq", "ts")}


def states(rec, mid):
    return [values(json.loads(p)) for t, p in list(rec.history)
            if t == "%s/%s/state" % (BASE, mid)]


def test_sdm630_and_sdm120_on_one_bus(micropython, mosquitto, recorder, tmp_path):
    # every 3rd answer of the SDM120 leaves with a flipped data bit (a CRC error)
    link = RtuLink({1: ("sdm630", PAC), 2: ("sdm120", PV)},
                   corrupt={2: lambda n: n % 3 == 0}).start()
    write_root(tmp_path, mosquitto.port, [meter("pac", "sdm630", 1), meter("pv", "sdm120", 2)])
    fw = Firmware(micropython, tmp_path, {"uart": {"2": link.port}})
    try:
        pac = values(recorder.wait(lambda: recorder.json(BASE + "/pac/state"), 30))
        pv = values(recorder.wait(lambda: recorder.json(BASE + "/pv/state"), 30))
        assert pac and pv, fw.output
        assert pac == PAC, (pac, fw.output)
        assert pv == PV, pv
        assert isinstance(pac["energy_import"], int) and isinstance(pv["energy_export"], int)
        # discovery: energy dashboard-ready
        d = recorder.wait(lambda: recorder.json("homeassistant/sensor/mb/pac_energy_import/config"))
        assert d["device_class"] == "energy" and d["state_class"] == "total_increasing"
        assert d["unit_of_measurement"] == "Wh" and d["state_topic"] == BASE + "/pac/state"
        assert d["value_template"] == "{{ value_json.get('energy_import') }}"
        v = recorder.wait(lambda: recorder.json("homeassistant/sensor/mb/pv_voltage/config"))
        assert v["device_class"] == "voltage" and v["unit_of_measurement"] == "V"
        assert v["state_class"] == "measurement"
        f = recorder.wait(lambda: recorder.json("homeassistant/sensor/mb/pac_frequency/config"))
        assert f["device_class"] == "frequency" and f["unit_of_measurement"] == "Hz"
        pf = recorder.wait(lambda: recorder.json("homeassistant/sensor/mb/pv_power_factor/config"))
        assert pf["device_class"] == "power_factor" and "unit_of_measurement" not in pf
        # the corrupted answers are counted (and retried), never published
        stats = recorder.wait(lambda: (recorder.json(BASE + "/stats") or {}).get("meters"), 20)
        assert stats, fw.output
        recorder.wait(lambda: len(states(recorder, "pv")) >= 4, 20)
        stats = recorder.wait(lambda: (lambda s: s if s and s["meters"]["pv"]["decoder"]
                                       ["crc_errors"] > 0 else None)(recorder.json(BASE + "/stats")),
                              20)
        assert stats, recorder.json(BASE + "/stats")
        dec = stats["meters"]["pv"]["decoder"]
        assert dec["crc_errors"] > 0 and dec["retries"] > 0 and dec["bad_responses"] > 0
        assert stats["meters"]["pac"]["frames"] > 0 and stats["meters"]["pv"]["mode"] == "rtu"
        assert link.corrupted[2] > 0
        print("\npoll: SDM630 (3 reads) %d ms, SDM120 (2 reads) %d ms; bus %s"
              % (stats["meters"]["pac"]["poll_ms"], stats["meters"]["pv"]["poll_ms"], dec))
        # unchanged values are still published every period_s (1 s here), not every other poll
        n0 = len(states(recorder, "pac"))
        time.sleep(4.0)
        n = len(states(recorder, "pac")) - n0
        assert n >= 3, "%d unchanged SDM630 states in 4 s at period_s 1" % n
        for s in states(recorder, "pv"):
            assert s == PV, s
        for s in states(recorder, "pac"):
            assert s == PAC, s
        assert "Traceback" not in fw.output
    finally:
        fw.kill()
        link.stop()


def test_silent_and_slow_meters_do_not_starve_the_others(micropython, mosquitto, recorder,
                                                        tmp_path):
    # address 2 answers 0.6 s late (its deadline is 250 ms), address 3 never answers
    link = RtuLink({1: ("sdm630", PAC), 2: ("sdm120", PV), 3: ("em111", {"voltage": 230.0})},
                   delay_s={2: 0.6}, silent=(3,)).start()
    write_root(tmp_path, mosquitto.port, [meter("pac", "sdm630", 1), meter("pv", "sdm120", 2),
                                          meter("em", "em111", 3)])
    fw = Firmware(micropython, tmp_path, {"uart": {"2": link.port}})
    try:
        assert recorder.wait(lambda: recorder.json(BASE + "/pac/state"), 30), fw.output
        t0 = time.monotonic()
        n0 = len(states(recorder, "pac"))
        time.sleep(6)
        polls = len(states(recorder, "pac")) - n0
        elapsed = time.monotonic() - t0
        # period 1 s: the healthy meter keeps being read and published about every second
        # (published on change or every other poll), whatever the two others do
        assert polls >= elapsed / 2 - 1, (polls, elapsed, fw.output)
        for s in states(recorder, "pac"):
            assert s == PAC
        assert not states(recorder, "pv") and not states(recorder, "em")
        stats = recorder.wait(lambda: (lambda s: s if s and s["meters"]["em"]["polls"] >= 3
                                       else None)(recorder.json(BASE + "/stats")), 20)
        assert stats, fw.output
        m = stats["meters"]
        print("\npolls with a late and a silent meter on the bus: SDM630 %d ms, SDM120 %d ms, "
              "EM111 %d ms" % (m["pac"]["poll_ms"], m["pv"]["poll_ms"], m["em"]["poll_ms"]))
        assert m["pac"]["frames"] >= 5 and m["pac"]["errors"] == 0
        assert m["pv"]["frames"] == 0 and m["pv"]["errors"] >= 2
        assert m["em"]["frames"] == 0 and m["em"]["errors"] >= 2
        bus = m["pac"]["decoder"]  # the bus counters, shared by the three meters
        assert bus["timeouts"] >= 4
        # the late answers of address 2 came while others were asked: dropped, counted
        assert bus["late_bytes"] + bus["unexpected"] > 0
        assert link.requests[2] >= 2 and link.answers[3] == 0
        assert "Traceback" not in fw.output
    finally:
        fw.kill()
        link.stop()


def test_de_pin_is_driven_only_while_sending(micropython, mosquitto, recorder, tmp_path):
    """RS-485 direction: the DE/RE pin (GPIO 4, seen on the host's I/O server) goes high
    for each request and back low before the answer is read, and rests low."""
    from passerelle.emu_io import IoServer
    io = IoServer().start()
    link = RtuLink({1: ("sdm630", PAC)}).start()
    write_root(tmp_path, mosquitto.port, [meter("pac", "sdm630", 1)])
    fw = Firmware(micropython, tmp_path, {"uart": {"2": link.port}, "io": io.port})
    try:
        assert recorder.wait(lambda: len(states(recorder, "pac")) >= 2, 30), fw.output
        stats = recorder.wait(lambda: (recorder.json(BASE + "/stats") or {}).get("meters"), 20)
        assert stats, fw.output
        edges = [v for _, g, v in list(io.history) if g == 4]
        rises = edges.count(1)
        assert rises >= 3, edges                        # one per request (3 reads per poll)
        assert all(a != b for a, b in zip(edges, edges[1:])), edges   # strictly alternating
        assert io.level(4) == 0, edges                  # receiving between requests
        assert stats["pac"]["decoder"]["crc_errors"] == 0, stats
        assert "Traceback" not in fw.output
    finally:
        fw.kill()
        link.stop()
        io.stop()
