"""Fixtures for the installer tests: a virtual board (passerelle.vboard) in a temp root,
and the real mpremote command line against it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from passerelle.vboard import VBoard

MPREMOTE = str(Path(sys.executable).parent / "mpremote")


@pytest.fixture
def vboard(tmp_path):
    root = tmp_path / "flash"
    vb = VBoard(root, tmp_path / "vboard.pty")
    vb.start()
    try:
        assert vb.wait_output(b">>> ", timeout=10) is not None, vb.output
        yield vb
    finally:
        vb.stop()


@pytest.fixture
def mpremote(vboard):
    """mpremote(*args, timeout=20) -> CompletedProcess (text) of `mpremote connect <link> args`."""

    def run(*args, timeout=20, check=True):
        r = subprocess.run([MPREMOTE, "connect", str(vboard.port), *args], capture_output=True,
                           text=True, timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        if check:
            assert r.returncode == 0, "mpremote %s -> %d\n%s\n%s" % (args, r.returncode, r.stdout, r.stderr)
        return r

    return run
