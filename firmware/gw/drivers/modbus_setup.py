# gw/drivers/modbus_setup.py - set-up writes of a Modbus meter (meters[].setup)
# MIT license.
#
# Imported by ModbusMeter only when its config asks for set-up writes.  Each key
# (protocols.modbus.maps.setup(model): register, value type, documented values; the
# config validator gw/config_modbus.py already checked them) is written with FC 16 (what
# Eastron meters implement; its answer, register + count, is never a copy of the request,
# so a stray transceiver echo cannot confirm it), then read back with FC 3 and compared
# register by register.  Every request goes through the shared ModbusBus (its lock,
# deadline and retries): the other meters of the bus keep being polled in between.
#
# apply() runs before a poll while keys are pending.  A key is done once the meter
# answered: written and read back equal (setup_ok), or refused by an exception
# response or read back different (setup_errors, logged; not written again).  No
# answer (setup_errors, logged) ends the pass: that key and the next ones wait for the
# next poll, so an absent meter costs one deadline per poll, as its reads do.
from protocols.modbus import maps, values


async def apply(meter, keys):
    """Write the set-up keys of meter (in order) -> the keys still pending."""
    cfg = meter.cfg
    st = meter.stats
    log = meter.log
    tag = "modbus/" + meter.id
    hal = meter.hal
    table = maps.setup(cfg["model"])
    a = cfg["address"]
    tmo = cfg["timeout_ms"]
    tries = cfg["retries"] if meter.online or not st["polls"] else 0  # as the reads do
    t0 = hal.ticks_ms()
    for i in range(len(keys)):
        key = keys[i]
        e = None
        for t in table:
            if t[0] == key:
                e = t
        v = cfg["setup"][key]
        regs = values.regs(e[2], v)
        r = await meter.bus.request(a, 16, e[1], regs, tmo, tries)
        if r is not None and not r.exception:
            r = await meter.bus.request(a, 3, e[1], len(regs), tmo, tries)
        st["setup_ms"] = hal.ticks_diff(hal.ticks_ms(), t0)
        if r is None:
            st["setup_errors"] += 1
            log.warning(tag, "set-up %s: no valid answer (register %d), tried again at the "
                        "next poll", key, e[1])
            return keys[i:]
        if r.exception:
            st["setup_errors"] += 1
            log.warning(tag, "set-up %s = %d refused: exception %d (register %d)", key, v,
                        r.exception, e[1])
            continue
        same = True
        for j in range(len(regs)):
            if r.reg(j) != regs[j]:
                same = False
        if same:
            st["setup_ok"] += 1
            log.info(tag, "set-up %s = %d (register %d)", key, v, e[1])
        else:
            st["setup_errors"] += 1
            log.warning(tag, "set-up %s = %d: reads back %s (register %d)", key, v,
                        values.get(e[2], r.data, r.offset), e[1])
    return []
