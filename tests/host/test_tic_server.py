"""TicServer: the meter end of the emulated UART, paced at the line rate x speed."""

import socket
import time

import pytest

from passerelle.tic_server import TicServer, capture_stream


def _counting_stream(n=100000, size=100):
    t = 0.0
    for i in range(n):
        data = bytes([0x30 + i % 10]) * size
        yield t, data
        t += size / 120.0


def _read_for(sock, seconds):
    sock.settimeout(0.2)
    got = bytearray()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            d = sock.recv(4096)
        except socket.timeout:
            continue
        if not d:
            break
        got += d
    return bytes(got)


@pytest.mark.parametrize("speed", [1.0, 4.0])
def test_paced_at_line_rate_times_speed(speed):
    with TicServer(_counting_stream(), rate=120.0, speed=speed) as srv:
        assert srv.host == "127.0.0.1"
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            got = _read_for(s, 2.0)
    expected = 120.0 * speed * 2.0
    assert 0.7 * expected <= len(got) <= 1.2 * expected + 40, (len(got), expected)


def test_stream_continues_across_reconnections():
    with TicServer(_counting_stream(size=10), rate=960.0, speed=5.0) as srv:
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            first = _read_for(s, 0.5)
        time.sleep(0.3)
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            second = _read_for(s, 0.5)
        assert first and second
        assert srv.stats["connections"] >= 2
    # the second connection picks up the stream, it does not restart it
    assert second[:10] != b"0" * 10 or first[:10] != second[:10]


def test_new_client_replaces_a_stalled_one():
    with TicServer(_counting_stream(), rate=960.0, speed=10.0) as srv:
        old = socket.create_connection((srv.host, srv.port), timeout=5)
        time.sleep(0.2)
        with socket.create_connection((srv.host, srv.port), timeout=5) as new:
            got = _read_for(new, 0.5)
        old.close()
        assert len(got) > 500


def test_capture_stream_loops(tmp_path):
    f = tmp_path / "c.bin"
    f.write_bytes(b"\x02\nADCO 012345678901 E\r\x03")
    items = []
    for item in capture_stream(str(f), chunk=8):
        items.append(item)
        if len(items) == 12:
            break
    data = b"".join(d for _, d in items)
    assert data.startswith(f.read_bytes() + f.read_bytes())
    assert items[1][0] == pytest.approx(8 / 120.0)            # historic rate guessed (no HT)
    f.write_bytes(b"\x02\nVTIC\t02\tJ\r\x03")
    times = [item[0] for item, _ in zip(capture_stream(str(f), chunk=4), range(3))]
    assert times[1] == pytest.approx(4 / 960.0)                 # standard rate guessed (HT)
