"""`passerelle bench` plumbing: the contract JSON (every key present, a number or null),
the markdown table and the PNG chart, the targets and the board estimate.  A tiny budget:
`--quick --only` the TIC parts and the end-to-end run (the full run is `make bench`).
No timing assertion: figures come from the benchmark, not from tests."""

import json
import subprocess
import sys

import pytest

from passerelle.bench import command

CONTRACT = {
    "tic": {"unix_us_per_frame": ["historic", "standard"],
            "unix_alloc_bytes_per_frame": ["historic", "standard"],
            "cpython_frames_per_s": {p: ["historic", "standard"]
                                     for p in ("passerelle", "teleinfo", "enedis_tic", "serial_teleinfo")}},
    "mqtt": {c: ["qos0_msgs_per_s", "qos1_msgs_per_s", "latency_p50_ms", "latency_p99_ms"]
             for c in ("passerelle", "chumicro_mqtt", "aiomqttc", "paho")},
    "heap": ["min_heapsize_bytes", "growth_bytes"],
    "e2e": ["frame_to_state_p50_ms", "frame_to_state_p99_ms",
            "command_to_echo_p50_ms", "command_to_echo_p99_ms"],
}


def _leaves(spec, obj, path=""):
    """Yield (dotted key, value) for every contract leaf; KeyError when one is missing."""
    if isinstance(spec, dict):
        assert set(obj) == set(spec), "%s: keys %s, contract %s" % (path, sorted(obj), sorted(spec))
        for k, sub in spec.items():
            yield from _leaves(sub, obj[k], path + k + ".")
    else:
        assert set(obj) == set(spec), "%s: keys %s, contract %s" % (path, sorted(obj), sorted(spec))
        for k in spec:
            yield path + k, obj[k]


@pytest.mark.mosquitto
def test_bench_quick_writes_contract_json_markdown_and_png(tmp_path, micropython, mosquitto):
    # (the bench starts its own loopback mosquitto; the fixture skips/fails like the others
    # when mosquitto is not installed)
    out = tmp_path / "b.json"
    proc = subprocess.run([sys.executable, "-m", "passerelle.cli", "bench", "--quick",
                           "--only", "tic.unix,tic.cpython,e2e", "--json", str(out),
                           "--micropython", micropython],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    leaves = {}
    for part in CONTRACT:
        leaves.update(_leaves(CONTRACT[part], res[part], part + "."))
    for k, v in leaves.items():
        assert v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)), (k, v)
    # the parts that ran produced figures; the skipped ones stayed null
    for k in ("tic.unix_us_per_frame.historic", "tic.unix_us_per_frame.standard",
              "tic.unix_alloc_bytes_per_frame.standard", "tic.cpython_frames_per_s.passerelle.historic",
              "tic.cpython_frames_per_s.passerelle.standard", "e2e.frame_to_state_p50_ms",
              "e2e.frame_to_state_p99_ms"):
        assert isinstance(leaves[k], (int, float)) and leaves[k] > 0, (k, leaves[k])
    assert leaves["mqtt.paho.qos0_msgs_per_s"] is None
    assert leaves["heap.min_heapsize_bytes"] is None
    assert res["notes"]["skipped"] == ["mqtt.passerelle", "mqtt.peers", "heap.min_heapsize",
                                       "heap.growth"]
    # a peer is null exactly when the notes say why
    for p in ("teleinfo", "enedis_tic", "serial_teleinfo"):
        for kind in ("historic", "standard"):
            if res["tic"]["cpython_frames_per_s"][p][kind] is None:
                assert "tic.%s.%s" % (p, kind) in res["notes"]
    # targets: one row per issue-8 target, PASS/FAIL where measured, None where skipped
    names = [t["target"] for t in res["targets"]]
    assert len(names) == 9
    assert {t["pass"] for t in res["targets"][:4]} <= {True, False}
    assert res["targets"][6]["pass"] is None            # QoS1 publish: mqtt part skipped
    be = res["board_estimate"]
    assert be["factor"] == 150
    for kind in ("historic", "standard"):
        b = be[kind]
        assert b["esp32_ms"] == pytest.approx(b["unix_us"] * 150 / 1000, rel=0.01)
        assert b["line_time_ms"] == pytest.approx(
            b["frame_bytes"] * 10 * 1000 / (1200 if kind == "historic" else 9600), rel=0.01)
    md = out.with_suffix(".md").read_text()
    assert "| target | value | limit | result |" in md and "enedis_tic" in md
    assert md.count("| passerelle |") == 1
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000
    assert "written:" in proc.stdout


def test_targets_and_skeleton_without_measurements():
    res = command.empty_result()
    rows = command.targets(res)
    assert [r["pass"] for r in rows] == [None] * 9
    res["tic"]["unix_us_per_frame"]["historic"] = 61.0
    res["heap"]["min_heapsize_bytes"] = 96 * 1024
    rows = {r["target"].split(" (")[0]: r["pass"] for r in command.targets(res)}
    assert rows["decode historic us/frame"] is False
    assert rows["full scenario min -X heapsize bytes"] is True


def test_unknown_part_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "passerelle.cli", "bench", "--only", "nope",
                           "--json", str(tmp_path / "x.json")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "unknown part" in proc.stderr
    assert not (tmp_path / "x.json").exists()
