"""Whole-frame path of ``TicDecoder`` (CPython only: the host harness, the simulator,
``passerelle tic decode``, the bench; MicroPython never imports this module: RAM).

A meter repeats most groups unchanged from one frame to the next.  The decoder's
main loop accepts each of them with one comparison against its reuse cache, but on
CPython the interpreter overhead of that per-group step was most of the cost of a
historic frame.  When a frame (STX...ETX) is entirely in the buffer, this path
splits its body on LF and compares the pieces with those of the previous frame in
C (``map(ne, ...)``): unchanged groups are accounted in one step; a changed group
of the same label and length is checked inline (the checks and effects of
``_check`` for that case) or, if horodated, by ``_check`` itself.

It is an exact shortcut of the main loop, never a second decoder: every step has
the effect the main loop would have had at that point (same counters, same
``frame.groups``, same reuse cache and predictions), and at anything it does not
expect (a piece of another length or label, another CR, a rejected group) it
writes its state back and returns the position from which the main loop goes on,
so the rest of the frame is decoded exactly as before.  The one liberty: the
frame tags (``_fs``) of the groups it accounts are written only when something
may read them (a hand-over, or ``_etx`` having labels to drop).  The differential
tests compare CPython (this path) with the MicroPython unix port (main loop only);
``tests/protocols/test_tic_frames.py`` compares both paths on CPython, state
included.

Why the shortcut is exact: ``exp`` is the list of pieces of a frame whose groups
were all accepted.  It is trusted only if (1) it was checked against the
decoder's reuse cache and predictions (``_verify``: piece j is the cached bytes
of the label ``_nx`` predicts there, starting from START; no label twice; one
mode) and (2) nothing changed the cache or ``_nx`` since (``d._c[_MUT]``, bumped
by ``_check`` for every accepted group and by ``_etx`` for every label dropped,
is unchanged, apart from this path's own changed pieces, which rewrite the cache
of their label in place with the new piece and keep the chain).  Then, after
the STX, the main loop would predict those labels one after the other and
accept every piece equal to ``exp[j]`` by its one comparison: that is what is
accounted here in bulk.
"""

from itertools import compress
from operator import ne

from protocols.tic import decoder as _d
from protocols.tic.labels import NAMES, CODES, SPECS, F_NUM, data_ok

_NONE = _d._NONE
_START = _d._START
_NH = _d._NH
_GROUPS = _d._GROUPS
_CHECKSUM = _d._CHECKSUM    # _c[_CHECKSUM:_OVERFLOW + 1]: the rejected segments
_OVERFLOW = _d._OVERFLOW
_BYTES = _d._BYTES
_MUT = _d._MUT
_HISTORIC = _d._HISTORIC
_STANDARD = _d._STANDARD
_MAXG = _d.FRAME_MAX_GROUPS
_MAXB = _d.FRAME_MAX_BYTES


class WholeFrames:
    """The state of the path, one per decoder (``TicDecoder._fp``)."""

    def __init__(self):
        self.exp = None     # pieces of a fully accepted frame, trusted while d._c[_MUT] == mut
        self.info = None    # per piece of exp[1:]: see _verify
        self.mode = 0       # their mode (HISTORIC or STANDARD)
        self.mut = -1
        self.last = None    # pieces of the last frame seen here (to rebuild exp from)
        self.lerr = -1      # rejected segments when last was left to the main loop
        self.ng = 0         # pieces of the current frame counted in stats['groups']

    def _verify(self, d, parts):
        """Trust ``parts`` (a frame body split on LF) if each piece is the cached
        group of the label the decoder predicts at that point -> True."""
        rl = d._rl
        ro = d._ro
        rb = d._rb
        nx = d._nx
        labs = set()
        info = []
        off = 0
        i = nx[_START]
        for part in parts[1:]:
            k = len(part)
            # rl[i] == 0: label i has no cached bytes (an empty piece would match them)
            if i == _NONE or k < 4 or rl[i] != k or not rb.startswith(part, ro[i]) or i in labs:
                return False
            labs.add(i)
            h = len(NAMES[i]) + 1
            o = CODES[i] * 6
            # label index, its str, label + separator and its length, offset of
            # the piece after the first LF, its length, SPECS offset (-1:
            # horodated, left to _check), F_NUM, the separator before the checksum,
            # what sum(piece) has beyond the checksummed bytes (that separator
            # unless it is a HT, and the CR), where the piece is cached (stable
            # while trusted: only _check moves cached groups, and it bumps _c[_MUT])
            x = part[k - 3]
            info.append((i, NAMES[i], part[:h], h, off, k, -1 if SPECS[o + 3] else o,
                         SPECS[o] == F_NUM, x, 13 + (0 if x == 9 else x), ro[i]))
            off += k + 1
            i = nx[i]
        mode = _HISTORIC if info[0][0] < _NH else _STANDARD
        for i in labs:
            if (i < _NH) != (mode == _HISTORIC):
                return False
        if d._cfg and d._cfg != mode:
            return False
        self.exp = parts
        self.info = info
        self.mode = mode
        self.mut = d._c[_MUT]
        return True

    def run(self, d, buf, mv, p, n):
        """Called by ``decode()`` right after the STX at ``p - 1`` opened a frame
        (the decoder's state written back): decode what it can of that frame and
        return the position the main loop goes on from (``p``: nothing done)."""
        # a longer frame is dropped at its ETX anyway (frames_overflow); searching
        # further would scan the rest of a buffer without ETX (a cooked-tty
        # capture) at every STX: quadratic
        e = buf.find(b'\x03', p, n if n - p < _MAXB else p + _MAXB)
        if e < 0:
            return p
        parts = buf[p:e].split(b'\n')
        m = len(parts)
        exp = self.exp
        if d._c[_MUT] != self.mut or exp is None or len(exp) != m:
            last = self.last
            lerr = self.lerr
            self.exp = None
            self.last = parts
            self.lerr = err = sum(d._c[_CHECKSUM:_OVERFLOW + 1])
            # (a segment rejected since last was left to the main loop: the
            # decoder's cache cannot hold all of last, _verify would fail)
            if (last is None or len(last) != m or m < 2 or m > _MAXG or last[0]
                    or lerr != err and lerr >= 0 or not self._verify(d, last)):
                return p
            exp = last
        if parts[0]:    # STX not followed by LF
            self.exp = None
            return p
        self.last = parts
        # After the STX nothing is accounted in the frame (_nk = _nseen = 0,
        # invalid = 0) and _fmode is the decoder's mode (AUTO or this frame's: see
        # _verify).  Every piece before the one at hand has been accepted (equal
        # to exp's, or checked): after k pieces, _nk = _nseen = k (the labels are
        # all different), _fmode is the frame's mode, _prev the label of piece k.
        info = self.info
        groups = d.frame.groups
        rb = d._rb
        self.ng = 0             # pieces counted in stats['groups'] so far
        p += 1                  # piece j starts at p + its offset
        for j in compress(range(m), map(ne, parts, exp)):
            part = parts[j]
            i, label, head, h, a, k, o, num, sep, adj, r = info[j - 1]
            # Only a piece of the cached group's length (so not merely starting with
            # it, which the main loop would accept by its comparison), with no other
            # CR (the main loop would cut it there) and the label and separator of
            # exp[j]: then _check() can only reject it (changing nothing) or accept
            # it as label i.  Anything else is left to the main loop.
            if len(part) != k or part.find(b'\r') != k - 1 or not part.startswith(head):
                return self._leave(d, p + a - 1, j - 1)
            x = k - 3           # the separator before the checksum
            if o >= 0 and part[x] == sep:
                # _check() for this case, inline (same checks, same effects): the
                # label, both separators and the length are exp[j]'s, so is the
                # data width
                ck = part[k - 2]
                if ((sum(part) - ck - adj) & 63) + 32 == ck:
                    try:
                        v = part[h:x].decode('ascii')
                    except ValueError:
                        v = None
                    if v is not None and (v.isdigit() if num else data_ok(o, v, part, h, x)):
                        groups[label] = v
                        rb[r:r + k] = part      # the cached bytes (same length)
                        continue
            # horodated, or an error: _check() itself, in the main loop's state
            self._state(d, j - 1)
            if d._check(buf, mv, p + a, p + a + k - 1):
                # rejected, nothing changed: the main loop redoes it from the LF
                return self._leave(d, p + a - 1, j - 1)
            self.ng += 1
            if d._prev != i or not d._inf or d._rl[i] != k:
                # (cannot happen: another label, frame closed, not cached) the
                # main loop takes over after this group, in the state _check left
                self._tag(d, j - 1)
                self.exp = None
                return p + a + k
        self._state(d, m - 1)
        if len(groups) != m - 1:
            self._tag(d, m - 1)     # _etx() reads the frame tags
        self.exp = parts
        self.mut = d._c[_MUT]
        self.lerr = -1
        return e

    def whole(self, d, buf, mv, p, n, start):
        """``decode()`` meets an STX at ``p`` outside a segment: the main loop's STX
        step, ``run()``, and the main loop's ETX step if that is where it stopped
        -> (position, frame or None: the main loop goes on from position)."""
        c = d._c
        d._stx(c[_BYTES] + p - start)
        p = self.run(d, buf, mv, p + 1, n)
        if p < n and buf[p] == 3:
            p += 1
            if d._inf:
                f = d._etx(c[_BYTES] + p - start)
                if f is not None:
                    c[_BYTES] += p - start
                    return p, f
        return p, None

    def _state(self, d, k):
        """The main loop's state after the first ``k`` pieces of the frame."""
        if k:
            i = self.info[k - 1][0]
            d._fmode = self.mode
        else:
            i = _START
        d._prev = i
        d._pred = d._nx[i]
        d._nk = k
        d._nseen = k
        d._c[_GROUPS] += k - self.ng
        self.ng = k

    def _tag(self, d, k):
        """Give the labels of the first ``k`` pieces the frame's tag (what the main
        loop does as it accepts each group; this path defers it until someone
        reads it)."""
        fs = d._fs
        tag = d._tag
        for t in self.info[:k]:
            fs[t[0]] = tag

    def _leave(self, d, pos, k):
        """Hand over to the main loop at ``pos`` (an LF) after ``k`` pieces."""
        self._state(d, k)
        self._tag(d, k)
        self.exp = None
        self.lerr = sum(d._c[_CHECKSUM:_OVERFLOW + 1])
        return pos
