"""Fault-injection harness (issue 7): the emulated board (the MicroPython unix port
running the firmware from its ROMFS image, as `passerelle emulate` does), a Linky
simulator at high speed, mosquitto, paho subscribers, and the faults: broker SIGKILL,
blackhole proxy, gateway SIGKILL, flash quota (ENOSPC), garbage / oversized packets.

Accounting is derived from "seq": every state the gateway produces is logged at debug
level (``D out: <topic> seq N``), every state delivered is seen by a paho subscriber
with a persistent QoS 1 session on a broker that persists its sessions (so a broker
restart loses nothing on the subscriber's side).  ``account()`` gives produced /
delivered / lost / duplicated and checks the order.

Everything binds 127.0.0.1, has a timeout and is stopped by the fixtures."""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from passerelle import brokers
from passerelle.boards import device_board
from passerelle.romfs import build_image, command
from passerelle.sim.linky import LinkySim
from passerelle.tic_server import TicServer
from tests.tcp_proxy import BlackholeProxy, close_socks  # BlackholeProxy: for test_faults, soak_faults

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "flt"
BASE = "passerelle/" + DEVICE
STATE = BASE + "/linky/state"
KEEPALIVE = 5
BOARD = json.loads((ROOT / "boards/emu/board.json").read_text())
HEAPSIZE = BOARD["heapsize"]
SEQ_RE = re.compile(r"^D out: .*seq (\d+)$")
BASE_RE = re.compile(r"^I out: linky: seq from (\d+)$")


def gw_config(mqtt_port, **over):
    cfg = {"device_id": DEVICE, "name": "fault gateway", "log_level": "debug",
           "stats_period_s": 5,
           "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "keepalive": KEEPALIVE},
           "network": {"type": "none"},
           "watchdog": {"timeout_s": 30, "offline_reset_s": 0},
           "outbox": {"flash_kb": 256, "offline_interval_s": 0},
           "meters": [{"id": "linky", "mode": "standard", "period_s": 5, "min_interval_s": 0}]}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = dict(cfg[k], **v)
        else:
            cfg[k] = v
    return cfg


class Broker(brokers.Mosquitto):
    """mosquitto keeping its sessions on disk (autosaved every second): a subscriber's
    persistent session and its queued QoS 1 messages survive a SIGKILL + restart."""

    def _argv(self):
        exe = brokers.find_mosquitto()
        conf = os.path.join(self._tmp, "mosquitto.conf")
        os.chmod(self._tmp, 0o777)  # run as root, mosquitto saves as its own user
        with open(conf, "w") as f:
            f.write("listener %d %s\nallow_anonymous true\npersistence true\n"
                    "persistence_location %s/\nautosave_interval 1\nmax_queued_messages 10000\n"
                    "log_type error\nlog_type warning\n" % (self.port, self.host, self._tmp))
        return [exe, "-c", conf]

    def kill(self):
        """SIGKILL, after making mosquitto save its sessions (SIGUSR1): the accounting
        subscriber's persistent session must survive, whatever the autosave timer's
        phase; what is tested is the gateway's side of the outage."""
        proc = self.proc
        db = os.path.join(self._tmp, "mosquitto.db")
        if proc is not None and proc.poll() is None:
            before = os.stat(db).st_mtime_ns if os.path.exists(db) else 0
            proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                if os.path.exists(db) and os.stat(db).st_mtime_ns != before:
                    break
                time.sleep(0.02)
            time.sleep(0.1)  # the save is a write then a rename: let it finish
        super().kill()


class Subscriber:
    """paho, persistent session, QoS 1, on passerelle/<dev>/#: every message with its
    arrival time and retain flag."""

    def __init__(self, port, client_id="fault-sub", clean=False):
        self.msgs = []  # (t, topic, payload, retain)
        self.connects = []  # (t, session_present): a lost session would lose queued states
        self._lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=clean)
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.reconnect_delay_set(1, 1)
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connects.append((time.monotonic(), bool(getattr(flags, "session_present", False))))
        c.subscribe(BASE + "/#", qos=1)

    def _on_message(self, c, u, m):
        with self._lock:
            self.msgs.append((time.monotonic(), m.topic, bytes(m.payload), bool(m.retain)))

    def states(self, since=0.0):
        """[(t, seq, doc)] of the live (not retained-on-subscribe) state messages."""
        out = []
        with self._lock:
            msgs = list(self.msgs)
        for t, topic, payload, retain in msgs:
            if topic == STATE and not retain and t >= since:
                doc = json.loads(payload)
                out.append((t, doc["seq"], doc))
        return out

    def last(self, topic):
        with self._lock:
            for m in reversed(self.msgs):
                if m[1] == topic:
                    return m[2]
        return None

    def wait(self, pred, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.05)
        return pred()

    def stop(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


class Gateway:
    """The firmware in a board root, run from the ROMFS image like `passerelle emulate`;
    restarted on the board-reset exit codes (75 watchdog, 76 reset) like a board, and on
    start() after kill().  Output lines are kept with their arrival time."""

    def __init__(self, image, root, cfg, emu):
        self.image, self.root, self.emu = image, Path(root), dict(emu)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "config.json").write_text(json.dumps(cfg))
        (self.root / "board.json").write_text(json.dumps(device_board(BOARD)))
        shutil.copyfile(ROOT / "firmware/main.py", self.root / "main.py")
        self.lines = []  # (t, boot number, line)
        self.boots = 0
        self.resets = 0
        self.proc = None
        self._stop = False
        self._thread = None

    def _spawn(self):
        env = dict(os.environ, MICROPYPATH=".frozen", PASSERELLE_EMU=json.dumps(self.emu))
        self.boots += 1
        self.proc = subprocess.Popen(command(self.image, ["-X", "heapsize=" + HEAPSIZE, "main.py"]),
                                     cwd=str(self.root), env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def start(self):
        self._stop = False
        self._spawn()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        return self

    def _pump(self):
        while True:
            proc, boot = self.proc, self.boots
            for raw in iter(proc.stdout.readline, b""):
                self.lines.append((time.monotonic(), boot, raw.decode("utf-8", "replace").rstrip()))
            proc.stdout.close()
            rc = proc.wait()
            if self._stop or rc not in (75, 76):
                return
            self.resets += 1
            self._spawn()

    def kill(self):
        """SIGKILL, as a power cut: nothing is flushed."""
        self._stop = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self._thread is not None:
            self._thread.join(5)

    def stop(self):
        self.kill()

    def wait_line(self, pred, timeout=30.0, since=0.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, _, line in list(self.lines):
                if t >= since and pred(line):
                    return line
            time.sleep(0.05)
        return None

    @property
    def output(self):
        return "\n".join(line for _, _, line in self.lines[-400:])

    def produced(self):
        """seq numbers the gateway produced, in order, from its debug log."""
        out = []
        for _, _, line in list(self.lines):
            m = SEQ_RE.match(line)
            if m:
                out.append(int(m.group(1)))
        return out

    def bases(self):
        return [(boot, int(BASE_RE.match(line).group(1))) for _, boot, line in list(self.lines)
                if BASE_RE.match(line)]

    def boot_reports(self):
        return [json.loads(line[len("PASSERELLE BOOT "):]) for _, _, line in list(self.lines)
                if line.startswith("PASSERELLE BOOT ")]

    def errors(self):
        return [line for _, _, line in list(self.lines)
                if "Traceback" in line or "MemoryError" in line or "crashed" in line
                or "PASSERELLE CRASH" in line]

    def files(self):
        data = self.root / "data"
        return sorted(p for p in data.rglob("*") if p.is_file()) if data.is_dir() else []


def scan_segment(data):
    """The firmware's segment format (gw/outbox.py): -> (whole records, trailing bytes)."""
    i = k = 0
    while i + 4 <= len(data):
        j = i + 4 + data[i + 1] + ((data[i + 2] << 8) | data[i + 3])
        if j > len(data):
            break
        i, k = j, k + 1
    return k, len(data) - i


def account(name, produced, states, extra=""):
    """produced: seqs logged by the gateway; states: [(t, seq, doc)] delivered.
    Prints one FAULT line and returns the figures."""
    delivered = [s for _, s, _ in states]
    uniq = set(delivered)
    firsts, seen = [], set()
    for s in delivered:
        if s not in seen:
            seen.add(s)
            firsts.append(s)
    r = {"produced": len(set(produced)), "delivered": len(uniq),
         "lost": len(set(produced) - uniq), "duplicated": len(delivered) - len(uniq),
         "unknown": len(uniq - set(produced)), "in_order": firsts == sorted(firsts),
         "lost_seqs": sorted(set(produced) - uniq)[:20]}
    print("\nFAULT %-16s produced=%d delivered=%d lost=%d duplicated=%d in_order=%s %s%s"
          % (name, r["produced"], r["delivered"], r["lost"], r["duplicated"], r["in_order"], extra,
             " lost_seqs=%s" % r["lost_seqs"] if r["lost"] else ""))
    return r


class ChaosProxy(BlackholeProxy):
    """A proxy (tests/tcp_proxy.py) whose broker->gateway direction can be given
    scripted bytes: ``inject(data)`` sends them to the gateway on the live connection
    (between two chunks from the broker); ``garbage_connacks`` = how many new
    connections get garbage instead of the broker's CONNACK (then are closed)."""

    def __init__(self, target_port, garbage_connacks=0):
        self.garbage_connacks = garbage_connacks
        self._inject = []
        self._lock = threading.Lock()
        super().__init__(target_port)

    def inject(self, data):
        with self._lock:
            self._inject.append(bytes(data))

    def pending(self):
        with self._lock:
            return len(self._inject)

    def _refuse(self, a):
        if self.garbage_connacks <= 0:
            return False
        self.garbage_connacks -= 1
        try:
            a.settimeout(2)
            a.recv(4096)  # the CONNECT
            a.sendall(b"\x20\x02\x07\x00" + bytes(random.Random(7).randrange(256)
                                                  for _ in range(64)))
        except OSError:
            pass
        a.close()
        return True

    def _down(self, pair, b, a):
        b.settimeout(0.05)
        try:
            while not self.closed:
                with self._lock:
                    inj, self._inject = self._inject, []
                for d in inj:
                    a.sendall(d)
                try:
                    d = b.recv(65536)
                except socket.timeout:
                    continue
                if not d:
                    break
                if not pair["black"]:
                    a.sendall(d)
        except OSError:
            pass
        if not pair["black"]:
            close_socks(a, b)


@pytest.fixture(scope="session")
def image(tmp_path_factory):
    return build_image(ROOT, tmp_path_factory.mktemp("faults-build")).image


@pytest.fixture
def broker():
    if brokers.find_mosquitto() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mosquitto is required in CI")
        pytest.skip("mosquitto is not installed")
    b = brokers.launch(Broker)
    try:
        yield b
    finally:
        b.__exit__(None, None, None)


@pytest.fixture
def tic():
    """A three-phase standard Linky at 3.5x its line rate: a ~1.1 KB state about 2.5
    times a second with min_interval_s 0 (30 states ~ a 30-minute outage at period_s 60)."""
    sim = LinkySim(mode="standard", phases=3, tariff="tempo", seed=7)
    srv = TicServer(sim.stream(), sim.line_rate(), speed=3.5, name="linky").start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def sub(broker):
    s = Subscriber(broker.port)
    assert s.wait(lambda: s.c.is_connected(), 10)
    time.sleep(1.5)  # the session is on disk (autosave_interval 1)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def gateways(tmp_path, image):
    made = []

    def make(cfg, emu, name="board"):
        g = Gateway(image, tmp_path / name, cfg, emu)
        made.append(g)
        return g

    try:
        yield make
    finally:
        for g in made:
            g.stop()


@pytest.fixture
def proxies():
    made = []
    try:
        yield made
    finally:
        for p in made:
            p.close()


def pytest_configure(config):
    config.addinivalue_line("markers", "soak: long fault runs (make soak)")

