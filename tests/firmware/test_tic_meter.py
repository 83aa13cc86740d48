"""gw.drivers.tic_meter: frame -> state values (CPython, injected clock and tic module)."""

import json

import pytest

from gw.drivers.tic_meter import TICMeter, colour
from protocols.tic.labels import NAMES as TIC_NAMES
from tests.firmware.standins import FakeHal, Frame, Log, tic as tic_module

TIC = tic_module()
H, S = TIC.HISTORIC, TIC.STANDARD


def make(**cfg):
    c = {"id": "linky", "mode": "auto", "uart": 1, "period_s": 60}
    c.update(cfg)
    hal = FakeHal()
    return TICMeter(c, hal, Log(), tic=TIC), hal


def hist(**over):
    g = {"ADCO": ("021861348497", None), "OPTARIF": ("BBR(", None), "ISOUSC": ("30", None),
         "BBRHCJB": ("018328856", None), "BBRHPJB": ("023739545", None),
         "PTEC": ("HCJB", None), "DEMAIN": ("ROUG", None), "IINST": ("012", None),
         "PAPP": ("02840", None), "MOTDETAT": ("000000", None)}
    for k, v in over.items():
        if v is None:
            g.pop(k, None)
        else:
            g[k] = (v, None)
    return Frame(H, g)


def std(**over):
    g = {"ADSC": ("041876097263", None), "DATE": ("", "H230301091834"),
         "NGTF": ("     TEMPO      ", None), "LTARF": ("    HP  BLEU    ", None),
         "EAST": ("012345678", None), "EASF01": ("002345678", None),
         "IRMS1": ("004", None), "URMS1": ("231", None), "PREF": ("09", None),
         "SINSTS": ("00960", None), "SMAXSN-1": ("04040", "H230228120000"),
         "STGE": ("063A0001", None)}
    for k, v in over.items():
        if v is None:
            g.pop(k, None)
        elif isinstance(v, tuple):
            g[k] = v
        else:
            g[k] = (v, None)
    return Frame(S, g)


def feed(meter, hal, frames, step_ms=1500):
    for f in frames:
        hal.now += step_ms
        meter.apply(f)


def test_numbers_and_strings_historic():
    m, hal = make()
    feed(m, hal, [hist(), hist()])
    v = m.values
    assert v["BBRHCJB"] == 18328856 and v["BBRHPJB"] == 23739545
    assert v["PAPP"] == 2840 and v["IINST"] == 12 and v["ISOUSC"] == 30
    assert v["ADCO"] == "021861348497" and v["OPTARIF"] == "BBR("
    assert v["PTEC"] == "HCJB" and v["DEMAIN"] == "ROUG" and v["MOTDETAT"] == "000000"
    assert v["tempo_today"] == "blue" and v["tempo_tomorrow"] == "red" and v["phases"] == 1
    doc = json.loads(m.state_json())
    assert doc["PAPP"] == 2840 and isinstance(doc["BBRHCJB"], int)


def test_padding_stripped():
    m, hal = make()
    feed(m, hal, [hist(PTEC="HC..", OPTARIF="HC.."), std(), std()])
    assert m.values["PTEC"] == "HC" and m.values["OPTARIF"] == "HC"
    assert m.values["NGTF"] == "TEMPO" and m.values["LTARF"] == "HP  BLEU"
    assert m.values["DATE"] == "H230301091834"
    assert m.values["PREF"] == 9 and m.values["SMAXSN-1"] == 4040 and m.values["URMS1"] == 231


def test_first_index_waits_for_confirmation():
    m, hal = make()
    feed(m, hal, [std()])
    assert "EAST" not in m.values and m.stats["index_rejected"] == 2
    feed(m, hal, [std(EAST="012345679")])
    assert m.values["EAST"] == 12345679


def test_never_zero_or_decreasing():
    m, hal = make()
    feed(m, hal, [std(), std(EAST="012345700")])
    rejected = m.stats["index_rejected"]
    for bad in ("000000000", "012345600", "012345699"):
        feed(m, hal, [std(EAST=bad)])
        assert m.values["EAST"] == 12345700
    assert m.stats["index_rejected"] == rejected + 3
    feed(m, hal, [std(EAST="012345701")])
    assert m.values["EAST"] == 12345701


def test_implausible_jump_rejected():
    m, hal = make()
    feed(m, hal, [std(), std()])
    feed(m, hal, [std(EAST="912345678")])  # a corrupted leading digit that passed the checksum
    assert m.values["EAST"] == 12345678
    feed(m, hal, [std(EAST="012345690")])
    assert m.values["EAST"] == 12345690


def test_bogus_first_candidate_is_replaced():
    m, hal = make()
    feed(m, hal, [std(EAST="912345678"), std(EAST="012345678"), std(EAST="012345679")])
    assert m.values["EAST"] == 12345679


def test_zero_index_never_published():
    m, hal = make()
    feed(m, hal, [std(EASF01="000000000")] * 5)
    assert "EASF01" not in m.values


def test_phase_count_sticky():
    m, hal = make()
    feed(m, hal, [std(), std()])
    assert m.values["phases"] == 1
    feed(m, hal, [std(IRMS2="001")])  # one corrupted/odd frame does not flip it
    assert m.values["phases"] == 1
    feed(m, hal, [std(IRMS2="002", IRMS3="003")])
    assert m.values["phases"] == 3
    feed(m, hal, [std()] * 10)
    assert m.values["phases"] == 3


def test_short_frames_keep_values_and_transients_age_out():
    m, hal = make()
    feed(m, hal, [hist(ADPS="045"), hist(ADPS="046")])
    short = Frame(H, {"ADCO": ("021861348497", None), "IINST": ("050", None)})
    feed(m, hal, [short] * 10)
    assert m.values["ADPS"] == 46 and m.values["PAPP"] == 2840 and m.values["IINST"] == 50
    feed(m, hal, [hist(ADPS=None)] * 5)
    assert "ADPS" not in m.values
    assert m.values["BBRHCJB"] == 18328856  # indexes never age out


def test_change_flag_ignores_clock():
    m, hal = make()
    feed(m, hal, [std(), std()])
    m.changed = False
    m.updated.clear()
    feed(m, hal, [std(DATE=("", "H230301091836"))])
    assert not m.changed and m.updated.is_set()  # updated: every frame wakes the publisher
    m.updated.clear()
    feed(m, hal, [std(SINSTS="00970")])
    assert m.changed and m.updated.is_set()


def test_new_keys_reported_once():
    m, hal = make()
    feed(m, hal, [std(), std()])
    keys = [m.key_at(i) for i in m.new_keys]  # a byte per key: its index
    assert "SINSTS" in keys and "EAST" in keys and "tempo_today" in keys
    assert len(keys) == len(set(keys)) == len(m.values) and set(keys) == set(m.values)
    assert m.key_at(0) == "ADCO" and m.key_at(len(TIC_NAMES)) == "phases"
    assert m.key_at(len(TIC_NAMES) + 3) is None


def test_tempo_from_stge():
    m, hal = make()
    # 0x063A0001: today bits 24-25 = 2 (white), tomorrow bits 26-27 = 1 (blue)
    feed(m, hal, [std(), std()])
    assert m.values["tempo_today"] == "white" and m.values["tempo_tomorrow"] == "blue"
    feed(m, hal, [std(STGE="003A0001", NGTF="      BASE      ")])
    assert m.values["tempo_today"] == "white"  # not a Tempo contract anymore: keys kept


def test_no_tempo_keys_on_base_contract():
    m, hal = make()
    feed(m, hal, [std(STGE="003A0001", NGTF="      BASE      ")] * 2)
    assert "tempo_today" not in m.values


@pytest.mark.parametrize("code,name", [("B", "blue"), ("BLEU", "blue"), ("BLANC", "white"),
                                       ("ROUG", "red"), (3, "red"), ("----", None), (0, None),
                                       (None, None)])
def test_colour(code, name):
    assert colour(code) == name
