# main.py - board entry point: config -> HAL -> gateway.  MIT license.
# Files live in the board root (the current directory): config.json, secrets.json,
# board.json (optional) and, on the emulated board, emu.json or env PASSERELLE_EMU.
import asyncio
import sys

import hal
from gw import app, config

cfg, secrets, errors = config.load("config.json", "secrets.json")
options, err = app.emu_options(".")
board = config.read_json("board.json")[0]
gateway = app.Gateway(cfg, secrets, hal.open(board, options), errors + ([err] if err else []))
if not asyncio.run(gateway.run()):
    sys.exit(78)  # EX_CONFIG: the PASSERELLE BOOT line lists the errors
