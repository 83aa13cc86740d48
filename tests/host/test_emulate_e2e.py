"""End to end: simulated Linky -> emulated gateway (unix port) -> broker -> paho subscriber."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from passerelle.emulate import Emulation
from passerelle.sim.linky import LinkySim

pytestmark = pytest.mark.slow

# The board's heap (boards/emu/board.json, 96K) unless overridden, like tests/firmware/test_heap.py
HEAPSIZE = os.environ.get("PASSERELLE_HEAPSIZE")
HEAP_ARGS = ["--heapsize", HEAPSIZE] if HEAPSIZE else []


class Subscriber:
    """Collects every message of passerelle/# and homeassistant/# (latest per topic)."""

    def __init__(self, broker):
        self.msgs = {}
        self.all = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-%d" % os.getpid())
        self.c.on_connect = lambda c, u, f, rc, p=None: (
            c.subscribe([("passerelle/#", 0), ("homeassistant/#", 0)]), self.ready.set())
        self.c.on_message = self._on_message
        self.c.on_log = lambda *a: None
        self.c.connect(broker.host, broker.port, 30)
        self.c.loop_start()
        assert self.ready.wait(10), "subscriber could not connect"

    def _on_message(self, c, u, msg):
        with self.lock:
            self.msgs[msg.topic] = msg.payload
            self.all.append((time.monotonic(), msg.topic, msg.payload))

    def states(self, topic):
        with self.lock:
            return [json.loads(p) for _, t, p in self.all if t == topic]

    def wait(self, pred, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if pred(self.msgs):
                    return True
            time.sleep(0.1)
        return False

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def _env(root):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "host"), str(root)])
    return env


def _check_state(state, sim):
    """State JSON keys come from the simulator's labels, indexes are JSON numbers."""
    labels = [g[0] for g in sim.groups(0)]
    for key in ("EAST", "EASF01", "EASF02", "EASD01", "SINSTS", "IRMS1", "URMS1", "PREF"):
        assert key in labels
        assert isinstance(state.get(key), int) and not isinstance(state[key], bool), (key, state.get(key))
    assert state["ADSC"] == sim.meter_id
    assert state["PRM"] == sim.prm
    assert not (set(state) - set(labels) - {"phases", "tempo_today", "tempo_tomorrow", "seq", "ts"})
    east0 = sim.indexes()["EAST"]
    assert east0 <= state["EAST"] <= east0 + 10000
    # zero indexes (EASF07..10 here) may be left out by the gateway
    assert abs(state["EAST"] - sum(state.get("EASF%02d" % i, 0) for i in range(1, 11))) <= 10


@pytest.mark.mosquitto
def test_cli_emulate_publishes_state_and_discovery(mosquitto, project_root):
    sub = Subscriber(mosquitto)
    proc = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "passerelle.cli", "emulate", "--broker", mosquitto.url,
             "--duration", "25", "--speed", "2"] + HEAP_ARGS,
            cwd=project_root, env=_env(project_root), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        sub.close()
    assert proc.returncode == 0, out
    assert "gw | " in out                                   # firmware output forwarded, prefixed
    state_topic = "passerelle/emu1/linky/state"
    assert sub.msgs.get("passerelle/emu1/status") in (b"online", b"offline")
    states = sub.states(state_topic)
    assert states, (sorted(sub.msgs), out[-3000:])
    sim = LinkySim(mode="standard", phases=3, tariff="tempo", seed=0)
    _check_state(states[-1], sim)
    assert states[-1].get("phases") == 3
    assert states[-1].get("tempo_today") in ("blue", "white", "red")
    # Home Assistant discovery: retained configs under homeassistant/, pointing at the state
    disc = {t: json.loads(p) for t, p in sub.msgs.items() if t.startswith("homeassistant/") and
            t.endswith("/config") and p}
    assert len(disc) >= 10, sorted(sub.msgs)
    east = [c for c in disc.values() if "EAST" in (c.get("value_template") or c.get("val_tpl") or "")]
    assert east, list(disc.values())[:3]
    cfg = east[0]
    assert (cfg.get("state_topic") or cfg.get("stat_t")) == state_topic
    assert (cfg.get("unit_of_measurement") or cfg.get("unit_of_meas")) == "Wh"


@pytest.mark.mosquitto
def test_emulation_api_historic_hc(mosquitto, project_root):
    sub = Subscriber(mosquitto)
    lines = []
    emu = Emulation(project_root=project_root, tic_sim="historic", phases=1, tariff="hc", seed=9,
                    broker=mosquitto.url, speed=4, echo=False, on_line=lines.append,
                    heapsize=HEAPSIZE)
    try:
        with emu:
            assert emu.root.is_dir() and (emu.root / "lib").is_dir()
            assert (emu.root / "main.py").is_file() and (emu.root / "config.json").is_file()
            cfg = json.loads((emu.root / "config.json").read_text())
            assert cfg["mqtt"]["host"] == mosquitto.host and cfg["mqtt"]["port"] == mosquitto.port
            topic = "passerelle/emu1/linky/state"
            ok = sub.wait(lambda m: topic in m and b"HCHP" in m[topic], 40)
            assert ok, "\n".join(lines[-40:])
            assert emu.running() and not emu.crashed()
            stats = emu.tic_stats()["1"]
            assert stats["connections"] >= 1 and stats["bytes"] > 150     # at least one frame
            root = emu.root
        assert not root.exists()                          # temp board root removed
        assert not emu.running()
    finally:
        emu.stop()
        sub.close()
    state = sub.states(topic)[-1]
    sim = LinkySim(mode="historic", phases=1, tariff="hc", seed=9)
    assert state["ADCO"] == sim.meter_id
    assert state["OPTARIF"] in ("HC", "HC..")
    assert state["PTEC"] in ("HC", "HP", "HC..", "HP..")
    for key in ("HCHC", "HCHP", "IINST", "PAPP", "ISOUSC"):
        assert isinstance(state[key], int), key
    assert state["HCHC"] >= sim.indexes()["EASF01"]
