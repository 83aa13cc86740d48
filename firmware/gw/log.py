# gw/log.py - levelled, tagged logging to stdout (one Log object per gateway)
# MIT license.  Lines look like "I tic/linky: frame ok"; the level letter comes first
# so that installers' tools can filter.  Callers pass the format arguments separately
# so nothing is formatted when the level is disabled.
import sys

LEVELS = ("debug", "info", "warning", "error")  # index = level number, letter = "DIWE"


class Log:
    def __init__(self, level="info", prefix=""):
        if isinstance(level, str):
            level = LEVELS.index(level) if level in LEVELS else 1
        self.level = level
        self.prefix = prefix  # e.g. "gw1 " when several gateways share one stdout

    def _out(self, n, tag, msg, args):
        if n < self.level:
            return
        if args:
            try:
                msg = msg % args
            except (TypeError, ValueError):
                msg = "%s %r" % (msg, args)
        print("%s %s%s: %s" % ("DIWE"[n], self.prefix, tag, msg))

    def debug(self, tag, msg, *args):
        self._out(0, tag, msg, args)

    def info(self, tag, msg, *args):
        self._out(1, tag, msg, args)

    def warning(self, tag, msg, *args):
        self._out(2, tag, msg, args)

    def error(self, tag, msg, *args):
        self._out(3, tag, msg, args)

    def exception(self, tag, msg, exc):
        print("E %s%s: %s: %r" % (self.prefix, tag, msg, exc))
        if not self.level:
            pe = getattr(sys, "print_exception", None)
            if pe is not None:
                pe(exc)
