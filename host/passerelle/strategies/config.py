"""config.json / secrets.json strategies for ``gw.config.validate``.

Generated from the validator's own schema tables (``gw.config._ROOT``, ``_SECRETS``),
so keys added to the schema are generated too.

``configs()``        valid configs (validate() must return no error)
``wrong_configs()``  a valid config with 1..3 faults: a value of the wrong type or out of
                     range, an unknown or misspelt key, a required key removed, too many
                     or duplicate list items, a non-object where an object is expected
``json_values()``    any JSON value (what json.loads may hand to validate())
``config_texts()``   JSON text of a valid or wrong config, sometimes broken (truncated,
                     a byte changed, a trailing comma, non-UTF-8, a BOM) -> bytes
``secrets()``        secrets.json documents, valid or not
"""

import json

from hypothesis import strategies as st


def _config():
    import gw.config
    return gw.config


ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)

json_scalars = (st.none() | st.booleans() | st.integers(-2 ** 40, 2 ** 40)
                | st.floats(allow_nan=False, allow_infinity=False, width=32) | _TEXT)
json_values = st.recursive(json_scalars, lambda ch: st.lists(ch, max_size=4)
                           | st.dictionaries(_TEXT, ch, max_size=4), max_leaves=12)


def value_for_kind(kind, arg):
    """A valid value of a schema entry (None: no generator for this kind)."""
    if kind == "id":
        return st.text(ID_CHARS, min_size=1, max_size=arg)
    if kind == "str":
        return st.text(st.characters(blacklist_categories=("Cs",)), max_size=arg)
    if kind == "host":
        return st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                       max_size=min(arg, 40))
    if kind == "topic":
        alpha = st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                              blacklist_characters="+#$/")
        return st.lists(st.text(alpha, min_size=1, max_size=8), min_size=1,
                        max_size=3).map("/".join).filter(lambda t: len(t) <= arg)
    if kind == "int":
        lo, hi = arg
        return st.integers(lo, hi if hi is not None else lo + 10 ** 6)
    if kind == "bool":
        return st.booleans()
    if kind == "enum":
        return st.sampled_from(arg)
    if kind == "pin":
        return st.none() | st.integers(0, 48)
    return None


def _wrong_for_kind(kind, arg):
    """A value the validator must refuse for this kind."""
    if kind == "int":
        lo, hi = arg
        out = st.integers(-2 ** 40, lo - 1)
        if hi is not None:
            out = out | st.integers(hi + 1, 2 ** 40)
        return out | st.booleans() | st.floats(allow_nan=False, width=32) | _TEXT | st.none()
    if kind == "bool":
        return st.integers(0, 1) | _TEXT | st.none()
    if kind == "enum":
        return _TEXT.filter(lambda s: s not in arg) | st.integers() | st.none()
    if kind == "pin":
        return st.integers(49, 1000) | st.integers(-100, -1) | _TEXT | st.booleans()
    if kind == "id":
        return (st.text(max_size=arg + 5).filter(
            lambda s: not s or len(s) > arg or any(c not in ID_CHARS for c in s))
            | st.integers() | st.none())
    if kind == "host":
        return st.just("") | st.just("a b") | st.text(min_size=arg + 1, max_size=arg + 3) \
            | st.integers() | st.none()
    if kind == "topic":
        return st.sampled_from(("", "/a", "a/", "a+b", "#", "$SYS", "a b")) | st.integers()
    if kind == "str":
        return st.text(min_size=arg + 1, max_size=arg + 4) | st.integers() | st.lists(_TEXT)
    if kind == "obj":
        return st.lists(_TEXT, max_size=2) | _TEXT | st.integers()
    if kind == "list":
        return st.dictionaries(_TEXT, _TEXT, max_size=2) | _TEXT | st.integers()
    return json_values


# Lists whose items have cross checks (GPIO conflicts, interlocks: gw.config_devices)
# are left empty in valid configs; wrong_configs() still puts items in them.
LISTS_GENERATED = ("meters",)


@st.composite
def objects(draw, schema, all_keys=False, item=False):
    """A valid object of ``schema``: required keys always, optional ones sometimes.
    In a list item, a "type" enum takes its first value (other types have their own
    schema, e.g. Modbus meters)."""
    out = {}
    for key, kind, arg, required in schema:
        if not required and not all_keys and draw(st.booleans()):
            continue
        if item and key == "type" and kind == "enum":
            out[key] = arg[0]
        elif kind == "obj":
            out[key] = draw(objects(arg[0]))
        elif kind == "list":
            item_schema, _, max_items = arg
            if key not in LISTS_GENERATED:
                if required:
                    out[key] = []
                continue
            items = draw(st.lists(objects(item_schema, item=True), max_size=min(max_items, 3)))
            for i in range(len(items)):      # ids are unique within a list
                if "id" in items[i]:
                    items[i]["id"] = ("%d-" % i + items[i]["id"])[:16]
            out[key] = items
        else:
            v = value_for_kind(kind, arg)
            if v is None:
                if required:
                    raise ValueError("no generator for required %s (kind %r)" % (key, kind))
                continue
            out[key] = draw(v)
    return out


def _fix_cross_rules(cfg):
    """Rules between keys (gw.config.validate after the schema pass)."""
    mqtt = cfg.get("mqtt", {})
    base = mqtt.get("base", "passerelle")
    prefix = mqtt.get("discovery_prefix", "homeassistant")
    if base == prefix:
        mqtt["base"] = base[:60] + "x"
    net = cfg.get("network")
    if net is not None and net.get("type", "wifi") == "wifi" and not net.get("ssid"):
        net["ssid"] = "MaBox"
    if net is None:
        cfg["network"] = {"type": "none"}
    return cfg


@st.composite
def configs(draw):
    return _fix_cross_rules(draw(objects(_config()._ROOT)))


@st.composite
def secrets(draw):
    s = draw(objects(_config()._SECRETS))
    if draw(st.booleans()):         # sometimes wrong
        s = draw(_break(s, _config()._SECRETS))
    return s


def _paths(obj, schema, prefix=()):
    """[(path tuple, (key, kind, arg, required))] of every schema entry reachable in obj."""
    out = []
    for entry in schema:
        key, kind, arg = entry[0], entry[1], entry[2]
        out.append((prefix + (key,), entry))
        v = obj.get(key) if isinstance(obj, dict) else None
        if kind == "obj" and isinstance(v, dict):
            out += _paths(v, arg[0], prefix + (key,))
        elif kind == "list" and isinstance(v, list):
            for i in range(len(v)):
                if isinstance(v[i], dict):
                    out += _paths(v[i], arg[0], prefix + (key, i))
    return out


def _parent(obj, path):
    for k in path[:-1]:
        obj = obj[k]
    return obj


@st.composite
def _break(draw, cfg, schema):
    cfg = json.loads(json.dumps(cfg))       # deep copy
    paths = _paths(cfg, schema)
    fault = draw(st.sampled_from(("wrong_value", "unknown_key", "typo_key", "drop_required",
                                  "too_many", "duplicate_id", "not_object")))
    if fault in ("wrong_value", "drop_required"):
        path, (key, kind, arg, required) = draw(st.sampled_from(paths))
        try:
            parent = _parent(cfg, path)
        except (KeyError, IndexError, TypeError):
            return cfg
        if not isinstance(parent, dict):
            return cfg
        if fault == "drop_required":
            parent.pop(key, None)
        else:
            parent[key] = draw(_wrong_for_kind(kind, arg))
        return cfg
    if fault in ("unknown_key", "typo_key"):
        dicts = [cfg] + [v for v in cfg.values() if isinstance(v, dict)]
        target = draw(st.sampled_from(dicts))
        if fault == "unknown_key" or not target:
            target[draw(_TEXT)] = draw(json_values)
        else:
            k = draw(st.sampled_from(sorted(target)))
            i = draw(st.integers(0, len(k)))
            typo = k[:i] + draw(st.sampled_from(("", "x", "_"))) + k[i + 1:]
            target[typo] = target.pop(k)
        return cfg
    lists = [(k, v) for k, v in cfg.items() if isinstance(v, list)]
    if fault in ("too_many", "duplicate_id") and lists:
        k, v = draw(st.sampled_from(lists))
        if fault == "too_many":
            cfg[k] = v + [{"id": "m%d" % i} for i in range(draw(st.integers(1, 6)))]
        elif v:
            v.append(json.loads(json.dumps(v[0])))
        return cfg
    if fault == "not_object":
        return draw(json_values.filter(lambda x: not isinstance(x, dict)))
    return cfg


@st.composite
def wrong_configs(draw, max_faults=3):
    cfg = draw(configs())
    for _ in range(draw(st.integers(1, max_faults))):
        cfg = draw(_break(cfg, _config()._ROOT))
        if not isinstance(cfg, dict):
            break
    return cfg


any_configs = st.one_of(configs(), wrong_configs(), json_values)


@st.composite
def config_texts(draw):
    """The bytes of a config.json: valid, wrong or broken JSON."""
    cfg = draw(st.one_of(configs(), wrong_configs()))
    text = json.dumps(cfg, ensure_ascii=draw(st.booleans()),
                      indent=draw(st.sampled_from((None, 2)))).encode("utf-8")
    how = draw(st.sampled_from(("as is", "as is", "truncate", "byte", "trailing_comma",
                                "non_utf8", "bom", "garbage")))
    if how == "truncate" and text:
        text = text[:draw(st.integers(0, len(text) - 1))]
    elif how == "byte" and text:
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + bytes((draw(st.integers(0, 255)),)) + text[i + 1:]
    elif how == "trailing_comma" and text.endswith(b"}"):
        text = text[:-1] + b",}"
    elif how == "non_utf8":
        i = text.find(b'"')
        if i >= 0:
            text = text[:i + 1] + draw(st.sampled_from((b"\xff", b"\xc3", b"\xed\xa0\x80"))) \
                + text[i + 1:]
    elif how == "bom":
        text = b"\xef\xbb\xbf" + text
    elif how == "garbage":
        text = text + draw(st.binary(min_size=1, max_size=8))
    return text


def boards():
    """Real board definitions (boards/*/board.json), or None."""
    from passerelle import boards as B
    ids = B.board_ids()
    return st.none() | st.sampled_from(ids).map(B.load_board)
