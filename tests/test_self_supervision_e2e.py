"""Self-supervision, checked from outside the process: the hub heals or says so.

* a link task made to die (the rig's ``crash`` sim op) is restarted, the
  central hears hub.degraded then hub.recovered, and the next press arrives;
* a CA file turned to garbage while the hub runs (an installer's botched
  update) no longer kills the link: reconnects are retried and reported as a
  TLS problem, and once the file is right again the hub is back by itself;
* the systemd watchdog is petted only while the hub is healthy: when a task
  cannot be kept running the pings stop and the hub exits non-zero for
  systemd to restart it.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hil.harness.broker import Mosquitto, Subscriber, make_tls
from hil.harness.hubproc import HubProcess, hub_config
BASE = "carehub/v1/test-hub"


def until(cond: Any, timeout: float = 10.0) -> None:
    """Poll ``cond`` from the test's thread until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s")
        time.sleep(0.02)


def events(sub: Subscriber, event_type: str) -> list[dict[str, Any]]:
    return [m.json() for m in sub.messages if m.topic == f"{BASE}/event/{event_type}"]


def log_events(hub: HubProcess, name: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in hub.log_lines() if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]


def test_a_dead_link_task_is_restarted_and_the_next_alarm_delivered(make_hub, subscribe):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub().start().wait_online()
    assert hub.sim.call({"op": "crash", "task": "link"})["ok"]
    hub.wait_log(lambda e: e.get("event") == "task_failed" and e.get("task") == "link")
    hub.wait_log(lambda e: e.get("event") == "task_restarted" and e.get("task") == "link")
    until(lambda: len(log_events(hub, "birth_published")) >= 2, timeout=10)
    hub.press()
    sub.wait_for(lambda _: events(sub, "alarm.button"), timeout=10)
    sub.wait_for(lambda _: events(sub, "hub.recovered"), timeout=15)
    (degraded,) = [e for e in events(sub, "hub.degraded") if e["data"]["component"] == "task:link"]
    assert "task failed" in degraded["data"]["reason"] and degraded["priority"] == "critical"
    (recovered,) = events(sub, "hub.recovered")
    assert recovered["data"]["component"] == "task:link" and recovered["cause"] is None
    assert hub.returncode is None


@pytest.fixture
def tls_broker(tmp_path: Path):
    tls = make_tls(tmp_path / "pki")
    broker = Mosquitto(workdir=tmp_path / "tls-broker", tls=tls)
    broker.start()
    yield broker, tls
    broker.stop()


def test_a_ca_that_turns_to_garbage_at_run_time_is_retried_and_reported(tmp_path: Path, tls_broker):
    broker, tls = tls_broker
    hub_dir = tmp_path / "hub"
    (hub_dir / "pki").mkdir(parents=True)
    ca = hub_dir / "pki" / "ca.pem"
    shutil.copy(tls.ca, ca)
    extra = f'[mqtt.tls]\nca = "pki/ca.pem"\ncert = "{tls.client_cert}"\nkey = "{tls.client_key}"\n'
    path = hub_config(hub_dir, port=broker.port, extra_mqtt=extra)
    # the TLS table must come after the [mqtt] keys: hub_config puts extra_mqtt right after them
    with Subscriber(port=broker.port, topics=[f"{BASE}/event/#", f"{BASE}/status"], tls=tls) as sub, HubProcess(path) as hub:
        hub.wait_online()
        ca.write_text("garbage, not a certificate\n")  # the hub reads its CA on every connect
        broker.restart()
        hub.wait_log(lambda e: e.get("event") == "mqtt_connect_failed" and e.get("kind") == "tls", timeout=15)
        until(lambda: len(log_events(hub, "mqtt_connect_failed", kind="tls")) >= 3, timeout=15)  # retried
        hub.wait_log(lambda e: e.get("event") == "hub_degraded" and e.get("component") == "link", timeout=10)
        assert not log_events(hub, "task_failed"), "the link task must not die of a bad CA"
        hub.press()  # committed while the link is down; delivered once it is back
        shutil.copy(tls.ca, ca)
        until(lambda: len(log_events(hub, "birth_published")) >= 2, timeout=20)
        sub.wait_for(lambda _: events(sub, "alarm.button"), timeout=10)
        sub.wait_for(lambda _: events(sub, "hub.recovered"), timeout=10)
        (degraded,) = [e for e in events(sub, "hub.degraded") if e["data"]["component"] == "link"]
        assert degraded["data"]["reason"].startswith("tls:")
        assert hub.returncode is None


class NotifySocket:
    """systemd's side of sd_notify: a datagram socket recording (monotonic time, message)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._recv, daemon=True)
        self._thread.start()

    def _recv(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, OSError):
                continue
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def times(self, message: str) -> list[float]:
        return [t for t, m in self.messages if m == message]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def test_the_watchdog_stops_and_the_hub_exits_when_a_task_cannot_recover(tmp_path: Path, make_hub, subscribe):
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        status = subscribe([f"{BASE}/status"])
        hub = make_hub(env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}).start().wait_online()
        until(lambda: len(notify.times("WATCHDOG=1")) >= 5, timeout=10)
        assert notify.times("READY=1")
        assert hub.sim.call({"op": "crash", "task": "forwarder", "times": 1000})["ok"]
        crashed = time.monotonic()
        until(lambda: hub.returncode is not None, timeout=30)
        assert hub.returncode == 70, hub.tail()
        pings_after = [t for t in notify.times("WATCHDOG=1") if t > crashed + 0.5]
        assert not pings_after, "the watchdog was petted while a task could not be kept running"
        gave_up = log_events(hub, "task_gave_up")
        assert gave_up and gave_up[0]["task"] == "forwarder"
        assert log_events(hub, "watchdog_withheld")
        assert notify.times("STOPPING=1")
        # a clean exit: the central sees it went offline on purpose, not a vanished hub
        status.wait_for(lambda _: any(json.loads(m.payload).get("reason") == "stopped" for m in status.messages))
    finally:
        notify.close()
