"""The BLE driver's part of the residence config: ``[ble]``, ``[device.ble]`` and ``[device.gatt]``.

One driver owns both ways a BLE device is read: BTHome adverts picked up by the
scanner (``[device.ble]``) and devices the hub connects to over GATT
(``[device.gatt]``); ``[ble]`` configures the radio both share.

Structs and checks only: this module is imported by the config loader, so it
imports no bleak and no scanner code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec

from drivers.base import DriverConfig, Report
from hub.events import Priority

__all__ = ["BINDKEY_PATTERN", "CONFIG", "MAC_PATTERN", "BleDevice", "BleSection", "GattNotify", "GattSettings"]

MAC_PATTERN = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"
BINDKEY_PATTERN = r"^[0-9A-Fa-f]{32}$"

#: A Bluetooth address; ``extra["help"]`` is what the loader's error message says is expected.
Address = Annotated[
    str, msgspec.Meta(pattern=MAC_PATTERN, extra={"help": "a Bluetooth address such as 'A4:C1:38:12:34:56'"})
]
Bindkey = Annotated[
    str, msgspec.Meta(pattern=BINDKEY_PATTERN, extra={"help": "the device's 16-byte BTHome bindkey as 32 hex digits"})
]


class _Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """Base of the BLE tables: keyword-only, frozen, unknown keys refused (as the loader's)."""


class BleSection(_Section):
    """``[ble]``: the BLE scanner. ``backend = "sim"`` is the simulated advert source
    the demo and the test rig drive through the sim socket."""

    backend: Annotated[
        Literal["bleak", "sim"],
        msgspec.Meta(description="bleak: the Bluetooth adapter (BlueZ); sim: simulated adverts driven through "
                                 "the sim socket (demo and tests)."),
    ] = "bleak"
    adapter: Annotated[
        str | None, msgspec.Meta(description="Bluetooth adapter to use, e.g. 'hci0'. Unset: the default one.")
    ] = None
    silence_s: Annotated[
        float,
        msgspec.Meta(gt=0, description="No advert from any configured device for this many seconds: the "
                                       "scanner is restarted and hub.ble_degraded reported."),
    ] = 600.0
    telemetry_interval_s: Annotated[
        float,
        msgspec.Meta(gt=0, description="A BTHome device's readings are sent when they change, and at least "
                                       "this often in seconds; never per advert."),
    ] = 900.0
    activity_interval_s: Annotated[
        float,
        msgspec.Meta(ge=0, description="At most one motion.activity per device in this many seconds."),
    ] = 60.0
    max_connections: Annotated[
        int, msgspec.Meta(ge=1, le=7, description="GATT devices connected at the same time (the adapter's limit).")
    ] = 2


class BleDevice(_Section):
    """``[device.ble]``: a BTHome v2 device by its address, with its bindkey if it encrypts."""

    address: Annotated[Address, msgspec.Meta(description="The device's Bluetooth address.")]
    bindkey: Annotated[
        Bindkey | None,
        msgspec.Meta(description="BTHome encryption key, 32 hex digits, for a device that encrypts its adverts; "
                                 "unencrypted adverts are then refused. Unset: it does not encrypt."),
    ] = None


class GattNotify(_Section):
    """``[[device.gatt.notify]]``: a characteristic whose notifications become events."""

    uuid: Annotated[
        str, msgspec.Meta(min_length=4, description="The characteristic's UUID: 16-bit ('2a9d') or full.")
    ]
    event: Annotated[
        str,
        msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$",
                     description="Event type of each notification, e.g. 'sensor.reading'."),
    ]
    priority: Annotated[Priority, msgspec.Meta(description="The events' priority.")] = Priority.NORMAL
    decode: Annotated[
        Literal["uint8", "uint16le", "int16le", "utf8", "hex"],
        msgspec.Meta(description="How the payload reads: an integer of exactly that size (little-endian), "
                                 "UTF-8 text, or hex. The raw payload is always in data.raw."),
    ] = "hex"
    scale: Annotated[
        float | None,
        msgspec.Meta(description="Multiplies an integer value (0.01 for hundredths). Unset: the integer as read."),
    ] = None
    key: Annotated[
        str, msgspec.Meta(min_length=1, description="Key of the value in the event's data (not 'raw').")
    ] = "value"


class GattSettings(_Section):
    """``[device.gatt]``: a device the hub connects to (GATT), with its battery read and notifications."""

    address: Annotated[Address, msgspec.Meta(description="The device's Bluetooth address.")]
    battery_interval_s: Annotated[
        float,
        msgspec.Meta(ge=0, description="Seconds between reads of the standard Battery Level; 0: never read."),
    ] = 3600.0
    notify: Annotated[
        list[GattNotify],
        msgspec.Meta(description="Characteristics whose notifications become events, one "
                                 "[[device.gatt.notify]] table each."),
    ] = []


def check(devices: Sequence[Any], settings: Any, report: Report) -> None:
    """No two BTHome devices share an address (case does not matter)."""
    addresses: dict[str, int] = {}
    for i, dev in enumerate(devices):
        if dev.ble is None:
            continue
        addr = dev.ble.address.upper()
        if addr in addresses:
            report(
                ("device", i, "ble", "address"),
                f"expected an address no other device uses, found {dev.ble.address!r} (also device[{addresses[addr]}])",
            )
        addresses.setdefault(addr, i)


CONFIG = DriverConfig(
    name="ble",
    device_sections={"ble": BleDevice, "gatt": GattSettings},
    kinds={"ble": ("alarm_button", "checkin_button", "door", "motion", "sensor"), "gatt": ("medication_dispenser", "sensor")},
    settings=("ble", BleSection),
    check=check,
)
