"""The decoder's reuse cache (raw bytes per label in one bytearray, frame.groups
updated in place) must be invisible: every returned frame holds exactly its own
valid groups, whatever came before (other labels, other lengths, duplicates,
rejected groups, frames of the other mode, a cache that overflows CACHE_MAX)."""

import random

from protocols.tic import AUTO, HISTORIC, STANDARD, TicDecoder, encode_group, labels
from protocols.tic.decoder import CACHE_MAX

_CHARS = {labels.F_NUM: "0123456789", labels.F_ID: "0123456789ABCXYZabz",
          labels.F_HEX: "0123456789ABCDEF", labels.F_TEXT: " -.09AZaz~",
          labels.F_CODE: "0123456789ABJZ."}


def _value(rnd, label, mode):
    fmt, lo, hi = labels.spec(label, mode)[:3]
    if fmt == labels.F_EMPTY:
        return ""
    if fmt == labels.F_ENUM:
        return rnd.choice(labels.DEMAIN_VALUES)
    n = rnd.randint(lo, hi)
    return "".join(rnd.choice(_CHARS[fmt]) for _ in range(n))


def _group(rnd, label, mode):
    hd = None
    if labels.spec(label, mode)[3]:
        hd = rnd.choice(" EH") + "".join(rnd.choice("0123456789") for _ in range(12))
    return label, _value(rnd, label, mode), hd


def _frame(rnd, mode, previous):
    """A frame mostly like the previous one of its mode (so the cache is used),
    with changed values, dropped/added/duplicated labels and bad groups."""
    names = labels.names(mode)
    gs = list(previous) if previous and rnd.random() < 0.8 else [
        _group(rnd, lb, mode) for lb in rnd.sample(names, rnd.randint(1, len(names)))]
    out = []
    expect = {}
    parts = [b"\x02"]
    for g in gs:
        r = rnd.random()
        if r < 0.1:
            g = _group(rnd, g[0], mode)          # new value (maybe a new length)
        elif r < 0.13:
            continue                             # label dropped
        elif r < 0.16:
            out.append(_group(rnd, rnd.choice(names), mode))   # label added...
            parts.append(encode_group(out[-1][0], out[-1][1], mode, out[-1][2]))
            expect[out[-1][0]] = out[-1][1:]
        elif r < 0.18:                           # a duplicate of an earlier label
            if out:
                d = _group(rnd, rnd.choice(out)[0], mode)
                parts.append(encode_group(d[0], d[1], mode, d[2]))
                expect[d[0]] = d[1:]
        elif r < 0.2:                            # a corrupted copy (rejected)
            b = bytearray(encode_group(g[0], g[1], mode, g[2]))
            b[-2] ^= 0x01
            parts.append(bytes(b))
        out.append(g)
        parts.append(encode_group(g[0], g[1], mode, g[2]))
        expect[g[0]] = g[1:]
    parts.append(b"\x03")
    return out, expect, b"".join(parts)


def test_reuse_cache_is_invisible():
    rnd = random.Random(7)
    for cfg in (AUTO, STANDARD, HISTORIC):
        d = TicDecoder(cfg)
        prev = {HISTORIC: None, STANDARD: None}
        for _ in range(400):
            mode = cfg or rnd.choice((HISTORIC, STANDARD))
            gs, expect, data = _frame(rnd, mode, prev[mode])
            prev[mode] = gs
            cut = rnd.randint(0, len(data))      # any chunking
            used, f = d.decode(data[:cut], 0)
            if f is None:
                used2, f = d.decode(data, cut)
                assert used2 == len(data) - cut
            else:
                assert used == cut == len(data)
            if not expect:
                assert f is None
                continue
            assert f is not None and f.mode == mode
            assert labels.pairs(f.groups) == expect
            assert len(d._rb) <= CACHE_MAX
        assert d.stats["frames"] >= 300


def _widest(label, mode):
    fmt, lo, hi, hd = labels.spec(label, mode)[:4]
    v = {labels.F_EMPTY: "", labels.F_ENUM: "BLEU"}.get(fmt, _CHARS.get(fmt, "00")[1] * hi)
    return label, v, ("H230301091834" if hd else None)


def test_cache_overflow_is_bounded_and_harmless():
    # every label of both modes at its widest (530 + 1654 bytes > CACHE_MAX),
    # alternating modes (a meter switched remotely): the cache is emptied and
    # refilled, the frames are unaffected
    d = TicDecoder(AUTO)
    for i in range(6):
        for mode in (HISTORIC, STANDARD):
            gs = [_widest(lb, mode) for lb in labels.names(mode)]
            if i % 2:
                gs = gs[::-1]
            data = b"\x02" + b"".join(encode_group(g[0], g[1], mode, g[2]) for g in gs) + b"\x03"
            used, f = d.decode(data, 0)
            assert f is not None and labels.pairs(f.groups) == {g[0]: g[1:] for g in gs}
            assert len(d._rb) <= CACHE_MAX and d._top <= len(d._rb)
            assert sum(d._rl) <= CACHE_MAX
