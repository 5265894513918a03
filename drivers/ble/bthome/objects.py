"""The BTHome v2 object table: every object id, its value's length, kind, factor and unit.

A data table (https://bthome.io/format/), as bthome-ble 3.25 implements it;
the tests check the two tables against each other. Also the event codes of
buttons (0x3A), dimmers (0x3C) and commands (0x3B).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

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


def event_name(table: Mapping[int, str | None], code: int) -> str | None:
    """The event's name; codes the spec does not (yet) define read ``unknown_0xNN``."""
    if code in table:
        return table[code]
    return f"unknown_0x{code:02x}"
