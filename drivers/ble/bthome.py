"""BTHome v2: decode (and encode) the service data of UUID 0xFCD2.

Pure functions over bytes: no radio, no bleak, no clock reads. The BLE
scanner hands :func:`decode` the service data of UUID 0xFCD2 (the bytes after
the UUID) together with the advertiser's address; the hub gets an
:class:`Advert` back, or a :class:`BTHomeError` subclass, never anything
else.

Service data layout (https://bthome.io/format/)::

    plain:      info | object, object, ...
    encrypted:  info | AES-CCM(object, object, ...) | counter (4, LE) | MIC (4)

``info`` is the device information byte: bit 0 encryption, bit 2 trigger
based device, bits 5-7 the BTHome version, which must be 2. Bit 1 is
reserved in the published spec; an early v2 draft used it for "the
advertiser's MAC follows as 6 bytes, least significant first", and bthome-ble
still accepts that, so we do too (:attr:`Advert.included_mac`).

An object is an id byte and a value whose length the id fixes (text, raw and
command objects carry a length byte). Objects come in order of id. An id we
do not know stops decoding, since its length is unknown: the objects before
it are kept and :attr:`Advert.unknown_object_id` tells which id it was
(``strict=True`` raises :class:`UnknownObjectError` instead).

Encryption is AES-128-CCM with a 4-byte MIC and no associated data; the
nonce is MAC (6 bytes, in display order: ``54:48:E6:8F:80:A5`` gives
``54 48 e6 8f 80 a5``) + UUID little-endian (``d2 fc``) + the info byte + the
counter (4 bytes, as sent).

:class:`ReplayGuard` drops replayed encrypted adverts (counter not above the
last accepted one) and the repeats of plain ones (same packet id as the last
one). :func:`encode`, :func:`encode_payload` and :func:`build_advert` build
adverts for the simulator and the tests.

The object table follows the BTHome v2 spec as bthome-ble 3.25 implements it
(the tests check the two tables against each other and decode thousands of
generated adverts with both).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

__all__ = [
    "ACCEPTED",
    "BUTTON_EVENTS",
    "COMMAND_EVENTS",
    "DIMMER_EVENTS",
    "OBJECTS",
    "SERVICE_UUID",
    "UUID16",
    "Advert",
    "BTHomeError",
    "CommandEvent",
    "DecryptionError",
    "DeviceInfo",
    "DimmerEvent",
    "DowngradeError",
    "EncodeError",
    "InvalidArgumentError",
    "KeyRequiredError",
    "MalformedAdvertError",
    "Measurement",
    "ObjectSpec",
    "OutOfOrderError",
    "ReplayGuard",
    "TruncatedError",
    "UnknownObjectError",
    "UnsupportedVersionError",
    "Verdict",
    "build_advert",
    "decode",
    "device_info",
    "encode",
    "encode_payload",
    "format_mac",
    "normalize_mac",
]

UUID16: Final = 0xFCD2
SERVICE_UUID: Final = "0000fcd2-0000-1000-8000-00805f9b34fb"
_UUID_LE: Final = UUID16.to_bytes(2, "little")

INFO_ENCRYPTED: Final = 0x01
INFO_MAC_INCLUDED: Final = 0x02
INFO_TRIGGER_BASED: Final = 0x04
VERSION: Final = 2

_COUNTER_LEN: Final = 4
_MIC_LEN: Final = 4
#: The shortest ciphertext that can hold an object (id + one byte), as bthome-ble.
_MIN_CIPHERTEXT: Final = 2


# --------------------------------------------------------------------------- errors


class BTHomeError(Exception):
    """Base of everything this module raises."""


class MalformedAdvertError(BTHomeError):
    """The service data does not follow the BTHome v2 format."""


class TruncatedError(MalformedAdvertError):
    """The service data ends in the middle of a field."""


class UnsupportedVersionError(MalformedAdvertError):
    """The version bits of the device information byte are not 2."""

    def __init__(self, version: int) -> None:
        super().__init__(f"BTHome version {version} is not supported (only version 2)")
        self.version = version


class UnknownObjectError(MalformedAdvertError):
    """An object id not in :data:`OBJECTS` (only raised with ``strict=True``)."""

    def __init__(self, object_id: int, offset: int) -> None:
        super().__init__(f"unknown object id 0x{object_id:02x} at payload offset {offset}")
        self.object_id = object_id
        self.offset = offset


class OutOfOrderError(MalformedAdvertError):
    """Object ids not in ascending order (only raised with ``strict=True``)."""


class DecryptionError(BTHomeError):
    """The MIC does not match: wrong bindkey, wrong MAC, or tampered data."""


class KeyRequiredError(BTHomeError):
    """The advert is encrypted and no bindkey was given."""


class DowngradeError(BTHomeError):
    """A plain advert for a device whose bindkey we have: someone may be spoofing it."""


class InvalidArgumentError(BTHomeError, ValueError):
    """A MAC or bindkey argument that is not one."""


class EncodeError(BTHomeError, ValueError):
    """A value that cannot be encoded (out of range, wrong type, unknown id)."""


# --------------------------------------------------------------------------- object table

# Kinds of object, each decoded its own way.
PACKET_ID: Final = "packet_id"
SENSOR: Final = "sensor"  # integer scaled by a factor
BINARY: Final = "binary"  # one byte, 0 = off
BUTTON: Final = "button"
DIMMER: Final = "dimmer"
COMMAND: Final = "command"
TEXT: Final = "text"
RAW: Final = "raw"
TIMESTAMP: Final = "timestamp"
DEVICE_TYPE: Final = "device_type"
FIRMWARE: Final = "firmware"


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """One BTHome object id: how long its value is and what it means."""

    object_id: int
    name: str
    kind: str
    #: bytes after the id; None when a length byte follows the id (text, raw, command)
    length: int | None
    signed: bool = False
    factor: Decimal = Decimal(1)
    unit: str | None = None

    @property
    def decimals(self) -> int:
        """Decimal places the factor gives the value (0.01 -> 2, 0.35 -> 2)."""
        exponent = self.factor.as_tuple().exponent
        assert isinstance(exponent, int)  # nosec: factors are finite
        return max(0, -exponent)


def _sensor(
    oid: int, name: str, length: int, factor: str = "1", unit: str | None = None, *, signed: bool = False
) -> ObjectSpec:
    return ObjectSpec(oid, name, SENSOR, length, signed, Decimal(factor), unit)


def _binary(oid: int, name: str) -> ObjectSpec:
    return ObjectSpec(oid, name, BINARY, 1)


_TABLE: tuple[ObjectSpec, ...] = (
    ObjectSpec(0x00, "packet_id", PACKET_ID, 1),
    _sensor(0x01, "battery", 1, unit="%"),
    _sensor(0x02, "temperature", 2, "0.01", "°C", signed=True),
    _sensor(0x03, "humidity", 2, "0.01", "%"),
    _sensor(0x04, "pressure", 3, "0.01", "hPa"),
    _sensor(0x05, "illuminance", 3, "0.01", "lx"),
    _sensor(0x06, "mass", 2, "0.01", "kg"),
    _sensor(0x07, "mass", 2, "0.01", "lb"),
    _sensor(0x08, "dew_point", 2, "0.01", "°C", signed=True),
    _sensor(0x09, "count", 1),
    _sensor(0x0A, "energy", 3, "0.001", "kWh"),
    _sensor(0x0B, "power", 3, "0.01", "W"),
    _sensor(0x0C, "voltage", 2, "0.001", "V"),
    _sensor(0x0D, "pm25", 2, unit="µg/m³"),
    _sensor(0x0E, "pm10", 2, unit="µg/m³"),
    _binary(0x0F, "generic"),
    _binary(0x10, "power"),
    _binary(0x11, "opening"),
    _sensor(0x12, "co2", 2, unit="ppm"),
    _sensor(0x13, "tvoc", 2, unit="µg/m³"),
    _sensor(0x14, "moisture", 2, "0.01", "%"),
    _binary(0x15, "battery_low"),
    _binary(0x16, "battery_charging"),
    _binary(0x17, "carbon_monoxide"),
    _binary(0x18, "cold"),
    _binary(0x19, "connectivity"),
    _binary(0x1A, "door"),
    _binary(0x1B, "garage_door"),
    _binary(0x1C, "gas"),
    _binary(0x1D, "heat"),
    _binary(0x1E, "light"),
    _binary(0x1F, "lock"),
    _binary(0x20, "moisture"),
    _binary(0x21, "motion"),
    _binary(0x22, "moving"),
    _binary(0x23, "occupancy"),
    _binary(0x24, "plug"),
    _binary(0x25, "presence"),
    _binary(0x26, "problem"),
    _binary(0x27, "running"),
    _binary(0x28, "safety"),
    _binary(0x29, "smoke"),
    _binary(0x2A, "sound"),
    _binary(0x2B, "tamper"),
    _binary(0x2C, "vibration"),
    _binary(0x2D, "window"),
    _sensor(0x2E, "humidity", 1, unit="%"),
    _sensor(0x2F, "moisture", 1, unit="%"),
    ObjectSpec(0x3A, "button", BUTTON, 1),
    ObjectSpec(0x3B, "command", COMMAND, None),
    ObjectSpec(0x3C, "dimmer", DIMMER, 2),
    _sensor(0x3D, "count", 2),
    _sensor(0x3E, "count", 4),
    _sensor(0x3F, "rotation", 2, "0.1", "°", signed=True),
    _sensor(0x40, "distance", 2, unit="mm"),
    _sensor(0x41, "distance", 2, "0.1", "m"),
    _sensor(0x42, "duration", 3, "0.001", "s"),
    _sensor(0x43, "current", 2, "0.001", "A"),
    _sensor(0x44, "speed", 2, "0.01", "m/s"),
    _sensor(0x45, "temperature", 2, "0.1", "°C", signed=True),
    _sensor(0x46, "uv_index", 1, "0.1"),
    _sensor(0x47, "volume", 2, "0.1", "L"),
    _sensor(0x48, "volume", 2, unit="mL"),
    _sensor(0x49, "volume_flow_rate", 2, "0.001", "m³/h"),
    _sensor(0x4A, "voltage", 2, "0.1", "V"),
    _sensor(0x4B, "gas", 3, "0.001", "m³"),
    _sensor(0x4C, "gas", 4, "0.001", "m³"),
    _sensor(0x4D, "energy", 4, "0.001", "kWh"),
    _sensor(0x4E, "volume", 4, "0.001", "L"),
    _sensor(0x4F, "water", 4, "0.001", "L"),
    ObjectSpec(0x50, "timestamp", TIMESTAMP, 4),
    _sensor(0x51, "acceleration", 2, "0.001", "m/s²"),
    _sensor(0x52, "gyroscope", 2, "0.001", "°/s"),
    ObjectSpec(0x53, "text", TEXT, None),
    ObjectSpec(0x54, "raw", RAW, None),
    _sensor(0x55, "volume_storage", 4, "0.001", "L"),
    _sensor(0x56, "conductivity", 2, unit="µS/cm"),
    _sensor(0x57, "temperature", 1, unit="°C", signed=True),
    _sensor(0x58, "temperature", 1, "0.35", "°C", signed=True),
    _sensor(0x59, "count", 1, signed=True),
    _sensor(0x5A, "count", 2, signed=True),
    _sensor(0x5B, "count", 4, signed=True),
    _sensor(0x5C, "power", 4, "0.01", "W", signed=True),
    _sensor(0x5D, "current", 2, "0.001", "A", signed=True),
    _sensor(0x5E, "direction", 2, "0.01", "°"),
    _sensor(0x5F, "precipitation", 2, "0.1", "mm"),
    _sensor(0x60, "channel", 1),
    _sensor(0x61, "rotational_speed", 2, unit="rpm"),
    _sensor(0x62, "speed", 4, "0.000001", "m/s", signed=True),
    _sensor(0x63, "acceleration", 4, "0.000001", "m/s²", signed=True),
    _sensor(0x64, "light_level", 1),
    _sensor(0x65, "settings_revision", 1),
    ObjectSpec(0xF0, "device_type_id", DEVICE_TYPE, 2),
    ObjectSpec(0xF1, "firmware_version", FIRMWARE, 4),
    ObjectSpec(0xF2, "firmware_version", FIRMWARE, 3),
)

#: Every object id we decode, by id.
OBJECTS: Final[Mapping[int, ObjectSpec]] = {spec.object_id: spec for spec in _TABLE}

#: Button event codes (object 0x3A). 0x00 is "no event" (the button's slot
#: when another button of the same device fired).
BUTTON_EVENTS: Final[Mapping[int, str | None]] = {
    0x00: None,
    0x01: "press",
    0x02: "double_press",
    0x03: "triple_press",
    0x04: "long_press",
    0x05: "long_double_press",
    0x06: "long_triple_press",
    0x80: "hold_press",
    0x81: "hold_release",
}
#: Dimmer event codes (first byte of object 0x3C; the second is the number of steps).
DIMMER_EVENTS: Final[Mapping[int, str | None]] = {0x00: None, 0x01: "rotate_left", 0x02: "rotate_right"}
#: Command opcodes (object 0x3B).
COMMAND_EVENTS: Final[Mapping[int, str]] = {
    0x00: "off",
    0x01: "on",
    0x02: "toggle",
    0x03: "step_up",
    0x04: "step_down",
}


def _event_name(table: Mapping[int, str | None], code: int) -> str | None:
    """The event's name; codes the spec does not (yet) define read ``unknown_0xNN``."""
    if code in table:
        return table[code]
    return f"unknown_0x{code:02x}"


# --------------------------------------------------------------------------- results


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


# --------------------------------------------------------------------------- arguments


def normalize_mac(mac: bytes | bytearray | str) -> bytes:
    """A MAC as its 6 bytes in display order ("54:48:E6:8F:80:A5" -> 54 48 e6 8f 80 a5)."""
    if isinstance(mac, (bytes, bytearray, memoryview)):
        raw = bytes(mac)
    elif isinstance(mac, str):
        digits = mac.strip().replace(":", "").replace("-", "")
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            raise InvalidArgumentError(f"not a MAC address: {mac!r}") from None
    else:
        raise InvalidArgumentError(f"not a MAC address: {mac!r}")
    if len(raw) != 6:
        raise InvalidArgumentError(f"a MAC address has 6 bytes, got {len(raw)}: {mac!r}")
    return raw


def format_mac(mac: bytes | bytearray | str) -> str:
    """A MAC as "AA:BB:CC:DD:EE:FF"."""
    return ":".join(f"{b:02X}" for b in normalize_mac(mac))


def _normalize_key(bindkey: bytes | bytearray | str | None) -> bytes | None:
    if bindkey is None:
        return None
    if isinstance(bindkey, str):
        try:
            key = bytes.fromhex(bindkey.strip())
        except ValueError:
            raise InvalidArgumentError("a bindkey is 32 hex digits") from None
    elif isinstance(bindkey, (bytes, bytearray, memoryview)):
        key = bytes(bindkey)
    else:
        raise InvalidArgumentError(f"a bindkey is 16 bytes, got {type(bindkey).__name__}")
    if len(key) != 16:
        raise InvalidArgumentError(f"a bindkey is 16 bytes (32 hex digits), got {len(key)} bytes")
    return key


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise InvalidArgumentError(f"service data must be bytes, got {type(data).__name__}")


def _nonce(mac: bytes, info: int, counter: bytes) -> bytes:
    return mac + _UUID_LE + bytes([info]) + counter


# --------------------------------------------------------------------------- decoding


def device_info(service_data: bytes) -> DeviceInfo:
    """The device information byte of a BTHome v2 advert, checked for the version.

    Enough to tell, before any key lookup, whether an advert is encrypted.
    """
    data = _as_bytes(service_data)
    if not data:
        raise TruncatedError("empty service data: no device information byte")
    info = DeviceInfo.from_byte(data[0])
    if info.version != VERSION:
        raise UnsupportedVersionError(info.version)
    return info


def decode(
    service_data: bytes,
    *,
    mac: bytes | str,
    bindkey: bytes | str | None = None,
    strict: bool = False,
) -> Advert:
    """Decode the service data of UUID 0xFCD2 sent by ``mac``.

    ``bindkey`` (16 bytes or 32 hex digits) is the device's key: with it,
    plain adverts are refused (:class:`DowngradeError`) and encrypted ones are
    decrypted (:class:`DecryptionError` when the MIC does not match); without
    it, encrypted adverts raise :class:`KeyRequiredError`.

    Raises only :class:`BTHomeError` subclasses. With ``strict`` an unknown
    object id or out-of-order ids raise instead of being reported on the advert.
    """
    data = _as_bytes(service_data)
    mac_bytes = normalize_mac(mac)
    key = _normalize_key(bindkey)
    info = device_info(data)

    body = data[1:]
    nonce_mac = mac_bytes
    included_mac: str | None = None
    if info.mac_included:
        if len(body) < 6:
            raise TruncatedError(f"MAC-included flag set but only {len(body)} bytes follow the info byte")
        nonce_mac = body[:6][::-1]
        included_mac = format_mac(nonce_mac)
        body = body[6:]

    counter: int | None = None
    if info.encrypted:
        if key is None:
            raise KeyRequiredError(f"advert from {format_mac(mac_bytes)} is encrypted and no bindkey was given")
        if len(body) < _MIN_CIPHERTEXT + _COUNTER_LEN + _MIC_LEN:
            raise TruncatedError(
                f"encrypted advert too short: {len(body)} bytes after the header, "
                f"need at least {_MIN_CIPHERTEXT} of ciphertext + {_COUNTER_LEN} counter + {_MIC_LEN} MIC"
            )
        ciphertext = body[: -(_COUNTER_LEN + _MIC_LEN)]
        counter_bytes = body[-(_COUNTER_LEN + _MIC_LEN) : -_MIC_LEN]
        mic = body[-_MIC_LEN:]
        counter = int.from_bytes(counter_bytes, "little")
        try:
            payload = AESCCM(key, tag_length=_MIC_LEN).decrypt(
                _nonce(nonce_mac, info.raw, counter_bytes), ciphertext + mic, None
            )
        except InvalidTag:
            raise DecryptionError(
                f"advert from {format_mac(mac_bytes)} (counter {counter}) does not authenticate: "
                "wrong bindkey or tampered data"
            ) from None
    else:
        if key is not None:
            raise DowngradeError(
                f"plain advert from {format_mac(mac_bytes)}, whose bindkey we have: refused (possible spoofing)"
            )
        payload = body

    return _decode_objects(
        payload,
        strict=strict,
        base=dict(
            mac=format_mac(mac_bytes),
            encrypted=info.encrypted,
            trigger_based=info.trigger_based,
            version=info.version,
            counter=counter,
            included_mac=included_mac,
            info=info.raw,
        ),
    )


def _decode_objects(payload: bytes, *, strict: bool, base: dict[str, Any]) -> Advert:
    values: list[Measurement] = []
    states: list[Measurement] = []
    buttons: list[str | None] = []
    dimmers: list[DimmerEvent] = []
    commands: list[CommandEvent] = []
    packet_id: int | None = None
    device_type_id: int | None = None
    firmware: str | None = None
    unknown: int | None = None
    out_of_order = False

    n = len(payload)
    pos = 0
    previous_id = -1
    while pos < n:
        oid = payload[pos]
        spec = OBJECTS.get(oid)
        if spec is None:
            if strict:
                raise UnknownObjectError(oid, pos)
            unknown = oid
            break
        if oid < previous_id:
            if strict:
                raise OutOfOrderError(f"object id 0x{oid:02x} at offset {pos} follows 0x{previous_id:02x}")
            out_of_order = True
        previous_id = oid

        if spec.length is None:
            if pos + 1 >= n:
                raise TruncatedError(f"object 0x{oid:02x} ({spec.name}) at offset {pos}: missing its length byte")
            length = payload[pos + 1]
            if spec.kind == COMMAND:
                length = 1 + (length & 0x1F)  # opcode + args; the top 3 bits are reserved
            start = pos + 2
        else:
            length = spec.length
            start = pos + 1
        end = start + length
        if end > n:
            raise TruncatedError(
                f"object 0x{oid:02x} ({spec.name}) at offset {pos} needs {length} bytes, only {n - start} left"
            )
        raw = payload[start:end]
        pos = end

        kind = spec.kind
        if kind == SENSOR:
            number = int.from_bytes(raw, "little", signed=spec.signed)
            scaled: int | float = number if spec.factor == 1 else float(number * spec.factor)
            values.append(Measurement(oid, spec.name, scaled, spec.unit, raw))
        elif kind == BINARY:
            states.append(Measurement(oid, spec.name, bool(raw[0]), None, raw))
        elif kind == PACKET_ID:
            packet_id = raw[0]
        elif kind == BUTTON:
            buttons.append(_event_name(BUTTON_EVENTS, raw[0]))
        elif kind == DIMMER:
            dimmers.append(DimmerEvent(_event_name(DIMMER_EVENTS, raw[0]), raw[1]))
        elif kind == COMMAND:
            commands.append(CommandEvent(_event_name(COMMAND_EVENTS, raw[0]), raw[1:]))
        elif kind == TEXT:
            values.append(Measurement(oid, spec.name, raw.decode("utf-8", errors="replace"), None, raw))
        elif kind == RAW:
            values.append(Measurement(oid, spec.name, raw, None, raw))
        elif kind == TIMESTAMP:
            stamp = datetime.fromtimestamp(int.from_bytes(raw, "little"), tz=UTC)
            values.append(Measurement(oid, spec.name, stamp, None, raw))
        elif kind == DEVICE_TYPE:
            device_type_id = int.from_bytes(raw, "little")
        elif kind == FIRMWARE:
            # least significant component first: 00 01 02 04 is 4.2.1.0
            firmware = ".".join(str(b) for b in reversed(raw))
        else:  # pragma: no cover - the table only holds the kinds above
            raise AssertionError(kind)

    return Advert(
        packet_id=packet_id,
        values=tuple(values),
        states=tuple(states),
        buttons=tuple(buttons),
        dimmers=tuple(dimmers),
        commands=tuple(commands),
        device_type_id=device_type_id,
        firmware_version=firmware,
        unknown_object_id=unknown,
        out_of_order=out_of_order,
        **base,
    )


# --------------------------------------------------------------------------- encoding


def _uint(value: Any, length: int, what: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodeError(f"{what}: expected an integer, got {value!r}")
    if not 0 <= value < 1 << (8 * length):
        raise EncodeError(f"{what}: {value} does not fit {length} unsigned byte(s)")
    return value.to_bytes(length, "little")


def _event_code(table: Mapping[int, str | None], event: Any, what: str) -> int:
    if isinstance(event, int) and not isinstance(event, bool):
        if 0 <= event <= 0xFF:
            return event
        raise EncodeError(f"{what}: event code {event} out of range")
    for code, name in table.items():
        if name == event:
            return code
    raise EncodeError(f"{what}: unknown event {event!r} (known: {[n for n in table.values()]})")


def _encode_value(spec: ObjectSpec, value: Any) -> bytes:
    what = f"object 0x{spec.object_id:02x} ({spec.name})"
    kind = spec.kind
    if kind == SENSOR:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise EncodeError(f"{what}: expected a number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise EncodeError(f"{what}: {value} is not finite")
        try:
            scaled = (Decimal(str(value)) / spec.factor).to_integral_value(rounding=ROUND_HALF_EVEN)
        except InvalidOperation:
            raise EncodeError(f"{what}: cannot encode {value!r}") from None
        number = int(scaled)
        bits = 8 * (spec.length or 0)
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if spec.signed else (0, (1 << bits) - 1)
        if not low <= number <= high:
            raise EncodeError(
                f"{what}: {value} is out of range [{float(low * spec.factor):g}, {float(high * spec.factor):g}]"
            )
        return number.to_bytes(spec.length or 0, "little", signed=spec.signed)
    if kind == BINARY:
        if isinstance(value, bool):
            return bytes([value])
        return _uint(value, 1, what)
    if kind in (PACKET_ID, DEVICE_TYPE):
        return _uint(value, spec.length or 0, what)
    if kind == BUTTON:
        return bytes([_event_code(BUTTON_EVENTS, value, what)])
    if kind == DIMMER:
        if isinstance(value, DimmerEvent):
            event, steps = value.event, value.steps
        else:
            try:
                event, steps = value
            except (TypeError, ValueError):
                raise EncodeError(f"{what}: expected (event, steps), got {value!r}") from None
        return bytes([_event_code(DIMMER_EVENTS, event, what)]) + _uint(steps, 1, what + " steps")
    if kind == COMMAND:
        if isinstance(value, CommandEvent):
            command, args = value.command, value.args
        elif isinstance(value, (str, int)):
            command, args = value, b""
        else:
            try:
                command, args = value
            except (TypeError, ValueError):
                raise EncodeError(f"{what}: expected (command, args), got {value!r}") from None
        if not isinstance(args, (bytes, bytearray)) or len(args) > 0x1F:
            raise EncodeError(f"{what}: args must be at most 31 bytes, got {args!r}")
        return bytes([len(args), _event_code(COMMAND_EVENTS, command, what)]) + bytes(args)
    if kind in (TEXT, RAW):
        if kind == TEXT and isinstance(value, str):
            blob = value.encode("utf-8")
        elif kind == RAW and isinstance(value, (bytes, bytearray)):
            blob = bytes(value)
        else:
            raise EncodeError(f"{what}: expected {'str' if kind == TEXT else 'bytes'}, got {value!r}")
        if len(blob) > 0xFF:
            raise EncodeError(f"{what}: at most 255 bytes, got {len(blob)}")
        return bytes([len(blob)]) + blob
    if kind == TIMESTAMP:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise EncodeError(f"{what}: a timestamp needs a timezone")
            value = int(value.timestamp())
        return _uint(value, 4, what)
    if kind == FIRMWARE:
        parts = value.split(".") if isinstance(value, str) else value
        try:
            numbers = [int(p) for p in parts]
        except (TypeError, ValueError):
            raise EncodeError(f"{what}: expected a version like '1.2.3', got {value!r}") from None
        if len(numbers) != spec.length or not all(0 <= x <= 0xFF for x in numbers):
            raise EncodeError(f"{what}: expected {spec.length} components 0-255, got {value!r}")
        return bytes(reversed(numbers))
    raise AssertionError(kind)  # pragma: no cover


def encode_payload(objects: Iterable[tuple[int, Any]], *, sort: bool = True) -> bytes:
    """The object bytes for ``(object_id, value)`` pairs.

    Values are in the units :func:`decode` gives (21.5 for 21.5 °C; bool for
    binary sensors; an event name or code for buttons; ``(event, steps)`` for
    dimmers; ``(command, args)`` for commands; str / bytes / datetime for
    text / raw / timestamp; "1.2.3" for firmware). ``sort`` orders the objects
    by id as the spec asks, keeping the order of repeated ids (buttons).
    """
    pairs: list[tuple[ObjectSpec, Any]] = []
    for oid, value in objects:
        spec = OBJECTS.get(oid) if isinstance(oid, int) else None
        if spec is None:
            raise EncodeError(f"unknown object id {oid!r}")
        pairs.append((spec, value))
    if sort:
        pairs.sort(key=lambda pair: pair[0].object_id)
    out = bytearray()
    for spec, value in pairs:
        out.append(spec.object_id)
        out += _encode_value(spec, value)
    return bytes(out)


def build_advert(
    payload: bytes,
    *,
    bindkey: bytes | str | None = None,
    mac: bytes | str | None = None,
    counter: int | None = None,
    trigger_based: bool = False,
    include_mac: bool = False,
) -> bytes:
    """Service data around the object bytes ``payload``: plain, or encrypted with
    ``bindkey`` (then ``mac`` and ``counter`` are required)."""
    info = VERSION << 5
    if trigger_based:
        info |= INFO_TRIGGER_BASED
    key = _normalize_key(bindkey)
    mac_bytes = normalize_mac(mac) if mac is not None else None
    header = bytearray()
    if include_mac:
        if mac_bytes is None:
            raise EncodeError("include_mac needs the mac")
        info |= INFO_MAC_INCLUDED
        header += mac_bytes[::-1]
    if key is None:
        if counter is not None:
            raise EncodeError("a counter only goes with encryption (give the bindkey)")
        return bytes([info]) + bytes(header) + bytes(payload)
    if mac_bytes is None or counter is None:
        raise EncodeError("encryption needs the mac and the counter")
    info |= INFO_ENCRYPTED
    counter_bytes = _uint(counter, _COUNTER_LEN, "counter")
    sealed = AESCCM(key, tag_length=_MIC_LEN).encrypt(_nonce(mac_bytes, info, counter_bytes), bytes(payload), None)
    ciphertext, mic = sealed[:-_MIC_LEN], sealed[-_MIC_LEN:]
    return bytes([info]) + bytes(header) + ciphertext + counter_bytes + mic


def encode(
    objects: Iterable[tuple[int, Any]] = (),
    *,
    packet_id: int | None = None,
    buttons: Iterable[str | int | None] = (),
    dimmers: Iterable[tuple[str | int | None, int]] = (),
    bindkey: bytes | str | None = None,
    mac: bytes | str | None = None,
    counter: int | None = None,
    trigger_based: bool = False,
) -> bytes:
    """A whole advert (service data): ``encode(buttons=["press"], bindkey=k, mac=m, counter=7)``.

    ``buttons`` gives one button object per entry (None: that button has no event).
    """
    pairs: list[tuple[int, Any]] = list(objects)
    if packet_id is not None:
        pairs.append((0x00, packet_id))
    pairs += [(0x3A, b) for b in buttons]
    pairs += [(0x3C, d) for d in dimmers]
    return build_advert(
        encode_payload(pairs), bindkey=bindkey, mac=mac, counter=counter, trigger_based=trigger_based
    )


# --------------------------------------------------------------------------- replay protection


class Verdict(enum.Enum):
    """What :class:`ReplayGuard` makes of an advert."""

    ACCEPT = "accept"
    #: the same advert again: encrypted with the last counter, or plain with the last packet id
    DUPLICATE = "duplicate"
    #: encrypted with a counter below the last accepted one
    REPLAY = "replay"
    #: plain, from a device that has sent encrypted adverts
    DOWNGRADE = "downgrade"
    #: encrypted, with a counter that started again from zero (new battery, reflash, wrap): accepted
    RESTART = "restart"


#: The verdicts under which an advert is taken.
ACCEPTED = frozenset({Verdict.ACCEPT, Verdict.RESTART})


@dataclass(slots=True)
class _Seen:
    counter: int | None = None
    packet_id: int | None = None
    at: float | None = None
    #: the last counter before a restart, while the new count is still below it
    retired: int | None = None


class ReplayGuard:
    """Per-device replay protection and de-duplication, keyed by :attr:`Advert.mac`.

    * encrypted adverts must bring a counter above the last accepted one
      (equal: :attr:`Verdict.DUPLICATE`, below: :attr:`Verdict.REPLAY`);
    * except a counter restart: a device counts from zero again after a new
      battery, a reflash or a wrap at 2**32. An advert with a counter below
      ``restart_below`` after one at or above it is :attr:`Verdict.RESTART`,
      and accepted, so a resident's button works again as soon as its battery
      is changed, not only after the hub restarts.
      Until the new count passes the old one, a jump of more than
      ``max_jump_after_restart`` is refused as a replay: it looks like an
      advert recorded before the restart, and taking it would shut the device
      out until its new count caught up. What this leaves open: a recorded
      advert from a count's first ``restart_below`` can be replayed once per
      restart; each restart is reported (:meth:`check` returns ``RESTART``).
      ``restart_below=0`` refuses every restart until :meth:`forget`;
    * plain adverts with the packet id of the last accepted advert are
      :attr:`Verdict.DUPLICATE` (devices repeat each advert several times).
      With ``duplicate_window_s`` and a ``now`` passed to :meth:`check`, the
      same packet id is new again once that long has passed since the last
      accepted advert (for sensors that keep their packet id between
      readings; leave it None for buttons, whose repeats must never count twice);
    * a plain advert from a device that has sent encrypted ones is
      :attr:`Verdict.DOWNGRADE`.

    ``counters`` (e.g. from :meth:`counters` saved before a restart) seeds the
    last accepted counters, so that a restart does not reopen the replay window.
    """

    def __init__(
        self,
        *,
        duplicate_window_s: float | None = None,
        counters: Mapping[str, int] | None = None,
        restart_below: int = 100,
        max_jump_after_restart: int = 10_000,
    ) -> None:
        self.duplicate_window_s = duplicate_window_s
        self.restart_below = restart_below
        self.max_jump_after_restart = max_jump_after_restart
        self._seen: dict[str, _Seen] = {}
        for mac, counter in (counters or {}).items():
            self._seen[format_mac(mac)] = _Seen(counter=int(counter))

    def peek(self, advert: Advert, *, now: float | None = None) -> Verdict:
        """The verdict on ``advert``, without recording it."""
        seen = self._seen.get(advert.mac)
        if seen is None:
            return Verdict.ACCEPT
        if advert.encrypted:
            if seen.counter is None or advert.counter is None:
                return Verdict.ACCEPT
            if advert.counter == seen.counter:
                return Verdict.DUPLICATE
            if advert.counter < seen.counter:
                if advert.counter < self.restart_below <= seen.counter:
                    return Verdict.RESTART
                return Verdict.REPLAY
            if (
                seen.retired is not None
                and advert.counter <= seen.retired
                and advert.counter - seen.counter > self.max_jump_after_restart
            ):
                return Verdict.REPLAY  # from before the restart
            return Verdict.ACCEPT
        if seen.counter is not None:
            return Verdict.DOWNGRADE
        if advert.packet_id is not None and advert.packet_id == seen.packet_id:
            expired = (
                self.duplicate_window_s is not None
                and now is not None
                and seen.at is not None
                and now - seen.at > self.duplicate_window_s
            )
            if not expired:
                return Verdict.DUPLICATE
        return Verdict.ACCEPT

    def check(self, advert: Advert, *, now: float | None = None) -> Verdict:
        """The verdict on ``advert``; an accepted advert becomes the device's last one."""
        verdict = self.peek(advert, now=now)
        if verdict in ACCEPTED:
            seen = self._seen.setdefault(advert.mac, _Seen())
            if advert.encrypted:
                if verdict is Verdict.RESTART:
                    seen.retired = max(seen.retired or 0, seen.counter or 0)
                elif seen.retired is not None and advert.counter is not None and advert.counter > seen.retired:
                    seen.retired = None  # the new count has passed the old one
                seen.counter = advert.counter
            seen.packet_id = advert.packet_id
            seen.at = now
        return verdict

    def accept(self, advert: Advert, *, now: float | None = None) -> bool:
        """:meth:`check`, as a bool."""
        return self.check(advert, now=now) in ACCEPTED

    def last_counter(self, mac: bytes | str) -> int | None:
        """The last accepted counter of a device, if it has sent encrypted adverts."""
        seen = self._seen.get(format_mac(mac))
        return seen.counter if seen is not None else None

    def forget(self, mac: bytes | str) -> None:
        """Drop what we know of a device (after its counter was reset on purpose)."""
        self._seen.pop(format_mac(mac), None)

    def counters(self) -> dict[str, int]:
        """The last accepted counter of each encrypted device, to persist across restarts."""
        return {mac: seen.counter for mac, seen in self._seen.items() if seen.counter is not None}
