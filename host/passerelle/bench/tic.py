"""TIC decoder benchmark: MicroPython unix port (time and allocation per frame)
and CPython (frames per second).

    python -m passerelle.bench.tic [--micropython PATH] [--json]

Method (unix port): frames come from the simulator-style encoder
(``tic_sample.py``: evolving values, like a real meter); each frame is passed
to ``decode()`` as one buffer.  Time = best of REPS passes over NF frames
(the machine may be shared, the minimum is the least disturbed figure; the
median is reported too).  Allocation = ``gc.mem_alloc()`` delta over NF frames
with the GC disabled, divided by NF.  A "worst case" where every group of every
frame differs from the previous frame (no group can reuse its previous
decoding) is measured as well, for information.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

BUDGET_US = {'historic': 60.0, 'standard': 250.0}
BUDGET_ALLOC = {'historic': 2500, 'standard': 10000}

_HERE = Path(__file__).resolve().parent

_UNIX_CODE = r'''
import gc, time, json
from protocols.tic import TicDecoder, encode_frame, HISTORIC, STANDARD

REPS = 9
NF = 60


def _worst(kind, i):
    # every group changes at every frame (the last digit of every numeric
    # field, a letter of every text field): defeats any reuse, not realistic
    src = historic_groups(i) if kind == 'historic' else standard_groups(i)
    out = []
    for g in src:
        v = g[1]
        if v.isdigit():
            v = v[:-1] + str(i % 10)
        elif len(v) > 1 and g[0] not in ('OPTARIF', 'PTEC', 'DEMAIN', 'STGE'):
            v = v[:-1] + 'ABCDEFGHIJ'[i % 10]
        elif g[0] == 'STGE':
            v = v[:-1] + str(i % 10)
        h = g[2] if len(g) > 2 else None
        if h is not None:
            h = h[:-1] + str(i % 10)
        out.append((g[0], v, h) if kind == 'standard' else (g[0], v))
    return encode_frame(out, HISTORIC if kind == 'historic' else STANDARD)


def measure(fr):
    d = TicDecoder()
    for f in fr[:5]:
        d.decode(f, 0)
    fr = fr[5:]
    times = []
    for r in range(REPS):
        gc.collect()
        t0 = time.ticks_us()
        for f in fr:
            d.decode(f, 0)
        times.append(time.ticks_diff(time.ticks_us(), t0) / len(fr))
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    ok = 0
    for f in fr:
        used, x = d.decode(f, 0)
        if x is not None:
            ok += 1
    a1 = gc.mem_alloc()
    gc.enable()
    times.sort()
    return {'best_us': times[0], 'median_us': times[len(times) // 2],
            'alloc': (a1 - a0) / len(fr), 'frames_ok': ok, 'frames': len(fr),
            'bytes_per_frame': len(fr[0]), 'groups': len(x.groups) if x else 0}


res = {}
for kind in ('historic', 'standard'):
    res[kind] = measure(frames(kind, NF + 5))
    res[kind + '_worst'] = measure([_worst(kind, i) for i in range(NF + 5)])
print('BENCH ' + json.dumps(res))
'''


def _script():
    return (_HERE / 'tic_sample.py').read_text() + _UNIX_CODE


def run_unix_port(micropython_path, project_root):
    """Measure the decoder on the MicroPython unix port.

    Returns ``{"unix_us_per_frame": {"historic": x, "standard": y},
    "unix_alloc_bytes_per_frame": {...}, "unix_us_per_frame_median": {...},
    "unix_worst_case": {...}, "details": {...}}``.
    """
    env = dict(os.environ)
    env['MICROPYPATH'] = str(project_root)
    proc = subprocess.run([str(micropython_path), '-c', _script()], env=env,
                          capture_output=True, text=True, timeout=300)
    line = [x for x in proc.stdout.splitlines() if x.startswith('BENCH ')]
    if proc.returncode != 0 or not line:
        raise RuntimeError('micropython benchmark failed: %s%s' % (proc.stdout, proc.stderr))
    raw = json.loads(line[-1][6:])
    out = {'unix_us_per_frame': {}, 'unix_alloc_bytes_per_frame': {},
           'unix_us_per_frame_median': {}, 'unix_worst_case': {}, 'details': raw}
    for kind in ('historic', 'standard'):
        r = raw[kind]
        out['unix_us_per_frame'][kind] = round(r['best_us'], 1)
        out['unix_us_per_frame_median'][kind] = round(r['median_us'], 1)
        out['unix_alloc_bytes_per_frame'][kind] = round(r['alloc'])
        w = raw[kind + '_worst']
        out['unix_worst_case'][kind] = {'us_per_frame': round(w['best_us'], 1),
                                        'alloc_bytes_per_frame': round(w['alloc'])}
    return out


def run_cpython(seconds=0.5):
    """Frames per second of the decoder under this CPython, per mode."""
    ns = {}
    exec(compile((_HERE / 'tic_sample.py').read_text(), 'tic_sample.py', 'exec'), ns)
    from protocols.tic import TicDecoder
    out = {}
    for kind in ('historic', 'standard'):
        fr = ns['frames'](kind, 60)
        d = TicDecoder()
        n = 0
        t0 = time.perf_counter()
        while True:
            for f in fr:
                d.decode(f, 0)
            n += len(fr)
            dt = time.perf_counter() - t0
            if dt >= seconds:
                break
        out[kind] = round(n / dt)
    return {'cpython_frames_per_s': out}


def check_budgets(unix):
    """``[(what, value, budget, ok), ...]`` for the unix-port figures."""
    rows = []
    for kind in ('historic', 'standard'):
        v = unix['unix_us_per_frame'][kind]
        rows.append(('%s us/frame' % kind, v, BUDGET_US[kind], v <= BUDGET_US[kind]))
        v = unix['unix_alloc_bytes_per_frame'][kind]
        rows.append(('%s bytes allocated/frame' % kind, v, BUDGET_ALLOC[kind],
                     v <= BUDGET_ALLOC[kind]))
    return rows


def main(argv=None):
    import argparse
    from passerelle import project_root
    root = project_root()
    ap = argparse.ArgumentParser(prog='python -m passerelle.bench.tic',
                                 description='Benchmark the TIC decoder.')
    ap.add_argument('--micropython', default=str(root / '.venv' / 'bin' / 'micropython'))
    ap.add_argument('--json', action='store_true', help='print one JSON object')
    args = ap.parse_args(argv)
    if root.as_posix() not in sys.path:
        sys.path.insert(0, root.as_posix())
    unix = run_unix_port(args.micropython, root)
    cpy = run_cpython()
    rows = check_budgets(unix)
    ok = all(r[3] for r in rows)
    if args.json:
        res = dict(unix)
        res.update(cpy)
        res['budgets_ok'] = ok
        print(json.dumps(res))
        return 0 if ok else 1
    for what, v, budget, good in rows:
        print('%-34s %10s  budget %6s  %s' % (what, v, budget, 'PASS' if good else 'FAIL'))
    for kind in ('historic', 'standard'):
        print('%-34s %10s' % ('%s us/frame (median)' % kind, unix['unix_us_per_frame_median'][kind]))
        w = unix['unix_worst_case'][kind]
        print('%-34s %10s  (%d B/frame; every group changed, informational)'
              % ('%s us/frame worst case' % kind, w['us_per_frame'], w['alloc_bytes_per_frame']))
        print('%-34s %10s' % ('CPython %s frames/s' % kind, cpy['cpython_frames_per_s'][kind]))
    print('budgets: %s' % ('PASS' if ok else 'FAIL'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
