# gw/config_modbus.py - config of Modbus RTU meters (boot-only, loaded by gw.config when
# a meter has "type": "modbus"; loadable by path on the host like gw.config)
# MIT license.
#
# A Modbus meter entry (meters[]):
#   {"id": "pac", "type": "modbus", "model": "sdm630", "uart": 2, "address": 1,
#    "baudrate": 9600, "parity": "none", "de_pin": 4, "period_s": 10}
# Meters on the same UART share one RS-485 bus: they must agree on baudrate, parity
# and pins, have distinct addresses, and no TIC meter may use that UART.

MODELS = ("sdm120", "sdm630", "sdm72d", "em111")  # protocols.modbus.maps.MODELS
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
BUS_KEYS = ("baudrate", "parity", "rx_pin", "tx_pin", "de_pin")

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
)
METER = (SCHEMA, DEFAULTS)


def _show(v):
    return "null" if v is None else '"%s"' % v if isinstance(v, str) else str(v)


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
