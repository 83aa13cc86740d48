"""API contract: constants, errors on misuse only, labels, STGE, encoder."""

import pathlib

import pytest

from protocols.errors import EncodeError, ProtocolError, UsageError
from protocols.tic import (AUTO, HISTORIC, STANDARD, TicDecoder, encode_frame, encode_group,
                           labels, stge)

PROTOCOLS = pathlib.Path(__file__).resolve().parents[2] / "protocols"


def test_mode_constants():
    assert (AUTO, HISTORIC, STANDARD) == (0, 1, 2)


def test_misuse_raises_documented_errors():
    with pytest.raises(UsageError):
        TicDecoder(mode=7)
    d = TicDecoder()
    with pytest.raises(UsageError):
        d.decode("text", 0)
    with pytest.raises(UsageError):
        d.decode(b"abc", 4)
    with pytest.raises(UsageError):
        d.decode(b"abc", -1)
    assert d.decode(b"abc", 3) == (0, None)
    with pytest.raises(UsageError):
        encode_group("PAPP", "00380", AUTO)
    with pytest.raises(EncodeError):
        encode_group("PAPP", "003\r80", HISTORIC)
    with pytest.raises(EncodeError):
        encode_group("PA PP", "00380", HISTORIC)
    with pytest.raises(EncodeError):
        encode_group("DATE", "", HISTORIC, "H230301091834")
    with pytest.raises(EncodeError):
        encode_group("NGTF", "é", STANDARD)
    with pytest.raises(UsageError):
        encode_frame([("PAPP",)], HISTORIC)
    with pytest.raises(UsageError):
        encode_frame([5], HISTORIC)
    with pytest.raises(UsageError):
        stge.decode("12345")
    with pytest.raises(UsageError):
        stge.decode("0000000G")
    assert issubclass(UsageError, ProtocolError) and issubclass(ProtocolError, ValueError)


def test_decoder_accepts_bytearray_and_memoryview():
    f = encode_frame([("ADCO", "021861348497")], HISTORIC)
    for buf in (bytearray(f), memoryview(f)):
        used, fr = TicDecoder().decode(buf, 0)
        assert used == len(f) and labels.pairs(fr.groups) == {"ADCO": ("021861348497", None)}


def test_end_argument_ignores_stale_bytes_beyond_it():
    f = encode_frame([("ADCO", "021861348497"), ("PAPP", "00380")], HISTORIC)
    d = TicDecoder()
    assert d.decode(f, 0)[1] is not None            # ADCO/PAPP now cached
    buf = bytearray(f)                                # stale copy of the frame
    # STX LF "ADCO 021861348497 L" CR LF "PA": the rest of the PAPP group that
    # follows in buf is stale and must not complete the (cached) PAPP group
    used, fr = d.decode(buf, 0, 25)
    assert (used, fr) == (25, None)
    s = d.stats
    assert s["groups"] == 3 and d.in_frame
    buf[:len(f) - 25] = f[25:]
    used, fr = d.decode(buf, 0, len(f) - 25)
    assert fr is not None and labels.pairs(fr.groups) == {"ADCO": ("021861348497", None), "PAPP": ("00380", None)}
    with pytest.raises(UsageError):
        d.decode(buf, 0, len(buf) + 1)
    with pytest.raises(UsageError):
        d.decode(buf, 5, 4)


def test_spec_worked_examples():
    # tic.md: `ADCO 021861348497 L` (historic) and `VTIC\t02\tJ` (standard)
    assert encode_group("ADCO", "021861348497", HISTORIC) == b"\nADCO 021861348497 L\r"
    assert encode_group("VTIC", "02", STANDARD) == b"\nVTIC\t02\tJ\r"
    assert encode_group("DATE", "", STANDARD, "H230301091834") == b"\nDATE\tH230301091834\t\tC\r"
    assert encode_group("PTEC", "HP..", HISTORIC) == b"\nPTEC HP..  \r"   # space checksum


def test_checksum_rule_is_chosen_by_separator_never_either():
    # VTIC with the historic rule would be 'A': rejected in standard mode
    d = TicDecoder()
    d.decode(b"\n" + b"VTIC\t02\tA" + b"\r", 0)
    assert d.stats["checksum_errors"] == 1 and d.stats["groups"] == 0
    d = TicDecoder()
    # historic group carrying the standard-rule checksum (final SP included)
    body = b"ADCO 021861348497 "
    d.decode(b"\n" + body + bytes([(sum(body) & 0x3F) + 0x20]) + b"\r", 0)
    assert d.stats["checksum_errors"] == 1


def test_format_checks():
    def one(group):
        d = TicDecoder()
        d.decode(b"\x02" + group + b"\x03", 0)
        return {k: v for k, v in d.stats.items() if v and k not in ("bytes", "frames_empty", "frames")}
    assert one(encode_group("BASE", "01687852", HISTORIC)) == {"format_errors": 1}    # 8 digits
    assert one(encode_group("BASE", "01687852A", HISTORIC)) == {"format_errors": 1}
    assert one(encode_group("PAPP", "0038 ", HISTORIC)) == {"format_errors": 1}
    assert one(encode_group("DEMAIN", "VERT", HISTORIC)) == {"format_errors": 1}
    assert one(encode_group("STGE", "003a0001", STANDARD)) == {"format_errors": 1}
    assert one(encode_group("SMAXSN", "05062", STANDARD, "X200214075148")) == {"format_errors": 1}
    assert one(encode_group("SMAXSN", "05062", STANDARD, "H20021407514")) == {"format_errors": 1}
    assert one(encode_group("SMAXSN", "05062", STANDARD)) == {"format_errors": 1}     # horodate missing
    assert one(encode_group("EAST", "000000001", STANDARD, "H200214075148")) == {"format_errors": 1}
    assert one(encode_group("DATE", "1", STANDARD, "H200214075148")) == {"format_errors": 1}
    assert one(encode_group("ADCO", "0218613484", HISTORIC)) == {"groups": 1}   # 10 chars tolerated
    assert one(encode_group("ADCO", "021861348", HISTORIC)) == {"format_errors": 1}
    assert one(encode_group("XYZ", "1", HISTORIC)) == {"label_errors": 1}
    assert one(encode_group("PAPP", "00380", STANDARD)) == {"label_errors": 1}  # historic label, HT
    assert one(encode_group("SMAXSN", "05062", STANDARD, "e200214075148")) == {"groups": 1}


def test_labels_info_and_convert():
    assert labels.info("PAPP") == ("power", "VA", 5, True, False)
    assert labels.info("BBRHPJB") == ("energy", "Wh", 9, True, False)
    assert labels.info("SMAXSN1-1") == ("power", "VA", 5, True, True)
    assert labels.info("DATE")[4] is True
    assert labels.info("PREF") == ("power", "kVA", 2, True, False)
    assert labels.info("ADSC")[:2] == ("id", None) and labels.info("ADSC")[3] is False
    assert labels.info("NOPE") is None
    assert labels.convert("PAPP", "02840") == 2840
    assert labels.convert("EAST", "021849106") == 21849106
    assert labels.convert("PREF", "09") == 9
    assert labels.convert("ADCO", "021861348497") == "021861348497"
    assert labels.convert("LTARF", "    HP  BLEU    ") == "HP  BLEU"
    assert labels.convert("NGTF", "     TEMPO      ") == "TEMPO"
    assert labels.convert("UNKNOWN", " x ") == "x"


def test_tempo_colours():
    assert stge.colors("463A0800") == ("BLANC", "BLEU")
    assert stge.colors("013A0501") == ("BLEU", None)
    assert stge.colors("003A0001") == (None, None)
    assert stge.colors("833AD501") == ("ROUGE", None)
    assert labels.tempo({"STGE": ("463A0800", None)}) == ("BLANC", "BLEU")
    assert labels.tempo({"PTEC": ("HPJB", None), "DEMAIN": ("ROUG", None)}) == ("BLEU", "ROUGE")
    assert labels.tempo({"PTEC": ("HCJW", None), "DEMAIN": ("----", None)}) == ("BLANC", None)
    assert labels.tempo({"PTEC": ("HCJR", None), "DEMAIN": ("BLAN", None)}) == ("ROUGE", "BLANC")
    assert labels.tempo({"PTEC": ("TH..", None)}) == (None, None)
    assert labels.tempo({}) == (None, None)


def test_stge_decode():
    s = stge.decode("003A0001")     # 1P BASE (tic.md 5.4)
    assert s["value"] == 0x003A0001 and s["dry_contact_open"] == 1 and s["breaker"] == 0
    assert s["supplier_index"] == 1 and s["standard_mode"] == 1 and s["euridis"] == 3
    assert s["cpl_status"] == 1 and s["tempo_today"] is None
    s = stge.decode("463A0800")
    assert s["supplier_index"] == 3 and s["pm_active"] == 1 and s["tempo_tomorrow"] == "BLEU"
    s = stge.decode("002A0301")
    assert s["producer"] == 1 and s["injecting"] == 1
    s = stge.decode("423A4C01")
    assert s["pm_active"] == 1 and s["tempo_today"] == "BLANC"


def test_portable_subset_rules():
    for path in sorted(PROTOCOLS.glob("**/*.py")):
        src = path.read_text()
        lines = src.splitlines()
        assert len(lines) < 600, path
        for line in lines:
            s = line.strip()
            assert not s.startswith("assert "), (path, line)
            assert not s.startswith(("import re", "from typing", "import typing", "from dataclasses")), (path, line)
        for prefix in ('f"', "f'", 'rf"', "fr'"):
            assert (" " + prefix) not in src and ("(" + prefix) not in src, (path, prefix)
