"""TIC fixtures: VERIFICATION.txt numbers, the persistent MicroPython
differential worker (one process per test session).  Helpers live in
tic_helpers.py."""

import pytest

from tests.protocols.tic_helpers import MicroPythonWorker, parse_verification


@pytest.fixture(scope="session")
def verification(captures_dir):
    return parse_verification(captures_dir / "VERIFICATION.txt")


@pytest.fixture(scope="session")
def mp_worker(micropython, project_root):
    w = MicroPythonWorker(micropython, project_root)
    try:
        yield w
    finally:
        w.close()
