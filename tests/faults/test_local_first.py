"""Local first (issue 7 §5): while the broker is away, relays and heaters keep their last
commanded state and their safety timers keep running; once it is back, the gateway
republishes what changed meanwhile.  Emulated board (MicroPython unix port) with its
pins on the host's I/O server, a mosquitto that is stopped and started again."""

import json
import time

import pytest

from passerelle import brokers
from passerelle.emu_io import IoServer
from tests.firmware.feed import Firmware, Recorder

pytestmark = [pytest.mark.mosquitto]

BASE = "passerelle/lf1"


def test_relays_and_heaters_keep_working_offline(micropython, tmp_path):
    broker = brokers.launch(brokers.Mosquitto)
    io = IoServer().start()
    rec = fw = None
    try:
        cfg = {"device_id": "lf1", "stats_period_s": 5,
               "mqtt": {"host": "127.0.0.1", "port": broker.port, "keepalive": 5},
               "network": {"type": "none"},
               "relays": [{"id": "boiler", "pin": 25}, {"id": "light", "pin": 14}],
               "heaters": [{"id": "salon", "pin_pos": 32, "pin_neg": 33}]}
        (tmp_path / "config.json").write_text(json.dumps(cfg))
        fw = Firmware(micropython, tmp_path, {"io": io.port})
        assert io.wait_hello(1, 30), fw.output
        rec = Recorder(broker.host, broker.port)
        assert rec.wait(lambda: rec.get(BASE + "/status") == b"online", 20), fw.output

        rec.publish(BASE + "/light/set", b"ON")
        rec.publish(BASE + "/salon/set", b"eco")             # eco: both half-waves
        assert io.wait_level(14, 1) and io.wait(lambda: io.out.get(32) == 1 and io.out.get(33) == 1)
        rec.publish(BASE + "/boiler/set", b"PULSE 3")
        assert io.wait_level(25, 1), fw.output
        t_on = time.monotonic()
        assert rec.wait(lambda: rec.get(BASE + "/boiler/state") == b"ON", 10)
        rec.stop()
        rec = None

        broker.stop()                                          # the broker goes away
        assert io.wait_level(25, 0, 10), fw.output            # the pulse timer still ends it
        pulse = time.monotonic() - t_on
        assert 2.0 <= pulse <= 6.0, pulse
        time.sleep(3)                                          # offline, nothing else moves
        assert io.level(14) == 1 and io.level(32) == 1 and io.level(33) == 1, io.out
        assert fw.proc.poll() is None, fw.output
        print("\nlocal first: pulse of 3 s ended after %.1f s with the broker down" % pulse)

        broker = brokers.launch(brokers.Mosquitto, port=broker.port)   # back on the same port
        rec = Recorder(broker.host, broker.port)
        assert rec.wait(lambda: rec.get(BASE + "/status") == b"online", 30), fw.output
        # the state changed while offline reaches the broker once it is back
        assert rec.wait(lambda: rec.get(BASE + "/boiler/state") == b"OFF", 20), fw.output
        assert rec.wait(lambda: rec.get(BASE + "/light/state") == b"ON"
                        and rec.get(BASE + "/salon/state") == b"eco", 10), rec.retained
        assert "Traceback" not in fw.output and "MemoryError" not in fw.output, fw.output
    finally:
        if rec is not None:
            rec.stop()
        if fw is not None:
            fw.kill()
        io.stop()
        broker.stop()
