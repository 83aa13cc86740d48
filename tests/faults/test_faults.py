"""Fault injection on the emulated board (issue 7 §6): each scenario prints one
``FAULT <name> produced=.. delivered=.. lost=.. duplicated=..`` line (derived from the
states' "seq") plus its own figures, and asserts the targets:

* outages (broker killed, half-open link): 0 lost, at most 1 duplicate per outage,
  delivered in order, the backlog's last state is the retained one;
* half-open link noticed within 1.5 x keepalive; first publish <= 5 s after the broker
  is back; the outbox's RAM ring <= 16 KB;
* gateway SIGKILLed at random points: seq never reused, files never corrupt;
* flash full: the oldest states dropped and counted, the gateway keeps running;
* garbage and oversized packets from the broker: counted, the link is re-established,
  nothing lost.
"""

import json
import random
import time

import pytest

from tests.faults.conftest import (BASE, KEEPALIVE, STATE, BlackholeProxy, ChaosProxy,
                                   Subscriber, account, gw_config, scan_segment)

pytestmark = [pytest.mark.mosquitto]

OUTAGE_S = 12  # ~30 states at ~2.5 states/s: the volume of a 30-minute outage at period_s 60


def flowing(sub, gw, n=3, timeout=40):
    assert sub.wait(lambda: len(sub.states()) >= n, timeout), gw.output


def drained(gw, sub, timeout=30):
    return sub.wait(lambda: set(gw.produced()) <= {s for _, s, _ in sub.states()}, timeout)


def undelivered(gw, sub):
    """What a failed drain looks like: the missing seqs, the subscriber's connections
    (was its session kept?), the gateway's MQTT log lines."""
    missing = sorted(set(gw.produced()) - {s for _, s, _ in sub.states()})
    t0 = gw.lines[0][0] if gw.lines else 0.0
    mqtt = ["%.2f %s" % (t - t0, ln) for t, _, ln in list(gw.lines)
            if "mqtt" in ln or "out:" in ln and "seq" not in ln or "BOOT" in ln][-40:]
    return "missing seqs %s\nsubscriber connects (t, session_present) %s\n%s" % (
        missing[:30], [(round(t - t0, 2), p) for t, p in sub.connects], "\n".join(mqtt))


def stats_docs(sub):
    return [json.loads(p) for _, t, p, _ in list(sub.msgs) if t == BASE + "/stats"]


def outbox_peak(sub):
    """(largest ring seen, most states waiting, smallest free heap) from the stats."""
    ram = waiting = 0
    free = None
    for d in stats_docs(sub):
        ob = d.get("outbox") or {}
        ram = max(ram, ob.get("ram_peak", 0))
        waiting = max(waiting, ob.get("waiting", 0))
        free = d["free_heap"] if free is None else min(free, d["free_heap"])
    return ram, waiting, free


def max_lag(sub):
    """The main loop's longest late wake-up (ms) reported in the stats: what blocked the
    event loop longest (the target is 100 ms; the host's scheduler adds its jitter)."""
    return max([d.get("loop_lag_ms", 0) for d in stats_docs(sub)] or [0])


LAG_LIMIT_MS = 250  # 100 ms on the board + the jitter of a loaded 2-core CI host


def retained_seq(port):
    probe = Subscriber(port, client_id="retained-probe", clean=True)
    try:
        got = probe.wait(lambda: probe.last(STATE), 10)
        return json.loads(got)["seq"] if got else None
    finally:
        probe.stop()


def test_broker_killed_and_restarted(broker, sub, tic, gateways):
    gw = gateways(gw_config(broker.port), {"uart": {"1": tic.port}}).start()
    flowing(sub, gw)
    n0 = len(gw.produced())
    broker.kill()
    time.sleep(OUTAGE_S)
    backlog = len(gw.produced()) - n0
    broker.start()
    t_back = time.monotonic()
    probe = Subscriber(broker.port, client_id="first-probe", clean=True)
    try:
        first = probe.wait(lambda: probe.states(), 10)
    finally:
        probe.stop()
    tic.stop()
    assert drained(gw, sub), undelivered(gw, sub)
    time.sleep(5.5)  # one more stats message, with the outbox counters
    first_s = first[0][0] - t_back if first else float("inf")
    ram, waiting, free = outbox_peak(sub)
    r = account("broker-restart", gw.produced(), sub.states(),
                "outage=%ds backlog=%d first_publish_after_back=%.2fs ring=%dB peak_waiting=%d "
                "min_free_heap=%s loop_lag=%dms"
                % (OUTAGE_S, backlog, first_s, ram, waiting, free, max_lag(sub)))
    assert backlog >= 20, "too few states produced during the outage: %d" % backlog
    assert r["lost"] == 0 and r["unknown"] == 0, r
    assert r["duplicated"] <= 1 and r["in_order"], r
    assert first_s <= 5.0
    assert ram <= 16 * 1024  # the ring's peak use (0: every state bigger than the ring)
    assert max_lag(sub) <= LAG_LIMIT_MS
    assert retained_seq(broker.port) == max(gw.produced())
    assert not gw.errors() and gw.resets == 0, gw.output


def test_half_open_link_blackhole(broker, sub, tic, gateways, proxies):
    px = BlackholeProxy(broker.port)
    proxies.append(px)
    gw = gateways(gw_config(px.port), {"uart": {"1": tic.port}}).start()
    flowing(sub, gw)
    # a link up for 10 s is "stable": after it the client reconnects at once, so the
    # new connection's time is the detection time (else the first backoff step adds
    # up to 0.5 s)
    t_up = [t for t, _, ln in gw.lines if ln == "I mqtt: connected"][0]
    time.sleep(max(0.0, t_up + 10.5 - time.monotonic()))
    n_acc = len(px.accepts)
    n0 = len(gw.produced())
    t0 = time.monotonic()
    px.blackhole()  # TCP stays open both ways, no byte goes through
    assert sub.wait(lambda: len(px.accepts) > n_acc, 1.5 * KEEPALIVE + 5), gw.output
    reconnect_s = px.accepts[n_acc] - t0
    backlog = len(gw.produced()) - n0
    time.sleep(2)
    tic.stop()
    assert drained(gw, sub), undelivered(gw, sub)
    r = account("half-open", gw.produced(), sub.states(),
                "keepalive=%ds new_connection_after=%.2fs (limit %.1fs) backlog=%d"
                % (KEEPALIVE, reconnect_s, 1.5 * KEEPALIVE, backlog))
    # detection at 1.5 x keepalive after the last byte received (PUBACKs and PINGRESPs
    # came until the blackhole), then an immediate reconnect; 0.3 s for scheduling
    assert reconnect_s <= 1.5 * KEEPALIVE + 0.3
    assert backlog >= 5
    assert r["lost"] == 0 and r["unknown"] == 0, r
    assert r["duplicated"] <= 1 and r["in_order"], r
    assert retained_seq(broker.port) == max(gw.produced())
    assert not gw.errors() and gw.resets == 0, gw.output


def check_files(gw):
    """Power-cut safety: nvs.json is whole JSON, every outbox segment is whole records."""
    nvs = gw.root / "nvs.json"
    if nvs.exists():
        json.loads(nvs.read_text())
    segs = 0
    for p in gw.files():
        if p.suffix == ".seg":
            n, trailing = scan_segment(p.read_bytes())
            assert n >= 1 and trailing == 0, p
            segs += 1
    return segs


def test_gateway_sigkilled_at_random_points(broker, sub, tic, gateways):
    rnd = random.Random(20261206)
    gw = gateways(gw_config(broker.port), {"uart": {"1": tic.port}}).start()
    flowing(sub, gw)
    kills, offline_kills, segs_left = 0, 0, 0
    for i in range(4):
        offline = i == 2
        if offline:  # a power cut during an outage: the backlog on flash survives it
            broker.kill()
            time.sleep(rnd.uniform(4, 6))
        time.sleep(rnd.uniform(0.2, 2.5))
        gw.kill()
        kills += 1
        offline_kills += offline
        segs_left = max(segs_left, check_files(gw))
        if offline:
            broker.start()
        t = time.monotonic()
        gw.start()
        assert gw.wait_line(lambda ln: ln.startswith("PASSERELLE BOOT"), 20, since=t), gw.output
        assert gw.wait_line(lambda ln: ln.startswith("D out:"), 30, since=t), gw.output
    time.sleep(2)
    tic.stop()
    n = -1
    while n != len(sub.states()):  # until nothing more arrives
        n = len(sub.states())
        time.sleep(2)
    produced = gw.produced()
    bases = gw.bases()
    assert not [p for p in gw.files() if p.suffix == ".tmp"]
    check_files(gw)
    # never reused: each boot starts above everything produced before it
    assert len(produced) == len(set(produced)) and produced == sorted(produced), produced
    assert [b for _, b in bases] == sorted(set(b for _, b in bases)) and len(bases) == kills + 1
    nvs = json.loads((gw.root / "nvs.json").read_text())
    limit = [v for k, v in nvs.items() if isinstance(v, dict) and "qlinky" in v][0]["qlinky"]
    assert limit == bases[-1][1] + 1024 and max(produced) < limit
    r = account("sigkill", produced, sub.states(),
                "kills=%d (1 offline, %d segment(s) on flash at the cut) seq bases=%s"
                % (kills, segs_left, [b for _, b in bases]))
    assert r["unknown"] == 0 and r["in_order"], r
    # lost only what RAM held at the cut: the state in flight, the ring (2 KB ~ 1-2 states)
    assert r["lost"] <= 2 * (kills - offline_kills) + 3 * offline_kills, gw.output
    assert segs_left >= 1  # the outage's backlog was on flash when the power went
    assert not gw.errors() and gw.resets == 0, gw.output


def test_flash_full(broker, sub, tic, gateways):
    # the emulated data partition holds 6 KB: ENOSPC long before the 256 KB outbox limit
    gw = gateways(gw_config(broker.port), {"uart": {"1": tic.port}, "flash_kb": 6}).start()
    flowing(sub, gw)
    n0 = len(gw.produced())
    broker.kill()
    time.sleep(OUTAGE_S)
    backlog = len(gw.produced()) - n0
    broker.start()
    time.sleep(2)
    tic.stop()
    assert sub.wait(lambda: max(gw.produced()) in {s for _, s, _ in sub.states()}, 30), gw.output
    time.sleep(5.5)  # one more stats message
    ob = stats_docs(sub)[-1]["outbox"]
    used = sum(p.stat().st_size for p in gw.files())
    r = account("flash-full", gw.produced(), sub.states(),
                "quota=6KB backlog=%d dropped=%d spill_errors=%d spilled=%d data_bytes_now=%d "
                "loop_lag=%dms" % (backlog, ob["dropped"], ob["spill_errors"], ob["spilled"], used,
                                   max_lag(sub)))
    assert ob["spill_errors"] >= 1 and ob["dropped"] >= 1, ob
    assert max_lag(sub) <= LAG_LIMIT_MS
    assert r["lost"] == ob["dropped"], (r, ob)  # every loss is counted
    delivered = {s for _, s, _ in sub.states()}
    lost = set(gw.produced()) - delivered
    after = [s for s in delivered if s > min(lost)]
    assert max(lost) < min(after), "the oldest are dropped first"
    assert r["duplicated"] <= 1 and r["in_order"] and r["unknown"] == 0, r
    assert not [p for p in gw.files() if p.suffix == ".tmp"]
    check_files(gw)
    assert not gw.errors() and gw.resets == 0, gw.output


def test_garbage_and_oversized_packets(broker, sub, tic, gateways, proxies):
    from protocols.mqtt import encode

    px = ChaosProxy(broker.port, garbage_connacks=1)  # the first CONNACK is garbage
    proxies.append(px)
    gw = gateways(gw_config(px.port), {"uart": {"1": tic.port}}).start()
    flowing(sub, gw)
    drops = 0
    # an oversized PUBLISH (100 KB > the 256-byte receive limit): skipped, link kept
    n_acc = len(px.accepts)
    px.inject(bytes(encode.publish("homeassistant/status", b"x" * 100000)))
    time.sleep(1.5)
    assert len(px.accepts) == n_acc
    # a reserved packet type, then a 5-byte remaining length: malformed, link dropped
    for junk in (b"\x00\x05hello", b"\x30\xff\xff\xff\xff\x7f"):
        n_acc = len(px.accepts)
        px.inject(junk)
        assert sub.wait(lambda: len(px.accepts) > n_acc, 10), gw.output
        drops += 1
        time.sleep(1.5)
    tic.stop()
    assert drained(gw, sub), undelivered(gw, sub)
    time.sleep(5.5)
    mq = stats_docs(sub)[-1]["mqtt"]
    r = account("garbage", gw.produced(), sub.states(),
                "malformed=%d oversize=%d connect_failures=%d links_dropped=%d"
                % (mq["malformed"], mq["oversize"], mq["connect_failures"], drops))
    assert mq["oversize"] >= 1 and mq["malformed"] >= 3 and mq["connect_failures"] >= 1, mq
    assert r["lost"] == 0 and r["unknown"] == 0 and r["in_order"], r
    assert r["duplicated"] <= drops, r
    assert not gw.errors() and gw.resets == 0, gw.output


def test_watchdog_resets_lead_to_safe_mode(tic, gateways, free_port):
    from tests.faults.conftest import Broker

    port = free_port()
    # nothing listens on the broker port: offline for 1 s -> watchdog not fed -> reset
    cfg = gw_config(port, watchdog={"timeout_s": 1, "offline_reset_s": 1})
    gw = gateways(cfg, {"uart": {"1": tic.port}}).start()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not any(b.get("safe_mode") for b in gw.boot_reports()):
        time.sleep(0.1)
    reports = gw.boot_reports()
    assert [b["safe_mode"] for b in reports[:4]] == [False, False, False, True], gw.output
    assert [b["reset_cause"] for b in reports[:4]] == ["power_on", "wdt", "wdt", "wdt"]
    assert "watchdog not fed" in gw.output
    b = Broker(port=port).start()
    s = None
    try:
        s = Subscriber(port, client_id="safe-probe", clean=True)
        assert s.wait(lambda: s.last(BASE + "/safe_mode"), 30), gw.output
        safe = json.loads(s.last(BASE + "/safe_mode"))
        boot = json.loads(s.wait(lambda: s.last(BASE + "/boot"), 10))
        assert s.wait(lambda: s.last(BASE + "/status") == b"online", 10)
        time.sleep(3)
        print("\nFAULT safe-mode        resets=%d boot_causes=%s safe_mode_topic=%s"
              % (gw.resets, [x["reset_cause"] for x in gw.boot_reports()], safe))
        assert safe["safe_mode"] is True and safe["abnormal_resets"] >= 3
        assert boot["safe_mode"] is True
        assert s.last(STATE) is None  # no driver runs in safe mode
        assert not any("tic/linky" in ln for _, boot, ln in gw.lines if boot == gw.boots)
    finally:
        if s is not None:
            s.stop()
        b.__exit__(None, None, None)
