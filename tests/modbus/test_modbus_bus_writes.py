"""gw.drivers.modbus_bus writes on the MicroPython unix port, pymodbus as the meter on
the emulated link: FC 6 / FC 16 confirmed by their answers, exception responses, the
write round-trip time, an echoing transceiver; and a slave that confirms another write
than the one asked (a raw server): counted as a bad response and retried."""

import json
import socket
import threading

import pytest

from protocols.modbus import crc16
from tests.modbus.sim import RtuLink
from tests.modbus.test_modbus_e2e import PAC

SCRIPT = """
import asyncio, json, time, hal
from gw.drivers.modbus_bus import ModbusBus

class Log:
    def info(self, *a):
        pass
    warning = error = debug = info

h = hal.open("emu", {"uart": {"2": %(port)d}})
bus = ModbusBus({"uart": 2, "baudrate": 9600, "echo": %(echo)s}, h, Log())

def show(r):
    if r is None:
        return None
    if r.exception:
        return ["exc", r.exception]
    if r.function in (3, 4):
        return [r.function, [r.reg(i) for i in range(r.count)]]
    return [r.function, r.register, r.value if r.function == 6 else r.count]

async def main():
    out = {}
    steps = (("fc6", 6, 0x0010, 0x1234), ("read6", 3, 0x0010, 1),
             ("fc16", 16, 0x0002, [0x4170, 0]), ("read16", 3, 0x0002, 2),
             ("refused", 16, 0x0100, [1]))
    for name, fc, reg, arg in steps:
        t = time.ticks_ms()
        out[name] = show(await bus.request(1, fc, reg, arg, 300, 1))
        out[name + "_ms"] = time.ticks_diff(time.ticks_ms(), t)
    t = time.ticks_ms()
    for i in range(20):
        await bus.request(1, 16, 0x0002, [0x4170, i], 300, 1)
    out["fc16_avg_ms"] = time.ticks_diff(time.ticks_ms(), t) / 20
    st = dict(bus.stats)
    st.update(bus.decoder_stats())
    out["stats"] = st
    bus.close()
    print(json.dumps(out))

asyncio.run(main())
"""


def run(run_micropython, tmp_path, port, echo, read_back=True, timed=True):
    """SCRIPT against the link on ``port`` -> its JSON; without the read-backs unless
    ``read_back``, without the 20 timed FC 16 writes unless ``timed``."""
    code = SCRIPT % {"port": port, "echo": echo}
    if not read_back:
        code = code.replace('("read6", 3, 0x0010, 1),', "").replace('("read16", 3, 0x0002, 2),', "")
    if not timed:
        code = code.replace("for i in range(20)", "for i in range(0)").replace("/ 20", "/ 1")
    p = run_micropython(code, cwd=str(tmp_path), timeout=60)
    assert p.returncode == 0, p.stderr + p.stdout
    return json.loads(p.stdout.splitlines()[-1])


@pytest.mark.parametrize("echo", [False, True], ids=["plain", "echo"])
def test_writes_confirmed_and_read_back(run_micropython, tmp_path, echo):
    link = RtuLink({1: ("sdm630", PAC)}, echo=echo).start()
    try:
        out = run(run_micropython, tmp_path, link.port, echo)
    finally:
        link.stop()
    assert out["fc6"] == [6, 0x10, 0x1234] and out["read6"] == [3, [0x1234]]
    assert out["fc16"] == [16, 2, 2] and out["read16"] == [3, [0x4170, 0]]
    assert out["refused"] == ["exc", 2]  # no holding register there: illegal address
    st = out["stats"]
    assert st["requests"] == st["responses"] == 25 and st["exceptions"] == 1
    assert st["timeouts"] == st["retries"] == st["bad_responses"] == 0
    assert st["echoes"] == (25 if echo else 0) and st["echo_errors"] == 0
    assert link.writes[1][:2] == [(0x10, [0x1234]), (2, [0x4170, 0])]
    print("\nunix port <-> pymodbus%s: FC 6 write %d ms, FC 3 read-back %d ms, FC 16 write "
          "%d ms (avg of 20: %.1f ms), refused %d ms"
          % (" (echoing link)" if echo else "", out["fc6_ms"], out["read6_ms"], out["fc16_ms"],
             out["fc16_avg_ms"], out["refused_ms"]))


def raw_slave(answer):
    """A TCP server answering each complete request with answer(request) -> (socket,
    thread, requests seen)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(30)
    seen = []

    def serve():
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            buf = b""
            while True:
                try:
                    data = conn.recv(256)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while len(buf) >= 8:
                    fc = buf[1]
                    n = 9 + buf[6] if fc == 16 else 8
                    if len(buf) < n:
                        break
                    req, buf = buf[:n], buf[n:]
                    seen.append(req)
                    conn.sendall(answer(req))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t, seen


def run_raw(run_micropython, tmp_path, answer, echo, read_back=True):
    """SCRIPT (untimed) against raw_slave(answer) -> (its JSON, the requests seen)."""
    srv, t, seen = raw_slave(answer)
    try:
        return run(run_micropython, tmp_path, srv.getsockname()[1], echo, read_back, False), seen
    finally:
        srv.close()
        t.join(5)


def test_a_confirmation_of_another_write_is_retried_then_dropped(run_micropython, tmp_path):
    """The slave answers with a valid frame that confirms another register (or value):
    bad_responses, retried, and the request returns None."""
    def answer(req):
        body = bytearray(req[:6])
        if req[1] == 6:
            body[5] ^= 1  # another value
        elif req[1] == 16:
            body[3] ^= 1  # another register
        c = crc16(body)
        return bytes(body) + bytes([c & 0xFF, c >> 8])

    out, seen = run_raw(run_micropython, tmp_path, answer, echo=False, read_back=False)
    assert out["fc6"] is None and out["fc16"] is None and out["refused"] is None
    st = out["stats"]
    assert st["bad_responses"] == 6 and st["retries"] == 3 and st["responses"] == 0
    assert st["frames"] == 6 and st["crc_errors"] == 0 and len(seen) == 6


def test_echo_cut_short_is_decoded_at_the_silence(run_micropython, tmp_path):
    """"echo": true and a line that returns only the start of each request, then goes
    quiet: the bytes held back as the echo go to the decoder at the silence (dropped
    there as garbage), counted in echo_errors; each request times out."""
    out, seen = run_raw(run_micropython, tmp_path, lambda req: req[:3], echo=True)
    st = out["stats"]
    assert all(out[k] is None for k in ("fc6", "read6", "fc16", "read16", "refused"))
    assert st["requests"] == len(seen) == 10 and st["timeouts"] == 10
    assert st["echo_errors"] == 10 and st["echoes"] == 0 and st["garbage_bytes"] == 30
