"""Only structured log lines reach the hub's stdout and stderr, also while the broker is gone.

journald and the rig parse every line the daemon writes as JSON; a raw
asyncio warning ("Future exception was never retrieved ... LinkDown") in
between is noise an operator cannot filter and a parser chokes on.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.central import BASE


def test_broker_stopped_while_events_flow_leaves_only_json_lines(make_hub, broker) -> None:
    hub = make_hub(heartbeat_s=1, ack_timeout_s=1, unack_repeat_s=1)
    hub.start().wait_online()

    # a central firing commands with response topics while presses, reminders and heartbeats flow
    stop = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()

    def commands() -> None:
        i = 0
        while not stop.is_set():
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = "central/reply"
            props.CorrelationData = str(i).encode()
            client.publish(f"{BASE}/cmd/status", b"{}", qos=1, properties=props)
            i += 1
            time.sleep(0.005)

    sender = threading.Thread(target=commands, daemon=True)
    sender.start()
    try:
        for _ in range(20):
            hub.press()
            time.sleep(0.02)
        broker.stop()  # mid-flow: PUBACKs, replies and the next heartbeat are in flight
        for _ in range(20):
            hub.press()
            time.sleep(0.02)
        # several reconnect attempts against the dead port (backoff 0.2 .. 1.0 s)
        hub.wait_log(lambda e: e.get("event") == "mqtt_connect_failed", timeout=10)
        deadline = time.monotonic() + 15
        while sum(e.get("event") == "mqtt_connect_failed" for e in hub.log_lines()) < 4:
            assert time.monotonic() < deadline, hub.tail()
            time.sleep(0.1)
    finally:
        stop.set()
        sender.join(5)
        client.loop_stop()
    assert hub.stop() == 0

    raw = hub.log_path.read_bytes().splitlines()
    assert len(raw) > 40
    not_json = []
    for line in raw:
        try:
            entry = json.loads(line)
        except ValueError:
            not_json.append(line.decode(errors="replace"))
            continue
        if not (isinstance(entry, dict) and "event" in entry):
            not_json.append(line.decode(errors="replace"))
    assert not_json == [], "lines on stdout/stderr that are not structured log lines:\n" + "\n".join(not_json[:20])


def test_a_cached_logger_follows_stderr_when_it_is_replaced(monkeypatch, capfd) -> None:  # noqa: ANN001
    """Loggers are cached on first use; one that kept a closed stream would raise on every line after
    (in the suite: a test's capture, closed after that test, broke the serial port and the outbox of the
    tests after it). The hub's loggers write to whatever sys.stderr is when they write."""
    import io

    import structlog

    from hub import logs

    first = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stderr", first)
    logs.configure("info", "json")
    log = structlog.get_logger("test.stderr")
    log.info("into_the_first")
    assert b"into_the_first" in first.buffer.getvalue()
    monkeypatch.undo()
    first.close()
    log.info("after_it_closed")  # raised "I/O operation on closed file" when the stream was bound at configure
    assert "after_it_closed" in capfd.readouterr().err
