"""The shared fixtures themselves: brokers start, accept MQTT, restart on the same port."""

import paho.mqtt.client as mqtt
import pytest


def roundtrip(broker, topic="passerelle/selftest", payload=b"hello"):
    got = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fixture-check")
    c.on_message = lambda cl, ud, msg: got.append(msg.payload)
    c.connect(broker.host, broker.port, keepalive=10)
    c.subscribe(topic, qos=1)
    c.loop_start()
    try:
        import time
        deadline = time.monotonic() + 5
        time.sleep(0.2)
        c.publish(topic, payload, qos=1)
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        c.loop_stop()
        c.disconnect()
    return got


@pytest.mark.mosquitto
def test_mosquitto_restart_same_port(mosquitto):
    assert roundtrip(mosquitto) == [b"hello"]
    port = mosquitto.port
    mosquitto.restart()
    assert mosquitto.port == port
    assert roundtrip(mosquitto) == [b"hello"]


def test_amqtt_roundtrip(amqtt_broker):
    assert roundtrip(amqtt_broker) == [b"hello"]


def test_micropython_runs_portable_code(run_micropython):
    r = run_micropython("import sys; print(sys.implementation.name)", heapsize="96K")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "micropython"
