"""passerelle.mpworker itself: deadlines, restart after a hang or a crash, always stopped."""

import pytest

from passerelle.mpworker import MicroPythonWorker, WorkerTimeout


def test_worker_deadline_kills_and_restarts(micropython, project_root):
    w = MicroPythonWorker(micropython, project_root, timeout=5.0)
    try:
        w.start()
        first = w.proc
        big = (b"\x02\nPAPP 00380 ,\r\x03" * 20000).hex()
        with pytest.raises(WorkerTimeout):
            w.call("tic", 0, [1], big, timeout=0.05)        # far too short: killed
        assert w.proc is None and first.poll() is not None
        assert w.call("ping") == "pong" and w.starts == 2     # restarted on demand
        r = w.call("nope")
        assert "exc" in r and "unknown op" in r["exc"]        # reported, still serving
        assert w.call("ping") == "pong"
    finally:
        w.close()
    assert w.proc is None


def test_worker_exit_is_reported_then_restarted(micropython, project_root):
    with MicroPythonWorker(micropython, project_root, timeout=5.0) as w:
        w.proc.kill()
        w.proc.wait(5)
        assert w.call("ping") == "pong" and w.starts == 2
