"""tests/fuzz: Hypothesis properties of every parser, CPython vs MicroPython differential
tests (one MicroPython worker per session) and the MQTT client against a hostile broker.

Budgets: each test states its CI-sized example count with ``budget(n)``; under
``make fuzz`` (HYPOTHESIS_PROFILE=fuzz) the fuzz profile's count applies instead (or
``budget(n, fuzz=m)`` for the slow ones), with the example database.  The MicroPython
worker (fixture ``mpw``) is tests/conftest.py's, shared with tests/protocols."""

import pytest

from tests.fuzz.fuzzutil import FUZZ


def pytest_collection_modifyitems(items):
    # the fuzz profile runs thousands of examples per test: the 300 s default is for CI
    if FUZZ:
        for item in items:
            if "tests/fuzz/" in str(item.fspath).replace("\\", "/"):
                item.add_marker(pytest.mark.timeout(3600))


@pytest.fixture(scope="session")
def scratch(tmp_path_factory):
    """One folder for the files the properties write (one per example would be slow)."""
    return tmp_path_factory.mktemp("fuzz")
