"""Recordings of field traffic: JSON Lines with a header (format in RECORDING.md).

A recording is one file, one session, one clock::

    {"format": "passerelle-rec", "version": 1, "created": "2026-11-23T18:00:00Z",
     "clock": "monotonic", "channels": {"tic": {"kind": "serial", "protocol": "tic", ...}}}
    {"t": 0.0, "ch": "tic", "dir": "rx", "hex": "02..."}
    {"t": 1.25, "ch": "mqtt", "dir": "rx", "topic": "homeassistant/status", "qos": 0,
     "retain": false, "b64": "b25saW5l"}

:class:`Writer` appends events and flushes every line (a recorder killed or stopped
with Ctrl-C never loses what it already wrote); :func:`read` loads a file (plain or
gzip, recognised by the ``.gz`` suffix or the gzip magic) and tolerates a truncated
last line or gzip stream (what a killed recorder leaves).
"""

import base64
import binascii
import datetime
import gzip
import io
import json
import threading
import time
import zlib

FORMAT = "passerelle-rec"
VERSION = 1
GZIP_MAGIC = b"\x1f\x8b"
PARITIES = ("N", "E", "O", "M", "S")
DIRECTIONS = ("rx", "tx")          # relative to the gateway: rx = into it, tx = out of it


class RecordingError(ValueError):
    pass


def serial_channel(port=None, baud=1200, bits=7, parity="E", stop=1, protocol="tic", mode=None,
                   reactive=False, **extra):
    """A serial channel description for the header.  ``reactive``: a request/response
    line (Modbus...), replayed as a cassette: each recorded answer (``rx``) is sent
    when the gateway's matching request (``tx``) arrives."""
    if parity not in PARITIES:
        raise ValueError("parity must be one of %s" % (PARITIES,))
    ch = {"kind": "serial", "protocol": protocol, "baud": int(baud), "bits": int(bits),
          "parity": parity, "stop": stop}
    if port is not None:
        ch["port"] = port
    if protocol == "tic":
        ch["mode"] = mode or tic_mode_for_baud(baud)
    if reactive:
        ch["reactive"] = True
    ch.update(extra)
    return ch


def mqtt_channel(broker, topics=("#",), **extra):
    ch = {"kind": "mqtt", "broker": broker, "topics": list(topics)}
    ch.update(extra)
    return ch


def tic_mode_for_baud(baud):
    return "standard" if int(baud) >= 9600 else "historic"


def bytes_per_second(channel):
    """Characters per second on the wire: start + data + parity + stop bits per char
    (1200 Bd 7E1 = 120 B/s, 9600 Bd 7E1 = 960 B/s)."""
    bits = 1 + int(channel.get("bits", 7)) + (0 if channel.get("parity", "E") == "N" else 1) \
        + int(round(float(channel.get("stop", 1))))
    return float(channel.get("baud", 1200)) / bits


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_payload(data, encoding="hex"):
    """bytes -> {"hex": ...} or {"b64": ...}"""
    data = bytes(data)
    if encoding == "hex":
        return {"hex": data.hex()}
    if encoding == "b64":
        return {"b64": base64.b64encode(data).decode("ascii")}
    raise ValueError("encoding must be hex or b64")


def payload(event):
    """The bytes of an event (``hex`` or ``b64``; b"" when it has none)."""
    try:
        if "hex" in event:
            return bytes.fromhex(event["hex"])
        if "b64" in event:
            return base64.b64decode(event["b64"], validate=True)
    except (ValueError, binascii.Error, TypeError) as exc:
        raise RecordingError("bad payload in event %r: %s" % (event, exc))
    return b""


def header(channels, source=None, created=None, **extra):
    h = {"format": FORMAT, "version": VERSION, "created": created or now_iso(),
         "clock": "monotonic", "channels": channels}
    if source:
        h["source"] = source
    from . import __version__
    h["tool"] = "passerelle %s" % __version__
    h.update(extra)
    return h


def _dumps(obj):
    return json.dumps(obj, separators=(", ", ": "), ensure_ascii=False)


class Writer:
    """Write a recording, one flushed line per event.

    ``Writer(path_or_file, channels, source=None)``; ``path`` ending in ``.gz`` is
    gzip-compressed (flushed with Z_SYNC_FLUSH per event, so a killed recorder still
    leaves readable data).  ``event(ch, dir, data, t=None, encoding="hex", **fields)``
    with ``t`` seconds since start (default: now on the monotonic clock since the
    writer was created).  Several threads may write events (one per channel, say).
    """

    def __init__(self, path, channels, source=None, t0=None, **header_extra):
        self._own = isinstance(path, (str, bytes)) or hasattr(path, "__fspath__")
        if self._own:
            raw = open(path, "wb")
            self._f = gzip.GzipFile(fileobj=raw, mode="wb") if str(path).endswith(".gz") else raw
            self._raw = raw
        else:
            self._f, self._raw = path, None
        self.t0 = time.monotonic() if t0 is None else t0
        self.channels = channels
        self.count = 0
        self.bytes = {}
        self._last_t = 0.0
        self._lock = threading.Lock()
        self._write(header(channels, source, **header_extra))

    def _write(self, obj):
        line = (_dumps(obj) + "\n").encode("utf-8")
        self._f.write(line)
        self._f.flush()
        if self._raw is not None and self._raw is not self._f:
            self._raw.flush()

    def now(self):
        return time.monotonic() - self.t0

    def event(self, ch, direction, data=b"", t=None, encoding="hex", **fields):
        if ch not in self.channels:
            raise ValueError("unknown channel %r" % ch)
        with self._lock:
            t = self.now() if t is None else float(t)
            t = max(t, self._last_t)              # one clock, never backwards
            self._last_t = t
            ev = {"t": round(t, 6), "ch": ch, "dir": direction}
            ev.update(fields)
            ev.update(encode_payload(data, encoding))
            if self._f is None:                   # closed: a server thread still talking
                return ev
            self._write(ev)
            self.count += 1
            self.bytes[ch] = self.bytes.get(ch, 0) + len(data)
        return ev

    def mark(self, note, t=None, **fields):
        with self._lock:
            t = self.now() if t is None else float(t)
            ev = {"t": round(max(t, self._last_t), 6), "ev": "mark", "note": note}
            ev.update(fields)
            if self._f is not None:
                self._write(ev)

    def close(self):
        with self._lock:
            if self._own and self._f is not None:
                self._f.close()
                if self._raw is not None and self._raw is not self._f:
                    self._raw.close()
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read_bytes(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == GZIP_MAGIC or str(path).endswith(".gz") and data:
        # decompress what is there, even when a killed recorder left no gzip trailer
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out = io.BytesIO()
        try:
            while data:
                out.write(d.decompress(data))
                data = d.unused_data
                if data:
                    if data[:2] != GZIP_MAGIC:
                        break
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        except zlib.error as exc:
            if not out.tell():
                raise RecordingError("%s: not a gzip stream: %s" % (path, exc))
        return out.getvalue()
    return data


class Recording:
    """``header`` (dict), ``channels`` (dict), ``events`` (list of dicts, ordered by
    ``t``), ``warnings`` (list of str: truncated lines skipped)."""

    def __init__(self, header, events, warnings=(), path=None):
        self.header = header
        self.channels = header.get("channels") or {}
        self.events = events
        self.warnings = list(warnings)
        self.path = path

    def channel_events(self, ch):
        return [ev for ev in self.events if ev.get("ch") == ch]

    def serial_channels(self):
        return [name for name, c in self.channels.items() if c.get("kind") == "serial"]

    def mqtt_channels(self):
        return [name for name, c in self.channels.items() if c.get("kind") == "mqtt"]

    @property
    def duration(self):
        return self.events[-1]["t"] if self.events else 0.0

    def payload_bytes(self, ch, direction="rx"):
        return b"".join(payload(ev) for ev in self.events
                        if ev.get("ch") == ch and ev.get("dir") == direction)


def parse(text, path="<recording>"):
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise RecordingError("%s: empty recording (no header line)" % path)
    try:
        head = json.loads(lines[0])
    except ValueError as exc:
        raise RecordingError("%s: line 1: the header is not JSON: %s" % (path, exc))
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise RecordingError("%s: line 1: not a %s header" % (path, FORMAT))
    if head.get("version") != VERSION:
        raise RecordingError("%s: format version %r is not supported (this tool reads %d)"
                             % (path, head.get("version"), VERSION))
    if not isinstance(head.get("channels"), dict):
        raise RecordingError("%s: line 1: the header has no channels object" % path)
    events, warnings = [], []
    last = len(lines)
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except ValueError as exc:
            if n == last:       # a recorder killed mid-line
                warnings.append("%s: line %d truncated, ignored" % (path, n))
                continue
            raise RecordingError("%s: line %d: not JSON: %s" % (path, n, exc))
        if not isinstance(ev, dict) or not isinstance(ev.get("t"), (int, float)):
            raise RecordingError("%s: line %d: an event needs a numeric \"t\"" % (path, n))
        if "ch" in ev and ev["ch"] not in head["channels"]:
            raise RecordingError("%s: line %d: channel %r is not in the header" % (path, n, ev["ch"]))
        events.append(ev)
    events.sort(key=lambda ev: ev["t"])      # stable: equal times keep file order
    return Recording(head, events, warnings, path)


def read(path):
    """Load a recording (plain JSON Lines or gzip)."""
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordingError("%s: not UTF-8: %s" % (path, exc))
    return parse(text, str(path))


# ---- raw captures -> timed chunks ---------------------------------------------------

def tic_chunks(data, max_chunk=64):
    """Split a raw TIC byte stream after every group end (CR) and frame end (ETX/EOT),
    pieces at most ``max_chunk`` bytes: what a UART driver would hand over per group."""
    out, start = [], 0
    for i, b in enumerate(data):
        if b in (0x0D, 0x03, 0x04) or i + 1 - start >= max_chunk:
            out.append(data[start:i + 1])
            start = i + 1
    if start < len(data):
        out.append(data[start:])
    return out


def timed_chunks(data, rate, max_chunk=64, frame_gap=0.0, t0=0.0):
    """[(t, chunk)]: each chunk stamped when its first byte is on the wire at ``rate``
    bytes/s, plus ``frame_gap`` seconds of silence after each frame end (ETX)."""
    t, out = float(t0), []
    for chunk in tic_chunks(data, max_chunk):
        out.append((t, chunk))
        t += len(chunk) / rate
        if frame_gap and chunk[-1:] == b"\x03":
            t += frame_gap
    return out
