"""The whole-frame path (protocols/tic/frames.py, CPython only) is an exact shortcut of
the decoder's main loop: a decoder with it and one without it (``_fp = None``, what
MicroPython runs) fed the same bytes return the same frames and end in the same state
(counters, predictions, reuse cache), on frames that change a little from one to the
next (what the path is for) and on everything that makes it hand over to the main loop.
The differential tests (tests/fuzz/test_differential.py, test_tic_micropython.py)
compare the same two code paths across interpreters."""

import random

from hypothesis import given, strategies as st

from protocols.tic import AUTO, HISTORIC, STANDARD, TicDecoder, encode_group
from protocols.tic.decoder import FRAME_MAX_GROUPS
from protocols.tic.labels import NAMES

from passerelle.strategies.tic import LINE_FAULTS, meter_streams, mutated
from tests.fuzz.fuzzutil import budget
from tests.protocols.test_tic_cache import _frame


def _state(d):
    """Everything of a decoder that decides what it does next (the frame tags, which
    the path may write late, only through nseen and the dropped labels)."""
    cache = {NAMES[i]: bytes(d._rb[d._ro[i]:d._ro[i] + d._rl[i]]) for i in range(len(NAMES))
             if d._rl[i]}
    return (d.stats, d.in_frame, d.mode, dict(d.frame.groups), d.frame.invalid, cache,
            bytes(d._nx), d._pred, d._prev, d._nk, d._nseen, d._fmode, d._st, d._glen,
            bytes(d._g[:d._glen]))


def _same(bufs, cfg=AUTO):
    """Feed both decoders every buffer (all of it, decode() after decode()); compare."""
    fast = TicDecoder(cfg)
    slow = TicDecoder(cfg)
    slow._fp = None
    assert fast._fp is not None
    for buf in bufs:
        p = 0
        while p < len(buf):
            a = fast.decode(buf, p)
            b = slow.decode(buf, p)
            assert a[0] == b[0]
            assert (a[1] is None) == (b[1] is None)
            if a[1] is not None:
                assert (a[1].mode, a[1].groups, a[1].invalid) == (b[1].mode, b[1].groups, b[1].invalid)
            assert _state(fast) == _state(slow)
            p += a[0]
    return fast


def _grp(label, value, mode=HISTORIC, hd=None):
    return encode_group(label, value, mode, hd)


def _raw(body):
    """A historic group with a right checksum whatever its data (no validation)."""
    return b"\n" + body + b" " + bytes([(sum(body) & 0x3F) + 0x20]) + b"\r"


def _hframe(papp="02970", iinst="013", extra=b"", base="005717270"):
    return (b"\x02" + _grp("ADCO", "022261304533") + _grp("OPTARIF", "BASE")
            + _grp("ISOUSC", "45") + _grp("BASE", base) + _grp("PTEC", "TH..")
            + _grp("IINST", iinst) + extra + _grp("IMAX", "090") + _grp("PAPP", papp)
            + _grp("MOTDETAT", "000000") + b"\x03")


def test_path_is_taken_and_exact_on_evolving_frames():
    rnd = random.Random(11)
    frames = [_hframe(papp="%05d" % rnd.randint(0, 12000), iinst="%03d" % rnd.randint(0, 60))
              for _ in range(50)]
    d = _same(frames)
    _same([b"".join(frames)])
    assert d._fp.exp is not None        # the path trusts the last frame
    assert d.stats["frames"] == 50


def test_random_evolving_frames_any_cut():
    """test_tic_cache's generator: changed values and lengths, dropped, added and
    duplicated labels, corrupted copies, both modes, then buffers of 1 to 3 frames
    cut anywhere."""
    rnd = random.Random(5)
    for cfg in (AUTO, HISTORIC, STANDARD):
        prev = {HISTORIC: None, STANDARD: None}
        data = []
        for _ in range(300):
            mode = cfg or (rnd.choice((HISTORIC, STANDARD)) if rnd.random() < 0.1 else HISTORIC)
            gs, _, raw = _frame(rnd, mode, prev[mode])
            prev[mode] = gs
            data.append(raw)
        bufs = []
        i = 0
        while i < len(data):
            k = rnd.randint(1, 3)
            b = b"".join(data[i:i + k])
            i += k
            if rnd.random() < 0.3:
                c = rnd.randint(0, len(b))
                bufs += [b[:c], b[c:]]
            else:
                bufs.append(b)
        _same(bufs, cfg)


def test_hand_over_cases():
    """What the path does not take itself: the main loop decodes it."""
    base = _hframe()
    cases = [
        _hframe(extra=b"XY"),                               # bytes between CR and LF
        _hframe(iinst="013").replace(b"\r\n", b"\rZ\n", 1),  # junk after a cached group
        _hframe(extra=_grp("IINST", "014")),                # a duplicate label
        _hframe(base="05717270"),                           # a new length (format error)
        _hframe(papp="2970"),                               # idem
        _hframe().replace(b"PAPP", b"PAPX"),                # bad checksum
        _hframe(papp="02971").replace(b"02971 4", b"02971 5"),   # idem, same label
        _hframe().replace(_grp("PAPP", "02970"), _raw(b"PAPP 0297A")),    # format
        _hframe().replace(_grp("PAPP", "02970"), _raw(b"PAPP 0297\xe9")),  # not ASCII
        _hframe().replace(_grp("OPTARIF", "BASE"), _raw(b"OPTARIF BA\xc3\xa9")),
        _hframe().replace(_grp("OPTARIF", "BASE"), _raw(b"OPTARIF BA\tE")),
        _hframe().replace(_grp("PAPP", "02970"), _raw(b"PAPP\t02970")),   # other separator
        _hframe().replace(_grp("PTEC", "TH.."), _grp("PTEC", "HC..")),
        _hframe().replace(_grp("PTEC", "TH.."), _grp("HHPHC", "A")),   # another label
        _hframe().replace(_grp("PTEC", "TH.."), _grp("ADSC", "012345678901", STANDARD)),
        _hframe()[:60] + b"\x04" + _hframe(),               # EOT, then a frame
        _hframe()[:60] + _hframe(),                         # STX inside a frame
        _hframe().replace(b"\r\n", b"\n"),                  # cooked tty (CR -> LF)
        _hframe().replace(b"\r", b"\r\r"),                  # CRLF-normalised
        _hframe().replace(b"\x02\n", b"\x02\r\n"),
        _hframe().replace(b"\r\n", b"\r\x0b", 2),           # LF received as 0x0B
        b"\x02\x03", b"\x02\n\x03",
        _hframe().replace(b"\r\x03", b"\r\n\x03"),
        _hframe().replace(b"\r\x03", b"\x03"),              # last group truncated
        b"\x02" + _grp("HHPHC", "A") + b"\x04" + base,      # a label left by an EOT frame
        b"\x02" + _grp("HHPHC", "A") + b"\x02" + base,      # ... by an unterminated one
        base[:-1] + _grp("HHPHC", "A") + b"\x04",            # ... after the same groups
    ]
    for c in cases:
        _same([base, base, c, base, c, c, base, base])
        _same([base + base + c + base + c + base])
    for cfg in (HISTORIC, STANDARD):
        _same([base, base, base], cfg)


def test_frame_tags_wrap():
    # 255 frame tags, then they start again: labels left by interrupted frames
    # (EOT) are dropped at the next ETX whatever the tag
    rnd = random.Random(3)
    bufs = []
    for i in range(700):
        f = _hframe(papp="%05d" % rnd.randint(0, 99999))
        if rnd.random() < 0.05:
            f = b"\x02" + _grp("HHPHC", "A") + b"\x04" + f
        bufs.append(f)
    _same(bufs)


def test_frame_group_limit():
    many = b"".join(_grp("PAPP", "%05d" % i) for i in range(FRAME_MAX_GROUPS + 5))
    for n in (FRAME_MAX_GROUPS - 2, FRAME_MAX_GROUPS, FRAME_MAX_GROUPS + 5):
        f = b"\x02" + many[:n * len(_grp("PAPP", "00000"))] + b"\x03"
        _same([f, f, f, _hframe(), f])


@budget(60)
@given(meter_streams(max_frames=12), st.data())
def test_simulated_meter_with_line_faults(ms, data):
    raws = []
    for _, raw, _ in ms.frames:
        raws.append(data.draw(mutated(raw, LINE_FAULTS, 0, 2)) if data.draw(st.booleans()) else raw)
    _same(raws, AUTO)
    _same([b"".join(raws)], ms.mode)


def test_empty_piece_where_a_label_has_no_cached_bytes():
    """A label accepted on a lost CR has no cached bytes (its length is 0); an empty
    piece (two LFs in a row) predicted there matched them, and the path indexed past
    its end (IndexError from decode(): `passerelle tic decode` of a noisy simulated
    stream, seed 14 below; seen 10 times in 300 random noisy streams)."""
    from passerelle.sim.linky import LinkySim
    lost_cr = _grp("PAPP", "01090").replace(b"\r", b"")
    f1 = b"\x02" + _grp("ADCO", "021861348497") + lost_cr + _grp("IINST", "005") + b"\x03"
    f2 = b"\x02" + _grp("ADCO", "021861348497") + b"\n" + _grp("IINST", "005") + b"\x03"
    _same([f1, f1, f2, f2, f1, f2])
    _same([f1 + f1 + f2 + f2 + f1 + f2])
    sim = LinkySim(mode="historic", phases=1, tariff="tempo", seed=7, noise=0.05, accel=60)
    raw = b"".join(r for _, r in sim.stream(frames=400))
    _same([raw])
    _same([raw[i:i + 700] for i in range(0, len(raw), 700)])


def test_micropython_runs_the_main_loop_only(run_micropython):
    """The path costs RAM (a bytes object per group): MicroPython never imports it, and
    a decoder there has no ``_fp`` attribute at all (an attribute more would cost a
    larger instance map); so the differential tests compare it with the main loop."""
    code = ("import sys\nfrom protocols.tic import TicDecoder\nd = TicDecoder()\n"
            "f = %r\nd.decode(f)\nprint(d.decode(f)[1] is not None, hasattr(d, '_fp'),"
            " 'protocols.tic.frames' in sys.modules)" % _hframe())
    r = run_micropython(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False", "False"]


def test_etx_search_is_bounded():
    """A buffer without ETX (a cooked-tty capture: CR -> LF, ETX swallowed) must not be
    scanned to its end at every STX (quadratic: a 13 MB capture took 20 s instead of
    5 s): the path looks for the ETX within FRAME_MAX_BYTES only (a longer frame is
    dropped at its ETX anyway)."""
    from protocols.tic.decoder import FRAME_MAX_BYTES
    spans = []

    class Buf(bytes):
        def find(self, sub, start=0, end=None):
            if sub == b"\x03":
                spans.append((end if end is not None else len(self)) - start)
            return bytes.find(self, sub, start, end)

    cooked = _hframe().replace(b"\r\n", b"\n\n").replace(b"\x03", b"") * 200
    data = Buf(cooked)
    fast = TicDecoder()
    p = 0
    while p < len(data):
        p += fast.decode(data, p)[0]
    assert spans and max(spans) <= FRAME_MAX_BYTES
    _same([cooked])
