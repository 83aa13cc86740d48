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

import asyncio  # noqa: E402 - after the ROMFS mount: imports come from it

import hal  # noqa: E402
from gw import app  # noqa: E402

cfg, secrets, board, options, errors = app.read_board_root(".")
board_hal = hal.open(board, options)
gw = app.Gateway(cfg, secrets, board_hal, errors)
cfg = secrets = board = options = errors = None  # the gateway keeps its normalized copy
ok = True
try:
    ok = asyncio.run(gw.run())
except KeyboardInterrupt:  # Ctrl-C from the REPL (mpremote, flashing): stop, keep the REPL
    try:
        gw.shutdown()  # a clean shutdown: S0 counts to flash
    except Exception as e:  # noqa: BLE001 - e.g. a full heap: still stop (last save's counts stay)
        print("PASSERELLE SHUTDOWN ERROR %r" % (e,))
    print("PASSERELLE STOPPED")
except Exception as e:  # noqa: BLE001 - outside the supervised jobs: reset, never sit in the REPL
    print("PASSERELLE CRASH %r" % (e,))
    board_hal.reset()
if not ok:
    board_hal.halt(78)  # EX_CONFIG: the PASSERELLE BOOT line lists the errors
