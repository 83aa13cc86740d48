"""``passerelle sim linky``: write a simulated Linky TIC byte stream (raw bytes, as on the wire)."""

import sys
import time

from .sim.linky import MODES, TARIFFS, LinkySim


def add_parser(subparsers):
    p = subparsers.add_parser("sim", help="simulate devices (a Linky TIC meter)",
                              description="Simulate devices and write their raw output.")
    sub = p.add_subparsers(dest="sim_kind", metavar="DEVICE")
    lk = sub.add_parser("linky", help="write raw TIC frames of a simulated Linky meter",
                        description="Write the raw TIC byte stream (STX..ETX frames) of a "
                        "deterministic simulated Linky meter.")
    lk.add_argument("--mode", choices=MODES, default="historic")
    lk.add_argument("--phases", type=int, choices=(1, 3), default=1)
    lk.add_argument("--tariff", choices=TARIFFS, default="base")
    lk.add_argument("--frames", type=int, default=10, metavar="N",
                    help="number of frames (0 = endless; default 10)")
    lk.add_argument("--seed", type=int, default=0)
    lk.add_argument("--noise", type=float, default=0.0, metavar="P",
                    help="probability per group of a transmission error (bit drop, lost LF, "
                    "truncation, EOT); default 0")
    lk.add_argument("--start", default=None, metavar="EPOCH|now",
                    help="meter clock at the first frame (UTC epoch seconds or 'now'; "
                    "default a fixed winter evening)")
    lk.add_argument("--accel", type=float, default=1.0, metavar="X",
                    help="meter clock runs X times faster than the line (default 1)")
    lk.add_argument("--realtime", action="store_true",
                    help="pace the output at the meter's line rate")
    lk.add_argument("-o", "--output", default="-", metavar="FILE|-", help="output file (default stdout)")
    lk.set_defaults(func=run_linky)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _start(value):
    if value is None:
        return None
    if value == "now":
        return int(time.time())
    return int(float(value))


def run_linky(args):
    sim = LinkySim(mode=args.mode, phases=args.phases, tariff=args.tariff, seed=args.seed,
                   noise=args.noise, start=_start(args.start), accel=args.accel)
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")
    t_origin = time.monotonic()
    try:
        for t, raw in sim.stream(frames=args.frames or None):
            if args.realtime:
                delay = t - (time.monotonic() - t_origin)
                if delay > 0:
                    time.sleep(delay)
            out.write(raw)
            if args.realtime:
                out.flush()
        out.flush()
    except BrokenPipeError:
        return 0
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    if args.noise:
        st = sim.noise_stats
        print("sim: %d frames, %d groups; injected %d bit drops, %d lost LF, %d truncations, %d EOT"
              % (st["frames"], st["groups"], st["bit_drops"], st["lost_lf"], st["truncations"],
                 st["eot"]), file=sys.stderr)
    return 0
