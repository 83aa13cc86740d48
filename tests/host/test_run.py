"""`passerelle run` (make run): amqtt + emulated gateway + view, non-TTY output."""

import os
import re
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_run_plain_shows_live_values(project_root):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(project_root / "host"), str(project_root)])
    heap = os.environ.get("PASSERELLE_HEAPSIZE")       # default: the board's (96K)
    proc = subprocess.Popen([sys.executable, "-m", "passerelle.cli", "run", "--duration", "20"]
                            + (["--heapsize", heap] if heap else []),
                            cwd=project_root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert "\x1b[" not in out                                # no live view / ANSI when not a TTY
    assert re.search(r"status emu1 online", out), out[-3000:]
    states = [line for line in out.splitlines() if " state emu1/linky " in line]
    assert states, out[-3000:]
    assert re.search(r"\bEAST=\d+Wh\b", out)
    assert re.search(r"\bSINSTS=\d+VA\b", out)
    summary = out.strip().splitlines()[-1]
    m = re.match(r"run: (\d+) messages, (\d+) state updates, (\d+) entities, (\d+) discovery configs",
                 summary)
    assert m and int(m.group(2)) >= 1 and int(m.group(3)) >= 20 and int(m.group(4)) >= 10, summary
