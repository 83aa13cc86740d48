"""Independent model of the decoder's tokenisation, to check that the counters
add up (written from protocols/tic/README.md, not from decoder.py)."""

from protocols.tic.decoder import GROUP_MAX

CR, STX, ETX, EOT, HT = 0x0D, 0x02, 0x03, 0x04, 0x09
ERRORS = ("checksum_errors", "label_errors", "format_errors", "mode_errors",
          "truncated", "malformed", "overflows")
FRAME_ENDS = ("frames", "frames_interrupted", "frames_unterminated", "frames_empty",
              "frames_overflow")


def segments_and_garbage(data):
    """(segments decided, garbage bytes) for the whole of ``data``.

    A segment starts after any control byte other than HT, CR, STX, ETX, EOT (and
    at the very start of the stream) and ends at the next control byte other than
    HT; a segment still open at the end of ``data`` is pending (not decided),
    unless it already exceeded GROUP_MAX bytes (an overflow, decided).  Bytes
    after CR/STX/ETX/EOT up to the next control byte, and the bytes of an
    overflowing segment beyond GROUP_MAX + 1, are garbage.
    """
    segs = garbage = 0
    state = "seg"
    n = 0
    for x in data:
        if x < 32 and x != HT:
            if state == "seg" and n:
                segs += 1
            state = "gap" if x in (CR, STX, ETX, EOT) else "seg"
            n = 0
        elif state == "seg":
            n += 1
            if n == GROUP_MAX + 1:
                segs += 1
                state = "skip"
        else:
            garbage += 1
    return segs, garbage


def check_counters(d, data):
    """The decoder ``d``'s counters after the whole of ``data`` agree with the model."""
    s = d.stats
    segs, garbage = segments_and_garbage(data)
    assert segs == s["groups"] + sum(s[k] for k in ERRORS)
    assert garbage == s["garbage_bytes"]
    assert s["bytes"] == len(data)
    assert data.count(b"\x02") == sum(s[k] for k in FRAME_ENDS) + (1 if d.in_frame else 0)
