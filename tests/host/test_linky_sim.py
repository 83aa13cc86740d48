"""The Linky simulator: frames the TIC codec decodes cleanly, and values that behave like a meter's."""

import calendar
import itertools
import subprocess
import sys

import pytest

from passerelle.sim.linky import LinkySim, horodate, line_rate, local_time
from protocols.tic import AUTO, HISTORIC, STANDARD, TicDecoder, labels

COMBOS = list(itertools.product(("historic", "standard"), (1, 3), ("base", "hc", "tempo")))
ERROR_KEYS = ("frames_interrupted", "checksum_errors", "label_errors", "format_errors", "overflows",
              "garbage_bytes")

HIST_INDEX = {"base": ["BASE"], "hc": ["HCHC", "HCHP"],
              "tempo": ["BBRHCJB", "BBRHPJB", "BBRHCJW", "BBRHPJW", "BBRHCJR", "BBRHPJR"]}


def decode_all(data, mode=AUTO):
    """Every frame in ``data`` as a {label: (value, horodate)} dict, plus the decoder stats."""
    d = TicDecoder(mode=mode)
    frames, pos = [], 0
    while pos < len(data):
        used, frame = d.decode(data, pos)
        if frame is not None:
            frames.append((frame.mode, frame.invalid, labels.pairs(frame.groups), list(frame.groups)))
        if used == 0:
            break
        pos += used
    return frames, dict(d.stats)


def expected_labels(mode, phases, tariff):
    """Spec emission order for what the simulator is meant to send."""
    if mode == "historic":
        out = ["ADCO", "OPTARIF", "ISOUSC"] + HIST_INDEX[tariff] + ["PTEC"]
        if tariff == "tempo":
            out.append("DEMAIN")
        if phases == 1:
            out += ["IINST", "IMAX"]
        else:
            out += ["IINST1", "IINST2", "IINST3", "IMAX1", "IMAX2", "IMAX3", "PMAX"]
        out += ["PAPP", "HHPHC", "MOTDETAT"] + (["PPOT"] if phases == 3 else [])
        return out
    ph = range(1, phases + 1)
    out = ["ADSC", "VTIC", "DATE", "NGTF", "LTARF", "EAST"]
    out += ["EASF%02d" % i for i in range(1, 11)] + ["EASD%02d" % i for i in range(1, 5)]
    out += ["IRMS%d" % i for i in ph] + ["URMS%d" % i for i in ph] + ["PREF", "PCOUP", "SINSTS"]
    if phases == 3:
        out += ["SINSTS1", "SINSTS2", "SINSTS3", "SMAXSN", "SMAXSN1", "SMAXSN2", "SMAXSN3",
                "SMAXSN-1", "SMAXSN1-1", "SMAXSN2-1", "SMAXSN3-1"]
    else:
        out += ["SMAXSN", "SMAXSN-1"]
    out += ["CCASN", "CCASN-1"] + ["UMOY%d" % i for i in ph] + ["STGE"]
    out += ["MSG1", "PRM", "RELAIS", "NTARF", "NJOURF", "NJOURF+1", "PJOURF+1"]
    return out


@pytest.mark.parametrize("mode,phases,tariff", COMBOS)
def test_frames_decode_without_errors(mode, phases, tariff):
    # accel: 40 frames cover ~1.5 days of meter time, so every period and day change is crossed
    sim = LinkySim(mode=mode, phases=phases, tariff=tariff, seed=3, accel=3000)
    data = b"".join(raw for _, raw in sim.stream(frames=40))
    frames, stats = decode_all(data)
    assert len(frames) == 40
    assert stats["frames"] == 40
    for key in ERROR_KEYS:
        assert stats.get(key, 0) == 0, (key, stats)
    want = expected_labels(mode, phases, tariff)
    for fmode, invalid, groups, order in frames:
        assert fmode == (HISTORIC if mode == "historic" else STANDARD)
        assert invalid == 0
        got = [label for label in order if not label.startswith(("DPM", "FPM"))]
        assert got == want
    # the same bytes also decode with the mode forced
    frames2, stats2 = decode_all(data, HISTORIC if mode == "historic" else STANDARD)
    assert len(frames2) == 40 and stats2.get("checksum_errors", 0) == 0


@pytest.mark.parametrize("mode,phases,tariff", COMBOS)
def test_indexes_never_decrease_and_add_up(mode, phases, tariff):
    sim = LinkySim(mode=mode, phases=phases, tariff=tariff, seed=11, accel=1200)
    labels = HIST_INDEX[tariff] if mode == "historic" else (
        ["EAST"] + ["EASF%02d" % i for i in range(1, 11)] + ["EASD%02d" % i for i in range(1, 5)])
    prev = None
    for _, raw in sim.stream(frames=60):
        (fr,), _ = decode_all(raw)
        groups = fr[2]
        cur = {k: int(groups[k][0]) for k in labels}
        if mode == "standard":
            assert cur["EAST"] == sum(cur["EASF%02d" % i] for i in range(1, 11)) or \
                abs(cur["EAST"] - sum(cur["EASF%02d" % i] for i in range(1, 11))) <= 10
            assert abs(cur["EAST"] - sum(cur["EASD%02d" % i] for i in range(1, 5))) <= 4
        if prev is not None:
            for k in labels:
                assert cur[k] >= prev[k], (k, prev[k], cur[k])
        prev = cur


def test_energy_matches_power_and_time():
    """Over one simulated hour the index advance equals the integrated power (pf 0.92)."""
    sim = LinkySim(mode="standard", phases=1, tariff="base", seed=5)
    e0 = sim.indexes()["EAST"]
    total_va = 0.0
    for t in range(0, 3600, 10):            # frame every 10 s of meter time
        (fr,), _ = decode_all(sim.frame(t))
        total_va += int(fr[2]["SINSTS"][0]) * 10
    e1 = sim.indexes()["EAST"]
    expected_wh = total_va * 0.92 / 3600.0
    assert e1 > e0
    assert abs((e1 - e0) - expected_wh) <= max(3, 0.02 * expected_wh)


def _ptec_over_day(tariff, mode="historic"):
    # start 2025-01-15 00:00 local (23:00 UTC the day before), one frame per 15 min of meter time
    start = calendar.timegm((2025, 1, 14, 23, 0, 0))
    sim = LinkySim(mode=mode, phases=1, tariff=tariff, seed=1, start=start)
    out = []
    for q in range(96):
        groups = dict((g[0], g) for g in sim.groups(q * 900))
        out.append((q * 15 // 60, q * 15 % 60, groups))
    return out


def test_hc_hp_switch_by_time_of_day():
    for hour, minute, g in _ptec_over_day("hc"):
        want = "HC.." if (hour >= 22 or hour < 6) else "HP.."
        assert g["PTEC"][1] == want, (hour, minute, g["PTEC"])
    for hour, minute, g in _ptec_over_day("hc", "standard"):
        hc = hour >= 22 or hour < 6
        assert g["NTARF"][1] == ("01" if hc else "02")
        assert g["LTARF"][1].strip() == ("HEURE  CREUSE" if hc else "HEURE  PLEINE")
        stge = int(g["STGE"][1], 16)
        assert (stge >> 10) & 0xF == (0 if hc else 1)
        assert (stge >> 17) & 1 == 1                      # standard mode bit


def test_tempo_colours_in_ptec_demain_and_stge():
    sim = LinkySim(mode="standard", phases=3, tariff="tempo", seed=2)
    colours = {sim._tempo_colour(d) for d in range(20089, 20089 + 60)}     # Jan-Mar 2025
    assert colours == {1, 2, 3}
    seen = set()
    for hour, minute, g in _ptec_over_day("tempo"):
        ptec, demain = g["PTEC"][1], g["DEMAIN"][1]
        assert ptec[:2] == ("HC" if (hour >= 22 or hour < 6) else "HP")
        assert ptec[2:3] == "J" and ptec[3] in "BWR"
        assert demain in ("----", "BLEU", "BLAN", "ROUG")
        if 6 <= hour < 20:
            assert demain == "----"            # tomorrow is announced at 20:00
        else:
            assert demain != "----"
        seen.add(ptec)
    assert {"HCJB", "HPJB"} <= seen or {"HCJW", "HPJW"} <= seen or {"HCJR", "HPJR"} <= seen
    for hour, minute, g in _ptec_over_day("tempo", "standard"):
        stge = int(g["STGE"][1], 16)
        today, tomorrow = (stge >> 24) & 3, (stge >> 26) & 3
        assert today in (1, 2, 3)
        name = {1: "BLEU", 2: "BLANC", 3: "ROUGE"}[today]
        assert g["LTARF"][1].split() == ["HC" if (hour >= 22 or hour < 6) else "HP", name]
        assert len(g["LTARF"][1]) == 16
        ntarf = int(g["NTARF"][1])
        assert ntarf == 2 * (today - 1) + (1 if (hour >= 22 or hour < 6) else 2)
        assert (stge >> 10) & 0xF == ntarf - 1
        assert (tomorrow == 0) == (6 <= hour < 20)


def test_horodate_season_letter():
    winter = calendar.timegm((2025, 1, 15, 12, 0, 0))
    summer = calendar.timegm((2025, 7, 14, 12, 0, 0))
    assert horodate(winter) == "H250115130000"
    assert horodate(summer) == "E250714140000"
    # DST switch: 2025-03-30 01:00 UTC
    switch = calendar.timegm((2025, 3, 30, 1, 0, 0))
    assert local_time(switch - 1)[1] is False and local_time(switch)[1] is True
    sim = LinkySim(mode="standard", phases=1, tariff="base", start=summer)
    g = dict((x[0], x) for x in sim.groups(0))
    assert g["DATE"][2] == "E250714140000" and g["DATE"][1] == ""
    for label in ("SMAXSN", "SMAXSN-1", "CCASN", "CCASN-1", "UMOY1"):
        assert g[label][2][0] == "E" and len(g[label][2]) == 13


def test_noise_produces_counted_errors():
    sim = LinkySim(mode="standard", phases=3, tariff="tempo", seed=4, noise=0.05)
    data = b"".join(raw for _, raw in sim.stream(frames=60))
    st = sim.noise_stats
    injected = st["bit_drops"] + st["lost_lf"] + st["truncations"] + st["eot"]
    assert injected > 60 and min(st["bit_drops"], st["lost_lf"], st["truncations"], st["eot"]) > 0
    frames, stats = decode_all(data)
    errors = sum(stats.get(k, 0) for k in ERROR_KEYS)
    assert errors >= injected // 3, (stats, st)
    assert stats.get("frames_interrupted", 0) >= 1
    assert stats["checksum_errors"] > 0
    bad = sum(1 for f in frames if f[1])
    assert bad > 0
    # clean sims never produce decoder errors (see test_frames_decode_without_errors),
    # and the noise is deterministic for a seed
    again = LinkySim(mode="standard", phases=3, tariff="tempo", seed=4, noise=0.05)
    assert b"".join(raw for _, raw in again.stream(frames=60)) == data


def test_deterministic_and_seed_dependent():
    a = LinkySim(mode="historic", phases=3, tariff="hc", seed=7, accel=100)
    b = LinkySim(mode="historic", phases=3, tariff="hc", seed=7, accel=100)
    c = LinkySim(mode="historic", phases=3, tariff="hc", seed=8, accel=100)
    fa = [raw for _, raw in a.stream(frames=5)]
    assert fa == [raw for _, raw in b.stream(frames=5)]
    assert fa != [raw for _, raw in c.stream(frames=5)]
    # going back in time replays deterministically
    assert a.frame(0) == fa[0]


def test_line_rate_and_stream_timing():
    assert line_rate("historic") == 120.0 and line_rate("standard") == 960.0
    sim = LinkySim(mode="standard", phases=3, tariff="tempo")
    assert sim.line_rate() == 960.0
    items = list(sim.stream(frames=3))
    assert items[0][0] == 0.0
    dt = items[1][0] - items[0][0]
    assert dt == pytest.approx(len(items[0][1]) / 960.0 + 0.025)
    hist = LinkySim(mode="historic", phases=1, tariff="tempo")
    (t0, f0), (t1, _) = list(hist.stream(frames=2))
    assert 250 <= len(f0) <= 300                     # ~275 B, ~2.3 s at 1200 Bd
    assert 2.0 < t1 - t0 < 2.6


def test_bad_arguments():
    with pytest.raises(ValueError):
        LinkySim(mode="pme")
    with pytest.raises(ValueError):
        LinkySim(phases=2)
    with pytest.raises(ValueError):
        LinkySim(tariff="ejp")
    with pytest.raises(ValueError):
        LinkySim(noise=2)


def test_cli_sim_linky_writes_raw_frames(tmp_path, project_root):
    out = tmp_path / "tic.bin"
    r = subprocess.run([sys.executable, "-m", "passerelle.cli", "sim", "linky", "--mode", "standard",
                        "--phases", "3", "--tariff", "tempo", "--frames", "4", "-o", str(out)],
                       cwd=project_root, env=_env(project_root), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data.count(b"\x02") == 4 and data.endswith(b"\x03")
    frames, stats = decode_all(data)
    assert len(frames) == 4 and stats["checksum_errors"] == 0
    r = subprocess.run([sys.executable, "-m", "passerelle.cli", "sim", "linky", "--frames", "2",
                        "-o", "-"], cwd=project_root, env=_env(project_root), capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout.count(b"\x03") == 2
    assert b"ADCO " in r.stdout


def _env(root):
    import os
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "host"), str(root)])
    return env


@pytest.mark.parametrize("colour", [2, 3])
def test_tempo_mobile_peak_days(colour):
    """White/red Tempo days run as mobile peaks PM1/PM2 (06:00 -> 06:00): STGE bits 30-31,
    DPMx/FPMx with a blank season letter, all accepted by the decoder."""
    probe = LinkySim(mode="standard", phases=1, tariff="tempo", seed=6)
    day = next(d for d in range(20089, 20089 + 90) if probe._tempo_colour(d) == colour)
    start = day * 86400 + 9 * 3600                 # 10:00 local (UTC+1) on that Tempo day
    sim = LinkySim(mode="standard", phases=1, tariff="tempo", seed=6, start=start)
    (fr,), stats = decode_all(sim.frame(0))
    assert stats["checksum_errors"] == 0 and fr[1] == 0
    g = fr[2]
    k = colour - 1
    assert int(g["STGE"][0], 16) >> 30 == k
    assert (int(g["STGE"][0], 16) >> 24) & 3 == colour
    assert g["DPM%d" % k][1][0] == " " and g["DPM%d" % k][1][7:] == "060000"
    assert g["FPM%d" % k][1][0] == " " and g["FPM%d" % k][1][7:] == "060000"
    hist = LinkySim(mode="historic", phases=1, tariff="tempo", seed=6, start=start)
    (hf,), _ = decode_all(hist.frame(0))
    assert hf[2]["PTEC"][0] == "HPJ" + ("W" if colour == 2 else "R")
