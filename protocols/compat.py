"""Portability shims shared by every codec in ``protocols``.

Runs unchanged on CPython 3.11+ and MicroPython (unix port and ESP32).
Nothing here allocates at import beyond the module itself.
"""

try:
    from micropython import const  # noqa: F401  (re-exported)
except ImportError:  # CPython
    def const(x):
        return x

try:
    import micropython as _mp  # noqa: F401
    IS_MICROPYTHON = True
except ImportError:
    IS_MICROPYTHON = False


def pick(table, i):
    """Message ``i`` of a module's message table (messages separated by ``|``).

    On MicroPython a string literal longer than 10 characters is not interned: it is a
    32-byte str object in the heap for as long as its module is loaded (its text stays
    in the .mpy image), ~40 B with its constant slot; a module's error messages kept
    in one table cost one such object.  It allocates the message: call it on error and
    log paths and for once-per-boot or once-per-announce strings, never per frame."""
    p = 0
    while i:
        p = table.index("|", p) + 1
        i -= 1
    q = table.find("|", p)
    return table[p:] if q < 0 else table[p:q]
