"""Streaming Linky TIC decoder (historic and standard modes).

See protocols/tic/README.md for the states, counters, what is rejected and why.
- every control byte (< 0x20) other than HT ends the current *segment*; LF, and
  any other control byte that is not CR/STX/ETX/EOT, opens a new one (LF received
  as 0x0B/0x0E/0x0F then still starts the next group);
- a segment is a group only if ended by CR (or LF: a recorder that translated CR
  to LF) and it passes, in order: structure (separator before the checksum),
  mode, checksum (rule chosen by that separator), label whitelist, data format;
- STX opens a frame, ETX closes it (the frame is returned), EOT aborts it; a
  second STX before ETX drops the open frame (``frames_unterminated``).

Groups are validated wherever they are, inside a frame or not, and counted in
``stats['groups']``; only groups inside an STX...ETX frame reach ``frame.groups``.
"""

from array import array

from protocols.compat import const, IS_MICROPYTHON
from protocols.errors import UsageError
from protocols.tic.labels import NAMES, CODES, SPECS, data_ok

GROUP_MAX = const(128)         # bytes between the opener and the terminator
FRAME_MAX_BYTES = const(3072)  # STX..ETX; the largest real standard frame is ~1.5 KB
FRAME_MAX_GROUPS = const(160)  # segments in one frame
CACHE_MAX = const(2048)        # bytes of raw groups kept for the reuse (one per label)
CACHE_HISTORIC = const(768)    # the same for a decoder fixed to historic mode (3P: ~450 B)
_ROOM_S = const(72)            # frame.groups sized for the 71 standard labels (73 slots)
_ROOM_H = const(32)

_AUTO = const(0)        # labels.AUTO, HISTORIC, STANDARD, F_NUM
_HISTORIC = const(1)
_STANDARD = const(2)
_F_NUM = const(1)

_STX = const(2)
_ETX = const(3)
_EOT = const(4)
_HT = const(9)
_LF = const(10)
_CR = const(13)
_SP = const(32)

_NH = const(36)     # labels.NH: NAMES[:36] historic, NAMES[36:] standard
_NL = const(107)    # len(labels.NAMES)
_NONE = const(255)  # "no label" in the label-index tables
_START = const(107)  # pseudo label "start of frame" in self._nx

# counter indexes, in the order of STAT_NAMES
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
_MUT = const(15)    # _c[_MUT], not a stat: bumped when the cache or _nx may change (frames.py)
STAT_NAMES = ('groups checksum_errors label_errors format_errors mode_errors truncated '  # one
         'malformed overflows frames frames_interrupted frames_unterminated '  # str: a tuple
         'frames_empty frames_overflow garbage_bytes bytes')  # would hold 15 str objects
# decoder states
_BETWEEN = const(0)   # not inside a segment
_INSEG = const(1)     # inside a segment whose bytes so far are in self._g
_SKIP = const(2)      # inside an over-long segment: skip to the next control byte


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

    def __init__(self, room=0):
        self.mode = _AUTO
        self.groups = g = {}    # label -> value, or (value, horodate): see TicDecoder
        for i in range(room):   # sized now (growing it later needs a block a busy
            g[i] = None         # small heap lacks; clear() would free the table)
        for i in range(room):
            del g[i]
        self.invalid = 0    # segments rejected inside this frame


class TicDecoder:
    """``used, frame = d.decode(buf, start)``; never raises on wire data.

    ``frame.groups[label]``: the data as sent, or ``(data, horodate)`` if horodated.

    Reuse cache (README "Performance", "Memory"), per label index ``i`` in
    ``labels.NAMES``: ``_rb[_ro[i]:_ro[i] + _rl[i]]`` are the raw bytes (label..CR)
    of its last accepted occurrence in a frame, whose value (or tuple) is
    ``frame.groups[label]`` (``_rl[i]`` = 0: nothing cached); ``_nx[i]`` is the
    label that followed it (the prediction).  Invariant: ``_rl[i] > 0`` implies
    ``frame.groups`` holds that label with the value of those bytes, so a group
    identical to its cache is accepted without touching the dict; ``frame.groups``
    is not emptied at STX: labels not seen (``_fs[i] != _tag``) go at ETX."""

    def __init__(self, mode=_AUTO):
        if mode != _AUTO and mode != _HISTORIC and mode != _STANDARD:
            raise UsageError('mode must be AUTO, HISTORIC or STANDARD')
        self._cfg = mode
        self._g = bytearray(GROUP_MAX + 2)
        self._gmv = memoryview(self._g)
        self._c = [0] * (_NCOUNTERS + 1)
        self.frame = TicFrame(_ROOM_H if mode == _HISTORIC else _ROOM_S)
        # raw groups, allocated once (see _compact)
        self._rb = bytearray(CACHE_HISTORIC if mode == _HISTORIC else CACHE_MAX)
        self._rmv = memoryview(self._rb)
        self._top = 0                       # end of the used part of _rb
        self._ro = array('H', bytes(2 * _NL))
        self._rl = bytearray(_NL)
        self._fs = bytearray(_NL)           # frame tag of the last frame that had the label
        self._tag = 0
        nx = bytearray(_NL + 1)
        for i in range(_NL + 1):
            nx[i] = _NONE
        self._nx = nx
        # CPython: the whole-frame path (None: main loop only); MicroPython has no
        if not IS_MICROPYTHON:  # _fp at all (RAM), so IS_MICROPYTHON is tested first
            from protocols.tic.frames import WholeFrames
            self._fp = WholeFrames()
        self.reset()

    def reset(self):
        """Forget any partial group/frame and zero the counters (the reuse
        cache is kept)."""
        c = self._c
        for i in range(_NCOUNTERS):
            c[i] = 0
        # the stream may start in the middle of a group: treat its start as an
        # opener, so that a complete group before the first LF is not lost
        self._st = _INSEG
        self._glen = 0
        self._inf = False
        self._nk = 0
        self._nseen = 0
        self.frame.invalid = 0
        self._fmode = self._cfg
        self._fstart = 0
        self._pred = _NONE   # label index expected next
        self._prev = _NONE   # label index of the previous accepted group
        self.mode = self._cfg   # mode of the last frame returned (AUTO until then)

    @property
    def in_frame(self):
        """True between an STX and the end of that frame (ETX, EOT, new STX)."""
        return self._inf

    @property
    def stats(self):
        """A new dict of the counters (STAT_NAMES, in counter order)."""
        return dict(zip(STAT_NAMES.split(), self._c))

    # -- frame bookkeeping -------------------------------------------------

    def _stx(self, pos):
        if self._inf:
            self._c[_UNTERMINATED] += 1
        tag = self._tag + 1
        if tag > 255:
            fs = self._fs
            for i in range(_NL):
                fs[i] = 0
            tag = 1
        self._tag = tag
        self._nk = 0
        self._nseen = 0
        self.frame.invalid = 0
        self._fmode = self._cfg
        self._inf = True
        self._fstart = pos
        self._prev = _START
        self._pred = self._nx[_START]

    def _etx(self, pos):
        self._inf = False
        c = self._c
        if pos - self._fstart > FRAME_MAX_BYTES:
            c[_FOVERFLOW] += 1
            return None
        if self._nk == 0:
            c[_EMPTY] += 1
            return None
        f = self.frame
        g = f.groups
        if len(g) != self._nseen:
            # labels left by an earlier frame: drop them, and their cache (no list(g): 0.5 KB)
            fs = self._fs
            tag = self._tag
            for i in range(len(NAMES)):
                if fs[i] != tag and NAMES[i] in g:
                    del g[NAMES[i]]
                    self._rl[i] = 0
                    c[_MUT] += 1
        c[_FRAMES] += 1
        f.mode = self.mode = self._fmode
        return f

    def _reject(self, r):
        self._c[r] += 1
        self._pred = _NONE
        self._prev = _NONE
        if self._inf:
            f = self.frame
            f.invalid += 1
            if self._nk + f.invalid > FRAME_MAX_GROUPS:
                self._c[_FOVERFLOW] += 1
                self._inf = False

    def _store(self, i, mv, a, n):
        """Cache raw bytes mv[a:a+n] as label i's last occurrence, at a new
        place (its length changed)."""
        rl = self._rl
        rl[i] = 0
        o = self._top
        if o + n > len(self._rb):
            o = self._compact(n)
            if o < 0:
                return
        self._top = o + n
        self._ro[i] = o
        rl[i] = n
        self._rb[o:o + n] = mv[a:a + n]

    def _compact(self, n):
        """Room for n more bytes: live entries moved down in place, by offset (if
        they cannot fit with n, the cache is emptied) -> offset, or -1.  Never
        reallocated: a late ~2 KB block is what a busy small heap cannot find."""
        rl = self._rl
        ro = self._ro
        rb = self._rb
        cap = len(rb)
        if sum(rl) + n > cap:
            for i in range(_NL):
                rl[i] = 0
        top = 0
        while True:
            j = -1
            best = cap
            for i in range(_NL):    # the unmoved live entry with the lowest offset
                o = ro[i]
                if rl[i] and top <= o < best:
                    best = o
                    j = i
            if j < 0:
                break
            k = rl[j]
            if best != top:
                for x in range(k):  # forward byte copy: regions may overlap, rare path
                    rb[top + x] = rb[best + x]
                ro[j] = top
            top += k
        self._top = top
        if top + n > cap:
            return -1
        return top

    # -- one segment ---------------------------------------------------------

    def _check(self, b, mv, a, e):
        """Validate segment b[a:e] (label..checksum; b[e] is its terminator).
        On success store/count it and return 0; otherwise return the counter
        index of the error and change nothing (the caller counts it)."""
        if e - a < 4:
            return _MALFORMED
        d = e - 2
        sep = b[d]
        if sep == _SP:
            gm = _HISTORIC
            k = b.find(b' ', a, d)
        elif sep == _HT:
            gm = _STANDARD
            k = b.find(b'\t', a, d)
        else:
            return _MALFORMED
        cfg = self._cfg
        if cfg and cfg != gm:
            return _MODE
        if k <= a:
            return _MALFORMED
        s = sum(mv[a:d])
        if sep == _HT:
            s += _HT    # the HT before the checksum is included in standard mode
        if (s & 63) + 32 != b[e - 1]:
            return _CHECKSUM
        rl = self._rl
        i = self._pred
        if (i != _NONE and rl[i] and k - a == len(NAMES[i])
                and mv[a:k] == self._rmv[self._ro[i]:self._ro[i] + k - a]):
            # the expected label (its last bytes start with it): no lookup
            if (i < _NH) != (gm == _HISTORIC):
                return _LABEL
            label = NAMES[i]
        else:
            try:
                # an interned label (see labels.py): no allocation
                label = str(mv[a:k], 'ascii')
                if gm == _HISTORIC:
                    i = NAMES.index(label, 0, _NH)
                else:
                    i = NAMES.index(label, _NH)
            except ValueError:      # not ASCII (CPython), not in the table
                return _LABEL
        o = CODES[i] * 6
        k += 1
        try:
            if SPECS[o + 3]:
                # horodated: SAAMMJJhhmmss HT data; season [ EHeh], 12 digits
                if d - k < 14 or b[k + 13] != _HT:
                    return _FORMAT
                x = b[k]
                if x != 72 and x != 69 and x != 32 and x != 104 and x != 101:
                    return _FORMAT
                j = k + 1
                while j < k + 13:
                    x = b[j]
                    if x < 48 or x > 57:
                        return _FORMAT
                    j += 1
                hd = str(mv[k:k + 13], 'ascii')
                k += 14
            else:
                hd = None
            v = str(mv[k:d], 'ascii')
        except ValueError:      # bytes >= 0x80 that are not UTF-8 (CPython: any)
            return _FORMAT
        if SPECS[o] == _F_NUM:
            n = len(v)
            if n < SPECS[o + 1] or n > SPECS[o + 2] or not v.isdigit():
                return _FORMAT
        elif not data_ok(o, v, b, k, d):
            return _FORMAT
        if self._inf:
            fm = self._fmode
            if fm != gm:
                if fm:
                    return _MODE
                self._fmode = gm
            self.frame.groups[label] = v if hd is None else (v, hd)
            fs = self._fs
            if fs[i] != self._tag:
                fs[i] = self._tag
                self._nseen += 1
            n = e + 1 - a
            if b[e] != _CR:
                rl[i] = 0
            elif rl[i] == n:    # same length as the cached bytes: overwrite them
                o = self._ro[i]
                self._rb[o:o + n] = mv[a:e + 1]
            else:
                self._store(i, mv, a, n)
            n = self._nk + 1
            self._nk = n
            if n + self.frame.invalid > FRAME_MAX_GROUPS:
                self._c[_FOVERFLOW] += 1
                self._inf = False
        self._c[_GROUPS] += 1
        self._c[_MUT] += 1
        prev = self._prev
        if prev != _NONE:
            self._nx[prev] = i
        self._prev = i
        self._pred = self._nx[i]
        return 0

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
        # control byte at q ends the segment (only CR/LF end a group); q itself
        # is examined next
        if q > a:
            x = b[q]
            r = self._check(b, mv, a, q) if x == _CR or x == _LF else _TRUNC
            if r:
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
        elif not IS_MICROPYTHON and self._fp and buf[p] == _STX:  # frames.py
            p, f = self._fp.whole(self, buf, mv, p, n, start)
            if f is not None:
                return p - start, f
        rl = self._rl
        ro = self._ro
        fs = self._fs
        nx = self._nx
        # hot state kept in locals; written back before any method call
        rmv = self._rmv
        pred = self._pred
        prev = self._prev
        inf = self._inf
        fmode = self._fmode
        nk = self._nk
        nseen = self._nseen
        tag = self._tag
        nkmax = FRAME_MAX_GROUPS - self.frame.invalid
        ng = 0
        while p < n:
            x = buf[p]
            if x == _LF:
                a = p + 1
                if pred != _NONE:
                    # fast path: the expected label with exactly the bytes it
                    # had last time (validated then, its tuple is in the dict)
                    k = rl[pred]
                    if k and a + k <= n:
                        o = ro[pred]
                        if mv[a:a + k] == rmv[o:o + k]:
                            if inf:
                                x = _HISTORIC if pred < _NH else _STANDARD
                                if fmode != x:
                                    if fmode:
                                        k = 0
                                    else:
                                        fmode = x
                                if nk >= nkmax:    # let _check() close the frame
                                    k = 0
                            if k:
                                if inf:
                                    if fs[pred] != tag:
                                        fs[pred] = tag
                                        nseen += 1
                                    nk += 1
                                ng += 1
                                p = a + k
                                prev = pred
                                pred = nx[pred]
                                continue
                self._pred = pred
                self._prev = prev
                self._fmode = fmode
                self._nk = nk
                self._nseen = nseen
                p = self._segment(buf, mv, a, n)
                rmv = self._rmv
                pred = self._pred
                prev = self._prev
                inf = self._inf
                fmode = self._fmode
                nk = self._nk
                nseen = self._nseen
                nkmax = FRAME_MAX_GROUPS - self.frame.invalid
            elif x >= 32 or x == _HT:
                q = _scan(buf, p + 1, n)
                c[_GARBAGE] += q - p
                p = q
            elif x == _CR:
                p += 1
            else:
                self._pred = pred
                self._prev = prev
                self._fmode = fmode
                self._nk = nk
                self._nseen = nseen
                if x == _STX:
                    self._stx(c[_BYTES] + p - start)
                    p += 1
                    if not IS_MICROPYTHON and self._fp:    # frames.py
                        p = self._fp.run(self, buf, mv, p, n)
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
                rmv = self._rmv
                pred = self._pred
                prev = self._prev
                inf = self._inf
                fmode = self._fmode
                nk = self._nk
                nseen = self._nseen
                tag = self._tag
                nkmax = FRAME_MAX_GROUPS - self.frame.invalid
        self._pred = pred
        self._prev = prev
        self._fmode = fmode
        self._nk = nk
        self._nseen = nseen
        c[_GROUPS] += ng
        c[_BYTES] += n - start
        return n - start, None
