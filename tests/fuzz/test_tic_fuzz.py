"""TIC decoder and TICMeter under the faults of a real line (passerelle.strategies.tic).

The decoder's own properties (round trip, any chunking of captures, counters against
tests/protocols/tic_oracle.py) are in tests/protocols/test_tic_properties.py; here:
realistic faults, what a fault may and may not change, the real error fragments, and
what reaches MQTT (TICMeter.values) from a noisy line over advancing indexes."""

import random

import pytest
from hypothesis import example, given, strategies as st

from gw.drivers.tic_meter import TICMeter
from protocols.errors import UsageError
from protocols.tic import AUTO, HISTORIC, STANDARD, TicDecoder, encode_frame, labels
from protocols.tic.decoder import CACHE_MAX, GROUP_MAX

from passerelle.strategies.tic import (FAULTS, LINE_FAULTS, frames, meter_streams, mutated,
                                       streams)
from tests.fuzz.fuzzutil import budget, fragments
from tests.protocols.tic_helpers import decode_chunks
from tests.protocols.tic_oracle import ERRORS, check_counters

MODES = (AUTO, HISTORIC, STANDARD)


def bounded(d):
    assert len(d._g) == GROUP_MAX + 2 and d._glen <= GROUP_MAX
    assert len(d.frame.groups) <= len(labels.NAMES)
    assert len(d._rb) <= CACHE_MAX and d._top <= len(d._rb)


@budget(150, fuzz=10000)
@given(st.lists(frames(max_groups=10), min_size=1, max_size=4).flatmap(
    lambda fs: mutated(b"".join(f[2] for f in fs), LINE_FAULTS, 0, 5)),
    st.lists(st.integers(1, 64), min_size=1, max_size=6), st.sampled_from(MODES))
def test_line_faults_any_chunking_same_result_and_counters_add_up(data, sizes, mode):
    ref_d, ref = decode_chunks(data, (), mode)
    d, got = decode_chunks(data, sizes, mode)
    assert got == ref and d.stats == ref_d.stats
    check_counters(d, data)
    bounded(d)
    assert sum(f[2] for f in got) <= sum(d.stats[k] for k in ERRORS)


def _sent(gs):
    sent = {}
    for label, value, hd in gs:
        sent.setdefault(label, set()).add((value, hd))
    return sent


def _one_bit6_drop(a, b):
    """b is a with exactly one character whose bit 6 was dropped (0x60..0x7E -> 0x20..0x3E):
    a 1->0 drop that a 6-bit checksum cannot see."""
    if a is None or b is None or len(a) != len(b):
        return a == b
    diff = [(x, y) for x, y in zip(a, b) if x != y]
    return len(diff) == 1 and ord(diff[0][0]) & 0x40 and ord(diff[0][0]) & ~0x40 == ord(diff[0][1])


@budget(200)
@given(frames(max_groups=12), st.data())
def test_one_bit_drop_changes_a_value_only_where_the_checksum_is_blind(f, data):
    """One 1->0 bit drop anywhere in a frame: every value returned was sent, except a
    text character in 0x60..0x7E that lost bit 6 (the checksum is mod 64); never an
    index, a number, a code or a hex field."""
    mode, gs, raw = f
    bad = data.draw(mutated(raw, ("bit_drop",), 1, 1))
    sent = _sent(gs)
    _, got = decode_chunks(bad)
    for _, groups, _ in got:
        for label, (value, hd) in groups.items():
            if (value, hd) in sent.get(label, ()):
                continue
            assert any(_one_bit6_drop(v, value) and _one_bit6_drop(h, hd)
                       for v, h in sent.get(label, ())), (label, value, hd, bad.faults)
            info = labels.info(label)
            assert not info[3], "a numeric field changed silently: %r" % ((label, value),)


@budget(100)
@given(st.binary(max_size=300), st.integers(-5, 310), st.integers(-5, 310))
def test_only_documented_errors(data, start, end):
    """decode(buf, start, end): wire data never raises; bad offsets raise UsageError."""
    d = TicDecoder()
    try:
        used, f = d.decode(data, start, end)
    except UsageError:
        assert not (0 <= start <= end <= len(data))
        return
    except Exception as e:      # noqa: BLE001 - the point of the test
        raise AssertionError("undocumented exception %r" % (e,))
    assert 0 <= start <= end <= len(data) and 0 <= used <= end - start


@pytest.mark.parametrize("mode", MODES)
def test_buffers_bounded_under_endless_faulty_garbage(mode):
    """A long run of damaged frames and binary garbage: nothing grows."""
    rnd = random.Random(mode)
    d = TicDecoder(mode)
    good = [encode_frame([("ADCO", "021861348497"), ("PAPP", "%05d" % i), ("BASE", "%09d" % i)],
                         HISTORIC) for i in range(20)]
    for n in range(400):
        b = bytearray(rnd.choice(good) if n % 3 else bytes(rnd.getrandbits(8) for _ in range(700)))
        for _ in range(rnd.randrange(4)):
            i = rnd.randrange(len(b))
            b[i] &= ~(1 << rnd.randrange(7)) & 0xFF
        decode_chunks(bytes(b), (rnd.randrange(1, 90),), d=d)
        bounded(d)


# --- the real error fragments (../shared/captures/tic/error_fragments.py) -------------


def _frame_with(frag, mode):
    """A valid frame of the fragment's mode, then the fragment in place of a group."""
    if mode == HISTORIC:
        a = [("ADCO", "021861348497"), ("OPTARIF", "HC..")]
        b = [("PAPP", "00380"), ("MOTDETAT", "000000")]
    else:
        a = [("ADSC", "041776199277"), ("VTIC", "02")]
        b = [("SINSTS", "00380"), ("STGE", "003A0001")]
    return encode_frame(a, mode)[:-1] + b"\n" + frag + b"\r" + encode_frame(b, mode)[1:]


@budget(60, fuzz=2000)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=4))
def test_real_fragments_never_published(sizes):
    """Each real corrupted fragment inside a valid frame, any chunking: the frame's
    valid groups come out, the fragment's corrupted groups never do (the LF-merged
    fragments hold two intact groups, which are recovered)."""
    for frag in fragments():
        mode = HISTORIC if frag["mode"] == "historic" else STANDARD
        data = _frame_with(frag["bytes"], mode)
        _, got = decode_chunks(data, sizes)
        _, whole = decode_chunks(data)
        assert got == whole
        published = {}
        for _, g, _ in got:
            published.update(g)
        merged = frag["kind"].startswith("LF corrupted")
        around = [("PAPP", "00380"), ("MOTDETAT", "000000")] if mode == HISTORIC else \
            [("SINSTS", "00380"), ("STGE", "003A0001")]
        if b"\x04" not in frag["bytes"]:       # an EOT drops the groups before it
            around += [("ADCO", "021861348497"), ("OPTARIF", "HC..")] if mode == HISTORIC else \
                [("ADSC", "041776199277"), ("VTIC", "02")]
        for label, value in around:             # the frame's intact groups come out
            assert published.get(label) == (value, None), (frag, label, published)
        for label, (value, hd) in published.items():
            if label in ("ADCO", "OPTARIF", "PAPP", "MOTDETAT", "ADSC", "VTIC", "SINSTS", "STGE"):
                continue
            # any other label comes from the fragment: only intact merged groups
            assert merged, (frag, label, value)
            assert (label + ("\t" if mode == STANDARD else " ") + value).encode() in frag["bytes"]


# --- what reaches MQTT: TICMeter.values from a noisy line -----------------------------


# the differential worker's stand-in clock and log, so both sides drive TICMeter alike
from passerelle.mpeval import Clock, NullLog  # noqa: E402


def _meter_value(label, value, hd):
    if label == "DATE":
        return hd.strip() if hd else None
    info = labels.info(label)
    v = value.strip()
    if info is not None and info[3]:
        return int(v) if v.isdigit() else None
    return v.rstrip(".") if label in ("PTEC", "OPTARIF") else v


@budget(60, fuzz=3000)
@given(meter_streams(), st.data())
def test_no_corrupted_energy_index_reaches_mqtt(ms, data):
    """A simulated Linky's frames over advancing indexes, each frame hit by 0..3 line
    faults, fed in random chunks to TICMeter: every energy index it ever publishes
    is one the meter sent, never zero, never lower than one published before; with
    at most one fault per frame (no bit-6 drop), every published value was sent."""
    hal = Clock()
    m = TICMeter({"id": "linky", "mode": "auto"}, hal, NullLog())
    dec = m._decoder
    sent = {}
    last = {}
    single = True
    for t, raw, gs in ms.frames:
        for label, value, hd in gs:
            sent.setdefault(label, set()).add(_meter_value(label, value, hd))
        bad = data.draw(mutated(raw, LINE_FAULTS, 0, 3), label="frame at %.1f s" % t)
        if len(bad.faults) > 1 or any(f[0] in ("bit_drop",) and f[2] == 6 for f in bad.faults):
            single = False
        hal.now = int(t * 1000)
        step = data.draw(st.integers(1, 300), label="chunk")
        for i in range(0, len(bad), step):
            buf = bad[i:i + step]
            p = 0
            while p < len(buf):
                used, f = dec.decode(buf, p)
                p += used
                if f is not None:
                    m.apply(f, hal.now)
                    for label, v in m.values.items():
                        info = labels.info(label)
                        if info is not None and info[0] == "energy":
                            assert v in sent[label], (label, v, ms)
                            assert v > 0 and v >= last.get(label, 0), (label, v, last, ms)
                            last[label] = v
                        elif single and info is not None:
                            assert v in sent[label], (label, v, bad.faults, ms)
    assert m.stats["frames"] == dec.stats["frames"]     # every frame decoded was applied


@budget(40)
@given(streams().flatmap(lambda s: mutated(s, FAULTS, 0, 4)))
def test_reset_then_clean_frame_decodes(data):
    """Whatever state garbage left the decoder in, reset() then a clean frame decodes
    exactly (a baud-rate switch in the meter driver does that)."""
    d, _ = decode_chunks(data)
    d.reset()
    f = encode_frame([("ADCO", "021861348497"), ("PAPP", "00380")], HISTORIC)
    _, got = decode_chunks(f, d=d)
    assert got == [(HISTORIC, {"ADCO": ("021861348497", None), "PAPP": ("00380", None)}, 0)]
