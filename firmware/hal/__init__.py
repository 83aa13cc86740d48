# hal - hardware abstraction: the only place that picks a platform backend
# MIT license. Nothing is touched at import; hal.open() builds a Hal object.
#
# Backends (same Hal interface, see firmware/README.md "HAL"):
#   hal.esp32  machine.UART 7E1, Pin, WDT, WLAN/LAN, esp32.NVS, machine.reset_cause()
#   hal.unix   the emulated board: UART = TCP client to a local simulator port,
#              in-memory Pin, emulated WDT (exits the process), NVS in a JSON file
import sys


def open(board=None, options=None):  # noqa: A001 - hal.open() mirrors a file-like "open a board"
    """Return a Hal for this platform.

    ``board``: a boards/<B>/board.json dict, a board id string, or None (platform default).
    ``options``: backend options (unix: {"uart": {"<id>": port}, "root": ".", ...}).
    """
    if sys.platform == "esp32":
        from hal import esp32 as backend
    else:
        from hal import unix as backend
    if isinstance(board, str):
        board = {"id": board}
    return backend.Hal(board or {}, options or {})
