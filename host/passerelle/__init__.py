"""Passerelle host harness: CLI, emulation, simulation, benchmarks (CPython only, never deployed)."""

from pathlib import Path

__version__ = "0.1.0"


def project_root():
    """The checkout this package runs from (host/passerelle/ -> project root)."""
    return Path(__file__).resolve().parents[2]
