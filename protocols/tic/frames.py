"""Whole-frame path of ``TicDecoder`` (CPython only: the host harness, the simulator,
``passerelle tic decode``; MicroPython never imports this module).

A meter repeats most groups unchanged from one frame to the next.  The decoder's
main loop accepts each of them with one comparison against its reuse cache, but on
CPython the interpreter overhead of that per-group step is most of the cost of a
frame.  When a frame (STX...ETX) is entirely in the buffer, this path splits its
body on LF and compares the pieces with the pieces of the previous frame in C
(``map(ne, ...)``): only the groups that changed are looked at one by one, each
through the decoder's own ``_check``; the unchanged ones are accounted in one step.

It is an exact shortcut of the main loop, never a second decoder: every step has
the effect the main loop would have had at that point (same counters, same
``frame.groups``, same reuse cache and predictions), and at anything it does not
expect (a piece that is not exactly a cached group or a valid group of the same
label, another control byte, a rejection, a frame overflow) it writes its state
back and returns the position from which the main loop continues, so that the
rest of the frame is decoded exactly as before.  The differential tests compare
CPython (this path) with the MicroPython unix port (the main loop only), and
``tests/protocols/test_tic_frames.py`` compares this path with the main loop on
CPython.

Why the shortcut is exact: ``exp`` is the list of pieces of a frame whose groups
were all accepted, ``labs`` their labels.  It is trusted only if (1) it was
checked against the decoder's reuse cache and predictions (``_verify``: piece j is
the cached bytes of ``labs[j-1]``, and ``_nx`` chains START -> labs[0] -> labs[1]
...) and (2) nothing changed the cache or ``_nx`` since (``d._mut``, bumped by
every accepted group and every label dropped at ETX, is unchanged, apart from
this path's own ``_check`` calls on changed pieces, which rewrite the cache of
their label with the new piece and keep the chain).  Then, after the STX, the
main loop would predict ``labs[0]``, ``labs[1]``... and accept every piece equal
to ``exp[j]`` by its one comparison: that is what is accounted here in bulk.
"""

from itertools import compress
from operator import ne

from protocols.tic import decoder as _d
from protocols.tic.labels import NAMES

_NONE = _d._NONE
_START = _d._START
_NH = _d._NH
_GROUPS = _d._GROUPS
_HISTORIC = _d._HISTORIC
_STANDARD = _d._STANDARD
_MAXG = _d.FRAME_MAX_GROUPS
_SEGMAX = _d.GROUP_MAX + 1   # a piece is label...CR: at most GROUP_MAX bytes + CR


class WholeFrames:
    """The state of the path, one per decoder (``TicDecoder._fp``)."""

    def __init__(self):
        self.exp = None     # pieces of a fully accepted frame, trusted while d._mut == mut
        self.labs = None    # label index of exp[1:]
        self.heads = None   # label + separator of exp[1:]
        self.mode = 0       # their mode (HISTORIC or STANDARD)
        self.mut = -1
        self.last = None    # pieces of the last frame seen here (to rebuild exp from)

    def _verify(self, d, parts):
        """Trust ``parts`` (a frame body split on LF) if each piece is the cached
        group of the label the decoder predicts at that point -> True."""
        rl = d._rl
        ro = d._ro
        rmv = d._rmv
        nx = d._nx
        labs = []
        heads = []
        i = nx[_START]
        for part in parts[1:]:
            k = len(part)
            if i == _NONE or rl[i] != k or rmv[ro[i]:ro[i] + k] != part or i in labs:
                return False
            labs.append(i)
            heads.append(part[:len(NAMES[i]) + 1])
            i = nx[i]
        mode = _HISTORIC if labs[0] < _NH else _STANDARD
        for i in labs:
            if (i < _NH) != (mode == _HISTORIC):
                return False
        if d._cfg and d._cfg != mode:
            return False
        self.exp = parts
        self.labs = labs
        self.heads = heads
        self.mode = mode
        self.mut = d._mut
        return True

    def run(self, d, buf, mv, p, n):
        """Called by ``decode()`` right after the STX at ``p - 1`` opened a frame
        (the decoder's state written back): decode what it can of that frame and
        return the position the main loop goes on from (``p``: nothing done)."""
        e = buf.find(b'\x03', p, n)
        if e < 0:
            return p
        parts = buf[p:e].split(b'\n')
        m = len(parts)
        exp = self.exp
        if d._mut != self.mut or exp is None or len(exp) != m:
            last = self.last
            self.exp = None
            self.last = parts
            if (last is None or len(last) != m or m < 2 or m > _MAXG or last[0]
                    or not self._verify(d, last)):
                return p
            exp = last
        if parts[0]:    # STX not followed by LF
            self.exp = None
            return p
        self.last = parts
        labs = self.labs
        heads = self.heads
        smode = self.mode
        rl = d._rl
        c = d._c
        fmode = d._fmode
        nk = d._nk
        nseen = d._nseen
        prev = _START
        done = 0                # pieces 1..done are accounted for
        a = p + 1               # start of piece done + 1
        for j in compress(range(m), map(ne, parts, exp)):
            cnt = j - 1 - done
            if cnt:             # pieces done+1 .. j-1: unchanged
                if fmode != smode:
                    if fmode:
                        return self._leave(d, a - 1, prev, fmode, nk, nseen, done)
                    fmode = smode
                nk += cnt
                nseen += cnt
                c[_GROUPS] += cnt
                a += sum(map(len, parts[done + 1:j])) + cnt
                prev = labs[j - 2]
            part = parts[j]
            k = len(part)
            i = labs[j - 1]
            # the main loop would accept a piece that merely starts with the cached
            # group by its comparison, and cut a piece with another CR differently;
            # with the label and separator of exp[j], _check() can only reject the
            # piece (changing nothing) or accept it as label i
            if (part.startswith(exp[j]) or k < 2 or k > _SEGMAX
                    or part.find(b'\r') != k - 1 or not part.startswith(heads[j - 1])):
                return self._leave(d, a - 1, prev, fmode, nk, nseen, j - 1)
            d._pred = i
            d._prev = prev
            d._fmode = fmode
            d._nk = nk
            d._nseen = nseen
            if d._check(buf, mv, a, a + k - 1):
                # rejected, nothing changed: the main loop redoes it from the LF
                return self._leave(d, a - 1, prev, fmode, nk, nseen, j - 1)
            fmode = d._fmode
            nk = d._nk
            nseen = d._nseen
            a += k + 1
            if d._prev != i or not d._inf or rl[i] != k or k != len(exp[j]):
                # another label, frame closed (overflow), not cached, or stored at a
                # new place (_compact may have emptied the cache): the main loop
                # takes over after this group, in the state _check left
                self.exp = None
                self._tag(d, labs, j - 1)
                return a - 1
            prev = i
            done = j
        cnt = m - 1 - done
        if cnt:
            if fmode != smode:
                if fmode:
                    return self._leave(d, a - 1, prev, fmode, nk, nseen, done)
                fmode = smode
            nk += cnt
            nseen += cnt
            c[_GROUPS] += cnt
            prev = labs[m - 2]
        d._prev = prev
        d._pred = d._nx[prev]
        d._fmode = fmode
        d._nk = nk
        d._nseen = nseen
        if len(d.frame.groups) != nseen:
            self._tag(d, labs, m - 1)     # _etx() reads the frame tags
        self.exp = parts
        self.mut = d._mut
        return e

    def _tag(self, d, labs, k):
        """Give the first ``k`` labels the frame's tag (what the main loop does as
        it accepts each group; this path defers it until someone reads it)."""
        fs = d._fs
        tag = d._tag
        for i in labs[:k]:
            fs[i] = tag

    def _leave(self, d, pos, prev, fmode, nk, nseen, k):
        """Hand over to the main loop at ``pos`` (an LF) after ``k`` pieces."""
        d._prev = prev
        d._pred = d._nx[prev]
        d._fmode = fmode
        d._nk = nk
        d._nseen = nseen
        self._tag(d, self.labs, k)
        self.exp = None
        return pos
