"""build_mpy: a board-root tree of .mpy files, rebuilt only where sources changed."""

import os
import subprocess

import pytest

from passerelle.build import BuildError, build_mpy, find_mpy_cross


def _project(tmp_path):
    root = tmp_path / "proj"
    files = {
        "firmware/main.py": "import gw.app\nprint(gw.app.answer())\n",
        "firmware/boot.py": "pass\n",
        "firmware/gw/__init__.py": "",
        "firmware/gw/app.py": "from protocols.tic import value\n\ndef answer():\n    return value() + 1\n",
        "firmware/gw/data.json": "{\"x\": 1}\n",
        "firmware/hal/__init__.py": "NAME = 'unix'\n",
        "firmware/README.md": "not deployed\n",
        "protocols/__init__.py": "",
        "protocols/tic/__init__.py": "def value():\n    return 41\n",
    }
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_layout_and_manifest(tmp_path):
    root = _project(tmp_path)
    out = tmp_path / "board"
    m = build_mpy(root, out)
    assert sorted(m) == ["boot.py", "lib/gw/__init__.mpy", "lib/gw/app.mpy", "lib/gw/data.json",
                         "lib/hal/__init__.mpy", "lib/protocols/__init__.mpy",
                         "lib/protocols/tic/__init__.mpy", "main.py"]
    assert sorted(m.copied) == ["boot.py", "lib/gw/data.json", "main.py"]
    assert len(m.compiled) == 5 and m.skipped == []
    assert (out / "main.py").read_text() == (root / "firmware/main.py").read_text()
    assert (out / "lib/gw/app.mpy").read_bytes()[:2] == b"M\x06"     # bytecode .mpy v6, no arch
    assert not (out / "README.md").exists() and not (out / "lib/README.md").exists()
    import hashlib
    for rel, digest in m.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest


def test_unchanged_files_are_skipped(tmp_path):
    root = _project(tmp_path)
    out = tmp_path / "board"
    first = build_mpy(root, out)
    mtimes = {rel: os.stat(out / rel).st_mtime_ns for rel in first}
    second = build_mpy(root, out)
    assert second.compiled == [] and second.copied == []
    assert sorted(second.skipped) == sorted(first)
    assert dict(second) == dict(first)
    assert {rel: os.stat(out / rel).st_mtime_ns for rel in second} == mtimes
    # one source changes: only its .mpy is rebuilt
    (root / "protocols/tic/__init__.py").write_text("def value():\n    return 1\n")
    third = build_mpy(root, out)
    assert third.compiled == ["lib/protocols/tic/__init__.mpy"] and third.copied == []
    assert third["lib/protocols/tic/__init__.mpy"] != first["lib/protocols/tic/__init__.mpy"]
    # a deployed file damaged on disk is rebuilt; a deleted source removes its output
    (out / "lib/gw/app.mpy").write_bytes(b"junk")
    (root / "firmware/hal/__init__.py").unlink()
    fourth = build_mpy(root, out)
    assert fourth.compiled == ["lib/gw/app.mpy"]
    assert fourth.removed == ["lib/hal/__init__.mpy"] and not (out / "lib/hal/__init__.mpy").exists()
    assert build_mpy(root, out, force=True).skipped == []


def test_syntax_error_names_the_file(tmp_path):
    root = _project(tmp_path)
    (root / "firmware/gw/broken.py").write_text("def f(:\n")
    with pytest.raises(BuildError) as e:
        build_mpy(root, tmp_path / "board")
    assert "firmware/gw/broken.py" in str(e.value)


def test_built_tree_runs_on_the_unix_port(tmp_path, micropython):
    root = _project(tmp_path)
    out = tmp_path / "board"
    build_mpy(root, out)
    env = dict(os.environ, MICROPYPATH=".frozen" + os.pathsep + str(out / "lib"))
    r = subprocess.run([micropython, "main.py"], cwd=out, env=env, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "42"


def test_real_project_builds(tmp_path, project_root):
    assert find_mpy_cross()
    m = build_mpy(project_root, tmp_path / "board")
    assert any(p.startswith("lib/protocols/") for p in m)
    assert all(p.endswith(".mpy") or not p.endswith(".py") or "/" not in p for p in m)
    # the TIC decoder's CPython-only whole-frame path is not deployed (never imported there)
    assert "lib/protocols/tic/decoder.mpy" in m and "lib/protocols/tic/frames.mpy" not in m
    if (project_root / "firmware" / "main.py").exists():
        assert "main.py" in m
