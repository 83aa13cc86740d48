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


def test_each_request_has_its_own_queue_so_polls_may_interleave_differently():
    """Two meters on one bus: their requests come in another order than recorded, each
    still gets its own answers, in their recorded order."""
    ANS1b = bytes.fromhex("01 03 04 00 0c 00 0d 00 00")
    cas = Cassette(_events(("rx", b"hello"), ("tx", REQ1), ("rx", ANS1), ("tx", REQ2), ("rx", ANS2),
                           ("tx", REQ1), ("rx", ANS1b)))
    assert cas.leading == [b"hello"]
    assert cas.feed(REQ2) == [ANS2]                 # REQ1 not made yet: it stays due
    assert cas.feed(REQ1) == [ANS1]
    assert cas.remaining() == 1 and not cas.exhausted()
    assert cas.feed(REQ1) == [ANS1b] and cas.exhausted()
    assert cas.feed(REQ2) == [] and cas.unanswered == 1      # made once more than recorded: silent
    assert not cas.mismatches


def test_a_request_recorded_without_answer_stays_silent_then_the_retry_is_answered():
    """A silence of 3.5 characters ends a request: the retry after a timeout is another."""
    cas = Cassette(_events(("tx", REQ1), ("tx", REQ1), ("rx", ANS1)))
    assert len(cas.exchanges) == 2
    assert cas.feed(REQ1) == []                     # the first attempt: nothing was heard
    assert cas.feed(REQ1) == [ANS1] and cas.exhausted() and cas.unanswered == 0


def test_bytes_that_begin_no_recorded_request_are_a_mismatch():
    cas = Cassette(_events(("tx", REQ1), ("rx", ANS1)))
    assert cas.feed(b"\x09\x09\x09\x09\x09\x09\x09\x09") == []
    assert cas.mismatches and "no recorded request (next recorded: 01 03 00 00" in cas.mismatches[0]
    assert cas.feed(REQ1[:5]) == []                 # a request still arriving
    assert cas.feed(REQ1[5:]) == [ANS1]
    cas.feed(b"\x01\x02\x05")
    assert "(next recorded: none)" in cas.mismatches[-1]


def test_after_stray_bytes_the_cassette_resynchronises_on_the_next_request():
    cas = Cassette(_events(("tx", REQ1), ("rx", ANS1), ("tx", REQ2), ("rx", ANS2)))
    assert cas.feed(b"\x09\x09\x09" + REQ1 + b"\x07" + REQ2) == [ANS1, ANS2]
    assert [m.split(" is")[0] for m in cas.mismatches] == ["09 09 09", "07"]
    assert cas.exhausted()


def test_a_request_split_over_several_tx_events_is_one_request():
    """Pieces that follow each other on the line (less than 3.5 characters of silence)."""
    ch = {"baud": 1200, "bits": 8, "parity": "N"}    # a character: 10/1200 s
    pieces = [{"t": 0.0, "ch": "mb", "dir": "tx", "hex": REQ1[:2].hex()},
              {"t": 2 * 10 / 1200 + 0.02, "ch": "mb", "dir": "tx", "hex": REQ1[2:].hex()},
              {"t": 0.5, "ch": "mb", "dir": "rx", "hex": ANS1.hex()}]
    cas = Cassette(pieces, ch)
    assert len(cas.exchanges) == 1 and cas.feed(REQ1) == [ANS1]
    pieces[1]["t"] = 2 * 10 / 1200 + 0.04           # 4.8 characters of silence: two requests
    assert len(Cassette(pieces, ch).exchanges) == 2


def test_feeder_serves_a_request_response_channel_over_tcp():
    """A fake master talks to the feeder; it answers before the timeline opens (the
    gateway polls its meters from boot, before it is online)."""
    ch = recording.serial_channel(baud=9600, bits=8, parity="N", protocol="modbus-rtu", reactive=True)
    events = _events(("tx", REQ1), ("rx", ANS1), ("tx", REQ2), ("rx", ANS2))
    # answers are recorded long after their request: the feeder must not wait for that
    events[1]["t"] = events[3]["t"] = 50.0
    clock = Clock(speed=1.0, start=0.0)
    feeder = Feeder("mb", ch, events, TcpEndpoint(), clock).start()
    try:
        s = socket.create_connection(("127.0.0.1", feeder.port), timeout=5)
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


def test_a_reactive_feeder_gives_up_when_the_gateway_stops_asking():
    """Recorded requests the gateway never makes: the channel ends after idle_s without a
    recorded request (the replay then reports them) instead of waiting forever."""
    ch = recording.serial_channel(baud=9600, bits=8, parity="N", protocol="modbus-rtu", reactive=True)
    feeder = Feeder("mb", ch, _events(("tx", REQ1), ("rx", ANS1), ("tx", REQ2), ("rx", ANS2)),
                    TcpEndpoint(), Clock(), idle_s=0.3).start()
    try:
        with socket.create_connection(("127.0.0.1", feeder.port), timeout=5) as s:
            s.sendall(REQ1)
            buf = b""
            while len(buf) < len(ANS1):
                buf += s.recv(64)
            assert buf == ANS1
            t0 = time.monotonic()
            assert feeder.done.wait(5)
            assert 0.2 < time.monotonic() - t0 < 3
        assert feeder.cassette.remaining() == 1 and feeder.error is None
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
