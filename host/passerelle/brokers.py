"""Loopback MQTT brokers for tests, demos and benchmarks.

* :class:`Mosquitto` -- the reference broker (``/usr/sbin/mosquitto``), run as a
  subprocess on 127.0.0.1 with a generated config.
* :class:`Amqtt` -- the embedded pure-Python default (amqtt), run as a subprocess
  of this same interpreter (``python -m passerelle.brokers amqtt --port N``) so that
  a test can stop and restart it like a real broker.

Both have the same interface: ``start()``, ``stop()``, ``restart()``, ``host``,
``port``, ``url``; both are context managers and always stop what they started.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def free_port(host=HOST):
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout=10.0, proc=None):
    """Wait until something accepts TCP connections on host:port; False on timeout
    or when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def find_mosquitto():
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if os.path.exists(p)), None)


class _Broker:
    name = "broker"

    def __init__(self, port=None, host=HOST, log=None):
        self.host = host
        self.port = port or free_port(host)
        self.proc = None
        self._tmp = tempfile.mkdtemp(prefix="passerelle-%s-" % self.name)
        self.log_path = log or os.path.join(self._tmp, "broker.log")

    @property
    def url(self):
        return "mqtt://%s:%d" % (self.host, self.port)

    def _argv(self):
        raise NotImplementedError

    def start(self, timeout=15.0):
        if self.proc is not None and self.proc.poll() is None:
            return self
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._argv(), stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        if not wait_port(self.host, self.port, timeout, self.proc):
            out = self.tail()
            self.stop()
            raise RuntimeError("%s did not start on %s:%d\n%s" % (self.name, self.host, self.port, out))
        return self

    def stop(self, timeout=5.0):
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def kill(self):
        """Stop abruptly (SIGKILL), as a crashed or powered-off broker would."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def restart(self):
        self.stop()
        return self.start()

    def tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)


class Mosquitto(_Broker):
    name = "mosquitto"

    def _argv(self):
        exe = find_mosquitto()
        if exe is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        conf = os.path.join(self._tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d %s\nallow_anonymous true\npersistence false\n"
                    "log_type error\nlog_type warning\n" % (self.port, self.host))
        return [exe, "-c", conf]


class Amqtt(_Broker):
    name = "amqtt"

    def _argv(self):
        return [sys.executable, "-m", "passerelle.brokers", "amqtt", "--host", self.host,
                "--port", str(self.port)]


def launch(cls, **kwargs):
    """A started broker of class ``cls``; if it cannot start, what it created is
    removed before the error propagates."""
    b = cls(**kwargs)
    try:
        return b.start()
    except Exception:
        b.__exit__(None, None, None)
        raise


def amqtt_config(host, port):
    return {
        "listeners": {"default": {"type": "tcp", "bind": "%s:%d" % (host, port)}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def serve_amqtt(host, port, stop_event=None):
    """Run an amqtt broker in the current event loop until ``stop_event`` is set
    (or forever)."""
    import asyncio
    import logging

    from amqtt.broker import Broker

    logging.getLogger("amqtt").setLevel(logging.WARNING)
    broker = Broker(amqtt_config(host, port))
    await broker.start()
    try:
        if stop_event is None:
            stop_event = asyncio.Event()
        await stop_event.wait()
    finally:
        await broker.shutdown()


def main(argv=None):
    import asyncio

    parser = argparse.ArgumentParser(description="Run a loopback MQTT broker.")
    parser.add_argument("kind", choices=["amqtt"])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args(argv)

    async def runner():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_amqtt(args.host, args.port, stop)

    asyncio.run(runner())
    return 0


if __name__ == "__main__":
    sys.exit(main())
