"""gw.discovery: Home Assistant config payloads (keys, units, classes, ids)."""

import json

import pytest

from gw import VERSION, config
from gw.discovery import Discovery, object_id
from tests.firmware.standins import tic as tic_module

TIC = tic_module()
CFG = config.validate({"device_id": "gw1", "name": "Maison", "mqtt": {"host": "h"},
                       "network": {"type": "none"}, "meters": [{"id": "linky"}]})[0]


@pytest.fixture
def disc():
    return Discovery(CFG, "emu", VERSION)


def payload(disc, key):
    return json.loads(disc.payload("linky", key, TIC.labels.info(key)))


def test_common_keys(disc):
    p = payload(disc, "EAST")
    assert p["unique_id"] == "passerelle_gw1_linky_east"
    assert p["state_topic"] == "passerelle/gw1/linky/state"
    assert p["availability_topic"] == "passerelle/gw1/status"
    assert p["value_template"] == "{{ value_json.get('EAST') }}"
    assert p["device"] == {"identifiers": ["passerelle_gw1"], "name": "Maison",
                           "manufacturer": "Passerelle", "model": "TIC gateway (emu)",
                           "sw_version": VERSION}
    assert disc.topic("linky", "EAST") == "homeassistant/sensor/gw1/linky_east/config"


@pytest.mark.parametrize("label", ["EAST", "EASF01", "BASE", "HCHC", "BBRHPJB"])
def test_energy_index(disc, label):
    p = payload(disc, label)
    assert (p["device_class"], p["state_class"], p["unit_of_measurement"]) == \
        ("energy", "total_increasing", "Wh")


@pytest.mark.parametrize("label,unit,cls", [
    ("PAPP", "VA", "apparent_power"), ("SINSTS", "VA", "apparent_power"),
    ("SMAXSN-1", "VA", "apparent_power"), ("IINST", "A", "current"),
    ("IRMS1", "A", "current"), ("URMS1", "V", "voltage"), ("CCASN", "W", "power"),
])
def test_measurements(disc, label, unit, cls):
    p = payload(disc, label)
    assert p["unit_of_measurement"] == unit
    assert p["device_class"] == cls
    assert p["state_class"] == "measurement"


def test_kva_and_reactive(disc):
    p = payload(disc, "PREF")
    assert p["unit_of_measurement"] == "kVA" and "device_class" not in p
    p = payload(disc, "ERQ1")
    assert p["unit_of_measurement"] == "VArh" and p["state_class"] == "total_increasing"
    assert "device_class" not in p


@pytest.mark.parametrize("label", ["PTEC", "LTARF", "DEMAIN", "NGTF"])
def test_text_sensors(disc, label):
    p = payload(disc, label)
    for k in ("unit_of_measurement", "device_class", "state_class"):
        assert k not in p
    assert "entity_category" not in p


@pytest.mark.parametrize("label", ["ADCO", "ADSC", "STGE", "DATE", "MOTDETAT", "phases"])
def test_diagnostic(disc, label):
    assert payload(disc, label)["entity_category"] == "diagnostic"


@pytest.mark.parametrize("key,name", [("tempo_today", "linky Tempo today"),
                                      ("tempo_tomorrow", "linky Tempo tomorrow")])
def test_tempo_entities(disc, key, name):
    p = payload(disc, key)
    assert p["name"] == name
    assert p["device_class"] == "enum" and p["options"] == ["blue", "white", "red"]
    assert p["value_template"] == "{{ value_json.get('%s') }}" % key
    assert p["unique_id"] == "passerelle_gw1_linky_" + key


def test_object_ids_are_safe_and_unique():
    keys = ["SMAXSN-1", "SMAXSN1-1", "SMAXSN1", "NJOURF+1", "NJOURF", "PJOURF+1", "EAST"]
    ids = [object_id(k) for k in keys]
    assert len(set(ids)) == len(ids)
    for i in ids:
        assert all(c.islower() or c.isdigit() or c == "_" for c in i)
    assert object_id("SMAXSN-1") == "smaxsn_m1" and object_id("NJOURF+1") == "njourf_p1"


def test_custom_prefix_and_base():
    cfg = config.validate({"device_id": "gw2", "mqtt": {"host": "h", "base": "home",
                                                         "discovery_prefix": "ha"},
                           "network": {"type": "none"}})[0]
    d = Discovery(cfg, "esp32-devkitc", VERSION)
    assert d.topic("m", "PAPP") == "ha/sensor/gw2/m_papp/config"
    p = json.loads(d.payload("m", "PAPP", TIC.labels.info("PAPP")))
    assert p["state_topic"] == "home/gw2/m/state" and p["availability_topic"] == "home/gw2/status"


class _Writer:
    """What json.dump writes into (the gateway's JSON buffer, gw.app._Out)."""

    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)
        return len(s)


ALL_KEYS = list(TIC.labels.NAMES) + ["phases", "tempo_today", "tempo_tomorrow"]


def _dumped(disc, mid, key, info):
    w = _Writer()
    disc.dump(w, (mid, key, info))
    return "".join(p if isinstance(p, str) else bytes(p).decode() for p in w.parts)


@pytest.mark.parametrize("key", ALL_KEYS)
def test_dump_writes_the_payload(disc, key):
    """Discovery.dump (what the gateway publishes, piece by piece) writes the same
    config as payload(), for every TIC label and derived key, and with Modbus hints."""
    info = TIC.labels.info(key)
    assert json.loads(_dumped(disc, "linky", key, info)) == json.loads(disc.payload("linky", key, info))
    for hints in (("Wh", "energy", "total_increasing"), ("V", None, "measurement"), (None, None, None)):
        assert json.loads(_dumped(disc, "sdm-1", key, hints)) == \
            json.loads(disc.payload("sdm-1", key, hints))


def test_dump_on_micropython_matches_cpython(run_micropython):
    """The firmware's dump() on the MicroPython unix port gives the configs CPython's
    payload() gives (ids with '-' and '_', a device name with quotes and accents)."""
    cfg = config.validate({"device_id": "gw-1", "name": 'Maison "Les Pins" \u00e0 Nantes',
                           "mqtt": {"host": "h"}, "network": {"type": "none"}})[0]
    disc = Discovery(cfg, "emu", VERSION)
    want = [json.loads(disc.payload("tic_1", k, TIC.labels.info(k))) for k in ALL_KEYS]
    code = """
import json
from gw.app import _Out
from gw.discovery import Discovery
import protocols.tic as tic
cfg = json.loads(%r)
d = Discovery(cfg, "emu", %r)
out = _Out(64)
for k in tuple(tic.labels.NAMES) + ("phases", "tempo_today", "tempo_tomorrow"):
    out.n = 0
    d.dump(out, ("tic_1", k, tic.labels.info(k)))
    print(bytes(out.buf[:out.n]).decode())
""" % (json.dumps(cfg), VERSION)
    r = run_micropython(code)
    assert r.returncode == 0, r.stderr
    got = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert got == want
