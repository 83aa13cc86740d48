"""The real corrupted fragments of error_fragments.py, each classified."""

import pytest

from protocols.tic import TicDecoder, encode_frame, HISTORIC
from tests.protocols.tic_helpers import load_fragments


# fragment bytes -> expected non-zero counters when fed as LF + fragment + CR
EXPECTED = {
    b"ISOUSC 45 \x7f": {"checksum_errors": 1},                # 0x7F is never a checksum
    b"\xbfPTARIF HC.. <": {"checksum_errors": 1},
    b"?(TARIF HC.. <": {"checksum_errors": 1},
    b"?PTARIF HC.. <": {"checksum_errors": 1},
    b"M?\xaaDETAT 000000 B": {"checksum_errors": 1},
    b"946 ]": {"malformed": 1},                               # no SP between label and data
    b"BBRHPJW 00004": {"malformed": 1},                       # no SP before the checksum
    b"7946 ]": {"malformed": 1},
    b"BBRHPJW 000047": {"malformed": 1},
    b"ADSC\t021662096073\t8": {"checksum_errors": 1},
    b"PRM\t01658465929589\tN\x0c": {"truncated": 1},           # CR received as FF
    b"EASD01\t06476 712\tA": {"checksum_errors": 1},           # '0' received as ' '
    # HT received as BS: the group is cut there, the tail 'R' is too short
    b"SMAXSN-1\tH241202043910\t03800\x08R": {"truncated": 1, "malformed": 1},
    # LF received as 0x0E / 0x0F / 0x0B: both merged groups are recovered
    b"EASF03\t001548023\t;\r\x0eEASF04\t002860327\tA": {"groups": 2},
    b"EASF04\t002860327\tA\r\x0eEASF05\t000856392\tG": {"groups": 2},
    b"IRMS3\t004\t4\r\x0fURMS1\t235\tD": {"groups": 2},
    b"EASF03\t001548023\t;\r\x0bEASF04\t002860327\tA": {"groups": 2},
}


def nonzero(stats):
    return {k: v for k, v in stats.items() if v and k != "bytes"}


def test_every_fragment_has_an_expectation(captures_dir):
    frags = [f["bytes"] for f in load_fragments(captures_dir)]
    assert len(frags) == 19
    missing = [f for f in frags if f not in EXPECTED and b"\x04" not in f and b"NJOURF" not in f]
    assert missing == []


@pytest.mark.parametrize("frag", sorted(EXPECTED, key=repr))
def test_fragment_classification(frag):
    d = TicDecoder()
    d.decode(b"\n" + frag + b"\r", 0)
    assert nonzero(d.stats) == EXPECTED[frag]


def test_merged_profile_groups(captures_dir):
    frag = [f["bytes"] for f in load_fragments(captures_dir) if b"NJOURF" in f["bytes"]][0]
    d = TicDecoder()
    used, frame = d.decode(b"\x02\n" + frag + b"\r\x03", 0)
    assert frame is not None and frame.invalid == 0
    assert frame.groups["NJOURF+1"] == "00"
    assert frame.groups["PJOURF+1"].startswith("00004001 06004002 16004001 NONUTILE")


def test_eot_fragment_interrupts_the_frame(captures_dir):
    frag = [f["bytes"] for f in load_fragments(captures_dir) if b"\x04" in f["bytes"]][0]
    assert frag == b"HCHP 019571184 7\r\x04\x02\n"
    head = encode_frame([("ADCO", "021861348497"), ("OPTARIF", "HC..")], HISTORIC)[:-1]
    d = TicDecoder()
    data = head + b"\n" + frag
    used, frame = d.decode(data, 0)
    assert (used, frame) == (len(data), None)
    s = d.stats
    assert s["frames_interrupted"] == 1 and s["groups"] == 3 and s["frames"] == 0
    assert d.in_frame            # the STX after EOT opened a new frame
    tail = encode_frame([("ADCO", "021861348497"), ("PAPP", "00380")], HISTORIC)[1:]
    used, frame = d.decode(tail, 0)
    assert frame is not None and set(frame.groups) == {"ADCO", "PAPP"}
    assert "HCHP" not in frame.groups and frame.invalid == 0
