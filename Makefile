# Passerelle: every target creates .venv itself on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: help run test test-fast bench fuzz soak lint mpy clean

help:
	@echo "make run    - demo: embedded broker + emulated gateway fed by the Linky simulator + live view"
	@echo "make test   - the whole test suite (CPython + MicroPython unix port + brokers)"
	@echo "make bench  - benchmarks vs the peers (TIC, MQTT, heap, end to end): bench-out/bench.{json,md,png}"
	@echo "make fuzz   - long Hypothesis runs with the example database"
	@echo "make lint   - MicroPython-compatibility lint + mpy-cross compile gate"
	@echo "make soak   - long fault-injection run (PASSERELLE_SOAK_S seconds, default 600)"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/passerelle run

test: $(STAMP) lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not slow"

BENCH_OUT ?= bench-out/bench.json

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(VENV)/bin/passerelle bench --json $(BENCH_OUT)

soak: $(STAMP)
	$(PY) -m pytest -q -s -p no:cacheprovider tests/faults/soak_faults.py

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider tests/protocols tests/mqtt -k "hypothesis or property or fuzz"
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider tests/fuzz
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -p no:cacheprovider tests/modbus/test_modbus_codec.py

lint: $(STAMP)
	$(PY) tools/lint_portable.py
	$(PY) tools/mpy_check.py

clean:
	rm -rf build .pytest_cache .hypothesis
