# gw/discovery.py - Home Assistant MQTT discovery payloads, built one entity at a time
# MIT license.
#
# One HA device per gateway; one `sensor` entity per TIC label (or derived key) of
# each meter, announced when the label is first seen (the label set is known only
# after the first frames).  Topic: <prefix>/sensor/<device_id>/<meter>_<object>/config
# (retained).  Every entity reads the meter's retained JSON state topic through
# value_template "{{ value_json.get('LABEL') }}": a missing key renders "None", which HA
# shows as unknown.  availability_topic is the gateway status topic (LWT "offline").
#
# Classes (tic.md §8.6, HA energy dashboard):
#   Wh index          device_class energy, state_class total_increasing, unit Wh
#   VA power          device_class apparent_power, state_class measurement, unit VA
#   A / V / W         current / voltage / power, measurement
#   other indexes     unit only (VArh, dal), total_increasing
#   other units       unit only (kVA, min), measurement
#   text / ids        no unit; ids, status words and the clock are diagnostic entities
#   tempo_today / tempo_tomorrow: device_class enum, options blue / white / red
import json

_UNIT_CLASS = (("VA", "apparent_power"), ("A", "current"), ("V", "voltage"), ("W", "power"))
_DIAG_KINDS = ("id", "status", "version", "time")
_DIAG_LABELS = ("ADCO", "ADSC", "PRM", "VTIC", "MOTDETAT", "STGE", "RELAIS", "DATE",
                "HHPHC", "phases")
_DERIVED = (
    ("phases", "Phases", None),
    ("tempo_today", "Tempo today", ("blue", "white", "red")),
    ("tempo_tomorrow", "Tempo tomorrow", ("blue", "white", "red")),
)


def object_id(key):
    """A TIC label or derived key -> a topic- and entity-id-safe lowercase name."""
    out = ""
    for c in key.lower():
        if c == "-":
            out += "_m"
        elif c == "+":
            out += "_p"
        elif ("a" <= c <= "z") or ("0" <= c <= "9") or c == "_":
            out += c
        else:
            out += "_"
    return out


class Discovery:
    def __init__(self, cfg, board, version):
        mqtt = cfg["mqtt"]
        self.dev = cfg["device_id"]
        self.name = cfg["name"]
        self.prefix = mqtt["discovery_prefix"]
        self.base = "%s/%s" % (mqtt["base"], self.dev)
        self.board = board
        self.version = version

    def state_topic(self, meter_id):
        return "%s/%s/state" % (self.base, meter_id)

    def status_topic(self):
        return self.base + "/status"

    def topic(self, meter_id, key):
        return "%s/sensor/%s/%s_%s/config" % (self.prefix, self.dev, meter_id, object_id(key))

    def device(self):
        return {
            "identifiers": ["passerelle_" + self.dev],
            "name": self.name,
            "manufacturer": "Passerelle",
            "model": "TIC gateway (%s)" % self.board,
            "sw_version": self.version,
        }

    def payload(self, meter_id, key, info=None):
        """The config JSON of one entity; info = protocols.tic.labels.info(key) or None."""
        obj = object_id(key)
        p = {
            "unique_id": "passerelle_%s_%s_%s" % (self.dev, meter_id, obj),
            "name": "%s %s" % (meter_id, key),
            "state_topic": self.state_topic(meter_id),
            "value_template": "{{ value_json.get('%s') }}" % key,
            "availability_topic": self.status_topic(),
            "device": self.device(),
        }
        for k, label, options in _DERIVED:
            if k == key:
                p["name"] = "%s %s" % (meter_id, label)
                if options:
                    p["device_class"] = "enum"
                    p["options"] = list(options)
                    p["icon"] = "mdi:palette"
                else:
                    p["entity_category"] = "diagnostic"
                return json.dumps(p)
        if key in _DIAG_LABELS or (info is not None and info[0] in _DIAG_KINDS):
            p["entity_category"] = "diagnostic"
        if info is None or not info[3]:
            return json.dumps(p)
        kind, unit = info[0], info[1]
        if kind == "energy":
            p["state_class"] = "total_increasing"
            p["unit_of_measurement"] = unit or "Wh"
            if p["unit_of_measurement"] == "Wh":
                p["device_class"] = "energy"
            return json.dumps(p)
        if unit:
            p["unit_of_measurement"] = unit
            p["state_class"] = "measurement"
            for u, cls in _UNIT_CLASS:
                if u == unit:
                    p["device_class"] = cls
        return json.dumps(p)
