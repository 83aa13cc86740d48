"""Loopback helpers for the firmware end-to-end tests: a TIC feed server, an MQTT
recorder (paho) and a runner for the firmware on the MicroPython unix port.
Everything binds 127.0.0.1, has timeouts and is always stopped."""

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"


def have_tic():
    try:
        import protocols.tic as tic
    except ImportError:
        return False
    return hasattr(tic, "TicDecoder") and hasattr(tic, "encode_frame")


def standard_3p_groups(i):
    """Groups of frame number i of a three-phase Linky in standard mode (Tempo)."""
    east = 12345678 + 3 * i
    sinsts = 2000 + (i % 7) * 10
    groups = [
        ("ADSC", "041876097263", None), ("VTIC", "02", None),
        ("DATE", "", "H230301%06d" % (91834 + i % 20)),
        ("NGTF", "     TEMPO      ", None), ("LTARF", "    HP  BLEU    ", None),
        ("EAST", "%09d" % east, None), ("EASF01", "%09d" % (east - 10000000), None),
        ("EASF02", "%09d" % 2345678, None),
    ]
    groups += [("EASF%02d" % n, "000000000", None) for n in range(3, 11)]
    groups += [("EASD01", "%09d" % east, None)] + \
        [("EASD%02d" % n, "000000000", None) for n in range(2, 5)]
    groups += [("IRMS%d" % p, "%03d" % (3 + p), None) for p in (1, 2, 3)]
    groups += [("URMS%d" % p, "%03d" % (229 + p), None) for p in (1, 2, 3)]
    groups += [("PREF", "12", None), ("PCOUP", "12", None), ("SINSTS", "%05d" % sinsts, None)]
    groups += [("SINSTS%d" % p, "%05d" % (sinsts // 3), None) for p in (1, 2, 3)]
    groups += [("SMAXSN", "05040", "H230301061200")]
    groups += [("SMAXSN%d" % p, "01680", "H230301061200") for p in (1, 2, 3)]
    groups += [("SMAXSN-1", "04040", "H230228120000")]
    groups += [("SMAXSN%d-1" % p, "01340", "H230228120000") for p in (1, 2, 3)]
    groups += [("CCASN", "01200", "H230301090000"), ("CCASN-1", "01100", "H230301083000")]
    groups += [("UMOY%d" % p, "%03d" % (230 + p), "H230301091000") for p in (1, 2, 3)]
    groups += [("STGE", "063A0001", None), ("MSG1", "PAS DE          MESSAGE         ", None),
               ("PRM", "01234567890123", None), ("RELAIS", "000", None),
               ("NTARF", "02", None), ("NJOURF", "00", None), ("NJOURF+1", "00", None),
               ("PJOURF+1", "00004001 06004002 22004001 NONUTILE NONUTILE NONUTILE NONUTILE "
                            "NONUTILE NONUTILE NONUTILE NONUTILE", None)]
    return groups


_TRI_ONLY = ("IRMS2", "IRMS3", "URMS2", "URMS3", "SINSTS1", "SINSTS2", "SINSTS3", "SMAXSN1",
             "SMAXSN2", "SMAXSN3", "SMAXSN1-1", "SMAXSN2-1", "SMAXSN3-1", "UMOY2", "UMOY3")


def standard_1p_groups(i):
    """The same meter, single-phase: no phase 2/3 groups and no per-phase totals."""
    return [g for g in standard_3p_groups(i) if g[0] not in _TRI_ONLY]


class TicFeed:
    """TCP server on 127.0.0.1 writing encoded frames to every client, every period_s."""

    def __init__(self, groups=standard_3p_groups, mode=None, period_s=0.3):
        import protocols.tic as tic
        self._encode = tic.encode_frame
        self._mode = tic.STANDARD if mode is None else mode
        self._groups = groups
        self.period_s = period_s
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.clients = 0
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.clients += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn):
        i = 0
        with conn:
            while not self._stop.is_set():
                try:
                    conn.sendall(self._encode(self._groups(i), self._mode))
                except OSError:
                    return
                i += 1
                self._stop.wait(self.period_s)

    def stop(self):
        self._stop.set()
        self._sock.close()
        for t in self._threads:
            t.join(timeout=2)


class Recorder:
    """paho subscriber keeping the last payload (and retain flag) of every topic."""

    def __init__(self, host, port, topics=("passerelle/#", "homeassistant/#")):
        import paho.mqtt.client as mqtt
        self.last = {}
        self.retained = {}
        self.history = []
        self._lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="recorder-%d-%d" % (os.getpid(), id(self)))
        self.c.on_message = self._on_message
        self.c.connect(host, port, keepalive=30)
        for t in topics:
            self.c.subscribe(t, qos=1)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg):
        with self._lock:
            self.last[msg.topic] = msg.payload
            # sticky: True once the broker delivered a retained copy (live ones follow)
            self.retained[msg.topic] = self.retained.get(msg.topic, False) or msg.retain
            self.history.append((msg.topic, msg.payload))

    def get(self, topic):
        with self._lock:
            return self.last.get(topic)

    def json(self, topic):
        p = self.get(topic)
        return None if p is None else json.loads(p)

    def wait(self, pred, timeout=30.0, step=0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(step)
        return pred()

    def publish(self, topic, payload, retain=False):
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


class Firmware:
    """micropython main.py in a board root; output collected by a thread."""

    def __init__(self, micropython, root, emu, heapsize=None, paths=None, script=None, romfs=None):
        """``romfs``: a firmware image (passerelle.romfs) the board's main.py mounts at
        /rom and imports from in place, as a board does; ``paths`` then usually []."""
        env = dict(os.environ)
        paths = [FIRMWARE, ROOT] if paths is None else paths
        env["MICROPYPATH"] = os.pathsep.join([str(p) for p in paths] + [".frozen"])
        env["PASSERELLE_EMU"] = json.dumps(emu)
        args = []
        if heapsize:
            args += ["-X", "heapsize=%s" % heapsize]
        args.append(str(script or FIRMWARE / "main.py"))
        if romfs is not None:
            from passerelle.romfs import command
            argv = command(romfs, args)
        else:
            argv = [micropython] + args
        self.lines = []
        self.proc = subprocess.Popen(argv, cwd=str(root), env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self):
        return "\n".join(self.lines)

    def boot_report(self):
        for line in self.lines:
            if line.startswith("PASSERELLE BOOT "):
                return json.loads(line[len("PASSERELLE BOOT "):])
        return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._t.join(timeout=5)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


def write_board(root, board="emu"):
    """The board.json `passerelle flash` / `emulate` deploy (boards.device_board): the
    device parses it at every boot, so the heap tests measure it."""
    from passerelle.boards import device_board, load_board
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "board.json").write_text(json.dumps(device_board(load_board(board))))


def write_root(root, mqtt_port, device_id="e2e", **meter):
    m = {"id": "linky", "mode": "auto", "uart": 1, "period_s": 5, "min_interval_s": 1}
    m.update(meter)
    cfg = {"device_id": device_id, "name": "E2E gateway", "stats_period_s": 5,
           "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "keepalive": 10},
           "network": {"type": "none"}, "meters": [m]}
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(cfg))
    write_board(root)
    return cfg
