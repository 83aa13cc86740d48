"""passerelle flash against a virtual board with the real mpremote transport: validation first,
incremental copy, boot report, MQTT."""

import json
import os
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from passerelle import cli
from passerelle.boards import load_board
from passerelle.flash import _verdict, diff, image_commands, parse_chip, run_flash
from passerelle.sim.linky import LinkySim
from passerelle.tic_server import TicServer


def _config(tmp_path, broker_port=1, **meter):
    m = {"id": "linky", "uart": 1, "period_s": 10}
    m.update(meter)
    cfg = {"device_id": "vb1", "name": "Virtual", "mqtt": {"host": "127.0.0.1", "port": broker_port},
           "network": {"type": "none"}, "meters": [m]}
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    return p


def _flash(vboard, tmp_path, config, board="emu", extra=()):
    argv = ["flash", "--port", str(vboard.port), "--board", board, "--config", str(config),
            "--build-dir", str(tmp_path / "build"), "--timeout", "20", *extra]
    return cli.main(argv)


RUNTIME_STATE = ("nvs.json", "data/")   # what the running gateway writes (hal.unix): not flash's


def _board_files(root):
    return sorted(f for f in (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
                  if not f.startswith(RUNTIME_STATE))


@pytest.mark.mosquitto
def test_flash_a_fresh_board_then_nothing_changed(vboard, tmp_path, mosquitto, capsys):
    got, ready = {}, threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flash-test-%d" % os.getpid())
    c.on_connect = lambda c_, u, f, rc, p=None: (c_.subscribe("passerelle/vb1/#"), ready.set())
    c.on_message = lambda c_, u, m: got.__setitem__(m.topic, m.payload)
    c.connect(mosquitto.host, mosquitto.port, 30)
    c.loop_start()
    tic = None
    try:
        assert ready.wait(10)
        sim = LinkySim(mode="standard", phases=1, tariff="hc", seed=1)
        tic = TicServer(sim.stream(), sim.line_rate(), 4.0, name="linky").start()
        vboard.emu = {"uart": {"1": tic.port}}     # env of the next (re)spawn: flash resets it
        cfg = _config(tmp_path, mosquitto.port)
        t0 = time.monotonic()
        assert _flash(vboard, tmp_path, cfg) == 0
        first = time.monotonic() - t0
        out = capsys.readouterr()
        assert "OK for" in out.out
        assert "gateway up" in out.err and "board emu, device vb1" in out.err
        files = _board_files(vboard.root)
        assert {"boot.py", "main.py", "config.json", "board.json", "lib/gw/app.mpy",
                "lib/protocols/tic/decoder.mpy"} <= set(files)
        assert json.loads((vboard.root / "config.json").read_text())["mqtt"]["port"] == mosquitto.port
        deadline = time.monotonic() + 15
        while got.get("passerelle/vb1/status") != b"online" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert got.get("passerelle/vb1/status") == b"online", got
        assert json.loads(got["passerelle/vb1/boot"])["config"] == "ok"
        while "passerelle/vb1/linky/state" not in got and time.monotonic() < deadline + 10:
            time.sleep(0.1)
        assert json.loads(got["passerelle/vb1/linky/state"])["EAST"] > 0

        mtimes = {f: (vboard.root / f).stat().st_mtime_ns for f in files}
        assert _flash(vboard, tmp_path, cfg) == 0
        out = capsys.readouterr()
        assert "flash: 0 files to copy (0 bytes), %d unchanged, 0 to remove" % len(files) in out.err
        assert {f: (vboard.root / f).stat().st_mtime_ns for f in files} == mtimes
        assert "gateway up" in out.err
        print("first flash %.1fs" % first)
    finally:
        if tic is not None:
            tic.stop()
        c.loop_stop()
        c.disconnect()


def test_a_changed_config_copies_only_the_config(vboard, tmp_path, capsys):
    rc = _flash(vboard, tmp_path, _config(tmp_path))
    out = capsys.readouterr()
    assert rc == 0, (out, bytes(vboard.output[-3000:]))
    rc = _flash(vboard, tmp_path, _config(tmp_path, period_s=20))
    out = capsys.readouterr()
    assert rc == 0 and "flash: 1 files to copy" in out.err, (out, bytes(vboard.output[-3000:]))


def test_broken_config_is_refused_before_anything_is_written(vboard, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"device_id": "Bad Id", "mqtt": {"host": "127.0.0.1"},
                               "network": {"type": "none"}, "meterz": []}))
    n_out = len(vboard.output)
    assert _flash(vboard, tmp_path, bad) == 1
    out = capsys.readouterr()
    assert "device_id" in out.out and 'meterz: unknown key (did you mean "meters"?)' in out.out
    assert "nothing was written" in out.err
    assert _board_files(vboard.root) == []
    assert len(vboard.output) == n_out               # the board was not even contacted


def test_bad_wiring_is_refused_before_anything_is_written(vboard, tmp_path, capsys):
    cfg = _config(tmp_path, rx_pin=7)               # GPIO7 is a flash pin of the DevKitC
    assert _flash(vboard, tmp_path, cfg, board="esp32-devkitc") == 1
    assert "flash chip" in capsys.readouterr().out
    assert _board_files(vboard.root) == []


def test_a_config_the_device_refuses_is_reported(vboard, tmp_path, capsys):
    # host and device share the validator, so make the board itself unreadable to the app
    assert _flash(vboard, tmp_path, _config(tmp_path)) == 0
    (vboard.root / "config.json").write_text("{not json")
    capsys.readouterr()
    assert _flash(vboard, tmp_path, _config(tmp_path)) == 0          # rewritten: hash differs
    assert "1 files to copy" in capsys.readouterr().err
    (vboard.root / "lib" / "gw" / "app.mpy").write_bytes(b"garbage")
    (vboard.root / "secrets.json").write_text("[1]")                   # kept: no --secrets
    assert _flash(vboard, tmp_path, _config(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "1 files to copy" in err and "refused its config" in err and "secrets" in err


def test_dry_run_prints_the_plan_and_touches_nothing(vboard, tmp_path, capsys):
    n_out = len(vboard.output)
    assert _flash(vboard, tmp_path, _config(tmp_path), extra=["--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "dry run" in err and "/lib/gw/app.mpy" in err and "machine.reset()" in err
    assert _board_files(vboard.root) == [] and len(vboard.output) == n_out


def test_image_is_for_real_boards_only(vboard, tmp_path, capsys):
    img = tmp_path / "fw.bin"
    img.write_bytes(b"\xe9" + bytes(100))
    assert _flash(vboard, tmp_path, _config(tmp_path), extra=["--image", str(img)]) == 2
    assert "emulated" in capsys.readouterr().err


@pytest.mark.parametrize("board,chip,offset", [
    ("esp32-devkitc", "esp32", "0x1000"), ("olimex-esp32-poe", "esp32", "0x1000"),
    ("wt32-eth01", "esp32", "0x1000"), ("denky-d4", "esp32", "0x1000"),
    ("esp32-c3-devkitm-1", "esp32c3", "0x0"), ("esp32-s3-devkitc-1", "esp32s3", "0x0")])
def test_esptool_commands(board, chip, offset):
    cmds = image_commands("/dev/ttyUSB0", load_board(board), "/x/fw.bin", 460800, ["esptool"])
    assert [argv for _, argv in cmds] == [
        ["esptool", "--chip", chip, "--port", "/dev/ttyUSB0", "erase-flash"],
        ["esptool", "--chip", chip, "--port", "/dev/ttyUSB0", "--baud", "460800", "write-flash",
         offset, "/x/fw.bin"]]


def test_dry_run_with_image_shows_esptool_steps(tmp_path, capsys):
    img = tmp_path / "fw.bin"
    img.write_bytes(b"\xe9")
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"device_id": "g", "mqtt": {"host": "10.0.0.2"},
                               "network": {"type": "wifi", "ssid": "home"}, "meters": [{"id": "linky"}]}))
    rc, _ = run_flash("/dev/ttyUSB9", "esp32-s3-devkitc-1", str(cfg), image=str(img), dry_run=True,
                      build_dir=str(tmp_path / "b"), log=print)
    assert rc == 0
    out = capsys.readouterr().out
    assert "chip-id" in out and "erase-flash" in out and "write-flash 0x0 " in out


def test_parse_chip():
    assert parse_chip("Chip is ESP32-D0WD-V3 (revision v3.1)") == "esp32"
    assert parse_chip("Detecting chip type... ESP32-S3\nChip type:          ESP32-S3 (QFN56)") == "esp32s3"
    assert parse_chip("Chip type:          ESP32-C3 (QFN32) (revision v0.4)") == "esp32c3"
    assert parse_chip("A fatal error occurred: Failed to connect") is None


def test_verdicts(capsys):
    ok = {"config": "ok", "version": "0.1.0", "board": "emu", "device_id": "a", "free_heap": 1,
          "reset_cause": "soft"}
    assert _verdict(ok, ["x"], 5, 1.0, print) == 0
    assert _verdict({"config": "error", "errors": ["mqtt.host: missing"]}, [], 5, 1, print) == 1
    assert _verdict(None, ["Traceback (most recent call last):", "ImportError: no module named 'gw'"],
                    5, 1, print) == 1
    assert _verdict(None, [], 5, 1, print) == 1
    assert _verdict(ok, ["PASSERELLE CRASH MemoryError()"], 5, 1, print) == 1
    out = capsys.readouterr().out
    assert "mqtt.host: missing" in out and "ImportError" in out and "printed nothing" in out
    assert "crashed" in out


def test_diff_removes_only_stale_files_of_our_packages():
    files = {"/lib/gw/app.mpy": b"a", "/main.py": b"m"}
    board = {"/lib/gw/old.mpy": "x", "/lib/umqtt/simple.mpy": "y", "/main.py": "z"}
    to_write, unchanged, to_remove = diff(files, board)
    assert to_write == ["/lib/gw/app.mpy", "/main.py"] and to_remove == ["/lib/gw/old.mpy"]


def _fake_esptool(tmp_path, chip_line):
    log = tmp_path / "esptool.log"
    exe = tmp_path / "esptool"
    exe.write_text("#!/bin/sh\necho \"$@\" >> %s\necho '%s'\n" % (log, chip_line))
    exe.chmod(0o755)
    return exe, log


def test_image_flow_with_a_fake_esptool(tmp_path, monkeypatch):
    from passerelle import flash
    exe, log = _fake_esptool(tmp_path, "Chip type:          ESP32-C3 (QFN32) (revision v0.4)")
    monkeypatch.setattr(flash, "esptool_argv", lambda: [str(exe)])
    monkeypatch.setattr(flash.time, "sleep", lambda s: None)
    img = tmp_path / "fw.bin"
    img.write_bytes(b"\xe9")
    flash.flash_image("/dev/ttyACM0", load_board("esp32-c3-devkitm-1"), str(img), 460800, log=print)
    assert log.read_text().splitlines() == [
        "--port /dev/ttyACM0 chip-id",
        "--chip esp32c3 --port /dev/ttyACM0 erase-flash",
        "--chip esp32c3 --port /dev/ttyACM0 --baud 460800 write-flash 0x0 %s" % img]
    # the wrong board is refused before anything is erased
    log.unlink()
    with pytest.raises(flash.FlashError, match="is an esp32c3, but --board esp32-devkitc is an esp32"):
        flash.flash_image("/dev/ttyACM0", load_board("esp32-devkitc"), str(img), 460800, log=print)
    assert log.read_text().splitlines() == ["--port /dev/ttyACM0 chip-id"]


def test_missing_esptool_is_explained(tmp_path, monkeypatch, capsys):
    from passerelle import flash
    monkeypatch.setattr(flash, "esptool_argv", lambda: None)
    img = tmp_path / "fw.bin"
    img.write_bytes(b"\xe9")
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"device_id": "g", "mqtt": {"host": "10.0.0.2"},
                               "network": {"type": "wifi", "ssid": "home"}, "meters": [{"id": "linky"}]}))
    rc, _ = run_flash(str(tmp_path / "nope"), "esp32-devkitc", str(cfg), image=str(img),
                      build_dir=str(tmp_path / "b"), log=print)
    assert rc == 2
    assert "esptool is not installed: `pip install esptool==5.6.0`" in capsys.readouterr().out
