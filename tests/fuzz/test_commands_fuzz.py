"""MQTT commands (gw.actuators.Actuators.command, relays and fil pilote) on generated
payloads (passerelle.strategies.commands): a valid command switches, a hostile one
switches nothing and reports one error; identical on CPython and MicroPython."""

from hypothesis import example, given, strategies as st

from passerelle import mpeval
from passerelle.strategies.commands import MAX_PAYLOAD, hostile_payloads, payloads, valid_payloads
from tests.fuzz.fuzzutil import budget

RELAYS = ("boiler", "pump")
ZONES = ("salon",)
IDENTS = st.sampled_from(RELAYS + ZONES + ("nope", ""))


def run(cmds):
    return mpeval.commands([[i, bytes(p).hex(), r, t] for i, p, r, t in cmds])


def _states(after):
    return [x[:2] for x in after[0]]


@budget(100)
@given(hostile_payloads(), st.sampled_from(RELAYS + ZONES), st.booleans())
@example(b"ON\xc2\xa0", "boiler", False)            # U+00A0: CPython's strip() removes it
@example(b"eco\xe3\x80\x80", "salon", False)        # U+3000
@example(b"PULSE \xd9\xa1\xd9\xa2", "pump", False)  # Arabic-Indic digits: CPython's float()
@example(b"ON" + b" " * 70, "boiler", False)
@example(b"ON\x00\xf5\x80\x80\x80", "boiler", False)   # > U+10FFFF: not UTF-8
def test_hostile_payload_switches_nothing_and_reports_one_error(payload, ident, retained):
    res = run([(ident, payload, retained, 1000)])
    before = run([])["after"]
    (states, errors), = res["after"]
    assert _states([states]) == [[it[0], it[1]] for it in _initial()], (payload, states)
    assert len(errors) == 1 and errors[0][0] == "b/d/%s/set" % ident, errors
    code = errors[0][1]
    assert code in ("retained", "oversize", "not_utf8", "unknown_value"), code
    if len(payload) > MAX_PAYLOAD and not retained:
        assert code == "oversize"
    assert before == []


def _initial():
    return run([("", b"", False, 0)])["after"][0][0]


@budget(100)
@given(valid_payloads())
def test_valid_payload_switches_without_error(payload):
    ident = "salon" if payload.kind == "pilot" else "boiler"
    (states, errors), = run([(ident, payload, False, 1000)])["after"]
    assert errors == [], (payload, errors)
    st_ = {s[0]: s for s in states}
    if payload.kind == "pilot":
        assert st_["salon"][1] == ("confort", "eco", "hors-gel", "arret", "confort-1",
                                   "confort-2").index(payload.value)
    elif payload.kind == "pulse" or payload.value == "ON" or payload.value == "TOGGLE":
        assert st_["boiler"][1] == 1
        assert st_["pump"][1] == 0                  # interlocked: never both on
    if payload.kind == "pulse":
        assert st_["boiler"][2] == 1000 + int(payload.value * 1000)


@budget(100)
@given(st.lists(st.tuples(IDENTS, payloads(), st.booleans(), st.integers(0, 10 ** 7)),
                min_size=1, max_size=6).map(lambda l: sorted(l, key=lambda c: c[3])))
@example([("boiler", b"ON\xc2\xa0", False, 1)])
@example([("salon", b"eco\xc2\xa0", False, 1)])
@example([("pump", b"PULSE \xd9\xa1", False, 1)])
@example([("boiler", b"ON\x00\xf5\x80\x80\x80", False, 0)])  # MicroPython's str() took it
def test_commands_identical_on_micropython(mpw, cmds):
    args = [[i, bytes(p).hex(), r, t] for i, p, r, t in cmds]
    mp, py = mpw.compare("commands", args)
    assert "exc" not in py, py
    assert mp == py
    for states, errors in py["ok"]["after"]:
        on = {s[0]: s[1] for s in states}
        assert not (on["boiler"] and on["pump"])    # the interlock holds whatever comes
