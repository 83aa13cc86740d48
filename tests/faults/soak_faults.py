"""Soak (``make soak``; the file name keeps it out of ``make test``): the faults of test_faults.py in a
random sequence for PASSERELLE_SOAK_S seconds (default 600): broker SIGKILLed for 10-40 s,
half-open links, gateway SIGKILLed online.  Same accounting from "seq"; the targets:
nothing lost but what RAM held at a power cut, at most one duplicate per fault."""

import os
import random
import time

import pytest

from tests.faults.conftest import BlackholeProxy, account, gw_config
from tests.faults.test_faults import check_files, flowing, stats_docs

pytestmark = [pytest.mark.mosquitto]


def test_soak(broker, sub, tic, gateways, proxies):
    duration = float(os.environ.get("PASSERELLE_SOAK_S", "600"))
    rnd = random.Random(int(os.environ.get("PASSERELLE_SOAK_SEED", "7")))
    px = BlackholeProxy(broker.port)
    proxies.append(px)
    gw = gateways(gw_config(px.port), {"uart": {"1": tic.port}}).start()
    flowing(sub, gw)
    faults = {"outage": 0, "half-open": 0, "sigkill": 0}
    end = time.monotonic() + duration
    while time.monotonic() < end:
        time.sleep(rnd.uniform(3, 15))
        kind = rnd.choice(sorted(faults))
        faults[kind] += 1
        if kind == "outage":
            broker.kill()
            time.sleep(rnd.uniform(10, 40))
            broker.start()
        elif kind == "half-open":
            px.blackhole()
            time.sleep(10)
        else:
            gw.kill()
            check_files(gw)
            gw.start()
    time.sleep(15)
    tic.stop()
    n = -1
    while n != len(sub.states()):
        n = len(sub.states())
        time.sleep(3)
    r = account("soak", gw.produced(), sub.states(),
                "duration=%ds faults=%s outbox=%s" % (duration, faults,
                                                      (stats_docs(sub) or [{}])[-1].get("outbox")))
    assert r["unknown"] == 0 and r["in_order"], r
    assert r["lost"] <= 2 * faults["sigkill"], r
    assert r["duplicated"] <= sum(faults.values()) + faults["sigkill"] * 8, r
    assert not gw.errors() and gw.resets == 0, gw.output
