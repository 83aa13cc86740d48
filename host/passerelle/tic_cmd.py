"""``passerelle tic decode FILE|-``: decode a raw TIC byte stream to JSON Lines.

Contract (other tools rely on it):

- stdout: one line per complete frame (STX ... ETX), in stream order::

    {"mode": "historic", "groups": {"ADCO": {"value": "021861348497"}, ...}, "invalid": 0}

  ``value`` is the data exactly as sent (padding included); a ``horodate`` key
  is present only when the group carries one (DATE has ``"value": ""``).
  ``invalid`` counts the groups rejected inside that frame; a frame with
  rejected groups is still printed with its valid groups.  Not printed: a
  frame cut by EOT, a frame whose ETX was lost (a new STX came first: cooked-tty
  recordings, where every frame is like this, print nothing but their groups
  are still decoded and counted), a frame without any valid group, groups
  outside STX ... ETX.
- stderr, at the end: one JSON line ``{"stats": {...}}`` with the decoder
  counters (see protocols/tic/README.md).
- exit status 0, or 2 if the input cannot be read.

The input is read in chunks (streaming), so ``-`` works on a live pipe.
"""

import json
import os
import sys

from protocols.tic import AUTO, HISTORIC, STANDARD, TicDecoder, labels

CHUNK = 4096
MODES = {'auto': AUTO, 'historic': HISTORIC, 'standard': STANDARD}
MODE_NAMES = {HISTORIC: 'historic', STANDARD: 'standard'}


def frame_json(frame):
    """The JSON Lines object of one frame (a dict, for json.dumps)."""
    groups = {}
    for label, (value, horodate) in labels.pairs(frame.groups).items():
        g = {'value': value}
        if horodate is not None:
            g['horodate'] = horodate
        groups[label] = g
    return {'mode': MODE_NAMES.get(frame.mode, 'auto'), 'groups': groups,
            'invalid': frame.invalid}


def decode_stream(read, write, mode=AUTO):
    """Decode chunks from ``read()`` (b'' at the end), ``write(line)`` each
    frame's JSON line; returns the decoder stats."""
    d = TicDecoder(mode)
    while True:
        chunk = read()
        if not chunk:
            break
        p = 0
        while p < len(chunk):
            used, frame = d.decode(chunk, p)
            p += used
            if frame is not None:
                write(json.dumps(frame_json(frame)) + '\n')
    return d.stats


def _reader(f):
    read1 = getattr(f, 'read1', None)
    if read1 is not None:
        return lambda: read1(CHUNK)
    return lambda: f.read(CHUNK)


def cmd_decode(args):
    out = sys.stdout

    def write(line):
        out.write(line)
        out.flush()

    try:
        if args.file == '-':
            stats = decode_stream(_reader(sys.stdin.buffer), write, MODES[args.mode])
        else:
            with open(args.file, 'rb') as f:
                stats = decode_stream(_reader(f), write, MODES[args.mode])
    except BrokenPipeError:     # e.g. piped into head: not an error
        try:
            sys.stdout = open(os.devnull, 'w')
        except OSError:
            pass
        return 0
    except OSError as exc:
        print('passerelle tic decode: %s' % exc, file=sys.stderr)
        return 2
    print(json.dumps({'stats': stats}), file=sys.stderr)
    return 0


def add_parser(subparsers):
    p = subparsers.add_parser('tic', help='Linky TIC tools',
                              description='Linky TIC (teleinformation) tools.')
    sub = p.add_subparsers(dest='tic_command', metavar='TIC_COMMAND')
    d = sub.add_parser('decode', help='decode a raw TIC capture to JSON Lines',
                       description=__doc__.split('\n\n', 1)[1],
                       formatter_class=_raw_formatter())
    d.add_argument('file', metavar='FILE|-', help='raw TIC bytes (- for stdin)')
    d.add_argument('--mode', choices=sorted(MODES), default='auto',
                   help='decoder mode (default: auto, from the separator)')
    d.set_defaults(func=cmd_decode)

    def usage(args):
        p.print_help()
        return 2
    p.set_defaults(func=usage)
    return p


def _raw_formatter():
    import argparse
    return argparse.RawDescriptionHelpFormatter
