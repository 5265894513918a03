"""What a BTHome v2 advert is: the service UUID, the device information byte, and the decoded result.

:func:`~drivers.ble.bthome.decode` returns an :class:`Advert`: its sensor
values and binary states as :class:`Measurement` objects, its button, dimmer
and command events, and what the device information byte said
(:class:`DeviceInfo`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

UUID16: Final = 0xFCD2
SERVICE_UUID: Final = "0000fcd2-0000-1000-8000-00805f9b34fb"

INFO_ENCRYPTED: Final = 0x01
INFO_MAC_INCLUDED: Final = 0x02
INFO_TRIGGER_BASED: Final = 0x04
VERSION: Final = 2

Value = int | float | bool | str | bytes | datetime


@dataclass(frozen=True, slots=True)
class Measurement:
    """One sensor value (or binary state) of an advert."""

    object_id: int
    name: str
    value: Value
    unit: str | None = None
    #: the object's value bytes as sent
    raw: bytes = b""

    def __str__(self) -> str:
        value = self.value.hex() if isinstance(self.value, bytes) else self.value
        if isinstance(value, datetime):
            value = value.isoformat()
        return f"{self.name}={value}{' ' + self.unit if self.unit else ''}"

    def __repr__(self) -> str:
        return f"Measurement(0x{self.object_id:02x} {self})"


@dataclass(frozen=True, slots=True)
class DimmerEvent:
    """A dimmer turned: ``event`` is rotate_left / rotate_right (None: no event)."""

    event: str | None
    steps: int


@dataclass(frozen=True, slots=True)
class CommandEvent:
    """A command (object 0x3B): on, off, toggle, step_up, step_down and its arguments."""

    command: str | None
    args: bytes = b""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The device information byte."""

    raw: int
    encrypted: bool
    mac_included: bool
    trigger_based: bool
    version: int

    @classmethod
    def from_byte(cls, raw: int) -> DeviceInfo:
        return cls(
            raw=raw,
            encrypted=bool(raw & INFO_ENCRYPTED),
            mac_included=bool(raw & INFO_MAC_INCLUDED),
            trigger_based=bool(raw & INFO_TRIGGER_BASED),
            version=(raw >> 5) & 0x07,
        )


@dataclass(frozen=True, slots=True, repr=False)
class Advert:
    """One decoded BTHome advert."""

    #: the advertiser, "AA:BB:CC:DD:EE:FF" (the address passed to :func:`decode`)
    mac: str
    encrypted: bool
    trigger_based: bool
    version: int
    packet_id: int | None = None
    #: the encryption counter (encrypted adverts only)
    counter: int | None = None
    #: sensor values (numbers, text, raw bytes, timestamps) in the order sent
    values: tuple[Measurement, ...] = ()
    #: binary sensors (value is a bool) in the order sent
    states: tuple[Measurement, ...] = ()
    #: one entry per button object, in order: the event, or None for "no event"
    buttons: tuple[str | None, ...] = ()
    dimmers: tuple[DimmerEvent, ...] = ()
    commands: tuple[CommandEvent, ...] = ()
    device_type_id: int | None = None
    firmware_version: str | None = None
    #: set when decoding stopped at an object id we do not know
    unknown_object_id: int | None = None
    #: set when object ids were not in ascending order (the spec asks for it)
    out_of_order: bool = False
    #: the MAC in the payload, when the (legacy) MAC-included flag is set
    included_mac: str | None = None
    #: the device information byte as sent
    info: int = VERSION << 5

    def value(self, name: str, default: Any = None) -> Any:
        """The first sensor value called ``name``, else ``default``."""
        for m in self.values:
            if m.name == name:
                return m.value
        return default

    def state(self, name: str, default: Any = None) -> Any:
        """The first binary state called ``name``, else ``default``."""
        for m in self.states:
            if m.name == name:
                return m.value
        return default

    @property
    def has_events(self) -> bool:
        """True when a button, dimmer or command event is in the advert."""
        return (
            any(b is not None for b in self.buttons)
            or any(d.event is not None for d in self.dimmers)
            or bool(self.commands)
        )

    def __repr__(self) -> str:
        head = [self.mac, f"v{self.version}"]
        head.append("encrypted" if self.encrypted else "plain")
        if self.trigger_based:
            head.append("trigger")
        if self.included_mac:
            head.append(f"included_mac={self.included_mac}")
        if self.packet_id is not None:
            head.append(f"packet_id={self.packet_id}")
        if self.counter is not None:
            head.append(f"counter={self.counter}")
        body = [str(m) for m in self.values] + [str(m) for m in self.states]
        if self.buttons:
            body.append("buttons=[" + ", ".join(b or "-" for b in self.buttons) + "]")
        body += [f"dimmer={d.event or '-'}({d.steps})" for d in self.dimmers]
        body += [f"command={c.command}({c.args.hex()})" for c in self.commands]
        if self.device_type_id is not None:
            body.append(f"device_type_id=0x{self.device_type_id:04x}")
        if self.firmware_version is not None:
            body.append(f"firmware={self.firmware_version}")
        if self.out_of_order:
            body.append("OUT-OF-ORDER")
        if self.unknown_object_id is not None:
            body.append(f"STOPPED-AT-UNKNOWN-0x{self.unknown_object_id:02x}")
        return f"Advert({' '.join(head)}: {', '.join(body) or 'no objects'})"
