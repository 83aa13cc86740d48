"""Passerelle host harness: CLI, emulation, simulation, benchmarks (CPython only, never deployed).

The harness works on the checkout it is installed from (``pip install -e .``): the
portable ``protocols`` package is imported from the project root, the very files that
are compiled to ``.mpy`` and deployed to boards. The root is put on ``sys.path`` here,
once, so that ``passerelle`` run from ``.venv/bin`` finds it.
"""

import sys
from pathlib import Path

__version__ = "0.1.0"


def project_root():
    """The checkout this package runs from (host/passerelle/ -> project root)."""
    return Path(__file__).resolve().parents[2]


def _checkout_on_path():
    root = str(project_root())
    if root not in sys.path:
        sys.path.append(root)


_checkout_on_path()
