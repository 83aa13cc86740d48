"""CPython vs the MicroPython unix port: identical decoding of every capture,
of the real error fragments and of generated damaged streams (one persistent
micropython worker for the whole session, see conftest.mp_worker)."""

import pytest
from hypothesis import given, strategies as st

from protocols.tic import AUTO, HISTORIC, STANDARD, TicDecoder

from tests.protocols.tic_helpers import capture_files, load_fragments, read_capture, tic_reference
from passerelle.strategies.tic import streams


@pytest.mark.parametrize("name", capture_files())
def test_captures_identical_on_micropython(mp_worker, captures_dir, name):
    data = read_capture(captures_dir, name)
    for mode in (AUTO, HISTORIC, STANDARD):
        for chunk in ((0, 1, 7, 64) if mode == AUTO else (0,)):
            expect = tic_reference(mode, chunk, data)
            assert mp_worker.run(mode, chunk, data) == expect, (mode, chunk)


def test_fragments_identical_on_micropython(mp_worker, captures_dir):
    for frag in load_fragments(captures_dir):
        for data in (b"\n" + frag["bytes"] + b"\r", b"\x02\n" + frag["bytes"] + b"\r\x03"):
            assert mp_worker.run(AUTO, 0, data) == tic_reference(AUTO, 0, data)


def test_non_ascii_bytes_identical_on_micropython(mp_worker):
    # valid UTF-8 (MicroPython decodes it) and invalid UTF-8 (CPython and
    # MicroPython both raise) inside data whose checksum happens to be right
    for body in (b"OPTARIF BA\xc3\xa9", b"OPTARIF BAS\xff", b"NGTF\t\xc3\xa9AB\t", b"\xc3\xa9DCO 0123"):
        ck = bytes([(sum(body if body[-1:] == b"\t" else body) & 0x3F) + 0x20])
        data = b"\x02\n" + body + (b"" if body[-1:] == b"\t" else b" ") + ck + b"\r\x03"
        assert mp_worker.run(AUTO, 0, data) == tic_reference(AUTO, 0, data)


@pytest.mark.timeout(1800)   # the fuzz profile runs 20000 examples
@given(streams(), st.sampled_from((0, 1, 5, 33)), st.sampled_from((AUTO, HISTORIC, STANDARD)))
def test_generated_streams_identical_on_micropython(mp_worker, data, chunk, mode):
    assert mp_worker.run(mode, chunk, data) == tic_reference(mode, chunk, data)


@pytest.mark.timeout(1800)   # the fuzz profile runs 20000 examples
@given(st.binary(max_size=600))
def test_random_bytes_identical_on_micropython(mp_worker, data):
    assert mp_worker.run(AUTO, 3, data) == tic_reference(AUTO, 3, data)


def test_captures_decode_in_a_small_heap(run_micropython, captures_dir):
    """All captures through one decoder in a 96 KB heap (an ESP32 has ~110 KB;
    importing from source needs ~60 KB of it), read the firmware way: readinto() a
    preallocated buffer, decode(buf,
    pos, n) without copying."""
    names = capture_files()
    code = "\n".join([
        "from protocols.tic import TicDecoder",
        "d = TicDecoder()",
        "buf = bytearray(256)",
        "mv = memoryview(buf)",
        "n = 0",
        "for name in %r:" % (names,),
        "    f = open(%r + '/' + name, 'rb')" % str(captures_dir),
        "    while True:",
        "        k = f.readinto(mv)",
        "        if not k: break",
        "        p = 0",
        "        while p < k:",
        "            u, fr = d.decode(buf, p, k)",
        "            p += u",
        "            if fr is not None: n += 1",
        "    f.close()",
        "print('frames', n, sorted(d.stats.items()))",
    ])
    r = run_micropython(code, heapsize="96K")
    assert r.returncode == 0, r.stderr
    # the files are one stream for the decoder: compare with CPython on their concatenation
    d = TicDecoder()
    data = b"".join(read_capture(captures_dir, name) for name in names)
    frames = 0
    p = 0
    while p < len(data):
        used, f = d.decode(data, p)
        p += used
        frames += f is not None
    assert r.stdout.strip() == "frames %d %r" % (frames, sorted(d.stats.items()))
