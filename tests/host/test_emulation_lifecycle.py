"""Emulation lifecycle with stand-in firmware: TIC wiring, board resets, crashes, stop escalation."""

import json
import time

from passerelle.emulate import Emulation, parse_broker

CONFIG = {"device_id": "t1", "mqtt": {"host": "127.0.0.1"}, "network": {"type": "none"},
          "meters": [{"id": "linky", "uart": 1}]}


def _project(tmp_path, main):
    root = tmp_path / "proj"
    (root / "firmware" / "gw").mkdir(parents=True)
    (root / "protocols").mkdir()
    (root / "firmware" / "main.py").write_text(main)
    (root / "firmware" / "gw" / "__init__.py").write_text("VERSION = 't'\n")
    (root / "protocols" / "__init__.py").write_text("")
    (root / "boards" / "emu").mkdir(parents=True)
    (root / "boards" / "emu" / "config.json").write_text(json.dumps(CONFIG))
    return root


READER = """
import json, os, socket, sys
import gw
emu = json.loads(os.getenv("PASSERELLE_EMU"))
cfg = json.load(open("config.json"))
print("cfg", cfg["mqtt"]["host"], cfg["mqtt"]["port"], "uarts", sorted(emu["uart"]))
s = socket.socket()
s.connect(socket.getaddrinfo("127.0.0.1", emu["uart"]["1"])[0][-1])
n = 0
while n < 3000:
    n += len(s.recv(512))
print("got", n)
"""


def test_firmware_reads_the_tic_and_config(tmp_path):
    lines = []
    emu = Emulation(project_root=_project(tmp_path, READER + "sys.exit(0)\n"), validate=False,
                    broker="mqtt://127.0.0.1:18830", speed=8, echo=False, on_line=lines.append)
    with emu:
        assert emu.wait(30) == 0
        assert emu.crashed()              # it ended by itself (a gateway never should)
    assert "cfg 127.0.0.1 18830 uarts ['1']" in lines
    assert any(line.startswith("got ") and int(line[4:]) >= 3000 for line in lines)
    assert emu.tic_stats()["1"]["bytes"] >= 3000


def test_board_reset_exit_codes_restart_the_firmware(tmp_path):
    main = """
import os, sys, time
n = 0
try:
    n = int(open("boots").read())
except OSError:
    pass
open("boots", "w").write(str(n + 1))
print("boot", n)
if n < 2:
    sys.exit(75 if n == 0 else 76)
while True:
    time.sleep(0.1)
"""
    lines = []
    emu = Emulation(project_root=_project(tmp_path, main), validate=False, echo=False,
                    on_line=lines.append)
    with emu:
        assert emu.wait_for(lambda line: line == "boot 2", 30)
        assert emu.restarts == 2 and emu.running() and not emu.crashed()
    assert any("exit 75: watchdog" in line for line in lines)
    assert any("exit 76: reset" in line for line in lines)
    assert not emu.running()


def test_crash_is_reported(tmp_path):
    emu = Emulation(project_root=_project(tmp_path, "raise ValueError('boom')\n"), validate=False,
                    echo=False)
    with emu:
        assert emu.wait(30) == 1
        assert emu.crashed()
        assert any("ValueError: boom" in line for line in emu.lines)


def test_stop_escalates_to_sigterm(tmp_path):
    main = """
import time
print("up")
while True:
    try:
        time.sleep(10)
    except KeyboardInterrupt:
        print("ignoring SIGINT")
"""
    emu = Emulation(project_root=_project(tmp_path, main), validate=False, echo=False)
    emu.start()
    try:
        assert emu.wait_for(lambda line: line == "up", 20)
        t0 = time.monotonic()
        rc = emu.stop()
        assert rc == -15 and time.monotonic() - t0 < 8
        assert "ignoring SIGINT" in emu.lines
    finally:
        emu.stop()
    assert not emu.running()


def test_parse_broker():
    assert parse_broker("mqtt://127.0.0.1:1884") == ("127.0.0.1", 1884)
    assert parse_broker("localhost") == ("localhost", 1883)
    assert parse_broker("10.0.0.2:1999") == ("10.0.0.2", 1999)


def test_clear_board_state_leaves_a_freshly_flashed_root(tmp_path):
    from passerelle.emulate import clear_board_state
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "out0001.seg").write_bytes(b"x" * 100)   # an earlier run's backlog
    (tmp_path / "nvs.json").write_text("{}")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "lib").mkdir()
    clear_board_state(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "lib"]
    clear_board_state(tmp_path)                   # nothing to clear: no error
