"""Host-side simulators (CPython only): the Linky TIC meter."""

from .linky import LinkySim, line_rate  # noqa: F401
