"""Golden files: the gateway's MQTT output, normalised so that two runs of the same
recording compare equal.

Normalisation (:func:`normalise`), applied to the messages a subscriber to
``passerelle/#`` and ``homeassistant/#`` received during a replay:

* retained messages delivered at subscription time (left by an earlier run) are not
  part of the run: dropped;
* volatile topics (``<base>/<device>/stats``) are dropped, and so are volatile keys at
  any depth of a JSON payload (``free_heap``, ``uptime_s``, ``version``,
  ``sw_version``, the states' ``seq`` and ``ts``: they change with the build, the heap,
  the clock or the board's earlier runs, not with the input);
* no timestamps, no packet ids, no QoS, no retain flag (a 3.1.1 subscriber cannot see
  it on live messages): a message is ``(topic, payload)``, the payload parsed as JSON
  when it is JSON (compared as data, printed with sorted keys), else text (else hex);
  what the broker keeps retained at the end of the run is checked instead: entries
  with ``"retained": true`` (one per topic, read by a fresh subscription);
* per topic, consecutive identical messages are collapsed (a republish after a
  reconnection or ``period_s`` says nothing new); order is kept per topic only,
  since MQTT orders nothing across topics.

Golden file: JSON Lines, a header ``{"format": "passerelle-golden", "version": 1,
"recording": ..., "device_id": ...}`` then one message per line in arrival order.
"""

import difflib
import json

FORMAT = "passerelle-golden"
VERSION = 1
VOLATILE_KEYS = frozenset(("free_heap", "uptime_s", "uptime", "version", "sw_version",
                           "seq", "ts"))
VOLATILE_TOPIC_SUFFIXES = ("/stats",)
SUBSCRIPTIONS = ("passerelle/#", "homeassistant/#")


class GoldenError(ValueError):
    pass


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def decode_payload(payload):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    payload = bytes(payload)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return {"hex": payload.hex()}
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, (dict, list)):
        return _strip(value)
    return text          # "online", "12": keep the exact text


def volatile_topic(topic):
    return topic.endswith(VOLATILE_TOPIC_SUFFIXES) and topic.startswith("passerelle/")


def normalise(messages):
    """``messages``: iterable of ``(topic, payload bytes, retain, from_subscription)``
    (or ``(topic, payload, retain)``) in arrival order -> list of dicts
    ``{"topic", "payload"}``, normalised as described in the module doc."""
    out, last = [], {}
    for m in messages:
        topic, payload = m[0], m[1]
        if len(m) > 3 and m[3]:
            continue
        if volatile_topic(topic):
            continue
        msg = {"topic": topic, "payload": decode_payload(payload)}
        key = _key(msg)
        if last.get(topic) == key:
            continue
        last[topic] = key
        out.append(msg)
    return out


def _key(msg):
    return json.dumps(msg["payload"], sort_keys=True)


def per_topic(msgs):
    """topic -> [messages]; the retained snapshot under "retained <topic>"."""
    d = {}
    for m in msgs:
        d.setdefault(("retained " if m.get("retained") else "") + m["topic"], []).append(m)
    return d


def write(path, msgs, **meta):
    head = {"format": FORMAT, "version": VERSION}
    head.update(meta)
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(head, sort_keys=True) + "\n")
        for m in msgs:
            f.write(json.dumps(m, sort_keys=True, ensure_ascii=False) + "\n")


def read(path):
    """-> (header, messages)"""
    with open(path, encoding="utf-8") as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    if not lines:
        raise GoldenError("%s: empty golden file" % path)
    try:
        head = json.loads(lines[0])
        msgs = [json.loads(ln) for ln in lines[1:]]
    except ValueError as exc:
        raise GoldenError("%s: not JSON Lines: %s" % (path, exc))
    if head.get("format") != FORMAT or head.get("version") != VERSION:
        raise GoldenError("%s: not a %s v%d file" % (path, FORMAT, VERSION))
    return head, msgs


def _lines(msgs):
    return [json.dumps(m["payload"], sort_keys=True, ensure_ascii=False) for m in msgs]


def compare(expected, actual, context=2, max_lines=200):
    """Per-topic comparison -> list of readable diff lines ([] when equal)."""
    exp, act = per_topic(expected), per_topic(actual)
    out = []
    for topic in sorted(set(exp) | set(act)):
        e, a = exp.get(topic, []), act.get(topic, [])
        if [_key(m) for m in e] == [_key(m) for m in a]:
            continue
        if not e:
            out.append("+ unexpected topic %s (%d message(s)), first: %s" % (topic, len(a), _lines(a)[0]))
            continue
        if not a:
            out.append("- missing topic %s (%d message(s) expected), first: %s" % (topic, len(e), _lines(e)[0]))
            continue
        out.append("~ %s: %d message(s) expected, %d received" % (topic, len(e), len(a)))
        for line in difflib.unified_diff(_lines(e), _lines(a), "expected", "actual", n=context,
                                         lineterm=""):
            out.append("    " + line)
    if len(out) > max_lines:
        out = out[:max_lines] + ["... (%d more diff lines)" % (len(out) - max_lines)]
    return out


def summary(msgs):
    live = [m for m in msgs if not m.get("retained")]
    topics = per_topic(live)
    states = sum(len(v) for k, v in topics.items() if k.endswith("/state"))
    disc = sum(len(v) for k, v in topics.items() if k.startswith("homeassistant/"))
    return "%d messages on %d topics (%d states, %d discovery), %d retained" % (
        len(live), len(topics), states, disc, len(msgs) - len(live))
