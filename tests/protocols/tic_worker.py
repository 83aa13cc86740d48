"""Differential worker: the same decoding on CPython and on the MicroPython
unix port (portable subset: no f-strings, no typing).

``run(mode, chunk, data)`` decodes ``data`` with a fresh TicDecoder, feeding it
in slices of ``chunk`` bytes (0 = all at once), and returns a canonical,
ordering-independent repr of every frame and of the final counters.

Run as a script (``micropython tic_worker.py``) it serves one request per line
on stdin, ``<mode> <chunk> <hex>``, and prints one repr line per request: one
persistent process for a whole test session (harness.md section 4.6).
"""

import sys
import binascii

from protocols.tic import TicDecoder


def frames_of(d, data, chunk):
    out = []
    n = len(data)
    step = chunk if chunk > 0 else n
    i = 0
    while i < n:
        buf = data[i:i + step]
        p = 0
        while p < len(buf):
            used, f = d.decode(buf, p)
            p += used
            if f is not None:
                g = sorted(f.groups.items())
                out.append((f.mode, g, f.invalid))
        i += step
    return out


def run(mode, chunk, data):
    d = TicDecoder(mode)
    frames = frames_of(d, data, chunk)
    return repr((frames, sorted(d.stats.items())))


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        parts = line.split(' ')
        try:
            data = binascii.unhexlify(parts[2]) if len(parts) > 2 else b''
            res = run(int(parts[0]), int(parts[1]), data)
        except Exception as e:      # report, keep serving
            res = 'EXC ' + e.__class__.__name__
        sys.stdout.write(res + '\n')
        try:
            sys.stdout.flush()
        except AttributeError:
            pass


if __name__ == '__main__':
    main()
