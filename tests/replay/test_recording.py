"""The recording format: writer/reader round trips, gzip, flushing, truncation,
line-rate timing of imported captures."""

import gzip
import json

import pytest

from passerelle import cli, recording
from passerelle.record import import_capture


def _chans():
    return {"tic": recording.serial_channel(port="/dev/ttyUSB0", baud=1200),
            "mqtt": recording.mqtt_channel("mqtt://127.0.0.1:1883")}


@pytest.mark.parametrize("name", ["r.jsonl", "r.jsonl.gz"])
def test_round_trip(tmp_path, name):
    path = tmp_path / name
    with recording.Writer(path, _chans(), source="kitchen") as w:
        w.event("tic", "rx", b"\x02\nADCO 012345678901 E\r", t=0.0)
        w.event("tic", "rx", b"\nOPTARIF BASE 0\r\x03", t=0.175)
        w.event("mqtt", "rx", b"online", t=1.25, encoding="b64", topic="homeassistant/status",
                qos=0, retain=False)
        w.mark("unplugged meter", t=2.0)
    rec = recording.read(path)
    assert rec.header["format"] == "passerelle-rec" and rec.header["version"] == 1
    assert rec.header["source"] == "kitchen" and rec.header["clock"] == "monotonic"
    assert rec.channels["tic"] == {"kind": "serial", "protocol": "tic", "port": "/dev/ttyUSB0",
                                   "baud": 1200, "bits": 7, "parity": "E", "stop": 1,
                                   "mode": "historic"}
    assert rec.channels["mqtt"]["broker"] == "mqtt://127.0.0.1:1883"
    assert [ev["t"] for ev in rec.events] == [0.0, 0.175, 1.25, 2.0]
    assert rec.payload_bytes("tic") == b"\x02\nADCO 012345678901 E\r\nOPTARIF BASE 0\r\x03"
    mq = rec.channel_events("mqtt")[0]
    assert recording.payload(mq) == b"online" and "b64" in mq and mq["topic"] == "homeassistant/status"
    assert rec.events[-1] == {"t": 2.0, "ev": "mark", "note": "unplugged meter"}
    assert rec.serial_channels() == ["tic"] and rec.mqtt_channels() == ["mqtt"]
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == recording.GZIP_MAGIC


def test_gzip_recognised_by_magic_and_plain_by_content(tmp_path):
    plain = tmp_path / "a.jsonl"
    with recording.Writer(plain, _chans()) as w:
        w.event("tic", "rx", b"abc", t=0.5)
    gz = tmp_path / "a.bin"           # no .gz suffix: recognised by its magic
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert recording.payload(recording.read(gz).events[0]) == b"abc"


def test_every_event_is_flushed_as_written(tmp_path):
    for name in ("live.jsonl", "live.jsonl.gz"):
        path = tmp_path / name
        w = recording.Writer(path, _chans())
        for i in range(3):
            w.event("tic", "rx", bytes([0x41 + i]))
            # a reader (or a crash) now sees everything written so far, without close()
            rec = recording.read(path)
            assert rec.payload_bytes("tic") == b"ABC"[:i + 1], name
        w.close()


def test_truncated_last_line_is_ignored_with_a_warning(tmp_path):
    path = tmp_path / "cut.jsonl"
    with recording.Writer(path, _chans()) as w:
        w.event("tic", "rx", b"\nBASE 001234567 ,\r", t=0.0)
    with open(path, "a") as f:
        f.write('{"t": 0.2, "ch": "tic", "dir": "rx", "he')
    rec = recording.read(path)
    assert len(rec.events) == 1 and rec.warnings and "truncated" in rec.warnings[0]


@pytest.mark.parametrize("text, message", [
    ("", "empty recording"),
    ("not json\n", "header is not JSON"),
    ('{"format": "other"}\n', "not a passerelle-rec header"),
    ('{"format": "passerelle-rec", "version": 9, "channels": {}}\n', "version 9"),
    ('{"format": "passerelle-rec", "version": 1, "channels": {}}\n{"t": 0, "ch": "x", "hex": ""}\n{}\n',
     "channel 'x' is not in the header"),
    ('{"format": "passerelle-rec", "version": 1, "channels": {}}\n{"ev": "mark"}\n{}\n', 'numeric "t"'),
])
def test_bad_recordings_are_named(tmp_path, text, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(recording.RecordingError, match=message):
        recording.read(path)


def test_line_rates():
    assert recording.bytes_per_second(recording.serial_channel(baud=1200)) == 120.0
    assert recording.bytes_per_second(recording.serial_channel(baud=9600)) == 960.0
    assert recording.bytes_per_second({"baud": 9600, "bits": 8, "parity": "N", "stop": 1}) == 960.0
    assert recording.serial_channel(baud=9600)["mode"] == "standard"


def test_tic_chunks_split_per_group_and_frame():
    data = b"\x02\nA 1 X\r\nB 2 Y\r\x03\x02\nC" + b"x" * 100
    chunks = recording.tic_chunks(data, max_chunk=64)
    assert b"".join(chunks) == data
    assert chunks[:4] == [b"\x02\nA 1 X\r", b"\nB 2 Y\r", b"\x03", b"\x02\nC" + b"x" * 61]
    assert all(len(c) <= 64 for c in chunks)


def test_timed_chunks_follow_the_line_rate():
    data = b"\x02\nA 1 X\r\x03" * 3
    timed = recording.timed_chunks(data, 120.0, frame_gap=0.025)
    assert timed[0][0] == 0.0
    # second group starts after 8 bytes at 120 B/s; the next frame after the ETX + gap
    assert timed[1][0] == pytest.approx(8 / 120)
    assert timed[2][0] == pytest.approx(9 / 120 + 0.025)


def test_import_capture_of_every_real_capture(tmp_path, captures_dir):
    for cap in sorted(captures_dir.glob("*.bin")):
        data = cap.read_bytes()
        out = tmp_path / (cap.stem + ".jsonl")
        n = import_capture(data, out, source=cap.name)
        rec = recording.read(out)
        assert n == len(rec.events) > 0
        assert rec.payload_bytes("tic") == data, cap.name      # lossless
        ch = rec.channels["tic"]
        mode = "standard" if b"\t" in data else "historic"
        assert ch["mode"] == mode and ch["baud"] == (9600 if mode == "standard" else 1200)
        rate = 960.0 if mode == "standard" else 120.0
        frames = data.count(b"\x03")
        last = rec.events[-1]
        end = last["t"] + len(recording.payload(last)) / rate
        assert end == pytest.approx(len(data) / rate + 0.025 * frames - (0.025 if data.endswith(b"\x03") else 0),
                                    abs=1e-3), cap.name


def test_import_capture_cli(tmp_path, capsys):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\x02\nADCO 012345678901 E\r\nOPTARIF BASE 0\r\x03")
    out = tmp_path / "f.jsonl.gz"
    assert cli.main(["import-capture", str(raw), "--channel", "linky", "--mode", "historic",
                     "-o", str(out)]) == 0
    rec = recording.read(out)
    assert list(rec.channels) == ["linky"] and rec.header["source"] == "raw.bin"
    assert rec.payload_bytes("linky") == raw.read_bytes()
    assert "3 events" in capsys.readouterr().err
    assert cli.main(["import-capture", str(tmp_path / "missing.bin"), "-o", str(out)]) == 2
    # every line on disk is one JSON object
    for line in gzip.decompress(out.read_bytes()).decode().splitlines():
        json.loads(line)
