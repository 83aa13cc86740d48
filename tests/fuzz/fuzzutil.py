"""Helpers of tests/fuzz (imported as ``tests.fuzz.fuzzutil``: tests/ is not a package)."""

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT.parent / "shared" / "captures" / "tic"
FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"


def budget(ci, fuzz=None, **kw):
    """settings(): ``ci`` examples under the ci/dev profiles, the fuzz profile's count
    (or ``fuzz``) under ``make fuzz``.  Other settings come from the loaded profile."""
    n = (fuzz or settings.default.max_examples) if FUZZ else ci
    return settings(max_examples=n, **kw)


def fragments():
    """The real corrupted fragments of ../shared/captures/tic/error_fragments.py, read
    at test time; skips (saying why) only when ../shared is absent."""
    path = CAPTURES / "error_fragments.py"
    if not (ROOT.parent / "shared").is_dir():
        pytest.skip("../shared is absent: the real TIC error fragments are not beside this checkout")
    spec = importlib.util.spec_from_file_location("error_fragments", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.FRAGMENTS
