"""A residence with every kind of device for the control-socket tests, and the ``carehub`` command to run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.ble import bthome
from hil.harness.hubproc import REPO, HubProcess, gpio_devices

BLE_BUTTON = "A4:C1:38:00:00:01"
BLE_DOOR = "A4:C1:38:00:00:02"
KEY = "231d39c1d7cc1ab1aee224cd096db932"
FCD2 = "0000fcd2-0000-1000-8000-00805f9b34fb"
#: The socket under the hub's state directory, said explicitly: a /run/carehub on the test machine is not used.
CONTROL = '[control]\nsocket = "control.sock"\n'

BLE = f"""
[ble]
backend = "sim"
silence_s = 30

[[device]]
id = "ble-button"
kind = "alarm_button"
room = "living"
[device.ble]
address = "{BLE_BUTTON}"
bindkey = "{KEY}"

[[device]]
id = "front-door"
kind = "door"
room = "hall"
[device.ble]
address = "{BLE_DOOR}"
"""


def residence(serial: str = "") -> str:
    """GPIO button and pull-cord, an encrypted BLE button, a BLE door sensor, and ``serial`` devices."""
    return gpio_devices() + BLE + serial


def start(make_hub: Callable[..., HubProcess], *, devices: str | None = None, extra: str = "",
          **kw: Any) -> tuple[HubProcess, Path]:
    """Start a hub of :func:`residence` with its control socket; wait until the socket listens."""
    hub = make_hub(devices=devices if devices is not None else residence(), extra=CONTROL + extra, **kw).start()
    hub.wait_log(lambda e: e.get("event") == "control_listening")
    return hub, hub.dir / "state" / "control.sock"


def ble_button_press(hub: HubProcess, *, counter: int, battery: int = 87, rssi: int = -67) -> dict[str, Any]:
    """An encrypted BTHome press with a battery level, heard by the hub's simulated radio."""
    data = bthome.encode([(0x01, battery)], buttons=["press"], bindkey=KEY, mac=BLE_BUTTON, counter=counter)
    return hub.sim.call({"op": "ble_advert", "address": BLE_BUTTON, "rssi": rssi,
                         "service_data_hex": {FCD2: data.hex()}})


def carehub(*args: str, timeout: float = 30.0, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``carehub ARGS`` (``python -m hub.cli``) as an installer would; its output and exit code."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "160"}
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=cwd or REPO)


def broker_port(hub: HubProcess) -> int:
    import tomllib

    return int(tomllib.loads(hub.config.read_text())["mqtt"]["broker"][0]["port"])
