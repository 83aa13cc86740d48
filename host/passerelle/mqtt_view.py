"""What a gateway publishes, as seen by an MQTT subscriber: a model and two views.

:class:`MqttModel` subscribes (paho-mqtt) to ``<base>/#`` and ``<discovery>/#`` and
keeps: the gateways' ``status``, every entity of every ``<base>/<dev>/<meter>/state``
JSON (value, unit, last update), the Home Assistant discovery configs (which give
names and units), any other ``<base>/...`` topic (diagnostics), and counters.

* :func:`render` builds a rich renderable (header + entity table + last log lines)
  for ``rich.live.Live``;
* :class:`PlainPrinter` prints one line per changed value, for non-TTY output.
"""

import json
import re
import threading
import time

import paho.mqtt.client as mqtt

try:
    from protocols.tic import labels as _tic_labels
except ImportError:          # the view works without the codec (units from discovery only)
    _tic_labels = None

_UNIT_BY_KIND = {"energy": "Wh", "power": "VA", "current": "A", "voltage": "V"}


def label_unit(label):
    if _tic_labels is None:
        return ""
    try:
        info = _tic_labels.info(label)
    except Exception:
        return ""
    if not info:
        return ""
    kind, unit = info[0], info[1]
    return unit or _UNIT_BY_KIND.get(kind, "")


class MqttModel:
    def __init__(self, host, port, base="passerelle", discovery="homeassistant", client_id=None):
        self.host, self.port = host, int(port)
        self.base, self.discovery = base, discovery
        self.lock = threading.Lock()
        self.status = {}            # device -> (payload, time)
        self.entities = {}          # (device, meter, key) -> [value, unit, time, count, changed]
        self.discovered = {}        # discovery topic -> config dict
        self.units = {}             # (device, meter, key) or key -> unit from discovery
        self.other = {}             # topic -> (payload text, time)
        self.counters = {"messages": 0, "bytes": 0, "states": 0, "discovery": 0, "bad_json": 0,
                         "connects": 0}
        self.started = time.time()
        self.changes = []           # (time, device, meter, key, value) since last drain
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or "passerelle-view-%d" % (id(self) % 100000))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_log = self._on_log     # paho prints errors to stderr otherwise
        self.log = []

    def _on_log(self, client, userdata, level, buf):
        if level == mqtt.MQTT_LOG_ERR and len(self.log) < 100:
            self.log.append(buf)

    def start(self, timeout=10.0):
        self.client.reconnect_delay_set(0.2, 2)
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self.connected.wait(timeout)

    def stop(self):
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if getattr(reason_code, "is_failure", False):
            return
        client.subscribe([(self.base + "/#", 0), (self.discovery + "/#", 0)])
        self.counters["connects"] += 1
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        now = time.time()
        with self.lock:
            self.counters["messages"] += 1
            self.counters["bytes"] += len(msg.payload)
            self._dispatch(msg.topic, msg.payload, now)

    def _dispatch(self, topic, payload, now):
        parts = topic.split("/")
        if parts[0] == self.discovery:
            if parts[-1] == "status":
                self.other[topic] = (payload.decode("utf-8", "replace"), now)
                return
            self.counters["discovery"] += 1
            try:
                cfg = json.loads(payload) if payload else None
            except ValueError:
                self.counters["bad_json"] += 1
                return
            if cfg is None:
                self.discovered.pop(topic, None)
                return
            self.discovered[topic] = cfg
            key = _template_key(cfg.get("value_template") or cfg.get("val_tpl") or "")
            unit = cfg.get("unit_of_measurement") or cfg.get("unit_of_meas")
            if key and unit:
                self.units[key] = unit
            return
        if len(parts) == 3 and parts[2] == "status":
            self.status[parts[1]] = (payload.decode("utf-8", "replace"), now)
            return
        if len(parts) == 4 and parts[3] == "state":
            try:
                state = json.loads(payload)
            except ValueError:
                self.counters["bad_json"] += 1
                return
            if not isinstance(state, dict):
                self.counters["bad_json"] += 1
                return
            self.counters["states"] += 1
            dev, meter = parts[1], parts[2]
            for key, value in state.items():
                ent = self.entities.get((dev, meter, key))
                if ent is None:
                    ent = self.entities[(dev, meter, key)] = [None, None, now, 0, now]
                if ent[0] != value:
                    self.changes.append((now, dev, meter, key, value))
                    ent[4] = now
                ent[0], ent[2] = value, now
                ent[3] += 1
            return
        self.other[topic] = (payload.decode("utf-8", "replace"), now)

    def unit(self, key):
        return self.units.get(key) or label_unit(key)

    def drain_changes(self):
        with self.lock:
            out, self.changes = self.changes, []
        return out

    def snapshot(self):
        with self.lock:
            return (dict(self.status), {k: list(v) for k, v in self.entities.items()},
                    dict(self.other), dict(self.counters), len(self.discovered))

    def values(self, device=None, meter=None):
        """{key: value} of the latest state (optionally of one device/meter)."""
        with self.lock:
            return {k[2]: v[0] for k, v in self.entities.items()
                    if (device is None or k[0] == device) and (meter is None or k[1] == meter)}


_TPL_KEY = re.compile(r"""value_json(?:\.get\(\s*['"]([^'"]+)['"]|\[\s*['"]([^'"]+)['"]\s*\]"""
                      r"""|\.([A-Za-z0-9_]+))""")


def _template_key(tpl):
    """The state key a value_template reads: ``{{ value_json.get('EAST') }}``,
    ``{{ value_json['SMAXSN-1'] }}``, ``{{ value_json.EAST }}``."""
    m = _TPL_KEY.search(tpl or "")
    if not m:
        return None
    return m.group(1) or m.group(2) or m.group(3)


def _age(now, t):
    d = max(0.0, now - t)
    return "%.0fs" % d if d < 120 else "%.0fm" % (d / 60)


def _fmt(value):
    if isinstance(value, float):
        return "%.3f" % value
    return str(value)


def _short(value, n=28):
    text = _fmt(value)
    return text if len(text) <= n else text[:n - 1] + "\u2026"


def render(model, extra_lines=(), title="passerelle run", info="", width=80):
    """A rich renderable of the model: header (gateway status, counters), one table of
    entities per meter (two side-by-side halves on a wide terminal), diagnostics topics,
    the last gateway log lines.  Values that changed in the last 2 s are bold."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    status, entities, other, counters, ndisc = model.snapshot()
    now = time.time()
    head = Text()
    head.append(title, style="bold")
    if info:
        head.append("  " + info, style="dim")
    head.append("\n")
    if status:
        for dev, (st, t) in sorted(status.items()):
            head.append("gateway %s " % dev)
            head.append(st, style="bold green" if st == "online" else "bold red")
            head.append(" (%s ago)  " % _age(now, t), style="dim")
    else:
        head.append("gateway: waiting for its status...", style="yellow")
    head.append("\nmessages %(messages)d  states %(states)d  discovery %(discovery)d  "
                "bytes %(bytes)d  bad json %(bad_json)d" % counters)
    head.append("  entities %d  HA configs %d" % (len(entities), ndisc))
    parts = [head]
    meters = {}
    for (dev, meter, key), ent in sorted(entities.items()):
        meters.setdefault((dev, meter), []).append((key, ent))
    halves = 2 if width >= 110 else 1
    for (dev, meter), rows in sorted(meters.items()):
        table = Table(title="%s / %s" % (dev, meter), title_justify="left", title_style="bold cyan",
                      show_edge=False, header_style="bold", pad_edge=False)
        for _ in range(halves):
            table.add_column("entity", no_wrap=True)
            table.add_column("value", justify="right", no_wrap=True, max_width=30)
            table.add_column("unit", style="dim", no_wrap=True)
            table.add_column("updated", justify="right", style="dim", no_wrap=True)
        per = (len(rows) + halves - 1) // halves
        for i in range(per):
            cells = []
            for h in range(halves):
                j = i + h * per
                if j >= len(rows):
                    cells += ["", "", "", ""]
                    continue
                key, (value, _, t, count, changed) = rows[j]
                style = "bold yellow" if now - changed < 2.0 else ""
                cells += [key, Text(_short(value), style=style), model.unit(key), _age(now, t)]
            table.add_row(*cells)
        parts.append(Text(""))
        parts.append(table)
    diag = [(topic, p) for topic, (p, _) in sorted(other.items())][:6]
    if diag:
        d = Text("\n")
        for topic, payload in diag:
            d.append(topic + " ", style="cyan")
            room = max(20, width - len(topic) - 2)
            d.append((payload if len(payload) <= room else payload[:room - 1] + "\u2026") + "\n")
        parts.append(d)
    if extra_lines:
        log = Text("\n")
        for line in extra_lines:
            log.append((line if len(line) <= width else line[:width - 1] + "\u2026") + "\n", style="dim")
        parts.append(log)
    return Group(*parts)


def _plain(value):
    if isinstance(value, str) and (" " in value or not value):
        return '"%s"' % value
    return _fmt(value)


class PlainPrinter:
    """Plain-text view: one line per status change / changed entity value."""

    def __init__(self, model, out):
        self.model, self.out = model, out
        self._status = {}
        self._other = {}

    def poll(self):
        lines = []
        status, _, other, _, _ = self.model.snapshot()
        for dev, (st, _) in sorted(status.items()):
            if self._status.get(dev) != st:
                self._status[dev] = st
                lines.append("status %s %s" % (dev, st))
        for topic, (payload, t) in sorted(other.items()):
            if self._other.get(topic) != t:
                self._other[topic] = t
                lines.append("topic %s %s" % (topic, payload if len(payload) < 300 else payload[:297] + "..."))
        by_meter = {}
        for t, dev, meter, key, value in self.model.drain_changes():
            by_meter.setdefault((dev, meter), {})[key] = value
        for (dev, meter), vals in sorted(by_meter.items()):
            items = " ".join("%s=%s%s" % (k, _plain(v), self.model.unit(k)) for k, v in sorted(vals.items()))
            lines.append("state %s/%s %s" % (dev, meter, items))
        stamp = time.strftime("%H:%M:%S")
        for line in lines:
            self.out.write("%s %s\n" % (stamp, line))
        if lines:
            self.out.flush()
        return len(lines)
