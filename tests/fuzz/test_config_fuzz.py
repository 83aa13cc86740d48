"""gw.config: validate() and read_json() on generated configs (passerelle.strategies.config).

Contract (gw/config.py): validate() never raises, never mutates its arguments, gives
one message per problem naming the key path, and returns a usable config with every
default filled in; read_json() never raises."""

import copy
import json

from hypothesis import example, given, strategies as st

from gw import config

from passerelle.strategies.config import (any_configs, boards, config_texts, configs,
                                          json_values, secrets, wrong_configs)
from tests.fuzz.fuzzutil import budget

ROOT_KEYS = [e[0] for e in config._ROOT]


def _paths_ok(errs):
    """One str per problem: '<key path>: <what is expected>'."""
    for e in errs:
        assert isinstance(e, str) and ": " in e, e


@budget(100)
@given(configs(), boards())
def test_valid_configs_have_no_errors_and_normalize_idempotently(cfg, board):
    before = copy.deepcopy(cfg)
    out, errs = config.validate(cfg, None, None)
    assert errs == [], (cfg, errs)
    assert cfg == before                                   # not mutated
    assert sorted(out) == sorted(ROOT_KEYS)
    again, errs2 = config.validate(json.loads(json.dumps(out)))
    assert errs2 == [] and again == out                    # normalized is a fixed point
    if board is not None:                                  # never raises with any board
        out_b, errs_b = config.validate(cfg, None, board)
        _paths_ok(errs_b)


@budget(150, fuzz=5000)
@given(wrong_configs(), st.none() | secrets())
def test_wrong_configs_report_each_problem_with_its_path(cfg, sec):
    before = copy.deepcopy((cfg, sec))
    out, errs = config.validate(cfg, sec)
    assert (cfg, sec) == before
    _paths_ok(errs)
    assert len(errs) == len(set(errs)) or isinstance(cfg, dict)
    assert config.validate(cfg, sec) == (out, errs)        # deterministic
    if isinstance(out, dict):
        assert sorted(out) == sorted(ROOT_KEYS)


@budget(150)
@given(json_values, st.none() | json_values, st.none() | json_values)
@example({"device_id": "a", "mqtt": {"host": "h"}, "meters": [{"id": 5}]}, None, None)
@example({"device_id": "a", "mqtt": {"host": "h"}, "meters": [[], {"id": "x"}]}, None, None)
@example({"": 1, "mqtt": None}, {"mqtt_password": "x"}, {"pins": None, "uarts": []})
def test_validate_never_raises_on_any_json(cfg, sec, board):
    try:
        out, errs = config.validate(cfg, sec, board if isinstance(board, dict) else None)
    except Exception as e:      # noqa: BLE001 - the contract under test
        raise AssertionError("validate() raised %r" % (e,))
    assert isinstance(errs, list)
    if not isinstance(cfg, dict):
        assert errs and errs[0].startswith("config: expected an object")


@budget(100)
@given(config_texts())
@example(b'{"device_id": "\xff"}')
@example(b"\xef\xbb\xbf{}")
def test_read_json_never_raises(scratch, text):
    p = scratch / "config.json"
    p.write_bytes(text)
    obj, err = config.read_json(str(p))
    if err is None:
        assert obj == json.loads(text.decode("utf-8"))
    else:
        assert obj is None and err.startswith(str(p) + ": ")


def test_any_configs_strategy_mixes_valid_and_wrong():
    """Sanity of the generator the differential tests use (a few draws)."""
    seen = set()

    @budget(30)
    @given(any_configs)
    def draw(cfg):
        seen.add(bool(config.validate(cfg)[1]))

    draw()
    assert seen == {True, False}
