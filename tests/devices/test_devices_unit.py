"""Portable logic of the device drivers, on CPython and on the MicroPython unix port:
Dallas CRC-8 / ROM ids / DS18B20 scratchpads, the fil pilote pattern generator, relay
command parsing, S0 debouncing and its flash-write policy, device config checks."""

import json

import pytest

from gw import config
from gw.actuators import FP_CYCLE_MS, FP_ORDERS, fp_levels, parse_relay
from gw.drivers import s0 as s0mod
from protocols import onewire


# ---------------------------------------------------------------- 1-Wire
def test_crc8_reference_vectors():
    # Maxim application note 27: ROM 02 1C B8 01 00 00 00 has CRC A2
    rom = bytes.fromhex("021cb801000000a2")
    assert onewire.crc8(rom, 0, 7) == 0xA2 and onewire.crc8(rom) == 0
    # DS18B20 datasheet power-on scratchpad (85 degC), CRC 1C
    por = bytes.fromhex("5005" "4b467fff0c10" "1c")
    assert onewire.crc8(por) == 0
    assert onewire.ds18b20_decode(por) == (onewire.POWER_ON, 8500)


def test_rom_ids():
    assert onewire.rom_from_hex("021CB801000000A2") == bytes.fromhex("021cb801000000a2")
    assert onewire.rom_from_hex("021cb801000000a3") is None  # CRC
    assert onewire.rom_from_hex("021cb80100000a2") is None   # 15 digits
    assert onewire.rom_from_hex("021cb8010000zza2") is None
    assert onewire.rom_hex(bytes.fromhex("28ff4a1b011603bf")) == "28ff4a1b011603bf"


@pytest.mark.parametrize("centi", [2150, 0, -1025, -5500, 12500, 2506, 2144])
def test_ds18b20_round_trip(centi):
    status, got = onewire.ds18b20_decode(onewire.ds18b20_scratch(centi))
    assert status == onewire.OK and abs(got - centi) <= 6  # 1/16 degC steps


def test_ds18b20_rejections():
    assert onewire.ds18b20_decode(onewire.ds18b20_scratch(2150, crc_ok=False))[0] == onewire.CRC
    assert onewire.ds18b20_decode(b"\xff" * 9)[0] == onewire.MISSING
    assert onewire.ds18b20_decode(b"\x00" * 9)[0] == onewire.OK  # all zero is a valid 0 degC
    assert onewire.ds18b20_decode(b"\x00" * 8)[0] == onewire.CRC
    hot = bytearray(onewire.ds18b20_scratch(0))
    hot[0], hot[1] = 0xD0, 0x07  # 125 degC, then 0x7F0 = 127 degC (out of range)
    hot[8] = onewire.crc8(hot, 0, 8)
    assert onewire.ds18b20_decode(bytes(hot)) == (onewire.OK, 12500)
    hot[0] = 0xF0
    hot[8] = onewire.crc8(hot, 0, 8)
    assert onewire.ds18b20_decode(bytes(hot))[0] == onewire.RANGE


# ---------------------------------------------------------------- fil pilote
def pattern(order, step_ms=500, cycles=2):
    """[(start ms, pos, neg)] of each steady segment over ``cycles`` cycles."""
    out = []
    t = 0
    i = FP_ORDERS.index(order)
    while t < cycles * FP_CYCLE_MS:
        pos, neg, left = fp_levels(i, t)
        if not out or out[-1][1:] != (pos, neg):
            out.append((t, pos, neg))
        t += step_ms if left < 0 else left
    return out


def test_fil_pilote_steady_orders():
    assert pattern("confort") == [(0, 0, 0)]
    assert pattern("eco") == [(0, 1, 1)]
    assert pattern("hors-gel") == [(0, 0, 1)]   # negative half-wave only
    assert pattern("arret") == [(0, 1, 0)]      # positive half-wave only


def test_fil_pilote_confort_minus_1_and_2_cycles():
    # full wave (the eco signal) 3 s / 7 s at the start of every 300 s cycle, then nothing
    assert pattern("confort-1") == [(0, 1, 1), (3000, 0, 0), (300000, 1, 1), (303000, 0, 0)]
    assert pattern("confort-2") == [(0, 1, 1), (7000, 0, 0), (300000, 1, 1), (307000, 0, 0)]
    assert fp_levels(4, 2999) == (1, 1, 1) and fp_levels(4, 3000) == (0, 0, 297000)
    assert fp_levels(5, 299999) == (0, 0, 1)


# ---------------------------------------------------------------- relay commands
@pytest.mark.parametrize("text,expected", [
    ("ON", (1, 0)), ("off", (0, 0)), (" Toggle\n", (2, 0)), ("PULSE 5", (1, 5000)),
    ("pulse 0.25", (1, 250)), ('{"state": "ON", "pulse_s": 1.5}', (1, 1500)),
    ('{"state": "OFF"}', (0, 0)), ('{"state": "toggle"}', (2, 0)),
    ("PULSE 0.05", None), ("PULSE 86401", None), ("PULSE", None), ("PULSE x", None),
    ("ONN", None), ("", None), ('{"state": "OFF", "pulse_s": 2}', None),
    ('{"state": "ON", "pulse_s": true}', None), ('{"state": "ON", "x": 1}', None),
    ('{"state": 1}', None), ("[1]", None), ("{", None), ("PULSE nan", None), ("PULSE inf", None),
])
def test_parse_relay(text, expected):
    assert parse_relay(text) == expected


# ---------------------------------------------------------------- S0
def diff(a, b):
    return a - b


def counter(debounce_ms=50, per_pulse=1):
    return s0mod.S0({"id": "eau", "debounce_ms": debounce_ms, "per_pulse": per_pulse}, 0, diff)


def test_s0_debounce():
    c = counter()
    for t in (1000, 1002, 1004, 1030, 1100, 1149, 1151, 5000):
        c.edge(t)
    # 1000 counted; 1002, 1004, 1030 bounces; 1100 counted; 1149 bounce; 1151 is 51 ms
    # after 1100: counted; 5000 counted
    assert (c.pulses, c.bounces) == (4, 4)


def test_s0_totals():
    c = counter(per_pulse=0.01)
    for i in range(12345):
        c.edge(i * 100)
    assert c.total() == 123.45
    c = counter(per_pulse=2)
    c.edge(0)
    assert c.total() == 2 and isinstance(c.total(), int)


class FakeNVS:
    def __init__(self):
        self.data, self.commits = {}, 0

    def get(self, k, d=None):
        return self.data.get(k, d)

    def set(self, k, v):
        self.data[k] = v

    def commit(self):
        self.commits += 1


class FakeHal:
    def __init__(self):
        self.now = 0
        self.nvs_obj = FakeNVS()
        self.irqs = {}

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b

    def nvs(self, ns):
        return self.nvs_obj

    def on_fall(self, pin, handler):
        self.irqs[pin] = handler
        return pin


class FakeGw:
    def __init__(self, hal, counters):
        self.hal = hal
        self.cfg = {"counters": counters}


def test_s0_flash_write_policy():
    """Pulses every second for 3 hours: one NVS commit per 10 minutes at most; none
    while idle; the count restored at the next boot never goes down."""
    hal = FakeHal()
    cfg = {"id": "eau", "pin": 27, "per_pulse": 1, "unit": "L", "device_class": "",
           "debounce_ms": 50, "period_s": 60, "min_interval_s": 10}
    cs = s0mod.Counters(FakeGw(hal, [cfg]))
    edge = hal.irqs[27]
    for second in range(3 * 3600):
        hal.now = second * 1000
        edge(hal.now)
        cs.maybe_save(hal.now)
    assert cs.items[0].pulses == 3 * 3600
    assert hal.nvs_obj.commits == 17  # 10800 s / 600 s, the first after 600 s
    assert hal.nvs_obj.commits <= 3 * 3600 // (s0mod.SAVE_MS // 1000)
    saved = hal.nvs_obj.data["ceau"]
    for second in range(3 * 3600, 5 * 3600):  # idle: no write at all
        hal.now = second * 1000
        cs.maybe_save(hal.now)
    assert hal.nvs_obj.commits == 18  # the pulses of the last partial period, once
    assert cs.save() is False
    cs.items[0].edge(hal.now + 1000)
    assert cs.save() is True  # clean shutdown
    again = s0mod.Counters(FakeGw(hal, [cfg]))
    assert again.items[0].pulses == 3 * 3600 + 1 >= saved


# ---------------------------------------------------------------- config
def base(**kw):
    c = {"device_id": "gw1", "mqtt": {"host": "h"}, "network": {"type": "none"}}
    c.update(kw)
    return c


DEVICE_CASES = [
    (base(relays=[{"id": "a", "pin": 4, "interlock": "a"}]),
     ['relays[0].interlock: expected the id of another relay, got "a"']),
    (base(relays=[{"id": "a", "pin": 4}], heaters=[{"id": "a", "pin_pos": 4, "pin_neg": 5}]),
     ['heaters[0].id: "a" is already the id of another device',
      "heaters[0].pin_pos: GPIO 4 is already used by relays[0].pin"]),
    (base(heaters=[{"id": "z", "pin_pos": 4}]),
     ["heaters[0].pin_neg: missing, expected a GPIO number in 0..48"]),
    (base(counters=[{"id": "c", "pin": 4, "per_pulse": 0}]),
     ["counters[0].per_pulse: expected a number > 0 and <= 1000000, got 0"]),
    (base(sensors=[{"id": "t", "pin": 4, "rom": "28ff4a1b011603be"}]),
     ['sensors[0].rom: expected a 1-Wire ROM id: 16 hex digits with a valid CRC byte, '
      'got "28ff4a1b011603be"']),
    (base(sensors=[{"id": "t", "pin": 4, "rom": "28ff4a1b011603bf"},
                   {"id": "u", "pin": 4, "rom": "28FF4A1B011603BF"}]),
     ['sensors[1].rom: duplicate ROM id "28ff4a1b011603bf"']),
    (base(relays=[{"id": "abcdefghijklmno", "pin": 4, "restore": "maybe"}]),
     ['relays[0].id: expected 1-14 characters from a-z, 0-9, "_" and "-", got "abcdefghijklmno"',
      'relays[0].restore: expected one of "off", "on", "last", got "maybe"']),
]


@pytest.mark.parametrize("cfg,expected", DEVICE_CASES)
def test_device_config_errors(cfg, expected):
    assert config.validate(cfg)[1] == expected


def test_device_config_board_checks():
    board = {"id": "b", "capabilities": [], "pins": {"gpio": [4, 5, 34], "input_only": [34],
                                                       "flash": [6]}}
    cfg = base(relays=[{"id": "r", "pin": 34}], counters=[{"id": "c", "pin": 34}],
               heaters=[{"id": "h", "pin_pos": 6, "pin_neg": 7}])
    assert config.validate(cfg, None, board)[1] == [
        "relays[0].pin: GPIO 34 is input-only on board b",
        "heaters[0].pin_pos: GPIO 6 does not exist on board b",
        "heaters[0].pin_neg: GPIO 7 does not exist on board b",
        "counters[0].pin: GPIO 34 is already used by relays[0].pin",
    ]


MP_SCRIPT = r"""
import json, sys
from gw import config
from gw.actuators import fp_levels, parse_relay
from protocols import onewire
cases = json.loads(sys.stdin.read())
out = {"config": [config.validate(c)[1] for c in cases["configs"]],
       "parse": [parse_relay(t) for t in cases["texts"]],
       "fp": [fp_levels(o, t) for o, t in cases["fp"]],
       "decode": [onewire.ds18b20_decode(bytes.fromhex(h)) for h in cases["scratch"]]}
print(json.dumps(out))
"""


def test_micropython_identical(run_micropython):
    texts = ["ON", "PULSE 0.25", '{"state": "ON", "pulse_s": 1.5}', "PULSE x", "toggle", "{",
             "PULSE nan", "PULSE inf", "PULSE 1e30", '{"state": "ON", "pulse_s": true}']
    fp = [(o, t) for o in range(6) for t in (0, 2999, 3000, 6999, 7000, 299999, 300000)]
    scratch = [onewire.ds18b20_scratch(c).hex() for c in (2150, -1025, 8500)] + ["ff" * 9]
    cases = {"configs": [c for c, _ in DEVICE_CASES], "texts": texts, "fp": fp, "scratch": scratch}
    r = run_micropython(MP_SCRIPT, input=json.dumps(cases), timeout=30)
    assert r.returncode == 0, r.stderr + r.stdout
    got = json.loads(r.stdout)
    assert got["config"] == [e for _, e in DEVICE_CASES]
    assert [tuple(x) if x else None for x in got["parse"]] == [parse_relay(t) for t in texts]
    assert [tuple(x) for x in got["fp"]] == [fp_levels(o, t) for o, t in fp]
    assert [tuple(x) for x in got["decode"]] == [onewire.ds18b20_decode(bytes.fromhex(h))
                                                 for h in scratch]
