"""Hypothesis strategies for every Passerelle parser (tests and ``make fuzz`` only).

``import passerelle`` never imports this package, and hypothesis is a test extra
(``pip install -e '.[test]'``): import the submodules from tests only.

| module | generates |
|---|---|
| ``tic`` | TIC groups and frames (both modes), Linky meter streams, and the faults of a real line |
| ``mqtt`` | MQTT 3.1.1 packets of every type, valid (with the expected decoded Packet) and malformed |
| ``config`` | config.json / secrets.json documents for ``gw.config.validate``: valid, wrong, broken JSON |
| ``commands`` | MQTT command payloads (relays, fil pilote), valid and hostile |

``modbus`` (Modbus RTU ADUs) belongs with the Modbus codec.
"""
