"""TIC fixtures: VERIFICATION.txt numbers, TIC decoding on the session's MicroPython
worker (tests/conftest.py ``mpw``, passerelle.mpworker).  Helpers live in
tic_helpers.py."""

import pytest

from tests.protocols.tic_helpers import TicOnMicroPython, parse_verification


@pytest.fixture(scope="session")
def verification(captures_dir):
    return parse_verification(captures_dir / "VERIFICATION.txt")


@pytest.fixture(scope="session")
def mp_worker(mpw):
    return TicOnMicroPython(mpw)
