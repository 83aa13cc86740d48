"""Golden normalisation and comparison (no gateway involved)."""

import json

from passerelle import golden


def _msgs():
    return [
        ("passerelle/gw/status", b"online", True, True),        # retained from an earlier run
        ("passerelle/gw/status", b"online", False, False),
        ("passerelle/gw/boot", json.dumps({"free_heap": 1234, "version": "0.1.0", "config": "ok"}).encode(),
         False, False),
        ("passerelle/gw/stats", b'{"uptime_s": 5}', False, False),
        ("passerelle/gw/linky/state", b'{"BASE": 10, "PAPP": 500}', False, False),
        ("homeassistant/sensor/gw/linky_base/config", b'{"name": "BASE", "device": {"sw_version": "0.1.0"}}',
         False, False),
        ("passerelle/gw/linky/state", b'{"PAPP": 500, "BASE": 10}', False, False),   # same data: collapsed
        ("passerelle/gw/linky/state", b'{"BASE": 11, "PAPP": 510}', False, False),
        ("passerelle/gw/raw", b"\xff\x00", False, False),
    ]


def test_normalise():
    out = golden.normalise(_msgs())
    assert out == [
        {"topic": "passerelle/gw/status", "payload": "online"},
        {"topic": "passerelle/gw/boot", "payload": {"config": "ok"}},
        {"topic": "passerelle/gw/linky/state", "payload": {"BASE": 10, "PAPP": 500}},
        {"topic": "homeassistant/sensor/gw/linky_base/config", "payload": {"name": "BASE", "device": {}}},
        {"topic": "passerelle/gw/linky/state", "payload": {"BASE": 11, "PAPP": 510}},
        {"topic": "passerelle/gw/raw", "payload": {"hex": "ff00"}},
    ]


def test_compare_is_per_topic_and_readable(tmp_path):
    expected = golden.normalise(_msgs())
    path = tmp_path / "g.jsonl"
    golden.write(path, expected, recording="r.jsonl")
    head, back = golden.read(path)
    assert head["recording"] == "r.jsonl" and back == expected
    # order across topics does not matter
    assert golden.compare(expected, list(reversed(expected[2:3])) + expected[:2] + expected[3:]) == []
    actual = [dict(m) for m in expected]
    actual[4] = {"topic": "passerelle/gw/linky/state", "payload": {"BASE": 9, "PAPP": 510}}
    actual.append({"topic": "passerelle/gw/new", "payload": "x"})
    actual = [m for m in actual if m["topic"] != "passerelle/gw/raw"]
    diff = golden.compare(expected, actual)
    text = "\n".join(diff)
    assert "~ passerelle/gw/linky/state: 2 message(s) expected, 2 received" in text
    assert '-{"BASE": 11, "PAPP": 510}' in text and '+{"BASE": 9, "PAPP": 510}' in text
    assert "+ unexpected topic passerelle/gw/new" in text
    assert "- missing topic passerelle/gw/raw" in text
    # the retained snapshot is its own group
    snap = [{"topic": "passerelle/gw/status", "payload": "online", "retained": True}]
    assert "retained passerelle/gw/status" in "\n".join(golden.compare(expected + snap, expected))
    assert "2 retained" not in golden.summary(expected + snap) and "1 retained" in golden.summary(expected + snap)
