"""Reactive (request/response) replay: a fake Modbus-like channel.  An answer is sent
when the matching request arrives, never on a timer; skipped and unknown requests are
counted and reported."""

import socket
import threading
import time

from passerelle import recording
from passerelle.replay_io import Cassette, Clock, Feeder, TcpEndpoint

REQ1 = bytes.fromhex("01 03 00 00 00 02 c4 0b")          # read 2 registers at 0
ANS1 = bytes.fromhex("01 03 04 00 0a 00 0b 2b f5")
REQ2 = bytes.fromhex("01 03 00 10 00 01 85 cf")
ANS2 = bytes.fromhex("01 03 02 12 34 b5 33")


def _events(*items):
    out, t = [], 0.0
    for d, data in items:
        out.append({"t": t, "ch": "mb", "dir": d, "hex": data.hex()})
        t += 0.1
    return out


def test_cassette_answers_in_order_and_waits_for_whole_requests():
    cas = Cassette(_events(("tx", REQ1), ("rx", ANS1[:4]), ("rx", ANS1[4:]), ("tx", REQ2), ("rx", ANS2),
                           ("tx", REQ1), ("rx", ANS1)))
    assert cas.remaining() == 3
    assert cas.feed(REQ1[:3]) == []                 # a request still arriving: no answer yet
    assert cas.feed(REQ1[3:]) == [ANS1[:4], ANS1[4:]]
    assert cas.feed(REQ2 + REQ1) == [ANS2, ANS1]
    assert cas.exhausted() and cas.matched == 3 and not cas.mismatches


def test_cassette_follows_a_skipped_request_and_reports_unknown_ones():
    cas = Cassette(_events(("rx", b"hello"), ("tx", REQ1), ("rx", ANS1), ("tx", REQ2), ("rx", ANS2)))
    assert cas.leading == [b"hello"]
    assert cas.feed(REQ2) == [ANS2]                 # REQ1 never made: skipped
    assert cas.skipped == 1 and cas.exhausted()
    cas = Cassette(_events(("tx", REQ1), ("rx", ANS1)))
    assert cas.feed(b"\x09\x09\x09\x09\x09\x09\x09\x09") == []
    assert cas.mismatches and "expected 01 03 00 00" in cas.mismatches[0]
    assert cas.feed(REQ1) == [ANS1]
    cas.feed(b"\x01\x02")
    assert "after the recording ended" in cas.mismatches[-1]


def test_a_request_split_over_several_tx_events_is_one_request():
    cas = Cassette(_events(("tx", REQ1[:2]), ("tx", REQ1[2:]), ("rx", ANS1)))
    assert len(cas.exchanges) == 1 and cas.feed(REQ1) == [ANS1]


def test_feeder_serves_a_request_response_channel_over_tcp():
    """A fake master (standing in for a future Modbus driver) talks to the feeder."""
    ch = recording.serial_channel(baud=9600, bits=8, parity="N", protocol="modbus-rtu", reactive=True)
    events = _events(("tx", REQ1), ("rx", ANS1), ("tx", REQ2), ("rx", ANS2))
    # answers are recorded long after their request: the feeder must not wait for that
    events[1]["t"] = events[3]["t"] = 50.0
    clock = Clock(speed=1.0, start=0.0)
    feeder = Feeder("mb", ch, events, TcpEndpoint(), clock).start()
    try:
        s = socket.create_connection(("127.0.0.1", feeder.port), timeout=5)
        clock.open()
        got = {}
        for req, ans in ((REQ1, ANS1), (REQ2, ANS2)):
            t0 = time.monotonic()
            s.sendall(req)
            buf = b""
            while len(buf) < len(ans):
                buf += s.recv(64)
            got[req] = (buf, time.monotonic() - t0)
        assert got[REQ1][0] == ANS1 and got[REQ2][0] == ANS2
        assert max(dt for _, dt in got.values()) < 2.0          # reactive, not timed
        assert feeder.done.wait(5)
        assert feeder.stats["requests"] == 2 and feeder.stats["answers"] == 2
        assert feeder.error is None and not feeder.cassette.mismatches
        s.close()
    finally:
        feeder.stop()


def test_stream_feeder_follows_the_clock_and_survives_a_reconnection():
    ch = recording.serial_channel(baud=1200)
    events = [{"t": 0.1 * i, "ch": "tic", "dir": "rx", "hex": bytes([0x41 + i]).hex()} for i in range(10)]
    clock = Clock(speed=2.0, start=0.0)
    feeder = Feeder("tic", ch, events, TcpEndpoint(), clock).start()
    try:
        s = socket.create_connection(("127.0.0.1", feeder.port), timeout=5)
        time.sleep(0.2)
        clock.open()            # nothing is sent before the gate opens
        t0 = time.monotonic()
        buf = b""
        while len(buf) < 5:
            buf += s.recv(16)
        s.close()
        s2 = socket.create_connection(("127.0.0.1", feeder.port), timeout=0.5)
        rest = b""
        end = time.monotonic() + 5
        while not rest.endswith(b"J") and time.monotonic() < end:
            try:
                rest += s2.recv(16)     # bytes sent while the old socket closed may be lost
            except socket.timeout:
                pass
        elapsed = time.monotonic() - t0
        assert buf.startswith(b"ABCDE")
        assert (buf + rest).endswith(b"J")
        assert 0.35 < elapsed < 3.0       # 0.9 s recorded at x2
        s2.close()
    finally:
        feeder.stop()
    assert not threading.current_thread().name.startswith("replay-")
