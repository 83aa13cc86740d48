# gw/log.py - levelled, tagged logging to stdout (one Log object per gateway)
# MIT license.  Lines look like "I tic/linky: frame ok"; the level letter comes first
# so that installers' tools can filter.  Callers pass the format arguments separately
# so nothing is formatted when the level is disabled.
import sys

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40
_NAMES = (("debug", DEBUG), ("info", INFO), ("warning", WARNING), ("error", ERROR))


def level_of(name):
    for n, v in _NAMES:
        if n == name:
            return v
    return INFO


class Log:
    def __init__(self, level="info", prefix=""):
        self.level = level_of(level) if isinstance(level, str) else level
        self.prefix = prefix  # e.g. "gw1 " when several gateways share one stdout

    def _out(self, letter, tag, msg, args):
        if args:
            try:
                msg = msg % args
            except (TypeError, ValueError):
                msg = "%s %r" % (msg, args)
        print("%s %s%s: %s" % (letter, self.prefix, tag, msg))

    def debug(self, tag, msg, *args):
        if self.level <= DEBUG:
            self._out("D", tag, msg, args)

    def info(self, tag, msg, *args):
        if self.level <= INFO:
            self._out("I", tag, msg, args)

    def warning(self, tag, msg, *args):
        if self.level <= WARNING:
            self._out("W", tag, msg, args)

    def error(self, tag, msg, *args):
        if self.level <= ERROR:
            self._out("E", tag, msg, args)

    def exception(self, tag, msg, exc):
        self._out("E", tag, "%s: %s" % (msg, repr(exc)), ())
        if self.level <= DEBUG:
            pe = getattr(sys, "print_exception", None)
            if pe is not None:
                pe(exc)
