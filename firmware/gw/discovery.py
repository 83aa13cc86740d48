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
# afterwards (gw.app): nothing here is needed in steady state.  It is imported when the
# heap is at its tightest (the first announce, a 96K heap), so it is small: the strings
# longer than 10 characters that are not an entity's member names or values are in one
# string (_K, protocols.compat.pick) rather than a literal each (~40 B while loaded),
# there are no constant tuples, the strings shared by every entity are made once per
# announce (Discovery.avail, the state topic), and the gateway has an entity built and
# written into its JSON buffer by dump(), outside its coroutines (see dump).
import json

from protocols.compat import const, pick

# strings used once per announce, or formats (their results are new strings anyway); the
# member names and values of every entity stay literals: as dict keys and values they
# would be new strings in every entity's dict
_K = ("identifiers|manufacturer|TIC gateway (%s)|passerelle_%s_%s_%s|"
      "{{ value_json.get('%s') }}|%s/sensor/%s/%s_%s/config|mdi:palette|%s Tempo %s|"
      "%s/%s/state|passerelle_|discovery_prefix")
_IDENTIFIERS = const(0)
_MANUFACTURER = const(1)
_MODEL = const(2)
_UNIQUE_ID = const(3)
_VALUE_JSON = const(4)
_TOPIC = const(5)
_ICON = const(6)
_TEMPO = const(7)
_STATE = const(8)
_PREFIX = const(9)
_DISC_PREFIX = const(10)
# diagnostic entities: label kinds, then labels (whole words between spaces)
_DIAG = " id status version time ADCO ADSC PRM VTIC MOTDETAT STGE RELAIS DATE HHPHC phases "


def object_id(key):
    """A TIC label or derived key -> a topic- and entity-id-safe lowercase name."""
    out = key.lower()  # one string; rebuilt character by character only when needed
    for c in out:
        if not (("a" <= c <= "z") or ("0" <= c <= "9") or c == "_"):
            break
    else:
        return out
    r = ""
    for c in out:
        if c == "-":
            r += "_m"
        elif c == "+":
            r += "_p"
        elif ("a" <= c <= "z") or ("0" <= c <= "9") or c == "_":
            r += c
        else:
            r += "_"
    return r


class Discovery:
    def __init__(self, cfg, board, version):
        mqtt = cfg["mqtt"]
        self.dev = cfg["device_id"]
        self.prefix = mqtt[pick(_K, _DISC_PREFIX)]
        self.base = "%s/%s" % (mqtt["base"], self.dev)
        self.device = {
            pick(_K, _IDENTIFIERS): [pick(_K, _PREFIX) + self.dev],
            "name": cfg["name"],
            pick(_K, _MANUFACTURER): "Passerelle",
            "model": pick(_K, _MODEL) % board,
            "sw_version": version,
        }
        self.avail = self.base + "/status"  # the same strings for every entity
        self._st = (None, None)  # (meter id, its state topic)

    def topic(self, meter_id, key):
        return pick(_K, _TOPIC) % (self.prefix, self.dev, meter_id, object_id(key))

    def payload(self, meter_id, key, info=None):
        """The config JSON of one entity; info = protocols.tic.labels.info(key) or None."""
        return json.dumps(self.entity(meter_id, key, info))

    def dump(self, out, e):
        """json.dump() the config of entity e = (meter id, key, info) into ``out``.  The
        gateway calls this (a plain function) rather than passing the dict to a coroutine:
        a coroutine's stale stack slots would keep the dict and its strings (~1 KB)
        alive while the entity is published."""
        json.dump(self.entity(e[0], e[1], e[2]), out)

    def entity(self, meter_id, key, info=None):
        """The config of one entity as a dict (payload() is its JSON).  info: a TIC
        labels.info() tuple, or (unit, device_class, state_class) hints."""
        st = self._st
        if st[0] != meter_id:
            st = self._st = (meter_id, pick(_K, _STATE) % (self.base, meter_id))
        # the same members inserted in the same order as ever: MicroPython's dicts
        # iterate in hash-table order, so the payload's bytes depend on how it is built
        p = {
            "unique_id": pick(_K, _UNIQUE_ID) % (self.dev, meter_id, object_id(key)),
            "name": "%s %s" % (meter_id, key),
            "state_topic": st[1],
            "value_template": pick(_K, _VALUE_JSON) % key,
            "availability_topic": self.avail,
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
        day = key[6:] if key[:6] == "tempo_" else None
        if day == "today" or day == "tomorrow":
            p["name"] = pick(_K, _TEMPO) % (meter_id, day)
            p["device_class"] = "enum"
            p["options"] = ["blue", "white", "red"]
            p["icon"] = pick(_K, _ICON)
        elif (" %s " % key) in _DIAG or (info is not None and (" %s " % info[0]) in _DIAG):
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
                cls = ("apparent_power" if unit == "VA" else "current" if unit == "A"
                       else "voltage" if unit == "V" else "power" if unit == "W" else None)
                if cls is not None:
                    p["device_class"] = cls
            if unit:
                p["unit_of_measurement"] = unit
        return p
