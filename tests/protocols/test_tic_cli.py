"""`passerelle tic decode` output contract."""

import json
import subprocess
import sys

import pytest

from passerelle import cli, tic_cmd
from protocols.tic import HISTORIC, STANDARD, encode_frame

from tests.protocols.tic_helpers import capture_files, decode_all, read_capture


def run_cli(args, capsys):
    rc = cli.main(["tic", "decode"] + args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_exact_line_format(tmp_path, capsys):
    f = tmp_path / "t.bin"
    f.write_bytes(encode_frame([("ADSC", "041776199277", None), ("DATE", "", "H230301091834"),
                                ("SMAXSN", "05062", "E200214075148"),
                                ("NGTF", "     TEMPO      ", None)], STANDARD)
                  + b"\x02\nVTIC\t02\tA\r" + encode_frame([("VTIC", "02")], STANDARD)[1:])
    rc, out, err = run_cli([str(f)], capsys)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == ('{"mode": "standard", "groups": {"ADSC": {"value": "041776199277"}, '
                        '"DATE": {"value": "", "horodate": "H230301091834"}, '
                        '"SMAXSN": {"value": "05062", "horodate": "E200214075148"}, '
                        '"NGTF": {"value": "     TEMPO      "}}, "invalid": 0}')
    assert lines[1] == '{"mode": "standard", "groups": {"VTIC": {"value": "02"}}, "invalid": 1}'
    assert len(lines) == 2
    stats = json.loads(err.strip().splitlines()[-1])["stats"]
    assert stats["frames"] == 2 and stats["checksum_errors"] == 1 and stats["groups"] == 5


@pytest.mark.parametrize("name", capture_files())
def test_cli_matches_decoder_on_every_capture(captures_dir, capsys, monkeypatch, name):
    monkeypatch.setattr(tic_cmd, "CHUNK", 37)     # streaming: small reads change nothing
    rc, out, err = run_cli([str(captures_dir / name)], capsys)
    assert rc == 0
    d, frames = decode_all(read_capture(captures_dir, name))
    got = [json.loads(line) for line in out.splitlines()]
    assert len(got) == len(frames) == d.stats["frames"]
    names = {HISTORIC: "historic", STANDARD: "standard"}
    for g, (mode, groups, invalid) in zip(got, frames):
        assert g["mode"] == names[mode] and g["invalid"] == invalid
        assert list(g["groups"]) == list(groups)
        for label, (value, hd) in groups.items():
            expect = {"value": value} if hd is None else {"value": value, "horodate": hd}
            assert g["groups"][label] == expect
    assert json.loads(err.strip().splitlines()[-1]) == {"stats": d.stats}


def test_cooked_tty_capture_prints_nothing_but_counts(captures_dir, capsys):
    rc, out, err = run_cli([str(captures_dir / "hist_3p_base__ticdecodecpp__2024_crlf_mangled.bin")], capsys)
    assert rc == 0 and out == ""
    stats = json.loads(err)["stats"]
    assert stats["groups"] == 71 and stats["frames_unterminated"] == 4


def test_mode_option_and_stdin(captures_dir, project_root):
    data = read_capture(captures_dir, "hist_1p_tempo__pyteleinfo__captured_frames.bin")
    env = {"PYTHONPATH": "%s:%s" % (project_root / "host", project_root), "PATH": "/usr/bin:/bin"}
    for mode, n in (("historic", 10), ("standard", 0), ("auto", 10)):
        r = subprocess.run([sys.executable, "-m", "passerelle.cli", "tic", "decode", "--mode", mode, "-"],
                           input=data, capture_output=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.splitlines()) == n
        stats = json.loads(r.stderr.decode().strip().splitlines()[-1])["stats"]
        assert stats["mode_errors"] == (160 if mode == "standard" else 0)


def test_missing_file(capsys, tmp_path):
    rc, out, err = run_cli([str(tmp_path / "nope.bin")], capsys)
    assert rc == 2 and "nope.bin" in err and out == ""
