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
# The entity class comes from protocols.tic.labels.info(label) (kind, unit, numeric),
# not from per-label code (tic.md §8.6, HA energy dashboard):
#   Wh index          device_class energy, state_class total_increasing, unit Wh
#   VA power          device_class apparent_power, state_class measurement, unit VA
#   A / V / W         current / voltage / power, measurement
#   other indexes     unit only (VArh, dal), total_increasing
#   other units       unit only (kVA, min), measurement
#   text / ids        no unit; ids, status words and the clock are diagnostic entities
#   tempo_today / tempo_tomorrow: device_class enum, options blue / white / red
# Drivers that know their keys (Modbus meters) give (unit, device_class, state_class)
# hints instead of a TIC info tuple: they are used as they are.
#
# The gateway imports this module only while it announces entities and drops it
# afterwards (gw.app): nothing here is needed in steady state.
import json

_UNIT_CLASS = (("VA", "apparent_power"), ("A", "current"), ("V", "voltage"), ("W", "power"))
_DIAG = ("id", "status", "version", "time",  # label kinds, then labels
         "ADCO", "ADSC", "PRM", "VTIC", "MOTDETAT", "STGE", "RELAIS", "DATE", "HHPHC", "phases")
_TEMPO = ("tempo_today", "tempo_tomorrow")


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
        self.prefix = mqtt["discovery_prefix"]
        self.base = "%s/%s" % (mqtt["base"], self.dev)
        self.device = {
            "identifiers": ["passerelle_" + self.dev],
            "name": cfg["name"],
            "manufacturer": "Passerelle",
            "model": "TIC gateway (%s)" % board,
            "sw_version": version,
        }

    def topic(self, meter_id, key):
        return "%s/sensor/%s/%s_%s/config" % (self.prefix, self.dev, meter_id, object_id(key))

    def payload(self, meter_id, key, info=None):
        """The config JSON of one entity; info = protocols.tic.labels.info(key) or None."""
        return json.dumps(self.entity(meter_id, key, info))

    def entity(self, meter_id, key, info=None):
        """The config of one entity as a dict (payload() is its JSON).  info: a TIC
        labels.info() tuple, or (unit, device_class, state_class) hints."""
        p = {
            "unique_id": "passerelle_%s_%s_%s" % (self.dev, meter_id, object_id(key)),
            "name": "%s %s" % (meter_id, key),
            "state_topic": "%s/%s/state" % (self.base, meter_id),
            "value_template": "{{ value_json.get('%s') }}" % key,
            "availability_topic": self.base + "/status",
            "device": self.device,
        }
        if info is not None and len(info) == 3:
            # hints of a driver that knows its keys (Modbus meters: protocols.modbus.maps)
            unit, cls, state = info
            if unit:
                p["unit_of_measurement"] = unit
            if cls:
                p["device_class"] = cls
            if state:
                p["state_class"] = state
            return p
        if key in _TEMPO:
            p["name"] = "%s Tempo %s" % (meter_id, key[6:])
            p["device_class"] = "enum"
            p["options"] = ["blue", "white", "red"]
            p["icon"] = "mdi:palette"
        elif key in _DIAG or (info is not None and info[0] in _DIAG):
            p["entity_category"] = "diagnostic"
        if key == "phases":
            p["name"] = meter_id + " Phases"
        if info is not None and info[3]:
            unit = info[1]
            if info[0] == "energy":
                unit = unit or "Wh"
                p["state_class"] = "total_increasing"
                if unit == "Wh":
                    p["device_class"] = "energy"
            elif unit:
                p["state_class"] = "measurement"
                for u, cls in _UNIT_CLASS:
                    if u == unit:
                        p["device_class"] = cls
            if unit:
                p["unit_of_measurement"] = unit
        return p
