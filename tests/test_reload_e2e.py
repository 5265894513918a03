"""SIGHUP reloads the config: a real hub subprocess, a real Mosquitto, the sim socket as a finger.

A bad file is refused with check-config's FILE:LINE:COL lines and the hub runs
on; a good one is applied without a restart, without losing a press or an
open alarm; a key that needs a restart is refused and says so.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from drivers.simctl import SimClient, SimCommandError
from hil.harness.broker import Mosquitto, Subscriber, request
from hil.harness.emulators import serial_devices
from hil.harness.hubproc import HubProcess, gpio_devices, hub_config
from tests.support.central import BASE, events

BUTTON_2 = """
[[device]]
id = "button-2"
kind = "alarm_button"
room = "living"
[device.gpio]
pin = 5
led_pin = 6
bounce_s = 0
"""

BUTTON_ONLY = gpio_devices().split("[[device]]\nid = \"cord-1\"")[0]

BLE = """
[ble]
backend = "sim"
"""

DOOR = """
[[device]]
id = "front-door"
kind = "door"
room = "hall"
[device.ble]
address = "A4:C1:38:00:00:0{n}"
"""


def write(hub: HubProcess, broker: Mosquitto, **cfg: Any) -> str:
    """Rewrite the hub's config file; returns its sha256 (what the birth and the events name)."""
    path = hub_config(hub.dir, port=broker.port, **cfg)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reload(hub: HubProcess, *, expect: str = "config_reloaded", timeout: float = 15.0) -> dict[str, Any]:
    """SIGHUP the hub (as systemctl reload does) and wait for the outcome's log line."""
    outcomes = ("config_reloaded", "config_reload_refused")
    before = len([e for e in hub.log_lines() if e.get("event") in outcomes])
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [e for e in hub.log_lines() if e.get("event") in outcomes]
        if len(done) > before:
            assert done[before]["event"] == expect, done[before]
            return done[before]
        assert hub.returncode is None, hub.tail()
        time.sleep(0.02)
    raise AssertionError(f"no reload outcome within {timeout}s\n{hub.tail()}")


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def of(sub: Subscriber, type_: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in events(sub, type_) if all(e.get(k) == v or e["source"].get(k) == v for k, v in match.items())]


def wait(sub: Subscriber, type_: str, n: int = 1, timeout: float = 10.0, **match: Any) -> list[dict[str, Any]]:
    sub.wait_for(lambda _: len(of(sub, type_, **match)) >= n, timeout=timeout)
    return of(sub, type_, **match)


def ack(broker: Mosquitto, event_id: str) -> dict[str, Any]:
    return request("127.0.0.1", broker.port, f"{BASE}/cmd/ack", {"event_id": event_id, "by": "operator-1"}, timeout=10)


def births(sub: Subscriber) -> list[dict[str, Any]]:
    return [m.json() for m in sub.messages if m.topic == f"{BASE}/status"]


def birth(sub: Subscriber) -> dict[str, Any]:
    """The latest birth as the central has it: the hub logs birth_published (wait_online) when it sent
    the birth, which can be before the broker passed it on to this subscriber."""
    sub.wait_for(lambda _: births(sub))
    return births(sub)[-1]


def test_bad_config_is_refused_with_its_lines_and_the_hub_runs_on(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/#"])
    hub = make_hub().start().wait_online()
    running = birth(sub)["config_sha256"]
    text = hub.config.read_text()
    bad = text.replace("ack_timeout_s = 60.0", 'ack_timeout_s = "soon"').replace('[hub]\n', '[hub]\ntimezon = "x"\n')
    hub.config.write_text(bad)
    lines = bad.splitlines()
    ack_line = next(i for i, s in enumerate(lines, 1) if s.startswith("ack_timeout_s"))
    tz_line = next(i for i, s in enumerate(lines, 1) if s.startswith("timezon"))

    refused = reload(hub, expect="config_reload_refused")
    assert refused["reason"] == "invalid" and refused["running_sha256"] == running
    errors = refused["errors"]
    assert any(e.startswith(f"{hub.config}:{ack_line}:") and "alarm.ack_timeout_s" in e for e in errors), errors
    assert any(e.startswith(f"{hub.config}:{tz_line}:") and "timezon" in e for e in errors), errors
    (event,) = wait(sub, "hub.config_refused")
    assert event["priority"] == "high"
    assert event["data"]["reason"] == "invalid" and event["data"]["errors"] == 2
    assert event["data"]["lines"] == sorted([ack_line, tz_line])
    assert event["data"]["running_sha256"] == running
    assert "soon" not in str(event)  # the values stay in the house, the line numbers go

    # nothing restarted: the same process, no second hub.started, and presses still arrive
    assert hub.returncode is None and len(events(sub, "hub.started")) == 1
    hub.press("button-1")
    (alarm,) = wait(sub, "alarm.button")
    assert alarm["source"]["device"] == "button-1"
    assert not [e for e in hub.log_lines() if e.get("event") == "config_reloaded"]


def test_new_ack_timeout_applies_to_the_next_alarm_and_the_open_one_stays(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/#"])
    night = '[rules]\nnight = "22:00-07:00"\n'
    hub = make_hub(ack_timeout_s=60, extra=night).start().wait_online()
    hub.press("button-1")
    (first,) = wait(sub, "alarm.button")

    sha = write(hub, broker, ack_timeout_s=1.0, extra='[rules]\nnight = "21:00-06:00"\n')
    done = reload(hub)
    assert set(done["changed"]) == {"alarm", "rules"} and done["sha256"] == sha
    assert [e for e in hub.log_lines() if e.get("event") == "rules_reloaded"]
    (reloaded,) = wait(sub, "hub.config_reloaded")
    assert reloaded["data"]["sha256"] == sha and set(reloaded["data"]["changed"]) == {"alarm", "rules"}

    # the next alarm is reminded after the new timeout
    pressed = hub.press("cord-1")["t"]
    (second,) = wait(sub, "alarm.button", device="cord-1")
    (reminder,) = wait(sub, "alarm.unacknowledged", timeout=10, cause=second["id"])
    assert 0.9 <= epoch(reminder["ts"]) - pressed <= 3.0
    # the alarm open before the reload is still open, on its own clock, its LED still says so
    assert not of(sub, "alarm.unacknowledged", cause=first["id"])
    assert hub.state("button-1")["feedback"] == "slow_blink"
    status = request("127.0.0.1", broker.port, f"{BASE}/cmd/status", {}, timeout=10)
    assert first["id"] in [a["event_id"] for a in status["open_alarms"]]
    assert ack(broker, first["id"])["ok"] is True
    (acked,) = wait(sub, "alarm.acknowledged")
    assert acked["cause"] == first["id"]
    assert hub.state("button-1")["feedback"] == "steady"


def test_an_added_button_works_and_the_first_buttons_alarm_stays(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/#"])
    hub = make_hub().start().wait_online()
    hub.press("button-1")
    (first,) = wait(sub, "alarm.button")
    sub.wait_for(lambda _: hub.state("button-1")["feedback"] == "slow_blink")

    sha = write(hub, broker, devices=gpio_devices() + BUTTON_2)
    done = reload(hub)
    assert done["changed"] == ["device:button-2 added"]
    attached = [e for e in hub.log_lines() if e.get("event") == "driver_attached"]
    assert attached[-1]["driver"] == "gpio" and attached[-1]["devices"] == ["button-1", "cord-1", "button-2"]
    # the first button's LED (a new one, the driver was attached again) still shows its open alarm
    assert hub.state("button-1")["feedback"] == "slow_blink"
    hub.press("button-2")
    (second,) = wait(sub, "alarm.button", device="button-2")
    assert second["seq"] > first["seq"] and second["source"]["room"] == "living"
    sub.wait_for(lambda _: births(sub)[-1]["config_sha256"] == sha)
    assert "button-2" in [d["id"] for d in births(sub)[-1]["devices"]]
    assert ack(broker, first["id"])["ok"] is True
    wait(sub, "alarm.acknowledged")
    assert hub.state("button-1")["feedback"] == "steady"
    assert hub.state("button-2")["feedback"] == "slow_blink"


def test_a_removed_device_is_gone_and_its_open_alarm_can_still_be_acked(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/#"])
    hub = make_hub().start().wait_online()
    hub.press("cord-1")
    (alarm,) = wait(sub, "alarm.button", device="cord-1")

    sha = write(hub, broker, devices=BUTTON_ONLY)
    assert reload(hub)["changed"] == ["device:cord-1 removed"]
    with pytest.raises(SimCommandError, match="no simulated GPIO device 'cord-1'"):
        hub.press("cord-1")
    sub.wait_for(lambda _: births(sub)[-1]["config_sha256"] == sha)
    assert [d["id"] for d in births(sub)[-1]["devices"]] == ["button-1"]
    hub.press("button-1")
    wait(sub, "alarm.button", device="button-1")
    assert ack(broker, alarm["id"])["ok"] is True
    (acked,) = wait(sub, "alarm.acknowledged")
    assert acked["cause"] == alarm["id"]


def test_presses_during_reloads_of_another_driver_are_all_delivered(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/event/#"])
    hub = make_hub(extra=BLE, devices=gpio_devices() + DOOR.format(n=1)).start().wait_online()
    accepted: list[float] = []
    stop = threading.Event()

    def presser() -> None:
        with SimClient(hub.sim_socket) as sim:
            while not stop.is_set():
                accepted.append(sim.call({"op": "click", "device": "button-1", "seconds": 0.01})["t"])

    thread = threading.Thread(target=presser)
    thread.start()
    try:
        for i in range(6):  # the BLE driver detached and attached again each time; the GPIO driver untouched
            time.sleep(0.3)
            write(hub, broker, extra=BLE, ack_timeout_s=61 + i, devices=gpio_devices() + DOOR.format(n=2 + i % 2))
            done = reload(hub)
            assert "device:front-door changed" in done["changed"] and "alarm" in done["changed"]
    finally:
        stop.set()
        thread.join()
    assert len(accepted) > 50
    sub.wait_for(lambda _: len(of(sub, "alarm.button", device="button-1")) >= len(accepted), timeout=20)
    alarms = of(sub, "alarm.button", device="button-1")
    assert len({a["id"] for a in alarms}) == len(accepted)
    attached = [e["driver"] for e in hub.log_lines() if e.get("event") == "driver_attached"]
    assert attached.count("ble") == 1 + 6 and attached.count("gpio") == 1  # at start, then each reload


def test_a_new_hub_id_is_refused_until_a_restart(make_hub, subscribe, broker):
    sub = subscribe(["carehub/#"])
    hub = make_hub().start().wait_online()
    write(hub, broker, hub_id="other-hub")
    refused = reload(hub, expect="config_reload_refused")
    assert refused["reason"] == "needs_restart"
    (line,) = refused["errors"]
    assert line.startswith(f"{hub.config}: hub.id:") and "restart" in line
    (event,) = wait(sub, "hub.config_refused")
    assert event["hub"] == "test-hub" and event["data"]["keys"] == ["hub.id"]
    hub.press("button-1")
    wait(sub, "alarm.button")  # still under the running id
    assert not [m for m in sub.messages if m.topic.startswith("carehub/v1/other-hub/")]


def test_new_mqtt_settings_reconnect_cleanly_and_publish_birth_again(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/#"])
    hub = make_hub().start().wait_online()
    sha = write(hub, broker, keepalive_s=20)
    assert reload(hub)["changed"] == ["mqtt"]
    hub.wait_log(lambda e: e.get("event") == "mqtt_reconfigured")
    sub.wait_for(lambda _: births(sub)[-1].get("config_sha256") == sha)
    assert [b["state"] for b in births(sub)] == ["online", "online"]  # a clean DISCONNECT: no last will between
    hub.press("button-1")
    wait(sub, "alarm.button")


def test_an_unchanged_file_changes_nothing_and_systemd_hears_reloading_then_ready(make_hub, subscribe, tmp_path):
    sub = subscribe([f"{BASE}/#"])
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(path))
        notify.settimeout(10)
        hub = make_hub(env={"NOTIFY_SOCKET": str(path)}).start().wait_online()
        assert notify.recv(4096) == b"READY=1"
        assert reload(hub)["changed"] == []
        reloading = notify.recv(4096).decode().splitlines()
        ready = notify.recv(4096).decode().splitlines()
    assert reloading[0] == "RELOADING=1" and any(m.startswith("MONOTONIC_USEC=") for m in reloading)
    assert ready[0] == "READY=1"
    time.sleep(0.5)
    assert not events(sub, "hub.config_reloaded")
    assert len(births(sub)) == 1


def test_a_rule_waiting_at_the_reload_still_fires(make_hub, subscribe, broker, emulate):
    sub = subscribe([f"{BASE}/event/#"])
    bed = emulate("bedmat", "bed")
    rules = '[rules]\nnight = "00:00-24:00"\nrealert_s = {realert}\n[rules.bed_not_returned]\nafter_s = 4\n'
    devices = gpio_devices() + serial_devices(bed=bed)
    hub = make_hub(extra=rules.format(realert=900), devices=devices).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    bed.send("occupancy", state="in", battery=90)
    time.sleep(0.5)
    bed.send("occupancy", state="out", battery=90)
    (exit_,) = wait(sub, "bed.exit")

    write(hub, broker, extra=rules.format(realert=1800), devices=devices)  # the rules are built anew
    assert reload(hub)["changed"] == ["rules"]
    (alert,) = wait(sub, "rule.bed_not_returned", timeout=15)
    assert alert["cause"] == exit_["id"]
    assert 3.5 <= epoch(alert["ts"]) - epoch(exit_["ts"]) <= 8.0


def test_a_driver_that_cannot_attach_is_put_back_and_the_reload_refused(make_hub, subscribe, broker):
    sub = subscribe([f"{BASE}/#"])
    hub = make_hub().start().wait_online()
    running = birth(sub)["config_sha256"]
    hub.press("button-1")
    (first,) = wait(sub, "alarm.button")
    sub.wait_for(lambda _: hub.state("button-1")["feedback"] == "slow_blink")

    hub.config.write_text(hub.config.read_text().replace('factory = "sim"', 'factory = "lgpio"'))  # no chip here
    refused = reload(hub, expect="config_reload_refused")
    assert refused["reason"] == "attach_failed" and refused["running_sha256"] == running
    (event,) = wait(sub, "hub.config_refused")
    assert event["data"]["reason"] == "attach_failed" and event["data"]["driver"] == "gpio"
    # the GPIO driver is back on the running config: its button works, its LED still shows the open alarm
    assert hub.state("button-1")["feedback"] == "slow_blink"
    hub.press("button-1")
    (_, repeat) = wait(sub, "alarm.button", n=2)
    assert repeat["cause"] == first["id"] and repeat["data"]["repeat"] is True
    assert hub.returncode is None
