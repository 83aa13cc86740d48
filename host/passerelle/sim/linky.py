"""Deterministic Linky meter simulator producing TIC byte streams.

``LinkySim(mode, phases, tariff, seed, noise, start, accel)`` models a household
load (fridge cycles, daily habits, winter heating, a water heater during off-peak
hours, random appliances) as apparent power that is piecewise constant over 10 s
buckets, derived from ``seed`` only, and integrates it exactly into the energy
indexes.  Everything a frame shows is consistent with that power and with the
meter clock: indexes never decrease, the index that advances follows the current
tariff period (HC 22:00-06:00 local time; Tempo days run 06:00 -> 06:00, tomorrow's
colour announced at 20:00), SMAXSN* are the day's maxima with the time they were
reached, CCASN/CCASN-1 are the last two 30-min load-curve points (W), UMOY* the last
10-min mean voltages, horodates carry the season letter (H winter / E summer, France).

Time: ``frame(t)`` takes ``t`` = seconds on the *line* clock since the start; the
meter clock reads ``start + t * accel`` (``accel`` > 1 fast-forwards the day so
HC/HP switches and day rollovers show up quickly).  ``stream()`` yields
``(t, bytes)`` with ``t`` advancing by the time each frame takes on the wire at
``line_rate()`` (1200 Bd 7E1 = 120 B/s historic, 9600 Bd = 960 B/s standard)
plus the inter-frame silence.

Noise (``noise`` = probability per group): bit drops 1->0 (the dominant real
error), lost/garbled LF (two groups merge), truncated groups, and EOT
interruptions.  What was injected is counted in ``noise_stats``.

Bytes are produced by ``protocols.tic.encode_frame`` (checksums are not
re-implemented here).
"""

import calendar
import functools
import random
import time

from protocols.tic import HISTORIC, STANDARD, encode_frame

MODES = ("historic", "standard")
TARIFFS = ("base", "hc", "tempo")
BUCKET_S = 10            # the load is constant over 10 s buckets
CC_PERIOD_S = 1800       # load-curve (CCASN) period
UMOY_PERIOD_S = 600      # mean-voltage period
INTER_FRAME_S = 0.025    # silence between frames (spec: 16.7-33.4 ms)
POWER_FACTOR = 0.92      # active/apparent, for the Wh indexes and CCASN (W)
WARMUP_S = 3600          # simulated before `start` so every field has history

_M64 = (1 << 64) - 1
_COLOURS = (None, "BLEU", "BLANC", "ROUGE")    # STGE coding: 1 blue, 2 white, 3 red
_HIST_COLOUR = ("", "B", "W", "R")
_DEMAIN = ("----", "BLEU", "BLAN", "ROUG")
_MSG1 = "PAS DE          MESSAGE         "
_NONUTILE = "NONUTILE"


def line_rate(mode):
    """Bytes per second on the wire: 10 bits per char (start + 7 data + parity + stop)."""
    return 120.0 if mode in ("historic", HISTORIC) else 960.0


def _mix(*vals):
    """splitmix64 over the given ints -> float in [0, 1).  Fast, deterministic."""
    h = 0x9E3779B97F4A7C15
    for v in vals:
        h = (h ^ (v & _M64)) & _M64
        h = (h + 0x9E3779B97F4A7C15) & _M64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _M64
        h ^= h >> 31
    return h / 18446744073709551616.0


@functools.lru_cache(maxsize=64)
def _dst_bounds(year):
    """EU summer time: last Sunday of March 01:00 UTC -> last Sunday of October 01:00 UTC."""
    out = []
    for month in (3, 10):
        day = 31 - (calendar.weekday(year, month, 31) + 1) % 7
        out.append(calendar.timegm((year, month, day, 1, 0, 0, 0, 0, 0)))
    return tuple(out)


def local_time(utc):
    """(local epoch seconds, summer:bool) for metropolitan France (CET/CEST)."""
    utc = int(utc)
    lo, hi = _dst_bounds(time.gmtime(utc).tm_year)
    summer = lo <= utc < hi
    return utc + (7200 if summer else 3600), summer


def horodate(utc, blank_season=False):
    """TIC horodate ``SAAMMJJhhmmss`` in legal local time (S = H winter, E summer, SP n/a)."""
    loc, summer = local_time(utc)
    tm = time.gmtime(loc)
    season = " " if blank_season else ("E" if summer else "H")
    return "%s%02d%02d%02d%02d%02d%02d" % (season, tm.tm_year % 100, tm.tm_mon, tm.tm_mday,
                                           tm.tm_hour, tm.tm_min, tm.tm_sec)


def _bump(x, centre, width):
    d = (x - centre) / width
    return 1.0 - d * d if -1.0 < d < 1.0 else 0.0


# 2025-01-15 21:55:00 local (winter, a Wednesday): HC starts 5 min (meter time) later.
DEFAULT_START = calendar.timegm((2025, 1, 15, 20, 55, 0, 0, 0, 0))


class LinkySim:
    """One simulated Linky meter.  See the module docstring."""

    def __init__(self, mode="historic", phases=1, tariff="base", seed=0, noise=0.0,
                 start=None, accel=1.0, pref_kva=None):
        if mode not in MODES:
            raise ValueError("mode must be one of %s" % (MODES,))
        if phases not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        if tariff not in TARIFFS:
            raise ValueError("tariff must be one of %s" % (TARIFFS,))
        if not 0.0 <= noise <= 1.0:
            raise ValueError("noise must be a probability in [0, 1]")
        if accel <= 0:
            raise ValueError("accel must be > 0")
        self.mode, self.phases, self.tariff = mode, phases, tariff
        self.seed, self.noise, self.accel = int(seed), float(noise), float(accel)
        self.start = int(DEFAULT_START if start is None else start)
        self.pref = int(pref_kva or (9 if phases == 1 else 18))
        self._tic_mode = HISTORIC if mode == "historic" else STANDARD
        s = self.seed
        self.meter_id = "%02d22%02d%06d" % (2 + int(_mix(s, 1) * 4), 61 if phases == 1 else 63,
                                            int(_mix(s, 2) * 1e6))
        self.prm = "%014d" % int(_mix(s, 3) * 1e14)
        self.noise_stats = {}
        self._noise_rng = None
        self._reset()

    # ---- public API ----------------------------------------------------------

    def line_rate(self):
        return line_rate(self.mode)

    def meter_time(self, t):
        """Meter clock (UTC epoch seconds) at line time ``t``."""
        return self.start + t * self.accel

    def frame(self, t=0.0):
        """The complete frame (STX..ETX bytes, possibly impaired by noise) at line time ``t``.

        Calls with a non-decreasing ``t`` are incremental; going back in time
        replays the simulation from the start (results only depend on ``t``,
        except for the noise, which follows the call sequence)."""
        utc = self.meter_time(t)
        if utc < self._t:
            self._reset()
        self._advance(utc)
        groups = self._groups(utc)
        raw = encode_frame(groups, self._tic_mode)
        self.noise_stats["frames"] += 1
        self.noise_stats["groups"] += len(groups)
        if self.noise > 0.0:
            raw = self._impair(raw)
        return raw

    def groups(self, t=0.0):
        """The (label, value, horodate|None) list of the frame at ``t`` (no noise)."""
        utc = self.meter_time(t)
        if utc < self._t:
            self._reset()
        self._advance(utc)
        return self._groups(utc)

    def stream(self, frames=None, t0=0.0):
        """Yield ``(t, frame_bytes)``; ``t`` advances by each frame's wire time."""
        t, n = float(t0), 0
        rate = self.line_rate()
        while frames is None or n < frames:
            raw = self.frame(t)
            yield t, raw
            t += len(raw) / rate + INTER_FRAME_S
            n += 1

    __iter__ = stream

    def indexes(self):
        """Current integer Wh indexes: {'EAST': .., 'EASF01': .., 'EASD01': ..}."""
        out = {"EAST": int(sum(self._idx))}
        for i in range(10):
            out["EASF%02d" % (i + 1)] = int(self._idx[i])
        for i in range(4):
            out["EASD%02d" % (i + 1)] = int(self._dist[i])
        return out

    # ---- calendar / tariff ---------------------------------------------------

    def _tempo_colour(self, day):
        """Colour (1 blue, 2 white, 3 red) of the Tempo day number ``day`` (local 06:00 -> 06:00)."""
        weekday = (day + 3) % 7            # 1970-01-01 was a Thursday; Monday = 0
        month = time.gmtime(day * 86400).tm_mon
        r = _mix(self.seed, day, 77)
        if month in (11, 12, 1, 2, 3):
            if weekday < 5 and r < 0.15:
                return 3
            if weekday != 6 and r < 0.40:
                return 2
        elif weekday != 6 and month in (4, 10) and r < 0.10:
            return 2
        return 1

    def _period(self, utc):
        """Tariff state at ``utc``: dict with hc, colour, tomorrow, supplier/distributor index."""
        loc, summer = local_time(utc)
        hour = (loc % 86400) / 3600.0
        hc = self.tariff != "base" and (hour >= 22.0 or hour < 6.0)
        st = {"hc": hc, "colour": 0, "tomorrow": 0, "hour": hour, "loc": loc}
        if self.tariff == "base":
            st["supplier"], st["distributor"] = 1, 1
        elif self.tariff == "hc":
            st["supplier"] = 1 if hc else 2
            winter = time.gmtime(loc).tm_mon in (11, 12, 1, 2, 3)
            st["distributor"] = (1 if hc else 2) if winter else (3 if hc else 4)
        else:
            day = int((loc - 6 * 3600) // 86400)
            colour = self._tempo_colour(day)
            st["colour"] = colour
            if hour >= 20.0 or hour < 6.0:
                st["tomorrow"] = self._tempo_colour(day + 1)
            st["day"] = day
            st["supplier"] = 2 * (colour - 1) + (1 if hc else 2)
            st["distributor"] = 1
        return st

    # ---- load model ----------------------------------------------------------

    def _load(self, b):
        """(apparent power per phase [VA], voltage per phase [V]) over 10 s bucket ``b``."""
        if b == self._load_b:
            return self._load_v
        s = self.seed
        utc = b * BUCKET_S
        loc, _ = local_time(utc)
        hour = (loc % 86400) / 3600.0
        winter = time.gmtime(loc).tm_mon in (11, 12, 1, 2, 3)
        va = 170.0 + (130.0 if (utc // 60 + s) % 45 < 18 else 0.0)          # fridge
        va += 900.0 * _bump(hour, 7.2, 1.2) + 700.0 * _bump(hour, 12.6, 1.1)
        va += 1500.0 * _bump(hour, 19.8, 2.2)
        if winter:
            va += 900.0 + 700.0 * _bump(hour, 6.5, 2.5) + 500.0 * _bump(hour, 20.0, 3.0)
        if self.tariff != "base" and (hour >= 22.0 or hour < 2.5):
            va += 2200.0 * (0.6 if self.phases == 3 else 1.0)                # water heater
        slot = utc // 300
        extra, extra_phase = 0.0, 0
        if _mix(s, slot, 11) < 0.12:                                         # an appliance
            extra = 1200.0 + 1600.0 * _mix(s, slot, 12)
            extra_phase = int(_mix(s, slot, 13) * self.phases)
        va *= 0.94 + 0.12 * _mix(s, b, 14)
        if self.phases == 1:
            split = [va + extra]
        else:
            f = [0.40 + 0.1 * _mix(s, slot, 21), 0.33 + 0.1 * _mix(s, slot, 22),
                 0.27 + 0.1 * _mix(s, slot, 23)]
            tot = sum(f)
            split = [va * x / tot for x in f]
            split[extra_phase] += extra
        cap = self.pref * 1000.0 * 0.85 / self.phases
        split = [min(x, cap) for x in split]
        volts = []
        for i, x in enumerate(split):
            u = 231.0 + 3.0 * _bump(hour, 3.5 + 6 * i, 5.0) - 0.0008 * x + 2.0 * (_mix(s, b, 30 + i) - 0.5)
            volts.append(u)
        self._load_b, self._load_v = b, (split, volts)
        return self._load_v

    # ---- integration ---------------------------------------------------------

    def _reset(self):
        s = self.seed
        self._t = self.start - WARMUP_S
        self._load_b, self._load_v = None, None
        east = 6e6 + 20e6 * _mix(s, 40)
        shares = {"base": [1.0], "hc": [0.42, 0.58],
                  "tempo": [0.24, 0.46, 0.05, 0.11, 0.04, 0.10]}[self.tariff]
        self._idx = [east * x for x in shares] + [0.0] * (10 - len(shares))
        if self.tariff == "hc":
            self._dist = [east * x for x in (0.25, 0.35, 0.17, 0.23)]
        else:
            self._dist = [east, 0.0, 0.0, 0.0]
        loc, _ = local_time(self._t)
        self._day = int(loc // 86400)
        yday = self._t - 86400
        base_max = 2500.0 + 3500.0 * _mix(s, 41)
        noon = yday - (loc % 86400) + 19 * 3600 + int(_mix(s, 42) * 3600)
        n = self.phases
        self._smax_y = [[base_max, noon]] + [[base_max / n * (0.8 + 0.4 * _mix(s, 43, i)),
                                              noon - int(_mix(s, 44, i) * 20000)] for i in range(n)]
        # today's maxima so far (before the warm-up): somewhere between midnight and now
        midnight = self._t - (loc % 86400)
        self._smax = [[base_max * (0.5 + 0.3 * _mix(s, 45, i)) / (1 if i == 0 else n),
                       midnight + int(_mix(s, 46, i) * (loc % 86400))] for i in range(n + 1)]
        self._cc_e0 = sum(self._idx)
        self._cc = [(None, 0), (None, 0)]          # (utc end, W) latest, previous
        self._u_acc = [0.0] * n
        self._u_n = 0.0
        self._umoy = (None, [230] * n)
        for k in self.noise_stats:
            self.noise_stats[k] = 0
        for k in ("frames", "groups", "bit_drops", "lost_lf", "truncations", "eot"):
            self.noise_stats[k] = 0
        self._noise_rng = random.Random(self.seed * 7919 + 1)
        self._advance(self.start)

    def _advance(self, target):
        """Integrate the load from the internal clock up to ``target`` (UTC seconds)."""
        n = self.phases
        while self._t < target:
            b = int(self._t // BUCKET_S)
            nxt = min(float(target), float((b + 1) * BUCKET_S))
            dt = nxt - self._t
            split, volts = self._load(b)
            period = self._period(b * BUCKET_S)
            day = int(period["loc"] // 86400)
            if day != self._day:                    # local midnight: today's max becomes n-1
                self._day = day
                self._smax_y = self._smax
                self._smax = [[0.0, b * BUCKET_S] for _ in range(n + 1)]
            total = sum(split)
            if total > self._smax[0][0]:
                self._smax[0] = [total, b * BUCKET_S]
            for i in range(n):
                if split[i] > self._smax[i + 1][0]:
                    self._smax[i + 1] = [split[i], b * BUCKET_S]
            wh = total * POWER_FACTOR * dt / 3600.0
            self._idx[period["supplier"] - 1] += wh
            self._dist[period["distributor"] - 1] += wh
            for i in range(n):
                self._u_acc[i] += volts[i] * dt
            self._u_n += dt
            self._t = nxt
            if nxt % BUCKET_S == 0:
                edge = int(nxt)
                if edge % CC_PERIOD_S == 0:
                    e = sum(self._idx)
                    self._cc = [(edge, int(round((e - self._cc_e0) * 3600.0 / CC_PERIOD_S))), self._cc[0]]
                    self._cc_e0 = e
                if edge % UMOY_PERIOD_S == 0 and self._u_n:
                    self._umoy = (edge, [int(round(a / self._u_n)) for a in self._u_acc])
                    self._u_acc = [0.0] * n
                    self._u_n = 0.0

    # ---- frame content -------------------------------------------------------

    def _instant(self, utc):
        split, volts = self._load(int(utc // BUCKET_S))
        amps = [int(round(x / u)) for x, u in zip(split, volts)]
        return split, volts, amps

    def _groups(self, utc):
        if self.mode == "historic":
            return self._historic(utc)
        return self._standard(utc)

    def _historic(self, utc):
        p = self._period(utc)
        split, _, amps = self._instant(utc)
        g = [("ADCO", self.meter_id, None)]
        if self.tariff == "base":
            g.append(("OPTARIF", "BASE", None))
        elif self.tariff == "hc":
            g.append(("OPTARIF", "HC..", None))
        else:
            g.append(("OPTARIF", "BBR(", None))
        isousc = self.pref * 1000 // 200 // self.phases
        g.append(("ISOUSC", "%02d" % isousc, None))
        if self.tariff == "base":
            g.append(("BASE", "%09d" % self._idx[0], None))
            ptec = "TH.."
        elif self.tariff == "hc":
            g.append(("HCHC", "%09d" % self._idx[0], None))
            g.append(("HCHP", "%09d" % self._idx[1], None))
            ptec = "HC.." if p["hc"] else "HP.."
        else:
            for i, label in enumerate(("BBRHCJB", "BBRHPJB", "BBRHCJW", "BBRHPJW", "BBRHCJR", "BBRHPJR")):
                g.append((label, "%09d" % self._idx[i], None))
            ptec = ("HC" if p["hc"] else "HP") + "J" + _HIST_COLOUR[p["colour"]]
        g.append(("PTEC", ptec, None))
        if self.tariff == "tempo":
            g.append(("DEMAIN", _DEMAIN[p["tomorrow"]], None))
        if self.phases == 1:
            g.append(("IINST", "%03d" % min(amps[0], 999), None))
            g.append(("IMAX", "090", None))
        else:
            for i in range(3):
                g.append(("IINST%d" % (i + 1), "%03d" % min(amps[i], 999), None))
            for i in range(3):
                g.append(("IMAX%d" % (i + 1), "060", None))
            g.append(("PMAX", "%05d" % min(int(self._smax_y[0][0]), 99999), None))
        papp = int(round(sum(split) / 10.0)) * 10
        g.append(("PAPP", "%05d" % min(papp, 99999), None))
        g.append(("HHPHC", "A", None))
        g.append(("MOTDETAT", "000000", None))
        if self.phases == 3:
            g.append(("PPOT", "00", None))
        return g

    def _stge(self, p):
        v = 0x003A0000                   # standard mode, Euridis on+secured, CPL New/Lock
        if not p["hc"]:
            v |= 1                       # dry contact open outside off-peak hours
        v |= ((p["supplier"] - 1) & 0xF) << 10
        v |= ((p["distributor"] - 1) & 0x3) << 14
        if self.tariff == "tempo":
            v |= p["colour"] << 24
            v |= p["tomorrow"] << 26
            if p["tomorrow"] in (2, 3):
                v |= (p["tomorrow"] - 1) << 28   # pre-notice PM1 (white) / PM2 (red)  [inferred]
            if p["colour"] in (2, 3):
                v |= (p["colour"] - 1) << 30     # mobile peak in progress
        return "%08X" % v

    def _ltarf(self, p):
        if self.tariff == "base":
            return "      BASE      "
        if self.tariff == "hc":
            return " HEURE  CREUSE  " if p["hc"] else " HEURE  PLEINE  "
        name = _COLOURS[p["colour"]]
        return ("%s  %s" % ("HC" if p["hc"] else "HP", name)).center(16)[:16].ljust(16)

    def _pjourf(self):
        if self.tariff == "base":
            blocks = ["00008001"]
        elif self.tariff == "hc":
            blocks = ["00004001", "06004002", "22004001"]
        else:
            blocks = ["00004001", "06004002", "22004001"]
        return " ".join(blocks + [_NONUTILE] * (11 - len(blocks)))

    def _standard(self, utc):
        p = self._period(utc)
        n = self.phases
        split, volts, amps = self._instant(utc)
        ngtf = {"base": "      BASE      ", "hc": " HEURES CREUSES ", "tempo": "     TEMPO      "}
        g = [("ADSC", self.meter_id, None), ("VTIC", "02", None), ("DATE", "", horodate(utc)),
             ("NGTF", ngtf[self.tariff], None), ("LTARF", self._ltarf(p), None),
             ("EAST", "%09d" % (int(sum(self._idx)) % 1000000000), None)]
        for i in range(10):
            g.append(("EASF%02d" % (i + 1), "%09d" % (int(self._idx[i]) % 1000000000), None))
        for i in range(4):
            g.append(("EASD%02d" % (i + 1), "%09d" % (int(self._dist[i]) % 1000000000), None))
        for i in range(n):
            g.append(("IRMS%d" % (i + 1), "%03d" % min(amps[i], 999), None))
        for i in range(n):
            g.append(("URMS%d" % (i + 1), "%03d" % int(round(volts[i])), None))
        g.append(("PREF", "%02d" % self.pref, None))
        g.append(("PCOUP", "%02d" % self.pref, None))
        g.append(("SINSTS", "%05d" % min(int(round(sum(split))), 99999), None))
        if n == 3:
            for i in range(3):
                g.append(("SINSTS%d" % (i + 1), "%05d" % int(round(split[i])), None))
        smax, smax_y = self._smax, self._smax_y
        g.append(("SMAXSN", "%05d" % int(smax[0][0]), horodate(smax[0][1])))
        if n == 3:
            for i in range(3):
                g.append(("SMAXSN%d" % (i + 1), "%05d" % int(smax[i + 1][0]), horodate(smax[i + 1][1])))
        g.append(("SMAXSN-1", "%05d" % int(smax_y[0][0]), horodate(smax_y[0][1])))
        if n == 3:
            for i in range(3):
                g.append(("SMAXSN%d-1" % (i + 1), "%05d" % int(smax_y[i + 1][0]),
                          horodate(smax_y[i + 1][1])))
        (c0_t, c0), (c1_t, c1) = self._cc
        if c0_t is not None:
            g.append(("CCASN", "%05d" % min(c0, 99999), horodate(c0_t)))
        if c1_t is not None:
            g.append(("CCASN-1", "%05d" % min(c1, 99999), horodate(c1_t)))
        u_t, umoy = self._umoy
        if u_t is not None:
            for i in range(n):
                g.append(("UMOY%d" % (i + 1), "%03d" % umoy[i], horodate(u_t)))
        g.append(("STGE", self._stge(p), None))
        if self.tariff == "tempo" and p["colour"] in (2, 3):
            day_start = (p["day"] * 86400 + 6 * 3600) - (p["loc"] - int(utc))   # 06:00 local, as UTC
            k = p["colour"] - 1
            g.append(("DPM%d" % k, "00", horodate(day_start, blank_season=True)))
            g.append(("FPM%d" % k, "00", horodate(day_start + 86400, blank_season=True)))
        g.append(("MSG1", _MSG1, None))
        g.append(("PRM", self.prm, None))
        g.append(("RELAIS", "001" if p["hc"] else "000", None))
        g.append(("NTARF", "%02d" % p["supplier"], None))
        g.append(("NJOURF", "00", None))
        g.append(("NJOURF+1", "00", None))
        g.append(("PJOURF+1", self._pjourf(), None))
        return g

    # ---- noise ---------------------------------------------------------------

    def _impair(self, raw):
        """Impair a clean STX..ETX frame group by group (probability ``noise`` each)."""
        rng, st = self._noise_rng, self.noise_stats
        body = raw[1:-1]
        parts = [b"\n" + x + b"\r" for x in body[1:-1].split(b"\r\n")]
        out = bytearray(b"\x02")
        for part in parts:
            if rng.random() >= self.noise:
                out += part
                continue
            kind = rng.random()
            g = bytearray(part)
            if kind < 0.6:
                candidates = [(i, bit) for i, c in enumerate(g) for bit in range(7) if c >> bit & 1]
                i, bit = candidates[rng.randrange(len(candidates))]
                g[i] &= ~(1 << bit) & 0xFF
                st["bit_drops"] += 1
            elif kind < 0.75:
                g[0:1] = rng.choice((b"", b"\x0b", b"\x0e", b"\x0f"))
                st["lost_lf"] += 1
            elif kind < 0.9:
                del g[rng.randrange(1, len(g) - 1):]
                st["truncations"] += 1
            else:
                del g[rng.randrange(1, len(g) - 1):]
                out += g + b"\x04"
                st["eot"] += 1
                return bytes(out)
            out += g
        out += b"\x03"
        return bytes(out)
