"""gw.config: every error kind, on CPython and under MicroPython with identical results."""

import json
from pathlib import Path

import pytest

from gw import config

ROOT = Path(__file__).resolve().parents[2]
DEVKITC = json.loads((ROOT / "boards/esp32-devkitc/board.json").read_text())
EMU = json.loads((ROOT / "boards/emu/board.json").read_text())


def base(**over):
    cfg = {"device_id": "gw1", "mqtt": {"host": "broker.lan"}, "network": {"type": "none"}}
    cfg.update(over)
    return cfg


def meter(**over):
    m = {"id": "linky"}
    m.update(over)
    return m


ROOT_KEYS = ("version, device_id, name, log_level, stats_period_s, mqtt, network, watchdog, outbox, "
             "meters, relays, heaters, counters, sensors")

# (case id, config, secrets, board, expected errors in order)
CASES = [
    ("minimal", base(), None, None, []),
    ("emu-default", json.loads((ROOT / "boards/emu/config.json").read_text()), {}, EMU, []),
    ("full", base(name="Maison", log_level="debug", version=1,
                  mqtt={"host": "10.0.0.2", "port": 8883, "base": "home", "keepalive": 60,
                        "client_id": "x", "discovery": False, "discovery_prefix": "ha"},
                  network={"type": "wifi", "ssid": "MyNet", "hostname": "gw", "timeout_s": 20},
                  watchdog={"timeout_s": 0, "offline_reset_s": 0},
                  meters=[meter(mode="standard", uart=2, rx_pin=35, invert=True, period_s=5,
                                min_interval_s=0), meter(id="linky-2", mode="historic")]),
     {"wifi_password": "pw", "mqtt_username": "u", "mqtt_password": "p"}, DEVKITC, []),
    ("enum", base(meters=[meter(mode="histo")]), None, None,
     ['meters[0].mode: expected one of "auto", "historic", "standard", got "histo"']),
    ("int-type", base(mqtt={"host": "h", "port": "1883"}), None, None,
     ['mqtt.port: expected an integer, got "1883"']),
    ("int-float", base(mqtt={"host": "h", "keepalive": 30.5}), None, None,
     ["mqtt.keepalive: expected an integer, got number"]),
    ("int-range", base(mqtt={"host": "h", "port": 70000}), None, None,
     ["mqtt.port: expected an integer in 1..65535, got 70000"]),
    ("int-min", base(meters=[meter(period_s=2)]), None, None,
     ["meters[0].period_s: expected an integer >= 5, got 2"]),
    ("int-bool", base(meters=[meter(uart=True)]), None, None,
     ["meters[0].uart: expected an integer, got true"]),
    ("version", base(version=2), None, None, ["version: expected 1, got 2"]),
    ("bool", base(meters=[meter(invert=1)]), None, None,
     ["meters[0].invert: expected true or false, got 1"]),
    ("pin", base(meters=[meter(rx_pin=99)]), None, None,
     ["meters[0].rx_pin: expected a GPIO number in 0..48 or null, got 99"]),
    ("id-chars", base(device_id="My GW"), None, None,
     ['device_id: expected 1-32 characters from a-z, 0-9, "_" and "-", got "My GW"']),
    ("id-empty", base(meters=[meter(id="")]), None, None,
     ['meters[0].id: expected 1-16 characters from a-z, 0-9, "_" and "-", got ""']),
    ("str-type", base(name=12), None, None, ["name: expected a string, got 12"]),
    ("str-long", base(name="x" * 65), None, None,
     ["name: expected a string of at most 64 characters, got 65"]),
    ("host", base(mqtt={"host": "bad host"}), None, None,
     ['mqtt.host: expected a host name or IP address, got "bad host"']),
    ("topic", base(mqtt={"host": "h", "base": "a/#"}), None, None,
     ['mqtt.base: expected an MQTT topic level without "+", "#", "$", spaces or '
      'leading/trailing "/", got "a/#"']),
    ("same-prefix", base(mqtt={"host": "h", "base": "homeassistant"}), None, None,
     ['mqtt.base: expected a topic different from mqtt.discovery_prefix, got "homeassistant"']),
    ("missing", {"meters": [{}]}, None, None,
     ["device_id: missing, expected an identifier [a-z0-9_-]{1,32}",
      "mqtt: missing, expected an object",
      "meters[0].id: missing, expected an identifier [a-z0-9_-]{1,16}",
      'network.ssid: missing, expected a string (required when network.type is "wifi")']),
    ("missing-host", base(mqtt={}), None, None,
     ["mqtt.host: missing, expected a host name or IP address"]),
    ("not-object", [], None, None,
     ["config: expected an object, got list",
      "device_id: missing, expected an identifier [a-z0-9_-]{1,32}",
      "mqtt: missing, expected an object",
      'network.ssid: missing, expected a string (required when network.type is "wifi")']),
    ("section-type", base(network="wifi"), None, None,
     ["network: expected an object, got string",
      'network.ssid: missing, expected a string (required when network.type is "wifi")']),
    ("list-type", base(meters={"id": "x"}), None, None, ["meters: expected a list, got object"]),
    ("too-many", base(meters=[meter(id="m%d" % i) for i in range(5)]), None, None,
     ["meters: expected at most 4 items, got 5"]),
    ("duplicate", base(meters=[meter(), meter()]), None, None,
     ['meters[1].id: duplicate id "linky"']),
    ("unknown-suggest", base(mqtt={"host": "h", "hots": 1}, meters=[meter(priod_s=10)]),
     None, None,
     ['mqtt.hots: unknown key (did you mean "host"?)',
      'meters[0].priod_s: unknown key (did you mean "period_s"?)']),
    ("unknown-case", base(Device_Name="x", zzz=1), None, None,
     ["Device_Name: unknown key (expected one of %s)" % ROOT_KEYS,
      "zzz: unknown key (expected one of %s)" % ROOT_KEYS]),
    ("unknown-sorted", base(zeta=1, alpha=2, Mqtt=3), None, None,
     ['Mqtt: unknown key (did you mean "mqtt"?)',
      "alpha: unknown key (expected one of %s)" % ROOT_KEYS,
      "zeta: unknown key (expected one of %s)" % ROOT_KEYS]),
    ("wifi-ssid", base(network={"type": "wifi"}), None, None,
     ['network.ssid: missing, expected a string (required when network.type is "wifi")']),
    ("secrets", base(), {"wifi_pasword": "x", "mqtt_password": 5}, None,
     ['secrets.mqtt_password: expected a string, got 5',
      'secrets.wifi_pasword: unknown key (did you mean "wifi_password"?)']),
    ("secrets-user", base(), {"mqtt_password": "p"}, None,
     ["secrets.mqtt_password: set, expected secrets.mqtt_username to be set too"]),
    ("secrets-type", base(), [], None, ["secrets: expected an object, got list"]),
    ("board-flash-pin", base(meters=[meter(rx_pin=9, uart=3)]), None, DEVKITC,
     ["meters[0].uart: expected one of 1, 2 on board esp32-devkitc, got 3",
      "meters[0].rx_pin: GPIO 9 is wired to the flash chip on board esp32-devkitc"]),
    ("board-ethernet", base(network={"type": "ethernet"}), None, DEVKITC,
     ['network.type: "ethernet" is not available on board esp32-devkitc']),
]


@pytest.mark.parametrize("name,cfg,secrets,board,expected", CASES, ids=[c[0] for c in CASES])
def test_validate_cpython(name, cfg, secrets, board, expected):
    out, errors = config.validate(cfg, secrets, board)
    assert errors == expected
    # the normalized config is always complete, errors or not
    assert set(out) == {"version", "device_id", "name", "log_level", "stats_period_s", "mqtt",
                        "network", "watchdog", "outbox", "meters", "relays", "heaters", "counters", "sensors"}


def test_defaults_filled():
    out, errors = config.validate(base(meters=[meter()]))
    assert errors == []
    assert out["name"] == "gw1" and out["mqtt"]["client_id"] == "gw1"
    assert out["mqtt"]["port"] == 1883 and out["mqtt"]["base"] == "passerelle"
    assert out["mqtt"]["discovery_prefix"] == "homeassistant" and out["mqtt"]["keepalive"] == 30
    assert out["meters"][0] == {"id": "linky", "type": "tic", "mode": "auto", "uart": 1,
                                "rx_pin": None, "invert": False, "period_s": 60,
                                "min_interval_s": 5}


def test_defaults_is_immutable_and_matches_validate():
    d = config.defaults()
    d["mqtt"]["port"] = 1  # a fresh copy: DEFAULTS itself is tuples
    assert config.defaults()["mqtt"]["port"] == 1883
    out, _ = config.validate(base())
    for section in ("mqtt", "watchdog"):
        for k, v in config.defaults()[section].items():
            if v != "":
                assert out[section][k] == v


def test_validate_does_not_mutate_input():
    cfg = base(meters=[meter()])
    snapshot = json.dumps(cfg, sort_keys=True)
    config.validate(cfg, {"mqtt_username": "u"})
    assert json.dumps(cfg, sort_keys=True) == snapshot


def test_load_never_raises(tmp_path):
    good = tmp_path / "config.json"
    good.write_text(json.dumps(base()))
    (tmp_path / "bad.json").write_text("{not json")
    cfg, secrets, errors = config.load(str(good), str(tmp_path / "nosecrets.json"))
    assert cfg == base() and secrets == {} and errors == []
    cfg, secrets, errors = config.load(str(tmp_path / "missing.json"), str(tmp_path / "bad.json"))
    assert cfg is None and secrets == {}
    assert errors == ["%s: file not found" % (tmp_path / "missing.json"),
                      "%s: invalid JSON" % (tmp_path / "bad.json")]
    assert config.read_json(str(tmp_path))[1].startswith(str(tmp_path) + ": cannot read")


MP_SCRIPT = """
import json, sys
from gw import config
cases = json.loads(open(sys.argv[1]).read())
out = []
for name, cfg, secrets, board, expected in cases:
    norm, errors = config.validate(cfg, secrets, board)
    out.append([name, errors, norm])
print(json.dumps(out))
"""


def test_validate_micropython_identical(tmp_path, run_micropython):
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(CASES))
    script = tmp_path / "run.py"
    script.write_text(MP_SCRIPT)
    r = run_micropython(script, args=[str(cases)], timeout=60)
    assert r.returncode == 0, r.stderr + r.stdout
    got = json.loads(r.stdout)
    assert len(got) == len(CASES)
    for (name, cfg, secrets, board, expected), (mp_name, mp_errors, mp_norm) in zip(CASES, got):
        cp_norm, cp_errors = config.validate(cfg, secrets, board)
        assert mp_name == name
        assert mp_errors == cp_errors == expected, name
        assert mp_norm == cp_norm, name


def test_load_micropython(tmp_path, run_micropython):
    (tmp_path / "config.json").write_text("{bad")
    r = run_micropython("from gw import config; print(config.load('config.json', 'x.json'))",
                        cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(None, {}, ['config.json: invalid JSON'])"
