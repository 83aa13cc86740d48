# gw/devdisc.py - Home Assistant discovery of relays, heaters, S0 counters, DS18B20s
# MIT license.  Imported only while announcing, then dropped (like gw.discovery).
#
# One entity per device, on <prefix>/<component>/<device_id>/<id>/config (retained):
# unique_id passerelle_<device_id>_<id>, name = the config's name (else the id),
# state_topic <base>/<device_id>/<id>/state, availability_topic the gateway status,
# the gateway's HA device (gw.discovery.Discovery.device), plus the entity's own
# fields (command_topic, options, device_class, unit...) given by its driver.
import gc

from gw import VERSION


async def announce(gw, entities):
    """Publish the config of every (component, id, fields) -> True when all were sent."""
    if not gw.cfg["mqtt"]["discovery"]:
        return True
    from gw.app import _unload
    from gw.discovery import Discovery

    d = Discovery(gw.cfg, gw.hal.name, VERSION)
    names = {}
    for key in ("relays", "heaters", "counters", "sensors"):
        for c in gw.cfg[key]:
            names[c["id"]] = c["name"]
    base = gw.base
    try:
        for comp, ident, fields in entities:
            p = {"unique_id": "passerelle_%s_%s" % (d.dev, ident),
                 "name": names.get(ident) or ident,
                 "state_topic": "%s/%s/state" % (base, ident),
                 "availability_topic": base + "/status",
                 "device": d.device}
            for k in fields:
                p[k] = fields[k]
            topic = "%s/%s/%s/%s/config" % (d.prefix, comp, d.dev, ident)
            if not await gw._publish_json(topic, p, True):
                return False
        return True
    finally:
        d = Discovery = None
        _unload("gw.discovery")
        gc.collect()
