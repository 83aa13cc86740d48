"""Wiring checks that need board knowledge: which GPIOs a config uses, and whether the board
can give them.  The schema (keys, types, ranges, unknown keys) is checked by the firmware's
own ``gw/config.py validate()`` -- :func:`check` runs it first (same code as on the device),
then adds what only a host with ``boards/<id>/board.json`` can tell:

* pin uses are found generically: any ``*_pin`` key holding an int, any ``pins`` list/dict
  of ints, anywhere in the config (``meters[0].rx_pin``, later ``relays[1].pin``...); a list
  item is named from its section and id (``meters[0]`` with id ``linky`` -> meter 'linky');
* direction from the key / section name: rx/in/input/button/sensor -> input; tx/out/relay/
  led -> output; otherwise bidirectional (treated as needing an output);
* implicit uses: a meter (any item with a ``uart``) takes the board's default RX when
  ``rx_pin`` is null and the UART's TX (the firmware always sets it); Ethernet takes the
  PHY pins (``board.json`` ``ethernet``) when ``network.type`` is ``ethernet``;
* errors: flash pins, pins not on the board's headers, input-only pins used as outputs, the
  same GPIO used twice, the same UART used twice; warnings: strapping pins, console/USB
  pins, PSRAM pins.

Messages say what the installer has to change, e.g. ``relay 'boiler' uses GPIO34
(relays[0].pin), which is input-only on ESP32-DevKitC; free output pins: 4, 13, ...``.
"""

import importlib.util
from pathlib import Path

IN, OUT, IO = "input", "output", "input/output"
_IN_WORDS = ("rx", "in", "input", "button", "sensor", "sense", "echo", "counter", "pulse")
_OUT_WORDS = ("tx", "out", "output", "relay", "led", "trig", "enable", "en", "buzzer")


def load_fw_config(project_root):
    """The firmware's gw/config.py, loaded by file path (host and device share one validator)."""
    path = Path(project_root) / "firmware" / "gw" / "config.py"
    spec = importlib.util.spec_from_file_location("_passerelle_gw_config", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _singular(section):
    if section.endswith("ies"):
        return section[:-3] + "y"
    if section.endswith("s"):
        return section[:-1]
    return section


def _direction(key, section):
    words = key.lower().replace("-", "_").split("_")
    words = [w for w in words if w != "pin" and w != "pins"]
    for w in words:
        if w in _IN_WORDS:
            return IN
        if w in _OUT_WORDS:
            return OUT
    sec = _singular((section or "").lower())
    if sec in ("relay", "output", "led", "buzzer", "valve"):
        return OUT
    if sec in ("input", "button", "sensor", "counter", "meter"):
        return IN
    return IO


class Use:
    __slots__ = ("gpio", "path", "owner", "direction", "note")

    def __init__(self, gpio, path, owner, direction, note=""):
        self.gpio, self.path, self.owner, self.direction, self.note = gpio, path, owner, direction, note

    def label(self):
        return "%s (%s)" % (self.owner, self.note or self.path)


def _is_gpio(v):
    return isinstance(v, int) and not isinstance(v, bool)


def pin_uses(cfg, path="", owner="the config", section=None):
    """[Use] for every explicit pin of ``cfg`` (a dict, normalized or raw)."""
    uses = []
    if isinstance(cfg, dict):
        for key in sorted(k for k in cfg if isinstance(k, str)):
            v = cfg[key]
            p = "%s.%s" % (path, key) if path else key
            if key.endswith("_pin") or key == "pin":
                if _is_gpio(v):
                    uses.append(Use(v, p, owner, _direction(key, section)))
            elif key == "pins" and isinstance(v, (list, dict)):
                items = v.items() if isinstance(v, dict) else enumerate(v)
                for k, g in items:
                    if _is_gpio(g):
                        name = k if isinstance(k, str) else section or ""
                        uses.append(Use(g, "%s[%r]" % (p, k) if isinstance(k, str) else "%s[%d]" % (p, k),
                                        owner, _direction(name if isinstance(k, str) else "", section)))
            elif isinstance(v, list):
                for i, item in enumerate(v):
                    if isinstance(item, dict):
                        ident = item.get("id") or item.get("name")
                        who = "%s '%s'" % (_singular(key), ident) if ident else "%s[%d]" % (key, i)
                        uses.extend(pin_uses(item, "%s[%d]" % (p, i), who, key))
            elif isinstance(v, dict):
                uses.extend(pin_uses(v, p, owner if path else key, key))
    return uses


def implicit_uses(cfg, board):
    """Pins the firmware takes without a ``*_pin`` key: default UART RX / TX, Ethernet PHY.
    Returns ([Use], {uart id str: [owner]})."""
    uses, uart_owners = [], {}
    uarts = board.get("uarts") or {}
    for key, v in sorted((cfg or {}).items()):
        if not isinstance(v, list):
            continue
        for i, item in enumerate(v):
            if not isinstance(item, dict) or not _is_gpio(item.get("uart")):
                continue
            ident = item.get("id") or item.get("name")
            who = "%s '%s'" % (_singular(key), ident) if ident else "%s[%d]" % (key, i)
            uid = str(item["uart"])
            uart_owners.setdefault(uid, []).append(who)
            u = uarts.get(uid) or {}
            p = "%s[%d]" % (key, i)
            if item.get("rx_pin") is None and _is_gpio(u.get("rx")):
                uses.append(Use(u["rx"], p + ".rx_pin", who, IN, "UART%s RX, board default" % uid))
            if _is_gpio(u.get("tx")):
                uses.append(Use(u["tx"], p + ".uart", who, OUT, "UART%s TX, set by the firmware" % uid))
    net = (cfg or {}).get("network") or {}
    eth = board.get("ethernet")
    if isinstance(net, dict) and net.get("type") == "ethernet" and isinstance(eth, dict):
        for name in ("mdc", "mdio", "power", "ref_clk"):
            if _is_gpio(eth.get(name)):
                uses.append(Use(eth[name], "network.type", "Ethernet", IO, "PHY %s" % name))
        for g in eth.get("rmii") or []:
            uses.append(Use(g, "network.type", "Ethernet", IO, "RMII"))
    return uses, uart_owners


def _fmt(pins):
    return ", ".join(str(p) for p in sorted(pins)) or "none"


def board_name(board):
    return board.get("product") or board.get("id") or "this board"


def free_output_pins(board, used):
    pins = board.get("pins") or {}
    bad = set(used)
    for k in ("input_only", "flash", "strapping", "console", "usb", "psram_octal", "psram_on_wrover"):
        bad.update(pins.get(k) or [])
    return sorted(set(pins.get("gpio") or []) - bad)


def wiring(cfg, board, already=()):
    """(errors, warnings) for the pins ``cfg`` uses on ``board``.  ``already``: messages of
    the schema validator, so a problem it already reported is not repeated."""
    errors, warnings = [], []
    if not isinstance(cfg, dict) or not board:
        return errors, warnings
    pins = board.get("pins") or {}
    name = board_name(board)
    explicit = pin_uses(cfg)
    implicit, uart_owners = implicit_uses(cfg, board)
    uses = explicit + implicit
    used = {u.gpio for u in uses}
    gpio = set(pins.get("gpio") or [])
    flash = set(pins.get("flash") or [])
    input_only = set(pins.get("input_only") or [])
    strapping = set(pins.get("strapping") or [])
    console = set(pins.get("console") or [])
    usb = set(pins.get("usb") or [])
    psram = set((pins.get("psram_octal") or []) + (pins.get("psram_on_wrover") or []))
    notes = pins.get("notes") or {}

    def reported(path):
        return any(m.startswith(path + ":") for m in already)

    for u in explicit:                  # implicit uses are the board's own choices
        g = u.gpio
        head = "%s uses GPIO%d%s" % (u.owner, g, " (%s)" % u.note if u.note else "")
        extra = " (%s)" % notes[str(g)] if str(g) in notes else ""
        if g in flash:
            if not reported(u.path):
                errors.append("%s: %s, which is wired to the flash chip on %s%s; usable GPIOs: %s"
                              % (u.path, head, name, extra, _fmt(gpio - flash - used)))
            continue
        if gpio and g not in gpio:
            errors.append("%s: %s, which is not available on %s; usable GPIOs: %s"
                          % (u.path, head, name, _fmt(gpio - used)))
            continue
        if g in input_only and u.direction != IN:
            errors.append("%s: %s as an %s, which is input-only on %s; free output pins: %s"
                          % (u.path, head, u.direction, name, _fmt(free_output_pins(board, used))))
        if g in strapping:
            warnings.append("%s: %s, a strapping pin of %s%s: if something drives it at power-up "
                            "the board may not boot (or boot into download mode)"
                            % (u.path, head, name, extra))
        if g in console:
            warnings.append("%s: %s, which is the REPL/USB console UART of %s: the console and "
                            "`passerelle flash` stop working while it is used" % (u.path, head, name))
        if g in usb:
            warnings.append("%s: %s, which is the native USB of %s" % (u.path, head, name))
        if g in psram:
            warnings.append("%s: %s, which the PSRAM uses on some %s modules%s"
                            % (u.path, head, name, extra))
    by_pin = {}
    for u in uses:
        by_pin.setdefault(u.gpio, []).append(u)
    for g in sorted(by_pin):
        group = by_pin[g]
        labels = []
        for u in group:
            if u.label() not in labels:
                labels.append(u.label())
        notes_ = {u.note for u in group}
        if len(notes_) == 1 and group[0].note.startswith("UART"):
            continue                    # one UART claimed twice: reported once below
        if len(labels) > 1:
            errors.append("%s: GPIO%d is used %d times: %s; free output pins: %s"
                          % (next((u.path for u in group if u in explicit), group[0].path), g, len(labels), " and ".join(labels),
                             _fmt(free_output_pins(board, used))))
    uarts = board.get("uarts") or {}
    for uid in sorted(uart_owners):
        owners = uart_owners[uid]
        if len(owners) > 1:
            free = [k for k in sorted(uarts) if k not in uart_owners]
            errors.append("uart: UART%s is used by %s; one UART reads one meter (free UARTs on %s: %s)"
                          % (uid, " and ".join(owners), name, ", ".join(free) or "none"))
    return errors, warnings


class Report:
    def __init__(self, normalized, errors, warnings):
        self.normalized, self.errors, self.warnings = normalized, errors, warnings

    @property
    def ok(self):
        return not self.errors


def check(project_root, cfg, secrets=None, board=None):
    """Firmware schema validation (with the board) + wiring -> :class:`Report`."""
    fw = load_fw_config(project_root)
    if not isinstance(cfg, dict):
        return Report(None, ["config: expected a JSON object, got %s" % type(cfg).__name__], [])
    normalized, errors = fw.validate(cfg, secrets, board=board)
    errors = list(errors)
    werr, warnings = wiring(normalized if isinstance(normalized, dict) else cfg, board or {}, errors)
    # a raw key the schema dropped (unknown section, e.g. "relays") is still wired up by
    # someone: check its pins too, so the installer gets both messages at once
    extra = {k: v for k, v in cfg.items() if isinstance(normalized, dict) and k not in normalized}
    if extra:
        merged = dict(normalized)
        merged.update(extra)
        werr, warnings = wiring(merged, board or {}, errors)
    return Report(normalized, _superseded(errors, werr) + werr, warnings)


def _superseded(errors, werr):
    """The schema's short pin messages (the device's own check) that a wiring message
    says better, with the free pins, for the same key: dropped, so each problem is
    reported once."""
    better = []
    for w in werr:
        path = w.split(":", 1)[0]
        for kind in ("input-only", "not available", "does not exist"):
            if kind in w:
                better.append((path, "input-only" if kind == "input-only" else "exist"))
    out = []
    for e in errors:
        path = e.split(":", 1)[0]
        kind = "input-only" if "input-only" in e else "exist" if "does not exist" in e else None
        if kind is None or (path, kind) not in better:
            out.append(e)
    return out
