"""``passerelle flash``: from a config and a board to a running gateway, in one command.

Order (nothing is written to the device before step 1 passed)::

    1. validate      firmware gw/config.py validate(cfg, secrets, board=) + wiring checks
    2. image         (--image) esptool: chip detection, erase-flash, write-flash at the chip's
                     offset (0x1000 esp32/esp32s2, 0x0 c3/s3/c6/h2) -- real boards only
    3. build         firmware/ + protocols/ -> .mpy (passerelle.build, incremental)
    4. connect       raw REPL over PORT (mpremote's SerialTransport: a USB serial device or a
                     `passerelle vboard` link -- the same code path), soft reset
    5. diff          one exec hashes every deployed file on the board (sha256)
    6. copy          only files whose hash differs (tmp file + rename), stale /lib files of our
                     packages removed, config.json / secrets.json / board.json likewise
    7. reset         machine.reset(), then wait for ``PASSERELLE BOOT {json}`` (gw/app.py)
                     within --timeout; a config error list, a traceback or silence is reported
                     and the exit code is 1

Exit codes: 0 gateway up; 1 refused config, device error or the gateway did not come up;
2 usage (unknown board, unreadable file, esptool missing).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import project_root as _project_root
from .boards import (BoardError, chip, device_board, flash_offset, is_emulated, print_report,
                     validate_files)
from .build import BuildError, build_mpy

BOOT_PREFIX = "PASSERELLE BOOT "
TOPS = ("/lib", "/boot.py", "/main.py", "/config.json", "/secrets.json", "/board.json", "/emu.json")
CHUNK = 1024
ESPTOOL_PIN = "esptool==5.6.0"

DEVICE_HASHES = r'''
import os, hashlib, json, binascii
def _h(p, b=bytearray(512)):
    h = hashlib.sha256()
    m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return binascii.hexlify(h.digest()).decode()
def _w(d, out):
    for e in os.ilistdir(d):
        p = d + '/' + e[0]
        if e[1] & 0x4000:
            _w(p, out)
        else:
            out[p] = _h(p)
_r = {}
for _t in %r:
    try:
        _s = os.stat(_t)
    except OSError:
        continue
    if _s[0] & 0x4000:
        _w(_t, _r)
    else:
        _r[_t] = _h(_t)
print(json.dumps(_r))
del _r, _h, _w
'''


class FlashError(RuntimeError):
    pass


def _sha256(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


# ---- esptool -------------------------------------------------------------------------

def esptool_argv():
    """argv prefix running esptool (console script next to this python, on PATH, or -m)."""
    here = Path(sys.executable).parent / "esptool"
    if here.is_file():
        return [str(here)]
    exe = shutil.which("esptool") or shutil.which("esptool.py")
    if exe:
        return [exe]
    import importlib.util
    if importlib.util.find_spec("esptool") is not None:
        return [sys.executable, "-m", "esptool"]
    return None


def image_commands(port, board, image, baud=460800, esptool=("esptool",)):
    """[(what, argv)] for erase + write of ``image`` on ``board`` (chip detection is separate)."""
    c, off = chip(board), flash_offset(board)
    base = list(esptool) + ["--chip", c, "--port", port]
    return [("erase the flash", base + ["erase-flash"]),
            ("write %s at 0x%x" % (Path(image).name, off),
             base + ["--baud", str(baud), "write-flash", "0x%x" % off, str(image)])]


def parse_chip(output):
    """esptool chip-id output -> esptool chip name ('esp32', 'esp32c3', ...) or None."""
    m = re.search(r"(?:Chip is|Chip type:|Detecting chip type\.*)\s*(ESP32[-\w]*)", output, re.I)
    if not m:
        return None
    name = m.group(1).upper()
    v = re.match(r"ESP32-?(S2|S3|C2|C3|C5|C6|C61|H2|P4)\b", name)
    return "esp32" + v.group(1).lower() if v else "esp32"


def flash_image(port, board, image, baud, log=print):
    exe = esptool_argv()
    if exe is None:
        raise FlashError("esptool is not installed: `pip install %s` (in the same venv), "
                         "or flash the image yourself and run again without --image" % ESPTOOL_PIN)
    r = subprocess.run(exe + ["--port", port, "chip-id"], capture_output=True, text=True, timeout=60)
    detected = parse_chip(r.stdout + r.stderr)
    if r.returncode or detected is None:
        raise FlashError("esptool could not talk to %s (hold BOOT and tap RESET for download mode):\n%s"
                         % (port, (r.stdout + r.stderr).strip()[-800:]))
    if detected != chip(board):
        raise FlashError("the board on %s is an %s, but --board %s is an %s: wrong board?"
                         % (port, detected, board["id"], chip(board)))
    log("image: %s detected on %s" % (detected, port))
    for what, argv in image_commands(port, board, image, baud, exe):
        log("image: %s (%s)" % (what, " ".join(argv)))
        r = subprocess.run(argv, timeout=600)
        if r.returncode:
            raise FlashError("esptool failed to %s (exit %d)" % (what, r.returncode))
    time.sleep(2.0)       # first boot formats the filesystem


# ---- device ------------------------------------------------------------------------

READ_TIMEOUT_S = 10.0   # longest silence from a board inside one raw-REPL read


class Device:
    """Raw-REPL session on PORT through mpremote's SerialTransport."""

    def __init__(self, port, baud=115200, tries=3, emulated=False):
        try:
            from mpremote.transport import TransportError
            from mpremote.transport_serial import SerialTransport
        except ImportError as exc:
            raise FlashError("mpremote is not installed: %s" % exc)
        self.TransportError = TransportError
        real = os.path.realpath(port)
        if real.startswith("/dev/pts/"):
            port = real      # mpremote reads a literal /dev/pts/N blocking instead of polling
        last = None
        for attempt in range(tries):
            try:
                # a read deadline: on a PTY (the virtual board) mpremote reads blocking, and
                # with no timeout a board that never answers (seen once under a loaded CI:
                # the raw-REPL banner lost) would hang the flash for ever
                self.t = SerialTransport(port, baudrate=baud, timeout=READ_TIMEOUT_S)
                break
            except TransportError as exc:
                last = exc
                time.sleep(1.0)
        else:
            hint = ("" if os.path.exists(port) else
                    " (no such device: is the board plugged in? see ls /dev/ttyUSB* /dev/ttyACM*)")
            raise FlashError("cannot open %s: %s%s" % (port, last, hint))
        for attempt in range(tries):
            try:
                self.t.enter_raw_repl(soft_reset=True)
                break
            except TransportError as exc:
                last = exc
                time.sleep(1.0)
        else:
            self.close()
            raise FlashError("no MicroPython raw REPL on %s (%s): is MicroPython flashed (--image), "
                             "is another program holding the port?" % (port, last))
        self.emulated = emulated
        self._wdt = False
        if not emulated:
            # a gateway that ran before has started the hardware watchdog: it survives the
            # soft reset, so take it over with a long timeout and feed it while copying
            try:
                self.t.exec("import machine\n_pw = machine.WDT(timeout=300000)")
                self._wdt = True
            except Exception:
                pass

    def feed(self):
        if self._wdt:
            self.t.exec("_pw.feed()")

    def exec(self, code):
        from mpremote.transport import TransportExecError
        try:
            return self.t.exec(code)
        except TransportExecError as exc:
            raise FlashError("device error: %s" % exc.error_output.strip().splitlines()[-1])

    def hashes(self):
        out = self.exec(DEVICE_HASHES % (TOPS,))
        return json.loads(out.decode().strip().splitlines()[-1])

    def mkdirs(self, dirs):
        if dirs:
            self.exec("import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass"
                      % (sorted(dirs),))

    def write(self, path, data, progress=None):
        tmp = path + ".tmp"
        self.t.fs_writefile(tmp, data, chunk_size=CHUNK, progress_callback=progress)
        # relative names from "/": VfsPosix (the virtual board) fails on absolute rename
        self.exec("import os\nos.chdir('/')\ntry:\n os.remove(%r)\nexcept OSError:\n pass\n"
                  "os.rename(%r, %r)" % (path[1:], tmp[1:], path[1:]))

    def remove(self, paths):
        if paths:
            self.exec("import os\nfor p in %r:\n try:\n  os.remove(p)\n except OSError:\n  pass"
                      % (sorted(paths),))

    def reset_and_watch(self, timeout, settle=1.0):
        """machine.reset(), then read lines until the boot report (+ ``settle`` s to catch an
        early crash).  Returns (report dict or None, lines)."""
        self.t.exec_raw_no_follow("import machine\nmachine.reset()")
        self.t.in_raw_repl = False
        ser = self.t.serial
        ser.timeout = 0.1               # SerialTransport opens it blocking: keep the deadlines
        lines, buf, report = [], b"", None
        deadline = time.monotonic() + timeout
        settle_end = None
        while time.monotonic() < (settle_end or deadline):
            try:
                chunk = ser.read(ser.in_waiting or 1)
            except OSError:              # native USB re-enumerating: wait for it
                time.sleep(0.2)
                continue
            if not chunk:
                continue
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode("utf-8", "replace").strip("\r\x04")
                lines.append(line)
                if report is None and BOOT_PREFIX in line:
                    try:
                        report = json.loads(line.split(BOOT_PREFIX, 1)[1])
                    except ValueError:
                        report = {"config": "unparsable", "errors": [line]}
                    if report.get("config") != "ok":
                        return report, lines
                    settle_end = min(deadline + settle, time.monotonic() + settle)
                elif report is not None and ("PASSERELLE CRASH" in line or line.startswith("Traceback")):
                    settle_end = time.monotonic() + 0.3      # collect the traceback, then stop
        return report, lines

    def close(self):
        try:
            if self.t.in_raw_repl:
                self.t.exit_raw_repl()
        except Exception:
            pass
        try:
            self.t.close()
        except Exception:
            pass


# ---- plan ------------------------------------------------------------------------

def board_files(build_dir, manifest, cfg, secrets, board, emu=None):
    """{device path: bytes} of everything flash deploys."""
    files = {}
    for rel in sorted(manifest):
        files["/" + rel] = (Path(build_dir) / rel).read_bytes()
    # UTF-8, not \u escapes: MicroPython's json decodes a surrogate pair escape (any
    # character beyond U+FFFF, e.g. an emoji in a name or a Wi-Fi password) as two
    # invalid 3-byte sequences, so the device would read another string (tests/fuzz)
    files["/config.json"] = (json.dumps(cfg, indent=2, sort_keys=True, ensure_ascii=False)
                             + "\n").encode()
    if secrets is not None:
        files["/secrets.json"] = (json.dumps(secrets, indent=2, sort_keys=True,
                                             ensure_ascii=False) + "\n").encode()
    files["/board.json"] = (json.dumps(device_board(board), indent=2, sort_keys=True, ensure_ascii=False)
                            + "\n").encode()
    if emu is not None:
        files["/emu.json"] = (json.dumps(emu, sort_keys=True) + "\n").encode()
    return files


def diff(files, on_board):
    """(to_write [paths], unchanged [paths], to_remove [paths]).  Stale files are removed only
    inside the packages we deploy (lib/gw/, lib/hal/, lib/protocols/...)."""
    to_write = [p for p in sorted(files) if on_board.get(p) != _sha256(files[p])]
    unchanged = [p for p in sorted(files) if p not in to_write]
    ours = {"/".join(p.split("/")[:3]) + "/" for p in files if p.startswith("/lib/") and p.count("/") >= 3}
    to_remove = [p for p in sorted(on_board) if p not in files and any(p.startswith(d) for d in ours)]
    return to_write, unchanged, to_remove


def _dirs_for(paths, on_board):
    have = {"/"}
    for p in on_board:
        parts = p.split("/")[1:-1]
        for i in range(1, len(parts) + 1):
            have.add("/" + "/".join(parts[:i]))
    need = set()
    for p in paths:
        parts = p.split("/")[1:-1]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            if d not in have:
                need.add(d)
    return sorted(need, key=lambda d: (d.count("/"), d))


def _progress():
    try:
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TimeRemainingColumn)
    except ImportError:
        return None
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=False)


# ---- main -----------------------------------------------------------------------------

def run_flash(port, board_id, config, secrets=None, image=None, dry_run=False, timeout=30.0,
              baud=115200, image_baud=460800, build_dir=None, emu=None, settle=1.0, log=print,
              project_root=None):
    """Returns (exit code, info dict).  ``info``: report, copied, unchanged, removed, lines."""
    root = Path(project_root or _project_root())
    info = {"copied": [], "unchanged": [], "removed": [], "report": None, "lines": []}
    try:
        board, cfg, sec, report = validate_files(config, board_id, secrets, root)
    except BoardError as exc:
        log("flash: %s" % exc)
        return 2, info
    print_report(report, board, config)
    if not report.ok:
        log("flash: nothing was written to %s" % port)
        return 1, info
    if image and is_emulated(board):
        log("flash: board %s is emulated: it has no flash chip, --image is for real boards" % board["id"])
        return 2, info
    if image and not Path(image).is_file():
        log("flash: image %s not found" % image)
        return 2, info
    build_dir = Path(build_dir or root / "build" / "board")
    try:
        manifest = build_mpy(root, build_dir)
    except BuildError as exc:
        log("flash: %s" % exc)
        return 2, info
    files = board_files(build_dir, manifest, cfg, sec, board, emu)
    total = sum(len(v) for v in files.values())
    if dry_run:
        log("plan (dry run, the device is not touched):")
        step = 1
        if image:
            exe = esptool_argv()
            log("  %d. detect the chip: %s --port %s chip-id (expect %s)%s"
                % (step, " ".join(exe or ["esptool"]), port, chip(board),
                   "" if exe else "  [esptool not installed: pip install %s]" % ESPTOOL_PIN))
            for what, argv in image_commands(port, board, image, image_baud, exe or ["esptool"]):
                step += 1
                log("  %d. %s: %s" % (step, what, " ".join(argv)))
            step += 1
        log("  %d. raw REPL on %s, soft reset; hash the board's files" % (step, port))
        log("  %d. copy those of these %d files (%d bytes) whose sha256 differs on the board:"
            % (step + 1, len(files), total))
        for p in sorted(files):
            log("       %-36s %7d  %s" % (p, len(files[p]), _sha256(files[p])[:12]))
        log("  %d. machine.reset(), wait %gs for '%s{...}' with config \"ok\""
            % (step + 2, timeout, BOOT_PREFIX))
        return 0, info
    if image:
        try:
            flash_image(port, board, image, image_baud, log)
        except (FlashError, subprocess.SubprocessError, OSError) as exc:
            log("flash: %s" % exc)
            return 2 if esptool_argv() is None else 1, info
    t0 = time.monotonic()
    try:
        dev = Device(port, baud, emulated=is_emulated(board))
    except FlashError as exc:
        log("flash: %s" % exc)
        return 1, info
    try:
        on_board = dev.hashes()
        to_write, unchanged, to_remove = diff(files, on_board)
        info.update(copied=to_write, unchanged=unchanged, removed=to_remove)
        nbytes = sum(len(files[p]) for p in to_write)
        log("flash: %d files to copy (%d bytes), %d unchanged, %d to remove"
            % (len(to_write), nbytes, len(unchanged), len(to_remove)))
        dev.mkdirs(_dirs_for(to_write, on_board))
        bar = _progress() if to_write else None
        if bar is not None:
            with bar:
                task = bar.add_task("copy", total=nbytes)
                done = 0
                for p in to_write:
                    bar.update(task, description="copy %s" % p)
                    dev.write(p, files[p], progress=lambda n, _t, base=done: bar.update(task, completed=base + n))
                    done += len(files[p])
                    bar.update(task, completed=done)
                    dev.feed()
                bar.update(task, description="copied")
        else:
            for p in to_write:
                dev.write(p, files[p])
                dev.feed()
        dev.remove(to_remove)
        report_, lines = dev.reset_and_watch(timeout, settle)
    except (FlashError, dev.TransportError, OSError) as exc:
        log("flash: %s" % exc)
        dev.close()
        return 1, info
    dev.close()
    info.update(report=report_, lines=lines)
    return _verdict(report_, lines, timeout, time.monotonic() - t0, log), info


def _verdict(report, lines, timeout, elapsed, log):
    crash = [i for i, l in enumerate(lines) if l.startswith("Traceback") or "PASSERELLE CRASH" in l]
    if report is None:
        if crash:
            i = crash[0]
            log("flash: the gateway crashed before its boot report:\n  " + "\n  ".join(lines[i:i + 12]))
        elif not any(l.strip() for l in lines):
            log("flash: the board printed nothing within %gs after the reset: is PORT its console "
                "UART, is main.py there, did the board reset?" % timeout)
        else:
            log("flash: no '%s' line within %gs; last output:\n  %s"
                % (BOOT_PREFIX.strip(), timeout, "\n  ".join(lines[-12:])))
        return 1
    if report.get("config") != "ok":
        log("flash: the gateway refused its config:\n  " + "\n  ".join(report.get("errors") or ["?"]))
        return 1
    if crash:
        i = crash[0]
        log("flash: the gateway booted, then crashed:\n  " + "\n  ".join(lines[i:i + 12]))
        return 1
    log("flash: gateway up in %.1fs: version %s, board %s, device %s, free heap %s, reset cause %s"
        % (elapsed, report.get("version"), report.get("board"), report.get("device_id"),
           report.get("free_heap"), report.get("reset_cause")))
    return 0


def add_parser(subparsers):
    p = subparsers.add_parser("flash", help="validate, install and boot the gateway on a board",
                              description="Validate the config against the board, optionally write the "
                              "MicroPython image (esptool), copy the changed .mpy files and the config "
                              "over the raw REPL, reset and wait for the gateway's boot report.")
    p.add_argument("--port", required=True, help="serial device (/dev/ttyUSB0) or a vboard link")
    p.add_argument("--board", required=True, help="board id (see `passerelle boards`)")
    p.add_argument("--config", required=True, help="config.json")
    p.add_argument("--secrets", default=None, help="secrets.json (default: keep the board's)")
    p.add_argument("--image", default=None, help="MicroPython firmware .bin to write first (esptool)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, touch nothing")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the boot report")
    p.add_argument("--baud", type=int, default=115200, help="REPL baud rate")
    p.add_argument("--image-baud", type=int, default=460800, help="esptool write-flash baud rate")
    p.add_argument("--build-dir", default=None, help="where the .mpy tree is built (default build/board)")
    p.add_argument("--emu", default=None, metavar="JSON", help="write emu.json (emulated board only)")
    p.set_defaults(func=_cmd)


def _cmd(args):
    emu = None
    if args.emu is not None:
        try:
            emu = json.loads(args.emu)
        except ValueError as exc:
            print("flash: --emu is not JSON: %s" % exc, file=sys.stderr)
            return 2
    rc, _ = run_flash(args.port, args.board, args.config, args.secrets, args.image, args.dry_run,
                      args.timeout, args.baud, args.image_baud, args.build_dir, emu,
                      log=lambda m: print(m, file=sys.stderr, flush=True))
    return rc
