"""TIC decoding on CPython: our decoder and the PyPI TIC parsers on the same frames.

    python -m passerelle.bench.tic_peers [--seconds S]

Frames come from the Linky simulator (``passerelle.sim.linky``): historic single-phase
Tempo and standard three-phase Tempo, values evolving from frame to frame.  Each parser
is driven through the lowest-level API of its package that turns raw bytes into the
frame's label -> value data with the checksums verified (what our ``TicDecoder.decode``
does), fed the way its own reading loop feeds it:

* ``passerelle``      ``protocols.tic.TicDecoder.decode(frame, 0)``, one frame per call;
* ``teleinfo``        ``teleinfo.Parser(hw).get_frame()`` over a vendor object whose
  ``read_char()`` returns the stream's characters (its serial vendors do exactly that);
* ``enedis_tic``      ``enedis_tic.link_layer.FrameFactory(raw).to_dict()`` per frame
  (what ``Link._frame`` does after ``readuntil(ETX)``);
* ``serial_teleinfo`` ``serial_teleinfo.parse_line(line)`` per line, the lines being what
  ``Client`` reads with ``readline()`` from the stream.

A parser supports a mode when it returns every group of the frame with the values the
frame carries; otherwise its figure is ``None`` and ``notes`` says why.
"""

import sys
import time

KINDS = ("historic", "standard")
PEERS = ("passerelle", "teleinfo", "enedis_tic", "serial_teleinfo")


def sample_frames(kind, count=60, seed=3):
    """``count`` consecutive simulator frames: historic 1-phase / standard 3-phase, Tempo."""
    from passerelle.sim.linky import LinkySim
    sim = LinkySim(mode=kind, phases=1 if kind == "historic" else 3, tariff="tempo",
                   seed=seed, accel=60.0)
    return [raw for _, raw in sim.stream(frames=count)]


def expected_groups(frame):
    """{label: value} of a clean frame, from our decoder (checked against the peers)."""
    from protocols.tic import TicDecoder, labels
    _, f = TicDecoder().decode(frame, 0)
    return {k: v for k, (v, _) in labels.pairs(f.groups).items()}


# ---- one adapter per parser: make(frames) -> (run_once() -> frames parsed, first result)

def _passerelle(frames):
    from protocols.tic import TicDecoder, labels
    dec = TicDecoder()

    def once():
        n = 0
        for f in frames:
            _, fr = dec.decode(f, 0)
            if fr is not None:
                n += 1
        return n

    _, first = TicDecoder().decode(frames[0], 0)
    return once, {k: v for k, (v, _) in labels.pairs(first.groups).items()}


def _teleinfo(frames):
    import logging
    import teleinfo
    from teleinfo.base_vendor import BASE_vendor
    logging.getLogger("teleinfo").setLevel(logging.CRITICAL)
    text = b"".join(frames).decode("ascii")

    class _Chars(BASE_vendor):
        def __init__(self):
            self.reset()

        def reset(self):
            self._it = iter("\x02" + text)     # Parser() syncs on a first STX

        def read_char(self):
            return next(self._it)

    hw = _Chars()

    def once():
        hw.reset()
        p = teleinfo.Parser(hw)
        n = 0
        for _ in range(len(frames)):
            if p.get_frame():
                n += 1
        return n

    hw.reset()
    first = teleinfo.Parser(hw).get_frame()
    return once, first


def _enedis_tic(frames):
    from enedis_tic.link_layer import FrameFactory
    raws = [f.decode("ascii") for f in frames]

    def once():
        n = 0
        for r in raws:
            if FrameFactory(r).to_dict():
                n += 1
        return n

    first = FrameFactory(raws[0]).to_dict()
    return once, {k: v["data"] for k, v in first.items()}


def _serial_teleinfo(frames):
    from serial_teleinfo import parse_line
    stream = b"".join(frames) + b"\x02\n"
    lines = [x + b"\n" for x in stream.split(b"\n")[1:-1]]   # Client drops the first line

    def once():
        n = 0
        for line in lines:
            if parse_line(line)[2]:
                n += 1
        return n

    first = {}
    for line in lines:
        k, v, end = parse_line(line)
        first[k] = v
        if end:
            break
    return once, first


_ADAPTERS = {"passerelle": _passerelle, "teleinfo": _teleinfo, "enedis_tic": _enedis_tic,
             "serial_teleinfo": _serial_teleinfo}


def _time(once, nframes, seconds):
    once()                                      # warm up
    best = None
    t_end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        n = once()
        dt = time.perf_counter() - t0
        if n != nframes:
            raise ValueError("parsed %d of %d frames" % (n, nframes))
        rate = n / dt
        best = rate if best is None else max(best, rate)
        if time.perf_counter() >= t_end:
            return best


def run(seconds=0.5, count=60):
    """``{"cpython_frames_per_s": {peer: {kind: fps|None}}, "ratios": {...}, "notes": {...}}``.
    Frames/s is the best of repeated passes over ``count`` frames during ``seconds``."""
    out = {p: {} for p in PEERS}
    notes = {}
    versions = {}
    for kind in KINDS:
        frames = sample_frames(kind, count)
        want = expected_groups(frames[0])
        for peer in PEERS:
            try:
                once, first = _ADAPTERS[peer](frames)
                if not first:
                    raise ValueError("returned an empty frame")
                bad = [k for k in want if first.get(k) != want[k]]
                if bad:
                    raise ValueError("%d of %d groups missing or different (e.g. %s: %r)"
                                     % (len(bad), len(want), bad[0], first.get(bad[0])))
                out[peer][kind] = round(_time(once, len(frames), seconds))
            except ImportError as e:
                out[peer][kind] = None
                notes["%s.%s" % (peer, kind)] = "not installed (pip install -e '.[bench]'): %s" % e
            except Exception as e:   # noqa: BLE001 - a parser that fails this mode does not support it
                out[peer][kind] = None
                notes["%s.%s" % (peer, kind)] = "unsupported: %s: %s" % (type(e).__name__, e)
    for peer in PEERS[1:]:
        try:
            from importlib.metadata import version
            versions[peer] = version(peer.replace("_", "-"))
        except Exception:   # noqa: BLE001
            versions[peer] = None
    ratios = {}
    for kind in KINDS:
        others = [out[p][kind] for p in PEERS[1:] if out[p][kind]]
        ratios[kind] = round(out["passerelle"][kind] / max(others), 2) if others else None
    return {"cpython_frames_per_s": out, "ratio_vs_fastest_peer": ratios, "notes": notes,
            "versions": versions, "frames": count,
            "frame_bytes": {k: len(sample_frames(k, 1)[0]) for k in KINDS}}


def main(argv=None):
    import argparse
    import json
    ap = argparse.ArgumentParser(prog="python -m passerelle.bench.tic_peers")
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args(argv)
    print(json.dumps(run(args.seconds), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
