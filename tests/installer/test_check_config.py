"""check-config / boards: the firmware validator + wiring checks, for every board."""

import json

import pytest

from passerelle import cli, project_root
from passerelle.boards import board_ids, flash_offset, load_board
from passerelle.wiring import check, pin_uses

ROOT = project_root()
REAL = [b for b in board_ids() if b != "emu"]


def cfg_for(board, **meter):
    m = {"id": "linky", "uart": 1}
    m.update(meter)
    net = {"type": "ethernet"} if "ethernet" in board.get("capabilities", []) else {"type": "wifi", "ssid": "home"}
    return {"device_id": "gw1", "mqtt": {"host": "192.168.1.2"}, "network": net, "meters": [m]}


def run(cfg, board):
    r = check(ROOT, cfg, None, load_board(board))
    return r.errors, r.warnings


def test_at_least_five_real_boards_and_emu():
    assert len(REAL) >= 5 and "emu" in board_ids()
    for b in board_ids():
        d = load_board(b)
        assert d["id"] == b
        assert (ROOT / "boards" / b / "board.md").is_file() or b == "emu"
        for uid, u in d["uarts"].items():
            if "rx" in u:
                assert u["rx"] in d["pins"]["gpio"] and u["rx"] not in d["pins"]["flash"], (b, uid)
        if b != "emu":
            assert flash_offset(d) == (0x1000 if d["mcu"] in ("esp32", "esp32s2") else 0)


@pytest.mark.parametrize("board", board_ids())
def test_default_config_is_accepted(board):
    errors, warnings = run(cfg_for(load_board(board)), board)
    assert errors == [] and warnings == []


@pytest.mark.parametrize("board", REAL)
def test_flash_pin_is_an_error(board):
    b = load_board(board)
    pin = b["pins"]["flash"][0]
    errors, _ = run(cfg_for(b, rx_pin=pin), board)
    assert any("rx_pin" in e and "flash" in e for e in errors), errors
    assert len([e for e in errors if "flash" in e]) == 1          # not repeated by the host checks


@pytest.mark.parametrize("board", REAL)
def test_input_only_pin_as_output_is_an_error(board):
    b = load_board(board)
    cfg = cfg_for(b)
    if b["pins"]["input_only"]:
        gpio = b["pins"]["input_only"][0]
        cfg["relays"] = [{"id": "boiler", "pin": gpio}]
        errors, _ = run(cfg, board)
        msg = [e for e in errors if "input-only" in e]
        assert msg and msg[0].startswith("relays[0].pin: relay 'boiler' uses GPIO%d as an output, "
                                         "which is input-only on %s; free output pins: " % (gpio, b["product"]))
        assert len(msg) == 1, errors                 # the device's own check is not repeated
        # an input-only pin is fine for a TIC RX
        errors, _ = run(cfg_for(b, rx_pin=gpio), board)
        assert errors == []
    else:
        cfg["relays"] = [{"id": "boiler", "pin": b["pins"]["gpio"][-1]}]
        assert not any("input-only" in e for e in run(cfg, board)[0])


@pytest.mark.parametrize("board", REAL)
def test_strapping_pin_is_a_warning(board):
    b = load_board(board)
    pin = next(p for p in b["pins"]["strapping"] if p in b["pins"]["gpio"] and p not in b["pins"].get("console", []))
    errors, warnings = run(cfg_for(b, rx_pin=pin), board)
    assert errors == [] and any("strapping" in w and "GPIO%d" % pin in w for w in warnings), warnings


@pytest.mark.parametrize("board", REAL)
def test_pin_conflict_and_uart_reuse(board):
    b = load_board(board)
    cfg = cfg_for(b)
    rx = b["uarts"]["1"]["rx"]
    cfg["relays"] = [{"id": "pump", "pin": rx}]
    errors, _ = run(cfg, board)
    assert any("GPIO%d is used 2 times: " % rx in e and "meter 'linky' (UART1 RX, board default)" in e
               and "relay 'pump' (relays[0].pin)" in e for e in errors), errors
    cfg = cfg_for(b)
    cfg["meters"].append({"id": "second", "uart": 1, "rx_pin": None})
    errors, _ = run(cfg, board)
    assert any("UART1 is used by meter 'linky' and meter 'second'" in e for e in errors), errors


@pytest.mark.parametrize("board", REAL)
def test_unavailable_uart_and_pin(board):
    b = load_board(board)
    errors, _ = run(cfg_for(b, uart=3), board)
    assert any("uart" in e and "expected one of" in e for e in errors), errors
    missing = next(p for p in range(40) if p not in b["pins"]["gpio"] and p not in b["pins"]["flash"])
    errors, _ = run(cfg_for(b, rx_pin=missing), board)
    assert any("GPIO%d, which is not available on" % missing in e for e in errors), errors


@pytest.mark.parametrize("board", REAL)
def test_network_capabilities(board):
    b = load_board(board)
    cfg = cfg_for(b)
    if "ethernet" in b["capabilities"]:
        eth = b["ethernet"]
        # Ethernet takes the PHY pins: a meter on MDIO conflicts
        cfg["meters"][0]["rx_pin"] = eth["mdio"]
        errors, _ = run(cfg, board)
        assert any("Ethernet (PHY mdio)" in e for e in errors), errors
    else:
        cfg["network"] = {"type": "ethernet"}
        errors, _ = run(cfg, board)
        assert any('network.type: "ethernet" is not available' in e for e in errors), errors


def test_c3_has_a_single_tic_uart():
    b = load_board("esp32-c3-devkitm-1")
    cfg = cfg_for(b)
    cfg["meters"].append({"id": "two", "uart": 2})
    errors, _ = run(cfg, "esp32-c3-devkitm-1")
    assert any("meters[1].uart" in e for e in errors)


def test_denky_d4_tic_defaults():
    b = load_board("denky-d4")
    assert b["tic"] == {"uart": 1, "rx": 8, "invert": False, "note": b["tic"]["note"]}
    assert b["uarts"]["1"]["rx"] == 8


def test_pin_uses_are_generic():
    uses = pin_uses({"meters": [{"id": "a", "rx_pin": 4}], "relays": [{"id": "r", "pin": 5}],
                     "display": {"pins": {"sda_pin": 21, "scl": 22}, "reset_pin": 16},
                     "buttons": [{"name": "b", "pin": 0}], "misc": {"data_pin": None}})
    got = {(u.gpio, u.owner, u.direction) for u in uses}
    assert got == {(4, "meter 'a'", "input"), (5, "relay 'r'", "output"), (0, "button 'b'", "input"),
                   (21, "display", "input/output"), (22, "display", "input/output"),
                   (16, "display", "input/output")}


def test_cli_check_config_and_boards(tmp_path, capsys):
    b = load_board("esp32-devkitc")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(cfg_for(b)))
    assert cli.main(["check-config", str(good), "--board", "esp32-devkitc"]) == 0
    assert "OK for ESP32-DevKitC" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    c = cfg_for(b)
    c["relays"] = [{"id": "boiler", "pin": 34}]
    bad.write_text(json.dumps(c))
    assert cli.main(["check-config", str(bad), "--board", "esp32-devkitc"]) == 1
    out = capsys.readouterr().out
    assert "error: relays[0].pin: relay 'boiler' uses GPIO34 as an output, which is input-only on ESP32-DevKitC; free output pins: 4, 13, 14" in out
    assert "refused" in out
    sec = tmp_path / "s.json"
    sec.write_text(json.dumps({"mqtt_password": "x"}))
    assert cli.main(["check-config", str(good), "--board", "esp32-devkitc", "--secrets", str(sec)]) == 1
    assert "mqtt_username" in capsys.readouterr().out
    assert cli.main(["check-config", str(good), "--board", "nope"]) == 2
    assert "known boards:" in capsys.readouterr().err
    (tmp_path / "x.json").write_text("{")
    assert cli.main(["check-config", str(tmp_path / "x.json"), "--board", "emu"]) == 2
    assert cli.main(["boards"]) == 0
    out = capsys.readouterr().out
    for bid in board_ids():
        assert bid in out
    assert cli.main(["boards", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == len(board_ids())


@pytest.mark.parametrize("board", board_ids())
def test_the_device_gets_what_its_firmware_reads(board):
    """flash / emulate write boards.device_board(): the keys gw.config.BOARD_KEYS keeps at
    boot, no notes (the device parses board.json at every boot, into a 64 KB heap), and the
    firmware validates a config with it exactly as with the whole board.json."""
    import importlib.util

    from passerelle.boards import DEVICE_KEYS, device_board
    spec = importlib.util.spec_from_file_location("_gw_config_keys", ROOT / "firmware/gw/config.py")
    fw_config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fw_config)
    assert DEVICE_KEYS == fw_config.BOARD_KEYS
    full = load_board(board)
    dev = device_board(full)
    assert set(dev) == {k for k in DEVICE_KEYS if k in full} and "pins" in dev
    text = json.dumps(dev)
    assert '"note' not in text and "_note" not in text and len(text) < 1024, text
    for cfg in (cfg_for(full), cfg_for(full, rx_pin=(full["pins"]["flash"] or [None])[0]),
                cfg_for(full, uart=9)):
        assert fw_config.validate(cfg, None, dev)[1] == fw_config.validate(cfg, None, full)[1]
