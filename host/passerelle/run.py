"""``passerelle run`` (the ``make run`` demo): broker + one emulated gateway + a live view.

* an embedded amqtt broker on 127.0.0.1:<free port> (in this process, its own
  asyncio loop in a thread) -- or ``--broker URL`` to use an existing one;
* one :class:`~passerelle.emulate.Emulation` fed by the Linky simulator (standard,
  three-phase, Tempo by default) and configured for that broker;
* a paho-mqtt subscriber on ``passerelle/#`` and ``homeassistant/#`` rendered as a
  rich live table (entity, value, unit, last update, gateway status, counters), or
  as plain lines when stdout is not a terminal (or with ``--plain``).

Ctrl-C or ``--duration`` stops everything (gateway, broker, subscriber).  Exit
status: 0, or 1 when the firmware crashed / the broker failed, 130 on Ctrl-C.
"""

import asyncio
import collections
import sys
import threading
import time

from .brokers import HOST, free_port, serve_amqtt, wait_port
from .emulate import Emulation, EmulationError, add_emulation_args, parse_broker
from .mqtt_view import MqttModel, PlainPrinter, render


class EmbeddedAmqtt:
    """amqtt running in a background thread of this process."""

    def __init__(self, host=HOST, port=None):
        self.host = host
        self.port = port or free_port(host)
        self._thread = None
        self._loop = None
        self._stop = None
        self.error = None
        self.log = collections.deque(maxlen=200)

    @property
    def url(self):
        return "mqtt://%s:%d" % (self.host, self.port)

    def _main(self):
        async def runner():
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve_amqtt(self.host, self.port, self._stop)
        try:
            asyncio.run(runner())
        except BaseException as exc:       # reported by start()/stop()
            self.error = exc

    def start(self, timeout=20.0):
        import logging

        class _Keep(logging.Handler):          # broker chatter is kept, not printed
            def emit(inner, record):
                self.log.append(record.getMessage())

        for name in ("amqtt", "transitions"):
            lg = logging.getLogger(name)
            lg.propagate = False
            lg.addHandler(_Keep())
        self._thread = threading.Thread(target=self._main, name="amqtt", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None or not self._thread.is_alive():
                raise RuntimeError("amqtt broker failed to start: %r" % (self.error,))
            if wait_port(self.host, self.port, 0.3):
                return self
        self.stop()
        raise RuntimeError("amqtt broker did not listen on %s:%d" % (self.host, self.port))

    def stop(self, timeout=10.0):
        loop, ev = self._loop, self._stop
        if loop is not None and ev is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def add_parser(subparsers):
    p = subparsers.add_parser("run", help="demo: broker + emulated gateway + live MQTT view",
                              description="Start an embedded amqtt broker, one emulated gateway fed "
                              "by the Linky simulator, and a live view of what it publishes.")
    add_emulation_args(p)
    p.add_argument("--broker", default=None, metavar="URL",
                   help="use this broker instead of starting the embedded amqtt")
    p.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    p.add_argument("--log-lines", type=int, default=8, help="gateway log lines shown in the live view")
    p.set_defaults(func=run_cmd)


def run_cmd(args):
    live_mode = sys.stdout.isatty() and not args.plain
    broker = None
    emu = None
    model = None
    log = collections.deque(maxlen=max(0, args.log_lines))
    interrupted = False
    rc = 0
    try:
        if args.broker:
            host, port = parse_broker(args.broker)
            url = args.broker
        else:
            broker = EmbeddedAmqtt().start()
            host, port, url = broker.host, broker.port, broker.url
        model = MqttModel(host, port)
        if not model.start(10.0):
            print("run: cannot subscribe on %s" % url, file=sys.stderr)
            return 1
        from .emulate import emulation_from_args
        emu = emulation_from_args(args, broker=url, echo=not live_mode, on_line=log.append)
        emu.start()
        info = "broker %s  TIC %s %dP %s x%g" % (url, args.tic or args.tic_sim, args.phases,
                                                  args.tariff, args.speed)
        if not live_mode:
            print("run: %s; board root %s" % (info, emu.root), flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        if live_mode:
            from rich.live import Live
            from rich.console import Console
            console = Console()
            def view():
                tic = sum(st["bytes"] for st in emu.tic_stats().values())
                extra = "%s  TIC bytes served %d  gateway restarts %d" % (info, tic, emu.restarts)
                return render(model, list(log), info=extra, width=console.width)

            with Live(get_renderable=view,
                      console=console, refresh_per_second=4, redirect_stdout=True,
                      redirect_stderr=True, screen=False) as live:
                while emu.running() and (deadline is None or time.monotonic() < deadline):
                    time.sleep(0.25)
                live.refresh()
        else:
            printer = PlainPrinter(model, sys.stdout)
            while emu.running() and (deadline is None or time.monotonic() < deadline):
                printer.poll()
                time.sleep(0.25)
            printer.poll()
    except KeyboardInterrupt:
        interrupted = True
    except (EmulationError, RuntimeError, ValueError, OSError) as exc:
        print("run: %s" % exc, file=sys.stderr)
        rc = 1
    finally:
        crashed = emu is not None and emu.crashed()
        code = emu.stop() if emu is not None else None
        if model is not None:
            model.stop()
        if broker is not None:
            broker.stop()
    if crashed:
        print("run: the firmware exited on its own (code %s)" % code, file=sys.stderr)
        rc = 1
    elif emu is not None and emu.restarts:
        print("run: the board reset %d time(s) (watchdog / crash / reset)" % emu.restarts,
              file=sys.stderr)
        rc = 1
    if model is not None:
        _, entities, _, c, ndisc = model.snapshot()
        print("run: %d messages, %d state updates, %d entities, %d discovery configs"
              % (c["messages"], c["states"], len(entities), ndisc), flush=True)
    return 130 if interrupted and rc == 0 else rc
