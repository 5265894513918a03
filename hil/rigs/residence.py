"""The virtual rig's residence: one hub config with every device the scenarios name.

=============  ======================  ==============================================
device id      kind                    how the rig drives it
=============  ======================  ==============================================
``button-1``   alarm_button            sim GPIO (pin 17), LED 27, buzzer 22
``cord-1``     pull_cord               sim GPIO (pin 23), LED 24
``bed``        bed_mat                 ``bedmat`` emulator on a pty
``dispenser``  medication_dispenser    ``dispenser`` emulator on a pty
``espa``       nurse_call              ``espa444`` emulator on a pty
``ble-button`` alarm_button (BTHome)   sim BLE adverts, **encrypted** (:data:`BLE_BUTTON_KEY`)
``ble-door``   door (BTHome)           sim BLE adverts, plain
=============  ======================  ==============================================

The devices are listed in that order, so ``device[0]`` is ``button-1`` for
``check_config``'s dotted keys. A serial device whose port is
:data:`EMULATOR` gets an emulator of its protocol started by the rig, which
then writes the emulator's pty in its place.

:func:`~hil.rigs.tomlout.merge` lays a scenario's ``[hub.config]`` over the residence: tables
merge, scalars and arrays replace, and ``[[device]]`` entries merge by
``id`` (a scenario's ``[[hub.config.device]] id = "bed"`` changes the bed mat;
an unknown id adds a device). :func:`set_dotted` sets ``device[0].gpio.pin``
style keys.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from hil.harness.emulators import serial_devices
from hil.harness.hubproc import gpio_devices
from hil.rigs.tomlout import merge

#: The port of a serial device that the rig plays with an emulator on a pty.
EMULATOR = "@emulator"

BLE_BUTTON_MAC = "A4:C1:38:00:00:01"
BLE_BUTTON_KEY = "231d39c1d7cc1ab1aee224cd096db932"
BLE_DOOR_MAC = "A4:C1:38:00:00:02"

#: The residence, as an installer would write it (the broker is filled in by :func:`residence`).
RESIDENCE_TOML = f"""
[hub]
id = "hil-residence"
resident = "R-hil-0001"
timezone = "Europe/Oslo"

[mqtt]
prefix = "carehub/v1"
heartbeat_s = 60
keepalive_s = 10
backoff_initial_s = 0.2
backoff_max_s = 1.0
connect_timeout_s = 3
# the rig's broker sits across a veth pair, on a private 10.x address, without TLS: said so explicitly
insecure = true

[store]
dir = "state"

[log]
format = "json"
level = "info"

[gpio]
factory = "sim"

[ble]
backend = "sim"

[alarm]
ack_timeout_s = 60
unack_repeat_s = 60
steady_s = 600

[rules]
night = "22:00-07:00"
day = "07:00-22:00"

{gpio_devices(hold_s=0.6)}
{serial_devices(ids={"bed": "bed", "disp": "dispenser", "espa": "espa"}, bed=EMULATOR, disp=EMULATOR, espa=EMULATOR)}

[[device]]
id = "ble-button"
kind = "alarm_button"
room = "living"
[device.ble]
address = "{BLE_BUTTON_MAC}"
bindkey = "{BLE_BUTTON_KEY}"

[[device]]
id = "ble-door"
kind = "door"
room = "hall"
[device.ble]
address = "{BLE_DOOR_MAC}"
"""


def residence(broker_host: str, broker_port: int) -> dict[str, Any]:
    """The residence as a TOML document, its hub pointed at the rig's broker."""
    doc = tomllib.loads(RESIDENCE_TOML)
    doc["mqtt"]["broker"] = [{"host": broker_host, "port": broker_port}]
    return doc


_PART = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


def parse_dotted(key: str) -> list[str | int]:
    """``"device[0].gpio.pin"`` -> ``["device", 0, "gpio", "pin"]``; ValueError if malformed."""
    path: list[str | int] = []
    for part in key.split("."):
        m = _PART.fullmatch(part)
        if m is None:
            raise ValueError(f"bad key {key!r}: expected names and [N] indexes joined by '.'")
        path.append(m.group(1))
        path += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    return path


def set_dotted(doc: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` (``device[0].gpio.pin``) in ``doc``, making missing tables; ValueError if it cannot."""
    path = parse_dotted(key)
    node: Any = doc
    for here, nxt in zip(path, path[1:]):
        if isinstance(here, int):
            if not isinstance(node, list) or here >= len(node):
                raise ValueError(f"{key}: no element [{here}]")
            node = node[here]
        else:
            if not isinstance(node, dict):
                raise ValueError(f"{key}: {here!r} is not inside a table")
            node = node.setdefault(here, [] if isinstance(nxt, int) else {})
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ValueError(f"{key}: no element [{last}]")
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ValueError(f"{key}: {last!r} is not inside a table")


def device(doc: dict[str, Any], device_id: str) -> dict[str, Any] | None:
    """The ``[[device]]`` table of ``device_id``, or None."""
    for dev in doc.get("device", []):
        if isinstance(dev, dict) and dev.get("id") == device_id:
            return dev
    return None
