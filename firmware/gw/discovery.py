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
# announce (Discovery.avail, the state topic), and the gateway has an entity written
# into its JSON buffer by dump(), piece by piece, with no dict nor block over ~100 B,
# outside its coroutines (see dump).  entity() / payload() build the same config as a
# dict (host tools and tests).
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
# dump()'s constant pieces, separated by | (Discovery._put)
_J = (b'{"unique_id": "|_|", "name": "| Tempo | |", "state_topic": "|/|/state", '
      b'"value_template": "{{ value_json.get(\'|\') }}", "availability_topic": "|'
      b'", "device": |, "device_class": "enum", "options": ["blue", "white", "red"], '
      b'"icon": "mdi:palette"|, "entity_category": "diagnostic"|, "|": "|"|}|'
      b'unit_of_measurement|device_class|state_class|Phases')
_J_UID = const(0)
_J_SEP = const(1)
_J_NAME = const(2)
_J_TEMPO = const(3)
_J_SPACE = const(4)
_J_STATE = const(5)
_J_SLASH = const(6)
_J_TEMPLATE = const(7)
_J_AVAIL = const(8)
_J_DEVICE = const(9)
_J_ENUM = const(10)
_J_DIAG = const(11)
_J_MEMBER = const(12)
_J_COLON = const(13)
_J_QUOTE = const(14)
_J_END = const(15)
_J_UNIT = const(16)
_J_CLASS = const(17)
_J_STATE_CLASS = const(18)
_J_PHASES = const(19)
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
        self._uid = pick(_K, _PREFIX) + self.dev + "_"
        self._st = (None, None)  # (meter id, its state topic)

    def topic(self, meter_id, key):
        return pick(_K, _TOPIC) % (self.prefix, self.dev, meter_id, object_id(key))

    def payload(self, meter_id, key, info=None):
        """The config JSON of one entity; info = protocols.tic.labels.info(key) or None."""
        return json.dumps(self.entity(meter_id, key, info))

    def dump(self, out, e):
        """Write the config of entity e = (meter id, key, info) into ``out`` (the
        gateway's JSON buffer): the members of entity(), written piece by piece.  No
        dict nor formatted string is made: at the first announce of a meter with 60-odd
        labels a 96K heap has ~2 KB free in holes of ~100 B, and an entity's dict grows
        to 160-300 B blocks.  The constant pieces are slices of one bytes object (_J: a
        constant each would be a heap object while the module is loaded).  The gateway
        calls this outside its coroutines (a coroutine's stale stack slots would keep
        what it made alive).  Every variable piece is ASCII that needs no escaping:
        identifiers ([a-z0-9_-], gw.config), labels, units and classes; the device
        member, from free text, is written by json.dump."""
        mid, key, info = e
        w = out.write
        j = memoryview(_J)
        put = self._put
        hints = info is not None and len(info) == 3
        day = key[6:] if key[:6] == "tempo_" and not hints else None
        tempo = day == "today" or day == "tomorrow"
        put(w, j, _J_UID)
        w(self._uid)
        w(mid)
        put(w, j, _J_SEP)
        w(object_id(key))
        put(w, j, _J_NAME)
        w(mid)
        if tempo:
            put(w, j, _J_TEMPO)
            w(day)
        else:
            put(w, j, _J_SPACE)
            if key == "phases" and not hints:
                put(w, j, _J_PHASES)
            else:
                w(key)
        put(w, j, _J_STATE)
        w(self.base)
        put(w, j, _J_SLASH)
        w(mid)
        put(w, j, _J_TEMPLATE)
        w(key)
        put(w, j, _J_AVAIL)
        w(self.avail)
        put(w, j, _J_DEVICE)
        json.dump(self.device, out)
        if hints:
            # hints of a driver that knows its keys (Modbus meters: protocols.modbus.maps)
            put(w, j, _J_UNIT, info[0])
            put(w, j, _J_CLASS, info[1])
            put(w, j, _J_STATE_CLASS, info[2])
        elif tempo:
            put(w, j, _J_ENUM)
        elif (" %s " % key) in _DIAG or (info is not None and (" %s " % info[0]) in _DIAG):
            put(w, j, _J_DIAG)
        if not hints and info is not None and info[3]:
            unit, state, cls = self._numeric(info)
            put(w, j, _J_STATE_CLASS, state)
            put(w, j, _J_CLASS, cls)
            put(w, j, _J_UNIT, unit)
        put(w, j, _J_END)

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
            unit, state, cls = self._numeric(info)
            if state:
                p["state_class"] = state
            if cls is not None:
                p["device_class"] = cls
            if unit:
                p["unit_of_measurement"] = unit
        return p

    def _put(self, w, j, i, value=0):
        """Write piece ``i`` of _J (a view into the module's constant, no copy); given a
        value, the member ``, "<piece i>": "<value>"`` unless the value is None or ""."""
        if value != 0:
            if not value:
                return
            self._put(w, j, _J_MEMBER)
            self._put(w, j, i)
            self._put(w, j, _J_COLON)
            w(value)
            i = _J_QUOTE
        p = 0
        while i:
            p = _J.index(b"|", p) + 1
            i -= 1
        q = _J.find(b"|", p)
        w(j[p:] if q < 0 else j[p:q])

    @staticmethod
    def _numeric(info):
        """(unit, state_class, device_class) of a numeric TIC label (None: none)."""
        unit = info[1]
        if info[0] == "energy":
            unit = unit or "Wh"
            return unit, "total_increasing", "energy" if unit == "Wh" else None
        if not unit:
            return unit, None, None
        return unit, "measurement", ("apparent_power" if unit == "VA" else "current"
                                     if unit == "A" else "voltage" if unit == "V"
                                     else "power" if unit == "W" else None)
