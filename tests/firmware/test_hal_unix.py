"""hal.unix, the emulated board, under the MicroPython unix port."""

import json
import socket
import threading

WDT_SCRIPT = """
import asyncio, hal
h = hal.open("emu", {"root": "."})
print("cause", h.reset_cause())
async def main():
    w = h.wdt(300)
    for i in range(3):
        await asyncio.sleep(0.1)
        w.feed()
    print("fed")
    await asyncio.sleep(5)
    print("not reached")
asyncio.run(main())
"""


def test_wdt_expiry_exits_75_and_next_boot_reports_wdt(tmp_path, run_micropython):
    r = run_micropython(WDT_SCRIPT, cwd=str(tmp_path), timeout=30)
    assert r.returncode == 75, r.stdout + r.stderr
    assert "cause power_on" in r.stdout and "fed" in r.stdout
    assert "watchdog not fed for 300 ms" in r.stdout and "not reached" not in r.stdout
    r = run_micropython("import hal; print(hal.open('emu', {}).reset_cause())",
                        cwd=str(tmp_path), timeout=30)
    assert r.stdout.strip() == "wdt"
    r = run_micropython("import hal; print(hal.open('emu', {}).reset_cause())",
                        cwd=str(tmp_path), timeout=30)
    assert r.stdout.strip() == "power_on"  # the breadcrumb is consumed once


def test_reset_cause_from_options_and_reset_exit(tmp_path, run_micropython):
    r = run_micropython("import hal; h = hal.open(None, {'reset_cause': 'hard'}); "
                        "print(h.name, h.reset_cause()); h.reset()", cwd=str(tmp_path))
    assert r.returncode == 76 and r.stdout.strip() == "emu hard"
    r = run_micropython("import hal; print(hal.open(None, {}).reset_cause())", cwd=str(tmp_path))
    assert r.stdout.strip() == "soft"


def test_nvs_persists_in_board_root(tmp_path, run_micropython):
    code = ("import hal; n = hal.open('emu', {}).nvs('gw'); print(n.get('boots', 0)); "
            "n.set('boots', n.get('boots', 0) + 1); n.set('name', 'x'); n.commit()")
    outs = [run_micropython(code, cwd=str(tmp_path)).stdout.strip() for _ in range(3)]
    assert outs == ["0", "1", "2"]
    data = json.loads((tmp_path / "nvs.json").read_text())
    assert data["gw"] == {"boots": 3, "name": "x"}


def test_uart_is_a_tcp_client(tmp_path, run_micropython):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(20)
    port = srv.getsockname()[1]

    def serve():
        try:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(b"\x02\nADCO 021861348497 L\r\x03")
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    code = """
import asyncio, hal
h = hal.open("emu", {"uart": {"1": %d}})
async def main():
    u = await h.uart(1, 9600)
    buf = bytearray(64)
    mv = memoryview(buf)
    n = 0
    while True:
        k = await u.readinto(mv[n:])
        if not k:
            break
        n += k
    u.close()
    print(bytes(buf[:n]))
    try:
        await h.uart(2, 9600)
    except OSError as e:
        print("no uart 2")
asyncio.run(main())
""" % port
    try:
        r = run_micropython(code, cwd=str(tmp_path), timeout=30)
    finally:
        srv.close()
        t.join(5)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["b'\\x02\\nADCO 021861348497 L\\r\\x03'", "no uart 2"]
