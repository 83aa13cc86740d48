"""``record serial --protocol modbus-rtu``: a sniffer's bytes sorted into the master's
requests (tx) and the answers (rx) by passerelle.rtu_split, so that a bus recorded in
the field replays as a cassette.  The wire bytes come from the project's own recording
of the gateway polling a simulated SDM630 (tests/recordings/sim_modbus_sdm630)."""

import os
import subprocess
import sys
import time
import tty

import pytest
from hypothesis import given, strategies as st

from passerelle import golden, recording
from passerelle.rtu_split import RtuSplitter
from protocols.modbus import rtu
from tests.replay.helpers import GOLDEN, RECORDINGS, run_replay

CHAR_S = 10 / 9600
REC = RECORDINGS / "sim_modbus_sdm630.jsonl.gz"
CH = "modbus-uart2"


def _frames():
    """(dir, bytes) of the recorded exchanges: what a sniffer on that bus heard."""
    rec = recording.read(REC)
    return [(ev["dir"], recording.payload(ev)) for ev in rec.channel_events(CH)]


FRAMES = _frames()
WIRE = b"".join(f for _, f in FRAMES)


def _chunks(data, sizes):
    """``data`` cut in reads of ``sizes[0]``, ``sizes[1]``, ... bytes (cycling)."""
    out, i = [], 0
    while i < len(data):
        n = sizes[len(out) % len(sizes)]
        out.append(data[i:i + n])
        i += n
    return out


def _split(chunks, silence_after=()):
    sp = RtuSplitter(CHAR_S)
    out, t = [], 0.0
    for i, c in enumerate(chunks):
        out += sp.feed(c, t)
        t += len(c) * CHAR_S
        if i in silence_after:
            out += sp.silence()
    return out + sp.silence(), sp


def test_the_recorded_polls_come_apart_as_recorded():
    assert len(FRAMES) >= 24 and {d for d, _ in FRAMES} == {"tx", "rx"}
    events, sp = _split([WIRE])
    assert [(d, f) for _, d, f in events] == FRAMES
    assert sp.stats["requests"] == sp.stats["answers"] == len(FRAMES) // 2
    assert sp.stats["junk_bytes"] == 0 and sp.stats["unanswered"] == 0
    times = [t for t, _, _ in events]
    assert times == sorted(times) and times[1] - times[0] == pytest.approx(8 * CHAR_S)


@given(st.lists(st.integers(1, 64), min_size=1, max_size=80))
def test_any_chunking_gives_the_same_frames(sizes):
    events, _ = _split(_chunks(WIRE, sizes))
    assert [(d, f) for _, d, f in events] == FRAMES


@given(st.binary(min_size=1, max_size=40), st.integers(0, len(FRAMES) // 2 - 1))
def test_noise_between_exchanges_is_kept_as_heard_and_the_frames_still_found(noise, k):
    """Noise (a silence ends it) between two exchanges: the exchanges are all found, the
    noise goes out as rx bytes, nothing heard is lost."""
    before = b"".join(f for _, f in FRAMES[:2 * k])
    after = b"".join(f for _, f in FRAMES[2 * k:])
    events, sp = _split([before, noise, after], silence_after={1})
    assert b"".join(f for _, _, f in events) == before + noise + after
    frames = [(d, f) for _, d, f in events]
    pos = 0
    for fr in FRAMES:                       # every recorded frame, in order
        pos = frames.index(fr, pos) + 1


@given(st.binary(max_size=300), st.lists(st.integers(1, 32), min_size=1, max_size=20))
def test_arbitrary_bytes_never_raise_nor_get_lost(data, sizes):
    events, _ = _split(_chunks(data, sizes))
    assert b"".join(f for _, _, f in events) == data
    assert all(d in ("tx", "rx") and f for _, d, f in events)


def test_timeouts_exceptions_and_writes():
    read = rtu.request(1, 4, 0, 2)
    ans = bytes([1, 4, 4, 0, 1, 0, 2])
    ans += rtu.crc16(ans).to_bytes(2, "little")
    exc = bytes([1, 0x84, 2])
    exc += rtu.crc16(exc).to_bytes(2, "little")
    write = rtu.request(1, 6, 0x0A, 15)       # the answer repeats the request
    wmany = rtu.request(1, 16, 0x0A, [1, 2])
    wans = bytes([1, 16, 0, 0x0A, 0, 2])
    wans += rtu.crc16(wans).to_bytes(2, "little")
    wire = [read, read, ans, read, exc, write, write, wmany, wans]
    events, sp = _split([b"".join(wire)])
    assert [(d, f) for _, d, f in events] == list(zip(
        ["tx", "tx", "rx", "tx", "rx", "tx", "rx", "tx", "rx"], wire))
    assert sp.stats == {"requests": 5, "answers": 3, "exceptions": 1, "unanswered": 1,
                        "junk_bytes": 0}


def test_record_serial_modbus_cli_on_a_pty(tmp_path):
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    out = tmp_path / "bus.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "passerelle.cli", "record", "serial", "--port",
                          os.ttyname(slave), "--baud", "9600", "--bytesize", "8", "--parity", "N",
                          "--protocol", "modbus-rtu", "--channel", "bus", "--meter", "pac:sdm630:1:10",
                          "--duration", "3", "-o", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        for _, f in FRAMES[:6]:
            for i in range(0, len(f), 7):     # as a USB adapter delivers them
                os.write(master, f[i:i + 7])
                time.sleep(0.002)
            time.sleep(0.02)
        _, err = p.communicate(timeout=20)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 0, err
    rec = recording.read(out)
    ch = rec.channels["bus"]
    assert ch["reactive"] is True and ch["protocol"] == "modbus-rtu"
    assert ch["meters"] == [{"id": "pac", "model": "sdm630", "address": 1, "period_s": 10}]
    assert [(ev["dir"], recording.payload(ev)) for ev in rec.channel_events("bus")] == FRAMES[:6]


def test_record_serial_meter_argument_errors(tmp_path):
    for args in (["--meter", "pac:sdm630"], ["--protocol", "modbus-rtu", "--meter", "pac:sdm630:x"],
                 ["--protocol", "modbus-rtu", "--meter", "pac:sdm999:1"]):
        p = subprocess.run([sys.executable, "-m", "passerelle.cli", "record", "serial", "--port",
                            "loop://", "--duration", "0.1", "-o", str(tmp_path / "x.jsonl")] + args,
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and "--meter" in p.stderr, p.stderr


@pytest.mark.mosquitto
@pytest.mark.slow
def test_a_sniffed_bus_replays_like_the_gateways_own_recording(tmp_path, mosquitto, board_root):
    """The sniffer's view of sim_modbus_sdm630 (its bytes in 16-byte reads, split here)
    replays into the gateway with the same MQTT output as the recording it came from."""
    src = recording.read(REC)
    ch = dict(src.channels[CH])
    sp = RtuSplitter(CHAR_S)
    out = tmp_path / "sniffed.jsonl"
    with recording.Writer(out, {"bus": ch}, t0=0.0) as w:
        for ev in src.channel_events(CH):
            data = recording.payload(ev)
            for i in range(0, len(data), 16):
                for t, d, f in sp.feed(data[i:i + 16], ev["t"] + i * CHAR_S):
                    w.event("bus", d, f, t=t)
        for t, d, f in sp.silence():
            w.event("bus", d, f, t=t)
    res = run_replay(recording.read(out), mosquitto, board_root, speed=200, lockstep=True,
                     settle_s=0.3)
    assert res.online and not res.firmware_errors, "\n".join(res.lines[-40:])
    cas = res.feeders["bus"].cassette
    assert cas.exhausted() and not cas.mismatches
    _, expected = golden.read(GOLDEN / "sim_modbus_sdm630.golden.jsonl")
    assert golden.compare(expected, res.golden()) == []
