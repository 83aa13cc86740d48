"""Set-up writes (meters[].setup: FC 16 then a FC 3 read-back) and echo transceivers
("echo": true), end to end: pymodbus acting as the meters on the emulated RS-485 link,
the firmware on the MicroPython unix port, mosquitto, a paho subscriber."""

import time

import pytest

from tests.firmware.feed import Firmware
from tests.modbus.sim import RtuLink
from tests.modbus.test_modbus_e2e import BASE, PAC, PV, meter, states, values, write_root

pytestmark = [pytest.mark.mosquitto]


def wait_stats(rec, pred, timeout=20):
    """The first gateway stats (meters part) for which pred holds, else None."""
    def get():
        s = (rec.json(BASE + "/stats") or {}).get("meters")
        return s if s and pred(s) else None
    return rec.wait(get, timeout)


def test_setup_written_once_read_back_and_failures_counted(micropython, mosquitto, recorder,
                                                           tmp_path):
    # 1 and 2 take their set-up; 3 confirms writes but keeps its registers (a locked
    # set-up); 4 refuses writes (exception 4, slave device failure)
    link = RtuLink({1: ("sdm630", PAC), 2: ("sdm120", PV), 3: ("sdm120", PV), 4: ("sdm120", PV)},
                   ignore=(3,), refuse={4: 4}).start()
    write_root(tmp_path, mosquitto.port, [
        meter("pac", "sdm630", 1, setup={"demand_period": 15, "pulse1_width": 60}),
        meter("pv", "sdm120", 2, setup={"measurement_mode": 1, "pulse1_rate": 2}),
        meter("locked", "sdm120", 3, setup={"pulse1_width": 200}),
        meter("refusing", "sdm120", 4, setup={"measurement_mode": 3})])
    fw = Firmware(micropython, tmp_path, {"uart": {"2": link.port}})
    try:
        for mid in ("pac", "pv", "locked", "refusing"):
            assert recorder.wait(lambda: recorder.json("%s/%s/state" % (BASE, mid)), 30), \
                (mid, fw.output)
        m = wait_stats(recorder, lambda s: s["refusing"]["polls"] >= 3)
        assert m, fw.output
        # float32 (high word first) and u16 values, in key order, once each
        assert link.writes[1] == [(0x0002, [0x4170, 0]), (0x000C, [0x4270, 0])]  # 15.0, 60.0
        assert link.writes[2] == [(0xF920, [1]), (0xF910, [2])]
        assert link.writes[3] == [(0x000C, [0x4348, 0])]  # 200.0, not stored
        assert link.writes[4] == []
        assert (m["pac"]["setup_ok"], m["pac"]["setup_errors"]) == (2, 0), m["pac"]
        assert (m["pv"]["setup_ok"], m["pv"]["setup_errors"]) == (2, 0), m["pv"]
        assert (m["locked"]["setup_ok"], m["locked"]["setup_errors"]) == (0, 1), m["locked"]
        assert (m["refusing"]["setup_ok"], m["refusing"]["setup_errors"]) == (0, 1)
        assert "set-up demand_period = 15 (register 2)" in fw.output
        assert "set-up pulse1_width = 200: reads back 0.0 (register 12)" in fw.output, fw.output
        assert "set-up measurement_mode = 3 refused: exception 4 (register 63776)" in fw.output
        # the set-up never held the polls up: every meter publishes what it measures
        for mid, want in (("pac", PAC), ("pv", PV), ("locked", PV), ("refusing", PV)):
            for s in states(recorder, mid):
                assert s == want, (mid, s)
            assert m[mid]["errors"] == 0 and m[mid]["frames"] >= 2, (mid, m[mid])
        print("\nset-up (FC 16 + FC 3 read-back per key, 4 meters polling on the bus): "
              "SDM630 2 keys %d ms, SDM120 2 keys %d ms, refused %d ms; bus %s"
              % (m["pac"]["setup_ms"], m["pv"]["setup_ms"], m["refusing"]["setup_ms"],
                 m["pac"]["decoder"]))
        time.sleep(2)  # more polls: the set-up is not written again
        assert len(link.writes[1]) == 2 and len(link.writes[2]) == 2 and len(link.writes[3]) == 1
        assert "Traceback" not in fw.output
    finally:
        fw.kill()
        link.stop()


@pytest.mark.parametrize("link_echo,cfg_echo", [(True, True), (True, False), (False, True)],
                         ids=["echo-stripped", "stray-echo", "option-without-echo"])
def test_echo_transceiver(micropython, mosquitto, recorder, tmp_path, link_echo, cfg_echo):
    """The link hears its requests (link_echo) or not; the bus strips them ("echo": true)
    or lets the decoder drop them: the states are the meters' either way, counted."""
    link = RtuLink({1: ("sdm630", PAC), 2: ("sdm120", PV)}, echo=link_echo).start()
    write_root(tmp_path, mosquitto.port, [
        meter("pac", "sdm630", 1, echo=cfg_echo, setup={"demand_period": 30}),
        meter("pv", "sdm120", 2, echo=cfg_echo)])
    fw = Firmware(micropython, tmp_path, {"uart": {"2": link.port}})
    try:
        assert recorder.wait(lambda: len(states(recorder, "pac")) >= 3
                             and len(states(recorder, "pv")) >= 3, 30), fw.output
        m = wait_stats(recorder, lambda s: s["pv"]["polls"] >= 3)
        assert m, fw.output
        for s in states(recorder, "pac"):
            assert s == PAC, s
        for s in states(recorder, "pv"):
            assert s == PV, s
        bus = m["pac"]["decoder"]
        print("\necho link %s, \"echo\": %s: %s (link echoed %d requests)"
              % (link_echo, cfg_echo, bus, link.echoed))
        assert m["pac"]["setup_ok"] == 1 and link.writes[1] == [(2, [0x41F0, 0])]  # 30.0
        assert m["pac"]["errors"] == m["pv"]["errors"] == 0
        if link_echo:
            assert bus["echoes"] >= bus["requests"] - 2 and link.echoed >= bus["echoes"]
        else:
            assert bus["echoes"] == 0
        if link_echo and cfg_echo:  # stripped: the decoder never sees them
            assert bus["echo_errors"] == 0 and bus["garbage_bytes"] == bus["crc_errors"] == 0
        elif link_echo:  # stray echoes: dropped by the decoder's resynchronisation, counted
            # (a candidate frame inside one may fail its CRC: crc_errors too, never published)
            assert bus["garbage_bytes"] >= 8 * bus["echoes"] and bus["unexpected"] == 0
        else:  # the option without an echoing transceiver: no answer byte lost, counted
            assert bus["echo_errors"] >= bus["requests"] - 2
            assert bus["garbage_bytes"] == bus["crc_errors"] == 0
        assert bus["timeouts"] == 0 and bus["bad_responses"] == 0
        assert "Traceback" not in fw.output
    finally:
        fw.kill()
        link.stop()


def test_setup_waits_for_an_absent_meter_and_retries_a_bad_answer(micropython, mosquitto,
                                                                  recorder, tmp_path):
    """Silent at boot: the set-up write gets no answer (counted, logged) and stays
    pending; once the meter answers, the next poll writes it - its first answer fails
    its CRC and the bus retries the write - and reads it back."""
    link = RtuLink({1: ("sdm630", PAC)}, silent=(1,), corrupt={1: lambda n: n == 1}).start()
    write_root(tmp_path, mosquitto.port, [meter("pac", "sdm630", 1,
                                                setup={"demand_period": 15})])
    fw = Firmware(micropython, tmp_path, {"uart": {"2": link.port}})
    try:
        m = wait_stats(recorder, lambda s: s["pac"]["setup_errors"] >= 1, 30)
        assert m and m["pac"]["setup_ok"] == 0 and m["pac"]["frames"] == 0, (m, fw.output)
        assert "set-up demand_period: no valid answer (register 2)" in fw.output
        link.silent.clear()
        m = wait_stats(recorder, lambda s: s["pac"]["setup_ok"] == 1, 30)
        assert m, fw.output
        assert values(recorder.wait(lambda: recorder.json(BASE + "/pac/state"), 20)) == PAC
        bus = m["pac"]["decoder"]
        assert link.corrupted[1] == 1 and bus["crc_errors"] >= 1 and bus["retries"] >= 1
        assert set(map(repr, link.writes[1])) == {repr((0x0002, [0x4170, 0]))}
        n = len(link.writes[1])
        time.sleep(2)
        assert len(link.writes[1]) == n  # done: not written again
        print("\nset-up after %d unanswered writes: %s" % (n - 2, m["pac"]))
        assert "Traceback" not in fw.output
    finally:
        fw.kill()
        link.stop()
