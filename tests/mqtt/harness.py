"""Host-side helpers for the MQTT client tests: the driver subprocess (CPython or the
MicroPython unix port), a paho reference subscriber and a scripted fake broker (the
blackhole TCP proxy is tests/tcp_proxy.py).  Everything here is stopped by the tests'
fixtures."""

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

from protocols.errors import MalformedPacket
from protocols.mqtt import encode, server

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "client_driver.py"
# Heap for the driver on the 64-bit unix port.  Loaded from .py (compiled on the fly),
# which perf-reliability T1 budgets at 96K i386 = 144K 64-bit; see the MQTT notes for
# the measured minimum.
MP_HEAP = "144K"


class Driver:
    """client_driver.py in a subprocess; ``expect(ev)`` returns its next JSON event."""

    def __init__(self, interp, micropython, cfg):
        env = dict(os.environ)
        if interp == "micropython":
            argv = [micropython, "-X", "heapsize=" + MP_HEAP, str(DRIVER)]
            env["MICROPYPATH"] = os.pathsep.join([str(ROOT / "firmware"), str(ROOT), ".frozen"])
        else:
            argv = [sys.executable, "-u", str(DRIVER)]
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "firmware"), str(ROOT)])
        self.events = queue.Queue()
        self.lines = []
        self.p = subprocess.Popen(argv + [json.dumps(cfg)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self):
        for line in self.p.stdout:
            self.lines.append(line)
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            ev["_host_t"] = time.monotonic()
            self.events.put(ev)
        self.events.put(None)

    def expect(self, name, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                ev = self.events.get(timeout=max(left, 0.01))
            except queue.Empty:
                ev = {"ev": "_timeout"}
            if ev is None or ev["ev"] == "_timeout":
                self.stop()
                raise AssertionError("no %r event; stdout:\n%s\nstderr:\n%s" % (
                    name, "".join(self.lines)[-3000:], self.p.stderr.read()[-3000:]))
            if ev["ev"] == name:
                return ev

    def kill(self):
        """SIGKILL: the socket is closed by the kernel, no DISCONNECT is sent."""
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(5)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)

    def wait(self, timeout=15):
        rc = self.p.wait(timeout)
        self._t.join(2)
        return rc


class PahoSub:
    """Reference subscriber (paho-mqtt 2.2): ``msgs`` is a list of (topic, payload, retain)."""

    def __init__(self, broker, topics, qos=1, client_id=None):
        self.msgs = []
        self._subscribed = threading.Event()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2,
                             client_id=client_id or "ref-%d" % id(self))
        self.c.on_message = lambda c, u, m: self.msgs.append((m.topic, m.payload, m.retain))
        self.c.on_subscribe = lambda *a: self._subscribed.set()
        self.c.connect(broker.host, broker.port, keepalive=30)
        self.c.loop_start()
        self.c.subscribe([(t, qos) for t in topics])
        if not self._subscribed.wait(5):
            self.stop()
            raise AssertionError("reference subscriber got no SUBACK")

    def publish(self, topic, payload, qos=1, retain=False):
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def wait(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.msgs):
                return True
            time.sleep(0.02)
        return pred(self.msgs)

    def stop(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


class FakeBroker:
    """A scripted MQTT 3.1.1 broker for byte-level client checks (mosquitto test/lib
    style), served by one thread, speaking through protocols.mqtt.

    Script: PUBLISH "m1" is acknowledged only when it comes back with DUP (an ack
    timeout resend); PUBLISH "m2" makes the broker drop the connection without PUBACK,
    once; after the client's reconnect and the PUBACK of "m2", the broker sends a QoS1
    PUBLISH "T/in" "cmd" (pid 77).  ``log`` records (connection no, packet summary)."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.ls.settimeout(0.1)     # accept() polls, so close() returns at once
        self.host, self.port = "127.0.0.1", self.ls.getsockname()[1]
        self.log = []
        self.errors = []
        self.conns = 0
        self.dropped_m2 = False
        self.closed = False
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self):
        while not self.closed:
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns += 1
            try:
                self._session(s, self.conns)
            except (OSError, MalformedPacket) as e:
                self.errors.append(repr(e))
            finally:
                s.close()

    def _session(self, s, n):
        s.settimeout(5)
        d = server.MQTTServerDecoder(1024)
        while True:
            data = s.recv(4096)
            if not data:
                return
            i = 0
            while i < len(data):
                used, p = d.decode(data, i)
                i += used
                if p is None:
                    continue
                self.log.append((n, (p.type, p.pid, p.dup, p.topic,
                                     p.payload.decode() if p.payload is not None else None)))
                if p.type == 1:
                    s.sendall(server.connack(n > 1 and not p.clean, 0))
                elif p.type == 8:
                    s.sendall(server.suback(p.pid, [q for _, q in p.topics]))
                elif p.type == 12:
                    s.sendall(server.PINGRESP)
                elif p.type == 14:
                    return
                elif p.type == 3:
                    if p.payload == b"m1" and not p.dup:
                        continue                        # withheld
                    if p.payload == b"m2" and not self.dropped_m2:
                        self.dropped_m2 = True
                        return                          # drop the link, no PUBACK
                    s.sendall(encode.puback(p.pid))
                    if p.payload == b"m2":
                        s.sendall(encode.publish("T/in", b"cmd", qos=1, pid=77))

    def close(self):
        self.closed = True
        self.ls.close()
        self._t.join(5)
