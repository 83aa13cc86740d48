"""The `passerelle` command: one subcommand per module in COMMANDS.

Each module exposes ``add_parser(subparsers)`` which registers its subcommand and
sets ``func`` (called with the parsed namespace, returns an exit code).
"""

import argparse
import importlib
import sys

from . import __version__

COMMANDS = [
    "passerelle.tic_cmd",
    "passerelle.sim_cmd",
    "passerelle.build",
    "passerelle.emulate",
    "passerelle.run",
    "passerelle.vboard",
    "passerelle.boards",
    "passerelle.flash",
    "passerelle.record",
    "passerelle.replay",
    "passerelle.bench.command",
    "passerelle.district",
]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="passerelle",
        description="Passerelle gateway harness: decode TIC, simulate meters, "
        "emulate the firmware on the MicroPython unix port, run the demo.",
    )
    parser.add_argument("--version", action="version", version="passerelle " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # a command whose module is missing must not break the others
            if exc.name != name:
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
