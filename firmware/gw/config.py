# gw/config.py - defaults, validation and loading of config.json / secrets.json
# Same code on the host (CPython: `passerelle` checks a config before deploying it)
# and on the device (MicroPython: the gateway checks it at boot).
#
# Rules:
#   * one message per problem, naming the key path and the expected form, e.g.
#     'meters[0].mode: expected one of "auto", "historic", "standard", got "histo"';
#   * unknown keys are errors (with a "did you mean" when a known key is close);
#   * messages and their order are identical on CPython and MicroPython: keys are
#     checked in schema order and unknown keys in sorted order (MicroPython dicts
#     are unordered), values are quoted by _show(), never by repr() or json;
#   * validate() never raises on bad input and never mutates its arguments.

# DEFAULTS mirrors the config shape as nested (key, value) pairs: immutable, so that
# no module-level mutable state exists; defaults() turns it into fresh dicts.
# "" for name / mqtt.client_id means "same as device_id".
DEFAULTS = (
    ("version", 1),
    ("name", ""),
    ("log_level", "info"),
    ("stats_period_s", 60),
    ("mqtt", (
        ("port", 1883),
        ("base", "passerelle"),
        ("discovery_prefix", "homeassistant"),
        ("discovery", True),
        ("keepalive", 30),
        ("client_id", ""),
    )),
    ("network", (
        ("type", "wifi"),
        ("ssid", ""),
        ("hostname", ""),
        ("timeout_s", 30),
    )),
    ("watchdog", (
        ("timeout_s", 30),
        ("offline_reset_s", 900),
    )),
    ("outbox", (
        ("ram_bytes", 1024),
        ("flash_kb", 64),
        ("offline_interval_s", 60),
    )),
    ("meters", ()),
    ("relays", ()),
    ("heaters", ()),
    ("counters", ()),
    ("sensors", ()),
)

METER_DEFAULTS = (
    ("type", "tic"),
    ("mode", "auto"),
    ("uart", 1),
    ("rx_pin", None),
    ("invert", False),
    ("period_s", 60),
    ("min_interval_s", 5),
)

# Relays, heaters, S0 counters, DS18B20s: ids <= 14 chars (NVS key = 1 letter + id).
RELAY_DEFAULTS = (("name", ""), ("invert", False), ("restore", "off"), ("interlock", None))
HEATER_DEFAULTS = (("name", ""), ("invert", False), ("restore", "hors-gel"))
COUNTER_DEFAULTS = (("type", "s0"), ("name", ""), ("per_pulse", 1), ("unit", "L"),
                    ("device_class", ""), ("debounce_ms", 50), ("period_s", 60),
                    ("min_interval_s", 10))
SENSOR_DEFAULTS = (("type", "ds18b20"), ("name", ""), ("period_s", 60))
FP_ORDERS = ("confort", "eco", "hors-gel", "arret", "confort-1", "confort-2")

SECRETS_DEFAULTS = (("wifi_password", ""), ("mqtt_username", ""), ("mqtt_password", ""))
# board.json: the keys the firmware reads (the host keeps the docs and notes off the device)
BOARD_KEYS = ("id", "pins", "uarts", "capabilities", "ethernet")

# Schema: (key, kind, arg, required).  Kinds:
#   "id"   identifier [a-z0-9_-]{1,arg}      "str"  string of at most arg chars
#   "host" non-empty string without spaces   "int"  integer in arg=(min, max)
#   "bool" true/false                        "enum" one of arg (a tuple)
#   "pin"  GPIO number 0..48 or null         "obj"  nested object, arg=(schema, defaults)
#   "list" list of objects, arg=(item schema, item defaults, max items)
_MQTT = (
    ("host", "host", 253, True),
    ("port", "int", (1, 65535), False),
    ("base", "topic", 64, False),
    ("discovery_prefix", "topic", 64, False),
    ("discovery", "bool", None, False),
    ("keepalive", "int", (5, 3600), False),
    ("client_id", "str", 64, False),
)
_NETWORK = (
    ("type", "enum", ("wifi", "ethernet", "none"), False),
    ("ssid", "str", 32, False),
    ("hostname", "str", 32, False),
    ("timeout_s", "int", (5, 300), False),
)
_OUTBOX = (  # store-and-forward of the meter states (gw/outbox.py)
    ("ram_bytes", "int", (1024, 16384), False),
    ("flash_kb", "int", (0, 1024), False),
    ("offline_interval_s", "int", (0, 3600), False),
)
_WATCHDOG = (
    ("timeout_s", "int", (0, 600), False),
    ("offline_reset_s", "int", (0, None), False),
)
_METER = (
    ("id", "id", 16, True),
    ("type", "enum", ("tic", "modbus"), False),
    ("mode", "enum", ("auto", "historic", "standard"), False),
    ("uart", "int", (0, 9), False),
    ("rx_pin", "pin", None, False),
    ("invert", "bool", None, False),
    ("period_s", "int", (5, None), False),
    ("min_interval_s", "int", (0, 3600), False),
)
_MAX_METERS = 4
_RELAY = (
    ("id", "id", 14, True),
    ("name", "str", 64, False),
    ("pin", "gpio", None, True),
    ("invert", "bool", None, False),
    ("restore", "enum", ("off", "on", "last"), False),
    ("interlock", "optid", 14, False),
)
_HEATER = (
    ("id", "id", 14, True),
    ("name", "str", 64, False),
    ("pin_pos", "gpio", None, True),
    ("pin_neg", "gpio", None, True),
    ("invert", "bool", None, False),
    ("restore", "enum", FP_ORDERS + ("last",), False),
)
_COUNTER = (
    ("id", "id", 14, True),
    ("type", "enum", ("s0",), False),
    ("name", "str", 64, False),
    ("pin", "gpio", None, True),
    ("per_pulse", "num", (0, 1000000), False),
    ("unit", "str", 8, False),
    ("device_class", "enum", ("", "energy", "water", "gas"), False),
    ("debounce_ms", "int", (1, 1000), False),
    ("period_s", "int", (5, None), False),
    ("min_interval_s", "int", (0, 3600), False),
)
_SENSOR = (
    ("id", "id", 14, True),
    ("type", "enum", ("ds18b20",), False),
    ("name", "str", 64, False),
    ("pin", "gpio", None, True),
    ("rom", "rom", None, True),
    ("period_s", "int", (1, 3600), False),
)
_ROOT = (
    ("version", "int", (1, 1), False),
    ("device_id", "id", 32, True),
    ("name", "str", 64, False),
    ("log_level", "enum", ("debug", "info", "warning", "error"), False),
    ("stats_period_s", "int", (5, None), False),
    ("mqtt", "obj", (_MQTT, "mqtt"), True),
    ("network", "obj", (_NETWORK, "network"), False),
    ("watchdog", "obj", (_WATCHDOG, "watchdog"), False),
    ("outbox", "obj", (_OUTBOX, "outbox"), False),
    ("meters", "list", (_METER, METER_DEFAULTS, _MAX_METERS), False),
    ("relays", "list", (_RELAY, RELAY_DEFAULTS, 8), False),
    ("heaters", "list", (_HEATER, HEATER_DEFAULTS, 4), False),
    ("counters", "list", (_COUNTER, COUNTER_DEFAULTS, 4), False),
    ("sensors", "list", (_SENSOR, SENSOR_DEFAULTS, 8), False),
)
_SECRETS = (
    ("wifi_password", "str", 64, False),
    ("mqtt_username", "str", 128, False),
    ("mqtt_password", "str", 128, False),
)

_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"


def _lookup(pairs, key):
    for k, v in pairs:
        if k == key:
            return v
    return None


def _expand(pairs):
    out = {}
    for k, v in pairs:
        if isinstance(v, tuple) and v and isinstance(v[0], tuple):
            v = _expand(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out


def defaults():
    """DEFAULTS as a fresh nested dict (safe to modify)."""
    return _expand(DEFAULTS)


def _type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "object"
    return "value"


def _show(v):
    """A value as it appears in a message: strings quoted, containers by type."""
    if isinstance(v, str):
        if len(v) > 40:
            v = v[:37] + "..."
        return '"' + v + '"'
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return _type_name(v)


def _distance(a, b):
    # Optimal-string-alignment distance (Levenshtein + adjacent swaps), keys are short.
    pp, prev = None, list(range(len(b) + 1))
    for i in range(len(a)):
        cur = [i + 1]
        for j in range(len(b)):
            d = min(prev[j + 1] + 1, cur[j] + 1, prev[j] + (a[i] != b[j]))
            if pp is not None and j and a[i] == b[j - 1] and a[i - 1] == b[j]:
                d = min(d, pp[j - 1] + 1)
            cur.append(d)
        pp, prev = prev, cur
    return prev[len(b)]


def _suggest(key, schema):
    best, best_d = None, 3
    low = key.lower()
    for entry in schema:
        name = entry[0]
        if name == low:
            return name
        d = _distance(low, name)
        if d < best_d and d <= max(1, len(name) // 3):
            best, best_d = name, d
    return best


def _join(path, key):
    return path + "." + key if path else key


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check(v, kind, arg, path, errs):
    """Check one value; return the normalized value, or None after appending an error."""
    if kind == "int":
        lo, hi = arg
        if not _is_int(v):
            errs.append("%s: expected an integer, got %s" % (path, _show(v)))
        elif v < lo or (hi is not None and v > hi):
            errs.append("%s: expected %s, got %d" % (path, _expected(kind, arg), v))
        else:
            return v
        return None
    if kind == "bool":
        if isinstance(v, bool):
            return v
        errs.append("%s: expected true or false, got %s" % (path, _show(v)))
        return None
    if kind == "enum":
        if isinstance(v, str) and v in arg:
            return v
        errs.append("%s: expected one of %s, got %s"
                    % (path, ", ".join(['"%s"' % c for c in arg]), _show(v)))
        return None
    if kind == "gpio" or kind == "num":
        ok = _is_int(v) and 0 <= v <= 48
        if kind == "num":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and arg[0] < v <= arg[1]
        if ok:
            return v
        errs.append("%s: expected %s, got %s" % (path, _expected(kind, arg), _show(v)))
        return None
    if kind == "optid" and v is None:
        return None
    if kind == "rom":
        if _devices().rom_ok(v):
            return v.lower()
        errs.append("%s: expected %s, got %s" % (path, _expected(kind, arg), _show(v)))
        return None
    if kind == "pin":
        if v is None:
            return None
        if _is_int(v) and 0 <= v <= 48:
            return v
        errs.append("%s: expected a GPIO number in 0..48 or null, got %s" % (path, _show(v)))
        return None
    if not isinstance(v, str):
        errs.append("%s: expected a string, got %s" % (path, _show(v)))
        return None
    if kind == "id" or kind == "optid":
        ok = 0 < len(v) <= arg
        for c in v:
            if c not in _ID_CHARS:
                ok = False
        if ok:
            return v
        errs.append('%s: expected 1-%d characters from a-z, 0-9, "_" and "-", got %s'
                    % (path, arg, _show(v)))
        return None
    if kind == "host":
        if 0 < len(v) <= arg and " " not in v:
            return v
        errs.append("%s: expected a host name or IP address, got %s" % (path, _show(v)))
        return None
    if kind == "topic":
        bad = not v or len(v) > arg or v[0] == "/" or v[-1] == "/"
        for c in "+#$ ":
            if c in v:
                bad = True
        if not bad:
            return v
        errs.append('%s: expected an MQTT topic level without "+", "#", "$", spaces or '
                    'leading/trailing "/", got %s' % (path, _show(v)))
        return None
    if len(v) > arg:
        errs.append("%s: expected a string of at most %d characters, got %d"
                    % (path, arg, len(v)))
        return None
    return v


def _object(obj, schema, dflt, path, errs):
    """Validate a JSON object against schema; return a new dict with defaults filled."""
    label = path or "config"
    if not isinstance(obj, dict):
        errs.append("%s: expected an object, got %s" % (label, _type_name(obj)))
        obj = {}
    out = {}
    for key, kind, arg, required in schema:
        p = _join(path, key)
        if key not in obj:
            if required:
                if kind == "obj":
                    errs.append("%s: missing, expected an object" % p)
                    out[key] = _object({}, arg[0], _lookup(dflt, arg[1]), p, [])
                else:
                    errs.append("%s: missing, expected %s" % (p, _expected(kind, arg)))
                    out[key] = None
            elif kind == "obj":
                out[key] = _object({}, arg[0], _lookup(dflt, arg[1]), p, errs)
            elif kind == "list":
                out[key] = []
            else:
                out[key] = _lookup(dflt, key)
            continue
        v = obj[key]
        if kind == "obj":
            out[key] = _object(v, arg[0], _lookup(dflt, arg[1]), p, errs)
        elif kind == "list":
            out[key] = _list(v, arg, p, errs)
        else:
            n = len(errs)
            v = _check(v, kind, arg, p, errs)
            out[key] = _lookup(dflt, key) if len(errs) > n else v
    for key in sorted([k for k in obj if isinstance(k, str)]):
        if not _known(key, schema):
            hint = _suggest(key, schema)
            if hint:
                errs.append('%s: unknown key (did you mean "%s"?)' % (_join(path, key), hint))
            else:
                errs.append("%s: unknown key (expected one of %s)"
                            % (_join(path, key), ", ".join([e[0] for e in schema])))
    return out


def _known(key, schema):
    for entry in schema:
        if entry[0] == key:
            return True
    return False


def _expected(kind, arg):
    if kind == "id":
        return "an identifier [a-z0-9_-]{1,%d}" % arg
    if kind == "host":
        return "a host name or IP address"
    if kind == "int":
        if arg[1] is None:
            return "an integer >= %d" % arg[0]
        if arg[0] == arg[1]:
            return "%d" % arg[0]
        return "an integer in %d..%d" % arg
    if kind == "enum":
        return "one of " + ", ".join(['"%s"' % c for c in arg])
    if kind == "bool":
        return "true or false"
    if kind == "pin":
        return "a GPIO number in 0..48 or null"
    if kind == "gpio":
        return "a GPIO number in 0..48"
    if kind == "num":
        return "a number > %s and <= %s" % arg
    if kind == "rom":
        return "a 1-Wire ROM id: 16 hex digits with a valid CRC byte"
    if kind == "optid":
        return "null or an identifier [a-z0-9_-]{1,%d}" % arg
    return "a string"


def _list(v, arg, path, errs):
    schema, dflt, max_items = arg
    if not isinstance(v, list):
        errs.append("%s: expected a list, got %s" % (path, _type_name(v)))
        return []
    if len(v) > max_items:
        errs.append("%s: expected at most %d items, got %d" % (path, max_items, len(v)))
        v = v[:max_items]
    out = []
    seen = []
    for i in range(len(v)):
        p = "%s[%d]" % (path, i)
        s, d = schema, dflt
        if schema is _METER and isinstance(v[i], dict) and v[i].get("type") == "modbus":
            s, d = _devices("config_modbus").METER  # Modbus RTU meters (gw/config_modbus.py)
        item = _object(v[i], s, d, p, errs)
        ident = item.get("id")
        if ident is not None:
            if ident in seen:
                errs.append('%s.id: duplicate id "%s"' % (p, ident))
            seen.append(ident)
        out.append(item)
    return out


def validate_secrets(secrets):
    """(normalized secrets dict, errors) for the contents of secrets.json (None = no file)."""
    errs = []
    if secrets is None:
        secrets = {}
    out = _object(secrets, _SECRETS, SECRETS_DEFAULTS, "secrets", errs)
    if out["mqtt_password"] and not out["mqtt_username"]:
        errs.append("secrets.mqtt_password: set, expected secrets.mqtt_username to be set too")
    return out, errs


def validate(cfg, secrets=None, board=None):
    """Check a config (and optionally its secrets) -> (normalized config, errors).

    The normalized config has every default filled in; it is usable (with
    defaults in place of the bad values) even when errors is not empty.
    ``board`` (a boards/<B>/board.json dict) adds per-board pin checks.
    """
    errs = []
    out = _object(cfg, _ROOT, DEFAULTS, "", errs)
    dev = out["device_id"] or ""
    if not out["name"]:
        out["name"] = dev
    mqtt = out["mqtt"]
    if not mqtt["client_id"]:
        mqtt["client_id"] = dev
    if mqtt["base"] == mqtt["discovery_prefix"]:
        errs.append('mqtt.base: expected a topic different from mqtt.discovery_prefix, got "%s"'
                    % mqtt["base"])
    net = out["network"]
    if net["type"] == "wifi" and not net["ssid"]:
        errs.append('network.ssid: missing, expected a string (required when network.type '
                    'is "wifi")')
    if out["relays"] or out["heaters"] or out["counters"] or out["sensors"]:
        _devices().check(out, board or {}, errs)
    if "modbus" in [m["type"] for m in out["meters"]]:
        _devices("config_modbus").check(out, board or {}, errs)
    if board:
        _check_board(out, board, errs)
    if secrets is not None:
        errs.extend(validate_secrets(secrets)[1])
    return out, errs


def _devices(name="config_devices"):
    """gw.<name> (boot-only cross checks), also when host tools load this file by path."""
    try:
        return getattr(__import__("gw." + name), name)
    except ImportError:
        import importlib.util

        path = __file__.rsplit("/", 1)[0] + "/" + name + ".py"
        spec = importlib.util.spec_from_file_location("_passerelle_gw_" + name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod


def _check_board(cfg, board, errs):
    pins = board.get("pins") or {}
    flash = pins.get("flash") or []
    uarts = board.get("uarts") or {}
    caps = board.get("capabilities") or []
    ntype = cfg["network"]["type"]
    if ntype != "none" and ntype not in caps:
        errs.append('network.type: "%s" is not available on board %s' % (ntype, board.get("id")))
    for i in range(len(cfg["meters"])):
        m = cfg["meters"][i]
        p = "meters[%d]" % i
        if uarts and str(m["uart"]) not in uarts:
            errs.append("%s.uart: expected one of %s on board %s, got %d"
                        % (p, ", ".join(sorted(uarts)), board.get("id"), m["uart"]))
        if m["rx_pin"] is not None and m["rx_pin"] in flash:
            errs.append("%s.rx_pin: GPIO %d is wired to the flash chip on board %s"
                        % (p, m["rx_pin"], board.get("id")))


def read_json(path):
    """(object, None) or (None, error message); never raises."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        code = e.args[0] if e.args else 0
        if code == 2:
            return None, "%s: file not found" % path
        return None, "%s: cannot read (errno %s)" % (path, code)
    except ValueError:      # UnicodeError: the file is not UTF-8 text
        return None, "%s: invalid JSON (not UTF-8)" % path
    try:
        import json
        return json.loads(text), None
    except ValueError:
        return None, "%s: invalid JSON" % path


def load(path="config.json", secrets_path="secrets.json"):
    """Read config and secrets files -> (config or None, secrets dict, errors).

    A missing secrets file means "no secrets"; every other problem is an error
    message (the caller validates the config and reports everything at boot).
    """
    errors = []
    cfg, err = read_json(path)
    if err:
        errors.append(err)
    secrets = {}
    if secrets_path:
        s, err = read_json(secrets_path)
        if err and not err.endswith("file not found"):
            errors.append(err)
        elif s is not None:
            secrets = s
    return cfg, secrets, errors


def read_board_root(root="."):
    """Everything main.py needs from the board root -> (cfg, secrets, board, options, errors).

    config.json / secrets.json (load), board.json (optional, from boards/<B>/) and the
    emulated board's options: env PASSERELLE_EMU (JSON), else <root>/emu.json.
    Never raises: problems are returned as messages for the boot report.  Boot-only
    (the gateway drops this module once the config is validated).
    """
    import json
    import os

    def path(name):
        return name if root == "." else root + "/" + name

    cfg, secrets, errors = load(path("config.json"), path("secrets.json"))
    board = read_json(path("board.json"))[0]
    if isinstance(board, dict):  # a hand-copied full board.json: only what the firmware reads
        board = {k: board[k] for k in BOARD_KEYS if k in board}
    getenv = getattr(os, "getenv", None)
    text = getenv("PASSERELLE_EMU") if getenv is not None else None
    if text:
        where = "PASSERELLE_EMU"
        try:
            options = json.loads(text)
        except ValueError:
            options = {}
            errors.append(where + ": invalid JSON")
    else:
        where = path("emu.json")
        options, err = read_json(where)
        if err and not err.endswith("file not found"):
            errors.append(err)
    if options is not None and not isinstance(options, dict):
        errors.append(where + ": expected a JSON object")
        options = None
    return cfg, secrets, board if isinstance(board, dict) else None, options or {}, errors
