# gw/drivers/tic_meter.py - Linky / CBEMM / CBETM meter on a TIC UART -> last valid values
# MIT license.
#
# Pipeline: hal UART (7E1, 1200 or 9600 Bd) -> preallocated buffer -> protocols.tic
# TicDecoder -> apply(frame) -> self.values (label -> int | str), then `updated` is set
# and the app publishes state_json().  The driver never imports MQTT.
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
#     after a full frame, labels missing for _MAX_AGE full frames are dropped
#     (ADPS, ADIRx, PPOINTE...), energy indexes are never dropped;
#   * derived keys (lowercase, so they never collide with TIC labels):
#     "phases" (1|3), "tempo_today" / "tempo_tomorrow" ("blue"|"white"|"red"|null) from
#     STGE (standard) or PTEC / DEMAIN (historic), present only on Tempo contracts.
import asyncio
import json

_BUF_SIZE = 256  # small: reads usually fill it, so the decoder gets it without a copy
_MAX_WH_PER_S = 100  # 360 kW: far above any TIC meter, catches corrupted digits
_SLACK_S = 10
_TRI_VOTES = 2
_MAX_AGE = 5
_DETECT_MS = 12000  # auto mode: data without a valid frame this long -> try the other baud
_RETRY_MIN_MS = 1000
_RETRY_MAX_MS = 30000
_TRI_LABELS = ("IINST2", "IINST3", "IRMS2", "IRMS3", "URMS2", "URMS3",
               "SINSTS1", "SINSTS2", "SINSTS3", "IMAX2", "IMAX3")
_COLOURS = (("B", "blue"), ("W", "white"), ("R", "red"),
            ("BLEU", "blue"), ("BLAN", "white"), ("ROUG", "red"),
            ("BLUE", "blue"), ("WHITE", "white"), ("RED", "red"),
            ("BLANC", "white"), ("ROUGE", "red"), ("1", "blue"), ("2", "white"), ("3", "red"))
_MODES = (("auto", 0, (9600, 1200)), ("historic", 1, (1200,)), ("standard", 2, (9600,)))


def colour(code):
    """A Tempo colour code of any source (PTEC suffix, DEMAIN, STGE) -> name or None."""
    if code is None:
        return None
    code = str(code).strip().upper()
    for k, v in _COLOURS:
        if k == code:
            return v
    return None


def _mode_entry(name):
    for entry in _MODES:
        if entry[0] == name:
            return entry
    return _MODES[0]


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
        self.tag = "tic/" + self.id
        entry = _mode_entry(cfg.get("mode", "auto"))
        self._bauds = entry[2]
        self._decoder = tic.TicDecoder(mode=(tic.AUTO, tic.HISTORIC, tic.STANDARD)[entry[1]])
        self._buf = bytearray(_BUF_SIZE)
        self._mv = memoryview(self._buf)
        self.values = {}       # label or derived key -> int | str | None
        self._seen = {}        # TIC label -> number of the last full frame that had it
        self._guard = {}       # energy label -> [last accepted, ticks_ms, confirmed]
        self.new_keys = []     # keys seen for the first time, drained by discovery
        self.changed = False   # values differ from what was last published
        self.updated = asyncio.Event()
        self.mode = None       # "historic" | "standard" once a frame is decoded
        self.baudrate = self._bauds[0]
        self.last_frame_ms = None
        self._full = 0
        self._tri = 0
        self._stge = None
        self._stge_colours = (None, None)
        self.stats = {"frames": 0, "index_rejected": 0, "value_errors": 0,
                      "link_errors": 0, "baud_switches": 0}

    # ---------------------------------------------------------------- frame -> values
    def _convert(self, label, value, horodate, info):
        if label == "DATE":
            return horodate.strip() if horodate else None
        if info is not None and info[3]:
            v = value.strip()
            if not v or not v.isdigit():
                return None
            return int(v)
        v = value.strip()
        if label == "PTEC" or label == "OPTARIF":
            v = v.rstrip(".")
        return v

    def _index_ok(self, label, v, now):
        if v <= 0:
            return False
        g = self._guard.get(label)
        if g is None:
            self._guard[label] = [v, now, False]
            return False
        dt = self.hal.ticks_diff(now, g[1])
        bound = (dt // 1000 + _SLACK_S) * _MAX_WH_PER_S
        if not g[2]:
            ok = g[0] <= v <= g[0] + bound
            g[0], g[1], g[2] = v, now, ok
            return ok
        if v < g[0] or v - g[0] > bound:
            return False
        g[0], g[1] = v, now
        return True

    def _set(self, key, v):
        if key not in self.values:
            self.new_keys.append(key)
        elif self.values[key] == v:
            return
        self.values[key] = v
        if key != "DATE":
            self.changed = True

    def apply(self, frame, now=None):
        """Merge one decoded frame into self.values; returns True when something changed."""
        if now is None:
            now = self.hal.ticks_ms()
        tic = self.tic
        groups = frame.groups
        self.stats["frames"] += 1
        self.last_frame_ms = now
        standard = frame.mode == tic.STANDARD
        self.mode = "standard" if standard else "historic"
        full = standard or "OPTARIF" in groups
        if full:
            self._full += 1
        tri = False
        before = self.changed
        self.changed = False
        for label in groups:
            value, horodate = groups[label]
            info = tic.labels.info(label)
            v = self._convert(label, value, horodate, info)
            if v is None:
                self.stats["value_errors"] += 1
                continue
            if info is not None and info[0] == "energy" and not self._index_ok(label, v, now):
                self.stats["index_rejected"] += 1
                continue
            if label in _TRI_LABELS:
                tri = True
            self._set(label, v)
            if full:
                self._seen[label] = self._full
        if full:
            self._age(tic)
        if tri:
            self._tri += 1
        if self._tri >= _TRI_VOTES:
            self._set("phases", 3)
        elif self.stats["frames"] >= _TRI_VOTES:
            self._set("phases", 1)
        self._tempo(standard)
        changed = self.changed
        self.changed = before or changed
        if changed:
            self.updated.set()
        return changed

    def _age(self, tic):
        old = [k for k in self._seen if self._full - self._seen[k] >= _MAX_AGE]
        for k in old:
            info = tic.labels.info(k)
            if info is not None and info[0] == "energy":
                continue
            del self._seen[k]
            if k in self.values:
                del self.values[k]
                self.changed = True

    def _tempo(self, standard):
        v = self.values
        today = tomorrow = None
        tempo = False
        if standard:
            stge = v.get("STGE")
            if not isinstance(stge, str) or len(stge) != 8:
                return
            if stge != self._stge:  # decode (a dict) only when the register changes
                self._stge = stge
                try:
                    d = self.tic.stge.decode(stge)
                    self._stge_colours = (colour(d.get("tempo_today")),
                                          colour(d.get("tempo_tomorrow")))
                except ValueError:
                    self._stge_colours = (None, None)
            today, tomorrow = self._stge_colours
            tempo = today is not None or "TEMPO" in str(v.get("NGTF", ""))
        else:
            ptec = v.get("PTEC")
            if isinstance(ptec, str) and len(ptec) == 4 and ptec[2] == "J":
                today = colour(ptec[3])
                tempo = True
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
        while True:
            try:
                uart = await self.hal.uart(self.cfg.get("uart", 1), self.baudrate,
                                           self.cfg.get("rx_pin"), self.cfg.get("invert", False))
            except OSError as e:
                self.stats["link_errors"] += 1
                self.log.warning(self.tag, "cannot open UART: %s (retry in %d ms)", e, delay)
                await asyncio.sleep(delay / 1000)
                delay = min(delay * 2, _RETRY_MAX_MS)
                continue
            self.log.info(self.tag, "UART %s open at %d Bd", uart.id, self.baudrate)
            try:
                if await self._pump(uart):
                    delay = _RETRY_MIN_MS
            except OSError as e:
                self.stats["link_errors"] += 1
                self.log.warning(self.tag, "UART error: %s", e)
            finally:
                uart.close()
            await asyncio.sleep(delay / 1000)
            delay = min(delay * 2, _RETRY_MAX_MS)

    async def _pump(self, uart):
        """Read and decode until the link closes; True if at least one frame came.

        The decoder is a streaming state machine: it consumes every byte it is given
        and keeps partial groups itself, so the read buffer is reused at once.
        """
        hal = self.hal
        dec = self._decoder
        buf = self._buf
        mv = self._mv
        got = False
        since = hal.ticks_ms()  # start of the current "no valid frame yet" window
        while True:
            n = await uart.readinto(mv)
            if not n:
                self.log.warning(self.tag, "UART link closed")
                return got
            data = buf if n == len(buf) else bytes(mv[:n])
            pos = 0
            while pos < n:
                used, frame = dec.decode(data, pos)
                if not used:
                    break
                pos += used
                if frame is not None:
                    got = True
                    since = hal.ticks_ms()
                    self.apply(frame, since)
            if len(self._bauds) > 1 and hal.ticks_diff(hal.ticks_ms(), since) > _DETECT_MS:
                self._switch_baud(uart)
                since = hal.ticks_ms()

    def _switch_baud(self, uart):
        b = self._bauds
        self.baudrate = b[(b.index(self.baudrate) + 1) % len(b)]
        uart.set_baudrate(self.baudrate)
        self._decoder.reset()
        self.stats["baud_switches"] += 1
        self.log.info(self.tag, "no valid frame: trying %d Bd", self.baudrate)
