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
