# gw/safe.py - boot-only (imported by gw.app at boot, then dropped): the NVS reset
# counter that decides safe mode, and each meter's block of seq numbers.  MIT license.
#
# Safe mode: consecutive abnormal resets (reset cause watchdog / panic, or a crash out of
# Gateway.run(), which leaves "crashed" in the NVS before main.py resets) are counted in
# the NVS (namespace "g" + device_id, key "resets"); the gateway clears the count after a
# minute of healthy uptime, so a count of 3 means as many resets in a row,
# each within a minute of boot.  Then the gateway starts no driver (meters, relays,
# heaters, counters, sensors): network, MQTT, the REPL and flashing only.  It says so in
# its boot report ("safe_mode": true, "abnormal_resets": n) and on the retained topic
# <base>/<device_id>/safe_mode.  A power cycle or a soft reset (flashing) is not
# abnormal and starts the count again from 0.
#
# Seq: the NVS key "q" + meter id holds a limit; this boot's numbers start there and
# the limit moves up by one block now (gw.app reserves the next block when a block is
# used up): numbers are never reused, one NVS write per block and per boot.

# (no module-level names: each would be one more interned string for good)


def boot(gw, block):
    """Count this boot in the NVS (abnormal reset: +1, else 0), decide safe mode (then
    no driver is configured), reserve each meter's block of seq numbers: a meter starts
    at the limit the NVS holds, which moves up by ``block``.  One NVS commit."""
    n = 0
    seq = gw._seq = {}
    try:
        nvs = gw.hal.nvs(("g" + gw.cfg["device_id"])[:15])
        old = nvs.get("resets", 0)
        crashed = nvs.get("crashed", 0)
        n = old + 1 if crashed or gw.hal.reset_cause() in ("wdt", "hard", "panic") else 0
        if n != old:
            nvs.set("resets", n)
        if crashed:
            nvs.erase("crashed")
        if n < 3:
            for mcfg in gw.cfg["meters"]:
                key = "q" + mcfg["id"][:14]
                k = nvs.get(key, 0)
                seq[mcfg["id"]] = [k, k + block, 0]
                nvs.set(key, k + block)
                gw.log.info("out", "%s: seq from %d", mcfg["id"], k)
        nvs.commit()
    except OSError as e:  # NVS unusable: run normally, seq from 0
        gw.log.exception("gw", "nvs", e)
    for mcfg in gw.cfg["meters"]:
        if mcfg["id"] not in seq:
            seq[mcfg["id"]] = [0, 0, 0]
    gw._resets = n
    gw.safe_mode = n >= 3  # 3 abnormal resets in a row: safe mode
    if gw.safe_mode:
        for k in ("meters", "relays", "heaters", "counters", "sensors"):
            if k in gw.cfg:
                gw.cfg[k] = []
