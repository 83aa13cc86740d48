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
                 "min_interval_s": 0, "echo": False, "setup": {}}
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
      'parity, rx_pin, tx_pin, de_pin, timeout_ms, retries, period_s, min_interval_s, echo, '
      'setup)']),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 1, "adress": 2},
     ['meters[0].adress: unknown key (did you mean "address"?)']),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 1, "de_pin": 5, "tx_pin": 5},
     ["meters[0].de_pin: GPIO 5 is also the UART's rx_pin or tx_pin"]),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 1, "timeout_ms": 5},
     ["meters[0].timeout_ms: expected an integer in 20..5000, got 5"]),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 1, "echo": "yes"},
     ['meters[0].echo: expected true or false, got "yes"']),
    # set-up writes: the model's documented holding registers and values only
    ({"id": "a", "type": "modbus", "model": "sdm630", "address": 1,
      "setup": {"demand_period": 7, "measurement_mode": 1, "demand_perod": 15}},
     ['meters[0].setup.demand_perod: unknown key (did you mean "demand_period"?)',
      "meters[0].setup.demand_period: expected one of 0, 5, 8, 10, 15, 20, 30, 60, got 7",
      "meters[0].setup.measurement_mode: not a set-up register of sdm630 (demand_period, "
      "pulse1_width, pulse1_energy)"]),
    ({"id": "a", "type": "modbus", "model": "em111", "address": 1,
      "setup": {"pulse1_width": 100}},
     ["meters[0].setup.pulse1_width: not a set-up register of em111 (it has none)"]),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 1,
      "setup": {"pulse1_width": 60.0, "pulse1_rate": None}},
     ["meters[0].setup.pulse1_width: expected an integer, got number",
      "meters[0].setup.pulse1_rate: expected an integer, got null"]),
    ({"id": "a", "type": "modbus", "model": "sdm120", "address": 1, "setup": [1]},
     ["meters[0].setup: expected an object, got list"]),
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
    b.update(baudrate=9600, address=2, echo=True)
    assert config.validate(cfg(a, b))[1] == [
        "meters[1].echo: expected false like meters[0] (same RS-485 bus, UART 2), got true"]
    b.update(echo=False)
    assert config.validate(cfg(a, b, dict(t, uart=1)))[1] == []


def test_setup_keys_are_the_maps_own():
    """config_modbus.SETUP_KEYS is the union of the maps' set-up keys; the normalized
    "setup" keeps only the keys set, and every documented value validates."""
    from gw import config_modbus
    from protocols.modbus import maps

    keys = set()
    for model in maps.MODELS:
        for key, _reg, t, allowed in maps.setup(model):
            keys.add(key)
            assert t in (0, 1)  # f32 or u16
            for v in allowed:
                m = {"id": "a", "type": "modbus", "model": model, "address": 1,
                     "setup": {key: v}}
                out, errs = config.validate(cfg(m))
                assert errs == [] and out["meters"][0]["setup"] == {key: v}, (model, key, v)
    assert keys == set(config_modbus.SETUP_KEYS)


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
