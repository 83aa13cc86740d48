# main.py - board entry point: board root files -> HAL -> gateway.  MIT license.
# The board root (current directory) holds config.json, secrets.json, board.json
# (optional) and, on the emulated board, emu.json (or env PASSERELLE_EMU).
import sys

try:  # the emulated board's firmware image (passerelle.romfs); a board mounts its own
    import os
    import uctypes
    import vfs

    _rom = os.getenv("PASSERELLE_ROMFS")
except (ImportError, AttributeError):
    _rom = None
if _rom:  # "<addr>:<size>": mount it where a board mounts its ROMFS partition
    _a, _s = _rom.split(":")
    vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(_a), int(_s))), "/rom")
    sys.path.insert(0, "/rom")
    _a = _s = None
_rom = None

from gw import start  # noqa: E402 - after the ROMFS mount: imports come from it

start.run()  # the rest of the boot is in the image (gw/start.py), not compiled here
