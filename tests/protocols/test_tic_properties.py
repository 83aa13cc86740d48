"""Hypothesis properties of the TIC codec (profiles from tests/conftest.py)."""

import random

import pytest
from hypothesis import given, strategies as st

from protocols.tic import HISTORIC, STANDARD, TicDecoder, encode_frame, encode_group, labels
from protocols.tic.decoder import CACHE_MAX, FRAME_MAX_GROUPS, GROUP_MAX

from tests.protocols.tic_helpers import CAPTURES, capture_files, decode_chunks, read_capture
from tests.protocols.tic_oracle import ERRORS, check_counters
from passerelle.strategies.tic import damaged, frames, groups, streams

CAPTURE_DATA = {n: read_capture(CAPTURES, n) for n in capture_files()}


@pytest.mark.timeout(1800)   # the fuzz profile runs 20000 examples
@given(st.sampled_from(sorted(CAPTURE_DATA) or ["-"]), st.lists(st.integers(1, 97), min_size=1, max_size=12))
def test_any_chunking_of_any_capture_gives_the_same_frames(name, sizes):
    if name == "-":
        return
    data = CAPTURE_DATA[name]
    ref_d, ref = decode_chunks(data, [])
    d, got = decode_chunks(data, sizes)
    assert got == ref
    assert d.stats == ref_d.stats


@pytest.mark.timeout(1800)   # the fuzz profile runs 20000 examples
@given(streams(), st.lists(st.integers(1, 40), min_size=1, max_size=6))
def test_any_chunking_of_damaged_streams(data, sizes):
    ref_d, ref = decode_chunks(data, [])
    d, got = decode_chunks(data, sizes)
    assert got == ref and d.stats == ref_d.stats
    check_counters(d, data)


@pytest.mark.timeout(1800)   # the fuzz profile runs 20000 examples
@given(frames())
def test_encode_decode_round_trip(f):
    mode, gs, raw = f
    expect = {}
    for label, value, hd in gs:
        expect[label] = (value, hd)
    d = TicDecoder()
    used, frame = d.decode(raw, 0)
    assert used == len(raw)
    assert frame is not None and frame.mode == mode and frame.invalid == 0
    assert labels.pairs(frame.groups) == expect
    assert d.stats["groups"] == len(gs)
    d2 = TicDecoder(mode)       # fixed mode decodes it the same way
    assert labels.pairs(d2.decode(raw, 0)[1].groups) == expect


@pytest.mark.timeout(1800)   # the fuzz profile runs 20000 examples
@given(st.sampled_from((HISTORIC, STANDARD)).flatmap(lambda m: st.tuples(st.just(m), groups(m))))
def test_group_round_trip_and_checksum_rule(mg):
    mode, (label, value, hd) = mg
    g = encode_group(label, value, mode, hd)
    assert g[:1] == b"\n" and g[-1:] == b"\r"
    body = g[1:-1]
    # the rule is chosen by the separator: historic excludes the final SP, standard includes the final HT
    zone = body[:-2] if mode == HISTORIC else body[:-1]
    assert body[-1] == (sum(zone) & 0x3F) + 0x20
    assert labels.check(label, value, hd, mode)
    d = TicDecoder()
    used, frame = d.decode(b"\x02" + g + b"\x03", 0)
    assert labels.pairs(frame.groups) == {label: (value, hd)}


@pytest.mark.timeout(1800)   # the fuzz profile runs 20000 examples
@given(frames(), st.integers(0, 10 ** 6))
def test_single_bit_drop_never_changes_an_accepted_value_silently(f, seed):
    """One 1->0 bit drop anywhere: every group still returned is one that was sent."""
    mode, gs, raw = f
    rnd = random.Random(seed)
    b = bytearray(raw)
    i = rnd.randrange(len(b))
    b[i] &= ~(1 << rnd.randrange(7)) & 0xFF
    sent = {}
    for label, value, hd in gs:
        sent.setdefault(label, set()).add((value, hd))
    d, got = decode_chunks(bytes(b), [])
    for _, gr, _ in got:
        for label, vh in gr.items():
            if vh not in sent.get(label, ()):
                # 1/64 checksum + whitelist + format false accepts exist in theory; the
                # changed value must at least be well-formed for its label
                assert labels.check(label, vh[0], vh[1], mode)


@pytest.mark.timeout(1800)   # the fuzz profile runs 20000 examples
@given(st.binary(min_size=0, max_size=3000), st.sampled_from(sorted(CAPTURE_DATA) or ["-"]))
def test_garbage_prefix_then_resync(garbage, name):
    if name == "-":
        return
    data = CAPTURE_DATA[name]
    _, ref = decode_chunks(data, [])
    _, got = decode_chunks(garbage + data, [64])
    # the capture's frames come out unchanged; at most one extra frame, made of a
    # garbage STX and the capture's leading partial frame
    assert got[len(got) - len(ref):] == ref
    assert len(got) - len(ref) in (0, 1)


@pytest.mark.timeout(1800)   # the fuzz profile runs 20000 examples
@given(damaged(b"".join(encode_frame([("ADCO", "021861348497"), ("PAPP", "%05d" % i)], HISTORIC)
                        for i in range(5))))
def test_counters_add_up(data):
    d, frames_ = decode_chunks(data, [7])
    check_counters(d, data)
    assert sum(f[2] for f in frames_) <= sum(d.stats[k] for k in ERRORS)


def test_buffers_bounded_under_endless_garbage():
    rnd = random.Random(1)
    d = TicDecoder()
    glen0 = len(d._g)
    for _ in range(300):
        chunk = bytes(rnd.getrandbits(8) for _ in range(4096))
        p = 0
        while p < len(chunk):
            used, f = d.decode(chunk, p)
            p += used
        assert len(d._g) == glen0 and d._glen <= GROUP_MAX
        assert len(d.frame.groups) <= len(labels.NAMES)
        assert len(d._rb) <= CACHE_MAX and d._top <= len(d._rb)
        assert len(d._rl) == len(d._fs) == len(d._ro) == len(labels.NAMES)
    # no control byte at all for a long time: overflow, then skipped as garbage
    d = TicDecoder()
    d.decode(b"\n" + b"A" * 100000, 0)
    assert d.stats["overflows"] == 1 and d.stats["garbage_bytes"] == 100000 - GROUP_MAX - 1
    assert d._glen <= GROUP_MAX


def test_frame_without_etx_is_bounded():
    d = TicDecoder()
    g = encode_group("PAPP", "00380", HISTORIC)
    d.decode(b"\x02", 0)
    for _ in range(FRAME_MAX_GROUPS + 10):
        d.decode(g, 0)
    assert d.stats["frames_overflow"] == 1 and not d.in_frame
    assert len(d.frame.groups) == 1 and d._nk <= FRAME_MAX_GROUPS + 1
    used, f = d.decode(b"\x03", 0)
    assert f is None
    # too many bytes between STX and ETX
    d = TicDecoder()
    d.decode(b"\x02" + g + b"X" * 4000 + b"\r\x03", 0)
    assert d.stats["frames_overflow"] == 1 and d.stats["frames"] == 0


@pytest.mark.timeout(1800)   # the fuzz profile runs 20000 examples
@given(st.integers(0, 9), st.integers(1, 9))
def test_frame_overflow_is_chunking_invariant(bad, chunk):
    # 162 segments (bad of them rejected): the frame overflows whatever the path
    # (cached groups in one buffer, or groups split across 1-byte chunks)
    good = encode_group("PAPP", "00380", HISTORIC)
    data = (encode_frame([("ADCO", "021861348497")], HISTORIC)          # warm the cache
            + b"\x02" + good * (FRAME_MAX_GROUPS - 10) + b"\nPAPP 00380 X\r" * bad
            + good * (12 - bad) + b"\x03")
    ref_d, ref = decode_chunks(data, [])
    d, got = decode_chunks(data, [chunk])
    assert got == ref and d.stats == ref_d.stats
    assert ref_d.stats["frames_overflow"] == 1 and len(ref) == 1


def test_decode_returns_at_each_etx():
    f1 = encode_frame([("ADCO", "021861348497"), ("PAPP", "00380")], HISTORIC)
    f2 = encode_frame([("ADSC", "041776199277"), ("VTIC", "02")], STANDARD)
    buf = b"junk" + f1 + f2 + b"\x02\nPA"
    d = TicDecoder()
    used, f = d.decode(buf, 0)
    assert used == 4 + len(f1) and f.mode == HISTORIC and set(f.groups) == {"ADCO", "PAPP"}
    used2, f = d.decode(buf, used)
    assert used2 == len(f2) and f.mode == STANDARD and d.mode == STANDARD
    assert labels.pairs(f.groups) == {"ADSC": ("041776199277", None), "VTIC": ("02", None)}
    used3, f = d.decode(buf, used + used2)
    assert (used3, f) == (4, None) and d.in_frame
    assert d.decode(buf, len(buf)) == (0, None)


def test_mode_switch_inside_a_frame_is_rejected():
    h = encode_group("PAPP", "00380", HISTORIC)
    s = encode_group("VTIC", "02", STANDARD)
    d = TicDecoder()
    used, f = d.decode(b"\x02" + h + s + b"\x03", 0)
    assert f.mode == HISTORIC and list(f.groups) == ["PAPP"] and f.invalid == 1
    assert d.stats["mode_errors"] == 1
    used, f = d.decode(b"\x02" + s + h + b"\x03", 0)    # the next frame may be standard
    assert f.mode == STANDARD and list(f.groups) == ["VTIC"]


def test_reset_forgets_partial_state():
    d = TicDecoder()
    d.decode(b"\x02\nADCO 0218613", 0)
    d.reset()
    assert d.stats["bytes"] == 0 and not d.in_frame
    used, f = d.decode(encode_frame([("PAPP", "00380")], HISTORIC), 0)
    assert labels.pairs(f.groups) == {"PAPP": ("00380", None)}
