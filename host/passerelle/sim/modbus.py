"""Modbus RTU energy meters simulated on one emulated RS-485 link (host side).

:class:`ModbusLinkServer` is the meters' end of the emulated bus: a TCP server on
127.0.0.1 (the emulated board's UART, ``hal.unix``, connects to it) that reads RTU
requests, and answers those addressed to one of its :class:`MeterSim` (FC 3/4 reads of
the model's input registers, FC 6/16 writes into holding registers 0..63 and the
model's set-up registers (protocols.modbus.maps.setup), read back with FC 3, exception
2 for registers outside the map); other addresses stay silent, as on a real bus.
``echo=True`` (or a meter config with ``"echo": true``) sends every byte received back
first, as an RS-485 transceiver with RE tied low lets the master hear itself.  Pure
Python on top of ``protocols.modbus`` (CRC, register maps), no pymodbus: ``passerelle
emulate`` serves the Modbus meters of a config with it.

Readings move like a household's: power wanders, energies integrate it (import while
the power is positive, export while negative), voltage and frequency jitter.
"""

import random
import socket
import struct
import threading
import time

from protocols.modbus import crc16, maps
from protocols.modbus.values import F32, S16, S32_SW, U16, U32, S32, U32_SW

from ..rtu_split import request_length

REGS = 0x200


def _adu(body):
    c = crc16(body)
    return bytes(body) + bytes([c & 0xFF, c >> 8])


class MeterSim:
    """One meter of ``model`` (protocols.modbus.maps.MODELS) at ``address``."""

    def __init__(self, model, address, seed=0, power_w=1500.0, energy_wh=12_345_678):
        m = maps.model(model)
        if m is None:
            raise ValueError("unknown Modbus model %r (one of %s)" % (model, ", ".join(maps.MODELS)))
        self.model, self.address = model, address
        self.function = m[0]
        self.entries = maps.entries(m)
        self.rnd = random.Random(seed)
        self.power = power_w
        self.imported = float(energy_wh)
        self.exported = 1000.0
        self.holding = {}  # register -> value written
        self.writable = set(range(64))
        for _key, reg, t, _values in maps.setup(model):
            self.writable.update(range(reg, reg + (1 if t == U16 else 2)))
        self._t = time.monotonic()

    def readings(self):
        """Engineering values now (energies in Wh), the state the gateway should publish."""
        now = time.monotonic()
        dt, self._t = now - self._t, now
        self.power = max(-3000.0, min(6000.0, self.power + self.rnd.uniform(-50, 50)))
        if self.power >= 0:
            self.imported += self.power * dt / 3600
        else:
            self.exported -= self.power * dt / 3600
        v = 230 + self.rnd.uniform(-2, 2)
        i = abs(self.power) / v
        r = {"energy_import": self.imported, "energy_export": self.exported,
             "energy_total": self.imported + self.exported, "power": self.power,
             "voltage": v, "current": i, "frequency": 50 + self.rnd.uniform(-0.05, 0.05),
             "apparent_power": v * i, "reactive_power": 0.1 * self.power,
             "power_factor": 0.95, "current_n": 0.1}
        for p in (1, 2, 3):
            r["voltage_l%d" % p] = v + p - 2
            r["current_l%d" % p] = i / 3
            r["power_l%d" % p] = self.power / 3
        return r

    def registers(self):
        regs = [0] * REGS
        r = self.readings()
        for key, reg, t, scale, _dec, _kind in self.entries:
            raw = r.get(key, 0.0) / scale
            if t == F32:
                regs[reg:reg + 2] = struct.unpack(">HH", struct.pack(">f", raw))
            elif t in (U16, S16):
                regs[reg] = int(round(raw)) & 0xFFFF
            else:
                v = int(round(raw)) & 0xFFFFFFFF
                regs[reg:reg + 2] = [v >> 16, v & 0xFFFF] if t in (U32, S32) else [v & 0xFFFF, v >> 16]
        return regs

    def answer(self, fc, reg, arg):
        """The response ADU to one request (fc, first register, count or values)."""
        a = self.address
        if fc in (3, 4):
            if fc == self.function:
                regs = self.registers()[reg:reg + arg]
            elif all(r in self.writable for r in range(reg, reg + arg)):
                regs = [self.holding.get(r, 0) for r in range(reg, reg + arg)]
            else:
                regs = []
            if len(regs) < arg:
                return _adu([a, fc | 0x80, 2])
            body = bytearray([a, fc, 2 * arg])
            for v in regs:
                body += bytes([v >> 8, v & 0xFF])
            return _adu(body)
        values = [arg] if fc == 6 else arg
        if not all(r in self.writable for r in range(reg, reg + len(values))):
            return _adu([a, fc | 0x80, 2])
        for i, v in enumerate(values):
            self.holding[reg + i] = v
        if fc == 6:
            return _adu([a, 6, reg >> 8, reg & 0xFF, arg >> 8, arg & 0xFF])
        return _adu([a, 16, reg >> 8, reg & 0xFF, 0, len(values)])


def parse_requests(buf):
    """Complete requests at the start of ``buf`` -> ([(address, fc, reg, arg)], bytes used).
    A frame with a bad CRC or an unknown function drops one byte (resynchronisation)."""
    out = []
    i = 0
    while len(buf) - i >= 8:
        n = request_length(buf, i)
        if n == 0:
            break
        if n < 0:
            i += 1
            continue
        fc = buf[i + 1]
        a, reg = buf[i], buf[i + 2] << 8 | buf[i + 3]
        if fc == 16:
            arg = [buf[i + 7 + 2 * k] << 8 | buf[i + 8 + 2 * k] for k in range(buf[i + 6] // 2)]
        else:
            arg = buf[i + 4] << 8 | buf[i + 5]
        out.append((a, fc, reg, arg))
        i += n
    return out, i


class ModbusLinkServer:
    """``ModbusLinkServer(meters)``: meters = MeterSim list, or config entries
    ``{"model", "address"}``.  Same life cycle as TicServer (start, port, stats, stop).
    ``tap(direction, bytes)`` sees the line's traffic as a recording does (``passerelle
    emulate --record``): ``tx`` the bytes the gateway sent, ``rx`` the echo and answers."""

    def __init__(self, meters, speed=1.0, host="127.0.0.1", port=0, name="modbus", seed=0,
                 echo=None, tap=None):
        if echo is None:
            echo = any(isinstance(m, dict) and m.get("echo") for m in meters)
        self.echo = echo
        self.meters = {}
        for k, m in enumerate(meters):
            if isinstance(m, dict):
                m = MeterSim(m["model"], m["address"], seed=seed + k)
            self.meters[m.address] = m
        self.name = name
        self.tap = tap  # tap(direction, bytes): "tx" what the gateway sent, "rx" what it heard
        self.stats = {"connections": 0, "requests": 0, "answers": 0, "ignored": 0,
                      "echoed": 0}
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(2)
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self._t = threading.Thread(target=self._serve, name="modbus-link", daemon=True)

    def start(self):
        self._t.start()
        return self

    def stop(self, timeout=5.0):
        self._stop.set()
        self._t.join(timeout)
        self._sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.stats["connections"] += 1
            with conn:
                self._talk(conn)

    def _talk(self, conn):
        conn.settimeout(0.2)
        buf = b""
        while not self._stop.is_set():
            try:
                data = conn.recv(512)
            except socket.timeout:
                buf = b""  # a silence ends whatever was half received
                continue
            except OSError:
                return
            if not data:
                return
            if self.tap is not None:
                self.tap("tx", data)
            if self.echo:  # the line hears the request as it goes
                try:
                    conn.sendall(data)
                except OSError:
                    return
                self.stats["echoed"] += len(data)
                if self.tap is not None:
                    self.tap("rx", data)
            buf += data
            reqs, used = parse_requests(buf)
            buf = buf[used:][-512:]
            for a, fc, reg, arg in reqs:
                self.stats["requests"] += 1
                meter = self.meters.get(a)
                if meter is None:
                    self.stats["ignored"] += 1
                    continue
                answer = meter.answer(fc, reg, arg)
                try:
                    conn.sendall(answer)
                except OSError:
                    return
                self.stats["answers"] += 1
                if self.tap is not None:
                    self.tap("rx", answer)
