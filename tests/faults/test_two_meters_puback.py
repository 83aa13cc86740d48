"""Two Linky meters on one gateway whose PUBACKs come late (regression test of c3146d1).

gw.app.Gateway._queue_state lends a state to the MQTT client straight from the shared
JSON buffer ``_out`` (no ~1 KB packet per state) when the link is up and *this meter's*
previous state was acknowledged; the client keeps a view of ``_out`` until the PUBACK,
and the next JSON built into ``_out`` (another meter's state, discovery, stats) first
copies every lent state out (``client.in_flight(pid, detach=True)``).  Before c3146d1
the detach loop reused the name ``sq`` (this meter's [next seq, reserved block, pid in
flight]), so the in-flight check and the new pid went to the LAST meter's entry: the
meters shared one "previous state acknowledged?" slot.

What is driven: the real firmware (ROMFS image, MicroPython unix port, as `passerelle
emulate` runs it) with two TIC meters on UARTs 1 and 2, both fed one frame per second
by one clock (a three-phase meter and a single-phase one, distinct ADSC/PRM), mosquitto
behind tests/tcp_proxy.PubackProxy, which delays every PUBACK by 0.3 s, then withholds
them and cuts the link (the client resends its unacknowledged states with DUP).

What is asserted, from a paho subscriber, the proxy and the gateway's debug log:
* while the link is up and each meter's previous PUBACK came within its period, every
  state is lent at once: no state goes to the outbox, and the two meters' states are
  in flight together (before c3146d1 the second state of every pair found the first
  one's pid in the shared slot and was buffered: "I out: buffering" once a second);
* the link cut with two lent states awaiting their PUBACK is survived: DUP resends are
  seen, every payload on a meter's topic is that meter's (its ADSC, its phases), one
  (topic, seq) always carries the same bytes, the seqs of each meter arrive in order,
  nothing produced is lost, the retained state of each meter is its latest;
* no Traceback / MemoryError / crash in the firmware output, no board reset.

Before c3146d1 only the first point fails: with one shared slot at most one state was
lent at a time and the detach loop covered every slot, so no payload was overwritten;
the payload checks guard the fixed code, where one lent state per meter coexists in
_out and each JSON built there must first copy the other meter's out.
"""

import json
import socket
import threading
import time

import pytest

from tests.faults.conftest import BASE, Subscriber, gw_config
from tests.firmware.feed import have_tic, standard_1p_groups, standard_3p_groups
from tests.tcp_proxy import PubackProxy

pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(not have_tic(), reason="protocols.tic decoder/encoder not landed yet"),
]

PERIOD_S = 1.0       # one frame per meter per second: one state each (min_interval_s 0)
ACK_DELAY_S = 0.3    # < PERIOD_S: each meter's previous state is acknowledged in time
ADSC_B = "041876099999"
METERS = {  # id -> (uart, topic, ADSC, three-phase)
    "linky": (1, BASE + "/linky/state", "041876097263", True),
    "linky2": (2, BASE + "/linky2/state", ADSC_B, False),
}


def groups_b(i):
    """The second meter: single-phase, another ADSC and PRM (nothing shared with A's
    identity, so a swapped payload cannot pass for its own)."""
    out = []
    for label, value, date in standard_1p_groups(i):
        if label == "ADSC":
            value = ADSC_B
        elif label == "PRM":
            value = "09876543210987"
        out.append((label, value, date))
    return out


class TwinFeed:
    """Two TIC UARTs (TCP servers on 127.0.0.1), frame i written to meter A's then meter
    B's client by one thread every ``period_s``: the two states of a pair are built
    within milliseconds of each other, well within one PUBACK delay."""

    def __init__(self, period_s=PERIOD_S):
        import protocols.tic as tic
        self._encode, self._mode = tic.encode_frame, tic.STANDARD
        self.period_s = period_s
        self.groups = (standard_3p_groups, groups_b)
        self.socks, self.conns, self.ports = [], [None, None], []
        for _ in range(2):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(2)
            s.setblocking(False)
            self.socks.append(s)
            self.ports.append(s.getsockname()[1])
        self.frames = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        i = 0
        while not self._stop.is_set():
            for k, s in enumerate(self.socks):
                try:
                    c, _ = s.accept()
                    c.setblocking(True)
                    c.settimeout(2)
                    if self.conns[k] is not None:
                        self.conns[k].close()
                    self.conns[k] = c
                except (BlockingIOError, OSError):
                    pass
            if all(self.conns):
                for k, c in enumerate(self.conns):
                    try:
                        c.sendall(self._encode(self.groups[k](i), self._mode))
                    except OSError:
                        c.close()
                        self.conns[k] = None
                i += 1
                self.frames = i
                self._stop.wait(self.period_s)
            else:
                self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self._t.join(5)
        for c in self.socks + self.conns:
            if c is not None:
                c.close()


@pytest.fixture
def twin():
    f = TwinFeed()
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture
def subscriber(mosquitto):
    s = Subscriber(mosquitto.port, client_id="twometers-sub", clean=True)
    try:
        assert s.wait(lambda: s.c.is_connected(), 10)
        yield s
    finally:
        s.stop()


def produced(gw):
    """{topic: [seq, ...]} from the gateway's debug log (``D out: b'<topic>' seq N``)."""
    out = {m[1]: [] for m in METERS.values()}
    for _, _, line in list(gw.lines):
        if line.startswith("D out: ") and " seq " in line:
            topic, seq = line[len("D out: "):].rsplit(" seq ", 1)
            if topic[:2] == "b'":
                topic = topic[2:-1]
            if topic in out:
                out[topic].append(int(seq))
    return out


def received(sub, live_only=False):
    """[(t, topic, payload, retain)] of the two meters' state topics."""
    topics = {m[1] for m in METERS.values()}
    return [m for m in list(sub.msgs) if m[1] in topics and not (live_only and m[3])]


def seq_of(payload):
    try:
        return json.loads(payload).get("seq")
    except (ValueError, AttributeError):
        return None


def missing(sub, made):
    """{topic: [seq produced but not received]}"""
    got = {t: set() for t in made}
    for _, topic, payload, _ in received(sub):
        got[topic].add(seq_of(payload))
    return {t: sorted(set(made[t]) - got[t]) for t in made}


def buffered_lines(gw):
    """Times at which the gateway opened its outbox (``I out: buffering ...``)."""
    return [t for t, _, line in list(gw.lines) if line.startswith("I out: buffering")]


def outbox_closed(gw):
    opened = len(buffered_lines(gw))
    drained = sum(1 for _, _, line in list(gw.lines) if line.startswith("I out: drained"))
    return opened == drained


def check_payloads(sub, made):
    """Every state payload on a meter's topic is one of that meter's states; one (topic,
    seq) always carries the same bytes; first arrivals in order per meter.
    -> {topic: [seq of first arrivals]}"""
    by_key, firsts, problems = {}, {m[1]: [] for m in METERS.values()}, []
    for t, topic, payload, retain in received(sub):
        mid = topic.split("/")[-2]
        _, _, adsc, tri = METERS[mid]
        try:
            doc = json.loads(payload)
        except ValueError:
            problems.append("not JSON (bytes overwritten while lent?) on %s: %r"
                            % (topic, payload[:120]))
            continue
        seq = doc.get("seq")
        if doc.get("ADSC") != adsc or ("IRMS2" in doc) != tri or doc.get("phases") not in (
                None, 3 if tri else 1):
            problems.append("%s seq %s carries another meter's state: ADSC=%s IRMS2=%s"
                            % (topic, seq, doc.get("ADSC"), "IRMS2" in doc))
        if seq not in made[topic]:
            problems.append("%s: seq %s was never produced for this topic (produced %s)"
                            % (topic, seq, made[topic][-10:]))
        old = by_key.setdefault((topic, seq), payload)
        if old != payload:
            problems.append("%s seq %s delivered with two payloads:\n  %r\n  %r"
                            % (topic, seq, old[:160], payload[:160]))
        if not retain and seq not in firsts[topic]:
            firsts[topic].append(seq)
    for topic, seqs in firsts.items():
        if seqs != sorted(seqs):
            problems.append("%s: seqs out of order %s" % (topic, seqs))
    assert not problems, "\n".join(problems[:20])
    return firsts


def overlaps(px, topics, since):
    """How many states (first sends) went out while the OTHER meter's state still waited
    for its PUBACK: both lent from _out at once, the second built over the first."""
    sends = [(p[0], p[4], p[5]) for p in list(px.publishes)
             if p[5] in topics and not p[1] and p[0] >= since]
    acked = list(px.acked)

    def ack_time(t, pid):
        return min([ta for ta, a in acked if a == pid and ta >= t] or [float("inf")])

    spans = [(t, ack_time(t, pid), topic) for t, pid, topic in sends]
    return sum(1 for t2, _, topic2 in spans
               if any(t1 <= t2 < a1 and topic1 != topic2 for t1, a1, topic1 in spans))


def retained_states(port):
    probe = Subscriber(port, client_id="twometers-retained", clean=True)
    try:
        want = {m[1] for m in METERS.values()}
        probe.wait(lambda: want <= {m[1] for m in received(probe) if m[3]}, 10)
        return {m[1]: json.loads(m[2]) for m in received(probe) if m[3]}
    finally:
        probe.stop()


def test_two_meters_slow_pubacks(mosquitto, subscriber, twin, gateways, proxies):
    t_start = time.monotonic()
    px = PubackProxy(mosquitto.port, delay_s=ACK_DELAY_S)
    proxies.append(px)
    meters = [{"id": mid, "mode": "standard", "uart": uart, "period_s": 60,
               "min_interval_s": 0} for mid, (uart, _, _, _) in METERS.items()]
    cfg = gw_config(px.port, meters=meters, outbox={"flash_kb": 256, "offline_interval_s": 0})
    gw = gateways(cfg, {"uart": {"1": twin.ports[0], "2": twin.ports[1]}}).start()
    sub = subscriber

    def count(topic, since=0.0):
        return sum(1 for m in received(sub, True) if m[1] == topic and m[0] >= since)

    topics = [m[1] for m in METERS.values()]
    # 1. steady state, every PUBACK 0.3 s late: the states of each pair come within
    # milliseconds, so the second one is built into _out while the first is lent
    assert sub.wait(lambda: all(count(t) >= 3 for t in topics), 40), gw.output
    assert sub.wait(lambda: outbox_closed(gw), 20), gw.output  # (states made before CONNACK)
    t1 = time.monotonic()
    time.sleep(5 * PERIOD_S + 0.5)
    late = [round(t - t1, 2) for t in buffered_lines(gw) if t >= t1]
    flowed = {t: count(t, t1) for t in topics}
    assert not late, (
        "states went to the outbox while the link was up and each meter's previous state "
        "was acknowledged within its period (PUBACK delay %.1f s, a state per meter every "
        "%.1f s): the in-flight check looked at another meter's entry (c3146d1); outbox "
        "opened at +%s s; states per topic %s\n%s" % (ACK_DELAY_S, PERIOD_S, late, flowed,
                                                      gw.output[-3000:]))
    assert all(n >= 4 for n in flowed.values()), (flowed, gw.output)
    both = overlaps(px, topics, t1)
    assert both >= 3, ("the two meters' states were never in flight together", both)

    # 2. PUBACKs withheld: both meters' states lent and unacknowledged (the next ones
    # buffered), then the link is cut: the client reconnects and resends them with DUP
    n_dup = sum(1 for p in px.publishes if p[1])
    px.hold(True)
    time.sleep(2 * PERIOD_S + 0.3)
    n_acc = len(px.accepts)
    px.drop()
    px.hold(False)
    assert sub.wait(lambda: len(px.accepts) > n_acc, 10), gw.output
    assert sub.wait(lambda: sum(1 for p in px.publishes if p[1] and p[5] in topics) > n_dup,
                    15), ("no DUP resend seen", gw.output)

    # 3. back to normal, then the feeds stop: everything produced is delivered
    time.sleep(2 * PERIOD_S)
    twin.stop()
    assert sub.wait(lambda: outbox_closed(gw), 20), gw.output
    made = produced(gw)
    sub.wait(lambda: not any(missing(sub, made).values()), 20)
    firsts = check_payloads(sub, made)  # (first: a payload overwritten also looks lost)
    assert not any(missing(sub, made).values()), ("lost", missing(sub, made), gw.output)
    dups = [(p[5].split("/")[-2], seq_of(p[6])) for p in px.publishes
            if p[1] and p[5] in topics]
    retained = retained_states(mosquitto.port)
    print("\nTWOMETERS produced=%s delivered=%s in_flight_together=%d dup_resends=%s "
          "pubacks=%d reconnects=%d %.1fs"
          % ({t.split("/")[-2]: len(v) for t, v in made.items()},
             {t.split("/")[-2]: len(v) for t, v in firsts.items()}, both, dups, len(px.acked),
             len(px.accepts) - 1, time.monotonic() - t_start))
    for t in topics:
        assert retained.get(t, {}).get("seq") == max(made[t]), (t, retained.get(t), made[t])
    assert not gw.errors() and gw.resets == 0, gw.output
