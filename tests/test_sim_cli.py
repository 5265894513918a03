"""``carehub sim`` as an installer or a test runs it: a subprocess against a real hub, a real emulator, Mosquitto."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hil.harness.broker import Subscriber
from hil.harness.emulators import EmulatedDevice, serial_devices
from hil.harness.hubproc import REPO, HubProcess, gpio_devices
from tests.support.central import BASE, events

BINDKEY = "231d39c1d7cc1ab1aee224cd096db932"
SCALE = "C8:47:8C:10:2E:55"
WEIGHT = "0000fff1-0000-1000-8000-00805f9b34fb"

BLE_SECTION = """
[ble]
backend = "sim"
"""

BLE_DEVICES = f"""
[[device]]
id = "ble-button"
kind = "alarm_button"
room = "living"
[device.ble]
address = "A4:C1:38:00:00:01"
bindkey = "{BINDKEY}"

[[device]]
id = "ble-door"
kind = "door"
room = "hall"
[device.ble]
address = "A4:C1:38:00:00:02"

[[device]]
id = "scale"
kind = "sensor"
room = "bathroom"
[device.gatt]
address = "{SCALE}"
[[device.gatt.notify]]
uuid = "{WEIGHT}"
event = "sensor.reading"
decode = "uint16le"
scale = 0.01
key = "weight_kg"
"""


def sim(*args: str, config: Path | None = None, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    """``carehub sim ARGS`` (with ``-c CONFIG``) as a separate process; asserts its exit code unless ``check`` is None."""
    cmd = [sys.executable, "-m", "hub.cli", "sim", *(["-c", str(config)] if config else []), *args]
    env = {k: v for k, v in os.environ.items() if k != "CAREHUB_CONFIG"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=REPO, env=env)
    if check is not None:
        assert result.returncode == check, f"{cmd} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def wait(sub: Subscriber, type_: str, n: int = 1, timeout: float = 10.0, **source: Any) -> list[dict[str, Any]]:
    def have() -> list[dict[str, Any]]:
        return [e for e in events(sub, type_) if all(e["source"].get(k) == v for k, v in source.items())]

    sub.wait_for(lambda _: len(have()) >= n, timeout=timeout)
    return have()


@pytest.fixture
def residence(make_hub: Callable[..., HubProcess], subscribe: Callable[..., Subscriber],
              emulate: Callable[[str, str], EmulatedDevice]) -> tuple[HubProcess, Subscriber, EmulatedDevice]:
    bed = emulate("bedmat", "bed")
    sub = subscribe([f"{BASE}/event/#"])
    devices = gpio_devices() + BLE_DEVICES + serial_devices(bed=bed)
    hub = make_hub(extra=BLE_SECTION, devices=devices).start().wait_online()
    hub.wait_log(lambda e: e.get("event") == "serial_online")
    return hub, sub, bed


def test_gpio_buttons_by_device_id(residence):
    hub, sub, _ = residence
    out = sim("click", "button-1", config=hub.config)
    assert out.stdout.strip() == "button-1: clicked"
    wait(sub, "alarm.button", device="button-1")
    deadline = time.monotonic() + 5
    while "slow_blink" not in sim("state", "button-1", config=hub.config).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    state = json.loads(sim("state", "button-1", "--json", config=hub.config).stdout)
    assert state["device"] == "button-1" and state["feedback"] == "slow_blink" and state["pressed"] is False
    assert sim("hold", "button-1", "--seconds", "1", config=hub.config).stdout.strip() == "button-1: held 1 s"
    wait(sub, "alarm.cancelled", device="button-1")
    sim("press", "cord-1", config=hub.config)
    assert "pressed" in sim("state", "cord-1", config=hub.config).stdout
    sim("release", "cord-1", config=hub.config)
    wait(sub, "alarm.button", device="cord-1")
    assert sim("devices", config=hub.config).stdout.strip() == "GPIO: button-1, cord-1"
    # the old form, the socket first, still works
    sim(str(hub.sim_socket), "click", "cord-1")


def test_ble_adverts_by_device_name_with_a_rising_counter(residence):
    hub, sub, _ = residence
    first = sim("advert", "ble-button", "button=press", config=hub.config)
    second = sim("advert", "ble-button", "button=press", config=hub.config)
    assert "encrypted, counter" in first.stdout and first.stdout.strip().endswith("heard")
    # both taken: the second advert's counter is above the first's (a repeat press joins the open alarm)
    presses = wait(sub, "alarm.button", n=2, device="ble-button")
    assert presses[0]["data"]["input"] == "ble" and presses[1]["data"].get("repeat") is True
    counters = json.loads(Path(f"{hub.sim_socket}.counters.json").read_text())["A4:C1:38:00:00:01"]["counter"]
    assert counters == int(second.stdout.split("counter ")[1].split(")")[0])

    sim("advert", "ble-door", "opening=1", "battery=80", config=hub.config)
    (opened,) = wait(sub, "door.open", device="ble-door")
    assert opened["data"]["sensor"] == "opening"
    reply = json.loads(sim("advert", "ble-door", "opening=0", "--json", config=hub.config).stdout)
    assert reply["delivered"] is True and reply["encrypted"] is False
    wait(sub, "door.close", device="ble-door")


def test_ble_radio_faults_and_gatt(residence):
    hub, sub, _ = residence
    out = sim("ble-fault", "in_progress", "--running", "--times", "2", config=hub.config)
    assert out.stdout.startswith("BLE fault in_progress: adapter hci0 present")
    wait(sub, "hub.ble_degraded", timeout=15)
    assert sim("ble-state", config=hub.config).stdout.startswith("BLE: adapter hci0 present")

    deadline = time.monotonic() + 15
    while "1 connection(s) subscribed" not in (
        out := sim("gatt", "notify", "scale", WEIGHT, "2c1a", config=hub.config).stdout
    ):
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    (reading,) = wait(sub, "sensor.reading", device="scale")
    assert reading["data"]["weight_kg"] == pytest.approx(0x1A2C / 100)
    sim("gatt", "link", "scale", "down", config=hub.config)
    state = json.loads(sim("gatt", "state", "--json", config=hub.config).stdout)
    assert state["peripherals"][SCALE]["reachable"] is False


def test_serial_emulator_control(residence):
    hub, sub, bed = residence
    ctl = str(bed.control)
    sim("serial", "--control", ctl, "occupancy", "state=in", "battery=90")
    time.sleep(0.5)
    out = sim("serial", "--control", ctl, "occupancy", "state=out", "battery=90")
    assert out.stdout.startswith("occupancy sent (")
    wait(sub, "bed.exit", device="bedmat-1")
    assert sim("serial", "--control", ctl, "unplug").stdout.strip() == "unplugged"
    wait(sub, "device.offline", device="bedmat-1", timeout=15)
    assert sim("serial", "--control", ctl, "replug").stdout.startswith("plugged in again (/dev/pts/")
    wait(sub, "device.online", device="bedmat-1", timeout=15)
    assert sim("serial", "--control", ctl, "state").stdout.startswith("plugged, ")


def test_mistakes_say_what_is_wrong_with_exit_2(residence):
    hub, _, bed = residence
    unknown = sim("click", "button-9", config=hub.config, check=2)
    assert "unknown GPIO device 'button-9'" in unknown.stderr and "button-1, cord-1" in unknown.stderr
    not_ble = sim("advert", "button-1", "button=press", config=hub.config, check=2)
    assert "button-1" in not_ble.stderr and "[device.ble]" in not_ble.stderr
    bad_object = sim("advert", "ble-door", "colour=red", config=hub.config, check=2)
    assert "unknown BTHome object 'colour'" in bad_object.stderr
    assert "expected key=value" in sim("advert", "ble-door", "opening", config=hub.config, check=2).stderr
    refused = sim("serial", "--control", str(bed.control), "occupancy", "state=sideways", check=2)
    assert "the emulator refused 'send'" in refused.stderr
    assert "unknown task" in sim("crash", "no-such-task", config=hub.config, check=2).stderr
    missing = sim("click", "button-1", config=hub.dir / "nope.toml", check=2)
    assert "nope.toml" in missing.stderr and "cannot read" in missing.stderr


def test_no_hub_or_no_emulator_exits_3(make_hub, tmp_path):
    hub = make_hub()
    gone = sim("click", "button-1", config=hub.config, check=3)  # never started: no socket
    assert f"no sim socket at {hub.sim_socket}" in gone.stderr and "is the hub running" in gone.stderr
    hub.start()
    hub.kill()  # kill -9: the socket file stays, nobody listens
    assert hub.sim_socket.exists()
    dead = sim("click", "button-1", config=hub.config, check=3)
    assert "the hub is not running: nothing listens on" in dead.stderr
    no_emulator = sim("serial", "--control", str(tmp_path / "none.ctl"), "state", check=3)
    assert "is the emulator running" in no_emulator.stderr
