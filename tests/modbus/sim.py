"""pymodbus acting as energy meters on one emulated RS-485 link.

:class:`RtuLink` runs a pymodbus server with the RTU framer over TCP on 127.0.0.1 (the
gateway's emulated UART, hal.unix, connects to it), in a thread with its own event loop.
Each meter is a pymodbus SimDevice at its slave address whose input registers hold the
register map of the model (protocols.modbus.maps) filled from engineering values.
Faults per address: ``delay_s`` (answers late), ``silent`` (never answers), ``corrupt``
(a predicate on the answer count: that answer goes out with one data bit flipped, its
CRC unchanged, i.e. a CRC error on the wire).

Holding registers 0x0000..0x005F and 0xF900..0xF93F (the set-up registers of the maps,
protocols.modbus.maps.setup) hold what is written (FC 6/16); ``writes[address]`` lists
the (register, values) written.  ``refuse`` {address: exception code} answers every
write with that exception; ``ignore`` addresses confirm writes but keep their registers
(a meter whose set-up is locked).  ``echo=True`` makes the link hear every request it
receives, as an RS-485 transceiver with RE tied low does: the request goes back to the
master before its answer (``echoed`` counts them).
"""

import asyncio
import struct
import threading

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerRTU, FramerType
from pymodbus.pdu import DecodePDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from protocols.modbus import maps
from protocols.modbus.values import F32, S16, S32_SW

REGS = 0x160  # registers 0..0x15F: every map fits


def registers(model, readings):
    """Input registers of a meter of ``model`` showing ``readings`` (key -> value in
    the published unit: energies in Wh)."""
    regs = [0] * REGS
    for key, reg, t, scale, _dec, _kind in maps.entries(maps.model(model)):
        if key not in readings:
            continue
        raw = readings[key] / scale
        if t == F32:
            hi, lo = struct.unpack(">HH", struct.pack(">f", raw))
            regs[reg:reg + 2] = [hi, lo]
        elif t == S16:
            regs[reg] = int(round(raw)) & 0xFFFF
        elif t == S32_SW:
            v = int(round(raw)) & 0xFFFFFFFF
            regs[reg:reg + 2] = [v & 0xFFFF, v >> 16]
        else:
            raise ValueError(t)
    return regs


class RtuLink:
    def __init__(self, meters, delay_s=None, silent=(), corrupt=None, refuse=None, ignore=(),
                 echo=False):
        """meters: {address: (model, readings)}; delay_s: {address: seconds};
        silent: addresses that never answer; corrupt: {address: predicate(n)};
        refuse: {address: exception code for writes}; ignore: addresses that drop writes;
        echo: the master hears its own requests."""
        self.meters = meters
        self.refuse = dict(refuse or {})
        self.ignore = set(ignore)
        self.echo = echo
        self.echoed = 0
        self.writes = {a: [] for a in meters}
        self.delay_s = dict(delay_s or {})
        self.silent = set(silent)
        self.corrupt = dict(corrupt or {})
        self.requests = {a: 0 for a in meters}
        self.answers = {a: 0 for a in meters}
        self.corrupted = {a: 0 for a in meters}
        self.port = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error = None
        self._server = None
        self._t = threading.Thread(target=self._run, name="pymodbus-rtu", daemon=True)

    def start(self):
        self._t.start()
        if not self._ready.wait(10):
            raise RuntimeError("pymodbus server did not start")
        if self._error:
            raise self._error
        return self

    def _device(self, address, model, readings):
        regs = registers(model, readings)

        async def action(function_code, start_address, address_, count, current, set_values):
            self.requests[address] += 1
            if set_values:
                if address in self.refuse:
                    return ExcCodes(self.refuse[address])
                self.writes[address].append((address_, list(set_values)))
                if address in self.ignore:  # confirmed, not stored
                    o = address_ - start_address
                    set_values[:] = current[o:o + len(set_values)]
            return None

        blocks = ([SimData(0, values=[False] * 16, datatype=DataType.BITS)],
                  [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
                  [SimData(0, values=[0] * 0x60, datatype=DataType.REGISTERS),
                   SimData(0xF900, values=[0] * 0x40, datatype=DataType.REGISTERS)],
                  [SimData(0, values=regs, datatype=DataType.REGISTERS)])
        return SimDevice(address, simdata=blocks, action=action)

    def _trace(self, sending, data):
        if not sending or not data:
            return data
        a = data[0]
        if a in self.silent:
            return b""
        if a in self.answers:
            self.answers[a] += 1
            pred = self.corrupt.get(a)
            if pred is not None and len(data) > 5 and pred(self.answers[a]):
                self.corrupted[a] += 1
                b = bytearray(data)
                b[4] ^= 0x10  # a data bit; the CRC is left as it was
                data = bytes(b)
            delay = self.delay_s.get(a)
            if delay:  # sent later on the link, whatever the master does meanwhile
                self._loop.call_later(delay, self._send_late, data)
                return b""
        return data

    def _trace_pdu(self, sending, pdu):
        if not sending and self.echo:  # a request received: the line hears it first
            self.echoed += 1
            self._send_late(FramerRTU(DecodePDU(False)).buildFrame(pdu))
        return pdu

    def _send_late(self, data):
        for conn in list(self._server.active_connections.values()):
            if conn.transport is not None:
                conn.transport.write(data)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except Exception as e:  # reported by start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._server.shutdown())
        self._loop.close()

    async def _start(self):
        devices = [self._device(a, m, r) for a, (m, r) in self.meters.items()]
        self._server = ModbusTcpServer(devices, framer=FramerType.RTU, address=("127.0.0.1", 0),
                                       trace_packet=self._trace, trace_pdu=self._trace_pdu)
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]

    def stop(self):
        if self._t.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._t.join(10)
