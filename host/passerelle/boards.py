"""Board definitions (``boards/<id>/board.json``) and the ``boards`` / ``check-config`` commands.

``passerelle boards`` lists the boards; ``passerelle check-config CONFIG --board B
[--secrets S]`` runs the validation ``passerelle flash`` runs before touching a device:
the firmware's own ``gw/config.py validate(cfg, secrets, board=)`` plus the wiring checks
of :mod:`passerelle.wiring`.  Exit 0 (warnings allowed), 1 when the config is refused,
2 when a file cannot be read or the board is unknown.
"""

import json
import sys
from pathlib import Path

from . import project_root as _project_root
from .wiring import check

FLASH_OFFSETS = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0,
                 "esp32c6": 0x0, "esp32c2": 0x0, "esp32h2": 0x0, "esp32p4": 0x2000}


class BoardError(ValueError):
    pass


def boards_dir(project_root=None):
    return Path(project_root or _project_root()) / "boards"


def board_ids(project_root=None):
    d = boards_dir(project_root)
    return sorted(p.name for p in d.iterdir() if (p / "board.json").is_file()) if d.is_dir() else []


def load_board(board_id, project_root=None):
    """The board.json dict of ``board_id`` (or of a path to a board.json / board folder)."""
    p = Path(board_id)
    if p.suffix == ".json" and p.is_file():
        path = p
    elif p.is_dir() and (p / "board.json").is_file():
        path = p / "board.json"
    else:
        path = boards_dir(project_root) / str(board_id) / "board.json"
    if not path.is_file():
        raise BoardError("unknown board %r; known boards: %s"
                         % (str(board_id), ", ".join(board_ids(project_root))))
    try:
        board = json.loads(path.read_text())
    except ValueError as exc:
        raise BoardError("%s: invalid JSON: %s" % (path, exc))
    board.setdefault("id", path.parent.name)
    return board


# What the firmware reads of a board.json (firmware/gw/config.py BOARD_KEYS): the board's
# board.json carries only these, without their "note" texts, since the device parses it
# at every boot into a heap of 64 KB (the emu board.json alone holds ~2 KB of notes).
DEVICE_KEYS = ("id", "pins", "uarts", "capabilities", "ethernet")


def _without_notes(v):
    if isinstance(v, dict):
        return {k: _without_notes(x) for k, x in v.items()
                if not (k in ("note", "notes") or k.endswith("_note"))}
    if isinstance(v, list):
        return [_without_notes(x) for x in v]
    return v


def device_board(board):
    """The board.json a device receives: DEVICE_KEYS of ``board``, notes removed."""
    return {k: _without_notes(board[k]) for k in DEVICE_KEYS if k in board}


def is_emulated(board):
    return board.get("mcu") == "unix"


def chip(board):
    return board.get("chip") or board.get("mcu")


def flash_offset(board):
    """The image offset: board.json ``deploy_options.flash_offset``, else by chip."""
    off = (board.get("deploy_options") or {}).get("flash_offset")
    if off is not None:
        return int(str(off), 0)
    c = chip(board)
    if c not in FLASH_OFFSETS:
        raise BoardError("board %s: no flash offset known for chip %r" % (board.get("id"), c))
    return FLASH_OFFSETS[c]


def read_json_file(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as exc:
        raise BoardError("cannot read %s %s: %s" % (what, path, exc.strerror or exc))
    except ValueError as exc:
        raise BoardError("%s %s is not valid JSON: %s" % (what, path, exc))


def validate_files(config_path, board_id, secrets_path=None, project_root=None):
    """(board, cfg, secrets, Report); raises BoardError for unreadable input."""
    root = project_root or _project_root()
    board = load_board(board_id, root)
    cfg = read_json_file(config_path, "config")
    secrets = read_json_file(secrets_path, "secrets") if secrets_path else None
    return board, cfg, secrets, check(root, cfg, secrets, board)


def print_report(report, board, config_path, out=None):
    out = out or sys.stdout
    name = "%s (%s)" % (board.get("product", board["id"]), board["id"])
    for e in report.errors:
        print("error: %s" % e, file=out)
    for w in report.warnings:
        print("warning: %s" % w, file=out)
    ne, nw = len(report.errors), len(report.warnings)
    if ne:
        print("%s: refused for %s: %d error%s, %d warning%s -- fix the config before flashing"
              % (config_path, name, ne, "s" * (ne != 1), nw, "s" * (nw != 1)), file=out)
    else:
        print("%s: OK for %s%s" % (config_path, name,
                                   " (%d warning%s)" % (nw, "s" * (nw != 1)) if nw else ""), file=out)


# ---- CLI ----------------------------------------------------------------------------

def add_parser(subparsers):
    p = subparsers.add_parser("boards", help="list the board definitions (boards/)",
                              description="List boards/<id>/board.json: chip, network, UARTs, image offset.")
    p.add_argument("--json", action="store_true", help="print the board.json objects as JSON")
    p.set_defaults(func=_cmd_boards)
    c = subparsers.add_parser("check-config", help="validate a config against a board (no device needed)",
                              description="Run the firmware's config validation and the wiring checks "
                              "(pin conflicts, input-only, flash and strapping pins, UARTs) for a board.")
    c.add_argument("config", help="config.json")
    c.add_argument("--board", required=True, help="board id (see `passerelle boards`)")
    c.add_argument("--secrets", default=None, help="secrets.json")
    c.set_defaults(func=_cmd_check)


def _cmd_boards(args):
    boards = []
    for bid in board_ids():
        try:
            boards.append(load_board(bid))
        except BoardError as exc:
            print("boards: %s" % exc, file=sys.stderr)
    if args.json:
        print(json.dumps(boards, indent=2))
        return 0
    print("%-20s %-8s %-15s %-8s %-16s %s" % ("board", "chip", "network", "offset", "TIC UARTs (rx)", "product"))
    for b in boards:
        uarts = ", ".join("%s:%s" % (k, v.get("rx", v.get("transport", "?")))
                          for k, v in sorted((b.get("uarts") or {}).items()))
        off = "-" if is_emulated(b) else "0x%x" % flash_offset(b)
        print("%-20s %-8s %-15s %-8s %-16s %s" % (b["id"], chip(b), "+".join(b.get("capabilities") or []),
                                                  off, uarts, b.get("product", "")))
    return 0


def _cmd_check(args):
    try:
        board, _cfg, _sec, report = validate_files(args.config, args.board, args.secrets)
    except BoardError as exc:
        print("check-config: %s" % exc, file=sys.stderr)
        return 2
    print_report(report, board, args.config)
    return 0 if report.ok else 1
