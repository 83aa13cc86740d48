# gw/start.py - the board's run: board root files -> HAL -> gateway.  MIT license.
# main.py stays source at the board root and is compiled into the heap at every boot;
# the compiled script stays there as long as it runs (~1.5 KB on the 64-bit unix port).
# It only mounts the firmware image and calls run(): this code stays in the image
# (ROMFS, imported in place), ~0.3 KB of heap.
import asyncio

import hal
from gw import app


def run():
    from gw import config  # boot only: the gateway drops it once the config is validated

    cfg, secrets, board, options, errors = config.read_board_root(".")
    config = None
    board_hal = hal.open(board, options)
    gw = app.Gateway(cfg, secrets, board_hal, errors)
    cfg = secrets = board = options = errors = None  # the gateway keeps its normalized copy
    ok = True
    try:
        ok = asyncio.run(gw.run())
    except KeyboardInterrupt:  # Ctrl-C from the REPL (mpremote, flashing): stop, keep the REPL
        try:
            gw.shutdown()  # a clean shutdown: S0 counts to flash
        except Exception as e:  # noqa: BLE001 - a full heap: still stop (last save's counts stay)
            print("PASSERELLE SHUTDOWN ERROR %r" % (e,))
        print("PASSERELLE STOPPED")
    except Exception as e:  # noqa: BLE001 - outside the jobs: reset, never sit in the REPL
        print("PASSERELLE CRASH %r" % (e,))
        board_hal.reset()
    if not ok:
        board_hal.halt(78)  # EX_CONFIG: the PASSERELLE BOOT line lists the errors
