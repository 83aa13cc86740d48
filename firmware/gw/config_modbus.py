# gw/config_modbus.py - config of Modbus RTU meters (boot-only, loaded by gw.config when
# a meter has "type": "modbus"; loadable by path on the host like gw.config)
# MIT license.
#
# A Modbus meter entry (meters[]):
#   {"id": "pac", "type": "modbus", "model": "sdm630", "uart": 2, "address": 1,
#    "baudrate": 9600, "parity": "none", "de_pin": 4, "period_s": 10,
#    "echo": false, "setup": {"demand_period": 15}}
# Meters on the same UART share one RS-485 bus: they must agree on baudrate, parity,
# pins and echo, have distinct addresses, and no TIC meter may use that UART.
# "setup": holding registers written once after boot (gw/drivers/modbus_setup.py): the
# keys are the union of protocols.modbus.maps.setup(model) over the models; check()
# keeps the model's own and their documented values, and drops the unset ones.

MODELS = ("sdm120", "sdm630", "sdm72d", "em111")  # protocols.modbus.maps.MODELS
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
BUS_KEYS = ("baudrate", "parity", "rx_pin", "tx_pin", "de_pin", "echo")
SETUP_KEYS = ("demand_period", "pulse1_width", "pulse1_energy", "pulse1_rate",
              "measurement_mode")

DEFAULTS = (
    ("type", "modbus"),
    ("uart", 2),
    ("baudrate", 9600),
    ("parity", "none"),
    ("rx_pin", None),
    ("tx_pin", None),
    ("de_pin", None),
    ("timeout_ms", 300),
    ("retries", 1),
    ("period_s", 10),
    ("min_interval_s", 0),
    ("echo", False),
    ("setup", tuple([(k, None) for k in SETUP_KEYS])),
)
SCHEMA = (
    ("id", "id", 16, True),
    ("type", "enum", ("tic", "modbus"), False),
    ("model", "enum", MODELS, True),
    ("uart", "int", (0, 9), False),
    ("address", "int", (1, 247), True),
    ("baudrate", "int", (1200, 115200), False),
    ("parity", "enum", ("none", "even", "odd"), False),
    ("rx_pin", "pin", None, False),
    ("tx_pin", "pin", None, False),
    ("de_pin", "pin", None, False),
    ("timeout_ms", "int", (20, 5000), False),
    ("retries", "int", (0, 5), False),
    ("period_s", "int", (1, None), False),
    ("min_interval_s", "int", (0, 3600), False),
    ("echo", "bool", None, False),
    ("setup", "obj", (tuple([(k, "int", (0, 65535), False) for k in SETUP_KEYS]), "setup"),
     False),
)
METER = (SCHEMA, DEFAULTS)


def _show(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return "null" if v is None else '"%s"' % v if isinstance(v, str) else str(v)


def _setup(m, p, errs):
    """meters[i].setup: only the model's set-up registers, with documented values; the
    normalized "setup" keeps the keys set (an empty dict: nothing to write)."""
    want = {}
    for k in SETUP_KEYS:
        if m["setup"].get(k) is not None:
            want[k] = m["setup"][k]
    m["setup"] = want
    if not want:
        return
    from protocols.modbus import maps

    table = maps.setup(m["model"])
    for k in SETUP_KEYS:
        if k not in want:
            continue
        e = None
        for t in table:
            if t[0] == k:
                e = t
        if e is None:
            errs.append("%s.setup.%s: not a set-up register of %s (%s)"
                        % (p, k, m["model"], ", ".join([t[0] for t in table]) or "it has none"))
        elif want[k] not in e[3]:
            errs.append("%s.setup.%s: expected one of %s, got %d"
                        % (p, k, ", ".join([str(v) for v in e[3]]), want[k]))


def check(cfg, board, errs):
    """Cross checks of the Modbus meters of a normalized config (messages name the key)."""
    meters = cfg["meters"]
    flash = (board.get("pins") or {}).get("flash") or []
    first = {}  # uart -> index of its first meter
    for i in range(len(meters)):
        m = meters[i]
        p = "meters[%d]" % i
        if m["type"] != "modbus":
            continue
        _setup(m, p, errs)
        if m["baudrate"] not in BAUDRATES:
            errs.append("%s.baudrate: expected one of %s, got %d"
                        % (p, ", ".join([str(b) for b in BAUDRATES]), m["baudrate"]))
        for k in ("tx_pin", "de_pin"):
            if m[k] is not None and m[k] in flash:
                errs.append("%s.%s: GPIO %d is wired to the flash chip on board %s"
                            % (p, k, m[k], board.get("id")))
        if m["de_pin"] is not None and m["de_pin"] in (m["rx_pin"], m["tx_pin"]):
            errs.append("%s.de_pin: GPIO %d is also the UART's rx_pin or tx_pin" % (p, m["de_pin"]))
        j = first.get(m["uart"])
        if j is None:
            first[m["uart"]] = i
            for k in range(len(meters)):
                t = meters[k]
                if t["type"] != "modbus" and t["uart"] == m["uart"]:
                    errs.append("%s.uart: UART %d is the RS-485 bus of meters[%d], a %s meter "
                                "cannot share it" % ("meters[%d]" % k, m["uart"], i, t["type"]))
            continue
        o = meters[j]
        for k in BUS_KEYS:
            if m[k] != o[k]:
                errs.append("%s.%s: expected %s like meters[%d] (same RS-485 bus, UART %d), got %s"
                            % (p, k, _show(o[k]), j, m["uart"], _show(m[k])))
        for k in range(j, i):
            t = meters[k]
            if t["type"] == "modbus" and t["uart"] == m["uart"] and t["address"] == m["address"]:
                errs.append("%s.address: %d is already meters[%d]'s on UART %d"
                            % (p, m["address"], k, m["uart"]))
