"""Every real capture decoded; numbers checked against VERIFICATION.txt."""

import pytest

from protocols.tic import AUTO, HISTORIC, STANDARD, TicDecoder, labels

from tests.protocols.tic_helpers import (capture_files, decode_all, load_capture_module,
                                         read_capture)

# Deviations from VERIFICATION.txt's "groups ok", each explained:
#  rx_errors: -1 for the garbled `}PR`PzSOUSC 20 8` (passes the 6-bit checksum,
#  rejected by the label whitelist); +2 for `PMAX 02910 2` and `PTEC TH.. $`,
#  valid groups that follow a BEL (0x07) inside a garbled piece: the decoder
#  restarts a group at any control byte, the verifier only cuts at LF/CR.
ADJUST = {"hist_3p_base__ticdecodecpp__rx_errors.bin": +1}
RECOVERED = {b"IMAx~`w\x07PMAX 02910 2": "PMAX",
             b"ISOUSC 20Po`\x1ex\x07PTEC TH.. $": "PTEC"}
GARBLED = b"}PR`PzSOUSC 20 8"


@pytest.mark.parametrize("name", capture_files())
def test_capture_frames_and_groups_match_verification(captures_dir, verification, name):
    v = verification[name]
    d, frames = decode_all(read_capture(captures_dir, name))
    s = d.stats
    assert s["frames"] == len(frames) == v["frames"]
    assert s["groups"] == v["ok"] + ADJUST.get(name, 0)
    assert s["bytes"] == len(read_capture(captures_dir, name))
    mode = HISTORIC if name.startswith("hist") else STANDARD
    for fmode, groups, invalid in frames:
        assert fmode == mode
        assert groups, "frames without valid groups are not returned"
        for label, (value, hd) in groups.items():
            assert labels.check(label, value, hd, mode), (label, value, hd)


@pytest.mark.parametrize("name", capture_files())
def test_every_group_the_verifier_accepts_is_decoded(captures_dir, name):
    """Each piece the independent verifier accepts decodes alone (except the
    garbled false accept), in a frame, with its exact value."""
    vc = load_capture_module(captures_dir, "verify_captures")
    data = read_capture(captures_dir, name)
    for piece in vc.CUT.split(data):
        if not piece or not vc.check_group(piece)[1] or piece == GARBLED:
            continue
        d, frames = decode_all(b"\x02\n" + piece + b"\r\x03")
        assert d.stats["groups"] == 1 and len(frames) == 1, piece
        (label, (value, hd)), = frames[0][1].items()
        if b"\t" in piece:
            fields = piece[:-2].split(b"\t")
            assert label.encode() == fields[0] and value.encode() == fields[-1]
            assert (hd.encode() if hd is not None else None) == (fields[1] if len(fields) == 3 else None)
        else:
            assert piece == (label + " " + value).encode() + piece[-2:]


@pytest.mark.parametrize("name", capture_files())
def test_corrupted_groups_listed_in_verification_are_rejected(verification, name):
    for piece in verification[name]["bad"] + verification[name]["bad_edge"]:
        d, frames = decode_all(b"\x02\n" + piece + b"\r\x03")
        if piece in RECOVERED:
            assert [list(f[1]) for f in frames] == [[RECOVERED[piece]]]
        else:
            assert d.stats["groups"] == 0 and frames == [], piece
            assert d.stats["frames_empty"] == 1


def test_checksum_false_accept_is_rejected_by_label_whitelist(captures_dir):
    d, frames = decode_all(b"\x02\n" + GARBLED + b"\r\x03")
    assert d.stats["label_errors"] == 1 and d.stats["checksum_errors"] == 0
    assert frames == []
    d, _ = decode_all(read_capture(captures_dir, "hist_3p_base__ticdecodecpp__rx_errors.bin"))
    assert d.stats["label_errors"] == 1
    assert d.stats["frames_unterminated"] == 25   # cooked tty: every ETX was swallowed


def test_cooked_tty_capture_groups_decoded_but_no_frame(captures_dir):
    d, frames = decode_all(read_capture(captures_dir, "hist_3p_base__ticdecodecpp__2024_crlf_mangled.bin"))
    assert frames == []
    assert d.stats["groups"] == 71 and d.stats["frames_unterminated"] == 4
    assert d.in_frame   # the last STX's frame is still open at the end of the file


def test_crlf_normalised_capture(captures_dir):
    d, frames = decode_all(read_capture(captures_dir, "hist_3p_base__ticdecodecpp__2023_linenormalized.bin"))
    assert len(frames) == 6 and all(f[2] == 0 for f in frames)
    assert all(len(f[1]) == 16 for f in frames)
    assert frames[0][1]["ADCO"] == ("056234673197", None)


def test_eot_interrupted_frame_is_dropped(captures_dir):
    d, frames = decode_all(read_capture(captures_dir, "hist_3p_base_eot__SYNTHETIC.bin"))
    assert d.stats["frames_interrupted"] == 1
    assert len(frames) == 1 and len(frames[0][1]) == 16


def test_real_meter_quirks_are_accepted(captures_dir):
    def first(name):
        return decode_all(read_capture(captures_dir, name))[1][0][1]
    assert first("hist_3p_base__openhab__RECONSTRUCTED.bin")["ADCO"] == ("XXXXXXXXXXXX", None)
    assert first("hist_3p_ejp__openhab__RECONSTRUCTED.bin")["ADCO"] == ("XXXXXXXXXX", None)
    assert first("std_1p_hc__goteleinfo__StandardRawFrame_anonymized.bin")["ADSC"] == ("12345678900", None)
    assert first("std_1p_producer__openhab__RECONSTRUCTED.bin")["NGTF"] == ("PRODUCTEUR", None)
    f = first("std_3p_tempo__teleinfo-nom__stream_standard_raw.bin")
    assert f["DPM1"] == ("00", " 200214060000") and f["FPM1"] == ("00", " 200215060000")
    assert f["STGE"] == ("463A0800", None)
    assert labels.tempo(f) == ("BLANC", "BLEU")
    assert f["DATE"][0] == "" and f["DATE"][1].startswith("H2002142")
    f = first("hist_1p_hc__hallard-teleinfo-test__RECONSTRUCTED.bin")
    assert f["PTEC"] == ("HP..", None)      # its checksum character is a space


def test_standard_stream_errors(captures_dir):
    d, frames = decode_all(read_capture(captures_dir, "std_3p_tempo__teleinfo-nom__stream_standard_raw.bin"))
    assert len(frames) == 7
    assert sum(f[2] for f in frames) == 12          # bit drops inside the 7 frames
    # the two groups whose CR arrived as 0x0C are rejected (truncated) even though
    # their body is intact: a corrupted terminator means line noise
    assert d.stats["checksum_errors"] == 13 and d.stats["truncated"] == 2


def test_fixed_mode_rejects_other_mode(captures_dir):
    data = read_capture(captures_dir, "hist_1p_tempo__pyteleinfo__captured_frames.bin")
    d, frames = decode_all(data, mode=STANDARD)
    assert frames == [] and d.stats["groups"] == 0 and d.stats["mode_errors"] == 160
    d, frames = decode_all(data, mode=HISTORIC)
    assert len(frames) == 10 and d.stats["groups"] == 160


@pytest.mark.parametrize("name", capture_files())
def test_chunked_decoding_of_captures(captures_dir, name):
    data = read_capture(captures_dir, name)
    ref_d, ref = decode_all(data)
    for chunk in (1, 2, 3, 13, 64, 500):
        d, frames = decode_all(data, chunk=chunk)
        assert frames == ref and d.stats == ref_d.stats, chunk
