# gw/config_devices.py - cross checks of relays, heaters, S0 counters and DS18B20 sensors
# MIT license.  Boot-only: imported by gw.config.validate() when the config has such
# devices (the per-key checks are gw.config's schemas _RELAY, _HEATER, _COUNTER, _SENSOR).
# Self-contained (no import): the host tools load gw/config.py and this file by path.


def rom_ok(v):
    """A 1-Wire ROM id as in config.json: 16 hex digits, the last byte the Dallas CRC-8
    of the first seven (same CRC as protocols.onewire.crc8)."""
    if not isinstance(v, str) or len(v) != 16:
        return False
    for c in v:
        if c not in "0123456789abcdefABCDEF":
            return False
    crc = 0
    for i in range(8):
        b = int(v[2 * i:2 * i + 2], 16)
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc == 0

def check(cfg, board, errs):
    """Cross checks of relays / heaters / counters / sensors: ids unique over every
    device (they share <base>/<device_id>/<id>/...), interlocks, GPIO conflicts and,
    with a board, GPIOs that do not exist, are input-only or wired to the flash."""
    seen = []
    used = []  # [gpio, path, "out" | "in" | "bus"]
    for m in cfg["meters"]:
        seen.append(m["id"])
        if m["rx_pin"] is not None:
            used.append([m["rx_pin"], "meter " + str(m["id"]), "in"])
    pins = board.get("pins") or {}
    gpios = pins.get("gpio") or []
    for key, pin_keys in (("relays", ("pin",)), ("heaters", ("pin_pos", "pin_neg")),
                          ("counters", ("pin",)), ("sensors", ("pin",))):
        items = cfg[key]
        for i in range(len(items)):
            d = items[i]
            p = "%s[%d]" % (key, i)
            if d["id"] is not None:
                if d["id"] in seen:
                    errs.append('%s.id: "%s" is already the id of another device' % (p, d["id"]))
                seen.append(d["id"])
            for pk in pin_keys:
                g = d[pk]
                if g is None:
                    continue
                role = "bus" if key == "sensors" else ("in" if key == "counters" else "out")
                for u in used:
                    if u[0] == g and not (role == "bus" and u[2] == "bus"):
                        errs.append("%s.%s: GPIO %d is already used by %s" % (p, pk, g, u[1]))
                        break
                used.append([g, "%s.%s" % (p, pk), role])
                if gpios and g not in gpios:
                    errs.append("%s.%s: GPIO %d does not exist on board %s"
                                % (p, pk, g, board.get("id")))
                elif g in (pins.get("flash") or []):
                    errs.append("%s.%s: GPIO %d is wired to the flash chip on board %s"
                                % (p, pk, g, board.get("id")))
                elif role != "in" and g in (pins.get("input_only") or []):
                    errs.append("%s.%s: GPIO %d is input-only on board %s"
                                % (p, pk, g, board.get("id")))
    relays = cfg["relays"]
    ids = [r["id"] for r in relays]
    for i in range(len(relays)):
        other = relays[i]["interlock"]
        if other is not None and (other == relays[i]["id"] or other not in ids):
            errs.append('relays[%d].interlock: expected the id of another relay, got "%s"'
                        % (i, other))
    roms = []
    for i in range(len(cfg["sensors"])):
        r = cfg["sensors"][i]["rom"]
        if r is not None and r in roms:
            errs.append('sensors[%d].rom: duplicate ROM id "%s"' % (i, r))
        roms.append(r)
