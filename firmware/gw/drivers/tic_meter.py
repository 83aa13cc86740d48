# gw/drivers/tic_meter.py - Linky / CBEMM / CBETM meter on a TIC UART -> last valid values
# MIT license.
#
# Pipeline: hal UART (7E1, 1200 or 9600 Bd) -> preallocated buffer -> protocols.tic
# TicDecoder -> apply(frame) -> self.values (label -> int | str) and `changed`; `updated`
# is set after every frame and the app publishes state_json().  The driver never imports MQTT.
#
# What apply() guarantees (tic.md §0, §4.2, §8.6):
#   * numeric labels (labels.info(...).numeric) become ints (Wh, VA, A, V, kVA... as
#     sent), other labels strings with their padding stripped (spaces; the trailing
#     dots of historic PTEC/OPTARIF "HC..");  DATE becomes its horodate string;
#   * an energy index is never zero and never decreases: the first value seen after
#     boot is only a candidate, published once a later frame confirms it (same or up by
#     a plausible amount); afterwards a lower value, or a jump above _MAX_WH_PER_S times
#     the elapsed time, is rejected and counted in stats["index_rejected"];
#   * the phase count is sticky: three-phase after _TRI_VOTES frames carrying per-phase
#     labels, never back to one (a corrupted IRMS2 must not flip it, Zlinky_TIC#402);
#   * historic short frames (no OPTARIF, ADIR overload cycles) only update values;
#     a label absent from _MAX_AGE consecutive full frames is dropped (ADPS, ADIRx,
#     PPOINTE...), energy indexes are never dropped;
#   * derived keys (lowercase, so they never collide with TIC labels):
#     "phases" (1|3), "tempo_today" / "tempo_tomorrow" ("blue"|"white"|"red"|null) from
#     STGE bits 24-27 (standard) or PTEC / DEMAIN (historic), only on Tempo contracts.
#
# Memory (64 KB boards): the only per-label state is `values` (what is published),
# `_guard` (energy labels: [last accepted, ticks, confirmed]) and `_missing` (labels
# absent from the last full frames: normally empty).
import asyncio
import json

from protocols.compat import const, pick

_BUF_SIZE = const(256)  # small: reads usually fill it, so the decoder gets it without a copy
_MAX_WH_PER_S = const(100)  # 360 kW: far above any TIC meter, catches corrupted digits
_SLACK_S = const(10)
_TRI_VOTES = const(2)
_MAX_AGE = const(5)
_DETECT_MS = const(12000)  # auto mode: data without a valid frame this long -> other baud
_RETRY_MIN_MS = const(1000)
_RETRY_MAX_MS = const(30000)
# log messages: one table, not a heap object per message (protocols.compat.pick)
_MSG = ("cannot open UART: %s (retry in %d ms)|UART %s open at %d Bd|UART error: %s|"
        "UART link closed|no valid frame: trying %d Bd")
_M_NO_UART = const(0)
_M_OPEN = const(1)
_M_UART_ERROR = const(2)
_M_CLOSED = const(3)
_M_TRYING = const(4)
_TRI_LABELS = ("IINST2", "IINST3", "IRMS2", "IRMS3", "URMS2", "URMS3",
               "SINSTS1", "SINSTS2", "SINSTS3", "IMAX2", "IMAX3")
_DERIVED = ("phases", "tempo_today", "tempo_tomorrow")
_ROOM = const(60)  # values sized at boot for a three-phase standard meter (73 slots, 1.2 KB)
_COLOURS = (None, "blue", "white", "red")  # STGE 2-bit codes


def colour(code):
    """A Tempo colour code of any source (PTEC suffix, DEMAIN, STGE) -> name or None."""
    if code is None:
        return None
    c = str(code).strip().upper()
    if c in ("B", "BLEU", "BLUE", "1"):
        return "blue"
    if c in ("W", "BLAN", "BLANC", "WHITE", "2"):
        return "white"
    if c in ("R", "ROUG", "ROUGE", "RED", "3"):
        return "red"
    return None


class TICMeter:
    """One TIC meter.  ``tic`` is the protocols.tic module (injectable for tests)."""

    def __init__(self, cfg, hal, log, tic=None):
        if tic is None:
            import protocols.tic as tic
        self.tic = tic
        self.cfg = cfg
        self.id = cfg["id"]
        self.hal = hal
        self.log = log
        mode = cfg.get("mode", "auto")
        # auto: 9600 Bd first (standard), then 1200; the decoder detects the mode itself
        self._bauds = (1200,) if mode == "historic" else (9600,) if mode == "standard" \
            else (9600, 1200)
        self._decoder = tic.TicDecoder(mode=tic.HISTORIC if mode == "historic" else
                                       tic.STANDARD if mode == "standard" else tic.AUTO)
        self._buf = bytearray(_BUF_SIZE)
        self.values = v = {}   # label or derived key -> int | str | None
        # size its table now, while the heap is young: growing it later (37 -> 59 -> 73
        # slots) needs a new ~1 KB block while the old one is still alive
        for i in range(_ROOM):
            v[i] = None
        for i in range(_ROOM):
            del v[i]
        self._guard = {}       # energy label -> [last accepted, ticks_ms, confirmed]
        self._missing = {}     # label -> consecutive full frames without it
        # keys not announced yet (discovery), drained by the app: their indexes (key_at),
        # a byte each (a list of a producer meter's 66 keys grew to a 1 KB block)
        self.new_keys = bytearray()
        self.changed = False   # values differ from what was last published
        self.updated = asyncio.Event()
        self.mode = None       # "historic" | "standard" once a frame is decoded
        self.baudrate = self._bauds[0]
        self.last_frame_ms = None
        self._tri = 0
        self.stats = {"frames": 0, "index_rejected": 0, "value_errors": 0,
                      "link_errors": 0, "baud_switches": 0}

    def key_at(self, i):
        """The key of index ``i`` (``new_keys``: the TIC labels, then the derived keys),
        None past the last."""
        names = self.tic.labels.NAMES
        n = len(names)
        return names[i] if i < n else _DERIVED[i - n] if i - n < len(_DERIVED) else None

    # ---------------------------------------------------------------- frame -> values
    def _index_ok(self, label, v, now):
        if v <= 0:
            return False
        g = self._guard.get(label)
        if g is None:
            self._guard[label] = [v, now, False]
            return False
        bound = (self.hal.ticks_diff(now, g[1]) // 1000 + _SLACK_S) * _MAX_WH_PER_S
        if not g[2]:
            ok = g[0] <= v <= g[0] + bound
            g[0], g[1], g[2] = v, now, ok
            return ok
        if v < g[0] or v - g[0] > bound:
            return False
        g[0], g[1] = v, now
        return True

    def _set(self, key, v):
        vals = self.values
        if key not in vals:
            names = self.tic.labels.NAMES
            self.new_keys.append(len(names) + _DERIVED.index(key) if key in _DERIVED
                                 else names.index(key))
        elif vals[key] == v:
            return
        vals[key] = v
        if key != "DATE":
            self.changed = True

    def apply(self, frame, now=None):
        """Merge one decoded frame into self.values; returns True when something changed."""
        if now is None:
            now = self.hal.ticks_ms()
        info_of = self.tic.labels.info
        groups = frame.groups
        st = self.stats
        st["frames"] += 1
        self.last_frame_ms = now
        standard = frame.mode == self.tic.STANDARD
        self.mode = "standard" if standard else "historic"
        tri = False
        before = self.changed
        self.changed = False
        for label in groups:
            value = groups[label]   # the data, or (data, horodate) for horodated labels
            horodate = None
            if type(value) is tuple:
                value, horodate = value
            info = info_of(label)
            if label == "DATE":
                v = horodate.strip() if horodate else None
            elif info is not None and info[3]:
                v = value.strip()
                v = int(v) if v and v.isdigit() else None
            else:
                v = value.strip()
                if label == "PTEC" or label == "OPTARIF":
                    v = v.rstrip(".")
            if v is None:
                st["value_errors"] += 1
                continue
            if info is not None and info[0] == "energy" and not self._index_ok(label, v, now):
                st["index_rejected"] += 1
                continue
            if label in _TRI_LABELS:
                tri = True
            self._set(label, v)
        if standard or "OPTARIF" in groups:
            self._age(groups)
        if tri:
            self._tri += 1
        if self._tri >= _TRI_VOTES:
            self._set("phases", 3)
        elif st["frames"] >= _TRI_VOTES:
            self._set("phases", 1)
        self._tempo(standard)
        changed = self.changed
        self.changed = before or changed
        self.updated.set()  # every frame: the publisher also needs the clock of the frames
        return changed

    def _age(self, groups):
        """After a full frame: drop labels absent from _MAX_AGE full frames in a row
        (never an energy index: those all have a _guard entry, nor a derived key)."""
        miss = self._missing
        gone = None
        for k in self.values:
            if k in groups or k in self._guard or k in _DERIVED:
                if k in miss:
                    del miss[k]
                continue
            n = miss.get(k, 0) + 1
            miss[k] = n
            if n >= _MAX_AGE:
                if gone is None:
                    gone = []
                gone.append(k)
        if gone:
            for k in gone:
                del self.values[k]
                del miss[k]
            self.changed = True

    def _tempo(self, standard):
        v = self.values
        today = tomorrow = None
        if standard:
            stge = v.get("STGE")
            if not isinstance(stge, str) or len(stge) != 8:
                return
            try:
                n = int(stge[1], 16)  # the hex digit of bits 24-27
            except ValueError:
                n = 0
            today, tomorrow = _COLOURS[n & 3], _COLOURS[n >> 2]
            tempo = today is not None or "TEMPO" in str(v.get("NGTF", ""))
        else:
            ptec = v.get("PTEC")
            tempo = isinstance(ptec, str) and len(ptec) == 4 and ptec[2] == "J"
            if tempo:
                today = colour(ptec[3])
            if "DEMAIN" in v:
                tomorrow = colour(v["DEMAIN"])
                tempo = True
        if tempo:
            self._set("tempo_today", today)
            self._set("tempo_tomorrow", tomorrow)

    def state_json(self):
        return json.dumps(self.values)

    def decoder_stats(self):
        return self._decoder.stats

    # ---------------------------------------------------------------- UART -> frames
    async def run(self):
        """Keep the TIC line open and decode forever (supervised by the app)."""
        delay = _RETRY_MIN_MS
        cfg = self.cfg
        tag = "tic/" + self.id
        while True:
            try:
                uart = await self.hal.uart(cfg.get("uart", 1), self.baudrate,
                                           cfg.get("rx_pin"), cfg.get("invert", False))
            except OSError as e:
                self.stats["link_errors"] += 1
                self.log.warning(tag, pick(_MSG, _M_NO_UART), e, delay)
                await asyncio.sleep(delay / 1000)
                delay = min(delay * 2, _RETRY_MAX_MS)
                continue
            self.log.info(tag, pick(_MSG, _M_OPEN), uart.id, self.baudrate)
            try:
                if await self._pump(uart, tag):
                    delay = _RETRY_MIN_MS
            except OSError as e:
                self.stats["link_errors"] += 1
                self.log.warning(tag, pick(_MSG, _M_UART_ERROR), e)
            finally:
                uart.close()
            await asyncio.sleep(delay / 1000)
            delay = min(delay * 2, _RETRY_MAX_MS)

    async def _pump(self, uart, tag):
        """Read and decode until the link closes; True if at least one frame came.

        The decoder is a streaming state machine: it consumes every byte it is given
        and keeps partial groups itself, so the read buffer is reused at once.
        """
        hal = self.hal
        dec = self._decoder
        buf = self._buf
        mv = memoryview(buf)
        got = False
        since = hal.ticks_ms()  # start of the current "no valid frame yet" window
        while True:
            n = await uart.readinto(mv)
            if not n:
                self.log.warning(tag, pick(_MSG, _M_CLOSED))
                return got
            pos = 0
            while pos < n:  # buf[:n] in place (end=n): no copy of a partial read
                used, frame = dec.decode(buf, pos, n)
                if not used:
                    break
                pos += used
                if frame is not None:
                    got = True
                    since = hal.ticks_ms()
                    self.apply(frame, since)
            if len(self._bauds) > 1 and hal.ticks_diff(hal.ticks_ms(), since) > _DETECT_MS:
                b = self._bauds
                self.baudrate = b[(b.index(self.baudrate) + 1) % len(b)]
                uart.set_baudrate(self.baudrate)
                dec.reset()
                self.stats["baud_switches"] += 1
                self.log.info(tag, pick(_MSG, _M_TRYING), self.baudrate)
                since = hal.ticks_ms()
