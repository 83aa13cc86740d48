"""Streaming Linky TIC decoder (historic and standard modes).

See protocols/tic/README.md for the states, the counters and what is rejected
and why.  Summary of the tokenisation:

- every control byte (< 0x20) other than HT ends the current *segment*;
- LF, and any other control byte that is not CR/STX/ETX/EOT, opens a new one
  (LF received as 0x0B/0x0E/0x0F then still starts the next group);
- a segment is accepted as a group only if it was ended by CR (or LF: a
  recorder that translated CR to LF) and passes, in this order: structure
  (separator before the checksum), mode, checksum (rule chosen by that
  separator), label whitelist, data/horodate format;
- STX opens a frame, ETX closes it (the frame is returned), EOT aborts it.
  A second STX before ETX drops the open frame (``frames_unterminated``).

Groups are validated wherever they are, inside a frame or not, and counted in
``stats['groups']``; only groups inside an STX...ETX frame reach ``frame.groups``.
"""

from protocols.compat import const
from protocols.errors import UsageError
from protocols.tic.labels import AUTO, HISTORIC, STANDARD, HIST, STD, F_NUM, value_ok

GROUP_MAX = const(128)         # bytes between the opener and the terminator
FRAME_MAX_BYTES = const(3072)  # STX..ETX; the largest real standard frame is ~1.5 KB
FRAME_MAX_GROUPS = const(160)  # segments in one frame

_STX = const(2)
_ETX = const(3)
_EOT = const(4)
_HT = const(9)
_LF = const(10)
_CR = const(13)
_SP = const(32)

# counter indexes (stats names in NAMES, same order)
_GROUPS = const(0)
_CHECKSUM = const(1)
_LABEL = const(2)
_FORMAT = const(3)
_MODE = const(4)
_TRUNC = const(5)
_MALFORMED = const(6)
_OVERFLOW = const(7)
_FRAMES = const(8)
_INTERRUPTED = const(9)
_UNTERMINATED = const(10)
_EMPTY = const(11)
_FOVERFLOW = const(12)
_GARBAGE = const(13)
_BYTES = const(14)
_NCOUNTERS = const(15)

NAMES = ('groups', 'checksum_errors', 'label_errors', 'format_errors', 'mode_errors',
         'truncated', 'malformed', 'overflows', 'frames', 'frames_interrupted',
         'frames_unterminated', 'frames_empty', 'frames_overflow', 'garbage_bytes',
         'bytes')

# decoder states
_BETWEEN = const(0)   # not inside a segment
_INSEG = const(1)     # inside a segment whose bytes so far are in self._g
_SKIP = const(2)      # inside an over-long segment: skip to the next control byte

# label record: one list per label seen by this decoder, built once and updated
_R_RAW = const(0)     # bytes of the last accepted occurrence, label..checksum + CR
_R_TUP = const(1)     # its (value, horodate) tuple, reused while the bytes repeat
_R_NEXT = const(2)    # record of the label that followed it last time (prediction)
_R_LABEL = const(3)
_R_MODE = const(4)
_R_LSEP = const(5)    # label bytes + separator, to recognise the predicted label
_R_K = const(6)       # len(label) + 1: data (or horodate) offset
_R_LSUM = const(7)    # checksum contribution of the label and separator(s)
_R_SPEC = const(8)
_R_SIZE = const(9)


def _scan(b, p, lim):
    """Index of the first control byte other than HT in b[p:lim], or lim."""
    while p < lim:
        x = b[p]
        if x < 32 and x != 9:
            return p
        p += 1
    return lim


class TicFrame:
    """One decoded frame; the decoder reuses it (valid until the next decode())."""

    def __init__(self):
        self.mode = AUTO
        self.groups = {}    # label -> (value, horodate or None)
        self.invalid = 0    # segments rejected inside this frame


class TicDecoder:
    """``used, frame = d.decode(buf, start)``; never raises on wire data."""

    def __init__(self, mode=AUTO):
        if mode not in (AUTO, HISTORIC, STANDARD):
            raise UsageError('mode must be AUTO, HISTORIC or STANDARD')
        self._cfg = mode
        self._g = bytearray(GROUP_MAX + 2)
        self._gmv = memoryview(self._g)
        self._keys = [None] * (FRAME_MAX_GROUPS + 1)
        self._nk = 0
        self._c = [0] * _NCOUNTERS
        self._recs = {}                  # label -> record
        self._start = [None] * _R_SIZE   # pseudo record: its NEXT is the first label
        self.frame = TicFrame()
        # size both dicts for every known label now, while the heap is young:
        # decoding then never needs a large contiguous block (a grown table)
        for d in (self.frame.groups, self._recs):
            for t in (HIST, STD):
                for label in t:
                    d[label] = None
            for t in (HIST, STD):
                for label in t:
                    del d[label]
        self.reset()

    def reset(self):
        """Forget any partial group/frame and zero the counters (the label
        records, a pure cache, are kept)."""
        c = self._c
        for i in range(_NCOUNTERS):
            c[i] = 0
        # the stream may start in the middle of a group: treat its start as an
        # opener, so that a complete group before the first LF is not lost
        self._st = _INSEG
        self._glen = 0
        self._clear()
        self._inf = False
        self._fstart = 0
        self._pred = None    # record expected next (or None)
        self._prev = None    # record of the previous accepted group (or None)
        self.mode = self._cfg   # mode of the last frame returned (AUTO until then)

    @property
    def in_frame(self):
        """True between an STX and the end of that frame (ETX, EOT, new STX)."""
        return self._inf

    @property
    def stats(self):
        c = self._c
        d = {}
        for i in range(_NCOUNTERS):
            d[NAMES[i]] = c[i]
        return d

    # -- frame bookkeeping -------------------------------------------------

    def _clear(self):
        g = self.frame.groups
        k = self._keys
        for i in range(self._nk):
            g.pop(k[i], None)
            k[i] = None
        self._nk = 0
        self.frame.invalid = 0
        self._fmode = self._cfg

    def _stx(self, pos):
        if self._inf:
            self._c[_UNTERMINATED] += 1
        self._clear()
        self._inf = True
        self._fstart = pos
        self._prev = self._start
        self._pred = self._start[_R_NEXT]

    def _etx(self, pos):
        self._inf = False
        c = self._c
        if pos - self._fstart > FRAME_MAX_BYTES:
            c[_FOVERFLOW] += 1
            return None
        if self._nk == 0:
            c[_EMPTY] += 1
            return None
        c[_FRAMES] += 1
        f = self.frame
        f.mode = self.mode = self._fmode
        return f

    def _reject(self, r):
        self._c[r] += 1
        self._pred = None
        self._prev = None
        if self._inf:
            f = self.frame
            f.invalid += 1
            if self._nk + f.invalid > FRAME_MAX_GROUPS:
                self._c[_FOVERFLOW] += 1
                self._inf = False

    # -- one segment ---------------------------------------------------------

    def _label(self, b, mv, a, e, sep, gm):
        """Identify the label of segment [a, e) without prediction.
        Returns its record, or an int counter index on error."""
        d = e - 2
        k = b.find(b' ' if sep == _SP else b'\t', a, d)
        if k <= a:
            return _MALFORMED
        s = sum(mv[a:d])
        if sep == _HT:
            s += _HT
        if (s & 63) + 32 != b[e - 1]:
            return _CHECKSUM
        try:
            label = str(mv[a:k], 'ascii')
        except ValueError:
            return _LABEL
        rec = self._recs.get(label)
        if rec is None or rec[_R_MODE] != gm:
            spec = (HIST if gm == HISTORIC else STD).get(label)
            if spec is None:
                return _LABEL
            lsum = sep
            for ch in label:
                lsum += ord(ch)
            if sep == _HT:
                lsum += _HT    # the HT before the checksum is included in standard mode
            rec = [None] * _R_SIZE
            rec[_R_LABEL] = label
            rec[_R_MODE] = gm
            rec[_R_LSEP] = label.encode() + (b' ' if sep == _SP else b'\t')
            rec[_R_K] = len(label) + 1
            rec[_R_LSUM] = lsum
            rec[_R_SPEC] = spec
            self._recs[label] = rec
        return rec

    def _check(self, b, mv, a, e):
        """Validate segment b[a:e] (label..checksum; b[e] is its terminator).
        On success store/count it and return 0; otherwise return the counter
        index of the error and change nothing (the caller counts it)."""
        if e - a < 4:
            return _MALFORMED
        sep = b[e - 2]
        if sep == _SP:
            gm = HISTORIC
        elif sep == _HT:
            gm = STANDARD
        else:
            return _MALFORMED
        cfg = self._cfg
        if cfg and cfg != gm:
            return _MODE
        d = e - 2
        rec = self._pred
        if (rec is not None and rec[_R_MODE] == gm and a + rec[_R_K] <= d
                and b.startswith(rec[_R_LSEP], a)):
            k = a + rec[_R_K]
            g = mv[k:d]
            if (rec[_R_LSUM] + sum(g)) & 63 != b[e - 1] - 32:
                return _CHECKSUM
        else:
            rec = self._label(b, mv, a, e, sep, gm)
            if rec.__class__ is int:
                return rec
            k = a + rec[_R_K]
            g = mv[k:d]
        label = rec[_R_LABEL]
        spec = rec[_R_SPEC]
        try:
            if spec[3]:
                # horodated: SAAMMJJhhmmss HT data; season [ EHeh], 12 digits
                if d - k < 14 or b[k + 13] != _HT:
                    return _FORMAT
                x = b[k]
                if x != 72 and x != 69 and x != 32 and x != 104 and x != 101:
                    return _FORMAT
                i = k + 1
                while i < k + 13:
                    x = b[i]
                    if x < 48 or x > 57:
                        return _FORMAT
                    i += 1
                hd = str(mv[k:k + 13], 'ascii')
                v = str(mv[k + 14:d], 'ascii')
            else:
                hd = None
                v = str(g, 'ascii')
        except ValueError:      # bytes >= 0x80 that are not UTF-8 (CPython: any)
            return _FORMAT
        if spec[0] == F_NUM:
            n = len(v)
            if n < spec[1] or n > spec[2] or not v.isdigit():
                return _FORMAT
        elif not value_ok(label, spec, v):
            return _FORMAT
        t = (v, hd)
        if self._inf:
            fm = self._fmode
            if fm != gm:
                if fm:
                    return _MODE
                self._fmode = gm
            self.frame.groups[label] = t
            n = self._nk
            self._keys[n] = label
            self._nk = n + 1
            if n + 1 + self.frame.invalid > FRAME_MAX_GROUPS:
                self._c[_FOVERFLOW] += 1
                self._inf = False
        self._c[_GROUPS] += 1
        rec[_R_TUP] = t
        rec[_R_RAW] = bytes(mv[a:e + 1]) if b[e] == _CR else None
        prev = self._prev
        if prev is not None:
            prev[_R_NEXT] = rec
        self._prev = rec
        self._pred = rec[_R_NEXT]
        return 0

    def _ended(self, b, mv, a, q):
        """Segment b[a:q] ended by the control byte b[q].  Returns 0 or a
        counter index, or -1 for an empty segment."""
        if q == a:
            return -1
        x = b[q]
        if x == _CR or x == _LF:
            return self._check(b, mv, a, q)
        return _TRUNC

    def _segment(self, b, mv, a, n):
        """A segment opens at ``a`` (the byte after its opener): decode it
        and return the position to continue from."""
        lim = a + GROUP_MAX + 1
        if lim > n:
            lim = n
        e = b.find(b'\r', a, lim)
        if e > a:
            r = self._check(b, mv, a, e)
            if r == 0:
                return e + 1
            q = _scan(b, a, e)
            if q == e:              # no other control byte inside: a real error
                self._reject(r)
                return e + 1
        elif e == a:
            return a + 1
        else:
            q = _scan(b, a, lim)
            if q == lim:
                if lim == n and n - a <= GROUP_MAX:     # chunk ends mid-group
                    self._g[0:n - a] = mv[a:n]
                    self._glen = n - a
                    self._st = _INSEG
                    return n
                self._reject(_OVERFLOW)
                self._st = _SKIP
                return self._skip(b, lim, n)
        # control byte at q ends the segment; q itself is examined next
        r = self._ended(b, mv, a, q)
        if r > 0:
            self._reject(r)
        return q

    # -- streaming -----------------------------------------------------------

    def _skip(self, b, p, n):
        q = _scan(b, p, n)
        self._c[_GARBAGE] += q - p
        if q < n:
            self._st = _BETWEEN
        return q

    def _resume(self, b, mv, p, n):
        """Continue the partial segment held in self._g with b[p:n]."""
        if self._st == _SKIP:
            return self._skip(b, p, n)
        glen = self._glen
        room = GROUP_MAX + 1 - glen
        lim = p + room
        if lim > n:
            lim = n
        q = _scan(b, p, lim)
        if q < lim:
            k = q - p
            g = self._g
            if k:
                g[glen:glen + k] = mv[p:q]
            self._st = _BETWEEN
            glen += k
            x = b[q]
            g[glen] = x     # the terminator, as _check expects it after the segment
            if glen == 0:
                r = 0
            elif x == _CR or x == _LF:
                r = self._check(g, self._gmv, 0, glen)
            else:
                r = _TRUNC
            if r:
                self._reject(r)
            return q + 1 if x == _CR else q
        if lim < p + room:        # chunk exhausted, still no terminator
            self._g[glen:glen + n - p] = mv[p:n]
            self._glen = glen + n - p
            return n
        self._reject(_OVERFLOW)
        self._st = _SKIP
        return self._skip(b, lim, n)

    def decode(self, buf, start=0, end=None):
        """Consume bytes from ``buf[start:end]`` (``end`` defaults to
        ``len(buf)``; pass it to decode part of a preallocated read buffer
        without copying): returns ``(used, frame)`` as soon as a frame ends
        (``frame`` is ``self.frame``), else ``(end - start, None)``."""
        if not isinstance(buf, (bytes, bytearray)):
            if not isinstance(buf, memoryview):
                raise UsageError('decode() needs bytes, bytearray or memoryview')
            buf = bytes(buf)    # a copy: memoryview has no find()
        n = len(buf)
        if end is not None:
            if end < 0 or end > n:
                raise UsageError('end out of range')
            n = end
        if start < 0 or start > n:
            raise UsageError('start out of range')
        if start == n:
            return 0, None
        c = self._c
        mv = memoryview(buf)
        p = start
        if self._st:
            p = self._resume(buf, mv, p, n)
        groups = self.frame.groups
        keys = self._keys
        # hot state kept in locals; written back before any method call
        pred = self._pred
        inf = self._inf
        fmode = self._fmode
        nk = self._nk
        nkmax = FRAME_MAX_GROUPS - self.frame.invalid
        ng = 0
        while p < n:
            x = buf[p]
            if x == _LF:
                a = p + 1
                if pred is not None:
                    # fast path: the expected label with exactly the bytes it
                    # had last time (validated then): reuse its tuple
                    raw = pred[_R_RAW]
                    if raw is not None and buf.startswith(raw, a, n):
                        if inf:
                            if fmode != pred[_R_MODE]:
                                if fmode:
                                    raw = None
                                else:
                                    fmode = pred[_R_MODE]
                            if nk >= nkmax:    # let _check() close the frame
                                raw = None
                        if raw is not None:
                            if inf:
                                x = pred[_R_LABEL]
                                groups[x] = pred[_R_TUP]
                                keys[nk] = x
                                nk += 1
                            ng += 1
                            p = a + len(raw)
                            self._prev = pred
                            pred = pred[_R_NEXT]
                            continue
                self._pred = pred
                self._fmode = fmode
                self._nk = nk
                p = self._segment(buf, mv, a, n)
                pred = self._pred
                inf = self._inf
                fmode = self._fmode
                nk = self._nk
                nkmax = FRAME_MAX_GROUPS - self.frame.invalid
            elif x >= 32 or x == _HT:
                q = _scan(buf, p + 1, n)
                c[_GARBAGE] += q - p
                p = q
            elif x == _CR:
                p += 1
            else:
                self._pred = pred
                self._fmode = fmode
                self._nk = nk
                if x == _STX:
                    self._stx(c[_BYTES] + p - start)
                    p += 1
                elif x == _ETX:
                    p += 1
                    if inf:
                        f = self._etx(c[_BYTES] + p - start)
                        if f is not None:
                            c[_GROUPS] += ng
                            c[_BYTES] += p - start
                            return p - start, f
                elif x == _EOT:
                    if inf:
                        self._inf = False
                        c[_INTERRUPTED] += 1
                    p += 1
                else:   # any other control byte opens a segment (LF received as 0x0B...)
                    p = self._segment(buf, mv, p + 1, n)
                pred = self._pred
                inf = self._inf
                fmode = self._fmode
                nk = self._nk
                nkmax = FRAME_MAX_GROUPS - self.frame.invalid
        self._pred = pred
        self._fmode = fmode
        self._nk = nk
        c[_GROUPS] += ng
        c[_BYTES] += n - start
        return n - start, None
