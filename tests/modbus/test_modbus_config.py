"""Config of Modbus meters: gw.config (+ gw.config_modbus) on CPython and MicroPython."""

import json

from gw import config

BASE = {"device_id": "mb", "mqtt": {"host": "127.0.0.1"}, "network": {"type": "none"}}


def cfg(*meters):
    c = dict(BASE)
    c["meters"] = list(meters)
    return c


def test_defaults_and_normalization():
    out, errs = config.validate(cfg({"id": "pac", "type": "modbus", "model": "sdm630",
                                     "address": 1, "de_pin": 4}))
    assert errs == []
    m = out["meters"][0]
    assert m == {"id": "pac", "type": "modbus", "model": "sdm630", "uart": 2, "address": 1,
                 "baudrate": 9600, "parity": "none", "rx_pin": None, "tx_pin": None,
                 "de_pin": 4, "timeout_ms": 300, "retries": 1, "period_s": 10,
                 "min_interval_s": 0}
    # a TIC meter keeps its own keys and defaults
    out, errs = config.validate(cfg({"id": "linky"}))
    assert errs == [] and out["meters"][0]["mode"] == "auto" and "address" not in out["meters"][0]


BAD = [
    ({"id": "a", "type": "modbus", "model": "sdm999", "address": 1},
     ['meters[0].model: expected one of "sdm120", "sdm630", "sdm72d", "em111", got "sdm999"']),
    ({"id": "a", "type": "modbus", "model": "sdm120"},
     ["meters[0].address: missing, expected an integer in 1..247"]),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 0, "parity": "mark"},
     ["meters[0].address: expected an integer in 1..247, got 0",
      'meters[0].parity: expected one of "none", "even", "odd", got "mark"']),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 1, "baudrate": 9000},
     ["meters[0].baudrate: expected one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, "
      "115200, got 9000"]),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 1, "invert": True},
     ['meters[0].invert: unknown key (expected one of id, type, model, uart, address, baudrate, '
      'parity, rx_pin, tx_pin, de_pin, timeout_ms, retries, period_s, min_interval_s)']),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 1, "adress": 2},
     ['meters[0].adress: unknown key (did you mean "address"?)']),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 1, "de_pin": 5, "tx_pin": 5},
     ["meters[0].de_pin: GPIO 5 is also the UART's rx_pin or tx_pin"]),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 1, "timeout_ms": 5},
     ["meters[0].timeout_ms: expected an integer in 20..5000, got 5"]),
]


def test_bad_entries_name_the_key():
    for meter, want in BAD:
        assert config.validate(cfg(meter))[1] == want, meter


def test_one_bus_per_uart():
    a = {"id": "pac", "type": "modbus", "model": "sdm630", "address": 1, "de_pin": 4}
    b = {"id": "pv", "type": "modbus", "model": "sdm120", "address": 1, "baudrate": 2400,
         "de_pin": 4}
    t = {"id": "linky", "uart": 2}
    errs = config.validate(cfg(a, b, t))[1]
    assert errs == [
        "meters[2].uart: UART 2 is the RS-485 bus of meters[0], a tic meter cannot share it",
        "meters[1].baudrate: expected 9600 like meters[0] (same RS-485 bus, UART 2), got 2400",
        "meters[1].address: 1 is already meters[0]'s on UART 2",
    ]
    b.update(baudrate=9600, address=2)
    assert config.validate(cfg(a, b, dict(t, uart=1)))[1] == []


def test_board_pins(project_root):
    board = json.loads((project_root / "boards" / "esp32-devkitc" / "board.json").read_text())
    flash = board["pins"]["flash"][0]
    m = {"id": "pac", "type": "modbus", "model": "sdm630", "address": 1, "de_pin": flash,
         "rx_pin": 16, "tx_pin": 17}
    errs = config.validate(cfg(m), board=board)[1]
    assert "meters[0].de_pin: GPIO %d is wired to the flash chip on board esp32-devkitc" % flash \
        in errs


MP = """
import json, sys
from gw import config
cases = json.loads(sys.stdin.read())
print(json.dumps([config.validate(c)[1] for c in cases]))
"""


def test_same_messages_on_micropython(run_micropython):
    cases = [cfg(m) for m, _ in BAD] + [cfg(
        {"id": "pac", "type": "modbus", "model": "sdm630", "address": 1},
        {"id": "pv", "type": "modbus", "model": "sdm120", "address": 1, "parity": "even"},
        {"id": "linky", "uart": 2})]
    p = run_micropython(MP, input=json.dumps(cases))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [config.validate(c)[1] for c in cases]
